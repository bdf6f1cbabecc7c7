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
    let file = h0.logfile_name();
    assert!(
        file.len() == "mysql-bin.000001".len() && file.starts_with("mysql-bin.0"),
        "logfile name {file:?}"
    );
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

async fn wait_running(h: &canal_server::DestinationHandle) {
    let mut w = h.watch_status();
    let r = tokio::time::timeout(
        std::time::Duration::from_secs(60),
        w.wait_for(|s| matches!(s, canal_server::DestinationStatus::Running { .. })),
    )
    .await;
    assert!(r.is_ok(), "destination not running: {:?}", h.status());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn multi_statement_transaction_is_one_begin_end_group() {
    harness::init_tracing();
    let db = MariaDb::start().await.unwrap();
    db.exec("CREATE DATABASE shop; CREATE TABLE shop.a (id INT PRIMARY KEY); CREATE TABLE shop.b (id INT PRIMARY KEY, v TEXT)")
        .await
        .unwrap();
    let (_g, dir) = data_dir();
    let mut h = start("tx", dest_config(&db), &dir, None);
    wait_running(&h).await;
    db.exec("BEGIN; INSERT INTO shop.a VALUES (1); INSERT INTO shop.b VALUES (1, 'x'); UPDATE shop.a SET id = 2 WHERE id = 1; DELETE FROM shop.b; COMMIT;")
        .await
        .unwrap();
    let es = collect_until(&mut h, |es| {
        es.iter()
            .any(|e| e.entry_type() == EntryType::Transactionend)
    })
    .await;
    let shape: Vec<String> = es
        .iter()
        .map(|e| match e.entry_type() {
            EntryType::Rowdata => format!("{:?} {}", e.event_type(), e.table().1),
            t => format!("{t:?}"),
        })
        .collect();
    assert_eq!(
        shape,
        vec![
            "Transactionbegin",
            "Insert a",
            "Insert b",
            "Update a",
            "Delete b",
            "Transactionend"
        ]
    );
    // All entries of the transaction carry positions in binlog order; the END is the boundary.
    assert!(es
        .windows(2)
        .all(|w| w[0].position.binlog < w[1].position.binlog));
    assert!(es.last().unwrap().is_boundary());
    assert!(es[..es.len() - 1].iter().all(|e| !e.is_boundary()));
    // The XID is the transaction id of the END.
    let end = es.last().unwrap();
    let te = <canal_protocol::entry::TransactionEnd as prost::Message>::decode(
        end.entry.store_value.clone().unwrap(),
    )
    .unwrap();
    assert!(te.transaction_id().parse::<u64>().is_ok(), "{te:?}");
    h.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ddl_mid_stream_then_restart_from_before_the_ddl_uses_old_columns() {
    harness::init_tracing();
    let db = MariaDb::start().await.unwrap();
    db.exec("CREATE DATABASE shop; CREATE TABLE shop.t (id INT PRIMARY KEY, a VARCHAR(10))")
        .await
        .unwrap();
    let (_g, dir) = data_dir();
    let mut h = start("ddl", dest_config(&db), &dir, None);
    wait_running(&h).await;
    db.exec("INSERT INTO shop.t VALUES (1, 'x')").await.unwrap();
    let first = collect_rows(&mut h, 1).await;
    let first = collect_until_more(&mut h, first, |es| {
        es.iter()
            .any(|e| e.entry_type() == EntryType::Transactionend)
    })
    .await;
    let cursor_entry = first
        .iter()
        .rev()
        .find(|e| e.is_boundary())
        .unwrap()
        .clone();
    db.exec(
        "ALTER TABLE shop.t ADD COLUMN b INT AFTER id;
         INSERT INTO shop.t VALUES (2, 20, 'y');
         ALTER TABLE shop.t DROP COLUMN a;
         INSERT INTO shop.t VALUES (3, 30);",
    )
    .await
    .unwrap();
    let live = collect_rows(&mut h, 2).await;
    h.stop().await.unwrap();

    let check = |es: &[canal_server::ParsedEntry]| {
        let ddls: Vec<_> = es
            .iter()
            .filter(|e| e.row_change().is_some_and(|rc| rc.is_ddl()))
            .collect();
        assert_eq!(ddls.len(), 2, "{:#?}", summary(es));
        let rc = ddls[0].row_change().unwrap();
        assert_eq!(ddls[0].event_type(), EventType::Alter);
        assert_eq!(rc.event_type(), EventType::Alter);
        assert_eq!(rc.sql(), "ALTER TABLE shop.t ADD COLUMN b INT AFTER id");
        assert_eq!(ddls[0].table(), ("shop", "t"));
        assert!(ddls[0].is_boundary());
        let rows = dml_rows(es);
        let s = |v: &str| Some(v.to_string());
        assert_eq!(
            rows.iter()
                .map(|r| r
                    .3
                    .iter()
                    .map(|c| (c.0.clone(), c.1.clone()))
                    .collect::<Vec<_>>())
                .collect::<Vec<_>>(),
            vec![
                vec![
                    ("id".into(), s("2")),
                    ("b".into(), s("20")),
                    ("a".into(), s("y"))
                ],
                vec![("id".into(), s("3")), ("b".into(), s("30"))],
            ]
        );
    };
    check(&live);

    // Restart from the cursor before the DDL: the source's information_schema now has (id, b) only,
    // but the schema history decodes row 2 with the three columns in force at its position.
    let cursor = canal_server::position::Cursor {
        position: cursor_entry.position.binlog.clone(),
        gtid: None,
        inclusive: false,
    };
    let mut h = start("ddl", dest_config(&db), &dir, Some(cursor));
    let replay = collect_rows(&mut h, 2).await;
    h.stop().await.unwrap();
    assert!(
        replay
            .iter()
            .all(|e| e.position.binlog > cursor_entry.position.binlog),
        "nothing at or before the cursor is delivered again"
    );
    check(&replay);
}

async fn collect_until_more(
    h: &mut canal_server::DestinationHandle,
    mut have: Vec<canal_server::ParsedEntry>,
    mut done: impl FnMut(&[canal_server::ParsedEntry]) -> bool,
) -> Vec<canal_server::ParsedEntry> {
    if done(&have) {
        return have;
    }
    let start = have.len();
    let more = collect_until(h, |es| {
        let mut all = have[..start].to_vec();
        all.extend_from_slice(es);
        done(&all)
    })
    .await;
    have.extend(more);
    have
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn filters_and_black_filters_apply_to_rows_and_ddl() {
    harness::init_tracing();
    let db = MariaDb::start().await.unwrap();
    db.exec("CREATE DATABASE shop; CREATE DATABASE other;
             CREATE TABLE shop.orders (id INT PRIMARY KEY); CREATE TABLE shop.secret_keys (id INT PRIMARY KEY);
             CREATE TABLE other.t (id INT PRIMARY KEY);")
        .await
        .unwrap();
    let (_g, dir) = data_dir();
    let mut cfg = dest_config(&db);
    cfg.filter = r"shop\..*".into();
    cfg.black_filter = r"shop\.secret.*".into();
    let mut h = start("flt", cfg, &dir, None);
    wait_running(&h).await;
    db.exec(
        "INSERT INTO other.t VALUES (1);
         INSERT INTO shop.secret_keys VALUES (1);
         ALTER TABLE other.t ADD COLUMN x INT;
         ALTER TABLE shop.secret_keys ADD COLUMN x INT;
         INSERT INTO shop.orders VALUES (1);
         ALTER TABLE shop.orders ADD COLUMN x INT;
         INSERT INTO shop.orders VALUES (2, 2);",
    )
    .await
    .unwrap();
    let es = collect_rows(&mut h, 2).await;
    h.stop().await.unwrap();
    let tables: Vec<(String, String)> = es
        .iter()
        .filter(|e| e.entry_type() == EntryType::Rowdata)
        .map(|e| {
            (
                format!("{:?}", e.event_type()),
                format!("{}.{}", e.table().0, e.table().1),
            )
        })
        .collect();
    assert_eq!(
        tables,
        vec![
            ("Insert".to_string(), "shop.orders".to_string()),
            ("Alter".to_string(), "shop.orders".to_string()),
            ("Insert".to_string(), "shop.orders".to_string()),
        ],
        "{:#?}",
        summary(&es)
    );
    // The filtered transactions still produced positions: entries are in binlog order after them.
    assert!(es
        .windows(2)
        .all(|w| w[0].position.binlog < w[1].position.binlog));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_from_file_position_gtid_and_timestamp() {
    harness::init_tracing();
    let db = MariaDb::start().await.unwrap();
    db.exec("CREATE DATABASE s; CREATE TABLE s.t (id INT PRIMARY KEY); INSERT INTO s.t VALUES (1)")
        .await
        .unwrap();
    let pos = db.master_status().await.unwrap();
    let gtid = db.gtid_binlog_pos().await.unwrap();
    // Binlog timestamps have one-second resolution: leave a clear gap before the start time.
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    let ts = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    db.exec("INSERT INTO s.t VALUES (2); INSERT INTO s.t VALUES (3)")
        .await
        .unwrap();

    let ids = |es: &[canal_server::ParsedEntry]| {
        dml_rows(es)
            .into_iter()
            .map(|r| r.3[0].1.clone().unwrap())
            .collect::<Vec<_>>()
    };
    let (_g, dir) = data_dir();

    let mut cfg = dest_config(&db);
    cfg.journal_name = pos.file.clone();
    cfg.position = Some(pos.position);
    let mut h = start("byfile", cfg, &dir, None);
    let es = collect_rows(&mut h, 2).await;
    h.stop().await.unwrap();
    assert_eq!(ids(&es), vec!["2", "3"], "file+position start");

    let mut cfg = dest_config(&db);
    cfg.gtid = gtid.clone();
    cfg.gtid_mode = true;
    let mut h = start("bygtid", cfg, &dir, None);
    let es = collect_rows(&mut h, 2).await;
    h.stop().await.unwrap();
    assert_eq!(ids(&es), vec!["2", "3"], "GTID start");
    let domain_server = gtid.rsplit_once('-').unwrap().0.to_string();
    let last = es.iter().rev().find(|e| is_dml(e)).unwrap();
    let header_gtid = last.entry.header.as_ref().unwrap().gtid().to_string();
    assert!(
        header_gtid.starts_with(&domain_server),
        "Header.gtid {header_gtid:?} in GTID mode"
    );

    let mut cfg = dest_config(&db);
    cfg.timestamp = Some(ts);
    let mut h = start("byts", cfg, &dir, None);
    let es = collect_rows(&mut h, 2).await;
    h.stop().await.unwrap();
    assert_eq!(ids(&es), vec!["2", "3"], "timestamp start");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn xa_transactions_carry_xa_props() {
    harness::init_tracing();
    let db = MariaDb::start().await.unwrap();
    db.exec("CREATE DATABASE x; CREATE TABLE x.t (id INT PRIMARY KEY)")
        .await
        .unwrap();
    let (_g, dir) = data_dir();
    let mut h = start("xa", dest_config(&db), &dir, None);
    wait_running(&h).await;
    db.exec(
        "XA START 'g1'; INSERT INTO x.t VALUES (1); XA END 'g1'; XA PREPARE 'g1'; XA COMMIT 'g1';",
    )
    .await
    .unwrap();
    let es = collect_until(&mut h, |es| {
        es.iter()
            .any(|e| e.entry_type() == EntryType::Rowdata && e.event_type() == EventType::Xacommit)
    })
    .await;
    h.stop().await.unwrap();
    let begin = es
        .iter()
        .find(|e| {
            e.entry_type() == EntryType::Transactionbegin && {
                let tb = <canal_protocol::entry::TransactionBegin as prost::Message>::decode(
                    e.entry.store_value.clone().unwrap(),
                )
                .unwrap();
                tb.props
                    .iter()
                    .any(|p| p.key() == "XA_TYPE" && p.value() == "XA START")
            }
        })
        .unwrap_or_else(|| panic!("XA START begin: {:#?}", summary(&es)));
    let tb = <canal_protocol::entry::TransactionBegin as prost::Message>::decode(
        begin.entry.store_value.clone().unwrap(),
    )
    .unwrap();
    let xid = tb
        .props
        .iter()
        .find(|p| p.key() == "XA_XID")
        .unwrap()
        .value()
        .to_string();
    assert_eq!(xid, " X'6731',X'',1", "XA_XID keeps its leading space");
    assert!(dml_rows(&es)
        .iter()
        .any(|r| r.3[0].1.as_deref() == Some("1")));
    let commit = es
        .iter()
        .find(|e| e.event_type() == EventType::Xacommit)
        .unwrap();
    let rc = commit.row_change().unwrap();
    assert!(rc
        .props
        .iter()
        .any(|p| p.key() == "XA_TYPE" && p.value() == "XA COMMIT"));
    assert!(rc.sql().starts_with("XA COMMIT"), "{}", rc.sql());
}
