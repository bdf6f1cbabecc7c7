//! What a snapshot SELECTs per column, and how each value it reads becomes the value the
//! binlog decoder would have produced for the same column, so snapshot rows print exactly as
//! binlog rows do (through the same [`crate::value`] formats).
//!
//! Per column the plan holds the binlog type and TABLE_MAP metadata the column would have (from
//! its declared type), the SELECT expression, and the conversion of the binary-protocol value:
//!
//! | declared type | SELECT | binary protocol | binlog-shaped value |
//! | --- | --- | --- | --- |
//! | integers | `c` | `Int`/`UInt` | `Int` (`UInt` above `i64::MAX`); MEDIUMINT as its 24 bits |
//! | YEAR | `c` | `Int(year)` | `Bytes("1900")` for 0, else the year as text |
//! | TIMESTAMP(fsp) | `UNIX_TIMESTAMP(c)` | `Int` or decimal text | `Bytes("secs[.µs6]")` |
//! | ENUM | `c+0` | `Int(index)` | `Int(index)` |
//! | SET | `c+0` | `Int(mask)` | `Bytes`: the mask, little-endian, in the column's bytes |
//! | everything else | `c` | as the binlog | unchanged |
//!
//! MySQL's binary JSON type has no text form that round-trips to the binlog's, so a table with
//! such a column is refused with a clear error (MariaDB's JSON is LONGTEXT and works).

use mysql_common::constants::ColumnType;
use mysql_common::value::Value;

use crate::schema::table::{ColumnMeta, TableMeta};

/// Why a table cannot be snapshotted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    /// The table has no primary key to chunk by.
    #[error("{table} has no primary key; a snapshot reads tables in primary-key chunks")]
    NoPrimaryKey {
        /// `schema.table`.
        table: String,
    },
    /// A column type the snapshot cannot render as the binlog would.
    #[error("{table}.{column}: type {column_type} is not supported by the snapshot")]
    Unsupported {
        /// `schema.table`.
        table: String,
        /// Column name.
        column: String,
        /// Declared type.
        column_type: String,
    },
}

/// A value read by a snapshot SELECT that does not fit its column.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("column {column}: unexpected value {value} for type {column_type}")]
pub struct ValueShapeError {
    /// Column name.
    pub column: String,
    /// Declared type.
    pub column_type: String,
    /// The value, as SQL.
    pub value: String,
}

/// How a value read by the SELECT becomes the binlog's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Conv {
    Plain,
    Int,
    Int24,
    Year,
    Timestamp,
    Enum,
    Set { bytes: usize },
}

/// One column as the binlog would type it, and how to read it.
#[derive(Debug, Clone)]
pub struct PlannedColumn {
    /// Column name.
    pub name: String,
    /// Declared type text.
    pub declared: String,
    /// The binlog column type, resolved as mysql_common's `get_column_type` resolves it.
    pub column_type: ColumnType,
    /// TABLE_MAP metadata bytes of that type.
    pub meta: Vec<u8>,
    conv: Conv,
}

/// How to read one table in chunks.
#[derive(Debug, Clone)]
pub struct TablePlan {
    /// Schema name.
    pub schema: String,
    /// Table name.
    pub table: String,
    /// Columns in ordinal order.
    pub columns: Vec<PlannedColumn>,
    /// Primary-key column indexes, in ordinal order (the chunk order).
    pub key: Vec<usize>,
    /// First chunk: `SELECT … ORDER BY key LIMIT ?`.
    pub first_sql: String,
    /// Next chunks: `SELECT … WHERE (key) > (?, …) ORDER BY key LIMIT ?`.
    pub next_sql: String,
}

fn quote(name: &str) -> String {
    format!("`{}`", name.replace('`', "``"))
}

