//! Why a stage worker (or the node's follower of a pipeline) stopped, and whether starting it
//! again soon may help.

use canal_server::filter::FilterError;
use canal_server::instance::InstanceError;
use canal_server::store::StoreError;
use zk_coord::CoordError;
use zookeeper_client::MultiWriteError;

use crate::model::ModelError;
use crate::pipeline::extract::ExtractError;
use crate::pipeline::load::target::TargetCheckError;
use crate::runtime::codec::CodecError;
use crate::runtime::pull::FetchError;

/// A failure of the node's runtime. [`RuntimeError::is_retryable`] tells a passing failure
/// (ZooKeeper, the network, a node gone, a failed load that Select redoes) from one that needs an
/// operator (an invalid definition, a target table without a primary key, a bug).
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// Opening a ZooKeeper session or a helper operation of `zk-coord` failed.
    #[error(transparent)]
    Coord(#[from] CoordError),
    /// A ZooKeeper request failed.
    #[error("ZooKeeper {op} {path}: {source}")]
    Zk {
        /// The request (`create`, `delete`, `get_data`, …).
        op: &'static str,
        /// The znode.
        path: String,
        /// The client's error.
        #[source]
        source: zookeeper_client::Error,
    },
    /// A ZooKeeper multi-write failed.
    #[error("ZooKeeper multi-write {path}: {source}")]
    Multi {
        /// The znode the multi-write was for.
        path: String,
        /// The client's error.
        #[source]
        source: MultiWriteError,
    },
    /// The ZooKeeper session ended (expired, closed, auth failed).
    #[error("ZooKeeper session {0}")]
    SessionEnded(String),
    /// A process znode kept getting new children while it was being removed.
    #[error("remove {path}: children keep appearing")]
    ChildrenKeepAppearing {
        /// The process znode.
        path: String,
    },
    /// The HTTP client for pulling batch data could not be built.
    #[error("HTTP client: {0}")]
    HttpClient(#[source] reqwest::Error),
    /// Batch data could not be pulled from the node holding it.
    #[error("pulling {url}: {source}")]
    Pull {
        /// The URL.
        url: String,
        /// The client's error or the HTTP status.
        #[source]
        source: FetchError,
    },
    /// The node holding a stage's data is gone: its stage-done child was deleted so the stage
    /// runs again.
    #[error("node {node} holding the {stage} data is gone ({source}); redoing that stage")]
    ProducerGone {
        /// The node that produced the data.
        node: u32,
        /// The stage (`extracted`, `transformed`).
        stage: &'static str,
        /// Why pulling failed.
        #[source]
        source: FetchError,
    },
    /// The node a stage-done child points at is up but no longer holds the data (404): the
    /// child was deleted so the stage runs again.
    #[error("node {node} no longer holds the {stage} data ({url}); redoing that stage")]
    DataGone {
        /// The node that produced the data.
        node: u32,
        /// The stage (`extracted`, `transformed`).
        stage: &'static str,
        /// What was asked for.
        url: String,
    },
    /// A znode holds JSON that does not parse.
    #[error("{what} JSON: {source}")]
    Json {
        /// Which record (`selected`, `termin`, …).
        what: &'static str,
        /// The parser's error.
        #[source]
        source: serde_json::Error,
    },
    /// Pulled batch data does not decode.
    #[error(transparent)]
    Codec(#[from] CodecError),
    /// A stage got data of another stage (a bug).
    #[error("unexpected data for {0}")]
    UnexpectedData(&'static str),
    /// Entries of a Select batch do not decode.
    #[error(transparent)]
    Extract(#[from] ExtractError),
    /// The pipeline's mappings do not compile.
    #[error(transparent)]
    Definition(#[from] ModelError),
    /// The source or target tables are not what the pipeline needs, or cannot be checked.
    #[error(transparent)]
    Targets(#[from] TargetCheckError),
    /// The embedded canal destination could not start.
    #[error(transparent)]
    Instance(#[from] InstanceError),
    /// The embedded destination's store refused a request.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The embedded destination refused Select's subscription filter.
    #[error(transparent)]
    Filter(#[from] FilterError),
    /// Load failed a batch: Select rolls back and redoes every batch in flight.
    #[error("load of process {process} failed: {error}")]
    LoadFailed {
        /// The process.
        process: u64,
        /// Load's error, as its termin says.
        error: String,
    },
    /// Writing the termins of loaded processes failed (they are loaded again).
    #[error(transparent)]
    Finish(#[from] crate::pipeline::load::finisher::FinishError),
    /// The task working on one batch of an Extract or Transform worker panicked.
    #[error("a stage task ended abnormally: {0}")]
    StageTask(tokio::task::JoinError),
}

impl RuntimeError {
    /// Whether starting again after a short backoff may succeed. When false, an operator has to
    /// change something (the definition, the target's tables) or the node has a bug; the worker
    /// checks again only after [`crate::runtime::retry::RECHECK`].
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::UnexpectedData(_) | Self::Definition(_) => false,
            Self::Targets(e) => !e.is_definition(),
            _ => true,
        }
    }

    /// A [`RuntimeError::Zk`] for `op` on `path`.
    pub(crate) fn zk(
        op: &'static str,
        path: impl Into<String>,
    ) -> impl FnOnce(zookeeper_client::Error) -> Self {
        let path = path.into();
        move |source| Self::Zk { op, path, source }
    }
}
