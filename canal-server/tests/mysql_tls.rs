//! TLS to the source with real processes: a MariaDB with TLS whose replication account REQUIRES
//! SSL, read by canal-server with `verify_ca` and `verify_identity`; a CA that did not sign the
//! server's certificate and a `disabled` mode each end in a clear error at the destination.

mod common;

use std::time::{Duration, Instant};

use common::server::*;
use harness::{MariaDb, MariaDbOptions, TestCerts};

async fn tls_source(certs: &TestCerts) -> MariaDb {
    let db = MariaDb::start_with(MariaDbOptions {
        extra_args: certs.mariadb_args(),
        ..Default::default()
    })
    .await
    .unwrap();
    db.exec(
        "ALTER USER 'canal'@'%' REQUIRE SSL;
         CREATE DATABASE shop; CREATE TABLE shop.t (id BIGINT PRIMARY KEY, v VARCHAR(20))",
    )
    .await
    .unwrap();
    db
}

fn tls_section(mode: &str, ca: &std::path::Path) -> String {
    format!(
        "[destinations.example.tls]\nmode = \"{mode}\"\nca = \"{}\"\n",
        ca.display()
    )
}

/// Waits until `/health` shows `text` in the destination's error; returns the health JSON.
async fn wait_health_error(s: &ServerProc, text: &str) -> String {
    let t = Instant::now();
    loop {
        let h = http_get(s.admin_port, "/health").await.unwrap_or_default();
        if h.contains(text) {
            return h;
        }
        assert!(
            t.elapsed() < Duration::from_secs(60),
            "no {text:?} in /health: {h}\n{}",
            s.log()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replication_over_verified_tls_and_clear_errors_when_it_cannot_be() {
    harness::init_tracing();
    let certs = TestCerts::generate().unwrap();
    let db = tls_source(&certs).await;

    for mode in ["verify_ca", "verify_identity"] {
        let s = ServerProc::start_with(server_bin(), &db, "", "", &tls_section(mode, &certs.ca()))
            .await;
        wait_streaming(&s).await;
        let mut c = RawClient::subscribed(&s.addr(), "1001", r"shop\..*").await;
        let base = if mode == "verify_ca" { 0 } else { 100 };
        for id in base..base + 5 {
            db.exec(&format!("INSERT INTO shop.t VALUES ({id}, 'x')"))
                .await
                .unwrap();
        }
        let mut got = Vec::new();
        let t = Instant::now();
        while got.len() < 5 {
            assert!(
                t.elapsed() < Duration::from_secs(60),
                "{mode}: rows {got:?}"
            );
            if let Ok(m) = c.get("1001", 100, 500).await {
                got.extend(row_ids(&entries(&m)));
                if m.batch_id != -1 {
                    c.ack("1001", m.batch_id).await;
                }
            }
        }
        let want: Vec<String> = (base..base + 5).map(|i| i.to_string()).collect();
        assert_eq!(got, want, "{mode}");
    }

    // A CA that did not sign the server's certificate: the destination says why it cannot start.
    let s = ServerProc::start_with(
        server_bin(),
        &db,
        "",
        "",
        &tls_section("verify_ca", &certs.other_ca()),
    )
    .await;
    let h = wait_health_error(&s, "TLS to source").await;
    assert!(h.contains("UnknownIssuer"), "{h}");
    assert!(h.contains("\"healthy\":false"), "{h}");
    println!("untrusted CA: {h}");

    // Without TLS, an account that requires it is refused.
    let s = ServerProc::start(server_bin(), &db, "", "").await;
    let h = wait_health_error(&s, "Access denied").await;
    assert!(h.contains("refused the replication account"), "{h}");
}
