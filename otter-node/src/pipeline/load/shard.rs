//! Spreading one table's share of a batch over several connections, by key.
//!
//! After [`merge`](super::merge()) a batch writes each key of a table once, so the keys are
//! independent: the rows are split into `n` shards, each shard is its own transaction on its own
//! connection (fenced and marked like any table transaction), and all of them commit before the
//! next weight or batch starts. Per-key order holds (a key lives in one shard, and batches load
//! strictly one after another); the batch's termin is written only after every shard committed,
//! and a failure redoes the whole batch, whose statements are all upserts or deletes by key, so
//! shards that had committed are written again harmlessly.
//!
//! The shards are contiguous runs of the merged rows, which keep the order in which keys first
//! appeared: for a snapshot chunk or an insert-heavy stream that is key order, so each connection
//! writes its own part of the primary index, as `myloader` threads each load their own key range.
//! An earlier split by a hash of the key sent neighbouring keys to every connection, and all of
//! them then inserted into the same index pages: in three interleaved pairs of snapshot bench
//! runs with one binary, the target spent 10.0–12.5 s of CPU on the million rows that way against
//! 8.2–10.2 s with runs, and the copy ran 1.16–1.32× faster (docs/PERFORMANCE.md). Which shard a
//! key lands in may differ from one batch to the next; nothing depends on it, since one batch
//! commits before the next starts.
//!
//! What keys alone cannot keep apart stays on one connection, found in the target's
//! `information_schema` ([`TableShape`]):
//! - a **unique secondary key**: a row giving up a unique value in one shard and another row
//!   taking it in a second shard could run in either order, and an upsert meeting the old owner
//!   through the secondary key would *update that row* (`ON DUPLICATE KEY UPDATE` fires on any
//!   unique key) rather than fail. On one connection the batch's order is kept.
//! - a **foreign key** from or to the table: a child row in one shard may need a parent row
//!   another shard has not committed yet.
//!
//! Shard transactions run at READ COMMITTED: at REPEATABLE READ a delete of a key the target does
//! not hold (a replay, or a row deleted right after its insert) locks the gap around it, and
//! another shard's insert into that gap deadlocks with it. READ COMMITTED takes no such gap locks
//! (MySQL's own parallel replica applier runs the same way). A target logging its binlog in
//! `STATEMENT` format refuses writes at READ COMMITTED, so there no table is spread.
//!
//! A table is split only when each shard gets at least [`MIN_SHARD_ROWS`] rows (a statement's
//! worth), so small batches keep one transaction. Shapes are cached for [`SHAPE_TTL`] and dropped
//! when Load applies DDL, so an index added on the target is seen within that time; a shape that
//! cannot be read counts as unsafe.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use mysql_async::prelude::Queryable;

use crate::batch::RowEvent;

/// Fewest rows a shard gets: a table with fewer than twice this many stays in one transaction.
pub const MIN_SHARD_ROWS: usize = super::sql::CHUNK_ROWS;
/// How long a table's [`TableShape`] is trusted before it is read again.
pub const SHAPE_TTL: Duration = Duration::from_secs(60);

/// What decides whether a target table may be spread over connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TableShape {
    /// It has a UNIQUE index besides the primary key.
    pub unique_secondary: bool,
    /// It references another table, or another table references it.
    pub foreign_keys: bool,
    /// The target writes a binlog in `STATEMENT` format (which refuses READ COMMITTED writes).
    pub statement_binlog: bool,
}

impl TableShape {
    /// Whether rows may go to different connections by key.
    pub fn shardable(&self) -> bool {
        !self.unique_secondary && !self.foreign_keys && !self.statement_binlog
    }
}

/// How many shards a table of `rows` merged rows gets with `connections` to spread over.
pub fn shard_count(rows: usize, connections: usize) -> usize {
    connections.min(rows / MIN_SHARD_ROWS).max(1)
}

/// Which of `n` shards the row at `index` of `len` rows goes to: contiguous runs of equal size
/// (within one row), in order.
pub fn shard_of(index: usize, len: usize, n: usize) -> usize {
    if n <= 1 || len == 0 {
        return 0;
    }
    index * n / len
}

