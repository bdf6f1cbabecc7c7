//! Fencing Load's writes at the target: every Load transaction carries the fencing token of the
//! ZooKeeper lock it holds into the target's `retl.retl_fence` table, in the same transaction, so
//! a node that lost its lock without noticing yet (paused past its session expiry, cut off from
//! ZooKeeper) cannot commit over rows that a newer holder wrote.
//!
//! The token is the creation zxid of the process's Load `lock` znode
//! ([`crate::process::Process::try_lock`]): every later claim, of the same batch after the lock
//! vanished or of a later batch, gets a larger one. The target keeps one row per pipeline:
//!
//! * Before a batch's tables, [`RAISE`] in a short transaction of its own: `token =
//!   GREATEST(token, ours)` under the row's exclusive lock, then [`READ_BACK`]. A larger stored
//!   token means a newer holder has loaded: the load fails with [`LoadError::Fenced`].
//! * Every table transaction starts with [`CHECK`] (`LOCK IN SHARE MODE`): tables of one batch
//!   share the lock and still run in parallel, while a newer holder's raise waits until they end.
//!   A stored token larger than ours rolls the transaction back (fenced); a smaller one, or no row
//!   (emptied by hand), is raised inside the transaction.
//!
//! So each of a stale holder's transactions either commits before the newer holder's raise, and
//! therefore before any of its writes, or sees the newer token and writes nothing: the target never
//! goes back to an older batch. DDL cannot share a transaction with the check (MySQL commits DDL
//! implicitly); it is checked right before it runs, which narrows the window but cannot close it.
//!
//! [`LoadError::Fenced`]: crate::pipeline::load::LoadError::Fenced

use mysql_async::prelude::Queryable;
use mysql_async::Transaction;
use tracing::warn;

use crate::pipeline::load::error::{failure, Failure};

/// The schema of otter's own tables on the target (Otter's name for it).
pub const FENCE_SCHEMA: &str = "retl";
/// The table holding each pipeline's newest fencing token.
pub const FENCE_TABLE: &str = "retl_fence";

/// Whether the fence table exists (it is created only when it does not, so a target user
/// without CREATE works once an operator created it).
pub(crate) const TABLE_EXISTS: &str = "SELECT COUNT(*) FROM information_schema.TABLES \
     WHERE TABLE_SCHEMA = 'retl' AND TABLE_NAME = 'retl_fence'";
/// Creates the fence schema (idempotent).
pub(crate) const CREATE_SCHEMA: &str = "CREATE DATABASE IF NOT EXISTS `retl`";
/// Creates the fence table (idempotent).
pub(crate) const CREATE_TABLE: &str = "CREATE TABLE IF NOT EXISTS `retl`.`retl_fence` (\
     pipeline_id BIGINT NOT NULL PRIMARY KEY, \
     token BIGINT NOT NULL, \
     updated_at TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3) ON UPDATE CURRENT_TIMESTAMP(3)\
     ) ENGINE=InnoDB";
/// First statement of a table transaction: the stored token, under a shared row lock.
pub(crate) const CHECK: &str =
    "SELECT token FROM `retl`.`retl_fence` WHERE pipeline_id = ? LOCK IN SHARE MODE";
/// Raises the stored token to ours; never lowers it.
pub(crate) const RAISE: &str =
    "INSERT INTO `retl`.`retl_fence` (pipeline_id, token) VALUES (?, ?) \
     ON DUPLICATE KEY UPDATE token = GREATEST(token, VALUES(token))";
/// The stored token after [`RAISE`] (a locking read: the newest committed value).
pub(crate) const READ_BACK: &str =
    "SELECT token FROM `retl`.`retl_fence` WHERE pipeline_id = ? FOR UPDATE";

/// What a Load transaction carries to the target: its pipeline and the fencing token of the Load
/// lock it holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fence {
    /// The pipeline id (the row of `retl.retl_fence`).
    pub pipeline: u32,
    /// The creation zxid of the Load lock znode held for the batch.
    pub token: i64,
}

/// How the stored token compares with ours.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Equal: this holder raised it; the transaction goes on.
    Current,
    /// Smaller, or no row: ours is to be written.
    Behind,
    /// Larger: a newer holder has loaded; this transaction must not commit.
    Stale {
        /// The stored token.
        newer: i64,
    },
}

