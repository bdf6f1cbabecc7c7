//! Schema history ("TSDB" in Canal): every table's definitions keyed by the binlog position at
//! which each came into force.
//!
//! Row events carry no column names, so decoding a row at position `p` needs the table as it was
//! at `p`, not as it is now. [`SchemaHistory`] records a version whenever a table is seeded
//! ([`SchemaHistory::seed`]), changed by DDL ([`SchemaHistory::apply_ddl`]) or re-read from
//! `information_schema` ([`SchemaHistory::record`]), and answers [`SchemaHistory::table_at`] with
//! the latest version recorded at or before a position.
//!
//! # Replays
//!
//! A destination that restarts from an older position reads DDL it has already applied.
//! [`SchemaHistory::apply_ddl`] only applies DDL beyond everything recorded so far (see its docs),
//! so a replayed DDL never changes the history twice, and lookups for the replayed rows before
//! the DDL still find the old definition.
//!
//! Positions are ordered with [`BinlogPosition::total_cmp`]: the seed position (empty file name)
//! sorts before every binlog position, and a history that spans two binlog series (the source's
//! log base name changed) stays sorted, by file name across series.
//!
//! # Persistence
//!
//! [`SchemaHistory::save`] writes JSON atomically (temporary file, fsync, rename, fsync of the
//! directory); [`SchemaHistory::load`] reads it back and reports a corrupt file as
//! [`HistoryError::Corrupt`] naming the path.
//!
//! # Layout
//!
//! This file holds the versions and how DDL, seeds and re-reads add to them; `file.rs` holds
//! the JSON file format and the atomic [`SchemaHistory::save`] / [`SchemaHistory::load`].

mod file;

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::ddl::{classify, Catalog, DdlError, TableChange};
use super::table::TableMeta;
use crate::position::BinlogPosition;

/// Retention settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HistoryConfig {
    /// Versions kept per table (at least 1); when exceeded the oldest are dropped, so lookups
    /// before the oldest kept version find nothing.
    pub max_versions_per_table: usize,
}

impl Default for HistoryConfig {
    fn default() -> Self {
        HistoryConfig {
            max_versions_per_table: 64,
        }
    }
}

/// Errors of the schema history.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HistoryError {
    /// Reading or writing the history file failed.
    #[error("schema history {}: {op}: {source}", path.display())]
    Io {
        /// The history file.
        path: PathBuf,
        /// What was being done (`read`, `write temporary file`, `rename`, …).
        op: &'static str,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The history file exists but is not a valid history.
    #[error("schema history file {} is corrupt: {reason}", path.display())]
    Corrupt {
        /// The history file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
}

impl HistoryError {
    /// Worth retrying (I/O can be transient).
    pub fn is_retryable(&self) -> bool {
        matches!(self, HistoryError::Io { .. })
    }

    /// Retrying cannot help: the file needs an operator (or deleting, to re-seed).
    pub fn is_fatal(&self) -> bool {
        matches!(self, HistoryError::Corrupt { .. })
    }
}

/// What [`SchemaHistory::apply_ddl`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DdlOutcome {
    /// The DDL was applied; these changes were recorded at its position (empty for statements
    /// that change no table, such as TRUNCATE or GRANT).
    Applied(Vec<TableChange>),
    /// The history already holds records at or past the DDL's position (a replay after a
    /// restart from an older position); nothing was recorded.
    AlreadyApplied {
        /// The latest position recorded by DDL or [`SchemaHistory::record`].
        through: BinlogPosition,
    },
    /// The DDL could not be applied. The tables it names (per [`classify`]) were marked unknown
    /// at its position, so the next lookup misses and the caller re-reads them from
    /// `information_schema` and passes them to [`SchemaHistory::record`].
    Invalidated {
        /// `(schema, table)` pairs whose definitions were dropped at the DDL's position.
        tables: Vec<(String, String)>,
        /// Why the DDL could not be applied.
        reason: DdlError,
    },
}

