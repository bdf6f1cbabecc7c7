//! The converter's side of snapshots in the stream (see [`crate::snapshot`]): the signal table's
//! window marks open and close windows; inside a window the keys of the snapshotted table's row
//! changes are recorded; at the close mark the chunk's rows whose keys did not change are
//! written as INSERT entries (header property `snapshot=true`) at the mark's position.

use std::collections::HashSet;

use mysql_common::binlog::value::BinlogValue;

use super::row_change::RowWriter;
use super::*;
use crate::snapshot::{Chunk, Outcome, SnapshotBridge, WINDOW_CLOSE, WINDOW_OPEN};

/// Most rows in one snapshot entry…
const ROWS_PER_ENTRY: usize = 256;
/// …and most bytes. Consumers batch by entries (otter's Select by 1000 entries), so a snapshot
/// entry stays near a binlog rows event's size (8 KiB by default), a few rows more.
const BYTES_PER_ENTRY: usize = 64 * 1024;

/// Header property marking snapshot rows.
pub const SNAPSHOT_PROP: &str = "snapshot";

impl Converter {
    /// Rows of the signal table: window marks for the snapshot, never entries themselves.
    pub(super) fn on_signal_rows(
        &mut self,
        ev: &Event,
        pos: &EventPos,
        at: &BinlogPosition,
        rows: &RowsEventData<'_>,
        schemas: &mut dyn SchemaLookup,
    ) -> Result<Vec<ParsedEntry>, ConvertError> {
        let Some(bridge) = self.opts.snapshot.clone() else {
            return Ok(Vec::new());
        };
        if !matches!(
            rows,
            RowsEventData::WriteRowsEvent(_) | RowsEventData::WriteRowsEventV1(_)
        ) {
            return Ok(Vec::new());
        }
        let marks = match self.read_marks(ev, rows) {
            Some(m) => m,
            None => {
                tracing::warn!(%at, "unreadable snapshot signal row; ignored");
                return Ok(Vec::new());
            }
        };
        let mut out = Vec::new();
        for (ty, id) in marks {
            match ty.as_str() {
                WINDOW_OPEN => bridge.open_window(&id),
                WINDOW_CLOSE => {
                    if let Some(r) = bridge.close_window(&id) {
                        out.extend(self.emit_chunk(ev, pos, at, &bridge, &id, r, schemas));
                    }
                }
                _ => {}
            }
        }
        Ok(out)
    }

    /// `(type, data)` of each inserted signal row, or `None` if the rows do not decode.
    fn read_marks(&self, ev: &Event, rows: &RowsEventData<'_>) -> Option<Vec<(String, String)>> {
        let mapped = self.tables.get(&rows.table_id())?;
        let find = |name: &str, default: usize| {
            mapped
                .cols
                .iter()
                .position(|c| c.name.eq_ignore_ascii_case(name))
                .unwrap_or(default)
        };
        let (ty_idx, data_idx) = (find("type", 1), find("data", 2));
        let raw_type = ev.header().event_type_raw();
        let cols = &mapped.cols;
        let mut decoder = event::guarded(raw_type, || {
            RowDecoder::new(rows, &mapped.tme, &|i| {
                cols.get(i).is_some_and(|c| c.unsigned)
            })
        })
        .ok()?
        .ok()?;
        let (mut before, mut after) = (Vec::new(), Vec::new());
        let mut marks = Vec::new();
        while event::guarded(raw_type, || decoder.next_row(&mut before, &mut after))
            .ok()?
            .ok()?
            .is_some()
        {
            let text = |idx: usize| {
                after
                    .iter()
                    .find(|(i, _)| *i == idx)
                    .and_then(|(_, c)| match c {
                        Cell::Bytes(b) => Some(String::from_utf8_lossy(b).into_owned()),
                        Cell::Value(BinlogValue::Value(mysql_common::Value::Bytes(b))) => {
                            Some(String::from_utf8_lossy(b).into_owned())
                        }
                        _ => None,
                    })
            };
            if let (Some(t), Some(d)) = (text(ty_idx), text(data_idx)) {
                marks.push((t, d));
            }
        }
        Some(marks)
    }

