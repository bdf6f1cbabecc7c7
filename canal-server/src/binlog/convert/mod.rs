//! Binlog events → Canal entries, the way Canal's `LogEventConvert` builds them (reference §2),
//! one event at a time: nothing here buffers a transaction, so a huge transaction costs one event.
//!
//! The converter is synchronous and has no I/O. When it needs a table definition it does not
//! have, it returns [`ConvertError::NeedTable`] *before* changing any state, so the async caller can
//! load the table from the source, record it in the schema history and hand the same event again.
//!
//! Here: the [`Converter`] and its dispatch of each event type, its options and errors, and the
//! schema source it asks ([`SchemaLookup`]). By job: `transaction` (the entry envelope and
//! transaction boundaries), `query` (QUERY events: DDL, DCL, statement entries), `table_map`
//! (TABLE_MAP events: columns named, typed and resolved once) and `row_change` (rows events
//! written as ROWDATA entries).

use std::collections::HashMap;
use std::sync::Arc;

use canal_protocol::entry::{
    Entry, EntryType, EventType, Header, RowChange, TransactionBegin, TransactionEnd, Type,
};
use canal_protocol::mysql::read_lenenc;
use canal_protocol::pb;
use mysql_common::binlog::consts::EventType as BinlogEventType;
use mysql_common::binlog::events::{
    Event, EventData, OptionalMetaExtractor, OptionalMetadataField, RowsEventData, TableMapEvent,
};
use mysql_common::constants::ColumnType;
use prost::Message;

use crate::binlog::event::{self, mariadb, EventError, MariaGtidEvent};
use crate::binlog::rows::{Cell, RowDecoder, RowShape, RowsError};
use crate::entry::{pair, EntryShape, ParsedEntry};
use crate::filter::TableFilter;
use crate::position::gtid::{uuid_text, GtidState, MariaGtid};
use crate::position::{BinlogPosition, EntryPosition, EventPos, GtidSet};
use crate::schema::ddl::{self, DdlKind};
use crate::schema::table::TableMeta;
use crate::value::{ColumnDesc, ColumnFormat, Formatted, ValueOptions};

mod query;
mod row_change;
mod snapshot;
mod table_map;
mod transaction;

pub use row_change::RowsPlan;

/// Where table definitions come from (the schema history, in production).
pub trait SchemaLookup {
    /// The definition of `schema.table` in force at `at`, if known.
    fn table_at(&self, schema: &str, table: &str, at: &BinlogPosition) -> Option<TableMeta>;
    /// Applies a DDL statement seen at `at` to the history.
    fn apply_ddl(&mut self, at: &BinlogPosition, sql: &str, current_db: &str)
        -> Result<(), String>;
}

/// A schema source that knows no table: columns are named from FULL metadata or `@1`, `@2`, …
/// (with [`ConvertOptions::schemaless`]) and DDL is ignored. For binlog files of unknown origin.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoSchema;

impl SchemaLookup for NoSchema {
    fn table_at(&self, _: &str, _: &str, _: &BinlogPosition) -> Option<TableMeta> {
        None
    }
    fn apply_ddl(&mut self, _: &BinlogPosition, _: &str, _: &str) -> Result<(), String> {
        Ok(())
    }
}

