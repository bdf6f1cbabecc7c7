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
    let destinations: Vec<DestinationHealth> = s
        .ctx
        .instances
        .values()
        .map(|i| {
            let status = i.status();
            let healthy = !matches!(
                status,
                DestinationStatus::Failed { .. } | DestinationStatus::Stopped
            );
            let (store_entries, store_bytes) = i.store().usage();
            DestinationHealth {
                name: i.name().to_string(),
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
        .with_state(AdminState { ctx, prometheus });
    axum::serve(listener, app)
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await
}
