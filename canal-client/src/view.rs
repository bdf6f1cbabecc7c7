//! Typed, owned views of Canal entries.
//!
//! An [`Entry`] carries its payload as serialized bytes (`storeValue`): a
//! `RowChange` for ROWDATA, `TransactionBegin`/`TransactionEnd` for the
//! transaction markers. [`EntryView::decode`] decodes that payload once and
//! exposes the fields consumers need, with Canal's proto2 defaults applied the
//! way the Java client sees them (absent `entryType` is ROWDATA, absent
//! `isNull`/`isDdl` are false).

use std::fmt;

use canal_protocol::entry::{
    Column, Entry, EntryType, EventType, Header, Pair, RowChange, TransactionBegin, TransactionEnd,
};
use canal_protocol::EntryPosition;

/// Why an entry could not be viewed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ViewError {
    /// `storeValue` is not a valid serialized payload for the entry's type.
    #[error("malformed {what} in entry at {position}: {source}")]
    Decode {
        /// The payload type expected (`RowChange`, `TransactionBegin`, …).
        what: &'static str,
        /// Where the entry came from (`file:offset`).
        position: BinlogPosition,
        /// The protobuf error.
        source: prost::DecodeError,
    },
}

/// Where an entry's event sits in the source's binlog, taken from its header.
///
/// Displays as `file:offset`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct BinlogPosition {
    /// Binlog file name (`mysql-bin.000003`); empty if the header has none.
    pub logfile_name: String,
    /// Start offset of the event in that file.
    pub logfile_offset: i64,
    /// `server_id` of the MySQL server that wrote the event.
    pub server_id: i64,
    /// Event time, milliseconds since the epoch.
    pub execute_time: i64,
    /// GTID set, when the server runs in GTID mode.
    pub gtid: Option<String>,
}

impl fmt::Display for BinlogPosition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.logfile_name, self.logfile_offset)
    }
}

impl BinlogPosition {
    /// The position as a Canal cursor position (`included = false`).
    pub fn to_entry_position(&self) -> EntryPosition {
        EntryPosition {
            gtid: self.gtid.clone(),
            included: false,
            inclusive: false,
            journal_name: Some(self.logfile_name.clone()),
            position: Some(self.logfile_offset),
            server_id: Some(self.server_id),
            timestamp: Some(self.execute_time),
        }
    }
}

/// An entry's header: where it came from and what it touches.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HeaderView {
    header: Header,
}

impl HeaderView {
    /// Wraps a header (`None` = all fields absent).
    pub fn new(header: Option<&Header>) -> Self {
        Self {
            header: header.cloned().unwrap_or_default(),
        }
    }

    /// Schema (database) name; empty for transaction markers.
    pub fn schema(&self) -> &str {
        self.header.schema_name.as_deref().unwrap_or_default()
    }

    /// Table name; empty for transaction markers and schema-level DDL.
    pub fn table(&self) -> &str {
        self.header.table_name.as_deref().unwrap_or_default()
    }

    /// The header's event type; `None` when absent (transaction markers) or
    /// not a known value.
    pub fn event_type(&self) -> Option<EventType> {
        self.header
            .event_type
            .and_then(|raw| EventType::try_from(raw).ok())
    }

    /// Event time, milliseconds since the epoch (0 if absent).
    pub fn execute_time(&self) -> i64 {
        self.header.execute_time.unwrap_or_default()
    }

    /// Binlog position of the event.
    pub fn position(&self) -> BinlogPosition {
        BinlogPosition {
            logfile_name: self.header.logfile_name.clone().unwrap_or_default(),
            logfile_offset: self.header.logfile_offset.unwrap_or_default(),
            server_id: self.header.server_id.unwrap_or_default(),
            execute_time: self.execute_time(),
            gtid: self.header.gtid.clone().filter(|g| !g.is_empty()),
        }
    }

    /// Header properties in wire order (`rowsCount`, `curtGtid`, …).
    pub fn props(&self) -> impl Iterator<Item = (&str, &str)> {
        pairs(&self.header.props)
    }

    /// The value of header property `key`, if present.
    pub fn prop(&self, key: &str) -> Option<&str> {
        find_pair(&self.header.props, key)
    }

    /// The raw protobuf header.
    pub fn raw(&self) -> &Header {
        &self.header
    }
}

