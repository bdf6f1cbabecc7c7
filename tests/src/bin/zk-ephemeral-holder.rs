//! Test helper process: connects to ZooKeeper, creates an ephemeral znode, prints `ready`, and then
//! holds the session until killed. Tests kill it with -9 to watch the node vanish on session expiry.
//!
//! Usage: zk-ephemeral-holder <connect-string> <path> <session-timeout-ms>

use std::time::Duration;

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::process::ExitCode {
    let args: Vec<String> = std::env::args().collect();
    if args.len() != 4 {
        eprintln!("usage: zk-ephemeral-holder <connect-string> <path> <session-timeout-ms>");
        return std::process::ExitCode::from(2);
    }
    let timeout = match args[3].parse::<u64>() {
        Ok(ms) => Duration::from_millis(ms),
        Err(e) => {
            eprintln!("bad session timeout {:?}: {e}", args[3]);
            return std::process::ExitCode::from(2);
        }
    };
    let client = match zookeeper_client::Client::connector()
        .with_session_timeout(timeout)
        .connect(&args[1])
        .await
    {
        Ok(c) => c,
        Err(e) => {
            eprintln!("connect {}: {e}", args[1]);
            return std::process::ExitCode::from(1);
        }
    };
    let opts =
        zookeeper_client::CreateMode::Ephemeral.with_acls(zookeeper_client::Acls::anyone_all());
    if let Err(e) = client.create(&args[2], b"held", &opts).await {
        eprintln!("create {}: {e}", args[2]);
        return std::process::ExitCode::from(1);
    }
    println!("ready");
    loop {
        tokio::time::sleep(Duration::from_secs(3600)).await;
    }
}
