//! Load's claim of an in-site batch, made by Select in the write that opens the batch.
//!
//! When this node's Select extracts and transforms a small batch itself (`handoff`) and this node
//! runs the pipeline's Load too, Select creates the batch's process and Load's ephemeral `lock`
//! in one ZooKeeper transaction, on Load's session, which the Load loop lends here. Load then
//! takes the batch from here: its fencing token (the lock's creation zxid) and its rows, from
//! memory. Per batch that is one write and one read fewer for ZooKeeper (Load's own lock, and
//! its read of the process record), with the same lock as before: it vanishes with Load's
//! session, and any node's Load may then claim the batch as usual.
//!
//! The fencing tokens must still grow with the process order (a load with a smaller token than
//! an earlier one is refused at the target), so Select claims a batch ahead of Load only while
//! every batch in flight before it was claimed the same way, on the same session: a batch
//! claimed by Load itself is claimed later, with a larger token, and every batch after it must
//! wait for Load's own claim too ([`Preclaims::session_for`]).
//!
//! Load also says here which of these batches it committed ([`Preclaims::loaded`]), before it
//! writes their termins; Select, seeing such a termin, acks the batch without reading it. Reading
//! it could only tell otherwise if another node's Load wrote it after taking the batch over (this
//! node's lock gone with its session): the rows were committed by this node all the same, so the
//! ack is right either way.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::Notify;
use zookeeper_client::Client;

use crate::runtime::registry::StageData;

/// The claims this node's Select made for its Load, of one pipeline. Cheap to clone (shared).
#[derive(Debug, Clone, Default)]
pub(crate) struct Preclaims {
    inner: Arc<Mutex<Inner>>,
    changed: Arc<Notify>,
}

#[derive(Debug, Default)]
struct Inner {
    /// Load's session, while its loop runs.
    lent: Option<Client>,
    /// By process id.
    claims: BTreeMap<u64, Claim>,
}

#[derive(Debug)]
struct Claim {
    name: String,
    session: i64,
    state: State,
    /// Load committed the batch (its termin says so).
    loaded: bool,
}

#[derive(Debug)]
enum State {
    /// The opening write is on its way.
    Opening,
    /// Opened with the lock; the token and the rows wait for Load.
    Held { token: i64, data: StageData },
    /// Load took it. Kept until Select acks the process: a claim in flight on the session.
    WithLoad,
}

/// What [`Preclaims::take`] found for a process.
#[derive(Debug)]
pub(crate) enum Taken {
    /// Claimed for this session: the token and the rows.
    Held(i64, StageData),
    /// Being opened with a claim: its lock is (or will be) there, Load must not claim it itself.
    Opening,
    /// Not claimed by Select for this session: Load claims it as usual.
    No,
}

/// Load's session lent to Select ([`Preclaims::lend`]), until dropped.
#[derive(Debug)]
pub(crate) struct Lent {
    preclaims: Preclaims,
    session: i64,
}

impl Drop for Lent {
    fn drop(&mut self) {
        let mut inner = self.preclaims.lock();
        if inner
            .lent
            .as_ref()
            .is_some_and(|c| c.session_id().0 == self.session)
        {
            inner.lent = None;
        }
    }
}

impl Preclaims {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Load's loop lends its session `zk` until the returned guard drops (the loop ends): Select
    /// opens in-site batches claimed for it. Claims of an earlier session are forgotten (their
    /// locks go with that session).
    pub(crate) fn lend(&self, zk: &Client) -> Lent {
        let session = zk.session_id().0;
        let mut inner = self.lock();
        inner.claims.retain(|_, c| c.session == session);
        inner.lent = Some(zk.clone());
        Lent {
            preclaims: self.clone(),
            session,
        }
    }

    /// The session Select opens process `id` on, claimed for Load, if it may: Load's lent
    /// session, when each of the batches in flight (`inflight`, every one before `id`) was
    /// claimed on it too. The process is recorded as being opened ([`Preclaims::opened`] or
    /// [`Preclaims::failed`] follows).
    pub(crate) fn session_for(
        &self,
        id: u64,
        name: &str,
        inflight: impl IntoIterator<Item = u64>,
    ) -> Option<Client> {
        let mut inner = self.lock();
        let zk = inner.lent.clone()?;
        let session = zk.session_id().0;
        let all_ours = inflight
            .into_iter()
            .all(|i| inner.claims.get(&i).is_some_and(|c| c.session == session));
        if !all_ours {
            return None;
        }
        inner.claims.insert(
            id,
            Claim {
                name: name.to_string(),
                session,
                state: State::Opening,
                loaded: false,
            },
        );
        Some(zk)
    }

