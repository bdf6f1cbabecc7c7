//! The envelope of every entry (header, position) and transaction boundaries: BEGIN held back
//! until a row shows (Canal's empty-transaction rule), GTID entries and transaction ends.

use super::*;

impl Converter {
    pub(super) fn statement_helper(
        &mut self,
        ev: &Event,
        pos: &EventPos,
        sql: &str,
    ) -> Vec<ParsedEntry> {
        if self.opts.filter_query_dml {
            return Vec::new();
        }
        let e = self.query_entry(ev, pos, "", "", sql, EventType::Query, None, false);
        self.emit_in_txn(vec![e])
    }

    pub(super) fn position(&self, ev: &Event, pos: &EventPos) -> EntryPosition {
        EntryPosition {
            binlog: BinlogPosition::new(pos.file.clone(), pos.offset),
            next_offset: pos.next_offset,
            server_id: ev.header().server_id(),
            timestamp_ms: ev.header().timestamp() as i64 * 1000,
            gtid: self
                .gtid
                .as_ref()
                .filter(|_| self.opts.gtid_mode)
                .map(GtidSet::from),
            inclusive: false,
        }
    }

    pub(super) fn header(&self, ev: &Event, pos: &EventPos) -> Header {
        let h = ev.header();
        let mut header = Header {
            version: Some(1),
            logfile_name: Some(pos.file.clone()),
            logfile_offset: Some(pos.offset as i64),
            server_id: Some(h.server_id() as i64),
            serveren_code: Some("UTF-8".into()),
            execute_time: Some(h.timestamp() as i64 * 1000),
            source_type: Some(Type::Mysql as i32),
            event_length: Some(h.event_size() as i64),
            ..Default::default()
        };
        if self.opts.gtid_mode {
            if let Some(g) = &self.gtid {
                header.gtid = Some(g.to_string());
            }
            if let Some((gtid, sn, lct)) = &self.current_gtid_props {
                header.props.push(pair("curtGtid", gtid.clone()));
                header.props.push(pair("curtGtidSn", sn.to_string()));
                header.props.push(pair("curtGtidLct", lct.to_string()));
            }
        }
        header
    }

    pub(super) fn entry(
        &self,
        ev: &Event,
        pos: &EventPos,
        header: Header,
        ty: EntryType,
        value: Vec<u8>,
    ) -> ParsedEntry {
        ParsedEntry::new(
            Entry {
                header: Some(header),
                entry_type: Some(ty as i32),
                store_value: Some(value.into()),
            },
            self.position(ev, pos),
        )
    }

    pub(super) fn begin_entry(
        &self,
        ev: &Event,
        pos: &EventPos,
        begin: TransactionBegin,
    ) -> ParsedEntry {
        let mut header = self.header(ev, pos);
        header.schema_name = Some(String::new());
        header.table_name = Some(String::new());
        self.entry(
            ev,
            pos,
            header,
            EntryType::Transactionbegin,
            begin.encode_to_vec(),
        )
    }

    pub(super) fn on_maria_gtid(
        &mut self,
        ev: &Event,
        pos: &EventPos,
        g: MariaGtidEvent,
    ) -> Vec<ParsedEntry> {
        if let Some(GtidState::Maria(state)) = self.gtid.as_mut() {
            state.update(MariaGtid {
                domain: g.domain,
                server: ev.header().server_id(),
                seq: g.seq,
            });
        }
        self.current_gtid_props = None;
        if g.flags & MariaGtidEvent::FL_COMPLETED_XA != 0 {
            // The XA COMMIT/ROLLBACK query that follows is its own entry.
            return Vec::new();
        }
        if g.flags & MariaGtidEvent::FL_PREPARED_XA != 0 {
            // MariaDB logs no XA START query: the GTID event carries the XID.
            let begin = TransactionBegin {
                props: vec![
                    pair("XA_TYPE", "XA START"),
                    pair("XA_XID", format!(" {}", g.xid.clone().unwrap_or_default())),
                ],
                ..Default::default()
            };
            let b = self.begin_entry(ev, pos, begin);
            return self.start_txn(b);
        }
        if g.is_standalone() || !self.opts.mariadb_begin {
            return Vec::new();
        }
        // MariaDB writes no BEGIN query after a transactional GTID event; this is where the
        // transaction starts. The thread id is not in the GTID event, so it is left unset.
        let begin = self.begin_entry(ev, pos, TransactionBegin::default());
        self.start_txn(begin)
    }

    pub(super) fn start_txn(&mut self, begin: ParsedEntry) -> Vec<ParsedEntry> {
        self.rows_in_txn = 0;
        self.pending_begin = Some(begin);
        Vec::new()
    }

    /// Emits entries that belong inside a transaction, releasing a held-back BEGIN first.
    pub(super) fn emit_in_txn(&mut self, entries: Vec<ParsedEntry>) -> Vec<ParsedEntry> {
        if entries.is_empty() {
            return entries;
        }
        self.rows_in_txn += entries.len();
        match self.pending_begin.take() {
            Some(b) => {
                let mut out = Vec::with_capacity(entries.len() + 1);
                out.push(b);
                out.extend(entries);
                out
            }
            None => entries,
        }
    }

    pub(super) fn on_end(
        &mut self,
        ev: &Event,
        pos: &EventPos,
        end: TransactionEnd,
    ) -> Vec<ParsedEntry> {
        let mut header = self.header(ev, pos);
        header.schema_name = Some(String::new());
        header.table_name = Some(String::new());
        let end_entry = self.entry(
            ev,
            pos,
            header,
            EntryType::Transactionend,
            end.encode_to_vec(),
        );
        let begin = self.pending_begin.take();
        let had_rows = self.rows_in_txn > 0;
        self.rows_in_txn = 0;
        self.current_gtid_props = None;
        if had_rows {
            return vec![end_entry];
        }
        // An empty transaction (no row passed the filter). Canal drops it, except one every 5 s
        // of event time or after 8192 dropped, so that cursors keep moving.
        let now = end_entry.position.timestamp_ms;
        if self.empty_dropped + 1 >= EMPTY_TXN_PASS_COUNT
            || now.saturating_sub(self.last_empty_passed_ms) >= EMPTY_TXN_PASS_MS
        {
            self.empty_dropped = 0;
            self.last_empty_passed_ms = now;
            let mut out = Vec::with_capacity(2);
            out.extend(begin);
            out.push(end_entry);
            out
        } else {
            self.empty_dropped += 1;
            Vec::new()
        }
    }
}
