//! Writing the termins of loaded batches behind Load, in order, several in one transaction.
//!
//! Load does not wait for ZooKeeper between batches: a loaded batch's termin (with the removal
//! of its process) goes to a task of its own that writes it while the next batch loads. Termins
//! that queue up while a write is in flight go together in the next one (one round trip for all
//! of them, which across a WAN is what bounds Load's batches per second otherwise), and the next
//! write starts as soon as the previous one is done, whatever Load is doing. Order is kept: a
//! group is written only after the previous group is, and all of a group or none of it is. After
//! a failed write nothing more is written (a later termin without the earlier one would let the
//! earlier batch be loaded again after a later one): Load's loop ends with every batch from the
//! failed one on still in the window, so they are loaded again in order (re-applying a batch in
//! order leaves the target as it was).

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

use tokio::sync::{mpsc, oneshot, watch};
use zookeeper_client::Client;

use crate::process::{Process, Termin};

/// Writing the termins failed; the batches are loaded again.
#[derive(Debug, Clone, thiserror::Error)]
#[error("finishing loaded processes: {0}")]
pub struct FinishError(pub String);

enum Item {
    Loaded(Process, Termin),
    Flush(oneshot::Sender<()>),
}

/// The queue of termins to write, and its writer task.
pub(crate) struct Finisher {
    tx: mpsc::UnboundedSender<Item>,
    /// Ids queued or being written.
    pending: Arc<Mutex<BTreeSet<u64>>>,
    /// The first failed write's error, once one failed.
    failed: watch::Receiver<Option<String>>,
}

impl Finisher {
    /// An empty queue writing with `zk`. (Unbounded: Load queues at most the pipeline's window.)
    pub(crate) fn new(zk: Client) -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        let pending = Arc::new(Mutex::new(BTreeSet::new()));
        let (failed_tx, failed) = watch::channel(None);
        tokio::spawn(write(zk, rx, pending.clone(), failed_tx));
        Self {
            tx,
            pending,
            failed,
        }
    }

    /// Whether process `id` is queued or being finished.
    pub(crate) fn holds(&self, id: u64) -> bool {
        lock(&self.pending).contains(&id)
    }

    /// Whether nothing is queued or being written.
    pub(crate) fn is_idle(&self) -> bool {
        lock(&self.pending).is_empty()
    }

    /// Queues a loaded batch's termin.
    pub(crate) fn push(&mut self, process: Process, termin: Termin) -> Result<(), FinishError> {
        self.poll()?;
        lock(&self.pending).insert(process.id);
        self.tx
            .send(Item::Loaded(process, termin))
            .map_err(|_| FinishError("the termin writer ended".into()))
    }

    /// The failure of a write, if one failed.
    pub(crate) fn poll(&self) -> Result<(), FinishError> {
        match self.failed.borrow().as_ref() {
            Some(e) => Err(FinishError(e.clone())),
            None => Ok(()),
        }
    }

    /// Waits until everything queued is written.
    pub(crate) async fn flush(&mut self) -> Result<(), FinishError> {
        let (done, wait) = oneshot::channel();
        if self.tx.send(Item::Flush(done)).is_ok() {
            let _ = wait.await;
        }
        self.poll()
    }
}

fn lock(m: &Mutex<BTreeSet<u64>>) -> std::sync::MutexGuard<'_, BTreeSet<u64>> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

async fn write(
    zk: Client,
    mut rx: mpsc::UnboundedReceiver<Item>,
    pending: Arc<Mutex<BTreeSet<u64>>>,
    failed: watch::Sender<Option<String>>,
) {
    let mut broken = false;
    while let Some(first) = rx.recv().await {
        let mut items = vec![first];
        while let Ok(more) = rx.try_recv() {
            items.push(more);
        }
        let mut group = Vec::new();
        let mut flushes = Vec::new();
        for item in items {
            match item {
                Item::Loaded(p, t) => group.push((p, t)),
                Item::Flush(done) => flushes.push(done),
            }
        }
        if !broken && !group.is_empty() {
            match Process::finish_all(&zk, &group).await {
                Ok(()) => {
                    let mut g = lock(&pending);
                    for (p, _) in &group {
                        g.remove(&p.id);
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "cannot write the termins; the batches are loaded again");
                    broken = true;
                    let _ = failed.send(Some(e.to_string()));
                }
            }
        }
        for done in flushes {
            let _ = done.send(());
        }
    }
}
