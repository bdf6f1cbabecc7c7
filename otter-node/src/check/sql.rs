//! The statements the checker runs on both sides: chunk boundaries walked along the primary key,
//! a checksum of a key range, the keys and row hashes of a range, and whole rows by key. Every
//! value travels as a `?` parameter; identifiers are quoted; nothing from a table reaches the SQL
//! text.

use crate::check::CheckError;

/// A table as one side sees it: its quoted name, key columns and compared columns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Shape {
    /// `` `schema`.`table` ``.
    pub(crate) table: String,
    /// Primary key columns, in index order.
    pub(crate) keys: Vec<String>,
    /// The compared columns: the key columns first, then the rest of the mapping's view, in
    /// table order.
    pub(crate) columns: Vec<String>,
}

/// `` `ident` `` with backticks doubled; an empty name or one with NUL is an error.
pub(crate) fn ident(name: &str) -> Result<String, CheckError> {
    if name.is_empty() || name.contains('\0') {
        return Err(CheckError::BadIdentifier(name.to_string()));
    }
    Ok(format!("`{}`", name.replace('`', "``")))
}

/// `` `schema`.`table` ``.
pub(crate) fn qualified(schema: &str, table: &str) -> Result<String, CheckError> {
    Ok(format!("{}.{}", ident(schema)?, ident(table)?))
}

impl Shape {
    fn key_list(&self) -> Result<String, CheckError> {
        Ok(self
            .keys
            .iter()
            .map(|k| ident(k))
            .collect::<Result<Vec<_>, _>>()?
            .join(", "))
    }

    /// `(k1 > ?) OR (k1 = ? AND k2 > ?) …`: rows after a key (parameters: [`Shape::after_params`]).
    /// Spelled out rather than as a row comparison so every server uses the index for it.
    fn after(&self) -> Result<String, CheckError> {
        let mut terms = Vec::new();
        for i in 0..self.keys.len() {
            let mut t = Vec::new();
            for k in &self.keys[..i] {
                t.push(format!("{} = ?", ident(k)?));
            }
            t.push(format!("{} > ?", ident(&self.keys[i])?));
            terms.push(format!("({})", t.join(" AND ")));
        }
        Ok(format!("({})", terms.join(" OR ")))
    }

    /// `NOT (after hi)`: rows at or before a key.
    fn up_to(&self) -> Result<String, CheckError> {
        Ok(format!("NOT {}", self.after()?))
    }

    /// The parameters of [`Shape::after`] for `key`.
    pub(crate) fn after_params(key: &[mysql_async::Value]) -> Vec<mysql_async::Value> {
        let mut out = Vec::new();
        for i in 0..key.len() {
            out.extend(key[..=i].iter().cloned());
        }
        out
    }

    /// The `WHERE` of the range (`lo`, `hi`]: either bound may be open. Returns the condition and
    /// which bounds it expects parameters for.
    pub(crate) fn range(&self, lo: bool, hi: bool) -> Result<String, CheckError> {
        let mut parts = vec!["1".to_string()];
        if lo {
            parts.push(self.after()?);
        }
        if hi {
            parts.push(self.up_to()?);
        }
        Ok(parts.join(" AND "))
    }

    /// The parameters of [`Shape::range`].
    pub(crate) fn range_params(
        lo: Option<&[mysql_async::Value]>,
        hi: Option<&[mysql_async::Value]>,
    ) -> Vec<mysql_async::Value> {
        let mut out = Vec::new();
        if let Some(lo) = lo {
            out.extend(Self::after_params(lo));
        }
        if let Some(hi) = hi {
            out.extend(Self::after_params(hi));
        }
        out
    }

    /// The key `rows` rows after `lo` (or from the start): the last key of the next chunk, none
    /// when fewer rows are left.
    pub(crate) fn boundary(&self, lo: bool, rows: u64) -> Result<String, CheckError> {
        let keys = self.key_list()?;
        Ok(format!(
            "SELECT {keys} FROM {} WHERE {} ORDER BY {keys} LIMIT 1 OFFSET {}",
            self.table,
            self.range(lo, false)?,
            rows.saturating_sub(1)
        ))
    }

    /// A row's hash: MD5 over the compared columns as bytes, with a NULL map, so `NULL` and
    /// `'NULL'` differ and so do `('a#', 'b')` and `('a', '#b')` (lengths are part of it). Not
    /// CRC32 (pt-table-checksum's): CRC is linear, so under a chunk's XOR two rows changed alike
    /// cancel out; the checker bench missed 4 of 100 changed rows that way.
    fn row_hash(&self) -> Result<String, CheckError> {
        let mut parts = Vec::new();
        let mut nulls = Vec::new();
        for c in &self.columns {
            let c = ident(c)?;
            parts.push(format!("LENGTH(CAST({c} AS BINARY)), CAST({c} AS BINARY)"));
            nulls.push(format!("ISNULL({c})"));
        }
        Ok(format!(
            "MD5(CONCAT_WS('#', {}, CONCAT({})))",
            parts.join(", "),
            nulls.join(", ")
        ))
    }

