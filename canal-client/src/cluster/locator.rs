//! Finding the servers of a destination in ZooKeeper (reference §4.4): a
//! background task that reads and watches `…/{dest}/running` (its `address`)
//! and the children of `…/{dest}/cluster`, and publishes what it read.

use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};
use zk_coord::{paths, ZkConfig};
use zookeeper_client::{Client, Error as ZkError, EventType, OneshotWatcher, SessionState};

use super::retry::Backoff;

/// Pause between attempts to re-read after a failed read in a live session.
const REREAD_PAUSE: Duration = Duration::from_millis(200);

/// The servers ZooKeeper names for a destination.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct ServerView {
    /// `address` of the running node, when it exists and is `host:port`.
    /// Like the Java client, `active` is not checked.
    pub running: Option<String>,
    /// The `host:port` children of the destination's `cluster` node, sorted.
    pub cluster: Vec<String>,
}

/// What the locator publishes.
#[derive(Debug, Clone, Default)]
pub(crate) struct LocatorState {
    /// The last view read; kept (stale) while ZooKeeper is unreachable.
    pub view: Option<ServerView>,
    /// The last ZooKeeper failure since the last successful read.
    pub error: Option<String>,
}

/// The running locator task; stops when dropped.
#[derive(Debug)]
pub(crate) struct Locator {
    state: watch::Receiver<LocatorState>,
    cancel: CancellationToken,
    _task: JoinHandle<()>,
}

impl Drop for Locator {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

impl Locator {
    /// Starts watching `destination` with sessions from `zk`; retries
    /// ZooKeeper with capped exponential backoff for as long as it runs.
    pub fn spawn(zk: ZkConfig, destination: &str, backoff: Backoff) -> Self {
        let (tx, state) = watch::channel(LocatorState::default());
        let cancel = CancellationToken::new();
        let task = Task {
            zk,
            destination: destination.to_owned(),
            running_path: paths::running(destination),
            cluster_path: paths::destination_cluster(destination),
            tx,
            cancel: cancel.clone(),
            backoff,
        };
        Self {
            state,
            cancel,
            _task: tokio::spawn(task.run()),
        }
    }

    /// What was read last.
    pub fn current(&self) -> LocatorState {
        self.state.borrow().clone()
    }

    /// A receiver that has seen the current state (its `changed()` fires on
    /// the next update only).
    pub fn subscribe(&self) -> watch::Receiver<LocatorState> {
        let mut rx = self.state.clone();
        rx.mark_unchanged();
        rx
    }
}

enum End {
    Stop,
    SessionLost,
}

struct Task {
    zk: ZkConfig,
    destination: String,
    running_path: String,
    cluster_path: String,
    tx: watch::Sender<LocatorState>,
    cancel: CancellationToken,
    backoff: Backoff,
}

impl Task {
    async fn run(mut self) {
        loop {
            let connected = tokio::select! {
                () = self.cancel.cancelled() => return,
                c = self.zk.connect() => c,
            };
            let client = match connected {
                Ok(client) => {
                    self.backoff.reset();
                    client
                }
                Err(err) => {
                    let delay = self.backoff.next_delay();
                    warn!(
                        destination = %self.destination,
                        error = %err,
                        retry_in_ms = delay.as_millis() as u64,
                        "canal cluster: ZooKeeper unreachable; retrying"
                    );
                    self.publish_error(err.to_string());
                    tokio::select! {
                        () = self.cancel.cancelled() => return,
                        () = tokio::time::sleep(delay) => continue,
                    }
                }
            };
            match self.session(&client).await {
                End::Stop => return,
                End::SessionLost => {
                    warn!(destination = %self.destination, "canal cluster: ZooKeeper session lost; opening a new one");
                    self.publish_error("ZooKeeper session lost".into());
                }
            }
        }
    }

    fn publish_error(&self, error: String) {
        self.tx.send_modify(|s| s.error = Some(error));
    }

