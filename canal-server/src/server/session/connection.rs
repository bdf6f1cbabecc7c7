//! The socket of one client connection: frames in, packets and MESSAGES frames out. Every byte
//! layout (framing, packet envelope, the raw MESSAGES frame) is canal-protocol's; this only moves
//! bytes and keeps its buffers small.

use std::io::{self, IoSlice};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use canal_protocol::frame::{decode_packet, encode_packet, FrameCodec, FrameError, PacketError};
use canal_protocol::packet::Packet;
use canal_protocol::raw_messages::{plan_raw_messages, RawPart};
use futures::StreamExt;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, BufWriter};
use tokio::net::TcpStream;
use tokio_util::codec::FramedRead;

/// The reading half of a client's byte stream (plain TCP or TLS).
type Reader = Box<dyn AsyncRead + Send + Unpin>;
/// The writing half.
type Writer = Box<dyn AsyncWrite + Send + Unpin>;

/// Entries up to this size are copied into the frame buffer; larger ones are written from the
/// store's buffers (`writev`), without a copy.
const INLINE_ENTRY_MAX: usize = 4096;

/// A client connection: reads packets, writes replies.
pub(super) struct Connection {
    reader: FramedRead<Reader, FrameCodec>,
    writer: BufWriter<Writer>,
    /// The frame being written (the whole frame, or a MESSAGES frame's envelope and small
    /// entries).
    buf: BytesMut,
    /// Where the parts of a MESSAGES frame come from (see [`plan_raw_messages`]).
    parts: Vec<RawPart>,
}

/// Why [`Connection::read_packet`] got no packet.
#[derive(Debug)]
pub(super) enum ReadError {
    /// Nothing arrived within the timeout.
    TimedOut,
    /// The byte stream is not a sequence of frames (or the socket failed).
    Frame(FrameError),
    /// A frame's payload is not a packet (or the packet's body not the expected message).
    Packet(PacketError),
}

impl Connection {
    /// Wraps an accepted socket; inbound frames above `max_frame_len` are refused.
    pub(super) fn new(stream: TcpStream, max_frame_len: usize) -> Self {
        let _ = stream.set_nodelay(true);
        let (r, w) = stream.into_split();
        Self::from_halves(Box::new(r), Box::new(w), max_frame_len)
    }

    /// Wraps a TLS session over an accepted socket.
    pub(super) fn tls(
        stream: tokio_rustls::server::TlsStream<TcpStream>,
        max_frame_len: usize,
    ) -> Self {
        let _ = stream.get_ref().0.set_nodelay(true);
        let (r, w) = tokio::io::split(stream);
        Self::from_halves(Box::new(r), Box::new(w), max_frame_len)
    }

    fn from_halves(r: Reader, w: Writer, max_frame_len: usize) -> Self {
        Connection {
            reader: FramedRead::new(r, FrameCodec::with_max_frame_len(max_frame_len)),
            writer: BufWriter::new(w),
            buf: BytesMut::with_capacity(4096),
            parts: Vec::new(),
        }
    }

    /// The next packet, waiting at most `timeout`; `Ok(None)` when the client closed the
    /// connection between frames. Cancel-safe: a packet is never half read.
    pub(super) async fn read_packet(
        &mut self,
        timeout: Duration,
    ) -> Result<Option<Packet>, ReadError> {
        let frame = match tokio::time::timeout(timeout, self.reader.next()).await {
            Err(_) => return Err(ReadError::TimedOut),
            Ok(None) => return Ok(None),
            Ok(Some(Err(e))) => return Err(ReadError::Frame(e)),
            Ok(Some(Ok(frame))) => frame,
        };
        decode_packet(frame).map(Some).map_err(ReadError::Packet)
    }

    /// Tells the client (best effort) why its bytes were refused, before the connection closes:
    /// an error ACK with code 400. Nothing is sent for a timeout.
    pub(super) async fn report(&mut self, err: &ReadError) {
        let message = match err {
            ReadError::TimedOut => return,
            ReadError::Frame(e) => format!("bad frame: {e}"),
            ReadError::Packet(e) => format!("malformed packet: {e}"),
        };
        let _ = self.write_packet(&Packet::ack_error(400, message)).await;
    }

    /// Writes `packet` as one frame and flushes; returns the bytes sent.
    pub(super) async fn write_packet(&mut self, packet: &Packet) -> io::Result<usize> {
        self.buf.clear();
        encode_packet(packet, &mut self.buf).map_err(io::Error::other)?;
        self.flush_buf().await
    }

    /// Writes one raw MESSAGES frame of pre-serialized `entries` and flushes; returns the bytes
    /// sent. Large entries go from the store's buffers to the socket.
    pub(super) async fn write_messages(
        &mut self,
        batch_id: i64,
        entries: &[Bytes],
    ) -> io::Result<usize> {
        self.buf.clear();
        self.parts.clear();
        plan_raw_messages(
            batch_id,
            entries,
            INLINE_ENTRY_MAX,
            &mut self.buf,
            &mut self.parts,
        )
        .map_err(io::Error::other)?;
        if !self.parts.iter().any(|p| matches!(p, RawPart::Entry(_))) {
            return self.flush_buf().await;
        }
        let Connection {
            writer, buf, parts, ..
        } = self;
        let mut slices: Vec<IoSlice<'_>> = parts
            .iter()
            .map(|p| IoSlice::new(p.bytes(buf, entries)))
            .collect();
        let total: usize = slices.iter().map(|s| s.len()).sum();
        writer.flush().await?;
        let socket = writer.get_mut();
        let mut rest = &mut slices[..];
        while !rest.is_empty() {
            let n = socket.write_vectored(rest).await?;
            if n == 0 {
                return Err(io::ErrorKind::WriteZero.into());
            }
            IoSlice::advance_slices(&mut rest, n);
        }
        self.shrink();
        Ok(total)
    }

    async fn flush_buf(&mut self) -> io::Result<usize> {
        self.writer.write_all(&self.buf).await?;
        self.writer.flush().await?;
        let n = self.buf.len();
        self.shrink();
        Ok(n)
    }

    /// Gives back the memory a very large frame needed.
    fn shrink(&mut self) {
        if self.buf.capacity() > 1 << 20 {
            self.buf = BytesMut::new();
        }
        if self.parts.capacity() > 4096 {
            self.parts = Vec::new();
        }
    }
}
