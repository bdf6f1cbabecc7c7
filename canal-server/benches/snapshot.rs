//! Snapshot throughput: canal-server's snapshot in the stream against `mysqldump` and
//! `mydumper` reading the same table, in the same run, interleaved.
//!
//! ```sh
//! cargo bench -p canal-server --bench snapshot      # BENCH_ROWS=1000000 BENCH_RUNS=3 BENCH_CHUNK=8192
//! ```
//!
//! A harness MariaDB holds `shop.big` (`BENCH_ROWS` rows: INT key, VARCHAR, INT, DECIMAL,
//! DATETIME). Each run measures, one after the other:
//! 1. **ours**: a release `canal-server` at the binlog's end, a client subscribed
//!    (`SimpleConnector`, batches of 4000 entries, acked), `POST /destinations/example/snapshot`,
//!    the clock from the POST to the last snapshot row at the client;
//! 2. `mysqldump --single-transaction --quick shop big > /dev/null`;
//! 3. `mydumper -t 2 -r 100000 --trx-consistency-only` into a temp dir (2 threads, one per core);
//! 4. the loads, for context: `mysqldump | mysql` and `myloader -t 2` into a second MariaDB.
//!
//! The ratio that counts is ours against the faster of the two dump readers (both get the rows
//! out of the database as we do); the full copies are printed beside it.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use canal_client::{ConnectorOptions, SimpleConnector};
use canal_protocol::entry::{Entry, EntryType};
use harness::bench::{cpu_and_load_lines, cpu_secs, env_num, group, log_tail, time_shell};
use harness::{ManagedProcess, MariaDb, MariaDbOptions};
use prost::Message;

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("snapshot bench: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// A RowChange whose rows stay encoded (`row_datas` is tag 12).
#[derive(Clone, PartialEq, prost::Message)]
struct RowChangeRows {
    #[prost(bytes = "bytes", repeated, tag = "12")]
    row_datas: Vec<bytes::Bytes>,
}

fn snapshot_rows(e: &Entry) -> Result<u64> {
    if e.entry_type() != EntryType::Rowdata {
        return Ok(0);
    }
    let snapshot = e
        .header
        .as_ref()
        .is_some_and(|h| h.props.iter().any(|p| p.key() == "snapshot"));
    if !snapshot {
        return Ok(0);
    }
    Ok(RowChangeRows::decode(e.store_value())?.row_datas.len() as u64)
}

fn run() -> Result<()> {
    let rows: u64 = env_num("BENCH_ROWS", 1_000_000)?;
    let runs: usize = env_num("BENCH_RUNS", 3)?;
    let server_bin = std::env::var_os("BENCH_SERVER_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_canal-server")));
    for tool in ["mysqldump", "mysql", "mydumper", "myloader"] {
        if Command::new("sh")
            .args(["-c", &format!("command -v {tool}")])
            .stdout(Stdio::null())
            .status()
            .map(|s| !s.success())
            .unwrap_or(true)
        {
            bail!(
                "`{tool}` is not on PATH: run scripts/setup.sh (packages mariadb-client, mydumper)"
            );
        }
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let options = || MariaDbOptions {
        extra_args: vec!["--innodb-buffer-pool-size=512M".into()],
        ..MariaDbOptions::default()
    };
    let (src, dst) = rt.block_on(async {
        let src = MariaDb::start_with(options()).await?;
        let dst = MariaDb::start_with(options()).await?;
        let u = src.replication_user().cloned().unwrap_or_default().user;
        src.exec(&format!(
            "CREATE DATABASE shop; CREATE TABLE shop.big (id INT PRIMARY KEY, v VARCHAR(40), n INT,
               amount DECIMAL(12,2), created DATETIME);
             INSERT INTO shop.big SELECT seq, CONCAT('customer-', seq), seq % 1000, seq / 100,
               '2024-01-01 00:00:00' + INTERVAL seq SECOND FROM shop.seq_1_to_{rows};
             CREATE DATABASE canal_snapshot;
             GRANT INSERT, DELETE, CREATE ON canal_snapshot.* TO '{u}'@'%'"
        ))
        .await?;
        anyhow::Ok((src, dst))
    })?;
    println!(
        "snapshot bench: {} rows of shop.big, {runs} runs",
        group(rows as f64)
    );
    println!("{}", cpu_and_load_lines());
    let mut ours = Vec::new();
    let (mut dump, mut dumper, mut dump_load, mut dumper_load) = (vec![], vec![], vec![], vec![]);
    for run in 1..=runs {
        let (secs, cpu) = rt.block_on(run_ours(&server_bin, &src, rows))?;
        println!(
            "run {run}: ours {:>9} rows/s ({secs:.2} s, server CPU {cpu:.2} s)",
            group(rows as f64 / secs)
        );
        ours.push(rows as f64 / secs);
        let d = time_shell(&format!(
            "mysqldump -h127.0.0.1 -P{} -uroot --single-transaction --quick shop big > /dev/null",
            src.port()
        ))?;
        println!(
            "run {run}: mysqldump > /dev/null {:>9} rows/s ({d:.2} s)",
            group(rows as f64 / d)
        );
        dump.push(rows as f64 / d);
        let dir = tempfile::tempdir()?;
        let m = time_shell(&format!(
            "mydumper -h 127.0.0.1 -P {} -u root -B shop -t 2 -r 100000 --trx-consistency-only -o {}",
            src.port(),
            dir.path().display()
        ))?;
        let files: Vec<String> = std::fs::read_dir(dir.path())?
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        let data_bytes: u64 = std::fs::read_dir(dir.path())?
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().starts_with("shop.big."))
            .filter_map(|e| e.metadata().ok())
            .map(|m| m.len())
            .sum();
        if data_bytes < rows * 10 {
            bail!("mydumper wrote {data_bytes} bytes of data for {rows} rows: {files:?}");
        }
        println!(
            "run {run}: mydumper (2 threads) {:>9} rows/s ({m:.2} s)",
            group(rows as f64 / m)
        );
        dumper.push(rows as f64 / m);
        rt.block_on(dst.exec("DROP DATABASE IF EXISTS shop; CREATE DATABASE shop"))?;
        let dl = time_shell(&format!(
            "mysqldump -h127.0.0.1 -P{} -uroot --single-transaction --quick shop big | mysql -h127.0.0.1 -P{} -uroot shop",
            src.port(),
            dst.port()
        ))?;
        println!(
            "run {run}: mysqldump | mysql {:>9} rows/s ({dl:.2} s)",
            group(rows as f64 / dl)
        );
        dump_load.push(rows as f64 / dl);
        rt.block_on(dst.exec("DROP DATABASE IF EXISTS shop"))?;
        let ml = time_shell(&format!(
            "myloader -h 127.0.0.1 -P {} -u root -t 2 -o -d {}",
            dst.port(),
            dir.path().display()
        ))?;
        println!(
            "run {run}: mydumper + myloader {:>9} rows/s ({:.2} s)",
            group(rows as f64 / (m + ml)),
            m + ml
        );
        dumper_load.push(rows as f64 / (m + ml));
    }
    let med = |v: &mut Vec<f64>| {
        v.sort_by(|a, b| a.total_cmp(b));
        v[v.len() / 2]
    };
    let (o, d, m) = (med(&mut ours), med(&mut dump), med(&mut dumper));
    let (dl, ml) = (med(&mut dump_load), med(&mut dumper_load));
    let best = d.max(m);
    println!("\nmedians (rows/s):");
    println!(
        "  ours (snapshot in the stream → client)   {:>10}",
        group(o)
    );
    println!(
        "  mysqldump > /dev/null                    {:>10}",
        group(d)
    );
    println!(
        "  mydumper, 2 threads                      {:>10}",
        group(m)
    );
    println!(
        "  mysqldump | mysql                        {:>10}",
        group(dl)
    );
    println!(
        "  mydumper + myloader                      {:>10}",
        group(ml)
    );
    println!(
        "ours / faster dump reader = {:.2}×   (ours / mysqldump {:.2}×, ours / mydumper {:.2}×)",
        o / best,
        o / d,
        o / m
    );
    Ok(())
}

