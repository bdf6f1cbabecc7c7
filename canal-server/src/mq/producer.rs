//! The broker a publisher talks to: the same send / confirm / close steps for each kind.

use super::kafka::{self, KafkaProducer};
use super::rabbit::{self, RabbitProducer};
use super::{MqConfig, MqError, MqMode, Outgoing};

/// The confirms of one sent batch.
pub enum Pending {
    /// RabbitMQ publisher confirms.
    Rabbit(rabbit::Pending),
    /// Kafka produce acknowledgements.
    Kafka(kafka::Pending),
}

/// A connected producer of either kind.
pub enum Producer {
    /// RabbitMQ.
    Rabbit(Box<RabbitProducer>),
    /// Kafka.
    Kafka(KafkaProducer),
}

impl Producer {
    /// Connects to the broker `c.mode` names at `servers` (resolved from `env:`).
    pub async fn connect(c: &MqConfig, servers: &str) -> Result<Self, MqError> {
        Ok(match c.mode {
            MqMode::Rabbitmq => {
                Producer::Rabbit(Box::new(RabbitProducer::connect(c, servers).await?))
            }
            MqMode::Kafka => Producer::Kafka(KafkaProducer::connect(c, servers).await?),
        })
    }

    /// Sends `batch` in order; its confirms are awaited with [`Self::confirm`].
    pub async fn send(&self, batch: &[Outgoing]) -> Result<Pending, MqError> {
        Ok(match self {
            Producer::Rabbit(p) => Pending::Rabbit(p.send(batch).await?),
            Producer::Kafka(p) => Pending::Kafka(p.send(batch).await?),
        })
    }

    /// Waits until the broker confirmed every message of a sent batch.
    pub async fn confirm(&self, pending: Pending) -> Result<(), MqError> {
        match (self, pending) {
            (Producer::Rabbit(p), Pending::Rabbit(w)) => p.confirm(w).await,
            (Producer::Kafka(p), Pending::Kafka(w)) => p.confirm(w).await,
            _ => Err(MqError::Broker(
                "a batch's confirms belong to another producer".into(),
            )),
        }
    }

    /// Closes the connection (best effort).
    pub async fn close(self) {
        match self {
            Producer::Rabbit(p) => p.close().await,
            Producer::Kafka(p) => p.close().await,
        }
    }
}
