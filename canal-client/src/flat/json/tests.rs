//! `write_flat_json_lines` against the reference it must equal byte for byte: `flat_messages`
//! then `FlatMessage::to_json`, one line each (what `tail` printed before it wrote from the
//! entries' bytes). Hand-picked entries, random ones, merged encodings and corrupted bytes.

use canal_protocol::entry::{Column, Header, Pair, RowChange, RowData};
use canal_protocol::{Entry, EntryType, EventType};
use prost::Message as _;

use super::write_flat_json_lines;
use crate::flat::{flat_messages, summarize, BatchSummary};

/// The reference output of a batch, or its error text.
fn reference(id: i64, entries: &[Entry], ts: i64) -> Result<(String, BatchSummary), String> {
    let messages = flat_messages(id, entries, ts).map_err(|e| e.to_string())?;
    let mut text = String::new();
    for m in &messages {
        text.push_str(&m.to_json());
        text.push('\n');
    }
    Ok((text, BatchSummary::of(&messages)))
}

/// The new output of a batch, or its error text.
fn written(id: i64, entries: &[Entry], ts: i64) -> Result<(String, BatchSummary), String> {
    let mut out = b"left alone: ".to_vec();
    let summary = write_flat_json_lines(id, entries, ts, &mut out).map_err(|e| e.to_string())?;
    let text = String::from_utf8(out).expect("JSON is UTF-8");
    let text = text
        .strip_prefix("left alone: ")
        .expect("appends")
        .to_string();
    Ok((text, summary))
}

/// Both paths agree: the same bytes and summary, or the same error. Returns the output.
fn assert_same(id: i64, entries: &[Entry], ts: i64) -> String {
    let want = reference(id, entries, ts);
    let got = written(id, entries, ts);
    assert_eq!(got, want, "entries: {entries:?}");
    if let Ok((_, summary)) = &want {
        // The run loop's summary without writing agrees too (it reads no rows, so it is only
        // compared where the reference succeeded).
        let summary_alone = summarize(id, entries).map_err(|e| e.to_string());
        assert_eq!(summary_alone, Ok(*summary));
    }
    want.map(|w| w.0).unwrap_or_default()
}

fn col(name: &str, value: Option<&str>, sql_type: i32, mysql_type: &str) -> Column {
    Column {
        index: Some(0),
        sql_type: Some(sql_type),
        name: Some(name.into()),
        is_key: Some(false),
        updated: Some(false),
        is_null: Some(value.is_none()),
        value: value.map(Into::into),
        mysql_type: Some(mysql_type.into()),
        ..Default::default()
    }
}

fn key(mut c: Column) -> Column {
    c.is_key = Some(true);
    c
}

fn updated(mut c: Column) -> Column {
    c.updated = Some(true);
    c
}

fn header(schema: &str, table: &str, es: i64, et: Option<EventType>) -> Header {
    Header {
        logfile_name: Some("mysql-bin.000003".into()),
        logfile_offset: Some(4711),
        server_id: Some(1),
        schema_name: Some(schema.into()),
        table_name: Some(table.into()),
        execute_time: Some(es),
        event_type: et.map(|e| e as i32),
        gtid: Some(String::new()),
        ..Default::default()
    }
}

fn rowdata(header: Option<Header>, store_value: Vec<u8>) -> Entry {
    Entry {
        header,
        entry_type: Some(EntryType::Rowdata as i32),
        store_value: Some(store_value.into()),
    }
}

fn change(et: EventType, rows: Vec<RowData>) -> RowChange {
    RowChange {
        table_id: Some(42),
        event_type: Some(et as i32),
        is_ddl: Some(false),
        row_datas: rows,
        ..Default::default()
    }
}

