//! Select: the mainstem election of a pipeline and, on the node holding it, the embedded canal
//! destination feeding the process window; canal batches are acked in termin order.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use canal_protocol::entry::{Entry, EntryType, Header};
use canal_server::config::DestinationConfig;
use canal_server::instance::InstanceBuilder;
use canal_server::store::{BatchMode, Gate, GetWait, StoreConfig};
use prost::Message as _;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn, Instrument};
use zk_coord::election::{Election, ElectionSpec, Role};
use zk_coord::otter_paths;
use zookeeper_client::Client;

use crate::model::{find_mapping, ChannelStatus, CompiledMapping};
use crate::pipeline::load::target::check_targets;
use crate::pipeline::loopback::{Judge, LoopFilter};
use crate::pipeline::StageContext;
use crate::pipeline::{handoff, heartbeat};
use crate::process::view;
use crate::process::window::Opening;
use crate::process::{window, Process, Produced, Stage, Termin};
use crate::runtime::error::RuntimeError;
use crate::runtime::registry::StageData;
use crate::runtime::retry::{retry_until_stopped, Progress};

/// The shortest time between two batches. Each batch costs a few ZooKeeper writes (three when
/// one node runs every stage, an fsync each on the ensemble) whatever its size, so at a trickle
/// the transactions that arrive within this time go as one batch: at most ~66 batches/s per
/// pipeline, for at most this much more delay. Under load batches are larger than this makes them.
pub const BATCH_INTERVAL: Duration = Duration::from_millis(15);

/// The canal destination name of a pipeline's embedded Select.
pub fn destination_name(pid: u32) -> String {
    format!("otter-pipeline-{pid}")
}

/// What Select produced for one batch: the canal entries as serialized, and the same entries
/// decoded when Select had to decode them already (to see whether the batch carries mapped
/// rows), for Extract on this node to take instead of decoding them again.
#[derive(Debug)]
pub struct SelectedEntries {
    raw: Vec<Bytes>,
    decoded: Mutex<Option<Vec<Entry>>>,
}

impl SelectedEntries {
    /// The entries `raw`, with their decoded form if there is one.
    pub fn new(raw: Vec<Bytes>, decoded: Option<Vec<Entry>>) -> Self {
        Self {
            raw,
            decoded: Mutex::new(decoded),
        }
    }

    /// The serialized entries (what is pulled over HTTP, and what Extract decodes otherwise).
    pub fn raw(&self) -> &[Bytes] {
        &self.raw
    }

    /// Takes the decoded entries, if Select kept them and nobody took them yet.
    pub fn take_decoded(&self) -> Option<Vec<Entry>> {
        self.decoded.lock().ok()?.take()
    }
}

