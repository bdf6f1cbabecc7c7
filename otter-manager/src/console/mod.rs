//! The web console: `otter-manager serve --http ADDR` (or a `[console]` section in a config file).
//!
//! Pages are rendered server-side from embedded [minijinja] templates (no JavaScript, no CDN);
//! every POST carries the session's CSRF token; users and their argon2 password hashes come from
//! the config ([`auth`]). Actions ([`actions`]) reuse the library's [`crate::set_status`] and
//! record who did what in a bounded in-memory audit log.
//!
//! The console reads ZooKeeper on every page view (no cache): what it shows is what the nodes see.

pub mod actions;
pub mod alarms;
pub mod auth;
pub mod canal;
pub mod charts;
pub mod edit;
pub mod fields;
pub mod history;
pub mod metrics;
pub mod pages;
pub mod store;
pub mod window;
pub mod zkstat;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use serde::Deserialize;
use zookeeper_client::Client;

pub use auth::{hash_password, Role, User};

/// The `[console]` section of a manager config file.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ConsoleConfig {
    /// Where the console listens, e.g. `127.0.0.1:8080`.
    #[serde(default = "default_http")]
    pub http: SocketAddr,
    /// Users allowed to log in. Empty: no login, everybody is an operator, which is only allowed on
    /// a loopback address.
    #[serde(default)]
    pub users: Vec<User>,
    /// Audit entries kept in memory (oldest dropped first).
    #[serde(default = "default_audit_capacity")]
    pub audit_capacity: usize,
    /// Sessions kept at once (the oldest is dropped first).
    #[serde(default = "default_max_sessions")]
    pub max_sessions: usize,
    /// Seconds between two metric samples (delays from ZooKeeper, rows from the nodes).
    #[serde(default = "default_sample_secs")]
    pub sample_secs: u64,
    /// Hours of samples kept in memory.
    #[serde(default = "default_history_hours")]
    pub history_hours: u64,
    /// Alarm rules, evaluated after every sample.
    #[serde(default)]
    pub alarms: Vec<alarms::Rule>,
    /// Where the audit log and the history are also written (`audit.jsonl`, `history.jsonl`,
    /// each bounded like its in-memory copy) and read back at start; none: memory only.
    #[serde(default)]
    pub data_dir: Option<std::path::PathBuf>,
}

fn default_sample_secs() -> u64 {
    10
}
fn default_history_hours() -> u64 {
    24
}

fn default_http() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 8080))
}
fn default_audit_capacity() -> usize {
    1000
}
fn default_max_sessions() -> usize {
    1024
}

impl Default for ConsoleConfig {
    fn default() -> Self {
        Self {
            http: default_http(),
            users: Vec::new(),
            audit_capacity: default_audit_capacity(),
            max_sessions: default_max_sessions(),
            sample_secs: default_sample_secs(),
            history_hours: default_history_hours(),
            alarms: Vec::new(),
            data_dir: None,
        }
    }
}

/// A manager config file: only `[console]` is read by `serve`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct ManagerConfig {
    /// The console's settings.
    #[serde(default)]
    pub console: ConsoleConfig,
}

