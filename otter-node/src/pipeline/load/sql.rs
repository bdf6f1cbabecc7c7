//! The statements of a merged batch: per table, `DELETE … WHERE key IN (…)` then multi-row
//! `INSERT … ON DUPLICATE KEY UPDATE`, in chunks bounded by rows and bytes; tables grouped by
//! weight.

use std::collections::HashMap;
use std::fmt::Write as _;

use crate::batch::{ColumnValue, RowEvent, RowKind};
use crate::pipeline::load::literal::{push_ident, push_literal};
use crate::pipeline::load::LoadError;

/// Most rows in one `INSERT` or `DELETE` statement.
pub const CHUNK_ROWS: usize = 500;
/// Statements are cut before they grow past this many bytes (a single larger row is sent alone).
pub const CHUNK_BYTES: usize = 1 << 20;

/// One table's share of a batch: the statements of its transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TablePlan {
    /// `schema.table`, for errors and logs.
    pub(crate) name: String,
    /// The schema.
    pub(crate) schema: String,
    /// The table.
    pub(crate) table: String,
    /// `` `schema`.`table` ``.
    pub(crate) target: String,
    /// For a table checked for conflicts: its rules and rows (the statements are then built in
    /// the transaction, from the rows that are to be written).
    pub(crate) checked: Option<(crate::pipeline::load::conflict::Rule, Vec<RowEvent>)>,
    /// Deletes first, then upserts.
    pub(crate) statements: Vec<String>,
    /// Row changes the statements write.
    pub(crate) rows: usize,
    /// Which of how many key-hash shards of the table this is (`(0, 1)`: the whole table; see
    /// [`super::shard`]).
    pub(crate) shard: (usize, usize),
}

/// Collects rendered tuples into statements `prefix tuple,tuple… suffix` of at most
/// [`CHUNK_ROWS`] tuples and about [`CHUNK_BYTES`] bytes.
struct Chunker<'a> {
    prefix: String,
    suffix: String,
    current: String,
    count: usize,
    /// The length of the statement written last: the next one is sized like it (grown from
    /// nothing it would be copied at every doubling).
    last_len: usize,
    out: &'a mut Vec<String>,
}

impl<'a> Chunker<'a> {
    fn new(prefix: String, suffix: String, out: &'a mut Vec<String>) -> Self {
        Chunker {
            current: String::new(),
            prefix,
            suffix,
            count: 0,
            last_len: 0,
            out,
        }
    }

    fn push(&mut self, tuple: &str) {
        if self.count > 0
            && (self.count >= CHUNK_ROWS
                || self.current.len() + 1 + tuple.len() + self.suffix.len() > CHUNK_BYTES)
        {
            self.flush();
        }
        if self.count == 0 {
            self.current.reserve(self.last_len);
            self.current.push_str(&self.prefix);
        } else {
            self.current.push(',');
        }
        self.current.push_str(tuple);
        self.count += 1;
    }

    fn flush(&mut self) {
        if self.count > 0 {
            self.current.push_str(&self.suffix);
            self.last_len = self.current.len();
            self.out.push(std::mem::take(&mut self.current));
            self.count = 0;
        }
    }
}

impl Drop for Chunker<'_> {
    fn drop(&mut self) {
        self.flush();
    }
}

fn qualified(schema: &str, table: &str, name: &str) -> Result<String, LoadError> {
    let mut s = String::new();
    push_ident(&mut s, schema, name)?;
    s.push('.');
    push_ident(&mut s, table, name)?;
    Ok(s)
}

/// `(a,b)` of the columns' literals (`a` alone when `parens` is false), written into `t`
/// (cleared first): one buffer serves every row of a statement.
fn tuple_into<'c>(
    t: &mut String,
    cols: impl Iterator<Item = &'c ColumnValue>,
    parens: bool,
    name: &str,
) -> Result<(), LoadError> {
    t.clear();
    if parens {
        t.push('(');
    }
    for (i, c) in cols.enumerate() {
        if i > 0 {
            t.push(',');
        }
        push_literal(t, c, name)?;
    }
    if parens {
        t.push(')');
    }
    Ok(())
}

