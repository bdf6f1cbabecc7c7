//! The parser under faults: the source killed and restarted, a stalled link, a purged position.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use canal_server::DestinationStatus;
use common::*;
use harness::{FaultProxy, MariaDb};

async fn wait_running(h: &canal_server::DestinationHandle) {
    let mut w = h.watch_status();
    let r = tokio::time::timeout(
        Duration::from_secs(60),
        w.wait_for(|s| matches!(s, DestinationStatus::Running { .. })),
    )
    .await;
    assert!(r.is_ok(), "destination not running: {:?}", h.status());
}

/// Counts how often each id arrived in INSERT entries of `t`.
fn insert_counts(es: &[canal_server::ParsedEntry]) -> BTreeMap<i64, usize> {
    let mut m = BTreeMap::new();
    for (_, _, _, after) in dml_rows(es) {
        let id: i64 = after[0].1.as_deref().unwrap().parse().unwrap();
        *m.entry(id).or_default() += 1;
    }
    m
}

/// Writes rows `from..to` one transaction each, ignoring errors (the source may be down); returns
/// nothing: what committed is read back from the table afterwards.
async fn write_rows(db_port: u16, from: i64, to: i64) {
    for id in from..to {
        let opts = mysql_async::OptsBuilder::default()
            .ip_or_hostname("127.0.0.1")
            .tcp_port(db_port)
            .user(Some("root"))
            .prefer_socket(false);
        if let Ok(mut c) = mysql_async::Conn::new(opts).await {
            use mysql_async::prelude::Queryable;
            let _ = c
                .query_drop(format!("INSERT INTO s.t VALUES ({id}, 'row')"))
                .await;
            let _ = c.disconnect().await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn source_killed_and_restarted_loses_and_duplicates_nothing() {
    harness::init_tracing();
    let mut db = MariaDb::start().await.unwrap();
    db.exec("CREATE DATABASE s; CREATE TABLE s.t (id BIGINT PRIMARY KEY, v VARCHAR(10))")
        .await
        .unwrap();
    let (_g, dir) = data_dir();
    let mut h = start("kill", dest_config(&db), &dir, None);
    wait_running(&h).await;
    let port = db.port();

    write_rows(port, 0, 100).await;
    let mut es = collect_rows(&mut h, 100).await;
    // kill -9 in the middle of a write burst, then bring it back on the same port and datadir.
    let writer = tokio::spawn(write_rows(port, 100, 300));
    tokio::time::sleep(Duration::from_millis(100)).await;
    db.kill9().unwrap();
    let _ = writer.await;
    db.start_again().await.unwrap();
    write_rows(port, 300, 400).await;

    let committed: Vec<i64> = db.query("SELECT id FROM s.t ORDER BY id").await.unwrap();
    assert!(committed.len() >= 200, "writes after the restart committed");
    let want = committed.len();
    es.extend(
        collect_until(&mut h, |more| {
            let mut all = es.clone();
            all.extend_from_slice(more);
            insert_counts(&all).len() >= want
        })
        .await,
    );
    // Give a duplicate the chance to show up: drain what is already queued.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut extra = Vec::new();
    h.try_recv_many(10_000, &mut extra);
    es.extend(extra);
    h.stop().await.unwrap();

    let counts = insert_counts(&es);
    let got: Vec<i64> = counts.keys().copied().collect();
    assert_eq!(
        got, committed,
        "every committed row, and nothing else, arrived"
    );
    let dups: Vec<_> = counts.iter().filter(|(_, n)| **n > 1).collect();
    assert!(dups.is_empty(), "duplicated rows: {dups:?}");
    // Entry positions never go backwards.
    assert!(es
        .windows(2)
        .all(|w| w[0].position.binlog <= w[1].position.binlog));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_link_is_detected_and_the_stream_resumes() {
    harness::init_tracing();
    let db = MariaDb::start().await.unwrap();
    db.exec("CREATE DATABASE s; CREATE TABLE s.t (id BIGINT PRIMARY KEY, v VARCHAR(10))")
        .await
        .unwrap();
    let proxy = FaultProxy::start(db.addr()).unwrap();
    let (_g, dir) = data_dir();
    let mut cfg = dest_config(&db);
    cfg.address = proxy.addr().to_string();
    let mut h = start("stall", cfg, &dir, None);
    wait_running(&h).await;
    write_rows(db.port(), 0, 10).await;
    let mut es = collect_rows(&mut h, 10).await;

    let mut status = h.watch_status();
    proxy.stall();
    // Rows written while the link is silent.
    write_rows(db.port(), 10, 20).await;
    let seen = tokio::time::timeout(
        Duration::from_secs(60),
        status.wait_for(|s| matches!(s, DestinationStatus::Reconnecting { .. })),
    )
    .await
    .expect("the silent link is detected")
    .unwrap()
    .clone();
    match seen {
        DestinationStatus::Reconnecting { error, .. } => {
            assert!(error.contains("no data"), "read timeout reported: {error}")
        }
        other => panic!("{other:?}"),
    }
    proxy.pass();
    es.extend(
        collect_until(&mut h, |more| {
            let mut all = es.clone();
            all.extend_from_slice(more);
            insert_counts(&all).len() >= 20
        })
        .await,
    );
    h.stop().await.unwrap();
    let counts = insert_counts(&es);
    assert_eq!(
        counts.keys().copied().collect::<Vec<_>>(),
        (0..20).collect::<Vec<_>>()
    );
    assert!(
        counts.values().all(|n| *n == 1),
        "no duplicates: {counts:?}"
    );
    assert!(
        proxy.accepted_connections() >= 2,
        "it reconnected through the proxy"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn purged_position_is_a_clear_error_naming_the_first_binlog() {
    harness::init_tracing();
    let db = MariaDb::start().await.unwrap();
    db.exec("CREATE DATABASE s; CREATE TABLE s.t (id INT PRIMARY KEY)")
        .await
        .unwrap();
    let first = db.master_status().await.unwrap();
    for i in 0..3 {
        db.exec(&format!("INSERT INTO s.t VALUES ({i}); FLUSH BINARY LOGS"))
            .await
            .unwrap();
    }
    let logs = db.binary_logs().await.unwrap();
    let keep = logs[2].clone();
    // MariaDB keeps a binlog until its binlog checkpoint is written (asynchronously): retry.
    for _ in 0..100 {
        db.exec(&format!("PURGE BINARY LOGS TO '{keep}'"))
            .await
            .unwrap();
        if db.binary_logs().await.unwrap()[0] == keep {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(db.binary_logs().await.unwrap()[0], keep);

    let (_g, dir) = data_dir();
    let mut cfg = dest_config(&db);
    cfg.journal_name = first.file.clone();
    cfg.position = Some(first.position);
    let mut h = start("purged", cfg, &dir, None);
    assert!(h.recv().await.is_none(), "no entry from a purged position");
    let err = h.stop().await.expect_err("fails");
    let msg = err.to_string();
    assert!(msg.contains(&first.file), "names the requested file: {msg}");
    assert!(
        msg.contains(&keep),
        "names the first available binlog: {msg}"
    );
    assert!(msg.contains("purged"), "{msg}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_password_and_bad_source_settings_are_clear_errors() {
    harness::init_tracing();
    let db = MariaDb::start().await.unwrap();
    let (_g, dir) = data_dir();

    let mut cfg = dest_config(&db);
    cfg.password = "wrong".into();
    let mut h = start("badpw", cfg, &dir, None);
    assert!(h.recv().await.is_none());
    let msg = h.stop().await.expect_err("refused").to_string();
    assert!(msg.contains("refused the replication account"), "{msg}");

    db.exec("SET GLOBAL binlog_format = 'STATEMENT'")
        .await
        .unwrap();
    let mut h = start("badfmt", dest_config(&db), &dir, None);
    assert!(h.recv().await.is_none());
    let msg = h.stop().await.expect_err("refused").to_string();
    assert!(
        msg.contains("binlog_format=STATEMENT") && msg.contains("set binlog_format=ROW"),
        "{msg}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parser_buffer_is_bounded_in_bytes_and_loses_nothing() {
    harness::init_tracing();
    let db = MariaDb::start().await.unwrap();
    db.exec("CREATE DATABASE s; CREATE TABLE s.t (id BIGINT PRIMARY KEY, v TEXT)")
        .await
        .unwrap();
    let (_g, dir) = data_dir();
    let mut cfg = dest_config(&db);
    cfg.parser_buffer_bytes = 64 * 1024;
    let mut h = start("bounded", cfg, &dir, None);
    wait_running(&h).await;
    // One transaction of 400 rows of 2 KB: MariaDB splits it into rows events of about 8 KB, so
    // about 100 entries of ~8 KB each, far more than the 64 KiB budget.
    db.exec("INSERT INTO s.t SELECT seq, REPEAT('x', 2000) FROM s.seq_1_to_400")
        .await
        .unwrap();
    let end = db.master_status().await.unwrap();
    // Nobody receives: the parser fills the budget and waits.
    let mut last = (0, String::new());
    let mut same = 0;
    for _ in 0..300 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let now = (h.buffered_bytes(), format!("{:?}", h.status()));
        same = if now == last { same + 1 } else { 0 };
        last = now;
        if same >= 5 && last.0 > 0 {
            break;
        }
    }
    assert!(same >= 5, "the parser never settled: {last:?}");
    assert!(
        last.0 <= 64 * 1024,
        "{} bytes buffered for a 64 KiB budget",
        last.0
    );
    assert!(
        !last.1.contains(&format!("{}:{}", end.file, end.position)),
        "the parser read to the end of the binlog although nobody received: {}",
        last.1
    );
    // Receiving releases the budget and every row arrives once.
    let es = collect_rows(&mut h, 1).await;
    let mut all = es;
    all.extend(
        collect_until(&mut h, |es| {
            es.iter()
                .any(|e| e.entry.entry_type() == canal_protocol::entry::EntryType::Transactionend)
        })
        .await,
    );
    let counts = insert_counts(&all);
    assert_eq!(counts.len(), 400);
    assert!(counts.values().all(|&n| n == 1), "{counts:?}");
    h.stop().await.unwrap();
}

/// Row ids (column `id`) of the s.t INSERT row images in `es`.
fn t_insert_ids(es: &[canal_server::ParsedEntry]) -> Vec<i64> {
    dml_rows(es)
        .into_iter()
        .filter(|(ty, table, _, _)| {
            *ty == canal_protocol::entry::EventType::Insert && table == "s.t"
        })
        .map(|(_, _, _, after)| after[0].1.as_deref().unwrap().parse().unwrap())
        .collect()
}

/// Waits until the destination failed, drains what it had delivered before, and returns those
/// entries with the error text of its status.
async fn failed(
    h: &mut canal_server::DestinationHandle,
) -> (Vec<canal_server::ParsedEntry>, String) {
    let mut rest = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        match tokio::time::timeout_at(deadline, h.recv()).await {
            Ok(Some(e)) => rest.push(e),
            Ok(None) => break,
            Err(_) => panic!(
                "destination still {:?}; got {:#?}",
                h.status(),
                summary(&rest)
            ),
        }
    }
    match h.status() {
        DestinationStatus::Failed { error } => (rest, error),
        other => panic!("destination ended {other:?}, not Failed"),
    }
}

/// The `file:offset` the error names after `at `.
fn error_position(msg: &str) -> canal_server::BinlogPosition {
    let at = msg.find(": at ").expect("names a position") + 5;
    let text: String = msg[at..].chars().take_while(|c| *c != ',').collect();
    text.parse().unwrap_or_else(|_| panic!("{text:?} in {msg}"))
}

/// Issue #17: `SET GLOBAL binlog_format` away from ROW while a destination runs. The data changes
/// then arrive as QUERY events that row consumers would skip; the destination must stop with the
/// same operator error as at connect, naming the position. What ROW format itself writes as text
/// (DCL, SAVEPOINT, XA, temporary tables, CREATE … SELECT) must not stop it; under MIXED a
/// non-deterministic statement still arrives as rows, a deterministic one as a statement.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binlog_format_switched_while_running_stops_the_destination() {
    harness::init_tracing();
    let db = MariaDb::start().await.unwrap();
    db.exec("CREATE DATABASE s; CREATE TABLE s.t (id BIGINT PRIMARY KEY, v VARCHAR(40))")
        .await
        .unwrap();

    // STATEMENT.
    let (_g, dir) = data_dir();
    let mut h = start("fmt", dest_config(&db), &dir, None);
    wait_running(&h).await;
    db.exec("INSERT INTO s.t VALUES (1, 'row'), (2, 'row')")
        .await
        .unwrap();
    db.exec("CREATE USER 'u1'@'%' IDENTIFIED BY 'p'; GRANT SELECT ON s.* TO 'u1'@'%'")
        .await
        .unwrap();
    db.exec("BEGIN; INSERT INTO s.t VALUES (3, 'row'); SAVEPOINT a; INSERT INTO s.t VALUES (4, 'undone'); ROLLBACK TO SAVEPOINT a; COMMIT")
        .await
        .unwrap();
    db.exec("CREATE TEMPORARY TABLE s.tmp (id INT); INSERT INTO s.tmp VALUES (1); UPDATE s.tmp SET id = 2; DROP TEMPORARY TABLE s.tmp")
        .await
        .unwrap();
    db.exec("XA START 'x1'; INSERT INTO s.t VALUES (5, 'xa'); XA END 'x1'; XA PREPARE 'x1'; XA COMMIT 'x1'")
        .await
        .unwrap();
    db.exec("CREATE TABLE s.copy SELECT * FROM s.t")
        .await
        .unwrap();
    db.exec("INSERT INTO s.t VALUES (6, 'row')").await.unwrap();
    let es = collect_until(&mut h, |es| t_insert_ids(es).contains(&6)).await;
    assert_eq!(t_insert_ids(&es), vec![1, 2, 3, 5, 6]);

    db.exec("SET GLOBAL binlog_format = 'STATEMENT'")
        .await
        .unwrap();
    let before = db.master_status().await.unwrap();
    // A new connection: the session takes the global format when it connects.
    db.exec("INSERT INTO s.t VALUES (7, 'statement')")
        .await
        .unwrap();
    let (rest, msg) = failed(&mut h).await;
    assert!(
        msg.contains("destination fmt")
            && msg.contains("binlog_format=STATEMENT")
            && msg.contains("set binlog_format=ROW")
            && msg.contains("INSERT on s.t was written as a statement"),
        "{msg}"
    );
    let at = error_position(&msg);
    assert!(
        at.file == before.file && at.offset >= before.position,
        "{at} is the statement's event, after {before:?}: {msg}"
    );
    assert!(
        t_insert_ids(&rest).is_empty() && rest.iter().all(|e| e.position.binlog < at),
        "nothing of or after the statement was delivered: {:#?}",
        summary(&rest)
    );
    let err = h.stop().await.expect_err("failed").to_string();
    assert_eq!(err, msg);

    // MIXED.
    db.exec("SET GLOBAL binlog_format = 'ROW'").await.unwrap();
    let (_g2, dir2) = data_dir();
    let mut h = start("mixed", dest_config(&db), &dir2, None);
    wait_running(&h).await;
    db.exec("SET GLOBAL binlog_format = 'MIXED'").await.unwrap();
    db.exec("INSERT INTO s.t VALUES (8, UUID())").await.unwrap();
    let es = collect_until(&mut h, |es| t_insert_ids(es).contains(&8)).await;
    assert_eq!(t_insert_ids(&es), vec![8], "non-deterministic: still rows");
    db.exec("INSERT INTO s.t VALUES (9, 'mixed')")
        .await
        .unwrap();
    let (rest, msg) = failed(&mut h).await;
    assert!(
        msg.contains("destination mixed")
            && msg.contains("binlog_format=MIXED")
            && msg.contains("set binlog_format=ROW")
            && msg.contains("INSERT on s.t"),
        "{msg}"
    );
    assert!(t_insert_ids(&rest).is_empty(), "{:#?}", summary(&rest));
    let _ = h.stop().await;
    db.exec("SET GLOBAL binlog_format = 'ROW'").await.unwrap();
}
