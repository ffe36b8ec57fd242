//! tcpkit: a toolkit for TCP socket work.
//!
//! Four commands share one socket layer ([`net`]):
//! - [`serve`]: the tutorial's hello server, made production grade;
//! - [`connect`]: a netcat-style full-duplex client;
//! - [`fetch`]: an HTTP/1.1 (and HTTPS) client over our own sockets;
//! - [`bench`](mod@bench): a load generator that verifies every reply.
//!
//! In scope: the protocol logic as pure functions and state machines (tested and
//! fuzzed without sockets), and the I/O loops that move bytes between them.
//! Out of scope: anything beyond HTTP/1.1 (no HTTP/2, no cookies, no auth schemes).
#![deny(unsafe_code)]
#![deny(missing_docs)]

pub mod bench;
pub mod cli;
pub mod connect;
pub mod fetch;
pub mod log;
pub mod net;
pub mod serve;

/// How a command ended when it did not succeed: the process exit code and the
/// message for `tcpkit: error: ...` (`None` when the command already reported it,
/// or was asked to stay silent).
#[derive(Debug)]
pub struct Failure {
    /// The process exit code, never 0.
    pub code: u8,
    /// The one-line message, without the `tcpkit: error: ` prefix.
    pub message: Option<String>,
}

impl Failure {
    /// A failure with exit code `code` and a message.
    pub fn new(code: u8, message: impl Into<String>) -> Self {
        Failure { code, message: Some(message.into()) }
    }

    /// A failure whose message was already shown (or silenced on request).
    pub fn silent(code: u8) -> Self {
        Failure { code, message: None }
    }
}
