//! Starts a local source MariaDB (binlog ROW, FULL image) and a ZooKeeper with the test harness,
//! prints their addresses, and keeps them running until SIGINT/SIGTERM or until standard input closes.
//! Used by `scripts/quickstart.sh`; everything it started is killed when it exits.
//!
//! Output lines: `mariadb 127.0.0.1:PORT user=canal password=…`, `zookeeper 127.0.0.1:PORT`,
//! `datadir PATH`, then `ready`. With `--second-site`, a second MariaDB (its own server id and
//! GTID domain, for two-way sync) is printed as `mariadb2 127.0.0.1:PORT user=… password=…` before
//! `ready`.

use std::io::Write;

use harness::{MariaDb, MariaDbOptions, ZooKeeper};

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let db = match MariaDb::start_with(MariaDbOptions::default()).await {
        Ok(db) => db,
        Err(e) => {
            eprintln!("cdc-sandbox: {e}");
            return std::process::ExitCode::from(1);
        }
    };
    let zk = match ZooKeeper::start().await {
        Ok(zk) => zk,
        Err(e) => {
            eprintln!("cdc-sandbox: {e}");
            return std::process::ExitCode::from(1);
        }
    };
    let second = if std::env::args().any(|a| a == "--second-site") {
        match MariaDb::start_with(MariaDbOptions {
            server_id: 2,
            gtid_domain_id: 1,
            ..Default::default()
        })
        .await
        {
            Ok(db) => Some(db),
            Err(e) => {
                eprintln!("cdc-sandbox: second site: {e}");
                return std::process::ExitCode::from(1);
            }
        }
    } else {
        None
    };
    let user = db.replication_user().cloned().unwrap_or_default();
    println!(
        "mariadb {} user={} password={}",
        db.addr(),
        user.user,
        user.password
    );
    if let Some(b) = &second {
        let u = b.replication_user().cloned().unwrap_or_default();
        println!(
            "mariadb2 {} user={} password={}",
            b.addr(),
            u.user,
            u.password
        );
    }
    println!("zookeeper {}", zk.connect_string());
    println!("datadir {}", db.datadir().display());
    println!("ready");
    let _ = std::io::stdout().flush();

    let stdin_closed = tokio::task::spawn_blocking(|| {
        let mut sink = Vec::new();
        let _ = std::io::Read::read_to_end(&mut std::io::stdin(), &mut sink);
    });
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("cdc-sandbox: {e}");
            return std::process::ExitCode::from(1);
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
        _ = stdin_closed => {}
    }
    drop(zk);
    drop(second);
    drop(db);
    // Exit now: the runtime would otherwise wait for the blocking stdin reader.
    std::process::exit(0)
}
