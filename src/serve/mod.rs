//! `tcpkit serve`: the hello server.
use crate::Failure;
use crate::cli::ServeArgs;

/// Run the server until SIGINT/SIGTERM.
pub fn run(_args: ServeArgs) -> Result<(), Failure> {
    Err(Failure::new(1, "serve: not implemented yet"))
}
