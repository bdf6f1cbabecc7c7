//! The hostile-input sweep, kept as a test: while a valid consumer reads a stream of rows from a
//! real canal-server, other connections send random bytes, a frame announcing 2 GiB, a truncated
//! frame then silence, hundreds of connections that never authenticate, and password guesses.
//! The consumer gets every row, connections beyond the limits are refused with an error frame
//! (not left hanging), and the server's memory stays bounded.

mod common;

use std::time::Duration;

use canal_protocol::packet::{Ack, PacketType};
use common::server::*;
use futures::StreamExt;
use harness::MariaDb;
use prost::Message;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The server's resident memory, kB (Linux).
fn rss_kb(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// What a connection got back: the first frame's Ack (error) if any, or end of stream.
async fn first_reply(s: &mut TcpStream) -> Option<Ack> {
    let mut len = [0u8; 4];
    tokio::time::timeout(Duration::from_secs(30), s.read_exact(&mut len))
        .await
        .ok()?
        .ok()?;
    let n = u32::from_be_bytes(len) as usize;
    let mut body = vec![0u8; n];
    s.read_exact(&mut body).await.ok()?;
    let p = canal_protocol::frame::decode_packet(bytes::Bytes::from(body)).ok()?;
    if p.packet_type().ok()? == PacketType::Ack {
        Ack::decode(p.body).ok()
    } else {
        None
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_connections_do_not_hurt_a_valid_consumer() {
    harness::init_tracing();
    let db = MariaDb::start().await.unwrap();
    db.exec("CREATE DATABASE shop; CREATE TABLE shop.t (id INT PRIMARY KEY)")
        .await
        .unwrap();
    // passwd = hex(SHA1(SHA1("123456"))).
    let s = ServerProc::start(
        server_bin(),
        &db,
        "user = \"canal\"\npasswd = \"6BB4837EB74329105EE4568DDA7DC67ED2CA2AD9\"\nmax_frame_bytes = 65536\nmax_connections = 80\n",
        "",
    )
    .await;
    wait_streaming(&s).await;
    let pid = s.process.as_ref().and_then(|p| p.pid()).unwrap();
    let rss_before = rss_kb(pid);

    let mut consumer = RawClient::connect(&s.addr()).await;
    assert_eq!(
        consumer
            .auth("canal", Some("123456"))
            .await
            .error_code
            .unwrap_or(0),
        0
    );
    assert_eq!(consumer.sub("1001", "").await.error_code.unwrap_or(0), 0);

    const ROWS: i64 = 300;
    let writer = async {
        for i in 1..=ROWS {
            db.exec(&format!("INSERT INTO shop.t VALUES ({i})"))
                .await
                .unwrap();
            if i % 50 == 0 {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    };
    let addr = s.addr();
    let attackers = async {
        let mut refused = 0usize;
        let mut idle = Vec::new();
        // Connections that never authenticate: beyond the limits they are refused with an error
        // frame instead of the handshake.
        for _ in 0..200 {
            let mut c = TcpStream::connect(&addr).await.unwrap();
            let mut len = [0u8; 4];
            c.read_exact(&mut len).await.unwrap();
            let mut body = vec![0u8; u32::from_be_bytes(len) as usize];
            c.read_exact(&mut body).await.unwrap();
            let p = canal_protocol::frame::decode_packet(bytes::Bytes::from(body)).unwrap();
            match p.packet_type().unwrap() {
                PacketType::Handshake => idle.push(c),
                PacketType::Ack => {
                    let ack = Ack::decode(p.body).unwrap();
                    assert!(
                        ack.error_message.contains("too many connections"),
                        "{}",
                        ack.error_message
                    );
                    refused += 1;
                }
                other => panic!("unexpected {other:?}"),
            }
        }
        let idle_accepted = idle.len();
        drop(idle);
        // Random bytes, a 2 GiB frame, a truncated frame then silence, password guesses.
        let mut replies = Vec::new();
        for round in 0..20u32 {
            let Ok(mut c) = TcpStream::connect(&addr).await else {
                continue;
            };
            let garbage: Vec<u8> = match round % 4 {
                0 => (0..512u32)
                    .map(|i| (i.wrapping_mul(2654435761) >> 7) as u8)
                    .collect(),
                1 => 0x8000_0000u32.to_be_bytes().to_vec(),
                2 => {
                    let mut v = 100u32.to_be_bytes().to_vec();
                    v.extend_from_slice(&[1, 2, 3]);
                    v
                }
                _ => Vec::new(),
            };
            if round % 4 == 3 {
                drop(c);
                let mut guess = RawClient::connect(&addr).await;
                let ack = guess.auth("canal", Some(&format!("guess{round}"))).await;
                assert_eq!(ack.error_message, "auth failed for user:canal");
                assert!(
                    guess.framed.next().await.is_none(),
                    "one attempt per connection"
                );
                continue;
            }
            let _ = c.write_all(&garbage).await;
            replies.push(c);
        }
        // Every hostile connection is answered or closed (none hangs for good).
        let mut closed = 0usize;
        for mut c in replies {
            let _ = first_reply(&mut c).await;
            let mut rest = Vec::new();
            if tokio::time::timeout(Duration::from_secs(30), c.read_to_end(&mut rest))
                .await
                .is_ok()
            {
                closed += 1;
            }
        }
        (refused, idle_accepted, closed)
    };
    let reader = async {
        let mut ids = Vec::new();
        for _ in 0..2000 {
            if ids.len() as i64 >= ROWS {
                break;
            }
            let m = consumer.get("1001", 100, 200).await.expect("GET");
            if m.batch_id != -1 {
                ids.extend(
                    row_ids(&entries(&m))
                        .into_iter()
                        .filter_map(|x| x.parse::<i64>().ok()),
                );
                consumer.ack("1001", m.batch_id).await;
            }
        }
        ids
    };
    let ((), (refused, idle, closed), ids) = tokio::join!(writer, attackers, reader);
    assert_eq!(
        ids,
        (1..=ROWS).collect::<Vec<_>>(),
        "the consumer got every row, in order"
    );
    assert!(refused > 0, "connections beyond the limit were refused");
    assert!(
        idle <= 20,
        "at most a quarter of 80 wait to authenticate: {idle}"
    );
    assert!(closed > 0);
    let rss_after = rss_kb(pid);
    println!("HOSTILE rss before {rss_before} kB, after {rss_after} kB; refused {refused}, idle accepted {idle}, closed {closed}");
    assert!(
        rss_after < rss_before + 200_000,
        "memory stays bounded: {rss_before} kB → {rss_after} kB"
    );
    let log = s.log();
    assert!(!log.contains("panicked"), "no panic");
}
