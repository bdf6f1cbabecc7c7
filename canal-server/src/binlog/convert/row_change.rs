//! Rows events → ROWDATA entries: each row's columns written straight as protobuf bytes
//! (`RowChange` / `RowData` / `Column`) from the decoded cells.

use std::sync::atomic::Ordering;

use super::*;

impl ColumnOut {
    pub(super) fn new(
        tme: &TableMapEvent<'_>,
        idx: usize,
        info: Option<&ColInfo>,
        values: &ValueOptions,
    ) -> ColumnOut {
        let column_type = tme
            .get_column_type(idx)
            .ok()
            .flatten()
            .unwrap_or(ColumnType::MYSQL_TYPE_NULL);
        let meta = tme.get_column_metadata(idx).unwrap_or(&[]);
        ColumnOut::with_type(column_type, meta, idx, info, values)
    }

    /// A column's output from its (resolved) binlog type and TABLE_MAP metadata; the snapshot
    /// synthesizes both from the table definition so its rows print exactly as binlog rows do.
    pub(super) fn with_type(
        column_type: ColumnType,
        meta: &[u8],
        idx: usize,
        info: Option<&ColInfo>,
        values: &ValueOptions,
    ) -> ColumnOut {
        let desc = ColumnDesc {
            column_type,
            meta,
            unsigned: info.is_some_and(|c| c.unsigned),
            collation: info.and_then(|c| c.collation),
            enum_set_labels: info.and_then(|c| c.labels.as_deref()),
            declared_type: info.and_then(|c| c.declared.as_deref()),
            name: info.map(|c| c.name.as_str()),
        };
        let format = ColumnFormat::new(&desc, values);
        let usual_sql_type = format.as_ref().map_or(0, ColumnFormat::usual_sql_type);
        let name = info.map_or("", |c| c.name.as_str());
        let mut fixed = Vec::with_capacity(name.len() + 20);
        pb::int32(1, idx as i32, &mut fixed);
        let sql_type_start = fixed.len();
        pb::int32(2, usual_sql_type, &mut fixed);
        let sql_type_at = (sql_type_start, fixed.len());
        pb::string(3, name, &mut fixed);
        pb::bool(4, info.is_some_and(|c| c.is_key), &mut fixed);
        let mut tail = Vec::new();
        if let Some(t) = format.as_ref().ok().and_then(ColumnFormat::mysql_type) {
            pb::string(10, t, &mut tail);
        }
        ColumnOut {
            format,
            fixed,
            sql_type_at,
            usual_sql_type,
            tail,
        }
    }
}

impl Converter {
    pub(super) fn on_rows(
        &mut self,
        ev: &Event,
        pos: &EventPos,
        at: &BinlogPosition,
        rows: &RowsEventData<'_>,
        schemas: &mut dyn SchemaLookup,
    ) -> Result<Vec<ParsedEntry>, ConvertError> {
        let table_id = rows.table_id();
        let Some(mapped) = self.tables.get(&table_id) else {
            return Err(ConvertError::UnknownTableId {
                at: at.clone(),
                table_id,
            });
        };
        if mapped.signal {
            return self.on_signal_rows(ev, pos, at, rows, schemas);
        }
        if !mapped.accepted {
            return Ok(Vec::new());
        }
        // Inside a snapshot window of this table, the keys of its changed rows are recorded.
        let window = self
            .opts
            .snapshot
            .as_ref()
            .filter(|b| b.tracking(&mapped.schema, &mapped.table))
            .map(|b| (b.clone(), snapshot::key_columns(mapped)));
        let mut window_keys = Vec::new();
        let ty = match rows {
            RowsEventData::WriteRowsEvent(_) | RowsEventData::WriteRowsEventV1(_) => {
                EventType::Insert
            }
            RowsEventData::DeleteRowsEvent(_) | RowsEventData::DeleteRowsEventV1(_) => {
                EventType::Delete
            }
            _ => EventType::Update,
        };
        let raw_type = ev.header().event_type_raw();
        if self.may_defer && window.is_none() && rows.rows_data().len() >= DEFER_MIN_ROWS_BYTES {
            // Written later, off the parser's task (see `Converter::convert_deferring`).
            let plan = RowsPlan {
                mapped: mapped.clone(),
                ty,
                table_id,
                at: at.clone(),
            };
            let header = self.rows_header(ev, pos, &plan.mapped, ty, 0);
            let e = self.entry(ev, pos, header, EntryType::Rowdata, Vec::new());
            self.deferred = Some(plan);
            return Ok(self.emit_in_txn(vec![e]));
        }
        let mapped = mapped.clone();
        let key_idx = window.as_ref().map(|(_, k)| k.as_slice());
        let (rc, row_count) = write_row_change(
            &mapped,
            ty,
            raw_type,
            table_id,
            at,
            rows,
            key_idx.map(|k| (k, &mut window_keys)),
        )?;
        if let Some((bridge, _)) = &window {
            bridge.record_keys(&mapped.schema, &mapped.table, &window_keys);
        }
        let header = self.rows_header(ev, pos, &mapped, ty, row_count);
        let e = self
            .entry(ev, pos, header, EntryType::Rowdata, rc)
            .with_shape(rows_shape(row_count));
        Ok(self.emit_in_txn(vec![e]))
    }

