//! Load: applies a batch to the target MySQL.
//!
//! A batch is first [merged](merge()) so that every primary key is written once, then turned into
//! SQL: per table, `DELETE … WHERE key IN (…)` for removed rows and multi-row
//! `INSERT … ON DUPLICATE KEY UPDATE` (upserts) for inserted and updated rows, in chunks bounded
//! by rows and bytes. Tables are loaded in ascending weight; tables of one weight in parallel,
//! each in one transaction on its own connection (deletes first, then upserts), and a large table
//! without unique secondary or foreign keys spread over several connections by key
//! ([`shard`]). Every statement is an upsert or a delete by key, so replaying a batch after a
//! crash or a retry is harmless.
//!
//! Values are written as literals from Canal's text, chosen by `java.sql.Types` code: numbers are
//! validated and written as is, binary values as `X'…'` of their ISO-8859-1 bytes, and every other
//! value either as a plain `'…'` literal when it only holds characters that need no escaping
//! (dates, times, simple words) or as `_utf8mb4 X'…'` of its UTF-8 bytes. Nothing from the input
//! ever reaches the SQL text unvalidated or unencoded, whatever the target's `sql_mode`
//! (`NO_BACKSLASH_ESCAPES`, `ANSI_QUOTES`).
//!
//! Every transaction is fenced: it first checks, under a row lock of `retl.retl_fence`, that the
//! target holds no newer fencing token for the pipeline than the Load lock this node holds, and
//! rolls back otherwise ([`LoadError::Fenced`]), so a node that lost its lock without noticing
//! yet cannot overwrite what a newer holder loaded ([`fence`]).
//!
//! A retryable failure (lost or refused connection, deadlock, lock wait timeout, server shutdown)
//! rolls the table's transaction back and redoes it after a capped exponential backoff, until the
//! load is cancelled.
//!
//! Modules, by job: [`merge`](mod@merge) (one write per key), [`literal`] (values as validated
//! SQL literals), [`sql`] (the statements of each table, grouped by weight), [`fence`] (the
//! fencing token in `retl.retl_fence`), [`loader`] (the pool that runs a batch's transactions with
//! retries), [`shard`] (one large table spread over several connections by key, where that is safe),
//! [`target`] (the target tables a pipeline needs exist and have a primary key),
//! [`conflict`] (two-way conflicts: detected in the table's transaction, resolved, reported),
//! [`site`] (creating `retl` and its tables on a site, for `otter-manager prepare-site`),
//! [`error`] (why a load failed, and which driver errors a retry can fix), `worker` (the Load
//! stage of a pipeline: processes strictly in order, then their termins) and `test_hook` (a
//! test-only pause, off unless its environment variable is set).

pub(crate) mod ahead;
pub mod conflict;
pub mod error;
pub mod fence;
pub mod finisher;
pub mod literal;
pub mod loader;
pub mod merge;
pub mod shard;
pub mod site;
pub mod sql;
pub mod target;
pub(crate) mod test_hook;
pub(crate) mod worker;

#[cfg(test)]
mod test_rows;

pub use error::LoadError;
pub use fence::{Fence, FENCE_SCHEMA, FENCE_TABLE};
pub use loader::{LoadStats, Loader, MarkSpec, BACKOFF_MAX, BACKOFF_MIN, MAX_CONNECTIONS};
pub use merge::merge;
pub use site::prepare_site;
pub use sql::{CHUNK_BYTES, CHUNK_ROWS};
