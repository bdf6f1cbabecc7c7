//! `otter-manager`: stores Otter channel definitions in ZooKeeper and starts, pauses and stops them.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{anyhow, bail, Context, Result};
use clap::{Parser, Subcommand};
use otter_manager::{status_name, ApplyOutcome};
use otter_node::model::{Channel, ChannelStatus};
use zk_coord::ZkConfig;

#[derive(Parser, Debug)]
#[command(
    name = "otter-manager",
    version,
    about = "Configure and control Otter channels through ZooKeeper",
    after_help = "Channels are stored as JSON at /otter/channel/{cid}; live nodes register at /otter/node/{nid}.\n\
                  Example: otter-manager --zk 127.0.0.1:2181 apply -f config/channel.toml && otter-manager start 1"
)]
struct Cli {
    /// ZooKeeper servers, host:port[,host:port…][/chroot].
    #[arg(
        long,
        global = true,
        env = "OTTER_ZK",
        default_value = "127.0.0.1:2181",
        value_name = "SERVERS"
    )]
    zk: String,
    /// ZooKeeper session timeout, ms.
    #[arg(long, global = true, default_value_t = 10_000, value_name = "MS")]
    zk_session_timeout_ms: u64,
    /// How long to try to reach ZooKeeper before giving up, ms.
    #[arg(long, global = true, default_value_t = 5_000, value_name = "MS")]
    zk_connect_timeout_ms: u64,
    /// ZooKeeper digest credentials `user:password`, or (kept out of `ps`) `env:NAME` or `file:PATH`
    /// (mode 0600) holding them.
    /// With them every znode otter creates is closed to other identities.
    #[arg(
        long,
        global = true,
        env = "OTTER_ZK_DIGEST",
        hide_env_values = true,
        default_value = "",
        value_name = "REF"
    )]
    zk_digest: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Validate a channel TOML file and store it (a stored channel keeps its status).
    Apply {
        /// The channel file, e.g. config/channel.toml.
        #[arg(short = 'f', long = "file", value_name = "FILE")]
        file: PathBuf,
    },
    /// Start a channel: its pipelines run.
    Start {
        /// Channel id.
        cid: u32,
    },
    /// Stop a channel.
    Stop {
        /// Channel id.
        cid: u32,
    },
    /// Pause a channel: Select takes no new batches, batches in flight finish.
    Pause {
        /// Channel id.
        cid: u32,
    },
    /// Print a channel as stored (pretty JSON).
    Show {
        /// Channel id.
        cid: u32,
    },
    /// One line per channel: id, name, status, pipeline id, source → target.
    List,
    /// One line per live node: id and address.
    Nodes,
    /// Create the `retl` schema and otter's tables (retl_fence, retl_mark) on a site's MySQL, with
    /// an account that may create them; the load accounts then need SELECT, INSERT, UPDATE on
    /// `retl`.*. Needs no ZooKeeper.
    PrepareSite {
        /// The MySQL server, host:port.
        #[arg(long)]
        address: String,
        /// An account with CREATE privileges.
        #[arg(long, default_value = "root")]
        username: String,
        /// Its password: `env:NAME`, `file:PATH` (mode 0600) or the password itself.
        #[arg(long, default_value = "")]
        password: String,
    },
    /// The conflicts a two-way channel's sites detected and resolved (read from each target's
    /// `retl.retl_conflict`; the targets' passwords are resolved here, as on the nodes).
    Conflicts {
        /// Channel id.
        cid: u32,
        /// Only those at or after this time (`YYYY-MM-DD[ HH:MM:SS]`, the sites' clocks).
        #[arg(long)]
        since: Option<String>,
        /// One JSON array instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Copy the existing rows of source tables into a running pipeline's stream (a snapshot:
    /// no locks, chunks by primary key, rows that change meanwhile come from the binlog); the
    /// node running the pipeline's Select starts it and answers. Exits 1 if refused or nobody
    /// answered.
    Snapshot {
        /// Channel id.
        cid: u32,
        /// Source tables (`schema.table`, comma-separated).
        #[arg(long, value_delimiter = ',', required = true)]
        tables: Vec<String>,
        /// The pipeline (default: the channel's first; a two-way channel's reverse pipeline by id).
        #[arg(long)]
        pipeline: Option<u32>,
        /// How long to wait for the node's answer, seconds.
        #[arg(long, default_value_t = 30)]
        wait_secs: u64,
    },
    /// Compare a channel's source and target row by row (its first pipeline; for a two-way
    /// channel both sites should be equal), chunk by chunk along each table's primary key, with
    /// the mappings' renames and column views. Keys that differ are read again after the
    /// pipeline's delay, so rows in flight are not reported. Exits 1 when rows differ.
    Check {
        /// Channel id.
        cid: u32,
        /// Only these source tables (`schema.table`, comma-separated).
        #[arg(long, value_delimiter = ',')]
        tables: Vec<String>,
        /// Rewrite each differing key on the target from the source's current row (marked, so a
        /// two-way channel does not send it back).
        #[arg(long)]
        repair: bool,
        /// The report as JSON.
        #[arg(long)]
        json: bool,
        /// Rows in a table's first chunk (later chunks are sized to take about 0.5 s).
        #[arg(long, default_value_t = 1000)]
        chunk_rows: u64,
        /// At most this many rows read per second (both sides together); 0: no cap.
        #[arg(long, default_value_t = 0)]
        max_rows_per_sec: u64,
        /// Wait while the pipeline's delay is above this many seconds.
        #[arg(long, default_value_t = 10)]
        max_delay_secs: u64,
        /// Wait while the source's Threads_running is above this.
        #[arg(long, default_value_t = 25)]
        max_threads_running: u64,
        /// Reads of a differing key before it is reported.
        #[arg(long, default_value_t = 5)]
        rechecks: u32,
        /// Least milliseconds between two reads of a differing key (twice the delay at least).
        #[arg(long, default_value_t = 1000)]
        recheck_wait_ms: u64,
    },
    /// Serve the web console (pages, actions, audit log) until killed.
    Serve {
        /// Listen here (overrides `[console] http` of the config).
        #[arg(long, value_name = "ADDR")]
        http: Option<std::net::SocketAddr>,
        /// A manager config file with a `[console]` section (users, address), e.g.
        /// config/manager.toml.
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
    },
    /// Print an argon2 hash of the password read from standard input (one line), for
    /// `[[console.users]] password_hash`.
    HashPassword,
    /// Give every znode under /otter (canal's and otter's) the ACLs of the security model: all
    /// for the --zk-digest identity, read for everyone on running and cluster nodes only. For a
    /// tree created before digest auth was turned on.
    Secure,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("error")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::from(2);
        }
    };
    match rt.block_on(run(cli)) {
        Ok(Outcome::Done) => ExitCode::SUCCESS,
        Ok(Outcome::Differs) => ExitCode::from(1),
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

async fn connect(cli: &Cli) -> Result<zookeeper_client::Client> {
    let config = ZkConfig {
        servers: cli.zk.clone(),
        session_timeout_ms: cli.zk_session_timeout_ms,
        connect_timeout_ms: cli.zk_connect_timeout_ms,
        digest: cli.zk_digest.clone(),
        ..ZkConfig::default()
    };
    if config.digest.is_empty() {
        tracing::warn!("no --zk-digest: the znodes written are readable and writable by anyone who can reach ZooKeeper");
    }
    Ok(otter_manager::connect(&config).await?)
}

/// How a command ended when it did not fail.
enum Outcome {
    Done,
    /// `check` found rows that differ.
    Differs,
}

async fn run(cli: Cli) -> Result<Outcome> {
    match &cli.command {
        Command::Apply { file } => {
            // A channel file says where rows go: nobody else may rewrite it.
            zk_coord::secret::check_config_file(file)?;
            let text = std::fs::read_to_string(file)
                .with_context(|| format!("cannot read {}", file.display()))?;
            let channel =
                Channel::from_toml(&text).map_err(|e| anyhow!("{}: {e}", file.display()))?;
            let zk = connect(&cli).await?;
            let outcome = otter_manager::apply(&zk, &channel).await?;
            println!("{}", apply_line(channel.id, outcome));
        }
        Command::Start { cid } => return set(&cli, *cid, ChannelStatus::Started).await,
        Command::Stop { cid } => return set(&cli, *cid, ChannelStatus::Stopped).await,
        Command::Pause { cid } => return set(&cli, *cid, ChannelStatus::Paused).await,
        Command::Show { cid } => {
            let zk = connect(&cli).await?;
            let channel = otter_manager::get(&zk, *cid).await?;
            println!("{}", serde_json::to_string_pretty(&channel)?);
            let now = otter_node::pipeline::heartbeat::now_ms();
            for (pid, delay) in otter_manager::delays(&zk, &channel).await? {
                match delay {
                    // Stdout stays the channel's JSON (for scripts); the delay is for people.
                    Some(d) => eprintln!(
                        "pipeline {pid}: delay {:.3} s (measured {} s ago)",
                        d.delay_ms as f64 / 1000.0,
                        (now - d.at_ms).max(0) / 1000
                    ),
                    None => eprintln!("pipeline {pid}: no delay measured yet"),
                }
            }
        }
        Command::List => {
            let zk = connect(&cli).await?;
            let channels = otter_manager::list(&zk).await?;
            if channels.is_empty() {
                eprintln!("no channels under {}", zk_coord::otter_paths::CHANNEL_ROOT);
            }
            for line in list_lines(&channels) {
                println!("{line}");
            }
        }
        Command::Nodes => {
            let zk = connect(&cli).await?;
            let nodes = otter_manager::nodes(&zk).await?;
            if nodes.is_empty() {
                eprintln!("no live nodes under {}", zk_coord::otter_paths::NODE_ROOT);
            }
            let w = nodes
                .iter()
                .map(|(n, _)| n.to_string().len())
                .max()
                .unwrap_or(0);
            for (nid, addr) in nodes {
                println!("{nid:<w$}  {addr}");
            }
        }
        Command::PrepareSite {
            address,
            username,
            password,
        } => {
            let account = otter_node::model::TargetDb {
                address: address.clone(),
                username: username.clone(),
                password: password.clone(),
                site: String::new(),
                tls: Default::default(),
            };
            let ran = otter_node::pipeline::load::prepare_site(&account).await?;
            println!(
                "{address}: retl ready ({} statements); grant the load accounts {} and the \
                 source accounts {}",
                ran.len(),
                otter_node::pipeline::load::site::LOAD_GRANTS,
                otter_node::pipeline::load::site::SOURCE_GRANTS
            );
        }
        Command::Snapshot {
            cid,
            tables,
            pipeline,
            wait_secs,
        } => {
            use otter_node::pipeline::snapshot_request::{self as req, RequestState};
            let zk = connect(&cli).await?;
            let channel = otter_manager::get(&zk, *cid).await?;
            let pids: Vec<u32> = std::iter::once(channel.pipeline.id)
                .chain(channel.reverse.as_ref().map(|r| r.id))
                .collect();
            let pid = pipeline.unwrap_or(channel.pipeline.id);
            if !pids.contains(&pid) {
                bail!("channel {cid} has no pipeline {pid} (it has {pids:?})");
            }
            let p = match &channel.reverse {
                Some(r) if r.id == pid => r,
                _ => &channel.pipeline,
            };
            if let Some(t) = tables.iter().find(|t| !p.maps_source_table(t)) {
                bail!("pipeline {pid} maps no source table {t}: its rows would go nowhere");
            }
            req::request(&zk, *cid, pid, tables).await?;
            let answer =
                req::wait_answer(&zk, *cid, pid, std::time::Duration::from_secs(*wait_secs))
                    .await?;
            match answer {
                Some(a) if a.state == RequestState::Started => println!(
                    "pipeline {pid}: snapshot {} of {} started",
                    a.run.unwrap_or_default(),
                    a.tables.join(", ")
                ),
                Some(a) if a.state == RequestState::Refused => bail!(
                    "pipeline {pid}: snapshot refused: {}",
                    a.error.unwrap_or_default()
                ),
                _ => bail!(
                    "pipeline {pid}: no node answered within {wait_secs} s (is channel {cid} started?); the request stays pending"
                ),
            }
        }
        Command::Conflicts { cid, since, json } => {
            let zk = connect(&cli).await?;
            let channel = otter_manager::get(&zk, *cid).await?;
            let mut all = Vec::new();
            for p in std::iter::once(&channel.pipeline).chain(channel.reverse.as_ref()) {
                all.extend(
                    otter_node::pipeline::load::conflict::read_reports(p, *cid, since.as_deref())
                        .await?,
                );
            }
            if *json {
                println!("{}", serde_json::to_string_pretty(&all)?);
            } else {
                if all.is_empty() {
                    eprintln!("no conflicts recorded for channel {cid}");
                }
                for c in &all {
                    println!("{c}");
                }
            }
        }
        Command::Serve { http, config } => {
            let mut console = match config {
                Some(path) => {
                    // Holds password hashes: nobody else may rewrite it.
                    zk_coord::secret::check_config_file(path)?;
                    let text = std::fs::read_to_string(path)
                        .with_context(|| format!("cannot read {}", path.display()))?;
                    toml::from_str::<otter_manager::console::ManagerConfig>(&text)
                        .map_err(|e| anyhow!("{}: {e}", path.display()))?
                        .console
                }
                None => otter_manager::console::ConsoleConfig::default(),
            };
            if let Some(addr) = http {
                console.http = *addr;
            }
            // Checked before connecting: a console that must not start fails fast.
            console.validate()?;
            let zk = connect(&cli).await?;
            let state = otter_manager::console::Console::new(zk, cli.zk.clone(), console)?;
            otter_manager::console::serve(state).await?;
        }
        Command::HashPassword => {
            let mut line = String::new();
            std::io::stdin()
                .read_line(&mut line)
                .context("cannot read the password from standard input")?;
            let password = line.trim_end_matches(['\r', '\n']);
            if password.is_empty() {
                bail!("empty password");
            }
            println!(
                "{}",
                otter_manager::console::hash_password(password).map_err(|e| anyhow!(e))?
            );
        }
        Command::Secure => {
            let zk = connect(&cli).await?;
            let n = zk_coord::acl::secure_tree(&zk, "/otter").await?;
            println!("{n} znodes under /otter secured");
        }
        Command::Check {
            cid,
            tables,
            repair,
            json,
            chunk_rows,
            max_rows_per_sec,
            max_delay_secs,
            max_threads_running,
            rechecks,
            recheck_wait_ms,
        } => {
            let zk = connect(&cli).await?;
            let channel = otter_manager::get(&zk, *cid).await?;
            let opts = otter_node::check::CheckOptions {
                tables: tables.clone(),
                chunk_rows: *chunk_rows,
                max_rows_per_sec: (*max_rows_per_sec > 0).then_some(*max_rows_per_sec),
                max_delay: std::time::Duration::from_secs(*max_delay_secs),
                max_threads_running: *max_threads_running,
                rechecks: *rechecks,
                recheck_wait: std::time::Duration::from_millis(*recheck_wait_ms),
                repair: *repair,
                ..otter_node::check::CheckOptions::default()
            };
            let delay = otter_node::check::ZkDelay {
                zk: &zk,
                channel: *cid,
                pipeline: channel.pipeline.id,
            };
            let report =
                otter_node::check::check_pipeline(&channel.pipeline, *cid, &opts, &delay).await?;
            if *json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                print!("{}", otter_node::check::render_table(&report));
            }
            // Repaired keys were different when found: the exit status still says so.
            if report.differs() {
                return Ok(Outcome::Differs);
            }
        }
    }
    Ok(Outcome::Done)
}

