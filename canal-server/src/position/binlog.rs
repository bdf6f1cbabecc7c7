//! A byte offset in a named binlog file, ordered only against positions of the same binlog series.

use std::cmp::Ordering;
use std::fmt;
use std::str::FromStr;

/// A byte offset in a named binlog file (`mysql-bin.000003:4567`).
///
/// Positions of one binlog series (same base name) are ordered by the numeric suffix of the file
/// name, then by offset, so `mysql-bin.000010` sorts after `mysql-bin.000009`. Positions of
/// different series (`mysql-bin.*` and `other.*`) are not ordered: `partial_cmp` returns `None`,
/// so `<` and `<=` are false both ways. Code that must order them anyway (a stored list that
/// has to stay sorted) says so by calling [`BinlogPosition::total_cmp`].
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct BinlogPosition {
    /// Binlog file name, without directory.
    pub file: String,
    /// Byte offset in that file.
    pub offset: u64,
}

/// A position text that does not parse as `file:offset`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid binlog position {0:?}: expected `file:offset`, e.g. `mysql-bin.000003:4`")]
pub struct ParsePositionError(pub String);

impl BinlogPosition {
    /// Creates a position.
    pub fn new(file: impl Into<String>, offset: u64) -> Self {
        Self {
            file: file.into(),
            offset,
        }
    }

    /// `(base name, numeric suffix)` of the file name, e.g. `("mysql-bin", 3)`.
    pub fn split_file(&self) -> (&str, Option<u64>) {
        split_file(&self.file)
    }

    /// Compares two positions, or `None` when their files have different base names. Equal
    /// only for equal positions (two spellings of one file number, `x.03` and `x.3`, are told
    /// apart by their text after the offset).
    pub fn try_cmp(&self, other: &Self) -> Option<Ordering> {
        let (a_base, a_n) = self.split_file();
        let (b_base, b_n) = other.split_file();
        if a_base != b_base {
            return None;
        }
        Some(
            a_n.cmp(&b_n)
                .then(self.offset.cmp(&other.offset))
                .then_with(|| self.file.cmp(&other.file)),
        )
    }

    /// A total order: [`BinlogPosition::try_cmp`] within a binlog series; across series, by
    /// file name then offset. The fallback is stable but says nothing about which position was
    /// written first: use it only where a collection must stay sorted (the schema history, the
    /// clients' minimum cursor), never to decide what was delivered.
    pub fn total_cmp(&self, other: &Self) -> Ordering {
        self.try_cmp(other).unwrap_or_else(|| {
            self.file
                .cmp(&other.file)
                .then(self.offset.cmp(&other.offset))
        })
    }
}

/// Splits `mysql-bin.000003` into `("mysql-bin", Some(3))`.
pub fn split_file(file: &str) -> (&str, Option<u64>) {
    match file.rsplit_once('.') {
        Some((base, suffix))
            if !suffix.is_empty() && suffix.bytes().all(|b| b.is_ascii_digit()) =>
        {
            (base, suffix.parse().ok())
        }
        _ => (file, None),
    }
}

impl PartialOrd for BinlogPosition {
    /// [`BinlogPosition::try_cmp`]: `None` across binlog series.
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        self.try_cmp(other)
    }
}

impl fmt::Display for BinlogPosition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.file, self.offset)
    }
}

impl FromStr for BinlogPosition {
    type Err = ParsePositionError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (file, offset) = s
            .rsplit_once(':')
            .ok_or_else(|| ParsePositionError(s.to_string()))?;
        let offset = offset
            .trim()
            .parse()
            .map_err(|_| ParsePositionError(s.to_string()))?;
        if file.trim().is_empty() {
            return Err(ParsePositionError(s.to_string()));
        }
        Ok(Self::new(file.trim(), offset))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn orders_by_numeric_suffix() {
        let a: BinlogPosition = "mysql-bin.000009:900".parse().unwrap();
        let b: BinlogPosition = "mysql-bin.000010:4".parse().unwrap();
        assert!(a < b);
        assert_eq!(a.to_string(), "mysql-bin.000009:900");
        assert_eq!(
            a.try_cmp(&BinlogPosition::new("other.000001", 4)),
            None,
            "different base names do not compare"
        );
        let other = BinlogPosition::new("other.000001", 4);
        assert_eq!(a.partial_cmp(&other), None, "so `<` and `>` are both false");
        assert_eq!(a.total_cmp(&other), std::cmp::Ordering::Less, "by name");
        assert_eq!(
            BinlogPosition::new("", 0).total_cmp(&a),
            std::cmp::Ordering::Less,
            "the empty origin sorts first"
        );
    }

    #[test]
    fn rejects_bad_text() {
        assert!("mysql-bin.000001".parse::<BinlogPosition>().is_err());
        assert!(":4".parse::<BinlogPosition>().is_err());
        assert!("f:x".parse::<BinlogPosition>().is_err());
    }
}
