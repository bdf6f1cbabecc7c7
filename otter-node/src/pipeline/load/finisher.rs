//! Writing the termins of loaded batches behind Load, in order, several in one transaction.
//!
//! Load does not wait for ZooKeeper between batches: a loaded batch's termin (with the removal
//! of its process) is queued here and written while the next batch loads. Termins that queue up
//! while a write is in flight go together in the next one (one round trip for all of them, which
//! across a WAN is what bounds Load's batches per second otherwise). Order is kept: a group is
//! written only after the previous group is, and all of a group or none of it is; a failed write
//! ends Load's loop with every batch of it and after it still in the window, so they are loaded
//! again in order (re-applying a batch in order leaves the target as it was).

use tokio::task::JoinHandle;
use zookeeper_client::Client;

use crate::process::{Process, Termin};
use crate::runtime::error::RuntimeError;

/// A group's write in flight: the ids in it and the task writing them.
type Writing = (Vec<u64>, JoinHandle<Result<(), RuntimeError>>);

/// The queue and the write in flight.
pub(crate) struct Finisher {
    zk: Client,
    queued: Vec<(Process, Termin)>,
    writing: Option<Writing>,
}

impl Finisher {
    /// An empty queue writing with `zk`.
    pub(crate) fn new(zk: Client) -> Self {
        Self {
            zk,
            queued: Vec::new(),
            writing: None,
        }
    }

    /// Whether process `id` is queued or being finished.
    pub(crate) fn holds(&self, id: u64) -> bool {
        self.queued.iter().any(|(p, _)| p.id == id)
            || self
                .writing
                .as_ref()
                .is_some_and(|(ids, _)| ids.contains(&id))
    }

    /// Whether nothing is queued or being written.
    pub(crate) fn is_idle(&self) -> bool {
        self.queued.is_empty() && self.writing.is_none()
    }

    /// Queues a loaded batch's termin; written at once unless a write is in flight.
    pub(crate) async fn push(
        &mut self,
        process: Process,
        termin: Termin,
    ) -> Result<(), RuntimeError> {
        self.queued.push((process, termin));
        self.poll().await
    }

    /// Collects the write in flight if it is done (its failure is returned), and starts the next
    /// group if any is queued.
    pub(crate) async fn poll(&mut self) -> Result<(), RuntimeError> {
        if self
            .writing
            .as_ref()
            .is_some_and(|(_, task)| task.is_finished())
        {
            self.collect().await?;
        }
        if self.writing.is_none() && !self.queued.is_empty() {
            let group = std::mem::take(&mut self.queued);
            let ids = group.iter().map(|(p, _)| p.id).collect();
            let zk = self.zk.clone();
            self.writing = Some((
                ids,
                tokio::spawn(async move { Process::finish_all(&zk, &group).await }),
            ));
        }
        Ok(())
    }

    /// Waits until everything queued is written.
    pub(crate) async fn flush(&mut self) -> Result<(), RuntimeError> {
        while !self.is_idle() {
            self.collect().await?;
            self.poll().await?;
        }
        Ok(())
    }

    async fn collect(&mut self) -> Result<(), RuntimeError> {
        match self.writing.take() {
            Some((_, task)) => task.await.map_err(RuntimeError::StageTask)?,
            None => Ok(()),
        }
    }
}
