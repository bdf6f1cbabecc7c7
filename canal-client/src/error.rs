//! The client's error type and how each error should be handled.

use std::fmt;
use std::io;
use std::time::Duration;

use canal_protocol::{FrameError, PacketType};

/// The request (or connection step) during which an error happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Op {
    /// Opening the TCP connection.
    Connect,
    /// Reading the server's HANDSHAKE.
    Handshake,
    /// Sending CLIENTAUTHENTICATION and reading its ACK.
    Auth,
    /// SUBSCRIPTION.
    Subscribe,
    /// UNSUBSCRIPTION.
    Unsubscribe,
    /// GET and its MESSAGES reply.
    Get,
    /// CLIENTACK.
    Ack,
    /// CLIENTROLLBACK.
    Rollback,
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Op::Connect => "connect",
            Op::Handshake => "handshake",
            Op::Auth => "auth",
            Op::Subscribe => "subscribe",
            Op::Unsubscribe => "unsubscribe",
            Op::Get => "get",
            Op::Ack => "ack",
            Op::Rollback => "rollback",
        })
    }
}

/// A reply that is well-formed protobuf but not what the protocol allows at
/// this point.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProtocolError {
    /// The reply has a known type, but not the one the request calls for.
    #[error("expected a {} packet, got {}", .expected.as_str_name(), .actual.as_str_name())]
    UnexpectedPacket {
        /// The type the protocol requires here.
        expected: PacketType,
        /// The type received.
        actual: PacketType,
    },
    /// `Packet.type` is outside the PacketType enum.
    #[error("unknown packet type {0}")]
    UnknownPacketType(i32),
    /// The HANDSHAKE does not carry `version = 1` (the Java client's
    /// "unsupported version at this client.").
    #[error("unsupported protocol version {0:?} in HANDSHAKE (expected 1)")]
    UnsupportedVersion(Option<i32>),
    /// The body is compressed, or names an unknown compression. Nothing in
    /// Canal compresses; Canal clients refuse such packets too.
    #[error("unsupported packet compression {0}")]
    UnsupportedCompression(i32),
}

/// Everything that can go wrong talking to a Canal server.
///
/// Every variant except [`ClientError::InvalidBatchId`] and
/// [`ClientError::NotConnected`] is produced after the connection was
/// closed: a reply that is late, missing, malformed, or an error frame (which
/// Canal 1.1.x may send unsolicited, ahead of the real reply) leaves the
/// request/reply pairing uncertain, so the connector never reuses such a
/// connection. Call `connect()` again to continue; it rolls back the batches
/// the old connection left un-acked.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// Connecting, reading or writing the socket failed.
    #[error("{op}: i/o error: {source}")]
    Io {
        /// What was being done.
        op: Op,
        /// The underlying error.
        source: io::Error,
    },
    /// The server did not answer (or accept our bytes, or the connection)
    /// within the allowed time.
    #[error("{op}: no reply from the server within {after:?}")]
    Timeout {
        /// What was being done.
        op: Op,
        /// The bound that expired.
        after: Duration,
    },
    /// The server closed the connection cleanly where a reply was due.
    #[error("{op}: the server closed the connection")]
    ConnectionClosed {
        /// What was being done.
        op: Op,
    },
    /// The byte stream is not valid Canal framing (negative or oversized
    /// length, stream ended inside a frame).
    #[error("{op}: malformed frame from the server: {source}")]
    Frame {
        /// What was being done.
        op: Op,
        /// The framing error.
        source: FrameError,
    },
    /// A frame, packet body or entry is not valid protobuf for its type.
    #[error("{op}: malformed {what} from the server: {source}")]
    Decode {
        /// What was being done.
        op: Op,
        /// The protobuf message that failed to decode (`Packet`, `Ack`,
        /// `Messages`, `Entry`, …).
        what: &'static str,
        /// The protobuf error.
        source: prost::DecodeError,
    },
    /// The reply is valid protobuf but violates the protocol.
    #[error("{op}: protocol violation: {source}")]
    Protocol {
        /// What was being done.
        op: Op,
        /// The violation.
        source: ProtocolError,
    },
    /// The server refused the credentials (ACK with `error_code > 0` in reply
    /// to CLIENTAUTHENTICATION; Canal uses 400 `auth failed for user:<name>`).
    #[error("TLS to the server failed: {reason}")]
    Tls {
        /// Why (an unverifiable certificate, an unreadable CA file, …).
        reason: String,
    },
    /// The server refused the credentials.
    #[error("authentication failed (code {code}): {message}")]
    Auth {
        /// `Ack.error_code`.
        code: i32,
        /// `Ack.error_message`.
        message: String,
    },
    /// The server answered with an error ACK: `error_code > 0` to
    /// SUBSCRIPTION/UNSUBSCRIPTION, or any ACK in reply to GET (how a server
    /// reports that a previous ack or rollback failed; `code` is 0 if the
    /// ACK carried none).
    #[error("{op}: server error {code}: {message}")]
    Server {
        /// What was being done.
        op: Op,
        /// `Ack.error_code` (400 generic, 401 missing destination/client id,
        /// 402 batch id 0).
        code: i32,
        /// `Ack.error_message`.
        message: String,
    },
    /// A previous call on this connector was cancelled (its future dropped)
    /// after sending its request but before reading the reply; the
    /// connection was closed because its stream is out of step.
    #[error("a previous request was cancelled mid-flight; the connection was closed")]
    Interrupted,
    /// No connection: `connect()` was never called, or an earlier error
    /// closed it, or `disconnect()` was called.
    #[error("not connected")]
    NotConnected,
    /// The batch id can never be valid for this call (0 for ack: Canal
    /// answers it with error 402). Nothing was sent.
    #[error("invalid batch id {0}")]
    InvalidBatchId(i64),
}

