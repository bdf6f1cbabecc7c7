//! The console's alarm kinds beyond delay, node and destination (those are in console.rs): a stage
//! exception, a batch not advancing, conflicts per minute; each with its pause time after firing
//! and automatic recovery (Otter's `pauseTime`, `autoRecovery`). A real manager process and a real
//! ZooKeeper; the node is a stand-in `/metrics` whose counters the test raises.

mod web;

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use harness::{free_port, init_tracing, TestDir, ZooKeeper};
use otter_node::model::{Channel, ChannelStatus};
use tokio::sync::mpsc::UnboundedReceiver;
use web::http::{page, serve, viewer};
use zookeeper_client::{Acls, CreateMode};

/// A stand-in otter-node `/metrics` for pipeline `pid`: retries and conflicts as the test sets
/// them.
async fn fake_node(pid: u32, failures: Arc<AtomicU64>, conflicts: Arc<AtomicU64>) -> u16 {
    let app = axum::Router::new()
        .route("/health", axum::routing::get(|| async { "ok" }))
        .route(
            "/metrics",
            axum::routing::get(move || {
                let (f, c) = (failures.load(Ordering::SeqCst), conflicts.load(Ordering::SeqCst));
                async move {
                    format!(
                        "otter_load_rows_total{{pipeline=\"{pid}\"}} 0\n\
                         otter_retries_total{{pipeline=\"{pid}\",stage=\"load\"}} {f}\n\
                         otter_conflicts_total{{pipeline=\"{pid}\",table=\"shop.user\",outcome=\"local\"}} {c}\n"
                    )
                }
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move { axum::serve(listener, app).await });
    port
}

async fn webhook_receiver() -> (u16, UnboundedReceiver<serde_json::Value>) {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |body: axum::body::Bytes| {
            let tx = tx.clone();
            async move {
                let _ = tx.send(serde_json::from_slice(&body).unwrap());
                axum::http::StatusCode::OK
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (port, rx)
}

/// The next webhook call of `alarm` (calls of other alarms are kept aside and returned later).
async fn next_of(
    rx: &mut UnboundedReceiver<serde_json::Value>,
    aside: &mut Vec<serde_json::Value>,
    alarm: &str,
) -> serde_json::Value {
    if let Some(i) = aside.iter().position(|v| v["alarm"] == alarm) {
        return aside.remove(i);
    }
    loop {
        let v = tokio::time::timeout(Duration::from_secs(60), rx.recv())
            .await
            .unwrap_or_else(|_| panic!("no webhook call of {alarm}"))
            .unwrap();
        if v["alarm"] == alarm {
            return v;
        }
        aside.push(v);
    }
}

async fn create(zk: &zookeeper_client::Client, path: &str, mode: CreateMode) {
    zk.create(path, b"", &mode.with_acls(Acls::anyone_all()))
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stage_exception_stuck_batch_position_and_conflict_alarms_fire_pause_and_recover() {
    init_tracing();
    let zk = ZooKeeper::start().await.unwrap();
    let client = zk.client(Duration::from_secs(10)).await.unwrap();
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/channel.toml");
    let channel = Channel::from_toml(&std::fs::read_to_string(path).unwrap()).unwrap();
    otter_manager::apply(&client, &channel).await.unwrap();
    let (cid, pid) = (channel.id, channel.pipeline.id);
    otter_manager::set_status(&client, cid, ChannelStatus::Started)
        .await
        .unwrap();

    // A node whose counters the test raises, and one batch in the window.
    let (failures, conflicts) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let node_port = fake_node(pid, failures.clone(), conflicts.clone()).await;
    zk_coord::ensure_path(&client, zk_coord::otter_paths::NODE_ROOT)
        .await
        .unwrap();
    client
        .create(
            &zk_coord::otter_paths::node(7),
            format!("127.0.0.1:{node_port}").as_bytes(),
            &CreateMode::Ephemeral.with_acls(Acls::anyone_all()),
        )
        .await
        .unwrap();
    zk_coord::ensure_path(&client, &zk_coord::otter_paths::processes(cid, pid))
        .await
        .unwrap();
    let first = zk_coord::otter_paths::process(cid, pid, "p0000000001");
    create(&client, &first, CreateMode::Persistent).await;
    // The cursor the pipeline's Select acknowledged, as its embedded destination writes it.
    let cursor = zk_coord::paths::cursor(
        &otter_node::pipeline::select::destination_name(pid),
        pid as i16,
    );
    let at = |offset: i64| {
        let mut p = canal_protocol::position::LogPosition::default();
        p.position.journal_name = Some("mysql-bin.000003".into());
        p.position.position = Some(offset);
        p.to_cursor_json().into_bytes()
    };
    zk_coord::ensure_path(&client, &cursor).await.unwrap();
    client.set_data(&cursor, &at(1234), None).await.unwrap();

    let (hook_port, mut hooks) = webhook_receiver().await;
    let hook = format!("http://127.0.0.1:{hook_port}/hook");
    let dir = TestDir::new("otter-console-alarm-kinds").unwrap();
    let config = dir.path().join("manager.toml");
    std::fs::write(
        &config,
        format!(
            "[console]\nsample_secs = 1\n\n\
             [[console.users]]\nname = \"victor\"\npassword_hash = \"{}\"\nrole = \"viewer\"\n\n\
             [[console.alarms]]\nname = \"stuck\"\nkind = \"process_stuck\"\npipeline = {pid}\nabove_secs = 3.0\nwebhook = \"{hook}\"\n\n\
             [[console.alarms]]\nname = \"position\"\nkind = \"position_stuck\"\npipeline = {pid}\nabove_secs = 3.0\nwebhook = \"{hook}\"\n\n\
             [[console.alarms]]\nname = \"conflicts\"\nkind = \"conflicts\"\npipeline = {pid}\nabove_per_min = 100.0\nwebhook = \"{hook}\"\n\n\
             [[console.alarms]]\nname = \"stage\"\nkind = \"stage_exception\"\npipeline = {pid}\npause_secs = 5\nauto_recovery = true\nwebhook = \"{hook}\"\n",
            otter_manager::console::hash_password("victor-pass").unwrap()
        ),
    )
    .unwrap();
    let port = free_port();
    let _server = serve(&zk.connect_string(), port, &config).await;
    let victor = viewer(port).await;
    let mut aside = Vec::new();

    // The batch stays the oldest for more than 3 s: stuck fires; the window moves on: resolved.
    let fired = next_of(&mut hooks, &mut aside, "stuck").await;
    assert_eq!(fired["state"], "firing", "{fired}");
    assert!(
        fired["detail"]
            .as_str()
            .unwrap()
            .contains("oldest batch in flight for"),
        "{fired}"
    );
    let overview = page(&victor, port, "/").await;
    assert!(
        overview.contains("<tr class=\"alarm firing\"><td>stuck</td>"),
        "{overview}"
    );
    let second = zk_coord::otter_paths::process(cid, pid, "p0000000002");
    create(&client, &second, CreateMode::Persistent).await;
    client.delete(&first, None).await.unwrap();
    let resolved = next_of(&mut hooks, &mut aside, "stuck").await;
    assert_eq!(resolved["state"], "resolved", "{resolved}");
    // (An empty window from here on: nothing can be stuck while the rest is tested.)
    client.delete(&second, None).await.unwrap();

    // The acknowledged position stays put for more than 3 s: fires, naming it; it moves:
    // resolved. (The cursor then goes: nothing left to watch.)
    let fired = next_of(&mut hooks, &mut aside, "position").await;
    assert_eq!(fired["state"], "firing", "{fired}");
    assert!(
        fired["detail"]
            .as_str()
            .unwrap()
            .contains("source position mysql-bin.000003:1234 unchanged for"),
        "{fired}"
    );
    client.set_data(&cursor, &at(5678), None).await.unwrap();
    let resolved = next_of(&mut hooks, &mut aside, "position").await;
    assert_eq!(resolved["state"], "resolved", "{resolved}");
    client.delete(&cursor, None).await.unwrap();

    // 500 conflicts within one sample: far above 100 a minute; none after: resolved.
    conflicts.fetch_add(500, Ordering::SeqCst);
    let fired = next_of(&mut hooks, &mut aside, "conflicts").await;
    assert_eq!(fired["state"], "firing", "{fired}");
    let resolved = next_of(&mut hooks, &mut aside, "conflicts").await;
    assert_eq!(resolved["state"], "resolved", "{resolved}");

    // A stage fails once: the alarm fires, the channel is restarted (audited), and the rule stays
    // firing for its pause time although no stage fails any more.
    failures.fetch_add(1, Ordering::SeqCst);
    let fired = next_of(&mut hooks, &mut aside, "stage").await;
    assert_eq!(fired["state"], "firing", "{fired}");
    let resolved = next_of(&mut hooks, &mut aside, "stage").await;
    assert_eq!(resolved["state"], "resolved", "{resolved}");
    let paused_ms = resolved["at_ms"].as_i64().unwrap() - fired["at_ms"].as_i64().unwrap();
    assert!(paused_ms >= 5_000, "resolved {paused_ms} ms after firing");
    let t = Instant::now();
    let audit = loop {
        let audit = page(&victor, port, "/audit").await;
        if audit.contains("alarm stage") || t.elapsed() > Duration::from_secs(60) {
            break audit;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(
        audit.contains("<td>alarm stage</td><td>restart</td><td>channel 1</td><td>ok</td>"),
        "{audit}"
    );
    assert_eq!(
        otter_manager::get(&client, cid).await.unwrap().status,
        ChannelStatus::Started
    );
    // One call per state change: nothing else about these alarms arrived.
    tokio::time::sleep(Duration::from_secs(2)).await;
    while let Ok(v) = hooks.try_recv() {
        aside.push(v);
    }
    assert!(aside.is_empty(), "{aside:?}");
}
