//! `canal-client`: row changes from a Canal server into a pipe, an HTTP endpoint or cache
//! invalidations, at least once (a batch is acked only after its sink succeeded).

use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use canal_client::sink::jsonl::{Tail, TailFormat};
use canal_client::sink::redis::{parse_rules, Invalidation, RedisInvalidate, RedisOptions};
use canal_client::sink::webhook::{DeadLetter, Webhook, WebhookOptions};
use canal_client::sink::{run, RetryPolicy, RunOptions, Sink, SourceSpec, Stats};
use canal_client::{CancellationToken, ConnectorOptions, ZkConfig};
use canal_protocol::HostPort;
use clap::{Args, Parser, Subcommand, ValueEnum};

/// `eprintln!` that never panics: a closed stderr (`2>&-`, a gone terminal) loses the message
/// instead of turning an orderly exit into a panic (exit 101).
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr(), $($arg)*);
    }};
}

/// `eprint!` that never panics (see [`say!`]).
macro_rules! say_more {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = write!(std::io::stderr(), $($arg)*);
    }};
}

#[derive(Parser, Debug)]
#[command(
    name = "canal-client",
    version,
    about = "Consume row changes from canal-server (or alibaba/canal): print them, POST them, or invalidate Redis keys",
    after_help = "Every command acks a batch only after it was written, POSTed or invalidated: at-least-once. \
                  Ctrl-C stops after the current batch."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Print each row change as a Canal flat-message JSON line (or a table).
    Tail {
        #[command(flatten)]
        source: SourceArgs,
        /// `json`: one flat message per line; `table`: one line per row, for people.
        #[arg(long, value_enum, default_value_t = Format::Json)]
        format: Format,
    },
    /// POST each batch as a JSON array of flat messages; ack after a 2xx.
    Webhook {
        #[command(flatten)]
        source: SourceArgs,
        /// The endpoint.
        #[arg(long)]
        url: String,
        /// Extra header, `Name: value` (repeatable).
        #[arg(long = "header", value_name = "NAME: VALUE")]
        headers: Vec<String>,
        /// Per-request timeout, ms.
        #[arg(long, default_value_t = 10_000)]
        timeout_ms: u64,
        /// Longest pause between retries, ms (pauses double from 200 ms).
        #[arg(long, default_value_t = 30_000)]
        max_backoff_ms: u64,
        /// After this many failed attempts, write the batch to --dead-letter and go on.
        /// Without it, a batch is retried until it is delivered.
        #[arg(long, requires = "dead_letter")]
        max_attempts: Option<u32>,
        /// Dead-letter file (JSON lines), used only with --max-attempts.
        #[arg(long, requires = "max_attempts")]
        dead_letter: Option<PathBuf>,
        /// Also POST batches that hold no row change (as `[]`).
        #[arg(long)]
        post_empty: bool,
    },
    /// Delete (or publish) Redis keys built from the changed rows.
    RedisInvalidate {
        #[command(flatten)]
        source: SourceArgs,
        /// Redis URL.
        #[arg(long, default_value = "redis://127.0.0.1:6379/")]
        redis: String,
        /// `schema.table=template`, e.g. `shop.user=user:{id}` (repeatable; several per table).
        #[arg(long = "key", value_name = "SCHEMA.TABLE=TEMPLATE", required = true)]
        keys: Vec<String>,
        /// PUBLISH each key on this channel instead of deleting it.
        #[arg(long)]
        publish: Option<String>,
        /// Invalidate on INSERT too (for caches that remember misses).
        #[arg(long)]
        include_inserts: bool,
        /// Connect and reply timeout, ms.
        #[arg(long, default_value_t = 5_000)]
        timeout_ms: u64,
    },
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum Format {
    Json,
    Table,
}

