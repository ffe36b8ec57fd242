//! Flags of `tcpkit connect`, and its process concerns: flags become a
//! [`connect::Config`], the runtime is started here, the final error is printed
//! here, and [`exit_code`] is the one place exit codes are chosen.
//!
//! Not for: behaviour. The conversation itself is [`crate::connect::run`].
use std::io::{self, IsTerminal, Write};
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use crate::Failure;
use crate::connect::{self, Error};
use crate::net::connect::{ConnectError, Family};
use crate::net::proxy::{self, Tlv};
use crate::net::tls::{ClientSettings, HandshakeError, TlsVersion};
use crate::net::trace::{self, Format, Trace, TraceWriter};

/// Exit code for a clean close by the server.
#[allow(dead_code, reason = "success is ExitCode::SUCCESS in main; listed for the table test")]
pub const EXIT_OK: u8 = 0;
/// Exit code for any failure not listed below.
pub const EXIT_OTHER: u8 = 1;
/// Exit code when the name does not resolve (to an address of the allowed family).
pub const EXIT_RESOLVE: u8 = 2;
/// Exit code when every address refused the connection.
pub const EXIT_REFUSED: u8 = 3;
/// Exit code for a connect timeout, an idle timeout (`-w`) or a connection
/// that timed out while open.
pub const EXIT_TIMED_OUT: u8 = 4;
/// Exit code when the peer reset the connection.
pub const EXIT_RESET: u8 = 5;
/// Exit code when stdout cannot be written (closed pipe, full disk).
pub const EXIT_STDOUT: u8 = 6;
/// Exit code when the TLS handshake failed (alert, no common version, not TLS).
pub const EXIT_TLS: u8 = 7;
/// Exit code when the server's certificate was rejected (unknown issuer,
/// expired, not valid for the name).
pub const EXIT_CERTIFICATE: u8 = 8;

/// The exit code for each failure (see the `EXIT_*` constants).
pub fn exit_code(err: &Error) -> u8 {
    match err {
        Error::Connect(ConnectError::Resolve { .. } | ConnectError::NoAddress { .. }) => EXIT_RESOLVE,
        Error::Connect(ConnectError::Refused { .. }) => EXIT_REFUSED,
        Error::Connect(ConnectError::TimedOut { .. })
        | Error::Idle { .. }
        | Error::TimedOut { .. }
        | Error::Tls(HandshakeError::TimedOut { .. }) => EXIT_TIMED_OUT,
        Error::Tls(HandshakeError::Certificate { .. }) => EXIT_CERTIFICATE,
        Error::Tls(HandshakeError::Failed { .. }) => EXIT_TLS,
        Error::Reset { .. } => EXIT_RESET,
        Error::Stdout { .. } => EXIT_STDOUT,
        _ => EXIT_OTHER,
    }
}

/// Connect to HOST PORT; copy stdin to the socket and the socket to stdout.
///
/// Both directions run at once, until both are done. On stdin EOF the socket's
/// write half is shut down and output goes on until the server closes, so a
/// piped conversation is printed in full. Exit codes: 0 clean close, 1 other error, 2 name not
/// resolved, 3 refused, 4 timed out (connect or -w idle), 5 reset by the peer,
/// 6 stdout closed or not writable.
#[derive(Debug, Clone, Args)]
#[command(after_help = "\
Stdin EOF shuts down the socket's write half; output goes on until the server closes. After the \
server's EOF the rest of stdin is still sent (it may have half-closed), except when stdin is a \
terminal: then the client ends at once.

Exit codes: 0 clean close by the server, 1 other error, 2 name not resolved (or no address of \
the -4/-6 family), 3 connection refused, 4 timed out (--connect-timeout, -w, or the open \
connection, or the TLS handshake), 5 connection reset by the peer, 6 stdout closed or not writable, 7 TLS handshake failed, 8 TLS certificate rejected (unknown issuer, expired, wrong name).

