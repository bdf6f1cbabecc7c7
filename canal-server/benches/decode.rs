//! Decode throughput: rows/s from a local MariaDB binlog of 1 M+ row changes, decoded into Canal
//! entries by a [`Destination`], against two baselines reading the same binlog range in the same
//! run: `mariadb-binlog --read-from-remote-server --verbose` and python-mysql-replication 1.0.17.
//!
//! `cargo bench -p canal-server --bench decode` starts a MariaDB through the test harness, writes
//! the workload (multi-row INSERT … SELECT, large UPDATEs and DELETEs on a 9-column table),
//! records the binlog range it produced, then runs each reader `BENCH_RUNS` times (default 3) as
//! a separate process under `/usr/bin/time -v` (peak RSS) and reports the medians. Our reader is
//! this binary re-executed with `--child-ours`: it spawns a destination at the start position and
//! consumes entries until it has seen every row change (rows counted in `RowChange.row_datas`
//! without decoding their columns, `ParsedEntry::row_count`; `BENCH_CONSUMER_DECODE=1` decodes
//! every RowChange instead, as a Canal client would).
//!
//! The table and docs/PERFORMANCE.md (between its `bench:begin`/`bench:end` markers) are written
//! when the workload has at least 1 M row changes. Knobs: `BENCH_TABLE_ROWS` (base table size,
//! default 200 000; the workload is 6.5 × that), `BENCH_RUNS`, `BENCH_PYTHON` (interpreter used to
//! create the venv, default `python3`), `BENCH_SKIP_PYTHON=1`, `BENCH_ONLY_OURS=1` and `BENCH_OURS_PREFIX` (a profiler command
//! put before our reader, e.g. `valgrind --tool=callgrind`) for profiling.
//!
//! The python venv is created here, cached under `target/bench-venv`.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use canal_protocol::entry::{EntryType, EventType};
use canal_server::config::DestinationConfig;
use canal_server::Destination;
use harness::{MariaDb, MariaDbOptions, RowMetadata};
use mysql_async::prelude::Queryable;
use serde::{Deserialize, Serialize};

const PY_PACKAGE: &str = "mysql-replication==1.0.17";
const PY_VERSION: &str = "1.0.17";
const DOC_BEGIN: &str =
    "<!-- bench:begin (written by `cargo bench -p canal-server --bench decode`) -->";
const DOC_END: &str = "<!-- bench:end -->";

