//! One connection: read -> frame -> reply -> write, until the quit word, EOF,
//! the idle timeout, an error or shutdown; then the close reason and counters.
//!
//! Memory: an idle connection holds no buffer. Bytes are read into a per-thread
//! scratch buffer and answered from there in the same poll, so the connection
//! keeps bytes only when it must: a partial line (in its [`Framer`]) or replies
//! the client has not taken yet (`out`).
//!
//! Backpressure: while `out` is not empty nothing more is read, so a client
//! that sends but never reads fills its own socket buffers and stalls only
//! itself; `out` is bounded by [`OUT_HIGH`] plus one reply.
//!
//! Not for: accepting, limits across connections or logging (see `serve`).
use std::cell::RefCell;
use std::fmt;
use std::future::{Future, poll_fn};
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::framing::{Flow, Framer};
use super::protocol::{self, Protocol};

/// Bytes read from the socket at once, into the per-thread scratch buffer.
pub const READ_SIZE: usize = 64 * 1024;

/// Replies rendered before the framer pauses to write them out; with the
/// largest reply this bounds what a connection can owe its client.
pub const OUT_HIGH: usize = 64 * 1024;

/// After the server closes its side, how long at most it keeps reading (and
/// discarding) so that unread input does not turn the close into a reset that
/// could destroy replies still in flight to the client. Bounded in time only:
/// the bytes are thrown away as they come.
pub const LINGER: Duration = Duration::from_secs(2);

/// What a connection needs to know, shared by all connections of a server.
#[derive(Debug)]
pub struct ConnConfig {
    /// Greeting, reply template and quit word.
    pub protocol: Protocol,
    /// Longest line accepted, without its line ending.
    pub max_line: usize,
    /// Close after this long without progress in either direction.
    pub idle_timeout: Option<Duration>,
}

/// Why a connection ended.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum CloseReason {
    /// The client sent the quit word.
    Quit,
    /// The client closed its side (half-close or full close).
    Eof,
    /// No progress for the idle timeout.
    Idle,
    /// A line passed `--max-line`.
    LineTooLong,
    /// Refused over `--max-connections`.
    Busy,
    /// The client reset the connection (or vanished mid-write).
    Reset,
    /// The server was shutting down.
    Shutdown,
    /// Any other I/O error.
    Error(io::ErrorKind),
}

impl fmt::Display for CloseReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CloseReason::Quit => f.write_str("quit"),
            CloseReason::Eof => f.write_str("eof"),
            CloseReason::Idle => f.write_str("idle"),
            CloseReason::LineTooLong => f.write_str("line too long"),
            CloseReason::Busy => f.write_str("busy"),
            CloseReason::Reset => f.write_str("reset"),
            CloseReason::Shutdown => f.write_str("shutdown"),
            CloseReason::Error(e) => write!(f, "error: {e}"),
        }
    }
}

/// What happened on one connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnStats {
    /// Lines answered.
    pub lines: u64,
    /// Bytes received.
    pub bytes_in: u64,
    /// Bytes sent.
    pub bytes_out: u64,
    /// Why it ended.
    pub reason: CloseReason,
}

/// Buffers shared by the connections of one thread: only one of them runs at a time.
struct Scratch {
    input: Box<[u8]>,
    output: Vec<u8>,
}

thread_local! {
    static SCRATCH: RefCell<Scratch> = RefCell::new(Scratch {
        input: vec![0; READ_SIZE].into_boxed_slice(),
        output: Vec::with_capacity(OUT_HIGH * 2),
    });
}

/// The state of one connection.
struct Conn<'a> {
    config: &'a ConnConfig,
    framer: Framer,
    /// Replies owed to the client that it has not taken yet.
    out: Vec<u8>,
    /// Set once the connection is to close when `out` is written.
    end: Option<CloseReason>,
    /// In shutdown: bytes still to read, those that had reached the host when
    /// the signal came.
    budget: Option<u64>,
    lines: u64,
    bytes_in: u64,
    bytes_out: u64,
    last_progress: Instant,
}

