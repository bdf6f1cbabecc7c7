//! One column definition, `name type attributes… [FIRST | AFTER col]`, read into a
//! [`ColumnSpec`]: the type with its lengths, labels and modifiers, and the attributes that
//! matter for the table definition (nullability, key, character set, position).

use sqlparser::tokenizer::Token;

use super::cursor::Cur;
use super::name_or_string;
use crate::schema::ddl::charset::CharsetName;
use crate::schema::ddl::column_type::{BaseType, ColumnSpec, TextSize};
use crate::schema::ddl::lex::{kw_upper, split_top};
use crate::schema::ddl::stmt::Position;

const PLAIN_TYPES: &[&str] = &[
    "date",
    "geometry",
    "point",
    "linestring",
    "polygon",
    "multipoint",
    "multilinestring",
    "multipolygon",
    "geometrycollection",
    "inet4",
    "inet6",
    "uuid",
];

/// Parses `name type attributes… [FIRST | AFTER col]`.
pub(super) fn parse_column(toks: &[Token]) -> Result<ColumnSpec, String> {
    let mut c = Cur::new(toks);
    let name = c.ident().ok_or("column definition without a name")?;
    let mut spec = ColumnSpec {
        name,
        ty: BaseType::Json,
        unsigned: false,
        zerofill: false,
        national: false,
        charset: None,
        collate: None,
        charset_shorthand: None,
        byte: false,
        nullable: None,
        primary: false,
        forced_not_null: false,
        position: None,
    };
    spec.ty = parse_type(&mut c, &mut spec)?;
    parse_attributes(&mut c, &mut spec)?;
    Ok(spec)
}

fn paren_numbers(c: &mut Cur<'_>) -> Result<Option<Vec<u64>>, String> {
    let Some(inner) = c.group() else {
        return Ok(None);
    };
    let mut out = Vec::new();
    for part in split_top(inner, &Token::Comma) {
        match part {
            [Token::Number(n, _)] => out.push(
                n.parse::<u64>()
                    .map_err(|_| format!("bad type length {n:?}"))?,
            ),
            _ => return Err(format!("bad type arguments {part:?}")),
        }
    }
    Ok(Some(out))
}

fn one_number(c: &mut Cur<'_>) -> Result<Option<u64>, String> {
    match paren_numbers(c)?.as_deref() {
        None => Ok(None),
        Some([n]) => Ok(Some(*n)),
        Some(other) => Err(format!("expected one type length, got {other:?}")),
    }
}

fn two_numbers(c: &mut Cur<'_>) -> Result<(Option<u64>, Option<u64>), String> {
    match paren_numbers(c)?.as_deref() {
        None => Ok((None, None)),
        Some([m]) => Ok((Some(*m), None)),
        Some([m, d]) => Ok((Some(*m), Some(*d))),
        Some(other) => Err(format!("expected (M[,D]), got {other:?}")),
    }
}

fn labels(c: &mut Cur<'_>) -> Result<Vec<String>, String> {
    let inner = c.group().ok_or("ENUM/SET without a value list")?;
    let mut out = Vec::new();
    for part in split_top(inner, &Token::Comma) {
        let mut pc = Cur::new(part);
        // Optional character set introducer: _utf8mb4'x'.
        if matches!(pc.peek(), Some(Token::Word(w)) if w.quote_style.is_none() && w.value.starts_with('_'))
        {
            pc.bump();
        }
        let label = match pc.bump() {
            Some(Token::SingleQuotedString(s))
            | Some(Token::DoubleQuotedString(s))
            | Some(Token::NationalStringLiteral(s)) => s.clone(),
            other => return Err(format!("unsupported ENUM/SET value {other:?}")),
        };
        if !pc.done() {
            return Err("unsupported ENUM/SET value expression".to_string());
        }
        // MariaDB strips trailing spaces from ENUM/SET members.
        out.push(label.trim_end_matches(' ').to_string());
    }
    Ok(out)
}

fn int(name: &'static str, defaults: (u64, u64), width: Option<u64>) -> BaseType {
    BaseType::Int {
        name,
        defaults,
        width,
    }
}

