//! GET's batch assembly (ITEMSIZE/MEMSIZE counting, DDL isolation, skipping what a client will
//! not see, waiting per [`GetWait`] and the gate) and the in-order ack and rollback of batches.

use std::time::Duration;

use bytes::Bytes;

use super::client::ClientState;
use super::lane::Lane;
use super::ring::Inner;
use super::{BatchMode, Store, StoreError};
use crate::position::EntryPosition;

/// How long a GET waits (Canal's timeout/unit rules, already converted).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GetWait {
    /// Return what is available now (`timeout == -1`).
    NonBlocking,
    /// Wait without limit for a full batch (`timeout` ≤ 0 other than −1).
    UntilFull,
    /// Wait up to this long for a full batch, then return what is available.
    Up(Duration),
    /// Like `Up`, but also return as soon as a whole transaction (an ack point) is unread: for an
    /// embedding consumer with nothing in flight, which wants low delay rather than full batches.
    /// Not part of Canal's protocol.
    UpOrTransaction(Duration),
}

/// A batch handed to a client.
#[derive(Debug, Clone)]
pub struct Batch {
    /// Batch id, or −1 for an empty result.
    pub id: i64,
    /// Serialized entries.
    pub entries: Vec<Bytes>,
    /// For each entry of `entries`: whether it ends a transaction (Canal's ack point: a
    /// TRANSACTIONEND, a TRANSACTIONBEGIN without GTID, or a DDL), so an embedding consumer can
    /// tell transactions apart without decoding.
    pub ack_points: Vec<bool>,
    /// Rows in the batch (sum of `rowsCount`).
    pub rows: u64,
    /// `executeTime` of the newest entry.
    pub last_execute_time: Option<i64>,
}

impl Batch {
    /// The empty result (`batch_id = -1`).
    pub fn empty() -> Self {
        Self {
            id: -1,
            entries: Vec::new(),
            ack_points: Vec::new(),
            rows: 0,
            last_execute_time: None,
        }
    }
}

/// A batch handed to a client and not acked yet: where it ends, the cursor its ack moves to.
#[derive(Debug, Clone)]
pub(super) struct Mark {
    pub(super) id: i64,
    pub(super) end_seq: u64,
    pub(super) ack_point: Option<EntryPosition>,
    pub(super) rows: u64,
}

