//! Traces: a record of every byte that crossed a connection, both directions,
//! in the formats people already read: curl's `--trace` and `--trace-ascii`
//! (`== Info:` lines, `=> Send data, N bytes (0xN)`, the hex+ASCII layout,
//! `--trace-time`'s `HH:MM:SS.uuuuuu ` prefix) and ncat's `--hex-dump`.
//!
//! - [`Tap`] wraps any `AsyncRead + AsyncWrite` and records what each read
//!   returned and each write accepted: the bytes that really went to and came
//!   from the layer below (for TLS, wrap the TLS stream to see plaintext).
//! - [`Trace`] is the cheap, cloneable handle a tap (or a command, for `Info`
//!   lines and header/data distinctions) records into. Recording never blocks
//!   and never fails: events go to a writer thread through a queue bounded by
//!   [`MAX_QUEUED_BYTES`]. What happens past the bound depends on who asked:
//!   a client's trace ([`start`]: fetch, connect) is lossless, and its [`Tap`]
//!   waits (without blocking the thread) until the writer has caught up, so the
//!   transfer slows to the sink's pace as curl's does; a server's traces
//!   ([`writer`]) are lossy, so a slow disk never slows serving: bytes past the
//!   bound are counted as dropped and a marker line says how many. A sink that fails (EPIPE, ENOSPC) ends that trace's
//!   writing, reported once by [`TraceWriter::finish`], never a stall or a panic.
//! - [`start`] makes one trace on a writer thread of its own (a client's one
//!   connection); [`writer`] makes a thread that [`TraceWriter::open`]s any
//!   number of traces, one per connection of a server, each with its own sink
//!   and [`Options::max_bytes`], all under one queue bound and one thread.
//! - [`format_data`] and [`format_info`] are the pure formatters.
//!
//! A server tracing each connection to a file of its own, on one writer thread:
//!
//! ```
//! use tcpkit::net::trace::{self, Options, Tap};
//! use tokio::io::{AsyncReadExt, AsyncWriteExt};
//!
//! let dir = tempfile::tempdir()?;
//! let writer = trace::writer(trace::MAX_QUEUED_BYTES)?;
//! let rt = tokio::runtime::Builder::new_current_thread().build()?;
//! rt.block_on(async {
//!     // Stand-ins for an accepted connection and its peer.
//!     let (conn, mut peer) = tokio::io::duplex(1024);
//!     let file = std::fs::File::create(dir.path().join("conn-1.trace"))?;
//!     let opts = Options { max_bytes: Some(1 << 20), ..Options::default() };
//!     let trace = writer.open(file, opts);
//!     trace.info("Accepted 127.0.0.1:40000 on 127.0.0.1:9999");
//!     let mut conn = Tap::new(conn, trace);
//!     conn.write_all(b"Welcome!\n").await?;
//!     let mut got = [0u8; 9];
//!     peer.read_exact(&mut got).await?;
//!     drop(conn); // the last clone of the trace: its file is flushed and closed
//!     Ok::<_, std::io::Error>(())
//! })?;
//! assert!(writer.finish().error.is_none());
//! let text = std::fs::read_to_string(dir.path().join("conn-1.trace"))?;
//! assert!(text.ends_with("=> Send data, 9 bytes (0x9)\n\
//!     0000: 57 65 6c 63 6f 6d 65 21 0a                      Welcome!.\n"));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! Timestamps are UTC (curl prints local time; a container's is UTC anyway).
//!
//! Not for: packet capture (no TCP headers; use tshark), or parsing traces back.
use std::fmt::Write as _;
use std::io::{self, Write};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Bound on bytes waiting for the writer thread. A sink slower than the
/// connection (a terminal, a slow disk) drops what exceeds it rather than slow
/// the connection or grow memory; the trace then says how many bytes it lost.
pub const MAX_QUEUED_BYTES: usize = 16 * 1024 * 1024;

/// How long [`TraceWriter::finish`] waits for the writer to drain and flush
/// before giving up on it (a sink blocked on a full pipe must not hang the exit).
pub const FINISH_TIMEOUT: Duration = Duration::from_secs(5);

/// The layout of a trace.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Format {
    /// curl `--trace`: 16 bytes a line, hex then ASCII.
    #[default]
    Curl,
    /// curl `--trace-ascii`: 64 bytes a line, ASCII only, a new line after CRLF.
    CurlAscii,
    /// ncat `--hex-dump`: 16 bytes a line in two groups of 8, then ASCII;
    /// each chunk under a `# time direction N bytes` header of ours.
    HexDump,
}

/// How a trace is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Options {
    /// The layout.
    pub format: Format,
    /// Prefix each event with the time of day (`--trace-time`); the ncat
    /// layout always carries it.
    pub time: bool,
    /// Bound on bytes waiting for the writer (default [`MAX_QUEUED_BYTES`]).
    pub max_queued: usize,
    /// Bound on data bytes recorded in this trace (`None`: no bound). Past it,
    /// one `Info` line says so and nothing more is recorded, so a long
    /// connection cannot fill the disk (`serve --trace-max-bytes`).
    pub max_bytes: Option<u64>,
}

