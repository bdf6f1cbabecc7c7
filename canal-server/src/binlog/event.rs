//! Guards around one binlog event before anything trusts it: checksum verification, panic
//! containment for mysql_common's decoders, and the MariaDB events mysql_common does not parse.

#[cfg(not(fuzzing))]
use std::panic::{catch_unwind, AssertUnwindSafe};

use mysql_common::binlog::consts::BinlogChecksumAlg;
use mysql_common::binlog::events::Event;

/// Raw MariaDB event type codes (not in mysql_common's `EventType`).
pub mod mariadb {
    /// ANNOTATE_ROWS_EVENT: the statement text before its rows events.
    pub const ANNOTATE_ROWS: u8 = 160;
    /// BINLOG_CHECKPOINT_EVENT.
    pub const BINLOG_CHECKPOINT: u8 = 161;
    /// GTID_EVENT: starts every transaction (replaces BEGIN) or standalone statement.
    pub const GTID: u8 = 162;
    /// GTID_LIST_EVENT: the GTID state at the start of a binlog file.
    pub const GTID_LIST: u8 = 163;
    /// START_ENCRYPTION_EVENT.
    pub const START_ENCRYPTION: u8 = 164;
    /// QUERY_COMPRESSED_EVENT and the compressed rows events (165..=171).
    pub const FIRST_COMPRESSED: u8 = 165;
    /// Last compressed rows event type.
    pub const LAST_COMPRESSED: u8 = 171;
}

/// An event that must not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EventError {
    /// The CRC32 in the event footer does not match its bytes.
    #[error("checksum mismatch: event says {expected:#010x}, bytes give {actual:#010x}")]
    Checksum {
        /// CRC stored in the event.
        expected: u32,
        /// CRC computed over the event.
        actual: u32,
    },
    /// The event body is shorter than its type requires, or otherwise malformed.
    #[error("malformed event (type {event_type}): {reason}")]
    Malformed {
        /// Raw event type.
        event_type: u8,
        /// What is wrong.
        reason: String,
    },
}

/// Verifies the event's CRC32 when the stream is checksummed. mysql_common reads the checksum
/// but never checks it.
pub fn verify_checksum(ev: &Event) -> Result<(), EventError> {
    let Some(stored) = ev.checksum() else {
        return Ok(());
    };
    if !matches!(
        ev.footer().get_checksum_alg(),
        Ok(Some(BinlogChecksumAlg::BINLOG_CHECKSUM_ALG_CRC32))
    ) {
        return Ok(());
    }
    let expected = u32::from_le_bytes(stored);
    let actual = ev.calc_checksum(BinlogChecksumAlg::BINLOG_CHECKSUM_ALG_CRC32);
    if expected != actual {
        return Err(EventError::Checksum { expected, actual });
    }
    Ok(())
}

/// Runs a decoder on untrusted bytes and turns a panic inside it into an error.
///
/// mysql_common indexes into buffers in a few places without bounds checks; a corrupt event must
/// become a typed error that names the position, never a crashed destination.
///
/// Under `cargo fuzz` (`--cfg fuzzing`) nothing is caught, so the fuzzer sees every panic and it
/// can be prevented by validation before the decoder runs.
pub fn guarded<T>(event_type: u8, f: impl FnOnce() -> T) -> Result<T, EventError> {
    #[cfg(fuzzing)]
    {
        let _ = event_type;
        return Ok(f());
    }
    #[cfg(not(fuzzing))]
    catch_unwind(AssertUnwindSafe(f)).map_err(|panic| {
        let reason = panic
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "decoder panicked".to_string());
        EventError::Malformed {
            event_type,
            reason: format!("decoder panicked: {reason}"),
        }
    })
}

/// A MariaDB GTID_EVENT (0xa2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MariaGtidEvent {
    /// Sequence number.
    pub seq: u64,
    /// Replication domain.
    pub domain: u32,
    /// Flags (`FL_STANDALONE` = 1: a statement without BEGIN/COMMIT, such as DDL).
    pub flags: u8,
    /// The XA transaction id of an XA group, as MySQL prints it: `X'6731',X'',1`.
    pub xid: Option<String>,
}

impl MariaGtidEvent {
    /// Flag: the event group is a single statement with no BEGIN/COMMIT (DDL).
    pub const FL_STANDALONE: u8 = 1;
    /// Flag: a commit id follows (group commit).
    pub const FL_GROUP_COMMIT_ID: u8 = 2;
    /// Flag: XA transaction prepared (XA PREPARE group).
    pub const FL_PREPARED_XA: u8 = 64;
    /// Flag: XA transaction completed (XA COMMIT/ROLLBACK group).
    pub const FL_COMPLETED_XA: u8 = 128;

