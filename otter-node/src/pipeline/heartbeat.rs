//! The delay a pipeline runs behind its source, measured end to end like Otter's `xdual`: while a
//! node runs Select for a pipeline it writes the source's clock into `retl.xdual` (one row per
//! pipeline) every [`PERIOD`]; the row travels the binlog and the stages like any change, and the
//! node that loads its batch reports now − that clock as `otter_pipeline_delay_seconds{pipeline}`
//! and in `/otter/channel/{cid}/{pid}/delay` (what `otter-manager show` prints).
//!
//! The delay includes the clock difference between the source server and the load node. Writing
//! needs `INSERT, UPDATE ON retl.xdual` for the source account (`otter-manager prepare-site`
//! creates the table); without it the node says so once and keeps trying, and no delay is shown.

use std::time::Duration;

use mysql_async::prelude::Queryable;
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::model::SourceDb;

/// How often a heartbeat row is written.
pub const PERIOD: Duration = Duration::from_secs(1);
/// The heartbeat table.
pub const XDUAL_TABLE: &str = "xdual";
/// Creates the heartbeat table (idempotent).
pub const CREATE_XDUAL: &str = "CREATE TABLE IF NOT EXISTS `retl`.`xdual` (\
     id BIGINT NOT NULL PRIMARY KEY, \
     x BIGINT NOT NULL\
     ) ENGINE=InnoDB";
/// Writes a pipeline's heartbeat: the source's clock, ms since the epoch.
const WRITE: &str = "INSERT INTO `retl`.`xdual` (id, x) \
     VALUES (?, CAST(UNIX_TIMESTAMP(NOW(3)) * 1000 AS SIGNED)) \
     ON DUPLICATE KEY UPDATE x = VALUES(x)";

/// What `/otter/channel/{cid}/{pid}/delay` holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Delay {
    /// Load time minus the heartbeat's source time, ms.
    pub delay_ms: i64,
    /// When it was measured, ms since the epoch.
    pub at_ms: i64,
}

/// Now, ms since the epoch.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// Writes pipeline `pid`'s heartbeat into its source every [`PERIOD`] until `stop`.
pub async fn run(source: SourceDb, pid: u32, stop: CancellationToken) {
    let mut conn: Option<mysql_async::Conn> = None;
    let mut failing = false;
    loop {
        let result = async {
            if conn.is_none() {
                let (host, port) = canal_protocol::HostPort::mysql(&source.address)
                    .map(|a| (a.host, a.port))
                    .map_err(|e| e.to_string())?;
                let password =
                    zk_coord::secret::resolve(&source.password).map_err(|e| e.to_string())?;
                let opts = mysql_async::OptsBuilder::default()
                    .ip_or_hostname(host)
                    .tcp_port(port)
                    .user(Some(source.username.clone()))
                    .pass(Some(password))
                    .prefer_socket(false);
                conn = Some(source.tls.connect(opts).await.map_err(|e| e.to_string())?);
            }
            let Some(c) = conn.as_mut() else {
                return Err("no connection".to_string());
            };
            c.exec_drop(WRITE, (pid,)).await.map_err(|e| e.to_string())
        }
        .await;
        let wait = match result {
            Ok(()) => {
                if failing {
                    info!(pipeline = pid, "heartbeat rows are written again");
                    failing = false;
                }
                PERIOD
            }
            Err(e) => {
                conn = None;
                if !failing {
                    warn!(pipeline = pid, error = %e, "cannot write the heartbeat into retl.xdual on the source (otter-manager prepare-site creates it; the source account needs INSERT, UPDATE on it): no delay is measured until it can");
                    failing = true;
                }
                PERIOD * 10
            }
        };
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = tokio::time::sleep(wait) => {}
        }
    }
    if let Some(c) = conn {
        let _ = c.disconnect().await;
    }
}
