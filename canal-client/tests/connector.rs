//! `SimpleConnector` against the in-test fake Canal server: bytes on the
//! wire, authentication, the get/ack/rollback cycle, error replies, timeouts
//! and malformed input.

mod support;

use std::time::{Duration, Instant};

use canal_client::{
    ClientError, ConnectorOptions, EntryView, EventType, Op, ProtocolError, SimpleConnector,
};
use canal_protocol::{Compression, FrameError, Packet, PacketType};
use prost::Message as _;
use support::{insert_entry, unhex, Config, FakeServer, GetReply};
use tokio::net::TcpListener;

fn options() -> ConnectorOptions {
    ConnectorOptions {
        username: "canal".into(),
        password: Some("123456".into()),
        so_timeout: Duration::from_secs(5),
        ..ConnectorOptions::default()
    }
}

async fn connected(server: &FakeServer, options: ConnectorOptions) -> SimpleConnector {
    let mut connector = SimpleConnector::new(server.address(), "example", options);
    connector.connect().await.expect("connect");
    connector
}

fn hex_of(bytes: &[u8]) -> String {
    hex::encode(bytes)
}

/// Reference 1.12: the frames a Java client sends, byte for byte.
#[tokio::test]
async fn client_frames_match_reference_bytes() {
    let server = FakeServer::start().await;
    let mut connector = connected(&server, options()).await;
    connector.subscribe(Some(r".*\..*")).await.unwrap();
    connector.get_without_ack(100, None).await.unwrap();
    connector
        .get_without_ack(100, Some(Duration::from_millis(1000)))
        .await
        .unwrap();
    connector.ack(1).await.unwrap();
    connector.rollback(0).await.unwrap();
    server.wait_for("7 frames", |s| s.frames.len() == 7).await;

    let frames = server.state().frames.clone();
    let expected = [
        // ClientAuth canal/123456, seed 01..08, idle 3 600 000 ms.
        "00 00 00 3f 18 02 2a 3b 0a 05 63 61 6e 61 6c 12 28 39 30 65 36 33 36 65 62 34 38 37 38 66 62 35 39
         65 38 30 62 33 65 65 36 34 31 32 61 37 38 34 64 66 35 61 61 65 33 30 64 18 80 dd db 01 20 80 dd db 01",
        // rollback(0) right after auth.
        "00 00 00 13 18 0c 2a 0f 0a 07 65 78 61 6d 70 6c 65 12 04 31 30 30 31",
        // Sub {example, 1001, .*\..*}.
        "00 00 00 1b 18 04 2a 17 0a 07 65 78 61 6d 70 6c 65 12 04 31 30 30 31 3a 06 2e 2a 5c 2e 2e 2a",
        // Get {example, 1001, 100, -1, ms, false}.
        "00 00 00 24 18 06 2a 20 0a 07 65 78 61 6d 70 6c 65 12 04 31 30 30 31 18 64
         20 ff ff ff ff ff ff ff ff ff 01 28 02 30 00",
        // Same with timeout 1000 ms.
        "00 00 00 1c 18 06 2a 18 0a 07 65 78 61 6d 70 6c 65 12 04 31 30 30 31 18 64 20 e8 07 28 02 30 00",
        // ClientAck batch 1.
        "00 00 00 15 18 08 2a 11 0a 07 65 78 61 6d 70 6c 65 12 04 31 30 30 31 18 01",
        // ClientRollback batch 0.
        "00 00 00 13 18 0c 2a 0f 0a 07 65 78 61 6d 70 6c 65 12 04 31 30 30 31",
    ];
    for (i, (got, want)) in frames.iter().zip(expected).enumerate() {
        assert_eq!(hex_of(got), hex_of(&unhex(want)), "frame {i}");
    }
}