fn parse_type(c: &mut Cur<'_>, spec: &mut ColumnSpec) -> Result<BaseType, String> {
    let word = kw_upper(c.peek()).ok_or_else(|| format!("column {} has no type", spec.name))?;
    c.bump();
    const TINY: (u64, u64) = (3, 4);
    const SMALL: (u64, u64) = (5, 6);
    const MEDIUM: (u64, u64) = (8, 9);
    const INT: (u64, u64) = (10, 11);
    const BIG: (u64, u64) = (20, 20);
    let ty = match word.as_str() {
        "TINYINT" | "INT1" => int("tinyint", TINY, one_number(c)?),
        "SMALLINT" | "INT2" => int("smallint", SMALL, one_number(c)?),
        "MEDIUMINT" | "INT3" | "MIDDLEINT" => int("mediumint", MEDIUM, one_number(c)?),
        "INT" | "INTEGER" | "INT4" => int("int", INT, one_number(c)?),
        "BIGINT" | "INT8" => int("bigint", BIG, one_number(c)?),
        "BOOL" | "BOOLEAN" => int("tinyint", TINY, Some(1)),
        "SERIAL" => {
            spec.unsigned = true;
            spec.forced_not_null = true;
            int("bigint", BIG, None)
        }
        "DECIMAL" | "DEC" | "NUMERIC" | "FIXED" => {
            let (m, d) = two_numbers(c)?;
            BaseType::Decimal(m, d)
        }
        "FLOAT" => match two_numbers(c)? {
            (None, _) => BaseType::Float(None),
            (Some(p), None) if p > 24 => BaseType::Double(None),
            (Some(_), None) => BaseType::Float(None),
            (Some(m), Some(d)) => BaseType::Float(Some((m, d))),
        },
        "FLOAT4" => BaseType::Float(None),
        "FLOAT8" => BaseType::Double(None),
        "DOUBLE" | "REAL" => {
            if word == "DOUBLE" {
                c.eat("PRECISION");
            }
            match two_numbers(c)? {
                (Some(m), Some(d)) => BaseType::Double(Some((m, d))),
                (None, _) => BaseType::Double(None),
                (Some(_), None) => return Err("DOUBLE(M) needs a scale".to_string()),
            }
        }
        "BIT" => BaseType::Bit(one_number(c)?),
        "YEAR" => BaseType::Year(one_number(c)?),
        "DATE" => BaseType::Plain("date"),
        "TIME" => BaseType::Temporal("time", one_number(c)?),
        "DATETIME" => BaseType::Temporal("datetime", one_number(c)?),
        "TIMESTAMP" => BaseType::Temporal("timestamp", one_number(c)?),
        "NATIONAL" => {
            spec.national = true;
            if c.eat("VARCHAR") || c.eat("VARCHARACTER") {
                return varchar(c);
            }
            if !(c.eat("CHAR") || c.eat("CHARACTER")) {
                return Err("NATIONAL without CHAR/VARCHAR".to_string());
            }
            if c.eat("VARYING") {
                return varchar(c);
            }
            BaseType::Char {
                len: one_number(c)?,
                binary: false,
            }
        }
        "NCHAR" => {
            spec.national = true;
            if c.eat("VARCHAR") || c.eat("VARCHARACTER") || c.eat("VARYING") {
                return varchar(c);
            }
            BaseType::Char {
                len: one_number(c)?,
                binary: false,
            }
        }
        "NVARCHAR" => {
            spec.national = true;
            return varchar(c);
        }
        "CHAR" | "CHARACTER" => {
            if c.eat("VARYING") {
                return varchar(c);
            }
            BaseType::Char {
                len: one_number(c)?,
                binary: false,
            }
        }
        "VARCHAR" | "VARCHARACTER" => return varchar(c),
        "BINARY" => BaseType::Char {
            len: one_number(c)?,
            binary: true,
        },
        "VARBINARY" => BaseType::VarChar {
            len: one_number(c)?.ok_or("VARBINARY needs a length")?,
            binary: true,
        },
        "TINYTEXT" => text(Some(TextSize::Tiny), None, false),
        "TEXT" => text(None, one_number(c)?, false),
        "MEDIUMTEXT" => text(Some(TextSize::Medium), None, false),
        "LONGTEXT" => text(Some(TextSize::Long), None, false),
        "TINYBLOB" => text(Some(TextSize::Tiny), None, true),
        "BLOB" => text(None, one_number(c)?, true),
        "MEDIUMBLOB" => text(Some(TextSize::Medium), None, true),
        "LONGBLOB" => text(Some(TextSize::Long), None, true),
        "LONG" => {
            if c.eat("VARBINARY") {
                text(Some(TextSize::Medium), None, true)
            } else {
                let _ = c.eat("VARCHAR") || c.eat("VARCHARACTER");
                text(Some(TextSize::Medium), None, false)
            }
        }
        "ENUM" => BaseType::Enum(labels(c)?),
        "SET" => BaseType::Set(labels(c)?),
        "JSON" => BaseType::Json,
        other => {
            let lower = other.to_ascii_lowercase();
            match PLAIN_TYPES.iter().find(|t| **t == lower) {
                Some(t) => BaseType::Plain(t),
                None => return Err(format!("unsupported column type {other}")),
            }
        }
    };
    // Numeric modifiers right after the type (also accepted later among attributes).
    loop {
        if c.eat("UNSIGNED") {
            spec.unsigned = true;
        } else if c.eat("ZEROFILL") {
            spec.zerofill = true;
        } else if !c.eat("SIGNED") {
            break;
        }
    }
    Ok(ty)
}

