//! A node's runtime: registers the node, follows the channel definitions, and runs the stages of
//! every pipeline that names it: Select (mainstem election, embedded canal destination, the
//! process window, acks in termin order) and Extract on select nodes; Transform and Load on load
//! nodes.
//!
//! Scheduling lives in ZooKeeper (`/otter/channel/{cid}/{pid}/…`): `process/p{seq}` nodes form the
//! window of batches in flight. A stage that finished a batch writes a child (`selected`,
//! `extracted`, `transformed`) saying which node holds the data and where to pull it; the next
//! stage is claimed with an ephemeral lock child (`extract-lock`, `transform-lock`, `lock`) that
//! vanishes with its owner's session, so another node redoes the work. Extract and Transform of
//! different batches run in parallel on any eligible node; Load runs strictly in process order
//! and writes `termin/{seq}`, and Select acks its canal batches in termin order. Every load is
//! idempotent, so a redo is harmless.

mod load;
mod select;
mod stage;
mod view;

use std::collections::{HashMap, HashSet};
use std::io::{Read, Write};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn, Instrument};
use zk_coord::ZkConfig;
use zookeeper_client::{Acls, Client, CreateMode};

use crate::batch::LoadBatch;
use crate::model::{Channel, ChannelStatus};
use crate::paths;

/// How far a batch got: the process child a stage writes when done, and the data it produced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Stage {
    /// Select wrote the canal batch's entries.
    Selected,
    /// Extract wrote the mapped rows with their column views (source names).
    Extracted,
    /// Transform wrote the rows under target names: what Load applies.
    Transformed,
}

impl Stage {
    /// The process child (and URL segment) of the stage.
    pub fn name(self) -> &'static str {
        match self {
            Stage::Selected => "selected",
            Stage::Extracted => "extracted",
            Stage::Transformed => "transformed",
        }
    }

    /// Parses [`Stage::name`].
    pub fn parse(s: &str) -> Option<Self> {
        [Stage::Selected, Stage::Extracted, Stage::Transformed]
            .into_iter()
            .find(|st| st.name() == s)
    }
}

/// What a stage produced for one batch, kept as values: the next stage on the same node uses it
/// directly; it is encoded only when another node pulls it over HTTP.
#[derive(Debug, Clone)]
pub enum StageData {
    /// Select's serialized canal entries.
    Entries(Arc<Vec<bytes::Bytes>>),
    /// Extract's or Transform's rows.
    Batch(Arc<LoadBatch>),
}

impl StageData {
    /// The wire form (gzip'd; see [`encode_entries`] / [`encode_batch`]).
    pub fn encode(&self) -> Vec<u8> {
        match self {
            StageData::Entries(e) => encode_entries(e),
            StageData::Batch(b) => encode_batch(b),
        }
    }

    /// Decodes the wire form of `stage`'s data.
    pub fn decode(stage: Stage, gz: &[u8]) -> Result<Self, String> {
        match stage {
            Stage::Selected => Ok(StageData::Entries(Arc::new(decode_entries(gz)?))),
            _ => Ok(StageData::Batch(Arc::new(decode_batch(gz)?))),
        }
    }
}

/// Batch data this node produced, by (pipeline, process, stage); other nodes pull it over HTTP.
/// Entries go when their process is gone (acked or discarded).
#[derive(Debug, Clone, Default)]
pub struct Registry(Arc<Mutex<HashMap<DataKey, Kept>>>);

/// (pipeline, process, stage).
type DataKey = (u32, u64, Stage);

/// The data and when it was kept.
type Kept = (StageData, std::time::Instant);

impl Registry {
    /// Keeps `data` for (pid, process, stage).
    pub fn put(&self, pid: u32, process: u64, stage: Stage, data: StageData) {
        if let Ok(mut r) = self.0.lock() {
            r.insert((pid, process, stage), (data, std::time::Instant::now()));
        }
    }

    /// The data for (pid, process, stage), if this node has it.
    pub fn get(&self, pid: u32, process: u64, stage: Stage) -> Option<StageData> {
        self.0
            .lock()
            .ok()?
            .get(&(pid, process, stage))
            .map(|(d, _)| d.clone())
    }

    /// Forgets one stage's data of one process.
    pub fn forget_stage(&self, pid: u32, process: u64, stage: Stage) {
        if let Ok(mut r) = self.0.lock() {
            r.remove(&(pid, process, stage));
        }
    }

    /// Forgets every stage of one process.
    pub fn forget(&self, pid: u32, process: u64) {
        if let Ok(mut r) = self.0.lock() {
            r.retain(|(p, id, _), _| !(*p == pid && *id == process));
        }
    }

