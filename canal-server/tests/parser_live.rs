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
