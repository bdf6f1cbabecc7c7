//! Extract (near the source): Canal entries of a Select batch → rows for Transform.
//!
//! [`extract`] drops rows of tables outside the pipeline's mappings, applies each mapping's column
//! view (key columns always stay) and, for an UPDATE that changed the primary key, keeps the old
//! key values so Load can delete the old row. Names stay the source's.

use bytes::Bytes;
use canal_protocol::entry::{Column, Entry, EntryType, EventType, Header, RowChange};
use canal_protocol::pb_read::{read_row, text, ColumnRef, RowChangeRef, Unsupported};
use prost::Message as _;

use crate::batch::{CheckedTable, ColumnValue, DdlEvent, LoadBatch, RowEvent, RowKind};
use crate::model::ConflictPolicy;
use crate::model::{find_mapping, CompiledMapping};
use crate::pipeline::heartbeat::XDUAL_TABLE;
use crate::pipeline::loopback::{MarkRow, MARK_TABLE, RETL_SCHEMA};

/// Why a batch could not be extracted.
#[derive(Debug, thiserror::Error)]
pub enum ExtractError {
    /// An entry or its RowChange does not decode.
    #[error("malformed entry {index} of the batch: {source}")]
    Decode {
        /// Position of the entry in the batch.
        index: usize,
        /// The protobuf error.
        source: prost::DecodeError,
    },
}

/// Extracts the serialized entries of one Select batch; names stay the source's.
///
/// DDL of mapped tables becomes [`LoadBatch::ddl`] when `ddl_sync` is on (Select's store keeps
/// DDL alone in its batch); otherwise DDL is dropped.
///
/// `source_site` is the pipeline's source site: a transaction whose `retl_mark` row names another
/// origin (it was loaded here from elsewhere, and Select kept it) gets that origin in
/// [`LoadBatch::origins`], and a DDL's mark comment is taken off and its origin kept likewise.
pub fn extract(
    entries: &[Bytes],
    mappings: &[CompiledMapping],
    opts: &ExtractOptions<'_>,
) -> Result<LoadBatch, ExtractError> {
    extract_entries(
        entries.iter().map(|b| Entry::decode(b.clone())),
        mappings,
        opts,
    )
}

/// What Extract needs to know of its pipeline besides the mappings.
#[derive(Debug, Clone, Copy)]
pub struct ExtractOptions<'a> {
    /// Keep DDL of mapped tables.
    pub ddl_sync: bool,
    /// The pipeline's source site (origins other than it are noted).
    pub source_site: &'a str,
    /// The pipeline id (its heartbeat rows in `retl.xdual` are noted).
    pub pipeline: u32,
    /// The channel is two-way: every mapping detects conflicts (rows carry `before`).
    pub two_way: bool,
}

/// [`extract`] of entries decoded already (Select decodes a batch to see whether it carries
/// mapped rows): each entry is decoded once.
pub fn extract_decoded(
    entries: Vec<Entry>,
    mappings: &[CompiledMapping],
    opts: &ExtractOptions<'_>,
) -> Result<LoadBatch, ExtractError> {
    extract_entries(entries.into_iter().map(Ok), mappings, opts)
}

/// The origin a mark names, when it is not `source_site`.
fn foreign(mark: &MarkRow, source_site: &str) -> Option<String> {
    (!mark.origin.is_empty() && mark.origin != source_site).then(|| mark.origin.clone())
}

fn extract_entries(
    entries: impl Iterator<Item = Result<Entry, prost::DecodeError>>,
    mappings: &[CompiledMapping],
    opts: &ExtractOptions<'_>,
) -> Result<LoadBatch, ExtractError> {
    extract_entries_reading(entries, mappings, opts, true)
}