/// How many times in a row a server may answer that it has no such destination
/// ([`ClientError::is_unknown_destination`]) before the destination counts as unknown for good:
/// `canal-client` (direct mode) and the [`ClusterConnector`](crate::ClusterConnector) (from the
/// server the running node names) then stop with [`UnknownDestination`]. Canal servers give the
/// same answer for a destination they are still starting, so one answer is not proof.
pub const UNKNOWN_DESTINATION_ANSWERS: u32 = 3;

/// A server answered [`UNKNOWN_DESTINATION_ANSWERS`] times in a row that it has no such
/// destination (Canal's `destination:{name} should start first`): a typo or a destination no
/// server is configured with. Not retryable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("destination {destination:?} is unknown to the canal server {server} ({attempts} answers in a row: {message})")]
pub struct UnknownDestination {
    /// The destination asked for.
    pub destination: String,
    /// The server that answered.
    pub server: String,
    /// How many answers in a row said so.
    pub attempts: u32,
    /// The server's last answer.
    pub message: String,
}

impl ClientError {
    /// True when reconnecting and repeating the work may succeed: network
    /// failures, timeouts, a closed or interrupted connection, server error
    /// 400 to GET, ack and rollback (Canal's code for transient states such
    /// as a stale batch id), and error 400 to SUBSCRIPTION/UNSUBSCRIPTION
    /// only when the server says it does not serve the destination now
    /// ([`ClientError::is_destination_not_served`]: a standby, a server still
    /// starting). False for bad credentials, malformed replies, protocol
    /// violations, 401/402, any other refusal of a subscription (a filter the
    /// server rejects, a malformed client id) and invalid arguments:
    /// repeating them gives the same result.
    pub fn is_retryable(&self) -> bool {
        match self {
            ClientError::Io { .. }
            | ClientError::Timeout { .. }
            | ClientError::ConnectionClosed { .. }
            | ClientError::Interrupted
            | ClientError::NotConnected => true,
            ClientError::Server {
                op: Op::Subscribe | Op::Unsubscribe,
                code,
                ..
            } => *code == 0 || self.is_destination_not_served(),
            ClientError::Server { code, .. } => *code == 400 || *code == 0,
            ClientError::Frame { .. }
            | ClientError::Decode { .. }
            | ClientError::Protocol { .. }
            | ClientError::Auth { .. }
            | ClientError::Tls { .. }
            | ClientError::InvalidBatchId(_) => false,
        }
    }

