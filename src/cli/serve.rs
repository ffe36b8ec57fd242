//! Flags of `tcpkit serve`.
use std::net::SocketAddr;

use clap::Args;

pub use crate::log::LogFormat;

/// Run the hello server.
///
/// Greets every client, answers each line with the reply template, closes on the
/// quit word. Lines are bytes (no UTF-8 needed); one log line per closed connection
/// goes to stderr.
#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// Address to listen on; repeat for several (e.g. `--listen [::]:9999`).
    #[arg(short, long = "listen", value_name = "ADDR", default_value = "127.0.0.1:9999")]
    pub listen: Vec<SocketAddr>,

    /// Accept-queue length per listener. Tokio's default of 128 overflows under a
    /// burst of clients, and each dropped SYN costs its client a 1 s retry.
    #[arg(long, value_name = "N", default_value_t = 1024)]
    pub backlog: u32,

    /// Line sent to each client on connect (a newline is added; empty = none).
    #[arg(long, value_name = "TEXT", default_value = "Welcome!")]
    pub greeting: String,

    /// Reply to each line; `{}` stands for the line's bytes (a newline is added).
    #[arg(long, value_name = "TEMPLATE", default_value = "Hello, {}!")]
    pub reply: String,

    /// The line that closes the connection, after every earlier reply is sent.
    #[arg(long = "quit", value_name = "WORD", default_value = "exit")]
    pub quit: String,

    /// Longest line accepted, in bytes, without its newline. A longer one gets
    /// `ERR line too long (limit N bytes)` and the connection is closed.
    #[arg(long, value_name = "BYTES", default_value_t = 64 * 1024,
          value_parser = clap::value_parser!(usize))]
    pub max_line: usize,

    /// Most connections served at once; one more gets `ERR server busy` and is
    /// closed. Default: the open-file limit less a reserve for the server itself.
    #[arg(long, value_name = "N")]
    pub max_connections: Option<usize>,

    /// Close a connection after this many seconds without a byte from the client
    /// (0 = never).
    #[arg(long, value_name = "SECS", default_value = "300", value_parser = super::duration::parse_duration)]
    pub idle_timeout: std::time::Duration,

    /// On SIGINT/SIGTERM, how long to finish owed replies before closing anyway.
    #[arg(long, value_name = "SECS", default_value = "10", value_parser = super::duration::parse_duration)]
    pub shutdown_timeout: std::time::Duration,

    /// Worker threads (0 = one per core, at most 1024). On a machine shared with
    /// the load generator, `--threads 1` spends the least CPU per reply.
    #[arg(long, value_name = "N", default_value_t = 0,
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(0..=1024))]
    pub threads: usize,

    /// Log warnings and errors only (no per-connection lines).
    #[arg(short, long, conflicts_with = "verbose")]
    pub quiet: bool,

    /// More logging (-v debug, -vv trace). `RUST_LOG` overrides both.
    #[arg(short, long, action = clap::ArgAction::Count)]
    pub verbose: u8,

    /// Log format on stderr.
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
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
        assert_eq!(a.listen, vec!["127.0.0.1:9999".parse().unwrap()]);
        assert_eq!(a.greeting, "Welcome!");
        assert_eq!(a.reply, "Hello, {}!");
        assert_eq!(a.quit, "exit");
        assert_eq!(a.max_line, 65536);
        assert_eq!(a.backlog, 1024);
        assert_eq!(a.idle_timeout, std::time::Duration::from_secs(300));
        assert_eq!(a.shutdown_timeout, std::time::Duration::from_secs(10));
        assert_eq!(a.max_connections, None);
    }

    #[test]
    fn listen_is_repeatable_and_takes_ipv6() {
        let a = serve(&["--listen", "[::]:7000", "--listen", "127.0.0.1:7001"]);
        assert_eq!(a.listen.len(), 2);
        assert!(a.listen[0].is_ipv6());
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
