//! The `otter-manager` command and library against a real ZooKeeper.

use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::{Duration, Instant};

use harness::{free_port, init_tracing, TestDir, ZooKeeper};
use otter_manager::{ApplyOutcome, ManagerError};
use otter_node::model::{Channel, ChannelStatus};
use zookeeper_client::{Acls, CreateMode};

fn example_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/channel.toml")
}

fn example_text() -> String {
    std::fs::read_to_string(example_path()).unwrap()
}

/// Runs the built command with `--zk servers` and `args`.
async fn manager(zk: &str, args: &[&str]) -> Output {
    manager_in(zk, args, None).await
}

async fn manager_in(zk: &str, args: &[&str], dir: Option<&Path>) -> Output {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_otter-manager"));
    // The command's own log defaults, whatever the test runs with.
    cmd.arg("--zk")
        .arg(zk)
        .args(args)
        .env_remove("OTTER_ZK")
        .env_remove("RUST_LOG");
    if let Some(d) = dir {
        cmd.current_dir(d);
    }
    let out = cmd.output().await.unwrap();
    tracing::info!(
        ?args,
        code = ?out.status.code(),
        stdout = %String::from_utf8_lossy(&out.stdout),
        stderr = %String::from_utf8_lossy(&out.stderr),
        "otter-manager"
    );
    out
}

/// Stdout of a run that must succeed.
fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "otter-manager failed ({:?}): {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout.clone()).unwrap()
}

