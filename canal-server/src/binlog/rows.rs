//! Row images of a rows event, decoded column by column without building mysql_common's per-row
//! `Column` objects (they allocate names for every column of every row).
//!
//! Layout per row (MySQL `log_event.cc`): `[before image] [after image]`, where an image is a null
//! bitmap over the columns present in the event's column bitmap, followed by the non-null values.
//! A PARTIAL_UPDATE_ROWS after image starts with `value_options` (length-encoded) and, when
//! PARTIAL_JSON is set, one bit per JSON column telling whether its value is a JSON diff.

use canal_protocol::mysql::{split_lenenc, LenencError};
use mysql_common::binlog::events::{RowsEventData, TableMapEvent};
use mysql_common::binlog::value::BinlogValue;
use mysql_common::constants::ColumnType;
use mysql_common::io::ParseBuf;

use crate::value::decimal_bin_size;
#[cfg(test)]
use crate::value::mysql_decimal_text;

/// A rows event that cannot be decoded.
#[derive(Debug, thiserror::Error)]
pub enum RowsError {
    /// A row whose images hold no column, so decoding cannot advance through the rows data.
    #[error("row images hold no column; the rows data cannot be read")]
    EmptyRow,
    /// The row data ends before the image does.
    #[error("row image truncated: {0}")]
    Truncated(&'static str),
    /// A column value does not decode with its TABLE_MAP type and metadata.
    #[error("column {index} ({column_type:?}): {source}")]
    Value {
        /// 0-based column index.
        index: usize,
        /// Its binlog type.
        column_type: ColumnType,
        /// Decoder error.
        source: std::io::Error,
    },
    /// TABLE_MAP and rows event disagree.
    #[error("rows event has {rows} columns but its TABLE_MAP has {map}")]
    ColumnCount {
        /// Columns in the rows event.
        rows: u64,
        /// Columns in the TABLE_MAP.
        map: u64,
    },
    /// A column has no type in the TABLE_MAP.
    #[error("column {0} has no valid type in the TABLE_MAP")]
    BadColumnType(usize),
    /// TABLE_MAP metadata that cannot describe the column type.
    #[error("column {index} ({column_type:?}): bad TABLE_MAP metadata {meta:02x?}")]
    BadMeta {
        /// 0-based column index.
        index: usize,
        /// Its binlog type.
        column_type: ColumnType,
        /// The metadata bytes.
        meta: Vec<u8>,
    },
}

#[cfg(test)]
/// One decoded image: `(column index, value)` for each column present, in column order. SQL NULL
/// is `BinlogValue::Value(Value::NULL)`.
pub type Image = Vec<(usize, BinlogValue<'static>)>;

/// One column value as [`RowDecoder`] hands it over. The most common column types skip
/// mysql_common, which would copy string bytes into a `Value::Bytes` and print TIMESTAMP2 as
/// text; [`Cell::into_value`] gives exactly what mysql_common would have produced.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell<'a> {
    /// Decoded by mysql_common (SQL NULL is `Value(NULL)`).
    Value(BinlogValue<'a>),
    /// The bytes of a CHAR/VARCHAR/BINARY/VARBINARY/TEXT/BLOB/GEOMETRY value, borrowed from the
    /// event.
    Bytes(&'a [u8]),
    /// A NEWDECIMAL value as stored (`decimal_bin_size(precision, scale)` bytes).
    NewDecimal {
        /// The stored bytes.
        raw: &'a [u8],
        /// Column precision.
        precision: u8,
        /// Column scale.
        scale: u8,
    },
    /// A TIMESTAMP2 value as stored: epoch seconds and the fraction read for its precision
    /// (`my_timestamp_from_binary`).
    Timestamp2 {
        /// Seconds since the epoch.
        secs: u32,
        /// Microseconds (scaled from the stored digits; out of range only if corrupt).
        fraction: i32,
    },
}

#[cfg(test)]
impl Cell<'_> {
    /// The value mysql_common's row parser would have produced.
    pub fn into_value(self) -> BinlogValue<'static> {
        match self {
            Cell::Value(v) => v.into_owned(),
            Cell::Bytes(b) => BinlogValue::Value(mysql_common::Value::Bytes(b.to_vec())),
            Cell::NewDecimal {
                raw,
                precision,
                scale,
            } => {
                let text = mysql_decimal_text(raw, usize::from(precision), usize::from(scale));
                BinlogValue::Value(mysql_common::Value::Bytes(
                    text.as_str().as_bytes().to_vec(),
                ))
            }
            Cell::Timestamp2 { secs, fraction } => {
                // mysql_common reads the seconds as an i32.
                let secs = secs as i32;
                let text = if fraction == 0 {
                    secs.to_string()
                } else {
                    format!("{secs}.{fraction:06}")
                };
                BinlogValue::Value(mysql_common::Value::Bytes(text.into_bytes()))
            }
        }
    }
}

/// One row change: the before image (UPDATE, DELETE) and the after image (INSERT, UPDATE).
#[cfg(test)]
#[derive(Debug, Default)]
pub struct RowImages {
    /// Before image, if the event has one.
    pub before: Option<Image>,
    /// After image, if the event has one.
    pub after: Option<Image>,
}

/// Per-column decoding context taken from the TABLE_MAP once per event.
struct ColumnPlan<'a> {
    column_type: ColumnType,
    meta: &'a [u8],
    unsigned: bool,
    /// Decoded by [`decode_common`] rather than mysql_common.
    common: bool,
}

