//! Two consumer processes with one client id against a real canal-server in HA mode: one consumes,
//! the other takes over when it dies. The consumers are this test binary re-executed.

mod common;

use std::time::{Duration, Instant};

use canal_client::{ClusterConnector, ConnectorOptions, ConsumeOptions, ZkConfig};
use common::server::*;
use harness::{ManagedProcess, MariaDb, TestDir, ZooKeeper};
use tokio_util::sync::CancellationToken;

/// The consumer process's body: runs only when re-executed with `HA_CONSUMER_ZK` set.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consumer_process_entry() {
    let Ok(servers) = std::env::var("HA_CONSUMER_ZK") else {
        return;
    };
    let name = std::env::var("HA_CONSUMER_NAME").unwrap_or_default();
    let zk = ZkConfig {
        servers,
        session_timeout_ms: 2_000,
        connect_timeout_ms: 1_000,
        grace_ms: 2_000,
        ..Default::default()
    };
    let mut c = ClusterConnector::new(zk, "example", ConnectorOptions::default())
        .with_client_election(name.clone());
    c.connect().await.expect("connect");
    c.subscribe(None).await.expect("subscribe");
    let stop = CancellationToken::new();
    let opts = ConsumeOptions {
        batch_size: 100,
        poll_timeout: Duration::from_millis(200),
        ..Default::default()
    };
    let _ = c
        .consume(&opts, &stop, |msg| {
            let ids = row_ids(&msg.entries);
            async move {
                for id in ids {
                    println!("ROW {id}");
                }
                use std::io::Write;
                let _ = std::io::stdout().flush();
                Ok::<(), String>(())
            }
        })
        .await;
}

fn rows_in(path: &std::path::Path) -> Vec<i64> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.strip_prefix("ROW ").and_then(|x| x.trim().parse().ok()))
        .collect()
}

fn spawn_consumer(dir: &TestDir, zk: &str, name: &str) -> (ManagedProcess, std::path::PathBuf) {
    let log = dir.path().join(format!("{name}.log"));
    let mut cmd = std::process::Command::new(std::env::current_exe().unwrap());
    cmd.args(["consumer_process_entry", "--exact", "--nocapture"])
        .env("HA_CONSUMER_ZK", zk)
        .env("HA_CONSUMER_NAME", name)
        .env("RUST_LOG", "info");
    (ManagedProcess::start(name, cmd, &log).unwrap(), log)
}

async fn wait_rows(path: &std::path::Path, want: impl Fn(&[i64]) -> bool, limit: Duration) {
    let t = Instant::now();
    while !want(&rows_in(path)) {
        assert!(
            t.elapsed() < limit,
            "rows in {}: {:?}",
            path.display(),
            rows_in(path)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn insert(db: &MariaDb, from: i64, to: i64) {
    for id in from..to {
        db.exec(&format!("INSERT INTO shop.t VALUES ({id}, 'x')"))
            .await
            .unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_consumer_processes_one_consumes_the_other_takes_over() {
    harness::init_tracing();
    let db = MariaDb::start().await.unwrap();
    db.exec("CREATE DATABASE shop; CREATE TABLE shop.t (id BIGINT PRIMARY KEY, v VARCHAR(20))")
        .await
        .unwrap();
    let zk = ZooKeeper::start().await.unwrap();
    let _server = ServerProc::start_with(
        server_bin(),
        &db,
        "flush_period_ms = 0\n",
        "",
        &format!(
            "[zookeeper]\nservers = \"{}\"\nsession_timeout_ms = 2000\ngrace_ms = 2000\n",
            zk.connect_string()
        ),
    )
    .await;
    wait_streaming(&_server).await;
    let dir = TestDir::new("consumers").unwrap();
    let (mut first, first_log) = spawn_consumer(&dir, &zk.connect_string(), "10.0.0.1:1");
    // The first one wins the consumer election before the second starts.
    let zc = zk.client(Duration::from_secs(10)).await.unwrap();
    let t = Instant::now();
    loop {
        let data = zc
            .get_data("/otter/canal/destinations/example/1001/running")
            .await
            .map(|(d, _)| String::from_utf8_lossy(&d).into_owned())
            .unwrap_or_default();
        if data.contains("10.0.0.1:1") {
            break;
        }
        assert!(
            t.elapsed() < Duration::from_secs(60),
            "first consumer never ran"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (_second, second_log) = spawn_consumer(&dir, &zk.connect_string(), "10.0.0.2:2");
    insert(&db, 0, 20).await;
    wait_rows(&first_log, |r| r.contains(&19), Duration::from_secs(60)).await;
    assert!(
        rows_in(&second_log).is_empty(),
        "only one consumer consumes"
    );

    first.kill9().unwrap();
    insert(&db, 20, 40).await;
    wait_rows(&second_log, |r| r.contains(&39), Duration::from_secs(60)).await;
    let mut all: Vec<i64> = rows_in(&first_log);
    all.extend(rows_in(&second_log));
    all.sort_unstable();
    all.dedup();
    assert_eq!(
        all,
        (0..40).collect::<Vec<_>>(),
        "every row consumed by one of them"
    );
}
