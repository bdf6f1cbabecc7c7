//! Client subscriptions and cursors of a destination, persisted in Canal's file-mode `meta.dat`
//! (`{"clientDatas":[{"clientIdentity":…,"cursor":{…LogPosition…}}],"destination":"…"}`), so a
//! restart resumes from what clients acked.
//!
//! Writes are atomic (temp file, fsync, rename). A corrupt file is an error naming the path.

use std::path::{Path, PathBuf};

use canal_protocol::position::{ClientIdentity, FileMetaClientData, FileMetaData, LogPosition};

use zk_coord::fence::Fencing;

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

    fn snapshot_path(&self) -> PathBuf {
        self.path.with_file_name("snapshot.json")
    }

    /// `snapshot.json` beside the meta file, if it exists.
    pub fn load_snapshot(&self) -> Result<Option<Vec<u8>>, MetaError> {
        let path = self.snapshot_path();
        match std::fs::read(&path) {
            Ok(b) => Ok(Some(b)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(MetaError::Io { path, source }),
        }
    }

    /// Writes `snapshot.json` atomically.
    pub fn save_snapshot(&self, json: &[u8]) -> Result<(), MetaError> {
        let path = self.snapshot_path();
        let io = |source| MetaError::Io {
            path: path.clone(),
            source,
        };
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(io)?;
        }
        let tmp = path.with_extension("json.tmp");
        std::fs::write(&tmp, json).map_err(io)?;
        std::fs::rename(&tmp, &path).map_err(io)
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
///
/// Each [`ZkMeta::save`] is one ZooKeeper multi. With a [`Fencing`] (HA) the multi begins with the
/// running node's version checks, so a server that lost the destination writes nothing, even when
/// it has not noticed yet; the gate is only the cheap early answer.
pub struct ZkMeta {
    client: zk_coord::Client,
    destination: String,
    source: String,
    gate: Option<crate::store::Gate>,
    fencing: Option<Fencing>,
    /// Client ids whose nodes this server read or wrote: one of them missing at the next save
    /// was deleted by an operator (Canal's way of dropping a client), not yet written.
    known: std::sync::Mutex<std::collections::BTreeSet<i16>>,
    /// One save at a time, each reading what to write only when its turn comes (see
    /// [`save_with`](Self::save_with)): an older list never lands after a newer one.
    saving: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for ZkMeta {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ZkMeta")
            .field("destination", &self.destination)
            .finish()
    }
}

/// One write of a save, in the order the multi applies them.
#[derive(Debug, PartialEq, Eq)]
enum Write {
    /// A persistent node that did not exist.
    Create(String, Vec<u8>),
    /// New data for a node read at `version` (a concurrent change fails the multi).
    Set(String, Vec<u8>, i32),
    /// A node of a client no longer subscribed.
    Delete(String),
}

/// What ZooKeeper holds for one client id, as read before a save.
#[derive(Debug, Default)]
struct Stored {
    filter: Option<(Vec<u8>, i32)>,
    cursor: Option<(Vec<u8>, i32)>,
    children: Vec<String>,
}

/// How many times a save reads and tries again when another writer changed a node between its
/// read and its multi.
const SAVE_ATTEMPTS: usize = 3;

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
            fencing: None,
            known: Default::default(),
            saving: Default::default(),
        }
    }

    fn known(&self) -> std::sync::MutexGuard<'_, std::collections::BTreeSet<i16>> {
        self.known.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Every save checks `fencing` in the same multi: once the ownership it was bound to ended,
    /// saves fail with [`MetaError::NotActive`] and write nothing.
    pub fn fenced(mut self, fencing: Fencing) -> Self {
        self.fencing = Some(fencing);
        self
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
        *self.known() = out.iter().map(|c| c.client_id).collect();
        Ok(out)
    }

    /// Tests' shorthand: [`save_with`](Self::save_with) of a fixed list.
    #[cfg(test)]
    pub async fn save(&self, clients: &[ClientInfo]) -> Result<Vec<i16>, MetaError> {
        self.save_with(|| clients.to_vec()).await
    }

    /// Writes the filters and cursors that changed of the clients `clients` returns, and removes
    /// clients no longer subscribed, as one multi: all of it or nothing. Fenced, a multi the
    /// fence rejects (another server holds the destination now) is [`MetaError::NotActive`].
    ///
    /// A client whose node this server knew and that is gone now was dropped by an operator
    /// (deleting `/otter/canal/destinations/{dest}/{clientId}`): it is not written back, and its
    /// id is returned so the caller unsubscribes it.
    ///
    /// Saves run one at a time, and `clients` is called when this save's turn comes: the start
    /// hook's save, the periodic flush and flushes on ack may be called together, and a list
    /// read before another save's turn could write an older cursor over a newer one, or remove
    /// a client subscribed meanwhile, until the next flush.
    pub async fn save_with(
        &self,
        clients: impl FnOnce() -> Vec<ClientInfo>,
    ) -> Result<Vec<i16>, MetaError> {
        let _turn = self.saving.lock().await;
        self.save_now(&clients()).await
    }

    async fn save_now(&self, clients: &[ClientInfo]) -> Result<Vec<i16>, MetaError> {
        let not_active = || MetaError::NotActive(self.destination.clone());
        let fence = self.fence_now()?;
        let dest_path = zk_coord::paths::destination(&self.destination);
        let mut attempt = 0;
        loop {
            attempt += 1;
            // Known before the read: a save running alongside can create a client's node, and
            // remember it, while this read is on its way. That read is older than the node and
            // must not count as an operator's delete (it dropped a freshly subscribed client:
            // otter's Select then redid its first batch from the configured start).
            let known = self.known().clone();
            let stored = self.read_stored().await?;
            let dropped: Vec<i16> = clients
                .iter()
                .map(|c| c.client_id)
                .filter(|id| known.contains(id) && !stored.contains_key(id))
                .collect();
            let kept: Vec<ClientInfo> = clients
                .iter()
                .filter(|c| !dropped.contains(&c.client_id))
                .cloned()
                .collect();
            let remember = |kept: &[ClientInfo]| {
                *self.known() = kept.iter().map(|c| c.client_id).collect();
            };
            let writes = self.plan(&kept, &stored);
            if writes.is_empty() {
                remember(&kept);
                return Ok(dropped);
            }
            let mut writer = self.client.new_multi_writer();
            if let Some(f) = &fence {
                f.add_checks(&mut writer)
                    .map_err(|e| Self::op("multi", &dest_path, e))?;
            }
            for w in &writes {
                let added = match w {
                    Write::Create(path, data) => {
                        let opts = zookeeper_client::CreateMode::Persistent
                            .with_acls(zk_coord::acl::for_path(&self.client, path));
                        writer.add_create(path, data, &opts)
                    }
                    Write::Set(path, data, version) => {
                        writer.add_set_data(path, data, Some(*version))
                    }
                    Write::Delete(path) => writer.add_delete(path, None),
                };
                added.map_err(|e| Self::op("multi", &dest_path, e))?;
            }
            let err = match writer.commit().await {
                Ok(_) => {
                    remember(&kept);
                    return Ok(dropped);
                }
                Err(e) => e,
            };
            if fence.as_ref().is_some_and(|f| f.rejected(&err)) {
                return Err(not_active());
            }
            let raced = matches!(
                &err,
                zookeeper_client::MultiWriteError::OperationFailed {
                    source: zk_coord::ZkError::NodeExists
                        | zk_coord::ZkError::NoNode
                        | zk_coord::ZkError::NotEmpty
                        | zk_coord::ZkError::BadVersion,
                    ..
                }
            );
            if !raced || attempt >= SAVE_ATTEMPTS {
                return Err(Self::op("multi", &dest_path, err.into()));
            }
            tracing::debug!(destination = %self.destination, error = %err, "cursor nodes changed meanwhile; reading them again");
        }
    }

    /// The fence every write checks (HA), or `NotActive` when the gate is closed or the
    /// ownership ended; `None` without fencing.
    fn fence_now(&self) -> Result<Option<zk_coord::fence::Fence>, MetaError> {
        let not_active = || MetaError::NotActive(self.destination.clone());
        if self.gate.as_ref().is_some_and(|g| !g()) {
            return Err(not_active());
        }
        match &self.fencing {
            Some(f) => Ok(Some(f.current().ok_or_else(not_active)?)),
            None => Ok(None),
        }
    }

    /// The snapshot progress node's data, if it exists.
    pub async fn load_snapshot(&self) -> Result<Option<Vec<u8>>, MetaError> {
        let path = zk_coord::paths::snapshot(&self.destination);
        match self.client.get_data(&path).await {
            Ok((data, _)) => Ok(Some(data)),
            Err(zk_coord::ZkError::NoNode) => Ok(None),
            Err(e) => Err(Self::op("get_data", &path, e)),
        }
    }

    /// Writes the snapshot progress node in one multi with the fence checks (HA): a server that
    /// lost the destination writes nothing.
    pub async fn save_snapshot(&self, json: &[u8]) -> Result<(), MetaError> {
        let not_active = || MetaError::NotActive(self.destination.clone());
        let fence = self.fence_now()?;
        let path = zk_coord::paths::snapshot(&self.destination);
        zk_coord::ensure_path(
            &self.client,
            &zk_coord::paths::destination(&self.destination),
        )
        .await?;
        let exists = match self.client.get_data(&path).await {
            Ok((_, stat)) => Some(stat.version),
            Err(zk_coord::ZkError::NoNode) => None,
            Err(e) => return Err(Self::op("get_data", &path, e)),
        };
        let mut writer = self.client.new_multi_writer();
        if let Some(f) = &fence {
            f.add_checks(&mut writer)
                .map_err(|e| Self::op("multi", &path, e))?;
        }
        let added = match exists {
            Some(v) => writer.add_set_data(&path, json, Some(v)),
            None => {
                let opts = zookeeper_client::CreateMode::Persistent
                    .with_acls(zk_coord::acl::for_path(&self.client, &path));
                writer.add_create(&path, json, &opts)
            }
        };
        added.map_err(|e| Self::op("multi", &path, e))?;
        match writer.commit().await {
            Ok(_) => Ok(()),
            Err(e) if fence.as_ref().is_some_and(|f| f.rejected(&e)) => Err(not_active()),
            Err(e) => Err(Self::op("multi", &path, e.into())),
        }
    }

    /// Reads, in one multi-read, what ZooKeeper holds for every client id under the destination
    /// (creating the destination's node when it is missing).
    async fn read_stored(&self) -> Result<std::collections::BTreeMap<i16, Stored>, MetaError> {
        use zk_coord::paths;
        use zookeeper_client::MultiReadResult;
        let dest_path = paths::destination(&self.destination);
        let children = match self.client.list_children(&dest_path).await {
            Ok(c) => c,
            Err(zk_coord::ZkError::NoNode) => {
                zk_coord::ensure_path(&self.client, &dest_path).await?;
                Vec::new()
            }
            Err(e) => return Err(Self::op("list_children", &dest_path, e)),
        };
        let ids: Vec<i16> = children.iter().filter_map(|c| c.parse().ok()).collect();
        let mut reader = self.client.new_multi_reader();
        for &id in &ids {
            let added = reader
                .add_get_data(&paths::filter(&self.destination, id))
                .and_then(|()| reader.add_get_data(&paths::cursor(&self.destination, id)))
                .and_then(|()| reader.add_get_children(&paths::client(&self.destination, id)));
            added.map_err(|e| Self::op("multi_read", &dest_path, e))?;
        }
        let results = reader
            .commit()
            .await
            .map_err(|e| Self::op("multi_read", &dest_path, e))?;
        let data = |r: Option<MultiReadResult>| match r {
            Some(MultiReadResult::Data { data, stat }) => Some((data, stat.version)),
            _ => None,
        };
        let mut results = results.into_iter();
        let mut out = std::collections::BTreeMap::new();
        for id in ids {
            let filter = data(results.next());
            let cursor = data(results.next());
            let children = match results.next() {
                Some(MultiReadResult::Children { children }) => children,
                _ => Vec::new(),
            };
            out.insert(
                id,
                Stored {
                    filter,
                    cursor,
                    children,
                },
            );
        }
        Ok(out)
    }

    /// The writes that bring `stored` to `clients`: a client node, filter or cursor that is
    /// missing is created, one whose data differs is set, an unchanged one is left alone (an empty
    /// filter is not written, as in Canal); the nodes of clients no longer subscribed are deleted,
    /// children first.
    fn plan(
        &self,
        clients: &[ClientInfo],
        stored: &std::collections::BTreeMap<i16, Stored>,
    ) -> Vec<Write> {
        use zk_coord::paths;
        let put =
            |writes: &mut Vec<Write>, path: String, data: Vec<u8>, old: Option<&(Vec<u8>, i32)>| {
                match old {
                    None => writes.push(Write::Create(path, data)),
                    Some((old, version)) if *old != data => {
                        writes.push(Write::Set(path, data, *version))
                    }
                    Some(_) => {}
                }
            };
        let mut writes = Vec::new();
        for c in clients {
            let old = stored.get(&c.client_id);
            if old.is_none() {
                writes.push(Write::Create(
                    paths::client(&self.destination, c.client_id),
                    Vec::new(),
                ));
            }
            if !c.filter.is_empty() {
                let path = paths::filter(&self.destination, c.client_id);
                put(
                    &mut writes,
                    path,
                    c.filter.as_bytes().to_vec(),
                    old.and_then(|o| o.filter.as_ref()),
                );
            }
            if let Some(p) = &c.cursor {
                let json = p.to_log_position(&self.source).to_cursor_json();
                let path = paths::cursor(&self.destination, c.client_id);
                put(
                    &mut writes,
                    path,
                    json.into_bytes(),
                    old.and_then(|o| o.cursor.as_ref()),
                );
            }
        }
        for (id, old) in stored {
            if clients.iter().any(|c| c.client_id == *id) {
                continue;
            }
            let path = paths::client(&self.destination, *id);
            for child in &old.children {
                writes.push(Write::Delete(format!("{path}/{child}")));
            }
            writes.push(Write::Delete(path));
        }
        writes
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
    /// The stored snapshot progress (JSON), if any.
    pub async fn load_snapshot(&self) -> Result<Option<Vec<u8>>, MetaError> {
        match self {
            MetaBackend::File(f) => f.load_snapshot(),
            MetaBackend::Zk(z) => z.load_snapshot().await,
        }
    }

    /// Replaces the stored snapshot progress (fenced like cursors in ZooKeeper).
    pub async fn save_snapshot(&self, json: &[u8]) -> Result<(), MetaError> {
        match self {
            MetaBackend::File(f) => f.save_snapshot(json),
            MetaBackend::Zk(z) => z.save_snapshot(json).await,
        }
    }

    /// Reads the stored clients.
    pub async fn load(&self) -> Result<Vec<ClientInfo>, MetaError> {
        match self {
            MetaBackend::File(f) => f.load(),
            MetaBackend::Zk(z) => z.load().await,
        }
    }

    /// Writes the clients `clients` returns, read when this save's turn comes (ZooKeeper saves
    /// run one at a time; see [`ZkMeta::save_with`]); returns the ids an operator dropped
    /// meanwhile (ZooKeeper only: their nodes were deleted), which were not written back.
    pub async fn save_with(
        &self,
        clients: impl FnOnce() -> Vec<ClientInfo>,
    ) -> Result<Vec<i16>, MetaError> {
        match self {
            MetaBackend::File(f) => f.save(&clients()).map(|()| Vec::new()),
            MetaBackend::Zk(z) => z.save_with(clients).await,
        }
    }
}

