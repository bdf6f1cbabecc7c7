//! Conflicts in two-way sync: detected inside the transaction that applies a table's rows,
//! resolved by the mapping's policy, written down in `retl.retl_conflict` at the site that
//! detected them.
//!
//! Every incoming row carries the row the target should hold before it (`before`: `None` for an
//! insert). Before writing, Load locks the batch's keys (`SELECT … FOR UPDATE`) and asks the target,
//! per row and in SQL (the same literals the writes use, so no value is compared as text), whether
//! it holds the expected row, already the incoming one, or something else:
//!
//! | incoming | target holds | outcome |
//! |---|---|---|
//! | any | the incoming row (or no row, for a delete) | nothing to do (a replay) |
//! | any | the expected row (or no row, for an insert) | applied |
//! | insert | another row with that key | conflict `insert_exists` |
//! | update | another row | conflict `update_changed` |
//! | update | no row | conflict `update_missing` |
//! | delete | another row | conflict `delete_changed` |
//!
//! A conflict is resolved by [`ConflictPolicy`]: `overwrite` applies the incoming change;
//! `site_priority` applies it only if it was first written at the priority site; `newer_wins`
//! applies an insert or update whose `version_column` is higher than the target's (a tie goes to
//! the priority site), never a delete of a row changed since (the update wins), and an update of a
//! missing row (so "update at A, delete at B" ends with the update on both sites). Each site
//! decides its own conflicts by the same rule, so both end with the same row.

use mysql_async::prelude::Queryable;
use mysql_async::Transaction;

use crate::batch::{ColumnValue, RowEvent, RowKind};
use crate::model::ConflictPolicy;
use crate::pipeline::load::error::{failure, Failure};
use crate::pipeline::load::literal::{is_binary, push_ident, push_literal};
use crate::pipeline::load::LoadError;

/// How conflicts of one target table are resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    /// The policy.
    pub policy: ConflictPolicy,
    /// For `newer_wins`: the version column.
    pub version_column: Option<String>,
    /// The site whose changes win under `site_priority` (and `newer_wins` ties).
    pub priority_site: String,
}

/// Creates the conflict report table (idempotent).
pub const CREATE_CONFLICT_TABLE: &str = "CREATE TABLE IF NOT EXISTS `retl`.`retl_conflict` (\
     id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY, \
     channel_id BIGINT NOT NULL, \
     pipeline_id BIGINT NOT NULL, \
     schema_name VARCHAR(64) NOT NULL, \
     table_name VARCHAR(64) NOT NULL, \
     pk VARCHAR(512) NOT NULL, \
     kind VARCHAR(16) NOT NULL, \
     policy VARCHAR(16) NOT NULL, \
     winner VARCHAR(8) NOT NULL, \
     origin VARCHAR(128) NOT NULL, \
     incoming LONGBLOB, \
     found LONGBLOB, \
     detected_at TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3), \
     KEY channel_time (channel_id, detected_at)\
     ) ENGINE=InnoDB";
/// Whether the conflict table exists.
pub(crate) const CONFLICT_TABLE_EXISTS: &str = "SELECT COUNT(*) FROM information_schema.TABLES \
     WHERE TABLE_SCHEMA = 'retl' AND TABLE_NAME = 'retl_conflict'";
const RECORD: &str = "INSERT INTO `retl`.`retl_conflict` \
     (channel_id, pipeline_id, schema_name, table_name, pk, kind, policy, winner, origin, \
     incoming, found) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)";

/// Rows probed per statement.
const PROBE_CHUNK: usize = 200;

/// What the target holds for one incoming row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Found {
    /// No row with the key.
    Absent,
    /// A row.
    Present {
        /// It is the row the change expected.
        expected: bool,
        /// It is already the incoming row.
        incoming: bool,
        /// `newer_wins`: the incoming version is higher / equal.
        incoming_newer: bool,
        /// `newer_wins`: the versions are equal (or either is missing).
        tie: bool,
    },
}

