//! MQ mode: a destination publishes its row changes to a broker (Kafka or RabbitMQ) as Canal's MQ mode
//! does, as an in-process client of its store.
//!
//! The publisher is client `client_id` (Canal: 1001, empty filter) of the destination's store:
//! it GETs a batch, builds its messages (`message`: Canal's flat JSON from `canal-client`'s flat
//! module, split by partition by `route`, or the protobuf `Packet`), publishes them in order and
//! waits for the broker's confirm of every one (`kafka`, `rabbit`), and only then ACKs the batch. Its
//! cursor is persisted like any client's (meta file or ZooKeeper), so a restart or an HA
//! failover resumes from the last confirmed batch: at most the unconfirmed tail is published
//! twice, nothing is skipped. A failed publish (broker down, nack, unroutable, timeout) is
//! retried on a new connection with capped backoff, the same batch again, until it is confirmed
//! or the instance stops. In HA mode the publisher lives inside the instance, which only the
//! running server starts, and the store's gate stops handing out batches as soon as the server
//! loses its session.
//!
//! One file per job: `config` (the keys), `route` (topics and partitions), `message` (bodies and
//! the size policy), `kafka` and `rabbit` (the producers, behind `producer`), `publisher` (the
//! loop and its state).

mod config;
mod kafka;
mod message;
mod producer;
mod publisher;
mod rabbit;
pub mod route;

pub use config::{KafkaCompression, MqConfig, MqMode, OversizePolicy};
pub use kafka::KafkaProducer;
pub use message::{build, Outgoing};
pub use producer::Producer;
pub use publisher::{spawn, ProducerState, ProducerStatus, StatusCell};
pub use rabbit::RabbitProducer;

/// Why publishing a batch failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MqError {
    /// The broker could not be reached, closed the connection, nacked, did not confirm, or (Kafka)
    /// the topic lacks the partition.
    #[error("broker: {0}")]
    Broker(String),
    /// A mandatory message matched no queue: nothing is bound to its routing key.
    #[error("message to routing key {routing_key:?} on exchange {exchange:?} was returned ({reply}): bind a queue to it")]
    Unroutable {
        /// Routing key.
        routing_key: String,
        /// Exchange.
        exchange: String,
        /// The broker's reply.
        reply: String,
    },
    /// A message over `max_message_bytes` that the policy does not split.
    #[error("{what} is {bytes} bytes, over max_message_bytes = {limit}; publishing stopped (raise the limit or use oversize = \"split_rows\")")]
    TooLarge {
        /// Which message.
        what: String,
        /// Its size.
        bytes: usize,
        /// The limit.
        limit: usize,
    },
    /// An entry could not be turned into a message.
    #[error("building the message: {0}")]
    Encode(String),
}

impl MqError {
    /// Whether retrying the same batch can succeed (a broker problem), or it needs an operator.
    pub fn is_retryable(&self) -> bool {
        matches!(self, MqError::Broker(_) | MqError::Unroutable { .. })
    }
}
