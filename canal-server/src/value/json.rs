//! JSON column text (reference 3.5), rendered from mysql_common's binary JSON view.
//!
//! Canal's printer: objects `{"k": v, "k2": v2}` in storage order, arrays `[v1, v2]`, integers in
//! decimal, doubles with Java `Double.toString`, strings escaped as described at [`escape_into`].
//! Opaque scalars: DECIMAL as a bare number (Canal's DECIMAL text), DATE/DATETIME/TIMESTAMP and
//! TIME as quoted strings (see [`super::temporal::json_datetime`]), anything else as the quoted,
//! escaped bytes decoded with the connection charset.
//!
//! Partial updates (`PARTIAL_UPDATE_ROWS_EVENT`) print as nested `JSON_REPLACE` / `JSON_INSERT` /
//! `JSON_ARRAY_INSERT` / `JSON_REMOVE` calls on the column name, like `mysqlbinlog -v`.

use std::io;

use mysql_common::binlog::{
    decimal::Decimal,
    jsonb::{self, OpaqueValue},
    jsondiff::{JsonDiff, JsonDiffOperation},
};
use mysql_common::constants::ColumnType;

use super::charset::{latin1, Charset};
use super::decimal::canal_decimal;
use super::java_float::java_double_to_string;
use super::temporal::{json_datetime, json_time};

/// Nesting deeper than this is rejected (MySQL itself stops at 100), so that a malformed value
/// cannot exhaust the stack.
const MAX_DEPTH: usize = 150;

/// How JSON scalars are printed.
#[derive(Debug, Clone, Copy)]
pub(crate) struct JsonStyle {
    /// Charset for strings, keys and opaque bytes (Canal: the connection charset).
    pub charset: Charset,
    /// Print DECIMALs with all their stored fractional digits instead of Canal's text.
    pub exact_decimal: bool,
    /// Print a TIME of exactly 100 hours as `100:…` instead of Canal's `00:…`.
    pub fix_100_hours: bool,
}

/// Renders a whole JSON document.
pub(crate) fn render_document(value: &jsonb::Value<'_>, style: &JsonStyle) -> io::Result<String> {
    let mut out = String::new();
    render(value, style, &mut out, 0)?;
    Ok(out)
}

/// Renders a partial update as Canal does: consecutive operations of the same kind share one
/// call, calls nest in order, e.g. `JSON_REMOVE(JSON_REPLACE(col, '$.a', 1, '$.b', 2), '$.c')`.
/// An empty diff prints just the column name.
pub(crate) fn render_diff(
    column: &str,
    diffs: &[JsonDiff<'_>],
    style: &JsonStyle,
) -> io::Result<String> {
    let names: Vec<&str> = diffs.iter().map(operation_name).collect();
    let mut out = String::new();
    for i in (0..names.len()).rev() {
        if i == 0 || names[i - 1] != names[i] {
            out.push_str(names[i]);
            out.push('(');
        }
    }
    out.push_str(column);
    if diffs.is_empty() {
        return Ok(out);
    }
    out.push_str(", ");
    for (i, diff) in diffs.iter().enumerate() {
        let path = diff.path();
        let path = &path[..path.iter().position(|&b| b == 0).unwrap_or(path.len())];
        out.push('\'');
        out.push_str(&latin1(path));
        out.push('\'');
        if diff.operation() != JsonDiffOperation::REMOVE {
            out.push_str(", ");
            match diff.value() {
                Some(value) => render(value, style, &mut out, 0)?,
                None => out.push_str("null"),
            }
        }
        let last = i + 1 == diffs.len();
        if last || names[i + 1] != names[i] {
            out.push(')');
        }
        if !last {
            out.push_str(", ");
        }
    }
    Ok(out)
}

fn operation_name(diff: &JsonDiff<'_>) -> &'static str {
    match diff.operation() {
        JsonDiffOperation::REPLACE => "JSON_REPLACE",
        JsonDiffOperation::INSERT if diff.path().last() == Some(&b']') => "JSON_ARRAY_INSERT",
        JsonDiffOperation::INSERT => "JSON_INSERT",
        JsonDiffOperation::REMOVE => "JSON_REMOVE",
    }
}

fn render(
    value: &jsonb::Value<'_>,
    style: &JsonStyle,
    out: &mut String,
    depth: usize,
) -> io::Result<()> {
    if depth > MAX_DEPTH {
        return Err(invalid("JSON nested too deeply"));
    }
    use jsonb::Value as J;
    match value {
        J::Null => out.push_str("null"),
        J::Bool(true) => out.push_str("true"),
        J::Bool(false) => out.push_str("false"),
        J::I16(x) => out.push_str(&x.to_string()),
        J::U16(x) => out.push_str(&x.to_string()),
        J::I32(x) => out.push_str(&x.to_string()),
        J::U32(x) => out.push_str(&x.to_string()),
        J::I64(x) => out.push_str(&x.to_string()),
        J::U64(x) => out.push_str(&x.to_string()),
        J::F64(x) => out.push_str(&java_double_to_string(*x)),
        J::String(s) => quoted(&style.charset.decode(s.str_raw()), out),
        J::SmallArray(a) => array(a.iter(), style, out, depth)?,
        J::LargeArray(a) => array(a.iter(), style, out, depth)?,
        J::SmallObject(o) => object(o.iter(), style, out, depth)?,
        J::LargeObject(o) => object(o.iter(), style, out, depth)?,
        J::Opaque(o) => opaque(o, style, out)?,
    }
    Ok(())
}

fn array<'a>(
    items: impl Iterator<Item = io::Result<jsonb::Value<'a>>>,
    style: &JsonStyle,
    out: &mut String,
    depth: usize,
) -> io::Result<()> {
    out.push('[');
    for (i, item) in items.enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        render(&item?, style, out, depth + 1)?;
    }
    out.push(']');
    Ok(())
}

