//! A `RowChange` read in place by `canal_protocol::pb_read` (what `canal-client tail` and otter's
//! Extract use) against prost's decode of the same bytes. Whatever the borrowing reader accepts
//! whole (the top level and every row), prost must accept too and yield the same fields; what the
//! reader refuses, its callers decode with prost instead. Must never panic.
#![no_main]

use canal_protocol::entry::{Column, RowChange};
use canal_protocol::pb_read::{read_row, text, ColumnRef, RowChangeRef};
use libfuzzer_sys::fuzz_target;
use prost::Message;

fuzz_target!(|data: &[u8]| {
    let Ok(change) = RowChangeRef::read(data) else {
        return;
    };
    let mut rows = Vec::with_capacity(change.rows.len());
    for row in &change.rows {
        let (mut before, mut after) = (Vec::new(), Vec::new());
        if read_row(row, &mut before, &mut after).is_err() {
            return;
        }
        rows.push((before, after));
    }
    let decoded = match RowChange::decode(data) {
        Ok(d) => d,
        Err(e) => panic!("the reader accepted a RowChange prost refuses: {e}"),
    };
    assert_eq!(change.event_type, decoded.event_type);
    assert_eq!(change.is_ddl, decoded.is_ddl());
    assert_eq!(text(change.sql), decoded.sql());
    assert_eq!(rows.len(), decoded.row_datas.len());
    for ((before, after), row) in rows.iter().zip(&decoded.row_datas) {
        same(before, &row.before_columns);
        same(after, &row.after_columns);
    }
});

fn same(read: &[ColumnRef<'_>], decoded: &[Column]) {
    assert_eq!(read.len(), decoded.len());
    for (r, d) in read.iter().zip(decoded) {
        assert_eq!(text(r.name), d.name());
        assert_eq!(text(r.value), d.value());
        assert_eq!(text(r.mysql_type), d.mysql_type());
        assert_eq!(r.is_null, d.is_null());
        assert_eq!(r.is_key, d.is_key());
        assert_eq!(r.updated, d.updated());
        assert_eq!(r.sql_type, d.sql_type());
        // A checked string is valid UTF-8: `text` never had to fall back.
        assert_eq!(text(r.name).len(), r.name.len());
        assert_eq!(text(r.value).len(), r.value.len());
    }
}