/// Options that shape the entries (Canal's `canal.instance.filter.*` and friends).
#[derive(Debug, Clone)]
pub struct ConvertOptions {
    /// Table allow/deny lists.
    pub filter: TableFilter,
    /// Value formatting switches.
    pub values: ValueOptions,
    /// GTID mode: set `Header.gtid` (and MySQL's `curtGtid*` props) on every entry.
    pub gtid_mode: bool,
    /// Drop ROWS_QUERY/ANNOTATE_ROWS/statement-DML entries (`filter.query.dml`).
    pub filter_query_dml: bool,
    /// Drop QUERY-kind statements such as CREATE DATABASE (`filter.query.dcl`).
    pub filter_query_dcl: bool,
    /// Drop every DDL entry; the schema history is still updated (`filter.query.ddl`).
    pub filter_query_ddl: bool,
    /// Skip tables whose definition cannot be found instead of failing (`filter.table.error`).
    pub filter_table_error: bool,
    /// Emit TRANSACTIONBEGIN for MariaDB transactions, which start with a GTID event instead of
    /// a `BEGIN` query. Canal emits none there (its defect); default on.
    pub mariadb_begin: bool,
    /// Without a schema and without FULL metadata, name columns `@1`, `@2`, … instead of failing
    /// (local binlog files of unknown origin). Off for live sources.
    pub schemaless: bool,
    /// A data change on an accepted user table that arrives as SQL text (a QUERY event) means the
    /// source stopped writing rows (`binlog_format` switched to STATEMENT or MIXED while running):
    /// fail with [`ConvertError::StatementFormat`] instead of emitting a statement entry that row
    /// consumers skip. On for live sources (checked for ROW at connect); off for binlog files,
    /// which may be statement-format on purpose.
    pub require_row_format: bool,
    /// The snapshot's signal table (`schema`, `table`): its rows are never emitted; its window
    /// marks open and close snapshot windows when [`ConvertOptions::snapshot`] is set.
    pub signal_table: Option<(String, String)>,
    /// Where snapshot chunks wait for their window to close (the destination's own stream only;
    /// catch-up readers have none and pass window marks by).
    pub snapshot: Option<Arc<crate::snapshot::SnapshotBridge>>,
}

impl Default for ConvertOptions {
    fn default() -> Self {
        Self {
            filter: TableFilter::accept_all(),
            values: ValueOptions::default(),
            gtid_mode: false,
            filter_query_dml: false,
            filter_query_dcl: false,
            filter_query_ddl: false,
            filter_table_error: false,
            mariadb_begin: true,
            schemaless: false,
            require_row_format: false,
            signal_table: None,
            snapshot: None,
        }
    }
}

/// Why an event could not be converted. Every variant names the position.
#[derive(Debug, thiserror::Error)]
pub enum ConvertError {
    /// The converter needs this table's definition; load it and convert the same event again.
    #[error("no definition of table {schema}.{table} at {at}")]
    NeedTable {
        /// Schema name.
        schema: String,
        /// Table name.
        table: String,
        /// Position of the TABLE_MAP event.
        at: BinlogPosition,
    },
    /// The binlog and the table definition disagree on the columns.
    #[error("table {schema}.{table} at {at}: binlog has {binlog} columns, schema has {schema_columns}; the schema history is out of date")]
    ColumnMismatch {
        /// Schema name.
        schema: String,
        /// Table name.
        table: String,
        /// Position of the TABLE_MAP event.
        at: BinlogPosition,
        /// Columns in the TABLE_MAP.
        binlog: usize,
        /// Columns in the definition.
        schema_columns: usize,
    },
    /// A rows event refers to a table id with no TABLE_MAP before it.
    #[error("rows event at {at} refers to unknown table id {table_id}")]
    UnknownTableId {
        /// Position of the rows event.
        at: BinlogPosition,
        /// Its table id.
        table_id: u64,
    },
    /// The event itself is corrupt.
    #[error("event at {at}: {source}")]
    Event {
        /// Position of the event.
        at: BinlogPosition,
        /// What is wrong.
        #[source]
        source: EventError,
    },
    /// A rows event whose images do not decode.
    #[error("rows event for {table} at {at}: {source}")]
    Rows {
        /// `schema.table`.
        table: String,
        /// Position of the rows event.
        at: BinlogPosition,
        /// What is wrong.
        #[source]
        source: RowsError,
    },
    /// A column value that cannot be formatted.
    #[error("{table}.{column} at {at}: {source}")]
    Value {
        /// `schema.table`.
        table: String,
        /// Column name.
        column: String,
        /// Position of the rows event.
        at: BinlogPosition,
        /// What is wrong.
        #[source]
        source: crate::value::ValueError,
    },
    /// A data change arrived as a statement, so its rows are not in the binlog: the source does
    /// not write `binlog_format=ROW` any more (see [`ConvertOptions::require_row_format`]).
    #[error("{change} at {at} was written to the binlog as a statement, not as rows")]
    StatementFormat {
        /// Position of the QUERY event.
        at: BinlogPosition,
        /// What it changes (`INSERT on shop.t`).
        change: String,
    },
    /// The schema history rejected a DDL statement.
    #[error("DDL at {at} could not be applied to the schema history: {reason} (sql: {sql})")]
    Ddl {
        /// Position of the QUERY event.
        at: BinlogPosition,
        /// The statement.
        sql: String,
        /// Why.
        reason: String,
    },
}

