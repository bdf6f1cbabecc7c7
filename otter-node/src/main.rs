//! `otter-node`: runs the Select/Extract/Transform/Load stages of the pipelines that name this node.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;
use otter_node::runtime::options::NodeOptions;
use otter_node::runtime::registry::Registry;
use otter_node::runtime::run_node;
use tokio_util::sync::CancellationToken;
use zk_coord::ZkConfig;

/// The node moves millions of small row values between stages; glibc's allocator took about 45%
/// of its CPU in the pipeline bench.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser, Debug)]
#[command(
    version,
    about = "Runs the stages of the Otter pipelines that name this node"
)]
struct Args {
    /// This node's id (pipelines list node ids in select_nodes / load_nodes).
    #[arg(long)]
    id: u32,
    /// ZooKeeper servers, host:port[,host:port…][;host:port…][/chroot]. Groups separated by `;`
    /// are tried in order for each new session: a remote site lists its local observers first,
    /// then the voters (docs/ZOOKEEPER-ACROSS-SITES.md).
    #[arg(long, env = "OTTER_ZK", default_value = "127.0.0.1:2181")]
    zk: String,
    /// ZooKeeper session timeout, ms.
    #[arg(long, default_value_t = 10_000)]
    zk_session_timeout_ms: u64,
    /// ZooKeeper digest credentials `user:password`, or (kept out of `ps`) `env:NAME` or
    /// `file:PATH` (mode 0600) holding them. With them every znode the node creates is closed to
    /// other identities.
    #[arg(
        long,
        env = "OTTER_ZK_DIGEST",
        hide_env_values = true,
        default_value = ""
    )]
    zk_digest: String,
    /// A standby waits this long after the mainstem node vanished before taking over, ms.
    #[arg(long, default_value_t = 5_000)]
    grace_ms: u64,
    /// HTTP address to bind (batch data for other nodes, /health, /metrics).
    #[arg(long, default_value = "127.0.0.1:2088")]
    http: SocketAddr,
    /// Address other nodes use to reach --http (default: the bound address).
    #[arg(long)]
    advertise: Option<String>,
    /// Schema histories of the embedded Select destinations.
    #[arg(long, default_value = "otter-data")]
    data_dir: PathBuf,
}

/// Turns transparent huge pages off for this process. With THP `always` (Debian's default),
/// every page mimalloc gives back and touches again is faulted in as a zeroed 2 MiB page: that
/// zeroing took 10% of the node's CPU in the pipeline bench, and a quarter of it is gone with
/// 4 KiB pages. Failing is harmless (the default stays).
fn disable_transparent_huge_pages() {
    #[cfg(target_os = "linux")]
    // SAFETY: PR_SET_THP_DISABLE takes plain integers and touches no memory of ours.
    unsafe {
        libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0);
    }
}

fn main() -> ExitCode {
    disable_transparent_huge_pages();
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        // Colour codes only for a terminal: a log file or journald gets plain text.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout()))
        .init();
    let rt = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("otter-node: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("otter-node: {e:#}");
            ExitCode::from(2)
        }
    }
}

async fn run(args: Args) -> anyhow::Result<()> {
    let zk = ZkConfig {
        servers: args.zk.clone(),
        session_timeout_ms: args.zk_session_timeout_ms,
        grace_ms: args.grace_ms,
        digest: args.zk_digest.clone(),
        ..Default::default()
    };
    zk.validate().context("ZooKeeper settings")?;
    if zk.digest.is_empty() {
        tracing::warn!("no --zk-digest: the znodes this node creates are writable by anyone who can reach ZooKeeper");
    }
    let prometheus = metrics_exporter_prometheus::PrometheusBuilder::new()
        .install_recorder()
        .ok();
    let listener = otter_node::http::bind(args.http)
        .await
        .with_context(|| format!("--http {}", args.http))?;
    let bound = listener.local_addr()?;
    let advertise = args.advertise.clone().unwrap_or_else(|| bound.to_string());
    std::fs::create_dir_all(&args.data_dir)
        .with_context(|| format!("--data-dir {}", args.data_dir.display()))?;
    let stop = CancellationToken::new();
    let registry = Registry::default();
    tokio::spawn(otter_node::http::serve(
        listener,
        registry.clone(),
        prometheus,
        stop.clone(),
    ));
    let node = tokio::spawn(run_node(
        NodeOptions {
            id: args.id,
            zk,
            http_address: advertise.clone(),
            data_dir: args.data_dir.clone(),
        },
        registry,
        stop.clone(),
    ));
    tracing::info!(node = args.id, http = %advertise, "otter-node ready");
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    tracing::info!("shutting down");
    stop.cancel();
    let _ = node.await;
    // Give running stages a moment to release their ZooKeeper nodes.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    Ok(())
}
