//! One client connection speaking Canal's protocol: handshake, authentication, then
//! Sub/Unsub/Get/ClientAck/ClientRollback.
//!
//! [`run`] drives the session: `auth` first, then one request at a time, each routed by its
//! packet type to the file of its command (`subscribe`, `unsubscribe`, `get`, `ack`,
//! `rollback`). The socket and its buffers belong to `connection`; the bytes' layout to
//! canal-protocol.
//!
//! Differences from Canal, on purpose (reference §1.13): exactly one reply frame per request that
//! expects one and never an unsolicited frame — a failed ack/rollback is reported as the reply to
//! the client's next request; error messages are short (no stack traces); a client's filter
//! applies only to that client.

mod ack;
mod auth;
mod connection;
mod get;
mod rollback;
mod subscribe;
mod unsubscribe;

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use canal_protocol::frame::PacketError;
use canal_protocol::packet::{Packet, PacketType};
use canal_protocol::position::ClientIdentity;
use prost::Message;
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info};

use self::connection::{Connection, ReadError};
use crate::instance::Instance;
use crate::server::ServerContext;

pub use self::get::get_wait;

/// Runs one connection until the client leaves, idles out, sends garbage or the server stops.
pub async fn run(
    stream: TcpStream,
    peer: SocketAddr,
    ctx: Arc<ServerContext>,
    shutdown: CancellationToken,
    permit: Option<tokio::sync::OwnedSemaphorePermit>,
) {
    let mut conn = match &ctx.tls {
        None => Connection::new(stream, ctx.max_frame_len),
        // Over the connection limit a TLS client just sees the connection close: an error frame
        // would need a handshake first.
        Some(_) if permit.is_none() => {
            metrics::counter!("canal_server_connections_refused_total").increment(1);
            return;
        }
        Some(acceptor) => {
            match tokio::time::timeout(auth::AUTH_TIMEOUT, acceptor.accept(stream)).await {
                Ok(Ok(tls)) => Connection::tls(tls, ctx.max_frame_len),
                Ok(Err(e)) => {
                    metrics::counter!("canal_server_tls_handshake_failures_total").increment(1);
                    debug!(error = %e, "TLS handshake failed");
                    return;
                }
                Err(_) => {
                    metrics::counter!("canal_server_tls_handshake_failures_total").increment(1);
                    return;
                }
            }
        }
    };
    // A connection over the limits gets an error frame where the handshake would be (as MySQL
    // answers "Too many connections") and is closed.
    let refuse = |what: &str| {
        format!(
            "too many {what} (server.max_connections = {}); try again later",
            ctx.max_connections
        )
    };
    let Some(_permit) = permit else {
        metrics::counter!("canal_server_connections_refused_total").increment(1);
        let _ = conn
            .write_packet(&Packet::ack_error(400, refuse("connections")))
            .await;
        return;
    };
    let Ok(authenticating) = ctx.unauthenticated.clone().try_acquire_owned() else {
        metrics::counter!("canal_server_connections_refused_total").increment(1);
        let _ = conn
            .write_packet(&Packet::ack_error(
                400,
                refuse("connections waiting to authenticate"),
            ))
            .await;
        return;
    };
    let authenticated = auth::authenticate(&mut conn, &ctx, peer, &shutdown).await;
    drop(authenticating);
    let Some(idle) = authenticated else {
        return;
    };
    let mut session = Session {
        ctx,
        pending_error: None,
        handed: VecDeque::new(),
    };
    loop {
        let read = tokio::select! {
            _ = shutdown.cancelled() => return,
            r = conn.read_packet(idle) => r,
        };
        let packet = match read {
            Ok(Some(packet)) => packet,
            Ok(None) => return,
            Err(ReadError::TimedOut) => {
                debug!(%peer, ?idle, "idle timeout; closing");
                return;
            }
            Err(e) => {
                conn.report(&e).await;
                return;
            }
        };
        if session.handle(packet, &mut conn, &shutdown).await.is_err() {
            return;
        }
    }
}

/// What one authenticated connection remembers between requests.
struct Session {
    ctx: Arc<ServerContext>,
    /// A failed ack/rollback, reported as the reply to the next request.
    pending_error: Option<(i32, String)>,
    /// Batches this connection handed out (newest last, at most [`HANDED_KEPT`]).
    handed: VecDeque<(Arc<Instance>, i16, i64)>,
}

/// How many handed-out batches a session remembers for [`Session`]'s drop.
const HANDED_KEPT: usize = 64;

impl Drop for Session {
    /// A connection that ends with batches it handed out still un-acked rolls them back: they may
    /// never have reached the client (a GET answered after the client left, a reply lost with the
    /// connection), and a reconnecting client may already have sent its `rollback(0)`, so without
    /// this they would stay handed out and the client would wait for rows that never come.
    fn drop(&mut self) {
        for (inst, client_id, batch_id) in self.handed.drain(..) {
            if inst.rollback_if_outstanding(client_id, batch_id) {
                info!(
                    client_id,
                    batch_id,
                    "connection ended with the batch un-acked; rolled back for redelivery"
                );
            }
        }
    }
}

/// What a command sends back.
enum Reply {
    /// Nothing (ClientAck, ClientRollback).
    None,
    /// One packet.
    Packet(Packet),
    /// A raw MESSAGES frame of pre-serialized entries.
    Messages { id: i64, entries: Vec<Bytes> },
}

