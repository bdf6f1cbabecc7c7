//! SQL text → tokens: `sqlparser`'s MySQL tokenizer, MariaDB `/*M!…*/` expansion, the 8 KiB
//! prefix rule for long DML, splitting into statements, and small predicates over tokens.
//!
//! Guarantees: whitespace, comments and `EOF` never reach the parser; a text that is not
//! tokenised in full is reported as such ([`Lexed::complete`]).

use sqlparser::dialect::MySqlDialect;
use sqlparser::tokenizer::{Token, Tokenizer, Whitespace};

/// Tokenises with sqlparser's MySQL dialect, dropping whitespace and comments and expanding
/// MariaDB `/*M!NNNNN … */` executable comments (MySQL `/*!…*/` ones sqlparser expands itself).
fn lex(sql: &str) -> Result<Vec<Token>, String> {
    let dialect = MySqlDialect {};
    let raw = Tokenizer::new(&dialect, sql)
        .tokenize()
        .map_err(|e| e.to_string())?;
    let mut out = Vec::with_capacity(raw.len());
    for tok in raw {
        match tok {
            Token::Whitespace(Whitespace::MultiLineComment(c)) => {
                if let Some(body) = c.strip_prefix("M!") {
                    let body = body.trim_start_matches(|ch: char| ch.is_ascii_digit());
                    let inner = Tokenizer::new(&dialect, body)
                        .tokenize()
                        .map_err(|e| e.to_string())?;
                    out.extend(
                        inner
                            .into_iter()
                            .filter(|t| !matches!(t, Token::Whitespace(_) | Token::EOF)),
                    );
                }
            }
            Token::Whitespace(_) | Token::EOF => {}
            other => out.push(other),
        }
    }
    Ok(out)
}

/// Statements longer than this whose first word starts a DML or other non-DDL statement are only
/// tokenised this far: the target table of a multi-megabyte statement-format INSERT (or the text
/// of an ANNOTATE_ROWS event) is near its start.
pub(super) const DML_PREFIX_BYTES: usize = 8 * 1024;

/// Leading words for which a prefix of the text is enough.
const PREFIX_LEADERS: &[&str] = &[
    "INSERT", "UPDATE", "DELETE", "REPLACE", "SELECT", "LOAD", "CALL", "DO", "WITH", "VALUES",
    "HANDLER",
];

/// The tokens of a QUERY event's text.
pub(super) struct Lexed {
    pub(super) tokens: Vec<Token>,
    /// False when only a prefix of a long DML-like statement was tokenised.
    pub(super) complete: bool,
}

/// Tokenises `sql`, or only its first [`DML_PREFIX_BYTES`] when it is a long statement led by
/// one of [`PREFIX_LEADERS`].
pub(super) fn lex_statement_text(sql: &str) -> Result<Lexed, String> {
    if sql.len() <= DML_PREFIX_BYTES {
        return lex(sql).map(|tokens| Lexed {
            tokens,
            complete: true,
        });
    }
    let mut end = DML_PREFIX_BYTES;
    while end > 0 && !sql.is_char_boundary(end) {
        end -= 1;
    }
    let prefix = sql.get(..end).unwrap_or("");
    let mut buf = Vec::new();
    // The cut may split a string literal: keep whatever tokenised before it.
    let _ = Tokenizer::new(&MySqlDialect {}, prefix).tokenize_with_location_into_buf(&mut buf);
    let tokens: Vec<Token> = buf
        .into_iter()
        .map(|t| t.token)
        .filter(|t| !matches!(t, Token::Whitespace(_) | Token::EOF))
        .collect();
    let dml_like = kw_upper(tokens.first()).is_some_and(|w| PREFIX_LEADERS.contains(&w.as_str()));
    if dml_like {
        Ok(Lexed {
            tokens,
            complete: false,
        })
    } else {
        lex(sql).map(|tokens| Lexed {
            tokens,
            complete: true,
        })
    }
}

/// Non-empty `;`-separated statements.
pub(super) fn statements(tokens: &[Token]) -> impl Iterator<Item = &[Token]> {
    split_top(tokens, &Token::SemiColon)
        .into_iter()
        .filter(|s| !s.is_empty())
}

/// Splits at `sep` tokens outside parentheses.
pub(super) fn split_top<'a>(tokens: &'a [Token], sep: &Token) -> Vec<&'a [Token]> {
    let mut out = Vec::new();
    let mut depth = 0usize;
    let mut start = 0usize;
    for (i, t) in tokens.iter().enumerate() {
        match t {
            Token::LParen => depth += 1,
            Token::RParen => depth = depth.saturating_sub(1),
            t if depth == 0 && t == sep => {
                out.push(tokens.get(start..i).unwrap_or(&[]));
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(tokens.get(start..).unwrap_or(&[]));
    out
}

/// Is `tok` the unquoted keyword `kw` (case-insensitive)?
pub(super) fn is_kw(tok: Option<&Token>, kw: &str) -> bool {
    matches!(tok, Some(Token::Word(w)) if w.quote_style.is_none() && w.value.eq_ignore_ascii_case(kw))
}

/// The unquoted word `tok` upper-cased, if it is one.
pub(super) fn kw_upper(tok: Option<&Token>) -> Option<String> {
    match tok {
        Some(Token::Word(w)) if w.quote_style.is_none() => Some(w.value.to_ascii_uppercase()),
        _ => None,
    }
}

/// An identifier: a word (backticks already removed) or, for ANSI_QUOTES, a double-quoted string.
pub(super) fn ident_of(tok: Option<&Token>) -> Option<String> {
    match tok {
        Some(Token::Word(w)) => Some(w.value.clone()),
        Some(Token::DoubleQuotedString(s)) => Some(s.clone()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use crate::schema::ddl::tests::kinds;
    use crate::schema::ddl::DdlKind;

    #[test]
    fn mariadb_executable_comments() {
        assert_eq!(
            kinds("/*M!100100 ALTER TABLE t ENGINE=Aria */"),
            vec![DdlKind::Alter]
        );
        assert_eq!(
            kinds("/*!40000 ALTER TABLE t DISABLE KEYS */"),
            vec![DdlKind::Alter]
        );
    }
}
