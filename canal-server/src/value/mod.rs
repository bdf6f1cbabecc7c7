//! Column values as alibaba/canal prints them: `Column.value`, `isNull`, `sqlType` and
//! `mysqlType` for every MySQL column type (compat reference section 3, fields from 2.5).
//!
//! The row decoder hands us one column's [`BinlogValue`] as mysql_common 0.37 decoded it, plus
//! a [`ColumnDesc`] (TABLE_MAP type and metadata, and what the schema says about the column).
//! [`format_value`] returns the [`CanalValue`] Canal would put in the entry. [`ValueOptions`]
//! holds per-destination switches for the places where the reference calls Canal's output a
//! defect; [`ValueOptions::default`] is Canal's exact behaviour.
//!
//! # What mysql_common gives us, per binlog column type
//!
//! Read from mysql_common 0.37.3 `src/binlog/value.rs` (`BinlogValue::deserialize`) and
//! `src/binlog/misc.rs`. NULL is always `Value(NULL)`. "Canal text" is what we print.
//!
//! | binlog type (meta) | mysql_common value | Canal text |
//! | --- | --- | --- |
//! | TINY, SHORT, LONG, LONGLONG | `Int(i64)`, or `UInt(u64)` when it was told "unsigned" | signed reading, widened if the column is unsigned |
//! | INT24 | `Int` (read unsigned when told so) | same |
//! | NEWDECIMAL (precision, scale) | `Bytes`: plain text with exactly `scale` fraction digits | Canal's DECIMAL quirk (3.3) |
//! | FLOAT / DOUBLE | `Float(f32)` / `Double(f64)` | Java `Float`/`Double.toString` |
//! | BIT (bits, bytes) | `Bytes`: the big-endian bytes | unsigned decimal |
//! | YEAR | `Bytes`: `1900 + stored byte` as text (zero year gives `"1900"`) | `0000` or the year |
//! | DATE (mysql_common reports it as NEWDATE) | `Date(y, m, d, 0, 0, 0, 0)` | `YYYY-MM-DD` |
//! | TIME (pre-5.6.4) | `Time(false, 0, h, m, s, 0)`; hours are cut to 8 bits and negative values are garbled by mysql_common | `hh:mm:ss` |
//! | TIME2 (fsp) | `Time(neg, days, h, m, s, µs)` | `[-]hh:mm:ss[.f…]` |
//! | DATETIME (pre-5.6.4) | `Date(y, m, d, h, i, s, 0)` | `YYYY-MM-DD hh:mm:ss` |
//! | DATETIME2 (fsp) | `Date(y, m, d, h, i, s, µs)` | `YYYY-MM-DD hh:mm:ss[.f…]` |
//! | TIMESTAMP (pre-5.6.4) | `Int(epoch seconds)` | local time at [`UtcOffset`] |
//! | TIMESTAMP2 (fsp) | `Bytes`: `"<secs>"` or `"<secs>.<µs, 6 digits>"` | local time at [`UtcOffset`] `[.f…]` |
//! | VARCHAR, VAR_STRING, STRING (CHAR/BINARY) | `Bytes` (CHAR without trailing spaces, BINARY with its 0x00 padding) | charset text or Latin-1 |
//! | ENUM (STRING with real type 247) | `Int(1-based index)` | the index |
//! | SET (STRING with real type 248) | `Bytes`: little-endian bitmask | the mask |
//! | BLOB family, GEOMETRY, VECTOR | `Bytes` | Latin-1, or charset text for TEXT columns |
//! | JSON | `Jsonb(..)`; `JsonDiff(..)` for partial updates; an empty value is `Jsonb(Null)` | Canal's JSON text (3.5) |
//!
//! # Caveats for the row decoder (mysql_common 0.37.3)
//!
//! * TIME(1)/TIME(2) negative values with a non-zero fraction (`-00:00:01.50`) make
//!   `my_time_packed_from_binary` subtract below zero on a `u32`: a panic with overflow checks
//!   (debug builds), a wrong value without. TIME(0) and TIME(3..=6) are fine.
//! * `BinlogValue::deserialize` indexes the metadata (`col_meta[0]`, `col_meta[1]`) without
//!   checking its length, and NEWDECIMAL computes `precision - scale` unchecked: TABLE_MAP
//!   metadata must be validated before decoding rows with it.
//! * A zero-length JSON value decodes as JSON `null` (printed `null`); Canal prints an empty
//!   string. The two cannot be told apart from the decoded value.
//! * Pre-5.6.4 TIME values are decoded with their hours cut to 8 bits and negative values
//!   garbled, so only `00:00:00`..`255:59:59` survive.
//!
//! # Options that change Canal's output
//!
//! See [`ValueOptions`]: ENUM/SET labels, exact DECIMAL scale, the TIMESTAMP zone, per-column
//! charsets, a derived `mysqlType` when the schema is unknown, and TIME's 100-hour quirk.

