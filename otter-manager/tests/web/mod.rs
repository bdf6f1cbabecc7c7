//! What the browser test drives Chromium with: chromedriver as a local process, log in, click,
//! forge a POST, screenshots.
#![allow(dead_code)]

pub mod http;
pub mod sites;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use fantoccini::{Client, ClientBuilder, Locator};
use harness::free_port;
use tokio::process::{Child, Command};

pub async fn wait_for_port(port: u16, child: &mut Child, what: &str) {
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
pub async fn browser(profile: &Path) -> (Child, Client) {
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

/// With `CONSOLE_SCREENSHOTS=1`, saves the page as docs/console-`name`.png.
pub async fn screenshot(c: &Client, name: &str) {
    if let Some(dir) = screenshot_dir() {
        let png = c.screenshot().await.unwrap();
        std::fs::write(dir.join(format!("console-{name}.png")), png).unwrap();
    }
}

pub async fn login(c: &Client, base: &str, user: &str, password: &str) {
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

pub async fn logout(c: &Client) {
    c.find(Locator::Css("form.logout button"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    c.wait().for_element(Locator::Id("login")).await.unwrap();
}

pub async fn body(c: &Client) -> String {
    c.find(Locator::Css("body"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

/// The page's HTML source.
pub async fn source(c: &Client) -> String {
    c.source().await.unwrap()
}

/// Submits a form built in the page (what a forged or hand-made request does).
pub async fn forge_post(c: &Client, action: &str, fields: &[(&str, &str)]) {
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
pub async fn click(c: &Client, id: &str) {
    c.find(Locator::Id(id))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
}

/// Waits for the element with id `id` to appear, then clicks it.
pub async fn click_shown(c: &Client, id: &str) {
    c.wait()
        .for_element(Locator::Id(id))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
}

/// Sets the value of the form field with id `id`.
pub async fn set_value(c: &Client, id: &str, value: &str) {
    c.execute(
        "document.getElementById(arguments[0]).value = arguments[1];",
        vec![id.into(), value.into()],
    )
    .await
    .unwrap();
}

/// The `data-<attr>` of the chart line labelled `label` inside the element `#chart_id`, if drawn.
pub async fn chart_value(c: &Client, chart_id: &str, label: &str, attr: &str) -> Option<f64> {
    let line = c
        .find(Locator::Css(&format!(
            "#{chart_id} polyline[data-label=\"{label}\"]"
        )))
        .await
        .ok()?;
    line.attr(&format!("data-{attr}")).await.ok()??.parse().ok()
}
