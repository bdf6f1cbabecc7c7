//! A real MariaDB server per test: own datadir, free loopback port, ROW binlog with FULL images.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use mysql_async::prelude::{FromRow, Queryable};

use crate::error::{io_err, HarnessError, Result};
use crate::ports::free_port;
use crate::process::{find_program, tail, ManagedProcess, TestDir};

/// `binlog_row_metadata`: how much column metadata TABLE_MAP events carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RowMetadata {
    /// No optional metadata (MariaDB's default).
    #[default]
    NoLog,
    /// Signedness, charsets, geometry types.
    Minimal,
    /// Everything, including column names, primary keys and ENUM/SET labels.
    Full,
}

impl RowMetadata {
    fn as_str(self) -> &'static str {
        match self {
            RowMetadata::NoLog => "NO_LOG",
            RowMetadata::Minimal => "MINIMAL",
            RowMetadata::Full => "FULL",
        }
    }
}

/// A replication account created at first start.
#[derive(Debug, Clone)]
pub struct ReplicationUser {
    /// User name.
    pub user: String,
    /// Password.
    pub password: String,
}

impl Default for ReplicationUser {
    fn default() -> Self {
        Self {
            user: "canal".into(),
            password: "canal-secret".into(),
        }
    }
}

/// How to start a [`MariaDb`].
#[derive(Debug, Clone)]
pub struct MariaDbOptions {
    /// `server_id` of the source.
    pub server_id: u32,
    /// `gtid_domain_id`.
    pub gtid_domain_id: u32,
    /// `binlog_row_metadata`.
    pub row_metadata: RowMetadata,
    /// Create this replication user (REPLICATION SLAVE, REPLICATION CLIENT, SELECT) at first start.
    pub replication_user: Option<ReplicationUser>,
    /// Extra `mariadbd` arguments, e.g. `--max-binlog-size=4096`.
    pub extra_args: Vec<String>,
}

impl Default for MariaDbOptions {
    fn default() -> Self {
        Self {
            server_id: 1,
            gtid_domain_id: 0,
            row_metadata: RowMetadata::NoLog,
            replication_user: Some(ReplicationUser::default()),
            extra_args: Vec::new(),
        }
    }
}

/// A binlog coordinate as `SHOW MASTER STATUS` reports it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct BinlogPosition {
    /// Binlog file name, e.g. `mysql-bin.000001`.
    pub file: String,
    /// Offset of the next event.
    pub position: u64,
}

/// A running MariaDB server. Dropping it kills the server and removes its directory (kept on panic).
#[derive(Debug)]
pub struct MariaDb {
    // Field order matters: the process is killed before its directory is removed.
    process: Option<ManagedProcess>,
    dir: TestDir,
    port: u16,
    options: MariaDbOptions,
    mariadbd: PathBuf,
}

const START_TIMEOUT: Duration = Duration::from_secs(90);

impl MariaDb {
    /// Starts a server with [`MariaDbOptions::default`].
    pub async fn start() -> Result<Self> {
        Self::start_with(MariaDbOptions::default()).await
    }

    /// Installs a fresh datadir and starts a server with `options`.
    pub async fn start_with(options: MariaDbOptions) -> Result<Self> {
        let mariadbd = find_program("mariadbd", "mariadb-server")?;
        let install = find_program("mariadb-install-db", "mariadb-server")?;
        let dir = TestDir::new("mariadb")?;
        let datadir = dir.path().join("data");
        let tmpdir = dir.path().join("tmp");
        std::fs::create_dir_all(&tmpdir).map_err(io_err("create mariadb tmpdir"))?;
        let out = Command::new(&install)
            .arg("--no-defaults")
            .arg(format!("--datadir={}", datadir.display()))
            .arg("--auth-root-authentication-method=normal")
            .arg("--skip-test-db")
            .arg(format!("--tmpdir={}", tmpdir.display()))
            .args(user_arg())
            .args(INNODB_ARGS)
            .output()
            .map_err(io_err("run mariadb-install-db"))?;
        if !out.status.success() {
            return Err(HarnessError::Command {
                what: "mariadb-install-db".into(),
                detail: format!(
                    "{}\n{}\n{}",
                    out.status,
                    String::from_utf8_lossy(&out.stdout),
                    String::from_utf8_lossy(&out.stderr)
                ),
            });
        }
        let mut db = MariaDb {
            process: None,
            dir,
            port: 0,
            options,
            mariadbd,
        };
        db.launch_with_port_retry().await?;
        if let Some(user) = db.options.replication_user.clone() {
            db.exec(&format!(
                "CREATE USER '{u}'@'%' IDENTIFIED BY '{p}';
                 GRANT SELECT, REPLICATION SLAVE, REPLICATION CLIENT, BINLOG MONITOR ON *.* TO '{u}'@'%';",
                u = user.user,
                p = user.password
            ))
            .await?;
        }
        Ok(db)
    }

