//! The bounded event store of one destination: a ring of serialized entries shared by several
//! consumers, each with its own read pointer, batches and acked cursor.
//!
//! Guarantees:
//! - Bounded by entry count and by bytes; a full store makes [`Store::put`] wait (back-pressure to
//!   the parser). A single entry larger than the byte bound is still accepted when the store is
//!   empty, so nothing can wedge.
//! - Entries are serialized once, when put; every client receives the same `Bytes`.
//! - An entry is freed only when every client on the shared lane has acked it; a client that
//!   holds a full window while another is far ahead leaves the lane (`lane`) and is served from
//!   a catch-up stream by the instance, so no client stalls another.
//! - Per client (Canal's semantics, without Canal's shared pointers): batch ids start at 1; gets
//!   without ack hand out successive batches; acks must be in order; rollback rewinds that client
//!   to its last ack. A client's cursor moves only to the ack point of an acked batch (a transaction
//!   end or DDL), so it always lands on a transaction boundary.
//! - A client's filter decides what that client receives; it never changes other clients' streams
//!   or the parser.
//!
//! One file per job: `config` (bounds, batch mode, the gate), `stored_entry` (what is known
//! about an entry without decoding it), `ring` (the bounded ring of entries and `put`), `client`
//! (subscriptions, per-client filters and cursors), `lane` (detaching laggards, rejoining,
//! purged cursors) and `batch` (GET's batch assembly, ack and
//! rollback). This file holds the [`Store`] handle and [`StoreError`].

mod batch;
mod client;
mod config;
mod lane;
mod ring;
mod stored_entry;
#[cfg(test)]
mod test_util;

use std::sync::{Arc, Mutex};

use tokio::sync::Notify;

pub use batch::{Batch, GetWait};
pub use client::ClientInfo;
pub use config::{BatchMode, Gate, StoreConfig};
pub use lane::{CatchUpStart, ClientStatus, Lane};
use ring::Inner;
pub use stored_entry::StoredEntry;

/// A client's request failed; the message is what Canal clients show.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// The client id never subscribed.
    #[error("client {client_id} has not subscribed to {destination}")]
    NotSubscribed {
        /// Destination name.
        destination: String,
        /// Client id.
        client_id: i16,
    },
    /// Ack/rollback of a batch id that is not outstanding.
    #[error("{op} error, clientId:{client_id} batchId:{batch_id} is not exist, please check")]
    NoSuchBatch {
        /// `ack` or `rollback`.
        op: &'static str,
        /// Client id.
        client_id: i16,
        /// The batch id given.
        batch_id: i64,
    },
    /// Ack/rollback of a batch that is not the oldest outstanding one.
    #[error("{op} error, clientId:{client_id} batchId:{batch_id} is not the firstly:{first}")]
    OutOfOrder {
        /// `ack` or `rollback`.
        op: &'static str,
        /// Client id.
        client_id: i16,
        /// The batch id given.
        batch_id: i64,
        /// The oldest outstanding id.
        first: i64,
    },
    /// `fetch_size` ≤ 0 in ITEMSIZE mode.
    #[error("fetch_size must be > 0 in ITEMSIZE mode, got {0}")]
    BadFetchSize(i32),
    /// The destination stopped.
    #[error("destination {0} is stopped")]
    Closed(String),
    /// The client fell behind the shared window: its entries come from its catch-up stream
    /// (the instance routes the request there; a client never sees this).
    #[error("client {client_id} fell behind the shared window and reads from a catch-up stream")]
    Detached {
        /// Client id.
        client_id: i16,
    },
    /// The client's catch-up stream stopped with an error that needs an operator.
    #[error("client {client_id}: its catch-up stream failed: {message}")]
    CatchUpFailed {
        /// Client id.
        client_id: i16,
        /// What failed.
        message: String,
    },
    /// The client's cursor is behind the oldest binlog still on the source.
    #[error("client {client_id} of {destination}: its cursor {cursor} is behind the oldest binlog still on the source ({first_available}); the rows in between are gone. Reset the cursor with the admin API: POST /destinations/{destination}/clients/{client_id}/reset?to=oldest (or to=FILE:OFFSET), or drop the client: DELETE /destinations/{destination}/clients/{client_id}")]
    CursorPurged {
        /// Destination name.
        destination: String,
        /// Client id.
        client_id: i16,
        /// Its cursor.
        cursor: String,
        /// The oldest binlog on the source.
        first_available: String,
    },
}

/// The store of one destination. Cheap to clone (an `Arc` inside).
#[derive(Clone)]
pub struct Store {
    name: Arc<str>,
    config: StoreConfig,
    gate: Option<Gate>,
    inner: Arc<Mutex<Inner>>,
    /// Signalled when entries are added or the store closes.
    data: Arc<Notify>,
    /// Signalled when space is freed or the store closes.
    space: Arc<Notify>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("name", &self.name).finish()
    }
}

impl Store {
    /// An empty store for destination `name`.
    pub fn new(name: &str, config: StoreConfig) -> Self {
        Self {
            name: Arc::from(name),
            config,
            gate: None,
            inner: Arc::new(Mutex::new(Inner::default())),
            data: Arc::new(Notify::new()),
            space: Arc::new(Notify::new()),
        }
    }

    /// An empty store with the same name, bounds and gate (a client's catch-up store).
    pub fn sibling(&self) -> Self {
        let mut s = Self::new(&self.name, self.config.clone());
        s.gate = self.gate.clone();
        s
    }

    /// Only hand out batches while `gate` says so (fencing).
    pub fn with_gate(mut self, gate: Gate) -> Self {
        self.gate = Some(gate);
        self
    }

    fn open(&self) -> bool {
        self.gate.as_ref().is_none_or(|g| g())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // The lock is never held across an await; a panic while holding it cannot leave the
        // state half-updated in a way later calls would misread, so poisoning is ignored.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The store's configuration.
    pub fn config(&self) -> &StoreConfig {
        &self.config
    }

    /// Closes the store: waiting puts and gets return.
    pub fn close(&self) {
        self.lock().closed = true;
        self.data.notify_waiters();
        self.space.notify_waiters();
    }
}
