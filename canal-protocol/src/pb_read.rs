//! A borrowing reader of a `RowChange` for hot paths (a client writing flat-message JSON, otter's
//! Extract): strings stay slices of the entry's bytes instead of one `String` each per column, as
//! a prost decode makes them, and fields a reader does not need are checked but not kept.
//!
//! It accepts only what prost accepts, reading each field as prost does (the last value of a
//! scalar wins, repeated fields append, unknown fields are skipped). Anything it does not follow
//! (a group, a wrong wire type, a bad varint, invalid UTF-8) is [`Unsupported`]: the caller then
//! takes the prost path, which yields the same message or prost's own error.

use crate::EventType;

/// Input this reader does not follow; see the module docs. The caller decodes with prost instead.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Unsupported;

type Result<T> = std::result::Result<T, Unsupported>;

/// A field's payload.
#[derive(Debug, Clone, Copy)]
enum Value<'a> {
    Varint(u64),
    Len(&'a [u8]),
    /// Fixed 32/64-bit payloads: no field read here has one, so they are only skipped.
    Fixed,
}

/// Fields of one protobuf message, in wire order.
struct Fields<'a> {
    buf: &'a [u8],
}

impl<'a> Fields<'a> {
    fn new(buf: &'a [u8]) -> Self {
        Self { buf }
    }

    #[inline(always)]
    fn varint(&mut self) -> Result<u64> {
        // One byte covers keys of fields 1–15, flags and short lengths.
        if let Some((&b, rest)) = self.buf.split_first() {
            if b < 0x80 {
                self.buf = rest;
                return Ok(u64::from(b));
            }
        }
        self.varint_long()
    }

    #[cold]
    fn varint_long(&mut self) -> Result<u64> {
        let mut value = 0u64;
        for (i, &b) in self.buf.iter().enumerate().take(10) {
            // prost refuses a tenth byte above 1 (more than 64 bits).
            if i == 9 && b > 1 {
                return Err(Unsupported);
            }
            value |= u64::from(b & 0x7f) << (7 * i);
            if b < 0x80 {
                self.buf = &self.buf[i + 1..];
                return Ok(value);
            }
        }
        Err(Unsupported)
    }

    #[inline(always)]
    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        if n > self.buf.len() {
            return Err(Unsupported);
        }
        let (head, rest) = self.buf.split_at(n);
        self.buf = rest;
        Ok(head)
    }

    /// Consumes the one-byte key `key` if it comes next.
    #[inline(always)]
    fn eat(&mut self, key: u8) -> bool {
        match self.buf.split_first() {
            Some((&k, rest)) if k == key => {
                self.buf = rest;
                true
            }
            _ => false,
        }
    }

    /// A length-delimited payload.
    #[inline(always)]
    fn payload(&mut self) -> Result<&'a [u8]> {
        let n = usize::try_from(self.varint()?).map_err(|_| Unsupported)?;
        self.take(n)
    }

    /// A length-delimited payload that must be UTF-8 (a `string` field), as bytes.
    #[inline(always)]
    fn text(&mut self) -> Result<&'a [u8]> {
        let b = self.payload()?;
        // The ASCII check is inlined and fast on short strings; anything else is checked fully.
        if b.is_ascii() || std::str::from_utf8(b).is_ok() {
            Ok(b)
        } else {
            Err(Unsupported)
        }
    }

    /// The next `(field number, payload)`, `None` at the end.
    fn next(&mut self) -> Result<Option<(u32, Value<'a>)>> {
        if self.buf.is_empty() {
            return Ok(None);
        }
        // prost refuses keys above u32::MAX and field 0.
        let key = u32::try_from(self.varint()?).map_err(|_| Unsupported)?;
        let field = key >> 3;
        if field == 0 {
            return Err(Unsupported);
        }
        let value = match key & 7 {
            0 => Value::Varint(self.varint()?),
            1 => {
                self.take(8)?;
                Value::Fixed
            }
            2 => {
                let n = usize::try_from(self.varint()?).map_err(|_| Unsupported)?;
                Value::Len(self.take(n)?)
            }
            5 => {
                self.take(4)?;
                Value::Fixed
            }
            // Groups (3, 4) and invalid wire types.
            _ => return Err(Unsupported),
        };
        Ok(Some((field, value)))
    }
}