async fn set(cli: &Cli, cid: u32, status: ChannelStatus) -> Result<Outcome> {
    let zk = connect(cli).await?;
    otter_manager::set_status(&zk, cid, status).await?;
    println!("channel {cid}: {}", status_name(status));
    Ok(Outcome::Done)
}

fn apply_line(cid: u32, outcome: ApplyOutcome) -> String {
    format!(
        "channel {cid} {} (status {})",
        outcome.verb(),
        status_name(outcome.status())
    )
}

/// Aligned columns: id, name, status, `pipeline {pid}`, `source → target`.
fn list_lines(channels: &[Channel]) -> Vec<String> {
    let rows: Vec<[String; 5]> = channels
        .iter()
        .map(|c| {
            [
                c.id.to_string(),
                if c.name.is_empty() {
                    "-".to_string()
                } else {
                    c.name.clone()
                },
                status_name(c.status).to_string(),
                format!("pipeline {}", c.pipeline.id),
                format!(
                    "{} → {}",
                    c.pipeline.source.address, c.pipeline.target.address
                ),
            ]
        })
        .collect();
    let mut widths = [0usize; 4];
    for r in &rows {
        for (w, cell) in widths.iter_mut().zip(r.iter()) {
            *w = (*w).max(cell.chars().count());
        }
    }
    rows.iter()
        .map(|r| {
            format!(
                "{:<w0$}  {:<w1$}  {:<w2$}  {:<w3$}  {}",
                r[0],
                r[1],
                r[2],
                r[3],
                r[4],
                w0 = widths[0],
                w1 = widths[1],
                w2 = widths[2],
                w3 = widths[3]
            )
        })
        .collect()
}