/// `(a, b)` of the text inside the first parentheses of a declared type.
fn type_args(declared: &str) -> Vec<u64> {
    let Some(open) = declared.find('(') else {
        return Vec::new();
    };
    let Some(close) = declared[open..].find(')') else {
        return Vec::new();
    };
    declared[open + 1..open + close]
        .split(',')
        .filter_map(|a| a.trim().parse().ok())
        .collect()
}

/// The binlog type, metadata and conversion of a column, from its declared type.
fn plan_column(c: &ColumnMeta, table_charset: Option<&str>) -> Option<PlannedColumn> {
    use ColumnType::*;
    let args = type_args(&c.column_type);
    let arg = |i: usize, default: u64| args.get(i).copied().unwrap_or(default);
    let fsp = || vec![arg(0, 0).min(6) as u8];
    let charset = c.charset.as_deref().or(table_charset).unwrap_or("utf8mb4");
    let mb = crate::schema::ddl::mbmaxlen(charset);
    let (column_type, meta, conv) = match c.base_type() {
        "tinyint" | "bool" | "boolean" => (MYSQL_TYPE_TINY, vec![], Conv::Int),
        "smallint" => (MYSQL_TYPE_SHORT, vec![], Conv::Int),
        "mediumint" => (MYSQL_TYPE_INT24, vec![], Conv::Int24),
        "int" | "integer" => (MYSQL_TYPE_LONG, vec![], Conv::Int),
        "bigint" => (MYSQL_TYPE_LONGLONG, vec![], Conv::Int),
        "float" => (MYSQL_TYPE_FLOAT, vec![4], Conv::Plain),
        "double" | "real" => (MYSQL_TYPE_DOUBLE, vec![8], Conv::Plain),
        "decimal" | "numeric" | "dec" | "fixed" => (
            MYSQL_TYPE_NEWDECIMAL,
            vec![arg(0, 10).min(65) as u8, arg(1, 0).min(30) as u8],
            Conv::Plain,
        ),
        "bit" => {
            let bits = arg(0, 1).clamp(1, 64);
            (
                MYSQL_TYPE_BIT,
                vec![(bits % 8) as u8, (bits / 8) as u8],
                Conv::Plain,
            )
        }
        "year" => (MYSQL_TYPE_YEAR, vec![], Conv::Year),
        "date" => (MYSQL_TYPE_NEWDATE, vec![], Conv::Plain),
        "time" => (MYSQL_TYPE_TIME2, fsp(), Conv::Plain),
        "datetime" => (MYSQL_TYPE_DATETIME2, fsp(), Conv::Plain),
        "timestamp" => (MYSQL_TYPE_TIMESTAMP2, fsp(), Conv::Timestamp),
        "char" | "binary" => {
            let per = if c.base_type() == "binary" { 1 } else { mb };
            let len = (arg(0, 1) * per).min(1020) as u16;
            let b0 = 0xFE ^ (((len & 0x300) >> 4) as u8);
            (MYSQL_TYPE_STRING, vec![b0, (len & 0xFF) as u8], Conv::Plain)
        }
        "varchar" | "varbinary" => {
            let per = if c.base_type() == "varbinary" { 1 } else { mb };
            let len = (arg(0, 1) * per).min(65_535) as u16;
            (MYSQL_TYPE_VARCHAR, len.to_le_bytes().to_vec(), Conv::Plain)
        }
        "tinytext" | "tinyblob" => (MYSQL_TYPE_BLOB, vec![1], Conv::Plain),
        "text" | "blob" => (MYSQL_TYPE_BLOB, vec![2], Conv::Plain),
        "mediumtext" | "mediumblob" => (MYSQL_TYPE_BLOB, vec![3], Conv::Plain),
        "longtext" | "longblob" => (MYSQL_TYPE_BLOB, vec![4], Conv::Plain),
        "geometry" | "point" | "linestring" | "polygon" | "multipoint" | "multilinestring"
        | "multipolygon" | "geometrycollection" | "geomcollection" => {
            (MYSQL_TYPE_GEOMETRY, vec![4], Conv::Plain)
        }
        "enum" => {
            let n = c.enum_values.len();
            (
                MYSQL_TYPE_ENUM,
                vec![0xF7, if n < 256 { 1 } else { 2 }],
                Conv::Enum,
            )
        }
        "set" => {
            let bytes = match c.enum_values.len().div_ceil(8) {
                0 | 1 => 1,
                2 => 2,
                3 => 3,
                4 => 4,
                _ => 8,
            };
            (MYSQL_TYPE_SET, vec![0xF8, bytes as u8], Conv::Set { bytes })
        }
        _ => return None,
    };
    Some(PlannedColumn {
        name: c.name.clone(),
        declared: c.column_type.clone(),
        column_type,
        meta,
        conv,
    })
}

