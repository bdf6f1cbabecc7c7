//! DDL text → Canal entry classification ([`classify`]) and table definitions ([`Catalog`]).
//!
//! Two jobs share one statement reader:
//!
//! * [`classify`] decides which Canal entry a QUERY event becomes (compat reference §2.6): its
//!   [`DdlKind`], and the schema/table the entry header names.
//! * [`Catalog::apply`] replays DDL onto in-memory [`TableMeta`]s so that row events, which carry no
//!   column names, can be decoded. Column types come out exactly as MariaDB 10.11's
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

use std::collections::BTreeMap;

use sqlparser::dialect::MySqlDialect;
use sqlparser::tokenizer::{Token, Tokenizer, Whitespace};

use super::table::{ColumnMeta, TableMeta};

// ---------------------------------------------------------------------------------------------
// Public types: classification
// ---------------------------------------------------------------------------------------------

/// The Canal `EventType` a QUERY-event statement maps to (compat reference §2.6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DdlKind {
    /// Statement-format `INSERT`.
    Insert,
    /// Statement-format `UPDATE`.
    Update,
    /// Statement-format `DELETE`.
    Delete,
    /// `CREATE TABLE`.
    Create,
    /// `ALTER TABLE` (columns, table options, primary-key drop, …).
    Alter,
    /// `DROP TABLE` (one per table).
    Erase,
    /// `CREATE/DROP DATABASE`, or SQL that cannot be parsed.
    Query,
    /// `TRUNCATE TABLE`.
    Truncate,
    /// `RENAME TABLE` or `ALTER TABLE … RENAME TO`.
    Rename,
    /// Index creation: `CREATE INDEX`, `ALTER TABLE … ADD INDEX/KEY/UNIQUE/PRIMARY KEY`.
    CIndex,
    /// Index removal: `DROP INDEX`, `ALTER TABLE … DROP INDEX/KEY/CONSTRAINT`.
    DIndex,
}

impl DdlKind {
    /// The numeric value of the matching `canal_protocol::entry::EventType` (§2.1):
    /// INSERT=1 UPDATE=2 DELETE=3 CREATE=4 ALTER=5 ERASE=6 QUERY=7 TRUNCATE=8 RENAME=9 CINDEX=10
    /// DINDEX=11.
    pub fn event_type_code(self) -> i32 {
        match self {
            DdlKind::Insert => 1,
            DdlKind::Update => 2,
            DdlKind::Delete => 3,
            DdlKind::Create => 4,
            DdlKind::Alter => 5,
            DdlKind::Erase => 6,
            DdlKind::Query => 7,
            DdlKind::Truncate => 8,
            DdlKind::Rename => 9,
            DdlKind::CIndex => 10,
            DdlKind::DIndex => 11,
        }
    }

    /// `RowChange.isDdl` for an entry of this kind: false only for INSERT/UPDATE/DELETE (§2.6).
    pub fn is_ddl(self) -> bool {
        !matches!(self, DdlKind::Insert | DdlKind::Update | DdlKind::Delete)
    }

    /// Whether a statement of this kind may change table definitions or databases, so it must be
    /// passed to the schema history: every DDL kind except TRUNCATE. CINDEX/DINDEX count because
    /// `ADD PRIMARY KEY` (CINDEX) changes `isKey`; QUERY counts because CREATE/DROP DATABASE do.
    pub fn changes_schema(self) -> bool {
        self.is_ddl() && self != DdlKind::Truncate
    }
}

/// One classification result. A statement can yield several (`DROP TABLE a, b`, multi-clause
/// `ALTER`); Canal builds the entry from the first one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DdlStatement {
    /// Entry type.
    pub kind: DdlKind,
    /// Header `schemaName`: the qualifier, else the event's current database; `None` when neither
    /// is known (and for unparseable SQL).
    pub schema: Option<String>,
    /// Header `tableName`; for RENAME the new name. `None` for database statements, unparseable
    /// SQL and multi-table DML.
    pub table: Option<String>,
    /// RENAME only: the schema the table was renamed from (for table filtering).
    pub old_schema: Option<String>,
    /// RENAME only: the table name before the rename (for table filtering).
    pub old_table: Option<String>,
}

impl DdlStatement {
    fn new(kind: DdlKind, schema: Option<String>, table: Option<String>) -> Self {
        DdlStatement {
            kind,
            schema,
            table,
            old_schema: None,
            old_table: None,
        }
    }
}

/// Classifies the SQL of a QUERY event as Canal's druid-based parser does (§2.6).
///
/// Returns every result in statement order with these guarantees:
/// * an empty vector means "Canal emits no entry" (GRANT, CREATE VIEW/USER, ALTER TABLE whose only
///   clause is a foreign-key/check constraint, …);
/// * SQL that cannot be tokenised or is not recognised as any statement yields exactly one
///   [`DdlKind::Query`] result with no schema and no table;
/// * `ALTER TABLE` lists table-option results first, then one result per clause in order;
/// * `DROP TABLE a, b` and `RENAME TABLE a TO b, c TO d` yield one result per table / pair;
/// * `CREATE/DROP DATABASE d` yield [`DdlKind::Query`] with schema `d` and no table.
///
/// Never panics, whatever `sql` contains.
pub fn classify(sql: &str, current_db: &str) -> Vec<DdlStatement> {
    let unparsed = || vec![DdlStatement::new(DdlKind::Query, None, None)];
    let Ok(lexed) = lex_statement_text(sql) else {
        return unparsed();
    };
    let mut out = Vec::new();
    let mut any = false;
    for stmt_toks in statements(&lexed.tokens) {
        any = true;
        let stmt = parse_statement(stmt_toks);
        let stop = matches!(stmt, Stmt::Ignored | Stmt::Unrecognised) || !lexed.complete;
        classify_stmt(&stmt, current_db, &mut out);
        if stop {
            // Routine/trigger bodies contain `;`; nothing after such a statement is reliable.
            break;
        }
    }
    if !any {
        return unparsed();
    }
    out
}

fn classify_stmt(stmt: &Stmt, db: &str, out: &mut Vec<DdlStatement>) {
    let named = |kind, q: &QName| DdlStatement::new(kind, q.schema_or(db), Some(q.name.clone()));
    match stmt {
        Stmt::CreateTable(ct) => out.push(named(DdlKind::Create, &ct.name)),
        Stmt::AlterTable(at) => {
            let mut options = Vec::new();
            let mut rest = Vec::new();
            for clause in &at.clauses {
                let kind = match clause {
                    AlterClause::Options(_) => {
                        options.push(named(DdlKind::Alter, &at.name));
                        continue;
                    }
                    AlterClause::RenameTo(new) => {
                        let mut r = named(DdlKind::Rename, new);
                        r.old_schema = at.name.schema_or(db);
                        r.old_table = Some(at.name.name.clone());
                        rest.push(r);
                        continue;
                    }
                    AlterClause::AddIndex | AlterClause::AddPrimaryKey(_) => DdlKind::CIndex,
                    AlterClause::DropIndex | AlterClause::DropConstraint => DdlKind::DIndex,
                    AlterClause::AddOtherConstraint => continue,
                    AlterClause::AddColumns { .. }
                    | AlterClause::DropColumn { .. }
                    | AlterClause::DropPrimaryKey
                    | AlterClause::DropForeignKey
                    | AlterClause::Modify { .. }
                    | AlterClause::Change { .. }
                    | AlterClause::RenameColumn { .. }
                    | AlterClause::Convert(_)
                    | AlterClause::Other
                    | AlterClause::Unsupported(_) => DdlKind::Alter,
                };
                rest.push(named(kind, &at.name));
            }
            out.extend(options);
            out.extend(rest);
        }
        Stmt::DropTables { names, .. } => {
            out.extend(names.iter().map(|n| named(DdlKind::Erase, n)));
        }
        Stmt::RenameTables { pairs, .. } => {
            for (from, to) in pairs {
                let mut r = named(DdlKind::Rename, to);
                r.old_schema = from.schema_or(db);
                r.old_table = Some(from.name.clone());
                out.push(r);
            }
        }
        Stmt::Truncate(q) => out.push(named(DdlKind::Truncate, q)),
        Stmt::CreateIndex(q) => out.push(named(DdlKind::CIndex, q)),
        Stmt::DropIndex(q) => out.push(named(DdlKind::DIndex, q)),
        Stmt::CreateDatabase { name, .. } | Stmt::DropDatabase { name, .. } => {
            out.push(DdlStatement::new(DdlKind::Query, Some(name.clone()), None))
        }
        Stmt::Dml { kind, table } => {
            let (schema, table) = match table {
                Some(q) => (q.schema_or(db), Some(q.name.clone())),
                None => (non_empty(db), None),
            };
            out.push(DdlStatement::new(*kind, schema, table));
        }
        Stmt::AlterDatabase { .. } | Stmt::Ignored => {}
        Stmt::Unrecognised => out.push(DdlStatement::new(DdlKind::Query, None, None)),
    }
}

// ---------------------------------------------------------------------------------------------
// Public types: catalog
// ---------------------------------------------------------------------------------------------

