//! The `canal-client tail` process of the e2e bench: the release binary run against a canal-server
//! as a user runs it (default batch size, JSON lines), its output going to /dev/null like
//! `mariadb-binlog`'s, watched through its Prometheus metrics (`canal_client_rows_total` counts
//! rows written, flushed and acked) until every row change of the workload is there.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use harness::bench::{cpu_secs, log_tail, vm_hwm_kb_of};

/// Server-side wait of each GET: as the Rust client rows of the bench, so that the last, partial
/// batch does not wait the CLI's default 500 ms.
pub const TAIL_POLL_MS: u64 = 10;

/// The binary a bench measures when `BENCH_TAIL_BIN` is not set: what
/// `cargo build --release -p canal-client` writes.
pub fn default_tail_bin(target: &Path) -> PathBuf {
    target.join("release").join("canal-client")
}

/// A running `canal-client tail`. Dropping it kills the process.
pub struct TailProcess {
    child: Child,
    metrics: SocketAddr,
    log: PathBuf,
}

impl TailProcess {
    /// Spawns `bin tail --server server --poll-ms TAIL_POLL_MS --metrics-addr …` with stdout to
    /// /dev/null and stderr to `dir/tail.log`.
    pub fn start(bin: &Path, server: &str, dir: &Path) -> Result<Self> {
        let metrics: SocketAddr = format!("127.0.0.1:{}", harness::free_port()).parse()?;
        let log = dir.join("tail.log");
        let err = std::fs::File::create(&log)?;
        let child = Command::new(bin)
            .arg("tail")
            .arg("--server")
            .arg(server)
            .arg("--destination")
            .arg("example")
            .arg("--poll-ms")
            .arg(TAIL_POLL_MS.to_string())
            .arg("--progress")
            .arg("never")
            .arg("--metrics-addr")
            .arg(metrics.to_string())
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(err)
            .spawn()
            .with_context(|| format!("start {}", bin.display()))?;
        Ok(Self {
            child,
            metrics,
            log,
        })
    }

    /// Polls the metrics every `every` until `rows` row changes were acked; fails when the
    /// process exits, goes past `rows`, or makes no progress for 60 s.
    pub fn wait_rows(&mut self, rows: u64, every: Duration) -> Result<()> {
        let mut last = (0, Instant::now());
        loop {
            if let Some(status) = self.child.try_wait()? {
                bail!(
                    "canal-client tail exited with {status}: {}",
                    self.log_tail()
                );
            }
            let seen = self.rows().unwrap_or(0);
            if seen == rows {
                return Ok(());
            }
            if seen > rows {
                bail!("canal-client tail acked {seen} row changes, expected {rows}");
            }
            if seen != last.0 {
                last = (seen, Instant::now());
            } else if last.1.elapsed() > Duration::from_secs(60) {
                bail!(
                    "canal-client tail: no rows for 60 s after {seen} of {rows}: {}",
                    self.log_tail()
                );
            }
            std::thread::sleep(every);
        }
    }

    /// `canal_client_rows_total`, or `None` while the metrics endpoint does not answer yet.
    fn rows(&self) -> Option<u64> {
        let mut s = TcpStream::connect_timeout(&self.metrics, Duration::from_secs(1)).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
        s.write_all(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
            .ok()?;
        let mut body = String::new();
        s.read_to_string(&mut body).ok()?;
        let total = body
            .lines()
            .filter(|l| l.starts_with("canal_client_rows_total"))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum::<f64>();
        Some(total as u64)
    }

    /// (peak RSS in KiB, CPU seconds) of the process so far.
    pub fn usage(&self) -> (u64, f64) {
        let pid = self.child.id();
        (vm_hwm_kb_of(pid), cpu_secs(pid))
    }

    fn log_tail(&self) -> String {
        log_tail(&self.log, 20)
    }
}

impl Drop for TailProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
