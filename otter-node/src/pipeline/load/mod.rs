//! Load: applies a batch to the target MySQL.
//!
//! A batch is first [merged](merge()) so that every primary key is written once, then turned into
//! SQL: per table, `DELETE … WHERE key IN (…)` for removed rows and multi-row
//! `INSERT … ON DUPLICATE KEY UPDATE` (upserts) for inserted and updated rows, in chunks bounded
//! by rows and bytes. Tables are loaded in ascending weight; tables of one weight in parallel,
//! each in one transaction on its own connection (deletes first, then upserts). Every statement is
//! an upsert or a delete by key, so replaying a batch after a crash or a retry is harmless.
//!
//! Values are written as literals from Canal's text, chosen by `java.sql.Types` code: numbers are
//! validated and written as is, binary values as `X'…'` of their ISO-8859-1 bytes, and every other
//! value either as a plain `'…'` literal when it only holds characters that need no escaping
//! (dates, times, simple words) or as `_utf8mb4 X'…'` of its UTF-8 bytes. Nothing from the input
//! ever reaches the SQL text unvalidated or unencoded, whatever the target's `sql_mode`
//! (`NO_BACKSLASH_ESCAPES`, `ANSI_QUOTES`).
//!
//! A retryable failure (lost or refused connection, deadlock, lock wait timeout, server shutdown)
//! rolls the table's transaction back and redoes it after a capped exponential backoff, until the
//! load is cancelled.
//!
//! Modules, by job: [`merge`](mod@merge) (one write per key), [`literal`] (values as validated SQL literals),
//! [`sql`] (the statements of each table, grouped by weight), [`loader`] (the pool that runs a
//! batch's transactions with retries), [`target`] (the target tables a pipeline needs exist and
//! have a primary key), [`error`] (why a load failed, and which driver errors a retry can fix) and
//! `worker` (the Load stage of a pipeline: processes strictly in order, then their termins).

pub mod error;
pub mod literal;
pub mod loader;
pub mod merge;
pub mod sql;
pub mod target;
pub(crate) mod worker;

#[cfg(test)]
mod test_rows;

pub use error::LoadError;
pub use loader::{LoadStats, Loader, BACKOFF_MAX, BACKOFF_MIN, MAX_CONNECTIONS};
pub use merge::merge;
pub use sql::{CHUNK_BYTES, CHUNK_ROWS};
