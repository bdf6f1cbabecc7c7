//! otter-manager: configures, controls and monitors Otter channels, pipelines and nodes.
//!
//! Channels live in ZooKeeper as JSON (the [`Channel::to_json`] form) at
//! `/otter/channel/{cid}` ([`zk_coord::otter_paths::channel`]); nodes watch them and follow their status. Live nodes
//! register themselves as ephemeral `/otter/node/{nid}` znodes holding their address ([`nodes`]).
//!
//! Every write is a read-modify-write guarded by the znode version, so concurrent managers (or a
//! manager racing a re-apply) never lose each other's changes:
//! - [`apply`] stores a channel definition (refusing a pipeline id or, on the same source, a
//!   slave id that another channel holds), keeping the status already stored;
//! - [`set_status`] starts, pauses or stops a channel;
//! - [`get`], [`list`] and [`nodes`] read.
#![deny(missing_docs)]

pub mod console;

use std::fmt;
use std::time::Duration;

use otter_node::model::{Channel, ChannelStatus, ModelError};
use zk_coord::otter_paths::{self, CHANNEL_ROOT, NODE_ROOT};
pub use zk_coord::ZkError;
use zk_coord::{CoordError, ZkConfig};
use zookeeper_client::{Client, CreateMode};

/// How many times a read-modify-write is retried when another writer changed the znode between
/// the read and the write.
const MAX_ATTEMPTS: u32 = 50;

/// What [`apply`] did, with the status the channel has in ZooKeeper afterwards.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApplyOutcome {
    /// The channel did not exist; it was created with the status of the definition.
    Created {
        /// The status stored.
        status: ChannelStatus,
    },
    /// The stored definition differed; it was replaced, keeping the stored status.
    Updated {
        /// The status kept.
        status: ChannelStatus,
    },
    /// The stored definition was already the same; nothing was written.
    Unchanged {
        /// The status stored.
        status: ChannelStatus,
    },
}

impl ApplyOutcome {
    /// The channel's status in ZooKeeper after the apply.
    pub fn status(&self) -> ChannelStatus {
        match *self {
            Self::Created { status } | Self::Updated { status } | Self::Unchanged { status } => {
                status
            }
        }
    }

    /// `created`, `updated` or `unchanged`.
    pub fn verb(&self) -> &'static str {
        match self {
            Self::Created { .. } => "created",
            Self::Updated { .. } => "updated",
            Self::Unchanged { .. } => "unchanged",
        }
    }
}

/// `stopped`, `started` or `paused`, as stored in the JSON.
pub fn status_name(status: ChannelStatus) -> &'static str {
    match status {
        ChannelStatus::Stopped => "stopped",
        ChannelStatus::Started => "started",
        ChannelStatus::Paused => "paused",
    }
}

/// Displays a [`ChannelStatus`] as [`status_name`] does.
#[derive(Debug, Clone, Copy)]
pub struct StatusDisplay(pub ChannelStatus);

impl fmt::Display for StatusDisplay {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(status_name(self.0))
    }
}

/// Why a manager operation failed.
#[derive(Debug, thiserror::Error)]
pub enum ManagerError {
    /// No znode `/otter/channel/{cid}`.
    #[error("channel {0} does not exist")]
    NoSuchChannel(u32),
    /// The channel definition does not validate.
    #[error("invalid channel: {0}")]
    Invalid(ModelError),
    /// Connecting to ZooKeeper failed (or timed out).
    #[error("cannot connect to ZooKeeper {servers}: {error}")]
    Connect {
        /// The connect string.
        servers: String,
        /// Why (the client error, or no session within the connect timeout).
        error: String,
    },
    /// A ZooKeeper operation failed.
    #[error("ZooKeeper {op} {path}: {error}{}", zk_coord::no_auth_hint(.error))]
    Zk {
        /// The operation.
        op: &'static str,
        /// The znode.
        path: String,
        /// Client error.
        error: ZkError,
    },
    /// A znode holds data that cannot be read.
    #[error("znode {path} holds invalid data: {reason}")]
    BadData {
        /// The znode.
        path: String,
        /// Why.
        reason: String,
    },
    /// Other writers kept changing the znode between our read and our write.
    #[error(
        "znode {path} kept changing under concurrent writers; gave up after {attempts} attempts"
    )]
    Contention {
        /// The znode.
        path: String,
        /// Attempts made.
        attempts: u32,
    },
    /// Another coordination failure (creating parents, invalid ZooKeeper settings).
    #[error(transparent)]
    Coord(CoordError),
}

