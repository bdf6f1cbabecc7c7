//! Claiming a process for a stage with an ephemeral [`Lock`] child, watching the claim while the
//! stage works, and releasing it.

use std::time::Duration;

use tokio_util::sync::CancellationToken;
use zookeeper_client::{Client, CreateMode};

use crate::process::{Lock, Process};
use crate::runtime::error::RuntimeError;

impl Process {
    /// Creates the ephemeral `lock` child holding node id `nid`. Returns the creation zxid
    /// (`czxid`) of the new znode, or `None` when someone else holds it or the process is gone.
    ///
    /// The zxid is a fencing token: ZooKeeper's zxids only grow, so any claim made after this one
    /// (of this process after the lock vanished, or of a later process) gets a strictly larger
    /// token. Load writes it into the target with every transaction
    /// ([`crate::pipeline::load::Fence`]).
    pub async fn try_lock(
        &self,
        zk: &Client,
        lock: Lock,
        nid: u32,
    ) -> Result<Option<i64>, RuntimeError> {
        let path = self.child(lock);
        let eph = CreateMode::Ephemeral.with_acls(zk_coord::acl::private(zk));
        match zk.create(&path, nid.to_string().as_bytes(), &eph).await {
            // A server before 3.5 answers `create` without a stat: read it (the znode must
            // still be this session's, or the token would be someone else's).
            Ok((stat, _)) if stat.czxid <= 0 => match zk.check_stat(&path).await {
                Ok(Some(stat)) if stat.czxid > 0 && stat.ephemeral_owner == zk.session_id().0 => {
                    Ok(Some(stat.czxid))
                }
                Ok(_) => Ok(None),
                Err(e) => Err(RuntimeError::zk("exists", path)(e)),
            },
            Ok((stat, _)) => Ok(Some(stat.czxid)),
            Err(zookeeper_client::Error::NodeExists) | Err(zookeeper_client::Error::NoNode) => {
                Ok(None)
            }
            Err(e) => Err(RuntimeError::zk("create", path)(e)),
        }
    }

    /// Deletes the `lock` child (best effort: a lock of a lost session is gone already).
    pub async fn release(&self, zk: &Client, lock: Lock) {
        let _ = zk.delete(&self.child(lock), None).await;
    }

    /// Deletes the `lock` child if node `nid` still holds it (ZooKeeper was only slow to confirm
    /// it), so that anyone can take the process again.
    pub async fn release_if_held(&self, zk: &Client, lock: Lock, nid: u32) {
        let path = self.child(lock);
        if let Ok((data, stat)) = zk.get_data(&path).await {
            if data == nid.to_string().as_bytes() {
                let _ = zk.delete(&path, Some(stat.version)).await;
            }
        }
    }

    /// Watches the `lock` child in a task: `held` is cancelled once it is gone or ZooKeeper
    /// cannot confirm it within 2 s (checked every 250 ms). The task ends with `held`.
    pub fn watch_lock(
        &self,
        zk: Client,
        lock: Lock,
        held: CancellationToken,
    ) -> tokio::task::JoinHandle<()> {
        tokio::spawn(watch(zk, self.child(lock), held))
    }
}

async fn watch(zk: Client, lock: String, held: CancellationToken) {
    loop {
        tokio::select! {
            _ = held.cancelled() => return,
            _ = tokio::time::sleep(Duration::from_millis(250)) => {}
        }
        match tokio::time::timeout(Duration::from_secs(2), zk.check_stat(&lock)).await {
            Ok(Ok(Some(_))) => {}
            _ => {
                held.cancel();
                return;
            }
        }
    }
}
