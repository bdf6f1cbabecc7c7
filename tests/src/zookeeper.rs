//! Real ZooKeeper servers from Debian's `zookeeper` package, run with java directly: a standalone
//! server or an ensemble, with a short tickTime so session expiry is quick in tests.
//!
//! An ensemble may have observers (non-voting members that serve clients and forward writes to the
//! leader), optionally placed at a second site that reaches the voters only through
//! [`FaultProxy`] links, so a test can put a WAN, a stall or a cut between the sites.
//!
//! How the site links work: every ZooKeeper connection between an observer and a voter is opened by
//! the observer. On the quorum port the learner always connects to the leader. On the election port
//! ZooKeeper keeps only connections opened by the larger server id and answers a connection from a
//! smaller id by connecting back; observers get the largest ids, so a voter's attempt to reach an
//! observer is dropped and the observer connects back. Hence only the observers' configs point at
//! proxies (one per voter quorum port and one per voter election port); the voters' configs name
//! the observers' real ports. Client ports are never proxied.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::error::{io_err, HarnessError, Result};
use crate::fault_proxy::{FaultProxy, Wan};
use crate::ports::free_port;
use crate::process::{find_program, ManagedProcess, TestDir};

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
    observer: bool,
    config: PathBuf,
}

impl ZkMember {
    /// The member's `myid` (1-based).
    pub fn id(&self) -> u32 {
        self.id
    }

