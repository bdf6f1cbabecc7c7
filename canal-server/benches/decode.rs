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
//! The python venv is created by `common::python_venv`, cached under `target/bench-venv`.

mod common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use canal_protocol::entry::{EntryType, EventType};
use canal_server::config::DestinationConfig;
use canal_server::Destination;
use common::*;
use harness::bench::{
    descends_from, env_flag, env_num, group, tree_text, vm_hwm_kb, write_doc, OtherWork,
};
use serde::{Deserialize, Serialize};

const DOC_BEGIN: &str =
    "<!-- bench:begin (written by `cargo bench -p canal-server --bench decode`) -->";
const DOC_END: &str = "<!-- bench:end -->";
const HEADING: &str = "## Binlog decode throughput\n\n\
Reproduce with:\n\n```sh\ncargo bench -p canal-server --bench decode\n```";

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

/// What our reader process prints on its last stdout line.
#[derive(Debug, Serialize, Deserialize)]
struct OursResult {
    rows: u64,
    entries: u64,
    secs: f64,
    vm_hwm_kb: u64,
}

fn run() -> Result<()> {
    let (workspace, target) = workspace_and_target()?;
    let table_rows: u64 = env_num("BENCH_TABLE_ROWS", 200_000)?;
    let runs: usize = env_num("BENCH_RUNS", 3)?;
    let only_ours = env_flag("BENCH_ONLY_OURS");
    let skip_python = only_ours || env_flag("BENCH_SKIP_PYTHON");
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
    let db = rt.block_on(start_source())?;

    let Workload {
        spec,
        counts,
        gen_secs,
        binlog_bytes,
    } = prepare_workload(&rt, &db, table_rows)?;
    let total = counts.total();

    let me = std::env::current_exe()?;
    let mut watch = OtherWork::watch(cpu_users());
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
        Some(&tree_text(&workspace, &["canal-server/src"])),
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
        write_doc(&path, DOC_BEGIN, DOC_END, HEADING, &section)?;
        eprintln!("wrote {}", path.display());
    } else {
        eprintln!(
            "(docs/PERFORMANCE.md is written only by full runs: ≥ 1 M row changes, all readers)"
        );
    }
    Ok(())
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

/// Other processes that used the CPU while the readers ran, for [`OtherWork::watch`]: reads every
/// process's CPU time from `/proc` at each call and returns those that used more than a fifth of a
/// CPU since the previous call (nothing at the first), leaving out this process, its ancestors
/// (`cargo bench`) and its descendants.
fn cpu_users() -> impl FnMut() -> Vec<(u32, String)> + Send + 'static {
    let mut before: Option<HashMap<u32, u64>> = None;
    move || {
        let now = cpu_ticks();
        let me = std::process::id();
        let mut out = Vec::new();
        if let Some(before) = &before {
            for (pid, ticks) in &now {
                let used = ticks.saturating_sub(before.get(pid).copied().unwrap_or(*ticks));
                // Clock ticks are 1/100 s on Linux: 20 ticks is 20% of a CPU.
                if used >= 20 && !descends_from(*pid, me) && !descends_from(me, *pid) {
                    let cmd = std::fs::read(format!("/proc/{pid}/cmdline"))
                        .map(|c| String::from_utf8_lossy(&c).replace('\0', " "))
                        .unwrap_or_default();
                    out.push((*pid, cmd.trim().chars().take(150).collect()));
                }
            }
        }
        before = Some(now);
        out
    }
}

/// User + system CPU ticks of every process.
fn cpu_ticks() -> HashMap<u32, u64> {
    let mut out = HashMap::new();
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
