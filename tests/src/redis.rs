//! A real Redis server per test from Debian's `redis-server` package: own directory, free loopback
//! port, append-only file fsynced on every write (so data survives `kill -9`), and a minimal RESP
//! client so tests can look at keys without a Redis crate.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::error::{io_err, HarnessError, Result};
use crate::ports::free_port;
use crate::process::{find_program, tail, ManagedProcess, TestDir};

const START_TIMEOUT: Duration = Duration::from_secs(60);
/// How long [`Redis::command`] waits for a reply (a paused server never answers).
const COMMAND_TIMEOUT: Duration = Duration::from_secs(10);

/// A RESP2 reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RespValue {
    /// `+OK`
    Simple(String),
    /// `-ERR …`: the server refused the command.
    Error(String),
    /// `:42`
    Integer(i64),
    /// `$n` bulk string; `None` for the null bulk string (`$-1`, e.g. GET of a missing key).
    Bulk(Option<Vec<u8>>),
    /// `*n` array; `None` for the null array (`*-1`).
    Array(Option<Vec<RespValue>>),
}

impl RespValue {
    /// The integer of an integer reply.
    pub fn as_int(&self) -> Option<i64> {
        match self {
            RespValue::Integer(i) => Some(*i),
            _ => None,
        }
    }

    /// The text of a simple string or a (non-null, UTF-8) bulk string.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            RespValue::Simple(s) => Some(s),
            RespValue::Bulk(Some(b)) => std::str::from_utf8(b).ok(),
            _ => None,
        }
    }

    /// Whether this is a null bulk string or null array.
    pub fn is_null(&self) -> bool {
        matches!(self, RespValue::Bulk(None) | RespValue::Array(None))
    }
}

/// Parses one RESP value from the start of `buf`: `Ok(None)` when more bytes are needed, otherwise
/// the value and how many bytes it took.
fn parse(buf: &[u8]) -> std::result::Result<Option<(RespValue, usize)>, String> {
    let Some(end) = buf.windows(2).position(|w| w == b"\r\n") else {
        return Ok(None);
    };
    let Some((&kind, line)) = buf[..end].split_first() else {
        return Err("empty line".into());
    };
    let line = String::from_utf8_lossy(line).into_owned();
    let after = end + 2;
    let int = |s: &str| {
        s.parse::<i64>()
            .map_err(|_| format!("bad length or integer {s:?}"))
    };
    Ok(Some(match kind {
        b'+' => (RespValue::Simple(line), after),
        b'-' => (RespValue::Error(line), after),
        b':' => (RespValue::Integer(int(&line)?), after),
        b'$' => {
            let n = int(&line)?;
            if n < 0 {
                (RespValue::Bulk(None), after)
            } else {
                let n = n as usize;
                if buf.len() < after + n + 2 {
                    return Ok(None);
                }
                if &buf[after + n..after + n + 2] != b"\r\n" {
                    return Err("bulk string not terminated by CRLF".into());
                }
                (
                    RespValue::Bulk(Some(buf[after..after + n].to_vec())),
                    after + n + 2,
                )
            }
        }
        b'*' => {
            let n = int(&line)?;
            if n < 0 {
                (RespValue::Array(None), after)
            } else {
                let mut items = Vec::with_capacity(n.min(1024) as usize);
                let mut at = after;
                for _ in 0..n {
                    match parse(&buf[at..])? {
                        Some((v, used)) => {
                            items.push(v);
                            at += used;
                        }
                        None => return Ok(None),
                    }
                }
                (RespValue::Array(Some(items)), at)
            }
        }
        other => return Err(format!("unknown reply type byte {:?}", other as char)),
    }))
}

