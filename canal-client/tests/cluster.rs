//! `ClusterConnector` against a real ZooKeeper and fake Canal servers.
//!
//! No canal-server is needed: the tests write Canal's znodes themselves
//! (`/otter/canal/destinations/example/running` and `…/cluster/{ip:port}`)
//! to simulate what servers do, and the fake servers share one batch store
//! (as Canal servers share cursors through ZooKeeper), so a rollback on the
//! new server redelivers what the old one handed out.

mod support;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use canal_client::{
    CancellationToken, ClientError, ClusterConnector, ClusterError, ClusterOptions,
    ConnectorOptions, ConsumeOptions, ElectionRole, HandlerErrorPolicy, Message, ZkConfig,
};
use canal_protocol::PacketType;
use harness::{FaultProxy, ZooKeeper};
use support::{insert_entry, FakeServer, GetReply};
use zk_coord::{paths, RunningData};
use zookeeper_client::{Acls, Client, CreateMode, Error as ZkError};

const DEST: &str = "example";
const FILTER: &str = r"shop\..*";
const GRACE: Duration = Duration::from_millis(1000);

fn zk_config(servers: String) -> ZkConfig {
    ZkConfig {
        servers,
        session_timeout_ms: 2_000,
        connect_timeout_ms: 2_000,
        grace_ms: GRACE.as_millis() as u64,
        ..ZkConfig::default()
    }
}

fn options() -> ConnectorOptions {
    ConnectorOptions {
        username: "canal".into(),
        password: Some("123456".into()),
        so_timeout: Duration::from_secs(5),
        ..ConnectorOptions::default()
    }
}

fn cluster_options() -> ClusterOptions {
    ClusterOptions {
        call_deadline: Some(Duration::from_secs(15)),
        ..ClusterOptions::default()
    }
}

fn connector(zk: &ZooKeeper) -> ClusterConnector {
    ClusterConnector::new(zk_config(zk.connect_string()), DEST, options())
        .with_cluster_options(cluster_options())
}

fn batch(id: &str, offset: i64) -> GetReply {
    GetReply::Batch(vec![insert_entry(id, offset)])
}

/// The `id` values of every row in the message.
fn ids(message: &Message) -> Vec<String> {
    message
        .views()
        .filter_map(|v| v.unwrap().as_row_change().cloned())
        .flat_map(|rc| {
            rc.rows()
                .iter()
                .map(|r| r.after.value("id").unwrap().to_owned())
                .collect::<Vec<_>>()
        })
        .collect()
}

/// Writes the running node as a server that won the election would
/// (ephemeral in the test's session; overwritten if it exists).
async fn set_running(zk: &Client, address: &str) {
    zk_coord::ensure_path(zk, &paths::destination(DEST))
        .await
        .unwrap();
    let path = paths::running(DEST);
    let data = zk_coord::to_canal_json(&RunningData {
        active: true,
        address: address.into(),
    });
    let ephemeral = CreateMode::Ephemeral.with_acls(Acls::anyone_all());
    match zk.create(&path, &data, &ephemeral).await {
        Ok(_) => {}
        Err(ZkError::NodeExists) => {
            zk.set_data(&path, &data, None).await.unwrap();
        }
        Err(err) => panic!("create {path}: {err}"),
    }
}

/// Registers `address` as a candidate server of `dest`.
async fn add_cluster_member(zk: &Client, dest: &str, address: &str) {
    zk_coord::ensure_path(zk, &paths::destination_cluster(dest))
        .await
        .unwrap();
    let ephemeral = CreateMode::Ephemeral.with_acls(Acls::anyone_all());
    zk.create(
        &paths::destination_cluster_node(dest, address),
        &[],
        &ephemeral,
    )
    .await
    .unwrap();
}