mod charset;
mod decimal;
mod enum_set;
mod java_float;
mod json;
mod mysql_type;
mod sql_type;
mod temporal;

use std::borrow::Cow;

use mysql_common::binlog::value::BinlogValue;
use mysql_common::constants::ColumnType;
use mysql_common::value::Value;

pub use charset::Charset;
pub(crate) use decimal::{canal_decimal, decimal_bin_size, mysql_decimal_text};
pub use java_float::{java_double_to_string, java_float_to_string};
pub use sql_type::java_types;
pub use temporal::UtcOffset;

use java_types as jt;

/// What the decoder knows about one column when formatting its value.
#[derive(Debug, Clone, Copy)]
pub struct ColumnDesc<'a> {
    /// Column type from the TABLE_MAP event. STRING columns whose metadata names ENUM or SET are
    /// resolved here, so both the raw type and mysql_common's resolved type are accepted.
    pub column_type: ColumnType,
    /// The column's TABLE_MAP metadata bytes (mysql_common `TableMapEvent::get_column_metadata`).
    pub meta: &'a [u8],
    /// Signedness from the TABLE_MAP `SIGNEDNESS` metadata. Used only when there is no type
    /// text, as Canal does; otherwise `unsigned`/`zerofill` in the type text decides.
    pub unsigned: bool,
    /// Collation id when known (63 = binary); used only by opt-in options.
    pub collation: Option<u16>,
    /// ENUM/SET member labels when known (TABLE_MAP FULL metadata or schema).
    pub enum_set_labels: Option<&'a [String]>,
    /// Column type text from the schema (`int(10) unsigned`, `varchar(20)`, `enum('a','b')`);
    /// Canal's `mysqlType`. `None` when Canal would have no table metadata.
    pub declared_type: Option<&'a str>,
    /// Column name, printed in partial JSON updates (`JSON_REPLACE(name, …)`); Canal prints
    /// an empty name when it has none.
    pub name: Option<&'a str>,
}

impl<'a> ColumnDesc<'a> {
    /// A column known only from the binlog: no schema, collation, labels or name.
    pub fn new(column_type: ColumnType, meta: &'a [u8]) -> Self {
        ColumnDesc {
            column_type,
            meta,
            unsigned: false,
            collation: None,
            enum_set_labels: None,
            declared_type: None,
            name: None,
        }
    }
}

/// Per-destination output switches. The default reproduces Canal exactly; each `true` (or
/// non-default) field replaces one behaviour the reference marks as a Canal defect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValueOptions {
    /// Charset for every CHAR/VARCHAR/TEXT value and JSON string (Canal:
    /// `canal.instance.connectionCharset`, default UTF-8).
    pub connection_charset: Charset,
    /// Decode text with the column's own collation charset when it is known and supported
    /// (utf8/utf8mb3/utf8mb4, latin1, ascii, ucs2/utf16/utf16le/utf32); a `binary` collation
    /// keeps the bytes as Latin-1. Canal: `false`.
    pub per_column_charset: bool,
    /// Print an ENUM as its member label (`''` for index 0), with sqlType VARCHAR (12).
    /// Canal: `false`, the 1-based index with sqlType INTEGER (4).
    pub enum_as_label: bool,
    /// Print a SET as its comma-separated member labels, with sqlType VARCHAR (12).
    /// Canal: `false`, the bitmask with sqlType BIT (-7) (BLOB (2004) when NULL).
    pub set_as_labels: bool,
    /// Print DECIMALs with exactly the column's scale (`1.00`). Canal: `false` (`1.0`, 3.3).
    pub decimal_exact_scale: bool,
    /// Offset at which TIMESTAMP values are rendered. Canal uses its JVM's zone; the default
    /// is the official Canal Docker image's UTC+08:00.
    pub timestamp_zone: UtcOffset,
    /// When the column has no type text, derive `mysqlType` from the binlog (see
    /// [`ColumnDesc::declared_type`]) and classify TEXT/BLOB and CHAR/BINARY by it.
    /// Canal: `false` (no `mysqlType`; BLOB-family values as Latin-1).
    pub derive_missing_mysql_type: bool,
    /// Print a TIME of exactly 100 hours as `100:…`. Canal: `false`, `00:…` for the pre-5.6.4
    /// TIME format and TIME inside JSON (TIME2 columns always print `100:…`).
    pub fix_time_100_hours: bool,
}

impl Default for ValueOptions {
    fn default() -> Self {
        ValueOptions {
            connection_charset: Charset::Utf8,
            per_column_charset: false,
            enum_as_label: false,
            set_as_labels: false,
            decimal_exact_scale: false,
            timestamp_zone: UtcOffset::CANAL_DOCKER,
            derive_missing_mysql_type: false,
            fix_time_100_hours: false,
        }
    }
}

