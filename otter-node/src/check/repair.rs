//! Repairs: each differing key rewritten on the target from the source's current row (or deleted
//! when the source has none), one target transaction per key that first writes Load's mark, so
//! the reverse pipeline of a two-way channel drops it instead of sending it back.

use mysql_async::prelude::Queryable;

use crate::check::walk::row;
use crate::check::{CheckError, Pair, Side, TableReport};
use crate::pipeline::loopback::{mark_slot, MARK_SLOTS, WRITE_MARK};

/// Who the repairs are written as: the channel and pipeline, and the site the rows come from.
#[derive(Debug, Clone)]
pub(crate) struct Mark {
    pub(crate) channel: u32,
    pub(crate) pipeline: u32,
    pub(crate) origin: String,
}

/// Rewrites every kept difference of `report` on the target and marks it repaired.
pub(crate) async fn repair(
    source: &mut Side,
    target: &mut Side,
    pair: &Pair,
    mark: &Mark,
    report: &mut TableReport,
) -> Result<(), CheckError> {
    if report.differences.is_empty() {
        return Ok(());
    }
    let upsert = pair.target.upsert()?;
    let delete = pair.target.delete()?;
    for d in report.differences.iter_mut() {
        let err = |sql: &str| {
            let (side, address, sql) = (target.name, target.address.clone(), sql.to_string());
            move |source| CheckError::Sql {
                side,
                address,
                sql,
                source: Box::new(source),
            }
        };
        let mut tx = target
            .conn
            .start_transaction(mysql_async::TxOpts::default())
            .await
            .map_err(err("START TRANSACTION"))?;
        // The last slot of the pipeline's marks: Load uses the first `parallelism` ones.
        let slot = mark_slot(mark.pipeline, (MARK_SLOTS - 1) as usize);
        tx.exec_drop(WRITE_MARK, (slot, mark.channel, mark.origin.as_str()))
            .await
            .map_err(err(WRITE_MARK))?;
        // The source's row as it is now (not as it was when the difference was found).
        let now = row(source, &pair.source, &d.key_values, false).await?;
        match now {
            Some(values) => tx
                .exec_drop(upsert.as_str(), mysql_async::Params::Positional(values))
                .await
                .map_err(err(&upsert))?,
            None => tx
                .exec_drop(
                    delete.as_str(),
                    mysql_async::Params::Positional(d.key_values.clone()),
                )
                .await
                .map_err(err(&delete))?,
        }
        tx.commit().await.map_err(err("COMMIT"))?;
        d.repaired = true;
    }
    Ok(())
}
