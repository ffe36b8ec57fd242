//! `tcpkit serve`: the tutorial's hello server, made real, as a library.
//!
//! [`Server::bind`] takes a [`Config`] (no flags: `src/cli/serve.rs` turns
//! flags into one), binds every listener, prepares the worker threads and
//! settles the limits; [`Server::run`] serves until its shutdown token is
//! cancelled. Signals, logging set-up and exit codes belong to the caller.
//!
//! Work is spread over worker threads, each a current-thread runtime that
//! accepts on its own handle of every listener (`accept.rs`), so a connection
//! lives on one thread from accept to close with no cross-thread wake-ups.
//! One log line per closed connection, with its 4-tuple.
//!
//! Shutdown (the token is cancelled): accepting stops at once, once the
//! clients already in the accept queue are taken; every connection answers the
//! lines that had reached the host, then closes; `shutdown_timeout` bounds the
//! whole of it.
//!
//! ```
//! use tcpkit::serve::{Config, Server};
//! use tokio::io::{AsyncReadExt, AsyncWriteExt};
//! use tokio_util::sync::CancellationToken;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let config = Config::default(); // 127.0.0.1, port 0, one worker
//! let server = Server::bind(&config)?;
//! let addr = server.local_addrs()[0];
//! let stop = CancellationToken::new();
//! let running = tokio::spawn(server.run(stop.clone()));
//!
//! let mut client = tokio::net::TcpStream::connect(addr).await?;
//! client.write_all(b"Michael\nexit\n").await?;
//! let mut got = String::new();
//! client.read_to_string(&mut got).await?;
//! assert_eq!(got, "Welcome!\nHello, Michael!\n");
//!
//! stop.cancel(); // as a signal handler would
//! let totals = running.await??;
//! assert_eq!(totals.served, 1);
//! # Ok(()) }
//! ```
//!
//! Not for: framing or the protocol (see [`framing`], [`protocol`]), one
//! connection's rules (see [`conn`]).

mod accept;
pub mod conn;
pub mod framing;
pub mod limits;
pub mod metrics;
pub mod protocol;
pub mod proxy;
pub mod trace;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use thiserror::Error;
use tokio_util::sync::CancellationToken;

use crate::net::listen::{ListenError, bind_listener_shared};
use crate::net::tls::{ReloadableCert, ServerSettings};
use accept::{Shared, TlsAccept};
use conn::ConnConfig;
use limits::{Capacity, InputBudget};
use protocol::Protocol;

pub use accept::Totals;

/// Default address of `tcpkit serve` (the library's [`Config::default`] uses port 0).
pub const DEFAULT_LISTEN: &str = "127.0.0.1:9999";
/// Default accept-queue length. Tokio's 128 overflows under a burst of clients,
/// and each dropped SYN costs its client a 1 s retry.
pub const DEFAULT_BACKLOG: u32 = 1024;
/// Default greeting (a newline is added; empty = none).
pub const DEFAULT_GREETING: &str = "Welcome!";
/// Default reply template.
pub const DEFAULT_REPLY: &str = "Hello, {}!";
/// Default quit word.
pub const DEFAULT_QUIT: &str = "exit";
/// Default longest line, in bytes, without its line ending.
pub const DEFAULT_MAX_LINE: usize = 64 * 1024;
/// Default bound on one reply (the template applied to a longest line): what
/// a client that does not read can make the server hold, per connection, is
/// this plus [`conn::OUT_HIGH`].
pub const DEFAULT_MAX_REPLY: usize = 1024 * 1024;
/// Default server-wide budget for partial lines held in memory.
pub const DEFAULT_INPUT_BUDGET: usize = 256 * 1024 * 1024;
/// Default idle timeout, in seconds (0 = never), as the flag reads it.
pub const DEFAULT_IDLE_TIMEOUT: &str = "300";
/// Default bound on graceful shutdown, in seconds, as the flag reads it.
pub const DEFAULT_SHUTDOWN_TIMEOUT: &str = "10";
/// Default quiet time that ends a connection's draining in shutdown, as the
/// flag reads it (milliseconds).
pub const DEFAULT_DRAIN_IDLE: &str = "500ms";
/// Default worker threads: 0 means one per core.
pub const DEFAULT_THREADS: usize = 0;
/// Default bound on a TLS handshake, in seconds, as the flag reads it.
pub const DEFAULT_TLS_HANDSHAKE_TIMEOUT: &str = "10";
/// Most worker threads accepted.
pub const MAX_THREADS: usize = 1024;

