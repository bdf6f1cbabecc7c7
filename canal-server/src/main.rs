//! canal-server binary: loads the TOML config, starts every destination, serves Canal's TCP
//! protocol and the admin HTTP endpoints, and on SIGTERM/SIGINT stops accepting, stops the
//! destinations and flushes client cursors.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use canal_server::config::ServerConfig;
use canal_server::instance::InstanceBuilder;
use canal_server::server::ha;
use canal_server::server::{self, ServerContext};
use clap::Parser;
use tokio_util::sync::CancellationToken;

/// Canal-compatible binlog server.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    /// Configuration file (see config/canal-server.toml).
    #[arg(
        short,
        long,
        env = "CANAL_SERVER_CONFIG",
        default_value = "config/canal-server.toml"
    )]
    config: PathBuf,
    /// Override `server.port`.
    #[arg(long)]
    port: Option<u16>,
    /// Override `server.admin_port`.
    #[arg(long)]
    admin_port: Option<u16>,
    /// Override `server.data_dir`.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Only validate the configuration and exit.
    #[arg(long)]
    check: bool,
}

fn main() -> ExitCode {
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
            eprintln!("canal-server: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("canal-server: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> anyhow::Result<()> {
    // It holds passwords and says where rows come from: nobody else may rewrite it.
    zk_coord::secret::check_config_file(&args.config)?;
    let text = std::fs::read_to_string(&args.config)
        .with_context(|| format!("reading {}", args.config.display()))?;
    let mut cfg =
        ServerConfig::from_toml(&text).with_context(|| format!("in {}", args.config.display()))?;
    if let Some(p) = args.port {
        cfg.server.port = p;
    }
    if let Some(p) = args.admin_port {
        cfg.server.admin_port = p;
    }
    if let Some(d) = args.data_dir {
        cfg.server.data_dir = d;
    }
    cfg.validate()?;
    if cfg.zookeeper.as_ref().is_some_and(|z| z.digest.is_empty()) {
        tracing::warn!(
            "[zookeeper] has no digest: the znodes this server creates (cursors, schema history) \
             are writable by anyone who can reach ZooKeeper"
        );
    }
    if args.check {
        println!(
            "{}: ok ({} destinations)",
            args.config.display(),
            cfg.destinations.len()
        );
        return Ok(());
    }
    let prometheus = metrics_exporter_prometheus::PrometheusBuilder::new()
        .install_recorder()
        .ok();
    let auth =
        canal_protocol::scramble::Authenticator::new(cfg.server.user.clone(), &cfg.server.passwd)
            .map_err(|e| anyhow::anyhow!("server.passwd: {e}"))?;
    let listener = tokio::net::TcpListener::bind((cfg.server.ip.as_str(), cfg.server.port))
        .await
        .with_context(|| format!("binding {}:{}", cfg.server.ip, cfg.server.port))?;
    let admin =
        tokio::net::TcpListener::bind((cfg.server.admin_ip.as_str(), cfg.server.admin_port))
            .await
            .with_context(|| {
                format!(
                    "binding admin {}:{}",
                    cfg.server.admin_ip, cfg.server.admin_port
                )
            })?;
    let admin_token = std::env::var("CANAL_ADMIN_TOKEN")
        .ok()
        .filter(|t| !t.is_empty())
        .or_else(|| Some(cfg.server.admin_token.clone()).filter(|t| !t.is_empty()));
    let flush = Duration::from_millis(cfg.server.flush_period_ms);
    let tls = if cfg.server.tls_cert.is_empty() {
        None
    } else {
        Some(canal_server::server::tls::acceptor(
            std::path::Path::new(&cfg.server.tls_cert),
            std::path::Path::new(&cfg.server.tls_key),
        )?)
    };
    let ctx = Arc::new(
        ServerContext::new(auth, cfg.server.max_frame_bytes, cfg.server.max_connections)
            .with_tls(tls),
    );
    let shutdown = CancellationToken::new();
    let address = format!("{}:{}", cfg.server.ip, cfg.server.port);
    let mut controllers = Vec::new();
    match &cfg.zookeeper {
        None => {
            for (name, d) in &cfg.destinations {
                metrics::gauge!("canal_instance", "destination" => name.clone(), "mode" => "spring").set(1.0);
                let inst = InstanceBuilder::new(name, d.clone(), &cfg.server.data_dir)
                    .flush_period(flush)
                    .start()
                    .await
                    .with_context(|| format!("starting destination {name}"))?;
                ctx.set_role(name, "standalone", Some(address.clone()));
                ctx.insert(inst);
            }
        }
        Some(zk) => {
            controllers.push(tokio::spawn(ha::register_server(
                zk.clone(),
                address.clone(),
                shutdown.clone(),
            )));
            for (name, d) in &cfg.destinations {
                metrics::gauge!("canal_instance", "destination" => name.clone(), "mode" => "spring").set(1.0);
                controllers.push(tokio::spawn(ha::run_destination(
                    name.clone(),
                    d.clone(),
                    zk.clone(),
                    ctx.clone(),
                    cfg.server.data_dir.clone(),
                    flush,
                    address.clone(),
                    shutdown.clone(),
                )));
            }
        }
    }
    tracing::info!(
        port = cfg.server.port,
        admin_port = cfg.server.admin_port,
        destinations = ?cfg.destinations.keys().collect::<Vec<_>>(),
        "canal-server ready"
    );
    let tcp = tokio::spawn(server::serve(listener, ctx.clone(), shutdown.clone()));
    let http = tokio::spawn(server::admin::serve(
        admin,
        ctx.clone(),
        prometheus,
        admin_token,
        shutdown.clone(),
    ));
    wait_for_signal().await;
    tracing::info!("shutting down");
    shutdown.cancel();
    let _ = tcp.await;
    let _ = http.await;
    // HA controllers flush cursors while still holding the running node, then release it.
    for c in controllers {
        let _ = c.await;
    }
    for inst in ctx.instances() {
        ctx.remove(inst.name());
        inst.stop().await;
    }
    tracing::info!("cursors flushed; bye");
    Ok(())
}

async fn wait_for_signal() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term => {}
    }
}
