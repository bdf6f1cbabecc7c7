//! Claiming a process for a stage with an ephemeral [`Lock`] child, watching the claim while the
//! stage works, and releasing it.

use std::time::Duration;

use tokio_util::sync::CancellationToken;
use zookeeper_client::{Client, CreateMode};

use crate::process::{Lock, Process};
use crate::runtime::error::RuntimeError;

/// How long [`Process::release`] keeps trying while ZooKeeper does not answer.
pub const RELEASE_FOR: std::time::Duration = std::time::Duration::from_secs(60);

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
            Err(e) => {
                // No answer does not mean no lock: the create may have been applied. A lock of
                // this session that nobody knows it holds would block the batch for good.
                if let Ok(Some(stat)) = zk.check_stat(&path).await {
                    if stat.ephemeral_owner == zk.session_id().0 {
                        self.release(zk, lock).await;
                    }
                }
                Err(RuntimeError::zk("create", path)(e))
            }
        }
    }

    /// Deletes the `lock` child. A lock of a lost session is gone already; but when the
    /// connection only dropped (ZooKeeper answered nothing for a while, the session lives on),
    /// an ephemeral lock left behind would keep every other worker off the batch for as long as
    /// this node runs, and the strictly ordered Load behind it waits forever. So the delete is
    /// retried until it is done or the session is over (for at most [`RELEASE_FOR`]).
    pub async fn release(&self, zk: &Client, lock: Lock) {
        use zookeeper_client::Error as E;
        let path = self.child(lock);
        let started = std::time::Instant::now();
        let mut wait = std::time::Duration::from_millis(50);
        loop {
            match zk.delete(&path, None).await {
                Ok(()) | Err(E::NoNode) => return,
                // The ephemeral lock went (or goes) with the session.
                Err(E::SessionExpired | E::ClientClosed | E::AuthFailed | E::SessionMoved) => {
                    return
                }
                Err(e) if started.elapsed() >= RELEASE_FOR => {
                    tracing::warn!(path = %path, error = %e, "cannot release a stage lock; it stays until this node's session ends");
                    return;
                }
                Err(e) => {
                    tracing::debug!(path = %path, error = %e, "releasing a stage lock failed; retrying");
                    tokio::time::sleep(wait).await;
                    wait = (wait * 2).min(std::time::Duration::from_secs(1));
                }
            }
        }
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
