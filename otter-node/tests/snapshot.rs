//! Snapshots in otter pipelines (issue #15) against real MariaDB servers, ZooKeeper and
//! otter-node processes: a new pipeline copies existing rows while the source keeps changing, an
//! operator's request fills what a running pipeline's target missed, and a node killed with -9 in
//! the middle of a snapshot resumes after the last chunk delivered instead of from zero.

use std::time::Duration;

mod common;

use common::shop::*;
use common::Node;
use harness::{TestDir, ZooKeeper};

/// Issue #15: a new pipeline whose target starts empty copies the source's existing rows inside
/// the stream (snapshot_tables) while the source keeps changing, without locks, and the target
/// ends equal to the source row for row.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_pipeline_copies_existing_rows_while_the_source_keeps_changing() {
    harness::init_tracing();
    let (src, dst) = (source().await, target().await);
    common::sites::prepare(&src).await;
    src.exec(
        "GRANT INSERT, DELETE ON retl.snapshot_signal TO 'canal'@'%';
         INSERT INTO shop.user SELECT seq, CONCAT('u', seq, '@x'), CONCAT('user ', seq), X'0102', seq + 0.5, '1990-01-01' FROM shop.seq_1_to_20000;
         INSERT INTO shop.orders SELECT seq, seq % 2000 + 1, seq + 0.25, CONCAT('order ', seq) FROM shop.seq_1_to_30000;
         INSERT INTO shop.order_line SELECT seq DIV 3 + 1, seq % 3, seq FROM shop.seq_0_to_29999",
    )
    .await
    .unwrap();
    let zk = ZooKeeper::start().await.unwrap();
    // The channel starts at the binlog's end: the rows above reach the target only by snapshot.
    let mut c = channel(&src, &dst, &[1], &[1]).await;
    c.pipeline.source.snapshot_tables = vec![
        "shop.user".into(),
        "shop.orders".into(),
        "shop.order_line".into(),
    ];
    c.pipeline.source.snapshot_chunk_rows = Some(2000);
    publish(&zk, &c).await;
    let dir = TestDir::new("otter-snapshot").unwrap();
    let stop = tokio_util::sync::CancellationToken::new();
    let writer = tokio::spawn(keep_changing(src.conn().await.unwrap(), stop.clone()));
    let node = Node::start(&dir, 1, &zk);
    tokio::time::sleep(Duration::from_secs(8)).await;
    stop.cancel();
    let changes = writer.await.unwrap();
    wait_equal(&src, &dst, Duration::from_secs(180), &[&node]).await;
    let rows: Vec<i64> = dst
        .query("SELECT (SELECT COUNT(*) FROM shop_dr.customer) + (SELECT COUNT(*) FROM shop_dr.order_line)")
        .await
        .unwrap();
    assert_eq!(rows, vec![50_000], "every existing row reached the target");
    assert!(
        changes > 100,
        "the source kept changing ({changes} changes)"
    );
}

