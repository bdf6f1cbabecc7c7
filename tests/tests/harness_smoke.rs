//! Proves the harness is real: a MariaDB that writes a binlog, ZooKeeper sessions that expire, a
//! Redis whose data survives kill -9, and a proxy whose stall makes reads time out.

use std::time::Duration;

use harness::{FaultProxy, MariaDb, MariaDbOptions, Redis, RespValue, RowMetadata, Wan, ZooKeeper};
use mysql_async::prelude::Queryable;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mariadb_writes_move_the_binlog_position() {
    harness::init_tracing();
    let db = MariaDb::start().await.expect("start mariadb");
    let vars: Vec<(String, String)> = db
        .query(
            "SELECT VARIABLE_NAME, VARIABLE_VALUE FROM information_schema.GLOBAL_VARIABLES \
             WHERE VARIABLE_NAME IN ('LOG_BIN','BINLOG_FORMAT','BINLOG_ROW_IMAGE','GTID_STRICT_MODE','BINLOG_CHECKSUM') \
             ORDER BY VARIABLE_NAME",
        )
        .await
        .expect("read variables");
    assert_eq!(
        vars,
        vec![
            ("BINLOG_CHECKSUM".to_string(), "CRC32".to_string()),
            ("BINLOG_FORMAT".to_string(), "ROW".to_string()),
            ("BINLOG_ROW_IMAGE".to_string(), "FULL".to_string()),
            ("GTID_STRICT_MODE".to_string(), "ON".to_string()),
            ("LOG_BIN".to_string(), "ON".to_string()),
        ]
    );
    let before = db.master_status().await.expect("master status");
    db.exec("CREATE DATABASE shop; CREATE TABLE shop.t (id INT PRIMARY KEY, v VARCHAR(20));")
        .await
        .expect("ddl");
    db.exec("INSERT INTO shop.t VALUES (1,'a'),(2,'b')")
        .await
        .expect("insert");
    let after = db.master_status().await.expect("master status");
    assert_eq!(after.file, before.file);
    assert!(
        after.position > before.position,
        "binlog did not grow: {before:?} -> {after:?}"
    );
    // Each transaction got a GTID in domain 0 from server 1.
    let gtid = db.gtid_binlog_pos().await.expect("gtid");
    assert!(gtid.starts_with("0-1-"), "gtid_binlog_pos = {gtid}");
    // The binlog file is on disk in the datadir.
    assert!(db.datadir().join(&after.file).is_file());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mariadb_options_replication_user_and_row_metadata() {
    harness::init_tracing();
    let db = MariaDb::start_with(MariaDbOptions {
        row_metadata: RowMetadata::Full,
        server_id: 7,
        ..Default::default()
    })
    .await
    .expect("start mariadb");
    let meta: Vec<String> = db.query("SELECT @@binlog_row_metadata").await.unwrap();
    assert_eq!(meta, vec!["FULL".to_string()]);
    let id: Vec<u32> = db.query("SELECT @@server_id").await.unwrap();
    assert_eq!(id, vec![7]);

    let user = db.replication_user().expect("repl user").clone();
    let opts = |password: &str| {
        mysql_async::OptsBuilder::default()
            .ip_or_hostname("127.0.0.1")
            .tcp_port(db.port())
            .user(Some(user.user.clone()))
            .pass(Some(password.to_string()))
            .prefer_socket(false)
    };
    let mut conn = mysql_async::Conn::new(opts(&user.password))
        .await
        .expect("replication user logs in");
    let status: Vec<mysql_async::Row> = conn.query("SHOW MASTER STATUS").await.unwrap();
    assert_eq!(status.len(), 1, "replication user may read master status");
    conn.disconnect().await.unwrap();
    let err = mysql_async::Conn::new(opts("wrong"))
        .await
        .expect_err("wrong password refused");
    assert!(err.to_string().contains("Access denied"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mariadb_kill9_pause_and_restart() {
    harness::init_tracing();
    let mut db = MariaDb::start().await.expect("start mariadb");
    db.exec("CREATE DATABASE d; CREATE TABLE d.t (id INT PRIMARY KEY); INSERT INTO d.t VALUES (1)")
        .await
        .unwrap();
    let pid = db.pid().expect("pid");

    // SIGSTOP: a query does not complete while paused, and completes after SIGCONT.
    let mut conn = db.conn().await.unwrap();
    db.pause().unwrap();
    let stalled =
        tokio::time::timeout(Duration::from_millis(500), conn.query_drop("SELECT 1")).await;
    assert!(stalled.is_err(), "query answered by a stopped server");
    db.resume().unwrap();
    let n: Vec<u32> = conn.query("SELECT COUNT(*) FROM d.t").await.unwrap();
    assert_eq!(n, vec![1]);
    drop(conn);

    // kill -9: the process is gone and connections fail; start_again recovers the data.
    db.kill9().unwrap();
    assert!(!pid_exists(pid));
    assert!(db.conn().await.is_err());
    db.start_again().await.unwrap();
    let n: Vec<u32> = db.query("SELECT COUNT(*) FROM d.t").await.unwrap();
    assert_eq!(n, vec![1]);

    // Clean restart keeps the binlog and continues it.
    let before = db.master_status().await.unwrap();
    db.restart().await.unwrap();
    db.exec("INSERT INTO d.t VALUES (2)").await.unwrap();
    let logs = db.binary_logs().await.unwrap();
    assert!(logs.contains(&before.file), "{logs:?}");
    assert!(logs.len() >= 2, "restart rotates to a new binlog: {logs:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_keeps_acknowledged_writes_across_kill9_and_pauses() {
    harness::init_tracing();
    let mut redis = Redis::start().await.expect("start redis");
    assert_eq!(redis.addr(), format!("127.0.0.1:{}", redis.port()));
    assert_eq!(redis.url(), format!("redis://127.0.0.1:{}/", redis.port()));
    let set = redis.command(&["SET", "order:1", "paid"]).await.unwrap();
    assert_eq!(set, RespValue::Simple("OK".into()));
    let missing = redis.command(&["EXISTS", "order:2"]).await.unwrap();
    assert_eq!(missing, RespValue::Integer(0));
    let unknown = redis.command(&["NOSUCHCOMMAND"]).await.unwrap();
    assert!(
        matches!(unknown, RespValue::Error(ref e) if e.starts_with("ERR")),
        "{unknown:?}"
    );

    // SIGSTOP: no reply while paused; answers again after SIGCONT.
    redis.pause().unwrap();
    let stalled = tokio::time::timeout(Duration::from_millis(500), redis.command(&["PING"])).await;
    assert!(stalled.is_err(), "command answered by a stopped server");
    redis.resume().unwrap();
    assert_eq!(
        redis.command(&["PING"]).await.unwrap(),
        RespValue::Simple("PONG".into())
    );

    // kill -9: down until start_again, then the fsynced append-only file brings the key back.
    let pid = redis.pid().expect("pid");
    redis.kill9().unwrap();
    assert!(!pid_exists(pid));
    assert!(redis.command(&["PING"]).await.is_err());
    redis.start_again().await.unwrap();
    assert_eq!(
        redis.command(&["EXISTS", "order:1"]).await.unwrap(),
        RespValue::Integer(1)
    );
    assert_eq!(
        redis.command(&["GET", "order:1"]).await.unwrap(),
        RespValue::Bulk(Some(b"paid".to_vec()))
    );
    assert!(redis.command(&["GET", "order:2"]).await.unwrap().is_null());
    assert_eq!(
        redis.command(&["EXISTS", "order:2"]).await.unwrap(),
        RespValue::Integer(0)
    );
}

fn pid_exists(pid: u32) -> bool {
    std::path::Path::new(&format!("/proc/{pid}")).exists()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zookeeper_ephemeral_node_vanishes_after_holder_is_killed() {
    harness::init_tracing();
    let zk = ZooKeeper::start().await.expect("start zookeeper");
    let client = zk.client(Duration::from_secs(10)).await.expect("connect");
    let mut holder = std::process::Command::new(env!("CARGO_BIN_EXE_zk-ephemeral-holder"))
        .arg(zk.connect_string())
        .arg("/held")
        .arg("1000")
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("spawn holder");
    let mut line = String::new();
    {
        use std::io::BufRead;
        let out = holder.stdout.take().unwrap();
        std::io::BufReader::new(out).read_line(&mut line).unwrap();
    }
    assert_eq!(line.trim(), "ready");
    let (data, stat) = client.get_data("/held").await.expect("node exists");
    assert_eq!(data, b"held");
    assert_ne!(stat.ephemeral_owner, 0, "node is ephemeral");

    let watcher = client.check_and_watch_stat("/held").await.unwrap();
    assert!(watcher.0.is_some());
    holder.kill().unwrap(); // SIGKILL: the session is not closed, it must expire.
    holder.wait().unwrap();
    // Still there right after the kill: only expiry removes it.
    let still = client.check_stat("/held").await.unwrap();
    assert!(still.is_some(), "node removed before session expiry");
    let event = tokio::time::timeout(Duration::from_secs(30), watcher.1.changed())
        .await
        .expect("node removed within 30 s");
    assert_eq!(event.event_type, zookeeper_client::EventType::NodeDeleted);
    assert!(client.check_stat("/held").await.unwrap().is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zookeeper_ensemble_survives_one_member_kill_and_restart() {
    harness::init_tracing();
    let mut zk = ZooKeeper::start_ensemble().await.expect("start ensemble");
    assert_eq!(zk.members().len(), 3);
    let leader = zk.leader().expect("a leader");
    let client = zk.client(Duration::from_secs(10)).await.expect("connect");
    let persistent =
        zookeeper_client::CreateMode::Persistent.with_acls(zookeeper_client::Acls::anyone_all());
    client.create("/a", b"1", &persistent).await.unwrap();

    zk.member_mut(leader).kill9().unwrap();
    assert!(!zk.member_mut(leader).is_running());
    // The two survivors elect a new leader and keep serving writes.
    let mut wrote = false;
    for _ in 0..200 {
        // (A create whose answer was lost with the connection is found by the next one.)
        match client.create("/b", b"2", &persistent).await {
            Ok(_) | Err(zookeeper_client::Error::NodeExists) => {
                wrote = true;
                break;
            }
            Err(_) => {}
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(wrote, "no write accepted with 2 of 3 members");
    zk.member_mut(leader).restart().await.unwrap();
    let mode = zk.members()[leader].mode();
    assert_eq!(
        mode.as_deref(),
        Some("follower"),
        "restarted member rejoins"
    );

    // A paused member stops answering; resumed, it serves again.
    let i = (leader + 1) % 3;
    zk.member_mut(i).pause().unwrap();
    assert_eq!(zk.members()[i].mode(), None);
    zk.member_mut(i).resume().unwrap();
    let mut back = false;
    for _ in 0..100 {
        if zk.members()[i].mode().is_some() {
            back = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(back);
    // The client may have been connected to the paused member: it reconnects first.
    let mut data = None;
    for _ in 0..200 {
        if let Ok((d, _)) = client.get_data("/b").await {
            data = Some(d);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(data.as_deref(), Some(&b"2"[..]));
}

/// `zk_packets_received` from a member's `mntr`.
fn packets_received(m: &harness::ZkMember) -> u64 {
    let mntr = m.mntr().expect("mntr");
    mntr.get("zk_packets_received")
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no zk_packets_received in {mntr:?}"))
}

async fn client_of(addr: &str) -> zookeeper_client::Client {
    zookeeper_client::Client::connector()
        .with_session_timeout(Duration::from_secs(10))
        .with_connection_timeout(Duration::from_secs(5))
        .connect(addr)
        .await
        .expect("connect")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zookeeper_observer_serves_reads_and_forwards_writes() {
    harness::init_tracing();
    let zk = ZooKeeper::start_with_observers(3, 2)
        .await
        .expect("start 3 voters + 2 observers");
    let members = zk.members();
    assert_eq!(members.len(), 5);
    let ids: Vec<u32> = members.iter().map(|m| m.id()).collect();
    assert_eq!(ids, vec![1, 2, 3, 4, 5]);
    let mut voter_modes: Vec<String> = members[..3]
        .iter()
        .map(|m| m.mode().expect("voter serves"))
        .collect();
    voter_modes.sort();
    assert_eq!(voter_modes, vec!["follower", "follower", "leader"]);
    for m in &members[3..] {
        assert!(m.is_observer());
        assert_eq!(m.mode().as_deref(), Some("observer"));
    }
    assert!(members[..3].iter().all(|m| !m.is_observer()));

    let observer = &members[3];
    let mntr = observer.mntr().expect("mntr on observer");
    assert_eq!(
        mntr.get("zk_server_state").map(String::as_str),
        Some("observer")
    );
    let before = packets_received(observer);

    // A client that knows only the observer: reads are served there, writes go via the leader.
    let client = client_of(&observer.addr()).await;
    let persistent =
        zookeeper_client::CreateMode::Persistent.with_acls(zookeeper_client::Acls::anyone_all());
    client
        .create("/via-observer", b"v1", &persistent)
        .await
        .expect("create through observer");
    let (data, stat) = client.get_data("/via-observer").await.unwrap();
    assert_eq!(data, b"v1");
    client
        .set_data("/via-observer", b"v2", Some(stat.version))
        .await
        .expect("set through observer");
    for _ in 0..5 {
        let (data, _) = client.get_data("/via-observer").await.unwrap();
        assert_eq!(data, b"v2");
    }
    let after = packets_received(observer);
    assert!(
        after >= before + 7,
        "observer received {before} -> {after} packets"
    );

    // The write is in the ensemble, not only on the observer: the leader has it.
    let leader = zk.leader().expect("a leader");
    assert_eq!(
        members[leader]
            .mntr()
            .unwrap()
            .get("zk_server_state")
            .map(String::as_str),
        Some("leader")
    );
    let on_leader = client_of(&members[leader].addr()).await;
    let (data, _) = on_leader.get_data("/via-observer").await.unwrap();
    assert_eq!(data, b"v2");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zookeeper_remote_observer_reaches_voters_only_through_site_links() {
    harness::init_tracing();
    let mut zk = ZooKeeper::start_with_remote_observers(3, 1)
        .await
        .expect("start 3 voters + 1 remote observer");
    // One proxy per voter quorum port and per voter election port.
    assert_eq!(zk.site_links().len(), 6);
    assert_eq!(zk.members()[3].mode().as_deref(), Some("observer"));
    // The observer followed the leader through the leader's quorum-port link and took part in the
    // election through every voter's election-port link.
    let accepted: Vec<usize> = zk
        .site_links()
        .iter()
        .map(|l| l.accepted_connections())
        .collect();
    let leader = zk.leader().expect("a leader");
    assert!(accepted[2 * leader] > 0, "quorum links {accepted:?}");
    assert!(
        accepted.iter().skip(1).step_by(2).all(|n| *n > 0),
        "election links {accepted:?}"
    );

    // 50 ms each way between the sites: a write through the observer crosses the link twice
    // (request to the leader, commit back); a read stays at the observer's site.
    zk.set_site_wan(Wan::symmetric(Duration::from_millis(50)));
    let client = client_of(&zk.members()[3].addr()).await;
    let persistent =
        zookeeper_client::CreateMode::Persistent.with_acls(zookeeper_client::Acls::anyone_all());
    let start = std::time::Instant::now();
    client
        .create("/remote", b"1", &persistent)
        .await
        .expect("create through remote observer");
    let write = start.elapsed();
    assert!(
        write >= Duration::from_millis(100),
        "write over the WAN took {write:?}"
    );
    assert!(write < Duration::from_secs(10), "write took {write:?}");
    let (data, _) = client.get_data("/remote").await.unwrap();
    assert_eq!(data, b"1");

    // Link stalled: the observer loses the leader and stops serving; the voters go on.
    for link in zk.site_links() {
        link.stall();
    }
    let mut lost = false;
    for _ in 0..300 {
        if zk.members()[3].mode().is_none() {
            lost = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(lost, "observer kept serving with its site cut off");
    let leader = zk.leader().expect("voters keep a leader");
    let on_leader = client_of(&zk.members()[leader].addr()).await;
    on_leader
        .create("/written-while-cut-off", b"2", &persistent)
        .await
        .expect("voters accept writes");

    // Link back: the observer rejoins and catches up.
    for link in zk.site_links() {
        link.pass();
    }
    let mut back = false;
    for _ in 0..600 {
        if zk.members()[3].mode().as_deref() == Some("observer") {
            back = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(back, "observer did not rejoin after the link came back");
    let again = client_of(&zk.members()[3].addr()).await;
    let (data, _) = again.get_data("/written-while-cut-off").await.unwrap();
    assert_eq!(data, b"2");

    // A restarted observer finds the voters through the links again.
    zk.member_mut(3).restart().await.expect("restart observer");
    assert_eq!(zk.members()[3].mode().as_deref(), Some("observer"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_proxy_stall_times_out_reads_and_cut_resets() {
    harness::init_tracing();
    let db = MariaDb::start().await.expect("start mariadb");
    let proxy = FaultProxy::start(db.addr()).expect("proxy");
    let opts = mysql_async::OptsBuilder::default()
        .ip_or_hostname("127.0.0.1")
        .tcp_port(proxy.port())
        .user(Some("root"))
        .prefer_socket(false);
    let mut conn = mysql_async::Conn::new(opts.clone())
        .await
        .expect("connect via proxy");
    let one: Vec<u32> = conn.query("SELECT 1").await.unwrap();
    assert_eq!(one, vec![1]);
    assert_eq!(proxy.open_connections(), 1);

    proxy.stall();
    let r = tokio::time::timeout(Duration::from_millis(700), conn.query_drop("SELECT 2")).await;
    assert!(r.is_err(), "read through a stalled proxy must time out");
    // The connection was held open, not closed.
    assert_eq!(proxy.open_connections(), 1);
    drop(conn); // its state is unknown after the abandoned query

    proxy.pass();
    let mut conn = mysql_async::Conn::new(opts.clone())
        .await
        .expect("connect after stall");
    let two: Vec<u32> = conn.query("SELECT 2").await.unwrap();
    assert_eq!(two, vec![2]);

    proxy.cut();
    let err = conn
        .query_drop("SELECT 3")
        .await
        .expect_err("cut connection fails");
    assert!(
        err.to_string().to_lowercase().contains("reset")
            || err.to_string().to_lowercase().contains("closed")
            || err.to_string().to_lowercase().contains("broken"),
        "unexpected error after cut: {err}"
    );
    // New connections work again after a cut.
    let mut conn = mysql_async::Conn::new(opts.clone()).await.unwrap();
    let three: Vec<u32> = conn.query("SELECT 3").await.unwrap();
    assert_eq!(three, vec![3]);
    drop(conn);

    proxy.refuse();
    assert!(mysql_async::Conn::new(opts).await.is_err());
}
