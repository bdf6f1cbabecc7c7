//! otter-node: runs Select/Extract/Transform/Load stages of replication pipelines.
#![deny(missing_docs)]

pub mod batch;
pub mod load;
pub mod model;