/// Not `#[from]`: that would make the model error the source too, and `{:#}` would print it twice.
impl From<ModelError> for ManagerError {
    fn from(e: ModelError) -> Self {
        ManagerError::Invalid(e)
    }
}

impl From<CoordError> for ManagerError {
    fn from(e: CoordError) -> Self {
        match e {
            CoordError::Connect { servers, source } => Self::Connect {
                servers,
                error: source.to_string(),
            },
            CoordError::Op { op, path, source } => Self::Zk {
                op,
                path,
                error: source,
            },
            CoordError::BadData { path, reason } => Self::BadData { path, reason },
            e @ CoordError::Config { .. } => Self::Coord(e),
        }
    }
}

fn zk_err<'a>(op: &'static str, path: &'a str) -> impl FnOnce(ZkError) -> ManagerError + 'a {
    move |error| ManagerError::Zk {
        op,
        path: path.to_string(),
        error,
    }
}

/// Opens a ZooKeeper session as described by `config` (validated first); fails with
/// [`ManagerError::Connect`] once `config.connect_timeout_ms` passed without a session, e.g. when
/// nothing listens at the servers.
pub async fn connect(config: &ZkConfig) -> Result<Client, ManagerError> {
    config.validate()?;
    let limit = Duration::from_millis(config.connect_timeout_ms.max(1));
    match tokio::time::timeout(limit, config.connect()).await {
        Ok(r) => Ok(r?),
        Err(_) => Err(ManagerError::Connect {
            servers: config.servers.clone(),
            error: format!("no session within {} ms", limit.as_millis()),
        }),
    }
}

/// Stores a channel definition at `/otter/channel/{cid}`, creating the parents.
///
/// A new channel is created with `channel.status`. An existing one is replaced (guarded by the
/// version read, retried if someone else wrote in between) but keeps the status stored, so
/// re-applying the file of a running channel does not stop it. Nothing is written when the stored
/// definition is already the same.
pub async fn apply(zk: &Client, channel: &Channel) -> Result<ApplyOutcome, ManagerError> {
    channel.validate()?;
    channel.check_no_literal_secrets()?;
    channel.validate_among(&readable_channels(zk).await?)?;
    let path = otter_paths::channel(channel.id);
    let opts = CreateMode::Persistent.with_acls(zk_coord::acl::private(zk));
    for _ in 0..MAX_ATTEMPTS {
        match zk.get_data(&path).await {
            Err(ZkError::NoNode) => {
                zk_coord::ensure_path(zk, CHANNEL_ROOT).await?;
                match zk.create(&path, &channel.to_json(), &opts).await {
                    Ok(_) => {
                        tracing::info!(path, "channel created");
                        return Ok(ApplyOutcome::Created {
                            status: channel.status,
                        });
                    }
                    // Someone created it meanwhile: read it and update instead.
                    Err(ZkError::NodeExists) => {
                        tracing::debug!(path, "created concurrently; retrying as an update");
                        continue;
                    }
                    Err(e) => return Err(zk_err("create", &path)(e)),
                }
            }
            Err(e) => return Err(zk_err("get_data", &path)(e)),
            Ok((data, stat)) => {
                let stored = Channel::from_json(&data).ok();
                let status = match &stored {
                    Some(c) => Some(c.status),
                    None => stored_status(&data),
                }
                .unwrap_or(channel.status);
                let mut wanted = channel.clone();
                wanted.status = status;
                if stored.as_ref() == Some(&wanted) {
                    return Ok(ApplyOutcome::Unchanged { status });
                }
                match zk
                    .set_data(&path, &wanted.to_json(), Some(stat.version))
                    .await
                {
                    Ok(_) => {
                        tracing::info!(path, "channel updated");
                        return Ok(ApplyOutcome::Updated { status });
                    }
                    Err(ZkError::BadVersion | ZkError::NoNode) => {
                        tracing::debug!(path, "changed concurrently; retrying");
                        continue;
                    }
                    Err(e) => return Err(zk_err("set_data", &path)(e)),
                }
            }
        }
    }
    Err(ManagerError::Contention {
        path,
        attempts: MAX_ATTEMPTS,
    })
}

