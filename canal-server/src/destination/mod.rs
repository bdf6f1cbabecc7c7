//! A destination (Canal's "instance"): one source read as a replica, turned into entries, handed
//! downstream through a bounded channel. This is the API otter-node embeds.
//!
//! The supervisor reconnects with capped exponential backoff after retryable failures (network,
//! timeouts, a source restart), resuming from the last transaction boundary it handed downstream
//! and skipping what was already delivered, so the entry stream has no gap and no duplicate.
//! Operator-level failures (bad settings, refused account, purged position, schema mismatch) stop
//! it with an error that names the destination, position and table.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use futures::stream::{FuturesOrdered, StreamExt as _};
use prost::Message as _;
use tokio::sync::{mpsc, watch, OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn, Instrument};

use crate::binlog::convert::{ConvertError, Converter, RowsPlan, SchemaLookup};
use crate::binlog::source::{self, ReplicaStream, SourceError};
use crate::binlog::start;
use crate::config::{ConfigError, DestinationConfig};
use crate::entry::ParsedEntry;
use crate::position::{BinlogPosition, Cursor, EntryPosition, GtidSet};
use crate::schema::history::SchemaHistory;
use crate::schema::source as schema_source;
use crate::schema::table::TableMeta;

mod hand_on;

use hand_on::{Converted, CONVERT_AHEAD, CONVERT_AHEAD_BYTES};

/// Why a destination stopped for good.
#[derive(Debug, thiserror::Error)]
pub enum DestinationError {
    /// Invalid configuration.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The source cannot be used as it is.
    #[error("destination {destination}: {source}")]
    Source {
        /// Destination name.
        destination: String,
        /// What the source said.
        #[source]
        source: SourceError,
    },
    /// An event could not be converted.
    #[error("destination {destination}: {source}")]
    Convert {
        /// Destination name.
        destination: String,
        /// What went wrong, with position and table.
        #[source]
        source: ConvertError,
    },
    /// The schema history file could not be read or written.
    #[error("destination {destination}: schema history: {message}")]
    History {
        /// Destination name.
        destination: String,
        /// What went wrong.
        message: String,
    },
    /// Reading table definitions from the source failed.
    #[error("destination {destination}: reading {table} from information_schema: {source}")]
    Schema {
        /// Destination name.
        destination: String,
        /// `schema.table`.
        table: String,
        /// Driver error.
        #[source]
        source: mysql_async::Error,
    },
    /// A task of the destination ended abnormally (it panicked or its runtime shut down).
    #[error("destination {destination}: {message}")]
    Aborted {
        /// Destination name.
        destination: String,
        /// Which task, and how it ended.
        message: String,
    },
    /// Where the stream begins could not be stored (the cursor store is unreachable); the
    /// parser reads nothing until it is, since a successor would otherwise skip rows.
    #[error("destination {destination}: storing where the stream begins: {message}")]
    StartNotDurable {
        /// Destination name.
        destination: String,
        /// What the cursor store said.
        message: String,
    },
}

impl DestinationError {
    fn is_retryable(&self) -> bool {
        match self {
            DestinationError::Source { source, .. } => source.is_retryable(),
            DestinationError::Convert { source, .. } => source.is_corruption(),
            DestinationError::Schema { .. } | DestinationError::StartNotDurable { .. } => true,
            _ => false,
        }
    }
}

/// What a destination is doing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DestinationStatus {
    /// Connecting for the first time.
    Starting,
    /// Streaming; the position of the last event read.
    Running {
        /// Last event position.
        position: BinlogPosition,
        /// Its time on the source, ms since the epoch (0 for events without one).
        timestamp_ms: i64,
    },
    /// Waiting to reconnect after an error.
    Reconnecting {
        /// Attempt number since the last success.
        attempt: u32,
        /// The error.
        error: String,
    },
    /// Stopped by an error that needs an operator.
    Failed {
        /// The error.
        error: String,
    },
    /// Stopped on request.
    Stopped,
}

