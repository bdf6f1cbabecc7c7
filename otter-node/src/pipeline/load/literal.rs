//! SQL literals and identifiers from Canal's text, chosen by `java.sql.Types` code and validated:
//! nothing from the input reaches the SQL text unvalidated or unencoded.

use crate::batch::ColumnValue;
use crate::pipeline::load::LoadError;

/// `java.sql.Types` codes Load distinguishes.
mod types {
    pub const BIT: i32 = -7;
    pub const TINYINT: i32 = -6;
    pub const SMALLINT: i32 = 5;
    pub const INTEGER: i32 = 4;
    pub const BIGINT: i32 = -5;
    pub const DECIMAL: i32 = 3;
    pub const NUMERIC: i32 = 2;
    pub const REAL: i32 = 7;
    pub const FLOAT: i32 = 6;
    pub const DOUBLE: i32 = 8;
    pub const BINARY: i32 = -2;
    pub const VARBINARY: i32 = -3;
    pub const LONGVARBINARY: i32 = -4;
    pub const BLOB: i32 = 2004;
}

/// Whether values of this `java.sql.Types` code are bytes (Canal's ISO-8859-1 text, one char per
/// byte) rather than text.
pub(crate) fn is_binary(sql_type: i32) -> bool {
    matches!(
        sql_type,
        types::BINARY | types::VARBINARY | types::LONGVARBINARY | types::BLOB
    )
}

/// Appends `` `ident` `` with backticks doubled.
pub(crate) fn push_ident(out: &mut String, ident: &str, table: &str) -> Result<(), LoadError> {
    if ident.is_empty() || ident.contains('\0') {
        return Err(LoadError::BadIdentifier {
            table: table.to_string(),
            ident: ident.to_string(),
            reason: if ident.is_empty() {
                "empty".into()
            } else {
                "contains NUL".into()
            },
        });
    }
    out.push('`');
    for ch in ident.chars() {
        if ch == '`' {
            out.push('`');
        }
        out.push(ch);
    }
    out.push('`');
    Ok(())
}

fn is_integer(s: &str) -> bool {
    let digits = s.strip_prefix(['-', '+']).unwrap_or(s);
    !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())
}

/// `[+-]` (digits [`.` digits*] | `.` digits) [(`e`|`E`) [+-] digits]
fn is_number(s: &str) -> bool {
    let s = s.strip_prefix(['-', '+']).unwrap_or(s);
    let (mantissa, exponent) = match s.find(['e', 'E']) {
        Some(i) => (&s[..i], Some(&s[i + 1..])),
        None => (s, None),
    };
    let (int, frac) = match mantissa.split_once('.') {
        Some((i, f)) => (i, Some(f)),
        None => (mantissa, None),
    };
    let all_digits = |t: &str| t.bytes().all(|b| b.is_ascii_digit());
    let mantissa_ok = all_digits(int)
        && frac.is_none_or(all_digits)
        && !(int.is_empty() && frac.is_none_or(str::is_empty));
    let exponent_ok = exponent.is_none_or(|e| {
        let e = e.strip_prefix(['-', '+']).unwrap_or(e);
        !e.is_empty() && all_digits(e)
    });
    mantissa_ok && exponent_ok
}

/// Characters a `'…'` literal may hold as they are: no quote, backslash, control or non-ASCII
/// character, so the literal means the same under every `sql_mode` and connection charset.
fn is_plain(s: &str) -> bool {
    s.bytes()
        .all(|b| b.is_ascii_alphanumeric() || b" -:._+,/@#=".contains(&b))
}

const HEX: &[u8; 16] = b"0123456789ABCDEF";

fn push_hex(out: &mut String, bytes: impl Iterator<Item = u8>) {
    for b in bytes {
        out.push(HEX[usize::from(b >> 4)] as char);
        out.push(HEX[usize::from(b & 0xF)] as char);
    }
}

fn preview(value: &str) -> String {
    let mut p: String = value.chars().take(40).collect();
    if p.len() < value.len() {
        p.push('…');
    }
    format!("{p:?}")
}

