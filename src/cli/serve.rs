//! `tcpkit serve` at the edge: its flags, turned into a [`serve::Config`] in
//! one place, and the process concerns the library leaves to its caller:
//! logging set-up, signals (SIGINT/SIGTERM: graceful shutdown; a second one
//! exits at once with 130), the start-up log lines and the exit code.
//!
//! Not for: serving (see `crate::serve`). Defaults are the library's constants.
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::Args;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::Failure;
use crate::log::LogFormat;
use crate::serve::{self, Config, Server, protocol::Protocol};

/// Run the hello server.
///
/// Greets every client, answers each line with the reply template, closes on the
/// quit word. Lines are bytes (no UTF-8 needed); one log line per closed connection
/// goes to stderr.
#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// Address to listen on; repeat for several (e.g. `--listen [::]:9999`).
    /// Plain TCP, or TLS with --tls-cert unless --tls-listen is given.
    /// Default, when neither --listen nor --tls-listen is given: 127.0.0.1:9999.
    #[arg(short, long = "listen", value_name = "ADDR")]
    pub listen: Vec<SocketAddr>,

    /// Address to serve TLS on (needs --tls-cert); repeat for several. When
    /// given, only these serve TLS and the --listen addresses stay plain, so
    /// one server has both. Under socket activation: the inherited listeners
    /// bound to these addresses serve TLS, the others plain.
    #[arg(long = "tls-listen", value_name = "ADDR", requires = "tls_cert")]
    pub tls_listen: Vec<SocketAddr>,

    /// Accept-queue length per listener. Tokio's default of 128 overflows under a
    /// burst of clients, and each dropped SYN costs its client a 1 s retry.
    #[arg(long, value_name = "N", default_value_t = serve::DEFAULT_BACKLOG)]
    pub backlog: u32,

    /// Line sent to each client on connect (a newline is added; empty = none).
    #[arg(long, value_name = "TEXT", default_value = serve::DEFAULT_GREETING)]
    pub greeting: String,

    /// Reply to each line; each `{}` stands for the line's bytes (a newline is added).
    #[arg(long, value_name = "TEMPLATE", default_value = serve::DEFAULT_REPLY)]
    pub reply: String,

    /// The line that closes the connection, after every earlier reply is sent.
    #[arg(long = "quit", value_name = "WORD", default_value = serve::DEFAULT_QUIT)]
    pub quit: String,

    /// Longest line accepted, in bytes, without its newline. A longer one gets
    /// `ERR line too long (limit N bytes)` and the connection is closed.
    #[arg(long, value_name = "BYTES", default_value_t = serve::DEFAULT_MAX_LINE)]
    pub max_line: usize,

    /// Longest reply the template may make of a longest line; a larger
    /// configuration is refused at start (it bounds what a client that does
    /// not read can make the server hold).
    #[arg(long, value_name = "BYTES", default_value_t = serve::DEFAULT_MAX_REPLY)]
    pub max_reply: usize,

    /// Bytes of partial lines all connections together may hold in memory; a
    /// connection whose line would pass it gets `ERR server busy: input budget
    /// exhausted` and is closed.
    #[arg(long, value_name = "BYTES", default_value_t = serve::DEFAULT_INPUT_BUDGET)]
    pub input_budget: usize,

    /// Most connections served at once; one more gets `ERR server busy` and is
    /// closed. Default: what the open-file limit leaves once the server runs.
    #[arg(long, value_name = "N")]
    pub max_connections: Option<usize>,

    /// Close a connection after this long without a byte from the client
    /// (0 = never). Seconds, or with a unit: 500ms, 2m, 1h.
    #[arg(long, value_name = "SECS", default_value = serve::DEFAULT_IDLE_TIMEOUT,
          value_parser = super::duration::parse_duration)]
    pub idle_timeout: Duration,

    /// On SIGINT/SIGTERM, how long to finish owed replies before closing anyway.
    #[arg(long, value_name = "SECS", default_value = serve::DEFAULT_SHUTDOWN_TIMEOUT,
          value_parser = super::duration::parse_duration)]
    pub shutdown_timeout: Duration,

    /// On SIGINT/SIGTERM, keep serving a connection until it has been quiet
    /// this long (at most half of --shutdown-timeout), so a client in the middle
    /// of a short conversation finishes it: restarts cost no errors. 0 = answer
    /// what has arrived and close at the signal.
    #[arg(long, value_name = "DURATION", default_value = serve::DEFAULT_DRAIN_IDLE,
          value_parser = super::duration::parse_duration)]
    pub drain_idle: Duration,

    /// Worker threads (0 = one per core, at most 1024). On a machine shared with
    /// the load generator, `--threads 1` spends the least CPU per reply.
    #[arg(long, value_name = "N", default_value_t = serve::DEFAULT_THREADS,
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(0..=serve::MAX_THREADS as u64))]
    pub threads: usize,

    /// Expect a PROXY protocol header (v1 or v2, HAProxy's spec) first on
    /// every connection, as sent by a load balancer; the log line then shows
    /// the client's addresses beside the balancer's. Never auto-detected.
    #[arg(long)]
    pub proxy_protocol: bool,

    /// Peers allowed to send a PROXY header (CIDR; repeat for several); a
    /// connection from any other is closed. Default: loopback.
    #[arg(long, value_name = "CIDR", requires = "proxy_protocol")]
    pub proxy_trusted: Vec<serve::proxy::Cidr>,

    /// Serve Prometheus metrics at http://ADDR/metrics (e.g. 127.0.0.1:9100).
    #[arg(long, value_name = "ADDR")]
    pub metrics: Option<SocketAddr>,

    /// Set SO_REUSEPORT, so several servers can listen on one port (for a
    /// restart without downtime: start the new one, then SIGTERM the old).
    #[arg(long)]
    pub reuse_port: bool,

    /// Serve TLS with this PEM certificate chain (needs --tls-key): on every
    /// listener, or on the --tls-listen ones only when there are any. Re-read, with the key, on SIGHUP: new handshakes get the
    /// new pair, established connections continue.
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,

    /// The PEM private key of --tls-cert.
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,

    /// Require a client certificate signed by a CA in this PEM file (mTLS);
    /// a client without one, or with another, fails the handshake.
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    pub tls_client_ca: Option<PathBuf>,

    /// The lowest TLS version accepted: 1.2 or 1.3.
    #[arg(long, value_name = "VERSION", default_value = "1.2", requires = "tls_cert")]
    pub tls_min: crate::net::tls::TlsVersion,

    /// An ALPN protocol the server accepts (repeat for several, in order of
    /// preference). A client offering only others fails the handshake
    /// (`no_application_protocol`); one offering none is served. Default: no ALPN.
    #[arg(long, value_name = "PROTO", requires = "tls_cert")]
    pub tls_alpn: Vec<String>,

    /// Close a client that has not finished the TLS handshake after this long.
    /// Seconds, or with a unit: 500ms, 2m.
    #[arg(long, value_name = "SECS", default_value = serve::DEFAULT_TLS_HANDSHAKE_TIMEOUT,
          value_parser = super::duration::parse_duration)]
    pub tls_handshake_timeout: Duration,

    /// Trace every connection to a file of its own in DIR (curl's --trace
    /// layout, named by start time and 4-tuple, created at the first byte).
    /// DIR must exist and be writable; a write that fails later is logged
    /// once and never affects serving.
    #[arg(long, value_name = "DIR")]
    pub trace: Option<PathBuf>,

    /// Data bytes traced per connection (both directions); past it one line
    /// says so and nothing more is recorded, so a busy server cannot fill the disk.
    #[arg(long, value_name = "BYTES", default_value_t = serve::trace::DEFAULT_MAX_BYTES, requires = "trace")]
    pub trace_max_bytes: u64,

    /// Log warnings and errors only (no per-connection lines).
    #[arg(short, long, conflicts_with = "verbose")]
    pub quiet: bool,

    /// More logging (-v debug, -vv trace). `RUST_LOG` overrides both.
    #[arg(short, long, action = clap::ArgAction::Count)]
    pub verbose: u8,

    /// Log format on stderr.
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    /// Log lines held for a stderr that is not being read (a stalled log
    /// pipe); past it lines are dropped and counted, never serving slowed.
    #[arg(long, value_name = "LINES", default_value_t = crate::log::QUEUE_LINES,
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=1 << 24))]
    pub log_queue: usize,
}

