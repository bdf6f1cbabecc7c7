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
            clients.push(ClientView {
                id: child,
                cursor: text(data(zk, &paths::cursor(&name, id)).await?),
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