/// Appends the SQL literal of `col` (`table` names it in errors).
pub(crate) fn push_literal(
    out: &mut String,
    col: &ColumnValue,
    table: &str,
) -> Result<(), LoadError> {
    let Some(value) = col.value.as_deref() else {
        out.push_str("NULL");
        return Ok(());
    };
    let bad = |reason: String| LoadError::BadValue {
        table: table.to_string(),
        column: col.name.clone(),
        sql_type: col.sql_type,
        reason,
    };
    match col.sql_type {
        types::TINYINT | types::SMALLINT | types::INTEGER | types::BIGINT | types::BIT => {
            if !is_integer(value) {
                return Err(bad(format!("not an integer: {}", preview(value))));
            }
            out.push_str(value);
        }
        types::DECIMAL | types::NUMERIC | types::REAL | types::FLOAT | types::DOUBLE => {
            if !is_number(value) {
                return Err(bad(format!("not a number: {}", preview(value))));
            }
            out.push_str(value);
        }
        types::BINARY | types::VARBINARY | types::LONGVARBINARY | types::BLOB => {
            if value.is_empty() {
                out.push_str("''");
                return Ok(());
            }
            if let Some(c) = value.chars().find(|&c| u32::from(c) > 0xFF) {
                return Err(bad(format!(
                    "binary value holds U+{:04X}, which is not an ISO-8859-1 byte",
                    u32::from(c)
                )));
            }
            out.push_str("X'");
            // Every char is ≤ U+00FF (checked above), so the cast keeps it whole.
            push_hex(out, value.chars().map(|c| u32::from(c) as u8));
            out.push('\'');
        }
        _ => {
            if is_plain(value) {
                out.push('\'');
                out.push_str(value);
                out.push('\'');
            } else {
                out.push_str("_utf8mb4 X'");
                push_hex(out, value.bytes());
                out.push('\'');
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::load::test_rows::*;

    fn lit(value: Option<&str>, sql_type: i32) -> Result<String, LoadError> {
        let mut out = String::new();
        push_literal(&mut out, &col("c", value, sql_type, false), "s.t")?;
        Ok(out)
    }

    #[test]
    fn numeric_literals_are_validated() {
        assert_eq!(lit(None, 4).unwrap(), "NULL");
        assert_eq!(lit(Some("-42"), 4).unwrap(), "-42");
        assert_eq!(
            lit(Some("18446744073709551615"), -5).unwrap(),
            "18446744073709551615"
        );
        assert_eq!(lit(Some("5"), -7).unwrap(), "5");
        for ok in ["1.5", "-0.25", "1.0E-4", "3", ".5", "5.", "+1e10"] {
            assert_eq!(lit(Some(ok), 8).unwrap(), ok);
            assert_eq!(lit(Some(ok), 3).unwrap(), ok);
        }
        for bad in [
            "",
            "-",
            "1 OR 1=1",
            "1;DROP TABLE t",
            "0x10",
            "NaN",
            "Infinity",
            "1e",
            ".",
            "--1",
            "1.2.3",
            "1e+",
        ] {
            assert!(
                matches!(lit(Some(bad), 8), Err(LoadError::BadValue { .. })),
                "{bad}"
            );
        }
        for bad in ["1.5", "", "1e3", "'1'"] {
            assert!(
                matches!(lit(Some(bad), 4), Err(LoadError::BadValue { .. })),
                "{bad}"
            );
        }
        let e = lit(Some("abc"), 4).unwrap_err().to_string();
        assert!(
            e.contains("s.t") && e.contains("`c`") && e.contains("not an integer"),
            "{e}"
        );
    }

    #[test]
    fn binary_literals_are_hex_of_latin1_bytes() {
        assert_eq!(lit(Some("\u{0}\u{ff}a'"), -3).unwrap(), "X'00FF6127'");
        assert_eq!(lit(Some(""), 2004).unwrap(), "''");
        assert!(matches!(
            lit(Some("€"), 2004),
            Err(LoadError::BadValue { .. })
        ));
    }

    #[test]
    fn string_literals_are_plain_or_utf8_hex() {
        assert_eq!(
            lit(Some("2024-01-02 03:04:05.123"), 93).unwrap(),
            "'2024-01-02 03:04:05.123'"
        );
        assert_eq!(lit(Some(""), 12).unwrap(), "''");
        assert_eq!(lit(Some("it's"), 12).unwrap(), "_utf8mb4 X'69742773'");
        assert_eq!(lit(Some("a\\b"), 12).unwrap(), "_utf8mb4 X'615C62'");
        assert_eq!(lit(Some("😀\0"), 2005).unwrap(), "_utf8mb4 X'F09F988000'");
    }

    #[test]
    fn identifiers_double_backticks() {
        let mut out = String::new();
        push_ident(&mut out, "we`ird", "s.t").unwrap();
        assert_eq!(out, "`we``ird`");
        assert!(push_ident(&mut out, "a\0", "s.t").is_err());
        assert!(push_ident(&mut out, "", "s.t").is_err());
    }
}
