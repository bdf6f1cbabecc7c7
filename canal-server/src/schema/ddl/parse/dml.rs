//! Statement-format `INSERT` / `UPDATE` / `DELETE`: the target table, or none for multi-table
//! statements.

use sqlparser::dialect::MySqlDialect;
use sqlparser::tokenizer::Token;

use super::cursor::Cur;
use crate::schema::ddl::classify::DdlKind;
use crate::schema::ddl::lex::kw_upper;
use crate::schema::ddl::stmt::{QName, Stmt};

/// UPDATE/DELETE: the target table via sqlparser's AST, falling back to a token scan when
/// sqlparser rejects the statement. Multi-table statements have no table.
pub(super) fn parse_dml(toks: &[Token], kind: DdlKind) -> Stmt {
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

/// The target table by a scan of the leading tokens (INSERT, and UPDATE/DELETE that sqlparser
/// rejects).
pub(super) fn dml_by_tokens(toks: &[Token], kind: DdlKind) -> Stmt {
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
