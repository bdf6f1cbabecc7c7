//! Load: the oldest transformed process of a pipeline, strictly in order, claimed with an
//! ephemeral lock; its termin tells Select to ack the canal batch.

use std::collections::HashSet;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tracing::{error, warn};
use zookeeper_client::{Acls, CreateMode};

use super::{
    list_processes, pause, persistent, pull, remove_process, retry_until_stopped, sweep,
    watch_lock, NodeOptions, Registry, Stage, StageData, Termin,
};
use crate::load::Loader;
use crate::model::Channel;
use crate::paths;

/// Load side of one pipeline: loads the oldest transformed process when nobody else does.
pub(super) async fn run_load(
    opts: NodeOptions,
    channel: Channel,
    registry: Registry,
    stop: CancellationToken,
) {
    let loader = match Loader::new(&channel.pipeline.target) {
        Ok(l) => l,
        Err(e) => {
            error!(error = %e, "cannot set up the target; Load does not run");
            return;
        }
    };
    let (o, c, r, l, s) = (&opts, &channel, &registry, &loader, &stop);
    retry_until_stopped("Load", &stop, || load_loop(o, c, r, l, s)).await;
}

async fn load_loop(
    opts: &NodeOptions,
    channel: &Channel,
    registry: &Registry,
    loader: &Loader,
    stop: &CancellationToken,
) -> Result<(), String> {
    let (cid, pid) = (channel.id, channel.pipeline.id);
    let zk = opts.zk.connect().await.map_err(|e| e.to_string())?;
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .map_err(|e| e.to_string())?;
    let mut checked: HashSet<(String, String)> = HashSet::new();
    let mut last_sweep = std::time::Instant::now();
    let mut idle = super::Idle::default();
    let rows_total = metrics::counter!("otter_load_batches_total", "pipeline" => pid.to_string());
    loop {
        if stop.is_cancelled() {
            return Ok(());
        }
        let procs = list_processes(&zk, cid, pid).await?;
        sweep(registry, pid, &procs, &mut last_sweep);
        let Some((id, name)) = procs.into_iter().next() else {
            if registry.idle(stop, idle.next()).await {
                return Ok(());
            }
            continue;
        };
        let proc_path = paths::process(cid, pid, &name);
        match zk.check_stat(&format!("{proc_path}/transformed")).await {
            Ok(Some(_)) => {}
            _ => {
                if registry.idle(stop, idle.next()).await {
                    return Ok(());
                }
                continue;
            }
        };
        let eph = CreateMode::Ephemeral.with_acls(Acls::anyone_all());
        match zk
            .create(
                &format!("{proc_path}/lock"),
                opts.id.to_string().as_bytes(),
                &eph,
            )
            .await
        {
            Ok(_) => {}
            Err(zookeeper_client::Error::NodeExists) | Err(zookeeper_client::Error::NoNode) => {
                if registry.idle(stop, idle.next()).await {
                    return Ok(());
                }
                continue;
            }
            Err(e) => return Err(format!("lock: {e}")),
        }
        idle.reset();
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
        let tables: Vec<(String, String)> = batch
            .rows
            .iter()
            .map(|r| (r.schema.clone(), r.table.clone()))
            .filter(|t| !checked.contains(t))
            .collect::<HashSet<_>>()
            .into_iter()
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
                .load(&batch, &held)
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
        match zk
            .create(
                &paths::termin(cid, pid, id),
                &serde_json::to_vec(&termin).unwrap_or_default(),
                &persistent(),
            )
            .await
        {
            Ok(_) | Err(zookeeper_client::Error::NodeExists) => {}
            Err(e) => return Err(format!("termin: {e}")),
        }
        remove_process(&zk, &proc_path).await?;
        registry.wake();
        if outcome.is_ok() {
            rows_total.increment(1);
        } else if pause(stop, Duration::from_secs(1)).await {
            return Ok(());
        }
    }
}
