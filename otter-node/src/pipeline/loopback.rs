//! Loop prevention for sync between sites: what Load writes into each transaction it applies, and
//! how Select recognises such transactions in another pipeline's source and drops them.
//!
//! Every table transaction Load commits starts with a row of `retl.retl_mark` (an upsert that
//! always changes `seq`, so ROW binlogs always log it) holding the channel id and the **origin**:
//! the site where the change was first written. A statement comment would not survive a ROW
//! binlog; a row in the same transaction does. DDL, which cannot share a transaction, carries the
//! same facts in a leading comment (`/* otter:mark channel=N origin=SITE */`), which the QUERY
//! event keeps.
//!
//! Select of a pipeline drops a whole transaction when its mark
//! - belongs to the pipeline's own channel (the other direction of a two-way channel loaded it),
//! - names as origin the site this pipeline writes to (a change going back home, across any
//!   number of hops: A↔B→C→A never brings A's change back to A), or
//! - has a `channel_info` ending in `_SYNC`: a writer outside the product opting a transaction
//!   out of sync (Otter's convention).
//!
//! Everything else goes on; a user's transaction on B that touches a row just loaded from A has no
//! mark and goes to A. The mark must be the transaction's first row change (Load writes it first;
//! an opting-out writer must too): a transaction split across Select batches is judged on its
//! first row, and the judgement carries over to the next batch. Select's cursor only rests on
//! transaction ends, so after a restart judging starts on a transaction boundary.

use bytes::Bytes;
use canal_protocol::entry::{Column, Entry, EntryType, RowChange};
use prost::Message as _;

/// The schema of otter's own tables (Otter's name).
pub const RETL_SCHEMA: &str = "retl";
/// The mark table.
pub const MARK_TABLE: &str = "retl_mark";
/// What a `channel_info` ends with when its writer opted the transaction out of sync.
pub const OPT_OUT_SUFFIX: &str = "_SYNC";

/// Whether the mark table exists.
pub(crate) const MARK_TABLE_EXISTS: &str = "SELECT COUNT(*) FROM information_schema.TABLES \
     WHERE TABLE_SCHEMA = 'retl' AND TABLE_NAME = 'retl_mark'";
/// Creates the mark table (idempotent). `id` is a slot: parallel transactions of one pipeline use
/// different rows so they do not wait on each other.
pub const CREATE_MARK_TABLE: &str = "CREATE TABLE IF NOT EXISTS `retl`.`retl_mark` (\
     id BIGINT NOT NULL PRIMARY KEY, \
     channel_id BIGINT NOT NULL, \
     channel_info VARCHAR(128) NOT NULL DEFAULT '', \
     origin VARCHAR(128) NOT NULL DEFAULT '', \
     seq BIGINT NOT NULL DEFAULT 0\
     ) ENGINE=InnoDB";
/// The first statement of every table transaction Load commits: `(slot, channel, origin)`.
pub(crate) const WRITE_MARK: &str = "INSERT INTO `retl`.`retl_mark` \
     (id, channel_id, channel_info, origin, seq) VALUES (?, ?, '', ?, 1) \
     ON DUPLICATE KEY UPDATE channel_id = VALUES(channel_id), channel_info = '', \
     origin = VALUES(origin), seq = seq + 1";
/// Slots per pipeline in `retl_mark`.
pub(crate) const MARK_SLOTS: u64 = 64;

/// The `retl_mark` row of a pipeline's `slot`-th parallel transaction.
pub(crate) fn mark_slot(pipeline: u32, slot: usize) -> u64 {
    u64::from(pipeline) * MARK_SLOTS + (slot as u64 % MARK_SLOTS)
}

const DDL_MARK_PREFIX: &str = "/* otter:mark ";

/// The comment Load puts before a DDL statement it applies.
pub fn ddl_mark(channel: u32, origin: &str) -> String {
    // The origin is a site name from the channel definition; keep the comment well-formed.
    let origin: String = origin
        .chars()
        .filter(|c| !c.is_whitespace() && *c != '*' && *c != '/')
        .collect();
    format!("{DDL_MARK_PREFIX}channel={channel} origin={origin} */ ")
}

