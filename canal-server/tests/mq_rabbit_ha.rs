//! MQ mode in HA: only the running server publishes; after `kill -9` of the active server the
//! standby takes over and publishes from the last confirmed cursor (stored in ZooKeeper): the
//! queue holds every row, in order, and the only repeats are one re-published tail.

mod common;

use std::time::{Duration, Instant};

use common::mq::shop_t_and_zookeeper;
use common::server::*;
use harness::RabbitMq;
use lapin::options::{BasicGetOptions, QueueDeclareOptions};
use lapin::types::FieldTable;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill9_of_the_active_standby_publishes_from_the_last_confirmed_cursor() {
    harness::init_tracing();
    let (db, zk) = shop_t_and_zookeeper().await;
    let rabbit = RabbitMq::start().await.unwrap();
    let conn = lapin::Connection::connect(&rabbit.uri(), Default::default())
        .await
        .unwrap();
    let ch = conn.create_channel().await.unwrap();
    ch.queue_declare(
        "example".into(),
        QueueDeclareOptions::durable(),
        FieldTable::default(),
    )
    .await
    .unwrap();
    let extra = format!(
        "[zookeeper]\nservers = \"{zk}\"\nsession_timeout_ms = 2000\nconnect_timeout_ms = 1000\ngrace_ms = 2000\n\
         [destinations.example.mq]\nservers = \"{uri}\"\nbatch_size = 4\nconnect_timeout_ms = 500\n",
        zk = zk.connect_string(),
        uri = rabbit.uri()
    );
    let mut a =
        ServerProc::start_with(server_bin(), &db, "flush_period_ms = 0\n", "", &extra).await;
    let zc = zk.client(Duration::from_secs(10)).await.unwrap();
    wait_running_at(&zc, &a.addr()).await;
    wait_streaming(&a).await;
    let b = ServerProc::start_with(server_bin(), &db, "flush_period_ms = 0\n", "", &extra).await;
    let standby = http_get(b.admin_port, "/health").await.unwrap();
    assert!(
        !standby.contains("\"producer\""),
        "the standby does not publish: {standby}"
    );

    for id in 1..=150 {
        db.exec(&format!("INSERT INTO shop.t VALUES ({id})"))
            .await
            .unwrap();
        if id == 25 {
            let cursor = zc
                .get_data("/otter/canal/destinations/example/1001/cursor")
                .await
                .map(|(d, _)| String::from_utf8_lossy(&d).into_owned());
            println!("HA MQ: cursor of client 1001 before the kill: {cursor:?}");
            a.kill9();
        }
    }
    wait_running_at(&zc, &b.addr()).await;

    let mut ids: Vec<i64> = Vec::new();
    let until = Instant::now() + Duration::from_secs(120);
    loop {
        while let Some(d) = ch
            .basic_get("example".into(), BasicGetOptions { no_ack: true })
            .await
            .unwrap()
        {
            let v: serde_json::Value = serde_json::from_slice(&d.delivery.data).unwrap();
            for row in v["data"].as_array().into_iter().flatten() {
                ids.push(row["id"].as_str().unwrap().parse().unwrap());
            }
        }
        if ids.last() == Some(&150) || Instant::now() > until {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
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
    match restart {
        Some(_) => println!(
            "HA MQ: the queue restarts at {j} after {k}: {} repeated rows",
            k + 1 - j
        ),
        None => println!("HA MQ: the standby resumed exactly after the last confirmed row"),
    }
    let health = http_get(b.admin_port, "/health").await.unwrap();
    assert!(health.contains("\"state\":\"publishing\""), "{health}");
}
