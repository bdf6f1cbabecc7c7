//! The consistency checker: compares a pipeline's source and target table by table, chunk by
//! chunk along the primary key, and repairs what differs (`otter-manager check`).
//!
//! * [`sql`]: the statements (chunk boundaries, range checksums, row hashes, rows by key).
//! * [`walk`]: one table: chunks sized to take about [`CheckOptions::chunk_time`], each checksum
//!   compared on both sides, a differing chunk narrowed to its keys by row hashes, every
//!   differing key read again after the pipeline's delay (so rows in flight are not reported).
//! * [`repair`]: a differing key rewritten on the target from the source's current row, in a
//!   transaction marked like Load's (a two-way channel does not send it back).
//! * [`report`]: the result as a table or JSON.
//!
//! The checker reads with plain `SELECT`s (no locks on the source, no long transactions); it waits
//! while the pipeline's delay or the source's running threads are above their limits, as
//! pt-table-checksum does, and can cap its rows per second.

mod repair;
pub mod report;
mod sql;
mod walk;

use std::future::Future;
use std::time::{Duration, Instant};

use mysql_async::prelude::Queryable;
use serde::Serialize;

use crate::model::{CompiledMapping, Pipeline, TargetDb};

pub use report::render_table;

/// Why a check could not run.
#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    /// An address, password or TLS setting of a side is unusable.
    #[error("{side} {address}: {reason}")]
    Account {
        /// `source` or `target`.
        side: &'static str,
        /// The configured address.
        address: String,
        /// Why.
        reason: String,
    },
    /// A statement failed.
    #[error("{side} {address}: {sql}: {source}")]
    Sql {
        /// `source` or `target`.
        side: &'static str,
        /// The server.
        address: String,
        /// The statement (shortened).
        sql: String,
        /// The server's or driver's error.
        #[source]
        source: Box<mysql_async::Error>,
    },
    /// A mapped table has no primary key (the checker walks tables by key).
    #[error("{0} has no primary key; the checker walks tables by their primary key")]
    NoKey(String),
    /// A mapped table is missing on the target.
    #[error("{0} is missing on the target")]
    MissingTarget(String),
    /// A mapped column is missing on the target.
    #[error("{table}: column {column} is missing on the target")]
    MissingColumn {
        /// The target table.
        table: String,
        /// The column.
        column: String,
    },
    /// `--tables` names a table no mapping takes.
    #[error("{0} is not a table of this pipeline (no mapping takes it, or it does not exist)")]
    NotMapped(String),
    /// An identifier that cannot be quoted.
    #[error("identifier {0:?} cannot be used")]
    BadIdentifier(String),
}

/// How a check runs.
#[derive(Debug, Clone)]
pub struct CheckOptions {
    /// Only these source tables (`schema.table`); empty: every table a mapping takes.
    pub tables: Vec<String>,
    /// Rows in the first chunk of a table; later chunks are sized to take about `chunk_time`.
    pub chunk_rows: u64,
    /// What one chunk should take on the slower side.
    pub chunk_time: Duration,
    /// Largest chunk.
    pub max_chunk_rows: u64,
    /// At most this many rows per second, summed over both sides' reads (`None`: no cap).
    pub max_rows_per_sec: Option<u64>,
    /// Wait while the pipeline's delay is above this.
    pub max_delay: Duration,
    /// Wait while the source's `Threads_running` is above this.
    pub max_threads_running: u64,
    /// How often a differing key is read again before it is reported.
    pub rechecks: u32,
    /// The least time between two reads of a differing key (at least twice the pipeline's delay
    /// is waited too).
    pub recheck_wait: Duration,
    /// Rewrite each differing key on the target from the source.
    pub repair: bool,
    /// At most this many differences kept per table (more are counted, not kept).
    pub max_differences: usize,
}

impl Default for CheckOptions {
    fn default() -> Self {
        CheckOptions {
            tables: Vec::new(),
            chunk_rows: 1_000,
            chunk_time: Duration::from_millis(500),
            max_chunk_rows: 100_000,
            max_rows_per_sec: None,
            max_delay: Duration::from_secs(10),
            max_threads_running: 25,
            rechecks: 5,
            recheck_wait: Duration::from_secs(1),
            repair: false,
            max_differences: 1_000,
        }
    }
}

