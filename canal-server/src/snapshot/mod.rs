//! Snapshots inside the stream: the existing rows of chosen tables are copied into the live
//! binlog stream, in primary-key chunks, without locks and without pausing the stream for more
//! than one chunk.
//!
//! This follows the design Debezium publishes for its incremental snapshots (signal-table
//! watermarks): for each chunk the [`runner`] writes an *open* mark to the signal table, reads
//! the chunk with one `SELECT … WHERE key > last ORDER BY key LIMIT n`, hands the rows over, and
//! writes a *close* mark. The converter, reading the binlog, opens a window when it meets the
//! open mark, records the key of every row change of that table inside the window, and when it
//! meets the close mark emits the chunk's rows whose keys did not change in the window, as
//! INSERT entries with the header property `snapshot=true`. A chunk row is therefore never
//! newer-looking than a change that follows it: a key changed inside the window comes from the
//! binlog only, and every change after the close mark is emitted after the chunk.
//!
//! Progress (table, last key of each table) travels with the chunk; it is persisted next to the
//! cursors once every client acked past the chunk's close mark ([`progress`]), so a crash or
//! fail-over resumes after the last chunk the clients have, not from zero.
//!
//! Here: the [`SnapshotBridge`] the runner and the converter share. By job: `columns` (what to
//! SELECT per column and how its value becomes the binlog's), `progress` (the persisted state),
//! `runner` (the chunk loop against the source).

pub mod columns;
pub mod progress;
pub mod runner;

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use mysql_common::value::Value;

use crate::position::BinlogPosition;
pub use progress::{Progress, TableProgress};

/// `schema.table` split at its one dot; `None` unless both parts are non-empty plain names.
pub fn split_table_name(name: &str) -> Option<(String, String)> {
    let (s, t) = name.trim().split_once('.')?;
    let ok = |p: &str| !p.is_empty() && !p.contains(['.', '`', '\'', '"', ' ']);
    (ok(s) && ok(t)).then(|| (s.to_string(), t.to_string()))
}

/// The signal row types, as Debezium names its window marks.
pub const WINDOW_OPEN: &str = "snapshot-window-open";
/// See [`WINDOW_OPEN`].
pub const WINDOW_CLOSE: &str = "snapshot-window-close";

/// Keys recorded in one window beyond this make the chunk be read again (a window lasts one
/// SELECT; this many changes of one table meanwhile means the chunk is better re-read).
pub const MAX_WINDOW_KEYS: usize = 200_000;

/// One chunk read from the source, waiting for its close mark.
#[derive(Debug)]
pub struct Chunk {
    /// Chunk id (also the signal rows' `data`).
    pub id: String,
    /// The table's plan: columns as the binlog would type them.
    pub plan: Arc<columns::TablePlan>,
    /// Rows, each value already shaped as the binlog decoder gives it.
    pub rows: Vec<Vec<Value>>,
    /// Its table's progress once this chunk is delivered.
    pub update: TableProgress,
}

/// What became of a chunk at its close mark.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Emitted `emitted` rows; `dropped` changed inside the window and came from the binlog.
    Emitted {
        /// Rows emitted as snapshot INSERTs.
        emitted: usize,
        /// Rows left out because their key changed in the window.
        dropped: usize,
    },
    /// The chunk must be read again (its window was not seen whole, too many keys changed in
    /// it, or the table's definition changed): `reason` says which.
    Retry {
        /// Why.
        reason: String,
    },
    /// The chunk's rows cannot be written (a value does not fit its column): the snapshot stops
    /// with this error; the stream goes on.
    Failed {
        /// Why.
        reason: String,
    },
}

/// A window between an open and a close mark, as the stream saw it.
#[derive(Debug)]
struct Window {
    schema: String,
    table: String,
    keys: HashSet<String>,
    overflow: bool,
}

