//! End to end: rows/s from a local MariaDB through the real `canal-server` binary to a Rust client
//! (`canal_client::SimpleConnector`) over TCP, against the two baselines of the decode bench
//! (`mariadb-binlog --read-from-remote-server --verbose` and python-mysql-replication 1.0.17)
//! reading the same binlog range in the same run; then commit-to-client latency at a steady
//! transaction rate.
//!
//! `cargo bench -p canal-server --bench e2e`:
//!
//! 1. starts a MariaDB through the test harness and writes the decode bench's workload (1.3 M row
//!    changes by default, see `common::generate`);
//! 2. `BENCH_RUNS` times (default 3), interleaved: starts `canal-server` (the binary cargo built
//!    for this bench, `CARGO_BIN_EXE_canal-server`; `BENCH_SERVER_BIN` overrides it) with
//!    destination `example` at the workload's start position, connects, subscribes and loops
//!    `get_without_ack(BENCH_BATCH units, 10 ms)` + `ack` until every row change arrived. Two
//!    clients, each against a fresh server: one counts the `row_datas` of each ROWDATA entry's
//!    RowChange without decoding the rows, one decodes every RowChange with prost as a Canal
//!    client does (`BENCH_CLIENT_DECODE=0` / `=1` runs only the one or the other). The clock runs
//!    from spawning the server to the last row at the client. Then each baseline over the same
//!    range;
//! 3. latency: a fresh server at the current binlog end, `BENCH_LAT_WRITERS` connections
//!    (default 4) inserting single-row transactions on a fixed schedule of `BENCH_LAT_TPS`
//!    (default 2000) per second for `BENCH_LAT_SECS` (default 20) s after a 2 s warm-up, each row
//!    carrying the writer's send time in µs; the consumer polls `get_without_ack(1000,
//!    BENCH_LAT_POLL_MS = 1 ms)` and records when each row arrived. Reported from the INSERT being
//!    sent (an upper bound: it includes the commit) and from the writer seeing the commit's OK.
//!
//! With `BENCH_TAIL=1`, each run also measures the `canal-client tail` command (the release binary,
//! `BENCH_TAIL_BIN`, default `$CARGO_TARGET_DIR/release/canal-client`; build it first with
//! `cargo build --release -p canal-client`) against a fresh server: JSON lines to /dev/null, default
//! batch size, `--poll-ms 10`, the clock from spawning the server to its metrics counting every
//! row change as written and acked. `BENCH_TAIL_BASE_BIN` measures a second build (e.g. the one
//! before a change) in the same runs, interleaved. The table gets a `tail ÷ reader` column.
//!
//! docs/PERFORMANCE.md gets its section (between the `e2e:begin`/`e2e:end` markers; other sections
//! are left alone) when the workload has at least 1 M row changes and both baselines ran. Knobs as
//! in the decode bench: `BENCH_TABLE_ROWS`, `BENCH_RUNS`, `BENCH_PYTHON`, `BENCH_SKIP_PYTHON=1`,
//! `BENCH_ONLY_OURS=1`, `BENCH_SKIP_LATENCY=1`, `BENCH_SKIP_THROUGHPUT=1`; `BENCH_SERVER_PREFIX`
//! puts a profiler command before the server (e.g. `perf record -g -o /tmp/perf.data`).

mod common;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use canal_protocol::entry::{EntryType, RowChange};
use common::server::{consume, server_bin, Server};
use common::tail::{default_tail_bin, TailProcess, TAIL_POLL_MS};
use common::*;
use harness::bench::{
    env_flag, env_num, group, nearest_rank, own_cpu_secs, root_opts, tree_text, write_doc,
    OtherWork,
};
use harness::MariaDb;
use mysql_async::prelude::Queryable;
use prost::Message as _;

