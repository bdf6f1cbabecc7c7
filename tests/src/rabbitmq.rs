//! A real RabbitMQ broker per test from Debian's `rabbitmq-server` package: own directory, own
//! `epmd` on a free port (so no shared daemon outlives the test), free AMQP and distribution
//! ports, a unique node name, no plugins. [`RabbitMq::stop`] and [`RabbitMq::restart`] keep the
//! data directory, so durable queues and persistent messages survive a stop.
//!
//! The broker runs in the foreground with `RUNNING_UNDER_SYSTEMD=1`, which makes the start script
//! `exec` the Erlang VM: the pid the harness holds is the broker's, and `kill -9` ends it.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use crate::error::{io_err, HarnessError, Result};
use crate::ports::free_port;
use crate::process::{ManagedProcess, TestDir};

/// RabbitMQ boots in 5–20 s on a busy machine.
const START_TIMEOUT: Duration = Duration::from_secs(120);
const SERVER_SCRIPT: &str = "/usr/lib/rabbitmq/bin/rabbitmq-server";

/// A RabbitMQ broker (and its private epmd) on loopback.
#[derive(Debug)]
pub struct RabbitMq {
    broker: Option<ManagedProcess>,
    epmd: Option<ManagedProcess>,
    dir: TestDir,
    port: u16,
    dist_port: u16,
    epmd_port: u16,
    node: String,
}

impl RabbitMq {
    /// Starts a broker and waits until it accepts AMQP connections.
    pub async fn start() -> Result<Self> {
        if !std::path::Path::new(SERVER_SCRIPT).is_file() {
            return Err(HarnessError::MissingProgram {
                program: SERVER_SCRIPT.into(),
                package: "rabbitmq-server",
            });
        }
        let epmd_bin = crate::process::find_program("epmd", "erlang-base")?;
        let dir = TestDir::new("rabbitmq")?;
        let epmd_port = free_port();
        let mut cmd = Command::new(epmd_bin);
        cmd.arg("-port").arg(epmd_port.to_string());
        let epmd = ManagedProcess::start(
            format!("epmd:{epmd_port}"),
            cmd,
            &dir.path().join("epmd.log"),
        )?;
        std::fs::write(dir.path().join("enabled_plugins"), "[].\n")
            .map_err(io_err("write enabled_plugins"))?;
        let port = free_port();
        std::fs::write(
            dir.path().join("rabbitmq.conf"),
            format!(
                "listeners.tcp.default = 127.0.0.1:{port}\nloopback_users = none\n\
                 disk_free_limit.absolute = 1MB\n"
            ),
        )
        .map_err(io_err("write rabbitmq.conf"))?;
        let mut rabbit = RabbitMq {
            broker: None,
            epmd: Some(epmd),
            node: format!("cdc{port}@localhost"),
            dir,
            port,
            dist_port: free_port(),
            epmd_port,
        };
        rabbit.launch().await?;
        Ok(rabbit)
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("rabbitmq.out")
    }

    fn command_line(&self) -> Command {
        let d = self.dir.path();
        let mut cmd = Command::new(SERVER_SCRIPT);
        cmd.env("HOME", d)
            .env("ERL_EPMD_PORT", self.epmd_port.to_string())
            .env("RUNNING_UNDER_SYSTEMD", "1")
            .env("RABBITMQ_NODENAME", &self.node)
            .env("RABBITMQ_NODE_IP_ADDRESS", "127.0.0.1")
            .env("RABBITMQ_NODE_PORT", self.port.to_string())
            .env("RABBITMQ_DIST_PORT", self.dist_port.to_string())
            .env("RABBITMQ_MNESIA_BASE", d.join("mnesia"))
            .env("RABBITMQ_LOG_BASE", d.join("log"))
            .env("RABBITMQ_ENABLED_PLUGINS_FILE", d.join("enabled_plugins"))
            .env("RABBITMQ_CONFIG_FILE", d.join("rabbitmq"))
            .env("RABBITMQ_PLUGINS_EXPAND_DIR", d.join("plugins-expand"))
            .env("RABBITMQ_PID_FILE", d.join("rabbitmq.pid"));
        cmd
    }

    async fn launch(&mut self) -> Result<()> {
        self.broker = Some(ManagedProcess::start(
            format!("rabbitmq:{}", self.port),
            self.command_line(),
            &self.log_path(),
        )?);
        // The AMQP listener opens once the broker has booted.
        let port = self.port;
        crate::process::wait_listening(
            &mut self.broker,
            port,
            ("rabbitmq-server", "AMQP listener"),
            START_TIMEOUT,
            Duration::from_millis(100),
        )
        .await
        .map_err(|reason| self.not_ready(reason))
    }

    fn not_ready(&self, reason: String) -> HarnessError {
        HarnessError::not_ready(
            format!("RabbitMQ on port {}", self.port),
            reason,
            self.log_path(),
        )
    }

    /// The AMQP port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `amqp://guest:guest@127.0.0.1:{port}/%2f`.
    pub fn uri(&self) -> String {
        format!("amqp://guest:guest@127.0.0.1:{}/%2f", self.port)
    }

    /// Stops the broker with SIGTERM (a clean shutdown; data is kept).
    pub fn stop(&mut self) -> Result<()> {
        if let Some(mut p) = self.broker.take() {
            p.terminate(Duration::from_secs(30))?;
        }
        Ok(())
    }

    /// Kills the broker with SIGKILL (data written with fsync is kept).
    pub fn kill9(&mut self) -> Result<()> {
        if let Some(mut p) = self.broker.take() {
            p.kill9()?;
        }
        Ok(())
    }

    /// Starts the broker again on the same ports and data.
    pub async fn restart(&mut self) -> Result<()> {
        self.stop()?;
        self.launch().await
    }
}

impl Drop for RabbitMq {
    fn drop(&mut self) {
        if let Some(mut p) = self.broker.take() {
            let _ = p.kill9();
        }
        if let Some(mut p) = self.epmd.take() {
            let _ = p.kill9();
        }
    }
}
