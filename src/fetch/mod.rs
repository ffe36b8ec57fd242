//! `tcpkit fetch`: HTTP/1.1 and HTTPS over our own sockets.
pub mod decode;
pub mod http1;
pub mod names;
pub mod writeout;

use crate::Failure;
use crate::cli::FetchArgs;

/// Fetch the URL.
pub fn run(_args: FetchArgs) -> Result<(), Failure> {
    Err(Failure::new(1, "fetch: not implemented yet"))
}
