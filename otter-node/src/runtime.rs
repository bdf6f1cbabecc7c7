//! A node's runtime: registers the node, follows the channel definitions, and runs the Select side
//! (mainstem election, embedded canal destination, Extract/Transform, the process window, acks in
//! termin order) and the Load side (claim the oldest transformed process, pull its data, load it,
//! write its termin) of every pipeline it may run.
//!
//! Scheduling lives in ZooKeeper (`/otter/channel/{cid}/{pid}/…`): `process/p{seq}` nodes form the
//! window of batches in flight; a `transformed` child says where the batch's data can be pulled;
//! an ephemeral `lock` child marks the node loading it (it vanishes with that node's session, so
//! another node redoes the batch); `termin/{seq}` records a finished batch until Select acked its
//! canal batch. Load runs strictly in process order; every load is idempotent, so a redo is
//! harmless.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::{Read, Write};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use canal_server::config::DestinationConfig;
use canal_server::instance::{Instance, InstanceOptions};
use canal_server::meta::{MetaBackend, ZkMeta};
use canal_server::store::{BatchMode, Gate, GetWait, StoreConfig};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn, Instrument};
use zk_coord::election::{Election, ElectionSpec, Role};
use zk_coord::ZkConfig;
use zookeeper_client::{Acls, Client, CreateMode};

use crate::batch::LoadBatch;
use crate::extract::extract;
use crate::load::Loader;
use crate::model::{Channel, ChannelStatus, CompiledMapping};
use crate::paths;

/// Batch data held by the node that produced it, until its termin is acked: gzip'd JSON of a
/// [`LoadBatch`], by (pipeline id, process id).
pub type Registry = Arc<Mutex<HashMap<(u32, u64), Arc<Vec<u8>>>>>;

/// How a node is set up.
#[derive(Debug, Clone)]
pub struct NodeOptions {
    /// This node's id (`/otter/node/{nid}`; pipelines name node ids).
    pub id: u32,
    /// ZooKeeper (the grace delay is the mainstem's).
    pub zk: ZkConfig,
    /// `host:port` other nodes pull batch data from (this node's HTTP server).
    pub http_address: String,
    /// Schema histories of embedded destinations.
    pub data_dir: PathBuf,
}

/// What `transformed` says.
#[derive(Debug, Serialize, Deserialize)]
struct Transformed {
    node: u32,
    url: String,
    rows: usize,
}

/// What `termin/{id}` says.
#[derive(Debug, Serialize, Deserialize)]
struct Termin {
    process: u64,
    ok: bool,
    #[serde(default)]
    error: String,
}

fn persistent() -> zookeeper_client::CreateOptions<'static> {
    CreateMode::Persistent.with_acls(Acls::anyone_all())
}

