//! Two sites for the two-way tests: MariaDB servers with the `shop` schema and `retl` prepared, the
//! shipped two-way channel pointed at them, and what the tests read back (rows, binlogs,
//! conflicts).

use std::time::{Duration, Instant};

use harness::{MariaDb, TestDir, ZooKeeper};
use otter_node::model::{Channel, ChannelStatus};

use super::Node;

pub const SCHEMA: &str = "CREATE DATABASE shop;
     CREATE TABLE shop.user (id INT PRIMARY KEY, email VARCHAR(60), name VARCHAR(40),
       password_hash VARBINARY(32), balance DECIMAL(12,2), born DATE);
     CREATE TABLE shop.orders (id BIGINT PRIMARY KEY, user_id INT, amount DOUBLE, note TEXT)";

pub async fn site() -> MariaDb {
    let db = MariaDb::start().await.unwrap();
    db.exec(SCHEMA).await.unwrap();
    db
}

/// The shipped two-way example pointed at sites `a` (hangzhou) and `b` (singapore), nodes 1 and
/// 2, starting at each site's binlog end, DDL synced both ways.
pub async fn channel(a: &MariaDb, b: &MariaDb) -> Channel {
    let mut c = Channel::from_toml(include_str!("../../../config/channel-two-way.toml")).unwrap();
    let (ua, ub) = (
        a.replication_user().cloned().unwrap_or_default(),
        b.replication_user().cloned().unwrap_or_default(),
    );
    let (sa, sb) = (
        a.master_status().await.unwrap(),
        b.master_status().await.unwrap(),
    );
    let r = c.reverse.as_mut().unwrap();
    r.source.address = b.addr().to_string();
    r.source.username = ub.user;
    r.source.password = ub.password;
    r.source.journal_name = sb.file;
    r.source.position = Some(sb.position);
    r.target.address = a.addr().to_string();
    r.target.username = "root".into();
    r.target.password = String::new();
    r.ddl_sync = true;
    r.batch_size = 100;
    let p = &mut c.pipeline;
    p.source.address = a.addr().to_string();
    p.source.username = ua.user;
    p.source.password = ua.password;
    p.source.journal_name = sa.file;
    p.source.position = Some(sa.position);
    p.target.address = b.addr().to_string();
    p.target.username = "root".into();
    p.target.password = String::new();
    p.ddl_sync = true;
    p.batch_size = 100;
    c.status = ChannelStatus::Started;
    c.validate().unwrap();
    c
}

pub async fn rows(db: &MariaDb) -> Vec<String> {
    let mut out = db
        .query::<String>(
            "SELECT CONCAT_WS('|', id, IFNULL(email,'∅'), IFNULL(name,'∅'), IFNULL(balance,'∅'))
             FROM shop.user ORDER BY id",
        )
        .await
        .unwrap();
    out.extend(
        db.query::<String>(
            "SELECT CONCAT_WS('|', id, user_id, IFNULL(amount,'∅'), IFNULL(note,'∅'))
             FROM shop.orders ORDER BY id",
        )
        .await
        .unwrap(),
    );
    out
}

