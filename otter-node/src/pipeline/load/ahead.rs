//! Claiming the next batch while the current one loads: its Load lock taken and its rows pulled
//! in a task of their own, so Load's strictly serial path does not wait for those ZooKeeper and
//! HTTP round trips between batches (across a WAN, one round trip each).
//!
//! Safe with the fencing: the next lock is created after the current one, so its creation zxid
//! (the next load's token) is larger; and the next load still starts only after the current one
//! committed. A claim that is not the next to load when its turn comes (the window was reset,
//! the current load failed) is released. Should the loop end with a claim pending, the lock goes
//! with the worker's ZooKeeper session once the task is done with it.

use tokio::task::JoinHandle;
use zookeeper_client::Client;

use crate::process::{Lock, Process, Stage};
use crate::runtime::error::RuntimeError;
use crate::runtime::options::NodeOptions;
use crate::runtime::pull::pull;
use crate::runtime::registry::{Registry, StageData};

/// What the claim got: the lock's token and the pulled rows, or `None` when another node holds
/// the process.
type Claim = Option<(i64, Result<StageData, RuntimeError>)>;

/// A claim in progress (or done) of the process after the one loading.
pub(crate) struct Ahead {
    process: Process,
    task: JoinHandle<Result<Claim, RuntimeError>>,
}

/// A claim of the process whose turn it is: the process, its lock's token and its rows.
pub(crate) type Claimed = (Process, i64, Result<StageData, RuntimeError>);

impl Ahead {
    /// Starts claiming `process` and pulling its transformed rows.
    pub(crate) fn start(
        opts: &NodeOptions,
        zk: &Client,
        http: &reqwest::Client,
        registry: &Registry,
        process: Process,
    ) -> Self {
        let (opts, zk, http, registry) = (opts.clone(), zk.clone(), http.clone(), registry.clone());
        let p = process.clone();
        let task = tokio::spawn(async move {
            let Some(token) = p.try_lock(&zk, Lock::Load, opts.id).await? else {
                return Ok(None);
            };
            let data = pull(&opts, &zk, &http, &registry, &p, Stage::Transformed).await;
            Ok(Some((token, data)))
        });
        Self { process, task }
    }

    /// The claim, if it is of `next` (id and name: names come back after a window reset);
    /// otherwise the claim is given up (its lock released) and `next` is claimed as usual.
    pub(crate) async fn take(self, zk: &Client, next: Option<(u64, &str)>) -> Option<Claimed> {
        let mine = next == Some((self.process.id, self.process.name.as_str()));
        let claim = match self.task.await {
            Ok(Ok(claim)) => claim,
            Ok(Err(e)) => {
                tracing::debug!(process = self.process.id, error = %e, "claiming ahead failed");
                None
            }
            Err(e) => {
                tracing::debug!(process = self.process.id, error = %e, "claiming ahead ended");
                None
            }
        };
        match claim {
            Some((token, data)) if mine => Some((self.process, token, data)),
            Some(_) => {
                self.process.release(zk, Lock::Load).await;
                None
            }
            None => None,
        }
    }
}