/// Runs the node until `stop`: registration, channel watching, and the stages of its pipelines.
pub async fn run_node(opts: NodeOptions, registry: Registry, stop: CancellationToken) {
    tokio::spawn(register(opts.clone(), stop.clone()));
    let mut running: HashMap<u32, (Vec<u8>, watch::Sender<ChannelStatus>, CancellationToken)> =
        HashMap::new();
    let mut client: Option<Client> = None;
    loop {
        if stop.is_cancelled() {
            break;
        }
        if client.is_none() {
            match opts.zk.connect().await {
                Ok(c) => client = Some(c),
                Err(e) => {
                    warn!(error = %e, "cannot reach ZooKeeper; retrying");
                    if pause(&stop, Duration::from_secs(1)).await {
                        break;
                    }
                    continue;
                }
            }
        }
        let Some(c) = client.as_ref() else { continue };
        let defs = match read_channels(c).await {
            Ok(d) => d,
            Err(e) => {
                warn!(error = %e, "cannot read channels; reconnecting");
                client = None;
                continue;
            }
        };
        // Stop what is gone or changed (other than its status).
        running.retain(|cid, (json, status, cancel)| match defs.get(cid) {
            Some((ch, raw)) if same_definition(json, raw) => {
                status.send_if_modified(|s| {
                    let changed = *s != ch.status;
                    *s = ch.status;
                    changed
                });
                if ch.status == ChannelStatus::Stopped {
                    cancel.cancel();
                    return false;
                }
                true
            }
            _ => {
                cancel.cancel();
                false
            }
        });
        for (cid, (ch, raw)) in defs {
            if running.contains_key(&cid) || ch.status == ChannelStatus::Stopped {
                continue;
            }
            let cancel = stop.child_token();
            let (status_tx, status_rx) = watch::channel(ch.status);
            let p = &ch.pipeline;
            if p.select_nodes.contains(&opts.id) {
                let span = tracing::info_span!("select", channel = cid, pipeline = p.id);
                tokio::spawn(
                    run_select(
                        opts.clone(),
                        ch.clone(),
                        status_rx.clone(),
                        registry.clone(),
                        cancel.clone(),
                    )
                    .instrument(span),
                );
            }
            if p.load_nodes.contains(&opts.id) {
                let span = tracing::info_span!("load", channel = cid, pipeline = p.id);
                tokio::spawn(
                    run_load(opts.clone(), ch.clone(), registry.clone(), cancel.clone())
                        .instrument(span),
                );
            }
            info!(channel = cid, pipeline = p.id, status = ?ch.status, "running the pipeline's stages of this node");
            running.insert(cid, (raw, status_tx, cancel));
        }
        if pause(&stop, Duration::from_millis(300)).await {
            break;
        }
    }
    for (_, (_, _, cancel)) in running {
        cancel.cancel();
    }
}

/// Definitions equal apart from the status.
fn same_definition(a: &[u8], b: &[u8]) -> bool {
    let strip = |d: &[u8]| {
        serde_json::from_slice::<serde_json::Value>(d)
            .ok()
            .map(|mut v| {
                if let Some(o) = v.as_object_mut() {
                    o.remove("status");
                }
                v
            })
    };
    strip(a) == strip(b)
}

async fn read_channels(
    c: &Client,
) -> Result<HashMap<u32, (Channel, Vec<u8>)>, zookeeper_client::Error> {
    let mut out = HashMap::new();
    let children = match c.list_children(&paths::channels()).await {
        Ok(ch) => ch,
        Err(zookeeper_client::Error::NoNode) => return Ok(out),
        Err(e) => return Err(e),
    };
    for name in children {
        let Ok(cid) = name.parse::<u32>() else {
            continue;
        };
        let data = match c.get_data(&paths::channel(cid)).await {
            Ok((d, _)) => d,
            Err(zookeeper_client::Error::NoNode) => continue,
            Err(e) => return Err(e),
        };
        match Channel::from_json(&data) {
            Ok(ch) if ch.id == cid => {
                out.insert(cid, (ch, data));
            }
            Ok(_) => warn!(channel = cid, "channel JSON names another id; ignored"),
            Err(e) => warn!(channel = cid, error = %e, "invalid channel definition; ignored"),
        }
    }
    Ok(out)
}

/// True when stopped.
async fn pause(stop: &CancellationToken, d: Duration) -> bool {
    tokio::select! {
        _ = stop.cancelled() => true,
        _ = tokio::time::sleep(d) => false,
    }
}

/// Keeps `/otter/node/{nid}` (ephemeral, the HTTP address) registered across sessions.
async fn register(opts: NodeOptions, stop: CancellationToken) {
    let path = paths::node(opts.id);
    loop {
        let client = tokio::select! {
            _ = stop.cancelled() => return,
            c = opts.zk.connect() => c,
        };
        let client = match client {
            Ok(c) => c,
            Err(e) => {
                warn!(error = %e, "cannot register the node; retrying");
                if pause(&stop, Duration::from_secs(1)).await {
                    return;
                }
                continue;
            }
        };
        let _ = zk_coord::ensure_path(&client, &paths::nodes()).await;
        let eph = CreateMode::Ephemeral.with_acls(Acls::anyone_all());
        if let Err(zookeeper_client::Error::NodeExists) = client
            .create(&path, opts.http_address.as_bytes(), &eph)
            .await
        {
            let _ = client.delete(&path, None).await;
            let _ = client
                .create(&path, opts.http_address.as_bytes(), &eph)
                .await;
        }
        let mut state = client.state_watcher();
        loop {
            tokio::select! {
                _ = stop.cancelled() => {
                    let _ = client.delete(&path, None).await;
                    return;
                }
                s = state.changed() => if s.is_terminated() { break },
            }
        }
    }
}

