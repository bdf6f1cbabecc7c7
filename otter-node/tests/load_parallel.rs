//! Load spreading one table over several connections by key, against real MariaDBs: each key
//! ends with its last value, a table with a unique secondary key stays on one connection (its
//! values move between rows safely), replays change nothing, and a pipeline whose ZooKeeper
//! freezes for a moment and whose load node is then killed with kill -9 during parallel loads
//! still ends row for row equal.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::shop::{channel, publish, source, target, wait_equal};
use common::Node;
use harness::{MariaDb, TestDir, ZooKeeper};
use otter_node::batch::{ColumnValue, LoadBatch, RowEvent, RowKind};
use otter_node::model::TargetDb;
use otter_node::pipeline::load::{Fence, Loader};
use tokio_util::sync::CancellationToken;

const FENCE: Fence = Fence {
    pipeline: 1,
    token: 1,
};

fn col(name: &str, value: Option<String>, sql_type: i32, is_key: bool) -> ColumnValue {
    ColumnValue {
        name: name.into(),
        value,
        sql_type,
        is_key,
    }
}

/// A row of `shop.<table>` with key `id` and the other columns given as (name, value).
fn row(table: &str, kind: RowKind, id: i64, cols: &[(&str, String)]) -> RowEvent {
    let mut columns = vec![col("id", Some(id.to_string()), -5, true)];
    columns.extend(
        cols.iter()
            .map(|(n, v)| col(n, Some(v.clone()), if *n == "v" { 4 } else { 12 }, false)),
    );
    RowEvent {
        schema: "shop".into(),
        table: table.into(),
        kind,
        columns,
        old_keys: None,
        before: None,
        history: Vec::new(),
        weight: 1,
        execute_time: 0,
    }
}

fn big(kind: RowKind, id: i64, v: i64) -> RowEvent {
    row(
        "big",
        kind,
        id,
        &[("v", v.to_string()), ("note", format!("n{id}-{v}"))],
    )
}

/// The big table's batch and what the target holds after it: 8000 inserts; every 7th key updated
/// three times; every 11th deleted; every 13th (not deleted) moved to a new key and updated there.
fn big_batch() -> (Vec<RowEvent>, BTreeMap<i64, i64>) {
    use RowKind::*;
    let mut rows = Vec::new();
    let mut want = BTreeMap::new();
    for id in 0..8000 {
        rows.push(big(Insert, id, 0));
        want.insert(id, 0);
    }
    for round in 1..=3 {
        for id in (0..8000).step_by(7) {
            rows.push(big(Update, id, round));
            want.insert(id, round);
        }
    }
    for id in (0..8000).step_by(11) {
        rows.push(big(Delete, id, *want.get(&id).unwrap_or(&0)));
        want.remove(&id);
    }
    for id in (0..8000).step_by(13).filter(|id| id % 11 != 0) {
        let v = want.remove(&id).unwrap_or(0);
        let mut moved = big(Update, id + 100_000, v);
        moved.old_keys = Some(vec![col("id", Some(id.to_string()), -5, true)]);
        rows.push(moved);
        rows.push(big(Update, id + 100_000, 7));
        want.insert(id + 100_000, 7);
    }
    (rows, want)
}

/// The unique table's batch: keys 0..999 deleted, their e-mails taken by new keys 2000..2999,
/// keys 1000..1999 given new e-mails. Loaded out of order on two connections, an upsert of a new
/// key meeting an old owner of its e-mail would overwrite that row.
fn uniq_batch() -> Vec<RowEvent> {
    use RowKind::*;
    let mut rows = Vec::new();
    for id in 0..1000 {
        rows.push(row("uniq", Delete, id, &[("email", format!("e{id}"))]));
    }
    for id in 2000..3000 {
        rows.push(row(
            "uniq",
            Insert,
            id,
            &[("email", format!("e{}", id - 2000))],
        ));
    }
    for id in 1000..2000 {
        rows.push(row("uniq", Update, id, &[("email", format!("f{id}"))]));
    }
    rows
}

fn uniq_want() -> Vec<(i64, String)> {
    (1000..2000)
        .map(|id| (id, format!("f{id}")))
        .chain((2000..3000).map(|id| (id, format!("e{}", id - 2000))))
        .collect()
}

async fn big_rows(db: &MariaDb) -> BTreeMap<i64, i64> {
    let rows: Vec<(i64, i64, String)> = db
        .query("SELECT id, v, note FROM shop.big ORDER BY id")
        .await
        .unwrap();
    for (id, v, note) in &rows {
        // The note travels with the row's value: no column from another key's image.
        let origin = if *id >= 100_000 { id - 100_000 } else { *id };
        let expect = if *v == 7 {
            format!("n{id}-7")
        } else {
            format!("n{origin}-{v}")
        };
        assert_eq!(*note, expect, "row {id}");
    }
    rows.into_iter().map(|(id, v, _)| (id, v)).collect()
}

async fn uniq_rows(db: &MariaDb) -> Vec<(i64, String)> {
    db.query("SELECT id, email FROM shop.uniq ORDER BY id")
        .await
        .unwrap()
}

