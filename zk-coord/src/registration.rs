//! Registration: an ephemeral znode that says a process is alive, kept across sessions.

use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tracing::warn;
use zookeeper_client::{Acls, CreateMode};

use crate::ZkConfig;

/// What to register and where.
#[derive(Debug, Clone)]
pub struct Registration {
    /// The persistent parent, created when missing (`/otter/node`).
    pub parent: String,
    /// The ephemeral node (`/otter/node/{nid}`).
    pub path: String,
    /// Its data (an address, or nothing).
    pub data: Vec<u8>,
}

/// Keeps `reg.path` registered until `stop`: an ephemeral node created on every new session (a
/// node left by an earlier session of the same owner is replaced), deleted on `stop`. A session
/// that cannot be opened is retried every second.
pub async fn keep_registered(zk: ZkConfig, reg: Registration, stop: CancellationToken) {
    let eph = CreateMode::Ephemeral.with_acls(Acls::anyone_all());
    loop {
        let client = tokio::select! {
            _ = stop.cancelled() => return,
            c = zk.connect() => c,
        };
        let client = match client {
            Ok(c) => c,
            Err(e) => {
                warn!(error = %e, path = %reg.path, "cannot register in ZooKeeper; retrying");
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                }
                continue;
            }
        };
        let _ = crate::ensure_path(&client, &reg.parent).await;
        if let Err(zookeeper_client::Error::NodeExists) =
            client.create(&reg.path, &reg.data, &eph).await
        {
            let _ = client.delete(&reg.path, None).await;
            let _ = client.create(&reg.path, &reg.data, &eph).await;
        }
        let mut state = client.state_watcher();
        loop {
            tokio::select! {
                _ = stop.cancelled() => {
                    let _ = client.delete(&reg.path, None).await;
                    return;
                }
                s = state.changed() => if s.is_terminated() { break },
            }
        }
    }
}