/// A mark read back from the binlog: a `retl_mark` row or a DDL's leading comment.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MarkRow {
    /// The channel whose Load wrote it (None: not a number, or not given).
    pub channel_id: Option<i64>,
    /// Otter's `channel_info`; `…_SYNC` opts out of sync.
    pub channel_info: String,
    /// The site the change was first written at ("" when not given).
    pub origin: String,
}

impl MarkRow {
    /// Reads a `retl_mark` row image (column names compared case-insensitively).
    pub fn from_columns(cols: &[Column]) -> MarkRow {
        let get = |name: &str| {
            cols.iter()
                .find(|c| c.name().eq_ignore_ascii_case(name))
                .filter(|c| !c.is_null())
                .map(|c| c.value().to_string())
        };
        MarkRow {
            channel_id: get("channel_id").and_then(|v| v.trim().parse().ok()),
            channel_info: get("channel_info").unwrap_or_default(),
            origin: get("origin").unwrap_or_default(),
        }
    }

    /// Reads the leading `/* otter:mark channel=N origin=SITE */` of a DDL statement.
    pub fn from_ddl(sql: &str) -> Option<MarkRow> {
        let rest = sql.trim_start().strip_prefix(DDL_MARK_PREFIX)?;
        let (body, _) = rest.split_once("*/")?;
        let mut m = MarkRow::default();
        for part in body.split_whitespace() {
            if let Some(v) = part.strip_prefix("channel=") {
                m.channel_id = v.parse().ok();
            } else if let Some(v) = part.strip_prefix("origin=") {
                m.origin = v.to_string();
            }
        }
        Some(m)
    }
}

/// Why a transaction is not synced by a pipeline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DropReason {
    /// The other direction of this channel loaded it.
    OwnChannel,
    /// It was first written at the site this pipeline writes to.
    BackToOrigin,
    /// Its writer opted out (`channel_info` ending in `_SYNC`).
    OptedOut,
}

impl DropReason {
    /// The metric label.
    pub fn label(self) -> &'static str {
        match self {
            DropReason::OwnChannel => "own_channel",
            DropReason::BackToOrigin => "back_to_origin",
            DropReason::OptedOut => "opted_out",
        }
    }
}

/// What a pipeline does with a marked transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Sync it; its changes were first written at `origin` (None: the pipeline's source site).
    Keep {
        /// Where the change was first written, when not at this pipeline's source.
        origin: Option<String>,
    },
    /// Drop the whole transaction.
    Drop(DropReason),
}

/// Who is judging: a pipeline of `channel` reading site `source_site` and writing `target_site`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Judge {
    /// The pipeline's channel.
    pub channel: u32,
    /// The site it reads.
    pub source_site: String,
    /// The site it writes.
    pub target_site: String,
}

impl Judge {
    /// The verdict on a transaction carrying `mark`.
    pub fn judge(&self, mark: &MarkRow) -> Verdict {
        let info = mark.channel_info.to_ascii_uppercase();
        if info.ends_with(OPT_OUT_SUFFIX) {
            return Verdict::Drop(DropReason::OptedOut);
        }
        if mark.channel_id == Some(i64::from(self.channel)) {
            return Verdict::Drop(DropReason::OwnChannel);
        }
        if !mark.origin.is_empty() && mark.origin == self.target_site {
            return Verdict::Drop(DropReason::BackToOrigin);
        }
        let origin = (!mark.origin.is_empty() && mark.origin != self.source_site)
            .then(|| mark.origin.clone());
        Verdict::Keep { origin }
    }
}

/// The state of the transaction being read.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Txn {
    /// No mark seen yet.
    Open,
    /// Kept; for a foreign origin, the mark entry (repeated at the head of the next batch, so
    /// Extract knows the origin of the rest).
    Keep(Option<Bytes>),
    /// Being dropped.
    Drop,
}

/// Drops looping transactions out of a pipeline's Select batches, in order, batch after batch.
#[derive(Debug)]
pub struct LoopFilter {
    judge: Judge,
    txn: Txn,
}

/// What [`LoopFilter::filter`] kept of a batch.
#[derive(Debug, Default)]
pub struct Filtered {
    /// The entries to sync.
    pub entries: Vec<Bytes>,
    /// Transactions (and DDL) dropped, by reason.
    pub dropped: Vec<DropReason>,
}

