//! [`SimpleConnector`]: one TCP connection to one Canal server.

use std::fmt;
use std::future::Future;
use std::time::Duration;

use canal_protocol::entry::Entry;
use canal_protocol::packet::{
    Ack, ClientAck, ClientAuth, ClientRollback, Get, Handshake, Messages, Sub, Unsub,
};
use canal_protocol::{
    scramble411_hex, FrameCodec, FrameError, Packet, PacketCodec, PacketError, PacketType,
    DEFAULT_MAX_FRAME_LEN, EMPTY_BATCH_ID, PROTOCOL_VERSION,
};
use futures::{SinkExt, StreamExt};
use prost::Message as _;
use tokio::net::TcpStream;
use tokio_util::codec::Framed;

use crate::error::{ClientError, Op, ProtocolError};
use crate::view::{EntryView, ViewError};

/// Client id every reference Canal client uses.
pub const DEFAULT_CLIENT_ID: i16 = 1001;

/// Default bound on waiting for a reply ([`ConnectorOptions::so_timeout`]).
pub const DEFAULT_SO_TIMEOUT: Duration = Duration::from_secs(60);

/// Default idle timeout the server applies to the session
/// ([`ConnectorOptions::idle_timeout`]).
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(3600);

/// `fetch_size` sent when the caller asks for a batch size ≤ 0 (the Java
/// client's fallback).
pub const DEFAULT_FETCH_SIZE: i32 = 1000;

/// `Get.unit` for milliseconds (Java `TimeUnit.MILLISECONDS.ordinal()`).
const UNIT_MILLIS: i32 = 2;

/// Connection settings for a [`SimpleConnector`].
///
/// Build with struct update syntax:
/// `ConnectorOptions { username: "canal".into(), ..Default::default() }`.
#[derive(Clone, PartialEq, Eq)]
pub struct ConnectorOptions {
    /// `ClientAuth.username` (`canal.user` on the server; empty if the server
    /// has no user configured).
    pub username: String,
    /// Plaintext password. `Some` is sent as the scramble411 hex token of the
    /// server's seed (also for `Some("")`); `None` sends an empty password.
    /// Never sent in clear and never shown by `Debug`.
    pub password: Option<String>,
    /// Client id; Canal parses it as a Java `short`. Default 1001.
    pub client_id: i16,
    /// Upper bound on every socket operation: TCP connect, each write, and
    /// each wait for a reply. A GET that asks the server to wait `t` gets
    /// `t + so_timeout`. Default 60 s.
    pub so_timeout: Duration,
    /// Sent as `net_read_timeout`/`net_write_timeout` (milliseconds, capped
    /// at `i32::MAX`): the server closes the session after this long without
    /// traffic in either direction. Default 1 h.
    pub idle_timeout: Duration,
    /// Largest reply frame accepted; a larger one fails with
    /// [`ClientError::Frame`] before any memory is reserved for it.
    /// Default [`DEFAULT_MAX_FRAME_LEN`] (64 MiB).
    pub max_frame_len: usize,
    /// Send CLIENTROLLBACK for batch 0 right after authenticating, as the
    /// Java and Go clients do. A Canal server does not roll back when a
    /// client disconnects, so without this a reconnecting client would skip
    /// the batches its previous connection fetched but never acked.
    /// Default true.
    pub rollback_on_connect: bool,
    /// TLS to a server whose port speaks it (`server.tls_cert`); plain TCP when `None`
    /// (default).
    pub tls: Option<crate::ClientTls>,
}

impl Default for ConnectorOptions {
    fn default() -> Self {
        Self {
            username: String::new(),
            password: None,
            client_id: DEFAULT_CLIENT_ID,
            so_timeout: DEFAULT_SO_TIMEOUT,
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
            max_frame_len: DEFAULT_MAX_FRAME_LEN,
            rollback_on_connect: true,
            tls: None,
        }
    }
}

impl fmt::Debug for ConnectorOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConnectorOptions")
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("client_id", &self.client_id)
            .field("so_timeout", &self.so_timeout)
            .field("idle_timeout", &self.idle_timeout)
            .field("max_frame_len", &self.max_frame_len)
            .field("rollback_on_connect", &self.rollback_on_connect)
            .field("tls", &self.tls)
            .finish()
    }
}

