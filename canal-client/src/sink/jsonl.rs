//! `tail`: row changes to a writer (stdout), as flat-message JSON lines or a table for people.
//!
//! A batch is written and flushed before it is acked; an output that cannot be written (a closed
//! pipe) stops the run without acking.
//!
//! Each batch is built in one buffer and handed to the writer in one `write_all`, then flushed.
//! JSON lines are written straight from the entries ([`write_flat_json_lines`]), the same bytes as
//! [`FlatMessage::to_json`] without building the messages.

use std::fmt::Write as _;
use std::io::Write;

use tokio_util::sync::CancellationToken;

use super::{Batch, Sink, SinkError};
use crate::flat::{write_flat_json_lines, FlatMessage};
use crate::view::ViewError;

/// Output shape of [`Tail`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TailFormat {
    /// One Canal flat message per line.
    Json,
    /// One line per row (or statement), aligned for reading.
    Table,
}

/// Writes batches to `W`.
pub struct Tail<W: Write + Send> {
    out: W,
    format: TailFormat,
    /// The batch being written; as large as the largest batch so far.
    buf: Vec<u8>,
    /// One table line.
    line: String,
}

/// Why a batch was not written.
enum WriteError {
    Entry(ViewError),
    Output(std::io::Error),
}

impl<W: Write + Send> Tail<W> {
    /// A tail writing to `out`.
    pub fn new(out: W, format: TailFormat) -> Self {
        Self {
            out,
            format,
            buf: Vec::new(),
            line: String::new(),
        }
    }

    /// The writer back.
    pub fn into_inner(self) -> W {
        self.out
    }

    fn write_batch(&mut self, batch: &Batch<'_>) -> Result<(), WriteError> {
        self.buf.clear();
        match self.format {
            TailFormat::Json => {
                write_flat_json_lines(batch.id, batch.entries, batch.ts, &mut self.buf)
                    .map_err(WriteError::Entry)?;
            }
            TailFormat::Table => {
                for m in batch.messages {
                    self.line.clear();
                    table_lines(m, &mut self.line);
                    if !self.line.ends_with('\n') {
                        self.line.push('\n');
                    }
                    self.buf.extend_from_slice(self.line.as_bytes());
                }
            }
        }
        self.out
            .write_all(&self.buf)
            .and_then(|()| self.out.flush())
            .map_err(WriteError::Output)
    }
}

impl<W: Write + Send> Sink for Tail<W> {
    fn name(&self) -> &'static str {
        "tail"
    }

    fn reads_messages(&self) -> bool {
        self.format == TailFormat::Table
    }

    async fn deliver(
        &mut self,
        batch: &Batch<'_>,
        _stop: &CancellationToken,
    ) -> Result<(), SinkError> {
        self.write_batch(batch).map_err(|e| match e {
            // What `run` reports when it cannot build a batch's messages.
            WriteError::Entry(e) => SinkError::Fatal(format!("batch {}: {e}", batch.id)),
            WriteError::Output(e) => SinkError::Fatal(format!("writing the output: {e}")),
        })
    }
}

/// Human lines for one flat message: `time schema.table TYPE` then the row.
fn table_lines(m: &FlatMessage, out: &mut String) {
    let time = format_time(m.es);
    let name = if m.table.is_empty() {
        m.database.clone()
    } else {
        format!("{}.{}", m.database, m.table)
    };
    let Some(rows) = &m.data else {
        let _ = writeln!(out, "{time}  {name:<24} {:<8} {}", m.kind, m.sql.trim());
        return;
    };
    for (i, row) in rows.iter().enumerate() {
        let _ = write!(out, "{time}  {name:<24} {:<8}", m.kind);
        let old = m.old.as_ref().and_then(|o| o.get(i));
        for (col, value) in &row.0 {
            let shown = value.as_deref().unwrap_or("NULL");
            match old.and_then(|o| o.get(col)) {
                Some(before) => {
                    let _ = write!(
                        out,
                        " {col}={}→{}",
                        before.as_deref().unwrap_or("NULL"),
                        shown
                    );
                }
                None => {
                    let _ = write!(out, " {col}={shown}");
                }
            }
        }
        out.push('\n');
    }
}

