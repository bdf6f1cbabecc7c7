//! The publisher loop of one destination and the state `/health` shows.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use serde::Serialize;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::producer::{Pending, Producer};
use super::route::Router;
use super::{build, MqConfig, MqError};
use crate::instance::Instance;
use crate::store::GetWait;

/// What the producer is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ProducerState {
    /// Connecting to the broker.
    Connecting,
    /// Connected; publishing batches as they come.
    Publishing,
    /// A batch failed; retrying it on a new connection.
    Retrying,
    /// Stopped on an error that needs an operator (oversize message, undecodable entry).
    Failed,
    /// The instance stopped.
    Stopped,
}

/// The producer's state and counters, for `/health`.
#[derive(Debug, Clone, Serialize)]
pub struct ProducerStatus {
    /// `kafka` or `rabbitmq`.
    pub mode: &'static str,
    /// The internal client id.
    pub client_id: i16,
    /// State.
    pub state: ProducerState,
    /// The last error.
    pub error: Option<String>,
    /// Batches confirmed by the broker and acked.
    pub confirmed_batches: u64,
    /// Messages confirmed.
    pub confirmed_messages: u64,
    /// Failed publish attempts since start.
    pub failed_attempts: u64,
}

impl ProducerStatus {
    /// Why the producer makes its destination unhealthy (retrying or failed), if it does.
    pub fn unhealthy(&self) -> Option<String> {
        matches!(self.state, ProducerState::Retrying | ProducerState::Failed).then(|| {
            let error = self.error.as_deref().unwrap_or("");
            format!("MQ producer is {:?}: {error}", self.state)
        })
    }
}

/// Shared handle on a producer's status.
pub type StatusCell = Arc<Mutex<ProducerStatus>>;

fn set(cell: &StatusCell, f: impl FnOnce(&mut ProducerStatus)) {
    f(&mut cell.lock().unwrap_or_else(|p| p.into_inner()));
}

/// Starts the publisher of `inst` (already subscribed as `c.client_id`); it ends with `cancel`.
pub fn spawn(
    inst: Weak<Instance>,
    c: MqConfig,
    cancel: CancellationToken,
) -> (tokio::task::JoinHandle<()>, StatusCell) {
    let status = Arc::new(Mutex::new(ProducerStatus {
        mode: c.mode.name(),
        client_id: c.client_id,
        state: ProducerState::Connecting,
        error: None,
        confirmed_batches: 0,
        confirmed_messages: 0,
        failed_attempts: 0,
    }));
    let cell = status.clone();
    let task = tokio::spawn(async move {
        let result = run(inst, &c, &cancel, &cell).await;
        set(&cell, |s| match result {
            Ok(()) => s.state = ProducerState::Stopped,
            Err(e) => {
                s.state = ProducerState::Failed;
                s.error = Some(e.to_string());
            }
        });
    });
    (task, status)
}

fn resolve_uri(servers: &str) -> Result<String, MqError> {
    match servers.strip_prefix("env:") {
        Some(var) => std::env::var(var)
            .map_err(|_| MqError::Broker(format!("environment variable {var} is not set"))),
        None => Ok(servers.to_string()),
    }
}

/// A batch sent to the broker whose confirms are not all in yet.
struct InFlight {
    batch_id: i64,
    pending: Pending,
    messages: u64,
    rows: u64,
    bytes: u64,
    last_execute_time: Option<i64>,
}

/// What went wrong in one round of the loop.
enum Round {
    /// The instance or the publisher stops.
    Stop,
    /// The broker failed: everything outstanding is rolled back and sent again.
    Retry(MqError),
}

struct Loop<'a> {
    inst: Weak<Instance>,
    c: &'a MqConfig,
    router: Router,
    uri: String,
    name: String,
    status: &'a StatusCell,
    producer: Option<Producer>,
    in_flight: VecDeque<InFlight>,
}

