//! What a destination produces: Canal entries with the position each came from.

use bytes::Bytes;
use canal_protocol::entry::{Entry, EntryType, EventType, Header, Pair, RowChange};
use prost::Message;

use crate::position::EntryPosition;

/// One Canal entry and where in the binlog it came from.
#[derive(Debug, Clone, PartialEq)]
pub struct ParsedEntry {
    /// The entry exactly as Canal clients receive it.
    pub entry: Entry,
    /// The binlog event it was built from.
    pub position: EntryPosition,
}

impl ParsedEntry {
    /// The entry's protobuf bytes (what the store keeps and the TCP protocol sends).
    pub fn encode(&self) -> Bytes {
        Bytes::from(self.entry.encode_to_vec())
    }

    /// Canal's entry type.
    pub fn entry_type(&self) -> EntryType {
        self.entry.entry_type()
    }

    /// The header's event type (INSERT/UPDATE/…); UPDATE when unset, as Java readers see it.
    pub fn event_type(&self) -> EventType {
        self.entry
            .header
            .as_ref()
            .map(|h| h.event_type())
            .unwrap_or(EventType::Update)
    }

    /// Whether a cursor may land here: a transaction end or a DDL (design.md "Positions").
    pub fn is_boundary(&self) -> bool {
        match self.entry_type() {
            EntryType::Transactionend => true,
            EntryType::Rowdata => self.row_change().is_some_and(|rc| rc.is_ddl()),
            _ => false,
        }
    }

    /// Decodes the RowChange of a ROWDATA entry.
    pub fn row_change(&self) -> Option<RowChange> {
        if self.entry_type() != EntryType::Rowdata {
            return None;
        }
        RowChange::decode(self.entry.store_value.clone().unwrap_or_default()).ok()
    }

    /// Schema and table from the header.
    pub fn table(&self) -> (&str, &str) {
        let h: Option<&Header> = self.entry.header.as_ref();
        (
            h.and_then(|h| h.schema_name.as_deref()).unwrap_or(""),
            h.and_then(|h| h.table_name.as_deref()).unwrap_or(""),
        )
    }
}

/// A `Pair` with both fields set.
pub fn pair(key: &str, value: impl Into<String>) -> Pair {
    Pair {
        key: Some(key.to_string()),
        value: Some(value.into()),
    }
}
