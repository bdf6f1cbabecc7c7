//! Canal's hand-assembled MESSAGES frame for raw entries:
//! `Packet{type = MESSAGES, body = Messages{batch_id, messages}}` with **no** `version` field,
//! where each element of `messages` is an already-serialized `Entry`.
//!
//! [`encode_raw_messages`] writes the whole frame into one buffer. [`plan_raw_messages`] writes
//! the same bytes but leaves large entries where they are and lists the [`RawPart`]s to send in
//! order (the server hands them to a vectored write, so a large entry is never copied). Both share
//! one layout, so the bytes on the wire are the same either way.

use std::ops::Range;

use bytes::{BufMut, BytesMut};

use crate::frame::{frame_prefix, FrameError, LENGTH_PREFIX_LEN};
use crate::packet::PacketType;
use crate::pb;

/// `Packet.type` (varint), then `Packet.body` (length-delimited).
const PACKET_TYPE: u32 = 3;
const PACKET_BODY: u32 = 5;
/// `Messages.batch_id` (varint), then each `Messages.messages` (length-delimited).
const MESSAGES_BATCH_ID: u32 = 1;
const MESSAGES_ENTRY: u32 = 2;

/// Appends a complete raw MESSAGES frame to `dst`.
///
/// Each element of `entries` must already be a serialized `Entry`; nothing is re-encoded or
/// copied more than once. The output decodes exactly like [`Packet::messages`](crate::Packet::messages).
/// A `batch_id` of 0 is omitted, as proto3 would. Fails without writing anything if the frame
/// would exceed the protocol's size limit.
pub fn encode_raw_messages<E: AsRef<[u8]>>(
    batch_id: i64,
    entries: &[E],
    dst: &mut BytesMut,
) -> Result<(), FrameError> {
    lay_out(batch_id, entries, usize::MAX, dst, |_, _| {})
}

/// Where one part of a frame laid out by [`plan_raw_messages`] comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RawPart {
    /// This range of the buffer the frame was planned into.
    Buf(Range<usize>),
    /// `entries[i]`, as it is.
    Entry(usize),
}

impl RawPart {
    /// The bytes of this part: a range of `buf` or one of `entries` (the same arguments given
    /// to [`plan_raw_messages`]).
    pub fn bytes<'a, E: AsRef<[u8]>>(&self, buf: &'a [u8], entries: &'a [E]) -> &'a [u8] {
        match self {
            RawPart::Buf(range) => &buf[range.clone()],
            RawPart::Entry(i) => entries[*i].as_ref(),
        }
    }
}

/// Lays out the same frame as [`encode_raw_messages`], but copies into `dst` only the envelope,
/// the length prefixes and the entries of at most `inline_max` bytes, and appends to `parts` the
/// order in which to send ranges of `dst` and the larger entries.
///
/// Sending every part of `parts` in order sends exactly the bytes [`encode_raw_messages`] would
/// have written. When no entry is larger than `inline_max`, `parts` gets at most one range and
/// `dst` holds the whole frame. Fails without writing anything if the frame would exceed the
/// protocol's size limit.
pub fn plan_raw_messages<E: AsRef<[u8]>>(
    batch_id: i64,
    entries: &[E],
    inline_max: usize,
    dst: &mut BytesMut,
    parts: &mut Vec<RawPart>,
) -> Result<(), FrameError> {
    let mut start = dst.len();
    lay_out(batch_id, entries, inline_max, dst, |i, at| {
        parts.push(RawPart::Buf(start..at));
        parts.push(RawPart::Entry(i));
        start = at;
    })?;
    if start < dst.len() {
        parts.push(RawPart::Buf(start..dst.len()));
    }
    Ok(())
}

/// Writes the frame into `dst`, except that each entry longer than `inline_max` is left out and
/// reported as `skipped(index, offset in dst where it belongs)`.
fn lay_out<E: AsRef<[u8]>>(
    batch_id: i64,
    entries: &[E],
    inline_max: usize,
    dst: &mut BytesMut,
    mut skipped: impl FnMut(usize, usize),
) -> Result<(), FrameError> {
    let mut body_len = 0usize;
    let mut left_out = 0usize;
    if batch_id != 0 {
        body_len += 1 + pb::len_varint(batch_id as u64);
    }
    for entry in entries {
        let len = entry.as_ref().len();
        body_len += pb::len_field_len(len);
        if len > inline_max {
            left_out += len;
        }
    }
    // The type (one-byte key and value), then the body if non-empty.
    let mut packet_len = 2;
    if body_len > 0 {
        packet_len += pb::len_field_len(body_len);
    }
    let prefix = frame_prefix(packet_len)?;

    dst.reserve(LENGTH_PREFIX_LEN + packet_len - left_out);
    dst.put_slice(&prefix);
    pb::key(PACKET_TYPE, pb::VARINT, dst);
    pb::varint(PacketType::Messages as u64, dst);
    if body_len > 0 {
        pb::len_prefix(PACKET_BODY, body_len, dst);
        if batch_id != 0 {
            pb::int64(MESSAGES_BATCH_ID, batch_id, dst);
        }
        for (i, entry) in entries.iter().enumerate() {
            let entry = entry.as_ref();
            pb::len_prefix(MESSAGES_ENTRY, entry.len(), dst);
            if entry.len() <= inline_max {
                dst.put_slice(entry);
            } else {
                skipped(i, dst.len());
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;

    #[test]
    fn planned_frame_equals_the_encoded_frame() {
        const INLINE_MAX: usize = 4096;
        let sizes = [
            0usize,
            1,
            300,
            INLINE_MAX,
            INLINE_MAX + 1,
            70_000,
            5,
            200_000,
        ];
        let entries: Vec<Bytes> = sizes
            .iter()
            .enumerate()
            .map(|(i, n)| Bytes::from(vec![i as u8 + 1; *n]))
            .collect();
        for batch_id in [0i64, 1, 300, -1, i64::MAX] {
            for k in 0..=entries.len() {
                let mut want = BytesMut::new();
                encode_raw_messages(batch_id, &entries[..k], &mut want).unwrap();
                // A non-empty buffer: the parts' ranges are positions in it.
                let mut buf = BytesMut::from(&b"xy"[..]);
                let mut parts = Vec::new();
                plan_raw_messages(batch_id, &entries[..k], INLINE_MAX, &mut buf, &mut parts)
                    .unwrap();
                let mut got = b"xy".to_vec();
                for part in &parts {
                    if let RawPart::Entry(i) = part {
                        assert!(entries[*i].len() > INLINE_MAX);
                    }
                    got.extend_from_slice(part.bytes(&buf[..], &entries[..k]));
                }
                assert_eq!(got[2..], want[..], "batch {batch_id}, {k} entries");
            }
        }
    }
}