/// A running destination. Entries arrive in binlog order through [`DestinationHandle::recv`];
/// when the consumer stops receiving, the parser waits (back-pressure).
pub struct DestinationHandle {
    name: String,
    rx: mpsc::Receiver<Buffered>,
    budget: Arc<Semaphore>,
    budget_total: usize,
    cancel: CancellationToken,
    status: watch::Receiver<DestinationStatus>,
    task: tokio::task::JoinHandle<Result<(), DestinationError>>,
}

impl std::fmt::Debug for DestinationHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DestinationHandle")
            .field("name", &self.name)
            .field("status", &*self.status.borrow())
            .finish()
    }
}

impl DestinationHandle {
    /// The destination's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The next entry; `None` once the destination stopped (see [`DestinationHandle::stop`] for why).
    pub async fn recv(&mut self) -> Option<ParsedEntry> {
        self.rx.recv().await.map(|b| b.entry)
    }

    /// Up to `max` entries already waiting, without blocking.
    pub fn try_recv_many(&mut self, max: usize, out: &mut Vec<ParsedEntry>) {
        while out.len() < max {
            match self.rx.try_recv() {
                Ok(b) => out.push(b.entry),
                Err(_) => break,
            }
        }
    }

    /// Bytes of encoded entries waiting in the parser buffer; never more than
    /// `parser_buffer_bytes` (except one entry larger than that, alone).
    pub fn buffered_bytes(&self) -> usize {
        self.budget_total - self.budget.available_permits()
    }

    /// The current status.
    pub fn status(&self) -> DestinationStatus {
        self.status.borrow().clone()
    }

    /// A watch on the status.
    pub fn watch_status(&self) -> watch::Receiver<DestinationStatus> {
        self.status.clone()
    }

    /// Stops the destination and returns how it ended: `Ok` for a requested stop, the error for a
    /// destination that failed.
    pub async fn stop(self) -> Result<(), DestinationError> {
        self.cancel.cancel();
        drop(self.rx);
        match self.task.await {
            Ok(r) => r,
            Err(e) => Err(DestinationError::Aborted {
                destination: self.name.clone(),
                message: format!("destination task ended abnormally: {e}"),
            }),
        }
    }
}

/// The position a stream resolved to `point` begins at: the cursor it resumed from, else the
/// requested file position (nothing delivered from it yet, so `inclusive`). `None` for a start by
/// GTID without a cursor.
fn start_position(cursor: Option<&Cursor>, point: &start::StartPoint) -> Option<EntryPosition> {
    match (cursor, &point.request) {
        (Some(c), _) => Some(c.stream_start()),
        (None, source::StartRequest::FilePos(p)) => Some(
            Cursor {
                position: p.clone(),
                gtid: point.gtid.as_ref().map(GtidSet::from),
                inclusive: true,
            }
            .stream_start(),
        ),
        (None, _) => None,
    }
}

/// Told where a destination's stream begins (see [`Destination::spawn_with_start`]). The
/// future it returns must make that start durable: the parser reads no event before it
/// resolves `Ok`, and on `Err` retries (the same start) after a backoff.
pub type StartHook =
    Box<dyn FnMut(EntryPosition) -> BoxFuture<'static, Result<(), String>> + Send + Sync>;

/// An entry in the parser buffer with its share of the byte budget (released when received).
struct Buffered {
    entry: ParsedEntry,
    _permit: OwnedSemaphorePermit,
}

/// Entry point for running destinations.
pub struct Destination;

impl Destination {
    /// Validates `config` and starts the destination named `name`. `cursor` is the stored cursor
    /// to resume from (the minimum acked cursor of its clients), if any. The schema history lives
    /// in `data_dir/{name}/schema-history.json`.
    pub fn spawn(
        name: &str,
        config: DestinationConfig,
        data_dir: PathBuf,
        cursor: Option<Cursor>,
    ) -> Result<DestinationHandle, DestinationError> {
        Self::spawn_with_start(name, config, data_dir, cursor, None)
    }

