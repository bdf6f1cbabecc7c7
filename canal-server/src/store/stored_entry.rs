//! What the store keeps per entry: the serialized bytes plus what batching and client filters
//! need (position, table, ack point, DDL isolation, rows), read from the entry once when put.

use bytes::Bytes;
use canal_protocol::entry::{EntryType, EventType};

use crate::entry::ParsedEntry;
use crate::position::EntryPosition;

/// What is known about a stored entry without decoding it.
#[derive(Debug, Clone)]
pub struct StoredEntry {
    /// Serialized `Entry`.
    pub bytes: Bytes,
    /// Where it came from.
    pub position: EntryPosition,
    /// Schema and table from the header (for client filters).
    pub schema: String,
    /// Table name.
    pub table: String,
    /// Canal's ack point rule: TRANSACTIONEND, a TRANSACTIONBEGIN without GTID, or a DDL.
    pub ack_point: bool,
    /// A DDL that `ddl_isolation` keeps alone in its batch.
    pub isolated_ddl: bool,
    /// Rows in a ROWDATA entry (`rowsCount`).
    pub rows: u64,
    /// `Header.executeTime`.
    pub execute_time: i64,
    /// Rows of a snapshot in the stream (header property `snapshot`): a catch-up stream never
    /// has them, so no client is detached while the window holds one.
    pub snapshot: bool,
}

impl StoredEntry {
    /// Serializes `e` and classifies it, without decoding its RowChange (only the `isDdl` flag
    /// is read, see [`ParsedEntry::is_boundary`]).
    pub fn from_parsed(e: &ParsedEntry) -> Self {
        let header = e.entry.header.as_ref();
        let ty = e.entry_type();
        let ev = header.map_or(EventType::Update, |h| h.event_type());
        let is_ddl_kind = matches!(
            ev,
            EventType::Create
                | EventType::Alter
                | EventType::Erase
                | EventType::Rename
                | EventType::Truncate
                | EventType::Cindex
                | EventType::Dindex
        ) && ty == EntryType::Rowdata;
        let ack_point = match ty {
            EntryType::Transactionend => true,
            EntryType::Transactionbegin => header
                .and_then(|h| h.gtid.as_deref())
                .unwrap_or("")
                .is_empty(),
            // A ROWDATA entry is a boundary exactly when its RowChange is a DDL.
            EntryType::Rowdata => e.is_boundary(),
            _ => false,
        };
        let rows = header
            .and_then(|h| h.props.iter().find(|p| p.key() == "rowsCount"))
            .and_then(|p| p.value().parse().ok())
            .unwrap_or(0);
        Self {
            bytes: e.encode(),
            position: e.position.clone(),
            schema: header.map_or("", |h| h.schema_name()).to_string(),
            table: header.map_or("", |h| h.table_name()).to_string(),
            ack_point,
            isolated_ddl: is_ddl_kind,
            rows,
            execute_time: header.map_or(0, |h| h.execute_time()),
            snapshot: header.is_some_and(|h| h.props.iter().any(|p| p.key() == "snapshot")),
        }
    }
}
