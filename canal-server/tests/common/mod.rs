//! Shared helpers for canal-server integration tests against a real MariaDB.
#![allow(dead_code)]

pub mod mq;
pub mod server;

use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use canal_protocol::entry::{Column, EntryType, EventType};
use canal_server::config::DestinationConfig;
use canal_server::position::Cursor;
use canal_server::{Destination, DestinationHandle, ParsedEntry};
use harness::MariaDb;

/// A destination config pointing at `db` with fast heartbeats and timeouts.
pub fn dest_config(db: &MariaDb) -> DestinationConfig {
    static NEXT_ID: AtomicU32 = AtomicU32::new(100);
    let user = db.replication_user().cloned().unwrap_or_default();
    DestinationConfig {
        address: db.addr().to_string(),
        username: user.user,
        password: user.password,
        slave_id: NEXT_ID.fetch_add(1, Ordering::Relaxed) + std::process::id() % 1000 * 100,
        heartbeat_ms: 300,
        read_timeout_ms: 2_000,
        connect_timeout_ms: 3_000,
        black_filter: String::new(),
        ..DestinationConfig::default()
    }
}

/// A temp data dir that lives as long as the returned guard.
pub fn data_dir() -> (tempfile::TempDir, PathBuf) {
    let d = tempfile::tempdir().expect("tempdir");
    let p = d.path().to_path_buf();
    (d, p)
}

/// Starts a destination.
pub fn start(
    name: &str,
    cfg: DestinationConfig,
    dir: &std::path::Path,
    cursor: Option<Cursor>,
) -> DestinationHandle {
    Destination::spawn(name, cfg, dir.to_path_buf(), cursor).expect("spawn destination")
}

/// Receives entries until `done` says so, failing after 60 s with what was received.
pub async fn collect_until(
    h: &mut DestinationHandle,
    mut done: impl FnMut(&[ParsedEntry]) -> bool,
) -> Vec<ParsedEntry> {
    let mut out = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while !done(&out) {
        match tokio::time::timeout_at(deadline, h.recv()).await {
            Ok(Some(e)) => out.push(e),
            Ok(None) => panic!(
                "destination ended ({:?}) after {} entries: {:#?}",
                h.status(),
                out.len(),
                summary(&out)
            ),
            Err(_) => panic!(
                "timed out ({:?}) after {} entries: {:#?}",
                h.status(),
                out.len(),
                summary(&out)
            ),
        }
    }
    out
}

/// Entries until `n` ROWDATA DML entries arrived.
pub async fn collect_rows(h: &mut DestinationHandle, n: usize) -> Vec<ParsedEntry> {
    collect_until(h, |es| es.iter().filter(|e| is_dml(e)).count() >= n).await
}

/// Whether the entry is an INSERT/UPDATE/DELETE ROWDATA entry.
pub fn is_dml(e: &ParsedEntry) -> bool {
    e.entry_type() == EntryType::Rowdata
        && matches!(
            e.event_type(),
            EventType::Insert | EventType::Update | EventType::Delete
        )
}

/// One-line summaries for failure messages.
pub fn summary(es: &[ParsedEntry]) -> Vec<String> {
    es.iter()
        .map(|e| {
            let (s, t) = e.table();
            format!(
                "{:?} {:?} {s}.{t} @{}",
                e.entry_type(),
                e.event_type(),
                e.position.binlog
            )
        })
        .collect()
}

/// A column as `(name, value or None for NULL, updated)`.
pub fn cols(cs: &[Column]) -> Vec<(String, Option<String>, bool)> {
    cs.iter()
        .map(|c| {
            (
                c.name().to_string(),
                if c.is_null() {
                    None
                } else {
                    Some(c.value().to_string())
                },
                c.updated(),
            )
        })
        .collect()
}

/// `(name, value or None for NULL, updated)` of each column of an image.
pub type Cols = Vec<(String, Option<String>, bool)>;

/// `(before, after)` column lists of every row of every DML entry, with the entry's event type.
pub fn dml_rows(es: &[ParsedEntry]) -> Vec<(EventType, String, Cols, Cols)> {
    let mut out = Vec::new();
    for e in es.iter().filter(|e| is_dml(e)) {
        let rc = e.row_change().expect("row change");
        let (s, t) = e.table();
        for rd in rc.row_datas {
            out.push((
                e.event_type(),
                format!("{s}.{t}"),
                cols(&rd.before_columns),
                cols(&rd.after_columns),
            ));
        }
    }
    out
}

/// The value of column `name` in the after image of the first row of `e`.
pub fn after_col(e: &ParsedEntry, name: &str) -> Column {
    let rc = e.row_change().expect("row change");
    rc.row_datas[0]
        .after_columns
        .iter()
        .find(|c| c.name() == name)
        .cloned()
        .unwrap_or_else(|| panic!("no column {name}"))
}
