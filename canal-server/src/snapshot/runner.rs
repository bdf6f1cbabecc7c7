//! The snapshot's chunk loop against the source: per table, in primary-key order, an open mark,
//! one SELECT of `chunk_rows` rows after the last key, the rows handed to the converter, a close
//! mark; then it waits for the converter's verdict at the close mark before the next chunk
//! (which bounds memory to one chunk per table). Tables run `parallel_tables` at a time, each on
//! its own connection. Every statement is short and autocommit: no locks, no long transaction.

use std::sync::{Arc, Mutex};

use mysql_async::prelude::Queryable;
use mysql_async::{Conn, TxOpts};
use mysql_common::value::Value;
use serde::Serialize;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::columns::{PlanError, TablePlan, ValueShapeError};
use super::progress::{KeyValue, Progress, TableProgress};
use super::{split_table_name, Chunk, Outcome, SnapshotBridge, WINDOW_CLOSE, WINDOW_OPEN};
use crate::binlog::source::{self, SourceConfig, SourceError};

/// A chunk read again this many times in a row (each time for a reason the converter gave)
/// stops the snapshot.
const MAX_RETRIES: u32 = 5;

/// Why a snapshot stopped.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    /// The source is unreachable or refused the account.
    #[error(transparent)]
    Source(#[from] SourceError),
    /// A statement failed.
    #[error("{what}: {source}")]
    Sql {
        /// What was being done.
        what: String,
        /// The driver's error.
        #[source]
        source: mysql_async::Error,
    },
    /// The account may not write the signal table.
    #[error("cannot write the snapshot signal table {table}: {source}; the account needs INSERT and DELETE on it (GRANT INSERT, DELETE ON {table} TO …), and CREATE to create it, or create it yourself: {ddl}")]
    Privileges {
        /// `schema.table`.
        table: String,
        /// The DDL that creates it.
        ddl: String,
        /// The driver's error.
        #[source]
        source: mysql_async::Error,
    },
    /// The source's binlog filters leave the signal table's changes out, so the stream would
    /// never see a window.
    #[error("the source's binlog filter ({rule}) leaves out schema {schema}, where the snapshot signal table is; change the filter or snapshot_signal_table")]
    SignalFiltered {
        /// Schema of the signal table.
        schema: String,
        /// The filter (`binlog_do_db=…` / `binlog_ignore_db=…`).
        rule: String,
    },
    /// A table to snapshot does not exist.
    #[error("table {0} does not exist on the source")]
    NoTable(String),
    /// A table cannot be snapshotted.
    #[error(transparent)]
    Plan(#[from] PlanError),
    /// A value the SELECT read does not fit its column.
    #[error("{table}: {source}")]
    Shape {
        /// `schema.table`.
        table: String,
        /// What is wrong.
        #[source]
        source: ValueShapeError,
    },
    /// The converter could not write a chunk, or it was read again too often.
    #[error("{table}: {reason}")]
    Chunk {
        /// `schema.table`.
        table: String,
        /// Why.
        reason: String,
    },
    /// A table name that is not `schema.table`.
    #[error("{0:?} is not schema.table")]
    BadName(String),
}

/// What the runner needs.
#[derive(Debug, Clone)]
pub struct RunnerConfig {
    /// Destination name (logs).
    pub destination: String,
    /// The source.
    pub source: SourceConfig,
    /// Signal table (`schema`, `table`).
    pub signal: (String, String),
    /// Rows per chunk.
    pub chunk_rows: usize,
    /// Tables at once.
    pub parallel_tables: usize,
}

/// A run as operators see it (`GET /destinations/{d}/snapshot`).
#[derive(Debug, Clone, Default, Serialize)]
pub struct RunStatus {
    /// Run id.
    pub run: String,
    /// `running`, `finished`, `failed`, `stopped` or `idle`.
    pub state: String,
    /// The error that stopped it.
    pub error: Option<String>,
    /// Per table: rows read and handed over, whether done (read progress, ahead of the acked
    /// progress that is persisted).
    pub tables: Vec<TableProgress>,
    /// Rows left out of chunks because their key changed in the window (the binlog has them).
    pub dropped_in_window: u64,
    /// Chunks read again.
    pub retried_chunks: u64,
}

/// The signal table's DDL (Debezium's signal table shape).
pub fn signal_ddl(signal: &(String, String)) -> String {
    format!(
        "CREATE TABLE IF NOT EXISTS `{}`.`{}` (id VARCHAR(64) NOT NULL PRIMARY KEY, type VARCHAR(32) NOT NULL, data VARCHAR(2048) NULL)",
        signal.0, signal.1
    )
}

fn sql(what: impl Into<String>) -> impl FnOnce(mysql_async::Error) -> SnapshotError {
    let what = what.into();
    move |source| SnapshotError::Sql { what, source }
}

fn is_privilege_error(e: &mysql_async::Error) -> bool {
    matches!(e, mysql_async::Error::Server(s) if matches!(s.code, 1044 | 1045 | 1142 | 1143 | 1227 | 1370))
}

/// Checks the source's binlog filters and creates the signal table when missing.
async fn prepare(conn: &mut Conn, signal: &(String, String)) -> Result<(), SnapshotError> {
    let status: Option<mysql_async::Row> = match conn.query_first("SHOW MASTER STATUS").await {
        Ok(r) => r,
        Err(_) => conn
            .query_first("SHOW BINARY LOG STATUS")
            .await
            .map_err(sql("reading the binlog filters"))?,
    };
    if let Some(row) = status {
        let list = |name: &str| -> Vec<String> {
            row.get_opt::<String, _>(name)
                .and_then(|r| r.ok())
                .unwrap_or_default()
                .split(',')
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .collect()
        };
        let (do_db, ignore_db) = (list("Binlog_Do_DB"), list("Binlog_Ignore_DB"));
        if !do_db.is_empty() && !do_db.contains(&signal.0) {
            return Err(SnapshotError::SignalFiltered {
                schema: signal.0.clone(),
                rule: format!("binlog_do_db={}", do_db.join(",")),
            });
        }
        if ignore_db.contains(&signal.0) {
            return Err(SnapshotError::SignalFiltered {
                schema: signal.0.clone(),
                rule: format!("binlog_ignore_db={}", ignore_db.join(",")),
            });
        }
    }
    let ddl = signal_ddl(signal);
    let table = format!("{}.{}", signal.0, signal.1);
    let exists: Option<u8> = conn
        .exec_first(
            "SELECT 1 FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?",
            (&signal.0, &signal.1),
        )
        .await
        .map_err(sql("looking for the signal table"))?;
    if exists.is_none() {
        let create = async {
            conn.query_drop(format!("CREATE DATABASE IF NOT EXISTS `{}`", signal.0))
                .await?;
            conn.query_drop(&ddl).await
        };
        create.await.map_err(|source| SnapshotError::Privileges {
            table: table.clone(),
            ddl: ddl.clone(),
            source,
        })?;
    }
    Ok(())
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// A new run id (time-based, unique enough across restarts and servers).
pub fn new_run_id() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!("{:x}{:04x}", nanos, std::process::id() & 0xFFFF)
}

/// Runs (or resumes) the snapshot `progress` describes until every table is done, it fails, or
/// `cancel` fires. `status` is kept current for operators.
pub async fn run(
    cfg: RunnerConfig,
    bridge: Arc<SnapshotBridge>,
    progress: Progress,
    status: Arc<Mutex<RunStatus>>,
    cancel: CancellationToken,
) -> Result<(), SnapshotError> {
    let set_status = |f: &dyn Fn(&mut RunStatus)| {
        let mut s = status.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut s);
    };
    set_status(&|s| {
        s.run = progress.run.clone();
        s.state = "running".into();
        s.error = None;
        s.tables = progress.tables.clone();
    });
    let mut conn = source::connect(&cfg.source).await?;
    prepare(&mut conn, &cfg.signal).await?;
    drop(conn);
    let todo: Vec<TableProgress> = progress
        .tables
        .iter()
        .filter(|t| !t.done)
        .cloned()
        .collect();
    info!(destination = %cfg.destination, run = %progress.run, tables = todo.len(), "snapshot starting");
    // Chunk ids are unique to this process, so marks of an earlier process met again after a
    // restart never open a window here.
    let nonce = new_run_id();
    let sem = Arc::new(tokio::sync::Semaphore::new(cfg.parallel_tables.max(1)));
    let mut tasks = tokio::task::JoinSet::new();
    for (i, t) in todo.into_iter().enumerate() {
        let (cfg, bridge, status, cancel, sem) = (
            cfg.clone(),
            bridge.clone(),
            status.clone(),
            cancel.clone(),
            sem.clone(),
        );
        let prefix = format!("{nonce}:{i}");
        tasks.spawn(async move {
            let Ok(_permit) = sem.acquire_owned().await else {
                return Ok(());
            };
            copy_table(&cfg, &bridge, t, &prefix, &status, &cancel).await
        });
    }
    let mut first_error = None;
    while let Some(r) = tasks.join_next().await {
        let r = r.unwrap_or_else(|e| {
            Err(SnapshotError::Chunk {
                table: "(task)".into(),
                reason: e.to_string(),
            })
        });
        if let Err(e) = r {
            if first_error.is_none() {
                cancel.cancel();
                first_error = Some(e);
            }
        }
    }
    match first_error {
        Some(e) => {
            let msg = e.to_string();
            set_status(&|s| {
                s.state = "failed".into();
                s.error = Some(msg.clone());
            });
            Err(e)
        }
        None if cancel.is_cancelled() => {
            set_status(&|s| s.state = "stopped".into());
            Ok(())
        }
        None => {
            set_status(&|s| s.state = "finished".into());
            info!(destination = %cfg.destination, run = %progress.run, "snapshot finished");
            Ok(())
        }
    }
}

