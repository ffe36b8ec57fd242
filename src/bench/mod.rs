//! `tcpkit bench`: a load generator for line-based servers that verifies every
//! reply byte for byte.
//!
//! The run: spawn one task per connection (`conn.rs`); for hello, echo and hold,
//! wait until every connection is connected and greeted, then publish the clock
//! (start, end of warm-up, end); churn starts at once. Connections record
//! verified replies into one HDR histogram (`stats.rs`); the report (`report.rs`)
//! is text, JSON or an SVG chart. Exit status 1 with a one-line verdict when
//! there was any error, unless `--allow-errors`.
//!
//! Not for: HTTP (use wrk), or servers whose replies cannot be predicted from
//! the request.
pub mod conn;
pub mod report;
pub mod stats;
pub mod verify;
pub mod workload;

use std::io::IsTerminal;
use std::io::Write;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::sync::{Notify, Semaphore, watch};
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::Failure;
use crate::cli::{BenchArgs, Workload};
use conn::{Clock, ErrorLog, Shared};
use report::Outcome;
use stats::Stats;
use workload::Spec;

/// Measured time when neither `-d` nor `-n` is given.
pub const DEFAULT_DURATION: Duration = Duration::from_secs(10);

/// Exit code for flags that cannot be used.
const USAGE: u8 = 2;

/// Run the benchmark described by `args`, print its report, and fail with a
/// verdict when any reply was wrong or missing.
pub fn run(args: BenchArgs) -> Result<(), Failure> {
    let spec = Spec::from_args(&args).map_err(|e| Failure::new(USAGE, format!("bench: {e}")))?;
    if let Some(r) = args.rate {
        if !(r.is_finite() && r > 0.0) {
            return Err(Failure::new(USAGE, format!("bench: --rate must be a positive number, not {r}")));
        }
    }
    if args.workload == Workload::Hold && args.requests.is_some() {
        return Err(Failure::new(USAGE, "bench: -n does not apply to hold; give -d"));
    }
    if args.requests == Some(0) {
        return Err(Failure::new(USAGE, "bench: -n must be at least 1"));
    }
    // Many connections need many descriptors; the hard limit is the most we may use.
    crate::net::raise_open_file_limit();
    let mut builder = if args.threads <= 1 {
        tokio::runtime::Builder::new_current_thread()
    } else {
        let mut b = tokio::runtime::Builder::new_multi_thread();
        b.worker_threads(args.threads as usize);
        b
    };
    let rt = builder.enable_all().build().map_err(|e| Failure::new(1, format!("bench: runtime: {e}")))?;
    let outcome = rt.block_on(drive(&args, spec))?;
    let mut stdout = std::io::stdout().lock();
    let printed =
        if args.json { writeln!(stdout, "{}", outcome.json()) } else { write!(stdout, "{}", outcome.text()) };
    // A closed stdout loses the report, not the verdict.
    drop(printed);
    if let Some(path) = &args.plot {
        outcome.plot(path).map_err(|e| Failure::new(1, format!("bench: {e}")))?;
    }
    match outcome.verdict() {
        Some(v) if !args.allow_errors => Err(Failure::new(1, v)),
        _ => Ok(()),
    }
}

/// `HOST:PORT` (IPv6 in brackets) to the first address it resolves to.
async fn resolve(addr: &str) -> Result<SocketAddr, Failure> {
    let bad = || Failure::new(USAGE, format!("bench: not HOST:PORT: {addr:?}"));
    let (host, port) = addr.rsplit_once(':').ok_or_else(bad)?;
    let port: u16 = port.parse().map_err(|_| bad())?;
    let addrs = crate::net::connect::resolve(host, port, crate::net::Family::Any)
        .await
        .map_err(|e| Failure::new(1, format!("bench: {e}")))?;
    addrs.first().copied().ok_or_else(bad)
}