/// One column's value and metadata.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ColumnValue {
    /// Canal's text for the value; `None` for SQL NULL (`isNull`). A
    /// non-NULL column without a value field reads as `Some("")`.
    pub value: Option<String>,
    /// `java.sql.Types` code.
    pub sql_type: i32,
    /// Column type as in the table definition (`int(11)`, `varchar(20)`);
    /// empty when the server had no table metadata.
    pub mysql_type: String,
    /// Part of the table's primary key.
    pub is_key: bool,
    /// Changed by this row event: always true for INSERT, false in before
    /// images, true in an UPDATE's after image when the value differs.
    pub updated: bool,
    /// 0-based ordinal of the column in the table.
    pub index: i32,
}

impl ColumnValue {
    /// Builds the value from a protobuf column.
    pub fn from_column(column: &Column) -> Self {
        let is_null = column.is_null.unwrap_or(false);
        Self {
            value: if is_null {
                None
            } else {
                Some(column.value.clone().unwrap_or_default())
            },
            sql_type: column.sql_type.unwrap_or_default(),
            mysql_type: column.mysql_type.clone().unwrap_or_default(),
            is_key: column.is_key.unwrap_or(false),
            updated: column.updated.unwrap_or(false),
            index: column.index.unwrap_or_default(),
        }
    }

    /// True for SQL NULL.
    pub fn is_null(&self) -> bool {
        self.value.is_none()
    }
}

/// Columns of one row image, by name, in the order the server sent them
/// (ascending column ordinal).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Columns {
    columns: Vec<(String, ColumnValue)>,
}

impl Columns {
    /// Builds the map from protobuf columns, keeping their order.
    pub fn from_columns(columns: &[Column]) -> Self {
        columns
            .iter()
            .map(|c| {
                (
                    c.name.clone().unwrap_or_default(),
                    ColumnValue::from_column(c),
                )
            })
            .collect()
    }

    /// The column named `name` (exact match), if present.
    pub fn get(&self, name: &str) -> Option<&ColumnValue> {
        self.columns
            .iter()
            .find_map(|(n, v)| (n == name).then_some(v))
    }

    /// The value text of column `name`: `None` when the column is absent or
    /// NULL.
    pub fn value(&self, name: &str) -> Option<&str> {
        self.get(name).and_then(|v| v.value.as_deref())
    }

    /// Columns in order, as `(name, value)`.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &ColumnValue)> {
        self.columns.iter().map(|(n, v)| (n.as_str(), v))
    }

    /// Column names in order.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.columns.iter().map(|(n, _)| n.as_str())
    }

    /// The primary-key columns, in order.
    pub fn keys(&self) -> impl Iterator<Item = (&str, &ColumnValue)> {
        self.iter().filter(|(_, v)| v.is_key)
    }

    /// Number of columns in this image.
    pub fn len(&self) -> usize {
        self.columns.len()
    }

    /// True when the image is absent (INSERT before, DELETE after).
    pub fn is_empty(&self) -> bool {
        self.columns.is_empty()
    }
}

impl FromIterator<(String, ColumnValue)> for Columns {
    fn from_iter<I: IntoIterator<Item = (String, ColumnValue)>>(iter: I) -> Self {
        Self {
            columns: iter.into_iter().collect(),
        }
    }
}

impl<'a> IntoIterator for &'a Columns {
    type Item = (&'a str, &'a ColumnValue);
    type IntoIter = Box<dyn Iterator<Item = (&'a str, &'a ColumnValue)> + 'a>;

    fn into_iter(self) -> Self::IntoIter {
        Box::new(self.iter())
    }
}

/// One changed row. INSERT has only `after`, DELETE only `before`, UPDATE
/// both (the full or partial images the binlog carried).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RowView {
    /// The row before the change.
    pub before: Columns,
    /// The row after the change.
    pub after: Columns,
}

/// A ROWDATA entry: row changes of one binlog rows event, or a DDL/QUERY.
#[derive(Debug, Clone, PartialEq)]
pub struct RowChangeView {
    header: HeaderView,
    change: RowChange,
    rows: Vec<RowView>,
}

