//! The statement model: what the statement reader ([`super::parse`]) makes of one statement, and
//! what classification and the catalog read. Names are as written (quotes removed, not yet
//! qualified with the current database).

use super::charset::CharsetSpec;
use super::classify::DdlKind;
use super::column_type::ColumnSpec;

/// A possibly qualified table name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct QName {
    pub(super) schema: Option<String>,
    pub(super) name: String,
}

impl QName {
    /// The qualifier, else `current_db` unless that is empty.
    pub(super) fn schema_or(&self, current_db: &str) -> Option<String> {
        self.schema.clone().or_else(|| non_empty(current_db))
    }
}

/// `Some(s)` unless `s` is empty.
pub(super) fn non_empty(s: &str) -> Option<String> {
    (!s.is_empty()).then(|| s.to_string())
}

/// One statement as read; names are unqualified as written.
#[derive(Debug)]
pub(super) enum Stmt {
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

/// `CREATE [OR REPLACE] [TEMPORARY] TABLE [IF NOT EXISTS] name …`.
#[derive(Debug)]
pub(super) struct CreateTable {
    pub(super) name: QName,
    pub(super) temporary: bool,
    pub(super) or_replace: bool,
    pub(super) if_not_exists: bool,
    pub(super) body: CreateBody,
}

/// What follows the name in CREATE TABLE.
#[derive(Debug)]
pub(super) enum CreateBody {
    Like(QName),
    Defs {
        items: Vec<CreateItem>,
        options: CharsetSpec,
        select: bool,
    },
    Select,
    Broken(String),
}

/// One item of a column list; a column that could not be read carries the reason.
#[derive(Debug)]
pub(super) enum CreateItem {
    Column(Result<ColumnSpec, String>),
    PrimaryKey(Vec<String>),
    Other,
}

/// `ALTER TABLE [IF EXISTS] name clause, …`.
#[derive(Debug)]
pub(super) struct AlterTable {
    pub(super) name: QName,
    pub(super) if_exists: bool,
    pub(super) clauses: Vec<AlterClause>,
}

/// One top-level clause of ALTER TABLE.
#[derive(Debug)]
pub(super) enum AlterClause {
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
    /// Table options (`ENGINE=`, `[DEFAULT] CHARSET=`, `COMMENT=`, …); the charset part if any.
    Options(CharsetSpec),
    Other,
    Unsupported(String),
}

/// `FIRST` / `AFTER col` of a column definition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Position {
    First,
    After(String),
}
