//! Subscribed clients: each client's filter, read and ack pointers, outstanding batches and
//! acked cursor, and what the store reports and the meta backends persist about it.

use std::collections::VecDeque;

use super::batch::Mark;
use super::lane::Lane;
use super::{Store, StoreError, StoredEntry};
use crate::filter::TableFilter;
use crate::position::{BinlogPosition, EntryPosition};

/// One subscribed client's filter, read and ack pointers, outstanding batches and cursor.
#[derive(Debug)]
pub(super) struct ClientState {
    pub(super) filter: Option<TableFilter>,
    pub(super) filter_text: String,
    /// Entries with seq < acked_seq are acked.
    pub(super) acked_seq: u64,
    /// Next entry to hand out.
    pub(super) read_seq: u64,
    pub(super) marks: VecDeque<Mark>,
    pub(super) next_batch_id: i64,
    pub(super) cursor: Option<EntryPosition>,
    /// Entries at or before this position were acked before a restart: never deliver them.
    pub(super) skip_through: Option<BinlogPosition>,
    /// Whether the shared window holds entries for this client (see `lane`).
    pub(super) lane: Lane,
    /// When the client last made a request (subscribe, get, ack, rollback).
    pub(super) last_seen: std::time::SystemTime,
}

impl ClientState {
    /// Why the client will not see `e`: `(acked before a restart, hidden by its filter)`.
    pub(super) fn unseen(&self, e: &StoredEntry) -> (bool, bool) {
        let skipped = self
            .skip_through
            .as_ref()
            .is_some_and(|s| e.position.binlog <= *s);
        let hidden = self
            .filter
            .as_ref()
            .is_some_and(|f| !e.table.is_empty() && !f.accepts(&e.schema, &e.table));
        (skipped, hidden)
    }
}

/// A subscribed client: what the store reports (admin) and what the meta backends persist and
/// restore (a restored client has no outstanding batch; that count is not persisted).
#[derive(Debug, Clone, PartialEq)]
pub struct ClientInfo {
    /// Client id.
    pub client_id: i16,
    /// Its filter text ("" = everything).
    pub filter: String,
    /// Its acked cursor.
    pub cursor: Option<EntryPosition>,
    /// Outstanding (handed out, not acked) batches.
    pub outstanding_batches: usize,
}

impl Store {
    /// Subscribes `client_id` (idempotent; a new filter replaces the client's old one). A client
    /// with a `restored` cursor skips entries at or before it.
    pub fn subscribe(
        &self,
        client_id: i16,
        filter: &str,
        restored: Option<EntryPosition>,
    ) -> Result<(), crate::filter::FilterError> {
        let parsed = if filter.trim().is_empty() {
            None
        } else {
            Some(TableFilter::new(filter, "")?)
        };
        let mut inner = self.lock();
        let first = inner.first_seq;
        match inner.clients.get_mut(&client_id) {
            Some(c) => {
                c.filter = parsed;
                c.filter_text = filter.to_string();
                c.last_seen = std::time::SystemTime::now();
            }
            None => {
                let skip_through = restored
                    .as_ref()
                    .filter(|p| !p.inclusive)
                    .map(|p| p.binlog.clone());
                let restored = restored.or_else(|| inner.base.clone());
                inner.clients.insert(
                    client_id,
                    ClientState {
                        filter: parsed,
                        filter_text: filter.to_string(),
                        acked_seq: first,
                        read_seq: first,
                        marks: VecDeque::new(),
                        next_batch_id: 1,
                        cursor: restored,
                        skip_through,
                        lane: Lane::Shared,
                        last_seen: std::time::SystemTime::now(),
                    },
                );
            }
        }
        Ok(())
    }

    /// Records where the stream begins (the destination's resolved start), once: clients that have
    /// no cursor yet get it as their cursor, and so do clients subscribing later while nothing was
    /// freed. Later calls change nothing.
    pub fn set_base(&self, start: EntryPosition) {
        let mut inner = self.lock();
        if inner.base.is_some() {
            return;
        }
        for c in inner.clients.values_mut() {
            if c.cursor.is_none() {
                c.cursor = Some(start.clone());
            }
        }
        inner.base = Some(start);
    }

    /// Moves where the stream begins to `start` when the parser starts over (nothing was put
    /// yet); ignored once entries are held.
    pub fn rebase(&self, start: EntryPosition) {
        let mut inner = self.lock();
        if inner.entries.is_empty() {
            inner.base = Some(start);
        }
    }

    /// Removes a client; entries only it still needed are freed.
    pub fn unsubscribe(&self, client_id: i16) {
        let freed = {
            let mut inner = self.lock();
            inner.clients.remove(&client_id);
            inner.relieve(self.config.detach_laggards)
        };
        if freed {
            self.space.notify_waiters();
        }
    }

    /// Whether `client_id` is subscribed.
    pub fn is_subscribed(&self, client_id: i16) -> bool {
        self.lock().clients.contains_key(&client_id)
    }

    /// Subscribed clients, with cursors.
    pub fn clients(&self) -> Vec<ClientInfo> {
        self.lock()
            .clients
            .iter()
            .map(|(id, c)| ClientInfo {
                client_id: *id,
                filter: c.filter_text.clone(),
                cursor: c.cursor.clone(),
                outstanding_batches: c.marks.len(),
            })
            .collect()
    }