impl Default for Options {
    fn default() -> Options {
        Options { format: Format::Curl, time: false, max_queued: MAX_QUEUED_BYTES, max_bytes: None }
    }
}

/// Which way bytes went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dir {
    /// From us to the peer (`=>`).
    Send,
    /// From the peer to us (`<=`).
    Recv,
}

/// What the bytes are, as curl names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A protocol header (`Send header`, `Recv header`).
    Header,
    /// Payload (`Send data`, `Recv data`).
    Data,
    /// TLS records as they are on the wire (`Send SSL data`).
    SslData,
}

/// One line of `--trace-time`: `HH:MM:SS.uuuuuu ` in UTC.
pub fn time_prefix(at: SystemTime) -> String {
    let since = at.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs() % 86_400;
    format!("{:02}:{:02}:{:02}.{:06} ", secs / 3600, secs / 60 % 60, secs % 60, since.subsec_micros())
}

/// Append an `== Info: TEXT` line (curl's layout; ncat's gets `# TEXT`).
pub fn format_info(out: &mut String, opts: Options, at: SystemTime, text: &str) {
    let text = text.trim_end_matches('\n');
    match opts.format {
        Format::HexDump => {
            let _ = writeln!(out, "# {}{text}", time_prefix(at));
        }
        Format::Curl | Format::CurlAscii => {
            if opts.time {
                out.push_str(&time_prefix(at));
            }
            let _ = writeln!(out, "== Info: {text}");
        }
    }
}

/// Append one event of `bytes` going `dir` in `opts`'s layout.
pub fn format_data(out: &mut String, opts: Options, at: SystemTime, dir: Dir, kind: Kind, bytes: &[u8]) {
    let size = bytes.len();
    if opts.format == Format::HexDump {
        let word = if dir == Dir::Send { "sent" } else { "received" };
        let _ = writeln!(out, "# {}{word} {size} bytes", time_prefix(at));
        hexdump_ncat(out, bytes);
        return;
    }
    if opts.time {
        out.push_str(&time_prefix(at));
    }
    let arrow = if dir == Dir::Send { "=> Send" } else { "<= Recv" };
    let what = match kind {
        Kind::Header => "header",
        Kind::Data => "data",
        Kind::SslData => "SSL data",
    };
    let _ = writeln!(out, "{arrow} {what}, {size} bytes (0x{size:x})");
    let ascii = opts.format == Format::CurlAscii;
    let width = if ascii { 0x40 } else { 0x10 };
    // curl's tool_cb_dbg.c `dump()`, loop for loop, so the output is the same
    // byte for byte, including how --trace-ascii restarts a line after CRLF.
    let mut i = 0;
    while i < size {
        let _ = write!(out, "{i:04x}: ");
        if !ascii {
            for c in 0..width {
                match bytes.get(i + c) {
                    Some(b) => {
                        let _ = write!(out, "{b:02x} ");
                    }
                    None => out.push_str("   "),
                }
            }
        }
        let mut next = i + width;
        let mut c = 0;
        while c < width && i + c < size {
            if ascii && i + c + 1 < size && bytes[i + c] == 0x0d && bytes[i + c + 1] == 0x0a {
                next = i + c + 2;
                break;
            }
            out.push(printable(bytes[i + c], b' '));
            if ascii && i + c + 2 < size && bytes[i + c + 1] == 0x0d && bytes[i + c + 2] == 0x0a {
                next = i + c + 3;
                break;
            }
            c += 1;
        }
        out.push('\n');
        i = next;
    }
}

/// The byte as itself when it is printable ASCII from `lowest` on, else `.`.
fn printable(b: u8, lowest: u8) -> char {
    if (lowest..0x7f).contains(&b) { b as char } else { '.' }
}

/// ncat's `--hex-dump` lines: offset, two groups of eight hex bytes, ASCII
/// (space shown as `.`), the ASCII column padded to 16.
fn hexdump_ncat(out: &mut String, bytes: &[u8]) {
    for (n, line) in bytes.chunks(16).enumerate() {
        let _ = write!(out, "{:04x}   ", n * 16);
        for pos in 0..16 {
            match line.get(pos) {
                Some(b) => {
                    let _ = write!(out, "{b:02x} ");
                }
                None => out.push_str("   "),
            }
            if pos == 7 || pos == 15 {
                out.push(' ');
            }
        }
        for pos in 0..16 {
            out.push(line.get(pos).map_or(' ', |&b| printable(b, b'!')));
        }
        out.push('\n');
    }
}

enum Msg {
    Open(u64, Box<dyn Write + Send>, Options, Arc<Flags>),
    Info(u64, SystemTime, String),
    Data(u64, SystemTime, Dir, Kind, Vec<u8>),
    Close(u64),
    End,
}