#[derive(Args, Debug)]
struct SourceArgs {
    /// A canal server, host:port (direct mode).
    #[arg(long, conflicts_with = "zk", required_unless_present = "zk")]
    server: Option<String>,
    /// ZooKeeper servers, host:port[,host:port…][;host:port…][/chroot]: follow the destination's
    /// running server. Groups separated by `;` are tried in order for each new session, so a
    /// remote site lists its local observers first.
    #[arg(long)]
    zk: Option<String>,
    /// ZooKeeper session timeout, ms.
    #[arg(long, default_value_t = 10_000)]
    zk_session_timeout_ms: u64,
    /// Connect to the server with TLS, trusting the CA certificates in this PEM file (for a
    /// server with `server.tls_cert`).
    #[arg(long, value_name = "PEM")]
    tls_ca: Option<std::path::PathBuf>,
    /// The name the server's certificate must carry (default: the host of its address).
    #[arg(long, requires = "tls_ca", value_name = "NAME")]
    tls_server_name: Option<String>,
    /// ZooKeeper digest credentials `user:password`, or (kept out of `ps`) `env:NAME` or
    /// `file:PATH` (mode 0600) holding them: needed when the servers use digest auth.
    #[arg(
        long,
        env = "CANAL_ZK_DIGEST",
        hide_env_values = true,
        default_value = ""
    )]
    zk_digest: String,
    /// Canal destination.
    #[arg(long, default_value = "example")]
    destination: String,
    /// Client id (cursor name on the server).
    #[arg(long, default_value_t = 1001)]
    client_id: i16,
    /// Subscription filter (Canal regex, e.g. `shop\\..*`); the server's when absent.
    #[arg(long)]
    filter: Option<String>,
    /// Entries per GET (memory units on a MEMSIZE server).
    #[arg(long, default_value_t = 1000)]
    batch_size: i32,
    /// How long one GET waits on the server for a full batch, ms.
    #[arg(long, default_value_t = 500)]
    poll_ms: u64,
    /// Canal user.
    #[arg(long, default_value = "")]
    user: String,
    /// Canal password (or CANAL_PASSWORD).
    #[arg(long, env = "CANAL_PASSWORD", hide_env_values = true)]
    password: Option<String>,
    /// Serve Prometheus metrics on this address (`/metrics`).
    #[arg(long)]
    metrics_addr: Option<SocketAddr>,
    /// Progress line on stderr: auto (when stderr is a terminal), always, never.
    #[arg(long, value_enum, default_value_t = Progress::Auto)]
    progress: Progress,
}

#[derive(Clone, Copy, Debug, ValueEnum, PartialEq, Eq)]
enum Progress {
    Auto,
    Always,
    Never,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn,canal_client=info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            say!("canal-client: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(run_command(cli.command)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            say!("canal-client: {}", error_text(&e));
            ExitCode::from(2)
        }
    }
}

/// The error and its causes, `: `-separated, leaving out a cause whose text the message already
/// holds (library errors often print their source inside their own text).
fn error_text(e: &anyhow::Error) -> String {
    let mut text = String::new();
    for cause in e.chain() {
        let part = cause.to_string();
        if text.contains(&part) {
            continue;
        }
        if !text.is_empty() {
            text.push_str(": ");
        }
        text.push_str(&part);
    }
    text
}

async fn run_command(command: Command) -> Result<()> {
    match command {
        Command::Tail { source, format } => {
            let format = match format {
                Format::Json => TailFormat::Json,
                Format::Table => TailFormat::Table,
            };
            // Tail hands over each batch in one write; a BufWriter would only copy it again.
            let mut sink = Tail::new(std::io::stdout(), format);
            consume(source, &mut sink).await
        }
        Command::Webhook {
            source,
            url,
            headers,
            timeout_ms,
            max_backoff_ms,
            max_attempts,
            dead_letter,
            post_empty,
        } => {
            let headers = headers
                .iter()
                .map(|h| {
                    h.split_once(':')
                        .map(|(n, v)| (n.trim().to_string(), v.trim().to_string()))
                        .with_context(|| format!("--header {h:?}: expected \"Name: value\""))
                })
                .collect::<Result<Vec<_>>>()?;
            let mut sink = Webhook::new(WebhookOptions {
                url,
                headers,
                timeout: Duration::from_millis(timeout_ms.max(1)),
                retry: RetryPolicy {
                    initial: Duration::from_millis(200),
                    max: Duration::from_millis(max_backoff_ms.max(200)),
                },
                dead_letter: match (dead_letter, max_attempts) {
                    (Some(path), Some(max_attempts)) => Some(DeadLetter { path, max_attempts }),
                    _ => None,
                },
                post_empty,
            })?;
            consume(source, &mut sink).await
        }
        Command::RedisInvalidate {
            source,
            redis,
            keys,
            publish,
            include_inserts,
            timeout_ms,
        } => {
            let tables = parse_rules(keys.iter().map(String::as_str))?;
            let mut sink = RedisInvalidate::new(RedisOptions {
                url: redis,
                tables,
                mode: match publish {
                    Some(channel) => Invalidation::Publish { channel },
                    None => Invalidation::Delete,
                },
                include_inserts,
                timeout: Duration::from_millis(timeout_ms.max(1)),
                retry: RetryPolicy::default(),
            })?;
            consume(source, &mut sink).await
        }
    }
}