/// What to do with one incoming row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Decision {
    /// Write it.
    Apply,
    /// Nothing to write (the target holds it already).
    Skip,
    /// A conflict of this kind, resolved for the incoming change (written).
    IncomingWins(&'static str),
    /// A conflict of this kind, resolved for the target's row (not written).
    LocalWins(&'static str),
}

/// The decision for a row of `kind` first written at a site that is (`from_priority`) or is not
/// the priority site.
pub(crate) fn decide(
    kind: RowKind,
    found: &Found,
    policy: ConflictPolicy,
    from_priority: bool,
) -> Decision {
    let resolve = |conflict: &'static str, incoming_wins: bool| {
        if incoming_wins {
            Decision::IncomingWins(conflict)
        } else {
            Decision::LocalWins(conflict)
        }
    };
    match (kind, found) {
        (RowKind::Insert, Found::Absent) => Decision::Apply,
        (RowKind::Delete, Found::Absent) => Decision::Skip,
        (RowKind::Update, Found::Absent) => resolve(
            "update_missing",
            match policy {
                ConflictPolicy::Overwrite | ConflictPolicy::NewerWins => true,
                ConflictPolicy::SitePriority => from_priority,
            },
        ),
        (_, Found::Present { incoming: true, .. }) if kind != RowKind::Delete => Decision::Skip,
        (_, Found::Present { expected: true, .. }) => Decision::Apply,
        (
            _,
            Found::Present {
                incoming_newer,
                tie,
                ..
            },
        ) => {
            let conflict = match kind {
                RowKind::Insert => "insert_exists",
                RowKind::Update => "update_changed",
                RowKind::Delete => "delete_changed",
            };
            let wins = match policy {
                ConflictPolicy::Overwrite => true,
                ConflictPolicy::SitePriority => from_priority,
                ConflictPolicy::NewerWins if kind == RowKind::Delete => false,
                ConflictPolicy::NewerWins => {
                    if *tie {
                        from_priority
                    } else {
                        *incoming_newer
                    }
                }
            };
            resolve(conflict, wins)
        }
    }
}

/// Whether `row` is a new row: an insert that expects no row and passed through no other image
/// in its batch (a plain `INSERT` of it succeeding is its whole check).
pub(crate) fn is_new(row: &RowEvent) -> bool {
    row.kind == RowKind::Insert && row.before.is_none() && row.history.is_empty()
}

/// `t.col <=> literal AND …` over `cols`, or `0` when there are none.
fn matches(cols: &[ColumnValue], table: &str) -> Result<String, LoadError> {
    if cols.is_empty() {
        return Ok("0".into());
    }
    let mut s = String::from("(");
    for (i, c) in cols.iter().enumerate() {
        if i > 0 {
            s.push_str(" AND ");
        }
        s.push_str("t.");
        push_ident(&mut s, &c.name, table)?;
        s.push_str(" <=> ");
        push_literal(&mut s, c, table)?;
    }
    s.push(')');
    Ok(s)
}

/// The row's image that carries the incoming version: the new row, or for a delete the old one.
fn version_of<'r>(row: &'r RowEvent, column: &str) -> Option<&'r ColumnValue> {
    let image = if row.kind == RowKind::Delete {
        row.before.as_deref().unwrap_or(&row.columns)
    } else {
        &row.columns
    };
    image.iter().find(|c| c.name == column)
}

/// Where a row of the table could be: `key = literal AND …`.
fn key_match(row: &RowEvent, table: &str) -> Result<String, LoadError> {
    let keys: Vec<ColumnValue> = row.keys().cloned().collect();
    if keys.is_empty() {
        return Err(LoadError::NoKey {
            table: table.to_string(),
        });
    }
    let mut s = String::new();
    for (i, c) in keys.iter().enumerate() {
        if i > 0 {
            s.push_str(" AND ");
        }
        push_ident(&mut s, &c.name, table)?;
        s.push_str(" = ");
        push_literal(&mut s, c, table)?;
    }
    Ok(s)
}

