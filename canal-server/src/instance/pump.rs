//! The instance's tasks: the pump that moves parsed entries into the store (with Canal's
//! `canal_instance_*` metrics) and restarts the parser past clients whose cursors were purged,
//! the flusher that writes cursors periodically, and the tender that stops idle catch-up
//! streams and publishes per-client metrics.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Mutex as AsyncMutex;
use tokio::sync::{watch, Notify};
use tokio_util::sync::CancellationToken;
use tracing::warn;

use super::Instance;
use crate::binlog::source::SourceError;
use crate::config::DestinationConfig;
use crate::destination::{Destination, DestinationError, DestinationHandle, DestinationStatus};
use crate::position::resume_cursor;
use crate::store::{Lane, Store, StoredEntry};

/// Cursors are saved at least this often even when unchanged.
const RESAVE: Duration = Duration::from_secs(5);

/// Most entries moved from the parser into the store at once.
const PUMP_BATCH: usize = 256;

/// What the pump needs to start the parser over.
pub(super) struct Parser {
    pub(super) name: String,
    pub(super) config: DestinationConfig,
    pub(super) data_dir: std::path::PathBuf,
    pub(super) handle: Option<DestinationHandle>,
    /// The instance's view of the parser's status (replaced when the parser starts over).
    pub(super) status: Arc<std::sync::Mutex<watch::Receiver<DestinationStatus>>>,
    /// Signalled when an operator reset a purged client's cursor.
    pub(super) restart: Arc<Notify>,
    /// The snapshot's bridge, handed to every parser started.
    pub(super) snapshot: Arc<crate::snapshot::SnapshotBridge>,
}

/// Runs the parser into the store until cancelled or it fails for good. When the parser cannot
/// start because the binlog it resumes from was purged, the clients behind the oldest binlog
/// are marked purged (their GETs fail with how to recover) and the parser starts over from the
/// others' minimum cursor; when every client is purged it waits for an operator's reset.
pub(super) async fn pump(
    mut parser: Parser,
    store: Store,
    cancel: CancellationToken,
    result: Arc<AsyncMutex<Option<Result<(), DestinationError>>>>,
) {
    loop {
        let Some(mut handle) = parser.handle.take() else {
            return;
        };
        feed(&mut handle, &store, &cancel).await;
        let r = handle.stop().await;
        let first_available = match &r {
            Err(DestinationError::Source {
                source:
                    SourceError::Purged {
                        first_available, ..
                    },
                ..
            }) if store.usage().0 == 0 && !cancel.is_cancelled() => first_available.clone(),
            _ => {
                if let Err(e) = &r {
                    warn!(error = %e, "destination stopped with an error");
                }
                *result.lock().await = Some(r);
                return;
            }
        };
        let purged = store.mark_purged_behind(&first_available);
        warn!(clients = ?purged, %first_available, "these clients' cursors were purged from the source; their requests fail until an operator resets or drops them");
        let waiting_for_reset = store
            .client_status()
            .iter()
            .all(|c| matches!(c.lane, Lane::Purged { .. }));
        if waiting_for_reset {
            *result.lock().await = Some(r);
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = parser.restart.notified() => {}
            }
            *result.lock().await = None;
        }
        let clients: Vec<_> = store
            .client_status()
            .into_iter()
            .filter(|c| !matches!(c.lane, Lane::Purged { .. }))
            .collect();
        let cursor = resume_cursor(clients.iter().map(|c| c.cursor.as_ref()));
        if let Some(c) = &cursor {
            store.rebase(c.stream_start());
        }
        match Destination::spawn_with_snapshot(
            &parser.name,
            parser.config.clone(),
            parser.data_dir.clone(),
            cursor,
            None,
            parser.snapshot.clone(),
        ) {
            Ok(h) => {
                *parser.status.lock().unwrap_or_else(|p| p.into_inner()) = h.watch_status();
                parser.handle = Some(h);
            }
            Err(e) => {
                *result.lock().await = Some(Err(e));
                return;
            }
        }
    }
}

