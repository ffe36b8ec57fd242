//! Logging set-up shared by the commands: tracing to stderr, text or JSON,
//! written by a thread of its own so that logging never waits for stderr.
//!
//! A log sink that fails (a closed pipe, a full disk, a dead collector) or
//! stalls (a pipe nobody reads: a stuck log shipper, a full journald) is an
//! ordinary event in production. Every event is formatted where it happens and
//! put on a queue of [`QUEUE_LINES`] lines (`tracing-appender`'s lossy
//! `non_blocking`); one writer thread takes lines off it and writes them to
//! stderr. A full queue drops the line and counts it; once the writer has
//! caught up, it logs how many were lost (a WARN `log lines dropped` line with
//! `dropped=N`). Write errors are swallowed. So logging can never stop a
//! server from serving or from shutting down.
//!
//! At exit the [`LogGuard`] that [`init`] returns waits, at most
//! [`FLUSH_TIMEOUT`], for the lines still queued to be written.
//!
//! Not for: what is logged (each command decides).
use std::io::{self, Write};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use tracing_appender::non_blocking::{ErrorCounter, NonBlocking, NonBlockingBuilder, WorkerGuard};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// One human-readable line per event.
    Text,
    /// One JSON object per line, for machines.
    Json,
}

/// Default bound on log lines waiting for the writer thread (`serve
/// --log-queue`); one more is dropped and counted.
///
/// Reaching it loses only log lines, each one counted and reported, never
/// service. 8,192 lines of ~250 bytes hold at most about
/// 2 MiB, and absorb a reader that pauses for half a second while serve closes
/// 14,000 connections a second (its churn benchmark); a reader stalled for
/// longer loses lines whatever the bound, so a larger one would only buy memory.
pub const QUEUE_LINES: usize = 8192;

/// How long a normal exit waits for the queued lines to be written (the
/// shutdown summary among them). Only a stalled stderr makes it wait that
/// long; the lines still queued then are lost, and the process exits.
pub const FLUSH_TIMEOUT: Duration = Duration::from_secs(2);

/// Whether log lines carry colour codes, as the caller decided (`--color`,
/// `NO_COLOR`); unset, colour only for a terminal.
static ANSI: OnceLock<bool> = OnceLock::new();

/// Decide once, before [`init`], whether log lines are coloured.
pub fn set_ansi(on: bool) {
    let _ = ANSI.set(on);
}

/// The queue and writer thread of the installed subscriber, for [`flush`].
static QUEUE: OnceLock<Queue> = OnceLock::new();

/// Install the global subscriber: `RUST_LOG` wins, else `quiet` gives warnings
/// only and each `verbose` step one more level below info. Calling it twice is
/// harmless (the second call does nothing).
///
/// Keep the guard until the command ends: dropping it waits (boundedly) for
/// the queued lines to be written. At most `queue_lines` lines wait for a
/// stderr that is not being read; more are dropped and counted.
pub fn init(quiet: bool, verbose: u8, format: LogFormat, queue_lines: usize) -> LogGuard {
    let level = match (quiet, verbose) {
        (true, _) => "warn",
        (false, 0) => "info",
        (false, 1) => "debug",
        (false, _) => "trace",
    };
    if QUEUE.get().is_some() {
        return LogGuard(());
    }
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(level));
    let queue = Queue::start(queue_lines.max(1), Stderr);
    let writer = queue.make_writer.clone();
    // Colour codes only for a terminal: piped into a file or a log collector
    // they would be noise in every line.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer)
        // The layer would report its own write errors with `eprintln!`, which
        // panics when stderr is the thing that failed.
        .log_internal_errors(false)
        .with_ansi(ANSI.get().copied().unwrap_or_else(|| io::IsTerminal::is_terminal(&io::stderr())))
        .with_target(false);
    let installed = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
    // Another subscriber was installed first: this queue got no line, and
    // dropping it ends its writer thread at once.
    if installed.is_ok() {
        let _ = QUEUE.set(queue);
    }
    LogGuard(())
}

/// Wait, at most `timeout`, until every line logged so far has been written
/// (or dropped and reported). Returns whether it got there; `false` means
/// stderr is not being read, and the lines still queued may be lost. For an
/// exit that does not return through [`LogGuard`] (`std::process::exit`).
pub fn flush(timeout: Duration) -> bool {
    QUEUE.get().is_none_or(|q| q.progress.wait_caught_up(Instant::now() + timeout))
}

