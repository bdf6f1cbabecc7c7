//! The instance's snapshot: starts a run (from config at first start, or on an operator's
//! request), resumes an unfinished one from its persisted progress, and persists progress once
//! every client acked past a chunk (see [`crate::snapshot`]).

use std::sync::{Arc, Mutex};

use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use crate::config::DestinationConfig;
use crate::meta::MetaBackend;
use crate::position::BinlogPosition;
use crate::snapshot::runner::{self, RunStatus, RunnerConfig};
use crate::snapshot::{split_table_name, Progress, SnapshotBridge};
use crate::store::Store;

/// Why a snapshot could not be started.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotStartError {
    /// One is running.
    #[error("a snapshot is running (run {0}); wait for it or stop the destination")]
    Running(String),
    /// No tables, or a name that is not `schema.table`.
    #[error("{0}")]
    BadTables(String),
    /// Clients are on catch-up streams, which would not carry the snapshot's rows.
    #[error("clients {0:?} fell behind and are catching up from the binlog, where snapshot rows are not; start the snapshot once they are back on the shared store (see /health)")]
    ClientsCatchingUp(Vec<i16>),
}

/// The snapshot machinery of one instance.
pub(crate) struct SnapshotControl {
    bridge: Arc<SnapshotBridge>,
    runner: RunnerConfig,
    /// The progress delivered to every client (what is, or is to be, persisted).
    acked: Mutex<Option<Progress>>,
    /// `acked` changed since it was last persisted.
    dirty: std::sync::atomic::AtomicBool,
    status: Arc<Mutex<RunStatus>>,
    task: Mutex<Option<(tokio::task::JoinHandle<()>, CancellationToken)>>,
    cancel: CancellationToken,
}

impl SnapshotControl {
    pub(crate) fn new(name: &str, config: &DestinationConfig, cancel: CancellationToken) -> Self {
        SnapshotControl {
            bridge: SnapshotBridge::new(),
            runner: RunnerConfig {
                destination: name.to_string(),
                source: config.source(),
                signal: split_table_name(&config.snapshot_signal_table)
                    .unwrap_or_else(|| ("canal_snapshot".into(), "signal".into())),
                chunk_rows: config.snapshot_chunk_rows,
                parallel_tables: config.snapshot_parallel_tables,
            },
            acked: Mutex::new(None),
            dirty: Default::default(),
            status: Arc::new(Mutex::new(RunStatus {
                state: "idle".into(),
                ..RunStatus::default()
            })),
            task: Mutex::new(None),
            cancel,
        }
    }

    pub(crate) fn bridge(&self) -> Arc<SnapshotBridge> {
        self.bridge.clone()
    }

    /// At instance start: resumes the stored run if unfinished, or starts the configured tables'
    /// snapshot when no run was ever stored.
    pub(crate) async fn resume_or_start(
        &self,
        meta: &MetaBackend,
        store: &Store,
        configured: &[String],
    ) {
        let stored = match meta.load_snapshot().await {
            Ok(Some(bytes)) => match Progress::from_json(&bytes) {
                Ok(p) => Some(p),
                Err(e) => {
                    error!(destination = %self.runner.destination, error = %e, "stored snapshot progress is corrupt; not resuming it (start a new snapshot to copy the tables)");
                    None
                }
            },
            Ok(None) => None,
            Err(e) => {
                error!(destination = %self.runner.destination, error = %e, "could not read the snapshot progress; not resuming");
                return;
            }
        };
        match stored {
            Some(p) if !p.finished() => {
                info!(destination = %self.runner.destination, run = %p.run, "resuming the unfinished snapshot");
                self.spawn(store, p, false);
            }
            Some(_) => {}
            None if !configured.is_empty() => {
                if let Err(e) = self.start(store, configured.to_vec()) {
                    error!(destination = %self.runner.destination, error = %e, "configured snapshot not started");
                }
            }
            None => {}
        }
    }