impl ConvertError {
    /// Whether the error comes from corrupt bytes (worth a re-read from the source).
    pub fn is_corruption(&self) -> bool {
        matches!(self, ConvertError::Event { .. } | ConvertError::Rows { .. })
    }
}

/// Per-column facts resolved once per TABLE_MAP.
#[derive(Debug, Clone)]
struct ColInfo {
    name: String,
    is_key: bool,
    declared: Option<String>,
    unsigned: bool,
    collation: Option<u16>,
    labels: Option<Vec<String>>,
}

#[derive(Debug)]
struct MappedTable {
    tme: TableMapEvent<'static>,
    schema: String,
    table: String,
    accepted: bool,
    cols: Arc<[ColInfo]>,
    /// Per column: its value format and the constant parts of its `Column` message.
    outs: Vec<ColumnOut>,
    /// The snapshot's signal table: its rows are window marks, never entries.
    signal: bool,
    /// RowChange bytes per 16 bytes of row data in this table's last rows event: sizes the
    /// next one's buffer so it is written without growing.
    out_ratio: std::sync::atomic::AtomicUsize,
}

/// What a rows event needs per column, resolved once per TABLE_MAP: the value format (or why no
/// value of the column can be printed) and the `Column` fields that do not depend on the value,
/// already protobuf-encoded.
#[derive(Debug)]
struct ColumnOut {
    format: Result<ColumnFormat, crate::value::ValueError>,
    /// `index`, `sqlType` (the usual one), `name` and `isKey` (fields 1 to 4).
    fixed: Vec<u8>,
    /// Where the `sqlType` field sits in `fixed`, and its value there.
    sql_type_at: (usize, usize),
    usual_sql_type: i32,
    /// `mysqlType` (field 10), when set.
    tail: Vec<u8>,
}

/// Turns binlog events into Canal entries; one per destination, fed in binlog order.
pub struct Converter {
    opts: ConvertOptions,
    tables: HashMap<u64, Arc<MappedTable>>,
    gtid: Option<GtidState>,
    /// Large rows events may be left for [`RowsPlan::run`] (inside
    /// [`Converter::convert_deferring`] only).
    may_defer: bool,
    /// The plan of the rows event just left unwritten.
    deferred: Option<RowsPlan>,
    /// `curtGtid`, `curtGtidSn`, `curtGtidLct` of the current MySQL transaction.
    current_gtid_props: Option<(String, u64, u64)>,
    /// Rows entries emitted in the current transaction (Canal's empty-transaction rule).
    rows_in_txn: usize,
    /// A BEGIN held back until the transaction shows a row, so empty transactions can be dropped.
    pending_begin: Option<ParsedEntry>,
    empty_dropped: usize,
    last_empty_passed_ms: i64,
    /// Temporary tables seen created, per (thread id, schema, table): a statement on one of them
    /// is no sign of a lost row (bounded by [`MAX_TEMPORARY_TABLES`]).
    temporary: std::collections::HashSet<(i64, String, String)>,
}

/// At most this many temporary tables are remembered; statements on others count as data changes.
const MAX_TEMPORARY_TABLES: usize = 4096;

/// Canal lets one empty transaction through after this much event time…
const EMPTY_TXN_PASS_MS: i64 = 5_000;
/// …or after this many were dropped, so cursors keep moving.
const EMPTY_TXN_PASS_COUNT: usize = 8192;

impl Converter {
    /// A converter starting with `gtid` as the executed GTID state (GTID mode) or none.
    pub fn new(opts: ConvertOptions, gtid: Option<GtidState>) -> Self {
        Self {
            opts,
            tables: HashMap::new(),
            gtid,
            may_defer: false,
            deferred: None,
            current_gtid_props: None,
            rows_in_txn: 0,
            pending_begin: None,
            empty_dropped: 0,
            last_empty_passed_ms: i64::MIN,
            temporary: std::collections::HashSet::new(),
        }
    }

