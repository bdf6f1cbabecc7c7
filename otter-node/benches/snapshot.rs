//! Initial load of a new target: an otter pipeline's snapshot in the stream against
//! `mysqldump | mysql` and `mydumper` + `myloader` copying the same table into the same target, in
//! the same run, interleaved.
//!
//! ```sh
//! cargo bench -p otter-node --bench snapshot      # BENCH_ROWS=1000000 BENCH_RUNS=3
//! ```
//!
//! A source MariaDB holds `bench.t1` (the pipeline bench's 9-column table, `BENCH_ROWS` rows); per
//! run the target's `bench_dr` is recreated empty and filled by, in turn:
//! 1. **ours**: a new channel whose pipeline starts at the source's binlog end with
//!    `snapshot_tables = ["bench.t1"]`, one release `otter-node` running Select, Extract,
//!    Transform and Load; the clock runs from the node's start to the target holding every row
//!    (its highest key polled every 100 ms, then counted), so it includes the node's start;
//! 2. `mysqldump --single-transaction --quick bench t1 | mysql bench_dr`;
//! 3. `mydumper -t 2 -r 100000 --trx-consistency-only` then `myloader -t 2` into `bench_dr`
//!    (myloader's default turns the target's binlog off for its sessions);
//! 4. the same with `myloader -e`, which keeps the binlog on as ours and mysql do: what a target
//!    that feeds replicas or a pipeline of its own needs.
//!
//! Each copy is checked by row count and checksum against the source, and charged with the CPU
//! seconds of the source, the target, ZooKeeper and the copying program during it.
//!
//! Knobs for trying ours alone: `BENCH_OURS_ONLY=1` skips the other copies;
//! `BENCH_LOAD_CONNECTIONS`, `BENCH_BATCH_SIZE` and `BENCH_CHUNK_ROWS` override the channel's
//! `load_connections`, `batch_size` and `snapshot_chunk_rows`; `BENCH_NODE_BIN` runs another
//! otter-node build.

mod common;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use harness::bench::{children_cpu_secs, cpu_and_load_lines, cpu_secs, env_num, group, time_shell};
use harness::{MariaDb, MariaDbOptions, TestDir, ZooKeeper};
use otter_node::model::{Channel, ChannelStatus, TableMapping};

use common::*;

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("snapshot bench: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn empty_target(dst: &MariaDb) -> Result<()> {
    dst.exec(&format!(
        "DROP DATABASE IF EXISTS bench_dr; CREATE DATABASE bench_dr; CREATE TABLE bench_dr.t1 {CREATE}"
    ))
    .await?;
    Ok(())
}

