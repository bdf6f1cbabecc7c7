//! Entries and configs the store's unit tests build.

use bytes::Bytes;

use super::{BatchMode, StoreConfig, StoredEntry};
use crate::position::{BinlogPosition, EntryPosition};

pub(super) fn entry(offset: u64, boundary: bool, table: &str, size: usize) -> StoredEntry {
    StoredEntry {
        bytes: Bytes::from(vec![0u8; size]),
        position: EntryPosition {
            binlog: BinlogPosition::new("mysql-bin.000001", offset),
            next_offset: offset + 10,
            server_id: 1,
            timestamp_ms: 0,
            gtid: None,
            inclusive: false,
        },
        schema: if table.is_empty() {
            String::new()
        } else {
            "db".into()
        },
        table: table.into(),
        ack_point: boundary,
        snapshot: false,
        isolated_ddl: false,
        rows: u64::from(!boundary),
        execute_time: 0,
    }
}

pub(super) fn items(max_entries: usize) -> StoreConfig {
    StoreConfig {
        max_entries,
        batch_mode: BatchMode::Itemsize,
        ..Default::default()
    }
}
