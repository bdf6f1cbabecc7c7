//! canal-server: impersonates a MySQL replica, decodes the ROW binlog into Canal entries, keeps them in
//! a bounded store and serves them over Canal's TCP protocol.
#![deny(missing_docs)]
pub mod value;
