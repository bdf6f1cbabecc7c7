//! Running the canal-server binary against a test MariaDB, and a minimal raw protocol client.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::time::Duration;

use bytes::Bytes;
use canal_protocol::frame::PacketCodec;
use canal_protocol::packet::{
    Ack, ClientAck, ClientAuth, ClientRollback, Get, Messages, Packet, PacketType, Sub,
};
use futures::{SinkExt, StreamExt};
use harness::{ManagedProcess, MariaDb, TestDir};
use prost::Message;
use tokio::net::TcpStream;
use tokio_util::codec::Framed;

/// A canal-server process with its config and data dir.
pub struct ServerProc {
    pub process: Option<ManagedProcess>,
    pub dir: TestDir,
    pub port: u16,
    pub admin_port: u16,
    pub config: PathBuf,
}

impl ServerProc {
    /// Writes a config for destination `example` reading `db` and starts the binary.
    pub async fn start(db: &MariaDb, extra_server: &str, extra_dest: &str) -> Self {
        Self::start_with(db, extra_server, extra_dest, "").await
    }

    /// Like [`ServerProc::start`], with more TOML appended (e.g. a `[zookeeper]` section).
    pub async fn start_with(
        db: &MariaDb,
        extra_server: &str,
        extra_dest: &str,
        extra: &str,
    ) -> Self {
        let dir = TestDir::new("canal-server").unwrap();
        let port = harness::free_port();
        let admin_port = harness::free_port();
        let user = db.replication_user().cloned().unwrap_or_default();
        let config = dir.path().join("canal-server.toml");
        std::fs::write(
            &config,
            format!(
                "[server]\nip = \"127.0.0.1\"\nport = {port}\nadmin_port = {admin_port}\ndata_dir = \"{data}\"\n{flush}{extra_server}\n\
                 [destinations.example]\naddress = \"{addr}\"\nusername = \"{u}\"\npassword = \"{p}\"\nslave_id = {sid}\n\
                 black_filter = \"\"\nheartbeat_ms = 300\nread_timeout_ms = 3000\n{extra_dest}\n{extra}\n",
                data = dir.path().join("data").display(),
                flush = if extra_server.contains("flush_period_ms") {
                    ""
                } else {
                    "flush_period_ms = 100\n"
                },
                addr = db.addr(),
                u = user.user,
                p = user.password,
                sid = 2000 + port as u32,
            ),
        )
        .unwrap();
        let mut s = ServerProc {
            process: None,
            dir,
            port,
            admin_port,
            config,
        };
        s.launch().await;
        s
    }

    pub async fn launch(&mut self) {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_canal-server"));
        cmd.arg("--config")
            .arg(&self.config)
            .env("RUST_LOG", "info");
        self.process = Some(
            ManagedProcess::start("canal-server", cmd, &self.dir.path().join("server.log"))
                .unwrap(),
        );
        for _ in 0..600 {
            if TcpStream::connect(("127.0.0.1", self.port)).await.is_ok() {
                return;
            }
            if let Some(st) = self.process.as_mut().and_then(|p| p.try_exit_status()) {
                panic!("canal-server exited with {st}: {}", self.log());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("canal-server did not listen: {}", self.log());
    }

    /// Graceful stop (SIGTERM): cursors are flushed.
    pub fn stop(&mut self) {
        if let Some(mut p) = self.process.take() {
            p.terminate(Duration::from_secs(30)).unwrap();
        }
    }

    /// kill -9.
    pub fn kill9(&mut self) {
        if let Some(mut p) = self.process.take() {
            p.kill9().unwrap();
        }
    }

    /// SIGSTOP.
    pub fn pause(&mut self) {
        self.process.as_mut().unwrap().pause().unwrap();
    }

    /// SIGCONT.
    pub fn resume(&mut self) {
        self.process.as_mut().unwrap().resume().unwrap();
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}

/// Waits until the destination is streaming (its admin /health says Running).
pub async fn wait_streaming(s: &ServerProc) {
    for _ in 0..600 {
        if let Ok(body) = http_get(s.admin_port, "/health").await {
            if body.contains("Running") {
                return;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("destination not running: {}", s.log());
}

/// A tiny HTTP/1.0 GET.
pub async fn http_get(port: u16, path: &str) -> std::io::Result<String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = TcpStream::connect(("127.0.0.1", port)).await?;
    s.write_all(format!("GET {path} HTTP/1.0\r\nHost: x\r\n\r\n").as_bytes())
        .await?;
    let mut out = String::new();
    s.read_to_string(&mut out).await?;
    Ok(out)
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

pub fn _unused(_: &Path) {}
