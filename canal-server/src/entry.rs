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
            EntryType::Rowdata => self
                .store_value_as::<RowChangeDdlFlag>()
                .is_some_and(|f| f.is_ddl.unwrap_or(false)),
            _ => false,
        }
    }

    /// The number of rows (`RowChange.row_datas`) of a ROWDATA entry, counted without decoding
    /// them; 0 for other entries.
    pub fn row_count(&self) -> usize {
        if self.entry_type() != EntryType::Rowdata {
            return 0;
        }
        self.store_value_as::<RowChangeRows>()
            .map_or(0, |r| r.row_datas.len())
    }

    fn store_value_as<M: Message + Default>(&self) -> Option<M> {
        M::decode(self.entry.store_value.clone().unwrap_or_default()).ok()
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

/// The one RowChange field [`ParsedEntry::is_boundary`] needs. Decoding it skips every other
/// field, row data included, without allocating (a full RowChange decode allocates three strings
/// per column).
#[derive(Clone, PartialEq, prost::Message)]
struct RowChangeDdlFlag {
    #[prost(bool, optional, tag = "10")]
    is_ddl: Option<bool>,
}

/// A RowChange whose rows stay encoded (`row_datas` is tag 12, length-delimited).
#[derive(Clone, PartialEq, prost::Message)]
struct RowChangeRows {
    #[prost(bytes = "bytes", repeated, tag = "12")]
    row_datas: Vec<Bytes>,
}

/// A `Pair` with both fields set.
pub fn pair(key: &str, value: impl Into<String>) -> Pair {
    Pair {
        key: Some(key.to_string()),
        value: Some(value.into()),
    }
}

#[cfg(test)]
mod tests {
    use canal_protocol::entry::{Column, RowData};

    use super::*;
    use crate::position::BinlogPosition;

    fn rowdata(rc: &RowChange) -> ParsedEntry {
        ParsedEntry {
            entry: Entry {
                header: Some(Header::default()),
                entry_type: Some(EntryType::Rowdata as i32),
                store_value: Some(rc.encode_to_vec().into()),
            },
            position: EntryPosition {
                binlog: BinlogPosition::new("mysql-bin.000001", 4),
                next_offset: 100,
                server_id: 1,
                timestamp_ms: 0,
                gtid: None,
            },
        }
    }

    #[test]
    fn boundary_and_row_count_match_a_full_decode() {
        let col = Column {
            index: Some(0),
            name: Some("id".into()),
            value: Some("1".into()),
            ..Default::default()
        };
        let row = RowData {
            before_columns: vec![col.clone()],
            after_columns: vec![col.clone(), col],
            ..Default::default()
        };
        for (is_ddl, rows) in [
            (None, 0),
            (Some(false), 3),
            (Some(true), 0),
            (Some(true), 1),
        ] {
            let rc = RowChange {
                table_id: Some(7),
                is_ddl,
                sql: Some("ALTER TABLE t ADD c INT".into()),
                row_datas: vec![row.clone(); rows],
                ..Default::default()
            };
            let e = rowdata(&rc);
            assert_eq!(
                e.is_boundary(),
                e.row_change().unwrap().is_ddl(),
                "{is_ddl:?}"
            );
            assert_eq!(e.row_count(), rows);
        }
        let mut end = rowdata(&RowChange::default());
        end.entry.entry_type = Some(EntryType::Transactionend as i32);
        assert!(end.is_boundary());
        assert_eq!(end.row_count(), 0);
    }
}