/// Returned by [`init`]: dropping it is [`flush`] with [`FLUSH_TIMEOUT`].
#[must_use = "dropping the guard at once gives up waiting for the last lines at exit"]
#[derive(Debug)]
pub struct LogGuard(());

impl Drop for LogGuard {
    fn drop(&mut self) {
        flush(FLUSH_TIMEOUT);
    }
}

/// The lossy queue in front of a writer thread, and the counts that tell
/// whether the writer has caught up.
struct Queue {
    make_writer: Enqueue,
    progress: Arc<Progress>,
    /// Never dropped: the crate's guard would, on drop, wait up to 1.1 s on
    /// its own terms and, with a full queue, print to stdout (which may be
    /// the same stalled pipe). [`flush`] waits instead, under its own bound;
    /// the process exit then ends the thread.
    _worker: WorkerGuard,
}

impl Queue {
    /// Start the writer thread on `sink` behind a queue of `lines` lines.
    fn start(lines: usize, sink: impl Write + Send + 'static) -> Queue {
        let progress = Arc::new(Progress::default());
        let sink = Counted { sink, progress: progress.clone() };
        let (queue, worker) = NonBlockingBuilder::default()
            .lossy(true)
            .buffered_lines_limit(lines)
            .thread_name("tcpkit-log")
            .finish(sink);
        // Set before any line can be queued, so the writer always finds it.
        let _ = progress.dropped.set(queue.error_counter());
        Queue { make_writer: Enqueue { queue, progress: progress.clone() }, progress, _worker: worker }
    }
}

/// What went into the queue and what came out of it.
#[derive(Debug, Default)]
struct Progress {
    /// Lines offered to the queue (queued or dropped); counted before offering.
    offered: AtomicU64,
    /// Lines the writer thread has written (or had fail: swallowed).
    written: AtomicU64,
    /// Lines dropped on a full queue (the crate's count).
    dropped: OnceLock<ErrorCounter>,
    /// Dropped lines already reported in a `log lines dropped` line.
    reported: AtomicUsize,
}

impl Progress {
    fn dropped(&self) -> usize {
        self.dropped.get().map_or(0, ErrorCounter::dropped_lines)
    }

    /// Log how many lines were dropped since the last report, if any. Each
    /// dropped line is reported once, whichever thread gets here first.
    fn report_dropped(&self) {
        let dropped = self.dropped();
        let before = self.reported.fetch_max(dropped, Ordering::SeqCst);
        if dropped > before {
            tracing::warn!(dropped = dropped - before, "log lines dropped: stderr was not being read");
        }
    }

    /// Poll until every line offered has been written or dropped, and the
    /// drops reported, or until `deadline`. Whether it got there.
    fn wait_caught_up(&self, deadline: Instant) -> bool {
        loop {
            // `offered` is read last: a line counted in `written` or `dropped`
            // was counted in `offered` before, so equality means none is queued.
            let (written, dropped) = (self.written.load(Ordering::SeqCst), self.dropped());
            let offered = self.offered.load(Ordering::SeqCst);
            if written + dropped as u64 >= offered {
                if self.reported.load(Ordering::SeqCst) >= dropped {
                    return true;
                }
                // The report is one more line to wait for.
                self.report_dropped();
                continue;
            }
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }
}

/// The subscriber's writer: counts each line, then queues it (never blocks).
#[derive(Clone)]
struct Enqueue {
    queue: NonBlocking,
    progress: Arc<Progress>,
}

impl<'a> MakeWriter<'a> for Enqueue {
    type Writer = Enqueue;

    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

impl Write for Enqueue {
    /// The subscriber writes each formatted event whole, in one call.
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.progress.offered.fetch_add(1, Ordering::SeqCst);
        // Lossy: a full queue drops the line, counts it and says "written".
        self.queue.write(buf)
    }

    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        self.write(buf).map(|_| ())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// The writer thread's end: writes each line to `sink`, counts it, and
/// reports drops whenever the queue has been emptied.
struct Counted<W> {
    sink: W,
    progress: Arc<Progress>,
}

impl<W: Write> Write for Counted<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.write_all(buf).map(|()| buf.len())
    }

    /// The writer thread writes each queued line with one call.
    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        let _ = self.sink.write_all(buf);
        self.progress.written.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }

    /// Called by the writer thread each time it has emptied the queue: the
    /// moment to say what was lost (the report goes through the queue too).
    fn flush(&mut self) -> io::Result<()> {
        let _ = self.sink.flush();
        self.progress.report_dropped();
        Ok(())
    }
}

