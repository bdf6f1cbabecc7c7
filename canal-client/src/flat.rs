//! Canal's flat-message JSON (reference §5.1): what Canal's MQ mode sends with
//! `canal.mq.flatMessage=true`, one message per ROWDATA entry.
//!
//! The JSON is byte-for-byte Canal's layout: fields in alphabetical order,
//! nulls written as `null`, no whitespace, column maps in table order.
//! Two Canal defects are fixed rather than copied:
//!
//! * `old` is per row: it holds exactly the before values of the columns that
//!   row changed (Canal accumulates the changed-column set across the rows of
//!   an entry, so a later row could list columns it did not change).
//! * `old` stays aligned with `data`: an UPDATE row that changed nothing gets
//!   `{}` (Canal drops it, shifting every later row).
//!
//! [`FlatMessage`] is the message as a value (webhook bodies, the table view);
//! [`write_flat_json_lines`] writes the same JSON straight from the entries' bytes, for `tail`.

mod json;
use canal_protocol::pb_read as wire;

pub use json::write_flat_json_lines;

use canal_protocol::{Entry, EntryType, EventType};
use prost::Message as _;
use serde::ser::{Serialize, SerializeMap, Serializer};
use serde::{Deserialize, Serialize as DeriveSerialize};

use crate::view::ViewError;

/// Column name → value pairs in table order; serialized as a JSON object (order kept both ways).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Ordered<T>(pub Vec<(String, T)>);

impl<T: Serialize> Serialize for Ordered<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(self.0.len()))?;
        for (k, v) in &self.0 {
            m.serialize_entry(k, v)?;
        }
        m.end()
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Ordered<T> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visit<T>(std::marker::PhantomData<T>);
        impl<'de, T: Deserialize<'de>> serde::de::Visitor<'de> for Visit<T> {
            type Value = Ordered<T>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut m: A,
            ) -> Result<Self::Value, A::Error> {
                let mut out = Vec::new();
                while let Some((k, v)) = m.next_entry::<String, T>()? {
                    out.push((k, v));
                }
                Ok(Ordered(out))
            }
        }
        d.deserialize_map(Visit(std::marker::PhantomData))
    }
}

impl<T> Ordered<T> {
    /// The value of `name`, if present.
    pub fn get(&self, name: &str) -> Option<&T> {
        self.0.iter().find(|(k, _)| k == name).map(|(_, v)| v)
    }

    fn put(&mut self, name: &str, value: T) {
        match self.0.iter_mut().find(|(k, _)| k == name) {
            Some((_, v)) => *v = value,
            None => self.0.push((name.to_string(), value)),
        }
    }
}

/// One row: column name → value text, `None` for SQL NULL.
pub type FlatRow = Ordered<Option<String>>;

impl FlatRow {
    /// A row from `(column, value)` pairs, in order.
    pub fn from_pairs<'a>(pairs: impl IntoIterator<Item = (&'a str, Option<&'a str>)>) -> Self {
        Ordered(
            pairs
                .into_iter()
                .map(|(k, v)| (k.to_string(), v.map(str::to_string)))
                .collect(),
        )
    }
}

/// Canal's FlatMessage. Field order is the JSON order.
#[derive(Debug, Clone, PartialEq, DeriveSerialize, Deserialize)]
pub struct FlatMessage {
    /// Per row, the after image (INSERT/UPDATE) or before image (DELETE); null for DDL/QUERY.
    pub data: Option<Vec<FlatRow>>,
    /// Schema name.
    pub database: String,
    /// Binlog event time, ms since the epoch.
    pub es: i64,
    /// The transaction's GTID (`""` outside GTID mode).
    pub gtid: String,
    /// Batch id of the GET that delivered the entry.
    pub id: i64,
    /// RowChange.isDdl.
    #[serde(rename = "isDdl")]
    pub is_ddl: bool,
    /// Column name → MySQL type text (`int(11)`), union over the rows.
    #[serde(rename = "mysqlType")]
    pub mysql_type: Option<Ordered<String>>,
    /// UPDATE only: per row, the before values of the columns that row changed.
    pub old: Option<Vec<FlatRow>>,
    /// Primary-key column names of the first row; null if none or not DML.
    #[serde(rename = "pkNames")]
    pub pk_names: Option<Vec<String>>,
    /// The statement for DDL/QUERY entries, `""` for row events.
    pub sql: String,
    /// Column name → java.sql.Types code, union over the rows.
    #[serde(rename = "sqlType")]
    pub sql_type: Option<Ordered<i32>>,
    /// Table name.
    pub table: String,
    /// Wall-clock ms when the message was built.
    pub ts: i64,
    /// Event type name: INSERT, UPDATE, DELETE, CREATE, ALTER, ERASE, QUERY, …
    #[serde(rename = "type")]
    pub kind: String,
}

