//! The copying at the heart of `tcpkit connect`: input to the socket and the
//! socket to output at once, generic over its four ends so that it is tested with
//! in-memory pipes and paused time.
//!
//! Not for: connecting, TLS, exit codes (see [`super`]).
use std::cell::Cell;
use std::io;
use std::task::Poll;
use std::time::Duration;

use thiserror::Error;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::time::Instant;

use crate::net::{IoClass, classify};

/// Size of each read from stdin and from the socket. It bounds the memory held
/// per direction: a read is written out in full before the next one starts.
/// Tokio hands each stdin read and stdout write to a blocking thread, so fewer,
/// larger chunks matter: 16 KiB moved 1 GiB to stdout at half the speed of 64 KiB.
pub const CHUNK: usize = 64 * 1024;

/// How [`session`] behaves.
#[derive(Debug, Clone, Default)]
pub struct Settings {
    /// Turn each `\n` from stdin into `\r\n` ([`Crlf`]).
    pub crlf: bool,
    /// Shut down the socket's write half on stdin EOF.
    pub half_close: bool,
    /// End the session after this long with no byte moved either way.
    pub idle: Option<Duration>,
    /// End as soon as the peer's EOF is read, even with input left (set when
    /// stdin is a terminal: the conversation is over). Otherwise the rest of
    /// the input is still sent, in case the peer only half-closed.
    pub end_on_peer_eof: bool,
}

/// Bytes moved by [`session`], readable after it returns whatever the outcome.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Bytes written to the socket (after `--crlf`).
    pub sent: u64,
    /// Bytes read from the socket, all of which were written to stdout.
    pub received: u64,
}

/// How a [`session`] failed, before the peer address is attached.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum SessionError {
    /// Reading or writing the socket failed.
    #[error("socket: {0}")]
    Socket(io::Error),
    /// Reading the input failed.
    #[error("input: {0}")]
    Input(io::Error),
    /// Writing the output failed.
    #[error("output: {0}")]
    Output(io::Error),
    /// Nothing moved for the idle duration.
    #[error("idle for {} ms", .0.as_millis())]
    Idle(Duration),
}

fn is_reset(e: &io::Error) -> bool {
    classify(e) == IoClass::Reset
}