fn varint(v: Value<'_>) -> Result<u64> {
    match v {
        Value::Varint(x) => Ok(x),
        _ => Err(Unsupported),
    }
}

fn int32(v: Value<'_>) -> Result<i32> {
    // prost truncates, as the protobuf spec says.
    varint(v).map(|x| x as i32)
}

fn boolean(v: Value<'_>) -> Result<bool> {
    varint(v).map(|x| x != 0)
}

fn bytes(v: Value<'_>) -> Result<&[u8]> {
    match v {
        Value::Len(b) => Ok(b),
        _ => Err(Unsupported),
    }
}

fn string(v: Value<'_>) -> Result<&[u8]> {
    let b = bytes(v)?;
    std::str::from_utf8(b).map_err(|_| Unsupported)?;
    Ok(b)
}

/// A string field this reader returned, as `&str`: it checked the bytes, so this never fails
/// (an empty string if it somehow did).
pub fn text(checked: &[u8]) -> &str {
    std::str::from_utf8(checked).unwrap_or_default()
}

/// Checks a `Pair` (`props` entries) as prost would decode it: two strings.
fn check_pair(v: Value<'_>) -> Result<()> {
    let mut f = Fields::new(bytes(v)?);
    while let Some((field, v)) = f.next()? {
        if matches!(field, 1 | 2) {
            string(v)?;
        }
    }
    Ok(())
}

/// A `RowChange` with its rows still encoded.
#[derive(Debug, Default)]
pub struct RowChangeRef<'a> {
    /// `eventType`, as sent.
    pub event_type: Option<i32>,
    /// `isDdl` (false when absent).
    pub is_ddl: bool,
    /// `sql` (empty when absent), checked UTF-8.
    pub sql: &'a [u8],
    /// Each `rowDatas` element, encoded.
    pub rows: Vec<&'a [u8]>,
}

impl<'a> RowChangeRef<'a> {
    /// Reads `buf`, checking every field prost would check.
    pub fn read(buf: &'a [u8]) -> Result<Self> {
        let mut rows = Vec::new();
        let mut out = Self::read_each_row(buf, |row| {
            rows.push(row);
            Ok(())
        })?;
        out.rows = rows;
        Ok(out)
    }

    /// Reads `buf` as [`read`](Self::read) does, but hands each `rowDatas` element to `on_row`
    /// as it comes (in wire order) instead of collecting them; `rows` stays empty. A reader that
    /// goes through every row anyway reads the bytes front to back this way, once, rather than
    /// first hopping from row to row (a cache miss each on a large batch) and then coming back.
    /// An error of `on_row` ends the read.
    pub fn read_each_row(
        buf: &'a [u8],
        mut on_row: impl FnMut(&'a [u8]) -> Result<()>,
    ) -> Result<Self> {
        let mut out = RowChangeRef::default();
        let mut f = Fields::new(buf);
        while let Some((field, v)) = f.next()? {
            match field {
                1 => {
                    varint(v)?;
                }
                2 => out.event_type = Some(int32(v)?),
                10 => out.is_ddl = boolean(v)?,
                11 => out.sql = string(v)?,
                12 => on_row(bytes(v)?)?,
                13 => check_pair(v)?,
                14 => {
                    string(v)?;
                }
                _ => {}
            }
        }
        Ok(out)
    }

    /// The event type the flat message reports: the RowChange's, else the header's, else UPDATE
    /// (unknown numbers count as absent).
    pub fn event_type(&self, header: Option<i32>) -> EventType {
        self.event_type
            .and_then(|t| EventType::try_from(t).ok())
            .or_else(|| header.and_then(|t| EventType::try_from(t).ok()))
            .unwrap_or(EventType::Update)
    }
}

/// The fields of a `Column` a reader uses, borrowed (`index`, `length` and `props` are checked and
/// skipped). The strings are checked UTF-8 but kept as bytes: a JSON writer escapes bytes, and
/// handing out `&str` would mean validating every string a second time (without `unsafe`), which
/// cost `canal-client tail` a fifth of its CPU; [`text`] turns one into `&str` where needed.
#[derive(Debug, Clone, Copy, Default)]
pub struct ColumnRef<'a> {
    /// `name` (empty when absent).
    pub name: &'a [u8],
    /// `value` (empty when absent).
    pub value: &'a [u8],
    /// `isNull`.
    pub is_null: bool,
    /// `isKey`.
    pub is_key: bool,
    /// `updated`.
    pub updated: bool,
    /// `sqlType` (0 when absent).
    pub sql_type: i32,
    /// `mysqlType` (empty when absent).
    pub mysql_type: &'a [u8],
}

