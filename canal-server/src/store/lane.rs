//! Which clients the shared window holds entries for.
//!
//! Every client starts on the shared lane: the store keeps an entry until each shared client
//! acked it. When the store is full and a client holds its oldest entries while another shared
//! client has already acked at least half the window, the laggard is *detached*: the window stops
//! waiting for it, and the instance serves it from its own catch-up stream (a replica connection
//! from its cursor) until its cursor reaches the shared window again, when it *rejoins*. So an
//! abandoned or slow client id never stalls the others, and nobody's entries are dropped: a
//! detached client continues exactly from its acked cursor.
//!
//! A client whose cursor is behind the oldest binlog still on the source is *purged*: its GETs
//! fail with an error saying how to recover (reset the cursor or drop the client) until an
//! operator does.

use std::time::SystemTime;

use super::ring::Inner;
use super::{Store, StoreError};
use crate::position::{BinlogPosition, EntryPosition};

/// Where a client's entries come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lane {
    /// The shared window; the store holds entries until this client acked them.
    Shared,
    /// Fell behind the shared window; served from a catch-up stream from its cursor.
    Detached {
        /// When it was detached.
        since: SystemTime,
    },
    /// Its cursor is behind the oldest binlog on the source; an operator must reset or drop it.
    Purged {
        /// The oldest binlog the source still has.
        first_available: String,
    },
}

impl Lane {
    /// Whether the shared window holds entries for the client.
    pub fn is_shared(&self) -> bool {
        matches!(self, Lane::Shared)
    }
}

/// What `/health` shows about one client.
#[derive(Debug, Clone, PartialEq)]
pub struct ClientStatus {
    /// Client id.
    pub client_id: i16,
    /// Its filter text.
    pub filter: String,
    /// Its acked cursor.
    pub cursor: Option<EntryPosition>,
    /// Batches handed out and not acked (from the shared window).
    pub outstanding_batches: usize,
    /// Where its entries come from.
    pub lane: Lane,
    /// When it last made a request.
    pub last_seen: SystemTime,
    /// Entries in the shared window it has not acked (0 when detached).
    pub unacked_entries: u64,
    /// Serialized bytes of those entries.
    pub unacked_bytes: u64,
}

impl Inner {
    /// Frees what every shared client acked; when a put waits on a full window, first detaches
    /// the clients that hold it back (see the module doc). True when something was freed.
    pub(super) fn relieve(&mut self, detach: bool) -> bool {
        let mut freed = self.trim();
        if detach && self.put_waiting && self.detach_laggards() {
            freed |= self.trim();
        }
        freed
    }

    /// Detaches the shared clients holding the oldest entry when another shared client has acked
    /// at least half of the window. A client without a cursor (nothing to resume a catch-up
    /// stream from) stays. True when some client was detached.
    pub(super) fn detach_laggards(&mut self) -> bool {
        // Snapshot rows exist only in this window (a catch-up stream re-reads the binlog, where
        // they are not): while a snapshot runs or its rows are held, laggards hold everyone back.
        if self.hold_detach || self.snapshot_entries > 0 {
            return false;
        }
        let first = self.first_seq;
        let window = self.next_seq() - first;
        if window == 0 {
            return false;
        }
        let shared = || self.clients.values().filter(|c| c.lane.is_shared());
        let (Some(min), Some(max)) = (
            shared().map(|c| c.acked_seq).min(),
            shared().map(|c| c.acked_seq).max(),
        ) else {
            return false;
        };
        if min > first || max.saturating_sub(first) < (window / 2).max(1) {
            return false;
        }
        let now = SystemTime::now();
        let mut detached = Vec::new();
        for (id, c) in self.clients.iter_mut() {
            if c.lane.is_shared() && c.acked_seq == min && c.cursor.is_some() {
                c.lane = Lane::Detached { since: now };
                detached.push(*id);
            }
        }
        if !detached.is_empty() {
            tracing::info!(clients = ?detached, window, "clients fell behind the shared window; they continue on catch-up streams");
        }
        !detached.is_empty()
    }
}

/// Where a detached client's catch-up stream starts.
#[derive(Debug, Clone)]
pub struct CatchUpStart {
    /// Its acked cursor.
    pub cursor: EntryPosition,
    /// Its filter text.
    pub filter: String,
    /// The id its next batch gets (batch ids continue across lanes).
    pub next_batch_id: i64,
}

impl Store {
    /// While `on`, no client is detached to a catch-up stream (a snapshot runs).
    pub fn hold_detach(&self, on: bool) {
        self.lock().hold_detach = on;
    }

