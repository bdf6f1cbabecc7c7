//! The consistency checker (`otter-manager check`) on a large table, against MariaDB's own
//! `CHECKSUM TABLE` on the same table in the same run.
//!
//! `cargo bench -p otter-node --bench check`:
//!
//! 1. starts a source and a target MariaDB through the test harness and fills the same
//!    `BENCH_ROWS` (1 000 000) rows of the pipeline bench's 9-column table on both (from MariaDB's
//!    `seq` engine);
//! 2. the baseline: `CHECKSUM TABLE` on both sides at once (a full scan each, one number per
//!    table, nothing to narrow down with), timed with the CPU each server used;
//! 3. the checker over the same table with its defaults (chunks sized to about 0.5 s, five
//!    rechecks), once with both sides equal and once after 100 rows changed on the target (all
//!    found: the run fails otherwise), timed with each server's CPU.
//!
//! Rows/s per side is the table's rows over the wall time; the source's extra load is the CPU
//! its server spent per second of the check. docs/PERFORMANCE.md gets its section between the
//! `otter-check:begin`/`end` markers from runs of at least 1 000 000 rows.

use std::path::Path;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use harness::bench::{cpu_secs, env_num, nproc, write_doc};
use harness::{MariaDb, MariaDbOptions};
use otter_node::check::{check_pipeline, CheckOptions, NoDelay, Report};
use otter_node::model::{Channel, TableMapping};

mod common;
use common::{today, CREATE};

const DOC_BEGIN: &str =
    "<!-- otter-check:begin (written by `cargo bench -p otter-node --bench check`) -->";
