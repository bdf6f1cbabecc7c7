//! Admin HTTP on `admin_port`: `/metrics` (Prometheus text, Canal's metric names where they
//! exist), `/health` (`health`), releasing a destination to a standby, and the operator's
//! client commands (`clients`: drop an abandoned client id, reset a cursor).

mod clients;
mod health;

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use metrics_exporter_prometheus::PrometheusHandle;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::server::ServerContext;

#[derive(Clone)]
struct AdminState {
    ctx: Arc<ServerContext>,
    prometheus: Option<PrometheusHandle>,
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
        .route("/health", get(health::health))
        .route(
            "/destinations/{name}/clients/{client_id}",
            axum::routing::delete(clients::drop_client),
        )
        .route(
            "/destinations/{name}/clients/{client_id}/reset",
            axum::routing::post(clients::reset),
        )
        .route("/metrics", get(metrics_text))
        .route("/destinations/{name}/release", axum::routing::post(release))
        .with_state(AdminState { ctx, prometheus });
    axum::serve(listener, app)
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await
}