/// One column's value fields as Canal fills them. `Column.length` is never set by Canal
/// (reference 2.5), so it is not here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CanalValue<'a> {
    /// `Column.value`; empty (and not to be set on the wire) when `is_null`.
    pub value: String,
    /// `Column.isNull`.
    pub is_null: bool,
    /// `Column.sqlType`, a [`java_types`] code (may depend on the value for unsigned integers).
    pub sql_type: i32,
    /// `Column.mysqlType`: the declared type text, or a derived one if enabled; `None` means
    /// the field is not set.
    pub mysql_type: Option<Cow<'a, str>>,
}

/// Why a value could not be formatted. None of these are retryable: they mean the row image,
/// the TABLE_MAP metadata or the schema do not agree.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ValueError {
    /// mysql_common produced a value kind this column type never decodes to.
    #[error("a {column_type:?} column cannot hold a {found} value")]
    KindMismatch {
        /// The column's (resolved) type.
        column_type: ColumnType,
        /// The kind of value received.
        found: &'static str,
    },
    /// The TABLE_MAP metadata is missing or impossible for the type.
    #[error("bad TABLE_MAP metadata {meta:02x?} for a {column_type:?} column: {reason}")]
    BadMeta {
        /// The column's type as given.
        column_type: ColumnType,
        /// The metadata bytes.
        meta: Vec<u8>,
        /// What is wrong.
        reason: &'static str,
    },
    /// The value does not fit the column type (an integer wider than the column, a decimal
    /// with the wrong scale, an unparsable TIMESTAMP/YEAR text, a BIT/SET of the wrong size).
    #[error("malformed {column_type:?} value: {reason}")]
    Malformed {
        /// The column's (resolved) type.
        column_type: ColumnType,
        /// What is wrong.
        reason: String,
    },
    /// The binary JSON could not be read.
    #[error("malformed JSON value: {0}")]
    Json(String),
    /// A column type Canal cannot print either (old DECIMAL, typed arrays, NULL type, …).
    #[error("unsupported column type {0:?}")]
    UnsupportedType(ColumnType),
}

/// How a column prints, decided once from its type, metadata and declared type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// Integer stored in `bytes` bytes (1, 2, 3, 4, 8).
    Int {
        bytes: u8,
    },
    Decimal {
        precision: usize,
        scale: usize,
    },
    Float,
    Double,
    Bit {
        bits: u32,
    },
    Year,
    Date,
    /// `legacy`: the pre-5.6.4 format and its printer.
    Time {
        fsp: u8,
        legacy: bool,
    },
    DateTime {
        fsp: u8,
    },
    Timestamp {
        fsp: u8,
    },
    /// Decoded with a charset; `sql_type` is CHAR, VARCHAR or CLOB.
    Text {
        sql_type: i32,
    },
    /// Put in the string as Latin-1; sqlType BLOB.
    Binary,
    Enum,
    /// Bitmask stored in `bytes` bytes.
    Set {
        bytes: usize,
    },
    Json,
}

/// Formats one column value as Canal does (see the module docs for the per-type mapping).
///
/// This resolves the column's [`ColumnFormat`] for the one value; the row decoder resolves it
/// once per TABLE_MAP and calls [`ColumnFormat::format_into`] per value instead.
pub fn format_value<'c>(
    col: &ColumnDesc<'c>,
    v: &BinlogValue<'_>,
    opts: &ValueOptions,
) -> Result<CanalValue<'c>, ValueError> {
    let format = ColumnFormat::new(col, opts)?;
    let mut value = String::new();
    let Formatted { sql_type, is_null } = format.format_into(v, &mut value)?;
    let mysql_type = match col.declared_type {
        Some(declared) => Some(Cow::Borrowed(declared)),
        None => format.mysql_type.map(Cow::Owned),
    };
    Ok(CanalValue {
        value,
        is_null,
        sql_type,
        mysql_type,
    })
}

/// How one column's values print: everything [`format_value`] derives from the column's type,
/// metadata, type text and the options, resolved once (per TABLE_MAP) instead of per value.
#[derive(Debug, Clone, PartialEq)]
pub struct ColumnFormat {
    /// The column's real type (STRING resolved to ENUM/SET).
    ty: ColumnType,
    kind: Kind,
    /// Canal's `mysqlType`: the declared type text or a derived one.
    mysql_type: Option<String>,
    /// Unsigned per the type text, or per the binlog when there is none.
    unsigned: bool,
    /// ENUM/SET labels when the options print labels and they are known.
    labels: Option<Vec<String>>,
    /// Charset for text values; `None` keeps the bytes (Latin-1).
    charset: Option<Charset>,
    /// `n` of a `binary(n)` column.
    binary_width: Option<usize>,
    /// Column name for partial JSON updates.
    name: Option<String>,
    /// sqlType of a NULL value.
    null_sql_type: i32,
    opts: ValueOptions,
}

/// The value-dependent fields of one formatted value; the text went to the caller's buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Formatted {
    /// `Column.sqlType` (may depend on the value for unsigned integers).
    pub sql_type: i32,
    /// `Column.isNull`; the text is empty when set.
    pub is_null: bool,
}

