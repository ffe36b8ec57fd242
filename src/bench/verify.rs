//! Byte-exact checking of a server's replies, free of I/O.
//!
//! A [`Verifier`] holds the replies a connection still expects, in order, each
//! with a tag (the time its request was sent). Bytes are fed as they arrive: a
//! reply may be split over many reads and one read may carry several replies; a
//! reply is complete when its last byte matched. The first differing byte is an
//! error, and so are bytes nobody asked for, an end of stream before a reply is
//! complete, and a reset. Memory is bounded by the expected replies alone: received
//! bytes are compared and dropped, never collected.
//!
//! Not for: deciding what to send or when (the connection loop in `conn.rs`).
use std::collections::VecDeque;
use std::io;
use std::time::Duration;

use thiserror::Error;

/// Most received bytes kept in an error for display.
pub const SHOWN_BYTES: usize = 96;

/// Something the server did wrong, or the network did to a connection.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum ConnError {
    /// A reply differed from the expected bytes.
    #[error("wrong reply at byte {offset}: expected \"{}\", got \"{}\"", esc(expected), esc(got))]
    Mismatch {
        /// Offset of the first differing byte within the reply.
        offset: usize,
        /// The whole expected reply.
        expected: Vec<u8>,
        /// What arrived instead: the matching prefix, then up to [`SHOWN_BYTES`] more.
        got: Vec<u8>,
    },
    /// Bytes arrived when no reply was expected.
    #[error("unexpected bytes: \"{}\"", esc(got))]
    Unexpected {
        /// The first of them, up to [`SHOWN_BYTES`].
        got: Vec<u8>,
    },
    /// The server closed the connection with a reply missing or cut short.
    #[error("short read: closed after {} of {} bytes of \"{}\"", got.len(), expected.len(), esc(expected))]
    ShortRead {
        /// The reply that was expected.
        expected: Vec<u8>,
        /// The part of it that arrived.
        got: Vec<u8>,
    },
    /// The server closed a connection that should have stayed open (`hold`).
    #[error("closed by the server while idle")]
    Closed,
    /// The connection was reset.
    #[error("connection reset")]
    Reset,
    /// No complete reply (or close) within the timeout.
    #[error("timed out after {} ms waiting for \"{}\"", after.as_millis(), esc(expected))]
    Timeout {
        /// The timeout.
        after: Duration,
        /// What was awaited (empty while waiting for a close).
        expected: Vec<u8>,
    },
    /// A receiver answered a malformed PROXY header instead of closing.
    #[error("malformed PROXY header ({kind}) answered: \"{}\"", esc(got))]
    ProxyAnswered {
        /// The malformed kind sent.
        kind: &'static str,
        /// The first bytes of the answer, up to [`SHOWN_BYTES`].
        got: Vec<u8>,
    },
    /// A receiver kept a connection open after a malformed PROXY header.
    #[error("malformed PROXY header ({kind}) not refused: no close within {} ms", after.as_millis())]
    ProxyNotClosed {
        /// The malformed kind sent.
        kind: &'static str,
        /// The timeout.
        after: Duration,
    },
    /// The TLS handshake failed: a rejected certificate, an alert, a timeout.
    #[error(transparent)]
    Tls(#[from] crate::net::tls::HandshakeError),
    /// The connection could not be established.
    #[error("connect failed: {0}")]
    Connect(io::Error),
    /// Any other socket error.
    #[error("socket error: {0}")]
    Io(io::Error),
}

impl ConnError {
    /// A short stable name for counting errors by kind.
    pub fn kind(&self) -> &'static str {
        match self {
            ConnError::Mismatch { .. } => "wrong reply",
            ConnError::Unexpected { .. } => "unexpected bytes",
            ConnError::ShortRead { .. } => "short read",
            ConnError::Closed => "closed",
            ConnError::Reset => "reset",
            ConnError::Timeout { .. } => "timeout",
            ConnError::ProxyAnswered { .. } => "malformed PROXY header answered",
            ConnError::ProxyNotClosed { .. } => "malformed PROXY header not refused",
            ConnError::Tls(crate::net::tls::HandshakeError::Certificate { .. }) => "TLS certificate rejected",
            ConnError::Tls(crate::net::tls::HandshakeError::TimedOut { .. }) => "TLS handshake timed out",
            ConnError::Tls(_) => "TLS handshake failed",
            ConnError::Connect(_) => "connect failed",
            ConnError::Io(_) => "socket error",
        }
    }

    /// Classify a socket error from a read or write.
    pub fn from_io(e: io::Error) -> Self {
        use crate::net::error::{IoClass, classify};
        // A broken pipe on our write means the peer reset or closed: the same
        // failure as a reset, for counting.
        match classify(&e) {
            IoClass::Reset | IoClass::BrokenPipe => ConnError::Reset,
            _ => ConnError::Io(e),
        }
    }
}

/// Bytes escaped for one line of text, cut at [`SHOWN_BYTES`] with `...`.
pub fn esc(bytes: &[u8]) -> String {
    let cut = bytes.len() > SHOWN_BYTES;
    let mut s = bytes[..bytes.len().min(SHOWN_BYTES)].escape_ascii().to_string();
    if cut {
        s.push_str("...");
    }
    s
}