    /// The options in use.
    pub fn options(&self) -> &ConvertOptions {
        &self.opts
    }

    /// Replaces the table filter (takes effect at the next TABLE_MAP).
    pub fn set_filter(&mut self, filter: TableFilter) {
        self.opts.filter = filter;
        self.tables.clear();
    }

    /// The executed GTID state after the last converted event (GTID mode).
    pub fn gtid_state(&self) -> Option<&GtidState> {
        self.gtid.as_ref()
    }

    /// Forgets table maps (after a reconnect the server sends them again).
    pub fn reset_table_maps(&mut self) {
        self.tables.clear();
        self.pending_begin = None;
        self.rows_in_txn = 0;
    }

    /// [`Converter::convert`], except that a large rows event's RowChange may be left unwritten:
    /// then the plan comes back with the entries, and the last entry (its ROWDATA entry) has an
    /// empty store value until [`RowsPlan::run`] writes it, on any task, while this converter
    /// goes on with later events. Nothing else about the entries differs.
    pub fn convert_deferring(
        &mut self,
        ev: &Event,
        pos: &EventPos,
        schemas: &mut dyn SchemaLookup,
    ) -> Result<(Vec<ParsedEntry>, Option<RowsPlan>), ConvertError> {
        self.may_defer = true;
        let converted = self.convert(ev, pos, schemas);
        self.may_defer = false;
        let plan = self.deferred.take();
        Ok((converted?, plan))
    }

