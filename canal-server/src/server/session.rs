//! One client connection speaking Canal's protocol: handshake, authentication, then
//! Sub/Unsub/Get/ClientAck/ClientRollback.
//!
//! Differences from Canal, on purpose (reference §1.13): exactly one reply frame per request that
//! expects one and never an unsolicited frame — a failed ack/rollback is reported as the reply to
//! the client's next request; error messages are short (no stack traces); a client's filter
//! applies only to that client.

use std::io::IoSlice;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use canal_protocol::frame::{decode_packet, encode_packet, FrameCodec};
use canal_protocol::packet::{
    ClientAck, ClientAuth, ClientRollback, Get, Packet, PacketType, Sub, Unsub,
};
use canal_protocol::position::ClientIdentity;
use futures::StreamExt;
use prost::Message;
use tokio::io::{AsyncWriteExt, BufWriter};
use tokio::net::tcp::OwnedWriteHalf;
use tokio::net::TcpStream;
use tokio_util::codec::FramedRead;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::server::ServerContext;
use crate::store::GetWait;

/// Idle limit when the client sends no timeout (Canal: 1 hour).
const DEFAULT_IDLE: Duration = Duration::from_secs(3600);
/// A connection must authenticate within this time.
const AUTH_TIMEOUT: Duration = Duration::from_secs(60);

struct Writer {
    inner: BufWriter<OwnedWriteHalf>,
    buf: BytesMut,
    /// Where the parts of a MESSAGES frame come from (see [`plan_raw_messages`]).
    segments: Vec<Segment>,
}

/// Entries up to this size are copied into the frame buffer; larger ones are written from the
/// store's buffers (`writev`), without a copy.
const INLINE_ENTRY_MAX: usize = 4096;

/// One part of a MESSAGES frame.
#[derive(Debug, Clone, PartialEq)]
enum Segment {
    /// A range of the writer's buffer (envelope, length prefixes, small entries).
    Buf(std::ops::Range<usize>),
    /// `entries[i]` as it is.
    Entry(usize),
}

/// Lays out the MESSAGES frame of `entries` exactly as
/// [`canal_protocol::encode_raw_messages`] writes it, but only copies the envelope,
/// the length prefixes and small entries into `buf`; `segments` says in which order to write
/// the ranges of `buf` and the large entries.
fn plan_raw_messages(
    batch_id: i64,
    entries: &[Bytes],
    buf: &mut BytesMut,
    segments: &mut Vec<Segment>,
) -> std::io::Result<()> {
    use bytes::BufMut;
    use prost::encoding::{encode_key, encode_varint, encoded_len_varint, WireType};

    let mut body_len = 0usize;
    if batch_id != 0 {
        body_len += 1 + encoded_len_varint(batch_id as u64);
    }
    for e in entries {
        body_len += 1 + encoded_len_varint(e.len() as u64) + e.len();
    }
    // field 3 (type) = MESSAGES, then field 5 (body) if non-empty.
    let mut packet_len = 2;
    if body_len > 0 {
        packet_len += 1 + encoded_len_varint(body_len as u64) + body_len;
    }
    let len32 = i32::try_from(packet_len)
        .map_err(|_| std::io::Error::other(format!("frame of {packet_len} bytes is too large")))?;
    buf.put_slice(&len32.to_be_bytes());
    encode_key(3, WireType::Varint, buf);
    encode_varint(PacketType::Messages as u64, buf);
    let mut start = 0;
    if body_len > 0 {
        encode_key(5, WireType::LengthDelimited, buf);
        encode_varint(body_len as u64, buf);
        if batch_id != 0 {
            encode_key(1, WireType::Varint, buf);
            encode_varint(batch_id as u64, buf);
        }
        for (i, e) in entries.iter().enumerate() {
            encode_key(2, WireType::LengthDelimited, buf);
            encode_varint(e.len() as u64, buf);
            if e.len() <= INLINE_ENTRY_MAX {
                buf.put_slice(e);
            } else {
                segments.push(Segment::Buf(start..buf.len()));
                segments.push(Segment::Entry(i));
                start = buf.len();
            }
        }
    }
    if start < buf.len() {
        segments.push(Segment::Buf(start..buf.len()));
    }
    Ok(())
}