/// How one key differs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DifferenceKind {
    /// Both sides have the key with other values.
    Changed,
    /// Only the source has it.
    Missing,
    /// Only the target has it.
    Extra,
}

/// A key that differs after the rechecks.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Difference {
    /// The key, `col=value` joined by `, `.
    pub key: String,
    /// How it differs.
    pub kind: DifferenceKind,
    /// The source's row (`col=value, …`), if any.
    pub source: Option<String>,
    /// The target's row, if any.
    pub target: Option<String>,
    /// Rewritten on the target by `--repair`.
    pub repaired: bool,
    /// The key's values (for the repair).
    #[serde(skip)]
    pub(crate) key_values: Vec<mysql_async::Value>,
}

/// One table's result.
#[derive(Debug, Clone, Default, Serialize)]
pub struct TableReport {
    /// `schema.table` at the source.
    pub source: String,
    /// `schema.table` at the target.
    pub target: String,
    /// Rows read at the source.
    pub source_rows: u64,
    /// Rows read at the target.
    pub target_rows: u64,
    /// Chunks compared.
    pub chunks: u64,
    /// Chunks whose checksums differed at first.
    pub differing_chunks: u64,
    /// Keys that still differed after every recheck with a source row that stood still.
    pub differences: Vec<Difference>,
    /// Differences beyond `max_differences` (counted, not kept).
    pub more_differences: u64,
    /// Keys whose source row changed at every recheck: in flight, neither equal nor reported.
    pub unsettled: Vec<String>,
    /// Seconds spent on the table.
    pub secs: f64,
}

/// A pipeline's result.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Report {
    /// The pipeline.
    pub pipeline: u32,
    /// Source address.
    pub source: String,
    /// Target address.
    pub target: String,
    /// Per table.
    pub tables: Vec<TableReport>,
    /// Seconds in all.
    pub secs: f64,
}

impl Report {
    /// Whether any key differs.
    pub fn differs(&self) -> bool {
        self.tables
            .iter()
            .any(|t| !t.differences.is_empty() || t.more_differences > 0)
    }
}

/// One side of the comparison: a connection and what names it in errors.
pub(crate) struct Side {
    pub(crate) name: &'static str,
    pub(crate) address: String,
    pub(crate) conn: mysql_async::Conn,
}

impl Side {
    async fn open(name: &'static str, account: &TargetDb) -> Result<Side, CheckError> {
        let bad = |reason: String| CheckError::Account {
            side: name,
            address: account.address.clone(),
            reason,
        };
        let opts =
            crate::pipeline::load::site::account_opts(account).map_err(|e| bad(e.to_string()))?;
        let conn = account
            .tls
            .connect(opts)
            .await
            .map_err(|e| bad(e.to_string()))?;
        let mut side = Side {
            name,
            address: account.address.clone(),
            conn,
        };
        // Both sides render TIMESTAMP columns alike.
        side.exec_drop("SET time_zone = '+00:00'", ()).await?;
        Ok(side)
    }

    fn sql_error(&self, sql: &str) -> impl FnOnce(mysql_async::Error) -> CheckError {
        let (side, address) = (self.name, self.address.clone());
        let sql: String = sql.chars().take(300).collect();
        move |source| CheckError::Sql {
            side,
            address,
            sql,
            source: Box::new(source),
        }
    }

    pub(crate) async fn exec_rows(
        &mut self,
        sql: &str,
        params: Vec<mysql_async::Value>,
    ) -> Result<Vec<mysql_async::Row>, CheckError> {
        let err = self.sql_error(sql);
        self.conn
            .exec(sql, mysql_async::Params::Positional(params))
            .await
            .map_err(err)
    }

    pub(crate) async fn exec_drop<P: Into<mysql_async::Params> + Send>(
        &mut self,
        sql: &str,
        params: P,
    ) -> Result<(), CheckError> {
        let err = self.sql_error(sql);
        self.conn.exec_drop(sql, params).await.map_err(err)
    }
}

