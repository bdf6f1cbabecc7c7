//! Two-way sync under overlapping writes: both sites change the same 40 keys at random for 60 s
//! (inserts, updates, deletes, key changes) with two real MariaDB sites, one otter-node per site
//! and a real ZooKeeper, under `site_priority` and under `newer_wins`.

mod common;

use std::time::{Duration, Instant};

use common::sites::*;
use common::Node;
use harness::MariaDb;
use otter_node::model::ChannelStatus;

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
    type Row = (String, String, String, String, Vec<u8>, Vec<u8>);
    let rows: Vec<Row> = db
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
