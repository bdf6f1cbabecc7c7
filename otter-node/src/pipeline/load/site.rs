//! Preparing a site for otter: the `retl` schema and the tables Load writes into every target
//! (`retl_fence` for fencing tokens, `retl_mark` for loop prevention) and the one Select writes
//! into every source (`xdual`, the delay heartbeat), created by an operator's account once, so
//! the load and source accounts need no CREATE privilege.

use mysql_async::prelude::Queryable;

use crate::model::TargetDb;
use crate::pipeline::load::{conflict, fence, LoadError};
use crate::pipeline::{heartbeat, loopback};

/// What the load account needs on `retl` once it exists.
pub const LOAD_GRANTS: &str = "SELECT, INSERT, UPDATE ON `retl`.*";
/// What a source account needs to write the delay heartbeat.
pub const SOURCE_GRANTS: &str = "INSERT, UPDATE ON `retl`.`xdual`";
/// What a source account needs for snapshots (`snapshot_tables`): their window marks.
pub const SNAPSHOT_GRANTS: &str = "INSERT, DELETE ON `retl`.`snapshot_signal`";

/// The snapshot signal table (canal-server's signal table shape, Debezium's columns).
pub const CREATE_SNAPSHOT_SIGNAL: &str = "CREATE TABLE IF NOT EXISTS retl.snapshot_signal (id VARCHAR(64) NOT NULL PRIMARY KEY, type VARCHAR(32) NOT NULL, data VARCHAR(2048) NULL)";

/// Connection settings for `account` (its password resolved here, TLS not applied yet: connect
/// with `account.tls.connect`).
pub(crate) fn account_opts(account: &TargetDb) -> Result<mysql_async::OptsBuilder, LoadError> {
    let (host, port) = canal_protocol::HostPort::mysql(&account.address)
        .map(|a| (a.host, a.port))
        .map_err(|e| LoadError::Address {
            address: account.address.clone(),
            reason: e.reason.to_string(),
        })?;
    let password =
        zk_coord::secret::resolve(&account.password).map_err(|source| LoadError::Secret {
            address: account.address.clone(),
            source,
        })?;
    Ok(mysql_async::OptsBuilder::default()
        .ip_or_hostname(host)
        .tcp_port(port)
        .user(Some(account.username.clone()))
        .pass((!password.is_empty()).then_some(password))
        .prefer_socket(false))
}

/// Creates `retl`, `retl.retl_fence` and `retl.retl_mark` where missing (idempotent) with
/// `account`, and returns the statements that ran. A missing privilege is an error that names it.
pub async fn prepare_site(account: &TargetDb) -> Result<Vec<&'static str>, LoadError> {
    let opts = account_opts(account)?;
    let sql_error = |sql: &str| {
        let sql = sql.to_string();
        move |source: mysql_async::Error| {
            let denied = matches!(&source, mysql_async::Error::Server(e) if matches!(e.code, 1044 | 1045 | 1142 | 1227));
            LoadError::Sql {
                table: if denied {
                    "retl (the account needs CREATE on `retl`.* and on the server to create the \
                     schema; the load account then needs SELECT, INSERT, UPDATE ON `retl`.*)"
                        .into()
                } else {
                    "retl".into()
                },
                sql,
                source,
            }
        }
    };
    let mut conn = account
        .tls
        .connect(opts)
        .await
        .map_err(sql_error("(connect)"))?;
    let statements = [
        fence::CREATE_SCHEMA,
        fence::CREATE_TABLE,
        loopback::CREATE_MARK_TABLE,
        conflict::CREATE_CONFLICT_TABLE,
        heartbeat::CREATE_XDUAL,
        CREATE_SNAPSHOT_SIGNAL,
    ];
    for sql in statements {
        conn.query_drop(sql).await.map_err(sql_error(sql))?;
    }
    let _ = conn.disconnect().await;
    Ok(statements.to_vec())
}