/// Moves entries from the parser into the store until cancelled, the store closes or the
/// parser ends.
async fn feed(handle: &mut DestinationHandle, store: &Store, cancel: &CancellationToken) {
    let put_rows =
        metrics::counter!("canal_instance_put_rows", "destination" => handle.name().to_string());
    let put_seq = metrics::counter!("canal_instance_store_produce_seq", "destination" => handle.name().to_string());
    let transactions = metrics::counter!("canal_instance_transactions", "destination" => handle.name().to_string());
    let delay =
        metrics::gauge!("canal_instance_put_delay", "destination" => handle.name().to_string());
    // Entries move in runs: whatever the parser has queued (up to PUMP_BATCH) is classified and
    // put under one store lock with one wake-up of the waiting gets.
    let mut parsed = Vec::with_capacity(PUMP_BATCH);
    let mut stored = std::collections::VecDeque::with_capacity(PUMP_BATCH);
    loop {
        let first = tokio::select! {
            _ = cancel.cancelled() => break,
            e = handle.recv() => match e {
                Some(e) => e,
                None => break,
            },
        };
        parsed.push(first);
        handle.try_recv_many(PUMP_BATCH, &mut parsed);
        let mut rows = 0;
        let mut ends = 0;
        let mut newest = None;
        for entry in parsed.drain(..) {
            let s = StoredEntry::from_parsed(&entry);
            if entry.entry_type() == canal_protocol::entry::EntryType::Transactionend {
                ends += 1;
            }
            rows += s.rows;
            newest = Some(s.execute_time);
            stored.push_back(s);
        }
        transactions.increment(ends);
        put_rows.increment(rows);
        put_seq.increment(stored.len() as u64);
        if let Some(t) = newest {
            delay.set((now_ms() - t).max(0) as f64);
        }
        let put = tokio::select! {
            _ = cancel.cancelled() => break,
            r = store.put_many(&mut stored) => r,
        };
        if put.is_err() {
            break;
        }
    }
}

/// Writes cursors every `period` while they changed, and replicates the schema history.
pub(super) async fn flusher(
    inst: std::sync::Weak<Instance>,
    period: Duration,
    cancel: CancellationToken,
) {
    let mut last: Option<Vec<(i16, String, Option<String>)>> = None;
    let mut history_stamp = None;
    // With a zero period acks write cursors themselves; this task still ticks for the rest.
    let period = if period.is_zero() {
        Duration::from_secs(1)
    } else {
        period
    };
    let mut flushed = tokio::time::Instant::now();
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
        // Unchanged cursors are still saved now and then: a save notices clients an operator
        // dropped by deleting their znode (it writes nothing when nothing changed).
        if last.as_ref() != Some(&now) || flushed.elapsed() >= RESAVE {
            flushed = tokio::time::Instant::now();
            match inst.flush().await {
                Ok(()) => {
                    last = Some(now);
                    inst.persist_snapshot().await;
                }
                Err(e) => warn!(error = %e, "cursor flush failed; retrying next period"),
            }
        }
        inst.upload_history(&mut history_stamp).await;
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Every second: stops catch-up streams whose client went quiet and publishes per-client
/// metrics (`canal_instance_client_unacked_entries`, `canal_instance_client_catching_up`,
/// `canal_instance_client_idle_seconds`, labelled by destination and client id).
pub(super) async fn tender(inst: std::sync::Weak<Instance>, cancel: CancellationToken) {
    let mut known: Vec<i16> = Vec::new();
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
        let Some(inst) = inst.upgrade() else { return };
        inst.catch_ups.stop_idle(&inst.name);
        let streams = inst.catch_ups.running();
        let now = std::time::SystemTime::now();
        let status = inst.store.client_status();
        for c in &status {
            let labels = [
                ("destination", inst.name.clone()),
                ("client_id", c.client_id.to_string()),
            ];
            metrics::gauge!("canal_instance_client_unacked_entries", &labels)
                .set(c.unacked_entries as f64);
            metrics::gauge!("canal_instance_client_catching_up", &labels)
                .set(f64::from(u8::from(streams.contains(&c.client_id))));
            metrics::gauge!("canal_instance_client_idle_seconds", &labels).set(
                now.duration_since(c.last_seen)
                    .map(|d| d.as_secs_f64())
                    .unwrap_or(0.0),
            );
        }
        // Dropped clients: their series go to zero rather than freezing at the last value.
        for gone in known
            .iter()
            .filter(|id| !status.iter().any(|c| c.client_id == **id))
        {
            let labels = [
                ("destination", inst.name.clone()),
                ("client_id", gone.to_string()),
            ];
            metrics::gauge!("canal_instance_client_unacked_entries", &labels).set(0.0);
            metrics::gauge!("canal_instance_client_catching_up", &labels).set(0.0);
        }
        known = status.iter().map(|c| c.client_id).collect();
    }
}