/// Why a DDL statement could not be applied to the [`Catalog`].
///
/// Every variant means the same thing to the caller: the catalog was left unchanged and the
/// tables named by [`classify`] for this SQL should be re-read from `information_schema`.
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

    /// Applies the DDL in `sql` (executed with default database `current_db`) to the catalog.
    ///
    /// Handles CREATE TABLE (column list, inline and table-level PRIMARY KEY, `LIKE`,
    /// `IF NOT EXISTS`, `OR REPLACE`), ALTER TABLE (ADD/DROP/MODIFY/CHANGE/RENAME COLUMN with
    /// FIRST/AFTER, ADD/DROP PRIMARY KEY, RENAME TO, CONVERT TO CHARACTER SET, table default
    /// charset/collation), DROP TABLE, RENAME TABLE, CREATE/ALTER/DROP DATABASE. TRUNCATE, index
    /// DDL, DML and every other statement change nothing and return `Ok(vec![])`; so do
    /// temporary-table statements (their rows never reach a ROW binlog).
    ///
    /// Atomic: on `Err` the catalog is exactly as before the call.
    pub fn apply(&mut self, sql: &str, current_db: &str) -> Result<Vec<TableChange>, DdlError> {
        let unsupported = |reason: String| DdlError::Unsupported {
            sql: sql.to_string(),
            reason,
        };
        let lexed =
            lex_statement_text(sql).map_err(|e| unsupported(format!("cannot tokenise: {e}")))?;
        if !lexed.complete {
            // A long DML-like statement: it changes no table definition.
            return Ok(Vec::new());
        }
        let stmts: Vec<Stmt> = statements(&lexed.tokens).map(parse_statement).collect();
        let multi = stmts.len() > 1;
        let backup = if multi { Some(self.clone()) } else { None };
        let mut changes = Vec::new();
        for stmt in &stmts {
            let stop = matches!(stmt, Stmt::Ignored | Stmt::Unrecognised);
            let mut ctx = Ctx {
                sql,
                db: current_db,
                changes: &mut changes,
            };
            if let Err(e) = self.apply_stmt(stmt, &mut ctx) {
                if let Some(b) = backup {
                    *self = b;
                }
                return Err(e);
            }
            if stop {
                break;
            }
        }
        Ok(changes)
    }

    fn apply_stmt(&mut self, stmt: &Stmt, ctx: &mut Ctx<'_>) -> Result<(), DdlError> {
        match stmt {
            Stmt::CreateTable(ct) => self.create_table(ct, ctx),
            Stmt::AlterTable(at) => self.alter_table(at, ctx),
            Stmt::DropTables {
                temporary, names, ..
            } => {
                if *temporary {
                    return Ok(());
                }
                for n in names {
                    let (schema, table) = ctx.resolve(n)?;
                    if self.remove_table(&schema, &table).is_some() {
                        ctx.changes.push(TableChange::Dropped { schema, table });
                    }
                }
                Ok(())
            }
            Stmt::RenameTables { if_exists, pairs } => {
                // Validate on a scratch copy of the affected names first so a failure half-way
                // leaves nothing applied.
                let mut scratch = self.clone_subset(pairs, ctx)?;
                let mut local = Vec::new();
                for (from, to) in pairs {
                    let (fs, ft) = ctx.resolve(from)?;
                    let (ts, tt) = ctx.resolve(to)?;
                    let Some(mut meta) = scratch.remove_table(&fs, &ft) else {
                        if *if_exists {
                            continue;
                        }
                        return Err(ctx.unknown_table(&fs, &ft));
                    };
                    meta.schema = ts.clone();
                    meta.table = tt.clone();
                    scratch.insert_table(meta.clone());
                    local.push((fs, ft, meta));
                }
                for (fs, ft, meta) in local {
                    self.remove_table(&fs, &ft);
                    self.insert_table(meta.clone());
                    ctx.changes.push(TableChange::Dropped {
                        schema: fs,
                        table: ft,
                    });
                    ctx.changes.push(TableChange::Defined(meta));
                }
                Ok(())
            }
            Stmt::CreateDatabase {
                name,
                if_not_exists,
                or_replace,
                charset,
            } => {
                let exists = self.databases.contains_key(name);
                if exists && *if_not_exists && !*or_replace {
                    return Ok(());
                }
                if exists && *or_replace {
                    self.drop_database(name, ctx);
                }
                let cs = charset
                    .resolve(|| self.server_charset.clone())
                    .unwrap_or_else(|| self.server_charset.clone());
                self.set_database_charset(name, &cs);
                ctx.changes.push(TableChange::DatabaseDefined {
                    schema: name.clone(),
                    charset: cs,
                });
                Ok(())
            }
            Stmt::DropDatabase { name, .. } => {
                if self.databases.contains_key(name) {
                    self.drop_database(name, ctx);
                }
                Ok(())
            }
            Stmt::AlterDatabase { name, charset } => {
                let name = match name {
                    Some(n) => n.clone(),
                    None if !ctx.db.is_empty() => ctx.db.to_string(),
                    // MariaDB logs database statements without a default database, so a nameless
                    // ALTER DATABASE in a binlog does not say which database it changed.
                    None => {
                        return Err(ctx.unsupported("ALTER DATABASE without a database name"));
                    }
                };
                if let Some(cs) = charset.resolve(|| self.server_charset.clone()) {
                    self.set_database_charset(&name, &cs);
                    ctx.changes.push(TableChange::DatabaseDefined {
                        schema: name,
                        charset: cs,
                    });
                }
                Ok(())
            }
            Stmt::Truncate(_)
            | Stmt::CreateIndex(_)
            | Stmt::DropIndex(_)
            | Stmt::Dml { .. }
            | Stmt::Ignored
            | Stmt::Unrecognised => Ok(()),
        }
    }

    fn clone_subset(&self, pairs: &[(QName, QName)], ctx: &Ctx<'_>) -> Result<Catalog, DdlError> {
        let mut scratch = Catalog::with_server_charset(&self.server_charset);
        for (from, to) in pairs {
            for q in [from, to] {
                let (s, t) = ctx.resolve(q)?;
                if let Some(m) = self.table(&s, &t) {
                    scratch.insert_table(m.clone());
                }
            }
        }
        Ok(scratch)
    }

    fn drop_database(&mut self, name: &str, ctx: &mut Ctx<'_>) {
        if let Some(db) = self.databases.remove(name) {
            for table in db.tables.into_keys() {
                ctx.changes.push(TableChange::Dropped {
                    schema: name.to_string(),
                    table,
                });
            }
            ctx.changes.push(TableChange::DatabaseDropped {
                schema: name.to_string(),
            });
        }
    }

    fn create_table(&mut self, ct: &CreateTable, ctx: &mut Ctx<'_>) -> Result<(), DdlError> {
        if ct.temporary {
            return Ok(());
        }
        let (schema, table) = ctx.resolve(&ct.name)?;
        if ct.if_not_exists && !ct.or_replace && self.table(&schema, &table).is_some() {
            return Ok(());
        }
        let meta = match &ct.body {
            CreateBody::Like(src) => {
                let (ss, st) = ctx.resolve(src)?;
                let mut m = self
                    .table(&ss, &st)
                    .cloned()
                    .ok_or_else(|| ctx.unknown_table(&ss, &st))?;
                if m.charset.is_none() {
                    m.charset = Some(self.effective_database_charset(&ss).to_string());
                }
                m.schema = schema.clone();
                m.table = table.clone();
                m
            }
            CreateBody::Select => {
                return Err(ctx.unsupported("CREATE TABLE … SELECT derives columns from a query"))
            }
            CreateBody::Broken(reason) => return Err(ctx.unsupported(reason)),
            CreateBody::Defs {
                items,
                options,
                select,
            } => {
                if *select {
                    return Err(
                        ctx.unsupported("CREATE TABLE … SELECT derives columns from a query")
                    );
                }
                let db_cs = self.effective_database_charset(&schema).to_string();
                let table_cs = options
                    .resolve(|| db_cs.clone())
                    .unwrap_or_else(|| db_cs.clone());
                let mut meta = TableMeta {
                    schema: schema.clone(),
                    table: table.clone(),
                    columns: Vec::new(),
                    charset: Some(table_cs.clone()),
                };
                let mut pk = Vec::new();
                for item in items {
                    match item {
                        CreateItem::Column(spec) => {
                            let spec = spec.as_ref().map_err(|e| ctx.unsupported(e))?;
                            if spec.primary {
                                pk.push(spec.name.clone());
                            }
                            let col =
                                resolve_column(spec, &table_cs).map_err(|e| ctx.unsupported(&e))?;
                            meta.columns.push(col);
                        }
                        CreateItem::PrimaryKey(cols) => pk.extend(cols.iter().cloned()),
                        CreateItem::Other => {}
                    }
                }
                set_primary_key(&mut meta, &pk, ctx)?;
                meta
            }
        };
        self.insert_table(meta.clone());
        ctx.changes.push(TableChange::Defined(meta));
        Ok(())
    }

    fn alter_table(&mut self, at: &AlterTable, ctx: &mut Ctx<'_>) -> Result<(), DdlError> {
        let (schema, table) = ctx.resolve(&at.name)?;
        let Some(orig) = self.table(&schema, &table) else {
            if at.if_exists {
                return Ok(());
            }
            return Err(ctx.unknown_table(&schema, &table));
        };
        let mut meta = orig.clone();
        let db_cs = self.effective_database_charset(&schema).to_string();
        if meta.charset.is_none() {
            meta.charset = Some(db_cs.clone());
        }
        // Table default charset first: columns added by the same statement already use it.
        for clause in &at.clauses {
            if let AlterClause::Options(spec) = clause {
                if let Some(cs) = spec.resolve(|| db_cs.clone()) {
                    meta.charset = Some(cs);
                }
            }
        }
        let table_cs = meta.charset.clone().unwrap_or_else(|| db_cs.clone());
        let mut drop_pk = false;
        let mut add_pk: Vec<String> = Vec::new();
        let mut rename_to = None;
        for clause in &at.clauses {
            match clause {
                AlterClause::AddColumns {
                    if_not_exists,
                    cols,
                    pk,
                } => {
                    for spec in cols {
                        let spec = spec.as_ref().map_err(|e| ctx.unsupported(e))?;
                        if meta.column_index(&spec.name).is_some() {
                            if *if_not_exists {
                                continue;
                            }
                            return Err(
                                ctx.unsupported(&format!("column {} already exists", spec.name))
                            );
                        }
                        let col =
                            resolve_column(spec, &table_cs).map_err(|e| ctx.unsupported(&e))?;
                        if spec.primary {
                            add_pk.push(spec.name.clone());
                        }
                        insert_at(&mut meta, col, spec.position.as_ref(), ctx)?;
                    }
                    add_pk.extend(pk.iter().cloned());
                }
                AlterClause::AddPrimaryKey(cols) => add_pk.extend(cols.iter().cloned()),
                AlterClause::DropPrimaryKey => drop_pk = true,
                AlterClause::DropColumn { name, if_exists } => match meta.column_index(name) {
                    Some(i) => {
                        meta.columns.remove(i);
                    }
                    None if *if_exists => {}
                    None => return Err(ctx.unknown_column(&meta, name)),
                },
                AlterClause::Modify { if_exists, spec } => {
                    let spec = spec.as_ref().map_err(|e| ctx.unsupported(e))?;
                    let Some(i) = meta.column_index(&spec.name) else {
                        if *if_exists {
                            continue;
                        }
                        return Err(ctx.unknown_column(&meta, &spec.name));
                    };
                    replace_column(&mut meta, i, spec, &table_cs, &mut add_pk, ctx)?;
                }
                AlterClause::Change {
                    if_exists,
                    old,
                    spec,
                } => {
                    let spec = spec.as_ref().map_err(|e| ctx.unsupported(e))?;
                    let Some(i) = meta.column_index(old) else {
                        if *if_exists {
                            continue;
                        }
                        return Err(ctx.unknown_column(&meta, old));
                    };
                    replace_column(&mut meta, i, spec, &table_cs, &mut add_pk, ctx)?;
                }
                AlterClause::RenameColumn { from, to } => match meta.column_index(from) {
                    Some(i) => {
                        if let Some(c) = meta.columns.get_mut(i) {
                            c.name = to.clone();
                        }
                    }
                    None => return Err(ctx.unknown_column(&meta, from)),
                },
                AlterClause::Convert(spec) => {
                    let Some(cs) = spec.resolve(|| db_cs.clone()) else {
                        return Err(ctx.unsupported("CONVERT TO without a character set"));
                    };
                    if cs == "binary" {
                        return Err(ctx.unsupported("CONVERT TO CHARACTER SET binary"));
                    }
                    convert_table(&mut meta, &cs);
                }
                AlterClause::RenameTo(new) => rename_to = Some(ctx.resolve(new)?),
                AlterClause::Unsupported(reason) => return Err(ctx.unsupported(reason)),
                AlterClause::Options(_)
                | AlterClause::AddIndex
                | AlterClause::AddOtherConstraint
                | AlterClause::DropIndex
                | AlterClause::DropConstraint
                | AlterClause::DropForeignKey
                | AlterClause::Other => {}
            }
        }
        if drop_pk {
            for c in &mut meta.columns {
                c.is_primary_key = false;
            }
        }
        if !add_pk.is_empty() {
            set_primary_key(&mut meta, &add_pk, ctx)?;
        }
        if let Some((ns, nt)) = rename_to {
            if ns != schema || nt != table {
                self.remove_table(&schema, &table);
                ctx.changes.push(TableChange::Dropped {
                    schema: schema.clone(),
                    table: table.clone(),
                });
                meta.schema = ns;
                meta.table = nt;
            }
        }
        self.insert_table(meta.clone());
        ctx.changes.push(TableChange::Defined(meta));
        Ok(())
    }
}

struct Ctx<'a> {
    sql: &'a str,
    db: &'a str,
    changes: &'a mut Vec<TableChange>,
}

impl Ctx<'_> {
    fn resolve(&self, q: &QName) -> Result<(String, String), DdlError> {
        match q.schema_or(self.db) {
            Some(s) => Ok((s, q.name.clone())),
            None => Err(self.unsupported(&format!("no database selected for table {}", q.name))),
        }
    }

    fn unsupported(&self, reason: &str) -> DdlError {
        DdlError::Unsupported {
            sql: self.sql.to_string(),
            reason: reason.to_string(),
        }
    }

    fn unknown_table(&self, schema: &str, table: &str) -> DdlError {
        DdlError::UnknownTable {
            schema: schema.to_string(),
            table: table.to_string(),
            sql: self.sql.to_string(),
        }
    }

    fn unknown_column(&self, meta: &TableMeta, column: &str) -> DdlError {
        DdlError::UnknownColumn {
            schema: meta.schema.clone(),
            table: meta.table.clone(),
            column: column.to_string(),
            sql: self.sql.to_string(),
        }
    }
}

fn set_primary_key(meta: &mut TableMeta, cols: &[String], ctx: &Ctx<'_>) -> Result<(), DdlError> {
    for name in cols {
        let Some(i) = meta.column_index(name) else {
            return Err(ctx.unknown_column(meta, name));
        };
        if let Some(c) = meta.columns.get_mut(i) {
            c.is_primary_key = true;
            c.nullable = false;
        }
    }
    Ok(())
}

/// Inserts `col` at `pos` (default: last).
fn insert_at(
    meta: &mut TableMeta,
    col: ColumnMeta,
    pos: Option<&Position>,
    ctx: &Ctx<'_>,
) -> Result<(), DdlError> {
    let idx = match pos {
        None => meta.columns.len(),
        Some(Position::First) => 0,
        Some(Position::After(name)) => match meta.column_index(name) {
            Some(i) => i + 1,
            None => return Err(ctx.unknown_column(meta, name)),
        },
    };
    meta.columns.insert(idx.min(meta.columns.len()), col);
    Ok(())
}

/// MODIFY/CHANGE: replaces column `i` by `spec`, keeping its primary-key membership and moving it
/// when a position is given.
fn replace_column(
    meta: &mut TableMeta,
    i: usize,
    spec: &ColumnSpec,
    table_cs: &str,
    add_pk: &mut Vec<String>,
    ctx: &Ctx<'_>,
) -> Result<(), DdlError> {
    let mut col = resolve_column(spec, table_cs).map_err(|e| ctx.unsupported(&e))?;
    let was_pk = meta.columns.get(i).is_some_and(|c| c.is_primary_key);
    if was_pk {
        col.is_primary_key = true;
        col.nullable = false;
    }
    if spec.primary {
        add_pk.push(spec.name.clone());
    }
    match &spec.position {
        None => {
            if let Some(slot) = meta.columns.get_mut(i) {
                *slot = col;
            }
        }
        Some(pos) => {
            if i < meta.columns.len() {
                meta.columns.remove(i);
            }
            insert_at(meta, col, Some(pos), ctx)?;
        }
    }
    Ok(())
}

/// `ALTER TABLE … CONVERT TO CHARACTER SET cs`: every character column takes `cs`; TEXT columns
/// grow to the smallest TEXT type that still holds as many characters as before.
fn convert_table(meta: &mut TableMeta, cs: &str) {
    meta.charset = Some(cs.to_string());
    let new_mb = mbmaxlen(cs);
    for col in &mut meta.columns {
        let Some(old_cs) = col.charset.clone() else {
            continue;
        };
        if old_cs == "binary" {
            continue;
        }
        if let Some(size) = TextSize::from_name(col.base_type(), false) {
            let chars = size.max_bytes() / mbmaxlen(&old_cs);
            let grown = TextSize::for_bytes(chars.saturating_mul(new_mb));
            if grown > size {
                col.column_type = grown.name(false).to_string();
            }
        }
        col.charset = Some(cs.to_string());
        col.collation_id = None;
    }
}

// ---------------------------------------------------------------------------------------------
// Tokens
// ---------------------------------------------------------------------------------------------