/// The keys of `chunk` as a derived table `v` (`n`, the row's index, then `k0…`) and the join
/// condition of the target `t` on it (one index lookup per row).
fn key_table(name: &str, chunk: &[(usize, &RowEvent)]) -> Result<(String, String), LoadError> {
    let no_key = || LoadError::NoKey {
        table: name.to_string(),
    };
    let (_, first) = chunk.first().ok_or_else(no_key)?;
    let key_names: Vec<&str> = first.keys().map(|c| c.name.as_str()).collect();
    if key_names.is_empty() {
        return Err(no_key());
    }
    // Sized once: a chunk's derived table is long, and growing it copies it again and again.
    let mut keys = String::with_capacity(chunk.len() * (24 + 24 * key_names.len()));
    for (j, &(i, row)) in chunk.iter().enumerate() {
        let row_keys: Vec<&ColumnValue> = row.keys().collect();
        if row_keys.len() != key_names.len() {
            return Err(no_key());
        }
        keys.push_str(if j == 0 {
            "SELECT "
        } else {
            " UNION ALL SELECT "
        });
        keys.push_str(&i.to_string());
        keys.push_str(" AS n");
        for (k, c) in row_keys.iter().enumerate() {
            keys.push_str(", ");
            push_literal(&mut keys, c, name)?;
            keys.push_str(&format!(" AS k{k}"));
        }
    }
    let mut on = String::new();
    for (k, key) in key_names.iter().enumerate() {
        if k > 0 {
            on.push_str(" AND ");
        }
        on.push_str("t.");
        push_ident(&mut on, key, name)?;
        on.push_str(&format!(" = v.k{k}"));
    }
    Ok((keys, on))
}

/// The statements that compare, in SQL, what the target holds for `rows` (each with its index)
/// with their images, one per chunk: per row found, whether it is the expected row (or one the
/// key passed through in the batch), the incoming row, and for `newer_wins` whether the incoming
/// version is newer or equal, each picked by the row's index with `CASE`. The same literals as
/// the writes, so SQL's own comparison decides. Rows the target lacks return nothing.
pub(crate) fn probes(
    target: &str,
    name: &str,
    rows: &[(usize, &RowEvent)],
    rule: &Rule,
) -> Result<Vec<String>, LoadError> {
    let mut out = Vec::new();
    for chunk in rows.chunks(PROBE_CHUNK) {
        let (keys, on) = key_table(name, chunk)?;
        let (mut expected, mut incoming) = (String::new(), String::new());
        let (mut newer, mut tie) = (String::new(), String::new());
        for &(i, row) in chunk {
            let mut e = match &row.before {
                Some(b) => matches(b, name)?,
                None => "0".into(),
            };
            for h in &row.history {
                e = format!("{e} OR {}", matches(h, name)?);
            }
            let e = format!("({e})");
            let m = if row.kind == RowKind::Delete {
                "0".into()
            } else {
                matches(&row.columns, name)?
            };
            expected.push_str(&format!(" WHEN {i} THEN {e}"));
            incoming.push_str(&format!(" WHEN {i} THEN {m}"));
            if let Some(v) = rule
                .version_column
                .as_deref()
                .and_then(|v| version_of(row, v))
            {
                let mut col = String::from("t.");
                push_ident(&mut col, &v.name, name)?;
                let mut lit = String::new();
                push_literal(&mut lit, v, name)?;
                newer.push_str(&format!(" WHEN {i} THEN IFNULL({col} < {lit}, 0)"));
                tie.push_str(&format!(" WHEN {i} THEN IFNULL({col} <=> {lit}, 1)"));
            }
        }
        let case = |branches: &str, otherwise: &str| {
            if branches.is_empty() {
                otherwise.to_string()
            } else {
                format!("IFNULL(CASE v.n{branches} END, {otherwise})")
            }
        };
        out.push(format!(
            "SELECT v.n, {}, {}, {}, {} FROM ({keys}) AS v JOIN {target} AS t ON {on}",
            case(&expected, "0"),
            case(&incoming, "0"),
            case(&newer, "0"),
            case(&tie, "1"),
        ));
    }
    Ok(out)
}