impl Store {
    /// Hands out the next batch of `client_id` (Canal's `getWithoutAck`).
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
            let data = self.data.notified();
            tokio::pin!(data);
            data.as_mut().enable();
            let outstanding_only;
            {
                let mut inner = self.lock();
                if inner.closed {
                    return Err(StoreError::Closed(self.name.to_string()));
                }
                let shared = {
                    let c = inner
                        .clients
                        .get_mut(&client_id)
                        .ok_or_else(|| self.not_subscribed(client_id))?;
                    c.last_seen = std::time::SystemTime::now();
                    match &c.lane {
                        Lane::Shared => true,
                        Lane::Detached { .. } if c.marks.is_empty() => {
                            return Err(StoreError::Detached { client_id })
                        }
                        // Batches from the shared window are still out: nothing new until
                        // they are acked or rolled back.
                        Lane::Detached { .. } => false,
                        Lane::Purged { .. } => return Err(self.purged_error(client_id, c)),
                    }
                };
                let expired = deadline.is_some_and(|d| tokio::time::Instant::now() >= d);
                if !shared && (wait == GetWait::NonBlocking || expired) {
                    return Ok(Batch::empty());
                }
                outstanding_only = !shared;
            }
            if outstanding_only {
                let d = deadline
                    .unwrap_or_else(|| tokio::time::Instant::now() + Duration::from_millis(100));
                let _ = tokio::time::timeout_at(d, data).await;
                continue;
            }
            {
                let mut inner = self.lock();
                let expired = deadline.is_some_and(|d| tokio::time::Instant::now() >= d);
                let mut full = self.is_full_batch_available(&mut inner, client_id, fetch_size)?;
                if !full && matches!(wait, GetWait::UpOrTransaction(_)) {
                    full = self.has_unread_transaction(&inner, client_id, fetch_size);
                }
                if !self.open() {
                    // Fenced or paused: hand out nothing, but let the wait run its course.
                    if wait == GetWait::NonBlocking || expired {
                        return Ok(Batch::empty());
                    }
                } else if full || wait == GetWait::NonBlocking || expired {
                    let batch = self.take_batch(&mut inner, client_id, fetch_size)?;
                    let freed = inner.relieve(self.config.detach_laggards);
                    drop(inner);
                    if freed {
                        self.space.notify_waiters();
                    }
                    return Ok(batch);
                }
            }
            // While gated, re-check now and then: the gate opens without a notification.
            let recheck = if self.open() {
                None
            } else {
                Some(tokio::time::Instant::now() + Duration::from_millis(50))
            };
            let until = match (deadline, recheck) {
                (Some(d), Some(r)) => Some(d.min(r)),
                (d, r) => d.or(r),
            };
            match until {
                Some(d) => {
                    let _ = tokio::time::timeout_at(d, data).await;
                }
                None => data.await,
            }
        }
    }

    /// Skips entries the client will never see (restored cursor, filter) when nothing of it is
    /// outstanding, and reports whether a full batch is waiting.
    fn is_full_batch_available(
        &self,
        inner: &mut Inner,
        client_id: i16,
        fetch_size: i32,
    ) -> Result<bool, StoreError> {
        let next = inner.next_seq();
        let first = inner.first_seq;
        let entries = &inner.entries;
        let c = inner
            .clients
            .get_mut(&client_id)
            .ok_or_else(|| self.not_subscribed(client_id))?;
        if c.read_seq < first {
            c.read_seq = first;
            c.acked_seq = c.acked_seq.max(first);
        }
        if c.marks.is_empty() && c.read_seq == c.acked_seq {
            while c.read_seq < next {
                let e = &entries[(c.read_seq - first) as usize];
                let (skipped, hidden) = c.unseen(e);
                if !(skipped || hidden) {
                    break;
                }
                if e.ack_point && !skipped {
                    c.cursor = Some(e.position.clone());
                }
                c.read_seq += 1;
                c.acked_seq = c.read_seq;
            }
        }
        let unread = next.saturating_sub(c.read_seq);
        Ok(match self.config.batch_mode {
            BatchMode::Itemsize => unread >= fetch_size.max(1) as u64,
            BatchMode::Memsize => {
                let limit = fetch_size.max(0) as usize * self.config.mem_unit;
                let bytes: usize = (c.read_seq..next)
                    .map(|s| entries[(s - first) as usize].bytes.len())
                    .take_while({
                        let mut total = 0usize;
                        move |n| {
                            let before = total;
                            total += n;
                            before <= limit
                        }
                    })
                    .sum();
                unread > 0 && bytes > limit
            }
        })
    }

    /// Whether the client's next `fetch_size` unread entries include an ack point (the end of a
    /// transaction or a DDL).
    fn has_unread_transaction(&self, inner: &Inner, client_id: i16, fetch_size: i32) -> bool {
        let Some(c) = inner.clients.get(&client_id) else {
            return false;
        };
        let first = inner.first_seq;
        (c.read_seq.max(first)..inner.next_seq())
            .take(fetch_size.max(1) as usize)
            .any(|s| inner.entries[(s - first) as usize].ack_point)
    }

    fn take_batch(
        &self,
        inner: &mut Inner,
        client_id: i16,
        fetch_size: i32,
    ) -> Result<Batch, StoreError> {
        let next = inner.next_seq();
        let first = inner.first_seq;
        let Inner {
            entries, clients, ..
        } = inner;
        let c = clients
            .get_mut(&client_id)
            .ok_or_else(|| self.not_subscribed(client_id))?;
        if c.read_seq >= next {
            return Ok(Batch::empty());
        }
        if self.config.batch_mode == BatchMode::Itemsize && fetch_size <= 0 {
            return Err(StoreError::BadFetchSize(fetch_size));
        }
        let limit = fetch_size.max(0) as usize * self.config.mem_unit;
        let mut seq = c.read_seq;
        let mut out = Vec::new();
        let mut ack_points = Vec::new();
        let mut total = 0usize;
        let mut count = 0usize;
        let mut ack_point = None;
        let mut rows = 0u64;
        let mut last_exec = None;
        while seq < next {
            let e = &entries[(seq - first) as usize];
            let enough = match self.config.batch_mode {
                BatchMode::Itemsize => count >= fetch_size as usize,
                BatchMode::Memsize => count > 0 && total > limit,
            };
            if enough {
                break;
            }
            if self.config.ddl_isolation && e.isolated_ddl && count > 0 {
                break;
            }
            let (skipped, hidden) = c.unseen(e);
            if e.ack_point && !skipped {
                ack_point = Some(e.position.clone());
            }
            total += e.bytes.len();
            count += 1;
            seq += 1;
            if !(skipped || hidden) {
                out.push(e.bytes.clone());
                ack_points.push(e.ack_point);
                rows += e.rows;
                last_exec = Some(e.execute_time);
            }
            if self.config.ddl_isolation && e.isolated_ddl {
                break;
            }
        }
        if out.is_empty() {
            // Only hidden entries behind outstanding batches: nothing to show yet. They are
            // skipped once the earlier batches are acked.
            return Ok(Batch::empty());
        }
        let id = c.next_batch_id;
        c.next_batch_id += 1;
        c.read_seq = seq;
        c.marks.push_back(Mark {
            id,
            end_seq: seq,
            ack_point,
            rows,
        });
        Ok(Batch {
            id,
            entries: out,
            ack_points,
            rows,
            last_execute_time: last_exec,
        })
    }

    /// Acks `batch_id`, which must be the client's oldest outstanding batch. Returns the rows it
    /// held and the client's cursor after the ack.
    pub fn ack(
        &self,
        client_id: i16,
        batch_id: i64,
    ) -> Result<(u64, Option<EntryPosition>), StoreError> {
        let (result, freed) = {
            let mut inner = self.lock();
            let c = inner
                .clients
                .get_mut(&client_id)
                .ok_or_else(|| self.not_subscribed(client_id))?;
            c.last_seen = std::time::SystemTime::now();
            let first = oldest(c, "ack", client_id, batch_id)?;
            let mark = c.marks.pop_front().unwrap_or(first);
            c.acked_seq = c.acked_seq.max(mark.end_seq);
            if let Some(p) = mark.ack_point {
                c.cursor = Some(p);
            }
            let result = (mark.rows, c.cursor.clone());
            (result, inner.relieve(self.config.detach_laggards))
        };
        if freed {
            self.space.notify_waiters();
        }
        Ok(result)
    }

    /// Rolls back: `0` drops every outstanding batch of the client, an id must be the oldest
    /// outstanding one. Either way the client's next get starts again after its last ack (later
    /// batches are dropped too: their entries will be handed out again under new ids).
    pub fn rollback(&self, client_id: i16, batch_id: i64) -> Result<(), StoreError> {
        let mut inner = self.lock();
        let c = inner
            .clients
            .get_mut(&client_id)
            .ok_or_else(|| self.not_subscribed(client_id))?;
        if batch_id != 0 {
            oldest(c, "rollback", client_id, batch_id)?;
        }
        c.marks.clear();
        c.read_seq = c.acked_seq;
        drop(inner);
        self.data.notify_waiters();
        Ok(())
    }

    /// If batch `batch_id` of `client_id` is still handed out and un-acked, rolls back every
    /// un-acked batch of the client (as `rollback(0)`) and returns true; otherwise does nothing.
    pub fn rollback_if_outstanding(&self, client_id: i16, batch_id: i64) -> bool {
        let mut inner = self.lock();
        let Some(c) = inner.clients.get_mut(&client_id) else {
            return false;
        };
        if !c.marks.iter().any(|m| m.id == batch_id) {
            return false;
        }
        c.marks.clear();
        c.read_seq = c.acked_seq;
        drop(inner);
        self.data.notify_waiters();
        true
    }
}

