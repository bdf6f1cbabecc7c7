//! Merge: the row changes of a batch folded so that every (schema, table, primary key) is written
//! once.

use std::collections::HashMap;

use crate::batch::{ColumnValue, RowEvent, RowKind};

/// Identity of a row: schema, table and the key columns sorted by name, each part
/// length-prefixed into one string (one allocation per row, and no separator can be forged).
type RowKey = String;

fn row_key<'a>(schema: &str, table: &str, keys: impl Iterator<Item = &'a ColumnValue>) -> RowKey {
    /// Appends `s` length-prefixed (`{len}:{s}`), or `-:` for SQL NULL (a length no value has).
    fn part(k: &mut String, s: Option<&str>) {
        match s {
            Some(s) => {
                // `itoa`, not `write!`: the formatting machinery cost more than the rest of a key.
                k.push_str(itoa::Buffer::new().format(s.len()));
                k.push(':');
                k.push_str(s);
            }
            None => k.push_str("-:"),
        }
    }
    let mut k = String::with_capacity(schema.len() + table.len() + 64);
    part(&mut k, Some(schema));
    part(&mut k, Some(table));
    let mut keys = keys.peekable();
    let Some(first) = keys.next() else {
        // No key columns: the caller keeps such rows unmerged.
        return String::new();
    };
    if keys.peek().is_none() {
        // One key column, the usual case: no list to sort.
        part(&mut k, Some(&first.name));
        part(&mut k, first.value.as_deref());
        return k;
    }
    let mut all: Vec<&ColumnValue> = std::iter::once(first).chain(keys).collect();
    all.sort_by(|a, b| a.name.cmp(&b.name));
    for c in all {
        part(&mut k, Some(&c.name));
        part(&mut k, c.value.as_deref());
    }
    k
}

/// `earlier`'s columns in their order with `later`'s values, then `later`'s other columns.
fn overlay(mut earlier: Vec<ColumnValue>, later: Vec<ColumnValue>) -> Vec<ColumnValue> {
    for c in later {
        match earlier.iter_mut().find(|e| e.name == c.name) {
            Some(e) => *e = c,
            None => earlier.push(c),
        }
    }
    earlier
}

/// The final operation for a key whose pending operation is `prev` when `next` arrives. What the
/// target should hold before the batch (`before`) stays the first change's.
fn combine(prev: RowEvent, next: RowEvent) -> RowEvent {
    let before = prev.before.clone();
    // On a table that detects conflicts (its updates and deletes carry `before`), remember the
    // row the key held after `prev`.
    let mut history = prev.history.clone();
    if (prev.before.is_some() || next.before.is_some()) && prev.kind != RowKind::Delete {
        history.push(prev.columns.clone());
    }
    RowEvent {
        before,
        history,
        ..combine_images(prev, next)
    }
}

fn combine_images(prev: RowEvent, next: RowEvent) -> RowEvent {
    match (next.kind, prev.kind) {
        // A delete removes whatever came before; an insert replaces it (written as an upsert).
        (RowKind::Delete, _) | (RowKind::Insert, _) => next,
        // An update of a row inserted or updated in this batch: one image, later values win,
        // columns only the earlier image has are kept.
        (RowKind::Update, RowKind::Insert) | (RowKind::Update, RowKind::Update) => RowEvent {
            kind: prev.kind,
            columns: overlay(prev.columns, next.columns),
            ..next
        },
        // An update after a delete of the same key: the update's image is upserted.
        (RowKind::Update, RowKind::Delete) => next,
    }
}

