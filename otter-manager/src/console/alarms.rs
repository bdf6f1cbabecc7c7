//! Alarm rules, evaluated after every history sample. A rule fires when its condition has held for
//! `for_secs`, resolves when it no longer holds, and POSTs JSON to its webhook once per state
//! change (retried with back-off by one sender task; the queue is bounded). After firing, a rule
//! with `pause_secs` is not evaluated again for that long (Otter's `pauseTime`); a pipeline rule
//! with `auto_recovery` restarts the pipeline's channel when it fires (Otter's `autoRecovery`:
//! [`recover`]).

use std::sync::Mutex;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use super::history::Sample;

/// Webhook deliveries waiting; beyond this a change is dropped with a warning.
const QUEUE: usize = 256;
/// Attempts per delivery.
const ATTEMPTS: u32 = 6;

/// What a rule watches.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Condition {
    /// A pipeline's measured delay above `above_secs`.
    Delay {
        /// The pipeline.
        pipeline: u32,
        /// Threshold, seconds.
        above_secs: f64,
    },
    /// A stage worker of the pipeline failed and was restarted since the previous sample (the
    /// nodes' `otter_retries_total{pipeline,stage}` grew): Otter's stage exception.
    StageException {
        /// The pipeline.
        pipeline: u32,
    },
    /// The pipeline's oldest batch in flight has been the oldest for more than `above_secs`:
    /// the process window, and the position with it, is not advancing.
    ProcessStuck {
        /// The pipeline.
        pipeline: u32,
        /// Threshold, seconds.
        above_secs: f64,
    },
    /// The pipeline's source position (the binlog position its Select has acknowledged, the
    /// cursor in ZooKeeper) has not moved for more than `above_secs` while the channel is
    /// started: Otter's position timeout. An idle source still moves it (the pipeline's own
    /// heartbeats are in the binlog), so an unmoving position means nothing completes.
    PositionStuck {
        /// The pipeline.
        pipeline: u32,
        /// Threshold, seconds.
        above_secs: f64,
    },
    /// More than `above_per_min` conflicts per minute at the pipeline's target
    /// (`otter_conflicts_total`).
    Conflicts {
        /// The pipeline.
        pipeline: u32,
        /// Threshold, conflicts per minute.
        above_per_min: f64,
    },
    /// An otter-node not registered (its ephemeral `/otter/node/{nid}` is gone).
    NodeDown {
        /// The node id.
        node: u32,
    },
    /// A Canal destination without a running server.
    DestinationNotRunning {
        /// The destination.
        destination: String,
    },
}

/// One `[[console.alarms]]` rule. (Unknown keys are not refused here: serde cannot with the
/// flattened condition.)
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Rule {
    /// Shown in the console and sent in the webhook.
    pub name: String,
    /// What it watches.
    #[serde(flatten)]
    pub condition: Condition,
    /// How long the condition must hold before the rule fires.
    #[serde(default)]
    pub for_secs: u64,
    /// After firing, not evaluated for this long.
    #[serde(default)]
    pub pause_secs: u64,
    /// Where state changes are POSTed (JSON); none: shown in the console only.
    #[serde(default)]
    pub webhook: Option<String>,
    /// When the rule fires, restart the channel of its pipeline (stop, wait for its Select to
    /// let go, start), if it is started. Only for rules that name a pipeline.
    #[serde(default)]
    pub auto_recovery: bool,
}

impl Condition {
    /// The pipeline a rule watches, if it watches one.
    pub fn pipeline(&self) -> Option<u32> {
        match self {
            Condition::Delay { pipeline, .. }
            | Condition::StageException { pipeline }
            | Condition::ProcessStuck { pipeline, .. }
            | Condition::PositionStuck { pipeline, .. }
            | Condition::Conflicts { pipeline, .. } => Some(*pipeline),
            Condition::NodeDown { .. } | Condition::DestinationNotRunning { .. } => None,
        }
    }
}

/// A rule's state as shown.
#[derive(Debug, Clone, Serialize)]
pub struct AlarmView {
    /// The rule's name.
    pub name: String,
    /// `ok` or `firing`.
    pub state: &'static str,
    /// When it fired, UTC.
    pub since: Option<String>,
    /// What was seen last.
    pub detail: String,
}

#[derive(Default)]
struct RuleState {
    holding_since: Option<i64>,
    firing_since: Option<i64>,
    paused_until: i64,
    detail: String,
}

/// The body POSTed to a webhook.
#[derive(Debug, Clone, Serialize)]
pub struct Notification {
    /// The rule.
    pub alarm: String,
    /// `firing` or `resolved`.
    pub state: &'static str,
    /// ms since the epoch.
    pub at_ms: i64,
    /// What was seen.
    pub detail: String,
    #[serde(skip)]
    url: String,
}

