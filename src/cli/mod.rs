//! The command line: every command and flag, as clap derive structs.
//!
//! Each command's flags live in their own file beside this one, with parse tests.
//! Not for: behaviour. These types only describe what the user asked for.

pub mod bench;
mod connect;
mod fetch;
mod serve;

pub use bench::{BenchArgs, Sources};
pub use connect::ConnectArgs;
pub use fetch::FetchArgs;
pub use serve::{LogFormat, ServeArgs};

use clap::{Parser, Subcommand};

/// tcpkit: see what really crosses a TCP socket.
#[derive(Debug, Parser)]
#[command(name = "tcpkit", version, about, long_about = None, propagate_version = true)]
pub struct Cli {
    /// The command to run.
    #[command(subcommand)]
    pub command: Command,
}

/// The four commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the hello server: greet, answer each line with `Hello, <line>!`, close on `exit`.
    Serve(ServeArgs),
    /// Connect to HOST PORT and copy stdin to the socket and the socket to stdout.
    Connect(ConnectArgs),
    /// Fetch a URL over HTTP/1.1 or HTTPS, with curl's flags and exit codes.
    Fetch(FetchArgs),
    /// Load-test a line-based TCP server, verifying every reply.
    Bench(BenchArgs),
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }
}
