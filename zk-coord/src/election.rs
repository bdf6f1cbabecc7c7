//! Canal's running-node election (reference §4.3) with fencing.
//!
//! One ephemeral node (e.g. `/otter/canal/destinations/{dest}/running`) names the owner. Whoever
//! creates it owns the work. When it disappears, the former owner may re-take it at once; every
//! other candidate waits the grace delay first, so a short "fake death" does not move the work.
//! Writing `"active":false` with the owner's address into the node makes the owner release it.
//! A release is not a death: the owner marks its node `"active":false` before deleting it, and a
//! standby that saw that contends at once (a hand-over in well under a second instead of the
//! grace delay); the releasing owner stays out of the contest for a few seconds, then watches the
//! new owner like any standby.
//!
//! Fencing (Canal has none): the owner's [`Role`] drops to [`Role::Paused`] as soon as the
//! connection is lost, and to [`Role::Fenced`] when the session expires or has been disconnected
//! for a whole session timeout. On top of the role, the owner holds a [`Lease`] renewed by a round
//! trip to ZooKeeper every quarter session timeout: a lease is valid until the *send* time of the
//! last successful round trip plus the session timeout, which is before the server can expire the
//! session, and a standby only contends a grace delay after that. So a process that was frozen
//! (SIGSTOP, a long pause) stops serving the moment it wakes, before it even notices why.
//!
//! Role and lease narrow the window; they cannot close it for a write already on its way. So a
//! win is one multi (create the running node, bump its parent's data version) and the owner
//! publishes a [`Fence`] ([`Election::fencing`]): writes made as one multi behind its checks fail
//! as a whole once another candidate has won, whatever this process believes.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};
use zookeeper_client::{Client, CreateMode, Error as ZkError, EventType, SessionState};

use crate::fence::{Fence, Fencing};
use crate::{ensure_path, ZkConfig};

/// What this candidate is doing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Role {
    /// Connecting to ZooKeeper.
    Starting,
    /// Another candidate (or nobody yet) owns the node.
    Standby {
        /// The owner's address, when known.
        owner: Option<String>,
    },
    /// This candidate owns the node in a live, connected session.
    Active,
    /// This candidate owns the node but the connection is lost: do not hand out work.
    Paused,
    /// The session is gone (or assumed gone): stop the work now.
    Fenced,
    /// The election was stopped.
    Stopped,
}

fn clock() -> Instant {
    static START: OnceLock<Instant> = OnceLock::new();
    *START.get_or_init(Instant::now)
}

fn now_ns() -> u64 {
    clock().elapsed().as_nanos() as u64
}

/// A lease that is valid only while ZooKeeper has recently confirmed this session.
#[derive(Debug, Clone, Default)]
pub struct Lease(Arc<AtomicU64>);

impl Lease {
    /// Whether the owner may hand out work now.
    pub fn is_valid(&self) -> bool {
        now_ns() < self.0.load(Ordering::Acquire)
    }

    fn extend_from(&self, sent: u64, session: Duration) {
        let until = sent + session.as_nanos() as u64;
        self.0.fetch_max(until, Ordering::AcqRel);
    }

    fn revoke(&self) {
        self.0.store(0, Ordering::Release);
    }
}

/// What to elect on.
#[derive(Debug, Clone)]
pub struct ElectionSpec {
    /// The running node.
    pub path: String,
    /// An ephemeral candidate node to register while the election runs (Canal's
    /// `/destinations/{dest}/cluster/{ip:port}`), if any.
    pub candidate_path: Option<String>,
    /// This candidate's address (compared with the node's `address`).
    pub address: String,
    /// The JSON written into the running node when this candidate wins.
    pub data: Vec<u8>,
}

enum HoldEnd {
    Stop,
    Released,
    Deleted,
    SessionLost,
}

/// A running election. Dropping it does not stop it; call [`Election::stop`].
pub struct Election {
    role: watch::Receiver<Role>,
    lease: Lease,
    fence: watch::Receiver<Option<Fence>>,
    cancel: CancellationToken,
    release: mpsc::Sender<()>,
    task: tokio::task::JoinHandle<()>,
}

