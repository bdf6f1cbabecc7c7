//! The instance's two tasks: the pump that moves parsed entries into the store (with Canal's
//! `canal_instance_*` metrics) and the flusher that writes cursors periodically.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Mutex as AsyncMutex;
use tokio_util::sync::CancellationToken;
use tracing::warn;

use super::Instance;
use crate::destination::{DestinationError, DestinationHandle};
use crate::store::{Store, StoredEntry};

/// Most entries moved from the parser into the store at once.
const PUMP_BATCH: usize = 256;

/// Moves entries from the parser into the store until cancelled or the parser ends; stores the
/// parser's result in `result`.
pub(super) async fn pump(
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
    let r = handle.stop().await;
    if let Err(e) = &r {
        warn!(error = %e, "destination stopped with an error");
    }
    *result.lock().await = Some(r);
}

/// Writes cursors every `period` while they changed, and replicates the schema history.
pub(super) async fn flusher(
    inst: std::sync::Weak<Instance>,
    period: Duration,
    cancel: CancellationToken,
) {
    let mut last: Option<Vec<(i16, String, Option<String>)>> = None;
    let mut history_stamp = None;
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
            match inst.flush().await {
                Ok(()) => last = Some(now),
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