/// The target's row for `row`'s key, as `col='value', …` (for a conflict's report).
pub(crate) async fn image(
    tx: &mut Transaction<'_>,
    target: &str,
    name: &str,
    row: &RowEvent,
) -> Result<Vec<u8>, Failure> {
    let build = || -> Result<String, LoadError> {
        let mut image = String::from("CONCAT_WS(', '");
        for c in &row.columns {
            let mut col = String::new();
            push_ident(&mut col, &c.name, name)?;
            image.push_str(&format!(
                ", CONCAT({}, '=', QUOTE({col}))",
                sql_string(&c.name)
            ));
        }
        image.push(')');
        Ok(format!(
            "SELECT {image} FROM {target} WHERE {}",
            key_match(row, name)?
        ))
    };
    let sql = build().map_err(|e| Failure {
        error: mysql_async::Error::Other(Box::new(e)),
        sql: format!("(conflict image of {name})"),
    })?;
    let found: Option<Option<Vec<u8>>> =
        tx.query_first(sql.as_str()).await.map_err(failure(&sql))?;
    Ok(found.flatten().unwrap_or_else(|| b"(no row)".to_vec()))
}

/// A plain SQL string literal of an identifier (for the report's images).
fn sql_string(s: &str) -> String {
    format!("'{}'", s.replace('\\', "\\\\").replace('\'', "''"))
}

/// The statements that lock the target's rows for `rows` (each with its index) and return them:
/// `n` then `columns` in order, one statement per chunk, the chunk's keys as a derived table joined
/// to the target (one index lookup each). Rows the target lacks return nothing.
pub(crate) fn fetches(
    target: &str,
    name: &str,
    rows: &[(usize, &RowEvent)],
    columns: &[&str],
) -> Result<Vec<String>, LoadError> {
    let mut out = Vec::new();
    let mut select = String::new();
    for c in columns {
        select.push_str(", t.");
        push_ident(&mut select, c, name)?;
    }
    for chunk in rows.chunks(PROBE_CHUNK) {
        let (keys, on) = key_table(name, chunk)?;
        out.push(format!(
            "SELECT v.n{select} FROM ({keys}) AS v JOIN {target} AS t ON {on} FOR UPDATE"
        ));
    }
    Ok(out)
}

/// Whether the target's value, as the text protocol returns it, is `col`'s value byte for byte
/// (binary columns: Canal's ISO-8859-1 text, one char per byte). Equal bytes mean the same
/// value; unequal bytes may still be an equal value in SQL (a case-insensitive collation, a
/// number written another way), which the SQL comparison then decides.
fn same_text(col: &ColumnValue, found: &mysql_async::Value) -> bool {
    use mysql_async::Value;
    match (col.value.as_deref(), found) {
        (None, Value::NULL) => true,
        (Some(v), Value::Bytes(b)) if is_binary(col.sql_type) => {
            v.chars().count() == b.len()
                && v.chars()
                    .zip(b)
                    .all(|(c, &byte)| u32::from(c) == u32::from(byte))
        }
        (Some(v), Value::Bytes(b)) => v.as_bytes() == b.as_slice(),
        _ => false,
    }
}

/// Whether every column of `image` holds, in `found` (the values of `columns`), the same text.
fn image_matches(image: &[ColumnValue], columns: &[&str], found: &[mysql_async::Value]) -> bool {
    image.iter().all(|c| {
        columns
            .iter()
            .position(|n| *n == c.name)
            .and_then(|i| found.get(i))
            .is_some_and(|v| same_text(c, v))
    })
}