/// A source table a mapping takes and the shapes of both sides.
pub(crate) struct Pair {
    pub(crate) source_name: String,
    pub(crate) target_name: String,
    pub(crate) source: sql::Shape,
    pub(crate) target: sql::Shape,
}

/// The source's base tables (`schema`, `table`) outside the system schemas.
async fn source_tables(side: &mut Side) -> Result<Vec<(String, String)>, CheckError> {
    const SQL: &str = "SELECT TABLE_SCHEMA, TABLE_NAME FROM information_schema.TABLES \
         WHERE TABLE_TYPE = 'BASE TABLE' AND TABLE_SCHEMA NOT IN \
         ('mysql', 'information_schema', 'performance_schema', 'sys', 'retl') \
         ORDER BY TABLE_SCHEMA, TABLE_NAME";
    let rows = side.exec_rows(SQL, Vec::new()).await?;
    Ok(rows
        .into_iter()
        .filter_map(|r| mysql_async::from_row_opt::<(String, String)>(r).ok())
        .collect())
}

/// A table's columns in order and its primary key columns in index order.
async fn columns(
    side: &mut Side,
    schema: &str,
    table: &str,
) -> Result<(Vec<String>, Vec<String>), CheckError> {
    const COLS: &str = "SELECT COLUMN_NAME FROM information_schema.COLUMNS \
         WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? ORDER BY ORDINAL_POSITION";
    const KEYS: &str = "SELECT COLUMN_NAME FROM information_schema.STATISTICS \
         WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? AND INDEX_NAME = 'PRIMARY' ORDER BY SEQ_IN_INDEX";
    let params = || vec![schema.into(), table.into()];
    let names = |rows: Vec<mysql_async::Row>| {
        rows.into_iter()
            .filter_map(|r| mysql_async::from_row_opt::<String>(r).ok())
            .collect::<Vec<_>>()
    };
    let cols = names(side.exec_rows(COLS, params()).await?);
    let keys = names(side.exec_rows(KEYS, params()).await?);
    Ok((cols, keys))
}

/// The tables to compare: every source table a mapping takes (or those of `only`), with the
/// mapping's renames and column view applied.
async fn pairs(
    p: &Pipeline,
    source: &mut Side,
    target: &mut Side,
    only: &[String],
) -> Result<Vec<Pair>, CheckError> {
    let mappings = CompiledMapping::compile(p).map_err(|e| CheckError::Account {
        side: "source",
        address: p.source.address.clone(),
        reason: e.to_string(),
    })?;
    let mut out = Vec::new();
    let tables = source_tables(source).await?;
    for wanted in only {
        if !tables.iter().any(|(s, t)| &format!("{s}.{t}") == wanted)
            || !tables.iter().any(|(s, t)| {
                &format!("{s}.{t}") == wanted
                    && crate::model::find_mapping(&mappings, s, t).is_some()
            })
        {
            return Err(CheckError::NotMapped(wanted.clone()));
        }
    }
    for (schema, table) in tables {
        let name = format!("{schema}.{table}");
        if !only.is_empty() && !only.contains(&name) {
            continue;
        }
        let Some(m) = crate::model::find_mapping(&mappings, &schema, &table) else {
            continue;
        };
        let (cols, keys) = columns(source, &schema, &table).await?;
        if keys.is_empty() {
            return Err(CheckError::NoKey(name));
        }
        let (ts, tt) = m.target(&schema, &table);
        let target_name = format!("{ts}.{tt}");
        let (tcols, tkeys) = columns(target, &ts, &tt).await?;
        if tcols.is_empty() {
            return Err(CheckError::MissingTarget(target_name));
        }
        let mut compared = keys.clone();
        compared.extend(
            cols.iter()
                .filter(|c| !keys.contains(c) && m.keeps(c, false))
                .cloned(),
        );
        for c in &compared {
            if !tcols.iter().any(|t| t.eq_ignore_ascii_case(c)) {
                return Err(CheckError::MissingColumn {
                    table: target_name,
                    column: c.clone(),
                });
            }
        }
        if tkeys.len() != keys.len() {
            return Err(CheckError::NoKey(format!(
                "{target_name} (its primary key is not the source's)"
            )));
        }
        out.push(Pair {
            source: sql::Shape {
                table: sql::qualified(&schema, &table)?,
                keys: keys.clone(),
                columns: compared.clone(),
            },
            target: sql::Shape {
                table: sql::qualified(&ts, &tt)?,
                keys,
                columns: compared,
            },
            source_name: name,
            target_name,
        });
    }
    Ok(out)
}

