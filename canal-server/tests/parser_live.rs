//! canal-server's parser against a real MariaDB: entries, values, positions, restarts and faults.

mod common;

use canal_protocol::entry::{EntryType, EventType};
use common::*;
use harness::MariaDb;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn insert_update_delete_with_images_and_updated_flags() {
    harness::init_tracing();
    let db = MariaDb::start().await.unwrap();
    db.exec(
        "CREATE DATABASE shop; CREATE TABLE shop.t (id INT PRIMARY KEY, name VARCHAR(20), qty INT)",
    )
    .await
    .unwrap();
    let (_g, dir) = data_dir();
    let mut h = start("example", dest_config(&db), &dir, None);
    // Wait until the destination streams before writing (it starts at the end of the binlog).
    while !matches!(h.status(), canal_server::DestinationStatus::Running { .. }) {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    db.exec(
        "INSERT INTO shop.t VALUES (1,'a',10),(2,'b',NULL);
         UPDATE shop.t SET qty = 11 WHERE id = 1;
         DELETE FROM shop.t WHERE id = 2;",
    )
    .await
    .unwrap();
    let es = collect_until(&mut h, |es| {
        es.iter()
            .filter(|e| e.entry_type() == EntryType::Transactionend)
            .count()
            >= 3
    })
    .await;
    let kinds: Vec<(EntryType, EventType)> = es
        .iter()
        .map(|e| {
            (
                e.entry_type(),
                if e.entry_type() == EntryType::Rowdata {
                    e.event_type()
                } else {
                    EventType::Update
                },
            )
        })
        .collect();
    assert_eq!(
        kinds,
        vec![
            (EntryType::Transactionbegin, EventType::Update),
            (EntryType::Rowdata, EventType::Insert),
            (EntryType::Transactionend, EventType::Update),
            (EntryType::Transactionbegin, EventType::Update),
            (EntryType::Rowdata, EventType::Update),
            (EntryType::Transactionend, EventType::Update),
            (EntryType::Transactionbegin, EventType::Update),
            (EntryType::Rowdata, EventType::Delete),
            (EntryType::Transactionend, EventType::Update),
        ],
        "{:#?}",
        summary(&es)
    );
    let s = |v: &str| Some(v.to_string());
    let c = |n: &str, v: Option<String>, u: bool| (n.to_string(), v, u);
    let rows = dml_rows(&es);
    assert_eq!(
        rows,
        vec![
            (
                EventType::Insert,
                "shop.t".into(),
                vec![],
                vec![
                    c("id", s("1"), true),
                    c("name", s("a"), true),
                    c("qty", s("10"), true)
                ]
            ),
            (
                EventType::Insert,
                "shop.t".into(),
                vec![],
                vec![
                    c("id", s("2"), true),
                    c("name", s("b"), true),
                    c("qty", None, true)
                ]
            ),
            (
                EventType::Update,
                "shop.t".into(),
                vec![
                    c("id", s("1"), false),
                    c("name", s("a"), false),
                    c("qty", s("10"), false)
                ],
                vec![
                    c("id", s("1"), false),
                    c("name", s("a"), false),
                    c("qty", s("11"), true)
                ]
            ),
            (
                EventType::Delete,
                "shop.t".into(),
                vec![
                    c("id", s("2"), false),
                    c("name", s("b"), false),
                    c("qty", None, false)
                ],
                vec![]
            ),
        ]
    );
    // Header and column metadata as Canal fills them.
    let ins = es.iter().find(|e| is_dml(e)).unwrap();
    let h0 = ins.entry.header.as_ref().unwrap();
    assert_eq!(h0.schema_name(), "shop");
    assert_eq!(h0.table_name(), "t");
    assert_eq!(h0.serveren_code(), "UTF-8");
    assert_eq!(h0.server_id(), 1);
    assert_eq!(h0.execute_time() % 1000, 0);
    assert!(h0.logfile_name().starts_with("mysql-bin."));
    assert_eq!(
        h0.props
            .iter()
            .find(|p| p.key() == "rowsCount")
            .map(|p| p.value()),
        Some("2")
    );
    let id = after_col(ins, "id");
    assert!(id.is_key());
    assert_eq!(id.mysql_type(), "int(11)");
    assert_eq!(id.sql_type(), 4);
    assert_eq!(after_col(ins, "name").mysql_type(), "varchar(20)");
    assert_eq!(after_col(ins, "name").sql_type(), 12);
    h.stop().await.unwrap();
}

const TYPES_DDL: &str = "CREATE DATABASE ty; CREATE TABLE ty.all_types (
    id INT PRIMARY KEY,
    ti TINYINT, tu TINYINT UNSIGNED, tu2 TINYINT UNSIGNED,
    si SMALLINT, su SMALLINT UNSIGNED, mi MEDIUMINT, mu MEDIUMINT UNSIGNED,
    i INT, iu INT UNSIGNED, bi BIGINT, bu BIGINT UNSIGNED,
    d DECIMAL(10,2), d0 DECIMAL(10,2), f FLOAT, db DOUBLE,
    b1 BIT(1), b8 BIT(8), y YEAR, dt DATE, tm TIME, tm2 TIME(2),
    dtt DATETIME, dt6 DATETIME(6), ts TIMESTAMP(3) NULL DEFAULT NULL,
    c CHAR(10), v VARCHAR(20), bn BINARY(4), vb VARBINARY(10), tx TEXT, bl BLOB,
    e ENUM('a','b','c'), st SET('a','b','c'), j JSON, p POINT
) DEFAULT CHARSET=utf8mb4";

