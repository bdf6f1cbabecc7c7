//! The target tables a pipeline writes: each must exist and have a primary key (Load merges and
//! upserts by key). Checked before Select starts, so a wrong definition is a clear error at start
//! rather than a stuck batch, and by Load for every table a batch names the first time.

use std::collections::HashSet;

use mysql_async::prelude::Queryable;

use crate::model::{find_mapping, CompiledMapping, Pipeline};
use crate::pipeline::load::{LoadError, Loader};

/// Why [`check_targets`] failed.
#[derive(Debug, thiserror::Error)]
pub enum TargetCheckError {
    /// The source address is not `host:port`.
    #[error("source address {0:?} is not host:port")]
    SourceAddress(String),
    /// The source could not be reached or listed.
    #[error("source {address}: {what}{source}")]
    Source {
        /// The source address.
        address: String,
        /// What was being done (empty for the connection, else `listing tables: `).
        what: &'static str,
        /// The driver's error.
        #[source]
        source: mysql_async::Error,
    },
    /// The source's binlog leaves out the `retl` schema, so the marks of what Load wrote there
    /// never reach Select and a two-way channel would send every change back and forth.
    #[error("source {address} does not log the retl schema ({setting}); a two-way channel needs the marks in retl.retl_mark to tell loaded changes apart: drop that binlog filter for retl")]
    RetlNotLogged {
        /// The source address.
        address: String,
        /// The filter, e.g. `Binlog_Ignore_DB=retl`.
        setting: String,
    },
    /// The source password setting cannot be resolved on this node.
    #[error("source {address} password: {source}")]
    SourceSecret {
        /// The source address.
        address: String,
        /// Why.
        #[source]
        source: zk_coord::secret::SecretError,
    },
    /// A target table is missing or has no primary key, or the target cannot be checked.
    #[error(transparent)]
    Target(#[from] LoadError),
}

impl TargetCheckError {
    /// Whether the pipeline's definition (or the target's schema) is wrong: waiting briefly and
    /// checking again cannot help, an operator has to fix it.
    pub fn is_definition(&self) -> bool {
        match self {
            Self::SourceAddress(_) | Self::SourceSecret { .. } | Self::RetlNotLogged { .. } => true,
            Self::Source { .. } => false,
            Self::Target(e) => e.is_definition(),
        }
    }
}

impl Loader {
    /// Checks that every `(schema, table)` exists on the target and has a PRIMARY KEY.
    pub async fn check_tables(&self, tables: &[(String, String)]) -> Result<(), LoadError> {
        const EXISTS: &str = "SELECT COUNT(*) FROM information_schema.TABLES \
                              WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?";
        const HAS_PK: &str = "SELECT COUNT(*) FROM information_schema.TABLE_CONSTRAINTS \
                              WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? \
                              AND CONSTRAINT_TYPE = 'PRIMARY KEY'";
        let Some((schema, table)) = tables.first() else {
            return Ok(());
        };
        let sql_err = |table: String, sql: &str| {
            let sql = sql.to_string();
            move |source| LoadError::Sql { table, sql, source }
        };
        let mut conn = self
            .conn()
            .await
            .map_err(sql_err(format!("{schema}.{table}"), "(connect)"))?;
        for (schema, table) in tables {
            let name = format!("{schema}.{table}");
            let exists: Option<u64> = conn
                .exec_first(EXISTS, (schema.as_str(), table.as_str()))
                .await
                .map_err(sql_err(name.clone(), EXISTS))?;
            if exists.unwrap_or(0) == 0 {
                return Err(LoadError::NoTable { table: name });
            }
            let pk: Option<u64> = conn
                .exec_first(HAS_PK, (schema.as_str(), table.as_str()))
                .await
                .map_err(sql_err(name.clone(), HAS_PK))?;
            if pk.unwrap_or(0) == 0 {
                return Err(LoadError::NoPrimaryKey { table: name });
            }
        }
        Ok(())
    }
}

/// Every source table the mappings take has a target table with a primary key: lists the
/// source's base tables, maps them, and checks their targets through a [`Loader`] of its own.
/// For a pipeline of a two-way channel (`two_way`), also that the source's binlog keeps `retl`
/// (Otter's issue #69: a binlog filter leaving it out makes the sites ping-pong).
pub async fn check_targets(
    p: &Pipeline,
    mappings: &[CompiledMapping],
    two_way: bool,
) -> Result<(), TargetCheckError> {
    let canal_protocol::HostPort { host, port } =
        canal_protocol::HostPort::mysql(&p.source.address)
            .map_err(|_| TargetCheckError::SourceAddress(p.source.address.clone()))?;
    let source_error = |what: &'static str| {
        move |source| TargetCheckError::Source {
            address: p.source.address.clone(),
            what,
            source,
        }
    };
    let password = zk_coord::secret::resolve(&p.source.password).map_err(|source| {
        TargetCheckError::SourceSecret {
            address: p.source.address.clone(),
            source,
        }
    })?;
    let opts = mysql_async::OptsBuilder::default()
        .ip_or_hostname(host)
        .tcp_port(port)
        .user(Some(p.source.username.clone()))
        .pass(Some(password))
        .prefer_socket(false);
    let mut conn = p.source.tls.connect(opts).await.map_err(source_error(""))?;
    let tables: Vec<(String, String)> = conn
        .query(
            "SELECT TABLE_SCHEMA, TABLE_NAME FROM information_schema.TABLES \
             WHERE TABLE_TYPE = 'BASE TABLE'",
        )
        .await
        .map_err(source_error("listing tables: "))?;
    if two_way {
        let status: Option<mysql_async::Row> = conn
            .query_first("SHOW MASTER STATUS")
            .await
            .map_err(source_error("SHOW MASTER STATUS: "))?;
        let field = |name: &str| {
            status
                .as_ref()
                .and_then(|r| r.get_opt::<String, _>(name))
                .and_then(Result::ok)
                .unwrap_or_default()
        };
        if let Some(setting) = retl_filtered(&field("Binlog_Do_DB"), &field("Binlog_Ignore_DB")) {
            let _ = conn.disconnect().await;
            return Err(TargetCheckError::RetlNotLogged {
                address: p.source.address.clone(),
                setting,
            });
        }
    }
    let _ = conn.disconnect().await;
    let targets: Vec<(String, String)> = tables
        .iter()
        .filter_map(|(s, t)| find_mapping(mappings, s, t).map(|m| m.target(s, t)))
        .collect::<HashSet<_>>()
        .into_iter()
        .collect();
    if targets.is_empty() {
        return Ok(());
    }
    let loader = Loader::new(&p.target)?;
    let r = loader.check_tables(&targets).await;
    loader.close().await;
    Ok(r?)
}

/// The binlog filter (from `SHOW MASTER STATUS`) that leaves `retl` out, if any.
fn retl_filtered(do_db: &str, ignore_db: &str) -> Option<String> {
    let has = |list: &str| {
        list.split(',')
            .any(|d| d.trim().eq_ignore_ascii_case("retl"))
    };
    if has(ignore_db) {
        return Some(format!("Binlog_Ignore_DB={ignore_db}"));
    }
    if !do_db.trim().is_empty() && !has(do_db) {
        return Some(format!("Binlog_Do_DB={do_db}"));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::retl_filtered;

    #[test]
    fn binlog_filters_that_drop_retl_are_found() {
        assert_eq!(retl_filtered("", ""), None);
        assert_eq!(retl_filtered("shop,retl", ""), None);
        assert_eq!(retl_filtered("", "tmp"), None);
        assert_eq!(
            retl_filtered("shop", "").as_deref(),
            Some("Binlog_Do_DB=shop")
        );
        assert_eq!(
            retl_filtered("", "tmp,RETL").as_deref(),
            Some("Binlog_Ignore_DB=tmp,RETL")
        );
    }
}
