//! Load: applies a batch to the target MySQL.
//!
//! A batch is first [merged](merge) so that every primary key is written once, then turned into
//! SQL: per table, `DELETE … WHERE key IN (…)` for removed rows and multi-row
//! `INSERT … ON DUPLICATE KEY UPDATE` (upserts) for inserted and updated rows, in chunks bounded
//! by rows and bytes. Tables are loaded in ascending weight; tables of one weight in parallel,
//! each in one transaction on its own connection (deletes first, then upserts). Every statement is
//! an upsert or a delete by key, so replaying a batch after a crash or a retry is harmless.
//!
//! Values are written as literals from Canal's text, chosen by `java.sql.Types` code: numbers are
//! validated and written as is, binary values as `X'…'` of their ISO-8859-1 bytes, and every other
//! value either as a plain `'…'` literal when it only holds characters that need no escaping
//! (dates, times, simple words) or as `_utf8mb4 X'…'` of its UTF-8 bytes. Nothing from the input
//! ever reaches the SQL text unvalidated or unencoded, whatever the target's `sql_mode`
//! (`NO_BACKSLASH_ESCAPES`, `ANSI_QUOTES`).
//!
//! A retryable failure (lost or refused connection, deadlock, lock wait timeout, server shutdown)
//! rolls the table's transaction back and redoes it after a capped exponential backoff, until the
//! load is cancelled.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Opts, OptsBuilder, Pool, PoolConstraints, PoolOpts, TxOpts};
use tokio_util::sync::CancellationToken;
use tracing::warn;

use crate::batch::{ColumnValue, DdlEvent, LoadBatch, RowEvent, RowKind};
use crate::model::TargetDb;

/// Most connections the [`Loader`] opens to the target (tables of one weight beyond this wait).
pub const MAX_CONNECTIONS: usize = 8;
/// Most rows in one `INSERT` or `DELETE` statement.
pub const CHUNK_ROWS: usize = 500;
/// Statements are cut before they grow past this many bytes (a single larger row is sent alone).
pub const CHUNK_BYTES: usize = 1 << 20;
/// First wait before redoing a table's transaction after a retryable error.
pub const BACKOFF_MIN: Duration = Duration::from_millis(100);
/// Longest wait between two attempts.
pub const BACKOFF_MAX: Duration = Duration::from_secs(5);
/// How much of a failed statement an error shows.
const SQL_IN_ERROR: usize = 200;

/// `java.sql.Types` codes Load distinguishes.
mod types {
    pub const BIT: i32 = -7;
    pub const TINYINT: i32 = -6;
    pub const SMALLINT: i32 = 5;
    pub const INTEGER: i32 = 4;
    pub const BIGINT: i32 = -5;
    pub const DECIMAL: i32 = 3;
    pub const NUMERIC: i32 = 2;
    pub const REAL: i32 = 7;
    pub const FLOAT: i32 = 6;
    pub const DOUBLE: i32 = 8;
    pub const BINARY: i32 = -2;
    pub const VARBINARY: i32 = -3;
    pub const LONGVARBINARY: i32 = -4;
    pub const BLOB: i32 = 2004;
}

/// Why a load (or a table check) failed.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The target address is not `host:port`.
    #[error("target address `{address}`: {reason}")]
    Address {
        /// The configured address.
        address: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A replicated table is missing on the target.
    #[error("target table `{table}` does not exist")]
    NoTable {
        /// `schema.table`.
        table: String,
    },
    /// A replicated table has no primary key on the target.
    #[error("target table `{table}` has no primary key; otter needs one to merge and upsert rows")]
    NoPrimaryKey {
        /// `schema.table`.
        table: String,
    },
    /// A row change carries no key column, so it cannot be deleted by key.
    #[error("table `{table}`: a row change carries no key column; otter needs the primary key to merge and delete rows")]
    NoKey {
        /// `schema.table`.
        table: String,
    },
    /// A value cannot be written as a literal of its type (e.g. a number that is not a number).
    #[error("table `{table}`, column `{column}` (java.sql.Types {sql_type}): {reason}")]
    BadValue {
        /// `schema.table`.
        table: String,
        /// Column name.
        column: String,
        /// `java.sql.Types` code of the column.
        sql_type: i32,
        /// What is wrong, with the start of the value.
        reason: String,
    },
    /// A schema, table or column name that MySQL cannot quote (it contains NUL or is empty).
    #[error("bad identifier {ident:?} in table `{table}`: {reason}")]
    BadIdentifier {
        /// `schema.table`.
        table: String,
        /// The identifier.
        ident: String,
        /// What is wrong.
        reason: String,
    },
    /// A batch holds both DDL and row changes (Extract keeps DDL alone in its batch).
    #[error("batch holds DDL and {rows} row changes; DDL must be alone in its batch")]
    DdlWithRows {
        /// Number of row changes next to the DDL.
        rows: usize,
    },
    /// A statement failed with an error that retrying cannot fix (unknown column, bad value…).
    #[error("`{table}`: {source}; statement: {sql}")]
    Sql {
        /// `schema.table` (for DDL: the schema).
        table: String,
        /// The first 200 characters of the statement.
        sql: String,
        /// The driver's error.
        #[source]
        source: mysql_async::Error,
    },
    /// The load was cancelled (its `stop` token) before it completed; the batch may be partly
    /// applied and is to be loaded again.
    #[error("load cancelled")]
    Cancelled,
}

/// What a [`Loader::load`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LoadStats {
    /// Row changes written after [`merge`] (one per key and table).
    pub rows: usize,
    /// Statements executed in the attempts that committed (DDL counts one).
    pub statements: usize,
    /// Transactions (or DDL) redone after a retryable error.
    pub retries: usize,
}

impl LoadStats {
    fn add(&mut self, other: LoadStats) {
        self.rows += other.rows;
        self.statements += other.statements;
        self.retries += other.retries;
    }
}

// ---------------------------------------------------------------------------------------------
// Merge

/// Identity of a row: schema, table and the key columns sorted by name, each part
/// length-prefixed into one string (one allocation per row, and no separator can be forged).
type RowKey = String;

