//! Table definitions as the decoder needs them: column names, declared types, keys, charsets.

use serde::{Deserialize, Serialize};

/// One column of a table, in ordinal order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ColumnMeta {
    /// Column name, original case, unquoted.
    pub name: String,
    /// Full declared type as `information_schema.COLUMNS.COLUMN_TYPE` writes it, lower case,
    /// e.g. `int(11)`, `int(10) unsigned`, `varchar(20)`, `enum('a','b')`, `decimal(10,2)`.
    /// This is Canal's `mysqlType`.
    pub column_type: String,
    /// Part of the PRIMARY KEY.
    pub is_primary_key: bool,
    /// `unsigned` numeric column.
    pub unsigned: bool,
    /// Character set name (`utf8mb4`, `latin1`, …) for string columns.
    pub charset: Option<String>,
    /// Collation id when known (from `information_schema.COLLATIONS` or binlog metadata).
    pub collation_id: Option<u16>,
    /// ENUM or SET labels in declaration order.
    pub enum_values: Vec<String>,
    /// Nullable.
    pub nullable: bool,
}

impl ColumnMeta {
    /// The base type word of `column_type`, e.g. `int` for `int(10) unsigned`.
    pub fn base_type(&self) -> &str {
        let t = self.column_type.as_str();
        let end = t
            .find(|c: char| c == '(' || c.is_whitespace())
            .unwrap_or(t.len());
        &t[..end]
    }
}

/// A table definition in force at some binlog position.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableMeta {
    /// Schema (database) name.
    pub schema: String,
    /// Table name.
    pub table: String,
    /// Columns in ordinal order.
    pub columns: Vec<ColumnMeta>,
    /// Default character set of the table (for columns without their own).
    pub charset: Option<String>,
}

impl TableMeta {
    /// `schema.table`.
    pub fn full_name(&self) -> String {
        format!("{}.{}", self.schema, self.table)
    }

    /// Names of primary-key columns, in ordinal order.
    pub fn primary_key(&self) -> Vec<&str> {
        self.columns
            .iter()
            .filter(|c| c.is_primary_key)
            .map(|c| c.name.as_str())
            .collect()
    }

    /// Index of the column named `name` (case-insensitive, as MySQL compares column names).
    pub fn column_index(&self, name: &str) -> Option<usize> {
        self.columns
            .iter()
            .position(|c| c.name.eq_ignore_ascii_case(name))
    }
}
