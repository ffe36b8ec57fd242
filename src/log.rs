//! Logging set-up shared by the commands: tracing to stderr, text or JSON.
//!
//! A log sink that fails (a closed pipe, a full disk, a dead collector) is an
//! ordinary event in production: every write error is swallowed here, so
//! logging can never stop a server from serving or from shutting down.
//!
//! Not for: what is logged (each command decides).
use std::io::{self, Write};
use std::sync::atomic::{AtomicBool, Ordering};

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

/// Whether log lines carry colour codes, as the caller decided (`--color`,
/// `NO_COLOR`); unset, colour only for a terminal.
static ANSI: std::sync::OnceLock<bool> = std::sync::OnceLock::new();

/// Decide once, before [`init`], whether log lines are coloured.
pub fn set_ansi(on: bool) {
    let _ = ANSI.set(on);
}

/// Install the global subscriber: `RUST_LOG` wins, else `quiet` gives warnings
/// only and each `verbose` step one more level below info. Calling it twice is
/// harmless (the second call does nothing).
pub fn init(quiet: bool, verbose: u8, format: LogFormat) {
    let level = match (quiet, verbose) {
        (true, _) => "warn",
        (false, 0) => "info",
        (false, 1) => "debug",
        (false, _) => "trace",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(level));
    // Colour codes only for a terminal: piped into a file or a log collector
    // they would be noise in every line.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(Stderr)
        // The layer would report its own write errors with `eprintln!`, which
        // panics when stderr is the thing that failed.
        .log_internal_errors(false)
        .with_ansi(ANSI.get().copied().unwrap_or_else(|| io::IsTerminal::is_terminal(&io::stderr())))
        .with_target(false);
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
}

/// Set once stderr's reader is gone (EPIPE): no later write can succeed, so
/// none is tried (one failed syscall per log line saved).
static STDERR_GONE: AtomicBool = AtomicBool::new(false);

/// Stderr that never fails: a write error drops the line and reports success.
/// Other errors than EPIPE (a full disk, say) may pass, so writing goes on.
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
}
