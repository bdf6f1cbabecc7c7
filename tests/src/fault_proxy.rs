//! A TCP proxy that fakes network faults between two endpoints: pass traffic, stall it (stop
//! forwarding while holding every socket open, like a silent half-open link), refuse new
//! connections, or cut (reset) all current connections. Independently of those modes it can emulate
//! a wide-area link ([`Wan`]): a one-way delay per direction, jitter and a bandwidth cap, switchable
//! while connections are open.
//!
//! It runs on its own thread and runtime, so it keeps working whatever the test's runtime does.
//!
//! Each direction of a connection is a small pipe: a reader task reads chunks and queues them with
//! the instant they entered the pipe; a writer task releases each chunk when its delay has passed and
//! the bandwidth cap allows, and writes it. Chunks are released in order, so bytes are never
//! reordered. At most [`MAX_IN_FLIGHT`] bytes per direction and connection wait in the pipe; when it
//! is full the reader stops reading, and TCP flow control pushes back on the sender.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{ReadHalf, WriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch, OwnedSemaphorePermit, Semaphore};

use crate::error::{io_err, Result};
use crate::ports::free_port;

/// Bytes that may wait inside the proxy per direction of one connection (the emulated link's
/// window). Throughput with a delay `d` is at most `MAX_IN_FLIGHT / d`.
pub const MAX_IN_FLIGHT: usize = 4 << 20;

/// Largest chunk read at once.
const CHUNK: usize = 64 * 1024;

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

/// A wide-area link between the proxy's clients and its upstream. The default is no delay, no
/// jitter and no cap: a plain local link.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Wan {
    /// One-way delay from the client to the upstream.
    pub delay_up: Duration,
    /// One-way delay from the upstream to the client.
    pub delay_down: Duration,
    /// Each chunk's delay moves by a uniform random amount in `-jitter..=jitter` (never below zero).
    /// A chunk is never released before the one read before it, so jitter does not reorder bytes.
    pub jitter: Duration,
    /// Bandwidth cap in bytes per second for each direction, shared by all connections through the
    /// proxy; `None` is unlimited.
    pub bytes_per_sec: Option<u64>,
}

impl Wan {
    /// A link with the same one-way delay both ways, no jitter and no cap.
    pub fn symmetric(one_way: Duration) -> Self {
        Self {
            delay_up: one_way,
            delay_down: one_way,
            ..Self::default()
        }
    }

    /// Whether this is a plain local link (no delay, jitter or cap).
    pub fn is_off(&self) -> bool {
        *self == Self::default()
    }

    fn delay(&self, dir: Dir) -> Duration {
        match dir {
            Dir::Up => self.delay_up,
            Dir::Down => self.delay_down,
        }
    }
}

/// Direction of traffic through the proxy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Dir {
    /// Client to upstream.
    Up,
    /// Upstream to client.
    Down,
}

/// Paces one direction of the link to a bandwidth: each piece reserves its transmission time after
/// the previous piece's (of any connection).
#[derive(Debug)]
struct Pacer {
    rate: u64,
    next_free: Instant,
}

impl Pacer {
    /// Reserves the link for `bytes` at `rate` bytes/s; returns when their transmission ends.
    fn reserve(&mut self, bytes: usize, rate: u64) -> Instant {
        let now = Instant::now();
        if self.rate != rate || self.next_free < now {
            // A new rate starts afresh; an idle link has no saved-up credit.
            self.rate = rate;
            self.next_free = now;
        }
        self.next_free += Duration::from_secs_f64(bytes as f64 / rate as f64);
        self.next_free
    }
}

