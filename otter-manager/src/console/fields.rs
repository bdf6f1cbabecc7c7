//! The channel form's fields: the settings an operator changes most, each its own input, and the
//! rest of the definition (tables, reverse, TLS, …) as TOML beside them. A submitted form is merged
//! back into one TOML document, which goes through the same checks as `otter-manager apply`; an
//! error naming one of the fields' keys is shown next to that field.

use serde::Serialize;

/// How a field's text becomes a TOML value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Text,
    Integer,
    /// Comma-separated integers.
    Integers,
}

/// `(key, label, kind)` of every field, in form order.
const FIELDS: &[(&str, &str, Kind)] = &[
    ("channel.id", "Channel id", Kind::Integer),
    ("channel.name", "Channel name", Kind::Text),
    ("pipeline.id", "Pipeline id", Kind::Integer),
    (
        "pipeline.select_nodes",
        "Select nodes (ids, comma-separated)",
        Kind::Integers,
    ),
    (
        "pipeline.load_nodes",
        "Load nodes (ids, comma-separated)",
        Kind::Integers,
    ),
    ("pipeline.batch_size", "Batch size (entries)", Kind::Integer),
    (
        "pipeline.parallelism",
        "Parallelism (batches in flight)",
        Kind::Integer,
    ),
    (
        "pipeline.source.address",
        "Source address (host:port)",
        Kind::Text,
    ),
    ("pipeline.source.username", "Source user", Kind::Text),
    (
        "pipeline.source.password",
        "Source password (env:NAME or file:PATH)",
        Kind::Text,
    ),
    (
        "pipeline.source.slave_id",
        "Source replica server id",
        Kind::Integer,
    ),
    (
        "pipeline.target.address",
        "Target address (host:port)",
        Kind::Text,
    ),
    ("pipeline.target.username", "Target user", Kind::Text),
    (
        "pipeline.target.password",
        "Target password (empty, env:NAME or file:PATH)",
        Kind::Text,
    ),
];

/// The form input name of a key (`f.channel.id`).
pub const PREFIX: &str = "f.";

/// One field as the template shows it.
#[derive(Debug, Clone, Serialize)]
pub struct FieldView {
    /// The key, e.g. `pipeline.source.address`.
    pub key: &'static str,
    /// HTML id part: the key with `-` for `.` (`pipeline-source-address`).
    pub id: String,
    /// Shown beside the input.
    pub label: &'static str,
    /// The value as typed.
    pub value: String,
    /// The error naming this key, if any.
    pub error: Option<String>,
}

fn html_id(key: &str) -> String {
    key.replace('.', "-")
}

/// Removes the value at dotted `key` from `t`.
fn take(t: &mut toml::Table, key: &str) -> Option<toml::Value> {
    let mut parts: Vec<&str> = key.split('.').collect();
    let last = parts.pop()?;
    let mut at = t;
    for p in parts {
        at = at.get_mut(p)?.as_table_mut()?;
    }
    at.remove(last)
}

/// Sets dotted `key` in `t`, creating tables on the way.
fn put(t: &mut toml::Table, key: &str, v: toml::Value) {
    let mut parts: Vec<&str> = key.split('.').collect();
    let Some(last) = parts.pop() else {
        return;
    };
    let mut at = t;
    for p in parts {
        let entry = at
            .entry(p.to_string())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        if !entry.is_table() {
            *entry = toml::Value::Table(toml::Table::new());
        }
        let Some(next) = entry.as_table_mut() else {
            return;
        };
        at = next;
    }
    at.insert(last.to_string(), v);
}

fn shown(v: &toml::Value) -> String {
    match v {
        toml::Value::String(s) => s.clone(),
        toml::Value::Array(a) => a.iter().map(shown).collect::<Vec<_>>().join(", "),
        other => other.to_string(),
    }
}

/// Splits a channel's TOML into the fields' values and the rest of the document. Text that does
/// not parse stays whole in the rest, the fields empty.
pub fn split(text: &str) -> (Vec<FieldView>, String) {
    let mut views: Vec<FieldView> = FIELDS
        .iter()
        .map(|(key, label, _)| FieldView {
            key,
            id: html_id(key),
            label,
            value: String::new(),
            error: None,
        })
        .collect();
    let Ok(mut table) = text.parse::<toml::Table>() else {
        return (views, text.to_string());
    };
    for v in &mut views {
        if let Some(value) = take(&mut table, v.key) {
            v.value = shown(&value);
        }
    }
    let rest = toml::to_string(&table).unwrap_or_else(|_| text.to_string());
    (views, rest)
}

/// Why a form does not make a document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// The field's key, or `None` for the TOML of the rest.
    pub key: Option<String>,
    /// What is wrong.
    pub message: String,
}

