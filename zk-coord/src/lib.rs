//! ZooKeeper coordination shared by canal-server, canal-client and otter-node.
//!
//! - [`ZkConfig`]: how to reach ZooKeeper (servers, session timeout, chroot, digest auth).
//! - [`paths`]: Canal's znode layout (`/otter/canal/...`).
//! - [`otter_paths`]: Otter's znode layout (`/otter/channel/...`, `/otter/node/...`), shared by
//!   otter-node and otter-manager.
//! - [`registration`]: an ephemeral znode saying a process is alive, kept across sessions
//!   (canal-server's `/otter/canal/cluster/{address}`, otter-node's `/otter/node/{nid}`).
//! - [`RunningData`] / [`ClientRunningData`]: Canal's JSON for running nodes.
//! - [`election::Election`]: Canal's running-node election (ephemeral node, a grace delay for
//!   everyone but the former owner, operator hand-over by writing `active:false`) with the fencing
//!   Canal lacks: the role drops to [`election::Role::Paused`] the moment the connection is lost and to
//!   [`election::Role::Fenced`] once the session is (or must be assumed) expired.
//! - [`fence::Fence`] / [`fence::Fencing`]: the version checks an owner puts first in each multi it
//!   commits, so its writes fail as a whole once another candidate has won.
//! - [`servers::ServerGroups`]: the connect string with local members first
//!   (`obs1:2181,obs2:2181;zk1:2181,…`), each session opened in the first group that answers.
#![deny(missing_docs)]

pub mod acl;
pub mod election;
pub mod fence;
pub mod otter_paths;
pub mod paths;
pub mod registration;
pub mod secret;
pub mod servers;

use std::time::Duration;

use serde::{Deserialize, Serialize};

pub use zookeeper_client::{Client, Error as ZkError};

/// How to reach ZooKeeper.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ZkConfig {
    /// Connect string, `host:port,host:port`, optionally in preference groups separated by `;`
    /// (`obs1:2181,obs2:2181;zk1:2181,zk2:2181,zk3:2181`): each new session is opened in the first
    /// group that answers, so a remote site lists its local observers first ([`servers`]).
    pub servers: String,
    /// Session timeout asked for, ms (the server clamps it to its min/max).
    pub session_timeout_ms: u64,
    /// Connection timeout, ms.
    pub connect_timeout_ms: u64,
    /// Optional chroot, e.g. `/prod`.
    pub chroot: String,
    /// Optional digest auth `user:password`, or `env:NAME` / `file:PATH` naming where it is
    /// ([`secret`]). With it, every znode this process creates is closed to unauthenticated
    /// sessions except the running and cluster nodes, which they may read ([`acl`]).
    pub digest: String,
    /// Grace delay before a standby contends for a running node that disappeared, ms.
    pub grace_ms: u64,
}

impl Default for ZkConfig {
    fn default() -> Self {
        Self {
            servers: "127.0.0.1:2181".into(),
            session_timeout_ms: 10_000,
            connect_timeout_ms: 5_000,
            chroot: String::new(),
            digest: String::new(),
            grace_ms: 5_000,
        }
    }
}

/// A ZooKeeper failure worth reporting.
#[derive(Debug, thiserror::Error)]
pub enum CoordError {
    /// Connecting failed.
    #[error("cannot connect to ZooKeeper {servers}: {source}")]
    Connect {
        /// The connect string.
        servers: String,
        /// Client error.
        #[source]
        source: ZkError,
    },
    /// A znode operation failed.
    #[error("ZooKeeper {op} {path}: {source}{}", no_auth_hint(.source))]
    Op {
        /// The operation.
        op: &'static str,
        /// The path.
        path: String,
        /// Client error.
        #[source]
        source: ZkError,
    },
    /// A znode holds data that is not the expected JSON.
    #[error("znode {path} holds invalid data: {reason}")]
    BadData {
        /// The path.
        path: String,
        /// Why.
        reason: String,
    },
    /// Invalid configuration.
    #[error("zookeeper config `{key}`: {message}")]
    Config {
        /// The key.
        key: &'static str,
        /// What is wrong.
        message: String,
    },
}

/// What to do about a `NoAuth` answer: it means this session's credentials are not the ones the
/// znode was created with.
pub fn no_auth_hint(e: &ZkError) -> &'static str {
    if *e == ZkError::NoAuth {
        " (this process's ZooKeeper `digest` credentials are missing or differ from the ones that \
         created the znode)"
    } else {
        ""
    }
}

impl ZkConfig {
    /// The session timeout.
    pub fn session_timeout(&self) -> Duration {
        Duration::from_millis(self.session_timeout_ms)
    }