fn has(hay: &[u8], needle: &[u8]) -> bool {
    memchr::memmem::find(hay, needle).is_some()
}

/// Whether `e` is the row change of a `retl.retl_mark` row, with its mark.
fn mark_of(e: &Entry) -> Option<MarkRow> {
    if e.entry_type() != EntryType::Rowdata {
        return None;
    }
    let h = e.header.as_ref()?;
    if !(h.schema_name().eq_ignore_ascii_case(RETL_SCHEMA)
        && h.table_name().eq_ignore_ascii_case(MARK_TABLE))
    {
        return None;
    }
    let change = RowChange::decode(e.store_value.clone().unwrap_or_default()).ok()?;
    if change.is_ddl() {
        return None;
    }
    let row = change.row_datas.first()?;
    let cols = if row.after_columns.is_empty() {
        &row.before_columns
    } else {
        &row.after_columns
    };
    Some(MarkRow::from_columns(cols))
}

/// The mark of a DDL entry that Load applied.
fn ddl_mark_of(e: &Entry) -> Option<MarkRow> {
    if e.entry_type() != EntryType::Rowdata {
        return None;
    }
    let change = RowChange::decode(e.store_value.clone().unwrap_or_default()).ok()?;
    if !change.is_ddl() {
        return None;
    }
    MarkRow::from_ddl(change.sql())
}

impl LoopFilter {
    /// A filter for a pipeline, starting on a transaction boundary.
    pub fn new(judge: Judge) -> Self {
        Self {
            judge,
            txn: Txn::Open,
        }
    }

