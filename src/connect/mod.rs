//! `tcpkit connect`: the netcat-style client, as a library.
//!
//! [`run`] connects with Happy Eyeballs ([`mod@crate::net::connect`]), then copies
//! the input to the socket and the socket to the output at the same time, until
//! both directions are done (the contract of tokio's `copy_bidirectional`). Input
//! EOF shuts down the socket's write half and output goes on until the server
//! closes, so a piped conversation is printed in full. The server's EOF ends the
//! output, and the rest of the input is still sent (the server may only have
//! half-closed), unless [`Config::end_on_peer_eof`]. Bytes pass through
//! untouched except for [`Config::crlf`], which is [`Crlf`].
//!
//! The copying is [`session()`], generic over its four ends so that it is tested
//! with in-memory pipes and paused time. Failures are the typed [`enum@Error`]; the
//! command line (`src/cli/connect.rs`) turns flags into a [`Config`], starts the
//! runtime, and picks the exit code.
//!
//! ```
//! use std::io::{Read, Write};
//! use tcpkit::connect::{Config, Io, run};
//!
//! // A one-shot server that sends back what it read, after our half-close.
//! let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
//! let port = listener.local_addr()?.port();
//! let server = std::thread::spawn(move || -> std::io::Result<()> {
//!     let (mut socket, _) = listener.accept()?;
//!     let mut got = Vec::new();
//!     socket.read_to_end(&mut got)?;
//!     socket.write_all(&got)
//! });
//!
//! let mut config = Config::new("127.0.0.1", port);
//! config.verbose = true; // connection details go to `diag`
//! let (mut reply, mut diag) = (Vec::new(), Vec::new());
//! let io = Io { input: &b"ping\n"[..], output: &mut reply, diag: &mut diag };
//! let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
//! let stats = rt.block_on(run(&config, io))?;
//! server.join().expect("server thread")?;
//! assert_eq!(reply, b"ping\n");
//! assert_eq!((stats.sent, stats.received), (5, 5));
//! assert!(String::from_utf8_lossy(&diag).starts_with("tcpkit: connected to 127.0.0.1:"));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! With [`Config::tls`] the conversation runs over TLS (verified by default);
//! with [`Config::trace`] every byte both ways is recorded, after TLS.
//!
//! Not for: listening, UDP, process concerns (exit codes, signals, printing
//! errors), or interpreting the bytes in any way.
use std::io::{self, Write};
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use thiserror::Error;
use tokio::io::{AsyncRead, AsyncWrite};

use crate::net::connect::{ConnectError, ConnectOptions, Family, connect};
use crate::net::tls::{ClientSettings, HandshakeError, HandshakeSummary, TlsError};
use crate::net::trace::{Tap, Trace};
use crate::net::{IoClass, classify};

mod session;

pub use session::{CHUNK, Crlf, SessionError, Settings, Stats, session};

/// Default for [`Config::connect_timeout`]: resolving and all attempts together.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Default for [`Config::idle_timeout`]: none, a quiet connection stays open.
pub const DEFAULT_IDLE_TIMEOUT: Option<Duration> = None;
/// Default for [`Config::handshake_timeout`]: a TLS server that never answers
/// the handshake is given up on after this long.
pub const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// What to connect to and how to behave: everything the command line can ask for.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Config {
    /// Host name or IP address (an IPv6 literal with or without brackets).
    pub host: String,
    /// TCP port.
    pub port: u16,
    /// Address families allowed (`-4`/`-6`).
    pub family: Family,
    /// Bound on resolving and connecting together; `None` waits as long as the OS.
    pub connect_timeout: Option<Duration>,
    /// End the session after this long with no byte moved either way; `None`: never.
    pub idle_timeout: Option<Duration>,
    /// Local address to connect from (the port is chosen by the OS).
    pub source: Option<IpAddr>,
    /// Send each `\n` of the input as `\r\n` ([`Crlf`]).
    pub crlf: bool,
    /// Shut down the socket's write half on input EOF (default `true`).
    pub half_close: bool,
    /// Only connect, then close: nothing is sent or read.
    pub zero_io: bool,
    /// End as soon as the peer's EOF is read, even with input left (the command
    /// line sets it when stdin is a terminal).
    pub end_on_peer_eof: bool,
    /// Write connection details to [`Io::diag`].
    pub verbose: bool,
    /// Speak TLS over the connection, verified as these settings say.
    pub tls: Option<ClientSettings>,
    /// The name for SNI and certificate verification; `None`: the host.
    pub tls_name: Option<String>,
    /// Bound on the TLS handshake; `None` waits as long as the server.
    pub handshake_timeout: Option<Duration>,
    /// Record every byte both ways (after TLS: the plaintext), the 4-tuple,
    /// the handshake and the half-closes. See [`crate::net::trace`].
    pub trace: Option<Trace>,
}

