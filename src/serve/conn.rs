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
//! Memory across connections: the line buffer's growth is charged to the
//! server-wide [`InputBudget`]; a connection whose growth the budget refuses
//! is told [`protocol::INPUT_BUDGET`] and closed.
//!
//! The connection is generic over its byte stream ([`Stream`]): a `TcpStream`
//! in the server, an in-memory pipe in the unit tests.
//!
//! Not for: accepting, the connection limit or logging (see `accept`).
use std::cell::RefCell;
use std::fmt;
use std::future::{Future, poll_fn};
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::framing::{Flow, Framer};
use super::limits::InputBudget;
use super::protocol::{self, Protocol};

/// A connection's byte stream: read, write, and say how many received bytes
/// wait unread in the kernel (`FIONREAD` for a socket), which is what shutdown
/// still answers and what decides whether a close must linger.
pub trait Stream: AsyncRead + AsyncWrite + Unpin {
    /// Bytes received by the host and not yet read.
    fn pending_input(&self) -> io::Result<u64>;
}

impl Stream for tokio::net::TcpStream {
    fn pending_input(&self) -> io::Result<u64> {
        crate::net::sys::pending_bytes(self)
    }
}

/// Over TLS: the ciphertext waiting in the kernel. It is larger than the
/// plaintext it carries (record headers and tags), so shutdown answers at
/// least every line that had reached the host, never fewer.
impl<S: Stream> Stream for tokio_rustls::server::TlsStream<S> {
    fn pending_input(&self) -> io::Result<u64> {
        self.get_ref().0.pending_input()
    }
}

/// A traced stream: the layer below's count (the tap buffers nothing).
impl<S: Stream> Stream for crate::net::trace::Tap<S> {
    fn pending_input(&self) -> io::Result<u64> {
        self.get_ref().pending_input()
    }
}

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
    /// The server-wide budget for partial lines, shared by every connection.
    pub input_budget: InputBudget,
    /// In shutdown, a connection is still served as usual until it has been
    /// quiet (nothing read, nothing written) this long, counted from the
    /// signal at the earliest, so a client in the middle of a short
    /// conversation finishes it; then the lines that had reached the host are
    /// answered and it is closed. Zero: that end comes at the signal.
    pub drain_idle: Duration,
    /// Bound on that draining, from the signal, for a connection that never
    /// goes quiet (the server sets it below its shutdown timeout).
    pub drain_max: Duration,
    /// Lines and bytes are added to these as they are served (once per
    /// wake-up that made progress), so a scrape sees long connections move.
    pub metrics: std::sync::Arc<super::metrics::Metrics>,
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
    /// The server-wide budget for partial lines was spent.
    InputBudget,
    /// `--proxy-protocol`: no valid header came first.
    ProxyHeader(super::proxy::HeaderError),
    /// The TLS handshake failed or timed out (the reason in words).
    Tls(String),
    /// Any other I/O error.
    Error(io::ErrorKind),
}

impl CloseReason {
    /// A fixed label for the reason (metrics keep label values bounded).
    pub fn label(&self) -> &'static str {
        match self {
            CloseReason::Quit => "quit",
            CloseReason::Eof => "eof",
            CloseReason::Idle => "idle",
            CloseReason::LineTooLong => "line too long",
            CloseReason::Busy => "busy",
            CloseReason::Reset => "reset",
            CloseReason::Shutdown => "shutdown",
            CloseReason::InputBudget => "input budget",
            CloseReason::ProxyHeader(_) => "proxy header",
            CloseReason::Tls(_) => "tls",
            CloseReason::Error(_) => "error",
        }
    }
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
            CloseReason::InputBudget => f.write_str("input budget"),
            CloseReason::ProxyHeader(e) => write!(f, "proxy header: {e}"),
            CloseReason::Tls(e) => write!(f, "tls: {e}"),
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
    /// Lines, bytes in and bytes out already added to the metrics.
    reported: (u64, u64, u64),
    last_progress: Instant,
    /// Bytes of the framer's buffer charged to the input budget.
    charged: usize,
}

impl Drop for Conn<'_> {
    fn drop(&mut self) {
        self.config.input_budget.release(self.charged);
    }
}