#[cfg(test)]
mod zk_tests {
    use std::time::Duration;

    use harness::ZooKeeper;
    use zk_coord::election::{Election, ElectionSpec, Role};
    use zk_coord::fence::Fencing;
    use zk_coord::{paths, RunningData, ZkConfig};

    use super::*;
    use crate::position::BinlogPosition;

    const DEST: &str = "fenced";

    fn cfg(zk: &ZooKeeper) -> ZkConfig {
        ZkConfig {
            servers: zk.connect_string(),
            session_timeout_ms: 2_000,
            connect_timeout_ms: 2_000,
            grace_ms: 200,
            ..Default::default()
        }
    }

    fn spec(address: &str) -> ElectionSpec {
        ElectionSpec {
            path: paths::running(DEST),
            candidate_path: None,
            address: address.into(),
            data: zk_coord::to_canal_json(&RunningData {
                active: true,
                address: address.into(),
            }),
        }
    }

    async fn active(e: &Election) -> Fencing {
        let mut roles = e.watch();
        tokio::time::timeout(
            Duration::from_secs(30),
            roles.wait_for(|r| *r == Role::Active),
        )
        .await
        .expect("election won")
        .unwrap();
        e.fencing().expect("an active owner has a fencing")
    }

    fn client_at(offset: u64) -> ClientInfo {
        ClientInfo {
            client_id: 1001,
            filter: r"shop\..*".into(),
            cursor: Some(EntryPosition {
                binlog: BinlogPosition::new("mysql-bin.000001", offset),
                next_offset: offset + 10,
                server_id: 1,
                timestamp_ms: 1_700_000_000_000,
                gtid: None,
                inclusive: false,
            }),
            outstanding_batches: 0,
        }
    }

