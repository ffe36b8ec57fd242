//! The accept side of a worker: accept on every listener until shutdown, apply
//! the connection limit, spawn one task per connection and write one log line
//! per closed connection with its 4-tuple; at shutdown, take the clients
//! already queued, then wait for the connections within the deadline.
//!
//! Not for: one connection's rules (see `conn`) or start-up (see the module root).
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{info, warn};

use super::conn::{self, CloseReason, ConnConfig, ConnStats};
use super::metrics::Metrics;
use super::proxy::{self, Cidr, Proxied};
use super::trace::Tracer;
use super::{ACCEPT_BACKOFF_MAX, ServeError, protocol};
use crate::net::trace::{Tap, Trace};

/// After the shutdown deadline, how long connections get to notice the hard stop.
const HARD_STOP_GRACE: Duration = Duration::from_secs(1);

/// First back-off after an accept error; it doubles up to [`ACCEPT_BACKOFF_MAX`].
const ACCEPT_BACKOFF_MIN: Duration = Duration::from_millis(5);

/// Counters over the server's life, as [`super::Server::run`] returns them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Totals {
    /// Connections accepted and served.
    pub served: u64,
    /// Connections refused over the limit.
    pub busy: u64,
    /// Connections ended by the shutdown deadline rather than by themselves.
    pub cut: u64,
}

/// What every worker shares.
pub(super) struct Shared {
    conn: ConnConfig,
    /// Connections being served now, across workers.
    active: AtomicUsize,
    /// The connection limit.
    max_connections: usize,
    shutdown_timeout: Duration,
    /// Accept-queue length: bounds how many queued clients shutdown accepts.
    backlog: u32,
    /// Peers trusted to send a PROXY header, when one is expected.
    proxy: Option<Vec<Cidr>>,
    /// TLS, after the PROXY header, on the listeners that serve it.
    tls: Option<TlsAccept>,
    /// `--trace DIR`: a trace per connection.
    tracer: Option<Tracer>,
    metrics: Arc<Metrics>,
    served: AtomicU64,
    busy: AtomicU64,
    cut: AtomicU64,
}

impl Shared {
    pub(super) fn new(
        conn: ConnConfig,
        max_connections: usize,
        shutdown_timeout: Duration,
        backlog: u32,
        proxy: Option<Vec<Cidr>>,
        tls: Option<TlsAccept>,
        tracer: Option<Tracer>,
    ) -> Self {
        Shared {
            metrics: conn.metrics.clone(),
            conn,
            proxy,
            tls,
            tracer,
            active: AtomicUsize::new(0),
            max_connections,
            shutdown_timeout,
            backlog,
            served: AtomicU64::new(0),
            busy: AtomicU64::new(0),
            cut: AtomicU64::new(0),
        }
    }

    /// Write out the traces still queued (at the end of `run`).
    pub(super) fn finish_traces(&self) {
        if let Some(t) = &self.tracer {
            t.finish();
        }
    }

    pub(super) fn metrics(&self) -> Arc<Metrics> {
        self.metrics.clone()
    }

    pub(super) fn totals(&self) -> Totals {
        Totals {
            served: self.served.load(Ordering::Relaxed),
            busy: self.busy.load(Ordering::Relaxed),
            cut: self.cut.load(Ordering::Relaxed),
        }
    }
}

/// The server side of TLS: the acceptor and the bound on one handshake.
pub(super) struct TlsAccept {
    pub(super) acceptor: tokio_rustls::TlsAcceptor,
    pub(super) handshake_timeout: Duration,
}

/// The runtime of one worker thread.
pub(super) fn worker_runtime() -> std::io::Result<tokio::runtime::Runtime> {
    crate::net::runtime(1)
}