#[derive(Debug, Default)]
struct State {
    /// Chunks planned by the runner (id → table), before their open mark is seen.
    planned: HashMap<String, (String, String)>,
    /// Windows open in the stream, by chunk id.
    open: HashMap<String, Window>,
    /// Chunks read, waiting for their close mark.
    ready: HashMap<String, Chunk>,
    /// What happened to chunks whose close mark was seen.
    outcomes: HashMap<String, Outcome>,
    /// Progress after each emitted chunk, by the position of its close mark (oldest first).
    delivered: VecDeque<(BinlogPosition, TableProgress)>,
}

/// What the snapshot runner and the destination's converter share. Cheap when idle: the
/// converter checks one atomic per rows event while no window is open.
#[derive(Debug, Default)]
pub struct SnapshotBridge {
    state: Mutex<State>,
    open_windows: AtomicUsize,
    changed: tokio::sync::Notify,
}

impl SnapshotBridge {
    /// An idle bridge.
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The runner announces chunk `id` of `schema.table` before writing its open mark.
    pub fn plan(&self, id: &str, schema: &str, table: &str) {
        self.state()
            .planned
            .insert(id.to_string(), (schema.to_string(), table.to_string()));
    }

    /// The runner hands over chunk rows (before writing the close mark).
    pub fn ready(&self, chunk: Chunk) {
        self.state().ready.insert(chunk.id.clone(), chunk);
    }

    /// The runner gives up on a chunk (its SELECT failed): forget it everywhere.
    pub fn abandon(&self, id: &str) {
        let mut s = self.state();
        s.planned.remove(id);
        s.ready.remove(id);
        if s.open.remove(id).is_some() {
            self.open_windows.fetch_sub(1, Ordering::Relaxed);
        }
        s.outcomes.remove(id);
    }

