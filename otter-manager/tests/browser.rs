//! The console in a real headless Chromium (Debian's `chromium` and `chromium-driver`, installed by
//! scripts/setup.sh), driven through WebDriver against a real manager, ZooKeeper, source and
//! target MariaDBs and an otter-node: log in; create a channel through the form's fields (a bad
//! channel id first, its error next to the field); start it through the confirmation page; watch
//! its rows/s rise on the chart while rows are written; stop the target MariaDB and see the delay
//! alarm fire in the console and at a local webhook receiver, then resolve once the target is
//! back; a forged POST without the CSRF token is refused; a viewer has no buttons and is refused
//! when it posts anyway.
//!
//! With `CONSOLE_SCREENSHOTS=1` the pages are saved as docs/console-*.png (shown in the README).

mod web;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use fantoccini::{Client, Locator};
use harness::{free_port, init_tracing, TestDir, ZooKeeper};
use otter_manager::console::edit::channel_toml;
use otter_manager::console::fields::split;
use otter_manager::console::hash_password;
use otter_node::model::ChannelStatus;
use tokio::process::Command;
use web::sites;
use web::*;

/// The delay alarm's threshold, seconds: far above a healthy pipeline's delay on a busy machine,
/// reached within seconds once the target is down.
const DELAY_ALARM_SECS: u64 = 8;

async fn stored(zk: &zookeeper_client::Client, cid: u32) -> ChannelStatus {
    otter_manager::get(zk, cid).await.unwrap().status
}

