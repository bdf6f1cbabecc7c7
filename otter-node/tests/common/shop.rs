//! The one-way pipeline tests' shop: a source with `shop` tables, a target with the renamed
//! `shop_dr` ones, the example channel pointed at them, workloads, and the row-for-row comparison
//! through the channel's mappings.

use std::time::{Duration, Instant};

use harness::{MariaDb, MariaDbOptions, ZooKeeper};
use otter_node::model::{Channel, ChannelStatus};

use super::Node;

pub async fn source() -> MariaDb {
    source_with(MariaDbOptions::default()).await
}

pub async fn source_with(options: MariaDbOptions) -> MariaDb {
    let db = MariaDb::start_with(options).await.unwrap();
    db.exec(
        "CREATE DATABASE shop;
         CREATE TABLE shop.user (id INT PRIMARY KEY, email VARCHAR(60), name VARCHAR(40),
           password_hash VARBINARY(32), balance DECIMAL(12,2), born DATE);
         CREATE TABLE shop.orders (id BIGINT PRIMARY KEY, user_id INT, amount DOUBLE, note TEXT);
         CREATE TABLE shop.order_line (order_id BIGINT, line INT, qty INT, PRIMARY KEY (order_id, line));
         CREATE TABLE shop.ignored (id INT PRIMARY KEY)",
    )
    .await
    .unwrap();
    db
}

pub async fn target() -> MariaDb {
    target_with(MariaDbOptions::default()).await
}

pub async fn target_with(options: MariaDbOptions) -> MariaDb {
    let db = MariaDb::start_with(options).await.unwrap();
    db.exec(
        "CREATE DATABASE shop_dr;
         CREATE TABLE shop_dr.customer (id INT PRIMARY KEY, email VARCHAR(60), name VARCHAR(40),
           balance DECIMAL(12,2), born DATE);
         CREATE TABLE shop_dr.orders (id BIGINT PRIMARY KEY, user_id INT, amount DOUBLE, note TEXT);
         CREATE TABLE shop_dr.order_line (order_id BIGINT, line INT, qty INT, PRIMARY KEY (order_id, line))",
    )
    .await
    .unwrap();
    db
}

/// The example channel pointed at these servers and nodes, starting at the source's current end.
pub async fn channel(src: &MariaDb, dst: &MariaDb, select: &[u32], load: &[u32]) -> Channel {
    let text = include_str!("../../../config/channel.toml");
    let mut c = Channel::from_toml(text).unwrap();
    let user = src.replication_user().cloned().unwrap_or_default();
    let start = src.master_status().await.unwrap();
    let p = &mut c.pipeline;
    p.source.address = src.addr().to_string();
    p.source.username = user.user;
    p.source.password = user.password;
    p.source.journal_name = start.file;
    p.source.position = Some(start.position);
    p.target.address = dst.addr().to_string();
    p.target.username = "root".into();
    p.target.password = String::new();
    p.select_nodes = select.to_vec();
    p.load_nodes = load.to_vec();
    p.batch_size = 200;
    c.status = ChannelStatus::Started;
    c
}

pub async fn publish(zk: &ZooKeeper, c: &Channel) {
    let client = zk.client(Duration::from_secs(10)).await.unwrap();
    zk_coord::put_persistent(&client, &zk_coord::otter_paths::channel(c.id), &c.to_json())
        .await
        .unwrap();
}