/// Longest back-off between retries after an accept error such as EMFILE.
pub const ACCEPT_BACKOFF_MAX: Duration = Duration::from_secs(1);

/// Timeouts are capped at about a century, so deadlines computed from them
/// cannot overflow the clock.
pub const MAX_TIMEOUT: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

/// Everything a server is told at start.
#[derive(Debug, Clone)]
pub struct Config {
    /// Addresses to listen on: plain TCP, or TLS when `tls` is set and
    /// `tls_listen` is empty.
    pub listen: Vec<SocketAddr>,
    /// Addresses to serve TLS on (needs `tls`). When not empty, TLS is served
    /// on these only and the `listen` addresses stay plain: one server with
    /// both. Under socket activation ([`Server::with_listeners`]) the
    /// inherited listeners bound to these addresses serve TLS, the others plain.
    pub tls_listen: Vec<SocketAddr>,
    /// Accept-queue length per listener.
    pub backlog: u32,
    /// Greeting, reply template, quit word.
    pub protocol: Protocol,
    /// Longest line accepted, in bytes, without its line ending.
    pub max_line: usize,
    /// Longest reply the template may make of a longest line; a configuration
    /// past it is refused at bind.
    pub max_reply: usize,
    /// Bytes of partial lines all connections together may hold.
    pub input_budget: usize,
    /// Connections served at once; `None` derives it from the open-file limit.
    pub max_connections: Option<usize>,
    /// Close a connection idle this long; `None` never (capped at [`MAX_TIMEOUT`]).
    pub idle_timeout: Option<Duration>,
    /// Bound on the graceful part of shutdown (capped at [`MAX_TIMEOUT`]).
    pub shutdown_timeout: Duration,
    /// In shutdown, keep serving a connection until it has been quiet this
    /// long (at most half of `shutdown_timeout`), so short conversations in
    /// progress finish (a restart without errors); zero: answer what reached
    /// the host and close at the signal.
    pub drain_idle: Duration,
    /// Worker threads; 0 means one per core.
    pub threads: usize,
    /// Expect a PROXY protocol header (v1 or v2) first on every connection,
    /// from these peers only; `None`: no header is expected.
    pub proxy_protocol: Option<Vec<proxy::Cidr>>,
    /// Serve Prometheus metrics at `http://ADDR/metrics`; `None`: not served.
    pub metrics: Option<SocketAddr>,
    /// Set `SO_REUSEPORT` on the listeners, so several servers share a port.
    pub reuse_port: bool,
    /// TLS on every listener, or on the `tls_listen` ones only when there are
    /// any (after the PROXY header, when one is expected); `None`: plain TCP.
    pub tls: Option<crate::net::tls::ServerSettings>,
    /// Bound on one TLS handshake (capped at [`MAX_TIMEOUT`]); a client that
    /// has not finished it by then is closed.
    pub tls_handshake_timeout: Duration,
    /// Trace every connection to a file of its own; `None`: no tracing (and
    /// no cost: the stream is not wrapped).
    pub trace: Option<trace::TraceConfig>,
}

impl Default for Config {
    /// The defaults of `tcpkit serve`, but on 127.0.0.1 port 0 (the OS picks a
    /// free port: see [`Server::local_addrs`]) and on one worker, the caller's
    /// runtime (no threads of its own unless asked).
    fn default() -> Self {
        Config {
            listen: vec![SocketAddr::from(([127, 0, 0, 1], 0))],
            tls_listen: Vec::new(),
            backlog: DEFAULT_BACKLOG,
            protocol: Protocol::new(DEFAULT_GREETING, DEFAULT_REPLY, DEFAULT_QUIT),
            max_line: DEFAULT_MAX_LINE,
            max_reply: DEFAULT_MAX_REPLY,
            input_budget: DEFAULT_INPUT_BUDGET,
            max_connections: None,
            idle_timeout: Some(seconds(DEFAULT_IDLE_TIMEOUT)),
            shutdown_timeout: seconds(DEFAULT_SHUTDOWN_TIMEOUT),
            drain_idle: Duration::from_millis(DEFAULT_DRAIN_IDLE.trim_end_matches("ms").parse().unwrap_or(0)),
            threads: 1,
            proxy_protocol: None,
            metrics: None,
            reuse_port: false,
            tls: None,
            tls_handshake_timeout: seconds(DEFAULT_TLS_HANDSHAKE_TIMEOUT),
            trace: None,
        }
    }
}