Example: printf 'Michael\\nexit\\n' | tcpkit connect 127.0.0.1 9999")]
pub struct ConnectArgs {
    /// Host name or IP address (an IPv6 literal with or without brackets).
    pub host: String,
    /// TCP port.
    pub port: u16,
    /// Use IPv4 addresses only.
    #[arg(short = '4', conflicts_with = "ipv6")]
    pub ipv4: bool,
    /// Use IPv6 addresses only.
    #[arg(short = '6')]
    pub ipv6: bool,
    /// Give up connecting after this many seconds, resolving and all addresses
    /// together (0 = wait as long as the OS does).
    #[arg(long, value_name = "SECS", default_value = "10", value_parser = super::duration::parse_duration)]
    pub connect_timeout: std::time::Duration,
    /// Send each `\n` from stdin as `\r\n` (a `\r\n` already there is kept as is).
    #[arg(short = 'C', long)]
    pub crlf: bool,
    /// Close after this many seconds with no data either way, exit code 4 (0 = never).
    #[arg(short = 'w', long = "idle-timeout", value_name = "SECS", default_value = "0",
          value_parser = super::duration::parse_duration)]
    pub idle_timeout: std::time::Duration,
    /// Connect from this local address (the port is chosen by the OS).
    #[arg(short = 's', long, value_name = "ADDR")]
    pub source: Option<IpAddr>,
    /// Only check that the port accepts a connection, then close: no data is sent
    /// or read (exit 0 when it does).
    #[arg(short = 'z', long = "zero-io", conflicts_with_all = ["crlf", "no_shutdown"])]
    pub zero_io: bool,
    /// Keep the write half open after stdin EOF (for servers that treat a
    /// half-close as a hang-up); output still goes on until the server closes.
    #[arg(long)]
    pub no_shutdown: bool,
    /// Print connection details on stderr (addresses, timings, byte counts;
    /// with --tls the version, cipher, ALPN and the server's certificate).
    #[arg(short, long)]
    pub verbose: bool,

    /// Speak TLS: the server's certificate is verified against the system's
    /// roots (or --cacert) and the host name.
    #[arg(long, help_heading = "TLS")]
    pub tls: bool,
    /// Trust only the CA certificates in this PEM file.
    #[arg(long, value_name = "FILE", requires = "tls", help_heading = "TLS")]
    pub cacert: Option<PathBuf>,
    /// Do not verify the server's certificate (its handshake signature still is).
    #[arg(short = 'k', long, requires = "tls", help_heading = "TLS")]
    pub insecure: bool,
    /// Name for SNI and for checking the certificate, instead of HOST.
    #[arg(long, value_name = "NAME", requires = "tls", help_heading = "TLS")]
    pub sni: Option<String>,
    /// Send no SNI (the certificate is still checked against HOST or --sni).
    #[arg(long, requires = "tls", help_heading = "TLS")]
    pub no_sni: bool,
    /// Offer this ALPN protocol (repeat for several, in order of preference).
    #[arg(long, value_name = "PROTO", requires = "tls", help_heading = "TLS")]
    pub alpn: Vec<String>,
    /// Client certificate chain (PEM), for servers that ask for one.
    #[arg(long, value_name = "FILE", requires_all = ["tls", "key"], help_heading = "TLS")]
    pub cert: Option<PathBuf>,
    /// Private key (PEM) of --cert.
    #[arg(long, value_name = "FILE", requires = "cert", help_heading = "TLS")]
    pub key: Option<PathBuf>,
    /// Lowest TLS version accepted: 1.2 or 1.3.
    #[arg(long, value_name = "VERSION", default_value = "1.2", requires = "tls", help_heading = "TLS")]
    pub tls_min: TlsVersion,
    /// Give up the TLS handshake after this many seconds (0 = wait as long as the server).
    // The default is connect::DEFAULT_HANDSHAKE_TIMEOUT: flags_become_the_library_config checks it.
    #[arg(long, value_name = "SECS", default_value = "10", help_heading = "TLS",
          value_parser = super::duration::parse_duration)]
    pub handshake_timeout: Duration,

    /// Record every byte both ways in curl's --trace layout (hex and ASCII);
    /// `-` writes it to stderr.
    #[arg(long, value_name = "FILE", group = "tracing", help_heading = "Traces")]
    pub trace: Option<PathBuf>,
    /// Like --trace, in curl's --trace-ascii layout (ASCII only).
    #[arg(long, value_name = "FILE", group = "tracing", help_heading = "Traces")]
    pub trace_ascii: Option<PathBuf>,
    /// Record every byte both ways in ncat's --hex-dump layout, each chunk
    /// under a line with its time and direction.
    #[arg(long, value_name = "FILE", group = "tracing", help_heading = "Traces")]
    pub hex_dump: Option<PathBuf>,
    /// Start each --trace/--trace-ascii event with the time of day (UTC, microseconds).
    #[arg(long, requires = "tracing", help_heading = "Traces")]
    pub trace_time: bool,

    /// Send a PROXY protocol header of this version first (before TLS), as a
    /// load balancer does: `v1` (text) or `v2` (binary).
    #[arg(long, value_name = "v1|v2", help_heading = "PROXY protocol")]
    pub proxy_header: Option<proxy::Version>,
    /// The client address the header claims, `ADDR` or `ADDR:PORT`
    /// (`[ADDR]:PORT` for IPv6) [default: the connection's local address; without
    /// PORT, its local port].
    #[arg(long, value_name = "ADDR[:PORT]", requires = "proxy_header", value_parser = parse_proxy_source,
          help_heading = "PROXY protocol")]
    pub proxy_source: Option<std::net::SocketAddr>,
    /// Send no addresses: v1 `PROXY UNKNOWN`, v2 `LOCAL` (a balancer's health check).
    #[arg(long, requires = "proxy_header", conflicts_with = "proxy_source", help_heading = "PROXY protocol")]
    pub proxy_local: bool,
    /// v2 only: an AUTHORITY TLV with this host name.
    #[arg(long, value_name = "NAME", requires = "proxy_header", value_parser = parse_authority,
          help_heading = "PROXY protocol")]
    pub proxy_authority: Option<Tlv>,
    /// v2 only: a UNIQUE_ID TLV with this id (at most 128 bytes).
    #[arg(long, value_name = "ID", requires = "proxy_header", value_parser = parse_unique_id,
          help_heading = "PROXY protocol")]
    pub proxy_unique_id: Option<Tlv>,
}

