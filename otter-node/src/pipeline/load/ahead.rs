//! Claiming the batches after the one loading early: while one loads, or while the next ones are
//! still being transformed, their Load locks are taken and (once each is transformed) its rows
//! pulled in tasks of their own, so Load's strictly serial path does not wait for those
//! ZooKeeper and HTTP round trips (across a WAN, one round trip each).
//!
//! Safe with the fencing: the locks of one round are sent together, in process order, on Load's
//! session, and ZooKeeper applies a session's requests in the order sent, so their creation zxids
//! (the loads' tokens) grow with the process order; each round claims only processes after every
//! process claimed before. A load still starts only after the previous one committed. Claims that
//! are not next when their turn comes (the window was reset, a load failed) are given up: their
//! tasks release the locks they hold.

use std::collections::VecDeque;
use std::time::Duration;

use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use zookeeper_client::Client;

use crate::pipeline::StageContext;
use crate::process::view;
use crate::process::{Lock, Process, Stage};
use crate::runtime::error::RuntimeError;
use crate::runtime::pull::{pull, Claim};
use crate::runtime::registry::StageData;

/// What a claim got: the lock's token and the pulled rows, or `None` when another node holds
/// the process (or the claim was given up).
type Outcome = Option<(i64, Result<StageData, RuntimeError>)>;

/// A claim of the process whose turn it is: the process, its lock's token and its rows.
pub(crate) type Claimed = (Process, i64, Result<StageData, RuntimeError>);

struct Entry {
    process: Process,
    task: JoinHandle<Result<Outcome, RuntimeError>>,
}

/// The claims made ahead, in process order.
pub(crate) struct Ahead {
    queue: VecDeque<Entry>,
    /// Cancels every claim's wait (the claims are given up).
    give_up: CancellationToken,
}

impl Drop for Ahead {
    /// The loop ends: the claims' tasks release their locks instead of waiting on.
    fn drop(&mut self) {
        self.give_up.cancel();
    }
}

impl Ahead {
    /// No claims.
    pub(crate) fn new() -> Self {
        Self {
            queue: VecDeque::new(),
            give_up: CancellationToken::new(),
        }
    }

    /// The last process claimed ahead, if any.
    pub(crate) fn last(&self) -> Option<u64> {
        self.queue.back().map(|e| e.process.id)
    }

    /// Starts claiming `processes` (in process order, each after every process claimed before)
    /// and, once each is transformed (it may not be yet: Load's lock does not stop Transform),
    /// pulling its rows. The locks are created on `zk` (Load's session), the rows' records read
    /// on `reader`.
    pub(crate) fn claim(
        &mut self,
        ctx: &StageContext,
        zk: &Client,
        reader: &Client,
        http: &reqwest::Client,
        processes: Vec<Process>,
    ) {
        if processes.is_empty() {
            return;
        }
        let nid = ctx.opts.id;
        let mut results = Vec::with_capacity(processes.len());
        let mut answers = Vec::with_capacity(processes.len());
        for _ in &processes {
            let (tx, rx) = oneshot::channel();
            results.push(tx);
            answers.push(rx);
        }
        // One task sends every lock request before awaiting any (the client sends a request when
        // its method is called, and `join_all` first polls the futures in order).
        let (claim_zk, to_claim) = (zk.clone(), processes.clone());
        tokio::spawn(async move {
            let claims = futures::future::join_all(
                to_claim
                    .iter()
                    .map(|p| p.try_lock(&claim_zk, Lock::Load, nid)),
            )
            .await;
            for (tx, r) in results.into_iter().zip(claims) {
                let _ = tx.send(r);
            }
        });
        for (p, answer) in processes.into_iter().zip(answers) {
            let (opts, registry, stop) = (ctx.opts.clone(), ctx.registry.clone(), ctx.stop.clone());
            let (zk, reader, http) = (zk.clone(), reader.clone(), http.clone());
            let give_up = self.give_up.clone();
            let mut window = ctx.view.subscribe();
            let process = p.clone();
            let task = tokio::spawn(async move {
                let token = match answer.await {
                    Ok(Ok(Some(token))) => token,
                    Ok(Ok(None)) | Err(_) => return Ok(None),
                    Ok(Err(e)) => return Err(e),
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
                            let changed = tokio::select! {
                                _ = give_up.cancelled() => None,
                                c = view::changed(&mut window, &stop, Duration::from_secs(1)) => c,
                            };
                            if changed.is_none() {
                                p.release(&zk, Lock::Load).await;
                                return Ok(None);
                            }
                        }
                    }
                }
                if give_up.is_cancelled() {
                    p.release(&zk, Lock::Load).await;
                    return Ok(None);
                }
                let data = pull(
                    &opts,
                    &reader,
                    &http,
                    &registry,
                    &p,
                    Stage::Transformed,
                    Claim::Held,
                )
                .await;
                Ok(Some((token, data)))
            });
            self.queue.push_back(Entry { process, task });
        }
    }

    /// The first claim, if it is of `next` (id and name: names come back after a window reset);
    /// otherwise every claim is given up (their locks released) and `next` is claimed as usual.
    pub(crate) async fn take(&mut self, zk: &Client, next: Option<(u64, &str)>) -> Option<Claimed> {
        let first = self.queue.pop_front()?;
        if next == Some((first.process.id, first.process.name.as_str())) {
            return match first.task.await {
                Ok(Ok(Some((token, data)))) => Some((first.process, token, data)),
                Ok(Ok(None)) => None,
                Ok(Err(e)) => {
                    tracing::debug!(process = first.process.id, error = %e, "claiming ahead failed");
                    None
                }
                Err(e) => {
                    tracing::debug!(process = first.process.id, error = %e, "claiming ahead ended");
                    None
                }
            };
        }
        self.give_up.cancel();
        for e in std::iter::once(first).chain(self.queue.drain(..)) {
            // A claim done and pulled holds its lock still: released here.
            if let Ok(Ok(Some(_))) = e.task.await {
                e.process.release(zk, Lock::Load).await;
            }
        }
        self.give_up = CancellationToken::new();
        None
    }
}
