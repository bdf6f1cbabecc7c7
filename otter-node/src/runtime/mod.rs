//! A node's runtime: registers the node, follows the channel definitions, and runs the stages of
//! every pipeline that names it ([`crate::pipeline`]), scheduled through the process window in
//! ZooKeeper ([`crate::process`]).
//!
//! * [`options`]: how a node is set up ([`options::NodeOptions`]) and a worker's clients.
//! * [`channels`]: reading the channel definitions.
//! * [`stages`]: which stages of a pipeline this node runs.
//! * [`registry`]: the stage data this node produced, for the next stage and other nodes.
//! * [`codec`]: the wire form of stage data; [`pull`]: getting it from the node holding it.
//! * [`retry`]: restarting a failed worker with backoff, logged and counted.
//! * [`error`]: [`error::RuntimeError`], which says whether a failure is retryable.

pub mod channels;
pub mod codec;
pub mod error;
pub mod options;
pub mod pull;
pub mod registry;
pub mod retry;
pub mod stages;

use std::collections::HashMap;
use std::time::Duration;

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};
use zk_coord::otter_paths;
use zk_coord::registration::Registration;
use zookeeper_client::Client;

use crate::model::ChannelStatus;
use channels::{read_channels, same_definition};
use options::NodeOptions;
use registry::Registry;
use retry::pause;
use stages::spawn_stages;

/// Runs the node until `stop`: registration, channel watching, and the stages of its pipelines.
pub async fn run_node(opts: NodeOptions, registry: Registry, stop: CancellationToken) {
    tokio::spawn(zk_coord::registration::keep_registered(
        opts.zk.clone(),
        Registration {
            parent: otter_paths::nodes(),
            path: otter_paths::node(opts.id),
            data: opts.http_address.as_bytes().to_vec(),
        },
        stop.clone(),
    ));
    let mut running: HashMap<u32, (Vec<u8>, watch::Sender<ChannelStatus>, CancellationToken)> =
        HashMap::new();
    let mut client: Option<Client> = None;
    loop {
        if stop.is_cancelled() {
            break;
        }
        if client.is_none() {
            match opts.zk.connect_until_stopped(&stop).await {
                Some(c) => client = Some(c),
                None => break,
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
            // A two-way channel runs both directions, each seeing the other as `reverse`.
            for dir in ch.directions() {
                spawn_stages(&opts, &dir, status_rx.clone(), &registry, &cancel);
                info!(channel = cid, pipeline = dir.pipeline.id, status = ?ch.status, "running the pipeline's stages of this node");
            }
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
