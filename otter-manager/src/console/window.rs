//! A pipeline's process window as the channel page shows it, read from ZooKeeper when the page
//! is viewed: each batch in flight with the stages it finished, the node holding its newest data
//! and the stage locks held on it (by which node), and the termins present (Load's verdicts,
//! `ok: false` being a rollback), which Select removes once it acted on them.

use otter_node::process::{Child, Lock, Produced, Stage, Termin};
use serde::Serialize;
use zk_coord::otter_paths;
use zk_coord::ZkError;
use zookeeper_client::Client;

use crate::ManagerError;

/// One batch in flight.
#[derive(Debug, Clone, Serialize)]
pub struct ProcessRow {
    /// The process id.
    pub id: u64,
    /// The last stage finished (`selected`, `extracted`, `transformed`), or `selecting`.
    pub stage: &'static str,
    /// The node holding that stage's data.
    pub holder: Option<u32>,
    /// Stage locks held: `"load by node 3"`.
    pub locks: Vec<String>,
}

/// One termin.
#[derive(Debug, Clone, Serialize)]
pub struct TerminRow {
    /// The process id.
    pub id: u64,
    /// Whether Load applied the batch (else Select rolls back everything in flight).
    pub ok: bool,
    /// Load's error when not.
    pub error: String,
}

fn zk_err(op: &'static str, path: &str, error: ZkError) -> ManagerError {
    ManagerError::Zk {
        op,
        path: path.to_string(),
        error,
    }
}

async fn children(zk: &Client, path: &str) -> Result<Vec<String>, ManagerError> {
    match zk.list_children(path).await {
        Ok(c) => Ok(c),
        Err(ZkError::NoNode) => Ok(Vec::new()),
        Err(e) => Err(zk_err("list_children", path, e)),
    }
}

async fn data(zk: &Client, path: &str) -> Result<Option<Vec<u8>>, ManagerError> {
    match zk.get_data(path).await {
        Ok((d, _)) => Ok(Some(d)),
        Err(ZkError::NoNode) => Ok(None),
        Err(e) => Err(zk_err("get_data", path, e)),
    }
}

fn lock_stage(l: Lock) -> &'static str {
    match l {
        Lock::Extract => "extract",
        Lock::Transform => "transform",
        Lock::Load => "load",
    }
}

/// The batches in flight of pipeline (`cid`, `pid`), oldest first. A process or child removed
/// while reading is left out.
pub async fn processes(zk: &Client, cid: u32, pid: u32) -> Result<Vec<ProcessRow>, ManagerError> {
    let mut names: Vec<(u64, String)> = children(zk, &otter_paths::processes(cid, pid))
        .await?
        .into_iter()
        .filter_map(|n| otter_paths::process_id(&n).map(|id| (id, n)))
        .collect();
    names.sort();
    let mut out = Vec::with_capacity(names.len());
    for (id, name) in names {
        let path = otter_paths::process(cid, pid, &name);
        let mut row = ProcessRow {
            id,
            stage: "selecting",
            holder: None,
            locks: Vec::new(),
        };
        // An inline process: its Select node did every stage; the node's data says which.
        if otter_paths::is_inline_process(&name) {
            if let Some(d) = data(zk, &path).await? {
                row.stage = Stage::Transformed.name();
                row.holder = serde_json::from_slice::<Produced>(&d).ok().map(|p| p.node);
            }
        }
        let kids: Vec<Child> = children(zk, &path)
            .await?
            .iter()
            .filter_map(|c| Child::parse(c))
            .collect();
        // Index into Stage::ALL of the last stage finished.
        let mut reached: Option<usize> = None;
        for kid in kids {
            let Some(d) = data(zk, &format!("{path}/{}", kid.name())).await? else {
                continue;
            };
            match kid {
                Child::Done(stage) => {
                    let at = Stage::ALL.iter().position(|s| *s == stage);
                    if at > reached {
                        reached = at;
                        row.stage = stage.name();
                        row.holder = serde_json::from_slice::<Produced>(&d).ok().map(|p| p.node);
                    }
                }
                Child::Lock(l) => row.locks.push(format!(
                    "{} by node {}",
                    lock_stage(l),
                    String::from_utf8_lossy(&d).trim()
                )),
            }
        }
        out.push(row);
    }
    Ok(out)
}

/// The termins present for pipeline (`cid`, `pid`), oldest first.
pub async fn termins(zk: &Client, cid: u32, pid: u32) -> Result<Vec<TerminRow>, ManagerError> {
    let mut ids: Vec<u64> = children(zk, &otter_paths::termins(cid, pid))
        .await?
        .iter()
        .filter_map(|n| otter_paths::process_id(n))
        .collect();
    ids.sort_unstable();
    let mut out = Vec::with_capacity(ids.len());
    for id in ids {
        let Some(d) = data(zk, &otter_paths::termin(cid, pid, id)).await? else {
            continue;
        };
        match serde_json::from_slice::<Termin>(&d) {
            Ok(t) => out.push(TerminRow {
                id,
                ok: t.ok,
                error: t.error,
            }),
            Err(e) => out.push(TerminRow {
                id,
                ok: false,
                error: format!("unreadable termin: {e}"),
            }),
        }
    }
    Ok(out)
}
