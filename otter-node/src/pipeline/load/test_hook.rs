//! Test-only: `OTTER_TEST_PAUSE_BEFORE_LOAD_MS`, off unless set to a number of milliseconds.
//!
//! When set, the first batch the Load worker claims pauses that long after it was pulled and
//! checked, just before its transactions, and that one load runs without the lock watch: the
//! node behaves like one that stalled (GC pause, SIGSTOP, a frozen VM) right after its last look
//! at its lock, the window that polling the lock cannot close. The integration tests pause the
//! process there past its session expiry to show that the fencing token, not the poll, keeps the
//! stale commit out. Nothing else reads it; a warning at start says it is set.

use std::time::Duration;

/// The variable's name.
pub(crate) const PAUSE_BEFORE_LOAD: &str = "OTTER_TEST_PAUSE_BEFORE_LOAD_MS";

/// The pause to make once, from the environment (`None` when unset, zero or not a number).
pub(crate) fn pause_before_load() -> Option<Duration> {
    let ms = std::env::var(PAUSE_BEFORE_LOAD)
        .ok()?
        .trim()
        .parse::<u64>()
        .ok()?;
    (ms > 0).then(|| Duration::from_millis(ms))
}