fn run() -> Result<()> {
    let rows: u64 = env_num("BENCH_ROWS", 1_000_000)?;
    let runs: usize = env_num("BENCH_RUNS", 3)?;
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
        ],
        ..MariaDbOptions::default()
    };
    let (src, dst, zk) = rt.block_on(async {
        let src = MariaDb::start_with(opts.clone()).await?;
        let dst = MariaDb::start_with(opts).await?;
        let zk = ZooKeeper::start().await?;
        otter_node::pipeline::load::prepare_site(&otter_node::model::TargetDb {
            address: src.addr().to_string(),
            username: "root".into(),
            password: String::new(),
            site: String::new(),
            tls: Default::default(),
        })
        .await?;
        let u = src.replication_user().cloned().unwrap_or_default().user;
        src.exec(&format!(
            "GRANT INSERT, UPDATE ON retl.xdual TO '{u}'@'%';
             GRANT INSERT, DELETE ON retl.snapshot_signal TO '{u}'@'%';
             CREATE DATABASE bench; CREATE TABLE bench.t1 {CREATE};
             INSERT INTO bench.t1 SELECT seq, seq % 50000 + 1, CONCAT('customer-', seq, '@example.com'),
               (seq % 100000) * 7 / 100, '2024-01-01 00:00:00.000' + INTERVAL seq SECOND, seq % 97,
               IF(seq % 10 = 0, NULL, CONCAT('order note ', seq, ': ', REPEAT('abcdefgh', 1 + seq % 8))),
               seq % 2, 0 FROM bench.seq_1_to_{rows}"
        ))
        .await?;
        Ok::<_, anyhow::Error>((src, dst, zk))
    })?;
    let want = rt.block_on(checksum(&src, "bench.t1"))?;
    let dir = TestDir::new("otter-snapshot-bench")?;
    println!(
        "otter snapshot bench: {} rows of bench.t1, {runs} runs",
        group(rows as f64)
    );
    println!("{}", cpu_and_load_lines());
    let procs = Procs {
        src: src.pid().context("source pid")?,
        dst: dst.pid().context("target pid")?,
        zk: zk.members()[0].pid().context("zookeeper pid")?,
    };
    let (src_port, dst_port) = (src.port(), dst.port());
    let dumper = |binlog: &str, files: &std::path::Path| {
        format!(
            "mydumper -h 127.0.0.1 -P {src_port} -u root -B bench -t 2 -r 100000 --trx-consistency-only -m -o {} && \
             myloader -h 127.0.0.1 -P {dst_port} -u root -t 2 -s bench -B bench_dr {binlog} -d {}",
            files.display(),
            files.display()
        )
    };
    let mysqldump = format!(
        "mysqldump -h127.0.0.1 -P{} -uroot --single-transaction --quick --no-create-info bench t1 | mysql -h127.0.0.1 -P{} -uroot bench_dr",
        src.port(),
        dst.port()
    );
    // BENCH_OURS_ONLY=1: only ours (for trying its knobs).
    let methods = if harness::bench::env_flag("BENCH_OURS_ONLY") {
        &METHODS[..1]
    } else {
        &METHODS[..]
    };
    let mut results: Vec<(&str, Vec<Measured>)> =
        methods.iter().map(|m| (*m, Vec::new())).collect();
    for run in 1..=runs {
        for (method, measured) in results.iter_mut() {
            let m = match *method {
                OURS => {
                    rt.block_on(empty_target(&dst))?;
                    rt.block_on(run_ours(
                        &bin, &dir, &src, &dst, &zk, &procs, run as u32, rows,
                    ))?
                }
                MYSQLDUMP => {
                    rt.block_on(empty_target(&dst))?;
                    procs.shell(&mysqldump)?
                }
                _ => {
                    let binlog = if *method == MYDUMPER_BINLOG { "-e" } else { "" };
                    // myloader's two threads sometimes deadlock on the one table ("Deadlock
                    // found … try restarting transaction") and it gives up: such a run is
                    // started again (at most 3).
                    let mut attempt = 0;
                    loop {
                        attempt += 1;
                        rt.block_on(empty_target(&dst))?;
                        let files = tempfile::tempdir()?;
                        match procs.shell(&dumper(binlog, files.path())) {
                            Ok(m) => break m,
                            Err(e) if attempt < 3 => {
                                println!("run {run}: {method} failed, again: {e:#}")
                            }
                            Err(e) => return Err(e),
                        }
                    }
                }
            };
            rt.block_on(verify(&dst, &want, method))?;
            println!(
                "run {run}: {method:<40} {:>9} rows/s ({:.2} s)  CPU s: source {:.1}, target {:.1}, tool {:.1}, zookeeper {:.1}",
                group(rows as f64 / m.secs),
                m.secs,
                m.cpu.src,
                m.cpu.dst,
                m.cpu.tool,
                m.cpu.zk
            );
            measured.push(m);
        }
    }
    println!("\nmedians (rows/s; CPU seconds of that run):");
    let mut medians = Vec::new();
    for (method, measured) in results.iter_mut() {
        measured.sort_by(|a, b| b.secs.total_cmp(&a.secs));
        let m = measured[measured.len() / 2];
        println!(
            "  {method:<40} {:>9}   CPU s: source {:.1}, target {:.1}, tool {:.1}, zookeeper {:.1}, all {:.1}",
            group(rows as f64 / m.secs),
            m.cpu.src,
            m.cpu.dst,
            m.cpu.tool,
            m.cpu.zk,
            m.cpu.all()
        );
        medians.push((*method, rows as f64 / m.secs));
    }
    let rate = |name: &str| {
        medians
            .iter()
            .find(|(m, _)| *m == name)
            .map_or(f64::NAN, |(_, r)| *r)
    };
    let ours = rate(OURS);
    let faster = rate(MYSQLDUMP).max(rate(MYDUMPER));
    let faster_binlog = rate(MYSQLDUMP).max(rate(MYDUMPER_BINLOG));
    println!(
        "ours / faster of the tools = {:.2}×; with the target's binlog written by all (like ours) {:.2}×   \
         (ours / mysqldump | mysql {:.2}×, / mydumper + myloader {:.2}×, / with myloader -e {:.2}×)",
        ours / faster,
        ours / faster_binlog,
        ours / rate(MYSQLDUMP),
        ours / rate(MYDUMPER),
        ours / rate(MYDUMPER_BINLOG)
    );
    Ok(())
}

const OURS: &str = "ours (pipeline snapshot)";
const MYSQLDUMP: &str = "mysqldump | mysql";
const MYDUMPER: &str = "mydumper + myloader (binlog off)";
const MYDUMPER_BINLOG: &str = "mydumper + myloader -e (binlog on)";
/// Every copy, in the order each run makes them.
const METHODS: [&str; 4] = [OURS, MYSQLDUMP, MYDUMPER, MYDUMPER_BINLOG];

/// The processes whose CPU a copy is charged with.
struct Procs {
    src: u32,
    dst: u32,
    zk: u32,
}

/// CPU seconds spent during one copy.
#[derive(Clone, Copy, Default)]
struct Cpu {
    src: f64,
    dst: f64,
    /// otter-node, or the shell command's processes.
    tool: f64,
    zk: f64,
}

