//! The Load stage against a real MariaDB: value types, merging, idempotent replays, table checks,
//! DDL, and a target that freezes or dies in the middle of a load.

use std::sync::Arc;
use std::time::Duration;

use harness::MariaDb;
use mysql_async::prelude::Queryable;
use mysql_async::Value;
use otter_node::batch::{ColumnValue, DdlEvent, LoadBatch, RowEvent, RowKind};
use otter_node::model::TargetDb;
use otter_node::pipeline::load::{Fence, LoadError, Loader};
use tokio_util::sync::CancellationToken;

const ITEMS: &str = "CREATE DATABASE shop;
    CREATE TABLE shop.items (
        tenant INT NOT NULL,
        id BIGINT NOT NULL,
        ti TINYINT, si SMALLINT, bi BIGINT UNSIGNED, dec_ DECIMAL(20,6), dbl DOUBLE,
        b BIT(10), d DATE, t TIME, dt DATETIME(3),
        `na``me` VARCHAR(200) CHARACTER SET utf8mb4, txt TEXT CHARACTER SET utf8mb4,
        vb VARBINARY(300), bl BLOB, e ENUM('a','b','c'), st SET('a','b','c'),
        PRIMARY KEY (tenant, id)
    );
    CREATE TABLE shop.orders (id INT NOT NULL PRIMARY KEY, note VARCHAR(50));
    CREATE TABLE shop.nopk (a INT, b INT);";

const SELECT_ITEMS: &str =
    "SELECT tenant, id, ti, si, bi, dec_, dbl, b+0, d, t, dt, `na``me`, txt, \
     HEX(vb), HEX(bl), e, st FROM shop.items ORDER BY tenant, id";

/// The fence of most tests: one pipeline, one holder.
const FENCE: Fence = Fence {
    pipeline: 1,
    token: 1,
};

const WEIRD: &str = "O'Brien \\ \\' \"q\" `tick` 😀 é \0 nul\n\r\x1a ; -- end";