/// What the writer thread and every trace on it share.
#[derive(Debug)]
struct WriterShared {
    /// Bound on bytes queued for this writer, all its traces together.
    max_queued: usize,
    /// Past `max_queued`, make the recording side wait ([`Trace::poll_room`])
    /// instead of dropping bytes (a client's own trace, see [`start`]).
    lossless: bool,
    /// Tasks waiting in [`Trace::poll_room`] for the queue to drain below
    /// `max_queued` (lossless writers only; one per traced stream direction).
    waiters: std::sync::Mutex<Vec<std::task::Waker>>,
    /// The writer thread has stopped: nothing drains the queue any more.
    ended: AtomicBool,
    /// Bytes sent to the writer and not yet written (bounded by `max_queued`).
    queued: AtomicUsize,
    /// Bytes not recorded because the queue was full, all traces.
    dropped: AtomicU64,
    /// The id of the next trace opened.
    next_id: AtomicU64,
}

/// One trace's state, shared by the recording side and the writer thread.
#[derive(Debug, Default)]
struct Flags {
    /// The sink failed: recording is a no-op from then on.
    failed: AtomicBool,
    /// Bytes of this trace not recorded because the queue was full.
    dropped: AtomicU64,
}

/// One trace; the last clone dropped closes it (its sink is flushed and dropped).
#[derive(Debug)]
struct TraceState {
    id: u64,
    tx: mpsc::Sender<Msg>,
    writer: Arc<WriterShared>,
    flags: Arc<Flags>,
    /// [`Options::max_bytes`].
    max_bytes: Option<u64>,
    /// Data bytes accepted for recording so far (bounded by `max_bytes`).
    recorded: AtomicU64,
}

impl Drop for TraceState {
    fn drop(&mut self) {
        let _ = self.tx.send(Msg::Close(self.id));
    }
}

/// The handle events are recorded into; clones share one trace. Every method
/// returns at once and cannot fail (see the module documentation).
#[derive(Clone, Debug)]
pub struct Trace {
    state: Arc<TraceState>,
}

/// How a writer ended.
#[derive(Debug, Default)]
pub struct TraceOutcome {
    /// Bytes not recorded because the writer fell behind, all traces.
    pub dropped: u64,
    /// The first error of any sink; that trace wrote nothing more after it.
    pub error: Option<io::Error>,
    /// How many traces had a failing sink.
    pub failed_traces: u64,
}

/// A writer thread for any number of traces (one per connection, say): each
/// [`open`](TraceWriter::open) adds a trace with a sink of its own; all share
/// one queue bound. [`finish`](TraceWriter::finish) it at the end.
#[derive(Debug)]
pub struct TraceWriter {
    tx: mpsc::Sender<Msg>,
    done: mpsc::Receiver<TraceOutcome>,
    shared: Arc<WriterShared>,
}

/// Start a writer thread whose traces together queue at most `max_queued`
/// bytes; past it, bytes are dropped and counted (a server's traces: tracing
/// must never slow serving).
pub fn writer(max_queued: usize) -> io::Result<TraceWriter> {
    spawn_writer(max_queued, false)
}

fn spawn_writer(max_queued: usize, lossless: bool) -> io::Result<TraceWriter> {
    let (tx, rx) = mpsc::channel();
    let (done_tx, done) = mpsc::channel();
    let shared = Arc::new(WriterShared {
        max_queued,
        lossless,
        waiters: std::sync::Mutex::new(Vec::new()),
        ended: AtomicBool::new(false),
        queued: AtomicUsize::new(0),
        dropped: AtomicU64::new(0),
        next_id: AtomicU64::new(0),
    });
    let thread_shared = shared.clone();
    std::thread::Builder::new().name("tcpkit-trace".into()).spawn(move || {
        let outcome = write_loop(&rx, &thread_shared);
        let _ = done_tx.send(outcome);
    })?;
    Ok(TraceWriter { tx, done, shared })
}

/// Start one trace written to `sink` in `opts`'s layout, on a writer thread of
/// its own bounded by [`Options::max_queued`]. The trace is lossless: every
/// byte is recorded, and a [`Tap`] on it waits for the writer when the queue is
/// full, so the traced transfer runs at the sink's pace (as curl's does).
pub fn start<W: Write + Send + 'static>(sink: W, opts: Options) -> io::Result<(Trace, TraceWriter)> {
    let writer = spawn_writer(opts.max_queued, true)?;
    Ok((writer.open(sink, opts), writer))
}

/// A sink on the writer thread.
struct Sink {
    out: Box<dyn Write + Send>,
    opts: Options,
    flags: Arc<Flags>,
    /// The part of `flags.dropped` already reported in the trace.
    reported_dropped: u64,
}

