//! Metric history: every `sample_secs` the manager reads each pipeline's delay (from ZooKeeper)
//! and each live node's `otter_load_rows_total` (from its `/metrics`), and keeps the samples in
//! a bounded in-memory ring (24 h at 10 s by default: 8,640 samples, a few MB at most). Nothing
//! is written to disk: a restarted manager starts an empty history.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Mutex;
use std::time::Duration;

use serde::Serialize;

/// How long one node's `/metrics` may take.
const SCRAPE_TIMEOUT: Duration = Duration::from_secs(3);

/// One sampling round.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Sample {
    /// When, ms since the epoch.
    pub at_ms: i64,
    /// Pipeline id → last measured delay, seconds (pipelines without a measure are absent).
    pub delay_s: BTreeMap<u32, f64>,
    /// Node id → rows loaded per second since the previous sample (absent for the first sample
    /// of a node, or when its `/metrics` could not be read).
    pub node_rows_per_s: BTreeMap<u32, f64>,
}

/// The bounded ring.
pub struct History {
    cap: usize,
    samples: Mutex<VecDeque<Sample>>,
}

impl History {
    /// A ring keeping at most `cap` samples.
    pub fn new(cap: usize) -> Self {
        Self {
            cap: cap.max(1),
            samples: Mutex::new(VecDeque::new()),
        }
    }

    /// Appends, dropping the oldest beyond the capacity.
    pub fn push(&self, s: Sample) {
        let mut g = self.samples.lock().unwrap_or_else(|p| p.into_inner());
        while g.len() >= self.cap {
            g.pop_front();
        }
        g.push_back(s);
    }

    /// Samples at or after `since_ms`, oldest first.
    pub fn since(&self, since_ms: i64) -> Vec<Sample> {
        let g = self.samples.lock().unwrap_or_else(|p| p.into_inner());
        g.iter().filter(|s| s.at_ms >= since_ms).cloned().collect()
    }

    /// How many samples are kept.
    pub fn len(&self) -> usize {
        self.samples.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// Whether nothing was sampled yet.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The sum of every `otter_load_rows_total` series in a Prometheus text exposition.
pub fn rows_total(text: &str) -> Option<f64> {
    let mut found = None;
    for line in text.lines() {
        let Some(rest) = line.strip_prefix("otter_load_rows_total") else {
            continue;
        };
        if !(rest.starts_with(' ') || rest.starts_with('{')) {
            continue;
        }
        if let Some(v) = rest.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok()) {
            *found.get_or_insert(0.0) += v;
        }
    }
    found
}

async fn scrape(http: &reqwest::Client, address: &str) -> Option<f64> {
    let r = http
        .get(format!("http://{address}/metrics"))
        .timeout(SCRAPE_TIMEOUT)
        .send()
        .await
        .ok()?;
    rows_total(&r.text().await.ok()?)
}

/// Samples until the process ends.
pub async fn run(state: super::State, every: Duration) {
    let http = reqwest::Client::new();
    // Node id → (ms, rows_total) of the previous scrape.
    let mut last: BTreeMap<u32, (i64, f64)> = BTreeMap::new();
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let now = otter_node::pipeline::heartbeat::now_ms();
        let mut sample = Sample {
            at_ms: now,
            ..Sample::default()
        };
        match crate::list(&state.zk).await {
            Ok(channels) => {
                for c in &channels {
                    match crate::delays(&state.zk, c).await {
                        Ok(ds) => {
                            for (pid, d) in ds {
                                if let Some(d) = d {
                                    sample.delay_s.insert(pid, d.delay_ms as f64 / 1000.0);
                                }
                            }
                        }
                        Err(e) => {
                            tracing::warn!(channel = c.id, error = %e, "cannot sample delays")
                        }
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "cannot list channels to sample"),
        }
        match crate::nodes(&state.zk).await {
            Ok(nodes) => {
                let mut seen = BTreeMap::new();
                for (nid, address) in nodes {
                    let Some(total) = scrape(&http, &address).await else {
                        tracing::debug!(node = nid, %address, "no otter_load_rows_total");
                        continue;
                    };
                    if let Some((t0, v0)) = last.get(&nid) {
                        let secs = (now - t0) as f64 / 1000.0;
                        // A restarted node starts from zero again: no negative rate.
                        if secs > 0.0 && total >= *v0 {
                            sample.node_rows_per_s.insert(nid, (total - v0) / secs);
                        }
                    }
                    seen.insert(nid, (now, total));
                }
                last = seen;
            }
            Err(e) => tracing::warn!(error = %e, "cannot list nodes to sample"),
        }
        state.alarms.evaluate(&state.zk, &sample).await;
        state.history.push(sample);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ring_keeps_the_newest() {
        let h = History::new(3);
        for i in 0..5 {
            h.push(Sample {
                at_ms: i,
                ..Sample::default()
            });
        }
        assert_eq!(h.len(), 3);
        let at: Vec<i64> = h.since(3).iter().map(|s| s.at_ms).collect();
        assert_eq!(at, vec![3, 4]);
    }

    #[test]
    fn rows_total_sums_every_series_and_ignores_lookalikes() {
        let text = "# TYPE otter_load_rows_total counter\notter_load_rows_total 120\notter_load_rows_total{pipeline=\"2\"} 30\notter_load_rows_total_other 9\n";
        assert_eq!(rows_total(text), Some(150.0));
        assert_eq!(rows_total("up 1\n"), None);
    }
}