/// Transactions Load committed for the default mark (pipeline 0): the sum of its slots' `seq`.
async fn transactions(db: &MariaDb) -> i64 {
    let n: Vec<Option<i64>> = db
        .query("SELECT SUM(seq) FROM retl.retl_mark WHERE id < 64")
        .await
        .unwrap();
    n.first().copied().flatten().unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_table_spreads_over_connections_and_unique_keys_stay_on_one() {
    harness::init_tracing();
    let db = MariaDb::start().await.unwrap();
    db.exec(
        "CREATE DATABASE shop;
         CREATE TABLE shop.big (id BIGINT PRIMARY KEY, v INT, note VARCHAR(40));
         CREATE TABLE shop.uniq (id BIGINT PRIMARY KEY, email VARCHAR(40) NOT NULL UNIQUE);
         INSERT INTO shop.uniq SELECT seq, CONCAT('e', seq) FROM shop.seq_0_to_1999;",
    )
    .await
    .unwrap();
    let target = TargetDb {
        address: db.addr().to_string(),
        username: "root".into(),
        password: String::new(),
        site: String::new(),
        tls: Default::default(),
    };
    let loader = Loader::new(&target).unwrap().spreading(&target, 4).unwrap();
    let stop = CancellationToken::new();
    let (mut rows, want) = big_batch();
    rows.extend(uniq_batch());
    let batch = LoadBatch {
        rows,
        ..Default::default()
    };
    let stats = loader.load(batch.clone(), FENCE, &stop).await.unwrap();
    assert_eq!(stats.retries, 0, "{stats:?}");
    assert_eq!(big_rows(&db).await, want);
    assert_eq!(uniq_rows(&db).await, uniq_want());
    // shop.big went out as four transactions (its 8000 keys are enough for four connections),
    // shop.uniq as one: five marks written.
    assert_eq!(transactions(&db).await, 5);

    // The same batch again changes nothing, spread the same way.
    loader.load(batch, FENCE, &stop).await.unwrap();
    assert_eq!(big_rows(&db).await, want);
    assert_eq!(uniq_rows(&db).await, uniq_want());
    assert_eq!(transactions(&db).await, 10);

    // A loader that does not spread writes each table in one transaction.
    let single = Loader::new(&target).unwrap();
    let small = LoadBatch {
        rows: (0..3000).map(|id| big(RowKind::Update, id, 9)).collect(),
        ..Default::default()
    };
    single.load(small, FENCE, &stop).await.unwrap();
    assert_eq!(transactions(&db).await, 11);
    loader.close().await;
    single.close().await;
}

/// Orders in bulk on the source: one statement inserting `n` rows from `from`, then updates of
/// every third key five times, then deletes of every tenth: each batch changes many keys many
/// times.
async fn bulk(src: &MariaDb, from: i64, n: i64) {
    let to = from + n - 1;
    src.exec(&format!(
        "INSERT INTO shop.orders (id, user_id, amount, note) \
           SELECT seq, seq % 100, seq * 1.5, CONCAT('bulk ', seq) FROM shop.seq_{from}_to_{to};"
    ))
    .await
    .unwrap();
    for round in 0..5 {
        src.exec(&format!(
            "UPDATE shop.orders SET amount = amount + 1, note = CONCAT(note, '.{round}') \
             WHERE id BETWEEN {from} AND {to} AND id % 3 = 0"
        ))
        .await
        .unwrap();
    }
    src.exec(&format!(
        "DELETE FROM shop.orders WHERE id BETWEEN {from} AND {to} AND id % 10 = 0"
    ))
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill9_of_a_load_node_during_parallel_loads_ends_row_for_row_equal() {
    harness::init_tracing();
    let (src, dst) = (source().await, target().await);
    let mut zk = ZooKeeper::start().await.unwrap();
    let mut c = channel(&src, &dst, &[1], &[2, 3]).await;
    c.pipeline.batch_size = 4000;
    c.pipeline.load_connections = 4;
    publish(&zk, &c).await;
    let dir = TestDir::new("otter-parallel-load").unwrap();
    let n1 = Node::start(&dir, 1, &zk);
    let mut n2 = Node::start(&dir, 2, &zk);
    bulk(&src, 1, 20_000).await;
    // Node 2, the only load node so far, spreads shop_dr.orders over connections.
    n2.wait_log("spread=true", Duration::from_secs(60), &[&n1, &n2])
        .await;
    let n3 = Node::start(&dir, 3, &zk);
    // ZooKeeper frozen for 1.2 s while the rows go in: every node's sessions lose their
    // connections (800 ms without an answer) and come back in the same sessions. (The nodes'
    // views of the process window once stopped following here: the client library does not
    // restore persistent watches.)
    let freeze = async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        zk.member_mut(0).pause().unwrap();
        tokio::time::sleep(Duration::from_millis(1200)).await;
        zk.member_mut(0).resume().unwrap();
    };
    tokio::join!(bulk(&src, 100_001, 40_000), freeze);
    n2.kill9();
    bulk(&src, 200_001, 20_000).await;
    wait_equal(&src, &dst, Duration::from_secs(180), &[&n1, &n2, &n3]).await;
    // Node 3 took Load over, spreading too.
    assert!(n3.log().contains("spread=true"), "{}", n3.log());
}