    async fn launch_with_port_retry(&mut self) -> Result<()> {
        let mut last = None;
        for _ in 0..3 {
            self.port = free_port();
            match self.launch().await {
                Ok(()) => return Ok(()),
                Err(e) => {
                    let clash = tail(&self.log_path(), 30).contains("Address already in use");
                    if !clash {
                        return Err(e);
                    }
                    last = Some(e);
                }
            }
        }
        Err(last.unwrap_or(HarnessError::NotRunning("mariadb".into())))
    }

    fn command(&self) -> Command {
        let dir = self.dir.path();
        let mut cmd = Command::new(&self.mariadbd);
        cmd.arg("--no-defaults")
            .arg(format!("--datadir={}", dir.join("data").display()))
            .arg(format!("--port={}", self.port))
            .arg("--bind-address=127.0.0.1")
            .arg(format!("--socket={}", dir.join("mysqld.sock").display()))
            .arg(format!("--pid-file={}", dir.join("mysqld.pid").display()))
            .arg(format!("--tmpdir={}", dir.join("tmp").display()))
            .arg(format!("--log-error={}", self.log_path().display()))
            .args(user_arg())
            .arg(format!("--server-id={}", self.options.server_id))
            .arg(format!("--gtid-domain-id={}", self.options.gtid_domain_id))
            .arg("--gtid-strict-mode=ON")
            .arg("--log-bin=mysql-bin")
            .arg("--log-slave-updates=ON")
            .arg("--binlog-format=ROW")
            .arg("--binlog-row-image=FULL")
            .arg("--binlog-checksum=CRC32")
            .arg(format!(
                "--binlog-row-metadata={}",
                self.options.row_metadata.as_str()
            ))
            .arg("--skip-name-resolve")
            .arg("--character-set-server=utf8mb4")
            .arg("--collation-server=utf8mb4_general_ci")
            .arg("--max-connections=500")
            .arg("--max-allowed-packet=64M")
            .arg("--performance-schema=OFF")
            .arg("--innodb-flush-log-at-trx-commit=2")
            .arg("--sync-binlog=0")
            .args(INNODB_ARGS)
            .args(&self.options.extra_args);
        cmd
    }