/// Merges row changes so that each (schema, table, primary key) is written once.
///
/// Rules, per key: insert + update → insert with the final image; update + update → update with
/// the final image (columns only an earlier image has are kept, later values win); update or
/// insert + delete → delete; delete + insert → insert (written as an upsert, it replaces the
/// row). An update with `old_keys` (the primary key changed) becomes a delete of the old key and
/// an insert (upsert) of the new one, carrying the old key's pending image; chains (A→B, B→C) delete A and
/// B and upsert C. The result keeps the order in which keys first appeared and has no `old_keys`.
/// Rows without key columns are kept as they are, unmerged.
pub fn merge(rows: impl IntoIterator<Item = RowEvent>) -> Vec<RowEvent> {
    let rows = rows.into_iter();
    let mut slots: Vec<RowEvent> = Vec::with_capacity(rows.size_hint().0);
    let mut index: HashMap<RowKey, usize> = HashMap::with_capacity(rows.size_hint().0);
    for mut next in rows {
        let new_key = row_key(&next.schema, &next.table, next.keys());
        if let (RowKind::Update, Some(old)) = (next.kind, next.old_keys.take()) {
            let old_key = row_key(&next.schema, &next.table, old.iter());
            if !old_key.is_empty() && old_key != new_key {
                // The new key held no row before the change: it is an insert there (written as
                // an upsert like any insert). As an update without a before image, conflict
                // detection would call the target's missing row a conflict and could drop it.
                next.kind = RowKind::Insert;
                let delete = RowEvent {
                    schema: next.schema.clone(),
                    table: next.table.clone(),
                    kind: RowKind::Delete,
                    columns: old
                        .into_iter()
                        .map(|c| ColumnValue { is_key: true, ..c })
                        .collect(),
                    old_keys: None,
                    // The old key held the update's before image; the new key held nothing.
                    before: next.before.take(),
                    history: Vec::new(),
                    weight: next.weight,
                    execute_time: next.execute_time,
                };
                match index.get(&old_key) {
                    Some(&i) => {
                        let delete = RowEvent {
                            before: slots[i].before.clone(),
                            ..delete
                        };
                        let prev = std::mem::replace(&mut slots[i], delete);
                        if prev.kind != RowKind::Delete {
                            // The row moved: its pending image goes with it to the new key.
                            let carried = prev.columns.into_iter().filter(|c| !c.is_key);
                            let mut columns = std::mem::take(&mut next.columns);
                            for c in carried {
                                if !columns.iter().any(|n| n.name == c.name) {
                                    columns.push(c);
                                }
                            }
                            next.columns = columns;
                        }
                    }
                    None => {
                        index.insert(old_key, slots.len());
                        slots.push(delete);
                    }
                }
            }
        }
        if new_key.is_empty() {
            slots.push(next);
            continue;
        }
        match index.get(&new_key) {
            Some(&i) => {
                let prev = std::mem::replace(&mut slots[i], placeholder());
                slots[i] = combine(prev, next);
            }
            None => {
                index.insert(new_key, slots.len());
                slots.push(next);
            }
        }
    }
    slots
}

