//! Sans-IO HTTP/1.1 for `tcpkit fetch`: request heads out, response heads and bodies in.
//!
//! In scope: the bytes of the protocol: writing a request head, parsing a response head
//! (httparse), choosing the body framing (RFC 9112 §6.3) and decoding it (Content-Length,
//! chunked, until close) from byte slices in any pieces, with truncation as its own error.
//! Out of scope: sockets, TLS, timeouts, redirects, content codings (`fetch::decode`):
//! the caller owns the buffers and moves bytes between the network and these functions.
mod body;
mod error;
mod head;
mod request;

pub use body::{
    BodyDecoder, BodyKind, DEFAULT_MAX_TRAILERS, Decoded, MAX_CHUNK_EXTENSION, MAX_CHUNK_SIZE_DIGITS,
};
pub use error::Http1Error;
pub use head::{HeadParser, ResponseHead, body_kind, parse_response_head};
pub use request::{check_request_head, write_request_head};
