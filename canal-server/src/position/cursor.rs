//! A destination's stored cursor, and the one rule that picks where a destination resumes: the
//! minimum of its clients' acked cursors.

use std::cmp::Ordering;

use super::binlog::BinlogPosition;
use super::entry::EntryPosition;
use super::gtid::GtidSet;

/// A stored cursor: the last acked boundary of a destination, where its stream resumes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor {
    /// Start offset of the boundary event (Canal's cursor `position`), in its file.
    pub position: BinlogPosition,
    /// Executed GTID set at that boundary, when GTID mode is on.
    pub gtid: Option<GtidSet>,
    /// `position` is a start point nothing was delivered from yet: resume at it, skip nothing.
    pub inclusive: bool,
}

impl Cursor {
    /// The cursor a client's acked position stands for (server id and time are not kept).
    pub fn of(p: &EntryPosition) -> Self {
        Self {
            position: p.binlog.clone(),
            gtid: p.gtid.clone(),
            inclusive: p.inclusive,
        }
    }

    /// Where a stream resumed from this cursor begins, as an entry position (no server id, no
    /// time): the cursor a client gets before it acks anything.
    pub fn stream_start(&self) -> EntryPosition {
        EntryPosition {
            binlog: self.position.clone(),
            next_offset: self.position.offset,
            server_id: 0,
            timestamp_ms: 0,
            gtid: self.gtid.clone(),
            inclusive: self.inclusive,
        }
    }
}

/// Orders cursors by where a stream resumed from them starts: by position, and at the same
/// position a start point (`inclusive`, nothing delivered) before a delivered event. Cursors of
/// different binlog series fall back to [`BinlogPosition::total_cmp`].
fn resume_order(a: &EntryPosition, b: &EntryPosition) -> Ordering {
    a.binlog
        .total_cmp(&b.binlog)
        .then((!a.inclusive).cmp(&!b.inclusive))
}

/// Where a destination resumes: the minimum of its clients' acked cursors, so no client misses
/// an entry. `None` (start from the configured start) when nobody subscribed or some client has
/// no cursor yet. Of equal cursors the first wins.
pub fn resume_cursor<'a>(
    cursors: impl IntoIterator<Item = Option<&'a EntryPosition>>,
) -> Option<Cursor> {
    let mut min: Option<&EntryPosition> = None;
    for cur in cursors {
        let cur = cur?;
        if min.is_none_or(|m| resume_order(cur, m) == Ordering::Less) {
            min = Some(cur);
        }
    }
    min.map(Cursor::of)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pos(offset: u64, inclusive: bool) -> EntryPosition {
        Cursor {
            position: BinlogPosition::new("mysql-bin.000002", offset),
            gtid: None,
            inclusive,
        }
        .stream_start()
    }

    #[test]
    fn minimum_of_all_cursors_or_none() {
        assert_eq!(resume_cursor([]), None, "nobody subscribed");
        let (a, b) = (pos(400, false), pos(120, false));
        assert_eq!(
            resume_cursor([Some(&a), None]),
            None,
            "a client without cursor"
        );
        assert_eq!(resume_cursor([Some(&a), Some(&b)]), Some(Cursor::of(&b)));
        let start = pos(120, true);
        assert_eq!(
            resume_cursor([Some(&b), Some(&start), Some(&a)]),
            Some(Cursor::of(&start)),
            "a start point precedes a delivered event at the same position"
        );
    }
}