async fn eventually(what: &str, limit: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn follows_the_running_node_to_another_server_resubscribing_and_rolling_back() {
    harness::init_tracing();
    let zk = ZooKeeper::start().await.unwrap();
    let admin = zk.client(Duration::from_secs(5)).await.unwrap();
    let a = FakeServer::start().await;
    let b = FakeServer::start_sharing(&a).await;
    // The second GET finds A silent: only the move to B can end it early.
    a.script([batch("1", 100), GetReply::Silent, batch("2", 200)]);
    set_running(&admin, &a.address()).await;

    let mut c = connector(&zk);
    c.connect().await.unwrap();
    assert_eq!(c.server_address(), Some(a.address().as_str()));
    c.subscribe(Some(FILTER)).await.unwrap();
    let first = c.get_without_ack(10, None).await.unwrap();
    assert_eq!((first.id, ids(&first)), (1, vec!["1".to_owned()]));

    // Not acked. The running node moves to B while a GET hangs on A.
    let mover = {
        let address = b.address();
        let admin = admin.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(300)).await;
            set_running(&admin, &address).await;
        })
    };
    let started = Instant::now();
    let again = c.get_without_ack(10, None).await.unwrap();
    mover.await.unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "the watch interrupted the GET hanging on A (so_timeout is 5 s): {:?}",
        started.elapsed()
    );
    assert_eq!(c.server_address(), Some(b.address().as_str()));
    assert_eq!(c.running_address(), Some(b.address()));
    assert_eq!(
        ids(&again),
        ["1"],
        "the batch A handed out and nobody acked comes again from B"
    );
    assert_eq!(again.id, 2, "batch ids are the connector's own");

    // The batch of the old connection can no longer be acked.
    assert!(matches!(
        c.ack(first.id).await,
        Err(ClusterError::BatchRolledBack { batch_id: 1 })
    ));
    c.ack(again.id).await.unwrap();
    let next = c.get(10, None).await.unwrap();
    assert_eq!((next.id, ids(&next)), (3, vec!["2".to_owned()]));
    assert!(matches!(
        c.ack(99).await,
        Err(ClusterError::Client(ClientError::InvalidBatchId(99)))
    ));

    b.wait_for("two acks on B", |s| s.acked.len() == 2).await;
    a.wait_for("A's connection closed", |s| s.closed == s.connections)
        .await;
    {
        let st = a.state();
        assert_eq!(
            st.types,
            [
                PacketType::Clientauthentication,
                PacketType::Clientrollback,
                PacketType::Subscription,
                PacketType::Get,
                PacketType::Get,
            ]
        );
        assert!(st.acked.is_empty(), "nothing was acked on A");
    }
    {
        let st = b.state();
        assert_eq!(st.connections, 1);
        assert_eq!(
            st.types[..3],
            [
                PacketType::Clientauthentication,
                PacketType::Subscription,
                PacketType::Clientrollback,
            ],
            "B: authenticate, re-subscribe with the same filter, then rollback(0)"
        );
        assert_eq!(st.subscriptions, [FILTER]);
        assert_eq!(st.rollbacks, [0]);
        // Server ids: A gave 1; B redelivered it as 2, then gave 3.
        assert_eq!(st.acked, [2, 3]);
    }

    c.disconnect().await.unwrap();
    b.wait_for("rollback(0) on disconnect", |s| s.rollbacks == [0, 0])
        .await;
    assert!(matches!(
        c.get(10, None).await,
        Err(ClusterError::NotConnected)
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consume_moves_to_the_new_running_server_without_losing_or_repeating_acked_batches() {
    harness::init_tracing();
    let zk = ZooKeeper::start().await.unwrap();
    let admin = zk.client(Duration::from_secs(5)).await.unwrap();
    let a = FakeServer::start().await;
    let b = FakeServer::start_sharing(&a).await;
    a.script([batch("1", 100), batch("2", 200)]);
    set_running(&admin, &a.address()).await;

    let mut c = connector(&zk);
    c.connect().await.unwrap();
    c.subscribe(Some(FILTER)).await.unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let shutdown = CancellationToken::new();
    let task = tokio::spawn({
        let seen = seen.clone();
        let shutdown = shutdown.clone();
        async move {
            let options = ConsumeOptions {
                batch_size: 10,
                poll_timeout: Duration::ZERO,
                on_handler_error: HandlerErrorPolicy::Stop,
            };
            let result = c
                .consume(&options, &shutdown, |message| {
                    let seen = seen.clone();
                    async move {
                        seen.lock().unwrap().extend(ids(&message));
                        Ok::<(), std::io::Error>(())
                    }
                })
                .await;
            (c, result)
        }
    });

    a.wait_for("both batches acked on A", |s| s.acked == [1, 2])
        .await;
    set_running(&admin, &b.address()).await;
    b.wait_for("B subscribed and rolled back", |s| {
        s.subscriptions == [FILTER] && s.rollbacks == [0]
    })
    .await;
    a.script([batch("3", 300), batch("4", 400)]);
    eventually("four rows handled", Duration::from_secs(10), || {
        seen.lock().unwrap().len() >= 4
    })
    .await;
    b.wait_for("both batches acked on B", |s| s.acked.len() == 2)
        .await;
    shutdown.cancel();
    let (mut c, result) = task.await.unwrap();
    result.unwrap();

    assert_eq!(*seen.lock().unwrap(), ["1", "2", "3", "4"]);
    assert_eq!(b.state().acked, [3, 4]);
    assert_eq!(a.state().acked, [1, 2]);
    a.wait_for("A's connection closed", |s| s.closed == 1).await;
    assert_eq!(
        b.state().types[..3],
        [
            PacketType::Clientauthentication,
            PacketType::Subscription,
            PacketType::Clientrollback,
        ]
    );
    c.disconnect().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_answering_400_not_active_makes_it_resolve_again_with_backoff() {
    harness::init_tracing();
    let zk = ZooKeeper::start().await.unwrap();
    let admin = zk.client(Duration::from_secs(5)).await.unwrap();
    let a = FakeServer::start().await;
    let b = FakeServer::start_sharing(&a).await;
    a.script([batch("1", 100)]);
    set_running(&admin, &a.address()).await;

    let mut c = connector(&zk);
    c.connect().await.unwrap();
    c.subscribe(None).await.unwrap();
    let first = c.get(10, None).await.unwrap();
    assert_eq!(ids(&first), ["1"]);
    a.wait_for("the ack reached A", |s| s.acked == [1]).await;

    // A loses the destination but the running node still names it for a
    // while: every attempt on A gets 400, then ZooKeeper names B.
    a.set_active(false);
    a.script([batch("2", 200)]);
    let mover = {
        let address = b.address();
        let admin = admin.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(1000)).await;
            set_running(&admin, &address).await;
        })
    };
    let started = Instant::now();
    let second = c.get_without_ack(10, None).await.unwrap();
    let elapsed = started.elapsed();
    mover.await.unwrap();
    assert_eq!(ids(&second), ["2"]);
    assert_eq!(c.server_address(), Some(b.address().as_str()));
    assert!(elapsed >= Duration::from_millis(900), "{elapsed:?}");
    {
        let st = a.state();
        // The first connection got 400 to its GET; each retry resolved the
        // address again (still A), reconnected and got 400 to SUBSCRIPTION.
        assert!(st.connections >= 3, "reconnected to A: {}", st.connections);
        // Backoff 100, 200, 400, 800 ms: no tight loop.
        assert!(
            st.connections <= 6,
            "backoff: {} connections",
            st.connections
        );
        let subs = st
            .types
            .iter()
            .filter(|t| **t == PacketType::Subscription)
            .count();
        assert_eq!(subs, st.connections, "every reconnection re-subscribed");
    }
    {
        let st = b.state();
        assert_eq!(
            st.types[..4],
            [
                PacketType::Clientauthentication,
                PacketType::Subscription,
                PacketType::Clientrollback,
                PacketType::Get,
            ]
        );
    }
    c.ack(second.id).await.unwrap();
    c.disconnect().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_running_node_it_falls_back_to_cluster_members() {
    harness::init_tracing();
    let zk = ZooKeeper::start().await.unwrap();
    let admin = zk.client(Duration::from_secs(5)).await.unwrap();
    let a = FakeServer::start().await;
    let b = FakeServer::start_sharing(&a).await;
    add_cluster_member(&admin, DEST, &a.address()).await;
    // Not host:port: ignored, as the Java client does.
    add_cluster_member(&admin, DEST, "not-an-address").await;

    let mut c = connector(&zk);
    c.connect().await.unwrap();
    assert_eq!(c.running_address(), None);
    assert_eq!(c.server_address(), Some(a.address().as_str()));
    a.script([batch("1", 100)]);
    assert_eq!(ids(&c.get(10, None).await.unwrap()), ["1"]);

    // A running node appears: it wins over the cluster member.
    set_running(&admin, &b.address()).await;
    eventually("running node seen", Duration::from_secs(5), || {
        c.running_address() == Some(b.address())
    })
    .await;
    a.script([batch("2", 200)]);
    assert_eq!(ids(&c.get(10, None).await.unwrap()), ["2"]);
    assert_eq!(c.server_address(), Some(b.address().as_str()));
    c.disconnect().await.unwrap();

    // No server at all: retried (logged) until the deadline.
    let mut lonely = ClusterConnector::new(zk_config(zk.connect_string()), "lonely", options())
        .with_cluster_options(ClusterOptions {
            call_deadline: Some(Duration::from_millis(700)),
            ..ClusterOptions::default()
        });
    let err = lonely.connect().await.unwrap_err();
    match &err {
        ClusterError::GaveUp { attempts, last, .. } => {
            assert!(*attempts >= 2, "{err}");
            assert!(matches!(**last, ClusterError::NoServer { .. }), "{err}");
        }
        other => panic!("expected GaveUp, got {other}"),
    }

    // A member registering while connect() retries is picked up at once.
    let mut late = ClusterConnector::new(zk_config(zk.connect_string()), "late", options())
        .with_cluster_options(cluster_options());
    let register = {
        let admin = admin.clone();
        let address = a.address();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(500)).await;
            add_cluster_member(&admin, "late", &address).await;
        })
    };
    late.connect().await.unwrap();
    register.await.unwrap();
    assert_eq!(late.server_address(), Some(a.address().as_str()));
    late.disconnect().await.unwrap();

    // Non-retryable failures are not retried.
    let mut wrong = ClusterConnector::new(
        zk_config(zk.connect_string()),
        DEST,
        ConnectorOptions {
            password: Some("wrong".into()),
            ..options()
        },
    )
    .with_cluster_options(cluster_options());
    let before = b.state().connections;
    let started = Instant::now();
    let err = wrong.connect().await.unwrap_err();
    assert!(
        matches!(
            err,
            ClusterError::Client(ClientError::Auth { code: 400, .. })
        ),
        "{err}"
    );
    assert!(started.elapsed() < Duration::from_secs(2));
    assert_eq!(b.state().connections, before + 1, "one attempt only");
}