fn row_key<'a>(schema: &str, table: &str, keys: impl Iterator<Item = &'a ColumnValue>) -> RowKey {
    use std::fmt::Write as _;
    let mut keys: Vec<&ColumnValue> = keys.collect();
    if keys.len() > 1 {
        keys.sort_by(|a, b| a.name.cmp(&b.name));
    }
    let mut k = String::with_capacity(
        schema.len()
            + table.len()
            + keys
                .iter()
                .map(|c| c.name.len() + c.value.as_ref().map_or(0, |v| v.len()) + 12)
                .sum::<usize>()
            + 8,
    );
    let part = |k: &mut String, s: Option<&str>| match s {
        Some(s) => {
            let _ = write!(k, "{}:", s.len());
            k.push_str(s);
        }
        // SQL NULL: a length no value has.
        None => k.push_str("-:"),
    };
    part(&mut k, Some(schema));
    part(&mut k, Some(table));
    for c in &keys {
        part(&mut k, Some(&c.name));
        part(&mut k, c.value.as_deref());
    }
    if keys.is_empty() {
        // No key columns: the caller keeps such rows unmerged.
        k.clear();
    }
    k
}

/// `earlier`'s columns in their order with `later`'s values, then `later`'s other columns.
fn overlay(mut earlier: Vec<ColumnValue>, later: Vec<ColumnValue>) -> Vec<ColumnValue> {
    for c in later {
        match earlier.iter_mut().find(|e| e.name == c.name) {
            Some(e) => *e = c,
            None => earlier.push(c),
        }
    }
    earlier
}

/// The final operation for a key whose pending operation is `prev` when `next` arrives.
fn combine(prev: RowEvent, next: RowEvent) -> RowEvent {
    match (next.kind, prev.kind) {
        // A delete removes whatever came before; an insert replaces it (written as an upsert).
        (RowKind::Delete, _) | (RowKind::Insert, _) => next,
        // An update of a row inserted or updated in this batch: one image, later values win,
        // columns only the earlier image has are kept.
        (RowKind::Update, RowKind::Insert) | (RowKind::Update, RowKind::Update) => RowEvent {
            kind: prev.kind,
            columns: overlay(prev.columns, next.columns),
            ..next
        },
        // An update after a delete of the same key: the update's image is upserted.
        (RowKind::Update, RowKind::Delete) => next,
    }
}

/// Merges row changes so that each (schema, table, primary key) is written once.
///
/// Rules, per key: insert + update → insert with the final image; update + update → update with
/// the final image (columns only an earlier image has are kept, later values win); update or
/// insert + delete → delete; delete + insert → insert (written as an upsert, it replaces the
/// row). An update with `old_keys` (the primary key changed) becomes a delete of the old key and
/// an upsert of the new one, carrying the old key's pending image; chains (A→B, B→C) delete A and
/// B and upsert C. The result keeps the order in which keys first appeared and has no `old_keys`.
/// Rows without key columns are kept as they are, unmerged.
pub fn merge(rows: impl IntoIterator<Item = RowEvent>) -> Vec<RowEvent> {
    let rows = rows.into_iter();
    let mut slots: Vec<RowEvent> = Vec::with_capacity(rows.size_hint().0);
    let mut index: HashMap<RowKey, usize> = HashMap::with_capacity(rows.size_hint().0);
    for mut next in rows {
        let new_key = row_key(&next.schema, &next.table, next.keys());
        if let (RowKind::Update, Some(old)) = (next.kind, next.old_keys.take()) {
            let old_key = row_key(&next.schema, &next.table, old.iter());
            if !old_key.is_empty() && old_key != new_key {
                let delete = RowEvent {
                    schema: next.schema.clone(),
                    table: next.table.clone(),
                    kind: RowKind::Delete,
                    columns: old
                        .into_iter()
                        .map(|c| ColumnValue { is_key: true, ..c })
                        .collect(),
                    old_keys: None,
                    weight: next.weight,
                    execute_time: next.execute_time,
                };
                match index.get(&old_key) {
                    Some(&i) => {
                        let prev = std::mem::replace(&mut slots[i], delete);
                        if prev.kind != RowKind::Delete {
                            // The row moved: its pending image goes with it to the new key.
                            let carried = prev.columns.into_iter().filter(|c| !c.is_key);
                            let mut columns = std::mem::take(&mut next.columns);
                            for c in carried {
                                if !columns.iter().any(|n| n.name == c.name) {
                                    columns.push(c);
                                }
                            }
                            next.columns = columns;
                            if prev.kind == RowKind::Insert {
                                next.kind = RowKind::Insert;
                            }
                        }
                    }
                    None => {
                        index.insert(old_key, slots.len());
                        slots.push(delete);
                    }
                }
            }
        }
        if new_key.is_empty() {
            slots.push(next);
            continue;
        }
        match index.get(&new_key) {
            Some(&i) => {
                let prev = std::mem::replace(&mut slots[i], placeholder());
                slots[i] = combine(prev, next);
            }
            None => {
                index.insert(new_key, slots.len());
                slots.push(next);
            }
        }
    }
    slots
}

fn placeholder() -> RowEvent {
    RowEvent {
        schema: String::new(),
        table: String::new(),
        kind: RowKind::Delete,
        columns: Vec::new(),
        old_keys: None,
        weight: 0,
        execute_time: 0,
    }
}

// ---------------------------------------------------------------------------------------------
// SQL literals

/// Appends `` `ident` `` with backticks doubled.
fn push_ident(out: &mut String, ident: &str, table: &str) -> Result<(), LoadError> {
    if ident.is_empty() || ident.contains('\0') {
        return Err(LoadError::BadIdentifier {
            table: table.to_string(),
            ident: ident.to_string(),
            reason: if ident.is_empty() {
                "empty".into()
            } else {
                "contains NUL".into()
            },
        });
    }
    out.push('`');
    for ch in ident.chars() {
        if ch == '`' {
            out.push('`');
        }
        out.push(ch);
    }
    out.push('`');
    Ok(())
}

fn is_integer(s: &str) -> bool {
    let digits = s.strip_prefix(['-', '+']).unwrap_or(s);
    !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())
}

/// `[+-]` (digits [`.` digits*] | `.` digits) [(`e`|`E`) [+-] digits]
fn is_number(s: &str) -> bool {
    let s = s.strip_prefix(['-', '+']).unwrap_or(s);
    let (mantissa, exponent) = match s.find(['e', 'E']) {
        Some(i) => (&s[..i], Some(&s[i + 1..])),
        None => (s, None),
    };
    let (int, frac) = match mantissa.split_once('.') {
        Some((i, f)) => (i, Some(f)),
        None => (mantissa, None),
    };
    let all_digits = |t: &str| t.bytes().all(|b| b.is_ascii_digit());
    let mantissa_ok = all_digits(int)
        && frac.is_none_or(all_digits)
        && !(int.is_empty() && frac.is_none_or(str::is_empty));
    let exponent_ok = exponent.is_none_or(|e| {
        let e = e.strip_prefix(['-', '+']).unwrap_or(e);
        !e.is_empty() && all_digits(e)
    });
    mantissa_ok && exponent_ok
}