impl ColumnFormat {
    /// Resolves how the column's values print. Fails where every value of the column would:
    /// impossible TABLE_MAP metadata or a type Canal cannot print.
    pub fn new(col: &ColumnDesc<'_>, opts: &ValueOptions) -> Result<ColumnFormat, ValueError> {
        let ty = real_type(col.column_type, col.meta)?;
        let mysql_type = mysql_type_text(col, ty, opts);
        let type_text = mysql_type.as_deref();
        let kind = kind_of(ty, col.meta, type_text)?;
        let labels = match kind {
            Kind::Enum if opts.enum_as_label => {
                enum_set::column_labels(col.enum_set_labels, type_text)
            }
            Kind::Set { .. } if opts.set_as_labels => {
                enum_set::column_labels(col.enum_set_labels, type_text)
            }
            _ => None,
        }
        .map(Cow::into_owned);
        let null_sql_type = match kind {
            Kind::Enum | Kind::Set { .. } if labels.is_some() => jt::VARCHAR,
            Kind::Set { .. } => jt::BLOB,
            Kind::Json => jt::OTHER,
            _ => base_sql_type(kind),
        };
        Ok(ColumnFormat {
            ty,
            kind,
            unsigned: type_text.map_or(col.unsigned, sql_type::is_unsigned_type),
            labels,
            charset: match kind {
                Kind::Text { .. } => text_charset(col, opts),
                _ => None,
            },
            binary_width: match kind {
                Kind::Binary => type_text.and_then(binary_width),
                _ => None,
            },
            name: match kind {
                Kind::Json => col.name.map(str::to_owned),
                _ => None,
            },
            null_sql_type,
            mysql_type: mysql_type.map(Cow::into_owned),
            opts: opts.clone(),
        })
    }

    /// Canal's `mysqlType` for the column; `None` means the field is not set.
    pub fn mysql_type(&self) -> Option<&str> {
        self.mysql_type.as_deref()
    }

    /// The sqlType of a non-NULL value unless the value changes it (unsigned widening, an ENUM
    /// or SET value without a label); lets a caller pre-encode the common case.
    pub fn usual_sql_type(&self) -> i32 {
        match self.kind {
            Kind::Enum | Kind::Set { .. } if self.labels.is_some() => jt::VARCHAR,
            kind => base_sql_type(kind),
        }
    }

    /// Appends the value's text to `out` (nothing for NULL) and returns its sqlType and
    /// null flag. On error `out` may hold part of the text.
    pub fn format_into(
        &self,
        v: &BinlogValue<'_>,
        out: &mut String,
    ) -> Result<Formatted, ValueError> {
        let x = match v {
            BinlogValue::Value(Value::NULL) => {
                return Ok(Formatted {
                    sql_type: self.null_sql_type,
                    is_null: true,
                })
            }
            BinlogValue::Value(Value::Bytes(b)) => return self.format_bytes_into(b, out),
            BinlogValue::Value(x) => x,
            _ => return self.format_json(v, out),
        };
        let opts = &self.opts;
        let mismatch = || self.mismatch(value_kind(v));
        let malformed = |reason: &str| self.malformed(reason);
        let base = base_sql_type(self.kind);
        let sql_type = match (self.kind, x) {
            (Kind::Int { bytes }, x) => {
                let raw = match x {
                    Value::Int(i) => i128::from(*i),
                    Value::UInt(u) => i128::from(*u),
                    _ => return Err(mismatch()),
                };
                widen_integer_into(raw, bytes, self.unsigned, out)
                    .ok_or_else(|| malformed("integer out of range"))?
            }
            (Kind::Float, Value::Float(f)) => {
                out.push_str(&java_float_to_string(*f));
                base
            }
            (Kind::Double, Value::Double(d)) => {
                out.push_str(&java_double_to_string(*d));
                base
            }
            (Kind::Date, Value::Date(y, m, d, ..)) => {
                temporal::date_into(out, *y, *m, *d);
                base
            }
            (Kind::Time { fsp, legacy }, Value::Time(neg, days, h, m, s, us)) => {
                let hours = u64::from(*days) * 24 + u64::from(*h);
                let legacy_hours = legacy && !opts.fix_time_100_hours;
                temporal::time_into(out, *neg, hours, *m, *s, *us, fsp, legacy_hours);
                base
            }
            (Kind::DateTime { fsp }, Value::Date(y, mo, d, h, mi, s, us)) => {
                temporal::datetime_into(out, *y, *mo, *d, *h, *mi, *s, *us, fsp);
                base
            }
            (Kind::Timestamp { fsp }, Value::Int(secs)) => {
                let secs = u32::try_from(*secs).map_err(|_| malformed("TIMESTAMP out of range"))?;
                temporal::timestamp_into(out, secs, 0, fsp, opts.timestamp_zone);
                base
            }
            (Kind::Enum, x) => {
                let index = match x {
                    Value::Int(i) => u64::try_from(*i).ok(),
                    Value::UInt(u) => Some(*u),
                    _ => return Err(mismatch()),
                }
                .filter(|i| *i <= 0xFFFF)
                .ok_or_else(|| malformed("ENUM index out of range"))?;
                match self
                    .labels
                    .as_deref()
                    .and_then(|l| enum_set::enum_label(index, l))
                {
                    Some(label) => {
                        out.push_str(label);
                        jt::VARCHAR
                    }
                    None => {
                        push_u64(out, index);
                        base
                    }
                }
            }
            _ => return Err(mismatch()),
        };
        Ok(Formatted {
            sql_type,
            is_null: false,
        })
    }

