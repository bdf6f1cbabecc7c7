//! Property-style checks: arbitrary or corrupted input yields errors, never
//! panics, and framing survives arbitrary chunking.
//!
//! Uses a tiny xorshift PRNG with fixed seeds so failures reproduce.

use bytes::{BufMut, Bytes, BytesMut};
use canal_protocol::entry::{
    Column, Entry, Header, Pair, RowChange, RowData, TransactionBegin, TransactionEnd,
};
use canal_protocol::packet::{
    Ack, ClientAck, ClientAuth, ClientRollback, Dump, Get, Handshake, HeartBeat, Messages, Sub,
    Unsub,
};
use canal_protocol::{
    decode_packet, encode_packet, encode_raw_messages, scramble411_hex, Authenticator, FrameCodec,
    FrameError, LogPosition, Packet, PacketCodec, PacketError, PacketType,
};
use prost::Message;
use tokio_util::codec::Decoder;

/// xorshift64* — enough randomness for fuzz-style loops, no dependencies.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        Self(seed.max(1))
    }

    fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }

    fn bytes(&mut self, max_len: usize) -> Vec<u8> {
        let len = self.below(max_len + 1);
        (0..len).map(|_| self.next_u64() as u8).collect()
    }
}

/// Tries every body type on `bytes`; only checks that nothing panics.
fn decode_every_message(bytes: &Bytes) {
    let _ = Packet::decode(bytes.clone());
    let _ = HeartBeat::decode(bytes.clone());
    let _ = Handshake::decode(bytes.clone());
    let _ = ClientAuth::decode(bytes.clone());
    let _ = Ack::decode(bytes.clone());
    let _ = ClientAck::decode(bytes.clone());
    let _ = Sub::decode(bytes.clone());
    let _ = Unsub::decode(bytes.clone());
    let _ = Get::decode(bytes.clone());
    let _ = Dump::decode(bytes.clone());
    let _ = ClientRollback::decode(bytes.clone());
    if let Ok(messages) = Messages::decode(bytes.clone()) {
        for entry in messages.messages {
            let _ = Entry::decode(entry);
        }
    }
    if let Ok(entry) = Entry::decode(bytes.clone()) {
        let _ = entry.entry_type();
        if let Some(header) = &entry.header {
            let _ = (header.event_type(), header.source_type(), header.version());
        }
        if let Some(value) = entry.store_value {
            let _ = RowChange::decode(value.clone());
            let _ = TransactionBegin::decode(value.clone());
            let _ = TransactionEnd::decode(value);
        }
    }
    let _ = Header::decode(bytes.clone());
    let _ = RowChange::decode(bytes.clone());
    let _ = RowData::decode(bytes.clone());
    let _ = Column::decode(bytes.clone());
    let _ = Pair::decode(bytes.clone());
}

/// Validates a decoded packet the way a server or client would.
fn inspect_packet(packet: &Packet) {
    let _ = packet.check_compression();
    let _ = packet.decode_body::<ClientAuth>();
    if let Ok(kind) = packet.packet_type() {
        let _ = kind.as_str_name();
        let _ = packet.expect_body::<Messages>(kind);
    }
    decode_every_message(&packet.body);
}

fn sample_frames() -> Vec<Vec<u8>> {
    let packets = [
        Packet::handshake(vec![1, 2, 3, 4, 5, 6, 7, 8]),
        Packet::ack_ok(),
        Packet::ack_error(400, "auth failed for user:x"),
        Packet::empty_messages(),
        Packet::request(
            PacketType::Get,
            &Get {
                destination: "example".into(),
                client_id: "1001".into(),
                fetch_size: 100,
                timeout: Some(-1),
                unit: Some(2),
                auto_ack: Some(false),
            },
        ),
        Packet::request(
            PacketType::Clientauthentication,
            &ClientAuth {
                username: "canal".into(),
                password: scramble411_hex("123456", &[1, 2, 3, 4, 5, 6, 7, 8]).into(),
                net_read_timeout: Some(3_600_000),
                ..ClientAuth::default()
            },
        ),
    ];
    let mut frames: Vec<Vec<u8>> = packets
        .iter()
        .map(|packet| {
            let mut buf = BytesMut::new();
            encode_packet(packet, &mut buf).unwrap();
            buf.to_vec()
        })
        .collect();
    let entry = Entry {
        header: Some(Header {
            logfile_name: Some("mysql-bin.000003".into()),
            ..Header::default()
        }),
        entry_type: Some(2),
        store_value: Some(
            RowChange {
                sql: Some("insert".into()),
                ..RowChange::default()
            }
            .encode_to_vec()
            .into(),
        ),
    }
    .encode_to_vec();
    let mut raw = BytesMut::new();
    encode_raw_messages(7, &[entry.clone(), entry], &mut raw).unwrap();
    frames.push(raw.to_vec());
    frames
}

#[test]
fn random_bytes_never_panic_the_frame_decoder() {
    let mut rng = Rng::new(0x5eed_0001);
    for _ in 0..5_000 {
        let data = rng.bytes(64);
        let max = rng.below(40);
        let mut codec = PacketCodec::with_frame_codec(FrameCodec::with_max_frame_len(max));
        let mut buf = BytesMut::new();
        let mut rest = &data[..];
        'feed: while !rest.is_empty() {
            let take = 1 + rng.below(rest.len());
            buf.extend_from_slice(&rest[..take]);
            rest = &rest[take..];
            loop {
                match codec.decode(&mut buf) {
                    Ok(Some(packet)) => inspect_packet(&packet),
                    Ok(None) => break,
                    Err(err) if err.is_connection_fatal() => break 'feed,
                    Err(_) => {}
                }
            }
        }
        let _ = codec.decode_eof(&mut buf);
        // The buffer never grew beyond one maximal frame plus what was fed.
        assert!(buf.capacity() <= (max + 4).max(data.len()) + 64);
    }
}

