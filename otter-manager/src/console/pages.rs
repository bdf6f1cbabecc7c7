//! Read-only pages: overview, channel, conflicts, nodes, ZooKeeper. Each reads ZooKeeper (or the
//! targets, for conflicts) when it is viewed.

use axum::extract::{Path, Query, State as AxState};
use axum::http::StatusCode;
use axum::response::Response;
use minijinja::context;
use otter_node::model::Channel;
use serde::{Deserialize, Serialize};
use zk_coord::otter_paths;
use zk_coord::ZkError;

use super::auth::{Role, Session};
use super::State;
use crate::ManagerError;

/// What every page's layout needs.
pub(crate) fn base(session: &Session) -> minijinja::Value {
    context! {
        user => session.user,
        operator => session.role == Role::Operator,
        role => session.role,
        csrf => session.csrf,
    }
}

pub(crate) fn error_page(
    state: &State,
    session: &Session,
    status: StatusCode,
    msg: &str,
) -> Response {
    let mut r = state.render("error.html", context! { message => msg, ..base(session) });
    *r.status_mut() = status;
    r
}

fn manager_error(state: &State, session: &Session, e: ManagerError) -> Response {
    let status = match e {
        ManagerError::NoSuchChannel(_) => StatusCode::NOT_FOUND,
        _ => StatusCode::BAD_GATEWAY,
    };
    error_page(state, session, status, &e.to_string())
}

/// One pipeline as shown.
#[derive(Serialize)]
pub struct PipelineView {
    id: u32,
    source: String,
    target: String,
    /// Delay now, seconds (3 decimals; [`super::history::current_delay_s`]); `None` before the
    /// first measure.
    delay_s: Option<String>,
    /// How old that measure is, seconds.
    delay_age_s: Option<i64>,
    /// What the mainstem znode holds (the node running Select), if any.
    mainstem: Option<String>,
    /// Batches in flight, oldest first ([`super::window`]).
    processes: Vec<super::window::ProcessRow>,
    /// Termins present (rollbacks are those not `ok`).
    termins: Vec<super::window::TerminRow>,
}

/// One channel as shown.
#[derive(Serialize)]
pub struct ChannelView {
    id: u32,
    name: String,
    status: &'static str,
    two_way: bool,
    pipelines: Vec<PipelineView>,
}

async fn optional_data(
    zk: &zookeeper_client::Client,
    path: &str,
) -> Result<Option<String>, ManagerError> {
    match zk.get_data(path).await {
        Ok((d, _)) => Ok(Some(String::from_utf8_lossy(&d).trim().to_string())),
        Err(ZkError::NoNode) => Ok(None),
        Err(error) => Err(ManagerError::Zk {
            op: "get_data",
            path: path.to_string(),
            error,
        }),
    }
}

/// Reads what the console shows of `channel`; `detail` adds mainstem and process window.
pub(crate) async fn channel_view(
    zk: &zookeeper_client::Client,
    channel: &Channel,
    detail: bool,
) -> Result<ChannelView, ManagerError> {
    let now = otter_node::pipeline::heartbeat::now_ms();
    let delays = crate::delays(zk, channel).await?;
    let mut pipelines = Vec::new();
    for p in std::iter::once(&channel.pipeline).chain(channel.reverse.as_ref()) {
        let delay = delays
            .iter()
            .find(|(id, _)| *id == p.id)
            .and_then(|(_, d)| *d);
        let (mainstem, processes, termins) = if detail {
            (
                optional_data(zk, &otter_paths::mainstem(channel.id, p.id)).await?,
                super::window::processes(zk, channel.id, p.id).await?,
                super::window::termins(zk, channel.id, p.id).await?,
            )
        } else {
            (None, Vec::new(), Vec::new())
        };
        pipelines.push(PipelineView {
            id: p.id,
            source: p.source.address.clone(),
            target: p.target.address.clone(),
            delay_s: delay.map(|d| {
                let running = channel.status != otter_node::model::ChannelStatus::Stopped;
                format!("{:.3}", super::history::current_delay_s(&d, now, running))
            }),
            delay_age_s: delay.map(|d| (now - d.at_ms).max(0) / 1000),
            mainstem,
            processes,
            termins,
        });
    }
    Ok(ChannelView {
        id: channel.id,
        name: channel.name.clone(),
        status: crate::status_name(channel.status),
        two_way: channel.reverse.is_some(),
        pipelines,
    })
}

