//! Canal's wire protocol: message and entry types, length framing, the
//! password scramble, and the JSON position documents.
//!
//! This crate is everything a Canal 1.1.x-compatible server or client needs to
//! speak the protocol, without any socket code. The server (`canal-server`)
//! and client (`canal-client`) crates build their connections on it. It is
//! also the one place that knows byte layouts: the hand-written protobuf
//! encoders and MySQL's length-encoded integer live here too, so no other
//! crate assembles or parses wire bytes by hand.
//!
//! # Modules
//!
//! * [`packet`]: types generated from `proto/CanalProtocol.proto` (proto3):
//!   the [`Packet`] envelope and the request/response bodies (`Handshake`,
//!   `ClientAuth`, `Ack`, `Sub`, `Get`, `Messages`, …).
//! * [`entry`]: types generated from `proto/EntryProtocol.proto` (proto2):
//!   [`Entry`], `Header`, `RowChange`, `Column`, …
//! * [`frame`]: the 4-byte big-endian length framing ([`FrameCodec`]), packet
//!   decoding and validation ([`PacketCodec`], [`Packet::expect_body`]).
//! * [`raw_messages`]: Canal's hand-assembled MESSAGES frame around
//!   already-serialized entries, whole ([`encode_raw_messages`]) or planned for
//!   a vectored write that does not copy large entries ([`plan_raw_messages`]).
//! * [`pb`]: protobuf field encoders, identical to prost's output, for hot
//!   paths that write a message without building it (the raw MESSAGES frame,
//!   the binlog converter's `RowChange`).
//! * [`pb_read`]: the reading side for hot paths: a borrowing `RowChange`
//!   reader that accepts exactly what prost accepts and keeps strings as
//!   slices of the entry (a client's flat-message JSON, otter's Extract).
//! * [`mysql`]: MySQL's length-encoded integer ([`mysql::read_lenenc`]).
//! * [`scramble`]: MySQL 4.1 `scramble411` and the server-side check against
//!   a stored `canal.passwd` ([`Authenticator`]).
//! * [`addr`]: `host:port` text ([`HostPort`]), the one parser every crate uses.
//! * [`position`]: the cursor ([`LogPosition`]) and [`ClientIdentity`] JSON
//!   documents, matching Canal's fastjson2 output byte for byte.
//!
//! # Design decisions
//!
//! * **Byte compatibility.** Both `.proto` files were written for this
//!   project from the reference tables. CanalProtocol keeps Canal's explicit
//!   presence fields as proto3 `optional` (wire-identical to Canal's
//!   single-member oneofs), so a Java reader sees exactly what Canal sends.
//!   EntryProtocol is proto2 because the Java class Canal ships is proto2:
//!   every field is an `Option`, and a field set to `Some(0)` or `Some("")` is
//!   serialized, as Canal does. Getters such as `Header::event_type()` return
//!   the proto2 defaults Java readers see.
//! * **Zero-copy.** All protobuf `bytes` fields are [`bytes::Bytes`], so
//!   decoding a packet slices the received frame instead of copying entries.
//! * **No panics on input.** Malformed frames, unknown packet types and
//!   unknown compressions are typed errors ([`FrameError`], [`PacketError`]).
//!   An incoming frame longer than the configured limit is refused before any
//!   memory is reserved for it.
//!
//! # Example
//!
//! ```
//! use bytes::BytesMut;
//! use canal_protocol::packet::Handshake;
//! use canal_protocol::{FrameCodec, Packet, PacketCodec, PacketType};
//! use tokio_util::codec::{Decoder, Encoder};
//!
//! let mut codec = PacketCodec::with_frame_codec(FrameCodec::with_max_frame_len(1 << 20));
//! let mut wire = BytesMut::new();
//! codec.encode(Packet::handshake(vec![1, 2, 3, 4, 5, 6, 7, 8]), &mut wire).unwrap();
//! assert_eq!(&wire[..6], &[0x00, 0x00, 0x00, 0x10, 0x10, 0x01]);
//!
//! let packet = codec.decode(&mut wire).unwrap().expect("a whole frame");
//! let handshake: Handshake = packet.expect_body(PacketType::Handshake).unwrap();
//! assert_eq!(&handshake.seeds[..], &[1, 2, 3, 4, 5, 6, 7, 8]);
//! ```
#![deny(missing_docs)]

pub mod addr;
pub mod frame;
pub mod mysql;
pub mod pb;
pub mod pb_read;
pub mod position;
pub mod raw_messages;
pub mod scramble;

/// Types generated from `proto/CanalProtocol.proto` (package
/// `com.alibaba.otter.canal.protocol`, proto3): the [`Packet`] envelope and
/// its bodies.
///
/// Fields that Canal wraps in `oneof xxx_present` are `Option`s here and are
/// serialized whenever they are `Some`, even when zero. Enum fields are raw
/// `i32`s; prefer [`Packet::packet_type`] over the generated `r#type()` getter,
/// which maps unknown values to 0.
#[allow(missing_docs, clippy::all, clippy::pedantic)]
pub mod packet {
    include!(concat!(
        env!("OUT_DIR"),
        "/packet/com.alibaba.otter.canal.protocol.rs"
    ));
}

/// Types generated from `proto/EntryProtocol.proto` (package
/// `com.alibaba.otter.canal.protocol`, proto2): [`Entry`] and the row
/// changes it carries.
///
/// Every field is an `Option` and is serialized when `Some`, so setting
/// exactly the fields Canal sets yields Canal's bytes. Getters return the
/// proto2 defaults Java readers see for absent fields (e.g.
/// `Entry::entry_type()` is `ROWDATA`, `Header::event_type()` is `UPDATE`).
/// Never emit the `...compatibleproto2` (0) enum values: Java readers do not
/// know them.
#[allow(missing_docs, clippy::all, clippy::pedantic)]
pub mod entry {
    include!(concat!(
        env!("OUT_DIR"),
        "/entry/com.alibaba.otter.canal.protocol.rs"
    ));
}

pub use addr::{AddrError, HostPort};
pub use entry::{Entry, EntryType, EventType};
pub use frame::{
    decode_packet, encode_packet, write_frame, FrameCodec, FrameError, PacketCodec, PacketError,
    DEFAULT_MAX_FRAME_LEN, EMPTY_BATCH_ID, PROTOCOL_VERSION,
};
pub use packet::{Compression, Packet, PacketType};
pub use position::{
    ClientIdentity, EntryPosition, FileMetaClientData, FileMetaData, LogIdentity, LogPosition,
    PositionError, SourceAddress,
};
pub use raw_messages::{encode_raw_messages, plan_raw_messages, RawPart};
pub use scramble::{
    scramble411, scramble411_hex, AuthError, Authenticator, StoredPassword, StoredPasswordError,
};
