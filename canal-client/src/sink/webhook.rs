//! `webhook`: each batch POSTed as a JSON array of Canal flat messages.
//!
//! The batch is acked only after a 2xx reply. Any other status, a timeout or a connection error
//! is retried with capped backoff, forever by default, so a batch is never skipped. With a
//! dead-letter file configured (explicitly), a batch that failed `max_attempts` times is appended
//! to that file as one JSON line and then acked.

use std::io::Write as _;
use std::path::PathBuf;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::{Batch, RetryPolicy, Sink, SinkError};

/// Where batches go after too many failures.
#[derive(Debug, Clone)]
pub struct DeadLetter {
    /// Appended to, one JSON line per batch.
    pub path: PathBuf,
    /// Failed attempts before a batch goes there (≥ 1).
    pub max_attempts: u32,
}

/// Settings of a [`Webhook`].
#[derive(Debug, Clone)]
pub struct WebhookOptions {
    /// The endpoint (`http://` or `https://`).
    pub url: String,
    /// Extra request headers.
    pub headers: Vec<(String, String)>,
    /// Bound on one request, connect to last byte of the reply.
    pub timeout: Duration,
    /// Pauses between attempts.
    pub retry: RetryPolicy,
    /// Off unless set.
    pub dead_letter: Option<DeadLetter>,
    /// POST batches without row changes (only transaction markers) as `[]` too.
    pub post_empty: bool,
}

/// Why a webhook could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    /// Not an absolute http(s) URL.
    #[error("webhook URL {url:?}: {reason}")]
    BadUrl {
        /// The URL given.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A header that is not `Name: value` or not valid in HTTP.
    #[error("header {0:?}: expected \"Name: value\" with a valid HTTP name and value")]
    BadHeader(String),
    /// The HTTP client could not be built.
    #[error("HTTP client: {0}")]
    Client(String),
    /// `max_attempts` 0 or an unusable dead-letter path.
    #[error("dead letter: {0}")]
    DeadLetter(String),
}

/// POSTs batches to a URL.
pub struct Webhook {
    client: reqwest::Client,
    options: WebhookOptions,
    url: reqwest::Url,
}

impl Webhook {
    /// Checks the URL, headers and dead-letter settings and builds the client.
    pub fn new(options: WebhookOptions) -> Result<Self, WebhookError> {
        let url = reqwest::Url::parse(&options.url).map_err(|e| WebhookError::BadUrl {
            url: options.url.clone(),
            reason: e.to_string(),
        })?;
        if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
            return Err(WebhookError::BadUrl {
                url: options.url.clone(),
                reason: "must be http:// or https:// with a host".into(),
            });
        }
        let mut headers = reqwest::header::HeaderMap::new();
        for (name, value) in &options.headers {
            let n = reqwest::header::HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| WebhookError::BadHeader(format!("{name}: {value}")))?;
            let v = reqwest::header::HeaderValue::from_str(value)
                .map_err(|_| WebhookError::BadHeader(format!("{name}: {value}")))?;
            headers.insert(n, v);
        }
        if let Some(dl) = &options.dead_letter {
            if dl.max_attempts == 0 {
                return Err(WebhookError::DeadLetter(
                    "max attempts must be at least 1".into(),
                ));
            }
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&dl.path)
                .map_err(|e| WebhookError::DeadLetter(format!("{}: {e}", dl.path.display())))?;
        }
        let client = reqwest::Client::builder()
            .default_headers(headers)
            .timeout(options.timeout)
            .connect_timeout(options.timeout)
            .build()
            .map_err(|e| WebhookError::Client(e.to_string()))?;
        Ok(Self {
            client,
            options,
            url,
        })
    }

    async fn post(&self, batch: &Batch<'_>, body: &[u8]) -> Result<(), String> {
        let reply = self
            .client
            .post(self.url.clone())
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header("X-Canal-Destination", batch.destination)
            .header("X-Canal-Batch-Id", batch.id.to_string())
            .body(body.to_vec())
            .send()
            .await
            .map_err(|e| describe(&e))?;
        let status = reply.status();
        if status.is_success() {
            return Ok(());
        }
        let text = reply.text().await.unwrap_or_default();
        let text: String = text.chars().take(200).collect();
        Err(format!("HTTP {status}: {}", text.trim()))
    }

    fn dead_letter(
        &self,
        dl: &DeadLetter,
        batch: &Batch<'_>,
        body: &[u8],
        error: &str,
    ) -> Result<(), SinkError> {
        let line = format!(
            "{{\"batchId\":{},\"destination\":{},\"error\":{},\"messages\":{}}}\n",
            batch.id,
            serde_json::Value::from(batch.destination),
            serde_json::Value::from(error),
            String::from_utf8_lossy(body)
        );
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&dl.path)
            .map_err(|e| SinkError::Fatal(format!("dead letter {}: {e}", dl.path.display())))?;
        f.write_all(line.as_bytes())
            .and_then(|()| f.sync_data())
            .map_err(|e| SinkError::Fatal(format!("dead letter {}: {e}", dl.path.display())))
    }
}

