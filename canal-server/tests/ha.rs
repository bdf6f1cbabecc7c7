//! HA with real processes: two canal-server binaries, a real ZooKeeper, a real MariaDB.

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::server::*;
use harness::{MariaDb, ZooKeeper};

const SESSION_MS: u64 = 2_000;
const GRACE_MS: u64 = 2_000;

async fn source() -> MariaDb {
    let db = MariaDb::start().await.unwrap();
    db.exec("CREATE DATABASE shop; CREATE TABLE shop.t (id BIGINT PRIMARY KEY, v VARCHAR(20))")
        .await
        .unwrap();
    db
}

fn zk_section(servers: &str) -> String {
    format!(
        "[zookeeper]\nservers = \"{servers}\"\nsession_timeout_ms = {SESSION_MS}\nconnect_timeout_ms = 1000\ngrace_ms = {GRACE_MS}\n"
    )
}

/// Starts a server in HA mode; `zk_servers` may point through a FaultProxy.
async fn ha_server(db: &MariaDb, zk_servers: &str) -> ServerProc {
    ServerProc::start_with(
        server_bin(),
        db,
        "flush_period_ms = 0\n",
        "",
        &zk_section(zk_servers),
    )
    .await
}

async fn wait_running(
    zk: &zookeeper_client::Client,
    want: Option<&str>,
    limit: Duration,
) -> (String, Duration) {
    let t = Instant::now();
    loop {
        if let Some(a) = running_address(zk).await {
            if want.is_none_or(|w| w == a) {
                return (a, t.elapsed());
            }
        }
        assert!(
            t.elapsed() < limit,
            "running node not at {want:?} within {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A consumer that follows the running node; records every delivered row and which deliveries
/// were confirmed acked (a later request on the same connection got its reply).
#[derive(Default)]
struct Tally {
    delivered: BTreeMap<String, usize>,
    confirmed: BTreeMap<String, usize>,
}

async fn consume_following(
    zk: &zookeeper_client::Client,
    want_rows: usize,
    deadline: Duration,
) -> Tally {
    let mut tally = Tally::default();
    let t = Instant::now();
    'reconnect: loop {
        assert!(
            t.elapsed() < deadline,
            "only {} of {want_rows} rows",
            tally.delivered.len()
        );
        let Some(addr) = running_address(zk).await else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let Ok(Some(mut c)) = tokio::time::timeout(
            Duration::from_secs(3),
            RawClient::try_subscribed(&addr, "1001"),
        )
        .await
        else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let mut pending: Option<Vec<String>> = None;
        loop {
            if tally.delivered.len() >= want_rows && pending.is_none() {
                return tally;
            }
            assert!(
                t.elapsed() < deadline,
                "only {} of {want_rows} rows",
                tally.delivered.len()
            );
            let got = match tokio::time::timeout(Duration::from_secs(5), c.try_get("1001", 50, 100))
                .await
            {
                Ok(Some(r)) => r,
                _ => continue 'reconnect,
            };
            // The reply proves the server processed our previous ack.
            if let Some(ids) = pending.take() {
                for id in ids {
                    *tally.confirmed.entry(id).or_default() += 1;
                }
            }
            match got {
                Ok(m) if m.batch_id != -1 => {
                    let ids = row_ids(&entries(&m));
                    for id in &ids {
                        *tally.delivered.entry(id.clone()).or_default() += 1;
                    }
                    if tokio::time::timeout(Duration::from_secs(5), c.ack("1001", m.batch_id))
                        .await
                        .is_err()
                    {
                        continue 'reconnect;
                    }
                    pending = Some(ids);
                }
                Ok(_) => {}
                Err(_) => continue 'reconnect,
            }
        }
    }
}

/// Writes rows `from..to` in small transactions, spread over time.
async fn write_load(db_port: u16, from: i64, to: i64, pause: Duration) {
    let opts = mysql_async::OptsBuilder::default()
        .ip_or_hostname("127.0.0.1")
        .tcp_port(db_port)
        .user(Some("root"))
        .prefer_socket(false);
    let mut c = mysql_async::Conn::new(opts).await.unwrap();
    for id in from..to {
        use mysql_async::prelude::Queryable;
        c.query_drop(format!("INSERT INTO shop.t VALUES ({id}, 'x')"))
            .await
            .unwrap();
        tokio::time::sleep(pause).await;
    }
}

fn check_tally(t: &Tally, n: i64) {
    for id in 0..n {
        let id = id.to_string();
        let delivered = t.delivered.get(&id).copied().unwrap_or(0);
        assert!(delivered >= 1, "row {id} lost");
        let confirmed = t.confirmed.get(&id).copied().unwrap_or(0);
        assert!(
            confirmed <= 1,
            "row {id} was delivered again after a confirmed ack"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill9_of_the_active_fails_over_without_loss() {
    harness::init_tracing();
    let db = source().await;
    let zk = ZooKeeper::start().await.unwrap();
    let mut a = ha_server(&db, &zk.connect_string()).await;
    let zc = zk.client(Duration::from_secs(10)).await.unwrap();
    wait_running(&zc, Some(&a.addr()), Duration::from_secs(30)).await;
    // Rows written before the active resolved its start (the current end) are not its to send.
    wait_streaming(&a).await;
    let b = ha_server(&db, &zk.connect_string()).await;

    let writer = tokio::spawn(write_load(db.port(), 0, 150, Duration::from_millis(20)));
    let zc2 = zk.client(Duration::from_secs(10)).await.unwrap();
    let consumer =
        tokio::spawn(async move { consume_following(&zc2, 150, Duration::from_secs(120)).await });
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let killed = Instant::now();
    a.kill9();
    let (_, took) = wait_running(&zc, Some(&b.addr()), Duration::from_secs(60)).await;
    let failover = killed.elapsed();
    println!("FAILOVER kill9 {:?} (node seen after {took:?})", failover);
    assert!(
        failover <= Duration::from_millis(SESSION_MS + GRACE_MS + 2_000) + Duration::from_secs(3),
        "standby took over in {failover:?}"
    );
    writer.await.unwrap();
    let tally = consumer.await.unwrap();
    check_tally(&tally, 150);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn short_sigstop_keeps_the_active_long_sigstop_fences_it() {
    harness::init_tracing();
    let db = source().await;
    let zk = ZooKeeper::start().await.unwrap();
    let mut a = ha_server(&db, &zk.connect_string()).await;
    let zc = zk.client(Duration::from_secs(10)).await.unwrap();
    wait_running(&zc, Some(&a.addr()), Duration::from_secs(30)).await;
    // Rows written before the active resolved its start (the current end) are not its to send.
    wait_streaming(&a).await;
    let b = ha_server(&db, &zk.connect_string()).await;
    tokio::time::sleep(Duration::from_millis(500)).await;

    // Shorter than the session timeout: no handover.
    a.pause();
    tokio::time::sleep(Duration::from_millis(SESSION_MS / 3)).await;
    a.resume();
    tokio::time::sleep(Duration::from_millis(SESSION_MS + GRACE_MS + 500)).await;
    assert_eq!(
        running_address(&zc).await.as_deref(),
        Some(a.addr().as_str()),
        "no handover"
    );

    // Longer than the session timeout: B takes over after the grace delay; A is fenced.
    a.pause();
    let paused = Instant::now();
    let (_, _) = wait_running(&zc, Some(&b.addr()), Duration::from_secs(60)).await;
    let took = paused.elapsed();
    println!("FAILOVER sigstop {took:?}");
    assert!(
        took >= Duration::from_millis(GRACE_MS),
        "grace respected: {took:?}"
    );
    a.resume();
    // The resumed server serves nothing for the destination and re-joins as standby.
    let mut fenced = false;
    for _ in 0..200 {
        let health = http_get(a.admin_port, "/health").await.unwrap_or_default();
        if health.contains("\"role\":\"standby\"") {
            fenced = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(fenced, "resumed server re-joins as standby");
    let mut c = RawClient::connect(&a.addr()).await;
    c.auth("", None).await;
    let ack = c.sub("1001", "").await;
    assert_eq!(ack.error_code, Some(400));
    assert!(
        ack.error_message.contains("not active on this server"),
        "{}",
        ack.error_message
    );
    drop(b);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_stop_hands_over_without_the_grace_or_duplicates() {
    harness::init_tracing();
    let db = source().await;
    let zk = ZooKeeper::start().await.unwrap();
    let mut a = ha_server(&db, &zk.connect_string()).await;
    let zc = zk.client(Duration::from_secs(10)).await.unwrap();
    wait_running(&zc, Some(&a.addr()), Duration::from_secs(30)).await;
    // Rows written before the active resolved its start (the current end) are not its to send.
    wait_streaming(&a).await;
    let b = ha_server(&db, &zk.connect_string()).await;
    write_load(db.port(), 0, 30, Duration::ZERO).await;
    let zc2 = zk.client(Duration::from_secs(10)).await.unwrap();
    let first = consume_following(&zc2, 30, Duration::from_secs(60)).await;
    let stopped = Instant::now();
    a.stop();
    let _ = wait_running(&zc, Some(&b.addr()), Duration::from_secs(60)).await;
    let took = stopped.elapsed();
    println!("FAILOVER graceful {took:?}");
    assert!(
        took < Duration::from_millis(GRACE_MS) + Duration::from_secs(30),
        "sanity: {took:?}"
    );
    write_load(db.port(), 30, 60, Duration::ZERO).await;
    let second = consume_following(&zc2, 30, Duration::from_secs(60)).await;
    let again: Vec<_> = second
        .delivered
        .keys()
        .filter(|k| first.delivered.contains_key(*k))
        .collect();
    assert!(
        again.is_empty(),
        "no row delivered twice across a graceful handover: {again:?}"
    );
    let ids: Vec<i64> = second
        .delivered
        .keys()
        .map(|k| k.parse().unwrap())
        .collect();
    assert_eq!(ids.len(), 30);
    assert!(ids.iter().all(|i| (30..60).contains(i)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zookeeper_link_cut_short_keeps_long_fences() {
    harness::init_tracing();
    let db = source().await;
    let zk = ZooKeeper::start().await.unwrap();
    let proxy = harness::FaultProxy::start(zk.members()[0].addr().parse().unwrap()).unwrap();
    let a = ha_server(&db, &proxy.addr().to_string()).await;
    let zc = zk.client(Duration::from_secs(10)).await.unwrap();
    wait_running(&zc, Some(&a.addr()), Duration::from_secs(30)).await;
    // Rows written before the active resolved its start (the current end) are not its to send.
    wait_streaming(&a).await;
    let b = ha_server(&db, &zk.connect_string()).await;
    write_load(db.port(), 0, 20, Duration::ZERO).await;
    let zc2 = zk.client(Duration::from_secs(10)).await.unwrap();
    let first = consume_following(&zc2, 20, Duration::from_secs(60)).await;

    // A short stall of A's ZooKeeper link: A pauses hand-out, then resumes; no handover.
    proxy.stall();
    tokio::time::sleep(Duration::from_millis(SESSION_MS / 3)).await;
    proxy.pass();
    tokio::time::sleep(Duration::from_millis(SESSION_MS + GRACE_MS + 500)).await;
    assert_eq!(
        running_address(&zc).await.as_deref(),
        Some(a.addr().as_str()),
        "no handover"
    );
    write_load(db.port(), 20, 40, Duration::ZERO).await;
    let second = consume_following(&zc2, 20, Duration::from_secs(60)).await;
    let again: Vec<_> = second
        .delivered
        .keys()
        .filter(|k| first.delivered.contains_key(*k))
        .collect();
    assert!(
        again.is_empty(),
        "no duplicate after a short cut: {again:?}"
    );

    // A long cut: B takes over after the grace delay; A stops serving.
    proxy.stall();
    let cut = Instant::now();
    wait_running(&zc, Some(&b.addr()), Duration::from_secs(60)).await;
    println!("FAILOVER partition {:?}", cut.elapsed());
    assert!(cut.elapsed() >= Duration::from_millis(GRACE_MS));
    let mut served_by_a = false;
    if let Some(mut c) = RawClient::try_subscribed(&a.addr(), "1001").await {
        if let Some(Ok(m)) = c.try_get("1001", 10, 200).await {
            served_by_a = m.batch_id != -1;
        }
    }
    assert!(!served_by_a, "the partitioned server hands out nothing");
    write_load(db.port(), 40, 60, Duration::ZERO).await;
    let third = consume_following(&zc2, 20, Duration::from_secs(60)).await;
    for id in 40..60 {
        assert!(
            third.delivered.contains_key(&id.to_string()),
            "row {id} from the new active"
        );
    }
    proxy.pass();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn losing_one_member_of_a_zookeeper_ensemble_moves_nothing() {
    harness::init_tracing();
    let db = source().await;
    let mut zk = ZooKeeper::start_ensemble().await.unwrap();
    let a = ha_server(&db, &zk.connect_string()).await;
    let zc = zk.client(Duration::from_secs(10)).await.unwrap();
    wait_running(&zc, Some(&a.addr()), Duration::from_secs(30)).await;
    // Rows written before the active resolved its start (the current end) are not its to send.
    wait_streaming(&a).await;
    let _b = ha_server(&db, &zk.connect_string()).await;
    let zc2 = zk.client(Duration::from_secs(10)).await.unwrap();
    write_load(db.port(), 0, 10, Duration::ZERO).await;
    let first = consume_following(&zc2, 10, Duration::from_secs(60)).await;
    let victim = zk.leader().unwrap_or(0);
    eprintln!("killing ZooKeeper member {victim}");
    zk.member_mut(victim).kill9().unwrap();
    write_load(db.port(), 10, 20, Duration::ZERO).await;
    let second = consume_following(&zc2, 10, Duration::from_secs(60)).await;
    tokio::time::sleep(Duration::from_millis(SESSION_MS + GRACE_MS)).await;
    assert_eq!(
        running_address(&zc).await.as_deref(),
        Some(a.addr().as_str()),
        "no handover"
    );
    let again: Vec<_> = second
        .delivered
        .keys()
        .filter(|k| first.delivered.contains_key(*k))
        .collect();
    assert!(again.is_empty(), "no interruption replay: {again:?}");
    assert_eq!(second.delivered.len(), 10);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeated_release_requests_cause_one_hand_over() {
    harness::init_tracing();
    let db = source().await;
    let zk = ZooKeeper::start().await.unwrap();
    let zkc = zk.client(Duration::from_secs(10)).await.unwrap();
    let a = ha_server(&db, &zk.connect_string()).await;
    let (first, _) = wait_running(&zkc, Some(&a.addr()), Duration::from_secs(30)).await;
    let b = ha_server(&db, &zk.connect_string()).await;
    // B is a standby: it has nothing to release.
    let r = http_request(b.admin_port, "POST", "/destinations/example/release")
        .await
        .unwrap();
    assert!(r.contains(" 409 "), "a standby cannot release: {r}");
    // Twenty requests at once to the active server: one is accepted, the rest refused.
    let mut accepted = 0;
    for _ in 0..20 {
        let r = http_request(a.admin_port, "POST", "/destinations/example/release")
            .await
            .unwrap();
        if r.contains(" 202 ") {
            accepted += 1;
        } else {
            assert!(r.contains(" 409 "), "{r}");
        }
    }
    assert_eq!(accepted, 1, "one hand-over per request, never a queue");
    let (second, _) = wait_running(&zkc, Some(&b.addr()), Duration::from_secs(30)).await;
    assert_ne!(first, second);
    // The destination stays on B: sample the running node for longer than a grace period
    // plus a session; it never moves back.
    let mut owners = std::collections::BTreeSet::new();
    for _ in 0..30 {
        if let Some(addr) = running_address(&zkc).await {
            owners.insert(addr);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(
        owners.into_iter().collect::<Vec<_>>(),
        vec![b.addr()],
        "no ping-pong after the burst"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_release_does_not_wait_the_grace_but_a_crash_does() {
    harness::init_tracing();
    let db = source().await;
    let zk = ZooKeeper::start().await.unwrap();
    let zkc = zk.client(Duration::from_secs(10)).await.unwrap();
    // A 30 s grace: long enough that a hand-over inside it cannot be the grace running out.
    let section = format!(
        "[zookeeper]\nservers = \"{}\"\nsession_timeout_ms = {SESSION_MS}\nconnect_timeout_ms = 1000\ngrace_ms = 30000\n",
        zk.connect_string()
    );
    let start = || ServerProc::start_with(server_bin(), &db, "flush_period_ms = 0\n", "", &section);
    let mut a = start().await;
    wait_running(&zkc, Some(&a.addr()), Duration::from_secs(30)).await;
    let b = start().await;
    let r = http_request(a.admin_port, "POST", "/destinations/example/release")
        .await
        .unwrap();
    assert!(r.contains(" 202 "), "{r}");
    let (_, released_in) = wait_running(&zkc, Some(&b.addr()), Duration::from_secs(60)).await;
    println!("HANDOVER release took {released_in:?}");
    assert!(
        released_in < Duration::from_secs(15),
        "a release hands over without the 30 s grace: {released_in:?}"
    );
    // A crash of B: A must wait out the grace before it takes the destination back.
    let mut b = b;
    b.kill9();
    let crashed = Instant::now();
    wait_running(&zkc, Some(&a.addr()), Duration::from_secs(90)).await;
    let took = crashed.elapsed();
    println!("HANDOVER crash took {took:?}");
    assert!(
        took >= Duration::from_secs(30),
        "a crash waits the grace: {took:?}"
    );
    a.stop();
}