/// Tokenises with sqlparser's MySQL dialect, dropping whitespace and comments and expanding
/// MariaDB `/*M!NNNNN … */` executable comments (MySQL `/*!…*/` ones sqlparser expands itself).
fn lex(sql: &str) -> Result<Vec<Token>, String> {
    let dialect = MySqlDialect {};
    let raw = Tokenizer::new(&dialect, sql)
        .tokenize()
        .map_err(|e| e.to_string())?;
    let mut out = Vec::with_capacity(raw.len());
    for tok in raw {
        match tok {
            Token::Whitespace(Whitespace::MultiLineComment(c)) => {
                if let Some(body) = c.strip_prefix("M!") {
                    let body = body.trim_start_matches(|ch: char| ch.is_ascii_digit());
                    let inner = Tokenizer::new(&dialect, body)
                        .tokenize()
                        .map_err(|e| e.to_string())?;
                    out.extend(
                        inner
                            .into_iter()
                            .filter(|t| !matches!(t, Token::Whitespace(_) | Token::EOF)),
                    );
                }
            }
            Token::Whitespace(_) | Token::EOF => {}
            other => out.push(other),
        }
    }
    Ok(out)
}

/// Statements longer than this whose first word starts a DML or other non-DDL statement are only
/// tokenised this far: the target table of a multi-megabyte statement-format INSERT (or the text
/// of an ANNOTATE_ROWS event) is near its start.
const DML_PREFIX_BYTES: usize = 8 * 1024;

/// Leading words for which a prefix of the text is enough.
const PREFIX_LEADERS: &[&str] = &[
    "INSERT", "UPDATE", "DELETE", "REPLACE", "SELECT", "LOAD", "CALL", "DO", "WITH", "VALUES",
    "HANDLER",
];

struct Lexed {
    tokens: Vec<Token>,
    /// False when only a prefix of a long DML-like statement was tokenised.
    complete: bool,
}

/// Tokenises `sql`, or only its first [`DML_PREFIX_BYTES`] when it is a long statement led by
/// one of [`PREFIX_LEADERS`].
fn lex_statement_text(sql: &str) -> Result<Lexed, String> {
    if sql.len() <= DML_PREFIX_BYTES {
        return lex(sql).map(|tokens| Lexed {
            tokens,
            complete: true,
        });
    }
    let mut end = DML_PREFIX_BYTES;
    while end > 0 && !sql.is_char_boundary(end) {
        end -= 1;
    }
    let prefix = sql.get(..end).unwrap_or("");
    let mut buf = Vec::new();
    // The cut may split a string literal: keep whatever tokenised before it.
    let _ = Tokenizer::new(&MySqlDialect {}, prefix).tokenize_with_location_into_buf(&mut buf);
    let tokens: Vec<Token> = buf
        .into_iter()
        .map(|t| t.token)
        .filter(|t| !matches!(t, Token::Whitespace(_) | Token::EOF))
        .collect();
    let dml_like = kw_upper(tokens.first()).is_some_and(|w| PREFIX_LEADERS.contains(&w.as_str()));
    if dml_like {
        Ok(Lexed {
            tokens,
            complete: false,
        })
    } else {
        lex(sql).map(|tokens| Lexed {
            tokens,
            complete: true,
        })
    }
}

/// Non-empty `;`-separated statements.
fn statements(tokens: &[Token]) -> impl Iterator<Item = &[Token]> {
    split_top(tokens, &Token::SemiColon)
        .into_iter()
        .filter(|s| !s.is_empty())
}

/// Splits at `sep` tokens outside parentheses.
fn split_top<'a>(tokens: &'a [Token], sep: &Token) -> Vec<&'a [Token]> {
    let mut out = Vec::new();
    let mut depth = 0usize;
    let mut start = 0usize;
    for (i, t) in tokens.iter().enumerate() {
        match t {
            Token::LParen => depth += 1,
            Token::RParen => depth = depth.saturating_sub(1),
            t if depth == 0 && t == sep => {
                out.push(tokens.get(start..i).unwrap_or(&[]));
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(tokens.get(start..).unwrap_or(&[]));
    out
}

/// Is `tok` the unquoted keyword `kw` (case-insensitive)?
fn is_kw(tok: Option<&Token>, kw: &str) -> bool {
    matches!(tok, Some(Token::Word(w)) if w.quote_style.is_none() && w.value.eq_ignore_ascii_case(kw))
}

/// The unquoted word `tok` upper-cased, if it is one.
fn kw_upper(tok: Option<&Token>) -> Option<String> {
    match tok {
        Some(Token::Word(w)) if w.quote_style.is_none() => Some(w.value.to_ascii_uppercase()),
        _ => None,
    }
}

/// An identifier: a word (backticks already removed) or, for ANSI_QUOTES, a double-quoted string.
fn ident_of(tok: Option<&Token>) -> Option<String> {
    match tok {
        Some(Token::Word(w)) => Some(w.value.clone()),
        Some(Token::DoubleQuotedString(s)) => Some(s.clone()),
        _ => None,
    }
}

/// A cursor over one statement's (or clause's) tokens. Reading past the end yields `None`.
struct Cur<'a> {
    toks: &'a [Token],
    i: usize,
}

impl<'a> Cur<'a> {
    fn new(toks: &'a [Token]) -> Self {
        Cur { toks, i: 0 }
    }

    fn peek(&self) -> Option<&'a Token> {
        self.toks.get(self.i)
    }

    fn peek_at(&self, n: usize) -> Option<&'a Token> {
        self.toks.get(self.i.saturating_add(n))
    }

    fn bump(&mut self) -> Option<&'a Token> {
        let t = self.toks.get(self.i);
        if t.is_some() {
            self.i += 1;
        }
        t
    }

    fn done(&self) -> bool {
        self.i >= self.toks.len()
    }

    fn rest(&self) -> &'a [Token] {
        self.toks.get(self.i..).unwrap_or(&[])
    }

    fn is(&self, kw: &str) -> bool {
        is_kw(self.peek(), kw)
    }

    fn is_at(&self, n: usize, kw: &str) -> bool {
        is_kw(self.peek_at(n), kw)
    }

    fn eat(&mut self, kw: &str) -> bool {
        if self.is(kw) {
            self.i += 1;
            true
        } else {
            false
        }
    }

    /// Eats the whole keyword sequence or nothing.
    fn eat_seq(&mut self, kws: &[&str]) -> bool {
        if kws.iter().enumerate().all(|(n, kw)| self.is_at(n, kw)) {
            self.i += kws.len();
            true
        } else {
            false
        }
    }

    fn eat_tok(&mut self, tok: &Token) -> bool {
        if self.peek() == Some(tok) {
            self.i += 1;
            true
        } else {
            false
        }
    }

    fn ident(&mut self) -> Option<String> {
        let id = ident_of(self.peek())?;
        self.i += 1;
        Some(id)
    }

    /// `name` or `schema.name`.
    fn qname(&mut self) -> Option<QName> {
        let first = self.ident()?;
        if self.peek() == Some(&Token::Period) {
            if let Some(second) = ident_of(self.peek_at(1)) {
                self.i += 2;
                return Some(QName {
                    schema: Some(first),
                    name: second,
                });
            }
        }
        Some(QName {
            schema: None,
            name: first,
        })
    }

    /// Skips one token, or a whole balanced `( … )` group.
    fn skip_item(&mut self) {
        if self.peek() == Some(&Token::LParen) {
            self.group();
        } else {
            self.bump();
        }
    }

    /// At `(`: returns the tokens inside the balanced group and moves past its `)` (or to the
    /// end when unbalanced). Elsewhere returns `None` and does not move.
    fn group(&mut self) -> Option<&'a [Token]> {
        if self.peek() != Some(&Token::LParen) {
            return None;
        }
        let start = self.i + 1;
        let mut depth = 0usize;
        while let Some(t) = self.bump() {
            match t {
                Token::LParen => depth += 1,
                Token::RParen => {
                    depth = depth.saturating_sub(1);
                    if depth == 0 {
                        return Some(self.toks.get(start..self.i - 1).unwrap_or(&[]));
                    }
                }
                _ => {}
            }
        }
        Some(self.toks.get(start..).unwrap_or(&[]))
    }

    /// Skips `WAIT n` / `NOWAIT`.
    fn skip_wait(&mut self) {
        if self.eat("NOWAIT") {
            return;
        }
        if self.is("WAIT") && matches!(self.peek_at(1), Some(Token::Number(..))) {
            self.i += 2;
        }
    }

    /// `IF NOT EXISTS`.
    fn if_not_exists(&mut self) -> bool {
        self.eat_seq(&["IF", "NOT", "EXISTS"])
    }

    /// `IF EXISTS`.
    fn if_exists(&mut self) -> bool {
        self.eat_seq(&["IF", "EXISTS"])
    }
}

// ---------------------------------------------------------------------------------------------
// Statement model
// ---------------------------------------------------------------------------------------------

/// A possibly qualified table name.
#[derive(Debug, Clone, PartialEq, Eq)]
struct QName {
    schema: Option<String>,
    name: String,
}

impl QName {
    fn schema_or(&self, current_db: &str) -> Option<String> {
        self.schema.clone().or_else(|| non_empty(current_db))
    }
}

fn non_empty(s: &str) -> Option<String> {
    (!s.is_empty()).then(|| s.to_string())
}

#[derive(Debug)]
enum Stmt {
    CreateTable(CreateTable),
    AlterTable(AlterTable),
    DropTables {
        temporary: bool,
        names: Vec<QName>,
    },
    RenameTables {
        if_exists: bool,
        pairs: Vec<(QName, QName)>,
    },
    Truncate(QName),
    CreateIndex(QName),
    DropIndex(QName),
    CreateDatabase {
        name: String,
        if_not_exists: bool,
        or_replace: bool,
        charset: CharsetSpec,
    },
    DropDatabase {
        name: String,
    },
    AlterDatabase {
        name: Option<String>,
        charset: CharsetSpec,
    },
    Dml {
        kind: DdlKind,
        table: Option<QName>,
    },
    /// A statement Canal parses but reports nothing for (GRANT, CREATE VIEW, SET, …).
    Ignored,
    /// Not recognised as any statement: Canal's "cannot parse" case.
    Unrecognised,
}

#[derive(Debug)]
struct CreateTable {
    name: QName,
    temporary: bool,
    or_replace: bool,
    if_not_exists: bool,
    body: CreateBody,
}

#[derive(Debug)]
enum CreateBody {
    Like(QName),
    Defs {
        items: Vec<CreateItem>,
        options: CharsetSpec,
        select: bool,
    },
    Select,
    Broken(String),
}

#[derive(Debug)]
enum CreateItem {
    Column(Result<ColumnSpec, String>),
    PrimaryKey(Vec<String>),
    Other,
}

#[derive(Debug)]
struct AlterTable {
    name: QName,
    if_exists: bool,
    clauses: Vec<AlterClause>,
}

#[derive(Debug)]
enum AlterClause {
    AddColumns {
        if_not_exists: bool,
        cols: Vec<Result<ColumnSpec, String>>,
        /// PRIMARY KEY items inside `ADD ( … )`.
        pk: Vec<String>,
    },
    AddIndex,
    AddPrimaryKey(Vec<String>),
    /// FOREIGN KEY / CHECK constraints: no Canal result.
    AddOtherConstraint,
    DropColumn {
        name: String,
        if_exists: bool,
    },
    DropIndex,
    DropPrimaryKey,
    DropForeignKey,
    DropConstraint,
    Modify {
        if_exists: bool,
        spec: Result<ColumnSpec, String>,
    },
    Change {
        if_exists: bool,
        old: String,
        spec: Result<ColumnSpec, String>,
    },
    RenameColumn {
        from: String,
        to: String,
    },
    RenameTo(QName),
    Convert(CharsetSpec),
    /// Table options (ENGINE=, [DEFAULT] CHARSET=, COMMENT=, …); the charset part if any.
    Options(CharsetSpec),
    Other,
    Unsupported(String),
}

/// `[DEFAULT] CHARACTER SET x` / `COLLATE y` as written.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct CharsetSpec {
    charset: Option<CharsetName>,
    collate: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum CharsetName {
    Named(String),
    /// `CHARACTER SET DEFAULT`: the enclosing default.
    Default,
}

