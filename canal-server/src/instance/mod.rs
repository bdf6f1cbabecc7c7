//! A served destination: the parser ([`Destination`]) feeding the bounded [`Store`], the clients'
//! subscriptions and cursors (`meta.dat` or ZooKeeper) flushed periodically and on
//! stop, and the resume point (the minimum acked cursor of the clients,
//! [`resume_cursor`]) used when it starts.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Mutex as AsyncMutex;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn, Instrument};

use crate::config::DestinationConfig;
use crate::destination::{Destination, DestinationError, DestinationStatus, StartHook};
use crate::meta::{MetaBackend, MetaError};
use crate::position::resume_cursor;
use crate::store::{Gate, Store, StoreConfig};

mod builder;
mod catch_up;
mod pump;
mod snapshot;

pub use snapshot::SnapshotStartError;

pub use builder::InstanceBuilder;

/// How an instance persists client state and whether it is fenced (what [`InstanceBuilder`]
/// decided).
struct InstanceOptions {
    /// Cursor flush period.
    flush_period: Duration,
    /// Where subscriptions and cursors live.
    meta: MetaBackend,
    /// HA gate: hand out batches only while it says so.
    gate: Option<Gate>,
}

/// Why an instance could not start.
#[derive(Debug, thiserror::Error)]
pub enum InstanceError {
    /// The destination could not start.
    #[error(transparent)]
    Destination(#[from] DestinationError),
    /// The meta file is unusable.
    #[error("destination {destination}: {source}")]
    Meta {
        /// Destination name.
        destination: String,
        /// What went wrong.
        #[source]
        source: MetaError,
    },
}

/// A running destination with its store; shared by the sessions of its clients.
pub struct Instance {
    name: String,
    store: Store,
    meta: Arc<MetaBackend>,
    history_path: PathBuf,
    /// The parser's status (replaced when the parser starts over past purged cursors).
    status: Arc<std::sync::Mutex<tokio::sync::watch::Receiver<DestinationStatus>>>,
    /// Clients that fell behind the shared store, each on its own replica stream.
    catch_ups: catch_up::CatchUps,
    /// Tells the pump an operator reset a purged cursor (the parser may start again).
    restart: Arc<tokio::sync::Notify>,
    cancel: CancellationToken,
    tasks: AsyncMutex<Vec<tokio::task::JoinHandle<()>>>,
    /// Write cursors on every ack (flush period 0).
    flush_on_ack: bool,
    handle_result: Arc<AsyncMutex<Option<Result<(), DestinationError>>>>,
    /// The snapshot in the stream (idle unless configured or asked for).
    snapshot: snapshot::SnapshotControl,
    /// The MQ publisher's status, when the destination publishes to a broker.
    producer: std::sync::OnceLock<crate::mq::StatusCell>,
}

impl std::fmt::Debug for Instance {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Instance")
            .field("name", &self.name)
            .finish()
    }
}

/// The start hook of an instance that resumes from no cursor: the store learns where the
/// stream begins, and every subscribed client's cursor (that start, inclusive) is written
/// before the parser reads an event. Without that write, a server killed before its first
/// cursor flush leaves a successor no cursor, and the successor starts from the configured
/// start (the end of the binlog by default), skipping every row written in between.
fn durable_start(name: &str, store: Store, meta: Arc<MetaBackend>) -> StartHook {
    let name = name.to_string();
    Box::new(move |start| {
        store.set_base(start);
        let (store, meta, name) = (store.clone(), meta.clone(), name.clone());
        Box::pin(async move {
            if store.clients().is_empty() {
                return Ok(());
            }
            // No catch-up stream exists yet: a dropped client only leaves the store.
            for id in save_clients(&name, &store, &meta)
                .await
                .map_err(|e| e.to_string())?
            {
                store.unsubscribe(id);
            }
            info!(destination = %name, "stored where the stream begins");
            Ok(())
        })
    })
}

/// Writes the store's subscriptions and cursors. Returns the clients whose znode an operator
/// deleted in ZooKeeper (logged here): the caller unsubscribes them.
async fn save_clients(
    name: &str,
    store: &Store,
    meta: &MetaBackend,
) -> Result<Vec<i16>, MetaError> {
    // The list is read when this save's turn comes: saves may be called together.
    let dropped = meta.save_with(|| store.clients()).await?;
    for id in &dropped {
        info!(destination = %name, client_id = id, "the client's znode was deleted in ZooKeeper: client dropped");
    }
    Ok(dropped)
}

