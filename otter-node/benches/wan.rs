//! One pipeline across an emulated WAN at several round trips, in the same run: Select/Extract on
//! a node in site A (next to the source and the ZooKeeper voters), Transform/Load on a node in
//! site B (next to the target and two ZooKeeper observers, listed first in its `--zk`). Every
//! connection between the sites goes through a fault proxy whose delay is set per phase.
//!
//! Each phase measures throughput (a burst of inserts, updates and deletes, time until the last
//! row is on the target and the tables match), then the delay of single-row inserts at a steady
//! rate, then the ZooKeeper writes site B made per loaded batch: each write reaches the leader
//! through an observer, one round trip across the WAN (ZooKeeper's own count on the observers:
//! `zk_cnt_updatelatency`, the writes a member's clients sent; site B's sessions are on the
//! observers, checked by the count of connections its fall-back group received).
//!
//! ```sh
//! cargo bench -p otter-node --bench wan
//! ```
//! Knobs: `BENCH_RTTS` (default `0,100,200`, ms), `BENCH_ROWS` (inserts of the burst, default
//! 16000), `BENCH_LAT_RATE` (default 1000 rows/s), `BENCH_LAT_SECS` (default 15),
//! `BENCH_PARALLELISM` (batches in flight; default: the example channel's) and
//! `BENCH_BATCH_SIZE` (entries per batch; default: the example channel's).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use harness::bench::{env_num, group};
use harness::{MariaDb, MariaDbOptions, TestDir, Wan};
use mysql_async::prelude::Queryable;
use otter_node::model::{Channel, ChannelStatus, TableMapping};

mod common;
use common::*;

#[path = "../tests/common/wan.rs"]
#[allow(dead_code)]
mod wan;
use wan::WanSites;

/// Phase `k`'s burst uses ids from `k * BURST_STRIDE + 1`.
const BURST_STRIDE: u64 = 1_000_000;
/// Phase `k`'s delay rows use ids from `LAT_BASE + k * BURST_STRIDE`.
const LAT_BASE: u64 = 100_000_000;
/// Phase `k`'s sentinel is `SENTINEL + k`.
const SENTINEL: u64 = 90_000_000;
const WARMUP_BASE: u64 = 80_000_000;
const WARMUP_ROWS: u64 = 300;

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("wan bench: {e:#}");
            ExitCode::FAILURE
        }
    }
}

struct Phase {
    rtt_ms: u64,
    rows_per_sec: f64,
    delay: Delay,
    batches: f64,
    site_b_writes: f64,
}

/// Writes site B's clients sent through the observers so far.
fn observer_writes(sites: &WanSites) -> f64 {
    sites.zk.members()[3..]
        .iter()
        .filter_map(|m| m.mntr().ok())
        .filter_map(|m| m.get("zk_cnt_updatelatency")?.parse::<f64>().ok())
        .sum()
}

