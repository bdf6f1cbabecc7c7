//! The window of a pipeline: opening a process for a Select batch, discarding everything in
//! flight when a new mainstem starts, and the termins Select reads and deletes.

use zk_coord::otter_paths;
use zookeeper_client::{Client, CreateMode};

use crate::process::{Process, Termin};
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
    /// Opens a new process at the end of the window (a persistent-sequential `p{seq}` node).
    pub async fn open(zk: &Client, cid: u32, pid: u32) -> Result<Process, RuntimeError> {
        let prefix = otter_paths::process_prefix(cid, pid);
        let seq_opts = CreateMode::PersistentSequential.with_acls(zk_coord::acl::private(zk));
        let (_, seq) = zk
            .create(&prefix, &[], &seq_opts)
            .await
            .map_err(RuntimeError::zk("create", prefix))?;
        Ok(Process::new(
            cid,
            pid,
            seq.into_i64() as u64,
            format!("p{seq}"),
        ))
    }
}

/// Reads `termin/{id}` of pipeline (`cid`, `pid`).
pub async fn read_termin(zk: &Client, cid: u32, pid: u32, id: u64) -> Result<Termin, RuntimeError> {
    let path = otter_paths::termin(cid, pid, id);
    let (data, _) = zk
        .get_data(&path)
        .await
        .map_err(RuntimeError::zk("get_data", path))?;
    serde_json::from_slice(&data).map_err(|source| RuntimeError::Json {
        what: "termin",
        source,
    })
}

/// Deletes `termin/{id}` of pipeline (`cid`, `pid`) once Select acked it.
pub async fn delete_termin(zk: &Client, cid: u32, pid: u32, id: u64) -> Result<(), RuntimeError> {
    let path = otter_paths::termin(cid, pid, id);
    zk.delete(&path, None)
        .await
        .map_err(RuntimeError::zk("delete", path))
}
