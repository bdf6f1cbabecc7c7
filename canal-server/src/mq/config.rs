//! `[destinations.NAME.mq]`: Canal's MQ-mode keys (`canal.serverMode`, `canal.mq.*`,
//! `rabbitmq.*`) under TOML names. The README's "MQ mode" section lists each next to its Canal
//! name.

use serde::{Deserialize, Serialize};

use crate::config::ConfigError;

/// Which broker a destination publishes to (`canal.serverMode`).
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum MqMode {
    /// RabbitMQ (AMQP 0.9.1), `canal.serverMode = rabbitMQ`.
    Rabbitmq,
    /// Kafka (any Kafka-protocol broker), `canal.serverMode = kafka`.
    Kafka,
}

impl MqMode {
    /// The name `/health` shows.
    pub fn name(self) -> &'static str {
        match self {
            MqMode::Rabbitmq => "rabbitmq",
            MqMode::Kafka => "kafka",
        }
    }
}

/// `kafka.compression.type`: how a Kafka produce request's records are compressed.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum KafkaCompression {
    /// No compression (Canal's default).
    None,
    /// gzip.
    Gzip,
    /// Snappy.
    Snappy,
    /// LZ4.
    Lz4,
    /// Zstandard.
    Zstd,
}

/// What to do with a message larger than `max_message_bytes`.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum OversizePolicy {
    /// Split a flat message by rows (halving until each part fits); a single row that does not
    /// fit stops the publisher with an error (nothing is acked past it).
    SplitRows,
    /// Stop the publisher with an error naming the entry (nothing is acked past it).
    Stop,
}

/// `[destinations.NAME.mq]`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct MqConfig {
    /// `canal.serverMode`.
    pub mode: MqMode,
    /// Kafka: `kafka.bootstrap.servers`, `host:port` pairs, comma separated. RabbitMQ: the broker URI (`rabbitmq.host`, `rabbitmq.virtual.host`, `rabbitmq.username`,
    /// `rabbitmq.password` in one `amqp://user:pass@host:port/vhost`). `env:NAME` reads it from
    /// the environment.
    pub servers: String,
    /// `rabbitmq.exchange`: the exchange messages go to; `""` is the default exchange (routing
    /// key = queue name).
    pub exchange: String,
    /// `canal.mq.topic`: the topic (routing key) of tables no `dynamic_topic` rule names.
    pub topic: String,
    /// `canal.mq.dynamicTopic`: `[topic:]regex` rules, comma separated.
    pub dynamic_topic: String,
    /// `canal.mq.partition`: the partition of everything when no hash rule applies.
    pub partition: u32,
    /// `canal.mq.partitionsNum`: partitions per topic when hashing.
    pub partitions_num: u32,
    /// `canal.mq.partitionHash`: `regex:col1^col2`, `regex:$pk$` or `regex` (the table name).
    pub partition_hash: String,
    /// `canal.mq.dynamicTopicPartitionNum`: `topic:n` pairs overriding `partitions_num`.
    pub dynamic_topic_partition_num: String,
    /// `canal.mq.database.hash`: mix the database name into the partition hash.
    pub database_hash: bool,
    /// `canal.mq.flatMessage`: Canal's flat JSON (true) or the protobuf `Packet` (false).
    pub flat_message: bool,
    /// `canal.mq.canalBatchSize`: the internal consumer's GET size (store `batch_mode` units).
    pub batch_size: i32,
    /// `canal.mq.canalGetTimeout`: how long one GET waits for entries, ms.
    pub get_timeout_ms: u64,
    /// The internal consumer's client id (Canal: 1001).
    pub client_id: i16,
    /// Batches sent and awaiting the broker's confirms at once (acked in order as they are
    /// confirmed; a failure re-sends all of them).
    pub max_in_flight_batches: usize,
    /// Wait at most this long for the broker's confirms of a batch, ms.
    pub confirm_timeout_ms: u64,
    /// Connect timeout and the first reconnect delay, ms.
    pub connect_timeout_ms: u64,
    /// The longest delay between reconnect attempts, ms.
    pub max_retry_backoff_ms: u64,
    /// `rabbitmq.deliveryMode`: 2 = persistent (survives a broker restart on durable queues).
    pub delivery_mode: u8,
    /// Largest message body published; RabbitMQ's own default limit is 128 MiB.
    pub max_message_bytes: usize,
    /// What happens to larger messages.
    pub oversize: OversizePolicy,
    /// `kafka.acks`: only `"all"` (the Kafka client always waits for every in-sync replica).
    pub acks: String,
    /// `kafka.compression.type`.
    pub compression: KafkaCompression,
}