fn placeholder() -> RowEvent {
    RowEvent {
        schema: String::new(),
        table: String::new(),
        kind: RowKind::Delete,
        columns: Vec::new(),
        old_keys: None,
        before: None,
        history: Vec::new(),
        weight: 0,
        execute_time: 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::load::test_rows::*;

    #[test]
    fn row_keys_are_length_prefixed_parts_with_keys_sorted_by_name() {
        let key = |name: &str, value: Option<&str>| ColumnValue {
            name: name.into(),
            value: value.map(Into::into),
            sql_type: 4,
            is_key: true,
        };
        let one = [key("id", Some("42"))];
        assert_eq!(row_key("s", "tab", one.iter()), "1:s3:tab2:id2:42");
        let two = [key("b", None), key("a", Some(""))];
        assert_eq!(row_key("s", "t", two.iter()), "1:s1:t1:a0:1:b-:");
        assert_eq!(row_key("s", "t", std::iter::empty()), "");
        // No separator can be forged: these differ although their concatenations match.
        assert_ne!(
            row_key("s", "t", [key("ab", Some("c"))].iter()),
            row_key("s", "t", [key("a", Some("bc"))].iter())
        );
    }

    #[test]
    fn insert_then_update_is_insert_with_final_image() {
        let m = merge([
            row(I, "1", &[("a", "x"), ("b", "y")]),
            row(U, "1", &[("a", "z")]),
        ]);
        assert_eq!(summary(&m), vec![s(I, "1", &[("a", "z"), ("b", "y")])]);
    }

    #[test]
    fn update_then_update_keeps_earlier_columns_later_wins() {
        let m = merge([
            row(U, "1", &[("a", "1"), ("b", "1")]),
            row(U, "1", &[("b", "2"), ("c", "2")]),
        ]);
        assert_eq!(
            summary(&m),
            vec![s(U, "1", &[("a", "1"), ("b", "2"), ("c", "2")])]
        );
    }

    #[test]
    fn update_then_delete_is_delete() {
        let m = merge([row(U, "1", &[("a", "1")]), row(D, "1", &[("a", "1")])]);
        assert_eq!(summary(&m), vec![s(D, "1", &[("a", "1")])]);
    }

    #[test]
    fn insert_then_delete_is_delete() {
        let m = merge([row(I, "1", &[("a", "1")]), row(D, "1", &[("a", "1")])]);
        assert_eq!(summary(&m), vec![s(D, "1", &[("a", "1")])]);
    }

    #[test]
    fn delete_then_insert_is_insert() {
        let m = merge([row(D, "1", &[("a", "old")]), row(I, "1", &[("a", "new")])]);
        assert_eq!(summary(&m), vec![s(I, "1", &[("a", "new")])]);
    }

    #[test]
    fn pk_change_is_delete_old_and_upsert_new() {
        let m = merge([moved("1", "2", &[("a", "x")])]);
        assert_eq!(summary(&m), vec![s(D, "1", &[]), s(I, "2", &[("a", "x")])]);
        assert!(m.iter().all(|r| r.old_keys.is_none()));
    }

    #[test]
    fn pk_change_chain_deletes_every_old_key() {
        let m = merge([
            moved("A", "B", &[("a", "1")]),
            moved("B", "C", &[("a", "2")]),
        ]);
        assert_eq!(
            summary(&m),
            vec![s(D, "A", &[]), s(D, "B", &[]), s(I, "C", &[("a", "2")])]
        );
    }

    #[test]
    fn pk_change_carries_the_pending_insert() {
        let m = merge([
            row(I, "A", &[("a", "1"), ("b", "1")]),
            moved("A", "B", &[("a", "2")]),
        ]);
        assert_eq!(
            summary(&m),
            vec![s(D, "A", &[]), s(I, "B", &[("a", "2"), ("b", "1")])]
        );
    }

    #[test]
    fn pk_swap_back_is_upsert_of_the_first_key() {
        let m = merge([
            moved("A", "B", &[("a", "1")]),
            moved("B", "A", &[("a", "2")]),
        ]);
        assert_eq!(summary(&m), vec![s(I, "A", &[("a", "2")]), s(D, "B", &[])]);
    }

    #[test]
    fn unchanged_old_keys_are_a_plain_update() {
        let m = merge([moved("1", "1", &[("a", "x")])]);
        assert_eq!(summary(&m), vec![s(U, "1", &[("a", "x")])]);
    }

    #[test]
    fn first_appearance_order_and_tables_kept_apart() {
        let mut other = row(I, "1", &[("a", "o")]);
        other.table = "u".into();
        let m = merge([
            row(I, "2", &[("a", "1")]),
            row(I, "1", &[("a", "1")]),
            other.clone(),
            row(U, "2", &[("a", "2")]),
            row(D, "1", &[("a", "1")]),
        ]);
        assert_eq!(
            summary(&m),
            vec![
                s(I, "2", &[("a", "2")]),
                s(D, "1", &[("a", "1")]),
                s(I, "1", &[("a", "o")]),
            ]
        );
        assert_eq!(m[2].table, "u");
    }

    #[test]
    fn composite_keys_merge_by_all_key_columns() {
        let r = |kind, a: &str, b: &str, v: &str| RowEvent {
            columns: vec![
                col("a", Some(a), 4, true),
                col("b", Some(b), 4, true),
                col("v", Some(v), 12, false),
            ],
            ..row(kind, "x", &[])
        };
        let m = merge([
            r(I, "1", "1", "x"),
            r(I, "1", "2", "y"),
            r(U, "1", "1", "z"),
        ]);
        assert_eq!(m.len(), 2);
        assert_eq!(m[0].columns[2].value.as_deref(), Some("z"));
        assert_eq!(m[1].columns[2].value.as_deref(), Some("y"));
    }

    #[test]
    fn keyless_rows_are_not_merged() {
        let r = RowEvent {
            columns: vec![col("v", Some("1"), 12, false)],
            ..row(I, "x", &[])
        };
        assert_eq!(merge([r.clone(), r.clone()]).len(), 2);
    }
}