/// Characters a `'…'` literal may hold as they are: no quote, backslash, control or non-ASCII
/// character, so the literal means the same under every `sql_mode` and connection charset.
fn is_plain(s: &str) -> bool {
    s.bytes()
        .all(|b| b.is_ascii_alphanumeric() || b" -:._+,/@#=".contains(&b))
}

const HEX: &[u8; 16] = b"0123456789ABCDEF";

fn push_hex(out: &mut String, bytes: impl Iterator<Item = u8>) {
    for b in bytes {
        out.push(HEX[usize::from(b >> 4)] as char);
        out.push(HEX[usize::from(b & 0xF)] as char);
    }
}

fn preview(value: &str) -> String {
    let mut p: String = value.chars().take(40).collect();
    if p.len() < value.len() {
        p.push('…');
    }
    format!("{p:?}")
}

/// Appends the SQL literal of `col` (`table` names it in errors).
fn push_literal(out: &mut String, col: &ColumnValue, table: &str) -> Result<(), LoadError> {
    let Some(value) = col.value.as_deref() else {
        out.push_str("NULL");
        return Ok(());
    };
    let bad = |reason: String| LoadError::BadValue {
        table: table.to_string(),
        column: col.name.clone(),
        sql_type: col.sql_type,
        reason,
    };
    match col.sql_type {
        types::TINYINT | types::SMALLINT | types::INTEGER | types::BIGINT | types::BIT => {
            if !is_integer(value) {
                return Err(bad(format!("not an integer: {}", preview(value))));
            }
            out.push_str(value);
        }
        types::DECIMAL | types::NUMERIC | types::REAL | types::FLOAT | types::DOUBLE => {
            if !is_number(value) {
                return Err(bad(format!("not a number: {}", preview(value))));
            }
            out.push_str(value);
        }
        types::BINARY | types::VARBINARY | types::LONGVARBINARY | types::BLOB => {
            if value.is_empty() {
                out.push_str("''");
                return Ok(());
            }
            if let Some(c) = value.chars().find(|&c| u32::from(c) > 0xFF) {
                return Err(bad(format!(
                    "binary value holds U+{:04X}, which is not an ISO-8859-1 byte",
                    u32::from(c)
                )));
            }
            out.push_str("X'");
            // Every char is ≤ U+00FF (checked above), so the cast keeps it whole.
            push_hex(out, value.chars().map(|c| u32::from(c) as u8));
            out.push('\'');
        }
        _ => {
            if is_plain(value) {
                out.push('\'');
                out.push_str(value);
                out.push('\'');
            } else {
                out.push_str("_utf8mb4 X'");
                push_hex(out, value.bytes());
                out.push('\'');
            }
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Statements

/// One table's share of a batch: the statements of its transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
struct TablePlan {
    /// `schema.table`, for errors and logs.
    name: String,
    /// Deletes first, then upserts.
    statements: Vec<String>,
    /// Row changes the statements write.
    rows: usize,
}

/// Collects rendered tuples into statements `prefix tuple,tuple… suffix` of at most
/// [`CHUNK_ROWS`] tuples and about [`CHUNK_BYTES`] bytes.
struct Chunker<'a> {
    prefix: String,
    suffix: String,
    current: String,
    count: usize,
    out: &'a mut Vec<String>,
}

impl<'a> Chunker<'a> {
    fn new(prefix: String, suffix: String, out: &'a mut Vec<String>) -> Self {
        Chunker {
            current: String::new(),
            prefix,
            suffix,
            count: 0,
            out,
        }
    }

    fn push(&mut self, tuple: &str) {
        if self.count > 0
            && (self.count >= CHUNK_ROWS
                || self.current.len() + 1 + tuple.len() + self.suffix.len() > CHUNK_BYTES)
        {
            self.flush();
        }
        if self.count == 0 {
            self.current.push_str(&self.prefix);
        } else {
            self.current.push(',');
        }
        self.current.push_str(tuple);
        self.count += 1;
    }

    fn flush(&mut self) {
        if self.count > 0 {
            self.current.push_str(&self.suffix);
            self.out.push(std::mem::take(&mut self.current));
            self.count = 0;
        }
    }
}

impl Drop for Chunker<'_> {
    fn drop(&mut self) {
        self.flush();
    }
}

fn qualified(schema: &str, table: &str, name: &str) -> Result<String, LoadError> {
    let mut s = String::new();
    push_ident(&mut s, schema, name)?;
    s.push('.');
    push_ident(&mut s, table, name)?;
    Ok(s)
}

/// `(a,b)` of the columns' literals (`a` alone when `parens` is false).
fn tuple<'c>(
    cols: impl Iterator<Item = &'c ColumnValue>,
    parens: bool,
    name: &str,
) -> Result<String, LoadError> {
    let mut t = String::new();
    if parens {
        t.push('(');
    }
    for (i, c) in cols.enumerate() {
        if i > 0 {
            t.push(',');
        }
        push_literal(&mut t, c, name)?;
    }
    if parens {
        t.push(')');
    }
    Ok(t)
}

/// Appends `DELETE … WHERE key IN (…)` statements for `rows` (deletes) to `out`.
fn delete_statements(
    schema: &str,
    table: &str,
    rows: &[&RowEvent],
    out: &mut Vec<String>,
) -> Result<(), LoadError> {
    let name = format!("{schema}.{table}");
    let target = qualified(schema, table, &name)?;
    // Group by the list of key column names (normally one group).
    let mut groups: Vec<(Vec<&str>, Vec<&RowEvent>)> = Vec::new();
    for row in rows {
        let keys: Vec<&str> = row.keys().map(|c| c.name.as_str()).collect();
        if keys.is_empty() {
            return Err(LoadError::NoKey { table: name });
        }
        match groups.iter_mut().find(|(k, _)| *k == keys) {
            Some((_, g)) => g.push(row),
            None => groups.push((keys, vec![row])),
        }
    }
    for (keys, group) in groups {
        let composite = keys.len() > 1;
        let mut prefix = format!("DELETE FROM {target} WHERE ");
        if composite {
            prefix.push('(');
        }
        for (i, k) in keys.iter().enumerate() {
            if i > 0 {
                prefix.push(',');
            }
            push_ident(&mut prefix, k, &name)?;
        }
        if composite {
            prefix.push(')');
        }
        prefix.push_str(" IN (");
        let mut chunker = Chunker::new(prefix, ")".into(), out);
        for row in group {
            chunker.push(&tuple(row.keys(), composite, &name)?);
        }
    }
    Ok(())
}