fn main() -> ExitCode {
    // `cargo bench` passes `--bench`; a harness-less bench ignores it.
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    let result = match args.first().map(String::as_str) {
        Some("--child-ours") => match args.get(1) {
            Some(spec) => child_ours(spec),
            None => Err(anyhow::anyhow!("--child-ours needs a JSON spec")),
        },
        _ => run(),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("decode bench: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// What a reader process needs to know: where the source is and which range to read.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Spec {
    host: String,
    port: u16,
    user: String,
    password: String,
    file: String,
    start: u64,
    end: u64,
    rows: u64,
    server_id: u32,
}

/// What our reader process prints on its last stdout line.
#[derive(Debug, Serialize, Deserialize)]
struct OursResult {
    rows: u64,
    entries: u64,
    secs: f64,
    vm_hwm_kb: u64,
}

/// One measured run of one reader.
#[derive(Debug, Clone, Copy)]
struct Sample {
    rows_per_sec: f64,
    secs: f64,
    max_rss_kb: u64,
}

fn run() -> Result<()> {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .context("workspace root")?
        .to_path_buf();
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace.join("target"));
    let table_rows: u64 = env_num("BENCH_TABLE_ROWS", 200_000)?;
    let runs: usize = env_num("BENCH_RUNS", 3)?;
    let only_ours = std::env::var_os("BENCH_ONLY_OURS").is_some_and(|v| v == "1");
    let skip_python = only_ours || std::env::var_os("BENCH_SKIP_PYTHON").is_some_and(|v| v == "1");
    if table_rows < 40 || table_rows % 4 != 0 {
        bail!("BENCH_TABLE_ROWS must be a multiple of 4, at least 40");
    }

    // Check the baselines before spending minutes on the workload.
    let time_bin = Path::new("/usr/bin/time");
    if !time_bin.exists() {
        bail!("/usr/bin/time is missing: install the Debian package `time` (it measures peak RSS)");
    }
    let mariadb_binlog = if only_ours {
        None
    } else {
        Some(which("mariadb-binlog").context(
            "`mariadb-binlog` is not on PATH: install the Debian package `mariadb-client`",
        )?)
    };
    let python = if skip_python {
        None
    } else {
        Some(python_venv(&target.join("bench-venv"))?)
    };

    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let db = rt
        .block_on(MariaDb::start_with(MariaDbOptions {
            row_metadata: RowMetadata::Full,
            extra_args: vec![
                "--innodb-buffer-pool-size=512M".into(),
                "--max-binlog-size=1073741824".into(),
                "--binlog-cache-size=16M".into(),
            ],
            ..MariaDbOptions::default()
        }))
        .context("start MariaDB through the harness")?;
    let user = db.replication_user().cloned().unwrap_or_default();

    let gen_started = Instant::now();
    let (start, end, counts) = rt.block_on(generate(&db, table_rows))?;
    let total = counts.total();
    let gen_secs = gen_started.elapsed().as_secs_f64();
    if start.file != end.file {
        bail!(
            "the workload spans binlog files {} and {}; it must fit one file",
            start.file,
            end.file
        );
    }
    let binlog_bytes = end.position - start.position;
    eprintln!(
        "workload: {total} row changes ({} inserts, {} updates, {} deletes), {:.1} MB of binlog ({}:{}..{}), generated in {gen_secs:.1} s",
        counts.inserts,
        counts.updates,
        counts.deletes,
        binlog_bytes as f64 / 1e6,
        start.file,
        start.position,
        end.position,
    );
    let spec = Spec {
        host: "127.0.0.1".into(),
        port: db.port(),
        user: user.user.clone(),
        password: user.password.clone(),
        file: start.file.clone(),
        start: start.position,
        end: end.position,
        rows: total,
        server_id: 9000,
    };

    let me = std::env::current_exe()?;
    let mut watch = OtherWork::watch();
    let mut ours = Vec::new();
    let mut binlog = Vec::new();
    let mut py = Vec::new();
    for run in 0..runs {
        let id = 9000 + run as u32 * 10;
        let s = run_ours(
            time_bin,
            &me,
            &Spec {
                server_id: id,
                ..spec.clone()
            },
        )?;
        eprintln!("run {}: ours            {}", run + 1, show(&s));
        ours.push(s);
        if let Some(bin) = &mariadb_binlog {
            let s = run_mariadb_binlog(time_bin, bin, &spec)?;
            eprintln!("run {}: mariadb-binlog  {}", run + 1, show(&s));
            binlog.push(s);
        }
        if let Some(py_bin) = &python {
            let s = run_python(
                time_bin,
                py_bin,
                &target,
                &Spec {
                    server_id: id + 1,
                    ..spec.clone()
                },
            )?;
            eprintln!("run {}: python          {}", run + 1, show(&s));
            py.push(s);
        }
    }
    let busy = watch.finish();
    let mut machine = machine_text(
        &rt,
        &spec,
        &workspace,
        mariadb_binlog.as_deref(),
        python.as_deref(),
    );
    if busy.is_empty() {
        machine.push_str(
            "- other work: no other process used more than 20% of a CPU in any second while the \
             readers ran (sampled from /proc every second)\n",
        );
    } else {
        eprintln!("note: other processes used the CPU during the measurement:\n{busy}");
        machine.push_str(&format!(
            "- other work: these processes used more than 20% of a CPU in some second while the \
             readers ran, so the numbers are disturbed:\n\n```text\n{busy}\n```\n"
        ));
    }
    drop(db);

    let ours_m = median(&ours);
    let mut rows = vec![("canal-rs `Destination` (this repo)".to_string(), ours_m)];
    if !binlog.is_empty() {
        rows.push((
            "`mariadb-binlog --read-from-remote-server --verbose`".into(),
            median(&binlog),
        ));
    }
    if !py.is_empty() {
        rows.push((
            format!("python-mysql-replication {PY_VERSION}"),
            median(&py),
        ));
    }
    let mut table = String::new();
    table.push_str("| reader | rows/s (median) | time (s) | peak RSS (MiB) | ours ÷ reader |\n");
    table.push_str("| --- | ---: | ---: | ---: | ---: |\n");
    for (name, s) in &rows {
        table.push_str(&format!(
            "| {name} | {} | {:.2} | {:.1} | {:.2}× |\n",
            group(s.rows_per_sec),
            s.secs,
            s.max_rss_kb as f64 / 1024.0,
            ours_m.rows_per_sec / s.rows_per_sec
        ));
    }
    let per_run = |name: &str, v: &[Sample]| {
        let list: Vec<String> = v.iter().map(|s| group(s.rows_per_sec)).collect();
        format!("- {name}: {}\n", list.join(", "))
    };
    let mut runs_text = per_run("canal-rs", &ours);
    if !binlog.is_empty() {
        runs_text.push_str(&per_run("mariadb-binlog", &binlog));
    }
    if !py.is_empty() {
        runs_text.push_str(&per_run("python-mysql-replication", &py));
    }
    println!("\n{table}\nrows/s of each run:\n{runs_text}");

    if total >= 1_000_000 && !only_ours {
        let workload = format!(
            "{total} row changes ({} inserts, {} updates, {} deletes) in {} transactions on one \
             9-column table, {:.1} MB of binlog (`binlog_format=ROW`, `binlog_row_image=FULL`, \
             `binlog_row_metadata=FULL`, CRC32), generated in {gen_secs:.0} s. {runs} runs of each \
             reader, interleaved; the table shows the median run.",
            counts.inserts,
            counts.updates,
            counts.deletes,
            counts.transactions,
            binlog_bytes as f64 / 1e6,
        );
        let section = format!(
            "{DOC_BEGIN}\n\n### Machine\n\n{machine}\n### Workload\n\n{workload}\n\n### Results\n\n{table}\nrows/s of each run:\n\n{runs_text}\n{DOC_END}"
        );
        let path = workspace.join("docs").join("PERFORMANCE.md");
        write_doc(&path, &section)?;
        eprintln!("wrote {}", path.display());
    } else {
        eprintln!(
            "(docs/PERFORMANCE.md is written only by full runs: ≥ 1 M row changes, all readers)"
        );
    }
    Ok(())
}

fn show(s: &Sample) -> String {
    format!(
        "{:>12} rows/s  {:7.2} s  {:7.1} MiB",
        group(s.rows_per_sec),
        s.secs,
        s.max_rss_kb as f64 / 1024.0
    )
}

fn env_num<T: std::str::FromStr>(name: &str, default: T) -> Result<T> {
    match std::env::var(name) {
        Ok(v) => v
            .parse()
            .map_err(|_| anyhow::anyhow!("{name}={v} is not a number")),
        Err(_) => Ok(default),
    }
}

fn which(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(program))
        .find(|p| p.is_file())
}

