//! The node's HTTP server: batch data for other nodes to pull, `/health`, `/metrics`.

use std::net::SocketAddr;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use metrics_exporter_prometheus::PrometheusHandle;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::process::Stage;
use crate::runtime::registry::Registry;

#[derive(Clone)]
struct AppState {
    registry: Registry,
    prometheus: Option<PrometheusHandle>,
}

/// Serves on `listener` until `stop`: `GET /pipelines/{pid}/processes/{id}/{stage}` (the
/// gzip'd data a stage produced,
/// 404 once acked or unknown), `GET /health`, `GET /version`, `GET /metrics`.
pub async fn serve(
    listener: TcpListener,
    registry: Registry,
    prometheus: Option<PrometheusHandle>,
    stop: CancellationToken,
) {
    let app = Router::new()
        .route("/pipelines/{pid}/processes/{id}/{stage}", get(batch))
        .route("/health", get(|| async { "ok" }))
        .route("/version", get(|| async { env!("CARGO_PKG_VERSION") }))
        .route("/metrics", get(metrics_text))
        .with_state(AppState {
            registry,
            prometheus,
        });
    let _ = axum::serve(listener, app)
        .with_graceful_shutdown(async move { stop.cancelled().await })
        .await;
}

async fn batch(
    State(s): State<AppState>,
    Path((pid, id, stage)): Path<(u32, u64, String)>,
) -> impl IntoResponse {
    let data = Stage::parse(&stage).and_then(|st| s.registry.get(pid, id, st));
    match data {
        Some(d) => (
            StatusCode::OK,
            [("content-type", "application/octet-stream")],
            d.encode(),
        )
            .into_response(),
        None => (StatusCode::NOT_FOUND, "no such batch here").into_response(),
    }
}

async fn metrics_text(State(s): State<AppState>) -> impl IntoResponse {
    match &s.prometheus {
        Some(h) => h.render().into_response(),
        None => (StatusCode::NOT_FOUND, "metrics disabled").into_response(),
    }
}

/// Binds `addr` (port 0 = any free port).
pub async fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::bind(addr).await
}
