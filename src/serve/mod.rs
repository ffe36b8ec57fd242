//! `tcpkit serve`: the tutorial's hello server, made real.
//!
//! The accept loop applies the connection limit, spawns one task per
//! connection ([`conn`]) and writes one log line per closed connection with its
//! 4-tuple. Work is spread over worker threads, each a current-thread runtime
//! that accepts on its own handle of every listener, so a connection lives on
//! one thread from accept to close with no cross-thread wake-ups.
//!
//! Shutdown (SIGINT/SIGTERM): accepting stops at once, once the clients
//! already in the accept queue are taken; every connection answers
//! the lines that had reached the host, then closes; `--shutdown-timeout`
//! bounds the whole of it. A second signal exits at once.
//!
//! Not for: framing or the protocol (see [`framing`], [`protocol`]).

pub mod conn;
pub mod framing;
pub mod protocol;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use thiserror::Error;
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{info, warn};

use crate::Failure;
use crate::cli::ServeArgs;
use crate::net::listen::{ListenError, bind_listener, raise_open_file_limit};
use conn::{CloseReason, ConnConfig, ConnStats};
use protocol::Protocol;

/// File descriptors kept back from the open-file limit for the server itself
/// (listeners, the runtime's epoll and eventfds, stdio, log files) and for
/// accepting clients over the limit just long enough to tell them `busy`.
pub const FD_RESERVE: u64 = 64;

/// Longest back-off between retries after an accept error such as EMFILE.
pub const ACCEPT_BACKOFF_MAX: Duration = Duration::from_secs(1);

/// Timeouts are capped at about a century, so deadlines computed from them
/// cannot overflow the clock.
const MAX_SECS: u64 = 100 * 365 * 24 * 3600;

/// After the shutdown deadline, how long connections get to notice the hard stop.
const HARD_STOP_GRACE: Duration = Duration::from_secs(1);

/// Everything a server is told at start.
#[derive(Debug, Clone)]
pub struct Config {
    /// Addresses to listen on.
    pub listen: Vec<SocketAddr>,
    /// Accept-queue length per listener.
    pub backlog: u32,
    /// Greeting, reply template, quit word.
    pub protocol: Protocol,
    /// Longest line accepted, in bytes, without its line ending.
    pub max_line: usize,
    /// Connections served at once; `None` derives it from the open-file limit.
    pub max_connections: Option<usize>,
    /// Close a connection idle this long; `None` never.
    pub idle_timeout: Option<Duration>,
    /// Bound on the graceful part of shutdown.
    pub shutdown_timeout: Duration,
    /// Worker threads; 0 means one per core.
    pub threads: usize,
}

impl Config {
    /// The configuration the command line asks for.
    pub fn from_args(args: &ServeArgs) -> Self {
        Config {
            listen: args.listen.clone(),
            backlog: args.backlog,
            protocol: Protocol::new(&args.greeting, &args.reply, &args.quit),
            max_line: args.max_line,
            max_connections: args.max_connections,
            idle_timeout: (!args.idle_timeout.is_zero())
                .then(|| args.idle_timeout.min(Duration::from_secs(MAX_SECS))),
            shutdown_timeout: args.shutdown_timeout.min(Duration::from_secs(MAX_SECS)),
            threads: args.threads,
        }
    }
}

impl Default for Config {
    /// The defaults of `tcpkit serve`, but on port 0 (tests pick no fixed port).
    fn default() -> Self {
        Config {
            listen: vec![SocketAddr::from(([127, 0, 0, 1], 0))],
            backlog: 1024,
            protocol: Protocol::new("Welcome!", "Hello, {}!", "exit"),
            max_line: 64 * 1024,
            max_connections: None,
            idle_timeout: Some(Duration::from_secs(300)),
            shutdown_timeout: Duration::from_secs(10),
            threads: 1,
        }
    }
}

/// Why the server could not start.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum ServeError {
    /// A listener could not be set up (the message names the address).
    #[error(transparent)]
    Listen(#[from] ListenError),
    /// The runtime or a worker thread could not be started.
    #[error("cannot start: {0}")]
    Start(std::io::Error),
    /// Nothing to listen on.
    #[error("no address to listen on")]
    NoAddress,
}

