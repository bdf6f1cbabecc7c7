//! Byte-level examples from the compatibility reference (`canal-compat.md`
//! sections 1.12 and 2.10), checked in both directions: our encoder must
//! produce exactly these bytes, and our decoder must read them back into the
//! same values.

use bytes::{Bytes, BytesMut};
use canal_protocol::entry::{
    Column, Entry, EntryType, EventType, Header, Pair, RowChange, RowData, TransactionBegin,
    TransactionEnd, Type,
};
use canal_protocol::packet::{
    Ack, ClientAck, ClientAuth, ClientRollback, Get, Handshake, Messages, Sub,
};
use canal_protocol::{
    encode_packet, encode_raw_messages, scramble411_hex, Authenticator, Packet, PacketCodec,
    PacketType,
};
use prost::Message;
use tokio_util::codec::{Decoder, Encoder};

const SEED: [u8; 8] = [1, 2, 3, 4, 5, 6, 7, 8];

fn unhex(text: &str) -> Vec<u8> {
    let digits: String = text.split_whitespace().collect();
    hex::decode(digits).expect("valid hex in test")
}

/// Encodes `packet` and compares with `expected_hex`, then decodes the
/// expected bytes and compares with `packet`.
fn assert_wire(packet: &Packet, expected_hex: &str) {
    let expected = unhex(expected_hex);

    let mut encoded = BytesMut::new();
    encode_packet(packet, &mut encoded).unwrap();
    assert_eq!(hex::encode(&encoded), hex::encode(&expected), "encode");

    let mut codec = PacketCodec::new();
    let mut via_codec = BytesMut::new();
    codec.encode(packet, &mut via_codec).unwrap();
    assert_eq!(via_codec, encoded, "PacketCodec encode");

    let mut wire = BytesMut::from(&expected[..]);
    let decoded = codec.decode(&mut wire).unwrap().expect("one whole frame");
    assert!(wire.is_empty(), "frame fully consumed");
    assert_eq!(&decoded, packet, "decode");
    assert!(codec.decode_eof(&mut wire).unwrap().is_none());
}

/// Decodes `hex_text` as exactly one frame.
fn decode_one(hex_text: &str) -> Packet {
    let mut wire = BytesMut::from(&unhex(hex_text)[..]);
    let packet = PacketCodec::new().decode(&mut wire).unwrap().unwrap();
    assert!(wire.is_empty());
    packet
}

#[test]
fn handshake() {
    let hex_text = "00 00 00 10  10 01  18 01  2a 0a  12 08 01 02 03 04 05 06 07 08";
    let packet = Packet::handshake(SEED.to_vec());
    assert_wire(&packet, hex_text);

    let decoded = decode_one(hex_text);
    assert_eq!(decoded.version, Some(1));
    let handshake: Handshake = decoded.expect_body(PacketType::Handshake).unwrap();
    assert_eq!(&handshake.seeds[..], &SEED);
    assert_eq!(handshake.communication_encoding, None);
}

#[test]
fn java_client_auth() {
    let hex_text = "00 00 00 3f 18 02 2a 3b 0a 05 63 61 6e 61 6c 12 28 39 30 65 36 33 36 65 62 34 38 37 38 66 62 35 39
        65 38 30 62 33 65 65 36 34 31 32 61 37 38 34 64 66 35 61 61 65 33 30 64 18 80 dd db 01 20 80 dd db 01";
    let auth = ClientAuth {
        username: "canal".into(),
        password: scramble411_hex("123456", &SEED).into(),
        net_read_timeout: Some(3_600_000),
        net_write_timeout: Some(3_600_000),
        ..ClientAuth::default()
    };
    let packet = Packet::request(PacketType::Clientauthentication, &auth);
    assert_wire(&packet, hex_text);

    let decoded = decode_one(hex_text);
    assert_eq!(decoded.version, None, "clients send no version");
    let body: ClientAuth = decoded
        .expect_body(PacketType::Clientauthentication)
        .unwrap();
    assert_eq!(body, auth);
    let server = Authenticator::new("canal", "6BB4837EB74329105EE4568DDA7DC67ED2CA2AD9").unwrap();
    assert_eq!(
        server.authenticate(&body.username, &body.password, &SEED),
        Ok(())
    );
}

