//! Why a load failed ([`LoadError`]), and which driver errors a retry can fix.

/// Why a load (or a table check) failed.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The target password setting (`env:NAME` / `file:PATH`) cannot be resolved on this node.
    #[error("target {address} password: {source}")]
    Secret {
        /// The target address.
        address: String,
        /// Why.
        #[source]
        source: zk_coord::secret::SecretError,
    },
    /// The target address is not `host:port`.
    #[error("target address `{address}`: {reason}")]
    Address {
        /// The configured address.
        address: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A replicated table is missing on the target.
    #[error("target table `{table}` does not exist")]
    NoTable {
        /// `schema.table`.
        table: String,
    },
    /// A replicated table has no primary key on the target.
    #[error("target table `{table}` has no primary key; otter needs one to merge and upsert rows")]
    NoPrimaryKey {
        /// `schema.table`.
        table: String,
    },
    /// A row change carries no key column, so it cannot be deleted by key.
    #[error("table `{table}`: a row change carries no key column; otter needs the primary key to merge and delete rows")]
    NoKey {
        /// `schema.table`.
        table: String,
    },
    /// A value cannot be written as a literal of its type (e.g. a number that is not a number).
    #[error("table `{table}`, column `{column}` (java.sql.Types {sql_type}): {reason}")]
    BadValue {
        /// `schema.table`.
        table: String,
        /// Column name.
        column: String,
        /// `java.sql.Types` code of the column.
        sql_type: i32,
        /// What is wrong, with the start of the value.
        reason: String,
    },
    /// A schema, table or column name that MySQL cannot quote (it contains NUL or is empty).
    #[error("bad identifier {ident:?} in table `{table}`: {reason}")]
    BadIdentifier {
        /// `schema.table`.
        table: String,
        /// The identifier.
        ident: String,
        /// What is wrong.
        reason: String,
    },
    /// A batch holds both DDL and row changes (Extract keeps DDL alone in its batch).
    #[error("batch holds DDL and {rows} row changes; DDL must be alone in its batch")]
    DdlWithRows {
        /// Number of row changes next to the DDL.
        rows: usize,
    },
    /// A statement failed with an error that retrying cannot fix (unknown column, bad value…).
    #[error("`{table}`: {source}; statement: {sql}")]
    Sql {
        /// `schema.table` (for DDL: the schema).
        table: String,
        /// The first 200 characters of the statement.
        sql: String,
        /// The driver's error.
        #[source]
        source: mysql_async::Error,
    },
    /// The target's fencing token for the pipeline is newer than this load's: another node took
    /// the batch over after this node lost its Load lock, and loaded since. The transaction was
    /// rolled back; the batch is not retried by this node.
    #[error("pipeline {pipeline}: fenced: the target holds fencing token {newer}, newer than this load's {ours}; another node took the batch over")]
    Fenced {
        /// The pipeline id.
        pipeline: u32,
        /// This load's token.
        ours: i64,
        /// The token the target holds.
        newer: i64,
    },
    /// The load was cancelled (its `stop` token) before it completed; the batch may be partly
    /// applied and is to be loaded again.
    #[error("load cancelled")]
    Cancelled,
}

impl LoadError {
    /// Whether the error is the definition's or the target schema's (a missing table, no primary
    /// key, a bad target address), which no retry fixes.
    pub fn is_definition(&self) -> bool {
        matches!(
            self,
            LoadError::NoTable { .. }
                | LoadError::NoPrimaryKey { .. }
                | LoadError::Address { .. }
                | LoadError::Secret { .. }
        )
    }
}

/// How much of a failed statement an error shows.
const SQL_IN_ERROR: usize = 200;

/// Server error codes a retry can fix.
const RETRYABLE_CODES: &[u16] = &[
    1040, // ER_CON_COUNT_ERROR: too many connections
    1053, // ER_SERVER_SHUTDOWN
    1158, // ER_NET_READ_ERROR
    1159, // ER_NET_READ_INTERRUPTED
    1160, // ER_NET_ERROR_ON_WRITE
    1161, // ER_NET_WRITE_INTERRUPTED
    1205, // ER_LOCK_WAIT_TIMEOUT
    1213, // ER_LOCK_DEADLOCK
    1317, // ER_QUERY_INTERRUPTED
    1927, // ER_CONNECTION_KILLED (MariaDB)
    2006, // CR_SERVER_GONE_ERROR
    2013, // CR_SERVER_LOST
    4031, // ER_CLIENT_INTERACTION_TIMEOUT (MySQL 8)
];

/// Whether redoing the transaction may succeed: connection and I/O failures, deadlocks, lock
/// wait timeouts, a server going away or shutting down.
pub(crate) fn is_retryable(e: &mysql_async::Error) -> bool {
    use mysql_async::{DriverError, Error};
    match e {
        Error::Io(_) => true,
        Error::Server(s) => RETRYABLE_CODES.contains(&s.code),
        Error::Driver(d) => matches!(
            d,
            DriverError::ConnectionClosed
                | DriverError::PacketOutOfOrder
                | DriverError::UnexpectedPacket { .. }
        ),
        Error::Other(_) | Error::Url(_) => false,
    }
}

/// DDL errors that mean the statement was already applied (a replayed batch, or a retry after
/// the connection dropped while the DDL ran): the table, database, column or index exists, or
/// what is dropped is already gone.
pub(crate) const DDL_ALREADY_APPLIED: &[u16] = &[
    1007, // ER_DB_CREATE_EXISTS
    1008, // ER_DB_DROP_EXISTS
    1050, // ER_TABLE_EXISTS_ERROR
    1051, // ER_BAD_TABLE_ERROR (DROP TABLE of a missing table)
    1060, // ER_DUP_FIELDNAME
    1061, // ER_DUP_KEYNAME
    1091, // ER_CANT_DROP_FIELD_OR_KEY
];

/// A duplicate key (`ER_DUP_ENTRY`).
pub(crate) const ER_DUP_ENTRY: u16 = 1062;

pub(crate) fn server_code(e: &mysql_async::Error) -> Option<u16> {
    match e {
        mysql_async::Error::Server(s) => Some(s.code),
        _ => None,
    }
}

pub(crate) fn sql_excerpt(sql: &str) -> String {
    sql.chars().take(SQL_IN_ERROR).collect()
}

/// A failed attempt: the error and the statement it came from.
pub(crate) struct Failure {
    pub(crate) error: mysql_async::Error,
    pub(crate) sql: String,
}

pub(crate) fn failure(sql: &str) -> impl FnOnce(mysql_async::Error) -> Failure + '_ {
    move |error| Failure {
        error,
        sql: sql.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retryable_errors() {
        let server = |code| {
            mysql_async::Error::Server(mysql_async::ServerError {
                code,
                message: String::new(),
                state: String::new(),
            })
        };
        assert!(is_retryable(&server(1213)));
        assert!(is_retryable(&server(1205)));
        assert!(is_retryable(&server(2013)));
        assert!(!is_retryable(&server(1054)));
        assert!(is_retryable(&mysql_async::Error::Io(
            std::io::Error::from(std::io::ErrorKind::ConnectionRefused).into()
        )));
    }
}