impl CharsetSpec {
    /// The character set this spec selects, `default` for `CHARACTER SET DEFAULT`, `None` when the
    /// spec names neither a charset nor a collation.
    fn resolve(&self, default: impl FnOnce() -> String) -> Option<String> {
        match &self.charset {
            Some(CharsetName::Named(n)) => Some(normalize_charset(n)),
            Some(CharsetName::Default) => Some(default()),
            None => self.collate.as_deref().map(charset_of_collation),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Position {
    First,
    After(String),
}

// ---------------------------------------------------------------------------------------------
// Statement reader
// ---------------------------------------------------------------------------------------------

/// Leading words of statements Canal parses but reports nothing for.
const IGNORED_LEADERS: &[&str] = &[
    "GRANT",
    "REVOKE",
    "SET",
    "FLUSH",
    "SAVEPOINT",
    "RELEASE",
    "ROLLBACK",
    "COMMIT",
    "BEGIN",
    "START",
    "XA",
    "ANALYZE",
    "OPTIMIZE",
    "REPAIR",
    "CHECK",
    "CHECKSUM",
    "INSTALL",
    "UNINSTALL",
    "CALL",
    "DO",
    "LOCK",
    "UNLOCK",
    "LOAD",
    "SELECT",
    "REPLACE",
    "HANDLER",
    "PURGE",
    "RESET",
    "KILL",
    "SHOW",
    "USE",
    "EXECUTE",
    "PREPARE",
    "DEALLOCATE",
    "BACKUP",
    "SHUTDOWN",
    "BINLOG",
    "CACHE",
];

/// Object words after CREATE/ALTER/DROP/RENAME that name something other than a table, index or
/// database.
const OTHER_OBJECTS: &[&str] = &[
    "VIEW",
    "USER",
    "ROLE",
    "FUNCTION",
    "PROCEDURE",
    "TRIGGER",
    "EVENT",
    "SERVER",
    "SEQUENCE",
    "PACKAGE",
    "TABLESPACE",
    "LOGFILE",
    "AGGREGATE",
    "DEFINER",
    "ALGORITHM",
    "SQL",
    "SYNONYM",
    "INSTANCE",
];

fn parse_statement(toks: &[Token]) -> Stmt {
    let mut c = Cur::new(toks);
    // MariaDB `SET STATEMENT var = value [, …] FOR <statement>`: classify the inner statement.
    if c.is("SET") && c.is_at(1, "STATEMENT") {
        let mut depth = 0usize;
        for (i, t) in toks.iter().enumerate() {
            match t {
                Token::LParen => depth += 1,
                Token::RParen => depth = depth.saturating_sub(1),
                t if depth == 0 && is_kw(Some(t), "FOR") => {
                    let inner = toks.get(i + 1..).unwrap_or(&[]);
                    if is_kw(inner.first(), "SET") && is_kw(inner.get(1), "STATEMENT") {
                        return Stmt::Unrecognised;
                    }
                    return parse_statement(inner);
                }
                _ => {}
            }
        }
        return Stmt::Unrecognised;
    }
    let stmt = if c.eat("CREATE") {
        parse_create(&mut c)
    } else if c.eat("ALTER") {
        parse_alter(&mut c)
    } else if c.eat("DROP") {
        parse_drop(&mut c)
    } else if c.eat("RENAME") {
        parse_rename(&mut c)
    } else if c.eat("TRUNCATE") {
        c.eat("TABLE");
        c.qname().map(Stmt::Truncate)
    } else if c.is("INSERT") {
        // The table follows INSERT [options] [INTO] directly; no need to build an AST of values.
        Some(dml_by_tokens(toks, DdlKind::Insert))
    } else if c.is("UPDATE") {
        Some(parse_dml(toks, DdlKind::Update))
    } else if c.is("DELETE") {
        Some(parse_dml(toks, DdlKind::Delete))
    } else if kw_upper(c.peek()).is_some_and(|w| IGNORED_LEADERS.contains(&w.as_str())) {
        Some(Stmt::Ignored)
    } else {
        None
    };
    stmt.unwrap_or_else(|| oracle(toks))
}

/// For statements this module does not recognise: if sqlparser's full parser accepts them they
/// are ordinary non-DDL statements (no entry), otherwise they count as unparseable (QUERY).
fn oracle(toks: &[Token]) -> Stmt {
    let mut parser = sqlparser::parser::Parser::new(&MySqlDialect {}).with_tokens(toks.to_vec());
    match parser.parse_statements() {
        Ok(stmts) if !stmts.is_empty() => Stmt::Ignored,
        _ => Stmt::Unrecognised,
    }
}

fn parse_create(c: &mut Cur<'_>) -> Option<Stmt> {
    let or_replace = c.eat_seq(&["OR", "REPLACE"]);
    let _ = c.eat("ONLINE") || c.eat("OFFLINE");
    let temporary = c.eat("TEMPORARY");
    let word = kw_upper(c.peek())?;
    match word.as_str() {
        "TABLE" => {
            c.bump();
            Some(Stmt::CreateTable(parse_create_table(
                c, or_replace, temporary,
            )?))
        }
        "UNIQUE" | "FULLTEXT" | "SPATIAL" | "INDEX" => {
            c.bump();
            if word != "INDEX" && !c.eat("INDEX") {
                return None;
            }
            c.if_not_exists();
            c.ident()?;
            // [USING BTREE] ON tbl
            while !c.done() && !c.is("ON") {
                c.skip_item();
            }
            c.eat("ON").then_some(())?;
            Some(Stmt::CreateIndex(c.qname()?))
        }
        "DATABASE" | "SCHEMA" => {
            c.bump();
            let if_not_exists = c.if_not_exists();
            let name = c.ident()?;
            let charset = parse_charset_options(c.rest());
            Some(Stmt::CreateDatabase {
                name,
                if_not_exists,
                or_replace,
                charset,
            })
        }
        w if OTHER_OBJECTS.contains(&w) => Some(Stmt::Ignored),
        _ => None,
    }
}

fn parse_create_table(c: &mut Cur<'_>, or_replace: bool, temporary: bool) -> Option<CreateTable> {
    let if_not_exists = c.if_not_exists();
    let name = c.qname()?;
    let body = if contains_system_versioning(c.rest()) {
        CreateBody::Broken("system versioning adds hidden columns".to_string())
    } else if c.eat("LIKE") {
        CreateBody::Like(c.qname()?)
    } else if c.peek() == Some(&Token::LParen) {
        let inner = c.group().unwrap_or(&[]);
        let mut ic = Cur::new(inner);
        if ic.eat("LIKE") {
            CreateBody::Like(ic.qname()?)
        } else if ic.is("SELECT") || ic.is("WITH") || ic.peek() == Some(&Token::LParen) {
            CreateBody::Select
        } else {
            let items = split_top(inner, &Token::Comma)
                .into_iter()
                .map(parse_create_item)
                .collect();
            let (options, select) = parse_table_tail(c.rest());
            CreateBody::Defs {
                items,
                options,
                select,
            }
        }
    } else {
        let (_, select) = parse_table_tail(c.rest());
        if select {
            CreateBody::Select
        } else {
            CreateBody::Broken("CREATE TABLE without a column list".to_string())
        }
    };
    Some(CreateTable {
        name,
        temporary,
        or_replace,
        if_not_exists,
        body,
    })
}

/// Table options after the column list: the charset part, and whether a SELECT follows.
fn parse_table_tail(toks: &[Token]) -> (CharsetSpec, bool) {
    let mut spec = CharsetSpec::default();
    let mut c = Cur::new(toks);
    while !c.done() {
        if c.is("SELECT") || c.is("WITH") || c.is("AS") || c.is("VALUES") || c.is("TABLE") {
            return (spec, true);
        }
        if c.peek() == Some(&Token::LParen) && (c.is_at(1, "SELECT") || c.is_at(1, "WITH")) {
            return (spec, true);
        }
        if !eat_charset_option(&mut c, &mut spec) {
            c.skip_item();
        }
    }
    (spec, false)
}

/// Reads every `[DEFAULT] CHARACTER SET [=] x` / `[DEFAULT] COLLATE [=] y` in `toks`.
fn parse_charset_options(toks: &[Token]) -> CharsetSpec {
    let mut spec = CharsetSpec::default();
    let mut c = Cur::new(toks);
    while !c.done() {
        if !eat_charset_option(&mut c, &mut spec) {
            c.skip_item();
        }
    }
    spec
}

/// At a charset/collation option: consumes it into `spec` and returns true.
fn eat_charset_option(c: &mut Cur<'_>, spec: &mut CharsetSpec) -> bool {
    let start = c.i;
    c.eat("DEFAULT");
    if eat_charset_words(c) {
        c.eat_tok(&Token::Eq);
        if c.eat("DEFAULT") {
            spec.charset = Some(CharsetName::Default);
            return true;
        }
        if let Some(name) = name_or_string(c) {
            spec.charset = Some(CharsetName::Named(name));
            return true;
        }
    } else if c.eat("COLLATE") {
        c.eat_tok(&Token::Eq);
        if let Some(name) = name_or_string(c) {
            spec.collate = Some(name);
            return true;
        }
    }
    c.i = start;
    false
}

/// `CHARACTER SET` / `CHARSET` / `CHAR SET`.
fn eat_charset_words(c: &mut Cur<'_>) -> bool {
    c.eat_seq(&["CHARACTER", "SET"]) || c.eat("CHARSET") || c.eat_seq(&["CHAR", "SET"])
}

fn name_or_string(c: &mut Cur<'_>) -> Option<String> {
    match c.peek() {
        Some(Token::Word(w)) => {
            c.bump();
            Some(w.value.clone())
        }
        Some(Token::SingleQuotedString(s)) | Some(Token::DoubleQuotedString(s)) => {
            c.bump();
            Some(s.clone())
        }
        _ => None,
    }
}

const KEY_ITEM_WORDS: &[&str] = &[
    "INDEX", "KEY", "UNIQUE", "FULLTEXT", "SPATIAL", "FOREIGN", "CHECK",
];

fn parse_create_item(toks: &[Token]) -> CreateItem {
    let mut c = Cur::new(toks);
    let Some(word) = kw_upper(c.peek()) else {
        return CreateItem::Column(parse_column(toks));
    };
    match word.as_str() {
        "PRIMARY" if c.is_at(1, "KEY") => CreateItem::PrimaryKey(key_columns(c.rest())),
        "CONSTRAINT" => {
            c.bump();
            if !is_constraint_kind(c.peek()) {
                c.bump(); // constraint name
            }
            if c.is("PRIMARY") {
                CreateItem::PrimaryKey(key_columns(c.rest()))
            } else {
                CreateItem::Other
            }
        }
        "PERIOD" if c.is_at(1, "FOR") => CreateItem::Other,
        w if KEY_ITEM_WORDS.contains(&w) => CreateItem::Other,
        _ => CreateItem::Column(parse_column(toks)),
    }
}

fn is_constraint_kind(tok: Option<&Token>) -> bool {
    ["PRIMARY", "UNIQUE", "FOREIGN", "CHECK"]
        .iter()
        .any(|k| is_kw(tok, k))
}

/// Column names of the first `( … )` group in `toks` (an index's key parts).
fn key_columns(toks: &[Token]) -> Vec<String> {
    let mut c = Cur::new(toks);
    while !c.done() && c.peek() != Some(&Token::LParen) {
        c.bump();
    }
    let Some(inner) = c.group() else {
        return Vec::new();
    };
    split_top(inner, &Token::Comma)
        .into_iter()
        .filter_map(|part| ident_of(part.first()))
        .collect()
}

fn parse_alter(c: &mut Cur<'_>) -> Option<Stmt> {
    c.eat("ONLINE");
    c.eat("IGNORE");
    if c.eat("TABLE") {
        let if_exists = c.if_exists();
        let name = c.qname()?;
        c.skip_wait();
        let clauses = if c.done() {
            Vec::new()
        } else {
            split_top(c.rest(), &Token::Comma)
                .into_iter()
                .filter(|s| !s.is_empty())
                .map(parse_alter_clause)
                .collect()
        };
        return Some(Stmt::AlterTable(AlterTable {
            name,
            if_exists,
            clauses,
        }));
    }
    if c.eat("DATABASE") || c.eat("SCHEMA") {
        let starts_options = [
            "DEFAULT",
            "CHARACTER",
            "CHARSET",
            "CHAR",
            "COLLATE",
            "COMMENT",
        ]
        .iter()
        .any(|k| c.is(k));
        let name = if starts_options || c.done() {
            None
        } else {
            Some(c.ident()?)
        };
        let charset = parse_charset_options(c.rest());
        return Some(Stmt::AlterDatabase { name, charset });
    }
    let word = kw_upper(c.peek())?;
    OTHER_OBJECTS
        .contains(&word.as_str())
        .then_some(Stmt::Ignored)
}

/// Words that start a table-options clause in ALTER TABLE.
const TABLE_OPTION_WORDS: &[&str] = &[
    "ENGINE",
    "TYPE",
    "AUTO_INCREMENT",
    "AVG_ROW_LENGTH",
    "CHECKSUM",
    "TABLE_CHECKSUM",
    "COMMENT",
    "COMPRESSION",
    "CONNECTION",
    "DATA",
    "INDEX",
    "DELAY_KEY_WRITE",
    "ENCRYPTED",
    "ENCRYPTION",
    "ENCRYPTION_KEY_ID",
    "IETF_QUOTES",
    "INSERT_METHOD",
    "KEY_BLOCK_SIZE",
    "MAX_ROWS",
    "MIN_ROWS",
    "PACK_KEYS",
    "PAGE_CHECKSUM",
    "PAGE_COMPRESSED",
    "PAGE_COMPRESSION_LEVEL",
    "PASSWORD",
    "ROW_FORMAT",
    "SEQUENCE",
    "STATS_AUTO_RECALC",
    "STATS_PERSISTENT",
    "STATS_SAMPLE_PAGES",
    "STORAGE",
    "TABLESPACE",
    "TRANSACTIONAL",
    "UNION",
    "CHARACTER",
    "CHARSET",
    "COLLATE",
];

fn parse_alter_clause(toks: &[Token]) -> AlterClause {
    let mut c = Cur::new(toks);
    let Some(word) = kw_upper(c.peek()) else {
        return AlterClause::Other;
    };
    if contains_system_versioning(toks) {
        return AlterClause::Unsupported("system versioning adds hidden columns".to_string());
    }
    match word.as_str() {
        "ADD" => {
            c.bump();
            parse_alter_add(&mut c)
        }
        "DROP" => {
            c.bump();
            parse_alter_drop(&mut c)
        }
        "MODIFY" => {
            c.bump();
            c.eat("COLUMN");
            let if_exists = c.if_exists();
            AlterClause::Modify {
                if_exists,
                spec: parse_column(c.rest()),
            }
        }
        "CHANGE" => {
            c.bump();
            c.eat("COLUMN");
            let if_exists = c.if_exists();
            match c.ident() {
                Some(old) => AlterClause::Change {
                    if_exists,
                    old,
                    spec: parse_column(c.rest()),
                },
                None => AlterClause::Unsupported("CHANGE without a column name".to_string()),
            }
        }
        "RENAME" => {
            c.bump();
            if c.eat("COLUMN") {
                c.if_exists();
                let from = c.ident();
                let to = if c.eat("TO") { c.ident() } else { None };
                return match (from, to) {
                    (Some(from), Some(to)) => AlterClause::RenameColumn { from, to },
                    _ => AlterClause::Unsupported("malformed RENAME COLUMN".to_string()),
                };
            }
            if c.is("INDEX") || c.is("KEY") {
                return AlterClause::Other;
            }
            let _ = c.eat("TO") || c.eat("AS") || c.eat_tok(&Token::Eq);
            match c.qname() {
                Some(q) => AlterClause::RenameTo(q),
                None => AlterClause::Unsupported("malformed RENAME".to_string()),
            }
        }
        "CONVERT" => {
            c.bump();
            if !c.eat("TO") {
                return AlterClause::Other;
            }
            let spec = parse_charset_options(c.rest());
            if spec.charset.is_none() {
                return AlterClause::Unsupported("malformed CONVERT TO".to_string());
            }
            AlterClause::Convert(spec)
        }
        "DEFAULT"
            if ["CHARACTER", "CHARSET", "CHAR", "COLLATE"]
                .iter()
                .any(|k| c.is_at(1, k)) =>
        {
            AlterClause::Options(parse_charset_options(toks))
        }
        w if TABLE_OPTION_WORDS.contains(&w) => AlterClause::Options(parse_charset_options(toks)),
        _ => AlterClause::Other,
    }
}

fn contains_system_versioning(toks: &[Token]) -> bool {
    toks.windows(2)
        .any(|w| is_kw(w.first(), "SYSTEM") && is_kw(w.get(1), "VERSIONING"))
}

fn parse_alter_add(c: &mut Cur<'_>) -> AlterClause {
    let column_kw = c.eat("COLUMN");
    if !column_kw {
        if c.is("PRIMARY") && c.is_at(1, "KEY") {
            return AlterClause::AddPrimaryKey(key_columns(c.rest()));
        }
        if c.eat("CONSTRAINT") {
            c.if_not_exists();
            if !is_constraint_kind(c.peek()) {
                c.bump();
            }
            return if c.is("PRIMARY") {
                AlterClause::AddPrimaryKey(key_columns(c.rest()))
            } else if c.is("UNIQUE") {
                AlterClause::AddIndex
            } else {
                AlterClause::AddOtherConstraint
            };
        }
        if ["INDEX", "KEY", "FULLTEXT", "SPATIAL", "UNIQUE"]
            .iter()
            .any(|k| c.is(k))
        {
            return AlterClause::AddIndex;
        }
        if c.is("FOREIGN") || c.is("CHECK") {
            return AlterClause::AddOtherConstraint;
        }
        if c.is("PARTITION") || (c.is("PERIOD") && c.is_at(1, "FOR")) {
            return AlterClause::Other;
        }
    }
    let if_not_exists = c.if_not_exists();
    if let Some(inner) = c.group() {
        let mut cols = Vec::new();
        let mut pk = Vec::new();
        for item in split_top(inner, &Token::Comma) {
            match parse_create_item(item) {
                CreateItem::Column(spec) => cols.push(spec),
                CreateItem::PrimaryKey(k) => pk.extend(k),
                CreateItem::Other => {}
            }
        }
        return AlterClause::AddColumns {
            if_not_exists,
            cols,
            pk,
        };
    }
    AlterClause::AddColumns {
        if_not_exists,
        cols: vec![parse_column(c.rest())],
        pk: Vec::new(),
    }
}

fn parse_alter_drop(c: &mut Cur<'_>) -> AlterClause {
    if c.eat("COLUMN") {
        let if_exists = c.if_exists();
        return match c.ident() {
            Some(name) => AlterClause::DropColumn { name, if_exists },
            None => AlterClause::Unsupported("DROP COLUMN without a name".to_string()),
        };
    }
    if c.eat_seq(&["PRIMARY", "KEY"]) {
        return AlterClause::DropPrimaryKey;
    }
    if c.is("INDEX") || c.is("KEY") {
        return AlterClause::DropIndex;
    }
    if c.eat_seq(&["FOREIGN", "KEY"]) {
        return AlterClause::DropForeignKey;
    }
    if c.is("CONSTRAINT") {
        return AlterClause::DropConstraint;
    }
    if c.is("CHECK") || c.is("PARTITION") || c.is("PERIOD") {
        return AlterClause::Other;
    }
    let if_exists = c.if_exists();
    match c.ident() {
        Some(name) => AlterClause::DropColumn { name, if_exists },
        None => AlterClause::Other,
    }
}

fn parse_drop(c: &mut Cur<'_>) -> Option<Stmt> {
    let temporary = c.eat("TEMPORARY");
    if c.eat("TABLE") || c.eat("TABLES") {
        c.if_exists();
        let mut names = Vec::new();
        for part in split_top(c.rest(), &Token::Comma) {
            names.push(Cur::new(part).qname()?);
        }
        return Some(Stmt::DropTables { temporary, names });
    }
    if temporary {
        return None;
    }
    if c.eat("INDEX") {
        c.eat("ONLINE");
        c.eat("OFFLINE");
        c.if_exists();
        c.ident()?;
        c.eat("ON").then_some(())?;
        return Some(Stmt::DropIndex(c.qname()?));
    }
    if c.eat("DATABASE") || c.eat("SCHEMA") {
        c.if_exists();
        return Some(Stmt::DropDatabase { name: c.ident()? });
    }
    let word = kw_upper(c.peek())?;
    OTHER_OBJECTS
        .contains(&word.as_str())
        .then_some(Stmt::Ignored)
}

fn parse_rename(c: &mut Cur<'_>) -> Option<Stmt> {
    if c.eat("TABLE") || c.eat("TABLES") {
        let if_exists = c.if_exists();
        let mut pairs = Vec::new();
        for part in split_top(c.rest(), &Token::Comma) {
            let mut pc = Cur::new(part);
            let from = pc.qname()?;
            pc.skip_wait();
            pc.eat("TO").then_some(())?;
            let to = pc.qname()?;
            pairs.push((from, to));
        }
        return Some(Stmt::RenameTables { if_exists, pairs });
    }
    if c.is("USER") {
        return Some(Stmt::Ignored);
    }
    None
}

/// UPDATE/DELETE: the target table via sqlparser's AST, falling back to a token scan when
/// sqlparser rejects the statement. Multi-table statements have no table.
fn parse_dml(toks: &[Token], kind: DdlKind) -> Stmt {
    use sqlparser::ast::{FromTable, Statement, TableFactor, TableObject};

    let mut parser = sqlparser::parser::Parser::new(&MySqlDialect {}).with_tokens(toks.to_vec());
    if let Ok(mut stmts) = parser.parse_statements() {
        if stmts.len() == 1 {
            let single = |twj: &[sqlparser::ast::TableWithJoins]| match twj {
                [one] if one.joins.is_empty() => match &one.relation {
                    TableFactor::Table { name, .. } => qname_of(name),
                    _ => None,
                },
                _ => None,
            };
            let table = match stmts.pop() {
                Some(Statement::Insert(ins)) => match &ins.table {
                    TableObject::TableName(name) => qname_of(name),
                    _ => None,
                },
                Some(Statement::Update(up)) if up.from.is_none() => {
                    single(std::slice::from_ref(&up.table))
                }
                Some(Statement::Update(_)) => None,
                Some(Statement::Delete(del)) if del.tables.is_empty() && del.using.is_none() => {
                    match &del.from {
                        FromTable::WithFromKeyword(f) | FromTable::WithoutKeyword(f) => single(f),
                    }
                }
                Some(Statement::Delete(_)) => None,
                _ => return dml_by_tokens(toks, kind),
            };
            return Stmt::Dml { kind, table };
        }
    }
    dml_by_tokens(toks, kind)
}

fn qname_of(name: &sqlparser::ast::ObjectName) -> Option<QName> {
    let parts: Vec<String> = name
        .0
        .iter()
        .filter_map(|p| p.as_ident().map(|i| i.value.clone()))
        .collect();
    match parts.as_slice() {
        [t] => Some(QName {
            schema: None,
            name: t.clone(),
        }),
        [.., s, t] => Some(QName {
            schema: Some(s.clone()),
            name: t.clone(),
        }),
        [] => None,
    }
}

fn dml_by_tokens(toks: &[Token], kind: DdlKind) -> Stmt {
    let mut c = Cur::new(toks);
    c.bump();
    for m in [
        "LOW_PRIORITY",
        "DELAYED",
        "HIGH_PRIORITY",
        "QUICK",
        "IGNORE",
    ] {
        c.eat(m);
    }
    let table = match kind {
        DdlKind::Insert => {
            c.eat("INTO");
            c.qname()
        }
        DdlKind::Update => c.qname().filter(|_| single_table_follows(&mut c)),
        _ => {
            if c.eat("FROM") {
                c.qname().filter(|_| single_table_follows(&mut c))
            } else {
                None
            }
        }
    };
    Stmt::Dml { kind, table }
}

/// After a DML target table: true unless another table (`,`, JOIN, USING) follows.
fn single_table_follows(c: &mut Cur<'_>) -> bool {
    if c.eat("AS") {
        c.ident();
    } else if matches!(c.peek(), Some(Token::Word(w)) if w.quote_style.is_some())
        || kw_upper(c.peek()).is_some_and(|w| {
            !["SET", "WHERE", "ORDER", "LIMIT", "PARTITION", "RETURNING"].contains(&w.as_str())
                && !is_join_word(&w)
        })
    {
        c.bump();
    }
    let next = kw_upper(c.peek());
    !(c.peek() == Some(&Token::Comma) || next.is_some_and(|w| is_join_word(&w) || w == "USING"))
}

fn is_join_word(w: &str) -> bool {
    [
        "JOIN",
        "INNER",
        "LEFT",
        "RIGHT",
        "CROSS",
        "NATURAL",
        "STRAIGHT_JOIN",
    ]
    .contains(&w)
}

// ---------------------------------------------------------------------------------------------
// Column definitions and types
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq, Eq)]
struct ColumnSpec {
    name: String,
    ty: BaseType,
    unsigned: bool,
    zerofill: bool,
    /// `NATIONAL`/`NCHAR`/`NVARCHAR`: utf8mb3.
    national: bool,
    charset: Option<CharsetName>,
    collate: Option<String>,
    /// `ASCII` / `UNICODE` attribute shorthand.
    charset_shorthand: Option<&'static str>,
    /// `BYTE` attribute: CHAR/VARCHAR become BINARY/VARBINARY.
    byte: bool,
    nullable: Option<bool>,
    primary: bool,
    /// SERIAL, SERIAL DEFAULT VALUE and AUTO_INCREMENT force NOT NULL.
    forced_not_null: bool,
    position: Option<Position>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum TextSize {
    Tiny,
    Normal,
    Medium,
    Long,
}

impl TextSize {
    fn max_bytes(self) -> u64 {
        match self {
            TextSize::Tiny => 255,
            TextSize::Normal => 65_535,
            TextSize::Medium => 16_777_215,
            TextSize::Long => 4_294_967_295,
        }
    }