/// Decodes every row of `ev` with the table map `tme`. `unsigned` says, per column, whether a
/// numeric column is unsigned (from the schema or the SIGNEDNESS metadata). The converter streams
/// rows through [`RowDecoder`]; the tests compare this owned form with mysql_common's.
#[cfg(test)]
pub fn decode_rows(
    ev: &RowsEventData<'_>,
    tme: &TableMapEvent<'_>,
    unsigned: &dyn Fn(usize) -> bool,
) -> Result<Vec<RowImages>, RowsError> {
    let mut decoder = RowDecoder::new(ev, tme, unsigned)?;
    let (mut before, mut after) = (Vec::new(), Vec::new());
    let mut rows = Vec::new();
    while let Some(shape) = decoder.next_row(&mut before, &mut after)? {
        let owned = |image: &mut Vec<(usize, Cell<'_>)>| -> Image {
            image.drain(..).map(|(i, v)| (i, v.into_value())).collect()
        };
        rows.push(RowImages {
            before: shape.before.then(|| owned(&mut before)),
            after: shape.after.then(|| owned(&mut after)),
        });
    }
    Ok(rows)
}

/// Which images a decoded row has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RowShape {
    /// The before image was decoded.
    pub before: bool,
    /// The after image was decoded.
    pub after: bool,
}

/// The rows of one rows event, decoded one row at a time into the caller's buffers, with values
/// borrowed from the event where mysql_common allows it. [`decode_rows`] collects them.
pub struct RowDecoder<'a> {
    plan: Vec<ColumnPlan<'a>>,
    json_columns: usize,
    partial: bool,
    /// Per image, which columns it holds (`None`: the event has no such image).
    before_cols: Option<Vec<bool>>,
    after_cols: Option<Vec<bool>>,
    buf: ParseBuf<'a>,
}

impl<'a> RowDecoder<'a> {
    /// Checks the event against its table map and prepares the per-column plan.
    pub fn new(
        ev: &'a RowsEventData<'_>,
        tme: &'a TableMapEvent<'_>,
        unsigned: &dyn Fn(usize) -> bool,
    ) -> Result<Self, RowsError> {
        let num_columns = ev.num_columns();
        if num_columns != tme.columns_count() {
            return Err(RowsError::ColumnCount {
                rows: num_columns,
                map: tme.columns_count(),
            });
        }
        let n = num_columns as usize;
        let mut plan = Vec::with_capacity(n);
        for i in 0..n {
            let column_type = match tme.get_column_type(i) {
                Ok(Some(t)) => t,
                _ => return Err(RowsError::BadColumnType(i)),
            };
            let meta = tme.get_column_metadata(i).unwrap_or(&[]);
            check_meta(i, column_type, meta)?;
            use ColumnType::*;
            plan.push(ColumnPlan {
                column_type,
                meta,
                unsigned: unsigned(i),
                common: matches!(
                    column_type,
                    MYSQL_TYPE_VARCHAR
                        | MYSQL_TYPE_VAR_STRING
                        | MYSQL_TYPE_STRING
                        | MYSQL_TYPE_TINY_BLOB
                        | MYSQL_TYPE_MEDIUM_BLOB
                        | MYSQL_TYPE_LONG_BLOB
                        | MYSQL_TYPE_BLOB
                        | MYSQL_TYPE_GEOMETRY
                        | MYSQL_TYPE_VECTOR
                        | MYSQL_TYPE_TIMESTAMP2
                        | MYSQL_TYPE_NEWDECIMAL
                        | MYSQL_TYPE_TINY
                        | MYSQL_TYPE_SHORT
                        | MYSQL_TYPE_INT24
                        | MYSQL_TYPE_LONG
                        | MYSQL_TYPE_LONGLONG
                        | MYSQL_TYPE_ENUM
                        | MYSQL_TYPE_DATETIME2
                ),
            });
        }
        let json_columns = plan
            .iter()
            .filter(|c| c.column_type == ColumnType::MYSQL_TYPE_JSON)
            .count();
        let present = |cols: &bitvec::slice::BitSlice<u8>| (0..n).map(|i| bit(cols, i)).collect();
        Ok(RowDecoder {
            plan,
            json_columns,
            partial: matches!(ev, RowsEventData::PartialUpdateRowsEvent(_)),
            before_cols: ev.columns_before_image().map(present),
            after_cols: ev.columns_after_image().map(present),
            buf: ParseBuf(ev.rows_data()),
        })
    }

