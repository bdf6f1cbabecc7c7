//! [`ClusterConnector`]: a connector that finds the running Canal server
//! through ZooKeeper, follows failovers, and optionally elects one active
//! consumer among processes sharing a client id (reference §4.4).

mod consume;
mod locator;
pub(crate) mod retry;

use std::collections::VecDeque;
use std::fmt;
use std::time::Duration;

use canal_protocol::EMPTY_BATCH_ID;
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};
use zk_coord::election::{Election, ElectionSpec, Lease, Role};
use zk_coord::{paths, ClientRunningData, ZkConfig};

use crate::connector::{ConnectorOptions, Message, SimpleConnector};
use crate::error::{
    ClientError, ClusterError, Op, UnknownDestination, UNKNOWN_DESTINATION_ANSWERS,
};
use locator::{Locator, LocatorState};
use retry::{Backoff, Retry};

/// Default [`ClusterOptions::call_deadline`]: how long a single call keeps
/// retrying.
pub const DEFAULT_CALL_DEADLINE: Duration = Duration::from_secs(30);

/// Default [`ClusterOptions::initial_backoff`].
pub const DEFAULT_INITIAL_BACKOFF: Duration = Duration::from_millis(100);

/// Default [`ClusterOptions::max_backoff`].
pub const DEFAULT_MAX_BACKOFF: Duration = Duration::from_secs(5);

/// How often an in-flight GET re-checks the consumer lease (client
/// election), which can lapse without any event.
const LEASE_POLL: Duration = Duration::from_millis(100);

/// Retry settings of a [`ClusterConnector`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterOptions {
    /// How long a single call (`connect`, `subscribe`, `unsubscribe`,
    /// `get_without_ack`, `get`) keeps retrying retryable failures, counted
    /// from the call's start; `None` retries forever. With client election
    /// this also bounds the wait to become the active consumer. Default
    /// [`DEFAULT_CALL_DEADLINE`] (30 s).
    pub call_deadline: Option<Duration>,
    /// The same bound for the GETs of `consume` and `into_stream`, counted
    /// from the first failure of a streak (a success starts over; time spent
    /// as a standby consumer does not count). Default `None`: retry forever.
    pub consume_deadline: Option<Duration>,
    /// First pause before retrying. Default [`DEFAULT_INITIAL_BACKOFF`]
    /// (100 ms).
    pub initial_backoff: Duration,
    /// Pauses double after each failure up to this cap. Default
    /// [`DEFAULT_MAX_BACKOFF`] (5 s).
    pub max_backoff: Duration,
}

impl Default for ClusterOptions {
    fn default() -> Self {
        Self {
            call_deadline: Some(DEFAULT_CALL_DEADLINE),
            consume_deadline: None,
            initial_backoff: DEFAULT_INITIAL_BACKOFF,
            max_backoff: DEFAULT_MAX_BACKOFF,
        }
    }
}

/// A batch handed out and not yet acked or rolled back.
#[derive(Debug, Clone, Copy)]
struct Batch {
    /// The id the caller sees.
    local: i64,
    /// The id the server gave it.
    server: i64,
    /// The connection that fetched it.
    generation: u64,
}