/// What the target holds for each of `rows` (in order), asked inside `tx`; the rows are locked.
///
/// One statement per chunk locks the rows the target has and returns them; each is compared with
/// the expected and incoming images in Rust (byte-equal text is an equal value). Only rows that
/// match neither by text (conflicts, or values SQL would call equal despite other text) are
/// compared again in SQL, with the same literals the writes use, which also compares versions.
pub(crate) async fn find(
    tx: &mut Transaction<'_>,
    target: &str,
    name: &str,
    rows: &[&RowEvent],
    rule: &Rule,
) -> Result<Vec<Found>, Failure> {
    let bad = |e: LoadError| Failure {
        error: mysql_async::Error::Other(Box::new(e)),
        sql: format!("(conflict probe of {name})"),
    };
    let mut columns: Vec<&str> = Vec::new();
    for row in rows {
        let images = std::iter::once(&row.columns)
            .chain(row.before.as_ref())
            .chain(&row.history);
        for c in images.flatten() {
            if !columns.contains(&c.name.as_str()) {
                columns.push(&c.name);
            }
        }
    }
    let all: Vec<(usize, &RowEvent)> = rows.iter().copied().enumerate().collect();
    let mut found = vec![Found::Absent; rows.len()];
    let mut unsure = Vec::new();
    for fetch in fetches(target, name, &all, &columns).map_err(bad)? {
        let answers: Vec<mysql_async::Row> =
            tx.query(fetch.as_str()).await.map_err(failure(&fetch))?;
        for answer in answers {
            let values: Vec<mysql_async::Value> =
                answer.unwrap_raw().into_iter().flatten().collect();
            let Some(i) = values.first().and_then(|n| match n {
                mysql_async::Value::Bytes(b) => std::str::from_utf8(b).ok()?.parse::<usize>().ok(),
                mysql_async::Value::Int(i) => usize::try_from(*i).ok(),
                mysql_async::Value::UInt(i) => usize::try_from(*i).ok(),
                _ => None,
            }) else {
                continue;
            };
            let (Some(&row), Some(values)) = (rows.get(i), values.get(1..)) else {
                continue;
            };
            let expected = row
                .before
                .iter()
                .chain(&row.history)
                .any(|image| image_matches(image, &columns, values));
            let incoming =
                row.kind != RowKind::Delete && image_matches(&row.columns, &columns, values);
            if expected || incoming {
                found[i] = Found::Present {
                    expected,
                    incoming,
                    incoming_newer: false,
                    tie: true,
                };
            } else {
                unsure.push((i, row));
            }
        }
    }
    unsure.sort_unstable_by_key(|(i, _)| *i);
    type Probe = (u64, i64, i64, i64, i64);
    for probe in probes(target, name, &unsure, rule).map_err(bad)? {
        let answers: Vec<Probe> = tx.query(probe.as_str()).await.map_err(failure(&probe))?;
        for (i, expected, incoming, newer, tie) in answers {
            if let Some(slot) = found.get_mut(i as usize) {
                *slot = Found::Present {
                    expected: expected != 0,
                    incoming: incoming != 0,
                    incoming_newer: newer != 0,
                    tie: tie != 0,
                };
            }
        }
    }
    Ok(found)
}

/// One conflict to write down.
#[derive(Debug, Clone)]
pub(crate) struct Record {
    pub kind: &'static str,
    pub incoming_won: bool,
    pub pk: String,
    pub incoming: String,
    pub found: Vec<u8>,
}

impl Record {
    /// The report of `row` meeting `found`.
    pub(crate) fn new(
        kind: &'static str,
        incoming_won: bool,
        row: &RowEvent,
        found: Vec<u8>,
    ) -> Self {
        let text = |cols: &[ColumnValue]| {
            cols.iter()
                .map(|c| {
                    format!(
                        "{}={}",
                        c.name,
                        c.value
                            .as_deref()
                            .map_or("NULL".into(), |v| format!("'{v}'"))
                    )
                })
                .collect::<Vec<_>>()
                .join(", ")
        };
        Record {
            kind,
            incoming_won,
            pk: row
                .keys()
                .map(|c| c.value.clone().unwrap_or_default())
                .collect::<Vec<_>>()
                .join(","),
            incoming: if row.kind == RowKind::Delete {
                "(delete)".into()
            } else {
                text(&row.columns)
            },
            found,
        }
    }
}

/// Who wrote it, for the report.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Reporter<'a> {
    pub channel: u32,
    pub pipeline: u32,
    pub schema: &'a str,
    pub table: &'a str,
    pub policy: ConflictPolicy,
    pub origin: &'a str,
}

/// Writes the conflicts into `retl.retl_conflict` in `tx` and counts them.
pub(crate) async fn record(
    tx: &mut Transaction<'_>,
    by: Reporter<'_>,
    records: &[Record],
) -> Result<(), Failure> {
    for r in records {
        let winner = if r.incoming_won { "incoming" } else { "local" };
        tx.exec_drop(
            RECORD,
            (
                by.channel,
                by.pipeline,
                by.schema,
                by.table,
                r.pk.as_str(),
                r.kind,
                by.policy.name(),
                winner,
                by.origin,
                r.incoming.as_bytes(),
                r.found.as_slice(),
            ),
        )
        .await
        .map_err(failure(RECORD))?;
    }
    Ok(())
}

