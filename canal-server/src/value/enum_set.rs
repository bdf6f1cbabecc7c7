//! ENUM and SET text (reference 3.2 rows ENUM, SET).
//!
//! Canal prints an ENUM as its 1-based member index and a SET as its member bitmask, both in
//! decimal. Printing member labels instead is our opt-in improvement; labels come from the
//! TABLE_MAP (`binlog_row_metadata=FULL`) or from the declared type `enum('a','b')`.

use std::borrow::Cow;

/// ENUM label for a 1-based index: index 0 is MySQL's invalid-value member `''`; an index past
/// the known labels gives `None` (the caller falls back to the number).
pub(crate) fn enum_label<S: AsRef<str>>(index: u64, labels: &[S]) -> Option<&str> {
    match index {
        0 => Some(""),
        i => usize::try_from(i - 1)
            .ok()
            .and_then(|i| labels.get(i))
            .map(AsRef::as_ref),
    }
}

/// SET labels for a bitmask, comma-separated in member order; `None` if a bit has no label.
pub(crate) fn set_labels<S: AsRef<str>>(mask: u64, labels: &[S]) -> Option<String> {
    let mut out = String::new();
    for bit in 0..64 {
        if mask & (1u64 << bit) == 0 {
            continue;
        }
        let label = labels.get(bit)?;
        if !out.is_empty() {
            out.push(',');
        }
        out.push_str(label.as_ref());
    }
    Some(out)
}

/// Member labels from a declared type such as `enum('a','b''c')` or `SET('x','y')`.
///
/// Accepts MySQL's quoting in `SHOW CREATE TABLE`/`COLUMN_TYPE`: `''` and backslash escapes
/// inside single quotes. Returns `None` when the text is not an ENUM/SET type or is malformed.
pub(crate) fn labels_from_declared_type(declared: &str) -> Option<Vec<String>> {
    let t = declared.trim();
    let lower = t.get(..4).map(str::to_ascii_lowercase);
    let rest = match lower.as_deref() {
        Some("enum") => &t[4..],
        Some("set(") => &t[3..],
        _ => return None,
    };
    let inner = rest.trim_start().strip_prefix('(')?;
    let mut labels = Vec::new();
    let mut chars = inner.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        if chars.next()? != '\'' {
            return None;
        }
        let mut label = String::new();
        loop {
            match chars.next()? {
                '\'' if chars.peek() == Some(&'\'') => {
                    chars.next();
                    label.push('\'');
                }
                '\'' => break,
                '\\' => label.push(match chars.next()? {
                    'n' => '\n',
                    'r' => '\r',
                    't' => '\t',
                    '0' => '\0',
                    'Z' => '\u{1A}',
                    other => other,
                }),
                c => label.push(c),
            }
        }
        labels.push(label);
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        match chars.next()? {
            ',' => continue,
            ')' => return Some(labels),
            _ => return None,
        }
    }
}

/// The labels to use for a column: the given ones, else those parsed from the declared type.
pub(crate) fn column_labels<'a>(
    given: Option<&'a [String]>,
    declared: Option<&str>,
) -> Option<Cow<'a, [String]>> {
    match given {
        Some(labels) => Some(Cow::Borrowed(labels)),
        None => declared.and_then(labels_from_declared_type).map(Cow::Owned),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_declared_labels() {
        assert_eq!(
            labels_from_declared_type("enum('a','b','c')"),
            Some(vec!["a".into(), "b".into(), "c".into()])
        );
        assert_eq!(
            labels_from_declared_type("SET('x', 'it''s','a\\\\b','')"),
            Some(vec!["x".into(), "it's".into(), "a\\b".into(), "".into()])
        );
        assert_eq!(
            labels_from_declared_type("enum('a,b')"),
            Some(vec!["a,b".into()])
        );
        assert_eq!(labels_from_declared_type("varchar(10)"), None);
        assert_eq!(labels_from_declared_type("enum('a'"), None);
        assert_eq!(labels_from_declared_type("enum(a)"), None);
        assert_eq!(labels_from_declared_type("enum"), None);
    }

    #[test]
    fn labels_for_values() {
        let labels = ["a", "b", "c"];
        assert_eq!(enum_label(2, &labels), Some("b"));
        assert_eq!(enum_label(0, &labels), Some(""));
        assert_eq!(enum_label(4, &labels), None);
        assert_eq!(set_labels(5, &labels).as_deref(), Some("a,c"));
        assert_eq!(set_labels(0, &labels).as_deref(), Some(""));
        assert_eq!(set_labels(8, &labels), None);
    }
}
