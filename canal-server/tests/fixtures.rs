//! Real binlog files written by MySQL 5.0–9.6, Percona, Aurora and MariaDB servers
//! (`shared/fixtures/binlog/`), decoded with [`BinlogFileReader`] and [`Converter`] and checked
//! against what the folder's README says they contain: event counts per type, row counts, and
//! the decoded values of chosen rows as Canal prints them (compat reference section 3).
//!
//! The files are of unknown origin, so every test converts with `schemaless` options and the
//! [`NoSchema`] lookup: columns are named from FULL metadata or `@1`, `@2`, …; TIMESTAMP text is
//! rendered in UTC. The folder is required: a missing folder fails every test.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use canal_protocol::entry::{Column, EntryType, EventType, RowChange, RowData};
use canal_server::binlog::convert::{ConvertError, ConvertOptions, Converter, NoSchema};
use canal_server::binlog::event::EventError;
use canal_server::binlog::file::{BinlogFileReader, FileError};
use canal_server::position::gtid::{GtidState, MariaGtidList, MysqlGtidSet};
use canal_server::value::{UtcOffset, ValueOptions};
use canal_server::ParsedEntry;
use mysql_common::binlog::events::EventData;

// ---------------------------------------------------------------------------------------------
// Reading the fixtures
// ---------------------------------------------------------------------------------------------

fn fixtures_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/fixtures/binlog");
    assert!(
        dir.join("README.md").is_file(),
        "binlog fixtures missing: expected the folder {} (shared/fixtures/binlog next to the \
         workspace) with README.md and the binlog files; these tests do not skip",
        dir.display()
    );
    dir
}

fn fixture(rel: &str) -> PathBuf {
    let p = fixtures_dir().join(rel);
    assert!(p.is_file(), "fixture file missing: {}", p.display());
    p
}

/// Every fixture file, as `folder/name`, sorted.
fn all_fixture_files() -> Vec<String> {
    let dir = fixtures_dir();
    let mut files = Vec::new();
    for sub in std::fs::read_dir(&dir).expect("read fixtures dir") {
        let sub = sub.expect("dir entry").path();
        if !sub.is_dir() {
            continue;
        }
        for f in std::fs::read_dir(&sub).expect("read fixture subdir") {
            let f = f.expect("dir entry").path();
            files.push(format!(
                "{}/{}",
                sub.file_name().unwrap().to_string_lossy(),
                f.file_name().unwrap().to_string_lossy()
            ));
        }
    }
    files.sort();
    files
}

/// Files the README marks as broken on purpose or of a non-GA format.
const SPECIAL_FILES: &[&str] = &[
    "rust_mysql_common/binlog_truncated_event.000001",
    "rust_mysql_common/binlog_truncated_prev_gtid_event.000001",
    "rust_mysql_common/corrupt-relay-bin.000624",
    "rust_mysql_common/ver_5_1-wl2325_r.001",
    "rust_mysql_common/ver_5_1-wl2325_s.001",
];

/// One event as the file reader yielded it.
#[derive(Debug, Clone)]
struct Ev {
    offset: u64,
    ty: u8,
    /// False for events read from inside a TRANSACTION_PAYLOAD.
    top_level: bool,
    /// Row images (row pairs for updates) in the entries converted from this event.
    rows: usize,
}

/// Everything one file decodes to.
#[derive(Debug, Default)]
struct Decoded {
    events: Vec<Ev>,
    entries: Vec<ParsedEntry>,
    /// The reader error that ended the file, if any.
    file_error: Option<FileError>,
    /// Conversion errors with the offset of their event.
    convert_errors: Vec<(u64, ConvertError)>,
}

fn value_options() -> ValueOptions {
    ValueOptions {
        timestamp_zone: UtcOffset::UTC,
        ..ValueOptions::default()
    }
}

fn options(values: ValueOptions) -> ConvertOptions {
    ConvertOptions {
        schemaless: true,
        values,
        ..Default::default()
    }
}

/// Labels for ENUM/SET and a derived `mysqlType`: what FULL metadata makes possible.
fn label_options() -> ConvertOptions {
    options(ValueOptions {
        enum_as_label: true,
        set_as_labels: true,
        derive_missing_mysql_type: true,
        ..value_options()
    })
}

fn decode_path(path: &Path, conv: &mut Converter) -> Decoded {
    let mut reader =
        BinlogFileReader::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut out = Decoded::default();
    let mut last_offset = None;
    loop {
        let ev = match reader.next_event() {
            Ok(Some(ev)) => ev,
            Ok(None) => break,
            Err(e) => {
                out.file_error = Some(e);
                break;
            }
        };
        // Events from a TRANSACTION_PAYLOAD carry the payload event's position.
        let top_level = last_offset != Some(ev.pos.offset);
        last_offset = Some(ev.pos.offset);
        let mut rows = 0;
        match conv.convert(&ev.event, &ev.pos, &mut NoSchema) {
            Ok(entries) => {
                rows = entries
                    .iter()
                    .filter_map(|e| e.row_change())
                    .map(|rc| rc.row_datas.len())
                    .sum();
                out.entries.extend(entries);
            }
            Err(e) => out.convert_errors.push((ev.pos.offset, e)),
        }
        out.events.push(Ev {
            offset: ev.pos.offset,
            ty: ev.event.header().event_type_raw(),
            top_level,
            rows,
        });
    }
    out
}

fn decode_with(rel: &str, opts: ConvertOptions) -> Decoded {
    decode_path(&fixture(rel), &mut Converter::new(opts, None))
}

fn decode(rel: &str) -> Decoded {
    decode_with(rel, options(value_options()))
}

/// Decodes a file that must read and convert to the end without any error.
fn decode_clean_with(rel: &str, opts: ConvertOptions) -> Decoded {
    let d = decode_with(rel, opts);
    assert_clean(rel, &d);
    d
}

fn decode_clean(rel: &str) -> Decoded {
    decode_clean_with(rel, options(value_options()))
}

fn assert_clean(rel: &str, d: &Decoded) {
    assert!(
        d.file_error.is_none(),
        "{rel}: reader error {:?}",
        d.file_error
    );
    assert!(
        d.convert_errors.is_empty(),
        "{rel}: conversion errors {:?}",
        d.convert_errors
            .iter()
            .map(|(o, e)| format!("@{o}: {e}"))
            .collect::<Vec<_>>()
    );
}

impl Decoded {
    fn top_level_count(&self) -> usize {
        self.events.iter().filter(|e| e.top_level).count()
    }

    fn histogram(&self, top_level: bool) -> BTreeMap<String, usize> {
        let mut h = BTreeMap::new();
        for e in self.events.iter().filter(|e| e.top_level == top_level) {
            *h.entry(type_name(e.ty)).or_default() += 1;
        }
        h
    }

    fn rows_by_type(&self) -> BTreeMap<String, usize> {
        let mut h = BTreeMap::new();
        for e in self.events.iter().filter(|e| is_rows_event(e.ty)) {
            *h.entry(type_name(e.ty)).or_default() += e.rows;
        }
        h
    }

    /// The ROWDATA entry with row images built from the event at `offset`.
    fn rows_at(&self, offset: u64) -> (&ParsedEntry, RowChange) {
        let mut found = self.entries.iter().filter_map(|e| {
            let rc = e.row_change()?;
            (offset_of(e) == offset && !rc.row_datas.is_empty()).then_some((e, rc))
        });
        let first = found
            .next()
            .unwrap_or_else(|| panic!("no rows entry at offset {offset}"));
        assert!(found.next().is_none(), "two rows entries at {offset}");
        first
    }

    /// Every entry from the event at `offset`, in order.
    fn entries_at(&self, offset: u64) -> Vec<&ParsedEntry> {
        self.entries
            .iter()
            .filter(|e| offset_of(e) == offset)
            .collect()
    }

    /// `RowChange.sql` of every entry that has one, in order.
    fn statements(&self) -> Vec<String> {
        self.entries
            .iter()
            .filter_map(|e| e.row_change()?.sql)
            .collect()
    }
}

/// Event names as the README writes them.
fn type_name(code: u8) -> String {
    let name = match code {
        2 => "QUERY",
        3 => "STOP",
        4 => "ROTATE",
        5 => "INTVAR",
        9 => "APPEND_BLOCK",
        13 => "RAND",
        14 => "USER_VAR",
        15 => "FORMAT_DESCRIPTION",
        16 => "XID",
        17 => "BEGIN_LOAD_QUERY",
        18 => "EXECUTE_LOAD_QUERY",
        19 => "TABLE_MAP",
        20 => "PRE_GA_WRITE_ROWS",
        21 => "PRE_GA_UPDATE_ROWS",
        22 => "PRE_GA_DELETE_ROWS",
        23 => "WRITE_ROWS_V1",
        24 => "UPDATE_ROWS_V1",
        25 => "DELETE_ROWS_V1",
        26 => "INCIDENT",
        29 => "ROWS_QUERY",
        30 => "WRITE_ROWS_V2",
        31 => "UPDATE_ROWS_V2",
        32 => "DELETE_ROWS_V2",
        33 => "GTID",
        34 => "ANONYMOUS_GTID",
        35 => "PREVIOUS_GTIDS",
        39 => "PARTIAL_UPDATE_ROWS",
        40 => "TRANSACTION_PAYLOAD",
        42 => "GTID_TAGGED_LOG",
        100 => "TYPE_100",
        160 => "MARIADB_ANNOTATE_ROWS",
        161 => "MARIADB_BINLOG_CHECKPOINT",
        162 => "MARIADB_GTID",
        163 => "MARIADB_GTID_LIST",
        other => return format!("TYPE_{other}"),
    };
    name.to_string()
}

fn is_rows_event(code: u8) -> bool {
    matches!(code, 20..=25 | 30..=32 | 39)
}

fn offset_of(e: &ParsedEntry) -> u64 {
    e.entry.header.as_ref().map_or(0, |h| h.logfile_offset()) as u64
}

fn header(e: &ParsedEntry) -> &canal_protocol::entry::Header {
    e.entry.header.as_ref().expect("entry header")
}