/// Counters over the server's life.
#[derive(Debug, Default)]
pub struct Totals {
    /// Connections accepted and served.
    pub served: AtomicU64,
    /// Connections refused over the limit.
    pub busy: AtomicU64,
    /// Connections ended by the shutdown deadline rather than by themselves.
    pub cut: AtomicU64,
}

/// What every worker shares.
struct Shared {
    conn: ConnConfig,
    /// Connections being served now, across workers.
    active: AtomicUsize,
    /// The connection limit.
    max_connections: usize,
    shutdown_timeout: Duration,
    /// Accept-queue length: bounds how many queued clients shutdown accepts.
    backlog: u32,
    totals: Totals,
}

/// A bound server, not yet running.
pub struct Server {
    listeners: Vec<std::net::TcpListener>,
    shared: Arc<Shared>,
    threads: usize,
    /// The open-file limit in force after raising it (`None`: unlimited or unknown).
    open_file_limit: Option<u64>,
}

impl Server {
    /// Bind every listen address (all or nothing) and settle the connection limit:
    /// the given one, else the open-file limit less [`FD_RESERVE`].
    pub fn bind(config: &Config) -> Result<Server, ServeError> {
        if config.listen.is_empty() {
            return Err(ServeError::NoAddress);
        }
        let listeners = config
            .listen
            .iter()
            .map(|addr| bind_listener(*addr, config.backlog))
            .collect::<Result<Vec<_>, _>>()?;
        let open_file_limit = raise_open_file_limit();
        let fd_limit = open_file_limit.unwrap_or(1024);
        let derived = usize::try_from(fd_limit.saturating_sub(FD_RESERVE).max(1)).unwrap_or(usize::MAX);
        let max_connections = config.max_connections.unwrap_or(derived);
        let threads = match config.threads {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n,
        };
        let shared = Arc::new(Shared {
            conn: ConnConfig {
                protocol: config.protocol.clone(),
                max_line: config.max_line,
                idle_timeout: config.idle_timeout,
            },
            active: AtomicUsize::new(0),
            max_connections,
            shutdown_timeout: config.shutdown_timeout,
            backlog: config.backlog,
            totals: Totals::default(),
        });
        Ok(Server { listeners, shared, threads, open_file_limit })
    }

    /// The addresses actually bound (port 0 resolved).
    pub fn local_addrs(&self) -> Vec<SocketAddr> {
        self.listeners.iter().filter_map(|l| l.local_addr().ok()).collect()
    }

    /// Connections served at once before clients get `ERR server busy`.
    pub fn max_connections(&self) -> usize {
        self.shared.max_connections
    }

    /// Run as one worker on the current tokio runtime until `shutdown` is
    /// cancelled and the connections have finished (or the deadline passed).
    pub async fn run(self, shutdown: CancellationToken) -> Result<&'static str, ServeError> {
        let listeners = self.listeners;
        worker(listeners, self.shared, shutdown).await.map(|()| "stopped")
    }

    /// Run on `threads` worker threads until SIGINT or SIGTERM.
    pub fn run_until_signal(self) -> Result<(), ServeError> {
        let shutdown = CancellationToken::new();
        // Every runtime and listener handle is made before any thread accepts:
        // once clients arrive, descriptors may run out (EMFILE) and a worker
        // must not fail to start because of it.
        let rt = current_thread_runtime().map_err(ServeError::Start)?;
        let mut prepared = Vec::new();
        for _ in 1..self.threads {
            let worker_rt = current_thread_runtime().map_err(ServeError::Start)?;
            let listeners = clone_listeners(&self.listeners).map_err(ServeError::Start)?;
            prepared.push((worker_rt, listeners));
        }
        let mut handles = Vec::new();
        for (i, (worker_rt, listeners)) in prepared.into_iter().enumerate() {
            let (shared, shutdown) = (self.shared.clone(), shutdown.clone());
            let handle = std::thread::Builder::new()
                .name(format!("tcpkit-worker-{}", i + 1))
                .spawn(move || worker_rt.block_on(worker(listeners, shared, shutdown)))
                .map_err(ServeError::Start)?;
            handles.push(handle);
        }
        let shared = self.shared.clone();
        rt.block_on(async {
            tokio::spawn(watch_signals(shutdown.clone()));
            worker(self.listeners, self.shared, shutdown).await
        })?;
        for handle in handles {
            match handle.join() {
                Ok(result) => result?,
                Err(_) => warn!("a worker thread panicked"),
            }
        }
        let t = &shared.totals;
        info!(
            served = t.served.load(Ordering::Relaxed),
            busy = t.busy.load(Ordering::Relaxed),
            cut = t.cut.load(Ordering::Relaxed),
            "stopped"
        );
        Ok(())
    }
}

