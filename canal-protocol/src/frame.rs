//! Canal's length framing and the [`Packet`] envelope.
//!
//! Every frame, in both directions, is a 4-byte big-endian signed length `N`
//! followed by `N` bytes holding one serialized [`Packet`]. [`FrameCodec`]
//! splits a byte stream into frame payloads; [`PacketCodec`] adds protobuf
//! decoding of the envelope. Neither touches a socket: they plug into
//! `tokio_util::codec::Framed` or can be driven by hand on a `BytesMut`.
//!
//! Canal itself imposes no frame size limit. [`FrameCodec`] refuses, before
//! allocating anything, an incoming frame longer than its configured maximum
//! ([`DEFAULT_MAX_FRAME_LEN`] unless changed). Outgoing frames are only limited
//! by the protocol (`i32::MAX`), so a server with a small inbound limit can
//! still send large MESSAGES batches.

use std::io;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use prost::Message;
use tokio_util::codec::{Decoder, Encoder};

use crate::packet::{Ack, Compression, Handshake, Messages, Packet, PacketType};

/// Size of the length prefix in front of every frame.
pub const LENGTH_PREFIX_LEN: usize = 4;

/// Default limit on an incoming frame's payload: 64 MiB.
///
/// A GET reply holds about `fetch_size` KiB of entries (Canal's default
/// MEMSIZE batching) plus at most one extra entry, so this leaves ample room;
/// raise it with [`FrameCodec::with_max_frame_len`] for very large rows.
pub const DEFAULT_MAX_FRAME_LEN: usize = 64 * 1024 * 1024;

/// Largest payload the 4-byte signed length prefix can describe.
pub const PROTOCOL_MAX_FRAME_LEN: usize = i32::MAX as usize;

/// The `Packet.version` a Canal server puts on HANDSHAKE, ACK and
/// builder-made MESSAGES packets, and that the Java client requires on
/// HANDSHAKE.
pub const PROTOCOL_VERSION: i32 = 1;

/// `Messages.batch_id` of an empty GET reply.
pub const EMPTY_BATCH_ID: i64 = -1;

/// Errors from splitting a byte stream into frames.
///
/// Every variant means the stream can no longer be trusted to be in sync, so
/// the connection should be closed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FrameError {
    /// The length prefix (incoming) or payload (outgoing) exceeds the limit.
    /// Raised before any buffer is grown for the frame.
    #[error("frame of {len} bytes exceeds the maximum of {max} bytes")]
    TooLarge {
        /// Announced (incoming) or actual (outgoing) payload length.
        len: usize,
        /// The limit in force.
        max: usize,
    },
    /// The length prefix is negative when read as a signed 32-bit integer.
    #[error("negative frame length {len}")]
    NegativeLength {
        /// The length as read.
        len: i32,
    },
    /// The stream ended in the middle of a frame.
    #[error("stream ended inside a frame: {buffered} bytes buffered, {expected:?} expected")]
    Truncated {
        /// Bytes received for the unfinished frame, prefix included.
        buffered: usize,
        /// Full frame size including the prefix, if the prefix was complete.
        expected: Option<usize>,
    },
    /// Reading or writing the underlying stream failed.
    #[error("frame i/o: {0}")]
    Io(#[from] io::Error),
}

/// Splits a byte stream into frame payloads and writes length-prefixed frames.
///
/// Decoding yields each payload as [`Bytes`] without copying it; it returns
/// `Ok(None)` ("need more bytes") until a whole frame is buffered, and never
/// reserves more than `max_frame_len + 4` bytes for one frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameCodec {
    max_frame_len: usize,
}

impl Default for FrameCodec {
    fn default() -> Self {
        Self::new()
    }
}

impl FrameCodec {
    /// A codec accepting incoming payloads up to [`DEFAULT_MAX_FRAME_LEN`].
    pub const fn new() -> Self {
        Self {
            max_frame_len: DEFAULT_MAX_FRAME_LEN,
        }
    }

    /// A codec accepting incoming payloads up to `max` bytes (capped at
    /// [`PROTOCOL_MAX_FRAME_LEN`]). A zero-length frame is always accepted.
    pub const fn with_max_frame_len(max: usize) -> Self {
        let max_frame_len = if max > PROTOCOL_MAX_FRAME_LEN {
            PROTOCOL_MAX_FRAME_LEN
        } else {
            max
        };
        Self { max_frame_len }
    }

    /// The incoming payload limit in force.
    pub const fn max_frame_len(&self) -> usize {
        self.max_frame_len
    }