impl TablePlan {
    /// The plan for `meta`, or why the table cannot be snapshotted.
    pub fn new(meta: &TableMeta) -> Result<TablePlan, PlanError> {
        let full = meta.full_name();
        let columns = meta
            .columns
            .iter()
            .map(|c| {
                plan_column(c, meta.charset.as_deref()).ok_or_else(|| PlanError::Unsupported {
                    table: full.clone(),
                    column: c.name.clone(),
                    column_type: c.column_type.clone(),
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let key: Vec<usize> = meta
            .columns
            .iter()
            .enumerate()
            .filter(|(_, c)| c.is_primary_key)
            .map(|(i, _)| i)
            .collect();
        if key.is_empty() {
            return Err(PlanError::NoPrimaryKey { table: full });
        }
        let exprs: Vec<String> = columns
            .iter()
            .map(|c| match c.conv {
                Conv::Timestamp => format!("UNIX_TIMESTAMP({})", quote(&c.name)),
                Conv::Enum | Conv::Set { .. } => format!("{}+0", quote(&c.name)),
                _ => quote(&c.name),
            })
            .collect();
        // The raw key columns follow the row (they are the next chunk's lower bound).
        let key_cols: Vec<String> = key.iter().map(|&i| quote(&columns[i].name)).collect();
        let select = format!(
            "SELECT {}, {} FROM {}.{}",
            exprs.join(", "),
            key_cols.join(", "),
            quote(&meta.schema),
            quote(&meta.table)
        );
        let order = format!("ORDER BY {} LIMIT ?", key_cols.join(", "));
        let marks = vec!["?"; key.len()].join(", ");
        Ok(TablePlan {
            schema: meta.schema.clone(),
            table: meta.table.clone(),
            first_sql: format!("{select} {order}"),
            next_sql: format!(
                "{select} WHERE ({}) > ({marks}) {order}",
                key_cols.join(", ")
            ),
            columns,
            key,
        })
    }

    /// `schema.table`.
    pub fn full_name(&self) -> String {
        format!("{}.{}", self.schema, self.table)
    }

    /// Splits one SELECT row into the binlog-shaped row and its raw key values.
    pub fn split_row(
        &self,
        mut row: Vec<Value>,
    ) -> Result<(Vec<Value>, Vec<Value>), ValueShapeError> {
        let n = self.columns.len();
        if row.len() != n + self.key.len() {
            return Err(ValueShapeError {
                column: "(row)".into(),
                column_type: format!("{} columns", n + self.key.len()),
                value: format!("{} values", row.len()),
            });
        }
        let key = row.split_off(n);
        let shaped = row
            .into_iter()
            .zip(&self.columns)
            .map(|(v, c)| c.to_binlog(v))
            .collect::<Result<Vec<_>, _>>()?;
        Ok((shaped, key))
    }

    #[cfg(test)]
    pub(crate) fn empty_for_tests(schema: &str, table: &str) -> TablePlan {
        TablePlan {
            schema: schema.into(),
            table: table.into(),
            columns: Vec::new(),
            key: Vec::new(),
            first_sql: String::new(),
            next_sql: String::new(),
        }
    }
}

impl PlannedColumn {
    /// The value the binlog decoder gives for this column, from what the SELECT read.
    pub fn to_binlog(&self, v: Value) -> Result<Value, ValueShapeError> {
        if v == Value::NULL {
            return Ok(v);
        }
        let bad = |v: &Value| ValueShapeError {
            column: self.name.clone(),
            column_type: self.declared.clone(),
            value: v.as_sql(false),
        };
        let int = |v: &Value| -> Option<i128> {
            match v {
                Value::Int(i) => Some(i128::from(*i)),
                Value::UInt(u) => Some(i128::from(*u)),
                Value::Bytes(b) => std::str::from_utf8(b).ok()?.trim().parse().ok(),
                Value::Double(d) if d.fract() == 0.0 => Some(*d as i128),
                _ => None,
            }
        };
        Ok(match self.conv {
            Conv::Plain => v,
            Conv::Int => match int(&v) {
                Some(i) => match i64::try_from(i) {
                    Ok(i) => Value::Int(i),
                    Err(_) => Value::UInt(u64::try_from(i).map_err(|_| bad(&v))?),
                },
                None => return Err(bad(&v)),
            },
            Conv::Int24 => match int(&v) {
                Some(i) => Value::Int((i as i64) & 0xFF_FFFF),
                None => return Err(bad(&v)),
            },
            Conv::Year => match int(&v) {
                Some(0) => Value::Bytes(b"1900".to_vec()),
                Some(y) => Value::Bytes(y.to_string().into_bytes()),
                None => return Err(bad(&v)),
            },
            Conv::Enum => match int(&v) {
                Some(i) => Value::Int(i64::try_from(i).map_err(|_| bad(&v))?),
                None => return Err(bad(&v)),
            },
            Conv::Set { bytes } => match int(&v) {
                Some(m) => {
                    let m = u64::try_from(m).map_err(|_| bad(&v))?;
                    Value::Bytes(m.to_le_bytes()[..bytes].to_vec())
                }
                None => return Err(bad(&v)),
            },
            Conv::Timestamp => {
                let text = match &v {
                    Value::Int(i) => i.to_string(),
                    Value::UInt(u) => u.to_string(),
                    Value::Bytes(b) => String::from_utf8_lossy(b).into_owned(),
                    _ => return Err(bad(&v)),
                };
                let (secs, frac) = text.split_once('.').unwrap_or((&text, ""));
                let secs: i64 = secs.parse().map_err(|_| bad(&v))?;
                let mut micros = String::from(frac);
                if micros.len() > 6 || !micros.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(bad(&v));
                }
                while micros.len() < 6 {
                    micros.push('0');
                }
                let micros: u32 = micros.parse().map_err(|_| bad(&v))?;
                // As mysql_common prints a TIMESTAMP2: seconds alone when the fraction is zero.
                Value::Bytes(if micros == 0 {
                    secs.to_string().into_bytes()
                } else {
                    format!("{secs}.{micros:06}").into_bytes()
                })
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn col(name: &str, ty: &str, key: bool) -> ColumnMeta {
        ColumnMeta {
            name: name.into(),
            column_type: ty.into(),
            is_primary_key: key,
            unsigned: ty.contains("unsigned"),
            charset: None,
            collation_id: None,
            enum_values: crate::schema::source::enum_labels(ty),
            nullable: !key,
        }
    }

    fn table(cols: Vec<ColumnMeta>) -> TableMeta {
        TableMeta {
            schema: "s".into(),
            table: "t".into(),
            columns: cols,
            charset: Some("utf8mb4".into()),
        }
    }

    #[test]
    fn types_map_to_the_binlog_types_and_metadata() {
        let cases: &[(&str, ColumnType, &[u8])] = &[
            ("int(11)", ColumnType::MYSQL_TYPE_LONG, &[]),
            ("decimal(10,2)", ColumnType::MYSQL_TYPE_NEWDECIMAL, &[10, 2]),
            ("bit(10)", ColumnType::MYSQL_TYPE_BIT, &[2, 1]),
            ("datetime(3)", ColumnType::MYSQL_TYPE_DATETIME2, &[3]),
            ("timestamp", ColumnType::MYSQL_TYPE_TIMESTAMP2, &[0]),
            ("char(3)", ColumnType::MYSQL_TYPE_STRING, &[0xFE, 12]),
            (
                "char(100)",
                ColumnType::MYSQL_TYPE_STRING,
                &[0xFE ^ 0x10, 144],
            ),
            ("varchar(20)", ColumnType::MYSQL_TYPE_VARCHAR, &[80, 0]),
            ("varbinary(300)", ColumnType::MYSQL_TYPE_VARCHAR, &[44, 1]),
            ("mediumtext", ColumnType::MYSQL_TYPE_BLOB, &[3]),
            ("enum('a','b')", ColumnType::MYSQL_TYPE_ENUM, &[0xF7, 1]),
            ("set('a','b')", ColumnType::MYSQL_TYPE_SET, &[0xF8, 1]),
            ("date", ColumnType::MYSQL_TYPE_NEWDATE, &[]),
        ];
        for (ty, want, meta) in cases {
            let c = plan_column(&col("c", ty, false), Some("utf8mb4")).unwrap();
            assert_eq!((c.column_type, c.meta.as_slice()), (*want, *meta), "{ty}");
        }
        assert!(plan_column(&col("c", "json", false), None).is_none());
    }

    #[test]
    fn the_select_reads_shaped_columns_then_the_raw_key() {
        let p = TablePlan::new(&table(vec![
            col("id", "int(11)", true),
            col("st", "enum('a','b')", false),
            col("ts", "timestamp(3)", false),
        ]))
        .unwrap();
        assert_eq!(
            p.next_sql,
            "SELECT `id`, `st`+0, UNIX_TIMESTAMP(`ts`), `id` FROM `s`.`t` WHERE (`id`) > (?) ORDER BY `id` LIMIT ?"
        );
        assert!(matches!(
            TablePlan::new(&table(vec![col("a", "int(11)", false)])),
            Err(PlanError::NoPrimaryKey { .. })
        ));
    }

    #[test]
    fn values_take_the_binlog_shape() {
        let p = TablePlan::new(&table(vec![
            col("id", "mediumint(9)", true),
            col("y", "year(4)", false),
            col("ts", "timestamp(3)", false),
            col("s", "set('a','b','c')", false),
            col("big", "bigint(20) unsigned", false),
        ]))
        .unwrap();
        let (row, key) = p
            .split_row(vec![
                Value::Int(-5),
                Value::Int(0),
                Value::Bytes(b"1700000000.120".to_vec()),
                Value::UInt(5),
                Value::UInt(u64::MAX),
                Value::Int(-5),
            ])
            .unwrap();
        assert_eq!(
            row,
            vec![
                Value::Int(0xFF_FFFB),
                Value::Bytes(b"1900".to_vec()),
                Value::Bytes(b"1700000000.120000".to_vec()),
                Value::Bytes(vec![5]),
                Value::UInt(u64::MAX),
            ]
        );
        assert_eq!(key, vec![Value::Int(-5)]);
        let ts = &p.columns[2];
        assert_eq!(
            ts.to_binlog(Value::Int(7)).unwrap(),
            Value::Bytes(b"7".to_vec())
        );
        assert_eq!(
            ts.to_binlog(Value::Bytes(b"7.000".to_vec())).unwrap(),
            Value::Bytes(b"7".to_vec())
        );
        assert!(ts.to_binlog(Value::Bytes(b"x".to_vec())).is_err());
        assert!(p.split_row(vec![Value::Int(1)]).is_err());
    }
}
