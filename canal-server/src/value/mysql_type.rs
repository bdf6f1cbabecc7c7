//! A `mysqlType` text derived from the binlog alone, for columns without schema metadata.
//!
//! Canal leaves `mysqlType` unset when it has no table metadata (reference 2.5); deriving one
//! is our opt-in improvement. The text follows MySQL 8's `COLUMN_TYPE` spelling (no integer
//! display widths). What the binlog does not carry is left out: CHAR/VARCHAR lengths when the
//! collation is unknown, ENUM/SET members when labels are unknown, and `zerofill`.

use mysql_common::collations::{Collation, CollationId};
use mysql_common::constants::ColumnType;

use super::charset::is_binary_collation;

/// Everything the derivation needs about one column. `column_type` is already resolved (ENUM/SET
/// rather than STRING) and `meta` has been checked for the type's length.
pub(crate) struct Derive<'a> {
    pub column_type: ColumnType,
    pub meta: &'a [u8],
    pub unsigned: bool,
    pub collation: Option<u16>,
    pub labels: Option<&'a [String]>,
}

pub(crate) fn derive(d: &Derive<'_>) -> Option<String> {
    use ColumnType::*;
    let meta = |i: usize| d.meta.get(i).copied().unwrap_or(0);
    let binary = d.collation.is_some_and(is_binary_collation);
    let numeric = |name: &str| {
        if d.unsigned {
            format!("{name} unsigned")
        } else {
            name.to_owned()
        }
    };
    let with_fsp = |name: &str| match meta(0) {
        0 => name.to_owned(),
        fsp => format!("{name}({fsp})"),
    };
    let text = match d.column_type {
        MYSQL_TYPE_TINY => numeric("tinyint"),
        MYSQL_TYPE_SHORT => numeric("smallint"),
        MYSQL_TYPE_INT24 => numeric("mediumint"),
        MYSQL_TYPE_LONG => numeric("int"),
        MYSQL_TYPE_LONGLONG => numeric("bigint"),
        MYSQL_TYPE_NEWDECIMAL => numeric(&format!("decimal({},{})", meta(0), meta(1))),
        MYSQL_TYPE_FLOAT => numeric("float"),
        MYSQL_TYPE_DOUBLE => numeric("double"),
        MYSQL_TYPE_BIT => format!("bit({})", u32::from(meta(1)) * 8 + u32::from(meta(0))),
        MYSQL_TYPE_YEAR => "year".to_owned(),
        MYSQL_TYPE_DATE | MYSQL_TYPE_NEWDATE => "date".to_owned(),
        MYSQL_TYPE_TIME => "time".to_owned(),
        MYSQL_TYPE_TIME2 => with_fsp("time"),
        MYSQL_TYPE_DATETIME => "datetime".to_owned(),
        MYSQL_TYPE_DATETIME2 => with_fsp("datetime"),
        MYSQL_TYPE_TIMESTAMP => "timestamp".to_owned(),
        MYSQL_TYPE_TIMESTAMP2 => with_fsp("timestamp"),
        MYSQL_TYPE_VARCHAR | MYSQL_TYPE_VAR_STRING => {
            let bytes = usize::from(meta(0)) | usize::from(meta(1)) << 8;
            sized(
                if binary { "varbinary" } else { "varchar" },
                bytes,
                d.collation,
            )
        }
        MYSQL_TYPE_STRING => sized(
            if binary { "binary" } else { "char" },
            string_length(d.meta),
            d.collation,
        ),
        MYSQL_TYPE_ENUM => members("enum", d.labels),
        MYSQL_TYPE_SET => members("set", d.labels),
        MYSQL_TYPE_TINY_BLOB | MYSQL_TYPE_BLOB | MYSQL_TYPE_MEDIUM_BLOB | MYSQL_TYPE_LONG_BLOB => {
            let text = d.collation.is_some_and(|c| !is_binary_collation(c));
            let prefix = match meta(0) {
                1 => "tiny",
                3 => "medium",
                4 => "long",
                _ => "",
            };
            format!("{prefix}{}", if text { "text" } else { "blob" })
        }
        MYSQL_TYPE_JSON => "json".to_owned(),
        MYSQL_TYPE_GEOMETRY => "geometry".to_owned(),
        MYSQL_TYPE_VECTOR => "vector".to_owned(),
        _ => return None,
    };
    Some(text)
}

