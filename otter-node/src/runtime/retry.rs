//! Restarting a stage worker after a failure: a capped exponential backoff for passing failures,
//! a long recheck delay for those an operator has to fix; every restart is logged with its
//! pipeline and stage and counted (`otter_retries_total{pipeline,stage}`, and the waits in
//! `otter_retry_backoff_seconds{pipeline,stage}`).

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tracing::{error, warn};

use crate::runtime::error::RuntimeError;

/// First wait after a retryable failure.
pub const BACKOFF_MIN: Duration = Duration::from_millis(100);
/// Longest wait between two attempts after retryable failures.
pub const BACKOFF_MAX: Duration = Duration::from_secs(10);
/// Wait after a failure that is not retryable (the definition or the target has to change).
pub const RECHECK: Duration = Duration::from_secs(30);

/// A doubling wait from `min` to `max` (by default [`BACKOFF_MIN`] to [`BACKOFF_MAX`]).
#[derive(Debug, Clone)]
pub struct Backoff {
    min: Duration,
    max: Duration,
    next: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Self::new(BACKOFF_MIN, BACKOFF_MAX)
    }
}

impl Backoff {
    /// Waits from `min`, doubling up to `max`.
    pub fn new(min: Duration, max: Duration) -> Self {
        Self {
            min,
            max,
            next: min,
        }
    }

    /// The wait to use now; the next one is twice as long, at most `max`.
    pub fn next_wait(&mut self) -> Duration {
        let wait = self.next;
        self.next = (self.next * 2).min(self.max);
        wait
    }

    /// Starts again from `min`.
    pub fn reset(&mut self) {
        self.next = self.min;
    }
}

/// Which worker retries: the labels of its logs and metrics.
#[derive(Debug, Clone, Copy)]
pub struct Task {
    /// The pipeline id.
    pub pipeline: u32,
    /// `select`, `extract`, `transform` or `load`.
    pub stage: &'static str,
}

/// Marked by an attempt each time it completes a unit of work (a batch): a failure after progress
/// starts the backoff again from its minimum. Cheap to clone (shared).
#[derive(Debug, Clone, Default)]
pub struct Progress(Arc<AtomicBool>);

impl Progress {
    /// Notes that the attempt did some work.
    pub fn made(&self) {
        self.0.store(true, Ordering::Relaxed);
    }

    fn take(&self) -> bool {
        self.0.swap(false, Ordering::Relaxed)
    }
}

/// Runs `attempt` until it ends cleanly (it returns `Ok` when `stop` was cancelled). After a
/// failure it starts again: after the [`Backoff`]'s wait when the error is retryable (reset once
/// an attempt made [`Progress`]), after [`RECHECK`] when it is not.
pub async fn retry_until_stopped<F, Fut>(task: Task, stop: &CancellationToken, mut attempt: F)
where
    F: FnMut(Progress) -> Fut,
    Fut: Future<Output = Result<(), RuntimeError>>,
{
    let pipeline = task.pipeline.to_string();
    let retries = metrics::counter!(
        "otter_retries_total",
        "pipeline" => pipeline.clone(),
        "stage" => task.stage
    );
    let waits = metrics::histogram!(
        "otter_retry_backoff_seconds",
        "pipeline" => pipeline,
        "stage" => task.stage
    );
    let mut backoff = Backoff::default();
    let progress = Progress::default();
    loop {
        let Err(e) = attempt(progress.clone()).await else {
            break;
        };
        if progress.take() {
            backoff.reset();
        }
        let wait = if e.is_retryable() {
            let wait = backoff.next_wait();
            warn!(
                pipeline = task.pipeline,
                stage = task.stage,
                error = %e,
                wait_ms = wait.as_millis() as u64,
                "{} interrupted; retrying",
                task.stage
            );
            wait
        } else {
            error!(
                pipeline = task.pipeline,
                stage = task.stage,
                error = %e,
                wait_s = RECHECK.as_secs(),
                "{} cannot run until the definition or the target is fixed; checking again",
                task.stage
            );
            RECHECK
        };
        retries.increment(1);
        waits.record(wait.as_secs_f64());
        if pause(stop, wait).await {
            break;
        }
    }
}

/// Sleeps `d`; true when `stop` was cancelled first.
pub async fn pause(stop: &CancellationToken, d: Duration) -> bool {
    tokio::select! {
        _ = stop.cancelled() => true,
        _ = tokio::time::sleep(d) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_to_the_cap_and_resets() {
        let mut b = Backoff::default();
        let waits: Vec<u64> = (0..9).map(|_| b.next_wait().as_millis() as u64).collect();
        assert_eq!(
            waits,
            [100, 200, 400, 800, 1600, 3200, 6400, 10_000, 10_000]
        );
        b.reset();
        assert_eq!(b.next_wait(), BACKOFF_MIN);
    }
}
