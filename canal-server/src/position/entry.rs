//! Where an event sits in the binlog, and the position every entry carries.

use super::binlog::BinlogPosition;
use super::gtid::GtidSet;

/// Where a binlog event sits, as the readers (replica stream, binlog file) report it: its file,
/// start offset and the offset after it.
#[derive(Debug, Clone)]
pub struct EventPos {
    /// Binlog file name.
    pub file: String,
    /// Start offset of the event.
    pub offset: u64,
    /// Offset just past the event.
    pub next_offset: u64,
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
    pub gtid: Option<GtidSet>,
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
