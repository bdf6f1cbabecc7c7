//! Kafka producer (Kafka protocol through `rskafka`, pure Rust). Every produce request waits for
//! all in-sync replicas (`acks = -1`, which `rskafka` always sends), so a produce that returns
//! is a broker's confirm.
//!
//! Order: one worker task produces the sent batches strictly one after the other. Within a batch,
//! the messages of one `(topic, partition)` go in one request (or several in order, when they
//! exceed `max_message_bytes` together), and different partitions are produced concurrently.
//! Once a batch fails, the worker fails every batch queued behind it without producing it, so a
//! later batch never lands before an earlier one that the publisher will re-send: a retry can
//! only duplicate the unconfirmed tail, never reorder a key.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use rskafka::client::error::{Error as KafkaError, ProtocolError};
use rskafka::client::partition::{Compression, PartitionClient, UnknownTopicHandling};
use rskafka::client::{Client, ClientBuilder};
use rskafka::record::Record;
use rskafka::BackoffConfig;
use tokio::sync::{mpsc, oneshot};

use super::config::KafkaCompression;
use super::{MqConfig, MqError, Outgoing};

/// Splits `kafka.bootstrap.servers` (`host:port,host:port`) into its addresses.
pub fn parse_servers(servers: &str) -> Result<Vec<String>, String> {
    let list: Vec<String> = servers
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect();
    if list.is_empty() {
        return Err("must name at least one host:port".into());
    }
    for s in &list {
        let port = s.rsplit_once(':').map(|(h, p)| (h, p.parse::<u16>()));
        if s.contains("://") || !matches!(port, Some((h, Ok(_))) if !h.is_empty()) {
            return Err(format!(
                "{s:?} is not host:port (Kafka takes host:port pairs, comma separated)"
            ));
        }
    }
    Ok(list)
}

/// The broker's answer to one sent batch, received by [`KafkaProducer::confirm`].
pub struct Pending(oneshot::Receiver<Result<(), MqError>>);

struct Job {
    records: Vec<(String, i32, Record)>,
    done: oneshot::Sender<Result<(), MqError>>,
}

/// A connected producer: a client and the worker task that produces batches in order.
pub struct KafkaProducer {
    jobs: mpsc::Sender<Job>,
    worker: tokio::task::JoinHandle<()>,
    confirm_timeout: Duration,
}

impl KafkaProducer {
    /// Connects to the bootstrap servers (`servers`, already resolved from `env:`).
    pub async fn connect(c: &MqConfig, servers: &str) -> Result<Self, MqError> {
        let brokers = parse_servers(servers).map_err(MqError::Broker)?;
        let confirm_timeout = Duration::from_millis(c.confirm_timeout_ms.max(1));
        let connect_timeout = Duration::from_millis(c.connect_timeout_ms.max(100));
        let backoff = BackoffConfig {
            init_backoff: Duration::from_millis(50),
            max_backoff: Duration::from_millis(c.max_retry_backoff_ms.clamp(100, 1_000)),
            base: 2.0,
            // rskafka retries inside a request; past this it gives up and the publisher retries.
            deadline: Some(confirm_timeout),
        };
        let client = tokio::time::timeout(
            connect_timeout,
            ClientBuilder::new(brokers)
                .client_id("canal-server")
                .backoff_config(backoff)
                .build(),
        )
        .await
        .map_err(|_| MqError::Broker(format!("no connection within {connect_timeout:?}")))?
        .map_err(|e| MqError::Broker(format!("connect: {e}")))?;
        let (jobs, rx) = mpsc::channel(c.max_in_flight_batches.max(1));
        let worker = Worker {
            client,
            partitions: HashMap::new(),
            compression: compression(c.compression),
            max_request_bytes: c.max_message_bytes,
            timeout: confirm_timeout,
            failed: None,
        };
        Ok(Self {
            jobs,
            worker: tokio::spawn(worker.run(rx)),
            confirm_timeout,
        })
    }

