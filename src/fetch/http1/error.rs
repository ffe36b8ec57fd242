//! The one error type of the HTTP/1.1 framing layer.
//!
//! For: saying what was wrong with the bytes a server sent (or a request head we were
//! asked to write), and where. Not for: exit codes (the command line chooses them), or I/O errors,
//! which never reach this sans-IO layer.
use std::fmt::Write as _;

/// Everything that can go wrong while framing an HTTP/1.1 exchange.
///
/// Offsets in head errors count from the first byte of the response head; offsets in
/// body errors count from the first byte of the body as it arrived on the wire.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Http1Error {
    /// No complete response head within the limit.
    #[error("response head too large: no end of head within {limit} bytes")]
    HeadTooLarge {
        /// The limit in bytes (`--max-head`).
        limit: usize,
    },
    /// The response head is not valid HTTP/1.x.
    #[error("invalid response head: {reason} at byte {offset}")]
    InvalidHead {
        /// Offset of the offending byte, from the start of the head.
        offset: usize,
        /// What httparse (or we) found wrong.
        reason: String,
    },
    /// A Content-Length value that is not a decimal number fitting in 64 bits.
    #[error("invalid content-length: {value:?}")]
    InvalidContentLength {
        /// The value as received (lossily decoded).
        value: String,
    },
    /// Several Content-Length values that differ.
    #[error("conflicting content-length values: {first} and {second}")]
    ConflictingContentLength {
        /// The first value.
        first: u64,
        /// The first value that differs from it.
        second: u64,
    },
    /// A transfer coding other than `chunked` (we do not undo transfer codings).
    #[error("unsupported transfer-encoding: {coding:?}")]
    UnsupportedTransferEncoding {
        /// The coding as received.
        coding: String,
    },
    /// A chunk-size line that does not start with a hex digit, or holds junk after it.
    #[error("bad chunk size: unexpected byte {byte:#04x} at byte {offset} of the body")]
    BadChunkSize {
        /// Offset of the offending byte in the body.
        offset: u64,
        /// The offending byte.
        byte: u8,
    },
    /// A chunk size that does not fit in 64 bits.
    #[error("bad chunk size: more than 64 bits at byte {offset} of the body")]
    ChunkSizeOverflow {
        /// Offset of the digit that overflowed.
        offset: u64,
    },
    /// Anything else wrong in chunked framing: missing CRLF after data, bad trailer,
    /// over-long extension or trailer section.
    #[error("bad chunked body: {reason} at byte {offset} of the body")]
    BadChunk {
        /// Offset of the offending byte in the body.
        offset: u64,
        /// What was wrong.
        reason: String,
    },
    /// The connection ended before the body was complete.
    #[error("{}", truncated_message(*received, *expected, detail))]
    Truncated {
        /// Body bytes received on the wire (chunk framing included for chunked bodies).
        received: u64,
        /// The announced Content-Length, when there was one.
        expected: Option<u64>,
        /// Where the stream stopped, for chunked bodies ("in chunk data"); may be empty.
        detail: String,
    },
    /// A request head we were asked to write is not valid (for example a header
    /// value holding a line break, which would inject a header).
    #[error("invalid request: {reason}")]
    InvalidRequest {
        /// What was wrong.
        reason: String,
    },
}

fn truncated_message(received: u64, expected: Option<u64>, detail: &str) -> String {
    let mut s = match expected {
        Some(total) => format!("partial body: {received} of {total} bytes received"),
        None => format!("partial body: {received} bytes received"),
    };
    if !detail.is_empty() {
        let _ = write!(s, ", {detail}");
    }
    s
}