/// Serve one connection to its end. `shutdown` stops reading new input (lines
/// already received are answered); `hard_stop` ends at once.
pub async fn serve(
    mut stream: TcpStream,
    config: &ConnConfig,
    shutdown: &CancellationToken,
    hard_stop: &CancellationToken,
) -> ConnStats {
    let mut c = Conn {
        config,
        framer: Framer::new(config.max_line),
        out: Vec::new(),
        end: None,
        budget: None,
        lines: 0,
        bytes_in: 0,
        bytes_out: 0,
        last_progress: Instant::now(),
    };
    if !config.protocol.greeting.is_empty() {
        c.out.extend_from_slice(&config.protocol.greeting);
    }
    let idle = config.idle_timeout;
    let sleep = tokio::time::sleep(idle.unwrap_or(Duration::ZERO));
    tokio::pin!(sleep);
    // Pinned once: it stays registered with its token instead of taking the
    // token's lock again on every loop turn. The hard stop is only watched once
    // shutdown began, so an idle connection carries one such future, not two.
    let soft = shutdown.cancelled();
    tokio::pin!(soft);
    let mut hard: Option<Pin<Box<tokio_util::sync::WaitForCancellationFuture<'_>>>> = None;

    // The hot path is one poll per wake-up: steps until the socket would block,
    // then cheap atomic checks of the shutdown token and the idle timer. Both
    // were polled once so they hold this task's waker and wake it when they
    // fire; polling them again on every step would take the token's lock and
    // the timer's state each time.
    let mut armed = false;
    let reason = poll_fn(|cx| {
        if let Some(fut) = &mut hard {
            if fut.as_mut().poll(cx).is_ready() {
                return Poll::Ready(CloseReason::Shutdown);
            }
        }
        let mut progressed = false;
        loop {
            if c.out.is_empty() {
                if let Some(reason) = c.end.take() {
                    return Poll::Ready(reason);
                }
            }
            if c.budget.is_none() && shutdown.is_cancelled() {
                c.start_shutdown(&stream);
                let mut fut = Box::pin(hard_stop.cancelled());
                if fut.as_mut().poll(cx).is_ready() {
                    return Poll::Ready(CloseReason::Shutdown);
                }
                hard = Some(fut);
            }
            match c.poll_step(cx, &mut stream) {
                Poll::Ready(Ok(())) => progressed = true,
                Poll::Ready(Err(e)) => return Poll::Ready(io_reason(&e)),
                Poll::Pending => break,
            }
        }
        if progressed {
            c.last_progress = Instant::now();
        }
        if !armed {
            armed = true;
            // Registers the waker. Ready here means it fired in between:
            // poll again at once so the checks below and above see it.
            let fired =
                soft.as_mut().poll(cx).is_ready() || (idle.is_some() && sleep.as_mut().poll(cx).is_ready());
            if fired {
                cx.waker().wake_by_ref();
            }
        }
        if let Some(idle) = idle {
            if sleep.is_elapsed() {
                let deadline = c.last_progress + idle;
                if Instant::now() >= deadline {
                    return Poll::Ready(CloseReason::Idle);
                }
                sleep.as_mut().reset(deadline);
                if sleep.as_mut().poll(cx).is_ready() {
                    return Poll::Ready(CloseReason::Idle);
                }
            }
        }
        Poll::Pending
    })
    .await;
    let stats = ConnStats { lines: c.lines, bytes_in: c.bytes_in, bytes_out: c.bytes_out, reason };
    // Boxed: the closing steps are taken once, and keeping their state out of
    // this future keeps every idle connection smaller.
    Box::pin(close(stream, &stats.reason, hard_stop)).await;
    stats
}

