//! Flags of `tcpkit bench`.
use clap::Args;

/// Load-test a line-based TCP server, verifying every reply.
#[derive(Debug, Clone, Args)]
pub struct BenchArgs {
    /// Server address, HOST:PORT.
    pub addr: String,
}
