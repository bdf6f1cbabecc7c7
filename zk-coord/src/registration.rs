//! Registration: an ephemeral znode that says a process is alive, kept across sessions.

use tokio_util::sync::CancellationToken;
use zookeeper_client::CreateMode;

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
/// that cannot be opened is retried every second ([`ZkConfig::connect_until_stopped`]).
pub async fn keep_registered(zk: ZkConfig, reg: Registration, stop: CancellationToken) {
    loop {
        let Some(client) = zk.connect_until_stopped(&stop).await else {
            return;
        };
        let eph = CreateMode::Ephemeral.with_acls(crate::acl::for_path(&client, &reg.path));
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