/// One snapshot through a fresh release server; (seconds from the POST to the last row, server
/// CPU seconds).
async fn run_ours(bin: &Path, src: &MariaDb, rows: u64) -> Result<(f64, f64)> {
    let dir = tempfile::tempdir()?;
    let port = harness::free_port();
    let admin_port = harness::free_port();
    let user = src.replication_user().cloned().unwrap_or_default();
    let start = src.master_status().await?;
    let config = dir.path().join("canal-server.toml");
    std::fs::write(
        &config,
        format!(
            "[server]\nip = \"127.0.0.1\"\nport = {port}\nadmin_port = {admin_port}\n\
             data_dir = \"{data}\"\nflush_period_ms = 1000\n\n\
             [destinations.example]\naddress = \"{addr}\"\nusername = \"{u}\"\n\
             password = \"{p}\"\nslave_id = {sid}\nblack_filter = \"\"\n\
             journal_name = \"{file}\"\nposition = {pos}\n\
             store_max_entries = 65536\nstore_max_bytes = 67108864\nsnapshot_chunk_rows = {chunk}\n",
            chunk = env_num("BENCH_CHUNK", 8192usize)?,
            data = dir.path().join("data").display(),
            addr = src.addr(),
            u = user.user,
            p = user.password,
            sid = 4000 + port as u32,
            file = start.file,
            pos = start.position,
        ),
    )?;
    let log = dir.path().join("server.log");
    // BENCH_SERVER_PREFIX runs the server under a profiler (`perf record -g -o FILE`).
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
    let mut process = ManagedProcess::start("canal-server", cmd, &log)?;
    let mut c = SimpleConnector::new(
        format!("127.0.0.1:{port}"),
        "example",
        ConnectorOptions::default(),
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match c.connect().await {
            Ok(()) => break,
            Err(_) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(5)).await
            }
            Err(e) => bail!("cannot connect: {e}\n{}", log_tail(&log, 20)),
        }
    }
    c.subscribe(None).await?;
    let started = Instant::now();
    let reply = harness::http_request(
        admin_port,
        "POST",
        "/destinations/example/snapshot?tables=shop.big",
    )
    .await
    .context("POST snapshot")?;
    if !reply.contains("202") {
        bail!("snapshot not started: {reply}");
    }
    let mut got = 0u64;
    let mut last = Instant::now();
    while got < rows {
        let m = c
            .get_without_ack(4000, Some(Duration::from_millis(10)))
            .await?;
        if m.entries.is_empty() {
            if last.elapsed() > Duration::from_secs(60) {
                bail!("no rows for 60 s after {got}: {}", log_tail(&log, 20));
            }
            continue;
        }
        last = Instant::now();
        for e in &m.entries {
            got += snapshot_rows(e)?;
        }
        c.ack(m.id).await?;
    }
    let secs = started.elapsed().as_secs_f64();
    let cpu = process.pid().map(cpu_secs).unwrap_or(0.0);
    let _ = c.disconnect().await;
    process.terminate(Duration::from_secs(30))?;
    if got != rows {
        bail!("the client saw {got} snapshot rows, expected {rows}");
    }
    Ok((secs, cpu))
}
