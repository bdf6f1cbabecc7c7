//! Table definitions over time: what the decoder needs to name and type the columns of row events.
//!
//! * [`table`]: [`table::TableMeta`] / [`table::ColumnMeta`], one table definition.
//! * [`ddl`]: classification of QUERY-event SQL into Canal entry types, and the [`ddl::Catalog`]
//!   that replays DDL onto table definitions with MariaDB's exact column type text.
//! * [`history`]: [`history::SchemaHistory`], versions of every table keyed by binlog position
//!   (Canal's "TSDB"), persisted as JSON and replay-safe across restarts.
//! * `source` (internal): definitions read from the source's `information_schema`.

pub mod ddl;
pub mod history;
pub(crate) mod source;
pub mod table;