impl FlatMessage {
    /// The message as Canal's compact JSON.
    pub fn to_json(&self) -> String {
        // Serializing plain strings, numbers and maps cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// What the flat messages of a batch add up to: counters and lag of a run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BatchSummary {
    /// Flat messages (ROWDATA entries other than heartbeats).
    pub messages: u64,
    /// Rows in their `data`.
    pub rows: u64,
    /// The largest `es` above 0, if any.
    pub newest_es: Option<i64>,
}

impl BatchSummary {
    /// The summary of built messages.
    pub fn of(messages: &[FlatMessage]) -> Self {
        let mut s = Self::default();
        for m in messages {
            s.add(m.data.as_ref().map_or(0, Vec::len) as u64, m.es);
        }
        s
    }

    fn add(&mut self, rows: u64, es: i64) {
        self.messages += 1;
        self.rows += rows;
        if es > 0 {
            self.newest_es = Some(self.newest_es.map_or(es, |n| n.max(es)));
        }
    }
}

/// The [`BatchSummary`] of `entries` without building their messages: only each RowChange's top
/// level is read. An entry that [`flat_message`] would refuse for its top level is refused the
/// same way; one whose rows are malformed is counted (writing it fails later).
pub fn summarize(batch_id: i64, entries: &[Entry]) -> Result<BatchSummary, ViewError> {
    let mut s = BatchSummary::default();
    for entry in entries {
        if entry.entry_type() != EntryType::Rowdata {
            continue;
        }
        let header = entry.header.as_ref();
        let es = header.map_or(0, |h| h.execute_time());
        match wire::RowChangeRef::read(entry.store_value.as_deref().unwrap_or_default()) {
            Ok(change) => {
                if change.event_type(header.and_then(|h| h.event_type)) == EventType::Mheartbeat {
                    continue;
                }
                let rows = if change.is_ddl { 0 } else { change.rows.len() };
                s.add(rows as u64, es);
            }
            Err(wire::Unsupported) => {
                if let Some(m) = flat_message(batch_id, entry, 0)? {
                    s.add(m.data.as_ref().map_or(0, Vec::len) as u64, m.es);
                }
            }
        }
    }
    Ok(s)
}

/// Milliseconds since the epoch, for `ts`.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// The flat messages of one batch: one per ROWDATA entry, transaction begin/end (and heartbeat)
/// entries skipped, as Canal's MQ mode builds them. `batch_id` becomes `id`, `ts` is `now_ms`.
pub fn flat_messages(
    batch_id: i64,
    entries: &[Entry],
    ts: i64,
) -> Result<Vec<FlatMessage>, ViewError> {
    let mut out = Vec::new();
    for entry in entries {
        if let Some(m) = flat_message(batch_id, entry, ts)? {
            out.push(m);
        }
    }
    Ok(out)
}

/// The flat message of one entry, `None` for entries Canal's MQ mode skips.
pub fn flat_message(
    batch_id: i64,
    entry: &Entry,
    ts: i64,
) -> Result<Option<FlatMessage>, ViewError> {
    if entry.entry_type() != EntryType::Rowdata {
        return Ok(None);
    }
    let header = entry.header.clone().unwrap_or_default();
    let change =
        canal_protocol::entry::RowChange::decode(entry.store_value.clone().unwrap_or_default())
            .map_err(|e| ViewError::Decode {
                what: "RowChange",
                position: crate::view::HeaderView::new(entry.header.as_ref()).position(),
                source: e,
            })?;
    let event_type = change
        .event_type
        .and_then(|t| EventType::try_from(t).ok())
        .or_else(|| header.event_type.and_then(|t| EventType::try_from(t).ok()))
        .unwrap_or(EventType::Update);
    if event_type == EventType::Mheartbeat {
        return Ok(None);
    }
    let is_ddl = change.is_ddl();
    let mut data = Vec::new();
    let mut old = Vec::new();
    let mut sql_type = Ordered::default();
    let mut mysql_type = Ordered::default();
    let mut pk_names: Option<Vec<String>> = None;
    if !is_ddl {
        for row in &change.row_datas {
            let columns = if event_type == EventType::Delete {
                &row.before_columns
            } else {
                &row.after_columns
            };
            let mut values = FlatRow::default();
            let mut keys = Vec::new();
            for c in columns {
                if c.is_key() {
                    keys.push(c.name().to_string());
                }
                values.0.push((c.name().to_string(), value_of(c)));
                sql_type.put(c.name(), c.sql_type());
                mysql_type.put(c.name(), c.mysql_type().to_string());
            }
            if pk_names.is_none() && !keys.is_empty() {
                pk_names = Some(keys);
            }
            if event_type == EventType::Update {
                let changed: Vec<&str> = row
                    .after_columns
                    .iter()
                    .filter(|c| c.updated())
                    .map(|c| c.name())
                    .collect();
                let mut before = FlatRow::default();
                for c in &row.before_columns {
                    if changed.contains(&c.name()) {
                        before.0.push((c.name().to_string(), value_of(c)));
                    }
                }
                old.push(before);
            }
            data.push(values);
        }
    }
    let has_rows = !data.is_empty();
    Ok(Some(FlatMessage {
        data: has_rows.then_some(data),
        database: header.schema_name().to_string(),
        es: header.execute_time(),
        gtid: header.gtid().to_string(),
        id: batch_id,
        is_ddl,
        mysql_type: has_rows.then_some(mysql_type),
        old: (event_type == EventType::Update && has_rows).then_some(old),
        pk_names: if has_rows { pk_names } else { None },
        sql: change.sql().to_string(),
        sql_type: has_rows.then_some(sql_type),
        table: header.table_name().to_string(),
        ts,
        kind: event_type.as_str_name().to_string(),
    }))
}

/// A column's value text, `None` for SQL NULL.
fn value_of(c: &canal_protocol::entry::Column) -> Option<String> {
    (!c.is_null()).then(|| c.value().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use canal_protocol::entry::{Column, Header, RowChange, RowData};

    fn col(
        name: &str,
        v: Option<&str>,
        key: bool,
        updated: bool,
        sql_type: i32,
        mt: &str,
    ) -> Column {
        Column {
            name: Some(name.into()),
            value: Some(v.unwrap_or("").into()),
            is_null: Some(v.is_none()),
            is_key: Some(key),
            updated: Some(updated),
            sql_type: Some(sql_type),
            mysql_type: Some(mt.into()),
            ..Default::default()
        }
    }

    fn entry(change: RowChange, et: EventType, es: i64) -> Entry {
        Entry {
            header: Some(Header {
                schema_name: Some("test".into()),
                table_name: Some("t".into()),
                execute_time: Some(es),
                event_type: Some(et as i32),
                gtid: Some(String::new()),
                ..Default::default()
            }),
            entry_type: Some(EntryType::Rowdata as i32),
            store_value: Some(change.encode_to_vec().into()),
        }
    }

    /// The three examples of reference §5.1, byte for byte.
    #[test]
    fn reference_examples() {
        let ins = RowChange {
            event_type: Some(EventType::Insert as i32),
            is_ddl: Some(false),
            row_datas: vec![RowData {
                after_columns: vec![
                    col("id", Some("1"), true, true, 4, "int(11)"),
                    col("name", Some("a"), false, true, 12, "varchar(20)"),
                ],
                ..Default::default()
            }],
            ..Default::default()
        };
        let m = flat_message(
            1,
            &entry(ins, EventType::Insert, 1700000000000),
            1700000000123,
        )
        .unwrap()
        .unwrap();
        assert_eq!(
            m.to_json(),
            r#"{"data":[{"id":"1","name":"a"}],"database":"test","es":1700000000000,"gtid":"","id":1,"isDdl":false,"mysqlType":{"id":"int(11)","name":"varchar(20)"},"old":null,"pkNames":["id"],"sql":"","sqlType":{"id":4,"name":12},"table":"t","ts":1700000000123,"type":"INSERT"}"#
        );
        let upd = RowChange {
            event_type: Some(EventType::Update as i32),
            is_ddl: Some(false),
            row_datas: vec![RowData {
                before_columns: vec![
                    col("id", Some("1"), true, false, 4, "int(11)"),
                    col("name", Some("a"), false, false, 12, "varchar(20)"),
                ],
                after_columns: vec![
                    col("id", Some("1"), true, false, 4, "int(11)"),
                    col("name", Some("b"), false, true, 12, "varchar(20)"),
                ],
                ..Default::default()
            }],
            ..Default::default()
        };
        let m = flat_message(
            2,
            &entry(upd, EventType::Update, 1700000001000),
            1700000001050,
        )
        .unwrap()
        .unwrap();
        assert_eq!(
            m.to_json(),
            r#"{"data":[{"id":"1","name":"b"}],"database":"test","es":1700000001000,"gtid":"","id":2,"isDdl":false,"mysqlType":{"id":"int(11)","name":"varchar(20)"},"old":[{"name":"a"}],"pkNames":["id"],"sql":"","sqlType":{"id":4,"name":12},"table":"t","ts":1700000001050,"type":"UPDATE"}"#
        );
        let ddl = RowChange {
            event_type: Some(EventType::Alter as i32),
            is_ddl: Some(true),
            sql: Some("ALTER TABLE t ADD COLUMN c INT".into()),
            ..Default::default()
        };
        let m = flat_message(
            3,
            &entry(ddl, EventType::Alter, 1700000002000),
            1700000002040,
        )
        .unwrap()
        .unwrap();
        assert_eq!(
            m.to_json(),
            r#"{"data":null,"database":"test","es":1700000002000,"gtid":"","id":3,"isDdl":true,"mysqlType":null,"old":null,"pkNames":null,"sql":"ALTER TABLE t ADD COLUMN c INT","sqlType":null,"table":"t","ts":1700000002040,"type":"ALTER"}"#
        );
        let back: FlatMessage = serde_json::from_str(&m.to_json()).unwrap();
        assert_eq!(back, m);
    }

    /// `old` per row and aligned with `data`, nulls as JSON null, transaction entries skipped.
    #[test]
    fn old_is_per_row_and_aligned() {
        let row = |id: &str, a: (&str, &str), b: (Option<&str>, Option<&str>)| RowData {
            before_columns: vec![
                col("id", Some(id), true, false, 4, "int"),
                col("a", Some(a.0), false, false, 12, "text"),
                col("b", b.0, false, false, 12, "text"),
            ],
            after_columns: vec![
                col("id", Some(id), true, false, 4, "int"),
                col("a", Some(a.1), false, a.0 != a.1, 12, "text"),
                col("b", b.1, false, b.0 != b.1, 12, "text"),
            ],
            ..Default::default()
        };
        let upd = RowChange {
            event_type: Some(EventType::Update as i32),
            is_ddl: Some(false),
            row_datas: vec![
                row("1", ("x", "y"), (Some("p"), Some("p"))),
                row("2", ("x", "x"), (Some("p"), None)),
                row("3", ("x", "x"), (None, None)),
            ],
            ..Default::default()
        };
        let begin = Entry {
            entry_type: Some(EntryType::Transactionbegin as i32),
            ..Default::default()
        };
        let ms = flat_messages(7, &[begin, entry(upd, EventType::Update, 5)], 9).unwrap();
        assert_eq!(ms.len(), 1);
        let v: serde_json::Value = serde_json::from_str(&ms[0].to_json()).unwrap();
        assert_eq!(v["old"], serde_json::json!([{"a": "x"}, {"b": "p"}, {}]));
        assert_eq!(v["data"][1]["b"], serde_json::Value::Null);
        assert_eq!(v["data"].as_array().unwrap().len(), 3);
    }
}