    /// Starts a new run over `tables`; returns its id.
    pub(crate) fn start(
        &self,
        store: &Store,
        tables: Vec<String>,
    ) -> Result<String, SnapshotStartError> {
        if tables.is_empty() {
            return Err(SnapshotStartError::BadTables("no tables given".into()));
        }
        if let Some(bad) = tables.iter().find(|t| split_table_name(t).is_none()) {
            return Err(SnapshotStartError::BadTables(format!(
                "{bad:?} is not schema.table"
            )));
        }
        if let Some(run) = self.running() {
            return Err(SnapshotStartError::Running(run));
        }
        let detached = store.detached_clients();
        if !detached.is_empty() {
            return Err(SnapshotStartError::ClientsCatchingUp(detached));
        }
        let p = Progress::new(runner::new_run_id(), &tables, runner::started_now());
        let run = p.run.clone();
        self.spawn(store, p, true);
        Ok(run)
    }

    fn running(&self) -> Option<String> {
        let task = self.task.lock().unwrap_or_else(|e| e.into_inner());
        match task.as_ref() {
            Some((h, _)) if !h.is_finished() => Some(
                self.status
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .run
                    .clone(),
            ),
            _ => None,
        }
    }

    fn spawn(&self, store: &Store, progress: Progress, new_run: bool) {
        *self.acked.lock().unwrap_or_else(|e| e.into_inner()) = Some(progress.clone());
        if new_run {
            self.dirty.store(true, std::sync::atomic::Ordering::Relaxed);
        }
        let cancel = self.cancel.child_token();
        let (cfg, bridge, status, c) = (
            self.runner.clone(),
            self.bridge.clone(),
            self.status.clone(),
            cancel.clone(),
        );
        let span =
            tracing::info_span!("snapshot", destination = %cfg.destination, run = %progress.run);
        // No client leaves the shared store for a catch-up stream while the run lasts (nor
        // while its rows are held there, see the store's lanes).
        store.hold_detach(true);
        let store = store.clone();
        let handle = tokio::spawn(tracing::Instrument::instrument(
            async move {
                if let Err(e) = runner::run(cfg, bridge, progress, status, c).await {
                    error!(error = %e, "snapshot stopped");
                }
                store.hold_detach(false);
            },
            span,
        ));
        *self.task.lock().unwrap_or_else(|e| e.into_inner()) = Some((handle, cancel));
    }

    /// The run as operators see it.
    pub(crate) fn status(&self) -> RunStatus {
        self.status
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// After a successful cursor save: persists progress of chunks every client acked past.
    pub(crate) async fn persist(&self, store: &Store, meta: &MetaBackend) {
        let clients = store.clients();
        let mut min: Option<BinlogPosition> = None;
        for c in &clients {
            let Some(p) = &c.cursor else {
                // A client that acked nothing has none of the chunks yet.
                min = None;
                break;
            };
            min = match min {
                Some(m) if m.try_cmp(&p.binlog) != Some(std::cmp::Ordering::Greater) => Some(m),
                _ => Some(p.binlog.clone()),
            };
        }
        let updates = match &min {
            Some(m) => self.bridge.take_acked(m),
            None => Vec::new(),
        };
        let json = {
            let mut acked = self.acked.lock().unwrap_or_else(|e| e.into_inner());
            let Some(p) = acked.as_mut() else { return };
            let changed = !updates.is_empty();
            for u in updates {
                p.set(u);
            }
            if !changed && !self.dirty.load(std::sync::atomic::Ordering::Relaxed) {
                return;
            }
            p.to_json()
        };
        match meta.save_snapshot(json.as_bytes()).await {
            Ok(()) => self
                .dirty
                .store(false, std::sync::atomic::Ordering::Relaxed),
            Err(e) => {
                self.dirty.store(true, std::sync::atomic::Ordering::Relaxed);
                warn!(destination = %self.runner.destination, error = %e, "could not persist the snapshot progress; retrying at the next flush");
            }
        }
    }
}