fn write_loop(rx: &mpsc::Receiver<Msg>, shared: &WriterShared) -> TraceOutcome {
    let mut outcome = TraceOutcome::default();
    let mut sinks: std::collections::HashMap<u64, Sink> = std::collections::HashMap::new();
    let mut text = String::new();
    let fail = |sink: &mut Sink, e: io::Error, outcome: &mut TraceOutcome| {
        sink.flags.failed.store(true, Ordering::Relaxed);
        outcome.failed_traces += 1;
        outcome.error.get_or_insert(e);
    };
    // Ends at `End` or when every sender is gone.
    while let Ok(msg) = rx.recv() {
        let (id, at, event) = match msg {
            Msg::End => break,
            Msg::Open(id, out, opts, flags) => {
                sinks.insert(id, Sink { out, opts, flags, reported_dropped: 0 });
                continue;
            }
            Msg::Close(id) => {
                if let Some(mut sink) = sinks.remove(&id)
                    && !sink.flags.failed.load(Ordering::Relaxed)
                    && let Err(e) = sink.out.flush()
                {
                    fail(&mut sink, e, &mut outcome);
                }
                continue;
            }
            Msg::Info(id, at, line) => (id, at, Ok(line)),
            Msg::Data(id, at, dir, kind, bytes) => {
                let left = shared.queued.fetch_sub(bytes.len(), Ordering::AcqRel) - bytes.len();
                if shared.lossless && left <= shared.max_queued {
                    shared.wake_waiters();
                }
                (id, at, Err((dir, kind, bytes)))
            }
        };
        let Some(sink) = sinks.get_mut(&id) else { continue };
        if sink.flags.failed.load(Ordering::Relaxed) {
            continue;
        }
        text.clear();
        let dropped = sink.flags.dropped.load(Ordering::Relaxed);
        if dropped > sink.reported_dropped {
            let note = format!(
                "trace: {} bytes not recorded (the trace writer fell behind)",
                dropped - sink.reported_dropped
            );
            format_info(&mut text, sink.opts, SystemTime::now(), &note);
            sink.reported_dropped = dropped;
        }
        match event {
            Ok(line) => format_info(&mut text, sink.opts, at, &line),
            Err((dir, kind, bytes)) => format_data(&mut text, sink.opts, at, dir, kind, &bytes),
        }
        if let Err(e) = sink.out.write_all(text.as_bytes()) {
            fail(sink, e, &mut outcome);
        }
    }
    for sink in sinks.values_mut() {
        if !sink.flags.failed.load(Ordering::Relaxed)
            && let Err(e) = sink.out.flush()
        {
            fail(sink, e, &mut outcome);
        }
    }
    outcome.dropped = shared.dropped.load(Ordering::Relaxed);
    // Nothing drains the queue from here on: let no recorder wait for it.
    shared.ended.store(true, Ordering::Release);
    shared.wake_waiters();
    outcome
}

impl WriterShared {
    fn wake_waiters(&self) {
        let waiters = match self.waiters.lock() {
            Ok(mut w) if !w.is_empty() => std::mem::take(&mut *w),
            _ => return,
        };
        waiters.into_iter().for_each(std::task::Waker::wake);
    }
}

impl Trace {
    /// Record an `Info` line.
    pub fn info(&self, text: impl Into<String>) {
        let state = &self.state;
        if !state.flags.failed.load(Ordering::Relaxed) {
            let _ = state.tx.send(Msg::Info(state.id, SystemTime::now(), text.into()));
        }
    }

    /// Record `bytes` going `dir`. Beyond the writer's queue bound they are
    /// counted as dropped instead; beyond [`Options::max_bytes`], ignored.
    pub fn data(&self, dir: Dir, kind: Kind, bytes: &[u8]) {
        let state = &self.state;
        if bytes.is_empty() || state.flags.failed.load(Ordering::Relaxed) {
            return;
        }
        // With max_bytes: the part that still fits, and whether this call crossed the limit.
        let (bytes, crossed) = match state.max_bytes {
            None => (bytes, None),
            Some(max) => {
                let before = state.recorded.fetch_add(bytes.len() as u64, Ordering::Relaxed);
                let room = usize::try_from(max.saturating_sub(before)).unwrap_or(usize::MAX);
                // Exactly one call says the limit was reached: the one that crosses
                // it (before < max < before + len) or, when a call filled it exactly,
                // the next one (before == max); `before` is unique per call.
                if before >= max {
                    if before == max {
                        self.info(format!("trace: limit of {max} bytes reached, the rest is not recorded"));
                    }
                    return;
                }
                (&bytes[..room.min(bytes.len())], (room < bytes.len()).then_some(max))
            }
        };
        self.queue_data(dir, kind, bytes);
        if let Some(max) = crossed {
            self.info(format!("trace: limit of {max} bytes reached, the rest is not recorded"));
        }
    }