    /// The grace delay.
    pub fn grace(&self) -> Duration {
        Duration::from_millis(self.grace_ms)
    }

    /// Checks the fields.
    pub fn validate(&self) -> Result<(), CoordError> {
        self.server_groups()?;
        if self.session_timeout_ms < 400 {
            return Err(CoordError::Config {
                key: "session_timeout_ms",
                message: "must be at least 400".into(),
            });
        }
        if !self.chroot.is_empty() && (!self.chroot.starts_with('/') || self.chroot.ends_with('/'))
        {
            return Err(CoordError::Config {
                key: "chroot",
                message: format!("{:?} must start with '/' and not end with one", self.chroot),
            });
        }
        self.digest_credentials()?;
        Ok(())
    }

    /// The digest credentials `user:password`, resolved from `digest` (None when not set).
    pub fn digest_credentials(&self) -> Result<Option<String>, CoordError> {
        if self.digest.is_empty() {
            return Ok(None);
        }
        let d = secret::resolve(&self.digest).map_err(|e| CoordError::Config {
            key: "digest",
            message: e.to_string(),
        })?;
        match d.split_once(':') {
            Some((user, _)) if !user.is_empty() => Ok(Some(d)),
            _ => Err(CoordError::Config {
                key: "digest",
                message: "must be user:password".into(),
            }),
        }
    }

    /// The connect string's preference groups.
    pub fn server_groups(&self) -> Result<servers::ServerGroups, CoordError> {
        servers::ServerGroups::parse(&self.servers).map_err(|e| CoordError::Config {
            key: "servers",
            message: e.to_string(),
        })
    }

    /// Opens a new session, in the first preference group of `servers` that answers (with one
    /// group: wherever the client gets one, waiting up to twice the connect timeout). A group is
    /// given up once each of its members has refused or timed out, so a remote site whose
    /// observers are all down opens its session on the voters instead; the next session starts
    /// from the first group again.
    pub async fn connect(&self) -> Result<Client, CoordError> {
        let groups = self.server_groups()?;
        let mut last = None;
        for i in 0..groups.groups().len() {
            let Some(servers) = groups.connect_string(i, &self.chroot) else {
                break;
            };
            match self.connect_to(&servers, groups.has_fallback()).await {
                Ok(client) => {
                    if i > 0 {
                        tracing::warn!(
                            servers = %servers,
                            "no member of an earlier ZooKeeper group answered; session opened in a fall-back group"
                        );
                    }
                    return Ok(client);
                }
                Err(e) => {
                    if groups.has_fallback() {
                        tracing::info!(servers = %servers, error = %e, "ZooKeeper group did not answer");
                    }
                    last = Some(e);
                }
            }
        }
        Err(last.unwrap_or(CoordError::Connect {
            servers: self.servers.clone(),
            source: ZkError::NoHosts,
        }))
    }

    async fn connect_to(&self, servers: &str, fail_eagerly: bool) -> Result<Client, CoordError> {
        let mut connector = Client::connector()
            .with_session_timeout(self.session_timeout())
            .with_connection_timeout(Duration::from_millis(self.connect_timeout_ms));
        let digest = self.digest_credentials()?;
        if let Some(d) = &digest {
            connector = connector.with_auth("digest", d.as_bytes());
        }
        if fail_eagerly {
            connector = connector.with_fail_eagerly();
        }
        let connect = connector.connect(servers);
        match tokio::time::timeout(
            Duration::from_millis(self.connect_timeout_ms.max(1000) * 2),
            connect,
        )
        .await
        {
            Ok(Ok(client)) => {
                if digest.is_some() {
                    acl::mark_authenticated(&client);
                }
                Ok(client)
            }
            Ok(Err(source)) => Err(CoordError::Connect {
                servers: servers.to_string(),
                source,
            }),
            Err(_) => Err(CoordError::Connect {
                servers: servers.to_string(),
                source: ZkError::Timeout,
            }),
        }
    }
}

impl ZkConfig {
    /// Opens a new session like [`ZkConfig::connect`], trying again every second (each failure
    /// logged) until one opens; `None` once `stop` is cancelled.
    pub async fn connect_until_stopped(
        &self,
        stop: &tokio_util::sync::CancellationToken,
    ) -> Option<Client> {
        loop {
            let client = tokio::select! {
                _ = stop.cancelled() => return None,
                c = self.connect() => c,
            };
            match client {
                Ok(c) => return Some(c),
                Err(e) => tracing::warn!(error = %e, "cannot reach ZooKeeper; retrying"),
            }
            tokio::select! {
                _ = stop.cancelled() => return None,
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            }
        }
    }
}

