//! Extract (near the source): Canal entries of a Select batch → rows for Transform.
//!
//! [`extract`] drops rows of tables outside the pipeline's mappings, applies each mapping's column
//! view (key columns always stay) and, for an UPDATE that changed the primary key, keeps the old
//! key values so Load can delete the old row. Names stay the source's.

use bytes::Bytes;
use canal_protocol::entry::{Column, Entry, EntryType, EventType, RowChange};
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
    let (ddl_sync, source_site) = (opts.ddl_sync, opts.source_site);
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
        let change = RowChange::decode(entry.store_value.take().unwrap_or_default())
            .map_err(|source| ExtractError::Decode { index, source })?;
        let schema = header.schema_name();
        let table = header.table_name();
        if schema.eq_ignore_ascii_case(RETL_SCHEMA) && table.eq_ignore_ascii_case(MARK_TABLE) {
            // The transaction's mark: Select kept the transaction; note where it came from.
            if let Some(row) = change.row_datas.first().filter(|_| !change.is_ddl()) {
                let cols = if row.after_columns.is_empty() {
                    &row.before_columns
                } else {
                    &row.after_columns
                };
                let origin = foreign(&MarkRow::from_columns(cols), source_site);
                out.set_origin(origin.as_deref());
            }
            continue;
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
            continue;
        }
        if change.is_ddl() {
            if ddl_sync
                && !change.sql().is_empty()
                && find_mapping(mappings, schema, table).is_some()
            {
                let mut sql = change.sql();
                if let Some(mark) = MarkRow::from_ddl(sql) {
                    out.set_origin(foreign(&mark, source_site).as_deref());
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
            continue;
        }
        let kind = match change
            .event_type
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
        let detect = policy.is_some();
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
        // The decoded RowChange is ours: its strings move into the rows instead of being copied.
        for row in change.row_datas {
            let (image, before) = if kind == RowKind::Delete {
                (row.before_columns, Vec::new())
            } else {
                (row.after_columns, row.before_columns)
            };
            let columns: Vec<ColumnValue> = image
                .into_iter()
                .filter(|c| mapping.keeps(c.name(), c.is_key()))
                .map(value)
                .collect();
            // What the target should hold before this change, for conflict detection.
            let expected = match kind {
                _ if !detect => None,
                RowKind::Insert => None,
                RowKind::Delete => Some(columns.clone()),
                RowKind::Update => Some(
                    before
                        .iter()
                        .filter(|c| mapping.keeps(c.name(), c.is_key()))
                        .cloned()
                        .map(value)
                        .collect(),
                ),
            };
            let old_keys = if kind == RowKind::Update {
                let before: Vec<ColumnValue> = before
                    .into_iter()
                    .filter(|c| c.is_key())
                    .map(value)
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
                schema: schema.to_string(),
                table: table.to_string(),
                kind,
                columns,
                old_keys,
                before: expected,
                history: Vec::new(),
                weight: mapping.mapping.weight,
                execute_time: header.execute_time(),
            });
        }
    }
    Ok(out)
}

fn value(c: Column) -> ColumnValue {
    let (sql_type, is_key, is_null) = (c.sql_type(), c.is_key(), c.is_null());
    ColumnValue {
        name: c.name.unwrap_or_default(),
        value: if is_null {
            None
        } else {
            Some(c.value.unwrap_or_default())
        },
        sql_type,
        is_key,
    }
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
        Entry {
            header: Some(Header {
                schema_name: Some("shop".into()),
                table_name: Some(table.into()),
                event_type: Some(et as i32),
                execute_time: Some(5),
                ..Default::default()
            }),
            entry_type: Some(EntryType::Rowdata as i32),
            store_value: Some(rc.encode_to_vec().into()),
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
}