    /// Converts one event into zero or more entries, in order.
    pub fn convert(
        &mut self,
        ev: &Event,
        pos: &EventPos,
        schemas: &mut dyn SchemaLookup,
    ) -> Result<Vec<ParsedEntry>, ConvertError> {
        let at = BinlogPosition::new(pos.file.clone(), pos.offset);
        let raw_type = ev.header().event_type_raw();
        let wrap = |source: EventError| ConvertError::Event {
            at: at.clone(),
            source,
        };
        match raw_type {
            mariadb::GTID => {
                let g = MariaGtidEvent::parse(ev.data()).map_err(wrap)?;
                return Ok(self.on_maria_gtid(ev, pos, g));
            }
            mariadb::GTID_LIST => {
                let list = event::parse_maria_gtid_list(ev.data()).map_err(wrap)?;
                if let Some(GtidState::Maria(state)) = self.gtid.as_mut() {
                    if state.is_empty() {
                        for (domain, server, seq) in list {
                            state.update(MariaGtid {
                                domain,
                                server,
                                seq,
                            });
                        }
                    }
                }
                return Ok(Vec::new());
            }
            mariadb::ANNOTATE_ROWS => {
                if self.opts.filter_query_dml {
                    return Ok(Vec::new());
                }
                let sql = event::parse_annotate_rows(ev.data());
                let e = self.query_entry(ev, pos, "", "", &sql, EventType::Query, None, false);
                return Ok(self.emit_in_txn(vec![e]));
            }
            mariadb::BINLOG_CHECKPOINT | mariadb::START_ENCRYPTION => return Ok(Vec::new()),
            t if (mariadb::FIRST_COMPRESSED..=mariadb::LAST_COMPRESSED).contains(&t) => {
                return Err(wrap(EventError::Malformed {
                    event_type: t,
                    reason: "MariaDB compressed binlog events (log_bin_compress=ON) are not supported; turn log_bin_compress off on the source".into(),
                }));
            }
            t if !is_converted_type(t) => return Ok(Vec::new()),
            _ => {}
        }
        let data = event::guarded(raw_type, || {
            ev.read_data().map(|d| d.map(|d| d.into_owned()))
        })
        .map_err(wrap)?
        .map_err(|e| {
            wrap(EventError::Malformed {
                event_type: raw_type,
                reason: e.to_string(),
            })
        })?;
        let Some(data) = data else {
            // Unknown event type: ignorable by definition of the protocol (LOG_EVENT_IGNORABLE_F)
            // or a vendor event; nothing Canal would emit either.
            return Ok(Vec::new());
        };
        match data {
            EventData::QueryEvent(q) => {
                let sql = q.query().into_owned();
                let db = q.schema().into_owned();
                self.on_query(ev, pos, &at, &sql, &db, q.thread_id() as i64, schemas)
            }
            EventData::XidEvent(x) => {
                let end = TransactionEnd {
                    transaction_id: Some(x.xid.to_string()),
                    ..Default::default()
                };
                Ok(self.on_end(ev, pos, end))
            }
            EventData::TableMapEvent(tme) => {
                self.on_table_map(tme.into_owned(), &at, schemas)?;
                Ok(Vec::new())
            }
            EventData::RowsEvent(rows) => self.on_rows(ev, pos, &at, &rows, schemas),
            EventData::GtidEvent(g) => {
                let uuid = uuid_text(&g.sid());
                let gno = g.gno();
                let tag = g.tag().map(|t| t.as_str());
                // A tagged GTID (MySQL 8.4+ `uuid:tag:gno`) is not the untagged `uuid:gno`;
                // MysqlGtidSet has no tags, so it is left out of the set rather than recorded
                // as the wrong transaction.
                if let (Some(GtidState::Mysql(set)), None) = (self.gtid.as_mut(), tag) {
                    set.add(&uuid, gno);
                }
                self.current_gtid_props = Some((
                    mysql_gtid_text(&uuid, tag, gno),
                    g.sequence_number(),
                    g.last_committed(),
                ));
                Ok(Vec::new())
            }
            EventData::RowsQueryEvent(rq) => {
                if self.opts.filter_query_dml {
                    return Ok(Vec::new());
                }
                let sql = rq.query().into_owned();
                let table = ddl::classify(&sql, "")
                    .into_iter()
                    .next()
                    .and_then(|d| d.table)
                    .unwrap_or_default();
                let e = self.query_entry(ev, pos, "", &table, &sql, EventType::Query, None, false);
                Ok(self.emit_in_txn(vec![e]))
            }
            EventData::IntvarEvent(iv) => {
                let sql = format!("SET INSERT_ID = {}", iv.value());
                Ok(self.statement_helper(ev, pos, &sql))
            }
            EventData::RandEvent(r) => {
                let sql = format!(
                    "SET SESSION rand_seed1 = {} , rand_seed2 = {}",
                    *r.seed1, *r.seed2
                );
                Ok(self.statement_helper(ev, pos, &sql))
            }
            EventData::UserVarEvent(u) => {
                let name = String::from_utf8_lossy(u.name_raw()).into_owned();
                let sql = if u.is_null() {
                    format!("SET @{name} := NULL")
                } else {
                    use mysql_common::constants::ItemResult;
                    let raw = u.value();
                    match u.value_type() {
                        Ok(ItemResult::INT_RESULT) if raw.len() >= 8 => {
                            let v = i64::from_le_bytes(raw[..8].try_into().unwrap_or_default());
                            format!("SET @{name} := {v}")
                        }
                        Ok(ItemResult::REAL_RESULT) if raw.len() >= 8 => {
                            let v = f64::from_le_bytes(raw[..8].try_into().unwrap_or_default());
                            format!("SET @{name} := {}", crate::value::java_double_to_string(v))
                        }
                        Ok(ItemResult::DECIMAL_RESULT) => {
                            match user_var_decimal(raw, self.opts.values.decimal_exact_scale) {
                                Some(v) => format!("SET @{name} := {v}"),
                                None => {
                                    format!("SET @{name} := '{}'", String::from_utf8_lossy(raw))
                                }
                            }
                        }
                        _ => format!("SET @{name} := '{}'", String::from_utf8_lossy(raw)),
                    }
                };
                Ok(self.statement_helper(ev, pos, &sql))
            }
            EventData::RotateEvent(_) => {
                self.tables.clear();
                Ok(Vec::new())
            }
            EventData::TransactionPayloadEvent(_) => Ok(Vec::new()),
            _ => Ok(Vec::new()),
        }
    }
}