/// A Canal connector for a destination served by a cluster of servers
/// coordinated through ZooKeeper.
///
/// Same calls as [`SimpleConnector`]; what it adds:
///
/// * **Discovery.** A background task reads and watches
///   `/otter/canal/destinations/{dest}/running` and connects to its
///   `address`; with no running node it falls back to the `host:port`
///   children of `/otter/canal/destinations/{dest}/cluster` (rotating
///   through them on failure, from a random start). `active` in the running
///   node is not checked, as in the Java client.
/// * **Transparent recovery.** On a retryable failure (connection closed,
///   timeout, i/o, server error 400 to GET or such as "not active on this
///   server", no server registered, ZooKeeper unreadable) the connection is dropped, and
///   after a pause (capped exponential backoff, [`ClusterOptions`], each
///   retry logged) the address is resolved again and a new connection is
///   opened: authenticate, SUBSCRIPTION with the last filter (if
///   [`ClusterConnector::subscribe`] was called), then `rollback(0)`, so
///   batches fetched but not acked are delivered again and acked ones are
///   not. Calls retry until their deadline and then fail with
///   [`ClusterError::GaveUp`]; non-retryable failures (bad credentials,
///   401/402, a subscription the server refuses such as a bad filter,
///   malformed replies) are returned at once, and so is a destination the
///   running server keeps saying it does not have
///   ([`ClusterError::UnknownDestination`], after
///   [`UNKNOWN_DESTINATION_ANSWERS`] answers in a row).
/// * **Following the running node.** When the running node names another
///   server, the connector moves there before its next request, also
///   interrupting a GET in flight.
/// * **Batch ids are the connector's own**, counting from 1 for its whole
///   life: a new server numbers its batches from 1 again, so a server's id
///   from before a failover could otherwise ack a different batch. Acking
///   a batch whose connection is gone fails with
///   [`ClusterError::BatchRolledBack`]; the batch is delivered again.
/// * **Client election** ([`ClusterConnector::with_client_election`]):
///   processes sharing a client id compete for
///   `/otter/canal/destinations/{dest}/{clientId}/running` with zk-coord's
///   [`Election`] (Canal's rule: the former owner re-takes a vanished node at
///   once, everyone else waits the grace delay [`ZkConfig::grace_ms`]). Only
///   while this process is active and its lease is valid does it talk to the
///   server; on losing the role it closes the connection without a word (no
///   ack, no rollback: the server keeps one cursor and one set of batch marks
///   per client id, so a rollback would rewind the new active consumer).
///
/// Requests are sequential (`&mut self`). Dropping the connector stops its
/// ZooKeeper tasks (the election is stopped in the background, releasing the
/// running node); prefer [`ClusterConnector::disconnect`].
///
/// # Example
///
/// ```no_run
/// use canal_client::{
///     CancellationToken, ClusterConnector, ConnectorOptions, ConsumeOptions, ZkConfig,
/// };
///
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let zk = ZkConfig {
///     servers: "zk1:2181,zk2:2181,zk3:2181".into(),
///     ..Default::default()
/// };
/// let options = ConnectorOptions {
///     username: "canal".into(),
///     password: Some("canal".into()),
///     ..Default::default()
/// };
/// // Several copies of this process may run; one consumes at a time.
/// let mut connector = ClusterConnector::new(zk, "example", options)
///     .with_client_election("10.0.0.5:7001");
/// connector.connect().await?;
/// connector.subscribe(Some(r"shop\..*")).await?;
/// let shutdown = CancellationToken::new();
/// connector
///     .consume(&ConsumeOptions::default(), &shutdown, |message| async move {
///         println!("batch {} with {} entries", message.id, message.entries.len());
///         Ok::<(), std::io::Error>(())
///     })
///     .await?;
/// connector.disconnect().await?;
/// # Ok(())
/// # }
/// ```
pub struct ClusterConnector {
    zk: ZkConfig,
    destination: String,
    options: ConnectorOptions,
    cluster: ClusterOptions,
    election_address: Option<String>,
    locator: Option<Locator>,
    election: Option<Election>,
    conn: Option<SimpleConnector>,
    /// Bumped by every new server connection.
    generation: u64,
    /// `Some(filter)` once `subscribe` was called (and not `unsubscribe`).
    subscription: Option<Option<String>>,
    batches: VecDeque<Batch>,
    next_batch_id: i64,
    /// Which cluster member to try next when there is no running node.
    fallback_turn: usize,
    /// Answers in a row from the running server that it has no such
    /// destination (see [`ClusterConnector::judge`]).
    unknown_answers: u32,
}

impl fmt::Debug for ClusterConnector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClusterConnector")
            .field("destination", &self.destination)
            .field("zk", &self.zk.servers)
            .field("options", &self.options)
            .field("cluster", &self.cluster)
            .field("election_address", &self.election_address)
            .field("started", &self.locator.is_some())
            .field("server", &self.server_address())
            .field("role", &self.election_role())
            .finish()
    }
}

impl Drop for ClusterConnector {
    fn drop(&mut self) {
        if let Some(election) = self.election.take() {
            if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                runtime.spawn(election.stop());
            }
        }
    }
}

impl ClusterConnector {
    /// A connector for `destination`, finding its servers through the
    /// ZooKeeper described by `zk`. `options` apply to every server
    /// connection, except that [`ConnectorOptions::rollback_on_connect`] is
    /// ignored: the connector always subscribes first and then rolls back,
    /// as the Java client does. Nothing is started until
    /// [`ClusterConnector::connect`].
    pub fn new(zk: ZkConfig, destination: impl Into<String>, options: ConnectorOptions) -> Self {
        Self {
            zk,
            destination: destination.into(),
            options,
            cluster: ClusterOptions::default(),
            election_address: None,
            locator: None,
            election: None,
            conn: None,
            generation: 0,
            subscription: None,
            batches: VecDeque::new(),
            next_batch_id: 1,
            fallback_turn: random_start(),
            unknown_answers: 0,
        }
    }