/// Appends `INSERT … ON DUPLICATE KEY UPDATE` statements for `rows` (inserts and updates) to
/// `out`, one group per identical column list.
fn upsert_statements(
    schema: &str,
    table: &str,
    rows: &[&RowEvent],
    out: &mut Vec<String>,
) -> Result<(), LoadError> {
    let name = format!("{schema}.{table}");
    let target = qualified(schema, table, &name)?;
    // (column name, is key) lists, each with its rows.
    type Columns<'r> = Vec<(&'r str, bool)>;
    let mut groups: Vec<(Columns<'_>, Vec<&RowEvent>)> = Vec::new();
    for row in rows {
        let cols: Vec<(&str, bool)> = row
            .columns
            .iter()
            .map(|c| (c.name.as_str(), c.is_key))
            .collect();
        match groups.iter_mut().find(|(k, _)| *k == cols) {
            Some((_, g)) => g.push(row),
            None => groups.push((cols, vec![row])),
        }
    }
    for (cols, group) in groups {
        if cols.is_empty() {
            return Err(LoadError::NoKey { table: name });
        }
        let mut prefix = format!("INSERT INTO {target} (");
        for (i, (c, _)) in cols.iter().enumerate() {
            if i > 0 {
                prefix.push(',');
            }
            push_ident(&mut prefix, c, &name)?;
        }
        prefix.push_str(") VALUES ");
        // Non-key columns take the new values; a table of only key columns needs a no-op
        // assignment to stay an upsert.
        let mut assign: Vec<&str> = cols.iter().filter(|c| !c.1).map(|c| c.0).collect();
        if assign.is_empty() {
            assign.push(cols[0].0);
        }
        let mut suffix = String::from(" ON DUPLICATE KEY UPDATE ");
        for (i, c) in assign.iter().enumerate() {
            if i > 0 {
                suffix.push(',');
            }
            let mut q = String::new();
            push_ident(&mut q, c, &name)?;
            let _ = write!(suffix, "{q}=VALUES({q})");
        }
        let mut chunker = Chunker::new(prefix, suffix, out);
        for row in group {
            chunker.push(&tuple(row.columns.iter(), true, &name)?);
        }
    }
    Ok(())
}

/// Tables of merged rows grouped by weight (ascending), each with its statements.
fn plan(merged: &[RowEvent]) -> Result<Vec<(u32, Vec<TablePlan>)>, LoadError> {
    struct Group<'r> {
        weight: u32,
        schema: &'r str,
        table: &'r str,
        deletes: Vec<&'r RowEvent>,
        upserts: Vec<&'r RowEvent>,
    }
    let mut groups: Vec<Group<'_>> = Vec::new();
    let mut index: HashMap<(u32, &str, &str), usize> = HashMap::new();
    for row in merged {
        let k = (row.weight, row.schema.as_str(), row.table.as_str());
        let i = *index.entry(k).or_insert_with(|| {
            groups.push(Group {
                weight: row.weight,
                schema: &row.schema,
                table: &row.table,
                deletes: Vec::new(),
                upserts: Vec::new(),
            });
            groups.len() - 1
        });
        match row.kind {
            RowKind::Delete => groups[i].deletes.push(row),
            RowKind::Insert | RowKind::Update => groups[i].upserts.push(row),
        }
    }
    // Stable: tables of one weight keep their first-appearance order.
    groups.sort_by_key(|g| g.weight);
    let mut out: Vec<(u32, Vec<TablePlan>)> = Vec::new();
    for g in groups {
        let mut statements = Vec::new();
        delete_statements(g.schema, g.table, &g.deletes, &mut statements)?;
        upsert_statements(g.schema, g.table, &g.upserts, &mut statements)?;
        let table = TablePlan {
            name: format!("{}.{}", g.schema, g.table),
            statements,
            rows: g.deletes.len() + g.upserts.len(),
        };
        match out.last_mut() {
            Some((w, tables)) if *w == g.weight => tables.push(table),
            _ => out.push((g.weight, vec![table])),
        }
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------------------
// Errors: which ones a retry can fix

/// Server error codes a retry can fix.
const RETRYABLE_CODES: &[u16] = &[
    1040, // ER_CON_COUNT_ERROR: too many connections
    1053, // ER_SERVER_SHUTDOWN
    1158, // ER_NET_READ_ERROR
    1159, // ER_NET_READ_INTERRUPTED
    1160, // ER_NET_ERROR_ON_WRITE
    1161, // ER_NET_WRITE_INTERRUPTED
    1205, // ER_LOCK_WAIT_TIMEOUT
    1213, // ER_LOCK_DEADLOCK
    1317, // ER_QUERY_INTERRUPTED
    1927, // ER_CONNECTION_KILLED (MariaDB)
    2006, // CR_SERVER_GONE_ERROR
    2013, // CR_SERVER_LOST
    4031, // ER_CLIENT_INTERACTION_TIMEOUT (MySQL 8)
];

/// Whether redoing the transaction may succeed: connection and I/O failures, deadlocks, lock
/// wait timeouts, a server going away or shutting down.
fn is_retryable(e: &mysql_async::Error) -> bool {
    use mysql_async::{DriverError, Error};
    match e {
        Error::Io(_) => true,
        Error::Server(s) => RETRYABLE_CODES.contains(&s.code),
        Error::Driver(d) => matches!(
            d,
            DriverError::ConnectionClosed
                | DriverError::PacketOutOfOrder
                | DriverError::UnexpectedPacket { .. }
        ),
        Error::Other(_) | Error::Url(_) => false,
    }
}

/// DDL errors that mean the statement was already applied (a replayed batch, or a retry after
/// the connection dropped while the DDL ran): the table, database, column or index exists, or
/// what is dropped is already gone.
const DDL_ALREADY_APPLIED: &[u16] = &[
    1007, // ER_DB_CREATE_EXISTS
    1008, // ER_DB_DROP_EXISTS
    1050, // ER_TABLE_EXISTS_ERROR
    1051, // ER_BAD_TABLE_ERROR (DROP TABLE of a missing table)
    1060, // ER_DUP_FIELDNAME
    1061, // ER_DUP_KEYNAME
    1091, // ER_CANT_DROP_FIELD_OR_KEY
];

fn server_code(e: &mysql_async::Error) -> Option<u16> {
    match e {
        mysql_async::Error::Server(s) => Some(s.code),
        _ => None,
    }
}

fn sql_excerpt(sql: &str) -> String {
    sql.chars().take(SQL_IN_ERROR).collect()
}

/// A failed attempt: the error and the statement it came from.
struct Failure {
    error: mysql_async::Error,
    sql: String,
}

fn failure(sql: &str) -> impl FnOnce(mysql_async::Error) -> Failure + '_ {
    move |error| Failure {
        error,
        sql: sql.to_string(),
    }
}