/// Why the console cannot start.
#[derive(Debug, thiserror::Error)]
pub enum ConsoleError {
    /// No user configured and the address is not loopback.
    #[error("no console user configured: refusing to serve on {0}, which is not a loopback address (add [[console.users]] or bind to 127.0.0.1)")]
    NoUsers(SocketAddr),
    /// A user's password hash does not parse.
    #[error("console user {user}: invalid password hash: {reason}")]
    BadHash {
        /// The user.
        user: String,
        /// Why.
        reason: String,
    },
    /// Two users with one name.
    #[error("console user {0} is configured twice")]
    DuplicateUser(String),
    /// The history settings are out of range.
    #[error("[console] sample_secs must be at least 1 and history_hours / sample_secs at most 1,000,000 samples")]
    History,
    /// `data_dir` cannot be created.
    #[error("[console] data_dir {path}: {source}")]
    DataDir {
        /// The directory.
        path: std::path::PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// An embedded template does not parse (a bug).
    #[error("console template: {0}")]
    Template(String),
    /// Binding or serving failed.
    #[error("console on {addr}: {source}")]
    Io {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
}

impl ConsoleConfig {
    /// Samples kept: `history_hours` at `sample_secs`.
    pub fn history_capacity(&self) -> usize {
        (self.history_hours * 3600 / self.sample_secs.max(1)) as usize
    }

    /// Checks the rules `serve` enforces before binding.
    pub fn validate(&self) -> Result<(), ConsoleError> {
        if self.sample_secs == 0 || self.history_capacity() > 1_000_000 {
            return Err(ConsoleError::History);
        }
        if self.users.is_empty() && !self.http.ip().is_loopback() {
            return Err(ConsoleError::NoUsers(self.http));
        }
        let mut seen = std::collections::HashSet::new();
        for u in &self.users {
            if !seen.insert(u.name.as_str()) {
                return Err(ConsoleError::DuplicateUser(u.name.clone()));
            }
            auth::check_hash(u)?;
        }
        Ok(())
    }
}

/// What every handler shares.
pub struct Console {
    pub(crate) zk: Client,
    pub(crate) zk_servers: String,
    pub(crate) config: ConsoleConfig,
    pub(crate) sessions: auth::Sessions,
    pub(crate) audit: actions::AuditLog,
    pub(crate) history: history::History,
    pub(crate) alarms: alarms::Alarms,
    pub(crate) templates: minijinja::Environment<'static>,
}

/// Shared state of the handlers.
pub type State = Arc<Console>;

fn templates() -> Result<minijinja::Environment<'static>, ConsoleError> {
    let mut env = minijinja::Environment::new();
    env.set_auto_escape_callback(|_| minijinja::AutoEscape::Html);
    for (name, text) in [
        ("layout.html", include_str!("../../templates/layout.html")),
        ("login.html", include_str!("../../templates/login.html")),
        (
            "overview.html",
            include_str!("../../templates/overview.html"),
        ),
        ("channel.html", include_str!("../../templates/channel.html")),
        ("nodes.html", include_str!("../../templates/nodes.html")),
        (
            "zookeeper.html",
            include_str!("../../templates/zookeeper.html"),
        ),
        (
            "conflicts.html",
            include_str!("../../templates/conflicts.html"),
        ),
        ("confirm.html", include_str!("../../templates/confirm.html")),
        ("audit.html", include_str!("../../templates/audit.html")),
        ("canal.html", include_str!("../../templates/canal.html")),
        ("error.html", include_str!("../../templates/error.html")),
        ("edit.html", include_str!("../../templates/edit.html")),
    ] {
        // The templates are part of the binary: one that does not parse is a bug the tests catch.
        env.add_template(name, text)
            .map_err(|e| ConsoleError::Template(e.to_string()))?;
    }
    Ok(env)
}

impl Console {
    /// A console over an open ZooKeeper session; `zk_servers` is the connect string (its members
    /// are asked for `mntr`).
    pub fn new(
        zk: Client,
        zk_servers: String,
        config: ConsoleConfig,
    ) -> Result<State, ConsoleError> {
        config.validate()?;
        let store = |name: &str, cap: usize| {
            config
                .data_dir
                .as_ref()
                .map(|dir| store::Jsonl::new(dir, name, cap))
        };
        if let Some(dir) = &config.data_dir {
            std::fs::create_dir_all(dir).map_err(|source| ConsoleError::DataDir {
                path: dir.clone(),
                source,
            })?;
        }
        Ok(Arc::new(Console {
            zk,
            zk_servers,
            sessions: auth::Sessions::new(config.max_sessions),
            audit: actions::AuditLog::new(
                config.audit_capacity,
                store("audit.jsonl", config.audit_capacity),
            ),
            history: history::History::new(
                config.history_capacity(),
                store("history.jsonl", config.history_capacity()),
            ),
            alarms: alarms::Alarms::start(config.alarms.clone()),
            config,
            templates: templates()?,
        }))
    }

    pub(crate) fn render(&self, name: &str, ctx: minijinja::Value) -> Response {
        match self
            .templates
            .get_template(name)
            .and_then(|t| t.render(ctx))
        {
            Ok(html) => Html(html).into_response(),
            Err(e) => {
                tracing::error!(template = name, error = %e, "rendering failed");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    format!("rendering {name} failed: {e}"),
                )
                    .into_response()
            }
        }
    }
}

/// The console's routes.
pub fn router(state: State) -> Router {
    Router::new()
        .route("/", get(pages::overview))
        .route("/channel/new", get(edit::new_channel))
        .route("/channel/apply", post(edit::apply))
        .route("/channel/{cid}", get(pages::channel))
        .route("/channel/{cid}/edit", get(edit::edit_channel))
        .route("/channel/{cid}/conflicts", get(pages::conflicts))
        .route("/nodes", get(pages::nodes))
        .route("/zookeeper", get(pages::zookeeper))
        .route("/audit", get(actions::audit))
        .route("/canal", get(pages::canal))
        .route("/canal/{dest}/release", post(actions::canal_release))
        .route("/channel/{cid}/{action}", post(actions::channel_action))
        .route("/login", get(auth::login_page).post(auth::login))
        .route("/logout", post(auth::logout))
        .route("/static/console.css", get(css))
        .with_state(state)
}

async fn css() -> impl IntoResponse {
    (
        [(axum::http::header::CONTENT_TYPE, "text/css")],
        include_str!("../../templates/console.css"),
    )
}

/// Binds and serves until the process ends. Fails when the address cannot be bound.
pub async fn serve(state: State) -> Result<(), ConsoleError> {
    let addr = state.config.http;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| ConsoleError::Io { addr, source })?;
    let local = listener.local_addr().unwrap_or(addr);
    tracing::info!(%local, "console listening");
    tokio::spawn(history::run(
        state.clone(),
        std::time::Duration::from_secs(state.config.sample_secs.max(1)),
    ));
    eprintln!("console: http://{local}/");
    axum::serve(listener, router(state))
        .await
        .map_err(|source| ConsoleError::Io { addr, source })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_example_config_parses_with_the_defaults_and_may_start() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../config/manager.toml");
        let text = std::fs::read_to_string(path).unwrap();
        let parsed: ManagerConfig = toml::from_str(&text).unwrap();
        assert_eq!(parsed.console, ConsoleConfig::default());
        parsed.console.validate().unwrap();
        templates().unwrap();
    }

    #[test]
    fn no_users_is_refused_off_loopback_and_bad_hashes_are_named() {
        let mut c = ConsoleConfig {
            http: "0.0.0.0:8080".parse().unwrap(),
            ..ConsoleConfig::default()
        };
        assert!(matches!(c.validate(), Err(ConsoleError::NoUsers(_))));
        c.users.push(User {
            name: "a".into(),
            password_hash: "plain".into(),
            role: Role::Viewer,
        });
        assert!(matches!(c.validate(), Err(ConsoleError::BadHash { ref user, .. }) if user == "a"));
    }
}
