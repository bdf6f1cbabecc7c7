//! The bounded event store of one destination: a ring of serialized entries shared by several
//! consumers, each with its own read pointer, batches and acked cursor.
//!
//! Guarantees:
//! - Bounded by entry count and by bytes; a full store makes [`Store::put`] wait (back-pressure to
//!   the parser). A single entry larger than the byte bound is still accepted when the store is
//!   empty, so nothing can wedge.
//! - Entries are serialized once, when put; every client receives the same `Bytes`.
//! - An entry is freed only when every subscribed client has acked it.
//! - Per client (Canal's semantics, without Canal's shared pointers): batch ids start at 1; gets
//!   without ack hand out successive batches; acks must be in order; rollback rewinds that client
//!   to its last ack. A client's cursor moves only to the ack point of an acked batch (a transaction
//!   end or DDL), so it always lands on a transaction boundary.
//! - A client's filter decides what that client receives; it never changes other clients' streams
//!   or the parser.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use canal_protocol::entry::{EntryType, EventType};
use tokio::sync::Notify;

use crate::entry::ParsedEntry;
use crate::filter::TableFilter;
use crate::position::{BinlogPosition, EntryPosition};

/// How GET's batch size is counted (Canal's `canal.instance.memory.batch.mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum BatchMode {
    /// `fetch_size` entries.
    Itemsize,
    /// `fetch_size × mem_unit` bytes of serialized entries.
    Memsize,
}

/// Store bounds and batching.
#[derive(Debug, Clone, PartialEq)]
pub struct StoreConfig {
    /// Maximum entries held (Canal's `canal.instance.memory.buffer.size`).
    pub max_entries: usize,
    /// Maximum bytes of serialized entries held.
    pub max_bytes: usize,
    /// How batch sizes are counted.
    pub batch_mode: BatchMode,
    /// Bytes per `fetch_size` unit in MEMSIZE mode (`canal.instance.memory.buffer.memunit`).
    pub mem_unit: usize,
    /// DDL alone in its batch (`canal.instance.get.ddl.isolation`).
    pub ddl_isolation: bool,
}

impl Default for StoreConfig {
    fn default() -> Self {
        Self {
            max_entries: 16384,
            max_bytes: 16 * 1024 * 1024,
            batch_mode: BatchMode::Memsize,
            mem_unit: 1024,
            ddl_isolation: false,
        }
    }
}

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
}

/// What is known about a stored entry without decoding it.
#[derive(Debug, Clone)]
pub struct StoredEntry {
    /// Serialized `Entry`.
    pub bytes: Bytes,
    /// Where it came from.
    pub position: EntryPosition,
    /// Schema and table from the header (for client filters).
    pub schema: String,
    /// Table name.
    pub table: String,
    /// Canal's ack point rule: TRANSACTIONEND, a TRANSACTIONBEGIN without GTID, or a DDL.
    pub ack_point: bool,
    /// A DDL that `ddl_isolation` keeps alone in its batch.
    pub isolated_ddl: bool,
    /// Rows in a ROWDATA entry (`rowsCount`).
    pub rows: u64,
    /// `Header.executeTime`.
    pub execute_time: i64,
}

impl StoredEntry {
    /// Serializes `e` and classifies it, without decoding its RowChange (only the `isDdl` flag
    /// is read, see [`ParsedEntry::is_boundary`]).
    pub fn from_parsed(e: &ParsedEntry) -> Self {
        let header = e.entry.header.as_ref();
        let ty = e.entry_type();
        let ev = header.map_or(EventType::Update, |h| h.event_type());
        let is_ddl_kind = matches!(
            ev,
            EventType::Create
                | EventType::Alter
                | EventType::Erase
                | EventType::Rename
                | EventType::Truncate
                | EventType::Cindex
                | EventType::Dindex
        ) && ty == EntryType::Rowdata;
        let ack_point = match ty {
            EntryType::Transactionend => true,
            EntryType::Transactionbegin => header
                .and_then(|h| h.gtid.as_deref())
                .unwrap_or("")
                .is_empty(),
            // A ROWDATA entry is a boundary exactly when its RowChange is a DDL.
            EntryType::Rowdata => e.is_boundary(),
            _ => false,
        };
        let rows = header
            .and_then(|h| h.props.iter().find(|p| p.key() == "rowsCount"))
            .and_then(|p| p.value().parse().ok())
            .unwrap_or(0);
        Self {
            bytes: e.encode(),
            position: e.position.clone(),
            schema: header.map_or("", |h| h.schema_name()).to_string(),
            table: header.map_or("", |h| h.table_name()).to_string(),
            ack_point,
            isolated_ddl: is_ddl_kind,
            rows,
            execute_time: header.map_or(0, |h| h.execute_time()),
        }
    }
}

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
            rows: 0,
            last_execute_time: None,
        }
    }
}