/// The replies one connection expects, matched in order against the bytes read.
#[derive(Debug)]
pub struct Verifier<T> {
    /// Expected replies, oldest first; bounded by the requests in flight.
    queue: VecDeque<(Vec<u8>, T)>,
    /// Bytes of the front reply already matched.
    matched: usize,
    /// Emptied reply buffers, reused for the next expectation.
    spare: Vec<Vec<u8>>,
}

impl<T> Default for Verifier<T> {
    fn default() -> Self {
        Verifier { queue: VecDeque::new(), matched: 0, spare: Vec::new() }
    }
}

impl<T> Verifier<T> {
    /// An empty verifier: any byte fed now is unexpected.
    pub fn new() -> Self {
        Self::default()
    }

    /// Expect one more reply, built by `fill` into a (reused) buffer, after the others.
    pub fn expect_with(&mut self, tag: T, fill: impl FnOnce(&mut Vec<u8>)) {
        let mut buf = self.spare.pop().unwrap_or_default();
        buf.clear();
        fill(&mut buf);
        self.queue.push_back((buf, tag));
    }

    /// Expect `reply` after the others.
    pub fn expect(&mut self, reply: &[u8], tag: T) {
        self.expect_with(tag, |b| b.extend_from_slice(reply));
    }

    /// Replies still awaited (a partly received one included).
    pub fn pending(&self) -> usize {
        self.queue.len()
    }

    /// The reply awaited now, if any.
    pub fn front(&self) -> Option<&[u8]> {
        self.queue.front().map(|(b, _)| b.as_slice())
    }

    /// Match `data` against the expected replies; `done` is called with the tag of
    /// each completed reply, in order. Stops at the first wrong byte.
    pub fn feed(&mut self, mut data: &[u8], mut done: impl FnMut(T)) -> Result<(), ConnError> {
        while !data.is_empty() {
            let Some((expected, _)) = self.queue.front() else {
                return Err(ConnError::Unexpected { got: data[..data.len().min(SHOWN_BYTES)].to_vec() });
            };
            let want = &expected[self.matched..];
            let n = want.len().min(data.len());
            if let Some(i) = want[..n].iter().zip(&data[..n]).position(|(a, b)| a != b) {
                let offset = self.matched + i;
                let mut got = expected[..self.matched].to_vec();
                got.extend_from_slice(&data[..data.len().min(i + SHOWN_BYTES)]);
                return Err(ConnError::Mismatch { offset, expected: expected.clone(), got });
            }
            self.matched += n;
            data = &data[n..];
            if self.matched == expected.len() {
                self.matched = 0;
                if let Some((buf, tag)) = self.queue.pop_front() {
                    self.spare.push(buf);
                    done(tag);
                }
            }
        }
        Ok(())
    }

