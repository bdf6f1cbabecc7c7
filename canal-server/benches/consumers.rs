//! Many consumers: four client ids on one destination, each consuming everything, against one
//! client alone, measured in the same run (issue #13: each of the four at least 0.8× the lone
//! rate, since an entry is encoded once and every client gets the same bytes).
//!
//! `cargo bench -p canal-server --bench consumers`:
//!
//! 1. starts a MariaDB through the test harness and writes the e2e bench's workload
//!    (`common::prepare_workload`, 1.3 M row changes by default);
//! 2. `BENCH_RUNS` times (default 3), interleaved:
//!    - **lone**: a fresh `canal-server` (the binary cargo built, `BENCH_SERVER_BIN` overrides it)
//!      with destination `example` at the workload's start; client 1001 connects, subscribes and
//!      loops `get_without_ack(BENCH_BATCH = 2000 units, 10 ms)` + `ack`, counting the rows of each
//!      ROWDATA entry without decoding them (`common::server::consume`, as the e2e bench's
//!      counting client), until every row change arrived;
//!    - **four**: a fresh server, `BENCH_CLIENTS` (default 4) client ids 1001.. each connect and
//!      subscribe, wait until all have, then consume everything concurrently (one tokio task each,
//!      in this process).
//!
//!    Each client's clock runs from spawning the server to its last row. Server CPU and peak RSS
//!    are read from /proc before it stops.
//! 3. reports medians over runs (the ratio of a run is its slowest client's rate ÷ that run's lone
//!    rate) and writes docs/PERFORMANCE.md between the `consumers:begin`/`consumers:end` markers
//!    when the workload has at least 1 M row changes.
//!
//! `BENCH_SERVER_PREFIX` puts a profiler before the server (e.g. `perf record -g -o /tmp/p.data`),
//! `BENCH_TABLE_ROWS` sizes the workload as in the decode bench.

mod common;

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{bail, Result};
use common::server::{consume, server_bin, Consumed, Server};
use common::*;
use harness::bench::{env_num, group, nproc, own_cpu_secs, tree_text, write_doc, OtherWork};

const DOC_BEGIN: &str =
    "<!-- consumers:begin (written by `cargo bench -p canal-server --bench consumers`) -->";
const DOC_END: &str = "<!-- consumers:end -->";
const HEADING: &str = "## Many consumers: several client ids on one destination (issue #13)\n\n\
Reproduce with:\n\n```sh\ncargo bench -p canal-server --bench consumers\n```";

/// The issue's target: each of the clients at least this fraction of the lone client's rate.
const TARGET: f64 = 0.8;

