//! The [`Loader`]: a bounded pool to the target that applies batches, table by table in weight
//! order, each table in one transaction redone with backoff after a retryable failure, every
//! transaction [fenced](super::fence) by the Load lock's token and
//! [marked](crate::pipeline::loopback) with its channel and origin so no pipeline syncs it back.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Opts, OptsBuilder, Pool, PoolConstraints, PoolOpts, TxOpts};
use tokio_util::sync::CancellationToken;
use tracing::warn;

use crate::batch::{DdlEvent, LoadBatch};
use crate::model::TargetDb;
use crate::pipeline::load::error::{
    failure, is_retryable, server_code, sql_excerpt, Failure, DDL_ALREADY_APPLIED, ER_DUP_ENTRY,
};
use crate::pipeline::load::fence::{self, Fence};
use crate::pipeline::load::literal::push_ident;
use crate::pipeline::load::sql::{plan, plan_sharded, TablePlan};
use crate::pipeline::load::{conflict, merge, LoadError};
use crate::pipeline::loopback::{self, mark_slot};
use crate::runtime::retry::Backoff;
use canal_server::mysql_tls::MysqlTls;

/// Most connections the [`Loader`] opens to the target (tables and shards of one weight beyond
/// this wait), unless [`Loader::spreading`] asks for more.
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
    /// Transactions (the fence raise, tables, or DDL) redone after a retryable error.
    pub retries: usize,
}

impl LoadStats {
    fn add(&mut self, other: LoadStats) {
        self.rows += other.rows;
        self.statements += other.statements;
        self.retries += other.retries;
    }
}

/// What a [`Loader`] marks its transactions with ([`crate::pipeline::loopback`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MarkSpec {
    /// The channel of the pipeline (0: none).
    pub channel: u32,
    /// The pipeline (chooses the `retl_mark` rows it writes).
    pub pipeline: u32,
    /// The origin of changes that carry none: the pipeline's source site.
    pub source_site: String,
    /// The channel's priority site, for conflicts (see [`super::conflict`]).
    pub priority_site: String,
}

/// Writes batches into the target database through a bounded connection pool.
#[derive(Debug)]
pub struct Loader {
    /// Connections with the target's TLS setting.
    pool: Pool,
    /// The settings without TLS: for a `preferred` target that offers none ([`Loader::conn`]).
    plain: OptsBuilder,
    /// A pool without TLS, once a `preferred` target turned out to offer none.
    plain_pool: std::sync::OnceLock<Pool>,
    tls: MysqlTls,
    retries: AtomicU64,
    /// Set once `retl.retl_fence` and `retl.retl_mark` are known to exist.
    fence_table: AtomicBool,
    mark: MarkSpec,
    /// Connections one table's rows may be spread over ([`super::shard`]).
    pub(super) connections: usize,
    /// Which target tables may be spread.
    pub(super) shapes: super::shard::Shapes,
}