fn run() -> Result<()> {
    let inserts: u64 = env_num("BENCH_ROWS", 16_000)?;
    if inserts < 800 || inserts % 8 != 0 {
        bail!("BENCH_ROWS must be a multiple of 8, at least 800");
    }
    let shape = Shape::new(inserts);
    let rate: u64 = env_num("BENCH_LAT_RATE", 1_000)?;
    let lat_secs: u64 = env_num("BENCH_LAT_SECS", 15)?;
    let rtts: Vec<u64> = std::env::var("BENCH_RTTS")
        .unwrap_or_else(|_| "0,100,200".into())
        .split(',')
        .map(|v| v.trim().parse().context("BENCH_RTTS"))
        .collect::<Result<_>>()?;
    let bin = std::env::var_os("BENCH_NODE_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_otter-node")));

    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let opts = MariaDbOptions {
        extra_args: vec![
            "--innodb-buffer-pool-size=512M".into(),
            "--innodb-log-file-size=256M".into(),
            "--binlog-cache-size=16M".into(),
        ],
        ..MariaDbOptions::default()
    };
    rt.block_on(async {
        let src = MariaDb::start_with(opts.clone()).await?;
        let dst = MariaDb::start_with(opts).await?;
        let sites = WanSites::start(Duration::ZERO).await;
        let (source_table, target_table) = ("bench.t1", "bench_dr.t1");
        src.exec(&format!(
            "CREATE DATABASE bench; CREATE TABLE {source_table} {CREATE}"
        ))
        .await?;
        dst.exec(&format!(
            "CREATE DATABASE bench_dr; CREATE TABLE {target_table} {CREATE}"
        ))
        .await?;
        let mut c = channel(&src, &dst).await?;
        c.pipeline.parallelism = env_num("BENCH_PARALLELISM", c.pipeline.parallelism)?;
        c.pipeline.batch_size = env_num("BENCH_BATCH_SIZE", c.pipeline.batch_size)?;
        c.validate()?;
        eprintln!(
            "pipeline: parallelism {}, batch_size {}",
            c.pipeline.parallelism, c.pipeline.batch_size
        );
        let client = sites.zk.client(Duration::from_secs(10)).await?;
        zk_coord::put_persistent(&client, &zk_coord::otter_paths::channel(c.id), &c.to_json())
            .await?;
        let dir = TestDir::new("otter-bench-wan")?;
        let a_http: u16 = sites
            .http_upstream
            .rsplit_once(':')
            .and_then(|(_, p)| p.parse().ok())
            .context("site A's http port")?;
        let node_a = Node::start_in_site(
            &bin,
            &dir,
            1,
            &sites.site_a_zk(),
            a_http,
            Some(&sites.http_link.addr().to_string()),
            "a",
        )?;
        let node_b =
            Node::start_in_site(&bin, &dir, 2, &sites.site_b_zk(), free_port()?, None, "b")?;
        let log_tail = || format!("{}\n{}", node_a.log_tail(), node_b.log_tail());
        warm_up(&src, &dst, source_table, target_table, &log_tail).await?;
        let pids = Pids(vec![("node A", node_a.pid()), ("node B", node_b.pid())]);

        let mut phases = Vec::new();
        for (k, &rtt_ms) in rtts.iter().enumerate() {
            let k = k as u64 + 1;
            sites.set_wan(Wan::symmetric(Duration::from_millis(rtt_ms / 2)));
            tokio::time::sleep(Duration::from_secs(3)).await;
            let (w0, b0) = (observer_writes(&sites), load_batches(&node_b).await);
            let started = Instant::now();
            let sentinel = SENTINEL + k;
            let (written, arrived) = tokio::join!(
                write_workload(&src, source_table, shape, k * BURST_STRIDE, sentinel),
                wait_row(&dst, target_table, sentinel, &log_tail),
            );
            written?;
            arrived?;
            let secs = started.elapsed().as_secs_f64();
            if let Some((a, b)) = settled(&src, source_table, &dst, target_table).await? {
                bail!(
                    "after the burst at {rtt_ms} ms the target differs from the source \
                     (source {a:?}, target {b:?})"
                );
            }
            let delay = measure_delay(
                DelayTables {
                    source: source_table,
                    target: target_table,
                    base: LAT_BASE + k * BURST_STRIDE,
                    log_tail: &log_tail,
                },
                &src,
                &dst,
                rate,
                lat_secs,
                &pids,
            )
            .await?;
            let (w1, b1) = (observer_writes(&sites), load_batches(&node_b).await);
            let phase = Phase {
                rtt_ms,
                rows_per_sec: shape.total() as f64 / secs,
                delay,
                batches: b1 - b0,
                site_b_writes: w1 - w0,
            };
            eprintln!(
                "{rtt_ms} ms: {} rows/s; delay p50 {:.0} ms p99 {:.0} ms at {:.0} rows/s; \
                 {} batches, {:.1} ZooKeeper writes across the WAN per batch",
                group(phase.rows_per_sec),
                phase.delay.from_send.p50,
                phase.delay.from_send.p99,
                phase.delay.achieved,
                phase.batches,
                phase.site_b_writes / phase.batches.max(1.0),
            );
            phases.push(phase);
        }
        if sites.sessions_across() > 0 {
            eprintln!(
                "note: site B opened {} connection(s) to the voters across the WAN",
                sites.sessions_across()
            );
        }
        println!("{}", table(&phases, shape, rate));
        Ok(())
    })
}