    /// Queues `batch` for producing, after every batch sent before it.
    pub async fn send(&self, batch: &[Outgoing]) -> Result<Pending, MqError> {
        let timestamp =
            rskafka::chrono::DateTime::from_timestamp_millis(canal_client::flat::now_ms())
                .unwrap_or_default();
        let records = batch
            .iter()
            .map(|m| {
                let partition = i32::try_from(m.partition.unwrap_or(0))
                    .map_err(|_| MqError::Encode(format!("partition {:?}", m.partition)))?;
                let record = Record {
                    // Canal's Kafka producer sends no key: the partition is chosen here.
                    key: None,
                    value: Some(m.payload.clone()),
                    headers: Default::default(),
                    timestamp,
                };
                Ok((m.topic.clone(), partition, record))
            })
            .collect::<Result<Vec<_>, MqError>>()?;
        let (done, rx) = oneshot::channel();
        self.jobs
            .send(Job { records, done })
            .await
            .map_err(|_| MqError::Broker("the Kafka producer task ended".into()))?;
        Ok(Pending(rx))
    }

    /// Waits until the broker acknowledged every message of a sent batch.
    pub async fn confirm(&self, pending: Pending) -> Result<(), MqError> {
        // The worker bounds each batch by the confirm timeout; this is a backstop.
        match tokio::time::timeout(self.confirm_timeout * 2, pending.0).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err(MqError::Broker("the Kafka producer task ended".into())),
            Err(_) => Err(MqError::Broker(format!(
                "no acknowledgement within {:?}",
                self.confirm_timeout * 2
            ))),
        }
    }

    /// Stops the worker; batches not yet produced are dropped (the publisher re-sends them).
    pub async fn close(self) {
        drop(self.jobs);
        self.worker.abort();
        let _ = self.worker.await;
    }
}

fn compression(c: KafkaCompression) -> Compression {
    match c {
        KafkaCompression::None => Compression::NoCompression,
        KafkaCompression::Gzip => Compression::Gzip,
        KafkaCompression::Snappy => Compression::Snappy,
        KafkaCompression::Lz4 => Compression::Lz4,
        KafkaCompression::Zstd => Compression::Zstd,
    }
}

struct Worker {
    client: Client,
    partitions: HashMap<(String, i32), Arc<PartitionClient>>,
    compression: Compression,
    max_request_bytes: usize,
    timeout: Duration,
    /// Set by the first failed batch: later batches are failed unproduced.
    failed: Option<MqError>,
}

impl Worker {
    async fn run(mut self, mut jobs: mpsc::Receiver<Job>) {
        while let Some(job) = jobs.recv().await {
            let result = match &self.failed {
                Some(e) => Err(e.clone()),
                None => match tokio::time::timeout(self.timeout, self.produce(job.records)).await {
                    Ok(r) => r,
                    Err(_) => Err(MqError::Broker(format!(
                        "no acknowledgement within {:?}",
                        self.timeout
                    ))),
                },
            };
            if let Err(e) = &result {
                self.failed.get_or_insert_with(|| e.clone());
            }
            let _ = job.done.send(result);
        }
    }

    async fn partition(&mut self, topic: &str, p: i32) -> Result<Arc<PartitionClient>, MqError> {
        let key = (topic.to_string(), p);
        if let Some(c) = self.partitions.get(&key) {
            return Ok(c.clone());
        }
        let c = self
            .client
            .partition_client(topic, p, UnknownTopicHandling::Error)
            .await
            .map_err(|e| classify(topic, p, e, 0, self.max_request_bytes))?;
        let c = Arc::new(c);
        self.partitions.insert(key, c.clone());
        Ok(c)
    }

