//! otter-node: runs Select/Extract/Transform/Load stages of replication pipelines.
#![deny(missing_docs)]

pub mod batch;
pub mod extract;
pub mod load;
pub mod model;
pub mod paths;
