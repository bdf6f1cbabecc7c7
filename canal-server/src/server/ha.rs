//! HA through ZooKeeper: per destination, the running-node election decides whether this server
//! serves it. Active → start the instance with cursors in ZooKeeper and the election's lease as
//! the store's gate; Paused → the gate closes (no batch is handed out); Fenced or Standby → the
//! instance is stopped (its binlog connection and client sessions close) and the server contends
//! again. Cursor writes are fenced by the ownership the instance started under (see
//! [`zk_coord::fence`]); if the node was lost and won again meanwhile, the instance is restarted.
//! Graceful shutdown flushes cursors while still holding the node, then releases it.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn, Instrument};
use zk_coord::election::{Election, ElectionSpec, Role};
use zk_coord::fence::Fencing;
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
        // The instance and the ownership (running node creation) it was started under.
        let mut current: Option<(Arc<Instance>, i64)> = None;
        loop {
            let role = roles.borrow_and_update().clone();
            let running = match &role {
                Role::Active | Role::Paused => Some(address.clone()),
                Role::Standby { owner } => owner.clone(),
                _ => None,
            };
            ctx.set_role(&name, role_text(&role), running);
            let fencing = election.fencing();
            if let Some((_, held)) = &current {
                if matches!(role, Role::Active | Role::Paused)
                    && fencing.as_ref().map(Fencing::ownership) != Some(*held)
                {
                    // Lost and won again between two looks at the role: the instance started
                    // under the old ownership can no longer write its cursors; start afresh.
                    warn!("the running node was lost and taken again meanwhile: restarting the destination");
                    if let Some((inst, _)) = current.take() {
                        ctx.remove(&name);
                        inst.stop().await;
                    }
                }
            }
            match role {
                Role::Active if current.is_none() => {
                    // No fencing: the ownership already ended; the role is about to change.
                    if let Some(fencing) = fencing {
                        let gate: Gate = election.serving_gate();
                        let held = fencing.ownership();
                        match start_instance(&name, &config, &zk, &data_dir, flush, gate, fencing)
                            .await
                        {
                            Ok(inst) => {
                                info!("active: serving");
                                ctx.insert(inst.clone());
                                current = Some((inst, held));
                            }
                            Err(e) => {
                                error!(error = %e, "could not start as active; handing over");
                                election.release().await;
                            }
                        }
                    }
                }
                Role::Active | Role::Paused => {}
                Role::Fenced | Role::Standby { .. } | Role::Starting | Role::Stopped => {
                    if let Some((inst, _)) = current.take() {
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
        if let Some((inst, _)) = current.take() {
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
    fencing: Fencing,
) -> Result<Arc<Instance>, String> {
    let client = zk.connect().await.map_err(|e| e.to_string())?;
    InstanceBuilder::new(name, config.clone(), data_dir)
        .flush_period(flush)
        .cursors_in_zookeeper(client, gate)
        .fenced_by(fencing)
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
