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
use crate::pipeline::load::literal::{push_ident, push_literal};
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
        /// The row, as `col='value', …` (for the report).
        image: Vec<u8>,
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

/// `col <=> literal AND …` over `cols`, or `0` when there are none.
fn matches(cols: &[ColumnValue], table: &str) -> Result<String, LoadError> {
    if cols.is_empty() {
        return Ok("0".into());
    }
    let mut s = String::from("(");
    for (i, c) in cols.iter().enumerate() {
        if i > 0 {
            s.push_str(" AND ");
        }
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

/// The statements that lock the rows' keys and ask what the target holds, chunk by chunk:
/// `(lock, probe)` pairs.
pub(crate) fn probes(
    target: &str,
    name: &str,
    rows: &[RowEvent],
    rule: &Rule,
) -> Result<Vec<(String, String)>, LoadError> {
    let mut out = Vec::new();
    for (chunk_no, chunk) in rows.chunks(PROBE_CHUNK).enumerate() {
        let mut lock = format!("SELECT 1 FROM {target} WHERE ");
        let mut probe = String::new();
        for (j, row) in chunk.iter().enumerate() {
            let i = chunk_no * PROBE_CHUNK + j;
            let at = key_match(row, name)?;
            if j > 0 {
                lock.push_str(" OR ");
                probe.push_str(" UNION ALL ");
            }
            lock.push('(');
            lock.push_str(&at);
            lock.push(')');
            let expected = match &row.before {
                Some(b) => matches(b, name)?,
                None => "0".into(),
            };
            let incoming = if row.kind == RowKind::Delete {
                "0".into()
            } else {
                matches(&row.columns, name)?
            };
            let (newer, tie) = match rule
                .version_column
                .as_deref()
                .and_then(|v| version_of(row, v))
            {
                Some(v) => {
                    let mut col = String::new();
                    push_ident(&mut col, &v.name, name)?;
                    let mut lit = String::new();
                    push_literal(&mut lit, v, name)?;
                    (
                        format!("IFNULL({col} < {lit}, 0)"),
                        format!("IFNULL({col} <=> {lit}, 1)"),
                    )
                }
                None => ("0".into(), "1".into()),
            };
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
            probe.push_str(&format!(
                "SELECT {i}, IFNULL({expected}, 0), IFNULL({incoming}, 0), {newer}, {tie}, {image} \
                 FROM {target} WHERE {at}"
            ));
        }
        lock.push_str(" FOR UPDATE");
        out.push((lock, probe));
    }
    Ok(out)
}

/// A plain SQL string literal of an identifier (for the report's images).
fn sql_string(s: &str) -> String {
    format!("'{}'", s.replace('\\', "\\\\").replace('\'', "''"))
}

/// What the target holds for each of `rows` (in order), asked inside `tx`.
pub(crate) async fn find(
    tx: &mut Transaction<'_>,
    target: &str,
    name: &str,
    rows: &[RowEvent],
    rule: &Rule,
) -> Result<Vec<Found>, Failure> {
    let statements = probes(target, name, rows, rule).map_err(|e| Failure {
        error: mysql_async::Error::Other(Box::new(e)),
        sql: format!("(conflict probe of {name})"),
    })?;
    let mut found = vec![Found::Absent; rows.len()];
    for (lock, probe) in statements {
        tx.query_drop(lock.as_str()).await.map_err(failure(&lock))?;
        type Probe = (u64, i64, i64, i64, i64, Option<Vec<u8>>);
        let answers: Vec<Probe> = tx.query(probe.as_str()).await.map_err(failure(&probe))?;
        for (i, expected, incoming, newer, tie, image) in answers {
            if let Some(slot) = found.get_mut(i as usize) {
                *slot = Found::Present {
                    expected: expected != 0,
                    incoming: incoming != 0,
                    incoming_newer: newer != 0,
                    tie: tie != 0,
                    image: image.unwrap_or_default(),
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
        found: &Found,
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
            found: match found {
                Found::Absent => b"(no row)".to_vec(),
                Found::Present { image, .. } => image.clone(),
            },
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
    let (host, port) = canal_protocol::HostPort::mysql(&target.address)
        .map(|a| (a.host, a.port))
        .map_err(|e| LoadError::Address {
            address: target.address.clone(),
            reason: e.reason.to_string(),
        })?;
    let password =
        zk_coord::secret::resolve(&target.password).map_err(|source| LoadError::Secret {
            address: target.address.clone(),
            source,
        })?;
    let opts = mysql_async::OptsBuilder::default()
        .ip_or_hostname(host)
        .tcp_port(port)
        .user(Some(target.username.clone()))
        .pass((!password.is_empty()).then_some(password))
        .prefer_socket(false);
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
            image: Vec::new(),
        }
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