/// Serve one connection to its end. `shutdown` stops reading new input (lines
/// already received are answered); `hard_stop` ends at once.
pub async fn serve<S: Stream>(
    mut stream: S,
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
        reported: (0, 0, 0),
        last_progress: Instant::now(),
        charged: 0,
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
    // In shutdown, while the connection drains: when the signal was seen, and
    // a timer for the drain's end (allocated only then).
    let mut drain: Option<(Instant, Pin<Box<tokio::time::Sleep>>)> = None;

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
            if c.budget.is_none() && shutdown.is_cancelled() && c.drained(&mut drain, progressed) {
                c.start_shutdown(&stream);
                let mut fut = Box::pin(hard_stop.cancelled());
                if fut.as_mut().poll(cx).is_ready() {
                    return Poll::Ready(CloseReason::Shutdown);
                }
                hard = Some(fut);
            }
            match c.poll_step(cx, &mut stream) {
                Poll::Ready(Ok(())) => {
                    progressed = true;
                    c.charge_input();
                }
                Poll::Ready(Err(e)) => return Poll::Ready(io_reason(&e)),
                Poll::Pending => break,
            }
        }
        if progressed {
            c.last_progress = Instant::now();
            c.report();
        }
        if c.budget.is_none()
            && let Some((since, timer)) = &mut drain
        {
            // Still draining: wake when the connection will have been quiet
            // long enough (or at the drain's bound).
            timer.as_mut().reset(c.drain_deadline(*since));
            if timer.as_mut().poll(cx).is_ready() {
                cx.waker().wake_by_ref();
            }
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
    c.report();
    let stats = ConnStats { lines: c.lines, bytes_in: c.bytes_in, bytes_out: c.bytes_out, reason };
    drop(c);
    // Boxed: the closing steps are taken once, and keeping their state out of
    // this future keeps every idle connection smaller.
    Box::pin(close(stream, &stats.reason, hard_stop)).await;
    stats
}