impl Instance {
    /// Restores subscriptions, starts the parser from the clients' minimum cursor (or the configured
    /// start) and the pump that moves entries into the store.
    ///
    /// The store learns where the stream begins (the cursor a client has before it acks) before
    /// any entry reaches it: when resuming from a cursor, here, before the parser is spawned;
    /// otherwise the configured start is resolved by the parser on its first connection to the
    /// source (the end of the binlog and a timestamp need the source, which may be down now and
    /// is retried there), and the parser seeds the store and stores every client's cursor
    /// through a [`StartHook`] right then, before it reads the first event.
    async fn start(
        name: &str,
        config: DestinationConfig,
        store_config: StoreConfig,
        data_dir: PathBuf,
        options: InstanceOptions,
    ) -> Result<Arc<Self>, InstanceError> {
        let InstanceOptions {
            flush_period,
            meta,
            gate,
        } = options;
        let meta = Arc::new(meta);
        let clients = meta.load().await.map_err(|source| InstanceError::Meta {
            destination: name.to_string(),
            source,
        })?;
        let history_path = data_dir.join(name).join("schema-history.json");
        if let MetaBackend::Zk(z) = &*meta {
            // A standby that takes over decodes old positions with the history the former
            // active kept in ZooKeeper.
            match z
                .client()
                .get_data(&zk_coord::paths::schema_history(name))
                .await
            {
                Ok((data, _)) if !data.is_empty() => {
                    if let Some(dir) = history_path.parent() {
                        let _ = std::fs::create_dir_all(dir);
                    }
                    if let Err(e) = std::fs::write(&history_path, &data) {
                        warn!(destination = %name, error = %e, "could not write the schema history from ZooKeeper");
                    }
                }
                _ => {}
            }
        }
        let mut store = Store::new(name, store_config);
        if let Some(g) = gate {
            store = store.with_gate(g);
        }
        for c in &clients {
            if let Err(e) = store.subscribe(c.client_id, &c.filter, c.cursor.clone()) {
                warn!(destination = %name, client_id = c.client_id, error = %e, "stored filter is invalid; subscribing without it");
                let _ = store.subscribe(c.client_id, "", c.cursor.clone());
            }
        }
        // The MQ publisher is a client like any other: its cursor counts for the resume point.
        if let Some(mq) = &config.mq {
            if !store.is_subscribed(mq.client_id) {
                let _ = store.subscribe(mq.client_id, "", None);
            }
        }
        // Resume from the oldest acked cursor; a client without a cursor means "from the
        // configured start".
        let cursor = resume_cursor(clients.iter().map(|c| c.cursor.as_ref()));
        // A client that subscribes and acks nothing still has a cursor: where the stream began.
        let on_start: Option<StartHook> = match &cursor {
            Some(c) => {
                info!(destination = %name, cursor = %c.position, "resuming from the clients' minimum acked cursor");
                store.set_base(c.stream_start());
                None
            }
            None => Some(durable_start(name, store.clone(), meta.clone())),
        };
        let cancel = CancellationToken::new();
        let snapshot = snapshot::SnapshotControl::new(name, &config, cancel.clone());
        let handle = Destination::spawn_with_snapshot(
            name,
            config.clone(),
            data_dir.clone(),
            cursor,
            on_start,
            snapshot.bridge(),
        )?;
        let status = Arc::new(std::sync::Mutex::new(handle.watch_status()));
        let snapshot_tables = config.snapshot_tables.clone();
        let bridge = snapshot.bridge();
        let handle_result = Arc::new(AsyncMutex::new(None));
        let restart = Arc::new(tokio::sync::Notify::new());
        let inst = Arc::new(Self {
            name: name.to_string(),
            store: store.clone(),
            meta,
            history_path,
            flush_on_ack: flush_period.is_zero(),
            status: status.clone(),
            catch_ups: catch_up::CatchUps::new(config.clone(), data_dir.clone()),
            restart: restart.clone(),
            cancel: cancel.clone(),
            tasks: AsyncMutex::new(Vec::new()),
            handle_result: handle_result.clone(),
            snapshot,
            producer: std::sync::OnceLock::new(),
        });
        let span = tracing::info_span!("instance", destination = %name);
        let config_mq = config.mq.clone();
        let parser = pump::Parser {
            name: name.to_string(),
            config,
            data_dir,
            handle: Some(handle),
            status,
            restart,
            snapshot: bridge,
        };
        let pump = tokio::spawn(
            pump::pump(parser, store, cancel.clone(), handle_result).instrument(span.clone()),
        );
        let flusher = tokio::spawn(
            pump::flusher(Arc::downgrade(&inst), flush_period, cancel.clone())
                .instrument(span.clone()),
        );
        let publisher = config_mq.map(|mq| {
            let (task, status) = crate::mq::spawn(Arc::downgrade(&inst), mq, cancel.clone());
            let _ = inst.producer.set(status);
            task
        });
        let tender = tokio::spawn(pump::tender(Arc::downgrade(&inst), cancel).instrument(span));
        if let Ok(mut t) = inst.tasks.try_lock() {
            t.push(pump);
            t.push(flusher);
            t.push(tender);
            t.extend(publisher);
        }
        inst.snapshot
            .resume_or_start(&inst.meta, &inst.store, &snapshot_tables)
            .await;
        Ok(inst)
    }