async fn load_batches(node: &Node) -> f64 {
    node.metrics()
        .await
        .get("otter_load_batches_total")
        .copied()
        .unwrap_or(0.0)
}

/// The bench channel: `bench.t1` → `bench_dr.t1`, Select on node 1, Load on node 2.
async fn channel(src: &MariaDb, dst: &MariaDb) -> Result<Channel> {
    let mut c = Channel::from_toml(include_str!("../../config/channel.toml"))?;
    let user = src.replication_user().cloned().unwrap_or_default();
    let start = src.master_status().await?;
    let p = &mut c.pipeline;
    p.source.address = src.addr().to_string();
    p.source.username = user.user;
    p.source.password = user.password;
    p.source.journal_name = start.file;
    p.source.position = Some(start.position);
    p.target.address = dst.addr().to_string();
    p.target.username = "root".into();
    p.target.password = String::new();
    p.select_nodes = vec![1];
    p.load_nodes = vec![2];
    p.tables = vec![TableMapping {
        source: "bench\\.t1".into(),
        target_schema: Some("bench_dr".into()),
        target_table: None,
        include_columns: Vec::new(),
        exclude_columns: Vec::new(),
        weight: 1,
        conflict: None,
        version_column: None,
    }];
    c.status = ChannelStatus::Started;
    c.validate()?;
    Ok(c)
}

/// Single-row transactions until the last is on the target: every stage has run, the JVMs
/// have compiled their request paths.
async fn warm_up(
    src: &MariaDb,
    dst: &MariaDb,
    source: &str,
    target: &str,
    log_tail: &dyn Fn() -> String,
) -> Result<()> {
    let mut conn = src.conn().await?;
    for i in 0..WARMUP_ROWS {
        conn.query_drop(format!(
            "INSERT INTO {source} ({COLUMNS}) VALUES {}",
            tuple(WARMUP_BASE + i, false)
        ))
        .await?;
    }
    conn.disconnect().await?;
    wait_row(dst, target, WARMUP_BASE + WARMUP_ROWS - 1, log_tail).await
}

/// Waits until row `id` is on the target (a primary-key lookup every 10 ms); fails after 120 s
/// without it.
async fn wait_row(
    dst: &MariaDb,
    table: &str,
    id: u64,
    log_tail: &dyn Fn() -> String,
) -> Result<()> {
    let mut conn = dst.conn().await?;
    let sql = format!("SELECT COUNT(*) FROM {table} WHERE id = {id}");
    let deadline = Instant::now() + Duration::from_secs(120);
    while conn.query_first::<u64, _>(sql.as_str()).await? != Some(1) {
        if Instant::now() > deadline {
            bail!("row {id} not on the target after 120 s: {}", log_tail());
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    conn.disconnect().await?;
    Ok(())
}

/// The results as the Markdown table docs/PERFORMANCE.md shows.
fn table(phases: &[Phase], shape: Shape, rate: u64) -> String {
    let base = phases
        .iter()
        .find(|p| p.rtt_ms == 0)
        .map(|p| p.rows_per_sec);
    let mut out = format!(
        "burst: {} row changes ({} inserts, {} updates, {} deletes); delay: {rate} single-row \
         inserts/s\n\n| round trip | throughput (rows/s) | ÷ 0 ms | delay p50 / p99 (ms) | \
         batches | ZooKeeper writes across the WAN per batch |\n| ---: | ---: | ---: | ---: | ---: | ---: |\n",
        shape.total(),
        shape.inserts,
        shape.updates,
        shape.deletes
    );
    for p in phases {
        let ratio = base.map_or("–".to_string(), |b| format!("{:.2}×", p.rows_per_sec / b));
        out.push_str(&format!(
            "| {} ms | {} | {ratio} | {:.0} / {:.0} | {} | {:.1} |\n",
            p.rtt_ms,
            group(p.rows_per_sec),
            p.delay.from_send.p50,
            p.delay.from_send.p99,
            p.batches,
            p.site_b_writes / p.batches.max(1.0)
        ));
    }
    out
}