fn oldest(
    c: &ClientState,
    op: &'static str,
    client_id: i16,
    batch_id: i64,
) -> Result<Mark, StoreError> {
    let first = c.marks.front().ok_or(StoreError::NoSuchBatch {
        op,
        client_id,
        batch_id,
    })?;
    if first.id != batch_id {
        if c.marks.iter().any(|m| m.id == batch_id) {
            return Err(StoreError::OutOfOrder {
                op,
                client_id,
                batch_id,
                first: first.id,
            });
        }
        return Err(StoreError::NoSuchBatch {
            op,
            client_id,
            batch_id,
        });
    }
    Ok(first.clone())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::store::test_util::{entry, items};
    use crate::store::StoreConfig;

    #[tokio::test]
    async fn batches_ack_in_order_and_rollback() {
        let s = Store::new("d", items(100));
        s.subscribe(1001, "", None).unwrap();
        for i in 0..6 {
            s.put(entry(i * 10, i % 3 == 2, "t", 10)).await.unwrap();
        }
        let b1 = s.get(1001, 2, GetWait::NonBlocking).await.unwrap();
        let b2 = s.get(1001, 2, GetWait::NonBlocking).await.unwrap();
        assert_eq!((b1.id, b1.entries.len(), b2.id), (1, 2, 2));
        assert_eq!(
            s.ack(1001, 2),
            Err(StoreError::OutOfOrder {
                op: "ack",
                client_id: 1001,
                batch_id: 2,
                first: 1
            })
        );
        assert!(matches!(
            s.ack(1001, 9),
            Err(StoreError::NoSuchBatch { .. })
        ));
        let (_, cursor) = s.ack(1001, 1).unwrap();
        assert_eq!(
            cursor, None,
            "batch 1 has no boundary: cursor does not move"
        );
        // rollback(0): batch 2 is handed out again under a new id.
        s.rollback(1001, 0).unwrap();
        let b3 = s.get(1001, 2, GetWait::NonBlocking).await.unwrap();
        assert_eq!((b3.id, b3.entries.len()), (3, 2));
        let (_, cursor) = s.ack(1001, 3).unwrap();
        assert_eq!(
            cursor.unwrap().binlog.offset,
            20,
            "cursor on the boundary in the batch"
        );
        assert_eq!(s.usage().0, 2, "acked entries are freed");
    }

    #[tokio::test]
    async fn up_or_transaction_returns_once_a_transaction_is_whole() {
        let s = Store::new("d", items(100));
        s.subscribe(1, "", None).unwrap();
        s.put(entry(0, false, "t", 1)).await.unwrap();
        let s2 = s.clone();
        let waiter = tokio::spawn(async move {
            s2.get(1, 50, GetWait::UpOrTransaction(Duration::from_secs(3600)))
                .await
        });
        for _ in 0..20 {
            tokio::task::yield_now().await;
        }
        assert!(
            !waiter.is_finished(),
            "half a transaction is not handed out"
        );
        s.put(entry(10, true, "t", 1)).await.unwrap();
        let b = waiter.await.unwrap().unwrap();
        assert_eq!(
            b.entries.len(),
            2,
            "the whole transaction, without waiting for 50"
        );
    }

    #[tokio::test]
    async fn blocking_get_waits_for_a_full_batch_and_timed_get_returns_partial() {
        let s = Store::new("d", items(100));
        s.subscribe(1, "", None).unwrap();
        s.put(entry(0, true, "t", 1)).await.unwrap();
        let b = s
            .get(1, 5, GetWait::Up(Duration::from_millis(20)))
            .await
            .unwrap();
        assert_eq!(b.entries.len(), 1, "timed get returns what there is");
        let s2 = s.clone();
        let waiter = tokio::spawn(async move { s2.get(1, 2, GetWait::UntilFull).await });
        s.put(entry(10, false, "t", 1)).await.unwrap();
        tokio::task::yield_now().await;
        s.put(entry(20, true, "t", 1)).await.unwrap();
        let b = waiter.await.unwrap().unwrap();
        assert_eq!(b.entries.len(), 2);
    }

    #[tokio::test]
    async fn memsize_batches_are_the_shortest_prefix_over_the_limit() {
        let s = Store::new(
            "d",
            StoreConfig {
                mem_unit: 10,
                ..Default::default()
            },
        );
        s.subscribe(1, "", None).unwrap();
        for i in 0..5 {
            s.put(entry(i * 10, false, "t", 6)).await.unwrap();
        }
        // limit 10 bytes: 6 (≤10, take) + 6 = 12 (> 10: stop) → 2 entries.
        let b = s.get(1, 1, GetWait::NonBlocking).await.unwrap();
        assert_eq!(b.entries.len(), 2);
    }

    #[tokio::test]
    async fn a_closed_gate_hands_out_nothing() {
        let open = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let o = open.clone();
        let s = Store::new("d", items(100)).with_gate(Arc::new(move || {
            o.load(std::sync::atomic::Ordering::SeqCst)
        }));
        s.subscribe(1, "", None).unwrap();
        s.put(entry(0, true, "t", 1)).await.unwrap();
        assert_eq!(s.get(1, 1, GetWait::NonBlocking).await.unwrap().id, -1);
        let timed = s
            .get(1, 1, GetWait::Up(Duration::from_millis(30)))
            .await
            .unwrap();
        assert_eq!(timed.id, -1, "a timed get expires empty while gated");
        let s2 = s.clone();
        let waiting = tokio::spawn(async move { s2.get(1, 1, GetWait::UntilFull).await });
        tokio::time::sleep(Duration::from_millis(20)).await;
        open.store(true, std::sync::atomic::Ordering::SeqCst);
        assert_eq!(
            waiting.await.unwrap().unwrap().id,
            1,
            "served once the gate opens"
        );
    }
}
