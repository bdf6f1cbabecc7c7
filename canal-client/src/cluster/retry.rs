//! Capped exponential backoff and per-call retry bookkeeping.

use std::time::Duration;

use tokio::time::Instant;

use crate::error::Op;

/// Delays that double from `initial` up to `max`.
#[derive(Debug, Clone)]
pub(crate) struct Backoff {
    initial: Duration,
    max: Duration,
    next: Duration,
}

impl Backoff {
    pub fn new(initial: Duration, max: Duration) -> Self {
        let initial = initial.min(max);
        Self {
            initial,
            max,
            next: initial,
        }
    }

    /// The delay to wait now; the next one doubles (up to the cap).
    pub fn next_delay(&mut self) -> Duration {
        let delay = self.next;
        self.next = self.next.saturating_mul(2).min(self.max);
        delay
    }

    /// Back to the initial delay.
    pub fn reset(&mut self) {
        self.next = self.initial;
    }
}

/// One operation's retries: a failure streak with a deadline counted from
/// its start.
#[derive(Debug)]
pub(crate) struct Retry {
    pub op: Op,
    limit: Option<Duration>,
    since: Instant,
    pub backoff: Backoff,
    pub attempts: u32,
}

impl Retry {
    pub fn new(op: Op, limit: Option<Duration>, backoff: Backoff) -> Self {
        Self {
            op,
            limit,
            since: Instant::now(),
            backoff,
            attempts: 0,
        }
    }

    /// A success: the next failure starts a new streak (and deadline).
    pub fn reset(&mut self) {
        self.since = Instant::now();
        self.attempts = 0;
        self.backoff.reset();
    }

    /// When this streak gives up; `None` retries forever.
    pub fn deadline(&self) -> Option<Instant> {
        self.limit.map(|limit| self.since + limit)
    }

    /// Time since the streak started.
    pub fn elapsed(&self) -> Duration {
        self.since.elapsed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_up_to_the_cap_and_resets() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_secs(5));
        let delays: Vec<u64> = (0..9).map(|_| b.next_delay().as_millis() as u64).collect();
        assert_eq!(delays, [100, 200, 400, 800, 1600, 3200, 5000, 5000, 5000]);
        b.reset();
        assert_eq!(b.next_delay(), Duration::from_millis(100));
        let mut tiny = Backoff::new(Duration::from_secs(9), Duration::from_secs(1));
        assert_eq!(
            tiny.next_delay(),
            Duration::from_secs(1),
            "initial is capped too"
        );
    }

    #[tokio::test]
    async fn deadline_counts_from_the_streak_start() {
        let backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(5));
        let mut retry = Retry::new(Op::Get, Some(Duration::from_secs(2)), backoff);
        let first = retry.deadline().unwrap();
        tokio::time::sleep(Duration::from_millis(30)).await;
        retry.reset();
        assert!(retry.deadline().unwrap() - first >= Duration::from_millis(30));
        assert!(Retry::new(Op::Get, None, retry.backoff.clone())
            .deadline()
            .is_none());
    }
}