    /// Decodes the next row into `before` and `after` (cleared first); `None` once every row
    /// was read.
    pub fn next_row(
        &mut self,
        before: &mut Vec<(usize, Cell<'a>)>,
        after: &mut Vec<(usize, Cell<'a>)>,
    ) -> Result<Option<RowShape>, RowsError> {
        before.clear();
        after.clear();
        if self.buf.is_empty() {
            return Ok(None);
        }
        let left = self.buf.len();
        if let Some(cols) = &self.before_cols {
            decode_image(&mut self.buf, &self.plan, cols, None, before)?;
        }
        if let Some(cols) = &self.after_cols {
            let partial_bits = if self.partial {
                read_partial_bits(&mut self.buf, self.json_columns)?
            } else {
                None
            };
            decode_image(
                &mut self.buf,
                &self.plan,
                cols,
                partial_bits.as_deref(),
                after,
            )?;
        }
        let shape = RowShape {
            before: self.before_cols.is_some(),
            after: self.after_cols.is_some(),
        };
        if !shape.before && !shape.after {
            return Ok(None);
        }
        if self.buf.len() == left {
            // Images without a single column take no bytes: the same row would repeat forever.
            return Err(RowsError::EmptyRow);
        }
        Ok(Some(shape))
    }
}

fn take<'a>(buf: &mut ParseBuf<'a>, n: usize, what: &'static str) -> Result<&'a [u8], RowsError> {
    if buf.len() < n {
        return Err(RowsError::Truncated(what));
    }
    Ok(buf.eat(n))
}

/// [`canal_protocol::mysql::split_lenenc`] over a `ParseBuf`. A first byte of 0xfb or 0xff, which
/// starts no integer, is read as its own value, as this decoder always has.
fn read_lenenc(buf: &mut ParseBuf<'_>) -> Result<u64, RowsError> {
    let (value, taken) = match split_lenenc(buf.0) {
        Ok(read) => read,
        Err(LenencError::Reserved(first)) => (u64::from(first), 1),
        Err(LenencError::Truncated) => return Err(RowsError::Truncated("length-encoded integer")),
    };
    buf.eat(taken);
    Ok(value)
}

fn read_partial_bits(
    buf: &mut ParseBuf<'_>,
    json_columns: usize,
) -> Result<Option<Vec<bool>>, RowsError> {
    const PARTIAL_JSON_UPDATES: u64 = 1;
    let options = read_lenenc(buf)?;
    if options & PARTIAL_JSON_UPDATES == 0 {
        return Ok(None);
    }
    let bytes = take(buf, json_columns.div_ceil(8), "partial JSON bitmap")?;
    Ok(Some(
        (0..json_columns)
            .map(|i| bytes[i / 8] & (1 << (i % 8)) != 0)
            .collect(),
    ))
}

fn bit(bits: &bitvec::slice::BitSlice<u8>, i: usize) -> bool {
    bits.get(i).map(|b| *b).unwrap_or(false)
}

fn decode_image<'a>(
    buf: &mut ParseBuf<'a>,
    plan: &[ColumnPlan<'a>],
    cols: &[bool],
    partial_bits: Option<&[bool]>,
    image: &mut Vec<(usize, Cell<'a>)>,
) -> Result<(), RowsError> {
    let present = cols.iter().filter(|p| **p).count();
    let null_bitmap = take(buf, present.div_ceil(8), "null bitmap")?;
    image.reserve(present);
    let mut image_idx = 0usize;
    let mut json_idx = 0usize;
    for (i, (col, &present)) in plan.iter().zip(cols).enumerate() {
        let is_json = col.column_type == ColumnType::MYSQL_TYPE_JSON;
        let is_partial = is_json
            && partial_bits
                .and_then(|b| b.get(json_idx).copied())
                .unwrap_or(false);
        if is_json {
            json_idx += 1;
        }
        if !present {
            continue;
        }
        let is_null = null_bitmap[image_idx / 8] & (1 << (image_idx % 8)) != 0;
        image_idx += 1;
        if is_null {
            image.push((
                i,
                Cell::Value(BinlogValue::Value(mysql_common::Value::NULL)),
            ));
            continue;
        }
        if col.column_type == ColumnType::MYSQL_TYPE_TIME2 {
            image.push((i, Cell::Value(decode_time2(buf, col.meta[0], i)?)));
            continue;
        }
        // Values mysql_common would compute with overflow on are rejected first, whoever
        // decodes them.
        match col.column_type {
            ColumnType::MYSQL_TYPE_NEWDECIMAL => check_decimal(buf.0, col.meta, i)?,
            ColumnType::MYSQL_TYPE_DATETIME2 => check_datetime2(buf.0, col.meta[0], i)?,
            _ => {}
        }
        if col.common {
            if let Some(cell) = decode_common(buf, col) {
                image.push((i, cell));
                continue;
            }
        }
        let value = buf
            .parse::<BinlogValue<'a>>((col.column_type, col.meta, col.unsigned, is_partial))
            .map_err(|source| RowsError::Value {
                index: i,
                column_type: col.column_type,
                source,
            })?;
        image.push((i, Cell::Value(value)));
    }
    Ok(())
}

/// Integers, ENUM, DATETIME2, TIMESTAMP2, DECIMAL, strings and BLOBs decoded here exactly as
/// mysql_common 0.37 reads them (`BinlogValue::deserialize`, `Value::deserialize_bin`,
/// `my_datetime_packed_from_binary`, `my_timestamp_from_binary`), without copying. `None` for other
/// types, and when the bytes run short: mysql_common then decodes the value and reports the
/// error. The metadata was checked by `check_meta`.
fn decode_common<'a>(buf: &mut ParseBuf<'a>, col: &ColumnPlan<'a>) -> Option<Cell<'a>> {
    use ColumnType::*;
    let data: &[u8] = buf.0;
    let meta = col.meta;
    let le = |b: &[u8]| {
        b.iter()
            .rev()
            .fold(0usize, |acc, &x| acc << 8 | usize::from(x))
    };
    // (length prefix size, maximum length) of a string value.
    let int = |v: i64| Some(Cell::Value(BinlogValue::Value(mysql_common::Value::Int(v))));
    let (prefix, len) = match col.column_type {
        MYSQL_TYPE_TINY => {
            let b = *data.first()?;
            buf.eat(1);
            return int(if col.unsigned {
                i64::from(b)
            } else {
                i64::from(b as i8)
            });
        }
        MYSQL_TYPE_SHORT => {
            let b: [u8; 2] = data.get(..2)?.try_into().ok()?;
            buf.eat(2);
            return int(if col.unsigned {
                i64::from(u16::from_le_bytes(b))
            } else {
                i64::from(i16::from_le_bytes(b))
            });
        }
        MYSQL_TYPE_INT24 => {
            let b = data.get(..3)?;
            buf.eat(3);
            // mysql_common reads it unsigned either way (its LeI24 does not sign-extend); the
            // value printer reads the 3 bytes signed.
            return int(i64::from(u32::from_le_bytes([b[0], b[1], b[2], 0])));
        }
        MYSQL_TYPE_LONG => {
            let b: [u8; 4] = data.get(..4)?.try_into().ok()?;
            buf.eat(4);
            return int(if col.unsigned {
                i64::from(u32::from_le_bytes(b))
            } else {
                i64::from(i32::from_le_bytes(b))
            });
        }
        MYSQL_TYPE_LONGLONG => {
            let b: [u8; 8] = data.get(..8)?.try_into().ok()?;
            buf.eat(8);
            if col.unsigned {
                let v = u64::from_le_bytes(b);
                return Some(Cell::Value(BinlogValue::Value(match i64::try_from(v) {
                    Ok(v) => mysql_common::Value::Int(v),
                    Err(_) => mysql_common::Value::UInt(v),
                })));
            }
            return int(i64::from_le_bytes(b));
        }
        MYSQL_TYPE_ENUM => {
            let v = match meta[1] {
                1 => i64::from(*data.first()?),
                2 => i64::from(u16::from_le_bytes(data.get(..2)?.try_into().ok()?)),
                _ => return None,
            };
            buf.eat(usize::from(meta[1]));
            return int(v);
        }
        MYSQL_TYPE_DATETIME2 => {
            const DATETIMEF_INT_OFS: i64 = 0x80_0000_0000;
            let frac_len = match meta[0] {
                1 | 2 => 1,
                3 | 4 => 2,
                5 | 6 => 3,
                _ => 0,
            };
            let b = data.get(..5 + frac_len)?;
            let intpart =
                b[..5].iter().fold(0i64, |acc, &x| acc << 8 | i64::from(x)) - DATETIMEF_INT_OFS;
            let frac = match frac_len {
                1 => i64::from(b[5] as i8) * 10_000,
                2 => i64::from(i16::from_be_bytes([b[5], b[6]])) * 100,
                3 => i64::from(i32::from_be_bytes([b[5], b[6], b[7], 0]) >> 8),
                _ => 0,
            };
            buf.eat(5 + frac_len);
            // my_packed_time_make, then datetime_from_packed (which wraps where a debug
            // build of mysql_common would overflow).
            let mut tmp = (((intpart as u64) << 24) as i64).wrapping_add(frac);
            if tmp < 0 {
                tmp = tmp.wrapping_neg();
            }
            let usec = tmp % (1 << 24);
            let ymdhms = tmp >> 24;
            let ymd = ymdhms >> 17;
            let ym = ymd >> 5;
            let hms = ymdhms % (1 << 17);
            return Some(Cell::Value(BinlogValue::Value(mysql_common::Value::Date(
                (ym / 13) as u32 as u16,
                (ym % 13) as u8,
                (ymd % (1 << 5)) as u8,
                (hms >> 12) as u32 as u8,
                ((hms >> 6) % (1 << 6)) as u8,
                (hms % (1 << 6)) as u8,
                usec as u32,
            ))));
        }
        MYSQL_TYPE_VARCHAR | MYSQL_TYPE_VAR_STRING => {
            let max = le(&meta[..2]);
            let prefix = if max < 256 { 1 } else { 2 };
            (prefix, le(data.get(..prefix)?))
        }
        MYSQL_TYPE_STRING => {
            let max = if meta[0] >= 1 {
                let (b0, b1) = (usize::from(meta[0]), usize::from(meta[1]));
                if b0 & 0x30 != 0x30 {
                    // A long CHAR(): see MySQL bug #37426.
                    b1 | (((b0 & 0x30) ^ 0x30) << 4)
                } else {
                    b1
                }
            } else {
                le(&meta[..2])
            };
            let prefix = if max < 256 { 1 } else { 2 };
            (prefix, le(data.get(..prefix)?))
        }
        MYSQL_TYPE_TINY_BLOB
        | MYSQL_TYPE_MEDIUM_BLOB
        | MYSQL_TYPE_LONG_BLOB
        | MYSQL_TYPE_BLOB
        | MYSQL_TYPE_GEOMETRY
        | MYSQL_TYPE_VECTOR => {
            let prefix = usize::from(meta[0]);
            if !(1..=4).contains(&prefix) {
                return None;
            }
            (prefix, le(data.get(..prefix)?))
        }
        MYSQL_TYPE_NEWDECIMAL => {
            let (precision, scale) = (meta[0], meta[1]);
            let size = decimal_bin_size(usize::from(precision), usize::from(scale));
            let raw = data.get(..size)?;
            buf.eat(size);
            return Some(Cell::NewDecimal {
                raw,
                precision,
                scale,
            });
        }
        MYSQL_TYPE_TIMESTAMP2 => {
            let frac_len = match meta[0] {
                1 | 2 => 1,
                3 | 4 => 2,
                5 | 6 => 3,
                _ => 0,
            };
            let b = data.get(..4 + frac_len)?;
            let secs = u32::from_be_bytes([b[0], b[1], b[2], b[3]]);
            let fraction = match frac_len {
                1 => i32::from(b[4] as i8) * 10_000,
                2 => i32::from(i16::from_be_bytes([b[4], b[5]])) * 100,
                // Sign-extended 24-bit big-endian.
                3 => i32::from_be_bytes([b[4], b[5], b[6], 0]) >> 8,
                _ => 0,
            };
            buf.eat(4 + frac_len);
            return Some(Cell::Timestamp2 { secs, fraction });
        }
        _ => return None,
    };
    let bytes = data.get(prefix..prefix.checked_add(len)?)?;
    buf.eat(prefix + len);
    Some(Cell::Bytes(bytes))
}

/// Rejects a NEWDECIMAL value whose digit groups are out of range, as MySQL's `bin2decimal`
/// does, before mysql_common reads it: mysql_common scales the last fractional group without a
/// check (`x *= 10^(9 - digits)`), which overflows on corrupt bytes. Short input is left to
/// mysql_common's EOF error. `meta` (precision, scale) was checked by `check_meta`.
pub(crate) fn check_decimal(data: &[u8], meta: &[u8], index: usize) -> Result<(), RowsError> {
    const DIG_PER_DEC: usize = 9;
    const DIG_TO_BYTES: [usize; DIG_PER_DEC + 1] = [0, 1, 1, 2, 2, 3, 3, 4, 4, 4];
    let (precision, scale) = (meta[0] as usize, meta[1] as usize);
    let intg = precision - scale;
    // Digit counts of the groups, most significant first.
    let groups = std::iter::once(intg % DIG_PER_DEC)
        .chain(std::iter::repeat_n(DIG_PER_DEC, intg / DIG_PER_DEC))
        .chain(std::iter::repeat_n(DIG_PER_DEC, scale / DIG_PER_DEC))
        .chain(std::iter::once(scale % DIG_PER_DEC))
        .filter(|&digits| digits > 0);
    let size: usize = groups.clone().map(|d| DIG_TO_BYTES[d]).sum();
    if data.len() < size {
        return Ok(());
    }
    // A copy on the stack (at most 30 bytes: DECIMAL(65,30)) with the sign bit flipped.
    let mut copy = [0u8; 32];
    let bytes = &mut copy[..size.min(32)];
    bytes.copy_from_slice(&data[..bytes.len()]);
    if let Some(first) = bytes.first_mut() {
        *first ^= 0x80;
    }
    let mask: i32 = if bytes.first().is_some_and(|b| b & 0x80 != 0) {
        -1
    } else {
        0
    };
    let mut at = 0;
    for digits in groups {
        let len = DIG_TO_BYTES[digits];
        let group = &bytes[at..at + len];
        at += len;
        // Big-endian, sign-extended from `len` bytes, as mysql_common reads it.
        let raw = group.iter().fold(0i64, |acc, &b| acc << 8 | i64::from(b));
        let shift = 64 - 8 * len as u32;
        let x = ((raw << shift) >> shift) as i32 ^ mask;
        if !(0..10i32.pow(digits as u32)).contains(&x) {
            return Err(RowsError::Value {
                index,
                column_type: ColumnType::MYSQL_TYPE_NEWDECIMAL,
                source: std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!("DECIMAL({precision},{scale}) digit group {x} out of range"),
                ),
            });
        }
    }
    Ok(())
}

/// Rejects a DATETIME2 value MySQL cannot have written (`my_datetime_packed_to_binary`): a
/// negative integer part (sign bit of the first byte clear) or a fraction group outside
/// `0..10^digits`. mysql_common computes with such values without checks: an all-zero integer
/// part becomes `i64::MIN` and is negated, which overflows. Short input is left to mysql_common's
/// EOF error. `fsp` was checked (≤ 6) by `check_meta`.
fn check_datetime2(data: &[u8], fsp: u8, index: usize) -> Result<(), RowsError> {
    let frac_len = (fsp as usize).div_ceil(2);
    let Some(b) = data.get(..5 + frac_len) else {
        return Ok(());
    };
    // Big-endian, sign-extended, as mysql_common reads the fraction.
    let frac = b[5..].iter().fold(0i64, |acc, &x| acc << 8 | i64::from(x));
    let shift = 64 - 8 * frac_len as u32;
    let frac = if frac_len == 0 {
        0
    } else {
        (frac << shift) >> shift
    };
    if b[0] & 0x80 == 0 || !(0..10i64.pow(2 * frac_len as u32)).contains(&frac) {
        return Err(RowsError::Value {
            index,
            column_type: ColumnType::MYSQL_TYPE_DATETIME2,
            source: std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("DATETIME2({fsp}) value {:02x?} out of range", b),
            ),
        });
    }
    Ok(())
}

/// Rejects metadata mysql_common would index out of bounds or compute with overflow on.
fn check_meta(index: usize, column_type: ColumnType, meta: &[u8]) -> Result<(), RowsError> {
    use ColumnType::*;
    let bad = || RowsError::BadMeta {
        index,
        column_type,
        meta: meta.to_vec(),
    };
    let need = match column_type {
        // mysql_common's value decoder reads a typed array's element type from the first
        // metadata byte, but its TABLE_MAP parser hands over the element's metadata without that
        // byte (none at all for integer elements): such a value cannot be decoded.
        MYSQL_TYPE_TYPED_ARRAY => return Err(RowsError::BadColumnType(index)),
        MYSQL_TYPE_FLOAT
        | MYSQL_TYPE_DOUBLE
        | MYSQL_TYPE_BLOB
        | MYSQL_TYPE_TINY_BLOB
        | MYSQL_TYPE_MEDIUM_BLOB
        | MYSQL_TYPE_LONG_BLOB
        | MYSQL_TYPE_GEOMETRY
        | MYSQL_TYPE_JSON
        | MYSQL_TYPE_VECTOR => 1,
        MYSQL_TYPE_TIME2 | MYSQL_TYPE_DATETIME2 | MYSQL_TYPE_TIMESTAMP2 => {
            if meta.first().is_some_and(|fsp| *fsp > 6) {
                return Err(bad());
            }
            1
        }
        MYSQL_TYPE_VARCHAR
        | MYSQL_TYPE_VAR_STRING
        | MYSQL_TYPE_STRING
        | MYSQL_TYPE_ENUM
        | MYSQL_TYPE_SET
        | MYSQL_TYPE_BIT => 2,
        MYSQL_TYPE_NEWDECIMAL => {
            if meta.len() >= 2 && (meta[0] < meta[1] || meta[0] > 65 || meta[1] > 30) {
                return Err(bad());
            }
            2
        }
        _ => 0,
    };
    if meta.len() < need {
        return Err(bad());
    }
    Ok(())
}

/// TIME2 (MySQL 5.6.4+ `my_time_packed_from_binary`), decoded here because mysql_common
/// overflows on negative values with one or two fractional digits.
fn decode_time2(
    buf: &mut ParseBuf<'_>,
    fsp: u8,
    index: usize,
) -> Result<BinlogValue<'static>, RowsError> {
    const TIMEF_INT_OFS: i64 = 0x80_0000;
    const TIMEF_OFS: i64 = 0x8000_0000_0000;
    let frac_len = (fsp as usize).div_ceil(2);
    let b = take(buf, 3 + frac_len, "TIME2 value")?;
    let int3 = ((b[0] as i64) << 16) | ((b[1] as i64) << 8) | b[2] as i64;
    let packed: i64 = match fsp {
        0 => (int3 - TIMEF_INT_OFS) << 24,
        1 | 2 => {
            let mut intpart = int3 - TIMEF_INT_OFS;
            let mut frac = b[3] as i64;
            if intpart < 0 && frac != 0 {
                intpart += 1;
                frac -= 0x100;
            }
            (intpart << 24) + frac * 10_000
        }
        3 | 4 => {
            let mut intpart = int3 - TIMEF_INT_OFS;
            let mut frac = u16::from_be_bytes([b[3], b[4]]) as i64;
            if intpart < 0 && frac != 0 {
                intpart += 1;
                frac -= 0x10000;
            }
            (intpart << 24) + frac * 100
        }
        5 | 6 => {
            let mut v: i64 = 0;
            for x in &b[..6] {
                v = (v << 8) | *x as i64;
            }
            v - TIMEF_OFS
        }
        _ => {
            return Err(RowsError::BadMeta {
                index,
                column_type: ColumnType::MYSQL_TYPE_TIME2,
                meta: vec![fsp],
            })
        }
    };
    let neg = packed < 0;
    let abs = packed.unsigned_abs();
    let hms = abs >> 24;
    let micros = (abs % (1 << 24)) as u32;
    let hour = ((hms >> 12) % (1 << 10)) as u32;
    let minute = ((hms >> 6) % (1 << 6)) as u8;
    let second = (hms % (1 << 6)) as u8;
    Ok(BinlogValue::Value(mysql_common::Value::Time(
        neg,
        hour / 24,
        (hour % 24) as u8,
        minute,
        second,
        micros,
    )))
}