impl RowChangeView {
    /// Decodes the entry's `storeValue` as a RowChange, whatever its entry
    /// type (an absent `storeValue` is an empty RowChange).
    pub fn decode(entry: &Entry) -> Result<Self, ViewError> {
        let header = HeaderView::new(entry.header.as_ref());
        let change: RowChange = decode_payload(entry, "RowChange", &header)?;
        let rows = change
            .row_datas
            .iter()
            .map(|row| RowView {
                before: Columns::from_columns(&row.before_columns),
                after: Columns::from_columns(&row.after_columns),
            })
            .collect();
        Ok(Self {
            header,
            change,
            rows,
        })
    }

    /// The entry header.
    pub fn header(&self) -> &HeaderView {
        &self.header
    }

    /// Schema name (the header's).
    pub fn schema(&self) -> &str {
        self.header.schema()
    }

    /// Table name (the header's).
    pub fn table(&self) -> &str {
        self.header.table()
    }

    /// The kind of change: the RowChange's event type, else the header's,
    /// else UPDATE (the proto2 default the Java client reports).
    pub fn event_type(&self) -> EventType {
        self.change
            .event_type
            .and_then(|raw| EventType::try_from(raw).ok())
            .or_else(|| self.header.event_type())
            .unwrap_or(EventType::Update)
    }

    /// True for DDL statements (the RowChange's `isDdl`).
    pub fn is_ddl(&self) -> bool {
        self.change.is_ddl.unwrap_or(false)
    }

    /// True for a row-based INSERT, UPDATE or DELETE (not DDL).
    pub fn is_dml(&self) -> bool {
        !self.is_ddl()
            && matches!(
                self.event_type(),
                EventType::Insert | EventType::Update | EventType::Delete
            )
    }

    /// The statement text, for DDL and QUERY entries.
    pub fn sql(&self) -> Option<&str> {
        self.change.sql.as_deref()
    }

    /// For DDL, the schema the statement ran in (`ddlSchemaName`).
    pub fn ddl_schema_name(&self) -> Option<&str> {
        self.change.ddl_schema_name.as_deref()
    }

    /// The binlog table id, for row events.
    pub fn table_id(&self) -> Option<i64> {
        self.change.table_id
    }

    /// Event time, milliseconds since the epoch.
    pub fn execute_time(&self) -> i64 {
        self.header.execute_time()
    }

    /// Binlog position of the event.
    pub fn position(&self) -> BinlogPosition {
        self.header.position()
    }

    /// The changed rows, in binlog order.
    pub fn rows(&self) -> &[RowView] {
        &self.rows
    }

    /// The decoded protobuf RowChange.
    pub fn raw(&self) -> &RowChange {
        &self.change
    }
}

/// A TRANSACTIONBEGIN entry.
#[derive(Debug, Clone, PartialEq)]
pub struct TransactionBeginView {
    header: HeaderView,
    begin: TransactionBegin,
}

impl TransactionBeginView {
    /// Decodes the entry's `storeValue` as a TransactionBegin.
    pub fn decode(entry: &Entry) -> Result<Self, ViewError> {
        let header = HeaderView::new(entry.header.as_ref());
        let begin = decode_payload(entry, "TransactionBegin", &header)?;
        Ok(Self { header, begin })
    }

    /// The entry header.
    pub fn header(&self) -> &HeaderView {
        &self.header
    }

    /// Id of the MySQL thread that ran the transaction, if known.
    pub fn thread_id(&self) -> Option<i64> {
        self.begin.thread_id
    }

    /// Event time, milliseconds since the epoch.
    pub fn execute_time(&self) -> i64 {
        self.header.execute_time()
    }

    /// Binlog position of the BEGIN event.
    pub fn position(&self) -> BinlogPosition {
        self.header.position()
    }

    /// Payload properties (e.g. XA_TYPE/XA_XID) in wire order.
    pub fn props(&self) -> impl Iterator<Item = (&str, &str)> {
        pairs(&self.begin.props)
    }

    /// The decoded protobuf TransactionBegin.
    pub fn raw(&self) -> &TransactionBegin {
        &self.begin
    }
}

/// A TRANSACTIONEND entry.
#[derive(Debug, Clone, PartialEq)]
pub struct TransactionEndView {
    header: HeaderView,
    end: TransactionEnd,
}