    /// Ready when the writer can take more: always for a lossy (server)
    /// trace; for a lossless one ([`start`]), once the bytes queued are back
    /// under [`Options::max_queued`] (or the writer has ended). A [`Tap`] polls
    /// it before each read and write, so a lossless trace holds at most the
    /// bound plus one read or write.
    pub fn poll_room(&self, cx: &mut Context<'_>) -> Poll<()> {
        let writer = &self.state.writer;
        if !writer.lossless
            || writer.queued.load(Ordering::Acquire) <= writer.max_queued
            || writer.ended.load(Ordering::Acquire)
        {
            return Poll::Ready(());
        }
        if let Ok(mut waiters) = writer.waiters.lock()
            && !waiters.iter().any(|w| w.will_wake(cx.waker()))
        {
            waiters.push(cx.waker().clone());
        }
        // Checked again after registering: the writer may have drained the
        // queue or ended (and woken nobody) in between.
        if writer.queued.load(Ordering::Acquire) <= writer.max_queued || writer.ended.load(Ordering::Acquire)
        {
            return Poll::Ready(());
        }
        Poll::Pending
    }

    /// Queue `bytes` for the writer; past its bound, count them as dropped
    /// (a lossy writer) or queue them anyway (a lossless one, whose taps wait
    /// in [`poll_room`](Trace::poll_room) before the next read or write).
    fn queue_data(&self, dir: Dir, kind: Kind, bytes: &[u8]) {
        let state = &self.state;
        let writer = &state.writer;
        let queued = writer.queued.fetch_add(bytes.len(), Ordering::AcqRel);
        if !writer.lossless && queued + bytes.len() > writer.max_queued {
            writer.queued.fetch_sub(bytes.len(), Ordering::Relaxed);
            writer.dropped.fetch_add(bytes.len() as u64, Ordering::Relaxed);
            state.flags.dropped.fetch_add(bytes.len() as u64, Ordering::Relaxed);
            return;
        }
        if state.tx.send(Msg::Data(state.id, SystemTime::now(), dir, kind, bytes.to_vec())).is_err() {
            // The writer is gone: nothing will take these bytes off the count.
            writer.queued.fetch_sub(bytes.len(), Ordering::AcqRel);
        }
    }
}

impl TraceWriter {
    /// Add a trace written to `sink` in `opts`'s layout (its `max_queued` is
    /// not used: the writer's bound applies). The sink is flushed and dropped
    /// when the last clone of the returned [`Trace`] is.
    pub fn open<W: Write + Send + 'static>(&self, sink: W, opts: Options) -> Trace {
        let id = self.shared.next_id.fetch_add(1, Ordering::Relaxed);
        let flags = Arc::new(Flags::default());
        let _ = self.tx.send(Msg::Open(id, Box::new(sink), opts, flags.clone()));
        Trace {
            state: Arc::new(TraceState {
                id,
                tx: self.tx.clone(),
                writer: self.shared.clone(),
                flags,
                max_bytes: opts.max_bytes,
                recorded: AtomicU64::new(0),
            }),
        }
    }

    /// Write what is queued, flush every sink, and report. Waits at most
    /// [`FINISH_TIMEOUT`]; events recorded after this call are discarded.
    pub fn finish(self) -> TraceOutcome {
        let _ = self.tx.send(Msg::End);
        self.done.recv_timeout(FINISH_TIMEOUT).unwrap_or_else(|_| TraceOutcome {
            error: Some(io::Error::new(io::ErrorKind::TimedOut, "trace writer did not finish in time")),
            ..TraceOutcome::default()
        })
    }
}

/// A stream that records what each read returned ([`Dir::Recv`]) and each
/// write accepted ([`Dir::Send`]) as [`Kind::Data`], plus an `Info` line at
/// the peer's EOF and at our shutdown (the half-close).
#[derive(Debug)]
pub struct Tap<S> {
    inner: S,
    trace: Trace,
    eof_seen: bool,
}

impl<S> Tap<S> {
    /// Record `inner`'s traffic into `trace`.
    pub fn new(inner: S, trace: Trace) -> Tap<S> {
        Tap { inner, trace, eof_seen: false }
    }