#[test]
fn success_ack() {
    let hex_text = "00 00 00 04 10 01 18 03";
    assert_wire(&Packet::ack_ok(), hex_text);
    let ack: Ack = decode_one(hex_text).expect_body(PacketType::Ack).unwrap();
    assert_eq!(ack.error_code, None);
    assert!(!ack.is_error());
}

#[test]
fn error_ack() {
    let hex_text = "00 00 00 21 10 01 18 03 2a 1b 08 90 03 12 16 61 75 74 68 20 66 61 69 6c 65 64 20 66 6f 72 20 75 73 65 72 3a 78";
    assert_wire(&Packet::ack_error(400, "auth failed for user:x"), hex_text);
    let ack: Ack = decode_one(hex_text).expect_body(PacketType::Ack).unwrap();
    assert_eq!(ack.error_code, Some(400));
    assert_eq!(ack.error_message, "auth failed for user:x");
    assert!(ack.is_error());
}

#[test]
fn subscription() {
    let hex_text = "00 00 00 1b 18 04 2a 17 0a 07 65 78 61 6d 70 6c 65 12 04 31 30 30 31 3a 06 2e 2a 5c 2e 2e 2a";
    let sub = Sub {
        destination: "example".into(),
        client_id: "1001".into(),
        filter: ".*\\..*".into(),
    };
    assert_wire(&Packet::request(PacketType::Subscription, &sub), hex_text);
    let decoded: Sub = decode_one(hex_text)
        .expect_body(PacketType::Subscription)
        .unwrap();
    assert_eq!(decoded, sub);
}

fn java_get(timeout: i64) -> Get {
    Get {
        destination: "example".into(),
        client_id: "1001".into(),
        fetch_size: 100,
        timeout: Some(timeout),
        unit: Some(2),
        auto_ack: Some(false),
    }
}

#[test]
fn get_non_blocking() {
    let hex_text = "00 00 00 24 18 06 2a 20 0a 07 65 78 61 6d 70 6c 65 12 04 31 30 30 31 18 64
        20 ff ff ff ff ff ff ff ff ff 01  28 02  30 00";
    let get = java_get(-1);
    assert_wire(&Packet::request(PacketType::Get, &get), hex_text);
    let decoded: Get = decode_one(hex_text).expect_body(PacketType::Get).unwrap();
    assert_eq!(decoded, get);
    assert_eq!(decoded.auto_ack, Some(false), "present even though false");
}

#[test]
fn get_with_timeout() {
    let hex_text = "00 00 00 1c 18 06 2a 18 0a 07 65 78 61 6d 70 6c 65 12 04 31 30 30 31 18 64 20 e8 07 28 02 30 00";
    let get = java_get(1000);
    assert_wire(&Packet::request(PacketType::Get, &get), hex_text);
    let decoded: Get = decode_one(hex_text).expect_body(PacketType::Get).unwrap();
    assert_eq!(decoded, get);
}

#[test]
fn get_without_oneofs_reads_as_absent() {
    // What a proto3 reader must distinguish: absent timeout/unit are None,
    // not the proto2 defaults -1 / ms.
    let get = Get {
        destination: "example".into(),
        client_id: "1001".into(),
        fetch_size: 100,
        ..Get::default()
    };
    let mut wire = BytesMut::new();
    encode_packet(&Packet::request(PacketType::Get, &get), &mut wire).unwrap();
    let decoded: Get = PacketCodec::new()
        .decode(&mut wire)
        .unwrap()
        .unwrap()
        .expect_body(PacketType::Get)
        .unwrap();
    assert_eq!(decoded.timeout, None);
    assert_eq!(decoded.unit, None);
    assert_eq!(decoded.auto_ack, None);
}

