//! What moves between the stages of a pipeline: row changes after Extract/Transform, and DDL.

use serde::{Deserialize, Serialize};

/// The kind of a row change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum RowKind {
    /// A new row (`columns` is the after image).
    Insert,
    /// A changed row (`columns` is the after image; `old_keys` set when the key changed).
    Update,
    /// A removed row (`columns` is the before image).
    Delete,
}

/// One column value, as Canal's text.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ColumnValue {
    /// Column name (the target's after Transform).
    pub name: String,
    /// Canal's value text; `None` for SQL NULL. Binary values are Canal's ISO-8859-1 text: each
    /// char is one byte.
    pub value: Option<String>,
    /// `java.sql.Types` code from the entry (tells Load how to write the literal).
    pub sql_type: i32,
    /// Part of the primary key.
    pub is_key: bool,
}

/// One row change, ready for Load.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RowEvent {
    /// Schema (the target's after Transform).
    pub schema: String,
    /// Table (the target's after Transform).
    pub table: String,
    /// Insert, update or delete.
    pub kind: RowKind,
    /// The row image with the pipeline's column view applied; key columns always present.
    pub columns: Vec<ColumnValue>,
    /// For an UPDATE that changed the primary key: the key columns before the change.
    pub old_keys: Option<Vec<ColumnValue>>,
    /// For conflict detection ([`crate::pipeline::load::conflict`]), only on tables that detect
    /// conflicts: the row the target should hold before this change, with the column view
    /// applied (`None`: no row; an INSERT). After [`crate::pipeline::load::merge`], the first
    /// change's of the key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub before: Option<Vec<ColumnValue>>,
    /// After [`crate::pipeline::load::merge`], on tables that detect conflicts: the rows this key
    /// passed through inside the batch before its final one. A target found holding one of them
    /// is a replay of this history (after a failover the batches are cut differently), not a
    /// conflict.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub history: Vec<Vec<ColumnValue>>,
    /// Loading order across tables (lower first).
    pub weight: u32,
    /// Binlog event time, ms since the epoch.
    pub execute_time: i64,
}

impl RowEvent {
    /// The key columns of the image.
    pub fn keys(&self) -> impl Iterator<Item = &ColumnValue> {
        self.columns.iter().filter(|c| c.is_key)
    }
}

/// A DDL statement to apply on the target (when the pipeline syncs DDL).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DdlEvent {
    /// Schema the statement ran in on the source (the target's after Transform).
    pub schema: String,
    /// Table the statement names, if any (the target's after Transform).
    #[serde(default)]
    pub table: String,
    /// The statement.
    pub sql: String,
    /// Binlog event time, ms since the epoch.
    pub execute_time: i64,
}

/// From `rows[from]` on (up to the next run), the changes were first written at `origin`; `None`
/// is the pipeline's own source site. Load marks each transaction with its origin
/// ([`crate::pipeline::loopback`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OriginRun {
    /// The first row of the run (0 for a DDL batch).
    pub from: usize,
    /// The site, when not the pipeline's source.
    pub origin: Option<String>,
}

/// A table whose rows Load checks for conflicts ([`crate::pipeline::load::conflict`]), with how
/// they are resolved.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckedTable {
    /// Schema (the target's after Transform).
    pub schema: String,
    /// Table (the target's after Transform).
    pub table: String,
    /// How conflicts are resolved.
    pub policy: crate::model::ConflictPolicy,
    /// For `newer_wins`: the version column.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version_column: Option<String>,
}

/// The data of one process (batch) after Transform: what Load applies.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoadBatch {
    /// Row changes in binlog order.
    pub rows: Vec<RowEvent>,
    /// DDL, alone in its batch (`rows` is then empty).
    pub ddl: Option<DdlEvent>,
    /// Where the changes were first written, when not all at the pipeline's source (empty: all
    /// there). Runs in order of `from`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub origins: Vec<OriginRun>,
    /// The newest heartbeat of this pipeline in the batch: the source's clock when it was written,
    /// ms since the epoch ([`crate::pipeline::heartbeat`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub heartbeat: Option<i64>,
    /// Tables of `rows` checked for conflicts.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub checked: Vec<CheckedTable>,
}

impl LoadBatch {
    /// Notes that the rows pushed from now on were first written at `origin`.
    pub fn set_origin(&mut self, origin: Option<&str>) {
        let current = self.origins.last().and_then(|r| r.origin.as_deref());
        if current == origin {
            return;
        }
        let from = self.rows.len();
        if self.origins.last().is_some_and(|r| r.from == from) {
            self.origins.pop();
            if self.origins.last().and_then(|r| r.origin.as_deref()) == origin {
                return;
            }
        }
        self.origins.push(OriginRun {
            from,
            origin: origin.map(str::to_string),
        });
    }

    /// The rows split into runs of one origin, in order: `(origin, rows)`.
    pub fn origin_runs(
        rows: Vec<RowEvent>,
        origins: &[OriginRun],
    ) -> Vec<(Option<String>, Vec<RowEvent>)> {
        let mut out: Vec<(Option<String>, Vec<RowEvent>)> = Vec::new();
        let mut bounds = origins.iter().peekable();
        let mut current: Option<String> = None;
        for (i, row) in rows.into_iter().enumerate() {
            while let Some(r) = bounds.peek() {
                if r.from > i {
                    break;
                }
                current = r.origin.clone();
                bounds.next();
            }
            match out.last_mut() {
                Some((o, rows)) if *o == current => rows.push(row),
                _ => out.push((current.clone(), vec![row])),
            }
        }
        out
    }

    /// The origin of the batch's DDL (the run starting at 0).
    pub fn ddl_origin(&self) -> Option<&str> {
        self.origins
            .iter()
            .take_while(|r| r.from == 0)
            .last()
            .and_then(|r| r.origin.as_deref())
    }
}
