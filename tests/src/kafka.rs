//! A Kafka-protocol broker per test: `tansu` (crates.io, `cargo install --locked tansu --features
//! libsql`, which scripts/setup.sh runs when it is missing), with its SQLite storage engine in its
//! own directory, listening on a free loopback port. [`Kafka::stop`] and [`Kafka::restart`] keep
//! the database file, so what the broker acknowledged survives a stop.
//!
//! tansu here is a single broker (replication factor 1). The README's MQ section lists what the
//! tests found it supports.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use crate::error::{HarnessError, Result};
use crate::ports::free_port;
use crate::process::{ManagedProcess, TestDir};

const START_TIMEOUT: Duration = Duration::from_secs(60);

/// A tansu broker on loopback.
#[derive(Debug)]
pub struct Kafka {
    broker: Option<ManagedProcess>,
    bin: PathBuf,
    dir: TestDir,
    port: u16,
}

/// The `tansu` binary: `$TANSU_BIN`, else on PATH, else `~/.cargo/bin/tansu`.
pub fn tansu_bin() -> Result<PathBuf> {
    if let Some(p) = std::env::var_os("TANSU_BIN") {
        return Ok(PathBuf::from(p));
    }
    let mut dirs: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect())
        .unwrap_or_default();
    if let Some(home) = std::env::var_os("HOME") {
        dirs.push(PathBuf::from(home).join(".cargo/bin"));
    }
    dirs.into_iter()
        .map(|d| d.join("tansu"))
        .find(|p| p.is_file())
        .ok_or_else(|| HarnessError::MissingCargoTool {
            program: "tansu".into(),
            install: "cargo install --locked tansu --version 0.6.0 --features libsql",
        })
}

impl Kafka {
    /// Starts a broker and waits until it accepts connections.
    pub async fn start() -> Result<Self> {
        let bin = tansu_bin()?;
        let dir = TestDir::new("kafka")?;
        let mut kafka = Kafka {
            broker: None,
            bin,
            dir,
            port: free_port(),
        };
        kafka.launch().await?;
        Ok(kafka)
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("tansu.log")
    }

    async fn launch(&mut self) -> Result<()> {
        let url = format!("tcp://127.0.0.1:{}", self.port);
        let mut cmd = Command::new(&self.bin);
        // The SQLite file is relative to the working directory.
        cmd.current_dir(self.dir.path())
            .arg("broker")
            .arg("--listener-url")
            .arg(&url)
            .arg("--advertised-listener-url")
            .arg(&url)
            .arg("--storage-engine")
            .arg("sqlite://tansu.db")
            .env("RUST_LOG", "warn");
        self.broker = Some(ManagedProcess::start(
            format!("tansu:{}", self.port),
            cmd,
            &self.log_path(),
        )?);
        let port = self.port;
        crate::process::wait_listening(
            &mut self.broker,
            port,
            ("tansu", "listener"),
            START_TIMEOUT,
            Duration::from_millis(50),
        )
        .await
        .map_err(|reason| self.not_ready(reason))
    }

    fn not_ready(&self, reason: String) -> HarnessError {
        HarnessError::not_ready(
            format!("tansu on port {}", self.port),
            reason,
            self.log_path(),
        )
    }

    /// The port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `127.0.0.1:{port}`, the bootstrap server.
    pub fn bootstrap(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The broker's log (stdout and stderr).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// Stops the broker with SIGTERM (its SQLite file is kept).
    pub fn stop(&mut self) -> Result<()> {
        if let Some(mut p) = self.broker.take() {
            p.terminate(Duration::from_secs(30))?;
        }
        Ok(())
    }

    /// Starts the broker again on the same port and storage.
    pub async fn restart(&mut self) -> Result<()> {
        self.stop()?;
        self.launch().await
    }

    /// The directory holding the broker's files.
    pub fn dir(&self) -> &std::path::Path {
        self.dir.path()
    }
}

impl Drop for Kafka {
    fn drop(&mut self) {
        if let Some(mut p) = self.broker.take() {
            let _ = p.kill9();
        }
    }
}