/// Select side of one pipeline: compete for the mainstem; while holding it, run Select.
async fn run_select(
    opts: NodeOptions,
    channel: Channel,
    status: watch::Receiver<ChannelStatus>,
    registry: Registry,
    stop: CancellationToken,
) {
    let (cid, pid) = (channel.id, channel.pipeline.id);
    let address = opts.http_address.clone();
    let election = Election::spawn(
        opts.zk.clone(),
        ElectionSpec {
            path: paths::mainstem(cid, pid),
            candidate_path: None,
            address: address.clone(),
            data: serde_json::to_vec(
                &serde_json::json!({"active": true, "address": address, "nid": opts.id}),
            )
            .unwrap_or_default(),
        },
    );
    let mut roles = election.watch();
    let lease = election.lease();
    let mut current: Option<CancellationToken> = None;
    loop {
        let role = roles.borrow_and_update().clone();
        match role {
            Role::Active if current.is_none() => {
                info!("mainstem: running Select");
                let gate: Gate = {
                    let roles = roles.clone();
                    let lease = lease.clone();
                    Arc::new(move || *roles.borrow() == Role::Active && lease.is_valid())
                };
                let cancel = stop.child_token();
                tokio::spawn(
                    select_loop(
                        opts.clone(),
                        channel.clone(),
                        status.clone(),
                        registry.clone(),
                        gate,
                        cancel.clone(),
                    )
                    .in_current_span(),
                );
                current = Some(cancel);
            }
            Role::Active | Role::Paused => {}
            _ => {
                if let Some(c) = current.take() {
                    warn!(role = ?role, "lost the mainstem: stopping Select");
                    c.cancel();
                }
            }
        }
        tokio::select! {
            _ = stop.cancelled() => break,
            r = roles.changed() => if r.is_err() { break },
        }
    }
    if let Some(c) = current.take() {
        c.cancel();
    }
    election.stop().await;
}

/// Select, Extract and Transform while this node holds the mainstem.
async fn select_loop(
    opts: NodeOptions,
    channel: Channel,
    status: watch::Receiver<ChannelStatus>,
    registry: Registry,
    gate: Gate,
    stop: CancellationToken,
) {
    let (cid, pid) = (channel.id, channel.pipeline.id);
    loop {
        match select_once(&opts, &channel, &status, &registry, &gate, &stop).await {
            Ok(()) => break,
            Err(e) => {
                error!(error = %e, "Select failed; restarting from the acked cursor");
                registry
                    .lock()
                    .map(|mut r| r.retain(|(p, _), _| *p != pid))
                    .ok();
                if pause(&stop, Duration::from_secs(1)).await {
                    break;
                }
            }
        }
    }
    registry
        .lock()
        .map(|mut r| r.retain(|(p, _), _| *p != pid))
        .ok();
    info!(channel = cid, pipeline = pid, "Select stopped");
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    let _ = enc.write_all(data);
    enc.finish().unwrap_or_default()
}

/// Decodes batch data produced by [`Registry`] holders.
pub fn decode_batch(gz: &[u8]) -> Result<LoadBatch, String> {
    let mut text = Vec::new();
    flate2::read::GzDecoder::new(gz)
        .read_to_end(&mut text)
        .map_err(|e| format!("gunzip: {e}"))?;
    serde_json::from_slice(&text).map_err(|e| format!("batch JSON: {e}"))
}