    /// The header of a ROWDATA entry: `rowsCount` when `row_count` > 0.
    fn rows_header(
        &self,
        ev: &Event,
        pos: &EventPos,
        mapped: &MappedTable,
        ty: EventType,
        row_count: usize,
    ) -> Header {
        let mut header = self.header(ev, pos);
        header.schema_name = Some(mapped.schema.clone());
        header.table_name = Some(mapped.table.clone());
        header.event_type = Some(ty as i32);
        add_rows_count(&mut header, row_count);
        header
    }
}

/// Canal's `rowsCount` header property, set when the event has rows.
fn add_rows_count(header: &mut Header, row_count: usize) {
    if row_count > 0 {
        header.props.push(pair("rowsCount", row_count.to_string()));
    }
}

/// Rows events with fewer bytes of row data than this are written on the parser's task even
/// when deferring: a trickle's single rows gain nothing from another task and would pay its
/// hand-over.
const DEFER_MIN_ROWS_BYTES: usize = 1024;

/// The most a RowChange buffer is sized for up front (larger ones grow as they are written).
const MAX_PREALLOCATED: usize = 16 << 20;

/// A rows event whose RowChange is written later, possibly on another task (see
/// [`Converter::convert_deferring`]): everything that needs besides the event itself, taken
/// while the converter was at the event, so later events cannot change it.
pub struct RowsPlan {
    mapped: Arc<MappedTable>,
    ty: EventType,
    table_id: u64,
    at: BinlogPosition,
}

impl RowsPlan {
    /// Writes the RowChange of `ev` (the event the plan was made from) into `entry` (the
    /// ROWDATA entry [`Converter::convert_deferring`] returned last for it) and adds its
    /// `rowsCount`: the entry then equals what [`Converter::convert`] returns for the event.
    pub fn run(self, ev: &Event, entry: &mut ParsedEntry) -> Result<(), ConvertError> {
        let raw_type = ev.header().event_type_raw();
        let corrupt = |source| ConvertError::Event {
            at: self.at.clone(),
            source,
        };
        let malformed = |reason: String| {
            corrupt(EventError::Malformed {
                event_type: raw_type,
                reason,
            })
        };
        let data = event::guarded(raw_type, || ev.read_data())
            .map_err(corrupt)?
            .map_err(|e| malformed(e.to_string()))?;
        let Some(EventData::RowsEvent(rows)) = data else {
            return Err(malformed("a deferred rows event is no rows event".into()));
        };
        let (rc, row_count) = write_row_change(
            &self.mapped,
            self.ty,
            raw_type,
            self.table_id,
            &self.at,
            &rows,
            None,
        )?;
        entry.entry.store_value = Some(rc.into());
        if let Some(h) = entry.entry.header.as_mut() {
            add_rows_count(h, row_count);
        }
        entry.set_shape(rows_shape(row_count));
        Ok(())
    }
}

/// The shape of a rows event's RowChange with `rows` rows: never a DDL.
pub(super) fn rows_shape(rows: usize) -> EntryShape {
    EntryShape {
        boundary: false,
        rows,
    }
}

