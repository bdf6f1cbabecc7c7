//! Binlog events → Canal entries, the way Canal's `LogEventConvert` builds them (reference §2),
//! one event at a time: nothing here buffers a transaction, so a huge transaction costs one event.
//!
//! The converter is synchronous and has no I/O. When it needs a table definition it does not
//! have, it returns [`ConvertError::NeedTable`] *before* changing any state, so the async caller can
//! load the table from the source, record it in the schema history and hand the same event again.

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
use crate::entry::{pair, ParsedEntry};
use crate::filter::TableFilter;
use crate::position::gtid::{uuid_text, GtidState, MariaGtid};
use crate::position::{BinlogPosition, EntryPosition, EventPos, GtidSet};
use crate::schema::ddl::{self, DdlKind};
use crate::schema::table::TableMeta;
use crate::value::{ColumnDesc, ColumnFormat, Formatted, ValueOptions};

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

impl ColumnOut {
    fn new(
        tme: &TableMapEvent<'_>,
        idx: usize,
        info: Option<&ColInfo>,
        values: &ValueOptions,
    ) -> ColumnOut {
        let column_type = tme
            .get_column_type(idx)
            .ok()
            .flatten()
            .unwrap_or(ColumnType::MYSQL_TYPE_NULL);
        let meta = tme.get_column_metadata(idx).unwrap_or(&[]);
        let desc = ColumnDesc {
            column_type,
            meta,
            unsigned: info.is_some_and(|c| c.unsigned),
            collation: info.and_then(|c| c.collation),
            enum_set_labels: info.and_then(|c| c.labels.as_deref()),
            declared_type: info.and_then(|c| c.declared.as_deref()),
            name: info.map(|c| c.name.as_str()),
        };
        let format = ColumnFormat::new(&desc, values);
        let usual_sql_type = format.as_ref().map_or(0, ColumnFormat::usual_sql_type);
        let name = info.map_or("", |c| c.name.as_str());
        let mut fixed = Vec::with_capacity(name.len() + 20);
        pb::int32(1, idx as i32, &mut fixed);
        let sql_type_start = fixed.len();
        pb::int32(2, usual_sql_type, &mut fixed);
        let sql_type_at = (sql_type_start, fixed.len());
        pb::string(3, name, &mut fixed);
        pb::bool(4, info.is_some_and(|c| c.is_key), &mut fixed);
        let mut tail = Vec::new();
        if let Some(t) = format.as_ref().ok().and_then(ColumnFormat::mysql_type) {
            pb::string(10, t, &mut tail);
        }
        ColumnOut {
            format,
            fixed,
            sql_type_at,
            usual_sql_type,
            tail,
        }
    }
}