/// A command that succeeded: the destination it concerned (empty if none) and its reply.
struct Answer {
    destination: String,
    reply: Reply,
}

impl Answer {
    fn new(destination: impl Into<String>, reply: Reply) -> Self {
        Answer {
            destination: destination.into(),
            reply,
        }
    }
}

/// A command that failed: the error ACK's code and message, and the destination it concerned
/// (empty if none).
struct Refusal {
    destination: String,
    code: i32,
    message: String,
}

impl Refusal {
    fn new(destination: impl Into<String>, code: i32, message: impl Into<String>) -> Self {
        Refusal {
            destination: destination.into(),
            code,
            message: message.into(),
        }
    }
}

/// What every command returns.
type Outcome = Result<Answer, Refusal>;

/// Decodes a request body, refusing a malformed one with code 400.
fn request_body<M: Message + Default>(packet: &Packet) -> Result<M, Refusal> {
    M::decode(packet.body.clone())
        .map_err(|e| Refusal::new("", 400, format!("malformed request body: {e}")))
}

impl Session {
    /// Runs one request and sends its reply (or keeps a failed ack/rollback for the next reply);
    /// fails only when writing to the client fails.
    async fn handle(
        &mut self,
        packet: Packet,
        conn: &mut Connection,
        shutdown: &CancellationToken,
    ) -> std::io::Result<()> {
        let started = Instant::now();
        let kind = packet.packet_type();
        let name = kind.as_ref().map(|k| k.as_str_name()).unwrap_or("UNKNOWN");
        let expects_reply = !matches!(kind, Ok(PacketType::Clientack | PacketType::Clientrollback));
        if expects_reply {
            if let Some((code, msg)) = self.pending_error.take() {
                metrics::counter!("canal_instance_client_request_error", "errorCode" => code.to_string()).increment(1);
                conn.write_packet(&Packet::ack_error(code, msg)).await?;
                return Ok(());
            }
        }
        let Answer { destination, reply } = match self.dispatch(kind, &packet, shutdown).await {
            Ok(answer) => answer,
            Err(Refusal {
                destination: dest,
                code,
                message: msg,
            }) => {
                metrics::counter!("canal_instance_client_request_error", "destination" => dest.clone(), "errorCode" => code.to_string())
                    .increment(1);
                if expects_reply {
                    conn.write_packet(&Packet::ack_error(code, msg)).await?;
                } else {
                    debug!(destination = %dest, code, %msg, "ack/rollback failed; reporting with the next reply");
                    self.pending_error = Some((code, msg));
                }
                return Ok(());
            }
        };
        let sent = match reply {
            Reply::None => 0,
            Reply::Packet(p) => conn.write_packet(&p).await?,
            Reply::Messages { id, entries } => conn.write_messages(id, &entries).await?,
        };
        if !destination.is_empty() {
            metrics::counter!("canal_instance_client_packets", "destination" => destination.clone(), "packetType" => name)
                .increment(1);
            metrics::counter!("canal_instance_client_bytes", "destination" => destination.clone())
                .increment((sent.max(4)) as u64);
            metrics::histogram!("canal_instance_client_request_latency", "destination" => destination)
                .record(started.elapsed().as_secs_f64() * 1000.0);
        }
        Ok(())
    }

    /// Routes a request to its command.
    async fn dispatch(
        &mut self,
        kind: Result<PacketType, PacketError>,
        packet: &Packet,
        shutdown: &CancellationToken,
    ) -> Outcome {
        match kind {
            Ok(PacketType::Subscription) => subscribe::apply(self, packet).await,
            Ok(PacketType::Unsubscription) => unsubscribe::apply(self, packet).await,
            Ok(PacketType::Get) => get::apply(self, packet, shutdown).await,
            Ok(PacketType::Clientack) => ack::apply(self, packet).await,
            Ok(PacketType::Clientrollback) => rollback::apply(self, packet).await,
            Ok(other) => Err(Refusal::new(
                "",
                400,
                format!("packet type: {} is NOT supported!", other.as_str_name()),
            )),
            Err(e) => Err(Refusal::new(
                "",
                400,
                format!("packet type: {e} is NOT supported!"),
            )),
        }
    }

    /// The instance serving `destination` here and the numeric client id, or the refusal Canal
    /// sends when either is missing (`what` names the request in the message).
    fn identity(
        &self,
        destination: &str,
        client_id: &str,
        what: &str,
    ) -> Result<(Arc<Instance>, i16), Refusal> {
        if destination.is_empty() || client_id.is_empty() {
            return Err(Refusal::new(
                destination,
                401,
                format!("destination or clientId is null. {what}"),
            ));
        }
        let inst = self.ctx.instance(destination).ok_or_else(|| {
            let msg = match self.ctx.roles().get(destination) {
                Some((role, Some(addr))) => format!(
                    "destination:{destination} is not active on this server ({role}); it runs on {addr}"
                ),
                Some((role, None)) => {
                    format!("destination:{destination} is not active on this server ({role})")
                }
                None => format!("destination:{destination} should start first"),
            };
            Refusal::new(destination, 400, msg)
        })?;
        let id = ClientIdentity::parse_client_id(client_id)
            .map_err(|e| Refusal::new(destination, 400, e.to_string()))?;
        Ok((inst, id))
    }
}