/// `{"active":true,"address":"ip:port"}`: who runs a destination (Canal's ServerRunningData).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunningData {
    /// Whether the owner serves it; writing `false` asks the owner to hand over.
    pub active: bool,
    /// `ip:port` of the owner.
    pub address: String,
}

/// `{"active":true,"address":"ip:port","clientId":1001}`: which consumer process is active.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientRunningData {
    /// Whether the owner consumes.
    pub active: bool,
    /// Address of the owner.
    pub address: String,
    /// Client id.
    #[serde(rename = "clientId")]
    pub client_id: i16,
}

/// Serializes as fastjson does for these types: fields in alphabetical order, no whitespace.
pub fn to_canal_json<T: Serialize>(v: &T) -> Vec<u8> {
    // serde_json keeps declaration order; the structs above declare fields alphabetically.
    serde_json::to_vec(v).unwrap_or_default()
}

/// Creates every missing ancestor and the node itself as persistent (idempotent).
pub async fn ensure_path(client: &Client, path: &str) -> Result<(), CoordError> {
    let mut cur = String::new();
    for part in path.split('/').filter(|p| !p.is_empty()) {
        cur.push('/');
        cur.push_str(part);
        let opts = zookeeper_client::CreateMode::Persistent.with_acls(acl::for_path(client, &cur));
        match client.create(&cur, &[], &opts).await {
            Ok(_) | Err(ZkError::NodeExists) => {}
            Err(source) => {
                return Err(CoordError::Op {
                    op: "create",
                    path: cur,
                    source,
                })
            }
        }
    }
    Ok(())
}

/// Writes `data` to a persistent node, creating it (and its parents) if needed.
pub async fn put_persistent(client: &Client, path: &str, data: &[u8]) -> Result<(), CoordError> {
    match client.set_data(path, data, None).await {
        Ok(_) => Ok(()),
        Err(ZkError::NoNode) => {
            if let Some((parent, _)) = path.rsplit_once('/') {
                if !parent.is_empty() {
                    ensure_path(client, parent).await?;
                }
            }
            let opts =
                zookeeper_client::CreateMode::Persistent.with_acls(acl::for_path(client, path));
            match client.create(path, data, &opts).await {
                Ok(_) => Ok(()),
                Err(ZkError::NodeExists) => client
                    .set_data(path, data, None)
                    .await
                    .map(|_| ())
                    .map_err(|source| CoordError::Op {
                        op: "set_data",
                        path: path.to_string(),
                        source,
                    }),
                Err(source) => Err(CoordError::Op {
                    op: "create",
                    path: path.to_string(),
                    source,
                }),
            }
        }
        Err(source) => Err(CoordError::Op {
            op: "set_data",
            path: path.to_string(),
            source,
        }),
    }
}

/// Deletes a node and everything under it (missing nodes are fine).
pub async fn delete_recursive(client: &Client, path: &str) -> Result<(), CoordError> {
    let mut stack = vec![path.to_string()];
    let mut order = Vec::new();
    while let Some(p) = stack.pop() {
        match client.list_children(&p).await {
            Ok(children) => {
                for c in children {
                    stack.push(format!("{p}/{c}"));
                }
                order.push(p);
            }
            Err(ZkError::NoNode) => {}
            Err(source) => {
                return Err(CoordError::Op {
                    op: "list_children",
                    path: p,
                    source,
                })
            }
        }
    }
    for p in order.into_iter().rev() {
        match client.delete(&p, None).await {
            Ok(()) | Err(ZkError::NoNode) => {}
            Err(source) => {
                return Err(CoordError::Op {
                    op: "delete",
                    path: p,
                    source,
                })
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_matches_canal() {
        let r = RunningData {
            active: true,
            address: "10.0.0.1:11111".into(),
        };
        assert_eq!(
            String::from_utf8(to_canal_json(&r)).unwrap(),
            r#"{"active":true,"address":"10.0.0.1:11111"}"#
        );
        let c = ClientRunningData {
            active: true,
            address: "10.0.0.5:53422".into(),
            client_id: 1001,
        };
        assert_eq!(
            String::from_utf8(to_canal_json(&c)).unwrap(),
            r#"{"active":true,"address":"10.0.0.5:53422","clientId":1001}"#
        );
        // Readers ignore unknown fields (old servers wrote `cid`).
        let old: RunningData =
            serde_json::from_str(r#"{"active":true,"address":"a:1","cid":1}"#).unwrap();
        assert_eq!(old.address, "a:1");
    }

    #[test]
    fn config_validation_names_the_key() {
        let c = ZkConfig {
            chroot: "prod".into(),
            ..Default::default()
        };
        assert!(matches!(
            c.validate(),
            Err(CoordError::Config { key: "chroot", .. })
        ));
    }
}