/// `rows` split into `n` contiguous shards by [`shard_of`], each keeping the rows' order.
pub fn split<'r>(rows: &[&'r RowEvent], n: usize) -> Vec<Vec<&'r RowEvent>> {
    let n = n.max(1);
    let mut out: Vec<Vec<&RowEvent>> = (0..n)
        .map(|_| Vec::with_capacity(rows.len() / n + 1))
        .collect();
    for (i, &row) in rows.iter().enumerate() {
        out[shard_of(i, rows.len(), n)].push(row);
    }
    out
}

/// Reads the shape of each `(schema, table)` from the target's `information_schema`.
pub(crate) async fn read_shapes(
    conn: &mut mysql_async::Conn,
    tables: &[(String, String)],
) -> Result<HashMap<(String, String), TableShape>, mysql_async::Error> {
    // Non-primary unique indexes.
    const UNIQUE: &str =
        "SELECT DISTINCT TABLE_SCHEMA, TABLE_NAME FROM information_schema.STATISTICS \
         WHERE NON_UNIQUE = 0 AND INDEX_NAME <> 'PRIMARY' AND TABLE_SCHEMA = ? AND TABLE_NAME = ?";
    // Foreign keys either way.
    const FOREIGN: &str = "SELECT COUNT(*) FROM information_schema.REFERENTIAL_CONSTRAINTS \
         WHERE (CONSTRAINT_SCHEMA = ? AND TABLE_NAME = ?) \
         OR (UNIQUE_CONSTRAINT_SCHEMA = ? AND REFERENCED_TABLE_NAME = ?)";
    let binlog: Option<(i64, String)> = conn
        .query_first("SELECT @@log_bin, @@binlog_format")
        .await?;
    let statement_binlog =
        binlog.is_some_and(|(on, f)| on == 1 && f.eq_ignore_ascii_case("STATEMENT"));
    let mut out = HashMap::with_capacity(tables.len());
    for (schema, table) in tables {
        let unique: Vec<(String, String)> =
            conn.exec(UNIQUE, (schema.as_str(), table.as_str())).await?;
        let foreign: Option<u64> = conn
            .exec_first(
                FOREIGN,
                (
                    schema.as_str(),
                    table.as_str(),
                    schema.as_str(),
                    table.as_str(),
                ),
            )
            .await?;
        out.insert(
            (schema.clone(), table.clone()),
            TableShape {
                unique_secondary: !unique.is_empty(),
                foreign_keys: foreign.unwrap_or(0) > 0,
                statement_binlog,
            },
        );
    }
    Ok(out)
}

/// The shapes Load has read, each trusted for [`SHAPE_TTL`].
#[derive(Debug, Default)]
pub(crate) struct Shapes {
    known: Mutex<HashMap<(String, String), (TableShape, Instant)>>,
}

impl Shapes {
    /// The cached shape of a table, if read less than [`SHAPE_TTL`] ago.
    pub(crate) fn get(&self, schema: &str, table: &str) -> Option<TableShape> {
        let known = self.known.lock().unwrap_or_else(|e| e.into_inner());
        known
            .get(&(schema.to_string(), table.to_string()))
            .filter(|(_, at)| at.elapsed() < SHAPE_TTL)
            .map(|(s, _)| *s)
    }

    /// Remembers shapes just read.
    pub(crate) fn put(&self, shapes: HashMap<(String, String), TableShape>) {
        let now = Instant::now();
        let mut known = self.known.lock().unwrap_or_else(|e| e.into_inner());
        for (t, s) in shapes {
            known.insert(t, (s, now));
        }
    }

    /// Forgets every shape (after DDL: an index may have come or gone).
    pub(crate) fn clear(&self) {
        self.known.lock().unwrap_or_else(|e| e.into_inner()).clear();
    }
}

