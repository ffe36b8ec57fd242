//! Flags of `tcpkit connect`.
use std::net::IpAddr;

use clap::Args;

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
connection), 5 connection reset by the peer, 6 stdout closed or not writable.

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
    /// Print connection details on stderr (addresses, timings, byte counts).
    #[arg(short, long)]
    pub verbose: bool,
}

#[cfg(test)]
mod tests {
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
        use crate::connect::*;
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
        ] {
            assert!(help.contains(&format!("{code} {meaning}")), "help lacks `{code} {meaning}`:\n{help}");
        }
    }

    #[test]
    fn port_out_of_range_is_rejected() {
        assert!(parse(&["h", "65536"]).is_err());
    }
}