/// One GET result: a batch id and its entries.
///
/// `id` is [`EMPTY_BATCH_ID`] (−1) when the server had nothing; such a
/// message has no entries and needs no ack. Any other id must eventually be
/// acked or rolled back, in order.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Message {
    /// The batch id (per client, increasing from 1), or −1 when empty.
    pub id: i64,
    /// The entries, in binlog order.
    pub entries: Vec<Entry>,
}

impl Message {
    /// True for the empty reply (`id == -1`).
    pub fn is_empty(&self) -> bool {
        self.id == EMPTY_BATCH_ID
    }

    /// Decodes each entry's payload into a typed view (see [`EntryView`]).
    pub fn views(&self) -> impl Iterator<Item = Result<EntryView, ViewError>> + '_ {
        self.entries.iter().map(EntryView::decode)
    }
}

/// A connection to one Canal server for one destination and client id.
///
/// Requests are strictly sequential (`&mut self`). Guarantees:
///
/// * every socket operation is bounded by [`ConnectorOptions::so_timeout`]
///   (a GET additionally by the wait it asks the server for);
/// * any error except [`ClientError::InvalidBatchId`] closes the connection,
///   so a stale or unsolicited reply can never be taken as the answer to a
///   later request; `connect()` again to continue;
/// * a call whose future is dropped after writing its request closes the
///   connection on the next call ([`ClientError::Interrupted`]);
/// * nothing here reconnects or retries on its own.
pub struct SimpleConnector {
    addr: String,
    destination: String,
    client_id: String,
    options: ConnectorOptions,
    conn: Option<Framed<Box<dyn crate::tls::Io>, PacketCodec>>,
    /// Set while a request is written but its reply not yet read.
    in_flight: bool,
}

impl fmt::Debug for SimpleConnector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SimpleConnector")
            .field("addr", &self.addr)
            .field("destination", &self.destination)
            .field("options", &self.options)
            .field("connected", &self.conn.is_some())
            .finish()
    }
}

impl SimpleConnector {
    /// A connector for `destination` on the server at `addr` (`host:port`).
    /// Nothing is opened until [`SimpleConnector::connect`].
    pub fn new(
        addr: impl Into<String>,
        destination: impl Into<String>,
        options: ConnectorOptions,
    ) -> Self {
        Self {
            addr: addr.into(),
            destination: destination.into(),
            client_id: options.client_id.to_string(),
            options,
            conn: None,
            in_flight: false,
        }
    }

    /// The server address given to [`SimpleConnector::new`].
    pub fn address(&self) -> &str {
        &self.addr
    }

    /// The destination this connector reads.
    pub fn destination(&self) -> &str {
        &self.destination
    }

    /// The options in force.
    pub fn options(&self) -> &ConnectorOptions {
        &self.options
    }

    /// True while a connection is open and authenticated.
    pub fn is_connected(&self) -> bool {
        self.conn.is_some()
    }

    /// Opens the connection and authenticates; then, if
    /// [`ConnectorOptions::rollback_on_connect`], sends `rollback(0)`.
    ///
    /// Reads the server's HANDSHAKE (must be version 1), sends ClientAuth
    /// with the scramble411 token of the password for the handshake's seed
    /// and `net_read/write_timeout` = idle timeout in ms, and reads the ACK.
    /// An ACK with `error_code > 0` yields [`ClientError::Auth`]. Any
    /// existing connection is dropped first (without rollback). On error the
    /// connector is left disconnected.
    pub async fn connect(&mut self) -> Result<(), ClientError> {
        self.close();
        let result = self.connect_inner().await;
        self.settle(result)
    }

