//! Snapshots in the stream (watermark windows), through the canal-server binary and Canal's TCP
//! protocol, against a real MariaDB: rows print exactly as binlog rows do, a snapshot taken while
//! a workload changes the table (also inside the chunk being copied) replays to the source's
//! rows, and a kill -9 in the middle resumes after the last chunk the client acked.

mod common;

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use canal_protocol::entry::{Column, Entry, EntryType, EventType, RowChange};
use common::server::*;
use harness::MariaDb;
use prost::Message;

/// One replayed row: column name → value (None for NULL).
type Row = BTreeMap<String, Option<String>>;

#[derive(Default)]
struct Replay {
    rows: HashMap<String, Row>,
    snapshot_rows: usize,
    /// Ids of snapshot rows, in arrival order.
    snapshot_ids: Vec<i64>,
    /// Snapshot rows as `Column`s by id (for printing comparisons).
    snapshot_cols: HashMap<String, Vec<Column>>,
    /// Binlog INSERT rows as `Column`s by id.
    insert_cols: HashMap<String, Vec<Column>>,
    sentinels: Vec<String>,
}

fn image(cs: &[Column]) -> Row {
    cs.iter()
        .map(|c| {
            (
                c.name().to_string(),
                (!c.is_null()).then(|| c.value().to_string()),
            )
        })
        .collect()
}

fn id_of(cs: &[Column]) -> String {
    cs.iter()
        .find(|c| c.is_key())
        .map(|c| c.value().to_string())
        .unwrap_or_default()
}

impl Replay {
    fn apply(&mut self, es: &[Entry], table: &str) {
        for e in es {
            if e.entry_type() != EntryType::Rowdata {
                continue;
            }
            let h = e.header.clone().unwrap_or_default();
            let rc = RowChange::decode(e.store_value()).unwrap();
            if h.table_name() == "sentinel" {
                for rd in &rc.row_datas {
                    self.sentinels.push(id_of(&rd.after_columns));
                }
                continue;
            }
            if h.table_name() != table {
                continue;
            }
            let snapshot = h
                .props
                .iter()
                .any(|p| p.key() == "snapshot" && p.value() == "true");
            for rd in &rc.row_datas {
                match h.event_type() {
                    EventType::Insert => {
                        let id = id_of(&rd.after_columns);
                        if snapshot {
                            self.snapshot_rows += 1;
                            self.snapshot_ids.push(id.parse().unwrap_or(-1));
                            self.snapshot_cols
                                .insert(id.clone(), rd.after_columns.clone());
                        } else {
                            self.insert_cols
                                .insert(id.clone(), rd.after_columns.clone());
                        }
                        self.rows.insert(id, image(&rd.after_columns));
                    }
                    EventType::Update => {
                        self.rows.remove(&id_of(&rd.before_columns));
                        self.rows
                            .insert(id_of(&rd.after_columns), image(&rd.after_columns));
                    }
                    EventType::Delete => {
                        self.rows.remove(&id_of(&rd.before_columns));
                    }
                    _ => {}
                }
            }
        }
    }
}

/// Gets and acks until `done(replay)` holds.
async fn consume_until(
    c: &mut RawClient,
    replay: &mut Replay,
    table: &str,
    done: impl Fn(&Replay) -> bool,
) {
    for _ in 0..20_000 {
        if done(replay) {
            return;
        }
        let m = c.get("1001", 2000, 200).await.expect("get");
        if m.batch_id != -1 {
            replay.apply(&entries(&m), table);
            c.ack("1001", m.batch_id).await;
        }
    }
    panic!(
        "replay did not reach the goal: {} rows, {} snapshot rows",
        replay.rows.len(),
        replay.snapshot_rows
    );
}

async fn grant_signal(db: &MariaDb) {
    let u = db.replication_user().unwrap().user.clone();
    db.exec(&format!(
        "CREATE DATABASE IF NOT EXISTS canal_snapshot; GRANT INSERT, DELETE, CREATE ON canal_snapshot.* TO '{u}'@'%'"
    ))
    .await
    .unwrap();
}