/// One row of a table with a column of each kind the server emits (the test schema of
/// tests/sinks.rs and the bench's orders table), with `n` varying the values.
fn all_types(n: u32, nulls: bool) -> Vec<Column> {
    let v = |s: String| (!nulls).then_some(s);
    vec![
        key(col("id", Some(&n.to_string()), -5, "bigint(20)")),
        col(
            "tiny",
            v(format!("{}", n % 128)).as_deref(),
            -6,
            "tinyint(4)",
        ),
        col("flag", v("1".into()).as_deref(), -7, "bit(1)"),
        col(
            "amount",
            v(format!("{n}.25")).as_deref(),
            3,
            "decimal(12,2)",
        ),
        col("ratio", v("-1.5E-7".into()).as_deref(), 8, "double"),
        col("f", v("3.4028235E38".into()).as_deref(), 7, "float"),
        col(
            "email",
            v(format!("Jürgen Müller {n}@example.de")).as_deref(),
            12,
            "varchar(64)",
        ),
        col(
            "cjk",
            v("数据库 🚀 \u{1F600}".into()).as_deref(),
            12,
            "varchar(20)",
        ),
        col(
            "note",
            v("line1\nline2\t\"quoted\" back\\slash \u{1}\u{1f}\u{7f} </script>".into()).as_deref(),
            2005,
            "text",
        ),
        // Binary as Canal sends it: each byte as the ISO-8859-1 character.
        col(
            "bin",
            v("\u{0}\u{ff}\u{80}ab".into()).as_deref(),
            2004,
            "blob",
        ),
        col(
            "created_at",
            v("2024-01-01 00:00:00.123".into()).as_deref(),
            93,
            "datetime(3)",
        ),
        col(
            "updated_at",
            v("1970-01-01 08:00:01".into()).as_deref(),
            93,
            "timestamp",
        ),
        col("d", v("0000-00-00".into()).as_deref(), 91, "date"),
        col(
            "status",
            v("paid".into()).as_deref(),
            4,
            "enum('new','paid')",
        ),
        col("tags", v("a,b".into()).as_deref(), -7, "set('a','b')"),
        col(
            "doc",
            v(r#"{"k": [1, "ü", null]}"#.into()).as_deref(),
            12,
            "json",
        ),
        col("empty", v(String::new()).as_deref(), 12, "varchar(1)"),
    ]
}

#[test]
fn hand_picked_entries_match_the_reference() {
    let h = |et| Some(header("shop", "user", 1_700_000_000_000, Some(et)));
    let insert = change(
        EventType::Insert,
        (1..=3)
            .map(|n| RowData {
                after_columns: all_types(n, n == 2),
                ..Default::default()
            })
            .collect(),
    );
    let update = change(
        EventType::Update,
        vec![
            RowData {
                before_columns: all_types(1, false),
                after_columns: all_types(1, true)
                    .into_iter()
                    .map(|c| if c.is_key() { c } else { updated(c) })
                    .collect(),
                ..Default::default()
            },
            // Nothing changed: `old` gets `{}`.
            RowData {
                before_columns: all_types(2, false),
                after_columns: all_types(2, false),
                ..Default::default()
            },
            RowData {
                before_columns: vec![
                    key(col("id", Some("3"), 4, "int")),
                    col("x", None, 12, "text"),
                ],
                after_columns: vec![
                    key(col("id", Some("3"), 4, "int")),
                    updated(col("x", Some("now set"), 12, "text")),
                ],
                ..Default::default()
            },
        ],
    );
    let delete = change(
        EventType::Delete,
        vec![RowData {
            before_columns: all_types(9, false),
            after_columns: vec![],
            ..Default::default()
        }],
    );
    let ddl = RowChange {
        event_type: Some(EventType::Alter as i32),
        is_ddl: Some(true),
        sql: Some("ALTER TABLE `user` ADD COLUMN note TEXT COMMENT 'a \"b\"\n c'".into()),
        ddl_schema_name: Some("shop".into()),
        ..Default::default()
    };
    let begin = Entry {
        header: h(EventType::Insert),
        entry_type: Some(EntryType::Transactionbegin as i32),
        store_value: Some(vec![1, 2, 3].into()),
    };
    let end = Entry {
        entry_type: Some(EntryType::Transactionend as i32),
        ..Default::default()
    };
    let heartbeat = RowChange {
        event_type: Some(EventType::Mheartbeat as i32),
        ..Default::default()
    };
    let mut gtid_header = header("shop", "user", 5, Some(EventType::Insert));
    gtid_header.gtid = Some("0-1-42".into());
    let entries = vec![
        begin,
        rowdata(h(EventType::Insert), insert.encode_to_vec()),
        rowdata(h(EventType::Update), update.encode_to_vec()),
        rowdata(h(EventType::Delete), delete.encode_to_vec()),
        rowdata(h(EventType::Alter), ddl.encode_to_vec()),
        rowdata(h(EventType::Mheartbeat), heartbeat.encode_to_vec()),
        // No header at all; no store value at all; entry type left out (ROWDATA by default).
        rowdata(None, insert.encode_to_vec()),
        Entry {
            header: Some(gtid_header),
            entry_type: None,
            store_value: None,
        },
        end,
    ];
    let out = assert_same(7, &entries, 1_700_000_000_123);
    assert_eq!(out.lines().count(), 6);
    // Spot checks that the cases are what they claim to be.
    assert!(out.contains(r#""old":[{"#), "{out}");
    assert!(out.contains(r#",{},"#), "{out}");
    assert!(out.contains(r#""isDdl":true"#), "{out}");
    assert!(out.contains(r#""gtid":"0-1-42""#), "{out}");
    assert!(out.contains(r#"\u0001\u001f"#), "{out}");
    assert!(out.contains("\u{7f}"), "{out}");
    assert!(out.contains(r#""type":"DELETE""#), "{out}");
    assert!(out.contains(r#""bin":null"#), "{out}");
}

#[test]
fn edge_cases_of_fields_match_the_reference() {
    let h = Some(header("s", "t", 0, Some(EventType::Delete)));
    let bare = Column::default();
    let mut with_props = col("p", Some("v"), -1, "x");
    with_props.props = vec![Pair {
        key: Some("k".into()),
        value: Some("v".into()),
    }];
    with_props.length = Some(-3);
    let cases = vec![
        // Event type only in the header; unknown event type numbers; negative es.
        RowChange {
            row_datas: vec![RowData {
                before_columns: vec![key(col("id", Some("1"), 4, "int"))],
                after_columns: vec![col("id", Some("2"), 4, "int")],
                props: vec![Pair::default()],
            }],
            ..Default::default()
        },
        RowChange {
            event_type: Some(99),
            row_datas: vec![RowData {
                before_columns: vec![col("id", Some("1"), 4, "int")],
                ..Default::default()
            }],
            ..Default::default()
        },
        // Columns without name, value or type; duplicate names; keys only in a later row;
        // props on a column; a DDL that still carries rows; a row change with no rows.
        change(
            EventType::Update,
            vec![
                RowData {
                    before_columns: vec![bare.clone(), col("a", Some("1"), 1, "x")],
                    after_columns: vec![updated(bare.clone()), updated(col("a", None, 2, "y"))],
                    ..Default::default()
                },
                RowData {
                    before_columns: vec![col("a", Some("1"), 1, "x"), col("a", Some("2"), 1, "x")],
                    after_columns: vec![
                        key(col("b", Some("1"), 5, "z")),
                        updated(col("a", Some("3"), 6, "w")),
                        key(with_props.clone()),
                    ],
                    ..Default::default()
                },
            ],
        ),
        RowChange {
            is_ddl: Some(true),
            event_type: Some(EventType::Query as i32),
            sql: Some("SELECT 1".into()),
            row_datas: vec![RowData {
                after_columns: vec![col("id", Some("1"), 4, "int")],
                ..Default::default()
            }],
            ..Default::default()
        },
        change(EventType::Insert, vec![]),
        change(EventType::Truncate, vec![]),
    ];
    for (i, c) in cases.into_iter().enumerate() {
        let mut hh = h.clone();
        if let Some(h) = hh.as_mut() {
            h.execute_time = Some(-(i as i64));
            h.event_type = (i != 1).then_some(EventType::Delete as i32);
        }
        assert_same(i as i64 + 1, &[rowdata(hh, c.encode_to_vec())], -1);
    }
}

/// Protobuf merges concatenated encodings: repeated fields append (before and after columns
/// interleaved on the wire), the last scalar wins. The reader must follow prost there too.
#[test]
fn merged_encodings_match_the_reference() {
    let part = |before: Vec<Column>, after: Vec<Column>| {
        RowData {
            before_columns: before,
            after_columns: after,
            ..Default::default()
        }
        .encode_to_vec()
    };
    // One RowData whose before and after columns alternate on the wire.
    let mut row = part(vec![col("a", Some("1"), 4, "int")], vec![]);
    row.extend(part(vec![], vec![updated(col("a", Some("2"), 4, "int"))]));
    row.extend(part(vec![col("b", Some("x"), 12, "text")], vec![]));
    row.extend(part(vec![], vec![col("b", Some("x"), 12, "text")]));
    // A column given twice inside one element: the second name and value win.
    let mut twice = col("c", Some("old"), 4, "int").encode_to_vec();
    twice.extend(updated(col("c2", None, 5, "bigint")).encode_to_vec());
    let mut row2 = Vec::new();
    prost::encoding::bytes::encode(2, &twice, &mut row2);
    prost::encoding::bytes::encode(
        1,
        &col("c2", Some("b"), 4, "int").encode_to_vec(),
        &mut row2,
    );
    let mut rc = Vec::new();
    prost::encoding::bytes::encode(12, &row, &mut rc);
    // The event type given twice: the last wins; isDdl true then false.
    rc.extend(
        RowChange {
            event_type: Some(EventType::Insert as i32),
            is_ddl: Some(true),
            ..Default::default()
        }
        .encode_to_vec(),
    );
    prost::encoding::bytes::encode(12, &row2, &mut rc);
    rc.extend(
        RowChange {
            event_type: Some(EventType::Update as i32),
            is_ddl: Some(false),
            sql: Some(String::new()),
            ..Default::default()
        }
        .encode_to_vec(),
    );
    // An unknown field of each wire type but groups.
    prost::encoding::int64::encode(99, &-1, &mut rc);
    prost::encoding::fixed32::encode(98, &7, &mut rc);
    prost::encoding::fixed64::encode(97, &7, &mut rc);
    prost::encoding::string::encode(96, &"?".to_string(), &mut rc);
    let out = assert_same(1, &[rowdata(Some(header("s", "t", 1, None)), rc)], 2);
    assert!(out.contains(r#""old":[{"a":"1"},{"c2":"b"}]"#), "{out}");
}

/// A small deterministic generator (xorshift64*), so failures reproduce.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }

    /// `Some(make(self))` four times in five.
    fn maybe<T>(&mut self, make: impl FnOnce(&mut Self) -> T) -> Option<T> {
        (self.below(5) != 0).then(|| make(self))
    }
}

const NAMES: &[&str] = &["id", "name", "a", "b", "ü", "\"q\"", "", "x\ny", "列"];
const VALUES: &[&str] = &[
    "",
    "0",
    "-1",
    "3.14",
    "hello",
    "Jürgen",
    "\u{0}",
    "\\",
    "\"",
    "a\u{1f}b",
    "🚀",
    "\u{2028}",
    "null",
    "\u{ff}\u{fe}",
    "2024-02-29 12:00:00",
];
const TYPES: &[&str] = &[
    "int(11)",
    "varchar(20)",
    "text",
    "",
    "decimal(10,2)",
    "blob",
];

fn random_column(r: &mut Rng) -> Column {
    Column {
        index: r.maybe(|r| r.below(20) as i32),
        sql_type: r.maybe(|r| r.next() as i32 % 3000),
        name: r.maybe(|r| r.pick(NAMES).to_string()),
        is_key: r.maybe(|r| r.below(3) == 0),
        updated: r.maybe(|r| r.below(2) == 0),
        is_null: r.maybe(|r| r.below(4) == 0),
        value: r.maybe(|r| r.pick(VALUES).to_string()),
        mysql_type: r.maybe(|r| r.pick(TYPES).to_string()),
        ..Default::default()
    }
}

fn random_entry(r: &mut Rng) -> Entry {
    let columns = |r: &mut Rng| -> Vec<Column> {
        let n = r.below(6);
        (0..n).map(|_| random_column(r)).collect()
    };
    let rows = (0..r.below(5))
        .map(|_| RowData {
            before_columns: columns(r),
            after_columns: columns(r),
            ..Default::default()
        })
        .collect();
    let et = |r: &mut Rng| r.maybe(|r| r.below(18) as i32);
    let rc = RowChange {
        event_type: et(r),
        is_ddl: r.maybe(|r| r.below(4) == 0),
        sql: r.maybe(|r| r.pick(VALUES).to_string()),
        row_datas: rows,
        ..Default::default()
    };
    let header = r.maybe(|r| Header {
        schema_name: r.maybe(|r| r.pick(NAMES).to_string()),
        table_name: r.maybe(|r| r.pick(NAMES).to_string()),
        execute_time: r.maybe(|r| r.next() as i64 >> r.below(64)),
        event_type: et(r),
        gtid: r.maybe(|r| r.pick(VALUES).to_string()),
        ..Default::default()
    });
    Entry {
        header,
        entry_type: r.maybe(|r| r.below(6) as i32),
        store_value: r.maybe(|_| rc.encode_to_vec().into()),
    }
}

#[test]
fn random_entries_match_the_reference() {
    let mut r = Rng(0x9e37_79b9_7f4a_7c15);
    for i in 0..5000 {
        let entries: Vec<Entry> = (0..r.below(4) + 1).map(|_| random_entry(&mut r)).collect();
        assert_same(i, &entries, r.next() as i64);
    }
}

/// Corrupted RowChange bytes: wherever prost refuses them the same error comes back, and
/// wherever it accepts them the same line.
#[test]
fn corrupted_bytes_match_the_reference() {
    let mut r = Rng(42);
    let mut errors = 0;
    for i in 0..10000 {
        let mut e = random_entry(&mut r);
        e.entry_type = Some(EntryType::Rowdata as i32);
        let mut bytes = e.store_value.take().map(|b| b.to_vec()).unwrap_or_default();
        match r.below(4) {
            0 if !bytes.is_empty() => {
                let at = r.below(bytes.len() as u64) as usize;
                bytes[at] ^= 1 << r.below(8);
            }
            1 if !bytes.is_empty() => {
                let at = r.below(bytes.len() as u64) as usize;
                bytes[at] = r.next() as u8;
            }
            2 => bytes.truncate(r.below(bytes.len() as u64 + 1) as usize),
            _ => {
                let at = r.below(bytes.len() as u64 + 1) as usize;
                bytes.insert(at, r.next() as u8);
            }
        }
        e.store_value = Some(bytes.into());
        let want = reference(i, std::slice::from_ref(&e), 0);
        errors += usize::from(want.is_err());
        assert_eq!(
            written(i, std::slice::from_ref(&e), 0),
            want,
            "entry: {e:?}"
        );
    }
    // The corruptions do reach prost's error paths.
    assert!(errors > 100, "only {errors} corrupted entries were refused");
}

#[test]
fn invalid_utf8_is_the_reference_error() {
    let mut c = col("a", Some("x"), 4, "int").encode_to_vec();
    // The value's single byte: 0xff is never UTF-8.
    let at = c.iter().rposition(|&b| b == b'x').unwrap();
    c[at] = 0xff;
    let mut row = Vec::new();
    prost::encoding::bytes::encode(2, &c, &mut row);
    let mut rc = change(EventType::Insert, vec![]).encode_to_vec();
    prost::encoding::bytes::encode(12, &row, &mut rc);
    let e = rowdata(None, rc);
    let want = reference(3, std::slice::from_ref(&e), 0);
    assert!(want.is_err());
    assert_eq!(written(3, &[e], 0), want);
}

#[test]
fn strings_escape_as_serde_json() {
    let mut samples: Vec<String> = (0u8..=0x7f).map(|b| char::from(b).to_string()).collect();
    samples.extend(
        [
            "",
            "plain",
            "ü🚀列",
            "\u{2028}\u{2029}",
            "a\"b\\c\u{7f}\u{0}z",
            "\u{ff}\u{80}",
        ]
        .map(String::from),
    );
    // Every escape at every offset of a string longer than the eight-byte scan.
    for c in ['"', '\\', '\n', '\u{1}', '\u{1f}', 'ü', '\u{7f}'] {
        for at in 0..20 {
            let mut s: String = "abcdefghijklmnopqrst".into();
            s.insert(at, c);
            samples.push(s);
        }
    }
    for s in samples {
        let mut out = Vec::new();
        super::string(&mut out, s.as_bytes());
        assert_eq!(out, serde_json::to_vec(&s).unwrap(), "{s:?}");
    }
}
