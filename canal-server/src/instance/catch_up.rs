//! Catch-up streams: a client that fell behind the shared store (see `store::lane`) reads its
//! own replica stream from its acked cursor into a private store of the same bounds, until its
//! cursor reaches the shared store's window again and it rejoins.
//!
//! Why a replica connection and not a disk spill: the source already keeps the binlog (its
//! retention is the operator's knob), a second reader costs one connection and the decoder's
//! CPU only while someone is behind, memory stays bounded by `catch_up_streams` private stores,
//! and a client that never returns costs nothing at all. A spill would copy the binlog to our
//! disk for every lagging client and still need a bound that eventually stalls or drops.
//!
//! The requests of every client go through [`Instance`]'s `get`/`ack`/`rollback` here, which
//! route them to the shared store or the client's catch-up stream.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;
use tracing::{info, warn, Instrument};

use super::Instance;
use crate::binlog::source::SourceError;
use crate::config::DestinationConfig;
use crate::destination::{Destination, DestinationError, DestinationHandle};
use crate::position::{Cursor, EntryPosition};
use crate::store::{Batch, CatchUpStart, GetWait, Lane, Store, StoreError, StoredEntry};

/// How long one wait on a catch-up store lasts before the rejoin check runs again.
const RECHECK: Duration = Duration::from_millis(500);

/// Why a catch-up stream ended.
#[derive(Debug, Clone)]
enum StreamEnd {
    /// The client's cursor is behind the oldest binlog on the source.
    Purged { first_available: String },
    /// Any other failure that needs an operator (the reader retries the others itself).
    Failed(String),
}

/// One client's catch-up stream.
struct Stream {
    slot: usize,
    store: Store,
    cancel: CancellationToken,
    last_used: Mutex<Instant>,
    end: Arc<Mutex<Option<StreamEnd>>>,
}

impl Stream {
    fn touch(&self) {
        *self.last_used.lock().unwrap_or_else(|p| p.into_inner()) = Instant::now();
    }

    fn idle_for(&self) -> Duration {
        self.last_used
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .elapsed()
    }

