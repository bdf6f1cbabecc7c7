//! The lifecycle of a batch ("process") in ZooKeeper, under `/otter/channel/{cid}/{pid}/`.
//!
//! `process/p{id}` nodes, numbered by Select, form the window of batches in flight
//! ([`Process::open`]; a `t{id}` node is a batch Select carried through Extract and Transform
//! itself, possibly opened with Load's lock already taken for this node). A stage that
//! finished a batch writes a stage-done child ([`Child::Done`] of a [`Stage`]: `selected`,
//! `extracted`, `transformed`) holding a [`Produced`] record that says which node holds the data
//! and where to pull it; the next stage is claimed with an ephemeral lock child ([`Lock`]:
//! `extract-lock`, `transform-lock`, `lock`) that vanishes with its owner's session, so another
//! node redoes the work. Load writes `termin/{id}` (a [`Termin`]) and removes the process in one
//! transaction ([`Process::finish`]); Select acks its canal batches in termin order.
//!
//! * [`child`]: the typed names of a process's children (the one definition of them).
//! * [`record`]: [`Produced`] and [`Termin`], the JSON the children and termins hold.
//! * [`lock`]: claiming a process for a stage, watching and releasing the claim.
//! * [`finish`]: the termin and the removal of a loaded process.
//! * [`window`]: opening processes, resetting the window, reading and deleting termins.
//! * `view`: a node's live picture of a pipeline's window, from one recursive watch.

pub mod child;
pub mod finish;
pub mod lock;
pub mod record;
pub(crate) mod view;
pub mod window;

pub use child::{Child, Lock, Stage};
pub use record::{Produced, Termin};

use zk_coord::otter_paths;
use zookeeper_client::{Client, Stat};

/// Reads a znode this node saw in its view of the window. The view follows one session and the
/// read may go through another, connected to a server that has not applied the znode's creation
/// yet (ZooKeeper orders each session, not sessions against each other): a `NoNode` answer is
/// checked again after a `sync`, which brings that server up to the leader.
pub(crate) async fn read_seen(
    zk: &Client,
    path: &str,
) -> Result<(Vec<u8>, Stat), zookeeper_client::Error> {
    match zk.get_data(path).await {
        Err(zookeeper_client::Error::NoNode) => {
            zk.sync(path).await?;
            zk.get_data(path).await
        }
        r => r,
    }
}

/// One process znode of a pipeline's window: `/otter/channel/{cid}/{pid}/process/{name}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Process {
    /// The channel id.
    pub cid: u32,
    /// The pipeline id.
    pub pid: u32,
    /// The number Select gave the process (its order in the window).
    pub id: u64,
    /// The znode name (`p0000000042`, `t0000000043`).
    pub name: String,
}

impl Process {
    /// The process `name` of pipeline (`cid`, `pid`); `id` is the sequence in the name.
    pub fn new(cid: u32, pid: u32, id: u64, name: impl Into<String>) -> Self {
        Self {
            cid,
            pid,
            id,
            name: name.into(),
        }
    }

    /// The process znode.
    pub fn path(&self) -> String {
        otter_paths::process(self.cid, self.pid, &self.name)
    }

    /// The znode of the child `c`.
    pub fn child(&self, c: impl Into<Child>) -> String {
        format!("{}/{}", self.path(), c.into().name())
    }

    /// The termin this process gets once loaded.
    pub fn termin_path(&self) -> String {
        otter_paths::termin(self.cid, self.pid, self.id)
    }
}
