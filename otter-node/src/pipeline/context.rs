//! What the stage workers of one pipeline on this node share.

use tokio_util::sync::CancellationToken;

use crate::model::Channel;
use crate::pipeline::preclaim::Preclaims;
use crate::process::view::PipelineView;
use crate::runtime::options::NodeOptions;
use crate::runtime::registry::Registry;
use crate::runtime::retry::Task;

/// A pipeline's stage worker's setting: the node, the channel, the node's stage data, the view of
/// the pipeline's window, and when to stop. Cheap to clone (the parts are shared).
#[derive(Debug, Clone)]
pub(crate) struct StageContext {
    /// This node.
    pub opts: NodeOptions,
    /// The channel (its pipeline is the one worked on).
    pub channel: Channel,
    /// The stage data this node holds.
    pub registry: Registry,
    /// The pipeline's window as last seen.
    pub view: PipelineView,
    /// The batches this node's Select claimed for this node's Load.
    pub preclaims: Preclaims,
    /// Cancelled when the worker is to stop.
    pub stop: CancellationToken,
}

impl StageContext {
    /// The channel id.
    pub fn cid(&self) -> u32 {
        self.channel.id
    }

    /// The pipeline id.
    pub fn pid(&self) -> u32 {
        self.channel.pipeline.id
    }

    /// The retry labels of `stage` of this pipeline.
    pub fn task(&self, stage: &'static str) -> Task {
        Task {
            pipeline: self.pid(),
            stage,
        }
    }

    /// The same context stopping with `stop` instead.
    pub fn with_stop(&self, stop: CancellationToken) -> Self {
        Self {
            stop,
            ..self.clone()
        }
    }
}