/// Row changes the workload wrote, by kind.
#[derive(Debug, Default)]
struct Counts {
    inserts: u64,
    updates: u64,
    deletes: u64,
    transactions: u64,
}

impl Counts {
    fn total(&self) -> u64 {
        self.inserts + self.updates + self.deletes
    }
}

/// Writes the workload: `n` rows inserted, updated twice, half deleted, `n` more inserted, all
/// remaining updated, a quarter of the ids deleted: 6.5 × `n` row changes, 10 000 rows per
/// statement (one autocommit transaction each).
async fn generate(
    db: &MariaDb,
    n: u64,
) -> Result<(harness::BinlogPosition, harness::BinlogPosition, Counts)> {
    db.exec(
        "CREATE DATABASE bench;
         CREATE TABLE bench.orders (
           id BIGINT NOT NULL PRIMARY KEY,
           customer_id INT NOT NULL,
           email VARCHAR(64) NOT NULL,
           amount DECIMAL(12,2) NOT NULL,
           created_at DATETIME(3) NOT NULL,
           updated_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP,
           note TEXT NULL,
           flag TINYINT NOT NULL,
           status ENUM('new','paid','shipped','delivered','cancelled') NOT NULL
         ) ENGINE=InnoDB;",
    )
    .await?;
    let start = db.master_status().await?;
    let mut conn = db.conn().await?;
    let mut counts = Counts::default();
    const CHUNK: u64 = 10_000;
    let insert = |from: u64, to: u64| {
        format!(
            "INSERT INTO bench.orders SELECT seq, seq % 50000 + 1,
               IF(seq % 7 = 0, CONCAT('Jürgen Müller ', seq, '@example.de'),
                  CONCAT('customer-', seq, '@', SUBSTR(SHA1(seq), 1, 12), '.example.com')),
               (seq % 100000) / 100 + 0.99,
               TIMESTAMP'2024-01-01 00:00:00' + INTERVAL seq * 1234567 MICROSECOND,
               FROM_UNIXTIME(1700000000 + seq),
               IF(seq % 10 = 0, NULL,
                  CONCAT('order note ', seq, ': ', REPEAT(SUBSTR(MD5(seq), 1, 8), 1 + seq % 12))),
               seq % 2, 1 + seq % 5
             FROM bench.seq_{from}_to_{to}"
        )
    };
    // Runs `sql` over id ranges of CHUNK rows; returns the affected rows.
    async fn chunks(
        conn: &mut mysql_async::Conn,
        counts: &mut Counts,
        lo: u64,
        hi: u64,
        sql: impl Fn(u64, u64) -> String,
    ) -> Result<u64> {
        let mut affected = 0;
        let mut from = lo;
        while from <= hi {
            let to = (from + CHUNK - 1).min(hi);
            conn.query_drop(sql(from, to)).await?;
            affected += conn.affected_rows();
            counts.transactions += 1;
            from = to + 1;
        }
        Ok(affected)
    }
    let update_amount = |from: u64, to: u64| {
        format!(
            "UPDATE bench.orders SET amount = amount + 1.25, updated_at = updated_at + INTERVAL 1 HOUR,
               status = IF(status = 'cancelled', 'new', status + 1)
             WHERE id BETWEEN {from} AND {to}"
        )
    };
    let update_text = |from: u64, to: u64| {
        format!(
            "UPDATE bench.orders SET email = CONCAT('u', id, '-', SUBSTR(SHA1(id + 7), 1, 20), '@mail.example.org'),
               note = CONCAT('revised ', IFNULL(LEFT(note, 40), 'no note')), flag = 1 - flag,
               customer_id = customer_id + 1
             WHERE id BETWEEN {from} AND {to}"
        )
    };
    let ins = &insert;
    let c = &mut counts;
    let done = chunks(&mut conn, c, 1, n, ins).await?;
    c.inserts += done;
    let done = chunks(&mut conn, c, 1, n, update_amount).await?;
    c.updates += done;
    let done = chunks(&mut conn, c, 1, n, update_text).await?;
    c.updates += done;
    let done = chunks(&mut conn, c, 1, n, |a, b| {
        format!("DELETE FROM bench.orders WHERE id BETWEEN {a} AND {b} AND id % 2 = 0")
    })
    .await?;
    c.deletes += done;
    let done = chunks(&mut conn, c, n + 1, 2 * n, ins).await?;
    c.inserts += done;
    let done = chunks(&mut conn, c, 1, 2 * n, update_amount).await?;
    c.updates += done;
    let done = chunks(&mut conn, c, 1, 2 * n, |a, b| {
        format!("DELETE FROM bench.orders WHERE id BETWEEN {a} AND {b} AND id % 4 = 1")
    })
    .await?;
    c.deletes += done;
    conn.disconnect().await?;
    let expected = n * 13 / 2;
    if counts.total() != expected {
        bail!(
            "workload wrote {} row changes, expected {expected} (did an UPDATE leave rows unchanged?)",
            counts.total()
        );
    }
    let end = db.master_status().await?;
    Ok((start, end, counts))
}

