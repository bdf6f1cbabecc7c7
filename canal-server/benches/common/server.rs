//! The real `canal-server` binary as the e2e and consumers benches run it (config written to a
//! temp dir, destination `example` from a given position, `BENCH_SERVER_PREFIX` before it), and a
//! client that counts the row changes it receives (get_without_ack + ack) as a Canal client does.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use bytes::Bytes;
use canal_client::{ConnectorOptions, SimpleConnector};
use canal_protocol::entry::{Entry, EntryType, EventType, RowChange};
use harness::bench::{cpu_secs, log_tail, vm_hwm_kb_of};
use harness::ManagedProcess;
use prost::Message as _;

use super::Spec;

/// Server-side wait of each throughput GET: a full batch usually comes first; at the end of the
/// range at most this much is added.
pub const THROUGHPUT_POLL: Duration = Duration::from_millis(10);

/// The canal-server binary to measure: `BENCH_SERVER_BIN`, else the one cargo built for the bench.
pub fn server_bin() -> Result<PathBuf> {
    let bin = std::env::var_os("BENCH_SERVER_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_canal-server")));
    if !bin.is_file() {
        bail!(
            "{} is missing: build it with `cargo build --release -p canal-server`",
            bin.display()
        );
    }
    Ok(bin)
}

/// A canal-server process with its own config and data dir.
pub struct Server {
    process: ManagedProcess,
    _dir: tempfile::TempDir,
    log: PathBuf,
    pub addr: String,
}

impl Server {
    /// Writes the config (destination `example` from `file`:`position`; `parallel_rows` from
    /// `BENCH_PARALLEL_ROWS`, default `auto`; with `BENCH_DEFAULT_BOUNDS=1` the parser buffer and
    /// store keep their defaults instead of this bench's 64 MiB store) and spawns the binary.
    pub fn start(bin: &Path, spec: &Spec, file: &str, position: u64) -> Result<Server> {
        let dir = tempfile::tempdir()?;
        let port = harness::free_port();
        let admin_port = harness::free_port();
        let config = dir.path().join("canal-server.toml");
        std::fs::write(
            &config,
            format!(
                "[server]\nip = \"127.0.0.1\"\nport = {port}\nadmin_port = {admin_port}\n\
                 data_dir = \"{data}\"\nflush_period_ms = 1000\n\n\
                 [destinations.example]\naddress = \"{host}:{db_port}\"\nusername = \"{u}\"\n\
                 password = \"{p}\"\nslave_id = {sid}\nblack_filter = \"\"\n\
                 journal_name = \"{file}\"\nposition = {position}\n\
                 batch_mode = \"MEMSIZE\"\nmem_unit = 1024\n{bounds}\
                 parallel_rows = \"{parallel}\"\n",
                bounds = if std::env::var("BENCH_DEFAULT_BOUNDS").is_ok_and(|v| v == "1") {
                    ""
                } else {
                    "parser_buffer = 4096\nstore_max_entries = 65536\nstore_max_bytes = 67108864\n"
                },
                parallel = std::env::var("BENCH_PARALLEL_ROWS").unwrap_or_else(|_| "auto".into()),
                data = dir.path().join("data").display(),
                host = spec.host,
                db_port = spec.port,
                u = spec.user,
                p = spec.password,
                sid = spec.server_id,
            ),
        )?;
        let prefix = std::env::var("BENCH_SERVER_PREFIX").unwrap_or_default();
        let mut words = prefix.split_whitespace();
        let mut cmd = match words.next() {
            Some(program) => {
                let mut c = Command::new(program);
                c.args(words).arg(bin);
                c
            }
            None => Command::new(bin),
        };
        cmd.arg("--config").arg(&config).env("RUST_LOG", "warn");
        let log = dir.path().join("server.log");
        let process = ManagedProcess::start("canal-server", cmd, &log)?;
        Ok(Server {
            process,
            _dir: dir,
            log,
            addr: format!("127.0.0.1:{port}"),
        })
    }

    /// The server's log file.
    pub fn log(&self) -> &Path {
        &self.log
    }

    pub fn log_tail(&self) -> String {
        log_tail(&self.log, 20)
    }

    /// Connects and subscribes as client 1001, retrying while the server starts.
    pub async fn client(&mut self) -> Result<SimpleConnector> {
        self.client_as(1001).await
    }

    /// Connects and subscribes as `client_id`, retrying while the server starts.
    pub async fn client_as(&mut self, client_id: i16) -> Result<SimpleConnector> {
        let options = ConnectorOptions {
            client_id,
            ..ConnectorOptions::default()
        };
        let mut c = SimpleConnector::new(self.addr.clone(), "example", options);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            match c.connect().await {
                Ok(()) => break,
                Err(_) if Instant::now() < deadline => {
                    if let Some(st) = self.process.try_exit_status() {
                        bail!("canal-server exited with {st}: {}", self.log_tail());
                    }
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                Err(e) => bail!("cannot connect to canal-server: {e}\n{}", self.log_tail()),
            }
        }
        c.subscribe(None).await?;
        Ok(c)
    }

