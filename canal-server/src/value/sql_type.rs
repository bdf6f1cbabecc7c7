//! `java.sql.Types` codes and the metadata tests Canal applies to `mysqlType` (reference 3.1, 3.2).

/// The `java.sql.Types` codes Canal writes into `Column.sqlType`.
pub mod java_types {
    /// `Types.BIT`: BIT columns, non-NULL SET columns.
    pub const BIT: i32 = -7;
    /// `Types.TINYINT`: TINYINT (and unsigned TINYINT values ≤ 127).
    pub const TINYINT: i32 = -6;
    /// `Types.BIGINT`: BIGINT, and unsigned INT values ≥ 2^31.
    pub const BIGINT: i32 = -5;
    /// `Types.CHAR`: CHAR columns.
    pub const CHAR: i32 = 1;
    /// `Types.DECIMAL`: DECIMAL, and unsigned BIGINT values ≥ 2^63.
    pub const DECIMAL: i32 = 3;
    /// `Types.INTEGER`: INT, MEDIUMINT, ENUM, and unsigned SMALLINT values ≥ 2^15.
    pub const INTEGER: i32 = 4;
    /// `Types.SMALLINT`: SMALLINT, and unsigned TINYINT values ≥ 2^7.
    pub const SMALLINT: i32 = 5;
    /// `Types.REAL`: FLOAT.
    pub const REAL: i32 = 7;
    /// `Types.DOUBLE`: DOUBLE.
    pub const DOUBLE: i32 = 8;
    /// `Types.VARCHAR`: VARCHAR, YEAR, non-NULL JSON.
    pub const VARCHAR: i32 = 12;
    /// `Types.DATE`: DATE.
    pub const DATE: i32 = 91;
    /// `Types.TIME`: TIME.
    pub const TIME: i32 = 92;
    /// `Types.TIMESTAMP`: DATETIME and TIMESTAMP.
    pub const TIMESTAMP: i32 = 93;
    /// `Types.OTHER`: NULL JSON.
    pub const OTHER: i32 = 1111;
    /// `Types.BLOB`: binary strings, BLOBs, GEOMETRY, NULL SET.
    pub const BLOB: i32 = 2004;
    /// `Types.CLOB`: TEXT columns.
    pub const CLOB: i32 = 2005;
}

/// Canal's `isText`: the type text is exactly one of the four TEXT names, ignoring case.
pub(crate) fn is_text_type(mysql_type: &str) -> bool {
    ["tinytext", "text", "mediumtext", "longtext"]
        .iter()
        .any(|t| mysql_type.eq_ignore_ascii_case(t))
}

/// Canal's binary test for CHAR/VARCHAR-shaped columns: the type text contains `binary`.
pub(crate) fn is_binary_type(mysql_type: &str) -> bool {
    contains_ignore_case(mysql_type, "binary")
}

/// Canal's unsigned test: the type text contains `unsigned` (zerofill implies unsigned).
pub(crate) fn is_unsigned_type(mysql_type: &str) -> bool {
    contains_ignore_case(mysql_type, "unsigned") || contains_ignore_case(mysql_type, "zerofill")
}

fn contains_ignore_case(haystack: &str, needle: &str) -> bool {
    haystack
        .as_bytes()
        .windows(needle.len())
        .any(|w| w.eq_ignore_ascii_case(needle.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_tests() {
        for (ty, text) in [
            ("text", true),
            ("LONGTEXT", true),
            ("text(10)", false),
            ("blob", false),
        ] {
            assert_eq!(is_text_type(ty), text, "{ty}");
        }
        for (ty, binary) in [
            ("binary(16)", true),
            ("VARBINARY(4)", true),
            ("varchar(20)", false),
        ] {
            assert_eq!(is_binary_type(ty), binary, "{ty}");
        }
        for (ty, unsigned) in [
            ("int(10) unsigned", true),
            ("bigint(20) unsigned zerofill", true),
            ("INT(5) ZEROFILL", true),
            ("tinyint(1)", false),
        ] {
            assert_eq!(is_unsigned_type(ty), unsigned, "{ty}");
        }
    }
}
