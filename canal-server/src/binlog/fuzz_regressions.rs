//! Inputs found by `cargo fuzz` (`fuzz/`, README "Fuzzing") that once made binlog decoding panic
//! or abort. Each file in `tests/data/fuzz/` is a binlog file (the 4-byte magic is prepended when
//! missing, as the `binlog_decode` target does) and must now decode to entries or typed errors.

use std::io::Cursor;
use std::path::{Path, PathBuf};

use super::convert::{ConvertOptions, Converter, NoSchema};
use super::file::{BinlogFileReader, BINLOG_MAGIC};
use crate::position::gtid::{GtidState, MariaGtidList, MysqlGtidSet};
use crate::value::ValueOptions;

fn inputs() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/fuzz");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "bin"))
        .collect();
    files.sort();
    files
}

/// Decodes `data` the way the `binlog_decode` fuzz target does; returns every error's text.
fn decode(
    data: &[u8],
    verify_checksums: bool,
    opts: ConvertOptions,
    gtid: Option<GtidState>,
) -> Vec<String> {
    let mut file = Vec::new();
    if !data.starts_with(&BINLOG_MAGIC) {
        file.extend_from_slice(&BINLOG_MAGIC);
    }
    file.extend_from_slice(data);
    let mut reader = BinlogFileReader::new(Path::new("fuzz-bin.000001"), Cursor::new(file))
        .expect("magic present");
    if !verify_checksums {
        reader = reader.without_checksum_verification();
    }
    let mut converter = Converter::new(opts, gtid);
    let mut errors = Vec::new();
    for event in reader {
        match event {
            Ok(raw) => {
                if let Err(e) = converter.convert(&raw.event, &raw.pos, &mut NoSchema) {
                    errors.push(e.to_string());
                }
            }
            Err(e) => errors.push(e.to_string()),
        }
    }
    errors
}

#[test]
fn fuzz_findings_decode_without_panicking() {
    let files = inputs();
    assert!(!files.is_empty());
    for path in files {
        let data = std::fs::read(&path).unwrap();
        let all_options = ConvertOptions {
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
        let runs = [
            (
                true,
                ConvertOptions {
                    schemaless: true,
                    ..Default::default()
                },
                None,
            ),
            (
                false,
                ConvertOptions {
                    schemaless: true,
                    ..Default::default()
                },
                None,
            ),
            (
                false,
                all_options.clone(),
                Some(GtidState::Mysql(MysqlGtidSet::default())),
            ),
            (
                false,
                all_options,
                Some(GtidState::Maria(MariaGtidList::default())),
            ),
        ];
        for (verify, opts, gtid) in runs {
            for err in decode(&data, verify, opts, gtid) {
                // `guarded` turns a decoder panic into this error outside fuzz builds; the fix
                // for each finding validates before the decoder runs, so none may remain.
                assert!(
                    !err.contains("decoder panicked"),
                    "{}: {err}",
                    path.display()
                );
            }
        }
    }
}

#[test]
fn rows_event_whose_rows_take_no_bytes_is_an_error() {
    // Found by fuzzing: a WRITE_ROWS whose after image holds no column decoded the same empty
    // row forever, growing the row list until memory ran out.
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/fuzz/rows-empty-images-endless-loop.bin");
    let data = std::fs::read(path).unwrap();
    let errors = decode(
        &data,
        false,
        ConvertOptions {
            schemaless: true,
            ..Default::default()
        },
        None,
    );
    assert!(
        errors
            .iter()
            .any(|e| e.contains("row images hold no column")),
        "{errors:?}"
    );
}
