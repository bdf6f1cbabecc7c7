//! Flat-message JSON written straight from an entry's bytes: the same bytes as
//! [`FlatMessage::to_json`](super::FlatMessage::to_json) of [`flat_message`], without building
//! the message (no `String` per column name and value, no prost decode of the rows).
//!
//! Strings are escaped as serde_json escapes them (`"`, `\\`, the short escapes `\b \t \n \f \r`,
//! other control characters as `\u00xx`, everything else as is); numbers go through serde_json's
//! serializer. Entries the borrowing reader does not follow ([`wire::Unsupported`]) take the
//! [`flat_message`] path, which gives the same line or the same error.

use std::ops::Range;

use canal_protocol::{Entry, EntryType, EventType};
use serde::Serializer as _;

use super::{flat_message, BatchSummary};
use crate::view::ViewError;
use canal_protocol::pb_read::{self as wire, ColumnRef, RowChangeRef};

/// Appends one JSON line per ROWDATA entry of `entries` (the entries [`flat_messages`] keeps) to
/// `out`: Canal's flat message with `id` = `batch_id` and `ts` = `ts`, then `\n`. On an error
/// `out` may hold part of the batch.
///
/// [`flat_messages`]: super::flat_messages
pub fn write_flat_json_lines(
    batch_id: i64,
    entries: &[Entry],
    ts: i64,
    out: &mut Vec<u8>,
) -> Result<BatchSummary, ViewError> {
    let mut summary = BatchSummary::default();
    let mut scratch = Scratch::default();
    for entry in entries {
        let start = out.len();
        let rows = match write_entry(batch_id, entry, ts, out, &mut scratch) {
            Ok(rows) => rows,
            Err(wire::Unsupported) => {
                out.truncate(start);
                flat_message(batch_id, entry, ts)?.map(|m| {
                    out.extend_from_slice(m.to_json().as_bytes());
                    m.data.as_ref().map_or(0, Vec::len)
                })
            }
        };
        if let Some(rows) = rows {
            out.push(b'\n');
            summary.add(
                rows as u64,
                entry.header.as_ref().map_or(0, |h| h.execute_time()),
            );
        }
    }
    Ok(summary)
}

/// Where one row's before and after columns sit in [`Scratch::cols`].
type Span = (Range<usize>, Range<usize>);

/// Buffers reused across the entries of a batch (they all borrow from the batch).
#[derive(Default)]
struct Scratch<'a> {
    /// Every column of the entry's rows: per row its before image, then its after image.
    cols: Vec<ColumnRef<'a>>,
    spans: Vec<Span>,
    types: Types<'a>,
    /// Names of the columns one UPDATE row changed.
    changed: Vec<&'a [u8]>,
}

/// Column name → (sqlType, mysqlType) in first-seen order, the last row's values winning: what
/// `Ordered::put` builds.
#[derive(Default)]
struct Types<'a>(Vec<(&'a [u8], i32, &'a [u8])>);

impl<'a> Types<'a> {
    fn put(&mut self, at: usize, c: &ColumnRef<'a>) {
        // Rows of one table list the same columns in the same order: try the column's own slot.
        let slot = match self.0.get(at) {
            Some(t) if t.0 == c.name => Some(at),
            _ => self.0.iter().position(|t| t.0 == c.name),
        };
        match slot {
            Some(i) => {
                self.0[i].1 = c.sql_type;
                self.0[i].2 = c.mysql_type;
            }
            None => self.0.push((c.name, c.sql_type, c.mysql_type)),
        }
    }
}

