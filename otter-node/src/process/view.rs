//! A node's live picture of one pipeline's scheduling znodes: the `process/*` window with each
//! process's stage children, and `termin/*`. It is kept from one persistent recursive watch on
//! `/otter/channel/{cid}/{pid}`, so the stage workers of the node wait for a change instead of
//! polling ZooKeeper, and read the window without a request.
//!
//! Correctness of the picture: the watch is registered before anything is listed, and every
//! node event after that is applied in order on top of the listing. For each znode the last
//! event seen decides whether it exists, and a znode without events since the registration is
//! as listed, so the picture converges to ZooKeeper's whatever the interleaving. Events lost
//! while disconnected (ZOOKEEPER-4698) are covered by listing again after every reconnection,
//! and the watch itself is added again first: the client library does not restore persistent
//! watches when it reconnects, so without that the picture would freeze at that listing (see
//! [`relist_now`]).
//! The picture may lag the node's own writes by a round trip: workers treat it as a hint and
//! let ZooKeeper's answers (`NodeExists`, `NoNode`) decide.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};
use zk_coord::otter_paths as paths;
use zk_coord::ZkConfig;
use zookeeper_client::{AddWatchMode, Client, EventType, PersistentWatcher, SessionState};

use crate::process::Child;
use crate::runtime::error::RuntimeError;
use crate::runtime::retry::pause;

/// One process of the window and the names of its children (`selected`, `extract-lock`, …).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct ProcessNode {
    /// The znode name (`p0000000042`).
    pub name: String,
    /// Its children.
    pub children: BTreeSet<String>,
}

impl ProcessNode {
    /// Whether the child `c` exists; every stage of an inline process is done
    /// ([`crate::process::window::Opening::Inline`]).
    pub fn has(&self, c: impl Into<Child>) -> bool {
        let c = c.into();
        (matches!(c, Child::Done(_)) && paths::is_inline_process(&self.name))
            || self.children.contains(c.name())
    }
}

/// The pipeline's window as last seen.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Snapshot {
    /// Processes by id, oldest first.
    pub processes: BTreeMap<u64, ProcessNode>,
    /// Ids with a `termin/{id}` node.
    pub termins: BTreeSet<u64>,
}

/// A shared, self-updating [`Snapshot`] of one pipeline; cheap to clone.
#[derive(Debug, Clone)]
pub(crate) struct PipelineView {
    rx: watch::Receiver<Arc<Snapshot>>,
}

impl PipelineView {
    /// Starts following pipeline (`cid`, `pid`) until `stop`.
    pub fn spawn(zk: ZkConfig, cid: u32, pid: u32, stop: CancellationToken) -> Self {
        let (tx, rx) = watch::channel(Arc::new(Snapshot::default()));
        tokio::spawn(follow(zk, cid, pid, tx, stop));
        Self { rx }
    }

    /// A receiver of the snapshots; `changed()` on it wakes on every new one.
    pub fn subscribe(&self) -> watch::Receiver<Arc<Snapshot>> {
        self.rx.clone()
    }
}

/// Waits until the view changed (true), at most `d` (false), or `stop` (None).
pub(crate) async fn changed(
    rx: &mut watch::Receiver<Arc<Snapshot>>,
    stop: &CancellationToken,
    d: Duration,
) -> Option<bool> {
    tokio::select! {
        _ = stop.cancelled() => None,
        r = rx.changed() => {
            if r.is_err() {
                // The follower ended (its pipeline stopped): nothing more will change.
                stop.cancelled().await;
                return None;
            }
            Some(true)
        }
        _ = tokio::time::sleep(d) => Some(false),
    }
}

/// What a node event changes.
#[derive(Debug, PartialEq, Eq)]
enum Target<'a> {
    Process(u64, &'a str),
    Child(u64, &'a str, &'a str),
    Termin(u64),
}

/// Which part of the picture `path` (chroot-relative, under `base`) is.
fn target<'a>(base: &str, path: &'a str) -> Option<Target<'a>> {
    let rest = path.strip_prefix(base)?.strip_prefix('/')?;
    let mut parts = rest.split('/');
    match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some("process"), Some(name), None, None) => {
            paths::process_id(name).map(|id| Target::Process(id, name))
        }
        (Some("process"), Some(name), Some(child), None) => {
            paths::process_id(name).map(|id| Target::Child(id, name, child))
        }
        (Some("termin"), Some(name), None, None) => paths::process_id(name).map(Target::Termin),
        _ => None,
    }
}

