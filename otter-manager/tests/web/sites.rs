//! The real parts behind the browser test: a source MariaDB with `shop` (and `retl.xdual` for the
//! delay heartbeat), a target with `shop_dr`, otter-node processes, a writer, and a webhook
//! receiver.

use std::time::Duration;

use harness::{ManagedProcess, MariaDb, TestDir, ZooKeeper};
use otter_node::model::Channel;

/// The environment variable the nodes resolve the source password from.
pub const SOURCE_PASSWORD_ENV: &str = "OTTER_SOURCE_PASSWORD";

pub async fn source() -> MariaDb {
    let db = MariaDb::start().await.unwrap();
    db.exec(
        "CREATE DATABASE shop;
         CREATE TABLE shop.user (id INT PRIMARY KEY, email VARCHAR(60), name VARCHAR(40),
           password_hash VARBINARY(32), balance DECIMAL(12,2), born DATE);
         CREATE TABLE shop.orders (id BIGINT PRIMARY KEY, user_id INT, amount DOUBLE, note TEXT);
         CREATE TABLE shop.order_line (order_id BIGINT, line INT, qty INT, PRIMARY KEY (order_id, line))",
    )
    .await
    .unwrap();
    // The delay heartbeat's table, written by the replication account (as `prepare-site` does).
    otter_node::pipeline::load::prepare_site(&otter_node::model::TargetDb {
        address: db.addr().to_string(),
        username: "root".into(),
        password: String::new(),
        site: String::new(),
        tls: Default::default(),
    })
    .await
    .unwrap();
    db.exec("GRANT INSERT, UPDATE ON retl.xdual TO 'canal'@'%'")
        .await
        .unwrap();
    db
}

pub async fn target() -> MariaDb {
    let db = MariaDb::start().await.unwrap();
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

/// The shipped example channel as channel `cid` pointed at these servers and node `node`,
/// starting at the source's current end (stopped: the console starts it).
pub async fn channel(src: &MariaDb, dst: &MariaDb, cid: u32, node: u32) -> Channel {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/channel.toml");
    let mut c = Channel::from_toml(&std::fs::read_to_string(path).unwrap()).unwrap();
    c.id = cid;
    let user = src.replication_user().cloned().unwrap_or_default();
    let start = src.master_status().await.unwrap();
    let p = &mut c.pipeline;
    p.id = cid;
    p.source.address = src.addr().to_string();
    p.source.username = user.user;
    p.source.password = format!("env:{SOURCE_PASSWORD_ENV}");
    p.source.slave_id = 3300 + cid;
    p.source.journal_name = start.file;
    p.source.position = Some(start.position);
    p.target.address = dst.addr().to_string();
    p.target.username = "root".into();
    p.target.password = String::new();
    p.select_nodes = vec![node];
    p.load_nodes = vec![node];
    p.batch_size = 200;
    c.validate().unwrap();
    c
}

/// An otter-node process (`harness::otter_node_bin`) with the source password in its
/// environment.
pub fn node(dir: &TestDir, id: u32, zk: &ZooKeeper, source_password: &str) -> ManagedProcess {
    let log = dir.path().join(format!("node-{id}.log"));
    let mut cmd = std::process::Command::new(harness::otter_node_bin());
    cmd.args(["--id", &id.to_string(), "--zk", &zk.connect_string()])
        .args(["--http", "127.0.0.1:0"])
        .arg("--data-dir")
        .arg(dir.path().join(format!("data-{id}")))
        .args(["--zk-session-timeout-ms", "2000", "--grace-ms", "2000"])
        .env("RUST_LOG", "info")
        .env(SOURCE_PASSWORD_ENV, source_password)
        .env_remove("OTTER_ZK");
    ManagedProcess::start(format!("otter-node-{id}"), cmd, &log).unwrap()
}

/// Inserts orders (20 rows a statement, one statement every 50 ms at most) into the source until
/// `stop`; returns how many.
pub async fn keep_inserting(
    mut conn: mysql_async::Conn,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> u64 {
    use mysql_async::prelude::Queryable;
    let mut n: u64 = 0;
    while !stop.load(std::sync::atomic::Ordering::SeqCst) {
        let rows: Vec<String> = (n..n + 20)
            .map(|i| format!("({i}, {}, {i}.5, 'order {i}')", i % 100))
            .collect();
        if conn
            .query_drop(format!("INSERT INTO shop.orders VALUES {}", rows.join(",")))
            .await
            .is_ok()
        {
            n += 20;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    n
}

/// A webhook receiver on 127.0.0.1: every JSON body POSTed to `/hook` is passed on.
pub async fn webhook_receiver() -> (u16, tokio::sync::mpsc::UnboundedReceiver<serde_json::Value>) {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |body: axum::body::Bytes| {
            let tx = tx.clone();
            async move {
                match serde_json::from_slice(&body) {
                    Ok(v) => {
                        let _ = tx.send(v);
                        axum::http::StatusCode::OK
                    }
                    Err(_) => axum::http::StatusCode::BAD_REQUEST,
                }
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (port, rx)
}

/// The next webhook body whose `state` is `state` (others are skipped), within `limit`.
pub async fn next_hook(
    rx: &mut tokio::sync::mpsc::UnboundedReceiver<serde_json::Value>,
    state: &str,
    limit: Duration,
) -> serde_json::Value {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        let v = tokio::time::timeout_at(deadline, rx.recv())
            .await
            .unwrap_or_else(|_| panic!("no {state} webhook call within {limit:?}"))
            .expect("the receiver runs");
        if v["state"] == state {
            return v;
        }
    }
}
