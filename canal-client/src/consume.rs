//! Consuming with automatic ack: [`SimpleConnector::consume`] (callback) and
//! [`SimpleConnector::into_stream`] (stream).
//!
//! Both give at-least-once delivery: a batch is acked only after the code
//! that received it finished with it, so after a crash or a handler failure
//! the batch is delivered again (under a new batch id, possibly merged with
//! later entries into differently sized batches).

use std::future::Future;
use std::time::Duration;

use futures::stream::BoxStream;
use futures::StreamExt;
use tokio_util::sync::CancellationToken;

use crate::connector::{Message, SimpleConnector, DEFAULT_FETCH_SIZE};
use crate::error::ClientError;

/// Pause after an empty batch when polling without a server-side wait
/// (`poll_timeout` zero), so an idle destination is not polled in a tight
/// loop.
pub const EMPTY_POLL_PAUSE: Duration = Duration::from_millis(100);

/// What [`SimpleConnector::consume`] does when the handler fails.
///
/// In every case the batch is rolled back first (`rollback(0)`), so nothing
/// of it is acked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum HandlerErrorPolicy {
    /// Return [`ConsumeError::Handler`] at once.
    #[default]
    Stop,
    /// Wait `backoff`, fetch again (the server redelivers from the last ack)
    /// and call the handler again; return [`ConsumeError::Handler`] once the
    /// handler has failed `max_retries + 1` times in a row. A success resets
    /// the count.
    Retry {
        /// Redeliveries allowed after the first failure.
        max_retries: u32,
        /// Pause before each redelivery.
        backoff: Duration,
    },
}

/// Settings for [`SimpleConnector::consume`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumeOptions {
    /// GET `fetch_size` (≤ 0 means 1000). Default 1000.
    pub batch_size: i32,
    /// How long each GET lets the server wait for a full batch; also the
    /// worst-case delay before a cancelled consumer returns. Zero polls
    /// without waiting and pauses [`EMPTY_POLL_PAUSE`] after an empty
    /// batch. Default 500 ms.
    pub poll_timeout: Duration,
    /// Handler failure policy. Default [`HandlerErrorPolicy::Stop`].
    pub on_handler_error: HandlerErrorPolicy,
}

impl Default for ConsumeOptions {
    fn default() -> Self {
        Self {
            batch_size: DEFAULT_FETCH_SIZE,
            poll_timeout: Duration::from_millis(500),
            on_handler_error: HandlerErrorPolicy::Stop,
        }
    }
}

