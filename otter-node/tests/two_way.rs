//! Two-way sync between two real MariaDB sites with two otter-node processes (one per site) and a
//! real ZooKeeper: changes written at each site reach the other once and never come back, a user
//! transaction touching a row just loaded from the other site goes back to it, and DDL synced both
//! ways is applied once.

mod common;

use std::time::{Duration, Instant};

use common::sites::*;
use common::Node;
use otter_node::model::ChannelStatus;

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