async fn select_once(
    opts: &NodeOptions,
    channel: &Channel,
    status: &watch::Receiver<ChannelStatus>,
    registry: &Registry,
    gate: &Gate,
    stop: &CancellationToken,
) -> Result<(), String> {
    let p = &channel.pipeline;
    let (cid, pid) = (channel.id, p.id);
    let client_id = pid as i16;
    let zk = opts.zk.connect().await.map_err(|e| e.to_string())?;
    // A new mainstem redoes everything in flight from the acked cursor.
    for dir in [paths::processes(cid, pid), paths::termins(cid, pid)] {
        zk_coord::delete_recursive(&zk, &dir)
            .await
            .map_err(|e| e.to_string())?;
        zk_coord::ensure_path(&zk, &dir)
            .await
            .map_err(|e| e.to_string())?;
    }
    let mappings = CompiledMapping::compile(p).map_err(|e| e.to_string())?;
    if let Err((e, definition)) = check_targets(p, &mappings).await {
        if definition {
            error!(error = %e, "the pipeline cannot run: fix the target table; checked again in 30 s");
            pause(stop, Duration::from_secs(30)).await;
        }
        return Err(e);
    }
    let dest = paths::destination(pid);
    let config = DestinationConfig {
        address: p.source.address.clone(),
        username: p.source.username.clone(),
        password: p.source.password.clone(),
        slave_id: p.source.slave_id,
        journal_name: p.source.journal_name.clone(),
        position: p.source.position,
        gtid: p.source.gtid.clone(),
        timestamp: p.source.timestamp,
        filter: p
            .tables
            .iter()
            .map(|t| t.source.clone())
            .collect::<Vec<_>>()
            .join(","),
        black_filter: String::new(),
        ddl_isolation: true,
        ..DestinationConfig::default()
    };
    let store_config = StoreConfig {
        batch_mode: BatchMode::Itemsize,
        ddl_isolation: true,
        ..config.store()
    };
    let meta_client = opts.zk.connect().await.map_err(|e| e.to_string())?;
    let meta = MetaBackend::Zk(ZkMeta::new(
        meta_client,
        &dest,
        &p.source.address,
        Some(gate.clone()),
    ));
    let instance = Instance::start(
        &dest,
        config,
        store_config,
        opts.data_dir.clone(),
        InstanceOptions {
            flush_period: Duration::from_millis(500),
            meta,
            gate: Some(gate.clone()),
        },
    )
    .await
    .map_err(|e| e.to_string())?;
    let store = instance.store().clone();
    if !store.is_subscribed(client_id) {
        store
            .subscribe(client_id, "", None)
            .map_err(|e| e.to_string())?;
    }
    let result = select_work(
        opts, channel, status, registry, &zk, &store, &mappings, stop,
    )
    .await;
    instance.stop().await;
    result
}

