//! Free loopback ports that do not clash between tests running in parallel, even in separate
//! processes (cargo-nextest runs each test in its own process).
//!
//! Ports are picked below the kernel's ephemeral range (so an outgoing connection cannot take a port
//! between our check and the server's bind) and reserved with a lock file naming the owning pid; a
//! reservation whose owner is dead is stale and reused.

use std::collections::HashSet;
use std::io::Write;
use std::net::TcpListener;
use std::path::PathBuf;
use std::sync::{Mutex, OnceLock};

const LOW: u16 = 20000;
const HIGH: u16 = 32000;

fn reserved() -> &'static Mutex<HashSet<u16>> {
    static SET: OnceLock<Mutex<HashSet<u16>>> = OnceLock::new();
    SET.get_or_init(|| Mutex::new(HashSet::new()))
}

fn lock_dir() -> PathBuf {
    std::env::temp_dir().join("cdc-harness-ports")
}

fn pid_alive(pid: i32) -> bool {
    // SAFETY: kill with signal 0 only checks for existence and permission.
    pid > 0 && unsafe { libc::kill(pid, 0) } == 0
}

fn try_reserve_file(port: u16) -> bool {
    let dir = lock_dir();
    let _ = std::fs::create_dir_all(&dir);
    let path = dir.join(format!("{port}.lock"));
    let me = std::process::id();
    for _ in 0..2 {
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
        {
            Ok(mut f) => {
                let _ = write!(f, "{me}");
                return true;
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                let owner = std::fs::read_to_string(&path)
                    .ok()
                    .and_then(|s| s.trim().parse::<i32>().ok());
                match owner {
                    Some(pid) if pid as u32 == me || pid_alive(pid) => return false,
                    // Stale (owner gone) or unreadable half-written file: take it over.
                    _ => {
                        let _ = std::fs::remove_file(&path);
                    }
                }
            }
            Err(_) => return false,
        }
    }
    false
}

fn seed() -> u64 {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    t ^ ((std::process::id() as u64) << 32)
}

/// Returns a loopback TCP port that is free now and reserved for this process: no other call in
/// this or another harness process returns it while this process lives.
pub fn free_port() -> u16 {
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let span = (HIGH - LOW) as u64;
    let start = seed().wrapping_add(COUNTER.fetch_add(7919, std::sync::atomic::Ordering::Relaxed));
    for i in 0..span {
        let port = LOW + ((start.wrapping_add(i * 13)) % span) as u16;
        let mut set = reserved().lock().unwrap_or_else(|p| p.into_inner());
        if set.contains(&port) {
            continue;
        }
        if TcpListener::bind(("127.0.0.1", port)).is_err() {
            continue;
        }
        if try_reserve_file(port) {
            set.insert(port);
            return port;
        }
    }
    // Fall back to the kernel's choice; practically unreachable.
    TcpListener::bind(("127.0.0.1", 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or(0)
}