/// The byte length of a CHAR/BINARY column from its STRING metadata (including the long-CHAR
/// encoding where two high bits of the length live in the type byte).
pub(crate) fn string_length(meta: &[u8]) -> usize {
    match meta {
        [b0, b1, ..] if b0 & 0x30 != 0x30 => {
            usize::from(*b1) | (usize::from((b0 & 0x30) ^ 0x30) << 4)
        }
        [_, b1, ..] => usize::from(*b1),
        _ => 0,
    }
}

/// `name(chars)` when the collation gives the bytes-per-character, else just `name`.
fn sized(name: &str, bytes: usize, collation: Option<u16>) -> String {
    let max_len = collation.map(|c| usize::from(Collation::from(CollationId::from(c)).max_len()));
    match max_len {
        Some(n) if n > 0 => format!("{name}({})", bytes / n),
        _ => name.to_owned(),
    }
}

fn members(name: &str, labels: Option<&[String]>) -> String {
    let Some(labels) = labels else {
        return name.to_owned();
    };
    let quoted: Vec<String> = labels
        .iter()
        .map(|l| format!("'{}'", l.replace('\\', "\\\\").replace('\'', "''")))
        .collect();
    format!("{name}({})", quoted.join(","))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(column_type: ColumnType, meta: &[u8], collation: Option<u16>) -> Option<String> {
        derive(&Derive {
            column_type,
            meta,
            unsigned: false,
            collation,
            labels: None,
        })
    }

    #[test]
    fn derived_types() {
        use ColumnType::*;
        assert_eq!(d(MYSQL_TYPE_LONG, &[], None).as_deref(), Some("int"));
        let unsigned = Derive {
            column_type: MYSQL_TYPE_LONGLONG,
            meta: &[],
            unsigned: true,
            collation: None,
            labels: None,
        };
        assert_eq!(derive(&unsigned).as_deref(), Some("bigint unsigned"));
        assert_eq!(
            d(MYSQL_TYPE_NEWDECIMAL, &[10, 2], None).as_deref(),
            Some("decimal(10,2)")
        );
        assert_eq!(d(MYSQL_TYPE_BIT, &[1, 0], None).as_deref(), Some("bit(1)"));
        assert_eq!(d(MYSQL_TYPE_BIT, &[0, 8], None).as_deref(), Some("bit(64)"));
        assert_eq!(
            d(MYSQL_TYPE_DATETIME2, &[3], None).as_deref(),
            Some("datetime(3)")
        );
        assert_eq!(
            d(MYSQL_TYPE_TIMESTAMP2, &[0], None).as_deref(),
            Some("timestamp")
        );
        assert_eq!(
            d(MYSQL_TYPE_VARCHAR, &[80, 0], Some(255)).as_deref(),
            Some("varchar(20)")
        );
        assert_eq!(
            d(MYSQL_TYPE_VARCHAR, &[80, 0], None).as_deref(),
            Some("varchar")
        );
        assert_eq!(
            d(MYSQL_TYPE_VARCHAR, &[0, 1], Some(63)).as_deref(),
            Some("varbinary(256)")
        );
        assert_eq!(
            d(MYSQL_TYPE_STRING, &[0xFE, 40], Some(255)).as_deref(),
            Some("char(10)")
        );
        assert_eq!(
            d(MYSQL_TYPE_STRING, &[0xFE, 16], Some(63)).as_deref(),
            Some("binary(16)")
        );
        // char(255) utf8mb4: 1020 bytes, long-CHAR encoding.
        assert_eq!(
            d(MYSQL_TYPE_STRING, &[0xCE, 0xFC], Some(255)).as_deref(),
            Some("char(255)")
        );
        assert_eq!(d(MYSQL_TYPE_BLOB, &[2], Some(255)).as_deref(), Some("text"));
        assert_eq!(
            d(MYSQL_TYPE_BLOB, &[4], Some(63)).as_deref(),
            Some("longblob")
        );
        assert_eq!(d(MYSQL_TYPE_BLOB, &[1], None).as_deref(), Some("tinyblob"));
        assert_eq!(
            d(MYSQL_TYPE_ENUM, &[0xF7, 1], None).as_deref(),
            Some("enum")
        );
        let labels = vec!["a".to_owned(), "it's".to_owned()];
        let with_labels = Derive {
            column_type: MYSQL_TYPE_SET,
            meta: &[0xF8, 1],
            unsigned: false,
            collation: None,
            labels: Some(&labels),
        };
        assert_eq!(derive(&with_labels).as_deref(), Some("set('a','it''s')"));
        assert_eq!(d(MYSQL_TYPE_JSON, &[4], None).as_deref(), Some("json"));
        assert_eq!(d(MYSQL_TYPE_NULL, &[], None), None);
    }
}