/// One conflict as written down in `retl.retl_conflict`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ConflictReport {
    /// Row id in `retl.retl_conflict`.
    pub id: u64,
    /// The site that detected it (the pipeline's target).
    pub site: String,
    /// The pipeline whose Load detected it.
    pub pipeline: u32,
    /// `schema.table` (the target's).
    pub table: String,
    /// Primary key values, comma-separated.
    pub pk: String,
    /// `insert_exists`, `update_changed`, `update_missing` or `delete_changed`.
    pub kind: String,
    /// The policy that resolved it.
    pub policy: String,
    /// `incoming` (the change was applied) or `local` (the target's row was kept).
    pub winner: String,
    /// The site the incoming change was first written at.
    pub origin: String,
    /// The incoming row (`col='value', …`, or `(delete)`).
    pub incoming: String,
    /// The row the target held (`col='value', …`, or `(no row)`).
    pub found: String,
    /// When, as the target's clock says (`YYYY-MM-DD HH:MM:SS.mmm`).
    pub detected_at: String,
}

impl std::fmt::Display for ConflictReport {
    /// One line, as `otter-manager conflicts` prints it.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}  {}  {}  pk={}  {}  {}  winner={}  from {}  incoming: {}  found: {}",
            self.detected_at,
            self.site,
            self.table,
            self.pk,
            self.kind,
            self.policy,
            self.winner,
            self.origin,
            self.incoming,
            self.found
        )
    }
}

