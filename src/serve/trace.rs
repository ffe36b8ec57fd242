//! `serve --trace DIR`: one trace file per connection, in curl's `--trace`
//! layout, on the shared writer thread of `crate::net::trace`.
//!
//! Each file is named by the connection's start time and 4-tuple
//! (`20261201T061800.123456Z_127.0.0.1:40000_127.0.0.1:9999.trace`) and is
//! created lazily, by the writer thread at the first event, so the accept path
//! never touches the file system. A file that cannot be created or written
//! (the directory removed, a full disk) ends that trace only, never the
//! connection; the first such failure is logged once for the whole server.
//!
//! Not for: the layout (see `crate::net::trace`), or tracing the PROXY header
//! (the trace starts after it, with the client's plaintext over TLS).
use std::fs::File;
use std::io::{self, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use tracing::warn;

use crate::net::trace::{self, Options, Trace, TraceWriter};

/// Default bound on the data bytes recorded per connection (then one marker line).
pub const DEFAULT_MAX_BYTES: u64 = 1024 * 1024;

/// Where and how much to trace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceConfig {
    /// The directory the files go to; it must exist and be writable at start.
    pub dir: PathBuf,
    /// Data bytes recorded per connection, both directions together.
    pub max_bytes: u64,
}

/// The server's tracer: the writer thread and the once-only failure flag.
pub(super) struct Tracer {
    dir: PathBuf,
    max_bytes: u64,
    /// `None` once finished. A mutex because the writer's queue sender is not
    /// shared between threads otherwise; held only to enqueue an `open`.
    writer: Mutex<Option<TraceWriter>>,
    failed: Arc<AtomicBool>,
}

impl Tracer {
    /// Check that `dir` is a writable directory (by creating and removing a
    /// probe file) and start the writer thread.
    pub(super) fn start(config: &TraceConfig) -> io::Result<Tracer> {
        let probe = config.dir.join(format!(".tcpkit-probe-{}", std::process::id()));
        File::create(&probe)
            .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", config.dir.display())))?;
        let _ = std::fs::remove_file(&probe);
        Ok(Tracer {
            dir: config.dir.clone(),
            max_bytes: config.max_bytes,
            writer: Mutex::new(Some(trace::writer(trace::MAX_QUEUED_BYTES)?)),
            failed: Arc::new(AtomicBool::new(false)),
        })
    }

    /// A trace for a new connection, its file created at the first event.
    pub(super) fn open(&self, local: SocketAddr, peer: SocketAddr) -> Option<Trace> {
        let start = SystemTime::now();
        let path = self.dir.join(file_name(start, peer, local));
        let sink = LazyFile { path, file: None, failed: self.failed.clone() };
        let opts = Options { max_bytes: Some(self.max_bytes), ..Options::default() };
        let guard = self.writer.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let trace = guard.as_ref()?.open(sink, opts);
        trace.info(format!("Accepted {peer} on {local}"));
        Some(trace)
    }

    /// Write out what is queued (bounded by the writer's own timeout).
    pub(super) fn finish(&self) {
        let writer = self.writer.lock().unwrap_or_else(std::sync::PoisonError::into_inner).take();
        if let Some(w) = writer {
            let outcome = w.finish();
            if outcome.dropped > 0 {
                warn!(dropped_bytes = outcome.dropped, "trace: bytes not recorded (the writer fell behind)");
            }
        }
    }
}

/// `START_PEER_LOCAL.trace`, START in UTC to the microsecond.
fn file_name(start: SystemTime, peer: SocketAddr, local: SocketAddr) -> String {
    let t = time::OffsetDateTime::from(start);
    format!(
        "{:04}{:02}{:02}T{:02}{:02}{:02}.{:06}Z_{peer}_{local}.trace",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.microsecond()
    )
}

/// A file created at the first write, on the writer thread.
struct LazyFile {
    path: PathBuf,
    file: Option<io::BufWriter<File>>,
    failed: Arc<AtomicBool>,
}

impl LazyFile {
    fn report(&self, e: &io::Error) {
        // Once per server: a full disk would otherwise log once per connection.
        if !self.failed.swap(true, Ordering::Relaxed) {
            warn!(file = %self.path.display(), error = %e, "trace: cannot write; serving goes on (logged once)");
        }
    }

    fn file(&mut self) -> io::Result<&mut io::BufWriter<File>> {
        if self.file.is_none() {
            let f = File::create(&self.path).inspect_err(|e| self.report(e))?;
            self.file = Some(io::BufWriter::new(f));
        }
        self.file.as_mut().ok_or_else(|| io::Error::other("unreachable"))
    }
}

impl Write for LazyFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let r = self.file()?.write(buf);
        if let Err(e) = &r {
            self.report(e);
        }
        r
    }

    fn flush(&mut self) -> io::Result<()> {
        let Some(f) = self.file.as_mut() else { return Ok(()) };
        let r = f.flush();
        if let Err(e) = &r {
            self.report(e);
        }
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_carry_the_start_time_and_both_ends() {
        let at = SystemTime::UNIX_EPOCH + std::time::Duration::from_micros(1_764_569_880_123_456);
        let name = file_name(at, "127.0.0.1:40000".parse().unwrap(), "[::1]:9999".parse().unwrap());
        assert_eq!(name, "20251201T061800.123456Z_127.0.0.1:40000_[::1]:9999.trace");
    }

    #[test]
    fn an_unwritable_directory_is_refused_at_start() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope");
        let err = Tracer::start(&TraceConfig { dir: missing, max_bytes: 10 }).err().expect("refused");
        assert!(err.to_string().contains("nope"), "{err}");
    }
}
