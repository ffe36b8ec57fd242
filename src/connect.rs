//! `tcpkit connect`: the netcat-style client.
use crate::Failure;
use crate::cli::ConnectArgs;

/// Connect and copy both ways until the server closes.
pub fn run(_args: ConnectArgs) -> Result<(), Failure> {
    Err(Failure::new(1, "connect: not implemented yet"))
}