/// Writes the line of one entry without its `\n`; `Ok(None)` for entries that have none (not
/// ROWDATA, or a heartbeat), else `Ok(Some(rows in data))`.
fn write_entry<'a>(
    batch_id: i64,
    entry: &'a Entry,
    ts: i64,
    out: &mut Vec<u8>,
    scratch: &mut Scratch<'a>,
) -> Result<Option<usize>, wire::Unsupported> {
    if entry.entry_type() != EntryType::Rowdata {
        return Ok(None);
    }
    let header = entry.header.as_ref();
    // Every column of every row, before images then after images per row, read as the rows come
    // (front to back through the entry's bytes). The rows of a DDL or a heartbeat are read too:
    // prost checks them, so they can make the entry an error.
    let Scratch {
        cols,
        spans,
        types,
        changed,
    } = scratch;
    cols.clear();
    spans.clear();
    types.0.clear();
    let store = entry.store_value.as_deref().unwrap_or_default();
    let change = RowChangeRef::read_each_row(store, |row| {
        spans.push(wire::read_row_images(row, cols)?);
        Ok(())
    })?;
    let event_type = change.event_type(header.and_then(|h| h.event_type));
    if event_type == EventType::Mheartbeat {
        return Ok(None);
    }
    let delete = event_type == EventType::Delete;
    let update = event_type == EventType::Update;
    let rows = if change.is_ddl { 0 } else { spans.len() };
    let spans = &spans[..rows];
    let image = |span: &Span| {
        let r = if delete { &span.0 } else { &span.1 };
        &cols[r.clone()]
    };
    let has_rows = rows > 0;

    out.extend_from_slice(b"{\"data\":");
    let mut pk_row = None;
    if has_rows {
        out.push(b'[');
        for (i, span) in spans.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            let columns = image(span);
            out.push(b'{');
            for (j, c) in columns.iter().enumerate() {
                if j > 0 {
                    out.push(b',');
                }
                string(out, c.name);
                out.push(b':');
                if c.is_null {
                    out.extend_from_slice(b"null");
                } else {
                    string(out, c.value);
                }
                types.put(j, c);
            }
            out.push(b'}');
            if pk_row.is_none() && columns.iter().any(|c| c.is_key) {
                pk_row = Some(i);
            }
        }
        out.push(b']');
    } else {
        out.extend_from_slice(b"null");
    }

    out.extend_from_slice(b",\"database\":");
    string(out, header.map_or("", |h| h.schema_name()).as_bytes());
    out.extend_from_slice(b",\"es\":");
    int(out, header.map_or(0, |h| h.execute_time()));
    out.extend_from_slice(b",\"gtid\":");
    string(out, header.map_or("", |h| h.gtid()).as_bytes());
    out.extend_from_slice(b",\"id\":");
    int(out, batch_id);
    out.extend_from_slice(if change.is_ddl {
        b",\"isDdl\":true"
    } else {
        b",\"isDdl\":false"
    });

    out.extend_from_slice(b",\"mysqlType\":");
    if has_rows {
        out.push(b'{');
        for (j, (name, _, mysql_type)) in types.0.iter().enumerate() {
            if j > 0 {
                out.push(b',');
            }
            string(out, name);
            out.push(b':');
            string(out, mysql_type);
        }
        out.push(b'}');
    } else {
        out.extend_from_slice(b"null");
    }

    out.extend_from_slice(b",\"old\":");
    if update && has_rows {
        out.push(b'[');
        for (i, (b, a)) in spans.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            changed.clear();
            changed.extend(cols[a.clone()].iter().filter(|c| c.updated).map(|c| c.name));
            out.push(b'{');
            let mut first = true;
            for c in &cols[b.clone()] {
                if !changed.contains(&c.name) {
                    continue;
                }
                if !first {
                    out.push(b',');
                }
                first = false;
                string(out, c.name);
                out.push(b':');
                if c.is_null {
                    out.extend_from_slice(b"null");
                } else {
                    string(out, c.value);
                }
            }
            out.push(b'}');
        }
        out.push(b']');
    } else {
        out.extend_from_slice(b"null");
    }

    out.extend_from_slice(b",\"pkNames\":");
    match pk_row {
        Some(i) => {
            out.push(b'[');
            let keys = image(&spans[i]).iter().filter(|c| c.is_key);
            for (j, c) in keys.enumerate() {
                if j > 0 {
                    out.push(b',');
                }
                string(out, c.name);
            }
            out.push(b']');
        }
        None => out.extend_from_slice(b"null"),
    }

    out.extend_from_slice(b",\"sql\":");
    string(out, change.sql);
    out.extend_from_slice(b",\"sqlType\":");
    if has_rows {
        out.push(b'{');
        for (j, (name, sql_type, _)) in types.0.iter().enumerate() {
            if j > 0 {
                out.push(b',');
            }
            string(out, name);
            out.push(b':');
            int(out, i64::from(*sql_type));
        }
        out.push(b'}');
    } else {
        out.extend_from_slice(b"null");
    }
    out.extend_from_slice(b",\"table\":");
    string(out, header.map_or("", |h| h.table_name()).as_bytes());
    out.extend_from_slice(b",\"ts\":");
    int(out, ts);
    out.extend_from_slice(b",\"type\":");
    string(out, event_type.as_str_name().as_bytes());
    out.push(b'}');
    Ok(Some(rows))
}

