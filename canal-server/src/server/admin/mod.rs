//! Admin HTTP on `admin_port`: `/metrics` (Prometheus text, Canal's metric names where they
//! exist), `/health` (`health`), releasing a destination to a standby, and the operator's
//! client commands (`clients`: drop an abandoned client id, reset a cursor).

mod clients;
mod health;
mod snapshot;

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
    /// Bearer token the POST/DELETE endpoints require.
    token: Option<Arc<str>>,
    /// The listener is on a loopback address (without a token, changes are accepted only then).
    loopback: bool,
}

impl AdminState {
    /// Whether a request that changes something may proceed: with a token configured it must
    /// carry `Authorization: Bearer <token>`; without one the admin port must be loopback-only.
    fn authorize(&self, headers: &axum::http::HeaderMap) -> Result<(), (StatusCode, String)> {
        match &self.token {
            Some(token) => {
                let given = headers
                    .get(axum::http::header::AUTHORIZATION)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.strip_prefix("Bearer "))
                    .unwrap_or("");
                // Compared in constant time: the token must not leak through timing.
                let same = given.len() == token.len()
                    && given
                        .bytes()
                        .zip(token.bytes())
                        .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                        == 0;
                if same {
                    Ok(())
                } else {
                    metrics::counter!("canal_server_admin_refused_total").increment(1);
                    Err((
                        StatusCode::UNAUTHORIZED,
                        "this endpoint needs Authorization: Bearer <server.admin_token>\n".into(),
                    ))
                }
            }
            None if self.loopback => Ok(()),
            None => Err((
                StatusCode::FORBIDDEN,
                "set server.admin_token (or CANAL_ADMIN_TOKEN) to change anything through an admin port that is not loopback-only\n".into(),
            )),
        }
    }
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
    headers: axum::http::HeaderMap,
    axum::extract::Path(name): axum::extract::Path<String>,
) -> impl IntoResponse {
    use crate::server::Release;
    if let Err(refused) = s.authorize(&headers) {
        return refused;
    }
    match s.ctx.release(&name) {
        Release::Accepted => (StatusCode::ACCEPTED, format!("releasing {name}\n")),
        Release::Pending => (
            StatusCode::CONFLICT,
            format!("{name}: a hand-over is already under way\n"),
        ),
        Release::NotActive(role) => (
            StatusCode::CONFLICT,
            format!("{name}: this server is {role}, not active; nothing to release\n"),
        ),
        Release::NoElection => (
            StatusCode::NOT_FOUND,
            format!("{name}: no HA election on this server\n"),
        ),
    }
}

/// 404 for a destination this server does not run, naming the server that does when known.
fn not_served(s: &AdminState, name: &str) -> (StatusCode, String) {
    let elsewhere = s
        .ctx
        .roles()
        .get(name)
        .and_then(|(_, running)| running.clone())
        .map(|r| format!("; it runs on {r}"))
        .unwrap_or_default();
    (
        StatusCode::NOT_FOUND,
        format!("destination {name} is not served by this server{elsewhere}\n"),
    )
}

/// Serves the admin endpoints on `listener` until `shutdown`. POST/DELETE endpoints need
/// `token` as a bearer token when given, else a loopback listener.
pub async fn serve(
    listener: TcpListener,
    ctx: Arc<ServerContext>,
    prometheus: Option<PrometheusHandle>,
    token: Option<String>,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let loopback = listener.local_addr()?.ip().is_loopback();
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
        .route(
            "/destinations/{name}/snapshot",
            axum::routing::post(snapshot::start).get(snapshot::status),
        )
        .with_state(AdminState {
            ctx,
            prometheus,
            token: token.map(Arc::from),
            loopback,
        });
    axum::serve(listener, app)
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await
}