    /// Whether it was configured as an observer (a non-voting member).
    pub fn is_observer(&self) -> bool {
        self.observer
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
    /// (`standalone`, `leader`, `follower` or `observer`), or `None` while it does not serve.
    pub fn mode(&self) -> Option<String> {
        let reply = four_letter(self.client_port, "srvr").ok()?;
        reply
            .lines()
            .find_map(|l| l.strip_prefix("Mode: ").map(|m| m.trim().to_string()))
    }

    /// The server's `mntr` four-letter word as a map (`zk_server_state`, `zk_packets_received`, …).
    /// Fails while the server is down or does not serve clients (not in a quorum).
    pub fn mntr(&self) -> Result<BTreeMap<String, String>> {
        let what = format!("mntr on zookeeper:{}", self.client_port);
        let reply = four_letter(self.client_port, "mntr").map_err(io_err(what.clone()))?;
        let map: BTreeMap<String, String> = reply
            .lines()
            .filter_map(|l| l.split_once('\t'))
            .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
            .collect();
        if map.is_empty() {
            return Err(HarnessError::Command {
                what,
                detail: reply.trim().to_string(),
            });
        }
        Ok(map)
    }

    /// The requests other than pings each session connected to this member has sent so far, by
    /// session id: its last client xid from the `cons` four-letter word (`lcxid=0x…`; a ping
    /// carries no xid of its own). Unlike `zk_packets_received`, it does not grow with time.
    pub fn session_requests(&self) -> Result<BTreeMap<i64, i64>> {
        let what = format!("cons on zookeeper:{}", self.client_port);
        let reply = four_letter(self.client_port, "cons").map_err(io_err(what))?;
        let hex = |field: &str, key: &str| {
            field
                .trim()
                .strip_prefix(key)
                .and_then(|v| i64::from_str_radix(v.trim_start_matches("0x"), 16).ok())
        };
        Ok(reply
            .lines()
            .filter_map(|line| {
                let fields: Vec<&str> = line.split([',', '(', ')']).collect();
                let sid = fields.iter().find_map(|f| hex(f, "sid="))?;
                let lcxid = fields.iter().find_map(|f| hex(f, "lcxid="))?;
                Some((sid, lcxid))
            })
            .collect())
    }

    /// Whether session `session_id` (as the client reports it) has a connection to this member,
    /// from the `cons` four-letter word (`sid=0x…` per connection). False while the member is down.
    pub fn serves_session(&self, session_id: i64) -> bool {
        let Ok(reply) = four_letter(self.client_port, "cons") else {
            return false;
        };
        let want = format!("sid={:#x}", session_id);
        reply
            .split([',', ']', ')', '('])
            .any(|field| field.trim() == want)
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
        HarnessError::not_ready(
            format!("ZooKeeper member {} on port {}", self.id, self.client_port),
            reason,
            self.log_path(),
        )
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

/// A ZooKeeper service: one standalone server or an ensemble. Dropping it kills every member and
/// stops its site links.
#[derive(Debug)]
pub struct ZooKeeper {
    members: Vec<ZkMember>,
    /// Proxies the observers use to reach the voters; empty unless started with remote observers.
    links: Vec<FaultProxy>,
}

/// Ports of one member: client, quorum (learner to leader) and leader election.
#[derive(Debug, Clone, Copy)]
struct MemberPorts {
    client: u16,
    quorum: u16,
    election: u16,
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
        Self::start_layout(n, 0, false).await
    }

    /// Starts `voters` voting members (ids `1..=voters`) and `observers` observers (the next ids),
    /// and waits until every member serves clients: voters as leader or followers, observers synced
    /// with the leader. Observers serve reads themselves and forward writes to the leader.
    pub async fn start_with_observers(voters: u32, observers: u32) -> Result<Self> {
        Self::start_layout(voters, observers, false).await
    }

    /// Like [`ZooKeeper::start_with_observers`], with the observers at a remote site: every
    /// connection between an observer and a voter goes through one of [`ZooKeeper::site_links`]
    /// (one proxy per voter quorum port and per voter election port), so the test can slow, stall
    /// or cut the link between the sites. Clients reach every member directly.
    pub async fn start_with_remote_observers(voters: u32, observers: u32) -> Result<Self> {
        Self::start_layout(voters, observers, true).await
    }

    async fn start_layout(voters: u32, observers: u32, remote_observers: bool) -> Result<Self> {
        let n = voters + observers;
        let ports: Vec<MemberPorts> = (0..n)
            .map(|_| MemberPorts {
                client: free_port(),
                quorum: free_port(),
                election: free_port(),
            })
            .collect();
        // What observers dial for each voter: its own ports, or proxies to them.
        let mut links = Vec::new();
        let mut seen_by_observers = ports.clone();
        if remote_observers {
            for p in seen_by_observers.iter_mut().take(voters as usize) {
                let quorum = FaultProxy::start(([127, 0, 0, 1], p.quorum).into())?;
                let election = FaultProxy::start(([127, 0, 0, 1], p.election).into())?;
                p.quorum = quorum.port();
                p.election = election.port();
                links.push(quorum);
                links.push(election);
            }
        }
        let mut members = Vec::new();
        for id in 1..=n {
            let client_port = ports[(id - 1) as usize].client;
            let observer = id > voters;
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
                if observer {
                    cfg.push_str("peerType=observer\n");
                }
                let view = if observer { &seen_by_observers } else { &ports };
                for (i, p) in view.iter().enumerate() {
                    let role = if i as u32 >= voters { ":observer" } else { "" };
                    cfg.push_str(&format!(
                        "server.{}=127.0.0.1:{}:{}{role}\n",
                        i + 1,
                        p.quorum,
                        p.election
                    ));
                }
            }
            let config = dir.path().join("zoo.cfg");
            std::fs::write(&config, cfg).map_err(io_err("write zoo.cfg"))?;
            members.push(ZkMember {
                process: None,
                dir,
                id,
                client_port,
                observer,
                config,
            });
        }
        for m in members.iter_mut() {
            m.launch()?;
        }
        let deadline = Instant::now() + START_TIMEOUT;
        let mut zk = ZooKeeper { members, links };
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

    /// The proxies between the remote observers and the voters (quorum then election port of each
    /// voter, in id order); empty unless started with [`ZooKeeper::start_with_remote_observers`].
    pub fn site_links(&self) -> &[FaultProxy] {
        &self.links
    }

    /// Puts `wan` on every site link (both directions as in `wan`: up is observer to voter).
    pub fn set_site_wan(&self, wan: Wan) {
        for link in &self.links {
            link.set_wan(wan);
        }
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
