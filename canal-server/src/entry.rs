//! What a destination produces: Canal entries with the position each came from.

use bytes::Bytes;
use canal_protocol::entry::{Entry, EntryType, EventType, Header, Pair, RowChange};
use canal_protocol::pb_read::{RowChangeRef, Unsupported};
use prost::Message;

use crate::position::EntryPosition;

/// One Canal entry and where in the binlog it came from.
#[derive(Debug, Clone)]
pub struct ParsedEntry {
    /// The entry exactly as Canal clients receive it. Whoever replaces its `store_value` after
    /// [`with_shape`](Self::with_shape) says the new shape again.
    pub entry: Entry,
    /// The binlog event it was built from.
    pub position: EntryPosition,
    /// The RowChange's shape as its writer knew it; `None`: [`shape`](Self::shape) reads it.
    known_shape: Option<EntryShape>,
}

/// Entries are equal when their entries and positions are: the cached shape only saves a walk.
impl PartialEq for ParsedEntry {
    fn eq(&self, other: &Self) -> bool {
        self.entry == other.entry && self.position == other.position
    }
}

impl ParsedEntry {
    /// An entry from `position`; its shape is read from the RowChange when asked for.
    pub fn new(entry: Entry, position: EntryPosition) -> Self {
        Self {
            entry,
            position,
            known_shape: None,
        }
    }

    /// This entry with the shape of the RowChange its writer just wrote (rows counted while
    /// writing them), so that [`shape`](Self::shape) need not walk every row's bytes again.
    /// `shape` must be what the walk would find; debug builds check it.
    pub fn with_shape(mut self, shape: EntryShape) -> Self {
        self.set_shape(shape);
        self
    }

    /// Sets the known shape (see [`with_shape`](Self::with_shape)).
    pub fn set_shape(&mut self, shape: EntryShape) {
        debug_assert_eq!(
            self.walk_shape(),
            shape,
            "a wrong shape for {:?}",
            self.entry
        );
        self.known_shape = Some(shape);
    }

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
        self.shape().boundary
    }

    /// The number of rows (`RowChange.row_datas`) of a ROWDATA entry, counted without decoding
    /// them; 0 for other entries.
    pub fn row_count(&self) -> usize {
        self.shape().rows
    }

    /// [`is_boundary`](Self::is_boundary) and [`row_count`](Self::row_count): as its writer
    /// said ([`with_shape`](Self::with_shape)), else from one walk of the RowChange (each walk
    /// touches every row's bytes: on large entries that is memory traffic, not arithmetic).
    pub fn shape(&self) -> EntryShape {
        match self.known_shape {
            Some(shape) => shape,
            None => self.walk_shape(),
        }
    }

    fn walk_shape(&self) -> EntryShape {
        match self.entry_type() {
            EntryType::Transactionend => EntryShape {
                boundary: true,
                rows: 0,
            },
            // Read in place where canal-protocol's reader follows the bytes (it accepts only
            // what prost accepts); otherwise prost decodes just the two fields.
            EntryType::Rowdata => match RowChangeRef::read(self.store_value()) {
                Ok(change) => EntryShape {
                    boundary: change.is_ddl,
                    rows: change.rows.len(),
                },
                Err(Unsupported) => EntryShape {
                    boundary: self
                        .store_value_as::<RowChangeDdlFlag>()
                        .is_some_and(|f| f.is_ddl.unwrap_or(false)),
                    rows: self
                        .store_value_as::<RowChangeRows>()
                        .map_or(0, |r| r.row_datas.len()),
                },
            },
            _ => EntryShape {
                boundary: false,
                rows: 0,
            },
        }
    }

    fn store_value(&self) -> &[u8] {
        self.entry.store_value.as_deref().unwrap_or_default()
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

/// What [`ParsedEntry::shape`] found: whether a cursor may land on the entry, and its rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EntryShape {
    /// A transaction end or a DDL.
    pub boundary: bool,
    /// `RowChange.row_datas` of a ROWDATA entry; 0 for others.
    pub rows: usize,
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
        ParsedEntry::new(
            Entry {
                header: Some(Header::default()),
                entry_type: Some(EntryType::Rowdata as i32),
                store_value: Some(rc.encode_to_vec().into()),
            },
            EntryPosition {
                binlog: BinlogPosition::new("mysql-bin.000001", 4),
                next_offset: 100,
                server_id: 1,
                timestamp_ms: 0,
                gtid: None,
                inclusive: false,
            },
        )
    }

    #[test]
    fn a_shape_its_writer_gave_is_used_and_does_not_make_entries_differ() {
        let col = Column {
            name: Some("id".into()),
            value: Some("1".into()),
            ..Default::default()
        };
        let rc = RowChange {
            row_datas: vec![
                RowData {
                    after_columns: vec![col],
                    ..Default::default()
                };
                4
            ],
            ..Default::default()
        };
        let walked = rowdata(&rc);
        let shape = EntryShape {
            boundary: false,
            rows: 4,
        };
        assert_eq!(walked.shape(), shape);
        let given = walked.clone().with_shape(shape);
        assert_eq!(given, walked);
        // The given shape is what is answered: no walk of the rows (the bytes below would give
        // 0 rows).
        let mut stale = given.clone();
        stale.entry.store_value = Some(Vec::new().into());
        assert_eq!(stale.row_count(), 4);
        assert_eq!(walked.clone().with_shape(shape).row_count(), 4);
    }

    #[test]
    #[cfg(debug_assertions)]
    #[should_panic(expected = "a wrong shape")]
    fn a_wrong_shape_is_caught_in_debug_builds() {
        let _ = rowdata(&RowChange::default()).with_shape(EntryShape {
            boundary: false,
            rows: 1,
        });
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
        // Whatever bytes the store value holds, the walk agrees with prost.
        let valid = RowChange {
            table_id: Some(7),
            event_type: Some(EventType::Update as i32),
            is_ddl: Some(false),
            sql: Some("x".into()),
            row_datas: vec![row.clone(); 3],
            ddl_schema_name: Some("s".into()),
            ..Default::default()
        }
        .encode_to_vec();
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for i in 0..20_000 {
            let mut bytes = valid.clone();
            match i % 4 {
                0 => {
                    let at = next() as usize % bytes.len();
                    bytes[at] = next() as u8;
                }
                1 => bytes.truncate(next() as usize % bytes.len()),
                2 => {
                    bytes = (0..next() % 40).map(|_| next() as u8).collect();
                }
                _ => {
                    let at = next() as usize % bytes.len();
                    bytes.insert(at, next() as u8);
                }
            }
            let mut e = rowdata(&RowChange::default());
            e.entry.store_value = Some(bytes.clone().into());
            let flag = RowChangeDdlFlag::decode(&bytes[..])
                .ok()
                .is_some_and(|f| f.is_ddl.unwrap_or(false));
            let rows = RowChangeRows::decode(&bytes[..]).map_or(0, |r| r.row_datas.len());
            assert_eq!(e.is_boundary(), flag, "{bytes:?}");
            assert_eq!(e.row_count(), rows, "{bytes:?}");
        }
        let mut end = rowdata(&RowChange::default());
        end.entry.entry_type = Some(EntryType::Transactionend as i32);
        assert!(end.is_boundary());
        assert_eq!(end.row_count(), 0);
    }
}