/// Turns binlog events into Canal entries; one per destination, fed in binlog order.
pub struct Converter {
    opts: ConvertOptions,
    tables: HashMap<u64, MappedTable>,
    gtid: Option<GtidState>,
    /// `curtGtid`, `curtGtidSn`, `curtGtidLct` of the current MySQL transaction.
    current_gtid_props: Option<(String, u64, u64)>,
    /// Rows entries emitted in the current transaction (Canal's empty-transaction rule).
    rows_in_txn: usize,
    /// A BEGIN held back until the transaction shows a row, so empty transactions can be dropped.
    pending_begin: Option<ParsedEntry>,
    empty_dropped: usize,
    last_empty_passed_ms: i64,
}

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
            current_gtid_props: None,
            rows_in_txn: 0,
            pending_begin: None,
            empty_dropped: 0,
            last_empty_passed_ms: i64::MIN,
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
            EventData::RowsEvent(rows) => self.on_rows(ev, pos, &at, &rows),
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

    fn statement_helper(&mut self, ev: &Event, pos: &EventPos, sql: &str) -> Vec<ParsedEntry> {
        if self.opts.filter_query_dml {
            return Vec::new();
        }
        let e = self.query_entry(ev, pos, "", "", sql, EventType::Query, None, false);
        self.emit_in_txn(vec![e])
    }

    fn position(&self, ev: &Event, pos: &EventPos) -> EntryPosition {
        EntryPosition {
            binlog: BinlogPosition::new(pos.file.clone(), pos.offset),
            next_offset: pos.next_offset,
            server_id: ev.header().server_id(),
            timestamp_ms: ev.header().timestamp() as i64 * 1000,
            gtid: self
                .gtid
                .as_ref()
                .filter(|_| self.opts.gtid_mode)
                .map(GtidSet::from),
            inclusive: false,
        }
    }

    fn header(&self, ev: &Event, pos: &EventPos) -> Header {
        let h = ev.header();
        let mut header = Header {
            version: Some(1),
            logfile_name: Some(pos.file.clone()),
            logfile_offset: Some(pos.offset as i64),
            server_id: Some(h.server_id() as i64),
            serveren_code: Some("UTF-8".into()),
            execute_time: Some(h.timestamp() as i64 * 1000),
            source_type: Some(Type::Mysql as i32),
            event_length: Some(h.event_size() as i64),
            ..Default::default()
        };
        if self.opts.gtid_mode {
            if let Some(g) = &self.gtid {
                header.gtid = Some(g.to_string());
            }
            if let Some((gtid, sn, lct)) = &self.current_gtid_props {
                header.props.push(pair("curtGtid", gtid.clone()));
                header.props.push(pair("curtGtidSn", sn.to_string()));
                header.props.push(pair("curtGtidLct", lct.to_string()));
            }
        }
        header
    }

    fn entry(
        &self,
        ev: &Event,
        pos: &EventPos,
        header: Header,
        ty: EntryType,
        value: Vec<u8>,
    ) -> ParsedEntry {
        ParsedEntry {
            entry: Entry {
                header: Some(header),
                entry_type: Some(ty as i32),
                store_value: Some(value.into()),
            },
            position: self.position(ev, pos),
        }
    }

    fn begin_entry(&self, ev: &Event, pos: &EventPos, begin: TransactionBegin) -> ParsedEntry {
        let mut header = self.header(ev, pos);
        header.schema_name = Some(String::new());
        header.table_name = Some(String::new());
        self.entry(
            ev,
            pos,
            header,
            EntryType::Transactionbegin,
            begin.encode_to_vec(),
        )
    }

    fn on_maria_gtid(&mut self, ev: &Event, pos: &EventPos, g: MariaGtidEvent) -> Vec<ParsedEntry> {
        if let Some(GtidState::Maria(state)) = self.gtid.as_mut() {
            state.update(MariaGtid {
                domain: g.domain,
                server: ev.header().server_id(),
                seq: g.seq,
            });
        }
        self.current_gtid_props = None;
        if g.flags & MariaGtidEvent::FL_COMPLETED_XA != 0 {
            // The XA COMMIT/ROLLBACK query that follows is its own entry.
            return Vec::new();
        }
        if g.flags & MariaGtidEvent::FL_PREPARED_XA != 0 {
            // MariaDB logs no XA START query: the GTID event carries the XID.
            let begin = TransactionBegin {
                props: vec![
                    pair("XA_TYPE", "XA START"),
                    pair("XA_XID", format!(" {}", g.xid.clone().unwrap_or_default())),
                ],
                ..Default::default()
            };
            let b = self.begin_entry(ev, pos, begin);
            return self.start_txn(b);
        }
        if g.is_standalone() || !self.opts.mariadb_begin {
            return Vec::new();
        }
        // MariaDB writes no BEGIN query after a transactional GTID event; this is where the
        // transaction starts. The thread id is not in the GTID event, so it is left unset.
        let begin = self.begin_entry(ev, pos, TransactionBegin::default());
        self.start_txn(begin)
    }

    fn start_txn(&mut self, begin: ParsedEntry) -> Vec<ParsedEntry> {
        self.rows_in_txn = 0;
        self.pending_begin = Some(begin);
        Vec::new()
    }

    /// Emits entries that belong inside a transaction, releasing a held-back BEGIN first.
    fn emit_in_txn(&mut self, entries: Vec<ParsedEntry>) -> Vec<ParsedEntry> {
        if entries.is_empty() {
            return entries;
        }
        self.rows_in_txn += entries.len();
        match self.pending_begin.take() {
            Some(b) => {
                let mut out = Vec::with_capacity(entries.len() + 1);
                out.push(b);
                out.extend(entries);
                out
            }
            None => entries,
        }
    }

    fn on_end(&mut self, ev: &Event, pos: &EventPos, end: TransactionEnd) -> Vec<ParsedEntry> {
        let mut header = self.header(ev, pos);
        header.schema_name = Some(String::new());
        header.table_name = Some(String::new());
        let end_entry = self.entry(
            ev,
            pos,
            header,
            EntryType::Transactionend,
            end.encode_to_vec(),
        );
        let begin = self.pending_begin.take();
        let had_rows = self.rows_in_txn > 0;
        self.rows_in_txn = 0;
        self.current_gtid_props = None;
        if had_rows {
            return vec![end_entry];
        }
        // An empty transaction (no row passed the filter). Canal drops it, except one every 5 s
        // of event time or after 8192 dropped, so that cursors keep moving.
        let now = end_entry.position.timestamp_ms;
        if self.empty_dropped + 1 >= EMPTY_TXN_PASS_COUNT
            || now.saturating_sub(self.last_empty_passed_ms) >= EMPTY_TXN_PASS_MS
        {
            self.empty_dropped = 0;
            self.last_empty_passed_ms = now;
            let mut out = Vec::with_capacity(2);
            out.extend(begin);
            out.push(end_entry);
            out
        } else {
            self.empty_dropped += 1;
            Vec::new()
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn query_entry(
        &self,
        ev: &Event,
        pos: &EventPos,
        schema: &str,
        table: &str,
        sql: &str,
        ty: EventType,
        ddl_schema: Option<&str>,
        is_ddl: bool,
    ) -> ParsedEntry {
        let mut header = self.header(ev, pos);
        header.schema_name = Some(schema.to_string());
        header.table_name = Some(table.to_string());
        header.event_type = Some(ty as i32);
        let rc = RowChange {
            event_type: Some(ty as i32),
            is_ddl: is_ddl.then_some(true),
            sql: Some(sql.to_string()),
            ddl_schema_name: ddl_schema.filter(|s| !s.is_empty()).map(str::to_string),
            ..Default::default()
        };
        self.entry(ev, pos, header, EntryType::Rowdata, rc.encode_to_vec())
    }

    #[allow(clippy::too_many_arguments)]
    fn on_query(
        &mut self,
        ev: &Event,
        pos: &EventPos,
        at: &BinlogPosition,
        sql: &str,
        db: &str,
        thread_id: i64,
        schemas: &mut dyn SchemaLookup,
    ) -> Result<Vec<ParsedEntry>, ConvertError> {
        let trimmed = sql.trim();
        let upper: String = trimmed
            .chars()
            .take(16)
            .collect::<String>()
            .to_ascii_uppercase();
        if let Some(rest) = strip_keyword(trimmed, "XA START") {
            let begin = TransactionBegin {
                thread_id: Some(thread_id),
                props: vec![pair("XA_TYPE", "XA START"), pair("XA_XID", rest)],
                ..Default::default()
            };
            let b = self.begin_entry(ev, pos, begin);
            return Ok(self.start_txn(b));
        }
        if let Some(rest) = strip_keyword(trimmed, "XA END") {
            let end = TransactionEnd {
                transaction_id: Some("0".into()),
                props: vec![pair("XA_TYPE", "XA END"), pair("XA_XID", rest)],
                ..Default::default()
            };
            return Ok(self.on_end(ev, pos, end));
        }
        for (kw, ty) in [
            ("XA COMMIT", EventType::Xacommit),
            ("XA ROLLBACK", EventType::Xarollback),
        ] {
            if let Some(rest) = strip_keyword(trimmed, kw) {
                let mut header = self.header(ev, pos);
                header.event_type = Some(ty as i32);
                let rc = RowChange {
                    event_type: Some(ty as i32),
                    sql: Some(sql.to_string()),
                    props: vec![pair("XA_TYPE", kw), pair("XA_XID", rest)],
                    ..Default::default()
                };
                let e = self.entry(ev, pos, header, EntryType::Rowdata, rc.encode_to_vec());
                return Ok(vec![e]);
            }
        }
        if upper.starts_with("XA ") {
            return Ok(Vec::new());
        }
        if upper == "BEGIN" || ends_with_keyword(trimmed, "BEGIN") {
            let begin = TransactionBegin {
                thread_id: Some(thread_id),
                ..Default::default()
            };
            let b = self.begin_entry(ev, pos, begin);
            return Ok(self.start_txn(b));
        }
        if ends_with_keyword(trimmed, "COMMIT") && trimmed.len() <= "COMMIT".len() + 2 {
            let end = TransactionEnd {
                transaction_id: Some("0".into()),
                ..Default::default()
            };
            return Ok(self.on_end(ev, pos, end));
        }
        // DDL or statement DML. Apply to the schema history first (even when filtered out).
        let stmts = ddl::classify(sql, db);
        let touches_schema = stmts.iter().any(|s| s.kind.changes_schema());
        if touches_schema {
            schemas
                .apply_ddl(at, sql, db)
                .map_err(|reason| ConvertError::Ddl {
                    at: at.clone(),
                    sql: sql.to_string(),
                    reason,
                })?;
            // Table ids may now map to other definitions.
            self.tables.clear();
        }
        let Some(first) = stmts.into_iter().next() else {
            return Ok(Vec::new());
        };
        let kind = first.kind;
        let is_dml = matches!(kind, DdlKind::Insert | DdlKind::Update | DdlKind::Delete);
        let is_query = kind == DdlKind::Query;
        if (is_dml && self.opts.filter_query_dml)
            || (is_query && self.opts.filter_query_dcl)
            || self.opts.filter_query_ddl
        {
            return Ok(Vec::new());
        }
        let schema = first.schema.clone().unwrap_or_default();
        let table = first.table.clone().unwrap_or_default();
        if !is_dml && !is_query && !table.is_empty() {
            let pass = self.opts.filter.accepts(&schema, &table)
                || match (&first.old_schema, &first.old_table) {
                    (Some(os), Some(ot)) => self.opts.filter.accepts(os, ot),
                    _ => false,
                };
            if !pass {
                return Ok(Vec::new());
            }
        }
        let ty = EventType::try_from(kind.event_type_code()).unwrap_or(EventType::Query);
        let mut header = self.header(ev, pos);
        if let Some(s) = &first.schema {
            header.schema_name = Some(s.clone());
        }
        if let Some(t) = &first.table {
            header.table_name = Some(t.clone());
        }
        header.event_type = Some(ty as i32);
        let rc = RowChange {
            event_type: Some(ty as i32),
            is_ddl: Some(!is_dml),
            sql: Some(sql.to_string()),
            ddl_schema_name: (!db.is_empty()).then(|| db.to_string()),
            ..Default::default()
        };
        let e = self.entry(ev, pos, header, EntryType::Rowdata, rc.encode_to_vec());
        if is_dml {
            return Ok(self.emit_in_txn(vec![e]));
        }
        // DDL is its own unit: MySQL and MariaDB write no BEGIN/COMMIT around it.
        self.pending_begin = None;
        self.rows_in_txn = 0;
        Ok(vec![e])
    }

    fn on_table_map(
        &mut self,
        tme: TableMapEvent<'static>,
        at: &BinlogPosition,
        schemas: &mut dyn SchemaLookup,
    ) -> Result<(), ConvertError> {
        let schema = tme.database_name().into_owned();
        let table = tme.table_name().into_owned();
        let accepted = self.opts.filter.accepts(&schema, &table);
        let n = tme.columns_count() as usize;
        let binlog_meta = BinlogColumnMeta::read(&tme);
        let cols: Vec<ColInfo> = if !accepted {
            Vec::new()
        } else if let Some(meta) = schemas.table_at(&schema, &table, at) {
            if meta.columns.len() != n {
                if binlog_meta.names.len() == n {
                    binlog_meta.columns(&tme, None)
                } else {
                    return Err(ConvertError::ColumnMismatch {
                        schema,
                        table,
                        at: at.clone(),
                        binlog: n,
                        schema_columns: meta.columns.len(),
                    });
                }
            } else {
                binlog_meta.columns(&tme, Some(&meta))
            }
        } else if binlog_meta.names.len() == n || self.opts.schemaless {
            binlog_meta.columns(&tme, None)
        } else if self.opts.filter_table_error {
            tracing::warn!(%schema, %table, %at, "no table definition; skipping its rows (filter_table_error)");
            self.tables.insert(
                tme.table_id(),
                MappedTable {
                    tme,
                    schema,
                    table,
                    accepted: false,
                    cols: Arc::from(Vec::new()),
                    outs: Vec::new(),
                },
            );
            return Ok(());
        } else {
            return Err(ConvertError::NeedTable {
                schema,
                table,
                at: at.clone(),
            });
        };
        let outs = if accepted {
            (0..n)
                .map(|i| ColumnOut::new(&tme, i, cols.get(i), &self.opts.values))
                .collect()
        } else {
            Vec::new()
        };
        self.tables.insert(
            tme.table_id(),
            MappedTable {
                tme,
                schema,
                table,
                accepted,
                cols: Arc::from(cols),
                outs,
            },
        );
        Ok(())
    }

    fn on_rows(
        &mut self,
        ev: &Event,
        pos: &EventPos,
        at: &BinlogPosition,
        rows: &RowsEventData<'_>,
    ) -> Result<Vec<ParsedEntry>, ConvertError> {
        let table_id = rows.table_id();
        let Some(mapped) = self.tables.get(&table_id) else {
            return Err(ConvertError::UnknownTableId {
                at: at.clone(),
                table_id,
            });
        };
        if !mapped.accepted {
            return Ok(Vec::new());
        }
        let ty = match rows {
            RowsEventData::WriteRowsEvent(_) | RowsEventData::WriteRowsEventV1(_) => {
                EventType::Insert
            }
            RowsEventData::DeleteRowsEvent(_) | RowsEventData::DeleteRowsEventV1(_) => {
                EventType::Delete
            }
            _ => EventType::Update,
        };
        let raw_type = ev.header().event_type_raw();
        let full = || format!("{}.{}", mapped.schema, mapped.table);
        let cols = &mapped.cols;
        let corrupt = |source| ConvertError::Event {
            at: at.clone(),
            source,
        };
        let bad_rows = |source| ConvertError::Rows {
            table: full(),
            at: at.clone(),
            source,
        };
        let mut decoder = event::guarded(raw_type, || {
            RowDecoder::new(rows, &mapped.tme, &|i| {
                cols.get(i).is_some_and(|c| c.unsigned)
            })
        })
        .map_err(corrupt)?
        .map_err(bad_rows)?;

        // The RowChange is written straight to protobuf (byte for byte what prost would write
        // for the same message), without building a `Column` per value.
        let mut rc = Vec::with_capacity(rows.rows_data().len() * 3 + 32);
        pb::int64(1, table_id as i64, &mut rc);
        pb::int32(2, ty as i32, &mut rc);
        pb::bool(10, false, &mut rc);
        let mut w = RowWriter::default();
        let (mut before, mut after) = (Vec::new(), Vec::new());
        let mut row_count = 0usize;
        loop {
            let shape = event::guarded(raw_type, || decoder.next_row(&mut before, &mut after))
                .map_err(corrupt)?
                .map_err(bad_rows)?;
            let Some(shape) = shape else { break };
            if let Err((idx, source)) = w.row(mapped, ty, shape, &before, &after, &mut rc) {
                // Corrupt row data wins over a value error, as when every row was decoded first.
                while event::guarded(raw_type, || decoder.next_row(&mut before, &mut after))
                    .map_err(corrupt)?
                    .map_err(bad_rows)?
                    .is_some()
                {}
                return Err(ConvertError::Value {
                    table: full(),
                    column: cols
                        .get(idx)
                        .map(|c| c.name.clone())
                        .unwrap_or_else(|| format!("@{}", idx + 1)),
                    at: at.clone(),
                    source,
                });
            }
            row_count += 1;
        }
        let mut header = self.header(ev, pos);
        header.schema_name = Some(mapped.schema.clone());
        header.table_name = Some(mapped.table.clone());
        header.event_type = Some(ty as i32);
        if row_count > 0 {
            header.props.push(pair("rowsCount", row_count.to_string()));
        }
        let e = self.entry(ev, pos, header, EntryType::Rowdata, rc);
        Ok(self.emit_in_txn(vec![e]))
    }
}

/// Scratch buffers for writing `RowData` messages, reused across the rows of one event.
#[derive(Default)]
struct RowWriter {
    /// The `RowData` being written.
    row: Vec<u8>,
    /// The text of the value being written.
    text: String,
    /// Texts of the current row's before image, and per column index where its text sits in
    /// `before_text` (`None` for NULL); `before_at` is only valid for indexes in `before_set`.
    before_text: String,
    before_at: Vec<Option<(usize, usize)>>,
    before_set: Vec<bool>,
}

impl RowWriter {
    /// Appends one `RowData` (field 12 of RowChange) to `rc`. Canal's layout: INSERT has only
    /// after columns, DELETE only before columns, UPDATE both; an after column is `updated`
    /// unless the before image has the same value for it. Errors name the column index.
    fn row(
        &mut self,
        mapped: &MappedTable,
        ty: EventType,
        shape: RowShape,
        before: &[(usize, Cell<'_>)],
        after: &[(usize, Cell<'_>)],
        rc: &mut Vec<u8>,
    ) -> Result<(), (usize, crate::value::ValueError)> {
        let n = mapped.outs.len();
        self.row.clear();
        self.before_text.clear();
        self.before_set.clear();
        self.before_set.resize(n, false);
        self.before_at.resize(n, None);
        let write_before = ty != EventType::Insert;
        let write_after = ty != EventType::Delete;
        if shape.before {
            for (idx, value) in before {
                let out = column_out(mapped, *idx)?;
                let start = self.before_text.len();
                let f = out.format(*idx, value, &mut self.before_text)?;
                if *idx < n {
                    self.before_set[*idx] = true;
                    self.before_at[*idx] = (!f.is_null).then_some((start, self.before_text.len()));
                }
                if write_before {
                    let text = &self.before_text[start..];
                    out.write(1, f, false, text, &mut self.row);
                }
            }
        }
        if shape.after {
            for (idx, value) in after {
                let out = column_out(mapped, *idx)?;
                self.text.clear();
                let f = out.format(*idx, value, &mut self.text)?;
                let same = *idx < n
                    && self.before_set[*idx]
                    && match self.before_at[*idx] {
                        None => f.is_null,
                        Some((a, b)) => !f.is_null && self.before_text[a..b] == self.text,
                    };
                if write_after {
                    out.write(2, f, !same, &self.text, &mut self.row);
                }
            }
        }
        pb::bytes(12, &self.row, rc);
        Ok(())
    }
}

fn column_out(
    mapped: &MappedTable,
    idx: usize,
) -> Result<&ColumnOut, (usize, crate::value::ValueError)> {
    mapped.outs.get(idx).ok_or((
        idx,
        crate::value::ValueError::UnsupportedType(ColumnType::MYSQL_TYPE_NULL),
    ))
}

impl ColumnOut {
    fn format(
        &self,
        idx: usize,
        value: &Cell<'_>,
        text: &mut String,
    ) -> Result<Formatted, (usize, crate::value::ValueError)> {
        let format = self.format.as_ref().map_err(|e| (idx, e.clone()))?;
        match value {
            Cell::Value(v) => format.format_into(v, text),
            Cell::Bytes(b) => format.format_bytes_into(b, text),
            Cell::NewDecimal { raw, .. } => format.format_decimal_bin_into(raw, text),
            Cell::Timestamp2 { secs, fraction } => {
                format.format_timestamp2_into(*secs, *fraction, text)
            }
        }
        .map_err(|e| (idx, e))
    }

    /// Appends the `Column` message as field `field` (1: before, 2: after) of a RowData.
    fn write(&self, field: u32, f: Formatted, updated: bool, text: &str, row: &mut Vec<u8>) {
        let (at, end) = self.sql_type_at;
        let usual = f.sql_type == self.usual_sql_type;
        let sql_type = if usual {
            end - at
        } else {
            pb::int32_len(f.sql_type)
        };
        let value = if f.is_null {
            0
        } else {
            1 + pb::len_varint(text.len() as u64) + text.len()
        };
        let len = self.fixed.len() - (end - at) + sql_type + 4 + value + self.tail.len();
        row.reserve(len + 6);
        pb::key(field, pb::LEN, row);
        pb::varint(len as u64, row);
        if usual {
            row.extend_from_slice(&self.fixed);
        } else {
            row.extend_from_slice(&self.fixed[..at]);
            pb::int32(2, f.sql_type, row);
            row.extend_from_slice(&self.fixed[end..]);
        }
        // `updated` (5) and `isNull` (6).
        row.extend_from_slice(&[5 << 3, u8::from(updated), 6 << 3, u8::from(f.is_null)]);
        if !f.is_null {
            pb::string(8, text, row);
        }
        row.extend_from_slice(&self.tail);
    }
}

/// What TABLE_MAP optional metadata (`binlog_row_metadata`) says about the columns.
#[derive(Debug, Default)]
struct BinlogColumnMeta {
    names: Vec<String>,
    unsigned: Vec<bool>,
    charsets: Vec<Option<u16>>,
    pk: Vec<usize>,
    enum_labels: Vec<Vec<String>>,
    set_labels: Vec<Vec<String>>,
}

impl BinlogColumnMeta {
    fn read(tme: &TableMapEvent<'_>) -> Self {
        let n = tme.columns_count() as usize;
        let mut out = BinlogColumnMeta::default();
        let Ok(ex) = OptionalMetaExtractor::new(tme.iter_optional_meta()) else {
            return out;
        };
        out.names = ex
            .iter_column_name()
            .map_while(|r| r.ok().map(|c| c.name().into_owned()))
            .collect();
        let mut signs = ex.iter_signedness();
        let mut charsets = ex.iter_charset();
        let mut es_charsets = ex.iter_enum_and_set_charset();
        for i in 0..n {
            let ty = tme.get_column_type(i).ok().flatten();
            let numeric = ty.is_some_and(|t| t.is_numeric_type());
            out.unsigned.push(numeric && signs.next().unwrap_or(false));
            let cs = match ty {
                Some(t) if has_charset_metadata(t) => charsets.next().and_then(|r| r.ok()),
                Some(t) if t.is_enum_or_set_type() => es_charsets.next().and_then(|r| r.ok()),
                _ => None,
            };
            out.charsets.push(cs);
        }
        out.pk = ex
            .iter_primary_key()
            .map_while(|r| r.ok().map(|i| i as usize))
            .collect();
        for field in tme.iter_optional_meta().flatten() {
            match field {
                OptionalMetadataField::EnumStrValue(v) => out.enum_labels = str_values(&v),
                OptionalMetadataField::SetStrValue(v) => out.set_labels = str_values(&v),
                _ => {}
            }
        }
        out
    }

    fn columns(&self, tme: &TableMapEvent<'_>, meta: Option<&TableMeta>) -> Vec<ColInfo> {
        let n = tme.columns_count() as usize;
        let mut enums = self.enum_labels.iter();
        let mut sets = self.set_labels.iter();
        (0..n)
            .map(|i| {
                let ty = tme.get_column_type(i).ok().flatten();
                let binlog_labels = match ty {
                    Some(ColumnType::MYSQL_TYPE_ENUM) => enums.next().cloned(),
                    Some(ColumnType::MYSQL_TYPE_SET) => sets.next().cloned(),
                    _ => None,
                };
                match meta.and_then(|m| m.columns.get(i)) {
                    Some(c) => ColInfo {
                        name: c.name.clone(),
                        is_key: c.is_primary_key,
                        declared: Some(c.column_type.clone()),
                        unsigned: c.unsigned || self.unsigned.get(i).copied().unwrap_or(false),
                        collation: c.collation_id.or(self.charsets.get(i).copied().flatten()),
                        labels: if c.enum_values.is_empty() {
                            binlog_labels
                        } else {
                            Some(c.enum_values.clone())
                        },
                    },
                    None => ColInfo {
                        name: self
                            .names
                            .get(i)
                            .cloned()
                            .unwrap_or_else(|| format!("@{}", i + 1)),
                        is_key: self.pk.contains(&i),
                        declared: None,
                        unsigned: self.unsigned.get(i).copied().unwrap_or(false),
                        collation: self.charsets.get(i).copied().flatten(),
                        labels: binlog_labels,
                    },
                }
            })
            .collect()
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

/// Whether TABLE_MAP charset metadata (DEFAULT_CHARSET / COLUMN_CHARSET) has an entry for a
/// column of this binlog type: MySQL counts VECTOR (9.0+) as a character column there, which
/// mysql_common's `is_character_type` does not.
fn has_charset_metadata(ty: ColumnType) -> bool {
    ty.is_character_type() || ty == ColumnType::MYSQL_TYPE_VECTOR
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

/// Per ENUM or SET column, the labels in ENUM_STR_VALUE / SET_STR_VALUE metadata, read here and
/// not by mysql_common, which pre-allocates the label count it reads: a corrupt count panicked
/// with a capacity overflow or asked for more memory than exists (found by fuzzing; this runs
/// outside the decoder guard). Stops at the first malformed column.
fn str_values(field: &impl mysql_common::proto::MySerialize) -> Vec<Vec<String>> {
    let mut raw = Vec::new();
    field.serialize(&mut raw);
    let mut b = &raw[..];
    let mut columns = Vec::new();
    'columns: while !b.is_empty() {
        let Some(count) = read_lenenc(&mut b) else {
            break;
        };
        // Every label takes at least its length byte, so `count` is bounded by the bytes left.
        let mut labels = Vec::new();
        for _ in 0..count {
            let Some(len) = read_lenenc(&mut b) else {
                break 'columns;
            };
            let Some(label) = usize::try_from(len).ok().and_then(|l| b.get(..l)) else {
                break 'columns;
            };
            labels.push(String::from_utf8_lossy(label).into_owned());
            b = &b[label.len()..];
        }
        columns.push(labels);
    }
    columns
}

/// `rest` (with its leading space) when `sql` starts with `kw` case-insensitively as a word.
fn strip_keyword<'a>(sql: &'a str, kw: &str) -> Option<&'a str> {
    let head = sql.get(..kw.len())?;
    if !head.eq_ignore_ascii_case(kw) {
        return None;
    }
    let rest = &sql[kw.len()..];
    match rest.chars().next() {
        None => Some(rest),
        Some(c) if c.is_whitespace() || c == '\'' || c == '(' => Some(rest),
        _ => None,
    }
}

fn ends_with_keyword(sql: &str, kw: &str) -> bool {
    let s = sql.trim_end_matches(|c: char| c.is_whitespace() || c == ';');
    let Some(cut) = s.len().checked_sub(kw.len()) else {
        return false;
    };
    // `get` is `None` when `cut` falls inside a multi-byte character: then the tail is not `kw`.
    let (Some(head), Some(tail)) = (s.get(..cut), s.get(cut..)) else {
        return false;
    };
    tail.eq_ignore_ascii_case(kw)
        && head
            .chars()
            .last()
            .is_none_or(|c| !c.is_alphanumeric() && c != '_')
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

    #[test]
    fn vector_columns_have_charset_metadata() {
        // MySQL 9 lists VECTOR columns in DEFAULT_CHARSET/COLUMN_CHARSET (vector.binlog: table
        // `bar(id, vector_column VECTOR, foo TEXT, vector_column2 VECTOR)` has default 63 and
        // the non-default pair (1, 255), i.e. `foo` is the second character column).
        assert!(has_charset_metadata(ColumnType::MYSQL_TYPE_VECTOR));
        assert!(has_charset_metadata(ColumnType::MYSQL_TYPE_BLOB));
        assert!(has_charset_metadata(ColumnType::MYSQL_TYPE_VARCHAR));
        assert!(!has_charset_metadata(ColumnType::MYSQL_TYPE_LONGLONG));
        assert!(!has_charset_metadata(ColumnType::MYSQL_TYPE_ENUM));
    }

    #[test]
    fn enum_and_set_labels_parsed_without_trusting_counts() {
        struct Raw(&'static [u8]);
        impl mysql_common::proto::MySerialize for Raw {
            fn serialize(&self, buf: &mut Vec<u8>) {
                buf.extend_from_slice(self.0);
            }
        }
        assert_eq!(
            str_values(&Raw(b"\x02\x01a\x02bc\x01\x01x")),
            vec![
                vec!["a".to_string(), "bc".to_string()],
                vec!["x".to_string()]
            ]
        );
        // Found by fuzzing: a label count of 2^60 made mysql_common's Vec::with_capacity panic.
        assert!(str_values(&Raw(b"\xfe\x00\x00\x00\x00\x00\x00\x00\x10\x01a")).is_empty());
        assert!(str_values(&Raw(b"\x01\x05ab")).is_empty());
    }

    #[test]
    fn keyword_helpers() {
        assert_eq!(
            strip_keyword("XA START X'31',X'',1", "XA START"),
            Some(" X'31',X'',1")
        );
        assert_eq!(strip_keyword("xa startx", "XA START"), None);
        assert!(ends_with_keyword("BEGIN", "BEGIN"));
        assert!(ends_with_keyword("/* x */ begin;", "BEGIN"));
        assert!(!ends_with_keyword("CREATE PROCEDURE p() xbegin", "BEGIN"));
        // Found by fuzzing: the keyword's length cut inside a multi-byte character panicked.
        assert!(!ends_with_keyword("éEGIN", "BEGIN"));
        assert!(!ends_with_keyword("x€GIN;", "BEGIN"));
        assert!(ends_with_keyword("é BEGIN", "BEGIN"));
    }
}

/// The RowChange bytes [`Converter`] writes directly must be exactly what prost writes for the
/// `RowChange` built column by column with [`crate::value::format_value`] (the reference below,
/// which is how rows events were converted before the direct writer).
#[cfg(test)]
mod row_encoding_tests {
    use std::path::Path;

    use canal_protocol::entry::{Column, RowData};

    use super::*;
    use crate::binlog::file::BinlogFileReader;
    use crate::binlog::rows::{decode_rows, Image};
    use crate::value::{format_value, UtcOffset};

    fn reference_columns(
        mapped: &MappedTable,
        image: &Image,
        before: Option<&[Column]>,
        values: &ValueOptions,
    ) -> Result<Vec<Column>, String> {
        let mut out = Vec::new();
        for (idx, value) in image {
            let idx = *idx;
            let info = mapped.cols.get(idx);
            let column_type = mapped
                .tme
                .get_column_type(idx)
                .ok()
                .flatten()
                .unwrap_or(ColumnType::MYSQL_TYPE_NULL);
            let desc = ColumnDesc {
                column_type,
                meta: mapped.tme.get_column_metadata(idx).unwrap_or(&[]),
                unsigned: info.is_some_and(|c| c.unsigned),
                collation: info.and_then(|c| c.collation),
                enum_set_labels: info.and_then(|c| c.labels.as_deref()),
                declared_type: info.and_then(|c| c.declared.as_deref()),
                name: info.map(|c| c.name.as_str()),
            };
            let v = format_value(&desc, value, values).map_err(|e| e.to_string())?;
            let updated = before.is_some_and(|before| {
                !before.iter().any(|b| {
                    b.index == Some(idx as i32)
                        && match (b.is_null(), v.is_null) {
                            (true, true) => true,
                            (false, false) => b.value.as_deref() == Some(v.value.as_str()),
                            _ => false,
                        }
                })
            });
            out.push(Column {
                index: Some(idx as i32),
                sql_type: Some(v.sql_type),
                name: Some(info.map(|c| c.name.clone()).unwrap_or_default()),
                is_key: Some(info.is_some_and(|c| c.is_key)),
                updated: Some(updated),
                is_null: Some(v.is_null),
                value: (!v.is_null).then_some(v.value),
                mysql_type: v.mysql_type.map(|t| t.into_owned()),
                ..Default::default()
            });
        }
        Ok(out)
    }

    /// The RowChange of a rows event the old way, or why it fails.
    fn reference(conv: &Converter, rows: &RowsEventData<'_>) -> Option<Result<Vec<u8>, String>> {
        let mapped = conv.tables.get(&rows.table_id())?;
        if !mapped.accepted {
            return None;
        }
        let ty = match rows {
            RowsEventData::WriteRowsEvent(_) | RowsEventData::WriteRowsEventV1(_) => {
                EventType::Insert
            }
            RowsEventData::DeleteRowsEvent(_) | RowsEventData::DeleteRowsEventV1(_) => {
                EventType::Delete
            }
            _ => EventType::Update,
        };
        let images = match decode_rows(rows, &mapped.tme, &|i| {
            mapped.cols.get(i).is_some_and(|c| c.unsigned)
        }) {
            Ok(images) => images,
            Err(e) => return Some(Err(e.to_string())),
        };
        let values = &conv.opts.values;
        let mut row_datas = Vec::new();
        for img in &images {
            let before = match &img.before {
                Some(b) => match reference_columns(mapped, b, None, values) {
                    Ok(c) => c,
                    Err(e) => return Some(Err(e)),
                },
                None => Vec::new(),
            };
            let after = match &img.after {
                Some(a) => match reference_columns(mapped, a, Some(&before), values) {
                    Ok(c) => c,
                    Err(e) => return Some(Err(e)),
                },
                None => Vec::new(),
            };
            row_datas.push(match ty {
                EventType::Insert => RowData {
                    after_columns: after,
                    ..Default::default()
                },
                EventType::Delete => RowData {
                    before_columns: before,
                    ..Default::default()
                },
                _ => RowData {
                    before_columns: before,
                    after_columns: after,
                    ..Default::default()
                },
            });
        }
        Some(Ok(RowChange {
            table_id: Some(rows.table_id() as i64),
            event_type: Some(ty as i32),
            is_ddl: Some(false),
            row_datas,
            ..Default::default()
        }
        .encode_to_vec()))
    }

    #[test]
    fn direct_row_change_bytes_match_prost_on_every_fixture() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/fixtures/binlog");
        assert!(
            dir.join("README.md").is_file(),
            "binlog fixtures missing: expected {}",
            dir.display()
        );
        let canal = ValueOptions {
            timestamp_zone: UtcOffset::UTC,
            ..ValueOptions::default()
        };
        let labels = ValueOptions {
            enum_as_label: true,
            set_as_labels: true,
            derive_missing_mysql_type: true,
            decimal_exact_scale: true,
            ..canal.clone()
        };
        let mut compared = 0usize;
        let mut errors = 0usize;
        for sub in std::fs::read_dir(&dir).unwrap() {
            let sub = sub.unwrap().path();
            if !sub.is_dir() {
                continue;
            }
            for file in std::fs::read_dir(&sub).unwrap() {
                let path = file.unwrap().path();
                for values in [&canal, &labels] {
                    let opts = ConvertOptions {
                        schemaless: true,
                        values: values.clone(),
                        ..Default::default()
                    };
                    let mut conv = Converter::new(opts, None);
                    let Ok(reader) = BinlogFileReader::open(&path) else {
                        continue;
                    };
                    for ev in reader {
                        let Ok(ev) = ev else { break };
                        let data = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                            ev.event.read_data().ok().flatten()
                        }));
                        let expected = match data {
                            Ok(Some(EventData::RowsEvent(rows))) => reference(&conv, &rows),
                            _ => None,
                        };
                        let got = conv.convert(&ev.event, &ev.pos, &mut NoSchema);
                        let Some(expected) = expected else { continue };
                        let at = format!("{} @{}", path.display(), ev.pos.offset);
                        match (expected, got) {
                            (Ok(bytes), Ok(entries)) => {
                                let rowdata: Vec<_> = entries
                                    .iter()
                                    .filter(|e| e.entry_type() == EntryType::Rowdata)
                                    .collect();
                                assert_eq!(rowdata.len(), 1, "{at}");
                                let got = rowdata[0].entry.store_value.as_deref().unwrap();
                                assert!(got == bytes.as_slice(), "{at}: RowChange bytes differ");
                                compared += 1;
                            }
                            (Err(_), Err(_)) => errors += 1,
                            (want, got) => panic!(
                                "{at}: reference {:?}, converter {:?}",
                                want.map(|b| b.len()),
                                got.map(|e| e.len())
                            ),
                        }
                    }
                }
            }
        }
        assert!(
            compared > 500,
            "only {compared} rows events compared ({errors} errors)"
        );
    }
}
