//! The fault proxy's wide-area link emulation: delays per direction, a bandwidth cap, jitter that
//! never reorders bytes, switching at run time, and stall/cut still working with a WAN on.
//!
//! Timing assertions are lower bounds (a delay cannot be shorter than configured) plus upper bounds
//! loose enough for a busy machine.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use harness::{FaultProxy, Wan};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Starts an echo server on a loopback port; each connection echoes until the client half-closes.
async fn echo_server() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind echo");
    let addr = listener.local_addr().expect("echo addr");
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let (mut r, mut w) = stream.into_split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
                let _ = w.shutdown().await;
            });
        }
    });
    addr
}

/// Starts a server that reads a big-endian u64 `n` and answers with `n` pattern bytes.
async fn download_server() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind download");
    let addr = listener.local_addr().expect("download addr");
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let Ok(n) = stream.read_u64().await else {
                    return;
                };
                let data: Vec<u8> = (0..n as usize).map(pattern).collect();
                let _ = stream.write_all(&data).await;
                let _ = stream.shutdown().await;
            });
        }
    });
    addr
}

/// A byte stream with no short period, so a lost, doubled or moved chunk shows.
fn pattern(i: usize) -> u8 {
    ((i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 56) as u8
}

/// One request/response through `stream`; returns how long it took.
async fn round_trip(stream: &mut TcpStream, msg: &[u8]) -> Duration {
    let start = Instant::now();
    stream.write_all(msg).await.expect("write");
    let mut back = vec![0u8; msg.len()];
    stream.read_exact(&mut back).await.expect("read echo");
    assert_eq!(back, msg);
    start.elapsed()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn latency_delays_each_direction() {
    let proxy = FaultProxy::start(echo_server().await).expect("proxy");
    let mut s = TcpStream::connect(proxy.addr()).await.expect("connect");
    s.set_nodelay(true).unwrap();
    let plain = round_trip(&mut s, b"warm-up").await;
    assert!(plain < Duration::from_secs(5), "plain round trip {plain:?}");

    proxy.set_latency(Duration::from_millis(50), Duration::from_millis(50));
    assert_eq!(proxy.wan(), Wan::symmetric(Duration::from_millis(50)));
    for i in 0..3 {
        let rtt = round_trip(&mut s, format!("ping {i}").as_bytes()).await;
        assert!(rtt >= Duration::from_millis(100), "round trip {rtt:?}");
        assert!(rtt < Duration::from_secs(5), "round trip {rtt:?}");
    }

    // Each direction has its own delay: only the way back is slow here.
    proxy.set_latency(Duration::ZERO, Duration::from_millis(120));
    let rtt = round_trip(&mut s, b"asymmetric").await;
    assert!(rtt >= Duration::from_millis(120), "round trip {rtt:?}");
    assert!(rtt < Duration::from_secs(5), "round trip {rtt:?}");

    // A new connection sees the link too.
    let mut s2 = TcpStream::connect(proxy.addr()).await.expect("connect");
    let rtt = round_trip(&mut s2, b"second").await;
    assert!(rtt >= Duration::from_millis(120), "round trip {rtt:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delay_is_a_pipe_not_stop_and_wait() {
    // 100 requests written back to back over a 100 ms round-trip link: a pipe answers them all in
    // about one round trip, stop-and-wait would need 100.
    let proxy = FaultProxy::start(echo_server().await).expect("proxy");
    proxy.set_wan(Wan::symmetric(Duration::from_millis(50)));
    let mut s = TcpStream::connect(proxy.addr()).await.expect("connect");
    s.set_nodelay(true).unwrap();
    let start = Instant::now();
    let mut sent = Vec::new();
    for i in 0..100u32 {
        let msg = format!("request {i:04};");
        s.write_all(msg.as_bytes()).await.unwrap();
        sent.extend_from_slice(msg.as_bytes());
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let mut back = vec![0u8; sent.len()];
    s.read_exact(&mut back).await.unwrap();
    let took = start.elapsed();
    assert_eq!(back, sent);
    assert!(took >= Duration::from_millis(100), "took {took:?}");
    assert!(
        took < Duration::from_secs(5),
        "took {took:?}: not pipelined"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bandwidth_cap_limits_a_transfer() {
    const SIZE: u64 = 2_000_000;
    let proxy = FaultProxy::start(download_server().await).expect("proxy");
    proxy.set_wan(Wan {
        bytes_per_sec: Some(1_000_000),
        ..Wan::default()
    });
    let mut s = TcpStream::connect(proxy.addr()).await.expect("connect");
    let start = Instant::now();
    s.write_u64(SIZE).await.unwrap();
    let mut got = Vec::new();
    s.read_to_end(&mut got).await.expect("download");
    let took = start.elapsed();
    assert_eq!(got.len() as u64, SIZE);
    assert!(
        got.iter().enumerate().all(|(i, b)| *b == pattern(i)),
        "corrupted"
    );
    assert!(
        took >= Duration::from_millis(1500),
        "2 MB at 1 MB/s took {took:?}"
    );
    assert!(took < Duration::from_secs(30), "took {took:?}");

    // Without the cap the same transfer is not paced.
    proxy.clear_wan();
    let mut s = TcpStream::connect(proxy.addr()).await.expect("connect");
    let start = Instant::now();
    s.write_u64(SIZE).await.unwrap();
    let mut got = Vec::new();
    s.read_to_end(&mut got).await.expect("download");
    assert_eq!(got.len() as u64, SIZE);
    assert!(start.elapsed() < took, "uncapped was not faster");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jitter_keeps_bytes_complete_and_in_order() {
    const SIZE: usize = 10 << 20;
    let proxy = FaultProxy::start(echo_server().await).expect("proxy");
    // Jitter larger than the delay: chunks would overtake each other if released independently.
    proxy.set_wan(Wan {
        delay_up: Duration::from_millis(3),
        delay_down: Duration::from_millis(3),
        jitter: Duration::from_millis(10),
        bytes_per_sec: None,
    });
    let s = TcpStream::connect(proxy.addr()).await.expect("connect");
    let (mut r, mut w) = s.into_split();
    let writer = tokio::spawn(async move {
        let data: Vec<u8> = (0..SIZE).map(pattern).collect();
        // Odd-sized writes so chunk boundaries vary.
        for piece in data.chunks(7919) {
            w.write_all(piece).await?;
        }
        w.shutdown().await
    });
    let mut got = Vec::with_capacity(SIZE);
    tokio::time::timeout(Duration::from_secs(120), r.read_to_end(&mut got))
        .await
        .expect("echo finished in time")
        .expect("read echo");
    writer.await.unwrap().expect("write");
    assert_eq!(got.len(), SIZE);
    if let Some(i) = (0..SIZE).find(|i| got[*i] != pattern(*i)) {
        panic!("byte {i} differs: bytes reordered or lost");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn switching_the_wan_off_mid_connection() {
    let proxy = FaultProxy::start(echo_server().await).expect("proxy");
    let mut s = TcpStream::connect(proxy.addr()).await.expect("connect");
    s.set_nodelay(true).unwrap();
    proxy.set_wan(Wan::symmetric(Duration::from_secs(1)));
    let rtt = round_trip(&mut s, b"slow").await;
    assert!(rtt >= Duration::from_secs(2), "round trip {rtt:?}");

    // Off while a message is inside the proxy: it is released at once, not after its delay.
    let start = Instant::now();
    s.write_all(b"in flight").await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    proxy.clear_wan();
    assert!(proxy.wan().is_off());
    let mut back = [0u8; 9];
    s.read_exact(&mut back).await.unwrap();
    assert_eq!(&back, b"in flight");
    let took = start.elapsed();
    assert!(took < Duration::from_millis(1800), "held {took:?}");

    // And the connection stays usable, without the delay.
    let rtt = round_trip(&mut s, b"fast again").await;
    assert!(rtt < Duration::from_secs(1), "round trip {rtt:?}");

    // Back on for the same connection.
    proxy.set_latency(Duration::from_millis(100), Duration::from_millis(100));
    let rtt = round_trip(&mut s, b"slow again").await;
    assert!(rtt >= Duration::from_millis(200), "round trip {rtt:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stall_and_cut_work_with_the_wan_on() {
    let proxy = FaultProxy::start(echo_server().await).expect("proxy");
    proxy.set_wan(Wan {
        jitter: Duration::from_millis(5),
        bytes_per_sec: Some(10_000_000),
        ..Wan::symmetric(Duration::from_millis(50))
    });
    let mut s = TcpStream::connect(proxy.addr()).await.expect("connect");
    s.set_nodelay(true).unwrap();
    let rtt = round_trip(&mut s, b"hello").await;
    assert!(rtt >= Duration::from_millis(90), "round trip {rtt:?}");

    // Stalled: nothing comes back, however long past the delay; the connection stays open.
    proxy.stall();
    s.write_all(b"held").await.unwrap();
    let mut back = [0u8; 4];
    let r = tokio::time::timeout(Duration::from_millis(600), s.read_exact(&mut back)).await;
    assert!(r.is_err(), "read through a stalled proxy must time out");
    assert_eq!(proxy.open_connections(), 1);
    // Passing again releases the held bytes, still in order.
    proxy.pass();
    tokio::time::timeout(Duration::from_secs(5), s.read_exact(&mut back))
        .await
        .expect("released after pass")
        .unwrap();
    assert_eq!(&back, b"held");

    // Cut resets the connection even with bytes waiting for their delay.
    s.write_all(b"lost").await.unwrap();
    proxy.cut();
    let mut buf = [0u8; 16];
    let r = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf))
        .await
        .expect("cut is seen");
    assert!(
        matches!(r, Ok(0) | Err(_)),
        "cut connection answered: {r:?}"
    );

    // New connections go through the WAN again.
    let mut s = TcpStream::connect(proxy.addr())
        .await
        .expect("connect after cut");
    let rtt = round_trip(&mut s, b"again").await;
    assert!(rtt >= Duration::from_millis(90), "round trip {rtt:?}");
    assert!(rtt < Duration::from_secs(5), "round trip {rtt:?}");
}