/// A whole number of seconds written as text (the defaults above).
fn seconds(text: &str) -> Duration {
    Duration::from_secs(text.parse().unwrap_or(0))
}

/// Why the server could not start or run.
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
    /// The reply template can make a reply larger than `max_reply`.
    #[error(
        "--reply makes replies of up to {worst} bytes to lines of --max-line {max_line} bytes, \
         over --max-reply {max_reply}: lower --max-line, use fewer {{}} in --reply, or raise --max-reply"
    )]
    ReplyTooLarge {
        /// The largest reply the template makes of a longest line.
        worst: usize,
        /// The longest line.
        max_line: usize,
        /// The bound.
        max_reply: usize,
    },
    /// TLS listeners were asked for without a certificate.
    #[error("--tls-listen needs --tls-cert and --tls-key")]
    TlsListenWithoutCert,
    /// One address asked to be both plain and TLS.
    #[error("{0} is both in --listen and in --tls-listen: a listener is plain or TLS")]
    PlainAndTls(SocketAddr),
    /// Under socket activation, a TLS address names no inherited listener.
    #[error("--tls-listen {0}: no socket-activated listener has this address (the inherited ones: {1})")]
    TlsListenNotInherited(SocketAddr, String),
    /// The TLS certificate, key or client CA could not be used.
    #[error("tls: {0}")]
    Tls(#[from] crate::net::tls::TlsError),
    /// The trace directory cannot be written.
    #[error("--trace: {0}")]
    Trace(std::io::Error),
    /// Too few descriptors left to serve anyone.
    #[error(
        "open-file limit {limit} is too low: {open} descriptors are in use or needed at start and \
         {reserve} are kept in reserve; raise it (ulimit -n) to at least {}",
        open + reserve + 1
    )]
    TooFewFiles {
        /// The open-file limit.
        limit: u64,
        /// Descriptors open once the listeners and workers exist.
        open: u64,
        /// Descriptors kept back ([`limits::FD_RESERVE`]).
        reserve: u64,
    },
}

/// A bound server, not yet running.
pub struct Server {
    listeners: Vec<Listener>,
    /// A runtime and listener handles per extra worker thread, made before any
    /// client arrives: once clients arrive, descriptors may run out (EMFILE)
    /// and a worker must not fail to start because of it.
    workers: Vec<Prepared>,
    shared: Arc<Shared>,
    capacity: Capacity,
    metrics: Option<std::net::TcpListener>,
    /// The certificate in use, to re-read on demand (SIGHUP).
    tls_cert: Option<Arc<ReloadableCert>>,
}

impl Server {
    /// Bind every listen address (all or nothing), prepare the worker threads
    /// and settle the limits: refuse a reply template that breaks `max_reply`,
    /// raise the open-file limit to its hard limit and derive the connection
    /// limit from what is left once everything exists (see [`limits`]).
    pub fn bind(config: &Config) -> Result<Server, ServeError> {
        if config.listen.is_empty() && config.tls_listen.is_empty() {
            return Err(ServeError::NoAddress);
        }
        Server::check_tls_listen(config)?;
        if let Some(addr) = config.tls_listen.iter().find(|a| a.port() != 0 && config.listen.contains(a)) {
            return Err(ServeError::PlainAndTls(*addr));
        }
        Server::check_reply(config)?;
        // Plain unless TLS is on every listener; then the TLS-only ones.
        let all_tls = config.tls.is_some() && config.tls_listen.is_empty();
        let wanted =
            config.listen.iter().map(|a| (a, all_tls)).chain(config.tls_listen.iter().map(|a| (a, true)));
        let listeners = wanted
            .map(|(addr, tls)| {
                let socket = bind_listener_shared(*addr, config.backlog, config.reuse_port)?;
                Ok(Listener { socket, tls })
            })
            .collect::<Result<Vec<_>, ServeError>>()?;
        Server::start(config, listeners)
    }

