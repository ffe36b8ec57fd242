//! tcpkit's integration tests: one binary, one module per command. Every test
//! starts its own servers on port 0 (loopback only) and stops them.

mod bench;
#[cfg(feature = "interop")]
mod capture;
mod cli;
mod connect;
mod fetch;
#[cfg(feature = "interop")]
mod haproxy;
mod hostile;
mod netns;
#[cfg(feature = "interop")]
mod nginx;
mod serve;
mod util;
