//! Two-way sync throughput: two MariaDB sites, one `otter-node` per site (each selects at its own
//! site and loads the other's changes into it), a real ZooKeeper; the same workload replicated one
//! way, then written at both sites at once, in the same run.
//!
//! `cargo bench -p otter-node --bench two_way`:
//!
//! 1. starts sites a and b (MariaDB, `retl` prepared as `otter-manager prepare-site` does) and a
//!    ZooKeeper through the test harness, and `otter-node` 1 (site a) and 2 (site b);
//! 2. one way: a one-way channel a → b (no conflict detection, as before two-way sync existed)
//!    replicates the workload of the pipeline bench written at a: `BENCH_ROWS` (100 000) inserts
//!    in 500-row statements, updates of 3/8 and deletes of 1/8 of them, then a sentinel row. The
//!    clock runs from the first write until the sentinel is at b and both sides' checksums agree;
//! 3. two way: a two-way channel over another table (`site_priority`, so every row is checked for
//!    conflicts in both directions); a writes the workload on ids from 1 and b the same workload
//!    on ids from 50 000 000, at the same time. Each direction's clock stops when its sentinel
//!    arrived at the other site; the run ends with both sites' checksums equal.
//!
//! Rows/s per direction are compared with the one-way rate: the target of issue #11 is at least
//! 0.8× per direction. CPU time of every process is read from /proc around each phase: both
//! directions share the machine, so the CPU each row costs says more than the wall clock on a
//! machine where one direction already keeps most cores busy. `BENCH_BATCH_SIZE` (1000) is the
//! pipelines' batch size. docs/PERFORMANCE.md gets its section between the
//! `otter-two-way:begin`/`end` markers from runs of at least 100 000 inserts.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use harness::bench::{env_num, nproc, write_doc};
use harness::{MariaDb, MariaDbOptions, TestDir, ZooKeeper};
use mysql_async::prelude::Queryable;
use otter_node::model::{Channel, ChannelStatus, Pipeline, TableMapping};

mod common;
use common::*;

const DOC_BEGIN: &str =
    "<!-- otter-two-way:begin (written by `cargo bench -p otter-node --bench two_way`) -->";
const DOC_END: &str = "<!-- otter-two-way:end -->";
const HEADING: &str = "## Otter two-way: both sites writing\n\n\
Reproduce with:\n\n```sh\ncargo bench -p otter-node --bench two_way\n```";