/// Reloads `url` until `ready` holds for the page's HTML, at most `limit`.
async fn poll_page(
    c: &Client,
    url: &str,
    limit: Duration,
    what: &str,
    ready: impl Fn(&str) -> bool,
) -> String {
    let t = Instant::now();
    loop {
        c.goto(url).await.unwrap();
        let html = source(c).await;
        if ready(&html) {
            return html;
        }
        if t.elapsed() > limit {
            panic!("{what}: not seen within {limit:?}; last page:\n{html}");
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// The overview's row of the alarm named `name` (its HTML).
fn alarm_row<'a>(html: &'a str, name: &str) -> Option<&'a str> {
    let at = html.find(&format!("<td>{name}</td>"))?;
    let start = html[..at].rfind("<tr")?;
    let end = at + html[at..].find("</tr>")?;
    Some(&html[start..end])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_drives_a_real_channel_through_start_load_and_a_target_outage_alarm() {
    init_tracing();
    let (src, mut dst) = tokio::join!(sites::source(), sites::target());
    let zk = ZooKeeper::start().await.unwrap();
    let client = zk.client(Duration::from_secs(10)).await.unwrap();
    let dir = TestDir::new("otter-console-browser").unwrap();
    let source_password = src
        .replication_user()
        .map(|u| u.password.clone())
        .unwrap_or_default();
    let _node = sites::node(&dir, 1, &zk, &source_password);
    let channel = sites::channel(&src, &dst, 1, 1).await;
    let cid = channel.id;
    let pid = channel.pipeline.id;
    let (hook_port, mut hooks) = sites::webhook_receiver().await;
    let alarm = format!("pipeline {pid} delay");
    // Shown in the console only (the webhook receiver counts the delay alarm's calls).
    let position_alarm = format!("pipeline {pid} position");

    let config = dir.path().join("manager.toml");
    std::fs::write(
        &config,
        format!(
            "[console]\nsample_secs = 1\n\n\
             [[console.users]]\nname = \"olga\"\npassword_hash = \"{}\"\nrole = \"operator\"\n\n\
             [[console.users]]\nname = \"victor\"\npassword_hash = \"{}\"\nrole = \"viewer\"\n\n\
             [[console.alarms]]\nname = \"{alarm}\"\nkind = \"delay\"\npipeline = {pid}\n\
             above_secs = {DELAY_ALARM_SECS}.0\nfor_secs = 2\n\
             webhook = \"http://127.0.0.1:{hook_port}/hook\"\n\n\
             [[console.alarms]]\nname = \"{position_alarm}\"\nkind = \"position_stuck\"\n\
             pipeline = {pid}\nabove_secs = {DELAY_ALARM_SECS}.0\n",
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
        .stdout(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    wait_for_port(port, &mut server, "otter-manager serve").await;
    let base = format!("http://127.0.0.1:{port}");

    let profile = dir.path().join("chromium-profile");
    std::fs::create_dir_all(&profile).unwrap();
    let (_driver, c) = browser(&profile).await;

    // Log in.
    c.goto(&base).await.unwrap();
    assert!(c.current_url().await.unwrap().path().ends_with("/login"));
    screenshot(&c, "login").await;
    login(&c, &base, "olga", "olga-pass").await;

    // Create the channel through the form: its settings in the fields (the rest of the definition
    // as TOML beside them), a bad channel id typed first, the error next to that field.
    click(&c, "new-channel").await;
    let (fields, rest) = split(&channel_toml(&channel).unwrap());
    for f in &fields {
        set_value(&c, &format!("f-{}", f.id), &f.value).await;
    }
    set_value(&c, "toml", &rest).await;
    let type_channel_id = |id: String| {
        let c = c.clone();
        async move {
            let field = c.find(Locator::Id("f-channel-id")).await.unwrap();
            field.clear().await.unwrap();
            field.send_keys(&id).await.unwrap();
        }
    };
    type_channel_id("0".into()).await;
    click(&c, "apply").await;
    let error = c
        .wait()
        .for_element(Locator::Id("error-channel-id"))
        .await
        .unwrap();
    assert!(error.text().await.unwrap().contains("channel.id"));
    screenshot(&c, "edit").await;
    type_channel_id(cid.to_string()).await;
    click(&c, "apply").await;
    click_shown(&c, "confirm").await;
    let status = c.wait().for_element(Locator::Id("status")).await.unwrap();
    assert_eq!(status.text().await.unwrap(), "stopped");
    assert_eq!(otter_manager::get(&client, cid).await.unwrap(), {
        let mut stored = channel.clone();
        stored.status = ChannelStatus::Stopped;
        stored
    });

    // Start it through the confirmation page.
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

    // Rows written at the source: the pipeline's rows/s rises on the channel's chart.
    let stop_writing = Arc::new(AtomicBool::new(false));
    let writer = tokio::spawn(sites::keep_inserting(
        src.conn().await.unwrap(),
        stop_writing.clone(),
    ));
    let channel_url = format!("{base}/channel/{cid}?minutes=5");
    let label = format!("pipeline {pid}");
    let t = Instant::now();
    loop {
        c.goto(&channel_url).await.unwrap();
        if chart_value(&c, "rows-chart", &label, "max")
            .await
            .is_some_and(|v| v > 0.0)
        {
            break;
        }
        assert!(
            t.elapsed() < Duration::from_secs(180),
            "no rows/s on the chart:\n{}\nnode log:\n{}",
            source(&c).await,
            std::fs::read_to_string(dir.path().join("node-1.log")).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    screenshot(&c, "channel").await;

    // A measured delay under the threshold first: the alarm is ok.
    let overview = poll_page(
        &c,
        &base,
        Duration::from_secs(120),
        "a measured delay with the alarm ok",
        |html| {
            alarm_row(html, &alarm).is_some_and(|r| {
                r.contains("alarm ok") && r.contains(&format!("pipeline {pid} delay "))
            })
        },
    )
    .await;
    assert!(overview.contains(&format!("<td>{pid}</td>")));
    screenshot(&c, "overview").await;

    // The target MariaDB stops for real while rows keep coming: nothing loads (a batch of
    // heartbeats alone needs no target; the rows behind them do), the delay grows, the alarm fires.
    while hooks.try_recv().is_ok() {}
    tokio::task::block_in_place(|| dst.stop()).unwrap();
    poll_page(
        &c,
        &base,
        Duration::from_secs(120),
        "the delay and position alarms firing in the console",
        |html| {
            [&alarm, &position_alarm]
                .iter()
                .all(|a| alarm_row(html, a).is_some_and(|r| r.contains("alarm firing")))
        },
    )
    .await;
    screenshot(&c, "alarm").await;
    let fired = sites::next_hook(&mut hooks, "firing", Duration::from_secs(60)).await;
    assert_eq!(fired["alarm"], alarm.as_str());
    let seen: f64 = fired["detail"]
        .as_str()
        .and_then(|d| d.split_whitespace().nth(3))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("a delay in {fired}"));
    assert!(seen > DELAY_ALARM_SECS as f64, "{fired}");

    // The target returns: Load catches up, the alarm resolves, in the console and at the hook.
    dst.start_again().await.unwrap();
    poll_page(
        &c,
        &base,
        Duration::from_secs(180),
        "the delay and position alarms resolved in the console",
        |html| {
            [&alarm, &position_alarm]
                .iter()
                .all(|a| alarm_row(html, a).is_some_and(|r| r.contains("alarm ok")))
        },
    )
    .await;
    let resolved = sites::next_hook(&mut hooks, "resolved", Duration::from_secs(60)).await;
    assert_eq!(resolved["alarm"], alarm.as_str());
    stop_writing.store(true, Ordering::SeqCst);
    let written = writer.await.unwrap();
    // Everything written, the rows of the outage included, reaches the target.
    let t = Instant::now();
    loop {
        let loaded: Vec<i64> = dst
            .query("SELECT COUNT(*) FROM shop_dr.orders")
            .await
            .unwrap_or_default();
        if loaded.first().is_some_and(|n| *n as u64 == written) {
            break;
        }
        assert!(
            t.elapsed() < Duration::from_secs(120),
            "{loaded:?} of {written} rows loaded"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    // A POST without the CSRF token (a forged form) is refused and changes nothing.
    forge_post(&c, &format!("/channel/{cid}/stop"), &[("confirm", "yes")]).await;
    let text = body(&c).await;
    assert!(text.contains("missing or invalid CSRF token"), "{text}");
    assert_eq!(stored(&client, cid).await, ChannelStatus::Started);

    // Log out; the viewer has no buttons, and its own token lets it neither stop nor start.
    c.goto(&base).await.unwrap();
    logout(&c).await;
    login(&c, &base, "victor", "victor-pass").await;
    c.goto(&format!("{base}/channel/{cid}")).await.unwrap();
    assert!(c.find(Locator::Id("action-stop")).await.is_err());
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
    for action in ["stop", "start"] {
        forge_post(
            &c,
            &format!("/channel/{cid}/{action}"),
            &[("csrf", &token), ("confirm", "yes")],
        )
        .await;
        let text = body(&c).await;
        assert!(text.contains("operators only"), "{action}: {text}");
    }
    assert_eq!(stored(&client, cid).await, ChannelStatus::Started);

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
    // The nodes page (visited above): node 1's version and when it was last sampled.
    c.goto(&format!("{base}/nodes")).await.unwrap();
    let version = c
        .find(Locator::Css("#nodes td.version"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(version, env!("CARGO_PKG_VERSION"));
    let seen = c
        .find(Locator::Css("#nodes td.seen"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(seen.ends_with(" s ago"), "{seen}");
    c.goto(&format!("{base}/audit")).await.unwrap();
    let audit = body(&c).await;
    assert!(audit.contains("olga start channel 1 ok"), "{audit}");
    assert!(
        !audit.contains("victor stop") && !audit.contains("victor start"),
        "{audit}"
    );
    c.close().await.unwrap();
}
