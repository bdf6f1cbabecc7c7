//! Fencing that reaches the write: the checks a holder of a running node puts in front of every
//! ZooKeeper multi it commits, so the multi fails as a whole once the holder lost the node.
//!
//! Checking the running node's data version alone is not enough: a node deleted (session expired,
//! operator) and created again by another session starts at version 0 again, exactly like ours.
//! So every win also bumps the data version of the running node's persistent parent (its data is
//! rewritten unchanged, in the same multi as the create): that version counts ownerships, and a
//! holder whose parent version is no longer the one its win produced has been replaced. A
//! [`Fence`] checks both: the parent's version (someone won after us) and the running node's
//! version (it is gone, or someone wrote into it).

use tokio::sync::watch;
use zookeeper_client::{Error as ZkError, MultiWriteError, MultiWriter};

/// The version checks that prove "this holder still owns the running node".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fence {
    /// The running node.
    pub running_path: String,
    /// Its creation zxid: which ownership this is (the same for the whole ownership).
    pub running_czxid: i64,
    /// Its data version now.
    pub running_version: i32,
    /// The persistent node whose data version counts ownerships (the running node's parent) and
    /// the version our win gave it; `None` when the running node has no parent but the root.
    pub token: Option<(String, i32)>,
}

impl Fence {
    /// Adds the checks to `writer`. Call it before adding the guarded writes, so that a failure
    /// of one of the first [`Fence::check_count`] operations means the fence rejected the multi.
    pub fn add_checks(&self, writer: &mut MultiWriter<'_>) -> Result<(), ZkError> {
        if let Some((path, version)) = &self.token {
            writer.add_check_version(path, *version)?;
        }
        writer.add_check_version(&self.running_path, self.running_version)
    }

    /// How many operations [`Fence::add_checks`] adds.
    pub fn check_count(&self) -> usize {
        1 + usize::from(self.token.is_some())
    }

    /// Whether `err`, from a multi that began with [`Fence::add_checks`], means this holder no
    /// longer owns the node (a check failed: another version, or the node is gone).
    pub fn rejected(&self, err: &MultiWriteError) -> bool {
        matches!(err, MultiWriteError::OperationFailed { index, source: ZkError::BadVersion | ZkError::NoNode }
            if *index < self.check_count())
    }
}

/// One ownership of a running node as its writers see it: [`Fencing::current`] gives the fence to
/// check while that ownership lasts (following changes of the node's version that the holder
/// itself observed), and `None` from the moment it ended, even if the same candidate wins again
/// (that is another ownership: whatever was started under the first one must not write).
#[derive(Debug, Clone)]
pub struct Fencing {
    fences: watch::Receiver<Option<Fence>>,
    czxid: i64,
}

impl Fencing {
    /// A fencing bound to the ownership `fences` holds now; `None` if it holds none.
    pub(crate) fn bind(fences: watch::Receiver<Option<Fence>>) -> Option<Self> {
        let czxid = fences.borrow().as_ref()?.running_czxid;
        Some(Self { fences, czxid })
    }

    /// The checks for this ownership, or `None` once it ended.
    pub fn current(&self) -> Option<Fence> {
        self.fences
            .borrow()
            .as_ref()
            .filter(|f| f.running_czxid == self.czxid)
            .cloned()
    }

    /// Which ownership this is (the running node's creation zxid).
    pub fn ownership(&self) -> i64 {
        self.czxid
    }

    /// A fencing that follows `fence` for as long as the returned sender keeps it (for tests and
    /// for holders that do not use [`crate::election::Election`]).
    pub fn fixed(fence: Fence) -> (watch::Sender<Option<Fence>>, Self) {
        let czxid = fence.running_czxid;
        let (tx, fences) = watch::channel(Some(fence));
        (tx, Self { fences, czxid })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fence(czxid: i64) -> Fence {
        Fence {
            running_path: "/d/running".into(),
            running_czxid: czxid,
            running_version: 0,
            token: Some(("/d".into(), 3)),
        }
    }

    #[test]
    fn fencing_ends_with_its_ownership() {
        let (tx, f) = Fencing::fixed(fence(7));
        assert_eq!(f.current(), Some(fence(7)));
        tx.send_modify(|f| f.as_mut().unwrap().running_version = 1);
        assert_eq!(f.current().unwrap().running_version, 1);
        tx.send_replace(Some(fence(9)));
        assert_eq!(f.current(), None, "a new win is another ownership");
        tx.send_replace(None);
        assert_eq!(f.current(), None);
    }

    #[test]
    fn only_a_failed_check_is_a_rejection() {
        let f = fence(1);
        assert_eq!(f.check_count(), 2);
        let failed = |index, source| MultiWriteError::OperationFailed { index, source };
        assert!(f.rejected(&failed(0, ZkError::BadVersion)));
        assert!(f.rejected(&failed(1, ZkError::NoNode)));
        assert!(!f.rejected(&failed(2, ZkError::NoNode)), "a guarded write");
        assert!(!f.rejected(&failed(0, ZkError::ConnectionLoss)));
        assert!(!f.rejected(&MultiWriteError::RequestFailed {
            source: ZkError::ConnectionLoss
        }));
    }
}