/// Why [`SimpleConnector::consume`] stopped.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConsumeError<E> {
    /// Talking to the server failed; the connection is closed (see
    /// [`ClientError`]). The batch being handled, if any, was not acked.
    #[error(transparent)]
    Client(#[from] ClientError),
    /// [`ClusterConnector::consume`](crate::ClusterConnector::consume) gave
    /// up: a non-retryable failure, or retryable ones past
    /// [`ClusterOptions::consume_deadline`](crate::ClusterOptions::consume_deadline).
    /// The batch being handled, if any, was not acked.
    #[error(transparent)]
    Cluster(#[from] crate::error::ClusterError),
    /// The handler failed and the policy gave up. The batch was rolled back
    /// (if the connection still allowed it) and not acked.
    #[error("handler failed on batch {batch_id} ({attempts} attempt(s) in a row)")]
    Handler {
        /// The batch id of the last failed delivery.
        batch_id: i64,
        /// Consecutive failed deliveries.
        attempts: u32,
        /// The handler's last error.
        #[source]
        source: E,
    },
}

impl SimpleConnector {
    /// Fetches batches and passes each non-empty one to `handler`, acking it
    /// only after the handler returned `Ok`.
    ///
    /// * Empty batches (id −1) are not passed on; polling just continues.
    /// * On handler `Err`, sends `rollback(0)` and follows
    ///   [`ConsumeOptions::on_handler_error`].
    /// * Returns `Ok(())` when `shutdown` is cancelled; it is checked before
    ///   each GET and during retry pauses, never while the handler runs. The
    ///   connection stays open; call [`SimpleConnector::disconnect`] next.
    /// * Any [`ClientError`] ends the loop with the connection closed; the
    ///   un-acked batch is redelivered after the next `connect()` (which
    ///   rolls back).
    ///
    /// Requires a connected, subscribed connector. A failed ack is only
    /// reported by the server in reply to the next GET, so it surfaces as a
    /// [`ClientError::Server`] one iteration later.
    pub async fn consume<F, Fut, E>(
        &mut self,
        options: &ConsumeOptions,
        shutdown: &CancellationToken,
        mut handler: F,
    ) -> Result<(), ConsumeError<E>>
    where
        F: FnMut(Message) -> Fut,
        Fut: Future<Output = Result<(), E>>,
        E: std::fmt::Display,
    {
        let mut failures = 0u32;
        loop {
            if shutdown.is_cancelled() {
                return Ok(());
            }
            let message = self
                .get_without_ack(options.batch_size, Some(options.poll_timeout))
                .await?;
            if message.is_empty() {
                if options.poll_timeout.is_zero() {
                    pause(EMPTY_POLL_PAUSE, shutdown).await;
                }
                continue;
            }
            let batch_id = message.id;
            if message.entries.is_empty() {
                // A real batch id with nothing in it: nothing to hand over,
                // but the server still expects the ack.
                self.ack(batch_id).await?;
                continue;
            }
            match handler(message).await {
                Ok(()) => {
                    failures = 0;
                    self.ack(batch_id).await?;
                }
                Err(source) => {
                    failures += 1;
                    tracing::warn!(
                        destination = %self.destination(),
                        batch_id,
                        attempts = failures,
                        error = %source,
                        "canal handler failed; rolling back"
                    );
                    let rolled_back = self.rollback(0).await;
                    let give_up = match options.on_handler_error {
                        HandlerErrorPolicy::Stop => true,
                        HandlerErrorPolicy::Retry { max_retries, .. } => failures > max_retries,
                    };
                    if give_up {
                        return Err(ConsumeError::Handler {
                            batch_id,
                            attempts: failures,
                            source,
                        });
                    }
                    rolled_back?;
                    if let HandlerErrorPolicy::Retry { backoff, .. } = options.on_handler_error {
                        pause(backoff, shutdown).await;
                    }
                }
            }
        }
    }

    /// Turns the connector into a stream of non-empty batches with automatic
    /// ack: a batch is acked when the next item is requested, i.e. once the
    /// consumer is done with it.
    ///
    /// * Empty batches are skipped (polling continues, pausing
    ///   [`EMPTY_POLL_PAUSE`] between non-waiting polls).
    /// * Dropping the stream leaves the last batch un-acked; the connection
    ///   is dropped with it, and the next `connect()` rolls the batch back
    ///   for redelivery.
    /// * The stream ends after yielding its first error.
    ///
    /// Requires a connected, subscribed connector.
    pub fn into_stream(
        self,
        batch_size: i32,
        poll_timeout: Duration,
    ) -> BoxStream<'static, Result<Message, ClientError>> {
        futures::stream::unfold(Some((self, None::<i64>)), move |state| async move {
            let (mut conn, pending) = state?;
            if let Some(id) = pending {
                if let Err(err) = conn.ack(id).await {
                    return Some((Err(err), None));
                }
            }
            loop {
                match conn.get_without_ack(batch_size, Some(poll_timeout)).await {
                    Ok(message) if message.is_empty() => {
                        if poll_timeout.is_zero() {
                            tokio::time::sleep(EMPTY_POLL_PAUSE).await;
                        }
                    }
                    Ok(message) if message.entries.is_empty() => {
                        if let Err(err) = conn.ack(message.id).await {
                            return Some((Err(err), None));
                        }
                    }
                    Ok(message) => {
                        let id = message.id;
                        return Some((Ok(message), Some((conn, Some(id)))));
                    }
                    Err(err) => return Some((Err(err), None)),
                }
            }
        })
        .boxed()
    }
}

/// Sleeps `duration` or until `shutdown` is cancelled.
pub(crate) async fn pause(duration: Duration, shutdown: &CancellationToken) {
    tokio::select! {
        () = tokio::time::sleep(duration) => {}
        () = shutdown.cancelled() => {}
    }
}