/// The rules and their states.
pub struct Alarms {
    rules: Vec<Rule>,
    states: Mutex<Vec<RuleState>>,
    queue: mpsc::Sender<Notification>,
}

impl Alarms {
    /// The rules, with the webhook sender task spawned (needs a runtime).
    pub fn start(rules: Vec<Rule>) -> Self {
        let (tx, rx) = mpsc::channel(QUEUE);
        tokio::spawn(deliver(rx));
        Self {
            states: Mutex::new(rules.iter().map(|_| RuleState::default()).collect()),
            rules,
            queue: tx,
        }
    }

    /// Every rule's state, in config order.
    pub fn views(&self) -> Vec<AlarmView> {
        let g = self.states.lock().unwrap_or_else(|p| p.into_inner());
        self.rules
            .iter()
            .zip(g.iter())
            .map(|(r, s)| AlarmView {
                name: r.name.clone(),
                state: if s.firing_since.is_some() {
                    "firing"
                } else {
                    "ok"
                },
                since: s.firing_since.map(super::actions::utc),
                detail: s.detail.clone(),
            })
            .collect()
    }

    /// Evaluates every rule against `sample` (and ZooKeeper for nodes and destinations); returns
    /// `(rule, pipeline)` of the rules with `auto_recovery` that fired: their channels are to be
    /// restarted ([`recover`]).
    pub async fn evaluate(
        &self,
        zk: &zookeeper_client::Client,
        sample: &Sample,
    ) -> Vec<(String, u32)> {
        let mut seen = Vec::with_capacity(self.rules.len());
        for r in &self.rules {
            seen.push(match &r.condition {
                Condition::Delay {
                    pipeline,
                    above_secs,
                } => match sample.delay_s.get(pipeline) {
                    Some(d) => Some((*d > *above_secs, format!("pipeline {pipeline} delay {d:.3} s"))),
                    None => Some((false, format!("pipeline {pipeline}: no delay measured"))),
                },
                Condition::StageException { pipeline } => {
                    let n = sample.pipeline_failures.get(pipeline).copied().unwrap_or(0.0);
                    Some((n > 0.0, format!("pipeline {pipeline} stage failures {n:.0}")))
                }
                Condition::ProcessStuck {
                    pipeline,
                    above_secs,
                } => match sample.process_age_s.get(pipeline) {
                    Some(age) => Some((
                        *age > *above_secs,
                        format!("pipeline {pipeline} oldest batch in flight for {age:.0} s"),
                    )),
                    None => Some((false, format!("pipeline {pipeline}: no batch in flight"))),
                },
                Condition::PositionStuck {
                    pipeline,
                    above_secs,
                } => match sample.position_age_s.get(pipeline) {
                    Some(age) => Some((
                        *age > *above_secs,
                        format!(
                            "pipeline {pipeline} source position {} unchanged for {age:.0} s",
                            sample
                                .position
                                .get(pipeline)
                                .map(String::as_str)
                                .unwrap_or("?")
                        ),
                    )),
                    None => Some((false, format!("pipeline {pipeline}: no position to watch"))),
                },
                Condition::Conflicts {
                    pipeline,
                    above_per_min,
                } => {
                    let n = sample
                        .pipeline_conflicts_per_min
                        .get(pipeline)
                        .copied()
                        .unwrap_or(0.0);
                    Some((
                        n > *above_per_min,
                        format!("pipeline {pipeline} conflicts {n:.1} per minute"),
                    ))
                }
                Condition::NodeDown { node } => {
                    match zk.check_stat(&zk_coord::otter_paths::node(*node)).await {
                        Ok(stat) => Some((
                            stat.is_none(),
                            format!(
                                "node {node} {}",
                                if stat.is_some() { "registered" } else { "not registered" }
                            ),
                        )),
                        Err(e) => {
                            tracing::warn!(node, error = %e, "cannot check the node");
                            None
                        }
                    }
                }
                Condition::DestinationNotRunning { destination } => {
                    match zk.check_stat(&zk_coord::paths::running(destination)).await {
                        Ok(stat) => Some((
                            stat.is_none(),
                            format!(
                                "destination {destination} {}",
                                if stat.is_some() { "running" } else { "has no running server" }
                            ),
                        )),
                        Err(e) => {
                            tracing::warn!(destination, error = %e, "cannot check the running node");
                            None
                        }
                    }
                }
            });
        }
        let now = sample.at_ms;
        let mut out = Vec::new();
        let mut recover = Vec::new();
        {
            let mut g = self.states.lock().unwrap_or_else(|p| p.into_inner());
            for ((r, s), seen) in self.rules.iter().zip(g.iter_mut()).zip(seen) {
                let Some((holds, detail)) = seen else {
                    continue;
                };
                if now < s.paused_until {
                    continue;
                }
                s.detail = detail.clone();
                if holds {
                    let since = *s.holding_since.get_or_insert(now);
                    if s.firing_since.is_none() && now - since >= (r.for_secs * 1000) as i64 {
                        s.firing_since = Some(now);
                        s.paused_until = now + (r.pause_secs * 1000) as i64;
                        if r.auto_recovery {
                            recover.extend(r.condition.pipeline().map(|p| (r.name.clone(), p)));
                        }
                        out.push((r, "firing", detail));
                    }
                } else {
                    s.holding_since = None;
                    if s.firing_since.take().is_some() {
                        out.push((r, "resolved", detail));
                    }
                }
            }
        }
        for (r, state, detail) in out {
            tracing::warn!(alarm = %r.name, state, %detail, "alarm state changed");
            if let Some(url) = &r.webhook {
                let n = Notification {
                    alarm: r.name.clone(),
                    state,
                    at_ms: now,
                    detail,
                    url: url.clone(),
                };
                if self.queue.try_send(n).is_err() {
                    tracing::warn!(alarm = %r.name, "webhook queue full; notification dropped");
                }
            }
        }
        recover
    }
}