#[tokio::test]
async fn zero_or_sub_millisecond_timeouts_never_send_unbounded_get() {
    let server = FakeServer::start().await;
    let mut connector = connected(&server, options()).await;
    connector
        .get_without_ack(0, Some(Duration::ZERO))
        .await
        .unwrap();
    connector
        .get_without_ack(-5, Some(Duration::from_micros(10)))
        .await
        .unwrap();
    server.wait_for("4 frames", |s| s.frames.len() == 4).await;
    let frames = server.state().frames.clone();
    let get = |i: usize| {
        let packet = canal_protocol::decode_packet(frames[i][4..].to_vec().into()).unwrap();
        packet
            .expect_body::<canal_protocol::packet::Get>(PacketType::Get)
            .unwrap()
    };
    // Zero wait = non-blocking (-1); batch size <= 0 falls back to 1000.
    assert_eq!(get(2).timeout, Some(-1));
    assert_eq!(get(2).fetch_size, 1000);
    // 10 µs rounds up to 1 ms rather than down to 0 (= block forever).
    assert_eq!(get(3).timeout, Some(1));
    assert_eq!(get(3).unit, Some(2));
    assert_eq!(get(3).fetch_size, 1000);
}

#[tokio::test]
async fn auth_success_and_no_password() {
    let server = FakeServer::start().await;
    let connector = connected(&server, options()).await;
    assert!(connector.is_connected());

    // A server without canal.passwd accepts a client without password; the
    // ClientAuth then carries an empty password field.
    let open = FakeServer::start_with(Config {
        auth: canal_protocol::Authenticator::new("", "").unwrap(),
        ..Config::default()
    })
    .await;
    let mut connector = SimpleConnector::new(
        open.address(),
        "example",
        ConnectorOptions {
            rollback_on_connect: false,
            ..ConnectorOptions::default()
        },
    );
    connector.connect().await.unwrap();
    open.wait_for("auth frame", |s| !s.frames.is_empty()).await;
    let frame = open.state().frames[0].clone();
    let packet = canal_protocol::decode_packet(frame[4..].to_vec().into()).unwrap();
    let auth: canal_protocol::packet::ClientAuth = packet.decode_body().unwrap();
    assert!(auth.password.is_empty());
    assert_eq!(auth.net_read_timeout, Some(3_600_000));
    assert_eq!(packet.version, None, "clients never set version");
    // rollback_on_connect = false: only the auth frame was sent.
    connector.subscribe(None).await.unwrap();
    assert_eq!(
        open.state().types,
        [PacketType::Clientauthentication, PacketType::Subscription]
    );
    assert_eq!(open.state().subscriptions, [""]);
}

#[tokio::test]
async fn auth_failure_is_typed_with_code_and_message() {
    let server = FakeServer::start().await;
    for password in [Some("wrong"), None] {
        let mut connector = SimpleConnector::new(
            server.address(),
            "example",
            ConnectorOptions {
                password: password.map(Into::into),
                ..options()
            },
        );
        let err = connector.connect().await.unwrap_err();
        match &err {
            ClientError::Auth { code, message } => {
                assert_eq!(*code, 400);
                assert_eq!(message, "auth failed for user:canal");
            }
            other => panic!("expected Auth, got {other:?}"),
        }
        assert!(!err.is_retryable());
        assert!(!connector.is_connected());
        assert!(matches!(
            connector.get_without_ack(1, None).await,
            Err(ClientError::NotConnected)
        ));
    }
}

#[tokio::test]
async fn handshake_must_be_version_1() {
    let server = FakeServer::start_with(Config {
        handshake: Packet {
            version: None,
            ..Packet::handshake(support::SEED.to_vec())
        },
        ..Config::default()
    })
    .await;
    let mut connector = SimpleConnector::new(server.address(), "example", options());
    let err = connector.connect().await.unwrap_err();
    assert!(
        matches!(
            err,
            ClientError::Protocol {
                op: Op::Handshake,
                source: ProtocolError::UnsupportedVersion(None)
            }
        ),
        "{err:?}"
    );

    let server = FakeServer::start_with(Config {
        handshake: Packet::ack_ok(),
        ..Config::default()
    })
    .await;
    let mut connector = SimpleConnector::new(server.address(), "example", options());
    let err = connector.connect().await.unwrap_err();
    assert!(
        matches!(
            err,
            ClientError::Protocol {
                op: Op::Handshake,
                source: ProtocolError::UnexpectedPacket {
                    expected: PacketType::Handshake,
                    actual: PacketType::Ack
                }
            }
        ),
        "{err:?}"
    );
}