    /// Replaces the retry settings.
    pub fn with_cluster_options(mut self, cluster: ClusterOptions) -> Self {
        self.cluster = cluster;
        self
    }

    /// Enables client election: this process competes with every other
    /// process of the same destination and client id for
    /// `/otter/canal/destinations/{dest}/{clientId}/running` (ephemeral,
    /// `{"active":true,"address":<local_address>,"clientId":<id>}`) and only
    /// consumes while it holds it. `local_address` identifies this process
    /// (conventionally `ip:port`) and must differ between processes.
    ///
    /// Unlike the Java client, the address is not overwritten with the TCP
    /// connection's local address after connecting: ownership is decided by
    /// comparing the node's `address` with this one.
    pub fn with_client_election(mut self, local_address: impl Into<String>) -> Self {
        self.election_address = Some(local_address.into());
        self
    }

    /// The destination.
    pub fn destination(&self) -> &str {
        &self.destination
    }

    /// The per-connection options.
    pub fn options(&self) -> &ConnectorOptions {
        &self.options
    }

    /// The retry settings.
    pub fn cluster_options(&self) -> &ClusterOptions {
        &self.cluster
    }

    /// The ZooKeeper settings.
    pub fn zk_config(&self) -> &ZkConfig {
        &self.zk
    }

    /// True while a server connection is open.
    pub fn is_connected(&self) -> bool {
        self.conn
            .as_ref()
            .is_some_and(SimpleConnector::is_connected)
    }

    /// The server the open connection goes to.
    pub fn server_address(&self) -> Option<&str> {
        self.conn
            .as_ref()
            .filter(|c| c.is_connected())
            .map(SimpleConnector::address)
    }

    /// The running server's address as last read from ZooKeeper (`None`
    /// before [`ClusterConnector::connect`] or while there is no running
    /// node).
    pub fn running_address(&self) -> Option<String> {
        self.locator
            .as_ref()
            .and_then(|l| l.current().view)
            .and_then(|v| v.running)
    }

    /// The client election role, when client election is enabled and
    /// started.
    pub fn election_role(&self) -> Option<Role> {
        self.election.as_ref().map(Election::role)
    }

    /// True when started and allowed to consume now: always without client
    /// election; with it, while this process is the active consumer with a
    /// valid lease.
    pub fn is_active(&self) -> bool {
        self.locator.is_some() && self.may_consume()
    }

    /// Starts: watches the destination's servers in ZooKeeper, joins the
    /// client election if enabled, and opens a server connection
    /// (authenticate, SUBSCRIPTION if a filter was set before, `rollback(0)`),
    /// retrying until [`ClusterOptions::call_deadline`].
    ///
    /// With client election, `connect` waits until the election has settled;
    /// a standby process returns `Ok` without a server connection and
    /// connects once it becomes active (see [`ClusterConnector::is_active`]).
    /// Calling it again while started only makes sure a connection is open.
    /// On error everything is stopped again.
    pub async fn connect(&mut self) -> Result<(), ClusterError> {
        self.zk.validate().map_err(ClusterError::Config)?;
        if self.locator.is_none() {
            self.locator = Some(Locator::spawn(
                self.zk.clone(),
                &self.destination,
                self.backoff(),
            ));
        }
        if self.election.is_none() {
            if let Some(address) = self.election_address.clone() {
                self.election = Some(self.spawn_election(&address));
            }
        }
        let mut retry = self.retry(Op::Connect, self.cluster.call_deadline);
        let result = self.connect_inner(&mut retry).await;
        if result.is_err() {
            self.stop().await;
        }
        result
    }

    async fn connect_inner(&mut self, retry: &mut Retry) -> Result<(), ClusterError> {
        // Let the first ZooKeeper read finish (or fail) before trying.
        if let Some(locator) = &self.locator {
            let mut servers = locator.subscribe();
            tokio::select! {
                _ = servers.wait_for(|s| s.view.is_some() || s.error.is_some()) => {}
                () = sleep_until_opt(retry.deadline()) => {}
            }
        }
        if let Some(election) = &self.election {
            let mut role = election.watch();
            let settled = tokio::select! {
                r = role.wait_for(|r| *r != Role::Starting) => r.is_ok(),
                () = sleep_until_opt(retry.deadline()) => false,
            };
            if !settled {
                let reason = self
                    .locator
                    .as_ref()
                    .and_then(|l| l.current().error)
                    .unwrap_or_else(|| "the client election did not start".into());
                return Err(ClusterError::GaveUp {
                    op: retry.op,
                    attempts: retry.attempts,
                    elapsed: retry.elapsed(),
                    last: Box::new(ClusterError::ZooKeeperUnavailable {
                        destination: self.destination.clone(),
                        reason,
                    }),
                });
            }
        }
        let never = CancellationToken::new();
        loop {
            if !self.may_consume() {
                info!(
                    destination = %self.destination,
                    role = ?self.election_role(),
                    "canal cluster: not the active consumer; connecting once active"
                );
                return Ok(());
            }
            match self.try_connect().await {
                Ok(_) => return Ok(()),
                Err(err) => {
                    self.recover(retry, err, &never).await?;
                }
            }
        }
    }

