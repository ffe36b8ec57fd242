//! Every way `fetch` can fail, and the one function that turns a failure into
//! an exit code (curl's numbers where the meaning is the same).
//!
//! Not for: printing. The caller adds the `.part` hint and honours `-s`.
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
    /// The connection closed before any response byte (exit 52).
    #[error("empty reply from server")]
    EmptyReply,
    /// The response broke HTTP/1.1 (exit 8 or 56), or was cut short (exit 18).
    #[error(transparent)]
    Http(#[from] Http1Error),
    /// The body ended early on a path that frames it without the decoder (exit 18).
    #[error("partial body: {received} of {expected} bytes received")]
    Partial {
        /// Body bytes received.
        received: u64,
        /// Body bytes announced.
        expected: u64,
    },
    /// `--compressed`: the body could not be decoded (exit 61, 23 for a write error).
    #[error(transparent)]
    Decode(#[from] DecodeError),
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
    /// `-C -`: the server's answer to the range request does not fit the file (exit 33).
    #[error("resume: {0}")]
    Range(String),
}

/// The process exit code for `err`.
pub fn exit_code(err: &FetchError) -> u8 {
    match err {
        FetchError::Scheme(_) => 1,
        FetchError::Usage(_) => 2,
        FetchError::Url { .. } => 3,
        FetchError::Connect(e) => match e {
            ConnectError::Resolve { .. } | ConnectError::NoAddress { .. } => 6,
            ConnectError::TimedOut { .. } => 28,
            _ => 7,
        },
        FetchError::TlsConfig(_) => 77,
        FetchError::Certificate { .. } => 60,
        FetchError::Handshake { .. } => 35,
        FetchError::Send(_) => 55,
        FetchError::Recv { .. } => 56,
        FetchError::EmptyReply => 52,
        FetchError::WeirdReply(_) => 8,
        FetchError::Http(e) => e.exit_code(),
        FetchError::Partial { .. } => 18,
        FetchError::Decode(e) => e.exit_code(),
        FetchError::HttpStatus { .. } => 22,
        FetchError::Write { .. } => 23,
        FetchError::ReadFile { .. } => 26,
        FetchError::Timeout { .. } => 28,
        FetchError::TooManyRedirects(_) => 47,
        FetchError::Range(_) => 33,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_follow_curl() {
        let refused = ConnectError::Refused { addr: "127.0.0.1:1".parse().unwrap() };
        let resolve = ConnectError::Resolve { host: "x".into(), source: io::Error::other("no") };
        assert_eq!(exit_code(&FetchError::Connect(refused)), 7);
        assert_eq!(exit_code(&FetchError::Connect(resolve)), 6);
        assert_eq!(exit_code(&FetchError::Scheme("ftp".into())), 1);
        assert_eq!(exit_code(&FetchError::EmptyReply), 52);
        assert_eq!(exit_code(&FetchError::Partial { received: 1, expected: 2 }), 18);
        assert_eq!(exit_code(&FetchError::HttpStatus { status: 404 }), 22);
        assert_eq!(exit_code(&FetchError::Timeout { ms: 1, received: 0 }), 28);
        assert_eq!(exit_code(&FetchError::TooManyRedirects(50)), 47);
        let w = FetchError::Write { what: "stdout".into(), source: io::ErrorKind::BrokenPipe.into() };
        assert_eq!(exit_code(&w), 23);
        assert_eq!(exit_code(&FetchError::Certificate { host: "h".into(), reason: "r".into() }), 60);
        assert_eq!(exit_code(&FetchError::Handshake { host: "h".into(), reason: "r".into() }), 35);
    }

    #[test]
    fn partial_message_has_both_numbers() {
        let msg = FetchError::Partial { received: 10, expected: 20 }.to_string();
        assert_eq!(msg, "partial body: 10 of 20 bytes received");
    }
}
