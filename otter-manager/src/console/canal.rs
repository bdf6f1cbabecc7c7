//! Canal destinations as ZooKeeper shows them (running server, standbys, clients' cursors), and
//! releasing one to a standby the way Canal's admin does: `"active":false` written into the
//! running node, which makes its owner hand over (see `zk_coord::election`).

use serde::Serialize;
use zk_coord::paths;
use zk_coord::ZkError;
use zookeeper_client::Client;

use crate::ManagerError;

/// One subscribed client.
#[derive(Debug, Clone, Serialize)]
pub struct ClientView {
    /// Canal client id.
    pub id: String,
    /// The stored cursor (LogPosition JSON), if any.
    pub cursor: Option<String>,
    /// How far the cursor is behind now, seconds: now − the binlog time of the position it
    /// acked (`postion.timestamp`); `None` without a cursor or timestamp.
    pub lag_s: Option<i64>,
    /// The running consumer process (JSON), if any.
    pub running: Option<String>,
}

/// One destination.
#[derive(Debug, Clone, Serialize)]
pub struct DestinationView {
    /// Its name.
    pub name: String,
    /// The server running it (`address` of the running node), if any.
    pub running: Option<String>,
    /// `false` while its owner hands it over.
    pub active: bool,
    /// Candidates other than the running one.
    pub standbys: Vec<String>,
    /// Subscribed clients.
    pub clients: Vec<ClientView>,
}

fn zk_err(op: &'static str, path: &str, error: ZkError) -> ManagerError {
    ManagerError::Zk {
        op,
        path: path.to_string(),
        error,
    }
}

async fn data(zk: &Client, path: &str) -> Result<Option<(Vec<u8>, i32)>, ManagerError> {
    match zk.get_data(path).await {
        Ok((d, stat)) => Ok(Some((d, stat.version))),
        Err(ZkError::NoNode) => Ok(None),
        Err(e) => Err(zk_err("get_data", path, e)),
    }
}

async fn children(zk: &Client, path: &str) -> Result<Vec<String>, ManagerError> {
    match zk.list_children(path).await {
        Ok(mut c) => {
            c.sort();
            Ok(c)
        }
        Err(ZkError::NoNode) => Ok(Vec::new()),
        Err(e) => Err(zk_err("list_children", path, e)),
    }
}

/// `(address, active)` of a running node's JSON.
fn owner(data: &[u8]) -> (Option<String>, bool) {
    match serde_json::from_slice::<serde_json::Value>(data) {
        Ok(v) => (
            v.get("address")
                .and_then(|a| a.as_str())
                .map(str::to_string),
            v.get("active").and_then(|a| a.as_bool()).unwrap_or(true),
        ),
        Err(_) => (None, true),
    }
}

fn text(d: Option<(Vec<u8>, i32)>) -> Option<String> {
    d.map(|(d, _)| String::from_utf8_lossy(&d).trim().to_string())
}

/// Seconds from the binlog time of a stored cursor (Canal's LogPosition JSON, `postion.timestamp`
/// in ms) to `now_ms`; `None` when it has no timestamp.
pub fn cursor_lag_s(cursor: &str, now_ms: i64) -> Option<i64> {
    let v: serde_json::Value = serde_json::from_str(cursor).ok()?;
    let ts = v.get("postion")?.get("timestamp")?.as_i64()?;
    Some(((now_ms - ts) / 1000).max(0))
}

/// Every destination under `/otter/canal/destinations`, by name.
pub async fn destinations(zk: &Client) -> Result<Vec<DestinationView>, ManagerError> {
    let mut out = Vec::new();
    for name in children(zk, &paths::destinations()).await? {
        let (running, active) = match data(zk, &paths::running(&name)).await? {
            Some((d, _)) => owner(&d),
            None => (None, true),
        };
        let standbys = children(zk, &paths::destination_cluster(&name))
            .await?
            .into_iter()
            .filter(|a| Some(a) != running.as_ref())
            .collect();
        let mut clients = Vec::new();
        for child in children(zk, &paths::destination(&name)).await? {
            let Ok(id) = child.parse::<i16>() else {
                continue;
            };
            let cursor = text(data(zk, &paths::cursor(&name, id)).await?);
            clients.push(ClientView {
                id: child,
                lag_s: cursor
                    .as_deref()
                    .and_then(|c| cursor_lag_s(c, otter_node::pipeline::heartbeat::now_ms())),
                cursor,
                running: text(data(zk, &paths::client_running(&name, id)).await?),
            });
        }
        out.push(DestinationView {
            name,
            running,
            active,
            standbys,
            clients,
        });
    }
    Ok(out)
}

/// Why a release did nothing.
#[derive(Debug, thiserror::Error)]
pub enum ReleaseError {
    /// No server runs the destination.
    #[error("destination {0} has no running server")]
    NotRunning(String),
    /// Reading or writing ZooKeeper failed.
    #[error(transparent)]
    Manager(#[from] ManagerError),
}

/// Asks the server running `dest` to hand it over: rewrites its running node with
/// `"active":false` (guarded by the version read). Returns the address released.
pub async fn release(zk: &Client, dest: &str) -> Result<String, ReleaseError> {
    let path = paths::running(dest);
    let Some((d, version)) = data(zk, &path).await? else {
        return Err(ReleaseError::NotRunning(dest.to_string()));
    };
    let mut v: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(&d).map_err(|e| ManagerError::BadData {
            path: path.clone(),
            reason: e.to_string(),
        })?;
    let address = v
        .get("address")
        .and_then(|a| a.as_str())
        .unwrap_or_default()
        .to_string();
    v.insert("active".into(), serde_json::Value::Bool(false));
    let bytes = serde_json::to_vec(&v).map_err(|e| ManagerError::BadData {
        path: path.clone(),
        reason: e.to_string(),
    })?;
    match zk.set_data(&path, &bytes, Some(version)).await {
        Ok(_) => {
            tracing::info!(destination = dest, %address, "running server asked to release");
            Ok(address)
        }
        // Gone or changed hands meanwhile: nothing to release any more.
        Err(ZkError::NoNode | ZkError::BadVersion) => {
            Err(ReleaseError::NotRunning(dest.to_string()))
        }
        Err(e) => Err(zk_err("set_data", &path, e).into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cursor_s_lag_is_now_minus_its_binlog_time() {
        let c = r#"{"postion":{"journalName":"mysql-bin.000003","position":4,"timestamp":1000}}"#;
        assert_eq!(cursor_lag_s(c, 61_500), Some(60));
        assert_eq!(cursor_lag_s(r#"{"postion":{"position":4}}"#, 61_500), None);
        assert_eq!(cursor_lag_s("not json", 61_500), None);
    }
}