    /// Clients served from catch-up streams now.
    pub fn detached_clients(&self) -> Vec<i16> {
        self.lock()
            .clients
            .iter()
            .filter(|(_, c)| matches!(c.lane, Lane::Detached { .. }))
            .map(|(id, _)| *id)
            .collect()
    }

    /// The lane of `client_id`, if subscribed.
    pub fn lane(&self, client_id: i16) -> Option<Lane> {
        self.lock().clients.get(&client_id).map(|c| c.lane.clone())
    }

    /// For a detached client with nothing outstanding from the shared window: where its
    /// catch-up stream starts. `None` otherwise.
    pub fn catch_up_start(&self, client_id: i16) -> Option<CatchUpStart> {
        let inner = self.lock();
        let c = inner.clients.get(&client_id)?;
        if !matches!(c.lane, Lane::Detached { .. }) || !c.marks.is_empty() {
            return None;
        }
        Some(CatchUpStart {
            cursor: c.cursor.clone()?,
            filter: c.filter_text.clone(),
            next_batch_id: c.next_batch_id,
        })
    }

    /// Records the cursor a detached client acked on its catch-up stream (persisted like any
    /// cursor) and the id of its next batch.
    pub fn record_catch_up_ack(&self, client_id: i16, cursor: EntryPosition, next_batch_id: i64) {
        let mut inner = self.lock();
        if let Some(c) = inner.clients.get_mut(&client_id) {
            if !c.lane.is_shared() {
                c.cursor = Some(cursor);
                c.next_batch_id = c.next_batch_id.max(next_batch_id);
                c.last_seen = SystemTime::now();
            }
        }
    }

    /// Moves a detached client back to the shared window when its acked `cursor` is at or after
    /// where the window begins (so every entry after the cursor is still held); entries at or
    /// before the cursor are skipped. True when it rejoined.
    pub fn try_rejoin(&self, client_id: i16, cursor: &EntryPosition, next_batch_id: i64) -> bool {
        let mut inner = self.lock();
        // Everything after an acked cursor is held when the window begins at or before it; a
        // start point (`inclusive`, from a reset) only when the window begins exactly there.
        let reachable = match (&inner.base, cursor.inclusive) {
            (None, false) => true,
            (None, true) => false,
            (Some(base), false) => matches!(
                cursor.binlog.try_cmp(&base.binlog),
                Some(std::cmp::Ordering::Greater | std::cmp::Ordering::Equal)
            ),
            (Some(base), true) => base.binlog == cursor.binlog,
        };
        let first = inner.first_seq;
        let Some(c) = inner.clients.get_mut(&client_id) else {
            return false;
        };
        if !reachable || !matches!(c.lane, Lane::Detached { .. }) || !c.marks.is_empty() {
            return false;
        }
        c.lane = Lane::Shared;
        c.acked_seq = first;
        c.read_seq = first;
        c.skip_through = (!cursor.inclusive).then(|| cursor.binlog.clone());
        c.cursor = Some(cursor.clone());
        c.next_batch_id = c.next_batch_id.max(next_batch_id);
        tracing::info!(client_id, cursor = %cursor.binlog, "caught up; back on the shared window");
        true
    }

    /// Marks `client_id` purged: its cursor is behind `first_available`, the oldest binlog on
    /// the source. Its GETs fail until [`Store::reset_cursor`] or an unsubscribe.
    pub fn mark_purged(&self, client_id: i16, first_available: &str) {
        let freed = {
            let mut inner = self.lock();
            let Some(c) = inner.clients.get_mut(&client_id) else {
                return;
            };
            c.lane = Lane::Purged {
                first_available: first_available.to_string(),
            };
            c.marks.clear();
            inner.relieve(self.config.detach_laggards)
        };
        if freed {
            self.space.notify_waiters();
        }
    }

    /// Marks purged every client whose cursor is in an older binlog file than `first_available`
    /// (same binlog series); returns them.
    pub fn mark_purged_behind(&self, first_available: &str) -> Vec<i16> {
        let oldest = BinlogPosition::new(first_available, 0);
        let behind: Vec<i16> = self
            .lock()
            .clients
            .iter()
            .filter(|(_, c)| {
                c.cursor
                    .as_ref()
                    .is_some_and(|p| p.binlog.try_cmp(&oldest) == Some(std::cmp::Ordering::Less))
            })
            .map(|(id, _)| *id)
            .collect();
        for id in &behind {
            self.mark_purged(*id, first_available);
        }
        behind
    }

