//! Column types: a column definition as written ([`ColumnSpec`]) and how it becomes the
//! [`ColumnMeta`] that MariaDB 10.11's `information_schema.COLUMNS` shows (`COLUMN_TYPE` text,
//! signedness, character set, nullability).

use super::charset::{charset_of_collation, mbmaxlen, normalize_charset, CharsetName};
use super::stmt::Position;
use crate::schema::table::ColumnMeta;

/// A column definition as written: name, type and the attributes that shape its metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct ColumnSpec {
    pub(super) name: String,
    pub(super) ty: BaseType,
    pub(super) unsigned: bool,
    pub(super) zerofill: bool,
    /// `NATIONAL`/`NCHAR`/`NVARCHAR`: utf8mb3.
    pub(super) national: bool,
    pub(super) charset: Option<CharsetName>,
    pub(super) collate: Option<String>,
    /// `ASCII` / `UNICODE` attribute shorthand.
    pub(super) charset_shorthand: Option<&'static str>,
    /// `BYTE` attribute: CHAR/VARCHAR become BINARY/VARBINARY.
    pub(super) byte: bool,
    pub(super) nullable: Option<bool>,
    pub(super) primary: bool,
    /// SERIAL, SERIAL DEFAULT VALUE and AUTO_INCREMENT force NOT NULL.
    pub(super) forced_not_null: bool,
    pub(super) position: Option<Position>,
}

/// The four TEXT/BLOB sizes, ordered by capacity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum TextSize {
    Tiny,
    Normal,
    Medium,
    Long,
}

impl TextSize {
    /// Largest value in bytes.
    pub(super) fn max_bytes(self) -> u64 {
        match self {
            TextSize::Tiny => 255,
            TextSize::Normal => 65_535,
            TextSize::Medium => 16_777_215,
            TextSize::Long => 4_294_967_295,
        }
    }

    /// The smallest size holding `n` bytes.
    pub(super) fn for_bytes(n: u64) -> TextSize {
        [TextSize::Tiny, TextSize::Normal, TextSize::Medium]
            .into_iter()
            .find(|s| n <= s.max_bytes())
            .unwrap_or(TextSize::Long)
    }

    /// `COLUMN_TYPE` name of the TEXT (or BLOB) type of this size.
    pub(super) fn name(self, blob: bool) -> &'static str {
        match (self, blob) {
            (TextSize::Tiny, false) => "tinytext",
            (TextSize::Normal, false) => "text",
            (TextSize::Medium, false) => "mediumtext",
            (TextSize::Long, false) => "longtext",
            (TextSize::Tiny, true) => "tinyblob",
            (TextSize::Normal, true) => "blob",
            (TextSize::Medium, true) => "mediumblob",
            (TextSize::Long, true) => "longblob",
        }
    }

    /// The size of a TEXT (or BLOB) type name.
    pub(super) fn from_name(name: &str, blob: bool) -> Option<TextSize> {
        [
            TextSize::Tiny,
            TextSize::Normal,
            TextSize::Medium,
            TextSize::Long,
        ]
        .into_iter()
        .find(|s| s.name(blob) == name)
    }
}