    async fn connect_inner(&mut self) -> Result<(), ClientError> {
        let so_timeout = self.options.so_timeout;
        let stream = bounded(Op::Connect, so_timeout, TcpStream::connect(&self.addr))
            .await?
            .map_err(|source| ClientError::Io {
                op: Op::Connect,
                source,
            })?;
        // Small request frames: do not let Nagle delay them.
        stream.set_nodelay(true).map_err(|source| ClientError::Io {
            op: Op::Connect,
            source,
        })?;
        let stream: Box<dyn crate::tls::Io> = match &self.options.tls {
            None => Box::new(stream),
            Some(tls) => {
                let host = self
                    .addr
                    .parse::<canal_protocol::HostPort>()
                    .map(|a| a.host)
                    .unwrap_or_else(|_| self.addr.clone());
                bounded(
                    Op::Connect,
                    so_timeout,
                    crate::tls::connect(tls, &host, stream),
                )
                .await??
            }
        };
        let codec = PacketCodec::with_frame_codec(FrameCodec::with_max_frame_len(
            self.options.max_frame_len,
        ));
        self.conn = Some(Framed::new(stream, codec));
        self.in_flight = true;

        let handshake = self.read_packet(Op::Handshake, so_timeout).await?;
        let kind = packet_type(Op::Handshake, &handshake)?;
        if kind != PacketType::Handshake {
            return Err(protocol(
                Op::Handshake,
                ProtocolError::UnexpectedPacket {
                    expected: PacketType::Handshake,
                    actual: kind,
                },
            ));
        }
        if handshake.version != Some(PROTOCOL_VERSION) {
            return Err(protocol(
                Op::Handshake,
                ProtocolError::UnsupportedVersion(handshake.version),
            ));
        }
        let handshake: Handshake = body(Op::Handshake, &handshake)?;

        let idle_ms = duration_millis_i32(self.options.idle_timeout);
        let password = match &self.options.password {
            Some(plain) => scramble411_hex(plain, &handshake.seeds).into_bytes().into(),
            None => Default::default(),
        };
        let auth = ClientAuth {
            username: self.options.username.clone(),
            password,
            net_read_timeout: Some(idle_ms),
            net_write_timeout: Some(idle_ms),
            ..ClientAuth::default()
        };
        self.write_packet(
            Op::Auth,
            Packet::request(PacketType::Clientauthentication, &auth),
        )
        .await?;
        let reply = self.read_ack(Op::Auth).await?;
        if reply.is_error() {
            return Err(ClientError::Auth {
                code: reply.error_code.unwrap_or(0),
                message: reply.error_message,
            });
        }
        self.in_flight = false;
        tracing::debug!(
            addr = %self.addr,
            destination = %self.destination,
            client_id = %self.client_id,
            "canal connection authenticated"
        );
        if self.options.rollback_on_connect {
            self.rollback_inner(0).await?;
        }
        Ok(())
    }

    /// Subscribes this client to the destination with `filter` (a Canal
    /// table regex; `None` sends `""`, which keeps the server's filter), and
    /// waits for the ACK. An error ACK yields [`ClientError::Server`].
    ///
    /// Note that on a Canal 1.1.x server a non-blank filter replaces the
    /// destination's table filter for every client.
    pub async fn subscribe(&mut self, filter: Option<&str>) -> Result<(), ClientError> {
        let sub = Sub {
            destination: self.destination.clone(),
            client_id: self.client_id.clone(),
            filter: filter.unwrap_or_default().to_owned(),
        };
        let result = self
            .request_ack(
                Op::Subscribe,
                Packet::request(PacketType::Subscription, &sub),
            )
            .await;
        self.settle(result)
    }

    /// Removes this client's subscription (and, on the server, its cursor)
    /// and waits for the ACK. An error ACK yields [`ClientError::Server`].
    pub async fn unsubscribe(&mut self) -> Result<(), ClientError> {
        let unsub = Unsub {
            destination: self.destination.clone(),
            client_id: self.client_id.clone(),
            filter: String::new(),
        };
        let result = self
            .request_ack(
                Op::Unsubscribe,
                Packet::request(PacketType::Unsubscription, &unsub),
            )
            .await;
        self.settle(result)
    }