/// Copies one table from where `t` left it.
async fn copy_table(
    cfg: &RunnerConfig,
    bridge: &SnapshotBridge,
    mut t: TableProgress,
    prefix: &str,
    status: &Mutex<RunStatus>,
    cancel: &CancellationToken,
) -> Result<(), SnapshotError> {
    let (schema, table) =
        split_table_name(&t.table).ok_or_else(|| SnapshotError::BadName(t.table.clone()))?;
    let mut conn = source::connect(&cfg.source).await?;
    let meta = crate::schema::source::load_table(&mut conn, &schema, &table)
        .await
        .map_err(sql(format!("reading the definition of {}", t.table)))?
        .ok_or_else(|| SnapshotError::NoTable(t.table.clone()))?;
    let plan = Arc::new(TablePlan::new(&meta)?);
    let mut last_key: Option<Vec<Value>> = match &t.last_key {
        None => None,
        Some(k) => Some(
            k.iter()
                .map(KeyValue::to_value)
                .collect::<Option<Vec<_>>>()
                .ok_or_else(|| SnapshotError::Chunk {
                    table: t.table.clone(),
                    reason: "the stored last key is malformed".into(),
                })?,
        ),
    };
    if last_key.is_some() {
        info!(destination = %cfg.destination, table = %t.table, rows = t.rows, "snapshot resumes after the last delivered key");
    }
    let insert_mark = format!(
        "INSERT INTO `{}`.`{}` (id, type, data) VALUES (?, ?, ?)",
        cfg.signal.0, cfg.signal.1
    );
    // By primary key: concurrent tables' marks never touch each other's rows.
    let delete_marks = format!(
        "DELETE FROM `{}`.`{}` WHERE id IN (?, ?)",
        cfg.signal.0, cfg.signal.1
    );
    let signal_name = format!("{}.{}", cfg.signal.0, cfg.signal.1);
    let mark_err = |source: mysql_async::Error| {
        if is_privilege_error(&source) {
            SnapshotError::Privileges {
                table: signal_name.clone(),
                ddl: signal_ddl(&cfg.signal),
                source,
            }
        } else {
            SnapshotError::Sql {
                what: format!("writing a window mark to {signal_name}"),
                source,
            }
        }
    };
    let limit = cfg.chunk_rows as u64;
    let mut seq = 0u64;
    let mut retries = 0u32;
    loop {
        if cancel.is_cancelled() {
            return Ok(());
        }
        seq += 1;
        let id = format!("{prefix}:{seq}");
        bridge.plan(&id, &schema, &table);
        let read = async {
            conn.exec_drop(&insert_mark, (format!("{id}:o"), WINDOW_OPEN, &id))
                .await
                .map_err(mark_err)?;
            let rows: Vec<mysql_async::Row> = match &last_key {
                None => conn.exec(&plan.first_sql, (limit,)).await,
                Some(k) => {
                    let mut params = k.clone();
                    params.push(Value::UInt(limit));
                    conn.exec(&plan.next_sql, params).await
                }
            }
            .map_err(sql(format!("reading a chunk of {}", t.table)))?;
            let n = rows.len();
            let mut shaped = Vec::with_capacity(n);
            let mut new_last = None;
            for row in rows {
                let values: Vec<Value> = row
                    .unwrap_raw()
                    .into_iter()
                    .map(|v| v.unwrap_or(Value::NULL))
                    .collect();
                let (s, k) = plan
                    .split_row(values)
                    .map_err(|source| SnapshotError::Shape {
                        table: t.table.clone(),
                        source,
                    })?;
                shaped.push(s);
                new_last = Some(k);
            }
            Ok::<_, SnapshotError>((shaped, new_last, n))
        };
        let (rows, new_last, n) = match read.await {
            Ok(r) => r,
            Err(e) => {
                bridge.abandon(&id);
                return Err(e);
            }
        };
        let done = (n as u64) < limit;
        let key = new_last.clone().or_else(|| last_key.clone());
        let update = TableProgress {
            table: t.table.clone(),
            last_key: key.as_ref().map(|k| k.iter().map(KeyValue::from).collect()),
            done,
            rows: t.rows + n as u64,
        };
        bridge.ready(Chunk {
            id: id.clone(),
            plan: plan.clone(),
            rows,
            update: update.clone(),
        });
        let mut attempt = 0;
        let closed = loop {
            attempt += 1;
            let close = async {
                let mut tx = conn.start_transaction(TxOpts::default()).await?;
                tx.exec_drop(&insert_mark, (format!("{id}:c"), WINDOW_CLOSE, &id))
                    .await?;
                tx.exec_drop(&delete_marks, (format!("{id}:o"), format!("{id}:c")))
                    .await?;
                tx.commit().await
            };
            match close.await {
                // A deadlock or lock wait timeout rolled the mark back: write it again.
                Err(mysql_async::Error::Server(e))
                    if matches!(e.code, 1205 | 1213) && attempt < 5 =>
                {
                    warn!(destination = %cfg.destination, table = %t.table, error = %e, "window close mark rolled back; writing it again");
                }
                r => break r,
            }
        };
        if let Err(e) = closed {
            bridge.abandon(&id);
            return Err(mark_err(e));
        }
        let outcome = tokio::select! {
            o = bridge.outcome(&id) => o,
            _ = cancel.cancelled() => {
                bridge.abandon(&id);
                return Ok(());
            }
        };
        match outcome {
            Outcome::Emitted { emitted, dropped } => {
                retries = 0;
                last_key = key;
                t = update;
                let mut s = status.lock().unwrap_or_else(|p| p.into_inner());
                s.dropped_in_window += dropped as u64;
                s.set_table(t.clone());
                drop(s);
                tracing::debug!(destination = %cfg.destination, table = %t.table, emitted, dropped, "snapshot chunk delivered");
                if done {
                    info!(destination = %cfg.destination, table = %t.table, rows = t.rows, "snapshot of table done");
                    return Ok(());
                }
            }
            Outcome::Retry { reason } => {
                retries += 1;
                status
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .retried_chunks += 1;
                warn!(destination = %cfg.destination, table = %t.table, %reason, retries, "snapshot chunk read again");
                if retries > MAX_RETRIES {
                    return Err(SnapshotError::Chunk {
                        table: t.table.clone(),
                        reason: format!("read {retries} times, last because {reason}"),
                    });
                }
                // A changed definition needs a new plan: start the table's task over.
                if reason.contains("definition") {
                    return Err(SnapshotError::Chunk {
                        table: t.table.clone(),
                        reason,
                    });
                }
            }
            Outcome::Failed { reason } => {
                return Err(SnapshotError::Chunk {
                    table: t.table.clone(),
                    reason,
                })
            }
        }
    }
}

impl RunStatus {
    fn set_table(&mut self, t: TableProgress) {
        match self.tables.iter_mut().find(|x| x.table == t.table) {
            Some(x) => *x = t,
            None => self.tables.push(t),
        }
    }
}

/// Started time for new runs.
pub fn started_now() -> i64 {
    now_ms()
}
