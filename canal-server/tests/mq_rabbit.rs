//! MQ mode against a real RabbitMQ and MariaDB: a mixed workload reaches its topics (dynamic
//! topics, `partition_hash` by primary key over three partitions), each key's history is
//! complete and in order within its partition (a primary-key change reaches the old and the new
//! key's partitions), DDL reaches every partition, a flat message is exactly what
//! `canal-client`'s flat module makes of the same entry from a TCP client, and with the broker
//! stopped for 30 s mid-stream nothing is lost and duplicates come only from re-published
//! batches.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use canal_server::mq::route::java_hash;
use common::server::*;
use harness::{MariaDb, RabbitMq};
use lapin::options::{BasicGetOptions, QueueDeclareOptions};
use lapin::types::FieldTable;
use serde_json::Value;

const SCHEMA: &str = "CREATE DATABASE shop; CREATE DATABASE other; \
    CREATE TABLE shop.orders (id INT PRIMARY KEY, v INT); \
    CREATE TABLE shop.items (id INT PRIMARY KEY, n VARCHAR(20)); \
    CREATE TABLE other.logs (id INT PRIMARY KEY, msg VARCHAR(20))";

const QUEUES: [&str; 5] = ["orders.0", "orders.1", "orders.2", "example", "other"];

fn partition_of(id: i64) -> usize {
    let h = java_hash("shop") ^ java_hash(&id.to_string());
    ((h as i64).unsigned_abs() % 3) as usize
}

/// A message without the fields that differ between deliveries (`id` = batch id, `ts`).
fn identity(m: &Value) -> Value {
    let mut m = m.clone();
    if let Some(o) = m.as_object_mut() {
        o.remove("id");
        o.remove("ts");
    }
    m
}

async fn declare(uri: &str) -> lapin::Channel {
    let conn = lapin::Connection::connect(uri, Default::default())
        .await
        .unwrap();
    let ch = conn.create_channel().await.unwrap();
    for q in QUEUES {
        ch.queue_declare(
            q.into(),
            QueueDeclareOptions::durable(),
            FieldTable::default(),
        )
        .await
        .unwrap();
    }
    // The connection closes when dropped: keep it alive with the channel's owner.
    std::mem::forget(conn);
    ch
}

/// Everything in `queue` now.
async fn drain(ch: &lapin::Channel, queue: &str, out: &mut Vec<Value>) {
    while let Some(d) = ch
        .basic_get(queue.into(), BasicGetOptions { no_ack: true })
        .await
        .unwrap()
    {
        out.push(serde_json::from_slice(&d.delivery.data).unwrap());
    }
}

