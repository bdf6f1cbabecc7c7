//! Extract (on select nodes) and Transform (on load nodes): any eligible node claims a batch whose
//! previous stage is done with an ephemeral lock child, pulls the data, works on it and writes the
//! stage-done child. Batches of one pipeline go through these stages in parallel.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};
use zookeeper_client::{Acls, Client, CreateMode, MultiWriteError};

use super::view::{self, PipelineView};
use super::{
    pause, persistent, pull, retry_until_stopped, sweep, worker_clients, NodeOptions, Produced,
    Registry, Stage, StageData,
};
use crate::extract::{extract, transform};
use crate::model::{Channel, CompiledMapping};
use crate::paths;

/// Which stage a worker runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Work {
    /// `selected` → `extracted`.
    Extract,
    /// `extracted` → `transformed`.
    Transform,
}

impl Work {
    fn input(self) -> Stage {
        match self {
            Work::Extract => Stage::Selected,
            Work::Transform => Stage::Extracted,
        }
    }

    fn output(self) -> Stage {
        match self {
            Work::Extract => Stage::Extracted,
            Work::Transform => Stage::Transformed,
        }
    }

    fn lock(self) -> &'static str {
        match self {
            Work::Extract => "extract-lock",
            Work::Transform => "transform-lock",
        }
    }
}

/// Runs one stage for one pipeline until `stop`.
pub(super) async fn run_stage(
    work: Work,
    opts: NodeOptions,
    channel: Channel,
    registry: Registry,
    view: PipelineView,
    stop: CancellationToken,
) {
    let mappings = match CompiledMapping::compile(&channel.pipeline) {
        Ok(m) => m,
        Err(e) => {
            warn!(error = %e, "invalid mappings; the stage does not run");
            return;
        }
    };
    let (o, c, m, r, v, s) = (&opts, &channel, &mappings[..], &registry, &view, &stop);
    retry_until_stopped(work.output().name(), &stop, || {
        stage_loop(work, o, c, m, r, v, s)
    })
    .await;
}

async fn stage_loop(
    work: Work,
    opts: &NodeOptions,
    channel: &Channel,
    mappings: &[CompiledMapping],
    registry: &Registry,
    view: &PipelineView,
    stop: &CancellationToken,
) -> Result<(), String> {
    let (cid, pid) = (channel.id, channel.pipeline.id);
    let (zk, http) = worker_clients(opts).await?;
    let mut last_sweep = std::time::Instant::now();
    let mut window = view.subscribe();
    let done = metrics::counter!(
        "otter_stage_batches_total",
        "pipeline" => pid.to_string(),
        "stage" => work.output().name()
    );
    let (input, output, lock_name) = (work.input().name(), work.output().name(), work.lock());
    loop {
        if stop.is_cancelled() {
            return Ok(());
        }
        let snap = window.borrow_and_update().clone();
        sweep(registry, pid, &snap, &mut last_sweep);
        let mut claimed = None;
        for (id, p) in &snap.processes {
            if !p.has(input) || p.has(output) || p.has(lock_name) {
                continue;
            }
            let proc_path = paths::process(cid, pid, &p.name);
            if try_lock(&zk, &format!("{proc_path}/{lock_name}"), opts.id).await? {
                claimed = Some((*id, proc_path));
                break;
            }
        }
        let Some((id, proc_path)) = claimed else {
            // Nothing to claim: wait for the window to change (the 1 s is only a safety net).
            if view::changed(&mut window, stop, Duration::from_secs(1))
                .await
                .is_none()
            {
                return Ok(());
            }
            continue;
        };
        let lock = format!("{proc_path}/{lock_name}");
        let outcome = run_one(
            work, opts, &zk, &http, registry, mappings, channel, id, &proc_path,
        )
        .await;
        let ok = outcome.is_ok();
        let released = matches!(outcome, Ok(true));
        match outcome {
            Ok(_) => {
                done.increment(1);
            }
            Err(e) => {
                warn!(process = id, stage = output, error = %e, "stage failed; will retry");
                if pause(stop, Duration::from_millis(200)).await {
                    let _ = zk.delete(&lock, None).await;
                    return Ok(());
                }
            }
        }
        if !released {
            let _ = zk.delete(&lock, None).await;
        }
        // Let the view catch up with what this worker just did before looking for work again.
        view::settle(&mut window, Duration::from_secs(2), |s| {
            s.processes
                .get(&id)
                .is_none_or(|p| !p.has(lock_name) && (p.has(output) || !ok))
        })
        .await;
    }
}

