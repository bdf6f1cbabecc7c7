//! HA through ZooKeeper: per destination, the running-node election decides whether this server
//! serves it. Active → start the instance with cursors in ZooKeeper and the election's lease as
//! the store's gate; Paused → the gate closes (no batch is handed out); Fenced or Standby → the
//! instance is stopped (its binlog connection and client sessions close) and the server contends
//! again. Graceful shutdown flushes cursors while still holding the node, then releases it.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn, Instrument};
use zk_coord::election::{Election, ElectionSpec, Role};
use zk_coord::{paths, RunningData, ZkConfig};

use crate::config::DestinationConfig;
use crate::instance::{Instance, InstanceBuilder};
use crate::server::ServerContext;
use crate::store::Gate;

fn role_text(r: &Role) -> &'static str {
    match r {
        Role::Starting => "starting",
        Role::Standby { .. } => "standby",
        Role::Active => "active",
        Role::Paused => "paused",
        Role::Fenced => "fenced",
        Role::Stopped => "stopped",
    }
}

/// Runs the election and the instance lifecycle of one destination until `shutdown`.
#[allow(clippy::too_many_arguments)]
pub async fn run_destination(
    name: String,
    config: DestinationConfig,
    zk: ZkConfig,
    ctx: Arc<ServerContext>,
    data_dir: PathBuf,
    flush: Duration,
    address: String,
    shutdown: CancellationToken,
) {
    let span = tracing::info_span!("ha", destination = %name);
    async move {
        let election = Election::spawn(
            zk.clone(),
            ElectionSpec {
                path: paths::running(&name),
                candidate_path: Some(paths::destination_cluster_node(&name, &address)),
                address: address.clone(),
                data: zk_coord::to_canal_json(&RunningData {
                    active: true,
                    address: address.clone(),
                }),
            },
        );
        ctx.set_releaser(&name, election.releaser());
        let mut roles = election.watch();
        let mut current: Option<Arc<Instance>> = None;
        loop {
            let role = roles.borrow_and_update().clone();
            let running = match &role {
                Role::Active | Role::Paused => Some(address.clone()),
                Role::Standby { owner } => owner.clone(),
                _ => None,
            };
            ctx.set_role(&name, role_text(&role), running);
            match role {
                Role::Active if current.is_none() => {
                    let gate: Gate = election.serving_gate();
                    match start_instance(&name, &config, &zk, &data_dir, flush, gate).await {
                        Ok(inst) => {
                            info!("active: serving");
                            ctx.insert(inst.clone());
                            current = Some(inst);
                        }
                        Err(e) => {
                            error!(error = %e, "could not start as active; handing over");
                            election.release().await;
                        }
                    }
                }
                Role::Active | Role::Paused => {}
                Role::Fenced | Role::Standby { .. } | Role::Starting | Role::Stopped => {
                    if let Some(inst) = current.take() {
                        warn!(
                            role = role_text(&role),
                            "no longer active: stopping the destination"
                        );
                        ctx.remove(&name);
                        inst.stop().await;
                    }
                }
            }
            tokio::select! {
                _ = shutdown.cancelled() => break,
                r = roles.changed() => if r.is_err() { break },
            }
        }
        if let Some(inst) = current.take() {
            ctx.remove(&name);
            inst.stop().await;
        }
        election.stop().await;
        ctx.set_role(&name, "stopped", None);
    }
    .instrument(span)
    .await
}

async fn start_instance(
    name: &str,
    config: &DestinationConfig,
    zk: &ZkConfig,
    data_dir: &std::path::Path,
    flush: Duration,
    gate: Gate,
) -> Result<Arc<Instance>, String> {
    let client = zk.connect().await.map_err(|e| e.to_string())?;
    InstanceBuilder::new(name, config.clone(), data_dir)
        .flush_period(flush)
        .cursors_in_zookeeper(client, gate)
        .start()
        .await
        .map_err(|e| e.to_string())
}

/// Keeps `/otter/canal/cluster/{address}` registered (ephemeral, re-created on every new session)
/// until `shutdown`.
pub async fn register_server(zk: ZkConfig, address: String, shutdown: CancellationToken) {
    let registration = zk_coord::registration::Registration {
        parent: paths::cluster(),
        path: paths::cluster_node(&address),
        data: Vec::new(),
    };
    zk_coord::registration::keep_registered(zk, registration, shutdown).await
}
