//! otter-node processes for the integration tests: started with a test ZooKeeper, killed,
//! paused, and their logs read.
#![allow(dead_code)]

pub mod shop;
pub mod sites;
pub mod wan;

use std::time::{Duration, Instant};

use harness::{ManagedProcess, TestDir, ZooKeeper};

/// The nodes' grace delay before a standby takes over, ms.
pub const GRACE_MS: u64 = 2_000;
/// The nodes' ZooKeeper session timeout, ms.
pub const SESSION_MS: u64 = 2_000;

/// One otter-node process and its log.
pub struct Node {
    process: Option<ManagedProcess>,
    pub log: std::path::PathBuf,
}

impl Node {
    pub fn start(dir: &TestDir, id: u32, zk: &ZooKeeper) -> Node {
        Self::start_with_env(dir, id, zk, &[])
    }

    pub fn start_with_env(dir: &TestDir, id: u32, zk: &ZooKeeper, env: &[(&str, &str)]) -> Node {
        Self::start_full(
            dir,
            id,
            &zk.connect_string(),
            "127.0.0.1:0",
            None,
            env,
            GRACE_MS,
        )
    }

    /// A node whose standby roles wait `grace_ms` after a holder vanished.
    pub fn start_with_grace(dir: &TestDir, id: u32, zk: &ZooKeeper, grace_ms: u64) -> Node {
        Self::start_full(
            dir,
            id,
            &zk.connect_string(),
            "127.0.0.1:0",
            None,
            &[],
            grace_ms,
        )
    }

    /// A node on a fixed `--http` address that others reach at `advertise` (e.g. through a fault
    /// proxy standing for the link between two sites).
    pub fn start_at(dir: &TestDir, id: u32, zk: &ZooKeeper, http: &str, advertise: &str) -> Node {
        Self::start_full(
            dir,
            id,
            &zk.connect_string(),
            http,
            Some(advertise),
            &[],
            GRACE_MS,
        )
    }

    /// A node in one site of several: `zk_servers` is its own `--zk` string (e.g. its site's
    /// observers first, then the voters across the WAN), `http`/`advertise` as in
    /// [`Node::start_at`].
    pub fn start_in_site(
        dir: &TestDir,
        id: u32,
        zk_servers: &str,
        http: &str,
        advertise: &str,
    ) -> Node {
        Self::start_full(dir, id, zk_servers, http, Some(advertise), &[], GRACE_MS)
    }

    fn start_full(
        dir: &TestDir,
        id: u32,
        zk_servers: &str,
        http: &str,
        advertise: Option<&str>,
        env: &[(&str, &str)],
        grace_ms: u64,
    ) -> Node {
        let log = dir.path().join(format!("node-{id}.log"));
        let data = dir.path().join(format!("data-{id}"));
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_otter-node"));
        cmd.args(["--id", &id.to_string(), "--zk", zk_servers, "--http", http]);
        if let Some(a) = advertise {
            cmd.args(["--advertise", a]);
        }
        cmd.arg("--data-dir")
            .arg(&data)
            .args([
                "--zk-session-timeout-ms",
                &SESSION_MS.to_string(),
                "--grace-ms",
                &grace_ms.to_string(),
            ])
            // `OTTER_NODE_LOG` (say `info,otter_node=debug`) when a failure needs more detail.
            .env(
                "RUST_LOG",
                std::env::var("OTTER_NODE_LOG").unwrap_or_else(|_| "info".to_string()),
            )
            .envs(env.iter().copied());
        Node {
            process: Some(ManagedProcess::start(format!("otter-node-{id}"), cmd, &log).unwrap()),
            log,
        }
    }

    /// Graceful stop (SIGTERM), waiting up to 10 s for the process to exit.
    pub fn terminate(&mut self) {
        if let Some(mut p) = self.process.take() {
            p.terminate(Duration::from_secs(10)).unwrap();
        }
    }

    pub fn kill9(&mut self) {
        if let Some(mut p) = self.process.take() {
            p.kill9().unwrap();
        }
    }

    pub fn pause(&mut self) {
        if let Some(p) = self.process.as_mut() {
            p.pause().unwrap();
        }
    }

    pub fn resume(&mut self) {
        if let Some(p) = self.process.as_mut() {
            p.resume().unwrap();
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits until the node's log contains `text` (at most `limit`; the logs of `all` on failure).
    pub async fn wait_log(&self, text: &str, limit: Duration, all: &[&Node]) {
        let t = Instant::now();
        while !self.log().contains(text) {
            if t.elapsed() > limit {
                for n in all {
                    eprintln!("---- {}\n{}", n.log.display(), n.log());
                }
                panic!(
                    "{} never logged {text:?} within {limit:?}",
                    self.log.display()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The `--http` address the node bound (from its "otter-node ready" line).
    pub fn http(&self) -> Option<String> {
        let log = self.log();
        let line = log.lines().find(|l| l.contains("otter-node ready"))?;
        let addr = line
            .split_whitespace()
            .find_map(|w| w.strip_prefix("http="))?;
        Some(addr.to_string())
    }
}
