//! canal-client: the library downstream consumers use to read row changes
//! from a Canal 1.1.x-compatible server (ours or alibaba/canal).
//!
//! # Main types
//!
//! * [`SimpleConnector`]: one TCP connection to one server for one
//!   destination and client id. It speaks Canal's protocol exactly as the
//!   Java `SimpleCanalConnector` does on the wire: handshake and scramble411
//!   authentication ([`SimpleConnector::connect`]), `subscribe`,
//!   `unsubscribe`, `get_without_ack`/`get`, `ack`, `rollback`,
//!   `disconnect`. Every socket operation is bounded by
//!   [`ConnectorOptions::so_timeout`].
//! * [`ClientError`]: every failure, typed, with
//!   [`ClientError::is_retryable`]. Any error from the wire closes the
//!   connection, so a late or unsolicited reply is never mistaken for the
//!   answer to a later request.
//! * [`EntryView`], [`RowChangeView`], [`TransactionBeginView`],
//!   [`TransactionEndView`]: entries with their payload decoded; rows as
//!   ordered name → [`ColumnValue`] maps ([`Columns`]).
//! * [`SimpleConnector::consume`] and [`SimpleConnector::into_stream`]:
//!   consumption with automatic ack after successful handling
//!   (at-least-once).
//! * [`ClusterConnector`]: the same calls for a destination served by a
//!   cluster of servers coordinated through ZooKeeper (Canal's layout,
//!   reference §4.4). It finds the running server (falling back to the
//!   destination's cluster members), follows it when it moves, reconnects
//!   with capped exponential backoff on retryable failures (re-subscribing
//!   and rolling back, so un-acked batches come again), and optionally
//!   elects one active consumer among processes sharing a client id
//!   ([`ClusterConnector::with_client_election`]). Its failures are
//!   [`ClusterError`]s; retry settings are [`ClusterOptions`].
//!
//! Wire types, framing and the scramble come from `canal-protocol`;
//! ZooKeeper sessions, paths, JSON and the election come from `zk-coord`.
//! [`SimpleConnector`] never reconnects or retries by itself;
//! [`ClusterConnector`] is built on top of it and does.
//!
//! # Example
//!
//! ```no_run
//! use std::time::Duration;
//! use canal_client::{
//!     CancellationToken, ConnectorOptions, ConsumeOptions, EntryView, SimpleConnector,
//! };
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let mut connector = SimpleConnector::new(
//!     "127.0.0.1:11111",
//!     "example",
//!     ConnectorOptions {
//!         username: "canal".into(),
//!         password: Some("canal".into()),
//!         ..Default::default()
//!     },
//! );
//! connector.connect().await?;
//! connector.subscribe(Some(r"shop\..*")).await?;
//!
//! let shutdown = CancellationToken::new();
//! connector
//!     .consume(&ConsumeOptions::default(), &shutdown, |message| async move {
//!         for view in message.views() {
//!             if let EntryView::RowChange(change) = view? {
//!                 for row in change.rows() {
//!                     println!("{}.{} {:?}: {:?}", change.schema(), change.table(),
//!                              change.event_type(), row.after.value("id"));
//!                 }
//!             }
//!         }
//!         Ok::<(), canal_client::ViewError>(())
//!     })
//!     .await?;
//! connector.disconnect().await?;
//! # Ok(())
//! # }
//! ```
//!
//! # Design decisions
//!
//! * **Sequential requests, strict pairing.** Canal has no request ids: a
//!   reply is identified only by its position in the stream. The connector
//!   therefore takes `&mut self` for every request, closes the connection on
//!   any error (including error replies, which Canal 1.1.x may send
//!   unsolicited after a failed ack), and detects a request whose future was
//!   dropped before its reply was read ([`ClientError::Interrupted`]).
//! * **No unbounded GET.** Canal reads a GET timeout of 0 as "block until a
//!   full batch"; this client never sends it, because such a read would
//!   outlive any socket timeout. `None` or zero means "what is there now".
//! * **Rollback on connect.** As the reference clients do, `connect()` sends
//!   `rollback(0)`, so batches fetched but never acked by a previous
//!   connection are delivered again instead of being skipped.
#![deny(missing_docs)]

mod cluster;
mod connector;
mod consume;
mod error;
pub mod flat;
#[cfg(feature = "sinks")]
pub mod sink;
mod tls;
mod view;

pub use canal_protocol::{Entry, EntryType, EventType, EMPTY_BATCH_ID};
pub use cluster::{
    ClusterConnector, ClusterOptions, DEFAULT_CALL_DEADLINE, DEFAULT_INITIAL_BACKOFF,
    DEFAULT_MAX_BACKOFF,
};
pub use connector::{
    ConnectorOptions, Message, SimpleConnector, DEFAULT_CLIENT_ID, DEFAULT_FETCH_SIZE,
    DEFAULT_IDLE_TIMEOUT, DEFAULT_SO_TIMEOUT,
};
pub use consume::{ConsumeError, ConsumeOptions, HandlerErrorPolicy, EMPTY_POLL_PAUSE};
pub use error::{
    ClientError, ClusterError, Op, ProtocolError, UnknownDestination, UNKNOWN_DESTINATION_ANSWERS,
};
pub use flat::{
    flat_message, flat_messages, write_flat_json_lines, BatchSummary, FlatMessage, FlatRow,
};
pub use tls::ClientTls;
/// Re-exported for [`SimpleConnector::consume`]'s shutdown signal.
pub use tokio_util::sync::CancellationToken;
pub use view::{
    BinlogPosition, ColumnValue, Columns, EntryView, HeaderView, RowChangeView, RowView,
    TransactionBeginView, TransactionEndView, ViewError,
};
/// Re-exported for [`ClusterConnector`]: ZooKeeper settings and the client
/// election role.
pub use zk_coord::{election::Role as ElectionRole, ZkConfig};
