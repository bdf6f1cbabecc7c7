//! MQ mode throughput: rows/s from a local MariaDB through the `canal-server` binary into a local
//! RabbitMQ (flat messages, publisher confirms, persistent messages on a durable queue) and into a
//! local Kafka-protocol broker (tansu with SQLite storage; flat messages, acks=all, one
//! partition), next to `canal-client tail` (JSON lines to /dev/null) against a fresh server over
//! the same binlog range in the same run, interleaved.
//!
//! `cargo build --release -p canal-client && cargo bench -p canal-server --bench mq`
//!
//! Knobs: `BENCH_TABLE_ROWS` (workload size, as the e2e bench; default 40000), `BENCH_RUNS`
//! (default 3), `BENCH_MQ_EXTRA` (more `[destinations.example.mq]` keys for both brokers, e.g.
//! `batch_size = 500`),
//! `BENCH_TAIL_BIN` (default `$CARGO_TARGET_DIR/release/canal-client`). The clock
//! runs from spawning the server to the last row confirmed by the broker (the server's
//! `canal_mq_rows` metric) or acked by tail (its `canal_client_rows_total`). Prints a table;
//! docs/PERFORMANCE.md's MQ section is written by hand from it.

mod common;

use std::io::{Read, Write};
use std::path::Path;
use std::process::{Command, ExitCode};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use common::tail::{default_tail_bin, TailProcess, TAIL_POLL_MS};
use common::*;
use harness::bench::env_num;
use harness::{Kafka, ManagedProcess, RabbitMq};

fn main() -> ExitCode {
    if std::env::args().any(|a| a == "--list") {
        return ExitCode::SUCCESS;
    }
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("mq bench failed: {e:#}");
            ExitCode::FAILURE
        }
    }
}

struct Server {
    process: ManagedProcess,
    _dir: tempfile::TempDir,
    log: std::path::PathBuf,
    addr: String,
    admin_port: u16,
}

impl Server {
    fn start(bin: &Path, spec: &Spec, extra: &str) -> Result<Server> {
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
                 store_max_entries = 65536\nstore_max_bytes = 67108864\n{extra}",
                data = dir.path().join("data").display(),
                host = spec.host,
                db_port = spec.port,
                u = spec.user,
                p = spec.password,
                sid = spec.server_id,
                file = spec.file,
                position = spec.start,
            ),
        )?;
        let mut cmd = Command::new(bin);
        cmd.arg("--config").arg(&config).env("RUST_LOG", "warn");
        let log = dir.path().join("server.log");
        let process = ManagedProcess::start("canal-server", cmd, &log)?;
        Ok(Server {
            process,
            _dir: dir,
            log,
            addr: format!("127.0.0.1:{port}"),
            admin_port,
        })
    }

    /// Sum of the server's `canal_mq_rows` counter.
    fn mq_rows(&self) -> Option<u64> {
        let mut s = std::net::TcpStream::connect(("127.0.0.1", self.admin_port)).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
        s.write_all(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
            .ok()?;
        let mut body = String::new();
        s.read_to_string(&mut body).ok()?;
        Some(
            body.lines()
                .filter(|l| l.starts_with("canal_mq_rows"))
                .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
                .sum::<f64>() as u64,
        )
    }

    fn stop(mut self) -> Result<()> {
        self.process.terminate(Duration::from_secs(30))?;
        Ok(())
    }
}

/// `mq` is the broker's part of `[destinations.example.mq]` (mode, servers, topic).
fn run_mq(bin: &Path, spec: &Spec, mq: &str) -> Result<f64> {
    let started = Instant::now();
    let server = Server::start(
        bin,
        spec,
        &format!(
            "[destinations.example.mq]\n{mq}\n{}\n",
            std::env::var("BENCH_MQ_EXTRA").unwrap_or_default()
        ),
    )?;
    let mut last = (0, Instant::now());
    loop {
        let seen = server.mq_rows().unwrap_or(0);
        if seen >= spec.rows {
            break;
        }
        if seen != last.0 {
            last = (seen, Instant::now());
        } else if last.1.elapsed() > Duration::from_secs(60) {
            bail!(
                "no MQ progress for 60 s at {seen} of {}: {}",
                spec.rows,
                log_tail(&server.log)
            );
        }
        std::thread::sleep(Duration::from_millis(TAIL_POLL_MS));
    }
    let secs = started.elapsed().as_secs_f64();
    server.stop()?;
    Ok(spec.rows as f64 / secs)
}