/// [`extract_entries`]; `in_place` false decodes every RowChange with prost (the tests compare
/// both ways).
fn extract_entries_reading(
    entries: impl Iterator<Item = Result<Entry, prost::DecodeError>>,
    mappings: &[CompiledMapping],
    opts: &ExtractOptions<'_>,
    in_place: bool,
) -> Result<LoadBatch, ExtractError> {
    let mut out = LoadBatch::default();
    let mut last: Option<(String, String, Option<CompiledMapping>)> = None;
    for (index, entry) in entries.enumerate() {
        let mut entry = entry.map_err(|source| ExtractError::Decode { index, source })?;
        if entry.entry_type() != EntryType::Rowdata {
            if entry.entry_type() == EntryType::Transactionend {
                out.set_origin(None);
            }
            continue;
        }
        let header = entry.header.take().unwrap_or_default();
        let store = entry.store_value.take().unwrap_or_default();
        let decode = |store: &Bytes| {
            RowChange::decode(store.clone())
                .map_err(|source| ExtractError::Decode { index, source })
        };
        let schema = header.schema_name();
        let table = header.table_name();
        // Rows of user tables are read in place (no `String` per column name, value and type
        // that the rows would only copy); marks, heartbeats, DDL and anything the borrowing
        // reader does not follow are decoded by prost.
        let fast = if !in_place || schema.eq_ignore_ascii_case(RETL_SCHEMA) {
            None
        } else {
            RowChangeRef::read(&store).ok().filter(|c| !c.is_ddl)
        };
        let mut decoded = None;
        if fast.is_none() {
            decoded = rows_of(&mut out, decode(&store)?, &header, mappings, opts);
            if decoded.is_none() {
                continue;
            }
        }
        let event_type = match (&fast, &decoded) {
            (Some(f), _) => f.event_type,
            (None, Some(d)) => d.event_type,
            (None, None) => None,
        };
        let kind = match event_type
            .and_then(|t| EventType::try_from(t).ok())
            .unwrap_or(header.event_type())
        {
            EventType::Insert => RowKind::Insert,
            EventType::Update => RowKind::Update,
            EventType::Delete => RowKind::Delete,
            _ => continue,
        };
        // Entries of one table come in runs: look the mapping up once per run.
        if last
            .as_ref()
            .is_none_or(|(s, t, _)| s != schema || t != table)
        {
            last = Some((
                schema.to_string(),
                table.to_string(),
                find_mapping(mappings, schema, table).cloned(),
            ));
        }
        let Some(mapping) = last.as_ref().and_then(|(_, _, m)| m.as_ref()) else {
            continue;
        };
        let policy = mapping
            .mapping
            .conflict
            .or(opts.two_way.then_some(ConflictPolicy::SitePriority));
        if let Some(policy) = policy {
            if !out
                .checked
                .iter()
                .any(|c| c.schema == schema && c.table == table)
            {
                out.checked.push(CheckedTable {
                    schema: schema.to_string(),
                    table: table.to_string(),
                    policy,
                    version_column: mapping.mapping.version_column.clone(),
                });
            }
        }
        let cx = RowContext {
            schema,
            table,
            kind,
            mapping,
            detect: policy.is_some(),
            execute_time: header.execute_time(),
        };
        let rows_before = out.rows.len();
        if let Some(f) = &fast {
            if push_borrowed(&mut out, &cx, f).is_err() {
                // A row the reader does not follow: prost reads the entry, or says what is wrong.
                out.rows.truncate(rows_before);
                decoded = Some(decode(&store)?);
            }
        }
        for row in decoded.map(|c| c.row_datas).unwrap_or_default() {
            if kind == RowKind::Delete {
                push_row(&mut out, &cx, &row.before_columns, &[]);
            } else {
                push_row(&mut out, &cx, &row.after_columns, &row.before_columns);
            }
        }
    }
    Ok(out)
}

/// A RowChange decoded by prost: a transaction's mark, a heartbeat or a DDL is noted in `out`
/// (`None`); a change of rows comes back.
fn rows_of(
    out: &mut LoadBatch,
    change: RowChange,
    header: &Header,
    mappings: &[CompiledMapping],
    opts: &ExtractOptions<'_>,
) -> Option<RowChange> {
    let (schema, table) = (header.schema_name(), header.table_name());
    if schema.eq_ignore_ascii_case(RETL_SCHEMA) && table.eq_ignore_ascii_case(MARK_TABLE) {
        // The transaction's mark: Select kept the transaction; note where it came from.
        if let Some(row) = change.row_datas.first().filter(|_| !change.is_ddl()) {
            let cols = if row.after_columns.is_empty() {
                &row.before_columns
            } else {
                &row.after_columns
            };
            let origin = foreign(&MarkRow::from_columns(cols), opts.source_site);
            out.set_origin(origin.as_deref());
        }
        return None;
    }
    if schema.eq_ignore_ascii_case(RETL_SCHEMA) && table.eq_ignore_ascii_case(XDUAL_TABLE) {
        // A heartbeat: this pipeline's is noted, none is loaded.
        for row in &change.row_datas {
            let col = |name: &str| {
                row.after_columns
                    .iter()
                    .find(|c| c.name().eq_ignore_ascii_case(name))
                    .and_then(|c| c.value().parse::<i64>().ok())
            };
            if col("id") == Some(i64::from(opts.pipeline)) {
                out.heartbeat = col("x").max(out.heartbeat);
            }
        }
        return None;
    }
    if change.is_ddl() {
        if opts.ddl_sync
            && !change.sql().is_empty()
            && find_mapping(mappings, schema, table).is_some()
        {
            let mut sql = change.sql();
            if let Some(mark) = MarkRow::from_ddl(sql) {
                out.set_origin(foreign(&mark, opts.source_site).as_deref());
                sql = sql
                    .trim_start()
                    .split_once("*/")
                    .map_or(sql, |(_, s)| s.trim_start());
            }
            out.ddl = Some(DdlEvent {
                schema: schema.to_string(),
                table: table.to_string(),
                sql: sql.to_string(),
                execute_time: header.execute_time(),
            });
        }
        return None;
    }
    Some(change)
}