/// Processes that compete for the CPU, as `pgrep -af` patterns.
const OTHER_WORK: &str =
    "nextest|cargo|rustc|fuzz|read_rows|mariadb-binlog|canal-server|decode-|e2e-|pipeline-";

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("consumers bench failed: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// One server run: each client's rows/s, and the server's CPU seconds and peak RSS.
#[derive(Debug, Clone)]
struct RunSample {
    /// rows/s of each client, by client id order.
    rates: Vec<f64>,
    /// Seconds from spawn to the last row of the slowest client.
    secs: f64,
    server_cpu: f64,
    /// CPU seconds of the clients (this process during the run).
    client_cpu: f64,
    rss_kb: u64,
}

impl RunSample {
    fn slowest(&self) -> f64 {
        self.rates.iter().copied().fold(f64::INFINITY, f64::min)
    }
}

fn run() -> Result<()> {
    let (workspace, _target) = workspace_and_target()?;
    let table_rows: u64 = env_num("BENCH_TABLE_ROWS", 200_000)?;
    let runs: usize = env_num("BENCH_RUNS", 3)?;
    let batch: i32 = env_num("BENCH_BATCH", 2000)?;
    let clients: i16 = env_num("BENCH_CLIENTS", 4)?;
    if runs == 0 || !(2..=64).contains(&clients) {
        bail!("BENCH_RUNS must be > 0 and BENCH_CLIENTS in 2..=64");
    }
    if table_rows < 40 || table_rows % 4 != 0 {
        bail!("BENCH_TABLE_ROWS must be a multiple of 4, at least 40");
    }
    let server_bin = server_bin()?;
    let mut watch = OtherWork::pgrep("-af", OTHER_WORK);
    let tree = tree_text(&workspace, &["canal-server/src", "canal-client/src"]);

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

    let mut lone = Vec::new();
    let mut many = Vec::new();
    for run in 0..runs {
        let id = 9300 + run as u32 * 10;
        let s = rt.block_on(run_clients(&server_bin, &spec, id, 1, batch))?;
        eprintln!(
            "run {}: lone client   {:>10} rows/s  {:.2} s  server CPU {:.2} s  client CPU {:.2} s  peak RSS {:.1} MiB",
            run + 1,
            group(s.rates[0]),
            s.secs,
            s.server_cpu,
            s.client_cpu,
            s.rss_kb as f64 / 1024.0
        );
        let lone_rate = s.rates[0];
        lone.push(s);
        let s = rt.block_on(run_clients(&server_bin, &spec, id + 1, clients, batch))?;
        eprintln!(
            "run {}: {clients} clients  {} rows/s (slowest {:.2}× lone)  {:.2} s  server CPU {:.2} s  clients CPU {:.2} s  peak RSS {:.1} MiB",
            run + 1,
            s.rates
                .iter()
                .map(|r| group(*r))
                .collect::<Vec<_>>()
                .join(" / "),
            s.slowest() / lone_rate,
            s.secs,
            s.server_cpu,
            s.client_cpu,
            s.rss_kb as f64 / 1024.0
        );
        many.push(s);
    }
    let machine = machine_text(&rt, &spec, None, None, None);
    drop(db);
    let busy = watch.finish();
    if !busy.is_empty() {
        eprintln!("note: other work ran on this machine during the bench:\n{busy}");
    }

    let report = report(
        &spec,
        &counts,
        gen_secs,
        binlog_bytes,
        clients,
        &lone,
        &many,
    );
    eprintln!("{report}");
    if spec.rows < 1_000_000 {
        eprintln!("(docs/PERFORMANCE.md is written only by runs with ≥ 1 M row changes)");
        return Ok(());
    }
    let busy_note = if busy.is_empty() {
        format!(
            "- other work: none seen (`pgrep -af \"{OTHER_WORK}\"`, sampled every second \
             during the whole bench, found nothing but the bench's own processes)\n"
        )
    } else {
        format!(
            "- other work seen while the bench ran (`pgrep -af \"{OTHER_WORK}\"`, sampled \
             every second; the machine is shared, so the numbers are noisier, which is why each \
             ratio is against the lone client of the same run):\n\n```\n{busy}\n```\n"
        )
    };
    let section = format!(
        "{DOC_BEGIN}\n\n### Machine\n\n{machine}- tree: {tree}\n{busy_note}\n{report}\n{DOC_END}"
    );
    let path = workspace.join("docs").join("PERFORMANCE.md");
    write_doc(&path, DOC_BEGIN, DOC_END, HEADING, &section)?;
    eprintln!("wrote {}", path.display());
    Ok(())
}

/// The median of `v` by `key` (the upper one of an even count).
fn median_by<T: Clone>(v: &[T], key: impl Fn(&T) -> f64) -> T {
    let mut sorted = v.to_vec();
    sorted.sort_by(|a, b| key(a).total_cmp(&key(b)));
    sorted[sorted.len() / 2].clone()
}

fn report(
    spec: &Spec,
    counts: &Counts,
    gen_secs: f64,
    binlog_bytes: u64,
    clients: i16,
    lone: &[RunSample],
    many: &[RunSample],
) -> String {
    let ratios: Vec<f64> = lone
        .iter()
        .zip(many)
        .map(|(l, m)| m.slowest() / l.rates[0])
        .collect();
    let ratio = median_by(&ratios, |r| *r);
    let lone_m = median_by(lone, |s| s.rates[0]);
    let many_m = median_by(many, |s| s.slowest());
    let mut s = format!(
        "### Throughput\n\n{} row changes ({} inserts, {} updates, {} deletes) in {} transactions, \
         {:.1} MB of binlog, generated in {gen_secs:.0} s: the e2e bench's workload. {} runs, \
         interleaved (lone, then {clients} clients, each against a fresh canal-server with the e2e \
         bench's config: `batch_mode = \"MEMSIZE\"`, `store_max_entries` 65536, `store_max_bytes` \
         64 MiB), in one bench process and one MariaDB. Each client is \
         `canal_client::SimpleConnector` in the bench process (a tokio task each), counting rows \
         without decoding them: `get_without_ack(2000, 10 ms)` + `ack` until every row change \
         arrived; client ids 1001..{}, all subscribed before any consumes. A client's rate is \
         the row changes over the time from spawning the server to its last row (so it includes \
         the server's start-up). The ratio of a run is its slowest client ÷ the lone client of \
         the same run; the table gives medians over runs.\n\n",
        spec.rows,
        counts.inserts,
        counts.updates,
        counts.deletes,
        counts.transactions,
        binlog_bytes as f64 / 1e6,
        lone.len(),
        1000 + clients,
    );
    s.push_str(
        "| consumers | rows/s per client (median run) | slowest ÷ lone (median) | time (s) | server CPU (s) | clients CPU (s) | server peak RSS (MiB) |\n\
         | --- | ---: | ---: | ---: | ---: | ---: | ---: |\n",
    );
    s.push_str(&format!(
        "| 1 client (lone) | {} | 1.00× | {:.2} | {:.2} | {:.2} | {:.1} |\n",
        group(lone_m.rates[0]),
        lone_m.secs,
        lone_m.server_cpu,
        lone_m.client_cpu,
        lone_m.rss_kb as f64 / 1024.0
    ));
    s.push_str(&format!(
        "| **{clients} clients at once** | {} | **{ratio:.2}×** | {:.2} | {:.2} | {:.2} | {:.1} |\n\n",
        many_m
            .rates
            .iter()
            .map(|r| group(*r))
            .collect::<Vec<_>>()
            .join(" / "),
        many_m.secs,
        many_m.server_cpu,
        many_m.client_cpu,
        many_m.rss_kb as f64 / 1024.0
    ));
    s.push_str("Each run (rows/s; ratio = each client ÷ the lone client of that run):\n\n");
    for (k, (l, m)) in lone.iter().zip(many).enumerate() {
        s.push_str(&format!(
            "- run {}: lone {}; {clients} clients {} ({})\n",
            k + 1,
            group(l.rates[0]),
            m.rates
                .iter()
                .map(|r| group(*r))
                .collect::<Vec<_>>()
                .join(", "),
            m.rates
                .iter()
                .map(|r| format!("{:.2}×", r / l.rates[0]))
                .collect::<Vec<_>>()
                .join(", "),
        ));
    }
    // What the CPU allows: the run's work (server + clients) spread over every core, against the
    // lone client's wall time.
    let cores = nproc().max(1) as f64;
    let work = many_m.server_cpu + many_m.client_cpu;
    s.push_str(&format!(
        "\nCPU: the {clients}-client run (median) needed {work:.2} s of CPU (server {:.2} s + \
         clients {:.2} s); spread perfectly over this machine's {cores} cores that is at least \
         {:.2} s of wall time, so with nothing else running its slowest client could reach at most \
         {:.2}× the lone client's {:.2} s. The lone run needed {:.2} s (server {:.2} s + client \
         {:.2} s); each extra client added {:.2} s of server CPU.\n",
        many_m.server_cpu,
        many_m.client_cpu,
        work / cores,
        lone_m.secs / (work / cores),
        lone_m.secs,
        lone_m.server_cpu + lone_m.client_cpu,
        lone_m.server_cpu,
        lone_m.client_cpu,
        (many_m.server_cpu - lone_m.server_cpu) / f64::from(clients - 1),
    ));
    let met = ratio >= TARGET;
    s.push_str(&format!(
        "\nTarget (each of {clients} clients ≥ {TARGET}× a lone client's rate): **{}**: the \
         slowest of the {clients} clients got {ratio:.2}× the lone rate (median over {} runs; \
         per-run ratios {}).\n",
        if met { "met" } else { "not met" },
        ratios.len(),
        ratios
            .iter()
            .map(|r| format!("{r:.2}×"))
            .collect::<Vec<_>>()
            .join(", "),
    ));
    s
}

/// A fresh server; `n` clients (ids 1001..) connect and subscribe, then all consume everything at
/// once.
async fn run_clients(
    bin: &Path,
    spec: &Spec,
    server_id: u32,
    n: i16,
    batch: i32,
) -> Result<RunSample> {
    let spec = Spec {
        server_id,
        ..spec.clone()
    };
    let client_cpu0 = own_cpu_secs();
    let started = Instant::now();
    let mut server = Server::start(bin, &spec, &spec.file, spec.start)?;
    let mut conns = Vec::new();
    for k in 0..n {
        conns.push(server.client_as(1001 + k).await?);
    }
    let log: Arc<Path> = Arc::from(server.log());
    let tasks: Vec<_> = conns
        .into_iter()
        .map(|mut c| {
            let (log, want) = (log.clone(), spec.rows);
            tokio::spawn(async move {
                let seen = consume(&mut c, want, batch, false, started, &log).await;
                let _ = c.disconnect().await;
                seen
            })
        })
        .collect();
    let mut seen: Vec<Consumed> = Vec::new();
    for t in tasks {
        seen.push(t.await??);
    }
    let (rss_kb, server_cpu) = server.usage();
    let client_cpu = own_cpu_secs() - client_cpu0;
    server.stop()?;
    Ok(RunSample {
        rates: seen.iter().map(|c| c.rows as f64 / c.secs).collect(),
        secs: seen.iter().map(|c| c.secs).fold(0.0, f64::max),
        server_cpu,
        client_cpu,
        rss_kb,
    })
}
