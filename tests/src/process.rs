//! Child processes owned by handles, and per-server temporary directories that survive a failed test.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::mpsc;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use crate::error::{io_err, HarnessError, Result};

type SpawnRequest = (Command, mpsc::SyncSender<std::io::Result<Child>>);

/// All children are spawned from one long-lived thread, because `PR_SET_PDEATHSIG` fires when the
/// *thread* that forked the child exits: spawning from short-lived test or blocking-pool threads would
/// kill servers in the middle of a test.
fn spawner() -> &'static Mutex<mpsc::Sender<SpawnRequest>> {
    static SPAWNER: OnceLock<Mutex<mpsc::Sender<SpawnRequest>>> = OnceLock::new();
    SPAWNER.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<SpawnRequest>();
        std::thread::Builder::new()
            .name("harness-spawner".into())
            .spawn(move || {
                for (mut cmd, reply) in rx {
                    let _ = reply.send(cmd.spawn());
                }
            })
            .expect("spawn harness-spawner thread");
        Mutex::new(tx)
    })
}

fn spawn(mut cmd: Command) -> std::io::Result<Child> {
    // SAFETY: prctl and getppid are async-signal-safe; nothing else runs between fork and exec.
    unsafe {
        let parent = libc::getpid();
        cmd.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            if libc::getppid() != parent {
                // The harness died before prctl took effect.
                libc::_exit(1);
            }
            Ok(())
        });
    }
    let (tx, rx) = mpsc::sync_channel(1);
    spawner()
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .send((cmd, tx))
        .map_err(|_| std::io::Error::other("harness spawner thread is gone"))?;
    rx.recv()
        .map_err(|_| std::io::Error::other("harness spawner thread is gone"))?
}

/// A running child process. Dropping it kills the process with SIGKILL and reaps it.
#[derive(Debug)]
pub struct ManagedProcess {
    name: String,
    child: Option<Child>,
    stopped: bool,
}

impl ManagedProcess {
    /// Starts `cmd` with stdout and stderr appended to `log`.
    pub fn start(name: impl Into<String>, mut cmd: Command, log: &Path) -> Result<Self> {
        let name = name.into();
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .map_err(io_err(format!("open log {}", log.display())))?;
        let err = out.try_clone().map_err(io_err("clone log handle"))?;
        cmd.stdout(out)
            .stderr(err)
            .stdin(std::process::Stdio::null());
        let program = cmd.get_program().to_string_lossy().into_owned();
        let child = spawn(cmd).map_err(io_err(format!("start {name} ({program})")))?;
        tracing::debug!(%name, pid = child.id(), "started process");
        Ok(Self {
            name,
            child: Some(child),
            stopped: false,
        })
    }

    /// The process id, or `None` once it has been killed or has exited and been reaped.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }

    /// The name given at start, for messages.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Whether the process is still running (a stopped process counts as running).
    pub fn is_running(&mut self) -> bool {
        match self.child.as_mut() {
            Some(c) => matches!(c.try_wait(), Ok(None)),
            None => false,
        }
    }

    fn signal(&self, sig: libc::c_int) -> Result<()> {
        let pid = self
            .pid()
            .ok_or_else(|| HarnessError::NotRunning(self.name.clone()))?;
        // SAFETY: plain kill(2) on our own child's pid, which is not reaped yet, so not reused.
        if unsafe { libc::kill(pid as libc::pid_t, sig) } != 0 {
            return Err(HarnessError::Io {
                context: format!("signal {sig} to {}", self.name),
                source: std::io::Error::last_os_error(),
            });
        }
        Ok(())
    }

    /// Kills the process with SIGKILL (`kill -9`) and waits for it to be gone.
    pub fn kill9(&mut self) -> Result<()> {
        if let Some(mut child) = self.child.take() {
            // SAFETY: see `signal`.
            unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGKILL) };
            child
                .wait()
                .map_err(io_err(format!("wait for {}", self.name)))?;
            self.stopped = false;
        }
        Ok(())
    }

    /// Asks the process to exit with SIGTERM, waits up to `grace`, then kills it.
    pub fn terminate(&mut self, grace: Duration) -> Result<()> {
        if self.child.is_none() {
            return Ok(());
        }
        if self.stopped {
            self.resume()?;
        }
        self.signal(libc::SIGTERM)?;
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline {
            if let Some(child) = self.child.as_mut() {
                if let Ok(Some(_)) = child.try_wait() {
                    self.child = None;
                    return Ok(());
                }
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        tracing::warn!(name = %self.name, "did not exit after SIGTERM; killing");
        self.kill9()
    }

    /// Freezes the process with SIGSTOP and returns once every thread of it has stopped (kill(2)
    /// only queues the signal; a running thread could still answer a request right after it).
    pub fn pause(&mut self) -> Result<()> {
        self.signal(libc::SIGSTOP)?;
        self.stopped = true;
        if let Some(pid) = self.pid() {
            let deadline = Instant::now() + Duration::from_secs(10);
            while !all_threads_stopped(pid) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(2));
            }
        }
        Ok(())
    }

    /// Continues a frozen process with SIGCONT.
    pub fn resume(&mut self) -> Result<()> {
        self.signal(libc::SIGCONT)?;
        self.stopped = false;
        Ok(())
    }

    /// The exit status if the process has exited on its own.
    pub fn try_exit_status(&mut self) -> Option<std::process::ExitStatus> {
        self.child
            .as_mut()
            .and_then(|c| c.try_wait().ok().flatten())
    }
}