/// What every row of one entry shares.
struct RowContext<'a> {
    schema: &'a str,
    table: &'a str,
    kind: RowKind,
    mapping: &'a CompiledMapping,
    /// The table detects conflicts: rows carry what the target should hold before them.
    detect: bool,
    execute_time: i64,
}

/// A column of a row image, decoded by prost or borrowed from the entry's bytes.
trait SourceColumn {
    fn name(&self) -> &str;
    fn is_key(&self) -> bool;
    fn to_value(&self) -> ColumnValue;
}

impl SourceColumn for Column {
    fn name(&self) -> &str {
        Column::name(self)
    }

    fn is_key(&self) -> bool {
        Column::is_key(self)
    }

    fn to_value(&self) -> ColumnValue {
        ColumnValue {
            name: Column::name(self).to_string(),
            value: (!self.is_null()).then(|| self.value().to_string()),
            sql_type: self.sql_type(),
            is_key: Column::is_key(self),
        }
    }
}

impl SourceColumn for ColumnRef<'_> {
    fn name(&self) -> &str {
        text(self.name)
    }

    fn is_key(&self) -> bool {
        self.is_key
    }

    fn to_value(&self) -> ColumnValue {
        ColumnValue {
            name: text(self.name).to_string(),
            value: (!self.is_null).then(|| text(self.value).to_string()),
            sql_type: self.sql_type,
            is_key: self.is_key,
        }
    }
}

/// The rows of an entry read in place, each pushed as [`push_row`] does; `Err` at the first row
/// the reader does not follow (rows pushed before it are the caller's to drop).
fn push_borrowed(
    out: &mut LoadBatch,
    cx: &RowContext<'_>,
    change: &RowChangeRef<'_>,
) -> Result<(), Unsupported> {
    let (mut before, mut after) = (Vec::new(), Vec::new());
    out.rows.reserve(change.rows.len());
    for row in &change.rows {
        before.clear();
        after.clear();
        read_row(row, &mut before, &mut after)?;
        if cx.kind == RowKind::Delete {
            push_row(out, cx, &before, &[]);
        } else {
            push_row(out, cx, &after, &before);
        }
    }
    Ok(())
}