impl TransactionEndView {
    /// Decodes the entry's `storeValue` as a TransactionEnd.
    pub fn decode(entry: &Entry) -> Result<Self, ViewError> {
        let header = HeaderView::new(entry.header.as_ref());
        let end = decode_payload(entry, "TransactionEnd", &header)?;
        Ok(Self { header, end })
    }

    /// The entry header.
    pub fn header(&self) -> &HeaderView {
        &self.header
    }

    /// The transaction id: the XID as a decimal string, `"0"` for a
    /// COMMIT query; empty if absent.
    pub fn transaction_id(&self) -> &str {
        self.end.transaction_id.as_deref().unwrap_or_default()
    }

    /// Event time, milliseconds since the epoch.
    pub fn execute_time(&self) -> i64 {
        self.header.execute_time()
    }

    /// Binlog position of the commit event.
    pub fn position(&self) -> BinlogPosition {
        self.header.position()
    }

    /// Payload properties in wire order.
    pub fn props(&self) -> impl Iterator<Item = (&str, &str)> {
        pairs(&self.end.props)
    }

    /// The decoded protobuf TransactionEnd.
    pub fn raw(&self) -> &TransactionEnd {
        &self.end
    }
}

/// An entry with its payload decoded according to its entry type.
#[derive(Debug, Clone, PartialEq)]
pub enum EntryView {
    /// TRANSACTIONBEGIN.
    TransactionBegin(TransactionBeginView),
    /// ROWDATA: rows, DDL or QUERY.
    RowChange(RowChangeView),
    /// TRANSACTIONEND.
    TransactionEnd(TransactionEndView),
    /// HEARTBEAT, GTIDLOG or an unknown type (Canal sends none of these to
    /// clients); the payload is not decoded.
    Other {
        /// The raw `entryType`.
        entry_type: i32,
        /// The entry header.
        header: HeaderView,
    },
}

impl EntryView {
    /// Decodes `entry`'s payload according to its `entryType` (absent =
    /// ROWDATA, as Java clients read it).
    pub fn decode(entry: &Entry) -> Result<Self, ViewError> {
        let raw = entry.entry_type.unwrap_or(EntryType::Rowdata as i32);
        Ok(match EntryType::try_from(raw) {
            Ok(EntryType::Transactionbegin) => {
                EntryView::TransactionBegin(TransactionBeginView::decode(entry)?)
            }
            Ok(EntryType::Rowdata) => EntryView::RowChange(RowChangeView::decode(entry)?),
            Ok(EntryType::Transactionend) => {
                EntryView::TransactionEnd(TransactionEndView::decode(entry)?)
            }
            _ => EntryView::Other {
                entry_type: raw,
                header: HeaderView::new(entry.header.as_ref()),
            },
        })
    }

    /// The entry header.
    pub fn header(&self) -> &HeaderView {
        match self {
            EntryView::TransactionBegin(v) => v.header(),
            EntryView::RowChange(v) => v.header(),
            EntryView::TransactionEnd(v) => v.header(),
            EntryView::Other { header, .. } => header,
        }
    }

    /// Binlog position of the entry's event.
    pub fn position(&self) -> BinlogPosition {
        self.header().position()
    }

    /// The row change, for ROWDATA entries.
    pub fn as_row_change(&self) -> Option<&RowChangeView> {
        match self {
            EntryView::RowChange(v) => Some(v),
            _ => None,
        }
    }
}

fn decode_payload<M: prost::Message + Default>(
    entry: &Entry,
    what: &'static str,
    header: &HeaderView,
) -> Result<M, ViewError> {
    let bytes = entry.store_value.clone().unwrap_or_default();
    M::decode(bytes).map_err(|source| ViewError::Decode {
        what,
        position: header.position(),
        source,
    })
}

fn pairs(props: &[Pair]) -> impl Iterator<Item = (&str, &str)> {
    props.iter().map(|p| {
        (
            p.key.as_deref().unwrap_or_default(),
            p.value.as_deref().unwrap_or_default(),
        )
    })
}

fn find_pair<'a>(props: &'a [Pair], key: &str) -> Option<&'a str> {
    pairs(props).find_map(|(k, v)| (k == key).then_some(v))
}

#[cfg(test)]
mod tests {
    use super::*;
    use canal_protocol::entry::RowData;
    use prost::Message as _;