impl<'a> ColumnRef<'a> {
    fn read(buf: &'a [u8]) -> Result<Self> {
        let mut c = ColumnRef::default();
        let mut f = Fields::new(buf);
        // The fields in the order canal-server (and Canal) write them, each optional, as
        // straight-line code; from the first field out of that order on, the general loop. Either
        // way every field is read once, in wire order.
        if f.eat(0x08) {
            f.varint()?;
        }
        if f.eat(0x10) {
            c.sql_type = f.varint()? as i32;
        }
        if f.eat(0x1a) {
            c.name = f.text()?;
        }
        if f.eat(0x20) {
            c.is_key = f.varint()? != 0;
        }
        if f.eat(0x28) {
            c.updated = f.varint()? != 0;
        }
        if f.eat(0x30) {
            c.is_null = f.varint()? != 0;
        }
        if f.eat(0x42) {
            c.value = f.text()?;
        }
        if f.eat(0x48) {
            f.varint()?;
        }
        if f.eat(0x52) {
            c.mysql_type = f.text()?;
        }
        while !f.buf.is_empty() {
            c.read_field(&mut f)?;
        }
        Ok(c)
    }

    /// One field in the general way.
    #[cold]
    fn read_field(&mut self, f: &mut Fields<'a>) -> Result<()> {
        let c = self;
        if let Some((field, v)) = f.next()? {
            match field {
                1 | 9 => {
                    int32(v)?;
                }
                2 => c.sql_type = int32(v)?,
                3 => c.name = string(v)?,
                4 => c.is_key = boolean(v)?,
                5 => c.updated = boolean(v)?,
                6 => c.is_null = boolean(v)?,
                7 => check_pair(v)?,
                8 => c.value = string(v)?,
                10 => c.mysql_type = string(v)?,
                _ => {}
            }
        }
        Ok(())
    }
}

/// Reads one encoded `RowData`, appending its before and after columns (in wire order each).
pub fn read_row<'a>(
    buf: &'a [u8],
    before: &mut Vec<ColumnRef<'a>>,
    after: &mut Vec<ColumnRef<'a>>,
) -> Result<()> {
    let mut f = Fields::new(buf);
    // Before columns then after columns, as written; anything else through the general loop.
    while f.eat(0x0a) {
        before.push(ColumnRef::read(f.payload()?)?);
    }
    while f.eat(0x12) {
        after.push(ColumnRef::read(f.payload()?)?);
    }
    while let Some((field, v)) = f.next()? {
        match field {
            1 => before.push(ColumnRef::read(bytes(v)?)?),
            2 => after.push(ColumnRef::read(bytes(v)?)?),
            3 => check_pair(v)?,
            _ => {}
        }
    }
    Ok(())
}

