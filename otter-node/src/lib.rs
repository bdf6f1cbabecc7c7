//! otter-node: runs Select/Extract/Transform/Load stages of replication pipelines.
//!
//! * [`model`]: channel and pipeline definitions (TOML for `otter-manager apply`, JSON in ZooKeeper).
//! * [`batch`]: what moves between the stages ([`batch::LoadBatch`]).
//! * [`pipeline`]: the stages, one module each: [`pipeline::select`], [`pipeline::extract`],
//!   [`pipeline::transform`] and [`pipeline::load`] (merge by key, SQL, the loader with retries,
//!   target checks).
//! * [`process`]: a batch's lifecycle in ZooKeeper (the process window, its typed children,
//!   locks, [`process::Produced`] and [`process::Termin`]).
//! * [`runtime`]: a node's scheduling ([`runtime::run_node`]: registration, channel watching, the
//!   stage registry, pulls, retries) and [`http`] for serving batch data to other nodes.
//!
//! * [`check`]: the consistency checker behind `otter-manager check` (and its repairs).
//!
//! The znode layout is [`zk_coord::otter_paths`], shared with otter-manager.
#![deny(missing_docs)]

pub mod batch;
pub mod check;
pub mod http;
pub mod model;
pub mod pipeline;
pub mod process;
pub mod runtime;