async fn run(
    inst: Weak<Instance>,
    c: &MqConfig,
    cancel: &CancellationToken,
    status: &StatusCell,
) -> Result<(), MqError> {
    let name = inst
        .upgrade()
        .map(|i| i.name().to_string())
        .unwrap_or_default();
    let mut l = Loop {
        inst,
        c,
        router: Router::new(c).map_err(|e| MqError::Encode(e.message))?,
        uri: resolve_uri(&c.servers)?,
        name,
        status,
        producer: None,
        in_flight: VecDeque::new(),
    };
    let first_backoff = Duration::from_millis(c.connect_timeout_ms.clamp(50, 1_000));
    let max_backoff = Duration::from_millis(c.max_retry_backoff_ms.max(100));
    let mut backoff = first_backoff;
    loop {
        let round = tokio::select! {
            _ = cancel.cancelled() => Err(Round::Stop),
            r = l.round() => r,
        };
        match round {
            Ok(progress) => {
                if progress {
                    backoff = first_backoff;
                }
            }
            Err(Round::Stop) => {
                l.rollback_all();
                return Ok(());
            }
            Err(Round::Retry(e)) => {
                fail(status, &l.name, &e);
                l.rollback_all();
                if let Some(p) = l.producer.take() {
                    p.close().await;
                }
                if !e.is_retryable() {
                    return Err(e);
                }
                tokio::select! {
                    _ = cancel.cancelled() => return Ok(()),
                    _ = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(max_backoff);
            }
        }
    }
}

impl Loop<'_> {
    /// Sends batches while fewer than `max_in_flight_batches` await confirms, then waits for the
    /// oldest one's confirms and acks it. True when a batch was confirmed.
    async fn round(&mut self) -> Result<bool, Round> {
        while self.in_flight.len() < self.c.max_in_flight_batches.max(1) {
            let Some(inst) = self.inst.upgrade() else {
                return Err(Round::Stop);
            };
            let wait = if self.in_flight.is_empty() {
                GetWait::Up(Duration::from_millis(self.c.get_timeout_ms.max(1)))
            } else {
                GetWait::NonBlocking
            };
            let batch = match inst.get(self.c.client_id, self.c.batch_size, wait).await {
                Ok(b) => b,
                Err(crate::store::StoreError::Closed(_)) => return Err(Round::Stop),
                Err(e) => {
                    warn!(destination = %self.name, error = %e, "MQ publisher could not get a batch");
                    return Err(Round::Retry(MqError::Broker(format!("store: {e}"))));
                }
            };
            if batch.id == -1 {
                break;
            }
            let messages =
                build(self.c, &self.router, batch.id, &batch.entries).map_err(Round::Retry)?;
            drop(inst);
            if self.producer.is_none() {
                let p = Producer::connect(self.c, &self.uri)
                    .await
                    .map_err(Round::Retry)?;
                info!(destination = %self.name, "MQ publisher connected");
                set(self.status, |s| s.state = ProducerState::Publishing);
                self.producer = Some(p);
            }
            let Some(p) = self.producer.as_ref() else {
                continue;
            };
            let pending = p.send(&messages).await.map_err(Round::Retry)?;
            self.in_flight.push_back(InFlight {
                batch_id: batch.id,
                pending,
                messages: messages.len() as u64,
                rows: messages.iter().map(|m| m.rows).sum(),
                bytes: messages.iter().map(|m| m.payload.len() as u64).sum(),
                last_execute_time: batch.last_execute_time,
            });
        }
        let Some(f) = self.in_flight.pop_front() else {
            return Ok(false);
        };
        let started = std::time::Instant::now();
        if let Some(p) = self.producer.as_ref() {
            p.confirm(f.pending).await.map_err(Round::Retry)?;
        }
        let d = self.name.clone();
        metrics::histogram!("canal_mq_confirm_wait_seconds", "destination" => d.clone())
            .record(started.elapsed().as_secs_f64());
        let Some(inst) = self.inst.upgrade() else {
            return Err(Round::Stop);
        };
        if let Err(e) = inst.ack(self.c.client_id, f.batch_id) {
            return Err(Round::Retry(MqError::Broker(format!(
                "ack of confirmed batch {}: {e}",
                f.batch_id
            ))));
        }
        if inst.flush_on_ack() {
            if let Err(e) = inst.flush().await {
                warn!(destination = %d, error = %e, "could not persist the MQ cursor");
            }
        }
        if let Some(t) = f.last_execute_time.filter(|t| *t > 0) {
            let delay = (canal_client::flat::now_ms() - t).max(0);
            metrics::gauge!("canal_mq_delay", "destination" => d.clone()).set(delay as f64);
        }
        metrics::counter!("canal_mq_messages", "destination" => d.clone()).increment(f.messages);
        metrics::counter!("canal_mq_rows", "destination" => d.clone()).increment(f.rows);
        metrics::counter!("canal_mq_bytes", "destination" => d.clone()).increment(f.bytes);
        metrics::counter!("canal_mq_batches", "destination" => d).increment(1);
        set(self.status, |s| {
            s.state = ProducerState::Publishing;
            s.error = None;
            s.confirmed_batches += 1;
            s.confirmed_messages += f.messages;
        });
        Ok(true)
    }

    /// Rewinds the client to its last ack: every sent but unconfirmed batch comes again.
    fn rollback_all(&mut self) {
        self.in_flight.clear();
        if let Some(i) = self.inst.upgrade() {
            let _ = i.rollback(self.c.client_id, 0);
        }
    }
}

fn fail(status: &StatusCell, name: &str, e: &MqError) {
    warn!(destination = %name, error = %e, "MQ publish failed; the batch will be published again");
    metrics::counter!("canal_mq_send_failures", "destination" => name.to_string()).increment(1);
    set(status, |s| {
        s.state = ProducerState::Retrying;
        s.error = Some(e.to_string());
        s.failed_attempts += 1;
    });
}
