//! Which stages of a pipeline this node runs: Select and Extract on its select nodes, Transform
//! and Load on its load nodes, all following one view of the pipeline's window.

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::model::{Channel, ChannelStatus};
use crate::pipeline::load::worker::run_load;
use crate::pipeline::select::run_select;
use crate::pipeline::stage_worker::{run_stage, Work};
use crate::pipeline::StageContext;
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
    let ctx = StageContext {
        opts: opts.clone(),
        channel: ch.clone(),
        registry: registry.clone(),
        view,
        preclaims: Default::default(),
        stop: cancel.clone(),
    };
    let pid = p.id;
    if p.select_nodes.contains(&opts.id) {
        let span = tracing::info_span!("select", channel = cid, pipeline = pid);
        tokio::spawn(run_select(ctx.clone(), status).instrument(span));
        let span = tracing::info_span!("extract", channel = cid, pipeline = pid);
        tokio::spawn(run_stage(Work::Extract, ctx.clone()).instrument(span));
    }
    if p.load_nodes.contains(&opts.id) {
        let span = tracing::info_span!("transform", channel = cid, pipeline = pid);
        tokio::spawn(run_stage(Work::Transform, ctx.clone()).instrument(span));
        let span = tracing::info_span!("load", channel = cid, pipeline = pid);
        tokio::spawn(run_load(ctx).instrument(span));
    }
}
