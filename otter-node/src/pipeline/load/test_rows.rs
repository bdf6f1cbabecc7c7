//! Rows for the load module's unit tests.

use crate::batch::{ColumnValue, RowEvent, RowKind};

pub(crate) fn col(name: &str, value: Option<&str>, sql_type: i32, is_key: bool) -> ColumnValue {
    ColumnValue {
        name: name.into(),
        value: value.map(str::to_string),
        sql_type,
        is_key,
    }
}

/// A row of `t` with key `id` and optional column `v` values.
pub(crate) fn row(kind: RowKind, id: &str, cols: &[(&str, &str)]) -> RowEvent {
    let mut columns = vec![col("id", Some(id), 4, true)];
    for (n, v) in cols {
        columns.push(col(n, Some(v), 12, false));
    }
    RowEvent {
        schema: "s".into(),
        table: "t".into(),
        kind,
        columns,
        old_keys: None,
        before: None,
        history: Vec::new(),
        weight: 0,
        execute_time: 0,
    }
}

pub(crate) fn moved(old: &str, new: &str, cols: &[(&str, &str)]) -> RowEvent {
    RowEvent {
        old_keys: Some(vec![col("id", Some(old), 4, true)]),
        before: None,
        history: Vec::new(),
        ..row(RowKind::Update, new, cols)
    }
}

/// (kind, id, [(col, value)]) of merged rows, for compact assertions.
pub(crate) type Summary = (RowKind, String, Vec<(String, String)>);

pub(crate) fn summary(rows: &[RowEvent]) -> Vec<Summary> {
    rows.iter()
        .map(|r| {
            let id = r
                .keys()
                .map(|c| c.value.clone().unwrap_or_default())
                .collect::<Vec<_>>()
                .join(",");
            let cols = r
                .columns
                .iter()
                .filter(|c| !c.is_key)
                .map(|c| (c.name.clone(), c.value.clone().unwrap_or_default()))
                .collect();
            (r.kind, id, cols)
        })
        .collect()
}

pub(crate) fn s(kind: RowKind, id: &str, cols: &[(&str, &str)]) -> Summary {
    (
        kind,
        id.to_string(),
        cols.iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect(),
    )
}

pub(crate) use RowKind::{Delete as D, Insert as I, Update as U};