#[allow(clippy::too_many_arguments)]
async fn select_work(
    opts: &NodeOptions,
    channel: &Channel,
    status: &watch::Receiver<ChannelStatus>,
    registry: &Registry,
    zk: &Client,
    store: &canal_server::store::Store,
    mappings: &[CompiledMapping],
    stop: &CancellationToken,
) -> Result<(), String> {
    let p = &channel.pipeline;
    let (cid, pid) = (channel.id, p.id);
    let client_id = pid as i16;
    let batches = metrics::counter!("otter_select_batches_total", "pipeline" => pid.to_string());
    // process id → canal batch id, in flight.
    let mut inflight: BTreeMap<u64, i64> = BTreeMap::new();
    loop {
        if stop.is_cancelled() {
            return Ok(());
        }
        // Ack what Load finished, strictly in process order.
        let mut termins: Vec<(u64, String)> = zk
            .list_children(&paths::termins(cid, pid))
            .await
            .map_err(|e| format!("termins: {e}"))?
            .into_iter()
            .filter_map(|n| paths::process_id(&n).map(|id| (id, n)))
            .collect();
        termins.sort();
        for (id, name) in termins {
            let path = format!("{}/{name}", paths::termins(cid, pid));
            if !inflight.contains_key(&id) {
                let _ = zk.delete(&path, None).await;
                continue;
            }
            if inflight.keys().next() != Some(&id) {
                break;
            }
            let (data, _) = zk
                .get_data(&path)
                .await
                .map_err(|e| format!("termin: {e}"))?;
            let t: Termin =
                serde_json::from_slice(&data).map_err(|e| format!("termin JSON: {e}"))?;
            if t.ok {
                let batch = inflight.remove(&id).unwrap_or(-1);
                store.ack(client_id, batch).map_err(|e| e.to_string())?;
                registry.lock().map(|mut r| r.remove(&(pid, id))).ok();
                zk.delete(&path, None)
                    .await
                    .map_err(|e| format!("termin delete: {e}"))?;
            } else {
                warn!(process = id, error = %t.error, "Load failed the batch: rolling back and redoing every batch in flight");
                return Err(format!("load of process {id} failed: {}", t.error));
            }
        }
        if *status.borrow() == ChannelStatus::Started && inflight.len() < p.parallelism as usize {
            let batch = tokio::select! {
                _ = stop.cancelled() => return Ok(()),
                b = store.get(client_id, p.batch_size as i32, GetWait::Up(Duration::from_millis(100))) => b,
            }
            .map_err(|e| e.to_string())?;
            if batch.id != -1 {
                let lb =
                    extract(&batch.entries, mappings, p.ddl_sync).map_err(|e| e.to_string())?;
                if lb.rows.is_empty() && lb.ddl.is_none() && inflight.is_empty() {
                    store.ack(client_id, batch.id).map_err(|e| e.to_string())?;
                    continue;
                }
                let rows = lb.rows.len();
                let data = serde_json::to_vec(&lb).map_err(|e| e.to_string())?;
                let gz = Arc::new(gzip(&data));
                let seq_opts = CreateMode::PersistentSequential.with_acls(Acls::anyone_all());
                let (_, seq) = zk
                    .create(&format!("{}/p", paths::processes(cid, pid)), &[], &seq_opts)
                    .await
                    .map_err(|e| format!("process node: {e}"))?;
                let id = seq.into_i64() as u64;
                let name = format!("p{seq}");
                registry.lock().map(|mut r| r.insert((pid, id), gz)).ok();
                let t = Transformed {
                    node: opts.id,
                    url: format!(
                        "http://{}/pipelines/{pid}/processes/{id}",
                        opts.http_address
                    ),
                    rows,
                };
                zk.create(
                    &format!("{}/transformed", paths::process(cid, pid, &name)),
                    &serde_json::to_vec(&t).unwrap_or_default(),
                    &persistent(),
                )
                .await
                .map_err(|e| format!("transformed node: {e}"))?;
                inflight.insert(id, batch.id);
                batches.increment(1);
                continue;
            }
        } else if pause(stop, Duration::from_millis(20)).await {
            return Ok(());
        }
    }
}