/// One table definition and the position from which it is in force; `None` = the table does not
/// exist from there on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Version {
    at: BinlogPosition,
    table: Option<TableMeta>,
}

/// Versioned table definitions keyed by binlog position. See the module docs.
///
/// Invariants: each table's versions are sorted by position with at most one per position; the
/// embedded [`Catalog`] equals the latest version of every table (the state DDL applies to).
#[derive(Debug, Clone)]
pub struct SchemaHistory {
    tables: BTreeMap<(String, String), Vec<Version>>,
    catalog: Catalog,
    /// Latest position recorded by `apply_ddl` or `record`.
    applied_through: Option<BinlogPosition>,
    /// Latest position recorded by `seed`.
    seeded_at: Option<BinlogPosition>,
    config: HistoryConfig,
}

impl Default for SchemaHistory {
    fn default() -> Self {
        Self::new(HistoryConfig::default())
    }
}
impl SchemaHistory {
    /// An empty in-memory history.
    pub fn new(config: HistoryConfig) -> Self {
        SchemaHistory {
            tables: BTreeMap::new(),
            catalog: Catalog::new(),
            applied_through: None,
            seeded_at: None,
            config: sanitize(config),
        }
    }

    /// Replaces the retention settings, trimming every table to the new bound at once.
    pub fn with_config(mut self, config: HistoryConfig) -> Self {
        self.config = sanitize(config);
        let keys: Vec<_> = self.tables.keys().cloned().collect();
        for key in keys {
            self.enforce_bound(&key);
        }
        self
    }

    /// The retention settings in use.
    pub fn config(&self) -> HistoryConfig {
        self.config
    }

    /// True when nothing has been recorded: the caller should [`seed`](Self::seed) it.
    pub fn is_empty(&self) -> bool {
        self.tables.is_empty() && self.applied_through.is_none() && self.seeded_at.is_none()
    }

    /// The latest definitions (the state DDL is applied to).
    pub fn catalog(&self) -> &Catalog {
        &self.catalog
    }

    /// Latest position recorded by DDL or [`record`](Self::record).
    pub fn applied_through(&self) -> Option<&BinlogPosition> {
        self.applied_through.as_ref()
    }

    /// Number of versions kept for `schema.table` (tombstones included).
    pub fn version_count(&self, schema: &str, table: &str) -> usize {
        self.tables
            .get(&(schema.to_string(), table.to_string()))
            .map_or(0, Vec::len)
    }

    /// Records `schema`'s default character set (from `information_schema.SCHEMATA`), used for
    /// tables created later without their own.
    pub fn set_database_charset(&mut self, schema: &str, charset: &str) {
        self.catalog.set_database_charset(schema, charset);
    }

    /// Sets the server default character set (`@@character_set_server`) new databases and
    /// databases of unknown default use.
    pub fn set_server_charset(&mut self, charset: &str) {
        self.catalog.set_server_charset(charset);
    }

    /// Records `tables` as the definitions in force at `at` (e.g. read from `information_schema`
    /// when the destination first starts at `at`). Tables not listed are unaffected. DDL at `at`
    /// itself is still applied afterwards; DDL before `at` is treated as already applied.
    pub fn seed(&mut self, at: BinlogPosition, tables: Vec<TableMeta>) {
        for meta in tables {
            self.put(
                at.clone(),
                (meta.schema.clone(), meta.table.clone()),
                Some(meta),
            );
        }
        if !matches!(&self.seeded_at, Some(s) if s.total_cmp(&at).is_ge()) {
            self.seeded_at = Some(at);
        }
    }

    /// Records a definition re-read from `information_schema` as in force from `at` (replacing any
    /// version recorded at exactly `at`). Counts as applied through `at` for replay purposes.
    pub fn record(&mut self, at: BinlogPosition, meta: TableMeta) {
        self.put(
            at.clone(),
            (meta.schema.clone(), meta.table.clone()),
            Some(meta),
        );
        self.advance(at);
    }

