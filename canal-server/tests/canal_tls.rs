//! TLS on the Canal port with real processes: canal-client with the CA receives rows; a plain
//! client is closed without hurting the server; a client trusting another CA gets a clear,
//! permanent certificate error.

mod common;

use std::time::{Duration, Instant};

use canal_client::{ClientError, ClientTls, ConnectorOptions, SimpleConnector};
use common::server::*;
use harness::{MariaDb, TestCerts};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn connector(addr: &str, ca: std::path::PathBuf) -> SimpleConnector {
    SimpleConnector::new(
        addr,
        "example",
        ConnectorOptions {
            tls: Some(ClientTls {
                ca,
                server_name: Some("localhost".into()),
            }),
            ..Default::default()
        },
    )
}

async fn rows_over_tls(c: &mut SimpleConnector, want: usize) -> Vec<String> {
    let mut got = Vec::new();
    let t = Instant::now();
    while got.len() < want {
        assert!(t.elapsed() < Duration::from_secs(60), "rows: {got:?}");
        let m = c
            .get_without_ack(100, Some(Duration::from_millis(500)))
            .await
            .unwrap();
        for e in &m.entries {
            got.extend(row_ids(std::slice::from_ref(e)));
        }
        if !m.is_empty() {
            c.ack(m.id).await.unwrap();
        }
    }
    got
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_canal_port_speaks_tls_to_clients_that_trust_its_ca() {
    harness::init_tracing();
    let certs = TestCerts::generate().unwrap();
    let db = MariaDb::start().await.unwrap();
    db.exec("CREATE DATABASE shop; CREATE TABLE shop.t (id BIGINT PRIMARY KEY, v VARCHAR(20))")
        .await
        .unwrap();
    let s = ServerProc::start(
        server_bin(),
        &db,
        &format!(
            "tls_cert = \"{}\"\ntls_key = \"{}\"\n",
            certs.server_cert().display(),
            certs.server_key().display()
        ),
        "",
    )
    .await;
    wait_streaming(&s).await;

    let mut c = connector(&s.addr(), certs.ca());
    c.connect().await.unwrap();
    c.subscribe(Some(r"shop\..*")).await.unwrap();
    for id in 0..5 {
        db.exec(&format!("INSERT INTO shop.t VALUES ({id}, 'x')"))
            .await
            .unwrap();
    }
    assert_eq!(rows_over_tls(&mut c, 5).await, ["0", "1", "2", "3", "4"]);

    // A plain client's bytes are not a TLS hello: the server closes the connection.
    let mut plain = tokio::net::TcpStream::connect(s.addr()).await.unwrap();
    let _ = plain.write_all(b"\x00\x00\x00\x10not tls at all!!").await;
    let mut buf = [0u8; 64];
    let n = tokio::time::timeout(Duration::from_secs(30), plain.read(&mut buf))
        .await
        .expect("the server closes a plain connection")
        .unwrap_or(0);
    assert!(
        n == 0 || !buf[..n].starts_with(&[0, 0]),
        "no Canal frame in the clear"
    );

    // Another CA: a permanent error naming the certificate problem.
    let mut wrong = connector(&s.addr(), certs.other_ca());
    let e = wrong.connect().await.unwrap_err();
    assert!(matches!(e, ClientError::Tls { .. }), "{e:?}");
    assert!(!e.is_retryable());
    assert!(e.to_string().contains("certificate"), "{e}");

    // The TLS client goes on as before.
    db.exec("INSERT INTO shop.t VALUES (5, 'y')").await.unwrap();
    assert_eq!(rows_over_tls(&mut c, 1).await, ["5"]);
}
