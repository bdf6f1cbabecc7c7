//! A snapshot's progress, persisted with the destination's cursors: which tables it copies and,
//! per table, the last primary key its clients have (the next chunk starts after it).
//!
//! Stored as JSON in `data_dir/{dest}/snapshot.json` (standalone) or in the znode
//! `/otter/canal/destinations/{dest}/snapshot` (HA), written only after a cursor save succeeded
//! and only for chunks every client acked past.

use mysql_common::value::Value;
use serde::{Deserialize, Serialize};

/// One key column's value, as JSON (mysql_common values are not serde types).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "t", content = "v", rename_all = "lowercase")]
pub enum KeyValue {
    /// SQL NULL (never in a primary key; kept for completeness).
    Null,
    /// Signed integer.
    Int(i64),
    /// Unsigned integer above `i64::MAX`.
    UInt(u64),
    /// FLOAT.
    Float(f32),
    /// DOUBLE.
    Double(f64),
    /// Bytes, hex-encoded.
    Bytes(String),
    /// DATE/DATETIME parts: year, month, day, hour, minute, second, µs.
    Date(u16, u8, u8, u8, u8, u8, u32),
    /// TIME parts: negative, days, hours, minutes, seconds, µs.
    Time(bool, u32, u8, u8, u8, u32),
}

impl From<&Value> for KeyValue {
    fn from(v: &Value) -> Self {
        match v {
            Value::NULL => KeyValue::Null,
            Value::Int(i) => KeyValue::Int(*i),
            Value::UInt(u) => KeyValue::UInt(*u),
            Value::Float(f) => KeyValue::Float(*f),
            Value::Double(d) => KeyValue::Double(*d),
            Value::Bytes(b) => KeyValue::Bytes(b.iter().map(|x| format!("{x:02x}")).collect()),
            Value::Date(y, mo, d, h, mi, s, us) => KeyValue::Date(*y, *mo, *d, *h, *mi, *s, *us),
            Value::Time(n, d, h, m, s, us) => KeyValue::Time(*n, *d, *h, *m, *s, *us),
        }
    }
}

impl KeyValue {
    /// The value to bind as a query parameter; `None` for malformed hex.
    pub fn to_value(&self) -> Option<Value> {
        Some(match self {
            KeyValue::Null => Value::NULL,
            KeyValue::Int(i) => Value::Int(*i),
            KeyValue::UInt(u) => Value::UInt(*u),
            KeyValue::Float(f) => Value::Float(*f),
            KeyValue::Double(d) => Value::Double(*d),
            KeyValue::Bytes(h) => {
                if h.len() % 2 != 0 {
                    return None;
                }
                let mut out = Vec::with_capacity(h.len() / 2);
                for i in (0..h.len()).step_by(2) {
                    out.push(u8::from_str_radix(h.get(i..i + 2)?, 16).ok()?);
                }
                Value::Bytes(out)
            }
            KeyValue::Date(y, mo, d, h, mi, s, us) => Value::Date(*y, *mo, *d, *h, *mi, *s, *us),
            KeyValue::Time(n, d, h, m, s, us) => Value::Time(*n, *d, *h, *m, *s, *us),
        })
    }
}

/// One table of a snapshot.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TableProgress {
    /// `schema.table`.
    pub table: String,
    /// The last key delivered (`None`: nothing yet).
    pub last_key: Option<Vec<KeyValue>>,
    /// Every row was delivered.
    pub done: bool,
    /// Rows delivered so far (emitted; rows whose keys changed in a window come from the binlog).
    pub rows: u64,
}

impl TableProgress {
    /// Nothing of `table` delivered yet.
    pub fn new(table: &str) -> Self {
        TableProgress {
            table: table.to_string(),
            last_key: None,
            done: false,
            rows: 0,
        }
    }
}

/// A snapshot run and where each of its tables is.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Progress {
    /// Run id (the signal rows of a run carry it in their chunk ids).
    pub run: String,
    /// Start time, ms since the epoch.
    pub started_ms: i64,
    /// Tables in the order they were asked for.
    pub tables: Vec<TableProgress>,
}

impl Progress {
    /// A new run over `tables`.
    pub fn new(run: String, tables: &[String], started_ms: i64) -> Self {
        Progress {
            run,
            started_ms,
            tables: tables.iter().map(|t| TableProgress::new(t)).collect(),
        }
    }

    /// Every table is done.
    pub fn finished(&self) -> bool {
        self.tables.iter().all(|t| t.done)
    }

    /// Progress of `table`.
    pub fn table(&self, table: &str) -> Option<&TableProgress> {
        self.tables.iter().find(|t| t.table == table)
    }

    /// Replaces `update.table`'s entry.
    pub fn set(&mut self, update: TableProgress) {
        match self.tables.iter_mut().find(|t| t.table == update.table) {
            Some(t) => *t = update,
            None => self.tables.push(update),
        }
    }

    /// JSON text.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    /// Parses stored JSON.
    pub fn from_json(text: &[u8]) -> Result<Self, serde_json::Error> {
        serde_json::from_slice(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_values_round_trip_through_json() {
        let vals = [
            Value::Int(-3),
            Value::UInt(u64::MAX),
            Value::Bytes(vec![0, 0xff, b'a']),
            Value::Date(2024, 1, 2, 3, 4, 5, 6),
            Value::Time(true, 1, 2, 3, 4, 5),
            Value::Double(1.5),
        ];
        for v in vals {
            let k = KeyValue::from(&v);
            let back: KeyValue = serde_json::from_str(&serde_json::to_string(&k).unwrap()).unwrap();
            assert_eq!(back.to_value(), Some(v));
        }
        assert_eq!(KeyValue::Bytes("abc".into()).to_value(), None);
        assert_eq!(KeyValue::Bytes("zz".into()).to_value(), None);
    }

    #[test]
    fn progress_round_trips_and_tracks_tables() {
        let mut a = Progress::new("r".into(), &["s.a".into(), "s.b".into()], 0);
        a.set(TableProgress {
            last_key: Some(vec![KeyValue::Int(5)]),
            done: true,
            rows: 5,
            ..TableProgress::new("s.a")
        });
        assert_eq!(a.table("s.a").unwrap().rows, 5);
        assert!(!a.finished());
        a.set(TableProgress {
            done: true,
            ..TableProgress::new("s.b")
        });
        assert!(a.finished());
        let back = Progress::from_json(a.to_json().as_bytes()).unwrap();
        assert_eq!(back, a);
    }
}