/// The `status` of a stored JSON that no longer parses as a whole channel (e.g. written by a newer
/// manager), so that [`apply`] still keeps it.
fn stored_status(data: &[u8]) -> Option<ChannelStatus> {
    let v: serde_json::Value = serde_json::from_slice(data).ok()?;
    serde_json::from_value(v.get("status")?.clone()).ok()
}

/// Sets a channel's status (read-modify-write guarded by the znode version, retried when another
/// writer got in between). Fails with [`ManagerError::NoSuchChannel`] when the channel is missing.
pub async fn set_status(zk: &Client, cid: u32, status: ChannelStatus) -> Result<(), ManagerError> {
    let path = otter_paths::channel(cid);
    for _ in 0..MAX_ATTEMPTS {
        let (data, stat) = match zk.get_data(&path).await {
            Ok(r) => r,
            Err(ZkError::NoNode) => return Err(ManagerError::NoSuchChannel(cid)),
            Err(e) => return Err(zk_err("get_data", &path)(e)),
        };
        let mut channel = parse_channel(&path, &data)?;
        if channel.status == status {
            return Ok(());
        }
        channel.status = status;
        match zk
            .set_data(&path, &channel.to_json(), Some(stat.version))
            .await
        {
            Ok(_) => {
                tracing::info!(path, status = status_name(status), "channel status set");
                return Ok(());
            }
            Err(ZkError::BadVersion) => {
                tracing::debug!(path, "changed concurrently; retrying");
                continue;
            }
            Err(ZkError::NoNode) => return Err(ManagerError::NoSuchChannel(cid)),
            Err(e) => return Err(zk_err("set_data", &path)(e)),
        }
    }
    Err(ManagerError::Contention {
        path,
        attempts: MAX_ATTEMPTS,
    })
}

fn parse_channel(path: &str, data: &[u8]) -> Result<Channel, ManagerError> {
    Channel::from_json(data).map_err(|e| ManagerError::BadData {
        path: path.to_string(),
        reason: e.to_string(),
    })
}

/// Reads one channel. Fails with [`ManagerError::NoSuchChannel`] when it is missing.
pub async fn get(zk: &Client, cid: u32) -> Result<Channel, ManagerError> {
    let path = otter_paths::channel(cid);
    match zk.get_data(&path).await {
        Ok((data, _)) => parse_channel(&path, &data),
        Err(ZkError::NoNode) => Err(ManagerError::NoSuchChannel(cid)),
        Err(e) => Err(zk_err("get_data", &path)(e)),
    }
}

/// The delay Load last measured for each pipeline of `channel` (`None`: none measured yet, e.g.
/// the source account cannot write its heartbeat).
pub async fn delays(
    zk: &Client,
    channel: &Channel,
) -> Result<Vec<(u32, Option<otter_node::pipeline::heartbeat::Delay>)>, ManagerError> {
    let mut out = Vec::new();
    for p in std::iter::once(&channel.pipeline).chain(channel.reverse.as_ref()) {
        let path = otter_paths::delay(channel.id, p.id);
        let delay = match zk.get_data(&path).await {
            Ok((data, _)) => serde_json::from_slice(&data).ok(),
            Err(ZkError::NoNode) => None,
            Err(e) => return Err(zk_err("get_data", &path)(e)),
        };
        out.push((p.id, delay));
    }
    Ok(out)
}