    /// Reads the length prefix at the start of `src`, if present, and checks
    /// it against the limit. Returns the payload length.
    fn peek_len(&self, src: &[u8]) -> Result<Option<usize>, FrameError> {
        let Some(prefix) = src.get(..LENGTH_PREFIX_LEN) else {
            return Ok(None);
        };
        let len = i32::from_be_bytes([prefix[0], prefix[1], prefix[2], prefix[3]]);
        let len = usize::try_from(len).map_err(|_| FrameError::NegativeLength { len })?;
        if len > self.max_frame_len {
            return Err(FrameError::TooLarge {
                len,
                max: self.max_frame_len,
            });
        }
        Ok(Some(len))
    }
}

impl Decoder for FrameCodec {
    type Item = Bytes;
    type Error = FrameError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Bytes>, FrameError> {
        let Some(len) = self.peek_len(src)? else {
            return Ok(None);
        };
        let total = LENGTH_PREFIX_LEN + len;
        if src.len() < total {
            // Safe to grow now: `len` has passed the limit check.
            src.reserve(total - src.len());
            return Ok(None);
        }
        src.advance(LENGTH_PREFIX_LEN);
        Ok(Some(src.split_to(len).freeze()))
    }

    fn decode_eof(&mut self, src: &mut BytesMut) -> Result<Option<Bytes>, FrameError> {
        match self.decode(src)? {
            Some(frame) => Ok(Some(frame)),
            None if src.is_empty() => Ok(None),
            None => Err(FrameError::Truncated {
                buffered: src.len(),
                expected: self.peek_len(src)?.map(|len| LENGTH_PREFIX_LEN + len),
            }),
        }
    }
}

impl Encoder<&[u8]> for FrameCodec {
    type Error = FrameError;

    fn encode(&mut self, payload: &[u8], dst: &mut BytesMut) -> Result<(), FrameError> {
        write_frame(payload, dst)
    }
}

impl Encoder<Bytes> for FrameCodec {
    type Error = FrameError;

    fn encode(&mut self, payload: Bytes, dst: &mut BytesMut) -> Result<(), FrameError> {
        write_frame(&payload, dst)
    }
}

/// Appends one frame (length prefix, then `payload`) to `dst`.
///
/// Fails without writing anything if `payload` is longer than
/// [`PROTOCOL_MAX_FRAME_LEN`].
pub fn write_frame(payload: &[u8], dst: &mut BytesMut) -> Result<(), FrameError> {
    let prefix = frame_prefix(payload.len())?;
    dst.reserve(LENGTH_PREFIX_LEN + payload.len());
    dst.put_slice(&prefix);
    dst.put_slice(payload);
    Ok(())
}

/// The length prefix of a `len`-byte payload, or [`FrameError::TooLarge`].
pub(crate) fn frame_prefix(len: usize) -> Result<[u8; LENGTH_PREFIX_LEN], FrameError> {
    let len32 = i32::try_from(len).map_err(|_| FrameError::TooLarge {
        len,
        max: PROTOCOL_MAX_FRAME_LEN,
    })?;
    Ok(len32.to_be_bytes())
}

/// Errors from decoding or validating a [`Packet`] or its body.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PacketError {
    /// The framing failed; see [`FrameError`].
    #[error(transparent)]
    Frame(#[from] FrameError),
    /// A frame payload or packet body is not a valid protobuf message.
    #[error("malformed {message}: {source}")]
    Decode {
        /// Name of the message that was being decoded.
        message: &'static str,
        /// The protobuf error.
        source: prost::DecodeError,
    },
    /// `Packet.type` is not a known [`PacketType`] value.
    #[error("unknown packet type {0}")]
    UnknownPacketType(i32),
    /// The packet has a known type, but not the one the caller expected.
    #[error("expected a {} packet, got {}", .expected.as_str_name(), .actual.as_str_name())]
    UnexpectedPacketType {
        /// The type the caller asked for.
        expected: PacketType,
        /// The type received.
        actual: PacketType,
    },
    /// `Packet.compression` is not a known [`Compression`] value.
    #[error("unknown compression {0}")]
    UnknownCompression(i32),
    /// The body is compressed; nothing in Canal compresses, and Canal clients
    /// reject such packets.
    #[error("unsupported compression {}", .0.as_str_name())]
    UnsupportedCompression(Compression),
}

impl PacketError {
    /// True when the byte stream is out of sync and the connection must be
    /// closed; false when only this packet was bad and the peer can be sent
    /// an error reply.
    pub fn is_connection_fatal(&self) -> bool {
        matches!(self, PacketError::Frame(_))
    }
}

