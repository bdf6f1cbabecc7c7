//! The consume loop behind every `canal-client` command: fetch a batch, hand it to the sink, ack
//! it only after the sink succeeded.
//!
//! * Direct mode (`--server`) reconnects to the one server with capped backoff; cluster mode
//!   (`--zk`) follows the running server through ZooKeeper ([`ClusterConnector`]). Either way the
//!   connection's `rollback(0)` makes un-acked batches come again.
//! * Shutdown is checked between batches and while a sink retries; a batch being written is
//!   finished (or, if the sink is retrying, left un-acked) before the loop returns.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::{Batch, Sink, SinkError};
use crate::cluster::retry::Backoff;
use crate::flat::{flat_messages, now_ms, summarize, BatchSummary};
use crate::{
    ClientError, ClusterConnector, ClusterError, ClusterOptions, ConnectorOptions, Message,
    SimpleConnector, UnknownDestination, ZkConfig, UNKNOWN_DESTINATION_ANSWERS,
};

/// Where batches come from.
#[derive(Debug, Clone)]
pub enum SourceSpec {
    /// One server, `host:port`.
    Direct {
        /// The server address.
        server: String,
    },
    /// The destination's running server, found through ZooKeeper.
    Cluster {
        /// ZooKeeper settings.
        zk: ZkConfig,
    },
}

/// Settings of [`run`].
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Canal destination.
    pub destination: String,
    /// Subscription filter; `None` keeps the server's.
    pub filter: Option<String>,
    /// Connector settings (client id, user, password, timeouts).
    pub connector: ConnectorOptions,
    /// GET batch size (entries, or memory units on a MEMSIZE server).
    pub batch_size: i32,
    /// How long each GET lets the server wait for a full batch.
    pub poll: Duration,
    /// Reconnect pauses in direct mode, and the cluster connector's.
    pub initial_backoff: Duration,
    /// Largest reconnect pause.
    pub max_backoff: Duration,
}

impl RunOptions {
    /// Defaults for `destination`: batch 1000, 500 ms polls, backoff 100 ms to 5 s.
    pub fn new(destination: impl Into<String>) -> Self {
        Self {
            destination: destination.into(),
            filter: None,
            connector: ConnectorOptions::default(),
            batch_size: 1000,
            poll: Duration::from_millis(500),
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(5),
        }
    }
}

/// Counters of a run, shared with a progress display.
#[derive(Debug, Default)]
pub struct Stats {
    /// Rows delivered and acked.
    pub rows: AtomicU64,
    /// Non-empty batches delivered and acked.
    pub batches: AtomicU64,
    /// Flat messages (row-change entries) delivered and acked.
    pub messages: AtomicU64,
    /// ms between the newest delivered row's binlog time and its delivery; −1 before the first.
    pub lag_ms: AtomicI64,
}

impl Stats {
    /// Fresh counters.
    pub fn new() -> Arc<Self> {
        Arc::new(Self {
            lag_ms: AtomicI64::new(-1),
            ..Default::default()
        })
    }
}