async fn drive(args: &BenchArgs, spec: Spec) -> Result<Outcome, Failure> {
    let addr = resolve(&args.addr).await?;
    let duration = match (args.duration, args.requests) {
        (None, None) => Some(DEFAULT_DURATION),
        (d, _) => d,
    };
    let connections = u64::from(args.connections);
    let (clock_tx, clock_rx) = watch::channel(None);
    let sh = Arc::new(Shared {
        spec,
        addr,
        sources: args.source.as_ref().map(|s| s.0.clone()).unwrap_or_default(),
        connections,
        pipeline: args.pipeline as usize,
        interval: args.rate.map(|r| Duration::from_secs_f64((connections as f64 / r).min(86_400.0))),
        requests: args.requests,
        connect_timeout: args.connect_timeout,
        timeout: args.timeout,
        connect_gate: Semaphore::new(args.connect_concurrency as usize),
        clock: clock_rx,
        ready: Default::default(),
        ready_notify: Notify::new(),
        claimed: Default::default(),
        verified: Default::default(),
        established: Default::default(),
        connect_failed: Default::default(),
        held: Default::default(),
        stats: std::sync::Mutex::new(Stats::new()),
        errors: std::sync::Mutex::new(ErrorLog { limit: args.show_errors, ..Default::default() }),
    });
    let mut tasks = JoinSet::new();
    for id in 0..connections {
        tasks.spawn(conn::run(sh.clone(), id));
    }
    let mut status = Status::new(!args.quiet && std::io::stderr().is_terminal());
    if args.workload != Workload::Churn {
        // Every connection ends its connect phase within its timeouts, so this ends.
        loop {
            let notified = sh.ready_notify.notified();
            if sh.ready.load(Ordering::Acquire) >= connections {
                break;
            }
            tokio::select! {
                () = notified => {}
                () = tokio::time::sleep(Duration::from_millis(250)) => status.show(&sh, "connecting"),
            }
        }
    }
    let start = Instant::now();
    let measure = start + args.warmup;
    let end = duration.map(|d| measure + d);
    // Receivers live in `sh`, so sending cannot fail.
    let _ = clock_tx.send(Some(Clock { start, measure, end }));
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            joined = tasks.join_next() => match joined {
                None => break,
                Some(Err(e)) if e.is_panic() => {
                    sh.error(u64::MAX, verify::BenchError::Io(std::io::Error::other("connection task panicked")));
                }
                Some(_) => {}
            },
            _ = tick.tick() => status.show(&sh, if Instant::now() < measure { "warm-up" } else { "running" }),
        }
    }
    status.clear();
    let stats = std::mem::take(&mut *sh.stats.lock().unwrap_or_else(|p| p.into_inner()));
    let errors = std::mem::take(&mut *sh.errors.lock().unwrap_or_else(|p| p.into_inner()));
    let exhausted = args.requests.is_some_and(|n| sh.claimed.load(Ordering::Relaxed) >= n);
    let window = match duration {
        Some(d) if !exhausted => d,
        _ => stats.last(),
    };
    Ok(Outcome {
        workload: args.workload,
        addr,
        connections,
        established: sh.established.load(Ordering::Relaxed),
        connect_failed: sh.connect_failed.load(Ordering::Relaxed),
        held: sh.held.load(Ordering::Relaxed),
        rate: args.rate,
        pipeline: args.pipeline,
        warmup: args.warmup,
        window,
        stats,
        errors,
        verified_total: sh.verified.load(Ordering::Relaxed),
    })
}

/// The live status line on stderr, only when it is a terminal.
struct Status {
    on: bool,
    last: (Instant, u64),
}

impl Status {
    fn new(on: bool) -> Self {
        Status { on, last: (Instant::now(), 0) }
    }

    fn show(&mut self, sh: &Shared, phase: &str) {
        if !self.on {
            return;
        }
        let now = Instant::now();
        let verified = sh.verified.load(Ordering::Relaxed);
        let per_s = stats::rate(verified - self.last.1, now - self.last.0);
        self.last = (now, verified);
        let errors = sh.errors.lock().map(|l| l.total()).unwrap_or(0);
        let line = format!(
            "\r\x1b[K{phase}: {} connected, {} failed, {per_s:.0}/s verified, {errors} errors",
            sh.established.load(Ordering::Relaxed),
            sh.connect_failed.load(Ordering::Relaxed),
        );
        let _ = std::io::stderr().write_all(line.as_bytes());
    }

    fn clear(&self) {
        if self.on {
            let _ = std::io::stderr().write_all(b"\r\x1b[K");
        }
    }
}