/// Checks the header fields every rows entry carries.
fn assert_rows_header(
    e: &ParsedEntry,
    file: &str,
    offset: u64,
    ty: EventType,
    schema: &str,
    table: &str,
    rows: usize,
) {
    let h = header(e);
    assert_eq!(e.entry_type(), EntryType::Rowdata);
    assert_eq!(h.logfile_name(), file, "logfileName");
    assert_eq!(h.logfile_offset(), offset as i64, "logfileOffset");
    assert_eq!(h.event_type(), ty, "eventType at {offset}");
    assert_eq!(e.table(), (schema, table), "schema/table at {offset}");
    let rows_count: Vec<&str> = h
        .props
        .iter()
        .filter(|p| p.key() == "rowsCount")
        .map(|p| p.value())
        .collect();
    assert_eq!(rows_count, [rows.to_string()], "rowsCount at {offset}");
    assert_eq!(e.position.binlog.file, file);
    assert_eq!(e.position.binlog.offset, offset);
}

/// `name=value` (or `name=NULL`) per column, in image order.
fn texts(cols: &[Column]) -> Vec<String> {
    cols.iter()
        .map(|c| {
            if c.is_null() {
                format!("{}=NULL", c.name())
            } else {
                format!("{}={}", c.name(), c.value())
            }
        })
        .collect()
}

fn col<'a>(cols: &'a [Column], name: &str) -> &'a Column {
    cols.iter()
        .find(|c| c.name() == name)
        .unwrap_or_else(|| panic!("no column {name} in {:?}", texts(cols)))
}

fn after(r: &RowData) -> Vec<String> {
    texts(&r.after_columns)
}

fn before(r: &RowData) -> Vec<String> {
    texts(&r.before_columns)
}

/// Column texts `@1=…, @2=…` from a compact list.
fn at_cols(values: &[&str]) -> Vec<String> {
    values
        .iter()
        .enumerate()
        .map(|(i, v)| format!("@{}={v}", i + 1))
        .collect()
}

// ---------------------------------------------------------------------------------------------
// What the README says, per file
// ---------------------------------------------------------------------------------------------

/// The parts of one README file section the tests compare against.
#[derive(Debug, Default)]
struct ReadmeFile {
    total: Option<usize>,
    events: BTreeMap<String, usize>,
    inner: BTreeMap<String, usize>,
    rows: BTreeMap<String, usize>,
    /// The `GTIDs:` list as written.
    gtids: Option<String>,
}

/// `A=1, B=2` → map; a trailing ` rows` on the counts is accepted.
fn parse_counts(list: &str) -> BTreeMap<String, usize> {
    list.split(", ")
        .map(|item| {
            let (k, v) = item
                .split_once('=')
                .unwrap_or_else(|| panic!("README count {item:?}"));
            let v = v.trim_end_matches(" rows").trim();
            (
                k.trim().to_string(),
                v.parse()
                    .unwrap_or_else(|_| panic!("README count {item:?}")),
            )
        })
        .collect()
}

fn readme_files() -> BTreeMap<String, ReadmeFile> {
    let text = std::fs::read_to_string(fixtures_dir().join("README.md")).expect("README.md");
    let mut out: BTreeMap<String, ReadmeFile> = BTreeMap::new();
    let mut current: Option<String> = None;
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("#### `") {
            let name = rest.split('`').next().unwrap_or_default().to_string();
            out.entry(name.clone()).or_default();
            current = Some(name);
            continue;
        }
        if line.starts_with("## ") {
            current = None;
        }
        let Some(f) = current.as_ref().and_then(|c| out.get_mut(c)) else {
            continue;
        };
        if let Some(rest) =
            line.strip_prefix("- events inside TRANSACTION_PAYLOAD (decompressed): ")
        {
            f.inner = parse_counts(rest);
        } else if let Some(rest) = line.strip_prefix("- events (") {
            let (n, list) = rest.split_once("): ").expect("events line");
            f.total = Some(n.parse().expect("event total"));
            f.events = parse_counts(list);
        } else if let Some(rest) = line.strip_prefix("- row images decoded: ") {
            f.rows = parse_counts(rest);
        } else if let Some(rest) = line.strip_prefix("- GTIDs: ") {
            f.gtids = Some(rest.to_string());
        }
    }
    out
}

#[test]
fn readme_describes_every_fixture_file() {
    // (The README's summary line says 82 files; it describes, and the folder holds, 79.)
    let described: Vec<String> = readme_files().into_keys().collect();
    assert_eq!(described, all_fixture_files());
    assert_eq!(described.len(), 79);
}

/// Every file not broken on purpose reads and converts to the end, with exactly the README's
/// top-level event counts per type, the events inside TRANSACTION_PAYLOADs and the row images
/// per rows-event type.
#[test]
fn every_good_file_decodes_to_the_end_as_the_readme_counts() {
    let readme = readme_files();
    let mut checked = 0;
    for rel in all_fixture_files() {
        if SPECIAL_FILES.contains(&rel.as_str()) {
            continue;
        }
        let want = &readme[&rel];
        let d = decode_clean(&rel);
        let total = want
            .total
            .unwrap_or_else(|| panic!("{rel}: README gives no event count"));
        assert_eq!(d.top_level_count(), total, "{rel}: top-level events");
        assert_eq!(d.histogram(true), want.events, "{rel}: events per type");
        assert_eq!(
            d.histogram(false),
            want.inner,
            "{rel}: events inside TRANSACTION_PAYLOAD"
        );
        assert_eq!(d.rows_by_type(), want.rows, "{rel}: row images per type");
        checked += 1;
    }
    assert_eq!(checked, all_fixture_files().len() - SPECIAL_FILES.len());
}

/// The counts the source projects' own tests assert (mysql-binlog-connector-java).
#[test]
fn event_counts_asserted_by_the_source_projects() {
    for (rel, n) in [
        ("mysql-binlog-connector-java/mysql-bin.sakila", 1462),
        ("mysql-binlog-connector-java/mysql-bin.checksum-crc32", 303),
        ("mysql-binlog-connector-java/mysql-bin.checksum-none", 191),
        ("mysql-binlog-connector-java/mysql-bin.compressed", 5),
    ] {
        let d = decode_clean(rel);
        assert_eq!(d.top_level_count(), n, "{rel}");
    }
}

// ---------------------------------------------------------------------------------------------
// MySQL 8.0 / 5.7 rows events (v2)
// ---------------------------------------------------------------------------------------------

#[test]
fn percona_80045_serial_column_inserts_updates_deletes() {
    let rel = "percona-binlog-server/data_80045_position.binlog.000001";
    let d = decode_clean(rel);
    let file = "data_80045_position.binlog.000001";
    for (offset, id) in [
        (567, 1),
        (844, 2),
        (1121, 3),
        (1213, 4),
        (1305, 5),
        (1397, 6),
    ] {
        let (e, rc) = d.rows_at(offset);
        assert_rows_header(e, file, offset, EventType::Insert, "test", "t1", 1);
        assert_eq!(after(&rc.row_datas[0]), [format!("@1={id}")]);
        // BIGINT UNSIGNED (SIGNEDNESS metadata) below 2^63 keeps sqlType BIGINT.
        assert_eq!(rc.row_datas[0].after_columns[0].sql_type(), -5);
        assert!(rc.row_datas[0].after_columns[0].updated());
    }
    // 3, 4, 5, 6 are one transaction: one BEGIN, four rows entries, one END.
    let third = d
        .entries
        .iter()
        .position(|e| offset_of(e) == 1121)
        .expect("rows at 1121");
    let kinds: Vec<(EntryType, u64)> = d.entries[third - 1..]
        .iter()
        .map(|e| (e.entry_type(), offset_of(e)))
        .collect();
    use EntryType::*;
    let xid = d.events.iter().rev().find(|e| e.ty == 16).unwrap().offset;
    assert_eq!(
        kinds[1..],
        [
            (Rowdata, 1121),
            (Rowdata, 1213),
            (Rowdata, 1305),
            (Rowdata, 1397),
            (Transactionend, xid)
        ]
    );
    assert_eq!(kinds[0].0, Transactionbegin);
    assert_eq!(
        d.statements()[0],
        "CREATE TABLE t1(id SERIAL, PRIMARY KEY(id))"
    );

    let rel = "percona-binlog-server/data_80045_position.binlog.000002";
    let d = decode_clean(rel);
    let file = "data_80045_position.binlog.000002";
    let (e, rc) = d.rows_at(368);
    assert_rows_header(e, file, 368, EventType::Update, "test", "t1", 3);
    let pairs: Vec<(Vec<String>, Vec<String>)> =
        rc.row_datas.iter().map(|r| (before(r), after(r))).collect();
    let want: Vec<(Vec<String>, Vec<String>)> = [(1, 101), (2, 102), (3, 103)]
        .iter()
        .map(|(b, a)| (vec![format!("@1={b}")], vec![format!("@1={a}")]))
        .collect();
    assert_eq!(pairs, want);
    assert!(rc.row_datas[0].after_columns[0].updated());
    assert!(!rc.row_datas[0].before_columns[0].updated());
    let (e, rc) = d.rows_at(691);
    assert_rows_header(e, file, 691, EventType::Delete, "test", "t1", 3);
    let deleted: Vec<Vec<String>> = rc.row_datas.iter().map(before).collect();
    assert_eq!(deleted, [["@1=4"], ["@1=5"], ["@1=6"]]);
    assert!(rc.row_datas.iter().all(|r| r.after_columns.is_empty()));
}