    /// [`Destination::spawn`], calling `on_start` with where the stream begins once the start is
    /// resolved: the cursor it resumed from, or (marked `inclusive`) the configured or current
    /// binlog position when there was none. Resolving a configured start may need the source
    /// (the end of the binlog, a timestamp), so it happens on the first connection, and the hook
    /// runs there, before the first event is read, until its future succeeds once. Reconnects
    /// before the first event resume from that resolved start, not from a new "end of the
    /// binlog". It never runs for a start by GTID without a cursor until a later reconnect
    /// resumes from a cursor.
    pub fn spawn_with_start(
        name: &str,
        config: DestinationConfig,
        data_dir: PathBuf,
        cursor: Option<Cursor>,
        on_start: Option<StartHook>,
    ) -> Result<DestinationHandle, DestinationError> {
        Self::spawn_inner(name, config, data_dir, cursor, on_start, true, None)
    }

    /// [`Destination::spawn_with_start`] with the bridge through which a snapshot runner hands
    /// its chunks to this stream (see [`crate::snapshot`]).
    pub fn spawn_with_snapshot(
        name: &str,
        config: DestinationConfig,
        data_dir: PathBuf,
        cursor: Option<Cursor>,
        on_start: Option<StartHook>,
        snapshot: Arc<crate::snapshot::SnapshotBridge>,
    ) -> Result<DestinationHandle, DestinationError> {
        Self::spawn_inner(
            name,
            config,
            data_dir,
            cursor,
            on_start,
            true,
            Some(snapshot),
        )
    }

    /// A second reader of destination `name` from `cursor` (a catch-up stream for one client):
    /// it uses the destination's schema history but never writes it (table definitions it
    /// loads stay in its memory), so it can run beside the destination. `config.slave_id` must
    /// differ from every other replica's.
    pub fn spawn_reader(
        name: &str,
        config: DestinationConfig,
        data_dir: PathBuf,
        cursor: Cursor,
    ) -> Result<DestinationHandle, DestinationError> {
        Self::spawn_inner(name, config, data_dir, Some(cursor), None, false, None)
    }

    fn spawn_inner(
        name: &str,
        config: DestinationConfig,
        data_dir: PathBuf,
        cursor: Option<Cursor>,
        on_start: Option<StartHook>,
        persist_history: bool,
        snapshot: Option<Arc<crate::snapshot::SnapshotBridge>>,
    ) -> Result<DestinationHandle, DestinationError> {
        let prefix = format!("destinations.{name}");
        config.validate(&prefix)?;
        let sup_parallel = config.parallel_rows.enabled();
        let mut convert_opts = config.convert_options(&prefix)?;
        convert_opts.snapshot = snapshot;
        let (tx, rx) = mpsc::channel(config.parser_buffer);
        let budget_total = config.parser_buffer_bytes;
        let budget = Arc::new(Semaphore::new(budget_total));
        let (status_tx, status) = watch::channel(DestinationStatus::Starting);
        let cancel = CancellationToken::new();
        let history_path = data_dir.join(name).join("schema-history.json");
        let sup = Supervisor {
            name: name.to_string(),
            config,
            convert_opts,
            history_path,
            persist_history,
            tx,
            on_start,
            budget: budget.clone(),
            status: status_tx,
            cancel: cancel.clone(),
            cursor,
            delivered: None,
            parallel_rows: sup_parallel,
        };
        let span = tracing::info_span!("destination", destination = %name);
        let task = tokio::spawn(sup.run().instrument(span));
        Ok(DestinationHandle {
            name: name.to_string(),
            rx,
            budget,
            budget_total,
            cancel,
            status,
            task,
        })
    }
}

struct Supervisor {
    name: String,
    config: DestinationConfig,
    convert_opts: crate::binlog::convert::ConvertOptions,
    history_path: PathBuf,
    /// Whether schema changes are written to `history_path` (false for a second reader).
    persist_history: bool,
    tx: mpsc::Sender<Buffered>,
    /// Told where the stream begins until that is durable (see [`Destination::spawn_with_start`]).
    on_start: Option<StartHook>,
    /// Bytes of encoded entries the channel may hold; each entry holds its share until received.
    budget: Arc<Semaphore>,
    status: watch::Sender<DestinationStatus>,
    cancel: CancellationToken,
    /// Last transaction boundary handed downstream (or the stored cursor).
    cursor: Option<Cursor>,
    /// Last entry handed downstream.
    delivered: Option<BinlogPosition>,
    /// Large rows events are written on other tasks (`parallel_rows`).
    parallel_rows: bool,
}