impl Conn<'_> {
    /// Add what was served since the last report to the metrics.
    fn report(&mut self) {
        let (lines, bytes_in, bytes_out) = self.reported;
        self.config.metrics.progress(
            self.lines - lines,
            self.bytes_in - bytes_in,
            self.bytes_out - bytes_out,
        );
        self.reported = (self.lines, self.bytes_in, self.bytes_out);
    }

    /// Move the connection one step: write what is owed, else answer lines kept
    /// after a pause, else read and answer. Ready after any progress.
    fn poll_step<S: Stream>(&mut self, cx: &mut Context<'_>, stream: &mut S) -> Poll<io::Result<()>> {
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
    fn write_now<S: Stream>(
        &mut self,
        cx: &mut Context<'_>,
        stream: &mut S,
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

    /// In shutdown: whether this connection's draining is over (the caller
    /// then starts its end). Starts the drain on the first call.
    fn drained(&self, drain: &mut Option<(Instant, Pin<Box<tokio::time::Sleep>>)>, progressed: bool) -> bool {
        if self.config.drain_idle.is_zero() {
            return true;
        }
        let now = Instant::now();
        let since = match drain {
            Some((since, _)) => *since,
            None => {
                *drain = Some((now, Box::pin(tokio::time::sleep_until(now))));
                now
            }
        };
        // Progress in this poll is not in `last_progress` yet.
        !progressed && now >= self.drain_deadline(since)
    }

    /// When draining ends: quiet for `drain_idle` since the signal or the last
    /// progress, whichever is later, and at most `drain_max` after the signal.
    fn drain_deadline(&self, since: Instant) -> Instant {
        let quiet = self.last_progress.max(since) + self.config.drain_idle;
        quiet.min(since + self.config.drain_max)
    }

    /// Shutdown began: answer exactly the bytes that had reached the host,
    /// those in the kernel's receive buffer included (the client saw them
    /// acknowledged), and no more.
    fn start_shutdown<S: Stream>(&mut self, stream: &S) {
        let pending = stream.pending_input().unwrap_or(0);
        self.budget = Some(pending);
    }

    /// Charge the line buffer's growth to the server-wide input budget (give
    /// back what it shrank by). Growth the budget refuses ends the connection:
    /// the buffer is dropped, the client told why.
    fn charge_input(&mut self) {
        let held = self.framer.capacity();
        let budget = &self.config.input_budget;
        if held <= self.charged {
            budget.release(self.charged - held);
            self.charged = held;
        } else if budget.try_charge(held - self.charged) {
            self.charged = held;
        } else {
            self.framer = Framer::new(self.config.max_line);
            budget.release(self.charged);
            self.charged = 0;
            if self.end.is_none() {
                self.out.extend_from_slice(protocol::INPUT_BUDGET);
                self.end = Some(CloseReason::InputBudget);
            }
        }
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
async fn close<S: Stream>(mut stream: S, reason: &CloseReason, hard_stop: &CancellationToken) {
    if matches!(reason, CloseReason::Reset | CloseReason::Error(_)) {
        return;
    }
    // After an over-long line or in shutdown the client is likely still
    // sending. After `exit` a client has no reason to, so linger only if bytes
    // already wait unread (a close with unread input is sent as a reset).
    let linger = match reason {
        CloseReason::LineTooLong | CloseReason::Shutdown | CloseReason::InputBudget => true,
        CloseReason::Quit => stream.pending_input().map_or(true, |n| n > 0),
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

#[cfg(test)]
mod tests {
    //! Each rule of the loop on an in-memory pipe, with paused time: the
    //! clock only moves when every task waits, so durations are exact.
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU64, Ordering};

    use tokio::io::{AsyncReadExt, DuplexStream};
    use tokio::time::Instant;

    use super::*;

    /// The server's end of the pipe; "bytes pending in the kernel" is what the
    /// test says it is.
    struct Pipe {
        io: DuplexStream,
        pending: Arc<AtomicU64>,
    }

    impl AsyncRead for Pipe {
        fn poll_read(
            self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &mut ReadBuf<'_>,
        ) -> Poll<io::Result<()>> {
            Pin::new(&mut self.get_mut().io).poll_read(cx, buf)
        }
    }

    impl AsyncWrite for Pipe {
        fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
            Pin::new(&mut self.get_mut().io).poll_write(cx, buf)
        }
        fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            Pin::new(&mut self.get_mut().io).poll_flush(cx)
        }
        fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
        }
    }

    impl Stream for Pipe {
        fn pending_input(&self) -> io::Result<u64> {
            Ok(self.pending.load(Ordering::Relaxed))
        }
    }

    fn config(max_line: usize, idle: Option<Duration>) -> Arc<ConnConfig> {
        with_budget(max_line, idle, usize::MAX)
    }

    fn with_budget(max_line: usize, idle: Option<Duration>, budget: usize) -> Arc<ConnConfig> {
        Arc::new(ConnConfig {
            protocol: Protocol::new("Welcome!", "Hello, {}!", "exit"),
            max_line,
            idle_timeout: idle,
            input_budget: InputBudget::new(budget),
            drain_idle: Duration::ZERO,
            drain_max: Duration::ZERO,
            metrics: Default::default(),
        })
    }

    fn draining(idle: Duration, max: Duration) -> Arc<ConnConfig> {
        Arc::new(ConnConfig {
            protocol: Protocol::new("Welcome!", "Hello, {}!", "exit"),
            max_line: 1024,
            idle_timeout: None,
            input_budget: InputBudget::new(usize::MAX),
            drain_idle: idle,
            drain_max: max,
            metrics: Default::default(),
        })
    }

    struct Running {
        client: DuplexStream,
        pending: Arc<AtomicU64>,
        shutdown: CancellationToken,
        hard_stop: CancellationToken,
        task: tokio::task::JoinHandle<(ConnStats, Duration)>,
    }

    /// A connection served on a pipe of `capacity` bytes each way.
    fn start(config: Arc<ConnConfig>, capacity: usize) -> Running {
        let (client, server) = tokio::io::duplex(capacity);
        let pending = Arc::new(AtomicU64::new(0));
        let (shutdown, hard_stop) = (CancellationToken::new(), CancellationToken::new());
        let pipe = Pipe { io: server, pending: pending.clone() };
        let (s, h) = (shutdown.clone(), hard_stop.clone());
        let task = tokio::spawn(async move {
            let start = Instant::now();
            let stats = serve(pipe, &config, &s, &h).await;
            (stats, start.elapsed())
        });
        Running { client, pending, shutdown, hard_stop, task }
    }

    async fn read_all(client: &mut DuplexStream) -> Vec<u8> {
        let mut out = Vec::new();
        client.read_to_end(&mut out).await.unwrap();
        out
    }

    #[tokio::test(start_paused = true)]
    async fn a_client_that_does_not_read_stops_the_reading() {
        let mut r = start(config(1024, None), 4096);
        let lines: Vec<u8> = b"0123456789abcdef\n".repeat(100_000);
        // Nobody reads the replies: once the pipe and `out` are full the
        // server stops reading, so the client's write cannot finish.
        let stalled = tokio::time::timeout(Duration::from_secs(60), r.client.write_all(&lines)).await;
        assert!(stalled.is_err(), "the server kept reading a client that does not read");
        // Reading the replies lets it finish; every line is answered in order.
        let (mut rd, mut wr) = tokio::io::split(r.client);
        let writer = tokio::spawn(async move {
            wr.write_all(&lines[..]).await.unwrap_or(());
            wr.write_all(b"exit\n").await.unwrap();
        });
        let mut got = Vec::new();
        rd.read_to_end(&mut got).await.unwrap();
        writer.await.unwrap();
        let (stats, _) = r.task.await.unwrap();
        assert_eq!(stats.reason, CloseReason::Quit);
        // (The stalled write may have stopped mid-line: that line is longer.)
        assert!(got.starts_with(b"Welcome!\nHello, 0123456789abcdef!\n"));
        assert!(got.ends_with(b"Hello, 0123456789abcdef!\n"));
        assert!(stats.lines > 100_000 && stats.bytes_out == got.len() as u64, "{stats:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn idle_timeout_counts_from_the_last_progress() {
        let mut r = start(config(1024, Some(Duration::from_secs(5))), 4096);
        tokio::time::sleep(Duration::from_secs(3)).await;
        r.client.write_all(b"late\n").await.unwrap();
        let got = read_all(&mut r.client).await;
        let (stats, elapsed) = r.task.await.unwrap();
        assert_eq!(got, b"Welcome!\nHello, late!\n");
        assert_eq!(stats.reason, CloseReason::Idle);
        // Closed 5 s after the line at 3 s, not 5 s after the start.
        assert!(elapsed >= Duration::from_secs(8) && elapsed < Duration::from_secs(9), "{elapsed:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn shutdown_answers_exactly_the_bytes_that_had_arrived() {
        let mut r = start(config(1024, None), 4096);
        let mut greeting = [0; 9];
        r.client.read_exact(&mut greeting).await.unwrap();
        // The signal comes with 8 bytes in the kernel; "three" came later.
        r.pending.store(8, Ordering::Relaxed);
        r.shutdown.cancel();
        r.client.write_all(b"one\ntwo\nthree\n").await.unwrap();
        let got = read_all(&mut r.client).await;
        let (stats, _) = r.task.await.unwrap();
        assert_eq!(got, b"Hello, one!\nHello, two!\n");
        assert_eq!((stats.lines, stats.reason), (2, CloseReason::Shutdown));
    }

    #[tokio::test(start_paused = true)]
    async fn in_shutdown_a_conversation_goes_on_until_the_client_is_quiet_for_drain_idle() {
        let t0 = Instant::now();
        let mut r = start(draining(Duration::from_millis(500), Duration::from_secs(5)), 4096);
        let mut greeting = [0; 9];
        r.client.read_exact(&mut greeting).await.unwrap();
        r.shutdown.cancel();
        // Lines keep coming after the signal, each within the quiet time:
        // each is answered (with a zero drain they would not be).
        for (i, word) in ["one", "two", "three"].iter().enumerate() {
            tokio::time::sleep(Duration::from_millis(400)).await;
            r.client.write_all(format!("{word}\n").as_bytes()).await.unwrap();
            let mut reply = vec![0; format!("Hello, {word}!\n").len()];
            r.client.read_exact(&mut reply).await.unwrap();
            assert_eq!(reply, format!("Hello, {word}!\n").as_bytes(), "line {i}");
        }
        // Then quiet: the connection ends (the client sees EOF) 500 ms after
        // its last line.
        let got = read_all(&mut r.client).await;
        let elapsed = t0.elapsed();
        let (stats, _) = r.task.await.unwrap();
        assert!(got.is_empty(), "{got:?}");
        assert_eq!((stats.lines, stats.reason), (3, CloseReason::Shutdown));
        assert!(
            elapsed >= Duration::from_millis(1700) && elapsed < Duration::from_millis(1800),
            "{elapsed:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn draining_is_bounded_for_a_client_that_never_goes_quiet() {
        let t0 = Instant::now();
        let r = start(draining(Duration::from_millis(500), Duration::from_secs(2)), 1 << 20);
        r.shutdown.cancel();
        let (mut rd, mut wr) = tokio::io::split(r.client);
        let pending = r.pending.clone();
        let talker = tokio::spawn(async move {
            for _ in 0..100 {
                tokio::time::sleep(Duration::from_millis(100)).await;
                pending.store(0, Ordering::Relaxed);
                if wr.write_all(b"more\n").await.is_err() {
                    break;
                }
            }
        });
        let mut got = Vec::new();
        rd.read_to_end(&mut got).await.unwrap();
        let elapsed = t0.elapsed();
        talker.abort();
        let (stats, _) = r.task.await.unwrap();
        assert_eq!(stats.reason, CloseReason::Shutdown);
        // Lines for 2 s (one each 100 ms), then ended.
        assert!((18..=21).contains(&stats.lines), "{stats:?}");
        assert!(elapsed >= Duration::from_secs(2) && elapsed < Duration::from_millis(2200), "{elapsed:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn the_hard_stop_ends_a_connection_whose_client_does_not_read() {
        let mut r = start(config(1024, None), 64);
        r.client.write_all(&b"x\n".repeat(20)).await.unwrap();
        // The lines are read; their 200 bytes of replies do not fit the pipe.
        tokio::time::sleep(Duration::from_millis(1)).await;
        r.pending.store(0, Ordering::Relaxed);
        r.shutdown.cancel();
        tokio::time::sleep(Duration::from_secs(30)).await;
        assert!(!r.task.is_finished(), "replies are still owed");
        r.hard_stop.cancel();
        let (stats, elapsed) = r.task.await.unwrap();
        assert_eq!(stats.reason, CloseReason::Shutdown);
        assert!(elapsed < Duration::from_secs(31), "{elapsed:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn after_an_overlong_line_the_close_lingers_while_the_client_sends() {
        let mut r = start(config(10, None), 4096);
        r.client.write_all(b"far too long a line").await.unwrap();
        let mut got = vec![0; 9 + protocol::line_too_long(10).len()];
        r.client.read_exact(&mut got).await.unwrap();
        assert!(got.ends_with(&protocol::line_too_long(10)));
        // The client keeps the connection open: the server reads and discards
        // for LINGER, then gives up.
        let (stats, elapsed) = r.task.await.unwrap();
        assert_eq!(stats.reason, CloseReason::LineTooLong);
        assert!(elapsed >= LINGER && elapsed < LINGER + Duration::from_millis(100), "{elapsed:?}");
        drop(r.client);
    }

    #[tokio::test(start_paused = true)]
    async fn the_linger_ends_at_once_when_the_client_closes() {
        let mut r = start(config(10, None), 4096);
        r.client.write_all(b"far too long a line").await.unwrap();
        r.client.shutdown().await.unwrap();
        let got = read_all(&mut r.client).await;
        assert!(got.ends_with(&protocol::line_too_long(10)));
        let (_, elapsed) = r.task.await.unwrap();
        assert!(elapsed < LINGER, "{elapsed:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn growth_past_the_input_budget_is_refused_and_given_back() {
        let config = with_budget(1024, None, 100);
        let (mut a, mut b) = (start(config.clone(), 4096), start(config.clone(), 4096));
        a.client.write_all(&[b'a'; 80]).await.unwrap();
        let mut greeting = [0; 9];
        a.client.read_exact(&mut greeting).await.unwrap();
        tokio::task::yield_now().await;
        b.client.write_all(&[b'b'; 80]).await.unwrap();
        let got = read_all(&mut b.client).await;
        assert_eq!(got, [&b"Welcome!\n"[..], protocol::INPUT_BUDGET].concat());
        let (stats, _) = b.task.await.unwrap();
        assert_eq!(stats.reason, CloseReason::InputBudget);
        // The first keeps its line and is answered; then all is given back.
        a.client.write_all(b"\nexit\n").await.unwrap();
        let got = read_all(&mut a.client).await;
        assert_eq!(got.len(), "Hello, !\n".len() + 80);
        a.task.await.unwrap();
        assert_eq!(config.input_budget.used(), 0);
    }
}
