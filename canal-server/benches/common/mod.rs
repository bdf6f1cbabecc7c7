//! Shared by the canal-server benches (`decode.rs`, `e2e.rs`): the workload written into a harness
//! MariaDB, the two baseline readers (`mariadb-binlog --read-from-remote-server --verbose` and
//! python-mysql-replication 1.0.17 in a venv cached under `target/bench-venv`), timing, medians
//! and the machine description. What the otter-node bench shares too (environment knobs, `/proc`,
//! the other-work watcher, the tree line, the docs/PERFORMANCE.md section writer) is in
//! `harness::bench`.
#![allow(dead_code)]

pub mod server;
pub mod tail;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use harness::bench::{cpu_and_load_lines, group, program_version};
use harness::{MariaDb, MariaDbOptions, RowMetadata};
use mysql_async::prelude::Queryable;
use serde::{Deserialize, Serialize};

pub const PY_PACKAGE: &str = "mysql-replication==1.0.17";
pub const PY_VERSION: &str = "1.0.17";

/// Starts the source MariaDB the way every bench does (full row metadata, one large binlog file,
/// a buffer pool that holds the workload).
pub async fn start_source() -> Result<MariaDb> {
    MariaDb::start_with(MariaDbOptions {
        row_metadata: RowMetadata::Full,
        extra_args: vec![
            "--innodb-buffer-pool-size=512M".into(),
            "--max-binlog-size=1073741824".into(),
            "--binlog-cache-size=16M".into(),
        ],
        ..MariaDbOptions::default()
    })
    .await
    .context("start MariaDB through the harness")
}

/// The workspace root and the cargo target directory.
pub fn workspace_and_target() -> Result<(PathBuf, PathBuf)> {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .context("workspace root")?
        .to_path_buf();
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace.join("target"));
    Ok((workspace, target))
}

/// What a reader process needs to know: where the source is and which range to read.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Spec {
    pub host: String,
    pub port: u16,
    pub user: String,
    pub password: String,
    pub file: String,
    pub start: u64,
    pub end: u64,
    pub rows: u64,
    pub server_id: u32,
}

/// One measured run of one reader.
#[derive(Debug, Clone, Copy)]
pub struct Sample {
    pub rows_per_sec: f64,
    pub secs: f64,
    pub max_rss_kb: u64,
}

pub fn show(s: &Sample) -> String {
    format!(
        "{:>12} rows/s  {:7.2} s  {:7.1} MiB",
        group(s.rows_per_sec),
        s.secs,
        s.max_rss_kb as f64 / 1024.0
    )
}

pub fn which(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(program))
        .find(|p| p.is_file())
}

/// Row changes the workload wrote, by kind.
#[derive(Debug, Default)]
pub struct Counts {
    pub inserts: u64,
    pub updates: u64,
    pub deletes: u64,
    pub transactions: u64,
}

impl Counts {
    pub fn total(&self) -> u64 {
        self.inserts + self.updates + self.deletes
    }
}

/// A written workload: what the readers are given, and what the report says about it.
pub struct Workload {
    /// The binlog range the readers read.
    pub spec: Spec,
    /// Row changes by kind.
    pub counts: Counts,
    /// Seconds the source took to write it.
    pub gen_secs: f64,
    /// Binlog bytes of the range.
    pub binlog_bytes: u64,
}

/// Writes the workload with [`generate`], checks it fits one binlog file, prints a summary line
/// and returns the range for the readers.
pub fn prepare_workload(rt: &tokio::runtime::Runtime, db: &MariaDb, n: u64) -> Result<Workload> {
    let user = db.replication_user().cloned().unwrap_or_default();
    let gen_started = Instant::now();
    let (start, end, counts) = rt.block_on(generate(db, n))?;
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
        user: user.user,
        password: user.password,
        file: start.file,
        start: start.position,
        end: end.position,
        rows: total,
        server_id: 9000,
    };
    Ok(Workload {
        spec,
        counts,
        gen_secs,
        binlog_bytes,
    })
}

/// Writes the workload: `n` rows inserted, updated twice, half deleted, `n` more inserted, all
/// remaining updated, a quarter of the ids deleted: 6.5 × `n` row changes, 10 000 rows per
/// statement (one autocommit transaction each).
pub async fn generate(
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

/// `mariadb-binlog --read-from-remote-server --verbose` over the range, output to /dev/null; its
/// time is the process's wall time.
pub fn run_mariadb_binlog(time_bin: &Path, bin: &Path, spec: &Spec) -> Result<Sample> {
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
pub fn run_python(time_bin: &Path, python: &Path, target: &Path, spec: &Spec) -> Result<Sample> {
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

pub const PY_SCRIPT: &str = r#"import json, sys, time
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
pub fn timed(time_bin: &Path, cmd: Command, capture: bool) -> Result<(String, u64, f64)> {
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
pub fn parse_clock(s: &str) -> Result<f64> {
    let mut secs = 0.0;
    for part in s.split(':') {
        secs = secs * 60.0
            + part
                .parse::<f64>()
                .with_context(|| format!("bad time {s}"))?;
    }
    Ok(secs)
}

pub fn median(v: &[Sample]) -> Sample {
    let mut sorted = v.to_vec();
    sorted.sort_by(|a, b| a.rows_per_sec.total_cmp(&b.rows_per_sec));
    let mut rss: Vec<u64> = v.iter().map(|s| s.max_rss_kb).collect();
    rss.sort_unstable();
    Sample {
        max_rss_kb: rss[rss.len() / 2],
        ..sorted[sorted.len() / 2]
    }
}

/// Creates (once) `dir` as a venv with python-mysql-replication; returns its interpreter.
pub fn python_venv(dir: &Path) -> Result<PathBuf> {
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

/// The machine lines of a report: CPU, memory, load, the source server's version, `tree` (the
/// commit measured) when given, rustc and the baselines' versions.
pub fn machine_text(
    rt: &tokio::runtime::Runtime,
    spec: &Spec,
    tree: Option<&str>,
    mariadb_binlog: Option<&Path>,
    python: Option<&Path>,
) -> String {
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
    let mut s = cpu_and_load_lines();
    s.push_str(&format!(
        "- source: MariaDB {server} (started by the test harness, loopback TCP)\n"
    ));
    if let Some(tree) = tree {
        s.push_str(&format!("- tree: {tree}\n"));
    }
    s.push_str(&format!(
        "- rustc: {}\n",
        program_version(Path::new("rustc"), "--version")
    ));
    if let Some(b) = mariadb_binlog {
        s.push_str(&format!(
            "- mariadb-binlog: {}\n",
            program_version(b, "--version")
        ));
    }
    if let Some(p) = python {
        s.push_str(&format!(
            "- python: {}, mysql-replication {PY_VERSION} (pure-python, with PyMySQL)\n",
            program_version(p, "--version")
        ));
    }
    s
}
