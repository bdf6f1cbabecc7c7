use std::path::PathBuf;

/// Why a harness operation failed. Messages name the server and, where useful, the log to read.
#[derive(Debug, thiserror::Error)]
pub enum HarnessError {
    /// A program the harness needs is not installed.
    #[error(
        "`{program}` not found: install the Debian package `{package}` (scripts/setup.sh does)"
    )]
    MissingProgram {
        /// The executable or file that was looked for.
        program: String,
        /// The Debian package that provides it.
        package: &'static str,
    },
    /// A program installed with `cargo install` is missing.
    #[error("`{program}` not found: `{install}` (scripts/setup.sh does), or set TANSU_BIN")]
    MissingCargoTool {
        /// The executable that was looked for.
        program: String,
        /// The command that installs it.
        install: &'static str,
    },
    /// A server did not become ready in time or exited while starting.
    #[error("{what} did not start: {reason}; log {log}:\n{tail}")]
    NotReady {
        /// Which server.
        what: String,
        /// What went wrong.
        reason: String,
        /// The log file to read.
        log: PathBuf,
        /// The last lines of that log.
        tail: String,
    },
    /// A helper command (such as `mariadb-install-db`) failed.
    #[error("{what} failed: {detail}")]
    Command {
        /// The command.
        what: String,
        /// Its exit status and output.
        detail: String,
    },
    /// An I/O error while managing processes or files.
    #[error("{context}: {source}")]
    Io {
        /// What the harness was doing.
        context: String,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A SQL error from the MariaDB test server.
    #[error("sql `{sql}`: {source}")]
    Sql {
        /// The statement that failed.
        sql: String,
        /// The driver's error.
        source: mysql_async::Error,
    },
    /// A ZooKeeper client error.
    #[error("zookeeper: {0}")]
    Zk(#[from] zookeeper_client::Error),
    /// An operation on a process that is not running.
    #[error("{0} is not running")]
    NotRunning(String),
}

impl HarnessError {
    /// [`HarnessError::NotReady`] for `what`, with the last 20 lines of its `log`.
    pub(crate) fn not_ready(what: String, reason: String, log: PathBuf) -> Self {
        let tail = crate::process::tail(&log, 20);
        HarnessError::NotReady {
            what,
            reason,
            log,
            tail,
        }
    }
}

/// Result with a [`HarnessError`].
pub type Result<T, E = HarnessError> = std::result::Result<T, E>;

pub(crate) fn io_err(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> HarnessError {
    let context = context.into();
    move |source| HarnessError::Io { context, source }
}