/// `ADDR` (port 0: keep the connection's local port) or `ADDR:PORT`, `[ADDR]:PORT`.
fn parse_proxy_source(s: &str) -> Result<std::net::SocketAddr, String> {
    if let Ok(addr) = s.parse::<std::net::SocketAddr>() {
        if addr.port() == 0 {
            return Err("port 0 is not a client port (leave PORT out to keep the local port)".into());
        }
        return Ok(addr);
    }
    let ip = s.strip_prefix('[').and_then(|r| r.strip_suffix(']')).unwrap_or(s);
    ip.parse::<IpAddr>()
        .map(|ip| std::net::SocketAddr::new(ip, 0))
        .map_err(|_| "expected ADDR, ADDR:PORT or [IPv6]:PORT".to_string())
}

fn parse_authority(s: &str) -> Result<Tlv, proxy::ProxyError> {
    Tlv::authority(s)
}

fn parse_unique_id(s: &str) -> Result<Tlv, proxy::ProxyError> {
    Tlv::unique_id(s.as_bytes())
}

impl ConnectArgs {
    /// The library configuration these flags ask for; `stdin_is_terminal` ends
    /// the session at the server's EOF (the conversation is over).
    pub fn config(&self, stdin_is_terminal: bool) -> connect::Config {
        // 0 means no limit (the duration parser caps huge values).
        let secs = |d: Duration| (!d.is_zero()).then_some(d);
        let mut config = connect::Config::new(self.host.clone(), self.port);
        config.family = Family::from_flags(self.ipv4, self.ipv6);
        config.connect_timeout = secs(self.connect_timeout);
        config.idle_timeout = secs(self.idle_timeout);
        config.source = self.source;
        config.crlf = self.crlf;
        config.half_close = !self.no_shutdown;
        config.zero_io = self.zero_io;
        config.end_on_peer_eof = stdin_is_terminal;
        config.verbose = self.verbose;
        config.tls = self.tls.then(|| ClientSettings {
            cacert: self.cacert.clone(),
            insecure: self.insecure,
            alpn: self.alpn.clone(),
            client_cert: self.cert.clone().zip(self.key.clone()),
            min_version: self.tls_min,
            no_sni: self.no_sni,
            // One connection: nothing to resume from.
            resume: false,
        });
        config.tls_name = self.sni.clone();
        config.handshake_timeout = secs(self.handshake_timeout);
        config.proxy = self.proxy_header.map(|version| {
            let mut p = connect::ProxyHeader::new(version);
            p.source = self.proxy_source;
            p.local = self.proxy_local;
            p.tlvs = [&self.proxy_authority, &self.proxy_unique_id].into_iter().flatten().cloned().collect();
            p
        });
        config
    }