/// Numeric children of `root`, sorted; empty when `root` does not exist. Other children are
/// skipped.
async fn numeric_children(zk: &Client, root: &str) -> Result<Vec<u32>, ManagerError> {
    let children = match zk.list_children(root).await {
        Ok(c) => c,
        Err(ZkError::NoNode) => return Ok(Vec::new()),
        Err(e) => return Err(zk_err("list_children", root)(e)),
    };
    let mut ids: Vec<u32> = children
        .iter()
        .filter_map(|c| match c.parse() {
            Ok(id) => Some(id),
            Err(_) => {
                tracing::warn!(root, child = %c, "skipping a child that is not a numeric id");
                None
            }
        })
        .collect();
    ids.sort_unstable();
    Ok(ids)
}

/// Every channel under `/otter/channel`, by id (empty when there is none). A channel deleted while
/// listing is left out; one holding unreadable data fails the listing, naming its znode.
pub async fn list(zk: &Client) -> Result<Vec<Channel>, ManagerError> {
    let mut out = Vec::new();
    for cid in numeric_children(zk, CHANNEL_ROOT).await? {
        match get(zk, cid).await {
            Ok(c) => out.push(c),
            Err(ManagerError::NoSuchChannel(_)) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(out)
}

/// The stored channels that can be read; an unreadable one is skipped with a warning (it must not
/// block applying the others), as is one deleted while listing.
async fn readable_channels(zk: &Client) -> Result<Vec<Channel>, ManagerError> {
    let mut out = Vec::new();
    for cid in numeric_children(zk, CHANNEL_ROOT).await? {
        match get(zk, cid).await {
            Ok(c) => out.push(c),
            Err(ManagerError::NoSuchChannel(_)) => {}
            Err(e @ ManagerError::BadData { .. }) => {
                tracing::warn!(channel = cid, error = %e, "skipping an unreadable channel in the id checks")
            }
            Err(e) => return Err(e),
        }
    }
    Ok(out)
}

/// Live nodes: `(nid, address)` from the ephemeral `/otter/node/{nid}` znodes, by id (empty when
/// `/otter/node` does not exist). A node that leaves while listing is left out.
pub async fn nodes(zk: &Client) -> Result<Vec<(u32, String)>, ManagerError> {
    let mut out = Vec::new();
    for nid in numeric_children(zk, NODE_ROOT).await? {
        let path = otter_paths::node(nid);
        match zk.get_data(&path).await {
            Ok((data, _)) => out.push((nid, String::from_utf8_lossy(&data).trim().to_string())),
            Err(ZkError::NoNode) => {}
            Err(e) => return Err(zk_err("get_data", &path)(e)),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_and_names() {
        assert_eq!(otter_paths::channel(7), "/otter/channel/7");
        assert_eq!(otter_paths::node(3), "/otter/node/3");
        assert_eq!(StatusDisplay(ChannelStatus::Paused).to_string(), "paused");
        assert_eq!(
            ManagerError::NoSuchChannel(7).to_string(),
            "channel 7 does not exist"
        );
        let o = ApplyOutcome::Updated {
            status: ChannelStatus::Started,
        };
        assert_eq!((o.verb(), o.status()), ("updated", ChannelStatus::Started));
    }

    #[test]
    fn status_survives_unknown_fields() {
        assert_eq!(
            stored_status(br#"{"id":1,"status":"started","future":true}"#),
            Some(ChannelStatus::Started)
        );
        assert_eq!(stored_status(b"garbage"), None);
    }
}
