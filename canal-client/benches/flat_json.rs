//! CPU per row of `canal-client tail`'s JSON writer, without a server: the e2e bench's workload
//! (the `bench.orders` table: inserts, updates with both images, deletes; one email in seven
//! non-ASCII) built as canal-server encodes it, then written as flat-message JSON lines by
//! `write_flat_json_lines` (what `tail` runs) and by `flat_messages` + `FlatMessage::to_json` (the
//! reference it must equal byte for byte, and the baseline of the ratio), interleaved.
//!
//! `cargo bench -p canal-client --bench flat_json` (knobs: `BENCH_ROWS`, default 200 000 row
//! changes; `BENCH_RUNS`, default 5; `BENCH_ONLY_OURS=1` skips the reference, for a profiler). Prints ns per row change of each writer (median of the runs)
//! and the ratio. The output of both is compared first, so a bench run is also a check.

use std::time::Instant;

use canal_client::flat::{flat_messages, write_flat_json_lines};
use canal_protocol::entry::{Column, Header, RowChange, RowData};
use canal_protocol::{Entry, EntryType, EventType};
use prost::Message as _;

/// Rows per entry: a ROWS event of about 8 KiB of this table, as MariaDB writes them.
const ROWS_PER_ENTRY: u64 = 40;
/// Entries per batch, as `tail` asks for them (its default batch size is in entries).
const ENTRIES_PER_BATCH: usize = 1000;

fn column(name: &str, sql_type: i32, mysql_type: &str, value: Option<String>, key: bool) -> Column {
    Column {
        index: Some(0),
        sql_type: Some(sql_type),
        name: Some(name.into()),
        is_key: Some(key),
        updated: Some(false),
        is_null: Some(value.is_none()),
        value,
        mysql_type: Some(mysql_type.into()),
        ..Default::default()
    }
}

/// One `bench.orders` row as canal-server formats it; `v` varies the values as updates do.
fn row(id: u64, v: u64) -> Vec<Column> {
    let email = if id % 7 == 0 {
        format!("Jürgen Müller {id}@example.de")
    } else {
        format!("customer-{id}-{v}@{:012x}.example.com", id * 2_654_435_761)
    };
    let note = (id % 10 != 0).then(|| {
        format!(
            "order note {id}: {}",
            "3c59dc04".repeat(1 + (id % 12) as usize)
        )
    });
    let mut cols = vec![
        column("id", -5, "bigint(20)", Some(id.to_string()), true),
        column(
            "customer_id",
            4,
            "int(11)",
            Some((id % 50_000 + 1 + v).to_string()),
            false,
        ),
        column("email", 12, "varchar(64)", Some(email), false),
        column(
            "amount",
            3,
            "decimal(12,2)",
            Some(format!("{}.{:02}", id % 1000 + v, 99)),
            false,
        ),
        column(
            "created_at",
            93,
            "datetime(3)",
            Some("2024-01-15 06:17:36.789".into()),
            false,
        ),
        column(
            "updated_at",
            93,
            "timestamp",
            Some(format!("2023-11-15 06:{:02}:20", v % 60)),
            false,
        ),
        column("note", 2005, "text", note, false),
        column(
            "flag",
            -6,
            "tinyint(4)",
            Some(((id + v) % 2).to_string()),
            false,
        ),
        column(
            "status",
            4,
            "enum('new','paid','shipped','delivered','cancelled')",
            Some(
                ["new", "paid", "shipped", "delivered", "cancelled"][((id + v) % 5) as usize]
                    .into(),
            ),
            false,
        ),
    ];
    for (i, c) in cols.iter_mut().enumerate() {
        c.index = Some(i as i32);
    }
    cols
}

fn entry(event_type: EventType, rows: Vec<RowData>, offset: i64) -> Entry {
    let header = Header {
        logfile_name: Some("mysql-bin.000001".into()),
        logfile_offset: Some(offset),
        server_id: Some(1),
        schema_name: Some("bench".into()),
        table_name: Some("orders".into()),
        execute_time: Some(1_700_000_000_000 + offset),
        event_type: Some(event_type as i32),
        gtid: Some(String::new()),
        ..Default::default()
    };
    let change = RowChange {
        table_id: Some(42),
        event_type: Some(event_type as i32),
        is_ddl: Some(false),
        row_datas: rows,
        ..Default::default()
    };
    Entry {
        header: Some(header),
        entry_type: Some(EntryType::Rowdata as i32),
        store_value: Some(change.encode_to_vec().into()),
    }
}