/// Select side of one pipeline: compete for the mainstem; while holding it, run Select.
pub(crate) async fn run_select(ctx: StageContext, status: watch::Receiver<ChannelStatus>) {
    let (opts, stop) = (&ctx.opts, &ctx.stop);
    let (cid, pid) = (ctx.cid(), ctx.pid());
    let address = opts.http_address.clone();
    let election = Election::spawn(
        opts.zk.clone(),
        ElectionSpec {
            path: otter_paths::mainstem(cid, pid),
            candidate_path: None,
            address: address.clone(),
            data: serde_json::to_vec(
                &serde_json::json!({"active": true, "address": address, "nid": opts.id}),
            )
            .unwrap_or_default(),
        },
    );
    let mut roles = election.watch();
    let mut current: Option<CancellationToken> = None;
    loop {
        let role = roles.borrow_and_update().clone();
        match role {
            Role::Active if current.is_none() => {
                info!("mainstem: running Select");
                let gate: Gate = election.serving_gate();
                let cancel = stop.child_token();
                tokio::spawn(
                    select_loop(ctx.with_stop(cancel.clone()), status.clone(), gate)
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
async fn select_loop(ctx: StageContext, status: watch::Receiver<ChannelStatus>, gate: Gate) {
    let (cid, pid) = (ctx.cid(), ctx.pid());
    let (c, st, g) = (&ctx, &status, &gate);
    retry_until_stopped(ctx.task("select"), &ctx.stop, |progress| async move {
        let outcome = select_once(c, st, g, progress).await;
        if outcome.is_err() {
            // Restarting from the acked cursor: everything in flight is produced again.
            c.registry.forget_pipeline(pid);
        }
        outcome
    })
    .await;
    ctx.registry.forget_pipeline(pid);
    info!(channel = cid, pipeline = pid, "Select stopped");
}

async fn select_once(
    ctx: &StageContext,
    status: &watch::Receiver<ChannelStatus>,
    gate: &Gate,
    progress: Progress,
) -> Result<(), RuntimeError> {
    let opts = &ctx.opts;
    let p = &ctx.channel.pipeline;
    let (cid, pid) = (ctx.cid(), ctx.pid());
    let client_id = pid as i16;
    let zk = opts.zk.connect().await?;
    // A new mainstem redoes everything in flight from the acked cursor.
    window::reset(&zk, cid, pid).await?;
    ctx.preclaims.clear();
    let mappings = CompiledMapping::compile(p)?;
    check_targets(p, &mappings, ctx.channel.reverse.is_some()).await?;
    let dest = destination_name(pid);
    let config = embedded_destination(p);
    let store_config = StoreConfig {
        batch_mode: BatchMode::Itemsize,
        ddl_isolation: true,
        ..config.store()
    };
    let instance = InstanceBuilder::new(&dest, config, &opts.data_dir)
        .store(store_config)
        .flush_period(Duration::from_millis(500))
        .cursors_in_zookeeper(opts.zk.connect().await?, gate.clone())
        .start()
        .await?;
    let store = instance.store().clone();
    if !store.is_subscribed(client_id) {
        store.subscribe(client_id, "", None)?;
    }
    // A new filter: Select's cursor rests on a transaction end, so judging starts fresh.
    let filter = LoopFilter::new(Judge {
        channel: cid,
        source_site: p.source_site().to_string(),
        target_site: p.target_site().to_string(),
    });
    // The pipeline's heartbeat, while this node selects: what Load measures the delay with.
    let requests_zk = opts.zk.connect().await?;
    let beating = ctx.stop.child_token();
    tokio::spawn(heartbeat::run(p.source.clone(), pid, beating.clone()));
    // Operators' snapshot requests (`otter-manager snapshot`), while this node selects.
    tokio::spawn(crate::pipeline::snapshot_request::serve(
        requests_zk,
        cid,
        pid,
        instance.clone(),
        beating.clone(),
    ));
    let result = select_work(ctx, status, &zk, &store, &mappings, filter, progress).await;
    beating.cancel();
    instance.stop().await;
    result
}

/// The canal destination Select embeds for pipeline `p`: its source, start and the source tables
/// its mappings take, with DDL isolated in batches of its own (Load applies DDL serially).
fn embedded_destination(p: &crate::model::Pipeline) -> DestinationConfig {
    DestinationConfig {
        address: p.source.address.clone(),
        username: p.source.username.clone(),
        password: p.source.password.clone(),
        tls: p.source.tls.clone(),
        slave_id: p.source.slave_id,
        journal_name: p.source.journal_name.clone(),
        position: p.source.position,
        gtid: p.source.gtid.clone(),
        timestamp: p.source.timestamp,
        // The mark table too: its rows say which transactions Load wrote ([`loopback`]).
        filter: p
            .tables
            .iter()
            .map(|t| t.source.clone())
            .chain([r"retl\.retl_mark".to_string(), r"retl\.xdual".to_string()])
            .collect::<Vec<_>>()
            .join(","),
        black_filter: String::new(),
        ddl_isolation: true,
        snapshot_tables: p.source.snapshot_tables.clone(),
        snapshot_signal_table: SNAPSHOT_SIGNAL_TABLE.into(),
        snapshot_chunk_rows: p
            .source
            .snapshot_chunk_rows
            .unwrap_or(DestinationConfig::default().snapshot_chunk_rows),
        ..DestinationConfig::default()
    }
}

/// Where a pipeline's snapshot writes its window marks on the source (created by
/// `otter-manager prepare-site`).
pub const SNAPSHOT_SIGNAL_TABLE: &str = "retl.snapshot_signal";

async fn select_work(
    ctx: &StageContext,
    status: &watch::Receiver<ChannelStatus>,
    zk: &Client,
    store: &canal_server::store::Store,
    mappings: &[CompiledMapping],
    mut filter: LoopFilter,
    progress: Progress,
) -> Result<(), RuntimeError> {
    let (opts, registry, view, stop) = (&ctx.opts, &ctx.registry, &ctx.view, &ctx.stop);
    let p = &ctx.channel.pipeline;
    let (cid, pid) = (ctx.cid(), ctx.pid());
    let client_id = pid as i16;
    let batches = metrics::counter!("otter_select_batches_total", "pipeline" => pid.to_string());
    let inline_batches =
        metrics::counter!("otter_select_inline_batches_total", "pipeline" => pid.to_string());
    let mut status = status.clone();
    let mut window = view.subscribe();
    // process id → canal batch id, in flight.
    let mut inflight: BTreeMap<u64, i64> = BTreeMap::new();
    // Termins acked and not deleted yet.
    let mut acked_termins: Vec<u64> = Vec::new();
    let mut last_open: Option<Instant> = None;
    // Select numbers the processes of its window (from 0: the window was just reset).
    let mut next_id: u64 = 0;
    loop {
        if stop.is_cancelled() {
            return Ok(());
        }
        // Ack what Load finished, strictly in process order. (A termin of a process no longer in
        // flight is one this loop already acked, still in a view that lags by a round trip.)
        let termins = window.borrow_and_update().termins.clone();
        for id in termins {
            if !inflight.contains_key(&id) {
                continue;
            }
            if inflight.keys().next() != Some(&id) {
                break;
            }
            // A batch this node's Load took from Select and committed: no need to read its
            // termin (see `preclaim`).
            let t = if ctx.preclaims.was_loaded(id) {
                Termin::loaded(id)
            } else {
                window::read_termin(zk, cid, pid, id).await?
            };
            if t.ok {
                let batch = inflight.remove(&id).unwrap_or(-1);
                store.ack(client_id, batch)?;
                registry.forget(pid, id);
                ctx.preclaims.forget(id);
                // Deleted with the next process's creation (one write fewer per batch), or
                // on their own when nothing follows for a while.
                acked_termins.push(id);
                progress.made();
            } else {
                warn!(process = id, error = %t.error, "Load failed the batch: rolling back and redoing every batch in flight");
                return Err(RuntimeError::LoadFailed {
                    process: id,
                    error: t.error,
                });
            }
        }
        let started = *status.borrow_and_update() == ChannelStatus::Started;
        if !started || inflight.len() >= p.parallelism as usize {
            // Wait for a termin (the window moves) or a status change.
            tokio::select! {
                _ = stop.cancelled() => return Ok(()),
                r = status.changed() => if r.is_err() {
                    // The channel's definition is gone: its stop follows.
                    stop.cancelled().await;
                    return Ok(());
                },
                r = view::changed(&mut window, stop, Duration::from_secs(1)) => if r.is_none() { return Ok(()) },
            }
            continue;
        }
        let head = inflight.keys().next().copied();
        // At most one batch per `BATCH_INTERVAL`: what arrives meanwhile joins the next one.
        let gap = last_open.map_or(Duration::ZERO, |t| {
            BATCH_INTERVAL.saturating_sub(t.elapsed())
        });
        if !gap.is_zero() {
            tokio::select! {
                _ = stop.cancelled() => return Ok(()),
                r = async { window.wait_for(|s| head.is_some_and(|h| s.termins.contains(&h))).await.is_ok() }, if head.is_some() => {
                    if !r {
                        stop.cancelled().await;
                        return Ok(());
                    }
                }
                _ = tokio::time::sleep(gap) => {}
            }
            continue;
        }
        // With nothing in flight a whole transaction goes at once (low delay); with batches in
        // flight Select waits up to 10 ms for a full one (fewer, larger batches under load).
        let wait = if inflight.is_empty() {
            GetWait::UpOrTransaction(Duration::from_millis(100))
        } else {
            GetWait::Up(Duration::from_millis(10))
        };
        let batch = tokio::select! {
            _ = stop.cancelled() => return Ok(()),
            // The oldest batch's termin while waiting: ack it first (the store's get is
            // cancel-safe).
            r = async { window.wait_for(|s| head.is_some_and(|h| s.termins.contains(&h))).await.is_ok() }, if head.is_some() => {
                if !r {
                    stop.cancelled().await;
                    return Ok(());
                }
                continue;
            }
            b = store.get(client_id, p.batch_size as i32, wait) => b,
        }?;
        if batch.id == -1 {
            // Nothing to select: the acked termins go now.
            window::delete_termins(zk, cid, pid, &mut acked_termins).await?;
            continue;
        }
        // Transactions another pipeline's Load wrote, going back where they came from, are
        // dropped whole.
        let kept = filter.filter(batch.entries, &batch.ack_points);
        for reason in &kept.dropped {
            metrics::counter!("otter_select_loop_dropped_total", "pipeline" => pid.to_string(), "reason" => reason.label()).increment(1);
        }
        let entries = kept.entries;
        // With nothing in flight, a batch without mapped rows is acked at once; the entries
        // decoded to see that go on to Extract.
        let mut decoded = None;
        if inflight.is_empty() {
            match decode(&entries) {
                Ok(entries) if !carries_mapped_rows(&entries, mappings) => {
                    store.ack(client_id, batch.id)?;
                    continue;
                }
                Ok(entries) => decoded = Some(entries),
                // An entry that does not decode: Extract reports it.
                Err(_) => {}
            }
        }
        let n = entries.len();
        // A small batch on a node that may run every stage up to Load: extracted and transformed
        // here, its three stage children written at once (see `handoff`).
        let (decoded, done) = if handoff::inline(ctx, n) {
            (
                None,
                handoff::extract_and_transform(ctx, mappings, &entries, decoded),
            )
        } else {
            (decoded, None)
        };
        let produced =
            |stage, id, rows| Produced::new(opts.id, &opts.http_address, pid, id, stage, rows);
        let id = next_id;
        let (process, token) = match &done {
            // A small batch already transformed: one node, every stage done. Claimed for this
            // node's Load in the same write when it may be (see `preclaim`).
            Some(_) => {
                let transformed = Produced::inline(
                    opts.id,
                    &opts.http_address,
                    pid,
                    Stage::Transformed,
                    done.as_ref().map_or(0, |b| b.rows.len()),
                );
                let name = otter_paths::process_name(true, id);
                let lent = ctx
                    .preclaims
                    .session_for(id, &name, inflight.keys().copied());
                let opening = Opening::Inline {
                    transformed: &transformed,
                    claim_for: lent.as_ref().map(|_| opts.id),
                };
                let opened = Process::open(
                    lent.as_ref().unwrap_or(zk),
                    cid,
                    pid,
                    id,
                    opening,
                    &mut acked_termins,
                )
                .await;
                if lent.is_some() && opened.is_err() {
                    ctx.preclaims.failed(id);
                }
                opened?
            }
            None => Process::open(zk, cid, pid, id, Opening::Staged, &mut acked_termins).await?,
        };
        next_id += 1;
        last_open = Some(Instant::now());
        registry.put(
            pid,
            id,
            Stage::Selected,
            StageData::Entries(Arc::new(SelectedEntries::new(entries, decoded))),
        );
        match done {
            None => {
                process
                    .write_done(zk, Stage::Selected, &produced(Stage::Selected, id, n))
                    .await?
            }
            Some(batch) => {
                let data = StageData::Batch(Arc::new(batch));
                registry.put(pid, id, Stage::Transformed, data.clone());
                if let Some(token) = token {
                    ctx.preclaims.opened(id, token, data);
                }
                inline_batches.increment(1);
            }
        }
        inflight.insert(id, batch.id);
        batches.increment(1);
    }
}

/// Decodes the entries of a canal batch.
fn decode(entries: &[Bytes]) -> Result<Vec<Entry>, prost::DecodeError> {
    entries.iter().map(|b| Entry::decode(b.clone())).collect()
}

/// Whether a batch holds a row change or DDL of a mapped table (else, with nothing in flight
/// before it, it is acked at once instead of going through the stages).
fn carries_mapped_rows(entries: &[Entry], mappings: &[CompiledMapping]) -> bool {
    let no_header = Header::default();
    entries.iter().any(|e| {
        e.entry_type() == EntryType::Rowdata && {
            let h = e.header.as_ref().unwrap_or(&no_header);
            find_mapping(mappings, h.schema_name(), h.table_name()).is_some()
                || (h.schema_name() == "retl" && h.table_name() == heartbeat::XDUAL_TABLE)
        }
    })
}
