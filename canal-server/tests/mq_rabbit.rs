//! MQ mode against a real RabbitMQ and MariaDB: a mixed workload reaches its topics (dynamic
//! topics, `partition_hash` by primary key over three partitions), each key's history is
//! complete and in order within its partition (a primary-key change reaches the old and the new
//! key's partitions), DDL reaches every partition, a flat message is exactly what
//! `canal-client`'s flat module makes of the same entry from a TCP client, and with the broker
//! stopped for 30 s mid-stream nothing is lost and duplicates come only from re-published
//! batches. The workload and its checks are `common::mq`'s, shared with the Kafka test.

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::mq::*;
use common::server::*;
use harness::{MariaDb, RabbitMq};
use lapin::options::{BasicGetOptions, QueueDeclareOptions};
use lapin::types::FieldTable;
use serde_json::Value;

const QUEUES: [&str; 5] = ["orders.0", "orders.1", "orders.2", "example", "other"];

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workload_reaches_partitions_in_order_and_survives_a_broker_outage() {
    harness::init_tracing();
    let db = MariaDb::start().await.unwrap();
    db.exec(SCHEMA).await.unwrap();
    let mut rabbit = RabbitMq::start().await.unwrap();
    let ch = declare(&rabbit.uri()).await;
    let mq = format!(
        "[destinations.example.mq]\nmode = \"rabbitmq\"\nservers = \"{uri}\"\n{ROUTING}\
         confirm_timeout_ms = 5000\nconnect_timeout_ms = 500\nmax_retry_backoff_ms = 1000\n",
        uri = rabbit.uri()
    );
    let s = ServerProc::start_with(server_bin(), &db, "", "", &mq).await;
    wait_streaming(&s).await;
    // A TCP client reading the same entries (subscribed now, so it sees them all).
    let mut c = RawClient::subscribed(&s.addr(), "7", "shop\\.items").await;

    // Phase A, broker up.
    phase_a(&db).await;
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
    phase_b(&db).await;
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

    let orders: Vec<Vec<Value>> = (0..3)
        .map(|p| got[format!("orders.{p}").as_str()].clone())
        .collect();
    let (items, total_dups) = check_workload(&got["example"], &got["other"], &orders);
    // Duplicates come only from re-published batches: at most a batch's worth per outage.
    assert!(total_dups <= 60, "{total_dups} duplicates");

    // A flat message is what canal-client's flat module makes of the same entry read over TCP.
    let flat = tcp_flat(&mut c, "7", 20).await;
    let mq_items: Vec<Value> = items.iter().map(identity).collect();
    assert_eq!(flat, mq_items, "flat messages equal canal-client's");
    // The raw JSON has Canal's field order.
    let raw = serde_json::to_string(&got["example"][0]).unwrap();
    assert!(raw.starts_with("{\"data\":[{\"id\":\"1\",\"n\":\"item1\"}],\"database\":\"shop\""));
}