    async fn stored_offset(meta: &ZkMeta) -> Option<u64> {
        let clients = meta.load().await.unwrap();
        clients[0].cursor.as_ref().map(|c| c.binlog.offset)
    }

    /// Saves running side by side (the start hook's and the periodic flush) never take a client
    /// the other one just created for one an operator deleted.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_saves_do_not_drop_a_new_client() {
        harness::init_tracing();
        let zk = ZooKeeper::start().await.unwrap();
        let client = cfg(&zk).connect().await.unwrap();
        for round in 0..40u64 {
            let dest = format!("concurrent-{round}");
            let meta = ZkMeta::new(client.clone(), &dest, "127.0.0.1:3306", None);
            let clients = [client_at(100 + round)];
            // The second save starts a little later each round, so that its read lands before,
            // during and after the first one's create.
            let later = async {
                tokio::time::sleep(Duration::from_micros(round * 150)).await;
                meta.save(&clients).await
            };
            let (first, second) = tokio::join!(meta.save(&clients), later);
            assert_eq!(first.unwrap(), Vec::<i16>::new(), "round {round}");
            assert_eq!(second.unwrap(), Vec::<i16>::new(), "round {round}");
            let stored = meta.load().await.unwrap();
            assert_eq!(stored.len(), 1, "round {round}: {stored:?}");
        }
        // A client an operator really deletes is still reported.
        let meta = ZkMeta::new(client.clone(), "deleted", "127.0.0.1:3306", None);
        meta.save(&[client_at(1)]).await.unwrap();
        let path = format!("{}/1001", zk_coord::paths::destination("deleted"));
        for child in client.list_children(&path).await.unwrap() {
            client
                .delete(&format!("{path}/{child}"), None)
                .await
                .unwrap();
        }
        client.delete(&path, None).await.unwrap();
        assert_eq!(meta.save(&[client_at(2)]).await.unwrap(), vec![1001]);
    }

    /// Saves called together write in the order their lists were read: the newest cursor is
    /// the one stored, whichever call ZooKeeper would have answered last.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn saves_called_together_store_the_newest_cursor() {
        harness::init_tracing();
        let zk = ZooKeeper::start().await.unwrap();
        let client = cfg(&zk).connect().await.unwrap();
        let meta = std::sync::Arc::new(ZkMeta::new(client, "ordered", "127.0.0.1:3306", None));
        let next = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(100));
        for round in 0..30u64 {
            let saves: Vec<_> = (0..3)
                .map(|_| {
                    let (meta, next) = (meta.clone(), next.clone());
                    tokio::spawn(async move {
                        meta.save_with(|| {
                            let at = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                            vec![client_at(at)]
                        })
                        .await
                    })
                })
                .collect();
            for s in saves {
                assert_eq!(
                    s.await.unwrap().unwrap(),
                    Vec::<i16>::new(),
                    "round {round}"
                );
            }
            let newest = next.load(std::sync::atomic::Ordering::SeqCst) - 1;
            assert_eq!(stored_offset(&meta).await, Some(newest), "round {round}");
        }
    }

    /// Issue #17: a server whose running node was deleted and created again by another server's
    /// session must not overwrite the new owner's cursors, even before it notices (its gate still
    /// open). The new node has the same data version (0) as the old one; the parent's version,
    /// bumped by every win, is what rejects the stale write.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_replaced_owner_cannot_write_cursors() {
        harness::init_tracing();
        let zk = ZooKeeper::start().await.unwrap();
        let a = Election::spawn(cfg(&zk), spec("10.0.0.1:11111"));
        let a_fencing = active(&a).await;
        let a_fence = a_fencing.current().unwrap();
        assert!(a_fence.token.is_some());
        // What A's writer holds while it has not noticed anything: A's fence, an open gate.
        let (_keep, stale) = Fencing::fixed(a_fence.clone());
        let open: crate::store::Gate = std::sync::Arc::new(|| true);
        let meta_a = ZkMeta::new(
            cfg(&zk).connect().await.unwrap(),
            DEST,
            "127.0.0.1:3306",
            Some(open.clone()),
        )
        .fenced(stale);
        meta_a.save(&[client_at(100)]).await.unwrap();
        assert_eq!(stored_offset(&meta_a).await, Some(100));

        // A's node goes away (here: A stops) and B's session creates it again.
        a.stop().await;
        let b = Election::spawn(cfg(&zk), spec("10.0.0.2:11111"));
        let b_fencing = active(&b).await;
        let b_fence = b_fencing.current().unwrap();
        assert_eq!(
            b_fence.running_version, a_fence.running_version,
            "a re-created node restarts at the same version"
        );
        assert_ne!(b_fence.running_czxid, a_fence.running_czxid);
        assert_eq!(a_fencing.current(), None, "A's own ownership ended");
        let meta_b = ZkMeta::new(
            cfg(&zk).connect().await.unwrap(),
            DEST,
            "127.0.0.1:3306",
            Some(open),
        )
        .fenced(b_fencing);
        meta_b.save(&[client_at(200)]).await.unwrap();

        // The stale writer is refused by ZooKeeper and writes nothing.
        let err = meta_a.save(&[client_at(150)]).await.unwrap_err();
        assert!(
            matches!(err, MetaError::NotActive(ref d) if d == DEST),
            "{err}"
        );
        let err = meta_a.save(&[]).await.unwrap_err();
        assert!(
            matches!(err, MetaError::NotActive(_)),
            "no delete either: {err}"
        );
        assert_eq!(stored_offset(&meta_b).await, Some(200));

        // B keeps writing; an unchanged save writes nothing.
        meta_b.save(&[client_at(300)]).await.unwrap();
        let check = zk.client(Duration::from_secs(5)).await.unwrap();
        let cursor = paths::cursor(DEST, 1001);
        let (_, before) = check.get_data(&cursor).await.unwrap();
        meta_b.save(&[client_at(300)]).await.unwrap();
        let (_, after) = check.get_data(&cursor).await.unwrap();
        assert_eq!(before.version, after.version);
        assert_eq!(stored_offset(&meta_b).await, Some(300));

        // A client no longer subscribed disappears with its children, in the same multi.
        check
            .create(
                &paths::client_running(DEST, 1001),
                b"{}",
                &zookeeper_client::CreateMode::Ephemeral
                    .with_acls(zookeeper_client::Acls::anyone_all()),
            )
            .await
            .unwrap();
        meta_b.save(&[]).await.unwrap();
        assert!(meta_b.load().await.unwrap().is_empty());
        assert!(check
            .check_stat(&paths::client(DEST, 1001))
            .await
            .unwrap()
            .is_none());
        b.stop().await;
    }
}
