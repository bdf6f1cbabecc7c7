//! Extract (on select nodes) and Transform (on load nodes): any eligible node claims a batch whose
//! previous stage is done with an ephemeral lock child, pulls the data, works on it and writes the
//! stage-done child. Batches of one pipeline go through these stages in parallel.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};
use zookeeper_client::{Acls, Client, CreateMode};

use super::{
    list_processes, pause, persistent, pull, retry_until_stopped, sweep, NodeOptions, Produced,
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
    stop: CancellationToken,
) {
    let mappings = match CompiledMapping::compile(&channel.pipeline) {
        Ok(m) => m,
        Err(e) => {
            warn!(error = %e, "invalid mappings; the stage does not run");
            return;
        }
    };
    let (o, c, m, r, s) = (&opts, &channel, &mappings[..], &registry, &stop);
    retry_until_stopped(work.output().name(), &stop, || {
        stage_loop(work, o, c, m, r, s)
    })
    .await;
}

async fn stage_loop(
    work: Work,
    opts: &NodeOptions,
    channel: &Channel,
    mappings: &[CompiledMapping],
    registry: &Registry,
    stop: &CancellationToken,
) -> Result<(), String> {
    let (cid, pid) = (channel.id, channel.pipeline.id);
    let zk = opts.zk.connect().await.map_err(|e| e.to_string())?;
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .map_err(|e| e.to_string())?;
    let mut last_sweep = std::time::Instant::now();
    let mut idle = super::Idle::default();
    let done = metrics::counter!(
        "otter_stage_batches_total",
        "pipeline" => pid.to_string(),
        "stage" => work.output().name()
    );
    loop {
        if stop.is_cancelled() {
            return Ok(());
        }
        let procs = list_processes(&zk, cid, pid).await?;
        sweep(registry, pid, &procs, &mut last_sweep);
        let mut claimed = None;
        for (id, name) in procs {
            let proc_path = paths::process(cid, pid, &name);
            let children = match zk.list_children(&proc_path).await {
                Ok(c) => c,
                Err(_) => continue,
            };
            let has = |c: &str| children.iter().any(|x| x == c);
            if !has(work.input().name()) || has(work.output().name()) || has(work.lock()) {
                continue;
            }
            if try_lock(&zk, &format!("{proc_path}/{}", work.lock()), opts.id).await? {
                claimed = Some((id, proc_path));
                break;
            }
        }
        let Some((id, proc_path)) = claimed else {
            if registry.idle(stop, idle.next()).await {
                return Ok(());
            }
            continue;
        };
        idle.reset();
        let lock = format!("{proc_path}/{}", work.lock());
        let outcome = run_one(
            work, opts, &zk, &http, registry, mappings, channel, id, &proc_path,
        )
        .await;
        match outcome {
            Ok(()) => {
                done.increment(1);
            }
            Err(e) => {
                warn!(process = id, stage = work.output().name(), error = %e, "stage failed; will retry");
                if pause(stop, Duration::from_millis(200)).await {
                    let _ = zk.delete(&lock, None).await;
                    return Ok(());
                }
            }
        }
        let _ = zk.delete(&lock, None).await;
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
) -> Result<(), String> {
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
    match zk
        .create(
            &format!("{proc_path}/{}", work.output().name()),
            &serde_json::to_vec(&produced).unwrap_or_default(),
            &persistent(),
        )
        .await
    {
        Ok(_) => {
            debug!(process = id, rows, stage = work.output().name(), "done");
            Ok(())
        }
        // The process was discarded meanwhile (a new mainstem redoes it): nothing to do.
        Err(zookeeper_client::Error::NoNode) => {
            registry.forget(pid, id);
            Ok(())
        }
        Err(e) => Err(format!("{}: {e}", work.output().name())),
    }
}
