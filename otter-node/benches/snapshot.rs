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
//!    (polled with `COUNT(*)` every 100 ms), so it includes the node's start;
//! 2. `mysqldump --single-transaction --quick bench t1 | mysql bench_dr`;
//! 3. `mydumper -t 2 -r 100000 --trx-consistency-only` then `myloader -t 2` into `bench_dr`.
//!
//! Each copy is checked by row count and checksum against the source.

mod common;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use harness::bench::{cpu_and_load_lines, env_num, group, time_shell};
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
    let (mut ours, mut dump, mut dumper) = (Vec::new(), Vec::new(), Vec::new());
    for run in 1..=runs {
        rt.block_on(empty_target(&dst))?;
        let secs = rt.block_on(run_ours(&bin, &dir, &src, &dst, &zk, run as u32, rows))?;
        rt.block_on(verify(&dst, &want, "ours"))?;
        println!(
            "run {run}: ours (pipeline snapshot)    {:>9} rows/s ({secs:.2} s)",
            group(rows as f64 / secs)
        );
        ours.push(rows as f64 / secs);

        rt.block_on(empty_target(&dst))?;
        let d = time_shell(&format!(
            "mysqldump -h127.0.0.1 -P{} -uroot --single-transaction --quick --no-create-info bench t1 | mysql -h127.0.0.1 -P{} -uroot bench_dr",
            src.port(),
            dst.port()
        ))?;
        rt.block_on(verify(&dst, &want, "mysqldump | mysql"))?;
        println!(
            "run {run}: mysqldump | mysql          {:>9} rows/s ({d:.2} s)",
            group(rows as f64 / d)
        );
        dump.push(rows as f64 / d);

        // myloader's two threads sometimes deadlock on the one table ("Deadlock found … try
        // restarting transaction") and it gives up: such a run is started again (at most 3).
        let mut attempt = 0;
        let m = loop {
            attempt += 1;
            rt.block_on(empty_target(&dst))?;
            let files = tempfile::tempdir()?;
            match time_shell(&format!(
                "mydumper -h 127.0.0.1 -P {} -u root -B bench -t 2 -r 100000 --trx-consistency-only -m -o {} && \
                 myloader -h 127.0.0.1 -P {} -u root -t 2 -s bench -B bench_dr -d {}",
                src.port(),
                files.path().display(),
                dst.port(),
                files.path().display()
            )) {
                Ok(m) => break m,
                Err(e) if attempt < 3 => println!("run {run}: mydumper + myloader failed, again: {e:#}"),
                Err(e) => return Err(e),
            }
        };
        rt.block_on(verify(&dst, &want, "mydumper + myloader"))?;
        println!(
            "run {run}: mydumper + myloader       {:>9} rows/s ({m:.2} s)",
            group(rows as f64 / m)
        );
        dumper.push(rows as f64 / m);
    }
    let med = |v: &mut Vec<f64>| {
        v.sort_by(|a, b| a.total_cmp(b));
        v[v.len() / 2]
    };
    let (o, d, m) = (med(&mut ours), med(&mut dump), med(&mut dumper));
    println!(
        "\nmedians (rows/s): ours {}, mysqldump | mysql {}, mydumper + myloader {}",
        group(o),
        group(d),
        group(m)
    );
    println!(
        "ours / faster of the two = {:.2}×   (ours / mysqldump | mysql {:.2}×, ours / mydumper + myloader {:.2}×)",
        o / d.max(m),
        o / d,
        o / m
    );
    Ok(())
}

async fn verify(dst: &MariaDb, want: &(u64, String), what: &str) -> Result<()> {
    let got = checksum(dst, "bench_dr.t1").await?;
    if &got != want {
        bail!("{what}: target has {got:?}, source {want:?}");
    }
    Ok(())
}

/// One pipeline snapshot into the empty target; seconds from the node's start to the last row.
async fn run_ours(
    bin: &std::path::Path,
    dir: &TestDir,
    src: &MariaDb,
    dst: &MariaDb,
    zk: &ZooKeeper,
    k: u32,
    rows: u64,
) -> Result<f64> {
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
    let started = Instant::now();
    let mut node = Node::start(bin, dir, 1, zk, &format!("s{k}"))?;
    let mut conn = dst.conn().await?;
    let mut last_progress = (Instant::now(), 0u64);
    loop {
        use mysql_async::prelude::Queryable;
        let n: Option<u64> = conn.query_first("SELECT COUNT(*) FROM bench_dr.t1").await?;
        let n = n.unwrap_or(0);
        if n >= rows {
            break;
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
    // The channel stops; the node ends.
    c.status = ChannelStatus::Stopped;
    zk_coord::put_persistent(&client, &zk_coord::otter_paths::channel(c.id), &c.to_json()).await?;
    node.process
        .terminate(Duration::from_secs(30))
        .context("stop otter-node")?;
    Ok(secs)
}