    /// The trace file asked for and its layout, if any.
    fn trace_target(&self) -> Option<(&PathBuf, trace::Options)> {
        let (path, format) = match (&self.trace, &self.trace_ascii, &self.hex_dump) {
            (Some(p), _, _) => (p, Format::Curl),
            (_, Some(p), _) => (p, Format::CurlAscii),
            (_, _, Some(p)) => (p, Format::HexDump),
            _ => return None,
        };
        Some((path, trace::Options { format, time: self.trace_time, ..trace::Options::default() }))
    }

    /// Open the trace file (`-`: stderr) and start its writer.
    fn start_trace(&self) -> Result<Option<(Trace, TraceWriter, String)>, Failure> {
        let Some((path, opts)) = self.trace_target() else { return Ok(None) };
        let shown = path.display().to_string();
        let started = if shown == "-" {
            trace::start(io::stderr(), opts)
        } else {
            std::fs::File::create(path).and_then(|file| trace::start(io::BufWriter::new(file), opts))
        };
        match started {
            Ok((trace, writer)) => Ok(Some((trace, writer, shown))),
            Err(e) => Err(fail(EXIT_OTHER, &format!("trace: {shown}: {e}"))),
        }
    }

    /// Run `tcpkit connect` as a process: start the runtime, converse on
    /// stdin/stdout, print the final error once (best effort) and give the exit code.
    pub fn run(self) -> Result<(), Failure> {
        let mut config = self.config(io::stdin().is_terminal());
        let tracing = self.start_trace()?;
        config.trace = tracing.as_ref().map(|(trace, _, _)| trace.clone());
        let rt =
            crate::net::runtime(1).map_err(|e| fail(EXIT_OTHER, &format!("starting the runtime: {e}")))?;
        let io = connect::Io { input: tokio::io::stdin(), output: tokio::io::stdout(), diag: io::stderr() };
        let outcome = rt.block_on(connect::run(&config, io));
        // A read of stdin may still be blocked in the runtime's thread pool (the
        // server closed first); waiting for it would hang until the user types.
        rt.shutdown_background();
        if let Some((_, writer, shown)) = tracing {
            // Best effort: a trace that failed is reported, the exit code is the conversation's.
            let done = writer.finish();
            if let Some(e) = done.error {
                let _ = writeln!(io::stderr(), "tcpkit: warning: trace {shown}: {e}");
            }
            if done.dropped > 0 {
                let _ = writeln!(
                    io::stderr(),
                    "tcpkit: warning: trace {shown}: {} bytes not recorded",
                    done.dropped
                );
            }
        }
        match outcome {
            Ok(_) => Ok(()),
            Err(err) => Err(fail(exit_code(&err), &err.to_string())),
        }
    }
}