    /// Parses the body (after the common header, before the checksum).
    pub fn parse(data: &[u8]) -> Result<Self, EventError> {
        if data.len() < 13 {
            return Err(EventError::Malformed {
                event_type: mariadb::GTID,
                reason: format!("GTID event body of {} bytes, need 13", data.len()),
            });
        }
        let seq = u64::from_le_bytes(data[0..8].try_into().unwrap_or_default());
        let domain = u32::from_le_bytes(data[8..12].try_into().unwrap_or_default());
        let flags = data[12];
        let mut rest = &data[13..];
        if flags & Self::FL_GROUP_COMMIT_ID != 0 {
            rest = rest.get(8..).unwrap_or_default();
        }
        let xid = if flags & (Self::FL_PREPARED_XA | Self::FL_COMPLETED_XA) != 0 {
            parse_xid(rest)
        } else {
            None
        };
        Ok(Self {
            seq,
            domain,
            flags,
            xid,
        })
    }

    /// Whether this group has no BEGIN/COMMIT (a DDL or other standalone statement).
    pub fn is_standalone(&self) -> bool {
        self.flags & Self::FL_STANDALONE != 0
    }
}

/// `formatID u32, gtrid_length u8, bqual_length u8, data` → `X'gtrid',X'bqual',formatID`.
fn parse_xid(b: &[u8]) -> Option<String> {
    let format_id = i32::from_le_bytes(b.get(0..4)?.try_into().ok()?);
    let g = *b.get(4)? as usize;
    let q = *b.get(5)? as usize;
    let data = b.get(6..6 + g + q)?;
    Some(format!(
        "X'{}',X'{}',{format_id}",
        hex::encode(&data[..g]),
        hex::encode(&data[g..])
    ))
}

/// A MariaDB GTID_LIST_EVENT (0xa3): `(domain, server, seq)` triples.
pub fn parse_maria_gtid_list(data: &[u8]) -> Result<Vec<(u32, u32, u64)>, EventError> {
    let bad = |reason: String| EventError::Malformed {
        event_type: mariadb::GTID_LIST,
        reason,
    };
    if data.len() < 4 {
        return Err(bad(format!("GTID list body of {} bytes", data.len())));
    }
    let count =
        (u32::from_le_bytes(data[0..4].try_into().unwrap_or_default()) & 0x0fff_ffff) as usize;
    let need = 4 + count.saturating_mul(16);
    if data.len() < need {
        return Err(bad(format!(
            "GTID list of {count} entries needs {need} bytes, has {}",
            data.len()
        )));
    }
    Ok((0..count)
        .map(|i| {
            let o = 4 + i * 16;
            let d = u32::from_le_bytes(data[o..o + 4].try_into().unwrap_or_default());
            let s = u32::from_le_bytes(data[o + 4..o + 8].try_into().unwrap_or_default());
            let q = u64::from_le_bytes(data[o + 8..o + 16].try_into().unwrap_or_default());
            (d, s, q)
        })
        .collect())
}

/// A MariaDB ANNOTATE_ROWS_EVENT body is the statement text.
pub fn parse_annotate_rows(data: &[u8]) -> String {
    String::from_utf8_lossy(data).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maria_gtid_parses_and_rejects_short() {
        let mut body = Vec::new();
        body.extend_from_slice(&42u64.to_le_bytes());
        body.extend_from_slice(&3u32.to_le_bytes());
        body.push(1);
        let g = MariaGtidEvent::parse(&body).unwrap();
        assert_eq!((g.seq, g.domain, g.is_standalone()), (42, 3, true));
        assert_eq!(g.xid, None);
        let mut xa = body.clone();
        xa[12] = MariaGtidEvent::FL_PREPARED_XA;
        xa.extend_from_slice(&1i32.to_le_bytes());
        xa.extend_from_slice(&[2, 0, b'g', b'1']);
        assert_eq!(
            MariaGtidEvent::parse(&xa).unwrap().xid.as_deref(),
            Some("X'6731',X'',1")
        );
        xa.truncate(xa.len() - 1);
        assert_eq!(
            MariaGtidEvent::parse(&xa).unwrap().xid,
            None,
            "truncated XID is ignored"
        );
        assert!(MariaGtidEvent::parse(&body[..5]).is_err());
    }

    #[test]
    fn gtid_list_bounds_checked() {
        let mut body = 2u32.to_le_bytes().to_vec();
        for (d, s, q) in [(0u32, 1u32, 5u64), (1, 2, 9)] {
            body.extend_from_slice(&d.to_le_bytes());
            body.extend_from_slice(&s.to_le_bytes());
            body.extend_from_slice(&q.to_le_bytes());
        }
        assert_eq!(
            parse_maria_gtid_list(&body).unwrap(),
            vec![(0, 1, 5), (1, 2, 9)]
        );
        assert!(parse_maria_gtid_list(&body[..20]).is_err());
        // A huge count does not allocate or panic.
        assert!(parse_maria_gtid_list(&0x0fff_ffffu32.to_le_bytes()).is_err());
    }

    #[test]
    fn guarded_turns_panics_into_errors() {
        let r: Result<(), _> = guarded(19, || panic!("index out of bounds"));
        assert!(matches!(
            r,
            Err(EventError::Malformed { event_type: 19, .. })
        ));
    }
}