/// Our reader: this binary with `--child-ours`, under `/usr/bin/time -v`.
fn run_ours(time_bin: &Path, me: &Path, spec: &Spec) -> Result<Sample> {
    // `BENCH_OURS_PREFIX="valgrind --tool=callgrind"` runs our reader under a profiler.
    let prefix = std::env::var("BENCH_OURS_PREFIX").unwrap_or_default();
    let mut words = prefix.split_whitespace();
    let mut cmd = match words.next() {
        Some(program) => {
            let mut c = Command::new(program);
            c.args(words).arg(me);
            c
        }
        None => Command::new(me),
    };
    cmd.arg("--child-ours").arg(serde_json::to_string(spec)?);
    let (out, rss, _wall) = timed(time_bin, cmd, true)?;
    let last = out.lines().last().unwrap_or_default();
    let r: OursResult = serde_json::from_str(last)
        .with_context(|| format!("our reader printed no result: {out}"))?;
    if r.rows != spec.rows {
        bail!(
            "our reader saw {} row changes, expected {}",
            r.rows,
            spec.rows
        );
    }
    Ok(Sample {
        rows_per_sec: r.rows as f64 / r.secs,
        secs: r.secs,
        max_rss_kb: rss.max(r.vm_hwm_kb),
    })
}

/// `mariadb-binlog --read-from-remote-server --verbose` over the range, output to /dev/null; its
/// time is the process's wall time.
fn run_mariadb_binlog(time_bin: &Path, bin: &Path, spec: &Spec) -> Result<Sample> {
    let mut cmd = Command::new(bin);
    cmd.arg("--read-from-remote-server")
        .arg("--verbose")
        .arg(format!("--host={}", spec.host))
        .arg(format!("--port={}", spec.port))
        .arg(format!("--user={}", spec.user))
        .arg(format!("--password={}", spec.password))
        .arg(format!("--start-position={}", spec.start))
        .arg(format!("--stop-position={}", spec.end))
        .arg(&spec.file);
    let (_, rss, wall) = timed(time_bin, cmd, false)?;
    Ok(Sample {
        rows_per_sec: spec.rows as f64 / wall,
        secs: wall,
        max_rss_kb: rss,
    })
}

