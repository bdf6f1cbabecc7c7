//! DDL under the pipeline's mappings: every table a DDL statement names (`ALTER TABLE t`,
//! `CREATE TABLE s.t LIKE u`, `RENAME TABLE a TO b`, `REFERENCES p(id)`, `CREATE INDEX i ON t`, …)
//! is rewritten to its mapped target as `` `schema`.`table` ``, so a DDL of a renamed table (or a
//! schema-qualified one) changes the right table on the target. Names no mapping takes are left
//! as written. Only the name tokens change: the rest of the statement stays byte for byte.

use sqlparser::dialect::MySqlDialect;
use sqlparser::keywords::Keyword;
use sqlparser::tokenizer::{Location, Token, TokenWithSpan, Tokenizer};

use crate::model::{find_mapping, CompiledMapping};

/// `sql` with every table reference that a mapping takes replaced by its target; unqualified
/// names are in `default_schema` (the schema the statement ran in on the source). SQL the
/// tokenizer cannot read is returned unchanged.
pub fn rewrite_tables(sql: &str, default_schema: &str, mappings: &[CompiledMapping]) -> String {
    let dialect = MySqlDialect {};
    let Ok(tokens) = Tokenizer::new(&dialect, sql).tokenize_with_location() else {
        return sql.to_string();
    };
    let offsets = Offsets::new(sql);
    // Significant tokens only (no whitespace or comments), with their byte ranges.
    let sig: Vec<(&Token, usize, usize)> = tokens
        .iter()
        .filter(|t| !matches!(t.token, Token::Whitespace(_)))
        .filter_map(|t: &TokenWithSpan| {
            Some((
                &t.token,
                offsets.byte(t.span.start)?,
                offsets.byte(t.span.end)?,
            ))
        })
        .collect();
    let kw = |i: usize| match sig.get(i) {
        Some((Token::Word(w), _, _)) if w.quote_style.is_none() => w.keyword,
        _ => Keyword::NoKeyword,
    };
    let statement = Statement::of(kw(0), kw(1), kw(2));
    let mut out = String::with_capacity(sql.len() + 16);
    let mut copied = 0usize;
    let mut i = 0usize;
    while i < sig.len() {
        let (Token::Word(first), start, first_end) = sig[i] else {
            i += 1;
            continue;
        };
        if !in_table_position(&sig, i, statement, &kw) {
            i += 1;
            continue;
        }
        // `schema`.`table` or `table`.
        let qualified = matches!(sig.get(i + 1), Some((Token::Period, _, _)))
            && matches!(sig.get(i + 2), Some((Token::Word(_), _, _)));
        let (schema, table, end, next) = if qualified {
            let (Token::Word(second), _, end) = sig[i + 2] else {
                unreachable!("checked above")
            };
            (first.value.as_str(), second.value.as_str(), end, i + 3)
        } else {
            (default_schema, first.value.as_str(), first_end, i + 1)
        };
        if let Some(m) = find_mapping(mappings, schema, table) {
            let (ts, tt) = m.target(schema, table);
            out.push_str(&sql[copied..start]);
            push_quoted(&mut out, &ts);
            out.push('.');
            push_quoted(&mut out, &tt);
            copied = end;
        }
        i = next;
    }
    out.push_str(&sql[copied..]);
    out
}

/// The statement kinds whose table lists need context (commas, `TO`, `ON`, `LIKE`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Statement {
    CreateTable,
    DropOrRenameTables,
    Index,
    Other,
}

impl Statement {
    fn of(a: Keyword, b: Keyword, c: Keyword) -> Self {
        match (a, b, c) {
            (Keyword::CREATE, Keyword::TABLE, _)
            | (Keyword::CREATE, Keyword::TEMPORARY, Keyword::TABLE) => Statement::CreateTable,
            (Keyword::DROP | Keyword::RENAME, Keyword::TABLE, _)
            | (Keyword::DROP, Keyword::TEMPORARY, Keyword::TABLE) => Statement::DropOrRenameTables,
            (Keyword::CREATE | Keyword::DROP, Keyword::INDEX, _)
            | (Keyword::CREATE, Keyword::UNIQUE | Keyword::FULLTEXT | Keyword::SPATIAL, _) => {
                Statement::Index
            }
            _ => Statement::Other,
        }
    }
}

