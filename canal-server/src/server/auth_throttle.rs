//! Slows password guessing: each failed Canal authentication from an address makes the next
//! attempts from that address wait longer (100 ms doubling up to 10 s, forgotten 10 minutes after
//! the last failure or at once on a success), and attempts from an address with failures run one
//! at a time, so opening many connections does not multiply the rate. Failures are logged at the
//! 1st, 2nd, 4th, 8th… one per address, so a flood cannot fill the log.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Failures are forgotten this long after the last one.
const FORGET_AFTER: Duration = Duration::from_secs(600);
/// Most addresses remembered; beyond it the stalest are forgotten.
const MAX_ADDRESSES: usize = 10_000;
const FIRST_DELAY: Duration = Duration::from_millis(100);
const MAX_DELAY: Duration = Duration::from_secs(10);

#[derive(Debug)]
struct Record {
    failures: u32,
    last: Instant,
    /// Serializes attempts from this address while it has failures.
    turn: Arc<tokio::sync::Mutex<()>>,
}

/// Per-address failure records.
#[derive(Debug, Default)]
pub struct AuthThrottle {
    records: Mutex<HashMap<IpAddr, Record>>,
}

/// An attempt's turn: held while the attempt is checked, so attempts from one address with
/// failures do not overlap.
pub struct Turn {
    _guard: Option<tokio::sync::OwnedMutexGuard<()>>,
}

impl AuthThrottle {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<IpAddr, Record>> {
        self.records.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Waits for this address's turn and its delay; an address without recent failures goes at
    /// once.
    pub async fn wait_turn(&self, ip: IpAddr) -> Turn {
        let (turn, delay) = {
            let mut records = self.lock();
            match records.get(&ip) {
                Some(r) if r.last.elapsed() < FORGET_AFTER => (r.turn.clone(), delay(r.failures)),
                Some(_) => {
                    records.remove(&ip);
                    return Turn { _guard: None };
                }
                None => return Turn { _guard: None },
            }
        };
        let guard = turn.lock_owned().await;
        tokio::time::sleep(delay).await;
        Turn {
            _guard: Some(guard),
        }
    }

    /// Records a failure; returns the address's failure count and whether to log this one.
    pub fn failed(&self, ip: IpAddr) -> (u32, bool) {
        let mut records = self.lock();
        if records.len() >= MAX_ADDRESSES && !records.contains_key(&ip) {
            records.retain(|_, r| r.last.elapsed() < FORGET_AFTER);
            if records.len() >= MAX_ADDRESSES {
                if let Some(stalest) = records.iter().min_by_key(|(_, r)| r.last).map(|(k, _)| *k) {
                    records.remove(&stalest);
                }
            }
        }
        let r = records.entry(ip).or_insert_with(|| Record {
            failures: 0,
            last: Instant::now(),
            turn: Arc::new(tokio::sync::Mutex::new(())),
        });
        r.failures = r.failures.saturating_add(1);
        r.last = Instant::now();
        (r.failures, r.failures.is_power_of_two())
    }

    /// Forgets the address's failures (a successful authentication).
    pub fn succeeded(&self, ip: IpAddr) {
        self.lock().remove(&ip);
    }

    /// The delay the next attempt from `ip` waits.
    pub fn next_delay(&self, ip: IpAddr) -> Duration {
        self.lock()
            .get(&ip)
            .map(|r| delay(r.failures))
            .unwrap_or(Duration::ZERO)
    }
}

fn delay(failures: u32) -> Duration {
    if failures == 0 {
        return Duration::ZERO;
    }
    FIRST_DELAY
        .saturating_mul(1u32 << (failures - 1).min(16))
        .min(MAX_DELAY)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delay_doubles_up_to_the_cap() {
        assert_eq!(delay(0), Duration::ZERO);
        assert_eq!(delay(1), Duration::from_millis(100));
        assert_eq!(delay(2), Duration::from_millis(200));
        assert_eq!(delay(4), Duration::from_millis(800));
        assert_eq!(delay(30), MAX_DELAY);
    }

    #[test]
    fn failures_are_counted_per_address_and_logged_sparsely() {
        let t = AuthThrottle::default();
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        let logged: Vec<bool> = (0..5).map(|_| t.failed(a).1).collect();
        assert_eq!(logged, vec![true, true, false, true, false]);
        assert_eq!(t.next_delay(a), Duration::from_millis(1600));
        assert_eq!(t.next_delay(b), Duration::ZERO);
        t.succeeded(a);
        assert_eq!(t.next_delay(a), Duration::ZERO);
    }
}