/// Compares the stored token (`None`: no row) with `ours`.
pub(crate) fn judge(stored: Option<i64>, ours: i64) -> Verdict {
    match stored {
        Some(s) if s > ours => Verdict::Stale { newer: s },
        Some(s) if s == ours => Verdict::Current,
        _ => Verdict::Behind,
    }
}

/// First thing in a table transaction: `Ok(None)` when it may go on (holding the fence row
/// shared, or exclusive if it had to raise the token), `Ok(Some(newer))` when it must roll back.
pub(crate) async fn check(tx: &mut Transaction<'_>, fence: Fence) -> Result<Option<i64>, Failure> {
    let stored: Option<i64> = tx
        .exec_first(CHECK, (fence.pipeline,))
        .await
        .map_err(failure(CHECK))?;
    match judge(stored, fence.token) {
        Verdict::Current => Ok(None),
        Verdict::Stale { newer } => Ok(Some(newer)),
        Verdict::Behind => raise(tx, fence).await,
    }
}

/// Raises the stored token to ours in `tx` and reads it back: `Ok(Some(newer))` when it was
/// already larger (the caller rolls back), `Ok(None)` when ours is stored.
pub(crate) async fn raise(tx: &mut Transaction<'_>, fence: Fence) -> Result<Option<i64>, Failure> {
    tx.exec_drop(RAISE, (fence.pipeline, fence.token))
        .await
        .map_err(failure(RAISE))?;
    let stored: Option<i64> = tx
        .exec_first(READ_BACK, (fence.pipeline,))
        .await
        .map_err(failure(READ_BACK))?;
    match judge(stored, fence.token) {
        Verdict::Current => Ok(None),
        Verdict::Stale { newer } => Ok(Some(newer)),
        // GREATEST never lowers and the row is locked: only a trigger or a broken table can do
        // this. Refuse rather than write unfenced.
        Verdict::Behind => Err(Failure {
            error: mysql_async::Error::Other(
                format!(
                    "retl.retl_fence holds {stored:?} for pipeline {} right after raising it to {}",
                    fence.pipeline, fence.token
                )
                .into(),
            ),
            sql: READ_BACK.to_string(),
        }),
    }
}

/// A commit refused for a stale token: logged as a warning and counted in
/// `otter_load_fenced_total{pipeline}`.
pub(crate) fn note_fenced(pipeline: u32, process: u64, ours: i64, newer: i64) {
    metrics::counter!("otter_load_fenced_total", "pipeline" => pipeline.to_string()).increment(1);
    warn!(
        pipeline,
        process,
        token = ours,
        newer_token = newer,
        "load fenced: the target holds a newer fencing token (another node took this batch over \
         and loaded since); nothing was committed, the batch is given up"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_larger_stored_token_fences() {
        assert_eq!(judge(Some(11), 10), Verdict::Stale { newer: 11 });
        assert_eq!(judge(Some(i64::MAX), 0), Verdict::Stale { newer: i64::MAX });
    }

    #[test]
    fn the_same_token_goes_on_and_a_smaller_or_missing_one_is_raised() {
        assert_eq!(judge(Some(10), 10), Verdict::Current);
        assert_eq!(judge(Some(9), 10), Verdict::Behind);
        assert_eq!(judge(None, 10), Verdict::Behind);
        assert_eq!(judge(Some(-1), 0), Verdict::Behind);
    }

    #[test]
    fn statements_lock_the_pipeline_row_and_never_lower_the_token() {
        assert!(CHECK.ends_with("WHERE pipeline_id = ? LOCK IN SHARE MODE"));
        assert!(READ_BACK.ends_with("WHERE pipeline_id = ? FOR UPDATE"));
        assert!(RAISE.contains("token = GREATEST(token, VALUES(token))"));
        for sql in [CHECK, RAISE, READ_BACK, CREATE_TABLE] {
            assert!(
                sql.contains(&format!("`{FENCE_SCHEMA}`.`{FENCE_TABLE}`")),
                "{sql}"
            );
        }
        assert!(CREATE_TABLE.contains("pipeline_id BIGINT NOT NULL PRIMARY KEY"));
        assert!(CREATE_TABLE.contains("ENGINE=InnoDB"));
    }
}
