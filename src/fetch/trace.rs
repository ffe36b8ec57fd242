//! fetch's `--trace`: a tap on the connection (after TLS, so it records the
//! application bytes, as curl's does) that tells curl's `Send header` from
//! `Send data` and `Recv header` from `Recv data`.
//!
//! [`crate::net::trace::Tap`] only knows raw bytes; HTTP/1.1 knows where a head
//! ends (the first empty line), so [`HttpTap`] scans each direction for it: the
//! bytes up to and including that CRLF CRLF are the header, the rest data (the
//! body as framed on the wire: chunk-size lines and trailers are data, as in
//! curl's trace). Interim (1xx) response heads stay header, so the final head
//! after `100 Continue` is header too. The scan keeps a few bytes of state, not
//! a copy of the head.
//!
//! Not for: formatting or writing traces (`net::trace` does both).
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::net::trace::{Dir, Kind, Trace};

/// Where a head ends in one direction of a connection.
#[derive(Debug, Clone)]
struct HeadScan {
    /// Still inside a head.
    in_head: bool,
    /// How much of `\r\n\r\n` the last bytes matched (0..=3).
    matched: u8,
    /// The first bytes of the current head, to tell a 1xx response (bounded: 10 bytes).
    start: [u8; 10],
    start_len: usize,
}

impl HeadScan {
    fn new() -> HeadScan {
        HeadScan { in_head: true, matched: 0, start: [0; 10], start_len: 0 }
    }

    /// How many leading bytes of `bytes` belong to a head.
    fn header_len(&mut self, bytes: &[u8]) -> usize {
        if !self.in_head {
            return 0;
        }
        for (i, &b) in bytes.iter().enumerate() {
            if self.start_len < self.start.len() {
                self.start[self.start_len] = b;
                self.start_len += 1;
            }
            let want = if self.matched % 2 == 0 { b'\r' } else { b'\n' };
            self.matched = if b == want {
                self.matched + 1
            } else if b == b'\r' {
                1
            } else {
                0
            };
            if self.matched == 4 {
                self.matched = 0;
                // `HTTP/1.1 1xx`: another head follows.
                let interim =
                    self.start_len == 10 && self.start.starts_with(b"HTTP/1.") && self.start[9] == b'1';
                self.start_len = 0;
                if !interim {
                    self.in_head = false;
                    return i + 1;
                }
            }
        }
        bytes.len()
    }

    /// Record `bytes` as header and/or data.
    fn record(&mut self, trace: &Trace, dir: Dir, bytes: &[u8]) {
        let head = self.header_len(bytes);
        trace.data(dir, Kind::Header, &bytes[..head]);
        trace.data(dir, Kind::Data, &bytes[head..]);
    }
}

/// A stream that records what each read returned and each write accepted into
/// a [`Trace`], split into header and data (see the module documentation).
#[derive(Debug)]
pub struct HttpTap<S> {
    inner: S,
    trace: Trace,
    send: HeadScan,
    recv: HeadScan,
}

impl<S> HttpTap<S> {
    /// Record `inner`'s traffic into `trace`; both directions start in a head.
    pub fn new(inner: S, trace: Trace) -> HttpTap<S> {
        HttpTap { inner, trace, send: HeadScan::new(), recv: HeadScan::new() }
    }

    /// The next request and response on this connection start with a head.
    pub fn new_exchange(&mut self) {
        (self.send, self.recv) = (HeadScan::new(), HeadScan::new());
    }

    /// The wrapped stream.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The trace recorded into.
    pub fn trace(&self) -> &Trace {
        &self.trace
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for HttpTap<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        // A client's trace is lossless: wait here while the writer catches up.
        std::task::ready!(self.trace.poll_room(cx));
        let before = buf.filled().len();
        let this = &mut *self;
        let polled = Pin::new(&mut this.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = polled {
            this.recv.record(&this.trace, Dir::Recv, &buf.filled()[before..]);
        }
        polled
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for HttpTap<S> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        std::task::ready!(self.trace.poll_room(cx));
        let this = &mut *self;
        let polled = Pin::new(&mut this.inner).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = polled {
            this.send.record(&this.trace, Dir::Send, &buf[..n]);
        }
        polled
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(scan: &mut HeadScan, pieces: &[&[u8]]) -> Vec<usize> {
        pieces.iter().map(|p| scan.header_len(p)).collect()
    }

    #[test]
    fn head_ends_at_the_first_empty_line_even_across_reads() {
        let mut s = HeadScan::new();
        assert_eq!(split(&mut s, &[b"HTTP/1.1 200 OK\r\nA: b\r", b"\n\r", b"\nbody\r\n\r\n"]), [22, 2, 1]);
        assert_eq!(s.header_len(b"more"), 0);
    }

    #[test]
    fn interim_heads_stay_header() {
        let mut s = HeadScan::new();
        let bytes = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\n\r\nxy";
        assert_eq!(s.header_len(bytes), bytes.len() - 2);
    }

    #[test]
    fn a_lone_cr_does_not_end_a_head() {
        let mut s = HeadScan::new();
        assert_eq!(s.header_len(b"GET / HTTP/1.1\r\nX: a\r\r\n\r\nz"), 25);
        s = HeadScan::new();
        assert_eq!(s.header_len(b"GET / HTTP/1.1\r\n\n\r\n\r\nz"), 21);
    }
}