    /// True when the connector's connection was closed because of this
    /// error (every variant except [`ClientError::InvalidBatchId`]; for
    /// [`ClientError::NotConnected`] there was none to close).
    pub fn closed_connection(&self) -> bool {
        !matches!(self, ClientError::InvalidBatchId(_))
    }

    /// The server says it does not serve the destination, now: Canal's
    /// `destination:{name} should start first` (see
    /// [`ClientError::is_unknown_destination`]) or canal-server's
    /// `destination:{name} is not active on this server` (a standby; the
    /// destination runs elsewhere).
    pub fn is_destination_not_served(&self) -> bool {
        self.is_unknown_destination()
            || matches!(self, ClientError::Server { message, .. } if message.contains("is not active on this server"))
    }

    /// Canal's `destination:{name} should start first`: the server does not
    /// run the destination and knows nothing of it being elsewhere. Unknown
    /// there, or (Canal in HA, a server starting up) not started yet, so
    /// retryable as such; see [`UNKNOWN_DESTINATION_ANSWERS`].
    pub fn is_unknown_destination(&self) -> bool {
        matches!(self, ClientError::Server { code: 400, message, .. } if message.contains("should start first"))
    }

    /// The server's error code, for [`ClientError::Auth`] and
    /// [`ClientError::Server`].
    pub fn server_code(&self) -> Option<i32> {
        match self {
            ClientError::Auth { code, .. } | ClientError::Server { code, .. } => Some(*code),
            _ => None,
        }
    }
}

/// Everything that can go wrong with a [`ClusterConnector`](crate::ClusterConnector).
///
/// Retryable failures ([`ClusterError::is_retryable`]) are retried inside
/// the connector with capped exponential backoff until the call's deadline;
/// a caller only sees one wrapped in [`ClusterError::GaveUp`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClusterError {
    /// Talking to a Canal server failed. Retryable variants (see
    /// [`ClientError::is_retryable`]) only reach the caller inside
    /// [`ClusterError::GaveUp`]; the others (bad credentials, 401/402,
    /// malformed replies, an invalid batch id) are returned at once, since
    /// repeating them gives the same result.
    #[error(transparent)]
    Client(#[from] ClientError),
    /// The ZooKeeper configuration is invalid (not retryable).
    #[error(transparent)]
    Config(zk_coord::CoordError),
    /// ZooKeeper has not been read yet for this destination (unreachable,
    /// or the first read has not finished). Retryable.
    #[error("destination {destination}: ZooKeeper not read yet: {reason}")]
    ZooKeeperUnavailable {
        /// The destination.
        destination: String,
        /// The last ZooKeeper error, or why there is none yet.
        reason: String,
    },
    /// ZooKeeper names no server for the destination: no `running` node and
    /// no `host:port` child of its `cluster` node. Retryable (a server may
    /// register any moment).
    #[error("destination {destination}: no alive canal server (no running node, no cluster member in ZooKeeper)")]
    NoServer {
        /// The destination.
        destination: String,
    },
    /// With client election, this process is not the active consumer for
    /// its client id, so it may not talk to the server. Retryable (it may
    /// win the election later).
    #[error("not the active consumer (current owner: {})", .owner.as_deref().unwrap_or("unknown"))]
    NotActive {
        /// The active consumer's address, when known.
        owner: Option<String>,
    },
    /// Retrying a retryable failure did not succeed before the deadline.
    #[error("{op}: gave up after {attempts} attempt(s) in {elapsed:?}: {last}")]
    GaveUp {
        /// The operation being retried.
        op: Op,
        /// Failed attempts.
        attempts: u32,
        /// Time spent from the first attempt.
        elapsed: Duration,
        /// The last failure.
        #[source]
        last: Box<ClusterError>,
    },
    /// The connection that delivered this batch is gone (it failed, the
    /// running server moved, or this process stopped being the active
    /// consumer), so the batch can no longer be acked: it is rolled back by
    /// the next connection's `rollback(0)` (or resumed from the shared cursor
    /// by a new running server) and delivered again, under a new batch id.
    /// Do not treat its entries as acknowledged.
    #[error("batch {batch_id} can no longer be acked: its connection is gone and it will be delivered again")]
    BatchRolledBack {
        /// The batch id given to `ack`.
        batch_id: i64,
    },
    /// `connect()` was not called, or `disconnect()` was.
    #[error("cluster connector not started (call connect first)")]
    NotConnected,
    /// The server the running node names answered
    /// [`UNKNOWN_DESTINATION_ANSWERS`] times in a row that it has no such
    /// destination. Not retryable.
    #[error(transparent)]
    UnknownDestination(UnknownDestination),
}