    /// Forgets the processes of a pipeline that are not `live`, among those kept for more than
    /// a few seconds (a process created after `live` was listed is not touched).
    pub fn keep_only(&self, pid: u32, live: &HashSet<u64>) {
        if let Ok(mut r) = self.0.lock() {
            r.retain(|(p, id, _), (_, at)| {
                *p != pid || live.contains(id) || at.elapsed() < Duration::from_secs(5)
            });
        }
    }

    /// Forgets a whole pipeline.
    pub fn forget_pipeline(&self, pid: u32) {
        if let Ok(mut r) = self.0.lock() {
            r.retain(|(p, _, _), _| *p != pid);
        }
    }
}

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

/// What a stage-done child (`selected`, `extracted`, `transformed`) says: who has the data.
#[derive(Debug, Serialize, Deserialize)]
struct Produced {
    node: u32,
    url: String,
    rows: usize,
}

impl Produced {
    fn new(opts: &NodeOptions, pid: u32, id: u64, stage: Stage, rows: usize) -> Self {
        Self {
            node: opts.id,
            url: format!(
                "http://{}/pipelines/{pid}/processes/{id}/{}",
                opts.http_address,
                stage.name()
            ),
            rows,
        }
    }
}

/// What `termin/{id}` says.
#[derive(Debug, Serialize, Deserialize)]
struct Termin {
    process: u64,
    ok: bool,
    #[serde(default)]
    error: String,
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    let _ = enc.write_all(data);
    enc.finish().unwrap_or_default()
}

fn gunzip(gz: &[u8]) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(gz)
        .read_to_end(&mut out)
        .map_err(|e| format!("gunzip: {e}"))?;
    Ok(out)
}

/// Encodes a Select batch's serialized entries (length-prefixed, gzip'd).
pub fn encode_entries(entries: &[bytes::Bytes]) -> Vec<u8> {
    let mut raw = Vec::with_capacity(entries.iter().map(|e| e.len() + 4).sum());
    for e in entries {
        raw.extend_from_slice(&(e.len() as u32).to_be_bytes());
        raw.extend_from_slice(e);
    }
    gzip(&raw)
}

/// Decodes [`encode_entries`].
pub fn decode_entries(gz: &[u8]) -> Result<Vec<bytes::Bytes>, String> {
    let raw = bytes::Bytes::from(gunzip(gz)?);
    let mut out = Vec::new();
    let mut at = 0usize;
    while at < raw.len() {
        let len_bytes: [u8; 4] = raw
            .get(at..at + 4)
            .and_then(|b| b.try_into().ok())
            .ok_or("truncated entry length")?;
        let len = u32::from_be_bytes(len_bytes) as usize;
        let end = at + 4 + len;
        if end > raw.len() {
            return Err("truncated entry".into());
        }
        out.push(raw.slice(at + 4..end));
        at = end;
    }
    Ok(out)
}

/// Encodes a [`LoadBatch`] (JSON, gzip'd).
pub fn encode_batch(b: &LoadBatch) -> Vec<u8> {
    gzip(&serde_json::to_vec(b).unwrap_or_default())
}

/// Decodes [`encode_batch`].
pub fn decode_batch(gz: &[u8]) -> Result<LoadBatch, String> {
    serde_json::from_slice(&gunzip(gz)?).map_err(|e| format!("batch JSON: {e}"))
}

/// Ends a loaded process: writes `termin/{id}` and removes the process with its children in one
/// transaction (one write instead of six). If the children changed meanwhile (a worker's lock
/// appeared), it falls back to writing the termin and [`remove_process`].
async fn finish_process(
    zk: &Client,
    termin_path: &str,
    termin: &[u8],
    proc_path: &str,
) -> Result<(), String> {
    if let Ok(children) = zk.list_children(proc_path).await {
        let mut multi = zk.new_multi_writer();
        let staged = multi
            .add_create(termin_path, termin, &persistent())
            .and_then(|()| {
                children
                    .iter()
                    .try_for_each(|c| multi.add_delete(&format!("{proc_path}/{c}"), None))
            })
            .and_then(|()| multi.add_delete(proc_path, None));
        if staged.is_ok() && multi.commit().await.is_ok() {
            return Ok(());
        }
    }
    match zk.create(termin_path, termin, &persistent()).await {
        Ok(_) | Err(zookeeper_client::Error::NodeExists) => {}
        Err(e) => return Err(format!("termin: {e}")),
    }
    remove_process(zk, proc_path).await
}

