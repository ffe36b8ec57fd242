//! Flags of `tcpkit connect`.
use clap::Args;

/// Connect to HOST PORT; copy stdin to the socket and the socket to stdout.
///
/// On stdin EOF the socket's write half is shut down and output goes on until
/// the server closes. Exit codes: 0 clean close, 2 name not resolved, 3 refused,
/// 4 timed out, 5 reset, 1 anything else.
#[derive(Debug, Clone, Args)]
pub struct ConnectArgs {
    /// Host name or IP address.
    pub host: String,
    /// TCP port.
    pub port: u16,
    /// Use IPv4 addresses only.
    #[arg(short = '4', conflicts_with = "ipv6")]
    pub ipv4: bool,
    /// Use IPv6 addresses only.
    #[arg(short = '6')]
    pub ipv6: bool,
    /// Give up connecting after this many seconds (all addresses together).
    #[arg(long, value_name = "SECS", default_value_t = 10.0)]
    pub connect_timeout: f64,
    /// Send each `\n` from stdin as `\r\n`.
    #[arg(long)]
    pub crlf: bool,
    /// Close after this many seconds with no data either way (0 = never).
    #[arg(short = 'w', long = "idle-timeout", value_name = "SECS", default_value_t = 0.0)]
    pub idle_timeout: f64,
    /// Print connection details on stderr.
    #[arg(short, long)]
    pub verbose: bool,
}

#[cfg(test)]
mod tests {
    use crate::cli::{Cli, Command};
    use clap::Parser;

    #[test]
    fn host_port_and_flags() {
        let cli = Cli::try_parse_from(["tcpkit", "connect", "-6", "--crlf", "-w", "2", "::1", "9999"])
            .expect("parses");
        let Command::Connect(a) = cli.command else { panic!("not connect") };
        assert_eq!((a.host.as_str(), a.port), ("::1", 9999));
        assert!(a.ipv6 && a.crlf && !a.ipv4);
        assert_eq!(a.idle_timeout, 2.0);
    }

    #[test]
    fn four_and_six_conflict() {
        assert!(Cli::try_parse_from(["tcpkit", "connect", "-4", "-6", "h", "1"]).is_err());
    }
}
