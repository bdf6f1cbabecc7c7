//! `ALTER TABLE` on one table definition: columns added, dropped, modified, renamed and moved,
//! the primary key, the table character set, `CONVERT TO CHARACTER SET` and `RENAME TO`.

use super::apply::Ctx;
use super::{Catalog, DdlError, TableChange};
use crate::schema::ddl::charset::mbmaxlen;
use crate::schema::ddl::column_type::{resolve_column, ColumnSpec, TextSize};
use crate::schema::ddl::stmt::{AlterClause, AlterTable, Position};
use crate::schema::table::{ColumnMeta, TableMeta};

impl Catalog {
    /// Applies every clause of `at` to a copy of the table and stores it only when all succeed.
    pub(super) fn alter_table(
        &mut self,
        at: &AlterTable,
        ctx: &mut Ctx<'_>,
    ) -> Result<(), DdlError> {
        let (schema, table) = ctx.resolve(&at.name)?;
        let Some(orig) = self.table(&schema, &table) else {
            if at.if_exists {
                return Ok(());
            }
            return Err(ctx.unknown_table(&schema, &table));
        };
        let mut meta = orig.clone();
        let db_cs = self.effective_database_charset(&schema).to_string();
        if meta.charset.is_none() {
            meta.charset = Some(db_cs.clone());
        }
        // Table default charset first: columns added by the same statement already use it.
        for clause in &at.clauses {
            if let AlterClause::Options(spec) = clause {
                if let Some(cs) = spec.resolve(|| db_cs.clone()) {
                    meta.charset = Some(cs);
                }
            }
        }
        let table_cs = meta.charset.clone().unwrap_or_else(|| db_cs.clone());
        let mut drop_pk = false;
        let mut add_pk: Vec<String> = Vec::new();
        let mut rename_to = None;
        for clause in &at.clauses {
            match clause {
                AlterClause::AddColumns {
                    if_not_exists,
                    cols,
                    pk,
                } => {
                    for spec in cols {
                        let spec = spec.as_ref().map_err(|e| ctx.unsupported(e))?;
                        if meta.column_index(&spec.name).is_some() {
                            if *if_not_exists {
                                continue;
                            }
                            return Err(
                                ctx.unsupported(&format!("column {} already exists", spec.name))
                            );
                        }
                        let col =
                            resolve_column(spec, &table_cs).map_err(|e| ctx.unsupported(&e))?;
                        if spec.primary {
                            add_pk.push(spec.name.clone());
                        }
                        insert_at(&mut meta, col, spec.position.as_ref(), ctx)?;
                    }
                    add_pk.extend(pk.iter().cloned());
                }
                AlterClause::AddPrimaryKey(cols) => add_pk.extend(cols.iter().cloned()),
                AlterClause::DropPrimaryKey => drop_pk = true,
                AlterClause::DropColumn { name, if_exists } => match meta.column_index(name) {
                    Some(i) => {
                        meta.columns.remove(i);
                    }
                    None if *if_exists => {}
                    None => return Err(ctx.unknown_column(&meta, name)),
                },
                AlterClause::Modify { if_exists, spec } => {
                    let spec = spec.as_ref().map_err(|e| ctx.unsupported(e))?;
                    let Some(i) = meta.column_index(&spec.name) else {
                        if *if_exists {
                            continue;
                        }
                        return Err(ctx.unknown_column(&meta, &spec.name));
                    };
                    replace_column(&mut meta, i, spec, &table_cs, &mut add_pk, ctx)?;
                }
                AlterClause::Change {
                    if_exists,
                    old,
                    spec,
                } => {
                    let spec = spec.as_ref().map_err(|e| ctx.unsupported(e))?;
                    let Some(i) = meta.column_index(old) else {
                        if *if_exists {
                            continue;
                        }
                        return Err(ctx.unknown_column(&meta, old));
                    };
                    replace_column(&mut meta, i, spec, &table_cs, &mut add_pk, ctx)?;
                }
                AlterClause::RenameColumn { from, to } => match meta.column_index(from) {
                    Some(i) => {
                        if let Some(c) = meta.columns.get_mut(i) {
                            c.name = to.clone();
                        }
                    }
                    None => return Err(ctx.unknown_column(&meta, from)),
                },
                AlterClause::Convert(spec) => {
                    let Some(cs) = spec.resolve(|| db_cs.clone()) else {
                        return Err(ctx.unsupported("CONVERT TO without a character set"));
                    };
                    if cs == "binary" {
                        return Err(ctx.unsupported("CONVERT TO CHARACTER SET binary"));
                    }
                    convert_table(&mut meta, &cs);
                }
                AlterClause::RenameTo(new) => rename_to = Some(ctx.resolve(new)?),
                AlterClause::Unsupported(reason) => return Err(ctx.unsupported(reason)),
                AlterClause::Options(_)
                | AlterClause::AddIndex
                | AlterClause::AddOtherConstraint
                | AlterClause::DropIndex
                | AlterClause::DropConstraint
                | AlterClause::DropForeignKey
                | AlterClause::Other => {}
            }
        }
        if drop_pk {
            for c in &mut meta.columns {
                c.is_primary_key = false;
            }
        }
        if !add_pk.is_empty() {
            set_primary_key(&mut meta, &add_pk, ctx)?;
        }
        if let Some((ns, nt)) = rename_to {
            if ns != schema || nt != table {
                self.remove_table(&schema, &table);
                ctx.changes.push(TableChange::Dropped {
                    schema: schema.clone(),
                    table: table.clone(),
                });
                meta.schema = ns;
                meta.table = nt;
            }
        }
        self.insert_table(meta.clone());
        ctx.changes.push(TableChange::Defined(meta));
        Ok(())
    }
}

