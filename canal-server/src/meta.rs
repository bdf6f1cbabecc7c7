//! Client subscriptions and cursors of a destination, persisted in Canal's file-mode `meta.dat`
//! (`{"clientDatas":[{"clientIdentity":…,"cursor":{…LogPosition…}}],"destination":"…"}`), so a
//! restart resumes from what clients acked.
//!
//! Writes are atomic (temp file, fsync, rename). A corrupt file is an error naming the path.

use std::path::{Path, PathBuf};

use canal_protocol::position::{ClientIdentity, FileMetaClientData, FileMetaData, LogPosition};

use crate::position::EntryPosition;
use crate::store::ClientInfo;

/// A meta file that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum MetaError {
    /// Reading or writing failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The file is not Canal meta JSON.
    #[error("{path}: not a valid meta.dat: {source}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// Parse error.
        #[source]
        source: serde_json::Error,
    },
    /// ZooKeeper failed.
    #[error(transparent)]
    Zk(#[from] zk_coord::CoordError),
    /// This server may not write (it is not the active one any more).
    #[error("not the active server for {0}; cursors not written")]
    NotActive(String),
}

/// The meta file of one destination.
#[derive(Debug, Clone)]
pub struct MetaFile {
    path: PathBuf,
    destination: String,
    source: String,
}

impl MetaFile {
    /// `data_dir/{destination}/meta.dat`; `source` (`host:port`) goes into cursor identities.
    pub fn new(data_dir: &Path, destination: &str, source: &str) -> Self {
        Self {
            path: data_dir.join(destination).join("meta.dat"),
            destination: destination.to_string(),
            source: source.to_string(),
        }
    }

    /// Reads the stored clients (with no outstanding batches); a missing file means none.
    pub fn load(&self) -> Result<Vec<ClientInfo>, MetaError> {
        let bytes = match std::fs::read(&self.path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(source) => {
                return Err(MetaError::Io {
                    path: self.path.clone(),
                    source,
                })
            }
        };
        let meta: FileMetaData =
            serde_json::from_slice(&bytes).map_err(|source| MetaError::Corrupt {
                path: self.path.clone(),
                source,
            })?;
        Ok(meta
            .client_datas
            .into_iter()
            .map(|c| ClientInfo {
                client_id: c.client_identity.client_id,
                filter: c.client_identity.filter.clone().unwrap_or_default(),
                cursor: c.cursor.as_ref().and_then(EntryPosition::from_log_position),
                outstanding_batches: 0,
            })
            .collect())
    }

