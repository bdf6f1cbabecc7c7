//! The Extract (on select nodes) and Transform (on load nodes) workers of a pipeline: any eligible
//! node claims a batch whose previous stage is done with an ephemeral lock child, pulls the data,
//! works on it and writes the stage-done child. Batches of one pipeline go through these stages
//! in parallel, up to the pipeline's `parallelism` at once on one node.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::task::JoinSet;
use tracing::{debug, warn};
use zookeeper_client::Client;

use crate::model::CompiledMapping;
use crate::pipeline::extract::{extract, extract_decoded, ExtractOptions};
use crate::pipeline::transform::transform;
use crate::pipeline::StageContext;
use crate::process::finish::Completed;
use crate::process::view;
use crate::process::{Lock, Process, Produced, Stage};
use crate::runtime::error::RuntimeError;
use crate::runtime::pull::{pull, Claim};
use crate::runtime::registry::StageData;
use crate::runtime::retry::{retry_until_stopped, Progress};

/// Which stage a worker runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Work {
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

    fn lock(self) -> Lock {
        match self {
            Work::Extract => Lock::Extract,
            Work::Transform => Lock::Transform,
        }
    }

    fn task_name(self) -> &'static str {
        match self {
            Work::Extract => "extract",
            Work::Transform => "transform",
        }
    }
}

/// Runs one stage for one pipeline until `ctx.stop`.
pub(crate) async fn run_stage(work: Work, ctx: StageContext) {
    let mappings: Arc<[CompiledMapping]> = match CompiledMapping::compile(&ctx.channel.pipeline) {
        Ok(m) => m.into(),
        Err(e) => {
            warn!(error = %e, "invalid mappings; the stage does not run");
            return;
        }
    };
    let (c, m) = (&ctx, &mappings);
    retry_until_stopped(ctx.task(work.task_name()), &ctx.stop, |progress| {
        stage_loop(work, c, m, progress)
    })
    .await;
}

/// How long a batch finished here is not claimed again while the view does not show it finished.
const SETTLE: Duration = Duration::from_secs(2);

/// How one batch's task ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    /// Another node holds the batch.
    NotClaimed,
    /// The output is written and the lock released in the same transaction.
    Written,
    /// Nothing more to do for the batch (discarded, or done already); the lock is still held.
    Done,
}

/// One batch being worked on, with what its task returned.
type Running = JoinSet<(Process, Result<Outcome, RuntimeError>)>;

