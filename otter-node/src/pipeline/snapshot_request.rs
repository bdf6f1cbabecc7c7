//! Snapshots on request (`otter-manager snapshot <channel> --tables …`): the manager writes a
//! pending request to `/otter/channel/{cid}/{pid}/snapshot`; the node running the pipeline's
//! Select starts the snapshot in its embedded canal instance (see `canal_server::snapshot`) and
//! answers in the same znode (started with the run id, or refused with the reason). Without a
//! running Select the request waits there until one starts.

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};
use zk_coord::otter_paths;
use zk_coord::{CoordError, ZkError};
use zookeeper_client::Client;

/// Where a request is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RequestState {
    /// Written by the manager, not picked up yet.
    Pending,
    /// The node started the run.
    Started,
    /// The node refused it (`error` says why).
    Refused,
}

/// The request znode's JSON.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotRequest {
    /// Source tables, `schema.table`.
    pub tables: Vec<String>,
    /// Where it is.
    pub state: RequestState,
    /// The run id once started.
    #[serde(default)]
    pub run: Option<String>,
    /// Why it was refused.
    #[serde(default)]
    pub error: Option<String>,
}

fn op(op: &'static str, path: &str, source: ZkError) -> CoordError {
    CoordError::Op {
        op,
        path: path.to_string(),
        source,
    }
}

/// Writes a pending request for pipeline `pid` of channel `cid` (replacing an answered one; a
/// request still pending is replaced too).
pub async fn request(zk: &Client, cid: u32, pid: u32, tables: &[String]) -> Result<(), CoordError> {
    let req = SnapshotRequest {
        tables: tables.to_vec(),
        state: RequestState::Pending,
        run: None,
        error: None,
    };
    let json = serde_json::to_vec(&req).unwrap_or_default();
    zk_coord::put_persistent(zk, &otter_paths::snapshot_request(cid, pid), &json).await
}

/// Reads the request znode, if any.
pub async fn read(
    zk: &Client,
    cid: u32,
    pid: u32,
) -> Result<Option<(SnapshotRequest, i32)>, CoordError> {
    let path = otter_paths::snapshot_request(cid, pid);
    match zk.get_data(&path).await {
        Ok((data, stat)) => serde_json::from_slice(&data)
            .map(|r| Some((r, stat.version)))
            .map_err(|e| CoordError::BadData {
                path,
                reason: e.to_string(),
            }),
        Err(ZkError::NoNode) => Ok(None),
        Err(e) => Err(op("get_data", &path, e)),
    }
}

/// Waits up to `limit` for the request to be answered; the request as it is then.
pub async fn wait_answer(
    zk: &Client,
    cid: u32,
    pid: u32,
    limit: Duration,
) -> Result<Option<SnapshotRequest>, CoordError> {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        let now = read(zk, cid, pid).await?.map(|(r, _)| r);
        let answered = now
            .as_ref()
            .is_some_and(|r| r.state != RequestState::Pending);
        if answered || tokio::time::Instant::now() >= deadline {
            return Ok(now);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// On the node running Select: answers pending requests by starting snapshots in `instance`
/// until `cancel` fires.
pub(crate) async fn serve(
    zk: Client,
    cid: u32,
    pid: u32,
    instance: Arc<canal_server::instance::Instance>,
    cancel: CancellationToken,
) {
    let path = otter_paths::snapshot_request(cid, pid);
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
        let (mut req, version) = match read(&zk, cid, pid).await {
            Ok(Some((r, v))) if r.state == RequestState::Pending => (r, v),
            Ok(_) => continue,
            Err(e) => {
                warn!(channel = cid, pipeline = pid, error = %e, "cannot read the snapshot request");
                continue;
            }
        };
        match instance.start_snapshot(req.tables.clone()) {
            Ok(run) => {
                info!(channel = cid, pipeline = pid, %run, tables = ?req.tables, "snapshot started on request");
                req.state = RequestState::Started;
                req.run = Some(run);
            }
            Err(e) => {
                req.state = RequestState::Refused;
                req.error = Some(e.to_string());
            }
        }
        let json = serde_json::to_vec(&req).unwrap_or_default();
        if let Err(e) = zk.set_data(&path, &json, Some(version)).await {
            warn!(channel = cid, pipeline = pid, error = %e, "cannot answer the snapshot request");
        }
    }
}