/// Marks `cols` as the primary key (and NOT NULL); a missing column is an error.
pub(super) fn set_primary_key(
    meta: &mut TableMeta,
    cols: &[String],
    ctx: &Ctx<'_>,
) -> Result<(), DdlError> {
    for name in cols {
        let Some(i) = meta.column_index(name) else {
            return Err(ctx.unknown_column(meta, name));
        };
        if let Some(c) = meta.columns.get_mut(i) {
            c.is_primary_key = true;
            c.nullable = false;
        }
    }
    Ok(())
}

/// Inserts `col` at `pos` (default: last).
fn insert_at(
    meta: &mut TableMeta,
    col: ColumnMeta,
    pos: Option<&Position>,
    ctx: &Ctx<'_>,
) -> Result<(), DdlError> {
    let idx = match pos {
        None => meta.columns.len(),
        Some(Position::First) => 0,
        Some(Position::After(name)) => match meta.column_index(name) {
            Some(i) => i + 1,
            None => return Err(ctx.unknown_column(meta, name)),
        },
    };
    meta.columns.insert(idx.min(meta.columns.len()), col);
    Ok(())
}

/// MODIFY/CHANGE: replaces column `i` by `spec`, keeping its primary-key membership and moving it
/// when a position is given.
fn replace_column(
    meta: &mut TableMeta,
    i: usize,
    spec: &ColumnSpec,
    table_cs: &str,
    add_pk: &mut Vec<String>,
    ctx: &Ctx<'_>,
) -> Result<(), DdlError> {
    let mut col = resolve_column(spec, table_cs).map_err(|e| ctx.unsupported(&e))?;
    let was_pk = meta.columns.get(i).is_some_and(|c| c.is_primary_key);
    if was_pk {
        col.is_primary_key = true;
        col.nullable = false;
    }
    if spec.primary {
        add_pk.push(spec.name.clone());
    }
    match &spec.position {
        None => {
            if let Some(slot) = meta.columns.get_mut(i) {
                *slot = col;
            }
        }
        Some(pos) => {
            if i < meta.columns.len() {
                meta.columns.remove(i);
            }
            insert_at(meta, col, Some(pos), ctx)?;
        }
    }
    Ok(())
}