/// `(id, v, n)` of every source row, as the replay holds them.
async fn source_rows(
    db: &MariaDb,
    table: &str,
) -> HashMap<String, (Option<String>, Option<String>)> {
    let rows: Vec<(i64, Option<String>, Option<i64>)> = db
        .query(&format!("SELECT id, v, n FROM {table}"))
        .await
        .unwrap();
    rows.into_iter()
        .map(|(id, v, n)| (id.to_string(), (v, n.map(|n| n.to_string()))))
        .collect()
}

fn replay_rows(r: &Replay) -> HashMap<String, (Option<String>, Option<String>)> {
    r.rows
        .iter()
        .map(|(id, row)| {
            let get = |k: &str| row.get(k).cloned().flatten();
            (id.clone(), (get("v"), get("n")))
        })
        .collect()
}

/// A source with `shop.big` (`rows` rows) and `shop.sentinel`, the account allowed to write the
/// signal table.
async fn big_source(rows: i64) -> MariaDb {
    let db = MariaDb::start().await.unwrap();
    grant_signal(&db).await;
    db.exec(&format!(
        "CREATE DATABASE shop; CREATE TABLE shop.big (id INT PRIMARY KEY, v VARCHAR(40), n INT);
         CREATE TABLE shop.sentinel (id INT PRIMARY KEY);
         INSERT INTO shop.big SELECT seq, CONCAT('row-', seq), seq % 1000 FROM shop.seq_1_to_{rows}"
    ))
    .await
    .unwrap();
    db
}

/// A server reading `db` from its binlog's end, with `extra` in its destination section; returns
/// once it streams.
async fn server_at_end(db: &MariaDb, extra: &str) -> ServerProc {
    let start = db.master_status().await.unwrap();
    let s = ServerProc::start(
        server_bin(),
        db,
        "",
        &format!(
            "journal_name = \"{}\"\nposition = {}\n{extra}",
            start.file, start.position
        ),
    )
    .await;
    s.wait_streaming().await;
    s
}

async fn snapshot_status(s: &ServerProc) -> serde_json::Value {
    let body = http_get(s.admin_port, "/destinations/example/snapshot")
        .await
        .unwrap();
    let json = body.split("\r\n\r\n").nth(1).unwrap_or(&body);
    serde_json::from_str(json).unwrap_or(serde_json::Value::Null)
}