impl Snapshot {
    /// Applies a node's creation (`exists`) or deletion; true when the picture changed.
    fn apply(&mut self, t: Target<'_>, exists: bool) -> bool {
        match (t, exists) {
            (Target::Process(id, name), true) => {
                if self.processes.contains_key(&id) {
                    return false;
                }
                self.processes.insert(
                    id,
                    ProcessNode {
                        name: name.to_string(),
                        children: BTreeSet::new(),
                    },
                );
                true
            }
            (Target::Process(id, _), false) => self.processes.remove(&id).is_some(),
            (Target::Child(id, name, child), true) => self
                .processes
                .entry(id)
                .or_insert_with(|| ProcessNode {
                    name: name.to_string(),
                    children: BTreeSet::new(),
                })
                .children
                .insert(child.to_string()),
            (Target::Child(id, _, child), false) => self
                .processes
                .get_mut(&id)
                .is_some_and(|p| p.children.remove(child)),
            (Target::Termin(id), true) => self.termins.insert(id),
            (Target::Termin(id), false) => self.termins.remove(&id),
        }
    }
}

/// Lists the window from ZooKeeper.
async fn list(zk: &Client, cid: u32, pid: u32) -> Result<Snapshot, zookeeper_client::Error> {
    let mut snap = Snapshot::default();
    let names = match zk.list_children(&paths::processes(cid, pid)).await {
        Ok(n) => n,
        Err(zookeeper_client::Error::NoNode) => Vec::new(),
        Err(e) => return Err(e),
    };
    for name in names {
        let Some(id) = paths::process_id(&name) else {
            continue;
        };
        let children = match zk.list_children(&paths::process(cid, pid, &name)).await {
            Ok(c) => c,
            Err(zookeeper_client::Error::NoNode) => continue,
            Err(e) => return Err(e),
        };
        snap.processes.insert(
            id,
            ProcessNode {
                name,
                children: children.into_iter().collect(),
            },
        );
    }
    match zk.list_children(&paths::termins(cid, pid)).await {
        Ok(n) => snap
            .termins
            .extend(n.iter().filter_map(|n| paths::process_id(n))),
        Err(zookeeper_client::Error::NoNode) => {}
        Err(e) => return Err(e),
    }
    Ok(snap)
}

/// Keeps `tx` up to date until `stop`, across reconnections and new sessions.
async fn follow(
    zk: ZkConfig,
    cid: u32,
    pid: u32,
    tx: watch::Sender<Arc<Snapshot>>,
    stop: CancellationToken,
) {
    let base = paths::pipeline(cid, pid);
    while !stop.is_cancelled() {
        let Some(client) = zk.connect_until_stopped(&stop).await else {
            return;
        };
        if let Err(e) = follow_session(&client, &base, cid, pid, &tx, &stop).await {
            warn!(error = %e, "view: lost the ZooKeeper session; following again");
            if pause(&stop, Duration::from_millis(200)).await {
                return;
            }
        }
    }
}

/// Follows the pipeline on one session; returns when `stop` fires (Ok) or the session ends.
async fn follow_session(
    client: &Client,
    base: &str,
    cid: u32,
    pid: u32,
    tx: &watch::Sender<Arc<Snapshot>>,
    stop: &CancellationToken,
) -> Result<(), RuntimeError> {
    let mut watcher = client
        .watch(base, AddWatchMode::PersistentRecursive)
        .await
        .map_err(RuntimeError::zk("watch", base))?;
    let mut snap = list(client, cid, pid)
        .await
        .map_err(RuntimeError::zk("list", base))?;
    let publish = |snap: &Snapshot| {
        tx.send_if_modified(|cur| {
            if **cur == *snap {
                return false;
            }
            *cur = Arc::new(snap.clone());
            true
        });
    };
    publish(&snap);
    let mut relist = false;
    loop {
        let retry = if relist {
            Duration::from_millis(200)
        } else {
            Duration::from_secs(3600)
        };
        let event = tokio::select! {
            _ = stop.cancelled() => return Ok(()),
            e = watcher.changed() => Some(e),
            _ = tokio::time::sleep(retry) => None,
        };
        let mut changed = false;
        let Some(event) = event else {
            changed =
                relist_now(client, base, &mut watcher, cid, pid, &mut snap, &mut relist).await?;
            if changed {
                publish(&snap);
            }
            continue;
        };
        match event.event_type {
            EventType::Session => match event.session_state {
                SessionState::SyncConnected | SessionState::ConnectedReadOnly => relist = true,
                SessionState::Disconnected => {}
                s if s.is_terminated() => return Err(RuntimeError::SessionEnded(format!("{s:?}"))),
                _ => {}
            },
            EventType::NodeCreated | EventType::NodeDeleted => {
                if let Some(t) = target(base, &event.path) {
                    changed = snap.apply(t, event.event_type == EventType::NodeCreated);
                }
            }
            _ => {}
        }
        if relist {
            changed |=
                relist_now(client, base, &mut watcher, cid, pid, &mut snap, &mut relist).await?;
        }
        if changed {
            publish(&snap);
        }
    }
}

