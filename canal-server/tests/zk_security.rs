//! ZooKeeper security with real processes: a canal-server and a consumer with digest credentials
//! create every znode closed to other identities except the running and cluster nodes, which an
//! unauthenticated ZooKeeper client may read (Canal's clients find the server there) but not
//! change; everything else it can neither read nor write.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, Instant};

use canal_client::{ClusterConnector, ConnectorOptions, ZkConfig};
use common::server::*;
use harness::{MariaDb, TestDir, ZooKeeper};
use zookeeper_client::{Client, CreateMode, Error as ZkError, Permission};

const DIGEST: &str = "canal:zk-s3cret";

/// Every znode under `root`, listed with an authenticated session.
async fn tree(zk: &Client, root: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_string()];
    while let Some(p) = stack.pop() {
        if let Ok(children) = zk.list_children(&p).await {
            for c in children {
                stack.push(format!("{p}/{c}"));
            }
        }
        out.push(p);
    }
    out.sort();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn digest_closes_every_znode_but_the_running_and_cluster_nodes() {
    harness::init_tracing();
    let db = MariaDb::start().await.unwrap();
    db.exec("CREATE DATABASE shop; CREATE TABLE shop.t (id BIGINT PRIMARY KEY, v VARCHAR(20))")
        .await
        .unwrap();
    let zk = ZooKeeper::start().await.unwrap();
    let dir = TestDir::new("zk-security").unwrap();
    let digest_file = dir.path().join("zk-digest");
    std::fs::write(&digest_file, format!("{DIGEST}\n")).unwrap();
    std::fs::set_permissions(&digest_file, std::fs::Permissions::from_mode(0o600)).unwrap();
    let server = ServerProc::start_with(
        server_bin(),
        &db,
        "flush_period_ms = 0\n",
        "",
        &format!(
            "[zookeeper]\nservers = \"{}\"\nsession_timeout_ms = 4000\ndigest = \"file:{}\"\n",
            zk.connect_string(),
            digest_file.display()
        ),
    )
    .await;
    wait_streaming(&server).await;

    // A consumer with the same credentials (and its own election node) gets rows and acks them,
    // so cursor nodes exist.
    let zk_cfg = ZkConfig {
        servers: zk.connect_string(),
        session_timeout_ms: 4_000,
        digest: format!("file:{}", digest_file.display()),
        ..Default::default()
    };
    let mut consumer =
        ClusterConnector::new(zk_cfg.clone(), "example", ConnectorOptions::default())
            .with_client_election("10.0.0.1:1");
    consumer.connect().await.unwrap();
    consumer.subscribe(Some("shop\\..*")).await.unwrap();
    for id in 0..5 {
        db.exec(&format!("INSERT INTO shop.t VALUES ({id}, 'x')"))
            .await
            .unwrap();
    }
    let mut got = Vec::new();
    let t = Instant::now();
    while got.len() < 5 {
        assert!(t.elapsed() < Duration::from_secs(60), "rows: {got:?}");
        let m = consumer
            .get_without_ack(100, Some(Duration::from_millis(500)))
            .await
            .unwrap();
        got.extend(row_ids(&m.entries));
        consumer.ack(m.id).await.unwrap();
    }
    assert_eq!(got, ["0", "1", "2", "3", "4"]);

    let owner = zk_cfg.connect().await.unwrap();
    // The cursor reached ZooKeeper (the ack above is flushed at once).
    let cursor = "/otter/canal/destinations/example/1001/cursor";
    let t = Instant::now();
    while owner.check_stat(cursor).await.unwrap().is_none() {
        assert!(t.elapsed() < Duration::from_secs(30), "no cursor node");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let nodes = tree(&owner, "/otter").await;
    for must in [
        "/otter/canal/cluster",
        "/otter/canal/destinations/example/running",
        "/otter/canal/destinations/example/1001/running",
        cursor,
    ] {
        assert!(nodes.iter().any(|n| n == must), "{must} in {nodes:?}");
    }

    let stranger = Client::connect(&zk.connect_string()).await.unwrap();
    let mut readable = Vec::new();
    for path in &nodes {
        // The ACL reads back: all for the digest identity, read for the world where public.
        let (acls, _) = owner.get_acl(path).await.unwrap();
        let public = zk_coord::acl::world_readable(path);
        assert!(
            acls.iter().any(|a| a.scheme() == "digest"
                && a.id().starts_with("canal:")
                && a.permission() == Permission::ALL),
            "{path}: {acls:?}"
        );
        let world: Vec<_> = acls.iter().filter(|a| a.scheme() == "world").collect();
        if public {
            assert_eq!(world.len(), 1, "{path}: {acls:?}");
            assert_eq!(world[0].permission(), Permission::READ, "{path}");
        } else {
            assert!(world.is_empty(), "{path}: {acls:?}");
        }

        match stranger.get_data(path).await {
            Ok(_) => readable.push(path.clone()),
            Err(ZkError::NoAuth) => {}
            Err(e) => panic!("{path}: {e}"),
        }
        assert_eq!(
            stranger.set_data(path, b"x", None).await.unwrap_err(),
            ZkError::NoAuth,
            "{path} writable"
        );
        let child = format!("{path}/intruder");
        let opts = CreateMode::Persistent.with_acls(zookeeper_client::Acls::anyone_all());
        assert_eq!(
            stranger.create(&child, b"", &opts).await.unwrap_err(),
            ZkError::NoAuth,
            "{path} accepts children"
        );
    }
    // Deleting needs DELETE on the parent: refused for every node but the root's children.
    for path in nodes.iter().filter(|p| p.matches('/').count() > 1) {
        assert_eq!(
            stranger.delete(path, None).await.unwrap_err(),
            ZkError::NoAuth,
            "{path} deletable"
        );
    }
    let expected: Vec<String> = nodes
        .iter()
        .filter(|p| zk_coord::acl::world_readable(p))
        .cloned()
        .collect();
    assert_eq!(readable, expected, "what a stranger can read");
    assert!(readable.iter().all(|p| !p.contains("cursor")));
    println!("stranger may read: {readable:?}");

    // Canal's own clients find the server through the public running node.
    let (running, _) = stranger
        .get_data("/otter/canal/destinations/example/running")
        .await
        .unwrap();
    let running: zk_coord::RunningData = serde_json::from_slice(&running).unwrap();
    assert_eq!(running.address, server.addr());
}

/// A config file anyone may rewrite is refused before it is used; a digest file others may read is
/// refused with the key named.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_config_and_secret_files_are_refused() {
    let dir = TestDir::new("zk-security-files").unwrap();
    let digest_file = dir.path().join("zk-digest");
    std::fs::write(&digest_file, DIGEST).unwrap();
    std::fs::set_permissions(&digest_file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let config = dir.path().join("canal-server.toml");
    std::fs::write(
        &config,
        format!(
            "[destinations.example]\naddress = \"127.0.0.1:3306\"\nusername = \"canal\"\n\
             password = \"canal\"\nslave_id = 7\n\
             [zookeeper]\nservers = \"127.0.0.1:2181\"\ndigest = \"file:{}\"\n",
            digest_file.display()
        ),
    )
    .unwrap();
    let check = || {
        std::process::Command::new(server_bin())
            .arg("--config")
            .arg(&config)
            .arg("--check")
            .output()
            .unwrap()
    };
    let out = check();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("digest") && err.contains("chmod 600"), "{err}");

    std::fs::set_permissions(&digest_file, std::fs::Permissions::from_mode(0o600)).unwrap();
    let out = check();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    std::fs::set_permissions(&config, std::fs::Permissions::from_mode(0o666)).unwrap();
    let out = check();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("world-writable"), "{err}");
}