/// Print `tcpkit: error: MESSAGE` (a closed stderr leaves only the code to tell).
fn fail(code: u8, message: &str) -> Failure {
    let _ = writeln!(io::stderr(), "tcpkit: error: {message}");
    Failure::silent(code)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::{Cli, Command};
    use clap::Parser;

    fn parse(args: &[&str]) -> Result<super::ConnectArgs, clap::Error> {
        let cli = Cli::try_parse_from(["tcpkit", "connect"].iter().chain(args))?;
        let Command::Connect(a) = cli.command else { panic!("not connect") };
        Ok(a)
    }

    #[test]
    fn host_port_and_flags() {
        let cli = Cli::try_parse_from(["tcpkit", "connect", "-6", "--crlf", "-w", "2", "::1", "9999"])
            .expect("parses");
        let Command::Connect(a) = cli.command else { panic!("not connect") };
        assert_eq!((a.host.as_str(), a.port), ("::1", 9999));
        assert!(a.ipv6 && a.crlf && !a.ipv4);
        assert_eq!(a.idle_timeout, std::time::Duration::from_secs(2));
    }

    #[test]
    fn four_and_six_conflict() {
        assert!(Cli::try_parse_from(["tcpkit", "connect", "-4", "-6", "h", "1"]).is_err());
    }

    #[test]
    fn defaults_are_ten_second_connect_timeout_and_no_idle_timeout() {
        let a = parse(&["example.com", "80"]).unwrap();
        assert_eq!(
            (a.connect_timeout, a.idle_timeout),
            (std::time::Duration::from_secs(10), std::time::Duration::ZERO)
        );
        assert!(!a.crlf && !a.zero_io && !a.no_shutdown && !a.verbose && a.source.is_none());
    }

    #[test]
    fn netcat_style_short_flags() {
        let a = parse(&["-C", "-z", "-s", "127.0.0.2", "-v", "--connect-timeout", "0.5", "h", "7"]);
        // -z conflicts with -C: nothing would be sent to convert.
        assert!(a.is_err());
        let a = parse(&["-z", "-s", "127.0.0.2", "-v", "--connect-timeout", "0.5", "h", "7"]).unwrap();
        assert!(a.zero_io && a.verbose);
        assert_eq!(a.source, Some("127.0.0.2".parse().unwrap()));
        assert_eq!(a.connect_timeout, std::time::Duration::from_millis(500));
    }

    #[test]
    fn negative_and_nan_seconds_are_rejected_and_huge_ones_capped() {
        for bad in ["-1", "NaN", "inf", "soon"] {
            assert!(parse(&["-w", bad, "h", "1"]).is_err(), "-w {bad}");
            assert!(parse(&["--connect-timeout", bad, "h", "1"]).is_err(), "--connect-timeout {bad}");
        }
        let a = parse(&["-w", "1.8e19", "--connect-timeout", "1e300", "h", "1"]).unwrap();
        assert_eq!(
            (a.idle_timeout, a.connect_timeout),
            (crate::cli::duration::MAX, crate::cli::duration::MAX)
        );
    }

    #[test]
    fn help_states_the_exit_codes_the_command_uses() {
        use super::*;
        use clap::CommandFactory;
        let mut cli = Cli::command();
        let help = cli.find_subcommand_mut("connect").unwrap().render_help().to_string().replace('\n', " ");
        for (code, meaning) in [
            (EXIT_OK, "clean close"),
            (EXIT_OTHER, "other error"),
            (EXIT_RESOLVE, "name not resolved"),
            (EXIT_REFUSED, "connection refused"),
            (EXIT_TIMED_OUT, "timed out"),
            (EXIT_RESET, "connection reset"),
            (EXIT_STDOUT, "stdout closed"),
            (EXIT_TLS, "TLS handshake failed"),
            (EXIT_CERTIFICATE, "TLS certificate rejected"),
        ] {
            assert!(help.contains(&format!("{code} {meaning}")), "help lacks `{code} {meaning}`:\n{help}");
        }
    }

    /// Every code of README's exit-code table for `tcpkit connect`, and an
    /// error that yields it.
    #[test]
    fn exit_code_table_matches_the_readme() {
        use super::*;
        use std::net::SocketAddr;
        let peer: SocketAddr = "127.0.0.1:1".parse().unwrap();
        let secs = Duration::from_secs(1);
        let cases: Vec<(Error, u8)> = vec![
            (Error::Stdin(io::ErrorKind::InvalidData.into()), EXIT_OTHER),
            (Error::Socket { peer, source: io::ErrorKind::InvalidData.into() }, EXIT_OTHER),
            (
                Error::Connect(ConnectError::Other {
                    addr: peer,
                    source: io::ErrorKind::AddrNotAvailable.into(),
                }),
                EXIT_OTHER,
            ),
            (
                Error::Connect(ConnectError::Resolve {
                    host: "h".into(),
                    source: io::ErrorKind::NotFound.into(),
                }),
                EXIT_RESOLVE,
            ),
            (Error::Connect(ConnectError::NoAddress { host: "h".into(), family: "IPv4" }), EXIT_RESOLVE),
            (Error::Connect(ConnectError::Refused { addr: peer }), EXIT_REFUSED),
            (
                Error::Connect(ConnectError::TimedOut { host: "h".into(), port: 1, after: secs }),
                EXIT_TIMED_OUT,
            ),
            (Error::Idle { after: secs }, EXIT_TIMED_OUT),
            (Error::TimedOut { peer, received: 0 }, EXIT_TIMED_OUT),
            (Error::Reset { peer, received: 0 }, EXIT_RESET),
            (Error::Stdout { source: io::ErrorKind::BrokenPipe.into(), written: 0 }, EXIT_STDOUT),
            (Error::Tls(HandshakeError::TimedOut { name: "h".into(), after: secs }), EXIT_TIMED_OUT),
            (Error::Tls(HandshakeError::Failed { name: "h".into(), reason: "alert".into() }), EXIT_TLS),
            (Error::Tls(HandshakeError::BadName { name: "h".into(), reason: "bad".into() }), EXIT_OTHER),
            (Error::TlsConfig(crate::net::tls::TlsError::Pem("no key".into())), EXIT_OTHER),
            (Error::Proxy(proxy::ProxyError::TlvInV1), EXIT_OTHER),
            (
                Error::Tls(HandshakeError::Certificate {
                    name: "h".into(),
                    kind: rustls::CertificateError::UnknownIssuer,
                    reason: "unknown issuer".into(),
                }),
                EXIT_CERTIFICATE,
            ),
        ];
        for (err, code) in &cases {
            assert_eq!(exit_code(err), *code, "{err}");
        }
        // The README's table (the rows after `**Exit codes.**` in the connect
        // section) lists exactly 0 and the codes above.
        let readme = include_str!("../../README.md");
        let section = &readme[readme.find("## tcpkit connect").unwrap()..];
        let table = &section[section.find("**Exit codes.**").unwrap()..];
        let mut documented: Vec<u8> = table
            .lines()
            .skip_while(|l| !l.starts_with("| code"))
            .skip(2)
            .take_while(|l| l.starts_with('|'))
            .map(|l| l.trim_start_matches('|').split('|').next().unwrap().trim().parse().unwrap())
            .collect();
        documented.sort_unstable();
        let mut tested: Vec<u8> = cases.iter().map(|(_, c)| *c).chain([EXIT_OK]).collect();
        tested.sort_unstable();
        tested.dedup();
        assert_eq!(documented, tested);
    }

    #[test]
    fn flags_become_the_library_config() {
        let a =
            parse(&["-4", "-w", "1.5", "--connect-timeout", "0", "--no-shutdown", "-C", "h", "7"]).unwrap();
        let c = a.config(true);
        assert_eq!(c.family, Family::V4);
        assert_eq!(c.idle_timeout, Some(Duration::from_millis(1500)));
        assert_eq!(c.connect_timeout, None);
        assert!(!c.half_close && c.crlf && c.end_on_peer_eof);
        let d = parse(&["h", "7"]).unwrap().config(false);
        assert_eq!(d.connect_timeout, Some(connect::DEFAULT_CONNECT_TIMEOUT));
        assert_eq!(d.idle_timeout, connect::DEFAULT_IDLE_TIMEOUT);
        assert_eq!(d.handshake_timeout, Some(connect::DEFAULT_HANDSHAKE_TIMEOUT));
        assert!(d.half_close && !d.end_on_peer_eof);
    }

    #[test]
    fn tls_flags_become_client_settings() {
        let a = parse(&[
            "--tls",
            "--cacert",
            "ca.pem",
            "--sni",
            "example.org",
            "--alpn",
            "h2",
            "--alpn",
            "http/1.1",
            "--cert",
            "c.pem",
            "--key",
            "k.pem",
            "--tls-min",
            "1.3",
            "--handshake-timeout",
            "2",
            "h",
            "443",
        ])
        .unwrap();
        let c = a.config(false);
        let tls = c.tls.unwrap();
        assert_eq!(tls.cacert, Some(PathBuf::from("ca.pem")));
        assert_eq!(tls.alpn, ["h2", "http/1.1"]);
        assert_eq!(tls.client_cert, Some((PathBuf::from("c.pem"), PathBuf::from("k.pem"))));
        assert_eq!(tls.min_version, TlsVersion::Tls13);
        assert!(!tls.insecure && !tls.no_sni);
        assert_eq!(c.tls_name.as_deref(), Some("example.org"));
        assert_eq!(c.handshake_timeout, Some(Duration::from_secs(2)));
        assert!(parse(&["h", "1"]).unwrap().config(false).tls.is_none());
    }

    #[test]
    fn tls_options_need_tls_and_a_cert_needs_its_key() {
        for flags in [&["-k"][..], &["--cacert", "x"], &["--sni", "n"], &["--alpn", "h2"], &["--no-sni"]] {
            let args: Vec<&str> = flags.iter().copied().chain(["h", "1"]).collect();
            assert!(parse(&args).is_err(), "{flags:?} without --tls");
        }
        assert!(parse(&["--tls", "--cert", "c.pem", "h", "1"]).is_err());
        assert!(parse(&["--tls", "--key", "k.pem", "h", "1"]).is_err());
        assert!(parse(&["--tls", "--tls-min", "1.1", "h", "1"]).is_err());
    }

    #[test]
    fn one_trace_at_a_time_and_trace_time_needs_one() {
        assert!(parse(&["--trace", "a", "--hex-dump", "b", "h", "1"]).is_err());
        assert!(parse(&["--trace-time", "h", "1"]).is_err());
        let a = parse(&["--trace-ascii", "t.txt", "--trace-time", "h", "1"]).unwrap();
        let (path, opts) = a.trace_target().unwrap();
        assert_eq!((path.to_str(), opts.format, opts.time), (Some("t.txt"), Format::CurlAscii, true));
        let a = parse(&["--hex-dump", "d.txt", "h", "1"]).unwrap();
        assert_eq!(a.trace_target().unwrap().1.format, Format::HexDump);
    }

    #[test]
    fn proxy_flags_become_the_header_settings() {
        let c = parse(&[
            "--proxy-header",
            "v2",
            "--proxy-source",
            "[2001:db8::7]:4000",
            "--proxy-authority",
            "example.com",
            "--proxy-unique-id",
            "abc",
            "h",
            "1",
        ])
        .unwrap()
        .config(false);
        let p = c.proxy.unwrap();
        assert_eq!(p.version, proxy::Version::V2);
        assert_eq!(p.source, Some("[2001:db8::7]:4000".parse().unwrap()));
        assert!(!p.local);
        assert_eq!(p.tlvs, [Tlv::authority("example.com").unwrap(), Tlv::unique_id(b"abc").unwrap()]);
        // Without a port, port 0 stands for the connection's own.
        let a = parse(&["--proxy-header", "v1", "--proxy-source", "203.0.113.7", "h", "1"]).unwrap();
        assert_eq!(a.config(false).proxy.unwrap().source, Some("203.0.113.7:0".parse().unwrap()));
        let a = parse(&["--proxy-header", "v1", "--proxy-local", "h", "1"]).unwrap();
        assert!(a.config(false).proxy.unwrap().local);
        assert!(parse(&["h", "1"]).unwrap().config(false).proxy.is_none());
    }

    #[test]
    fn bad_proxy_flags_are_refused_by_the_parser() {
        for flags in [
            &["--proxy-header", "v3"][..],
            &["--proxy-source", "10.0.0.1:5"],
            &["--proxy-local"],
            &["--proxy-header", "v1", "--proxy-local", "--proxy-source", "10.0.0.1"],
            &["--proxy-header", "v1", "--proxy-source", "10.0.0.1:0"],
            &["--proxy-header", "v1", "--proxy-source", "example.com:80"],
            &["--proxy-header", "v2", "--proxy-unique-id", &"x".repeat(129)],
        ] {
            let args: Vec<&str> = flags.iter().copied().chain(["h", "1"]).collect();
            assert!(parse(&args).is_err(), "{flags:?}");
        }
    }

    #[test]
    fn port_out_of_range_is_rejected() {
        assert!(parse(&["h", "65536"]).is_err());
    }
}
