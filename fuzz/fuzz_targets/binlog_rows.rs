//! Structure-aware binlog fuzzing: a real FORMAT_DESCRIPTION, then a fuzzed TABLE_MAP body and
//! fuzzed rows-event bodies, each wrapped in a well-formed event header (and a correct CRC32 when
//! the format has checksums), so that mutations land in the TABLE_MAP metadata and the row images
//! instead of being rejected by the framing. Must never panic.
//!
//! Input layout:
//! - byte 0: bits 0-1 pick the FORMAT_DESCRIPTION (MySQL 8.0 CRC32, MySQL 5.7 without checksum,
//!   MariaDB 10.5 CRC32, MySQL 5.1), bit 2 turns every non-default value option on;
//! - `u16` LE length, then the TABLE_MAP body (post-header and payload, no checksum);
//! - then any number of `[type selector u8][u16 LE length][body]` events; the selector picks a
//!   rows event type (or another TABLE_MAP). A length past the end takes what is left.
//!
//! `fuzz/seed_corpus.py` builds seeds in this layout from the real binlog fixtures.
#![no_main]

use std::io::Cursor;
use std::path::Path;

use canal_server::binlog::convert::{ConvertOptions, Converter, NoSchema};
use canal_server::binlog::file::{BinlogFileReader, BINLOG_MAGIC};
use canal_server::value::ValueOptions;
use libfuzzer_sys::fuzz_target;

/// (FORMAT_DESCRIPTION event as a real server wrote it, whether events carry a CRC32).
const FORMATS: [(&str, bool); 4] = [
    // MySQL 8.0.22, binlog_checksum=CRC32 (rust_mysql_common json.binlog.000001).
    ("dc1d4f600f01000000790000007d00000001000400382e302e32320000000000000000000000000000000000000000000000000000000000000000000000000000000000000000dc1d4f6013000d0008000000000400040000006100041a08000000080808020000000a0a0a2a2a001234000a2801b49eea21", true),
    // MySQL 5.7.20, binlog_checksum=NONE (mysql-binlog-connector-java mysql-bin.checksum-none).
    ("6422d85b0f01000000770000007b00000000000400352e372e32302d6c6f67000000000000000000000000000000000000000000000000000000000000000000000000000000006422d85b13380d0008001200040404041200005f00041a08000000080808020000000a0a0a2a2a00123400002eefbb3f", false),
    // MariaDB 10.5.15, CRC32 (rust_mysql_common mariadb-bin.000001).
    ("8f8660620f01000000fc000000000100000100040031302e352e31352d4d6172696144422d313a31302e352e31352b6d617269617e666f63616c2d6c6f670000000000000000008f86606213380d000800120004040404120000e400041a08000000080808020000000a0a0a0000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000041304000d0808080a0a0a01a03a2d5b", true),
    // MySQL 5.1.23, no checksum, v1 rows events (rust_mysql_common ver_5_1_23.001).
    ("cb3786470f01000000660000006a00000000000400352e312e32332d72632d64656275672d6c6f6700000000000000000000000000000000000000000000000000000000000000cb37864713380d0008001200040404041200005300041a0800000008080802", false),
];

/// Event types a selector byte maps to: rows events v2, PARTIAL_UPDATE_ROWS, v1, pre-GA, and a
/// TABLE_MAP (so one input can remap a table id).
const EVENT_TYPES: [u8; 11] = [30, 31, 32, 39, 23, 24, 25, 20, 21, 22, 19];
const TABLE_MAP: u8 = 19;

fuzz_target!(|data: &[u8]| {
    let Some((&control, rest)) = data.split_first() else {
        return;
    };
    let (fde_hex, crc) = FORMATS[(control & 3) as usize];
    let fde = hex(fde_hex);

    let mut file = BINLOG_MAGIC.to_vec();
    file.extend_from_slice(&fde);
    let mut rest = rest;
    let Some(tm) = take_chunk(&mut rest) else {
        return;
    };
    push_event(&mut file, TABLE_MAP, tm, crc);
    while let Some((&selector, tail)) = rest.split_first() {
        rest = tail;
        let ty = EVENT_TYPES[selector as usize % EVENT_TYPES.len()];
        let body = take_chunk(&mut rest).unwrap_or(&[]);
        push_event(&mut file, ty, body, crc);
    }

    // `BINLOG_ROWS_DUMP=path` writes the binlog file built from the input, so that a finding can
    // be kept as a plain binlog file in canal-server/tests/data/fuzz/.
    if let Some(path) = dump_path() {
        let _ = std::fs::write(path, &file);
    }

    let opts = ConvertOptions {
        schemaless: true,
        values: if control & 4 != 0 {
            ValueOptions {
                per_column_charset: true,
                enum_as_label: true,
                set_as_labels: true,
                decimal_exact_scale: true,
                derive_missing_mysql_type: true,
                fix_time_100_hours: true,
                ..Default::default()
            }
        } else {
            ValueOptions::default()
        },
        ..Default::default()
    };
    let Ok(reader) = BinlogFileReader::new(Path::new("fuzz-bin.000001"), Cursor::new(file)) else {
        return;
    };
    let reader = reader.without_checksum_verification();
    let mut converter = Converter::new(opts, None);
    let mut schemas = NoSchema;
    for event in reader {
        let Ok(raw) = event else { break };
        if let Ok(entries) = converter.convert(&raw.event, &raw.pos, &mut schemas) {
            for e in &entries {
                std::hint::black_box(e.encode());
            }
        }
    }
});

fn dump_path() -> Option<&'static std::ffi::OsStr> {
    static PATH: std::sync::OnceLock<Option<std::ffi::OsString>> = std::sync::OnceLock::new();
    PATH.get_or_init(|| std::env::var_os("BINLOG_ROWS_DUMP"))
        .as_deref()
}

/// `[u16 LE length][bytes]`; a length past the end takes what is left.
fn take_chunk<'a>(rest: &mut &'a [u8]) -> Option<&'a [u8]> {
    if rest.len() < 2 {
        return None;
    }
    let len = u16::from_le_bytes([rest[0], rest[1]]) as usize;
    let body = &rest[2..];
    let len = len.min(body.len());
    let (chunk, tail) = body.split_at(len);
    *rest = tail;
    Some(chunk)
}

/// Appends one event: a 19-byte v4 header, `body`, and the CRC32 of both when `crc`.
fn push_event(file: &mut Vec<u8>, ty: u8, body: &[u8], crc: bool) {
    let start = file.len();
    let size = 19 + body.len() + if crc { 4 } else { 0 };
    let next = (start + size) as u32;
    file.extend_from_slice(&1_600_000_000u32.to_le_bytes());
    file.push(ty);
    file.extend_from_slice(&1u32.to_le_bytes());
    file.extend_from_slice(&(size as u32).to_le_bytes());
    file.extend_from_slice(&next.to_le_bytes());
    file.extend_from_slice(&0u16.to_le_bytes());
    file.extend_from_slice(body);
    if crc {
        let sum = crc32fast::hash(&file[start..]);
        file.extend_from_slice(&sum.to_le_bytes());
    }
}

fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap_or(0))
        .collect()
}
