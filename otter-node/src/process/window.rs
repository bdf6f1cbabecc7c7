//! The window of a pipeline: opening a process for a Select batch, discarding everything in
//! flight when a new mainstem starts, and the termins Select reads and deletes.

use zk_coord::otter_paths;
use zookeeper_client::{Client, CreateMode, MultiWriteError, MultiWriteResult};

use crate::process::{Lock, Process, Produced, Termin};
use crate::runtime::error::RuntimeError;

/// Discards every process and termin of pipeline (`cid`, `pid`) and leaves their parents empty
/// (a new mainstem redoes everything in flight from the acked cursor).
pub async fn reset(zk: &Client, cid: u32, pid: u32) -> Result<(), RuntimeError> {
    for dir in [
        otter_paths::processes(cid, pid),
        otter_paths::termins(cid, pid),
    ] {
        zk_coord::delete_recursive(zk, &dir).await?;
        zk_coord::ensure_path(zk, &dir).await?;
    }
    Ok(())
}

/// What [`Process::open`] creates: the process of a batch staged through the workers, or of one
/// its Select node extracted and transformed itself.
#[derive(Debug, Clone, Copy)]
pub enum Opening<'a> {
    /// A `p{id}` process: its stages run on the workers, starting with Select's `selected`.
    Staged,
    /// A `t{id}` process holding `transformed`, where Load gets the rows: one write instead of
    /// two (the node and its three stage children).
    Inline {
        /// The record of the transformed rows.
        transformed: &'a Produced,
        /// Creates Load's `lock` (holding this node id) in the same write, on the session the
        /// process is opened on, which must be the Load worker's: the batch is claimed for that
        /// worker from the start (see `crate::pipeline::preclaim`).
        claim_for: Option<u32>,
    },
}

impl Process {
    /// Opens process `id` at the end of the window, as `opening` says, and deletes in the same
    /// write the termins in `acked` (Select acked them: one write per batch fewer than deleting
    /// them on their own); `acked` is emptied once they are gone. Returns the process and, when
    /// Load's lock was created with it, the lock's creation zxid (Load's fencing token, as
    /// [`Process::try_lock`] returns it).
    ///
    /// The name is not ZooKeeper's sequence but `id` ([`otter_paths::process_name`]): Select
    /// numbers its window itself. A name taken already (another node's Select writing into this
    /// window) fails the open.
    pub async fn open(
        zk: &Client,
        cid: u32,
        pid: u32,
        id: u64,
        opening: Opening<'_>,
        acked: &mut Vec<u64>,
    ) -> Result<(Process, Option<i64>), RuntimeError> {
        let inline = matches!(opening, Opening::Inline { .. });
        let process = Process::new(cid, pid, id, otter_paths::process_name(inline, id));
        let (data, claim_for) = match opening {
            Opening::Staged => (Vec::new(), None),
            Opening::Inline {
                transformed,
                claim_for,
            } => (transformed.to_json(), claim_for),
        };
        let path = process.path();
        let persistent = CreateMode::Persistent.with_acls(zk_coord::acl::private(zk));
        let ephemeral = CreateMode::Ephemeral.with_acls(zk_coord::acl::private(zk));
        let lock = process.child(Lock::Load);
        let multi_error = |source| RuntimeError::Multi {
            path: path.clone(),
            source,
        };
        // The termins are left out of the second try when one was gone already (the window was
        // reset by another mainstem): they are forgotten.
        for with_termins in [true, false] {
            let mut multi = zk.new_multi_writer();
            multi
                .add_create(&path, &data, &persistent)
                .map_err(RuntimeError::zk("multi", path.clone()))?;
            if let Some(nid) = claim_for {
                // The lock's creation zxid is the token. ZooKeeper (3.8) answers a create in a
                // multi without a stat, a set with one: writing the lock's data again in the
                // same transaction gives the token without a read after the write.
                let nid = nid.to_string();
                multi
                    .add_create(&lock, nid.as_bytes(), &ephemeral)
                    .and_then(|()| multi.add_set_data(&lock, nid.as_bytes(), Some(0)))
                    .map_err(RuntimeError::zk("multi", lock.clone()))?;
            }
            let first_termin = 1 + 2 * usize::from(claim_for.is_some());
            if with_termins {
                add_termin_deletes(&mut multi, cid, pid, acked)
                    .map_err(RuntimeError::zk("multi", otter_paths::termins(cid, pid)))?;
            }
            match multi.commit().await {
                Ok(results) => {
                    if with_termins {
                        acked.clear();
                    }
                    let token = match (claim_for, results.into_iter().nth(2)) {
                        (None, _) => None,
                        (Some(_), Some(MultiWriteResult::SetData { stat })) if stat.czxid > 0 => {
                            Some(stat.czxid)
                        }
                        // Every server answers a set with its stat; without one there is no
                        // token, and Select starts over (as for any failed open).
                        (Some(_), _) => {
                            return Err(RuntimeError::UnexpectedData(
                                "multi answered without the Load lock's stat",
                            ))
                        }
                    };
                    return Ok((process, token));
                }
                Err(MultiWriteError::OperationFailed {
                    index,
                    source: zookeeper_client::Error::NoNode,
                }) if with_termins && index >= first_termin => acked.clear(),
                Err(e) => return Err(multi_error(e)),
            }
        }
        Err(RuntimeError::UnexpectedData("process create"))
    }