    /// Reads and watches in one session until it ends or the task stops.
    async fn session(&self, client: &Client) -> End {
        let mut state = client.state_watcher();
        loop {
            let read = tokio::select! {
                () = self.cancel.cancelled() => return End::Stop,
                r = self.read(client) => r,
            };
            let (view, running_watch, cluster_watch) = match read {
                Ok(read) => read,
                Err(err) => {
                    if state.peek_state().is_terminated() {
                        return End::SessionLost;
                    }
                    debug!(destination = %self.destination, error = %err, "canal cluster: reading ZooKeeper failed; retrying");
                    self.publish_error(err.to_string());
                    tokio::select! {
                        () = self.cancel.cancelled() => return End::Stop,
                        () = tokio::time::sleep(REREAD_PAUSE) => continue,
                    }
                }
            };
            self.tx.send_if_modified(|s| {
                let changed = s.view.as_ref() != Some(&view) || s.error.is_some();
                if s.view.as_ref().map(|v| &v.running) != Some(&view.running) {
                    info!(
                        destination = %self.destination,
                        running = view.running.as_deref().unwrap_or("<none>"),
                        cluster = ?view.cluster,
                        "canal cluster: running server"
                    );
                }
                s.view = Some(view);
                s.error = None;
                changed
            });
            let running_changed = running_watch.changed();
            let cluster_changed = cluster_watch.changed();
            tokio::pin!(running_changed, cluster_changed);
            loop {
                tokio::select! {
                    () = self.cancel.cancelled() => return End::Stop,
                    ev = &mut running_changed => {
                        if ev.event_type == EventType::Session && ev.session_state.is_terminated() {
                            return End::SessionLost;
                        }
                        break;
                    }
                    ev = &mut cluster_changed => {
                        if ev.event_type == EventType::Session && ev.session_state.is_terminated() {
                            return End::SessionLost;
                        }
                        break;
                    }
                    st = state.changed() => match st {
                        s if s.is_terminated() => return End::SessionLost,
                        // Watches are re-registered on reconnection in the
                        // same session; re-read anyway in case events were
                        // missed while disconnected (ZOOKEEPER-4698).
                        SessionState::SyncConnected | SessionState::ConnectedReadOnly => break,
                        _ => {}
                    },
                }
            }
        }
    }

    /// One consistent read with watches on both nodes.
    async fn read(
        &self,
        client: &Client,
    ) -> Result<(ServerView, OneshotWatcher, OneshotWatcher), ZkError> {
        // `exists` with a watch fires on creation, data change and deletion.
        let (stat, running_watch) = client.check_and_watch_stat(&self.running_path).await?;
        let running = match stat {
            None => None,
            Some(_) => match client.get_data(&self.running_path).await {
                Ok((data, _)) => parse_running(&self.running_path, &data),
                // Deleted in between: the watch fires too.
                Err(ZkError::NoNode) => None,
                Err(err) => return Err(err),
            },
        };
        loop {
            match client.list_and_watch_children(&self.cluster_path).await {
                Ok((children, cluster_watch)) => {
                    let mut cluster: Vec<String> =
                        children.into_iter().filter(|c| is_host_port(c)).collect();
                    cluster.sort();
                    return Ok((
                        ServerView { running, cluster },
                        running_watch,
                        cluster_watch,
                    ));
                }
                Err(ZkError::NoNode) => {
                    // Watch for the node's creation instead.
                    let (stat, cluster_watch) =
                        client.check_and_watch_stat(&self.cluster_path).await?;
                    if stat.is_none() {
                        return Ok((
                            ServerView {
                                running,
                                cluster: Vec::new(),
                            },
                            running_watch,
                            cluster_watch,
                        ));
                    }
                    // Created in between: list it.
                }
                Err(err) => return Err(err),
            }
        }
    }
}

/// The `address` of a running node's JSON, if it is `host:port`. Unknown
/// fields (old servers' `cid`) and `active` are ignored, as the Java client
/// does.
pub(crate) fn parse_running(path: &str, data: &[u8]) -> Option<String> {
    let value: serde_json::Value = match serde_json::from_slice(data) {
        Ok(value) => value,
        Err(err) => {
            warn!(%path, error = %err, "canal cluster: running node is not JSON; ignoring it");
            return None;
        }
    };
    match value.get("address").and_then(|a| a.as_str()) {
        Some(address) if is_host_port(address) => Some(address.to_owned()),
        other => {
            warn!(%path, address = ?other, "canal cluster: running node has no host:port address; ignoring it");
            None
        }
    }
}

/// `host:port` as the Java client accepts it: exactly one `:` (so no IPv6),
/// a non-empty host and a numeric port.
pub(crate) fn is_host_port(text: &str) -> bool {
    text.parse::<canal_protocol::HostPort>()
        .is_ok_and(|a| !a.host.contains(':') && !text.trim_start().starts_with('['))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_port_like_the_java_client() {
        assert!(is_host_port("10.0.0.1:11111"));
        assert!(is_host_port("canal-1:11111"));
        assert!(!is_host_port("10.0.0.1"));
        assert!(!is_host_port(":11111"));
        assert!(!is_host_port("::1:11111"), "IPv6 is not supported");
        assert!(!is_host_port("host:port"));
    }

    #[test]
    fn running_address_ignores_active_and_unknown_fields() {
        let p = "/otter/canal/destinations/example/running";
        assert_eq!(
            parse_running(p, br#"{"active":true,"address":"10.0.0.1:11111"}"#).as_deref(),
            Some("10.0.0.1:11111")
        );
        assert_eq!(
            parse_running(p, br#"{"active":false,"address":"a:1","cid":7}"#).as_deref(),
            Some("a:1")
        );
        assert_eq!(parse_running(p, b"not json"), None);
        assert_eq!(parse_running(p, br#"{"active":true}"#), None);
    }
}
