//! `ALTER TABLE` (one [`AlterClause`] per top-level comma) and `ALTER DATABASE`.

use sqlparser::tokenizer::Token;

use super::column::parse_column;
use super::create::{is_constraint_kind, key_columns, parse_create_item};
use super::cursor::Cur;
use super::{parse_charset_options, OTHER_OBJECTS};
use crate::schema::ddl::lex::{is_kw, kw_upper, split_top};
use crate::schema::ddl::stmt::{AlterClause, AlterTable, CreateItem, Stmt};

/// After `ALTER`: a table or database statement, `Ignored` for other objects, `None` when not
/// recognised.
pub(super) fn parse_alter(c: &mut Cur<'_>) -> Option<Stmt> {
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

/// Does `toks` contain `SYSTEM VERSIONING`?
pub(super) fn contains_system_versioning(toks: &[Token]) -> bool {
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