/// python-mysql-replication iterating every row event and touching every value; its time is
/// measured inside the script, from creating the reader to the end of the stream.
fn run_python(time_bin: &Path, python: &Path, target: &Path, spec: &Spec) -> Result<Sample> {
    let script = target.join("bench-venv").join("read_rows.py");
    std::fs::write(&script, PY_SCRIPT).with_context(|| format!("write {}", script.display()))?;
    let mut cmd = Command::new(python);
    cmd.arg(&script).arg(serde_json::to_string(spec)?);
    let (out, rss, _) = timed(time_bin, cmd, true)?;
    #[derive(Deserialize)]
    struct PyResult {
        rows: u64,
        values: u64,
        secs: f64,
    }
    let last = out.lines().last().unwrap_or_default();
    let r: PyResult = serde_json::from_str(last)
        .with_context(|| format!("the python reader printed no result: {out}"))?;
    if r.rows != spec.rows || r.values == 0 {
        bail!(
            "the python reader saw {} row changes ({} values), expected {}",
            r.rows,
            r.values,
            spec.rows
        );
    }
    Ok(Sample {
        rows_per_sec: r.rows as f64 / r.secs,
        secs: r.secs,
        max_rss_kb: rss,
    })
}

const PY_SCRIPT: &str = r#"import json, sys, time
from pymysqlreplication import BinLogStreamReader
from pymysqlreplication.row_event import DeleteRowsEvent, UpdateRowsEvent, WriteRowsEvent

spec = json.loads(sys.argv[1])
t0 = time.perf_counter()
stream = BinLogStreamReader(
    connection_settings={"host": spec["host"], "port": spec["port"],
                         "user": spec["user"], "passwd": spec["password"]},
    server_id=spec["server_id"], log_file=spec["file"], log_pos=spec["start"],
    resume_stream=True, blocking=False,
    only_events=[WriteRowsEvent, UpdateRowsEvent, DeleteRowsEvent])
rows = 0
values = 0
for ev in stream:
    if ev.packet.log_pos > spec["end"]:
        break
    for row in ev.rows:
        rows += 1
        for image in ("values", "before_values", "after_values"):
            if image in row:
                for v in row[image].values():
                    if v is not None:
                        values += 1
stream.close()
print(json.dumps({"rows": rows, "values": values, "secs": time.perf_counter() - t0}))
"#;