/// Removes a finished process. Stage inputs go first (`selected`, then `extracted`, then
/// `transformed`) so no stage can claim it any more; a worker that claimed it just before leaves a
/// lock or output child behind for a moment, so removal retries until the node is gone.
async fn remove_process(zk: &Client, path: &str) -> Result<(), String> {
    let order = |c: &String| match c.as_str() {
        "selected" => 0,
        "extracted" => 1,
        "transformed" => 2,
        _ => 3,
    };
    for _ in 0..50 {
        let mut children = match zk.list_children(path).await {
            Ok(c) => c,
            Err(zookeeper_client::Error::NoNode) => return Ok(()),
            Err(e) => return Err(format!("remove {path}: {e}")),
        };
        children.sort_by_key(order);
        for c in children {
            match zk.delete(&format!("{path}/{c}"), None).await {
                Ok(()) | Err(zookeeper_client::Error::NoNode) => {}
                Err(e) => return Err(format!("remove {path}/{c}: {e}")),
            }
        }
        match zk.delete(path, None).await {
            Ok(()) | Err(zookeeper_client::Error::NoNode) => return Ok(()),
            Err(zookeeper_client::Error::NotEmpty) => {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            Err(e) => return Err(format!("remove {path}: {e}")),
        }
    }
    Err(format!("remove {path}: children keep appearing"))
}

/// Every second, forgets the data of processes that are gone.
fn sweep(registry: &Registry, pid: u32, snap: &view::Snapshot, last: &mut std::time::Instant) {
    if last.elapsed() >= Duration::from_secs(1) {
        registry.keep_only(pid, &snap.processes.keys().copied().collect());
        *last = std::time::Instant::now();
    }
}

/// A stage worker's own ZooKeeper session (its locks are ephemerals of it) and its HTTP client
/// for pulling batch data from other nodes.
async fn worker_clients(opts: &NodeOptions) -> Result<(Client, reqwest::Client), String> {
    let zk = opts.zk.connect().await.map_err(|e| e.to_string())?;
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .map_err(|e| e.to_string())?;
    Ok((zk, http))
}

/// The data a stage-done child points at: from this node's registry, else pulled over HTTP. When
/// the producing node is gone (not registered any more), its child is deleted so the stage is
/// redone; the error says so.
#[allow(clippy::too_many_arguments)]
async fn pull(
    opts: &NodeOptions,
    zk: &Client,
    http: &reqwest::Client,
    registry: &Registry,
    pid: u32,
    id: u64,
    stage: Stage,
    proc_path: &str,
) -> Result<StageData, String> {
    let child = format!("{proc_path}/{}", stage.name());
    let (data, _) = zk
        .get_data(&child)
        .await
        .map_err(|e| format!("{}: {e}", stage.name()))?;
    let produced: Produced =
        serde_json::from_slice(&data).map_err(|e| format!("{} JSON: {e}", stage.name()))?;
    if produced.node == opts.id {
        if let Some(d) = registry.get(pid, id, stage) {
            return Ok(d);
        }
    }
    match fetch(http, &produced.url).await {
        Ok(d) => StageData::decode(stage, &d),
        Err(e) => {
            let gone = matches!(zk.check_stat(&paths::node(produced.node)).await, Ok(None))
                || produced.node == opts.id;
            if gone && stage != Stage::Selected {
                // Its data died with the node: the stage runs again.
                let _ = zk.delete(&child, None).await;
                return Err(format!(
                    "node {} holding the {} data is gone ({e}); redoing that stage",
                    produced.node,
                    stage.name()
                ));
            }
            Err(format!("pulling {}: {e}", produced.url))
        }
    }
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
            let view = {
                let _span = tracing::info_span!("view", channel = cid, pipeline = p.id).entered();
                view::PipelineView::spawn(opts.zk.clone(), cid, p.id, cancel.clone())
            };
            let spawn_stage = |work: stage::Work, span: tracing::Span| {
                tokio::spawn(
                    stage::run_stage(
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
                    select::run_select(
                        opts.clone(),
                        ch.clone(),
                        status_rx.clone(),
                        registry.clone(),
                        view.clone(),
                        cancel.clone(),
                    )
                    .instrument(span),
                );
                spawn_stage(
                    stage::Work::Extract,
                    tracing::info_span!("extract", channel = cid, pipeline = p.id),
                );
            }
            if p.load_nodes.contains(&opts.id) {
                spawn_stage(
                    stage::Work::Transform,
                    tracing::info_span!("transform", channel = cid, pipeline = p.id),
                );
                let span = tracing::info_span!("load", channel = cid, pipeline = p.id);
                tokio::spawn(
                    load::run_load(
                        opts.clone(),
                        ch.clone(),
                        registry.clone(),
                        view.clone(),
                        cancel.clone(),
                    )
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

/// Runs `attempt` until it ends cleanly (it returns `Ok` when `stop` was cancelled); a failure
/// is logged and the attempt starts again after 1 s.
async fn retry_until_stopped<F, Fut>(what: &str, stop: &CancellationToken, mut attempt: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<(), String>>,
{
    loop {
        match attempt().await {
            Ok(()) => break,
            Err(e) => {
                warn!(error = %e, "{what} interrupted; retrying");
                if pause(stop, Duration::from_secs(1)).await {
                    break;
                }
            }
        }
    }
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