/// First occurrences only, and how many were repeats.
fn dedup(ms: &[Value]) -> (Vec<Value>, usize) {
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
fn histories(ms: &[Value]) -> BTreeMap<i64, Vec<(String, Option<String>)>> {
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workload_reaches_partitions_in_order_and_survives_a_broker_outage() {
    harness::init_tracing();
    let db = MariaDb::start().await.unwrap();
    db.exec(SCHEMA).await.unwrap();
    let mut rabbit = RabbitMq::start().await.unwrap();
    let ch = declare(&rabbit.uri()).await;
    let mq = format!(
        "[destinations.example.mq]\nmode = \"rabbitmq\"\nservers = \"{uri}\"\ntopic = \"example\"\n\
         dynamic_topic = 'orders:shop\\.orders,other'\npartition_hash = 'shop\\.orders:$pk$'\n\
         dynamic_topic_partition_num = \"orders:3\"\nconfirm_timeout_ms = 5000\n\
         connect_timeout_ms = 500\nmax_retry_backoff_ms = 1000\n",
        uri = rabbit.uri()
    );
    let s = ServerProc::start_with(server_bin(), &db, "", "", &mq).await;
    wait_streaming(&s).await;
    // A TCP client reading the same entries (subscribed now, so it sees them all).
    let mut c = RawClient::subscribed(&s.addr(), "7", "shop\\.items").await;

    // Phase A, broker up.
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
    // Wait until phase A is in the broker, so the outage starts mid-stream.
    let mut got: BTreeMap<&str, Vec<Value>> = QUEUES.iter().map(|q| (*q, Vec::new())).collect();
    let until = Instant::now() + Duration::from_secs(60);
    while got["example"].len() < 10 && Instant::now() < until {
        for q in QUEUES {
            drain(&ch, q, got.get_mut(q).unwrap()).await;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(got["example"].len(), 10, "phase A items: {}", s.log());

    // Phase B, broker stopped for 30 s.
    rabbit.stop().unwrap();
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
    tokio::time::sleep(Duration::from_secs(3)).await;
    let health = http_get(s.admin_port, "/health").await.unwrap();
    assert!(
        health.contains("\"state\":\"retrying\""),
        "/health shows the producer retrying: {health}"
    );
    tokio::time::sleep(Duration::from_secs(27)).await;
    rabbit.restart().await.unwrap();
    let ch = declare(&rabbit.uri()).await;

    // Everything arrives.
    let until = Instant::now() + Duration::from_secs(120);
    loop {
        for q in QUEUES {
            drain(&ch, q, got.get_mut(q).unwrap()).await;
        }
        let (items, _) = dedup(&got["example"]);
        if items.len() >= 20 || Instant::now() > until {
            break;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    // Let the orders partitions catch up too (they were published before the last items).
    for q in QUEUES {
        drain(&ch, q, got.get_mut(q).unwrap()).await;
    }

    // Items: every row once after dedup, in order.
    let (items, item_dups) = dedup(&got["example"]);
    let ids: Vec<i64> = items
        .iter()
        .map(|m| m["data"][0]["id"].as_str().unwrap().parse().unwrap())
        .collect();
    assert_eq!(ids, (1..=20).collect::<Vec<_>>(), "{}", s.log());
    // Other: the dynamic topic named after the schema.
    let (others, _) = dedup(&got["other"]);
    assert_eq!(others.len(), 1);
    assert_eq!(others[0]["data"].as_array().unwrap().len(), 2);

    // Orders: per partition, only its keys, each key's history complete and in order.
    let mut total_dups = item_dups;
    let want = |id: i64| -> Vec<(String, Option<String>)> {
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
    };
    let mut keys_seen = BTreeSet::new();
    for p in 0..3 {
        let q = format!("orders.{p}");
        let (ms, dups) = dedup(&got[q.as_str()]);
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
        let old_p = partition_of(5);
        let (ms, _) = dedup(&got[format!("orders.{old_p}").as_str()]);
        assert!(histories(&ms).contains_key(&5));
    }
    // Duplicates come only from re-published batches: at most a batch's worth per outage.
    assert!(total_dups <= 60, "{total_dups} duplicates");

    // A flat message is what canal-client's flat module makes of the same entry read over TCP.
    let mut flat = Vec::new();
    let until = Instant::now() + Duration::from_secs(30);
    while flat.len() < 20 && Instant::now() < until {
        let m = c.get("7", 100, 500).await.unwrap();
        for e in entries(&m) {
            if let Some(f) = canal_client::flat::flat_message(0, &e, 0).unwrap() {
                flat.push(identity(&serde_json::from_str(&f.to_json()).unwrap()));
            }
        }
        if m.batch_id > 0 {
            c.ack("7", m.batch_id).await;
        }
    }
    let mq_items: Vec<Value> = items.iter().map(identity).collect();
    assert_eq!(flat, mq_items, "flat messages equal canal-client's");
    // The raw JSON has Canal's field order.
    let raw = serde_json::to_string(&got["example"][0]).unwrap();
    assert!(raw.starts_with("{\"data\":[{\"id\":\"1\",\"n\":\"item1\"}],\"database\":\"shop\""));
}