/// Copy `input` to the socket and the socket to `output` at once, until both
/// directions are done (`Ok`), or something fails: the contract of tokio's
/// `copy_bidirectional`.
///
/// Input EOF shuts down `sock_wr` (with `half_close`) and the output side goes
/// on until the socket's EOF. The socket's EOF ends the output side, and the
/// input side goes on until input EOF, unless `end_on_peer_eof`. A socket write
/// that fails with a broken pipe means the server stopped reading on purpose:
/// sending stops, and that is not an error.
/// A reset on either side ends the session with [`SessionError::Socket`], but
/// only once the bytes that arrived before it were written out.
pub async fn session<I, O, R, W>(
    input: I,
    output: O,
    sock_rd: R,
    sock_wr: W,
    settings: &Settings,
    stats: &mut Stats,
) -> Result<(), SessionError>
where
    I: AsyncRead + Unpin,
    O: AsyncWrite + Unpin,
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    // Both directions run in this one task, so plain Cells are enough to share
    // the counters and the time of the last byte moved.
    let last_activity = Cell::new(Instant::now());
    let sent = Cell::new(0u64);
    let received = Cell::new(0u64);
    let upload = upload(input, sock_wr, settings, &sent, &last_activity);
    let download = download(sock_rd, output, &received, &last_activity);
    let idle = idle_expiry(settings.idle, &last_activity);
    tokio::pin!(upload, download, idle);

    // A reset seen by the upload side is reported after the download side has
    // printed what had already arrived.
    let mut upload_reset: Option<io::Error> = None;
    let mut uploading = true;
    let mut downloading = true;
    let outcome = loop {
        tokio::select! {
            // Output first: when both are ready, bytes already received are shown.
            biased;
            done = &mut download, if downloading => {
                downloading = false;
                if done.is_ok() && uploading && !settings.end_on_peer_eof {
                    // The peer's EOF may be a half-close (it still reads, as
                    // `ncat --recv-only` does): the rest of the input still goes.
                    continue;
                }
                // Ending with the upload unfinished: it may have failed in this
                // same wake-up, so poll it once, lest a reset hide behind the EOF.
                if uploading {
                    let last = std::future::poll_fn(|cx| Poll::Ready(upload.as_mut().poll(cx))).await;
                    if let Poll::Ready(Err(SessionError::Socket(e))) = last
                        && is_reset(&e)
                    {
                        upload_reset = Some(e);
                    }
                }
                break match (done, upload_reset.take()) {
                    (Ok(()), Some(reset)) => Err(SessionError::Socket(reset)),
                    (done, _) => done,
                };
            }
            done = &mut upload, if uploading => {
                uploading = false;
                match done {
                    Ok(()) => {}
                    // The peer closed and refuses more: not an error, sending just stops.
                    Err(SessionError::Socket(e)) if classify(&e) == IoClass::BrokenPipe => {}
                    Err(SessionError::Socket(e)) if is_reset(&e) => upload_reset = Some(e),
                    Err(other) => break Err(other),
                }
                if !downloading {
                    break upload_reset.take().map_or(Ok(()), |e| Err(SessionError::Socket(e)));
                }
            }
            () = &mut idle => break Err(SessionError::Idle(settings.idle.unwrap_or_default())),
        }
    };
    *stats = Stats { sent: sent.get(), received: received.get() };
    outcome
}

/// Input to socket; on input EOF, the write half is shut down (with `half_close`).
async fn upload<I, W>(
    mut input: I,
    mut sock_wr: W,
    settings: &Settings,
    sent: &Cell<u64>,
    last_activity: &Cell<Instant>,
) -> Result<(), SessionError>
where
    I: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut buf = vec![0u8; CHUNK];
    let mut crlf = Crlf::default();
    let mut converted = Vec::new();
    loop {
        let n = input.read(&mut buf).await.map_err(SessionError::Input)?;
        if n == 0 {
            break;
        }
        last_activity.set(Instant::now());
        let bytes = if settings.crlf {
            converted.clear();
            crlf.convert(&buf[..n], &mut converted);
            &converted[..]
        } else {
            &buf[..n]
        };
        // Not write_all: each partial write to a slow reader counts as activity for -w.
        let mut rest = bytes;
        while !rest.is_empty() {
            let n = sock_wr.write(rest).await.map_err(SessionError::Socket)?;
            if n == 0 {
                return Err(SessionError::Socket(io::ErrorKind::WriteZero.into()));
            }
            rest = &rest[n..];
            sent.set(sent.get() + n as u64);
            last_activity.set(Instant::now());
        }
    }
    // Without `half_close` the write half stays open until the session ends:
    // dropping a borrowed half does not shut it down.
    if settings.half_close {
        sock_wr.shutdown().await.map_err(SessionError::Socket)?;
    }
    Ok(())
}

/// Socket to output, flushed after every read so interactive replies show at once.
async fn download<R, O>(
    mut sock_rd: R,
    mut output: O,
    received: &Cell<u64>,
    last_activity: &Cell<Instant>,
) -> Result<(), SessionError>
where
    R: AsyncRead + Unpin,
    O: AsyncWrite + Unpin,
{
    let mut buf = vec![0u8; CHUNK];
    loop {
        let n = sock_rd.read(&mut buf).await.map_err(SessionError::Socket)?;
        if n == 0 {
            return Ok(());
        }
        last_activity.set(Instant::now());
        output.write_all(&buf[..n]).await.map_err(SessionError::Output)?;
        output.flush().await.map_err(SessionError::Output)?;
        received.set(received.get() + n as u64);
        last_activity.set(Instant::now());
    }
}