    /// [`ColumnFormat::format_into`] for `Value::Bytes(b)`, without the value: the row decoder
    /// hands string columns over as bytes borrowed from the event.
    pub fn format_bytes_into(&self, b: &[u8], out: &mut String) -> Result<Formatted, ValueError> {
        let opts = &self.opts;
        let malformed = |reason: &str| self.malformed(reason);
        let base = base_sql_type(self.kind);
        let sql_type = match self.kind {
            Kind::Text { sql_type } => {
                match self.charset {
                    Some(charset) => charset.decode_into(b, out),
                    None => charset::latin1_into(b, out),
                }
                sql_type
            }
            Kind::Binary => {
                charset::latin1_into(b, out);
                // The row image of BINARY(n) drops trailing 0x00 bytes (the binary pad character);
                // the column's value has them, and Canal prints all n bytes.
                if let Some(n) = self.binary_width {
                    out.extend(std::iter::repeat_n('\0', n.saturating_sub(b.len())));
                }
                base
            }
            Kind::Decimal { precision, scale } => {
                let text =
                    std::str::from_utf8(b).map_err(|_| malformed("decimal text is not ASCII"))?;
                decimal::canal_decimal_into(out, text, precision, scale, opts.decimal_exact_scale)
                    .map_err(malformed)?;
                base
            }
            Kind::Timestamp { .. } => {
                let (secs, micros) =
                    parse_timestamp2(b).ok_or_else(|| malformed("bad TIMESTAMP text"))?;
                // mysql_common prints TIMESTAMP2 seconds through an i32: undo a wrap past 2^31
                // (MySQL itself stops at 2^31 - 1).
                let secs = if secs < 0 { secs + (1 << 32) } else { secs };
                let secs = u32::try_from(secs).map_err(|_| malformed("TIMESTAMP out of range"))?;
                self.timestamp_into(secs, micros, out)
            }
            Kind::Bit { bits } => {
                if b.len() != (bits as usize).div_ceil(8) {
                    return Err(malformed("BIT value size does not match its metadata"));
                }
                if bits <= 1 {
                    // Canal reads a one-bit BIT as a signed byte.
                    push_i64(out, i64::from(b[0] as i8));
                } else {
                    push_u64(out, b.iter().fold(0u64, |acc, &x| acc << 8 | u64::from(x)));
                }
                base
            }
            Kind::Year => {
                let year: u16 = std::str::from_utf8(b)
                    .ok()
                    .and_then(|s| s.parse().ok())
                    .ok_or_else(|| malformed("YEAR text is not a number"))?;
                // mysql_common adds 1900 to the stored byte, so the zero year arrives as 1900.
                if year == 1900 {
                    out.push_str("0000");
                } else {
                    push_u64(out, u64::from(year));
                }
                base
            }
            Kind::Set { bytes } => {
                if b.len() != bytes {
                    return Err(malformed("SET value size does not match its metadata"));
                }
                let mask = b.iter().rev().fold(0u64, |acc, &x| acc << 8 | u64::from(x));
                match self
                    .labels
                    .as_deref()
                    .and_then(|l| enum_set::set_labels(mask, l))
                {
                    Some(text) => {
                        out.push_str(&text);
                        jt::VARCHAR
                    }
                    None => {
                        push_u64(out, mask);
                        base
                    }
                }
            }
            _ => return Err(self.mismatch("bytes")),
        };
        Ok(Formatted {
            sql_type,
            is_null: false,
        })
    }

    /// [`ColumnFormat::format_into`] for a NEWDECIMAL value as stored (`raw`: its
    /// [`decimal_bin_size`] bytes), without mysql_common's text.
    pub fn format_decimal_bin_into(
        &self,
        raw: &[u8],
        out: &mut String,
    ) -> Result<Formatted, ValueError> {
        let Kind::Decimal { precision, scale } = self.kind else {
            return Err(self.mismatch("bytes"));
        };
        if decimal::canal_decimal_from_bin(
            out,
            raw,
            precision,
            scale,
            self.opts.decimal_exact_scale,
        ) {
            return Ok(Formatted {
                sql_type: base_sql_type(self.kind),
                is_null: false,
            });
        }
        let text = mysql_decimal_text(raw, precision, scale);
        self.format_bytes_into(text.as_str().as_bytes(), out)
    }