#[test]
fn mysql_cdc_rs_integer_table_v2_rows() {
    for (rel, write, update, delete) in [
        (
            "mysql-cdc-rs/8.0-19_30_Table_map_event_Write_rows_log_event.binlog.000018",
            1189,
            None,
            None,
        ),
        (
            "mysql-cdc-rs/8.0-31_update_rows_v2.binlog.000001",
            1046,
            Some(1355),
            None,
        ),
        (
            "mysql-cdc-rs/8.0-32_delete_rows_v2.binlog.000001",
            1046,
            Some(1355),
            Some(1676),
        ),
    ] {
        let d = decode_clean(rel);
        let file = rel.rsplit('/').next().unwrap();
        let inserted = at_cols(&["1", "11", "111", "1111", "11111", "1"]);
        let updated = at_cols(&["1", "22", "222", "1111", "11111", "1"]);
        let (e, rc) = d.rows_at(write);
        assert_rows_header(e, file, write, EventType::Insert, "test", "int_table", 1);
        assert_eq!(after(&rc.row_datas[0]), inserted);
        // TINYINT, SMALLINT, MEDIUMINT, INT, BIGINT, TINYINT(1).
        let sql_types: Vec<i32> = rc.row_datas[0]
            .after_columns
            .iter()
            .map(|c| c.sql_type())
            .collect();
        assert_eq!(sql_types, [-6, 5, 4, 4, -5, -6]);
        if let Some(offset) = update {
            let (e, rc) = d.rows_at(offset);
            assert_rows_header(e, file, offset, EventType::Update, "test", "int_table", 1);
            assert_eq!(before(&rc.row_datas[0]), inserted);
            assert_eq!(after(&rc.row_datas[0]), updated);
            let changed: Vec<bool> = rc.row_datas[0]
                .after_columns
                .iter()
                .map(|c| c.updated())
                .collect();
            assert_eq!(changed, [false, true, true, false, false, false]);
        }
        if let Some(offset) = delete {
            let (e, rc) = d.rows_at(offset);
            assert_rows_header(e, file, offset, EventType::Delete, "test", "int_table", 1);
            assert_eq!(before(&rc.row_datas[0]), updated);
        }
    }
}

#[test]
fn mysql_cdc_rs_57_rows_query_and_write_delete() {
    let rel = "mysql-cdc-rs/5.7-32_delete_rows_v2.log.bin";
    let d = decode_clean(rel);
    let file = "5.7-32_delete_rows_v2.log.bin";
    let (e, rc) = d.rows_at(934);
    assert_rows_header(e, file, 934, EventType::Insert, "default", "boxercrab", 1);
    assert_eq!(after(&rc.row_datas[0]), ["@1=1", "@2=abcde"]);
    let (e, rc) = d.rows_at(1256);
    assert_rows_header(e, file, 1256, EventType::Delete, "default", "boxercrab", 1);
    assert_eq!(before(&rc.row_datas[0]), ["@1=1", "@2=abcde"]);
    // ROWS_QUERY events become QUERY entries (isDdl unset) before their rows.
    let queries: Vec<(String, Option<bool>)> = d
        .entries
        .iter()
        .filter(|e| header(e).event_type() == EventType::Query)
        .filter_map(|e| e.row_change())
        .map(|rc| (rc.sql().to_string(), rc.is_ddl))
        .collect();
    assert_eq!(
        queries,
        [
            (
                "INSERT INTO `boxercrab` (`title`) VALUES ('abcde')".to_string(),
                None
            ),
            ("DELETE FROM `boxercrab`".to_string(), None),
        ]
    );
}

#[test]
fn decimal_date_and_utf8_varchar_columns() {
    let rel = "mysql-cdc-rs/8.0-02_query_bigger.binlog.000733";
    let d = decode_clean(rel);
    let file = "8.0-02_query_bigger.binlog.000733";
    let (e, rc) = d.rows_at(1831);
    assert_rows_header(e, file, 1831, EventType::Insert, "test", "LINEITEM", 5);
    // DECIMAL(12,3), (13,2), (10,1), (12,1): Canal drops an all-zero trailing digit group
    // (`109.0` stays `109.0`, but a zero group prints as a single `0`).
    assert_eq!(
        after(&rc.row_datas[0]),
        at_cols(&[
            "12345678909876",
            "12356789",
            "13789",
            "888878787",
            "99.998",
            "76.77",
            "888.7",
            "109.7",
            "code",
            "Y",
            "1990-08-01",
            "1990-06-01",
            "1990-01-01",
            "test@test.com",
            "test",
            "com",
        ])
    );
    assert_eq!(
        col(&rc.row_datas[2].after_columns, "@16").value(),
        "使用箭头标记 -> 不是 SQL 语句的一部分，它仅仅表示一个新行，如果一条 SQL 语句太长，\
         我们可以通过回车键来创建一个新行来编写 SQL 语句，SQL 语句的命令结束符为分号 ;。"
    );
    assert_eq!(col(&rc.row_datas[4].after_columns, "@8").value(), "109.0");
    let c = col(&rc.row_datas[0].after_columns, "@5");
    assert_eq!((c.sql_type(), c.value()), (3, "99.998"));
    let c = col(&rc.row_datas[0].after_columns, "@11");
    assert_eq!((c.sql_type(), c.value()), (91, "1990-08-01"));

    let (e, rc) = d.rows_at(2838);
    assert_rows_header(e, file, 2838, EventType::Update, "test", "LINEITEM", 1);
    let r = &rc.row_datas[0];
    assert_eq!(col(&r.before_columns, "@5").value(), "99.997");
    assert_eq!(col(&r.after_columns, "@5").value(), "88.880");
    assert_eq!(col(&r.after_columns, "@9").value(), "update L_RETURNFLAG ");
    let updated: Vec<&str> = r
        .after_columns
        .iter()
        .filter(|c| c.updated())
        .map(|c| c.name())
        .collect();
    assert_eq!(updated, ["@5", "@9"]);

    let (e, rc) = d.rows_at(7345);
    assert_rows_header(e, file, 7345, EventType::Insert, "test", "Demo", 5);
    let r = &rc.row_datas[0].after_columns;
    assert!(col(r, "@10").is_null() && col(r, "@16").is_null());
    assert_eq!(col(r, "@10").sql_type(), 12);
    assert_eq!(col(&rc.row_datas[1].after_columns, "@10").value(), "Y");
}

#[test]
fn float_double_decimal_and_text_blob_update() {
    let rel = "mysql-cdc-rs/5.7-31_update_rows_v2.log.bin";
    let d = decode_clean(rel);
    let (e, rc) = d.rows_at(369);
    assert_rows_header(
        e,
        "5.7-31_update_rows_v2.log.bin",
        369,
        EventType::Update,
        "default",
        "boxercrab",
        1,
    );
    let r = &rc.row_datas[0];
    assert_eq!(
        before(r),
        at_cols(&["1", "abc", "abc", "abc", "abc", "abc", "1.0", "2.0", "3.0"])
    );
    assert_eq!(
        after(r),
        at_cols(&["1", "xd", "xd", "xd", "xd", "xd", "4.0", "4.0", "4.0"])
    );
    // FLOAT → REAL (7), DOUBLE → DOUBLE (8), DECIMAL → 3; TEXT without metadata → BLOB (2004).
    let sql_types: Vec<i32> = r.after_columns.iter().map(|c| c.sql_type()).collect();
    assert_eq!(sql_types, [4, 12, 12, 2004, 2004, 2004, 7, 8, 3]);

    let rel = "mysql-binlog-connector-java/mysql-bin.checksum-crc32";
    let d = decode_clean(rel);
    let (e, rc) = d.rows_at(1116);
    assert_rows_header(
        e,
        "mysql-bin.checksum-crc32",
        1116,
        EventType::Insert,
        "simu_file_dev",
        "file",
        1,
    );
    let r = &rc.row_datas[0].after_columns;
    assert_eq!(
        (col(r, "@9").value(), col(r, "@9").sql_type()),
        ("449847.0", 8)
    );
    // TIMESTAMP2 1525426053 in UTC.
    assert_eq!(
        (col(r, "@8").value(), col(r, "@8").sql_type()),
        ("2018-05-04 09:27:33", 93)
    );
    assert_eq!(
        col(r, "@2").value(),
        "Balance(magazine)-04-2.3.001-bigpicture_04_2.jpg"
    );
    let (_, rc) = d.rows_at(1635);
    assert_eq!(
        col(&rc.row_datas[0].after_columns, "@2").value(),
        "陶瓷.jpg"
    );
    let changed: Vec<&str> = rc.row_datas[0]
        .after_columns
        .iter()
        .filter(|c| c.updated())
        .map(|c| c.name())
        .collect();
    assert_eq!(changed, ["@2"]);
    // DECIMAL zero prints `0.0`.
    let (e, rc) = d.rows_at(26270);
    assert_rows_header(
        e,
        "mysql-bin.checksum-crc32",
        26270,
        EventType::Insert,
        "menkor_dev",
        "fund_account",
        1,
    );
    assert_eq!(col(&rc.row_datas[0].after_columns, "@2").value(), "0.0");
    assert_eq!(
        col(&rc.row_datas[0].after_columns, "@9").value(),
        "yan闫庆庆"
    );
}

#[test]
fn temporal_columns_timestamp2_datetime2_date() {
    let d = decode_clean("mysql-binlog-connector-java/mysql-bin.checksum-crc32");
    let (_, rc) = d.rows_at(384);
    assert_eq!(
        after(&rc.row_datas[0]),
        at_cols(&[
            "12300113",
            "test2",
            "/",
            "116103",
            "2018-05-04 08:31:59",
            "906703",
            "0",
            "0",
            "0",
            "2018-05-04 08:31:59",
            "0",
            "12200009",
        ])
    );
    // A NULL TIMESTAMP2 keeps sqlType TIMESTAMP.
    let (_, rc) = d.rows_at(22297);
    let c = col(&rc.row_datas[0].after_columns, "@9");
    assert!(c.is_null() && c.value.is_none());
    assert_eq!(c.sql_type(), 93);

    let d = decode_clean("mysql-binlog-connector-java/mysql-bin.checksum-none");
    let (e, rc) = d.rows_at(1350);
    assert_rows_header(
        e,
        "mysql-bin.checksum-none",
        1350,
        EventType::Insert,
        "account_db",
        "account",
        1,
    );
    assert_eq!(
        after(&rc.row_datas[0]),
        at_cols(&[
            "42b0a771-9345-4b19-b503-d51b5fff30ef",
            "2018-10-30 18:02:09",
            "2018-10-30 18:02:09",
            "086",
            "zh-cn",
            "18888888888",
            "test_nickname",
            "14e1b600b1fd579f47433b88e8d85291",
            "test_user_name",
        ])
    );
    // CHAR → 1, DATETIME2 → 93.
    let r = &rc.row_datas[0].after_columns;
    assert_eq!((col(r, "@1").sql_type(), col(r, "@2").sql_type()), (1, 93));

    let d = decode_clean("zalora_binlog-parser/mysql-bin.02");
    let (e, rc) = d.rows_at(577);
    assert_rows_header(
        e,
        "mysql-bin.02",
        577,
        EventType::Insert,
        "test_db",
        "employees",
        1,
    );
    assert_eq!(
        after(&rc.row_datas[0]),
        ["@1=1", "@2=2017-04-13", "@3=Max", "@4=Mustermann"]
    );

    // TIMESTAMP2 around an ALTER TABLE that adds a column (new table id, four columns).
    let d = decode_clean("zalora_binlog-parser/mysql-bin.06");
    let (_, rc) = d.rows_at(723);
    assert_eq!(
        after(&rc.row_datas[0]),
        ["@1=70", "@2=German", "@3=2017-04-24 05:45:11"]
    );
    let (_, rc) = d.rows_at(1080);
    assert_eq!(
        after(&rc.row_datas[0]),
        [
            "@1=71",
            "@2=German",
            "@3=2017-04-24 05:45:41",
            "@4=some value"
        ]
    );
    // Without a schema the TIMESTAMP zone is the only option that changes the text.
    let d = decode_clean_with(
        "zalora_binlog-parser/mysql-bin.06",
        options(ValueOptions::default()),
    );
    let (_, rc) = d.rows_at(723);
    assert_eq!(
        col(&rc.row_datas[0].after_columns, "@3").value(),
        "2017-04-24 13:45:11",
        "Canal's default zone is UTC+8"
    );
}