#[test]
fn empty_messages() {
    let hex_text = "00 00 00 11 10 01 18 07 2a 0b 08 ff ff ff ff ff ff ff ff ff 01";
    assert_wire(&Packet::empty_messages(), hex_text);
    let messages: Messages = decode_one(hex_text)
        .expect_body(PacketType::Messages)
        .unwrap();
    assert_eq!(messages.batch_id, -1);
    assert!(messages.messages.is_empty());
}

#[test]
fn client_ack() {
    let hex_text = "00 00 00 15 18 08 2a 11 0a 07 65 78 61 6d 70 6c 65 12 04 31 30 30 31 18 01";
    let ack = ClientAck {
        destination: "example".into(),
        client_id: "1001".into(),
        batch_id: 1,
    };
    assert_wire(&Packet::request(PacketType::Clientack, &ack), hex_text);
    let decoded: ClientAck = decode_one(hex_text)
        .expect_body(PacketType::Clientack)
        .unwrap();
    assert_eq!(decoded, ack);
}

#[test]
fn client_rollback_all() {
    let hex_text = "00 00 00 13 18 0c 2a 0f 0a 07 65 78 61 6d 70 6c 65 12 04 31 30 30 31";
    let rollback = ClientRollback {
        destination: "example".into(),
        client_id: "1001".into(),
        batch_id: 0,
    };
    assert_wire(
        &Packet::request(PacketType::Clientrollback, &rollback),
        hex_text,
    );
    let decoded: ClientRollback = decode_one(hex_text)
        .expect_body(PacketType::Clientrollback)
        .unwrap();
    assert_eq!(decoded.batch_id, 0, "batch 0 is omitted on the wire");
}

// ---- Section 2.10: the example entry stream ---------------------------------

const BEGIN_HEX: &str = "0a 2f 08 01 12 10 6d 79 73 71 6c 2d 62 69 6e 2e 30 30 30 30 30 33 18 db 01 20 01 2a 05 55 54 46 2d 38
30 80 d0 95 ff bc 31 38 02 42 00 4a 00 50 50 10 01 1a 02 20 0b";
const INSERT_HEX: &str = "0a 46 08 01 12 10 6d 79 73 71 6c 2d 62 69 6e 2e 30 30 30 30 30 33 18 df 02 20 01 2a 05 55 54 46 2d 38
30 80 d0 95 ff bc 31 38 02 42 04 74 65 73 74 4a 01 74 50 2c 58 01 62 0e 0a 09 72 6f 77 73 43 6f 75 6e
74 12 01 31 10 02 1a 46 08 6c 10 01 50 00 62 3e 12 1a 08 00 10 04 1a 02 69 64 20 01 28 01 30 00 42 01
31 52 07 69 6e 74 28 31 31 29 12 20 08 01 10 0c 1a 04 6e 61 6d 65 20 00 28 01 30 00 42 01 61 52 0b 76
61 72 63 68 61 72 28 32 30 29";
const END_HEX: &str = "0a 2f 08 01 12 10 6d 79 73 71 6c 2d 62 69 6e 2e 30 30 30 30 30 33 18 8b 03 20 01 2a 05 55 54 46 2d 38
30 80 d0 95 ff bc 31 38 02 42 00 4a 00 50 1f 10 03 1a 04 12 02 34 32";

/// A header as Canal fills it for the example (every field it sets is
/// present, even when empty).
fn header(offset: i64, length: i64, schema: &str, table: &str) -> Header {
    Header {
        version: Some(1),
        logfile_name: Some("mysql-bin.000003".into()),
        logfile_offset: Some(offset),
        server_id: Some(1),
        serveren_code: Some("UTF-8".into()),
        execute_time: Some(1_700_000_000_000),
        source_type: Some(Type::Mysql as i32),
        schema_name: Some(schema.into()),
        table_name: Some(table.into()),
        event_length: Some(length),
        ..Header::default()
    }
}