/// Creates the ephemeral lock; false when someone else holds it or the process is gone.
async fn try_lock(zk: &Client, lock: &str, nid: u32) -> Result<bool, String> {
    let eph = CreateMode::Ephemeral.with_acls(Acls::anyone_all());
    match zk.create(lock, nid.to_string().as_bytes(), &eph).await {
        Ok(_) => Ok(true),
        Err(zookeeper_client::Error::NodeExists) | Err(zookeeper_client::Error::NoNode) => {
            Ok(false)
        }
        Err(e) => Err(format!("lock {lock}: {e}")),
    }
}

/// Runs one stage of one batch: pulls the input, works on it, writes the output. True when the
/// lock went in the same transaction as the output (else the caller releases it).
#[allow(clippy::too_many_arguments)]
async fn run_one(
    work: Work,
    opts: &NodeOptions,
    zk: &Client,
    http: &reqwest::Client,
    registry: &Registry,
    mappings: &[CompiledMapping],
    channel: &Channel,
    id: u64,
    proc_path: &str,
) -> Result<bool, String> {
    let pid = channel.pipeline.id;
    let input = pull(opts, zk, http, registry, pid, id, work.input(), proc_path).await?;
    let batch = match (work, input) {
        (Work::Extract, StageData::Entries(entries)) => {
            extract(&entries, mappings, channel.pipeline.ddl_sync).map_err(|e| e.to_string())?
        }
        (Work::Transform, StageData::Batch(b)) => {
            // Extract's data is not needed once transformed: taking it saves a copy of every row.
            registry.forget_stage(pid, id, Stage::Extracted);
            transform(
                Arc::try_unwrap(b).unwrap_or_else(|b| (*b).clone()),
                mappings,
            )
        }
        _ => return Err(format!("unexpected data for {}", work.output().name())),
    };
    let rows = batch.rows.len();
    registry.put(pid, id, work.output(), StageData::Batch(Arc::new(batch)));
    let produced = Produced::new(opts, pid, id, work.output(), rows);
    // The stage-done child and the release of the lock in one transaction: one write (and one
    // fsync on the ensemble) instead of two.
    let output = format!("{proc_path}/{}", work.output().name());
    let mut multi = zk.new_multi_writer();
    multi
        .add_create(
            &output,
            &serde_json::to_vec(&produced).unwrap_or_default(),
            &persistent(),
        )
        .and_then(|()| multi.add_delete(&format!("{proc_path}/{}", work.lock()), None))
        .map_err(|e| format!("{output}: {e}"))?;
    match multi.commit().await {
        Ok(_) => {
            debug!(process = id, rows, stage = work.output().name(), "done");
            Ok(true)
        }
        // The process was discarded meanwhile (a new mainstem redoes it): nothing to do.
        Err(MultiWriteError::OperationFailed {
            index: 0,
            source: zookeeper_client::Error::NoNode,
        }) => {
            registry.forget(pid, id);
            Ok(false)
        }
        // Done already (a lock taken over from a node that died after writing it).
        Err(MultiWriteError::OperationFailed {
            index: 0,
            source: zookeeper_client::Error::NodeExists,
        }) => Ok(false),
        Err(e) => Err(format!("{output}: {e}")),
    }
}