    /// Produces one batch: per partition in order, partitions concurrently.
    async fn produce(&mut self, records: Vec<(String, i32, Record)>) -> Result<(), MqError> {
        let mut order: Vec<(String, i32)> = Vec::new();
        let mut groups: HashMap<(String, i32), Vec<Record>> = HashMap::new();
        for (topic, p, r) in records {
            let key = (topic, p);
            if !groups.contains_key(&key) {
                order.push(key.clone());
            }
            groups.entry(key).or_default().push(r);
        }
        let mut work = Vec::with_capacity(order.len());
        for key in order {
            let client = self.partition(&key.0, key.1).await?;
            let records = groups.remove(&key).unwrap_or_default();
            work.push((key, client, records));
        }
        let (compression, limit) = (self.compression, self.max_request_bytes);
        let results = futures::future::join_all(work.into_iter().map(
            |((topic, p), client, records)| async move {
                for chunk in chunks(records, limit) {
                    let bytes = chunk.iter().map(Record::approximate_size).sum();
                    client
                        .produce(chunk, compression)
                        .await
                        .map_err(|e| classify(&topic, p, e, bytes, limit))?;
                }
                Ok::<_, MqError>(())
            },
        ))
        .await;
        let failed = results.into_iter().find_map(Result::err);
        if let Some(e) = failed {
            // A partition that failed may have a stale leader or connection: ask again next time.
            self.partitions.clear();
            return Err(e);
        }
        Ok(())
    }
}

/// Splits one partition's records into requests of at most `limit` bytes (a record larger than
/// the limit goes alone; the message builder already applied the oversize policy to it).
fn chunks(records: Vec<Record>, limit: usize) -> Vec<Vec<Record>> {
    let mut out: Vec<Vec<Record>> = Vec::new();
    let mut size = 0;
    for r in records {
        let n = r.approximate_size();
        match out.last_mut() {
            Some(last) if size + n <= limit => last.push(r),
            _ => {
                out.push(vec![r]);
                size = 0;
            }
        }
        size += n;
    }
    out
}

/// Maps a client error to the publisher's: a message the broker refuses for its size stops the
/// publisher (retrying cannot help); everything else is retried.
fn classify(topic: &str, p: i32, e: KafkaError, bytes: usize, limit: usize) -> MqError {
    let too_large = matches!(
        &e,
        KafkaError::ServerError {
            protocol_error: ProtocolError::MessageTooLarge | ProtocolError::RecordListTooLarge,
            ..
        }
    );
    if too_large {
        return MqError::TooLarge {
            what: format!("a produce request to {topic}/{p} (the broker's message.max.bytes is lower than max_message_bytes)"),
            bytes,
            limit,
        };
    }
    let unknown = matches!(
        &e,
        KafkaError::ServerError {
            protocol_error: ProtocolError::UnknownTopicOrPartition,
            ..
        }
    );
    if unknown {
        return MqError::Broker(format!(
            "topic {topic:?} has no partition {p} on the broker: create the topic with enough partitions"
        ));
    }
    MqError::Broker(format!("produce to {topic}/{p}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn servers_are_host_port_pairs() {
        assert_eq!(
            parse_servers("a:9092, b:9093").unwrap(),
            vec!["a:9092".to_string(), "b:9093".to_string()]
        );
        assert!(parse_servers("amqp://x:1").is_err());
        assert!(parse_servers("a").is_err());
        assert!(parse_servers(":9092").is_err());
        assert!(parse_servers(" , ").is_err());
    }

    #[test]
    fn chunks_keep_order_and_limit() {
        let r = |n: usize| Record {
            key: None,
            value: Some(vec![0; n]),
            headers: Default::default(),
            timestamp: Default::default(),
        };
        let c = chunks(vec![r(100), r(100), r(5000), r(100)], 1000);
        let sizes: Vec<usize> = c.iter().map(Vec::len).collect();
        assert_eq!(sizes, vec![2, 1, 1]);
        assert_eq!(c[1][0].value.as_ref().map(Vec::len), Some(5000));
    }
}
