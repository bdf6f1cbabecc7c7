//! The in-site hand-off: a small Select batch extracted and transformed by the Select node itself,
//! its three stage-done children written in one ZooKeeper transaction.
//!
//! Scheduling every batch through ZooKeeper, as Otter does, costs each batch nine fsynced writes
//! (the process, `selected`, two stage locks and two stage outputs, the load lock, the termin with
//! the removal, the termin's deletion): at a trickle of single-row transactions that is most of
//! ZooKeeper's CPU, and every ZooKeeper fsync that stalls on a busy disk stalls each batch that
//! waits on it. When the Select node may also run Transform (it is one of the pipeline's
//! `load_nodes`; Extract always may run there) and the batch is small, nothing is gained by
//! letting other nodes claim those stages: the node does them at once, in memory, and writes
//! `selected`, `extracted` and `transformed` together. A batch then costs five writes. Larger
//! batches keep the stages on the workers, where several batches are extracted and transformed in
//! parallel while Select reads on.
//!
//! Nothing else changes: the children say where the data is (Load on another node pulls
//! `transformed` over HTTP as before); the Select data stays for a redo, the extracted rows are not
//! kept (should `transformed` be lost, its redo finds no `extracted` data here and redoes Extract
//! from the Select data).

use bytes::Bytes;
use canal_protocol::entry::Entry;
use prost::Message as _;

use crate::batch::LoadBatch;
use crate::model::CompiledMapping;
use crate::pipeline::extract::{extract_decoded, ExtractOptions};
use crate::pipeline::transform::transform;
use crate::pipeline::StageContext;

/// Most entries of a batch the Select node extracts and transforms itself (a single-row
/// transaction is three: begin, row, end).
pub(crate) const INLINE_MAX_ENTRIES: usize = 256;

/// Whether a batch of `entries` goes through Extract and Transform on the Select node.
pub(crate) fn inline(ctx: &StageContext, entries: usize) -> bool {
    entries <= INLINE_MAX_ENTRIES && ctx.channel.pipeline.load_nodes.contains(&ctx.opts.id)
}

/// Extracts and transforms `entries` (decoded already, or decoded here) as the workers would;
/// `None` when they do not decode or extract (the workers then take the batch and report it).
pub(crate) fn extract_and_transform(
    ctx: &StageContext,
    mappings: &[CompiledMapping],
    entries: &[Bytes],
    decoded: Option<Vec<Entry>>,
) -> Option<LoadBatch> {
    let decoded = match decoded {
        Some(d) => d,
        None => entries
            .iter()
            .map(|b| Entry::decode(b.clone()))
            .collect::<Result<Vec<_>, _>>()
            .ok()?,
    };
    let p = &ctx.channel.pipeline;
    let opts = ExtractOptions {
        ddl_sync: p.ddl_sync,
        source_site: p.source_site(),
        pipeline: p.id,
        two_way: ctx.channel.reverse.is_some(),
    };
    let batch = extract_decoded(decoded, mappings, &opts).ok()?;
    Some(transform(batch, mappings))
}
