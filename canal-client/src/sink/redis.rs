//! `redis-invalidate`: turns row changes of configured tables into Redis key deletions (or
//! publications), so caches in front of MySQL drop what changed.
//!
//! For each UPDATE the keys are rendered from the before **and** the after image (when a key
//! column changed, both the old and the new key are stale); for each DELETE from the before image;
//! INSERTs only when asked (`include_inserts`, for caches that remember misses). The keys of a
//! batch are deduplicated and sent in one pipeline; the batch is acked only after Redis answered
//! every command. Connection errors and timeouts are retried with capped backoff, forever.

use std::collections::HashSet;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use super::template::{KeyTemplate, Rendered, TemplateError};
use super::{Batch, RetryPolicy, Sink, SinkError};
use crate::view::{EntryView, RowChangeView};
use crate::EventType;

/// Key templates for one table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableKeys {
    /// `schema.table`, matched exactly.
    pub table: String,
    /// Templates rendered for each changed row.
    pub templates: Vec<KeyTemplate>,
}

/// What to do with each stale key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Invalidation {
    /// `DEL key …`.
    Delete,
    /// `PUBLISH channel key`, one per key, for caches that listen.
    Publish {
        /// The channel.
        channel: String,
    },
}

/// Settings of a [`RedisInvalidate`].
#[derive(Debug, Clone)]
pub struct RedisOptions {
    /// `redis://[:password@]host:port/db`.
    pub url: String,
    /// Tables and their key templates.
    pub tables: Vec<TableKeys>,
    /// Delete or publish.
    pub mode: Invalidation,
    /// Invalidate on INSERT too (after image).
    pub include_inserts: bool,
    /// Bound on connecting and on each pipeline's replies.
    pub timeout: Duration,
    /// Pauses between attempts.
    pub retry: RetryPolicy,
}

/// Why the sink could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum RedisSinkError {
    /// A `--key` argument that is not `schema.table=template`.
    #[error("key rule {rule:?}: {reason}")]
    BadRule {
        /// The argument.
        rule: String,
        /// What is wrong.
        reason: String,
    },
    /// A template that does not parse.
    #[error(transparent)]
    Template(#[from] TemplateError),
    /// A URL the Redis client refuses.
    #[error("redis URL {url:?}: {reason}")]
    BadUrl {
        /// The URL.
        url: String,
        /// Why.
        reason: String,
    },
    /// No table configured.
    #[error("no table to invalidate: give at least one rule like shop.user=user:{{id}}")]
    NoTables,
}

/// Parses `schema.table=template` rules (several per table allowed) into [`TableKeys`].
pub fn parse_rules<'a>(
    rules: impl IntoIterator<Item = &'a str>,
) -> Result<Vec<TableKeys>, RedisSinkError> {
    let mut tables: Vec<TableKeys> = Vec::new();
    for rule in rules {
        let bad = |reason: &str| RedisSinkError::BadRule {
            rule: rule.into(),
            reason: reason.into(),
        };
        let (table, template) = rule
            .split_once('=')
            .ok_or_else(|| bad("expected schema.table=template, e.g. shop.user=user:{id}"))?;
        let table = table.trim();
        let Some((schema, name)) = table.split_once('.') else {
            return Err(bad("the table must be written schema.table"));
        };
        if schema.is_empty() || name.is_empty() || name.contains('.') {
            return Err(bad("the table must be written schema.table"));
        }
        let template = KeyTemplate::parse(template)?;
        match tables.iter_mut().find(|t| t.table == table) {
            Some(t) => t.templates.push(template),
            None => tables.push(TableKeys {
                table: table.into(),
                templates: vec![template],
            }),
        }
    }
    if tables.is_empty() {
        return Err(RedisSinkError::NoTables);
    }
    Ok(tables)
}

/// Invalidates Redis keys for row changes.
pub struct RedisInvalidate {
    client: redis::Client,
    conn: Option<redis::aio::MultiplexedConnection>,
    options: RedisOptions,
}

impl RedisInvalidate {
    /// Checks the URL (no connection is made until the first batch).
    pub fn new(options: RedisOptions) -> Result<Self, RedisSinkError> {
        if options.tables.is_empty() {
            return Err(RedisSinkError::NoTables);
        }
        let client =
            redis::Client::open(options.url.as_str()).map_err(|e| RedisSinkError::BadUrl {
                url: options.url.clone(),
                reason: e.to_string(),
            })?;
        Ok(Self {
            client,
            conn: None,
            options,
        })
    }