/// The RowChange of one rows event as protobuf bytes, and its row count. With `window`, the
/// keys of the changed rows are appended to its list (a snapshot window of this table).
fn write_row_change(
    mapped: &MappedTable,
    ty: EventType,
    raw_type: u8,
    table_id: u64,
    at: &BinlogPosition,
    rows: &RowsEventData<'_>,
    mut window: Option<(&[usize], &mut Vec<String>)>,
) -> Result<(Vec<u8>, usize), ConvertError> {
    let full = || format!("{}.{}", mapped.schema, mapped.table);
    let cols = &mapped.cols;
    let corrupt = |source| ConvertError::Event {
        at: at.clone(),
        source,
    };
    let bad_rows = |source| ConvertError::Rows {
        table: full(),
        at: at.clone(),
        source,
    };
    let mut decoder = event::guarded(raw_type, || {
        RowDecoder::new(rows, &mapped.tme, &|i| {
            cols.get(i).is_some_and(|c| c.unsigned)
        })
    })
    .map_err(corrupt)?
    .map_err(bad_rows)?;

    // The RowChange is written straight to protobuf (byte for byte what prost would write
    // for the same message), without building a `Column` per value.
    let in_len = rows.rows_data().len();
    let ratio = &mapped.out_ratio;
    let guess = in_len.saturating_mul(ratio.load(Ordering::Relaxed)) / 16;
    let mut rc = Vec::with_capacity(guess.min(MAX_PREALLOCATED) + 64);
    pb::int64(1, table_id as i64, &mut rc);
    pb::int32(2, ty as i32, &mut rc);
    pb::bool(10, false, &mut rc);
    let mut w = RowWriter::default();
    let (mut before, mut after) = (Vec::new(), Vec::new());
    let mut row_count = 0usize;
    loop {
        let shape = event::guarded(raw_type, || decoder.next_row(&mut before, &mut after))
            .map_err(corrupt)?
            .map_err(bad_rows)?;
        let Some(shape) = shape else { break };
        if let Err((idx, source)) = w.row(&mapped.outs, ty, shape, &before, &after, &mut rc) {
            // Corrupt row data wins over a value error, as when every row was decoded first.
            while event::guarded(raw_type, || decoder.next_row(&mut before, &mut after))
                .map_err(corrupt)?
                .map_err(bad_rows)?
                .is_some()
            {}
            return Err(ConvertError::Value {
                table: full(),
                column: cols
                    .get(idx)
                    .map(|c| c.name.clone())
                    .unwrap_or_else(|| format!("@{}", idx + 1)),
                at: at.clone(),
                source,
            });
        }
        if let Some((key_idx, keys)) = window.as_mut() {
            Converter::window_keys(&mapped.outs, key_idx, &before, &after, keys);
        }
        row_count += 1;
    }
    // A little over the last ratio, so that the next event of the table fits in one buffer.
    ratio.store(
        (rc.len() * 17 / in_len.max(1) + 1).clamp(16, 16 * 16),
        Ordering::Relaxed,
    );
    Ok((rc, row_count))
}

/// Scratch buffers for writing `RowData` messages, reused across the rows of one event.
#[derive(Default)]
pub(super) struct RowWriter {
    /// The `RowData` being written.
    row: Vec<u8>,
    /// The text of the value being written.
    text: String,
    /// Texts of the current row's before image, and per column index where its text sits in
    /// `before_text` (`None` for NULL); `before_at` is only valid for indexes in `before_set`.
    before_text: String,
    before_at: Vec<Option<(usize, usize)>>,
    before_set: Vec<bool>,
}