/// Resolves once nothing has moved for `idle`; never without an idle limit.
async fn idle_expiry(idle: Option<Duration>, last_activity: &Cell<Instant>) {
    let Some(idle) = idle else { return std::future::pending().await };
    loop {
        let deadline = last_activity.get() + idle;
        if Instant::now() >= deadline {
            return;
        }
        tokio::time::sleep_until(deadline).await;
    }
}

/// The `--crlf` conversion: each `\n` not already preceded by `\r` becomes
/// `\r\n`. It remembers the last byte, so a `\r\n` split across two reads is
/// still left alone.
#[derive(Debug, Default, Clone)]
pub struct Crlf {
    last_was_cr: bool,
}

impl Crlf {
    /// Append `input`, converted, to `out`.
    pub fn convert(&mut self, input: &[u8], out: &mut Vec<u8>) {
        out.reserve(input.len());
        for &b in input {
            if b == b'\n' && !self.last_was_cr {
                out.push(b'\r');
            }
            out.push(b);
            self.last_was_cr = b == b'\r';
        }
    }
}
#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{duplex, empty, sink};

    fn crlf_all(chunks: &[&[u8]]) -> Vec<u8> {
        let mut c = Crlf::default();
        let mut out = Vec::new();
        for chunk in chunks {
            c.convert(chunk, &mut out);
        }
        out
    }

    #[test]
    fn crlf_adds_cr_only_where_missing() {
        assert_eq!(crlf_all(&[b"a\nb\r\nc\n\n"]), b"a\r\nb\r\nc\r\n\r\n");
        assert_eq!(crlf_all(&[b"\r\r\n\n"]), b"\r\r\n\r\n");
        assert_eq!(crlf_all(&[b"no newline \r"]), b"no newline \r");
        assert_eq!(crlf_all(&[b"\0\xff\n"]), b"\0\xff\r\n");
    }

    #[test]
    fn crlf_gives_the_same_bytes_however_the_input_is_split() {
        let input: &[u8] = b"Michael\nTracy\r\nSarah\r\r\n\nexit\n";
        let whole = crlf_all(&[input]);
        assert_eq!(whole, b"Michael\r\nTracy\r\nSarah\r\r\n\r\nexit\r\n");
        for at in 0..=input.len() {
            let (a, b) = input.split_at(at);
            assert_eq!(crlf_all(&[a, b]), whole, "split at {at}");
        }
        let bytes: Vec<&[u8]> = input.chunks(1).collect();
        assert_eq!(crlf_all(&bytes), whole);
    }

    /// A session whose socket is the near end of an in-memory pipe; returns the far end.
    fn pipe_socket() -> (tokio::io::DuplexStream, tokio::io::DuplexStream) {
        duplex(64 * 1024)
    }

    #[tokio::test]
    async fn input_eof_half_closes_and_output_goes_on_until_the_peer_closes() {
        let (near, mut far) = pipe_socket();
        let (sock_rd, sock_wr) = tokio::io::split(near);
        let mut out = Vec::new();
        let mut stats = Stats::default();
        let settings = Settings { half_close: true, ..Settings::default() };
        let peer = async {
            let mut got = Vec::new();
            // EOF here is the half-close: the input had only "hi\n".
            far.read_to_end(&mut got).await.unwrap();
            far.write_all(b"late reply\n").await.unwrap();
            far.shutdown().await.unwrap();
            got
        };
        let (done, got) =
            tokio::join!(session(&b"hi\n"[..], &mut out, sock_rd, sock_wr, &settings, &mut stats), peer);
        done.unwrap();
        assert_eq!(got, b"hi\n");
        assert_eq!(out, b"late reply\n");
        assert_eq!(stats, Stats { sent: 3, received: 11 });
    }

    #[tokio::test(start_paused = true)]
    async fn idle_timeout_fires_when_nothing_moves_either_way() {
        let (near, _far) = pipe_socket();
        let (sock_rd, sock_wr) = tokio::io::split(near);
        let settings =
            Settings { idle: Some(Duration::from_secs(3)), half_close: true, ..Settings::default() };
        let mut stats = Stats::default();
        let start = Instant::now();
        let err = session(empty(), sink(), sock_rd, sock_wr, &settings, &mut stats).await.unwrap_err();
        assert!(matches!(err, SessionError::Idle(d) if d == Duration::from_secs(3)), "{err}");
        // Paused time advances exactly to the deadline.
        assert_eq!(start.elapsed(), Duration::from_secs(3));
    }

    #[tokio::test(start_paused = true)]
    async fn idle_timeout_restarts_with_each_byte_received() {
        let (near, mut far) = pipe_socket();
        let (sock_rd, sock_wr) = tokio::io::split(near);
        let settings =
            Settings { idle: Some(Duration::from_secs(3)), half_close: true, ..Settings::default() };
        let mut stats = Stats::default();
        let mut out = Vec::new();
        let start = Instant::now();
        let peer = async {
            for _ in 0..3 {
                tokio::time::sleep(Duration::from_secs(2)).await;
                far.write_all(b".").await.unwrap();
            }
            far // kept open: only the idle timeout can end the session
        };
        let (err, _far) =
            tokio::join!(session(empty(), &mut out, sock_rd, sock_wr, &settings, &mut stats), peer);
        assert!(matches!(err, Err(SessionError::Idle(_))));
        assert_eq!(out, b"...");
        assert_eq!(start.elapsed(), Duration::from_secs(6 + 3));
    }

    #[tokio::test(start_paused = true)]
    async fn without_half_close_the_write_half_stays_open() {
        let (near, mut far) = pipe_socket();
        let (sock_rd, sock_wr) = tokio::io::split(near);
        let settings = Settings::default();
        let mut stats = Stats::default();
        let mut out = Vec::new();
        let peer = async {
            let mut got = [0u8; 8];
            let n = far.read(&mut got).await.unwrap();
            assert_eq!(&got[..n], b"x");
            // No EOF may follow while the session runs (paused time: the wait is instant).
            let more = tokio::time::timeout(Duration::from_millis(50), far.read(&mut got)).await;
            assert!(more.is_err(), "write half was closed");
            far.write_all(b"bye").await.unwrap();
            far.shutdown().await.unwrap();
        };
        let (done, ()) =
            tokio::join!(session(&b"x"[..], &mut out, sock_rd, sock_wr, &settings, &mut stats), peer);
        done.unwrap();
        assert_eq!(out, b"bye");
    }

    /// A socket write half that fails every write with `kind`.
    struct FailingWriter(io::ErrorKind);

    impl AsyncWrite for FailingWriter {
        fn poll_write(
            self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
            _: &[u8],
        ) -> std::task::Poll<io::Result<usize>> {
            std::task::Poll::Ready(Err(self.0.into()))
        }
        fn poll_flush(
            self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<io::Result<()>> {
            std::task::Poll::Ready(Ok(()))
        }
        fn poll_shutdown(
            self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<io::Result<()>> {
            std::task::Poll::Ready(Err(self.0.into()))
        }
    }

    #[tokio::test]
    async fn broken_pipe_on_send_stops_sending_and_a_clean_close_is_still_ok() {
        let settings = Settings { half_close: true, ..Settings::default() };
        let mut stats = Stats::default();
        let mut out = Vec::new();
        let sock_wr = FailingWriter(io::ErrorKind::BrokenPipe);
        let done = session(&b"more\n"[..], &mut out, &b"bye\n"[..], sock_wr, &settings, &mut stats).await;
        done.unwrap();
        assert_eq!(out, b"bye\n");
        assert_eq!(stats, Stats { sent: 0, received: 4 });
    }

    #[tokio::test]
    async fn reset_on_send_is_reported_after_the_received_bytes_are_printed() {
        let settings = Settings { half_close: true, ..Settings::default() };
        let mut stats = Stats::default();
        let mut out = Vec::new();
        let sock_wr = FailingWriter(io::ErrorKind::ConnectionReset);
        let err = session(&b"x"[..], &mut out, &b"last words"[..], sock_wr, &settings, &mut stats).await;
        assert!(
            matches!(&err, Err(SessionError::Socket(e)) if e.kind() == io::ErrorKind::ConnectionReset),
            "{err:?}"
        );
        assert_eq!(out, b"last words");
        assert_eq!(stats.received, 10);
    }

    #[tokio::test(start_paused = true)]
    async fn a_slow_reader_taking_bytes_is_activity_for_the_idle_timeout() {
        // A 4-byte pipe: the 20-byte input needs five reads by the peer, 2 s apart,
        // longer in all than the 3 s idle limit but never 3 s without progress.
        let (near, mut far) = duplex(4);
        let (sock_rd, sock_wr) = tokio::io::split(near);
        let settings =
            Settings { idle: Some(Duration::from_secs(3)), half_close: true, ..Settings::default() };
        let mut stats = Stats::default();
        let mut out = Vec::new();
        let peer = async {
            let mut got = Vec::new();
            let mut buf = [0u8; 4];
            for _ in 0..10 {
                tokio::time::sleep(Duration::from_secs(2)).await;
                let n = far.read(&mut buf).await.unwrap();
                got.extend_from_slice(&buf[..n]);
                if got.len() == 20 {
                    break;
                }
            }
            far.write_all(b"ok").await.unwrap();
            far.shutdown().await.unwrap();
            got
        };
        let input = b"0123456789abcdefghij";
        let (done, got) =
            tokio::join!(session(&input[..], &mut out, sock_rd, sock_wr, &settings, &mut stats), peer);
        done.unwrap();
        assert_eq!(got, input);
        assert_eq!(out, b"ok");
    }

    #[tokio::test(start_paused = true)]
    async fn after_the_peer_half_closes_input_arriving_later_is_still_sent() {
        let (near, mut far) = pipe_socket();
        let (sock_rd, sock_wr) = tokio::io::split(near);
        let (input, mut typist) = duplex(64);
        let settings = Settings { half_close: true, ..Settings::default() };
        let mut stats = Stats::default();
        let mut out = Vec::new();
        let peer = async {
            far.write_all(b"send me the rest\n").await.unwrap();
            far.shutdown().await.unwrap();
            // The input comes only after the peer's EOF has been read.
            tokio::time::sleep(Duration::from_secs(1)).await;
            typist.write_all(b"the rest").await.unwrap();
            drop(typist);
            let mut got = Vec::new();
            far.read_to_end(&mut got).await.unwrap();
            got
        };
        let (done, got) =
            tokio::join!(session(input, &mut out, sock_rd, sock_wr, &settings, &mut stats), peer);
        done.unwrap();
        assert_eq!(got, b"the rest");
        assert_eq!(out, b"send me the rest\n");
    }

    #[tokio::test]
    async fn end_on_peer_eof_ends_at_once_with_the_input_still_open() {
        let (near, mut far) = pipe_socket();
        let (sock_rd, sock_wr) = tokio::io::split(near);
        let (input, _typist) = duplex(64); // kept open and silent
        let settings = Settings { half_close: true, end_on_peer_eof: true, ..Settings::default() };
        let mut stats = Stats::default();
        let mut out = Vec::new();
        far.write_all(b"bye\n").await.unwrap();
        far.shutdown().await.unwrap();
        session(input, &mut out, sock_rd, sock_wr, &settings, &mut stats).await.unwrap();
        assert_eq!(out, b"bye\n");
    }
}