#[tokio::test]
async fn get_ack_rollback_cycle() {
    let server = FakeServer::start().await;
    server.script([
        GetReply::Batch(vec![insert_entry("1", 100), insert_entry("2", 200)]),
        GetReply::Batch(vec![insert_entry("3", 300)]),
    ]);
    let mut connector = connected(&server, options()).await;
    connector.subscribe(None).await.unwrap();

    let first = connector.get_without_ack(10, None).await.unwrap();
    assert_eq!(first.id, 1);
    assert_eq!(first.entries.len(), 2);
    let views: Vec<EntryView> = first.views().collect::<Result<_, _>>().unwrap();
    let change = views[1].as_row_change().unwrap();
    assert_eq!(change.event_type(), EventType::Insert);
    assert_eq!(change.rows()[0].after.value("id"), Some("2"));
    assert_eq!(change.position().to_string(), "mysql-bin.000001:200");
    connector.ack(first.id).await.unwrap();

    let second = connector.get_without_ack(10, None).await.unwrap();
    assert_eq!(second.id, 2);
    connector.rollback(0).await.unwrap();

    // Redelivered under a new id; get() acks it.
    let again = connector.get(10, None).await.unwrap();
    assert_eq!(again.id, 3);
    assert_eq!(again.entries, second.entries);

    let empty = connector.get(10, None).await.unwrap();
    assert!(empty.is_empty());
    assert_eq!(empty.id, -1);
    assert!(empty.entries.is_empty());

    // ack(-1) sends nothing; ack(0) is refused locally and keeps the
    // connection.
    connector.ack(-1).await.unwrap();
    assert!(matches!(
        connector.ack(0).await,
        Err(ClientError::InvalidBatchId(0))
    ));
    assert!(connector.is_connected());

    connector.disconnect().await.unwrap();
    assert!(!connector.is_connected());
    server.wait_for("session end", |s| s.closed == 1).await;
    let st = server.state();
    assert_eq!(st.acked, [1, 3]);
    // connect, explicit rollback, disconnect.
    assert_eq!(st.rollbacks, [0, 0, 0]);
    assert_eq!(
        st.types,
        [
            PacketType::Clientauthentication,
            PacketType::Clientrollback,
            PacketType::Subscription,
            PacketType::Get,
            PacketType::Clientack,
            PacketType::Get,
            PacketType::Clientrollback,
            PacketType::Get,
            PacketType::Clientack,
            PacketType::Get,
            PacketType::Clientrollback,
        ]
    );
}

