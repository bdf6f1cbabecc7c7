//! Running the canal-server binary against a test MariaDB, and a minimal raw protocol client.
#![allow(dead_code)]

use std::path::Path;
use std::time::Duration;

use bytes::Bytes;
use canal_protocol::frame::PacketCodec;
use canal_protocol::packet::{
    Ack, ClientAck, ClientAuth, ClientRollback, Get, Messages, Packet, PacketType, Sub,
};
use futures::{SinkExt, StreamExt};
use prost::Message;
use tokio::net::TcpStream;
use tokio_util::codec::Framed;

/// The canal-server process helper lives in the harness, so other crates' tests can use it too.
/// (Not every test binary that includes this module uses both.)
#[allow(unused_imports)]
pub use harness::{http_get, http_request, http_request_with, CanalServer as ServerProc};

/// The binary cargo built for these tests; the first argument of `ServerProc::start`/`start_with`.
pub fn server_bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_canal-server"))
}

/// Waits until the destination is streaming (its admin /health says Running).
pub async fn wait_streaming(s: &ServerProc) {
    s.wait_streaming().await
}

/// A raw Canal protocol client for tests.
pub struct RawClient {
    pub framed: Framed<TcpStream, PacketCodec>,
    pub seed: Bytes,
}

impl RawClient {
    /// Connects and reads the HANDSHAKE.
    pub async fn connect(addr: &str) -> Self {
        let stream = TcpStream::connect(addr).await.unwrap();
        let mut framed = Framed::new(stream, PacketCodec::new());
        let hs = framed.next().await.unwrap().unwrap();
        assert_eq!(hs.version, Some(1));
        assert_eq!(hs.packet_type().unwrap(), PacketType::Handshake);
        let h = canal_protocol::packet::Handshake::decode(hs.body.clone()).unwrap();
        assert_eq!(h.seeds.len(), 8);
        RawClient {
            framed,
            seed: h.seeds,
        }
    }

    pub async fn send(&mut self, p: Packet) {
        self.framed.send(p).await.unwrap();
    }

    pub async fn recv(&mut self) -> Packet {
        tokio::time::timeout(Duration::from_secs(30), self.framed.next())
            .await
            .expect("reply in time")
            .expect("connection open")
            .expect("valid packet")
    }

    /// Authenticates; returns the Ack.
    pub async fn auth(&mut self, user: &str, password: Option<&str>) -> Ack {
        let password = password
            .map(|p| canal_protocol::scramble::scramble411_hex(p, &self.seed).into_bytes())
            .unwrap_or_default();
        let auth = ClientAuth {
            username: user.into(),
            password: password.into(),
            net_read_timeout: Some(3_600_000),
            net_write_timeout: Some(3_600_000),
            ..Default::default()
        };
        self.send(Packet::request(PacketType::Clientauthentication, &auth))
            .await;
        let p = self.recv().await;
        assert_eq!(p.packet_type().unwrap(), PacketType::Ack);
        Ack::decode(p.body.clone()).unwrap()
    }

    /// Connects, authenticates without password, sends rollback(0) like Canal clients, subscribes.
    pub async fn subscribed(addr: &str, client_id: &str, filter: &str) -> Self {
        let mut c = Self::connect(addr).await;
        let ack = c.auth("", None).await;
        assert_eq!(ack.error_code.unwrap_or(0), 0, "{ack:?}");
        c.rollback(client_id, 0).await;
        let ack = c.sub(client_id, filter).await;
        assert_eq!(ack.error_code.unwrap_or(0), 0, "{ack:?}");
        c
    }

    /// Like [`RawClient::subscribed`] but `None` on any failure (server down, not active here).
    pub async fn try_subscribed(addr: &str, client_id: &str) -> Option<Self> {
        let stream = TcpStream::connect(addr).await.ok()?;
        let mut framed = Framed::new(stream, PacketCodec::new());
        let hs = framed.next().await?.ok()?;
        let h = canal_protocol::packet::Handshake::decode(hs.body.clone()).ok()?;
        let mut c = RawClient {
            framed,
            seed: h.seeds,
        };
        let auth = ClientAuth::default();
        c.framed
            .send(Packet::request(PacketType::Clientauthentication, &auth))
            .await
            .ok()?;
        let p = c.framed.next().await?.ok()?;
        if Ack::decode(p.body.clone()).ok()?.error_code.unwrap_or(0) != 0 {
            return None;
        }
        let r = ClientRollback {
            destination: "example".into(),
            client_id: client_id.into(),
            batch_id: 0,
        };
        c.framed
            .send(Packet::request(PacketType::Clientrollback, &r))
            .await
            .ok()?;
        let sub = Sub {
            destination: "example".into(),
            client_id: client_id.into(),
            filter: String::new(),
        };
        c.framed
            .send(Packet::request(PacketType::Subscription, &sub))
            .await
            .ok()?;
        let p = c.framed.next().await?.ok()?;
        if Ack::decode(p.body.clone()).ok()?.error_code.unwrap_or(0) != 0 {
            return None;
        }
        Some(c)
    }

