//! Table definitions read from the source's `information_schema`: the seed of the schema history
//! at first start, and the re-read when the history has no definition for a table.

use mysql_async::prelude::Queryable;
use mysql_async::Conn;

use crate::schema::table::{ColumnMeta, TableMeta};

/// Schemas that never hold user data; never seeded.
pub const SYSTEM_SCHEMAS: &[&str] = &["mysql", "information_schema", "performance_schema", "sys"];

type ColumnRow = (
    String,         // TABLE_SCHEMA
    String,         // TABLE_NAME
    String,         // COLUMN_NAME
    String,         // COLUMN_TYPE
    u8,             // part of the PRIMARY index
    String,         // IS_NULLABLE
    Option<String>, // CHARACTER_SET_NAME
    Option<u16>,    // collation id
    Option<String>, // table charset
);

// Only the real PRIMARY KEY counts as a key (COLUMN_KEY='PRI' also marks a UNIQUE NOT NULL key of
// a table without primary key, which Canal does not treat as a key).
const COLUMNS_SQL: &str = "SELECT c.TABLE_SCHEMA, c.TABLE_NAME, c.COLUMN_NAME, c.COLUMN_TYPE, \
     CAST(EXISTS (SELECT 1 FROM information_schema.STATISTICS s WHERE s.TABLE_SCHEMA = c.TABLE_SCHEMA \
       AND s.TABLE_NAME = c.TABLE_NAME AND s.COLUMN_NAME = c.COLUMN_NAME AND s.INDEX_NAME = 'PRIMARY') AS UNSIGNED), \
     c.IS_NULLABLE, c.CHARACTER_SET_NAME, CAST(co.ID AS UNSIGNED), tco.CHARACTER_SET_NAME \
     FROM information_schema.COLUMNS c \
     LEFT JOIN information_schema.COLLATIONS co ON co.COLLATION_NAME = c.COLLATION_NAME \
     JOIN information_schema.TABLES t ON t.TABLE_SCHEMA = c.TABLE_SCHEMA AND t.TABLE_NAME = c.TABLE_NAME \
     LEFT JOIN information_schema.COLLATIONS tco ON tco.COLLATION_NAME = t.TABLE_COLLATION \
     WHERE t.TABLE_TYPE = 'BASE TABLE'";

/// Loads one table, or `None` when it does not exist (any more).
pub async fn load_table(
    conn: &mut Conn,
    schema: &str,
    table: &str,
) -> Result<Option<TableMeta>, mysql_async::Error> {
    let sql = format!(
        "{COLUMNS_SQL} AND c.TABLE_SCHEMA = ? AND c.TABLE_NAME = ? ORDER BY c.ORDINAL_POSITION"
    );
    let rows: Vec<ColumnRow> = conn.exec(sql, (schema, table)).await?;
    Ok(build(rows).into_iter().next())
}

/// Loads every base table outside the system schemas for which `accept(schema, table)` holds.
pub async fn load_all(
    conn: &mut Conn,
    accept: &(dyn Fn(&str, &str) -> bool + Sync),
) -> Result<Vec<TableMeta>, mysql_async::Error> {
    let placeholders = SYSTEM_SCHEMAS
        .iter()
        .map(|s| format!("'{s}'"))
        .collect::<Vec<_>>()
        .join(",");
    let sql = format!(
        "{COLUMNS_SQL} AND c.TABLE_SCHEMA NOT IN ({placeholders}) \
         ORDER BY c.TABLE_SCHEMA, c.TABLE_NAME, c.ORDINAL_POSITION"
    );
    let rows: Vec<ColumnRow> = conn.query(sql).await?;
    let rows = rows
        .into_iter()
        .filter(|r| accept(&r.0, &r.1))
        .collect::<Vec<_>>();
    Ok(build(rows))
}

fn build(rows: Vec<ColumnRow>) -> Vec<TableMeta> {
    let mut out: Vec<TableMeta> = Vec::new();
    for (schema, table, name, column_type, key, nullable, charset, collation, table_charset) in rows
    {
        // COLUMN_TYPE is lower case except ENUM/SET labels, which keep their case.
        let col = ColumnMeta {
            unsigned: column_type.to_ascii_lowercase().contains(" unsigned"),
            enum_values: enum_labels(&column_type),
            name,
            is_primary_key: key != 0,
            charset,
            collation_id: collation,
            nullable: nullable == "YES",
            column_type,
        };
        match out.last_mut() {
            Some(t) if t.schema == schema && t.table == table => t.columns.push(col),
            _ => out.push(TableMeta {
                schema,
                table,
                columns: vec![col],
                charset: table_charset,
            }),
        }
    }
    out
}

/// Labels of `enum('a','b')` / `set('x','y')` type text, with `''` escapes resolved.
pub fn enum_labels(column_type: &str) -> Vec<String> {
    let t = column_type.trim_start();
    let head = t.get(..5).unwrap_or("").to_ascii_lowercase();
    let inner = if head.starts_with("enum(") {
        &t[5..]
    } else if head.starts_with("set(") {
        &t[4..]
    } else {
        return Vec::new();
    };
    let mut labels = Vec::new();
    let mut chars = inner.chars().peekable();
    loop {
        match chars.next() {
            Some('\'') => {
                let mut label = String::new();
                loop {
                    match chars.next() {
                        Some('\'') if chars.peek() == Some(&'\'') => {
                            chars.next();
                            label.push('\'');
                        }
                        Some('\'') | None => break,
                        Some('\\') => {
                            if let Some(c) = chars.next() {
                                label.push(c);
                            }
                        }
                        Some(c) => label.push(c),
                    }
                }
                labels.push(label);
            }
            Some(',') | Some(' ') => {}
            _ => break,
        }
    }
    labels
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enum_labels_parse_quotes() {
        assert_eq!(
            enum_labels("enum('a','b c','it''s')"),
            vec!["a", "b c", "it's"]
        );
        assert_eq!(enum_labels("set('x','y')"), vec!["x", "y"]);
        assert!(enum_labels("int(11)").is_empty());
        assert_eq!(enum_labels("enum('')"), vec![""]);
    }
}