const TYPES_ROW: &str = "SET time_zone = '+00:00';
    INSERT INTO ty.all_types VALUES (1, -128, 200, 100, -32768, 65535, -8388608, 16777215,
    -2147483648, 4294967295, -9223372036854775808, 18446744073709551615,
    1.50, 1.00, 0.1, 0.1e0 + 0.2e0, b'1', b'00000101', 2024, '2024-01-02', '-838:59:59', '-00:00:01.50',
    '2024-01-02 03:04:05', '2024-01-02 03:04:05.000001', FROM_UNIXTIME(1700000000.12),
    'ab', 'héllo', 'ab', 0x00ff, 'long text', 0x00ff, 'b', 'a,c', '{\"a\": 1}', POINT(1, 2));
    INSERT INTO ty.all_types (id) VALUES (2);";

async fn types_entries(
    values: canal_server::config::ValueConfig,
) -> Vec<canal_server::ParsedEntry> {
    let db = MariaDb::start().await.unwrap();
    db.exec(TYPES_DDL).await.unwrap();
    let (_g, dir) = data_dir();
    let mut cfg = dest_config(&db);
    cfg.values = values;
    let mut h = start("types", cfg, &dir, None);
    while !matches!(h.status(), canal_server::DestinationStatus::Running { .. }) {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    db.exec(TYPES_ROW).await.unwrap();
    let es = collect_rows(&mut h, 2).await;
    h.stop().await.unwrap();
    es.into_iter().filter(is_dml).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_column_type_has_canal_text_sqltype_and_mysqltype() {
    harness::init_tracing();
    let values = canal_server::config::ValueConfig {
        timestamp_zone: "UTC".into(),
        ..Default::default()
    };
    let es = types_entries(values).await;
    let full = &es[0];
    let null_row = &es[1];
    #[rustfmt::skip]
    let expected: &[(&str, &str, i32, &str)] = &[
        ("id", "1", 4, "int(11)"),
        ("ti", "-128", -6, "tinyint(4)"),
        ("tu", "200", 5, "tinyint(3) unsigned"),
        ("tu2", "100", -6, "tinyint(3) unsigned"),
        ("si", "-32768", 5, "smallint(6)"),
        ("su", "65535", 4, "smallint(5) unsigned"),
        ("mi", "-8388608", 4, "mediumint(9)"),
        ("mu", "16777215", 4, "mediumint(8) unsigned"),
        ("i", "-2147483648", 4, "int(11)"),
        ("iu", "4294967295", -5, "int(10) unsigned"),
        ("bi", "-9223372036854775808", -5, "bigint(20)"),
        ("bu", "18446744073709551615", 3, "bigint(20) unsigned"),
        ("d", "1.50", 3, "decimal(10,2)"),
        ("d0", "1.0", 3, "decimal(10,2)"),
        ("f", "0.1", 7, "float"),
        ("db", "0.30000000000000004", 8, "double"),
        ("b1", "1", -7, "bit(1)"),
        ("b8", "5", -7, "bit(8)"),
        ("y", "2024", 12, "year(4)"),
        ("dt", "2024-01-02", 91, "date"),
        ("tm", "-838:59:59", 92, "time"),
        ("tm2", "-00:00:01.50", 92, "time(2)"),
        ("dtt", "2024-01-02 03:04:05", 93, "datetime"),
        ("dt6", "2024-01-02 03:04:05.000001", 93, "datetime(6)"),
        ("ts", "2023-11-14 22:13:20.120", 93, "timestamp(3)"),
        ("c", "ab", 1, "char(10)"),
        ("v", "héllo", 12, "varchar(20)"),
        ("bn", "ab\u{0}\u{0}", 2004, "binary(4)"),
        ("vb", "\u{0}\u{ff}", 2004, "varbinary(10)"),
        ("tx", "long text", 2005, "text"),
        ("bl", "\u{0}\u{ff}", 2004, "blob"),
        ("e", "2", 4, "enum('a','b','c')"),
        ("st", "5", -7, "set('a','b','c')"),
        ("j", "{\"a\": 1}", 2005, "longtext"),
    ];
    let mut problems = Vec::new();
    for (name, value, sql_type, mysql_type) in expected {
        let c = after_col(full, name);
        let got = (
            c.value().to_string(),
            c.sql_type(),
            c.mysql_type().to_string(),
            c.is_null(),
        );
        let want = (value.to_string(), *sql_type, mysql_type.to_string(), false);
        if got != want {
            problems.push(format!("{name}: got {got:?}, want {want:?}"));
        }
    }
    let p = after_col(full, "p");
    assert_eq!(p.mysql_type(), "point");
    assert_eq!(p.sql_type(), 2004);
    assert_eq!(p.value().chars().count(), 25, "SRID + WKB point as Latin-1");
    assert!(problems.is_empty(), "{}", problems.join("\n"));

    // NULLs: isNull, no value, and the type-only sqlType (SET → BLOB 2004).
    #[rustfmt::skip]
    let null_types: &[(&str, i32)] = &[("ti", -6), ("tu", -6), ("bu", -5), ("d", 3), ("f", 7), ("b1", -7),
        ("y", 12), ("ts", 93), ("c", 1), ("bn", 2004), ("tx", 2005), ("e", 4), ("st", 2004), ("j", 2005), ("p", 2004)];
    for (name, sql_type) in null_types {
        let c = after_col(null_row, name);
        assert!(c.is_null(), "{name} should be NULL");
        assert_eq!(c.value, None, "{name}: NULL has no value");
        assert_eq!(c.sql_type(), *sql_type, "{name}: NULL sqlType");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn value_options_fix_canal_defects() {
    harness::init_tracing();
    let values = canal_server::config::ValueConfig {
        timestamp_zone: "+08:00".into(),
        enum_as_label: true,
        set_as_labels: true,
        decimal_exact_scale: true,
        ..Default::default()
    };
    let es = types_entries(values).await;
    let full = &es[0];
    let v = |n: &str| {
        let c = after_col(full, n);
        (c.value().to_string(), c.sql_type())
    };
    assert_eq!(v("e"), ("b".to_string(), 12));
    assert_eq!(v("st"), ("a,c".to_string(), 12));
    assert_eq!(v("d0"), ("1.00".to_string(), 3));
    assert_eq!(v("ts"), ("2023-11-15 06:13:20.120".to_string(), 93));
}