    /// Count and a 64-bit XOR of the row hashes of a range: equal on both sides means the same
    /// rows (keys are unique, so no two rows cancel out).
    pub(crate) fn checksum(&self, lo: bool, hi: bool) -> Result<String, CheckError> {
        Ok(format!(
            "SELECT COUNT(*), COALESCE(BIT_XOR(CAST(CONV(LEFT({}, 16), 16, 10) AS UNSIGNED)), 0) \
             FROM {} WHERE {}",
            self.row_hash()?,
            self.table,
            self.range(lo, hi)?
        ))
    }

    /// Every key of a range with its row hash, in key order.
    pub(crate) fn hashes(&self, lo: bool, hi: bool) -> Result<String, CheckError> {
        let keys = self.key_list()?;
        Ok(format!(
            "SELECT {keys}, {} FROM {} WHERE {} ORDER BY {keys}",
            self.row_hash()?,
            self.table,
            self.range(lo, hi)?
        ))
    }

    /// `k1 = ? AND k2 = ? …`: the row with a key (parameters: the key values).
    fn key_equals(&self) -> Result<String, CheckError> {
        Ok(self
            .keys
            .iter()
            .map(|k| Ok(format!("{} = ?", ident(k)?)))
            .collect::<Result<Vec<_>, CheckError>>()?
            .join(" AND "))
    }

    /// The compared columns of the row with a key (parameters: the key values); `lock` reads it
    /// `FOR UPDATE`.
    pub(crate) fn row(&self, lock: bool) -> Result<String, CheckError> {
        let cols = self
            .columns
            .iter()
            .map(|c| ident(c))
            .collect::<Result<Vec<_>, _>>()?
            .join(", ");
        let key = self.key_equals()?;
        Ok(format!(
            "SELECT {cols} FROM {} WHERE {key}{}",
            self.table,
            if lock { " FOR UPDATE" } else { "" }
        ))
    }

    /// An upsert of the compared columns (parameters: their values in order).
    pub(crate) fn upsert(&self) -> Result<String, CheckError> {
        let cols: Vec<String> = self
            .columns
            .iter()
            .map(|c| ident(c))
            .collect::<Result<_, _>>()?;
        let marks = vec!["?"; cols.len()].join(", ");
        let set: Vec<String> = cols
            .iter()
            .filter(|c| !self.keys.iter().any(|k| ident(k).is_ok_and(|k| &k == *c)))
            .map(|c| format!("{c} = VALUES({c})"))
            .collect();
        let update = if set.is_empty() {
            // Only key columns: a duplicate is already the row.
            format!("{} = {}", cols[0], cols[0])
        } else {
            set.join(", ")
        };
        Ok(format!(
            "INSERT INTO {} ({}) VALUES ({marks}) ON DUPLICATE KEY UPDATE {update}",
            self.table,
            cols.join(", ")
        ))
    }

    /// A delete by key (parameters: the key values).
    pub(crate) fn delete(&self) -> Result<String, CheckError> {
        let key = self.key_equals()?;
        Ok(format!("DELETE FROM {} WHERE {key}", self.table))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mysql_async::Value;

    fn shape(keys: &[&str]) -> Shape {
        Shape {
            table: "`s`.`t`".into(),
            keys: keys.iter().map(|k| k.to_string()).collect(),
            columns: keys
                .iter()
                .map(|k| k.to_string())
                .chain(["v".to_string()])
                .collect(),
        }
    }

    #[test]
    fn ranges_spell_out_composite_keys() {
        let s = shape(&["a", "b"]);
        assert_eq!(
            s.range(true, true).unwrap(),
            "1 AND ((`a` > ?) OR (`a` = ? AND `b` > ?)) AND NOT ((`a` > ?) OR (`a` = ? AND `b` > ?))"
        );
        let lo = [Value::Int(1), Value::Int(2)];
        assert_eq!(
            Shape::range_params(Some(&lo), None),
            vec![Value::Int(1), Value::Int(1), Value::Int(2)]
        );
        assert_eq!(shape(&["id"]).range(false, false).unwrap(), "1");
    }

    #[test]
    fn statements_quote_identifiers() {
        let s = Shape {
            table: qualified("we`ird", "t").unwrap(),
            keys: vec!["i`d".into()],
            columns: vec!["i`d".into(), "v".into()],
        };
        assert_eq!(s.table, "`we``ird`.`t`");
        assert_eq!(
            s.upsert().unwrap(),
            "INSERT INTO `we``ird`.`t` (`i``d`, `v`) VALUES (?, ?) ON DUPLICATE KEY UPDATE `v` = VALUES(`v`)"
        );
        assert_eq!(
            s.delete().unwrap(),
            "DELETE FROM `we``ird`.`t` WHERE `i``d` = ?"
        );
        assert!(s
            .boundary(true, 1000)
            .unwrap()
            .ends_with("LIMIT 1 OFFSET 999"));
        assert!(ident("").is_err() && ident("a\0").is_err());
    }
}
