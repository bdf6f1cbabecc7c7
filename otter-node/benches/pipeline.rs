//! The otter pipeline end to end: a source MariaDB → one `otter-node` (Select, Extract, Transform
//! and Load on node 1, scheduled through a real ZooKeeper) → a target MariaDB, against the
//! target's own upsert ceiling measured in the same run.
//!
//! `cargo bench -p otter-node --bench pipeline`:
//!
//! 1. starts a source and a target MariaDB and a ZooKeeper through the test harness;
//! 2. the baseline: the target's upsert ceiling. The workload's row changes, written straight into
//!    a fresh target table of the same shape the way Load writes them (multi-row
//!    `INSERT … ON DUPLICATE KEY UPDATE` of 500 rows with every column for inserts and updates,
//!    `DELETE … WHERE id IN (…500 keys)` for deletes), one autocommit transaction per statement,
//!    on one connection and again on two (Load spreads the table over `BENCH_LOAD_CONNECTIONS`,
//!    default the shipped 4);
//! 3. for each of `BENCH_BATCH_SIZES` (entries per Select batch, default `200,4000,1000`; 1000
//!    is `config/channel.toml`'s; a `c` suffix, e.g. `1000c`, turns conflict detection on for the
//!    mapping (`conflict = "site_priority"`, as in a two-way channel) to measure what it costs
//!    against the same batch size without; a `/N` suffix, e.g. `1000/1`, runs Load with
//!    `load_connections` = N instead of `BENCH_LOAD_CONNECTIONS`; a `b` suffix, e.g. `1000b`,
//!    measures a backlog: the node is frozen (SIGSTOP) while the workload is written, and the
//!    clock runs from its SIGCONT, so the pipeline has every row change waiting, as the ceiling
//!    has its statements): a fresh table pair and channel (`BENCH_PARALLELISM` = 5, the
//!    shipped `config/channel.toml` otherwise) started at the source's binlog end, a fresh
//!    `otter-node` (the release binary cargo built for this bench), 1 000 single-row warm-up
//!    transactions waited for at the target, then the workload written on the source as fast as it takes it: `BENCH_ROWS`
//!    (200 000) inserts in 500-row statements, updates of 3/8 of them and deletes of 1/8 (5 000
//!    rows per statement): 1.5 × `BENCH_ROWS` row changes, then one sentinel row. The clock runs
//!    from the first write to the target being equal to the source (the sentinel's primary key
//!    looked up every 10 ms, then a CRC32 checksum of every column on both sides; `COUNT(*)` once
//!    a second only for the progress line);
//! 4. delay: on the last channel, `BENCH_LAT_RATE` (500) single-row inserts per second for
//!    `BENCH_LAT_SECS` (10) s, each row carrying its send time; the bench polls the target every
//!    5 ms and records when each row appears.
//!
//! CPU time of every process (node, both MariaDBs, ZooKeeper, the bench) is read from /proc around
//! each phase. Each ceiling is the median of `BENCH_CEILING_RUNS` (3) runs. `BENCH_PERF=/path/perf.data` attaches `perf record -g` to the node during the
//! throughput phase of the last batch size (`BENCH_PERF_CALLGRAPH=dwarf`: `--call-graph dwarf
//! -F 499` instead of `-g`); `BENCH_SKIP_LATENCY=1`; `BENCH_NODE_BIN` runs another otter-node
//! binary and `BENCH_TREE` then says what it was built from. docs/PERFORMANCE.md gets its section
//! (between the `otter:begin`/`otter:end` markers) from full runs (≥ 200 000 inserts, delay
//! measured).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use harness::bench::{
    cpu_and_load_lines, cpu_secs, env_flag, env_num, group, pgrep_others, program_version,
    tree_text, vm_hwm_kb_of, write_doc, OtherWork,
};
use harness::{MariaDb, MariaDbOptions, TestDir, ZooKeeper};
use mysql_async::prelude::Queryable;
use otter_node::model::{Channel, ChannelStatus, TableMapping};

mod common;
use common::*;

const DOC_BEGIN: &str =
    "<!-- otter:begin (written by `cargo bench -p otter-node --bench pipeline`) -->";
const DOC_END: &str = "<!-- otter:end -->";
const HEADING: &str = "## Otter pipeline: MariaDB → otter-node → MariaDB\n\n\
Reproduce with:\n\n```sh\ncargo bench -p otter-node --bench pipeline\n```";

