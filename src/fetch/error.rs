//! Every way a transfer can fail, as one typed error.
//!
//! Not for: exit codes or printing: the command line maps each variant to curl's
//! number (`cli::fetch::exit_code`) and adds the `.part` hint.
use std::io;
use std::path::PathBuf;

use thiserror::Error;

use super::decode::DecodeError;
use super::http1::Http1Error;
use crate::net::ConnectError;
use crate::net::tls::TlsError;

/// Why a fetch failed.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum FetchError {
    /// A scheme other than http or https (exit 1).
    #[error("unsupported protocol: {0}")]
    Scheme(String),
    /// A flag combination or value that makes no sense (exit 2).
    #[error("{0}")]
    Usage(String),
    /// The URL, or a redirect's Location, could not be parsed (exit 3).
    #[error("malformed url: {url}: {reason}")]
    Url {
        /// The text given.
        url: String,
        /// The parser's complaint.
        reason: String,
    },
    /// Resolving or connecting failed, or timed out (exit 6, 7 or 28).
    #[error(transparent)]
    Connect(#[from] ConnectError),
    /// The TLS configuration (the `--cacert` file) was unusable (exit 77).
    #[error(transparent)]
    TlsConfig(#[from] TlsError),
    /// The server's certificate was rejected (exit 60).
    #[error("certificate of {host} rejected: {reason}")]
    Certificate {
        /// The host name checked.
        host: String,
        /// Why: unknown issuer, expired, name mismatch...
        reason: String,
    },
    /// The TLS handshake failed for another reason (exit 35).
    #[error("tls handshake with {host} failed: {reason}")]
    Handshake {
        /// The host name.
        host: String,
        /// rustls's or the socket's error.
        reason: String,
    },
    /// Writing the request failed (exit 55).
    #[error("sending the request failed: {0}")]
    Send(io::Error),
    /// Reading the response failed (connection reset...; exit 56).
    #[error("receiving the response failed after {received} bytes: {source}")]
    Recv {
        /// Response bytes received before the failure.
        received: u64,
        /// The socket's error.
        source: io::Error,
    },
    /// A reply no HTTP/1.1 client can use: endless interim responses, an unasked-for
    /// protocol switch (exit 8, curl's "weird server reply").
    #[error("weird server reply: {0}")]
    WeirdReply(String),
    /// The proxy could not be resolved (exit 5) or connected to (exit 7).
    #[error("proxy: {0}")]
    ProxyConnect(ConnectError),
    /// The proxy refused or broke the `CONNECT` tunnel (exit 56).
    #[error("proxy: {reason}")]
    Proxy {
        /// What went wrong.
        reason: String,
    },
    /// The connection closed inside a response head.
    #[error("connection closed inside a response head after {received} bytes")]
    PartialHead {
        /// Response bytes received.
        received: u64,
    },
    /// The connection closed before any response byte (exit 52).
    #[error("empty reply from server")]
    EmptyReply,
    /// The response broke HTTP/1.1 (exit 8 or 56), or was cut short (exit 18).
    #[error(transparent)]
    Http(#[from] Http1Error),
    /// `--compressed`: the body could not be decoded (exit 61, 23 for a write error).
    #[error(transparent)]
    Decode(#[from] DecodeError),
    /// With retries left: a status worth another attempt (408, 429, 500, 502, 503, 504),
    /// and the `Retry-After` it gave, in seconds.
    #[error("transient HTTP status {status}")]
    TransientStatus {
        /// The status code.
        status: u16,
        /// `Retry-After`, when given in seconds.
        retry_after: Option<u64>,
    },
    /// `-f` and a status of 400 or more (exit 22).
    #[error("the requested URL returned error: {status}")]
    HttpStatus {
        /// The status code.
        status: u16,
    },
    /// Writing the body or the head to stdout or a file failed (exit 23).
    #[error("writing {what} failed: {source}")]
    Write {
        /// "stdout" or the file's path.
        what: String,
        /// The OS error.
        source: io::Error,
    },
    /// Reading a local file (`--data-binary @FILE`, the partial file) failed (exit 26).
    #[error("reading {} failed: {source}", path.display())]
    ReadFile {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
    /// `-m` ran out (exit 28).
    #[error("operation timed out after {ms} ms with {received} bytes received")]
    Timeout {
        /// The limit, in milliseconds.
        ms: u128,
        /// Body bytes received by then.
        received: u64,
    },
    /// More redirects than `--max-redirs` (exit 47).
    #[error("maximum ({0}) redirects followed")]
    TooManyRedirects(u32),
    /// The async runtime could not be started.
    #[error("cannot start the runtime: {0}")]
    Runtime(io::Error),
    /// `-C -`: the server's answer to the range request does not fit the file (exit 33).
    #[error("resume: {0}")]
    Range(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_truncated_body_says_both_numbers() {
        let e = FetchError::from(Http1Error::Truncated {
            received: 10,
            expected: Some(20),
            detail: String::new(),
        });
        assert_eq!(e.to_string(), "partial body: 10 of 20 bytes received");
    }
}