/// Site b's workload ids start above this.
const B_BASE: u64 = 50_000_000;
/// Sentinel ids: a's and b's.
const SENTINEL_A: u64 = 9_000_000;
const SENTINEL_B: u64 = B_BASE + 9_000_000;

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("two-way bench: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// One measured direction.
struct Direction {
    label: &'static str,
    rows: u64,
    secs: f64,
}

impl Direction {
    fn rate(&self) -> f64 {
        self.rows as f64 / self.secs
    }
}

/// Points `p` from `src` to `dst` (root on the target, the harness's replication account on the
/// source) at the source's binlog end, on `table` only, with `batch_size`.
async fn aim(
    p: &mut Pipeline,
    src: &MariaDb,
    dst: &MariaDb,
    table: &str,
    batch_size: u32,
) -> Result<()> {
    let user = src.replication_user().cloned().unwrap_or_default();
    let start = src.master_status().await?;
    p.source.address = src.addr().to_string();
    p.source.username = user.user;
    p.source.password = user.password;
    p.source.journal_name = start.file;
    p.source.position = Some(start.position);
    p.target.address = dst.addr().to_string();
    p.target.username = "root".into();
    p.target.password = String::new();
    p.batch_size = batch_size;
    p.tables = vec![TableMapping {
        source: table.replace('.', "\\."),
        target_schema: None,
        target_table: None,
        include_columns: Vec::new(),
        exclude_columns: Vec::new(),
        weight: 1,
        conflict: None,
        version_column: None,
    }];
    Ok(())
}

async fn publish(zk: &ZooKeeper, c: &Channel) -> Result<()> {
    let client = zk.client(Duration::from_secs(10)).await?;
    zk_coord::put_persistent(&client, &zk_coord::otter_paths::channel(c.id), &c.to_json()).await?;
    Ok(())
}

/// Waits until `sentinel` is at `db`; the seconds since `t0`.
async fn arrival(
    db: &MariaDb,
    table: &str,
    sentinel: u64,
    t0: Instant,
    nodes: &[&Node],
) -> Result<f64> {
    let mut conn = db.conn().await?;
    let sql = format!("SELECT COUNT(*) FROM {table} WHERE id = {sentinel}");
    loop {
        if conn.query_first::<u64, _>(sql.as_str()).await? == Some(1) {
            conn.disconnect().await?;
            return Ok(t0.elapsed().as_secs_f64());
        }
        if t0.elapsed() > Duration::from_secs(900) {
            let logs: Vec<String> = nodes.iter().map(|n| n.log_tail()).collect();
            bail!(
                "sentinel {sentinel} not at {table} after 900 s: {}",
                logs.join("\n")
            );
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn same(a: &MariaDb, b: &MariaDb, table: &str) -> Result<()> {
    let (x, y) = (checksum(a, table).await?, checksum(b, table).await?);
    if x != y {
        bail!("{table} differs between the sites: a {x:?}, b {y:?}");
    }
    Ok(())
}

fn run() -> Result<()> {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .context("workspace root")?
        .to_path_buf();
    let inserts: u64 = env_num("BENCH_ROWS", 100_000)?;
    if inserts < 8_000 || inserts % 8 != 0 {
        bail!("BENCH_ROWS must be a multiple of 8, at least 8000");
    }
    let batch_size: u32 = env_num("BENCH_BATCH_SIZE", 1000)?;
    let shape = Shape::new(inserts);
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
            "--max-binlog-size=1073741824".into(),
            "--binlog-cache-size=16M".into(),
        ],
        ..MariaDbOptions::default()
    };
    let dir = TestDir::new("otter-two-way-bench")?;
    rt.block_on(async {
        let (a, b) = (
            MariaDb::start_with(opts.clone()).await?,
            MariaDb::start_with(opts).await?,
        );
        let zk = ZooKeeper::start().await?;
        for db in [&a, &b] {
            otter_node::pipeline::load::prepare_site(&otter_node::model::TargetDb {
                address: db.addr().to_string(),
                username: "root".into(),
                password: String::new(),
                site: String::new(),
                tls: Default::default(),
            })
            .await?;
            db.exec("GRANT INSERT, UPDATE ON retl.xdual TO 'canal'@'%'")
                .await?;
            db.exec(&format!(
                "CREATE DATABASE bench; CREATE TABLE bench.one {CREATE}; CREATE TABLE bench.two {CREATE}"
            ))
            .await?;
        }
        let n1 = Node::start(&bin, &dir, 1, &zk, "site-a")?;
        let n2 = Node::start(&bin, &dir, 2, &zk, "site-b")?;
        let nodes = [&n1, &n2];
        let pids = Pids(vec![
            ("node a", n1.pid()),
            ("node b", n2.pid()),
            ("mariadb a", a.pid().unwrap_or(0)),
            ("mariadb b", b.pid().unwrap_or(0)),
            ("zookeeper", zk.members().first().and_then(|m| m.pid()).unwrap_or(0)),
        ]);
        eprintln!(
            "workload per site: {} row changes ({} inserts, {} updates, {} deletes), batch_size {batch_size}",
            shape.total(),
            shape.inserts,
            shape.updates,
            shape.deletes
        );

        // One way: a → b, no reverse, no conflict detection.
        let mut one = Channel::from_toml(include_str!("../../config/channel-two-way.toml"))?;
        one.id = 1;
        one.name = "one-way".into();
        one.reverse = None;
        one.pipeline.id = 1;
        aim(&mut one.pipeline, &a, &b, "bench.one", batch_size).await?;
        one.status = ChannelStatus::Started;
        one.validate()?;
        publish(&zk, &one).await?;
        warm_up(&a, &b, "bench.one", &nodes).await?;
        let cpu0 = pids.snapshot();
        let t0 = Instant::now();
        let (written, secs) = tokio::join!(
            write_workload(&a, "bench.one", shape, 0, SENTINEL_A),
            arrival(&b, "bench.one", SENTINEL_A, t0, &nodes)
        );
        written?;
        let one_way = Direction { label: "one way, a → b (no conflict detection)", rows: shape.total(), secs: secs? };
        let one_cpu = pids.since(&cpu0);
        same(&a, &b, "bench.one").await?;
        eprintln!("one way: {:.0} rows/s in {:.2} s; {}", one_way.rate(), one_way.secs, cpu_text(&one_cpu, one_way.secs));
        one.status = ChannelStatus::Stopped;
        publish(&zk, &one).await?;

        // Two ways: both sites write at once.
        let mut two = Channel::from_toml(include_str!("../../config/channel-two-way.toml"))?;
        two.id = 2;
        two.name = "two-way".into();
        two.pipeline.id = 21;
        two.pipeline.source.slave_id = 3321;
        aim(&mut two.pipeline, &a, &b, "bench.two", batch_size).await?;
        let r = two.reverse.as_mut().context("the example has a reverse pipeline")?;
        r.id = 22;
        r.source.slave_id = 3322;
        aim(r, &b, &a, "bench.two", batch_size).await?;
        two.status = ChannelStatus::Started;
        two.validate()?;
        publish(&zk, &two).await?;
        warm_up(&a, &b, "bench.two", &nodes).await?;
        warm_up(&b, &a, "bench.two", &nodes).await?;
        let cpu0 = pids.snapshot();
        let t0 = Instant::now();
        let (wa, wb, at_b, at_a) = tokio::join!(
            write_workload(&a, "bench.two", shape, 0, SENTINEL_A),
            write_workload(&b, "bench.two", shape, B_BASE, SENTINEL_B),
            arrival(&b, "bench.two", SENTINEL_A, t0, &nodes),
            arrival(&a, "bench.two", SENTINEL_B, t0, &nodes),
        );
        wa?;
        wb?;
        let (at_b, at_a) = (at_b?, at_a?);
        let wall = at_a.max(at_b);
        let two_cpu = pids.since(&cpu0);
        same(&a, &b, "bench.two").await?;
        let forward = Direction { label: "two way, a → b (both sites writing)", rows: shape.total(), secs: at_b };
        let backward = Direction { label: "two way, b → a (both sites writing)", rows: shape.total(), secs: at_a };
        eprintln!(
            "two way: a → b {:.0} rows/s ({:.2} s), b → a {:.0} rows/s ({:.2} s); {}",
            forward.rate(),
            forward.secs,
            backward.rate(),
            backward.secs,
            cpu_text(&two_cpu, wall)
        );

        let conflicts: Vec<u64> = a.query("SELECT COUNT(*) FROM retl.retl_conflict").await?;
        let conflicts_b: Vec<u64> = b.query("SELECT COUNT(*) FROM retl.retl_conflict").await?;
        let section = report(
            &one_way,
            &one_cpu,
            &[&forward, &backward],
            &two_cpu,
            wall,
            conflicts.first().copied().unwrap_or(0) + conflicts_b.first().copied().unwrap_or(0),
            inserts,
            batch_size,
        );
        println!("{section}");
        if inserts >= 100_000 {
            write_doc(&workspace.join("docs/PERFORMANCE.md"), DOC_BEGIN, DOC_END, HEADING, &section)?;
            eprintln!("wrote docs/PERFORMANCE.md");
        }
        Ok::<_, anyhow::Error>(())
    })
}

/// 200 single-row transactions at `src`, waited for at `dst`: every stage of the direction has run
/// and ZooKeeper's JVM is warm before the clock starts.
async fn warm_up(src: &MariaDb, dst: &MariaDb, table: &str, nodes: &[&Node]) -> Result<()> {
    const ROWS: u64 = 200;
    let base = if src.port() < dst.port() {
        8_000_000
    } else {
        8_500_000
    };
    let mut conn = src.conn().await?;
    for i in 0..ROWS {
        conn.query_drop(format!(
            "INSERT INTO {table} ({COLUMNS}) VALUES {}",
            tuple(base + i, false)
        ))
        .await?;
    }
    conn.disconnect().await?;
    arrival(dst, table, base + ROWS - 1, Instant::now(), nodes).await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn report(
    one: &Direction,
    one_cpu: &[(&str, f64)],
    two: &[&Direction],
    two_cpu: &[(&str, f64)],
    wall: f64,
    conflicts: u64,
    inserts: u64,
    batch_size: u32,
) -> String {
    let cpu_sum = |c: &[(&str, f64)]| c.iter().map(|(_, s)| s).sum::<f64>();
    let per_row = |c: &[(&str, f64)], rows: u64| 1e6 * cpu_sum(c) / rows as f64;
    let mut out = format!(
        "{DOC_BEGIN}\n\nThe pipeline bench's workload ({inserts} inserts, {} updates, {} deletes on one \
         9-column table) per site, `batch_size` = {batch_size}, one `otter-node` per site, on this \
         {}-CPU machine, {}:\n\n\
         | run | rows/s | time (s) | ÷ one way |\n| --- | ---: | ---: | ---: |\n",
        inserts * 3 / 8,
        inserts / 8,
        nproc(),
        today()
    );
    out.push_str(&format!(
        "| {} (baseline) | {:.0} | {:.2} | 1.00× |\n",
        one.label,
        one.rate(),
        one.secs
    ));
    for d in two {
        out.push_str(&format!(
            "| {} | {:.0} | {:.2} | **{:.2}×** |\n",
            d.label,
            d.rate(),
            d.secs,
            d.rate() / one.rate()
        ));
    }
    let both: u64 = two.iter().map(|d| d.rows).sum();
    out.push_str(&format!(
        "| two way, both directions together | {:.0} | {wall:.2} | {:.2}× |\n\n",
        both as f64 / wall,
        both as f64 / wall / one.rate()
    ));
    out.push_str(&format!(
        "CPU, one way: {}; {:.1} µs of CPU per row.  \nCPU, two way: {}; {:.1} µs of CPU per row \
         (both directions' rows). Conflicts reported: {conflicts} (the sites write disjoint keys).\n\n",
        cpu_text(one_cpu, one.secs),
        per_row(one_cpu, one.rows),
        cpu_text(two_cpu, wall),
        per_row(two_cpu, both),
    ));
    out.push_str(DOC_END);
    out
}
