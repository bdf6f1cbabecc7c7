//! [`Catalog::apply`]: DDL text → changes to the catalog, all or nothing. Database statements,
//! `DROP TABLE`, `RENAME TABLE` and `CREATE TABLE` are applied here; `ALTER TABLE` in
//! [`super::alter`].

use super::alter::set_primary_key;
use super::{Catalog, DdlError, TableChange};
use crate::schema::ddl::column_type::resolve_column;
use crate::schema::ddl::lex::{lex_statement_text, statements};
use crate::schema::ddl::parse::parse_statement;
use crate::schema::ddl::stmt::{CreateBody, CreateItem, CreateTable, QName, Stmt};
use crate::schema::table::TableMeta;

impl Catalog {
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
}

/// What one statement's application needs: the SQL and current database for names and errors,
/// and the list its changes are appended to.
pub(super) struct Ctx<'a> {
    sql: &'a str,
    db: &'a str,
    pub(super) changes: &'a mut Vec<TableChange>,
}

impl Ctx<'_> {
    /// `schema.table` of `q`, qualified with the current database; an error when neither names one.
    pub(super) fn resolve(&self, q: &QName) -> Result<(String, String), DdlError> {
        match q.schema_or(self.db) {
            Some(s) => Ok((s, q.name.clone())),
            None => Err(self.unsupported(&format!("no database selected for table {}", q.name))),
        }
    }

    pub(super) fn unsupported(&self, reason: &str) -> DdlError {
        DdlError::Unsupported {
            sql: self.sql.to_string(),
            reason: reason.to_string(),
        }
    }

    pub(super) fn unknown_table(&self, schema: &str, table: &str) -> DdlError {
        DdlError::UnknownTable {
            schema: schema.to_string(),
            table: table.to_string(),
            sql: self.sql.to_string(),
        }
    }

    pub(super) fn unknown_column(&self, meta: &TableMeta, column: &str) -> DdlError {
        DdlError::UnknownColumn {
            schema: meta.schema.clone(),
            table: meta.table.clone(),
            column: column.to_string(),
            sql: self.sql.to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::schema::ddl::tests::cat;
    use crate::schema::ddl::{DdlError, TableChange};

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
}
