//! The Load stage of a pipeline: the oldest transformed process, strictly in order, claimed with
//! an ephemeral lock whose creation zxid fences the load's transactions at the target; its termin
//! tells Select to ack the canal batch.

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tracing::{error, warn};

use crate::pipeline::heartbeat::{self, Delay};
use crate::pipeline::load::ahead::Ahead;
use crate::pipeline::load::fence::note_fenced;
use crate::pipeline::load::finisher::Finisher;
use crate::pipeline::load::{test_hook, Fence, LoadError, Loader, MarkSpec};
use crate::pipeline::preclaim::{Preclaims, Taken};
use crate::pipeline::StageContext;
use crate::process::view::{self, Snapshot};
use crate::process::{Lock, Process, Stage, Termin};
use crate::runtime::error::RuntimeError;
use crate::runtime::pull::{pull, Claim};
use crate::runtime::registry::StageData;
use crate::runtime::retry::{pause, retry_until_stopped, Progress};

/// Load side of one pipeline: loads the oldest transformed process when nobody else does.
pub(crate) async fn run_load(ctx: StageContext) {
    let p = &ctx.channel.pipeline;
    let loader = Loader::new(&p.target).and_then(|l| {
        l.marking(MarkSpec {
            channel: ctx.cid(),
            pipeline: p.id,
            source_site: p.source_site().to_string(),
            priority_site: ctx.channel.priority_site().to_string(),
        })
        .spreading(&p.target, p.load_connections as usize)
    });
    let loader = match loader {
        Ok(l) => l,
        Err(e) => {
            error!(error = %e, "cannot set up the target; Load does not run");
            return;
        }
    };
    // Test-only; see `test_hook`. Taken by the first load.
    let pause_ms = test_hook::pause_before_load().map_or(0, |d| d.as_millis() as u64);
    if pause_ms > 0 {
        warn!(
            pause_ms,
            "test hook {} is set: the first load pauses unwatched",
            test_hook::PAUSE_BEFORE_LOAD
        );
    }
    let test_pause = AtomicU64::new(pause_ms);
    let (c, l, t) = (&ctx, &loader, &test_pause);
    retry_until_stopped(ctx.task("load"), &ctx.stop, |progress| {
        load_loop(c, l, t, progress)
    })
    .await;
}

/// The processes of the window from id `from` on that no node has claimed for Load (nor this
/// node's Select for it), in order.
fn unclaimed(
    snap: &Snapshot,
    from: u64,
    cid: u32,
    pid: u32,
    preclaims: &Preclaims,
) -> Vec<Process> {
    snap.processes
        .range(from..)
        .filter(|(id, p)| !p.has(Lock::Load) && !preclaims.is_claimed(**id, &p.name))
        .map(|(id, p)| Process::new(cid, pid, *id, p.name.clone()))
        .collect()
}

/// How long a finished process the view still shows is left alone.
const FINISHED_HINT: Duration = Duration::from_secs(2);