/// Why [`run`] stopped other than by shutdown.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The server refused us for good (authentication, protocol, a bad filter).
    #[error("canal server: {0}")]
    Client(#[from] ClientError),
    /// The cluster connector gave up (ZooKeeper config, authentication…).
    #[error("canal cluster: {0}")]
    Cluster(#[from] ClusterError),
    /// Direct mode: the server kept answering that it has no such destination.
    #[error(transparent)]
    UnknownDestination(#[from] UnknownDestination),
    /// The sink failed in a way retrying cannot fix; the batch was not acked.
    #[error("sink {sink}: {message}")]
    Sink {
        /// The sink's name.
        sink: &'static str,
        /// What failed.
        message: String,
    },
}

enum Conn {
    Direct(Box<SimpleConnector>, String),
    Cluster(Box<ClusterConnector>),
}

/// Runs until `stop` is cancelled (`Ok`) or a failure retrying cannot fix.
pub async fn run<S: Sink>(
    source: SourceSpec,
    options: RunOptions,
    sink: &mut S,
    stats: Arc<Stats>,
    stop: CancellationToken,
) -> Result<(), RunError> {
    let mut conn = match source {
        SourceSpec::Direct { server } => Conn::Direct(
            Box::new(SimpleConnector::new(
                &server,
                &options.destination,
                options.connector.clone(),
            )),
            server,
        ),
        SourceSpec::Cluster { zk } => Conn::Cluster(Box::new(
            ClusterConnector::new(zk, &options.destination, options.connector.clone())
                .with_cluster_options(ClusterOptions {
                    call_deadline: None,
                    consume_deadline: None,
                    initial_backoff: options.initial_backoff,
                    max_backoff: options.max_backoff,
                }),
        )),
    };
    let labels = [
        ("destination", options.destination.clone()),
        ("sink", sink.name().to_string()),
    ];
    let rows_total = metrics::counter!("canal_client_rows_total", &labels);
    let batches_total = metrics::counter!("canal_client_batches_total", &labels);
    let lag_gauge = metrics::gauge!("canal_client_lag_ms", &labels);
    let mut backoff = Backoff::new(options.initial_backoff, options.max_backoff);
    let mut connected = false;
    // Direct mode: answers in a row that the server has no such destination.
    let mut unknown_answers = 0u32;
    loop {
        if stop.is_cancelled() {
            break;
        }
        if !connected {
            match open(&mut conn, &options, &stop).await {
                Ok(true) => {
                    connected = true;
                    unknown_answers = 0;
                    backoff.reset();
                }
                Ok(false) => break,
                Err(e) if retryable(&e) => {
                    if let Some(unknown) =
                        unknown_destination(&conn, &options, &e, &mut unknown_answers)
                    {
                        return Err(unknown.into());
                    }
                    let delay = backoff.next_delay();
                    warn!(destination = %options.destination, error = %e, retry_in_ms = delay.as_millis() as u64, "cannot consume yet; retrying");
                    tokio::select! {
                        _ = stop.cancelled() => break,
                        _ = tokio::time::sleep(delay) => {}
                    }
                    continue;
                }
                Err(e) => return Err(e),
            }
        }
        let got = tokio::select! {
            _ = stop.cancelled() => break,
            r = get(&mut conn, options.batch_size, options.poll) => r,
        };
        let message = match got {
            Ok(m) => m,
            Err(e) if retryable(&e) => {
                warn!(destination = %options.destination, error = %e, "lost the server; reconnecting");
                connected = false;
                continue;
            }
            Err(e) => return Err(e),
        };
        if message.is_empty() {
            continue;
        }
        let ts = now_ms();
        let built = if sink.reads_messages() {
            flat_messages(message.id, &message.entries, ts).map(|m| {
                let summary = BatchSummary::of(&m);
                (m, summary)
            })
        } else {
            summarize(message.id, &message.entries).map(|s| (Vec::new(), s))
        };
        let (messages, summary) = built.map_err(|e| RunError::Sink {
            sink: sink.name(),
            message: format!("batch {}: {e}", message.id),
        })?;
        let batch = Batch {
            destination: &options.destination,
            id: message.id,
            entries: &message.entries,
            ts,
            messages: &messages,
        };
        match sink.deliver(&batch, &stop).await {
            Ok(()) => {}
            Err(SinkError::Cancelled) => {
                rollback(&mut conn).await;
                break;
            }
            Err(SinkError::Fatal(m)) => {
                rollback(&mut conn).await;
                return Err(RunError::Sink {
                    sink: sink.name(),
                    message: m,
                });
            }
        }
        match ack(&mut conn, message.id).await {
            Ok(()) => {}
            Err(e)
                if retryable(&e)
                    || matches!(e, RunError::Cluster(ClusterError::BatchRolledBack { .. })) =>
            {
                // Delivered but not acked: it comes again (at-least-once).
                warn!(destination = %options.destination, batch_id = message.id, error = %e, "ack not written; the batch will be delivered again");
                connected = false;
                continue;
            }
            Err(e) => return Err(e),
        }
        stats.rows.fetch_add(summary.rows, Ordering::Relaxed);
        stats.batches.fetch_add(1, Ordering::Relaxed);
        stats
            .messages
            .fetch_add(summary.messages, Ordering::Relaxed);
        rows_total.increment(summary.rows);
        batches_total.increment(1);
        if let Some(es) = summary.newest_es {
            let lag = (now_ms() - es).max(0);
            stats.lag_ms.store(lag, Ordering::Relaxed);
            lag_gauge.set(lag as f64);
        }
    }
    if let Conn::Direct(c, _) = &mut conn {
        let _ = c.disconnect().await;
    }
    if let Conn::Cluster(c) = &mut conn {
        let _ = c.disconnect().await;
    }
    info!(destination = %options.destination, rows = stats.rows.load(Ordering::Relaxed), "stopped");
    Ok(())
}

/// Direct mode: counts answers in a row that the server has no such destination (Canal's
/// `should start first`, also given while a destination is still starting); the
/// [`UNKNOWN_DESTINATION_ANSWERS`]-th makes it unknown for good. Each answer is logged. (Cluster
/// mode: the [`ClusterConnector`] decides.)
fn unknown_destination(
    conn: &Conn,
    options: &RunOptions,
    err: &RunError,
    answers: &mut u32,
) -> Option<UnknownDestination> {
    let (Conn::Direct(_, server), RunError::Client(client)) = (conn, err) else {
        return None;
    };
    let ClientError::Server { message, .. } = client else {
        return None;
    };
    if !client.is_unknown_destination() {
        return None;
    }
    *answers += 1;
    warn!(destination = %options.destination, %server, answer = *answers, of = UNKNOWN_DESTINATION_ANSWERS, %message, "the server says it does not have the destination");
    (*answers >= UNKNOWN_DESTINATION_ANSWERS).then(|| UnknownDestination {
        destination: options.destination.clone(),
        server: server.clone(),
        attempts: *answers,
        message: message.clone(),
    })
}

fn retryable(e: &RunError) -> bool {
    match e {
        RunError::Client(c) => c.is_retryable(),
        RunError::Cluster(c) => c.is_retryable(),
        RunError::Sink { .. } | RunError::UnknownDestination(_) => false,
    }
}

/// Connects and subscribes; `Ok(false)` when stopped meanwhile.
async fn open(
    conn: &mut Conn,
    options: &RunOptions,
    stop: &CancellationToken,
) -> Result<bool, RunError> {
    let filter = options.filter.as_deref();
    let work = async {
        match conn {
            Conn::Direct(c, server) => {
                c.connect().await?;
                c.subscribe(filter).await?;
                info!(destination = %options.destination, server = %server, "consuming");
                Ok::<(), RunError>(())
            }
            Conn::Cluster(c) => {
                if !c.is_connected() {
                    c.connect().await?;
                }
                c.subscribe(filter).await?;
                info!(destination = %options.destination, server = ?c.server_address(), "consuming");
                Ok(())
            }
        }
    };
    tokio::select! {
        _ = stop.cancelled() => Ok(false),
        r = work => r.map(|()| true),
    }
}

async fn get(conn: &mut Conn, batch_size: i32, poll: Duration) -> Result<Message, RunError> {
    match conn {
        Conn::Direct(c, _) => Ok(c.get_without_ack(batch_size, Some(poll)).await?),
        Conn::Cluster(c) => Ok(c.get_without_ack(batch_size, Some(poll)).await?),
    }
}

async fn ack(conn: &mut Conn, id: i64) -> Result<(), RunError> {
    match conn {
        Conn::Direct(c, _) => Ok(c.ack(id).await?),
        Conn::Cluster(c) => Ok(c.ack(id).await?),
    }
}

async fn rollback(conn: &mut Conn) {
    let _ = match conn {
        Conn::Direct(c, _) => c.rollback(0).await.map_err(RunError::from),
        Conn::Cluster(c) => c.rollback(0).await.map_err(RunError::from),
    };
}