    fn column(index: i32, name: &str, value: Option<&str>, key: bool, updated: bool) -> Column {
        Column {
            index: Some(index),
            sql_type: Some(4),
            name: Some(name.into()),
            is_key: Some(key),
            updated: Some(updated),
            is_null: Some(value.is_none()),
            value: value.map(Into::into),
            mysql_type: Some("int(11)".into()),
            ..Column::default()
        }
    }

    fn header(event_type: Option<EventType>) -> Header {
        Header {
            version: Some(1),
            logfile_name: Some("mysql-bin.000003".into()),
            logfile_offset: Some(1234),
            server_id: Some(7),
            execute_time: Some(1_700_000_000_000),
            schema_name: Some("shop".into()),
            table_name: Some("orders".into()),
            event_type: event_type.map(|e| e as i32),
            props: vec![Pair {
                key: Some("rowsCount".into()),
                value: Some("1".into()),
            }],
            ..Header::default()
        }
    }

    #[test]
    fn update_row_view() {
        let change = RowChange {
            table_id: Some(42),
            event_type: Some(EventType::Update as i32),
            is_ddl: Some(false),
            row_datas: vec![RowData {
                before_columns: vec![
                    column(0, "id", Some("1"), true, false),
                    column(2, "note", None, false, false),
                ],
                after_columns: vec![
                    column(0, "id", Some("1"), true, false),
                    column(2, "note", Some("hi"), false, true),
                ],
                ..RowData::default()
            }],
            ..RowChange::default()
        };
        let entry = Entry {
            header: Some(header(Some(EventType::Update))),
            entry_type: Some(EntryType::Rowdata as i32),
            store_value: Some(change.encode_to_vec().into()),
        };
        let view = EntryView::decode(&entry).unwrap();
        let rc = view.as_row_change().expect("row change");
        assert_eq!(rc.schema(), "shop");
        assert_eq!(rc.table(), "orders");
        assert_eq!(rc.event_type(), EventType::Update);
        assert!(!rc.is_ddl());
        assert!(rc.is_dml());
        assert_eq!(rc.sql(), None);
        assert_eq!(rc.table_id(), Some(42));
        assert_eq!(rc.execute_time(), 1_700_000_000_000);
        assert_eq!(rc.header().prop("rowsCount"), Some("1"));
        let pos = rc.position();
        assert_eq!(pos.to_string(), "mysql-bin.000003:1234");
        assert_eq!(pos.server_id, 7);
        assert_eq!(pos.gtid, None);
        assert_eq!(pos.to_entry_position().position, Some(1234));

        let row = &rc.rows()[0];
        assert_eq!(row.before.names().collect::<Vec<_>>(), ["id", "note"]);
        assert_eq!(row.before.value("note"), None);
        assert!(row.before.get("note").unwrap().is_null());
        assert_eq!(row.after.value("note"), Some("hi"));
        let note = row.after.get("note").unwrap();
        assert!(note.updated);
        assert_eq!(note.index, 2);
        assert_eq!(note.mysql_type, "int(11)");
        assert_eq!(note.sql_type, 4);
        assert_eq!(row.after.keys().map(|(n, _)| n).collect::<Vec<_>>(), ["id"]);
        assert!(row.after.get("missing").is_none());
    }

    #[test]
    fn insert_delete_images() {
        for (event, before, after) in [
            (EventType::Insert, false, true),
            (EventType::Delete, true, false),
        ] {
            let image = vec![column(0, "id", Some("5"), true, event == EventType::Insert)];
            let change = RowChange {
                event_type: Some(event as i32),
                row_datas: vec![RowData {
                    before_columns: if before { image.clone() } else { vec![] },
                    after_columns: if after { image.clone() } else { vec![] },
                    ..RowData::default()
                }],
                ..RowChange::default()
            };
            let entry = Entry {
                header: Some(header(Some(event))),
                entry_type: None, // absent = ROWDATA
                store_value: Some(change.encode_to_vec().into()),
            };
            let EntryView::RowChange(rc) = EntryView::decode(&entry).unwrap() else {
                panic!("expected a row change");
            };
            assert_eq!(rc.event_type(), event);
            assert_eq!(rc.rows()[0].before.is_empty(), !before);
            assert_eq!(rc.rows()[0].after.is_empty(), !after);
        }
    }