/// Watches and lists again after a reconnection; true when it did, an error when the session is
/// over.
///
/// zookeeper-client 0.11 does not register persistent watches again when it reconnects in the
/// same session (its `resend_watches` only sends the one-shot kinds), so the server has
/// forgotten the watch: it is added again, and only then is the window listed (events lost
/// while disconnected, ZOOKEEPER-4698, are covered by the listing; later ones apply on top).
async fn relist_now(
    client: &Client,
    base: &str,
    watcher: &mut PersistentWatcher,
    cid: u32,
    pid: u32,
    snap: &mut Snapshot,
    relist: &mut bool,
) -> Result<bool, RuntimeError> {
    use zookeeper_client::Error as E;
    let listed = match client.watch(base, AddWatchMode::PersistentRecursive).await {
        Ok(w) => {
            // The old one is dropped after the new one exists: the path stays watched.
            *watcher = w;
            list(client, cid, pid).await
        }
        Err(e) => Err(e),
    };
    match listed {
        Ok(s) => {
            *snap = s;
            *relist = false;
            debug!("view: watched and listed again after reconnecting");
            Ok(true)
        }
        Err(e @ (E::NoHosts | E::SessionExpired | E::AuthFailed | E::ClientClosed)) => {
            Err(RuntimeError::zk("list", paths::pipeline(cid, pid))(e))
        }
        Err(e) => {
            warn!(error = %e, "view: cannot watch and list after reconnecting; retrying");
            Ok(false)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = "/otter/channel/1/2";

    fn ev(snap: &mut Snapshot, path: &str, exists: bool) -> bool {
        match target(BASE, path) {
            Some(t) => snap.apply(t, exists),
            None => false,
        }
    }

    #[test]
    fn paths_map_to_parts_of_the_window() {
        assert_eq!(
            target(BASE, "/otter/channel/1/2/process/p0000000007"),
            Some(Target::Process(7, "p0000000007"))
        );
        assert_eq!(
            target(BASE, "/otter/channel/1/2/process/p0000000007/lock"),
            Some(Target::Child(7, "p0000000007", "lock"))
        );
        assert_eq!(
            target(BASE, "/otter/channel/1/2/termin/0000000007"),
            Some(Target::Termin(7))
        );
        assert_eq!(target(BASE, "/otter/channel/1/2/process"), None);
        assert_eq!(target(BASE, "/otter/channel/1/2/mainstem"), None);
        assert_eq!(target(BASE, "/otter/channel/1/22/process/p1"), None);
    }

    #[test]
    fn events_replayed_over_any_later_listing_converge() {
        // History after the watch: create p1, selected, lock; delete lock; create extracted.
        let history = [
            ("/otter/channel/1/2/process/p0000000001", true),
            ("/otter/channel/1/2/process/p0000000001/selected", true),
            ("/otter/channel/1/2/process/p0000000001/extract-lock", true),
            ("/otter/channel/1/2/process/p0000000001/extract-lock", false),
            ("/otter/channel/1/2/process/p0000000001/extracted", true),
        ];
        let mut truth = Snapshot::default();
        for (p, e) in history {
            ev(&mut truth, p, e);
        }
        // A listing taken after any prefix of the history, with the whole history replayed on
        // top, ends where ZooKeeper is.
        for k in 0..=history.len() {
            let mut listing = Snapshot::default();
            for (p, e) in &history[..k] {
                ev(&mut listing, p, *e);
            }
            for (p, e) in history {
                ev(&mut listing, p, e);
            }
            assert_eq!(listing, truth, "listing after {k} events");
        }
        let p = &truth.processes[&1];
        assert!(
            p.has(crate::process::Stage::Selected)
                && p.has(crate::process::Stage::Extracted)
                && !p.has(crate::process::Lock::Extract)
        );
    }

    #[test]
    fn deletions_remove_processes_and_termins() {
        let mut s = Snapshot::default();
        assert!(ev(
            &mut s,
            "/otter/channel/1/2/process/p0000000003/selected",
            true
        ));
        assert_eq!(s.processes[&3].name, "p0000000003");
        assert!(ev(&mut s, "/otter/channel/1/2/termin/0000000003", true));
        assert!(ev(
            &mut s,
            "/otter/channel/1/2/process/p0000000003/selected",
            false
        ));
        assert!(ev(&mut s, "/otter/channel/1/2/process/p0000000003", false));
        assert!(!ev(&mut s, "/otter/channel/1/2/process/p0000000003", false));
        assert!(ev(&mut s, "/otter/channel/1/2/termin/0000000003", false));
        assert_eq!(s, Snapshot::default());
    }
}

/// Against a real ZooKeeper: the picture keeps following after the connection dropped and came
/// back in the same session.
#[cfg(test)]
mod reconnect_tests {
    use super::*;
    use std::time::Instant;

    /// Creates `path` (and its parents), retrying through a reconnection.
    async fn create(zk: &Client, path: &str) {
        let t = Instant::now();
        while let Err(e) = zk_coord::ensure_path(zk, path).await {
            assert!(t.elapsed() < Duration::from_secs(30), "create {path}: {e}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn shows(view: &PipelineView, id: u64, within: Duration) -> bool {
        let mut rx = view.subscribe();
        let t = Instant::now();
        while t.elapsed() < within {
            if rx.borrow_and_update().processes.contains_key(&id) {
                return true;
            }
            let _ = tokio::time::timeout(Duration::from_millis(200), rx.changed()).await;
        }
        false
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_picture_follows_changes_made_after_a_reconnection() {
        let mut zk = harness::ZooKeeper::start().await.unwrap();
        let writer = zk.client(Duration::from_secs(10)).await.unwrap();
        let (cid, pid) = (1, 1);
        let name = |id: u64| format!("p{id:010}");
        create(&writer, &paths::process(cid, pid, &name(0))).await;
        let stop = CancellationToken::new();
        let config = ZkConfig {
            servers: zk.connect_string(),
            session_timeout_ms: 6_000,
            connect_timeout_ms: 800,
            ..ZkConfig::default()
        };
        let view = PipelineView::spawn(config, cid, pid, stop.clone());
        assert!(shows(&view, 0, Duration::from_secs(20)).await);
        // Frozen past the view's 800 ms without an answer, not past its session: it reconnects in
        // the same session.
        zk.member_mut(0).pause().unwrap();
        tokio::time::sleep(Duration::from_millis(2_500)).await;
        zk.member_mut(0).resume().unwrap();
        // Processes created while the view reconnects and lists, then one well after.
        for id in 1..=10 {
            create(&writer, &paths::process(cid, pid, &name(id))).await;
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        assert!(shows(&view, 10, Duration::from_secs(20)).await);
        create(&writer, &paths::process(cid, pid, &name(11))).await;
        create(
            &writer,
            &format!("{}/selected", paths::process(cid, pid, &name(11))),
        )
        .await;
        let mut rx = view.subscribe();
        let t = Instant::now();
        loop {
            if rx
                .borrow_and_update()
                .processes
                .get(&11)
                .is_some_and(|p| p.children.contains("selected"))
            {
                break;
            }
            assert!(
                t.elapsed() < Duration::from_secs(20),
                "the view stopped following after the reconnection: {:?}",
                rx.borrow().processes.keys().collect::<Vec<_>>()
            );
            let _ = tokio::time::timeout(Duration::from_millis(200), rx.changed()).await;
        }
        stop.cancel();
    }
}