/// Runs `sink` until Ctrl-C / SIGTERM.
async fn consume<S: Sink>(args: SourceArgs, sink: &mut S) -> Result<()> {
    // An address that cannot work is an error now, not a reconnect loop forever.
    if let Some(server) = &args.server {
        server.parse::<HostPort>().context("--server")?;
    }
    if let Some(zk) = &args.zk {
        let expected =
            || format!("--zk {zk:?}: expected host:port[,host:port…][;host:port…][/chroot]");
        let groups = zk_coord::servers::ServerGroups::parse(zk).with_context(expected)?;
        for s in groups.groups().iter().flatten() {
            s.parse::<HostPort>().with_context(expected)?;
        }
    }
    let source = match (&args.server, &args.zk) {
        (Some(server), None) => SourceSpec::Direct {
            server: server.clone(),
        },
        (None, Some(zk)) => SourceSpec::Cluster {
            zk: ZkConfig {
                servers: zk.clone(),
                session_timeout_ms: args.zk_session_timeout_ms,
                digest: args.zk_digest.clone(),
                ..Default::default()
            },
        },
        _ => bail!("give --server host:port or --zk host:port"),
    };
    if args.batch_size <= 0 {
        bail!("--batch-size must be > 0");
    }
    let mut options = RunOptions::new(&args.destination);
    options.filter = args.filter.clone();
    options.batch_size = args.batch_size;
    options.poll = Duration::from_millis(args.poll_ms);
    options.connector = ConnectorOptions {
        client_id: args.client_id,
        username: args.user.clone(),
        password: args.password.clone(),
        tls: args.tls_ca.clone().map(|ca| canal_client::ClientTls {
            ca,
            server_name: args.tls_server_name.clone(),
        }),
        ..Default::default()
    };
    if let Some(addr) = args.metrics_addr {
        serve_metrics(addr).await?;
    }
    let stop = CancellationToken::new();
    tokio::spawn(stop_on_signal(stop.clone()));
    let stats = Stats::new();
    let show = match args.progress {
        Progress::Always => true,
        Progress::Never => false,
        Progress::Auto => std::io::stderr().is_terminal(),
    };
    let progress = show.then(|| tokio::spawn(progress_line(stats.clone(), stop.clone())));
    let result = run(source, options, sink, stats.clone(), stop.clone()).await;
    stop.cancel();
    if let Some(p) = progress {
        let _ = p.await;
    }
    result?;
    Ok(())
}

async fn stop_on_signal(stop: CancellationToken) {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term => {}
    }
    say!("canal-client: stopping after the current batch");
    stop.cancel();
}

/// Rewrites one stderr line every second: rows, batches, rate, lag.
async fn progress_line(stats: Arc<Stats>, stop: CancellationToken) {
    let mut last = 0u64;
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.tick().await;
    loop {
        let stopping = tokio::select! {
            _ = stop.cancelled() => true,
            _ = tick.tick() => false,
        };
        let rows = stats.rows.load(Ordering::Relaxed);
        let lag = stats.lag_ms.load(Ordering::Relaxed);
        let lag = if lag < 0 {
            "-".to_string()
        } else {
            format!("{lag} ms")
        };
        say_more!(
            "\r\x1b[Krows {rows}  batches {}  {} rows/s  lag {lag}",
            stats.batches.load(Ordering::Relaxed),
            rows - last
        );
        last = rows;
        if stopping {
            say!();
            return;
        }
    }
}

async fn serve_metrics(addr: SocketAddr) -> Result<()> {
    let handle = metrics_exporter_prometheus::PrometheusBuilder::new()
        .install_recorder()
        .context("installing the metrics recorder")?;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("--metrics-addr {addr}"))?;
    let app = axum::Router::new().route(
        "/metrics",
        axum::routing::get(move || {
            let h = handle.clone();
            async move { h.render() }
        }),
    );
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok(())
}
