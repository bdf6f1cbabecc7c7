//! The [`Loader`]: a bounded pool to the target that applies batches, table by table in weight
//! order, each table in one transaction redone with backoff after a retryable failure.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Opts, OptsBuilder, Pool, PoolConstraints, PoolOpts, TxOpts};
use tokio_util::sync::CancellationToken;
use tracing::warn;

use crate::batch::{DdlEvent, LoadBatch};
use crate::model::TargetDb;
use crate::pipeline::load::error::{
    failure, is_retryable, server_code, sql_excerpt, Failure, DDL_ALREADY_APPLIED,
};
use crate::pipeline::load::literal::push_ident;
use crate::pipeline::load::sql::{plan, TablePlan};
use crate::pipeline::load::{merge, LoadError};
use crate::runtime::retry::Backoff;

/// Most connections the [`Loader`] opens to the target (tables of one weight beyond this wait).
pub const MAX_CONNECTIONS: usize = 8;
/// First wait before redoing a table's transaction after a retryable error.
pub const BACKOFF_MIN: Duration = Duration::from_millis(100);
/// Longest wait between two attempts.
pub const BACKOFF_MAX: Duration = Duration::from_secs(5);
/// What a [`Loader::load`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LoadStats {
    /// Row changes written after [`merge()`] (one per key and table).
    pub rows: usize,
    /// Statements executed in the attempts that committed (DDL counts one).
    pub statements: usize,
    /// Transactions (or DDL) redone after a retryable error.
    pub retries: usize,
}

impl LoadStats {
    fn add(&mut self, other: LoadStats) {
        self.rows += other.rows;
        self.statements += other.statements;
        self.retries += other.retries;
    }
}

/// Writes batches into the target database through a bounded connection pool.
#[derive(Debug)]
pub struct Loader {
    pub(super) pool: Pool,
    opts: Opts,
    retries: AtomicU64,
}

/// Splits `host:port` (`[v6]:port`; no port means 3306).
fn parse_address(address: &str) -> Result<(String, u16), LoadError> {
    canal_protocol::HostPort::mysql(address)
        .map(|a| (a.host, a.port))
        .map_err(|e| LoadError::Address {
            address: address.to_string(),
            reason: e.reason.to_string(),
        })
}

impl Loader {
    /// A loader for `target` with a pool of at most [`MAX_CONNECTIONS`] connections (opened on
    /// demand; nothing is connected yet).
    pub fn new(target: &TargetDb) -> Result<Self, LoadError> {
        let (host, port) = parse_address(&target.address)?;
        let constraints = PoolConstraints::new(0, MAX_CONNECTIONS).unwrap_or_default();
        let pool_opts = PoolOpts::default()
            .with_constraints(constraints)
            .with_inactive_connection_ttl(Duration::from_secs(60));
        let password = (!target.password.is_empty()).then(|| target.password.clone());
        let opts: Opts = OptsBuilder::default()
            .ip_or_hostname(host)
            .tcp_port(port)
            .user(Some(target.username.clone()))
            .pass(password)
            .prefer_socket(false)
            .tcp_keepalive(Some(Duration::from_secs(30)))
            .pool_opts(pool_opts)
            .into();
        Ok(Loader {
            pool: Pool::new(opts.clone()),
            opts,
            retries: AtomicU64::new(0),
        })
    }

    /// Retries (of table transactions and DDL) since the loader was created, over all loads.
    pub fn total_retries(&self) -> u64 {
        self.retries.load(Ordering::Relaxed)
    }

    /// Closes the pool's connections.
    pub async fn close(self) {
        if let Err(e) = self.pool.disconnect().await {
            warn!(error = %e, "load: closing the target connection pool");
        }
    }

    /// Applies `batch`: its DDL alone, or its row changes merged, table by table in ascending
    /// weight (tables of one weight in parallel), each table in one transaction. Retryable
    /// failures are retried with backoff until `stop` is cancelled ([`LoadError::Cancelled`]).
    /// Loading the same batch again leaves the target as it is.
    pub async fn load(
        &self,
        batch: LoadBatch,
        stop: &CancellationToken,
    ) -> Result<LoadStats, LoadError> {
        if stop.is_cancelled() {
            return Err(LoadError::Cancelled);
        }
        if let Some(ddl) = &batch.ddl {
            if !batch.rows.is_empty() {
                return Err(LoadError::DdlWithRows {
                    rows: batch.rows.len(),
                });
            }
            return self.load_ddl(ddl, stop).await;
        }
        let merged = merge(batch.rows);
        // Every statement is built before anything is written: a bad value fails the batch
        // without touching the target.
        let plan = plan(&merged)?;
        let mut stats = LoadStats::default();
        for (_weight, tables) in &plan {
            let results =
                futures::future::join_all(tables.iter().map(|t| self.load_table(t, stop))).await;
            let mut first_error = None;
            for r in results {
                match r {
                    Ok(s) => stats.add(s),
                    Err(e) => {
                        // Cancelled only if nothing worse happened.
                        if first_error.is_none()
                            || matches!(first_error, Some(LoadError::Cancelled))
                        {
                            first_error = Some(e);
                        }
                    }
                }
            }
            if let Some(e) = first_error {
                return Err(e);
            }
        }
        Ok(stats)
    }

    /// One table's transaction, redone after retryable failures.
    async fn load_table(
        &self,
        table: &TablePlan,
        stop: &CancellationToken,
    ) -> Result<LoadStats, LoadError> {
        let (outcome, retries) = self
            .with_retries(&table.name, stop, || self.apply_table(table))
            .await?;
        match outcome {
            Ok(()) => {
                metrics::counter!("otter_load_rows_total").increment(table.rows as u64);
                Ok(LoadStats {
                    rows: table.rows,
                    statements: table.statements.len(),
                    retries,
                })
            }
            Err(f) => Err(LoadError::Sql {
                table: table.name.clone(),
                sql: sql_excerpt(&f.sql),
                source: f.error,
            }),
        }
    }