fn run_tail(bin: &Path, tail_bin: &Path, spec: &Spec) -> Result<f64> {
    let started = Instant::now();
    let server = Server::start(bin, spec, "")?;
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(&server.addr).is_err() {
        if Instant::now() > deadline {
            bail!("canal-server does not listen: {}", log_tail(&server.log));
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let dir = tempfile::tempdir()?;
    let mut tail = TailProcess::start(tail_bin, &server.addr, dir.path())?;
    tail.wait_rows(spec.rows, Duration::from_millis(TAIL_POLL_MS))?;
    let secs = started.elapsed().as_secs_f64();
    drop(tail);
    server.stop()?;
    Ok(spec.rows as f64 / secs)
}

fn log_tail(p: &Path) -> String {
    harness::bench::log_tail(p, 20)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn run() -> Result<()> {
    let table_rows: u64 = env_num("BENCH_TABLE_ROWS", 40_000)?;
    let runs: usize = env_num("BENCH_RUNS", 3)?;
    let (_, target) = workspace_and_target()?;
    let tail_bin = std::env::var_os("BENCH_TAIL_BIN")
        .map(Into::into)
        .unwrap_or_else(|| default_tail_bin(&target));
    if !tail_bin.is_file() {
        bail!(
            "{} not found: cargo build --release -p canal-client",
            tail_bin.display()
        );
    }
    let server_bin = std::path::PathBuf::from(env!("CARGO_BIN_EXE_canal-server"));
    let rt = tokio::runtime::Runtime::new()?;
    let db = rt.block_on(start_source())?;
    let workload = prepare_workload(&rt, &db, table_rows)?;
    let spec = workload.spec.clone();
    let rabbit = rt.block_on(RabbitMq::start())?;
    let uri = rabbit.uri();
    let kafka = rt.block_on(Kafka::start())?;
    let kafka_client = rt
        .block_on(rskafka::client::ClientBuilder::new(vec![kafka.bootstrap()]).build())
        .context("connect to tansu")?;
    let (mut mq, mut kf, mut tail) = (Vec::new(), Vec::new(), Vec::new());
    for run in 1..=runs {
        // A fresh queue per run (the broker keeps what earlier runs published otherwise).
        rt.block_on(async {
            let conn = lapin::Connection::connect(&uri, Default::default()).await?;
            let ch = conn.create_channel().await?;
            ch.queue_delete("bench".into(), Default::default()).await?;
            ch.queue_declare(
                "bench".into(),
                lapin::options::QueueDeclareOptions::durable(),
                Default::default(),
            )
            .await?;
            conn.close(200, "ok".into()).await
        })
        .context("declare the bench queue")?;
        let m = run_mq(
            &server_bin,
            &spec,
            &format!("servers = \"{uri}\"\ntopic = \"bench\""),
        )?;
        // A fresh topic per run.
        let topic = format!("bench{run}");
        rt.block_on(
            kafka_client
                .controller_client()?
                .create_topic(&topic, 1, 1, 5_000),
        )
        .context("create the bench topic")?;
        let k = run_mq(
            &server_bin,
            &spec,
            &format!(
                "mode = \"kafka\"\nservers = \"{}\"\ntopic = \"{topic}\"\nmax_message_bytes = 1048576",
                kafka.bootstrap()
            ),
        )?;
        let t = run_tail(&server_bin, &tail_bin, &spec)?;
        println!(
            "run {run}: rabbitmq {m:>10.0} rows/s   kafka {k:>10.0} rows/s   tail {t:>10.0} rows/s   rabbitmq/tail {:.2}   kafka/tail {:.2}",
            m / t,
            k / t
        );
        mq.push(m);
        kf.push(k);
        tail.push(t);
    }
    let (m, k, t) = (median(mq), median(kf), median(tail));
    println!(
        "median of {runs} runs, {} row changes: rabbitmq {m:.0} rows/s, kafka {k:.0} rows/s, tail {t:.0} rows/s; rabbitmq ÷ tail = {:.2}, kafka ÷ tail = {:.2}",
        spec.rows,
        m / t,
        k / t
    );
    Ok(())
}
