//! TABLE_MAP events: which table a rows event writes, its columns named and typed from the
//! schema history or the optional metadata, and each column's output resolved once.

use super::*;

impl Converter {
    pub(super) fn on_table_map(
        &mut self,
        tme: TableMapEvent<'static>,
        at: &BinlogPosition,
        schemas: &mut dyn SchemaLookup,
    ) -> Result<(), ConvertError> {
        let schema = tme.database_name().into_owned();
        let table = tme.table_name().into_owned();
        let signal = self
            .opts
            .signal_table
            .as_ref()
            .is_some_and(|(s, t)| *s == schema && *t == table);
        // The signal table is decoded whatever the filter says (its rows are never emitted).
        let mut accepted = signal || self.opts.filter.accepts(&schema, &table);
        let n = tme.columns_count() as usize;
        let binlog_meta = BinlogColumnMeta::read(&tme);
        let cols: Vec<ColInfo> = if !accepted {
            Vec::new()
        } else if let Some(meta) = schemas.table_at(&schema, &table, at) {
            if meta.columns.len() != n {
                if binlog_meta.names.len() == n {
                    binlog_meta.columns(&tme, None)
                } else {
                    return Err(ConvertError::ColumnMismatch {
                        schema,
                        table,
                        at: at.clone(),
                        binlog: n,
                        schema_columns: meta.columns.len(),
                    });
                }
            } else {
                binlog_meta.columns(&tme, Some(&meta))
            }
        } else if binlog_meta.names.len() == n || self.opts.schemaless {
            binlog_meta.columns(&tme, None)
        } else if self.opts.filter_table_error {
            tracing::warn!(%schema, %table, %at, "no table definition; skipping its rows (filter_table_error)");
            accepted = false;
            Vec::new()
        } else {
            return Err(ConvertError::NeedTable {
                schema,
                table,
                at: at.clone(),
            });
        };
        let outs = if accepted {
            (0..n)
                .map(|i| ColumnOut::new(&tme, i, cols.get(i), &self.opts.values))
                .collect()
        } else {
            Vec::new()
        };
        self.tables.insert(
            tme.table_id(),
            Arc::new(MappedTable {
                tme,
                schema,
                table,
                accepted,
                cols: Arc::from(cols),
                outs,
                signal,
                out_ratio: std::sync::atomic::AtomicUsize::new(64),
            }),
        );
        Ok(())
    }
}

/// What TABLE_MAP optional metadata (`binlog_row_metadata`) says about the columns.
#[derive(Debug, Default)]
struct BinlogColumnMeta {
    names: Vec<String>,
    unsigned: Vec<bool>,
    charsets: Vec<Option<u16>>,
    pk: Vec<usize>,
    enum_labels: Vec<Vec<String>>,
    set_labels: Vec<Vec<String>>,
}

impl BinlogColumnMeta {
    fn read(tme: &TableMapEvent<'_>) -> Self {
        let n = tme.columns_count() as usize;
        let mut out = BinlogColumnMeta::default();
        let Ok(ex) = OptionalMetaExtractor::new(tme.iter_optional_meta()) else {
            return out;
        };
        out.names = ex
            .iter_column_name()
            .map_while(|r| r.ok().map(|c| c.name().into_owned()))
            .collect();
        let mut signs = ex.iter_signedness();
        let mut charsets = ex.iter_charset();
        let mut es_charsets = ex.iter_enum_and_set_charset();
        for i in 0..n {
            let ty = tme.get_column_type(i).ok().flatten();
            let numeric = ty.is_some_and(|t| t.is_numeric_type());
            out.unsigned.push(numeric && signs.next().unwrap_or(false));
            let cs = match ty {
                Some(t) if has_charset_metadata(t) => charsets.next().and_then(|r| r.ok()),
                Some(t) if t.is_enum_or_set_type() => es_charsets.next().and_then(|r| r.ok()),
                _ => None,
            };
            out.charsets.push(cs);
        }
        out.pk = ex
            .iter_primary_key()
            .map_while(|r| r.ok().map(|i| i as usize))
            .collect();
        for field in tme.iter_optional_meta().flatten() {
            match field {
                OptionalMetadataField::EnumStrValue(v) => out.enum_labels = str_values(&v),
                OptionalMetadataField::SetStrValue(v) => out.set_labels = str_values(&v),
                _ => {}
            }
        }
        out
    }