fn encode(args: &[&str]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for a in args {
        out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
        out.extend_from_slice(a.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// Sends one command on a fresh connection and reads its reply.
async fn roundtrip(port: u16, args: &[&str]) -> Result<RespValue> {
    let what = format!("redis:{port} {}", args.first().copied().unwrap_or(""));
    let exchange = async {
        let mut s = TcpStream::connect(("127.0.0.1", port))
            .await
            .map_err(io_err(format!("{what}: connect")))?;
        s.write_all(&encode(args))
            .await
            .map_err(io_err(format!("{what}: send")))?;
        let mut buf = Vec::new();
        let mut chunk = [0u8; 4096];
        loop {
            match parse(&buf) {
                Ok(Some((v, _))) => return Ok(v),
                Ok(None) => {}
                Err(detail) => {
                    return Err(HarnessError::Command {
                        what: what.clone(),
                        detail: format!("bad RESP reply: {detail}"),
                    })
                }
            }
            let n = s
                .read(&mut chunk)
                .await
                .map_err(io_err(format!("{what}: read reply")))?;
            if n == 0 {
                return Err(HarnessError::Io {
                    context: format!("{what}: read reply"),
                    source: std::io::ErrorKind::UnexpectedEof.into(),
                });
            }
            buf.extend_from_slice(&chunk[..n]);
        }
    };
    match tokio::time::timeout(COMMAND_TIMEOUT, exchange).await {
        Ok(r) => r,
        Err(_) => Err(HarnessError::Io {
            context: format!("{what}: no reply within {COMMAND_TIMEOUT:?}"),
            source: std::io::ErrorKind::TimedOut.into(),
        }),
    }
}

/// A running Redis server. Dropping it kills the server and removes its directory (kept on panic).
#[derive(Debug)]
pub struct Redis {
    // Field order matters: the process is killed before its directory is removed.
    process: Option<ManagedProcess>,
    dir: TestDir,
    port: u16,
    redis_server: PathBuf,
}

impl Redis {
    /// Starts a server on a free loopback port with append-only persistence (`appendfsync always`).
    pub async fn start() -> Result<Self> {
        let redis_server = find_program("redis-server", "redis-server")?;
        let dir = TestDir::new("redis")?;
        std::fs::create_dir_all(dir.path().join("data")).map_err(io_err("create redis dir"))?;
        let mut redis = Redis {
            process: None,
            dir,
            port: 0,
            redis_server,
        };
        let mut last = None;
        for _ in 0..3 {
            redis.port = free_port();
            match redis.launch().await {
                Ok(()) => return Ok(redis),
                Err(e) => {
                    if !tail(&redis.log_path(), 30).contains("Address already in use") {
                        return Err(e);
                    }
                    last = Some(e);
                }
            }
        }
        Err(last.unwrap_or(HarnessError::NotRunning("redis-server".into())))
    }

    fn command_line(&self) -> Command {
        let mut cmd = Command::new(&self.redis_server);
        cmd.arg("--bind")
            .arg("127.0.0.1")
            .arg("--port")
            .arg(self.port.to_string())
            .arg("--dir")
            .arg(self.datadir())
            .arg("--save")
            .arg("")
            .arg("--appendonly")
            .arg("yes")
            .arg("--appendfsync")
            .arg("always")
            .arg("--protected-mode")
            .arg("no")
            .arg("--daemonize")
            .arg("no");
        cmd
    }

    async fn launch(&mut self) -> Result<()> {
        self.process = Some(ManagedProcess::start(
            format!("redis-server:{}", self.port),
            self.command_line(),
            &self.log_path(),
        )?);
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Some(p) = self.process.as_mut() {
                if let Some(status) = p.try_exit_status() {
                    self.process = None;
                    return Err(self.not_ready(format!("redis-server exited with {status}")));
                }
            }
            // While it loads the append-only file the server answers `-LOADING …`.
            let reply = roundtrip(self.port, &["PING"]).await;
            match reply {
                Ok(RespValue::Simple(s)) if s == "PONG" => return Ok(()),
                _ if Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(50)).await
                }
                other => {
                    return Err(self.not_ready(format!(
                        "no PONG after {START_TIMEOUT:?}: last reply {other:?}"
                    )))
                }
            }
        }
    }

    fn not_ready(&self, reason: String) -> HarnessError {
        HarnessError::not_ready(
            format!("Redis on port {}", self.port),
            reason,
            self.log_path(),
        )
    }

    /// Loopback port the server listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `127.0.0.1:port`.
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// `redis://127.0.0.1:port/`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// The server's log (its standard output and error).
    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("redis.log")
    }

    /// The server's `--dir`, holding the append-only files.
    pub fn datadir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// The directory holding data and log.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The server's pid while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.process.as_ref().and_then(|p| p.pid())
    }

    /// Whether the server process is running (paused counts as running).
    pub fn is_running(&mut self) -> bool {
        self.process.as_mut().is_some_and(|p| p.is_running())
    }

    /// Kills the server with SIGKILL; it stays down until [`Redis::start_again`].
    pub fn kill9(&mut self) -> Result<()> {
        if let Some(mut p) = self.process.take() {
            p.kill9()?;
        }
        Ok(())
    }

    /// Starts a killed server again on the same port and directory; it reloads the append-only
    /// file, so every acknowledged write is back. Does nothing if it is running.
    pub async fn start_again(&mut self) -> Result<()> {
        if self.process.is_some() {
            return Ok(());
        }
        self.launch().await
    }

    /// Freezes the server with SIGSTOP: connections are accepted by the kernel but nothing is
    /// answered.
    pub fn pause(&mut self) -> Result<()> {
        self.process_mut()?.pause()
    }

    /// Continues a server frozen by [`Redis::pause`].
    pub fn resume(&mut self) -> Result<()> {
        self.process_mut()?.resume()
    }

    fn process_mut(&mut self) -> Result<&mut ManagedProcess> {
        let port = self.port;
        self.process
            .as_mut()
            .ok_or_else(|| HarnessError::NotRunning(format!("redis-server:{port}")))
    }

    /// Sends one command (e.g. `&["SET", "k", "v"]`) on a fresh connection and returns the reply.
    /// An error reply from Redis is `Ok(RespValue::Error(..))`; `Err` means no valid reply came
    /// (connection refused, server down, or no reply within 10 s, e.g. while paused).
    pub async fn command(&self, args: &[&str]) -> Result<RespValue> {
        roundtrip(self.port, args).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_reply_type_and_waits_for_more_bytes() {
        let p = |b: &[u8]| parse(b).unwrap();
        assert_eq!(p(b"+OK\r\n"), Some((RespValue::Simple("OK".into()), 5)));
        assert_eq!(
            p(b"-ERR x\r\n"),
            Some((RespValue::Error("ERR x".into()), 8))
        );
        assert_eq!(p(b":-3\r\n"), Some((RespValue::Integer(-3), 5)));
        assert_eq!(p(b"$-1\r\n"), Some((RespValue::Bulk(None), 5)));
        assert_eq!(
            p(b"$2\r\nhi\r\n"),
            Some((RespValue::Bulk(Some(b"hi".to_vec())), 8))
        );
        assert_eq!(p(b"*-1\r\n"), Some((RespValue::Array(None), 5)));
        let arr = b"*2\r\n:1\r\n$1\r\na\r\n";
        assert_eq!(
            p(arr),
            Some((
                RespValue::Array(Some(vec![
                    RespValue::Integer(1),
                    RespValue::Bulk(Some(b"a".to_vec()))
                ])),
                arr.len()
            ))
        );
        for cut in 0..arr.len() {
            assert_eq!(p(&arr[..cut]), None, "prefix of {cut} bytes");
        }
        assert_eq!(p(b"$5\r\nab"), None);
        assert!(parse(b"?x\r\n").is_err());
        assert_eq!(encode(&["GET", "k"]), b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n");
    }
}
