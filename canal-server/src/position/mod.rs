//! Every binlog position, in one place:
//!
//! - [`BinlogPosition`] (`binlog.rs`): `file:offset`, ordered only within one binlog series.
//! - [`EventPos`] and [`EntryPosition`] (`entry.rs`): where a read event sits, and the position
//!   every entry carries (with its server id, time, GTID set and whether it is a start point).
//! - [`Cursor`] and [`resume_cursor`] (`cursor.rs`): a destination's stored cursor and the one
//!   minimum-cursor rule that says where it resumes.
//! - [`GtidSet`] and the GTID values the parser updates (`gtid.rs`).
//! - `log_position.rs`: the conversions to and from canal-protocol's
//!   [`LogPosition`](canal_protocol::position::LogPosition), Canal's cursor JSON.

mod binlog;
mod cursor;
mod entry;
pub mod gtid;
mod log_position;

pub use binlog::{split_file, BinlogPosition, ParsePositionError};
pub use cursor::{resume_cursor, Cursor};
pub use entry::{EntryPosition, EventPos};
pub use gtid::GtidSet;