fn object<'a>(
    entries: impl Iterator<Item = io::Result<(jsonb::ObjectKey<'a>, jsonb::Value<'a>)>>,
    style: &JsonStyle,
    out: &mut String,
    depth: usize,
) -> io::Result<()> {
    out.push('{');
    for (i, entry) in entries.enumerate() {
        let (key, item) = entry?;
        if i > 0 {
            out.push_str(", ");
        }
        quoted(&style.charset.decode(key.value_raw()), out);
        out.push_str(": ");
        render(&item, style, out, depth + 1)?;
    }
    out.push('}');
    Ok(())
}

fn opaque(o: &OpaqueValue<'_>, style: &JsonStyle, out: &mut String) -> io::Result<()> {
    let data = o.data_raw();
    match o.value_type() {
        ColumnType::MYSQL_TYPE_NEWDECIMAL => out.push_str(&opaque_decimal(data, style)?),
        ColumnType::MYSQL_TYPE_TIME => {
            quoted_raw(&json_time(packed(data)?, style.fix_100_hours), out);
        }
        ColumnType::MYSQL_TYPE_DATE
        | ColumnType::MYSQL_TYPE_DATETIME
        | ColumnType::MYSQL_TYPE_TIMESTAMP => quoted_raw(&json_datetime(packed(data)?), out),
        _ => quoted(&style.charset.decode(data), out),
    }
    Ok(())
}

/// An opaque DECIMAL: precision byte, scale byte, then MySQL's binary decimal.
fn opaque_decimal(data: &[u8], style: &JsonStyle) -> io::Result<String> {
    let [precision, scale, bin @ ..] = data else {
        return Err(invalid("JSON DECIMAL shorter than its header"));
    };
    let (precision, scale) = (usize::from(*precision), usize::from(*scale));
    if scale > precision || precision > 65 {
        return Err(invalid("JSON DECIMAL with impossible precision/scale"));
    }
    // Out-of-range digit groups overflow inside mysql_common's read_bin (found by fuzzing).
    crate::binlog::rows::check_decimal(bin, &[precision as u8, scale as u8], 0)
        .map_err(|_| invalid("JSON DECIMAL digit group out of range"))?;
    let text = Decimal::read_bin(bin, precision, scale, false)?.to_string();
    canal_decimal(&text, precision, scale, style.exact_decimal).map_err(invalid)
}

fn packed(data: &[u8]) -> io::Result<i64> {
    data.get(..8)
        .and_then(|b| <[u8; 8]>::try_from(b).ok())
        .map(i64::from_le_bytes)
        .ok_or_else(|| invalid("JSON temporal value shorter than 8 bytes"))
}

fn invalid(reason: &'static str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, reason)
}

fn quoted(text: &str, out: &mut String) {
    out.push('"');
    escape_into(text, out);
    out.push('"');
}

fn quoted_raw(text: &str, out: &mut String) {
    out.push('"');
    out.push_str(text);
    out.push('"');
}

