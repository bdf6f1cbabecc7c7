//! The MQ-mode workload and its checks, shared by the RabbitMQ and Kafka tests: the same rows,
//! the same expected per-key histories, the same comparison with a TCP client's flat messages.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use canal_server::mq::route::java_hash;
use harness::{MariaDb, ZooKeeper};
use serde_json::Value;

use super::server::{entries, RawClient};

/// Two schemas, three tables.
pub const SCHEMA: &str = "CREATE DATABASE shop; CREATE DATABASE other; \
    CREATE TABLE shop.orders (id INT PRIMARY KEY, v INT); \
    CREATE TABLE shop.items (id INT PRIMARY KEY, n VARCHAR(20)); \
    CREATE TABLE other.logs (id INT PRIMARY KEY, msg VARCHAR(20))";

/// The `[destinations.example.mq]` routing keys of the workload: `shop.orders` to topic
/// `orders` hashed by primary key over 3 partitions, schema `other` to topic `other`, the rest
/// (`shop.items`) to `example`.
pub const ROUTING: &str = "topic = \"example\"\n\
    dynamic_topic = 'orders:shop\\.orders,other'\npartition_hash = 'shop\\.orders:$pk$'\n\
    dynamic_topic_partition_num = \"orders:3\"\n";

/// The partition of `shop.orders` key `id` (Canal's hash).
pub fn partition_of(id: i64) -> usize {
    let h = java_hash("shop") ^ java_hash(&id.to_string());
    ((h as i64).unsigned_abs() % 3) as usize
}

/// A message without the fields that differ between deliveries (`id` = batch id, `ts`).
pub fn identity(m: &Value) -> Value {
    let mut m = m.clone();
    if let Some(o) = m.as_object_mut() {
        o.remove("id");
        o.remove("ts");
    }
    m
}

/// First occurrences only, and how many were repeats.
pub fn dedup(ms: &[Value]) -> (Vec<Value>, usize) {
    let mut seen = BTreeSet::new();
    let mut out = Vec::new();
    for m in ms {
        if seen.insert(identity(m).to_string()) {
            out.push(m.clone());
        }
    }
    let dups = ms.len() - out.len();
    (out, dups)
}

/// Per key, the (type, v) history a partition holds.
pub fn histories(ms: &[Value]) -> BTreeMap<i64, Vec<(String, Option<String>)>> {
    let mut h: BTreeMap<i64, Vec<(String, Option<String>)>> = BTreeMap::new();
    for m in ms.iter().filter(|m| m["isDdl"] == false) {
        let kind = m["type"].as_str().unwrap().to_string();
        for (i, row) in m["data"].as_array().unwrap().iter().enumerate() {
            let id: i64 = row["id"].as_str().unwrap().parse().unwrap();
            let v = row["v"].as_str().map(str::to_string);
            h.entry(id).or_default().push((kind.clone(), v.clone()));
            if let Some(old_id) = m["old"][i]["id"].as_str() {
                // A key change: the old key's history ends with it.
                let old: i64 = old_id.parse().unwrap();
                h.entry(old).or_default().push((format!("{kind}->{id}"), v));
            }
        }
    }
    h
}

/// Phase A: 20 orders inserted and updated, 10 items, 2 logs, an ALTER of orders.
pub async fn phase_a(db: &MariaDb) {
    let ins: Vec<String> = (1..=20).map(|i| format!("({i}, 0)")).collect();
    db.exec(&format!("INSERT INTO shop.orders VALUES {}", ins.join(",")))
        .await
        .unwrap();
    for i in 1..=10 {
        db.exec(&format!("INSERT INTO shop.items VALUES ({i}, 'item{i}')"))
            .await
            .unwrap();
    }
    db.exec("INSERT INTO other.logs VALUES (1, 'a'), (2, 'b')")
        .await
        .unwrap();
    db.exec("UPDATE shop.orders SET v = 1").await.unwrap();
    db.exec("ALTER TABLE shop.orders ADD COLUMN note VARCHAR(10)")
        .await
        .unwrap();
}

/// Phase B (while the broker is down): three updates of orders 1–10, key 5 becomes 105, order
/// 20 deleted, items 11–20.
pub async fn phase_b(db: &MariaDb) {
    for k in 2..=4 {
        db.exec(&format!("UPDATE shop.orders SET v = {k} WHERE id <= 10"))
            .await
            .unwrap();
    }
    db.exec("UPDATE shop.orders SET id = 105 WHERE id = 5")
        .await
        .unwrap();
    db.exec("DELETE FROM shop.orders WHERE id = 20")
        .await
        .unwrap();
    for i in 11..=20 {
        db.exec(&format!("INSERT INTO shop.items VALUES ({i}, 'item{i}')"))
            .await
            .unwrap();
    }
}