const DOC_BEGIN: &str = "<!-- e2e:begin (written by `cargo bench -p canal-server --bench e2e`) -->";
const DOC_END: &str = "<!-- e2e:end -->";
const HEADING: &str = "## End to end: MariaDB → canal-server → Rust client over TCP\n\n\
Reproduce with:\n\n```sh\ncargo bench -p canal-server --bench e2e\n```";

/// Transactions written before latencies are recorded.
const LAT_WARMUP_SECS: u64 = 2;

fn main() -> ExitCode {
    // `cargo bench` passes `--bench`; a harness-less bench ignores it.
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("e2e bench: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// One run of the canal-server path.
#[derive(Debug, Clone, Copy)]
struct OursSample {
    sample: Sample,
    server_cpu: f64,
    client_cpu: f64,
    entries: u64,
    /// From spawning the server to the first batch at the client.
    first_batch: f64,
}

/// One run of `canal-client tail`.
#[derive(Debug, Clone, Copy)]
struct TailSample {
    sample: Sample,
    server_cpu: f64,
    tail_cpu: f64,
}

/// Latency percentiles in µs.
#[derive(Debug, Clone, Copy)]
struct Percentiles {
    p50: u64,
    p90: u64,
    p99: u64,
    p999: u64,
    max: u64,
}

#[derive(Debug)]
struct Latency {
    recorded: usize,
    achieved_tps: f64,
    late_sends: usize,
    from_send: Percentiles,
    from_commit: Percentiles,
    commit_rtt: Percentiles,
    server_cpu: f64,
}

fn run() -> Result<()> {
    let (workspace, target) = workspace_and_target()?;
    let table_rows: u64 = env_num("BENCH_TABLE_ROWS", 200_000)?;
    let runs: usize = env_num("BENCH_RUNS", 3)?;
    let batch: i32 = env_num("BENCH_BATCH", 2000)?;
    // Which clients run: both by default; BENCH_CLIENT_DECODE=0 only counts, =1 only decodes.
    let modes: Vec<bool> = match std::env::var("BENCH_CLIENT_DECODE").as_deref() {
        Ok("0") => vec![false],
        Ok("1") => vec![true],
        _ => vec![false, true],
    };
    let only_ours = env_flag("BENCH_ONLY_OURS");
    let skip_python = only_ours || env_flag("BENCH_SKIP_PYTHON");
    let skip_latency = env_flag("BENCH_SKIP_LATENCY");
    let skip_throughput = env_flag("BENCH_SKIP_THROUGHPUT");
    // `canal-client tail` builds to measure: the current one, then an optional base to compare.
    let mut tails: Vec<(&str, PathBuf)> = Vec::new();
    if env_flag("BENCH_TAIL") {
        let bin = std::env::var_os("BENCH_TAIL_BIN")
            .map(PathBuf::from)
            .unwrap_or_else(|| default_tail_bin(&target));
        tails.push(("`canal-client tail`", bin));
        if let Some(base) = std::env::var_os("BENCH_TAIL_BASE_BIN") {
            tails.push(("`canal-client tail` (base build)", PathBuf::from(base)));
        }
        for (_, bin) in &tails {
            if !bin.is_file() {
                bail!(
                    "{} is missing: build it with `cargo build --release -p canal-client`",
                    bin.display()
                );
            }
        }
    }
    if table_rows < 40 || table_rows % 4 != 0 {
        bail!("BENCH_TABLE_ROWS must be a multiple of 4, at least 40");
    }
    let server_bin = server_bin()?;

    let time_bin = Path::new("/usr/bin/time");
    if !time_bin.exists() && !only_ours {
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
    let mut watch = OtherWork::pgrep("-af", OTHER_WORK);
    // The binaries were built from the tree as it is now.
    let tree = tree_text(
        &workspace,
        &["canal-server/src", "canal-client/src", "canal-protocol/src"],
    );

    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let db = rt.block_on(start_source())?;
    let user = db.replication_user().cloned().unwrap_or_default();

    let mut throughput = None;
    if !skip_throughput {
        let Workload {
            spec,
            counts,
            gen_secs,
            binlog_bytes,
        } = prepare_workload(&rt, &db, table_rows)?;
        // ours[0]: the client counts rows; ours[1]: it decodes every RowChange.
        let mut ours: [Vec<OursSample>; 2] = [Vec::new(), Vec::new()];
        let mut binlog = Vec::new();
        let mut py = Vec::new();
        let mut tail_runs: Vec<Vec<TailSample>> = vec![Vec::new(); tails.len()];
        for run in 0..runs {
            for (k, &decode) in modes.iter().enumerate() {
                let id = 9100 + run as u32 * 10 + k as u32 * 2;
                let s = rt.block_on(run_ours(
                    &server_bin,
                    &Spec {
                        server_id: id,
                        ..spec.clone()
                    },
                    batch,
                    decode,
                ))?;
                eprintln!(
                    "run {}: canal-server {}  {}  server CPU {:.2} s, client CPU {:.2} s, {} entries, first batch after {:.2} s",
                    run + 1,
                    if decode { "(decode)" } else { "(count) " },
                    show(&s.sample),
                    s.server_cpu,
                    s.client_cpu,
                    s.entries,
                    s.first_batch
                );
                ours[usize::from(decode)].push(s);
            }
            for (k, (name, bin)) in tails.iter().enumerate() {
                let id = 9100 + run as u32 * 10 + 7 + k as u32;
                let s = run_tail(
                    &server_bin,
                    bin,
                    &Spec {
                        server_id: id,
                        ..spec.clone()
                    },
                )?;
                eprintln!(
                    "run {}: {name}  {}  server CPU {:.2} s, tail CPU {:.2} s",
                    run + 1,
                    show(&s.sample),
                    s.server_cpu,
                    s.tail_cpu
                );
                tail_runs[k].push(s);
            }
            let id = 9100 + run as u32 * 10 + 5;
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
        throughput = Some((
            spec,
            counts,
            gen_secs,
            binlog_bytes,
            ours,
            binlog,
            py,
            tail_runs,
        ));
    }

    let latency = if skip_latency {
        None
    } else {
        let tps: u64 = env_num("BENCH_LAT_TPS", 2000)?;
        let secs: u64 = env_num("BENCH_LAT_SECS", 20)?;
        let writers: usize = env_num("BENCH_LAT_WRITERS", 4)?;
        let poll_ms: u64 = env_num("BENCH_LAT_POLL_MS", 1)?;
        let l = rt.block_on(run_latency(
            &server_bin,
            &db,
            tps,
            secs,
            writers,
            Duration::from_millis(poll_ms),
        ))?;
        eprintln!("latency: {l:?}");
        Some((l, tps, secs, writers, poll_ms))
    };

    let machine_spec = throughput.as_ref().map(|t| t.0.clone()).unwrap_or(Spec {
        host: "127.0.0.1".into(),
        port: db.port(),
        user: user.user.clone(),
        password: user.password.clone(),
        file: String::new(),
        start: 0,
        end: 0,
        rows: 0,
        server_id: 0,
    });
    let machine = machine_text(
        &rt,
        &machine_spec,
        None,
        mariadb_binlog.as_deref(),
        python.as_deref(),
    );
    drop(db);

    let busy = watch.finish();
    if !busy.is_empty() {
        eprintln!("note: other work ran on this machine during the bench:\n{busy}");
    }
    let mut report = String::new();
    let mut complete = true;
    if let Some((spec, counts, gen_secs, binlog_bytes, ours, binlog, py, tail_runs)) = &throughput {
        let mut table = String::new();
        let mut header = String::from("| reader | rows/s (median) | time (s) | peak RSS (MiB) |");
        let mut align = String::from("| --- | ---: | ---: | ---: |");
        let ours_m: Vec<(bool, OursSample)> = [false, true]
            .into_iter()
            .filter(|d| !ours[usize::from(*d)].is_empty())
            .map(|d| (d, median_ours(&ours[usize::from(d)])))
            .collect();
        for (decode, _) in &ours_m {
            header.push_str(if *decode {
                " decoding client ÷ reader |"
            } else {
                " counting client ÷ reader |"
            });
            align.push_str(" ---: |");
        }
        // The current tail build's median, for its ratio column.
        let tail_m: Vec<(&str, TailSample)> = tails
            .iter()
            .zip(tail_runs)
            .filter(|(_, v)| !v.is_empty())
            .map(|((name, _), v)| (*name, median_tail(v)))
            .collect();
        if !tail_m.is_empty() {
            header.push_str(" tail ÷ reader |");
            align.push_str(" ---: |");
        }
        table.push_str(&format!("{header}\n{align}\n"));
        let mut rows: Vec<(String, Sample)> = ours_m
            .iter()
            .map(|(decode, o)| {
                let name = if *decode {
                    "**canal-server → Rust client, client decodes every RowChange**"
                } else {
                    "**canal-server → Rust client, client counts rows**"
                };
                (name.to_string(), o.sample)
            })
            .collect();
        for (name, t) in &tail_m {
            rows.push((
                format!("**canal-server → {name}, JSON lines to /dev/null**"),
                t.sample,
            ));
        }
        if !binlog.is_empty() {
            rows.push((
                "`mariadb-binlog --read-from-remote-server --verbose`".into(),
                median(binlog),
            ));
        }
        if !py.is_empty() {
            rows.push((format!("python-mysql-replication {PY_VERSION}"), median(py)));
        }
        for (name, s) in &rows {
            table.push_str(&format!(
                "| {name} | {} | {:.2} | {:.1} |",
                group(s.rows_per_sec),
                s.secs,
                s.max_rss_kb as f64 / 1024.0,
            ));
            let firsts = ours_m.iter().map(|(_, o)| o.sample);
            for ours in firsts.chain(tail_m.first().map(|(_, t)| t.sample)) {
                table.push_str(&format!(" {:.2}× |", ours.rows_per_sec / s.rows_per_sec));
            }
            table.push('\n');
        }
        let per_run = |name: &str, v: &[Sample]| {
            let list: Vec<String> = v.iter().map(|s| group(s.rows_per_sec)).collect();
            format!("- {name}: {}\n", list.join(", "))
        };
        let mut runs_text = String::new();
        let mut cpu = String::new();
        for (decode, o) in &ours_m {
            let samples: Vec<Sample> = ours[usize::from(*decode)]
                .iter()
                .map(|o| o.sample)
                .collect();
            let what = if *decode {
                "canal-server, decoding client"
            } else {
                "canal-server, counting client"
            };
            runs_text.push_str(&per_run(what, &samples));
            cpu.push_str(&format!(
                "- {what} (median run): server {:.2} s CPU, client {:.2} s CPU, {:.2} s wall \
                 (first batch at the client after {:.2} s), {} entries\n",
                o.server_cpu, o.client_cpu, o.sample.secs, o.first_batch, o.entries
            ));
        }
        for ((name, _), v) in tails.iter().zip(tail_runs) {
            let samples: Vec<Sample> = v.iter().map(|t| t.sample).collect();
            runs_text.push_str(&per_run(name, &samples));
        }
        for (name, t) in &tail_m {
            cpu.push_str(&format!(
                "- {name} (median run): server {:.2} s CPU, tail {:.2} s CPU, {:.2} s wall\n",
                t.server_cpu, t.tail_cpu, t.sample.secs
            ));
        }
        if !binlog.is_empty() {
            runs_text.push_str(&per_run("mariadb-binlog", binlog));
        }
        if !py.is_empty() {
            runs_text.push_str(&per_run("python-mysql-replication", py));
        }
        println!("\n{table}\nrows/s of each run:\n{runs_text}\nCPU time:\n{cpu}");
        let workload = format!(
            "{} row changes ({} inserts, {} updates, {} deletes) in {} transactions on one 9-column \
             table, {:.1} MB of binlog (`binlog_format=ROW`, `binlog_row_image=FULL`, \
             `binlog_row_metadata=FULL`, CRC32), generated in {gen_secs:.0} s: the decode bench's \
             workload. {runs} runs of each reader, interleaved, all in one bench process and one \
             MariaDB; the table shows the median run and the ratios are between medians of this \
             same run.",
            spec.rows,
            counts.inserts,
            counts.updates,
            counts.deletes,
            counts.transactions,
            *binlog_bytes as f64 / 1e6,
        );
        let how = format!(
            "canal-server is the release binary with destination `example` starting at the \
             workload's first event (`journal_name`/`position`), `batch_mode = \"MEMSIZE\"`, \
             `store_max_bytes` 64 MiB; the clock runs from spawning the process to the last row \
             change at the client, so it includes the server's start-up. The client is \
             `canal_client::SimpleConnector` in the bench process: `connect`, `subscribe`, then \
             `get_without_ack({batch}, 10 ms)` + `ack` until every row change arrived. The \
             counting client decodes each entry and counts the `row_datas` of each ROWDATA \
             entry's RowChange without decoding the rows; the decoding client decodes every \
             RowChange with prost (every column of every row, as a Canal client does) and \
             counts its non-null values. Peak RSS is the server's. The baselines are the decode \
             bench's: `mariadb-binlog` (wall time of the process, output to /dev/null) and \
             python-mysql-replication touching every value (time inside the script)."
        );
        let how = if tail_m.is_empty() {
            how
        } else {
            format!(
                "{how} `canal-client tail` is the release binary run as \
                 `canal-client tail --server … --destination example --poll-ms {TAIL_POLL_MS} \
                 --metrics-addr …` (default batch size, JSON lines to /dev/null) once the server \
                 accepts connections; the clock runs from spawning the server to the tail's \
                 `canal_client_rows_total` (rows written, flushed and acked; polled every \
                 {TAIL_POLL_MS} ms) reaching the workload's row changes; its peak RSS is the \
                 tail's."
            )
        };
        report.push_str(&format!(
            "### Throughput\n\n{workload}\n\n{how}\n\n{table}\nrows/s of each run:\n\n{runs_text}\nCPU time:\n\n{cpu}"
        ));
        complete &= spec.rows >= 1_000_000 && !binlog.is_empty() && !py.is_empty();
    } else {
        complete = false;
    }
    if let Some((l, tps, secs, writers, poll_ms)) = &latency {
        let row = |name: &str, p: &Percentiles| {
            format!(
                "| {name} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} |\n",
                p.p50 as f64 / 1000.0,
                p.p90 as f64 / 1000.0,
                p.p99 as f64 / 1000.0,
                p.p999 as f64 / 1000.0,
                p.max as f64 / 1000.0
            )
        };
        let mut t =
            String::from("| latency (ms) | p50 | p90 | p99 | p99.9 | max |\n| --- | ---: | ---: | ---: | ---: | ---: |\n");
        t.push_str(&row("INSERT sent → row at the client", &l.from_send));
        t.push_str(&row(
            "commit OK at the writer → row at the client",
            &l.from_commit,
        ));
        t.push_str(&row("(INSERT round trip at the writer)", &l.commit_rtt));
        let text = format!(
            "### Latency\n\n{} single-row INSERT transactions ({tps}/s scheduled for {secs} s after a \
             {LAT_WARMUP_SECS} s warm-up, {writers} writer connections, achieved {:.0} tx/s, {} \
             sent more than 1 ms behind schedule), each row carrying its send time; the client \
             polls `get_without_ack(1000, {poll_ms} ms)` (Canal's GET waits that long for a full \
             batch, then returns what it has) and stamps each batch on arrival. Writer and client \
             share one clock (same process). A row can reach the client before its writer has read \
             the OK, so the second line clamps at 0. canal-server used {:.2} s of CPU over the \
             run.\n\n{t}",
            l.recorded,
            l.achieved_tps,
            l.late_sends,
            l.server_cpu,
        );
        println!("\n{text}");
        report.push_str(&format!("\n{text}"));
    } else {
        complete = false;
    }

    if complete {
        let busy_note = if busy.is_empty() {
            format!(
                "- other work: none seen (`pgrep -af \"{OTHER_WORK}\"`, sampled every second \
                 during the whole bench, found nothing but the bench's own processes)\n"
            )
        } else {
            format!(
                "- other work seen while the bench ran (`pgrep -af \"{OTHER_WORK}\"`, sampled \
                 every second; the machine is shared, so the numbers are noisier):\n\n\
                 ```\n{busy}\n```\n"
            )
        };
        let section =
            format!("{DOC_BEGIN}\n\n### Machine\n\n{machine}- tree: {tree}\n{busy_note}\n{report}\n{DOC_END}");
        let path = workspace.join("docs").join("PERFORMANCE.md");
        write_doc(&path, DOC_BEGIN, DOC_END, HEADING, &section)?;
        eprintln!("wrote {}", path.display());
    } else {
        eprintln!(
            "(docs/PERFORMANCE.md is written only by full runs: ≥ 1 M row changes, both baselines, latency)"
        );
    }
    Ok(())
}

/// Processes that compete for the CPU, as `pgrep -af` patterns: builds, tests, fuzzers and
/// other benches.
const OTHER_WORK: &str =
    "nextest|cargo|rustc|fuzz|read_rows|mariadb-binlog|canal-server|decode-|e2e-";

fn median_tail(v: &[TailSample]) -> TailSample {
    let mut sorted = v.to_vec();
    sorted.sort_by(|a, b| a.sample.rows_per_sec.total_cmp(&b.sample.rows_per_sec));
    sorted[sorted.len() / 2]
}

fn median_ours(v: &[OursSample]) -> OursSample {
    let mut sorted = v.to_vec();
    sorted.sort_by(|a, b| a.sample.rows_per_sec.total_cmp(&b.sample.rows_per_sec));
    let samples: Vec<Sample> = v.iter().map(|o| o.sample).collect();
    OursSample {
        sample: median(&samples),
        ..sorted[sorted.len() / 2]
    }
}

/// Starts canal-server at the workload's start, then, once it accepts connections, the
/// `canal-client tail` binary `tail_bin` against it; the clock runs from spawning the server to
/// the tail's metrics counting every row change as written and acked.
fn run_tail(server_bin: &Path, tail_bin: &Path, spec: &Spec) -> Result<TailSample> {
    let started = Instant::now();
    let server = Server::start(server_bin, spec, &spec.file, spec.start)?;
    // The tail's reconnect backoff starts at 100 ms; do not make it pay for the server's start-up.
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(&server.addr).is_err() {
        if Instant::now() > deadline {
            bail!(
                "canal-server does not accept connections: {}",
                server.log_tail()
            );
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let dir = tempfile::tempdir()?;
    let mut tail = TailProcess::start(tail_bin, &server.addr, dir.path())?;
    tail.wait_rows(spec.rows, Duration::from_millis(TAIL_POLL_MS))?;
    let secs = started.elapsed().as_secs_f64();
    let (rss, tail_cpu) = tail.usage();
    let server_cpu = server.usage().1;
    drop(tail);
    server.stop()?;
    Ok(TailSample {
        sample: Sample {
            rows_per_sec: spec.rows as f64 / secs,
            secs,
            max_rss_kb: rss,
        },
        server_cpu,
        tail_cpu,
    })
}

/// Starts canal-server at the workload's start and consumes until every row change arrived.
async fn run_ours(bin: &Path, spec: &Spec, batch: i32, decode: bool) -> Result<OursSample> {
    let client_cpu0 = own_cpu_secs();
    let started = Instant::now();
    let mut server = Server::start(bin, spec, &spec.file, spec.start)?;
    let mut c = server.client().await?;
    let seen = consume(&mut c, spec.rows, batch, decode, started, server.log()).await?;
    let client_cpu = own_cpu_secs() - client_cpu0;
    eprintln!(
        "  (the client spent {:.2} s in get_without_ack: request, wait, reply, Entry decode)",
        seen.waiting.as_secs_f64()
    );
    let (rss, server_cpu) = server.usage();
    let _ = c.disconnect().await;
    server.stop()?;
    if decode && seen.values == 0 {
        bail!("the client decoded no values");
    }
    Ok(OursSample {
        sample: Sample {
            rows_per_sec: seen.rows as f64 / seen.secs,
            secs: seen.secs,
            max_rss_kb: rss,
        },
        server_cpu,
        client_cpu,
        entries: seen.entries,
        first_batch: seen.first_batch,
    })
}

fn percentiles(mut v: Vec<u64>) -> Percentiles {
    v.sort_unstable();
    let at = |q: f64| nearest_rank(&v, q);
    Percentiles {
        p50: at(0.50),
        p90: at(0.90),
        p99: at(0.99),
        p999: at(0.999),
        max: v.last().copied().unwrap_or(0),
    }
}

/// Commit-to-client latency at a steady rate of single-row transactions.
async fn run_latency(
    bin: &Path,
    db: &MariaDb,
    tps: u64,
    secs: u64,
    writers: usize,
    poll: Duration,
) -> Result<Latency> {
    if tps == 0 || writers == 0 {
        bail!("BENCH_LAT_TPS and BENCH_LAT_WRITERS must be > 0");
    }
    db.exec(
        "CREATE DATABASE IF NOT EXISTS bench;
         DROP TABLE IF EXISTS bench.lat;
         CREATE TABLE bench.lat (
           id BIGINT NOT NULL PRIMARY KEY,
           sent_us BIGINT NOT NULL,
           note VARCHAR(64) NOT NULL
         ) ENGINE=InnoDB;",
    )
    .await?;
    let start = db.master_status().await?;
    let user = db.replication_user().cloned().unwrap_or_default();
    let spec = Spec {
        host: "127.0.0.1".into(),
        port: db.port(),
        user: user.user,
        password: user.password,
        file: start.file.clone(),
        start: start.position,
        end: 0,
        rows: 0,
        server_id: 9900,
    };
    let mut server = Server::start(bin, &spec, &start.file, start.position)?;
    let mut c = server.client().await?;
    let cpu0 = server.usage().1;

    let warmup = LAT_WARMUP_SECS * tps;
    let total = (LAT_WARMUP_SECS + secs) * tps;
    let n = total as usize;
    let epoch = Instant::now();
    let us = move || epoch.elapsed().as_micros() as u64;
    let sent: Arc<Vec<AtomicU64>> = Arc::new((0..n).map(|_| AtomicU64::new(0)).collect());
    let committed: Arc<Vec<AtomicU64>> = Arc::new((0..n).map(|_| AtomicU64::new(0)).collect());
    let next = Arc::new(AtomicUsize::new(0));
    let late = Arc::new(AtomicUsize::new(0));
    let interval_ns = 1_000_000_000 / tps;
    // The schedule starts once every writer has connected.
    let schedule_start = Arc::new(std::sync::OnceLock::<Instant>::new());
    let ready = Arc::new(std::sync::Barrier::new(writers + 1));
    let mut threads = Vec::new();
    for _ in 0..writers {
        let (sent, committed, next, late, schedule_start, ready) = (
            sent.clone(),
            committed.clone(),
            next.clone(),
            late.clone(),
            schedule_start.clone(),
            ready.clone(),
        );
        let port = db.port();
        threads.push(std::thread::spawn(move || -> Result<()> {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            rt.block_on(async {
                let opts = root_opts(port);
                let conn = mysql_async::Conn::new(opts).await;
                ready.wait();
                let mut conn = conn?;
                let t0 = *schedule_start.get_or_init(Instant::now);
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= n {
                        break;
                    }
                    let slot = t0 + Duration::from_nanos(interval_ns * i as u64);
                    let now = Instant::now();
                    if slot > now {
                        // A plain thread sleep: µs resolution, unlike tokio's 1 ms timer.
                        std::thread::sleep(slot - now);
                    } else if now - slot > Duration::from_millis(1) {
                        late.fetch_add(1, Ordering::Relaxed);
                    }
                    let s = us();
                    sent[i].store(s, Ordering::Relaxed);
                    conn.query_drop(format!(
                        "INSERT INTO bench.lat VALUES ({i}, {s}, 'latency probe {i}')"
                    ))
                    .await?;
                    committed[i].store(us(), Ordering::Relaxed);
                }
                conn.disconnect().await?;
                Ok::<_, anyhow::Error>(())
            })
        }));
    }
    ready.wait();

    // The consumer: this task.
    let mut received = vec![0u64; n];
    let mut got = 0usize;
    let mut recv_sent = vec![0u64; n];
    let mut last_progress = Instant::now();
    while got < n {
        let m = c.get_without_ack(1000, Some(poll)).await?;
        let at = us();
        if m.is_empty() {
            if threads.iter().any(|t| t.is_finished())
                && last_progress.elapsed() > Duration::from_secs(5)
            {
                // A writer that stopped early says why.
                for t in threads.drain(..) {
                    if t.is_finished() {
                        t.join()
                            .map_err(|_| anyhow::anyhow!("a writer thread panicked"))??;
                    }
                }
            }
            if last_progress.elapsed() > Duration::from_secs(30) {
                bail!(
                    "latency: no rows for 30 s after {got} of {n}: {}",
                    server.log_tail()
                );
            }
            continue;
        }
        last_progress = Instant::now();
        for e in &m.entries {
            if e.entry_type() != EntryType::Rowdata {
                continue;
            }
            let rc = RowChange::decode(e.store_value.clone().unwrap_or_default())?;
            if rc.is_ddl() {
                continue;
            }
            for r in &rc.row_datas {
                let col = |name: &str| {
                    r.after_columns
                        .iter()
                        .find(|c| c.name() == name)
                        .and_then(|c| c.value().parse::<u64>().ok())
                };
                let (Some(id), Some(s)) = (col("id"), col("sent_us")) else {
                    continue;
                };
                let id = id as usize;
                if id < n && received[id] == 0 {
                    received[id] = at.max(1);
                    recv_sent[id] = s;
                    got += 1;
                }
            }
        }
        c.ack(m.id).await?;
    }
    for t in threads {
        t.join()
            .map_err(|_| anyhow::anyhow!("a writer thread panicked"))??;
    }
    let server_cpu = server.usage().1 - cpu0;
    let _ = c.disconnect().await;
    server.stop()?;

    let mut from_send = Vec::new();
    let mut from_commit = Vec::new();
    let mut rtt = Vec::new();
    for i in warmup as usize..n {
        let s = sent[i].load(Ordering::Relaxed);
        let k = committed[i].load(Ordering::Relaxed);
        if recv_sent[i] != s {
            bail!(
                "row {i} carried send time {} but the writer recorded {s}",
                recv_sent[i]
            );
        }
        from_send.push(received[i].saturating_sub(s));
        from_commit.push(received[i].saturating_sub(k));
        rtt.push(k.saturating_sub(s));
    }
    let first = sent[warmup as usize].load(Ordering::Relaxed);
    let last = committed[n - 1].load(Ordering::Relaxed);
    let achieved_tps = (n as u64 - warmup) as f64 / ((last - first) as f64 / 1e6);
    Ok(Latency {
        recorded: from_send.len(),
        achieved_tps,
        late_sends: late.load(Ordering::Relaxed),
        from_send: percentiles(from_send),
        from_commit: percentiles(from_commit),
        commit_rtt: percentiles(rtt),
        server_cpu,
    })
}