// ---------------------------------------------------------------------------------------------
// Loader

/// Writes batches into the target database through a bounded connection pool.
#[derive(Debug)]
pub struct Loader {
    pool: Pool,
    opts: Opts,
    retries: AtomicU64,
}

/// Splits `host:port` (`[v6]:port`; no port means 3306).
fn parse_address(address: &str) -> Result<(String, u16), LoadError> {
    let bad = |reason: &str| LoadError::Address {
        address: address.to_string(),
        reason: reason.to_string(),
    };
    let address = address.trim();
    let (host, port) = if let Some(rest) = address.strip_prefix('[') {
        let (host, after) = rest
            .split_once(']')
            .ok_or_else(|| bad("missing `]` after an IPv6 address"))?;
        match after {
            "" => (host, None),
            p => (
                host,
                Some(
                    p.strip_prefix(':')
                        .ok_or_else(|| bad("expected `:port` after `]`"))?,
                ),
            ),
        }
    } else {
        match address.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (address, None),
        }
    };
    if host.is_empty() {
        return Err(bad("no host; expected `host:port`"));
    }
    let port = match port {
        None => 3306,
        Some(p) => p
            .parse::<u16>()
            .ok()
            .filter(|&p| p != 0)
            .ok_or_else(|| bad("the port is not a number in 1..=65535"))?,
    };
    Ok((host.to_string(), port))
}

impl Loader {
    /// A loader for `target` with a pool of at most [`MAX_CONNECTIONS`] connections (opened on
    /// demand; nothing is connected yet).
    pub fn new(target: &TargetDb) -> Result<Self, LoadError> {
        let (host, port) = parse_address(&target.address)?;
        let constraints = PoolConstraints::new(0, MAX_CONNECTIONS).unwrap_or_default();
        let pool_opts = PoolOpts::default()
            .with_constraints(constraints)
            .with_inactive_connection_ttl(Duration::from_secs(60));
        let password = (!target.password.is_empty()).then(|| target.password.clone());
        let opts: Opts = OptsBuilder::default()
            .ip_or_hostname(host)
            .tcp_port(port)
            .user(Some(target.username.clone()))
            .pass(password)
            .prefer_socket(false)
            .tcp_keepalive(Some(Duration::from_secs(30)))
            .pool_opts(pool_opts)
            .into();
        Ok(Loader {
            pool: Pool::new(opts.clone()),
            opts,
            retries: AtomicU64::new(0),
        })
    }

    /// Retries (of table transactions and DDL) since the loader was created, over all loads.
    pub fn total_retries(&self) -> u64 {
        self.retries.load(Ordering::Relaxed)
    }

    /// Closes the pool's connections.
    pub async fn close(self) {
        if let Err(e) = self.pool.disconnect().await {
            warn!(error = %e, "load: closing the target connection pool");
        }
    }

    /// Checks that every `(schema, table)` exists on the target and has a PRIMARY KEY.
    pub async fn check_tables(&self, tables: &[(String, String)]) -> Result<(), LoadError> {
        const EXISTS: &str = "SELECT COUNT(*) FROM information_schema.TABLES \
                              WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?";
        const HAS_PK: &str = "SELECT COUNT(*) FROM information_schema.TABLE_CONSTRAINTS \
                              WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? \
                              AND CONSTRAINT_TYPE = 'PRIMARY KEY'";
        let Some((schema, table)) = tables.first() else {
            return Ok(());
        };
        let sql_err = |table: String, sql: &str| {
            let sql = sql.to_string();
            move |source| LoadError::Sql { table, sql, source }
        };
        let mut conn = self
            .pool
            .get_conn()
            .await
            .map_err(sql_err(format!("{schema}.{table}"), "(connect)"))?;
        for (schema, table) in tables {
            let name = format!("{schema}.{table}");
            let exists: Option<u64> = conn
                .exec_first(EXISTS, (schema.as_str(), table.as_str()))
                .await
                .map_err(sql_err(name.clone(), EXISTS))?;
            if exists.unwrap_or(0) == 0 {
                return Err(LoadError::NoTable { table: name });
            }
            let pk: Option<u64> = conn
                .exec_first(HAS_PK, (schema.as_str(), table.as_str()))
                .await
                .map_err(sql_err(name.clone(), HAS_PK))?;
            if pk.unwrap_or(0) == 0 {
                return Err(LoadError::NoPrimaryKey { table: name });
            }
        }
        Ok(())
    }

    /// Applies `batch`: its DDL alone, or its row changes merged, table by table in ascending
    /// weight (tables of one weight in parallel), each table in one transaction. Retryable
    /// failures are retried with backoff until `stop` is cancelled ([`LoadError::Cancelled`]).
    /// Loading the same batch again leaves the target as it is.
    pub async fn load(
        &self,
        batch: LoadBatch,
        stop: &CancellationToken,
    ) -> Result<LoadStats, LoadError> {
        if stop.is_cancelled() {
            return Err(LoadError::Cancelled);
        }
        if let Some(ddl) = &batch.ddl {
            if !batch.rows.is_empty() {
                return Err(LoadError::DdlWithRows {
                    rows: batch.rows.len(),
                });
            }
            return self.load_ddl(ddl, stop).await;
        }
        let merged = merge(batch.rows);
        // Every statement is built before anything is written: a bad value fails the batch
        // without touching the target.
        let plan = plan(&merged)?;
        let mut stats = LoadStats::default();
        for (_weight, tables) in &plan {
            let results =
                futures::future::join_all(tables.iter().map(|t| self.load_table(t, stop))).await;
            let mut first_error = None;
            for r in results {
                match r {
                    Ok(s) => stats.add(s),
                    Err(e) => {
                        // Cancelled only if nothing worse happened.
                        if first_error.is_none()
                            || matches!(first_error, Some(LoadError::Cancelled))
                        {
                            first_error = Some(e);
                        }
                    }
                }
            }
            if let Some(e) = first_error {
                return Err(e);
            }
        }
        Ok(stats)
    }

    /// One table's transaction, redone after retryable failures.
    async fn load_table(
        &self,
        table: &TablePlan,
        stop: &CancellationToken,
    ) -> Result<LoadStats, LoadError> {
        let (outcome, retries) = self
            .with_retries(&table.name, stop, || self.apply_table(table))
            .await?;
        match outcome {
            Ok(()) => {
                metrics::counter!("otter_load_rows_total").increment(table.rows as u64);
                Ok(LoadStats {
                    rows: table.rows,
                    statements: table.statements.len(),
                    retries,
                })
            }
            Err(f) => Err(LoadError::Sql {
                table: table.name.clone(),
                sql: sql_excerpt(&f.sql),
                source: f.error,
            }),
        }
    }