#[cfg(test)]
mod tests {
    use mysql_common::proto::MyDeserialize;

    use super::*;

    /// `decode_common` against mysql_common on the same bytes: same value, same bytes consumed,
    /// and for short input no value (mysql_common then reports the error).
    fn same_as_mysql_common(column_type: ColumnType, meta: &[u8], bytes: &[u8]) {
        same_as_mysql_common_signed(column_type, meta, false, bytes);
    }

    fn same_as_mysql_common_signed(
        column_type: ColumnType,
        meta: &[u8],
        unsigned: bool,
        bytes: &[u8],
    ) {
        let col = ColumnPlan {
            column_type,
            meta,
            unsigned,
            common: true,
        };
        let rejected = match column_type {
            ColumnType::MYSQL_TYPE_NEWDECIMAL => check_decimal(bytes, meta, 0).is_err(),
            ColumnType::MYSQL_TYPE_DATETIME2 => check_datetime2(bytes, meta[0], 0).is_err(),
            _ => false,
        };
        if rejected {
            // Rejected before either decoder runs (mysql_common would overflow on some).
            return;
        }
        let mut ours = ParseBuf(bytes);
        let fast = decode_common(&mut ours, &col).map(Cell::into_value);
        let mut theirs = ParseBuf(bytes);
        let reference = BinlogValue::deserialize((column_type, meta, unsigned, false), &mut theirs)
            .map(BinlogValue::into_owned);
        match (fast, reference) {
            (Some(v), Ok(r)) => {
                assert_eq!(v, r, "{column_type:?} {meta:?} {bytes:02x?}");
                assert_eq!(ours.len(), theirs.len(), "{column_type:?} {bytes:02x?}");
            }
            (None, Err(_)) => assert_eq!(ours.len(), bytes.len(), "nothing consumed"),
            (fast, reference) => panic!(
                "{column_type:?} {meta:?} {bytes:02x?}: ours {fast:?}, mysql_common {reference:?}"
            ),
        }
    }