    /// The definition of `schema.table` in force at `at`: the latest version recorded at or before
    /// `at`. `None` when there is none, or when the table was dropped (or renamed away) at or
    /// before `at` and not recreated since.
    pub fn table_at(&self, schema: &str, table: &str, at: &BinlogPosition) -> Option<&TableMeta> {
        let versions = self.tables.get(&(schema.to_string(), table.to_string()))?;
        let n = versions.partition_point(|v| v.at.total_cmp(at).is_le());
        versions.get(n.checked_sub(1)?)?.table.as_ref()
    }

    /// The latest definition of `schema.table`.
    pub fn latest(&self, schema: &str, table: &str) -> Option<&TableMeta> {
        self.catalog.table(schema, table)
    }

    /// Applies the DDL `sql` (run with default database `current_db`) found at binlog position
    /// `at`, recording the new versions at `at`.
    ///
    /// * If anything was already recorded past `at` — by DDL or [`record`](Self::record) at or
    ///   after `at`, or a [`seed`](Self::seed) after `at` — the DDL is a replay: nothing is
    ///   recorded and [`DdlOutcome::AlreadyApplied`] is returned.
    /// * Otherwise the DDL is applied to the latest definitions (which are the state as of `at`,
    ///   since nothing later exists) and [`DdlOutcome::Applied`] lists the changes.
    /// * If the DDL cannot be applied (unsupported syntax, unknown table or column), the tables it
    ///   names are marked unknown at `at` and [`DdlOutcome::Invalidated`] says why.
    ///
    /// In every non-replay case the history counts as applied through `at` afterwards. No `Err` is
    /// returned today; the `Result` leaves room for bounded-history failures.
    pub fn apply_ddl(
        &mut self,
        at: BinlogPosition,
        sql: &str,
        current_db: &str,
    ) -> Result<DdlOutcome, HistoryError> {
        if let Some(through) = self.covered(&at) {
            return Ok(DdlOutcome::AlreadyApplied { through });
        }
        let outcome = match self.catalog.apply(sql, current_db) {
            Ok(changes) => {
                for change in &changes {
                    match change {
                        TableChange::Defined(meta) => self.push_version(
                            at.clone(),
                            (meta.schema.clone(), meta.table.clone()),
                            Some(meta.clone()),
                        ),
                        TableChange::Dropped { schema, table } => {
                            self.push_version(at.clone(), (schema.clone(), table.clone()), None)
                        }
                        TableChange::DatabaseDefined { .. }
                        | TableChange::DatabaseDropped { .. } => {}
                    }
                }
                DdlOutcome::Applied(changes)
            }
            Err(reason) => {
                let mut tables = Vec::new();
                for st in classify(sql, current_db) {
                    let names = [(st.schema, st.table), (st.old_schema, st.old_table)];
                    for (schema, table) in names {
                        if let (Some(s), Some(t)) = (schema, table) {
                            if !tables.contains(&(s.clone(), t.clone())) {
                                tables.push((s, t));
                            }
                        }
                    }
                }
                if let Some((s, t)) = reason.table() {
                    let pair = (s.to_string(), t.to_string());
                    if !tables.contains(&pair) {
                        tables.push(pair);
                    }
                }
                for key in &tables {
                    if self.catalog.table(&key.0, &key.1).is_some() {
                        self.put(at.clone(), key.clone(), None);
                    }
                }
                DdlOutcome::Invalidated { tables, reason }
            }
        };
        self.advance(at);
        Ok(outcome)
    }

