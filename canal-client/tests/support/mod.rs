//! A scripted, in-process fake Canal server for client tests.
//!
//! It follows the session flow of the compatibility reference (1.5): push a
//! HANDSHAKE with seed 01..08, treat every frame as ClientAuth until one
//! authenticates (error ACK 400 `auth failed for user:<name>` otherwise),
//! then answer SUBSCRIPTION/UNSUBSCRIPTION with an ACK (401 when destination
//! or client id is empty), GET with the next scripted reply (an empty
//! MESSAGES when the script is exhausted), and CLIENTACK/CLIENTROLLBACK with
//! nothing. Batches handed out and not acked are redelivered after a
//! rollback, under a new batch id, like Canal's store. Every inbound frame is
//! recorded byte for byte.
//!
//! For cluster tests, several servers can share one store
//! ([`FakeServer::start_sharing`]), the way Canal servers share cursors
//! through ZooKeeper, and a server can be switched to answer every
//! SUBSCRIPTION and GET with error 400 "not active on this server"
//! ([`FakeServer::set_active`]).
#![allow(dead_code)]

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::Bytes;
use canal_protocol::entry::{Column, Entry, EntryType, EventType, Header, RowChange, RowData};
use canal_protocol::packet::{ClientAck, ClientAuth, ClientRollback, Sub, Unsub};
use canal_protocol::{
    decode_packet, encode_packet, write_frame, Authenticator, FrameCodec, Packet, PacketType,
};
use futures::StreamExt;
use prost::Message as _;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tokio_util::codec::FramedRead;

/// The seed every fake HANDSHAKE carries (reference 1.12).
pub const SEED: [u8; 8] = [1, 2, 3, 4, 5, 6, 7, 8];

/// What the server answers to one GET.
#[derive(Debug, Clone)]
pub enum GetReply {
    /// A MESSAGES reply with the next batch id; the batch stays outstanding
    /// until acked or rolled back.
    Batch(Vec<Entry>),
    /// `Messages{batch_id = -1}`.
    Empty,
    /// Any packet, as is.
    Packet(Packet),
    /// Bytes written verbatim.
    Raw(Vec<u8>),
    /// Bytes written verbatim, then the connection is closed.
    RawAndClose(Vec<u8>),
    /// No reply at all; the connection stays open.
    Silent,
    /// Close the connection without replying.
    Close,
}

/// Everything one server saw.
#[derive(Debug, Default)]
pub struct State {
    /// Every inbound frame, length prefix included, in arrival order.
    pub frames: Vec<Vec<u8>>,
    /// Packet types of the inbound frames, in order.
    pub types: Vec<PacketType>,
    /// Batch ids of CLIENTACKs, in order.
    pub acked: Vec<i64>,
    /// Batch ids of CLIENTROLLBACKs, in order.
    pub rollbacks: Vec<i64>,
    /// Sub filters received, in order.
    pub subscriptions: Vec<String>,
    /// Connections accepted.
    pub connections: usize,
    /// Connections whose handler has finished.
    pub closed: usize,
}

/// The script and the batch store; shared by servers started with
/// [`FakeServer::start_sharing`].
#[derive(Debug)]
struct Store {
    script: VecDeque<GetReply>,
    outstanding: Vec<(i64, Vec<Entry>)>,
    next_batch_id: i64,
}

impl Default for Store {
    fn default() -> Self {
        Self {
            script: VecDeque::new(),
            outstanding: Vec::new(),
            next_batch_id: 1,
        }
    }
}

/// Server behaviour settings.
#[derive(Debug, Clone)]
pub struct Config {
    /// Credential check (`canal.user`, `canal.passwd`).
    pub auth: Authenticator,
    /// The packet pushed on accept.
    pub handshake: Packet,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            auth: Authenticator::new("canal", "6BB4837EB74329105EE4568DDA7DC67ED2CA2AD9")
                .expect("valid hash of 123456"),
            handshake: Packet::handshake(SEED.to_vec()),
        }
    }
}

/// A running fake server; stops when dropped.
pub struct FakeServer {
    /// Where it listens.
    pub addr: SocketAddr,
    state: Arc<Mutex<State>>,
    store: Arc<Mutex<Store>>,
    active: Arc<AtomicBool>,
    task: JoinHandle<()>,
}

impl Drop for FakeServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FakeServer {
    /// Starts a server with user `canal`, password `123456`.
    pub async fn start() -> Self {
        Self::start_with(Config::default()).await
    }

    /// Starts a server with `config` on 127.0.0.1:0.
    pub async fn start_with(config: Config) -> Self {
        Self::start_on(config, Arc::default()).await
    }

    /// Starts a second server (user `canal`, password `123456`) on the same
    /// script and batch store as `other`: a rollback on either redelivers
    /// what either handed out and nobody acked, as a Canal server taking
    /// over a destination resumes from the shared cursor.
    pub async fn start_sharing(other: &FakeServer) -> Self {
        Self::start_on(Config::default(), other.store.clone()).await
    }

