//! canal-server: impersonates a MySQL replica, decodes the ROW binlog into Canal entries, keeps them in
//! a bounded store and serves them over Canal's TCP protocol. The library is what the
//! `canal-server` binary is made of and what otter-node embeds.
//!
//! # Public API
//! - [`destination`]: [`Destination`] / [`DestinationHandle`], one source read as a replica,
//!   yielding [`ParsedEntry`] values ([`entry`]) in binlog order through a bounded channel. This is
//!   the API otter-node embeds.
//! - [`instance`]: a served destination (parser → bounded [`store`] → cursors), started from its
//!   configuration by the one [`instance::InstanceBuilder`] (standalone, HA, otter-node's Select).
//! - [`store`]: the bounded multi-consumer store of encoded entries, each client's cursor and
//!   filter, and the hand-out gate HA fences with.
//! - [`position`]: every binlog position ([`BinlogPosition`], [`EntryPosition`], the stored
//!   [`position::Cursor`]), the GTID set, the minimum-cursor rule and Canal's cursor JSON model.
//! - [`binlog`]: reading the binlog; [`binlog::file::BinlogFileReader`] +
//!   [`binlog::convert::Converter`] decode binlog files on disk as a destination decodes the stream.
//! - [`schema`]: table definitions over time (DDL catalog, schema history); [`value`]: Canal's text
//!   for every column type; [`filter`]: Canal's table filter regexes.
//! - [`config`]: the TOML configuration, validated with errors that name the key.
//! - [`mysql_tls`]: TLS to MySQL (`ssl_mode` and certificates), for sources here and otter's
//!   sources and targets.
//! - [`server`]: the Canal TCP server, its sessions, the admin HTTP port and ZooKeeper HA, used by
//!   the binary.
//!
//! Internal: `meta` (where cursors are persisted: `meta.dat` or ZooKeeper, chosen by the builder),
//! the replica connection and start resolution inside [`binlog`], and the source's
//! `information_schema` reader inside [`schema`].
//!
//! Neighbours: `canal-protocol` holds the wire bytes and entry types; `zk-coord` the ZooKeeper
//! layout, election and registration. HA wraps a destination and never sits in the data path.
#![deny(missing_docs)]
// Errors carry the destination, position and table by value; they are built on cold paths only.
#![allow(clippy::result_large_err)]

pub mod binlog;
pub mod config;
pub mod destination;
pub mod entry;
pub mod filter;
pub mod instance;
pub(crate) mod meta;
pub mod mq;
pub mod mysql_tls;
pub mod position;
pub mod schema;
pub mod server;
pub mod snapshot;
pub mod store;
pub mod value;

pub use destination::{Destination, DestinationError, DestinationHandle, DestinationStatus};
pub use entry::ParsedEntry;
pub use position::{BinlogPosition, EntryPosition};