    fn end(&self) -> Option<StreamEnd> {
        self.end.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn stop(&self) {
        self.cancel.cancel();
        self.store.close();
    }
}

/// The catch-up streams of one destination, at most `catch_up_streams` at once.
pub(super) struct CatchUps {
    config: DestinationConfig,
    data_dir: PathBuf,
    streams: Mutex<BTreeMap<i16, Arc<Stream>>>,
}

impl CatchUps {
    pub(super) fn new(config: DestinationConfig, data_dir: PathBuf) -> Self {
        Self {
            config,
            data_dir,
            streams: Mutex::new(BTreeMap::new()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<i16, Arc<Stream>>> {
        self.streams.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn get(&self, client_id: i16) -> Option<Arc<Stream>> {
        self.lock().get(&client_id).cloned()
    }

    /// Clients with a running catch-up stream.
    pub(super) fn running(&self) -> Vec<i16> {
        self.lock().keys().copied().collect()
    }

    /// Stops the stream of `client_id`, if any.
    pub(super) fn stop(&self, client_id: i16) {
        if let Some(s) = self.lock().remove(&client_id) {
            s.stop();
        }
    }

    /// Stops every stream.
    pub(super) fn stop_all(&self) {
        for (_, s) in std::mem::take(&mut *self.lock()) {
            s.stop();
        }
    }

    /// Stops streams whose client made no request for `catch_up_idle_ms`.
    pub(super) fn stop_idle(&self, name: &str) {
        let idle = Duration::from_millis(self.config.catch_up_idle_ms);
        let mut streams = self.lock();
        streams.retain(|id, s| {
            let keep = s.idle_for() < idle;
            if !keep {
                info!(destination = %name, client_id = id, "catch-up stream idle; stopped (the client keeps its cursor)");
                s.stop();
            }
            keep
        });
    }

    /// The server id a catch-up stream in `slot` uses towards the source.
    fn slave_id(&self, slot: usize) -> u32 {
        0x8000_0000 | ((self.config.slave_id & 0x00FF_FFFF) << 6) | (slot as u32 & 0x3F)
    }

    /// Starts a stream for `client_id` from `start`, unless every slot is taken (`Ok(None)`).
    fn start(
        &self,
        name: &str,
        client_id: i16,
        start: &CatchUpStart,
        shared: &Store,
    ) -> Result<Option<Arc<Stream>>, StoreError> {
        let mut streams = self.lock();
        if let Some(s) = streams.get(&client_id) {
            return Ok(Some(s.clone()));
        }
        let Some(slot) = (0..self.config.catch_up_streams)
            .find(|slot| !streams.values().any(|s| s.slot == *slot))
        else {
            return Ok(None);
        };
        let store = shared.sibling();
        store
            .subscribe(client_id, &start.filter, Some(start.cursor.clone()))
            .or_else(|_| store.subscribe(client_id, "", Some(start.cursor.clone())))
            .map_err(|_| StoreError::Closed(name.to_string()))?;
        store.set_base(start.cursor.clone());
        store.set_next_batch_id(client_id, start.next_batch_id);
        let mut config = self.config.clone();
        config.slave_id = self.slave_id(slot);
        let handle = Destination::spawn_reader(
            name,
            config,
            self.data_dir.clone(),
            Cursor::of(&start.cursor),
        )
        .map_err(|e| StoreError::CatchUpFailed {
            client_id,
            message: e.to_string(),
        })?;
        let stream = Arc::new(Stream {
            slot,
            store: store.clone(),
            cancel: CancellationToken::new(),
            last_used: Mutex::new(Instant::now()),
            end: Arc::new(Mutex::new(None)),
        });
        info!(destination = %name, client_id, cursor = %start.cursor.binlog, slot, "client continues on a catch-up stream");
        let span = tracing::info_span!("catch_up", destination = %name, client_id);
        tokio::spawn(
            feed(handle, store, stream.cancel.clone(), stream.end.clone()).instrument(span),
        );
        streams.insert(client_id, stream.clone());
        Ok(Some(stream))
    }
}

/// Moves a catch-up reader's entries into its private store until stopped; records how it ended.
async fn feed(
    mut handle: DestinationHandle,
    store: Store,
    cancel: CancellationToken,
    end: Arc<Mutex<Option<StreamEnd>>>,
) {
    let mut parsed = Vec::with_capacity(256);
    let mut stored = std::collections::VecDeque::with_capacity(256);
    loop {
        let first = tokio::select! {
            _ = cancel.cancelled() => break,
            e = handle.recv() => match e {
                Some(e) => e,
                None => break,
            },
        };
        parsed.push(first);
        handle.try_recv_many(256, &mut parsed);
        stored.extend(parsed.drain(..).map(|e| StoredEntry::from_parsed(&e)));
        let put = tokio::select! {
            _ = cancel.cancelled() => break,
            r = store.put_many(&mut stored) => r,
        };
        if put.is_err() {
            break;
        }
    }
    let outcome = match handle.stop().await {
        Ok(()) => None,
        Err(DestinationError::Source {
            source: SourceError::Purged {
                first_available, ..
            },
            ..
        }) => Some(StreamEnd::Purged { first_available }),
        Err(e) => {
            warn!(error = %e, "catch-up stream failed");
            Some(StreamEnd::Failed(e.to_string()))
        }
    };
    if outcome.is_some() {
        *end.lock().unwrap_or_else(|p| p.into_inner()) = outcome;
    }
}

/// The wait for one round on a catch-up store: at most [`RECHECK`], so that a client that
/// reached the shared window rejoins it soon.
fn capped(wait: GetWait, deadline: Option<tokio::time::Instant>) -> GetWait {
    let left = deadline.map(|d| d.saturating_duration_since(tokio::time::Instant::now()));
    match wait {
        GetWait::NonBlocking => GetWait::NonBlocking,
        GetWait::UpOrTransaction(_) => {
            GetWait::UpOrTransaction(left.unwrap_or(RECHECK).min(RECHECK))
        }
        _ => GetWait::Up(left.unwrap_or(RECHECK).min(RECHECK)),
    }
}

impl Instance {
    /// Hands out the next batch of `client_id` (Canal's `getWithoutAck`) from the shared store,
    /// or from its catch-up stream while it is behind the shared window.
    pub async fn get(
        &self,
        client_id: i16,
        fetch_size: i32,
        wait: GetWait,
    ) -> Result<Batch, StoreError> {
        let deadline = match wait {
            GetWait::Up(d) | GetWait::UpOrTransaction(d) => Some(tokio::time::Instant::now() + d),
            _ => None,
        };
        loop {
            match self.store.get(client_id, fetch_size, wait).await {
                Err(StoreError::Detached { .. }) => {}
                other => return other,
            }
            let Some(start) = self.store.catch_up_start(client_id) else {
                continue;
            };
            let expired = || deadline.is_some_and(|d| tokio::time::Instant::now() >= d);
            let stream = match self.catch_ups.get(client_id) {
                Some(s) => s,
                None => {
                    if self
                        .store
                        .try_rejoin(client_id, &start.cursor, start.next_batch_id)
                    {
                        continue;
                    }
                    match self
                        .catch_ups
                        .start(&self.name, client_id, &start, &self.store)?
                    {
                        Some(s) => s,
                        None => {
                            // Every slot is busy: the client waits (its cursor is safe).
                            if wait != GetWait::NonBlocking && !expired() {
                                tokio::time::sleep(
                                    deadline
                                        .map(|d| {
                                            d.saturating_duration_since(tokio::time::Instant::now())
                                        })
                                        .unwrap_or(RECHECK)
                                        .min(RECHECK),
                                )
                                .await;
                            }
                            return Ok(Batch::empty());
                        }
                    }
                }
            };
            stream.touch();
            match stream.end() {
                Some(StreamEnd::Purged { first_available }) => {
                    self.catch_ups.stop(client_id);
                    self.store.mark_purged(client_id, &first_available);
                    continue;
                }
                Some(StreamEnd::Failed(message)) => {
                    self.catch_ups.stop(client_id);
                    return Err(StoreError::CatchUpFailed { client_id, message });
                }
                None => {}
            }
            if let Some((next_id, 0)) = stream.store.batch_state(client_id) {
                if let Some(cursor) = private_cursor(&stream.store, client_id) {
                    if self.store.try_rejoin(client_id, &cursor, next_id) {
                        self.catch_ups.stop(client_id);
                        continue;
                    }
                }
            }
            let batch = stream
                .store
                .get(client_id, fetch_size, capped(wait, deadline))
                .await?;
            if batch.id != -1 || wait == GetWait::NonBlocking || expired() {
                return Ok(batch);
            }
        }
    }

    /// Acks `batch_id` of `client_id` where it was handed out. Returns the rows it held and the
    /// client's cursor after the ack.
    pub fn ack(
        &self,
        client_id: i16,
        batch_id: i64,
    ) -> Result<(u64, Option<EntryPosition>), StoreError> {
        let Some(stream) = self.catch_up_owning(client_id) else {
            return self.store.ack(client_id, batch_id);
        };
        stream.touch();
        let (rows, cursor) = stream.store.ack(client_id, batch_id)?;
        if let (Some(c), Some((next_id, _))) = (&cursor, stream.store.batch_state(client_id)) {
            self.store
                .record_catch_up_ack(client_id, c.clone(), next_id);
        }
        Ok((rows, cursor))
    }

    /// Rolls back `client_id` (`0` = every outstanding batch) where its batches were handed out.
    pub fn rollback(&self, client_id: i16, batch_id: i64) -> Result<(), StoreError> {
        match self.catch_up_owning(client_id) {
            Some(stream) => stream.store.rollback(client_id, batch_id),
            None => self.store.rollback(client_id, batch_id),
        }
    }

    /// [`Store::rollback_if_outstanding`] where the client's batches were handed out.
    pub fn rollback_if_outstanding(&self, client_id: i16, batch_id: i64) -> bool {
        self.store.rollback_if_outstanding(client_id, batch_id)
            || self
                .catch_ups
                .get(client_id)
                .is_some_and(|s| s.store.rollback_if_outstanding(client_id, batch_id))
    }

    /// Removes a client (UNSUBSCRIPTION, or an operator dropping an abandoned client id): its
    /// catch-up stream stops and entries only it still needed are freed.
    pub fn unsubscribe(&self, client_id: i16) {
        self.catch_ups.stop(client_id);
        self.store.unsubscribe(client_id);
    }

    /// The catch-up stream that holds the client's outstanding batches: none while batches from
    /// the shared store are out or the client is on the shared window.
    fn catch_up_owning(&self, client_id: i16) -> Option<Arc<Stream>> {
        match self.store.lane(client_id) {
            Some(Lane::Shared) | None => return None,
            _ => {}
        }
        if self
            .store
            .batch_state(client_id)
            .is_some_and(|(_, out)| out > 0)
        {
            return None;
        }
        self.catch_ups.get(client_id)
    }
}

/// The acked cursor of the only client of a catch-up store.
fn private_cursor(store: &Store, client_id: i16) -> Option<EntryPosition> {
    store
        .clients()
        .into_iter()
        .find(|c| c.client_id == client_id)
        .and_then(|c| c.cursor)
}