    async fn start_on(config: Config, store: Arc<Mutex<Store>>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(Mutex::new(State::default()));
        let active = Arc::new(AtomicBool::new(true));
        let shared = state.clone();
        let shared_store = store.clone();
        let shared_active = active.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((socket, _)) = listener.accept().await else {
                    return;
                };
                shared.lock().unwrap().connections += 1;
                let state = shared.clone();
                let store = shared_store.clone();
                let active = shared_active.clone();
                let config = config.clone();
                tokio::spawn(async move {
                    let _ = session(socket, &config, &state, &store, &active).await;
                    state.lock().unwrap().closed += 1;
                });
            }
        });
        Self {
            addr,
            state,
            store,
            active,
            task,
        }
    }

    /// While not active, SUBSCRIPTION and GET are answered with error 400
    /// `destination:example is not active on this server` (as a server that
    /// lost the running node answers), and CLIENTACK/CLIENTROLLBACK are
    /// ignored.
    pub fn set_active(&self, active: bool) {
        self.active.store(active, Ordering::SeqCst);
    }

    /// The address as `host:port` text.
    pub fn address(&self) -> String {
        self.addr.to_string()
    }

    /// Locks the recorded state.
    pub fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap()
    }

    /// Appends replies for the next GETs (to the store, which servers
    /// started with [`FakeServer::start_sharing`] share).
    pub fn script(&self, replies: impl IntoIterator<Item = GetReply>) {
        self.store.lock().unwrap().script.extend(replies);
    }

    /// Batch ids handed out and neither acked nor rolled back (shared store).
    pub fn outstanding(&self) -> Vec<i64> {
        let store = self.store.lock().unwrap();
        store.outstanding.iter().map(|(id, _)| *id).collect()
    }

    /// Waits (up to 5 s) until `cond` holds on the state.
    pub async fn wait_for(&self, what: &str, cond: impl Fn(&State) -> bool) {
        self.wait_for_within(what, Duration::from_secs(5), cond)
            .await
    }

    /// Waits up to `limit` until `cond` holds on the state.
    pub async fn wait_for_within(
        &self,
        what: &str,
        limit: Duration,
        cond: impl Fn(&State) -> bool,
    ) {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            if cond(&self.state()) {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "timed out waiting for {what}; state: {:?}",
                self.state()
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}

async fn session(
    socket: TcpStream,
    config: &Config,
    state: &Mutex<State>,
    store: &Mutex<Store>,
    active: &AtomicBool,
) -> std::io::Result<()> {
    let (read, mut write) = socket.into_split();
    let mut frames = FramedRead::new(read, FrameCodec::new());
    write.write_all(&frame_bytes(&config.handshake)).await?;
    let mut authenticated = false;
    while let Some(frame) = frames.next().await {
        let Ok(payload) = frame else {
            return Ok(());
        };
        let mut wire = bytes::BytesMut::new();
        write_frame(&payload, &mut wire).expect("a received frame fits in one");
        let wire = wire.to_vec();
        let Ok(packet) = decode_packet(payload) else {
            return Ok(());
        };
        let kind = packet
            .packet_type()
            .unwrap_or(PacketType::Packagetypecompatibleproto2);
        {
            let mut st = state.lock().unwrap();
            st.frames.push(wire);
            st.types.push(kind);
        }
        let reply = if !authenticated {
            let auth: ClientAuth = packet.decode_body().unwrap_or_default();
            match config
                .auth
                .authenticate(&auth.username, &auth.password, &SEED)
            {
                Ok(()) => {
                    authenticated = true;
                    Some(GetReply::Packet(Packet::ack_ok()))
                }
                Err(_) => Some(GetReply::Packet(Packet::ack_error(
                    400,
                    format!("auth failed for user:{}", auth.username),
                ))),
            }
        } else if !active.load(Ordering::SeqCst) {
            inactive(&packet, kind, state)
        } else {
            handle(&packet, kind, state, store)
        };
        match reply {
            None | Some(GetReply::Silent) => {}
            Some(GetReply::Packet(p)) => write.write_all(&frame_bytes(&p)).await?,
            Some(GetReply::Raw(bytes)) => write.write_all(&bytes).await?,
            Some(GetReply::RawAndClose(bytes)) => {
                write.write_all(&bytes).await?;
                write.shutdown().await?;
                return Ok(());
            }
            Some(GetReply::Close) => {
                write.shutdown().await?;
                return Ok(());
            }
            Some(GetReply::Batch(_) | GetReply::Empty) => unreachable!("resolved in handle"),
        }
    }
    Ok(())
}

fn frame_bytes(packet: &Packet) -> Vec<u8> {
    let mut buf = bytes::BytesMut::new();
    encode_packet(packet, &mut buf).expect("encodable");
    buf.to_vec()
}

/// The session handler of a server that is not active for the destination.
fn inactive(packet: &Packet, kind: PacketType, state: &Mutex<State>) -> Option<GetReply> {
    let mut st = state.lock().unwrap();
    match kind {
        PacketType::Subscription | PacketType::Get => Some(GetReply::Packet(Packet::ack_error(
            400,
            "destination:example is not active on this server",
        ))),
        PacketType::Clientack => {
            let ack: ClientAck = packet.decode_body().unwrap_or_default();
            st.acked.push(ack.batch_id);
            None
        }
        PacketType::Clientrollback => {
            let rb: ClientRollback = packet.decode_body().unwrap_or_default();
            st.rollbacks.push(rb.batch_id);
            None
        }
        other => Some(GetReply::Packet(Packet::ack_error(
            400,
            format!("packet type: {} is NOT supported!", other.as_str_name()),
        ))),
    }
}

/// The session handler after authentication.
fn handle(
    packet: &Packet,
    kind: PacketType,
    state: &Mutex<State>,
    store: &Mutex<Store>,
) -> Option<GetReply> {
    let mut st = state.lock().unwrap();
    let mut store = store.lock().unwrap();
    let missing_identity = |d: &str, c: &str| d.is_empty() || c.is_empty();
    match kind {
        PacketType::Subscription => {
            let sub: Sub = packet.decode_body().unwrap_or_default();
            if missing_identity(&sub.destination, &sub.client_id) {
                return Some(GetReply::Packet(Packet::ack_error(
                    401,
                    "destination or clientId is null",
                )));
            }
            st.subscriptions.push(sub.filter);
            Some(GetReply::Packet(Packet::ack_ok()))
        }
        PacketType::Unsubscription => {
            let _: Unsub = packet.decode_body().unwrap_or_default();
            Some(GetReply::Packet(Packet::ack_ok()))
        }
        PacketType::Get => match store.script.pop_front().unwrap_or(GetReply::Empty) {
            GetReply::Batch(entries) => {
                let id = store.next_batch_id;
                store.next_batch_id += 1;
                store.outstanding.push((id, entries.clone()));
                let bytes = entries
                    .iter()
                    .map(|e| Bytes::from(e.encode_to_vec()))
                    .collect();
                Some(GetReply::Packet(Packet::messages(id, bytes)))
            }
            GetReply::Empty => Some(GetReply::Packet(Packet::empty_messages())),
            other => Some(other),
        },
        PacketType::Clientack => {
            let ack: ClientAck = packet.decode_body().unwrap_or_default();
            st.acked.push(ack.batch_id);
            store.outstanding.retain(|(id, _)| *id != ack.batch_id);
            None
        }
        PacketType::Clientrollback => {
            let rb: ClientRollback = packet.decode_body().unwrap_or_default();
            st.rollbacks.push(rb.batch_id);
            // Redeliver un-acked batches first, in their original order.
            let redeliver: Vec<_> = if rb.batch_id == 0 {
                std::mem::take(&mut store.outstanding)
            } else {
                let (hit, keep) = std::mem::take(&mut store.outstanding)
                    .into_iter()
                    .partition(|(id, _)| *id == rb.batch_id);
                store.outstanding = keep;
                hit
            };
            for (_, entries) in redeliver.into_iter().rev() {
                store.script.push_front(GetReply::Batch(entries));
            }
            None
        }
        other => Some(GetReply::Packet(Packet::ack_error(
            400,
            format!("packet type: {} is NOT supported!", other.as_str_name()),
        ))),
    }
}

/// A ROWDATA INSERT entry into `shop.orders` with one key column `id`.
pub fn insert_entry(id: &str, offset: i64) -> Entry {
    let change = RowChange {
        table_id: Some(1),
        event_type: Some(EventType::Insert as i32),
        is_ddl: Some(false),
        row_datas: vec![RowData {
            after_columns: vec![Column {
                index: Some(0),
                sql_type: Some(4),
                name: Some("id".into()),
                is_key: Some(true),
                updated: Some(true),
                is_null: Some(false),
                value: Some(id.into()),
                mysql_type: Some("int(11)".into()),
                ..Column::default()
            }],
            ..RowData::default()
        }],
        ..RowChange::default()
    };
    Entry {
        header: Some(Header {
            version: Some(1),
            logfile_name: Some("mysql-bin.000001".into()),
            logfile_offset: Some(offset),
            server_id: Some(1),
            execute_time: Some(1_700_000_000_000),
            schema_name: Some("shop".into()),
            table_name: Some("orders".into()),
            event_type: Some(EventType::Insert as i32),
            ..Header::default()
        }),
        entry_type: Some(EntryType::Rowdata as i32),
        store_value: Some(change.encode_to_vec().into()),
    }
}

/// Hex text to bytes, ignoring whitespace.
pub fn unhex(text: &str) -> Vec<u8> {
    let digits: String = text.split_whitespace().collect();
    hex::decode(digits).expect("valid hex in test")
}
