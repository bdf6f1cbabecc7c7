//! Two-way sync between two real MariaDB sites with two otter-node processes (one per site) and a
//! real ZooKeeper: changes written at each site reach the other once and never come back, a user
//! transaction touching a row just loaded from the other site goes back to it, and DDL synced both
//! ways is applied once.

mod common;

use std::time::{Duration, Instant};

use common::Node;
use harness::{MariaDb, TestDir, ZooKeeper};
use otter_node::model::{Channel, ChannelStatus};

const SCHEMA: &str = "CREATE DATABASE shop;
     CREATE TABLE shop.user (id INT PRIMARY KEY, email VARCHAR(60), name VARCHAR(40),
       password_hash VARBINARY(32), balance DECIMAL(12,2), born DATE);
     CREATE TABLE shop.orders (id BIGINT PRIMARY KEY, user_id INT, amount DOUBLE, note TEXT)";

async fn site() -> MariaDb {
    let db = MariaDb::start().await.unwrap();
    db.exec(SCHEMA).await.unwrap();
    db
}

/// The shipped two-way example pointed at sites `a` (hangzhou) and `b` (singapore), nodes 1 and
/// 2, starting at each site's binlog end, DDL synced both ways.
async fn channel(a: &MariaDb, b: &MariaDb) -> Channel {
    let mut c = Channel::from_toml(include_str!("../../config/channel-two-way.toml")).unwrap();
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

async fn rows(db: &MariaDb) -> Vec<String> {
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

async fn wait_converged(
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
async fn tables_written_since(db: &MariaDb, from: &harness::BinlogPosition) -> Vec<String> {
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
struct RowChanges {
    /// Rows of transactions that did not write `retl.retl_mark` (users').
    user: u64,
    /// Of those, updates that changed the first column (the key of the test's tables).
    user_moves: u64,
    /// Rows of transactions Load applied (they write `retl.retl_mark`).
    loaded: u64,
}

fn row_changes(db: &MariaDb) -> RowChanges {
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
        } else if line.starts_with("### UPDATE `shop`.") {
            rows += 1;
            (old_key, in_set) = (None, false);
        } else if ["### INSERT INTO `shop`.", "### DELETE FROM `shop`."]
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
async fn assert_quiet(a: &MariaDb, b: &MariaDb) {
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
async fn prepare(db: &MariaDb) {
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
async fn two_sites(label: &str) -> (MariaDb, MariaDb, ZooKeeper, TestDir, Channel) {
    harness::init_tracing();
    let (a, b) = (site().await, site().await);
    prepare(&a).await;
    prepare(&b).await;
    let zk = ZooKeeper::start().await.unwrap();
    let dir = TestDir::new(label).unwrap();
    let c = channel(&a, &b).await;
    (a, b, zk, dir, c)
}

async fn alters(db: &MariaDb) -> Vec<String> {
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_sites_sync_both_ways_without_echo() {
    let (a, b, zk, dir, c) = two_sites("two-way").await;
    let client = zk.client(Duration::from_secs(10)).await.unwrap();
    zk_coord::put_persistent(&client, &zk_coord::otter_paths::channel(c.id), &c.to_json())
        .await
        .unwrap();
    let n1 = Node::start(&dir, 1, &zk);
    let n2 = Node::start(&dir, 2, &zk);
    let nodes = [&n1, &n2];

    // Both sites write at once, on keys of their own.
    for i in 0..30 {
        a.exec(&format!(
            "INSERT INTO shop.user VALUES ({i}, 'a{i}@x', 'from a', X'01', {i}.5, '2001-01-01');
             INSERT INTO shop.orders VALUES ({i}, {i}, 1.5, 'a')"
        ))
        .await
        .unwrap();
        let j = 1000 + i;
        b.exec(&format!(
            "INSERT INTO shop.user VALUES ({j}, 'b{j}@x', 'from b', X'02', {i}.25, '2002-02-02');
             INSERT INTO shop.orders VALUES ({j}, {j}, 2.5, 'b')"
        ))
        .await
        .unwrap();
    }
    wait_converged(&a, &b, |r| r.len() == 120, &nodes).await;

    // A user transaction at B on a row loaded from A goes back to A; so does a delete at A of a
    // row loaded from B.
    b.exec("UPDATE shop.user SET name = 'changed at b' WHERE id = 3")
        .await
        .unwrap();
    a.exec("DELETE FROM shop.orders WHERE id = 1005")
        .await
        .unwrap();
    wait_converged(
        &a,
        &b,
        |r| r.iter().any(|l| l.contains("changed at b")) && r.len() == 119,
        &nodes,
    )
    .await;

    // A key change at B (not the priority site) moves the row at A too: the new key held no row,
    // so it is an insert there, not an update of a missing row (a conflict B would lose).
    b.exec("UPDATE shop.orders SET id = 2000 WHERE id = 1010")
        .await
        .unwrap();
    wait_converged(
        &a,
        &b,
        |r| r.iter().any(|l| l.starts_with("2000|1010|")) && r.len() == 119,
        &nodes,
    )
    .await;
    assert!(conflicts(&a).await.is_empty() && conflicts(&b).await.is_empty());

    // DDL synced both ways: applied at the other site once, never back.
    a.exec("ALTER TABLE shop.orders ADD COLUMN region VARCHAR(8)")
        .await
        .unwrap();
    let t = Instant::now();
    while alters(&b).await.is_empty() {
        assert!(
            t.elapsed() < Duration::from_secs(120),
            "DDL never reached B: {}",
            n2.log()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    b.exec("INSERT INTO shop.orders VALUES (5000, 1, 1.0, 'after ddl', 'sg')")
        .await
        .unwrap();
    wait_converged(
        &a,
        &b,
        |r| r.iter().any(|l| l.contains("after ddl")),
        &nodes,
    )
    .await;

    // Quiet: nothing goes around; once writes stop only the heartbeat rows are written.
    assert_quiet(&a, &b).await;
    // Each site's Load applied each of the other site's row changes once: A wrote 61 rows, B 63,
    // one of them a key change that Load applies as a delete and an insert.
    let (ra, rb) = (row_changes(&a), row_changes(&b));
    assert_eq!(
        (ra.user, rb.user, rb.user_moves),
        (61, 63, 1),
        "the rows the test wrote"
    );
    assert_eq!(rb.loaded, ra.user, "rows loaded at B");
    assert_eq!(ra.loaded, rb.user + rb.user_moves, "rows loaded at A");
    // Both directions measured their delay.
    for pid in [11, 12] {
        let path = zk_coord::otter_paths::delay(c.id, pid);
        let t = Instant::now();
        let delay = loop {
            if let Ok((d, _)) = client.get_data(&path).await {
                break serde_json::from_slice::<otter_node::pipeline::heartbeat::Delay>(&d)
                    .unwrap();
            }
            assert!(
                t.elapsed() < Duration::from_secs(30),
                "no delay for pipeline {pid}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        };
        assert!(delay.delay_ms >= 0 && delay.at_ms > 0, "{delay:?}");
    }
    let (alters_a, alters_b) = (alters(&a).await, alters(&b).await);
    assert_eq!(alters_a.len(), 1, "A's ALTERs: {alters_a:?}");
    assert_eq!(alters_b.len(), 1, "B's ALTERs: {alters_b:?}");
    assert!(alters_b[0].contains("otter:mark"), "{alters_b:?}");
    for n in nodes {
        assert!(
            !n.log().contains("already applied"),
            "a DDL came back: {}",
            n.log()
        );
    }
}

/// Writes rows with ids from `base` on one site until `stop`: inserts, and updates of its own
/// earlier rows. Returns how many rows it inserted.
async fn keep_writing(
    mut conn: mysql_async::Conn,
    base: i64,
    tag: &'static str,
    stop: tokio_util::sync::CancellationToken,
) -> i64 {
    use mysql_async::prelude::Queryable;
    let mut n = 0i64;
    while !stop.is_cancelled() {
        let id = base + n;
        let sql = format!(
            "INSERT INTO shop.orders VALUES ({id}, {n}, {n}.5, '{tag}');
             UPDATE shop.orders SET note = CONCAT(note, '+') WHERE id = {}",
            base + n / 2
        );
        // A failed statement (none are expected) is retried with the same id.
        if conn.query_drop(sql).await.is_ok() {
            n += 1;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    n
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_directions_survive_kill9_of_load_nodes_and_a_30_s_cut_between_the_sites() {
    let (a, b, zk, dir, mut c) = two_sites("two-way-faults").await;
    // Nodes 1 and 3 at site a, 2 and 4 at site b; each direction selects at its source's site and
    // loads at its target's.
    c.pipeline.select_nodes = vec![1, 3];
    c.pipeline.load_nodes = vec![2, 4];
    let r = c.reverse.as_mut().unwrap();
    r.select_nodes = vec![2, 4];
    r.load_nodes = vec![1, 3];
    c.validate().unwrap();
    let client = zk.client(Duration::from_secs(10)).await.unwrap();
    zk_coord::put_persistent(&client, &zk_coord::otter_paths::channel(c.id), &c.to_json())
        .await
        .unwrap();
    // Every node is reached through a proxy: the link between the sites.
    let mut proxies = Vec::new();
    let mut nodes = Vec::new();
    for id in 1..=4u32 {
        let http = format!("127.0.0.1:{}", harness::free_port());
        let proxy = harness::FaultProxy::start(http.parse().unwrap()).unwrap();
        nodes.push(Node::start_at(
            &dir,
            id,
            &zk,
            &http,
            &proxy.addr().to_string(),
        ));
        proxies.push(proxy);
    }

    let stop = tokio_util::sync::CancellationToken::new();
    let wa = tokio::spawn(keep_writing(
        a.conn().await.unwrap(),
        100_000,
        "a",
        stop.clone(),
    ));
    let wb = tokio::spawn(keep_writing(
        b.conn().await.unwrap(),
        200_000,
        "b",
        stop.clone(),
    ));
    tokio::time::sleep(Duration::from_secs(3)).await;
    // kill -9 of a load node in each direction (node 2 loads a→b, node 1 loads b→a).
    nodes[1].kill9();
    tokio::time::sleep(Duration::from_secs(4)).await;
    nodes[0].kill9();
    tokio::time::sleep(Duration::from_secs(4)).await;
    // The link between the sites is cut for 30 s while both keep writing.
    for p in &proxies {
        p.refuse();
        p.cut();
    }
    tokio::time::sleep(Duration::from_secs(30)).await;
    for p in &proxies {
        p.pass();
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    stop.cancel();
    let (na, nb) = (wa.await.unwrap(), wb.await.unwrap());
    assert!(na > 100 && nb > 100, "writers wrote {na} and {nb} rows");
    let alive: Vec<&Node> = nodes.iter().collect();
    wait_converged(
        &a,
        &b,
        |r| {
            let ids: Vec<i64> = r
                .iter()
                .filter_map(|l| l.split('|').next()?.parse().ok())
                .collect();
            ids.contains(&(100_000 + na - 1)) && ids.contains(&(200_000 + nb - 1))
        },
        &alive,
    )
    .await;
    let n: Vec<i64> = a.query("SELECT COUNT(*) FROM shop.orders").await.unwrap();
    assert_eq!(n, vec![na + nb], "every row of both sites, once");
    println!("two-way under faults: {na} rows from a, {nb} from b, converged");
}

/// The conflicts each site wrote down: `(table, pk, kind, winner)`, sorted.
async fn conflicts(db: &MariaDb) -> Vec<(String, String, String, String)> {
    let mut out: Vec<(String, String, String, String)> = db
        .query("SELECT table_name, pk, kind, winner FROM retl.retl_conflict")
        .await
        .unwrap();
    out.sort();
    out
}

async fn set_status(zk: &ZooKeeper, c: &mut Channel, status: ChannelStatus) {
    c.status = status;
    let client = zk.client(Duration::from_secs(10)).await.unwrap();
    zk_coord::put_persistent(&client, &zk_coord::otter_paths::channel(c.id), &c.to_json())
        .await
        .unwrap();
}

/// Both sites change the same rows while the channel is paused; when it resumes each site detects
/// the conflicts, resolves them for the priority site (hangzhou, site a) and writes them down, and
/// both end with the same rows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conflicting_changes_converge_on_the_priority_site_and_are_reported() {
    let (a, b, zk, dir, mut c) = two_sites("two-way-conflicts").await;
    assert_eq!(c.priority_site(), "hangzhou");
    set_status(&zk, &mut c, ChannelStatus::Started).await;
    let n1 = Node::start(&dir, 1, &zk);
    let n2 = Node::start(&dir, 2, &zk);
    let nodes = [&n1, &n2];
    a.exec(
        "INSERT INTO shop.orders VALUES (1, 1, 1.0, 'base'), (2, 2, 2.0, 'base'), (3, 3, 3.0, 'base')",
    )
    .await
    .unwrap();
    wait_converged(&a, &b, |r| r.len() == 3, &nodes).await;

    // Paused: both sites change the same keys.
    set_status(&zk, &mut c, ChannelStatus::Paused).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    a.exec(
        "UPDATE shop.orders SET note = 'from a' WHERE id = 1;
         INSERT INTO shop.orders VALUES (500, 5, 5.0, 'inserted at a');
         UPDATE shop.orders SET note = 'kept by a' WHERE id = 2;
         DELETE FROM shop.orders WHERE id = 3",
    )
    .await
    .unwrap();
    b.exec(
        "UPDATE shop.orders SET note = 'from b' WHERE id = 1;
         INSERT INTO shop.orders VALUES (500, 5, 5.0, 'inserted at b');
         DELETE FROM shop.orders WHERE id = 2;
         UPDATE shop.orders SET note = 'updated at b' WHERE id = 3",
    )
    .await
    .unwrap();
    set_status(&zk, &mut c, ChannelStatus::Started).await;

    // Site a's changes win everywhere: its update, its insert, its update over b's delete, its
    // delete over b's update.
    wait_converged(
        &a,
        &b,
        |r| {
            r.iter().any(|l| l.contains("from a"))
                && r.iter().any(|l| l.contains("inserted at a"))
                && r.iter().any(|l| l.contains("kept by a"))
        },
        &nodes,
    )
    .await;
    let rows = rows(&a).await;
    assert_eq!(
        rows,
        [
            "1|1|1|from a".to_string(),
            "2|2|2|kept by a".to_string(),
            "500|5|5|inserted at a".to_string(),
        ],
        "{rows:?}"
    );
    // Each site wrote down what it detected: a kept its rows, b took a's.
    let t = Instant::now();
    let (ca, cb) = loop {
        let (ca, cb) = (conflicts(&a).await, conflicts(&b).await);
        if ca.len() >= 4 && cb.len() >= 4 {
            break (ca, cb);
        }
        assert!(
            t.elapsed() < Duration::from_secs(30),
            "a: {ca:?}\nb: {cb:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let kinds = |c: &[(String, String, String, String)], winner: &str| {
        let mut k: Vec<(String, String)> = c
            .iter()
            .filter(|x| x.3 == winner)
            .map(|x| (x.1.clone(), x.2.clone()))
            .collect();
        k.sort();
        k
    };
    let want_a = [
        ("1", "update_changed"),
        ("2", "delete_changed"),
        ("3", "update_missing"),
        ("500", "insert_exists"),
    ]
    .map(|(p, k)| (p.to_string(), k.to_string()))
    .to_vec();
    assert_eq!(kinds(&ca, "local"), want_a, "a: {ca:?}");
    let want_b = [
        ("1", "update_changed"),
        ("2", "update_missing"),
        ("3", "delete_changed"),
        ("500", "insert_exists"),
    ]
    .map(|(p, k)| (p.to_string(), k.to_string()))
    .to_vec();
    assert_eq!(kinds(&cb, "incoming"), want_b, "b: {cb:?}");
    println!("conflicts at a: {ca:?}\nconflicts at b: {cb:?}");
    // What `otter-manager conflicts` prints: the reports of each direction's target.
    use otter_node::pipeline::load::conflict::read_reports;
    let at_b = read_reports(&c.pipeline, c.id, None).await.unwrap();
    let at_a = read_reports(c.reverse.as_ref().unwrap(), c.id, None)
        .await
        .unwrap();
    assert_eq!((at_a.len(), at_b.len()), (ca.len(), cb.len()));
    for r in at_a.iter().chain(&at_b) {
        println!("{r}");
    }
    let update = at_a.iter().find(|r| r.pk == "1").unwrap();
    assert_eq!(
        (
            update.site.as_str(),
            update.origin.as_str(),
            update.policy.as_str()
        ),
        ("hangzhou", "singapore", "site_priority")
    );
    assert!(update.incoming.contains("note='from b'"), "{update:?}");
    assert!(update.found.contains("'from a'"), "{update:?}");
    assert!(read_reports(&c.pipeline, c.id, Some("2999-01-01"))
        .await
        .unwrap()
        .is_empty());
}

/// Random inserts, updates, deletes and key changes on one site over keys both sites use, until
/// `stop`; returns how many statements ran. Every write sets `user_id`, the version `newer_wins`
/// uses, as the application must: higher than the row's and than any version written earlier at
/// either site (twice the milliseconds since `t0`, plus 1 at site b, so the sites never tie).
async fn random_writes(
    mut conn: mysql_async::Conn,
    site: &'static str,
    seed: u64,
    t0: Instant,
    stop: tokio_util::sync::CancellationToken,
) -> u64 {
    use mysql_async::prelude::Queryable;
    let mut x = seed;
    let mut next = |m: u64| {
        // xorshift: reproducible per seed.
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x % m
    };
    let bit = u64::from(site == "b");
    let mut n = 0u64;
    while !stop.is_cancelled() {
        let (id, other, op) = (next(40), next(40), next(10));
        let v = t0.elapsed().as_millis() as u64 * 2 + bit;
        let version = format!("user_id = GREATEST(user_id + 1, {v})");
        let sql = match op {
            0..=3 => format!(
                "INSERT INTO shop.orders VALUES ({id}, {v}, {n}.5, '{site}-{n}') \
                 ON DUPLICATE KEY UPDATE note = VALUES(note), amount = VALUES(amount), {version}"
            ),
            4..=6 => format!(
                "UPDATE shop.orders SET note = '{site}-{n}', amount = amount + 1, {version} \
                 WHERE id = {id}"
            ),
            7 | 8 => format!("DELETE FROM shop.orders WHERE id = {id}"),
            _ => format!("UPDATE shop.orders SET id = {other}, {version} WHERE id = {id}"),
        };
        // A key change onto an existing key fails: that is a statement like any other.
        let _ = conn.query_drop(sql).await;
        n += 1;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    n
}

/// One conflict as written down: what the test checks of it.
#[derive(Debug)]
struct Reported {
    pk: String,
    kind: String,
    winner: String,
    origin: String,
    incoming: String,
    found: String,
}

async fn reports(db: &MariaDb) -> Vec<Reported> {
    let rows: Vec<(String, String, String, String, Vec<u8>, Vec<u8>)> = db
        .query(
            "SELECT pk, kind, winner, origin, incoming, found FROM retl.retl_conflict ORDER BY id",
        )
        .await
        .unwrap();
    rows.into_iter()
        .map(|(pk, kind, winner, origin, incoming, found)| Reported {
            pk,
            kind,
            winner,
            origin,
            incoming: String::from_utf8_lossy(&incoming).into_owned(),
            found: String::from_utf8_lossy(&found).into_owned(),
        })
        .collect()
}

/// The version (`user_id`) in a report's image (`user_id='12'`).
fn version_in(image: &str) -> Option<u64> {
    let (_, rest) = image.split_once("user_id='")?;
    rest.split('\'').next()?.parse().ok()
}

/// Both sites write the same 40 keys at random for 60 s under `policy`; after the writes stop and
/// the pipelines drain, the sites are equal row for row, conflicts were written down, each was
/// decided as the policy says, nothing goes around, and no site loaded more row changes than the
/// other wrote.
async fn overlapping_writes_converge(policy: otter_node::model::ConflictPolicy) {
    use otter_node::model::ConflictPolicy;
    let (a, b, zk, dir, mut c) = two_sites(&format!("two-way-random-{}", policy.name())).await;
    if policy == ConflictPolicy::NewerWins {
        for p in [&mut c.pipeline, c.reverse.as_mut().unwrap()] {
            let orders = &mut p.tables[1];
            orders.conflict = Some(policy);
            orders.version_column = Some("user_id".into());
        }
        c.validate().unwrap();
    }
    set_status(&zk, &mut c, ChannelStatus::Started).await;
    let n1 = Node::start(&dir, 1, &zk);
    let n2 = Node::start(&dir, 2, &zk);
    let stop = tokio_util::sync::CancellationToken::new();
    let t0 = Instant::now();
    let wa = tokio::spawn(random_writes(
        a.conn().await.unwrap(),
        "a",
        0x9e37_79b9,
        t0,
        stop.clone(),
    ));
    let wb = tokio::spawn(random_writes(
        b.conn().await.unwrap(),
        "b",
        0x85eb_ca6b,
        t0,
        stop.clone(),
    ));
    tokio::time::sleep(Duration::from_secs(60)).await;
    stop.cancel();
    let (na, nb) = (wa.await.unwrap(), wb.await.unwrap());
    // Equal and quiet: the same rows twice in a row, a few seconds apart.
    let t = Instant::now();
    let last = loop {
        let (ra, rb) = (rows(&a).await, rows(&b).await);
        if ra == rb {
            tokio::time::sleep(Duration::from_secs(3)).await;
            if rows(&a).await == ra && rows(&b).await == rb {
                break ra;
            }
        }
        if t.elapsed() > Duration::from_secs(180) {
            for n in [&n1, &n2] {
                eprintln!("---- {}\n{}", n.log.display(), n.log());
            }
            let missing: Vec<_> = ra.iter().filter(|r| !rb.contains(r)).collect();
            let extra: Vec<_> = rb.iter().filter(|r| !ra.contains(r)).collect();
            panic!("the sites never converged: only at a {missing:?}, only at b {extra:?}");
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    assert_quiet(&a, &b).await;

    // Every conflict decided by the policy: site_priority lets hangzhou's (a's) change win;
    // newer_wins the higher version, an update over a delete either way.
    let (ca, cb) = (reports(&a).await, reports(&b).await);
    assert!(
        !ca.is_empty() && !cb.is_empty(),
        "{na} and {nb} overlapping writes but conflicts at a {} and at b {}",
        ca.len(),
        cb.len()
    );
    for r in ca.iter().chain(&cb) {
        let incoming_wins = match policy {
            ConflictPolicy::NewerWins => match r.kind.as_str() {
                "delete_changed" => false,
                "update_missing" => true,
                _ => {
                    let (i, f) = (version_in(&r.incoming), version_in(&r.found));
                    match (i, f) {
                        (Some(i), Some(f)) if i != f => i > f,
                        _ => r.origin == "hangzhou",
                    }
                }
            },
            _ => r.origin == "hangzhou",
        };
        let want = if incoming_wins { "incoming" } else { "local" };
        assert_eq!(r.winner, want, "{r:?}");
    }
    // newer_wins: a reported key that still exists holds a version at least the winner's (every
    // later write raised it).
    if policy == ConflictPolicy::NewerWins {
        let final_version = |pk: &str| {
            last.iter()
                .filter_map(|l| {
                    let mut f = l.split('|');
                    (f.next() == Some(pk)).then(|| f.next().and_then(|v| v.parse::<u64>().ok()))
                })
                .flatten()
                .max()
        };
        for r in ca.iter().chain(&cb) {
            let won = if r.winner == "incoming" {
                &r.incoming
            } else {
                &r.found
            };
            if let (Some(now), Some(won)) = (final_version(&r.pk), version_in(won)) {
                assert!(
                    now >= won,
                    "key {} holds version {now} < {won}: {r:?}",
                    r.pk
                );
            }
        }
    }
    // Nothing loaded twice: each site's Load applied at most the other's row changes (merged in
    // batches and lost conflicts apply fewer; a key change applies as a delete and an insert).
    let (ra, rb) = (row_changes(&a), row_changes(&b));
    assert!(ra.user > 0 && rb.user > 0, "{ra:?} {rb:?}");
    assert!(rb.loaded <= ra.user + ra.user_moves, "a {ra:?}, b {rb:?}");
    assert!(ra.loaded <= rb.user + rb.user_moves, "a {ra:?}, b {rb:?}");
    println!(
        "{}: {na} + {nb} statements, row changes at a {ra:?}, at b {rb:?}, {} rows at the end, \
         {} conflicts at a, {} at b",
        policy.name(),
        last.len(),
        ca.len(),
        cb.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sixty_seconds_of_overlapping_writes_converge_under_site_priority() {
    overlapping_writes_converge(otter_node::model::ConflictPolicy::SitePriority).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sixty_seconds_of_overlapping_writes_converge_under_newer_wins() {
    overlapping_writes_converge(otter_node::model::ConflictPolicy::NewerWins).await;
}

/// `newer_wins` on `shop.orders` with `user_id` as the version: the higher version wins, a tie goes
/// to the priority site, and an update wins over a concurrent delete, on both sites alike.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn newer_wins_picks_the_higher_version_on_both_sites() {
    let (a, b, zk, dir, mut c) = two_sites("two-way-newer").await;
    for p in [&mut c.pipeline, c.reverse.as_mut().unwrap()] {
        let orders = &mut p.tables[1];
        orders.conflict = Some(otter_node::model::ConflictPolicy::NewerWins);
        orders.version_column = Some("user_id".into());
    }
    c.validate().unwrap();
    set_status(&zk, &mut c, ChannelStatus::Started).await;
    let n1 = Node::start(&dir, 1, &zk);
    let n2 = Node::start(&dir, 2, &zk);
    let nodes = [&n1, &n2];
    a.exec("INSERT INTO shop.orders VALUES (1, 1, 1.0, 'base'), (2, 1, 2.0, 'base'), (3, 1, 3.0, 'base')")
        .await
        .unwrap();
    wait_converged(&a, &b, |r| r.len() == 3, &nodes).await;

    set_status(&zk, &mut c, ChannelStatus::Paused).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    a.exec(
        "UPDATE shop.orders SET note = 'a1', user_id = 10 WHERE id = 1;
         UPDATE shop.orders SET note = 'a2', user_id = 30 WHERE id = 2;
         DELETE FROM shop.orders WHERE id = 3",
    )
    .await
    .unwrap();
    b.exec(
        "UPDATE shop.orders SET note = 'b1', user_id = 20 WHERE id = 1;
         UPDATE shop.orders SET note = 'b2', user_id = 30 WHERE id = 2;
         UPDATE shop.orders SET note = 'b3', user_id = 40 WHERE id = 3",
    )
    .await
    .unwrap();
    set_status(&zk, &mut c, ChannelStatus::Started).await;
    wait_converged(
        &a,
        &b,
        |r| r.iter().any(|l| l.contains("b1")) && r.iter().any(|l| l.contains("b3")),
        &nodes,
    )
    .await;
    assert_eq!(
        rows(&a).await,
        ["1|20|1|b1", "2|30|2|a2", "3|40|3|b3"].map(String::from),
    );
    let (ca, cb) = (conflicts(&a).await, conflicts(&b).await);
    assert!(ca.len() >= 3 && cb.len() >= 3, "a: {ca:?}\nb: {cb:?}");
}
