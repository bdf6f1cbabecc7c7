//! Load: the oldest transformed process of a pipeline, strictly in order, claimed with an
//! ephemeral lock; its termin tells Select to ack the canal batch.

use std::collections::HashSet;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tracing::{error, warn};
use zookeeper_client::{Acls, CreateMode};

use super::view::{self, PipelineView};
use super::{
    finish_process, pause, pull, retry_until_stopped, sweep, watch_lock, worker_clients,
    NodeOptions, Registry, Stage, StageData, Termin,
};
use crate::load::Loader;
use crate::model::Channel;
use crate::paths;

/// Load side of one pipeline: loads the oldest transformed process when nobody else does.
pub(super) async fn run_load(
    opts: NodeOptions,
    channel: Channel,
    registry: Registry,
    view: PipelineView,
    stop: CancellationToken,
) {
    let loader = match Loader::new(&channel.pipeline.target) {
        Ok(l) => l,
        Err(e) => {
            error!(error = %e, "cannot set up the target; Load does not run");
            return;
        }
    };
    let (o, c, r, l, v, s) = (&opts, &channel, &registry, &loader, &view, &stop);
    retry_until_stopped("Load", &stop, || load_loop(o, c, r, l, v, s)).await;
}

async fn load_loop(
    opts: &NodeOptions,
    channel: &Channel,
    registry: &Registry,
    loader: &Loader,
    view: &PipelineView,
    stop: &CancellationToken,
) -> Result<(), String> {
    let (cid, pid) = (channel.id, channel.pipeline.id);
    let (zk, http) = worker_clients(opts).await?;
    let mut checked: HashSet<(String, String)> = HashSet::new();
    let mut last_sweep = std::time::Instant::now();
    let mut window = view.subscribe();
    let rows_total = metrics::counter!("otter_load_batches_total", "pipeline" => pid.to_string());
    // The loaded process whose termin and removal are still being written: the next process is
    // loaded meanwhile, so the target does not wait for ZooKeeper between batches. (Its commit is
    // done, so the order of the target's writes is kept; Select acks in termin order whatever
    // order the termins land in.)
    let mut finishing: Option<(u64, tokio::task::JoinHandle<Result<(), String>>)> = None;
    loop {
        if stop.is_cancelled() {
            return Ok(());
        }
        let snap = window.borrow_and_update().clone();
        sweep(registry, pid, &snap, &mut last_sweep);
        // Strictly in order: only the oldest process (after the one being finished), once
        // transformed and unclaimed.
        let finishing_id = finishing.as_ref().map(|(id, _)| *id);
        let head = snap
            .processes
            .iter()
            .find(|(id, _)| Some(**id) != finishing_id)
            .filter(|(_, p)| p.has(Stage::Transformed.name()) && !p.has("lock"))
            .map(|(id, p)| (*id, paths::process(cid, pid, &p.name)));
        let claimed = match head {
            None => false,
            Some((_, ref proc_path)) => {
                let eph = CreateMode::Ephemeral.with_acls(Acls::anyone_all());
                match zk
                    .create(
                        &format!("{proc_path}/lock"),
                        opts.id.to_string().as_bytes(),
                        &eph,
                    )
                    .await
                {
                    Ok(_) => true,
                    Err(zookeeper_client::Error::NodeExists)
                    | Err(zookeeper_client::Error::NoNode) => false,
                    Err(e) => return Err(format!("lock: {e}")),
                }
            }
        };
        let Some((id, proc_path)) = head.filter(|_| claimed) else {
            // Nothing to load yet: complete the pending finish first (its failure restarts the
            // loop, and the process is loaded again), then wait for the window to change (the
            // 1 s is only a safety net).
            if let Some((_, previous)) = finishing.take() {
                previous
                    .await
                    .map_err(|e| format!("finishing a process: {e}"))??;
                continue;
            }
            if view::changed(&mut window, stop, Duration::from_secs(1))
                .await
                .is_none()
            {
                return Ok(());
            }
            continue;
        };
        let data = match pull(
            opts,
            &zk,
            &http,
            registry,
            pid,
            id,
            Stage::Transformed,
            &proc_path,
        )
        .await
        {
            Ok(d) => d,
            Err(e) => {
                warn!(process = id, error = %e, "cannot get the batch; retrying");
                let _ = zk.delete(&format!("{proc_path}/lock"), None).await;
                if pause(stop, Duration::from_millis(200)).await {
                    return Ok(());
                }
                continue;
            }
        };
        let StageData::Batch(batch) = data else {
            return Err(format!("process {id}: transformed data is not a batch"));
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
                .map_err(|e| e.to_string())
        };
        // The load stops (its transaction is not committed) as soon as this node no longer
        // holds the batch: the lock vanished with an expired session, or a new mainstem discarded
        // the process to redo it. Otherwise a stale batch could commit after a newer one.
        let held = stop.child_token();
        let watcher = tokio::spawn(watch_lock(
            zk.clone(),
            format!("{proc_path}/lock"),
            held.clone(),
        ));
        let outcome = match outcome {
            Ok(()) => loader
                .load(batch, &held)
                .await
                .map(|_| ())
                .map_err(|e| e.to_string()),
            Err(e) => Err(e),
        };
        watcher.abort();
        if stop.is_cancelled() {
            let _ = zk.delete(&format!("{proc_path}/lock"), None).await;
            return Ok(());
        }
        if held.is_cancelled() {
            warn!(
                process = id,
                "lost the batch while loading it; it is redone"
            );
            // If the lock is still ours (ZooKeeper was only slow to confirm), let anyone retake it.
            let lock = format!("{proc_path}/lock");
            if let Ok((data, stat)) = zk.get_data(&lock).await {
                if data == opts.id.to_string().as_bytes() {
                    let _ = zk.delete(&lock, Some(stat.version)).await;
                }
            }
            continue;
        }
        let termin = match &outcome {
            Ok(()) => Termin {
                process: id,
                ok: true,
                error: String::new(),
            },
            Err(e) => {
                error!(process = id, error = %e, "Load failed");
                Termin {
                    process: id,
                    ok: false,
                    error: e.clone(),
                }
            }
        };
        if let Some((_, previous)) = finishing.take() {
            previous
                .await
                .map_err(|e| format!("finishing a process: {e}"))??;
        }
        let finish = {
            let (zk, termin_path) = (zk.clone(), paths::termin(cid, pid, id));
            let termin = serde_json::to_vec(&termin).unwrap_or_default();
            tokio::spawn(
                async move { finish_process(&zk, &termin_path, &termin, &proc_path).await },
            )
        };
        if outcome.is_ok() {
            finishing = Some((id, finish));
        } else {
            // A failed load: Select rolls back and redoes everything in flight once it sees this.
            finish
                .await
                .map_err(|e| format!("finishing a process: {e}"))??;
        }
        if outcome.is_ok() {
            rows_total.increment(1);
        } else if pause(stop, Duration::from_secs(1)).await {
            return Ok(());
        }
    }
}