/// Runs `cmd` under `/usr/bin/time -v`; returns its stdout (if `capture`, else discarded),
/// peak RSS in KiB and wall time in seconds.
fn timed(time_bin: &Path, cmd: Command, capture: bool) -> Result<(String, u64, f64)> {
    let report = tempfile::NamedTempFile::new()?;
    let mut t = Command::new(time_bin);
    t.arg("-v").arg("-o").arg(report.path());
    t.arg(cmd.get_program()).args(cmd.get_args());
    t.stdout(if capture {
        Stdio::piped()
    } else {
        Stdio::null()
    });
    t.stderr(Stdio::piped());
    let out = t
        .output()
        .with_context(|| format!("run {:?}", cmd.get_program()))?;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    if !out.status.success() {
        bail!(
            "{:?} failed ({}): {}\n{}",
            cmd.get_program(),
            out.status,
            stdout.trim(),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    let report = std::fs::read_to_string(report.path())?;
    let field = |name: &str| {
        report
            .lines()
            .find_map(|l| l.trim().strip_prefix(name).map(|v| v.trim().to_string()))
            .with_context(|| format!("no `{name}` in /usr/bin/time output: {report}"))
    };
    let rss: u64 = field("Maximum resident set size (kbytes):")?.parse()?;
    let wall = parse_clock(&field("Elapsed (wall clock) time (h:mm:ss or m:ss):")?)?;
    Ok((stdout, rss, wall))
}

/// `h:mm:ss` or `m:ss.ss` as printed by GNU time.
fn parse_clock(s: &str) -> Result<f64> {
    let mut secs = 0.0;
    for part in s.split(':') {
        secs = secs * 60.0
            + part
                .parse::<f64>()
                .with_context(|| format!("bad time {s}"))?;
    }
    Ok(secs)
}

fn median(v: &[Sample]) -> Sample {
    let mut sorted = v.to_vec();
    sorted.sort_by(|a, b| a.rows_per_sec.total_cmp(&b.rows_per_sec));
    let mut rss: Vec<u64> = v.iter().map(|s| s.max_rss_kb).collect();
    rss.sort_unstable();
    Sample {
        max_rss_kb: rss[rss.len() / 2],
        ..sorted[sorted.len() / 2]
    }
}

/// `1234567.8` as `1 234 568`.
fn group(x: f64) -> String {
    let digits = format!("{:.0}", x);
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(' ');
        }
        out.push(c);
    }
    out
}

/// Creates (once) `dir` as a venv with python-mysql-replication; returns its interpreter.
fn python_venv(dir: &Path) -> Result<PathBuf> {
    let py = dir.join("bin").join("python");
    let installed = || {
        Command::new(&py)
            .arg("-c")
            .arg(format!(
                "import importlib.metadata as m, pymysqlreplication; assert m.version('mysql-replication') == '{PY_VERSION}'"
            ))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    if installed() {
        return Ok(py);
    }
    let base = std::env::var("BENCH_PYTHON").unwrap_or_else(|_| "python3".into());
    if !py.exists() {
        eprintln!("creating {} (python venv for the baseline)", dir.display());
        let out = Command::new(&base)
            .args(["-m", "venv"])
            .arg(dir)
            .output()
            .with_context(|| format!("run `{base} -m venv`: is python3 installed?"))?;
        if !out.status.success() {
            let _ = std::fs::remove_dir_all(dir);
            bail!(
                "`{base} -m venv {}` failed: install the Debian package `python3-venv` (or set BENCH_PYTHON): {}",
                dir.display(),
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
    }
    eprintln!("pip install {PY_PACKAGE} into {}", dir.display());
    let status = Command::new(&py)
        .args([
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            PY_PACKAGE,
        ])
        .status()
        .context("run pip")?;
    if !status.success() || !installed() {
        bail!("pip install {PY_PACKAGE} into {} failed", dir.display());
    }
    Ok(py)
}

fn machine_text(
    rt: &tokio::runtime::Runtime,
    spec: &Spec,
    workspace: &Path,
    mariadb_binlog: Option<&Path>,
    python: Option<&Path>,
) -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| {
            l.strip_prefix("model name")
                .map(|v| v.trim_start_matches([' ', '\t', ':']))
        })
        .unwrap_or("unknown")
        .to_string();
    let nproc = std::thread::available_parallelism().map_or(0, |n| n.get());
    let mem = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find_map(|l| l.strip_prefix("MemTotal:").map(|v| v.trim().to_string()))
        })
        .unwrap_or_default();
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let version = |p: &Path, arg: &str| {
        Command::new(p)
            .arg(arg)
            .output()
            .map(|o| {
                let mut s = String::from_utf8_lossy(&o.stdout).trim().to_string();
                if s.is_empty() {
                    s = String::from_utf8_lossy(&o.stderr).trim().to_string();
                }
                s
            })
            .unwrap_or_default()
    };
    let server = rt
        .block_on(async {
            let opts = mysql_async::OptsBuilder::default()
                .ip_or_hostname(spec.host.clone())
                .tcp_port(spec.port)
                .user(Some(spec.user.clone()))
                .pass(Some(spec.password.clone()))
                .prefer_socket(false);
            let mut c = mysql_async::Conn::new(opts).await?;
            let v: Option<String> = c.query_first("SELECT VERSION()").await?;
            c.disconnect().await?;
            Ok::<_, mysql_async::Error>(v.unwrap_or_default())
        })
        .unwrap_or_default();
    let git = |args: &[&str]| {
        Command::new("git")
            .arg("-C")
            .arg(workspace)
            .args(args)
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
            .unwrap_or_default()
    };
    let commit = git(&["rev-parse", "--short", "HEAD"]);
    let dirty = git(&[
        "status",
        "--porcelain",
        "--untracked-files=no",
        "--",
        "canal-server/src",
    ]);
    let tree = if dirty.is_empty() {
        format!("commit {commit}")
    } else {
        format!(
            "commit {commit} with uncommitted changes in {}",
            dirty
                .lines()
                .filter_map(|l| l.get(3..))
                .collect::<Vec<_>>()
                .join(", ")
        )
    };
    let mut s = format!(
        "- CPU: {model}, `nproc` = {nproc}; memory {mem}\n- load average at the end of the run: {}\n- source: MariaDB {server} (started by the test harness, loopback TCP)\n- tree: {tree}\n- rustc: {}\n",
        load.split_whitespace().take(3).collect::<Vec<_>>().join(" "),
        version(Path::new("rustc"), "--version"),
    );
    if let Some(b) = mariadb_binlog {
        s.push_str(&format!("- mariadb-binlog: {}\n", version(b, "--version")));
    }
    if let Some(p) = python {
        s.push_str(&format!(
            "- python: {}, mysql-replication {PY_VERSION} (pure-python, with PyMySQL)\n",
            version(p, "--version")
        ));
    }
    s
}