/// Reads one encoded `RowData` as canal-server (and Canal) write it, every before column then
/// every after column, appending both images to `cols`; returns where each image sits. A
/// `RowData` whose columns come in another order is [`Unsupported`] here (prost reads it,
/// so the caller's prost path gives the same result); [`read_row`] reads any order.
pub fn read_row_images<'a>(
    buf: &'a [u8],
    cols: &mut Vec<ColumnRef<'a>>,
) -> Result<(std::ops::Range<usize>, std::ops::Range<usize>)> {
    let mut f = Fields::new(buf);
    let start = cols.len();
    while f.eat(0x0a) {
        cols.push(ColumnRef::read(f.payload()?)?);
    }
    let mid = cols.len();
    while f.eat(0x12) {
        cols.push(ColumnRef::read(f.payload()?)?);
    }
    let end = cols.len();
    while let Some((field, v)) = f.next()? {
        match field {
            1 | 2 => return Err(Unsupported),
            3 => check_pair(v)?,
            _ => {}
        }
    }
    Ok((start..mid, mid..end))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_as_prost_reads_them() {
        for v in [0u64, 1, 127, 128, 300, u32::MAX as u64, u64::MAX] {
            let mut buf = Vec::new();
            prost::encoding::encode_varint(v, &mut buf);
            let mut f = Fields::new(&buf);
            assert_eq!(f.varint(), Ok(v));
            assert!(f.buf.is_empty());
        }
        // Over-long but within ten bytes: accepted, as prost does.
        assert_eq!(Fields::new(&[0x80, 0x00]).varint(), Ok(0));
        // Eleven bytes, a tenth byte above 1, a cut-off varint: refused.
        assert_eq!(Fields::new(&[0xff; 11]).varint(), Err(Unsupported));
        let mut ten = [0xffu8; 10];
        ten[9] = 0x02;
        assert_eq!(Fields::new(&ten).varint(), Err(Unsupported));
        assert_eq!(Fields::new(&[0x80]).varint(), Err(Unsupported));
    }

    #[test]
    fn groups_and_field_zero_are_unsupported() {
        // Field 1, wire type 3 (start group).
        assert!(Fields::new(&[0x0b, 0x0c]).next().is_err());
        // Field 0.
        assert!(Fields::new(&[0x00, 0x01]).next().is_err());
        // A length past the end.
        assert!(Fields::new(&[0x0a, 0x05, 0x01]).next().is_err());
        // A key above u32::MAX (prost: "invalid key value").
        let mut big = Vec::new();
        prost::encoding::encode_varint(u64::from(u32::MAX) + 1, &mut big);
        big.push(0);
        assert!(Fields::new(&big).next().is_err());
    }

    fn column(name: &str, value: &str) -> crate::entry::Column {
        crate::entry::Column {
            name: Some(name.into()),
            value: Some(value.into()),
            mysql_type: Some("int(11)".into()),
            ..Default::default()
        }
    }

    #[test]
    fn rows_handed_out_one_by_one_are_the_rows_read_at_once() {
        use prost::Message as _;
        let row = |n: &str| crate::entry::RowData {
            before_columns: vec![column("id", n)],
            after_columns: vec![column("id", n), column("v", "x")],
            ..Default::default()
        };
        let change = crate::entry::RowChange {
            event_type: Some(EventType::Update as i32),
            row_datas: vec![row("1"), row("2"), row("3")],
            ..Default::default()
        };
        let bytes = change.encode_to_vec();
        let all = RowChangeRef::read(&bytes).expect("valid");
        let mut each = Vec::new();
        let streamed = RowChangeRef::read_each_row(&bytes, |r| {
            each.push(r);
            Ok(())
        })
        .expect("valid");
        assert_eq!(each, all.rows);
        assert!(streamed.rows.is_empty());
        assert_eq!(streamed.event_type, all.event_type);
        // An error of the callback ends the read with it.
        let mut seen = 0;
        let stopped = RowChangeRef::read_each_row(&bytes, |_| {
            seen += 1;
            Err(Unsupported)
        });
        assert!(stopped.is_err());
        assert_eq!(seen, 1);

        // Both images of each row land in one list, before then after.
        let mut cols = Vec::new();
        for r in &each {
            let (b, a) = read_row_images(r, &mut cols).expect("canal order");
            assert_eq!(b.len(), 1);
            assert_eq!(a.len(), 2);
            assert_eq!(b.end, a.start);
            assert_eq!(cols[a.start + 1].name, b"v");
        }
        assert_eq!(cols.len(), 9);
        assert_eq!(text(cols[3].value), "2");
    }

    #[test]
    fn images_out_of_canal_order_are_left_to_prost() {
        use prost::Message as _;
        // An after column, then a before column: prost reads it; `read_row` too; the one-list
        // reader does not.
        let mut bytes = Vec::new();
        prost::encoding::message::encode(2, &column("id", "1"), &mut bytes);
        prost::encoding::message::encode(1, &column("id", "0"), &mut bytes);
        let decoded = crate::entry::RowData::decode(bytes.as_slice()).expect("prost reads it");
        assert_eq!(decoded.before_columns.len(), 1);
        let (mut before, mut after) = (Vec::new(), Vec::new());
        read_row(&bytes, &mut before, &mut after).expect("read_row follows any order");
        assert_eq!((before.len(), after.len()), (1, 1));
        assert_eq!(read_row_images(&bytes, &mut Vec::new()), Err(Unsupported));
    }
}