    async fn launch(&mut self) -> Result<()> {
        let process = ManagedProcess::start(
            format!("mariadbd:{}", self.port),
            self.command(),
            &self.dir.path().join("stdout.log"),
        )?;
        self.process = Some(process);
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Some(p) = self.process.as_mut() {
                if let Some(status) = p.try_exit_status() {
                    self.process = None;
                    return Err(self.not_ready(format!("mariadbd exited with {status}")));
                }
            }
            match mysql_async::Conn::new(self.opts_builder()).await {
                Ok(conn) => {
                    let _ = conn.disconnect().await;
                    return Ok(());
                }
                Err(_) if Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(50)).await
                }
                Err(e) => {
                    return Err(
                        self.not_ready(format!("no connection after {START_TIMEOUT:?}: {e}"))
                    )
                }
            }
        }
    }

    fn not_ready(&self, reason: String) -> HarnessError {
        HarnessError::not_ready(
            format!("MariaDB on port {}", self.port),
            reason,
            self.log_path(),
        )
    }

    fn opts_builder(&self) -> mysql_async::OptsBuilder {
        mysql_async::OptsBuilder::default()
            .ip_or_hostname("127.0.0.1")
            .tcp_port(self.port)
            .user(Some("root"))
            .prefer_socket(false)
    }

    /// Loopback port the server listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `127.0.0.1:port`.
    pub fn addr(&self) -> std::net::SocketAddr {
        std::net::SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// The options the server was started with.
    pub fn options(&self) -> &MariaDbOptions {
        &self.options
    }

    /// The replication user created at start, if any.
    pub fn replication_user(&self) -> Option<&ReplicationUser> {
        self.options.replication_user.as_ref()
    }

    /// The server's data directory (binlogs are in it, named `mysql-bin.NNNNNN`).
    pub fn datadir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// The server's error log.
    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("error.log")
    }

    /// The directory holding datadir and logs.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// A new connection as root.
    pub async fn conn(&self) -> Result<mysql_async::Conn> {
        mysql_async::Conn::new(self.opts_builder())
            .await
            .map_err(|source| HarnessError::Sql {
                sql: "(connect)".into(),
                source,
            })
    }

    /// Runs one or more `;`-separated statements as root on a fresh connection.
    pub async fn exec(&self, sql: &str) -> Result<()> {
        let mut conn = self.conn().await?;
        let r = conn.query_drop(sql).await;
        let _ = conn.disconnect().await;
        r.map_err(|source| HarnessError::Sql {
            sql: sql.to_string(),
            source,
        })
    }

    /// Runs a query as root and collects its rows.
    pub async fn query<T: FromRow + Send + 'static>(&self, sql: &str) -> Result<Vec<T>> {
        let mut conn = self.conn().await?;
        let r = conn.query(sql).await;
        let _ = conn.disconnect().await;
        r.map_err(|source| HarnessError::Sql {
            sql: sql.to_string(),
            source,
        })
    }

    /// `SHOW MASTER STATUS`: the current end of the binlog.
    pub async fn master_status(&self) -> Result<BinlogPosition> {
        let rows: Vec<mysql_async::Row> = self.query("SHOW MASTER STATUS").await?;
        let row = rows
            .into_iter()
            .next()
            .ok_or_else(|| HarnessError::Command {
                what: "SHOW MASTER STATUS".into(),
                detail: "no row: is log-bin enabled?".into(),
            })?;
        let file: Option<String> = row.get(0);
        let position: Option<u64> = row.get(1);
        match (file, position) {
            (Some(file), Some(position)) => Ok(BinlogPosition { file, position }),
            _ => Err(HarnessError::Command {
                what: "SHOW MASTER STATUS".into(),
                detail: "unexpected columns".into(),
            }),
        }
    }

    /// `@@gtid_binlog_pos`: the GTID position of the last transaction in the binlog.
    pub async fn gtid_binlog_pos(&self) -> Result<String> {
        let v: Vec<String> = self.query("SELECT @@gtid_binlog_pos").await?;
        Ok(v.into_iter().next().unwrap_or_default())
    }

    /// Binlog files the server currently has, oldest first (`SHOW BINARY LOGS`).
    pub async fn binary_logs(&self) -> Result<Vec<String>> {
        let rows: Vec<mysql_async::Row> = self.query("SHOW BINARY LOGS").await?;
        Ok(rows.into_iter().filter_map(|r| r.get(0)).collect())
    }

    /// Whether the server process is running (paused counts as running).
    pub fn is_running(&mut self) -> bool {
        self.process.as_mut().is_some_and(|p| p.is_running())
    }

    /// The server's pid while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.process.as_ref().and_then(|p| p.pid())
    }

    /// Stops the server cleanly (SIGTERM) and starts it again on the same port and datadir.
    pub async fn restart(&mut self) -> Result<()> {
        self.stop()?;
        self.start_again().await
    }

    /// Stops the server cleanly (SIGTERM, then SIGKILL after 60 s).
    pub fn stop(&mut self) -> Result<()> {
        if let Some(mut p) = self.process.take() {
            p.terminate(Duration::from_secs(60))?;
        }
        Ok(())
    }

    /// Kills the server with SIGKILL; it stays down until [`MariaDb::start_again`].
    pub fn kill9(&mut self) -> Result<()> {
        if let Some(mut p) = self.process.take() {
            p.kill9()?;
        }
        Ok(())
    }

    /// Starts a stopped or killed server again on the same port and datadir (crash recovery runs).
    pub async fn start_again(&mut self) -> Result<()> {
        if self.process.is_some() {
            return Ok(());
        }
        self.launch().await
    }

    /// Freezes the server with SIGSTOP: connections stay open but nothing is answered.
    pub fn pause(&mut self) -> Result<()> {
        self.process_mut()?.pause()
    }

    /// Continues a server frozen by [`MariaDb::pause`].
    pub fn resume(&mut self) -> Result<()> {
        self.process_mut()?.resume()
    }

    fn process_mut(&mut self) -> Result<&mut ManagedProcess> {
        let port = self.port;
        self.process
            .as_mut()
            .ok_or_else(|| HarnessError::NotRunning(format!("mariadbd:{port}")))
    }
}

const INNODB_ARGS: &[&str] = &[
    "--innodb-buffer-pool-size=32M",
    "--innodb-log-file-size=16M",
    "--innodb-data-file-path=ibdata1:12M:autoextend",
];

fn user_arg() -> Vec<String> {
    // mariadbd refuses to run as root unless told to; as another user it needs no flag.
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        vec!["--user=root".to_string()]
    } else {
        Vec::new()
    }
}
