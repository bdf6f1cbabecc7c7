//! Metric history: every `sample_secs` the manager reads from ZooKeeper each pipeline's delay,
//! its oldest batch in flight and the source position its Select acknowledged, and from each
//! live node's `/metrics` its counters per pipeline (rows loaded, stage failures, conflicts:
//! [`super::metrics`]), and keeps the samples in a bounded in-memory ring (24 h at 10 s by
//! default: 8,640 samples, a few MB at most). With `[console] data_dir` the samples are also
//! written to `history.jsonl` there and read back at start ([`super::store`]); without it a
//! restarted manager starts an empty history.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Mutex;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::metrics::{self, NodeCounters};

/// How long one node's `/metrics` may take.
const SCRAPE_TIMEOUT: Duration = Duration::from_secs(3);

/// One sampling round.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Sample {
    /// When, ms since the epoch.
    pub at_ms: i64,
    /// Pipeline id → delay, seconds: how old the newest heartbeat loaded at the target is (see
    /// [`current_delay_s`]; pipelines without a measure are absent).
    pub delay_s: BTreeMap<u32, f64>,
    /// Node id → rows loaded per second since the previous sample (absent for the first sample
    /// of a node, or when its `/metrics` could not be read).
    pub node_rows_per_s: BTreeMap<u32, f64>,
    /// Pipeline id → rows loaded per second since the previous sample, summed over the nodes
    /// that load it.
    pub pipeline_rows_per_s: BTreeMap<u32, f64>,
    /// Pipeline id → stage workers restarted after a failure since the previous sample
    /// (`otter_retries_total`): a stage exception.
    pub pipeline_failures: BTreeMap<u32, f64>,
    /// Pipeline id → conflicts per minute since the previous sample (`otter_conflicts_total`).
    pub pipeline_conflicts_per_min: BTreeMap<u32, f64>,
    /// Pipeline id → how long the oldest batch of the window has been the oldest, seconds
    /// (absent when the window is empty or the channel is stopped).
    pub process_age_s: BTreeMap<u32, f64>,
    /// Pipeline id → the source position its Select acknowledged (`file:offset`), read from the
    /// embedded destination's cursor in ZooKeeper (absent before the first ack).
    pub position: BTreeMap<u32, String>,
    /// Pipeline id → how long that position has not moved, seconds (absent when the channel is
    /// stopped or there is no cursor yet).
    pub position_age_s: BTreeMap<u32, f64>,
}

/// A pipeline's delay now, seconds. The nodes write a measure whenever a heartbeat reaches the
/// target (about every second); a pipeline that stopped loading (its target down, say) writes
/// none, so the measure alone would stay small forever. What is known at `now_ms` is that the
/// newest loaded heartbeat left the source `delay_ms` before `at_ms`: the delay is at least its
/// age. A stopped channel keeps its last measure (nobody expects it to load).
pub fn current_delay_s(
    d: &otter_node::pipeline::heartbeat::Delay,
    now_ms: i64,
    running: bool,
) -> f64 {
    let behind = if running {
        d.delay_ms + (now_ms - d.at_ms).max(0)
    } else {
        d.delay_ms
    };
    behind.max(0) as f64 / 1000.0
}

/// The bounded ring.
pub struct History {
    cap: usize,
    samples: Mutex<VecDeque<Sample>>,
    store: Option<super::store::Jsonl>,
}

impl History {
    /// A ring keeping at most `cap` samples, starting with those `store` kept, if any.
    pub fn new(cap: usize, store: Option<super::store::Jsonl>) -> Self {
        let kept: VecDeque<Sample> = store
            .as_ref()
            .map(|s| s.load().into_iter().collect())
            .unwrap_or_default();
        Self {
            cap: cap.max(1),
            samples: Mutex::new(kept),
            store,
        }
    }

