//! The web console (`otter-manager serve`) as a real process against a real ZooKeeper, driven over
//! HTTP: login, pages, CSRF, roles, confirmed actions and the audit log.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use harness::{free_port, init_tracing, TestDir, ZooKeeper};
use otter_manager::console::hash_password;
use otter_node::model::{Channel, ChannelStatus};
use tokio::process::{Child, Command};

fn example() -> Channel {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/channel.toml");
    Channel::from_toml(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// Starts `otter-manager serve` and waits until it answers.
async fn serve(zk: &str, port: u16, config: &Path) -> Child {
    let mut child = Command::new(env!("CARGO_BIN_EXE_otter-manager"))
        .args(["--zk", zk, "serve", "--http"])
        .arg(format!("127.0.0.1:{port}"))
        .arg("--config")
        .arg(config)
        .env_remove("OTTER_ZK")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let http = reqwest::Client::new();
    for _ in 0..300 {
        if let Some(status) = child.try_wait().unwrap() {
            panic!("otter-manager serve exited with {status}");
        }
        if http
            .get(format!("http://127.0.0.1:{port}/login"))
            .send()
            .await
            .is_ok()
        {
            return child;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the console never answered on port {port}");
}

/// The value of the first `name="csrf"` hidden input of a page.
fn csrf_of(html: &str) -> String {
    let at = html.find("name=\"csrf\" value=\"").expect("a CSRF field") + 19;
    html[at..at + 64].to_string()
}

struct Browser {
    http: reqwest::Client,
    base: String,
}

impl Browser {
    fn new(port: u16) -> Self {
        Self {
            http: reqwest::Client::builder()
                .cookie_store(true)
                .build()
                .unwrap(),
            base: format!("http://127.0.0.1:{port}"),
        }
    }

    async fn get(&self, path: &str) -> (reqwest::StatusCode, String, String) {
        let r = self
            .http
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .unwrap();
        let url = r.url().path().to_string();
        (r.status(), url, r.text().await.unwrap())
    }

    async fn post(&self, path: &str, form: &[(&str, &str)]) -> (reqwest::StatusCode, String) {
        let r = self
            .http
            .post(format!("{}{path}", self.base))
            .form(form)
            .send()
            .await
            .unwrap();
        (r.status(), r.text().await.unwrap())
    }

    /// Logs in; returns the session's CSRF token (from the overview page).
    async fn login(&self, user: &str, password: &str) -> (reqwest::StatusCode, String) {
        let (_, _, page) = self.get("/login").await;
        let token = csrf_of(&page);
        let (status, body) = self
            .post(
                "/login",
                &[("csrf", &token), ("user", user), ("password", password)],
            )
            .await;
        if status.is_success() && !body.contains("Log in</h1>") {
            (status, csrf_of(&body))
        } else {
            (status, body)
        }
    }
}

/// A config with the operator `olga` and the viewer `victor` (passwords `{name}-pass`).
fn write_config(dir: &TestDir) -> std::path::PathBuf {
    write_config_with(dir, "")
}

fn write_config_with(dir: &TestDir, extra: &str) -> std::path::PathBuf {
    let config = dir.path().join("manager.toml");
    std::fs::write(
        &config,
        format!(
            "[console]\nhttp = \"127.0.0.1:1\"\n{extra}\n\n[[console.users]]\nname = \"olga\"\npassword_hash = \"{}\"\nrole = \"operator\"\n\n[[console.users]]\nname = \"victor\"\npassword_hash = \"{}\"\nrole = \"viewer\"\n",
            hash_password("olga-pass").unwrap(),
            hash_password("victor-pass").unwrap()
        ),
    )
    .unwrap();
    config
}

async fn stored_status(zk: &zookeeper_client::Client, cid: u32) -> ChannelStatus {
    otter_manager::get(zk, cid).await.unwrap().status
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_logs_in_shows_and_controls_channels_with_csrf_and_roles() {
    init_tracing();
    let zk = ZooKeeper::start().await.unwrap();
    let client = zk.client(Duration::from_secs(10)).await.unwrap();
    let channel = example();
    otter_manager::apply(&client, &channel).await.unwrap();
    let cid = channel.id;

    let dir = TestDir::new("otter-console").unwrap();
    let config = write_config(&dir);
    let port = free_port();
    let _server = serve(&zk.connect_string(), port, &config).await;

    // Not logged in: pages send to the login form, POSTs are refused.
    let anon = Browser::new(port);
    let (status, url, page) = anon.get("/").await;
    assert_eq!((status.as_u16(), url.as_str()), (200, "/login"));
    assert!(page.contains("<form method=\"post\" action=\"/login\""));
    let (status, _) = anon.post(&format!("/channel/{cid}/start"), &[]).await;
    assert_eq!(status.as_u16(), 401);

    // A login without the form's token, or with a wrong password, does not log in.
    let (status, _) = anon
        .post("/login", &[("user", "olga"), ("password", "olga-pass")])
        .await;
    assert_eq!(status.as_u16(), 403);
    let (status, page) = anon.login("olga", "wrong").await;
    assert_eq!(status.as_u16(), 401);
    assert!(page.contains("wrong user or password"));
    assert_eq!(anon.get("/").await.1, "/login");

    // The operator logs in and sees the channel, stopped, with its pipeline.
    let olga = Browser::new(port);
    let (status, csrf) = olga.login("olga", "olga-pass").await;
    assert_eq!(status.as_u16(), 200);
    let (status, url, page) = olga.get("/").await;
    assert_eq!((status.as_u16(), url.as_str()), (200, "/"));
    assert!(
        page.contains(&format!("<a href=\"/channel/{cid}\">{cid}</a>")),
        "{page}"
    );
    assert!(page.contains("<span class=\"status stopped\">stopped</span>"));
    assert!(page.contains(&channel.pipeline.source.address));
    assert!(page.contains("olga (operator)"));

    // A POST without the CSRF token, or with another one, changes nothing.
    let start = format!("/channel/{cid}/start");
    let (status, body) = olga.post(&start, &[("confirm", "yes")]).await;
    assert_eq!(status.as_u16(), 403, "{body}");
    let (status, _) = olga
        .post(&start, &[("confirm", "yes"), ("csrf", &"0".repeat(64))])
        .await;
    assert_eq!(status.as_u16(), 403);
    assert_eq!(stored_status(&client, cid).await, ChannelStatus::Stopped);

    // The first step only asks for confirmation.
    let (status, page) = olga.post(&start, &[("csrf", &csrf)]).await;
    assert_eq!(status.as_u16(), 200);
    assert!(page.contains("name=\"confirm\" value=\"yes\""), "{page}");
    assert_eq!(stored_status(&client, cid).await, ChannelStatus::Stopped);
    // Confirmed: started in ZooKeeper, shown on the channel page with the audit entry.
    let (status, page) = olga
        .post(&start, &[("csrf", &csrf), ("confirm", "yes")])
        .await;
    assert_eq!(status.as_u16(), 200);
    assert_eq!(stored_status(&client, cid).await, ChannelStatus::Started);
    assert!(page.contains("id=\"status\">started</span>"), "{page}");
    assert!(
        page.contains("<td>olga</td><td>start</td><td>ok</td>"),
        "{page}"
    );

    // The viewer sees the channel started but may not stop it, even with its own token.
    let victor = Browser::new(port);
    let (status, vcsrf) = victor.login("victor", "victor-pass").await;
    assert_eq!(status.as_u16(), 200);
    let (_, _, page) = victor.get(&format!("/channel/{cid}")).await;
    assert!(page.contains("id=\"status\">started</span>"));
    assert!(!page.contains("id=\"action-stop\""));
    let (status, _) = victor
        .post(
            &format!("/channel/{cid}/stop"),
            &[("csrf", &vcsrf), ("confirm", "yes")],
        )
        .await;
    assert_eq!(status.as_u16(), 403);
    assert_eq!(stored_status(&client, cid).await, ChannelStatus::Started);

    // The operator stops it; the audit log has both actions, newest first, with their authors.
    let (_, page) = olga
        .post(
            &format!("/channel/{cid}/stop"),
            &[("csrf", &csrf), ("confirm", "yes")],
        )
        .await;
    assert!(page.contains("id=\"status\">stopped</span>"));
    assert_eq!(stored_status(&client, cid).await, ChannelStatus::Stopped);
    let (_, _, audit) = victor.get("/audit").await;
    let stop_at = audit.find("<td>stop</td>").expect("the stop is audited");
    let start_at = audit.find("<td>start</td>").expect("the start is audited");
    assert!(stop_at < start_at, "newest first: {audit}");
    assert_eq!(audit.matches("<td>olga</td>").count(), 2);

    // Nodes (none) and ZooKeeper (one standalone member, with its znode count).
    let (status, _, page) = victor.get("/nodes").await;
    assert_eq!(status.as_u16(), 200);
    assert!(page.contains("No live node"));
    let (status, _, page) = victor.get("/zookeeper").await;
    assert_eq!(status.as_u16(), 200);
    let member = zk.members()[0].mntr().unwrap();
    assert!(
        page.contains(&format!("<td>{}</td>", member["zk_server_state"])),
        "{page}"
    );
    assert!(!page.contains("unreachable"), "{page}");

    // An unknown channel is a 404 page, not a crash.
    let (status, _, page) = victor.get("/channel/999").await;
    assert_eq!(status.as_u16(), 404);
    assert!(page.contains("channel 999 does not exist"));

    // Logging out ends the session.
    let (status, _) = victor.post("/logout", &[("csrf", &vcsrf)]).await;
    assert_eq!(status.as_u16(), 200);
    assert_eq!(victor.get("/").await.1, "/login");
}

#[tokio::test]
async fn serve_refuses_to_start_without_users_off_loopback() {
    let out = Command::new(env!("CARGO_BIN_EXE_otter-manager"))
        .args(["--zk", "127.0.0.1:1", "serve", "--http", "0.0.0.0:0"])
        .env_remove("OTTER_ZK")
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no console user configured"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_shows_canal_destinations_and_releases_one_to_a_standby() {
    init_tracing();
    let zk = ZooKeeper::start().await.unwrap();
    let client = zk.client(Duration::from_secs(10)).await.unwrap();
    // The layout a canal-server and a client leave: a running owner, two candidates, a cursor.
    let dest = "orders";
    let running = zk_coord::paths::running(dest);
    // Acked an hour behind now.
    let cursor = format!(
        r#"{{"@type":"com.alibaba.otter.canal.protocol.position.LogPosition","postion":{{"journalName":"mysql-bin.000003","position":4242,"timestamp":{}}}}}"#,
        otter_node::pipeline::heartbeat::now_ms() - 3_600_000
    );
    let cursor = cursor.as_str();
    let opts =
        zookeeper_client::CreateMode::Persistent.with_acls(zookeeper_client::Acls::anyone_all());
    for (path, data) in [
        (
            zk_coord::paths::destination_cluster_node(dest, "127.0.0.1:11111"),
            "",
        ),
        (
            zk_coord::paths::destination_cluster_node(dest, "127.0.0.1:11112"),
            "",
        ),
        (
            running.clone(),
            r#"{"active":true,"address":"127.0.0.1:11111","cid":1}"#,
        ),
        (zk_coord::paths::cursor(dest, 1001), cursor),
        (zk_coord::paths::destination("idle"), ""),
    ] {
        let parent = path.rsplit_once('/').unwrap().0;
        zk_coord::ensure_path(&client, parent).await.unwrap();
        client.create(&path, data.as_bytes(), &opts).await.unwrap();
    }

    let dir = TestDir::new("otter-console-canal").unwrap();
    let config = write_config(&dir);
    let port = free_port();
    let _server = serve(&zk.connect_string(), port, &config).await;

    let olga = Browser::new(port);
    let (_, csrf) = olga.login("olga", "olga-pass").await;
    let (status, _, page) = olga.get("/canal").await;
    assert_eq!(status.as_u16(), 200);
    let row = &page[page
        .find("<td>orders</td>")
        .expect("the destination is listed")..];
    let row = &row[..row.find("</tr>").unwrap()];
    assert!(row.contains("<td>127.0.0.1:11111</td>"), "{row}");
    assert!(
        row.contains("<td>127.0.0.1:11112</td>"),
        "the other candidate is the standby: {row}"
    );
    assert!(row.contains("mysql-bin.000003"), "{row}");
    // The page is read within a few seconds of writing the cursor: lag 3600 to 3609 s.
    assert!(row.contains("<small class=\"lag\">lag 360"), "{row}");
    assert!(row.contains("id=\"release-orders\""));
    assert!(page.contains("<td>idle</td>"));

    // The viewer may not release.
    let victor = Browser::new(port);
    let (_, vcsrf) = victor.login("victor", "victor-pass").await;
    let release = format!("/canal/{dest}/release");
    let (status, _) = victor
        .post(&release, &[("csrf", &vcsrf), ("confirm", "yes")])
        .await;
    assert_eq!(status.as_u16(), 403);
    // Nor anyone without the token; the first step only asks.
    let (status, _) = olga.post(&release, &[("confirm", "yes")]).await;
    assert_eq!(status.as_u16(), 403);
    let (status, page) = olga.post(&release, &[("csrf", &csrf)]).await;
    assert_eq!(status.as_u16(), 200);
    assert!(page.contains("Release destination orders?"), "{page}");
    let (data, _) = client.get_data(&running).await.unwrap();
    let v: serde_json::Value = serde_json::from_slice(&data).unwrap();
    assert_eq!(v["active"], true);

    // Confirmed: the running node says active:false (what makes its owner hand over), the rest
    // of it unchanged; the page shows the hand-over and the audit log the release.
    let (status, page) = olga
        .post(&release, &[("csrf", &csrf), ("confirm", "yes")])
        .await;
    assert_eq!(status.as_u16(), 200);
    let (data, _) = client.get_data(&running).await.unwrap();
    let v: serde_json::Value = serde_json::from_slice(&data).unwrap();
    assert_eq!(
        v,
        serde_json::json!({"active": false, "address": "127.0.0.1:11111", "cid": 1})
    );
    assert!(page.contains("(handing over)"), "{page}");
    let (_, _, audit) = olga.get("/audit").await;
    assert!(audit.contains("<td>olga</td><td>release</td><td>destination orders</td><td>ok: 127.0.0.1:11111 asked to hand over</td>"), "{audit}");

    // A destination nobody runs cannot be released.
    let (status, page) = olga
        .post(
            "/canal/idle/release",
            &[("csrf", &csrf), ("confirm", "yes")],
        )
        .await;
    assert_eq!(status.as_u16(), 409);
    assert!(page.contains("destination idle has no running server"));
}

/// A stand-in for an otter-node's `/metrics`: `otter_load_rows_total{pipeline}` grows by 50 per
/// scrape.
async fn fake_node_metrics(pid: u32) -> u16 {
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::Arc;
    let rows = Arc::new(AtomicU64::new(0));
    let app = axum::Router::new()
        .route("/health", axum::routing::get(|| async { "ok" }))
        .route(
            "/metrics",
            axum::routing::get(move || {
                let rows = rows.clone();
                async move {
                    let n = rows.fetch_add(50, Ordering::SeqCst) + 50;
                    format!("# TYPE otter_load_rows_total counter\notter_load_rows_total{{pipeline=\"{pid}\"}} {n}\n")
                }
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move { axum::serve(listener, app).await });
    port
}

/// The page from its rows/s chart on.
fn rows_chart(page: &str) -> &str {
    &page[page.find("id=\"rows-chart\"").unwrap_or(page.len())..]
}

fn polyline_points(svg_page: &str, label: &str) -> usize {
    let Some(at) = svg_page.find(&format!("data-label=\"{label}\"")) else {
        return 0;
    };
    let rest = &svg_page[at..];
    let start = rest.find("points=\"").unwrap() + 8;
    let end = start + rest[start..].find('"').unwrap();
    rest[start..end].split(' ').count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_samples_delays_and_node_rows_into_svg_charts() {
    init_tracing();
    let zk = ZooKeeper::start().await.unwrap();
    let client = zk.client(Duration::from_secs(10)).await.unwrap();
    let channel = example();
    otter_manager::apply(&client, &channel).await.unwrap();
    let pid = channel.pipeline.id;
    // What a running Load and a live node leave in ZooKeeper.
    let delay = zk_coord::otter_paths::delay(channel.id, pid);
    zk_coord::ensure_path(&client, &zk_coord::otter_paths::pipeline(channel.id, pid))
        .await
        .unwrap();
    let now = otter_node::pipeline::heartbeat::now_ms();
    client
        .create(
            &delay,
            format!("{{\"delay_ms\":2500,\"at_ms\":{now}}}").as_bytes(),
            &zookeeper_client::CreateMode::Persistent
                .with_acls(zookeeper_client::Acls::anyone_all()),
        )
        .await
        .unwrap();
    let metrics_port = fake_node_metrics(pid).await;
    zk_coord::ensure_path(&client, zk_coord::otter_paths::NODE_ROOT)
        .await
        .unwrap();
    client
        .create(
            &zk_coord::otter_paths::node(7),
            format!("127.0.0.1:{metrics_port}").as_bytes(),
            &zookeeper_client::CreateMode::Ephemeral
                .with_acls(zookeeper_client::Acls::anyone_all()),
        )
        .await
        .unwrap();

    let dir = TestDir::new("otter-console-history").unwrap();
    let config = write_config_with(&dir, "sample_secs = 1");
    let port = free_port();
    let _server = serve(&zk.connect_string(), port, &config).await;
    let victor = Browser::new(port);
    victor.login("victor", "victor-pass").await;

    // Wait (bounded by the number of tries, not a clock) until three samples are drawn.
    let mut page = String::new();
    for _ in 0..200 {
        page = victor.get("/").await.2;
        if polyline_points(&page, &format!("pipeline {pid}")) >= 3
            && polyline_points(rows_chart(&page), &format!("pipeline {pid}")) >= 2
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(
        polyline_points(&page, &format!("pipeline {pid}")) >= 3,
        "{page}"
    );
    assert!(
        polyline_points(rows_chart(&page), &format!("pipeline {pid}")) >= 2,
        "{page}"
    );
    // The delay line is flat at 2.5 s: every point has the same y.
    let at = page
        .find(&format!("data-label=\"pipeline {pid}\""))
        .unwrap();
    let rest = &page[at..];
    let start = rest.find("points=\"").unwrap() + 8;
    let pts = &rest[start..start + rest[start..].find('"').unwrap()];
    let ys: std::collections::BTreeSet<&str> = pts
        .split(' ')
        .map(|p| p.split(',').nth(1).unwrap())
        .collect();
    assert_eq!(ys.len(), 1, "{pts}");
    // The y axis tops at 110% of the largest value: 2.75 s.
    assert!(page.contains(">2.8 s</text>"), "{page}");

    // The nodes page: node 7 healthy, with its last rate (50 rows per 1 s sample, about).
    let (_, _, page) = victor.get("/nodes").await;
    let row = &page[page.find("<td>7</td>").expect("node 7 listed")..];
    let row = &row[..row.find("</tr>").unwrap()];
    assert!(
        row.contains(&format!("<td>127.0.0.1:{metrics_port}</td>")),
        "{row}"
    );
    assert!(row.contains("<td class=\"\">ok ("), "{row}");
    let needle = "class=\"num\">";
    let rate: f64 = row[row.find(needle).unwrap() + needle.len()..]
        .split('<')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    // 50 rows per scrape: a positive rate (its size depends on the sampler's timing).
    assert!(rate > 0.0, "{row}");

    // The channel page draws the same delay line.
    let (_, _, page) = victor.get(&format!("/channel/{}", channel.id)).await;
    assert!(polyline_points(&page, &format!("pipeline {pid}")) >= 3);
}

/// A webhook receiver that answers 503 to its first request (the sender must retry) and records
/// the JSON bodies of the others.
async fn webhook_receiver() -> (u16, tokio::sync::mpsc::UnboundedReceiver<serde_json::Value>) {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let refused = Arc::new(AtomicBool::new(false));
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |body: axum::body::Bytes| {
            let tx = tx.clone();
            let refused = refused.clone();
            async move {
                if !refused.swap(true, Ordering::SeqCst) {
                    return axum::http::StatusCode::SERVICE_UNAVAILABLE;
                }
                let _ = tx.send(serde_json::from_slice(&body).unwrap());
                axum::http::StatusCode::OK
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (port, rx)
}

async fn next_hook(
    rx: &mut tokio::sync::mpsc::UnboundedReceiver<serde_json::Value>,
) -> serde_json::Value {
    tokio::time::timeout(Duration::from_secs(60), rx.recv())
        .await
        .expect("a webhook call")
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alarms_fire_and_resolve_once_per_change_at_the_webhook_and_in_the_console() {
    init_tracing();
    let zk = ZooKeeper::start().await.unwrap();
    let client = zk.client(Duration::from_secs(10)).await.unwrap();
    let channel = example();
    otter_manager::apply(&client, &channel).await.unwrap();
    let pid = channel.pipeline.id;
    let delay = zk_coord::otter_paths::delay(channel.id, pid);
    zk_coord::ensure_path(&client, &zk_coord::otter_paths::pipeline(channel.id, pid))
        .await
        .unwrap();
    let set_delay = |ms: i64| {
        let client = client.clone();
        let delay = delay.clone();
        async move {
            let data = format!(
                "{{\"delay_ms\":{ms},\"at_ms\":{}}}",
                otter_node::pipeline::heartbeat::now_ms()
            );
            match client.set_data(&delay, data.as_bytes(), None).await {
                Ok(_) => {}
                Err(_) => {
                    client
                        .create(
                            &delay,
                            data.as_bytes(),
                            &zookeeper_client::CreateMode::Persistent
                                .with_acls(zookeeper_client::Acls::anyone_all()),
                        )
                        .await
                        .unwrap();
                }
            }
        }
    };
    set_delay(200).await;
    let (hook_port, mut hooks) = webhook_receiver().await;
    let dir = TestDir::new("otter-console-alarms").unwrap();
    let config = write_config_with(
        &dir,
        &format!(
            "sample_secs = 1\n\n[[console.alarms]]\nname = \"p{pid}-delay\"\nkind = \"delay\"\npipeline = {pid}\nabove_secs = 2.0\nfor_secs = 2\nwebhook = \"http://127.0.0.1:{hook_port}/hook\"\n\n[[console.alarms]]\nname = \"orders-down\"\nkind = \"destination_not_running\"\ndestination = \"orders\"\n\n[[console.alarms]]\nname = \"node-9-down\"\nkind = \"node_down\"\nnode = 9\n"
        ),
    );
    let port = free_port();
    let _server = serve(&zk.connect_string(), port, &config).await;
    let victor = Browser::new(port);
    victor.login("victor", "victor-pass").await;

    // The destination alarm (no webhook) fires in the console; the delay one is fine.
    let mut page = String::new();
    for _ in 0..200 {
        page = victor.get("/").await.2;
        if page.contains("<tr class=\"alarm firing\"><td>orders-down</td>") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(
        page.contains("<tr class=\"alarm firing\"><td>orders-down</td>"),
        "{page}"
    );
    assert!(
        page.contains(&format!("<tr class=\"alarm ok\"><td>p{pid}-delay</td>")),
        "{page}"
    );

    // The delay rises: one "firing" reaches the webhook (after a refused first try).
    set_delay(5_000).await;
    let fired = next_hook(&mut hooks).await;
    assert_eq!(fired["alarm"], format!("p{pid}-delay"));
    assert_eq!(fired["state"], "firing");
    assert!(
        fired["detail"].as_str().unwrap().contains("delay 5.000 s"),
        "{fired}"
    );
    let page = victor.get("/").await.2;
    assert!(
        page.contains(&format!("<tr class=\"alarm firing\"><td>p{pid}-delay</td>")),
        "{page}"
    );

    // It comes back: the next call is "resolved", not a repeated "firing".
    set_delay(100).await;
    let resolved = next_hook(&mut hooks).await;
    assert_eq!(resolved["alarm"], format!("p{pid}-delay"));
    assert_eq!(resolved["state"], "resolved");
    assert!(resolved["at_ms"].as_i64().unwrap() > fired["at_ms"].as_i64().unwrap());
    assert!(hooks.try_recv().is_err(), "one call per state change");

    // A server takes the destination: its alarm resolves.
    let running = zk_coord::paths::running("orders");
    zk_coord::ensure_path(&client, &zk_coord::paths::destination("orders"))
        .await
        .unwrap();
    client
        .create(
            &running,
            br#"{"active":true,"address":"127.0.0.1:11111"}"#,
            &zookeeper_client::CreateMode::Ephemeral
                .with_acls(zookeeper_client::Acls::anyone_all()),
        )
        .await
        .unwrap();
    let mut page = String::new();
    for _ in 0..200 {
        page = victor.get("/").await.2;
        if page.contains("<tr class=\"alarm ok\"><td>orders-down</td>") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(
        page.contains("<tr class=\"alarm ok\"><td>orders-down</td>"),
        "{page}"
    );

    // Node 9 was never registered: down; it registers: resolved.
    assert!(
        page.contains("<tr class=\"alarm firing\"><td>node-9-down</td>"),
        "{page}"
    );
    zk_coord::ensure_path(&client, zk_coord::otter_paths::NODE_ROOT)
        .await
        .unwrap();
    client
        .create(
            &zk_coord::otter_paths::node(9),
            b"127.0.0.1:1",
            &zookeeper_client::CreateMode::Ephemeral
                .with_acls(zookeeper_client::Acls::anyone_all()),
        )
        .await
        .unwrap();
    for _ in 0..200 {
        page = victor.get("/").await.2;
        if page.contains("<tr class=\"alarm ok\"><td>node-9-down</td>") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(
        page.contains("<tr class=\"alarm ok\"><td>node-9-down</td>"),
        "{page}"
    );
}