/// A column's type with its lengths, before character sets are resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum BaseType {
    /// Integer types: name and (unsigned, signed) default display widths.
    Int {
        name: &'static str,
        defaults: (u64, u64),
        width: Option<u64>,
    },
    Decimal(Option<u64>, Option<u64>),
    Float(Option<(u64, u64)>),
    Double(Option<(u64, u64)>),
    Bit(Option<u64>),
    Year(Option<u64>),
    /// `time`, `datetime`, `timestamp` with fractional digits.
    Temporal(&'static str, Option<u64>),
    /// CHAR(n) (`binary` = BINARY(n)).
    Char {
        len: Option<u64>,
        binary: bool,
    },
    /// VARCHAR(n) (`binary` = VARBINARY(n)).
    VarChar {
        len: u64,
        binary: bool,
    },
    /// TEXT/BLOB family: fixed size, or `TEXT(n)`/`BLOB(n)` sized by length.
    Text {
        size: Option<TextSize>,
        len: Option<u64>,
        blob: bool,
    },
    Enum(Vec<String>),
    Set(Vec<String>),
    Json,
    /// Types printed as their lower-case name (date, geometry types, inet4/6, uuid).
    Plain(&'static str),
}

impl BaseType {
    fn is_character(&self) -> bool {
        match self {
            BaseType::Char { binary, .. } | BaseType::VarChar { binary, .. } => !binary,
            BaseType::Text { blob, .. } => !blob,
            BaseType::Enum(_) | BaseType::Set(_) => true,
            _ => false,
        }
    }

    fn is_numeric(&self) -> bool {
        matches!(
            self,
            BaseType::Int { .. } | BaseType::Decimal(..) | BaseType::Float(_) | BaseType::Double(_)
        )
    }
}

/// Builds the column as `information_schema` shows it; `table_cs` is the table's default
/// character set (also what `CHARACTER SET DEFAULT` means for a column).
pub(super) fn resolve_column(spec: &ColumnSpec, table_cs: &str) -> Result<ColumnMeta, String> {
    let mut ty = spec.ty.clone();
    let mut charset = None;
    if ty.is_character() {
        let cs = match (&spec.charset, &spec.collate) {
            (Some(CharsetName::Named(n)), _) => normalize_charset(n),
            (Some(CharsetName::Default), _) => table_cs.to_string(),
            (None, Some(coll)) => charset_of_collation(coll),
            (None, None) if spec.national => "utf8mb3".to_string(),
            (None, None) => spec
                .charset_shorthand
                .map(str::to_string)
                .unwrap_or_else(|| table_cs.to_string()),
        };
        if cs == "binary" || spec.byte {
            ty = match ty {
                BaseType::Char { len, .. } => BaseType::Char { len, binary: true },
                BaseType::VarChar { len, .. } => BaseType::VarChar { len, binary: true },
                BaseType::Text { size, len, .. } => BaseType::Text {
                    size,
                    len,
                    blob: true,
                },
                other => {
                    charset = Some(cs);
                    other
                }
            };
        } else {
            charset = Some(cs);
        }
    } else if ty == BaseType::Json {
        charset = Some("utf8mb4".to_string());
    }
    let numeric = ty.is_numeric();
    let unsigned = numeric && (spec.unsigned || spec.zerofill);
    let mut enum_values = Vec::new();
    let mut column_type = match &ty {
        BaseType::Int {
            name,
            defaults,
            width,
        } => {
            let w = match width {
                Some(w) if *w > 0 => *w,
                _ if unsigned => defaults.0,
                _ => defaults.1,
            };
            format!("{name}({w})")
        }
        BaseType::Decimal(m, d) => format!("decimal({},{})", m.unwrap_or(10), d.unwrap_or(0)),
        BaseType::Float(None) => "float".to_string(),
        BaseType::Float(Some((m, d))) => format!("float({m},{d})"),
        BaseType::Double(None) => "double".to_string(),
        BaseType::Double(Some((m, d))) => format!("double({m},{d})"),
        BaseType::Bit(n) => format!("bit({})", n.unwrap_or(1)),
        BaseType::Year(Some(2)) => "year(2)".to_string(),
        BaseType::Year(_) => "year(4)".to_string(),
        BaseType::Temporal(name, Some(fsp)) if *fsp > 0 => format!("{name}({fsp})"),
        BaseType::Temporal(name, _) => name.to_string(),
        BaseType::Char { len, binary } => format!(
            "{}({})",
            if *binary { "binary" } else { "char" },
            len.unwrap_or(1)
        ),
        BaseType::VarChar { len, binary } => {
            format!("{}({len})", if *binary { "varbinary" } else { "varchar" })
        }
        BaseType::Text { size, len, blob } => {
            let size = match (size, len) {
                (Some(s), _) => *s,
                (None, None) => TextSize::Normal,
                (None, Some(n)) => {
                    let mb = if *blob {
                        1
                    } else {
                        mbmaxlen(charset.as_deref().unwrap_or("utf8mb4"))
                    };
                    TextSize::for_bytes(n.saturating_mul(mb))
                }
            };
            size.name(*blob).to_string()
        }
        BaseType::Enum(l) => {
            enum_values = l.clone();
            format!("enum({})", quote_labels(l))
        }
        BaseType::Set(l) => {
            enum_values = l.clone();
            format!("set({})", quote_labels(l))
        }
        BaseType::Json => "longtext".to_string(),
        BaseType::Plain(name) => name.to_string(),
    };
    if unsigned {
        column_type.push_str(" unsigned");
    }
    if numeric && spec.zerofill {
        column_type.push_str(" zerofill");
    }
    let not_null = spec.primary || spec.forced_not_null || spec.nullable == Some(false);
    Ok(ColumnMeta {
        name: spec.name.clone(),
        column_type,
        is_primary_key: spec.primary,
        unsigned,
        charset,
        collation_id: None,
        enum_values,
        nullable: !not_null,
    })
}

/// `'a','b'` with `'` doubled and `\` doubled, as `COLUMN_TYPE` prints labels.
fn quote_labels(labels: &[String]) -> String {
    labels
        .iter()
        .map(|l| format!("'{}'", l.replace('\\', "\\\\").replace('\'', "''")))
        .collect::<Vec<_>>()
        .join(",")
}
