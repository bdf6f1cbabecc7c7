//! Hand-written protobuf field encoders, byte for byte what prost writes for the same fields.
//!
//! Hot paths use these instead of building a prost message: the binlog converter writes each
//! `RowChange` straight to bytes, and the raw MESSAGES frame wraps already-serialized entries
//! without re-encoding them. Every function appends to any [`BufMut`] (`Vec<u8>`, `BytesMut`) and
//! is `#[inline]`, so a caller in another crate compiles them into its own loop.

use bytes::BufMut;
use prost::encoding::encoded_len_varint;

/// Wire type of varint fields (`int32`, `int64`, `bool`, enums).
pub const VARINT: u32 = 0;
/// Wire type of length-delimited fields (`bytes`, `string`, embedded messages).
pub const LEN: u32 = 2;

/// Appends `v` as a varint (prost's encoding, with the one-byte case of keys, flags and short
/// lengths inline).
#[inline]
pub fn varint(v: u64, out: &mut impl BufMut) {
    if v < 0x80 {
        out.put_u8(v as u8);
    } else {
        prost::encoding::encode_varint(v, out);
    }
}

/// How many bytes [`varint`] writes for `v`.
#[inline]
pub fn len_varint(v: u64) -> usize {
    encoded_len_varint(v)
}

/// Appends the key of field `field` with wire type `wire_type` ([`VARINT`] or [`LEN`]).
#[inline]
pub fn key(field: u32, wire_type: u32, out: &mut impl BufMut) {
    varint(u64::from(field << 3 | wire_type), out);
}

/// Length of an `int32` field whose key takes one byte (fields 1 to 15); negative values take
/// ten bytes, as in prost.
#[inline]
pub fn int32_len(v: i32) -> usize {
    1 + encoded_len_varint(i64::from(v) as u64)
}

/// Appends `int32` field `field` (negative values sign-extended to ten bytes, as in prost).
#[inline]
pub fn int32(field: u32, v: i32, out: &mut impl BufMut) {
    key(field, VARINT, out);
    varint(i64::from(v) as u64, out);
}

/// Appends `int64` field `field`.
#[inline]
pub fn int64(field: u32, v: i64, out: &mut impl BufMut) {
    key(field, VARINT, out);
    varint(v as u64, out);
}

/// Appends `bool` field `field`.
#[inline]
pub fn bool(field: u32, v: bool, out: &mut impl BufMut) {
    key(field, VARINT, out);
    out.put_u8(u8::from(v));
}

/// Appends length-delimited field `field` holding `v` (a `bytes` field or an embedded message
/// serialized beforehand).
#[inline]
pub fn bytes(field: u32, v: &[u8], out: &mut impl BufMut) {
    len_prefix(field, v.len(), out);
    out.put_slice(v);
}

/// Appends `string` field `field`.
#[inline]
pub fn string(field: u32, v: &str, out: &mut impl BufMut) {
    bytes(field, v.as_bytes(), out);
}

/// Appends the key and length of length-delimited field `field` whose `len` bytes the caller
/// writes next (or sends from elsewhere).
#[inline]
pub fn len_prefix(field: u32, len: usize, out: &mut impl BufMut) {
    key(field, LEN, out);
    varint(len as u64, out);
}

/// Length of length-delimited field `field` (key, length and `len` bytes of content) for a
/// field number of at most 15.
#[inline]
pub fn len_field_len(len: usize) -> usize {
    1 + encoded_len_varint(len as u64) + len
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::encoding::{self, WireType};

    #[test]
    fn fields_match_prost() {
        for v in [0i64, 1, 127, 128, 300, -1, i64::MAX, i64::MIN] {
            let mut ours = Vec::new();
            int64(3, v, &mut ours);
            let mut theirs = Vec::new();
            encoding::int64::encode(3, &v, &mut theirs);
            assert_eq!(ours, theirs, "int64 {v}");
        }
        for v in [0i32, 1, 127, 128, -1, i32::MAX, i32::MIN] {
            let mut ours = Vec::new();
            int32(2, v, &mut ours);
            let mut theirs = Vec::new();
            encoding::int32::encode(2, &v, &mut theirs);
            assert_eq!(ours, theirs, "int32 {v}");
            assert_eq!(int32_len(v), theirs.len(), "int32_len {v}");
        }
        for v in [false, true] {
            let mut ours = Vec::new();
            bool(10, v, &mut ours);
            let mut theirs = Vec::new();
            encoding::bool::encode(10, &v, &mut theirs);
            assert_eq!(ours, theirs);
        }
        for n in [0usize, 1, 127, 128, 20_000] {
            let text = "x".repeat(n);
            let mut ours = Vec::new();
            string(8, &text, &mut ours);
            let mut theirs = Vec::new();
            encoding::string::encode(8, &text, &mut theirs);
            assert_eq!(ours, theirs, "string of {n}");
            assert_eq!(len_field_len(n), theirs.len());
            let mut key_theirs = Vec::new();
            encoding::encode_key(8, WireType::LengthDelimited, &mut key_theirs);
            let mut key_ours = Vec::new();
            key(8, LEN, &mut key_ours);
            assert_eq!(key_ours, key_theirs);
        }
    }
}
