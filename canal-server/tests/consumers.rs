//! Several consumers of one destination against a real canal-server and MariaDB: an abandoned
//! client id never stalls a live one (it falls behind the shared store, is served from a catch-up
//! stream when it returns, then rejoins), an operator can drop it, a purged cursor reaches the
//! client as an error that the reset command recovers, and `/health` answers 503 whenever the
//! destination serves nothing.

mod common;

use std::time::{Duration, Instant};

use common::server::*;
use harness::{MariaDb, ZooKeeper};
use serde_json::Value;

const SCHEMA: &str = "CREATE DATABASE shop; \
    CREATE TABLE shop.busy (id INT PRIMARY KEY, pad VARCHAR(100)); \
    CREATE TABLE shop.narrow (id INT PRIMARY KEY)";

/// `/health` as (HTTP status, JSON).
async fn health(s: &ServerProc) -> (u16, Value) {
    let resp = http_get(s.admin_port, "/health").await.unwrap_or_default();
    let code = resp
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = resp.split("\r\n\r\n").nth(1).unwrap_or("null");
    (code, serde_json::from_str(body).unwrap_or(Value::Null))
}

/// Client `id` of destination `example` in `/health`.
async fn client(s: &ServerProc, id: i64) -> Option<Value> {
    let (_, h) = health(s).await;
    h["destinations"][0]["clients"]
        .as_array()?
        .iter()
        .find(|c| c["client_id"] == id)
        .cloned()
}