    /// Runs `attempt` until it succeeds or fails with an error that is not retryable, waiting with
    /// a doubling backoff (`BACKOFF_MIN` to `BACKOFF_MAX`) after each retryable failure; cancelled
    /// when `stop` fires. Returns the last attempt's outcome and how many retries it took.
    async fn with_retries<F, Fut>(
        &self,
        what: &str,
        stop: &CancellationToken,
        mut attempt: F,
    ) -> Result<(Result<(), Failure>, usize), LoadError>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<(), Failure>>,
    {
        let mut retries = 0usize;
        let mut backoff = Backoff::new(BACKOFF_MIN, BACKOFF_MAX);
        loop {
            let outcome = tokio::select! {
                biased;
                _ = stop.cancelled() => return Err(LoadError::Cancelled),
                r = attempt() => r,
            };
            match outcome {
                Err(f) if is_retryable(&f.error) => {
                    retries += 1;
                    let backoff = backoff.next_wait();
                    self.note_retry(what, &f.error, retries, backoff);
                    wait(backoff, stop).await?;
                }
                outcome => return Ok((outcome, retries)),
            }
        }
    }

    fn note_retry(&self, what: &str, error: &mysql_async::Error, attempt: usize, wait: Duration) {
        self.retries.fetch_add(1, Ordering::Relaxed);
        metrics::counter!("otter_load_retries_total").increment(1);
        warn!(
            table = %what,
            error = %error,
            attempt,
            wait_ms = wait.as_millis() as u64,
            "load: retryable error; rolling back and redoing the transaction"
        );
    }

    /// One attempt: deletes then upserts in one transaction, committed.
    async fn apply_table(&self, table: &TablePlan) -> Result<(), Failure> {
        let mut conn = self.pool.get_conn().await.map_err(failure("(connect)"))?;
        let mut tx = conn
            .start_transaction(TxOpts::default())
            .await
            .map_err(failure("START TRANSACTION"))?;
        for sql in &table.statements {
            if let Err(error) = tx.query_drop(sql.as_str()).await {
                if matches!(error, mysql_async::Error::Server(_)) {
                    // The connection still works: end the transaction now. (A broken one is
                    // dropped; the pool rolls back or discards it.)
                    let _ = tx.rollback().await;
                }
                return Err(Failure {
                    error,
                    sql: sql.clone(),
                });
            }
        }
        tx.commit().await.map_err(failure("COMMIT"))
    }

    /// Runs a DDL statement in its schema, on a connection of its own, retried like a table.
    async fn load_ddl(
        &self,
        ddl: &DdlEvent,
        stop: &CancellationToken,
    ) -> Result<LoadStats, LoadError> {
        let (outcome, retries) = self
            .with_retries(&ddl.schema, stop, || self.apply_ddl(ddl))
            .await?;
        let applied = LoadStats {
            rows: 0,
            statements: 1,
            retries,
        };
        match outcome {
            Ok(()) => Ok(applied),
            Err(f) if server_code(&f.error).is_some_and(|c| DDL_ALREADY_APPLIED.contains(&c)) => {
                warn!(
                    schema = %ddl.schema,
                    error = %f.error,
                    sql = %sql_excerpt(&ddl.sql),
                    "load: DDL already applied on the target; skipped"
                );
                Ok(applied)
            }
            Err(f) => Err(LoadError::Sql {
                table: ddl.schema.clone(),
                sql: sql_excerpt(&f.sql),
                source: f.error,
            }),
        }
    }

    async fn apply_ddl(&self, ddl: &DdlEvent) -> Result<(), Failure> {
        // A fresh connection: `USE` must not leak into pooled connections, and a DDL whose
        // schema does not exist yet (CREATE DATABASE) runs without a default schema.
        let mut conn = Conn::new(self.opts.clone())
            .await
            .map_err(failure("(connect)"))?;
        let result = async {
            if !ddl.schema.is_empty() {
                let mut use_sql = String::from("USE ");
                push_ident(&mut use_sql, &ddl.schema, &ddl.schema).map_err(|e| Failure {
                    error: mysql_async::Error::Other(Box::new(e)),
                    sql: "USE".into(),
                })?;
                match conn.query_drop(use_sql.as_str()).await {
                    Ok(()) => {}
                    // ER_BAD_DB_ERROR: the schema is created by this DDL (or does not exist).
                    Err(e) if server_code(&e) == Some(1049) => {}
                    Err(e) => {
                        return Err(Failure {
                            error: e,
                            sql: use_sql,
                        })
                    }
                }
            }
            conn.query_drop(ddl.sql.as_str())
                .await
                .map_err(failure(&ddl.sql))
        }
        .await;
        let _ = conn.disconnect().await;
        result
    }
}

/// Sleeps `d` unless `stop` is cancelled first.
async fn wait(d: Duration, stop: &CancellationToken) -> Result<(), LoadError> {
    tokio::select! {
        biased;
        _ = stop.cancelled() => Err(LoadError::Cancelled),
        _ = tokio::time::sleep(d) => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses() {
        assert_eq!(parse_address("db:3307").unwrap(), ("db".into(), 3307));
        assert_eq!(parse_address("db").unwrap(), ("db".into(), 3306));
        assert_eq!(parse_address("[::1]:3308").unwrap(), ("::1".into(), 3308));
        assert!(parse_address("db:x").is_err());
        assert!(parse_address(":3306").is_err());
    }
}