    /// The stream met chunk `id`'s open mark. Marks of chunks this process did not plan (an
    /// earlier run's, met again after a restart) are ignored.
    pub fn open_window(&self, id: &str) {
        let mut s = self.state();
        let Some((schema, table)) = s.planned.remove(id) else {
            return;
        };
        let w = Window {
            schema,
            table,
            keys: HashSet::new(),
            overflow: false,
        };
        if s.open.insert(id.to_string(), w).is_none() {
            self.open_windows.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Whether a window of `schema.table` is open (rows of the table must report their keys).
    pub fn tracking(&self, schema: &str, table: &str) -> bool {
        if self.open_windows.load(Ordering::Relaxed) == 0 {
            return false;
        }
        self.state()
            .open
            .values()
            .any(|w| w.schema == schema && w.table == table)
    }

    /// Keys of `schema.table` changed by the binlog while its windows are open.
    pub fn record_keys(&self, schema: &str, table: &str, keys: &[String]) {
        let mut s = self.state();
        for w in s
            .open
            .values_mut()
            .filter(|w| w.schema == schema && w.table == table && !w.overflow)
        {
            w.keys.extend(keys.iter().cloned());
            if w.keys.len() > MAX_WINDOW_KEYS {
                w.overflow = true;
                w.keys = HashSet::new();
            }
        }
    }

    /// The stream met chunk `id`'s close mark: the chunk and its window's keys, or why the chunk
    /// must be read again. `None` when this process has no such chunk (an earlier run's mark).
    pub fn close_window(&self, id: &str) -> Option<Result<(Chunk, HashSet<String>), String>> {
        let mut s = self.state();
        let window = s.open.remove(id);
        if window.is_some() {
            self.open_windows.fetch_sub(1, Ordering::Relaxed);
        }
        let chunk = s.ready.remove(id)?;
        Some(match window {
            None => Err("its open mark was not seen by this stream".into()),
            Some(w) if w.overflow => Err(format!(
                "more than {MAX_WINDOW_KEYS} keys of the table changed while it was read"
            )),
            Some(w) => Ok((chunk, w.keys)),
        })
    }

    /// The converter reports what became of chunk `id`; `delivered` is its progress and the
    /// position of its close mark when it was emitted.
    pub fn finish(
        &self,
        id: &str,
        outcome: Outcome,
        delivered: Option<(BinlogPosition, TableProgress)>,
    ) {
        {
            let mut s = self.state();
            s.outcomes.insert(id.to_string(), outcome);
            if let Some(d) = delivered {
                s.delivered.push_back(d);
            }
        }
        self.changed.notify_waiters();
    }

    /// Waits for chunk `id`'s outcome.
    pub async fn outcome(&self, id: &str) -> Outcome {
        loop {
            let notified = self.changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if let Some(o) = self.state().outcomes.remove(id) {
                return o;
            }
            notified.await;
        }
    }

    /// Table updates of chunks whose close mark is before `acked` (every client's cursor), in
    /// delivery order, taken off the queue.
    pub fn take_acked(&self, acked: &BinlogPosition) -> Vec<TableProgress> {
        let mut s = self.state();
        let mut out = Vec::new();
        while s
            .delivered
            .front()
            .is_some_and(|(at, _)| at.try_cmp(acked) == Some(std::cmp::Ordering::Less))
        {
            out.extend(s.delivered.pop_front().map(|(_, p)| p));
        }
        out
    }

    /// Chunks read and waiting for their close mark (bounded by the runner).
    pub fn ready_chunks(&self) -> usize {
        self.state().ready.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_names_split_at_one_dot() {
        assert_eq!(
            split_table_name("shop.orders"),
            Some(("shop".into(), "orders".into()))
        );
        assert_eq!(split_table_name("orders"), None);
        assert_eq!(split_table_name("a.b.c"), None);
        assert_eq!(split_table_name(".b"), None);
        assert_eq!(split_table_name("a.`b`"), None);
    }

    #[test]
    fn a_window_collects_keys_of_its_table_only() {
        let b = SnapshotBridge::new();
        assert!(!b.tracking("s", "t"));
        b.plan("c1", "s", "t");
        b.open_window("c1");
        b.open_window("unknown");
        assert!(b.tracking("s", "t"));
        assert!(!b.tracking("s", "u"));
        b.record_keys("s", "t", &["1".into(), "2".into()]);
        b.record_keys("s", "u", &["3".into()]);
        b.ready(Chunk {
            id: "c1".into(),
            plan: Arc::new(columns::TablePlan::empty_for_tests("s", "t")),
            rows: Vec::new(),
            update: TableProgress::new("s.t"),
        });
        let (_, keys) = b.close_window("c1").unwrap().unwrap();
        assert_eq!(keys, HashSet::from(["1".to_string(), "2".to_string()]));
        assert!(!b.tracking("s", "t"));
        assert!(b.close_window("c1").is_none());
    }

    #[test]
    fn a_close_without_its_open_asks_for_a_reread() {
        let b = SnapshotBridge::new();
        b.plan("c1", "s", "t");
        b.ready(Chunk {
            id: "c1".into(),
            plan: Arc::new(columns::TablePlan::empty_for_tests("s", "t")),
            rows: Vec::new(),
            update: TableProgress::new("s.t"),
        });
        assert!(b.close_window("c1").unwrap().is_err());
    }

    #[test]
    fn progress_is_released_once_clients_acked_past_its_mark() {
        let b = SnapshotBridge::new();
        let p = |n: u64| TableProgress {
            rows: n,
            ..TableProgress::new("s.t")
        };
        let retry = || Outcome::Retry {
            reason: String::new(),
        };
        b.finish("a", retry(), Some((BinlogPosition::new("f.1", 100), p(1))));
        b.finish("b", retry(), Some((BinlogPosition::new("f.1", 200), p(2))));
        assert!(b.take_acked(&BinlogPosition::new("f.1", 100)).is_empty());
        assert_eq!(b.take_acked(&BinlogPosition::new("f.1", 150)), vec![p(1)]);
        assert_eq!(b.take_acked(&BinlogPosition::new("f.2", 4)), vec![p(2)]);
        assert!(b.take_acked(&BinlogPosition::new("f.2", 4)).is_empty());
    }
}