    /// Subscribes with `filter` (see [`SimpleConnector::subscribe`]) and
    /// remembers it, so every later connection subscribes the same way
    /// before rolling back. Retries until the call deadline.
    ///
    /// With client election, a standby process only remembers the filter
    /// (sending it would change the subscription of the active process,
    /// which shares the client id); it is sent on becoming active.
    pub async fn subscribe(&mut self, filter: Option<&str>) -> Result<(), ClusterError> {
        self.started()?;
        let previous = self.subscription.replace(filter.map(str::to_owned));
        let result = self.sync_subscription(Op::Subscribe).await;
        if result.is_err() {
            self.subscription = previous;
        }
        result
    }

    /// Unsubscribes (see [`SimpleConnector::unsubscribe`]) and forgets the
    /// filter. Retries until the call deadline. A standby process (client
    /// election) only forgets the filter.
    pub async fn unsubscribe(&mut self) -> Result<(), ClusterError> {
        self.started()?;
        let previous = self.subscription.take();
        let result = self.sync_subscription(Op::Unsubscribe).await;
        if result.is_err() {
            self.subscription = previous;
        }
        result
    }

    async fn sync_subscription(&mut self, op: Op) -> Result<(), ClusterError> {
        let never = CancellationToken::new();
        let mut retry = self.retry(op, self.cluster.call_deadline);
        loop {
            if !self.may_consume() {
                return Ok(());
            }
            let fresh = match self.try_connect().await {
                Ok(fresh) => fresh,
                Err(err) => {
                    self.recover(&mut retry, err, &never).await?;
                    continue;
                }
            };
            let filter = self.subscription.clone().flatten();
            let Some(conn) = self.conn.as_mut() else {
                continue;
            };
            let sent = match op {
                // A new connection subscribed already.
                Op::Subscribe if fresh => Ok(()),
                Op::Subscribe => conn.subscribe(filter.as_deref()).await,
                _ => conn.unsubscribe().await,
            };
            match sent {
                Ok(()) => {
                    self.unknown_answers = 0;
                    return Ok(());
                }
                Err(err) => {
                    let address = conn.address().to_owned();
                    let err = self.judge(err, &address);
                    self.recover(&mut retry, err, &never).await?;
                }
            }
        }
    }

    /// Fetches the next batch without acking it (see
    /// [`SimpleConnector::get_without_ack`]), reconnecting and retrying
    /// until the call deadline. The batch id is the connector's own (see the
    /// type docs); [`EMPTY_BATCH_ID`] still means "nothing".
    ///
    /// After a reconnect, batches fetched earlier and not acked are no longer
    /// ackable ([`ClusterError::BatchRolledBack`]); they come again.
    pub async fn get_without_ack(
        &mut self,
        batch_size: i32,
        timeout: Option<Duration>,
    ) -> Result<Message, ClusterError> {
        self.started()?;
        let never = CancellationToken::new();
        let mut retry = self.retry(Op::Get, self.cluster.call_deadline);
        self.get_inner(batch_size, timeout, &mut retry, true, &never)
            .await?
            .ok_or(ClusterError::NotConnected)
    }

    /// [`ClusterConnector::get_without_ack`] followed by an ack: at-most-once
    /// delivery. A message is returned only once its ack was written; if the
    /// ack cannot be written, the batch is fetched again (it was not acked).
    pub async fn get(
        &mut self,
        batch_size: i32,
        timeout: Option<Duration>,
    ) -> Result<Message, ClusterError> {
        self.started()?;
        let never = CancellationToken::new();
        let mut retry = self.retry(Op::Get, self.cluster.call_deadline);
        loop {
            let message = self
                .get_inner(batch_size, timeout, &mut retry, true, &never)
                .await?
                .ok_or(ClusterError::NotConnected)?;
            if message.is_empty() {
                return Ok(message);
            }
            match self.ack_inner(message.id).await {
                Ok(()) => return Ok(message),
                // Lost the consumer role in between: the next round waits.
                Err(ClusterError::BatchRolledBack { .. }) => {}
                Err(err) => {
                    self.recover(&mut retry, err, &never).await?;
                }
            }
        }
    }