/// One MySQL GTID as text: `uuid:gno`, or `uuid:tag:gno` for a tagged GTID (MySQL 8.4+).
fn mysql_gtid_text(uuid: &str, tag: Option<&str>, gno: u64) -> String {
    match tag {
        Some(tag) => format!("{uuid}:{tag}:{gno}"),
        None => format!("{uuid}:{gno}"),
    }
}

/// The text of a DECIMAL user variable (USER_VAR body: precision, scale, binary decimal) as
/// Canal prints it (`1.00` → `1.0`); `None` if the bytes do not form one.
fn user_var_decimal(raw: &[u8], exact_scale: bool) -> Option<String> {
    let (&precision, &scale, bin) = match raw {
        [p, s, bin @ ..] => (p, s, bin),
        _ => return None,
    };
    let (precision, scale) = (usize::from(precision), usize::from(scale));
    // mysql_common computes `precision - scale` unchecked; MySQL's limits are 65 and 30.
    if scale > precision || precision > 65 || scale > 30 || precision == 0 {
        return None;
    }
    let dec =
        mysql_common::binlog::decimal::Decimal::read_bin(bin, precision, scale, false).ok()?;
    crate::value::canal_decimal(&dec.to_string(), precision, scale, exact_scale).ok()
}

/// Whether [`Converter::convert`] reads the body of this (MySQL) event type. Every other type
/// yields no entry, so its body is never handed to a decoder: some of mysql_common's decoders
/// trust counts in the body (PREVIOUS_GTIDS pre-allocates `n_sids` entries, so a corrupt count
/// asks the allocator for hundreds of GiB and aborts the process, which no guard can catch).
fn is_converted_type(t: u8) -> bool {
    use BinlogEventType as E;
    [
        E::QUERY_EVENT,
        E::ROTATE_EVENT,
        E::INTVAR_EVENT,
        E::RAND_EVENT,
        E::USER_VAR_EVENT,
        E::XID_EVENT,
        E::TABLE_MAP_EVENT,
        E::WRITE_ROWS_EVENT_V1,
        E::UPDATE_ROWS_EVENT_V1,
        E::DELETE_ROWS_EVENT_V1,
        E::ROWS_QUERY_EVENT,
        E::WRITE_ROWS_EVENT,
        E::UPDATE_ROWS_EVENT,
        E::DELETE_ROWS_EVENT,
        E::GTID_EVENT,
        E::PARTIAL_UPDATE_ROWS_EVENT,
        E::GTID_TAGGED_LOG_EVENT,
    ]
    .iter()
    .any(|e| *e as u8 == t)
}

/// Whether this raw event type ends a transaction when the stream is cut right after it.
pub fn is_boundary_event(ev: &Event) -> bool {
    ev.header().event_type_raw() == BinlogEventType::XID_EVENT as u8
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tagged_gtid_text_keeps_the_tag() {
        let u = "55778904-0299-11f1-b1b8-4ef0c4956feb";
        assert_eq!(mysql_gtid_text(u, None, 14), format!("{u}:14"));
        assert_eq!(mysql_gtid_text(u, Some("mytag"), 3), format!("{u}:mytag:3"));
    }

    #[test]
    fn decimal_user_variable() {
        // `SET @val_d := 1.00` (mysql-cdc-rs 5.7-14_user_var): precision 3, scale 2, 81 00.
        assert_eq!(
            user_var_decimal(&[3, 2, 0x81, 0x00], false).as_deref(),
            Some("1.0")
        );
        assert_eq!(
            user_var_decimal(&[3, 2, 0x81, 0x00], true).as_deref(),
            Some("1.00")
        );
        // -1.50: the sign bit cleared and every byte inverted.
        assert_eq!(
            user_var_decimal(&[3, 2, 0x7e, 0xcd], false).as_deref(),
            Some("-1.50")
        );
        // Truncated, scale above precision, empty.
        assert_eq!(user_var_decimal(&[3, 2, 0x81], false), None);
        assert_eq!(user_var_decimal(&[2, 3, 0x81, 0x00], false), None);
        assert_eq!(user_var_decimal(&[], false), None);
    }
}