    /// Forgets versions no longer needed for lookups at or after `pos`: for each table, every
    /// version older than the one in force at `pos` is dropped, and that one is dropped too when
    /// it is a tombstone. Lookups at or after `pos` are unchanged; lookups before `pos` may find
    /// nothing afterwards. Returns the number of versions removed.
    pub fn compact_before(&mut self, pos: &BinlogPosition) -> usize {
        let mut removed = 0;
        self.tables.retain(|_, versions| {
            let n = versions.partition_point(|v| v.at.total_cmp(pos).is_le());
            if n > 1 {
                versions.drain(..n - 1);
                removed += n - 1;
            }
            if n >= 1 && versions.first().is_some_and(|v| v.table.is_none()) {
                versions.remove(0);
                removed += 1;
            }
            !versions.is_empty()
        });
        removed
    }
    /// `Some(through)` when a DDL at `at` is a replay of history already recorded.
    fn covered(&self, at: &BinlogPosition) -> Option<BinlogPosition> {
        if let Some(t) = &self.applied_through {
            if t.total_cmp(at).is_ge() {
                return Some(t.clone());
            }
        }
        match &self.seeded_at {
            Some(s) if s.total_cmp(at).is_gt() => {
                Some(self.applied_through.clone().unwrap_or_else(|| s.clone()))
            }
            _ => None,
        }
    }

    fn advance(&mut self, at: BinlogPosition) {
        if !matches!(&self.applied_through, Some(t) if t.total_cmp(&at).is_ge()) {
            self.applied_through = Some(at);
        }
    }

    /// Records a version from a DDL change; the catalog already reflects it.
    fn push_version(
        &mut self,
        at: BinlogPosition,
        key: (String, String),
        table: Option<TableMeta>,
    ) {
        let versions = self.tables.entry(key.clone()).or_default();
        insert_version(versions, Version { at, table });
        self.enforce_bound(&key);
    }

    /// Records a version and, when it is the table's latest, updates the catalog to match.
    fn put(&mut self, at: BinlogPosition, key: (String, String), table: Option<TableMeta>) {
        let versions = self.tables.entry(key.clone()).or_default();
        let is_latest = !matches!(versions.last(), Some(v) if v.at.total_cmp(&at).is_gt());
        if is_latest {
            match &table {
                Some(meta) => self.catalog.insert_table(meta.clone()),
                None => {
                    self.catalog.remove_table(&key.0, &key.1);
                }
            }
        }
        insert_version(versions, Version { at, table });
        self.enforce_bound(&key);
    }

    fn enforce_bound(&mut self, key: &(String, String)) {
        let max = self.config.max_versions_per_table;
        if let Some(versions) = self.tables.get_mut(key) {
            if versions.len() > max {
                let excess = versions.len() - max;
                versions.drain(..excess);
            }
        }
    }
}

fn sanitize(mut config: HistoryConfig) -> HistoryConfig {
    config.max_versions_per_table = config.max_versions_per_table.max(1);
    config
}