    /// Acks a batch returned by this connector.
    ///
    /// Sent on the connection that fetched the batch, if it is still open
    /// (and, with client election, this process is still active); otherwise,
    /// or if writing the ack fails, the batch can no longer be acked and
    /// [`ClusterError::BatchRolledBack`] is returned: it will be delivered
    /// again. Like [`SimpleConnector::ack`], success means the ack was
    /// written; `ack(-1)` does nothing, and ids this connector never
    /// returned are refused with [`ClientError::InvalidBatchId`]. Never
    /// retried: acking on a new connection could ack a different batch.
    pub async fn ack(&mut self, batch_id: i64) -> Result<(), ClusterError> {
        match self.ack_inner(batch_id).await {
            Err(ClusterError::Client(err)) if err.is_retryable() => {
                warn!(
                    destination = %self.destination,
                    batch_id,
                    error = %err,
                    "canal cluster: ack not written; the batch will be delivered again"
                );
                Err(ClusterError::BatchRolledBack { batch_id })
            }
            other => other,
        }
    }

    async fn ack_inner(&mut self, batch_id: i64) -> Result<(), ClusterError> {
        self.started()?;
        if batch_id == EMPTY_BATCH_ID {
            return Ok(());
        }
        self.check_issued(batch_id)?;
        let Some(pos) = self.batches.iter().position(|b| b.local == batch_id) else {
            return Err(ClusterError::BatchRolledBack { batch_id });
        };
        let batch = self.batches[pos];
        if batch.generation != self.generation || !self.is_connected() {
            self.batches.remove(pos);
            return Err(ClusterError::BatchRolledBack { batch_id });
        }
        if !self.may_consume() {
            self.drop_connection("not the active consumer any more; batch not acked");
            return Err(ClusterError::BatchRolledBack { batch_id });
        }
        let Some(conn) = self.conn.as_mut() else {
            return Err(ClusterError::BatchRolledBack { batch_id });
        };
        match conn.ack(batch.server).await {
            Ok(()) => {
                self.batches.remove(pos);
                Ok(())
            }
            Err(err) => {
                self.drop_connection("ack failed");
                Err(err.into())
            }
        }
    }

    /// Rolls back one batch, or all un-acked batches with `batch_id` 0 (see
    /// [`SimpleConnector::rollback`]); they are delivered again.
    ///
    /// Never fails for connection trouble: if the connection that fetched
    /// the batch is gone, or writing fails, the next connection's
    /// `rollback(0)` does the same. A standby process (client election)
    /// sends nothing: it would rewind the active process's batches.
    pub async fn rollback(&mut self, batch_id: i64) -> Result<(), ClusterError> {
        self.started()?;
        if batch_id == EMPTY_BATCH_ID {
            return Ok(());
        }
        if batch_id != 0 {
            self.check_issued(batch_id)?;
        }
        if !self.may_consume() {
            self.drop_connection("not the active consumer; nothing rolled back on the server");
            return Ok(());
        }
        let generation = self.generation;
        let server_id = if batch_id == 0 {
            Some(0)
        } else {
            self.batches
                .iter()
                .find(|b| b.local == batch_id && b.generation == generation)
                .map(|b| b.server)
        };
        let (Some(server_id), Some(conn)) = (server_id, self.conn.as_mut()) else {
            return Ok(());
        };
        match conn.rollback(server_id).await {
            Ok(()) => {
                if batch_id == 0 {
                    self.batches.clear();
                } else {
                    self.batches.retain(|b| b.local != batch_id);
                }
            }
            Err(err) => {
                debug!(destination = %self.destination, error = %err, "canal cluster: rollback not written; the next connection rolls back");
                self.drop_connection("rollback failed");
            }
        }
        Ok(())
    }

    /// Sends `rollback(0)` and closes the server connection (a standby
    /// process just closes it), then leaves the client election (deleting
    /// the client running node if it is ours, so another process takes over
    /// after its grace delay) and stops watching ZooKeeper. The remembered
    /// filter is kept for a later [`ClusterConnector::connect`]. Everything
    /// is stopped even if the rollback fails; its error is returned.
    pub async fn disconnect(&mut self) -> Result<(), ClusterError> {
        let active = self.may_consume();
        let result = match self.conn.take() {
            Some(mut conn) if active => conn.disconnect().await.map_err(ClusterError::from),
            _ => Ok(()),
        };
        self.stop().await;
        info!(destination = %self.destination, "canal cluster: disconnected");
        result
    }

