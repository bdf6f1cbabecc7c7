//! RabbitMQ producer (AMQP 0.9.1 through `lapin`): one connection and one channel in confirm
//! mode. A batch is published in order on that channel, every message `mandatory` and (by
//! default) persistent, then every confirm is awaited: a nack, a returned (unroutable) message,
//! a closed connection or a confirm timeout fails the whole batch, which the publisher then
//! publishes again on a new connection. RabbitMQ keeps the order of one channel's messages to a
//! queue, so a retried batch can only duplicate its own unconfirmed tail.

use std::time::Duration;

use lapin::options::{BasicPublishOptions, ConfirmSelectOptions};
use lapin::Confirmation;
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties};

use super::{MqConfig, MqError, Outgoing};

/// The confirms of one sent batch, in publish order.
pub struct Pending(Vec<(String, lapin::PublisherConfirm)>);

/// A connected producer.
pub struct RabbitProducer {
    connection: Connection,
    channel: Channel,
    exchange: String,
    delivery_mode: u8,
    confirm_timeout: Duration,
}

impl RabbitProducer {
    /// Connects and puts a channel in confirm mode.
    pub async fn connect(c: &MqConfig, uri: &str) -> Result<Self, MqError> {
        let timeout = Duration::from_millis(c.connect_timeout_ms.max(100));
        let connect = async {
            let connection = Connection::connect(uri, ConnectionProperties::default()).await?;
            let channel = connection.create_channel().await?;
            channel
                .confirm_select(ConfirmSelectOptions::default())
                .await?;
            Ok::<_, lapin::Error>((connection, channel))
        };
        let (connection, channel) = tokio::time::timeout(timeout, connect)
            .await
            .map_err(|_| MqError::Broker(format!("no connection within {timeout:?}")))?
            .map_err(|e| MqError::Broker(format!("connect: {e}")))?;
        Ok(Self {
            connection,
            channel,
            exchange: c.exchange.clone(),
            delivery_mode: c.delivery_mode,
            confirm_timeout: Duration::from_millis(c.confirm_timeout_ms.max(1)),
        })
    }

    /// The routing key of a message: the topic, or `topic.partition` on partitioned topics
    /// (RabbitMQ has no partitions: bind one queue per partition).
    pub fn routing_key(m: &Outgoing) -> String {
        match m.partition {
            Some(p) => format!("{}.{p}", m.topic),
            None => m.topic.clone(),
        }
    }

    /// Publishes `batch` in order; the broker's confirms are awaited with [`Self::confirm`].
    pub async fn send(&self, batch: &[Outgoing]) -> Result<Pending, MqError> {
        let props = BasicProperties::default()
            .with_delivery_mode(self.delivery_mode)
            .with_content_type(if batch.first().is_some_and(|m| m.json) {
                "application/json".into()
            } else {
                "application/x-protobuf".into()
            });
        let opts = BasicPublishOptions {
            mandatory: true,
            ..Default::default()
        };
        let mut pending = Vec::with_capacity(batch.len());
        for m in batch {
            let key = Self::routing_key(m);
            let confirm = self
                .channel
                .basic_publish(
                    self.exchange.as_str().into(),
                    key.as_str().into(),
                    opts,
                    &m.payload,
                    props.clone(),
                )
                .await
                .map_err(|e| MqError::Broker(format!("publish to {key:?}: {e}")))?;
            pending.push((key, confirm));
        }
        Ok(Pending(pending))
    }

    /// Waits until the broker confirmed every message of a sent batch.
    pub async fn confirm(&self, pending: Pending) -> Result<(), MqError> {
        let wait = async {
            for (key, confirm) in pending.0 {
                match confirm.await {
                    Ok(Confirmation::Ack(None)) => {}
                    Ok(Confirmation::Ack(Some(r))) | Ok(Confirmation::Nack(Some(r))) => {
                        return Err(MqError::Unroutable {
                            routing_key: key,
                            exchange: self.exchange.clone(),
                            reply: format!("{} {}", r.reply_code, r.reply_text),
                        })
                    }
                    Ok(Confirmation::Nack(None)) => {
                        return Err(MqError::Broker(format!(
                            "broker nacked a message to {key:?}"
                        )))
                    }
                    Ok(Confirmation::NotRequested) => {
                        return Err(MqError::Broker("channel is not in confirm mode".into()))
                    }
                    Err(e) => return Err(MqError::Broker(format!("confirm of {key:?}: {e}"))),
                }
            }
            Ok(())
        };
        tokio::time::timeout(self.confirm_timeout, wait)
            .await
            .map_err(|_| {
                MqError::Broker(format!(
                    "confirms not received within {:?}",
                    self.confirm_timeout
                ))
            })?
    }

    /// Closes the connection (best effort).
    pub async fn close(self) {
        let _ = tokio::time::timeout(
            Duration::from_secs(2),
            self.connection.close(200, "bye".into()),
        )
        .await;
    }
}