async fn load_loop(
    ctx: &StageContext,
    loader: &Loader,
    test_pause: &AtomicU64,
    progress: Progress,
) -> Result<(), RuntimeError> {
    let (opts, registry, view, stop) = (&ctx.opts, &ctx.registry, &ctx.view, &ctx.stop);
    let (cid, pid) = (ctx.cid(), ctx.pid());
    let (zk, http) = opts.worker_clients().await?;
    // This node's Select opens its in-site batches claimed for this session (see `preclaim`).
    let preclaims = &ctx.preclaims;
    let _lent = preclaims.lend(&zk);
    // ZooKeeper answers a session's requests in order, a read only after the session's earlier
    // writes: the reads of the batches' records and the termin writes get sessions of their own,
    // so that across a WAN neither waits a round trip behind a lock being created.
    let reader = opts.zk.connect().await?;
    let mut checked: HashSet<(String, String)> = HashSet::new();
    let mut last_sweep = Instant::now();
    let mut window = view.subscribe();
    let rows_total = metrics::counter!("otter_load_batches_total", "pipeline" => pid.to_string());
    // Loaded processes whose termins and removals are still being written: the next process is
    // loaded meanwhile, so the target does not wait for ZooKeeper between batches (see
    // `finisher`).
    let mut finisher = Finisher::new(opts.zk.connect().await?);
    // Processes this loop finished that the view may still show (it lags the writes by a round
    // trip): claiming one would be a failed create, itself a ZooKeeper transaction. Forgotten
    // once the view shows them gone, or after `FINISHED_HINT` (a name comes back after a
    // window reset).
    let mut finished: Vec<(String, Instant)> = Vec::new();
    // The processes after the current one, claimed while it loads.
    let mut ahead = Ahead::new();
    let claimed_ahead =
        metrics::counter!("otter_load_claimed_ahead_total", "pipeline" => pid.to_string());
    let preclaimed =
        metrics::counter!("otter_load_preclaimed_total", "pipeline" => pid.to_string());
    let delay_gauge =
        metrics::gauge!("otter_pipeline_delay_seconds", "pipeline" => pid.to_string());
    let mut delay_published: Option<Instant> = None;
    loop {
        if stop.is_cancelled() {
            // What is loaded gets its termins (else it is loaded again by whoever goes on).
            return Ok(finisher.flush().await?);
        }
        let snap = window.borrow_and_update().clone();
        registry.sweep(pid, &snap, &mut last_sweep);
        // Strictly in order: only the oldest process (after the one being finished), once
        // transformed and unclaimed.
        finisher.poll()?;
        finished.retain(|(name, at)| {
            at.elapsed() < FINISHED_HINT && snap.processes.values().any(|p| p.name == *name)
        });
        let next = snap.processes.iter().find(|(id, p)| {
            !finisher.holds(**id) && !finished.iter().any(|(name, _)| *name == p.name)
        });
        // Claimed by this node's Select when it opened the batch, or by this loop while the
        // previous batch loaded, if it is this one.
        let mut claimed = None;
        let is_next = next.map(|(id, p)| (*id, p.name.as_str()));
        let taken = is_next.map_or(Taken::No, |(id, name)| preclaims.take(&zk, id, name));
        let opening = matches!(taken, Taken::Opening);
        match (taken, is_next) {
            (Taken::Held(token, data), Some((id, name))) => {
                preclaimed.increment(1);
                claimed = Some((Process::new(cid, pid, id, name), token, Some(Ok(data))));
            }
            // Its lock is on its way with the process: neither claimed here nor waited for ahead.
            (Taken::Opening, _) => {}
            _ => {
                if let Some((process, token, data)) = ahead.take(&zk, is_next).await {
                    claimed_ahead.increment(1);
                    claimed = Some((process, token, Some(data)));
                }
            }
        }
        let (process, token, data) = match claimed {
            Some(c) => c,
            None => {
                // Strictly in order: only the oldest process (after the one being finished),
                // once transformed and unclaimed.
                let head = next
                    .filter(|(_, p)| !opening && p.has(Stage::Transformed) && !p.has(Lock::Load))
                    .map(|(id, p)| Process::new(cid, pid, *id, p.name.clone()));
                // The lock's creation zxid is the fencing token of this load's transactions.
                let token = match &head {
                    None => None,
                    Some(process) => process.try_lock(&zk, Lock::Load, opts.id).await?,
                };
                let (Some(process), Some(token)) = (head, token) else {
                    // Nothing to load yet. The next process, unclaimed but not transformed yet,
                    // is claimed now with every unclaimed one after it: its load starts as
                    // soon as Transform is done.
                    if let Some((next_id, _)) = next.filter(|(_, p)| {
                        !opening && !p.has(Stage::Transformed) && !p.has(Lock::Load)
                    }) {
                        ahead.claim(
                            ctx,
                            &zk,
                            &reader,
                            &http,
                            unclaimed(&snap, *next_id, cid, pid, preclaims),
                        );
                        continue;
                    }
                    // Complete the pending finish first (its failure restarts the loop, and
                    // the process is loaded again), then wait for the window to change (the
                    // 1 s is only a safety net).
                    if !finisher.is_idle() {
                        finisher.flush().await?;
                        continue;
                    }
                    let woke = tokio::select! {
                        c = view::changed(&mut window, stop, Duration::from_secs(1)) => c,
                        () = preclaims.changed() => Some(true),
                    };
                    if woke.is_none() {
                        return Ok(());
                    }
                    continue;
                };
                (process, token, None)
            }
        };
        let id = process.id;
        let data = match data {
            Some(d) => d,
            None => {
                pull(
                    opts,
                    &reader,
                    &http,
                    registry,
                    &process,
                    Stage::Transformed,
                    Claim::Held,
                )
                .await
            }
        };
        let data = match data {
            Ok(d) => d,
            // An inline process whose rows are gone cannot be redone stage by stage: failing it
            // makes Select redo every batch in flight from its cursor.
            Err(e @ (RuntimeError::DataGone { .. } | RuntimeError::ProducerGone { .. }))
                if process.is_inline() =>
            {
                error!(process = id, error = %e, "the batch's rows are gone; failing it");
                finisher.flush().await?;
                process
                    .finish(&zk, &Termin::failed(id, e.to_string()))
                    .await?;
                if pause(stop, Duration::from_secs(1)).await {
                    return Ok(());
                }
                continue;
            }
            Err(e) => {
                warn!(process = id, error = %e, "cannot get the batch; retrying");
                process.release(&zk, Lock::Load).await;
                if pause(stop, Duration::from_millis(200)).await {
                    return Ok(());
                }
                continue;
            }
        };
        // The processes after this one and those claimed already, if unclaimed, are claimed
        // (and pulled once transformed) while this one loads (see `ahead`).
        {
            let now = window.borrow().clone();
            let from = ahead.last().unwrap_or(id).max(id) + 1;
            ahead.claim(
                ctx,
                &zk,
                &reader,
                &http,
                unclaimed(&now, from, cid, pid, preclaims),
            );
        }
        let StageData::Batch(batch) = data else {
            return Err(RuntimeError::UnexpectedData(Stage::Transformed.name()));
        };
        // Load consumes the rows: with the registry's reference gone the batch is not copied.
        // (Should this load be lost, the redo finds no data here and the stages run again.)
        registry.forget_stage(pid, id, Stage::Transformed);
        let batch = std::sync::Arc::try_unwrap(batch).unwrap_or_else(|b| (*b).clone());
        let tables: Vec<(String, String)> = batch
            .rows
            .iter()
            .map(|r| (r.schema.as_str(), r.table.as_str()))
            .collect::<HashSet<_>>()
            .into_iter()
            .map(|(s, t)| (s.to_string(), t.to_string()))
            .filter(|t| !checked.contains(t))
            .collect();
        let outcome = if tables.is_empty() {
            Ok(())
        } else {
            loader
                .check_tables(&tables)
                .await
                .map(|()| checked.extend(tables))
        };
        // Test-only (off unless set; see `test_hook`): the first load stalls here, unwatched.
        let pause_ms = test_pause.swap(0, Ordering::Relaxed);
        if pause_ms > 0 {
            warn!(process = id, pause_ms, "test hook: pausing before the load");
            if pause(stop, Duration::from_millis(pause_ms)).await {
                process.release(&zk, Lock::Load).await;
                return Ok(());
            }
        }
        // The load stops (its transaction is not committed) as soon as this node sees that it no
        // longer holds the batch: the lock vanished with an expired session, or a new mainstem
        // discarded the process to redo it. Seeing it takes a poll; what the poll misses (a node
        // paused past its session expiry) the fencing token refuses at the target.
        let held = stop.child_token();
        let watcher =
            (pause_ms == 0).then(|| process.watch_lock(zk.clone(), Lock::Load, held.clone()));
        let fence = Fence {
            pipeline: pid,
            token,
        };
        let heartbeat = batch.heartbeat;
        let outcome = match outcome {
            Ok(()) => loader.load(batch, fence, &held).await.map(|_| ()),
            Err(e) => Err(e),
        };
        if let Some(w) = watcher {
            w.abort();
        }
        if stop.is_cancelled() {
            process.release(&zk, Lock::Load).await;
            return Ok(());
        }
        if held.is_cancelled() {
            warn!(
                process = id,
                "lost the batch while loading it; it is redone"
            );
            // If the lock is still ours (ZooKeeper was only slow to confirm), let anyone retake it.
            process.release_if_held(&zk, Lock::Load, opts.id).await;
            continue;
        }
        if let Err(LoadError::Fenced { ours, newer, .. }) = &outcome {
            // Another node holds the batch now (and loaded since): give it up, write no termin.
            note_fenced(pid, id, *ours, *newer);
            process.release_if_held(&zk, Lock::Load, opts.id).await;
            continue;
        }
        let termin = match &outcome {
            Ok(()) => Termin::loaded(id),
            Err(e) => {
                error!(process = id, error = %e, "Load failed");
                Termin::failed(id, e.to_string())
            }
        };
        finished.push((process.name.clone(), Instant::now()));
        if let (Ok(()), Some(written)) = (&outcome, heartbeat) {
            // The source's clock when the heartbeat was written, now loaded: the delay. Published
            // to ZooKeeper at most every 5 s (it is for people, not for the pipeline).
            let delay = Delay {
                delay_ms: (heartbeat::now_ms() - written).max(0),
                at_ms: heartbeat::now_ms(),
            };
            delay_gauge.set(delay.delay_ms as f64 / 1000.0);
            if delay_published.is_none_or(|t| t.elapsed() >= Duration::from_secs(5)) {
                delay_published = Some(Instant::now());
                let path = zk_coord::otter_paths::delay(cid, pid);
                let json = serde_json::to_vec(&delay).unwrap_or_default();
                let zk = zk.clone();
                tokio::spawn(async move {
                    if let Err(e) = zk_coord::put_persistent(&zk, &path, &json).await {
                        warn!(error = %e, "cannot publish the delay");
                    }
                });
            }
        }
        if outcome.is_ok() {
            // Select need not read the termin of a batch it claimed for this loop.
            preclaims.loaded(&zk, id, &process.name);
            finisher.push(process, termin)?;
            rows_total.increment(1);
            progress.made();
        } else {
            // A failed load: Select rolls back and redoes everything in flight once it sees this.
            finisher.flush().await?;
            process.finish(&zk, &termin).await?;
            if pause(stop, Duration::from_secs(1)).await {
                return Ok(());
            }
        }
    }
}