/// Schema history plus on-demand loading from the source.
struct Schemas {
    history: SchemaHistory,
    /// Changed since the last save.
    dirty: bool,
}

impl SchemaLookup for Schemas {
    fn table_at(&self, schema: &str, table: &str, at: &BinlogPosition) -> Option<TableMeta> {
        self.history.table_at(schema, table, at).cloned()
    }

    fn apply_ddl(
        &mut self,
        at: &BinlogPosition,
        sql: &str,
        current_db: &str,
    ) -> Result<(), String> {
        use crate::schema::history::DdlOutcome;
        match self.history.apply_ddl(at.clone(), sql, current_db) {
            Ok(DdlOutcome::Applied(changes)) => {
                self.dirty |= !changes.is_empty();
                Ok(())
            }
            Ok(DdlOutcome::AlreadyApplied { .. }) => Ok(()),
            Ok(DdlOutcome::Invalidated { tables, reason }) => {
                warn!(%at, ?tables, %reason, "DDL not understood; these tables will be re-read from information_schema");
                self.dirty = true;
                Ok(())
            }
            Err(e) => Err(e.to_string()),
        }
    }
}

enum RunEnd {
    Cancelled,
    ConsumerGone,
}

const BACKOFF_MIN: Duration = Duration::from_millis(500);
const BACKOFF_MAX: Duration = Duration::from_secs(30);