/// The whole document: `rest` with each non-empty field of `posted` (`f.<key>` → text) set in
/// it. A form without fields (a client posting the whole TOML) gives `rest` unchanged.
pub fn merge<'a>(
    rest: &str,
    posted: impl Iterator<Item = (&'a String, &'a String)>,
) -> Result<String, FieldError> {
    let posted: Vec<(&str, &str)> = posted
        .filter_map(|(k, v)| Some((k.strip_prefix(PREFIX)?, v.trim())))
        .collect();
    if posted.is_empty() {
        return Ok(rest.to_string());
    }
    let mut table = rest.parse::<toml::Table>().map_err(|e| FieldError {
        key: None,
        message: e.to_string(),
    })?;
    for (key, label, kind) in FIELDS {
        let Some((_, text)) = posted.iter().find(|(k, _)| k == key) else {
            continue;
        };
        if text.is_empty() {
            continue;
        }
        let bad = |what: &str| FieldError {
            key: Some(key.to_string()),
            message: format!("{key}: {label} must be {what}"),
        };
        let value = match kind {
            Kind::Text => toml::Value::String(text.to_string()),
            Kind::Integer => toml::Value::Integer(text.parse().map_err(|_| bad("a whole number"))?),
            Kind::Integers => toml::Value::Array(
                text.split(',')
                    .map(|n| n.trim())
                    .filter(|n| !n.is_empty())
                    .map(|n| n.parse().map(toml::Value::Integer))
                    .collect::<Result<_, _>>()
                    .map_err(|_| bad("whole numbers separated by commas"))?,
            ),
        };
        put(&mut table, key, value);
    }
    toml::to_string(&table).map_err(|e| FieldError {
        key: None,
        message: e.to_string(),
    })
}

/// The fields of `text` with `error` placed next to the field it names, and the rest; `None`
/// when the error belongs to the rest (the TOML box).
pub fn with_error(text: &str, error: &FieldError) -> (Vec<FieldView>, String, Option<String>) {
    let (mut views, rest) = split(text);
    if let Some(v) = views
        .iter_mut()
        .find(|v| error.key.as_deref() == Some(v.key))
    {
        v.error = Some(error.message.clone());
        return (views, rest, None);
    }
    (views, rest, Some(error.message.clone()))
}

/// The fields as posted (`f.<key>` → text), with `error` next to the field it names.
pub fn posted<'a>(
    posted: impl Iterator<Item = (&'a String, &'a String)> + Clone,
    error: &FieldError,
) -> Vec<FieldView> {
    FIELDS
        .iter()
        .map(|(key, label, _)| FieldView {
            key,
            id: html_id(key),
            label,
            value: posted
                .clone()
                .find(|(k, _)| k.strip_prefix(PREFIX) == Some(*key))
                .map(|(_, v)| v.clone())
                .unwrap_or_default(),
            error: (error.key.as_deref() == Some(*key)).then(|| error.message.clone()),
        })
        .collect()
}

/// The key of `key` if it is one of the fields' (a `ModelError`'s key may name a deeper one).
pub fn field_key(key: &str) -> Option<String> {
    FIELDS
        .iter()
        .find(|(k, _, _)| *k == key)
        .map(|(k, _, _)| k.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = include_str!("../../../config/channel.toml");

    #[test]
    fn splitting_and_merging_gives_the_same_channel() {
        let (fields, rest) = split(EXAMPLE);
        let id = fields.iter().find(|f| f.key == "pipeline.source.slave_id");
        assert_eq!(id.map(|f| f.value.as_str()), Some("3301"));
        assert!(!rest.contains("slave_id"), "{rest}");
        let posted: Vec<(String, String)> = fields
            .iter()
            .map(|f| (format!("{PREFIX}{}", f.key), f.value.clone()))
            .collect();
        let merged = merge(&rest, posted.iter().map(|(k, v)| (k, v))).unwrap();
        assert_eq!(
            otter_node::model::Channel::from_toml(&merged).unwrap(),
            otter_node::model::Channel::from_toml(EXAMPLE).unwrap()
        );
    }

    #[test]
    fn a_field_that_is_not_a_number_is_named() {
        let (_, rest) = split(EXAMPLE);
        let posted = [("f.pipeline.load_nodes".to_string(), "1, x".to_string())];
        let e = merge(&rest, posted.iter().map(|(k, v)| (k, v))).unwrap_err();
        assert_eq!(e.key.as_deref(), Some("pipeline.load_nodes"));
        let whole = [("csrf".to_string(), "t".to_string())];
        assert_eq!(
            merge(EXAMPLE, whole.iter().map(|(k, v)| (k, v))).unwrap(),
            EXAMPLE
        );
    }
}
