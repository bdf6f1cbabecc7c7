//! Arbitrary bytes from a Canal TCP peer: framing, the `Packet` envelope, every packet body, and
//! what a server or client does next with the fields (client id, filter, entries). Must never
//! panic; errors are expected.
//!
//! Byte 0 picks the frame limit (so the TooLarge path is reachable with small inputs); the rest
//! is the byte stream, fed to the codec in pieces like a socket delivers it.
#![no_main]

use bytes::{Bytes, BytesMut};
use canal_protocol::entry::{RowChange, TransactionBegin, TransactionEnd};
use canal_protocol::packet::{
    Ack, ClientAck, ClientAuth, ClientRollback, Dump, Get, Handshake, HeartBeat, Messages, Sub,
    Unsub,
};
use canal_protocol::{
    ClientIdentity, Entry, EntryType, FrameCodec, LogPosition, Packet, PacketCodec, PacketType,
};
use canal_server::filter::TableFilter;
use libfuzzer_sys::fuzz_target;
use prost::Message;
use tokio_util::codec::Decoder;

fuzz_target!(|data: &[u8]| {
    let Some((&control, stream)) = data.split_first() else {
        return;
    };
    let max = match control % 4 {
        0 => canal_protocol::DEFAULT_MAX_FRAME_LEN,
        1 => 1 << 16,
        2 => 64,
        _ => 0,
    };
    // Chunk size of the simulated socket reads.
    let chunk = 1 + (control as usize >> 2);

    // Raw frames.
    let mut frames = FrameCodec::with_max_frame_len(max);
    let mut buf = BytesMut::new();
    for piece in stream.chunks(chunk) {
        buf.extend_from_slice(piece);
        loop {
            match frames.decode(&mut buf) {
                Ok(Some(payload)) => {
                    if let Ok(p) = canal_protocol::decode_packet(payload) {
                        handle(&p);
                    }
                }
                Ok(None) => break,
                Err(_) => return,
            }
        }
    }
    let _ = frames.decode_eof(&mut buf);

    // The same stream through the packet codec, as `Framed` drives it.
    let mut packets = PacketCodec::with_frame_codec(FrameCodec::with_max_frame_len(max));
    let mut buf = BytesMut::from(stream);
    loop {
        match packets.decode(&mut buf) {
            Ok(Some(p)) => handle(&p),
            Ok(None) => break,
            Err(e) if e.is_connection_fatal() => return,
            Err(_) => {}
        }
    }
    loop {
        match packets.decode_eof(&mut buf) {
            Ok(Some(p)) => handle(&p),
            Ok(None) => break,
            Err(e) if e.is_connection_fatal() => break,
            Err(_) => {}
        }
    }
});

/// What the server (requests) or the client (replies) does with one packet.
fn handle(p: &Packet) {
    let _ = p.check_compression();
    // The server parses the first frame as ClientAuth whatever its type.
    if let Ok(auth) = p.decode_body::<ClientAuth>() {
        client(&auth.destination, &auth.client_id, &auth.filter);
    }
    let Ok(kind) = p.packet_type() else { return };
    match kind {
        PacketType::Handshake => drop(p.expect_body::<Handshake>(kind)),
        PacketType::Clientauthentication => {
            if let Ok(a) = p.expect_body::<ClientAuth>(kind) {
                // Password: hex of the scramble token.
                let _ = std::str::from_utf8(&a.password).map(hex_token);
            }
        }
        PacketType::Ack => {
            if let Ok(a) = p.expect_body::<Ack>(kind) {
                std::hint::black_box(a.is_error());
            }
        }
        PacketType::Subscription => {
            if let Ok(s) = p.expect_body::<Sub>(kind) {
                client(&s.destination, &s.client_id, &s.filter);
            }
        }
        PacketType::Unsubscription => {
            if let Ok(s) = p.expect_body::<Unsub>(kind) {
                client(&s.destination, &s.client_id, "");
            }
        }
        PacketType::Get => {
            if let Ok(g) = p.expect_body::<Get>(kind) {
                std::hint::black_box((g.fetch_size, g.timeout, g.unit, g.auto_ack));
            }
        }
        PacketType::Messages => {
            if let Ok(m) = p.expect_body::<Messages>(kind) {
                for raw in &m.messages {
                    entry(raw.clone());
                }
            }
        }
        PacketType::Clientack => drop(p.expect_body::<ClientAck>(kind)),
        PacketType::Clientrollback => drop(p.expect_body::<ClientRollback>(kind)),
        PacketType::Dump => drop(p.expect_body::<Dump>(kind)),
        PacketType::Heartbeat => drop(p.expect_body::<HeartBeat>(kind)),
        PacketType::Shutdown | PacketType::Packagetypecompatibleproto2 => {}
    }
}

fn client(destination: &str, client_id: &str, filter: &str) {
    if let Ok(id) = ClientIdentity::from_wire(destination, client_id, filter) {
        std::hint::black_box(&id);
    }
    // Bound the regex work per input; a long filter only costs time.
    if filter.len() <= 256 {
        if let Ok(f) = TableFilter::new(filter, "") {
            std::hint::black_box(f.accepts(destination, client_id));
        }
    }
    // A cursor document may travel in a destination-sized string field.
    let _ = LogPosition::from_cursor_json(destination);
}

fn hex_token(s: &str) {
    std::hint::black_box(s.bytes().all(|b| b.is_ascii_hexdigit()));
}

/// What a client does with one entry of a MESSAGES batch.
fn entry(raw: Bytes) {
    let Ok(e) = Entry::decode(raw) else { return };
    let value = e.store_value.clone().unwrap_or_default();
    match EntryType::try_from(e.entry_type.unwrap_or(EntryType::Rowdata as i32)) {
        Ok(EntryType::Transactionbegin) => drop(TransactionBegin::decode(value)),
        Ok(EntryType::Transactionend) => drop(TransactionEnd::decode(value)),
        _ => {
            if let Ok(rc) = RowChange::decode(value) {
                for row in &rc.row_datas {
                    for c in row.before_columns.iter().chain(&row.after_columns) {
                        std::hint::black_box((c.index(), c.name(), c.value(), c.is_null()));
                    }
                }
            }
        }
    }
    if let Some(h) = &e.header {
        std::hint::black_box((h.event_type(), h.logfile_name(), h.logfile_offset()));
    }
}