pub async fn wait_converged(
    a: &MariaDb,
    b: &MariaDb,
    want: impl Fn(&[String]) -> bool,
    nodes: &[&Node],
) {
    let t = Instant::now();
    loop {
        let (ra, rb) = (rows(a).await, rows(b).await);
        if ra == rb && want(&ra) {
            return;
        }
        if t.elapsed() > Duration::from_secs(240) {
            for n in nodes {
                eprintln!("---- {}\n{}", n.log.display(), n.log());
            }
            panic!("sites differ:\nA {ra:?}\nB {rb:?}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Tables written in `db`'s binlog after `from` (from its Table_map events).
pub async fn tables_written_since(db: &MariaDb, from: &harness::BinlogPosition) -> Vec<String> {
    let rows: Vec<mysql_async::Row> = db
        .query(&format!(
            "SHOW BINLOG EVENTS IN '{}' FROM {}",
            from.file, from.position
        ))
        .await
        .unwrap_or_default();
    let mut out: Vec<String> = rows
        .into_iter()
        .filter(|r| r.get::<String, _>("Event_type").as_deref() == Some("Table_map"))
        .filter_map(|r| r.get::<String, _>("Info"))
        .collect();
    out.sort();
    out.dedup();
    out
}

/// Row changes of `shop` tables in `db`'s binlog, read from its files by `mariadb-binlog`.
#[derive(Debug, Default, Clone, Copy)]
pub struct RowChanges {
    /// Rows of transactions that did not write `retl.retl_mark` (users').
    pub user: u64,
    /// Of those, updates that changed the first column (the key of the test's tables).
    pub user_moves: u64,
    /// Rows of transactions Load applied (they write `retl.retl_mark`).
    pub loaded: u64,
}

pub fn row_changes(db: &MariaDb) -> RowChanges {
    let mut files: Vec<std::path::PathBuf> = std::fs::read_dir(db.datadir())
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("mysql-bin.0"))
        })
        .collect();
    files.sort();
    let out = std::process::Command::new("mariadb-binlog")
        .args(["--base64-output=DECODE-ROWS", "--verbose"])
        .args(&files)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let mut total = RowChanges::default();
    let (mut rows, mut moves, mut marked) = (0, 0, false);
    // Of the update being read: the key before (`WHERE` @1) and whether `SET` comes next.
    let (mut old_key, mut in_set) = (None::<String>, false);
    for line in text.lines() {
        if line.starts_with("BEGIN") {
            (rows, moves, marked) = (0, 0, false);
        } else if line.starts_with("### ") && line.contains("`retl`.`retl_mark`") {
            marked = true;
        } else if [
            "### UPDATE `shop`.",
            "### INSERT INTO `shop`.",
            "### DELETE FROM `shop`.",
        ]
        .iter()
        .any(|p| line.starts_with(p))
        {
            rows += 1;
            (old_key, in_set) = (None, false);
        } else if line == "### SET" {
            in_set = true;
        } else if let Some(v) = line.strip_prefix("###   @1=") {
            if !in_set {
                old_key = Some(v.to_string());
            } else if old_key.take().is_some_and(|old| old != v) {
                moves += 1;
            }
        } else if line.starts_with("COMMIT") {
            if marked {
                total.loaded += rows;
            } else {
                total.user += rows;
                total.user_moves += moves;
            }
            (rows, moves, marked) = (0, 0, false);
        }
    }
    total
}

/// Waits until neither site's binlog holds more than heartbeat rows for 10 s: nothing goes
/// around once the writers stopped and the pipelines drained.
pub async fn assert_quiet(a: &MariaDb, b: &MariaDb) {
    let before = (
        a.master_status().await.unwrap(),
        b.master_status().await.unwrap(),
    );
    tokio::time::sleep(Duration::from_secs(10)).await;
    for (db, from) in [(a, &before.0), (b, &before.1)] {
        let written = tables_written_since(db, from).await;
        assert!(
            written.iter().all(|t| t.contains("(retl.xdual)")),
            "a binlog grew with more than heartbeats while nobody wrote (an echo): {written:?}"
        );
    }
}

/// Creates retl on a site (as `otter-manager prepare-site` does) and lets the replication account
/// write its heartbeat.
pub async fn prepare(db: &MariaDb) {
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
}

/// Two prepared sites, a ZooKeeper, a test directory and the two-way example channel pointed at
/// the sites (not yet published).
pub async fn two_sites(label: &str) -> (MariaDb, MariaDb, ZooKeeper, TestDir, Channel) {
    harness::init_tracing();
    let (a, b) = (site().await, site().await);
    prepare(&a).await;
    prepare(&b).await;
    let zk = ZooKeeper::start().await.unwrap();
    let dir = TestDir::new(label).unwrap();
    let c = channel(&a, &b).await;
    (a, b, zk, dir, c)
}

pub async fn alters(db: &MariaDb) -> Vec<String> {
    let mut out = Vec::new();
    for file in db.binary_logs().await.unwrap() {
        let events: Vec<mysql_async::Row> = db
            .query(&format!("SHOW BINLOG EVENTS IN '{file}'"))
            .await
            .unwrap_or_default();
        for e in events {
            let info: String = e.get("Info").unwrap_or_default();
            if info.contains("ALTER TABLE") {
                out.push(info);
            }
        }
    }
    out
}

/// The conflicts each site wrote down: `(table, pk, kind, winner)`, sorted.
pub async fn conflicts(db: &MariaDb) -> Vec<(String, String, String, String)> {
    let mut out: Vec<(String, String, String, String)> = db
        .query("SELECT table_name, pk, kind, winner FROM retl.retl_conflict")
        .await
        .unwrap();
    out.sort();
    out
}

pub async fn set_status(zk: &ZooKeeper, c: &mut Channel, status: ChannelStatus) {
    c.status = status;
    let client = zk.client(Duration::from_secs(10)).await.unwrap();
    zk_coord::put_persistent(&client, &zk_coord::otter_paths::channel(c.id), &c.to_json())
        .await
        .unwrap();
}