    /// The stale keys of a batch, deduplicated, in order of appearance.
    pub fn keys_of(&self, batch: &Batch<'_>) -> Result<Vec<String>, SinkError> {
        let mut keys = Vec::new();
        let mut seen = HashSet::new();
        for entry in batch.entries {
            let Ok(EntryView::RowChange(change)) = EntryView::decode(entry) else {
                continue;
            };
            if !change.is_dml() {
                continue;
            }
            let full = format!("{}.{}", change.schema(), change.table());
            let Some(rule) = self.options.tables.iter().find(|t| t.table == full) else {
                continue;
            };
            for (image, row) in images(&change, self.options.include_inserts) {
                for template in &rule.templates {
                    match template.render(row) {
                        Rendered::Key(k) => {
                            if seen.insert(k.clone()) {
                                keys.push(k);
                            }
                        }
                        Rendered::NullColumn(c) => {
                            debug!(table = %full, %template, column = %c, image, "no key: column is NULL");
                        }
                        Rendered::MissingColumn(c) => {
                            let have: Vec<&str> = row.names().collect();
                            return Err(SinkError::Fatal(format!(
                                "key template {template} for {full}: the {image} image has no column {c:?} (columns: {})",
                                have.join(", ")
                            )));
                        }
                    }
                }
            }
        }
        Ok(keys)
    }

    async fn connection(&mut self) -> Result<redis::aio::MultiplexedConnection, String> {
        if let Some(c) = &self.conn {
            return Ok(c.clone());
        }
        let config = redis::AsyncConnectionConfig::new()
            .set_connection_timeout(self.options.timeout)
            .set_response_timeout(self.options.timeout);
        let c = self
            .client
            .get_multiplexed_async_connection_with_config(&config)
            .await
            .map_err(|e| e.to_string())?;
        self.conn = Some(c.clone());
        Ok(c)
    }

    async fn send(&mut self, keys: &[String]) -> Result<(), String> {
        let mut conn = self.connection().await?;
        let mut pipe = redis::pipe();
        match &self.options.mode {
            Invalidation::Delete => {
                for chunk in keys.chunks(500) {
                    pipe.cmd("DEL").arg(chunk).ignore();
                }
            }
            Invalidation::Publish { channel } => {
                for k in keys {
                    pipe.cmd("PUBLISH").arg(channel).arg(k).ignore();
                }
            }
        }
        let r: Result<(), redis::RedisError> = pipe.query_async(&mut conn).await;
        r.map_err(|e| {
            // A broken connection is replaced on the next attempt.
            self.conn = None;
            e.to_string()
        })
    }
}

/// The row images whose keys are stale: (image name, columns).
fn images(
    change: &RowChangeView,
    include_inserts: bool,
) -> Vec<(&'static str, &crate::view::Columns)> {
    let mut out = Vec::new();
    for row in change.rows() {
        match change.event_type() {
            EventType::Update => {
                out.push(("before", &row.before));
                out.push(("after", &row.after));
            }
            EventType::Delete => out.push(("before", &row.before)),
            EventType::Insert if include_inserts => out.push(("after", &row.after)),
            _ => {}
        }
    }
    out
}

impl Sink for RedisInvalidate {
    fn name(&self) -> &'static str {
        "redis"
    }

    async fn deliver(
        &mut self,
        batch: &Batch<'_>,
        stop: &CancellationToken,
    ) -> Result<(), SinkError> {
        let keys = self.keys_of(batch)?;
        if keys.is_empty() {
            return Ok(());
        }
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            let result = tokio::select! {
                _ = stop.cancelled() => return Err(SinkError::Cancelled),
                r = self.send(&keys) => r,
            };
            match result {
                Ok(()) => {
                    metrics::counter!("canal_client_invalidated_keys_total")
                        .increment(keys.len() as u64);
                    if attempt > 1 {
                        info!(
                            batch_id = batch.id,
                            attempt,
                            keys = keys.len(),
                            "redis: invalidated after retrying"
                        );
                    }
                    return Ok(());
                }
                Err(error) => {
                    self.conn = None;
                    metrics::counter!("canal_client_sink_failures_total", "sink" => "redis")
                        .increment(1);
                    let delay = self.options.retry.delay(attempt);
                    warn!(batch_id = batch.id, attempt, %error, retry_in_ms = delay.as_millis() as u64,
                        "redis: invalidation failed; retrying");
                    self.options.retry.pause(attempt, stop).await?;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_parse_and_merge_per_table() {
        let t = parse_rules([
            "shop.user=user:{id}",
            "shop.user=email:{email}",
            "shop.order=order:{id}",
        ])
        .unwrap();
        assert_eq!(t.len(), 2);
        assert_eq!(t[0].table, "shop.user");
        assert_eq!(t[0].templates.len(), 2);
        for (rule, want) in [
            ("shop.user", "expected schema.table=template"),
            ("user=user:{id}", "schema.table"),
            ("a.b.c=x:{id}", "schema.table"),
            ("shop.user=user:{id", "is not closed"),
        ] {
            let e = parse_rules([rule]).unwrap_err().to_string();
            assert!(e.contains(want), "{rule}: {e}");
        }
        assert!(parse_rules([])
            .unwrap_err()
            .to_string()
            .contains("no table"));
    }

    #[test]
    fn bad_url_is_a_clear_error() {
        let e = RedisInvalidate::new(RedisOptions {
            url: "http://x".into(),
            tables: parse_rules(["a.b=k:{id}"]).unwrap(),
            mode: Invalidation::Delete,
            include_inserts: false,
            timeout: Duration::from_secs(1),
            retry: RetryPolicy::default(),
        })
        .err()
        .unwrap()
        .to_string();
        assert!(e.contains("http://x"), "{e}");
    }
}
