//! Binlog coordinates and the position every entry carries.

use std::cmp::Ordering;
use std::fmt;
use std::str::FromStr;

/// A byte offset in a named binlog file (`mysql-bin.000003:4567`).
///
/// Ordering compares the numeric suffix of the file name first, so `mysql-bin.000010` sorts after
/// `mysql-bin.000009`; files with different base names compare by name (callers that care use
/// [`BinlogPosition::try_cmp`]).
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

    /// Compares two positions, or `None` when their files have different base names.
    pub fn try_cmp(&self, other: &Self) -> Option<Ordering> {
        let (a_base, a_n) = self.split_file();
        let (b_base, b_n) = other.split_file();
        if a_base != b_base {
            return None;
        }
        Some(a_n.cmp(&b_n).then(self.offset.cmp(&other.offset)))
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
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for BinlogPosition {
    fn cmp(&self, other: &Self) -> Ordering {
        self.try_cmp(other).unwrap_or_else(|| {
            self.file
                .cmp(&other.file)
                .then(self.offset.cmp(&other.offset))
        })
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

/// Where an entry came from, as Canal's cursor records it (design.md "Positions").
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct EntryPosition {
    /// File and start offset of the binlog event the entry was built from.
    pub binlog: BinlogPosition,
    /// Offset just past that event: where reading resumes after it.
    pub next_offset: u64,
    /// `server_id` from the event header.
    pub server_id: u32,
    /// Event timestamp in milliseconds (seconds × 1000).
    pub timestamp_ms: i64,
    /// Executed GTID set including this transaction, when GTID tracking is on.
    pub gtid: Option<String>,
    /// A start point rather than a delivered event: nothing at or after `binlog` has been
    /// delivered, so resuming here must not skip the event at `binlog` (the implicit cursor of a
    /// client that subscribed and has acked nothing yet).
    #[serde(default)]
    pub inclusive: bool,
}

impl EntryPosition {
    /// The position to resume from so that this event is not read again.
    pub fn resume_point(&self) -> BinlogPosition {
        BinlogPosition::new(self.binlog.file.clone(), self.next_offset)
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
    }

    #[test]
    fn rejects_bad_text() {
        assert!("mysql-bin.000001".parse::<BinlogPosition>().is_err());
        assert!(":4".parse::<BinlogPosition>().is_err());
        assert!("f:x".parse::<BinlogPosition>().is_err());
    }
}