struct Shared {
    mode: watch::Sender<ProxyMode>,
    wan: watch::Sender<Wan>,
    /// Pacers for client→upstream and upstream→client.
    pacers: [Mutex<Pacer>; 2],
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
            .field("wan", &self.wan())
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
        let (wan, _) = watch::channel(Wan::default());
        let (cuts, _) = watch::channel(0u64);
        let pacer = || {
            Mutex::new(Pacer {
                rate: 0,
                next_free: Instant::now(),
            })
        };
        let shared = Arc::new(Shared {
            mode,
            wan,
            pacers: [pacer(), pacer()],
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

    /// The current link emulation.
    pub fn wan(&self) -> Wan {
        *self.shared.wan.borrow()
    }

    /// Emulates a wide-area link from now on, also for open connections: bytes already inside the
    /// proxy are released by the new settings. Independent of the mode and of [`FaultProxy::cut`].
    pub fn set_wan(&self, wan: Wan) {
        self.shared.wan.send_replace(wan);
    }

    /// Sets the one-way delays (client→upstream, upstream→client), keeping jitter and bandwidth cap.
    pub fn set_latency(&self, up: Duration, down: Duration) {
        self.shared.wan.send_modify(|w| {
            w.delay_up = up;
            w.delay_down = down;
        });
    }

    /// Back to a plain local link: bytes waiting for their delay or for bandwidth go out at once.
    pub fn clear_wan(&self) {
        self.set_wan(Wan::default());
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
        let a = direction(cr, uw, Dir::Up, shared);
        let b = direction(ur, cw, Dir::Down, shared);
        tokio::select! {
            _ = cuts.changed() => {}
            _ = async { tokio::join!(a, b) } => return,
        }
    }
    reset(&client);
    reset(&up);
}

/// Bytes read from one side, waiting in the pipe to be written to the other.
struct Chunk {
    data: Vec<u8>,
    /// When the chunk entered the pipe; its delay counts from here.
    entered: Instant,
    /// Where in `-jitter..=jitter` this chunk's delay lies, in `-1.0..=1.0`.
    jitter: f64,
    /// Its share of the in-flight budget, returned when the chunk is written or dropped.
    _budget: OwnedSemaphorePermit,
}

/// Forwards one direction of a connection until the reading side ends, then half-closes the
/// writing side (after the bytes still in the pipe).
async fn direction(from: ReadHalf<'_>, to: WriteHalf<'_>, dir: Dir, shared: &Shared) {
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::join!(
        read_side(from, tx, shared.mode.subscribe()),
        write_side(to, rx, dir, shared),
    );
}

async fn read_side(
    mut from: ReadHalf<'_>,
    tx: mpsc::UnboundedSender<Chunk>,
    mut mode: watch::Receiver<ProxyMode>,
) {
    let budget = Arc::new(Semaphore::new(MAX_IN_FLIGHT));
    let mut rng = Rng::new();
    let mut buf = vec![0u8; CHUNK];
    loop {
        wait_not_stalled(&mut mode).await;
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => return, // dropping `tx` tells the writer to finish and shut down
            Ok(n) => n,
        };
        // n <= CHUNK, far below u32::MAX.
        let permit = tokio::select! {
            p = budget.clone().acquire_many_owned(n as u32) => match p {
                Ok(p) => p,
                Err(_) => return,
            },
            _ = tx.closed() => return,
        };
        let chunk = Chunk {
            data: buf[..n].to_vec(),
            entered: Instant::now(),
            jitter: rng.unit(),
            _budget: permit,
        };
        if tx.send(chunk).is_err() {
            return;
        }
    }
}

async fn write_side(
    mut to: WriteHalf<'_>,
    mut rx: mpsc::UnboundedReceiver<Chunk>,
    dir: Dir,
    shared: &Shared,
) {
    let mut mode = shared.mode.subscribe();
    let mut wan = shared.wan.subscribe();
    let mut last_release: Option<Instant> = None;
    while let Some(chunk) = rx.recv().await {
        // Wait for the chunk's release, recomputed whenever the link settings change.
        loop {
            let link = *wan.borrow_and_update();
            let shift = link.jitter.mul_f64(chunk.jitter.abs());
            let delay = if chunk.jitter >= 0.0 {
                link.delay(dir) + shift
            } else {
                link.delay(dir).saturating_sub(shift)
            };
            let mut release = chunk.entered + delay;
            if let Some(last) = last_release {
                release = release.max(last);
            }
            if release <= Instant::now() {
                last_release = Some(release);
                break;
            }
            tokio::select! {
                _ = tokio::time::sleep_until(release.into()) => {
                    last_release = Some(release);
                    break;
                }
                changed = wan.changed() => if changed.is_err() { return },
            }
        }
        if write_paced(&mut to, &chunk.data, dir, shared, &mut mode, &wan)
            .await
            .is_err()
        {
            return;
        }
    }
    let _ = to.shutdown().await;
}

/// Writes `data` within the link's bandwidth cap, holding it while the proxy is stalled.
async fn write_paced(
    to: &mut WriteHalf<'_>,
    mut data: &[u8],
    dir: Dir,
    shared: &Shared,
    mode: &mut watch::Receiver<ProxyMode>,
    wan: &watch::Receiver<Wan>,
) -> std::io::Result<()> {
    while !data.is_empty() {
        wait_not_stalled(mode).await;
        let rate = wan.borrow().bytes_per_sec.filter(|r| *r > 0);
        let Some(rate) = rate else {
            return to.write_all(data).await;
        };
        // Pieces of about 20 ms of transmission keep the pace smooth.
        let piece = data.len().min((rate / 50).clamp(1, 16 * 1024) as usize);
        let done = shared.pacers[dir as usize]
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .reserve(piece, rate);
        tokio::time::sleep_until(done.into()).await;
        to.write_all(&data[..piece]).await?;
        data = &data[piece..];
    }
    Ok(())
}

/// A small xorshift generator for jitter; quality does not matter, only spread.
struct Rng(u64);

impl Rng {
    fn new() -> Self {
        static SEQ: AtomicU64 = AtomicU64::new(0x9E37_79B9_7F4A_7C15);
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
        Self((t ^ SEQ.fetch_add(0x9E37_79B9_7F4A_7C15, Ordering::Relaxed)) | 1)
    }

    /// A number in `-1.0..=1.0`.
    fn unit(&mut self) -> f64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 11) as f64 / (1u64 << 52) as f64 - 1.0
    }
}
