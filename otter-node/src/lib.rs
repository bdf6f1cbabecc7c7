//! otter-node: runs Select/Extract/Transform/Load stages of replication pipelines.
//!
//! * [`model`]: channel and pipeline definitions (TOML for `otter-manager apply`, JSON in ZooKeeper).
//! * [`extract`]: Extract and Transform of Canal entries into [`batch::LoadBatch`]es.
//! * [`ddl`]: table names in DDL statements rewritten to the mapped targets.
//! * [`load`]: Load into the target MySQL (merge by key, upserts, ordered by weight, retries).
//! * [`runtime`]: a node's scheduling through ZooKeeper (mainstem, process window, locks,
//!   termins) and [`http`] for pulling batch data between nodes.
#![deny(missing_docs)]

pub mod batch;
pub mod ddl;
pub mod extract;
pub mod http;
pub mod load;
pub mod model;
pub mod paths;
pub mod runtime;
