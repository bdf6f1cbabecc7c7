//! What the otter benches share: the benchmark table, its rows and checksum, the processes whose
//! CPU time is accounted, and an `otter-node` process with its metrics.

#![allow(dead_code)] // each bench uses its own part

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};
use harness::bench::{cpu_secs, log_tail, nproc};
use harness::{ManagedProcess, MariaDb, TestDir, ZooKeeper};
use mysql_async::prelude::Queryable;

pub mod delay;
#[allow(unused_imports)] // not every bench measures delay
pub use delay::*;

/// Rows per INSERT / DELETE statement (Load's `CHUNK_ROWS`).
pub const CHUNK: u64 = 500;
/// Rows per UPDATE / DELETE statement on the source.
pub const SOURCE_CHUNK: u64 = 5_000;
/// The 9 columns, in table order.
pub const COLUMNS: &str = "id, customer_id, email, amount, created_at, qty, note, flag, sent_us";
pub const CREATE: &str = "(
  id BIGINT NOT NULL PRIMARY KEY,
  customer_id INT NOT NULL,
  email VARCHAR(64) NOT NULL,
  amount DECIMAL(12,2) NOT NULL,
  created_at DATETIME(3) NOT NULL,
  qty INT NOT NULL,
  note VARCHAR(255) NULL,
  flag TINYINT NOT NULL,
  sent_us BIGINT NOT NULL
) ENGINE=InnoDB";

/// `2024-MM-DD hh:mm:ss.mmm` for row `id`.
pub fn created_at(id: u64) -> String {
    format!(
        "2024-{:02}-{:02} {:02}:{:02}:{:02}.{:03}",
        1 + id % 12,
        1 + id % 28,
        id % 24,
        id % 60,
        (id / 7) % 60,
        id % 1000
    )
}

/// The row's values as a SQL tuple; `updated` gives the image after the workload's UPDATE.
pub fn tuple(id: u64, updated: bool) -> String {
    let cents = (id % 100_000) * 7 % 10_000_000 + if updated { 125 } else { 0 };
    let qty = id % 97 + u64::from(updated);
    let note = if updated {
        format!("'upd {id}'")
    } else if id % 10 == 0 {
        "NULL".to_string()
    } else {
        format!(
            "'order note {id}: {}'",
            "abcdefgh".repeat(1 + (id % 8) as usize)
        )
    };
    format!(
        "({id},{},'customer-{id}@example.com',{}.{:02},'{}',{qty},{note},{},0)",
        id % 50_000 + 1,
        cents / 100,
        cents % 100,
        created_at(id),
        id % 2
    )
}

pub fn values(ids: impl Iterator<Item = u64>, updated: bool) -> String {
    ids.map(|id| tuple(id, updated))
        .collect::<Vec<_>>()
        .join(",")
}

/// The checksum both sides are compared with.
pub fn checksum_sql(table: &str) -> String {
    format!(
        "SELECT COUNT(*), CAST(COALESCE(SUM(CRC32(CONCAT_WS('|', id, customer_id, email, amount, \
         created_at, qty, IFNULL(note, '∅'), flag, sent_us))), 0) AS CHAR) FROM {table}"
    )
}

pub async fn checksum(db: &MariaDb, table: &str) -> Result<(u64, String)> {
    let r: Vec<(u64, String)> = db.query(&checksum_sql(table)).await?;
    r.into_iter().next().context("checksum: no row")
}

