//! The delay measurement the otter benches share: `rate` single-row inserts a second, each
//! carrying its send time, and the time until each is on the target.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use harness::bench::{nearest_rank, root_opts};
use harness::MariaDb;
use mysql_async::prelude::Queryable;

use super::{tuple, Pids, COLUMNS};

#[derive(Debug, Clone, Copy)]
pub struct Percentiles {
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub max: f64,
}

pub fn percentiles(mut v: Vec<f64>) -> Percentiles {
    v.sort_by(f64::total_cmp);
    let at = |q: f64| nearest_rank(&v, q);
    Percentiles {
        p50: at(0.5),
        p90: at(0.9),
        p99: at(0.99),
        max: v.last().copied().unwrap_or(0.0),
    }
}

pub struct Delay {
    pub rows: usize,
    pub achieved: f64,
    pub from_send: Percentiles,
    pub cpu: Vec<(&'static str, f64)>,
    pub wall: f64,
    /// What ZooKeeper did over the phase, when the bench read it.
    pub zk: Option<String>,
}

/// Where the delay rows go: ids from `base`, and the node log to show when they stop arriving.
pub struct DelayTables<'a> {
    pub source: &'a str,
    pub target: &'a str,
    pub base: u64,
    pub log_tail: &'a dyn Fn() -> String,
}

/// `rate` single-row inserts per second for `secs` s, each carrying its send time (µs since the
/// bench's epoch); the target is polled every 5 ms.
pub async fn measure_delay(
    run: DelayTables<'_>,
    src: &MariaDb,
    dst: &MariaDb,
    rate: u64,
    secs: u64,
    pids: &Pids,
) -> Result<Delay> {
    let n = (rate * secs) as usize;
    let epoch = Instant::now();
    let us = move || epoch.elapsed().as_micros() as u64;
    let sent = Arc::new(Mutex::new(vec![0u64; n]));
    let port = src.port();
    let table = run.source.to_string();
    let base = run.base;
    let cpu0 = pids.snapshot();
    let writer = {
        let sent = sent.clone();
        std::thread::spawn(move || -> Result<f64> {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            rt.block_on(async {
                let opts = root_opts(port);
                let mut conn = mysql_async::Conn::new(opts).await?;
                let interval = Duration::from_nanos(1_000_000_000 / rate);
                let t0 = Instant::now();
                for i in 0..n {
                    let slot = t0 + interval * i as u32;
                    let now = Instant::now();
                    if slot > now {
                        std::thread::sleep(slot - now);
                    }
                    let id = base + i as u64;
                    let s = us();
                    if let Ok(mut v) = sent.lock() {
                        v[i] = s;
                    }
                    let mut row = tuple(id, false);
                    row.truncate(row.len() - 2);
                    conn.query_drop(format!("INSERT INTO {table} ({COLUMNS}) VALUES {row}{s})"))
                        .await?;
                }
                conn.disconnect().await?;
                Ok(n as f64 / t0.elapsed().as_secs_f64())
            })
        })
    };
    let mut conn = dst.conn().await?;
    let mut arrived = vec![0u64; n];
    let mut got = 0usize;
    let mut last_progress = Instant::now();
    while got < n {
        let rows: Vec<(u64, u64)> = conn
            .query(format!(
                "SELECT id, sent_us FROM {} WHERE id >= {} ORDER BY id",
                run.target,
                base + got as u64
            ))
            .await?;
        let at = us();
        for (id, s) in rows {
            let i = id.saturating_sub(base) as usize;
            if i < n && arrived[i] == 0 {
                arrived[i] = at;
                let want = sent.lock().map(|v| v[i]).unwrap_or(0);
                if s != want {
                    bail!("row {id} carried send time {s}, the writer recorded {want}");
                }
                got += 1;
                last_progress = Instant::now();
            }
        }
        if last_progress.elapsed() > Duration::from_secs(60) {
            bail!(
                "delay: no rows for 60 s after {got} of {n}: {}",
                (run.log_tail)()
            );
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    conn.disconnect().await?;
    let achieved = writer
        .join()
        .map_err(|_| anyhow::anyhow!("the writer thread panicked"))??;
    let wall = epoch.elapsed().as_secs_f64();
    let cpu = pids.since(&cpu0);
    let sent = sent.lock().map(|v| v.clone()).unwrap_or_default();
    let delays: Vec<f64> = arrived
        .iter()
        .zip(&sent)
        .map(|(a, s)| a.saturating_sub(*s) as f64 / 1000.0)
        .collect();
    Ok(Delay {
        rows: n,
        achieved,
        from_send: percentiles(delays),
        cpu,
        wall,
        zk: None,
    })
}