    /// Replaces the cursor of `client_id` (an operator's reset): outstanding batches are dropped
    /// and the client continues from `cursor` on a catch-up stream (or the shared window once it
    /// reaches it).
    pub fn reset_cursor(&self, client_id: i16, cursor: EntryPosition) -> Result<(), StoreError> {
        let freed = {
            let mut inner = self.lock();
            let c = inner
                .clients
                .get_mut(&client_id)
                .ok_or_else(|| self.not_subscribed(client_id))?;
            c.marks.clear();
            c.cursor = Some(cursor);
            c.skip_through = None;
            c.lane = Lane::Detached {
                since: SystemTime::now(),
            };
            inner.relieve(self.config.detach_laggards)
        };
        if freed {
            self.space.notify_waiters();
        }
        self.data.notify_waiters();
        Ok(())
    }

    /// Sets the id the next batch of `client_id` gets (a catch-up store continues the ids the
    /// shared window handed out).
    pub fn set_next_batch_id(&self, client_id: i16, next: i64) {
        if let Some(c) = self.lock().clients.get_mut(&client_id) {
            c.next_batch_id = next;
        }
    }

    /// The id the next batch of `client_id` gets, and how many of its batches are outstanding.
    pub fn batch_state(&self, client_id: i16) -> Option<(i64, usize)> {
        self.lock()
            .clients
            .get(&client_id)
            .map(|c| (c.next_batch_id, c.marks.len()))
    }

    /// Per-client status for `/health` and metrics.
    pub fn client_status(&self) -> Vec<ClientStatus> {
        let inner = self.lock();
        let first = inner.first_seq;
        let next = inner.next_seq();
        inner
            .clients
            .iter()
            .map(|(id, c)| {
                let (unacked_entries, unacked_bytes) = if c.lane.is_shared() {
                    let from = c.acked_seq.clamp(first, next);
                    let bytes: usize = (from..next)
                        .map(|s| inner.entries[(s - first) as usize].bytes.len())
                        .sum();
                    (next - from, bytes as u64)
                } else {
                    (0, 0)
                };
                ClientStatus {
                    client_id: *id,
                    filter: c.filter_text.clone(),
                    cursor: c.cursor.clone(),
                    outstanding_batches: c.marks.len(),
                    lane: c.lane.clone(),
                    last_seen: c.last_seen,
                    unacked_entries,
                    unacked_bytes,
                }
            })
            .collect()
    }