/// Canal's JSON string escaping: `"` `\` newline CR tab get backslash escapes; other code points
/// below 0x20 and 0x7F..=0xA0 become `\u00xx` (lowercase hex); everything else is literal.
pub(crate) fn escape_into(text: &str, out: &mut String) {
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{0}'..='\u{1f}' | '\u{7f}'..='\u{a0}' => {
                out.push_str(&format!("\\u{:04x}", u32::from(c)));
            }
            c => out.push(c),
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use mysql_common::{io::ParseBuf, proto::MyDeserialize};

    const STYLE: JsonStyle = JsonStyle {
        charset: Charset::Utf8,
        exact_decimal: false,
        fix_100_hours: false,
    };

    /// A tiny writer for MySQL's binary JSON (small format only), enough to build test values.
    pub(crate) enum B {
        Null,
        Bool(bool),
        Int(i64),
        Uint(u64),
        Double(f64),
        Str(&'static str),
        Opaque(u8, Vec<u8>),
        Arr(Vec<B>),
        Obj(Vec<(&'static str, B)>),
    }

    impl B {
        /// The whole document: type byte then value.
        pub(crate) fn document(&self) -> Vec<u8> {
            let (ty, body) = self.encode();
            let mut out = vec![ty];
            out.extend(body);
            out
        }

        fn encode(&self) -> (u8, Vec<u8>) {
            match self {
                B::Null => (0x04, vec![0]),
                B::Bool(true) => (0x04, vec![1]),
                B::Bool(false) => (0x04, vec![2]),
                B::Int(i) => (0x09, i.to_le_bytes().to_vec()),
                B::Uint(u) => (0x0A, u.to_le_bytes().to_vec()),
                B::Double(d) => (0x0B, d.to_le_bytes().to_vec()),
                B::Str(s) => {
                    let mut v = varlen(s.len());
                    v.extend_from_slice(s.as_bytes());
                    (0x0C, v)
                }
                B::Opaque(t, data) => {
                    let mut v = vec![*t];
                    v.extend(varlen(data.len()));
                    v.extend_from_slice(data);
                    (0x0F, v)
                }
                B::Arr(items) => (0x02, container(None, items.iter().collect())),
                B::Obj(entries) => {
                    let keys = entries.iter().map(|(k, _)| *k).collect();
                    (
                        0x00,
                        container(Some(keys), entries.iter().map(|(_, v)| v).collect()),
                    )
                }
            }
        }
    }

    fn varlen(mut n: usize) -> Vec<u8> {
        let mut out = Vec::new();
        loop {
            let byte = (n & 0x7f) as u8;
            n >>= 7;
            if n == 0 {
                out.push(byte);
                return out;
            }
            out.push(byte | 0x80);
        }
    }

    fn container(keys: Option<Vec<&str>>, values: Vec<&B>) -> Vec<u8> {
        let n = values.len();
        let key_entries = keys.as_ref().map_or(0, |k| k.len() * 4);
        let header = 4 + key_entries + n * 3;
        let mut tail = Vec::new();
        let mut key_table = Vec::new();
        if let Some(keys) = &keys {
            for k in keys {
                key_table.extend(((header + tail.len()) as u16).to_le_bytes());
                key_table.extend((k.len() as u16).to_le_bytes());
                tail.extend_from_slice(k.as_bytes());
            }
        }
        let mut value_table = Vec::new();
        for v in values {
            let (ty, body) = v.encode();
            value_table.push(ty);
            if ty == 0x04 {
                value_table.extend([body[0], 0]);
            } else {
                value_table.extend(((header + tail.len()) as u16).to_le_bytes());
                tail.extend(body);
            }
        }
        let total = header + tail.len();
        let mut out = Vec::new();
        out.extend((n as u16).to_le_bytes());
        out.extend((total as u16).to_le_bytes());
        out.extend(key_table);
        out.extend(value_table);
        out.extend(tail);
        out
    }

    pub(crate) fn parse(doc: &[u8]) -> jsonb::Value<'_> {
        jsonb::Value::deserialize((), &mut ParseBuf(doc)).expect("test JSON parses")
    }

    fn text(b: B) -> String {
        let doc = b.document();
        render_document(&parse(&doc), &STYLE).unwrap()
    }

    #[test]
    fn documents() {
        let doc = B::Obj(vec![
            ("a", B::Int(1)),
            ("b", B::Arr(vec![B::Bool(true), B::Null, B::Str("x")])),
            ("c", B::Double(1.5)),
        ]);
        assert_eq!(text(doc), r#"{"a": 1, "b": [true, null, "x"], "c": 1.5}"#);
        let doc = B::Obj(vec![
            ("f", B::Bool(false)),
            ("big", B::Int(12_345_678_901)),
            ("neg", B::Int(-5)),
        ]);
        assert_eq!(text(doc), r#"{"f": false, "big": 12345678901, "neg": -5}"#);
        assert_eq!(text(B::Str("str")), r#""str""#);
        assert_eq!(text(B::Double(3.0)), "3.0");
        assert_eq!(text(B::Double(2.0)), "2.0");
        assert_eq!(text(B::Double(1e21)), "1.0E21");
        assert_eq!(text(B::Uint(u64::MAX)), "18446744073709551615");
        assert_eq!(text(B::Null), "null");
        assert_eq!(text(B::Arr(vec![])), "[]");
        assert_eq!(text(B::Obj(vec![])), "{}");
    }

    #[test]
    fn string_escaping() {
        let got = text(B::Str(
            "q\"b\\n\nr\rt\t\u{1}\u{8}\u{1f}\u{7f}\u{a0}\u{a1}/é😀",
        ));
        assert_eq!(
            got,
            "\"q\\\"b\\\\n\\nr\\rt\\t\\u0001\\u0008\\u001f\\u007f\\u00a0\u{a1}/é😀\""
        );
    }

    #[test]
    fn opaque_values() {
        // DECIMAL(10,2) 1.00 → Canal's 1.0; 1.50 stays.
        let dec = |digits: [u8; 5]| {
            let mut v = vec![10, 2];
            v.extend(digits);
            B::Opaque(246, v)
        };
        // 1.00: intg 8 digits → 4 bytes (value 1), frac 2 digits → 1 byte; sign bit set.
        assert_eq!(text(dec([0x80, 0, 0, 1, 0])), "1.0");
        assert_eq!(text(dec([0x80, 0, 0, 1, 50])), "1.50");
        let packed_dt: i64 =
            ((((2024 * 13 + 1) << 5 | 2) << 17 | (3 << 12 | 4 << 6 | 5)) << 24) + 6;
        let dt = B::Opaque(12, packed_dt.to_le_bytes().to_vec());
        assert_eq!(text(dt), r#""2024-01-02 03:04:05.000006""#);
        let t = B::Opaque(
            11,
            (((1i64 << 12) | (2 << 6) | 3) << 24).to_le_bytes().to_vec(),
        );
        assert_eq!(text(t), r#""01:02:03.000000""#);
        assert_eq!(text(B::Opaque(253, b"a\"b".to_vec())), r#""a\"b""#);
        assert!(render_document(&parse(&B::Opaque(11, vec![1, 2]).document()), &STYLE).is_err());
    }

    #[test]
    fn too_deep_is_an_error() {
        let mut doc = B::Null;
        for _ in 0..200 {
            doc = B::Arr(vec![doc]);
        }
        let bytes = doc.document();
        assert!(render_document(&parse(&bytes), &STYLE).is_err());
    }

    fn diff(op: u8, path: &str, value: Option<B>) -> Vec<u8> {
        let mut out = vec![op, path.len() as u8];
        out.extend_from_slice(path.as_bytes());
        if let Some(v) = value {
            let doc = v.document();
            out.push(doc.len() as u8);
            out.extend(doc);
        }
        out
    }

    #[test]
    fn partial_updates() {
        let mut raw = diff(0, "$.a", Some(B::Int(1)));
        raw.extend(diff(0, "$.b", Some(B::Str("x"))));
        raw.extend(diff(2, "$.c", None));
        raw.extend(diff(1, "$.d[0]", Some(B::Bool(true))));
        raw.extend(diff(1, "$.e", Some(B::Null)));
        let mut buf = ParseBuf(&raw);
        let mut diffs = Vec::new();
        while !buf.is_empty() {
            diffs.push(JsonDiff::deserialize((), &mut buf).unwrap());
        }
        assert_eq!(
            render_diff("j", &diffs, &STYLE).unwrap(),
            "JSON_INSERT(JSON_ARRAY_INSERT(JSON_REMOVE(JSON_REPLACE(j, '$.a', 1, '$.b', \"x\"), \
             '$.c'), '$.d[0]', true), '$.e', null)"
        );
        assert_eq!(
            render_diff("j", &diffs[..1], &STYLE).unwrap(),
            "JSON_REPLACE(j, '$.a', 1)"
        );
        assert_eq!(render_diff("j", &[], &STYLE).unwrap(), "j");
    }

    #[test]
    fn opaque_decimal_digit_groups_checked() {
        // DECIMAL(9,1) 12345678.5 as a JSON opaque value: precision, scale, binary decimal.
        let good = [9, 1, 0x80, 0xbc, 0x61, 0x4e, 0x05];
        assert_eq!(opaque_decimal(&good, &STYLE).unwrap(), "12345678.5");
        // Found by fuzzing (binlog_rows): a fractional group of 127 for one digit overflowed
        // inside mysql_common's Decimal::read_bin (outside any panic guard).
        let bad = [9, 1, 0x80, 0xbc, 0x61, 0x4e, 0x7f];
        assert!(opaque_decimal(&bad, &STYLE).is_err());
    }
}