    /// Runs `attempt` until it succeeds or fails with an error that is not retryable, waiting with
    /// a doubling backoff (`BACKOFF_MIN` to `BACKOFF_MAX`) after each retryable failure; cancelled
    /// when `stop` fires. Returns the last attempt's outcome and how many retries it took.
    async fn with_retries<F, Fut>(
        &self,
        what: &str,
        stop: &CancellationToken,
        mut attempt: F,
    ) -> Result<(Result<(), Failure>, usize), LoadError>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<(), Failure>>,
    {
        let mut retries = 0usize;
        let mut backoff = BACKOFF_MIN;
        loop {
            let outcome = tokio::select! {
                biased;
                _ = stop.cancelled() => return Err(LoadError::Cancelled),
                r = attempt() => r,
            };
            match outcome {
                Err(f) if is_retryable(&f.error) => {
                    retries += 1;
                    self.note_retry(what, &f.error, retries, backoff);
                    wait(backoff, stop).await?;
                    backoff = (backoff * 2).min(BACKOFF_MAX);
                }
                outcome => return Ok((outcome, retries)),
            }
        }
    }

    fn note_retry(&self, what: &str, error: &mysql_async::Error, attempt: usize, wait: Duration) {
        self.retries.fetch_add(1, Ordering::Relaxed);
        metrics::counter!("otter_load_retries_total").increment(1);
        warn!(
            table = %what,
            error = %error,
            attempt,
            wait_ms = wait.as_millis() as u64,
            "load: retryable error; rolling back and redoing the transaction"
        );
    }

    /// One attempt: deletes then upserts in one transaction, committed.
    async fn apply_table(&self, table: &TablePlan) -> Result<(), Failure> {
        let mut conn = self.pool.get_conn().await.map_err(failure("(connect)"))?;
        let mut tx = conn
            .start_transaction(TxOpts::default())
            .await
            .map_err(failure("START TRANSACTION"))?;
        for sql in &table.statements {
            if let Err(error) = tx.query_drop(sql.as_str()).await {
                if matches!(error, mysql_async::Error::Server(_)) {
                    // The connection still works: end the transaction now. (A broken one is
                    // dropped; the pool rolls back or discards it.)
                    let _ = tx.rollback().await;
                }
                return Err(Failure {
                    error,
                    sql: sql.clone(),
                });
            }
        }
        tx.commit().await.map_err(failure("COMMIT"))
    }

    /// Runs a DDL statement in its schema, on a connection of its own, retried like a table.
    async fn load_ddl(
        &self,
        ddl: &DdlEvent,
        stop: &CancellationToken,
    ) -> Result<LoadStats, LoadError> {
        let (outcome, retries) = self
            .with_retries(&ddl.schema, stop, || self.apply_ddl(ddl))
            .await?;
        let applied = LoadStats {
            rows: 0,
            statements: 1,
            retries,
        };
        match outcome {
            Ok(()) => Ok(applied),
            Err(f) if server_code(&f.error).is_some_and(|c| DDL_ALREADY_APPLIED.contains(&c)) => {
                warn!(
                    schema = %ddl.schema,
                    error = %f.error,
                    sql = %sql_excerpt(&ddl.sql),
                    "load: DDL already applied on the target; skipped"
                );
                Ok(applied)
            }
            Err(f) => Err(LoadError::Sql {
                table: ddl.schema.clone(),
                sql: sql_excerpt(&f.sql),
                source: f.error,
            }),
        }
    }

    async fn apply_ddl(&self, ddl: &DdlEvent) -> Result<(), Failure> {
        // A fresh connection: `USE` must not leak into pooled connections, and a DDL whose
        // schema does not exist yet (CREATE DATABASE) runs without a default schema.
        let mut conn = Conn::new(self.opts.clone())
            .await
            .map_err(failure("(connect)"))?;
        let result = async {
            if !ddl.schema.is_empty() {
                let mut use_sql = String::from("USE ");
                push_ident(&mut use_sql, &ddl.schema, &ddl.schema).map_err(|e| Failure {
                    error: mysql_async::Error::Other(Box::new(e)),
                    sql: "USE".into(),
                })?;
                match conn.query_drop(use_sql.as_str()).await {
                    Ok(()) => {}
                    // ER_BAD_DB_ERROR: the schema is created by this DDL (or does not exist).
                    Err(e) if server_code(&e) == Some(1049) => {}
                    Err(e) => {
                        return Err(Failure {
                            error: e,
                            sql: use_sql,
                        })
                    }
                }
            }
            conn.query_drop(ddl.sql.as_str())
                .await
                .map_err(failure(&ddl.sql))
        }
        .await;
        let _ = conn.disconnect().await;
        result
    }
}

