//! Claiming the next batch early: while the current one loads, or while it is still being
//! transformed, its Load lock is taken and (once transformed) its rows pulled in a task of their
//! own, so Load's strictly serial path does not wait for those ZooKeeper and HTTP round trips
//! (across a WAN, one round trip each).
//!
//! Safe with the fencing: the next lock is created after the current one, so its creation zxid
//! (the next load's token) is larger; and the next load still starts only after the current one
//! committed. A claim that is not the next to load when its turn comes (the window was reset,
//! the current load failed) is released. Should the loop end with a claim pending, the lock goes
//! with the worker's ZooKeeper session once the task is done with it.

use std::time::Duration;

use tokio::task::JoinHandle;
use zookeeper_client::Client;

use crate::pipeline::StageContext;
use crate::process::view;
use crate::process::{Lock, Process, Stage};
use crate::runtime::error::RuntimeError;
use crate::runtime::pull::pull;
use crate::runtime::registry::StageData;

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
    /// Starts claiming `process` and, once it is transformed (it may not be yet: Load's lock
    /// does not stop Transform), pulling its rows. The lock is created on `zk` (Load's session),
    /// the rows' record read on `reader`.
    pub(crate) fn start(
        ctx: &StageContext,
        zk: &Client,
        reader: &Client,
        http: &reqwest::Client,
        process: Process,
    ) -> Self {
        let (opts, registry, stop) = (ctx.opts.clone(), ctx.registry.clone(), ctx.stop.clone());
        let (zk, reader, http) = (zk.clone(), reader.clone(), http.clone());
        let mut window = ctx.view.subscribe();
        let p = process.clone();
        let task = tokio::spawn(async move {
            let Some(token) = p.try_lock(&zk, Lock::Load, opts.id).await? else {
                return Ok(None);
            };
            loop {
                let transformed = window
                    .borrow_and_update()
                    .processes
                    .get(&p.id)
                    .filter(|n| n.name == p.name)
                    .map(|n| n.has(Stage::Transformed));
                match transformed {
                    Some(true) => break,
                    // Discarded (a window reset): the lock went with it.
                    None => return Ok(None),
                    Some(false) => {
                        if view::changed(&mut window, &stop, Duration::from_secs(1))
                            .await
                            .is_none()
                        {
                            p.release(&zk, Lock::Load).await;
                            return Ok(None);
                        }
                    }
                }
            }
            let data = pull(&opts, &reader, &http, &registry, &p, Stage::Transformed).await;
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