    #[test]
    fn common_types_decode_like_mysql_common() {
        use ColumnType::*;
        let long: Vec<u8> = (0..300u32).map(|i| (i % 251) as u8).collect();
        let mut cases: Vec<(ColumnType, Vec<u8>, Vec<u8>)> = Vec::new();
        for (ty, meta) in [
            (MYSQL_TYPE_VARCHAR, vec![20, 0]),
            (MYSQL_TYPE_VARCHAR, vec![0x2c, 0x01]),
            (MYSQL_TYPE_VAR_STRING, vec![255, 0]),
            (MYSQL_TYPE_VAR_STRING, vec![0, 1]),
            // CHAR(10) utf8mb4 (real type 254, 40 bytes), long CHAR(255) utf8mb4, old layout.
            (MYSQL_TYPE_STRING, vec![0xfe, 40]),
            (MYSQL_TYPE_STRING, vec![0xee, 0xfc]),
            (MYSQL_TYPE_STRING, vec![0, 1]),
            (MYSQL_TYPE_STRING, vec![0, 0]),
        ] {
            for n in [0usize, 1, 5, 255, 256, 300] {
                for prefix in [1usize, 2] {
                    let mut b = (n as u16).to_le_bytes()[..prefix].to_vec();
                    b.extend_from_slice(&long[..n.min(long.len())]);
                    b.extend_from_slice(&[7, 7]);
                    cases.push((ty, meta.clone(), b.clone()));
                    // Truncated.
                    b.truncate(b.len().saturating_sub(3));
                    cases.push((ty, meta.clone(), b));
                }
            }
        }
        for ty in [
            MYSQL_TYPE_TINY_BLOB,
            MYSQL_TYPE_BLOB,
            MYSQL_TYPE_MEDIUM_BLOB,
            MYSQL_TYPE_LONG_BLOB,
            MYSQL_TYPE_GEOMETRY,
        ] {
            for prefix in 1u8..=4 {
                for n in [0usize, 3, 300] {
                    let mut b = (n as u32).to_le_bytes()[..usize::from(prefix)].to_vec();
                    b.extend_from_slice(&long[..n]);
                    cases.push((ty, vec![prefix], b.clone()));
                    b.pop();
                    cases.push((ty, vec![prefix], b));
                }
            }
            cases.push((ty, vec![5], vec![1, 0, 0, 0, 0, 9]));
        }
        for fsp in 0u8..=6 {
            for frac in [
                vec![],
                vec![0],
                vec![0x7f],
                vec![0x80],
                vec![0xff],
                vec![0, 0],
                vec![0x27, 0x0f],
                vec![0xff, 0xff],
                vec![0x0f, 0x42, 0x3f],
                vec![0x0f, 0x42, 0x40],
                vec![0xff, 0xff, 0xff],
                vec![0x80, 0, 1],
            ] {
                for secs in [0u32, 1, 1_700_000_000, 0x7fff_ffff, 0x8000_0000, u32::MAX] {
                    let mut b = secs.to_be_bytes().to_vec();
                    b.extend_from_slice(&frac);
                    cases.push((MYSQL_TYPE_TIMESTAMP2, vec![fsp], b));
                }
            }
            cases.push((MYSQL_TYPE_TIMESTAMP2, vec![fsp], vec![1, 2, 3]));
        }
        for (p, sc) in [
            (1u8, 0u8),
            (10, 2),
            (12, 2),
            (18, 9),
            (65, 30),
            (30, 30),
            (20, 0),
        ] {
            let size = decimal_bin_size(usize::from(p), usize::from(sc));
            for fill in [0x00u8, 0x80, 0x7f, 0xff, 0x81, 0x12] {
                let mut b = vec![fill; size + 2];
                b[0] ^= 0x80;
                cases.push((MYSQL_TYPE_NEWDECIMAL, vec![p, sc], b.clone()));
                b.truncate(size.saturating_sub(1));
                cases.push((MYSQL_TYPE_NEWDECIMAL, vec![p, sc], b));
            }
        }
        for (ty, meta, bytes) in cases {
            same_as_mysql_common(ty, &meta, &bytes);
        }
    }