    /// The error a purged client's requests get.
    pub(super) fn purged_error(
        &self,
        client_id: i16,
        c: &super::client::ClientState,
    ) -> StoreError {
        let Lane::Purged { first_available } = &c.lane else {
            return self.not_subscribed(client_id);
        };
        StoreError::CursorPurged {
            destination: self.name.to_string(),
            client_id,
            cursor: c
                .cursor
                .as_ref()
                .map(|p| p.binlog.to_string())
                .unwrap_or_default(),
            first_available: first_available.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::test_util::{entry, items};
    use crate::store::{GetWait, StoreConfig};

    async fn fill(s: &Store, from: u64, n: u64) {
        for i in from..from + n {
            s.put(entry(i * 10, true, "t", 1)).await.unwrap();
        }
    }

    #[tokio::test]
    async fn an_idle_client_is_detached_when_another_has_acked_half_the_full_window() {
        let s = Store::new("d", items(4));
        s.subscribe(1, "", None).unwrap();
        s.subscribe(2, "", None).unwrap();
        let mut start = entry(0, true, "", 1).position;
        start.inclusive = true;
        s.set_base(start);
        fill(&s, 1, 4).await;
        // Client 2 reads and acks everything; client 1 never comes back.
        let b = s.get(2, 4, GetWait::NonBlocking).await.unwrap();
        s.ack(2, b.id).unwrap();
        // The next put would wait forever on client 1; instead client 1 is detached.
        fill(&s, 5, 4).await;
        assert!(matches!(s.lane(1), Some(Lane::Detached { .. })));
        assert_eq!(s.lane(2), Some(Lane::Shared));
        let b = s.get(2, 10, GetWait::NonBlocking).await.unwrap();
        assert_eq!(b.entries.len(), 4, "client 2 keeps going");
        assert_eq!(
            s.get(1, 10, GetWait::NonBlocking).await.unwrap_err(),
            StoreError::Detached { client_id: 1 },
            "client 1 is told to read its catch-up stream"
        );
        let start = s.catch_up_start(1).unwrap();
        assert_eq!(start.cursor.binlog.offset, 0, "from its own cursor");
    }

    /// Snapshot rows exist only in the shared window: while a snapshot runs, or while the window
    /// holds its rows, a laggard is not detached (it would never see them) and holds the others.
    #[tokio::test]
    async fn no_laggard_is_detached_while_snapshot_rows_are_held_or_a_snapshot_runs() {
        for hold in [false, true] {
            let s = Store::new("d", items(4));
            s.subscribe(1, "", None).unwrap();
            s.subscribe(2, "", None).unwrap();
            s.set_base(entry(0, true, "", 1).position);
            s.hold_detach(hold);
            let mut first = entry(10, true, "t", 1);
            first.snapshot = !hold;
            s.put(first).await.unwrap();
            fill(&s, 2, 3).await;
            let b = s.get(2, 4, GetWait::NonBlocking).await.unwrap();
            s.ack(2, b.id).unwrap();
            let s2 = s.clone();
            let mut put = tokio::spawn(async move { fill(&s2, 5, 1).await });
            tokio::task::yield_now().await;
            assert!(
                tokio::time::timeout(std::time::Duration::from_millis(100), &mut put)
                    .await
                    .is_err(),
                "the put waits for client 1 (hold {hold})"
            );
            assert_eq!(s.lane(1), Some(Lane::Shared));
            assert!(s.detached_clients().is_empty());
            // Client 1 acks: the snapshot rows are delivered to it, and the put goes on.
            let b = s.get(1, 4, GetWait::NonBlocking).await.unwrap();
            s.ack(1, b.id).unwrap();
            put.await.unwrap();
        }
    }

    #[tokio::test]
    async fn without_catch_up_a_laggard_holds_everyone_back() {
        let s = Store::new(
            "d",
            StoreConfig {
                detach_laggards: false,
                ..items(4)
            },
        );
        s.subscribe(1, "", None).unwrap();
        s.subscribe(2, "", None).unwrap();
        s.set_base(entry(0, true, "", 1).position);
        fill(&s, 1, 4).await;
        let b = s.get(2, 4, GetWait::NonBlocking).await.unwrap();
        s.ack(2, b.id).unwrap();
        let s2 = s.clone();
        let mut put = tokio::spawn(async move { fill(&s2, 5, 1).await });
        tokio::task::yield_now().await;
        assert!(
            futures::poll!(&mut put).is_pending(),
            "Canal's back-pressure"
        );
        assert_eq!(s.lane(1), Some(Lane::Shared));
        put.abort();
    }

    #[tokio::test]
    async fn equally_slow_clients_keep_back_pressure() {
        let s = Store::new("d", items(4));
        s.subscribe(1, "", None).unwrap();
        s.subscribe(2, "", None).unwrap();
        s.set_base(entry(0, true, "", 1).position);
        fill(&s, 1, 4).await;
        let s2 = s.clone();
        let mut put = tokio::spawn(async move { fill(&s2, 5, 1).await });
        tokio::task::yield_now().await;
        assert!(futures::poll!(&mut put).is_pending(), "nobody is ahead");
        assert_eq!(s.lane(1), Some(Lane::Shared));
        assert_eq!(s.lane(2), Some(Lane::Shared));
        put.abort();
    }

    #[tokio::test]
    async fn a_detached_client_rejoins_once_its_cursor_reaches_the_window() {
        let s = Store::new("d", items(4));
        s.subscribe(1, "", None).unwrap();
        s.subscribe(2, "", None).unwrap();
        s.set_base(entry(0, true, "", 1).position);
        fill(&s, 1, 4).await;
        let b = s.get(2, 4, GetWait::NonBlocking).await.unwrap();
        s.ack(2, b.id).unwrap();
        fill(&s, 5, 4).await; // detaches 1, frees 1..=4
        let behind = entry(20, true, "", 1).position;
        assert!(!s.try_rejoin(1, &behind, 3), "offset 20 was freed");
        let caught_up = entry(60, true, "", 1).position;
        s.record_catch_up_ack(1, caught_up.clone(), 3);
        assert!(s.try_rejoin(1, &caught_up, 3));
        let b = s.get(1, 10, GetWait::NonBlocking).await.unwrap();
        assert_eq!(b.entries.len(), 2, "only 70 and 80: 50 and 60 were acked");
        assert_eq!(b.id, 3, "batch ids continue");
    }

    #[tokio::test]
    async fn purged_clients_get_an_error_until_reset() {
        let s = Store::new("d", items(4));
        s.subscribe(1, "", None).unwrap();
        s.set_base(entry(0, true, "", 1).position);
        assert_eq!(s.mark_purged_behind("mysql-bin.000002"), vec![1]);
        let e = s.get(1, 1, GetWait::NonBlocking).await.unwrap_err();
        let text = e.to_string();
        assert!(text.contains("mysql-bin.000002"), "{text}");
        assert!(text.contains("reset"), "{text}");
        let mut to = entry(4, true, "", 1).position;
        to.binlog.file = "mysql-bin.000002".into();
        to.inclusive = true;
        s.reset_cursor(1, to).unwrap();
        assert!(matches!(s.lane(1), Some(Lane::Detached { .. })));
    }
}