impl From<io::Error> for PacketError {
    fn from(err: io::Error) -> Self {
        PacketError::Frame(FrameError::Io(err))
    }
}

/// Decodes a protobuf message, naming the message type in the error.
fn decode_message<M: Message + Default>(bytes: Bytes) -> Result<M, PacketError> {
    M::decode(bytes).map_err(|source| PacketError::Decode {
        message: short_type_name::<M>(),
        source,
    })
}

fn short_type_name<M>() -> &'static str {
    let full = std::any::type_name::<M>();
    full.rsplit("::").next().unwrap_or(full)
}

/// Decodes a frame payload (without its length prefix) into a [`Packet`].
///
/// Only the protobuf structure is checked; use [`Packet::packet_type`] and
/// [`Packet::check_compression`] (or [`Packet::expect_body`]) to validate.
/// `bytes` fields of the result share `payload`'s memory.
pub fn decode_packet(payload: Bytes) -> Result<Packet, PacketError> {
    decode_message(payload)
}

/// Appends `packet` to `dst` as one length-prefixed frame.
///
/// The bytes are exactly what a protoc-generated encoder produces (fields in
/// number order, absent fields omitted).
pub fn encode_packet(packet: &Packet, dst: &mut BytesMut) -> Result<(), FrameError> {
    let len = packet.encoded_len();
    let prefix = frame_prefix(len)?;
    dst.reserve(LENGTH_PREFIX_LEN + len);
    dst.put_slice(&prefix);
    packet
        .encode(dst)
        .expect("BytesMut grows on demand, so encoding cannot run out of space");
    Ok(())
}

/// Length framing plus [`Packet`] decoding, for `tokio_util::codec::Framed`.
///
/// Decoding yields structurally valid packets; a frame whose payload is not a
/// valid `Packet` yields [`PacketError::Decode`] after the frame has been
/// consumed, so the stream stays in sync.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PacketCodec {
    frames: FrameCodec,
}

impl PacketCodec {
    /// A codec with the [`DEFAULT_MAX_FRAME_LEN`] incoming limit.
    pub const fn new() -> Self {
        Self {
            frames: FrameCodec::new(),
        }
    }

    /// A codec using `frames` for the length framing (and its limit).
    pub const fn with_frame_codec(frames: FrameCodec) -> Self {
        Self { frames }
    }

    /// The underlying frame codec.
    pub const fn frame_codec(&self) -> &FrameCodec {
        &self.frames
    }
}

impl Decoder for PacketCodec {
    type Item = Packet;
    type Error = PacketError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Packet>, PacketError> {
        self.frames.decode(src)?.map(decode_packet).transpose()
    }

    fn decode_eof(&mut self, src: &mut BytesMut) -> Result<Option<Packet>, PacketError> {
        self.frames.decode_eof(src)?.map(decode_packet).transpose()
    }
}

impl Encoder<&Packet> for PacketCodec {
    type Error = PacketError;

    fn encode(&mut self, packet: &Packet, dst: &mut BytesMut) -> Result<(), PacketError> {
        Ok(encode_packet(packet, dst)?)
    }
}

impl Encoder<Packet> for PacketCodec {
    type Error = PacketError;

    fn encode(&mut self, packet: Packet, dst: &mut BytesMut) -> Result<(), PacketError> {
        Ok(encode_packet(&packet, dst)?)
    }
}

impl Packet {
    /// A packet as clients send it: `type` and `body` set, no `version`.
    pub fn request<M: Message>(kind: PacketType, body: &M) -> Self {
        Packet {
            r#type: kind as i32,
            body: body.encode_to_vec().into(),
            ..Packet::default()
        }
    }

    /// A packet as the Canal server builds it: `version = 1`, `type` and
    /// `body` set.
    pub fn reply<M: Message>(kind: PacketType, body: &M) -> Self {
        Packet {
            version: Some(PROTOCOL_VERSION),
            ..Packet::request(kind, body)
        }
    }

    /// The HANDSHAKE the server pushes on connect, carrying the scramble seed.
    pub fn handshake(seed: impl Into<Bytes>) -> Self {
        Packet::reply(
            PacketType::Handshake,
            &Handshake {
                seeds: seed.into(),
                ..Handshake::default()
            },
        )
    }

    /// A success ACK: `version = 1`, `type = ACK`, body omitted.
    pub fn ack_ok() -> Self {
        Packet::reply(PacketType::Ack, &Ack::default())
    }

