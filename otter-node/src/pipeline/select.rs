//! Select: the mainstem election of a pipeline and, on the node holding it, the embedded canal
//! destination feeding the process window; canal batches are acked in termin order.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use canal_server::config::DestinationConfig;
use canal_server::instance::{Instance, InstanceOptions};
use canal_server::meta::{MetaBackend, ZkMeta};
use canal_server::store::{BatchMode, Gate, GetWait, StoreConfig};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn, Instrument};
use zk_coord::election::{Election, ElectionSpec, Role};
use zookeeper_client::{Acls, Client, CreateMode};

use super::view::{self, PipelineView};
use super::{pause, persistent, NodeOptions, Produced, Registry, Stage, StageData, Termin};
use crate::load::Loader;
use crate::model::{Channel, ChannelStatus, CompiledMapping};
use crate::paths;

/// Select side of one pipeline: compete for the mainstem; while holding it, run Select.
pub(super) async fn run_select(
    opts: NodeOptions,
    channel: Channel,
    status: watch::Receiver<ChannelStatus>,
    registry: Registry,
    view: PipelineView,
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
                        view.clone(),
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
    view: PipelineView,
    gate: Gate,
    stop: CancellationToken,
) {
    let (cid, pid) = (channel.id, channel.pipeline.id);
    loop {
        match select_once(&opts, &channel, &status, &registry, &view, &gate, &stop).await {
            Ok(()) => break,
            Err(e) => {
                error!(error = %e, "Select failed; restarting from the acked cursor");
                registry.forget_pipeline(pid);
                if pause(&stop, Duration::from_secs(1)).await {
                    break;
                }
            }
        }
    }
    registry.forget_pipeline(pid);
    info!(channel = cid, pipeline = pid, "Select stopped");
}

async fn select_once(
    opts: &NodeOptions,
    channel: &Channel,
    status: &watch::Receiver<ChannelStatus>,
    registry: &Registry,
    view: &PipelineView,
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
        opts, channel, status, registry, view, &zk, &store, &mappings, stop,
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
    view: &PipelineView,
    zk: &Client,
    store: &canal_server::store::Store,
    mappings: &[CompiledMapping],
    stop: &CancellationToken,
) -> Result<(), String> {
    let p = &channel.pipeline;
    let (cid, pid) = (channel.id, p.id);
    let client_id = pid as i16;
    let batches = metrics::counter!("otter_select_batches_total", "pipeline" => pid.to_string());
    let mut status = status.clone();
    let mut window = view.subscribe();
    // process id → canal batch id, in flight.
    let mut inflight: BTreeMap<u64, i64> = BTreeMap::new();
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
            let path = paths::termin(cid, pid, id);
            let (data, _) = zk
                .get_data(&path)
                .await
                .map_err(|e| format!("termin: {e}"))?;
            let t: Termin =
                serde_json::from_slice(&data).map_err(|e| format!("termin JSON: {e}"))?;
            if t.ok {
                let batch = inflight.remove(&id).unwrap_or(-1);
                store.ack(client_id, batch).map_err(|e| e.to_string())?;
                registry.forget(pid, id);
                zk.delete(&path, None)
                    .await
                    .map_err(|e| format!("termin delete: {e}"))?;
            } else {
                warn!(process = id, error = %t.error, "Load failed the batch: rolling back and redoing every batch in flight");
                return Err(format!("load of process {id} failed: {}", t.error));
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
        // With nothing in flight a whole transaction goes at once (low delay); with batches in
        // flight Select waits up to 10 ms for a full one (fewer, larger batches under load).
        let wait = if inflight.is_empty() {
            GetWait::UpOrTransaction(Duration::from_millis(100))
        } else {
            GetWait::Up(Duration::from_millis(10))
        };
        let head = inflight.keys().next().copied();
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
        }
        .map_err(|e| e.to_string())?;
        if batch.id == -1 {
            continue;
        }
        if inflight.is_empty() && !carries_mapped_rows(&batch.entries, mappings) {
            store.ack(client_id, batch.id).map_err(|e| e.to_string())?;
            continue;
        }
        let seq_opts = CreateMode::PersistentSequential.with_acls(Acls::anyone_all());
        let (_, seq) = zk
            .create(&format!("{}/p", paths::processes(cid, pid)), &[], &seq_opts)
            .await
            .map_err(|e| format!("process node: {e}"))?;
        let id = seq.into_i64() as u64;
        let name = format!("p{seq}");
        let n = batch.entries.len();
        registry.put(
            pid,
            id,
            Stage::Selected,
            StageData::Entries(Arc::new(batch.entries)),
        );
        let produced = Produced::new(opts, pid, id, Stage::Selected, n);
        zk.create(
            &format!(
                "{}/{}",
                paths::process(cid, pid, &name),
                Stage::Selected.name()
            ),
            &serde_json::to_vec(&produced).unwrap_or_default(),
            &persistent(),
        )
        .await
        .map_err(|e| format!("selected node: {e}"))?;
        inflight.insert(id, batch.id);
        batches.increment(1);
    }
}

/// Whether a batch holds a row change or DDL of a mapped table (else, with nothing in flight
/// before it, it is acked at once instead of going through the stages).
fn carries_mapped_rows(entries: &[bytes::Bytes], mappings: &[CompiledMapping]) -> bool {
    use canal_protocol::entry::{Entry, EntryType};
    use prost::Message as _;
    entries.iter().any(|b| match Entry::decode(b.clone()) {
        Ok(e) if e.entry_type() == EntryType::Rowdata => {
            let h = e.header.unwrap_or_default();
            crate::model::find_mapping(mappings, h.schema_name(), h.table_name()).is_some()
        }
        Ok(_) => false,
        Err(_) => true,
    })
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