impl Writer {
    async fn packet(&mut self, p: &Packet) -> std::io::Result<usize> {
        self.buf.clear();
        encode_packet(p, &mut self.buf).map_err(std::io::Error::other)?;
        self.flush_buf().await
    }

    /// One MESSAGES frame; large entries go from the store's buffers to the socket.
    async fn raw_messages(&mut self, batch_id: i64, entries: &[Bytes]) -> std::io::Result<usize> {
        self.buf.clear();
        self.segments.clear();
        plan_raw_messages(batch_id, entries, &mut self.buf, &mut self.segments)?;
        if !self.segments.iter().any(|s| matches!(s, Segment::Entry(_))) {
            return self.flush_buf().await;
        }
        let Writer {
            inner,
            buf,
            segments,
        } = self;
        let mut slices: Vec<IoSlice<'_>> = segments
            .iter()
            .map(|s| match s {
                Segment::Buf(r) => IoSlice::new(&buf[r.clone()]),
                Segment::Entry(i) => IoSlice::new(&entries[*i]),
            })
            .collect();
        let total: usize = slices.iter().map(|s| s.len()).sum();
        inner.flush().await?;
        let socket = inner.get_mut();
        let mut rest = &mut slices[..];
        while !rest.is_empty() {
            let n = socket.write_vectored(rest).await?;
            if n == 0 {
                return Err(std::io::ErrorKind::WriteZero.into());
            }
            IoSlice::advance_slices(&mut rest, n);
        }
        self.shrink();
        Ok(total)
    }

    async fn flush_buf(&mut self) -> std::io::Result<usize> {
        self.inner.write_all(&self.buf).await?;
        self.inner.flush().await?;
        let n = self.buf.len();
        self.shrink();
        Ok(n)
    }

    fn shrink(&mut self) {
        if self.buf.capacity() > 1 << 20 {
            self.buf = BytesMut::new();
        }
        if self.segments.capacity() > 4096 {
            self.segments = Vec::new();
        }
    }
}

/// Converts Canal's GET `timeout`/`unit` into a wait (reference §1.7).
pub fn get_wait(timeout: Option<i64>, unit: Option<i32>) -> GetWait {
    let t = timeout.unwrap_or(0);
    if t == -1 {
        return GetWait::NonBlocking;
    }
    if t <= 0 {
        return GetWait::UntilFull;
    }
    let t = t as u64;
    let d = match unit.unwrap_or(0) {
        0 => Duration::from_nanos(t),
        1 => Duration::from_micros(t),
        3 => Duration::from_secs(t),
        4 => Duration::from_secs(t.saturating_mul(60)),
        5 => Duration::from_secs(t.saturating_mul(3600)),
        6 => Duration::from_secs(t.saturating_mul(86400)),
        _ => Duration::from_millis(t),
    };
    GetWait::Up(d)
}