impl Default for MqConfig {
    fn default() -> Self {
        Self {
            mode: MqMode::Rabbitmq,
            servers: "amqp://guest:guest@127.0.0.1:5672/%2f".into(),
            exchange: String::new(),
            topic: "example".into(),
            dynamic_topic: String::new(),
            partition: 0,
            partitions_num: 1,
            partition_hash: String::new(),
            dynamic_topic_partition_num: String::new(),
            database_hash: true,
            flat_message: true,
            batch_size: 50,
            get_timeout_ms: 100,
            client_id: 1001,
            max_in_flight_batches: 16,
            confirm_timeout_ms: 30_000,
            connect_timeout_ms: 1_000,
            max_retry_backoff_ms: 10_000,
            delivery_mode: 2,
            max_message_bytes: 16 * 1024 * 1024,
            oversize: OversizePolicy::SplitRows,
            acks: "all".into(),
            compression: KafkaCompression::None,
        }
    }
}

impl MqConfig {
    /// Checks every field; `prefix` is the section path (`destinations.NAME.mq`).
    pub fn validate(&self, prefix: &str) -> Result<(), ConfigError> {
        let err = |f: &str, m: String| ConfigError {
            key: format!("{prefix}.{f}"),
            message: m,
        };
        if self.servers.trim().is_empty() {
            return Err(err("servers", "must name the broker".into()));
        }
        if self.topic.is_empty() {
            return Err(err("topic", "must not be empty".into()));
        }
        if self.partitions_num == 0 {
            return Err(err("partitions_num", "must be at least 1".into()));
        }
        if self.batch_size <= 0 {
            return Err(err("batch_size", "must be > 0".into()));
        }
        if self.max_in_flight_batches == 0 {
            return Err(err("max_in_flight_batches", "must be at least 1".into()));
        }
        if self.max_message_bytes < 1024 {
            return Err(err("max_message_bytes", "must be at least 1024".into()));
        }
        if !matches!(self.delivery_mode, 1 | 2) {
            return Err(err("delivery_mode", "must be 1 or 2".into()));
        }
        if self.mode == MqMode::Kafka {
            if !matches!(self.acks.as_str(), "all" | "-1") {
                return Err(err(
                    "acks",
                    format!(
                        "{:?} is not supported: the Kafka producer always waits for all in-sync replicas (acks = \"all\")",
                        self.acks
                    ),
                ));
            }
            if !self.servers.starts_with("env:") {
                super::kafka::parse_servers(&self.servers).map_err(|m| err("servers", m))?;
            }
        }
        super::route::Router::new(self).map_err(|e| err(e.key, e.message))?;
        if !self.flat_message && !self.partition_hash.trim().is_empty() {
            return Err(err(
                "partition_hash",
                "hash partitioning splits flat messages by rows; it needs flat_message = true"
                    .into(),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(extra: &str) -> Result<MqConfig, String> {
        let c: MqConfig = toml::from_str(extra).map_err(|e| e.to_string())?;
        c.validate("destinations.x.mq").map_err(|e| e.to_string())?;
        Ok(c)
    }

    #[test]
    fn kafka_example_is_valid() {
        let text = include_str!("../../../config/canal-server-kafka.toml");
        let cfg = crate::config::ServerConfig::from_toml(text)
            .expect("config/canal-server-kafka.toml is valid");
        let mq = cfg.destinations["example"].mq.clone().expect("mq section");
        assert_eq!(mq.mode, MqMode::Kafka);
        assert_eq!(mq.compression, KafkaCompression::None);
        assert_eq!(mq.max_message_bytes, 1_048_576);
    }

    #[test]
    fn kafka_keys_are_checked() {
        let base = "mode = \"kafka\"\nservers = \"127.0.0.1:9092\"\n";
        assert!(parse(base).is_ok());
        assert!(parse(&format!("{base}compression = \"zstd\"\nacks = \"-1\"\n")).is_ok());
        let e = parse(&format!("{base}acks = \"1\"\n")).unwrap_err();
        assert!(e.contains("destinations.x.mq.acks"), "{e}");
        let e = parse("mode = \"kafka\"\nservers = \"amqp://h:1\"\n").unwrap_err();
        assert!(e.contains("destinations.x.mq.servers"), "{e}");
        assert!(parse(&format!("{base}compression = \"brotli\"\n")).is_err());
        // RabbitMQ ignores the Kafka keys' defaults.
        assert!(parse("servers = \"amqp://h:1/%2f\"\n").is_ok());
    }
}
