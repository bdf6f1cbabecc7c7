//! GTID positions: MariaDB's `domain-server-seq` lists and MySQL's `uuid:interval` sets, as the
//! [`GtidSet`] text a position carries (the form Canal writes into `Header.gtid` and cursors) and
//! as values the parser updates ([`GtidState`]).

use std::collections::BTreeMap;
use std::fmt;

/// A GTID text that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid GTID {text:?}: {reason}")]
pub struct GtidError {
    /// The text given.
    pub text: String,
    /// What is wrong with it.
    pub reason: &'static str,
}

fn err(text: &str, reason: &'static str) -> GtidError {
    GtidError {
        text: text.to_string(),
        reason,
    }
}

/// One MariaDB GTID: `domain-server-seq`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct MariaGtid {
    /// Replication domain.
    pub domain: u32,
    /// Originating server id.
    pub server: u32,
    /// Sequence number within the domain.
    pub seq: u64,
}

impl fmt::Display for MariaGtid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}-{}", self.domain, self.server, self.seq)
    }
}

impl std::str::FromStr for MariaGtid {
    type Err = GtidError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut it = s.trim().splitn(3, '-');
        let (Some(d), Some(sv), Some(sq)) = (it.next(), it.next(), it.next()) else {
            return Err(err(s, "expected domain-server-seq"));
        };
        Ok(Self {
            domain: d.parse().map_err(|_| err(s, "bad domain id"))?,
            server: sv.parse().map_err(|_| err(s, "bad server id"))?,
            seq: sq.parse().map_err(|_| err(s, "bad sequence number"))?,
        })
    }
}

/// A MariaDB GTID position: the last GTID per domain (what `@@gtid_binlog_pos` and
/// `@slave_connect_state` hold), e.g. `0-1-100,1-2-7`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MariaGtidList {
    by_domain: BTreeMap<u32, MariaGtid>,
}

impl MariaGtidList {
    /// Parses a comma-separated list; empty text is the empty position.
    pub fn parse(text: &str) -> Result<Self, GtidError> {
        let mut list = Self::default();
        for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let g: MariaGtid = part.parse()?;
            if list.by_domain.insert(g.domain, g).is_some() {
                return Err(err(text, "two GTIDs for one domain"));
            }
        }
        Ok(list)
    }

    /// Records `gtid` as the latest of its domain.
    pub fn update(&mut self, gtid: MariaGtid) {
        self.by_domain.insert(gtid.domain, gtid);
    }

    /// Whether no domain has a GTID.
    pub fn is_empty(&self) -> bool {
        self.by_domain.is_empty()
    }

    /// The GTIDs, in domain order.
    pub fn iter(&self) -> impl Iterator<Item = &MariaGtid> {
        self.by_domain.values()
    }
}

impl fmt::Display for MariaGtidList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for g in self.by_domain.values() {
            if !first {
                f.write_str(",")?;
            }
            first = false;
            write!(f, "{g}")?;
        }
        Ok(())
    }
}

/// A MySQL GTID set: per source UUID, sorted disjoint closed intervals of transaction numbers,
/// e.g. `3e11fa47-71ca-11e1-9e33-c80aa9429562:1-5:7`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MysqlGtidSet {
    sets: BTreeMap<String, Vec<(u64, u64)>>,
}

impl MysqlGtidSet {
    /// Parses MySQL's text form (whitespace and newlines allowed, as `@@gtid_executed` prints).
    pub fn parse(text: &str) -> Result<Self, GtidError> {
        let mut set = Self::default();
        for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let mut fields = part.split(':');
            let uuid = fields.next().unwrap_or_default().trim().to_lowercase();
            if uuid.len() != 36 || uuid.chars().filter(|c| *c == '-').count() != 4 {
                return Err(err(text, "bad source UUID"));
            }
            for iv in fields {
                let iv = iv.trim();
                let (a, b) = match iv.split_once('-') {
                    Some((a, b)) => (a, b),
                    None => (iv, iv),
                };
                let a: u64 = a.parse().map_err(|_| err(text, "bad interval start"))?;
                let b: u64 = b.parse().map_err(|_| err(text, "bad interval end"))?;
                if a == 0 || b < a {
                    return Err(err(text, "empty or zero interval"));
                }
                set.add_range(&uuid, a, b);
            }
        }
        Ok(set)
    }

    /// Adds transaction `gno` of source `uuid` (lower-cased).
    pub fn add(&mut self, uuid: &str, gno: u64) {
        self.add_range(&uuid.to_lowercase(), gno, gno);
    }

    fn add_range(&mut self, uuid: &str, a: u64, b: u64) {
        let ivs = self.sets.entry(uuid.to_string()).or_default();
        ivs.push((a, b));
        ivs.sort_unstable();
        let mut merged: Vec<(u64, u64)> = Vec::with_capacity(ivs.len());
        for &(s, e) in ivs.iter() {
            match merged.last_mut() {
                Some(last) if s <= last.1.saturating_add(1) => last.1 = last.1.max(e),
                _ => merged.push((s, e)),
            }
        }
        *ivs = merged;
    }

    /// Whether transaction `gno` of `uuid` is in the set.
    pub fn contains(&self, uuid: &str, gno: u64) -> bool {
        self.sets
            .get(&uuid.to_lowercase())
            .is_some_and(|ivs| ivs.iter().any(|&(a, b)| a <= gno && gno <= b))
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.sets.is_empty()
    }

    /// `(uuid, intervals)` pairs for COM_BINLOG_DUMP_GTID.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &[(u64, u64)])> {
        self.sets.iter().map(|(k, v)| (k.as_str(), v.as_slice()))
    }
}