impl Supervisor {
    async fn run(mut self) -> Result<(), DestinationError> {
        let mut schemas = match SchemaHistory::load(&self.history_path) {
            Ok(h) => Schemas {
                history: h,
                dirty: false,
            },
            Err(e) => {
                let err = DestinationError::History {
                    destination: self.name.clone(),
                    message: e.to_string(),
                };
                self.status.send_replace(DestinationStatus::Failed {
                    error: err.to_string(),
                });
                return Err(err);
            }
        };
        let mut attempt = 0u32;
        let mut backoff = BACKOFF_MIN;
        loop {
            let started = Instant::now();
            match self.run_once(&mut schemas).await {
                Ok(RunEnd::Cancelled) | Ok(RunEnd::ConsumerGone) => {
                    self.status.send_replace(DestinationStatus::Stopped);
                    return Ok(());
                }
                Err(e) if e.is_retryable() => {
                    if started.elapsed() > Duration::from_secs(60) {
                        attempt = 0;
                        backoff = BACKOFF_MIN;
                    }
                    attempt += 1;
                    warn!(error = %e, attempt, backoff_ms = backoff.as_millis() as u64, "reconnecting");
                    metrics::counter!("canal_instance_parser_reconnects_total", "destination" => self.name.clone())
                        .increment(1);
                    self.status.send_replace(DestinationStatus::Reconnecting {
                        attempt,
                        error: e.to_string(),
                    });
                    tokio::select! {
                        _ = self.cancel.cancelled() => {
                            self.status.send_replace(DestinationStatus::Stopped);
                            return Ok(());
                        }
                        _ = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(BACKOFF_MAX);
                }
                Err(e) => {
                    tracing::error!(error = %e, "destination stopped");
                    self.status.send_replace(DestinationStatus::Failed {
                        error: e.to_string(),
                    });
                    return Err(e);
                }
            }
        }
    }

    fn src_err(&self, source: SourceError) -> DestinationError {
        DestinationError::Source {
            destination: self.name.clone(),
            source,
        }
    }

    async fn run_once(&mut self, schemas: &mut Schemas) -> Result<RunEnd, DestinationError> {
        let cfg = self.config.source();
        let mut conn = source::connect(&cfg).await.map_err(|e| self.src_err(e))?;
        let info = source::check_source(&mut conn, &cfg)
            .await
            .map_err(|e| self.src_err(e))?;
        if schemas.history.is_empty() {
            let filter = self.convert_opts.filter.clone();
            let accept = move |s: &str, t: &str| filter.accepts(s, t);
            let tables = schema_source::load_all(&mut conn, &accept)
                .await
                .map_err(|source| DestinationError::Schema {
                    destination: self.name.clone(),
                    table: "(all)".into(),
                    source,
                })?;
            info!(
                tables = tables.len(),
                "seeded schema history from information_schema"
            );
            schemas.history.seed(BinlogPosition::new("", 0), tables);
            self.save_history(schemas)?;
        }
        let mut point = start::resolve(
            &cfg,
            &info,
            self.cursor.as_ref(),
            &self.config.configured_start(),
            self.config.gtid_mode,
        )
        .await
        .map_err(|e| self.src_err(e))?;
        if let Some(d) = &self.delivered {
            // What this process delivered last is the latest thing to skip, unless the resolved
            // start is already past it (a start in another binlog series is not: replaced too).
            if point
                .skip_through
                .as_ref()
                .is_none_or(|s| s.try_cmp(d) != Some(std::cmp::Ordering::Greater))
            {
                point.skip_through = Some(d.clone());
            }
        }
        if let Some(p) = start_position(self.cursor.as_ref(), &point) {
            if self.cursor.is_none() {
                // Pin the resolved start: a reconnect before the first event resumes here
                // instead of resolving "the end of the binlog" again past rows written since.
                self.cursor = Some(Cursor::of(&p));
            }
            if let Some(hook) = self.on_start.as_mut() {
                hook(p)
                    .await
                    .map_err(|message| DestinationError::StartNotDurable {
                        destination: self.name.clone(),
                        message,
                    })?;
                self.on_start = None;
            }
        }
        info!(start = ?point.request, skip_through = ?point.skip_through.as_ref().map(|p| p.to_string()), reason = point.reason, source_version = %info.version, source_server_id = info.server_id, "starting binlog dump");
        let stream_conn = source::connect(&cfg).await.map_err(|e| self.src_err(e))?;
        let mut stream = ReplicaStream::open(stream_conn, &cfg, &info, &point.request)
            .await
            .map_err(|e| self.src_err(e))?;
        let mut converter = Converter::new(self.convert_opts.clone(), point.gtid.clone());
        let destination = self.name.clone();
        let rows_counter = metrics::counter!("canal_instance_parsed_rows_total", "destination" => destination.clone());
        let bytes_counter = metrics::counter!("canal_instance_received_binlog_bytes", "destination" => destination.clone(), "parser" => "0");
        let delay_gauge =
            metrics::gauge!("canal_instance_parser_delay", "destination" => destination.clone());
        // Large rows events are written on other tasks while this one reads on (the parser
        // is otherwise bound to one core); whatever the order they finish in, entries are
        // handed on strictly in binlog order, at most CONVERT_AHEAD events ahead.
        let mut ahead: FuturesOrdered<BoxFuture<'static, Result<Converted, DestinationError>>> =
            FuturesOrdered::new();
        let mut ahead_bytes = 0usize;
        loop {
            tokio::select! {
                biased;
                _ = self.cancel.cancelled() => {
                    stream.close().await;
                    return Ok(RunEnd::Cancelled);
                }
                Some(done) = ahead.next(), if !ahead.is_empty() => {
                    let done = done?;
                    ahead_bytes -= done.event_bytes;
                    let end = self
                        .hand_on(done, point.skip_through.as_ref(), &rows_counter)
                        .await;
                    if let Some(end) = end {
                        stream.close().await;
                        return Ok(end);
                    }
                }
                r = stream.next(), if ahead.len() < CONVERT_AHEAD && ahead_bytes < CONVERT_AHEAD_BYTES => {
                    let raw = r.map_err(|e| self.src_err(e))?;
                    let event_bytes = raw.event.header().event_size() as usize;
                    ahead_bytes += event_bytes;
                    self.observe(&raw, &bytes_counter, &delay_gauge);
                    let (entries, plan) = self
                        .convert(&mut converter, &raw, schemas, &mut conn)
                        .await?;
                    // A boundary's cursor carries the GTID state as of its own event.
                    let gtid = entries
                        .iter()
                        .any(ParsedEntry::is_boundary)
                        .then(|| converter.gtid_state().map(GtidSet::from))
                        .flatten();
                    let converted = Converted {
                        entries,
                        gtid,
                        event_bytes,
                    };
                    match plan {
                        None => ahead.push_back(Box::pin(futures::future::ready(Ok(converted)))),
                        Some(plan) => ahead.push_back(self.write_later(plan, raw, converted)),
                    }
                }
            }
        }
    }

    /// Converts one event, loading a missing table definition from the source once.
    async fn convert(
        &self,
        converter: &mut Converter,
        raw: &source::RawEvent,
        schemas: &mut Schemas,
        conn: &mut mysql_async::Conn,
    ) -> Result<(Vec<ParsedEntry>, Option<RowsPlan>), DestinationError> {
        let ty = raw.event.header().event_type_raw();
        if ty == mysql_common::binlog::consts::EventType::HEARTBEAT_EVENT as u8 {
            return Ok((Vec::new(), None));
        }
        let mut reloaded = false;
        loop {
            let converted = if self.parallel_rows {
                converter.convert_deferring(&raw.event, &raw.pos, schemas)
            } else {
                converter
                    .convert(&raw.event, &raw.pos, schemas)
                    .map(|entries| (entries, None))
            };
            match converted {
                Ok(converted) => {
                    if schemas.dirty {
                        self.save_history(schemas)?;
                    }
                    return Ok(converted);
                }
                Err(ConvertError::NeedTable { schema, table, at }) if !reloaded => {
                    reloaded = true;
                    self.reload_table(schemas, conn, &schema, &table, &at)
                        .await?;
                }
                Err(ConvertError::ColumnMismatch {
                    schema, table, at, ..
                }) if !reloaded => {
                    // Canal reloads the definition once when the binlog has more columns.
                    reloaded = true;
                    self.reload_table(schemas, conn, &schema, &table, &at)
                        .await?;
                }
                Err(ConvertError::StatementFormat { at, change }) => {
                    return Err(self.statement_format(conn, at, change).await)
                }
                Err(source) => {
                    return Err(DestinationError::Convert {
                        destination: self.name.clone(),
                        source,
                    })
                }
            }
        }
    }

    /// The error for a data change that arrived as a statement: the same operator-level error as
    /// a source that is not on `binlog_format=ROW` at connect, with the event that showed it.
    async fn statement_format(
        &self,
        conn: &mut mysql_async::Conn,
        at: BinlogPosition,
        change: String,
    ) -> DestinationError {
        use mysql_async::prelude::Queryable;
        // What the source says now; a session may have changed only its own format.
        let global: Option<String> = conn
            .query_first("SELECT @@global.binlog_format")
            .await
            .ok()
            .flatten();
        let actual = global
            .filter(|f| !f.eq_ignore_ascii_case("ROW"))
            .unwrap_or_else(|| "STATEMENT or MIXED (in a session)".into());
        self.src_err(SourceError::Setting {
            address: self.config.address.clone(),
            variable: "binlog_format",
            actual,
            wanted: "ROW".into(),
            seen: Some(source::SeenInStream {
                at,
                what: format!(
                    "{change} was written as a statement, so its rows are not in the binlog"
                ),
            }),
        })
    }

    async fn reload_table(
        &self,
        schemas: &mut Schemas,
        conn: &mut mysql_async::Conn,
        schema: &str,
        table: &str,
        at: &BinlogPosition,
    ) -> Result<(), DestinationError> {
        let meta = schema_source::load_table(conn, schema, table)
            .await
            .map_err(|source| DestinationError::Schema {
                destination: self.name.clone(),
                table: format!("{schema}.{table}"),
                source,
            })?;
        match meta {
            Some(m) => {
                info!(%schema, %table, %at, "loaded table definition from information_schema");
                schemas.history.record(at.clone(), m);
                self.save_history(schemas)
            }
            None => {
                warn!(%schema, %table, %at, "table no longer exists on the source");
                Ok(())
            }
        }
    }

    fn save_history(&self, schemas: &mut Schemas) -> Result<(), DestinationError> {
        schemas.dirty = false;
        if !self.persist_history {
            return Ok(());
        }
        if let Some(dir) = self.history_path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| DestinationError::History {
                destination: self.name.clone(),
                message: format!("create {}: {e}", dir.display()),
            })?;
        }
        schemas
            .history
            .save(&self.history_path)
            .map_err(|e| DestinationError::History {
                destination: self.name.clone(),
                message: e.to_string(),
            })
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}
