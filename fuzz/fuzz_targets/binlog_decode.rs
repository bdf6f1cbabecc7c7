//! Arbitrary bytes as a binlog file: the file reader and the converter must never panic.
//!
//! The input is a binlog file, with the 4-byte magic prepended when it is missing. Every event is
//! fed to a schemaless [`Converter`] with [`NoSchema`]; errors are expected and ignored.
//!
//! Two passes over the same bytes:
//! 1. as production reads a file: CRC32 verification on, Canal's default options;
//! 2. with CRC verification off (so a mutated event is decoded instead of rejected by its
//!    checksum) and every non-default option and GTID tracking on, to reach the other branches.
#![no_main]

use std::io::Cursor;
use std::path::Path;

use canal_server::binlog::convert::{ConvertOptions, Converter, NoSchema};
use canal_server::binlog::file::{BinlogFileReader, BINLOG_MAGIC};
use canal_server::position::gtid::{GtidState, MariaGtidList, MysqlGtidSet};
use canal_server::value::ValueOptions;
use libfuzzer_sys::fuzz_target;

/// Events read per pass; inputs are small, this only bounds pathological loops.
const MAX_EVENTS: usize = 10_000;

fuzz_target!(|data: &[u8]| {
    let mut file = Vec::with_capacity(data.len() + BINLOG_MAGIC.len());
    if !data.starts_with(&BINLOG_MAGIC) {
        file.extend_from_slice(&BINLOG_MAGIC);
    }
    file.extend_from_slice(data);

    run(
        &file,
        true,
        ConvertOptions {
            schemaless: true,
            ..Default::default()
        },
        None,
    );

    let opts = ConvertOptions {
        schemaless: true,
        gtid_mode: true,
        values: ValueOptions {
            per_column_charset: true,
            enum_as_label: true,
            set_as_labels: true,
            decimal_exact_scale: true,
            derive_missing_mysql_type: true,
            fix_time_100_hours: true,
            ..Default::default()
        },
        ..Default::default()
    };
    let gtid = if data.len() % 2 == 0 {
        GtidState::Mysql(MysqlGtidSet::default())
    } else {
        GtidState::Maria(MariaGtidList::default())
    };
    run(&file, false, opts, Some(gtid));
});

fn run(file: &[u8], verify_checksums: bool, opts: ConvertOptions, gtid: Option<GtidState>) {
    let Ok(mut reader) = BinlogFileReader::new(Path::new("fuzz-bin.000001"), Cursor::new(file))
    else {
        return;
    };
    if !verify_checksums {
        reader = reader.without_checksum_verification();
    }
    let mut converter = Converter::new(opts, gtid);
    let mut schemas = NoSchema;
    for event in reader.take(MAX_EVENTS) {
        let Ok(raw) = event else { break };
        if let Ok(entries) = converter.convert(&raw.event, &raw.pos, &mut schemas) {
            for e in &entries {
                // What the store keeps: the encoded entry.
                std::hint::black_box(e.encode());
            }
        }
    }
    std::hint::black_box(converter.gtid_state().map(|g| g.to_string()));
}