    pub(super) fn not_subscribed(&self, client_id: i16) -> StoreError {
        StoreError::NotSubscribed {
            destination: self.name.to_string(),
            client_id,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::test_util::{entry, items};
    use crate::store::{GetWait, StoreConfig};

    #[tokio::test]
    async fn clients_are_independent_and_filters_are_per_client() {
        let s = Store::new("d", items(100));
        s.subscribe(1, "", None).unwrap();
        s.subscribe(2, r"db\.a", None).unwrap();
        s.put(entry(0, false, "a", 1)).await.unwrap();
        s.put(entry(10, false, "b", 1)).await.unwrap();
        s.put(entry(20, true, "", 1)).await.unwrap();
        let b = s.get(1, 10, GetWait::NonBlocking).await.unwrap();
        assert_eq!(b.entries.len(), 3);
        let b2 = s.get(2, 10, GetWait::NonBlocking).await.unwrap();
        assert_eq!(b2.entries.len(), 2, "client 2 does not see table b");
        assert_eq!(b2.id, 1, "batch ids are per client");
        s.rollback(2, 0).unwrap();
        let b = s.get(1, 10, GetWait::NonBlocking).await.unwrap();
        assert_eq!(b.id, -1, "client 2's rollback does not rewind client 1");
    }

    #[tokio::test]
    async fn restored_cursor_skips_what_was_acked_before_a_restart() {
        let s = Store::new("d", items(100));
        let mut restored = entry(10, true, "", 1).position;
        restored.binlog.offset = 10;
        s.subscribe(1, "", Some(restored)).unwrap();
        s.put(entry(0, false, "t", 1)).await.unwrap();
        s.put(entry(10, true, "", 1)).await.unwrap();
        s.put(entry(20, false, "t", 1)).await.unwrap();
        let b = s.get(1, 10, GetWait::NonBlocking).await.unwrap();
        assert_eq!(b.entries.len(), 1, "only the entry after the cursor");
    }

    #[tokio::test]
    async fn clients_without_acks_have_the_start_as_cursor_then_the_freed_point() {
        let s = Store::new("d", items(100));
        s.subscribe(1, "", None).unwrap();
        let mut start = entry(4, false, "", 1).position;
        start.inclusive = true;
        s.set_base(start.clone());
        assert_eq!(s.clients()[0].cursor.as_ref(), Some(&start), "early client");
        s.subscribe(2, "", None).unwrap();
        assert_eq!(s.clients()[1].cursor.as_ref(), Some(&start), "later client");
        let mut other = start.clone();
        other.binlog.offset = 999;
        s.set_base(other);
        assert_eq!(s.clients()[0].cursor.as_ref(), Some(&start), "set once");
        // Both ack through the boundary at 10: it is freed, and a new client starts after it.
        s.put(entry(5, false, "t", 1)).await.unwrap();
        s.put(entry(10, true, "", 1)).await.unwrap();
        for c in [1, 2] {
            let b = s.get(c, 10, GetWait::NonBlocking).await.unwrap();
            s.ack(c, b.id).unwrap();
        }
        s.subscribe(3, "", None).unwrap();
        let c3 = s.clients().into_iter().find(|c| c.client_id == 3).unwrap();
        let cur = c3.cursor.unwrap();
        assert_eq!((cur.binlog.offset, cur.inclusive), (10, false));
    }

    /// Issue #13, many consumers: four clients consuming at once through a small bounded store
    /// each receive every entry exactly once and in order, and all get the same bytes (the entry
    /// is encoded once and shared, not copied per client).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn four_clients_each_receive_every_entry_in_order_and_share_its_bytes() {
        const N: u64 = 500;
        const BOUND: usize = 8;
        let s = Store::new(
            "d",
            StoreConfig {
                // The store alone has no catch-up stream to send a laggard to.
                detach_laggards: false,
                ..items(BOUND)
            },
        );
        for c in 1..=4 {
            s.subscribe(c, "", None).unwrap();
        }
        let producer = {
            let s = s.clone();
            tokio::spawn(async move {
                for i in 0..N {
                    let mut e = entry(i * 10, i % 3 == 2, "t", 1);
                    e.bytes = bytes::Bytes::from(i.to_be_bytes().to_vec());
                    s.put(e).await.unwrap();
                    assert!(s.usage().0 <= BOUND, "the store stays bounded");
                }
            })
        };
        let consumers: Vec<_> = (1..=4i16)
            .map(|c| {
                let s = s.clone();
                tokio::spawn(async move {
                    let mut seen = Vec::new();
                    while (seen.len() as u64) < N {
                        // Batch sizes differ per client, so they drift apart within the bound.
                        let b = s
                            .get(
                                c,
                                i32::from(c),
                                GetWait::Up(std::time::Duration::from_millis(5)),
                            )
                            .await
                            .unwrap();
                        if b.entries.is_empty() {
                            continue;
                        }
                        seen.extend(b.entries.iter().cloned());
                        s.ack(c, b.id).unwrap();
                    }
                    seen
                })
            })
            .collect();
        let mut all = Vec::new();
        for c in consumers {
            all.push(c.await.unwrap());
        }
        producer.await.unwrap();
        for seen in &all {
            let order: Vec<u64> = seen
                .iter()
                .map(|b| u64::from_be_bytes(b[..].try_into().unwrap()))
                .collect();
            assert_eq!(order, (0..N).collect::<Vec<_>>(), "every entry, in order");
        }
        for i in 0..N as usize {
            let p = all[0][i].as_ptr();
            assert!(
                all.iter().all(|seen| seen[i].as_ptr() == p),
                "entry {i}: every client gets the same buffer"
            );
        }
    }
}
