//! DDL text → Canal entry classification ([`classify()`]) and table definitions ([`Catalog`]).
//!
//! Two jobs share one statement reader:
//!
//! * [`classify()`] decides which Canal entry a QUERY event becomes (compat reference §2.6): its
//!   [`DdlKind`], and the schema/table the entry header names.
//! * [`Catalog::apply`] replays DDL onto in-memory [`TableMeta`](super::table::TableMeta)s so
//!   that row events, which carry no column names, can be decoded. Column types come out exactly as MariaDB 10.11's
//!   `information_schema.COLUMNS.COLUMN_TYPE` prints them (`INT` → `int(11)`, `BOOL` → `tinyint(1)`,
//!   `JSON` → `longtext`, …); `canal-server/tests/schema_ddl.rs` checks this against a real server.
//!
//! # How statements are read
//!
//! Text is split into tokens by `sqlparser`'s tokenizer with its MySQL dialect (quoting, escapes,
//! comments and `/*!NNNNN … */` version comments; MariaDB's `/*M!NNNNN … */` is expanded here too).
//! Statement structure is then read by a small hand-written reader over those tokens, because
//! `sqlparser` 0.63 rejects many DDL forms MariaDB writes to its binlog: `ZEROFILL`, column
//! `CHARSET x`, `ALTER TABLE … ENGINE=…`, `DEFAULT CHARSET=…`, `CONVERT TO CHARACTER SET`,
//! `DROP INDEX i` inside ALTER, `ADD (a INT, b INT)`, `ADD COLUMN IF NOT EXISTS`, `NATIONAL VARCHAR`,
//! `ALTER ONLINE TABLE`, … `sqlparser`'s full parser is still used for statement-format UPDATE and
//! DELETE (target table, multi-table detection) and to tell "a statement Canal would parse but not
//! report" from "unparseable" for statements this module does not recognise. Long DML texts (e.g.
//! ANNOTATE_ROWS events of big INSERTs) are only tokenised as far as their first 8 KiB.
//!
//! # Guarantees
//!
//! * No input panics; unknown syntax inside a recognised DDL makes [`Catalog::apply`] return a
//!   [`DdlError`] (the caller then re-reads the affected tables from `information_schema`) and
//!   leaves the catalog unchanged.
//! * Unqualified names take the event's current database; backticks and double quotes are removed.
//!   Table and database names are case-sensitive (`lower_case_table_names=0`); column names are
//!   compared case-insensitively, as MariaDB does.
//!
//! # Assumptions (MariaDB 10.11 defaults)
//!
//! `explicit_defaults_for_timestamp=ON` (TIMESTAMP columns are nullable unless declared NOT NULL),
//! `utf8` means `utf8mb3`, `REAL` is `DOUBLE` (no `REAL_AS_FLOAT`), no `sql_mode=ORACLE` types.
//! Temporary tables are ignored: their rows never reach a ROW-format binlog. System-versioned
//! tables are refused ([`DdlError::Unsupported`]) because versioning adds hidden columns.
//!
//! # Layout
//!
//! One file per job; only the items re-exported below are public.
//!
//! * `lex`: SQL text → tokens (tokenizer, `/*M!…*/` expansion, the 8 KiB DML prefix, splitting
//!   into statements).
//! * `parse`: tokens of one statement → the statement model in `stmt` (`parse/create.rs`,
//!   `parse/alter.rs`, `parse/dml.rs`, column definitions in `parse/column.rs`, the token cursor
//!   in `parse/cursor.rs`).
//! * `classify`: the statement model → Canal entry kind, schema and table ([`classify()`]).
//! * `data_change`: whether a QUERY event's text is a data change written as a statement
//!   ([`data_change()`]), and the temporary tables it creates or drops ([`temporary_tables()`]).
//! * `catalog`: [`Catalog`] state, [`Catalog::apply`] (`catalog/apply.rs`) and `ALTER TABLE`
//!   (`catalog/alter.rs`).
//! * `column_type`: a column definition → MariaDB's `COLUMN_TYPE` text and column metadata;
//!   `charset`: character-set names, collations and bytes per character.

mod catalog;
mod charset;
pub(crate) use charset::mbmaxlen;
mod classify;
mod column_type;
mod data_change;
mod lex;
mod parse;
mod stmt;
#[cfg(test)]
mod tests;

pub use self::catalog::{Catalog, DdlError, TableChange};
pub use self::classify::{classify, DdlKind, DdlStatement};
pub use self::data_change::{data_change, temporary_tables, DataChange, TemporaryTables};
