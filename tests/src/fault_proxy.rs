//! A TCP proxy that fakes network faults between two endpoints: pass traffic, stall it (stop
//! forwarding while holding every socket open, like a silent half-open link), refuse new
//! connections, or cut (reset) all current connections.
//!
//! It runs on its own thread and runtime, so it keeps working whatever the test's runtime does.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use crate::error::{io_err, Result};
use crate::ports::free_port;

/// What the proxy does with traffic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProxyMode {
    /// Forward bytes both ways.
    Pass,
    /// Forward nothing; accept new connections but do not connect them upstream; keep sockets open.
    Stall,
    /// Reset new connections at once; current connections keep their state.
    Refuse,
}

struct Shared {
    mode: watch::Sender<ProxyMode>,
    /// Bumped by `cut`: every connection that sees a change resets both its sockets.
    cuts: watch::Sender<u64>,
    open: AtomicUsize,
    accepted: AtomicUsize,
}

/// A running proxy from a local loopback port to an upstream address. Dropping it stops the proxy
/// and closes every connection.
pub struct FaultProxy {
    addr: SocketAddr,
    shared: Arc<Shared>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl std::fmt::Debug for FaultProxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FaultProxy")
            .field("addr", &self.addr)
            .field("mode", &self.mode())
            .finish()
    }
}

impl FaultProxy {
    /// Starts a proxy on a free loopback port forwarding to `upstream`, in [`ProxyMode::Pass`].
    pub fn start(upstream: SocketAddr) -> Result<Self> {
        let port = free_port();
        let std_listener = std::net::TcpListener::bind(("127.0.0.1", port))
            .map_err(io_err(format!("bind fault proxy on {port}")))?;
        std_listener
            .set_nonblocking(true)
            .map_err(io_err("set proxy listener non-blocking"))?;
        let addr = std_listener
            .local_addr()
            .map_err(io_err("proxy local addr"))?;
        let (mode, _) = watch::channel(ProxyMode::Pass);
        let (cuts, _) = watch::channel(0u64);
        let shared = Arc::new(Shared {
            mode,
            cuts,
            open: AtomicUsize::new(0),
            accepted: AtomicUsize::new(0),
        });
        let (tx, rx) = tokio::sync::oneshot::channel();
        let thread_shared = shared.clone();
        let thread = std::thread::Builder::new()
            .name(format!("fault-proxy-{port}"))
            .spawn(move || {
                let rt = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt,
                    Err(e) => {
                        eprintln!("fault proxy runtime: {e}");
                        return;
                    }
                };
                rt.block_on(async move {
                    let listener = match TcpListener::from_std(std_listener) {
                        Ok(l) => l,
                        Err(e) => {
                            eprintln!("fault proxy listener: {e}");
                            return;
                        }
                    };
                    tokio::select! {
                        _ = accept_loop(listener, upstream, thread_shared) => {}
                        _ = rx => {}
                    }
                });
                // Dropping the runtime drops every connection task and closes its sockets.
            })
            .map_err(io_err("spawn fault proxy thread"))?;
        Ok(Self {
            addr,
            shared,
            shutdown: Some(tx),
            thread: Some(thread),
        })
    }

    /// The proxy's listening address; point the client here.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The proxy's port.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// The current mode.
    pub fn mode(&self) -> ProxyMode {
        *self.shared.mode.borrow()
    }

    /// Sets the mode. Going back to [`ProxyMode::Pass`] from a stall releases the held bytes.
    pub fn set_mode(&self, mode: ProxyMode) {
        self.shared.mode.send_replace(mode);
    }

    /// Forward traffic normally.
    pub fn pass(&self) {
        self.set_mode(ProxyMode::Pass)
    }

    /// Stop forwarding while keeping all sockets open.
    pub fn stall(&self) {
        self.set_mode(ProxyMode::Stall)
    }

    /// Reset new connections.
    pub fn refuse(&self) {
        self.set_mode(ProxyMode::Refuse)
    }

    /// Resets (TCP RST) every current connection on both sides. The mode is unchanged, so new
    /// connections are accepted again in `Pass` mode.
    pub fn cut(&self) {
        self.shared.cuts.send_modify(|n| *n += 1);
    }

    /// Connections currently open through the proxy.
    pub fn open_connections(&self) -> usize {
        self.shared.open.load(Ordering::SeqCst)
    }

    /// Connections accepted since start.
    pub fn accepted_connections(&self) -> usize {
        self.shared.accepted.load(Ordering::SeqCst)
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

async fn accept_loop(listener: TcpListener, upstream: SocketAddr, shared: Arc<Shared>) {
    loop {
        let (client, _) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = %e, "fault proxy accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                continue;
            }
        };
        shared.accepted.fetch_add(1, Ordering::SeqCst);
        if *shared.mode.borrow() == ProxyMode::Refuse {
            reset(&client);
            continue;
        }
        let shared = shared.clone();
        tokio::spawn(async move {
            shared.open.fetch_add(1, Ordering::SeqCst);
            handle(client, upstream, &shared).await;
            shared.open.fetch_sub(1, Ordering::SeqCst);
        });
    }
}

fn reset(stream: &TcpStream) {
    let _ = socket2::SockRef::from(stream).set_linger(Some(std::time::Duration::ZERO));
}

async fn wait_not_stalled(mode: &mut watch::Receiver<ProxyMode>) {
    let _ = mode.wait_for(|m| *m != ProxyMode::Stall).await;
}

async fn handle(mut client: TcpStream, upstream: SocketAddr, shared: &Shared) {
    let mut cuts = shared.cuts.subscribe();
    cuts.mark_unchanged();
    let mut mode = shared.mode.subscribe();
    let mut up = tokio::select! {
        _ = cuts.changed() => { reset(&client); return; }
        up = async {
            wait_not_stalled(&mut mode).await;
            TcpStream::connect(upstream).await
        } => match up {
            Ok(up) => up,
            Err(_) => { reset(&client); return; }
        }
    };
    let _ = client.set_nodelay(true);
    let _ = up.set_nodelay(true);
    {
        let (cr, cw) = client.split();
        let (ur, uw) = up.split();
        let a = pump(cr, uw, shared.mode.subscribe());
        let b = pump(ur, cw, shared.mode.subscribe());
        tokio::select! {
            _ = cuts.changed() => {}
            _ = async { tokio::join!(a, b) } => return,
        }
    }
    reset(&client);
    reset(&up);
}

async fn pump(
    mut from: tokio::net::tcp::ReadHalf<'_>,
    mut to: tokio::net::tcp::WriteHalf<'_>,
    mut mode: watch::Receiver<ProxyMode>,
) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        wait_not_stalled(&mut mode).await;
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => {
                let _ = to.shutdown().await;
                return;
            }
            Ok(n) => n,
        };
        wait_not_stalled(&mut mode).await;
        if to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}