/// Inserts keeping position order; a version at an existing position replaces it.
fn insert_version(versions: &mut Vec<Version>, v: Version) {
    let i = versions.partition_point(|x| x.at.total_cmp(&v.at).is_lt());
    match versions.get_mut(i) {
        Some(existing) if existing.at == v.at => *existing = v,
        _ => versions.insert(i, v),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::table::ColumnMeta;

    pub(super) fn pos(offset: u64) -> BinlogPosition {
        BinlogPosition::new("mysql-bin.000001", offset)
    }

    fn col(name: &str, ty: &str) -> ColumnMeta {
        ColumnMeta {
            name: name.into(),
            column_type: ty.into(),
            is_primary_key: false,
            unsigned: false,
            charset: None,
            collation_id: None,
            enum_values: Vec::new(),
            nullable: true,
        }
    }

    pub(super) fn meta(table: &str, cols: &[(&str, &str)]) -> TableMeta {
        TableMeta {
            schema: "d".into(),
            table: table.into(),
            columns: cols.iter().map(|(n, t)| col(n, t)).collect(),
            charset: Some("utf8mb4".into()),
        }
    }

    pub(super) fn names(m: Option<&TableMeta>) -> Vec<String> {
        m.map(|m| m.columns.iter().map(|c| c.name.clone()).collect())
            .unwrap_or_default()
    }

    pub(super) fn seeded() -> SchemaHistory {
        let mut h = SchemaHistory::default();
        h.seed(pos(100), vec![meta("t", &[("a", "int(11)")])]);
        h
    }

    #[test]
    fn lookups_follow_positions_across_a_restart() {
        let mut h = seeded();
        assert!(h.table_at("d", "t", &pos(99)).is_none());
        let out = h
            .apply_ddl(pos(200), "ALTER TABLE t ADD COLUMN b VARCHAR(3)", "d")
            .unwrap();
        assert!(matches!(out, DdlOutcome::Applied(ref c) if c.len() == 1));
        assert_eq!(names(h.table_at("d", "t", &pos(150))), ["a"]);
        assert_eq!(names(h.table_at("d", "t", &pos(200))), ["a", "b"]);
        assert_eq!(names(h.table_at("d", "t", &pos(300))), ["a", "b"]);

        // The destination restarts from 150 and reads the ALTER at 200 again.
        let again = h
            .apply_ddl(pos(200), "ALTER TABLE t ADD COLUMN b VARCHAR(3)", "d")
            .unwrap();
        assert_eq!(again, DdlOutcome::AlreadyApplied { through: pos(200) });
        assert_eq!(names(h.table_at("d", "t", &pos(150))), ["a"]);
        assert_eq!(names(h.table_at("d", "t", &pos(250))), ["a", "b"]);
        assert_eq!(h.version_count("d", "t"), 2);

        // An older DDL replayed is skipped too; a newer one applies.
        assert!(matches!(
            h.apply_ddl(pos(120), "DROP TABLE t", "d").unwrap(),
            DdlOutcome::AlreadyApplied { .. }
        ));
        h.apply_ddl(pos(400), "ALTER TABLE t DROP COLUMN a", "d")
            .unwrap();
        assert_eq!(names(h.table_at("d", "t", &pos(399))), ["a", "b"]);
        assert_eq!(names(h.table_at("d", "t", &pos(400))), ["b"]);
    }

    #[test]
    fn ddl_at_the_seed_position_applies_and_before_it_is_skipped() {
        let mut h = seeded();
        assert!(matches!(
            h.apply_ddl(pos(50), "ALTER TABLE t ADD c INT", "d")
                .unwrap(),
            DdlOutcome::AlreadyApplied { .. }
        ));
        assert!(matches!(
            h.apply_ddl(pos(100), "ALTER TABLE t ADD c INT", "d")
                .unwrap(),
            DdlOutcome::Applied(_)
        ));
        assert_eq!(names(h.table_at("d", "t", &pos(100))), ["a", "c"]);
    }

    #[test]
    fn drops_and_renames() {
        let mut h = seeded();
        h.apply_ddl(pos(200), "RENAME TABLE t TO u", "d").unwrap();
        assert_eq!(names(h.table_at("d", "t", &pos(199))), ["a"]);
        assert!(h.table_at("d", "t", &pos(200)).is_none());
        assert_eq!(names(h.table_at("d", "u", &pos(200))), ["a"]);
        assert!(h.table_at("d", "u", &pos(199)).is_none());
        h.apply_ddl(pos(300), "DROP TABLE u", "d").unwrap();
        assert!(h.table_at("d", "u", &pos(301)).is_none());
        assert_eq!(names(h.table_at("d", "u", &pos(299))), ["a"]);
        h.apply_ddl(pos(400), "CREATE TABLE u (z INT)", "d")
            .unwrap();
        assert_eq!(names(h.table_at("d", "u", &pos(400))), ["z"]);
        assert!(h.latest("d", "t").is_none());
    }

    #[test]
    fn failed_ddl_invalidates_named_tables() {
        let mut h = seeded();
        let out = h
            .apply_ddl(pos(200), "ALTER TABLE t ADD c FANCYTYPE", "d")
            .unwrap();
        match out {
            DdlOutcome::Invalidated { tables, reason } => {
                assert_eq!(tables, vec![("d".to_string(), "t".to_string())]);
                assert!(matches!(reason, DdlError::Unsupported { .. }));
            }
            other => panic!("{other:?}"),
        }
        assert!(h.table_at("d", "t", &pos(200)).is_none());
        assert_eq!(names(h.table_at("d", "t", &pos(199))), ["a"]);
        // The caller re-reads the table and records it at the DDL's position.
        h.record(pos(200), meta("t", &[("a", "int(11)"), ("c", "fancytype")]));
        assert_eq!(names(h.table_at("d", "t", &pos(200))), ["a", "c"]);
        assert!(matches!(
            h.apply_ddl(pos(200), "ALTER TABLE t ADD c FANCYTYPE", "d")
                .unwrap(),
            DdlOutcome::AlreadyApplied { .. }
        ));
        // Unknown tables: nothing to invalidate, history moves on.
        let out = h
            .apply_ddl(pos(300), "ALTER TABLE other ADD x INT", "d")
            .unwrap();
        assert!(matches!(out, DdlOutcome::Invalidated { .. }));
        assert_eq!(h.applied_through(), Some(&pos(300)));
    }

    #[test]
    fn record_in_the_past_keeps_latest() {
        let mut h = seeded();
        h.apply_ddl(pos(300), "ALTER TABLE t ADD b INT", "d")
            .unwrap();
        h.record(pos(200), meta("t", &[("x", "int(11)")]));
        assert_eq!(names(h.table_at("d", "t", &pos(250))), ["x"]);
        assert_eq!(names(h.latest("d", "t")), ["a", "b"]);
    }

    #[test]
    fn compaction_keeps_the_version_in_force() {
        let mut h = seeded();
        for (i, c) in ["b", "c", "e"].iter().enumerate() {
            let at = pos(200 + 100 * i as u64);
            h.apply_ddl(at, &format!("ALTER TABLE t ADD {c} INT"), "d")
                .unwrap();
        }
        h.apply_ddl(pos(500), "CREATE TABLE gone (a INT)", "d")
            .unwrap();
        h.apply_ddl(pos(510), "DROP TABLE gone", "d").unwrap();
        assert_eq!(h.version_count("d", "t"), 4);
        let removed = h.compact_before(&pos(350));
        assert_eq!(removed, 2);
        assert_eq!(names(h.table_at("d", "t", &pos(350))), ["a", "b", "c"]);
        assert_eq!(names(h.table_at("d", "t", &pos(400))), ["a", "b", "c", "e"]);
        assert!(h.table_at("d", "t", &pos(250)).is_none());
        // The dropped table disappears entirely once its tombstone is in force.
        assert_eq!(h.version_count("d", "gone"), 2);
        h.compact_before(&pos(600));
        assert_eq!(h.version_count("d", "gone"), 0);
        assert_eq!(h.version_count("d", "t"), 1);
        assert!(h.table_at("d", "gone", &pos(600)).is_none());
    }

    #[test]
    fn retention_bound() {
        let mut h = seeded().with_config(HistoryConfig {
            max_versions_per_table: 2,
        });
        for i in 0..5u64 {
            h.apply_ddl(pos(200 + i), &format!("ALTER TABLE t ADD c{i} INT"), "d")
                .unwrap();
        }
        assert_eq!(h.version_count("d", "t"), 2);
        assert!(h.table_at("d", "t", &pos(202)).is_none());
        assert_eq!(h.table_at("d", "t", &pos(203)).unwrap().columns.len(), 5);
        assert_eq!(h.latest("d", "t").unwrap().columns.len(), 6);
        let h = h.with_config(HistoryConfig {
            max_versions_per_table: 0,
        });
        assert_eq!(h.config().max_versions_per_table, 1);
        assert_eq!(h.version_count("d", "t"), 1);
    }
}