impl ClusterError {
    /// True when waiting and trying again may succeed: a retryable
    /// [`ClientError`], ZooKeeper not readable, no server registered, or not
    /// the active consumer.
    pub fn is_retryable(&self) -> bool {
        match self {
            ClusterError::Client(err) => err.is_retryable(),
            ClusterError::ZooKeeperUnavailable { .. }
            | ClusterError::NoServer { .. }
            | ClusterError::NotActive { .. } => true,
            ClusterError::Config(_)
            | ClusterError::GaveUp { .. }
            | ClusterError::BatchRolledBack { .. }
            | ClusterError::NotConnected
            | ClusterError::UnknownDestination(_) => false,
        }
    }

    /// The innermost failure: for [`ClusterError::GaveUp`] the last attempt's
    /// error, otherwise `self`.
    pub fn last(&self) -> &ClusterError {
        match self {
            ClusterError::GaveUp { last, .. } => last.last(),
            other => other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retryable_classification() {
        let server = |code| ClientError::Server {
            op: Op::Get,
            code,
            message: String::new(),
        };
        assert!(server(400).is_retryable());
        assert!(!server(401).is_retryable());
        assert!(!server(402).is_retryable());
        assert!(ClientError::Timeout {
            op: Op::Get,
            after: Duration::from_secs(1)
        }
        .is_retryable());
        assert!(!ClientError::Auth {
            code: 400,
            message: "x".into()
        }
        .is_retryable());
        assert!(!ClientError::InvalidBatchId(0).closed_connection());
        assert_eq!(server(401).server_code(), Some(401));
        let subscribe = |message: &str| ClientError::Server {
            op: Op::Subscribe,
            code: 400,
            message: message.into(),
        };
        let bad_filter = subscribe(r#"invalid table filter "shop\.(": regex parse error"#);
        assert!(!bad_filter.is_retryable(), "the request itself is wrong");
        let unknown = subscribe("destination:nope should start first");
        assert!(unknown.is_retryable() && unknown.is_unknown_destination());
        let standby = subscribe(
            "destination:example is not active on this server (standby); it runs on 10.0.0.1:11111",
        );
        assert!(standby.is_retryable() && standby.is_destination_not_served());
        assert!(!standby.is_unknown_destination());
        assert_eq!(
            server(400).to_string(),
            "get: server error 400: ",
            "display names the operation"
        );
    }

    #[test]
    fn cluster_retryable_classification() {
        let retryable = ClusterError::Client(ClientError::Server {
            op: Op::Get,
            code: 400,
            message: "destination:example is not active on this server".into(),
        });
        assert!(retryable.is_retryable());
        assert!(!ClusterError::Client(ClientError::Auth {
            code: 400,
            message: String::new()
        })
        .is_retryable());
        assert!(ClusterError::NoServer {
            destination: "example".into()
        }
        .is_retryable());
        assert!(ClusterError::NotActive { owner: None }.is_retryable());
        let gave_up = ClusterError::GaveUp {
            op: Op::Get,
            attempts: 3,
            elapsed: Duration::from_secs(1),
            last: Box::new(retryable),
        };
        assert!(!gave_up.is_retryable(), "the deadline already passed");
        assert!(matches!(
            gave_up.last(),
            ClusterError::Client(ClientError::Server { code: 400, .. })
        ));
        assert!(gave_up
            .to_string()
            .starts_with("get: gave up after 3 attempt(s)"));
        assert!(!ClusterError::BatchRolledBack { batch_id: 1 }.is_retryable());
    }
}
