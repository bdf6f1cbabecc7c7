//! Real ZooKeeper servers from Debian's `zookeeper` package, run with java directly: a standalone
//! server or an ensemble, with a short tickTime so session expiry is quick in tests.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::error::{io_err, HarnessError, Result};
use crate::ports::free_port;
use crate::process::{find_program, tail, ManagedProcess, TestDir};

/// ZooKeeper `tickTime` in ms. Sessions may range from 2 to 300 ticks (0.4 s .. 60 s).
pub const TICK_MS: u64 = 200;

const JARS: &[&str] = &[
    "/usr/share/java/zookeeper.jar",
    "/usr/share/java/slf4j-simple.jar",
];
const START_TIMEOUT: Duration = Duration::from_secs(90);

/// One ZooKeeper server process (standalone or an ensemble member).
#[derive(Debug)]
pub struct ZkMember {
    process: Option<ManagedProcess>,
    dir: TestDir,
    id: u32,
    client_port: u16,
    config: PathBuf,
}

impl ZkMember {
    /// The member's `myid` (1-based).
    pub fn id(&self) -> u32 {
        self.id
    }

    /// Its client port on 127.0.0.1.
    pub fn client_port(&self) -> u16 {
        self.client_port
    }

    /// `127.0.0.1:port`.
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.client_port)
    }

    /// Its log file.
    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("zookeeper.log")
    }

    /// Whether its process is up (paused counts as up).
    pub fn is_running(&mut self) -> bool {
        self.process.as_mut().is_some_and(|p| p.is_running())
    }

    /// The server's pid while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.process.as_ref().and_then(|p| p.pid())
    }

    fn launch(&mut self) -> Result<()> {
        for jar in JARS {
            if !std::path::Path::new(jar).is_file() {
                return Err(HarnessError::MissingProgram {
                    program: (*jar).to_string(),
                    package: if jar.contains("slf4j") {
                        "libslf4j-java"
                    } else {
                        "zookeeper"
                    },
                });
            }
        }
        let java = find_program("java", "default-jre-headless")?;
        let mut cmd = Command::new(java);
        cmd.current_dir(self.dir.path())
            .arg("-Xms32m")
            .arg("-Xmx256m")
            .arg("-XX:+UseSerialGC")
            .arg("-XX:TieredStopAtLevel=1")
            .arg("-Xshare:auto")
            .arg("-Dzookeeper.admin.enableServer=false")
            .arg("-Dzookeeper.jmx.log4j.disable=true")
            .arg("-Dorg.slf4j.simpleLogger.showDateTime=true")
            .arg(format!("-Dzookeeper.log.dir={}", self.dir.path().display()))
            .arg(format!("-Dcdc.harness.dir={}", self.dir.path().display()))
            .arg("-cp")
            .arg(JARS.join(":"))
            .arg("org.apache.zookeeper.server.quorum.QuorumPeerMain")
            .arg(&self.config);
        self.process = Some(ManagedProcess::start(
            format!("zookeeper:{}", self.client_port),
            cmd,
            &self.log_path(),
        )?);
        Ok(())
    }

    /// Asks the server with the `srvr` four-letter word whether it serves clients; returns its mode
    /// (`standalone`, `leader` or `follower`).
    pub fn mode(&self) -> Option<String> {
        let reply = four_letter(self.client_port, "srvr").ok()?;
        reply
            .lines()
            .find_map(|l| l.strip_prefix("Mode: ").map(|m| m.trim().to_string()))
    }

    fn wait_ready(&mut self, deadline: Instant) -> Result<()> {
        loop {
            if let Some(p) = self.process.as_mut() {
                if let Some(status) = p.try_exit_status() {
                    self.process = None;
                    return Err(self.not_ready(format!("java exited with {status}")));
                }
            }
            if self.mode().is_some() {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(self.not_ready(format!("not serving after {START_TIMEOUT:?}")));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn not_ready(&self, reason: String) -> HarnessError {
        HarnessError::NotReady {
            what: format!("ZooKeeper member {} on port {}", self.id, self.client_port),
            reason,
            log: self.log_path(),
            tail: tail(&self.log_path(), 20),
        }
    }

    /// Kills the member with SIGKILL; it stays down until [`ZkMember::restart`].
    pub fn kill9(&mut self) -> Result<()> {
        if let Some(mut p) = self.process.take() {
            p.kill9()?;
        }
        Ok(())
    }

    /// Freezes the member with SIGSTOP.
    pub fn pause(&mut self) -> Result<()> {
        self.process_mut()?.pause()
    }

    /// Continues a frozen member.
    pub fn resume(&mut self) -> Result<()> {
        self.process_mut()?.resume()
    }

    fn process_mut(&mut self) -> Result<&mut ManagedProcess> {
        let port = self.client_port;
        self.process
            .as_mut()
            .ok_or_else(|| HarnessError::NotRunning(format!("zookeeper:{port}")))
    }

    /// Starts the member again (after [`ZkMember::kill9`], or kills and restarts a running one) with
    /// its data, and waits until it serves clients (for an ensemble member: until it rejoined a quorum).
    pub async fn restart(&mut self) -> Result<()> {
        self.kill9()?;
        self.launch()?;
        let deadline = Instant::now() + START_TIMEOUT;
        blocking(|| self.wait_ready(deadline))
    }
}

/// Runs a short blocking wait without stalling other tasks on a multi-thread runtime.
fn blocking<T>(f: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::try_current() {
        Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(f)
        }
        _ => f(),
    }
}

fn four_letter(port: u16, word: &str) -> std::io::Result<String> {
    let mut s = TcpStream::connect_timeout(
        &std::net::SocketAddr::from(([127, 0, 0, 1], port)),
        Duration::from_millis(500),
    )?;
    s.set_read_timeout(Some(Duration::from_secs(2)))?;
    s.write_all(word.as_bytes())?;
    let mut out = String::new();
    s.read_to_string(&mut out)?;
    Ok(out)
}

/// A ZooKeeper service: one standalone server or an ensemble. Dropping it kills every member.
#[derive(Debug)]
pub struct ZooKeeper {
    members: Vec<ZkMember>,
}

impl ZooKeeper {
    /// Starts a standalone server.
    pub async fn start() -> Result<Self> {
        Self::start_ensemble_of(1).await
    }

    /// Starts a 3-node ensemble and waits until every member serves clients.
    pub async fn start_ensemble() -> Result<Self> {
        Self::start_ensemble_of(3).await
    }

    async fn start_ensemble_of(n: u32) -> Result<Self> {
        let ports: Vec<(u16, u16, u16)> = (0..n)
            .map(|_| (free_port(), free_port(), free_port()))
            .collect();
        let mut members = Vec::new();
        for id in 1..=n {
            let (client_port, _, _) = ports[(id - 1) as usize];
            let dir = TestDir::new(&format!("zk{id}"))?;
            let data = dir.path().join("data");
            std::fs::create_dir_all(&data).map_err(io_err("create zookeeper data dir"))?;
            let mut cfg = format!(
                "tickTime={TICK_MS}\ninitLimit=50\nsyncLimit=10\ndataDir={}\nclientPort={client_port}\n\
                 clientPortAddress=127.0.0.1\nminSessionTimeout={}\nmaxSessionTimeout=60000\n\
                 admin.enableServer=false\n4lw.commands.whitelist=*\nmaxClientCnxns=0\n\
                 autopurge.purgeInterval=0\n",
                data.display(),
                2 * TICK_MS,
            );
            if n > 1 {
                std::fs::write(data.join("myid"), format!("{id}\n"))
                    .map_err(io_err("write myid"))?;
                for (i, (_, peer, election)) in ports.iter().enumerate() {
                    cfg.push_str(&format!("server.{}=127.0.0.1:{peer}:{election}\n", i + 1));
                }
            }
            let config = dir.path().join("zoo.cfg");
            std::fs::write(&config, cfg).map_err(io_err("write zoo.cfg"))?;
            members.push(ZkMember {
                process: None,
                dir,
                id,
                client_port,
                config,
            });
        }
        for m in members.iter_mut() {
            m.launch()?;
        }
        let deadline = Instant::now() + START_TIMEOUT;
        let mut zk = ZooKeeper { members };
        blocking(|| {
            zk.members
                .iter_mut()
                .try_for_each(|m| m.wait_ready(deadline))
        })?;
        Ok(zk)
    }

    /// The connect string for clients: `127.0.0.1:p1,127.0.0.1:p2,…`.
    pub fn connect_string(&self) -> String {
        self.members
            .iter()
            .map(|m| m.addr())
            .collect::<Vec<_>>()
            .join(",")
    }

    /// The members, in `myid` order.
    pub fn members(&self) -> &[ZkMember] {
        &self.members
    }

    /// Member `i` (0-based) for faults.
    pub fn member_mut(&mut self, i: usize) -> &mut ZkMember {
        &mut self.members[i]
    }

    /// Index of the current leader (for an ensemble) or 0 (standalone).
    pub fn leader(&self) -> Option<usize> {
        if self.members.len() == 1 {
            return Some(0);
        }
        self.members
            .iter()
            .position(|m| m.mode().as_deref() == Some("leader"))
    }

    /// A connected client with the given session timeout.
    pub async fn client(&self, session_timeout: Duration) -> Result<zookeeper_client::Client> {
        let client = zookeeper_client::Client::connector()
            .with_session_timeout(session_timeout)
            .with_connection_timeout(Duration::from_secs(5))
            .connect(&self.connect_string())
            .await?;
        Ok(client)
    }
}
