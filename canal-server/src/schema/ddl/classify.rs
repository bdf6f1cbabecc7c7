//! Entry classification: which Canal entry (`EventType`, schema, table) a QUERY event's SQL
//! becomes, as Canal's druid-based parser decides it (compat reference §2.6).

use super::lex::{lex_statement_text, statements};
use super::parse::parse_statement;
use super::stmt::{non_empty, AlterClause, QName, Stmt};

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
    /// A result without RENAME's old names.
    pub(super) fn new(kind: DdlKind, schema: Option<String>, table: Option<String>) -> Self {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::ddl::tests::{kinds, one, st};

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
    fn unqualified_names_without_database() {
        let r = one("ALTER TABLE t ADD c int", "");
        assert_eq!((r.schema, r.table.as_deref()), (None, Some("t")));
    }
}