/// GET /: every channel with its status and per-pipeline delay.
pub async fn overview(
    AxState(state): AxState<State>,
    session: Session,
    Query(window): Query<Window>,
) -> Response {
    let channels = match crate::list(&state.zk).await {
        Ok(c) => c,
        Err(e) => return manager_error(&state, &session, e),
    };
    let mut views = Vec::new();
    for c in &channels {
        match channel_view(&state.zk, c, false).await {
            Ok(v) => views.push(v),
            Err(e) => return manager_error(&state, &session, e),
        }
    }
    let nodes = crate::nodes(&state.zk).await.map(|n| n.len()).unwrap_or(0);
    let (from, to) = window_ms(&window);
    let pids: Vec<u32> = views
        .iter()
        .flat_map(|c| c.pipelines.iter().map(|p| p.id))
        .collect();
    state.render(
        "overview.html",
        context! {
            channels => views,
            nodes => nodes,
            delay_chart => delay_chart(&state, &pids, from, to),
            rows_chart => rows_chart(&state, &pids, from, to),
            samples => state.history.len(),
            alarms => state.alarms.views(),
            sample_secs => state.config.sample_secs,
            ..base(&session)
        },
    )
}

/// `?minutes=` of the pages with charts.
#[derive(Deserialize)]
pub struct Window {
    /// How far back the charts go (default 60, at most 24 h).
    #[serde(default = "default_minutes")]
    minutes: i64,
}

fn default_minutes() -> i64 {
    60
}

fn window_ms(w: &Window) -> (i64, i64) {
    let now = otter_node::pipeline::heartbeat::now_ms();
    (now - w.minutes.clamp(1, 24 * 60) * 60_000, now)
}

/// The delay chart of some pipelines.
fn delay_chart(state: &State, pids: &[u32], from: i64, to: i64) -> minijinja::Value {
    let samples = state.history.since(from);
    let series: Vec<super::charts::Series> = pids
        .iter()
        .map(|pid| super::charts::Series {
            label: format!("pipeline {pid}"),
            points: samples
                .iter()
                .filter_map(|s| s.delay_s.get(pid).map(|v| (s.at_ms, *v)))
                .collect(),
        })
        .collect();
    minijinja::Value::from_safe_string(super::charts::line_chart(
        "delay per pipeline",
        "s",
        from,
        to,
        &series,
    ))
}

/// The rows/s chart of some pipelines (summed over the nodes that load each).
fn rows_chart(state: &State, pids: &[u32], from: i64, to: i64) -> minijinja::Value {
    let samples = state.history.since(from);
    let series: Vec<super::charts::Series> = pids
        .iter()
        .map(|pid| super::charts::Series {
            label: format!("pipeline {pid}"),
            points: samples
                .iter()
                .filter_map(|s| s.pipeline_rows_per_s.get(pid).map(|v| (s.at_ms, *v)))
                .collect(),
        })
        .collect();
    minijinja::Value::from_safe_string(super::charts::line_chart(
        "rows loaded per second, per pipeline",
        "rows/s",
        from,
        to,
        &series,
    ))
}

/// GET /channel/{cid}.
pub async fn channel(
    AxState(state): AxState<State>,
    session: Session,
    Path(cid): Path<u32>,
    Query(window): Query<Window>,
) -> Response {
    let c = match crate::get(&state.zk, cid).await {
        Ok(c) => c,
        Err(e) => return manager_error(&state, &session, e),
    };
    let view = match channel_view(&state.zk, &c, true).await {
        Ok(v) => v,
        Err(e) => return manager_error(&state, &session, e),
    };
    let json = serde_json::to_string_pretty(&c).unwrap_or_default();
    let audit = state.audit.for_channel(cid);
    let (from, to) = window_ms(&window);
    let pids: Vec<u32> = view.pipelines.iter().map(|p| p.id).collect();
    state.render(
        "channel.html",
        context! {
            channel => view,
            json => json,
            audit => audit,
            delay_chart => delay_chart(&state, &pids, from, to),
            rows_chart => rows_chart(&state, &pids, from, to),
            minutes => window.minutes,
            ..base(&session)
        },
    )
}