impl Drop for ManagedProcess {
    fn drop(&mut self) {
        let _ = self.kill9();
    }
}

/// Whether every thread of `pid` is in the stopped state (`T`) according to /proc.
fn all_threads_stopped(pid: u32) -> bool {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return true; // gone
    };
    tasks.flatten().all(|t| {
        std::fs::read_to_string(t.path().join("stat"))
            .ok()
            .and_then(|s| {
                // The state follows the parenthesised command name, which may contain spaces.
                let rest = &s[s.rfind(')')? + 1..];
                rest.split_whitespace()
                    .next()
                    .map(|st| st == "T" || st == "t")
            })
            .unwrap_or(true)
    })
}

/// A temporary directory for one server's data and logs.
///
/// Removed on drop, unless the thread is panicking (a failing test) or `CDC_HARNESS_KEEP` is set:
/// then it is kept and its path printed, so the logs can be read.
#[derive(Debug)]
pub struct TestDir {
    dir: Option<tempfile::TempDir>,
    path: PathBuf,
}

impl TestDir {
    /// Creates a new directory whose name starts with `cdc-harness-{label}`.
    pub fn new(label: &str) -> Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix(&format!("cdc-harness-{label}-"))
            .tempdir()
            .map_err(io_err("create temp dir"))?;
        let path = dir.path().to_path_buf();
        Ok(Self {
            dir: Some(dir),
            path,
        })
    }

    /// The directory's path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for TestDir {
    fn drop(&mut self) {
        let keep = std::thread::panicking() || std::env::var_os("CDC_HARNESS_KEEP").is_some();
        if let Some(dir) = self.dir.take() {
            if keep {
                let path = dir.keep();
                eprintln!("harness: kept logs and data in {}", path.display());
            }
        }
    }
}

/// The last `lines` lines of a text file, for error messages.
pub(crate) fn tail(path: &Path, lines: usize) -> String {
    match std::fs::read(path) {
        Ok(bytes) => {
            let text = String::from_utf8_lossy(&bytes);
            let all: Vec<&str> = text.lines().collect();
            all[all.len().saturating_sub(lines)..].join("\n")
        }
        Err(e) => format!("(cannot read {}: {e})", path.display()),
    }
}

/// Finds `program` on PATH or in the sbin directories Debian uses for server binaries.
pub(crate) fn find_program(program: &str, package: &'static str) -> Result<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect())
        .unwrap_or_default();
    dirs.extend(["/usr/sbin", "/usr/bin", "/sbin"].map(PathBuf::from));
    dirs.into_iter()
        .map(|d| d.join(program))
        .find(|p| p.is_file())
        .ok_or_else(|| HarnessError::MissingProgram {
            program: program.to_string(),
            package,
        })
}

/// Waits until the process in `slot` accepts TCP connections on `127.0.0.1:port`, polling every
/// `poll` for at most `timeout`. On failure says why (`program` exited, or no `listener`), for the
/// caller's [`crate::error::HarnessError::NotReady`]; a process that exited is taken out of `slot`.
pub(crate) async fn wait_listening(
    slot: &mut Option<ManagedProcess>,
    port: u16,
    (program, listener): (&str, &str),
    timeout: std::time::Duration,
    poll: std::time::Duration,
) -> std::result::Result<(), String> {
    let deadline = std::time::Instant::now() + timeout;
    loop {
        if let Some(p) = slot.as_mut() {
            if let Some(status) = p.try_exit_status() {
                *slot = None;
                return Err(format!("{program} exited with {status}"));
            }
        }
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            return Ok(());
        }
        if std::time::Instant::now() >= deadline {
            return Err(format!("no {listener} after {timeout:?}"));
        }
        tokio::time::sleep(poll).await;
    }
}