/// A few hundred changes over every mapped table: inserts, updates, deletes, a primary-key change,
/// multi-row statements, NULLs, binary and odd text; `round` makes ids of each call distinct.
pub async fn workload(db: &MariaDb, round: i64) {
    let base = round * 1000;
    for i in 0..40 {
        let id = base + i;
        db.exec(&format!(
            "INSERT INTO shop.user VALUES ({id}, 'u{id}@x', 'name''{id}\\\\', X'00ff{i:02x}', {i}.25, '2001-02-03');
             INSERT INTO shop.orders VALUES ({id}, {id}, {i}.5, 'o{id}'), ({id} + 500, {id}, NULL, 'ünï😀');
             INSERT INTO shop.order_line VALUES ({id}, 1, 1), ({id}, 2, 2), ({id}, 3, 3);
             INSERT INTO shop.ignored VALUES ({id})"
        ))
        .await
        .unwrap();
    }
    db.exec(&format!(
        "UPDATE shop.user SET name = CONCAT(name, '-x'), balance = balance * 2 WHERE id BETWEEN {base} AND {base} + 19;
         UPDATE shop.user SET password_hash = X'01' WHERE id = {base};
         DELETE FROM shop.user WHERE id BETWEEN {base} + 30 AND {base} + 34;
         UPDATE shop.orders SET id = id + 100 WHERE id = {base} + 5;
         UPDATE shop.order_line SET line = line + 10 WHERE order_id = {base} + 6;
         DELETE FROM shop.order_line WHERE order_id = {base} + 7 AND line = 2;
         INSERT INTO shop.user VALUES ({base} + 30, 'back@x', NULL, NULL, NULL, NULL);
         UPDATE shop.orders SET note = NULL, amount = -1.5e10 WHERE user_id = {base} + 8"
    ))
    .await
    .unwrap();
}

/// Source and target rows, through the pipeline's mappings (customer drops password_hash).
pub async fn snapshot(src: &MariaDb, dst: &MariaDb) -> (Vec<String>, Vec<String>) {
    let q = |table: &str, cols: &str, key: &str| {
        format!("SELECT CONCAT_WS('|', {cols}) FROM {table} ORDER BY {key}")
    };
    let parts = [
        (
            "shop.user",
            "shop_dr.customer",
            "id, IFNULL(email,'∅'), IFNULL(name,'∅'), IFNULL(balance,'∅'), IFNULL(born,'∅')",
            "id",
        ),
        (
            "shop.orders",
            "shop_dr.orders",
            "id, user_id, IFNULL(amount,'∅'), IFNULL(note,'∅')",
            "id",
        ),
        (
            "shop.order_line",
            "shop_dr.order_line",
            "order_id, line, qty",
            "order_id, line",
        ),
    ];
    let (mut a, mut b) = (Vec::new(), Vec::new());
    for (s, t, cols, key) in parts {
        a.push(format!("-- {s}"));
        b.push(format!("-- {s}"));
        a.extend(src.query::<String>(&q(s, cols, key)).await.unwrap());
        b.extend(
            dst.query::<String>(&q(t, cols, key))
                .await
                .unwrap_or_default(),
        );
    }
    (a, b)
}

pub async fn wait_equal(src: &MariaDb, dst: &MariaDb, limit: Duration, nodes: &[&Node]) {
    let t = Instant::now();
    loop {
        let (a, b) = snapshot(src, dst).await;
        if a == b && a.len() > 3 {
            return;
        }
        if t.elapsed() > limit {
            let missing: Vec<_> = a.iter().filter(|r| !b.contains(r)).take(10).collect();
            let extra: Vec<_> = b.iter().filter(|r| !a.contains(r)).take(10).collect();
            for n in nodes {
                eprintln!("---- {}\n{}", n.log.display(), n.log());
            }
            panic!("target differs after {limit:?}: missing {missing:?}, extra {extra:?}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Random single-row changes of `shop.orders` and `shop.user` (ids below 3 000) until `stop`.
pub async fn keep_changing(
    mut conn: mysql_async::Conn,
    stop: tokio_util::sync::CancellationToken,
) -> u64 {
    use mysql_async::prelude::Queryable;
    let mut x: u64 = 0x2545_f491;
    let mut n = 0;
    while !stop.is_cancelled() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let id = x % 3000 + 1;
        let sql = match x % 5 {
            0 => format!("UPDATE shop.orders SET note = 'changed {n}', amount = amount + 1 WHERE id = {id}"),
            1 => format!("DELETE FROM shop.orders WHERE id = {id}"),
            2 => format!("INSERT INTO shop.orders VALUES ({id}, {n}, 1.5, 'again {n}') ON DUPLICATE KEY UPDATE note = 'upsert {n}'"),
            3 => format!("UPDATE shop.user SET name = 'n{n}', balance = balance + 1 WHERE id = {}", id % 2000 + 1),
            _ => format!("UPDATE shop.orders SET id = {} WHERE id = {id}", 100_000 + n),
        };
        let _ = conn.query_drop(sql).await;
        n += 1;
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    n
}