    /// The stream ended: fine only when no reply is awaited.
    pub fn eof(&self) -> Result<(), ConnError> {
        match self.queue.front() {
            None => Ok(()),
            Some((expected, _)) => Err(ConnError::ShortRead {
                expected: expected.clone(),
                got: expected[..self.matched].to_vec(),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hello(v: &mut Verifier<u32>, name: &str, tag: u32) {
        v.expect(format!("Hello, {name}!\n").as_bytes(), tag);
    }

    #[test]
    fn an_exact_reply_completes_with_its_tag() {
        let mut v = Verifier::new();
        hello(&mut v, "Tracy", 7);
        let mut done = vec![];
        v.feed(b"Hello, Tracy!\n", |t| done.push(t)).unwrap();
        assert_eq!(done, vec![7]);
        assert_eq!(v.pending(), 0);
        v.eof().unwrap();
    }

    #[test]
    fn a_reply_split_at_every_byte_completes_once() {
        let reply = b"Hello, Sarah!\n";
        for cut in 0..=reply.len() {
            let mut v = Verifier::new();
            hello(&mut v, "Sarah", 1);
            let mut done = vec![];
            v.feed(&reply[..cut], |t| done.push(t)).unwrap();
            assert_eq!(done.len(), usize::from(cut == reply.len()), "cut {cut}");
            v.feed(&reply[cut..], |t| done.push(t)).unwrap();
            assert_eq!(done, vec![1], "cut {cut}");
        }
        // One byte at a time.
        let mut v = Verifier::new();
        hello(&mut v, "Sarah", 1);
        let mut done = 0;
        for b in reply {
            v.feed(std::slice::from_ref(b), |_| done += 1).unwrap();
        }
        assert_eq!(done, 1);
    }

    #[test]
    fn several_replies_in_one_read_complete_in_order() {
        let mut v = Verifier::new();
        hello(&mut v, "a", 1);
        hello(&mut v, "b", 2);
        hello(&mut v, "c", 3);
        let mut done = vec![];
        // Two and a half replies, then the rest.
        v.feed(b"Hello, a!\nHello, b!\nHel", |t| done.push(t)).unwrap();
        assert_eq!(done, vec![1, 2]);
        assert_eq!(v.pending(), 1);
        v.feed(b"lo, c!\n", |t| done.push(t)).unwrap();
        assert_eq!(done, vec![1, 2, 3]);
    }

    #[test]
    fn a_wrong_reply_is_caught_at_its_first_wrong_byte() {
        let mut v = Verifier::new();
        hello(&mut v, "Michael", 1);
        let err = v.feed(b"Hello, Michele!\n", |_| panic!("must not complete")).unwrap_err();
        match &err {
            ConnError::Mismatch { offset, expected, got } => {
                assert_eq!(*offset, 11);
                assert_eq!(expected, b"Hello, Michael!\n");
                assert_eq!(got, b"Hello, Michele!\n");
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(err.kind(), "wrong reply");
        assert!(err.to_string().contains(r#"got "Hello, Michele!\n""#), "{err}");
    }

    #[test]
    fn a_missing_exclamation_mark_is_caught_even_across_reads() {
        let mut v = Verifier::new();
        hello(&mut v, "x", 1);
        v.feed(b"Hello, x", |_| panic!()).unwrap();
        let err = v.feed(b"\n", |_| panic!()).unwrap_err();
        match err {
            ConnError::Mismatch { offset, got, .. } => {
                assert_eq!(offset, 8);
                assert_eq!(got, b"Hello, x\n");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn bytes_after_the_last_expected_reply_are_unexpected() {
        let mut v = Verifier::new();
        hello(&mut v, "x", 1);
        let mut done = 0;
        let err = v.feed(b"Hello, x!\nERR server busy\n", |_| done += 1).unwrap_err();
        assert_eq!(done, 1);
        assert!(matches!(&err, ConnError::Unexpected { got } if got == b"ERR server busy\n"), "{err:?}");
        // And with nothing expected at all.
        let mut v: Verifier<()> = Verifier::new();
        assert!(matches!(v.feed(b"?", |_| ()), Err(ConnError::Unexpected { .. })));
    }

    #[test]
    fn a_close_mid_reply_is_a_short_read() {
        let mut v = Verifier::new();
        hello(&mut v, "x", 1);
        v.feed(b"Hello", |_| panic!()).unwrap();
        match v.eof().unwrap_err() {
            ConnError::ShortRead { expected, got } => {
                assert_eq!(expected, b"Hello, x!\n");
                assert_eq!(got, b"Hello");
            }
            other => panic!("{other:?}"),
        }
        // A close before any byte of the reply, too.
        let mut v = Verifier::new();
        hello(&mut v, "x", 1);
        assert!(matches!(v.eof(), Err(ConnError::ShortRead { got, .. }) if got.is_empty()));
    }

    #[test]
    fn a_reset_is_its_own_error_kind() {
        let e = ConnError::from_io(io::Error::from(io::ErrorKind::ConnectionReset));
        assert!(matches!(e, ConnError::Reset));
        assert_eq!(e.kind(), "reset");
        let e = ConnError::from_io(io::Error::from(io::ErrorKind::PermissionDenied));
        assert_eq!(e.kind(), "socket error");
    }

    #[test]
    fn binary_bytes_are_shown_escaped_and_cut() {
        assert_eq!(esc(b"a\0\xff\n"), r"a\x00\xff\n");
        let long = vec![b'z'; SHOWN_BYTES + 10];
        let shown = esc(&long);
        assert!(shown.ends_with("...") && shown.len() == SHOWN_BYTES + 3);
    }

    #[test]
    fn buffers_are_reused_across_replies() {
        let mut v = Verifier::new();
        for i in 0..100u32 {
            v.expect_with(i, |b| b.extend_from_slice(b"ok\n"));
            let mut got = None;
            v.feed(b"ok\n", |t| got = Some(t)).unwrap();
            assert_eq!(got, Some(i));
        }
        assert!(v.spare.len() <= 1);
    }

    #[test]
    fn front_is_the_reply_awaited_now_until_it_completes() {
        let mut v = Verifier::new();
        assert_eq!(v.front(), None);
        hello(&mut v, "a", 1);
        hello(&mut v, "b", 2);
        assert_eq!(v.front(), Some(&b"Hello, a!\n"[..]));
        // Still the same reply when part of it has arrived.
        v.feed(b"Hello", |_| ()).unwrap();
        assert_eq!(v.front(), Some(&b"Hello, a!\n"[..]));
        v.feed(b", a!\n", |_| ()).unwrap();
        assert_eq!(v.front(), Some(&b"Hello, b!\n"[..]));
        v.feed(b"Hello, b!\n", |_| ()).unwrap();
        assert_eq!(v.front(), None);
    }

    #[test]
    fn exactly_shown_bytes_are_shown_whole_without_an_ellipsis() {
        let exact = vec![b'z'; SHOWN_BYTES];
        assert_eq!(esc(&exact), "z".repeat(SHOWN_BYTES));
        let over = vec![b'z'; SHOWN_BYTES + 1];
        assert_eq!(esc(&over), format!("{}...", "z".repeat(SHOWN_BYTES)));
    }
}