impl ServeArgs {
    /// The server configuration the flags ask for.
    pub fn config(&self) -> Config {
        Config {
            listen: if self.listen.is_empty() && self.tls_listen.is_empty() {
                // The flag's default: it applies only when no listener is given.
                serve::DEFAULT_LISTEN.parse().into_iter().collect()
            } else {
                self.listen.clone()
            },
            tls_listen: self.tls_listen.clone(),
            backlog: self.backlog,
            protocol: Protocol::new(&self.greeting, &self.reply, &self.quit),
            max_line: self.max_line,
            max_reply: self.max_reply,
            input_budget: self.input_budget,
            max_connections: self.max_connections,
            idle_timeout: (!self.idle_timeout.is_zero()).then_some(self.idle_timeout),
            shutdown_timeout: self.shutdown_timeout,
            drain_idle: self.drain_idle,
            threads: self.threads,
            metrics: self.metrics,
            reuse_port: self.reuse_port,
            tls: self.tls_cert.as_ref().zip(self.tls_key.as_ref()).map(|(cert, key)| {
                crate::net::tls::ServerSettings {
                    cert: cert.clone(),
                    key: key.clone(),
                    client_ca: self.tls_client_ca.clone(),
                    alpn: self.tls_alpn.clone(),
                    min_version: self.tls_min,
                }
            }),
            tls_handshake_timeout: self.tls_handshake_timeout,
            trace: self
                .trace
                .as_ref()
                .map(|dir| serve::trace::TraceConfig { dir: dir.clone(), max_bytes: self.trace_max_bytes }),
            proxy_protocol: self.proxy_protocol.then(|| {
                if self.proxy_trusted.is_empty() {
                    serve::proxy::default_trusted()
                } else {
                    self.proxy_trusted.clone()
                }
            }),
        }
    }
}

