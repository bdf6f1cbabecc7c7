//! The console in a real headless Chromium (Debian's `chromium` and `chromium-driver`, installed by
//! scripts/setup.sh), driven through WebDriver against a real manager and ZooKeeper: log in, see
//! the channel, create one through the form (a field error first), start and stop it through the
//! confirmation page, a forged POST without the CSRF token is refused, a viewer has no buttons and
//! is refused when it posts anyway.
//!
//! With `CONSOLE_SCREENSHOTS=1` the pages are saved as docs/console-*.png (shown in the README).

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use fantoccini::{Client, ClientBuilder, Locator};
use harness::{free_port, init_tracing, TestDir, ZooKeeper};
use otter_manager::console::hash_password;
use otter_node::model::{Channel, ChannelStatus};
use tokio::process::{Child, Command};

fn example() -> Channel {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/channel.toml");
    Channel::from_toml(&std::fs::read_to_string(path).unwrap()).unwrap()
}

async fn wait_for_port(port: u16, child: &mut Child, what: &str) {
    for _ in 0..300 {
        if let Some(status) = child.try_wait().unwrap() {
            panic!("{what} exited with {status}");
        }
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{what} never listened on port {port}");
}

/// chromedriver as a local process, and a WebDriver session on a fresh profile.
async fn browser(profile: &Path) -> (Child, Client) {
    let port = free_port();
    let mut driver = Command::new("chromedriver")
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("chromedriver (Debian's chromium-driver, installed by scripts/setup.sh)");
    wait_for_port(port, &mut driver, "chromedriver").await;
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        serde_json::json!({
            "binary": "/usr/bin/chromium",
            "args": [
                "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--window-size=1200,900",
                format!("--user-data-dir={}", profile.display()),
            ],
        }),
    );
    let connector = hyper_util::client::legacy::connect::HttpConnector::new();
    let client = ClientBuilder::new(connector)
        .capabilities(caps)
        .connect(&format!("http://127.0.0.1:{port}"))
        .await
        .expect("a WebDriver session");
    (driver, client)
}