    /// An error ACK with `error_code` and `error_message` set.
    pub fn ack_error(code: i32, message: impl Into<String>) -> Self {
        Packet::reply(
            PacketType::Ack,
            &Ack {
                error_code: Some(code),
                error_message: message.into(),
            },
        )
    }

    /// A builder-made MESSAGES reply (`version = 1`) carrying pre-serialized
    /// entries.
    pub fn messages(batch_id: i64, entries: Vec<Bytes>) -> Self {
        Packet::reply(
            PacketType::Messages,
            &Messages {
                batch_id,
                messages: entries,
            },
        )
    }

    /// The reply to a GET that found nothing: `Messages{batch_id = -1}`.
    pub fn empty_messages() -> Self {
        Packet::messages(EMPTY_BATCH_ID, Vec::new())
    }

    /// The packet's type, or [`PacketError::UnknownPacketType`] for a value
    /// outside the enum (prost's `r#type()` getter would silently map it to 0).
    pub fn packet_type(&self) -> Result<PacketType, PacketError> {
        PacketType::try_from(self.r#type).map_err(|_| PacketError::UnknownPacketType(self.r#type))
    }

    /// Succeeds when the body is uncompressed (`compression` absent, 0 or
    /// NONE), the only case Canal peers accept.
    pub fn check_compression(&self) -> Result<(), PacketError> {
        let Some(raw) = self.compression else {
            return Ok(());
        };
        match Compression::try_from(raw) {
            Ok(Compression::Compressioncompatibleproto2 | Compression::None) => Ok(()),
            Ok(other) => Err(PacketError::UnsupportedCompression(other)),
            Err(_) => Err(PacketError::UnknownCompression(raw)),
        }
    }

    /// Decodes the body as `M` without looking at `type` (Canal's server
    /// parses the first frame as ClientAuth whatever its type). `bytes`
    /// fields of the result share the body's memory.
    pub fn decode_body<M: Message + Default>(&self) -> Result<M, PacketError> {
        decode_message(self.body.clone())
    }

    /// Checks that the type is `kind` and the body uncompressed, then decodes
    /// the body as `M`.
    pub fn expect_body<M: Message + Default>(&self, kind: PacketType) -> Result<M, PacketError> {
        let actual = self.packet_type()?;
        if actual != kind {
            return Err(PacketError::UnexpectedPacketType {
                expected: kind,
                actual,
            });
        }
        self.check_compression()?;
        self.decode_body()
    }
}

impl Ack {
    /// True when the ACK reports a failure (`error_code > 0`, as Canal
    /// clients test it).
    pub fn is_error(&self) -> bool {
        self.error_code.unwrap_or(0) > 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partial_prefix_needs_more_bytes() {
        let mut codec = FrameCodec::new();
        let mut buf = BytesMut::from(&[0u8, 0, 0][..]);
        assert!(codec.decode(&mut buf).unwrap().is_none());
        assert_eq!(buf.len(), 3, "nothing consumed");
    }

    #[test]
    fn partial_payload_needs_more_bytes_then_completes() {
        let mut codec = FrameCodec::new();
        let mut buf = BytesMut::from(&[0u8, 0, 0, 3, b'a', b'b'][..]);
        assert!(codec.decode(&mut buf).unwrap().is_none());
        assert_eq!(buf.len(), 6, "nothing consumed");
        buf.put_u8(b'c');
        buf.put_slice(&[0, 0, 0, 1]);
        assert_eq!(codec.decode(&mut buf).unwrap().unwrap(), &b"abc"[..]);
        assert!(codec.decode(&mut buf).unwrap().is_none());
        buf.put_u8(b'd');
        assert_eq!(codec.decode(&mut buf).unwrap().unwrap(), &b"d"[..]);
        assert!(buf.is_empty());
    }

    #[test]
    fn zero_length_frame_is_empty_payload() {
        let mut codec = FrameCodec::with_max_frame_len(0);
        let mut buf = BytesMut::from(&[0u8, 0, 0, 0][..]);
        assert_eq!(codec.decode(&mut buf).unwrap().unwrap().len(), 0);
        assert!(buf.is_empty());
        // An empty payload is a valid, all-default Packet (type 0).
        let packet = decode_packet(Bytes::new()).unwrap();
        assert_eq!(packet, Packet::default());
        assert_eq!(
            packet.packet_type().unwrap(),
            PacketType::Packagetypecompatibleproto2
        );
    }

    #[test]
    fn oversized_frame_rejected_before_allocating() {
        let mut codec = FrameCodec::with_max_frame_len(16);
        let mut buf = BytesMut::with_capacity(8);
        buf.put_slice(&[0x7f, 0xff, 0xff, 0xff]);
        let capacity = buf.capacity();
        match codec.decode(&mut buf) {
            Err(FrameError::TooLarge { len, max }) => {
                assert_eq!(len, i32::MAX as usize);
                assert_eq!(max, 16);
            }
            other => panic!("expected TooLarge, got {other:?}"),
        }
        assert_eq!(buf.capacity(), capacity, "buffer must not grow");

        let mut buf = BytesMut::from(&[0u8, 0, 0, 17][..]);
        assert!(matches!(
            codec.decode(&mut buf),
            Err(FrameError::TooLarge { len: 17, max: 16 })
        ));
        let mut buf = BytesMut::from(&[0u8, 0, 0, 16][..]);
        assert!(codec.decode(&mut buf).unwrap().is_none());
    }

    #[test]
    fn negative_length_rejected() {
        let mut codec = FrameCodec::new();
        let mut buf = BytesMut::from(&[0xffu8, 0xff, 0xff, 0xff][..]);
        assert!(matches!(
            codec.decode(&mut buf),
            Err(FrameError::NegativeLength { len: -1 })
        ));
    }

    #[test]
    fn eof_inside_frame_is_truncated() {
        let mut codec = FrameCodec::new();
        let mut buf = BytesMut::from(&[0u8, 0, 0, 5, 1][..]);
        assert!(matches!(
            codec.decode_eof(&mut buf),
            Err(FrameError::Truncated {
                buffered: 5,
                expected: Some(9)
            })
        ));
        let mut buf = BytesMut::from(&[0u8, 0][..]);
        assert!(matches!(
            codec.decode_eof(&mut buf),
            Err(FrameError::Truncated {
                buffered: 2,
                expected: None
            })
        ));
        let mut empty = BytesMut::new();
        assert!(codec.decode_eof(&mut empty).unwrap().is_none());
    }

    #[test]
    fn encode_writes_prefix() {
        let mut codec = FrameCodec::new();
        let mut dst = BytesMut::new();
        codec.encode(&b"xyz"[..], &mut dst).unwrap();
        codec.encode(Bytes::new(), &mut dst).unwrap();
        assert_eq!(&dst[..], &[0, 0, 0, 3, b'x', b'y', b'z', 0, 0, 0, 0]);
    }

    #[test]
    fn max_is_capped_at_protocol_limit() {
        assert_eq!(
            FrameCodec::with_max_frame_len(usize::MAX).max_frame_len(),
            PROTOCOL_MAX_FRAME_LEN
        );
    }

    #[test]
    fn typed_errors_for_unknown_type_and_compression() {
        let packet = Packet {
            r#type: 99,
            ..Packet::default()
        };
        assert!(matches!(
            packet.packet_type(),
            Err(PacketError::UnknownPacketType(99))
        ));
        assert!(!packet.packet_type().unwrap_err().is_connection_fatal());

        let mut packet = Packet::empty_messages();
        packet.compression = Some(Compression::Zlib as i32);
        assert!(matches!(
            packet.expect_body::<Messages>(PacketType::Messages),
            Err(PacketError::UnsupportedCompression(Compression::Zlib))
        ));
        packet.compression = Some(42);
        assert!(matches!(
            packet.check_compression(),
            Err(PacketError::UnknownCompression(42))
        ));
        packet.compression = Some(Compression::None as i32);
        assert_eq!(
            packet
                .expect_body::<Messages>(PacketType::Messages)
                .unwrap()
                .batch_id,
            -1
        );
        assert!(matches!(
            packet.expect_body::<Ack>(PacketType::Ack),
            Err(PacketError::UnexpectedPacketType {
                expected: PacketType::Ack,
                actual: PacketType::Messages
            })
        ));
    }

    #[test]
    fn decode_error_names_the_message() {
        let packet = Packet {
            r#type: PacketType::Ack as i32,
            body: Bytes::from_static(&[0x0a, 0x05]),
            ..Packet::default()
        };
        let err = packet.decode_body::<Ack>().unwrap_err();
        assert!(err.to_string().starts_with("malformed Ack:"), "{err}");
    }

    #[test]
    fn ack_is_error_follows_clients() {
        assert!(!Ack::default().is_error());
        assert!(!Ack {
            error_code: Some(0),
            ..Ack::default()
        }
        .is_error());
        assert!(Ack {
            error_code: Some(400),
            ..Ack::default()
        }
        .is_error());
    }
}