/// `tcpkit serve`.
pub fn run(args: ServeArgs) -> Result<(), Failure> {
    crate::log::init(args.quiet, args.verbose, args.log_format);
    let config = Config::from_args(&args);
    let server = Server::bind(&config).map_err(|e| Failure::new(1, e.to_string()))?;
    for addr in server.local_addrs() {
        info!(%addr, "listening");
    }
    info!(
        max_connections = server.max_connections(),
        threads = server.threads,
        open_file_limit = server.open_file_limit,
        "capacity"
    );
    server.run_until_signal().map_err(|e| Failure::new(1, e.to_string()))
}

fn current_thread_runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread().enable_all().build()
}

fn clone_listeners(listeners: &[std::net::TcpListener]) -> std::io::Result<Vec<std::net::TcpListener>> {
    listeners.iter().map(std::net::TcpListener::try_clone).collect()
}

/// First SIGINT/SIGTERM: graceful shutdown. Second: exit at once.
async fn watch_signals(shutdown: CancellationToken) {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut int), Ok(mut term)) = (signal(SignalKind::interrupt()), signal(SignalKind::terminate()))
    else {
        warn!("cannot install signal handlers; stop the server with SIGKILL");
        return;
    };
    tokio::select! { _ = int.recv() => {}, _ = term.recv() => {} }
    info!("shutting down: no new connections; answering what has arrived");
    shutdown.cancel();
    tokio::select! { _ = int.recv() => {}, _ = term.recv() => {} }
    warn!("second signal: exiting now");
    std::process::exit(130);
}

/// One worker: accept on every listener until shutdown, then wait for this
/// worker's connections, cutting them at the deadline.
async fn worker(
    listeners: Vec<std::net::TcpListener>,
    shared: Arc<Shared>,
    shutdown: CancellationToken,
) -> Result<(), ServeError> {
    let tracker = TaskTracker::new();
    let hard_stop = CancellationToken::new();
    for listener in listeners {
        let listener = TcpListener::from_std(listener).map_err(ServeError::Start)?;
        let local = listener.local_addr().ok().filter(|a| !a.ip().is_unspecified());
        let ctx = AcceptCtx {
            local,
            shared: shared.clone(),
            shutdown: shutdown.clone(),
            hard_stop: hard_stop.clone(),
            tracker: tracker.clone(),
        };
        tracker.spawn(accept_loop(listener, ctx));
    }
    shutdown.cancelled().await;
    tracker.close();
    if tokio::time::timeout(shared.shutdown_timeout, tracker.wait()).await.is_err() {
        let left = tracker.len();
        warn!(connections = left, "shutdown timeout: closing the connections left");
        hard_stop.cancel();
        // Connections end at once on the hard stop; the grace only covers a stuck close.
        let _ = tokio::time::timeout(HARD_STOP_GRACE, tracker.wait()).await;
    }
    Ok(())
}

struct AcceptCtx {
    /// The listener's address when it is not a wildcard one.
    local: Option<SocketAddr>,
    shared: Arc<Shared>,
    shutdown: CancellationToken,
    hard_stop: CancellationToken,
    tracker: TaskTracker,
}