#[tokio::test]
async fn error_reply_to_get_is_server_error() {
    let server = FakeServer::start().await;
    let message = "something goes wrong with reason: ack error , clientId:1001 batchId:7 is not exist , please check";
    server.script([
        GetReply::Packet(Packet::ack_error(400, message)),
        GetReply::Packet(Packet::ack_ok()),
    ]);
    let mut connector = connected(&server, options()).await;
    let err = connector.get_without_ack(10, None).await.unwrap_err();
    match &err {
        ClientError::Server {
            op: Op::Get,
            code: 400,
            message: m,
        } => assert_eq!(m, message),
        other => panic!("expected Server, got {other:?}"),
    }
    assert!(err.is_retryable());
    assert_eq!(err.server_code(), Some(400));
    // The reply pairing is no longer trusted: the connection is closed.
    assert!(!connector.is_connected());

    // Reconnect; even a code-0 ACK in reply to GET is an error.
    connector.connect().await.unwrap();
    let err = connector.get_without_ack(10, None).await.unwrap_err();
    assert!(
        matches!(
            err,
            ClientError::Server {
                op: Op::Get,
                code: 0,
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(server.state().connections, 2);
}

#[tokio::test]
async fn subscribe_error_carries_code() {
    let server = FakeServer::start().await;
    let mut connector = SimpleConnector::new(server.address(), "", options());
    connector.connect().await.unwrap();
    let err = connector.subscribe(Some(".*")).await.unwrap_err();
    assert!(
        matches!(
            err,
            ClientError::Server {
                op: Op::Subscribe,
                code: 401,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(!err.is_retryable());

    // Unsubscribe round trip on a proper connector.
    let mut connector = connected(&server, options()).await;
    connector.unsubscribe().await.unwrap();
}

#[tokio::test]
async fn so_timeout_on_silent_server() {
    let server = FakeServer::start().await;
    server.script([GetReply::Silent]);
    let so_timeout = Duration::from_millis(300);
    let mut connector = connected(
        &server,
        ConnectorOptions {
            so_timeout,
            ..options()
        },
    )
    .await;
    let started = Instant::now();
    let err = connector.get_without_ack(10, None).await.unwrap_err();
    let elapsed = started.elapsed();
    assert!(
        matches!(err, ClientError::Timeout { op: Op::Get, after } if after == so_timeout),
        "{err:?}"
    );
    assert!(elapsed >= so_timeout, "{elapsed:?}");
    assert!(elapsed < Duration::from_secs(3), "{elapsed:?}");
    assert!(err.is_retryable());
    assert!(!connector.is_connected());

    // A GET that asks the server to wait gets that wait on top of so_timeout.
    connector.connect().await.unwrap();
    server.script([GetReply::Silent]);
    let err = connector
        .get_without_ack(10, Some(Duration::from_millis(200)))
        .await
        .unwrap_err();
    assert!(
        matches!(err, ClientError::Timeout { after, .. } if after == Duration::from_millis(500)),
        "{err:?}"
    );
}

#[tokio::test]
async fn so_timeout_when_no_handshake_arrives() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let holder = tokio::spawn(async move {
        let (socket, _) = listener.accept().await.unwrap();
        tokio::time::sleep(Duration::from_secs(10)).await;
        drop(socket);
    });
    let mut connector = SimpleConnector::new(
        addr.to_string(),
        "example",
        ConnectorOptions {
            so_timeout: Duration::from_millis(200),
            ..options()
        },
    );
    let err = connector.connect().await.unwrap_err();
    assert!(
        matches!(
            err,
            ClientError::Timeout {
                op: Op::Handshake,
                ..
            }
        ),
        "{err:?}"
    );
    holder.abort();
}

#[tokio::test]
async fn cancelled_request_poisons_the_connection() {
    let server = FakeServer::start().await;
    server.script([GetReply::Silent]);
    let mut connector = connected(&server, options()).await;
    let abandoned = tokio::time::timeout(
        Duration::from_millis(100),
        connector.get_without_ack(1, None),
    )
    .await;
    assert!(abandoned.is_err(), "the GET should still be waiting");
    assert!(matches!(
        connector.get_without_ack(1, None).await,
        Err(ClientError::Interrupted)
    ));
    assert!(!connector.is_connected());
}

#[tokio::test]
async fn connection_refused_is_io_error() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let mut connector = SimpleConnector::new(addr.to_string(), "example", options());
    let err = connector.connect().await.unwrap_err();
    assert!(
        matches!(
            err,
            ClientError::Io {
                op: Op::Connect,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(err.is_retryable());
}

/// Runs one GET against a scripted reply and returns the error.
async fn get_error(reply: GetReply, max_frame_len: usize) -> ClientError {
    let server = FakeServer::start().await;
    server.script([reply]);
    let mut connector = connected(
        &server,
        ConnectorOptions {
            max_frame_len,
            ..options()
        },
    )
    .await;
    let err = connector.get_without_ack(10, None).await.unwrap_err();
    assert!(
        !connector.is_connected(),
        "{err:?} must close the connection"
    );
    // The connector stays usable after reconnecting.
    connector.connect().await.unwrap();
    err
}

#[tokio::test]
async fn malformed_replies_are_clear_errors() {
    let max = 1 << 20;

    let err = get_error(GetReply::Raw(unhex("00 00 00 03 ff ff ff")), max).await;
    assert!(
        matches!(
            err,
            ClientError::Decode {
                op: Op::Get,
                what: "Packet",
                ..
            }
        ),
        "{err:?}"
    );
    assert!(!err.is_retryable());
    assert!(
        err.to_string().starts_with("get: malformed Packet"),
        "{err}"
    );

    let err = get_error(GetReply::Raw(unhex("ff ff ff ff")), max).await;
    assert!(
        matches!(
            err,
            ClientError::Frame {
                source: FrameError::NegativeLength { len: -1 },
                ..
            }
        ),
        "{err:?}"
    );

    let err = get_error(GetReply::Raw(unhex("00 10 00 00")), 1024).await;
    assert!(
        matches!(
            err,
            ClientError::Frame {
                source: FrameError::TooLarge {
                    len: 0x10_0000,
                    max: 1024
                },
                ..
            }
        ),
        "{err:?}"
    );

    let err = get_error(GetReply::RawAndClose(unhex("00 00 00 10 18 07")), max).await;
    assert!(
        matches!(
            err,
            ClientError::Frame {
                source: FrameError::Truncated { .. },
                ..
            }
        ),
        "{err:?}"
    );

    let err = get_error(GetReply::Close, max).await;
    assert!(
        matches!(err, ClientError::ConnectionClosed { op: Op::Get }),
        "{err:?}"
    );

    // A MESSAGES packet whose entry bytes are not an Entry.
    let bad_entry = Packet::messages(1, vec![vec![0x0a, 0x05, 0x01].into()]);
    let err = get_error(GetReply::Packet(bad_entry), max).await;
    assert!(
        matches!(err, ClientError::Decode { what: "Entry", .. }),
        "{err:?}"
    );

    // A MESSAGES body that is not a Messages.
    let bad_body = Packet {
        body: vec![0x12, 0x09].into(),
        ..Packet::empty_messages()
    };
    let err = get_error(GetReply::Packet(bad_body), max).await;
    assert!(
        matches!(
            err,
            ClientError::Decode {
                what: "Messages",
                ..
            }
        ),
        "{err:?}"
    );

    let err = get_error(GetReply::Packet(Packet::handshake(vec![1])), max).await;
    assert!(
        matches!(
            err,
            ClientError::Protocol {
                source: ProtocolError::UnexpectedPacket {
                    expected: PacketType::Messages,
                    actual: PacketType::Handshake
                },
                ..
            }
        ),
        "{err:?}"
    );

    let unknown = Packet {
        r#type: 99,
        ..Packet::default()
    };
    let err = get_error(GetReply::Packet(unknown), max).await;
    assert!(
        matches!(
            err,
            ClientError::Protocol {
                source: ProtocolError::UnknownPacketType(99),
                ..
            }
        ),
        "{err:?}"
    );

    let compressed = Packet {
        compression: Some(Compression::Zlib as i32),
        ..Packet::empty_messages()
    };
    let err = get_error(GetReply::Packet(compressed), max).await;
    assert!(
        matches!(
            err,
            ClientError::Protocol {
                source: ProtocolError::UnsupportedCompression(2),
                ..
            }
        ),
        "{err:?}"
    );
}

/// Canal's raw (hand-assembled, no version field) MESSAGES frame decodes
/// like the builder form.
#[tokio::test]
async fn raw_messages_frame_is_accepted() {
    let entries = vec![insert_entry("9", 900)];
    let mut raw = bytes::BytesMut::new();
    let encoded: Vec<Vec<u8>> = entries.iter().map(|e| e.encode_to_vec()).collect();
    canal_protocol::encode_raw_messages(5, &encoded, &mut raw).unwrap();
    let server = FakeServer::start().await;
    server.script([GetReply::Raw(raw.to_vec())]);
    let mut connector = connected(&server, options()).await;
    let message = connector.get_without_ack(10, None).await.unwrap();
    assert_eq!(message.id, 5);
    assert_eq!(message.entries, entries);
}