/// Issue #15: `otter-manager snapshot` (its request/answer znode) on a running pipeline whose
/// target missed rows written before the pipeline's start: the node running Select starts the
/// snapshot, answers with the run id, and the target ends equal; a second request for a table
/// that does not exist is refused with the reason.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operators_snapshot_request_fills_what_the_target_missed() {
    use otter_node::pipeline::snapshot_request::{request, wait_answer, RequestState};
    harness::init_tracing();
    let (src, dst) = (source().await, target().await);
    common::sites::prepare(&src).await;
    src.exec(
        "GRANT INSERT, DELETE ON retl.snapshot_signal TO 'canal'@'%';
         INSERT INTO shop.user SELECT seq, CONCAT('u', seq, '@x'), CONCAT('user ', seq), X'0102', seq + 0.5, '1990-01-01' FROM shop.seq_1_to_3000;
         INSERT INTO shop.orders SELECT seq, seq % 2000 + 1, seq + 0.25, CONCAT('order ', seq) FROM shop.seq_1_to_4000",
    )
    .await
    .unwrap();
    let zk = ZooKeeper::start().await.unwrap();
    let c = channel(&src, &dst, &[1], &[1]).await;
    publish(&zk, &c).await;
    let dir = TestDir::new("otter-snapshot-request").unwrap();
    let node = Node::start(&dir, 1, &zk);
    // The pipeline runs: a new row arrives, the old ones do not.
    src.exec("INSERT INTO shop.order_line VALUES (1, 1, 1)")
        .await
        .unwrap();
    let client = zk.client(Duration::from_secs(10)).await.unwrap();
    let (cid, pid) = (c.id, c.pipeline.id);
    for _ in 0..600 {
        let n: Vec<i64> = dst
            .query("SELECT COUNT(*) FROM shop_dr.order_line")
            .await
            .unwrap();
        if n == vec![1] {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let tables = vec!["shop.user".to_string(), "shop.orders".to_string()];
    request(&client, cid, pid, &tables).await.unwrap();
    let answer = wait_answer(&client, cid, pid, Duration::from_secs(60))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(answer.state, RequestState::Started, "{answer:?}");
    assert!(answer.run.is_some());
    wait_equal(&src, &dst, Duration::from_secs(120), &[&node]).await;
    // Once that run is over, a request naming a missing table is refused by the runner only
    // when it starts; a malformed name is refused at once.
    request(&client, cid, pid, &["no_dot".to_string()])
        .await
        .unwrap();
    let answer = wait_answer(&client, cid, pid, Duration::from_secs(60))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(answer.state, RequestState::Refused, "{answer:?}");
    assert!(
        answer
            .error
            .as_deref()
            .unwrap_or("")
            .contains("schema.table"),
        "{answer:?}"
    );
}

/// Issue #15: kill -9 of the node running a pipeline's snapshot; a restarted node resumes it after
/// the last chunk every stage had acked (the progress in ZooKeeper), not from zero, and the target
/// ends equal to the source.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_killed_during_a_snapshot_resumes_it_after_the_last_acked_chunk() {
    harness::init_tracing();
    let (src, dst) = (source().await, target().await);
    common::sites::prepare(&src).await;
    src.exec(
        "GRANT INSERT, DELETE ON retl.snapshot_signal TO 'canal'@'%';
         INSERT INTO shop.orders SELECT seq, seq % 2000 + 1, seq + 0.25, CONCAT('order ', seq) FROM shop.seq_1_to_200000;
         INSERT INTO shop.user VALUES (1, 'a@x', 'a', X'01', 1.5, '1990-01-01')",
    )
    .await
    .unwrap();
    let zk = ZooKeeper::start().await.unwrap();
    let mut c = channel(&src, &dst, &[1], &[1]).await;
    c.pipeline.source.snapshot_tables = vec!["shop.orders".into(), "shop.user".into()];
    c.pipeline.source.snapshot_chunk_rows = Some(1000);
    publish(&zk, &c).await;
    let dir = TestDir::new("otter-snapshot-kill").unwrap();
    let mut node = Node::start(&dir, 1, &zk);
    let client = zk.client(Duration::from_secs(10)).await.unwrap();
    let progress_path = format!(
        "/otter/canal/destinations/{}/snapshot",
        otter_node::pipeline::select::destination_name(c.pipeline.id)
    );
    // Wait until a good part of the table is acked (and its progress saved), then kill.
    let mut persisted = 0;
    for _ in 0..1200 {
        if let Ok((data, _)) = client.get_data(&progress_path).await {
            let p: serde_json::Value = serde_json::from_slice(&data).unwrap();
            persisted = p["tables"][0]["rows"].as_u64().unwrap_or(0);
            if persisted >= 20_000 {
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        (20_000..200_000).contains(&persisted),
        "progress saved mid-snapshot: {persisted} rows\n{}",
        node.log()
    );
    node.kill9();
    let first_log = node.log();
    // The same node id again (the channel runs Select and Load on node 1): a restart.
    let node = Node::start(&dir, 1, &zk);
    wait_equal(&src, &dst, Duration::from_secs(300), &[&node]).await;
    let log = node.log();
    let log = log.strip_prefix(first_log.as_str()).unwrap_or(&log);
    assert!(
        log.contains("snapshot resumes after the last delivered key"),
        "the new node resumed the snapshot: {log}"
    );
    assert!(
        !log.contains("snapshot starting") || log.contains("resuming the unfinished snapshot"),
        "the new node did not start a new snapshot from zero: {log}"
    );
}
