//! QUERY events: DDL and DCL entries (applied to the schema history first), statement
//! entries for DML text, and the BEGIN/COMMIT/XA statements that frame transactions.

use super::*;

impl Converter {
    #[allow(clippy::too_many_arguments)]
    pub(super) fn query_entry(
        &self,
        ev: &Event,
        pos: &EventPos,
        schema: &str,
        table: &str,
        sql: &str,
        ty: EventType,
        ddl_schema: Option<&str>,
        is_ddl: bool,
    ) -> ParsedEntry {
        let mut header = self.header(ev, pos);
        header.schema_name = Some(schema.to_string());
        header.table_name = Some(table.to_string());
        header.event_type = Some(ty as i32);
        let rc = RowChange {
            event_type: Some(ty as i32),
            is_ddl: is_ddl.then_some(true),
            sql: Some(sql.to_string()),
            ddl_schema_name: ddl_schema.filter(|s| !s.is_empty()).map(str::to_string),
            ..Default::default()
        };
        self.entry(ev, pos, header, EntryType::Rowdata, rc.encode_to_vec())
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) fn on_query(
        &mut self,
        ev: &Event,
        pos: &EventPos,
        at: &BinlogPosition,
        sql: &str,
        db: &str,
        thread_id: i64,
        schemas: &mut dyn SchemaLookup,
    ) -> Result<Vec<ParsedEntry>, ConvertError> {
        let trimmed = sql.trim();
        let upper: String = trimmed
            .chars()
            .take(16)
            .collect::<String>()
            .to_ascii_uppercase();
        if let Some(rest) = strip_keyword(trimmed, "XA START") {
            let begin = TransactionBegin {
                thread_id: Some(thread_id),
                props: vec![pair("XA_TYPE", "XA START"), pair("XA_XID", rest)],
                ..Default::default()
            };
            let b = self.begin_entry(ev, pos, begin);
            return Ok(self.start_txn(b));
        }
        if let Some(rest) = strip_keyword(trimmed, "XA END") {
            let end = TransactionEnd {
                transaction_id: Some("0".into()),
                props: vec![pair("XA_TYPE", "XA END"), pair("XA_XID", rest)],
                ..Default::default()
            };
            return Ok(self.on_end(ev, pos, end));
        }
        for (kw, ty) in [
            ("XA COMMIT", EventType::Xacommit),
            ("XA ROLLBACK", EventType::Xarollback),
        ] {
            if let Some(rest) = strip_keyword(trimmed, kw) {
                let mut header = self.header(ev, pos);
                header.event_type = Some(ty as i32);
                let rc = RowChange {
                    event_type: Some(ty as i32),
                    sql: Some(sql.to_string()),
                    props: vec![pair("XA_TYPE", kw), pair("XA_XID", rest)],
                    ..Default::default()
                };
                let e = self.entry(ev, pos, header, EntryType::Rowdata, rc.encode_to_vec());
                return Ok(vec![e]);
            }
        }
        if upper.starts_with("XA ") {
            return Ok(Vec::new());
        }
        if upper == "BEGIN" || ends_with_keyword(trimmed, "BEGIN") {
            let begin = TransactionBegin {
                thread_id: Some(thread_id),
                ..Default::default()
            };
            let b = self.begin_entry(ev, pos, begin);
            return Ok(self.start_txn(b));
        }
        if ends_with_keyword(trimmed, "COMMIT") && trimmed.len() <= "COMMIT".len() + 2 {
            let end = TransactionEnd {
                transaction_id: Some("0".into()),
                ..Default::default()
            };
            return Ok(self.on_end(ev, pos, end));
        }
        if self.opts.require_row_format {
            self.check_row_format(at, sql, db, thread_id)?;
        }
        // DDL or statement DML. Apply to the schema history first (even when filtered out).
        let stmts = ddl::classify(sql, db);
        let touches_schema = stmts.iter().any(|s| s.kind.changes_schema());
        if touches_schema {
            schemas
                .apply_ddl(at, sql, db)
                .map_err(|reason| ConvertError::Ddl {
                    at: at.clone(),
                    sql: sql.to_string(),
                    reason,
                })?;
            // Table ids may now map to other definitions.
            self.tables.clear();
        }
        let Some(first) = stmts.into_iter().next() else {
            return Ok(Vec::new());
        };
        let kind = first.kind;
        let is_dml = matches!(kind, DdlKind::Insert | DdlKind::Update | DdlKind::Delete);
        let is_query = kind == DdlKind::Query;
        if (is_dml && self.opts.filter_query_dml)
            || (is_query && self.opts.filter_query_dcl)
            || self.opts.filter_query_ddl
        {
            return Ok(Vec::new());
        }
        let schema = first.schema.clone().unwrap_or_default();
        let table = first.table.clone().unwrap_or_default();
        if !is_dml && !is_query && !table.is_empty() {
            let pass = self.opts.filter.accepts(&schema, &table)
                || match (&first.old_schema, &first.old_table) {
                    (Some(os), Some(ot)) => self.opts.filter.accepts(os, ot),
                    _ => false,
                };
            if !pass {
                return Ok(Vec::new());
            }
        }
        let ty = EventType::try_from(kind.event_type_code()).unwrap_or(EventType::Query);
        let mut header = self.header(ev, pos);
        if let Some(s) = &first.schema {
            header.schema_name = Some(s.clone());
        }
        if let Some(t) = &first.table {
            header.table_name = Some(t.clone());
        }
        header.event_type = Some(ty as i32);
        let rc = RowChange {
            event_type: Some(ty as i32),
            is_ddl: Some(!is_dml),
            sql: Some(sql.to_string()),
            ddl_schema_name: (!db.is_empty()).then(|| db.to_string()),
            ..Default::default()
        };
        let e = self.entry(ev, pos, header, EntryType::Rowdata, rc.encode_to_vec());
        if is_dml {
            return Ok(self.emit_in_txn(vec![e]));
        }
        // DDL is its own unit: MySQL and MariaDB write no BEGIN/COMMIT around it.
        self.pending_begin = None;
        self.rows_in_txn = 0;
        Ok(vec![e])
    }
}