    fn for_bytes(n: u64) -> TextSize {
        [TextSize::Tiny, TextSize::Normal, TextSize::Medium]
            .into_iter()
            .find(|s| n <= s.max_bytes())
            .unwrap_or(TextSize::Long)
    }

    fn name(self, blob: bool) -> &'static str {
        match (self, blob) {
            (TextSize::Tiny, false) => "tinytext",
            (TextSize::Normal, false) => "text",
            (TextSize::Medium, false) => "mediumtext",
            (TextSize::Long, false) => "longtext",
            (TextSize::Tiny, true) => "tinyblob",
            (TextSize::Normal, true) => "blob",
            (TextSize::Medium, true) => "mediumblob",
            (TextSize::Long, true) => "longblob",
        }
    }

    fn from_name(name: &str, blob: bool) -> Option<TextSize> {
        [
            TextSize::Tiny,
            TextSize::Normal,
            TextSize::Medium,
            TextSize::Long,
        ]
        .into_iter()
        .find(|s| s.name(blob) == name)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum BaseType {
    /// Integer types: name and (unsigned, signed) default display widths.
    Int {
        name: &'static str,
        defaults: (u64, u64),
        width: Option<u64>,
    },
    Decimal(Option<u64>, Option<u64>),
    Float(Option<(u64, u64)>),
    Double(Option<(u64, u64)>),
    Bit(Option<u64>),
    Year(Option<u64>),
    /// `time`, `datetime`, `timestamp` with fractional digits.
    Temporal(&'static str, Option<u64>),
    /// CHAR(n) (`binary` = BINARY(n)).
    Char {
        len: Option<u64>,
        binary: bool,
    },
    /// VARCHAR(n) (`binary` = VARBINARY(n)).
    VarChar {
        len: u64,
        binary: bool,
    },
    /// TEXT/BLOB family: fixed size, or `TEXT(n)`/`BLOB(n)` sized by length.
    Text {
        size: Option<TextSize>,
        len: Option<u64>,
        blob: bool,
    },
    Enum(Vec<String>),
    Set(Vec<String>),
    Json,
    /// Types printed as their lower-case name (date, geometry types, inet4/6, uuid).
    Plain(&'static str),
}

impl BaseType {
    fn is_character(&self) -> bool {
        match self {
            BaseType::Char { binary, .. } | BaseType::VarChar { binary, .. } => !binary,
            BaseType::Text { blob, .. } => !blob,
            BaseType::Enum(_) | BaseType::Set(_) => true,
            _ => false,
        }
    }

    fn is_numeric(&self) -> bool {
        matches!(
            self,
            BaseType::Int { .. } | BaseType::Decimal(..) | BaseType::Float(_) | BaseType::Double(_)
        )
    }
}

const PLAIN_TYPES: &[&str] = &[
    "date",
    "geometry",
    "point",
    "linestring",
    "polygon",
    "multipoint",
    "multilinestring",
    "multipolygon",
    "geometrycollection",
    "inet4",
    "inet6",
    "uuid",
];

/// Parses `name type attributes… [FIRST | AFTER col]`.
fn parse_column(toks: &[Token]) -> Result<ColumnSpec, String> {
    let mut c = Cur::new(toks);
    let name = c.ident().ok_or("column definition without a name")?;
    let mut spec = ColumnSpec {
        name,
        ty: BaseType::Json,
        unsigned: false,
        zerofill: false,
        national: false,
        charset: None,
        collate: None,
        charset_shorthand: None,
        byte: false,
        nullable: None,
        primary: false,
        forced_not_null: false,
        position: None,
    };
    spec.ty = parse_type(&mut c, &mut spec)?;
    parse_attributes(&mut c, &mut spec)?;
    Ok(spec)
}

fn paren_numbers(c: &mut Cur<'_>) -> Result<Option<Vec<u64>>, String> {
    let Some(inner) = c.group() else {
        return Ok(None);
    };
    let mut out = Vec::new();
    for part in split_top(inner, &Token::Comma) {
        match part {
            [Token::Number(n, _)] => out.push(
                n.parse::<u64>()
                    .map_err(|_| format!("bad type length {n:?}"))?,
            ),
            _ => return Err(format!("bad type arguments {part:?}")),
        }
    }
    Ok(Some(out))
}

fn one_number(c: &mut Cur<'_>) -> Result<Option<u64>, String> {
    match paren_numbers(c)?.as_deref() {
        None => Ok(None),
        Some([n]) => Ok(Some(*n)),
        Some(other) => Err(format!("expected one type length, got {other:?}")),
    }
}

fn two_numbers(c: &mut Cur<'_>) -> Result<(Option<u64>, Option<u64>), String> {
    match paren_numbers(c)?.as_deref() {
        None => Ok((None, None)),
        Some([m]) => Ok((Some(*m), None)),
        Some([m, d]) => Ok((Some(*m), Some(*d))),
        Some(other) => Err(format!("expected (M[,D]), got {other:?}")),
    }
}

fn labels(c: &mut Cur<'_>) -> Result<Vec<String>, String> {
    let inner = c.group().ok_or("ENUM/SET without a value list")?;
    let mut out = Vec::new();
    for part in split_top(inner, &Token::Comma) {
        let mut pc = Cur::new(part);
        // Optional character set introducer: _utf8mb4'x'.
        if matches!(pc.peek(), Some(Token::Word(w)) if w.quote_style.is_none() && w.value.starts_with('_'))
        {
            pc.bump();
        }
        let label = match pc.bump() {
            Some(Token::SingleQuotedString(s))
            | Some(Token::DoubleQuotedString(s))
            | Some(Token::NationalStringLiteral(s)) => s.clone(),
            other => return Err(format!("unsupported ENUM/SET value {other:?}")),
        };
        if !pc.done() {
            return Err("unsupported ENUM/SET value expression".to_string());
        }
        // MariaDB strips trailing spaces from ENUM/SET members.
        out.push(label.trim_end_matches(' ').to_string());
    }
    Ok(out)
}

fn int(name: &'static str, defaults: (u64, u64), width: Option<u64>) -> BaseType {
    BaseType::Int {
        name,
        defaults,
        width,
    }
}

fn parse_type(c: &mut Cur<'_>, spec: &mut ColumnSpec) -> Result<BaseType, String> {
    let word = kw_upper(c.peek()).ok_or_else(|| format!("column {} has no type", spec.name))?;
    c.bump();
    const TINY: (u64, u64) = (3, 4);
    const SMALL: (u64, u64) = (5, 6);
    const MEDIUM: (u64, u64) = (8, 9);
    const INT: (u64, u64) = (10, 11);
    const BIG: (u64, u64) = (20, 20);
    let ty = match word.as_str() {
        "TINYINT" | "INT1" => int("tinyint", TINY, one_number(c)?),
        "SMALLINT" | "INT2" => int("smallint", SMALL, one_number(c)?),
        "MEDIUMINT" | "INT3" | "MIDDLEINT" => int("mediumint", MEDIUM, one_number(c)?),
        "INT" | "INTEGER" | "INT4" => int("int", INT, one_number(c)?),
        "BIGINT" | "INT8" => int("bigint", BIG, one_number(c)?),
        "BOOL" | "BOOLEAN" => int("tinyint", TINY, Some(1)),
        "SERIAL" => {
            spec.unsigned = true;
            spec.forced_not_null = true;
            int("bigint", BIG, None)
        }
        "DECIMAL" | "DEC" | "NUMERIC" | "FIXED" => {
            let (m, d) = two_numbers(c)?;
            BaseType::Decimal(m, d)
        }
        "FLOAT" => match two_numbers(c)? {
            (None, _) => BaseType::Float(None),
            (Some(p), None) if p > 24 => BaseType::Double(None),
            (Some(_), None) => BaseType::Float(None),
            (Some(m), Some(d)) => BaseType::Float(Some((m, d))),
        },
        "FLOAT4" => BaseType::Float(None),
        "FLOAT8" => BaseType::Double(None),
        "DOUBLE" | "REAL" => {
            if word == "DOUBLE" {
                c.eat("PRECISION");
            }
            match two_numbers(c)? {
                (Some(m), Some(d)) => BaseType::Double(Some((m, d))),
                (None, _) => BaseType::Double(None),
                (Some(_), None) => return Err("DOUBLE(M) needs a scale".to_string()),
            }
        }
        "BIT" => BaseType::Bit(one_number(c)?),
        "YEAR" => BaseType::Year(one_number(c)?),
        "DATE" => BaseType::Plain("date"),
        "TIME" => BaseType::Temporal("time", one_number(c)?),
        "DATETIME" => BaseType::Temporal("datetime", one_number(c)?),
        "TIMESTAMP" => BaseType::Temporal("timestamp", one_number(c)?),
        "NATIONAL" => {
            spec.national = true;
            if c.eat("VARCHAR") || c.eat("VARCHARACTER") {
                return varchar(c);
            }
            if !(c.eat("CHAR") || c.eat("CHARACTER")) {
                return Err("NATIONAL without CHAR/VARCHAR".to_string());
            }
            if c.eat("VARYING") {
                return varchar(c);
            }
            BaseType::Char {
                len: one_number(c)?,
                binary: false,
            }
        }
        "NCHAR" => {
            spec.national = true;
            if c.eat("VARCHAR") || c.eat("VARCHARACTER") || c.eat("VARYING") {
                return varchar(c);
            }
            BaseType::Char {
                len: one_number(c)?,
                binary: false,
            }
        }
        "NVARCHAR" => {
            spec.national = true;
            return varchar(c);
        }
        "CHAR" | "CHARACTER" => {
            if c.eat("VARYING") {
                return varchar(c);
            }
            BaseType::Char {
                len: one_number(c)?,
                binary: false,
            }
        }
        "VARCHAR" | "VARCHARACTER" => return varchar(c),
        "BINARY" => BaseType::Char {
            len: one_number(c)?,
            binary: true,
        },
        "VARBINARY" => BaseType::VarChar {
            len: one_number(c)?.ok_or("VARBINARY needs a length")?,
            binary: true,
        },
        "TINYTEXT" => text(Some(TextSize::Tiny), None, false),
        "TEXT" => text(None, one_number(c)?, false),
        "MEDIUMTEXT" => text(Some(TextSize::Medium), None, false),
        "LONGTEXT" => text(Some(TextSize::Long), None, false),
        "TINYBLOB" => text(Some(TextSize::Tiny), None, true),
        "BLOB" => text(None, one_number(c)?, true),
        "MEDIUMBLOB" => text(Some(TextSize::Medium), None, true),
        "LONGBLOB" => text(Some(TextSize::Long), None, true),
        "LONG" => {
            if c.eat("VARBINARY") {
                text(Some(TextSize::Medium), None, true)
            } else {
                let _ = c.eat("VARCHAR") || c.eat("VARCHARACTER");
                text(Some(TextSize::Medium), None, false)
            }
        }
        "ENUM" => BaseType::Enum(labels(c)?),
        "SET" => BaseType::Set(labels(c)?),
        "JSON" => BaseType::Json,
        other => {
            let lower = other.to_ascii_lowercase();
            match PLAIN_TYPES.iter().find(|t| **t == lower) {
                Some(t) => BaseType::Plain(t),
                None => return Err(format!("unsupported column type {other}")),
            }
        }
    };
    // Numeric modifiers right after the type (also accepted later among attributes).
    loop {
        if c.eat("UNSIGNED") {
            spec.unsigned = true;
        } else if c.eat("ZEROFILL") {
            spec.zerofill = true;
        } else if !c.eat("SIGNED") {
            break;
        }
    }
    Ok(ty)
}

fn varchar(c: &mut Cur<'_>) -> Result<BaseType, String> {
    Ok(BaseType::VarChar {
        len: one_number(c)?.ok_or("VARCHAR needs a length")?,
        binary: false,
    })
}

fn text(size: Option<TextSize>, len: Option<u64>, blob: bool) -> BaseType {
    BaseType::Text { size, len, blob }
}

/// Column attributes after the type, up to the end of the definition.
fn parse_attributes(c: &mut Cur<'_>, spec: &mut ColumnSpec) -> Result<(), String> {
    while let Some(tok) = c.peek() {
        let Some(word) = kw_upper(Some(tok)) else {
            c.skip_item();
            continue;
        };
        c.bump();
        match word.as_str() {
            "NOT" if c.is("NULL") => {
                c.bump();
                spec.nullable = Some(false);
            }
            "NULL" => spec.nullable = Some(true),
            "DEFAULT" => skip_default_value(c),
            "PRIMARY" => {
                c.eat("KEY");
                spec.primary = true;
            }
            "KEY" => spec.primary = true,
            "UNIQUE" => {
                let _ = c.eat("KEY") || c.eat("INDEX");
            }
            "UNSIGNED" => spec.unsigned = true,
            "ZEROFILL" => spec.zerofill = true,
            "COLLATE" => {
                c.eat_tok(&Token::Eq);
                spec.collate = Some(name_or_string(c).ok_or("COLLATE without a name")?);
            }
            "CHARACTER" | "CHAR" | "CHARSET" => {
                if word != "CHARSET" && !c.eat("SET") {
                    continue;
                }
                c.eat_tok(&Token::Eq);
                spec.charset = Some(if c.eat("DEFAULT") {
                    CharsetName::Default
                } else {
                    CharsetName::Named(name_or_string(c).ok_or("CHARACTER SET without a name")?)
                });
            }
            "ASCII" => spec.charset_shorthand = Some("latin1"),
            "UNICODE" => spec.charset_shorthand = Some("ucs2"),
            "BYTE" => spec.byte = true,
            "AUTO_INCREMENT" => spec.forced_not_null = true,
            "SERIAL" if c.is("DEFAULT") && c.is_at(1, "VALUE") => {
                c.bump();
                c.bump();
                spec.forced_not_null = true;
            }
            "ON" => {
                // ON UPDATE <expr>
                c.eat("UPDATE");
                skip_default_value(c);
            }
            "COMMENT" => {
                c.bump();
            }
            "REFERENCES" => {
                // REFERENCES t (cols) [MATCH …] [ON DELETE … ] [ON UPDATE …]: nothing here sets
                // nullability, so skip to a position clause or the end.
                while !c.done() && !c.is("FIRST") && !c.is("AFTER") {
                    c.skip_item();
                }
            }
            "FIRST" => spec.position = Some(Position::First),
            "AFTER" => {
                spec.position = Some(Position::After(
                    c.ident().ok_or("AFTER without a column name")?,
                ))
            }
            // CHECK (…), AS (…) / GENERATED ALWAYS AS (…) VIRTUAL|STORED|PERSISTENT,
            // INVISIBLE, COLUMN_FORMAT x, STORAGE x, COMPRESSED, SRID n, BINARY, …
            _ => {}
        }
    }
    Ok(())
}

/// Skips a DEFAULT / ON UPDATE value: `[+|-] literal`, `word [( … )]`, `_charset 'str'`, `( … )`.
fn skip_default_value(c: &mut Cur<'_>) {
    while matches!(c.peek(), Some(Token::Minus) | Some(Token::Plus)) {
        c.bump();
    }
    match c.peek() {
        Some(Token::Word(w)) if w.quote_style.is_none() => {
            c.bump();
            if c.peek() == Some(&Token::LParen) {
                c.skip_item();
            } else if w.value.starts_with('_') {
                // introducer: _utf8mb4'text'
                if matches!(c.peek(), Some(Token::SingleQuotedString(_))) {
                    c.bump();
                }
            } else if w.value.eq_ignore_ascii_case("NEXT") && c.eat_seq(&["VALUE", "FOR"]) {
                c.qname();
            }
        }
        Some(_) => c.skip_item(),
        None => {}
    }
}

/// Builds the column as `information_schema` shows it; `table_cs` is the table's default
/// character set (also what `CHARACTER SET DEFAULT` means for a column).
fn resolve_column(spec: &ColumnSpec, table_cs: &str) -> Result<ColumnMeta, String> {
    let mut ty = spec.ty.clone();
    let mut charset = None;
    if ty.is_character() {
        let cs = match (&spec.charset, &spec.collate) {
            (Some(CharsetName::Named(n)), _) => normalize_charset(n),
            (Some(CharsetName::Default), _) => table_cs.to_string(),
            (None, Some(coll)) => charset_of_collation(coll),
            (None, None) if spec.national => "utf8mb3".to_string(),
            (None, None) => spec
                .charset_shorthand
                .map(str::to_string)
                .unwrap_or_else(|| table_cs.to_string()),
        };
        if cs == "binary" || spec.byte {
            ty = match ty {
                BaseType::Char { len, .. } => BaseType::Char { len, binary: true },
                BaseType::VarChar { len, .. } => BaseType::VarChar { len, binary: true },
                BaseType::Text { size, len, .. } => BaseType::Text {
                    size,
                    len,
                    blob: true,
                },
                other => {
                    charset = Some(cs);
                    other
                }
            };
        } else {
            charset = Some(cs);
        }
    } else if ty == BaseType::Json {
        charset = Some("utf8mb4".to_string());
    }
    let numeric = ty.is_numeric();
    let unsigned = numeric && (spec.unsigned || spec.zerofill);
    let mut enum_values = Vec::new();
    let mut column_type = match &ty {
        BaseType::Int {
            name,
            defaults,
            width,
        } => {
            let w = match width {
                Some(w) if *w > 0 => *w,
                _ if unsigned => defaults.0,
                _ => defaults.1,
            };
            format!("{name}({w})")
        }
        BaseType::Decimal(m, d) => format!("decimal({},{})", m.unwrap_or(10), d.unwrap_or(0)),
        BaseType::Float(None) => "float".to_string(),
        BaseType::Float(Some((m, d))) => format!("float({m},{d})"),
        BaseType::Double(None) => "double".to_string(),
        BaseType::Double(Some((m, d))) => format!("double({m},{d})"),
        BaseType::Bit(n) => format!("bit({})", n.unwrap_or(1)),
        BaseType::Year(Some(2)) => "year(2)".to_string(),
        BaseType::Year(_) => "year(4)".to_string(),
        BaseType::Temporal(name, Some(fsp)) if *fsp > 0 => format!("{name}({fsp})"),
        BaseType::Temporal(name, _) => name.to_string(),
        BaseType::Char { len, binary } => format!(
            "{}({})",
            if *binary { "binary" } else { "char" },
            len.unwrap_or(1)
        ),
        BaseType::VarChar { len, binary } => {
            format!("{}({len})", if *binary { "varbinary" } else { "varchar" })
        }
        BaseType::Text { size, len, blob } => {
            let size = match (size, len) {
                (Some(s), _) => *s,
                (None, None) => TextSize::Normal,
                (None, Some(n)) => {
                    let mb = if *blob {
                        1
                    } else {
                        mbmaxlen(charset.as_deref().unwrap_or("utf8mb4"))
                    };
                    TextSize::for_bytes(n.saturating_mul(mb))
                }
            };
            size.name(*blob).to_string()
        }
        BaseType::Enum(l) => {
            enum_values = l.clone();
            format!("enum({})", quote_labels(l))
        }
        BaseType::Set(l) => {
            enum_values = l.clone();
            format!("set({})", quote_labels(l))
        }
        BaseType::Json => "longtext".to_string(),
        BaseType::Plain(name) => name.to_string(),
    };
    if unsigned {
        column_type.push_str(" unsigned");
    }
    if numeric && spec.zerofill {
        column_type.push_str(" zerofill");
    }
    let not_null = spec.primary || spec.forced_not_null || spec.nullable == Some(false);
    Ok(ColumnMeta {
        name: spec.name.clone(),
        column_type,
        is_primary_key: spec.primary,
        unsigned,
        charset,
        collation_id: None,
        enum_values,
        nullable: !not_null,
    })
}

/// `'a','b'` with `'` doubled and `\` doubled, as `COLUMN_TYPE` prints labels.
fn quote_labels(labels: &[String]) -> String {
    labels
        .iter()
        .map(|l| format!("'{}'", l.replace('\\', "\\\\").replace('\'', "''")))
        .collect::<Vec<_>>()
        .join(",")
}

/// Lower case; `utf8` is `utf8mb3` (MariaDB 10.6+ with the default `old_mode`).
fn normalize_charset(name: &str) -> String {
    let lower = name.to_ascii_lowercase();
    if lower == "utf8" {
        "utf8mb3".to_string()
    } else {
        lower
    }
}

/// The character set a collation belongs to: the part before the first `_`.
fn charset_of_collation(collation: &str) -> String {
    let lower = collation.to_ascii_lowercase();
    normalize_charset(lower.split('_').next().unwrap_or(&lower))
}

/// Maximum bytes per character; unknown character sets count as 4 (the largest).
fn mbmaxlen(charset: &str) -> u64 {
    match charset {
        "latin1" | "latin2" | "latin5" | "latin7" | "ascii" | "binary" | "cp1250" | "cp1251"
        | "cp1256" | "cp1257" | "cp850" | "cp852" | "cp866" | "dec8" | "hp8" | "koi8r"
        | "koi8u" | "swe7" | "greek" | "hebrew" | "armscii8" | "geostd8" | "keybcs2" | "macce"
        | "macroman" | "tis620" => 1,
        "gbk" | "big5" | "sjis" | "cp932" | "euckr" | "gb2312" | "ucs2" => 2,
        "utf8mb3" | "ujis" | "eucjpms" => 3,
        _ => 4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(sql: &str, db: &str) -> DdlStatement {
        let r = classify(sql, db);
        assert!(!r.is_empty(), "no result for {sql}");
        r.into_iter().next().unwrap()
    }

    fn kinds(sql: &str) -> Vec<DdlKind> {
        classify(sql, "d").into_iter().map(|s| s.kind).collect()
    }

    fn st(kind: DdlKind, schema: &str, table: Option<&str>) -> DdlStatement {
        DdlStatement::new(kind, Some(schema.into()), table.map(Into::into))
    }

    #[test]
    fn event_type_codes() {
        use DdlKind::*;
        let all = [
            (Insert, 1),
            (Update, 2),
            (Delete, 3),
            (Create, 4),
            (Alter, 5),
            (Erase, 6),
            (Query, 7),
            (Truncate, 8),
            (Rename, 9),
            (CIndex, 10),
            (DIndex, 11),
        ];
        for (k, code) in all {
            assert_eq!(k.event_type_code(), code);
            assert_eq!(k.is_ddl(), code > 3);
        }
    }

    #[test]
    fn classify_table_statements() {
        use DdlKind::*;
        assert_eq!(
            one("CREATE TABLE t (id int)", "d"),
            st(Create, "d", Some("t"))
        );
        assert_eq!(
            one("create table if not exists `x`.`t` like y", "d"),
            st(Create, "x", Some("t"))
        );
        assert_eq!(
            one("CREATE TABLE \"q\".\"t\" (a int)", "d"),
            st(Create, "q", Some("t"))
        );
        assert_eq!(one("TRUNCATE TABLE t", "d"), st(Truncate, "d", Some("t")));
        assert_eq!(one("truncate x.t", "d"), st(Truncate, "x", Some("t")));
        assert_eq!(
            one("CREATE UNIQUE INDEX i ON x.t (a)", "d"),
            st(CIndex, "x", Some("t"))
        );
        assert_eq!(one("DROP INDEX i ON t", "d"), st(DIndex, "d", Some("t")));
        assert_eq!(
            classify(
                "DROP TABLE IF EXISTS a, `x`.`b` /* generated by server */",
                "d"
            ),
            vec![st(Erase, "d", Some("a")), st(Erase, "x", Some("b"))]
        );
        let renames = classify("RENAME TABLE a TO b, x.c TO y.d", "d");
        assert_eq!(renames.len(), 2);
        assert_eq!(renames[0].kind, Rename);
        assert_eq!(renames[0].table.as_deref(), Some("b"));
        assert_eq!(renames[0].old_table.as_deref(), Some("a"));
        assert_eq!(renames[1].schema.as_deref(), Some("y"));
        assert_eq!(renames[1].old_schema.as_deref(), Some("x"));
        assert_eq!(renames[1].old_table.as_deref(), Some("c"));
    }

    #[test]
    fn classify_alter_clauses() {
        use DdlKind::*;
        assert_eq!(kinds("ALTER TABLE t ENGINE=InnoDB"), vec![Alter]);
        assert_eq!(kinds("ALTER TABLE t ADD COLUMN c int"), vec![Alter]);
        assert_eq!(kinds("ALTER TABLE t ADD INDEX i (a)"), vec![CIndex]);
        assert_eq!(kinds("ALTER TABLE t ADD KEY (a)"), vec![CIndex]);
        assert_eq!(kinds("ALTER TABLE t ADD UNIQUE u (a)"), vec![CIndex]);
        assert_eq!(kinds("ALTER TABLE t ADD PRIMARY KEY (a)"), vec![CIndex]);
        assert_eq!(
            kinds("ALTER TABLE t ADD CONSTRAINT pk PRIMARY KEY (a)"),
            vec![CIndex]
        );
        assert_eq!(
            kinds("ALTER TABLE t ADD CONSTRAINT u UNIQUE KEY (a)"),
            vec![CIndex]
        );
        assert_eq!(
            kinds("ALTER TABLE t ADD CONSTRAINT fk FOREIGN KEY (a) REFERENCES p(id)"),
            Vec::<DdlKind>::new()
        );
        assert_eq!(kinds("ALTER TABLE t DROP INDEX i"), vec![DIndex]);
        assert_eq!(kinds("ALTER TABLE t DROP KEY i"), vec![DIndex]);
        assert_eq!(kinds("ALTER TABLE t DROP CONSTRAINT c"), vec![DIndex]);
        assert_eq!(kinds("ALTER TABLE t DROP PRIMARY KEY"), vec![Alter]);
        assert_eq!(kinds("ALTER TABLE t DROP FOREIGN KEY fk"), vec![Alter]);
        assert_eq!(
            kinds("ALTER TABLE t MODIFY a bigint, CHANGE b c int, DROP d"),
            vec![Alter, Alter, Alter]
        );
        // Options result comes first.
        assert_eq!(
            kinds("ALTER TABLE t ADD INDEX i (a), ENGINE=InnoDB"),
            vec![Alter, CIndex]
        );
        assert_eq!(
            kinds("ALTER TABLE t ADD INDEX i (a), ADD CONSTRAINT f FOREIGN KEY (b) REFERENCES p (id), DROP INDEX j"),
            vec![CIndex, DIndex]
        );
        let r = one("ALTER TABLE t RENAME TO x.u", "d");
        assert_eq!(r.kind, Rename);
        assert_eq!(
            (r.schema.as_deref(), r.table.as_deref()),
            (Some("x"), Some("u"))
        );
        assert_eq!(
            (r.old_schema.as_deref(), r.old_table.as_deref()),
            (Some("d"), Some("t"))
        );
        assert_eq!(kinds("ALTER TABLE t RENAME u"), vec![Rename]);
        assert_eq!(kinds("ALTER TABLE t RENAME INDEX a TO b"), vec![Alter]);
        assert_eq!(kinds("ALTER ONLINE IGNORE TABLE t ADD c int"), vec![Alter]);
        assert_eq!(
            kinds("ALTER TABLE t CONVERT TO CHARACTER SET latin1"),
            vec![Alter]
        );
    }

    #[test]
    fn classify_databases_dml_and_others() {
        use DdlKind::*;
        assert_eq!(
            one("CREATE DATABASE x DEFAULT CHARSET latin1", "d"),
            DdlStatement::new(Query, Some("x".into()), None)
        );
        assert_eq!(
            one("DROP SCHEMA IF EXISTS `x`", ""),
            DdlStatement::new(Query, Some("x".into()), None)
        );
        assert_eq!(
            one("INSERT INTO t VALUES (1)", "d"),
            st(Insert, "d", Some("t"))
        );
        assert_eq!(
            one("insert ignore into x.t set a=1", "d"),
            st(Insert, "x", Some("t"))
        );
        assert_eq!(
            one("UPDATE t SET a = 1 WHERE b = 2", "d"),
            st(Update, "d", Some("t"))
        );
        assert_eq!(
            one("UPDATE t1, t2 SET t1.a = t2.a", "d"),
            DdlStatement::new(Update, Some("d".into()), None)
        );
        assert_eq!(
            one("UPDATE t1 JOIN t2 ON t1.id = t2.id SET t1.a = 1", "d"),
            DdlStatement::new(Update, Some("d".into()), None)
        );
        assert_eq!(
            one("DELETE FROM x.t WHERE a = 1", "d"),
            st(Delete, "x", Some("t"))
        );
        assert_eq!(
            one("DELETE t1 FROM t1 JOIN t2 ON t1.a = t2.a", "d"),
            DdlStatement::new(Delete, Some("d".into()), None)
        );
        for none in [
            "GRANT SELECT ON *.* TO 'u'@'%'",
            "CREATE USER 'u'@'%' IDENTIFIED BY 'p'",
            "CREATE VIEW v AS SELECT 1",
            "CREATE OR REPLACE VIEW v AS SELECT 1",
            "CREATE DEFINER=`root`@`localhost` PROCEDURE p() BEGIN SELECT 1; SELECT 2; END",
            "DROP VIEW v",
            "ALTER USER u IDENTIFIED BY 'x'",
            "ALTER DATABASE d CHARACTER SET latin1",
            "FLUSH PRIVILEGES",
            "SET PASSWORD FOR 'u'@'%' = PASSWORD('x')",
        ] {
            assert_eq!(classify(none, "d"), vec![], "{none}");
        }
        for garbage in [
            "",
            "hello world",
            "CREATE TABLE",
            "'unterminated",
            "ALTER TABLE",
        ] {
            assert_eq!(
                classify(garbage, "d"),
                vec![DdlStatement::new(Query, None, None)],
                "{garbage:?}"
            );
        }
    }

    #[test]
    fn long_statements() {
        let values = "('a;b''c', 'é'),".repeat(5000);
        let insert = format!("INSERT INTO x.big VALUES {values}('z', 'z')");
        assert!(insert.len() > DML_PREFIX_BYTES * 4);
        assert_eq!(one(&insert, "d"), st(DdlKind::Insert, "x", Some("big")));
        assert_eq!(Catalog::new().apply(&insert, "d"), Ok(vec![]));
        let update = format!("UPDATE big SET a = '{}' WHERE id = 1", "q".repeat(20_000));
        assert_eq!(one(&update, "d"), st(DdlKind::Update, "d", Some("big")));
        // Long DDL is read in full.
        let cols: Vec<String> = (0..2000).map(|i| format!("c{i} INT")).collect();
        let create = format!("CREATE TABLE wide ({})", cols.join(", "));
        let mut c = Catalog::new();
        c.apply(&create, "d").unwrap();
        assert_eq!(c.table("d", "wide").unwrap().columns.len(), 2000);
        assert_eq!(
            kinds(&format!(
                "ALTER TABLE wide ADD INDEX i (c1) COMMENT '{}'",
                "x".repeat(10_000)
            )),
            vec![DdlKind::CIndex]
        );
    }

    #[test]
    fn set_statement_prefix() {
        assert_eq!(
            one("SET STATEMENT max_statement_time = 60, lock_wait_timeout = (1) FOR ALTER TABLE t ADD c INT", "d"),
            st(DdlKind::Alter, "d", Some("t"))
        );
        let mut c = cat(&["CREATE TABLE t (a INT)"]);
        c.apply(
            "SET STATEMENT foreign_key_checks=0 FOR ALTER TABLE t ADD c INT",
            "d",
        )
        .unwrap();
        assert_eq!(c.table("d", "t").unwrap().columns.len(), 2);
        assert_eq!(
            kinds("SET STATEMENT x=1 FOR SET STATEMENT y=2 FOR DROP TABLE t"),
            vec![DdlKind::Query]
        );
        assert_eq!(kinds("SET @a = 1"), vec![]);
    }

    #[test]
    fn alter_database_needs_a_name_or_current_database() {
        let mut c = cat(&["CREATE DATABASE x"]);
        c.apply("ALTER SCHEMA CHARACTER SET latin1", "x").unwrap();
        assert_eq!(c.database_charset("x"), Some("latin1"));
        assert!(c.apply("ALTER SCHEMA CHARACTER SET cp1251", "").is_err());
        c.apply("ALTER DATABASE x DEFAULT COLLATE utf8mb3_bin", "")
            .unwrap();
        assert_eq!(c.database_charset("x"), Some("utf8mb3"));
        c.apply("CREATE TABLE x.t (a TEXT)", "").unwrap();
        assert_eq!(
            c.table("x", "t").unwrap().columns[0].charset.as_deref(),
            Some("utf8mb3")
        );
    }

    #[test]
    fn unqualified_names_without_database() {
        let r = one("ALTER TABLE t ADD c int", "");
        assert_eq!((r.schema, r.table.as_deref()), (None, Some("t")));
    }

    #[test]
    fn mariadb_executable_comments() {
        assert_eq!(
            kinds("/*M!100100 ALTER TABLE t ENGINE=Aria */"),
            vec![DdlKind::Alter]
        );
        assert_eq!(
            kinds("/*!40000 ALTER TABLE t DISABLE KEYS */"),
            vec![DdlKind::Alter]
        );
    }

    fn cat(sqls: &[&str]) -> Catalog {
        let mut c = Catalog::new();
        for s in sqls {
            c.apply(s, "d").unwrap_or_else(|e| panic!("{s}: {e}"));
        }
        c
    }

    fn cols(c: &Catalog, t: &str) -> Vec<(String, String, bool)> {
        c.table("d", t)
            .unwrap_or_else(|| panic!("no table {t}"))
            .columns
            .iter()
            .map(|c| (c.name.clone(), c.column_type.clone(), c.is_primary_key))
            .collect()
    }

    fn c3(n: &str, t: &str, pk: bool) -> (String, String, bool) {
        (n.into(), t.into(), pk)
    }

    #[test]
    fn create_and_alter() {
        let c = cat(&[
            "CREATE TABLE t (id INT UNSIGNED NOT NULL AUTO_INCREMENT, n VARCHAR(20) DEFAULT 'x,y', \
             e ENUM('a','b''c') CHARACTER SET latin1, PRIMARY KEY (id))",
            "ALTER TABLE t ADD COLUMN z BOOL FIRST, ADD (p DECIMAL(5,2), q BIT), \
             MODIFY n VARCHAR(30) NOT NULL AFTER z, CHANGE e ee SET('x') , DROP COLUMN q",
        ]);
        assert_eq!(
            cols(&c, "t"),
            vec![
                c3("z", "tinyint(1)", false),
                c3("n", "varchar(30)", false),
                c3("id", "int(10) unsigned", true),
                c3("ee", "set('x')", false),
                c3("p", "decimal(5,2)", false),
            ]
        );
        let t = c.table("d", "t").unwrap();
        assert_eq!(t.columns[1].charset.as_deref(), Some("utf8mb4"));
        assert_eq!(t.columns[3].enum_values, vec!["x".to_string()]);
        assert!(!t.columns[1].nullable);
        assert!(t.columns[0].nullable);
    }

    #[test]
    fn primary_keys() {
        let c = cat(&[
            "CREATE TABLE t (a INT, b INT, c INT)",
            "ALTER TABLE t ADD PRIMARY KEY (a, b)",
        ]);
        assert_eq!(c.table("d", "t").unwrap().primary_key(), vec!["a", "b"]);
        let mut c = c;
        c.apply("ALTER TABLE t DROP PRIMARY KEY, ADD PRIMARY KEY (c)", "d")
            .unwrap();
        assert_eq!(c.table("d", "t").unwrap().primary_key(), vec!["c"]);
        c.apply("ALTER TABLE t DROP COLUMN c", "d").unwrap();
        assert!(c.table("d", "t").unwrap().primary_key().is_empty());
        c.apply("ALTER TABLE t MODIFY a BIGINT PRIMARY KEY", "d")
            .unwrap();
        assert_eq!(c.table("d", "t").unwrap().primary_key(), vec!["a"]);
        c.apply("ALTER TABLE t CHANGE a aa BIGINT", "d").unwrap();
        assert_eq!(c.table("d", "t").unwrap().primary_key(), vec!["aa"]);
    }

    #[test]
    fn renames_drops_and_databases() {
        let mut c = cat(&[
            "CREATE DATABASE x CHARACTER SET latin1",
            "CREATE TABLE x.a (s TEXT(100))",
        ]);
        assert_eq!(
            c.table("x", "a").unwrap().columns[0].column_type,
            "tinytext"
        );
        assert_eq!(
            c.table("x", "a").unwrap().columns[0].charset.as_deref(),
            Some("latin1")
        );
        let ch = c
            .apply("RENAME TABLE x.a TO x.tmp, x.tmp TO d.b", "d")
            .unwrap();
        assert_eq!(ch.len(), 4);
        assert!(c.table("x", "a").is_none() && c.table("x", "tmp").is_none());
        assert_eq!(c.table("d", "b").unwrap().table, "b");
        // unknown source: nothing applied
        let before = c.clone();
        let err = c
            .apply("RENAME TABLE d.b TO d.c, d.nope TO d.e", "d")
            .unwrap_err();
        assert!(matches!(err, DdlError::UnknownTable { ref table, .. } if table == "nope"));
        assert_eq!(c, before);
        c.apply("ALTER TABLE b RENAME TO x.bb", "d").unwrap();
        assert!(c.table("x", "bb").is_some());
        let ch = c.apply("DROP DATABASE x", "d").unwrap();
        assert_eq!(
            ch,
            vec![
                TableChange::Dropped {
                    schema: "x".into(),
                    table: "bb".into()
                },
                TableChange::DatabaseDropped { schema: "x".into() }
            ]
        );
        assert_eq!(c.tables().count(), 0);
    }

    #[test]
    fn errors_leave_catalog_unchanged() {
        let mut c = cat(&["CREATE TABLE t (a INT)"]);
        let before = c.clone();
        for bad in [
            "ALTER TABLE t ADD b INT, DROP nope",
            "ALTER TABLE t ADD b FANCYTYPE",
            "ALTER TABLE t ADD b INT AFTER nope",
            "ALTER TABLE missing ADD b INT",
            "CREATE TABLE u LIKE missing",
            "CREATE TABLE u (a int) SELECT 1 AS b",
            "CREATE TABLE u SELECT 1 AS b",
            "ALTER TABLE t ADD SYSTEM VERSIONING",
            "CREATE TABLE x (a INT); ALTER TABLE t DROP nope",
        ] {
            assert!(c.apply(bad, "d").is_err(), "{bad}");
            assert_eq!(c, before, "{bad}");
        }
        // Things that change nothing.
        for noop in [
            "TRUNCATE t",
            "CREATE INDEX i ON t (a)",
            "DROP INDEX i ON t",
            "GRANT ALL ON *.* TO x",
            "garbage",
            "CREATE TEMPORARY TABLE t (z int)",
            "DROP TEMPORARY TABLE t",
            "DROP TABLE IF EXISTS nope",
            "ALTER TABLE IF EXISTS nope ADD c INT",
            "CREATE TABLE IF NOT EXISTS t (z int)",
            "ALTER TABLE t ADD INDEX (a), ALGORITHM=INPLACE, LOCK=NONE",
        ] {
            let ch = c.apply(noop, "d").unwrap();
            assert!(
                ch.iter().all(
                    |x| matches!(x, TableChange::Defined(m) if Some(m) == before.table("d", "t"))
                ),
                "{noop}: {ch:?}"
            );
            assert_eq!(c, before, "{noop}");
        }
    }

    #[test]
    fn convert_grows_text() {
        let mut c = cat(&[
            "CREATE TABLE t (a TINYTEXT, b TEXT, c VARCHAR(3), d BLOB, e INT) CHARSET latin1",
        ]);
        c.apply("ALTER TABLE t CONVERT TO CHARACTER SET utf8mb4", "d")
            .unwrap();
        let t = c.table("d", "t").unwrap();
        let types: Vec<_> = t.columns.iter().map(|c| c.column_type.as_str()).collect();
        assert_eq!(
            types,
            ["text", "mediumtext", "varchar(3)", "blob", "int(11)"]
        );
        assert_eq!(t.charset.as_deref(), Some("utf8mb4"));
        assert_eq!(t.columns[3].charset, None);
    }

    #[test]
    fn never_panics_on_prefixes_and_noise() {
        let samples = [
            "CREATE TABLE `a`.`b` (id INT(11) UNSIGNED ZEROFILL NOT NULL DEFAULT '0' COMMENT 'x', \
             e ENUM('a','b') CHARACTER SET latin1 COLLATE latin1_bin, PRIMARY KEY (`id`), \
             KEY k (e(3))) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4",
            "ALTER TABLE t ADD COLUMN (a INT, b VARCHAR(3)), DROP PRIMARY KEY, ADD PRIMARY KEY (a), \
             CHANGE COLUMN x y DECIMAL(5,2) AFTER a, RENAME TO z, CONVERT TO CHARSET latin1",
            "RENAME TABLE a TO b, c TO d; DROP TABLE x, y; CREATE DATABASE q",
            "UPDATE t1, t2 SET t1.a = (SELECT 1) WHERE ((((1))))",
        ];
        for s in samples {
            for (i, _) in s.char_indices() {
                let p = &s[..i];
                let _ = classify(p, "d");
                let _ = cat(&["CREATE TABLE t (x INT)"]).apply(p, "d");
                let _ = classify(&s[i..], "");
                let _ = Catalog::new().apply(&s[i..], "");
            }
        }
        let noise = [
            "((((",
            "))))",
            ",,,",
            "`",
            "'",
            "\"",
            "/*",
            "--",
            "\\",
            "ALTER TABLE t ADD (",
            "ENUM(",
            "CREATE TABLE t (a ENUM(",
        ];
        for a in noise {
            for b in noise {
                let s = format!("{a}{b}");
                let _ = classify(&s, "d");
                let _ = cat(&["CREATE TABLE t (x INT)"]).apply(&s, "d");
            }
        }
    }
}
