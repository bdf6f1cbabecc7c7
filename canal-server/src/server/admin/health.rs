//! `/health`: per destination its role, parser status and position, store usage and each
//! client's cursor, lag and state, as JSON with numbers as numbers. Answers 503 when some
//! destination configured here serves nothing it should:
//! - served here but the parser is not streaming (starting, reconnecting to an unreachable
//!   source, failed, stopped);
//! - served nowhere: this server is a standby or fenced and no server holds the running node;
//! - every client of it is stuck behind a purged binlog.

use std::time::SystemTime;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::Json;
use serde::Serialize;

use super::AdminState;
use crate::destination::DestinationStatus;
use crate::instance::Instance;
use crate::position::{BinlogPosition, EntryPosition};
use crate::store::{ClientStatus, Lane};

/// A position as `/health` shows it.
#[derive(Serialize)]
struct Position {
    journal: String,
    offset: u64,
    gtid: Option<String>,
    /// ms since the epoch; absent when unknown.
    timestamp: Option<i64>,
}

impl Position {
    fn of_entry(p: &EntryPosition) -> Self {
        Self {
            journal: p.binlog.file.clone(),
            offset: p.binlog.offset,
            gtid: p.gtid.as_ref().map(|g| g.to_string()),
            timestamp: (p.timestamp_ms > 0).then_some(p.timestamp_ms),
        }
    }

    fn of_head(p: &BinlogPosition, timestamp_ms: i64) -> Self {
        Self {
            journal: p.file.clone(),
            offset: p.offset,
            gtid: None,
            timestamp: (timestamp_ms > 0).then_some(timestamp_ms),
        }
    }
}

#[derive(Serialize)]
struct ClientHealth {
    client_id: i16,
    filter: String,
    cursor: Option<Position>,
    /// `live` (reads the shared store), `catching_up` (its own replica stream), `waiting` (behind
    /// the shared store, waiting for a catch-up slot or for its next request), `purged`.
    state: &'static str,
    /// Why it cannot be served (purged cursor).
    error: Option<String>,
    outstanding_batches: usize,
    /// Entries of the shared store it has not acked.
    unacked_entries: u64,
    /// Binlog bytes between its cursor and the parser, when both are in the same file.
    lag_bytes: Option<u64>,
    /// Source time between its cursor and the parser's last event, seconds.
    lag_seconds: Option<f64>,
    /// Its last request, ms since the epoch.
    last_seen: i64,
    idle_seconds: f64,
}

#[derive(Serialize)]
struct DestinationHealth {
    name: String,
    role: String,
    running: Option<String>,
    /// `running`, `starting`, `reconnecting`, `failed`, `stopped` or `not_served_here`.
    status: &'static str,
    healthy: bool,
    /// Why it is unhealthy.
    reason: Option<String>,
    /// The parser's last event.
    position: Option<Position>,
    /// The error of a reconnecting or failed parser.
    error: Option<String>,
    /// Reconnect attempt.
    attempt: Option<u32>,
    store_entries: usize,
    store_bytes: usize,
    clients: Vec<ClientHealth>,
    /// The MQ publisher, when the destination publishes to a broker.
    #[serde(skip_serializing_if = "Option::is_none")]
    producer: Option<crate::mq::ProducerStatus>,
}

#[derive(Serialize)]
struct Health {
    healthy: bool,
    destinations: Vec<DestinationHealth>,
}

fn ms(t: SystemTime) -> i64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