/// Exit code when the server cannot start.
const EXIT_START: u8 = 1;
/// Exit code on a second signal (128 + SIGINT, as shells report an interrupt).
const EXIT_SECOND_SIGNAL: i32 = 130;

impl ServeArgs {
    /// `tcpkit serve`: log set-up, bind, serve until a signal.
    pub fn run(self) -> Result<(), Failure> {
        run(self)
    }
}

fn run(args: ServeArgs) -> Result<(), Failure> {
    let _log = crate::log::init(args.quiet, args.verbose, args.log_format, args.log_queue);
    let config = args.config();
    let fail = |e: &dyn std::fmt::Display| Failure::new(EXIT_START, e.to_string());
    serve::limits::check_start().map_err(|e| fail(&e))?;
    // The runtime exists before bind, so its descriptors are counted in the
    // server's reserve.
    let rt = crate::net::runtime(1).map_err(|e| fail(&e))?;
    // Under systemd socket activation the listeners are handed over
    // (LISTEN_FDS) and --listen is not used: they outlive this process.
    let inherited = systemd_listeners().map_err(|e| fail(&e))?;
    let activated = !inherited.is_empty();
    let server = if activated { Server::with_listeners(&config, inherited) } else { Server::bind(&config) }
        .map_err(|e| fail(&e))?;
    rt.block_on(async {
        // Handlers first: once "listening" is logged, a supervisor may signal.
        let shutdown = CancellationToken::new();
        match Signals::install() {
            Ok(signals) => drop(tokio::spawn(signals.watch(shutdown.clone()))),
            Err(e) => warn!(error = %e, "cannot install signal handlers; stop the server with SIGKILL"),
        }
        if let Some(cert) = server.tls_cert() {
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
                Ok(hup) => drop(tokio::spawn(reload_on_hup(hup, cert))),
                Err(e) => {
                    warn!(error = %e, "cannot install the SIGHUP handler: certificates are not reloaded")
                }
            }
        }
        for (addr, tls) in server.listeners() {
            info!(%addr, tls, activated, "listening");
        }
        if let Some(addr) = server.metrics_addr() {
            info!(%addr, "metrics");
        }
        let c = server.capacity();
        info!(
            max_connections = c.max_connections,
            threads = c.threads,
            open_file_limit = c.open_file_limit,
            open_at_start = c.open_at_start,
            worst_reply = c.worst_reply,
            worst_case_memory = c.worst_case_memory,
            "capacity"
        );
        if c.max_connections > c.fd_connections {
            warn!(
                max_connections = c.max_connections,
                fd_connections = c.fd_connections,
                "--max-connections is over what the open-file limit allows: clients past it wait \
                 in the backlog instead of being told busy; lower it or raise ulimit -n"
            );
        }
        // Tell systemd (Type=notify) we serve; without NOTIFY_SOCKET a no-op.
        let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Ready]);
        let t = server.run(shutdown).await.map_err(|e| fail(&e))?;
        info!(served = t.served, busy = t.busy, cut = t.cut, "stopped");
        Ok(())
    })
}