/// Other processes that used the CPU while the readers ran: a thread reads every process's CPU
/// time from `/proc` once a second and keeps those that used more than a fifth of a CPU in a
/// second, leaving out this process, its ancestors (`cargo bench`) and its descendants.
struct OtherWork {
    seen: std::sync::Arc<std::sync::Mutex<std::collections::BTreeMap<u32, String>>>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl OtherWork {
    fn watch() -> Self {
        use std::sync::atomic::Ordering;
        let seen = std::sync::Arc::new(std::sync::Mutex::new(std::collections::BTreeMap::new()));
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let thread = {
            let (seen, stop) = (seen.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut before = cpu_ticks();
                while !stop.load(Ordering::Relaxed) {
                    std::thread::sleep(Duration::from_secs(1));
                    let now = cpu_ticks();
                    let me = std::process::id();
                    for (pid, ticks) in &now {
                        let used = ticks.saturating_sub(before.get(pid).copied().unwrap_or(*ticks));
                        // Clock ticks are 1/100 s on Linux: 20 ticks is 20% of a CPU.
                        if used >= 20 && !descends_from(*pid, me) && !descends_from(me, *pid) {
                            let cmd = std::fs::read(format!("/proc/{pid}/cmdline"))
                                .map(|c| String::from_utf8_lossy(&c).replace('\0', " "))
                                .unwrap_or_default();
                            if let Ok(mut s) = seen.lock() {
                                s.insert(*pid, cmd.trim().chars().take(150).collect());
                            }
                        }
                    }
                    before = now;
                }
            })
        };
        OtherWork {
            seen,
            stop,
            thread: Some(thread),
        }
    }

    /// Stops sampling; returns what was seen, one `pid command` per line.
    fn finish(&mut self) -> String {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        self.seen
            .lock()
            .map(|s| {
                s.iter()
                    .map(|(pid, cmd)| format!("{pid} {cmd}"))
                    .collect::<Vec<_>>()
                    .join("\n")
            })
            .unwrap_or_default()
    }
}

/// User + system CPU ticks of every process.
fn cpu_ticks() -> std::collections::HashMap<u32, u64> {
    let mut out = std::collections::HashMap::new();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return out;
    };
    for entry in dir.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // utime and stime are fields 14 and 15; after the parenthesised name, 12 and 13.
        let fields: Vec<&str> = stat
            .rsplit_once(')')
            .map(|(_, rest)| rest.split_whitespace().collect())
            .unwrap_or_default();
        let tick = |i: usize| {
            fields
                .get(i)
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0)
        };
        out.insert(pid, tick(11) + tick(12));
    }
    out
}

