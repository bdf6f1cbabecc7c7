//! The window of a pipeline: opening a process for a Select batch, discarding everything in
//! flight when a new mainstem starts, and the termins Select reads and deletes.

use zk_coord::otter_paths;
use zookeeper_client::{Client, CreateMode, MultiWriteError, MultiWriteResult};

use crate::process::{Process, Produced, Termin};
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

impl Process {
    /// Opens a new process at the end of the window (a persistent-sequential `p{seq}` node), and
    /// deletes in the same write the termins in `acked` (Select acked them; see
    /// [`Process::open_inline`]).
    pub async fn open(
        zk: &Client,
        cid: u32,
        pid: u32,
        acked: &mut Vec<u64>,
    ) -> Result<Process, RuntimeError> {
        open_with(
            zk,
            cid,
            pid,
            otter_paths::process_prefix(cid, pid),
            &[],
            acked,
        )
        .await
    }

    /// Opens a process whose every stage is done already (a `t{seq}` node: its Select node
    /// extracted and transformed the batch itself), holding `transformed`, where Load gets the
    /// rows. One write instead of two: the node and its three stage children. The termins in
    /// `acked` are deleted in the same write (one write per batch fewer: Select need not
    /// delete each termin on its own); `acked` is emptied once they are gone.
    pub async fn open_inline(
        zk: &Client,
        cid: u32,
        pid: u32,
        transformed: &Produced,
        acked: &mut Vec<u64>,
    ) -> Result<Process, RuntimeError> {
        let prefix = otter_paths::inline_process_prefix(cid, pid);
        open_with(zk, cid, pid, prefix, &transformed.to_json(), acked).await
    }

    /// Whether every stage of the process was done by its Select node ([`Process::open_inline`]).
    pub fn is_inline(&self) -> bool {
        otter_paths::is_inline_process(&self.name)
    }
}

async fn open_with(
    zk: &Client,
    cid: u32,
    pid: u32,
    prefix: String,
    data: &[u8],
    acked: &mut Vec<u64>,
) -> Result<Process, RuntimeError> {
    let seq_opts = CreateMode::PersistentSequential.with_acls(zk_coord::acl::private(zk));
    if !acked.is_empty() {
        let mut multi = zk.new_multi_writer();
        multi
            .add_create(&prefix, data, &seq_opts)
            .map_err(RuntimeError::zk("multi", prefix.clone()))?;
        add_termin_deletes(&mut multi, cid, pid, acked)
            .map_err(RuntimeError::zk("multi", otter_paths::termins(cid, pid)))?;
        match multi.commit().await {
            Ok(results) => {
                acked.clear();
                return match results.into_iter().next() {
                    Some(MultiWriteResult::Create { path, .. }) => process_at(cid, pid, &path)
                        .ok_or(RuntimeError::UnexpectedData("process create")),
                    _ => Err(RuntimeError::UnexpectedData("process create")),
                };
            }
            // A termin already gone (the window was reset by another mainstem): the process
            // is created alone below, and the termins are forgotten.
            Err(MultiWriteError::OperationFailed {
                index,
                source: zookeeper_client::Error::NoNode,
            }) if index > 0 => acked.clear(),
            Err(source) => {
                return Err(RuntimeError::Multi {
                    path: prefix,
                    source,
                })
            }
        }
    }
    let (_, seq) = zk
        .create(&prefix, data, &seq_opts)
        .await
        .map_err(RuntimeError::zk("create", prefix.clone()))?;
    let name = format!("{}{seq}", &prefix[prefix.len() - 1..]);
    Ok(Process::new(cid, pid, seq.into_i64() as u64, name))
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

/// The process at `path`, a znode just created under the window.
fn process_at(cid: u32, pid: u32, path: &str) -> Option<Process> {
    let name = path.rsplit('/').next()?;
    let id = otter_paths::process_id(name)?;
    Some(Process::new(cid, pid, id, name))
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