    /// Process `id` is open with Load's lock, whose creation zxid is `token`; `data` holds its
    /// transformed rows.
    pub(crate) fn opened(&self, id: u64, token: i64, data: StageData) {
        if let Some(c) = self.lock().claims.get_mut(&id) {
            c.state = State::Held { token, data };
        }
        self.changed.notify_one();
    }

    /// Opening process `id` failed: no claim of it (nor of any later one: Select starts over).
    pub(crate) fn failed(&self, id: u64) {
        self.lock().claims.remove(&id);
        self.changed.notify_one();
    }

    /// Select acked process `id`: its claim is over.
    pub(crate) fn forget(&self, id: u64) {
        self.lock().claims.remove(&id);
    }

    /// A new window (Select reset it): every claim is of processes that are gone.
    pub(crate) fn clear(&self) {
        self.lock().claims.clear();
        self.changed.notify_one();
    }

    /// Whether process `id` named `name` is claimed (or being claimed) by Select for Load and
    /// not taken yet.
    pub(crate) fn is_claimed(&self, id: u64, name: &str) -> bool {
        self.lock()
            .claims
            .get(&id)
            .is_some_and(|c| c.name == name && !matches!(c.state, State::WithLoad))
    }

    /// Takes Select's claim of process `id` named `name` for Load's session `zk`.
    pub(crate) fn take(&self, zk: &Client, id: u64, name: &str) -> Taken {
        let session = zk.session_id().0;
        let mut inner = self.lock();
        let Some(c) = inner.claims.get_mut(&id) else {
            return Taken::No;
        };
        if c.name != name || c.session != session {
            return Taken::No;
        }
        match std::mem::replace(&mut c.state, State::WithLoad) {
            State::Opening => {
                c.state = State::Opening;
                Taken::Opening
            }
            State::Held { token, data } => Taken::Held(token, data),
            // Taken before (a load that did not end): Load claims it again as usual.
            State::WithLoad => Taken::No,
        }
    }

    /// Load's session `zk` committed process `id` named `name`, claimed by Select for it.
    pub(crate) fn loaded(&self, zk: &Client, id: u64, name: &str) {
        let session = zk.session_id().0;
        if let Some(c) = self.lock().claims.get_mut(&id) {
            if c.name == name && c.session == session && matches!(c.state, State::WithLoad) {
                c.loaded = true;
            }
        }
    }

    /// Whether this node's Load committed process `id`, claimed for it by this Select.
    pub(crate) fn was_loaded(&self, id: u64) -> bool {
        self.lock().claims.get(&id).is_some_and(|c| c.loaded)
    }