/// Runs one connection until the client leaves, idles out, sends garbage or the server stops.
pub async fn run(
    stream: TcpStream,
    peer: std::net::SocketAddr,
    ctx: Arc<ServerContext>,
    shutdown: CancellationToken,
) {
    let _ = stream.set_nodelay(true);
    let (r, w) = stream.into_split();
    let mut reader = FramedRead::new(r, FrameCodec::with_max_frame_len(ctx.max_frame_len));
    let mut writer = Writer {
        inner: BufWriter::new(w),
        buf: BytesMut::with_capacity(4096),
        segments: Vec::new(),
    };
    let seed: [u8; 8] = rand::random();
    if writer
        .packet(&Packet::handshake(Bytes::copy_from_slice(&seed)))
        .await
        .is_err()
    {
        return;
    }
    // Authentication: every frame is read as ClientAuth until one succeeds (as Canal does).
    let idle = loop {
        let frame = tokio::select! {
            _ = shutdown.cancelled() => return,
            f = tokio::time::timeout(AUTH_TIMEOUT, reader.next()) => f,
        };
        let frame = match frame {
            Err(_) => {
                debug!(%peer, "no authentication in time; closing");
                return;
            }
            Ok(None) => return,
            Ok(Some(Err(e))) => {
                let _ = writer
                    .packet(&Packet::ack_error(400, format!("bad frame: {e}")))
                    .await;
                return;
            }
            Ok(Some(Ok(f))) => f,
        };
        let auth = decode_packet(frame).and_then(|p| {
            ClientAuth::decode(p.body.clone()).map_err(|source| {
                canal_protocol::frame::PacketError::Decode {
                    message: "ClientAuth",
                    source,
                }
            })
        });
        let auth = match auth {
            Ok(a) => a,
            Err(e) => {
                let _ = writer
                    .packet(&Packet::ack_error(400, format!("malformed packet: {e}")))
                    .await;
                return;
            }
        };
        match ctx.auth.authenticate(&auth.username, &auth.password, &seed) {
            Ok(()) => {
                if writer.packet(&Packet::ack_ok()).await.is_err() {
                    return;
                }
                let ms = auth.net_read_timeout.unwrap_or(0);
                break if ms > 0 {
                    Duration::from_millis(ms as u64)
                } else {
                    DEFAULT_IDLE
                };
            }
            Err(e) => {
                info!(%peer, user = %auth.username, reason = %e, "authentication failed");
                metrics::counter!("canal_server_auth_failures_total").increment(1);
                if writer
                    .packet(&Packet::ack_error(
                        400,
                        format!("auth failed for user:{}", auth.username),
                    ))
                    .await
                    .is_err()
                {
                    return;
                }
            }
        }
    };
    let mut session = Session {
        ctx,
        pending_error: None,
        handed: std::collections::VecDeque::new(),
    };
    loop {
        let frame = tokio::select! {
            _ = shutdown.cancelled() => return,
            f = tokio::time::timeout(idle, reader.next()) => f,
        };
        let frame = match frame {
            Err(_) => {
                debug!(%peer, ?idle, "idle timeout; closing");
                return;
            }
            Ok(None) => return,
            Ok(Some(Err(e))) => {
                let _ = writer
                    .packet(&Packet::ack_error(400, format!("bad frame: {e}")))
                    .await;
                return;
            }
            Ok(Some(Ok(f))) => f,
        };
        let packet = match decode_packet(frame) {
            Ok(p) => p,
            Err(e) => {
                let _ = writer
                    .packet(&Packet::ack_error(400, format!("malformed packet: {e}")))
                    .await;
                return;
            }
        };
        if session
            .handle(packet, &mut writer, &shutdown)
            .await
            .is_err()
        {
            return;
        }
    }
}

struct Session {
    ctx: Arc<ServerContext>,
    /// A failed ack/rollback, reported as the reply to the next request.
    pending_error: Option<(i32, String)>,
    /// Batches this connection handed out (newest last, at most [`HANDED_KEPT`]).
    handed: std::collections::VecDeque<(crate::store::Store, i16, i64)>,
}

/// How many handed-out batches a session remembers for [`Session`]'s drop.
const HANDED_KEPT: usize = 64;

impl Drop for Session {
    /// A connection that ends with batches it handed out still un-acked rolls them back: they may
    /// never have reached the client (a GET answered after the client left, a reply lost with the
    /// connection), and a reconnecting client may already have sent its `rollback(0)`, so without
    /// this they would stay handed out and the client would wait for rows that never come.
    fn drop(&mut self) {
        for (store, client_id, batch_id) in self.handed.drain(..) {
            if store.rollback_if_outstanding(client_id, batch_id) {
                info!(
                    client_id,
                    batch_id,
                    "connection ended with the batch un-acked; rolled back for redelivery"
                );
            }
        }
    }
}

enum Reply {
    None,
    Packet(Packet),
    Messages { id: i64, entries: Vec<Bytes> },
}