    /// (peak RSS in KiB, CPU seconds) of the server so far.
    pub fn usage(&self) -> (u64, f64) {
        let Some(pid) = self.process.pid() else {
            return (0, 0.0);
        };
        (vm_hwm_kb_of(pid), cpu_secs(pid))
    }

    pub fn stop(mut self) -> Result<()> {
        self.process.terminate(Duration::from_secs(30))?;
        Ok(())
    }
}

/// A RowChange whose rows stay encoded (`row_datas` is tag 12).
#[derive(Clone, PartialEq, prost::Message)]
pub struct RowChangeRows {
    #[prost(bool, optional, tag = "10")]
    is_ddl: Option<bool>,
    #[prost(bytes = "bytes", repeated, tag = "12")]
    row_datas: Vec<Bytes>,
}

/// Row changes in a DML ROWDATA entry; `decode` decodes the whole RowChange as a Canal client
/// does, else only counts the encoded rows. Also returns the number of non-null values seen.
pub fn dml_rows(e: &Entry, decode: bool) -> Result<(u64, u64)> {
    if e.entry_type() != EntryType::Rowdata {
        return Ok((0, 0));
    }
    let ev = e
        .header
        .as_ref()
        .map_or(EventType::Update, |h| h.event_type());
    if !matches!(
        ev,
        EventType::Insert | EventType::Update | EventType::Delete
    ) {
        return Ok((0, 0));
    }
    let value = e.store_value.clone().unwrap_or_default();
    if decode {
        let rc = RowChange::decode(value)?;
        if rc.is_ddl() {
            return Ok((0, 0));
        }
        let values = rc
            .row_datas
            .iter()
            .map(|r| {
                r.before_columns
                    .iter()
                    .chain(&r.after_columns)
                    .filter(|c| !c.is_null())
                    .count() as u64
            })
            .sum();
        Ok((rc.row_datas.len() as u64, values))
    } else {
        let rc = RowChangeRows::decode(value)?;
        if rc.is_ddl.unwrap_or(false) {
            return Ok((0, 0));
        }
        Ok((rc.row_datas.len() as u64, 0))
    }
}

/// What one counting client saw.
#[derive(Debug, Clone, Copy)]
pub struct Consumed {
    /// Row changes (DML rows).
    pub rows: u64,
    /// Non-null values seen (only when decoding).
    pub values: u64,
    /// Entries received.
    pub entries: u64,
    /// Seconds from `started` to the first non-empty batch.
    pub first_batch: f64,
    /// Seconds from `started` to the last row.
    pub secs: f64,
    /// Time spent in `get_without_ack` (request, wait, reply, Entry decode).
    pub waiting: Duration,
}

/// Loops `get_without_ack(batch, THROUGHPUT_POLL)` + `ack` on `c` until `want` row changes arrived
/// (counting them with [`dml_rows`]); fails after 60 s without rows, or on more rows than `want`.
/// `log` is the server's log, quoted on failure.
pub async fn consume(
    c: &mut SimpleConnector,
    want: u64,
    batch: i32,
    decode: bool,
    started: Instant,
    log: &Path,
) -> Result<Consumed> {
    let mut seen = Consumed {
        rows: 0,
        values: 0,
        entries: 0,
        first_batch: 0.0,
        secs: 0.0,
        waiting: Duration::ZERO,
    };
    let mut first_batch = None;
    let mut last_progress = Instant::now();
    while seen.rows < want {
        let t_get = Instant::now();
        let m = c.get_without_ack(batch, Some(THROUGHPUT_POLL)).await?;
        seen.waiting += t_get.elapsed();
        if m.is_empty() {
            if last_progress.elapsed() > Duration::from_secs(60) {
                bail!(
                    "no rows for 60 s after {} of {want}: {}",
                    seen.rows,
                    log_tail(log, 20)
                );
            }
            continue;
        }
        last_progress = Instant::now();
        first_batch.get_or_insert_with(|| started.elapsed().as_secs_f64());
        for e in &m.entries {
            let (r, v) = dml_rows(e, decode)?;
            seen.rows += r;
            seen.values += v;
        }
        seen.entries += m.entries.len() as u64;
        c.ack(m.id).await?;
    }
    seen.secs = started.elapsed().as_secs_f64();
    seen.first_batch = first_batch.unwrap_or(0.0);
    if seen.rows != want {
        bail!("the client saw {} row changes, expected {want}", seen.rows);
    }
    Ok(seen)
}