async fn wait_finished(s: &ServerProc) {
    for _ in 0..1200 {
        let st = snapshot_status(s).await;
        match st["state"].as_str() {
            Some("finished") => return,
            Some("failed") => panic!("snapshot failed: {st}\n{}", s.log()),
            _ => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
    panic!("snapshot did not finish: {}", s.log());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshot_rows_print_exactly_as_binlog_rows() {
    harness::init_tracing();
    let db = MariaDb::start().await.unwrap();
    grant_signal(&db).await;
    db.exec(
        "CREATE DATABASE shop; CREATE TABLE shop.types (
            id INT PRIMARY KEY, ti TINYINT, us SMALLINT UNSIGNED, mi MEDIUMINT, bu BIGINT UNSIGNED,
            f FLOAT, dbl DOUBLE, d DECIMAL(10,2), b BIT(10), y YEAR, dt DATE, t TIME(2),
            dtm DATETIME(3), ts TIMESTAMP(6) NULL, c CHAR(3), v VARCHAR(20), bin VARBINARY(8),
            tx TEXT, bl BLOB, e ENUM('a','b','c'), s SET('x','y','z'), j JSON)",
    )
    .await
    .unwrap();
    let s = server_at_end(&db, "").await;
    db.exec(
        "INSERT INTO shop.types VALUES
         (1, -5, 65000, -8000000, 18446744073709551615, 1.5, -2.25, 12.30, b'1010101010', 2024,
          '2024-02-29', '-838:59:59.99', '2024-01-02 03:04:05.678', '2024-01-02 03:04:05.123456',
          'ab', 'héllo', x'00ff10', 'some text', x'deadbeef', 'b', 'x,z', '{\"a\": [1, 2.5, \"x\"]}'),
         (2, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
          NULL, NULL, NULL, NULL, NULL, NULL, NULL),
         (3, 127, 0, 8388607, 0, -0.0001, 1e300, -0.01, b'0', 1901, '1000-01-01', '00:00:00',
          '2038-01-19 03:14:07.999', '1970-01-01 00:00:01', '', '', x'', '', x'', 'a', '', '[]')",
    )
    .await
    .unwrap();
    let mut c = RawClient::subscribed(&s.addr(), "1001", "").await;
    let mut replay = Replay::default();
    consume_until(&mut c, &mut replay, "types", |r| r.insert_cols.len() == 3).await;
    let r = http_request(
        s.admin_port,
        "POST",
        "/destinations/example/snapshot?tables=shop.types",
    )
    .await
    .unwrap();
    assert!(r.contains("202"), "{r}");
    consume_until(&mut c, &mut replay, "types", |r| r.snapshot_rows == 3).await;
    for id in ["1", "2", "3"] {
        let strip = |cs: &[Column]| -> Vec<Column> {
            cs.iter()
                .map(|c| Column {
                    updated: None,
                    ..c.clone()
                })
                .collect()
        };
        assert_eq!(
            strip(&replay.snapshot_cols[id]),
            strip(&replay.insert_cols[id]),
            "row {id}: snapshot columns differ from the binlog's"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_snapshot_under_a_concurrent_workload_replays_to_the_source() {
    harness::init_tracing();
    const ROWS: i64 = 1_000_000;
    const CHUNK: i64 = 10_000;
    let db = big_source(ROWS).await;
    let s = server_at_end(
        &db,
        &format!("snapshot_tables = [\"shop.big\"]\nsnapshot_chunk_rows = {CHUNK}\n"),
    )
    .await;
    let mut c = RawClient::subscribed(&s.addr(), "1001", "").await;

    // The workload: changes near the chunk being copied (just past the last key read), and
    // anywhere else, including inserts of new keys and deletes.
    let stop = tokio_util::sync::CancellationToken::new();
    let writer = {
        let (db_addr, stop) = (db.conn().await.unwrap(), stop.clone());
        let admin = s.admin_port;
        tokio::spawn(async move {
            use mysql_async::prelude::Queryable;
            let mut conn = db_addr;
            let mut i: i64 = 0;
            let mut changes = 0u64;
            while !stop.is_cancelled() {
                i += 1;
                let body = http_get(admin, "/destinations/example/snapshot")
                    .await
                    .unwrap_or_default();
                let last = body
                    .split("\"last_key\":[{\"t\":\"int\",\"v\":")
                    .nth(1)
                    .and_then(|r| r.split('}').next())
                    .and_then(|n| n.parse::<i64>().ok())
                    .unwrap_or(0);
                let near = last + 1 + (i * 37) % CHUNK;
                let far = 1 + (i * 7919) % (ROWS + 1000);
                let sql = match i % 5 {
                    0 => format!("UPDATE shop.big SET v = 'upd-{i}', n = n + 1 WHERE id IN ({near}, {far})"),
                    1 => format!("DELETE FROM shop.big WHERE id = {near}"),
                    2 => format!("INSERT INTO shop.big VALUES ({}, 'new-{i}', {i}) ON DUPLICATE KEY UPDATE v = 'dup-{i}'", ROWS + i),
                    3 => format!("UPDATE shop.big SET id = {} WHERE id = {far}", ROWS + 500_000 + i),
                    _ => format!("UPDATE shop.big SET n = {i} WHERE id BETWEEN {near} AND {}", near + 20),
                };
                conn.query_drop(sql).await.unwrap();
                changes += 1;
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            changes
        })
    };
    // Consume while the snapshot runs.
    let mut replay = Replay::default();
    let mut finished = false;
    for _ in 0..100_000 {
        let m = c.get("1001", 2000, 100).await.expect("get");
        if m.batch_id != -1 {
            replay.apply(&entries(&m), "big");
            c.ack("1001", m.batch_id).await;
        }
        if replay.snapshot_rows > 0 && snapshot_status(&s).await["state"] == "finished" {
            finished = true;
            break;
        }
    }
    assert!(finished, "snapshot did not finish: {}", s.log());
    stop.cancel();
    let changes = writer.await.unwrap();
    db.exec("INSERT INTO shop.sentinel VALUES (1)")
        .await
        .unwrap();
    consume_until(&mut c, &mut replay, "big", |r| {
        r.sentinels.contains(&"1".to_string())
    })
    .await;

    let want = source_rows(&db, "shop.big").await;
    let got = replay_rows(&replay);
    let missing: Vec<_> = want
        .keys()
        .filter(|k| !got.contains_key(*k))
        .take(10)
        .collect();
    let extra: Vec<_> = got
        .keys()
        .filter(|k| !want.contains_key(*k))
        .take(10)
        .collect();
    let differ: Vec<_> = want
        .iter()
        .filter(|(k, v)| got.get(*k).is_some_and(|g| g != *v))
        .take(10)
        .collect();
    assert!(
        missing.is_empty() && extra.is_empty() && differ.is_empty(),
        "replay differs from the source after {changes} concurrent changes: missing {missing:?}, extra {extra:?}, differing {differ:?}"
    );
    let st = snapshot_status(&s).await;
    assert!(changes > 100, "the workload ran ({changes} changes)");
    assert!(
        replay.snapshot_rows as i64 <= ROWS + changes as i64,
        "snapshot rows at most the table's rows"
    );
    eprintln!(
        "snapshot: {} rows emitted, {} changes meanwhile, status {st}",
        replay.snapshot_rows, changes
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_during_a_snapshot_resumes_after_the_last_acked_chunk() {
    harness::init_tracing();
    const ROWS: i64 = 100_000;
    let db = big_source(ROWS).await;
    let mut s = server_at_end(
        &db,
        "snapshot_tables = [\"shop.big\"]\nsnapshot_chunk_rows = 2000\n",
    )
    .await;
    let mut c = RawClient::subscribed(&s.addr(), "1001", "").await;
    let mut replay = Replay::default();
    consume_until(&mut c, &mut replay, "big", |r| r.snapshot_rows >= 30_000).await;
    // Let the flusher persist cursor and progress, then kill.
    let progress_file = s.data_dir().join("example").join("snapshot.json");
    let mut persisted = 0;
    for _ in 0..100 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        if let Ok(text) = std::fs::read_to_string(&progress_file) {
            let p: serde_json::Value = serde_json::from_str(&text).unwrap();
            persisted = p["tables"][0]["rows"].as_u64().unwrap_or(0);
            if persisted >= 20_000 {
                break;
            }
        }
    }
    assert!(persisted >= 20_000, "progress persisted: {persisted} rows");
    s.kill9();
    drop(c);
    let before_kill = replay.snapshot_ids.len();
    s.launch().await;
    s.wait_streaming().await;
    let mut c = RawClient::subscribed(&s.addr(), "1001", "").await;
    wait_finished(&s).await;
    db.exec("INSERT INTO shop.sentinel VALUES (1)")
        .await
        .unwrap();
    consume_until(&mut c, &mut replay, "big", |r| {
        r.sentinels.contains(&"1".to_string())
    })
    .await;
    let after: Vec<i64> = replay.snapshot_ids[before_kill..].to_vec();
    let first_after = after.iter().copied().min().unwrap_or(0);
    assert!(
        first_after > persisted as i64 - 2000,
        "after the restart the snapshot resumed near row {persisted}, not from zero (first id {first_after})"
    );
    assert!(
        (after.len() as i64) < ROWS,
        "not everything was copied again ({} rows after the restart)",
        after.len()
    );
    let want = source_rows(&db, "shop.big").await;
    let got = replay_rows(&replay);
    assert_eq!(got.len(), want.len(), "every row arrived");
    assert!(want.iter().all(|(k, v)| got.get(k) == Some(v)));
}