    /// Fetches the next batch without acking it.
    ///
    /// Sends `Get{fetch_size, timeout (ms), unit = ms, auto_ack = false}`.
    /// `batch_size ≤ 0` sends 1000, like the Java client (the server's
    /// batch limit is `fetch_size` KiB in its default MEMSIZE mode).
    /// `timeout`: `None` or zero asks for whatever is available now
    /// (`timeout = -1`); `Some(t)` lets the server wait up to `t` (rounded
    /// up to whole ms) for a full batch and then return what it has. Canal's
    /// unbounded blocking GET is deliberately not reachable.
    ///
    /// The reply must be MESSAGES; an ACK (even with code 0) is how a server
    /// reports that a previous ack or rollback failed and yields
    /// [`ClientError::Server`]. The returned batch must later be acked or
    /// rolled back.
    pub async fn get_without_ack(
        &mut self,
        batch_size: i32,
        timeout: Option<Duration>,
    ) -> Result<Message, ClientError> {
        let result = self.get_inner(batch_size, timeout).await;
        self.settle(result)
    }

    async fn get_inner(
        &mut self,
        batch_size: i32,
        timeout: Option<Duration>,
    ) -> Result<Message, ClientError> {
        let wait = timeout.filter(|t| !t.is_zero());
        let get = Get {
            destination: self.destination.clone(),
            client_id: self.client_id.clone(),
            fetch_size: if batch_size <= 0 {
                DEFAULT_FETCH_SIZE
            } else {
                batch_size
            },
            timeout: Some(wait.map_or(-1, duration_millis_ceil_i64)),
            unit: Some(UNIT_MILLIS),
            auto_ack: Some(false),
        };
        self.begin()?;
        self.write_packet(Op::Get, Packet::request(PacketType::Get, &get))
            .await?;
        let bound = self
            .options
            .so_timeout
            .saturating_add(wait.unwrap_or_default());
        let reply = self.read_packet(Op::Get, bound).await?;
        let message = match packet_type(Op::Get, &reply)? {
            PacketType::Messages => {
                check_compression(Op::Get, &reply)?;
                let messages: Messages = body(Op::Get, &reply)?;
                let entries = messages
                    .messages
                    .into_iter()
                    .map(|bytes| {
                        Entry::decode(bytes).map_err(|source| ClientError::Decode {
                            op: Op::Get,
                            what: "Entry",
                            source,
                        })
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                Message {
                    id: messages.batch_id,
                    entries,
                }
            }
            PacketType::Ack => {
                let ack: Ack = body(Op::Get, &reply)?;
                return Err(ClientError::Server {
                    op: Op::Get,
                    code: ack.error_code.unwrap_or(0),
                    message: ack.error_message,
                });
            }
            other => {
                return Err(protocol(
                    Op::Get,
                    ProtocolError::UnexpectedPacket {
                        expected: PacketType::Messages,
                        actual: other,
                    },
                ))
            }
        };
        self.in_flight = false;
        Ok(message)
    }

    /// [`SimpleConnector::get_without_ack`] followed by
    /// [`SimpleConnector::ack`] of the returned batch: at-most-once
    /// delivery, since the batch is acked before the caller sees it.
    pub async fn get(
        &mut self,
        batch_size: i32,
        timeout: Option<Duration>,
    ) -> Result<Message, ClientError> {
        let message = self.get_without_ack(batch_size, timeout).await?;
        self.ack(message.id).await?;
        Ok(message)
    }

    /// Acks `batch_id`: the server may forget the batch and advance this
    /// client's cursor. Batches must be acked in the order they were fetched.
    ///
    /// Only writes (a Canal server sends no reply on success; a failure
    /// shows up as the reply to the next GET). `ack(-1)` (the empty batch)
    /// sends nothing and succeeds; `ack(0)` is refused locally with
    /// [`ClientError::InvalidBatchId`].
    pub async fn ack(&mut self, batch_id: i64) -> Result<(), ClientError> {
        if batch_id == EMPTY_BATCH_ID {
            return Ok(());
        }
        if batch_id == 0 {
            return Err(ClientError::InvalidBatchId(batch_id));
        }
        let ack = ClientAck {
            destination: self.destination.clone(),
            client_id: self.client_id.clone(),
            batch_id,
        };
        let result = self
            .send_only(Op::Ack, Packet::request(PacketType::Clientack, &ack))
            .await;
        self.settle(result)
    }

    /// Rolls back `batch_id`, or every un-acked batch when `batch_id` is 0:
    /// the next GET redelivers from the last acked position, under a new
    /// batch id. Only writes; no reply is read.
    pub async fn rollback(&mut self, batch_id: i64) -> Result<(), ClientError> {
        let result = self.rollback_inner(batch_id).await;
        self.settle(result)
    }

    async fn rollback_inner(&mut self, batch_id: i64) -> Result<(), ClientError> {
        let rollback = ClientRollback {
            destination: self.destination.clone(),
            client_id: self.client_id.clone(),
            batch_id,
        };
        self.send_only(
            Op::Rollback,
            Packet::request(PacketType::Clientrollback, &rollback),
        )
        .await
    }

    /// Sends `rollback(0)` (so un-acked batches are redelivered to the next
    /// session) and closes the connection. The connection is closed even if
    /// the rollback fails; the rollback's error is returned. Does nothing
    /// when not connected.
    pub async fn disconnect(&mut self) -> Result<(), ClientError> {
        if self.conn.is_none() {
            return Ok(());
        }
        let result = self.rollback_inner(0).await;
        if let Some(mut conn) = self.conn.take() {
            // Best effort: flush and send FIN within so_timeout.
            let _ =
                tokio::time::timeout(self.options.so_timeout, SinkExt::<Packet>::close(&mut conn))
                    .await;
        }
        self.in_flight = false;
        tracing::debug!(destination = %self.destination, "canal connection closed");
        result
    }

    /// Drops the connection without telling the server.
    fn close(&mut self) {
        self.conn = None;
        self.in_flight = false;
    }

    /// Closes the connection when `result` is an error that requires it.
    fn settle<T>(&mut self, result: Result<T, ClientError>) -> Result<T, ClientError> {
        if let Err(err) = &result {
            if err.closed_connection() && self.conn.is_some() {
                tracing::debug!(
                    destination = %self.destination,
                    error = %err,
                    "closing canal connection after error"
                );
                self.close();
            }
        }
        result
    }

    /// Fails if a previous request was abandoned mid-flight or there is no
    /// connection; otherwise marks a request as in flight.
    fn begin(&mut self) -> Result<(), ClientError> {
        if self.in_flight {
            self.close();
            return Err(ClientError::Interrupted);
        }
        if self.conn.is_none() {
            return Err(ClientError::NotConnected);
        }
        self.in_flight = true;
        Ok(())
    }

    async fn request_ack(&mut self, op: Op, packet: Packet) -> Result<(), ClientError> {
        self.begin()?;
        self.write_packet(op, packet).await?;
        let ack = self.read_ack(op).await?;
        if ack.is_error() {
            return Err(ClientError::Server {
                op,
                code: ack.error_code.unwrap_or(0),
                message: ack.error_message,
            });
        }
        self.in_flight = false;
        Ok(())
    }

    async fn send_only(&mut self, op: Op, packet: Packet) -> Result<(), ClientError> {
        self.begin()?;
        self.write_packet(op, packet).await?;
        self.in_flight = false;
        Ok(())
    }

    async fn read_ack(&mut self, op: Op) -> Result<Ack, ClientError> {
        let packet = self.read_packet(op, self.options.so_timeout).await?;
        match packet_type(op, &packet)? {
            PacketType::Ack => {
                check_compression(op, &packet)?;
                body(op, &packet)
            }
            other => Err(protocol(
                op,
                ProtocolError::UnexpectedPacket {
                    expected: PacketType::Ack,
                    actual: other,
                },
            )),
        }
    }

    async fn write_packet(&mut self, op: Op, packet: Packet) -> Result<(), ClientError> {
        let so_timeout = self.options.so_timeout;
        let conn = self.conn.as_mut().ok_or(ClientError::NotConnected)?;
        bounded(op, so_timeout, conn.send(packet))
            .await?
            .map_err(|err| packet_error(op, err))
    }

    async fn read_packet(&mut self, op: Op, bound: Duration) -> Result<Packet, ClientError> {
        let conn = self.conn.as_mut().ok_or(ClientError::NotConnected)?;
        match bounded(op, bound, conn.next()).await? {
            Some(Ok(packet)) => Ok(packet),
            Some(Err(err)) => Err(packet_error(op, err)),
            None => Err(ClientError::ConnectionClosed { op }),
        }
    }
}

/// Runs `fut` with a deadline, turning expiry into [`ClientError::Timeout`].
async fn bounded<F: Future>(op: Op, after: Duration, fut: F) -> Result<F::Output, ClientError> {
    tokio::time::timeout(after, fut)
        .await
        .map_err(|_| ClientError::Timeout { op, after })
}

fn protocol(op: Op, source: ProtocolError) -> ClientError {
    ClientError::Protocol { op, source }
}

fn packet_type(op: Op, packet: &Packet) -> Result<PacketType, ClientError> {
    PacketType::try_from(packet.r#type)
        .map_err(|_| protocol(op, ProtocolError::UnknownPacketType(packet.r#type)))
}

fn check_compression(op: Op, packet: &Packet) -> Result<(), ClientError> {
    packet.check_compression().map_err(|_| {
        protocol(
            op,
            ProtocolError::UnsupportedCompression(packet.compression.unwrap_or_default()),
        )
    })
}

fn body<M: prost::Message + Default>(op: Op, packet: &Packet) -> Result<M, ClientError> {
    packet.decode_body().map_err(|err| packet_error(op, err))
}

fn packet_error(op: Op, err: PacketError) -> ClientError {
    match err {
        PacketError::Frame(FrameError::Io(source)) => ClientError::Io { op, source },
        PacketError::Frame(source) => ClientError::Frame { op, source },
        PacketError::Decode { message, source } => ClientError::Decode {
            op,
            what: message,
            source,
        },
        PacketError::UnknownPacketType(raw) => protocol(op, ProtocolError::UnknownPacketType(raw)),
        PacketError::UnexpectedPacketType { expected, actual } => {
            protocol(op, ProtocolError::UnexpectedPacket { expected, actual })
        }
        PacketError::UnknownCompression(raw) => {
            protocol(op, ProtocolError::UnsupportedCompression(raw))
        }
        PacketError::UnsupportedCompression(kind) => {
            protocol(op, ProtocolError::UnsupportedCompression(kind as i32))
        }
        // PacketError is non-exhaustive; report anything new as invalid
        // data (it still closes the connection).
        other => ClientError::Io {
            op,
            source: std::io::Error::new(std::io::ErrorKind::InvalidData, other.to_string()),
        },
    }
}

fn duration_millis_i32(d: Duration) -> i32 {
    i32::try_from(d.as_millis()).unwrap_or(i32::MAX)
}

/// Whole milliseconds, rounded up so a sub-millisecond wait does not become
/// 0 (which Canal reads as "block without limit").
fn duration_millis_ceil_i64(d: Duration) -> i64 {
    let ms = d.as_millis() + u128::from(d.subsec_nanos() % 1_000_000 != 0);
    i64::try_from(ms).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn millis_rounding() {
        assert_eq!(duration_millis_ceil_i64(Duration::from_micros(1)), 1);
        assert_eq!(duration_millis_ceil_i64(Duration::from_millis(1000)), 1000);
        assert_eq!(duration_millis_ceil_i64(Duration::from_micros(1001)), 2);
        assert_eq!(duration_millis_ceil_i64(Duration::MAX), i64::MAX);
        assert_eq!(duration_millis_i32(Duration::from_secs(3600)), 3_600_000);
        assert_eq!(duration_millis_i32(Duration::MAX), i32::MAX);
    }

    #[test]
    fn options_debug_hides_password() {
        let options = ConnectorOptions {
            password: Some("secret".into()),
            ..Default::default()
        };
        let text = format!("{options:?}");
        assert!(!text.contains("secret"), "{text}");
        assert!(text.contains("<redacted>"), "{text}");
    }
}