/// SIGHUP: re-read the TLS certificate and key, one log line each time.
/// A bad pair is refused and the one in use kept.
async fn reload_on_hup(mut hup: tokio::signal::unix::Signal, cert: Arc<crate::net::tls::ReloadableCert>) {
    while hup.recv().await.is_some() {
        match cert.reload() {
            Ok(()) => info!("SIGHUP: TLS certificate reloaded"),
            Err(e) => warn!(error = %e, "SIGHUP: TLS certificate kept: the new one is unusable"),
        }
    }
}

/// The TCP listeners systemd passed (`LISTEN_FDS`, `LISTEN_PID` this
/// process), in order; none when not socket-activated.
fn systemd_listeners() -> std::io::Result<Vec<std::net::TcpListener>> {
    let mut fds = listenfd::ListenFd::from_env();
    let mut listeners = Vec::new();
    for i in 0..fds.len() {
        match fds.take_tcp_listener(i)? {
            Some(l) => listeners.push(l),
            None => warn!(index = i, "socket activation: descriptor is not a TCP listener; ignored"),
        }
    }
    Ok(listeners)
}

/// SIGINT and SIGTERM, watched from start-up on.
struct Signals {
    int: tokio::signal::unix::Signal,
    term: tokio::signal::unix::Signal,
}

impl Signals {
    fn install() -> std::io::Result<Signals> {
        use tokio::signal::unix::{SignalKind, signal};
        Ok(Signals { int: signal(SignalKind::interrupt())?, term: signal(SignalKind::terminate())? })
    }

    /// First signal: graceful shutdown. Second: exit at once.
    async fn watch(mut self, shutdown: CancellationToken) {
        tokio::select! { _ = self.int.recv() => {}, _ = self.term.recv() => {} }
        info!("shutting down: no new connections; answering what has arrived");
        let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Stopping]);
        shutdown.cancel();
        tokio::select! { _ = self.int.recv() => {}, _ = self.term.recv() => {} }
        warn!("second signal: exiting now");
        crate::log::flush(crate::log::FLUSH_TIMEOUT);
        std::process::exit(EXIT_SECOND_SIGNAL);
    }
}

#[cfg(test)]
mod tests {
    use crate::cli::{Cli, Command};
    use clap::Parser;