impl std::fmt::Debug for Election {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Election")
            .field("role", &*self.role.borrow())
            .finish()
    }
}

/// How long an owner that released its node stays out of the contest (at most the grace and
/// half a session).
const RELEASE_BACKOFF: Duration = Duration::from_secs(3);

/// `data` (the running node's JSON) with `"active":false`: the node of an owner handing over.
fn released_data(data: &[u8]) -> Vec<u8> {
    match serde_json::from_slice::<serde_json::Value>(data) {
        Ok(serde_json::Value::Object(mut m)) => {
            m.insert("active".into(), serde_json::Value::Bool(false));
            serde_json::to_vec(&m).unwrap_or_else(|_| data.to_vec())
        }
        _ => data.to_vec(),
    }
}

fn node_owner(data: &[u8]) -> (Option<String>, bool) {
    match serde_json::from_slice::<serde_json::Value>(data) {
        Ok(v) => (
            v.get("address")
                .and_then(|a| a.as_str())
                .map(str::to_string),
            v.get("active").and_then(|a| a.as_bool()).unwrap_or(true),
        ),
        Err(_) => (None, true),
    }
}

impl Election {
    /// Starts competing for `spec.path` with sessions from `cfg`.
    pub fn spawn(cfg: ZkConfig, spec: ElectionSpec) -> Self {
        let (role_tx, role) = watch::channel(Role::Starting);
        let lease = Lease::default();
        let (fence_tx, fence) = watch::channel(None);
        let cancel = CancellationToken::new();
        // One hand-over per request: a request while one is pending is refused, not queued.
        let (release, release_rx) = mpsc::channel(1);
        let runner = Runner {
            cfg,
            spec,
            role: role_tx,
            lease: lease.clone(),
            fence: fence_tx,
            cancel: cancel.clone(),
            release: release_rx,
            former_owner: false,
        };
        let task = tokio::spawn(runner.run());
        Self {
            role,
            lease,
            fence,
            cancel,
            release,
            task,
        }
    }

    /// The current role.
    pub fn role(&self) -> Role {
        self.role.borrow().clone()
    }

    /// A watch on the role.
    pub fn watch(&self) -> watch::Receiver<Role> {
        self.role.clone()
    }

    /// The owner's lease; check [`Lease::is_valid`] before handing out work.
    pub fn lease(&self) -> Lease {
        self.lease.clone()
    }

    /// Whether this candidate may hand out work now: it owns the node and the lease is valid.
    pub fn may_serve(&self) -> bool {
        *self.role.borrow() == Role::Active && self.lease.is_valid()
    }

    /// [`Election::may_serve`] as a check to share (a store's hand-out gate): true while this
    /// candidate is active and its lease is valid, for as long as the election runs.
    pub fn serving_gate(&self) -> Arc<dyn Fn() -> bool + Send + Sync> {
        let (role, lease) = (self.role.clone(), self.lease.clone());
        Arc::new(move || *role.borrow() == Role::Active && lease.is_valid())
    }

    /// The ownership this candidate holds now, for writes that must fail once it ended (see
    /// [`Fence`]); `None` while it holds none. It is published before the role turns
    /// [`Role::Active`] and withdrawn before the role leaves it.
    pub fn fencing(&self) -> Option<Fencing> {
        Fencing::bind(self.fence.clone())
    }

    /// Hands the node over voluntarily (it is deleted; this candidate then waits the grace delay
    /// like everyone else before contending again).
    pub async fn release(&self) {
        let _ = self.release.send(()).await;
    }

    /// A handle that asks for a voluntary hand-over (as [`Election::release`]) from elsewhere,
    /// e.g. an admin endpoint.
    pub fn releaser(&self) -> mpsc::Sender<()> {
        self.release.clone()
    }

    /// Stops the election, deleting the running node if it is ours and the candidate node.
    pub async fn stop(self) {
        self.cancel.cancel();
        let _ = self.task.await;
    }
}

