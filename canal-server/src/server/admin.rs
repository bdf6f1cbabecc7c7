//! Admin HTTP on `admin_port`: `/metrics` (Prometheus text, Canal's metric names where they
//! exist) and `/health` (per destination: parser status, store usage, clients and cursors).

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use metrics_exporter_prometheus::PrometheusHandle;
use serde::Serialize;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::destination::DestinationStatus;
use crate::server::ServerContext;

#[derive(Clone)]
struct AdminState {
    ctx: Arc<ServerContext>,
    prometheus: Option<PrometheusHandle>,
}

#[derive(Serialize)]
struct ClientHealth {
    client_id: i16,
    filter: String,
    cursor: Option<String>,
    outstanding_batches: usize,
}

#[derive(Serialize)]
struct DestinationHealth {
    name: String,
    role: String,
    running: Option<String>,
    status: String,
    healthy: bool,
    store_entries: usize,
    store_bytes: usize,
    clients: Vec<ClientHealth>,
}

#[derive(Serialize)]
struct Health {
    healthy: bool,
    destinations: Vec<DestinationHealth>,
}

async fn health(State(s): State<AdminState>) -> impl IntoResponse {
    let roles = s.ctx.roles();
    let mut destinations: Vec<DestinationHealth> = s
        .ctx
        .instances()
        .iter()
        .map(|i| {
            let status = i.status();
            let healthy = !matches!(
                status,
                DestinationStatus::Failed { .. } | DestinationStatus::Stopped
            );
            let (store_entries, store_bytes) = i.store().usage();
            let (role, running) = roles
                .get(i.name())
                .cloned()
                .unwrap_or_else(|| ("active".into(), None));
            DestinationHealth {
                name: i.name().to_string(),
                role,
                running,
                status: format!("{status:?}"),
                healthy,
                store_entries,
                store_bytes,
                clients: i
                    .store()
                    .clients()
                    .into_iter()
                    .map(|c| ClientHealth {
                        client_id: c.client_id,
                        filter: c.filter,
                        cursor: c.cursor.map(|p| p.binlog.to_string()),
                        outstanding_batches: c.outstanding_batches,
                    })
                    .collect(),
            }
        })
        .collect();
    // Destinations configured here but served elsewhere (standby / fenced).
    for (name, (role, running)) in roles {
        if !destinations.iter().any(|d| d.name == name) {
            destinations.push(DestinationHealth {
                name,
                role,
                running,
                status: "NotServedHere".into(),
                healthy: true,
                store_entries: 0,
                store_bytes: 0,
                clients: Vec::new(),
            });
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

async fn metrics_text(State(s): State<AdminState>) -> impl IntoResponse {
    match &s.prometheus {
        Some(h) => (StatusCode::OK, h.render()),
        None => (
            StatusCode::NOT_FOUND,
            "metrics recorder not installed\n".to_string(),
        ),
    }
}

async fn release(
    State(s): State<AdminState>,
    axum::extract::Path(name): axum::extract::Path<String>,
) -> impl IntoResponse {
    if s.ctx.release(&name) {
        (StatusCode::ACCEPTED, format!("releasing {name}\n"))
    } else {
        (
            StatusCode::NOT_FOUND,
            format!("{name}: no HA election on this server\n"),
        )
    }
}

/// Serves the admin endpoints on `listener` until `shutdown`.
pub async fn serve(
    listener: TcpListener,
    ctx: Arc<ServerContext>,
    prometheus: Option<PrometheusHandle>,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let app = Router::new()
        .route("/health", get(health))
        .route("/metrics", get(metrics_text))
        .route("/destinations/{name}/release", axum::routing::post(release))
        .with_state(AdminState { ctx, prometheus });
    axum::serve(listener, app)
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await
}