    async fn stop(&mut self) {
        self.drop_connection("stopping");
        if let Some(election) = self.election.take() {
            election.stop().await;
        }
        self.locator = None;
    }

    // ---- internals ----

    fn started(&self) -> Result<&Locator, ClusterError> {
        self.locator.as_ref().ok_or(ClusterError::NotConnected)
    }

    fn may_consume(&self) -> bool {
        self.election.as_ref().is_none_or(Election::may_serve)
    }

    fn backoff(&self) -> Backoff {
        Backoff::new(self.cluster.initial_backoff, self.cluster.max_backoff)
    }

    fn retry(&self, op: Op, limit: Option<Duration>) -> Retry {
        Retry::new(op, limit, self.backoff())
    }

    fn check_issued(&self, batch_id: i64) -> Result<(), ClusterError> {
        if batch_id <= 0 || batch_id >= self.next_batch_id {
            return Err(ClientError::InvalidBatchId(batch_id).into());
        }
        Ok(())
    }

    fn spawn_election(&self, local_address: &str) -> Election {
        let client_id = self.options.client_id;
        let data = zk_coord::to_canal_json(&ClientRunningData {
            active: true,
            address: local_address.to_owned(),
            client_id,
        });
        Election::spawn(
            self.zk.clone(),
            ElectionSpec {
                path: paths::client_running(&self.destination, client_id),
                candidate_path: None,
                address: local_address.to_owned(),
                data,
            },
        )
    }

    /// Closes the server connection without sending anything; its batches
    /// can no longer be acked.
    fn drop_connection(&mut self, why: &str) {
        if let Some(conn) = self.conn.take() {
            if conn.is_connected() {
                info!(
                    destination = %self.destination,
                    server = %conn.address(),
                    reason = why,
                    "canal cluster: closing server connection"
                );
            }
        }
        self.batches.clear();
    }

    /// Makes sure a connection to the right server is open: keeps the
    /// current one unless it broke or the running node names another server;
    /// otherwise resolves the address and opens a new one (authenticate,
    /// SUBSCRIPTION with the remembered filter, `rollback(0)`). `Ok(true)`
    /// when a new connection was opened.
    async fn try_connect(&mut self) -> Result<bool, ClusterError> {
        let state: LocatorState = self.started()?.current();
        let running = state.view.as_ref().and_then(|v| v.running.clone());
        let current = self
            .conn
            .as_ref()
            .map(|c| (c.is_connected(), c.address().to_owned()));
        match (current, &running) {
            (Some((true, from)), Some(to)) if from != *to => {
                info!(
                    destination = %self.destination,
                    %from,
                    %to,
                    "canal cluster: running server moved; reconnecting"
                );
                self.drop_connection("running server moved");
            }
            (Some((true, _)), _) => return Ok(false),
            (Some((false, _)), _) => self.drop_connection("connection closed"),
            (None, _) => {}
        }
        let address = match (running, &state.view) {
            (Some(running), _) => running,
            (None, Some(view)) if !view.cluster.is_empty() => {
                let pick = view.cluster[self.fallback_turn % view.cluster.len()].clone();
                debug!(destination = %self.destination, server = %pick, "canal cluster: no running node; trying a cluster member");
                pick
            }
            (None, Some(_)) => {
                return Err(ClusterError::NoServer {
                    destination: self.destination.clone(),
                })
            }
            (None, None) => {
                return Err(ClusterError::ZooKeeperUnavailable {
                    destination: self.destination.clone(),
                    reason: state
                        .error
                        .unwrap_or_else(|| "first read not finished".into()),
                })
            }
        };
        let options = ConnectorOptions {
            rollback_on_connect: false,
            ..self.options.clone()
        };
        let mut conn = SimpleConnector::new(address.clone(), self.destination.clone(), options);
        let subscription = self.subscription.clone();
        let opened = async {
            conn.connect().await?;
            if let Some(filter) = &subscription {
                conn.subscribe(filter.as_deref()).await?;
            }
            conn.rollback(0).await
        }
        .await;
        if let Err(err) = opened {
            self.fallback_turn = self.fallback_turn.wrapping_add(1);
            return Err(self.judge(err, &address));
        }
        if subscription.is_some() {
            self.unknown_answers = 0;
        }
        self.generation += 1;
        self.batches.clear();
        self.conn = Some(conn);
        info!(
            destination = %self.destination,
            server = %address,
            subscribed = subscription.is_some(),
            "canal cluster: connected, rolled back un-acked batches"
        );
        Ok(true)
    }