    /// As [`Server::bind`], but on listeners made elsewhere (handed over by
    /// systemd socket activation, say) instead of `config.listen`. They must be
    /// listening already; they are made non-blocking here. With `tls` set, a
    /// listener serves TLS when `tls_listen` is empty or names its address
    /// (each address there must name one of them), plain otherwise.
    pub fn with_listeners(
        config: &Config,
        listeners: Vec<std::net::TcpListener>,
    ) -> Result<Server, ServeError> {
        Server::check_tls_listen(config)?;
        let addrs: Vec<Option<SocketAddr>> = listeners.iter().map(|l| l.local_addr().ok()).collect();
        if let Some(missing) = config.tls_listen.iter().find(|a| !addrs.contains(&Some(**a))) {
            let inherited: Vec<String> = addrs.iter().flatten().map(ToString::to_string).collect();
            return Err(ServeError::TlsListenNotInherited(*missing, inherited.join(", ")));
        }
        let listeners = listeners
            .into_iter()
            .zip(addrs)
            .map(|(socket, addr)| {
                let tls = config.tls.is_some()
                    && (config.tls_listen.is_empty() || addr.is_some_and(|a| config.tls_listen.contains(&a)));
                Listener { socket, tls }
            })
            .collect();
        Server::start(config, listeners)
    }

    /// `tls_listen` needs a certificate.
    fn check_tls_listen(config: &Config) -> Result<(), ServeError> {
        if !config.tls_listen.is_empty() && config.tls.is_none() {
            return Err(ServeError::TlsListenWithoutCert);
        }
        Ok(())
    }

    /// The rest of [`Server::bind`] once the listeners exist.
    fn start(config: &Config, listeners: Vec<Listener>) -> Result<Server, ServeError> {
        if listeners.is_empty() {
            return Err(ServeError::NoAddress);
        }
        Server::check_reply(config)?;
        // Certificates are read before anything else is set up: a bad file fails fast.
        let tls = config.tls.as_ref().map(ServerSettings::build).transpose()?;
        let tracer =
            config.trace.as_ref().map(trace::Tracer::start).transpose().map_err(ServeError::Trace)?;
        for l in &listeners {
            l.socket.set_nonblocking(true).map_err(ServeError::Start)?;
        }
        let open_file_limit = crate::net::listen::raise_open_file_limit();
        let metrics = config.metrics.map(metrics::bind).transpose()?;
        let threads = match config.threads {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n.min(MAX_THREADS),
        };
        let mut workers = Vec::new();
        for _ in 1..threads {
            let rt = accept::worker_runtime().map_err(ServeError::Start)?;
            let handles = listeners.iter().map(Listener::try_clone).collect::<Result<_, _>>();
            workers.push(Prepared { rt: Some(rt), listeners: handles.map_err(ServeError::Start)? });
        }
        let capacity = Capacity::settle(config, threads, open_file_limit, limits::open_descriptors())?;
        let (tls_acceptor, tls_cert) = match tls {
            Some((server_config, cert)) => (Some(tokio_rustls::TlsAcceptor::from(server_config)), Some(cert)),
            None => (None, None),
        };
        let shared = Arc::new(Shared::new(
            ConnConfig {
                protocol: config.protocol.clone(),
                max_line: config.max_line,
                idle_timeout: config.idle_timeout.map(|d| d.min(MAX_TIMEOUT)),
                input_budget: InputBudget::new(config.input_budget),
                drain_idle: config.drain_idle.min(MAX_TIMEOUT),
                // Half the graceful time at most: the other half is for the
                // replies owed when draining ends.
                drain_max: config.shutdown_timeout.min(MAX_TIMEOUT) / 2,
                metrics: Arc::new(metrics::Metrics::default()),
            },
            capacity.max_connections,
            config.shutdown_timeout.min(MAX_TIMEOUT),
            config.backlog,
            config.proxy_protocol.clone(),
            tls_acceptor.map(|acceptor| TlsAccept {
                acceptor,
                handshake_timeout: config.tls_handshake_timeout.min(MAX_TIMEOUT),
            }),
            tracer,
        ));
        Ok(Server { listeners, workers, shared, capacity, metrics, tls_cert })
    }