/// Whether `pid` is `ancestor` or one of its descendants.
fn descends_from(mut pid: u32, ancestor: u32) -> bool {
    for _ in 0..64 {
        if pid == ancestor {
            return true;
        }
        if pid <= 1 {
            return false;
        }
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            return false;
        };
        // The parent pid is the second field after the parenthesised command name.
        let Some(ppid) = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
        else {
            return false;
        };
        pid = ppid;
    }
    false
}

/// Replaces the generated section of `path` (between the markers), creating the file if needed.
fn write_doc(path: &Path, section: &str) -> Result<()> {
    let old = std::fs::read_to_string(path).unwrap_or_default();
    let new = match (old.find(DOC_BEGIN), old.find(DOC_END)) {
        (Some(b), Some(e)) if b < e => {
            format!("{}{section}{}", &old[..b], &old[e + DOC_END.len()..])
        }
        _ => format!(
            "# Performance\n\n## Binlog decode throughput\n\nReproduce with:\n\n```sh\ncargo bench -p canal-server --bench decode\n```\n\n{section}\n"
        ),
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(path, new)?;
    Ok(())
}

/// The measured reader: a destination at the start position, consumed until every row change of
/// the range arrived. Prints an [`OursResult`] as JSON.
fn child_ours(spec: &str) -> Result<()> {
    let spec: Spec = serde_json::from_str(spec)?;
    let dir = tempfile::tempdir()?;
    let data_dir = dir.path().to_path_buf();
    // The consumer runs as a task on tokio's multi-thread runtime, as the server's and
    // otter-node's consumers do. BENCH_RUNTIME=current_thread runs everything on one thread,
    // BENCH_RUNTIME=block_on consumes on the thread outside the runtime (every entry then wakes
    // that thread).
    let mode = std::env::var("BENCH_RUNTIME").unwrap_or_default();
    let r = match mode.as_str() {
        "current_thread" => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?
            .block_on(consume(spec, data_dir))?,
        "block_on" => tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()?
            .block_on(consume(spec, data_dir))?,
        "" | "task" => tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()?
            .block_on(async { tokio::spawn(consume(spec, data_dir)).await })??,
        other => bail!("BENCH_RUNTIME={other}: expected task, current_thread or block_on"),
    };
    println!("{}", serde_json::to_string(&r)?);
    Ok(())
}

async fn consume(spec: Spec, data_dir: PathBuf) -> Result<OursResult> {
    let cfg = DestinationConfig {
        address: format!("{}:{}", spec.host, spec.port),
        username: spec.user.clone(),
        password: spec.password.clone(),
        slave_id: spec.server_id,
        journal_name: spec.file.clone(),
        position: Some(spec.start),
        ..DestinationConfig::default()
    };
    let full_decode = std::env::var_os("BENCH_CONSUMER_DECODE").is_some_and(|v| v == "1");
    let started = Instant::now();
    let mut h = Destination::spawn("bench", cfg, data_dir, None)?;
    let mut rows = 0u64;
    let mut entries = 0u64;
    while rows < spec.rows {
        let e = tokio::time::timeout(Duration::from_secs(60), h.recv())
            .await
            .map_err(|_| anyhow::anyhow!("no entry for 60 s ({:?})", h.status()))?
            .with_context(|| format!("destination ended: {:?}", h.status()))?;
        entries += 1;
        if e.entry_type() == EntryType::Rowdata
            && matches!(
                e.event_type(),
                EventType::Insert | EventType::Update | EventType::Delete
            )
        {
            rows += if full_decode {
                e.row_change().map_or(0, |rc| rc.row_datas.len() as u64)
            } else {
                e.row_count() as u64
            };
        }
    }
    let secs = started.elapsed().as_secs_f64();
    h.stop().await?;
    Ok(OursResult {
        rows,
        entries,
        secs,
        vm_hwm_kb: vm_hwm_kb(),
    })
}

fn vm_hwm_kb() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find_map(|l| {
                l.strip_prefix("VmHWM:")
                    .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            })
        })
        .unwrap_or(0)
}