/// Compares `a_table` on `a` with `b_table` on `b` until they are equal, for at most 10 s: once a
/// batch's last row is on the target its other rows may still be committing on Load's other
/// connections (a spread batch is several transactions). `Ok(None)` when equal, else the last
/// checksums seen.
#[allow(dead_code)]
pub async fn settled(
    a: &MariaDb,
    a_table: &str,
    b: &MariaDb,
    b_table: &str,
) -> Result<Option<((u64, String), (u64, String))>> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let (x, y) = (checksum(a, a_table).await?, checksum(b, b_table).await?);
        if x == y {
            return Ok(None);
        }
        if std::time::Instant::now() > deadline {
            return Ok(Some((x, y)));
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

// ---------------------------------------------------------------------------------------------
// Processes and CPU time

/// The processes whose CPU time is accounted, by name.
#[derive(Clone)]
pub struct Pids(pub Vec<(&'static str, u32)>);

impl Pids {
    pub fn snapshot(&self) -> Vec<f64> {
        self.0.iter().map(|(_, p)| cpu_secs(*p)).collect()
    }
    /// `name a.aa s, …` of the CPU used since `before`.
    pub fn since(&self, before: &[f64]) -> Vec<(&'static str, f64)> {
        self.0
            .iter()
            .zip(before)
            .map(|((n, p), b)| (*n, cpu_secs(*p) - b))
            .collect()
    }
}

pub fn cpu_text(cpu: &[(&str, f64)], wall: f64) -> String {
    let total: f64 = cpu.iter().map(|(_, c)| c).sum();
    let parts: Vec<String> = cpu.iter().map(|(n, c)| format!("{n} {c:.1} s")).collect();
    format!(
        "{} = {total:.1} s CPU in {wall:.1} s wall ({:.0}% of the {} CPUs)",
        parts.join(", "),
        100.0 * total / wall / nproc() as f64,
        nproc()
    )
}

/// A free loopback port (bound and released).
pub fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// An `otter-node` process started for a bench: its log and its HTTP port.
pub struct Node {
    pub process: ManagedProcess,
    pub log: PathBuf,
    pub http: u16,
}

impl Node {
    pub fn start(bin: &Path, dir: &TestDir, id: u32, zk: &ZooKeeper, label: &str) -> Result<Node> {
        Self::start_in_site(
            bin,
            dir,
            id,
            &zk.connect_string(),
            free_port()?,
            None,
            label,
        )
    }

    /// A node with its own `--zk` string, on `http` (127.0.0.1), that others reach at `advertise`
    /// (e.g. through the proxy standing for the WAN).
    pub fn start_in_site(
        bin: &Path,
        dir: &TestDir,
        id: u32,
        zk_servers: &str,
        http: u16,
        advertise: Option<&str>,
        label: &str,
    ) -> Result<Node> {
        let log = dir.path().join(format!("node-{label}.log"));
        let data = dir.path().join(format!("data-{label}"));
        let mut cmd = Command::new(bin);
        cmd.args([
            "--id",
            &id.to_string(),
            "--zk",
            zk_servers,
            "--http",
            &format!("127.0.0.1:{http}"),
        ]);
        if let Some(a) = advertise {
            cmd.args(["--advertise", a]);
        }
        cmd.arg("--data-dir").arg(&data).env("RUST_LOG", "info");
        let process = ManagedProcess::start(format!("otter-node-{label}"), cmd, &log)?;
        Ok(Node { process, log, http })
    }

    pub fn pid(&self) -> u32 {
        self.process.pid().unwrap_or(0)
    }

    pub fn log_tail(&self) -> String {
        log_tail(&self.log, 30)
    }

    /// The node's `otter_*` counters from `/metrics`.
    pub async fn metrics(&self) -> BTreeMap<String, f64> {
        let url = format!("http://127.0.0.1:{}/metrics", self.http);
        let text = match reqwest::get(&url).await {
            Ok(r) => r.text().await.unwrap_or_default(),
            Err(_) => String::new(),
        };
        text.lines()
            .filter(|l| l.starts_with("otter_"))
            .filter_map(|l| {
                let (k, v) = l.rsplit_once(' ')?;
                let name = k.split('{').next()?.to_string();
                Some((name, v.parse().ok()?))
            })
            .collect()
    }
}

/// The workload's size: `inserts` rows, then `updates` of ids 1.., then `deletes` of the last ids.
#[derive(Debug, Clone, Copy)]
pub struct Shape {
    pub inserts: u64,
    pub updates: u64,
    pub deletes: u64,
}

impl Shape {
    pub fn new(inserts: u64) -> Self {
        Shape {
            inserts,
            updates: inserts * 3 / 8,
            deletes: inserts / 8,
        }
    }
    pub fn total(&self) -> u64 {
        self.inserts + self.updates + self.deletes
    }
    /// Rows left after the workload (not counting warm-up rows).
    pub fn remaining(&self) -> u64 {
        self.inserts - self.deletes
    }
    pub fn first_deleted(&self) -> u64 {
        self.inserts - self.deletes + 1
    }
}

/// Writes the workload on the source with ids from `base + 1`, then the row `sentinel`; returns
/// the binlog bytes it took (0 when the binlog rotated).
pub async fn write_workload(
    src: &MariaDb,
    table: &str,
    s: Shape,
    base: u64,
    sentinel: u64,
) -> Result<u64> {
    let before = src.master_status().await?;
    let mut conn = src.conn().await?;
    let mut from = 1;
    while from <= s.inserts {
        let to = (from + CHUNK - 1).min(s.inserts);
        conn.query_drop(format!(
            "INSERT INTO {table} ({COLUMNS}) VALUES {}",
            values(base + from..=base + to, false)
        ))
        .await?;
        from = to + 1;
    }
    let mut affected = 0;
    let mut from = 1;
    while from <= s.updates {
        let to = (from + SOURCE_CHUNK - 1).min(s.updates);
        conn.query_drop(format!(
            "UPDATE {table} SET amount = amount + 1.25, qty = qty + 1, note = CONCAT('upd ', id) \
             WHERE id BETWEEN {} AND {}",
            base + from,
            base + to
        ))
        .await?;
        affected += conn.affected_rows();
        from = to + 1;
    }
    if affected != s.updates {
        bail!(
            "the updates changed {affected} rows, expected {}",
            s.updates
        );
    }
    let mut affected = 0;
    let mut from = s.first_deleted();
    while from <= s.inserts {
        let to = (from + SOURCE_CHUNK - 1).min(s.inserts);
        conn.query_drop(format!(
            "DELETE FROM {table} WHERE id BETWEEN {} AND {}",
            base + from,
            base + to
        ))
        .await?;
        affected += conn.affected_rows();
        from = to + 1;
    }
    if affected != s.deletes {
        bail!(
            "the deletes removed {affected} rows, expected {}",
            s.deletes
        );
    }
    // The sentinel: Load applies batches in order, so once it is on the target so is everything
    // before it, and the poller can wait for it with a primary-key lookup instead of COUNT(*)
    // scans that would load the target while it is being measured.
    conn.query_drop(format!(
        "INSERT INTO {table} ({COLUMNS}) VALUES {}",
        tuple(sentinel, false)
    ))
    .await?;
    conn.disconnect().await?;
    let after = src.master_status().await?;
    Ok(if after.file == before.file {
        after.position - before.position
    } else {
        0
    })
}

/// Today's date (UTC) from the system clock, `YYYY-MM-DD`.
pub fn today() -> String {
    Command::new("date")
        .args(["-u", "+%Y-%m-%d"])
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}
