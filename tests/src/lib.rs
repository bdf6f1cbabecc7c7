//! Test harness: real MariaDB, ZooKeeper, Redis and canal-server processes, and a TCP fault proxy,
//! for integration tests.
//!
//! Every server runs as a local process from Debian's packages (`mariadb-server`, `zookeeper`,
//! `redis-server`), in its
//! own temporary directory, on a free loopback port. Handles own their processes: dropping a handle
//! kills the process (SIGKILL) and waits for it, also while a test unwinds from a panic. Children are
//! additionally tied to the harness with `PR_SET_PDEATHSIG`, so even a test binary killed with -9 does
//! not leave servers behind. When a test panics, the directories holding the servers' logs are kept
//! and their paths printed; set `CDC_HARNESS_KEEP=1` to keep them always.
//!
//! Main types:
//! - [`MariaDb`]: a binlog-enabled (ROW, FULL image, GTID strict) MariaDB server with SQL helpers and
//!   process faults (restart, kill -9, SIGSTOP/SIGCONT).
//! - [`ZooKeeper`]: a standalone server or a 3-node ensemble with per-member faults, or voters plus
//!   observers, optionally at a remote site behind [`FaultProxy`] links.
//! - [`FaultProxy`]: a TCP proxy that passes, stalls or cuts connections on command, and emulates a
//!   wide-area link ([`Wan`]: delay, jitter, bandwidth cap).
//! - [`Redis`]: a Redis server (`redis-server` package) with an fsynced append-only file, process
//!   faults, and a minimal RESP client ([`Redis::command`]).
//! - [`TestCerts`]: a CA, server and client certificates made with `openssl`, for TLS tests.
//! - [`Kafka`]: a Kafka-protocol broker (`tansu` from crates.io, SQLite storage) with stop/restart.
//! - [`CanalServer`]: the `canal-server` binary against a [`MariaDb`], with process faults;
//!   [`canal_server_bin`] and [`otter_node_bin`] build those binaries for tests of other crates.
//! - [`bench`]: helpers shared by the benchmark programs (`/proc` CPU time, the other-work watcher,
//!   machine and tree lines, the docs/PERFORMANCE.md section writer).
#![deny(missing_docs)]

pub mod bench;
mod canal_server;
mod error;
mod fault_proxy;
mod kafka;
mod mariadb;
mod ports;
mod process;
mod rabbitmq;
mod redis;
mod tls;
mod zookeeper;

pub use canal_server::{
    canal_server_bin, http_get, http_request, http_request_with, otter_node_bin, CanalServer,
};
pub use error::{HarnessError, Result};
pub use fault_proxy::{FaultProxy, ProxyMode, Wan, MAX_IN_FLIGHT};
pub use kafka::{tansu_bin, Kafka};
pub use mariadb::{BinlogPosition, MariaDb, MariaDbOptions, ReplicationUser, RowMetadata};
pub use ports::free_port;
pub use process::{ManagedProcess, TestDir};
pub use rabbitmq::RabbitMq;
pub use redis::{Redis, RespValue};
pub use tls::TestCerts;
pub use zookeeper::{ZkMember, ZooKeeper};

/// Installs a `tracing` subscriber that writes to the test's captured output (once per process).
pub fn init_tracing() {
    use std::sync::Once;
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let filter = std::env::var("RUST_LOG").unwrap_or_else(|_| "info".to_string());
        let _ = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_test_writer()
            .try_init();
    });
}