#[test]
fn time2_negative_beyond_24_hours() {
    let d = decode_clean("rust_mysql_common/time_issue.000001");
    let (e, rc) = d.rows_at(358);
    assert_rows_header(
        e,
        "time_issue.000001",
        358,
        EventType::Insert,
        "noria",
        "t",
        1,
    );
    let c = &rc.row_datas[0].after_columns[0];
    // 21 days, 3 h, 48 min, 27 s, negative.
    assert_eq!((c.value(), c.sql_type()), ("-507:48:27", 92));
}

// ---------------------------------------------------------------------------------------------
// JSON, partial JSON, TRANSACTION_PAYLOAD
// ---------------------------------------------------------------------------------------------

#[test]
fn json_documents_and_partial_update_rows() {
    let rel = "rust_mysql_common/json.binlog.000001";
    let d = decode_clean(rel);
    let file = "json.binlog.000001";
    let doc = |age: u32, data: &str, name: &str| {
        format!("{{\"age\": {age}, \"data\": \"{data}\", \"name\": \"{name}\"}}")
    };
    let (e, rc) = d.rows_at(1059);
    assert_rows_header(e, file, 1059, EventType::Insert, "mysql", "t", 1);
    assert_eq!(
        after(&rc.row_datas[0]),
        [
            "@1=1".to_string(),
            format!("@2={}", doc(24, "xxxxxxxxxx", "Joe")),
            "@3=Joe".to_string(),
            "@4=24".to_string(),
        ]
    );
    assert_eq!(col(&rc.row_datas[0].after_columns, "@2").sql_type(), 12);
    let (e, rc) = d.rows_at(2111);
    assert_rows_header(e, file, 2111, EventType::Insert, "mysql", "t", 3);
    assert_eq!(
        col(&rc.row_datas[2].after_columns, "@2").value(),
        doc(40, "zzzzzzzzzz", "Pete")
    );

    // Full-image UPDATE of all six rows: age + 1.
    let (e, rc) = d.rows_at(2612);
    assert_rows_header(e, file, 2612, EventType::Update, "mysql", "t", 6);
    let r = &rc.row_datas[1];
    assert_eq!(
        col(&r.before_columns, "@2").value(),
        doc(32, "yyyyyyyyyy", "Sue")
    );
    assert_eq!(
        col(&r.after_columns, "@2").value(),
        doc(33, "yyyyyyyyyy", "Sue")
    );

    // PARTIAL_UPDATE_ROWS: a MINIMAL before image (the primary key only) and an after image
    // whose JSON column is a diff, printed as the function call that applies it.
    let (e, rc) = d.rows_at(3750);
    assert_rows_header(e, file, 3750, EventType::Update, "mysql", "t", 6);
    let expected = [
        (1, 26, "Joe"),
        (2, 34, "Sue"),
        (3, 42, "Pete"),
        (4, 26, "Joe"),
        (5, 34, "Sue"),
        (6, 42, "Pete"),
    ];
    for (r, (id, age, name)) in rc.row_datas.iter().zip(expected) {
        assert_eq!(before(r), [format!("@1={id}")]);
        assert_eq!(
            after(r),
            [
                format!("@2=JSON_REPLACE(@2, '$.age', {age})"),
                format!("@3={name}"),
                format!("@4={age}"),
            ]
        );
        // Columns missing from the before image count as updated.
        assert!(r.after_columns.iter().all(|c| c.updated()));
        assert_eq!(r.after_columns[0].index(), 1);
    }
}

