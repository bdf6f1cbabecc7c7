//! The bounded ring of stored entries: sequence numbers, byte accounting, `put` with
//! back-pressure, and freeing what every client has acked.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

use super::client::ClientState;
use super::{Store, StoreError, StoredEntry};
use crate::position::EntryPosition;

/// The store's state under its lock: the ring of entries, its byte count and the clients.
#[derive(Debug, Default)]
pub(super) struct Inner {
    pub(super) entries: VecDeque<Arc<StoredEntry>>,
    /// Seq of `entries[0]`.
    pub(super) first_seq: u64,
    pub(super) bytes: usize,
    pub(super) clients: BTreeMap<i16, ClientState>,
    pub(super) closed: bool,
    /// A put is waiting for space: the shared window is full.
    pub(super) put_waiting: bool,
    /// The cursor just before `entries[0]`: the destination's start, then the last freed ack
    /// point. A new client without a stored cursor gets it, so that it has a cursor to resume
    /// from before its first ack.
    pub(super) base: Option<EntryPosition>,
    /// Entries of snapshot rows in the window.
    pub(super) snapshot_entries: usize,
    /// A snapshot runs: no client is detached (its catch-up stream would miss the rows).
    pub(super) hold_detach: bool,
}

impl Inner {
    pub(super) fn next_seq(&self) -> u64 {
        self.first_seq + self.entries.len() as u64
    }

    /// Frees entries every client on the shared lane has acked. With no such client nothing is
    /// freed: entries wait for the first subscriber, bounded by the store size.
    pub(super) fn trim(&mut self) -> bool {
        let Some(min_acked) = self
            .clients
            .values()
            .filter(|c| c.lane.is_shared())
            .map(|c| c.acked_seq)
            .min()
        else {
            return false;
        };
        let mut freed = false;
        while self.first_seq < min_acked {
            match self.entries.pop_front() {
                Some(e) => {
                    if e.ack_point {
                        self.base = Some(e.position.clone());
                    }
                    self.bytes -= e.bytes.len();
                    self.snapshot_entries -= usize::from(e.snapshot);
                    self.first_seq += 1;
                    freed = true;
                }
                None => break,
            }
        }
        freed
    }
}

impl Store {
    /// Adds an entry, waiting while the store is full. Returns `Err` once the store is closed.
    pub async fn put(&self, entry: StoredEntry) -> Result<(), StoreError> {
        let mut one = VecDeque::from([entry]);
        self.put_many(&mut one).await
    }

    /// Adds entries in order, as many as fit under one lock and one wake-up of the waiting
    /// gets, waiting while the store is full. `entries` is empty on success; on `Err` (the store
    /// closed) it holds the entries not added.
    pub async fn put_many(&self, entries: &mut VecDeque<StoredEntry>) -> Result<(), StoreError> {
        while !entries.is_empty() {
            let space = self.space.notified();
            tokio::pin!(space);
            space.as_mut().enable();
            let added = {
                let mut inner = self.lock();
                if inner.closed {
                    return Err(StoreError::Closed(self.name.to_string()));
                }
                let mut added = 0usize;
                while let Some(entry) = entries.front() {
                    let fits = inner.entries.is_empty()
                        || (inner.entries.len() < self.config.max_entries
                            && inner.bytes + entry.bytes.len() <= self.config.max_bytes);
                    if !fits
                        && self.config.detach_laggards
                        && inner.detach_laggards()
                        && inner.trim()
                    {
                        continue;
                    }
                    if !fits {
                        break;
                    }
                    let entry = entries.pop_front().expect("front exists");
                    inner.bytes += entry.bytes.len();
                    inner.snapshot_entries += usize::from(entry.snapshot);
                    inner.entries.push_back(Arc::new(entry));
                    added += 1;
                }
                inner.put_waiting = !entries.is_empty();
                added
            };
            if added > 0 {
                self.data.notify_waiters();
            }
            if !entries.is_empty() {
                space.await;
            }
        }
        Ok(())
    }

    /// Entries and bytes held now.
    pub fn usage(&self) -> (usize, usize) {
        let inner = self.lock();
        (inner.entries.len(), inner.bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::test_util::{entry, items};
    use crate::store::GetWait;

    #[tokio::test]
    async fn full_store_blocks_put_until_every_client_acks() {
        let s = Store::new("d", items(2));
        s.subscribe(1, "", None).unwrap();
        s.subscribe(2, "", None).unwrap();
        s.put(entry(0, true, "t", 1)).await.unwrap();
        s.put(entry(10, true, "t", 1)).await.unwrap();
        let s2 = s.clone();
        let mut third = tokio::spawn(async move { s2.put(entry(20, true, "t", 1)).await });
        tokio::task::yield_now().await;
        assert!(
            futures::poll!(&mut third).is_pending(),
            "put waits on a full store"
        );
        let b = s.get(1, 1, GetWait::NonBlocking).await.unwrap();
        s.ack(1, b.id).unwrap();
        tokio::task::yield_now().await;
        assert!(
            futures::poll!(&mut third).is_pending(),
            "client 2 still needs it"
        );
        let b = s.get(2, 1, GetWait::NonBlocking).await.unwrap();
        s.ack(2, b.id).unwrap();
        third.await.unwrap().unwrap();
        assert_eq!(s.usage().0, 2);
    }
}