impl Config {
    /// A configuration for `host`:`port` with every default.
    pub fn new(host: impl Into<String>, port: u16) -> Config {
        Config {
            host: host.into(),
            port,
            family: Family::Any,
            connect_timeout: Some(DEFAULT_CONNECT_TIMEOUT),
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
            source: None,
            crlf: false,
            half_close: true,
            zero_io: false,
            end_on_peer_eof: false,
            verbose: false,
            tls: None,
            tls_name: None,
            handshake_timeout: Some(DEFAULT_HANDSHAKE_TIMEOUT),
            trace: None,
        }
    }
}

/// The three ends [`run`] works with besides the socket.
#[derive(Debug)]
pub struct Io<I, O, D> {
    /// Bytes to send (stdin for the command).
    pub input: I,
    /// Where received bytes go (stdout for the command).
    pub output: O,
    /// Diagnostics with [`Config::verbose`], one line each (stderr for the
    /// command). Best effort: a failing `diag` is ignored, never an error.
    pub diag: D,
}

/// Why `tcpkit connect` failed.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum Error {
    /// No connection was made.
    #[error(transparent)]
    Connect(#[from] ConnectError),
    /// The peer reset the connection (ECONNRESET while reading or writing).
    #[error("connection reset by peer {peer} after {received} bytes received")]
    Reset {
        /// The server's address.
        peer: SocketAddr,
        /// Bytes received (and printed) before the reset.
        received: u64,
    },
    /// No data moved either way for the `-w` duration.
    #[error("idle timeout: no data either way for {} ms", after.as_millis())]
    Idle {
        /// The `-w` duration.
        after: Duration,
    },
    /// The open connection timed out (retransmissions or keep-alive gave up).
    #[error("connection to {peer} timed out after {received} bytes received")]
    TimedOut {
        /// The server's address.
        peer: SocketAddr,
        /// Bytes received before the failure.
        received: u64,
    },
    /// The TLS peer closed the TCP connection without a TLS `close_notify`:
    /// what was received is printed, but its end may be missing (an attacker
    /// can cut a TCP stream; only `close_notify` proves the end).
    #[error(
        "connection to {peer} closed without TLS close_notify after {received} bytes received: the end may be missing"
    )]
    TlsTruncated {
        /// The server's address.
        peer: SocketAddr,
        /// Bytes received (and printed) before the close.
        received: u64,
    },
    /// Any other socket error while the connection was open.
    #[error("connection to {peer}: {source}")]
    Socket {
        /// The server's address.
        peer: SocketAddr,
        /// The OS error.
        source: io::Error,
    },
    /// Reading the input failed.
    #[error("reading stdin: {0}")]
    Stdin(io::Error),
    /// The TLS configuration could not be built (a `--cacert`, `--cert` or `--key` file).
    #[error(transparent)]
    TlsConfig(#[from] TlsError),
    /// The TLS handshake failed: the certificate was refused, the server
    /// refused us, or it did not finish in time.
    #[error(transparent)]
    Tls(#[from] HandshakeError),
    /// Writing the output failed; a closed pipe ends the command like this too (as in ncat).
    #[error("writing stdout: {source} after {written} bytes")]
    Stdout {
        /// The OS error (`BrokenPipe` when the reader went away).
        source: io::Error,
        /// Bytes written to the output before the failure.
        written: u64,
    },
}

impl SessionError {
    fn into_error(self, peer: SocketAddr, stats: &Stats) -> Error {
        let received = stats.received;
        match self {
            SessionError::Socket(source) => match classify(&source) {
                IoClass::Reset => Error::Reset { peer, received },
                IoClass::TimedOut => Error::TimedOut { peer, received },
                // A plain TCP EOF is a zero-length read; only rustls reports one as an error.
                _ if source.kind() == io::ErrorKind::UnexpectedEof => Error::TlsTruncated { peer, received },
                _ => Error::Socket { peer, source },
            },
            SessionError::Input(e) => Error::Stdin(e),
            SessionError::Output(source) => Error::Stdout { source, written: received },
            SessionError::Idle(after) => Error::Idle { after },
        }
    }
}

/// Connect as `config` says and copy both ways until both directions are done.
/// Returns the bytes moved; with [`Config::zero_io`], zero both ways.
pub async fn run<I, O, D>(config: &Config, io: Io<I, O, D>) -> Result<Stats, Error>
where
    I: AsyncRead + Unpin,
    O: AsyncWrite + Unpin,
    D: Write,
{
    let Io { input, output, mut diag } = io;
    let mut note = |line: &str| {
        if config.verbose {
            // Best effort: a closed stderr is not worth failing the conversation for.
            let _ = writeln!(diag, "tcpkit: {line}");
        }
    };
    let opts = ConnectOptions {
        family: config.family,
        timeout: config.connect_timeout,
        source: config.source,
        // Interactive lines should leave at once, not wait for the previous ACK.
        nodelay: true,
    };
    // Configuration errors (unreadable CA file...) come before any connection.
    let tls = match &config.tls {
        Some(settings) => {
            let name = crate::net::tls::server_name(config.tls_name.as_deref().unwrap_or(&config.host))?;
            Some((crate::net::tls::client_config_with(settings)?, name))
        }
        None => None,
    };
    let conn = connect(&config.host, config.port, &opts).await?;
    let (peer, local) = (conn.peer, conn.local);
    note(&format!(
        "connected to {peer} from {local} (resolve {:.1} ms, connect {:.1} ms)",
        conn.resolve_time.as_secs_f64() * 1e3,
        conn.connect_time.as_secs_f64() * 1e3
    ));
    let trace = config.trace.as_ref();
    if let Some(trace) = trace {
        trace.info(format!("Connected to {peer} from {local}"));
    }
    let settings = Settings {
        crlf: config.crlf,
        half_close: config.half_close,
        end_on_peer_eof: config.end_on_peer_eof,
        idle: config.idle_timeout,
    };
    let mut stats = Stats::default();
    let outcome = match tls {
        None if config.zero_io => return Ok(stats),
        None if trace.is_none() => {
            // The plain path as before: TcpStream's own split needs no lock per poll.
            let mut stream = conn.stream;
            let (rd, wr) = stream.split();
            session(input, output, rd, wr, &settings, &mut stats).await
        }
        None => converse(conn.stream, trace, input, output, &settings, &mut stats).await,
        Some((client, name)) => {
            let handshake = crate::net::tls::handshake(conn.stream, client, name, config.handshake_timeout);
            let stream = handshake.await.inspect_err(|e| {
                if let Some(trace) = trace {
                    trace.info(e.to_string());
                }
            })?;
            for line in HandshakeSummary::of(stream.get_ref().1).lines() {
                note(&line);
                if let Some(trace) = trace {
                    trace.info(line);
                }
            }
            if config.zero_io {
                return Ok(stats);
            }
            converse(stream, trace, input, output, &settings, &mut stats).await
        }
    };
    let outcome = outcome.map_err(|e| e.into_error(peer, &stats));
    if let (Some(trace), Err(e)) = (trace, &outcome) {
        trace.info(e.to_string());
    }
    note(&format!("closed: {} bytes sent, {} bytes received", stats.sent, stats.received));
    if let Some(trace) = trace {
        trace.info(format!("Closed: {} bytes sent, {} bytes received", stats.sent, stats.received));
    }
    outcome.map(|()| stats)
}

/// [`session`] over any stream, through a [`Tap`] when tracing.
async fn converse<S, I, O>(
    stream: S,
    trace: Option<&Trace>,
    input: I,
    output: O,
    settings: &Settings,
    stats: &mut Stats,
) -> Result<(), SessionError>
where
    S: AsyncRead + AsyncWrite + Unpin,
    I: AsyncRead + Unpin,
    O: AsyncWrite + Unpin,
{
    match trace {
        Some(trace) => {
            let (rd, wr) = tokio::io::split(Tap::new(stream, trace.clone()));
            session(input, output, rd, wr, settings, stats).await
        }
        None => {
            let (rd, wr) = tokio::io::split(stream);
            session(input, output, rd, wr, settings, stats).await
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn socket_errors_become_typed_errors_by_class() {
        let peer: SocketAddr = "127.0.0.1:9".parse().unwrap();
        let stats = Stats { sent: 1, received: 10 };
        let reset = SessionError::Socket(io::ErrorKind::ConnectionReset.into()).into_error(peer, &stats);
        assert_eq!(reset.to_string(), "connection reset by peer 127.0.0.1:9 after 10 bytes received");
        let timed_out = SessionError::Socket(io::ErrorKind::TimedOut.into()).into_error(peer, &stats);
        assert!(matches!(timed_out, Error::TimedOut { received: 10, .. }));
        let other = SessionError::Socket(io::ErrorKind::InvalidData.into()).into_error(peer, &stats);
        assert!(matches!(other, Error::Socket { .. }));
        let out = SessionError::Output(io::ErrorKind::BrokenPipe.into()).into_error(peer, &stats);
        assert!(matches!(out, Error::Stdout { written: 10, .. }));
    }

    #[tokio::test]
    async fn run_converses_with_a_server_and_reports_on_diag_only_when_verbose() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = tokio::spawn(async move {
            for _ in 0..2 {
                let (mut s, _) = listener.accept().await.unwrap();
                let mut got = Vec::new();
                s.read_to_end(&mut got).await.unwrap();
                s.write_all(&got).await.unwrap();
            }
        });
        for verbose in [false, true] {
            let mut config = Config::new("127.0.0.1", port);
            config.verbose = verbose;
            let (mut out, mut diag) = (Vec::new(), Vec::new());
            let io = Io { input: &b"echo me"[..], output: &mut out, diag: &mut diag };
            let stats = run(&config, io).await.unwrap();
            assert_eq!(out, b"echo me");
            assert_eq!(stats, Stats { sent: 7, received: 7 });
            let diag = String::from_utf8(diag).unwrap();
            assert_eq!(diag.lines().count(), if verbose { 2 } else { 0 }, "{diag}");
        }
        server.await.unwrap();
    }
}