/// Accept until shutdown. Errors such as EMFILE are logged and retried after a
/// doubling back-off (never ending the server, never spinning); errors of one
/// aborted connection are skipped.
async fn accept_loop(listener: TcpListener, ctx: AcceptCtx) {
    let mut backoff = Duration::from_millis(5);
    loop {
        let accepted = tokio::select! {
            biased;
            () = ctx.shutdown.cancelled() => return drain_queue(&listener, &ctx),
            r = listener.accept() => r,
        };
        match accepted {
            Ok((stream, peer)) => {
                backoff = Duration::from_millis(5);
                admit(stream, peer, &ctx);
            }
            Err(e) if is_per_connection(&e) => {}
            Err(e) => {
                warn!(error = %e, retry_ms = backoff.as_millis() as u64, "accept failed");
                tokio::select! {
                    () = ctx.shutdown.cancelled() => return,
                    () = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(ACCEPT_BACKOFF_MAX);
            }
        }
    }
}

/// Shutdown: the clients already in the accept queue completed the handshake
/// and their bytes were acknowledged by the host, so they are accepted and
/// served under the same rules as the others (what had arrived is answered).
/// Only what is queued now: no waiting for more, and at most `backlog` of them
/// (the queue's length), since clients may keep arriving while this runs.
fn drain_queue(listener: &TcpListener, ctx: &AcceptCtx) {
    // A plain accept(2): tokio's own would first ask the reactor for
    // readiness, which it may not have seen yet (the queue filled while the
    // process was stopped, say), and answer "pending" with clients waiting.
    let raw = socket2::SockRef::from(listener);
    for _ in 0..ctx.shared.backlog {
        let accepted = raw.accept().and_then(|(socket, peer)| {
            socket.set_nonblocking(true)?;
            let peer = peer.as_socket().ok_or(std::io::ErrorKind::InvalidData)?;
            Ok((TcpStream::from_std(socket.into())?, peer))
        });
        match accepted {
            Ok((stream, peer)) => admit(stream, peer, ctx),
            Err(e) if is_per_connection(&e) => {}
            // Empty (WouldBlock) or out of descriptors: nothing more can be taken now.
            Err(_) => return,
        }
    }
}

/// Accept errors that concern one connection only (it was gone before accept).
fn is_per_connection(e: &std::io::Error) -> bool {
    use std::io::ErrorKind::*;
    matches!(e.kind(), ConnectionAborted | ConnectionReset | Interrupted)
}

/// Serve a new connection, or tell it `busy` when the limit is reached.
fn admit(stream: TcpStream, peer: SocketAddr, ctx: &AcceptCtx) {
    let start = Instant::now();
    // A listener on a specific address is the local end of all its
    // connections; only a wildcard one needs asking (one syscall less per accept).
    let local = match ctx.local {
        Some(addr) => addr,
        None => stream.local_addr().unwrap_or(peer),
    };
    let shared = &ctx.shared;
    if shared.active.fetch_add(1, Ordering::AcqRel) >= shared.max_connections {
        shared.active.fetch_sub(1, Ordering::AcqRel);
        shared.totals.busy.fetch_add(1, Ordering::Relaxed);
        // The socket is new and its send buffer empty: the line goes out at once.
        let sent = stream.try_write(protocol::BUSY).unwrap_or(0);
        let _ = socket2::SockRef::from(&stream).shutdown(std::net::Shutdown::Write);
        let stats = ConnStats { lines: 0, bytes_in: 0, bytes_out: sent as u64, reason: CloseReason::Busy };
        log_close(local, peer, start, &stats);
        return;
    }
    // Replies are written whole per read; Nagle would only delay them.
    let _ = stream.set_nodelay(true);
    let shared = shared.clone();
    let (shutdown, hard_stop) = (ctx.shutdown.clone(), ctx.hard_stop.clone());
    ctx.tracker.spawn(async move {
        let guard = ActiveGuard(&shared.active);
        let stats = conn::serve(stream, &shared.conn, &shutdown, &hard_stop).await;
        drop(guard);
        shared.totals.served.fetch_add(1, Ordering::Relaxed);
        if hard_stop.is_cancelled() {
            shared.totals.cut.fetch_add(1, Ordering::Relaxed);
        }
        log_close(local, peer, start, &stats);
    });
}

/// Gives the connection's place back even if its task is dropped.
struct ActiveGuard<'a>(&'a AtomicUsize);

impl Drop for ActiveGuard<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The one log line per connection.
fn log_close(local: SocketAddr, peer: SocketAddr, start: Instant, s: &ConnStats) {
    info!(
        local = %local,
        peer = %peer,
        duration_ms = start.elapsed().as_secs_f64() * 1e3,
        lines = s.lines,
        bytes_in = s.bytes_in,
        bytes_out = s.bytes_out,
        reason = %s.reason,
        "closed"
    );
}