fn begin_entry() -> Entry {
    Entry {
        header: Some(header(219, 80, "", "")),
        entry_type: Some(EntryType::Transactionbegin as i32),
        store_value: Some(
            TransactionBegin {
                thread_id: Some(11),
                ..TransactionBegin::default()
            }
            .encode_to_vec()
            .into(),
        ),
    }
}

fn column(index: i32, sql_type: i32, name: &str, key: bool, value: &str, mysql: &str) -> Column {
    Column {
        index: Some(index),
        sql_type: Some(sql_type),
        name: Some(name.into()),
        is_key: Some(key),
        updated: Some(true),
        is_null: Some(false),
        value: Some(value.into()),
        mysql_type: Some(mysql.into()),
        ..Column::default()
    }
}

fn insert_row_change() -> RowChange {
    RowChange {
        table_id: Some(108),
        event_type: Some(EventType::Insert as i32),
        is_ddl: Some(false),
        row_datas: vec![RowData {
            after_columns: vec![
                column(0, 4, "id", true, "1", "int(11)"),
                column(1, 12, "name", false, "a", "varchar(20)"),
            ],
            ..RowData::default()
        }],
        ..RowChange::default()
    }
}

fn insert_entry() -> Entry {
    let mut header = header(351, 44, "test", "t");
    header.event_type = Some(EventType::Insert as i32);
    header.props = vec![Pair {
        key: Some("rowsCount".into()),
        value: Some("1".into()),
    }];
    Entry {
        header: Some(header),
        entry_type: Some(EntryType::Rowdata as i32),
        store_value: Some(insert_row_change().encode_to_vec().into()),
    }
}

fn end_entry() -> Entry {
    Entry {
        header: Some(header(395, 31, "", "")),
        entry_type: Some(EntryType::Transactionend as i32),
        store_value: Some(
            TransactionEnd {
                transaction_id: Some("42".into()),
                ..TransactionEnd::default()
            }
            .encode_to_vec()
            .into(),
        ),
    }
}