#[derive(Debug, Clone)]
struct Mark {
    id: i64,
    end_seq: u64,
    ack_point: Option<EntryPosition>,
    rows: u64,
}

#[derive(Debug)]
struct ClientState {
    filter: Option<TableFilter>,
    filter_text: String,
    /// Entries with seq < acked_seq are acked.
    acked_seq: u64,
    /// Next entry to hand out.
    read_seq: u64,
    marks: VecDeque<Mark>,
    next_batch_id: i64,
    cursor: Option<EntryPosition>,
    /// Entries at or before this position were acked before a restart: never deliver them.
    skip_through: Option<BinlogPosition>,
}

impl ClientState {
    /// Why the client will not see `e`: `(acked before a restart, hidden by its filter)`.
    fn unseen(&self, e: &StoredEntry) -> (bool, bool) {
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

#[derive(Debug, Default)]
struct Inner {
    entries: VecDeque<Arc<StoredEntry>>,
    /// Seq of `entries[0]`.
    first_seq: u64,
    bytes: usize,
    clients: BTreeMap<i16, ClientState>,
    closed: bool,
    /// The cursor just before `entries[0]`: the destination's start, then the last freed ack
    /// point. A new client without a stored cursor gets it, so that it has a cursor to resume
    /// from before its first ack.
    base: Option<EntryPosition>,
}

impl Inner {
    fn next_seq(&self) -> u64 {
        self.first_seq + self.entries.len() as u64
    }

    /// Frees entries every client has acked (all of them when there is no client? no: keep them
    /// for the first subscriber, bounded by the store size).
    fn trim(&mut self) -> bool {
        let Some(min_acked) = self.clients.values().map(|c| c.acked_seq).min() else {
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
                    self.first_seq += 1;
                    freed = true;
                }
                None => break,
            }
        }
        freed
    }
}

/// Decides whether batches may be handed out now (HA: this server holds the running node in a
/// live session). While it says no, gets wait (or return empty when non-blocking).
pub type Gate = Arc<dyn Fn() -> bool + Send + Sync>;

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
                    if !fits {
                        break;
                    }
                    let entry = entries.pop_front().expect("front exists");
                    inner.bytes += entry.bytes.len();
                    inner.entries.push_back(Arc::new(entry));
                    added += 1;
                }
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

    /// Closes the store: waiting puts and gets return.
    pub fn close(&self) {
        self.lock().closed = true;
        self.data.notify_waiters();
        self.space.notify_waiters();
    }

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

    /// Removes a client; entries only it still needed are freed.
    pub fn unsubscribe(&self, client_id: i16) {
        let freed = {
            let mut inner = self.lock();
            inner.clients.remove(&client_id);
            inner.trim()
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

    fn not_subscribed(&self, client_id: i16) -> StoreError {
        StoreError::NotSubscribed {
            destination: self.name.to_string(),
            client_id,
        }
    }

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
            {
                let mut inner = self.lock();
                if inner.closed {
                    return Err(StoreError::Closed(self.name.to_string()));
                }
                let mut full = self.is_full_batch_available(&mut inner, client_id, fetch_size)?;
                if !full && matches!(wait, GetWait::UpOrTransaction(_)) {
                    full = self.has_unread_transaction(&inner, client_id, fetch_size);
                }
                let expired = deadline.is_some_and(|d| tokio::time::Instant::now() >= d);
                if !self.open() {
                    // Fenced or paused: hand out nothing, but let the wait run its course.
                    if wait == GetWait::NonBlocking || expired {
                        return Ok(Batch::empty());
                    }
                } else if full || wait == GetWait::NonBlocking || expired {
                    let batch = self.take_batch(&mut inner, client_id, fetch_size)?;
                    let freed = inner.trim();
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
            let first = oldest(c, "ack", client_id, batch_id)?;
            let mark = c.marks.pop_front().unwrap_or(first);
            c.acked_seq = c.acked_seq.max(mark.end_seq);
            if let Some(p) = mark.ack_point {
                c.cursor = Some(p);
            }
            let result = (mark.rows, c.cursor.clone());
            (result, inner.trim())
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
    use super::*;

    fn entry(offset: u64, boundary: bool, table: &str, size: usize) -> StoredEntry {
        StoredEntry {
            bytes: Bytes::from(vec![0u8; size]),
            position: EntryPosition {
                binlog: BinlogPosition::new("mysql-bin.000001", offset),
                next_offset: offset + 10,
                server_id: 1,
                timestamp_ms: 0,
                gtid: None,
                inclusive: false,
            },
            schema: if table.is_empty() {
                String::new()
            } else {
                "db".into()
            },
            table: table.into(),
            ack_point: boundary,
            isolated_ddl: false,
            rows: u64::from(!boundary),
            execute_time: 0,
        }
    }

    fn items(max_entries: usize) -> StoreConfig {
        StoreConfig {
            max_entries,
            batch_mode: BatchMode::Itemsize,
            ..Default::default()
        }
    }

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
}
