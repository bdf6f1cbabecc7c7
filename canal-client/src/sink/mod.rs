//! Sinks for the `canal-client` command: where batches of row changes go, and the loop that feeds
//! them ([`run`]).
//!
//! Every sink is at-least-once: [`run`] acks a batch only after [`Sink::deliver`] returned `Ok`,
//! so a crash, a Ctrl-C or a failover at any point delivers the un-acked batch again and never
//! skips one. Sinks retry their target (with capped backoff) inside `deliver`; a sink gives up on
//! a batch only where the user asked for it (the webhook's dead-letter file).

pub mod jsonl;
pub mod redis;
pub mod run;
pub mod template;
pub mod webhook;

use std::future::Future;
use std::time::Duration;

use canal_protocol::Entry;
use tokio_util::sync::CancellationToken;

use crate::flat::FlatMessage;

pub use run::{run, RunError, RunOptions, SourceSpec, Stats};

/// One batch as fetched from the server.
#[derive(Debug)]
pub struct Batch<'a> {
    /// Destination it came from.
    pub destination: &'a str,
    /// The batch id (what `id` in each flat message holds).
    pub id: i64,
    /// The entries, in binlog order (transaction begin/end included).
    pub entries: &'a [Entry],
    /// ms since the epoch when the batch was fetched: the `ts` of its flat messages.
    pub ts: i64,
    /// The batch's ROWDATA entries as Canal flat messages; empty when the sink said it does not
    /// read them ([`Sink::reads_messages`]).
    pub messages: &'a [FlatMessage],
}

/// Why a batch was not delivered. The batch is not acked in any case.
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    /// Shutdown was requested while the sink was still retrying.
    #[error("stopped before the batch was delivered")]
    Cancelled,
    /// A failure retrying cannot fix (a bad template for a table's columns, an unwritable
    /// output); the run stops.
    #[error("{0}")]
    Fatal(String),
}

/// A target for batches.
pub trait Sink: Send {
    /// A short name for metrics and logs (`tail`, `webhook`, `redis`).
    fn name(&self) -> &'static str;

    /// Whether [`Sink::deliver`] reads [`Batch::messages`]. A sink that works from
    /// [`Batch::entries`] alone says no, and [`run`] does not build the messages (building them
    /// costs more than most sinks' own work).
    fn reads_messages(&self) -> bool {
        true
    }

    /// Delivers `batch`, retrying the target as the sink's policy says. `Ok` means the batch is at
    /// the target (or, where configured, in the dead-letter file) and may be acked.
    fn deliver(
        &mut self,
        batch: &Batch<'_>,
        stop: &CancellationToken,
    ) -> impl Future<Output = Result<(), SinkError>> + Send;
}

/// Capped exponential backoff for sink retries.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    /// First pause.
    pub initial: Duration,
    /// Largest pause.
    pub max: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            initial: Duration::from_millis(200),
            max: Duration::from_secs(30),
        }
    }
}

impl RetryPolicy {
    /// The pause before attempt `attempt` (1 = the first retry).
    pub fn delay(&self, attempt: u32) -> Duration {
        let factor = 1u32
            .checked_shl(attempt.saturating_sub(1).min(20))
            .unwrap_or(u32::MAX);
        self.initial.saturating_mul(factor).min(self.max)
    }

    /// Sleeps the pause before `attempt`, or returns [`SinkError::Cancelled`] on shutdown.
    pub async fn pause(&self, attempt: u32, stop: &CancellationToken) -> Result<(), SinkError> {
        tokio::select! {
            _ = stop.cancelled() => Err(SinkError::Cancelled),
            _ = tokio::time::sleep(self.delay(attempt)) => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_caps() {
        let p = RetryPolicy {
            initial: Duration::from_millis(100),
            max: Duration::from_secs(1),
        };
        assert_eq!(p.delay(1), Duration::from_millis(100));
        assert_eq!(p.delay(2), Duration::from_millis(200));
        assert_eq!(p.delay(4), Duration::from_millis(800));
        assert_eq!(p.delay(5), Duration::from_secs(1));
        assert_eq!(p.delay(1000), Duration::from_secs(1));
    }
}
