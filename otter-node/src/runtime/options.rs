//! How a node is set up, and the clients a stage worker opens from it.

use std::path::PathBuf;
use std::time::Duration;

use zk_coord::ZkConfig;
use zookeeper_client::Client;

use crate::runtime::error::RuntimeError;

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

impl NodeOptions {
    /// A stage worker's own ZooKeeper session (its locks are ephemerals of it) and its HTTP
    /// client for pulling batch data from other nodes.
    pub(crate) async fn worker_clients(&self) -> Result<(Client, reqwest::Client), RuntimeError> {
        let zk = self.zk.connect().await?;
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .map_err(RuntimeError::HttpClient)?;
        Ok((zk, http))
    }
}
