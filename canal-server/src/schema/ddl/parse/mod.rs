//! The statement reader: tokens of one statement → [`Stmt`].
//!
//! Dispatches on the leading words; statements it does not recognise are handed to `sqlparser`'s
//! full parser, which only decides between [`Stmt::Ignored`] (a valid non-DDL statement) and
//! [`Stmt::Unrecognised`]. Never panics; a recognised statement with a malformed part carries
//! the reason inside the model (`CreateBody::Broken`, `AlterClause::Unsupported`, `Err` column
//! specs) so that classification still works and only the catalog refuses it.

mod alter;
mod column;
mod create;
mod cursor;
mod dml;

use sqlparser::dialect::MySqlDialect;
use sqlparser::tokenizer::Token;

use self::alter::parse_alter;
use self::create::parse_create;
use self::cursor::Cur;
use self::dml::{dml_by_tokens, parse_dml};
use super::charset::{CharsetName, CharsetSpec};
use super::classify::DdlKind;
use super::lex::{is_kw, kw_upper, split_top};
use super::stmt::{QName, Stmt};

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

/// Reads one statement (without its `;`).
pub(super) fn parse_statement(toks: &[Token]) -> Stmt {
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

/// A statement that changes table data: its verb (`INSERT`, `REPLACE`, `UPDATE`, `DELETE`,
/// `LOAD DATA`) and target table (`None` for multi-table statements or when it cannot be read),
/// looking through MariaDB's `SET STATEMENT … FOR`. `None` for every other statement.
pub(super) fn parse_data_change(toks: &[Token]) -> Option<(&'static str, Option<QName>)> {
    let c = Cur::new(toks);
    if c.is("SET") && c.is_at(1, "STATEMENT") {
        let mut depth = 0usize;
        for (i, t) in toks.iter().enumerate() {
            match t {
                Token::LParen => depth += 1,
                Token::RParen => depth = depth.saturating_sub(1),
                t if depth == 0 && is_kw(Some(t), "FOR") => {
                    let inner = toks.get(i + 1..).unwrap_or(&[]);
                    if is_kw(inner.first(), "SET") {
                        return None;
                    }
                    return parse_data_change(inner);
                }
                _ => {}
            }
        }
        return None;
    }
    let table = |stmt: Stmt| match stmt {
        Stmt::Dml { table, .. } => table,
        _ => None,
    };
    let word = kw_upper(c.peek())?;
    match word.as_str() {
        "INSERT" => Some(("INSERT", table(dml_by_tokens(toks, DdlKind::Insert)))),
        // REPLACE [LOW_PRIORITY | DELAYED] [INTO] tbl: INSERT's shape.
        "REPLACE" => Some(("REPLACE", table(dml_by_tokens(toks, DdlKind::Insert)))),
        "UPDATE" => Some(("UPDATE", table(parse_dml(toks, DdlKind::Update)))),
        "DELETE" => Some(("DELETE", table(parse_dml(toks, DdlKind::Delete)))),
        "LOAD" if c.is_at(1, "DATA") || c.is_at(1, "XML") => {
            // LOAD DATA … INFILE 'f' [REPLACE | IGNORE] INTO TABLE tbl …
            let at = toks
                .windows(2)
                .position(|w| is_kw(w.first(), "INTO") && is_kw(w.get(1), "TABLE"));
            let target = at.and_then(|i| Cur::new(toks.get(i + 2..).unwrap_or(&[])).qname());
            Some(("LOAD DATA", target))
        }
        _ => None,
    }
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
    let start = c.mark();
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
    c.rewind(start);
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

#[cfg(test)]
mod tests {
    use crate::schema::ddl::tests::{cat, kinds, one, st};
    use crate::schema::ddl::DdlKind;

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
}
