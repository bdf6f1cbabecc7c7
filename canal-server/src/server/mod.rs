//! The Canal TCP server: accepts connections (bounded by a semaphore, one task each, so hundreds
//! of idle connections cost no threads) and runs a [`session`] per connection.

pub mod admin;
pub mod session;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use canal_protocol::scramble::Authenticator;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn, Instrument};

use crate::instance::Instance;

/// What every session shares.
pub struct ServerContext {
    /// Served destinations by name.
    pub instances: BTreeMap<String, Arc<Instance>>,
    /// Client authentication (`canal.user` / `canal.passwd`).
    pub auth: Authenticator,
    /// Largest inbound frame accepted.
    pub max_frame_len: usize,
}

/// Most connections served at once.
pub const MAX_CONNECTIONS: usize = 10_000;

/// Accepts connections on `listener` until `shutdown` fires. Accept errors are retried with a
/// doubling backoff (up to 1 s) so a burst of `EMFILE` does not spin.
pub async fn serve(listener: TcpListener, ctx: Arc<ServerContext>, shutdown: CancellationToken) {
    let permits = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let mut backoff = Duration::from_millis(5);
    loop {
        let permit = tokio::select! {
            _ = shutdown.cancelled() => break,
            p = permits.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => break,
            },
        };
        let accepted = tokio::select! {
            _ = shutdown.cancelled() => break,
            a = listener.accept() => a,
        };
        let (stream, peer) = match accepted {
            Ok(a) => {
                backoff = Duration::from_millis(5);
                a
            }
            Err(e) => {
                warn!(error = %e, "accept failed");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(1));
                continue;
            }
        };
        metrics::counter!("canal_server_connections_total").increment(1);
        let ctx = ctx.clone();
        let shutdown = shutdown.clone();
        let span = tracing::debug_span!("session", %peer);
        tokio::spawn(
            async move {
                session::run(stream, peer, ctx, shutdown).await;
                drop(permit);
            }
            .instrument(span),
        );
    }
    info!("stopped accepting connections");
}