/// Ids of the latency rows start here.
const LAT_BASE: u64 = 10_000_000;
/// The id of the row written after the workload (below `LAT_BASE`, above any workload id).
const SENTINEL: u64 = 9_000_000;
/// Warm-up rows: ids from `WARMUP_BASE`, one transaction each, before the clock starts.
const WARMUP_BASE: u64 = 8_000_000;
const WARMUP_ROWS: u64 = 1_000;
fn main() -> ExitCode {
    // `cargo bench` passes `--bench`; a harness-less bench ignores it.
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("pipeline bench: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Load's upsert statement shape for `table`.
fn upsert(table: &str, ids: impl Iterator<Item = u64>, updated: bool) -> String {
    let assign: Vec<String> = COLUMNS
        .split(", ")
        .filter(|c| *c != "id")
        .map(|c| format!("`{c}`=VALUES(`{c}`)"))
        .collect();
    let cols: Vec<String> = COLUMNS.split(", ").map(|c| format!("`{c}`")).collect();
    format!(
        "INSERT INTO {table} ({}) VALUES {} ON DUPLICATE KEY UPDATE {}",
        cols.join(","),
        values(ids, updated),
        assign.join(",")
    )
}

async fn count(conn: &mut mysql_async::Conn, table: &str) -> Result<u64> {
    let n: Option<u64> = conn
        .query_first(format!("SELECT COUNT(*) FROM {table}"))
        .await?;
    Ok(n.unwrap_or(0))
}

// ---------------------------------------------------------------------------------------------
// Baseline

struct Ceiling {
    connections: usize,
    secs: f64,
    rows_per_sec: f64,
    target_cpu: f64,
}

/// The workload's row changes written into `table` on the target as Load writes them.
fn ceiling_statements(table: &str, s: Shape) -> Vec<String> {
    let mut out = Vec::new();
    let mut from = 1;
    while from <= s.inserts {
        let to = (from + CHUNK - 1).min(s.inserts);
        out.push(upsert(table, from..=to, false));
        from = to + 1;
    }
    let mut from = 1;
    while from <= s.updates {
        let to = (from + CHUNK - 1).min(s.updates);
        out.push(upsert(table, from..=to, true));
        from = to + 1;
    }
    let mut from = s.first_deleted();
    while from <= s.inserts {
        let to = (from + CHUNK - 1).min(s.inserts);
        let ids: Vec<String> = (from..=to).map(|i| i.to_string()).collect();
        out.push(format!(
            "DELETE FROM {table} WHERE `id` IN ({})",
            ids.join(",")
        ));
        from = to + 1;
    }
    out
}

/// Runs the statements on `connections` connections: each phase (upserts of new rows, upserts of
/// existing rows, deletes) split round-robin, phases in order.
async fn run_ceiling(
    dst: &MariaDb,
    table: &str,
    s: Shape,
    connections: usize,
    dst_pid: u32,
) -> Result<Ceiling> {
    dst.exec(&format!(
        "DROP TABLE IF EXISTS {table}; CREATE TABLE {table} {CREATE}"
    ))
    .await?;
    let statements = ceiling_statements(table, s);
    let phase_len = [
        s.inserts.div_ceil(CHUNK) as usize,
        s.updates.div_ceil(CHUNK) as usize,
        s.deletes.div_ceil(CHUNK) as usize,
    ];
    let mut conns = Vec::new();
    for _ in 0..connections {
        conns.push(dst.conn().await?);
    }
    let cpu0 = cpu_secs(dst_pid);
    let started = Instant::now();
    let mut rest = &statements[..];
    for len in phase_len {
        let (phase, after) = rest.split_at(len);
        rest = after;
        let work = conns.iter_mut().enumerate().map(|(k, conn)| async move {
            for sql in phase.iter().skip(k).step_by(connections) {
                conn.query_drop(sql).await?;
            }
            Ok::<_, mysql_async::Error>(())
        });
        for r in futures::future::join_all(work).await {
            r?;
        }
    }
    let secs = started.elapsed().as_secs_f64();
    let target_cpu = cpu_secs(dst_pid) - cpu0;
    for c in conns {
        c.disconnect().await?;
    }
    let (n, _) = checksum(dst, table).await?;
    if n != s.remaining() {
        bail!(
            "ceiling: {table} holds {n} rows, expected {}",
            s.remaining()
        );
    }
    Ok(Ceiling {
        connections,
        secs,
        rows_per_sec: s.total() as f64 / secs,
        target_cpu,
    })
}

// ---------------------------------------------------------------------------------------------
// The pipeline

/// One pipeline measurement of `BENCH_BATCH_SIZES`.
#[derive(Debug, Clone, Copy)]
struct Variant {
    batch_size: u32,
    conflicts: bool,
    load_connections: u32,
    backlog: bool,
}

struct Throughput {
    batch_size: u32,
    /// Conflict detection was on.
    conflicts: bool,
    /// Load's `load_connections`.
    load_connections: u32,
    /// A backlog: the node was frozen while the workload was written; `secs` runs from its
    /// thaw.
    backlog: bool,
    secs: f64,
    write_secs: f64,
    rows_per_sec: f64,
    binlog_bytes: u64,
    cpu: Vec<(&'static str, f64)>,
    metrics: BTreeMap<String, f64>,
    /// (seconds since the first write, rows at the target) every second.
    progress: Vec<(f64, u64)>,
    /// otter-node's peak RSS over its run (throughput and, for the last, the delay phase), KiB.
    node_peak_rss_kb: u64,
}

struct Run {
    node: Node,
    source_table: String,
    target_table: String,
}

#[allow(clippy::too_many_arguments)]
async fn start_pipeline(
    bin: &Path,
    dir: &TestDir,
    src: &MariaDb,
    dst: &MariaDb,
    zk: &ZooKeeper,
    k: u32,
    batch_size: u32,
    (parallelism, load_connections): (u32, u32),
    conflicts: bool,
) -> Result<Run> {
    let source_table = format!("bench.t{k}");
    let target_table = format!("bench_dr.t{k}");
    src.exec(&format!("CREATE TABLE {source_table} {CREATE}"))
        .await?;
    dst.exec(&format!("CREATE TABLE {target_table} {CREATE}"))
        .await?;
    let mut c = Channel::from_toml(include_str!("../../config/channel.toml"))?;
    let user = src.replication_user().cloned().unwrap_or_default();
    let start = src.master_status().await?;
    c.id = k;
    c.name = format!("bench-{k}");
    let p = &mut c.pipeline;
    p.id = k;
    p.source.address = src.addr().to_string();
    p.source.username = user.user;
    p.source.password = user.password;
    p.source.slave_id = 3300 + k;
    p.source.journal_name = start.file;
    p.source.position = Some(start.position);
    p.target.address = dst.addr().to_string();
    p.target.username = "root".into();
    p.target.password = String::new();
    p.select_nodes = vec![1];
    p.load_nodes = vec![1];
    p.batch_size = batch_size;
    p.parallelism = parallelism;
    p.load_connections = load_connections;
    p.tables = vec![TableMapping {
        source: format!("bench\\.t{k}"),
        target_schema: Some("bench_dr".into()),
        target_table: None,
        include_columns: Vec::new(),
        exclude_columns: Vec::new(),
        weight: 1,
        conflict: conflicts.then_some(otter_node::model::ConflictPolicy::SitePriority),
        version_column: None,
    }];
    c.status = ChannelStatus::Started;
    c.validate()?;
    let client = zk.client(Duration::from_secs(10)).await?;
    zk_coord::put_persistent(&client, &zk_coord::otter_paths::channel(c.id), &c.to_json()).await?;
    let mut node = Node::start(bin, dir, 1, zk, &format!("b{batch_size}"))?;
    // Running once the node holds the mainstem and the warm-up rows went through.
    let deadline = Instant::now() + Duration::from_secs(60);
    let mainstem = zk_coord::otter_paths::mainstem(c.id, c.pipeline.id);
    while client.check_stat(&mainstem).await?.is_none() {
        if let Some(st) = node.process.try_exit_status() {
            bail!("otter-node exited with {st}: {}", node.log_tail());
        }
        if Instant::now() > deadline {
            bail!("no mainstem after 60 s: {}", node.log_tail());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Warm-up: single-row transactions, each its own batch, so ZooKeeper's JVM has compiled its
    // request path (a production ensemble is warm; a fresh JVM spent about 0.6 ms of CPU per
    // request in the first seconds) and every stage has run before the clock starts.
    let mut conn = src.conn().await?;
    for i in 0..WARMUP_ROWS {
        conn.query_drop(format!(
            "INSERT INTO {source_table} ({COLUMNS}) VALUES {}",
            tuple(WARMUP_BASE + i, false)
        ))
        .await?;
    }
    conn.disconnect().await?;
    let last = format!(
        "SELECT COUNT(*) FROM {target_table} WHERE id = {}",
        WARMUP_BASE + WARMUP_ROWS - 1
    );
    let mut conn = dst.conn().await?;
    while conn.query_first::<u64, _>(last.as_str()).await? != Some(1) {
        if Instant::now() > deadline {
            bail!(
                "the warm-up rows did not arrive in 60 s: {}",
                node.log_tail()
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    conn.disconnect().await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    Ok(Run {
        node,
        source_table,
        target_table,
    })
}

#[allow(clippy::too_many_arguments)]
async fn measure_throughput(
    run: &Run,
    src: &MariaDb,
    dst: &MariaDb,
    s: Shape,
    batch_size: u32,
    pids: &Pids,
    perf: Option<&Path>,
    backlog: bool,
) -> Result<Throughput> {
    let perf_child = match perf {
        Some(out) => Some(
            Command::new("perf")
                .arg("record")
                .args(match std::env::var("BENCH_PERF_CALLGRAPH") {
                    Ok(mode) => vec!["--call-graph".to_string(), mode, "-F".into(), "499".into()],
                    Err(_) => vec!["-g".to_string()],
                })
                .args(["-q", "-p", &run.node.pid().to_string(), "-o"])
                .arg(out)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .context("run perf")?,
        ),
        None => None,
    };
    if perf_child.is_some() {
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let m0 = run.node.metrics().await;
    // A backlog: the workload is written while the node is frozen, and the clock starts when
    // it thaws (the node's ZooKeeper sessions outlive the freeze: 10 s).
    let mut written_before = None;
    if backlog {
        let signal = |sig: &str| {
            Command::new("kill")
                .args([sig, &run.node.pid().to_string()])
                .status()
                .context("kill")
        };
        signal("-STOP")?;
        let t = Instant::now();
        let written = write_workload(src, &run.source_table, s, 0, SENTINEL).await;
        let secs = t.elapsed().as_secs_f64();
        signal("-CONT")?;
        written_before = Some((written?, secs));
    }
    let cpu0 = pids.snapshot();
    let started = Instant::now();
    let writer = async {
        match written_before {
            Some((bytes, _)) => Ok(bytes),
            None => write_workload(src, &run.source_table, s, 0, SENTINEL).await,
        }
    };
    let poller = async {
        let mut conn = dst.conn().await?;
        let mut progress = Vec::new();
        let mut next_sample = 0.0;
        let mut last_change = Instant::now();
        let mut last = u64::MAX;
        let sentinel = format!(
            "SELECT COUNT(*) FROM {} WHERE id = {SENTINEL}",
            run.target_table
        );
        loop {
            let t = started.elapsed().as_secs_f64();
            // COUNT(*) scans the table: once a second, for the progress line only.
            if t >= next_sample {
                let n = count(&mut conn, &run.target_table).await?;
                progress.push((t, n));
                next_sample += 1.0;
                if n != last {
                    last = n;
                    last_change = Instant::now();
                }
            }
            let arrived: Option<u64> = conn.query_first(sentinel.as_str()).await?;
            if arrived == Some(1) {
                let Some((a, b)) = settled(src, &run.source_table, dst, &run.target_table).await?
                else {
                    conn.disconnect().await?;
                    return Ok::<_, anyhow::Error>((t, progress));
                };
                bail!(
                    "the sentinel arrived but the target differs from the source \
                     (source {a:?}, target {b:?})"
                );
            }
            if last_change.elapsed() > Duration::from_secs(120) {
                bail!("the target stalled at {last} rows: {}", run.node.log_tail());
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    };
    let (written, applied) = tokio::join!(
        async {
            let r = writer.await;
            (r, started.elapsed().as_secs_f64())
        },
        poller
    );
    let (binlog_bytes, write_secs) = match written_before {
        Some((_, secs)) => (written.0?, secs),
        None => (written.0?, written.1),
    };
    let (secs, progress) = applied?;
    let cpu = pids.since(&cpu0);
    let m1 = run.node.metrics().await;
    if let Some(mut child) = perf_child {
        let _ = Command::new("kill")
            .args(["-INT", &child.id().to_string()])
            .status();
        let _ = child.wait();
    }
    let metrics = m1
        .into_iter()
        .map(|(k, v)| {
            let before = m0.get(&k).copied().unwrap_or(0.0);
            (k, v - before)
        })
        .collect();
    Ok(Throughput {
        batch_size,
        conflicts: false,
        load_connections: 0,
        backlog,
        secs,
        write_secs,
        rows_per_sec: s.total() as f64 / secs,
        binlog_bytes,
        cpu,
        metrics,
        progress,
        node_peak_rss_kb: 0,
    })
}

// ---------------------------------------------------------------------------------------------
// Delay

// ---------------------------------------------------------------------------------------------
// Machine, other work, the doc

/// Processes that compete for the CPU, matched on the process name (`pgrep -a`): builds, tests,
/// fuzzers, other benches.
const OTHER_WORK: &str = "nextest|cargo|rustc|fuzz|canal-server|e2e-|decode-";

async fn machine_text(db: &MariaDb) -> String {
    let version: String = db
        .query::<String>("SELECT VERSION()")
        .await
        .ok()
        .and_then(|v| v.into_iter().next())
        .unwrap_or_default();
    format!(
        "{}- source and target: MariaDB {version}, each its own server started by the test harness \
         (loopback TCP, `innodb_flush_log_at_trx_commit=2`, `sync_binlog=0`, binlog on, 512 MiB \
         buffer pool); ZooKeeper: one standalone server from the harness\n- rustc: {}\n",
        cpu_and_load_lines(),
        program_version(Path::new("rustc"), "--version"),
    )
}

// ---------------------------------------------------------------------------------------------

fn run() -> Result<()> {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .context("workspace root")?
        .to_path_buf();
    let inserts: u64 = env_num("BENCH_ROWS", 200_000)?;
    if inserts < 8_000 || inserts % 8 != 0 {
        bail!("BENCH_ROWS must be a multiple of 8, at least 8000");
    }
    let shape = Shape::new(inserts);
    let parallelism: u32 = env_num("BENCH_PARALLELISM", 5)?;
    let load_connections: u32 = env_num(
        "BENCH_LOAD_CONNECTIONS",
        otter_node::model::DEFAULT_LOAD_CONNECTIONS,
    )?;
    // `1000`, `1000c` (conflict detection), `1000/1` (that many Load connections).
    let batch_sizes: Vec<Variant> = std::env::var("BENCH_BATCH_SIZES")
        .unwrap_or_else(|_| "200,4000,1000b,1000".into())
        .split(',')
        .map(|v| {
            let (v, connections) = match v.trim().split_once('/') {
                Some((v, n)) => (v, n.parse().context("BENCH_BATCH_SIZES: connections")?),
                None => (v.trim(), load_connections),
            };
            let (v, backlog) = match v.strip_suffix('b') {
                Some(v) => (v, true),
                None => (v, false),
            };
            let (n, c) = match v.strip_suffix('c') {
                Some(n) => (n, true),
                None => (v, false),
            };
            Ok(Variant {
                batch_size: n.parse().context("BENCH_BATCH_SIZES")?,
                conflicts: c,
                load_connections: connections,
                backlog,
            })
        })
        .collect::<Result<_>>()?;
    let lat_rate: u64 = env_num("BENCH_LAT_RATE", 500)?;
    let lat_secs: u64 = env_num("BENCH_LAT_SECS", 10)?;
    let skip_latency = env_flag("BENCH_SKIP_LATENCY");
    let ceiling_runs: usize = env_num("BENCH_CEILING_RUNS", 3)?;
    if ceiling_runs == 0 {
        bail!("BENCH_CEILING_RUNS must be at least 1");
    }
    let perf = std::env::var_os("BENCH_PERF").map(PathBuf::from);
    let bin = std::env::var_os("BENCH_NODE_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_otter-node")));
    let mut watch = OtherWork::pgrep("-a", OTHER_WORK);
    let at_start = pgrep_others("-a", OTHER_WORK);
    let tree = std::env::var("BENCH_TREE").ok().unwrap_or_else(|| {
        tree_text(
            &workspace,
            &[
                "otter-node/src",
                "canal-server/src",
                "canal-protocol/src",
                "zk-coord/src",
            ],
        )
    });

    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let opts = MariaDbOptions {
        extra_args: vec![
            "--innodb-buffer-pool-size=512M".into(),
            "--innodb-log-file-size=256M".into(),
            "--max-binlog-size=1073741824".into(),
            "--binlog-cache-size=16M".into(),
        ],
        ..MariaDbOptions::default()
    };
    let (src, dst, zk) = rt.block_on(async {
        let src = MariaDb::start_with(opts.clone()).await?;
        let dst = MariaDb::start_with(opts).await?;
        let zk = ZooKeeper::start().await?;
        src.exec("CREATE DATABASE bench").await?;
        dst.exec("CREATE DATABASE bench_dr").await?;
        Ok::<_, anyhow::Error>((src, dst, zk))
    })?;
    let dir = TestDir::new("otter-bench")?;
    let dst_pid = dst.pid().unwrap_or(0);

    eprintln!(
        "workload: {} row changes ({} inserts, {} updates, {} deletes)",
        shape.total(),
        shape.inserts,
        shape.updates,
        shape.deletes
    );
    // A 2 s measurement moves by ±10% on this kind of machine: each ceiling is the median of
    // `ceiling_runs` runs, 1- and 2-connection runs interleaved.
    let mut runs: [Vec<Ceiling>; 2] = [Vec::new(), Vec::new()];
    for _ in 0..ceiling_runs {
        for (i, connections) in [1usize, 2].into_iter().enumerate() {
            let c = rt.block_on(run_ceiling(
                &dst,
                &format!("bench_dr.ceiling{i}"),
                shape,
                connections,
                dst_pid,
            ))?;
            eprintln!(
                "ceiling, {connections} connection(s): {} rows/s ({:.2} s, target {:.1} s CPU)",
                group(c.rows_per_sec),
                c.secs,
                c.target_cpu
            );
            runs[i].push(c);
        }
    }
    let mut ceilings = Vec::new();
    let mut ceiling_rates = Vec::new();
    for mut r in runs {
        r.sort_by(|a, b| a.secs.total_cmp(&b.secs));
        ceiling_rates.push(
            r.iter()
                .map(|c| group(c.rows_per_sec))
                .collect::<Vec<_>>()
                .join(", "),
        );
        let median = r.swap_remove(r.len() / 2);
        ceilings.push(median);
    }
    rt.block_on(dst.exec("DROP TABLE bench_dr.ceiling0; DROP TABLE bench_dr.ceiling1"))?;

    let mut results = Vec::new();
    let mut delay = None;
    let mut last_run = None;
    for (i, v) in batch_sizes.iter().enumerate() {
        let (batch_size, conflicts, load_connections) =
            (v.batch_size, v.conflicts, v.load_connections);
        let k = i as u32 + 1;
        if let Some(prev) = last_run.take() {
            stop_run(&rt, &zk, prev, k - 1)?;
        }
        let run = rt.block_on(start_pipeline(
            &bin,
            &dir,
            &src,
            &dst,
            &zk,
            k,
            batch_size,
            (parallelism, load_connections),
            conflicts,
        ))?;
        let pids = Pids(vec![
            ("otter-node", run.node.pid()),
            ("source MariaDB", src.pid().unwrap_or(0)),
            ("target MariaDB", dst_pid),
            ("ZooKeeper", zk.members()[0].pid().unwrap_or(0)),
            ("bench (writer, poller)", std::process::id()),
        ]);
        let last = i + 1 == batch_sizes.len();
        let t = rt.block_on(measure_throughput(
            &run,
            &src,
            &dst,
            shape,
            batch_size,
            &pids,
            perf.as_deref().filter(|_| last),
            v.backlog,
        ))?;
        let mut t = t;
        t.conflicts = conflicts;
        t.load_connections = load_connections;
        eprintln!(
            "pipeline, batch_size {batch_size}, load_connections {load_connections}{}{}: {} rows/s ({:.2} s; source written in {:.2} s); {}; {:?}",
            if conflicts { ", conflict detection" } else { "" },
            if v.backlog { ", backlog" } else { "" },
            group(t.rows_per_sec),
            t.secs,
            t.write_secs,
            cpu_text(&t.cpu, t.secs),
            t.metrics
        );
        results.push(t);
        if last && !skip_latency {
            // What the pipeline costs with nothing to carry (sessions' pings, leases, cursor
            // flushes), over 5 s: the floor under the delay phase's figures.
            let (cpu0, zk_before) = (pids.snapshot(), zk.members()[0].mntr().unwrap_or_default());
            std::thread::sleep(Duration::from_secs(5));
            let zk_after = zk.members()[0].mntr().unwrap_or_default();
            let per_sec = |k| mntr_delta(&zk_before, &zk_after, k).unwrap_or(0.0) / 5.0;
            eprintln!(
                "idle for 5 s: {}; ZooKeeper {:.0} requests/s received, {:.0} packets/s sent",
                cpu_text(&pids.since(&cpu0), 5.0),
                per_sec("zk_packets_received"),
                per_sec("zk_packets_sent")
            );
            let m0 = rt.block_on(run.node.metrics());
            let mut d = rt.block_on(measure_delay(
                DelayTables {
                    source: &run.source_table,
                    target: &run.target_table,
                    base: LAT_BASE,
                    log_tail: &|| run.node.log_tail(),
                },
                &src,
                &dst,
                lat_rate,
                lat_secs,
                &pids,
            ))?;
            d.zk = Some(format!(
                "{}; {}",
                zk_activity(
                    &zk_after,
                    &zk.members()[0].mntr().unwrap_or_default(),
                    &m0,
                    &rt.block_on(run.node.metrics()),
                ),
                zk_against_node(&d.cpu)
            ));
            eprintln!(
                "delay: {} rows at {:.0}/s: p50 {:.1} ms, p90 {:.1} ms, p99 {:.1} ms, max {:.1} ms; {}; {}",
                d.rows,
                d.achieved,
                d.from_send.p50,
                d.from_send.p90,
                d.from_send.p99,
                d.from_send.max,
                cpu_text(&d.cpu, d.wall),
                d.zk.as_deref().unwrap_or("")
            );
            delay = Some(d);
        }
        if let Some(t) = results.last_mut() {
            t.node_peak_rss_kb = vm_hwm_kb_of(run.node.pid());
        }
        last_run = Some(run);
    }
    let machine = rt.block_on(machine_text(&src));
    if let Some(prev) = last_run.take() {
        stop_run(&rt, &zk, prev, batch_sizes.len() as u32)?;
    }
    let at_end = pgrep_others("-a", OTHER_WORK);
    let busy = watch.finish();
    drop((src, dst, zk));

    // The report.
    let base = &ceilings[0];
    let mut table = String::from(
        "| writer | rows/s | time (s) | ÷ ceiling, 1 connection | ÷ ceiling, 2 connections |\n\
         | --- | ---: | ---: | ---: | ---: |\n",
    );
    for c in &ceilings {
        table.push_str(&format!(
            "| target ceiling: Load's statements straight into the target, {} connection{} | {} | {:.2} | {:.2}× | {:.2}× |\n",
            c.connections,
            if c.connections == 1 { "" } else { "s" },
            group(c.rows_per_sec),
            c.secs,
            c.rows_per_sec / base.rows_per_sec,
            c.rows_per_sec / ceilings[1].rows_per_sec,
        ));
    }
    for t in &results {
        table.push_str(&format!(
            "| **otter pipeline, `batch_size` = {}, `parallelism` = {parallelism}, `load_connections` = {}{}{}** | {} | {:.2} | {:.2}× | {:.2}× |\n",
            t.batch_size,
            t.load_connections,
            if t.conflicts { ", conflict detection (`site_priority`)" } else { "" },
            if t.backlog { ", a backlog (node frozen while the workload was written)" } else { "" },
            group(t.rows_per_sec),
            t.secs,
            t.rows_per_sec / base.rows_per_sec,
            t.rows_per_sec / ceilings[1].rows_per_sec,
        ));
    }
    let mut details = String::new();
    for (c, rates) in ceilings.iter().zip(&ceiling_rates) {
        details.push_str(&format!(
            "- ceiling, {} connection(s): target MariaDB {:.1} s CPU in {:.2} s (the median of \
             {ceiling_runs} runs: {rates} rows/s)\n",
            c.connections, c.target_cpu, c.secs
        ));
    }
    for t in &results {
        let m = |k: &str| t.metrics.get(k).copied().unwrap_or(0.0);
        let batches = m("otter_load_batches_total");
        let progress: Vec<String> = t
            .progress
            .iter()
            .map(|(s, n)| format!("{s:.0} s: {}", group(*n as f64)))
            .collect();
        let progress = format!("{}; equal at {:.2} s", progress.join(", "), t.secs);
        details.push_str(&format!(
            "- pipeline, `batch_size` = {}{}: the source took the workload in {:.2} s ({:.1} MB of \
             binlog); the target was equal after {:.2} s{}. {} batches loaded ({:.0} row changes \
             each on average), {} rows written after Load's merge. CPU: {}. `COUNT(*)` at the \
             target (rises with the inserts, stays through the updates, falls with the deletes): \
             {progress}. otter-node's peak RSS: {:.1} MiB\n",
            t.batch_size,
            if t.backlog { ", a backlog" } else { "" },
            t.write_secs,
            t.binlog_bytes as f64 / 1e6,
            t.secs,
            if t.backlog {
                " (from the node's thaw; the node frozen while the source took the workload)"
            } else {
                ""
            },
            batches,
            if batches > 0.0 {
                shape.total() as f64 / batches
            } else {
                0.0
            },
            group(m("otter_load_rows_total")),
            cpu_text(&t.cpu, t.secs),
            t.node_peak_rss_kb as f64 / 1024.0,
        ));
    }
    println!("\n{table}\n{details}");
    let mut report = format!(
        "### Throughput\n\n{} row changes ({} inserts in statements of {CHUNK} rows, {} updates \
         and {} deletes in statements of {SOURCE_CHUNK} rows, each statement its own \
         transaction) on one 9-column table (BIGINT key, INT ×2, TINYINT, BIGINT, VARCHAR(64), \
         VARCHAR(255) with 10% NULLs, DECIMAL(12,2), DATETIME(3)).\n\n\
         The baseline is the target's own ceiling, measured first in the same run on the same \
         target server (the median of {ceiling_runs} runs for each connection count): the same row changes written into a fresh table of the same shape the \
         way Load writes them (`INSERT … ON DUPLICATE KEY UPDATE` of {CHUNK} rows with every \
         column, `DELETE … WHERE id IN (…)` of {CHUNK} keys), one transaction per statement, \
         statements of each phase spread round-robin over 1 or 2 connections. Load spreads a \
         large table's share of each batch over `load_connections` connections by key \
         (the table has no unique secondary key), so both ceilings apply.\n\n\
         The pipeline: channel from the shipped `config/channel.toml` with one mapping \
         (`bench\\.tN` → `bench_dr.tN`), `parallelism` = {parallelism}, node 1 running every \
         stage (Select, Extract, Transform, Load; release `otter-node` binary, \
         `RUST_LOG=info`), started at the source's binlog end; once the node held the mainstem and 1 000 single-row warm-up transactions had reached the target (each its own batch: ZooKeeper's JVM compiles its request path, as in a production ensemble that has been running), the \
         workload was written on the source as fast as it took it (one connection). The clock \
         runs from the first write to the target equal to the source: after the workload one \
         sentinel row is inserted, the bench looks its key up on the target every 10 ms (Load \
         applies batches in order, so once it is there so is everything before it), then \
         `COUNT(*)` and `SUM(CRC32(CONCAT_WS('|', every column)))` must be equal on both sides. \
         (`COUNT(*)`, a scan, runs only once a second for the progress line: polled every 100 ms \
         it cost the target about 0.5 s of CPU per run.) Each batch size ran on its own table pair, channel and fresh node, one after \
         the other. A backlog row froze its node (SIGSTOP) while the source took the workload \
         and started the clock at the thaw (SIGCONT): every row change was waiting in the \
         source's binlog, as every statement is for the ceiling, and the source's writing no \
         longer shares the two CPUs with the pipeline (a pipeline catching up after a pause, an \
         outage or a late start).\n\n{table}\n{details}",
        group(shape.total() as f64),
        group(shape.inserts as f64),
        group(shape.updates as f64),
        group(shape.deletes as f64),
    );
    if let Some(d) = &delay {
        let p = &d.from_send;
        let text = format!(
            "\n### Delay\n\nAfter the throughput phase of `batch_size` = {}, on the same channel: \
             {} single-row INSERT transactions ({lat_rate}/s scheduled for {lat_secs} s, one \
             writer connection, achieved {:.0}/s), each row carrying its send time; the bench \
             polls the target every 5 ms (`SELECT … WHERE id >= next`) and stamps each row when \
             the poll that returned it came back, so up to ~5 ms of the delay is the poll. \
             Writer and poller share one clock. CPU over the phase: {}.\n\n\
             | delay (ms) | p50 | p90 | p99 | max |\n| --- | ---: | ---: | ---: | ---: |\n\
             | INSERT sent on the source → row visible on the target | {:.1} | {:.1} | {:.1} | {:.1} |\n\n\
             ZooKeeper over the phase: {}.\n",
            results.last().map_or(0, |t| t.batch_size),
            d.rows,
            d.achieved,
            cpu_text(&d.cpu, d.wall),
            p.p50,
            p.p90,
            p.p99,
            p.max,
            d.zk.as_deref().unwrap_or("not read")
        );
        println!("{text}");
        report.push_str(&text);
    }
    if !busy.is_empty() {
        eprintln!("note: other work ran on this machine during the bench:\n{busy}");
    }
    let complete = inserts >= 200_000 && delay.is_some();
    if complete {
        let fmt_list = |v: &[(u32, String)]| {
            if v.is_empty() {
                "none".to_string()
            } else {
                v.iter()
                    .map(|(p, c)| format!("`{p} {c}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            }
        };
        let busy_note = if busy.is_empty() {
            format!(
                "- other work: none seen (`pgrep -a \"{OTHER_WORK}\"`, sampled every second during \
                 the whole bench, found nothing but the bench's own processes; at the start: {}, at \
                 the end: {})\n",
                fmt_list(&at_start),
                fmt_list(&at_end)
            )
        } else {
            format!(
                "- other work seen while the bench ran (`pgrep -a \"{OTHER_WORK}\"`, sampled every \
                 second; the machine is shared, so the numbers are noisier):\n\n```\n{busy}\n```\n"
            )
        };
        let section = format!(
            "{DOC_BEGIN}\n\n### Machine\n\n{machine}- tree: {tree}\n{busy_note}\n{report}\n{DOC_END}"
        );
        let path = workspace.join("docs").join("PERFORMANCE.md");
        write_doc(&path, DOC_BEGIN, DOC_END, HEADING, &section)?;
        eprintln!("wrote {}", path.display());
    } else {
        eprintln!("(docs/PERFORMANCE.md is written only by full runs: BENCH_ROWS ≥ 200000, delay measured)");
    }
    Ok(())
}

/// Stops a channel's node and marks the channel stopped.
fn stop_run(rt: &tokio::runtime::Runtime, zk: &ZooKeeper, mut run: Run, cid: u32) -> Result<()> {
    run.node.process.terminate(Duration::from_secs(10))?;
    rt.block_on(async {
        let client = zk.client(Duration::from_secs(10)).await?;
        let path = zk_coord::otter_paths::channel(cid);
        let (data, _) = client.get_data(&path).await?;
        let mut c = Channel::from_json(&data)?;
        c.status = ChannelStatus::Stopped;
        zk_coord::put_persistent(&client, &path, &c.to_json()).await?;
        Ok::<_, anyhow::Error>(())
    })
}

/// How much `mntr`'s counter `key` grew from `before` to `after`.
fn mntr_delta(
    before: &BTreeMap<String, String>,
    after: &BTreeMap<String, String>,
    key: &str,
) -> Option<f64> {
    let read = |m: &BTreeMap<String, String>| m.get(key)?.parse::<f64>().ok();
    Some(read(after)? - read(before)?)
}

/// ZooKeeper's CPU against otter-node's over the phase, to the hundredth (issue #13's target is
/// at most 1.0×; the CPU columns round to tenths).
fn zk_against_node(cpu: &[(&str, f64)]) -> String {
    let of = |name| cpu.iter().find(|(n, _)| *n == name).map(|(_, c)| *c);
    match (of("ZooKeeper"), of("otter-node")) {
        (Some(zk), Some(node)) if node > 0.0 => format!(
            "ZooKeeper {zk:.2} s ÷ otter-node {node:.2} s of CPU = {:.2}×",
            zk / node
        ),
        _ => "ZooKeeper ÷ otter-node CPU: ?".into(),
    }
}

/// What ZooKeeper did over the delay phase, per Select batch: requests received (`mntr`'s
/// `zk_packets_received`, pings included) and packets sent (answers and watch notifications).
fn zk_activity(
    before: &BTreeMap<String, String>,
    after: &BTreeMap<String, String>,
    m0: &BTreeMap<String, f64>,
    m1: &BTreeMap<String, f64>,
) -> String {
    let batches = m1.get("otter_select_batches_total").copied().unwrap_or(0.0)
        - m0.get("otter_select_batches_total").copied().unwrap_or(0.0);
    let per = |k| match mntr_delta(before, after, k) {
        Some(v) if batches > 0.0 => format!("{:.1}", v / batches),
        _ => "?".into(),
    };
    format!(
        "{batches} Select batches; per batch {} requests received, {} packets sent",
        per("zk_packets_received"),
        per("zk_packets_sent"),
    )
}