    /// Writes a chunk at its close mark, reporting the outcome to the runner.
    #[allow(clippy::too_many_arguments)]
    fn emit_chunk(
        &mut self,
        ev: &Event,
        pos: &EventPos,
        at: &BinlogPosition,
        bridge: &SnapshotBridge,
        id: &str,
        closed: Result<(Chunk, HashSet<String>), String>,
        schemas: &mut dyn SchemaLookup,
    ) -> Vec<ParsedEntry> {
        let (chunk, changed) = match closed {
            Ok(c) => c,
            Err(reason) => {
                bridge.finish(id, Outcome::Retry { reason }, None);
                return Vec::new();
            }
        };
        let plan = chunk.plan.clone();
        let meta = match schemas.table_at(&plan.schema, &plan.table, at) {
            Some(m) => m,
            None => {
                let reason = format!("no definition of {} at {at}", plan.full_name());
                bridge.finish(id, Outcome::Retry { reason }, None);
                return Vec::new();
            }
        };
        let same = meta.columns.len() == plan.columns.len()
            && meta
                .columns
                .iter()
                .zip(&plan.columns)
                .all(|(m, p)| m.name == p.name && m.column_type == p.declared);
        if !same {
            let reason = format!("the definition of {} changed", plan.full_name());
            bridge.finish(id, Outcome::Retry { reason }, None);
            return Vec::new();
        }
        let cols = table_map::columns_from_schema(&meta);
        let outs: Vec<ColumnOut> = plan
            .columns
            .iter()
            .enumerate()
            .map(|(i, c)| {
                ColumnOut::with_type(c.column_type, &c.meta, i, cols.get(i), &self.opts.values)
            })
            .collect();
        let mut w = RowWriter::default();
        let mut entries = Vec::new();
        let mut rc = Vec::new();
        let mut in_entry = 0usize;
        let (mut emitted, mut dropped) = (0usize, 0usize);
        let mut key = String::new();
        let after_only = RowShape {
            before: false,
            after: true,
        };
        for row in chunk.rows {
            let cells: Vec<(usize, Cell<'_>)> = row
                .into_iter()
                .enumerate()
                .map(|(i, v)| (i, Cell::Value(BinlogValue::Value(v))))
                .collect();
            if !changed.is_empty() {
                key.clear();
                key_text(&outs, &plan.key, &cells, &mut key);
                if changed.contains(&key) {
                    dropped += 1;
                    continue;
                }
            }
            if rc.is_empty() {
                rc = snapshot_row_change();
            }
            if let Err((idx, source)) =
                w.row(&outs, EventType::Insert, after_only, &[], &cells, &mut rc)
            {
                let column = plan.columns.get(idx).map_or("?", |c| c.name.as_str());
                let reason = format!("{}.{column}: {source}", plan.full_name());
                bridge.finish(id, Outcome::Failed { reason }, None);
                return Vec::new();
            }
            in_entry += 1;
            emitted += 1;
            if in_entry >= ROWS_PER_ENTRY || rc.len() >= BYTES_PER_ENTRY {
                entries.push(self.snapshot_entry(
                    ev,
                    pos,
                    &plan.schema,
                    &plan.table,
                    std::mem::take(&mut rc),
                    in_entry,
                ));
                in_entry = 0;
            }
        }
        if in_entry > 0 {
            entries.push(self.snapshot_entry(ev, pos, &plan.schema, &plan.table, rc, in_entry));
        }
        metrics::counter!("canal_instance_snapshot_rows_total", "table" => plan.full_name())
            .increment(emitted as u64);
        bridge.finish(
            id,
            Outcome::Emitted { emitted, dropped },
            Some((at.clone(), chunk.update)),
        );
        self.emit_in_txn(entries)
    }

    fn snapshot_entry(
        &self,
        ev: &Event,
        pos: &EventPos,
        schema: &str,
        table: &str,
        rc: Vec<u8>,
        rows: usize,
    ) -> ParsedEntry {
        let mut header = self.header(ev, pos);
        header.schema_name = Some(schema.to_string());
        header.table_name = Some(table.to_string());
        header.event_type = Some(EventType::Insert as i32);
        header.props.push(pair("rowsCount", rows.to_string()));
        header.props.push(pair(SNAPSHOT_PROP, "true".to_string()));
        self.entry(ev, pos, header, EntryType::Rowdata, rc)
            .with_shape(super::row_change::rows_shape(rows))
    }

    /// Keys of a rows event's rows, for the open windows of its table.
    pub(super) fn window_keys(
        outs: &[ColumnOut],
        key_idx: &[usize],
        before: &[(usize, Cell<'_>)],
        after: &[(usize, Cell<'_>)],
        keys: &mut Vec<String>,
    ) {
        for image in [before, after] {
            if image.is_empty() {
                continue;
            }
            let mut k = String::new();
            key_text(outs, key_idx, image, &mut k);
            keys.push(k);
        }
    }
}

/// The start of a snapshot `RowChange`: table id 0 (no TABLE_MAP), INSERT, not DDL.
fn snapshot_row_change() -> Vec<u8> {
    let mut rc = Vec::with_capacity(64 * 1024);
    pb::int64(1, 0, &mut rc);
    pb::int32(2, EventType::Insert as i32, &mut rc);
    pb::bool(10, false, &mut rc);
    rc
}

/// The key of a row image as Canal text of its key columns, separated by U+001F. The same
/// formats print binlog rows and snapshot rows, so equal keys give equal text.
fn key_text(outs: &[ColumnOut], key_idx: &[usize], image: &[(usize, Cell<'_>)], out: &mut String) {
    for &k in key_idx {
        if let Some((_, cell)) = image.iter().find(|(i, _)| *i == k) {
            if let Some(o) = outs.get(k) {
                let _ = o.format(k, cell, out);
            }
        }
        out.push('\u{1f}');
    }
}

/// Key column indexes of a mapped table.
pub(super) fn key_columns(mapped: &MappedTable) -> Vec<usize> {
    mapped
        .cols
        .iter()
        .enumerate()
        .filter(|(_, c)| c.is_key)
        .map(|(i, _)| i)
        .collect()
}