fn varchar(c: &mut Cur<'_>) -> Result<BaseType, String> {
    Ok(BaseType::VarChar {
        len: one_number(c)?.ok_or("VARCHAR needs a length")?,
        binary: false,
    })
}

fn text(size: Option<TextSize>, len: Option<u64>, blob: bool) -> BaseType {
    BaseType::Text { size, len, blob }
}

/// Column attributes after the type, up to the end of the definition.
fn parse_attributes(c: &mut Cur<'_>, spec: &mut ColumnSpec) -> Result<(), String> {
    while let Some(tok) = c.peek() {
        let Some(word) = kw_upper(Some(tok)) else {
            c.skip_item();
            continue;
        };
        c.bump();
        match word.as_str() {
            "NOT" if c.is("NULL") => {
                c.bump();
                spec.nullable = Some(false);
            }
            "NULL" => spec.nullable = Some(true),
            "DEFAULT" => skip_default_value(c),
            "PRIMARY" => {
                c.eat("KEY");
                spec.primary = true;
            }
            "KEY" => spec.primary = true,
            "UNIQUE" => {
                let _ = c.eat("KEY") || c.eat("INDEX");
            }
            "UNSIGNED" => spec.unsigned = true,
            "ZEROFILL" => spec.zerofill = true,
            "COLLATE" => {
                c.eat_tok(&Token::Eq);
                spec.collate = Some(name_or_string(c).ok_or("COLLATE without a name")?);
            }
            "CHARACTER" | "CHAR" | "CHARSET" => {
                if word != "CHARSET" && !c.eat("SET") {
                    continue;
                }
                c.eat_tok(&Token::Eq);
                spec.charset = Some(if c.eat("DEFAULT") {
                    CharsetName::Default
                } else {
                    CharsetName::Named(name_or_string(c).ok_or("CHARACTER SET without a name")?)
                });
            }
            "ASCII" => spec.charset_shorthand = Some("latin1"),
            "UNICODE" => spec.charset_shorthand = Some("ucs2"),
            "BYTE" => spec.byte = true,
            "AUTO_INCREMENT" => spec.forced_not_null = true,
            "SERIAL" if c.is("DEFAULT") && c.is_at(1, "VALUE") => {
                c.bump();
                c.bump();
                spec.forced_not_null = true;
            }
            "ON" => {
                // ON UPDATE <expr>
                c.eat("UPDATE");
                skip_default_value(c);
            }
            "COMMENT" => {
                c.bump();
            }
            "REFERENCES" => {
                // REFERENCES t (cols) [MATCH …] [ON DELETE … ] [ON UPDATE …]: nothing here sets
                // nullability, so skip to a position clause or the end.
                while !c.done() && !c.is("FIRST") && !c.is("AFTER") {
                    c.skip_item();
                }
            }
            "FIRST" => spec.position = Some(Position::First),
            "AFTER" => {
                spec.position = Some(Position::After(
                    c.ident().ok_or("AFTER without a column name")?,
                ))
            }
            // CHECK (…), AS (…) / GENERATED ALWAYS AS (…) VIRTUAL|STORED|PERSISTENT,
            // INVISIBLE, COLUMN_FORMAT x, STORAGE x, COMPRESSED, SRID n, BINARY, …
            _ => {}
        }
    }
    Ok(())
}

/// Skips a DEFAULT / ON UPDATE value: `[+|-] literal`, `word [( … )]`, `_charset 'str'`, `( … )`.
fn skip_default_value(c: &mut Cur<'_>) {
    while matches!(c.peek(), Some(Token::Minus) | Some(Token::Plus)) {
        c.bump();
    }
    match c.peek() {
        Some(Token::Word(w)) if w.quote_style.is_none() => {
            c.bump();
            if c.peek() == Some(&Token::LParen) {
                c.skip_item();
            } else if w.value.starts_with('_') {
                // introducer: _utf8mb4'text'
                if matches!(c.peek(), Some(Token::SingleQuotedString(_))) {
                    c.bump();
                }
            } else if w.value.eq_ignore_ascii_case("NEXT") && c.eat_seq(&["VALUE", "FOR"]) {
                c.qname();
            }
        }
        Some(_) => c.skip_item(),
        None => {}
    }
}
