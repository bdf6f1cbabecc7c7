//! The console over plain HTTP: the manager process, and a logged-in viewer.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use tokio::process::{Child, Command};

/// Starts `otter-manager serve` and waits until it listens.
pub async fn serve(zk: &str, port: u16, config: &Path) -> Child {
    let mut child = Command::new(env!("CARGO_BIN_EXE_otter-manager"))
        .args(["--zk", zk, "serve", "--http"])
        .arg(format!("127.0.0.1:{port}"))
        .arg("--config")
        .arg(config)
        .env_remove("OTTER_ZK")
        .stdout(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    for _ in 0..300 {
        if let Some(status) = child.try_wait().unwrap() {
            panic!("otter-manager serve exited with {status}");
        }
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            return child;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the console never listened on port {port}");
}

/// A cookie-keeping client logged in as the viewer `victor` (password `victor-pass`).
pub async fn viewer(port: u16) -> reqwest::Client {
    login(port, "victor", "victor-pass").await
}

/// A cookie-keeping client logged in as `user`.
pub async fn login(port: u16, user: &str, password: &str) -> reqwest::Client {
    let http = reqwest::Client::builder()
        .cookie_store(true)
        .build()
        .unwrap();
    let login = format!("http://127.0.0.1:{port}/login");
    let html = http.get(&login).send().await.unwrap().text().await.unwrap();
    let at = html.find("name=\"csrf\" value=\"").expect("the login form") + 19;
    let csrf = &html[at..at + html[at..].find('"').unwrap()];
    let r = http
        .post(&login)
        .form(&[("user", user), ("password", password), ("csrf", csrf)])
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.status());
    http
}

pub async fn page(http: &reqwest::Client, port: u16, path: &str) -> String {
    http.get(format!("http://127.0.0.1:{port}{path}"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

/// The session's CSRF token, read from a page's logout form.
pub fn csrf_of(html: &str) -> String {
    let at = html.find("name=\"csrf\" value=\"").expect("a CSRF field") + 19;
    html[at..at + html[at..].find('"').unwrap()].to_string()
}