/// Handled batches: (consumer, row id, when).
type Log = Arc<Mutex<Vec<(u8, String, Instant)>>>;

fn spawn_consumer(
    who: u8,
    mut c: ClusterConnector,
    log: Log,
    shutdown: CancellationToken,
) -> tokio::task::JoinHandle<(ClusterConnector, Result<(), String>)> {
    tokio::spawn(async move {
        let options = ConsumeOptions {
            batch_size: 10,
            poll_timeout: Duration::ZERO,
            on_handler_error: HandlerErrorPolicy::Stop,
        };
        let result = c
            .consume(&options, &shutdown, |message| {
                let log = log.clone();
                async move {
                    let now = Instant::now();
                    log.lock()
                        .unwrap()
                        .extend(ids(&message).into_iter().map(|id| (who, id, now)));
                    Ok::<(), std::io::Error>(())
                }
            })
            .await
            .map_err(|e| e.to_string());
        (c, result)
    })
}

async fn client_running_json(zk: &Client) -> String {
    let (data, _) = zk
        .get_data(&paths::client_running(DEST, 1001))
        .await
        .unwrap();
    String::from_utf8(data).unwrap()
}

async fn wait_role(c: &ClusterConnector, want: impl Fn(&ElectionRole) -> bool) {
    eventually("election role", Duration::from_secs(20), || {
        c.election_role().as_ref().is_some_and(&want)
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_consumer_per_client_id_and_the_standby_takes_over_at_once_when_the_active_stops() {
    harness::init_tracing();
    let zk = ZooKeeper::start().await.unwrap();
    let admin = zk.client(Duration::from_secs(5)).await.unwrap();
    let server = FakeServer::start().await;
    set_running(&admin, &server.address()).await;

    let mut c1 = connector(&zk).with_client_election("10.0.0.1:5001");
    c1.connect().await.unwrap();
    assert_eq!(c1.election_role(), Some(ElectionRole::Active));
    c1.subscribe(None).await.unwrap();
    // Single calls of a standby wait for the role up to their deadline;
    // consume() (below) waits as long as it takes.
    // The standby's grace is longer than the test waits below: only a hand-over that skips it
    // (the stopping consumer marks its node released) passes.
    let mut c2 = ClusterConnector::new(
        ZkConfig {
            grace_ms: 60_000,
            ..zk_config(zk.connect_string())
        },
        DEST,
        options(),
    )
    .with_cluster_options(ClusterOptions {
        call_deadline: Some(Duration::from_millis(300)),
        ..ClusterOptions::default()
    })
    .with_client_election("10.0.0.2:5002");
    c2.connect().await.unwrap();
    assert_eq!(
        c2.election_role(),
        Some(ElectionRole::Standby {
            owner: Some("10.0.0.1:5001".into())
        })
    );
    assert!(!c2.is_active());
    assert!(!c2.is_connected(), "a standby does not connect");
    c2.subscribe(None).await.unwrap();
    let err = c2.get_without_ack(10, None).await.unwrap_err();
    assert!(
        matches!(err.last(), ClusterError::NotActive { owner: Some(o) } if o == "10.0.0.1:5001"),
        "{err}"
    );
    assert_eq!(
        client_running_json(&admin).await,
        r#"{"active":true,"address":"10.0.0.1:5001","clientId":1001}"#,
        "Canal's ClientRunningData, byte for byte"
    );

    let log: Log = Arc::default();
    let stop1 = CancellationToken::new();
    let stop2 = CancellationToken::new();
    let t1 = spawn_consumer(1, c1, log.clone(), stop1.clone());
    let t2 = spawn_consumer(2, c2, log.clone(), stop2.clone());
    server.script([batch("1", 100), batch("2", 200), batch("3", 300)]);
    eventually("three rows handled", Duration::from_secs(10), || {
        log.lock().unwrap().len() >= 3
    })
    .await;
    server
        .wait_for("three acks", |s| s.acked == [1, 2, 3])
        .await;
    assert!(log.lock().unwrap().iter().all(|(who, _, _)| *who == 1));
    assert_eq!(
        server.state().connections,
        1,
        "only the active one connected"
    );

    // The active consumer stops: it marks its node released and deletes it; the
    // standby takes over at once (the grace is for crashes), subscribes and rolls back.
    stop1.cancel();
    let (mut c1, result) = t1.await.unwrap();
    result.unwrap();
    c1.disconnect().await.unwrap();
    server.script([batch("4", 400), batch("5", 500)]);
    eventually("five rows handled", Duration::from_secs(20), || {
        log.lock().unwrap().len() >= 5
    })
    .await;
    let log = log.lock().unwrap().clone();
    let rows: Vec<(u8, &str)> = log.iter().map(|(w, id, _)| (*w, id.as_str())).collect();
    assert_eq!(
        rows,
        [(1, "1"), (1, "2"), (1, "3"), (2, "4"), (2, "5")],
        "each batch handled once, by the active consumer"
    );
    assert_eq!(
        client_running_json(&admin).await,
        r#"{"active":true,"address":"10.0.0.2:5002","clientId":1001}"#
    );
    server
        .wait_for("five acks", |s| s.acked == [1, 2, 3, 4, 5])
        .await;

    stop2.cancel();
    let (mut c2, result) = t2.await.unwrap();
    result.unwrap();
    c2.disconnect().await.unwrap();
    assert!(admin
        .check_stat(&paths::client_running(DEST, 1001))
        .await
        .unwrap()
        .is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_consumer_cut_off_from_zookeeper_stops_and_the_standby_takes_over() {
    harness::init_tracing();
    let zk = ZooKeeper::start().await.unwrap();
    let admin = zk.client(Duration::from_secs(5)).await.unwrap();
    let proxy = FaultProxy::start(zk.members()[0].addr().parse().unwrap()).unwrap();
    let server = FakeServer::start().await;
    set_running(&admin, &server.address()).await;

    // c1 reaches ZooKeeper only through the proxy.
    let mut c1 = ClusterConnector::new(zk_config(proxy.addr().to_string()), DEST, options())
        .with_cluster_options(cluster_options())
        .with_client_election("10.0.0.1:5001");
    c1.connect().await.unwrap();
    assert_eq!(c1.election_role(), Some(ElectionRole::Active));
    let mut c2 = connector(&zk).with_client_election("10.0.0.2:5002");
    c2.connect().await.unwrap();
    wait_role(&c2, |r| matches!(r, ElectionRole::Standby { .. })).await;

    let log: Log = Arc::default();
    let stop1 = CancellationToken::new();
    let stop2 = CancellationToken::new();
    let t1 = spawn_consumer(1, c1, log.clone(), stop1.clone());
    let t2 = spawn_consumer(2, c2, log.clone(), stop2.clone());
    server.script([batch("1", 100)]);
    server.wait_for("first ack", |s| s.acked == [1]).await;

    // Silence c1's ZooKeeper link: it must drop its server connection
    // (without acking or rolling back) once its lease lapses.
    proxy.stall();
    let stalled = Instant::now();
    server
        .wait_for_within("c1 closed its connection", Duration::from_secs(10), |s| {
            s.closed == 1
        })
        .await;
    let c1_stopped = stalled.elapsed();
    assert!(
        c1_stopped <= Duration::from_secs(4),
        "fenced within about a session timeout: {c1_stopped:?}"
    );
    {
        let st = server.state();
        assert_eq!(st.connections, 1, "c2 has not connected yet");
        assert_eq!(st.rollbacks, [0], "c1 left without a rollback");
    }
    server.script([batch("2", 200), batch("3", 300)]);
    eventually("c2 handled the rest", Duration::from_secs(20), || {
        log.lock().unwrap().len() >= 3
    })
    .await;
    let rows: Vec<(u8, String)> = log
        .lock()
        .unwrap()
        .iter()
        .map(|(w, id, _)| (*w, id.clone()))
        .collect();
    assert_eq!(
        rows,
        [(1, "1".into()), (2, "2".into()), (2, "3".into())],
        "after the cut only the new active consumer handles batches"
    );
    assert!(
        stalled.elapsed() >= GRACE,
        "c2 took over only after session expiry and the grace delay"
    );
    assert_eq!(
        client_running_json(&admin).await,
        r#"{"active":true,"address":"10.0.0.2:5002","clientId":1001}"#
    );

    stop2.cancel();
    let (mut c2, result) = t2.await.unwrap();
    result.unwrap();
    c2.disconnect().await.unwrap();
    proxy.pass();
    stop1.cancel();
    let (mut c1, result) = t1.await.unwrap();
    result.unwrap();
    assert!(!c1.is_connected());
    c1.disconnect().await.unwrap();
}