/// What follows the `\` of a byte's escape: 0 for none, `u` for `\u00xx`.
static ESCAPE: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut i = 0;
    while i < 0x20 {
        t[i] = b'u';
        i += 1;
    }
    t[0x08] = b'b';
    t[0x09] = b't';
    t[0x0a] = b'n';
    t[0x0c] = b'f';
    t[0x0d] = b'r';
    t[b'"' as usize] = b'"';
    t[b'\\' as usize] = b'\\';
    t
};

/// `s` (checked UTF-8) as a JSON string, escaped as serde_json escapes it.
#[inline]
fn string(out: &mut Vec<u8>, s: &[u8]) {
    out.reserve(s.len() + 2);
    out.push(b'"');
    let mut rest = s;
    loop {
        let clean = clean_prefix(rest);
        out.extend_from_slice(&rest[..clean]);
        let Some((&b, tail)) = rest[clean..].split_first() else {
            break;
        };
        rest = tail;
        let escape = ESCAPE[usize::from(b)];
        if escape == b'u' {
            const HEX: &[u8; 16] = b"0123456789abcdef";
            out.extend_from_slice(&[
                b'\\',
                b'u',
                b'0',
                b'0',
                HEX[usize::from(b >> 4)],
                HEX[usize::from(b & 0xf)],
            ]);
        } else {
            out.extend_from_slice(&[b'\\', escape]);
        }
    }
    out.push(b'"');
}

/// How many leading bytes of `s` need no escape: eight at a time while whole words are clean,
/// then byte by byte.
#[inline]
fn clean_prefix(s: &[u8]) -> usize {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    // Whether some byte of `v` is below `n` (n ≤ 128): a borrow starts only at such a byte.
    let below = |v: u64, n: u8| v.wrapping_sub(ONES * u64::from(n)) & !v & HIGH != 0;
    let mut i = 0;
    for chunk in s.chunks_exact(8) {
        let Ok(word) = <[u8; 8]>::try_from(chunk) else {
            break;
        };
        let v = u64::from_le_bytes(word);
        // Control characters, or a byte equal to `"` or `\\` (zero after the xor).
        if below(v, 0x20)
            || below(v ^ (ONES * u64::from(b'"')), 1)
            || below(v ^ (ONES * u64::from(b'\\')), 1)
        {
            break;
        }
        i += 8;
    }
    i + s[i..]
        .iter()
        .position(|&b| ESCAPE[usize::from(b)] != 0)
        .unwrap_or(s.len() - i)
}

/// `n` as serde_json writes it.
#[inline]
fn int(out: &mut Vec<u8>, n: i64) {
    let _ = serde_json::Serializer::new(&mut *out).serialize_i64(n);
}

#[cfg(test)]
mod tests;