/// One row: `image` (the after image, or a delete's before image) with the mapping's column view
/// applied, and from `before` (an update's before image) the old key when the key changed and,
/// on tables that detect conflicts, what the target should hold.
fn push_row<C: SourceColumn>(out: &mut LoadBatch, cx: &RowContext<'_>, image: &[C], before: &[C]) {
    let keeps = |c: &&C| cx.mapping.keeps(c.name(), c.is_key());
    // Sized up front: collecting a filter grows the vector from nothing, a reallocation and a
    // copy at every doubling, for every row (it was a sixth of the node's CPU on a backlog).
    let values = |image: &[C], keep: &dyn Fn(&&C) -> bool| {
        let mut v = Vec::with_capacity(image.len());
        v.extend(image.iter().filter(keep).map(C::to_value));
        v
    };
    let columns: Vec<ColumnValue> = values(image, &keeps);
    // What the target should hold before this change, for conflict detection.
    let expected = match cx.kind {
        _ if !cx.detect => None,
        RowKind::Insert => None,
        RowKind::Delete => Some(columns.clone()),
        RowKind::Update => Some(values(before, &keeps)),
    };
    let old_keys = if cx.kind == RowKind::Update {
        let before: Vec<ColumnValue> = before
            .iter()
            .filter(|c| c.is_key())
            .map(C::to_value)
            .collect();
        let changed = !before.is_empty()
            && (before.len() != columns.iter().filter(|c| c.is_key).count()
                || before
                    .iter()
                    .zip(columns.iter().filter(|c| c.is_key))
                    .any(|(b, a)| b != a));
        changed.then_some(before)
    } else {
        None
    };
    out.rows.push(RowEvent {
        schema: cx.schema.to_string(),
        table: cx.table.to_string(),
        kind: cx.kind,
        columns,
        old_keys,
        before: expected,
        history: Vec::new(),
        weight: cx.mapping.mapping.weight,
        execute_time: cx.execute_time,
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Channel;
    use crate::pipeline::transform::transform;
    use canal_protocol::entry::{Header, RowData};

    fn col(name: &str, v: &str, key: bool) -> Column {
        Column {
            name: Some(name.into()),
            value: Some(v.into()),
            is_key: Some(key),
            is_null: Some(false),
            sql_type: Some(if key { 4 } else { 12 }),
            ..Default::default()
        }
    }

    fn entry(table: &str, et: EventType, rows: Vec<RowData>) -> Bytes {
        let rc = RowChange {
            event_type: Some(et as i32),
            is_ddl: Some(false),
            row_datas: rows,
            ..Default::default()
        };
        raw_entry(table, Some(et), rc.encode_to_vec())
    }

    /// A ROWDATA entry of `shop.{table}` around an encoded RowChange.
    fn raw_entry(table: &str, et: Option<EventType>, store_value: Vec<u8>) -> Bytes {
        Entry {
            header: Some(Header {
                schema_name: Some("shop".into()),
                table_name: Some(table.into()),
                event_type: et.map(|t| t as i32),
                execute_time: Some(5),
                ..Default::default()
            }),
            entry_type: Some(EntryType::Rowdata as i32),
            store_value: Some(store_value.into()),
        }
        .encode_to_vec()
        .into()
    }

    #[test]
    fn maps_views_and_keeps_old_keys() {
        let c = Channel::from_toml(include_str!("../../../config/channel.toml")).unwrap();
        let m = CompiledMapping::compile(&c.pipeline).unwrap();
        let upd = RowData {
            before_columns: vec![
                col("id", "1", true),
                col("email", "a", false),
                col("password_hash", "x", false),
            ],
            after_columns: vec![
                col("id", "2", true),
                col("email", "b", false),
                col("password_hash", "y", false),
            ],
            ..Default::default()
        };
        let other = RowData {
            after_columns: vec![col("id", "9", true)],
            ..Default::default()
        };
        let b = extract(
            &[
                entry("user", EventType::Update, vec![upd]),
                entry("unmapped", EventType::Insert, vec![other]),
            ],
            &m,
            &ExtractOptions {
                ddl_sync: false,
                source_site: "src",
                pipeline: 1,
                two_way: false,
            },
        )
        .unwrap();
        assert_eq!(b.rows.len(), 1, "unmapped table dropped");
        assert_eq!(b.rows[0].table, "user", "extract keeps source names");
        let b = transform(b, &m);
        let r = &b.rows[0];
        assert_eq!(
            (r.schema.as_str(), r.table.as_str()),
            ("shop_dr", "customer")
        );
        assert_eq!(r.kind, RowKind::Update);
        let names: Vec<&str> = r.columns.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["id", "email"], "password_hash excluded");
        assert_eq!(r.old_keys.as_ref().unwrap()[0].value.as_deref(), Some("1"));
        assert_eq!(r.weight, 1);
    }

    /// Entries of every kind Extract meets on user tables: inserts with NULLs, empty and non-ASCII
    /// values, an update changing the key and one keeping it, a delete, an excluded column, an
    /// unmapped table, a DDL, several rows per entry.
    fn varied_entries() -> Vec<Bytes> {
        let null = |name: &str| Column {
            name: Some(name.into()),
            is_null: Some(true),
            sql_type: Some(12),
            ..Default::default()
        };
        let row = |before: Vec<Column>, after: Vec<Column>| RowData {
            before_columns: before,
            after_columns: after,
            ..Default::default()
        };
        let user = |id: &str, email: &str| {
            vec![
                col("id", id, true),
                col("email", email, false),
                col("password_hash", "h", false),
            ]
        };
        let mut with_null = user("3", "");
        with_null[1] = null("email");
        let ddl = RowChange {
            is_ddl: Some(true),
            sql: Some("ALTER TABLE shop.user ADD x INT".into()),
            event_type: Some(EventType::Alter as i32),
            ..Default::default()
        };
        vec![
            entry(
                "user",
                EventType::Insert,
                vec![
                    row(vec![], user("1", "a@x")),
                    row(vec![], user("2", "ünï ☃ \"q\"")),
                    row(vec![], with_null),
                ],
            ),
            entry(
                "user",
                EventType::Update,
                vec![
                    row(user("1", "a@x"), user("10", "b@x")),
                    row(user("2", "c"), user("2", "d")),
                ],
            ),
            entry(
                "unmapped",
                EventType::Insert,
                vec![row(vec![], user("5", "e"))],
            ),
            entry(
                "orders",
                EventType::Delete,
                vec![row(
                    vec![col("id", "7", true), col("total", "1.50", false)],
                    vec![],
                )],
            ),
            raw_entry("user", Some(EventType::Alter), ddl.encode_to_vec()),
        ]
    }

    /// `entries` extracted in place and by prost, with the shipped channel's mappings.
    fn extract_both(entries: &[Bytes], two_way: bool) -> [Result<LoadBatch, ExtractError>; 2] {
        let c = Channel::from_toml(include_str!("../../../config/channel.toml")).unwrap();
        let m = CompiledMapping::compile(&c.pipeline).unwrap();
        let opts = ExtractOptions {
            ddl_sync: true,
            source_site: "src",
            pipeline: 1,
            two_way,
        };
        [true, false].map(|in_place| {
            extract_entries_reading(
                entries.iter().map(|b| Entry::decode(b.clone())),
                &m,
                &opts,
                in_place,
            )
        })
    }

    fn both_ways(entries: &[Bytes], two_way: bool) -> (LoadBatch, LoadBatch) {
        let [fast, slow] = extract_both(entries, two_way);
        (fast.unwrap(), slow.unwrap())
    }

    #[test]
    fn rows_read_in_place_equal_rows_decoded_by_prost() {
        for two_way in [false, true] {
            let (fast, slow) = both_ways(&varied_entries(), two_way);
            assert_eq!(fast, slow, "two_way {two_way}");
            assert_eq!(fast.rows.len(), 6);
            assert!(fast.ddl.is_some());
            assert_eq!(fast.rows[2].columns[1].value, None, "NULL stays NULL");
            assert_eq!(
                fast.rows[1].columns[1].value.as_deref(),
                Some("ünï ☃ \"q\"")
            );
            assert_eq!(
                fast.rows[3].old_keys.as_ref().unwrap()[0].value.as_deref(),
                Some("1")
            );
            assert!(fast.rows[4].old_keys.is_none(), "key kept: no old key");
            assert!(fast
                .rows
                .iter()
                .all(|r| r.before.is_some() == (two_way && r.kind != RowKind::Insert)));
        }
    }

    #[test]
    fn a_row_the_reader_does_not_follow_is_decoded_by_prost_without_doubled_rows() {
        // The second row carries an unknown field as a group (wire type 3): prost skips it, the
        // borrowing reader does not follow it, so the entry is read again by prost.
        let rows = [
            RowData {
                after_columns: vec![col("id", "1", true)],
                ..Default::default()
            },
            RowData {
                after_columns: vec![col("id", "2", true)],
                ..Default::default()
            },
        ];
        let mut rc = RowChange {
            event_type: Some(EventType::Insert as i32),
            ..Default::default()
        }
        .encode_to_vec();
        for (i, r) in rows.iter().enumerate() {
            let mut body = r.encode_to_vec();
            if i == 1 {
                // Field 9, start group; field 9, end group.
                body.extend_from_slice(&[0x4b, 0x4c]);
            }
            rc.push(0x62); // field 12 (rowDatas), length-delimited
            prost::encoding::encode_varint(body.len() as u64, &mut rc);
            rc.extend_from_slice(&body);
        }
        let decoded = RowChange::decode(rc.as_slice()).expect("prost skips the group");
        assert_eq!(decoded.row_datas.len(), 2);
        assert!(RowChangeRef::read(&rc).is_ok());
        let e = raw_entry("user", Some(EventType::Insert), rc);
        let (fast, slow) = both_ways(&[e], false);
        assert_eq!(fast, slow);
        let ids: Vec<_> = fast
            .rows
            .iter()
            .map(|r| r.columns[0].value.clone())
            .collect();
        assert_eq!(ids, [Some("1".to_string()), Some("2".to_string())]);
    }

    #[test]
    fn a_malformed_row_is_the_prost_error_either_way() {
        let mut rc = RowChange {
            event_type: Some(EventType::Insert as i32),
            ..Default::default()
        }
        .encode_to_vec();
        // A RowData whose column claims more bytes than it has.
        rc.extend_from_slice(&[0x62, 0x03, 0x12, 0x05, 0x08]);
        let e = raw_entry("user", None, rc);
        for result in extract_both(&[e], false) {
            let err = result.unwrap_err();
            assert!(
                matches!(err, ExtractError::Decode { index: 0, .. }),
                "{err}"
            );
        }
    }
}
