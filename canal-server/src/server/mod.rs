//! The Canal TCP server: accepts connections (bounded by a semaphore, one task each, so hundreds
//! of idle connections cost no threads) and runs a [`session`] per connection.

pub mod admin;
pub mod auth_throttle;
pub mod ha;
pub mod session;
pub mod tls;

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
    /// Destinations this server serves right now (in HA mode: those it is active for).
    instances: std::sync::RwLock<BTreeMap<String, Arc<Instance>>>,
    /// Per destination: the role text and the running address, for errors and /health.
    roles: std::sync::RwLock<BTreeMap<String, (String, Option<String>)>>,
    /// Destinations with an accepted release whose hand-over has not happened yet.
    releasing: std::sync::Mutex<std::collections::BTreeSet<String>>,
    /// Voluntary hand-over triggers (HA mode), for the admin endpoint.
    releasers: std::sync::RwLock<BTreeMap<String, tokio::sync::mpsc::Sender<()>>>,
    /// Client authentication (`canal.user` / `canal.passwd`).
    pub auth: Authenticator,
    /// Per-address backoff after failed authentications.
    pub auth_throttle: auth_throttle::AuthThrottle,
    /// Largest inbound frame accepted.
    pub max_frame_len: usize,
    /// Connections served at once (`server.max_connections`).
    pub connections: Arc<Semaphore>,
    /// Connections still authenticating (a quarter of the connections, at least 1).
    pub unauthenticated: Arc<Semaphore>,
    /// `server.max_connections`.
    pub max_connections: usize,
    /// TLS on the Canal port (`server.tls_cert` / `server.tls_key`): every connection then
    /// speaks TLS from its first byte.
    pub tls: Option<tokio_rustls::TlsAcceptor>,
}

impl ServerContext {
    /// A context with no destination served yet.
    pub fn new(auth: Authenticator, max_frame_len: usize, max_connections: usize) -> Self {
        Self {
            connections: Arc::new(Semaphore::new(max_connections)),
            unauthenticated: Arc::new(Semaphore::new((max_connections / 4).max(1))),
            max_connections,
            instances: Default::default(),
            roles: Default::default(),
            releasers: Default::default(),
            releasing: Default::default(),
            auth_throttle: Default::default(),
            auth,
            max_frame_len,
            tls: None,
        }
    }

    /// The same context with TLS on the Canal port.
    pub fn with_tls(self, tls: Option<tokio_rustls::TlsAcceptor>) -> Self {
        Self { tls, ..self }
    }

    /// The instance serving `destination` here, if any.
    pub fn instance(&self, destination: &str) -> Option<Arc<Instance>> {
        self.instances
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(destination)
            .cloned()
    }

    /// All served instances.
    pub fn instances(&self) -> Vec<Arc<Instance>> {
        self.instances
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .cloned()
            .collect()
    }

    /// Starts serving `inst`.
    pub fn insert(&self, inst: Arc<Instance>) {
        self.instances
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(inst.name().to_string(), inst);
    }

    /// Stops serving `destination` (the caller stops the instance).
    pub fn remove(&self, destination: &str) -> Option<Arc<Instance>> {
        self.instances
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(destination)
    }

    /// Records this server's role for `destination` and who runs it.
    pub fn set_role(&self, destination: &str, role: &str, running: Option<String>) {
        if role != "active" {
            // The hand-over a release asked for happened (or the node was lost anyway).
            self.releasing
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(destination);
        }
        self.roles
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(destination.to_string(), (role.to_string(), running));
    }

    /// `(role, running address)` per destination.
    pub fn roles(&self) -> BTreeMap<String, (String, Option<String>)> {
        self.roles.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Registers the hand-over trigger of `destination`.
    pub fn set_releaser(&self, destination: &str, tx: tokio::sync::mpsc::Sender<()>) {
        self.releasers
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(destination.to_string(), tx);
    }

    /// Asks the election of `destination` to hand over, once: only the active server can, and a
    /// request while a hand-over is pending is refused rather than queued.
    pub fn release(&self, destination: &str) -> Release {
        let tx = self
            .releasers
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(destination)
            .cloned();
        let Some(tx) = tx else {
            return Release::NoElection;
        };
        match self.roles().get(destination) {
            Some((role, _)) if role == "active" => {}
            Some((role, _)) => return Release::NotActive(role.clone()),
            None => return Release::NotActive("unknown".into()),
        }
        let mut releasing = self.releasing.lock().unwrap_or_else(|p| p.into_inner());
        if releasing.contains(destination) {
            return Release::Pending;
        }
        match tx.try_send(()) {
            Ok(()) => {
                releasing.insert(destination.to_string());
                Release::Accepted
            }
            Err(_) => Release::Pending,
        }
    }
}

/// What a release request did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Release {
    /// The active server hands the destination over.
    Accepted,
    /// A hand-over is already under way.
    Pending,
    /// This server does not run the destination (its role).
    NotActive(String),
    /// No HA election for this destination here.
    NoElection,
}

/// Accepts connections on `listener` until `shutdown` fires. Accept errors are retried with a
/// doubling backoff (up to 1 s) so a burst of `EMFILE` does not spin. Every connection is
/// accepted; beyond `server.max_connections` it gets an error frame and is closed at once
/// (instead of waiting unanswered in the listen backlog).
pub async fn serve(listener: TcpListener, ctx: Arc<ServerContext>, shutdown: CancellationToken) {
    let mut backoff = Duration::from_millis(5);
    loop {
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
        let permit = ctx.connections.clone().try_acquire_owned().ok();
        let ctx = ctx.clone();
        let shutdown = shutdown.clone();
        let span = tracing::debug_span!("session", %peer);
        tokio::spawn(
            async move {
                session::run(stream, peer, ctx, shutdown, permit).await;
            }
            .instrument(span),
        );
    }
    info!("stopped accepting connections");
}
