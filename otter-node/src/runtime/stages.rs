//! Which stages of a pipeline this node runs: Select and Extract on its select nodes, Transform
//! and Load on its load nodes, all following one view of the pipeline's window.

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::model::{Channel, ChannelStatus};
use crate::pipeline::load::worker::run_load;
use crate::pipeline::select::run_select;
use crate::pipeline::stage_worker::{run_stage, Work};
use crate::process::view::PipelineView;
use crate::runtime::options::NodeOptions;
use crate::runtime::registry::Registry;

/// Spawns the stages of `ch`'s pipeline that name this node, until `cancel`; `status` follows
/// the channel's status.
pub(crate) fn spawn_stages(
    opts: &NodeOptions,
    ch: &Channel,
    status: watch::Receiver<ChannelStatus>,
    registry: &Registry,
    cancel: &CancellationToken,
) {
    let (cid, p) = (ch.id, &ch.pipeline);
    let view = {
        let _span = tracing::info_span!("view", channel = cid, pipeline = p.id).entered();
        PipelineView::spawn(opts.zk.clone(), cid, p.id, cancel.clone())
    };
    let spawn_stage = |work: Work, span: tracing::Span| {
        tokio::spawn(
            run_stage(
                work,
                opts.clone(),
                ch.clone(),
                registry.clone(),
                view.clone(),
                cancel.clone(),
            )
            .instrument(span),
        );
    };
    if p.select_nodes.contains(&opts.id) {
        let span = tracing::info_span!("select", channel = cid, pipeline = p.id);
        tokio::spawn(
            run_select(
                opts.clone(),
                ch.clone(),
                status,
                registry.clone(),
                view.clone(),
                cancel.clone(),
            )
            .instrument(span),
        );
        spawn_stage(
            Work::Extract,
            tracing::info_span!("extract", channel = cid, pipeline = p.id),
        );
    }
    if p.load_nodes.contains(&opts.id) {
        spawn_stage(
            Work::Transform,
            tracing::info_span!("transform", channel = cid, pipeline = p.id),
        );
        let span = tracing::info_span!("load", channel = cid, pipeline = p.id);
        tokio::spawn(
            run_load(
                opts.clone(),
                ch.clone(),
                registry.clone(),
                view.clone(),
                cancel.clone(),
            )
            .instrument(span),
        );
    }
}