    /// Filters one batch; `ack_points[i]` says whether `entries[i]` ends a transaction. Entries
    /// are only decoded when their bytes name `retl_mark` or carry a DDL mark.
    pub fn filter(&mut self, entries: Vec<Bytes>, ack_points: &[bool]) -> Filtered {
        let mut out = Filtered::default();
        if let Txn::Keep(Some(mark)) = &self.txn {
            out.entries.push(mark.clone());
        }
        let mut txn_start = 0usize;
        for (i, raw) in entries.into_iter().enumerate() {
            let ends = ack_points.get(i).copied().unwrap_or(false);
            let mut keep = self.txn != Txn::Drop;
            if keep && has(&raw, MARK_TABLE.as_bytes()) {
                if let Some(mark) = Entry::decode(raw.clone()).ok().as_ref().and_then(mark_of) {
                    // Only the first mark of a transaction counts.
                    if self.txn == Txn::Open {
                        match self.judge.judge(&mark) {
                            Verdict::Drop(reason) => {
                                out.entries.truncate(txn_start);
                                out.dropped.push(reason);
                                self.txn = Txn::Drop;
                                keep = false;
                            }
                            Verdict::Keep { origin } => {
                                self.txn = Txn::Keep(origin.map(|_| raw.clone()));
                            }
                        }
                    }
                }
            }
            if keep && ends && has(&raw, DDL_MARK_PREFIX.as_bytes()) {
                if let Some(mark) = Entry::decode(raw.clone())
                    .ok()
                    .as_ref()
                    .and_then(ddl_mark_of)
                {
                    if let Verdict::Drop(reason) = self.judge.judge(&mark) {
                        out.dropped.push(reason);
                        keep = false;
                    }
                }
            }
            if keep {
                out.entries.push(raw);
            }
            if ends {
                self.txn = Txn::Open;
                txn_start = out.entries.len();
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use canal_protocol::entry::{Header, RowData};

    fn judge() -> Judge {
        Judge {
            channel: 2,
            source_site: "b".into(),
            target_site: "a".into(),
        }
    }

    fn col(name: &str, v: &str) -> Column {
        Column {
            name: Some(name.into()),
            value: Some(v.into()),
            ..Default::default()
        }
    }

    fn entry(ty: EntryType, table: &str, change: Option<RowChange>) -> Bytes {
        let e = Entry {
            header: Some(Header {
                schema_name: Some(if table == MARK_TABLE { "retl" } else { "shop" }.into()),
                table_name: Some(table.into()),
                ..Default::default()
            }),
            entry_type: Some(ty as i32),
            store_value: change.map(|c| c.encode_to_vec().into()),
        };
        e.encode_to_vec().into()
    }

    fn mark(channel: &str, origin: &str, info: &str) -> Bytes {
        let change = RowChange {
            row_datas: vec![RowData {
                after_columns: vec![
                    col("id", "1"),
                    col("channel_id", channel),
                    col("channel_info", info),
                    col("origin", origin),
                ],
                ..Default::default()
            }],
            ..Default::default()
        };
        entry(EntryType::Rowdata, MARK_TABLE, Some(change))
    }

    fn row(table: &str) -> Bytes {
        entry(EntryType::Rowdata, table, Some(RowChange::default()))
    }

    fn begin() -> Bytes {
        entry(EntryType::Transactionbegin, "", None)
    }

    fn end() -> Bytes {
        entry(EntryType::Transactionend, "", None)
    }

    #[test]
    fn verdicts() {
        let j = judge();
        let m = |c: Option<i64>, o: &str, i: &str| MarkRow {
            channel_id: c,
            origin: o.into(),
            channel_info: i.into(),
        };
        assert_eq!(
            j.judge(&m(Some(2), "a", "")),
            Verdict::Drop(DropReason::OwnChannel)
        );
        assert_eq!(
            j.judge(&m(Some(7), "a", "")),
            Verdict::Drop(DropReason::BackToOrigin)
        );
        assert_eq!(
            j.judge(&m(None, "", "app_sync")),
            Verdict::Drop(DropReason::OptedOut)
        );
        assert_eq!(
            j.judge(&m(Some(7), "c", "")),
            Verdict::Keep {
                origin: Some("c".into())
            }
        );
        assert_eq!(
            j.judge(&m(Some(7), "b", "")),
            Verdict::Keep { origin: None }
        );
    }

    #[test]
    fn ddl_marks_round_trip() {
        let sql = format!("{}ALTER TABLE t ADD c INT", ddl_mark(3, "hang zhou*/"));
        let m = MarkRow::from_ddl(&sql).unwrap();
        assert_eq!(m.channel_id, Some(3));
        assert_eq!(m.origin, "hangzhou");
        assert!(MarkRow::from_ddl("ALTER TABLE t ADD c INT").is_none());
    }

    #[test]
    fn whole_marked_transactions_go_and_the_verdict_spans_batches() {
        let mut f = LoopFilter::new(judge());
        // A user transaction, a looping one, a user one, then a looping one split in two.
        let batch = vec![
            begin(),
            row("t"),
            end(),
            begin(),
            mark("2", "a", ""),
            row("t"),
            end(),
            begin(),
            row("u"),
            end(),
            begin(),
            mark("9", "a", ""),
            row("t"),
        ];
        let acks: Vec<bool> = (0..batch.len()).map(|i| matches!(i, 2 | 6 | 9)).collect();
        let out = f.filter(batch.clone(), &acks);
        assert_eq!(
            out.dropped,
            [DropReason::OwnChannel, DropReason::BackToOrigin]
        );
        let want: Vec<Bytes> = [0, 1, 2, 7, 8, 9]
            .iter()
            .map(|&i| batch[i].clone())
            .collect();
        assert_eq!(out.entries, want);
        let rest = vec![row("t"), end(), begin(), row("t"), end()];
        let out = f.filter(rest.clone(), &[false, true, false, false, true]);
        assert_eq!(
            out.entries,
            rest[2..].to_vec(),
            "the split transaction stays dropped"
        );
    }

    #[test]
    fn a_foreign_origin_is_repeated_at_the_head_of_the_next_batch() {
        let mut f = LoopFilter::new(judge());
        let m = mark("9", "c", "");
        let out = f.filter(vec![begin(), m.clone(), row("t")], &[false, false, false]);
        assert_eq!(out.entries.len(), 3);
        let out = f.filter(vec![row("t"), end()], &[false, true]);
        assert_eq!(out.entries[0], m);
        assert_eq!(out.entries.len(), 3);
        let out = f.filter(vec![begin(), row("t"), end()], &[false, false, true]);
        assert_eq!(out.entries.len(), 3, "a new transaction starts unmarked");
    }
}