    fn serve(args: &[&str]) -> super::ServeArgs {
        let mut argv = vec!["tcpkit", "serve"];
        argv.extend_from_slice(args);
        match Cli::try_parse_from(argv).expect("parses").command {
            Command::Serve(a) => a,
            other => panic!("not serve: {other:?}"),
        }
    }

    #[test]
    fn defaults_match_the_tutorial() {
        let a = serve(&[]);
        assert_eq!(a.config().listen, vec!["127.0.0.1:9999".parse().unwrap()]);
        assert!(a.config().tls_listen.is_empty() && a.config().tls.is_none());
        assert_eq!(a.greeting, "Welcome!");
        assert_eq!(a.reply, "Hello, {}!");
        assert_eq!(a.quit, "exit");
        assert_eq!(a.max_line, 65536);
        assert_eq!(a.backlog, 1024);
        assert_eq!(a.idle_timeout, std::time::Duration::from_secs(300));
        assert_eq!(a.shutdown_timeout, std::time::Duration::from_secs(10));
        assert_eq!(a.max_connections, None);
        // The library's defaults and the flags' are the same constants.
        let (from_flags, library) = (a.config(), crate::serve::Config::default());
        assert_eq!(from_flags.max_line, library.max_line);
        assert_eq!(from_flags.input_budget, library.input_budget);
        assert_eq!(from_flags.idle_timeout, library.idle_timeout);
        assert_eq!(from_flags.protocol.greeting, library.protocol.greeting);
    }

    #[test]
    fn listen_is_repeatable_and_takes_ipv6() {
        let a = serve(&["--listen", "[::]:7000", "--listen", "127.0.0.1:7001"]);
        assert_eq!(a.listen.len(), 2);
        assert!(a.listen[0].is_ipv6());
    }

    #[test]
    fn tls_listen_alone_drops_the_default_plain_listener() {
        let a = serve(&["--tls-cert", "c.pem", "--tls-key", "k.pem", "--tls-listen", "127.0.0.1:9443"]);
        let c = a.config();
        assert_eq!((c.listen.len(), c.tls_listen.len()), (0, 1));
        let a = serve(&["--tls-cert", "c", "--tls-key", "k", "--tls-listen", "[::1]:1", "-l", "[::1]:2"]);
        assert_eq!((a.config().listen.len(), a.config().tls_listen.len()), (1, 1));
    }

    #[test]
    fn tls_flags_need_a_certificate() {
        for flags in [&["--tls-listen", "127.0.0.1:9443"][..], &["--tls-min", "1.3"], &["--tls-alpn", "x"]] {
            let mut argv = vec!["tcpkit", "serve"];
            argv.extend_from_slice(flags);
            let err = Cli::try_parse_from(argv).expect_err("refused").to_string();
            assert!(err.contains("--tls-cert"), "{flags:?}: {err}");
        }
        let a = serve(&[
            "--tls-cert",
            "c",
            "--tls-key",
            "k",
            "--tls-min",
            "1.3",
            "--tls-alpn",
            "a",
            "--tls-alpn",
            "b",
        ]);
        let tls = a.config().tls.expect("tls");
        assert_eq!(
            (tls.min_version, tls.alpn),
            (crate::net::tls::TlsVersion::Tls13, vec!["a".into(), "b".into()])
        );
        assert!(
            Cli::try_parse_from(["tcpkit", "serve", "--tls-cert", "c", "--tls-key", "k", "--tls-min", "1.1"])
                .is_err()
        );
    }

    #[test]
    fn threads_are_bounded() {
        assert_eq!(serve(&["--threads", "1024"]).threads, 1024);
        assert!(Cli::try_parse_from(["tcpkit", "serve", "--threads", "1025"]).is_err());
    }

    #[test]
    fn bad_address_is_rejected() {
        assert!(Cli::try_parse_from(["tcpkit", "serve", "--listen", "nowhere"]).is_err());
    }
}
