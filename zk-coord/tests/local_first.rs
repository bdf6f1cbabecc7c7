//! Local-first ZooKeeper members with a real ensemble: voters in site A, observers in site B, the
//! site-B client's connect string naming its observers first and the voters (reachable only
//! through a WAN proxy) as the fall-back group.

use std::time::{Duration, Instant};

use harness::{FaultProxy, Wan, ZkMember, ZooKeeper};
use zk_coord::ZkConfig;
use zookeeper_client::{Acls, Client, CreateMode};

const WAIT: Duration = Duration::from_secs(60);

fn packets_received(m: &ZkMember) -> u64 {
    m.mntr()
        .ok()
        .and_then(|m| m.get("zk_packets_received").and_then(|v| v.parse().ok()))
        .unwrap_or(0)
}

/// Index of the member whose `cons` lists the session, waiting for the client to settle on one.
async fn member_serving(zk: &ZooKeeper, client: &Client) -> usize {
    let sid = client.session_id().0;
    let deadline = Instant::now() + WAIT;
    loop {
        if let Some(i) = zk.members().iter().position(|m| m.serves_session(sid)) {
            return i;
        }
        assert!(
            Instant::now() < deadline,
            "no member serves session {sid:#x}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn site_b_reads_from_its_observers_and_falls_back_to_the_voters() {
    harness::init_tracing();
    let mut zk = ZooKeeper::start_with_remote_observers(3, 2)
        .await
        .expect("3 voters in site A, 2 observers in site B");
    zk.set_site_wan(Wan::symmetric(Duration::from_millis(50)));
    // Site B reaches the voters' client ports only across the WAN.
    let wan: Vec<FaultProxy> = zk.members()[..3]
        .iter()
        .map(|m| {
            let p = FaultProxy::start(([127, 0, 0, 1], m.client_port()).into()).expect("proxy");
            p.set_wan(Wan::symmetric(Duration::from_millis(50)));
            p
        })
        .collect();
    let observers = format!("{},{}", zk.members()[3].addr(), zk.members()[4].addr());
    let voters: Vec<String> = wan.iter().map(|p| p.addr().to_string()).collect();
    let cfg = ZkConfig {
        servers: format!("{observers};{}", voters.join(",")),
        session_timeout_ms: 4_000,
        connect_timeout_ms: 1_000,
        ..Default::default()
    };
    cfg.validate().expect("valid config");
    let crossed = || wan.iter().map(|p| p.accepted_connections()).sum::<usize>();

    // Reads are served by an observer: its counters move, nothing crossed the WAN.
    let client = cfg.connect().await.expect("session");
    let first = member_serving(&zk, &client).await;
    assert!(
        zk.members()[first].is_observer(),
        "session on member {first}"
    );
    let persistent = CreateMode::Persistent.with_acls(Acls::anyone_all());
    client
        .create("/local-first", b"v", &persistent)
        .await
        .expect("write through the observer");
    let before = packets_received(&zk.members()[first]);
    for _ in 0..20 {
        let (data, _) = client.get_data("/local-first").await.expect("read");
        assert_eq!(data, b"v");
    }
    let after = packets_received(&zk.members()[first]);
    assert!(after >= before + 20, "observer packets {before} -> {after}");
    assert_eq!(crossed(), 0, "a site-B session crossed the WAN");

    // Kill that observer: the session moves to the other one, still in site B.
    let sid = client.session_id();
    zk.member_mut(first).kill9().expect("kill observer");
    let deadline = Instant::now() + WAIT;
    loop {
        if client.get_data("/local-first").await.is_ok() {
            break;
        }
        assert!(Instant::now() < deadline, "session did not move");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(client.session_id(), sid, "same session");
    let second = member_serving(&zk, &client).await;
    assert!(second != first && zk.members()[second].is_observer());
    assert_eq!(crossed(), 0);

    // No observer left: a new session opens on the voters, across the WAN.
    zk.member_mut(second)
        .kill9()
        .expect("kill the other observer");
    drop(client);
    let remote = cfg.connect().await.expect("session on the voters");
    let on = member_serving(&zk, &remote).await;
    assert!(
        !zk.members()[on].is_observer(),
        "fell back to voter, got {on}"
    );
    assert!(crossed() > 0);
    let (data, _) = remote.get_data("/local-first").await.expect("read");
    assert_eq!(data, b"v");

    // Observers back: the next session is local again.
    zk.member_mut(first)
        .restart()
        .await
        .expect("restart observer");
    zk.member_mut(second)
        .restart()
        .await
        .expect("restart observer");
    let crossed_before = crossed();
    let back = cfg.connect().await.expect("session");
    let on = member_serving(&zk, &back).await;
    assert!(
        zk.members()[on].is_observer(),
        "back on an observer, got {on}"
    );
    assert_eq!(crossed(), crossed_before, "the new session did not cross");
}