/// reqwest's error with its causes (the top one alone says little: "error sending request").
fn describe(e: &reqwest::Error) -> String {
    let mut s = if e.is_timeout() {
        "timed out".to_string()
    } else {
        e.to_string()
    };
    let mut source = std::error::Error::source(e);
    while let Some(cause) = source {
        s.push_str(": ");
        s.push_str(&cause.to_string());
        source = cause.source();
    }
    s
}

impl Sink for Webhook {
    fn name(&self) -> &'static str {
        "webhook"
    }

    async fn deliver(
        &mut self,
        batch: &Batch<'_>,
        stop: &CancellationToken,
    ) -> Result<(), SinkError> {
        if batch.messages.is_empty() && !self.options.post_empty {
            return Ok(());
        }
        let body = serde_json::to_vec(batch.messages)
            .map_err(|e| SinkError::Fatal(format!("encoding the batch: {e}")))?;
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            let result = tokio::select! {
                _ = stop.cancelled() => return Err(SinkError::Cancelled),
                r = self.post(batch, &body) => r,
            };
            let error = match result {
                Ok(()) => {
                    if attempt > 1 {
                        info!(
                            batch_id = batch.id,
                            attempt, "webhook: delivered after retrying"
                        );
                    }
                    return Ok(());
                }
                Err(e) => e,
            };
            metrics::counter!("canal_client_sink_failures_total", "sink" => "webhook").increment(1);
            if let Some(dl) = &self.options.dead_letter {
                if attempt >= dl.max_attempts {
                    warn!(batch_id = batch.id, attempt, %error, path = %dl.path.display(),
                        "webhook: giving up on the batch; written to the dead-letter file");
                    self.dead_letter(dl, batch, &body, &error)?;
                    metrics::counter!("canal_client_dead_letter_batches_total").increment(1);
                    return Ok(());
                }
            }
            let delay = self.options.retry.delay(attempt);
            warn!(batch_id = batch.id, attempt, %error, retry_in_ms = delay.as_millis() as u64,
                "webhook: POST failed; retrying");
            self.options.retry.pause(attempt, stop).await?;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(url: &str) -> WebhookOptions {
        WebhookOptions {
            url: url.into(),
            headers: vec![],
            timeout: Duration::from_secs(1),
            retry: RetryPolicy::default(),
            dead_letter: None,
            post_empty: false,
        }
    }

    #[test]
    fn bad_urls_and_headers_are_clear_errors() {
        for (url, want) in [
            ("localhost:8080/x", "must be http"),
            ("ftp://x/y", "must be http"),
            ("http//x", "relative URL"),
            ("", "relative URL"),
        ] {
            let e = Webhook::new(opts(url)).err().unwrap().to_string();
            assert!(e.contains(want), "{url}: {e}");
        }
        let mut o = opts("http://127.0.0.1:1/");
        o.headers = vec![("Bad Name".into(), "x".into())];
        assert!(Webhook::new(o)
            .err()
            .unwrap()
            .to_string()
            .contains("Bad Name"));
        let mut o = opts("http://127.0.0.1:1/");
        o.dead_letter = Some(DeadLetter {
            path: "/nonexistent-dir/x".into(),
            max_attempts: 3,
        });
        assert!(Webhook::new(o)
            .err()
            .unwrap()
            .to_string()
            .contains("/nonexistent-dir/x"));
    }
}