/// Appends `DELETE … WHERE key IN (…)` statements for `rows` (deletes) of the table `name`
/// (`schema.table`, for errors), quoted as `target`, to `out`.
fn delete_statements(
    (name, target): (&str, &str),
    rows: &[&RowEvent],
    out: &mut Vec<String>,
) -> Result<(), LoadError> {
    // Group by the list of key column names (normally one group).
    let mut groups: Vec<(Vec<&str>, Vec<&RowEvent>)> = Vec::new();
    for row in rows {
        let keys: Vec<&str> = row.keys().map(|c| c.name.as_str()).collect();
        if keys.is_empty() {
            return Err(LoadError::NoKey {
                table: name.to_string(),
            });
        }
        match groups.iter_mut().find(|(k, _)| *k == keys) {
            Some((_, g)) => g.push(row),
            None => groups.push((keys, vec![row])),
        }
    }
    for (keys, group) in groups {
        let composite = keys.len() > 1;
        let mut prefix = format!("DELETE FROM {target} WHERE ");
        if composite {
            prefix.push('(');
        }
        for (i, k) in keys.iter().enumerate() {
            if i > 0 {
                prefix.push(',');
            }
            push_ident(&mut prefix, k, name)?;
        }
        if composite {
            prefix.push(')');
        }
        prefix.push_str(" IN (");
        let mut chunker = Chunker::new(prefix, ")".into(), out);
        let mut t = String::with_capacity(64);
        for row in group {
            tuple_into(&mut t, row.keys(), composite, name)?;
            chunker.push(&t);
        }
    }
    Ok(())
}

/// Appends `INSERT … ON DUPLICATE KEY UPDATE` statements for `rows` (inserts and updates) of the
/// table `name`, quoted as `target`, to `out`, one group per identical column list.
fn upsert_statements(
    (name, target): (&str, &str),
    rows: &[&RowEvent],
    out: &mut Vec<String>,
) -> Result<(), LoadError> {
    write_statements((name, target), rows, true, out)
}

/// Plain multi-row `INSERT` statements for `rows` of the table `name`, quoted as `target`: they
/// fail with a duplicate-key error where a key (or another unique key) already has a row.
pub(crate) fn insert_statements(
    (name, target): (&str, &str),
    rows: &[&RowEvent],
) -> Result<Vec<String>, LoadError> {
    let mut out = Vec::new();
    write_statements((name, target), rows, false, &mut out)?;
    Ok(out)
}

/// `INSERT` statements for `rows`, as upserts (`ON DUPLICATE KEY UPDATE`) or plain.
fn write_statements(
    (name, target): (&str, &str),
    rows: &[&RowEvent],
    upsert: bool,
    out: &mut Vec<String>,
) -> Result<(), LoadError> {
    // (column name, is key) lists, each with its rows.
    type Columns<'r> = Vec<(&'r str, bool)>;
    let mut groups: Vec<(Columns<'_>, Vec<&RowEvent>)> = Vec::new();
    let same = |k: &Columns<'_>, row: &RowEvent| {
        k.len() == row.columns.len()
            && k.iter()
                .zip(&row.columns)
                .all(|((n, key), c)| *key == c.is_key && *n == c.name)
    };
    // Rows of a table nearly always share one column list: the group of the row before is
    // tried first.
    let mut last = 0;
    for row in rows {
        let at = if groups.get(last).is_some_and(|(k, _)| same(k, row)) {
            Some(last)
        } else {
            groups.iter().position(|(k, _)| same(k, row))
        };
        last = match at {
            Some(i) => {
                groups[i].1.push(row);
                i
            }
            None => {
                let cols = row
                    .columns
                    .iter()
                    .map(|c| (c.name.as_str(), c.is_key))
                    .collect();
                groups.push((cols, vec![row]));
                groups.len() - 1
            }
        };
    }
    for (cols, group) in groups {
        if cols.is_empty() {
            return Err(LoadError::NoKey {
                table: name.to_string(),
            });
        }
        let mut prefix = format!("INSERT INTO {target} (");
        for (i, (c, _)) in cols.iter().enumerate() {
            if i > 0 {
                prefix.push(',');
            }
            push_ident(&mut prefix, c, name)?;
        }
        prefix.push_str(") VALUES ");
        // Non-key columns take the new values; a table of only key columns needs a no-op
        // assignment to stay an upsert.
        let mut assign: Vec<&str> = cols.iter().filter(|c| !c.1).map(|c| c.0).collect();
        if assign.is_empty() {
            assign.push(cols[0].0);
        }
        let mut suffix = String::from(" ON DUPLICATE KEY UPDATE ");
        if !upsert {
            suffix.clear();
            assign.clear();
        }
        for (i, c) in assign.iter().enumerate() {
            if i > 0 {
                suffix.push(',');
            }
            let mut q = String::new();
            push_ident(&mut q, c, name)?;
            let _ = write!(suffix, "{q}=VALUES({q})");
        }
        let mut chunker = Chunker::new(prefix, suffix, out);
        let mut t = String::with_capacity(256);
        for row in group {
            tuple_into(&mut t, row.columns.iter(), true, name)?;
            chunker.push(&t);
        }
    }
    Ok(())
}