/// About `rows` row changes in the workload's mix: a third inserts, half updates, the rest deletes.
fn workload(rows: u64) -> Vec<Entry> {
    let mut entries = Vec::new();
    let mut id = 0;
    let mut made = 0;
    while made < rows {
        let kind = (entries.len() % 6) as u64;
        let rows: Vec<RowData> = (0..ROWS_PER_ENTRY)
            .map(|i| {
                let id = id + i;
                match kind {
                    0 | 1 => RowData {
                        after_columns: row(id, 0),
                        ..Default::default()
                    },
                    2..=4 => {
                        let mut after = row(id, 1);
                        let before = row(id, 0);
                        for (a, b) in after.iter_mut().zip(&before) {
                            a.updated = Some(a.value != b.value || a.is_null != b.is_null);
                        }
                        RowData {
                            before_columns: before,
                            after_columns: after,
                            ..Default::default()
                        }
                    }
                    _ => RowData {
                        before_columns: row(id, 1),
                        ..Default::default()
                    },
                }
            })
            .collect();
        let event_type = match kind {
            0 | 1 => EventType::Insert,
            2..=4 => EventType::Update,
            _ => EventType::Delete,
        };
        entries.push(entry(event_type, rows, entries.len() as i64));
        id += ROWS_PER_ENTRY;
        made += ROWS_PER_ENTRY;
    }
    entries
}

fn env_num(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Writes every batch with `write`, returning ns per row change.
fn time(
    entries: &[Entry],
    rows: u64,
    out: &mut Vec<u8>,
    mut write: impl FnMut(i64, &[Entry], &mut Vec<u8>),
) -> f64 {
    let started = Instant::now();
    for (i, batch) in entries.chunks(ENTRIES_PER_BATCH).enumerate() {
        out.clear();
        write(i as i64, batch, out);
        std::hint::black_box(&out);
    }
    started.elapsed().as_nanos() as f64 / rows as f64
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let rows = env_num("BENCH_ROWS", 200_000);
    let runs = env_num("BENCH_RUNS", 5).max(1);
    // For profiling the writer alone.
    let only_ours = env_num("BENCH_ONLY_OURS", 0) == 1;
    let entries = workload(rows);
    let rows = entries.len() as u64 * ROWS_PER_ENTRY;
    const TS: i64 = 1_733_000_000_000;

    let direct = |id: i64, batch: &[Entry], out: &mut Vec<u8>| {
        if let Err(e) = write_flat_json_lines(id, batch, TS, out) {
            panic!("the workload is valid: {e}");
        }
    };
    let reference = |id: i64, batch: &[Entry], out: &mut Vec<u8>| {
        let messages = match flat_messages(id, batch, TS) {
            Ok(m) => m,
            Err(e) => panic!("the workload is valid: {e}"),
        };
        for m in &messages {
            out.extend_from_slice(m.to_json().as_bytes());
            out.push(b'\n');
        }
    };

    // Both write the same bytes.
    for (i, batch) in entries.chunks(ENTRIES_PER_BATCH).enumerate().take(1) {
        let (mut a, mut b) = (Vec::new(), Vec::new());
        direct(i as i64, batch, &mut a);
        reference(i as i64, batch, &mut b);
        assert!(a == b, "write_flat_json_lines differs from the reference");
    }

    let mut out = Vec::new();
    let (mut ours, mut base) = (Vec::new(), Vec::new());
    for _ in 0..runs {
        ours.push(time(&entries, rows, &mut out, direct));
        if !only_ours {
            base.push(time(&entries, rows, &mut out, reference));
        }
    }
    if only_ours {
        base.push(f64::NAN);
    }
    let (ours, base) = (median(ours), median(base));
    println!(
        "{rows} row changes in {} entries, {runs} runs (median):",
        entries.len()
    );
    println!("  write_flat_json_lines          {ours:>8.1} ns/row");
    println!("  flat_messages + to_json (base) {base:>8.1} ns/row");
    println!("  base ÷ ours                    {:>8.2}×", base / ours);
}
