//! Consuming with automatic ack across failovers:
//! [`ClusterConnector::consume`] and [`ClusterConnector::into_stream`].

use std::future::Future;
use std::time::Duration;

use futures::stream::BoxStream;
use futures::StreamExt;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::retry::Retry;
use super::ClusterConnector;
use crate::connector::Message;
use crate::consume::{pause, ConsumeError, ConsumeOptions, HandlerErrorPolicy, EMPTY_POLL_PAUSE};
use crate::error::{ClusterError, Op};

impl ClusterConnector {
    /// Fetches batches and passes each non-empty one to `handler`, acking it
    /// after the handler returned `Ok` (at-least-once), like
    /// [`SimpleConnector::consume`](crate::SimpleConnector::consume), but
    /// across server failovers and, with client election, only while this
    /// process is the active consumer:
    ///
    /// * Retryable failures reconnect (re-resolving the running server,
    ///   re-subscribing, `rollback(0)`) and go on; un-acked batches come
    ///   again. Only a non-retryable failure, or retryable ones lasting past
    ///   [`ClusterOptions::consume_deadline`](crate::ClusterOptions::consume_deadline)
    ///   (default: never), end the loop with [`ConsumeError::Cluster`].
    /// * With client election, a standby process waits (holding no server
    ///   connection) until it becomes active. The handler is called only
    ///   while this process is active with a valid lease; a batch fetched
    ///   just before losing the role is dropped unhandled and not acked. If
    ///   the role is lost while the handler runs, its batch is not acked
    ///   either: the next active process gets it again.
    /// * An ack that cannot be written is logged; the batch comes again.
    /// * On handler `Err`, rolls back and follows
    ///   [`ConsumeOptions::on_handler_error`].
    /// * Returns `Ok(())` once `shutdown` is cancelled (checked before each
    ///   GET and during pauses and standby waits, never while the handler
    ///   runs). The connector stays started; call
    ///   [`ClusterConnector::disconnect`] next.
    ///
    /// Requires [`ClusterConnector::connect`] first; subscribe before, or
    /// rely on the server's configured filter.
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
        self.started()?;
        let mut retry = self.retry(Op::Get, self.cluster.consume_deadline);
        let mut failures = 0u32;
        loop {
            let next = self
                .next_batch(
                    options.batch_size,
                    options.poll_timeout,
                    &mut retry,
                    shutdown,
                )
                .await?;
            let Some(message) = next else {
                return Ok(());
            };
            let batch_id = message.id;
            match handler(message).await {
                Ok(()) => {
                    failures = 0;
                    match self.ack(batch_id).await {
                        Ok(()) => {}
                        Err(ClusterError::BatchRolledBack { .. }) => info!(
                            destination = %self.destination,
                            batch_id,
                            "canal cluster: handled batch could not be acked; it will be delivered again"
                        ),
                        Err(err) => return Err(err.into()),
                    }
                }
                Err(source) => {
                    failures += 1;
                    warn!(
                        destination = %self.destination,
                        batch_id,
                        attempts = failures,
                        error = %source,
                        "canal handler failed; rolling back"
                    );
                    self.rollback(0).await?;
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
                    if let HandlerErrorPolicy::Retry { backoff, .. } = options.on_handler_error {
                        pause(backoff, shutdown).await;
                    }
                }
            }
        }
    }

    /// Turns the connector into a stream of non-empty batches with
    /// automatic ack (a batch is acked when the next item is requested), as
    /// [`SimpleConnector::into_stream`](crate::SimpleConnector::into_stream)
    /// but reconnecting across failovers: errors are retried up to
    /// [`ClusterOptions::consume_deadline`](crate::ClusterOptions::consume_deadline),
    /// and with client election items are produced only while this process
    /// is active (an ack after losing the role is skipped; the batch comes
    /// again to the new active process). The stream ends after its first
    /// error. Requires [`ClusterConnector::connect`] first.
    pub fn into_stream(
        self,
        batch_size: i32,
        poll_timeout: Duration,
    ) -> BoxStream<'static, Result<Message, ClusterError>> {
        let retry = self.retry(Op::Get, self.cluster.consume_deadline);
        futures::stream::unfold(Some((self, None::<i64>, retry)), move |state| async move {
            let (mut conn, pending, mut retry) = state?;
            if let Err(err) = conn.started() {
                return Some((Err(err), None));
            }
            if let Some(id) = pending {
                match conn.ack(id).await {
                    Ok(()) | Err(ClusterError::BatchRolledBack { .. }) => {}
                    Err(err) => return Some((Err(err), None)),
                }
            }
            let never = CancellationToken::new();
            match conn
                .next_batch(batch_size, poll_timeout, &mut retry, &never)
                .await
            {
                Ok(Some(message)) => {
                    let id = message.id;
                    Some((Ok(message), Some((conn, Some(id), retry))))
                }
                Ok(None) => None,
                Err(err) => Some((Err(err), None)),
            }
        })
        .boxed()
    }

    /// The next batch with entries, fetched while this process may consume;
    /// empty batches are skipped (pausing [`EMPTY_POLL_PAUSE`] between
    /// non-waiting polls) and id-only batches acked. `Ok(None)`: cancelled.
    pub(super) async fn next_batch(
        &mut self,
        batch_size: i32,
        poll_timeout: Duration,
        retry: &mut Retry,
        cancel: &CancellationToken,
    ) -> Result<Option<Message>, ClusterError> {
        loop {
            let fetched = self
                .get_inner(batch_size, Some(poll_timeout), retry, false, cancel)
                .await?;
            let Some(message) = fetched else {
                return Ok(None);
            };
            if message.is_empty() {
                if poll_timeout.is_zero() {
                    pause(EMPTY_POLL_PAUSE, cancel).await;
                }
                continue;
            }
            if message.entries.is_empty() {
                // A real batch id with nothing in it: the server still
                // expects the ack; if it fails the batch just comes again.
                let _ = self.ack(message.id).await;
                continue;
            }
            if !self.may_consume() {
                self.drop_connection("consumer role lost before the batch was handed out");
                continue;
            }
            return Ok(Some(message));
        }
    }
}