    /// GET that returns `None` on a broken connection instead of panicking.
    pub async fn try_get(
        &mut self,
        client_id: &str,
        fetch: i32,
        timeout_ms: i64,
    ) -> Option<Result<Messages, Ack>> {
        let get = Get {
            destination: "example".into(),
            client_id: client_id.into(),
            fetch_size: fetch,
            timeout: Some(timeout_ms),
            unit: Some(2),
            auto_ack: Some(false),
        };
        self.framed
            .send(Packet::request(PacketType::Get, &get))
            .await
            .ok()?;
        let p = self.framed.next().await?.ok()?;
        match p.packet_type().ok()? {
            PacketType::Messages => Some(Ok(Messages::decode(p.body.clone()).ok()?)),
            PacketType::Ack => Some(Err(Ack::decode(p.body.clone()).ok()?)),
            _ => None,
        }
    }

    pub async fn sub(&mut self, client_id: &str, filter: &str) -> Ack {
        let sub = Sub {
            destination: "example".into(),
            client_id: client_id.into(),
            filter: filter.into(),
        };
        self.send(Packet::request(PacketType::Subscription, &sub))
            .await;
        let p = self.recv().await;
        assert_eq!(p.packet_type().unwrap(), PacketType::Ack);
        Ack::decode(p.body.clone()).unwrap()
    }

    /// GET; `Ok(Messages)` or `Err(Ack)` when the server answered with an error.
    pub async fn get(
        &mut self,
        client_id: &str,
        fetch: i32,
        timeout_ms: i64,
    ) -> Result<Messages, Ack> {
        let get = Get {
            destination: "example".into(),
            client_id: client_id.into(),
            fetch_size: fetch,
            timeout: Some(timeout_ms),
            unit: Some(2),
            auto_ack: Some(false),
        };
        self.send(Packet::request(PacketType::Get, &get)).await;
        let p = self.recv().await;
        match p.packet_type().unwrap() {
            PacketType::Messages => Ok(Messages::decode(p.body.clone()).unwrap()),
            PacketType::Ack => Err(Ack::decode(p.body.clone()).unwrap()),
            other => panic!("unexpected {other:?}"),
        }
    }

    pub async fn ack(&mut self, client_id: &str, batch_id: i64) {
        let a = ClientAck {
            destination: "example".into(),
            client_id: client_id.into(),
            batch_id,
        };
        let _ = self
            .framed
            .send(Packet::request(PacketType::Clientack, &a))
            .await;
    }

    pub async fn rollback(&mut self, client_id: &str, batch_id: i64) {
        let r = ClientRollback {
            destination: "example".into(),
            client_id: client_id.into(),
            batch_id,
        };
        self.send(Packet::request(PacketType::Clientrollback, &r))
            .await;
    }
}

/// Decodes the entries of a Messages reply.
pub fn entries(m: &Messages) -> Vec<canal_protocol::entry::Entry> {
    m.messages
        .iter()
        .map(|b| canal_protocol::entry::Entry::decode(b.clone()).unwrap())
        .collect()
}

/// Row ids (first after/before column) of the DML entries.
pub fn row_ids(es: &[canal_protocol::entry::Entry]) -> Vec<String> {
    use canal_protocol::entry::{EntryType, RowChange};
    let mut out = Vec::new();
    for e in es {
        if e.entry_type() != EntryType::Rowdata {
            continue;
        }
        let rc = RowChange::decode(e.store_value.clone().unwrap_or_default()).unwrap();
        if rc.is_ddl() {
            continue;
        }
        for rd in rc.row_datas {
            let cols = if rd.after_columns.is_empty() {
                rd.before_columns
            } else {
                rd.after_columns
            };
            out.push(cols[0].value().to_string());
        }
    }
    out
}

/// The address in destination `example`'s `running` znode (Canal's JSON), if any.
pub async fn running_address(zk: &zookeeper_client::Client) -> Option<String> {
    let (data, _) = tokio::time::timeout(
        Duration::from_secs(2),
        zk.get_data("/otter/canal/destinations/example/running"),
    )
    .await
    .ok()?
    .ok()?;
    let v: serde_json::Value = serde_json::from_slice(&data).ok()?;
    v["address"].as_str().map(str::to_string)
}

/// Waits up to 60 s until destination `example` runs at `want`.
pub async fn wait_running_at(zk: &zookeeper_client::Client, want: &str) {
    let until = std::time::Instant::now() + Duration::from_secs(60);
    while running_address(zk).await.as_deref() != Some(want) {
        assert!(
            std::time::Instant::now() < until,
            "running node never became {want}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