    #[test]
    fn integers_enum_and_datetime2_decode_like_mysql_common() {
        use ColumnType::*;
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let patterns = |n: usize, r: u64| -> Vec<Vec<u8>> {
            vec![
                vec![0; n],
                vec![0xff; n],
                vec![0x7f; n],
                vec![0x80; n],
                r.to_le_bytes().iter().cycle().take(n).copied().collect(),
            ]
        };
        for _ in 0..200 {
            let r = next();
            for unsigned in [false, true] {
                for (ty, meta, n) in [
                    (MYSQL_TYPE_TINY, vec![], 1),
                    (MYSQL_TYPE_SHORT, vec![], 2),
                    (MYSQL_TYPE_INT24, vec![], 3),
                    (MYSQL_TYPE_LONG, vec![], 4),
                    (MYSQL_TYPE_LONGLONG, vec![], 8),
                    (MYSQL_TYPE_ENUM, vec![0xf7, 1], 1),
                    (MYSQL_TYPE_ENUM, vec![0xf7, 2], 2),
                ] {
                    for mut b in patterns(n, r) {
                        same_as_mysql_common_signed(ty, &meta, unsigned, &b);
                        b.pop();
                        same_as_mysql_common_signed(ty, &meta, unsigned, &b);
                    }
                }
            }
            for fsp in 0u8..=6 {
                let frac = [0, 1, 1, 2, 2, 3, 3][usize::from(fsp)];
                // A valid DATETIME(fsp) (packed year*13+month, day, h, m, s) and random
                // bytes with the sign bit MySQL always writes (check_datetime2 rejects others).
                let ym = (1000 + r % 9000) * 13 + r % 13;
                let ymd = (ym << 5) | ((r >> 8) % 32);
                let hms = (((r >> 16) % 24) << 12) | (((r >> 24) % 60) << 6) | ((r >> 32) % 60);
                let packed = (ymd << 17) | hms;
                let mut valid = (packed as i64 + 0x80_0000_0000).to_be_bytes()[3..].to_vec();
                valid.extend((0..frac).map(|k| (r >> (40 + 8 * k)) as u8));
                let mut random: Vec<u8> = (0..5 + frac).map(|k| (r >> (k * 7)) as u8).collect();
                random[0] = 0x80 | (random[0] & 0x3f);
                for mut b in [valid, random] {
                    same_as_mysql_common(MYSQL_TYPE_DATETIME2, &[fsp], &b);
                    b.pop();
                    same_as_mysql_common(MYSQL_TYPE_DATETIME2, &[fsp], &b);
                }
            }
        }
    }