    #[test]
    fn ddl_view() {
        let change = RowChange {
            event_type: Some(EventType::Create as i32),
            is_ddl: Some(true),
            sql: Some("CREATE TABLE t (id int)".into()),
            ddl_schema_name: Some("shop".into()),
            ..RowChange::default()
        };
        let entry = Entry {
            header: Some(header(Some(EventType::Create))),
            entry_type: Some(EntryType::Rowdata as i32),
            store_value: Some(change.encode_to_vec().into()),
        };
        let rc = RowChangeView::decode(&entry).unwrap();
        assert!(rc.is_ddl());
        assert!(!rc.is_dml());
        assert_eq!(rc.event_type(), EventType::Create);
        assert_eq!(rc.sql(), Some("CREATE TABLE t (id int)"));
        assert_eq!(rc.ddl_schema_name(), Some("shop"));
        assert!(rc.rows().is_empty());
    }

    #[test]
    fn event_type_falls_back_to_header_then_update() {
        let entry = Entry {
            header: Some(header(Some(EventType::Delete))),
            entry_type: Some(EntryType::Rowdata as i32),
            store_value: Some(RowChange::default().encode_to_vec().into()),
        };
        assert_eq!(
            RowChangeView::decode(&entry).unwrap().event_type(),
            EventType::Delete
        );
        let entry = Entry {
            header: None,
            ..entry
        };
        let rc = RowChangeView::decode(&entry).unwrap();
        assert_eq!(rc.event_type(), EventType::Update);
        assert_eq!(rc.schema(), "");
        assert_eq!(rc.position(), BinlogPosition::default());
    }

    #[test]
    fn transaction_markers() {
        let mut h = header(None);
        h.schema_name = Some(String::new());
        h.table_name = Some(String::new());
        h.gtid = Some("0-1-5".into());
        let begin = Entry {
            header: Some(h.clone()),
            entry_type: Some(EntryType::Transactionbegin as i32),
            store_value: Some(
                TransactionBegin {
                    thread_id: Some(99),
                    ..TransactionBegin::default()
                }
                .encode_to_vec()
                .into(),
            ),
        };
        let EntryView::TransactionBegin(b) = EntryView::decode(&begin).unwrap() else {
            panic!("expected BEGIN");
        };
        assert_eq!(b.thread_id(), Some(99));
        assert_eq!(b.header().event_type(), None);
        assert_eq!(b.header().schema(), "");
        assert_eq!(b.position().gtid.as_deref(), Some("0-1-5"));
        assert_eq!(b.execute_time(), 1_700_000_000_000);

        let end = Entry {
            header: Some(h),
            entry_type: Some(EntryType::Transactionend as i32),
            store_value: Some(
                TransactionEnd {
                    transaction_id: Some("42".into()),
                    props: vec![Pair {
                        key: Some("k".into()),
                        value: Some("v".into()),
                    }],
                    ..TransactionEnd::default()
                }
                .encode_to_vec()
                .into(),
            ),
        };
        let EntryView::TransactionEnd(e) = EntryView::decode(&end).unwrap() else {
            panic!("expected END");
        };
        assert_eq!(e.transaction_id(), "42");
        assert_eq!(e.props().collect::<Vec<_>>(), [("k", "v")]);
        assert_eq!(e.position().logfile_offset, 1234);
    }

    #[test]
    fn other_entry_types_are_not_decoded() {
        let entry = Entry {
            header: None,
            entry_type: Some(77),
            store_value: Some(vec![0xff, 0xff].into()),
        };
        let view = EntryView::decode(&entry).unwrap();
        assert!(matches!(view, EntryView::Other { entry_type: 77, .. }));
        assert!(view.as_row_change().is_none());
    }

    #[test]
    fn malformed_store_value_is_an_error_naming_the_position() {
        let entry = Entry {
            header: Some(header(Some(EventType::Insert))),
            entry_type: Some(EntryType::Rowdata as i32),
            // Field 12 (rowDatas), length-delimited, length 5, 1 byte present.
            store_value: Some(vec![0x62, 0x05, 0x01].into()),
        };
        let err = EntryView::decode(&entry).unwrap_err();
        let text = err.to_string();
        assert!(
            text.starts_with("malformed RowChange in entry at mysql-bin.000003:1234"),
            "{text}"
        );
    }
}