/// Whether significant token `i` starts a table name.
fn in_table_position(
    sig: &[(&Token, usize, usize)],
    i: usize,
    statement: Statement,
    kw: &impl Fn(usize) -> Keyword,
) -> bool {
    let Some(p) = i.checked_sub(1) else {
        return false;
    };
    // `… TABLE [IF [NOT] EXISTS] name`
    let after_table = |j: usize| kw(j) == Keyword::TABLE;
    match kw(p) {
        Keyword::TABLE => true,
        Keyword::EXISTS => {
            let q = p.checked_sub(1);
            let r = p.checked_sub(2);
            q.is_some_and(|q| kw(q) == Keyword::IF && q.checked_sub(1).is_some_and(after_table))
                || (q.is_some_and(|q| kw(q) == Keyword::NOT)
                    && r.is_some_and(|r| {
                        kw(r) == Keyword::IF && r.checked_sub(1).is_some_and(after_table)
                    }))
        }
        // `TRUNCATE name` (TABLE is optional).
        Keyword::TRUNCATE => p == 0,
        Keyword::REFERENCES => true,
        Keyword::LIKE => statement == Statement::CreateTable,
        // `CREATE INDEX i ON t (…)`, `DROP INDEX i ON t`; not `ON DELETE`/`ON UPDATE`.
        Keyword::ON => {
            statement == Statement::Index && !matches!(kw(i), Keyword::DELETE | Keyword::UPDATE)
        }
        // `RENAME TABLE a TO b`; `ALTER TABLE a RENAME [TO|AS] b` but not `RENAME COLUMN x TO y`.
        Keyword::TO | Keyword::AS => {
            statement == Statement::DropOrRenameTables
                || p.checked_sub(1).is_some_and(|q| kw(q) == Keyword::RENAME)
        }
        _ => statement == Statement::DropOrRenameTables && matches!(sig[p].0, Token::Comma),
    }
}

fn push_quoted(out: &mut String, ident: &str) {
    out.push('`');
    out.push_str(&ident.replace('`', "``"));
    out.push('`');
}

/// Byte offsets of the tokenizer's (line, column) locations (both from 1, columns in chars).
struct Offsets {
    /// Byte offset of each char, by line, plus the offset just past the line.
    lines: Vec<Vec<usize>>,
}

impl Offsets {
    fn new(sql: &str) -> Self {
        let mut lines = vec![Vec::new()];
        for (at, c) in sql.char_indices() {
            if let Some(line) = lines.last_mut() {
                line.push(at);
            }
            if c == '\n' {
                lines.push(Vec::new());
            }
        }
        if let Some(line) = lines.last_mut() {
            line.push(sql.len());
        }
        Offsets { lines }
    }

    fn byte(&self, l: Location) -> Option<usize> {
        let line = self
            .lines
            .get(usize::try_from(l.line).ok()?.checked_sub(1)?)?;
        line.get(usize::try_from(l.column).ok()?.checked_sub(1)?)
            .copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Channel;

    fn mappings() -> Vec<CompiledMapping> {
        let c = Channel::from_toml(include_str!("../../../../config/channel.toml")).unwrap();
        CompiledMapping::compile(&c.pipeline).unwrap()
    }

    fn rw(sql: &str) -> String {
        rewrite_tables(sql, "shop", &mappings())
    }

    #[test]
    fn renamed_and_qualified_tables_point_at_the_target() {
        assert_eq!(
            rw("ALTER TABLE user ADD COLUMN nick VARCHAR(20) DEFAULT 'a''b'"),
            "ALTER TABLE `shop_dr`.`customer` ADD COLUMN nick VARCHAR(20) DEFAULT 'a''b'"
        );
        assert_eq!(
            rw("alter table `shop`.`orders` add index (user_id)"),
            "alter table `shop_dr`.`orders` add index (user_id)"
        );
        assert_eq!(
            rw("ALTER TABLE shop.orders\n  ADD COLUMN note2 TEXT /* é */"),
            "ALTER TABLE `shop_dr`.`orders`\n  ADD COLUMN note2 TEXT /* é */"
        );
        assert_eq!(rw("TRUNCATE order_line"), "TRUNCATE `shop_dr`.`order_line`");
        assert_eq!(
            rw("DROP TABLE IF EXISTS orders, shop.order_line, other"),
            "DROP TABLE IF EXISTS `shop_dr`.`orders`, `shop_dr`.`order_line`, other"
        );
        assert_eq!(
            rw("CREATE TABLE IF NOT EXISTS orders LIKE user"),
            "CREATE TABLE IF NOT EXISTS `shop_dr`.`orders` LIKE `shop_dr`.`customer`"
        );
        assert_eq!(
            rw("CREATE INDEX i ON orders (user_id)"),
            "CREATE INDEX i ON `shop_dr`.`orders` (user_id)"
        );
        assert_eq!(
            rw("RENAME TABLE orders TO order_line"),
            "RENAME TABLE `shop_dr`.`orders` TO `shop_dr`.`order_line`"
        );
    }

    #[test]
    fn columns_keywords_and_unmapped_tables_stay() {
        for sql in [
            "ALTER TABLE ignored ADD COLUMN orders INT",
            "CREATE TABLE other.orders (id INT)",
            "ALTER TABLE x RENAME COLUMN orders TO order_line",
            "CREATE TABLE t (id INT, FOREIGN KEY (id) REFERENCES elsewhere(id) ON DELETE CASCADE)",
            "not sql at all 'unterminated",
        ] {
            assert_eq!(rw(sql), sql);
        }
        assert_eq!(
            rw("ALTER TABLE orders ADD COLUMN user INT, ADD FOREIGN KEY (user) REFERENCES user(id) ON UPDATE CASCADE"),
            "ALTER TABLE `shop_dr`.`orders` ADD COLUMN user INT, ADD FOREIGN KEY (user) REFERENCES `shop_dr`.`customer`(id) ON UPDATE CASCADE"
        );
        assert_eq!(
            rw("ALTER TABLE orders RENAME TO order_line"),
            "ALTER TABLE `shop_dr`.`orders` RENAME TO `shop_dr`.`order_line`"
        );
    }
}