    fn time2(bytes: &[u8], fsp: u8) -> mysql_common::Value {
        match decode_time2(&mut ParseBuf(bytes), fsp, 0).unwrap() {
            BinlogValue::Value(v) => v,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn time2_negative_with_fraction_does_not_overflow() {
        // Disk values from MySQL's my_time.cc table (fsp 2): 7FFFFE.CE is -00:00:01.50,
        // 7FFFFF.FF is -00:00:00.01, 7FFFFE.F6 is -00:00:01.10.
        let t = mysql_common::Value::Time;
        assert_eq!(
            time2(&[0x7f, 0xff, 0xfe, 0xce], 2),
            t(true, 0, 0, 0, 1, 500_000)
        );
        assert_eq!(
            time2(&[0x7f, 0xff, 0xff, 0xff], 2),
            t(true, 0, 0, 0, 0, 10_000)
        );
        assert_eq!(
            time2(&[0x7f, 0xff, 0xfe, 0xf6], 2),
            t(true, 0, 0, 0, 1, 100_000)
        );
        assert_eq!(time2(&[0x80, 0x00, 0x00, 0x00], 2), t(false, 0, 0, 0, 0, 0));
    }

    #[test]
    fn decimal_digit_groups_checked_before_mysql_common() {
        let value = |bytes: &[u8], meta: &[u8]| match ParseBuf(bytes)
            .parse::<BinlogValue<'_>>((ColumnType::MYSQL_TYPE_NEWDECIMAL, meta, false, false))
            .unwrap()
        {
            BinlogValue::Value(mysql_common::Value::Bytes(b)) => String::from_utf8(b).unwrap(),
            other => panic!("{other:?}"),
        };
        // DECIMAL(9,1): 8 integer digits in 4 bytes, 1 fractional digit in 1 byte.
        let meta = [9u8, 1];
        // 12345678.5 and -12345678.5 as MySQL writes them.
        let pos = [0x80, 0xbc, 0x61, 0x4e, 0x05];
        let neg: Vec<u8> = pos.iter().map(|b| !b).collect();
        assert!(check_decimal(&pos, &meta, 0).is_ok());
        assert!(check_decimal(&neg, &meta, 0).is_ok());
        assert_eq!(value(&pos, &meta), "12345678.5");
        assert_eq!(value(&neg, &meta), "-12345678.5");
        // Found by fuzzing: a one-digit fractional group of 0x7f made mysql_common compute
        // 127 * 10^8 in an i32 and overflow.
        let bad = [0x80, 0xbc, 0x61, 0x4e, 0x7f];
        assert!(matches!(
            check_decimal(&bad, &meta, 3),
            Err(RowsError::Value { index: 3, .. })
        ));
        let bad_neg: Vec<u8> = bad.iter().map(|b| !b).collect();
        assert!(check_decimal(&bad_neg, &meta, 0).is_err());
        // DECIMAL(18,9): a full 9-digit group of 1000000000.
        assert!(check_decimal(&[0xbb, 0x9a, 0xca, 0x00, 0, 0, 0, 0], &[18, 9], 0).is_err());
        assert!(check_decimal(&[0xbb, 0x9a, 0xc9, 0xff, 0, 0, 0, 0], &[18, 9], 0).is_ok());
        // A short buffer is left to mysql_common's EOF error.
        assert!(check_decimal(&pos[..3], &meta, 0).is_ok());
    }

    #[test]
    fn datetime2_out_of_range_rejected_before_mysql_common() {
        // 2017-04-24 05:45:11.123 with fsp 3, as MySQL writes it: packed ymd/hms + 0x80_0000_0000,
        // then the fraction (123 ms = 1230 in 4 digits) as a 2-byte big-endian group.
        let ym: i64 = 2017 * 13 + 4;
        let ymdhms: i64 = (((ym << 5) | 24) << 17) | (5 << 12) | (45 << 6) | 11;
        let int = (ymdhms + 0x80_0000_0000).to_be_bytes();
        let mut good = int[3..].to_vec();
        good.extend_from_slice(&1230u16.to_be_bytes());
        assert!(check_datetime2(&good, 3, 0).is_ok());
        let parsed = ParseBuf(&good)
            .parse::<BinlogValue<'_>>((ColumnType::MYSQL_TYPE_DATETIME2, &[3u8][..], false, false))
            .unwrap();
        assert!(matches!(
            parsed,
            BinlogValue::Value(mysql_common::Value::Date(2017, 4, 24, 5, 45, 11, 123_000))
        ));
        // Found by fuzzing: an all-zero integer part is i64::MIN after packing, and mysql_common
        // negates it.
        assert!(matches!(
            check_datetime2(&[0, 0, 0, 0, 0], 0, 2),
            Err(RowsError::Value { index: 2, .. })
        ));
        // A negative or too large fraction group.
        let mut bad = good.clone();
        bad[5] = 0xff;
        assert!(check_datetime2(&bad, 3, 0).is_err());
        bad[5..].copy_from_slice(&10_000u16.to_be_bytes());
        assert!(check_datetime2(&bad, 3, 0).is_err());
        // Short input is left to mysql_common's EOF error.
        assert!(check_datetime2(&good[..4], 3, 0).is_ok());
    }

    #[test]
    fn typed_array_columns_are_refused() {
        // Found by fuzzing (binlog_rows): a TYPED_ARRAY column with an INT element has no
        // metadata, and mysql_common indexed its first byte.
        assert!(matches!(
            check_meta(1, ColumnType::MYSQL_TYPE_TYPED_ARRAY, &[]),
            Err(RowsError::BadColumnType(1))
        ));
        assert!(check_meta(1, ColumnType::MYSQL_TYPE_TYPED_ARRAY, &[3]).is_err());
    }

    #[test]
    fn time2_positive_values() {
        // 838:59:59 with fsp 0: hms = 838<<12 | 59<<6 | 59
        let hms: i64 = (838 << 12) | (59 << 6) | 59;
        let stored = (hms + 0x80_0000) as u32;
        let bytes = [(stored >> 16) as u8, (stored >> 8) as u8, stored as u8];
        assert_eq!(
            time2(&bytes, 0),
            mysql_common::Value::Time(false, 34, 22, 59, 59, 0)
        );
        assert!(
            decode_time2(&mut ParseBuf(&bytes[..2]), 0, 0).is_err(),
            "truncated"
        );
    }
}
