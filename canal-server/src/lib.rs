//! canal-server: impersonates a MySQL replica, decodes the ROW binlog into Canal entries, keeps them in
//! a bounded store and serves them over Canal's TCP protocol.
//!
//! Main types:
//! - [`destination::Destination`] / [`destination::DestinationHandle`]: one source read as a replica,
//!   yielding [`entry::ParsedEntry`] values in binlog order through a bounded channel. This is the
//!   API otter-node embeds.
//! - [`binlog::file::BinlogFileReader`] + [`binlog::convert::Converter`]: the same decoding from
//!   binlog files on disk.
//! - [`config::ServerConfig`]: the TOML configuration, validated with errors that name the key.
//! - [`position`]: every binlog position ([`BinlogPosition`], [`EntryPosition`], the stored
//!   [`position::Cursor`]), the GTID set, the minimum-cursor rule and Canal's cursor JSON model.
//!
//! Neighbours: `canal-protocol` holds the wire and entry types; ZooKeeper HA wraps a destination
//! and never sits in the data path.
#![deny(missing_docs)]
// Errors carry the destination, position and table by value; they are built on cold paths only.
#![allow(clippy::result_large_err)]

pub mod binlog;
pub mod config;
pub mod destination;
pub mod entry;
pub mod filter;
pub mod instance;
pub mod meta;
pub mod position;
pub mod schema;
pub mod server;
pub mod store;
pub mod value;

pub use destination::{Destination, DestinationError, DestinationHandle, DestinationStatus};
pub use entry::ParsedEntry;
pub use position::{BinlogPosition, EntryPosition};
