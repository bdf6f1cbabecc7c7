//! A pipeline across two sites joined by an emulated WAN (100 ms round trip): the source, its
//! Select/Extract node and the ZooKeeper voters in site A; the target, its Transform/Load node and
//! two ZooKeeper observers in site B. The site-B node lists its observers first. Mid-run the link
//! between the sites goes away for 60 s and comes back, then the site-B node is killed with
//! kill -9 and restarted; at the end the target equals the source row for row.

use std::time::Duration;

mod common;

use common::shop::*;
use common::wan::WanSites;
use common::Node;
use harness::{MariaDb, TestDir};

fn packets_received(sites: &WanSites, i: usize) -> u64 {
    sites.zk.members()[i]
        .mntr()
        .ok()
        .and_then(|m| m.get("zk_packets_received").and_then(|v| v.parse().ok()))
        .unwrap_or(0)
}

fn observer_packets(sites: &WanSites) -> u64 {
    packets_received(sites, 3) + packets_received(sites, 4)
}

/// A one-way channel across the sites: node 1 in site A (Select, Extract), node 2 in site B
/// (Transform, Load), with what it takes to start node 2 again.
struct OneWay {
    n1: Node,
    n2: Node,
    b_zk: String,
    h2: String,
    a2: String,
}

async fn one_way(sites: &WanSites, src: &MariaDb, dst: &MariaDb, dir: &TestDir) -> OneWay {
    let c = channel(src, dst, &[1], &[2]).await;
    publish(&sites.zk, &c).await;
    let n1 = Node::start_in_site(
        dir,
        1,
        &sites.site_a_zk(),
        &sites.http_upstream,
        &sites.http_link.addr().to_string(),
    );
    let b_zk = sites.site_b_zk();
    let b_http = || format!("127.0.0.1:{}", harness::free_port());
    let (h2, a2) = (b_http(), b_http());
    let n2 = Node::start_in_site(dir, 2, &b_zk, &h2, &a2);
    OneWay {
        n1,
        n2,
        b_zk,
        h2,
        a2,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pipeline_across_a_wan_survives_a_60_s_partition_and_kill9_in_the_remote_site() {
    harness::init_tracing();
    let (src, dst) = (source().await, target().await);
    let sites = WanSites::start(Duration::from_millis(50)).await;
    // Node 1 (site A) selects and extracts; node 2 (site B) transforms and loads.
    let dir = TestDir::new("otter-wan").unwrap();
    let OneWay {
        n1,
        mut n2,
        b_zk,
        h2,
        a2,
    } = one_way(&sites, &src, &dst, &dir).await;

    let before = observer_packets(&sites);
    workload(&src, 5).await;
    wait_equal(&src, &dst, Duration::from_secs(120), &[&n1, &n2]).await;
    // Site B's coordination went to its observers; none of its sessions crossed to the voters.
    assert!(
        observer_packets(&sites) > before,
        "the observers served site B"
    );
    assert_eq!(
        sites.sessions_across(),
        0,
        "a site-B session crossed the WAN"
    );
    // The batch data crossed the WAN (pulled by site B from site A).
    assert!(sites.http_link.accepted_connections() > 0);

    // A mixed stream of single-row changes runs through everything below.
    let stop = tokio_util::sync::CancellationToken::new();
    let writer = tokio::spawn(keep_changing(src.conn().await.unwrap(), stop.clone()));
    tokio::time::sleep(Duration::from_secs(3)).await;

    // The link goes away for 60 s while site A keeps changing.
    sites.partition();
    workload(&src, 6).await;
    tokio::time::sleep(Duration::from_secs(60)).await;
    sites.heal();
    workload(&src, 7).await;
    tokio::time::sleep(Duration::from_secs(5)).await;

    // kill -9 of the site-B node mid-stream, then it comes back.
    n2.kill9();
    workload(&src, 8).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let n2 = Node::start_in_site(&dir, 2, &b_zk, &h2, &a2);
    tokio::time::sleep(Duration::from_secs(3)).await;
    stop.cancel();
    let changes = writer.await.unwrap();
    assert!(changes > 1000, "the writer made {changes} changes");
    wait_equal(&src, &dst, Duration::from_secs(240), &[&n1, &n2]).await;
    println!("across the WAN: {changes} single-row changes and 4 workload rounds, target equal");
}

/// A two-way channel across the same WAN: site A (hangzhou) and site B (singapore) both write, on
/// keys of their own and on shared rows; node 1 in site A selects A's changes and loads B's, node 2
/// in site B the other way round, each pulling the other's batches across the WAN. Both sites end
/// with the same rows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_two_way_channel_across_a_wan_converges() {
    use common::sites;
    harness::init_tracing();
    let (a, b) = (sites::site().await, sites::site().await);
    sites::prepare(&a).await;
    sites::prepare(&b).await;
    let wan = WanSites::start(Duration::from_millis(50)).await;
    let c = sites::channel(&a, &b).await;
    assert_eq!(c.pipeline.select_nodes, vec![1]);
    assert_eq!(c.pipeline.load_nodes, vec![2]);
    publish(&wan.zk, &c).await;
    let dir = TestDir::new("otter-wan-two-way").unwrap();
    let n1 = Node::start_in_site(
        &dir,
        1,
        &wan.site_a_zk(),
        &wan.http_upstream,
        &wan.http_link.addr().to_string(),
    );
    let n2 = Node::start_in_site(
        &dir,
        2,
        &wan.site_b_zk(),
        &wan.http_b_upstream,
        &wan.http_b_link.addr().to_string(),
    );
    let nodes = [&n1, &n2];
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
    sites::wait_converged(&a, &b, |r| r.len() == 120, &nodes).await;
    // Each site changes rows that came from the other; a delete crosses too.
    b.exec("UPDATE shop.user SET name = 'changed at b' WHERE id BETWEEN 0 AND 9")
        .await
        .unwrap();
    a.exec("UPDATE shop.orders SET note = 'changed at a' WHERE id BETWEEN 1000 AND 1009; DELETE FROM shop.orders WHERE id = 1029")
        .await
        .unwrap();
    sites::wait_converged(
        &a,
        &b,
        |r| {
            r.iter().filter(|l| l.contains("changed at b")).count() == 10
                && r.iter().filter(|l| l.contains("changed at a")).count() == 10
                && r.len() == 119
        },
        &nodes,
    )
    .await;
    assert_eq!(wan.sessions_across(), 0, "a site-B session crossed the WAN");
    assert!(wan.http_link.accepted_connections() > 0 && wan.http_b_link.accepted_connections() > 0);
}

/// Loss of the voters' quorum: two of the three voters frozen (SIGSTOP) for 20 s while site A keeps
/// changing. No ZooKeeper write can succeed, so no batch is opened, claimed or finished: once the
/// batches claimed before the loss are through (their locks were valid; a few seconds), the target
/// stays as it is. When the voters come back the pipeline resumes on its own and the target ends
/// equal to the source.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn losing_the_voters_quorum_stops_loading_and_the_pipeline_resumes_after_it() {
    harness::init_tracing();
    let (src, dst) = (source().await, target().await);
    let mut sites = WanSites::start(Duration::from_millis(50)).await;
    let dir = TestDir::new("otter-wan-quorum").unwrap();
    let OneWay { n1, n2, .. } = one_way(&sites, &src, &dst, &dir).await;
    workload(&src, 1).await;
    wait_equal(&src, &dst, Duration::from_secs(120), &[&n1, &n2]).await;

    // The leader and another voter freeze: no quorum anywhere, observers included.
    let leader = sites.zk.leader().expect("a leader");
    let other = (0..3).find(|i| *i != leader).unwrap();
    sites.zk.member_mut(leader).pause().unwrap();
    sites.zk.member_mut(other).pause().unwrap();
    let stop = tokio_util::sync::CancellationToken::new();
    let writer = tokio::spawn(keep_changing(src.conn().await.unwrap(), stop.clone()));
    workload(&src, 2).await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    let (_, frozen) = snapshot(&src, &dst).await;
    tokio::time::sleep(Duration::from_secs(15)).await;
    let (source_now, still) = snapshot(&src, &dst).await;
    assert_eq!(
        frozen, still,
        "the target changed without a ZooKeeper quorum"
    );
    assert_ne!(source_now, still, "the source kept changing meanwhile");

    // The quorum returns: everything written meanwhile arrives.
    sites.zk.member_mut(leader).resume().unwrap();
    sites.zk.member_mut(other).resume().unwrap();
    workload(&src, 3).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    stop.cancel();
    let changes = writer.await.unwrap();
    assert!(changes > 100, "the writer made {changes} changes");
    wait_equal(&src, &dst, Duration::from_secs(240), &[&n1, &n2]).await;
}
