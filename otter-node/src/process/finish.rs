//! The end of a process: a stage's output written with the release of its lock, and a loaded
//! process's termin written with the removal of the process.

use std::time::Duration;

use zookeeper_client::{Client, CreateMode, MultiWriteError};

use crate::process::{Child, Lock, Process, Produced, Stage, Termin};
use crate::runtime::error::RuntimeError;

/// What [`Process::complete`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Completed {
    /// The stage-done child is written and the lock released in one transaction.
    Written,
    /// The process was discarded meanwhile (a new mainstem redoes it); the lock is gone with it.
    Discarded,
    /// The stage was done already (a lock taken over from a node that died after writing it);
    /// the lock is still held.
    AlreadyDone,
}

fn persistent(zk: &Client) -> zookeeper_client::CreateOptions<'static> {
    CreateMode::Persistent.with_acls(zk_coord::acl::private(zk))
}

impl Process {
    /// Writes the stage-done child of `stage` (for Select, which holds no lock).
    pub async fn write_done(
        &self,
        zk: &Client,
        stage: Stage,
        produced: &Produced,
    ) -> Result<(), RuntimeError> {
        let path = self.child(stage);
        zk.create(&path, &produced.to_json(), &persistent(zk))
            .await
            .map(|_| ())
            .map_err(RuntimeError::zk("create", path))
    }

    /// Writes the stage-done children of several stages in one transaction (one write, one fsync
    /// on the ensemble): a node that ran those stages itself, in a row.
    pub async fn write_stages(
        &self,
        zk: &Client,
        stages: &[(Stage, Produced)],
    ) -> Result<(), RuntimeError> {
        let first = stages
            .first()
            .map(|(s, _)| self.child(*s))
            .unwrap_or_else(|| self.path());
        let mut multi = zk.new_multi_writer();
        for (stage, produced) in stages {
            let path = self.child(*stage);
            multi
                .add_create(&path, &produced.to_json(), &persistent(zk))
                .map_err(RuntimeError::zk("multi", path))?;
        }
        multi
            .commit()
            .await
            .map(|_| ())
            .map_err(|source| RuntimeError::Multi {
                path: first,
                source,
            })
    }

    /// Writes the stage-done child of `stage` and deletes `lock` in one transaction: one write
    /// (and one fsync on the ensemble) instead of two.
    pub async fn complete(
        &self,
        zk: &Client,
        stage: Stage,
        produced: &Produced,
        lock: Lock,
    ) -> Result<Completed, RuntimeError> {
        let output = self.child(stage);
        let multi_error = |source| RuntimeError::Multi {
            path: output.clone(),
            source,
        };
        let mut multi = zk.new_multi_writer();
        multi
            .add_create(&output, &produced.to_json(), &persistent(zk))
            .and_then(|()| multi.add_delete(&self.child(lock), None))
            .map_err(RuntimeError::zk("multi", output.clone()))?;
        match multi.commit().await {
            Ok(_) => Ok(Completed::Written),
            Err(MultiWriteError::OperationFailed {
                index: 0,
                source: zookeeper_client::Error::NoNode,
            }) => Ok(Completed::Discarded),
            Err(MultiWriteError::OperationFailed {
                index: 0,
                source: zookeeper_client::Error::NodeExists,
            }) => Ok(Completed::AlreadyDone),
            Err(e) => Err(multi_error(e)),
        }
    }

    /// Ends a loaded process: writes its termin and removes the process with its children in
    /// one transaction (one write instead of six). If the children changed meanwhile (a worker's
    /// lock appeared), it falls back to writing the termin and [`Process::remove`]. An inline
    /// process has no child but Load's lock, so its children are not listed first.
    pub async fn finish(&self, zk: &Client, termin: &Termin) -> Result<(), RuntimeError> {
        let (proc_path, termin_path) = (self.path(), self.termin_path());
        let termin = termin.to_json();
        let children = if self.is_inline() {
            Ok(vec![Lock::Load.name().to_string()])
        } else {
            zk.list_children(&proc_path).await
        };
        if let Ok(children) = children {
            let mut multi = zk.new_multi_writer();
            let staged = multi
                .add_create(&termin_path, &termin, &persistent(zk))
                .and_then(|()| {
                    children
                        .iter()
                        .try_for_each(|c| multi.add_delete(&format!("{proc_path}/{c}"), None))
                })
                .and_then(|()| multi.add_delete(&proc_path, None));
            if staged.is_ok() && multi.commit().await.is_ok() {
                return Ok(());
            }
        }
        match zk.create(&termin_path, &termin, &persistent(zk)).await {
            Ok(_) | Err(zookeeper_client::Error::NodeExists) => {}
            Err(e) => return Err(RuntimeError::zk("create", termin_path)(e)),
        }
        self.remove(zk).await
    }

    /// Ends several loaded processes, in order, in one transaction (one round trip for all);
    /// when that fails (a child changed meanwhile), one after the other with [`Process::finish`],
    /// stopping at the first failure.
    pub async fn finish_all(zk: &Client, group: &[(Process, Termin)]) -> Result<(), RuntimeError> {
        if let [(p, t)] = group {
            return p.finish(zk, t).await;
        }
        let mut multi = zk.new_multi_writer();
        let mut staged = Ok(());
        for (p, t) in group {
            let children = if p.is_inline() {
                Ok(vec![Lock::Load.name().to_string()])
            } else {
                zk.list_children(&p.path()).await
            };
            let Ok(children) = children else {
                staged = Err(());
                break;
            };
            let proc_path = p.path();
            let added = multi
                .add_create(&p.termin_path(), &t.to_json(), &persistent(zk))
                .and_then(|()| {
                    children
                        .iter()
                        .try_for_each(|c| multi.add_delete(&format!("{proc_path}/{c}"), None))
                })
                .and_then(|()| multi.add_delete(&proc_path, None));
            if added.is_err() {
                staged = Err(());
                break;
            }
        }
        if staged.is_ok() && multi.commit().await.is_ok() {
            return Ok(());
        }
        for (p, t) in group {
            p.finish(zk, t).await?;
        }
        Ok(())
    }

    /// Removes a finished process. Stage inputs go first (`selected`, then `extracted`, then
    /// `transformed`) so no stage can claim it any more; a worker that claimed it just before
    /// leaves a lock or output child behind for a moment, so removal retries until the node is
    /// gone.
    pub async fn remove(&self, zk: &Client) -> Result<(), RuntimeError> {
        let path = self.path();
        let order = |c: &String| match Child::parse(c) {
            Some(Child::Done(Stage::Selected)) => 0,
            Some(Child::Done(Stage::Extracted)) => 1,
            Some(Child::Done(Stage::Transformed)) => 2,
            _ => 3,
        };
        for _ in 0..50 {
            let mut children = match zk.list_children(&path).await {
                Ok(c) => c,
                Err(zookeeper_client::Error::NoNode) => return Ok(()),
                Err(e) => return Err(RuntimeError::zk("list_children", path)(e)),
            };
            children.sort_by_key(order);
            for c in children {
                let child = format!("{path}/{c}");
                match zk.delete(&child, None).await {
                    Ok(()) | Err(zookeeper_client::Error::NoNode) => {}
                    Err(e) => return Err(RuntimeError::zk("delete", child)(e)),
                }
            }
            match zk.delete(&path, None).await {
                Ok(()) | Err(zookeeper_client::Error::NoNode) => return Ok(()),
                Err(zookeeper_client::Error::NotEmpty) => {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                Err(e) => return Err(RuntimeError::zk("delete", path)(e)),
            }
        }
        Err(RuntimeError::ChildrenKeepAppearing { path })
    }
}
