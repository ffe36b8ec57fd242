//! The `tcpkit` binary: parse the command line, run one command, turn its
//! outcome into an exit code. Every command's logic lives in the library.
use std::io::Write;
use std::process::ExitCode;

use tcpkit::cli::Command;

fn main() -> ExitCode {
    let cli = tcpkit::cli::parse();
    tcpkit::log::set_ansi(cli.color.stderr());
    let outcome = match cli.command {
        Command::Serve(args) => tcpkit::serve::run(args),
        Command::Connect(args) => args.run(),
        Command::Fetch(args) => args.run(),
        Command::Bench(args) => tcpkit::bench::run(args),
        Command::Completions(args) => tcpkit::cli::completions(&args),
        Command::Man => tcpkit::cli::man(),
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