fn target_account(p: &Pipeline) -> TargetDb {
    p.target.clone()
}

fn source_account(p: &Pipeline) -> TargetDb {
    TargetDb {
        address: p.source.address.clone(),
        username: p.source.username.clone(),
        password: p.source.password.clone(),
        site: p.source.site.clone(),
        tls: p.source.tls.clone(),
    }
}

/// What the checker needs from the running pipeline: its current delay (`None`: unknown).
pub trait Delay {
    /// The pipeline's delay now.
    fn delay(&self) -> impl Future<Output = Option<Duration>> + Send;
}

/// No pipeline running (or its delay unknown): nothing to wait for.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoDelay;

impl Delay for NoDelay {
    async fn delay(&self) -> Option<Duration> {
        None
    }
}

/// A pipeline's delay as its Load last published it in ZooKeeper, for the checker: a measurement
/// older than 30 s (a stopped pipeline) counts as unknown.
pub struct ZkDelay<'a> {
    /// The ZooKeeper session.
    pub zk: &'a zookeeper_client::Client,
    /// The channel.
    pub channel: u32,
    /// The pipeline.
    pub pipeline: u32,
}

impl Delay for ZkDelay<'_> {
    async fn delay(&self) -> Option<std::time::Duration> {
        let path = zk_coord::otter_paths::delay(self.channel, self.pipeline);
        let (data, _) = self.zk.get_data(&path).await.ok()?;
        let d: crate::pipeline::heartbeat::Delay = serde_json::from_slice(&data).ok()?;
        let age = crate::pipeline::heartbeat::now_ms() - d.at_ms;
        (age < 30_000).then(|| std::time::Duration::from_millis(d.delay_ms.max(0) as u64))
    }
}

/// Compares pipeline `p` (of channel `channel`) table by table; with `opts.repair`, rewrites each
/// differing key on the target. Reads only; repairs write the target in marked transactions.
pub async fn check_pipeline(
    p: &Pipeline,
    channel: u32,
    opts: &CheckOptions,
    delay: &impl Delay,
) -> Result<Report, CheckError> {
    let started = Instant::now();
    let mut source = Side::open("source", &source_account(p)).await?;
    let mut target = Side::open("target", &target_account(p)).await?;
    let pairs = pairs(p, &mut source, &mut target, &opts.tables).await?;
    let mut report = Report {
        pipeline: p.id,
        source: p.source.address.clone(),
        target: p.target.address.clone(),
        ..Report::default()
    };
    let mark = repair::Mark {
        channel,
        pipeline: p.id,
        origin: p.source_site().to_string(),
    };
    for pair in &pairs {
        let mut walker = walk::Walker {
            source: &mut source,
            target: &mut target,
            opts,
            delay,
        };
        let mut t = walker.table(pair).await?;
        if opts.repair {
            repair::repair(&mut source, &mut target, pair, &mark, &mut t).await?;
        }
        tracing::info!(
            pipeline = p.id,
            table = %pair.source_name,
            rows = t.source_rows,
            chunks = t.chunks,
            differences = t.differences.len() as u64 + t.more_differences,
            "check: table compared"
        );
        report.tables.push(t);
    }
    let _ = source.conn.disconnect().await;
    let _ = target.conn.disconnect().await;
    report.secs = started.elapsed().as_secs_f64();
    Ok(report)
}

/// Reads the source's `Threads_running`.
pub(crate) async fn threads_running(side: &mut Side) -> Result<u64, CheckError> {
    const SQL: &str = "SHOW GLOBAL STATUS LIKE 'Threads_running'";
    let err = side.sql_error(SQL);
    let row: Option<(String, String)> = side.conn.query_first(SQL).await.map_err(err)?;
    Ok(row.and_then(|(_, v)| v.parse().ok()).unwrap_or(0))
}