impl Conn<'_> {
    /// Move the connection one step: write what is owed, else answer lines kept
    /// after a pause, else read and answer. Ready after any progress.
    fn poll_step(&mut self, cx: &mut Context<'_>, stream: &mut TcpStream) -> Poll<io::Result<()>> {
        if !self.out.is_empty() {
            let n = ready!(Pin::new(&mut *stream).poll_write(cx, &self.out))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.out.drain(..n);
            if self.out.is_empty() {
                self.out = Vec::new();
            }
            self.bytes_out += n as u64;
            return Poll::Ready(Ok(()));
        }
        SCRATCH.with_borrow_mut(|scratch| {
            let Scratch { input, output } = scratch;
            output.clear();
            if self.framer.has_line() {
                self.answer(output, Feed::Resume);
            } else if self.budget == Some(0) {
                // Shutdown: everything that had arrived is answered.
                self.end.get_or_insert(CloseReason::Shutdown);
                return Poll::Ready(Ok(()));
            } else {
                let limit = self.budget.map_or(READ_SIZE, |b| b.min(READ_SIZE as u64) as usize);
                let mut buf = ReadBuf::new(&mut input[..limit]);
                ready!(Pin::new(&mut *stream).poll_read(cx, &mut buf))?;
                let data = buf.filled();
                self.bytes_in += data.len() as u64;
                if let Some(b) = &mut self.budget {
                    *b -= data.len() as u64;
                }
                if data.is_empty() {
                    self.answer(output, Feed::Eof);
                    self.end.get_or_insert(CloseReason::Eof);
                } else {
                    self.answer(output, Feed::Bytes(data));
                }
            }
            self.write_now(cx, stream, output)
        })
    }

    /// Run the framer, rendering a reply per line into `output`.
    fn answer(&mut self, output: &mut Vec<u8>, feed: Feed<'_>) {
        let protocol = &self.config.protocol;
        let mut lines = 0;
        let mut quit = false;
        let mut on_line = |line: &[u8]| {
            if protocol.is_quit(line) {
                quit = true;
                return Flow::Stop;
            }
            protocol.reply.render(line, output);
            lines += 1;
            if output.len() >= OUT_HIGH { Flow::Pause } else { Flow::Continue }
        };
        let result = match feed {
            Feed::Bytes(data) => self.framer.push(data, &mut on_line),
            Feed::Resume => self.framer.resume(&mut on_line),
            Feed::Eof => self.framer.finish(&mut on_line),
        };
        self.lines += lines;
        match result {
            Ok(Flow::Stop) if quit => self.end = Some(CloseReason::Quit),
            Ok(_) => {}
            Err(e) => {
                output.extend_from_slice(&protocol::line_too_long(e.limit));
                self.end = Some(CloseReason::LineTooLong);
            }
        }
    }

    /// Write `output` as far as the socket takes it now; keep the rest in `out`.
    fn write_now(
        &mut self,
        cx: &mut Context<'_>,
        stream: &mut TcpStream,
        output: &mut Vec<u8>,
    ) -> Poll<io::Result<()>> {
        let mut written = 0;
        while written < output.len() {
            match Pin::new(&mut *stream).poll_write(cx, &output[written..]) {
                Poll::Ready(Ok(0)) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                Poll::Ready(Ok(n)) => written += n,
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => break,
            }
        }
        self.bytes_out += written as u64;
        self.out.extend_from_slice(&output[written..]);
        output.clear();
        Poll::Ready(Ok(()))
    }

    /// Shutdown began: answer exactly the bytes that had reached the host,
    /// those in the kernel's receive buffer included (the client saw them
    /// acknowledged), and no more.
    fn start_shutdown(&mut self, stream: &TcpStream) {
        let pending = crate::net::sys::pending_bytes(stream).unwrap_or(0);
        self.budget = Some(pending);
    }
}

/// What the framer is given.
enum Feed<'a> {
    /// Bytes just read.
    Bytes(&'a [u8]),
    /// Nothing new: the lines kept after a pause.
    Resume,
    /// End of input.
    Eof,
}

/// The close reason for an I/O error.
fn io_reason(e: &io::Error) -> CloseReason {
    match e.kind() {
        io::ErrorKind::ConnectionReset | io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionAborted => {
            CloseReason::Reset
        }
        kind => CloseReason::Error(kind),
    }
}

/// Close our side, then, where the client may still be sending, read and
/// discard for a bounded time so the close is not a reset.
async fn close(mut stream: TcpStream, reason: &CloseReason, hard_stop: &CancellationToken) {
    if matches!(reason, CloseReason::Reset | CloseReason::Error(_)) {
        return;
    }
    // After an over-long line or in shutdown the client is likely still
    // sending. After `exit` a client has no reason to, so linger only if bytes
    // already wait unread (a close with unread input is sent as a reset).
    let linger = match reason {
        CloseReason::LineTooLong | CloseReason::Shutdown => true,
        CloseReason::Quit => crate::net::sys::pending_bytes(&stream).map_or(true, |n| n > 0),
        _ => false,
    };
    if stream.shutdown().await.is_err() || !linger {
        return;
    }
    let drain = async {
        loop {
            let n = poll_fn(|cx| {
                SCRATCH.with_borrow_mut(|s| {
                    let mut buf = ReadBuf::new(&mut s.input);
                    ready!(Pin::new(&mut stream).poll_read(cx, &mut buf))?;
                    Poll::Ready(Ok::<_, io::Error>(buf.filled().len()))
                })
            })
            .await;
            if !matches!(n, Ok(1..)) {
                return;
            }
        }
    };
    tokio::select! {
        () = drain => {}
        () = tokio::time::sleep(LINGER) => {}
        () = hard_stop.cancelled() => {}
    }
}
