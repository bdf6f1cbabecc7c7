//! A served destination: the parser ([`Destination`]) feeding the bounded [`Store`], the clients'
//! subscriptions and cursors ([`MetaFile`]) flushed periodically and on stop, and the resume point
//! (the minimum acked cursor of the clients) used when it starts.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Mutex as AsyncMutex;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn, Instrument};

use crate::binlog::start::Cursor;
use crate::config::DestinationConfig;
use crate::destination::{Destination, DestinationError, DestinationHandle, DestinationStatus};
use crate::meta::{ClientRecord, MetaError, MetaFile};
use crate::store::{Store, StoreConfig, StoredEntry};

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
    meta: MetaFile,
    status: tokio::sync::watch::Receiver<DestinationStatus>,
    cancel: CancellationToken,
    tasks: AsyncMutex<Vec<tokio::task::JoinHandle<()>>>,
    handle_result: Arc<AsyncMutex<Option<Result<(), DestinationError>>>>,
}

impl std::fmt::Debug for Instance {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Instance")
            .field("name", &self.name)
            .finish()
    }
}

impl Instance {
    /// Restores subscriptions, starts the parser from the clients' minimum cursor (or the configured
    /// start) and the pump that moves entries into the store.
    pub fn start(
        name: &str,
        config: DestinationConfig,
        store_config: StoreConfig,
        data_dir: PathBuf,
        flush_period: Duration,
    ) -> Result<Arc<Self>, InstanceError> {
        let meta = MetaFile::new(&data_dir, name, &config.address);
        let clients = meta.load().map_err(|source| InstanceError::Meta {
            destination: name.to_string(),
            source,
        })?;
        let store = Store::new(name, store_config);
        for c in &clients {
            if let Err(e) = store.subscribe(c.client_id, &c.filter, c.cursor.clone()) {
                warn!(destination = %name, client_id = c.client_id, error = %e, "stored filter is invalid; subscribing without it");
                let _ = store.subscribe(c.client_id, "", c.cursor.clone());
            }
        }
        // Resume from the oldest acked cursor; a client without a cursor means "from the
        // configured start".
        let resume = if clients.is_empty() || clients.iter().any(|c| c.cursor.is_none()) {
            None
        } else {
            clients
                .iter()
                .filter_map(|c| c.cursor.clone())
                .min_by(|a, b| a.binlog.cmp(&b.binlog))
        };
        let cursor = resume.map(|p| Cursor {
            position: p.binlog.clone(),
            gtid: p.gtid.clone(),
        });
        if let Some(c) = &cursor {
            info!(destination = %name, cursor = %c.position, "resuming from the clients' minimum acked cursor");
        }
        let handle = Destination::spawn(name, config, data_dir, cursor)?;
        let status = handle.watch_status();
        let cancel = CancellationToken::new();
        let handle_result = Arc::new(AsyncMutex::new(None));
        let inst = Arc::new(Self {
            name: name.to_string(),
            store: store.clone(),
            meta,
            status,
            cancel: cancel.clone(),
            tasks: AsyncMutex::new(Vec::new()),
            handle_result: handle_result.clone(),
        });
        let span = tracing::info_span!("instance", destination = %name);
        let pump = tokio::spawn(
            pump(handle, store, cancel.clone(), handle_result).instrument(span.clone()),
        );
        let flusher =
            tokio::spawn(flusher(Arc::downgrade(&inst), flush_period, cancel).instrument(span));
        if let Ok(mut t) = inst.tasks.try_lock() {
            t.push(pump);
            t.push(flusher);
        }
        Ok(inst)
    }

    /// The destination's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Its store.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The parser's status.
    pub fn status(&self) -> DestinationStatus {
        self.status.borrow().clone()
    }

    /// Writes subscriptions and cursors now.
    pub fn flush(&self) -> Result<(), MetaError> {
        let clients: Vec<ClientRecord> = self
            .store
            .clients()
            .into_iter()
            .map(|c| ClientRecord {
                client_id: c.client_id,
                filter: c.filter,
                cursor: c.cursor,
            })
            .collect();
        self.meta.save(&clients)
    }

    /// Stops the parser and the pump, closes the store and flushes cursors.
    pub async fn stop(&self) {
        self.cancel.cancel();
        self.store.close();
        let tasks: Vec<_> = self.tasks.lock().await.drain(..).collect();
        for t in tasks {
            let _ = t.await;
        }
        if let Err(e) = self.flush() {
            warn!(destination = %self.name, error = %e, "could not flush cursors on stop");
        }
        if let Some(Err(e)) = self.handle_result.lock().await.take() {
            warn!(destination = %self.name, error = %e, "destination had failed");
        }
    }
}

async fn pump(
    mut handle: DestinationHandle,
    store: Store,
    cancel: CancellationToken,
    result: Arc<AsyncMutex<Option<Result<(), DestinationError>>>>,
) {
    let put_rows =
        metrics::counter!("canal_instance_put_rows", "destination" => handle.name().to_string());
    let put_seq = metrics::counter!("canal_instance_store_produce_seq", "destination" => handle.name().to_string());
    let transactions = metrics::counter!("canal_instance_transactions", "destination" => handle.name().to_string());
    let delay =
        metrics::gauge!("canal_instance_put_delay", "destination" => handle.name().to_string());
    loop {
        let entry = tokio::select! {
            _ = cancel.cancelled() => break,
            e = handle.recv() => match e {
                Some(e) => e,
                None => break,
            },
        };
        let stored = StoredEntry::from_parsed(&entry);
        if entry.entry_type() == canal_protocol::entry::EntryType::Transactionend {
            transactions.increment(1);
        }
        put_rows.increment(stored.rows);
        put_seq.increment(1);
        delay.set((now_ms() - stored.execute_time).max(0) as f64);
        let put = tokio::select! {
            _ = cancel.cancelled() => break,
            r = store.put(stored) => r,
        };
        if put.is_err() {
            break;
        }
    }
    let r = handle.stop().await;
    if let Err(e) = &r {
        warn!(error = %e, "destination stopped with an error");
    }
    *result.lock().await = Some(r);
}

async fn flusher(inst: std::sync::Weak<Instance>, period: Duration, cancel: CancellationToken) {
    let mut last: Option<Vec<(i16, String, Option<String>)>> = None;
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(period) => {}
        }
        let Some(inst) = inst.upgrade() else { return };
        let now: Vec<_> = inst
            .store
            .clients()
            .into_iter()
            .map(|c| {
                (
                    c.client_id,
                    c.filter,
                    c.cursor.map(|p| p.binlog.to_string()),
                )
            })
            .collect();
        if last.as_ref() != Some(&now) {
            match inst.flush() {
                Ok(()) => last = Some(now),
                Err(e) => warn!(error = %e, "cursor flush failed; retrying next period"),
            }
        }
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}