    /// Whether every stage of the process was done by its Select node ([`Opening::Inline`]).
    pub fn is_inline(&self) -> bool {
        otter_paths::is_inline_process(&self.name)
    }
}

/// Adds the deletion of the termins `ids` to `multi` (fails only on a path the client refuses).
fn add_termin_deletes(
    multi: &mut zookeeper_client::MultiWriter<'_>,
    cid: u32,
    pid: u32,
    ids: &[u64],
) -> Result<(), zookeeper_client::Error> {
    ids.iter()
        .try_for_each(|id| multi.add_delete(&otter_paths::termin(cid, pid, *id), None))
}

/// Reads `termin/{id}` of pipeline (`cid`, `pid`).
pub async fn read_termin(zk: &Client, cid: u32, pid: u32, id: u64) -> Result<Termin, RuntimeError> {
    let path = otter_paths::termin(cid, pid, id);
    let (data, _) = crate::process::read_seen(zk, &path)
        .await
        .map_err(RuntimeError::zk("get_data", path))?;
    serde_json::from_slice(&data).map_err(|source| RuntimeError::Json {
        what: "termin",
        source,
    })
}

/// Deletes the termins in `ids` of pipeline (`cid`, `pid`) (Select acked them) in one write;
/// `ids` is emptied. A termin already gone is no error.
pub async fn delete_termins(
    zk: &Client,
    cid: u32,
    pid: u32,
    ids: &mut Vec<u64>,
) -> Result<(), RuntimeError> {
    if ids.is_empty() {
        return Ok(());
    }
    let mut multi = zk.new_multi_writer();
    add_termin_deletes(&mut multi, cid, pid, ids)
        .map_err(RuntimeError::zk("multi", otter_paths::termins(cid, pid)))?;
    match multi.commit().await {
        Ok(_) => {}
        Err(MultiWriteError::OperationFailed {
            source: zookeeper_client::Error::NoNode,
            ..
        }) => {
            for id in ids.iter() {
                let path = otter_paths::termin(cid, pid, *id);
                match zk.delete(&path, None).await {
                    Ok(()) | Err(zookeeper_client::Error::NoNode) => {}
                    Err(e) => return Err(RuntimeError::zk("delete", path)(e)),
                }
            }
        }
        Err(source) => {
            return Err(RuntimeError::Multi {
                path: otter_paths::termins(cid, pid),
                source,
            })
        }
    }
    ids.clear();
    Ok(())
}