/// `YYYY-MM-DD HH:MM:SS.mmm` (UTC) for ms since the epoch.
fn format_time(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let millis = ms.rem_euclid(1000);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}.{millis:03}",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flat::{FlatRow, Ordered};

    /// A writer that refuses everything, like a closed pipe.
    struct Closed;

    impl Write for Closed {
        fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
            Err(std::io::ErrorKind::BrokenPipe.into())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn batch_entries() -> Vec<canal_protocol::Entry> {
        use canal_protocol::entry::{Column, Header, RowChange, RowData};
        use canal_protocol::{EntryType, EventType};
        use prost::Message as _;
        let col = |name: &str, v: Option<&str>, key: bool| Column {
            name: Some(name.into()),
            value: v.map(Into::into),
            is_null: Some(v.is_none()),
            is_key: Some(key),
            updated: Some(!key),
            sql_type: Some(4),
            mysql_type: Some("int(11)".into()),
            ..Default::default()
        };
        let change = RowChange {
            event_type: Some(EventType::Update as i32),
            row_datas: vec![RowData {
                before_columns: vec![col("id", Some("1"), true), col("n", None, false)],
                after_columns: vec![col("id", Some("1"), true), col("n", Some("é\n"), false)],
                ..Default::default()
            }],
            ..Default::default()
        };
        let row = canal_protocol::Entry {
            header: Some(Header {
                schema_name: Some("shop".into()),
                table_name: Some("user".into()),
                execute_time: Some(1_700_000_000_000),
                ..Default::default()
            }),
            entry_type: Some(EntryType::Rowdata as i32),
            store_value: Some(change.encode_to_vec().into()),
        };
        let begin = canal_protocol::Entry {
            entry_type: Some(EntryType::Transactionbegin as i32),
            ..Default::default()
        };
        vec![begin, row.clone(), row]
    }

    /// JSON lines are the flat messages' `to_json`, one per ROWDATA entry, in one write; the tail
    /// does not ask `run` to build the messages.
    #[tokio::test]
    async fn json_lines_are_the_flat_messages() {
        let entries = batch_entries();
        let batch = Batch {
            destination: "example",
            id: 9,
            entries: &entries,
            ts: 1_700_000_000_123,
            messages: &[],
        };
        let mut tail = Tail::new(Vec::new(), TailFormat::Json);
        assert!(!tail.reads_messages());
        tail.deliver(&batch, &CancellationToken::new())
            .await
            .unwrap();
        let mut want = String::new();
        for m in crate::flat::flat_messages(9, &entries, 1_700_000_000_123).unwrap() {
            want.push_str(&m.to_json());
            want.push('\n');
        }
        assert_eq!(String::from_utf8(tail.into_inner()).unwrap(), want);
        assert!(Tail::new(Vec::new(), TailFormat::Table).reads_messages());
    }

    /// An output that cannot be written fails the batch (so it is not acked).
    #[tokio::test]
    async fn a_closed_output_fails_the_batch() {
        let entries = batch_entries();
        let batch = Batch {
            destination: "example",
            id: 9,
            entries: &entries,
            ts: 0,
            messages: &[],
        };
        let mut tail = Tail::new(Closed, TailFormat::Json);
        let err = tail.deliver(&batch, &CancellationToken::new()).await;
        assert!(
            matches!(&err, Err(SinkError::Fatal(m)) if m.starts_with("writing the output")),
            "{err:?}"
        );
    }

    #[test]
    fn time_text() {
        assert_eq!(format_time(0), "1970-01-01 00:00:00.000");
        assert_eq!(format_time(1_700_000_001_050), "2023-11-14 22:13:21.050");
        assert_eq!(format_time(951_782_400_000), "2000-02-29 00:00:00.000");
    }

    #[test]
    fn table_shows_changes_and_statements() {
        let m = FlatMessage {
            data: Some(vec![FlatRow::from_pairs([
                ("id", Some("1")),
                ("name", Some("b")),
                ("x", None),
            ])]),
            database: "shop".into(),
            es: 0,
            gtid: String::new(),
            id: 1,
            is_ddl: false,
            mysql_type: None,
            old: Some(vec![FlatRow::from_pairs([("name", Some("a"))])]),
            pk_names: None,
            sql: String::new(),
            sql_type: None,
            table: "user".into(),
            ts: 0,
            kind: "UPDATE".into(),
        };
        let mut s = String::new();
        table_lines(&m, &mut s);
        assert_eq!(
            s,
            "1970-01-01 00:00:00.000  shop.user                UPDATE   id=1 name=a→b x=NULL\n"
        );
        let ddl = FlatMessage {
            data: None,
            old: None,
            sql: "ALTER TABLE user ADD c INT".into(),
            kind: "ALTER".into(),
            ..m
        };
        let mut s = String::new();
        table_lines(&ddl, &mut s);
        assert!(s.ends_with("ALTER    ALTER TABLE user ADD c INT\n"), "{s}");
        let _: Ordered<i32> = Ordered::default();
    }
}
