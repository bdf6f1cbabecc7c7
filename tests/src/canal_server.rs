//! The `canal-server` binary run against a test MariaDB: config in a temp dir, free ports, faults.
//!
//! canal-server's own tests pass the binary cargo built for them (`CARGO_BIN_EXE_canal-server`);
//! tests of other crates get one from [`canal_server_bin`].
//!
//! Unlike the server handles in this crate, these helpers panic on failure (with the server's log),
//! as they are only used directly inside tests.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

use tokio::net::TcpStream;

use crate::mariadb::MariaDb;
use crate::ports::free_port;
use crate::process::{ManagedProcess, TestDir};

/// A canal-server process with its config and data dir. Dropping it kills the process; the
/// directory (config, `server.log`, data) is kept when the test panics.
#[derive(Debug)]
pub struct CanalServer {
    /// The running process; `None` after [`CanalServer::stop`] or [`CanalServer::kill9`].
    pub process: Option<ManagedProcess>,
    /// Holds `canal-server.toml`, `server.log` and `data/`.
    pub dir: TestDir,
    /// Canal TCP port on 127.0.0.1.
    pub port: u16,
    /// Admin HTTP port (`/health`, `/metrics`).
    pub admin_port: u16,
    /// The config file written at start.
    pub config: PathBuf,
    /// The binary started by [`CanalServer::launch`].
    pub bin: PathBuf,
}

impl CanalServer {
    /// Writes a config for destination `example` reading `db` (fast heartbeats and flushes;
    /// `extra_server` is appended to `[server]`, `extra_dest` to `[destinations.example]`) and
    /// starts `bin` with it, returning once it listens on its port.
    pub async fn start(bin: &Path, db: &MariaDb, extra_server: &str, extra_dest: &str) -> Self {
        Self::start_with(bin, db, extra_server, extra_dest, "").await
    }

    /// Like [`CanalServer::start`], with more TOML appended (e.g. a `[zookeeper]` section).
    pub async fn start_with(
        bin: &Path,
        db: &MariaDb,
        extra_server: &str,
        extra_dest: &str,
        extra: &str,
    ) -> Self {
        let dir = TestDir::new("canal-server").unwrap();
        let port = free_port();
        let admin_port = free_port();
        let user = db.replication_user().cloned().unwrap_or_default();
        let config = dir.path().join("canal-server.toml");
        std::fs::write(
            &config,
            format!(
                "[server]\nip = \"127.0.0.1\"\nport = {port}\nadmin_port = {admin_port}\ndata_dir = \"{data}\"\n{flush}{extra_server}\n\
                 [destinations.example]\naddress = \"{addr}\"\nusername = \"{u}\"\npassword = \"{p}\"\nslave_id = {sid}\n\
                 black_filter = \"\"\nheartbeat_ms = 300\nread_timeout_ms = 3000\n{extra_dest}\n{extra}\n",
                data = dir.path().join("data").display(),
                flush = if extra_server.contains("flush_period_ms") {
                    ""
                } else {
                    "flush_period_ms = 100\n"
                },
                addr = db.addr(),
                u = user.user,
                p = user.password,
                sid = 2000 + port as u32,
            ),
        )
        .unwrap();
        let mut s = CanalServer {
            process: None,
            dir,
            port,
            admin_port,
            config,
            bin: bin.to_path_buf(),
        };
        s.launch().await;
        s
    }