    /// The wrapped stream.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The wrapped stream, without the tap.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Tap<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        std::task::ready!(self.trace.poll_room(cx));
        let before = buf.filled().len();
        let this = &mut *self;
        let polled = Pin::new(&mut this.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = polled {
            let new = &buf.filled()[before..];
            if new.is_empty() && buf.remaining() > 0 && !this.eof_seen {
                this.eof_seen = true;
                this.trace.info("peer closed its sending side (EOF)");
            }
            this.trace.data(Dir::Recv, Kind::Data, new);
        }
        polled
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Tap<S> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        std::task::ready!(self.trace.poll_room(cx));
        let polled = Pin::new(&mut self.inner).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = polled {
            self.trace.data(Dir::Send, Kind::Data, &buf[..n]);
        }
        polled
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let polled = Pin::new(&mut self.inner).poll_shutdown(cx);
        if let Poll::Ready(Ok(())) = polled {
            self.trace.info("sending side shut down (half-close)");
        }
        polled
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    const AT: SystemTime = SystemTime::UNIX_EPOCH;

    fn curl(format: Format, dir: Dir, kind: Kind, bytes: &[u8]) -> String {
        let mut out = String::new();
        format_data(&mut out, Options { format, time: false, ..Options::default() }, AT, dir, kind, bytes);
        out
    }

    /// `curl --trace` 7.88.1 against a raw server, copied from its output.
    #[test]
    fn trace_matches_curl_byte_for_byte() {
        let request =
            b"GET / HTTP/1.1\r\nHost: 127.0.0.1:18555\r\nUser-Agent: curl/7.88.1\r\nAccept: */*\r\n\r\n";
        assert_eq!(
            curl(Format::Curl, Dir::Send, Kind::Header, request),
            "=> Send header, 79 bytes (0x4f)
0000: 47 45 54 20 2f 20 48 54 54 50 2f 31 2e 31 0d 0a GET / HTTP/1.1..
0010: 48 6f 73 74 3a 20 31 32 37 2e 30 2e 30 2e 31 3a Host: 127.0.0.1:
0020: 31 38 35 35 35 0d 0a 55 73 65 72 2d 41 67 65 6e 18555..User-Agen
0030: 74 3a 20 63 75 72 6c 2f 37 2e 38 38 2e 31 0d 0a t: curl/7.88.1..
0040: 41 63 63 65 70 74 3a 20 2a 2f 2a 0d 0a 0d 0a    Accept: */*....
"
        );
        let body = b"abc\x7f\x80\x01 0123456789012345678901234567890123456789012345678901234567\r\n";
        assert_eq!(
            curl(Format::Curl, Dir::Recv, Kind::Data, body),
            "<= Recv data, 67 bytes (0x43)
0000: 61 62 63 7f 80 01 20 30 31 32 33 34 35 36 37 38 abc... 012345678
0010: 39 30 31 32 33 34 35 36 37 38 39 30 31 32 33 34 9012345678901234
0020: 35 36 37 38 39 30 31 32 33 34 35 36 37 38 39 30 5678901234567890
0030: 31 32 33 34 35 36 37 38 39 30 31 32 33 34 35 36 1234567890123456
0040: 37 0d 0a                                        7..
"
        );
        assert_eq!(
            curl(Format::Curl, Dir::Recv, Kind::Header, b"\r\n"),
            "<= Recv header, 2 bytes (0x2)\n0000: 0d 0a                                           ..\n"
        );
    }

    /// `curl --trace-ascii --trace-time` 7.88.1, the same exchange.
    #[test]
    fn trace_ascii_matches_curl_byte_for_byte() {
        let request =
            b"GET / HTTP/1.1\r\nHost: 127.0.0.1:18555\r\nUser-Agent: curl/7.88.1\r\nAccept: */*\r\n\r\n";
        assert_eq!(
            curl(Format::CurlAscii, Dir::Send, Kind::Header, request),
            "=> Send header, 79 bytes (0x4f)
0000: GET / HTTP/1.1
0010: Host: 127.0.0.1:18555
0027: User-Agent: curl/7.88.1
0040: Accept: */*
004d: \n"
        );
        assert_eq!(
            curl(Format::CurlAscii, Dir::Recv, Kind::Header, b"HTTP/1.1 200 OK\r\n"),
            "<= Recv header, 17 bytes (0x11)\n0000: HTTP/1.1 200 OK\n"
        );
        assert_eq!(
            curl(Format::CurlAscii, Dir::Recv, Kind::Header, b"\r\n"),
            "<= Recv header, 2 bytes (0x2)\n0000: \n"
        );
        let body = b"abc\x7f\x80\x01 0123456789012345678901234567890123456789012345678901234567\r\n";
        assert_eq!(
            curl(Format::CurlAscii, Dir::Recv, Kind::Data, body),
            "<= Recv data, 67 bytes (0x43)
0000: abc... 012345678901234567890123456789012345678901234567890123456
0040: 7
"
        );
        // --trace-time: `HH:MM:SS.uuuuuu ` before the event line only, as curl.
        let at =
            SystemTime::UNIX_EPOCH + Duration::from_micros(((4 * 3600 + 34 * 60 + 48) * 1_000_000) + 820_698);
        let mut out = String::new();
        let opts = Options { format: Format::CurlAscii, time: true, ..Options::default() };
        format_info(&mut out, opts, at, "Connected to 127.0.0.1 (127.0.0.1) port 18555 (#0)\n");
        format_data(&mut out, opts, at, Dir::Recv, Kind::Header, b"HTTP/1.1 200 OK\r\n");
        assert_eq!(
            out,
            "04:34:48.820698 == Info: Connected to 127.0.0.1 (127.0.0.1) port 18555 (#0)
04:34:48.820698 <= Recv header, 17 bytes (0x11)
0000: HTTP/1.1 200 OK
"
        );
        let mut info = String::new();
        format_info(&mut info, Options::default(), at, "Closing connection 0");
        assert_eq!(info, "== Info: Closing connection 0\n");
    }

    /// `ncat --hex-dump` 7.93 output for two chunks, under our header line.
    #[test]
    fn hex_dump_matches_ncat_lines() {
        let mut out = String::new();
        let opts = Options { format: Format::HexDump, ..Options::default() };
        format_data(
            &mut out,
            opts,
            AT,
            Dir::Send,
            Kind::Data,
            b"Hello there, this is a longer line of text\r\n",
        );
        format_data(&mut out, opts, AT, Dir::Recv, Kind::Data, b"\"ab\"");
        assert_eq!(
            out,
            "# 00:00:00.000000 sent 44 bytes
0000   48 65 6c 6c 6f 20 74 68  65 72 65 2c 20 74 68 69  Hello.there,.thi
0010   73 20 69 73 20 61 20 6c  6f 6e 67 65 72 20 6c 69  s.is.a.longer.li
0020   6e 65 20 6f 66 20 74 65  78 74 0d 0a              ne.of.text..    
# 00:00:00.000000 received 4 bytes
0000   22 61 62 22                                       \"ab\"            
"
        );
    }

    #[test]
    fn every_split_of_crlf_in_ascii_mode_keeps_every_byte_counted() {
        // The offsets of --trace-ascii lines must always advance (no loop, no skip).
        let data: Vec<u8> = b"\r\n\r\r\n\n".iter().copied().cycle().take(300).collect();
        for len in 0..data.len() {
            let text = curl(Format::CurlAscii, Dir::Send, Kind::Data, &data[..len]);
            let offsets: Vec<usize> =
                text.lines().skip(1).map(|l| usize::from_str_radix(&l[..4], 16).unwrap()).collect();
            assert!(offsets.windows(2).all(|w| w[0] < w[1]), "{len}: {offsets:?}");
            assert!(offsets.iter().all(|&o| o < len.max(1)), "{len}");
        }
    }

    /// A writer that fails every write, as a closed pipe or a full disk does.
    struct Broken;
    impl Write for Broken {
        fn write(&mut self, _: &[u8]) -> io::Result<usize> {
            Err(io::ErrorKind::BrokenPipe.into())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    /// A sink the test can read after the writer finished.
    #[derive(Clone, Default)]
    struct Shared(Arc<std::sync::Mutex<Vec<u8>>>);
    impl Write for Shared {
        fn write(&mut self, b: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[tokio::test]
    async fn tap_records_both_directions_in_order_and_the_half_close() {
        let sink = Shared::default();
        let (trace, writer) = start(sink.clone(), Options::default()).unwrap();
        let (near, mut far) = tokio::io::duplex(64);
        let mut tap = Tap::new(near, trace.clone());
        trace.info("connected");
        tap.write_all(b"ping\n").await.unwrap();
        tap.shutdown().await.unwrap();
        let mut got = [0u8; 5];
        far.read_exact(&mut got).await.unwrap();
        far.write_all(b"pong\n").await.unwrap();
        drop(far);
        let mut back = Vec::new();
        tap.read_to_end(&mut back).await.unwrap();
        assert_eq!(back, b"pong\n");
        let outcome = writer.finish();
        assert!(outcome.error.is_none() && outcome.dropped == 0);
        let text = String::from_utf8(sink.0.lock().unwrap().clone()).unwrap();
        assert_eq!(
            text,
            "== Info: connected
=> Send data, 5 bytes (0x5)
0000: 70 69 6e 67 0a                                  ping.
== Info: sending side shut down (half-close)
<= Recv data, 5 bytes (0x5)
0000: 70 6f 6e 67 0a                                  pong.
== Info: peer closed its sending side (EOF)
"
        );
    }

    #[tokio::test]
    async fn a_failing_sink_never_disturbs_the_stream_and_is_reported_once() {
        let (trace, writer) = start(Broken, Options::default()).unwrap();
        let (near, mut far) = tokio::io::duplex(1 << 20);
        let mut tap = Tap::new(near, trace);
        for _ in 0..100 {
            tap.write_all(&[7u8; 1000]).await.unwrap();
        }
        tap.shutdown().await.unwrap();
        let mut got = Vec::new();
        far.read_to_end(&mut got).await.unwrap();
        assert_eq!(got.len(), 100_000);
        let outcome = writer.finish();
        assert_eq!(outcome.error.map(|e| e.kind()), Some(io::ErrorKind::BrokenPipe));
    }

    #[test]
    fn past_max_bytes_one_line_says_so_and_nothing_more_is_recorded() {
        let sink = Shared::default();
        let opts = Options { format: Format::CurlAscii, max_bytes: Some(10), ..Options::default() };
        let (trace, writer) = start(sink.clone(), opts).unwrap();
        trace.data(Dir::Recv, Kind::Data, b"123456");
        trace.data(Dir::Send, Kind::Data, b"abcdef");
        trace.data(Dir::Recv, Kind::Data, b"more");
        trace.info("still recorded");
        // Filled exactly: the line comes with the next call, once.
        let sink2 = Shared::default();
        let (trace2, writer2) = start(sink2.clone(), opts).unwrap();
        trace2.data(Dir::Recv, Kind::Data, b"0123456789");
        trace2.data(Dir::Recv, Kind::Data, b"x");
        trace2.data(Dir::Recv, Kind::Data, b"y");
        assert!(writer2.finish().error.is_none());
        let text2 = String::from_utf8(sink2.0.lock().unwrap().clone()).unwrap();
        assert_eq!(text2.matches("limit of 10 bytes reached").count(), 1, "{text2}");
        assert!(!text2.contains("0000: x") && !text2.contains("0000: y"), "{text2}");
        assert!(writer.finish().error.is_none());
        let text = String::from_utf8(sink.0.lock().unwrap().clone()).unwrap();
        assert_eq!(
            text,
            "<= Recv data, 6 bytes (0x6)
0000: 123456
=> Send data, 4 bytes (0x4)
0000: abcd
== Info: trace: limit of 10 bytes reached, the rest is not recorded
== Info: still recorded
"
        );
    }

    #[test]
    fn one_writer_serves_many_traces_each_closed_when_its_last_clone_goes() {
        let w = writer(MAX_QUEUED_BYTES).unwrap();
        let (a, b) = (Shared::default(), Shared::default());
        let ta = w.open(a.clone(), Options::default());
        let tb = w.open(b.clone(), Options { format: Format::CurlAscii, ..Options::default() });
        ta.data(Dir::Send, Kind::Data, b"to a");
        tb.data(Dir::Recv, Kind::Data, b"to b");
        drop(ta); // closes a: flushed, then no more of it
        tb.info("b goes on");
        let failing = w.open(Broken, Options::default());
        failing.info("lost");
        let outcome = w.finish();
        assert_eq!((outcome.failed_traces, outcome.dropped), (1, 0));
        assert_eq!(outcome.error.map(|e| e.kind()), Some(io::ErrorKind::BrokenPipe));
        let text = |s: &Shared| String::from_utf8(s.0.lock().unwrap().clone()).unwrap();
        assert_eq!(
            text(&a),
            "=> Send data, 4 bytes (0x4)\n0000: 74 6f 20 61                                     to a\n"
        );
        assert_eq!(text(&b), "<= Recv data, 4 bytes (0x4)\n0000: to b\n== Info: b goes on\n");
    }

    #[test]
    fn over_the_queue_bound_bytes_are_dropped_and_counted() {
        // A sink that blocks until released: the queue fills up.
        let (release_tx, release_rx) = mpsc::channel::<()>();
        struct Gate(mpsc::Receiver<()>, Vec<u8>);
        impl Write for Gate {
            fn write(&mut self, b: &[u8]) -> io::Result<usize> {
                let _ = self.0.recv_timeout(Duration::from_secs(10));
                self.1.extend_from_slice(b);
                Ok(b.len())
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        // A server's writer (lossy); `start`'s are lossless, see below.
        let writer = writer(16 << 10).unwrap();
        let trace = writer.open(Gate(release_rx, Vec::new()), Options::default());
        let chunk = vec![0u8; 1 << 10];
        for _ in 0..16 + 4 {
            trace.data(Dir::Recv, Kind::Data, &chunk);
        }
        drop(release_tx); // every write goes through at once from now on
        let outcome = writer.finish();
        assert!(outcome.error.is_none());
        // The writer may have taken one chunk off the queue before blocking.
        assert!((3 << 10..=4 << 10).contains(&outcome.dropped), "{}", outcome.dropped);
    }

    #[tokio::test]
    async fn a_client_trace_is_lossless_its_tap_waits_for_a_slow_sink_within_the_bound() {
        // A sink slower than the stream: 1 ms per write.
        struct Slow(Shared);
        impl Write for Slow {
            fn write(&mut self, b: &[u8]) -> io::Result<usize> {
                std::thread::sleep(Duration::from_millis(1));
                self.0.write(b)
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        let sink = Shared::default();
        let bound = 4 << 10;
        let opts = Options { format: Format::CurlAscii, max_queued: bound, ..Options::default() };
        let (trace, writer) = start(Slow(sink.clone()), opts).unwrap();
        let (near, mut far) = tokio::io::duplex(1 << 20);
        let mut tap = Tap::new(near, trace.clone());
        let reader = tokio::spawn(async move {
            let mut got = Vec::new();
            far.read_to_end(&mut got).await.map(|_| got.len())
        });
        let mut peak = 0;
        for i in 0..200u8 {
            tap.write_all(&[i; 1000]).await.unwrap();
            peak = peak.max(trace.state.writer.queued.load(Ordering::Acquire));
        }
        tap.shutdown().await.unwrap();
        drop(tap);
        assert_eq!(reader.await.unwrap().unwrap(), 200_000);
        drop(trace);
        let outcome = writer.finish();
        assert!(outcome.error.is_none());
        assert_eq!(outcome.dropped, 0);
        // The queue went past the bound (the sink is slow) by at most one write.
        assert!(peak > bound && peak <= bound + 1000, "peak queued {peak}");
        let text = String::from_utf8(sink.0.lock().unwrap().clone()).unwrap();
        assert_eq!(text.matches("=> Send data, 1000 bytes (0x3e8)").count(), 200);
        assert!(!text.contains("not recorded"), "{text}");
    }
}