/// How long [`recover`] waits for the stopped channel's Select to let go before starting it.
const RECOVER_WAIT: Duration = Duration::from_secs(30);

/// Otter's `autoRecovery`: restarts the channel holding pipeline `pid` if it is started: stop,
/// wait (at most [`RECOVER_WAIT`]) until no node holds its pipelines' mainstems, start again.
/// Audited as done by `alarm`.
pub async fn recover(state: super::State, alarm: String, pid: u32) {
    let channel = match crate::list(&state.zk).await {
        Ok(cs) => cs
            .into_iter()
            .find(|c| c.pipeline.id == pid || c.reverse.as_ref().is_some_and(|r| r.id == pid)),
        Err(e) => {
            tracing::warn!(pipeline = pid, error = %e, "auto recovery: cannot list channels");
            return;
        }
    };
    let Some(channel) = channel else {
        tracing::warn!(
            pipeline = pid,
            "auto recovery: no channel holds the pipeline"
        );
        return;
    };
    if channel.status != otter_node::model::ChannelStatus::Started {
        tracing::info!(
            channel = channel.id,
            "auto recovery: the channel is not started; left alone"
        );
        return;
    }
    let cid = channel.id;
    let result = async {
        crate::set_status(&state.zk, cid, otter_node::model::ChannelStatus::Stopped).await?;
        let mainstems: Vec<String> = std::iter::once(&channel.pipeline)
            .chain(channel.reverse.as_ref())
            .map(|p| zk_coord::otter_paths::mainstem(cid, p.id))
            .collect();
        let deadline = tokio::time::Instant::now() + RECOVER_WAIT;
        let mut released = false;
        while !released && tokio::time::Instant::now() < deadline {
            released = true;
            for m in &mainstems {
                if !matches!(state.zk.check_stat(m).await, Ok(None)) {
                    released = false;
                }
            }
            if !released {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
        crate::set_status(&state.zk, cid, otter_node::model::ChannelStatus::Started).await?;
        Ok::<_, crate::ManagerError>(if released {
            "ok".to_string()
        } else {
            format!("ok (started again after {RECOVER_WAIT:?} with Select still held)")
        })
    }
    .await;
    state.audit.record(super::actions::AuditEntry {
        at: super::actions::utc(otter_node::pipeline::heartbeat::now_ms()),
        user: format!("alarm {alarm}"),
        action: "restart".into(),
        target: format!("channel {cid}"),
        outcome: match result {
            Ok(o) => o,
            Err(e) => e.to_string(),
        },
        channel: Some(cid),
    });
}

async fn deliver(mut rx: mpsc::Receiver<Notification>) {
    let http = reqwest::Client::new();
    while let Some(n) = rx.recv().await {
        let body = serde_json::to_vec(&n).unwrap_or_default();
        let mut wait = Duration::from_millis(500);
        for attempt in 1..=ATTEMPTS {
            match http
                .post(&n.url)
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(body.clone())
                .timeout(Duration::from_secs(5))
                .send()
                .await
            {
                Ok(r) if r.status().is_success() => break,
                Ok(r) => {
                    tracing::warn!(alarm = %n.alarm, attempt, status = %r.status(), "webhook refused")
                }
                Err(e) => {
                    tracing::warn!(alarm = %n.alarm, attempt, error = %e, "webhook unreachable")
                }
            }
            if attempt < ATTEMPTS {
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(Duration::from_secs(30));
            }
        }
    }
}