/// Waits (at most `secs`) until `/health` satisfies `ok`; returns the last answer.
async fn wait_health(s: &ServerProc, secs: u64, ok: impl Fn(u16, &Value) -> bool) -> (u16, Value) {
    let until = Instant::now() + Duration::from_secs(secs);
    loop {
        let (code, h) = health(s).await;
        if ok(code, &h) || Instant::now() > until {
            return (code, h);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Row ids of `table` in the entries of a batch.
fn ids_of(m: &canal_protocol::packet::Messages, table: &str) -> Vec<i64> {
    entries(m)
        .into_iter()
        .filter(|e| e.header.as_ref().is_some_and(|h| h.table_name() == table))
        .flat_map(|e| row_ids(std::slice::from_ref(&e)))
        .filter_map(|id| id.parse().ok())
        .collect()
}

/// GETs and acks as `client_id` until `done` holds for what arrived (or `secs` pass); returns
/// the busy and narrow ids received, in order.
async fn consume(
    c: &mut RawClient,
    client_id: &str,
    secs: u64,
    done: impl Fn(&[i64], &[i64]) -> bool,
) -> (Vec<i64>, Vec<i64>) {
    let (mut busy, mut narrow) = (Vec::new(), Vec::new());
    let until = Instant::now() + Duration::from_secs(secs);
    while !done(&busy, &narrow) && Instant::now() < until {
        let m = c
            .get(client_id, 200, 200)
            .await
            .unwrap_or_else(|e| panic!("GET failed: {e:?}"));
        if m.batch_id == -1 {
            continue;
        }
        busy.extend(ids_of(&m, "busy"));
        narrow.extend(ids_of(&m, "narrow"));
        c.ack(client_id, m.batch_id).await;
    }
    (busy, narrow)
}

/// `n` one-row transactions on `shop.busy` from `first`, with a row of `shop.narrow` after
/// every `every`-th (narrow ids from `narrow_first`).
async fn write(db: &MariaDb, first: i64, n: i64, every: i64, narrow_first: i64) {
    let mut narrow = narrow_first;
    for i in first..first + n {
        db.exec(&format!(
            "INSERT INTO shop.busy VALUES ({i}, REPEAT('x', 80))"
        ))
        .await
        .unwrap();
        if (i - first + 1) % every == 0 {
            db.exec(&format!("INSERT INTO shop.narrow VALUES ({narrow})"))
                .await
                .unwrap();
            narrow += 1;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_abandoned_client_never_stalls_a_live_one_and_catches_up_when_it_returns() {
    harness::init_tracing();
    let db = MariaDb::start().await.unwrap();
    db.exec(SCHEMA).await.unwrap();
    // A small store (64 entries, about 21 transactions) so that the abandoned client fills it.
    let mut s = ServerProc::start(
        server_bin(),
        &db,
        "",
        "store_max_entries = 64\nbatch_mode = \"ITEMSIZE\"\ncatch_up_idle_ms = 3000",
    )
    .await;
    wait_streaming(&s).await;

    // 1001 consumes a little, then goes away for good (no unsubscribe: a Ctrl-C'd debug run).
    let mut gone = RawClient::subscribed(&s.addr(), "1001", "").await;
    write(&db, 1, 5, 1000, 1).await;
    let (got, _) = consume(&mut gone, "1001", 30, |b, _| b.len() >= 2).await;
    assert!(got.starts_with(&[1, 2]), "{got:?}");
    let acked = *got.last().unwrap();
    drop(gone);
    // 1003 subscribes once and leaves: the operator will drop it.
    drop(RawClient::subscribed(&s.addr(), "1003", "").await);

    // 1002 watches one quiet table while another is busy.
    let mut live = RawClient::subscribed(&s.addr(), "1002", r"shop\.narrow").await;
    let writer = {
        let db_addr = db.conn().await.unwrap();
        drop(db_addr);
        write(&db, 6, 600, 30, 1)
    };
    let consumer = consume(&mut live, "1002", 120, |_, n| n.len() >= 20);
    let ((), (_, narrow)) = tokio::join!(writer, consumer);
    assert_eq!(
        narrow,
        (1..=20).collect::<Vec<_>>(),
        "every narrow row, in order"
    );
    let (code, h) = health(&s).await;
    let d = &h["destinations"][0];
    assert!(
        d["store_entries"].as_u64().unwrap() <= 64,
        "the store stays bounded: {d}"
    );
    assert_eq!(code, 200, "{h}");
    let c1001 = client(&s, 1001).await.unwrap();
    assert_ne!(
        c1001["state"], "live",
        "1001 no longer holds the store: {c1001}"
    );

    // The operator drops 1003; it is gone from /health and stays gone after a restart.
    let r = http_request(s.admin_port, "DELETE", "/destinations/example/clients/1003")
        .await
        .unwrap();
    assert!(
        r.starts_with("HTTP/1.1 200") || r.starts_with("HTTP/1.0 200"),
        "{r}"
    );
    assert!(client(&s, 1003).await.is_none());
    let r = http_request(s.admin_port, "DELETE", "/destinations/example/clients/1003")
        .await
        .unwrap();
    assert!(r.contains(" 404 "), "dropping twice: {r}");

    // A restart resumes from 1001's old cursor: 1002 is not stalled by it either.
    drop(live);
    s.stop();
    s.launch().await;
    wait_streaming(&s).await;
    assert!(client(&s, 1003).await.is_none(), "1003 stays dropped");
    let mut live = RawClient::subscribed(&s.addr(), "1002", r"shop\.narrow").await;
    let writer = write(&db, 606, 600, 60, 21);
    let consumer = consume(&mut live, "1002", 120, |_, n| n.contains(&30));
    let ((), (_, narrow)) = tokio::join!(writer, consumer);
    assert_eq!(
        narrow,
        (21..=30).collect::<Vec<_>>(),
        "after the restart: every new narrow row once, in order"
    );

    // 1001 returns: it gets everything after what it acked, once and in order, from its
    // catch-up stream, then rejoins the shared store.
    let mut back = RawClient::subscribed(&s.addr(), "1001", "").await;
    let (busy, narrow) = consume(&mut back, "1001", 180, |b, n| {
        b.last() == Some(&1205) && n.last() == Some(&30)
    })
    .await;
    assert_eq!(
        busy,
        (acked + 1..=1205).collect::<Vec<_>>(),
        "busy rows after its cursor"
    );
    assert_eq!(narrow, (1..=30).collect::<Vec<_>>(), "narrow rows");
    let mut state = Value::Null;
    for _ in 0..50 {
        let _ = back.get("1001", 10, 100).await;
        state = client(&s, 1001).await.unwrap()["state"].clone();
        if state == "live" {
            break;
        }
    }
    assert_eq!(state, "live", "caught up: back on the shared store");
    // And it keeps receiving from there.
    write(&db, 1206, 3, 1000, 0).await;
    let (busy, _) = consume(&mut back, "1001", 30, |b, _| b.len() >= 3).await;
    assert_eq!(busy, vec![1206, 1207, 1208]);
    let metrics = http_get(s.admin_port, "/metrics").await.unwrap();
    assert!(
        metrics.contains(
            "canal_instance_client_unacked_entries{destination=\"example\",client_id=\"1002\"}"
        ),
        "per-client metrics"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_purged_cursor_is_an_error_until_reset_and_health_says_why() {
    harness::init_tracing();
    let mut db = MariaDb::start().await.unwrap();
    db.exec(SCHEMA).await.unwrap();
    let mut s = ServerProc::start(server_bin(), &db, "", "").await;
    wait_streaming(&s).await;
    let (code, _) = health(&s).await;
    assert_eq!(code, 200);

    let mut c = RawClient::subscribed(&s.addr(), "1001", "").await;
    write(&db, 1, 1, 1000, 0).await;
    let (busy, _) = consume(&mut c, "1001", 30, |b, _| !b.is_empty()).await;
    assert_eq!(busy, vec![1]);
    drop(c);
    s.stop();
    // While the server is down, the binlog it would resume from is purged.
    db.exec("FLUSH BINARY LOGS").await.unwrap();
    write(&db, 2, 2, 1000, 0).await;
    let logs = db.binary_logs().await.unwrap();
    let newest = logs.last().unwrap().clone();
    // MariaDB keeps a file a (dying) dump thread still reads: purge until it is gone.
    for _ in 0..100 {
        db.exec(&format!("PURGE BINARY LOGS TO '{newest}'"))
            .await
            .unwrap();
        if db.binary_logs().await.unwrap() == vec![newest.clone()] {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(db.binary_logs().await.unwrap(), vec![newest.clone()]);
    s.launch().await;

    let (code, h) = wait_health(&s, 30, |_, h| {
        h["destinations"][0]["clients"][0]["state"] == "purged"
    })
    .await;
    assert_eq!(code, 503, "every client is behind the purge: {h}");
    assert!(
        h["destinations"][0]["reason"]
            .as_str()
            .unwrap_or("")
            .contains("purged"),
        "{h}"
    );
    let mut c = RawClient::subscribed(&s.addr(), "1001", "").await;
    let err = c.get("1001", 10, 100).await.expect_err("a purged cursor");
    let msg = err.error_message.clone();
    assert!(msg.contains(&newest), "names the oldest binlog: {msg}");
    assert!(msg.contains("reset"), "says how to recover: {msg}");

    let r = http_request(
        s.admin_port,
        "POST",
        "/destinations/example/clients/1001/reset?to=oldest",
    )
    .await
    .unwrap();
    assert!(r.contains(" 200 "), "{r}");
    let (busy, _) = consume(&mut c, "1001", 60, |b, _| b.len() >= 2).await;
    assert_eq!(busy, vec![2, 3], "the rows still on the source");
    let (code, h) = wait_health(&s, 30, |code, _| code == 200).await;
    assert_eq!(code, 200, "{h}");

    // An unreachable source is not healthy either.
    db.kill9().unwrap();
    let (code, h) = wait_health(&s, 30, |code, _| code == 503).await;
    assert_eq!(code, 503, "{h}");
    assert_eq!(h["destinations"][0]["status"], "reconnecting", "{h}");
    db.start_again().await.unwrap();
    let (code, h) = wait_health(&s, 60, |code, _| code == 200).await;
    assert_eq!(code, 200, "{h}");
    assert_eq!(h["destinations"][0]["status"], "running");
    assert!(h["destinations"][0]["position"]["offset"].is_u64(), "{h}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_is_503_when_no_server_can_serve() {
    harness::init_tracing();
    let db = MariaDb::start().await.unwrap();
    let mut zk = ZooKeeper::start().await.unwrap();
    let s = ServerProc::start_with(
        server_bin(),
        &db,
        "",
        "",
        &format!(
            "[zookeeper]\nservers = \"{}\"\nsession_timeout_ms = 2000\nconnect_timeout_ms = 1000\ngrace_ms = 1000\n",
            zk.connect_string()
        ),
    )
    .await;
    wait_streaming(&s).await;
    let (code, h) = health(&s).await;
    assert_eq!(code, 200, "{h}");
    // ZooKeeper stops answering: the session expires and the server fences itself.
    zk.member_mut(0).pause().unwrap();
    let (code, h) = wait_health(&s, 60, |code, _| code == 503).await;
    zk.member_mut(0).resume().unwrap();
    assert_eq!(code, 503, "{h}");
    assert!(h["healthy"] == false, "{h}");
}

/// Deletes a znode and its children.
async fn zk_delete_tree(zk: &zookeeper_client::Client, path: &str) {
    for child in zk.list_children(path).await.unwrap_or_default() {
        let _ = zk.delete(&format!("{path}/{child}"), None).await;
    }
    zk.delete(path, None).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_are_dropped_through_zookeeper_or_the_admin_api() {
    harness::init_tracing();
    let db = MariaDb::start().await.unwrap();
    let zk = ZooKeeper::start().await.unwrap();
    let s = ServerProc::start_with(
        server_bin(),
        &db,
        "",
        "",
        &format!(
            "[zookeeper]\nservers = \"{}\"\nsession_timeout_ms = 4000\nconnect_timeout_ms = 1000\ngrace_ms = 1000\n",
            zk.connect_string()
        ),
    )
    .await;
    wait_streaming(&s).await;
    let zc = zk.client(Duration::from_secs(10)).await.unwrap();
    let node = |id: i64| format!("/otter/canal/destinations/example/{id}");
    drop(RawClient::subscribed(&s.addr(), "1001", "").await);
    drop(RawClient::subscribed(&s.addr(), "1002", "").await);
    for id in [1001, 1002] {
        let mut exists = false;
        for _ in 0..100 {
            exists = zc.check_stat(&node(id)).await.unwrap().is_some();
            if exists {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(exists, "client {id} is in ZooKeeper, Canal layout");
    }
    // Canal's way: the operator deletes the client's znode; the server drops the client and
    // does not write it back.
    zk_delete_tree(&zc, &node(1002)).await;
    let mut gone = false;
    for _ in 0..200 {
        if client(&s, 1002).await.is_none() {
            gone = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(gone, "1002 dropped after its znode was deleted");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        zc.check_stat(&node(1002)).await.unwrap().is_none(),
        "not written back"
    );
    // Through the admin API: the znode goes too.
    let r = http_request(s.admin_port, "DELETE", "/destinations/example/clients/1001")
        .await
        .unwrap();
    assert!(r.contains(" 200 "), "{r}");
    assert!(
        zc.check_stat(&node(1001)).await.unwrap().is_none(),
        "znode removed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_changes_need_the_token_when_one_is_set() {
    harness::init_tracing();
    let db = MariaDb::start().await.unwrap();
    let s = ServerProc::start(server_bin(), &db, "admin_token = \"s3cret\"", "").await;
    wait_streaming(&s).await;
    drop(RawClient::subscribed(&s.addr(), "1003", "").await);
    let path = "/destinations/example/clients/1003";
    let r = http_request(s.admin_port, "DELETE", path).await.unwrap();
    assert!(r.contains(" 401 "), "no token: {r}");
    let r = http_request_with(
        s.admin_port,
        "DELETE",
        path,
        &[("Authorization", "Bearer nope")],
    )
    .await
    .unwrap();
    assert!(r.contains(" 401 "), "wrong token: {r}");
    assert!(client(&s, 1003).await.is_some(), "nothing changed");
    let r = http_request_with(
        s.admin_port,
        "DELETE",
        path,
        &[("Authorization", "Bearer s3cret")],
    )
    .await
    .unwrap();
    assert!(r.contains(" 200 "), "{r}");
    assert!(client(&s, 1003).await.is_none());
    let (code, _) = health(&s).await;
    assert_eq!(code, 200, "reading needs no token");
}