    /// Starts the binary (again) with the same config, ports and data dir; returns once it
    /// listens. Panics with the log if it exits or does not listen within 30 s.
    pub async fn launch(&mut self) {
        let mut cmd = std::process::Command::new(&self.bin);
        cmd.arg("--config")
            .arg(&self.config)
            .env("RUST_LOG", "info");
        self.process = Some(
            ManagedProcess::start("canal-server", cmd, &self.dir.path().join("server.log"))
                .unwrap(),
        );
        for _ in 0..600 {
            if TcpStream::connect(("127.0.0.1", self.port)).await.is_ok() {
                return;
            }
            if let Some(st) = self.process.as_mut().and_then(|p| p.try_exit_status()) {
                panic!("canal-server exited with {st}: {}", self.log());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("canal-server did not listen: {}", self.log());
    }

    /// Graceful stop (SIGTERM): cursors are flushed.
    pub fn stop(&mut self) {
        if let Some(mut p) = self.process.take() {
            p.terminate(Duration::from_secs(30)).unwrap();
        }
    }

    /// kill -9.
    pub fn kill9(&mut self) {
        if let Some(mut p) = self.process.take() {
            p.kill9().unwrap();
        }
    }

    /// SIGSTOP.
    pub fn pause(&mut self) {
        self.process.as_mut().unwrap().pause().unwrap();
    }

    /// SIGCONT.
    pub fn resume(&mut self) {
        self.process.as_mut().unwrap().resume().unwrap();
    }

    /// The server's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }

    /// The server's `data_dir` (cursors, local binlog files).
    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// `127.0.0.1:port` of the Canal TCP port.
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Waits until the destination is streaming (its admin `/health` says Running); panics with
    /// the log after 30 s.
    pub async fn wait_streaming(&self) {
        for _ in 0..600 {
            if let Ok(body) = http_get(self.admin_port, "/health").await {
                if body.contains("\"status\":\"running\"") {
                    return;
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("destination not running: {}", self.log());
    }
}

/// A tiny HTTP/1.0 GET on `127.0.0.1:port`; returns the whole response, headers included.
pub async fn http_get(port: u16, path: &str) -> std::io::Result<String> {
    http_request(port, "GET", path).await
}

/// A tiny HTTP/1.0 request without a body (`POST`, `DELETE`, …) on `127.0.0.1:port`; returns the
/// whole response, headers included.
pub async fn http_request(port: u16, method: &str, path: &str) -> std::io::Result<String> {
    http_request_with(port, method, path, &[]).await
}

/// [`http_request`] with extra headers (`("Authorization", "Bearer …")`).
pub async fn http_request_with(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> std::io::Result<String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = TcpStream::connect(("127.0.0.1", port)).await?;
    let extra: String = headers
        .iter()
        .map(|(k, v)| format!("{k}: {v}\r\n"))
        .collect();
    s.write_all(
        format!("{method} {path} HTTP/1.0\r\nHost: x\r\nContent-Length: 0\r\n{extra}\r\n")
            .as_bytes(),
    )
    .await?;
    let mut out = String::new();
    s.read_to_string(&mut out).await?;
    Ok(out)
}

/// The canal-server binary for tests of crates other than canal-server.
///
/// `CANAL_SERVER_BIN` if set; otherwise, once per process, `cargo build -p canal-server --bin
/// canal-server --locked` into the target directory and profile of the running test executable
/// (`…/target/<profile>/deps/<exe>`; profile `debug` is built with `--profile dev`), and its
/// `…/target/<profile>/canal-server`. Blocks while cargo runs (it waits for cargo's build lock, and
/// is quick when the binary is up to date). Panics with cargo's output if the build fails.
pub fn canal_server_bin() -> PathBuf {
    static BUILT: OnceLock<std::result::Result<PathBuf, String>> = OnceLock::new();
    workspace_bin("canal-server", "CANAL_SERVER_BIN", &BUILT)
}

/// The `otter-node` binary for tests of other crates (the manager's console test), found or built
/// as [`canal_server_bin`] does (`OTTER_NODE_BIN` if set).
pub fn otter_node_bin() -> PathBuf {
    static BUILT: OnceLock<std::result::Result<PathBuf, String>> = OnceLock::new();
    workspace_bin("otter-node", "OTTER_NODE_BIN", &BUILT)
}

fn workspace_bin(
    name: &str,
    env: &str,
    built: &'static OnceLock<std::result::Result<PathBuf, String>>,
) -> PathBuf {
    if let Some(bin) = std::env::var_os(env) {
        return PathBuf::from(bin);
    }
    let build = || built.get_or_init(|| build_bin(name, env));
    // Do not stall the other tasks of a multi-thread runtime while cargo runs.
    let built = match tokio::runtime::Handle::try_current() {
        Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(build)
        }
        _ => build(),
    };
    match built {
        Ok(bin) => bin.clone(),
        Err(e) => panic!("{e}"),
    }
}

fn build_bin(name: &str, env: &str) -> std::result::Result<PathBuf, String> {
    let exe = std::env::current_exe().map_err(|e| format!("{name}: current_exe: {e}"))?;
    // …/target/<profile>/deps/<exe> for tests and benches, …/target/<profile>/examples/<exe> for
    // examples, …/target/<profile>/<exe> for binaries.
    let mut profile_dir = exe.parent().map(Path::to_path_buf).unwrap_or_default();
    if matches!(
        profile_dir.file_name().and_then(|n| n.to_str()),
        Some("deps" | "examples")
    ) {
        profile_dir.pop();
    }
    let (Some(target_dir), Some(profile)) = (
        profile_dir.parent(),
        profile_dir.file_name().and_then(|n| n.to_str()),
    ) else {
        return Err(format!(
            "{name}: cannot find the target directory from {}; set {env}",
            exe.display()
        ));
    };
    let cargo_profile = if profile == "debug" { "dev" } else { profile };
    let cargo = option_env!("CARGO").unwrap_or("cargo");
    let mut cmd = std::process::Command::new(cargo);
    // `--workspace` resolves features as the workspace build of the test run did, so after
    // `cargo nextest run --workspace` this is a no-op instead of a rebuild of the binary.
    cmd.args(["build", "--workspace", "--bin", name, "--locked"])
        .arg("--target-dir")
        .arg(target_dir)
        .args(["--profile", cargo_profile]);
    // The workspace this harness was compiled in, so the build works from any current directory.
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("../Cargo.toml");
    if manifest.is_file() {
        cmd.arg("--manifest-path").arg(manifest);
    }
    let shown = format!("{cmd:?}");
    let out = cmd
        .output()
        .map_err(|e| format!("{name}: cannot run {shown}: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "{name}: {shown} failed ({}); set {env} to use a built binary\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let bin = profile_dir.join(name);
    if !bin.is_file() {
        return Err(format!(
            "{name}: {shown} succeeded but {} does not exist",
            bin.display()
        ));
    }
    Ok(bin)
}
