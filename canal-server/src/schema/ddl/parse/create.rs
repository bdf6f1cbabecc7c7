//! `CREATE TABLE / INDEX / DATABASE` and the items of a column list (columns, primary keys,
//! other keys and constraints), also used by `ALTER TABLE … ADD ( … )`.

use sqlparser::tokenizer::Token;

use super::alter::contains_system_versioning;
use super::column::parse_column;
use super::cursor::Cur;
use super::{eat_charset_option, parse_charset_options, OTHER_OBJECTS};
use crate::schema::ddl::charset::CharsetSpec;
use crate::schema::ddl::lex::{ident_of, is_kw, kw_upper, split_top};
use crate::schema::ddl::stmt::{CreateBody, CreateItem, CreateTable, Stmt};

/// After `CREATE`: a table, index or database statement, `Ignored` for other objects, `None`
/// when not recognised.
pub(super) fn parse_create(c: &mut Cur<'_>) -> Option<Stmt> {
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

const KEY_ITEM_WORDS: &[&str] = &[
    "INDEX", "KEY", "UNIQUE", "FULLTEXT", "SPATIAL", "FOREIGN", "CHECK",
];

/// One comma-separated item of a column list.
pub(super) fn parse_create_item(toks: &[Token]) -> CreateItem {
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

/// Is `tok` a constraint kind (`PRIMARY`, `UNIQUE`, `FOREIGN`, `CHECK`) rather than a name?
pub(super) fn is_constraint_kind(tok: Option<&Token>) -> bool {
    ["PRIMARY", "UNIQUE", "FOREIGN", "CHECK"]
        .iter()
        .any(|k| is_kw(tok, k))
}

/// Column names of the first `( … )` group in `toks` (an index's key parts).
pub(super) fn key_columns(toks: &[Token]) -> Vec<String> {
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