/// GET /nodes: each live node, whether its `/health` answers `ok` (and how fast), its version
/// (`/version`), its last sampled rows/s and how long ago the sampler last read it, and since
/// when it is registered.
pub async fn nodes(AxState(state): AxState<State>, session: Session) -> Response {
    let nodes = match crate::nodes(&state.zk).await {
        Ok(n) => n,
        Err(e) => return manager_error(&state, &session, e),
    };
    #[derive(Serialize)]
    struct NodeView {
        id: u32,
        address: String,
        health: String,
        healthy: bool,
        rows_per_s: Option<String>,
        version: Option<String>,
        /// Seconds since the sampler last read the node's counters.
        last_sampled_s: Option<i64>,
        /// When its registration znode was created, UTC.
        registered: Option<String>,
    }
    let samples = state.history.since(0);
    let last = samples.last().cloned().unwrap_or_default();
    let now = otter_node::pipeline::heartbeat::now_ms();
    let http = reqwest::Client::new();
    let mut views = Vec::with_capacity(nodes.len());
    for (id, address) in nodes {
        let started = std::time::Instant::now();
        let answer = http
            .get(format!("http://{address}/health"))
            .timeout(std::time::Duration::from_secs(2))
            .send()
            .await;
        let (healthy, health) = match answer {
            Ok(r) if r.status().is_success() => match r.text().await {
                Ok(t) if t.trim() == "ok" => {
                    (true, format!("ok ({} ms)", started.elapsed().as_millis()))
                }
                Ok(t) => (
                    false,
                    format!("answered {:?}", t.chars().take(80).collect::<String>()),
                ),
                Err(e) => (false, e.to_string()),
            },
            Ok(r) => (false, format!("HTTP {}", r.status())),
            Err(e) => (false, format!("unreachable: {e}")),
        };
        let version = match http
            .get(format!("http://{address}/version"))
            .timeout(std::time::Duration::from_secs(2))
            .send()
            .await
        {
            Ok(r) if r.status().is_success() => r
                .text()
                .await
                .ok()
                .map(|t| t.trim().chars().take(40).collect()),
            _ => None,
        };
        let registered = match state.zk.check_stat(&otter_paths::node(id)).await {
            Ok(Some(stat)) => Some(super::actions::utc(stat.ctime)),
            _ => None,
        };
        views.push(NodeView {
            id,
            address,
            health,
            healthy,
            rows_per_s: last.node_rows_per_s.get(&id).map(|v| format!("{v:.1}")),
            version,
            last_sampled_s: samples
                .iter()
                .rev()
                .find(|s| s.node_rows_per_s.contains_key(&id))
                .map(|s| ((now - s.at_ms) / 1000).max(0)),
            registered,
        });
    }
    state.render("nodes.html", context! { nodes => views, ..base(&session) })
}

/// GET /zookeeper: each member's `mntr`.
pub async fn zookeeper(AxState(state): AxState<State>, session: Session) -> Response {
    let addrs = super::zkstat::members(&state.zk_servers);
    let members = in_turn(addrs.iter().map(|a| super::zkstat::member(a))).await;
    state.render(
        "zookeeper.html",
        context! { members => members, servers => state.zk_servers, ..base(&session) },
    )
}

async fn in_turn<F: std::future::Future>(fs: impl Iterator<Item = F>) -> Vec<F::Output> {
    let handles: Vec<_> = fs.collect();
    let mut out = Vec::with_capacity(handles.len());
    for f in handles {
        out.push(f.await);
    }
    out
}

/// Filters of the conflicts page.
#[derive(Deserialize, Default)]
pub struct ConflictFilter {
    /// `YYYY-MM-DD[ HH:MM:SS]`, the sites' clocks.
    #[serde(default)]
    since: String,
    /// Substring of `schema.table`.
    #[serde(default)]
    table: String,
}

/// GET /channel/{cid}/conflicts?since=…&table=…: the report, read from each target's
/// `retl.retl_conflict` (the same code as `otter-manager conflicts`).
pub async fn conflicts(
    AxState(state): AxState<State>,
    session: Session,
    Path(cid): Path<u32>,
    Query(filter): Query<ConflictFilter>,
) -> Response {
    let c = match crate::get(&state.zk, cid).await {
        Ok(c) => c,
        Err(e) => return manager_error(&state, &session, e),
    };
    let since = Some(filter.since.trim()).filter(|s| !s.is_empty());
    let mut all = Vec::new();
    let mut errors = Vec::new();
    for p in std::iter::once(&c.pipeline).chain(c.reverse.as_ref()) {
        match otter_node::pipeline::load::conflict::read_reports(p, cid, since).await {
            Ok(r) => all.extend(r),
            Err(e) => errors.push(format!("pipeline {}: {e}", p.id)),
        }
    }
    let table = filter.table.trim();
    all.retain(|r| table.is_empty() || r.table.contains(table));
    state.render(
        "conflicts.html",
        context! {
            cid => cid,
            conflicts => all,
            errors => errors,
            since => filter.since,
            table => filter.table,
            ..base(&session)
        },
    )
}

/// GET /canal: destinations, their running server, standbys and clients' cursors.
pub async fn canal(AxState(state): AxState<State>, session: Session) -> Response {
    match super::canal::destinations(&state.zk).await {
        Ok(d) => state.render(
            "canal.html",
            context! { destinations => d, ..base(&session) },
        ),
        Err(e) => manager_error(&state, &session, e),
    }
}
