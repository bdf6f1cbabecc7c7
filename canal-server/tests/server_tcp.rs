//! The canal-server binary over Canal's TCP protocol, against a real MariaDB.

mod common;

use std::time::Duration;

use canal_protocol::entry::EntryType;
use canal_protocol::packet::{Packet, PacketType};
use common::server::*;
use common::*;
use harness::MariaDb;
use prost::Message;

async fn source() -> MariaDb {
    let db = MariaDb::start().await.unwrap();
    db.exec("CREATE DATABASE shop; CREATE TABLE shop.t (id INT PRIMARY KEY, v VARCHAR(20)); CREATE TABLE shop.u (id INT PRIMARY KEY)")
        .await
        .unwrap();
    db
}

/// Gets (with ack) until `want` rows arrived.
async fn consume(
    c: &mut RawClient,
    client_id: &str,
    want: usize,
) -> Vec<canal_protocol::entry::Entry> {
    let mut all = Vec::new();
    for _ in 0..600 {
        if row_ids(&all).len() >= want {
            return all;
        }
        let m = c.get(client_id, 100, 200).await.expect("get");
        if m.batch_id != -1 {
            all.extend(entries(&m));
            c.ack(client_id, m.batch_id).await;
        }
    }
    panic!(
        "only {} of {want} rows: {:?}",
        row_ids(&all).len(),
        row_ids(&all)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_client_receives_exactly_the_parser_entries() {
    harness::init_tracing();
    let db = source().await;
    let start = db.master_status().await.unwrap();
    let s = ServerProc::start(
        server_bin(),
        &db,
        "",
        &format!(
            "journal_name = \"{}\"\nposition = {}\n",
            start.file, start.position
        ),
    )
    .await;
    // The same range decoded in-process by the parser; both start before the DDL so both
    // schema histories hold the old definition.
    let (_g, dir) = data_dir();
    let mut cfg = dest_config(&db);
    cfg.journal_name = start.file.clone();
    cfg.position = Some(start.position);
    let mut h = start_dest(cfg, &dir);
    wait_streaming(&s).await;
    let mut w = h.watch_status();
    let _ = w
        .wait_for(|st| matches!(st, canal_server::DestinationStatus::Running { .. }))
        .await;
    db.exec("INSERT INTO shop.t VALUES (1,'a'),(2,'b'); UPDATE shop.t SET v='c' WHERE id=1; ALTER TABLE shop.t ADD COLUMN w INT; DELETE FROM shop.t WHERE id=2;")
        .await
        .unwrap();
    let mut c = RawClient::subscribed(&s.addr(), "1001", "").await;
    let got = consume(&mut c, "1001", 4).await;
    let parsed = collect_until(&mut h, |es| es.len() >= got.len()).await;
    h.stop().await.unwrap();
    let parsed: Vec<_> = parsed.iter().map(|e| e.entry.clone()).collect();
    assert_eq!(
        got,
        parsed[..got.len()].to_vec(),
        "TCP entries equal the parser's"
    );
    assert!(got.iter().any(
        |e| e.header.as_ref().unwrap().event_type() == canal_protocol::entry::EventType::Alter
    ));
    assert_eq!(row_ids(&got), vec!["1", "2", "1", "2"]);
}

fn start_dest(
    cfg: canal_server::config::DestinationConfig,
    dir: &std::path::Path,
) -> canal_server::DestinationHandle {
    start("example", cfg, dir, None)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_ack_rollback_semantics() {
    harness::init_tracing();
    let db = source().await;
    let s = ServerProc::start(server_bin(), &db, "", "batch_mode = \"ITEMSIZE\"\n").await;
    wait_streaming(&s).await;
    for i in 0..5 {
        db.exec(&format!("INSERT INTO shop.t VALUES ({i}, 'x')"))
            .await
            .unwrap();
    }
    let mut c = RawClient::subscribed(&s.addr(), "1001", "").await;
    // Each transaction is BEGIN, ROWDATA, END: 3 entries. Wait until all 15 are in the store.
    let mut b1 = c.get("1001", 3, 200).await.unwrap();
    for _ in 0..100 {
        if b1.batch_id != -1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        b1 = c.get("1001", 3, 200).await.unwrap();
    }
    assert_eq!(b1.batch_id, 1, "batch ids start at 1");
    let b2 = c.get("1001", 3, 1000).await.unwrap();
    assert_eq!(b2.batch_id, 2, "get without ack hands out the next batch");
    assert_eq!(row_ids(&entries(&b1)), vec!["0"]);
    assert_eq!(row_ids(&entries(&b2)), vec!["1"]);

    // Out-of-order ack: no frame now; the error is the reply to the next request.
    c.ack("1001", 2).await;
    let err = c
        .get("1001", 3, 1000)
        .await
        .expect_err("reported on the next request");
    assert_eq!(err.error_code, Some(400));
    assert!(
        err.error_message.contains("not the firstly"),
        "{}",
        err.error_message
    );
    // The error was consumed; the session goes on.
    c.ack("1001", 1).await;
    c.ack("1001", 2).await;
    let b3 = c.get("1001", 3, 1000).await.unwrap();
    assert_eq!(row_ids(&entries(&b3)), vec!["2"]);

    // The client "crashes" with batch 3 un-acked; a new connection's rollback(0) redelivers it.
    drop(c);
    let mut c = RawClient::subscribed(&s.addr(), "1001", "").await;
    let again = c.get("1001", 3, 1000).await.unwrap();
    assert_eq!(
        row_ids(&entries(&again)),
        vec!["2"],
        "un-acked batch redelivered"
    );
    assert!(again.batch_id > b3.batch_id, "under a new batch id");
    // rollback(id) of a not-oldest batch is an error on the next reply; ack 0 is 402.
    let next = c.get("1001", 3, 1000).await.unwrap();
    c.rollback("1001", next.batch_id).await;
    let err = c.get("1001", 3, 1000).await.expect_err("rollback error");
    assert!(
        err.error_message.contains("not the firstly"),
        "{}",
        err.error_message
    );
    c.ack("1001", 0).await;
    let err = c.get("1001", 3, 1000).await.expect_err("402");
    assert_eq!(err.error_code, Some(402));
    // Non-blocking get when nothing is left: batch -1.
    c.rollback("1001", 0).await;
    let b = c.get("1001", 100, 1000).await.unwrap();
    c.ack("1001", b.batch_id).await;
    let empty = c.get("1001", 100, -1).await.unwrap();
    assert_eq!(empty.batch_id, -1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_clients_at_different_speeds_with_their_own_filters() {
    harness::init_tracing();
    let db = source().await;
    let s = ServerProc::start(server_bin(), &db, "", "").await;
    wait_streaming(&s).await;
    let mut fast = RawClient::subscribed(&s.addr(), "1001", "").await;
    let mut slow = RawClient::subscribed(&s.addr(), "1002", r"shop\.u").await;
    for i in 0..20 {
        db.exec(&format!(
            "INSERT INTO shop.t VALUES ({i}, 'x'); INSERT INTO shop.u VALUES ({i})"
        ))
        .await
        .unwrap();
    }
    let all = consume(&mut fast, "1001", 40).await;
    assert_eq!(
        row_ids(&all).len(),
        40,
        "client 1001 gets every row of both tables"
    );
    // The slow client starts late and reads in small batches; it sees only shop.u.
    let mut got = Vec::new();
    for _ in 0..600 {
        if row_ids(&got).len() >= 20 {
            break;
        }
        let m = slow.get("1002", 1, 200).await.unwrap();
        if m.batch_id != -1 {
            got.extend(entries(&m));
            slow.ack("1002", m.batch_id).await;
        }
    }
    let ids = row_ids(&got);
    assert_eq!(ids, (0..20).map(|i| i.to_string()).collect::<Vec<_>>());
    assert!(got
        .iter()
        .filter(|e| e.entry_type() == EntryType::Rowdata)
        .all(|e| e.header.as_ref().unwrap().table_name() == "u"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_resumes_from_acked_cursors_without_loss() {
    harness::init_tracing();
    let db = source().await;
    let mut s = ServerProc::start(server_bin(), &db, "", "batch_mode = \"ITEMSIZE\"\n").await;
    wait_streaming(&s).await;
    let mut c = RawClient::subscribed(&s.addr(), "1001", "").await;
    for i in 0..10 {
        db.exec(&format!("INSERT INTO shop.t VALUES ({i}, 'x')"))
            .await
            .unwrap();
    }
    // Ack the first 4 transactions (12 entries), leave the 5th handed out but not acked.
    let mut acked = Vec::new();
    while row_ids(&acked).len() < 4 {
        let m = c.get("1001", 3, 500).await.unwrap();
        if m.batch_id != -1 {
            acked.extend(entries(&m));
            c.ack("1001", m.batch_id).await;
        }
    }
    let unacked = c.get("1001", 3, 1000).await.unwrap();
    assert_eq!(row_ids(&entries(&unacked)), vec!["4"]);
    // A request after the acks makes sure the server processed them before the stop.
    let _ = c.sub("1001", "").await;
    drop(c);
    s.stop();
    let meta = std::fs::read_to_string(s.data_dir().join("example/meta.dat")).unwrap();
    assert!(meta.contains("\"postion\""), "Canal cursor JSON: {meta}");
    for i in 10..15 {
        db.exec(&format!("INSERT INTO shop.t VALUES ({i}, 'x')"))
            .await
            .unwrap();
    }
    s.launch().await;
    let mut c = RawClient::subscribed(&s.addr(), "1001", "").await;
    let rest = consume(&mut c, "1001", 11).await;
    assert_eq!(
        row_ids(&rest),
        (4..15).map(|i| i.to_string()).collect::<Vec<_>>(),
        "acked rows never come back; the un-acked one does; nothing is lost"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn password_checked_and_bad_frames_do_not_hurt_other_clients() {
    harness::init_tracing();
    let db = source().await;
    // passwd = hex(SHA1(SHA1("123456"))), like canal.passwd.
    let s = ServerProc::start(
        server_bin(),
        &db,
        "user = \"canal\"\npasswd = \"6BB4837EB74329105EE4568DDA7DC67ED2CA2AD9\"\nmax_frame_bytes = 4096\n",
        "",
    )
    .await;
    let mut bad = RawClient::connect(&s.addr()).await;
    let ack = bad.auth("canal", Some("wrong")).await;
    assert_eq!(ack.error_code, Some(400));
    assert_eq!(ack.error_message, "auth failed for user:canal");
    // One attempt per connection, like MySQL: the server closes it.
    use futures::StreamExt;
    assert!(bad.framed.next().await.is_none(), "closed after a failure");
    // Guessing from one address: each failure closes its connection and the next attempts
    // wait longer; a right password is still accepted afterwards (a backoff, not a lockout).
    for _ in 0..3 {
        let mut guess = RawClient::connect(&s.addr()).await;
        let ack = guess.auth("canal", Some("guess")).await;
        assert_eq!(ack.error_message, "auth failed for user:canal");
        assert!(guess.framed.next().await.is_none());
    }
    let metrics = http_get(s.admin_port, "/metrics").await.unwrap();
    assert!(
        metrics.contains("canal_server_auth_failures_total 4"),
        "every failure counted"
    );
    let log = s.log();
    assert!(log.contains("failures=4"), "the 4th failure is logged");
    assert!(!log.contains("failures=3"), "the 3rd is not: {log}");

    let mut good = RawClient::connect(&s.addr()).await;
    assert_eq!(
        good.auth("canal", Some("123456"))
            .await
            .error_code
            .unwrap_or(0),
        0
    );
    assert_eq!(good.sub("1001", "").await.error_code.unwrap_or(0), 0);

    // An oversized frame: an error reply, then the connection is closed.
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut raw = tokio::net::TcpStream::connect(s.addr()).await.unwrap();
    let mut hs = vec![0u8; 20];
    raw.read_exact(&mut hs).await.unwrap();
    raw.write_all(&100_000u32.to_be_bytes()).await.unwrap();
    let mut reply = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), raw.read_to_end(&mut reply)).await;
    let p =
        canal_protocol::frame::decode_packet(bytes::Bytes::copy_from_slice(&reply[4..])).unwrap();
    let ack = canal_protocol::packet::Ack::decode(p.body).unwrap();
    assert_eq!(ack.error_code, Some(400));
    assert!(
        ack.error_message.contains("bad frame"),
        "{}",
        ack.error_message
    );

    // Garbage protobuf after auth: error reply, connection closed.
    let mut g = RawClient::connect(&s.addr()).await;
    g.auth("canal", Some("123456")).await;
    g.framed
        .get_mut()
        .write_all(&[0, 0, 0, 3, 0xff, 0xff, 0xff])
        .await
        .unwrap();
    let p = g.recv().await;
    assert_eq!(p.packet_type().unwrap(), PacketType::Ack);
    // An unsupported packet type gets a 400 and the session continues.
    good.send(Packet::request(
        PacketType::Heartbeat,
        &canal_protocol::packet::HeartBeat::default(),
    ))
    .await;
    let p = good.recv().await;
    let ack = canal_protocol::packet::Ack::decode(p.body).unwrap();
    assert!(
        ack.error_message.contains("HEARTBEAT is NOT supported"),
        "{}",
        ack.error_message
    );
    // The well-behaved client is unaffected. (The destination starts at the current end, so
    // wait until it has resolved that before writing.)
    wait_streaming(&s).await;
    db.exec("INSERT INTO shop.t VALUES (1,'a')").await.unwrap();
    let got = consume(&mut good, "1001", 1).await;
    assert_eq!(row_ids(&got), vec!["1"]);
    drop(good);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hundreds_of_idle_connections_and_admin_endpoints() {
    harness::init_tracing();
    let db = source().await;
    let s = ServerProc::start(server_bin(), &db, "", "").await;
    wait_streaming(&s).await;
    // 300 idle connections, each past the handshake; the server keeps serving.
    let mut idle = Vec::new();
    for _ in 0..300 {
        let mut c = RawClient::connect(&s.addr()).await;
        assert_eq!(c.auth("", None).await.error_code.unwrap_or(0), 0);
        idle.push(c);
    }
    let mut c = RawClient::subscribed(&s.addr(), "1001", "").await;
    db.exec("INSERT INTO shop.t VALUES (7,'z')").await.unwrap();
    let got = consume(&mut c, "1001", 1).await;
    assert_eq!(row_ids(&got), vec!["7"]);

    let names = [
        "canal_instance_put_rows",
        "canal_instance_get_rows",
        "canal_instance_ack_rows",
        "canal_instance_client_packets",
        "canal_instance_transactions",
        "canal_instance_received_binlog_bytes",
    ];
    // An ack has no reply: the server may still be handling it when the client has sent it.
    let mut metrics = String::new();
    for _ in 0..100 {
        metrics = http_get(s.admin_port, "/metrics").await.unwrap();
        if names.iter().all(|n| metrics.contains(n)) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    for name in names {
        assert!(metrics.contains(name), "/metrics has {name}:\n{metrics}");
    }
    assert!(metrics.contains("destination=\"example\""), "{metrics}");
    let health = http_get(s.admin_port, "/health").await.unwrap();
    assert!(
        health.starts_with("HTTP/1.1 200") || health.starts_with("HTTP/1.0 200"),
        "{health}"
    );
    assert!(health.contains("\"healthy\":true"), "{health}");
    assert!(health.contains("\"client_id\":1001"), "{health}");
    drop(idle);
    // Its log goes to a file, not a terminal: plain text, no colour codes.
    let log = s.log();
    assert!(log.contains("INFO"), "{log}");
    assert!(
        !log.contains('\u{1b}'),
        "ANSI escape codes in a log file:\n{log}"
    );
}

/// Canal resumes a destination from the clients' acked cursors, or, when a client has none, from
/// the configured start (the current end): rows a subscribed client never got would be skipped
/// after a restart. Here the client's cursor is where its stream began until it acks.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscribed_client_without_acks_loses_nothing_across_restart() {
    harness::init_tracing();
    let db = source().await;
    let mut s = ServerProc::start(server_bin(), &db, "", "").await;
    wait_streaming(&s).await;
    let mut c = RawClient::subscribed(&s.addr(), "1001", "").await;
    db.exec("INSERT INTO shop.t VALUES (1, 'before the restart')")
        .await
        .unwrap();
    // Make sure the server has the row, then stop it without the client having fetched anything.
    let m = c.get("1001", 100, 2000).await.unwrap();
    assert_eq!(row_ids(&entries(&m)), vec!["1"]);
    drop(c);
    s.stop();
    let meta = std::fs::read_to_string(s.data_dir().join("example/meta.dat")).unwrap();
    assert!(meta.contains("\"inclusive\":true"), "start cursor: {meta}");
    db.exec("INSERT INTO shop.t VALUES (2, 'while down')")
        .await
        .unwrap();
    s.launch().await;
    let mut c = RawClient::subscribed(&s.addr(), "1001", "").await;
    let got = consume(&mut c, "1001", 2).await;
    assert_eq!(row_ids(&got), vec!["1", "2"]);
}

/// A connection that ends holding an un-acked batch gives it back, even when the next connection
/// of the client never sends `rollback(0)` (or sent it before the old connection's GET was
/// answered).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closed_connection_gives_back_its_unacked_batches() {
    harness::init_tracing();
    let db = source().await;
    let s = ServerProc::start(server_bin(), &db, "", "").await;
    wait_streaming(&s).await;
    let mut a = RawClient::subscribed(&s.addr(), "1001", "").await;
    db.exec("INSERT INTO shop.t VALUES (1, 'x')").await.unwrap();
    let m = a.get("1001", 100, 2000).await.unwrap();
    assert_eq!(row_ids(&entries(&m)), vec!["1"]);
    drop(a);
    // No rollback(0) from the new connection: just auth, subscribe, get.
    let mut b = RawClient::connect(&s.addr()).await;
    assert_eq!(b.auth("", None).await.error_code.unwrap_or(0), 0);
    assert_eq!(b.sub("1001", "").await.error_code.unwrap_or(0), 0);
    let got = consume(&mut b, "1001", 1).await;
    assert_eq!(row_ids(&got), vec!["1"]);
}