/// Stderr of a run that must fail with exit code 2.
fn failed(out: &Output) -> String {
    assert_eq!(
        out.status.code(),
        Some(2),
        "stdout: {}\nstderr: {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stderr.clone()).unwrap()
}

async fn stored_json(client: &zookeeper_client::Client, cid: u32) -> serde_json::Value {
    let (data, _) = client
        .get_data(&zk_coord::otter_paths::channel(cid))
        .await
        .unwrap();
    serde_json::from_slice(&data).unwrap()
}

async fn stored_status(client: &zookeeper_client::Client, cid: u32) -> ChannelStatus {
    let (data, _) = client
        .get_data(&zk_coord::otter_paths::channel(cid))
        .await
        .unwrap();
    Channel::from_json(&data).unwrap().status
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_applies_controls_and_shows_channels() {
    init_tracing();
    let zk = ZooKeeper::start().await.unwrap();
    let servers = zk.connect_string();
    let client = zk.client(Duration::from_secs(10)).await.unwrap();
    let file = example_path();
    let file = file.to_str().unwrap();
    let expected = Channel::from_toml(&example_text()).unwrap();

    // Nothing stored yet.
    assert_eq!(ok(&manager(&servers, &["list"]).await), "");
    assert_eq!(ok(&manager(&servers, &["nodes"]).await), "");

    // apply creates the channel, stopped, with exactly the JSON of the model.
    let out = ok(&manager(&servers, &["apply", "-f", file]).await);
    assert_eq!(out, "channel 1 created (status stopped)\n");
    let want: serde_json::Value = serde_json::from_slice(&expected.to_json()).unwrap();
    assert_eq!(stored_json(&client, 1).await, want);

    // Applying the same file again writes nothing.
    let (_, before) = client.get_data("/otter/channel/1").await.unwrap();
    let out = ok(&manager(&servers, &["apply", "-f", file]).await);
    assert_eq!(out, "channel 1 unchanged (status stopped)\n");
    let (_, after) = client.get_data("/otter/channel/1").await.unwrap();
    assert_eq!(before.version, after.version);

    // start, through OTTER_ZK instead of --zk.
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_otter-manager"))
        .args(["start", "1"])
        .env("OTTER_ZK", &servers)
        .env_remove("RUST_LOG")
        .output()
        .await
        .unwrap();
    assert_eq!(ok(&out), "channel 1: started\n");
    assert_eq!(stored_status(&client, 1).await, ChannelStatus::Started);

    // Re-applying (same or changed) keeps a running channel running.
    let out = ok(&manager(&servers, &["apply", "-f", file]).await);
    assert_eq!(out, "channel 1 unchanged (status started)\n");
    assert_eq!(stored_status(&client, 1).await, ChannelStatus::Started);
    let dir = TestDir::new("otter-manager-apply").unwrap();
    let changed = dir.path().join("channel.toml");
    std::fs::write(
        &changed,
        example_text().replace("parallelism = 5", "parallelism = 7"),
    )
    .unwrap();
    let out = ok(&manager(&servers, &["apply", "-f", changed.to_str().unwrap()]).await);
    assert_eq!(out, "channel 1 updated (status started)\n");
    let stored = otter_manager::get(&client, 1).await.unwrap();
    assert_eq!(stored.status, ChannelStatus::Started);
    assert_eq!(stored.pipeline.parallelism, 7);

    // pause and stop.
    assert_eq!(
        ok(&manager(&servers, &["pause", "1"]).await),
        "channel 1: paused\n"
    );
    assert_eq!(stored_status(&client, 1).await, ChannelStatus::Paused);
    assert_eq!(
        ok(&manager(&servers, &["stop", "1"]).await),
        "channel 1: stopped\n"
    );
    assert_eq!(stored_status(&client, 1).await, ChannelStatus::Stopped);
    // Setting the status a channel already has is fine.
    assert_eq!(
        ok(&manager(&servers, &["stop", "1"]).await),
        "channel 1: stopped\n"
    );

    // show prints the stored channel as pretty JSON.
    let shown_run = manager(&servers, &["show", "1"]).await;
    let out = ok(&shown_run);
    assert!(out.lines().count() > 10, "not pretty: {out}");
    assert!(
        String::from_utf8_lossy(&shown_run.stderr).contains("pipeline 1: no delay measured yet"),
        "{}",
        String::from_utf8_lossy(&shown_run.stderr)
    );
    let shown = serde_json::from_str::<Channel>(&out).unwrap();
    assert_eq!(shown, otter_manager::get(&client, 1).await.unwrap());

    // A second channel; list shows both, one line each, by id.
    let second = dir.path().join("second.toml");
    std::fs::write(
        &second,
        example_text()
            .replace(
                "id = 1                      # the {cid}",
                "id = 12 # the {cid}",
            )
            .replace("name = \"shop-to-dr\"", "name = \"reverse\"")
            .replace(
                "id = 1                      # the {pid}",
                "id = 2 # the {pid}",
            )
            // Another replica of the same source: its own server id.
            .replace("slave_id = 3301", "slave_id = 3302"),
    )
    .unwrap();
    let out = ok(&manager(&servers, &["apply", "-f", second.to_str().unwrap()]).await);
    assert_eq!(out, "channel 12 created (status stopped)\n");
    ok(&manager(&servers, &["start", "12"]).await);
    let out = ok(&manager(&servers, &["list"]).await);
    let lines: Vec<Vec<&str>> = out
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(
        lines,
        vec![
            vec![
                "1",
                "shop-to-dr",
                "stopped",
                "pipeline",
                "1",
                "127.0.0.1:3306",
                "→",
                "127.0.0.1:3307"
            ],
            vec![
                "12",
                "reverse",
                "started",
                "pipeline",
                "2",
                "127.0.0.1:3306",
                "→",
                "127.0.0.1:3307"
            ],
        ],
        "{out}"
    );

    // Unknown channels: a clear error and exit code 2, nothing created.
    for cmd in ["start", "stop", "pause", "show"] {
        let err = failed(&manager(&servers, &[cmd, "7"]).await);
        assert!(err.contains("channel 7 does not exist"), "{cmd}: {err}");
    }
    assert!(matches!(
        client.get_data("/otter/channel/7").await,
        Err(zookeeper_client::Error::NoNode)
    ));

    // nodes lists the ephemeral node registrations.
    let eph = CreateMode::Ephemeral.with_acls(Acls::anyone_all());
    zk_coord::ensure_path(&client, "/otter/node").await.unwrap();
    client
        .create("/otter/node/2", b"10.0.0.2:2088", &eph)
        .await
        .unwrap();
    client
        .create("/otter/node/1", b"10.0.0.1:2088", &eph)
        .await
        .unwrap();
    let out = ok(&manager(&servers, &["nodes"]).await);
    let lines: Vec<Vec<&str>> = out
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(
        lines,
        vec![vec!["1", "10.0.0.1:2088"], vec!["2", "10.0.0.2:2088"]]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_file_exits_2_naming_the_key_before_connecting() {
    init_tracing();
    let dir = TestDir::new("otter-manager-invalid").unwrap();
    std::fs::create_dir_all(dir.path().join("config")).unwrap();
    std::fs::write(
        dir.path().join("config/x.toml"),
        example_text().replace("parallelism = 5", "parallelism = 0"),
    )
    .unwrap();
    // Nothing listens at --zk: the file is rejected before ZooKeeper is needed.
    let nowhere = format!("127.0.0.1:{}", free_port());
    let out = manager_in(
        &nowhere,
        &["apply", "-f", "config/x.toml"],
        Some(dir.path()),
    )
    .await;
    let err = failed(&out);
    assert_eq!(
        err.trim(),
        "error: config/x.toml: pipeline.parallelism: must be between 1 and 256"
    );
    assert!(out.stdout.is_empty());

    // Unknown keys and missing files are named too.
    std::fs::write(
        dir.path().join("config/y.toml"),
        example_text().replace("batch_size = 1000", "batch_size = 1000\nbogus = 1"),
    )
    .unwrap();
    let err = failed(
        &manager_in(
            &nowhere,
            &["apply", "-f", "config/y.toml"],
            Some(dir.path()),
        )
        .await,
    );
    assert!(
        err.contains("config/y.toml") && err.contains("bogus"),
        "{err}"
    );
    let err = failed(
        &manager_in(
            &nowhere,
            &["apply", "-f", "config/z.toml"],
            Some(dir.path()),
        )
        .await,
    );
    assert!(err.contains("config/z.toml"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_zookeeper_fails_within_the_connect_timeout() {
    init_tracing();
    let nowhere = format!("127.0.0.1:{}", free_port());
    let file = example_path();
    // The default connect timeout (5 s).
    let started = Instant::now();
    let err = failed(&manager(&nowhere, &["list"]).await);
    assert_eq!(
        err.trim(),
        format!("error: cannot connect to ZooKeeper {nowhere}: no session within 5000 ms")
    );
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "{:?}",
        started.elapsed()
    );
    // Every command that needs ZooKeeper, with a shorter one.
    for args in [
        vec!["apply", "-f", file.to_str().unwrap()],
        vec!["start", "1"],
        vec!["show", "1"],
        vec!["nodes"],
    ] {
        let started = Instant::now();
        let mut all = vec!["--zk-connect-timeout-ms", "1000"];
        all.extend(args.iter().copied());
        let err = failed(&manager(&nowhere, &all).await);
        assert!(
            err.contains("cannot connect to ZooKeeper") && err.contains(&nowhere),
            "{err}"
        );
        let elapsed = started.elapsed();
        assert!(
            elapsed < Duration::from_secs(4),
            "{args:?} took {elapsed:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn library_keeps_status_and_survives_concurrent_writers() {
    init_tracing();
    let zk = ZooKeeper::start().await.unwrap();
    let client = zk.client(Duration::from_secs(10)).await.unwrap();
    let channel = Channel::from_toml(&example_text()).unwrap();

    assert!(otter_manager::list(&client).await.unwrap().is_empty());
    assert!(otter_manager::nodes(&client).await.unwrap().is_empty());
    assert!(matches!(
        otter_manager::get(&client, 1).await,
        Err(ManagerError::NoSuchChannel(1))
    ));
    let e = otter_manager::set_status(&client, 7, ChannelStatus::Started)
        .await
        .unwrap_err();
    assert_eq!(e.to_string(), "channel 7 does not exist");

    // An invalid definition is refused before anything is written.
    let mut bad = channel.clone();
    bad.pipeline.parallelism = 0;
    let e = otter_manager::apply(&client, &bad).await.unwrap_err();
    assert!(e.to_string().contains("pipeline.parallelism"), "{e}");
    assert!(otter_manager::list(&client).await.unwrap().is_empty());

    assert_eq!(
        otter_manager::apply(&client, &channel).await.unwrap(),
        ApplyOutcome::Created {
            status: ChannelStatus::Stopped
        }
    );
    otter_manager::set_status(&client, 1, ChannelStatus::Started)
        .await
        .unwrap();

    // Many managers at once: status changes and re-applies of changed definitions race on the
    // znode version; none is lost and the status is never reset by an apply.
    let mut tasks = Vec::new();
    for i in 0..8u32 {
        let client = zk.client(Duration::from_secs(10)).await.unwrap();
        let mut c = channel.clone();
        c.pipeline.batch_size = 100 + i;
        tasks.push(tokio::spawn(async move {
            for _ in 0..5 {
                let out = otter_manager::apply(&client, &c).await.unwrap();
                assert_eq!(out.status(), ChannelStatus::Started, "{out:?}");
                otter_manager::set_status(&client, 1, ChannelStatus::Started)
                    .await
                    .unwrap();
            }
            c.pipeline.batch_size
        }));
    }
    let mut sizes = Vec::new();
    for t in tasks {
        sizes.push(t.await.unwrap());
    }
    let stored = otter_manager::get(&client, 1).await.unwrap();
    assert_eq!(stored.status, ChannelStatus::Started);
    assert!(sizes.contains(&stored.pipeline.batch_size));

    // The last definition applied wins; re-applying it is Unchanged.
    let mut last = channel.clone();
    last.pipeline.batch_size = 777;
    assert_eq!(
        otter_manager::apply(&client, &last).await.unwrap(),
        ApplyOutcome::Updated {
            status: ChannelStatus::Started
        }
    );
    assert_eq!(
        otter_manager::apply(&client, &last).await.unwrap(),
        ApplyOutcome::Unchanged {
            status: ChannelStatus::Started
        }
    );
    let listed = otter_manager::list(&client).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].pipeline.batch_size, 777);
    assert_eq!(listed[0].status, ChannelStatus::Started);

    // A second channel may not take the first one's pipeline id, nor its slave id on the same
    // source; nothing is written when it is refused.
    let mut second = channel.clone();
    second.id = 2;
    let e = otter_manager::apply(&client, &second).await.unwrap_err();
    assert!(e.to_string().contains("pipeline.id"), "{e}");
    second.pipeline.id = 2;
    let e = otter_manager::apply(&client, &second).await.unwrap_err();
    assert!(e.to_string().contains("pipeline.source.slave_id"), "{e}");
    assert_eq!(otter_manager::list(&client).await.unwrap().len(), 1);
    second.pipeline.source.slave_id += 1;
    assert_eq!(
        otter_manager::apply(&client, &second).await.unwrap(),
        ApplyOutcome::Created {
            status: ChannelStatus::Stopped
        }
    );
    client.delete("/otter/channel/2", None).await.unwrap();

    // Children that are not channel ids are skipped; unreadable channel data is reported.
    zk_coord::ensure_path(&client, "/otter/channel/locks")
        .await
        .unwrap();
    assert_eq!(otter_manager::list(&client).await.unwrap().len(), 1);
    zk_coord::put_persistent(&client, "/otter/channel/9", b"not json")
        .await
        .unwrap();
    let e = otter_manager::get(&client, 9).await.unwrap_err();
    assert!(e.to_string().contains("/otter/channel/9"), "{e}");
    let e = otter_manager::set_status(&client, 9, ChannelStatus::Started)
        .await
        .unwrap_err();
    assert!(matches!(e, ManagerError::BadData { .. }), "{e}");
    // An unreadable channel does not block applying the others.
    assert_eq!(
        otter_manager::apply(&client, &last).await.unwrap(),
        ApplyOutcome::Unchanged {
            status: ChannelStatus::Started
        }
    );

    // A node whose session ends disappears from the list.
    let node_client = zk.client(Duration::from_secs(10)).await.unwrap();
    zk_coord::ensure_path(&client, "/otter/node").await.unwrap();
    node_client
        .create(
            &zk_coord::otter_paths::node(5),
            b"127.0.0.1:2088",
            &CreateMode::Ephemeral.with_acls(Acls::anyone_all()),
        )
        .await
        .unwrap();
    assert_eq!(
        otter_manager::nodes(&client).await.unwrap(),
        vec![(5, "127.0.0.1:2088".to_string())]
    );
    drop(node_client);
    let deadline = Instant::now() + Duration::from_secs(20);
    while !otter_manager::nodes(&client).await.unwrap().is_empty() {
        assert!(Instant::now() < deadline, "node 5 never went away");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// With `--zk-digest`: the stored channel names where the nodes find passwords and holds none, a
/// file holding a password is refused naming the key, a stranger can neither read nor change the
/// channel, and `secure` closes a tree written before digest was turned on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn digest_keeps_channels_private_and_passwords_out_of_zookeeper() {
    init_tracing();
    let zk = ZooKeeper::start().await.unwrap();
    let servers = zk.connect_string();
    let dir = TestDir::new("manager-digest").unwrap();
    let digest = dir.path().join("zk-digest");
    std::fs::write(&digest, "otter:pw-for-zk\n").unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&digest, std::fs::Permissions::from_mode(0o600)).unwrap();
    let digest_arg = format!("file:{}", digest.display());

    // A literal password is refused, naming the key; nothing is stored.
    let literal = dir.path().join("literal.toml");
    std::fs::write(
        &literal,
        example_text().replace(
            "password = \"env:OTTER_SOURCE_PASSWORD\"",
            "password = \"hunter2\"",
        ),
    )
    .unwrap();
    let lit = literal.to_str().unwrap();
    let err = failed(&manager(&servers, &["--zk-digest", &digest_arg, "apply", "-f", lit]).await);
    assert!(err.contains("pipeline.source.password"), "{err}");
    assert!(err.contains("env:NAME"), "{err}");

    // The example names an environment variable: stored as such.
    let example = example_path();
    let ex = example.to_str().unwrap();
    ok(&manager(&servers, &["--zk-digest", &digest_arg, "apply", "-f", ex]).await);
    let owner = zk_coord::ZkConfig {
        servers: servers.clone(),
        digest: digest_arg.clone(),
        ..Default::default()
    }
    .connect()
    .await
    .unwrap();
    let (data, _) = owner.get_data("/otter/channel/1").await.unwrap();
    let text = String::from_utf8(data).unwrap();
    assert!(
        text.contains("\"password\":\"env:OTTER_SOURCE_PASSWORD\""),
        "{text}"
    );
    assert!(!text.contains("hunter2"));

    // A stranger reads nothing and changes nothing.
    let stranger = zookeeper_client::Client::connect(&servers).await.unwrap();
    for path in ["/otter", "/otter/channel", "/otter/channel/1"] {
        assert_eq!(
            stranger.get_data(path).await.unwrap_err(),
            zookeeper_client::Error::NoAuth,
            "{path}"
        );
        assert_eq!(
            stranger.set_data(path, b"{}", None).await.unwrap_err(),
            zookeeper_client::Error::NoAuth,
            "{path}"
        );
    }
    let no_digest = failed(&manager(&servers, &["show", "1"]).await);
    assert!(
        no_digest.contains("NoAuth")
            || no_digest.contains("no auth")
            || no_digest.contains("not authorized"),
        "{no_digest}"
    );

    // A tree written without digest is open until `secure` closes it.
    let open = stranger
        .create(
            "/otter/node-legacy",
            b"",
            &CreateMode::Persistent.with_acls(Acls::anyone_all()),
        )
        .await;
    assert_eq!(
        open.unwrap_err(),
        zookeeper_client::Error::NoAuth,
        "/otter is closed"
    );
    let legacy = ZooKeeper::start().await.unwrap();
    let lservers = legacy.connect_string();
    ok(&manager(&lservers, &["apply", "-f", ex]).await);
    let lstranger = zookeeper_client::Client::connect(&lservers).await.unwrap();
    assert!(lstranger.get_data("/otter/channel/1").await.is_ok());
    let out = ok(&manager(&lservers, &["--zk-digest", &digest_arg, "secure"]).await);
    assert!(out.contains("znodes under /otter secured"), "{out}");
    assert_eq!(
        lstranger.get_data("/otter/channel/1").await.unwrap_err(),
        zookeeper_client::Error::NoAuth
    );
    ok(&manager(&lservers, &["--zk-digest", &digest_arg, "show", "1"]).await);
}

/// `prepare-site` creates retl and its tables with an account allowed to, and names the missing
/// privilege for one that is not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prepare_site_creates_retl_or_names_the_missing_privilege() {
    init_tracing();
    let db = harness::MariaDb::start().await.unwrap();
    db.exec("CREATE USER 'weak'@'%' IDENTIFIED BY 'w'; CREATE USER 'weak'@'localhost' IDENTIFIED BY 'w'")
        .await
        .unwrap();
    let addr = db.addr().to_string();
    let weak = failed(
        &manager(
            "127.0.0.1:1",
            &[
                "prepare-site",
                "--address",
                &addr,
                "--username",
                "weak",
                "--password",
                "w",
            ],
        )
        .await,
    );
    assert!(weak.contains("needs CREATE on `retl`"), "{weak}");
    let out = ok(&manager("127.0.0.1:1", &["prepare-site", "--address", &addr]).await);
    assert!(out.contains("retl ready"), "{out}");
    let tables: Vec<String> = db
        .query("SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = 'retl' ORDER BY 1")
        .await
        .unwrap();
    assert_eq!(
        tables,
        [
            "retl_conflict",
            "retl_fence",
            "retl_mark",
            "snapshot_signal",
            "xdual"
        ]
    );
    // Idempotent.
    ok(&manager("127.0.0.1:1", &["prepare-site", "--address", &addr]).await);
}