    fn columns(&self, tme: &TableMapEvent<'_>, meta: Option<&TableMeta>) -> Vec<ColInfo> {
        let n = tme.columns_count() as usize;
        let mut enums = self.enum_labels.iter();
        let mut sets = self.set_labels.iter();
        (0..n)
            .map(|i| {
                let ty = tme.get_column_type(i).ok().flatten();
                let binlog_labels = match ty {
                    Some(ColumnType::MYSQL_TYPE_ENUM) => enums.next().cloned(),
                    Some(ColumnType::MYSQL_TYPE_SET) => sets.next().cloned(),
                    _ => None,
                };
                match meta.and_then(|m| m.columns.get(i)) {
                    Some(c) => ColInfo {
                        name: c.name.clone(),
                        is_key: c.is_primary_key,
                        declared: Some(c.column_type.clone()),
                        unsigned: c.unsigned || self.unsigned.get(i).copied().unwrap_or(false),
                        collation: c.collation_id.or(self.charsets.get(i).copied().flatten()),
                        labels: if c.enum_values.is_empty() {
                            binlog_labels
                        } else {
                            Some(c.enum_values.clone())
                        },
                    },
                    None => ColInfo {
                        name: self
                            .names
                            .get(i)
                            .cloned()
                            .unwrap_or_else(|| format!("@{}", i + 1)),
                        is_key: self.pk.contains(&i),
                        declared: None,
                        unsigned: self.unsigned.get(i).copied().unwrap_or(false),
                        collation: self.charsets.get(i).copied().flatten(),
                        labels: binlog_labels,
                    },
                }
            })
            .collect()
    }
}

/// Column facts from a table definition alone (snapshot rows have no TABLE_MAP), as
/// [`BinlogColumnMeta::columns`] resolves them when the schema knows the table.
pub(super) fn columns_from_schema(meta: &TableMeta) -> Vec<ColInfo> {
    meta.columns
        .iter()
        .map(|c| ColInfo {
            name: c.name.clone(),
            is_key: c.is_primary_key,
            declared: Some(c.column_type.clone()),
            unsigned: c.unsigned,
            collation: c.collation_id,
            labels: (!c.enum_values.is_empty()).then(|| c.enum_values.clone()),
        })
        .collect()
}

/// Whether TABLE_MAP charset metadata (DEFAULT_CHARSET / COLUMN_CHARSET) has an entry for a
/// column of this binlog type: MySQL counts VECTOR (9.0+) as a character column there, which
/// mysql_common's `is_character_type` does not.
fn has_charset_metadata(ty: ColumnType) -> bool {
    ty.is_character_type() || ty == ColumnType::MYSQL_TYPE_VECTOR
}

/// Per ENUM or SET column, the labels in ENUM_STR_VALUE / SET_STR_VALUE metadata, read here and
/// not by mysql_common, which pre-allocates the label count it reads: a corrupt count panicked
/// with a capacity overflow or asked for more memory than exists (found by fuzzing; this runs
/// outside the decoder guard). Stops at the first malformed column.
fn str_values(field: &impl mysql_common::proto::MySerialize) -> Vec<Vec<String>> {
    let mut raw = Vec::new();
    field.serialize(&mut raw);
    let mut b = &raw[..];
    let mut columns = Vec::new();
    'columns: while !b.is_empty() {
        let Some(count) = read_lenenc(&mut b) else {
            break;
        };
        // Every label takes at least its length byte, so `count` is bounded by the bytes left.
        let mut labels = Vec::new();
        for _ in 0..count {
            let Some(len) = read_lenenc(&mut b) else {
                break 'columns;
            };
            let Some(label) = usize::try_from(len).ok().and_then(|l| b.get(..l)) else {
                break 'columns;
            };
            labels.push(String::from_utf8_lossy(label).into_owned());
            b = &b[label.len()..];
        }
        columns.push(labels);
    }
    columns
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vector_columns_have_charset_metadata() {
        // MySQL 9 lists VECTOR columns in DEFAULT_CHARSET/COLUMN_CHARSET (vector.binlog: table
        // `bar(id, vector_column VECTOR, foo TEXT, vector_column2 VECTOR)` has default 63 and
        // the non-default pair (1, 255), i.e. `foo` is the second character column).
        assert!(has_charset_metadata(ColumnType::MYSQL_TYPE_VECTOR));
        assert!(has_charset_metadata(ColumnType::MYSQL_TYPE_BLOB));
        assert!(has_charset_metadata(ColumnType::MYSQL_TYPE_VARCHAR));
        assert!(!has_charset_metadata(ColumnType::MYSQL_TYPE_LONGLONG));
        assert!(!has_charset_metadata(ColumnType::MYSQL_TYPE_ENUM));
    }

    #[test]
    fn enum_and_set_labels_parsed_without_trusting_counts() {
        struct Raw(&'static [u8]);
        impl mysql_common::proto::MySerialize for Raw {
            fn serialize(&self, buf: &mut Vec<u8>) {
                buf.extend_from_slice(self.0);
            }
        }
        assert_eq!(
            str_values(&Raw(b"\x02\x01a\x02bc\x01\x01x")),
            vec![
                vec!["a".to_string(), "bc".to_string()],
                vec!["x".to_string()]
            ]
        );
        // Found by fuzzing: a label count of 2^60 made mysql_common's Vec::with_capacity panic.
        assert!(str_values(&Raw(b"\xfe\x00\x00\x00\x00\x00\x00\x00\x10\x01a")).is_empty());
        assert!(str_values(&Raw(b"\x01\x05ab")).is_empty());
    }
}
