//! Key templates for cache invalidation: `user:{id}`, `user:{tenant}:{email}`.
//!
//! `{name}` is replaced by the value of column `name`; `{{` and `}}` are literal braces.
//! Templates are checked when parsed, so a typo fails at start, not at the first row.

use std::fmt;

use crate::view::Columns;

/// Why a template was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    /// `{` without a closing `}`.
    #[error("key template {template:?}: '{{' at byte {at} is not closed (write '{{{{' for a literal brace)")]
    Unclosed {
        /// The template.
        template: String,
        /// Byte offset of the `{`.
        at: usize,
    },
    /// `}` without an opening `{`.
    #[error("key template {template:?}: '}}' at byte {at} has no opening '{{' (write '}}}}' for a literal brace)")]
    Unopened {
        /// The template.
        template: String,
        /// Byte offset of the `}`.
        at: usize,
    },
    /// `{}` or a name with characters no column name has.
    #[error("key template {template:?}: {name:?} is not a column name")]
    BadName {
        /// The template.
        template: String,
        /// What stood between the braces.
        name: String,
    },
    /// A template without any `{column}`: it would name the same key for every row.
    #[error("key template {template:?} uses no column; write e.g. \"user:{{id}}\"")]
    NoColumn {
        /// The template.
        template: String,
    },
    /// The empty template.
    #[error("empty key template")]
    Empty,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Text(String),
    Column(String),
}

/// A parsed key template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyTemplate {
    source: String,
    parts: Vec<Part>,
}

/// What rendering a template against a row gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rendered {
    /// The key.
    Key(String),
    /// A column the template uses is NULL in this row: no key names it.
    NullColumn(String),
    /// A column the template uses is not in the row image (a wrong template for this table).
    MissingColumn(String),
}

impl KeyTemplate {
    /// Parses `template`, refusing unbalanced braces, empty names and templates without a column.
    pub fn parse(template: &str) -> Result<Self, TemplateError> {
        if template.is_empty() {
            return Err(TemplateError::Empty);
        }
        let mut parts = Vec::new();
        let mut text = String::new();
        let bytes = template.as_bytes();
        let mut i = 0;
        while i < bytes.len() {
            match bytes[i] {
                b'{' if bytes.get(i + 1) == Some(&b'{') => {
                    text.push('{');
                    i += 2;
                }
                b'}' if bytes.get(i + 1) == Some(&b'}') => {
                    text.push('}');
                    i += 2;
                }
                b'{' => {
                    let Some(len) = template[i + 1..].find('}') else {
                        return Err(TemplateError::Unclosed {
                            template: template.into(),
                            at: i,
                        });
                    };
                    let name = &template[i + 1..i + 1 + len];
                    if name.is_empty() || name.contains(['{', '`']) || name.trim() != name {
                        return Err(TemplateError::BadName {
                            template: template.into(),
                            name: name.into(),
                        });
                    }
                    if !text.is_empty() {
                        parts.push(Part::Text(std::mem::take(&mut text)));
                    }
                    parts.push(Part::Column(name.to_string()));
                    i += len + 2;
                }
                b'}' => {
                    return Err(TemplateError::Unopened {
                        template: template.into(),
                        at: i,
                    })
                }
                _ => {
                    // Copy one whole UTF-8 character.
                    let ch = template[i..].chars().next().unwrap_or_default();
                    text.push(ch);
                    i += ch.len_utf8().max(1);
                }
            }
        }
        if !text.is_empty() {
            parts.push(Part::Text(text));
        }
        if !parts.iter().any(|p| matches!(p, Part::Column(_))) {
            return Err(TemplateError::NoColumn {
                template: template.into(),
            });
        }
        Ok(Self {
            source: template.into(),
            parts,
        })
    }

    /// The column names the template uses, in order.
    pub fn columns(&self) -> impl Iterator<Item = &str> {
        self.parts.iter().filter_map(|p| match p {
            Part::Column(c) => Some(c.as_str()),
            Part::Text(_) => None,
        })
    }

    /// The key for one row image.
    pub fn render(&self, row: &Columns) -> Rendered {
        let mut key = String::new();
        for p in &self.parts {
            match p {
                Part::Text(t) => key.push_str(t),
                Part::Column(c) => match row.get(c).map(|v| v.value.as_deref()) {
                    None => return Rendered::MissingColumn(c.clone()),
                    Some(None) => return Rendered::NullColumn(c.clone()),
                    Some(Some(v)) => key.push_str(v),
                },
            }
        }
        Rendered::Key(key)
    }
}

impl fmt::Display for KeyTemplate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::view::ColumnValue;

    fn row(cols: &[(&str, Option<&str>)]) -> Columns {
        Columns::from_iter(cols.iter().map(|(n, v)| {
            (
                n.to_string(),
                ColumnValue {
                    value: v.map(str::to_string),
                    ..Default::default()
                },
            )
        }))
    }

    #[test]
    fn renders_columns_and_escapes() {
        let t = KeyTemplate::parse("user:{tenant}:{id}{{x}}").unwrap();
        assert_eq!(t.columns().collect::<Vec<_>>(), ["tenant", "id"]);
        let r = row(&[("id", Some("7")), ("tenant", Some("acme"))]);
        assert_eq!(t.render(&r), Rendered::Key("user:acme:7{x}".into()));
        let r = row(&[("id", Some("7")), ("tenant", None)]);
        assert_eq!(t.render(&r), Rendered::NullColumn("tenant".into()));
        let r = row(&[("id", Some("7"))]);
        assert_eq!(t.render(&r), Rendered::MissingColumn("tenant".into()));
        let t = KeyTemplate::parse("ключ:{id}").unwrap();
        assert_eq!(
            t.render(&row(&[("id", Some("1"))])),
            Rendered::Key("ключ:1".into())
        );
    }

    #[test]
    fn bad_templates_are_clear_errors() {
        for (t, want) in [
            ("user:{id", "is not closed"),
            ("user:id}", "has no opening"),
            ("user:{}", "is not a column name"),
            ("user:{ id}", "is not a column name"),
            ("user:all", "uses no column"),
            ("", "empty key template"),
        ] {
            let e = KeyTemplate::parse(t).unwrap_err().to_string();
            assert!(e.contains(want), "{t}: {e}");
        }
    }
}