    /// Refuse a reply template whose worst reply breaks `max_reply`.
    fn check_reply(config: &Config) -> Result<(), ServeError> {
        let worst = config.protocol.reply.reply_len(config.max_line);
        if worst > config.max_reply {
            return Err(ServeError::ReplyTooLarge {
                worst,
                max_line: config.max_line,
                max_reply: config.max_reply,
            });
        }
        Ok(())
    }

    /// The addresses actually bound (port 0 resolved): `listen` in order,
    /// then `tls_listen` (inherited listeners: in the order passed).
    pub fn local_addrs(&self) -> Vec<SocketAddr> {
        self.listeners.iter().filter_map(|l| l.socket.local_addr().ok()).collect()
    }

    /// Each listener's address and whether it serves TLS, in the order of
    /// [`Server::local_addrs`].
    pub fn listeners(&self) -> Vec<(SocketAddr, bool)> {
        self.listeners.iter().filter_map(|l| Some((l.socket.local_addr().ok()?, l.tls))).collect()
    }

    /// The metrics endpoint's address, if one was asked for.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics.as_ref().and_then(|l| l.local_addr().ok())
    }

    /// Connections served at once before clients get `ERR server busy`.
    pub fn max_connections(&self) -> usize {
        self.capacity.max_connections
    }

    /// The TLS certificate in use, when serving TLS: [`ReloadableCert::reload`]
    /// re-reads its files for the handshakes to come (on SIGHUP, say);
    /// established connections are not touched.
    pub fn tls_cert(&self) -> Option<Arc<ReloadableCert>> {
        self.tls_cert.clone()
    }

    /// The limits settled at bind, for the start-up log line.
    pub fn capacity(&self) -> &Capacity {
        &self.capacity
    }

    /// Serve until `shutdown` is cancelled and the connections have finished
    /// (or the shutdown deadline passed). One worker runs on the current tokio
    /// runtime, the others on their own threads.
    pub async fn run(self, shutdown: CancellationToken) -> Result<Totals, ServeError> {
        if let Some(listener) = self.metrics {
            let listener = tokio::net::TcpListener::from_std(listener).map_err(ServeError::Start)?;
            tokio::spawn(metrics::serve(listener, self.shared.metrics(), shutdown.clone()));
        }
        let mut done = Vec::new();
        for (i, mut prepared) in self.workers.into_iter().enumerate() {
            let (Some(rt), listeners) = (prepared.rt.take(), std::mem::take(&mut prepared.listeners)) else {
                continue;
            };
            let (shared, token) = (self.shared.clone(), shutdown.clone());
            let (tx, rx) = tokio::sync::oneshot::channel();
            let spawned =
                std::thread::Builder::new().name(format!("tcpkit-worker-{}", i + 1)).spawn(move || {
                    let _ = tx.send(rt.block_on(accept::worker(listeners, shared, token)));
                });
            match spawned {
                Ok(_) => done.push(rx),
                Err(e) => {
                    // The workers already running stop and are waited for.
                    shutdown.cancel();
                    for rx in done {
                        let _ = rx.await;
                    }
                    return Err(ServeError::Start(e));
                }
            }
        }
        let mut result = accept::worker(self.listeners, self.shared.clone(), shutdown).await;
        for rx in done {
            // A dropped sender means the worker thread panicked.
            let r = rx
                .await
                .unwrap_or_else(|_| Err(ServeError::Start(std::io::Error::other("a worker panicked"))));
            result = result.and(r);
        }
        self.shared.finish_traces();
        result.map(|()| self.shared.totals())
    }
}

/// One extra worker's runtime and listener handles, made at bind.
struct Prepared {
    rt: Option<tokio::runtime::Runtime>,
    listeners: Vec<Listener>,
}

/// A listening socket and whether its connections speak TLS.
struct Listener {
    socket: std::net::TcpListener,
    tls: bool,
}

impl Listener {
    /// Another handle on the same socket, for a worker thread.
    fn try_clone(&self) -> std::io::Result<Listener> {
        Ok(Listener { socket: self.socket.try_clone()?, tls: self.tls })
    }
}

impl Drop for Prepared {
    /// A server bound but never run may be dropped inside async code (a
    /// failed bind, a test), where dropping a runtime the usual way panics.
    fn drop(&mut self) {
        if let Some(rt) = self.rt.take() {
            rt.shutdown_background();
        }
    }
}