impl super::Loader {
    /// How many shards each large table of `merged` gets: `(schema, table, n)` for the tables
    /// that are spread (others load whole). Tables checked for conflicts stay whole (their rows
    /// are resolved in one transaction); shapes not cached are read from the target first.
    pub(super) async fn shard_counts(
        &self,
        merged: &[RowEvent],
        checked: &[crate::batch::CheckedTable],
    ) -> Vec<(String, String, usize)> {
        if self.connections <= 1 {
            return Vec::new();
        }
        let mut counts: HashMap<(&str, &str), usize> = HashMap::new();
        for row in merged {
            *counts
                .entry((row.schema.as_str(), row.table.as_str()))
                .or_default() += 1;
        }
        let candidates: Vec<((&str, &str), usize)> = counts
            .into_iter()
            .filter(|&(_, n)| shard_count(n, self.connections) > 1)
            .filter(|&((s, t), _)| !checked.iter().any(|c| c.schema == s && c.table == t))
            .collect();
        if candidates.is_empty() {
            return Vec::new();
        }
        let unknown: Vec<(String, String)> = candidates
            .iter()
            .filter(|((s, t), _)| self.shapes.get(s, t).is_none())
            .map(|((s, t), _)| (s.to_string(), t.to_string()))
            .collect();
        if !unknown.is_empty() {
            let read = async {
                let mut conn = self.conn().await?;
                read_shapes(&mut conn, &unknown).await
            };
            match read.await {
                Ok(shapes) => {
                    for ((schema, table), shape) in &shapes {
                        tracing::info!(
                            table = %format!("{schema}.{table}"),
                            unique_secondary = shape.unique_secondary,
                            foreign_keys = shape.foreign_keys,
                            statement_binlog = shape.statement_binlog,
                            spread = shape.shardable(),
                            connections = self.connections,
                            "load: target table shape read"
                        );
                    }
                    self.shapes.put(shapes)
                }
                // Unknown counts as unsafe: this batch loads those tables whole.
                Err(e) => tracing::warn!(
                    error = %e,
                    "load: cannot read the target tables' keys; loading them on one connection"
                ),
            }
        }
        candidates
            .into_iter()
            .filter(|((s, t), _)| self.shapes.get(s, t).is_some_and(|sh| sh.shardable()))
            .map(|((s, t), n)| {
                (
                    s.to_string(),
                    t.to_string(),
                    shard_count(n, self.connections),
                )
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::load::test_rows::*;

    #[test]
    fn small_tables_stay_whole_and_large_ones_split_up_to_the_connections() {
        assert_eq!(shard_count(0, 4), 1);
        assert_eq!(shard_count(MIN_SHARD_ROWS * 2 - 1, 4), 1);
        assert_eq!(shard_count(MIN_SHARD_ROWS * 2, 4), 2);
        assert_eq!(shard_count(MIN_SHARD_ROWS * 100, 4), 4);
        assert_eq!(shard_count(MIN_SHARD_ROWS * 100, 1), 1);
        assert_eq!(shard_count(MIN_SHARD_ROWS * 100, 0), 1);
    }

    #[test]
    fn every_row_lands_in_exactly_one_shard_in_contiguous_runs() {
        let rows: Vec<RowEvent> = (0..10_001)
            .map(|i| row(I, &i.to_string(), &[("a", "x")]))
            .collect();
        let refs: Vec<&RowEvent> = rows.iter().collect();
        let shards = split(&refs, 4);
        assert_eq!(shards.iter().map(Vec::len).sum::<usize>(), rows.len());
        // Even sizes (within one row), and concatenated the shards are the rows in order.
        assert!(shards.iter().all(|s| s.len() == 2500 || s.len() == 2501));
        let again: Vec<&RowEvent> = shards.into_iter().flatten().collect();
        assert!(again.iter().zip(&refs).all(|(a, b)| std::ptr::eq(*a, *b)));
        for n in 1..9 {
            for len in [1, 7, 500, 1001] {
                let s: Vec<usize> = (0..len).map(|i| shard_of(i, len, n)).collect();
                assert!(s.windows(2).all(|w| w[0] <= w[1]), "{n} {len}");
                assert!(s.iter().all(|&k| k < n));
            }
        }
        assert_eq!(shard_of(0, 0, 4), 0);
    }

    #[test]
    fn only_tables_without_unique_secondary_or_foreign_keys_on_row_binlogs_are_shardable() {
        let shape = |u, f, b| TableShape {
            unique_secondary: u,
            foreign_keys: f,
            statement_binlog: b,
        };
        assert!(shape(false, false, false).shardable());
        assert!(!shape(true, false, false).shardable());
        assert!(!shape(false, true, false).shardable());
        assert!(!shape(false, false, true).shardable());
    }
}