/// `ALTER TABLE … CONVERT TO CHARACTER SET cs`: every character column takes `cs`; TEXT columns
/// grow to the smallest TEXT type that still holds as many characters as before.
fn convert_table(meta: &mut TableMeta, cs: &str) {
    meta.charset = Some(cs.to_string());
    let new_mb = mbmaxlen(cs);
    for col in &mut meta.columns {
        let Some(old_cs) = col.charset.clone() else {
            continue;
        };
        if old_cs == "binary" {
            continue;
        }
        if let Some(size) = TextSize::from_name(col.base_type(), false) {
            let chars = size.max_bytes() / mbmaxlen(&old_cs);
            let grown = TextSize::for_bytes(chars.saturating_mul(new_mb));
            if grown > size {
                col.column_type = grown.name(false).to_string();
            }
        }
        col.charset = Some(cs.to_string());
        col.collation_id = None;
    }
}

#[cfg(test)]
mod tests {
    use crate::schema::ddl::tests::cat;
    use crate::schema::ddl::Catalog;

    fn cols(c: &Catalog, t: &str) -> Vec<(String, String, bool)> {
        c.table("d", t)
            .unwrap_or_else(|| panic!("no table {t}"))
            .columns
            .iter()
            .map(|c| (c.name.clone(), c.column_type.clone(), c.is_primary_key))
            .collect()
    }

    fn c3(n: &str, t: &str, pk: bool) -> (String, String, bool) {
        (n.into(), t.into(), pk)
    }

    #[test]
    fn create_and_alter() {
        let c = cat(&[
            "CREATE TABLE t (id INT UNSIGNED NOT NULL AUTO_INCREMENT, n VARCHAR(20) DEFAULT 'x,y', \
             e ENUM('a','b''c') CHARACTER SET latin1, PRIMARY KEY (id))",
            "ALTER TABLE t ADD COLUMN z BOOL FIRST, ADD (p DECIMAL(5,2), q BIT), \
             MODIFY n VARCHAR(30) NOT NULL AFTER z, CHANGE e ee SET('x') , DROP COLUMN q",
        ]);
        assert_eq!(
            cols(&c, "t"),
            vec![
                c3("z", "tinyint(1)", false),
                c3("n", "varchar(30)", false),
                c3("id", "int(10) unsigned", true),
                c3("ee", "set('x')", false),
                c3("p", "decimal(5,2)", false),
            ]
        );
        let t = c.table("d", "t").unwrap();
        assert_eq!(t.columns[1].charset.as_deref(), Some("utf8mb4"));
        assert_eq!(t.columns[3].enum_values, vec!["x".to_string()]);
        assert!(!t.columns[1].nullable);
        assert!(t.columns[0].nullable);
    }

    #[test]
    fn primary_keys() {
        let c = cat(&[
            "CREATE TABLE t (a INT, b INT, c INT)",
            "ALTER TABLE t ADD PRIMARY KEY (a, b)",
        ]);
        assert_eq!(c.table("d", "t").unwrap().primary_key(), vec!["a", "b"]);
        let mut c = c;
        c.apply("ALTER TABLE t DROP PRIMARY KEY, ADD PRIMARY KEY (c)", "d")
            .unwrap();
        assert_eq!(c.table("d", "t").unwrap().primary_key(), vec!["c"]);
        c.apply("ALTER TABLE t DROP COLUMN c", "d").unwrap();
        assert!(c.table("d", "t").unwrap().primary_key().is_empty());
        c.apply("ALTER TABLE t MODIFY a BIGINT PRIMARY KEY", "d")
            .unwrap();
        assert_eq!(c.table("d", "t").unwrap().primary_key(), vec!["a"]);
        c.apply("ALTER TABLE t CHANGE a aa BIGINT", "d").unwrap();
        assert_eq!(c.table("d", "t").unwrap().primary_key(), vec!["aa"]);
    }

    #[test]
    fn convert_grows_text() {
        let mut c = cat(&[
            "CREATE TABLE t (a TINYTEXT, b TEXT, c VARCHAR(3), d BLOB, e INT) CHARSET latin1",
        ]);
        c.apply("ALTER TABLE t CONVERT TO CHARACTER SET utf8mb4", "d")
            .unwrap();
        let t = c.table("d", "t").unwrap();
        let types: Vec<_> = t.columns.iter().map(|c| c.column_type.as_str()).collect();
        assert_eq!(
            types,
            ["text", "mediumtext", "varchar(3)", "blob", "int(11)"]
        );
        assert_eq!(t.charset.as_deref(), Some("utf8mb4"));
        assert_eq!(t.columns[3].charset, None);
    }
}
