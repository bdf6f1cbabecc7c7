//! otter-node processes replicating a real MariaDB source into a real MariaDB target, scheduled
//! through a real ZooKeeper, with node and target faults. At the end the target equals the source
//! (through the pipeline's renames and column view), row for row.

use std::time::{Duration, Instant};

mod common;

use common::shop::*;
use common::Node;
use harness::{MariaDb, MariaDbOptions, TestCerts, TestDir, ZooKeeper};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_node_replicates_renames_views_and_key_changes() {
    harness::init_tracing();
    let (src, dst) = (source().await, target().await);
    let zk = ZooKeeper::start().await.unwrap();
    let c = channel(&src, &dst, &[1], &[1]).await;
    publish(&zk, &c).await;
    let dir = TestDir::new("otter-one").unwrap();
    let node = Node::start(&dir, 1, &zk);
    workload(&src, 1).await;
    wait_equal(&src, &dst, Duration::from_secs(120), &[&node]).await;
    // The column view: password_hash never reached the target (the table has no such column; the
    // load would have failed). A second round after a while still arrives.
    workload(&src, 2).await;
    wait_equal(&src, &dst, Duration::from_secs(120), &[&node]).await;
    let n: Vec<i64> = dst
        .query("SELECT COUNT(*) FROM shop_dr.customer")
        .await
        .unwrap();
    assert!(n[0] > 60, "{n:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn select_and_load_on_different_nodes_survive_kill9_of_each() {
    harness::init_tracing();
    let (src, dst) = (source().await, target().await);
    let zk = ZooKeeper::start().await.unwrap();
    // Nodes 1 and 2 may select; nodes 3 and 4 may load: data crosses nodes over HTTP.
    let c = channel(&src, &dst, &[1, 2], &[3, 4]).await;
    publish(&zk, &c).await;
    let dir = TestDir::new("otter-multi").unwrap();
    let mut n1 = Node::start(&dir, 1, &zk);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let n2 = Node::start(&dir, 2, &zk);
    let mut n3 = Node::start(&dir, 3, &zk);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let n4 = Node::start(&dir, 4, &zk);
    workload(&src, 1).await;
    wait_equal(&src, &dst, Duration::from_secs(120), &[&n1, &n2, &n3, &n4]).await;
    // Select runs only on nodes 1/2 and Load only on 3/4: every batch crossed nodes over HTTP.

    // kill -9 of a load node and then of the select node, mid-stream.
    workload(&src, 2).await;
    n3.kill9();
    workload(&src, 3).await;
    n1.kill9();
    workload(&src, 4).await;
    wait_equal(&src, &dst, Duration::from_secs(180), &[&n1, &n2, &n3, &n4]).await;
    let client = zk.client(Duration::from_secs(10)).await.unwrap();
    let (data, _) = client
        .get_data(&zk_coord::otter_paths::mainstem(c.id, c.pipeline.id))
        .await
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&data).unwrap();
    assert_eq!(v["nid"], 2, "node 2 took the mainstem: {v}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn target_down_for_30_s_then_back_catches_up() {
    harness::init_tracing();
    let (src, mut dst) = (source().await, target().await);
    let zk = ZooKeeper::start().await.unwrap();
    let c = channel(&src, &dst, &[1], &[1]).await;
    publish(&zk, &c).await;
    let dir = TestDir::new("otter-target-down").unwrap();
    let node = Node::start(&dir, 1, &zk);
    workload(&src, 1).await;
    wait_equal(&src, &dst, Duration::from_secs(120), &[&node]).await;
    dst.kill9().unwrap();
    workload(&src, 2).await;
    tokio::time::sleep(Duration::from_secs(30)).await;
    dst.start_again().await.unwrap();
    workload(&src, 3).await;
    wait_equal(&src, &dst, Duration::from_secs(180), &[&node]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn target_table_without_primary_key_is_refused_at_start() {
    harness::init_tracing();
    let src = source().await;
    let dst = MariaDb::start().await.unwrap();
    dst.exec(
        "CREATE DATABASE shop_dr;
         CREATE TABLE shop_dr.customer (id INT, email VARCHAR(60), name VARCHAR(40),
           balance DECIMAL(12,2), born DATE);
         CREATE TABLE shop_dr.orders (id BIGINT PRIMARY KEY, user_id INT, amount DOUBLE, note TEXT);
         CREATE TABLE shop_dr.order_line (order_id BIGINT, line INT, qty INT, PRIMARY KEY (order_id, line))",
    )
    .await
    .unwrap();
    let zk = ZooKeeper::start().await.unwrap();
    let c = channel(&src, &dst, &[1], &[1]).await;
    publish(&zk, &c).await;
    let dir = TestDir::new("otter-no-pk").unwrap();
    let node = Node::start(&dir, 1, &zk);
    src.exec("INSERT INTO shop.orders VALUES (1, 1, 1, 'x')")
        .await
        .unwrap();
    let t = Instant::now();
    while !node.log().contains("has no primary key") {
        assert!(t.elapsed() < Duration::from_secs(60), "{}", node.log());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        node.log().contains("shop_dr`.`customer") || node.log().contains("shop_dr.customer"),
        "{}",
        node.log()
    );
    let n: Vec<i64> = dst
        .query("SELECT COUNT(*) FROM shop_dr.orders")
        .await
        .unwrap();
    assert_eq!(n, vec![0], "nothing runs until the definition is fixed");
}

/// Polls `sql` on `db` until it returns `want` (at most 120 s; the node's log on failure).
async fn wait_rows(db: &MariaDb, sql: &str, want: &[&str], node: &Node) {
    let t = Instant::now();
    loop {
        let got: Vec<String> = db.query(sql).await.unwrap_or_default();
        if got == want {
            return;
        }
        assert!(
            t.elapsed() < Duration::from_secs(120),
            "{sql} returned {got:?}, expected {want:?}\n{}",
            node.log()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ddl_sync_alters_the_mapped_target_tables() {
    harness::init_tracing();
    let (src, dst) = (source().await, target().await);
    let zk = ZooKeeper::start().await.unwrap();
    let mut c = channel(&src, &dst, &[1], &[1]).await;
    c.pipeline.ddl_sync = true;
    publish(&zk, &c).await;
    let dir = TestDir::new("otter-ddl").unwrap();
    let node = Node::start(&dir, 1, &zk);
    workload(&src, 1).await;
    wait_equal(&src, &dst, Duration::from_secs(120), &[&node]).await;
    // A schema-qualified DDL of a renamed table, and an unqualified one in the source schema
    // (renamed schema): both must change shop_dr's tables, then rows using the new columns flow.
    src.exec(
        "ALTER TABLE shop.user ADD COLUMN nick VARCHAR(20);
         USE shop;
         ALTER TABLE orders ADD COLUMN tag VARCHAR(10) NOT NULL DEFAULT 'none';
         INSERT INTO shop.user (id, email, nick) VALUES (9001, 'n@example.com', 'nicky');
         INSERT INTO shop.orders (id, user_id, amount, note, tag) VALUES (9001, 9001, 1.5, 'n', 'vip')",
    )
    .await
    .unwrap();
    wait_rows(
        &dst,
        "SELECT nick FROM shop_dr.customer WHERE id = 9001",
        &["nicky"],
        &node,
    )
    .await;
    wait_rows(
        &dst,
        "SELECT tag FROM shop_dr.orders WHERE id = 9001",
        &["vip"],
        &node,
    )
    .await;
    // The ALTER itself ran on the target: the rows that were there took the default.
    let count = "SELECT CAST(COUNT(*) AS CHAR) FROM {} WHERE tag = 'none'";
    let on_source: Vec<String> = src
        .query(&count.replace("{}", "shop.orders"))
        .await
        .unwrap();
    let on_target: Vec<String> = dst
        .query(&count.replace("{}", "shop_dr.orders"))
        .await
        .unwrap();
    assert_eq!(on_source, on_target);
    assert_ne!(
        on_source,
        ["0"],
        "the workload wrote orders before the ALTER"
    );
    wait_equal(&src, &dst, Duration::from_secs(120), &[&node]).await;
    // Nothing went to a `shop` schema on the target.
    let schemas: Vec<String> = dst
        .query("SELECT SCHEMA_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = 'shop'")
        .await
        .unwrap();
    assert!(schemas.is_empty(), "{schemas:?}");
}

/// The row version the target shows for `shop_dr.orders` id 1 (0 while the row is absent).
async fn target_version(dst: &MariaDb) -> Option<i64> {
    dst.query::<i64>("SELECT user_id FROM shop_dr.orders WHERE id = 1")
        .await
        .ok()
        .map(|v| v.first().copied().unwrap_or(0))
}

/// Issue #17, "Fencing reaches the target": a load node frozen (SIGSTOP) after its last look at
/// its lock, past its ZooKeeper session expiry, while another node redoes its batch and loads later
/// ones, must not commit its stale batch when it wakes: the fencing token (the Load lock's czxid in
/// `retl.retl_fence`) refuses it, and the target never shows an older version of a row.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn load_node_frozen_past_its_session_is_fenced_at_the_target() {
    harness::init_tracing();
    let (src, dst) = (source().await, target().await);
    let zk = ZooKeeper::start().await.unwrap();
    let c = channel(&src, &dst, &[1], &[2, 3]).await;
    publish(&zk, &c).await;
    let dir = TestDir::new("otter-fenced").unwrap();
    let n1 = Node::start(&dir, 1, &zk);
    // Node 2 is the only load node at first; its first load stalls before its transactions,
    // unwatched (test-only hook), as a node that froze right after it last saw its lock.
    let mut n2 = Node::start_with_env(
        &dir,
        2,
        &zk,
        &[("OTTER_TEST_PAUSE_BEFORE_LOAD_MS", "15000")],
    );
    src.exec("INSERT INTO shop.orders VALUES (1, 1, 0, 'v')")
        .await
        .unwrap();
    n2.wait_log(
        "test hook: pausing before the load",
        Duration::from_secs(120),
        &[&n1, &n2],
    )
    .await;
    n2.pause();

    // Every version the target shows, from now on.
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::<i64>::new()));
    let sampling = tokio_util::sync::CancellationToken::new();
    let sampler = tokio::spawn({
        let (seen, sampling) = (seen.clone(), sampling.clone());
        let dst_addr = dst.addr();
        async move {
            let opts = mysql_async::OptsBuilder::default()
                .ip_or_hostname(dst_addr.ip().to_string())
                .tcp_port(dst_addr.port())
                .user(Some("root"))
                .prefer_socket(false);
            let mut conn = mysql_async::Conn::new(opts).await.unwrap();
            while !sampling.is_cancelled() {
                use mysql_async::prelude::Queryable;
                let Ok(v) = conn
                    .query_first::<i64, _>("SELECT user_id FROM shop_dr.orders WHERE id = 1")
                    .await
                else {
                    return;
                };
                seen.lock().unwrap().push(v.unwrap_or(0));
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    });

    // Node 3 takes the batch over once node 2's session expired, and loads later versions.
    let n3 = Node::start(&dir, 3, &zk);
    for v in 2..=10 {
        src.exec(&format!(
            "UPDATE shop.orders SET user_id = {v} WHERE id = 1"
        ))
        .await
        .unwrap();
    }
    let t = Instant::now();
    while target_version(&dst).await != Some(10) {
        if t.elapsed() > Duration::from_secs(180) {
            for n in [&n1, &n2, &n3] {
                eprintln!("---- {}\n{}", n.log.display(), n.log());
            }
            panic!("node 3 never loaded version 10");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Node 2 wakes up and goes on with its stale batch (version 1): the target refuses it.
    let never_back = |seen: &[i64]| {
        let mut shown = seen.to_vec();
        shown.dedup();
        assert!(
            shown.windows(2).all(|w| w[0] <= w[1]),
            "the target went back in time: it showed versions {shown:?}"
        );
    };
    n2.resume();
    let t = Instant::now();
    while !n2.log().contains("load fenced") {
        let now = seen.lock().unwrap().clone();
        never_back(&now);
        if t.elapsed() > Duration::from_secs(120) {
            eprintln!("---- {}\n{}", n2.log.display(), n2.log());
            panic!("node 2's stale load was not fenced");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let addr = n2.http().expect("node 2 logged its HTTP address");
    let metrics = reqwest::get(format!("http://{addr}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("otter_load_fenced_total{pipeline=\"1\"}") && l.ends_with(" 1")),
        "{metrics}"
    );
    // The pipeline goes on, with node 2 back as a load node.
    src.exec("UPDATE shop.orders SET user_id = 11 WHERE id = 1")
        .await
        .unwrap();
    let t = Instant::now();
    while target_version(&dst).await != Some(11) {
        assert!(
            t.elapsed() < Duration::from_secs(120),
            "version 11 never arrived\n{}\n{}",
            n2.log(),
            n3.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    sampling.cancel();
    sampler.await.unwrap();
    let seen = seen.lock().unwrap().clone();
    never_back(&seen);
    assert_eq!(seen.last(), Some(&11), "{seen:?}");
    let fence: Vec<(i64, i64)> = dst
        .query("SELECT pipeline_id, token FROM retl.retl_fence")
        .await
        .unwrap();
    assert!(matches!(fence[..], [(1, token)] if token > 0), "{fence:?}");
}

/// Source and target both over TLS with `verify_ca`, their accounts requiring SSL: the target
/// ends equal to the source.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replication_over_tls_with_verify_ca() {
    harness::init_tracing();
    let certs = TestCerts::generate().unwrap();
    let tls_opts = || MariaDbOptions {
        extra_args: certs.mariadb_args(),
        ..Default::default()
    };
    let (src, dst) = (source_with(tls_opts()).await, target_with(tls_opts()).await);
    src.exec("ALTER USER 'canal'@'%' REQUIRE SSL")
        .await
        .unwrap();
    dst.exec(
        "CREATE USER 'otter'@'%' IDENTIFIED BY 'otter-pw' REQUIRE SSL;
         GRANT ALL ON shop_dr.* TO 'otter'@'%'; GRANT ALL ON retl.* TO 'otter'@'%'",
    )
    .await
    .unwrap();
    let zk = ZooKeeper::start().await.unwrap();
    let mut c = channel(&src, &dst, &[1], &[1]).await;
    let verify_ca = canal_server::mysql_tls::MysqlTls {
        mode: canal_server::mysql_tls::SslMode::VerifyCa,
        ca: Some(certs.ca()),
        ..Default::default()
    };
    c.pipeline.source.tls = verify_ca.clone();
    c.pipeline.target.tls = verify_ca;
    c.pipeline.target.username = "otter".into();
    c.pipeline.target.password = "otter-pw".into();
    c.validate().unwrap();
    publish(&zk, &c).await;
    let dir = TestDir::new("otter-tls").unwrap();
    let node = Node::start(&dir, 1, &zk);
    workload(&src, 0).await;
    wait_equal(&src, &dst, Duration::from_secs(120), &[&node]).await;
}

/// A select node stopped gracefully hands the mainstem over at once: the standby's grace (120 s,
/// longer than the test waits) is for crashes only.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_graceful_stop_hands_the_mainstem_over_without_the_grace() {
    harness::init_tracing();
    let (src, dst) = (source().await, target().await);
    let zk = ZooKeeper::start().await.unwrap();
    let c = channel(&src, &dst, &[1, 2], &[2]).await;
    publish(&zk, &c).await;
    let dir = TestDir::new("otter-handover").unwrap();
    let mut first = Node::start(&dir, 1, &zk);
    first
        .wait_log(
            "running the pipeline's stages",
            Duration::from_secs(60),
            &[],
        )
        .await;
    let client = zk.client(Duration::from_secs(10)).await.unwrap();
    let mainstem = zk_coord::otter_paths::mainstem(c.id, c.pipeline.id);
    let t = Instant::now();
    while client.check_stat(&mainstem).await.unwrap().is_none() {
        assert!(t.elapsed() < Duration::from_secs(60), "{}", first.log());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let second = Node::start_with_grace(&dir, 2, &zk, 120_000);
    workload(&src, 0).await;
    wait_equal(&src, &dst, Duration::from_secs(60), &[&first, &second]).await;
    first.terminate();
    workload(&src, 1).await;
    wait_equal(&src, &dst, Duration::from_secs(60), &[&first, &second]).await;
}

/// The checker (`otter-manager check`'s engine) while the pipeline runs under load: keys that
/// differ because their change is in flight are read again after the pipeline's delay and never
/// reported; after the load stops the sides are equal and the checker, reading once, agrees.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_checker_reports_nothing_while_a_healthy_pipeline_runs_under_load() {
    use otter_node::check::{check_pipeline, render_table, CheckOptions, ZkDelay};
    harness::init_tracing();
    let (src, dst) = (source().await, target().await);
    // The delay heartbeat, which the checker waits for.
    common::sites::prepare(&src).await;
    let zk = ZooKeeper::start().await.unwrap();
    let c = channel(&src, &dst, &[1], &[1]).await;
    publish(&zk, &c).await;
    let dir = TestDir::new("otter-check").unwrap();
    let node = Node::start(&dir, 1, &zk);
    let users: Vec<String> = (1..=2000)
        .map(|i| format!("({i}, 'u{i}@x', 'user {i}', X'0102', {i}.50, '1990-01-01')"))
        .collect();
    let orders: Vec<String> = (1..=3000)
        .map(|i| format!("({i}, {}, {i}.25, 'order {i}')", i % 2000 + 1))
        .collect();
    src.exec(&format!(
        "INSERT INTO shop.user VALUES {}; INSERT INTO shop.orders VALUES {}",
        users.join(","),
        orders.join(",")
    ))
    .await
    .unwrap();
    wait_equal(&src, &dst, Duration::from_secs(120), &[&node]).await;

    let stop = tokio_util::sync::CancellationToken::new();
    let writer = tokio::spawn(keep_changing(src.conn().await.unwrap(), stop.clone()));
    tokio::time::sleep(Duration::from_secs(2)).await;
    let client = zk.client(Duration::from_secs(10)).await.unwrap();
    let delay = ZkDelay {
        zk: &client,
        channel: c.id,
        pipeline: c.pipeline.id,
    };
    let opts = CheckOptions {
        chunk_rows: 200,
        max_chunk_rows: 300,
        recheck_wait: Duration::from_secs(2),
        ..CheckOptions::default()
    };
    let report = check_pipeline(&c.pipeline, c.id, &opts, &delay)
        .await
        .unwrap();
    stop.cancel();
    let changes = writer.await.unwrap();
    let text = render_table(&report);
    println!("{changes} changes while checking:\n{text}");
    assert!(!report.differs(), "{text}");
    let chunks: u64 = report.tables.iter().map(|t| t.chunks).sum();
    let rows: u64 = report.tables.iter().map(|t| t.source_rows).sum();
    assert!(chunks >= 10 && rows >= 4000, "{text}");
    assert_eq!(report.tables.len(), 3, "user, orders, order_line: {text}");

    wait_equal(&src, &dst, Duration::from_secs(120), &[&node]).await;
    let once = CheckOptions {
        rechecks: 0,
        recheck_wait: Duration::from_millis(10),
        ..opts
    };
    let report = check_pipeline(&c.pipeline, c.id, &once, &delay)
        .await
        .unwrap();
    assert!(
        !report.differs() && report.tables.iter().all(|t| t.unsettled.is_empty()),
        "{}",
        render_table(&report)
    );
}