const DOC_END: &str = "<!-- otter-check:end -->";
const HEADING: &str = "## Consistency checker\n\n\
Reproduce with:\n\n```sh\ncargo bench -p otter-node --bench check\n```";

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("check bench: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// One timed phase: wall seconds and each server's CPU seconds.
struct Phase {
    secs: f64,
    source_cpu: f64,
    target_cpu: f64,
}

async fn timed<T>(
    pids: (u32, u32),
    work: impl std::future::Future<Output = Result<T>>,
) -> Result<(T, Phase)> {
    let (s0, t0) = (cpu_secs(pids.0), cpu_secs(pids.1));
    let started = Instant::now();
    let out = work.await?;
    Ok((
        out,
        Phase {
            secs: started.elapsed().as_secs_f64(),
            source_cpu: cpu_secs(pids.0) - s0,
            target_cpu: cpu_secs(pids.1) - t0,
        },
    ))
}

fn differences(r: &Report) -> u64 {
    r.tables
        .iter()
        .map(|t| t.differences.len() as u64 + t.more_differences)
        .sum()
}

fn run() -> Result<()> {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .context("workspace root")?
        .to_path_buf();
    let rows: u64 = env_num("BENCH_ROWS", 1_000_000)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let opts = MariaDbOptions {
        extra_args: vec!["--innodb-buffer-pool-size=1G".into()],
        ..MariaDbOptions::default()
    };
    rt.block_on(async {
        let (src, dst) = (
            MariaDb::start_with(opts.clone()).await?,
            MariaDb::start_with(opts).await?,
        );
        let fill = format!(
            "INSERT INTO bench.t SELECT seq, seq % 50000 + 1, CONCAT('customer-', seq, '@example.com'), \
             (seq % 100000) / 100, TIMESTAMP('2024-01-01') + INTERVAL seq SECOND, seq % 97, \
             IF(seq % 10 = 0, NULL, CONCAT('order note ', seq)), seq % 2, 0 FROM bench.seq_1_to_{rows}"
        );
        for db in [&src, &dst] {
            db.exec(&format!("CREATE DATABASE bench; CREATE TABLE bench.t {CREATE}")).await?;
            db.exec(&fill).await?;
        }
        let pids = (src.pid().unwrap_or(0), dst.pid().unwrap_or(0));
        eprintln!("{rows} rows on both sides");

        // Warm both buffer pools the same way before anything is timed.
        for db in [&src, &dst] {
            db.exec("CHECKSUM TABLE bench.t").await?;
        }
        let ((), baseline) = timed(pids, async {
            let (a, b) = tokio::join!(
                src.query::<(String, Option<u64>)>("CHECKSUM TABLE bench.t"),
                dst.query::<(String, Option<u64>)>("CHECKSUM TABLE bench.t")
            );
            if a? != b? {
                bail!("CHECKSUM TABLE differs before anything was changed");
            }
            Ok(())
        })
        .await?;
        eprintln!("CHECKSUM TABLE: {:.2} s", baseline.secs);

        let mut c = Channel::from_toml(include_str!("../../config/channel.toml"))?;
        let p = &mut c.pipeline;
        p.source.address = src.addr().to_string();
        p.source.username = "root".into();
        p.source.password = String::new();
        p.target.address = dst.addr().to_string();
        p.target.username = "root".into();
        p.target.password = String::new();
        p.tables = vec![TableMapping {
            source: "bench\\.t".into(),
            target_schema: None,
            target_table: None,
            include_columns: Vec::new(),
            exclude_columns: Vec::new(),
            weight: 0,
            conflict: None,
            version_column: None,
        }];
        let check = CheckOptions {
            recheck_wait: Duration::from_millis(200),
            ..CheckOptions::default()
        };
        let (equal, clean) = timed(pids, async {
            Ok(check_pipeline(&c.pipeline, c.id, &check, &NoDelay).await?)
        })
        .await?;
        if differences(&equal) != 0 {
            bail!("the checker found differences between equal tables");
        }
        let chunks: u64 = equal.tables.iter().map(|t| t.chunks).sum();
        eprintln!("checker, equal: {:.2} s, {chunks} chunks", clean.secs);
        let step = rows / 100;
        dst.exec(&format!(
            "UPDATE bench.t SET qty = qty + 1 WHERE id % {step} = 0"
        ))
        .await?;
        let (found, dirty) = timed(pids, async {
            Ok(check_pipeline(&c.pipeline, c.id, &check, &NoDelay).await?)
        })
        .await?;
        if differences(&found) != 100 {
            bail!("the checker found {} of 100 planted differences", differences(&found));
        }
        eprintln!("checker, 100 differences: {:.2} s", dirty.secs);

        let line = |name: &str, ph: &Phase| {
            format!(
                "| {name} | {:.2} | {:.0} | {:.1} s ({:.0}% of a CPU) | {:.1} s | {:.2}× |\n",
                ph.secs,
                rows as f64 / ph.secs,
                ph.source_cpu,
                100.0 * ph.source_cpu / ph.secs,
                ph.target_cpu,
                baseline.secs / ph.secs
            )
        };
        let section = format!(
            "{DOC_BEGIN}\n\n{rows} rows of the pipeline bench's 9-column table on a source and a \
             target MariaDB (buffer pools warm), on this {}-CPU machine, {}. Rows/s is per side \
             (both sides read every row, at once); the source CPU is its extra load while \
             checking.\n\n\
             | run | time (s) | rows/s per side | source CPU | target CPU | speed ÷ `CHECKSUM TABLE` |\n\
             | --- | ---: | ---: | ---: | ---: | ---: |\n{}{}{}\n\
             The checker read {chunks} chunks (sized to about 0.5 s each, up to 100 000 rows). With \
             100 rows changed on the target it also narrowed each differing chunk to its keys \
             by row hashes and read each key again (all 100 found).\n\n{DOC_END}",
            nproc(),
            today(),
            line("`CHECKSUM TABLE` on both sides at once (baseline)", &baseline),
            line("`otter-manager check`, sides equal", &clean),
            line("`otter-manager check`, 100 rows differ", &dirty),
        );
        println!("{section}");
        if rows >= 1_000_000 {
            write_doc(&workspace.join("docs/PERFORMANCE.md"), DOC_BEGIN, DOC_END, HEADING, &section)?;
            eprintln!("wrote docs/PERFORMANCE.md");
        }
        Ok::<_, anyhow::Error>(())
    })
}
