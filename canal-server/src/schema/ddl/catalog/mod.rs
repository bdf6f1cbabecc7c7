//! The catalog: in-memory table and database definitions that DDL mutates, and what applying a
//! statement reports ([`TableChange`]) or why it cannot ([`DdlError`]).
//!
//! * this file: the state and its direct accessors;
//! * [`apply`]: [`Catalog::apply`], statement by statement, atomically;
//! * [`alter`]: `ALTER TABLE` clauses on one table definition.

mod alter;
mod apply;

use std::collections::BTreeMap;

use super::charset::normalize_charset;
use crate::schema::table::TableMeta;

/// Why a DDL statement could not be applied to the [`Catalog`].
///
/// Every variant means the same thing to the caller: the catalog was left unchanged and the
/// tables named by [`classify`](crate::schema::ddl::classify()) for this SQL should be re-read
/// from `information_schema`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DdlError {
    /// The statement (or a clause of it) uses syntax this module does not model.
    #[error("unsupported DDL ({reason}); re-read the table from information_schema: {sql}")]
    Unsupported {
        /// The full SQL text.
        sql: String,
        /// What was not understood.
        reason: String,
    },
    /// The statement changes a table the catalog does not know.
    #[error("DDL refers to unknown table {schema}.{table}: {sql}")]
    UnknownTable {
        /// Schema of the missing table.
        schema: String,
        /// Name of the missing table.
        table: String,
        /// The full SQL text.
        sql: String,
    },
    /// The statement refers to a column the catalog's table definition does not have.
    #[error("DDL refers to unknown column {column} of {schema}.{table}: {sql}")]
    UnknownColumn {
        /// Schema of the table.
        schema: String,
        /// Table name.
        table: String,
        /// The missing column.
        column: String,
        /// The full SQL text.
        sql: String,
    },
}

impl DdlError {
    /// The table the error is about, when there is one.
    pub fn table(&self) -> Option<(&str, &str)> {
        match self {
            DdlError::UnknownTable { schema, table, .. }
            | DdlError::UnknownColumn { schema, table, .. } => Some((schema, table)),
            DdlError::Unsupported { .. } => None,
        }
    }
}

/// One effect of a DDL statement on the catalog, in the order the effects happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TableChange {
    /// The table now has this definition (created, altered, or the target of a rename).
    Defined(TableMeta),
    /// The table no longer exists (dropped, or the source of a rename).
    Dropped {
        /// Schema of the dropped table.
        schema: String,
        /// Name of the dropped table.
        table: String,
    },
    /// The database exists with this default character set (created or altered).
    DatabaseDefined {
        /// Database name.
        schema: String,
        /// Its default character set.
        charset: String,
    },
    /// The database was dropped (its tables are reported as [`TableChange::Dropped`] first).
    DatabaseDropped {
        /// Database name.
        schema: String,
    },
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Database {
    charset: Option<String>,
    tables: BTreeMap<String, TableMeta>,
}

/// In-memory table definitions: schemas → tables → [`TableMeta`], plus each database's default
/// character set and the server default (`utf8mb4` unless set).
///
/// Character sets of new string columns resolve as MariaDB does: the column's own
/// `CHARACTER SET`/`COLLATE`, else the table default, else the database default, else the server
/// default. Databases whose default is unknown (tables only seeded) use the server default, so
/// callers seeding from a live server should also call [`Catalog::set_database_charset`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Catalog {
    databases: BTreeMap<String, Database>,
    server_charset: String,
}

impl Default for Catalog {
    fn default() -> Self {
        Self::new()
    }
}

impl Catalog {
    /// An empty catalog whose server default character set is `utf8mb4`.
    pub fn new() -> Self {
        Self::with_server_charset("utf8mb4")
    }

    /// An empty catalog with the given server default character set (`character_set_server`).
    pub fn with_server_charset(charset: &str) -> Self {
        Catalog {
            databases: BTreeMap::new(),
            server_charset: normalize_charset(charset),
        }
    }

    /// The server default character set.
    pub fn server_charset(&self) -> &str {
        &self.server_charset
    }

    /// Sets the server default character set (`@@character_set_server`), used for databases whose
    /// own default is unknown.
    pub fn set_server_charset(&mut self, charset: &str) {
        self.server_charset = normalize_charset(charset);
    }

    /// Records `schema`'s default character set (from `information_schema.SCHEMATA`), creating
    /// the database entry if needed.
    pub fn set_database_charset(&mut self, schema: &str, charset: &str) {
        self.databases
            .entry(schema.to_string())
            .or_default()
            .charset = Some(normalize_charset(charset));
    }

    /// The default character set recorded for `schema`, if any.
    pub fn database_charset(&self, schema: &str) -> Option<&str> {
        self.databases.get(schema)?.charset.as_deref()
    }

    /// The character set new tables in `schema` get: the database default, else the server's.
    pub fn effective_database_charset(&self, schema: &str) -> &str {
        self.database_charset(schema)
            .unwrap_or(self.server_charset.as_str())
    }

    /// Databases known to the catalog (created, seeded with tables, or given a charset), with
    /// their recorded default character set.
    pub fn databases(&self) -> impl Iterator<Item = (&str, Option<&str>)> {
        self.databases
            .iter()
            .map(|(name, db)| (name.as_str(), db.charset.as_deref()))
    }

    /// Inserts or replaces a table definition (keyed by its `schema` and `table`).
    pub fn insert_table(&mut self, meta: TableMeta) {
        self.databases
            .entry(meta.schema.clone())
            .or_default()
            .tables
            .insert(meta.table.clone(), meta);
    }

    /// Removes a table definition, returning it. The database entry stays.
    pub fn remove_table(&mut self, schema: &str, table: &str) -> Option<TableMeta> {
        self.databases.get_mut(schema)?.tables.remove(table)
    }

    /// Removes a database and all its tables.
    pub fn remove_database(&mut self, schema: &str) {
        self.databases.remove(schema);
    }

    /// The definition of `schema.table` (exact, case-sensitive names).
    pub fn table(&self, schema: &str, table: &str) -> Option<&TableMeta> {
        self.databases.get(schema)?.tables.get(table)
    }

    /// All table definitions, ordered by schema then table name.
    pub fn tables(&self) -> impl Iterator<Item = &TableMeta> {
        self.databases.values().flat_map(|db| db.tables.values())
    }
}