    /// Appends, dropping the oldest beyond the capacity (and writes it to the store, if any).
    pub fn push(&self, s: Sample) {
        if let Some(store) = &self.store {
            store.append(&s);
        }
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

async fn scrape(http: &reqwest::Client, address: &str) -> Option<NodeCounters> {
    let r = http
        .get(format!("http://{address}/metrics"))
        .timeout(SCRAPE_TIMEOUT)
        .send()
        .await
        .ok()?;
    NodeCounters::parse(&r.text().await.ok()?)
}

/// The oldest process of pipeline (`cid`, `pid`)'s window, if any.
async fn oldest_process(zk: &zookeeper_client::Client, cid: u32, pid: u32) -> Option<String> {
    let path = zk_coord::otter_paths::processes(cid, pid);
    match zk.list_children(&path).await {
        Ok(names) => names.into_iter().min(),
        Err(zk_coord::ZkError::NoNode) => None,
        Err(e) => {
            tracing::warn!(%path, error = %e, "cannot list the process window");
            None
        }
    }
}

/// The source position pipeline `pid`'s Select acknowledged, as `file:offset`, if it has a
/// cursor.
async fn acked_position(zk: &zookeeper_client::Client, pid: u32) -> Option<String> {
    let dest = otter_node::pipeline::select::destination_name(pid);
    let path = zk_coord::paths::cursor(&dest, pid as i16);
    let data = match zk.get_data(&path).await {
        Ok((data, _)) => data,
        Err(zk_coord::ZkError::NoNode) => return None,
        Err(e) => {
            tracing::warn!(%path, error = %e, "cannot read the pipeline's cursor");
            return None;
        }
    };
    let text = String::from_utf8_lossy(&data);
    match canal_protocol::position::LogPosition::from_cursor_json(&text) {
        Ok(p) => Some(format!(
            "{}:{}",
            p.position.journal_name.unwrap_or_default(),
            p.position.position.unwrap_or_default()
        )),
        Err(e) => {
            tracing::warn!(%path, error = %e, "the pipeline's cursor does not parse");
            None
        }
    }
}

/// How long `now`'s value of a watched thing has been the same, updating `seen` (key → (value,
/// since when)); `None` forgets the key.
fn unchanged_for<K: Ord + Copy>(
    seen: &mut BTreeMap<K, (String, i64)>,
    key: K,
    value: Option<String>,
    now: i64,
) -> Option<f64> {
    let Some(value) = value else {
        seen.remove(&key);
        return None;
    };
    let since = match seen.get(&key) {
        Some((v, since)) if *v == value => *since,
        _ => now,
    };
    seen.insert(key, (value, since));
    Some((now - since) as f64 / 1000.0)
}

/// Samples until the process ends.
pub async fn run(state: super::State, every: Duration) {
    let http = reqwest::Client::new();
    // Node id → (ms, counters) of the previous scrape.
    let mut last: BTreeMap<u32, (i64, NodeCounters)> = BTreeMap::new();
    // Pipeline id → (oldest process, since when it is the oldest).
    let mut oldest: BTreeMap<u32, (String, i64)> = BTreeMap::new();
    // Pipeline id → (acked position, since when it is that).
    let mut positions: BTreeMap<u32, (String, i64)> = BTreeMap::new();
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
                            let running = c.status != otter_node::model::ChannelStatus::Stopped;
                            for (pid, d) in ds {
                                if let Some(d) = d {
                                    sample
                                        .delay_s
                                        .insert(pid, current_delay_s(&d, now, running));
                                }
                                let head = if running {
                                    oldest_process(&state.zk, c.id, pid).await
                                } else {
                                    None
                                };
                                if let Some(age) = unchanged_for(&mut oldest, pid, head, now) {
                                    sample.process_age_s.insert(pid, age);
                                }
                                let position = if running {
                                    acked_position(&state.zk, pid).await
                                } else {
                                    None
                                };
                                if let Some(p) = &position {
                                    sample.position.insert(pid, p.clone());
                                }
                                if let Some(age) = unchanged_for(&mut positions, pid, position, now)
                                {
                                    sample.position_age_s.insert(pid, age);
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
                    let Some(counters) = scrape(&http, &address).await else {
                        tracing::debug!(node = nid, %address, "no otter-node counters");
                        continue;
                    };
                    if let Some((t0, before)) = last.get(&nid) {
                        let secs = (now - t0) as f64 / 1000.0;
                        if secs > 0.0 {
                            let rows = metrics::growth(&counters.rows, &before.rows);
                            sample
                                .node_rows_per_s
                                .insert(nid, rows.values().sum::<f64>() / secs);
                            metrics::add_scaled(&mut sample.pipeline_rows_per_s, &rows, 1.0 / secs);
                            metrics::add_scaled(
                                &mut sample.pipeline_failures,
                                &metrics::growth(&counters.failures, &before.failures),
                                1.0,
                            );
                            metrics::add_scaled(
                                &mut sample.pipeline_conflicts_per_min,
                                &metrics::growth(&counters.conflicts, &before.conflicts),
                                60.0 / secs,
                            );
                        }
                    }
                    seen.insert(nid, (now, counters));
                }
                last = seen;
            }
            Err(e) => tracing::warn!(error = %e, "cannot list nodes to sample"),
        }
        for (alarm, pid) in state.alarms.evaluate(&state.zk, &sample).await {
            tokio::spawn(super::alarms::recover(state.clone(), alarm, pid));
        }
        state.history.push(sample);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ring_keeps_the_newest() {
        let h = History::new(3, None);
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
    fn a_pipeline_that_stopped_loading_grows_its_delay_unless_stopped() {
        let d = otter_node::pipeline::heartbeat::Delay {
            delay_ms: 400,
            at_ms: 10_000,
        };
        assert_eq!(current_delay_s(&d, 10_000, true), 0.4);
        assert_eq!(current_delay_s(&d, 70_000, true), 60.4);
        assert_eq!(current_delay_s(&d, 70_000, false), 0.4);
    }
}