    /// [`ColumnFormat::format_into`] for a TIMESTAMP2 value as stored: epoch seconds and the
    /// fraction as read for its precision (what mysql_common would print as `"<secs>.<µs>"`).
    pub fn format_timestamp2_into(
        &self,
        secs: u32,
        fraction: i32,
        out: &mut String,
    ) -> Result<Formatted, ValueError> {
        if !matches!(self.kind, Kind::Timestamp { .. }) {
            return Err(self.mismatch("bytes"));
        }
        // mysql_common's text is `"<secs>.<fraction:06>"`, which reads back only for
        // 1..=999_999.
        let micros = u32::try_from(fraction)
            .ok()
            .filter(|f| *f <= 999_999)
            .ok_or_else(|| self.malformed("bad TIMESTAMP text"))?;
        let sql_type = self.timestamp_into(secs, micros, out);
        Ok(Formatted {
            sql_type,
            is_null: false,
        })
    }

    fn timestamp_into(&self, secs: u32, micros: u32, out: &mut String) -> i32 {
        let fsp = match self.kind {
            Kind::Timestamp { fsp } => fsp,
            _ => 0,
        };
        temporal::timestamp_into(out, secs, micros, fsp, self.opts.timestamp_zone);
        base_sql_type(self.kind)
    }

    fn mismatch(&self, found: &'static str) -> ValueError {
        ValueError::KindMismatch {
            column_type: self.ty,
            found,
        }
    }

    fn malformed(&self, reason: &str) -> ValueError {
        ValueError::Malformed {
            column_type: self.ty,
            reason: reason.to_owned(),
        }
    }

    fn format_json(&self, v: &BinlogValue<'_>, out: &mut String) -> Result<Formatted, ValueError> {
        let style = json_style(&self.opts);
        let text = match (self.kind, v) {
            (Kind::Json, BinlogValue::Jsonb(doc)) => json::render_document(doc, &style),
            (Kind::Json, BinlogValue::JsonDiff(diffs)) => {
                json::render_diff(self.name.as_deref().unwrap_or(""), diffs, &style)
            }
            _ => {
                return Err(ValueError::KindMismatch {
                    column_type: self.ty,
                    found: value_kind(v),
                })
            }
        }
        .map_err(|e| ValueError::Json(e.to_string()))?;
        out.push_str(&text);
        Ok(Formatted {
            sql_type: base_sql_type(self.kind),
            is_null: false,
        })
    }
}

/// Appends `n` in decimal (with itoa: no UTF-8 check of digits just written, which showed up in
/// the parser's profile as `from_utf8` under every integer column).
fn push_u64(out: &mut String, n: u64) {
    if n < 10 {
        out.push(char::from(b'0' + n as u8));
        return;
    }
    out.push_str(itoa::Buffer::new().format(n));
}

/// Appends `n` in decimal.
fn push_i64(out: &mut String, n: i64) {
    if (0..10).contains(&n) {
        out.push(char::from(b'0' + n as u8));
        return;
    }
    out.push_str(itoa::Buffer::new().format(n));
}

/// The sqlType of a non-NULL value before any value-dependent change (unsigned widening, labels).
fn base_sql_type(kind: Kind) -> i32 {
    match kind {
        Kind::Int { bytes: 1 } => jt::TINYINT,
        Kind::Int { bytes: 2 } => jt::SMALLINT,
        Kind::Int { bytes: 8 } => jt::BIGINT,
        Kind::Int { .. } => jt::INTEGER,
        Kind::Decimal { .. } => jt::DECIMAL,
        Kind::Float => jt::REAL,
        Kind::Double => jt::DOUBLE,
        Kind::Bit { .. } => jt::BIT,
        Kind::Year => jt::VARCHAR,
        Kind::Date => jt::DATE,
        Kind::Time { .. } => jt::TIME,
        Kind::DateTime { .. } | Kind::Timestamp { .. } => jt::TIMESTAMP,
        Kind::Text { sql_type } => sql_type,
        Kind::Binary => jt::BLOB,
        Kind::Enum => jt::INTEGER,
        Kind::Set { .. } => jt::BIT,
        Kind::Json => jt::VARCHAR,
    }
}