    /// Writes `clients` atomically.
    pub fn save(&self, clients: &[ClientInfo]) -> Result<(), MetaError> {
        let meta = FileMetaData {
            destination: self.destination.clone(),
            client_datas: clients
                .iter()
                .map(|c| {
                    let mut id = ClientIdentity::new(self.destination.clone(), c.client_id);
                    id.filter = (!c.filter.is_empty()).then(|| c.filter.clone());
                    FileMetaClientData {
                        client_identity: id,
                        cursor: c.cursor.as_ref().map(|p| p.to_log_position(&self.source)),
                    }
                })
                .collect(),
        };
        let io = |source| MetaError::Io {
            path: self.path.clone(),
            source,
        };
        let json = serde_json::to_vec(&meta).map_err(|e| io(std::io::Error::other(e)))?;
        if let Some(dir) = self.path.parent() {
            std::fs::create_dir_all(dir).map_err(io)?;
        }
        let tmp = self.path.with_extension("dat.tmp");
        {
            use std::io::Write;
            let mut f = std::fs::File::create(&tmp).map_err(io)?;
            f.write_all(&json).map_err(io)?;
            f.sync_all().map_err(io)?;
        }
        std::fs::rename(&tmp, &self.path).map_err(io)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::position::BinlogPosition;

    #[test]
    fn round_trip_in_canal_format() {
        let dir = tempfile::tempdir().unwrap();
        let m = MetaFile::new(dir.path(), "example", "127.0.0.1:3306");
        assert!(m.load().unwrap().is_empty());
        let rec = ClientInfo {
            client_id: 1001,
            filter: r"shop\..*".into(),
            cursor: Some(EntryPosition {
                binlog: BinlogPosition::new("mysql-bin.000003", 1234),
                next_offset: 1234,
                server_id: 1,
                timestamp_ms: 1_700_000_000_000,
                gtid: None,
                inclusive: false,
            }),
            outstanding_batches: 0,
        };
        m.save(std::slice::from_ref(&rec)).unwrap();
        assert_eq!(m.load().unwrap(), vec![rec]);
        let text = std::fs::read_to_string(&m.path).unwrap();
        assert!(text.contains(r#""postion":{"gtid":"","included":false,"journalName":"mysql-bin.000003","position":1234"#), "{text}");
        assert!(text.contains(r#""clientId":1001"#), "{text}");
        std::fs::write(&m.path, b"{not json").unwrap();
        assert!(matches!(m.load(), Err(MetaError::Corrupt { .. })));
    }
}

/// Cursors and subscriptions in ZooKeeper, in Canal's layout: `/otter/canal/destinations/{dest}/
/// {clientId}` (exists while subscribed), `…/{clientId}/filter`, `…/{clientId}/cursor` (LogPosition
/// JSON with `@type`).
pub struct ZkMeta {
    client: zk_coord::Client,
    destination: String,
    source: String,
    gate: Option<crate::store::Gate>,
}

impl std::fmt::Debug for ZkMeta {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ZkMeta")
            .field("destination", &self.destination)
            .finish()
    }
}

impl ZkMeta {
    /// Meta of `destination` through `client`; writes happen only while `gate` allows.
    pub fn new(
        client: zk_coord::Client,
        destination: &str,
        source: &str,
        gate: Option<crate::store::Gate>,
    ) -> Self {
        Self {
            client,
            destination: destination.to_string(),
            source: source.to_string(),
            gate,
        }
    }

    /// The ZooKeeper client (for other per-destination nodes such as the schema history).
    pub fn client(&self) -> &zk_coord::Client {
        &self.client
    }

    fn op(op: &'static str, path: &str, source: zk_coord::ZkError) -> MetaError {
        MetaError::Zk(zk_coord::CoordError::Op {
            op,
            path: path.to_string(),
            source,
        })
    }

    /// Reads the subscribed clients.
    pub async fn load(&self) -> Result<Vec<ClientInfo>, MetaError> {
        use zk_coord::paths;
        let dest_path = paths::destination(&self.destination);
        let children = match self.client.list_children(&dest_path).await {
            Ok(c) => c,
            Err(zk_coord::ZkError::NoNode) => return Ok(Vec::new()),
            Err(e) => return Err(Self::op("list_children", &dest_path, e)),
        };
        let mut out = Vec::new();
        for child in children {
            let Ok(client_id) = child.parse::<i16>() else {
                continue;
            };
            let cursor_path = paths::cursor(&self.destination, client_id);
            let cursor = match self.client.get_data(&cursor_path).await {
                Ok((data, _)) => {
                    let text = String::from_utf8_lossy(&data);
                    match LogPosition::from_cursor_json(&text) {
                        Ok(lp) => EntryPosition::from_log_position(&lp),
                        Err(e) => {
                            return Err(MetaError::Zk(zk_coord::CoordError::BadData {
                                path: cursor_path,
                                reason: e.to_string(),
                            }))
                        }
                    }
                }
                Err(zk_coord::ZkError::NoNode) => None,
                Err(e) => return Err(Self::op("get_data", &cursor_path, e)),
            };
            let filter_path = paths::filter(&self.destination, client_id);
            let filter = match self.client.get_data(&filter_path).await {
                Ok((data, _)) => String::from_utf8_lossy(&data).into_owned(),
                Err(zk_coord::ZkError::NoNode) => String::new(),
                Err(e) => return Err(Self::op("get_data", &filter_path, e)),
            };
            out.push(ClientInfo {
                client_id,
                filter,
                cursor,
                outstanding_batches: 0,
            });
        }
        out.sort_by_key(|c| c.client_id);
        Ok(out)
    }

    /// Writes the clients' filters and cursors, and removes clients no longer subscribed.
    pub async fn save(&self, clients: &[ClientInfo]) -> Result<(), MetaError> {
        use zk_coord::paths;
        if self.gate.as_ref().is_some_and(|g| !g()) {
            return Err(MetaError::NotActive(self.destination.clone()));
        }
        for c in clients {
            zk_coord::ensure_path(&self.client, &paths::client(&self.destination, c.client_id))
                .await?;
            if !c.filter.is_empty() {
                zk_coord::put_persistent(
                    &self.client,
                    &paths::filter(&self.destination, c.client_id),
                    c.filter.as_bytes(),
                )
                .await?;
            }
            if let Some(p) = &c.cursor {
                let json = p.to_log_position(&self.source).to_cursor_json();
                zk_coord::put_persistent(
                    &self.client,
                    &paths::cursor(&self.destination, c.client_id),
                    json.as_bytes(),
                )
                .await?;
            }
        }
        let dest_path = paths::destination(&self.destination);
        if let Ok(children) = self.client.list_children(&dest_path).await {
            for child in children {
                if let Ok(id) = child.parse::<i16>() {
                    if !clients.iter().any(|c| c.client_id == id) {
                        zk_coord::delete_recursive(
                            &self.client,
                            &paths::client(&self.destination, id),
                        )
                        .await?;
                    }
                }
            }
        }
        Ok(())
    }
}

/// Where a destination keeps its clients' subscriptions and cursors.
#[derive(Debug)]
pub enum MetaBackend {
    /// `data_dir/{dest}/meta.dat`.
    File(MetaFile),
    /// ZooKeeper, Canal's layout.
    Zk(ZkMeta),
}

impl MetaBackend {
    /// Reads the stored clients.
    pub async fn load(&self) -> Result<Vec<ClientInfo>, MetaError> {
        match self {
            MetaBackend::File(f) => f.load(),
            MetaBackend::Zk(z) => z.load().await,
        }
    }

    /// Writes the clients.
    pub async fn save(&self, clients: &[ClientInfo]) -> Result<(), MetaError> {
        match self {
            MetaBackend::File(f) => f.save(clients),
            MetaBackend::Zk(z) => z.save(clients).await,
        }
    }
}