struct Runner {
    cfg: ZkConfig,
    spec: ElectionSpec,
    role: watch::Sender<Role>,
    lease: Lease,
    /// The fence of the current ownership (`None` while not owning).
    fence: watch::Sender<Option<Fence>>,
    cancel: CancellationToken,
    release: mpsc::Receiver<()>,
    /// This candidate held the node last and did not release it voluntarily.
    former_owner: bool,
}

impl Runner {
    fn set_role(&self, r: Role) {
        if *self.role.borrow() != r {
            info!(path = %self.spec.path, role = ?r, "election role");
            self.role.send_replace(r);
        }
    }

    async fn run(mut self) {
        let mut backoff = Duration::from_millis(200);
        let mut release_wait: Option<Instant> = None;
        loop {
            if self.cancel.is_cancelled() {
                self.set_role(Role::Stopped);
                return;
            }
            let client = tokio::select! {
                _ = self.cancel.cancelled() => { self.set_role(Role::Stopped); return; }
                c = self.cfg.connect() => c,
            };
            let client = match client {
                Ok(c) => {
                    backoff = Duration::from_millis(200);
                    c
                }
                Err(e) => {
                    warn!(path = %self.spec.path, error = %e, "ZooKeeper unreachable; retrying");
                    tokio::select! {
                        _ = self.cancel.cancelled() => { self.set_role(Role::Stopped); return; }
                        _ = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                    continue;
                }
            };
            let end = self.session(&client, &mut release_wait).await;
            match end {
                HoldEnd::Stop => {
                    self.cleanup(&client).await;
                    self.lease.revoke();
                    self.set_role(Role::Stopped);
                    return;
                }
                _ => {
                    // Session lost: new session, contend again as former owner if we were one.
                    continue;
                }
            }
        }
    }

    async fn cleanup(&self, client: &Client) {
        if let Ok((data, stat)) = client.get_data(&self.spec.path).await {
            let (owner, _) = node_owner(&data);
            if owner.as_deref() == Some(&self.spec.address)
                && stat.ephemeral_owner == client.session_id().0
            {
                // A stop is a hand-over, not a death: standbys need not wait the grace.
                let released = released_data(&self.spec.data);
                let _ = client
                    .set_data(&self.spec.path, &released, Some(stat.version))
                    .await;
                let _ = client.delete(&self.spec.path, None).await;
            }
        }
        if let Some(c) = &self.spec.candidate_path {
            let _ = client.delete(c, None).await;
        }
    }

    async fn register_candidate(&self, client: &Client) {
        let Some(c) = &self.spec.candidate_path else {
            return;
        };
        if let Some((parent, _)) = c.rsplit_once('/') {
            let _ = ensure_path(client, parent).await;
        }
        let opts = CreateMode::Ephemeral.with_acls(crate::acl::for_path(client, c));
        match client.create(c, &[], &opts).await {
            Ok(_) => {}
            Err(ZkError::NodeExists) => {
                // Left by our previous session, which has not expired yet: take it over.
                let _ = client.delete(c, None).await;
                let _ = client.create(c, &[], &opts).await;
            }
            Err(e) => warn!(path = %c, error = %e, "could not register candidate node"),
        }
    }

    /// Runs one session: contend, hold, watch. Returns when the session is lost or on stop.
    async fn session(&mut self, client: &Client, release_wait: &mut Option<Instant>) -> HoldEnd {
        let mut state = client.state_watcher();
        self.register_candidate(client).await;
        if let Some((parent, _)) = self.spec.path.rsplit_once('/') {
            if let Err(e) = ensure_path(client, parent).await {
                warn!(error = %e, "could not create the running node's parent");
            }
        }
        let opts = CreateMode::Ephemeral.with_acls(crate::acl::for_path(client, &self.spec.path));
        let mut refused_logged = false;
        loop {
            if let Some(t) = release_wait.take() {
                // After a release, give the standbys (who contend at once) the first chance, but
                // not the whole grace: past this the node is watched like any other, so a later
                // crash of the new owner is waited out from when it happens.
                // Shorter than a session, so the node of a new owner that crashes cannot vanish
                // (its session expires first) before this candidate watches it again.
                let until = t + self
                    .cfg
                    .grace()
                    .min(RELEASE_BACKOFF)
                    .min(self.cfg.session_timeout() / 2);
                tokio::select! {
                    _ = self.cancel.cancelled() => return HoldEnd::Stop,
                    _ = tokio::time::sleep_until(until.into()) => {}
                }
            }
            if state.peek_state().is_terminated() {
                return HoldEnd::SessionLost;
            }
            let sent = now_ns();
            match self.take_node(client, &opts).await {
                Ok(fence) => {
                    self.lease.extend_from(sent, self.cfg.session_timeout());
                    self.former_owner = true;
                    self.fence.send_replace(Some(fence));
                    self.set_role(Role::Active);
                    let end = self.hold(client, &mut state).await;
                    self.fence.send_replace(None);
                    match end {
                        HoldEnd::Stop => return HoldEnd::Stop,
                        HoldEnd::Released => {
                            self.lease.revoke();
                            // Mark the node released before deleting it: a standby that saw
                            // `"active":false` takes over at once instead of waiting the grace
                            // delay meant for a crash.
                            let released = released_data(&self.spec.data);
                            let _ = client.set_data(&self.spec.path, &released, None).await;
                            let _ = client.delete(&self.spec.path, None).await;
                            self.former_owner = false;
                            self.set_role(Role::Standby { owner: None });
                            *release_wait = Some(Instant::now());
                        }
                        HoldEnd::Deleted => {
                            self.lease.revoke();
                            self.set_role(Role::Standby { owner: None });
                        }
                        HoldEnd::SessionLost => {
                            self.lease.revoke();
                            self.set_role(Role::Fenced);
                            return HoldEnd::SessionLost;
                        }
                    }
                }
                Err(ZkError::NodeExists) => match self.watch_owner(client, &mut state).await {
                    Some(end) => return end,
                    None => continue,
                },
                Err(ZkError::NoNode) => {
                    if let Some((parent, _)) = self.spec.path.rsplit_once('/') {
                        let _ = ensure_path(client, parent).await;
                    }
                }
                Err(e) => {
                    if state.peek_state().is_terminated() {
                        return HoldEnd::SessionLost;
                    }
                    // Refused by an ACL: only an operator can fix it, so say so (once per
                    // session) and ask again slowly.
                    let wait = if e == ZkError::NoAuth {
                        if !refused_logged {
                            refused_logged = true;
                            warn!(path = %self.spec.path, "ZooKeeper refused to create the running node{}", crate::no_auth_hint(&e));
                        }
                        Duration::from_secs(5)
                    } else {
                        debug!(error = %e, "create running node failed; retrying");
                        Duration::from_millis(200)
                    };
                    tokio::select! {
                        _ = self.cancel.cancelled() => return HoldEnd::Stop,
                        _ = tokio::time::sleep(wait) => {}
                    }
                }
            }
        }
    }

    /// Creates the running node and bumps its parent's data version in one multi, then confirms
    /// the node is this session's: the fence of the ownership just won. `NodeExists` when someone
    /// else holds it, `NoNode` when a parent is missing (or the node vanished at once).
    async fn take_node(
        &self,
        client: &Client,
        opts: &zookeeper_client::CreateOptions<'_>,
    ) -> Result<Fence, ZkError> {
        let path = &self.spec.path;
        let parent = path
            .rsplit_once('/')
            .map(|(p, _)| p)
            .filter(|p| !p.is_empty());
        let token = match parent {
            None => {
                client.create(path, &self.spec.data, opts).await?;
                None
            }
            Some(parent) => loop {
                let (parent_data, parent_stat) = client.get_data(parent).await?;
                let mut writer = client.new_multi_writer();
                writer.add_create(path, &self.spec.data, opts)?;
                writer.add_set_data(parent, &parent_data, Some(parent_stat.version))?;
                match writer.commit().await {
                    Ok(results) => match results.get(1) {
                        Some(zookeeper_client::MultiWriteResult::SetData { stat }) => {
                            break Some((parent.to_string(), stat.version))
                        }
                        _ => {
                            return Err(ZkError::UnexpectedError(
                                "multi answered without the parent's stat".into(),
                            ))
                        }
                    },
                    // The parent's data changed between the read and the multi: read again.
                    Err(zookeeper_client::MultiWriteError::OperationFailed {
                        index: 1,
                        source: ZkError::BadVersion,
                    }) => continue,
                    Err(e) => return Err(e.into()),
                }
            },
        };
        match client.check_stat(path).await? {
            Some(stat) if stat.ephemeral_owner == client.session_id().0 => Ok(Fence {
                running_path: path.clone(),
                running_czxid: stat.czxid,
                running_version: stat.version,
                token,
            }),
            Some(_) => Err(ZkError::NodeExists),
            None => Err(ZkError::NoNode),
        }
    }

    /// Watches someone else's node until it is gone and it is our turn to contend (`None`), or
    /// the session ends (`Some`).
    async fn watch_owner(
        &mut self,
        client: &Client,
        state: &mut zookeeper_client::StateWatcher,
    ) -> Option<HoldEnd> {
        loop {
            let (data, stat, watcher) = match client.get_and_watch_data(&self.spec.path).await {
                Ok(x) => x,
                Err(ZkError::NoNode) => return None,
                Err(_) => {
                    if state.peek_state().is_terminated() {
                        return Some(HoldEnd::SessionLost);
                    }
                    tokio::select! {
                        _ = self.cancel.cancelled() => return Some(HoldEnd::Stop),
                        _ = tokio::time::sleep(Duration::from_millis(200)) => {}
                    }
                    continue;
                }
            };
            let (owner, active) = node_owner(&data);
            if owner.as_deref() == Some(&self.spec.address) {
                if stat.ephemeral_owner == client.session_id().0 {
                    // Ours in this session (a create that timed out but succeeded).
                    let _ = client.delete(&self.spec.path, None).await;
                    return None;
                }
                // Our previous session's node, not expired yet: we are the former owner.
                self.former_owner = true;
            } else {
                self.former_owner = false;
            }
            self.set_role(Role::Standby {
                owner: owner.clone(),
            });
            let mut changed = Box::pin(watcher.changed());
            loop {
                tokio::select! {
                    _ = self.cancel.cancelled() => return Some(HoldEnd::Stop),
                    ev = &mut changed => {
                        match ev.event_type {
                            EventType::NodeDeleted => {
                                // A node last seen `"active":false` was handed over on purpose
                                // (a release): no fake death to wait out.
                                if !active {
                                    info!(path = %self.spec.path, "running node released; contending at once");
                                } else if !self.former_owner {
                                    debug!(grace_ms = self.cfg.grace_ms, "running node gone; waiting the grace delay");
                                    tokio::select! {
                                        _ = self.cancel.cancelled() => return Some(HoldEnd::Stop),
                                        _ = tokio::time::sleep(self.cfg.grace()) => {}
                                    }
                                }
                                return None;
                            }
                            EventType::Session if ev.session_state.is_terminated() => {
                                return Some(HoldEnd::SessionLost);
                            }
                            _ => break, // data changed or re-registered: read again
                        }
                    }
                    st = state.changed() => {
                        if st.is_terminated() {
                            return Some(HoldEnd::SessionLost);
                        }
                    }
                }
            }
        }
    }

    /// Holds the node until it is released, deleted, the session is lost, or stop.
    async fn hold(
        &mut self,
        client: &Client,
        state: &mut zookeeper_client::StateWatcher,
    ) -> HoldEnd {
        let session = self.cfg.session_timeout();
        let renew_every = (session / 4).max(Duration::from_millis(50));
        // A release asked for before this hold began (while standby) is not for this hold.
        while self.release.try_recv().is_ok() {}
        'outer: loop {
            let (data, stat, watcher) = match client.get_and_watch_data(&self.spec.path).await {
                Ok(x) => x,
                Err(ZkError::NoNode) => return HoldEnd::Deleted,
                Err(_) => {
                    if state.peek_state().is_terminated() {
                        return HoldEnd::SessionLost;
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            let (owner, active) = node_owner(&data);
            if owner.as_deref() != Some(&self.spec.address) {
                return HoldEnd::Deleted;
            }
            if !active {
                info!(path = %self.spec.path, "running node set to active:false; handing over");
                return HoldEnd::Released;
            }
            // Still ours and active, but its data was written (same owner): the fence follows
            // the version this holder has seen; another creation is another ownership.
            let same_node = self
                .fence
                .borrow()
                .as_ref()
                .is_some_and(|f| f.running_czxid == stat.czxid);
            if !same_node {
                return HoldEnd::Deleted;
            }
            self.fence.send_if_modified(|f| match f {
                Some(f) if f.running_version != stat.version => {
                    f.running_version = stat.version;
                    true
                }
                _ => false,
            });
            let mut watcher = Box::pin(watcher.changed());
            let mut disconnected_since: Option<tokio::time::Instant> = None;
            let mut renew = tokio::time::interval(renew_every);
            renew.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                let expiry = disconnected_since.map(|t| t + session);
                tokio::select! {
                    _ = self.cancel.cancelled() => return HoldEnd::Stop,
                    r = self.release.recv() => {
                        if r.is_some() {
                            return HoldEnd::Released;
                        }
                    }
                    ev = &mut watcher => {
                        match ev.event_type {
                            EventType::NodeDeleted => return HoldEnd::Deleted,
                            EventType::Session if ev.session_state.is_terminated() => return HoldEnd::SessionLost,
                            _ => continue 'outer,
                        }
                    }
                    st = state.changed() => {
                        match st {
                            SessionState::Disconnected => {
                                warn!(path = %self.spec.path, "ZooKeeper connection lost; pausing");
                                self.lease.revoke();
                                self.set_role(Role::Paused);
                                disconnected_since.get_or_insert_with(tokio::time::Instant::now);
                            }
                            SessionState::SyncConnected | SessionState::ConnectedReadOnly => {
                                info!(path = %self.spec.path, "ZooKeeper connection back in the same session");
                                disconnected_since = None;
                                renew.reset_immediately();
                            }
                            s if s.is_terminated() => return HoldEnd::SessionLost,
                            _ => {}
                        }
                    }
                    _ = async {
                        match expiry {
                            Some(t) => tokio::time::sleep_until(t).await,
                            None => std::future::pending::<()>().await,
                        }
                    } => {
                        warn!(path = %self.spec.path, "disconnected for a whole session timeout; assuming the session expired");
                        return HoldEnd::SessionLost;
                    }
                    _ = renew.tick() => {
                        if disconnected_since.is_some() {
                            continue;
                        }
                        let sent = now_ns();
                        let check = tokio::time::timeout(session, client.check_stat(&self.spec.path)).await;
                        match check {
                            Ok(Ok(Some(_))) => {
                                self.lease.extend_from(sent, session);
                                if *self.role.borrow() != Role::Active {
                                    self.set_role(Role::Active);
                                }
                            }
                            Ok(Ok(None)) => return HoldEnd::Deleted,
                            Ok(Err(e)) => {
                                debug!(error = %e, "lease renewal failed");
                                if state.peek_state().is_terminated() {
                                    return HoldEnd::SessionLost;
                                }
                            }
                            Err(_) => debug!("lease renewal timed out"),
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lease_expires() {
        let l = Lease::default();
        assert!(!l.is_valid());
        l.extend_from(now_ns(), Duration::from_secs(10));
        assert!(l.is_valid());
        l.revoke();
        assert!(!l.is_valid());
        let sent = now_ns();
        std::thread::sleep(Duration::from_millis(5));
        l.extend_from(sent, Duration::from_millis(1));
        assert!(
            !l.is_valid(),
            "a lease counts from the send time of its round trip"
        );
    }

    #[test]
    fn owner_parsing() {
        assert_eq!(
            node_owner(br#"{"active":false,"address":"a:1"}"#),
            (Some("a:1".into()), false)
        );
        assert_eq!(node_owner(b"garbage"), (None, true));
    }
}