impl fmt::Display for MysqlGtidSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for (uuid, ivs) in &self.sets {
            if !first {
                f.write_str(",")?;
            }
            first = false;
            f.write_str(uuid)?;
            for &(a, b) in ivs {
                if a == b {
                    write!(f, ":{a}")?;
                } else {
                    write!(f, ":{a}-{b}")?;
                }
            }
        }
        Ok(())
    }
}

/// The executed GTID state the parser keeps in GTID mode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GtidState {
    /// MariaDB: last GTID per domain.
    Maria(MariaGtidList),
    /// MySQL: set of executed transactions.
    Mysql(MysqlGtidSet),
}

impl fmt::Display for GtidState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GtidState::Maria(l) => l.fmt(f),
            GtidState::Mysql(s) => s.fmt(f),
        }
    }
}

/// An executed GTID set as it travels with a position: in an entry's position, a stored cursor
/// and Canal's cursor JSON (`gtid`), e.g. `0-1-100` (MariaDB) or `uuid:1-5` (MySQL).
///
/// It keeps the text exactly as read or formatted, so a cursor written back is byte-identical, and
/// because a stored cursor does not say which flavor its source is: it becomes a [`GtidState`]
/// ([`MariaGtidList::parse`] / [`MysqlGtidSet::parse`]) when a stream starts and the flavor is
/// known. The empty set is `""` (Canal writes `"gtid":""` outside GTID mode).
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(transparent)]
pub struct GtidSet(String);

impl GtidSet {
    /// The set written as `text` (not checked: see the type's doc).
    pub fn new(text: impl Into<String>) -> Self {
        Self(text.into())
    }

    /// The text form.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether the text is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl From<&GtidState> for GtidSet {
    fn from(state: &GtidState) -> Self {
        Self(state.to_string())
    }
}

impl fmt::Display for GtidSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Formats a 16-byte MySQL source id as a lower-case UUID.
pub fn uuid_text(sid: &[u8; 16]) -> String {
    let h = hex::encode(sid);
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maria_list_round_trip_and_update() {
        let mut l = MariaGtidList::parse("1-2-7, 0-1-100").unwrap();
        assert_eq!(l.to_string(), "0-1-100,1-2-7");
        l.update("0-3-101".parse().unwrap());
        assert_eq!(l.to_string(), "0-3-101,1-2-7");
        assert!(MariaGtidList::parse("0-1-1,0-2-2").is_err());
        assert!(MariaGtidList::parse("0-1").is_err());
        assert!(MariaGtidList::parse("").unwrap().is_empty());
    }

    #[test]
    fn mysql_set_merges_and_prints_like_mysql() {
        let u = "3E11FA47-71CA-11E1-9E33-C80AA9429562";
        let mut s = MysqlGtidSet::parse(&format!("{u}:1-5:7")).unwrap();
        assert_eq!(s.to_string(), "3e11fa47-71ca-11e1-9e33-c80aa9429562:1-5:7");
        s.add(u, 6);
        assert_eq!(s.to_string(), "3e11fa47-71ca-11e1-9e33-c80aa9429562:1-7");
        assert!(s.contains(u, 3));
        assert!(!s.contains(u, 8));
        assert!(MysqlGtidSet::parse("nope:1").is_err());
        assert!(MysqlGtidSet::parse(&format!("{u}:5-1")).is_err());
    }

    #[test]
    fn uuid_formatting() {
        let sid = [
            0x3e, 0x11, 0xfa, 0x47, 0x71, 0xca, 0x11, 0xe1, 0x9e, 0x33, 0xc8, 0x0a, 0xa9, 0x42,
            0x95, 0x62,
        ];
        assert_eq!(uuid_text(&sid), "3e11fa47-71ca-11e1-9e33-c80aa9429562");
    }
}