/// Sleeps `d` unless `stop` is cancelled first.
async fn wait(d: Duration, stop: &CancellationToken) -> Result<(), LoadError> {
    tokio::select! {
        biased;
        _ = stop.cancelled() => Err(LoadError::Cancelled),
        _ = tokio::time::sleep(d) => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn col(name: &str, value: Option<&str>, sql_type: i32, is_key: bool) -> ColumnValue {
        ColumnValue {
            name: name.into(),
            value: value.map(str::to_string),
            sql_type,
            is_key,
        }
    }

    /// A row of `t` with key `id` and optional column `v` values.
    fn row(kind: RowKind, id: &str, cols: &[(&str, &str)]) -> RowEvent {
        let mut columns = vec![col("id", Some(id), 4, true)];
        for (n, v) in cols {
            columns.push(col(n, Some(v), 12, false));
        }
        RowEvent {
            schema: "s".into(),
            table: "t".into(),
            kind,
            columns,
            old_keys: None,
            weight: 0,
            execute_time: 0,
        }
    }

    fn moved(old: &str, new: &str, cols: &[(&str, &str)]) -> RowEvent {
        RowEvent {
            old_keys: Some(vec![col("id", Some(old), 4, true)]),
            ..row(RowKind::Update, new, cols)
        }
    }

    /// (kind, id, [(col, value)]) of merged rows, for compact assertions.
    type Summary = (RowKind, String, Vec<(String, String)>);

    fn summary(rows: &[RowEvent]) -> Vec<Summary> {
        rows.iter()
            .map(|r| {
                let id = r
                    .keys()
                    .map(|c| c.value.clone().unwrap_or_default())
                    .collect::<Vec<_>>()
                    .join(",");
                let cols = r
                    .columns
                    .iter()
                    .filter(|c| !c.is_key)
                    .map(|c| (c.name.clone(), c.value.clone().unwrap_or_default()))
                    .collect();
                (r.kind, id, cols)
            })
            .collect()
    }

    fn s(kind: RowKind, id: &str, cols: &[(&str, &str)]) -> Summary {
        (
            kind,
            id.to_string(),
            cols.iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect(),
        )
    }

    use RowKind::{Delete as D, Insert as I, Update as U};

    #[test]
    fn insert_then_update_is_insert_with_final_image() {
        let m = merge([
            row(I, "1", &[("a", "x"), ("b", "y")]),
            row(U, "1", &[("a", "z")]),
        ]);
        assert_eq!(summary(&m), vec![s(I, "1", &[("a", "z"), ("b", "y")])]);
    }

    #[test]
    fn update_then_update_keeps_earlier_columns_later_wins() {
        let m = merge([
            row(U, "1", &[("a", "1"), ("b", "1")]),
            row(U, "1", &[("b", "2"), ("c", "2")]),
        ]);
        assert_eq!(
            summary(&m),
            vec![s(U, "1", &[("a", "1"), ("b", "2"), ("c", "2")])]
        );
    }

    #[test]
    fn update_then_delete_is_delete() {
        let m = merge([row(U, "1", &[("a", "1")]), row(D, "1", &[("a", "1")])]);
        assert_eq!(summary(&m), vec![s(D, "1", &[("a", "1")])]);
    }

    #[test]
    fn insert_then_delete_is_delete() {
        let m = merge([row(I, "1", &[("a", "1")]), row(D, "1", &[("a", "1")])]);
        assert_eq!(summary(&m), vec![s(D, "1", &[("a", "1")])]);
    }

    #[test]
    fn delete_then_insert_is_insert() {
        let m = merge([row(D, "1", &[("a", "old")]), row(I, "1", &[("a", "new")])]);
        assert_eq!(summary(&m), vec![s(I, "1", &[("a", "new")])]);
    }

    #[test]
    fn pk_change_is_delete_old_and_upsert_new() {
        let m = merge([moved("1", "2", &[("a", "x")])]);
        assert_eq!(summary(&m), vec![s(D, "1", &[]), s(U, "2", &[("a", "x")])]);
        assert!(m.iter().all(|r| r.old_keys.is_none()));
    }

    #[test]
    fn pk_change_chain_deletes_every_old_key() {
        let m = merge([
            moved("A", "B", &[("a", "1")]),
            moved("B", "C", &[("a", "2")]),
        ]);
        assert_eq!(
            summary(&m),
            vec![s(D, "A", &[]), s(D, "B", &[]), s(U, "C", &[("a", "2")])]
        );
    }

    #[test]
    fn pk_change_carries_the_pending_insert() {
        let m = merge([
            row(I, "A", &[("a", "1"), ("b", "1")]),
            moved("A", "B", &[("a", "2")]),
        ]);
        assert_eq!(
            summary(&m),
            vec![s(D, "A", &[]), s(I, "B", &[("a", "2"), ("b", "1")])]
        );
    }

    #[test]
    fn pk_swap_back_is_upsert_of_the_first_key() {
        let m = merge([
            moved("A", "B", &[("a", "1")]),
            moved("B", "A", &[("a", "2")]),
        ]);
        assert_eq!(summary(&m), vec![s(U, "A", &[("a", "2")]), s(D, "B", &[])]);
    }

    #[test]
    fn unchanged_old_keys_are_a_plain_update() {
        let m = merge([moved("1", "1", &[("a", "x")])]);
        assert_eq!(summary(&m), vec![s(U, "1", &[("a", "x")])]);
    }

    #[test]
    fn first_appearance_order_and_tables_kept_apart() {
        let mut other = row(I, "1", &[("a", "o")]);
        other.table = "u".into();
        let m = merge([
            row(I, "2", &[("a", "1")]),
            row(I, "1", &[("a", "1")]),
            other.clone(),
            row(U, "2", &[("a", "2")]),
            row(D, "1", &[("a", "1")]),
        ]);
        assert_eq!(
            summary(&m),
            vec![
                s(I, "2", &[("a", "2")]),
                s(D, "1", &[("a", "1")]),
                s(I, "1", &[("a", "o")]),
            ]
        );
        assert_eq!(m[2].table, "u");
    }

    #[test]
    fn composite_keys_merge_by_all_key_columns() {
        let r = |kind, a: &str, b: &str, v: &str| RowEvent {
            columns: vec![
                col("a", Some(a), 4, true),
                col("b", Some(b), 4, true),
                col("v", Some(v), 12, false),
            ],
            ..row(kind, "x", &[])
        };
        let m = merge([
            r(I, "1", "1", "x"),
            r(I, "1", "2", "y"),
            r(U, "1", "1", "z"),
        ]);
        assert_eq!(m.len(), 2);
        assert_eq!(m[0].columns[2].value.as_deref(), Some("z"));
        assert_eq!(m[1].columns[2].value.as_deref(), Some("y"));
    }

    #[test]
    fn keyless_rows_are_not_merged() {
        let r = RowEvent {
            columns: vec![col("v", Some("1"), 12, false)],
            ..row(I, "x", &[])
        };
        assert_eq!(merge([r.clone(), r.clone()]).len(), 2);
    }

    fn lit(value: Option<&str>, sql_type: i32) -> Result<String, LoadError> {
        let mut out = String::new();
        push_literal(&mut out, &col("c", value, sql_type, false), "s.t")?;
        Ok(out)
    }

    #[test]
    fn numeric_literals_are_validated() {
        assert_eq!(lit(None, 4).unwrap(), "NULL");
        assert_eq!(lit(Some("-42"), 4).unwrap(), "-42");
        assert_eq!(
            lit(Some("18446744073709551615"), -5).unwrap(),
            "18446744073709551615"
        );
        assert_eq!(lit(Some("5"), -7).unwrap(), "5");
        for ok in ["1.5", "-0.25", "1.0E-4", "3", ".5", "5.", "+1e10"] {
            assert_eq!(lit(Some(ok), 8).unwrap(), ok);
            assert_eq!(lit(Some(ok), 3).unwrap(), ok);
        }
        for bad in [
            "",
            "-",
            "1 OR 1=1",
            "1;DROP TABLE t",
            "0x10",
            "NaN",
            "Infinity",
            "1e",
            ".",
            "--1",
            "1.2.3",
            "1e+",
        ] {
            assert!(
                matches!(lit(Some(bad), 8), Err(LoadError::BadValue { .. })),
                "{bad}"
            );
        }
        for bad in ["1.5", "", "1e3", "'1'"] {
            assert!(
                matches!(lit(Some(bad), 4), Err(LoadError::BadValue { .. })),
                "{bad}"
            );
        }
        let e = lit(Some("abc"), 4).unwrap_err().to_string();
        assert!(
            e.contains("s.t") && e.contains("`c`") && e.contains("not an integer"),
            "{e}"
        );
    }

    #[test]
    fn binary_literals_are_hex_of_latin1_bytes() {
        assert_eq!(lit(Some("\u{0}\u{ff}a'"), -3).unwrap(), "X'00FF6127'");
        assert_eq!(lit(Some(""), 2004).unwrap(), "''");
        assert!(matches!(
            lit(Some("€"), 2004),
            Err(LoadError::BadValue { .. })
        ));
    }

    #[test]
    fn string_literals_are_plain_or_utf8_hex() {
        assert_eq!(
            lit(Some("2024-01-02 03:04:05.123"), 93).unwrap(),
            "'2024-01-02 03:04:05.123'"
        );
        assert_eq!(lit(Some(""), 12).unwrap(), "''");
        assert_eq!(lit(Some("it's"), 12).unwrap(), "_utf8mb4 X'69742773'");
        assert_eq!(lit(Some("a\\b"), 12).unwrap(), "_utf8mb4 X'615C62'");
        assert_eq!(lit(Some("😀\0"), 2005).unwrap(), "_utf8mb4 X'F09F988000'");
    }

    #[test]
    fn identifiers_double_backticks() {
        let mut out = String::new();
        push_ident(&mut out, "we`ird", "s.t").unwrap();
        assert_eq!(out, "`we``ird`");
        assert!(push_ident(&mut out, "a\0", "s.t").is_err());
        assert!(push_ident(&mut out, "", "s.t").is_err());
    }

    #[test]
    fn statements_for_a_table() {
        let mut m = merge([
            row(I, "1", &[("a", "x")]),
            row(I, "2", &[("a", "it's")]),
            row(D, "3", &[("a", "z")]),
        ]);
        let plans = plan(&m).unwrap();
        assert_eq!(plans.len(), 1);
        let t = &plans[0].1[0];
        assert_eq!(t.rows, 3);
        assert_eq!(
            t.statements,
            vec![
                "DELETE FROM `s`.`t` WHERE `id` IN (3)".to_string(),
                "INSERT INTO `s`.`t` (`id`,`a`) VALUES (1,'x'),(2,_utf8mb4 X'69742773') \
                 ON DUPLICATE KEY UPDATE `a`=VALUES(`a`)"
                    .to_string(),
            ]
        );
        // Composite keys.
        for r in &mut m {
            r.columns.insert(1, col("k2", Some("9"), 4, true));
        }
        let plans = plan(&m).unwrap();
        assert_eq!(
            plans[0].1[0].statements[0],
            "DELETE FROM `s`.`t` WHERE (`id`,`k2`) IN ((3,9))"
        );
    }

    #[test]
    fn only_key_columns_still_upsert() {
        let r = RowEvent {
            columns: vec![col("id", Some("1"), 4, true)],
            ..row(I, "1", &[])
        };
        let plans = plan(&[r]).unwrap();
        assert_eq!(
            plans[0].1[0].statements,
            vec!["INSERT INTO `s`.`t` (`id`) VALUES (1) ON DUPLICATE KEY UPDATE `id`=VALUES(`id`)"]
        );
    }

    #[test]
    fn chunks_by_rows_and_bytes() {
        let rows: Vec<RowEvent> = (0..1201)
            .map(|i| row(I, &i.to_string(), &[("a", "x")]))
            .collect();
        let plans = plan(&merge(rows.clone())).unwrap();
        let st = &plans[0].1[0].statements;
        assert_eq!(st.len(), 3);
        assert_eq!(st[0].matches("),(").count(), 499);
        assert_eq!(st[2].matches("),(").count(), 200);
        let big = "y".repeat(300 * 1024);
        let rows: Vec<RowEvent> = (0..7)
            .map(|i| row(D, &i.to_string(), &[]))
            .chain((0..7).map(|i| row(I, &(i + 10).to_string(), &[("a", big.as_str())])))
            .collect();
        let plans = plan(&rows).unwrap();
        let st = &plans[0].1[0].statements;
        // One delete; upserts of 3 rows (≈ 900 KiB), 3 and 1.
        assert_eq!(st.len(), 4);
        assert!(st.iter().all(|s| s.len() <= CHUNK_BYTES));
        assert_eq!(st[1].matches("),(").count(), 2);
    }

    #[test]
    fn tables_grouped_by_weight() {
        let mut a = row(I, "1", &[]);
        a.table = "a".into();
        a.weight = 5;
        let mut b = row(I, "1", &[]);
        b.table = "b".into();
        b.weight = 1;
        let mut c = row(I, "1", &[]);
        c.table = "c".into();
        c.weight = 5;
        let plans = plan(&merge([a, b, c])).unwrap();
        let names: Vec<(u32, Vec<&str>)> = plans
            .iter()
            .map(|(w, t)| (*w, t.iter().map(|t| t.name.as_str()).collect()))
            .collect();
        assert_eq!(names, vec![(1, vec!["s.b"]), (5, vec!["s.a", "s.c"])]);
    }

    #[test]
    fn bad_value_fails_the_plan() {
        let mut r = row(I, "1", &[]);
        r.columns[0].value = Some("1) OR (1".into());
        assert!(matches!(plan(&[r]), Err(LoadError::BadValue { .. })));
    }

    #[test]
    fn addresses() {
        assert_eq!(parse_address("db:3307").unwrap(), ("db".into(), 3307));
        assert_eq!(parse_address("db").unwrap(), ("db".into(), 3306));
        assert_eq!(parse_address("[::1]:3308").unwrap(), ("::1".into(), 3308));
        assert!(parse_address("db:x").is_err());
        assert!(parse_address(":3306").is_err());
    }

    #[test]
    fn retryable_errors() {
        let server = |code| {
            mysql_async::Error::Server(mysql_async::ServerError {
                code,
                message: String::new(),
                state: String::new(),
            })
        };
        assert!(is_retryable(&server(1213)));
        assert!(is_retryable(&server(1205)));
        assert!(is_retryable(&server(2013)));
        assert!(!is_retryable(&server(1054)));
        assert!(is_retryable(&mysql_async::Error::Io(
            std::io::Error::from(std::io::ErrorKind::ConnectionRefused).into()
        )));
    }
}
