//! The publisher loop of one destination and the state `/health` shows.

use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use serde::Serialize;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::rabbit::RabbitProducer;
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
    /// `rabbitmq`.
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
        mode: "rabbitmq",
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

async fn run(
    inst: Weak<Instance>,
    c: &MqConfig,
    cancel: &CancellationToken,
    status: &StatusCell,
) -> Result<(), MqError> {
    let router = Router::new(c).map_err(|e| MqError::Encode(e.message))?;
    let uri = resolve_uri(&c.servers)?;
    let name = inst
        .upgrade()
        .map(|i| i.name().to_string())
        .unwrap_or_default();
    let first_backoff = Duration::from_millis(c.connect_timeout_ms.clamp(50, 1_000));
    let max_backoff = Duration::from_millis(c.max_retry_backoff_ms.max(100));
    let mut backoff = first_backoff;
    let mut producer: Option<RabbitProducer> = None;
    let wait = GetWait::Up(Duration::from_millis(c.get_timeout_ms.max(1)));
    let mut start_persisted = false;
    loop {
        let Some(i) = inst.upgrade() else {
            return Ok(());
        };
        let batch = tokio::select! {
            _ = cancel.cancelled() => return Ok(()),
            b = i.get(c.client_id, c.batch_size, wait) => b,
        };
        let batch = match batch {
            Ok(b) => b,
            Err(crate::store::StoreError::Closed(_)) => return Ok(()),
            Err(e) => {
                warn!(destination = %name, error = %e, "MQ publisher could not get a batch");
                drop(i);
                tokio::select! {
                    _ = cancel.cancelled() => return Ok(()),
                    _ = tokio::time::sleep(first_backoff) => continue,
                }
            }
        };
        if batch.id == -1 {
            continue;
        }
        if !start_persisted {
            // Store where this client starts before publishing anything: a server killed before
            // its first cursor write would otherwise leave a successor no cursor for this client,
            // and it would start from the configured start (the end of the binlog), skipping rows.
            if let Err(e) = i.flush().await {
                warn!(destination = %name, error = %e, "could not persist the MQ client's start; retrying");
                let _ = i.rollback(c.client_id, batch.id);
                drop(i);
                tokio::select! {
                    _ = cancel.cancelled() => return Ok(()),
                    _ = tokio::time::sleep(first_backoff) => continue,
                }
            }
            start_persisted = true;
        }
        let messages = match build(c, &router, batch.id, &batch.entries) {
            Ok(m) => m,
            Err(e) => {
                let _ = i.rollback(c.client_id, batch.id);
                warn!(destination = %name, error = %e, "MQ publisher stopped");
                return Err(e);
            }
        };
        drop(i);
        // Publish the batch until the broker confirmed all of it.
        loop {
            if cancel.is_cancelled() {
                if let Some(i) = inst.upgrade() {
                    let _ = i.rollback(c.client_id, batch.id);
                }
                return Ok(());
            }
            if producer.is_none() {
                match RabbitProducer::connect(c, &uri).await {
                    Ok(p) => {
                        info!(destination = %name, "MQ publisher connected");
                        set(status, |s| s.state = ProducerState::Publishing);
                        producer = Some(p);
                    }
                    Err(e) => {
                        fail(status, &name, &e);
                        tokio::select! {
                            _ = cancel.cancelled() => {}
                            _ = tokio::time::sleep(backoff) => {}
                        }
                        backoff = (backoff * 2).min(max_backoff);
                        continue;
                    }
                }
            }
            let Some(p) = producer.as_ref() else { continue };
            let started = std::time::Instant::now();
            match p.publish(&messages).await {
                Ok(()) => {
                    metrics::histogram!("canal_mq_send_seconds", "destination" => name.clone())
                        .record(started.elapsed().as_secs_f64());
                    backoff = first_backoff;
                    break;
                }
                Err(e) => {
                    fail(status, &name, &e);
                    if let Some(p) = producer.take() {
                        p.close().await;
                    }
                    if !e.is_retryable() {
                        return Err(e);
                    }
                    tokio::select! {
                        _ = cancel.cancelled() => {}
                        _ = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(max_backoff);
                }
            }
        }
        let Some(i) = inst.upgrade() else {
            return Ok(());
        };
        if let Err(e) = i.ack(c.client_id, batch.id) {
            warn!(destination = %name, error = %e, "MQ publisher could not ack a confirmed batch");
            continue;
        }
        if i.flush_on_ack() {
            if let Err(e) = i.flush().await {
                warn!(destination = %name, error = %e, "could not persist the MQ cursor");
            }
        }
        let rows: u64 = messages.iter().map(|m| m.rows).sum();
        let bytes: usize = messages.iter().map(|m| m.payload.len()).sum();
        let d = name.clone();
        metrics::counter!("canal_mq_messages", "destination" => d.clone())
            .increment(messages.len() as u64);
        metrics::counter!("canal_mq_rows", "destination" => d.clone()).increment(rows);
        metrics::counter!("canal_mq_bytes", "destination" => d.clone()).increment(bytes as u64);
        if let Some(t) = batch.last_execute_time.filter(|t| *t > 0) {
            let delay = (canal_client::flat::now_ms() - t).max(0);
            metrics::gauge!("canal_mq_delay", "destination" => d.clone()).set(delay as f64);
        }
        metrics::counter!("canal_mq_batches", "destination" => d).increment(1);
        set(status, |s| {
            s.state = ProducerState::Publishing;
            s.error = None;
            s.confirmed_batches += 1;
            s.confirmed_messages += messages.len() as u64;
        });
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
