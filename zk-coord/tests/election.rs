//! The running-node election against a real ZooKeeper.

use std::time::Duration;

use harness::ZooKeeper;
use zk_coord::election::{Election, ElectionSpec, Role};
use zk_coord::{RunningData, ZkConfig};

fn cfg(zk: &ZooKeeper, grace_ms: u64) -> ZkConfig {
    ZkConfig {
        servers: zk.connect_string(),
        session_timeout_ms: 2_000,
        connect_timeout_ms: 2_000,
        grace_ms,
        ..Default::default()
    }
}

fn spec(addr: &str) -> ElectionSpec {
    ElectionSpec {
        path: "/otter/canal/destinations/example/running".into(),
        candidate_path: Some(format!("/otter/canal/destinations/example/cluster/{addr}")),
        address: addr.into(),
        data: zk_coord::to_canal_json(&RunningData {
            active: true,
            address: addr.into(),
        }),
    }
}

async fn wait_role(e: &Election, want: impl Fn(&Role) -> bool) -> Role {
    let mut w = e.watch();
    let r = tokio::time::timeout(Duration::from_secs(30), w.wait_for(|r| want(r)))
        .await
        .unwrap_or_else(|_| panic!("role not reached; now {:?}", e.role()))
        .unwrap()
        .clone();
    r
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_graceful_stop_or_operator_hand_over_moves_the_node_without_the_grace() {
    harness::init_tracing();
    let zk = ZooKeeper::start().await.unwrap();
    let a = Election::spawn(cfg(&zk, 1500), spec("10.0.0.1:11111"));
    wait_role(&a, |r| *r == Role::Active).await;
    assert!(a.may_serve());
    // B's grace is longer than `wait_role` waits: only a hand-over that skips it passes.
    let b = Election::spawn(cfg(&zk, 120_000), spec("10.0.0.2:11111"));
    let r = wait_role(&b, |r| matches!(r, Role::Standby { .. })).await;
    assert_eq!(
        r,
        Role::Standby {
            owner: Some("10.0.0.1:11111".into())
        }
    );
    assert!(!b.may_serve());

    let client = zk.client(Duration::from_secs(5)).await.unwrap();
    let (data, _) = client
        .get_data("/otter/canal/destinations/example/running")
        .await
        .unwrap();
    assert_eq!(
        String::from_utf8(data).unwrap(),
        r#"{"active":true,"address":"10.0.0.1:11111"}"#
    );
    let cluster = client
        .list_children("/otter/canal/destinations/example/cluster")
        .await
        .unwrap();
    assert_eq!(cluster.len(), 2);

    // Graceful stop of A: it marks the node `"active":false` and deletes it; B takes over at
    // once (the grace delay is for crashes).
    a.stop().await;
    wait_role(&b, |r| *r == Role::Active).await;

    // Operator hand-over: write active:false with the owner's address.
    let c = Election::spawn(cfg(&zk, 300), spec("10.0.0.3:11111"));
    wait_role(&c, |r| matches!(r, Role::Standby { .. })).await;
    client
        .set_data(
            "/otter/canal/destinations/example/running",
            br#"{"active":false,"address":"10.0.0.2:11111"}"#,
            None,
        )
        .await
        .unwrap();
    wait_role(&c, |r| *r == Role::Active).await;
    // B released and waits its grace delay, then sees C as the owner.
    wait_role(&b, |r| {
        *r == Role::Standby {
            owner: Some("10.0.0.3:11111".into()),
        }
    })
    .await;
    assert!(!b.may_serve());
    b.stop().await;
    c.stop().await;
    assert!(client
        .check_stat("/otter/canal/destinations/example/running")
        .await
        .unwrap()
        .is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn losing_zookeeper_pauses_then_fences_and_a_former_owner_retakes_at_once() {
    harness::init_tracing();
    let zk = ZooKeeper::start().await.unwrap();
    let proxy = harness::FaultProxy::start(zk.members()[0].addr().parse().unwrap()).unwrap();
    let mut c = cfg(&zk, 3000);
    c.servers = proxy.addr().to_string();
    let a = Election::spawn(c, spec("10.0.0.1:11111"));
    wait_role(&a, |r| *r == Role::Active).await;
    // Stall the link: first Paused (no hand-out), then Fenced once the session must be gone.
    proxy.stall();
    wait_role(&a, |r| *r == Role::Paused || *r == Role::Fenced).await;
    assert!(!a.may_serve(), "no hand-out while the connection is lost");
    wait_role(&a, |r| *r == Role::Fenced || matches!(r, Role::Starting)).await;
    // The link comes back; A's old node expired, and as former owner it re-takes at once.
    proxy.pass();
    proxy.cut();
    wait_role(&a, |r| *r == Role::Active).await;
    assert!(a.may_serve());
    a.stop().await;
}

/// Every win bumps the running node's parent's data version (keeping its data), so a fence taken
/// in one ownership is rejected in the next even though the re-created running node is at the
/// same version again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_win_is_a_new_fence() {
    harness::init_tracing();
    let zk = ZooKeeper::start().await.unwrap();
    let client = zk.client(Duration::from_secs(5)).await.unwrap();
    zk_coord::ensure_path(&client, "/otter/canal/destinations/example")
        .await
        .unwrap();
    client
        .set_data("/otter/canal/destinations/example", b"keep", None)
        .await
        .unwrap();
    let a = Election::spawn(cfg(&zk, 100), spec("10.0.0.1:11111"));
    wait_role(&a, |r| *r == Role::Active).await;
    let first = a.fencing().unwrap().current().unwrap();
    a.stop().await;
    let b = Election::spawn(cfg(&zk, 100), spec("10.0.0.2:11111"));
    wait_role(&b, |r| *r == Role::Active).await;
    let second = b.fencing().unwrap().current().unwrap();
    let (data, stat) = client
        .get_data("/otter/canal/destinations/example")
        .await
        .unwrap();
    assert_eq!(data, b"keep");
    assert_eq!(second.token.as_ref().unwrap().1, stat.version);
    assert!(second.token.as_ref().unwrap().1 > first.token.as_ref().unwrap().1);
    assert_eq!(first.running_version, second.running_version);

    let mut stale = client.new_multi_writer();
    first.add_checks(&mut stale).unwrap();
    stale
        .add_create(
            "/x",
            b"",
            &zookeeper_client::CreateMode::Persistent
                .with_acls(zookeeper_client::Acls::anyone_all()),
        )
        .unwrap();
    let err = stale.commit().await.unwrap_err();
    assert!(first.rejected(&err), "{err}");
    assert!(client.check_stat("/x").await.unwrap().is_none());
    let mut current = client.new_multi_writer();
    second.add_checks(&mut current).unwrap();
    current
        .add_create(
            "/x",
            b"",
            &zookeeper_client::CreateMode::Persistent
                .with_acls(zookeeper_client::Acls::anyone_all()),
        )
        .unwrap();
    current.commit().await.unwrap();
    b.stop().await;
}