fn screenshot_dir() -> Option<PathBuf> {
    std::env::var_os("CONSOLE_SCREENSHOTS")
        .map(|_| Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs"))
}

async fn screenshot(c: &Client, name: &str) {
    if let Some(dir) = screenshot_dir() {
        let png = c.screenshot().await.unwrap();
        std::fs::write(dir.join(format!("console-{name}.png")), png).unwrap();
    }
}

async fn login(c: &Client, base: &str, user: &str, password: &str) {
    c.goto(&format!("{base}/login")).await.unwrap();
    c.find(Locator::Id("user"))
        .await
        .unwrap()
        .send_keys(user)
        .await
        .unwrap();
    c.find(Locator::Id("password"))
        .await
        .unwrap()
        .send_keys(password)
        .await
        .unwrap();
    click(c, "login").await;
    let who = c.wait().for_element(Locator::Id("who")).await.unwrap();
    assert!(who.text().await.unwrap().starts_with(user));
}

async fn body(c: &Client) -> String {
    c.find(Locator::Css("body"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

async fn stored(zk: &zookeeper_client::Client, cid: u32) -> ChannelStatus {
    otter_manager::get(zk, cid).await.unwrap().status
}

/// Submits a form built in the page (what a forged or hand-made request does).
async fn forge_post(c: &Client, action: &str, fields: &[(&str, &str)]) {
    let fields: serde_json::Map<String, serde_json::Value> = fields
        .iter()
        .map(|(k, v)| (k.to_string(), serde_json::Value::from(*v)))
        .collect();
    c.execute(
        "const f = document.createElement('form'); f.method = 'post'; f.action = arguments[0];
         for (const [k, v] of Object.entries(arguments[1])) {
           const i = document.createElement('input'); i.type = 'hidden'; i.name = k; i.value = v; f.appendChild(i);
         }
         document.body.appendChild(f); f.submit();",
        vec![action.into(), serde_json::Value::Object(fields)],
    )
    .await
    .unwrap();
    // Wait for the answer's document: the form posts to `action`, so the URL becomes it.
    for _ in 0..200 {
        if c.current_url().await.unwrap().path() == action {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the forged form never reached {action}");
}

/// Clicks the element with id `id`.
async fn click(c: &Client, id: &str) {
    c.find(Locator::Id(id))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
}

/// Waits for the element with id `id` to appear, then clicks it.
async fn click_shown(c: &Client, id: &str) {
    c.wait()
        .for_element(Locator::Id(id))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_logs_in_starts_and_stops_a_channel_and_refuses_forged_and_viewer_posts() {
    init_tracing();
    let zk = ZooKeeper::start().await.unwrap();
    let client = zk.client(Duration::from_secs(10)).await.unwrap();
    let channel = example();
    otter_manager::apply(&client, &channel).await.unwrap();
    let cid = channel.id;

    let dir = TestDir::new("otter-console-browser").unwrap();
    let config = dir.path().join("manager.toml");
    std::fs::write(
        &config,
        format!(
            "[console]\nsample_secs = 1\n\n[[console.users]]\nname = \"olga\"\npassword_hash = \"{}\"\nrole = \"operator\"\n\n[[console.users]]\nname = \"victor\"\npassword_hash = \"{}\"\nrole = \"viewer\"\n",
            hash_password("olga-pass").unwrap(),
            hash_password("victor-pass").unwrap()
        ),
    )
    .unwrap();
    let port = free_port();
    let mut server = Command::new(env!("CARGO_BIN_EXE_otter-manager"))
        .args(["--zk", &zk.connect_string(), "serve", "--http"])
        .arg(format!("127.0.0.1:{port}"))
        .arg("--config")
        .arg(&config)
        .env_remove("OTTER_ZK")
        .stdout(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    wait_for_port(port, &mut server, "otter-manager serve").await;
    let base = format!("http://127.0.0.1:{port}");

    let profile = dir.path().join("chromium-profile");
    std::fs::create_dir_all(&profile).unwrap();
    let (_driver, c) = browser(&profile).await;

    // Log in; the overview lists the channel, stopped.
    c.goto(&base).await.unwrap();
    assert!(c.current_url().await.unwrap().path().ends_with("/login"));
    screenshot(&c, "login").await;
    login(&c, &base, "olga", "olga-pass").await;
    let row = c.find(Locator::Css("#channels tbody tr")).await.unwrap();
    let text = row.text().await.unwrap();
    assert!(
        text.contains("stopped") && text.contains(&channel.pipeline.source.address),
        "{text}"
    );
    screenshot(&c, "overview").await;

    // Start through the confirmation page.
    c.find(Locator::LinkText(&cid.to_string()))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    click(&c, "action-start").await;
    let confirm = c.wait().for_element(Locator::Id("confirm")).await.unwrap();
    assert_eq!(
        stored(&client, cid).await,
        ChannelStatus::Stopped,
        "not before confirming"
    );
    screenshot(&c, "confirm").await;
    confirm.click().await.unwrap();
    let status = c.wait().for_element(Locator::Id("status")).await.unwrap();
    assert_eq!(status.text().await.unwrap(), "started");
    assert_eq!(stored(&client, cid).await, ChannelStatus::Started);
    assert!(body(&c).await.contains("olga start ok"));
    screenshot(&c, "channel").await;

    // A POST without the CSRF token (a forged form) is refused and changes nothing.
    forge_post(&c, &format!("/channel/{cid}/stop"), &[("confirm", "yes")]).await;
    let text = body(&c).await;
    assert!(text.contains("missing or invalid CSRF token"), "{text}");
    assert_eq!(stored(&client, cid).await, ChannelStatus::Started);

    // Stop through the UI.
    c.goto(&format!("{base}/channel/{cid}")).await.unwrap();
    click(&c, "action-stop").await;
    click_shown(&c, "confirm").await;
    let status = c.wait().for_element(Locator::Id("status")).await.unwrap();
    assert_eq!(status.text().await.unwrap(), "stopped");
    assert_eq!(stored(&client, cid).await, ChannelStatus::Stopped);

    // Create a channel through the form: a bad value first, shown next to the definition.
    c.goto(&base).await.unwrap();
    click(&c, "new-channel").await;
    let edit = |js: &'static str| {
        let c = c.clone();
        async move {
            c.execute(
                &format!("const t = document.getElementById('toml'); t.value = {js};"),
                vec![],
            )
            .await
            .unwrap();
        }
    };
    edit("t.value.replace('id = 1 ', 'id = 0 ')").await;
    click(&c, "apply").await;
    let error = c
        .wait()
        .for_element(Locator::Id("toml-error"))
        .await
        .unwrap();
    assert!(error.text().await.unwrap().contains("channel.id"));
    screenshot(&c, "edit").await;
    edit("t.value.replace('id = 0 ', 'id = 2 ').replace('id = 1 ', 'id = 2 ').replace('slave_id = 3301', 'slave_id = 3302')").await;
    click(&c, "apply").await;
    click_shown(&c, "confirm").await;
    let status = c.wait().for_element(Locator::Id("status")).await.unwrap();
    assert_eq!(status.text().await.unwrap(), "stopped");
    assert!(c
        .find(Locator::Css("main h1"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
        .starts_with("Channel 2"));
    assert_eq!(otter_manager::get(&client, 2).await.unwrap().pipeline.id, 2);

    // Log out; the viewer has no buttons, and its own token does not let it start the channel.
    c.find(Locator::Css("form.logout button"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    c.wait().for_element(Locator::Id("login")).await.unwrap();
    login(&c, &base, "victor", "victor-pass").await;
    c.goto(&format!("{base}/channel/{cid}")).await.unwrap();
    assert!(c.find(Locator::Id("action-start")).await.is_err());
    assert!(body(&c).await.contains("Viewers cannot start"));
    let token = c
        .find(Locator::Css("form.logout input[name=csrf]"))
        .await
        .unwrap()
        .attr("value")
        .await
        .unwrap()
        .unwrap();
    forge_post(
        &c,
        &format!("/channel/{cid}/start"),
        &[("csrf", &token), ("confirm", "yes")],
    )
    .await;
    let text = body(&c).await;
    assert!(text.contains("operators only"), "{text}");
    assert_eq!(stored(&client, cid).await, ChannelStatus::Stopped);

    // The pages without actions render for the viewer too.
    for (path, name) in [
        ("/nodes", "nodes"),
        ("/zookeeper", "zookeeper"),
        ("/audit", "audit"),
    ] {
        c.goto(&format!("{base}{path}")).await.unwrap();
        assert!(c.find(Locator::Css("main h1")).await.is_ok());
        screenshot(&c, name).await;
    }
    let audit = body(&c).await;
    assert!(
        audit.contains("olga stop channel 1 ok") && audit.contains("olga start channel 1 ok"),
        "{audit}"
    );
    c.close().await.unwrap();
}