/// Claims batches whose input is ready and works on up to `parallelism` of them at once (each in
/// its own task), so that a stage whose every claim and completion is a round trip to a distant
/// ZooKeeper leader keeps the window full instead of waiting for each batch in turn. The order of
/// batches does not matter here: Load applies them strictly in order.
async fn stage_loop(
    work: Work,
    ctx: &StageContext,
    mappings: &Arc<[CompiledMapping]>,
    progress: Progress,
) -> Result<(), RuntimeError> {
    let (opts, registry, view, stop) = (&ctx.opts, &ctx.registry, &ctx.view, &ctx.stop);
    let (cid, pid) = (ctx.cid(), ctx.pid());
    let (zk, http) = opts.worker_clients().await?;
    // The input records are read on a session of their own: ZooKeeper answers a session's read
    // only after its earlier writes, so on the claims' session the read would wait for the
    // lock's round trip.
    let reader = opts.zk.connect().await?;
    let mut last_sweep = Instant::now();
    let mut window = view.subscribe();
    let done = metrics::counter!(
        "otter_stage_batches_total",
        "pipeline" => pid.to_string(),
        "stage" => work.output().name()
    );
    let (input, output, lock) = (work.input(), work.output(), work.lock());
    let limit = ctx.channel.pipeline.parallelism.max(1) as usize;
    let mut running = Running::new();
    // Claimed by this worker and not finished: never claimed twice.
    let mut busy: BTreeMap<u64, Process> = BTreeMap::new();
    // Finished here, not yet seen finished in the view (which lags this node's own writes by a
    // round trip): not claimed again meanwhile, for at most `SETTLE` (a window reset numbers its
    // new processes from 0 again, so an id seen finished may come back as a new batch).
    let mut finished: HashMap<u64, Instant> = HashMap::new();
    let result = loop {
        if stop.is_cancelled() {
            break Ok(());
        }
        let snap = window.borrow_and_update().clone();
        registry.sweep(pid, &snap, &mut last_sweep);
        finished.retain(|id, at| {
            at.elapsed() < SETTLE
                && snap
                    .processes
                    .get(id)
                    .is_some_and(|p| !p.has(output) && p.has(input))
        });
        for (id, p) in &snap.processes {
            if busy.len() >= limit {
                break;
            }
            if busy.contains_key(id) || finished.contains_key(id) {
                continue;
            }
            if !p.has(input) || p.has(output) || p.has(lock) {
                continue;
            }
            let process = Process::new(cid, pid, *id, p.name.clone());
            busy.insert(*id, process.clone());
            let (ctx, zk, reader, http, mappings) = (
                ctx.clone(),
                zk.clone(),
                reader.clone(),
                http.clone(),
                mappings.clone(),
            );
            running.spawn(async move {
                // The claim and the input at once: across a WAN each is a round trip. The early
                // pull changes nothing; should another node win the claim, its data is dropped.
                let (opts, registry) = (&ctx.opts, &ctx.registry);
                let (locked, early) = tokio::join!(
                    process.try_lock(&zk, lock, opts.id),
                    pull(opts, &reader, &http, registry, &process, input, Claim::Pending)
                );
                match locked {
                    Ok(Some(_)) => {}
                    Ok(None) => return (process, Ok(Outcome::NotClaimed)),
                    // (A lock the failed create may have made is removed by `try_lock`.)
                    Err(e) => {
                        warn!(process = process.id, stage = output.name(), error = %e, "cannot claim the batch; will retry");
                        tokio::time::sleep(Duration::from_millis(200)).await;
                        return (process, Err(e));
                    }
                }
                let outcome =
                    run_one(work, &ctx, &zk, &http, &mappings, &process, early.ok()).await;
                if let Err(e) = &outcome {
                    warn!(process = process.id, stage = output.name(), error = %e, "stage failed; will retry");
                    // Not at once: whatever failed may need a moment.
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                if !matches!(outcome, Ok(Outcome::Written)) {
                    process.release(&zk, lock).await;
                }
                (process, outcome)
            });
        }
        tokio::select! {
            Some(joined) = running.join_next(), if !running.is_empty() => {
                let (process, outcome) = match joined {
                    Ok(r) => r,
                    Err(e) => break Err(RuntimeError::StageTask(e)),
                };
                busy.remove(&process.id);
                // ZooKeeper refused the claim itself (the session expired, say): the loop
                // starts over on a new session instead of claiming on this one forever.
                if let Err(e @ RuntimeError::Zk { op: "create", .. }) = outcome {
                    break Err(e);
                }
                if matches!(outcome, Ok(Outcome::Written | Outcome::Done)) {
                    finished.insert(process.id, Instant::now());
                    done.increment(1);
                    progress.made();
                }
            }
            // Nothing finished: wait for the window to change (the 1 s is only a safety net).
            changed = view::changed(&mut window, stop, Duration::from_secs(1)) => {
                if changed.is_none() {
                    break Ok(());
                }
            }
        }
    };
    // Stopping (or starting over on a new session): the batches still being worked on are given
    // up, their locks released so that anyone may take them (they also vanish with the session).
    running.abort_all();
    while running.join_next().await.is_some() {}
    for process in busy.values() {
        process.release(&zk, lock).await;
    }
    result
}

/// Runs one stage of one claimed batch: pulls the input (unless `early` has it), works on it,
/// writes the output. [`Outcome::Written`] when the lock went in the same transaction as the
/// output (else the caller releases it).
async fn run_one(
    work: Work,
    ctx: &StageContext,
    zk: &Client,
    http: &reqwest::Client,
    mappings: &[CompiledMapping],
    process: &Process,
    early: Option<StageData>,
) -> Result<Outcome, RuntimeError> {
    let (opts, registry) = (&ctx.opts, &ctx.registry);
    let (pid, id) = (ctx.pid(), process.id);
    let input = match early {
        Some(input) => input,
        None => pull(opts, zk, http, registry, process, work.input(), Claim::Held).await?,
    };
    let extract_opts = ExtractOptions {
        ddl_sync: ctx.channel.pipeline.ddl_sync,
        source_site: ctx.channel.pipeline.source_site(),
        pipeline: pid,
        two_way: ctx.channel.reverse.is_some(),
    };
    let batch = match (work, input) {
        (Work::Extract, StageData::Entries(entries)) => match entries.take_decoded() {
            // Select decoded them already (to see whether they carry mapped rows).
            Some(decoded) => extract_decoded(decoded, mappings, &extract_opts)?,
            None => extract(entries.raw(), mappings, &extract_opts)?,
        },
        (Work::Transform, StageData::Batch(b)) => {
            // Extract's data is not needed once transformed: taking it saves a copy of every row.
            registry.forget_stage(pid, id, Stage::Extracted);
            transform(
                Arc::try_unwrap(b).unwrap_or_else(|b| (*b).clone()),
                mappings,
            )
        }
        _ => return Err(RuntimeError::UnexpectedData(work.output().name())),
    };
    let rows = batch.rows.len();
    registry.put(pid, id, work.output(), StageData::Batch(Arc::new(batch)));
    let produced = Produced::new(opts.id, &opts.http_address, pid, id, work.output(), rows);
    match process
        .complete(zk, work.output(), &produced, work.lock())
        .await?
    {
        Completed::Written => {
            debug!(process = id, rows, stage = work.output().name(), "done");
            Ok(Outcome::Written)
        }
        // The process was discarded meanwhile (a new mainstem redoes it): nothing to do.
        Completed::Discarded => {
            registry.forget(pid, id);
            Ok(Outcome::Done)
        }
        // Done already (a lock taken over from a node that died after writing it).
        Completed::AlreadyDone => Ok(Outcome::Done),
    }
}
