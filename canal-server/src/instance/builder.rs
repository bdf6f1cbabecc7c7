//! From a destination's configuration to a running [`Instance`]: the one place that decides where
//! its cursors live and whether hand-out is fenced. canal-server (standalone and HA) and
//! otter-node's Select start their instances through it.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use super::{Instance, InstanceError, InstanceOptions};
use crate::config::DestinationConfig;
use crate::meta::{MetaBackend, MetaFile, ZkMeta};
use crate::store::{Gate, StoreConfig};

/// Where the instance keeps subscriptions and cursors.
enum Cursors {
    /// `data_dir/{name}/meta.dat`, unfenced (standalone server).
    File,
    /// ZooKeeper in Canal's layout; writes and hand-out only while `gate` allows (HA).
    ZooKeeper {
        client: zk_coord::Client,
        gate: Gate,
        fencing: Option<zk_coord::fence::Fencing>,
    },
}

/// Builds an [`Instance`]: defaults are the destination's own store settings
/// ([`DestinationConfig::store`]), cursors in `data_dir/{name}/meta.dat` and a 1 s flush period
/// (the server's `flush_period_ms` default).
pub struct InstanceBuilder {
    name: String,
    config: DestinationConfig,
    store: StoreConfig,
    data_dir: PathBuf,
    flush_period: Duration,
    cursors: Cursors,
}

impl InstanceBuilder {
    /// An instance named `name` reading the source `config` describes, keeping its files
    /// (schema history, file cursors) under `data_dir/{name}`.
    pub fn new(name: &str, config: DestinationConfig, data_dir: impl Into<PathBuf>) -> Self {
        Self {
            name: name.to_string(),
            store: config.store(),
            config,
            data_dir: data_dir.into(),
            flush_period: Duration::from_secs(1),
            cursors: Cursors::File,
        }
    }

    /// Store settings other than the destination's own.
    pub fn store(mut self, store: StoreConfig) -> Self {
        self.store = store;
        self
    }

    /// How often cursors are written (zero: on every ack).
    pub fn flush_period(mut self, period: Duration) -> Self {
        self.flush_period = period;
        self
    }

    /// Cursors (and the schema history) in ZooKeeper through `client`; batches are handed out and
    /// cursors written only while `gate` says this process holds the destination.
    pub fn cursors_in_zookeeper(mut self, client: zk_coord::Client, gate: Gate) -> Self {
        self.cursors = Cursors::ZooKeeper {
            client,
            gate,
            fencing: None,
        };
        self
    }

    /// With cursors in ZooKeeper: every cursor write is one multi checking `fencing`, so it fails
    /// and writes nothing once the ownership `fencing` was bound to has ended.
    pub fn fenced_by(mut self, fencing: zk_coord::fence::Fencing) -> Self {
        if let Cursors::ZooKeeper { fencing: f, .. } = &mut self.cursors {
            *f = Some(fencing);
        }
        self
    }

    /// Restores the subscriptions, resolves the start and spawns the parser and its tasks
    /// (see [`Instance`]).
    pub async fn start(self) -> Result<Arc<Instance>, InstanceError> {
        let Self {
            name,
            config,
            store,
            data_dir,
            flush_period,
            cursors,
        } = self;
        let (meta, gate) = match cursors {
            Cursors::File => (
                MetaBackend::File(MetaFile::new(&data_dir, &name, &config.address)),
                None,
            ),
            Cursors::ZooKeeper {
                client,
                gate,
                fencing,
            } => {
                let mut meta = ZkMeta::new(client, &name, &config.address, Some(gate.clone()));
                if let Some(f) = fencing {
                    meta = meta.fenced(f);
                }
                (MetaBackend::Zk(meta), Some(gate))
            }
        };
        let options = InstanceOptions {
            flush_period,
            meta,
            gate,
        };
        Instance::start(&name, config, store, data_dir, options).await
    }
}