/// Canal's unsigned widening: the value is read signed from `bytes` bytes; if the column is
/// unsigned and the value is negative, `2^(8·bytes)` is added and the sqlType moves one size up
/// (TINYINT→SMALLINT, SMALLINT→INTEGER, MEDIUMINT stays INTEGER, INTEGER→BIGINT,
/// BIGINT→DECIMAL). `raw` may be mysql_common's signed or unsigned reading; `None` if it fits
/// neither. Appends the text to `out` and returns the sqlType.
fn widen_integer_into(raw: i128, bytes: u8, unsigned: bool, out: &mut String) -> Option<i32> {
    let bits = u32::from(bytes) * 8;
    let span = 1i128 << bits;
    if raw < -(span / 2) || raw >= span {
        return None;
    }
    // `rem_euclid(span)` for a power of two, without a 128-bit division.
    let stored = raw & (span - 1);
    let signed = if stored >= span / 2 {
        stored - span
    } else {
        stored
    };
    let base = base_sql_type(Kind::Int { bytes });
    // `stored` < 2^64 and `signed` ≥ -2^63 since `bytes` ≤ 8.
    if unsigned && signed < 0 {
        push_u64(out, stored as u64);
        Some(match bytes {
            1 => jt::SMALLINT,
            2 | 3 => jt::INTEGER,
            4 => jt::BIGINT,
            _ => jt::DECIMAL,
        })
    } else {
        push_i64(out, signed as i64);
        Some(base)
    }
}

/// Resolves the real type of a STRING column from its metadata (ENUM, SET or CHAR/BINARY), as
/// both MySQL and Canal do, including the long-CHAR encoding.
fn real_type(ty: ColumnType, meta: &[u8]) -> Result<ColumnType, ValueError> {
    if ty != ColumnType::MYSQL_TYPE_STRING {
        return Ok(ty);
    }
    let bad = |reason| ValueError::BadMeta {
        column_type: ty,
        meta: meta.to_vec(),
        reason,
    };
    match meta.first() {
        None => Err(bad("missing")),
        Some(0) => Ok(ty),
        Some(b) => match b | 0x30 {
            247 => Ok(ColumnType::MYSQL_TYPE_ENUM),
            248 => Ok(ColumnType::MYSQL_TYPE_SET),
            254 => Ok(ColumnType::MYSQL_TYPE_STRING),
            _ => Err(bad("unknown real type for a STRING column")),
        },
    }
}

/// Decides how a column prints. `type_text` is Canal's `mysqlType` (declared or derived).
fn kind_of(ty: ColumnType, meta: &[u8], type_text: Option<&str>) -> Result<Kind, ValueError> {
    use ColumnType::*;
    let bad = |reason| ValueError::BadMeta {
        column_type: ty,
        meta: meta.to_vec(),
        reason,
    };
    let fsp = || match meta.first() {
        Some(&f) if f <= 6 => Ok(f),
        Some(_) => Err(bad("fractional second precision above 6")),
        None => Err(bad("missing")),
    };
    let kind = match ty {
        MYSQL_TYPE_TINY => Kind::Int { bytes: 1 },
        MYSQL_TYPE_SHORT => Kind::Int { bytes: 2 },
        MYSQL_TYPE_INT24 => Kind::Int { bytes: 3 },
        MYSQL_TYPE_LONG => Kind::Int { bytes: 4 },
        MYSQL_TYPE_LONGLONG => Kind::Int { bytes: 8 },
        MYSQL_TYPE_NEWDECIMAL => match meta {
            [p, s, ..] if s <= p && *p <= 65 => Kind::Decimal {
                precision: usize::from(*p),
                scale: usize::from(*s),
            },
            [_, _, ..] => return Err(bad("scale above precision or precision above 65")),
            _ => return Err(bad("missing")),
        },
        MYSQL_TYPE_FLOAT => Kind::Float,
        MYSQL_TYPE_DOUBLE => Kind::Double,
        MYSQL_TYPE_BIT => match meta {
            [bits, bytes, ..] if *bits < 8 => {
                let n = u32::from(*bytes) * 8 + u32::from(*bits);
                if !(1..=64).contains(&n) {
                    return Err(bad("BIT width outside 1..=64"));
                }
                Kind::Bit { bits: n }
            }
            _ => return Err(bad("missing or bad BIT length")),
        },
        MYSQL_TYPE_YEAR => Kind::Year,
        MYSQL_TYPE_DATE | MYSQL_TYPE_NEWDATE => Kind::Date,
        MYSQL_TYPE_TIME => Kind::Time {
            fsp: 0,
            legacy: true,
        },
        MYSQL_TYPE_TIME2 => Kind::Time {
            fsp: fsp()?,
            legacy: false,
        },
        MYSQL_TYPE_DATETIME => Kind::DateTime { fsp: 0 },
        MYSQL_TYPE_DATETIME2 => Kind::DateTime { fsp: fsp()? },
        MYSQL_TYPE_TIMESTAMP => Kind::Timestamp { fsp: 0 },
        MYSQL_TYPE_TIMESTAMP2 => Kind::Timestamp { fsp: fsp()? },
        MYSQL_TYPE_ENUM => match meta.get(1) {
            Some(1 | 2) => Kind::Enum,
            _ => return Err(bad("ENUM pack length is not 1 or 2")),
        },
        MYSQL_TYPE_SET => match meta.get(1) {
            Some(&n @ 1..=8) => Kind::Set {
                bytes: usize::from(n),
            },
            _ => return Err(bad("SET pack length outside 1..=8")),
        },
        // Canal: binary when the type text contains "binary"; otherwise text, even for a
        // BINARY column whose metadata is missing.
        MYSQL_TYPE_STRING | MYSQL_TYPE_VARCHAR | MYSQL_TYPE_VAR_STRING => {
            if type_text.is_some_and(sql_type::is_binary_type) {
                Kind::Binary
            } else if ty == MYSQL_TYPE_STRING {
                Kind::Text { sql_type: jt::CHAR }
            } else {
                Kind::Text {
                    sql_type: jt::VARCHAR,
                }
            }
        }
        // Canal: text only when the type text is exactly a TEXT name; a TEXT column whose
        // metadata is missing prints as binary.
        MYSQL_TYPE_TINY_BLOB | MYSQL_TYPE_MEDIUM_BLOB | MYSQL_TYPE_LONG_BLOB | MYSQL_TYPE_BLOB => {
            if type_text.is_some_and(sql_type::is_text_type) {
                Kind::Text { sql_type: jt::CLOB }
            } else {
                Kind::Binary
            }
        }
        // VECTOR (MySQL 9) is not in the reference; Canal has no case for it. Bytes as Latin-1
        // like every other binary value.
        MYSQL_TYPE_GEOMETRY | MYSQL_TYPE_VECTOR => Kind::Binary,
        MYSQL_TYPE_JSON => Kind::Json,
        other => return Err(ValueError::UnsupportedType(other)),
    };
    Ok(kind)
}