impl Session {
    async fn handle(
        &mut self,
        packet: Packet,
        w: &mut Writer,
        shutdown: &CancellationToken,
    ) -> std::io::Result<()> {
        let started = Instant::now();
        let kind = packet.packet_type();
        let name = kind.as_ref().map(|k| k.as_str_name()).unwrap_or("UNKNOWN");
        let expects_reply = !matches!(kind, Ok(PacketType::Clientack | PacketType::Clientrollback));
        if expects_reply {
            if let Some((code, msg)) = self.pending_error.take() {
                metrics::counter!("canal_instance_client_request_error", "errorCode" => code.to_string()).increment(1);
                w.packet(&Packet::ack_error(code, msg)).await?;
                return Ok(());
            }
        }
        let (destination, reply) = match self.dispatch(kind, &packet, shutdown).await {
            Ok(r) => r,
            Err((dest, code, msg)) => {
                metrics::counter!("canal_instance_client_request_error", "destination" => dest.clone(), "errorCode" => code.to_string())
                    .increment(1);
                if expects_reply {
                    w.packet(&Packet::ack_error(code, msg)).await?;
                } else {
                    debug!(destination = %dest, code, %msg, "ack/rollback failed; reporting with the next reply");
                    self.pending_error = Some((code, msg));
                }
                return Ok(());
            }
        };
        let sent = match reply {
            Reply::None => 0,
            Reply::Packet(p) => w.packet(&p).await?,
            Reply::Messages { id, entries, .. } => w.raw_messages(id, &entries).await?,
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

    fn identity(
        &self,
        destination: &str,
        client_id: &str,
        what: &str,
    ) -> Result<(Arc<crate::instance::Instance>, i16), (String, i32, String)> {
        if destination.is_empty() || client_id.is_empty() {
            return Err((
                destination.to_string(),
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
            (destination.to_string(), 400, msg)
        })?;
        let id = ClientIdentity::parse_client_id(client_id)
            .map_err(|e| (destination.to_string(), 400, e.to_string()))?;
        Ok((inst, id))
    }

    async fn dispatch(
        &mut self,
        kind: Result<PacketType, canal_protocol::frame::PacketError>,
        packet: &Packet,
        shutdown: &CancellationToken,
    ) -> Result<(String, Reply), (String, i32, String)> {
        let decode_err =
            |e: prost::DecodeError| (String::new(), 400, format!("malformed request body: {e}"));
        match kind {
            Ok(PacketType::Subscription) => {
                let sub = Sub::decode(packet.body.clone()).map_err(decode_err)?;
                let (inst, id) = self.identity(&sub.destination, &sub.client_id, "Sub")?;
                inst.store()
                    .subscribe(id, &sub.filter, None)
                    .map_err(|e| (sub.destination.clone(), 400, e.to_string()))?;
                if let Err(e) = inst.flush().await {
                    warn!(destination = %sub.destination, error = %e, "could not persist the subscription");
                }
                info!(destination = %sub.destination, client_id = id, filter = %sub.filter, "client subscribed");
                Ok((sub.destination, Reply::Packet(Packet::ack_ok())))
            }
            Ok(PacketType::Unsubscription) => {
                let un = Unsub::decode(packet.body.clone()).map_err(decode_err)?;
                let (inst, id) = self.identity(&un.destination, &un.client_id, "Unsub")?;
                inst.store().unsubscribe(id);
                if let Err(e) = inst.flush().await {
                    warn!(destination = %un.destination, error = %e, "could not persist the unsubscription");
                }
                Ok((un.destination, Reply::Packet(Packet::ack_ok())))
            }
            Ok(PacketType::Get) => {
                let get = Get::decode(packet.body.clone()).map_err(decode_err)?;
                let (inst, id) = self.identity(&get.destination, &get.client_id, "Get")?;
                let wait = get_wait(get.timeout, get.unit);
                let store = inst.store().clone();
                let batch = tokio::select! {
                    _ = shutdown.cancelled() => return Err((get.destination.clone(), 400, "server is shutting down".into())),
                    b = store.get(id, get.fetch_size, wait) => b,
                }
                .map_err(|e| (get.destination.clone(), 400, e.to_string()))?;
                if batch.id == -1 {
                    metrics::counter!("canal_instance_client_empty_batches", "destination" => get.destination.clone()).increment(1);
                    return Ok((get.destination, Reply::Packet(Packet::empty_messages())));
                }
                metrics::counter!("canal_instance_get_rows", "destination" => get.destination.clone()).increment(batch.rows);
                if let Some(t) = batch.last_execute_time {
                    metrics::gauge!("canal_instance_get_delay", "destination" => get.destination.clone())
                        .set((now_ms() - t).max(0) as f64);
                }
                if self.handed.len() == HANDED_KEPT {
                    self.handed.pop_front();
                }
                self.handed.push_back((store.clone(), id, batch.id));
                Ok((
                    get.destination.clone(),
                    Reply::Messages {
                        id: batch.id,
                        entries: batch.entries,
                    },
                ))
            }
            Ok(PacketType::Clientack) => {
                let ack = ClientAck::decode(packet.body.clone()).map_err(decode_err)?;
                let (inst, id) = self.identity(&ack.destination, &ack.client_id, "Ack")?;
                if ack.batch_id == 0 {
                    return Err((ack.destination, 402, "batchId should assign value".into()));
                }
                if ack.batch_id == -1 {
                    return Ok((ack.destination, Reply::None));
                }
                let (rows, _) = inst
                    .store()
                    .ack(id, ack.batch_id)
                    .map_err(|e| (ack.destination.clone(), 400, e.to_string()))?;
                metrics::counter!("canal_instance_ack_rows", "destination" => ack.destination.clone()).increment(rows);
                if inst.flush_on_ack() {
                    if let Err(e) = inst.flush().await {
                        warn!(destination = %ack.destination, error = %e, "could not write the cursor");
                    }
                }
                Ok((ack.destination, Reply::None))
            }
            Ok(PacketType::Clientrollback) => {
                let rb = ClientRollback::decode(packet.body.clone()).map_err(decode_err)?;
                let (inst, id) = self.identity(&rb.destination, &rb.client_id, "Rollback")?;
                if !inst.store().is_subscribed(id) {
                    // Clients send rollback(0) right after connecting, before they subscribe.
                    return Ok((rb.destination, Reply::None));
                }
                inst.store()
                    .rollback(id, rb.batch_id)
                    .map_err(|e| (rb.destination.clone(), 400, e.to_string()))?;
                Ok((rb.destination, Reply::None))
            }
            Ok(other) => Err((
                String::new(),
                400,
                format!("packet type: {} is NOT supported!", other.as_str_name()),
            )),
            Err(e) => Err((
                String::new(),
                400,
                format!("packet type: {e} is NOT supported!"),
            )),
        }
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn planned_messages_frame_equals_the_protocol_encoding() {
        let sizes = [
            0usize,
            1,
            300,
            INLINE_ENTRY_MAX,
            INLINE_ENTRY_MAX + 1,
            70_000,
            5,
            200_000,
        ];
        let entries: Vec<Bytes> = sizes
            .iter()
            .enumerate()
            .map(|(i, n)| Bytes::from(vec![i as u8 + 1; *n]))
            .collect();
        for batch_id in [0i64, 1, 300, i64::MAX] {
            for k in 0..=entries.len() {
                let mut want = BytesMut::new();
                canal_protocol::encode_raw_messages(batch_id, &entries[..k], &mut want)
                    .unwrap();
                let mut buf = BytesMut::new();
                let mut segments = Vec::new();
                plan_raw_messages(batch_id, &entries[..k], &mut buf, &mut segments).unwrap();
                let mut got = Vec::new();
                for s in &segments {
                    match s {
                        Segment::Buf(r) => got.extend_from_slice(&buf[r.clone()]),
                        Segment::Entry(i) => {
                            assert!(entries[*i].len() > INLINE_ENTRY_MAX);
                            got.extend_from_slice(&entries[*i]);
                        }
                    }
                }
                assert_eq!(got, want.to_vec(), "batch {batch_id}, {k} entries");
            }
        }
    }

    #[test]
    fn get_timeout_rules() {
        assert_eq!(get_wait(Some(-1), Some(2)), GetWait::NonBlocking);
        assert_eq!(get_wait(None, None), GetWait::UntilFull);
        assert_eq!(get_wait(Some(-2), Some(2)), GetWait::UntilFull);
        assert_eq!(
            get_wait(Some(1000), Some(2)),
            GetWait::Up(Duration::from_millis(1000))
        );
        assert_eq!(
            get_wait(Some(1000), None),
            GetWait::Up(Duration::from_nanos(1000))
        );
        assert_eq!(
            get_wait(Some(5), Some(-1)),
            GetWait::Up(Duration::from_millis(5))
        );
        assert_eq!(
            get_wait(Some(2), Some(3)),
            GetWait::Up(Duration::from_secs(2))
        );
    }
}