impl Converter {
    /// Fails when `sql` is a data change on an accepted user table: the source logged it as a
    /// statement, so its rows are missing. Not data changes here: transaction control, DDL, DCL
    /// (which ROW format also writes as text), the server's own emptying of a MEMORY table,
    /// statements on system schemas and on temporary tables created in the stream.
    fn check_row_format(
        &mut self,
        at: &BinlogPosition,
        sql: &str,
        db: &str,
        thread_id: i64,
    ) -> Result<(), ConvertError> {
        if let Some(change) = ddl::temporary_tables(sql, db) {
            match change {
                ddl::TemporaryTables::Created(s, t) => {
                    if self.temporary.len() < MAX_TEMPORARY_TABLES {
                        self.temporary.insert((thread_id, s, t));
                    }
                }
                ddl::TemporaryTables::Dropped(names) => {
                    for (s, t) in names {
                        self.temporary.remove(&(thread_id, s, t));
                    }
                }
            }
            return Ok(());
        }
        let Some(change) = ddl::data_change(sql, db) else {
            return Ok(());
        };
        let schema = change.schema.as_deref().unwrap_or("");
        if change.server_generated || is_system_schema(schema) {
            return Ok(());
        }
        if let Some(table) = &change.table {
            let key = (thread_id, schema.to_string(), table.clone());
            if self.temporary.contains(&key) || !self.opts.filter.accepts(schema, table) {
                return Ok(());
            }
        }
        // A multi-table statement may touch an accepted table: it counts.
        Err(ConvertError::StatementFormat {
            at: at.clone(),
            change: change.describe(),
        })
    }
}

/// The server's own schemas: statements there are no user data.
fn is_system_schema(schema: &str) -> bool {
    ["mysql", "sys", "performance_schema", "information_schema"]
        .iter()
        .any(|s| s.eq_ignore_ascii_case(schema))
}

/// `rest` (with its leading space) when `sql` starts with `kw` case-insensitively as a word.
fn strip_keyword<'a>(sql: &'a str, kw: &str) -> Option<&'a str> {
    let head = sql.get(..kw.len())?;
    if !head.eq_ignore_ascii_case(kw) {
        return None;
    }
    let rest = &sql[kw.len()..];
    match rest.chars().next() {
        None => Some(rest),
        Some(c) if c.is_whitespace() || c == '\'' || c == '(' => Some(rest),
        _ => None,
    }
}

fn ends_with_keyword(sql: &str, kw: &str) -> bool {
    let s = sql.trim_end_matches(|c: char| c.is_whitespace() || c == ';');
    let Some(cut) = s.len().checked_sub(kw.len()) else {
        return false;
    };
    // `get` is `None` when `cut` falls inside a multi-byte character: then the tail is not `kw`.
    let (Some(head), Some(tail)) = (s.get(..cut), s.get(cut..)) else {
        return false;
    };
    tail.eq_ignore_ascii_case(kw)
        && head
            .chars()
            .last()
            .is_none_or(|c| !c.is_alphanumeric() && c != '_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keyword_helpers() {
        assert_eq!(
            strip_keyword("XA START X'31',X'',1", "XA START"),
            Some(" X'31',X'',1")
        );
        assert_eq!(strip_keyword("xa startx", "XA START"), None);
        assert!(ends_with_keyword("BEGIN", "BEGIN"));
        assert!(ends_with_keyword("/* x */ begin;", "BEGIN"));
        assert!(!ends_with_keyword("CREATE PROCEDURE p() xbegin", "BEGIN"));
        // Found by fuzzing: the keyword's length cut inside a multi-byte character panicked.
        assert!(!ends_with_keyword("éEGIN", "BEGIN"));
        assert!(!ends_with_keyword("x€GIN;", "BEGIN"));
        assert!(ends_with_keyword("é BEGIN", "BEGIN"));
    }
}