    /// The destination's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The MQ publisher's status, when the destination publishes to a broker.
    pub fn producer_status(&self) -> Option<crate::mq::ProducerStatus> {
        self.producer
            .get()
            .map(|c| c.lock().unwrap_or_else(|p| p.into_inner()).clone())
    }

    /// Its store.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The parser's status.
    pub fn status(&self) -> DestinationStatus {
        self.status
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .borrow()
            .clone()
    }

    /// Per-client status: the store's view plus whether a catch-up stream runs for it.
    pub fn client_status(&self) -> Vec<(crate::store::ClientStatus, bool)> {
        let streams = self.catch_ups.running();
        self.store
            .client_status()
            .into_iter()
            .map(|c| {
                let catching_up = streams.contains(&c.client_id);
                (c, catching_up)
            })
            .collect()
    }

    /// Sets the cursor of `client_id` (an operator's reset, for example past a purged
    /// binlog): it continues from `cursor` (a catch-up stream, then the shared store) and the
    /// cursor is persisted now. A parser that waited because every client was purged starts
    /// again.
    pub async fn reset_client(
        &self,
        client_id: i16,
        cursor: crate::position::EntryPosition,
    ) -> Result<(), crate::store::StoreError> {
        self.catch_ups.stop(client_id);
        self.store.reset_cursor(client_id, cursor)?;
        if let Err(e) = self.flush().await {
            warn!(destination = %self.name, error = %e, "could not persist the reset cursor");
        }
        self.restart.notify_one();
        Ok(())
    }

    /// Drops `client_id` for good (an abandoned consumer): unsubscribes it and removes its
    /// stored cursor. False when it was not subscribed.
    pub async fn drop_client(&self, client_id: i16) -> bool {
        if !self.store.is_subscribed(client_id) {
            return false;
        }
        self.unsubscribe(client_id);
        if let Err(e) = self.flush().await {
            warn!(destination = %self.name, error = %e, "could not persist the dropped client");
        }
        info!(destination = %self.name, client_id, "client dropped by an operator");
        true
    }

    /// Starts a snapshot of `tables` (`schema.table`) in the stream; returns the run id.
    pub fn start_snapshot(&self, tables: Vec<String>) -> Result<String, SnapshotStartError> {
        self.snapshot.start(&self.store, tables)
    }

    /// The current (or last) snapshot run.
    pub fn snapshot_status(&self) -> crate::snapshot::runner::RunStatus {
        self.snapshot.status()
    }

    /// Persists snapshot progress every client acked past (after a cursor save).
    pub(crate) async fn persist_snapshot(&self) {
        self.snapshot.persist(&self.store, &self.meta).await;
    }

    /// Whether cursors are written on every ack instead of periodically.
    pub fn flush_on_ack(&self) -> bool {
        self.flush_on_ack
    }

    /// Writes subscriptions and cursors now.
    pub async fn flush(&self) -> Result<(), MetaError> {
        for id in save_clients(&self.name, &self.store, &self.meta).await? {
            self.unsubscribe(id);
        }
        Ok(())
    }

    /// Copies the schema history file to ZooKeeper (HA mode) when it changed since `last`.
    async fn upload_history(&self, last: &mut Option<(u64, std::time::SystemTime)>) {
        let MetaBackend::Zk(z) = &*self.meta else {
            return;
        };
        let Ok(md) = std::fs::metadata(&self.history_path) else {
            return;
        };
        let stamp = (md.len(), md.modified().unwrap_or(std::time::UNIX_EPOCH));
        if last.as_ref() == Some(&stamp) {
            return;
        }
        // ZooKeeper's default node limit is 1 MiB.
        if md.len() > 1000 * 1024 {
            warn!(destination = %self.name, bytes = md.len(), "schema history too large for one znode; not replicated");
            *last = Some(stamp);
            return;
        }
        if let Ok(data) = std::fs::read(&self.history_path) {
            match zk_coord::put_persistent(
                z.client(),
                &zk_coord::paths::schema_history(&self.name),
                &data,
            )
            .await
            {
                Ok(()) => *last = Some(stamp),
                Err(e) => {
                    warn!(destination = %self.name, error = %e, "could not replicate the schema history")
                }
            }
        }
    }

    /// Stops the parser and the pump, closes the store and flushes cursors.
    pub async fn stop(&self) {
        self.cancel.cancel();
        self.catch_ups.stop_all();
        self.store.close();
        let tasks: Vec<_> = self.tasks.lock().await.drain(..).collect();
        for t in tasks {
            let _ = t.await;
        }
        match self.flush().await {
            Ok(()) => self.persist_snapshot().await,
            Err(e) => {
                warn!(destination = %self.name, error = %e, "could not flush cursors on stop")
            }
        }
        if let Some(Err(e)) = self.handle_result.lock().await.take() {
            warn!(destination = %self.name, error = %e, "destination had failed");
        }
    }
}