    /// Resolves when a claim was opened or dropped since the last call (or was before it).
    pub(crate) async fn changed(&self) {
        self.changed.notified().await
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use zk_coord::otter_paths as paths;

    use super::*;
    use crate::batch::LoadBatch;
    use crate::process::window::Opening;
    use crate::process::{Lock, Process, Produced, Stage};

    fn rows() -> StageData {
        StageData::Batch(Arc::new(LoadBatch::default()))
    }

    fn transformed() -> Produced {
        Produced::inline(1, "127.0.0.1:1", 1, Stage::Transformed, 0)
    }

    /// Opens inline process `id` the way Select does: claimed for Load when the preclaims allow.
    async fn open(
        select: &Client,
        preclaims: &Preclaims,
        id: u64,
        inflight: &[u64],
    ) -> (Process, Option<i64>) {
        let name = paths::process_name(true, id);
        let lent = preclaims.session_for(id, &name, inflight.iter().copied());
        let p = transformed();
        let opening = Opening::Inline {
            transformed: &p,
            claim_for: lent.as_ref().map(|_| 1),
        };
        let opened = Process::open(
            lent.as_ref().unwrap_or(select),
            1,
            1,
            id,
            opening,
            &mut vec![],
        )
        .await
        .unwrap();
        if let Some(token) = opened.1 {
            preclaims.opened(id, token, rows());
        }
        opened
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn select_claims_on_the_lent_session_in_order_and_a_lost_session_frees_the_batch() {
        let zk = harness::ZooKeeper::start().await.unwrap();
        let select = zk.client(Duration::from_secs(10)).await.unwrap();
        let load = zk.client(Duration::from_secs(10)).await.unwrap();
        zk_coord::ensure_path(&select, &paths::processes(1, 1))
            .await
            .unwrap();
        let preclaims = Preclaims::default();

        // Nothing lent: opened unclaimed, and Load claims it itself.
        let (p0, token) = open(&select, &preclaims, 0, &[]).await;
        assert_eq!(token, None);
        assert!(matches!(preclaims.take(&load, 0, &p0.name), Taken::No));

        let lent = preclaims.lend(&load);
        // Process 0 is in flight unclaimed: claiming 1 now would give it a smaller token than
        // Load's later claim of 0.
        let (p1, token) = open(&select, &preclaims, 1, &[0]).await;
        assert_eq!(token, None);
        assert!(!preclaims.is_claimed(1, &p1.name));

        // Once 0 and 1 are acked, 2 and 3 are opened claimed, with growing tokens, their locks
        // held by Load's session.
        let (p2, t2) = open(&select, &preclaims, 2, &[]).await;
        let (p3, t3) = open(&select, &preclaims, 3, &[2]).await;
        let (t2, t3) = (t2.unwrap(), t3.unwrap());
        assert!(t2 < t3, "tokens {t2} {t3}");
        for (p, t) in [(&p2, t2), (&p3, t3)] {
            let stat = load
                .check_stat(&p.child(Lock::Load))
                .await
                .unwrap()
                .unwrap();
            assert_eq!(stat.czxid, t, "the token is the lock's creation zxid");
            assert_eq!(stat.ephemeral_owner, load.session_id().0);
            // Load must not claim it on its own.
            assert!(preclaims.is_claimed(p.id, &p.name));
            assert!(p.try_lock(&load, Lock::Load, 1).await.unwrap().is_none());
        }
        // Another window's process of the same number is not this claim.
        assert!(matches!(preclaims.take(&load, 2, "p0000000002"), Taken::No));
        // Another session (Load restarted) does not take it either.
        assert!(matches!(preclaims.take(&select, 2, &p2.name), Taken::No));
        match preclaims.take(&load, 2, &p2.name) {
            Taken::Held(t, StageData::Batch(_)) => assert_eq!(t, t2),
            other => panic!("{other:?}"),
        }
        assert!(!preclaims.is_claimed(2, &p2.name), "taken");
        // Committed by Load: Select need not read the termin. Not by another session, nor of
        // another window's process of that number.
        assert!(!preclaims.was_loaded(2));
        preclaims.loaded(&select, 2, &p2.name);
        preclaims.loaded(&load, 2, "p0000000002");
        assert!(!preclaims.was_loaded(2));
        preclaims.loaded(&load, 2, &p2.name);
        assert!(preclaims.was_loaded(2));
        // Held but not taken: not loaded.
        preclaims.loaded(&load, 3, &p3.name);
        assert!(!preclaims.was_loaded(3));
        // Taken once: a load that did not end claims it again as usual.
        assert!(matches!(preclaims.take(&load, 2, &p2.name), Taken::No));

        // A batch being opened: its lock is on its way, Load waits for it.
        let name4 = paths::process_name(true, 4);
        assert!(preclaims.session_for(4, &name4, [2, 3]).is_some());
        assert!(matches!(preclaims.take(&load, 4, &name4), Taken::Opening));
        preclaims.failed(4);
        tokio::time::timeout(Duration::from_secs(5), preclaims.changed())
            .await
            .expect("a failed opening wakes Load");
        assert!(matches!(preclaims.take(&load, 4, &name4), Taken::No));

        // Load's loop ends: nothing is claimed for it any more.
        drop(lent);
        assert!(preclaims.session_for(4, &name4, []).is_none());
        // Its session ends: the locks Select created on it go with it.
        drop(load);
        let gone = std::time::Instant::now();
        while select
            .check_stat(&p3.child(Lock::Load))
            .await
            .unwrap()
            .is_some()
        {
            assert!(
                gone.elapsed() < Duration::from_secs(30),
                "the lock outlived its session"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        // A new loop's session forgets the old session's claims.
        let load2 = zk.client(Duration::from_secs(10)).await.unwrap();
        let _lent = preclaims.lend(&load2);
        assert!(!preclaims.is_claimed(3, &p3.name));
        assert!(matches!(preclaims.take(&load2, 3, &p3.name), Taken::No));
        // Load claims the batch itself, with a token larger than the lost claim's: a load by the
        // old holder can no longer commit at the target.
        let t = p3.try_lock(&load2, Lock::Load, 1).await.unwrap().unwrap();
        assert!(t > t3, "token {t} after {t3}");
        // Select's next claim waits for the old session's batches to leave the flight.
        assert!(preclaims.session_for(4, &name4, [3]).is_none());
        assert!(preclaims.session_for(4, &name4, []).is_some());
    }
}
