//! The in-site hand-off: on a node that runs every stage, a trickle of small transactions costs
//! each batch three ZooKeeper writes instead of nine, counted by ZooKeeper's own transaction ids.

use std::time::Duration;

mod common;

use common::shop::*;
use common::Node;
use harness::{TestDir, ZooKeeper};
use zookeeper_client::{Client, CreateMode};

/// The zxid of a fresh znode: every write transaction (a multi counts once) takes the next one.
async fn zxid(zk: &Client, name: &str) -> i64 {
    let (stat, _) = zk
        .create(
            &format!("/{name}"),
            b"",
            &CreateMode::Persistent.with_acls(zookeeper_client::Acls::anyone_all()),
        )
        .await
        .unwrap();
    stat.czxid
}

/// A counter of the node's `/metrics` for pipeline 1.
async fn counter(node: &Node, name: &str) -> u64 {
    let addr = node.http().expect("the node logged its HTTP address");
    let text = reqwest::get(format!("http://{addr}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let prefix = format!("{name}{{pipeline=\"1\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(prefix.as_str()))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .map_or(0, |v| v as u64)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trickle_costs_two_zookeeper_writes_and_no_read_per_batch_on_a_node_running_every_stage()
{
    harness::init_tracing();
    let (src, dst) = (source().await, target().await);
    let zk = ZooKeeper::start().await.unwrap();
    let c = channel(&src, &dst, &[1], &[1]).await;
    publish(&zk, &c).await;
    let dir = TestDir::new("otter-handoff").unwrap();
    let node = Node::start(&dir, 1, &zk);
    workload(&src, 1).await;
    wait_equal(&src, &dst, Duration::from_secs(120), &[&node]).await;

    let client = zk.client(Duration::from_secs(10)).await.unwrap();
    let requests_before = zk.members()[0].session_requests().unwrap();
    let before = zxid(&client, "probe-before").await;
    let (batches0, inline0, preclaimed0) = (
        counter(&node, "otter_select_batches_total").await,
        counter(&node, "otter_select_inline_batches_total").await,
        counter(&node, "otter_load_preclaimed_total").await,
    );
    // Single-row transactions far enough apart to be a batch each, close enough that Select
    // never idles between them (it deletes acked termins on their own when it does).
    for i in 0..40 {
        src.exec(&format!(
            "INSERT INTO shop.orders VALUES ({}, 1, 1.5, 'trickle')",
            900_000 + i
        ))
        .await
        .unwrap();
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
    wait_equal(&src, &dst, Duration::from_secs(120), &[&node]).await;
    let after = zxid(&client, "probe-after").await;
    // Requests other than pings, of every session (one opened meanwhile counts from 0).
    let requests: i64 = zk.members()[0]
        .session_requests()
        .unwrap()
        .iter()
        .map(|(sid, n)| n - requests_before.get(sid).copied().unwrap_or(0))
        .sum();
    let batches = counter(&node, "otter_select_batches_total").await - batches0;
    let inline = counter(&node, "otter_select_inline_batches_total").await - inline0;
    let preclaimed = counter(&node, "otter_load_preclaimed_total").await - preclaimed0;
    let writes = after - before - 1;
    eprintln!(
        "{batches} batches ({inline} handed off in site, {preclaimed} claimed for Load by Select), \
         {writes} ZooKeeper writes, {requests} requests"
    );
    assert!(batches >= 30, "{batches} batches");
    assert_eq!(inline, batches, "every small batch is handed off in site");
    assert_eq!(
        preclaimed, batches,
        "every in-site batch is opened already claimed for this node's Load"
    );
    // Two per batch: the process with every stage done, Load's lock and the acked termins'
    // deletion in one write; the termin with the removal. Plus the cursor flushes (every
    // 500 ms) and the termins deleted alone at the end. Through the workers it was nine to
    // eleven; with the stage children written at once, five; with Load claiming the batch
    // itself, three.
    assert!(
        writes as u64 <= batches * 2 + 16,
        "{writes} ZooKeeper writes for {batches} batches"
    );
    // And nothing read per batch: Load takes the claimed batch's token and rows from Select, and
    // Select knows the termin of a batch Load took that way without reading it. Besides the two
    // writes: the lease renewals of the node's elections (each every 500 ms with the tests'
    // 2 s sessions), the cursor flushes, this test's probes.
    assert!(
        requests as u64 <= batches * 2 + 60,
        "{requests} ZooKeeper requests for {batches} batches"
    );
}