/// Load side of one pipeline: loads the oldest transformed process when nobody else does.
async fn run_load(
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
    loop {
        match load_loop(&opts, &channel, &registry, &loader, &stop).await {
            Ok(()) => break,
            Err(e) => {
                warn!(error = %e, "Load interrupted; retrying");
                if pause(&stop, Duration::from_secs(1)).await {
                    break;
                }
            }
        }
    }
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
    let rows_total = metrics::counter!("otter_load_batches_total", "pipeline" => pid.to_string());
    loop {
        if stop.is_cancelled() {
            return Ok(());
        }
        let mut procs: Vec<(u64, String)> =
            match zk.list_children(&paths::processes(cid, pid)).await {
                Ok(c) => c
                    .into_iter()
                    .filter_map(|n| paths::process_id(&n).map(|id| (id, n)))
                    .collect(),
                Err(zookeeper_client::Error::NoNode) => Vec::new(),
                Err(e) => return Err(format!("processes: {e}")),
            };
        procs.sort();
        let Some((id, name)) = procs.into_iter().next() else {
            if pause(stop, Duration::from_millis(20)).await {
                return Ok(());
            }
            continue;
        };
        let proc_path = paths::process(cid, pid, &name);
        let transformed = match zk.get_data(&format!("{proc_path}/transformed")).await {
            Ok((d, _)) => d,
            Err(_) => {
                if pause(stop, Duration::from_millis(20)).await {
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
                if pause(stop, Duration::from_millis(20)).await {
                    return Ok(());
                }
                continue;
            }
            Err(e) => return Err(format!("lock: {e}")),
        }
        let t: Transformed =
            serde_json::from_slice(&transformed).map_err(|e| format!("transformed JSON: {e}"))?;
        let local = registry
            .lock()
            .ok()
            .and_then(|r| r.get(&(pid, id)).cloned());
        let gz = match local {
            Some(d) if t.node == opts.id => d,
            _ => match fetch(&http, &t.url).await {
                Ok(d) => Arc::new(d),
                Err(e) => {
                    warn!(process = id, url = %t.url, error = %e, "cannot pull the batch; retrying");
                    let _ = zk.delete(&format!("{proc_path}/lock"), None).await;
                    if pause(stop, Duration::from_millis(500)).await {
                        return Ok(());
                    }
                    continue;
                }
            },
        };
        let batch = decode_batch(&gz)?;
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
        zk_coord::delete_recursive(&zk, &proc_path)
            .await
            .map_err(|e| e.to_string())?;
        if outcome.is_ok() {
            rows_total.increment(1);
        } else if pause(stop, Duration::from_secs(1)).await {
            return Ok(());
        }
    }
}

/// Every source table the mappings take has a target table with a primary key (checked before
/// Select starts, so a wrong definition is a clear error at start rather than a stuck batch).
async fn check_targets(
    p: &crate::model::Pipeline,
    mappings: &[CompiledMapping],
) -> Result<(), (String, bool)> {
    use mysql_async::prelude::Queryable;
    let transient = |e: String| (e, false);
    let (host, port) = p
        .source
        .address
        .rsplit_once(':')
        .and_then(|(h, port)| port.parse::<u16>().ok().map(|port| (h.to_string(), port)))
        .ok_or_else(|| {
            (
                format!("source address {:?} is not host:port", p.source.address),
                true,
            )
        })?;
    let opts = mysql_async::OptsBuilder::default()
        .ip_or_hostname(host)
        .tcp_port(port)
        .user(Some(p.source.username.clone()))
        .pass(Some(p.source.password.clone()))
        .prefer_socket(false);
    let mut conn = mysql_async::Conn::new(opts)
        .await
        .map_err(|e| transient(format!("source {}: {e}", p.source.address)))?;
    let tables: Vec<(String, String)> = conn
        .query(
            "SELECT TABLE_SCHEMA, TABLE_NAME FROM information_schema.TABLES \
             WHERE TABLE_TYPE = 'BASE TABLE'",
        )
        .await
        .map_err(|e| transient(format!("source {}: listing tables: {e}", p.source.address)))?;
    let _ = conn.disconnect().await;
    let targets: Vec<(String, String)> = tables
        .iter()
        .filter_map(|(s, t)| crate::model::find_mapping(mappings, s, t).map(|m| m.target(s, t)))
        .collect::<HashSet<_>>()
        .into_iter()
        .collect();
    if targets.is_empty() {
        return Ok(());
    }
    let loader = Loader::new(&p.target).map_err(|e| (e.to_string(), true))?;
    let r = loader.check_tables(&targets).await.map_err(|e| {
        let definition = matches!(
            e,
            crate::load::LoadError::NoPrimaryKey { .. } | crate::load::LoadError::NoTable { .. }
        );
        (e.to_string(), definition)
    });
    loader.close().await;
    r
}

/// Cancels `held` once `lock` is gone or ZooKeeper cannot confirm it.
async fn watch_lock(zk: Client, lock: String, held: CancellationToken) {
    loop {
        tokio::select! {
            _ = held.cancelled() => return,
            _ = tokio::time::sleep(Duration::from_millis(250)) => {}
        }
        match tokio::time::timeout(Duration::from_secs(2), zk.check_stat(&lock)).await {
            Ok(Ok(Some(_))) => {}
            _ => {
                held.cancel();
                return;
            }
        }
    }
}

async fn fetch(http: &reqwest::Client, url: &str) -> Result<Vec<u8>, String> {
    let r = http.get(url).send().await.map_err(|e| e.to_string())?;
    if !r.status().is_success() {
        return Err(format!("HTTP {}", r.status()));
    }
    r.bytes()
        .await
        .map(|b| b.to_vec())
        .map_err(|e| e.to_string())
}