/// Canal's `mysqlType`: the declared type, or (opt-in) one derived from the binlog.
fn mysql_type_text<'c>(
    col: &ColumnDesc<'c>,
    ty: ColumnType,
    opts: &ValueOptions,
) -> Option<Cow<'c, str>> {
    if let Some(declared) = col.declared_type {
        return Some(Cow::Borrowed(declared));
    }
    if !opts.derive_missing_mysql_type {
        return None;
    }
    mysql_type::derive(&mysql_type::Derive {
        column_type: ty,
        meta: col.meta,
        unsigned: col.unsigned,
        collation: col.collation,
        labels: col.enum_set_labels,
    })
    .map(Cow::Owned)
}

/// The charset for a text value; `None` means keep the bytes (Latin-1).
fn text_charset(col: &ColumnDesc<'_>, opts: &ValueOptions) -> Option<Charset> {
    if opts.per_column_charset {
        if let Some(id) = col.collation {
            if charset::is_binary_collation(id) {
                return None;
            }
            if let Some(cs) = Charset::for_collation(id) {
                return Some(cs);
            }
        }
    }
    Some(opts.connection_charset)
}

fn json_style(opts: &ValueOptions) -> json::JsonStyle {
    json::JsonStyle {
        // JSON text is always utf8mb4 in MySQL.
        charset: if opts.per_column_charset {
            Charset::Utf8
        } else {
            opts.connection_charset
        },
        exact_decimal: opts.decimal_exact_scale,
        fix_100_hours: opts.fix_time_100_hours,
    }
}

/// mysql_common's TIMESTAMP2 text: `"<secs>"` or `"<secs>.<six digits>"`.
fn parse_timestamp2(b: &[u8]) -> Option<(i64, u32)> {
    let text = std::str::from_utf8(b).ok()?;
    let (secs, micros) = match text.split_once('.') {
        Some((s, f)) if f.len() == 6 && f.bytes().all(|c| c.is_ascii_digit()) => {
            (s, f.parse().ok()?)
        }
        Some(_) => return None,
        None => (text, 0),
    };
    Some((secs.parse().ok()?, micros))
}

fn value_kind(v: &BinlogValue<'_>) -> &'static str {
    match v {
        BinlogValue::Value(Value::NULL) => "NULL",
        BinlogValue::Value(Value::Bytes(_)) => "bytes",
        BinlogValue::Value(Value::Int(_)) => "signed integer",
        BinlogValue::Value(Value::UInt(_)) => "unsigned integer",
        BinlogValue::Value(Value::Float(_)) => "float",
        BinlogValue::Value(Value::Double(_)) => "double",
        BinlogValue::Value(Value::Date(..)) => "date",
        BinlogValue::Value(Value::Time(..)) => "time",
        BinlogValue::Jsonb(_) => "binary JSON",
        BinlogValue::JsonDiff(_) => "partial JSON",
    }
}

#[cfg(test)]
mod tests;

/// `n` of a `binary(n)` type text (not `varbinary`).
fn binary_width(type_text: &str) -> Option<usize> {
    let t = type_text.trim();
    let rest = t.get(..7).filter(|h| h.eq_ignore_ascii_case("binary("))?;
    let _ = rest;
    let inner = &t[7..];
    let end = inner.find(')')?;
    inner[..end]
        .trim()
        .parse()
        .ok()
        .filter(|n: &usize| *n <= 255)
}