fn client_health(
    c: ClientStatus,
    catching_up: bool,
    head: Option<(&BinlogPosition, i64)>,
) -> ClientHealth {
    let (state, error) = match &c.lane {
        Lane::Shared => ("live", None),
        Lane::Detached { .. } if catching_up => ("catching_up", None),
        Lane::Detached { .. } => ("waiting", None),
        Lane::Purged { first_available } => (
            "purged",
            Some(format!(
                "cursor is behind the oldest binlog on the source ({first_available}); reset it (POST /destinations/NAME/clients/{}/reset?to=oldest) or drop it",
                c.client_id
            )),
        ),
    };
    let caught_up = c.lane.is_shared() && c.unacked_entries == 0;
    let lag_bytes = match (&c.cursor, head) {
        _ if caught_up => Some(0),
        (Some(cur), Some((h, _))) if cur.binlog.file == h.file => {
            Some(h.offset.saturating_sub(cur.binlog.offset))
        }
        _ => None,
    };
    let lag_seconds = match (&c.cursor, head) {
        _ if caught_up => Some(0.0),
        (Some(cur), Some((_, ts))) if cur.timestamp_ms > 0 && ts > 0 => {
            Some((ts - cur.timestamp_ms).max(0) as f64 / 1000.0)
        }
        _ => None,
    };
    ClientHealth {
        client_id: c.client_id,
        filter: c.filter,
        cursor: c.cursor.as_ref().map(Position::of_entry),
        state,
        error,
        outstanding_batches: c.outstanding_batches,
        unacked_entries: c.unacked_entries,
        lag_bytes,
        lag_seconds,
        last_seen: ms(c.last_seen),
        idle_seconds: SystemTime::now()
            .duration_since(c.last_seen)
            .map(|d| d.as_secs_f64())
            .unwrap_or(0.0),
    }
}

fn served_here(i: &Instance, role: String, running: Option<String>) -> DestinationHealth {
    let status = i.status();
    let (status_text, position, error, attempt) = match &status {
        DestinationStatus::Starting => ("starting", None, None, None),
        DestinationStatus::Running {
            position,
            timestamp_ms,
        } => (
            "running",
            Some(Position::of_head(position, *timestamp_ms)),
            None,
            None,
        ),
        DestinationStatus::Reconnecting { attempt, error } => {
            ("reconnecting", None, Some(error.clone()), Some(*attempt))
        }
        DestinationStatus::Failed { error } => ("failed", None, Some(error.clone()), None),
        DestinationStatus::Stopped => ("stopped", None, None, None),
    };
    let head = match &status {
        DestinationStatus::Running {
            position,
            timestamp_ms,
        } => Some((position, *timestamp_ms)),
        _ => None,
    };
    let clients: Vec<ClientHealth> = i
        .client_status()
        .into_iter()
        .map(|(c, up)| client_health(c, up, head))
        .collect();
    let producer = i.producer_status();
    let reason = if status_text != "running" {
        Some(match &error {
            Some(e) => format!("parser is {status_text}: {e}"),
            None => format!("parser is {status_text}"),
        })
    } else if !clients.is_empty() && clients.iter().all(|c| c.state == "purged") {
        Some("every client's cursor is behind a purged binlog".to_string())
    } else {
        producer
            .as_ref()
            .and_then(crate::mq::ProducerStatus::unhealthy)
    };
    let (store_entries, store_bytes) = i.store().usage();
    DestinationHealth {
        name: i.name().to_string(),
        role,
        running,
        status: status_text,
        healthy: reason.is_none(),
        reason,
        position,
        error,
        attempt,
        store_entries,
        store_bytes,
        clients,
        producer,
    }
}

fn served_elsewhere(name: String, role: String, running: Option<String>) -> DestinationHealth {
    let reason = match (role.as_str(), &running) {
        ("fenced", _) => Some("this server lost its ZooKeeper session (fenced)".to_string()),
        (_, None) => Some(format!(
            "no server runs it (this server is {role}; the running node is empty)"
        )),
        _ => None,
    };
    DestinationHealth {
        name,
        role,
        running,
        status: "not_served_here",
        healthy: reason.is_none(),
        reason,
        position: None,
        error: None,
        attempt: None,
        store_entries: 0,
        store_bytes: 0,
        clients: Vec::new(),
        producer: None,
    }
}

/// `GET /health`.
pub(super) async fn health(State(s): State<AdminState>) -> impl IntoResponse {
    let roles = s.ctx.roles();
    let mut destinations: Vec<DestinationHealth> = s
        .ctx
        .instances()
        .iter()
        .map(|i| {
            let (role, running) = roles
                .get(i.name())
                .cloned()
                .unwrap_or_else(|| ("active".into(), None));
            served_here(i, role, running)
        })
        .collect();
    for (name, (role, running)) in roles {
        if !destinations.iter().any(|d| d.name == name) {
            destinations.push(served_elsewhere(name, role, running));
        }
    }
    let healthy = destinations.iter().all(|d| d.healthy);
    let code = if healthy {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        code,
        Json(Health {
            healthy,
            destinations,
        }),
    )
}