/// One worker: accept on every listener until shutdown, then wait for this
/// worker's connections, cutting them at the deadline.
pub(super) async fn worker(
    listeners: Vec<super::Listener>,
    shared: Arc<Shared>,
    shutdown: CancellationToken,
) -> Result<(), ServeError> {
    let tracker = TaskTracker::new();
    let hard_stop = CancellationToken::new();
    for listener in listeners {
        let tls = listener.tls && shared.tls.is_some();
        let listener = TcpListener::from_std(listener.socket).map_err(ServeError::Start)?;
        let local = listener.local_addr().ok().filter(|a| !a.ip().is_unspecified());
        let ctx = AcceptCtx {
            local,
            tls,
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
    /// Connections on this listener speak TLS (after any PROXY header).
    tls: bool,
    shared: Arc<Shared>,
    shutdown: CancellationToken,
    hard_stop: CancellationToken,
    tracker: TaskTracker,
}

/// Accept until shutdown. Errors such as EMFILE are logged and retried after a
/// doubling back-off (never ending the server, never spinning); errors of one
/// aborted connection are skipped.
async fn accept_loop(listener: TcpListener, ctx: AcceptCtx) {
    let mut backoff = ACCEPT_BACKOFF_MIN;
    loop {
        let accepted = tokio::select! {
            biased;
            () = ctx.shutdown.cancelled() => return drain_queue(&listener, &ctx),
            r = listener.accept() => r,
        };
        match accepted {
            Ok((stream, peer)) => {
                backoff = ACCEPT_BACKOFF_MIN;
                admit(stream, peer, &ctx);
            }
            Err(e) if is_per_connection(&e) => {}
            Err(e) => {
                warn!(error = %e, retry_ms = backoff.as_millis() as u64, "accept failed");
                tokio::select! {
                    () = ctx.shutdown.cancelled() => return drain_queue(&listener, &ctx),
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
        shared.busy.fetch_add(1, Ordering::Relaxed);
        shared.metrics.refused_busy();
        // The socket is new and its send buffer empty: the line goes out at once.
        // Over TLS nothing is sent: plaintext would only be a garbled record
        // to the client, and a handshake is the CPU an overloaded server lacks.
        let sent = if ctx.tls { 0 } else { stream.try_write(protocol::BUSY).unwrap_or(0) };
        let _ = socket2::SockRef::from(&stream).shutdown(std::net::Shutdown::Write);
        let stats = ConnStats { lines: 0, bytes_in: 0, bytes_out: sent as u64, reason: CloseReason::Busy };
        log_close(local, peer, None, start, &stats);
        return;
    }
    // Replies are written whole per read; Nagle would only delay them.
    let _ = stream.set_nodelay(true);
    let shared = shared.clone();
    let tls = ctx.tls;
    let (shutdown, hard_stop) = (ctx.shutdown.clone(), ctx.hard_stop.clone());
    ctx.tracker.spawn(async move {
        let guard = ActiveGuard(&shared.active);
        shared.metrics.opened();
        let mut stream = stream;
        let mut proxied = None;
        if let Some(trusted) = &shared.proxy {
            // Nothing is read or sent before a complete valid header.
            match proxy::read_header(&mut stream, peer.ip(), trusted).await {
                Ok(p) => proxied = Some(p),
                Err(e) => {
                    drop(guard);
                    let stats = ConnStats {
                        lines: 0,
                        bytes_in: 0,
                        bytes_out: 0,
                        reason: CloseReason::ProxyHeader(e),
                    };
                    shared.metrics.closed(&stats, start.elapsed());
                    log_close(local, peer, None, start, &stats);
                    return;
                }
            }
        }
        // Opened after the PROXY header: the trace holds the conversation only.
        let trace = shared.tracer.as_ref().and_then(|t| t.open(local, peer));
        let stats = match shared.tls.as_ref().filter(|_| tls) {
            None => serve_traced(stream, trace, &shared.conn, &shutdown, &hard_stop).await,
            Some(tls) => match handshake(tls, stream, &hard_stop).await {
                Ok(stream) => serve_traced(stream, trace, &shared.conn, &shutdown, &hard_stop).await,
                Err(reason) => {
                    ConnStats { lines: 0, bytes_in: 0, bytes_out: 0, reason: CloseReason::Tls(reason) }
                }
            },
        };
        drop(guard);
        shared.served.fetch_add(1, Ordering::Relaxed);
        if hard_stop.is_cancelled() {
            shared.cut.fetch_add(1, Ordering::Relaxed);
        }
        shared.metrics.closed(&stats, start.elapsed());
        log_close(local, peer, proxied.as_ref(), start, &stats);
    });
}

/// Serve the connection, through a [`Tap`] when it is traced (over TLS the
/// tap sits above TLS: the trace holds plaintext).
async fn serve_traced<S: conn::Stream>(
    stream: S,
    trace: Option<Trace>,
    config: &conn::ConnConfig,
    shutdown: &CancellationToken,
    hard_stop: &CancellationToken,
) -> ConnStats {
    match trace {
        None => conn::serve(stream, config, shutdown, hard_stop).await,
        Some(t) => conn::serve(Tap::new(stream, t), config, shutdown, hard_stop).await,
    }
}

/// The server's TLS handshake, bounded by the handshake timeout and cut by
/// the hard stop; the error is the reason in words, for the close line.
async fn handshake(
    tls: &TlsAccept,
    stream: TcpStream,
    hard_stop: &CancellationToken,
) -> Result<tokio_rustls::server::TlsStream<TcpStream>, String> {
    let accept = tokio::time::timeout(tls.handshake_timeout, tls.acceptor.accept(stream));
    tokio::select! {
        r = accept => match r {
            Ok(Ok(stream)) => Ok(stream),
            Ok(Err(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                Err("the client closed the connection during the handshake".into())
            }
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err(format!("handshake timeout ({:?})", tls.handshake_timeout)),
        },
        () = hard_stop.cancelled() => Err("shutdown during the handshake".into()),
    }
}

/// Gives the connection's place back even if its task is dropped.
struct ActiveGuard<'a>(&'a AtomicUsize);

impl Drop for ActiveGuard<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The one log line per connection: the socket's 4-tuple (`local`, `peer`:
/// the balancer's, behind one) and, from a PROXY header, the client's
/// (`client`, `client_local`). A warning when the server-wide input budget or
/// a bad PROXY header closed it.
fn log_close(local: SocketAddr, peer: SocketAddr, proxied: Option<&Proxied>, start: Instant, s: &ConnStats) {
    use tracing::field::display;
    let duration_ms = start.elapsed().as_secs_f64() * 1e3;
    if matches!(s.reason, CloseReason::InputBudget | CloseReason::ProxyHeader(_) | CloseReason::Tls(_)) {
        warn!(
            local = %local, peer = %peer, duration_ms, lines = s.lines, bytes_in = s.bytes_in,
            bytes_out = s.bytes_out, reason = %s.reason, "closed"
        );
        return;
    }
    let client = proxied.and_then(|p| p.source).map(display);
    let client_local = proxied.and_then(|p| p.destination).map(display);
    let unique_id = proxied.and_then(|p| p.unique_id.as_deref());
    let authority = proxied.and_then(|p| p.authority.as_deref());
    info!(
        local = %local,
        peer = %peer,
        client,
        client_local,
        unique_id,
        authority,
        duration_ms,
        lines = s.lines,
        bytes_in = s.bytes_in,
        bytes_out = s.bytes_out,
        reason = %s.reason,
        "closed"
    );
}