/// How one attempt at a transaction ended, short of an error.
enum Attempt {
    /// Committed.
    Committed,
    /// Rolled back: the target holds this newer fencing token.
    Fenced(i64),
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
        Self::with_pool(target, MAX_CONNECTIONS)
    }

    /// The same loader spreading each large table of a batch over up to `connections`
    /// connections by key, where that is safe ([`super::shard`]); 1 (the default) keeps a
    /// table on one. The pool grows to at least `connections`.
    pub fn spreading(self, target: &TargetDb, connections: usize) -> Result<Self, LoadError> {
        let connections = connections.max(1);
        let loader = if connections > MAX_CONNECTIONS {
            Self::with_pool(target, connections)?.marking(self.mark)
        } else {
            self
        };
        Ok(Self {
            connections,
            ..loader
        })
    }

    fn with_pool(target: &TargetDb, size: usize) -> Result<Self, LoadError> {
        let (host, port) = parse_address(&target.address)?;
        let constraints = PoolConstraints::new(0, size).unwrap_or_default();
        let pool_opts = PoolOpts::default()
            .with_constraints(constraints)
            .with_inactive_connection_ttl(Duration::from_secs(60));
        let password =
            zk_coord::secret::resolve(&target.password).map_err(|source| LoadError::Secret {
                address: target.address.clone(),
                source,
            })?;
        let password = (!password.is_empty()).then_some(password);
        let plain = OptsBuilder::default()
            .ip_or_hostname(host)
            .tcp_port(port)
            .user(Some(target.username.clone()))
            .pass(password)
            .prefer_socket(false)
            .tcp_keepalive(Some(Duration::from_secs(30)))
            .pool_opts(pool_opts);
        let opts: Opts = target.tls.apply(plain.clone()).into();
        Ok(Loader {
            pool: Pool::new(opts),
            plain,
            plain_pool: std::sync::OnceLock::new(),
            tls: target.tls.clone(),
            retries: AtomicU64::new(0),
            fence_table: AtomicBool::new(false),
            mark: MarkSpec::default(),
            connections: 1,
            shapes: Default::default(),
        })
    }

    /// A pooled connection to the target (TLS as configured; a `preferred` target that offers no
    /// TLS is used without from then on).
    pub(super) async fn conn(&self) -> Result<Conn, mysql_async::Error> {
        if let Some(p) = self.plain_pool.get() {
            return p.get_conn().await;
        }
        match self.pool.get_conn().await {
            Err(e) if self.tls.falls_back(&e) => {
                warn!("the target offers no TLS; ssl_mode = preferred goes on without");
                self.plain_pool
                    .get_or_init(|| Pool::new(Opts::from(self.plain.clone())))
                    .get_conn()
                    .await
            }
            r => r,
        }
    }

    /// The same loader marking each transaction for `mark`'s channel and source site.
    pub fn marking(self, mark: MarkSpec) -> Self {
        Self { mark, ..self }
    }

    /// Retries (of table transactions and DDL) since the loader was created, over all loads.
    pub fn total_retries(&self) -> u64 {
        self.retries.load(Ordering::Relaxed)
    }

    /// Closes the pool's connections.
    pub async fn close(self) {
        if let Some(p) = self.plain_pool.get() {
            let _ = p.clone().disconnect().await;
        }
        if let Err(e) = self.pool.disconnect().await {
            warn!(error = %e, "load: closing the target connection pool");
        }
    }

    /// Applies `batch`: its DDL alone, or its row changes merged, table by table in ascending
    /// weight (tables of one weight in parallel), each table in one transaction. Retryable
    /// failures are retried with backoff until `stop` is cancelled ([`LoadError::Cancelled`]).
    /// Loading the same batch again leaves the target as it is.
    ///
    /// Every transaction is fenced by `fence` (see [`super::fence`]): once the target holds a
    /// larger token for the pipeline, nothing more of this batch commits and the load fails with
    /// [`LoadError::Fenced`] (not retried). Creates `retl.retl_fence` on first use if missing.
    pub async fn load(
        &self,
        batch: LoadBatch,
        fence: Fence,
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
            let retries = self.raise_fence(fence, stop).await?;
            let origin = batch.ddl_origin().unwrap_or(&self.mark.source_site);
            let mut stats = self.load_ddl(ddl, origin, stop).await?;
            // An index may have come or gone: read the tables' shapes again.
            self.shapes.clear();
            stats.retries += retries;
            return Ok(stats);
        }
        // Rows of one origin share transactions (each carries one mark); in two-site sync there
        // is one run. Every statement is built before anything is written: a bad value fails the
        // batch without touching the target.
        let mut plans = Vec::new();
        for (origin, rows) in LoadBatch::origin_runs(batch.rows, &batch.origins) {
            let merged = merge(rows);
            let shards = self.shard_counts(&merged, &batch.checked).await;
            let mut plan = plan_sharded(&merged, |schema, table, _| {
                shards
                    .iter()
                    .find(|(s, t, _)| s == schema && t == table)
                    .map_or(1, |(.., n)| *n)
            })?;
            self.attach_checks(&mut plan, merged, &batch.checked);
            if !plan.is_empty() {
                plans.push((
                    origin.unwrap_or_else(|| self.mark.source_site.clone()),
                    plan,
                ));
            }
        }
        if plans.is_empty() {
            return Ok(LoadStats::default());
        }
        let mut stats = LoadStats {
            retries: self.raise_fence(fence, stop).await?,
            ..LoadStats::default()
        };
        for (origin, plan) in &plans {
            stats.add(self.load_plan(plan, origin, fence, stop).await?);
        }
        Ok(stats)
    }

    /// Gives each table of `plan` that is checked for conflicts its rule and merged rows (moved,
    /// not copied: the statements are already built).
    fn attach_checks(
        &self,
        plan: &mut [(u32, Vec<TablePlan>)],
        merged: Vec<crate::batch::RowEvent>,
        checked: &[crate::batch::CheckedTable],
    ) {
        if checked.is_empty() {
            return;
        }
        // (schema, table, weight group, index): few tables, so a scan beats hashing each row.
        let mut slots: Vec<(String, String, usize, usize)> = Vec::new();
        for (w, (_, tables)) in plan.iter_mut().enumerate() {
            for (i, t) in tables.iter_mut().enumerate() {
                let Some(c) = checked
                    .iter()
                    .find(|c| c.schema == t.schema && c.table == t.table)
                else {
                    continue;
                };
                let rule = conflict::Rule {
                    policy: c.policy,
                    version_column: c.version_column.clone(),
                    priority_site: self.mark.priority_site.clone(),
                };
                t.checked = Some((rule, Vec::new()));
                slots.push((t.schema.clone(), t.table.clone(), w, i));
            }
        }
        for row in merged {
            let Some(&(_, _, w, i)) = slots
                .iter()
                .find(|(s, t, ..)| *s == row.schema && *t == row.table)
            else {
                continue;
            };
            if let Some((_, rows)) = plan[w].1[i].checked.as_mut() {
                rows.push(row);
            }
        }
    }

    /// Loads one origin's tables: weight by weight, the tables of one weight in parallel.
    async fn load_plan(
        &self,
        plan: &[(u32, Vec<TablePlan>)],
        origin: &str,
        fence: Fence,
        stop: &CancellationToken,
    ) -> Result<LoadStats, LoadError> {
        let mut stats = LoadStats::default();
        for (_weight, tables) in plan {
            let results = futures::future::join_all(
                tables
                    .iter()
                    .enumerate()
                    .map(|(slot, t)| self.load_table(t, origin, slot, fence, stop)),
            )
            .await;
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

    /// Creates `retl.retl_fence` unless it is known to exist, then raises the pipeline's token
    /// to `fence`'s in a transaction of its own (see [`super::fence`]). Returns the retries it took.
    async fn raise_fence(
        &self,
        fence: Fence,
        stop: &CancellationToken,
    ) -> Result<usize, LoadError> {
        let what = "retl.retl_fence";
        let sql_error = |f: Failure| LoadError::Sql {
            table: what.to_string(),
            sql: sql_excerpt(&f.sql),
            source: f.error,
        };
        let mut retries = 0;
        if !self.fence_table.load(Ordering::Relaxed) {
            let (outcome, r) = self
                .with_retries(what, stop, || self.create_fence_table())
                .await?;
            outcome.map_err(sql_error)?;
            self.fence_table.store(true, Ordering::Relaxed);
            retries += r;
        }
        let (outcome, r) = self
            .with_retries(what, stop, || self.apply_raise(fence))
            .await?;
        match outcome.map_err(sql_error)? {
            Attempt::Committed => Ok(retries + r),
            Attempt::Fenced(newer) => Err(fenced(fence, newer)),
        }
    }

    async fn create_fence_table(&self) -> Result<(), Failure> {
        let mut conn = self.conn().await.map_err(failure("(connect)"))?;
        let exists: Option<u64> = conn
            .query_first(fence::TABLE_EXISTS)
            .await
            .map_err(failure(fence::TABLE_EXISTS))?;
        if exists.unwrap_or(0) == 0 {
            for sql in [fence::CREATE_SCHEMA, fence::CREATE_TABLE] {
                conn.query_drop(sql).await.map_err(failure(sql))?;
            }
        }
        for (exists_sql, create) in [
            (loopback::MARK_TABLE_EXISTS, loopback::CREATE_MARK_TABLE),
            (
                conflict::CONFLICT_TABLE_EXISTS,
                conflict::CREATE_CONFLICT_TABLE,
            ),
        ] {
            let exists: Option<u64> = conn
                .query_first(exists_sql)
                .await
                .map_err(failure(exists_sql))?;
            if exists.unwrap_or(0) == 0 {
                for sql in [fence::CREATE_SCHEMA, create] {
                    conn.query_drop(sql).await.map_err(failure(sql))?;
                }
            }
        }
        Ok(())
    }

    async fn apply_raise(&self, fence: Fence) -> Result<Attempt, Failure> {
        let mut conn = self.conn().await.map_err(failure("(connect)"))?;
        let mut tx = conn
            .start_transaction(TxOpts::default())
            .await
            .map_err(failure("START TRANSACTION"))?;
        match fence::raise(&mut tx, fence).await {
            Ok(None) => {
                tx.commit().await.map_err(failure("COMMIT"))?;
                Ok(Attempt::Committed)
            }
            Ok(Some(newer)) => {
                let _ = tx.rollback().await;
                Ok(Attempt::Fenced(newer))
            }
            Err(f) => {
                end_after(tx, &f).await;
                Err(f)
            }
        }
    }

    /// One table's transaction, redone after retryable failures.
    async fn load_table(
        &self,
        table: &TablePlan,
        origin: &str,
        slot: usize,
        fence: Fence,
        stop: &CancellationToken,
    ) -> Result<LoadStats, LoadError> {
        let (outcome, retries) = self
            .with_retries(&table.name, stop, || {
                self.apply_table(table, origin, slot, fence)
            })
            .await?;
        match outcome {
            Ok(Attempt::Fenced(newer)) => Err(fenced(fence, newer)),
            Ok(Attempt::Committed) => {
                metrics::counter!("otter_load_rows_total", "pipeline" => self.mark.pipeline.to_string()).increment(table.rows as u64);
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
    async fn with_retries<T, F, Fut>(
        &self,
        what: &str,
        stop: &CancellationToken,
        mut attempt: F,
    ) -> Result<(Result<T, Failure>, usize), LoadError>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T, Failure>>,
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

    /// One attempt: the mark (the transaction's first row change), the fence check, then
    /// deletes and upserts, in one transaction, committed; rolled back without writing when the
    /// target holds a newer token.
    async fn apply_table(
        &self,
        table: &TablePlan,
        origin: &str,
        slot: usize,
        fence: Fence,
    ) -> Result<Attempt, Failure> {
        let mut conn = self.conn().await.map_err(failure("(connect)"))?;
        let mut opts = TxOpts::default();
        if table.shard.1 > 1 {
            // Shards of one table run side by side: no gap locks between them (see `shard`).
            opts.with_isolation_level(mysql_async::IsolationLevel::ReadCommitted);
        }
        let mut tx = conn
            .start_transaction(opts)
            .await
            .map_err(failure("START TRANSACTION"))?;
        let mark = (
            mark_slot(self.mark.pipeline, slot),
            self.mark.channel,
            origin,
        );
        if let Err(error) = tx.exec_drop(loopback::WRITE_MARK, mark).await {
            let f = Failure {
                error,
                sql: loopback::WRITE_MARK.to_string(),
            };
            end_after(tx, &f).await;
            return Err(f);
        }
        match fence::check(&mut tx, fence).await {
            Ok(None) => {}
            Ok(Some(newer)) => {
                let _ = tx.rollback().await;
                return Ok(Attempt::Fenced(newer));
            }
            Err(f) => {
                end_after(tx, &f).await;
                return Err(f);
            }
        }
        let resolved;
        let statements = match &table.checked {
            None => &table.statements,
            Some((rule, rows)) => match self.resolve(&mut tx, table, rule, rows, origin).await {
                Ok(None) => &table.statements,
                Ok(Some(s)) => {
                    resolved = s;
                    &resolved
                }
                Err(f) => {
                    end_after(tx, &f).await;
                    return Err(f);
                }
            },
        };
        for sql in statements {
            if let Err(error) = tx.query_drop(sql.as_str()).await {
                let f = Failure {
                    error,
                    sql: sql.clone(),
                };
                end_after(tx, &f).await;
                return Err(f);
            }
        }
        tx.commit().await.map_err(failure("COMMIT"))?;
        Ok(Attempt::Committed)
    }

    /// The new rows of a checked table (inserts that expect no row) written first, with plain
    /// `INSERT`s under a savepoint: one that succeeds found no row with its key, which is all its
    /// check would ask, so no key of theirs is probed. A duplicate key (a conflict, a replay, or a
    /// unique value another row gives up later in the batch) rolls them all back, and they are
    /// checked with the others. Returns whether they were written.
    async fn insert_new_rows(
        &self,
        tx: &mut mysql_async::Transaction<'_>,
        table: &TablePlan,
        rows: &[crate::batch::RowEvent],
    ) -> Result<bool, Failure> {
        let new: Vec<&crate::batch::RowEvent> =
            rows.iter().filter(|r| conflict::is_new(r)).collect();
        if new.is_empty() {
            return Ok(false);
        }
        let statements =
            crate::pipeline::load::sql::insert_statements((&table.name, &table.target), &new)
                .map_err(|e| Failure {
                    error: mysql_async::Error::Other(Box::new(e)),
                    sql: format!("(statements of {})", table.name),
                })?;
        const SAVEPOINT: &str = "SAVEPOINT otter_new_rows";
        tx.query_drop(SAVEPOINT).await.map_err(failure(SAVEPOINT))?;
        for sql in &statements {
            match tx.query_drop(sql.as_str()).await {
                Ok(()) => {}
                Err(e) if server_code(&e) == Some(ER_DUP_ENTRY) => {
                    const BACK: &str = "ROLLBACK TO SAVEPOINT otter_new_rows";
                    tx.query_drop(BACK).await.map_err(failure(BACK))?;
                    return Ok(false);
                }
                Err(error) => {
                    return Err(Failure {
                        error,
                        sql: sql.clone(),
                    })
                }
            }
        }
        Ok(true)
    }

    /// For a table checked for conflicts: asks the target what it holds for each row, decides
    /// each row by the rule, writes the conflicts down, and returns the statements that write the
    /// rows to be written (all in `tx`); `None` when every row is to be written as it came (the
    /// table's statements, built before the transaction, stand).
    async fn resolve(
        &self,
        tx: &mut mysql_async::Transaction<'_>,
        table: &TablePlan,
        rule: &conflict::Rule,
        rows: &[crate::batch::RowEvent],
        origin: &str,
    ) -> Result<Option<Vec<String>>, Failure> {
        let inserted = self.insert_new_rows(tx, table, rows).await?;
        let rows: Vec<&crate::batch::RowEvent> = rows
            .iter()
            .filter(|r| !(inserted && conflict::is_new(r)))
            .collect();
        let found = conflict::find(tx, &table.target, &table.name, &rows, rule).await?;
        let from_priority = origin == rule.priority_site;
        let decisions: Vec<conflict::Decision> = rows
            .iter()
            .zip(&found)
            .map(|(row, found)| conflict::decide(row.kind, found, rule.policy, from_priority))
            .collect();
        if !inserted && decisions.iter().all(|d| *d == conflict::Decision::Apply) {
            return Ok(None);
        }
        let mut kept = Vec::with_capacity(rows.len());
        let mut records = Vec::new();
        for (&row, decision) in rows.iter().zip(decisions) {
            match decision {
                conflict::Decision::Apply => kept.push(row.clone()),
                conflict::Decision::Skip => {}
                conflict::Decision::IncomingWins(kind) => {
                    let image = conflict::image(tx, &table.target, &table.name, row).await?;
                    records.push(conflict::Record::new(kind, true, row, image));
                    kept.push(row.clone());
                }
                conflict::Decision::LocalWins(kind) => {
                    let image = conflict::image(tx, &table.target, &table.name, row).await?;
                    records.push(conflict::Record::new(kind, false, row, image));
                }
            }
        }
        for r in &records {
            metrics::counter!(
                "otter_conflicts_total",
                "pipeline" => self.mark.pipeline.to_string(),
                "table" => table.name.clone(),
                "outcome" => if r.incoming_won { "incoming" } else { "local" }
            )
            .increment(1);
        }
        if !records.is_empty() {
            warn!(
                table = %table.name,
                conflicts = records.len(),
                policy = rule.policy.name(),
                "conflicts: rows changed on both sites; resolved and written to retl.retl_conflict"
            );
        }
        let by = conflict::Reporter {
            channel: self.mark.channel,
            pipeline: self.mark.pipeline,
            schema: &table.schema,
            table: &table.table,
            policy: rule.policy,
            origin,
        };
        conflict::record(tx, by, &records).await?;
        let statements = plan(&kept)
            .map_err(|e| Failure {
                error: mysql_async::Error::Other(Box::new(e)),
                sql: format!("(statements of {})", table.name),
            })?
            .into_iter()
            .flat_map(|(_, tables)| tables)
            .flat_map(|t| t.statements)
            .collect();
        Ok(Some(statements))
    }

    /// Runs a DDL statement in its schema, on a connection of its own, retried like a table.
    async fn load_ddl(
        &self,
        ddl: &DdlEvent,
        origin: &str,
        stop: &CancellationToken,
    ) -> Result<LoadStats, LoadError> {
        let (outcome, retries) = self
            .with_retries(&ddl.schema, stop, || self.apply_ddl(ddl, origin))
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

    async fn apply_ddl(&self, ddl: &DdlEvent, origin: &str) -> Result<(), Failure> {
        // A fresh connection: `USE` must not leak into pooled connections, and a DDL whose
        // schema does not exist yet (CREATE DATABASE) runs without a default schema.
        let mut conn = self
            .tls
            .connect(self.plain.clone())
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
            // DDL cannot share a transaction with a mark row: the mark rides in a comment,
            // which the QUERY event keeps.
            let sql = format!(
                "{}{}",
                loopback::ddl_mark(self.mark.channel, origin),
                ddl.sql
            );
            conn.query_drop(sql.as_str()).await.map_err(failure(&sql))
        }
        .await;
        let _ = conn.disconnect().await;
        result
    }
}

/// Ends `tx` after the failure `f`: rolled back now if the connection still works (a server
/// error); a broken one is dropped, and the pool rolls it back or discards it.
async fn end_after(tx: mysql_async::Transaction<'_>, f: &Failure) {
    if matches!(f.error, mysql_async::Error::Server(_)) {
        let _ = tx.rollback().await;
    }
}

/// The error of a transaction refused for `fence`'s token.
fn fenced(fence: Fence, newer: i64) -> LoadError {
    LoadError::Fenced {
        pipeline: fence.pipeline,
        ours: fence.token,
        newer,
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
