//! MQ mode against a real Kafka-protocol broker (tansu) and MariaDB, with the RabbitMQ test's
//! workload and checks (`common::mq`): dynamic topics and `partition_hash` by primary key over
//! three Kafka partitions hold each key's history complete and in order (a primary-key change
//! reaches the old and the new key's partition), DDL reaches every partition, a flat message is
//! exactly what `canal-client`'s flat module makes of the same entry from a TCP client, and with
//! the broker stopped for 30 s mid-stream nothing is lost and duplicates come only from
//! re-published batches. Two tests kill the active server of an HA pair: mid-stream (the standby
//! publishes from the last confirmed cursor) and before its first batch (nothing is skipped). Consumed with `rskafka`, the producer's crate.

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::mq::*;
use common::server::*;
use harness::{Kafka, MariaDb, ZooKeeper};
use rskafka::client::partition::UnknownTopicHandling;
use rskafka::client::{Client, ClientBuilder};
use serde_json::Value;

/// The topics and partitions the workload writes to.
const TOPICS: [(&str, i32); 3] = [("orders", 3), ("example", 1), ("other", 1)];

async fn client(kafka: &Kafka) -> Client {
    ClientBuilder::new(vec![kafka.bootstrap()])
        .build()
        .await
        .unwrap()
}

async fn create_topics(c: &Client, topics: &[(&str, i32)]) {
    let controller = c.controller_client().unwrap();
    for (t, n) in topics {
        controller.create_topic(*t, *n, 1, 5_000).await.unwrap();
    }
}

/// Reads one topic partition from `offsets[(topic, p)]` to its high watermark.
#[derive(Default)]
struct Consumer {
    offsets: BTreeMap<(String, i32), i64>,
    got: BTreeMap<(String, i32), Vec<Value>>,
}

impl Consumer {
    async fn poll(&mut self, c: &Client, topic: &str, p: i32) {
        let key = (topic.to_string(), p);
        let pc = c
            .partition_client(topic, p, UnknownTopicHandling::Retry)
            .await
            .unwrap();
        loop {
            let offset = *self.offsets.get(&key).unwrap_or(&0);
            let (records, high) = pc.fetch_records(offset, 1..4_000_000, 50).await.unwrap();
            let out = self.got.entry(key.clone()).or_default();
            for r in &records {
                let value = r.record.value.as_deref().unwrap_or_default();
                out.push(serde_json::from_slice(value).unwrap());
                self.offsets.insert(key.clone(), r.offset + 1);
            }
            if records.is_empty() || *self.offsets.get(&key).unwrap_or(&0) >= high {
                break;
            }
        }
    }

    async fn poll_all(&mut self, c: &Client, topics: &[(&str, i32)]) {
        for (t, n) in topics {
            for p in 0..*n {
                self.poll(c, t, p).await;
            }
        }
    }