fn entries() -> [(Entry, &'static str, usize); 3] {
    [
        (begin_entry(), BEGIN_HEX, 55),
        (insert_entry(), INSERT_HEX, 146),
        (end_entry(), END_HEX, 57),
    ]
}

#[test]
fn entries_encode_and_decode_byte_for_byte() {
    for (entry, hex_text, len) in entries() {
        let expected = unhex(hex_text);
        assert_eq!(expected.len(), len);
        assert_eq!(hex::encode(entry.encode_to_vec()), hex::encode(&expected));
        assert_eq!(Entry::decode(&expected[..]).unwrap(), entry);
    }
}

#[test]
fn entry_getters_apply_proto2_defaults() {
    let begin = Entry::decode(&unhex(BEGIN_HEX)[..]).unwrap();
    assert_eq!(begin.entry_type(), EntryType::Transactionbegin);
    let header = begin.header.as_ref().unwrap();
    // BEGIN carries no eventType: Java readers see UPDATE.
    assert_eq!(header.event_type, None);
    assert_eq!(header.event_type(), EventType::Update);
    assert_eq!(header.schema_name.as_deref(), Some(""));
    let tx = TransactionBegin::decode(begin.store_value.clone().unwrap()).unwrap();
    assert_eq!(tx.thread_id, Some(11));

    let insert = Entry::decode(&unhex(INSERT_HEX)[..]).unwrap();
    assert_eq!(insert.entry_type(), EntryType::Rowdata);
    let change = RowChange::decode(insert.store_value.clone().unwrap()).unwrap();
    assert_eq!(change, insert_row_change());
    assert_eq!(change.event_type(), EventType::Insert);
    assert!(!change.is_ddl());

    let empty = Entry::default();
    assert_eq!(empty.entry_type(), EntryType::Rowdata);
    let empty_header = Header::default();
    assert_eq!(empty_header.version(), 1);
    assert_eq!(empty_header.source_type(), Type::Mysql);
    assert!(!Column::default().is_null());
}

const RAW_MESSAGES_PREFIX: &str = "00 00 01 10 18 07 2a 8b 02 08 01 12 37 0a 2f";
const BUILT_MESSAGES_PREFIX: &str = "00 00 01 12 10 01 18 07 2a 8b 02 08 01 12 37";

fn entry_bytes() -> Vec<Bytes> {
    entries()
        .into_iter()
        .map(|(_, hex_text, _)| Bytes::from(unhex(hex_text)))
        .collect()
}

#[test]
fn raw_messages_frame() {
    let entries = entry_bytes();
    let mut raw = BytesMut::new();
    encode_raw_messages(1, &entries, &mut raw).unwrap();
    assert!(
        hex::encode(&raw).starts_with(&hex::encode(unhex(RAW_MESSAGES_PREFIX))),
        "{}",
        hex::encode(&raw[..16])
    );
    assert_eq!(raw.len(), 4 + 0x110);

    // Whole frame: header bytes, then each entry as field 2.
    let mut expected = unhex("00 00 01 10 18 07 2a 8b 02 08 01");
    for (entry, len_byte) in entries.iter().zip([&[0x37u8][..], &[0x92, 0x01], &[0x39]]) {
        expected.push(0x12);
        expected.extend_from_slice(len_byte);
        expected.extend_from_slice(entry);
    }
    assert_eq!(hex::encode(&raw), hex::encode(&expected));

    // It decodes like the builder form, minus the version.
    let packet = PacketCodec::new().decode(&mut raw).unwrap().unwrap();
    assert!(raw.is_empty());
    assert_eq!(packet.version, None);
    let messages: Messages = packet.expect_body(PacketType::Messages).unwrap();
    assert_eq!(messages.batch_id, 1);
    assert_eq!(messages.messages, entries);
    let decoded: Vec<Entry> = messages
        .messages
        .iter()
        .map(|bytes| Entry::decode(bytes.clone()).unwrap())
        .collect();
    assert_eq!(decoded, vec![begin_entry(), insert_entry(), end_entry()]);

    // And equals the prost encoding of the same versionless packet.
    let mut via_prost = BytesMut::new();
    let versionless = Packet {
        version: None,
        ..Packet::messages(1, entries.clone())
    };
    encode_packet(&versionless, &mut via_prost).unwrap();
    assert_eq!(hex::encode(&via_prost), hex::encode(&expected));
}

#[test]
fn built_messages_frame() {
    let entries = entry_bytes();
    let packet = Packet::messages(1, entries.clone());
    let mut wire = BytesMut::new();
    encode_packet(&packet, &mut wire).unwrap();
    assert!(hex::encode(&wire).starts_with(&hex::encode(unhex(BUILT_MESSAGES_PREFIX))));
    assert_eq!(wire.len(), 4 + 0x112);
    let decoded = PacketCodec::new().decode(&mut wire).unwrap().unwrap();
    assert_eq!(decoded, packet);
    let messages: Messages = decoded.expect_body(PacketType::Messages).unwrap();
    assert_eq!(messages.messages, entries);
}

#[test]
fn raw_messages_edge_cases_match_prost() {
    let cases: Vec<(i64, Vec<Bytes>)> = vec![
        (0, vec![]),
        (-1, vec![]),
        (0, vec![Bytes::new()]),
        (
            i64::MAX,
            vec![Bytes::from_static(b"x"), Bytes::from(vec![7u8; 300])],
        ),
        (i64::MIN, vec![Bytes::new(), Bytes::new()]),
    ];
    for (batch_id, entries) in cases {
        let mut raw = BytesMut::new();
        encode_raw_messages(batch_id, &entries, &mut raw).unwrap();
        let mut via_prost = BytesMut::new();
        let packet = Packet {
            version: None,
            ..Packet::messages(batch_id, entries.clone())
        };
        encode_packet(&packet, &mut via_prost).unwrap();
        assert_eq!(
            raw,
            via_prost,
            "batch {batch_id}, {} entries",
            entries.len()
        );
    }
}