impl Cpu {
    fn all(&self) -> f64 {
        self.src + self.dst + self.tool + self.zk
    }
}

/// One copy: its wall time and CPU.
#[derive(Clone, Copy)]
struct Measured {
    secs: f64,
    cpu: Cpu,
}

impl Procs {
    /// The servers' CPU so far (`tool` left 0).
    fn servers(&self) -> Cpu {
        Cpu {
            src: cpu_secs(self.src),
            dst: cpu_secs(self.dst),
            tool: 0.0,
            zk: cpu_secs(self.zk),
        }
    }

    /// The servers' CPU since `before`, with `tool` seconds of the copying program.
    fn since(&self, before: Cpu, tool: f64) -> Cpu {
        let now = self.servers();
        Cpu {
            src: now.src - before.src,
            dst: now.dst - before.dst,
            tool,
            zk: now.zk - before.zk,
        }
    }

    /// Runs a copying shell command, timed and charged.
    fn shell(&self, cmd: &str) -> Result<Measured> {
        let (before, children) = (self.servers(), children_cpu_secs());
        let secs = time_shell(cmd)?;
        Ok(Measured {
            secs,
            cpu: self.since(before, children_cpu_secs() - children),
        })
    }
}

async fn verify(dst: &MariaDb, want: &(u64, String), what: &str) -> Result<()> {
    let got = checksum(dst, "bench_dr.t1").await?;
    if &got != want {
        bail!("{what}: target has {got:?}, source {want:?}");
    }
    Ok(())
}

/// One pipeline snapshot into the empty target; seconds from the node's start to the last row.
#[allow(clippy::too_many_arguments)]
async fn run_ours(
    bin: &std::path::Path,
    dir: &TestDir,
    src: &MariaDb,
    dst: &MariaDb,
    zk: &ZooKeeper,
    procs: &Procs,
    k: u32,
    rows: u64,
) -> Result<Measured> {
    let mut c = Channel::from_toml(include_str!("../../config/channel.toml"))?;
    let user = src.replication_user().cloned().unwrap_or_default();
    let start = src.master_status().await?;
    c.id = k;
    c.name = format!("snapshot-{k}");
    let p = &mut c.pipeline;
    p.id = k;
    p.source.address = src.addr().to_string();
    p.source.username = user.user;
    p.source.password = user.password;
    p.source.slave_id = 3400 + k;
    p.source.journal_name = start.file;
    p.source.position = Some(start.position);
    p.source.snapshot_tables = vec!["bench.t1".into()];
    p.target.address = dst.addr().to_string();
    p.target.username = "root".into();
    p.target.password = String::new();
    p.select_nodes = vec![1];
    p.load_nodes = vec![1];
    p.load_connections = env_num("BENCH_LOAD_CONNECTIONS", p.load_connections)?;
    p.batch_size = env_num("BENCH_BATCH_SIZE", p.batch_size)?;
    p.source.snapshot_chunk_rows = match env_num("BENCH_CHUNK_ROWS", 0usize)? {
        0 => None,
        n => Some(n),
    };
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
    let client = zk.client(Duration::from_secs(10)).await?;
    zk_coord::put_persistent(&client, &zk_coord::otter_paths::channel(c.id), &c.to_json()).await?;
    let before = procs.servers();
    let started = Instant::now();
    let mut node = Node::start(bin, dir, 1, zk, &format!("s{k}"))?;
    let mut conn = dst.conn().await?;
    let mut last_progress = (Instant::now(), 0u64);
    loop {
        use mysql_async::prelude::Queryable;
        // The highest key is one index probe; the snapshot copies in key order, so only once
        // the last key is there is every row counted (a `COUNT(*)` scan every 100 ms would
        // charge the target with seconds of CPU that the other copies are not charged with).
        let top: Option<Option<u64>> = conn.query_first("SELECT MAX(id) FROM bench_dr.t1").await?;
        let n = top.flatten().unwrap_or(0);
        if n >= rows {
            let all: Option<u64> = conn.query_first("SELECT COUNT(*) FROM bench_dr.t1").await?;
            if all.unwrap_or(0) >= rows {
                break;
            }
        }
        if n > last_progress.1 {
            last_progress = (Instant::now(), n);
        }
        if let Some(st) = node.process.try_exit_status() {
            bail!("otter-node exited with {st}: {}", node.log_tail());
        }
        if last_progress.0.elapsed() > Duration::from_secs(120) {
            bail!("stuck at {n} of {rows} rows: {}", node.log_tail());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let secs = started.elapsed().as_secs_f64();
    let cpu = procs.since(before, node.process.pid().map_or(0.0, cpu_secs));
    // The channel stops; the node ends.
    c.status = ChannelStatus::Stopped;
    zk_coord::put_persistent(&client, &zk_coord::otter_paths::channel(c.id), &c.to_json()).await?;
    node.process
        .terminate(Duration::from_secs(30))
        .context("stop otter-node")?;
    Ok(Measured { secs, cpu })
}