#[test]
fn random_payloads_never_panic_message_decoders() {
    let mut rng = Rng::new(0x5eed_0002);
    for _ in 0..20_000 {
        let payload = Bytes::from(rng.bytes(96));
        if let Ok(packet) = decode_packet(payload.clone()) {
            inspect_packet(&packet);
        }
        decode_every_message(&payload);
    }
}

#[test]
fn corrupted_valid_frames_never_panic() {
    let mut rng = Rng::new(0x5eed_0003);
    let frames = sample_frames();
    for _ in 0..20_000 {
        let mut frame = frames[rng.below(frames.len())].clone();
        for _ in 0..1 + rng.below(4) {
            let at = rng.below(frame.len());
            match rng.below(3) {
                0 => frame[at] ^= 1 << rng.below(8),
                1 => frame[at] = rng.next_u64() as u8,
                _ => frame.truncate(at.max(1)),
            }
        }
        // Corrupt the payload only, keeping a consistent length prefix, so
        // that the protobuf layer sees every mutation too.
        let payload = Bytes::copy_from_slice(frame.get(4..).unwrap_or(&[]));
        match decode_packet(payload.clone()) {
            Ok(packet) => inspect_packet(&packet),
            Err(err) => assert!(matches!(err, PacketError::Decode { .. })),
        }
        let mut codec = PacketCodec::with_frame_codec(FrameCodec::with_max_frame_len(1 << 16));
        let mut buf = BytesMut::from(&frame[..]);
        while let Ok(Some(packet)) = codec.decode(&mut buf) {
            inspect_packet(&packet);
        }
        let _ = codec.decode_eof(&mut buf);
    }
}

#[test]
fn framing_survives_arbitrary_chunking() {
    let mut rng = Rng::new(0x5eed_0004);
    let frames = sample_frames();
    for _ in 0..500 {
        let picks: Vec<usize> = (0..1 + rng.below(8))
            .map(|_| rng.below(frames.len()))
            .collect();
        let stream: Vec<u8> = picks.iter().flat_map(|&i| frames[i].clone()).collect();
        let expected: Vec<Packet> = picks
            .iter()
            .map(|&i| decode_packet(Bytes::copy_from_slice(&frames[i][4..])).unwrap())
            .collect();

        let mut codec = PacketCodec::new();
        let mut buf = BytesMut::new();
        let mut got = Vec::new();
        let mut rest = &stream[..];
        while !rest.is_empty() {
            let take = 1 + rng.below(rest.len().min(40));
            buf.put_slice(&rest[..take]);
            rest = &rest[take..];
            while let Some(packet) = codec.decode(&mut buf).unwrap() {
                got.push(packet);
            }
        }
        assert!(codec.decode_eof(&mut buf).unwrap().is_none());
        assert_eq!(got, expected);
    }
}

#[test]
fn oversized_prefix_errors_for_every_length_above_max() {
    let mut rng = Rng::new(0x5eed_0005);
    let codec_max = 1024;
    for _ in 0..2_000 {
        let len = codec_max as u32 + 1 + (rng.next_u64() as u32 % (i32::MAX as u32 - 1025));
        let mut buf = BytesMut::with_capacity(4);
        buf.put_u32(len);
        let before = buf.capacity();
        let result = FrameCodec::with_max_frame_len(codec_max).decode(&mut buf);
        assert!(
            matches!(result, Err(FrameError::TooLarge { len: l, max: 1024 }) if l == len as usize)
        );
        assert_eq!(buf.capacity(), before);
    }
}

#[test]
fn random_passwords_never_panic_or_authenticate() {
    let mut rng = Rng::new(0x5eed_0006);
    let auth = Authenticator::new("canal", "6BB4837EB74329105EE4568DDA7DC67ED2CA2AD9").unwrap();
    let seed = [1u8, 2, 3, 4, 5, 6, 7, 8];
    for _ in 0..5_000 {
        let mut password = rng.bytes(48);
        if rng.below(2) == 0 {
            // Make it look like a token: 40 hex characters.
            password = hex::encode(rng.bytes(20))
                .into_bytes()
                .into_iter()
                .chain(std::iter::repeat(b'0'))
                .take(40)
                .collect();
        }
        let seed_len = rng.below(seed.len() + 1);
        assert!(auth
            .authenticate("canal", &password, &seed[..seed_len])
            .is_err());
    }
}

#[test]
fn random_json_never_panics_position_parser() {
    let mut rng = Rng::new(0x5eed_0007);
    let cursor = r#"{"@type":"com.alibaba.otter.canal.protocol.position.LogPosition","identity":{"slaveId":-1,"sourceAddress":{"address":"10.0.0.1","port":3306}},"postion":{"gtid":"","included":false,"journalName":"mysql-bin.000023","position":43893,"serverId":1,"timestamp":1536312619000}}"#;
    for _ in 0..5_000 {
        let mut text = cursor.as_bytes().to_vec();
        for _ in 0..1 + rng.below(3) {
            let at = rng.below(text.len());
            const ALPHABET: &[u8] = b"{}[]\":,0123456789-aetnul@ ";
            text[at] = ALPHABET[rng.below(ALPHABET.len())];
        }
        if let Ok(text) = std::str::from_utf8(&text) {
            let _ = LogPosition::from_cursor_json(text);
        }
        let random = rng.bytes(32);
        let _ = LogPosition::from_cursor_json(&String::from_utf8_lossy(&random));
    }
}