/// Tables of merged rows grouped by weight (ascending), each with its statements.
pub(crate) fn plan(merged: &[RowEvent]) -> Result<Vec<(u32, Vec<TablePlan>)>, LoadError> {
    plan_sharded(merged, |_, _, _| 1)
}

/// [`plan`], with each table split into `shards(schema, table, rows)` key-hash shards (see
/// [`super::shard`]), each shard a table plan of its own next to the table's others.
pub(crate) fn plan_sharded(
    merged: &[RowEvent],
    shards: impl Fn(&str, &str, usize) -> usize,
) -> Result<Vec<(u32, Vec<TablePlan>)>, LoadError> {
    struct Group<'r> {
        weight: u32,
        schema: &'r str,
        table: &'r str,
        deletes: Vec<&'r RowEvent>,
        upserts: Vec<&'r RowEvent>,
    }
    let mut groups: Vec<Group<'_>> = Vec::new();
    let mut index: HashMap<(u32, &str, &str), usize> = HashMap::new();
    for row in merged {
        let k = (row.weight, row.schema.as_str(), row.table.as_str());
        let i = *index.entry(k).or_insert_with(|| {
            groups.push(Group {
                weight: row.weight,
                schema: &row.schema,
                table: &row.table,
                deletes: Vec::new(),
                upserts: Vec::new(),
            });
            groups.len() - 1
        });
        match row.kind {
            RowKind::Delete => groups[i].deletes.push(row),
            RowKind::Insert | RowKind::Update => groups[i].upserts.push(row),
        }
    }
    // Stable: tables of one weight keep their first-appearance order.
    groups.sort_by_key(|g| g.weight);
    let mut out: Vec<(u32, Vec<TablePlan>)> = Vec::new();
    for g in groups {
        let name = format!("{}.{}", g.schema, g.table);
        let target = qualified(g.schema, g.table, &name)?;
        let n = shards(g.schema, g.table, g.deletes.len() + g.upserts.len()).max(1);
        let parts: Vec<(Vec<&RowEvent>, Vec<&RowEvent>)> = if n == 1 {
            vec![(g.deletes, g.upserts)]
        } else {
            super::shard::split(&g.deletes, n)
                .into_iter()
                .zip(super::shard::split(&g.upserts, n))
                .collect()
        };
        for (shard, (deletes, upserts)) in parts.into_iter().enumerate() {
            if deletes.is_empty() && upserts.is_empty() {
                continue;
            }
            let mut statements = Vec::new();
            delete_statements((&name, &target), &deletes, &mut statements)?;
            upsert_statements((&name, &target), &upserts, &mut statements)?;
            let table = TablePlan {
                name: name.clone(),
                schema: g.schema.to_string(),
                table: g.table.to_string(),
                target: target.clone(),
                checked: None,
                statements,
                rows: deletes.len() + upserts.len(),
                shard: (shard, n),
            };
            match out.last_mut() {
                Some((w, tables)) if *w == g.weight => tables.push(table),
                _ => out.push((g.weight, vec![table])),
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::load::merge;
    use crate::pipeline::load::test_rows::*;

    #[test]
    fn a_sharded_table_splits_its_keys_and_keeps_deletes_before_upserts() {
        let rows: Vec<RowEvent> = (0..2000)
            .map(|i| {
                row(
                    if i % 4 == 0 { D } else { I },
                    &i.to_string(),
                    &[("a", "x")],
                )
            })
            .collect();
        let m = merge(rows);
        let plans = plan_sharded(&m, |s, t, n| {
            assert_eq!((s, t, n), ("s", "t", 2000));
            3
        })
        .unwrap();
        assert_eq!(plans.len(), 1);
        let tables = &plans[0].1;
        assert_eq!(tables.len(), 3);
        assert_eq!(tables.iter().map(|t| t.rows).sum::<usize>(), 2000);
        // Deletes and upserts are each split into contiguous thirds.
        let shard_of = |r: &RowEvent| {
            let same: Vec<&RowEvent> = m
                .iter()
                .filter(|o| (o.kind == RowKind::Delete) == (r.kind == RowKind::Delete))
                .collect();
            let at = same.iter().position(|o| std::ptr::eq(*o, r)).unwrap();
            super::super::shard::shard_of(at, same.len(), 3)
        };
        let mut seen = std::collections::HashSet::new();
        for (i, t) in tables.iter().enumerate() {
            assert_eq!(t.shard, (i, 3));
            assert_eq!(t.name, "s.t");
            assert!(
                t.statements[0].starts_with("DELETE"),
                "{:?}",
                t.statements[0]
            );
            assert!(t.statements.last().unwrap().starts_with("INSERT"));
            for r in m.iter().filter(|r| shard_of(r) == i) {
                let id = r.keys().next().unwrap().value.clone().unwrap();
                assert!(seen.insert(id.clone()), "{id} in two shards");
                // An upsert's tuple, or an element of a delete's key list.
                let forms = [
                    format!("({id},'x')"),
                    format!("IN ({id},"),
                    format!("IN ({id})"),
                    format!(",{id},"),
                    format!(",{id})"),
                ];
                let found = t
                    .statements
                    .iter()
                    .any(|s| forms.iter().any(|f| s.contains(f.as_str())));
                assert!(found, "{id} missing from shard {i}");
            }
        }
        assert_eq!(seen.len(), 2000);
        // One shard asked for: the plan of `plan`.
        assert_eq!(plan_sharded(&m, |_, _, _| 1).unwrap(), plan(&m).unwrap());
    }

    #[test]
    fn statements_for_a_table() {
        let mut m = merge([
            row(I, "1", &[("a", "x")]),
            row(I, "2", &[("a", "it's")]),
            row(D, "3", &[("a", "z")]),
        ]);
        let plans = plan(&m).unwrap();
        assert_eq!(plans.len(), 1);
        let t = &plans[0].1[0];
        assert_eq!(t.rows, 3);
        assert_eq!(
            t.statements,
            vec![
                "DELETE FROM `s`.`t` WHERE `id` IN (3)".to_string(),
                "INSERT INTO `s`.`t` (`id`,`a`) VALUES (1,'x'),(2,_utf8mb4 X'69742773') \
                 ON DUPLICATE KEY UPDATE `a`=VALUES(`a`)"
                    .to_string(),
            ]
        );
        // Composite keys.
        for r in &mut m {
            r.columns.insert(1, col("k2", Some("9"), 4, true));
        }
        let plans = plan(&m).unwrap();
        assert_eq!(
            plans[0].1[0].statements[0],
            "DELETE FROM `s`.`t` WHERE (`id`,`k2`) IN ((3,9))"
        );
    }

    #[test]
    fn only_key_columns_still_upsert() {
        let r = RowEvent {
            columns: vec![col("id", Some("1"), 4, true)],
            ..row(I, "1", &[])
        };
        let plans = plan(&[r]).unwrap();
        assert_eq!(
            plans[0].1[0].statements,
            vec!["INSERT INTO `s`.`t` (`id`) VALUES (1) ON DUPLICATE KEY UPDATE `id`=VALUES(`id`)"]
        );
    }

    #[test]
    fn chunks_by_rows_and_bytes() {
        let rows: Vec<RowEvent> = (0..1201)
            .map(|i| row(I, &i.to_string(), &[("a", "x")]))
            .collect();
        let plans = plan(&merge(rows.clone())).unwrap();
        let st = &plans[0].1[0].statements;
        assert_eq!(st.len(), 3);
        assert_eq!(st[0].matches("),(").count(), 499);
        assert_eq!(st[2].matches("),(").count(), 200);
        let big = "y".repeat(300 * 1024);
        let rows: Vec<RowEvent> = (0..7)
            .map(|i| row(D, &i.to_string(), &[]))
            .chain((0..7).map(|i| row(I, &(i + 10).to_string(), &[("a", big.as_str())])))
            .collect();
        let plans = plan(&rows).unwrap();
        let st = &plans[0].1[0].statements;
        // One delete; upserts of 3 rows (≈ 900 KiB), 3 and 1.
        assert_eq!(st.len(), 4);
        assert!(st.iter().all(|s| s.len() <= CHUNK_BYTES));
        assert_eq!(st[1].matches("),(").count(), 2);
    }

    #[test]
    fn tables_grouped_by_weight() {
        let mut a = row(I, "1", &[]);
        a.table = "a".into();
        a.weight = 5;
        let mut b = row(I, "1", &[]);
        b.table = "b".into();
        b.weight = 1;
        let mut c = row(I, "1", &[]);
        c.table = "c".into();
        c.weight = 5;
        let plans = plan(&merge([a, b, c])).unwrap();
        let names: Vec<(u32, Vec<&str>)> = plans
            .iter()
            .map(|(w, t)| (*w, t.iter().map(|t| t.name.as_str()).collect()))
            .collect();
        assert_eq!(names, vec![(1, vec!["s.b"]), (5, vec!["s.a", "s.c"])]);
    }

    #[test]
    fn bad_value_fails_the_plan() {
        let mut r = row(I, "1", &[]);
        r.columns[0].value = Some("1) OR (1".into());
        assert!(matches!(plan(&[r]), Err(LoadError::BadValue { .. })));
    }
}