    fn of(&self, topic: &str, p: i32) -> Vec<Value> {
        self.got
            .get(&(topic.to_string(), p))
            .cloned()
            .unwrap_or_default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workload_reaches_partitions_in_order_and_survives_a_broker_outage() {
    harness::init_tracing();
    let db = MariaDb::start().await.unwrap();
    db.exec(SCHEMA).await.unwrap();
    let mut kafka = Kafka::start().await.unwrap();
    let kc = client(&kafka).await;
    create_topics(&kc, &TOPICS).await;
    let mq = format!(
        "[destinations.example.mq]\nmode = \"kafka\"\nservers = \"{servers}\"\n{ROUTING}\
         compression = \"gzip\"\nconfirm_timeout_ms = 5000\nconnect_timeout_ms = 500\n\
         max_retry_backoff_ms = 1000\nmax_message_bytes = 1048576\n",
        servers = kafka.bootstrap()
    );
    let s = ServerProc::start_with(server_bin(), &db, "", "", &mq).await;
    wait_streaming(&s).await;
    // A TCP client reading the same entries (subscribed now, so it sees them all).
    let mut c = RawClient::subscribed(&s.addr(), "7", "shop\\.items").await;

    // Phase A, broker up.
    phase_a(&db).await;
    let mut cons = Consumer::default();
    let until = Instant::now() + Duration::from_secs(60);
    while cons.of("example", 0).len() < 10 && Instant::now() < until {
        cons.poll_all(&kc, &TOPICS).await;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(
        cons.of("example", 0).len(),
        10,
        "phase A items: {}",
        s.log()
    );
    let health = http_get(s.admin_port, "/health").await.unwrap();
    assert!(health.contains("\"mode\":\"kafka\""), "{health}");
    drop(kc);

    // Phase B, broker stopped for 30 s.
    let stopped = Instant::now();
    kafka.stop().unwrap();
    phase_b(&db).await;
    // The client retries inside a request until `confirm_timeout_ms` (5 s) before the
    // publisher sees the failure.
    let mut health = String::new();
    while stopped.elapsed() < Duration::from_secs(20) {
        health = http_get(s.admin_port, "/health").await.unwrap();
        if health.contains("\"state\":\"retrying\"") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(
        health.contains("\"state\":\"retrying\""),
        "/health shows the producer retrying: {health}"
    );
    tokio::time::sleep(Duration::from_secs(30).saturating_sub(stopped.elapsed())).await;
    kafka.restart().await.unwrap();
    let kc = client(&kafka).await;

    // Everything arrives.
    let until = Instant::now() + Duration::from_secs(120);
    loop {
        cons.poll_all(&kc, &TOPICS).await;
        let (items, _) = dedup(&cons.of("example", 0));
        if items.len() >= 20 || Instant::now() > until {
            break;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    cons.poll_all(&kc, &TOPICS).await;

    let orders: Vec<Vec<Value>> = (0..3).map(|p| cons.of("orders", p)).collect();
    let (items, total_dups) = check_workload(&cons.of("example", 0), &cons.of("other", 0), &orders);
    println!("Kafka outage: {total_dups} repeated messages after the broker came back");
    assert!(total_dups <= 60, "{total_dups} duplicates");

    // A flat message is what canal-client's flat module makes of the same entry read over TCP.
    let flat = tcp_flat(&mut c, "7", 20).await;
    let mq_items: Vec<Value> = items.iter().map(identity).collect();
    assert_eq!(flat, mq_items, "flat messages equal canal-client's");
    let raw = serde_json::to_string(&cons.of("example", 0)[0]).unwrap();
    assert!(raw.starts_with("{\"data\":[{\"id\":\"1\",\"n\":\"item1\"}],\"database\":\"shop\""));
    let health = http_get(s.admin_port, "/health").await.unwrap();
    assert!(health.contains("\"state\":\"publishing\""), "{health}");
}

/// An HA pair's surroundings: MariaDB with `shop.t`, ZooKeeper, a broker with topic `example`
/// (one partition), a client of it, and the servers' extra config publishing there.
struct Ha {
    db: MariaDb,
    zk: ZooKeeper,
    _kafka: Kafka,
    kc: Client,
    extra: String,
}

impl Ha {
    async fn start() -> Ha {
        harness::init_tracing();
        let (db, zk) = shop_t_and_zookeeper().await;
        let kafka = Kafka::start().await.unwrap();
        let kc = client(&kafka).await;
        create_topics(&kc, &[("example", 1)]).await;
        let extra = ha_extra(&zk, &kafka);
        Ha {
            db,
            zk,
            _kafka: kafka,
            kc,
            extra,
        }
    }

    /// One server of the pair (cursors written on every ack).
    async fn server(&self) -> ServerProc {
        ServerProc::start_with(
            server_bin(),
            &self.db,
            "flush_period_ms = 0\n",
            "",
            &self.extra,
        )
        .await
    }
}

/// The server config of an HA pair publishing table `shop.t` to topic `example`.
fn ha_extra(zk: &ZooKeeper, kafka: &Kafka) -> String {
    format!(
        "[zookeeper]\nservers = \"{zk}\"\nsession_timeout_ms = 2000\nconnect_timeout_ms = 1000\ngrace_ms = 2000\n\
         [destinations.example.mq]\nmode = \"kafka\"\nservers = \"{servers}\"\nbatch_size = 4\n\
         connect_timeout_ms = 500\n",
        zk = zk.connect_string(),
        servers = kafka.bootstrap()
    )
}

/// The ids of `shop.t` rows on topic `example`, in topic order, once the last is `last` (or
/// after two minutes).
async fn topic_ids(kc: &Client, last: i64) -> Vec<i64> {
    let mut cons = Consumer::default();
    let until = Instant::now() + Duration::from_secs(120);
    loop {
        cons.poll(kc, "example", 0).await;
        let ids: Vec<i64> = cons
            .of("example", 0)
            .iter()
            .flat_map(|v| v["data"].as_array().cloned().unwrap_or_default())
            .map(|row| row["id"].as_str().unwrap().parse().unwrap())
            .collect();
        if ids.last() == Some(&last) || Instant::now() > until {
            return ids;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill9_of_the_active_standby_publishes_from_the_last_confirmed_cursor() {
    let ha = Ha::start().await;
    let mut a = ha.server().await;
    let zc = ha.zk.client(Duration::from_secs(10)).await.unwrap();
    wait_running_at(&zc, &a.addr()).await;
    wait_streaming(&a).await;
    let b = ha.server().await;
    let standby = http_get(b.admin_port, "/health").await.unwrap();
    assert!(
        !standby.contains("\"producer\""),
        "the standby does not publish: {standby}"
    );

    for id in 1..=150 {
        ha.db
            .exec(&format!("INSERT INTO shop.t VALUES ({id})"))
            .await
            .unwrap();
        if id == 25 {
            a.kill9();
        }
    }
    wait_running_at(&zc, &b.addr()).await;

    let ids = topic_ids(&ha.kc, 150).await;
    // The received ids are 1..=k from the old active, then j..=150 from the standby, j ≤ k + 1:
    // nothing skipped, repeats only of the tail the old active had not recorded as confirmed.
    let restart = ids.windows(2).position(|w| w[1] != w[0] + 1);
    let (k, j) = match restart {
        Some(i) => (ids[i], ids[i + 1]),
        None => (*ids.last().unwrap_or(&0), ids.last().unwrap_or(&0) + 1),
    };
    let want: Vec<i64> = (1..=k).chain(j..=150).collect();
    assert_eq!(ids, want, "one restart point; {}", b.log());
    assert!(j <= k + 1, "nothing skipped (k = {k}, j = {j})");
    println!(
        "HA Kafka: the topic restarts at {j} after {k}: {} repeated rows",
        k + 1 - j
    );
    let health = http_get(b.admin_port, "/health").await.unwrap();
    assert!(health.contains("\"state\":\"publishing\""), "{health}");
}

/// The active server is killed as soon as it streams, before its publisher saw any row; rows
/// are then written while no server runs. The successor publishes all of them: the first
/// server stored where its stream began before it read an event. (It used to store that with
/// its publisher's first batch, so this successor found no cursor, started at the end of the
/// binlog and skipped every row here.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill9_before_the_first_batch_skips_nothing() {
    let ha = Ha::start().await;
    let zc = ha.zk.client(Duration::from_secs(10)).await.unwrap();
    let mut a = ha.server().await;
    wait_running_at(&zc, &a.addr()).await;
    wait_streaming(&a).await;
    a.kill9();
    for id in 1..=20 {
        ha.db
            .exec(&format!("INSERT INTO shop.t VALUES ({id})"))
            .await
            .unwrap();
    }
    let b = ha.server().await;
    wait_running_at(&zc, &b.addr()).await;
    let ids = topic_ids(&ha.kc, 20).await;
    assert_eq!(ids, (1..=20).collect::<Vec<i64>>(), "{}", b.log());
}

/// What the test broker does with the requests the producer sends: which compression codecs
/// it accepts and gives back in produce order, and whether a produce to a topic never created
/// is refused (the publisher then retries and shows why). Found with tansu 0.6: none, gzip, lz4
/// and zstd round-trip; snappy is accepted but fetches back nothing; an unknown topic gets
/// `UnknownTopicOrPartition` (no auto-create).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_capabilities() {
    use rskafka::client::partition::Compression;
    use rskafka::record::Record;
    harness::init_tracing();
    let kafka = Kafka::start().await.unwrap();
    let kc = ClientBuilder::new(vec![kafka.bootstrap()])
        .backoff_config(rskafka::BackoffConfig {
            deadline: Some(Duration::from_secs(5)),
            ..Default::default()
        })
        .build()
        .await
        .unwrap();
    let record = |v: &str| Record {
        key: None,
        value: Some(format!("{{\"v\":\"{v}\"}}").into_bytes()),
        headers: Default::default(),
        timestamp: Default::default(),
    };
    let codecs = [
        ("none", Compression::NoCompression),
        ("gzip", Compression::Gzip),
        ("snappy", Compression::Snappy),
        ("lz4", Compression::Lz4),
        ("zstd", Compression::Zstd),
    ];
    let mut works = Vec::new();
    for (name, codec) in codecs {
        let topic = format!("codec_{name}");
        create_topics(&kc, &[(topic.as_str(), 1)]).await;
        let pc = kc
            .partition_client(topic.as_str(), 0, UnknownTopicHandling::Retry)
            .await
            .unwrap();
        let produced = tokio::time::timeout(
            Duration::from_secs(10),
            pc.produce(vec![record(name), record(&format!("{name}2"))], codec),
        )
        .await;
        let fetched = tokio::time::timeout(
            Duration::from_secs(10),
            pc.fetch_records(0, 1..1_000_000, 50),
        )
        .await;
        let back: Vec<String> = match &fetched {
            Ok(Ok((rs, _))) => rs
                .iter()
                .filter_map(|r| r.record.value.clone())
                .map(|v| String::from_utf8_lossy(&v).into_owned())
                .collect(),
            _ => Vec::new(),
        };
        let ok = matches!(produced, Ok(Ok(_))) && back.len() == 2 && back[0].contains(name);
        println!("tansu codec {name}: produce {produced:?}, fetched {back:?} → {ok}");
        works.push((name, ok));
    }
    assert!(
        works[0].1 && works[1].1,
        "none and gzip round-trip: {works:?}"
    );

    let unknown = async {
        let pc = kc
            .partition_client("never_created", 0, UnknownTopicHandling::Error)
            .await?;
        pc.produce(vec![record("x")], Compression::NoCompression)
            .await
    };
    let r = tokio::time::timeout(Duration::from_secs(20), unknown).await;
    println!("tansu: produce to a topic never created: {r:?}");
    assert!(
        matches!(r, Ok(Err(_))),
        "a topic never created is refused: {r:?}"
    );
}