/// Set once stderr's reader is gone (EPIPE): no later write can succeed, so
/// none is tried (one failed syscall per log line saved).
static STDERR_GONE: AtomicBool = AtomicBool::new(false);

/// Stderr that never fails: a write error drops the line and reports success.
/// Other errors than EPIPE (a full disk, say) may pass, so writing goes on.
/// Writing blocks while stderr is a full pipe: use it from the writer thread.
#[derive(Debug, Clone, Copy, Default)]
pub struct Stderr;

impl<'a> MakeWriter<'a> for Stderr {
    type Writer = Stderr;

    fn make_writer(&'a self) -> Self::Writer {
        Stderr
    }
}

impl Write for Stderr {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        swallow(buf, io::stderr().lock())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Write `buf` whole to `sink`, or drop it: always "written".
fn swallow(buf: &[u8], mut sink: impl Write) -> io::Result<usize> {
    if STDERR_GONE.load(Ordering::Relaxed) {
        return Ok(buf.len());
    }
    if let Err(e) = sink.write_all(buf) {
        if e.kind() == io::ErrorKind::BrokenPipe {
            STDERR_GONE.store(true, Ordering::Relaxed);
        }
    }
    Ok(buf.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Failing(io::ErrorKind);

    impl Write for Failing {
        fn write(&mut self, _: &[u8]) -> io::Result<usize> {
            Err(self.0.into())
        }
        fn flush(&mut self) -> io::Result<()> {
            Err(self.0.into())
        }
    }

    #[test]
    fn a_failing_sink_is_reported_as_written() {
        assert_eq!(swallow(b"line\n", Failing(io::ErrorKind::StorageFull)).unwrap(), 5);
        assert_eq!(swallow(b"line\n", Failing(io::ErrorKind::BrokenPipe)).unwrap(), 5);
        assert!(STDERR_GONE.load(Ordering::Relaxed));
    }

    /// The lines a sink was given, in order.
    type Lines = Arc<std::sync::Mutex<Vec<Vec<u8>>>>;

    /// A sink that holds every line until `release` is dropped, then keeps it.
    struct Held {
        release: std::sync::mpsc::Receiver<()>,
        lines: Lines,
    }

    impl Write for Held {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            let _ = self.release.recv(); // Blocks until released, then returns at once.
            self.lines.lock().unwrap().push(buf.to_vec());
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    fn held() -> (Held, std::sync::mpsc::Sender<()>, Lines) {
        let (release, rx) = std::sync::mpsc::channel();
        let lines = Arc::default();
        (Held { release: rx, lines: Arc::clone(&lines) }, release, lines)
    }

    #[test]
    fn a_stalled_sink_never_blocks_logging_drops_past_the_bound_and_is_given_up_at_the_deadline() {
        const LINES: usize = 20;
        let (sink, release, written) = held();
        let queue = Queue::start(4, sink);
        let mut w = queue.make_writer.make_writer();
        for i in 0..LINES {
            w.write_all(format!("line {i}\n").as_bytes()).unwrap();
        }
        // Four queued, at most one taken by the writer, the rest dropped.
        let dropped = queue.progress.dropped();
        assert!((LINES - 5..=LINES - 4).contains(&dropped), "{dropped}");
        assert!(!queue.progress.wait_caught_up(Instant::now() + Duration::from_millis(50)));
        drop(release);
        assert!(queue.progress.wait_caught_up(Instant::now() + Duration::from_secs(10)));
        let written = written.lock().unwrap();
        assert_eq!(written.len() + dropped, LINES);
        // The lines kept are the first ones, in order.
        assert_eq!(written[0], b"line 0\n");
        assert_eq!(queue.progress.reported.load(Ordering::SeqCst), dropped);
    }

    #[test]
    fn waiting_at_exit_lasts_until_every_queued_line_is_written() {
        let (sink, release, written) = held();
        let queue = Queue::start(64, sink);
        let mut w = queue.make_writer.make_writer();
        for i in 0..50 {
            w.write_all(format!("line {i}\n").as_bytes()).unwrap();
        }
        let releaser = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(100));
            drop(release);
        });
        assert!(queue.progress.wait_caught_up(Instant::now() + Duration::from_secs(10)));
        assert_eq!(written.lock().unwrap().len(), 50);
        releaser.join().unwrap();
    }
}
