//! The `tcpkit` binary: parse the command line, run one command, turn its
//! outcome into an exit code. Every command's logic lives in the library.
use std::io::Write;
use std::process::ExitCode;

use clap::Parser;
use tcpkit::cli::{Cli, Command};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let outcome = match cli.command {
        Command::Serve(args) => tcpkit::serve::run(args),
        Command::Connect(args) => tcpkit::connect::run(args),
        Command::Fetch(args) => tcpkit::fetch::run(args),
        Command::Bench(args) => tcpkit::cli::bench::run(args),
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            if let Some(message) = failure.message {
                // A closed stderr leaves nothing else to tell; the code still says it.
                let _ = writeln!(std::io::stderr(), "tcpkit: error: {message}");
            }
            ExitCode::from(failure.code.max(1))
        }
    }
}