/// One non-key column: name, java.sql.Types, Canal text, what `SELECT_ITEMS` shows.
type Val = (&'static str, i32, Option<String>, Option<String>);

fn all_bytes() -> String {
    (0u8..=255).map(char::from).collect()
}

fn hex(s: &str) -> String {
    s.chars().map(|c| format!("{:02X}", u32::from(c))).collect()
}

fn some(s: &str) -> Option<String> {
    Some(s.to_string())
}

fn vals_a() -> Vec<Val> {
    let reversed: String = all_bytes().chars().rev().collect();
    vec![
        ("ti", -6, some("-128"), some("-128")),
        ("si", 5, some("32767"), some("32767")),
        (
            "bi",
            3,
            some("18446744073709551615"),
            some("18446744073709551615"),
        ),
        ("dec_", 3, some("12345.5"), some("12345.500000")),
        ("dbl", 8, some("1.0E-4"), some("0.0001")),
        ("b", -7, some("513"), some("513")),
        ("d", 91, some("2024-02-29"), some("2024-02-29")),
        ("t", 92, some("-01:02:03"), some("-01:02:03")),
        (
            "dt",
            93,
            some("2024-02-29 23:59:59.123"),
            some("2024-02-29 23:59:59.123"),
        ),
        ("na`me", 12, some(WEIRD), some(WEIRD)),
        ("txt", 2005, some(&WEIRD.repeat(3)), some(&WEIRD.repeat(3))),
        ("vb", 2004, Some(all_bytes()), Some(hex(&all_bytes()))),
        ("bl", 2004, Some(reversed.clone()), Some(hex(&reversed))),
        ("e", 4, some("2"), some("b")),
        ("st", -7, some("5"), some("a,c")),
    ]
}

fn vals_b() -> Vec<Val> {
    vec![
        ("ti", -6, some("7"), some("7")),
        ("si", 5, some("-1"), some("-1")),
        ("bi", -5, some("0"), some("0")),
        ("dec_", 3, some("-0.000001"), some("-0.000001")),
        ("dbl", 8, some("3.5E10"), some("35000000000")),
        ("b", -7, some("0"), some("0")),
        ("d", 91, some("1999-12-31"), some("1999-12-31")),
        ("t", 92, some("838:59:59"), some("838:59:59")),
        (
            "dt",
            93,
            some("2000-01-01 00:00:00"),
            some("2000-01-01 00:00:00.000"),
        ),
        ("na`me", 12, some("plain text"), some("plain text")),
        ("txt", 2005, some(""), some("")),
        ("vb", 2004, some(""), some("")),
        ("bl", 2004, some("\u{0}"), some("00")),
        ("e", 4, some("1"), some("a")),
        ("st", -7, some("0"), some("")),
    ]
}

fn vals_null() -> Vec<Val> {
    vals_a()
        .into_iter()
        .map(|(n, t, _, _)| (n, t, None, None))
        .collect()
}

fn key(name: &str, v: i64, sql_type: i32) -> ColumnValue {
    ColumnValue {
        name: name.into(),
        value: Some(v.to_string()),
        sql_type,
        is_key: true,
    }
}

fn item(kind: RowKind, tenant: i64, id: i64, vals: &[Val]) -> RowEvent {
    let mut columns = vec![key("tenant", tenant, 4), key("id", id, -5)];
    columns.extend(vals.iter().map(|(n, t, v, _)| ColumnValue {
        name: n.to_string(),
        value: v.clone(),
        sql_type: *t,
        is_key: false,
    }));
    RowEvent {
        schema: "shop".into(),
        table: "items".into(),
        kind,
        columns,
        old_keys: None,
        before: None,
        history: Vec::new(),
        weight: 1,
        execute_time: 0,
    }
}

fn item_moved(from: (i64, i64), to: (i64, i64), vals: &[Val]) -> RowEvent {
    RowEvent {
        old_keys: Some(vec![key("tenant", from.0, 4), key("id", from.1, -5)]),
        before: None,
        history: Vec::new(),
        ..item(RowKind::Update, to.0, to.1, vals)
    }
}

fn order(kind: RowKind, id: i64, note: Option<&str>) -> RowEvent {
    RowEvent {
        schema: "shop".into(),
        table: "orders".into(),
        kind,
        columns: vec![
            key("id", id, 4),
            ColumnValue {
                name: "note".into(),
                value: note.map(str::to_string),
                sql_type: 12,
                is_key: false,
            },
        ],
        old_keys: None,
        before: None,
        history: Vec::new(),
        weight: 2,
        execute_time: 0,
    }
}

fn expected(tenant: i64, id: i64, vals: &[Val]) -> Vec<Option<String>> {
    let mut row = vec![some(&tenant.to_string()), some(&id.to_string())];
    row.extend(vals.iter().map(|(_, _, _, e)| e.clone()));
    row
}

fn text(v: Value) -> Option<String> {
    match v {
        Value::NULL => None,
        Value::Bytes(b) => Some(String::from_utf8(b).expect("utf-8 result")),
        other => Some(format!("{other:?}")),
    }
}

async fn dump(db: &MariaDb, sql: &str) -> Vec<Vec<Option<String>>> {
    let rows: Vec<mysql_async::Row> = db.query(sql).await.expect("query");
    rows.into_iter()
        .map(|r| r.unwrap().into_iter().map(text).collect())
        .collect()
}

async fn orders(db: &MariaDb) -> Vec<(i64, Option<String>)> {
    db.query("SELECT id, note FROM shop.orders ORDER BY id")
        .await
        .expect("orders")
}

async fn target() -> (MariaDb, Loader) {
    harness::init_tracing();
    let db = MariaDb::start().await.expect("mariadb");
    db.exec(ITEMS).await.expect("schema");
    let loader = Loader::new(&TargetDb {
        address: db.addr().to_string(),
        username: "root".into(),
        password: String::new(),
        site: String::new(),
        tls: Default::default(),
    })
    .expect("loader");
    (db, loader)
}

fn batch(rows: Vec<RowEvent>) -> LoadBatch {
    LoadBatch {
        rows,
        ..Default::default()
    }
}

/// Items and orders; the first batch of most tests.
fn first_batch() -> LoadBatch {
    use RowKind::*;
    batch(vec![
        order(Insert, 1, Some("one")),
        item(Insert, 1, 1, &vals_b()),
        item(Insert, 1, 2, &vals_a()),
        item(Insert, 2, 1, &vals_a()),
        order(Insert, 2, Some("two")),
        item(Update, 1, 1, &vals_a()),
        item(Delete, 2, 1, &vals_a()),
        item(Insert, 1, 3, &vals_b()),
        item_moved((1, 3), (1, 4), &vals_b()),
        order(Insert, 3, Some("it's three")),
        order(Update, 2, None),
        order(Delete, 1, Some("one")),
    ])
}

fn first_items() -> Vec<Vec<Option<String>>> {
    vec![
        expected(1, 1, &vals_a()),
        expected(1, 2, &vals_a()),
        expected(1, 4, &vals_b()),
    ]
}

fn first_orders() -> Vec<(i64, Option<String>)> {
    vec![(2, None), (3, Some("it's three".into()))]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loads_merges_and_replays() {
    let (db, loader) = target().await;
    let stop = CancellationToken::new();
    loader
        .check_tables(&[
            ("shop".into(), "items".into()),
            ("shop".into(), "orders".into()),
        ])
        .await
        .expect("tables are fine");

    let b1 = first_batch();
    let stats = loader.load(b1.clone(), FENCE, &stop).await.expect("load");
    // items 1/1, 1/2, 1/4 and the deletes of 2/1 and 1/3; orders 1 (delete), 2, 3.
    assert_eq!(stats.rows, 8, "{stats:?}");
    assert_eq!(stats.retries, 0);
    assert_eq!(dump(&db, SELECT_ITEMS).await, first_items());
    assert_eq!(orders(&db).await, first_orders());

    // The same batch again changes nothing.
    loader.load(b1.clone(), FENCE, &stop).await.expect("replay");
    assert_eq!(dump(&db, SELECT_ITEMS).await, first_items());
    assert_eq!(orders(&db).await, first_orders());

    // Key chain, delete + insert, NULLs, a partial image.
    use RowKind::*;
    let partial: Vec<Val> = vec![("ti", -6, some("99"), some("99"))];
    let b2 = batch(vec![
        item_moved((1, 2), (1, 5), &vals_a()),
        item_moved((1, 5), (3, 6), &vals_b()),
        item(Delete, 1, 1, &vals_a()),
        item(Insert, 1, 1, &vals_null()),
        item(Update, 1, 4, &partial),
        order(Delete, 3, None),
        order(Insert, 3, Some("back\\slash")),
    ]);
    let mut b4 = vals_b();
    b4[0] = ("ti", -6, some("99"), some("99"));
    let want = vec![
        expected(1, 1, &vals_null()),
        expected(1, 4, &b4),
        expected(3, 6, &vals_b()),
    ];
    let want_orders = vec![(2, None), (3, Some("back\\slash".into()))];
    for _ in 0..2 {
        loader
            .load(b2.clone(), FENCE, &stop)
            .await
            .expect("second batch");
        assert_eq!(dump(&db, SELECT_ITEMS).await, want);
        assert_eq!(orders(&db).await, want_orders);
    }

    // A bad number fails before anything is written; an unknown column is a SQL error naming
    // the table.
    let mut bad = item(Insert, 9, 9, &vals_a());
    bad.columns[2].value = some("1); DROP TABLE shop.orders; --");
    let err = loader
        .load(batch(vec![order(Insert, 9, Some("x")), bad]), FENCE, &stop)
        .await
        .unwrap_err();
    assert!(matches!(err, LoadError::BadValue { .. }), "{err}");
    assert_eq!(orders(&db).await, want_orders);
    let mut unknown = order(Insert, 10, Some("x"));
    unknown.columns[1].name = "nope".into();
    let err = loader
        .load(batch(vec![unknown]), FENCE, &stop)
        .await
        .unwrap_err();
    match &err {
        LoadError::Sql { table, sql, .. } => {
            assert_eq!(table, "shop.orders");
            assert!(sql.starts_with("INSERT INTO `shop`.`orders`"), "{sql}");
        }
        other => panic!("expected a SQL error, got {other}"),
    }
    assert!(err.to_string().contains("nope"), "{err}");
    loader.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_tables_and_ddl() {
    let (db, loader) = target().await;
    let err = loader
        .check_tables(&[
            ("shop".into(), "items".into()),
            ("shop".into(), "nopk".into()),
        ])
        .await
        .unwrap_err();
    assert!(matches!(err, LoadError::NoPrimaryKey { .. }), "{err}");
    let msg = err.to_string();
    assert!(
        msg.contains("shop.nopk") && msg.contains("has no primary key"),
        "{msg}"
    );
    let err = loader
        .check_tables(&[("shop".into(), "missing".into())])
        .await
        .unwrap_err();
    assert!(
        matches!(err, LoadError::NoTable { .. }) && err.to_string().contains("shop.missing"),
        "{err}"
    );

    let stop = CancellationToken::new();
    let ddl = |schema: &str, sql: &str| LoadBatch {
        rows: Vec::new(),
        ddl: Some(DdlEvent {
            schema: schema.into(),
            table: String::new(),
            sql: sql.into(),
            execute_time: 0,
        }),
        ..Default::default()
    };
    // Replayed DDL is applied once and then skipped.
    for _ in 0..2 {
        let stats = loader
            .load(
                ddl("shop", "ALTER TABLE orders ADD COLUMN extra INT"),
                FENCE,
                &stop,
            )
            .await
            .expect("alter");
        assert_eq!(stats.statements, 1);
        loader
            .load(ddl("crm", "CREATE DATABASE crm"), FENCE, &stop)
            .await
            .expect("create database");
        loader
            .load(
                ddl("crm", "CREATE TABLE people (id INT PRIMARY KEY, name TEXT)"),
                FENCE,
                &stop,
            )
            .await
            .expect("create table");
    }
    let cols: Vec<String> = db
        .query("SELECT COLUMN_NAME FROM information_schema.COLUMNS WHERE TABLE_SCHEMA='shop' AND TABLE_NAME='orders' ORDER BY ORDINAL_POSITION")
        .await
        .unwrap();
    assert_eq!(cols, ["id", "note", "extra"]);
    loader
        .check_tables(&[("crm".into(), "people".into())])
        .await
        .expect("created table has a key");
    let err = loader
        .load(ddl("shop", "ALTER TABLE orders ADD COLUMN"), FENCE, &stop)
        .await
        .unwrap_err();
    assert!(matches!(err, LoadError::Sql { .. }), "{err}");
    let mut mixed = ddl("shop", "DROP TABLE orders");
    mixed.rows.push(order(RowKind::Insert, 1, None));
    assert!(matches!(
        loader.load(mixed.clone(), FENCE, &stop).await,
        Err(LoadError::DdlWithRows { rows: 1 })
    ));
    loader.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frozen_target_is_waited_for() {
    let (mut db, loader) = target().await;
    let loader = Arc::new(loader);
    let stop = CancellationToken::new();
    // Warm the pool so a connection is open when the server freezes.
    loader
        .check_tables(&[("shop".into(), "items".into())])
        .await
        .unwrap();
    db.pause().expect("SIGSTOP");
    let load = tokio::spawn({
        let loader = loader.clone();
        let stop = stop.clone();
        async move { loader.load(first_batch(), FENCE, &stop).await }
    });
    tokio::time::sleep(Duration::from_secs(2)).await;
    db.resume().expect("SIGCONT");
    load.await.expect("task").expect("load after resume");
    assert_eq!(dump(&db, SELECT_ITEMS).await, first_items());
    assert_eq!(orders(&db).await, first_orders());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_target_is_retried_until_it_returns_or_stop() {
    let (mut db, loader) = target().await;
    let loader = Arc::new(loader);
    loader
        .check_tables(&[("shop".into(), "items".into())])
        .await
        .unwrap();
    db.kill9().expect("kill -9");

    let spawn_load = |stop: CancellationToken| {
        let loader = loader.clone();
        tokio::spawn(async move { loader.load(first_batch(), FENCE, &stop).await })
    };
    async fn retried_since(loader: &Loader, base: u64) {
        while loader.total_retries() <= base {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    // Cancelled while the target is down.
    let stop = CancellationToken::new();
    let base = loader.total_retries();
    let load = spawn_load(stop.clone());
    retried_since(&loader, base).await;
    stop.cancel();
    let r = load.await.expect("task");
    assert!(matches!(r, Err(LoadError::Cancelled)), "{r:?}");

    // Waits and completes once the target is back.
    let stop = CancellationToken::new();
    let base = loader.total_retries();
    let load = spawn_load(stop.clone());
    retried_since(&loader, base).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    db.start_again().await.expect("restart");
    let stats = load.await.expect("task").expect("load after restart");
    assert!(stats.retries >= 1, "{stats:?}");
    assert_eq!(dump(&db, SELECT_ITEMS).await, first_items());
    assert_eq!(orders(&db).await, first_orders());
}

async fn fence_rows(db: &MariaDb) -> Vec<(i64, i64)> {
    db.query("SELECT pipeline_id, token FROM retl.retl_fence ORDER BY pipeline_id")
        .await
        .expect("retl.retl_fence")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_fencing_token_commits_nothing() {
    let (db, loader) = target().await;
    let loader = Arc::new(loader);
    let stop = CancellationToken::new();
    let fence = |pipeline, token| Fence { pipeline, token };
    use RowKind::*;

    // The first load creates retl.retl_fence and stores its token.
    loader
        .load(first_batch(), fence(1, 10), &stop)
        .await
        .expect("load");
    assert_eq!(fence_rows(&db).await, [(1, 10)]);
    assert_eq!(orders(&db).await, first_orders());

    // An older token writes nothing, rows or DDL, and is not retried.
    let stale = batch(vec![
        order(Update, 2, Some("stale")),
        order(Insert, 7, None),
    ]);
    let err = loader
        .load(stale.clone(), fence(1, 9), &stop)
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            LoadError::Fenced {
                pipeline: 1,
                ours: 9,
                newer: 10
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("fenced"), "{err}");
    assert_eq!(orders(&db).await, first_orders());
    let ddl = LoadBatch {
        rows: Vec::new(),
        ddl: Some(DdlEvent {
            schema: "shop".into(),
            table: "orders".into(),
            sql: "ALTER TABLE orders ADD COLUMN stale INT".into(),
            execute_time: 0,
        }),
        ..Default::default()
    };
    let err = loader
        .load(ddl.clone(), fence(1, 9), &stop)
        .await
        .unwrap_err();
    assert!(matches!(err, LoadError::Fenced { .. }), "{err}");
    let cols: Vec<String> = db
        .query("SELECT COLUMN_NAME FROM information_schema.COLUMNS WHERE TABLE_SCHEMA='shop' AND TABLE_NAME='orders' AND COLUMN_NAME='stale'")
        .await
        .unwrap();
    assert!(cols.is_empty(), "{cols:?}");

    // The same token loads again (a retry, another table of the batch); a newer one raises it;
    // another pipeline has its own row.
    loader
        .load(first_batch(), fence(1, 10), &stop)
        .await
        .expect("same token");
    loader
        .load(
            batch(vec![order(Insert, 7, Some("seven"))]),
            fence(1, 12),
            &stop,
        )
        .await
        .expect("newer token");
    loader
        .load(batch(vec![order(Insert, 8, None)]), fence(2, 3), &stop)
        .await
        .expect("other pipeline");
    assert_eq!(fence_rows(&db).await, [(1, 12), (2, 3)]);
    assert_eq!(
        loader
            .load(stale, fence(1, 10), &stop)
            .await
            .map_err(|e| e.to_string()),
        Err("pipeline 1: fenced: the target holds fencing token 12, newer than this load's 10; another node took the batch over".to_string())
    );

    // A newer holder's open transaction holds the row: a stale load waits for it, then sees the
    // newer token and writes nothing.
    let mut newer = db.conn().await.expect("conn");
    newer
        .query_drop(
            "BEGIN; UPDATE retl.retl_fence SET token = 20 WHERE pipeline_id = 1; \
             UPDATE shop.orders SET note = 'newer' WHERE id = 3",
        )
        .await
        .expect("newer holder's transaction");
    let load = tokio::spawn({
        let loader = loader.clone();
        let stop = stop.clone();
        async move {
            loader
                .load(
                    batch(vec![
                        order(Update, 3, Some("stale")),
                        order(Insert, 9, None),
                    ]),
                    fence(1, 12),
                    &stop,
                )
                .await
        }
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    newer.query_drop("COMMIT").await.expect("commit");
    let r = load.await.expect("task");
    assert!(
        matches!(r, Err(LoadError::Fenced { newer: 20, .. })),
        "{r:?}"
    );
    let notes: Vec<(i64, Option<String>)> = db
        .query("SELECT id, note FROM shop.orders WHERE id IN (3, 9) ORDER BY id")
        .await
        .unwrap();
    assert_eq!(notes, [(3, Some("newer".to_string()))]);
    if let Ok(loader) = Arc::try_unwrap(loader) {
        loader.close().await;
    }
}