#[test]
fn json_opaque_scalars_print_like_canal() {
    let rel = "rust_mysql_common/json-opaque.binlog";
    let d = decode_clean(rel);
    // COLUMN_NAME metadata names the column `a`. Opaque DATE/DATETIME get six fraction
    // digits, DECIMAL prints as a number (`9.00` → `9.0`), other opaque types as their bytes.
    let want = [
        (736, r#"{"a": "U"}"#),
        (846, r#"{"b": "2012-03-18 00:00:00.000000"}"#),
        (963, r#"{"c": "2012-03-18 11:30:45.000000"}"#),
        (1080, r#"{"c": "87:31:46.654321"}"#),
        (1197, r#"{"d": 123.456}"#),
        (1312, r#"{"e": 9.0}"#),
        (1428, r#"{"e": [0, 1, true, false]}"#),
        (1551, r#"{"e": null}"#),
    ];
    for (offset, json) in want {
        let (e, rc) = d.rows_at(offset);
        assert_rows_header(
            e,
            "json-opaque.binlog",
            offset,
            EventType::Insert,
            "foo",
            "test",
            1,
        );
        assert_eq!(after(&rc.row_datas[0]), [format!("a={json}")], "@{offset}");
    }
}

#[test]
fn transaction_payload_events_are_decompressed_and_converted() {
    // rust_mysql_common: one zstd payload with QUERY BEGIN, TABLE_MAP, WRITE_ROWS_V2, XID.
    let rel = "rust_mysql_common/transaction_compression.000001";
    let d = decode_clean(rel);
    let payload = d.events.iter().find(|e| e.ty == 40).expect("payload event");
    let inner: Vec<String> = d
        .events
        .iter()
        .filter(|e| !e.top_level)
        .map(|e| type_name(e.ty))
        .collect();
    assert_eq!(inner, ["QUERY", "TABLE_MAP", "WRITE_ROWS_V2", "XID"]);
    // Entries from inside the payload carry the payload event's offset.
    let kinds: Vec<EntryType> = d
        .entries_at(payload.offset)
        .iter()
        .map(|e| e.entry_type())
        .collect();
    assert_eq!(
        kinds,
        [
            EntryType::Transactionbegin,
            EntryType::Rowdata,
            EntryType::Transactionend
        ]
    );
    let (e, rc) = d.rows_at(payload.offset);
    assert_rows_header(
        e,
        "transaction_compression.000001",
        payload.offset,
        EventType::Insert,
        "test",
        "tb1",
        1,
    );
    assert_eq!(after(&rc.row_datas[0]), ["@1=1"]);

    // mysql-binlog-connector-java: a compressed UPDATE of an 11-column row.
    let rel = "mysql-binlog-connector-java/mysql-bin.compressed";
    let d = decode_clean(rel);
    let payload = d.events.iter().find(|e| e.ty == 40).expect("payload event");
    let inner: Vec<String> = d
        .events
        .iter()
        .filter(|e| !e.top_level)
        .map(|e| type_name(e.ty))
        .collect();
    assert_eq!(inner, ["QUERY", "TABLE_MAP", "UPDATE_ROWS_V2", "XID"]);
    let (e, rc) = d.rows_at(payload.offset);
    assert_rows_header(
        e,
        "mysql-bin.compressed",
        payload.offset,
        EventType::Update,
        "demo",
        "movies",
        1,
    );
    let r = &rc.row_datas[0];
    assert_eq!(
        col(&r.before_columns, "@2").value(),
        "Once Upon a Time in the West"
    );
    assert_eq!(col(&r.before_columns, "@3").value(), "1968");
    assert_eq!(col(&r.before_columns, "@5").value(), "Western");
    assert_eq!(col(&r.after_columns, "@5").value(), "Western|Action");
    assert_eq!(col(&r.after_columns, "@11").value(), "Paramount Pictures");
    let changed: Vec<&str> = r
        .after_columns
        .iter()
        .filter(|c| c.updated())
        .map(|c| c.name())
        .collect();
    assert_eq!(changed, ["@5"]);
}

// ---------------------------------------------------------------------------------------------
// binlog_row_metadata=FULL: names, labels, signedness, visibility, charsets
// ---------------------------------------------------------------------------------------------

#[test]
fn full_metadata_names_columns_and_gives_enum_set_labels() {
    let rel = "rust_mysql_common/mysql-enum-string-set.000001";
    let digits100 = "0123456789".repeat(10);
    // f2: the "300-char digit string" of rust_mysql_common's test: two runs of 129 digits,
    // then 40 (298 characters, as the README's decoded row shows it).
    let run = "0123456789".repeat(12) + "012345678";
    let long = format!("{run}{run}{}", "0123456789".repeat(4));
    assert_eq!(long.len(), 298);

    // Canal's default: ENUM as its index, SET as its bitmask.
    let d = decode_clean(rel);
    let (e, rc) = d.rows_at(1077);
    assert_rows_header(
        e,
        "mysql-enum-string-set.000001",
        1077,
        EventType::Insert,
        "mysql",
        "t",
        1,
    );
    assert_eq!(
        after(&rc.row_datas[0]),
        [
            format!("f1={digits100}"),
            format!("f2={long}"),
            "f3=1".to_string(),
            "f4=5".to_string(),
            "f5=0123456789".to_string(),
        ]
    );
    let sql_types: Vec<i32> = rc.row_datas[0]
        .after_columns
        .iter()
        .map(|c| c.sql_type())
        .collect();
    assert_eq!(sql_types, [1, 12, 4, -7, 2004]);
    let (_, rc) = d.rows_at(1855);
    let r = &rc.row_datas[0];
    assert_eq!(after(r)[..4], ["f1=field1", "f2=field_2", "f3=2", "f4=10"]);
    assert_eq!(col(&r.after_columns, "f5").value(), long);

    // With the labels the FULL metadata carries.
    let d = decode_clean_with(rel, label_options());
    let (_, rc) = d.rows_at(1077);
    let r = &rc.row_datas[0].after_columns;
    let got: Vec<(&str, &str, i32, &str)> = r
        .iter()
        .map(|c| {
            (
                c.name(),
                if c.name() == "f1" || c.name() == "f2" {
                    ""
                } else {
                    c.value()
                },
                c.sql_type(),
                c.mysql_type(),
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            ("f1", "", 1, "char(128)"),
            ("f2", "", 12, "varchar(300)"),
            ("f3", "var1", 12, "enum('var1','variant2','foo')"),
            ("f4", "one,three", 12, "set('one','two','three','four')"),
            ("f5", "0123456789", 2005, "text"),
        ]
    );
    let (_, rc) = d.rows_at(1855);
    let r = &rc.row_datas[0];
    assert_eq!(col(&r.before_columns, "f3").value(), "var1");
    assert_eq!(col(&r.after_columns, "f3").value(), "variant2");
    assert_eq!(col(&r.after_columns, "f4").value(), "two,four");
    let (e, rc) = d.rows_at(2945);
    assert_rows_header(
        e,
        "mysql-enum-string-set.000001",
        2945,
        EventType::Delete,
        "mysql",
        "t",
        1,
    );
    assert_eq!(
        before(&rc.row_datas[0])[..4],
        ["f1=field1", "f2=field_2", "f3=variant2", "f4=two,four"]
    );
}

#[test]
fn invisible_columns_and_signedness_from_full_metadata() {
    let rel = "rust_mysql_common/binlog-invisible-columns.000001";
    let d = decode_clean_with(rel, label_options());
    let file = "binlog-invisible-columns.000001";
    // f1, f2 and f6 are INVISIBLE; the binlog still carries them, named.
    let (e, rc) = d.rows_at(1027);
    assert_rows_header(e, file, 1027, EventType::Insert, "mysql", "t1", 1);
    assert_eq!(
        after(&rc.row_datas[0]),
        ["f1=1", "f2=2", "f3=-3", "f4=4", "f5=\u{5}", "f6=6000000000"]
    );
    let types: Vec<(&str, i32)> = rc.row_datas[0]
        .after_columns
        .iter()
        .map(|c| (c.mysql_type(), c.sql_type()))
        .collect();
    assert_eq!(
        types,
        [
            ("int unsigned", 4),
            ("int unsigned", 4),
            ("int", 4),
            ("text", 2005),
            ("blob", 2004),
            ("bigint unsigned", -5),
        ]
    );
    let (_, rc) = d.rows_at(1360);
    assert_eq!(
        after(&rc.row_datas[0]),
        ["f1=NULL", "f2=NULL", "f3=-33", "f4=44", "f5=U", "f6=NULL"]
    );
    let (e, rc) = d.rows_at(1687);
    assert_rows_header(e, file, 1687, EventType::Update, "mysql", "t1", 1);
    let r = &rc.row_datas[0];
    assert_eq!(
        before(r),
        ["f1=NULL", "f2=NULL", "f3=-33", "f4=44", "f5=U", "f6=NULL"]
    );
    assert_eq!(
        after(r),
        ["f1=111", "f2=222", "f3=-333", "f4=444", "f5=U", "f6=NULL"]
    );
    let changed: Vec<&str> = r
        .after_columns
        .iter()
        .filter(|c| c.updated())
        .map(|c| c.name())
        .collect();
    assert_eq!(changed, ["f1", "f2", "f3", "f4"]);
}

#[test]
fn bit_columns() {
    let rel = "rust_mysql_common/mysql_type_bit.000001";
    let d = decode_clean_with(rel, label_options());
    let (e, rc) = d.rows_at(927);
    assert_rows_header(
        e,
        "mysql_type_bit.000001",
        927,
        EventType::Insert,
        "mysql",
        "foo",
        1,
    );
    // b'100' in BIT(3) and b'100000' in BIT(8), as unsigned decimals, sqlType BIT.
    let got: Vec<(String, i32, &str)> = rc.row_datas[0]
        .after_columns
        .iter()
        .map(|c| {
            (
                format!("{}={}", c.name(), c.value()),
                c.sql_type(),
                c.mysql_type(),
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            ("a=4".to_string(), -7, "bit(3)"),
            ("b=foo".to_string(), 2005, "text"),
            ("c=32".to_string(), -7, "bit(8)"),
        ]
    );
}

#[test]
fn vector_columns_and_their_charset_metadata() {
    let rel = "rust_mysql_common/vector.binlog";
    let d = decode_clean_with(rel, label_options());
    let floats = |c: &Column| -> Vec<f32> {
        let bytes: Vec<u8> = c.value().chars().map(|ch| ch as u32 as u8).collect();
        bytes
            .chunks(4)
            .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
            .collect()
    };
    let (e, rc) = d.rows_at(1085);
    assert_rows_header(e, "vector.binlog", 1085, EventType::Insert, "dtb", "foo", 2);
    let r0 = &rc.row_datas[0].after_columns;
    // SERIAL: BIGINT UNSIGNED, the SIMPLE_PRIMARY_KEY.
    assert_eq!(col(r0, "id").value(), "1");
    assert!(col(r0, "id").is_key());
    assert_eq!(col(r0, "id").mysql_type(), "bigint unsigned");
    // VECTOR has no Canal mapping: its bytes as Latin-1, like any binary value.
    assert_eq!(floats(col(r0, "vector_column")), [1.1, 2.2, 3.3]);
    assert_eq!(col(r0, "vector_column").sql_type(), 2004);
    assert_eq!(
        floats(col(&rc.row_datas[1].after_columns, "vector_column")),
        [1.0, -1.0, 0.0]
    );

    let (e, rc) = d.rows_at(1279);
    assert_rows_header(e, "vector.binlog", 1279, EventType::Insert, "dtb", "bar", 2);
    let r0 = &rc.row_datas[0].after_columns;
    assert_eq!(floats(col(r0, "vector_column")), [1.1, 2.2]);
    assert_eq!(floats(col(r0, "vector_column2")), [1.1, 2.2, 3.3, 4.4]);
    assert!(col(r0, "foo").is_null());
    // `foo TEXT` is the second column in the charset metadata (VECTOR columns count there), so
    // it is utf8mb4 text, not binary.
    let foo = col(&rc.row_datas[1].after_columns, "foo");
    assert_eq!(
        (foo.value(), foo.mysql_type(), foo.sql_type()),
        ("bar", "text", 2005)
    );
    assert_eq!(
        floats(col(&rc.row_datas[1].after_columns, "vector_column2")),
        [42.0, 43.0, 44.0, 45.0]
    );

    let (e, rc) = d.rows_at(3146);
    assert_rows_header(e, "vector.binlog", 3146, EventType::Delete, "dtb", "bar", 1);
    assert_eq!(col(&rc.row_datas[0].before_columns, "id").value(), "2");
    let (_, rc) = d.rows_at(3336);
    let r0 = &rc.row_datas[0].after_columns;
    assert_eq!(floats(col(r0, "vector_column")), [2.01, -2.01]);
    assert_eq!(floats(col(r0, "vector_column2")), [42.1, 43.2, 44.3, 45.4]);
}

// ---------------------------------------------------------------------------------------------
// Partial row images
// ---------------------------------------------------------------------------------------------

#[test]
fn minimal_and_partial_row_images_skip_absent_columns() {
    let d = decode_clean_with(
        "rust_mysql_common/minimal_row_metadata.000001",
        label_options(),
    );
    let (e, rc) = d.rows_at(374);
    assert_rows_header(
        e,
        "minimal_row_metadata.000001",
        374,
        EventType::Insert,
        "noria",
        "t1",
        1,
    );
    let r = &rc.row_datas[0].after_columns;
    assert_eq!(texts(r), ["@1=1", "@3=a", "@5=3230202323"]);
    let idx: Vec<i32> = r.iter().map(|c| c.index()).collect();
    assert_eq!(idx, [0, 2, 4]);
    // INT UNSIGNED above 2^31: widened, sqlType BIGINT.
    assert_eq!(
        (col(r, "@5").sql_type(), col(r, "@5").mysql_type()),
        (-5, "int unsigned")
    );

    let d = decode_clean("rust_mysql_common/update-partial-row.binlog");
    let (e, rc) = d.rows_at(415);
    assert_rows_header(
        e,
        "update-partial-row.binlog",
        415,
        EventType::Update,
        "test",
        "ba",
        1,
    );
    assert_eq!(before(&rc.row_datas[0]), ["@1=4", "@3=4"]);
    assert_eq!(after(&rc.row_datas[0]), ["@1=4", "@3=40"]);
    let (e, rc) = d.rows_at(463);
    assert_rows_header(
        e,
        "update-partial-row.binlog",
        463,
        EventType::Delete,
        "test",
        "ba",
        1,
    );
    assert_eq!(before(&rc.row_datas[0]), ["@1=2"]);
    let (e, rc) = d.rows_at(275);
    assert_rows_header(
        e,
        "update-partial-row.binlog",
        275,
        EventType::Insert,
        "mysql",
        "ndb_apply_status",
        1,
    );
    assert_eq!(
        after(&rc.row_datas[0]),
        at_cols(&["3", "25769803786", "", "0", "0"])
    );

    let d = decode_clean("rust_mysql_common/write-partial-row.binlog");
    let (_, rc) = d.rows_at(415);
    assert_eq!(after(&rc.row_datas[0]), ["@1=4", "@3=40"]);
    let (_, rc) = d.rows_at(334);
    let rows: Vec<Vec<String>> = rc.row_datas.iter().map(after).collect();
    assert_eq!(
        rows,
        [
            at_cols(&["3", "3", "3"]),
            at_cols(&["1", "1", "1"]),
            at_cols(&["2", "2", "2"]),
            at_cols(&["4", "4", "4"]),
        ]
    );

    // A hidden generated column (functional index) is left out of the image.
    let d = decode_clean("rust_mysql_common/rpl_unfiltered_hidden_gcol.000001");
    let (e, rc) = d.rows_at(979);
    assert_rows_header(
        e,
        "rpl_unfiltered_hidden_gcol.000001",
        979,
        EventType::Insert,
        "test",
        "t",
        1,
    );
    assert_eq!(after(&rc.row_datas[0]), ["@1=1", "@3=1"]);
}

#[test]
fn v1_rows_events_of_51_and_56_servers() {
    for (rel, write, update, delete) in [
        ("rust_mysql_common/ver_5_1_23.001", 469, 560, None),
        (
            "rust_mysql_common/ver_trunk_row_v2.001",
            569,
            799,
            Some(1048),
        ),
    ] {
        let d = decode_clean(rel);
        let file = rel.rsplit('/').next().unwrap();
        let (e, rc) = d.rows_at(write);
        assert_rows_header(e, file, write, EventType::Insert, "test", "t1", 2);
        let rows: Vec<Vec<String>> = rc.row_datas.iter().map(after).collect();
        assert_eq!(rows, [["@1=0", "@2=one"], ["@1=1", "@2=two"]]);
        // CHAR(50) without padding, sqlType CHAR.
        assert_eq!(rc.row_datas[0].after_columns[1].sql_type(), 1);
        let (e, rc) = d.rows_at(update);
        assert_rows_header(e, file, update, EventType::Update, "test", "t1", 2);
        let pairs: Vec<(Vec<String>, Vec<String>)> =
            rc.row_datas.iter().map(|r| (before(r), after(r))).collect();
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        assert_eq!(
            pairs,
            [
                (s(&["@1=0", "@2=one"]), s(&["@1=1", "@2=one"])),
                (s(&["@1=1", "@2=two"]), s(&["@1=2", "@2=two"])),
            ]
        );
        if let Some(offset) = delete {
            let (_, rc) = d.rows_at(offset);
            assert_eq!(before(&rc.row_datas[0]), ["@1=2", "@2=two"]);
        }
    }
}

#[test]
fn sakila_v1_rows_with_old_temporal_enum_set_year_decimal() {
    let rel = "mysql-binlog-connector-java/mysql-bin.sakila";
    let d = decode_clean(rel);
    let file = "mysql-bin.sakila";
    // Row images per table, as the Sakila data set has them.
    let mut per_table: BTreeMap<String, usize> = BTreeMap::new();
    for e in &d.entries {
        if let Some(rc) = e.row_change().filter(|rc| !rc.row_datas.is_empty()) {
            *per_table.entry(e.table().1.to_string()).or_default() += rc.row_datas.len();
        }
    }
    let want: BTreeMap<String, usize> = [
        ("actor", 200),
        ("address", 603),
        ("category", 16),
        ("city", 600),
        ("country", 109),
        ("customer", 599),
        ("film", 1000),
        ("film_actor", 5462),
        ("film_category", 1000),
        ("film_text", 1000),
        ("inventory", 4581),
        ("language", 6),
        ("payment", 16049),
        ("rental", 16044),
        ("staff", 2),
        ("store", 2),
    ]
    .into_iter()
    .map(|(t, n)| (t.to_string(), n))
    .collect();
    assert_eq!(per_table, want);
    assert_eq!(per_table.values().sum::<usize>(), 47273);

    // Old-format TIMESTAMP, in UTC.
    let (e, rc) = d.rows_at(21654);
    assert_rows_header(e, file, 21654, EventType::Insert, "sakila", "actor", 49);
    assert_eq!(
        after(&rc.row_datas[0]),
        [
            "@1=1",
            "@2=PENELOPE",
            "@3=GUINESS",
            "@4=2006-02-15 03:34:33"
        ]
    );
    assert_eq!(
        after(&rc.row_datas[5]),
        ["@1=6", "@2=BETTE", "@3=NICHOLSON", "@4=2006-02-15 03:34:33"]
    );

    // film 1: YEAR 2006, rating ENUM 'PG' (index 2), special_features SET
    // 'Deleted Scenes,Behind the Scenes' (bits 2 and 3 = 12), DECIMAL(4,2) and (5,2).
    let film = d
        .entries
        .iter()
        .filter(|e| e.table() == ("sakila", "film"))
        .find_map(|e| e.row_change().filter(|rc| !rc.row_datas.is_empty()))
        .expect("film rows");
    let r = &film.row_datas[0].after_columns;
    assert_eq!(col(r, "@2").value(), "ACADEMY DINOSAUR");
    assert_eq!(
        (col(r, "@4").value(), col(r, "@4").sql_type()),
        ("2006", 12)
    );
    assert!(col(r, "@6").is_null());
    assert_eq!((col(r, "@8").value(), col(r, "@8").sql_type()), ("0.99", 3));
    assert_eq!(col(r, "@10").value(), "20.99");
    assert_eq!((col(r, "@11").value(), col(r, "@11").sql_type()), ("2", 4));
    assert_eq!(
        (col(r, "@12").value(), col(r, "@12").sql_type()),
        ("12", -7)
    );
    assert_eq!(col(r, "@13").value(), "2006-02-15 04:03:42");

    // payment 1: DECIMAL(5,2) and old-format DATETIME (not zone-converted).
    let payment = d
        .entries
        .iter()
        .filter(|e| e.table() == ("sakila", "payment"))
        .find_map(|e| e.row_change().filter(|rc| !rc.row_datas.is_empty()))
        .expect("payment rows");
    assert_eq!(
        after(&payment.row_datas[0]),
        at_cols(&[
            "1",
            "1",
            "1",
            "76",
            "2.99",
            "2005-05-25 11:30:37",
            "2006-02-15 21:12:30"
        ])
    );
    assert_eq!(payment.row_datas[0].after_columns[5].sql_type(), 93);

    // staff 1: a PNG picture in a BLOB, as Latin-1 text of its bytes.
    let staff = d
        .entries
        .iter()
        .filter(|e| e.table() == ("sakila", "staff"))
        .find_map(|e| e.row_change().filter(|rc| !rc.row_datas.is_empty()))
        .expect("staff rows");
    let pic = col(&staff.row_datas[0].after_columns, "@5");
    assert!(pic.value().starts_with("\u{89}PNG\r\n\u{1a}\n"));
    assert_eq!(pic.sql_type(), 2004);
}

// ---------------------------------------------------------------------------------------------
// MariaDB and GTIDs
// ---------------------------------------------------------------------------------------------

#[test]
fn mariadb_gtid_begins_transactions_and_annotate_rows_is_a_query() {
    let rel = "rust_mysql_common/mariadb-bin.000001";
    let d = decode_clean_with(rel, label_options());
    let file = "mariadb-bin.000001";
    let gtids: Vec<u64> = d
        .events
        .iter()
        .filter(|e| e.ty == 162)
        .map(|e| e.offset)
        .collect();
    assert_eq!(gtids.len(), 2);
    let annotate: Vec<u64> = d
        .events
        .iter()
        .filter(|e| e.ty == 160)
        .map(|e| e.offset)
        .collect();
    for (gtid, annotate, rows, id, ts) in [
        (gtids[0], annotate[0], 612, "62", "2022-04-20 22:18:04"),
        (gtids[1], annotate[1], 984, "63", "2022-04-20 22:19:55"),
    ] {
        // The GTID event is where the transaction begins.
        let begin = d.entries_at(gtid);
        assert_eq!(begin.len(), 1);
        assert_eq!(begin[0].entry_type(), EntryType::Transactionbegin);
        assert_eq!(header(begin[0]).logfile_name(), file);
        // ANNOTATE_ROWS: a QUERY entry with the statement, table name "".
        let q = d.entries_at(annotate);
        assert_eq!(q.len(), 1);
        assert_eq!(header(q[0]).event_type(), EventType::Query);
        assert_eq!(q[0].table(), ("", ""));
        let rc = q[0].row_change().unwrap();
        assert_eq!(
            rc.sql(),
            r#"insert into outbox (topic, event_type, event) values ('foo', 'JSON', '{"foo":1}')"#
        );
        assert_eq!(rc.is_ddl, None);
        let (e, rc) = d.rows_at(rows);
        assert_rows_header(e, file, rows, EventType::Insert, "toddy_test", "outbox", 1);
        let r = &rc.row_datas[0].after_columns;
        assert_eq!(
            texts(r),
            [
                format!("id={id}"),
                "topic=foo".to_string(),
                "event_type=JSON".to_string(),
                r#"event={"foo":1}"#.to_string(),
                format!("created={ts}"),
            ]
        );
        // Only `id` is in SIMPLE_PRIMARY_KEY.
        let keys: Vec<&str> = r.iter().filter(|c| c.is_key()).map(|c| c.name()).collect();
        assert_eq!(keys, ["id"]);
        assert_eq!(
            col(r, "event_type").mysql_type(),
            "enum('BLOB','JSON','PROTOBUF')"
        );
        assert_eq!(col(r, "created").sql_type(), 93);
    }
    let order: Vec<EntryType> = d.entries.iter().map(|e| e.entry_type()).collect();
    use EntryType::*;
    assert_eq!(
        order,
        [
            Transactionbegin,
            Rowdata,
            Rowdata,
            Transactionend,
            Transactionbegin,
            Rowdata,
            Rowdata,
            Transactionend
        ]
    );
    // Canal's default: the ENUM index.
    let d = decode_clean(rel);
    let (_, rc) = d.rows_at(612);
    assert_eq!(
        col(&rc.row_datas[0].after_columns, "event_type").value(),
        "2"
    );

    // MariaDB 10.0, no checksums: a DDL GTID (standalone, no BEGIN), then one transaction.
    let rel = "zalora_binlog-parser/mysql-bin.07";
    let d = decode_clean(rel);
    let kinds: Vec<(u64, EntryType)> = d
        .entries
        .iter()
        .map(|e| (offset_of(e), e.entry_type()))
        .collect();
    let gtid2 = d
        .events
        .iter()
        .filter(|e| e.ty == 162)
        .nth(1)
        .unwrap()
        .offset;
    let xid = d.events.iter().find(|e| e.ty == 16).unwrap().offset;
    assert_eq!(
        kinds,
        [
            (364, Rowdata),
            (gtid2, Transactionbegin),
            (723, Rowdata),
            (819, Rowdata),
            (xid, Transactionend)
        ]
    );
    assert_eq!(header(&d.entries[0]).event_type(), EventType::Create);
    for (offset, row) in [(723, ["@1=ABC", "@2=DEF"]), (819, ["@1=RST", "@2=XYZ"])] {
        let (e, rc) = d.rows_at(offset);
        assert_rows_header(
            e,
            "mysql-bin.07",
            offset,
            EventType::Insert,
            "test_db",
            "departments",
            1,
        );
        assert_eq!(after(&rc.row_datas[0]), row);
    }
}

/// The executed set after the GTIDs the README lists (`u:1, u:2` or `u:6, u:7 … u:22 (17
/// total)`), or MariaDB's last GTID per domain (`0-1-1, 0-1-2`).
fn expected_gtid_state(list: &str) -> String {
    if !list.contains(':') {
        let mut last = MariaGtidList::default();
        for g in list.split(", ") {
            last.update(g.parse().unwrap_or_else(|_| panic!("MariaDB GTID {g:?}")));
        }
        return last.to_string();
    }
    let split = |g: &str| {
        let (uuid, gno) = g.trim().rsplit_once(':').expect("uuid:gno");
        (uuid.to_string(), gno.parse::<u64>().expect("gno"))
    };
    let mut set = MysqlGtidSet::default();
    match list.split_once(" … ") {
        None => {
            for g in list.split(", ") {
                let (uuid, gno) = split(g);
                set.add(&uuid, gno);
            }
        }
        Some((head, tail)) => {
            // `first, …, u:a … u:b (N total)`: a contiguous run.
            let (last, total) = tail.split_once(" (").expect("(N total)");
            let total: u64 = total.trim_end_matches(" total)").parse().expect("total");
            let (uuid, first) = split(head.split(", ").next().unwrap());
            let (last_uuid, last) = split(last);
            assert_eq!(uuid, last_uuid);
            assert_eq!(last - first + 1, total, "{list}");
            for gno in first..=last {
                set.add(&uuid, gno);
            }
        }
    }
    set.to_string()
}

/// In GTID mode the converter's executed set ends as exactly the GTIDs the README lists (MySQL,
/// from an empty set) or the last GTID per domain (MariaDB).
#[test]
fn gtid_mode_collects_every_gtid_the_readme_lists() {
    let mut checked = 0;
    for (rel, f) in readme_files() {
        let Some(list) = f.gtids.as_deref().filter(|l| *l != "tagged") else {
            continue;
        };
        let start = if list.contains(':') {
            GtidState::Mysql(MysqlGtidSet::default())
        } else {
            GtidState::Maria(MariaGtidList::default())
        };
        let mut conv = Converter::new(gtid_options(), Some(start));
        let d = decode_path(&fixture(&rel), &mut conv);
        assert_clean(&rel, &d);
        assert_eq!(
            conv.gtid_state().map(|g| g.to_string()),
            Some(expected_gtid_state(list)),
            "{rel}"
        );
        checked += 1;
    }
    assert_eq!(checked, 25);
}

fn gtid_options() -> ConvertOptions {
    ConvertOptions {
        gtid_mode: true,
        ..options(value_options())
    }
}

fn prop<'a>(e: &'a ParsedEntry, key: &str) -> Option<&'a str> {
    header(e)
        .props
        .iter()
        .find(|p| p.key() == key)
        .map(|p| p.value())
}

#[test]
fn gtid_mode_tracks_the_executed_set() {
    let rel = "percona-binlog-server/data_80045_gtid.binlog.000002";
    let uuid = "396e294c-1ca4-11f1-9ae7-00155da79c6b";
    let start = MysqlGtidSet::parse(&format!("{uuid}:1-4")).unwrap();
    let mut conv = Converter::new(gtid_options(), Some(GtidState::Mysql(start)));
    let d = decode_path(&fixture(rel), &mut conv);
    assert_clean(rel, &d);
    let (update, _) = d.rows_at(408);
    assert_eq!(prop(update, "curtGtid"), Some(&*format!("{uuid}:5")));
    assert_eq!(header(update).gtid(), format!("{uuid}:1-5"));
    let (delete, _) = d.rows_at(731);
    assert_eq!(prop(delete, "curtGtid"), Some(&*format!("{uuid}:6")));
    assert_eq!(header(delete).gtid(), format!("{uuid}:1-6"));
    assert_eq!(
        conv.gtid_state().map(|g| g.to_string()),
        Some(format!("{uuid}:1-6"))
    );
}

#[test]
fn tagged_gtid_transaction() {
    let rel = "rust_mysql_common/binlog_transaction_with_GTID_TAG.000001";
    let uuid = "55778904-0299-11f1-b1b8-4ef0c4956feb";
    // The GTID_TAGGED_LOG event itself: tag `mytag`, gno 3.
    let mut reader = BinlogFileReader::open(&fixture(rel)).unwrap();
    let mut tagged = None;
    while let Some(ev) = reader.next_event().unwrap() {
        if ev.event.header().event_type_raw() == 42 {
            match ev.event.read_data().unwrap() {
                Some(EventData::GtidEvent(g)) => {
                    tagged = Some((
                        canal_server::position::gtid::uuid_text(&g.sid()),
                        g.tag().map(|t| t.to_string()),
                        g.gno(),
                    ))
                }
                other => panic!("GTID_TAGGED_LOG decoded as {other:?}"),
            }
        }
    }
    assert_eq!(
        tagged,
        Some((uuid.to_string(), Some("mytag".to_string()), 3))
    );

    // Converted in GTID mode: curtGtid names the tag; the untagged set is not touched (it has
    // no transaction uuid:3 from this event).
    let start = MysqlGtidSet::parse(&format!("{uuid}:1-2")).unwrap();
    let mut conv = Converter::new(gtid_options(), Some(GtidState::Mysql(start)));
    let d = decode_path(&fixture(rel), &mut conv);
    assert_clean(rel, &d);
    let (e, rc) = d.rows_at(461);
    assert_rows_header(
        e,
        "binlog_transaction_with_GTID_TAG.000001",
        461,
        EventType::Insert,
        "test",
        "orders",
        1,
    );
    // DECIMAL(…,2) 250.00 prints `250.0` (Canal's scale quirk).
    assert_eq!(after(&rc.row_datas[0]), ["@1=3", "@2=100", "@3=250.0"]);
    assert_eq!(prop(e, "curtGtid"), Some(&*format!("{uuid}:mytag:3")));
    assert_eq!(header(e).gtid(), format!("{uuid}:1-2"));
}

// ---------------------------------------------------------------------------------------------
// Statement-based events
// ---------------------------------------------------------------------------------------------

#[test]
fn statement_helper_events_become_set_statements() {
    let d = decode_clean("mysql-cdc-rs/5.7-14_user_var.log.bin");
    let stmts = d.statements();
    let sets: Vec<&str> = stmts
        .iter()
        .map(String::as_str)
        .filter(|s| s.starts_with("SET "))
        .collect();
    // INTVAR INSERT_ID, then a string, an integer and a DECIMAL(3,2) user variable.
    assert_eq!(
        sets,
        [
            "SET INSERT_ID = 1",
            "SET @val_s := 'test blog'",
            "SET @val_i := 100",
            "SET @val_d := 1.0",
        ]
    );
    assert_eq!(
        stmts.last().unwrap(),
        "INSERT INTO `boxercrab` (`str`, `int`, `dec`) VALUES (@val_s, @val_i, @val_d)"
    );

    let d = decode_clean("mysql-cdc-rs/5.7-13_rand.log.bin");
    assert!(d
        .statements()
        .iter()
        .any(|s| s == "SET SESSION rand_seed1 = 694882935 , rand_seed2 = 292094996"));

    // A NULL user variable.
    let d = decode_clean("rust_mysql_common/bug11747887-bin.000003");
    let stmts = d.statements();
    let i = stmts
        .iter()
        .position(|s| s == "SET @2 := NULL")
        .expect("SET");
    assert_eq!(stmts[i + 1], "insert into t10123456789 values(@2)");
    // Statement DML: eventType INSERT, isDdl false, table from the statement.
    let insert = d
        .entries
        .iter()
        .find(|e| e.row_change().is_some_and(|rc| rc.sql() == stmts[i + 1]))
        .unwrap();
    assert_eq!(header(insert).event_type(), EventType::Insert);
    assert_eq!(insert.table(), ("test", "t10123456789"));
    assert_eq!(insert.row_change().unwrap().is_ddl, Some(false));
}

// ---------------------------------------------------------------------------------------------
// Files that must fail or need special handling
// ---------------------------------------------------------------------------------------------

#[test]
fn truncated_files_give_typed_errors_at_the_event_start() {
    let d = decode("rust_mysql_common/binlog_truncated_event.000001");
    assert!(d.events.is_empty());
    match d.file_error {
        Some(FileError::Truncated { offset, .. }) => assert_eq!(offset, 4),
        other => panic!("expected Truncated at 4, got {other:?}"),
    }

    let d = decode("rust_mysql_common/binlog_truncated_prev_gtid_event.000001");
    let types: Vec<String> = d.events.iter().map(|e| type_name(e.ty)).collect();
    assert_eq!(types, ["FORMAT_DESCRIPTION"]);
    assert!(d.convert_errors.is_empty());
    match d.file_error {
        Some(FileError::Truncated { offset, reason, .. }) => {
            assert_eq!(offset, 120);
            assert!(reason.contains("9 of 19"), "{reason}");
        }
        other => panic!("expected Truncated at 120, got {other:?}"),
    }
}

#[test]
fn corrupt_relay_log_fails_on_the_query_at_91204_only() {
    let rel = "rust_mysql_common/corrupt-relay-bin.000624";
    let d = decode(rel);
    assert!(d.file_error.is_none(), "{:?}", d.file_error);
    assert_eq!(d.top_level_count(), 874);
    let bad = d
        .events
        .iter()
        .find(|e| e.offset == 91204)
        .expect("event at 91204");
    assert_eq!(type_name(bad.ty), "QUERY");
    // Exactly one conversion error, on that QUERY (its database-name length runs past it).
    assert_eq!(d.convert_errors.len(), 1, "{:?}", d.convert_errors);
    match &d.convert_errors[0] {
        (
            91204,
            ConvertError::Event {
                at,
                source: EventError::Malformed { event_type: 2, .. },
            },
        ) => {
            assert_eq!(
                (at.file.as_str(), at.offset),
                ("corrupt-relay-bin.000624", 91204)
            );
        }
        other => panic!("unexpected error {other:?}"),
    }
    assert!(d.convert_errors[0].1.is_corruption());
    // Everything before it converted: 5.0 statement DML inside BEGIN … XID transactions.
    let before: Vec<&ParsedEntry> = d.entries.iter().filter(|e| offset_of(e) < 91204).collect();
    assert!(before.len() > 800, "{} entries", before.len());
    let first = before
        .iter()
        .filter_map(|e| e.row_change()?.sql)
        .find(|s| !s.starts_with("SET "))
        .unwrap();
    assert_eq!(
        first,
        "insert into RECORD (WEBSITE_ID, RECORD_TIME, FROM_CANONICAL_ID, TO_CANONICAL_ID, \
         FROM_TYPE, TO_INTENT, TO_TYPE, TEST_SETTINGS_ID, IMPRESSION) values (83, \
         '2007-10-17 00:31:09', 529794318, 132822839, 10, 0, 24, 714, 'Y')"
    );
}

#[test]
fn wl2325_prototype_files_do_not_panic() {
    // Event type codes of this pre-GA build are permuted: read with the GA numbering some events
    // fail to decode. They must be errors at their offsets, never panics.
    let d = decode("rust_mysql_common/ver_5_1-wl2325_r.001");
    assert!(d.file_error.is_none(), "{:?}", d.file_error);
    assert_eq!(d.top_level_count(), 11);
    for (offset, e) in &d.convert_errors {
        assert!(
            matches!(e, ConvertError::Event { at, .. } if at.offset == *offset),
            "{e}"
        );
        assert!(!e.to_string().contains("panicked"), "{e}");
    }
    // The XID with event_size 0x26 is one of the broken events.
    assert!(d
        .convert_errors
        .iter()
        .any(|(o, _)| d.events.iter().any(|e| e.offset == *o && e.ty == 16)));
    // The three CREATE TABLEs are read.
    assert_eq!(
        d.statements(),
        [
            "CREATE TABLE t1 (a int, b char(50)) ENGINE = MyISAM",
            "CREATE TABLE t2 (a int, b char(50)) ENGINE = InnoDB",
            "CREATE TABLE t3 (a int, b char(20))",
        ]
    );

    let d = decode("rust_mysql_common/ver_5_1-wl2325_s.001");
    assert!(d.file_error.is_none(), "{:?}", d.file_error);
    assert_eq!(d.top_level_count(), 15);
    for (_, e) in &d.convert_errors {
        assert!(!e.to_string().contains("panicked"), "{e}");
    }
    assert!(d
        .statements()
        .contains(&"INSERT INTO t1 VALUES (@x, 'four')".to_string()));
}

#[test]
fn aurora_padding_event_is_skipped() {
    let rel = "mysql-binlog-connector-java/mysql-bin.aurora-padding";
    let d = decode_clean(rel);
    let events: Vec<(u64, String)> = d
        .events
        .iter()
        .map(|e| (e.offset, type_name(e.ty)))
        .collect();
    let want: Vec<(u64, String)> = [
        (4, "FORMAT_DESCRIPTION"),
        (185, "PREVIOUS_GTIDS"),
        (216, "ANONYMOUS_GTID"),
        (281, "TYPE_100"),
        (1209, "QUERY"),
    ]
    .into_iter()
    .map(|(o, t)| (o, t.to_string()))
    .collect();
    assert_eq!(events, want);
    // The fifth event is `BEGIN`.
    let mut reader = BinlogFileReader::open(&fixture(rel)).unwrap();
    let mut last = None;
    while let Some(ev) = reader.next_event().unwrap() {
        last = Some(ev);
    }
    let last = last.unwrap();
    assert_eq!(last.pos.offset, 1209);
    assert_eq!(last.pos.next_offset, 1294);
    match last.event.read_data().unwrap() {
        Some(EventData::QueryEvent(q)) => assert_eq!(q.query(), "BEGIN"),
        other => panic!("expected QUERY BEGIN, got {other:?}"),
    }
    // A transaction with no row yet: nothing emitted.
    assert!(d.entries.is_empty());
}

#[test]
fn incident_event_is_read_and_ignored() {
    let rel = "rust_mysql_common/bug40482-bin.000001";
    let d = decode_clean(rel);
    let types: Vec<String> = d.events.iter().map(|e| type_name(e.ty)).collect();
    assert_eq!(types, ["FORMAT_DESCRIPTION", "INCIDENT", "ROTATE"]);
    assert!(d.entries.is_empty());
}

/// A copy of a CRC32 file with one byte changed inside a rows event.
#[test]
fn checksum_mismatch_in_a_rows_event_is_corrupt_at_its_offset() {
    let rel = "mysql-binlog-connector-java/mysql-bin.checksum-crc32";
    let mut bytes = std::fs::read(fixture(rel)).unwrap();
    // WRITE_ROWS_V2 at 384 (102 bytes): flip a byte of its row image.
    let (offset, size) = (384usize, 102usize);
    assert_eq!(bytes[offset + 4], 30, "WRITE_ROWS_V2 at 384");
    assert_eq!(
        u32::from_le_bytes(bytes[offset + 9..offset + 13].try_into().unwrap()),
        size as u32
    );
    bytes[offset + size - 20] ^= 0x01;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("mysql-bin.000001");
    std::fs::write(&path, &bytes).unwrap();

    let mut conv = Converter::new(options(value_options()), None);
    let d = decode_path(&path, &mut conv);
    assert!(d.convert_errors.is_empty());
    assert!(d.events.iter().all(|e| e.offset < offset as u64));
    assert_eq!(
        d.events.len(),
        5,
        "FDE, PREVIOUS_GTIDS, ANONYMOUS_GTID, BEGIN, TABLE_MAP"
    );
    match d.file_error {
        Some(FileError::Corrupt {
            offset: o,
            source: EventError::Checksum { expected, actual },
            ..
        }) => {
            assert_eq!(o, offset as u64);
            assert_ne!(expected, actual);
        }
        other => panic!("expected a checksum error at {offset}, got {other:?}"),
    }

    // With verification turned off the reader reads past the changed byte.
    let reader = BinlogFileReader::open(&path)
        .unwrap()
        .without_checksum_verification();
    assert!(reader.map(|r| r.map(|_| ())).all(|r| r.is_ok()));
}

#[test]
fn real_file_cut_inside_an_event_is_truncated_at_that_event() {
    let rel = "mysql-binlog-connector-java/mysql-bin.checksum-crc32";
    let bytes = std::fs::read(fixture(rel)).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("mysql-bin.000001");
    std::fs::write(&path, &bytes[..384 + 50]).unwrap();
    let mut conv = Converter::new(options(value_options()), None);
    let d = decode_path(&path, &mut conv);
    assert!(d.convert_errors.is_empty());
    match d.file_error {
        Some(FileError::Truncated { offset, reason, .. }) => {
            assert_eq!(offset, 384);
            assert!(reason.contains("102 bytes"), "{reason}");
        }
        other => panic!("expected Truncated at 384, got {other:?}"),
    }
}

/// The live parser leaves large rows events' RowChanges to other tasks and converts the events
/// after them meanwhile (`Converter::convert_deferring` + `RowsPlan::run`). That changes
/// nothing: for every fixture file, with the deferred RowChanges written last and in reverse
/// order, the entries equal `convert`'s one by one, and a file that fails to convert fails
/// first at the same event with the same error.
#[test]
fn deferred_rows_events_convert_exactly_like_inline_ones() {
    let mut deferred = 0;
    for rel in all_fixture_files() {
        let path = fixture(&rel);
        let inline = decode_path(&path, &mut Converter::new(label_options(), None));
        let Ok(mut reader) = BinlogFileReader::open(&path) else {
            continue;
        };
        let mut conv = Converter::new(label_options(), None);
        let (mut entries, mut errors, mut plans) = (Vec::new(), Vec::new(), Vec::new());
        while let Ok(Some(ev)) = reader.next_event() {
            match conv.convert_deferring(&ev.event, &ev.pos, &mut NoSchema) {
                Ok((es, plan)) => {
                    entries.extend(es);
                    if let Some(plan) = plan {
                        plans.push((entries.len() - 1, ev.event.clone(), ev.pos.offset, plan));
                    }
                }
                Err(e) => errors.push((ev.pos.offset, e.to_string())),
            }
        }
        deferred += plans.len();
        for (i, event, offset, plan) in plans.into_iter().rev() {
            if let Err(e) = plan.run(&event, &mut entries[i]) {
                errors.push((offset, e.to_string()));
            }
        }
        errors.sort();
        match inline.convert_errors.first() {
            None => {
                assert!(errors.is_empty(), "{rel}: {errors:?}");
                assert_eq!(entries.len(), inline.entries.len(), "{rel}");
                for (i, (d, e)) in entries.iter().zip(&inline.entries).enumerate() {
                    assert_eq!(d, e, "{rel}: entry {i}");
                }
            }
            Some((offset, e)) => {
                assert_eq!(errors.first(), Some(&(*offset, e.to_string())), "{rel}")
            }
        }
    }
    println!("{deferred} rows events deferred");
    assert!(
        deferred > 0,
        "no fixture has a rows event large enough to defer"
    );
}