/// The conflicts of `channel` that the target of `pipeline` recorded, oldest first; only those at
/// or after `since` (`YYYY-MM-DD[ HH:MM:SS]`, the target's clock) when given. A target without
/// `retl.retl_conflict` has none.
pub async fn read_reports(
    pipeline: &crate::model::Pipeline,
    channel: u32,
    since: Option<&str>,
) -> Result<Vec<ConflictReport>, LoadError> {
    let target = &pipeline.target;
    let opts = crate::pipeline::load::site::account_opts(target)?;
    let sql_error = |sql: &str| {
        let sql = sql.to_string();
        let table = target.address.clone();
        move |source| LoadError::Sql { table, sql, source }
    };
    let mut conn = target
        .tls
        .connect(opts)
        .await
        .map_err(sql_error("(connect)"))?;
    let exists: Option<u64> = conn
        .query_first(CONFLICT_TABLE_EXISTS)
        .await
        .map_err(sql_error(CONFLICT_TABLE_EXISTS))?;
    if exists.unwrap_or(0) == 0 {
        let _ = conn.disconnect().await;
        return Ok(Vec::new());
    }
    const READ: &str = "SELECT id, pipeline_id, CONCAT(schema_name, '.', table_name), pk, kind, \
         policy, winner, origin, incoming, found, CAST(detected_at AS CHAR) \
         FROM `retl`.`retl_conflict` WHERE channel_id = ? AND detected_at >= ? ORDER BY id";
    type Row = (
        u64,
        u32,
        String,
        String,
        String,
        String,
        String,
        String,
        Option<Vec<u8>>,
        Option<Vec<u8>>,
        String,
    );
    let rows: Vec<Row> = conn
        .exec(READ, (channel, since.unwrap_or("1970-01-02")))
        .await
        .map_err(sql_error(READ))?;
    let _ = conn.disconnect().await;
    let text = |b: Option<Vec<u8>>| String::from_utf8_lossy(&b.unwrap_or_default()).into_owned();
    Ok(rows
        .into_iter()
        .map(
            |(id, pid, table, pk, kind, policy, winner, origin, incoming, found, at)| {
                ConflictReport {
                    id,
                    site: pipeline.target_site().to_string(),
                    pipeline: pid,
                    table,
                    pk,
                    kind,
                    policy,
                    winner,
                    origin,
                    incoming: text(incoming),
                    found: text(found),
                    detected_at: at,
                }
            },
        )
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn present(expected: bool, incoming: bool, newer: bool, tie: bool) -> Found {
        Found::Present {
            expected,
            incoming,
            incoming_newer: newer,
            tie,
        }
    }

    fn col(name: &str, value: Option<&str>, sql_type: i32) -> ColumnValue {
        ColumnValue {
            name: name.into(),
            value: value.map(str::to_string),
            sql_type,
            is_key: name == "id",
        }
    }

    #[test]
    fn text_equality_is_exact_and_binary_text_is_bytes() {
        use mysql_async::Value;
        let bytes = |b: &[u8]| Value::Bytes(b.to_vec());
        assert!(same_text(&col("a", Some("abc"), 12), &bytes(b"abc")));
        assert!(!same_text(&col("a", Some("abc"), 12), &bytes(b"ABC")));
        assert!(same_text(&col("a", None, 12), &Value::NULL));
        assert!(!same_text(&col("a", None, 12), &bytes(b"")));
        assert!(!same_text(&col("a", Some(""), 12), &Value::NULL));
        // Canal's ISO-8859-1 text of the bytes 0xE9 0x00 0xFF.
        assert!(same_text(
            &col("b", Some("\u{e9}\0\u{ff}"), -3),
            &bytes(&[0xE9, 0, 0xFF])
        ));
        assert!(!same_text(
            &col("b", Some("\u{e9}"), -3),
            &bytes("\u{e9}".as_bytes())
        ));
        // Text columns compare the UTF-8 bytes.
        assert!(same_text(
            &col("s", Some("\u{e9}"), 12),
            &bytes("\u{e9}".as_bytes())
        ));

        let columns = ["id", "a", "b"];
        let found = [bytes(b"1"), bytes(b"x"), Value::NULL];
        let image = [
            col("id", Some("1"), 4),
            col("a", Some("x"), 12),
            col("b", None, 12),
        ];
        assert!(image_matches(&image, &columns, &found));
        let other = [col("id", Some("1"), 4), col("a", Some("y"), 12)];
        assert!(!image_matches(&other, &columns, &found));
        let unknown = [col("id", Some("1"), 4), col("c", Some("x"), 12)];
        assert!(
            !image_matches(&unknown, &columns, &found),
            "a column not read is not equal"
        );
    }

    #[test]
    fn the_table_of_outcomes() {
        use ConflictPolicy::*;
        use RowKind::*;
        let other = present(false, false, false, false);
        assert_eq!(
            decide(Insert, &Found::Absent, SitePriority, false),
            Decision::Apply
        );
        assert_eq!(
            decide(Delete, &Found::Absent, SitePriority, false),
            Decision::Skip
        );
        assert_eq!(
            decide(
                Update,
                &present(false, true, false, true),
                SitePriority,
                false
            ),
            Decision::Skip,
            "a replay"
        );
        assert_eq!(
            decide(
                Update,
                &present(true, false, false, true),
                SitePriority,
                false
            ),
            Decision::Apply
        );
        assert_eq!(
            decide(Update, &other, SitePriority, false),
            Decision::LocalWins("update_changed")
        );
        assert_eq!(
            decide(Update, &other, SitePriority, true),
            Decision::IncomingWins("update_changed")
        );
        assert_eq!(
            decide(Insert, &other, Overwrite, false),
            Decision::IncomingWins("insert_exists")
        );
        assert_eq!(
            decide(Update, &Found::Absent, SitePriority, false),
            Decision::LocalWins("update_missing")
        );
        assert_eq!(
            decide(Update, &Found::Absent, NewerWins, false),
            Decision::IncomingWins("update_missing"),
            "an update wins over a concurrent delete"
        );
        assert_eq!(
            decide(Delete, &other, NewerWins, true),
            Decision::LocalWins("delete_changed")
        );
        assert_eq!(
            decide(
                Update,
                &present(false, false, true, false),
                NewerWins,
                false
            ),
            Decision::IncomingWins("update_changed")
        );
        assert_eq!(
            decide(
                Update,
                &present(false, false, false, true),
                NewerWins,
                false
            ),
            Decision::LocalWins("update_changed"),
            "a tie goes to the priority site"
        );
    }
}