    /// After a failed attempt: returns the error if it is not retryable or
    /// the next pause would pass the deadline; otherwise logs, pauses
    /// (waking early if the running server changes) and returns `Ok(true)`,
    /// or `Ok(false)` if `cancel` fired during the pause.
    async fn recover(
        &mut self,
        retry: &mut Retry,
        err: ClusterError,
        cancel: &CancellationToken,
    ) -> Result<bool, ClusterError> {
        self.drop_connection("request failed");
        if !err.is_retryable() {
            return Err(err);
        }
        retry.attempts += 1;
        let delay = retry.backoff.next_delay();
        if retry.deadline().is_some_and(|d| Instant::now() + delay > d) {
            warn!(
                destination = %self.destination,
                op = %retry.op,
                attempts = retry.attempts,
                error = %err,
                "canal cluster: giving up at the deadline"
            );
            return Err(ClusterError::GaveUp {
                op: retry.op,
                attempts: retry.attempts,
                elapsed: retry.elapsed(),
                last: Box::new(err),
            });
        }
        warn!(
            destination = %self.destination,
            op = %retry.op,
            attempt = retry.attempts,
            retry_in_ms = delay.as_millis() as u64,
            error = %err,
            "canal cluster: retrying"
        );
        let mut servers = self.locator.as_ref().map(Locator::subscribe);
        tokio::select! {
            () = cancel.cancelled() => Ok(false),
            () = tokio::time::sleep(delay) => Ok(true),
            () = view_changed(servers.as_mut()) => {
                debug!(destination = %self.destination, "canal cluster: servers changed in ZooKeeper; retrying now");
                Ok(true)
            }
        }
    }

    /// Waits until this process may consume (at once without client
    /// election), closing the server connection while it may not.
    /// `bounded`: give up at the retry deadline; otherwise wait as long as
    /// it takes (and start a fresh retry streak afterwards). `Ok(false)`:
    /// cancelled.
    async fn wait_may_consume(
        &mut self,
        retry: &mut Retry,
        bounded: bool,
        cancel: &CancellationToken,
    ) -> Result<bool, ClusterError> {
        let (mut role, lease) = match &self.election {
            Some(election) => (election.watch(), election.lease()),
            None => return Ok(true),
        };
        let mut waited = false;
        loop {
            let current = role.borrow_and_update().clone();
            if current == Role::Active && lease.is_valid() {
                if waited {
                    info!(destination = %self.destination, "canal cluster: now the active consumer");
                    if !bounded {
                        retry.reset();
                    }
                }
                return Ok(true);
            }
            self.drop_connection("not the active consumer; nothing acked");
            if !waited {
                info!(destination = %self.destination, role = ?current, "canal cluster: waiting to become the active consumer");
                waited = true;
            }
            let owner = match &current {
                Role::Standby { owner } => owner.clone(),
                _ => None,
            };
            if current == Role::Stopped {
                return Err(ClusterError::NotActive { owner });
            }
            let deadline = if bounded { retry.deadline() } else { None };
            tokio::select! {
                () = cancel.cancelled() => return Ok(false),
                () = sleep_until_opt(deadline) => {
                    return Err(ClusterError::GaveUp {
                        op: retry.op,
                        attempts: retry.attempts,
                        elapsed: retry.elapsed(),
                        last: Box::new(ClusterError::NotActive { owner }),
                    });
                }
                changed = role.changed(), if current != Role::Active => {
                    if changed.is_err() {
                        return Err(ClusterError::NotActive { owner });
                    }
                }
                // Active but the lease lapsed: it is renewed without a role
                // change, so look again shortly.
                () = tokio::time::sleep(LEASE_POLL), if current == Role::Active => {}
            }
        }
    }