fn want(id: i64) -> Vec<(String, Option<String>)> {
    let s = |k: &str, v: i64| (k.to_string(), Some(v.to_string()));
    match id {
        5 => vec![
            s("INSERT", 0),
            s("UPDATE", 1),
            s("UPDATE", 2),
            s("UPDATE", 3),
            s("UPDATE", 4),
            s("UPDATE->105", 4),
        ],
        105 => vec![s("UPDATE", 4)],
        1..=10 => (0..=4)
            .map(|v| s(if v == 0 { "INSERT" } else { "UPDATE" }, v))
            .collect(),
        20 => vec![s("INSERT", 0), s("UPDATE", 1), s("DELETE", 1)],
        _ => vec![s("INSERT", 0), s("UPDATE", 1)],
    }
}

/// Checks what both phases left in the topics: items 1–20 once each in order, one `other`
/// message, and in each `orders` partition only its keys, each key's history complete and in
/// order (the key change reaches the old and the new key's partition), the ALTER in every
/// partition. Returns the deduplicated items and the number of repeats.
pub fn check_workload(
    example: &[Value],
    other: &[Value],
    orders: &[Vec<Value>],
) -> (Vec<Value>, usize) {
    let (items, item_dups) = dedup(example);
    let ids: Vec<i64> = items
        .iter()
        .map(|m| m["data"][0]["id"].as_str().unwrap().parse().unwrap())
        .collect();
    assert_eq!(ids, (1..=20).collect::<Vec<_>>(), "items in order");
    let (others, _) = dedup(other);
    assert_eq!(others.len(), 1);
    assert_eq!(others[0]["data"].as_array().unwrap().len(), 2);

    let mut total_dups = item_dups;
    let mut keys_seen = BTreeSet::new();
    for (p, got) in orders.iter().enumerate() {
        let (ms, dups) = dedup(got);
        total_dups += dups;
        let ddl: Vec<&Value> = ms.iter().filter(|m| m["isDdl"] == true).collect();
        assert_eq!(ddl.len(), 1, "the ALTER reaches partition {p}");
        for (id, history) in histories(&ms) {
            let home = partition_of(id);
            if home == p {
                assert_eq!(history, want(id), "history of key {id} in partition {p}");
                keys_seen.insert(id);
                continue;
            }
            // Only the key change crosses partitions: the old key's partition sees the row
            // leave (with its new values), the new key's partition sees it arrive.
            let moved = [partition_of(5), partition_of(105)];
            assert!(
                (id == 5 || id == 105) && moved.contains(&p),
                "key {id} (partition {home}) in partition {p}"
            );
            let only = if id == 5 { "UPDATE->105" } else { "UPDATE" };
            assert_eq!(history, vec![(only.to_string(), Some("4".to_string()))]);
        }
    }
    assert_eq!(
        keys_seen,
        (1..=20).chain([105]).collect::<BTreeSet<i64>>(),
        "every key arrived"
    );
    if partition_of(5) != partition_of(105) {
        let (ms, _) = dedup(&orders[partition_of(5)]);
        assert!(histories(&ms).contains_key(&5));
    }
    (items, total_dups)
}

/// The flat messages (without `id`/`ts`) `canal-client`'s flat module makes of the first `n`
/// entries TCP client `client_id` reads.
pub async fn tcp_flat(c: &mut RawClient, client_id: &str, n: usize) -> Vec<Value> {
    let mut flat = Vec::new();
    let until = Instant::now() + Duration::from_secs(30);
    while flat.len() < n && Instant::now() < until {
        let m = c.get(client_id, 100, 500).await.unwrap();
        for e in entries(&m) {
            if let Some(f) = canal_client::flat::flat_message(0, &e, 0).unwrap() {
                flat.push(identity(&serde_json::from_str(&f.to_json()).unwrap()));
            }
        }
        if m.batch_id > 0 {
            c.ack(client_id, m.batch_id).await;
        }
    }
    flat
}

/// The HA tests' start: a MariaDB with table `shop.t (id INT PRIMARY KEY)` and a ZooKeeper.
pub async fn shop_t_and_zookeeper() -> (MariaDb, ZooKeeper) {
    let db = MariaDb::start().await.unwrap();
    db.exec("CREATE DATABASE shop; CREATE TABLE shop.t (id INT PRIMARY KEY)")
        .await
        .unwrap();
    (db, ZooKeeper::start().await.unwrap())
}
