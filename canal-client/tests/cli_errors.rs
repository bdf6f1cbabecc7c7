//! The `canal-client` command against a real canal-server: what the server refuses for good ends
//! the command with the server's text (exit 2, no retry loop); a server that is down is waited for
//! as before. Issue #17.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use harness::{canal_server_bin, CanalServer, ManagedProcess, MariaDb, TestDir, ZooKeeper};

async fn source() -> MariaDb {
    let db = MariaDb::start().await.unwrap();
    db.exec("CREATE DATABASE shop; CREATE TABLE shop.user (id INT PRIMARY KEY, name VARCHAR(20))")
        .await
        .unwrap();
    db
}

fn canal_client() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_canal-client"));
    cmd.env("RUST_LOG", "warn,canal_client=info");
    cmd
}

/// Runs `canal-client <args>` to its end (killed after 60 s: it must end on its own), with its
/// stderr in `dir/name.log`.
fn run_to_exit(dir: &TestDir, name: &str, args: &[&str]) -> (ExitStatus, String) {
    let log = dir.path().join(format!("{name}.log"));
    let mut cmd = canal_client();
    cmd.args(args);
    let mut p = ManagedProcess::start(name, cmd, &log).unwrap();
    let status = wait_exit(&mut p, &log);
    (status, std::fs::read_to_string(&log).unwrap_or_default())
}

fn wait_exit(p: &mut ManagedProcess, log: &Path) -> ExitStatus {
    let started = Instant::now();
    loop {
        if let Some(status) = p.try_exit_status() {
            return status;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "canal-client did not end: {}",
            std::fs::read_to_string(log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The last line canal-client wrote about why it stopped.
fn final_message(log: &str) -> &str {
    log.lines()
        .rev()
        .find(|l| l.starts_with("canal-client: "))
        .unwrap_or_else(|| panic!("no final message in {log}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn permanent_server_errors_end_the_command_with_the_servers_text() {
    harness::init_tracing();
    let db = source().await;
    let server = CanalServer::start(&canal_server_bin(), &db, "", "").await;
    server.wait_streaming().await;
    let addr = server.addr();
    let dir = TestDir::new("cli-errors").unwrap();

    // A filter the server rejects (answered with an error ACK to SUBSCRIPTION).
    let bad_filter = [
        "tail",
        "--server",
        &addr,
        "--filter",
        r"shop\.(",
        "--progress",
        "never",
    ];
    let (status, log) = run_to_exit(&dir, "bad-filter", &bad_filter);
    assert_eq!(status.code(), Some(2), "{log}");
    let msg = final_message(&log);
    assert!(
        msg.contains("subscribe") && msg.contains("invalid table filter"),
        "names the server's text: {msg}"
    );
    assert!(!log.contains("retrying"), "no retry loop: {log}");
    assert_eq!(
        log.matches("invalid table filter").count(),
        1,
        "said once: {log}"
    );

    // The same with a stderr nobody reads: still exit 2, no panic (101).
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let mut child = canal_client()
        .args(bad_filter)
        .stdout(Stdio::null())
        .stderr(writer)
        .spawn()
        .unwrap();
    let started = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if started.elapsed() > Duration::from_secs(60) {
            let _ = child.kill();
            panic!("canal-client did not end with a closed stderr");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(status.code(), Some(2));

    // A destination the server does not have: a few answers (Canal gives the same one for a
    // destination it is still starting), each logged, then the end.
    let (status, log) = run_to_exit(
        &dir,
        "unknown-direct",
        &[
            "tail",
            "--server",
            &addr,
            "--destination",
            "nope",
            "--progress",
            "never",
        ],
    );
    assert_eq!(status.code(), Some(2), "{log}");
    let msg = final_message(&log);
    assert!(
        msg.contains(r#""nope""#) && msg.contains("should start first") && msg.contains(&addr),
        "{msg}"
    );
    assert_eq!(
        log.matches("the server says it does not have the destination")
            .count(),
        canal_client::UNKNOWN_DESTINATION_ANSWERS as usize,
        "{log}"
    );

    // Through ZooKeeper: the server the running node names says the same.
    let zk = ZooKeeper::start().await.unwrap();
    let client = zk.client(Duration::from_secs(5)).await.unwrap();
    zk_coord::ensure_path(&client, "/otter/canal/destinations/nope")
        .await
        .unwrap();
    client
        .create(
            "/otter/canal/destinations/nope/running",
            format!(r#"{{"active":true,"address":"{addr}"}}"#).as_bytes(),
            &zookeeper_client::CreateMode::Persistent
                .with_acls(zookeeper_client::Acls::anyone_all()),
        )
        .await
        .unwrap();
    let zk_servers = zk.connect_string();
    let (status, log) = run_to_exit(
        &dir,
        "unknown-zk",
        &[
            "tail",
            "--zk",
            &zk_servers,
            "--destination",
            "nope",
            "--progress",
            "never",
        ],
    );
    assert_eq!(status.code(), Some(2), "{log}");
    let msg = final_message(&log);
    assert!(
        msg.contains(r#""nope""#) && msg.contains("should start first"),
        "{msg}"
    );
    assert_eq!(
        msg.matches("should start first").count(),
        1,
        "said once: {msg}"
    );

    // The right destination still works.
    db.exec("INSERT INTO shop.user VALUES (1, 'ann')")
        .await
        .unwrap();
    let log = dir.path().join("ok.log");
    let mut cmd = canal_client();
    cmd.args(["tail", "--server", &addr, "--progress", "never"]);
    let mut ok = ManagedProcess::start("ok", cmd, &log).unwrap();
    wait_for(&log, r#""id":"1""#).await;
    ok.terminate(Duration::from_secs(20)).unwrap();
}

/// Waits until `log` contains `what` (60 s at most).
async fn wait_for(log: &PathBuf, what: &str) {
    let started = Instant::now();
    loop {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        if text.contains(what) {
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "no {what:?} in {text}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Unchanged: a server that is down (connection refused) is retried until it is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_is_down_is_waited_for() {
    harness::init_tracing();
    let db = source().await;
    let mut server = CanalServer::start(&canal_server_bin(), &db, "", "").await;
    server.wait_streaming().await;
    let addr = server.addr();
    server.stop();
    let dir = TestDir::new("cli-down").unwrap();
    let log = dir.path().join("tail.log");
    let mut cmd = canal_client();
    cmd.args(["tail", "--server", &addr, "--progress", "never"]);
    let mut tail = ManagedProcess::start("tail", cmd, &log).unwrap();
    // Several failed attempts, and still running.
    let started = Instant::now();
    while std::fs::read_to_string(&log)
        .unwrap_or_default()
        .matches("cannot consume yet; retrying")
        .count()
        < 3
    {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "{}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        tail.is_running(),
        "{}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
    server.launch().await;
    server.wait_streaming().await;
    db.exec("INSERT INTO shop.user VALUES (7, 'back')")
        .await
        .unwrap();
    wait_for(&log, r#""id":"7""#).await;
    tail.terminate(Duration::from_secs(20)).unwrap();
}