    /// One GET with reconnection and retries. `Ok(None)`: cancelled (checked
    /// before each GET and during pauses, never during a GET).
    async fn get_inner(
        &mut self,
        batch_size: i32,
        timeout: Option<Duration>,
        retry: &mut Retry,
        bounded_standby: bool,
        cancel: &CancellationToken,
    ) -> Result<Option<Message>, ClusterError> {
        loop {
            if cancel.is_cancelled() {
                return Ok(None);
            }
            if !self
                .wait_may_consume(retry, bounded_standby, cancel)
                .await?
            {
                return Ok(None);
            }
            if let Err(err) = self.try_connect().await {
                if !self.recover(retry, err, cancel).await? {
                    return Ok(None);
                }
                continue;
            }
            let mut servers = self.locator.as_ref().map(Locator::subscribe);
            let authority = self.election.as_ref().map(|e| (e.watch(), e.lease()));
            let Some(conn) = self.conn.as_mut() else {
                continue;
            };
            let address = conn.address().to_owned();
            let outcome = tokio::select! {
                r = conn.get_without_ack(batch_size, timeout) => Some(r),
                () = moved_away(servers.as_mut(), &address) => None,
                () = authority_lost(authority) => None,
            };
            match outcome {
                // The loop reconnects, or waits to be active again.
                None => self
                    .drop_connection("GET interrupted: running server moved or consumer role lost"),
                Some(Ok(message)) => {
                    retry.reset();
                    self.unknown_answers = 0;
                    return Ok(Some(self.register(message)));
                }
                Some(Err(err)) => {
                    let err = self.judge(err, &address);
                    if !self.recover(retry, err, cancel).await? {
                        return Ok(None);
                    }
                }
            }
        }
    }

    /// A failure of a request to `server`. Canal answers `should start first`
    /// both for a destination it does not have and for one it is still
    /// starting, so only answers from the server the running node names
    /// count (a cluster member tried without a running node may well be a
    /// standby), and only [`UNKNOWN_DESTINATION_ANSWERS`] of them in a row
    /// (each logged) make the destination unknown for good:
    /// [`ClusterError::UnknownDestination`].
    fn judge(&mut self, err: ClientError, server: &str) -> ClusterError {
        if !err.is_unknown_destination() || self.running_address().as_deref() != Some(server) {
            return err.into();
        }
        self.unknown_answers += 1;
        let message = match &err {
            ClientError::Server { message, .. } => message.clone(),
            other => other.to_string(),
        };
        if self.unknown_answers >= UNKNOWN_DESTINATION_ANSWERS {
            warn!(destination = %self.destination, %server, answers = self.unknown_answers, %message, "canal cluster: the running server does not have the destination; giving up");
            return ClusterError::UnknownDestination(UnknownDestination {
                destination: self.destination.clone(),
                server: server.to_owned(),
                attempts: self.unknown_answers,
                message,
            });
        }
        warn!(
            destination = %self.destination,
            %server,
            answer = self.unknown_answers,
            of = UNKNOWN_DESTINATION_ANSWERS,
            %message,
            "canal cluster: the running server says it does not have the destination"
        );
        err.into()
    }

    /// Gives a fetched batch the connector's own id and remembers it.
    fn register(&mut self, message: Message) -> Message {
        if message.is_empty() {
            return message;
        }
        let local = self.next_batch_id;
        self.next_batch_id += 1;
        self.batches.push_back(Batch {
            local,
            server: message.id,
            generation: self.generation,
        });
        debug!(destination = %self.destination, batch_id = local, server_batch_id = message.id, "canal cluster: batch fetched");
        Message {
            id: local,
            entries: message.entries,
        }
    }
}

/// A start for rotating through cluster members that differs between
/// processes (the Java client shuffles the list).
fn random_start() -> usize {
    use std::hash::BuildHasher;
    std::collections::hash_map::RandomState::new().hash_one(std::process::id()) as usize
}

async fn sleep_until_opt(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

/// Resolves when the servers ZooKeeper names change.
async fn view_changed(servers: Option<&mut watch::Receiver<LocatorState>>) {
    let Some(rx) = servers else {
        return std::future::pending().await;
    };
    let before = rx.borrow().view.clone();
    if rx.wait_for(|s| s.view != before).await.is_err() {
        std::future::pending().await
    }
}

/// Resolves when the running node names a server other than `address`.
async fn moved_away(servers: Option<&mut watch::Receiver<LocatorState>>, address: &str) {
    let Some(rx) = servers else {
        return std::future::pending().await;
    };
    let moved = rx.wait_for(|s| {
        s.view
            .as_ref()
            .and_then(|v| v.running.as_deref())
            .is_some_and(|r| r != address)
    });
    if moved.await.is_err() {
        std::future::pending().await
    }
}

/// Resolves when this process may no longer consume: its role is not
/// Active or its lease lapsed. Never without client election.
async fn authority_lost(authority: Option<(watch::Receiver<Role>, Lease)>) {
    let Some((mut role, lease)) = authority else {
        return std::future::pending().await;
    };
    loop {
        if *role.borrow_and_update() != Role::Active || !lease.is_valid() {
            return;
        }
        tokio::select! {
            changed = role.changed() => {
                if changed.is_err() {
                    return;
                }
            }
            () = tokio::time::sleep(LEASE_POLL) => {}
        }
    }
}