impl RowWriter {
    /// Appends one `RowData` (field 12 of RowChange) to `rc`. Canal's layout: INSERT has only
    /// after columns, DELETE only before columns, UPDATE both; an after column is `updated`
    /// unless the before image has the same value for it. Errors name the column index.
    pub(super) fn row(
        &mut self,
        outs: &[ColumnOut],
        ty: EventType,
        shape: RowShape,
        before: &[(usize, Cell<'_>)],
        after: &[(usize, Cell<'_>)],
        rc: &mut Vec<u8>,
    ) -> Result<(), (usize, crate::value::ValueError)> {
        let n = outs.len();
        self.row.clear();
        self.before_text.clear();
        self.before_set.clear();
        self.before_set.resize(n, false);
        self.before_at.resize(n, None);
        let write_before = ty != EventType::Insert;
        let write_after = ty != EventType::Delete;
        if shape.before {
            for (idx, value) in before {
                let out = column_out(outs, *idx)?;
                let start = self.before_text.len();
                let f = out.format(*idx, value, &mut self.before_text)?;
                if *idx < n {
                    self.before_set[*idx] = true;
                    self.before_at[*idx] = (!f.is_null).then_some((start, self.before_text.len()));
                }
                if write_before {
                    let text = &self.before_text[start..];
                    out.write(1, f, false, text, &mut self.row);
                }
            }
        }
        if shape.after {
            for (idx, value) in after {
                let out = column_out(outs, *idx)?;
                self.text.clear();
                let f = out.format(*idx, value, &mut self.text)?;
                let same = *idx < n
                    && self.before_set[*idx]
                    && match self.before_at[*idx] {
                        None => f.is_null,
                        Some((a, b)) => !f.is_null && self.before_text[a..b] == self.text,
                    };
                if write_after {
                    out.write(2, f, !same, &self.text, &mut self.row);
                }
            }
        }
        pb::bytes(12, &self.row, rc);
        Ok(())
    }
}

fn column_out(
    outs: &[ColumnOut],
    idx: usize,
) -> Result<&ColumnOut, (usize, crate::value::ValueError)> {
    outs.get(idx).ok_or((
        idx,
        crate::value::ValueError::UnsupportedType(ColumnType::MYSQL_TYPE_NULL),
    ))
}

impl ColumnOut {
    pub(super) fn format(
        &self,
        idx: usize,
        value: &Cell<'_>,
        text: &mut String,
    ) -> Result<Formatted, (usize, crate::value::ValueError)> {
        let format = self.format.as_ref().map_err(|e| (idx, e.clone()))?;
        match value {
            Cell::Value(v) => format.format_into(v, text),
            Cell::Bytes(b) => format.format_bytes_into(b, text),
            Cell::NewDecimal { raw, .. } => format.format_decimal_bin_into(raw, text),
            Cell::Timestamp2 { secs, fraction } => {
                format.format_timestamp2_into(*secs, *fraction, text)
            }
        }
        .map_err(|e| (idx, e))
    }

    /// Appends the `Column` message as field `field` (1: before, 2: after) of a RowData.
    fn write(&self, field: u32, f: Formatted, updated: bool, text: &str, row: &mut Vec<u8>) {
        let (at, end) = self.sql_type_at;
        let usual = f.sql_type == self.usual_sql_type;
        let sql_type = if usual {
            end - at
        } else {
            pb::int32_len(f.sql_type)
        };
        let value = if f.is_null {
            0
        } else {
            1 + pb::len_varint(text.len() as u64) + text.len()
        };
        let len = self.fixed.len() - (end - at) + sql_type + 4 + value + self.tail.len();
        row.reserve(len + 6);
        pb::key(field, pb::LEN, row);
        pb::varint(len as u64, row);
        if usual {
            row.extend_from_slice(&self.fixed);
        } else {
            row.extend_from_slice(&self.fixed[..at]);
            pb::int32(2, f.sql_type, row);
            row.extend_from_slice(&self.fixed[end..]);
        }
        // `updated` (5) and `isNull` (6).
        row.extend_from_slice(&[5 << 3, u8::from(updated), 6 << 3, u8::from(f.is_null)]);
        if !f.is_null {
            pb::string(8, text, row);
        }
        row.extend_from_slice(&self.tail);
    }
}

#[cfg(test)]
mod row_encoding_tests {
    use std::path::Path;

    use canal_protocol::entry::{Column, RowData};

    use super::*;
    use crate::binlog::file::BinlogFileReader;
    use crate::binlog::rows::{decode_rows, Image};
    use crate::value::{format_value, UtcOffset};

    fn reference_columns(
        mapped: &MappedTable,
        image: &Image,
        before: Option<&[Column]>,
        values: &ValueOptions,
    ) -> Result<Vec<Column>, String> {
        let mut out = Vec::new();
        for (idx, value) in image {
            let idx = *idx;
            let info = mapped.cols.get(idx);
            let column_type = mapped
                .tme
                .get_column_type(idx)
                .ok()
                .flatten()
                .unwrap_or(ColumnType::MYSQL_TYPE_NULL);
            let desc = ColumnDesc {
                column_type,
                meta: mapped.tme.get_column_metadata(idx).unwrap_or(&[]),
                unsigned: info.is_some_and(|c| c.unsigned),
                collation: info.and_then(|c| c.collation),
                enum_set_labels: info.and_then(|c| c.labels.as_deref()),
                declared_type: info.and_then(|c| c.declared.as_deref()),
                name: info.map(|c| c.name.as_str()),
            };
            let v = format_value(&desc, value, values).map_err(|e| e.to_string())?;
            let updated = before.is_some_and(|before| {
                !before.iter().any(|b| {
                    b.index == Some(idx as i32)
                        && match (b.is_null(), v.is_null) {
                            (true, true) => true,
                            (false, false) => b.value.as_deref() == Some(v.value.as_str()),
                            _ => false,
                        }
                })
            });
            out.push(Column {
                index: Some(idx as i32),
                sql_type: Some(v.sql_type),
                name: Some(info.map(|c| c.name.clone()).unwrap_or_default()),
                is_key: Some(info.is_some_and(|c| c.is_key)),
                updated: Some(updated),
                is_null: Some(v.is_null),
                value: (!v.is_null).then_some(v.value),
                mysql_type: v.mysql_type.map(|t| t.into_owned()),
                ..Default::default()
            });
        }
        Ok(out)
    }

    /// The RowChange of a rows event the old way, or why it fails.
    fn reference(conv: &Converter, rows: &RowsEventData<'_>) -> Option<Result<Vec<u8>, String>> {
        let mapped = conv.tables.get(&rows.table_id())?;
        if !mapped.accepted {
            return None;
        }
        let ty = match rows {
            RowsEventData::WriteRowsEvent(_) | RowsEventData::WriteRowsEventV1(_) => {
                EventType::Insert
            }
            RowsEventData::DeleteRowsEvent(_) | RowsEventData::DeleteRowsEventV1(_) => {
                EventType::Delete
            }
            _ => EventType::Update,
        };
        let images = match decode_rows(rows, &mapped.tme, &|i| {
            mapped.cols.get(i).is_some_and(|c| c.unsigned)
        }) {
            Ok(images) => images,
            Err(e) => return Some(Err(e.to_string())),
        };
        let values = &conv.opts.values;
        let mut row_datas = Vec::new();
        for img in &images {
            let before = match &img.before {
                Some(b) => match reference_columns(mapped, b, None, values) {
                    Ok(c) => c,
                    Err(e) => return Some(Err(e)),
                },
                None => Vec::new(),
            };
            let after = match &img.after {
                Some(a) => match reference_columns(mapped, a, Some(&before), values) {
                    Ok(c) => c,
                    Err(e) => return Some(Err(e)),
                },
                None => Vec::new(),
            };
            row_datas.push(match ty {
                EventType::Insert => RowData {
                    after_columns: after,
                    ..Default::default()
                },
                EventType::Delete => RowData {
                    before_columns: before,
                    ..Default::default()
                },
                _ => RowData {
                    before_columns: before,
                    after_columns: after,
                    ..Default::default()
                },
            });
        }
        Some(Ok(RowChange {
            table_id: Some(rows.table_id() as i64),
            event_type: Some(ty as i32),
            is_ddl: Some(false),
            row_datas,
            ..Default::default()
        }
        .encode_to_vec()))
    }

    #[test]
    fn direct_row_change_bytes_match_prost_on_every_fixture() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/fixtures/binlog");
        assert!(
            dir.join("README.md").is_file(),
            "binlog fixtures missing: expected {}",
            dir.display()
        );
        let canal = ValueOptions {
            timestamp_zone: UtcOffset::UTC,
            ..ValueOptions::default()
        };
        let labels = ValueOptions {
            enum_as_label: true,
            set_as_labels: true,
            derive_missing_mysql_type: true,
            decimal_exact_scale: true,
            ..canal.clone()
        };
        let mut compared = 0usize;
        let mut errors = 0usize;
        for sub in std::fs::read_dir(&dir).unwrap() {
            let sub = sub.unwrap().path();
            if !sub.is_dir() {
                continue;
            }
            for file in std::fs::read_dir(&sub).unwrap() {
                let path = file.unwrap().path();
                for values in [&canal, &labels] {
                    let opts = ConvertOptions {
                        schemaless: true,
                        values: values.clone(),
                        ..Default::default()
                    };
                    let mut conv = Converter::new(opts, None);
                    let Ok(reader) = BinlogFileReader::open(&path) else {
                        continue;
                    };
                    for ev in reader {
                        let Ok(ev) = ev else { break };
                        let data = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                            ev.event.read_data().ok().flatten()
                        }));
                        let expected = match data {
                            Ok(Some(EventData::RowsEvent(rows))) => reference(&conv, &rows),
                            _ => None,
                        };
                        let got = conv.convert(&ev.event, &ev.pos, &mut NoSchema);
                        let Some(expected) = expected else { continue };
                        let at = format!("{} @{}", path.display(), ev.pos.offset);
                        match (expected, got) {
                            (Ok(bytes), Ok(entries)) => {
                                let rowdata: Vec<_> = entries
                                    .iter()
                                    .filter(|e| e.entry_type() == EntryType::Rowdata)
                                    .collect();
                                assert_eq!(rowdata.len(), 1, "{at}");
                                let got = rowdata[0].entry.store_value.as_deref().unwrap();
                                assert!(got == bytes.as_slice(), "{at}: RowChange bytes differ");
                                compared += 1;
                            }
                            (Err(_), Err(_)) => errors += 1,
                            (want, got) => panic!(
                                "{at}: reference {:?}, converter {:?}",
                                want.map(|b| b.len()),
                                got.map(|e| e.len())
                            ),
                        }
                    }
                }
            }
        }
        assert!(
            compared > 500,
            "only {compared} rows events compared ({errors} errors)"
        );
    }
}
