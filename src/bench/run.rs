//! Running one benchmark: resolve, spawn the connections, publish the clock once
//! they are ready, wait for them all, and gather the [`Report`].
//!
//! Progress is handed to an [`Observer`] (the command line draws its status line
//! from it); nothing here prints.
//!
//! Not for: what a connection does (`conn.rs`) or how the result reads (`report.rs`).
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::sync::{Notify, Semaphore, watch};
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::conn::{self, Clock, ErrorLog, Shared};
use super::stats::Stats;
use super::verify::ConnError;
use super::workload::Spec;
use super::{BenchError, Config, DEFAULT_DURATION, Report, Workload};

/// How often the observer hears about progress while connecting.
const CONNECTING_TICK: Duration = Duration::from_millis(250);
/// How often the observer hears about progress while running.
const RUNNING_TICK: Duration = Duration::from_secs(1);

/// A snapshot of a run in progress.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Progress {
    /// `"connecting"`, `"warm-up"` or `"running"`.
    pub phase: &'static str,
    /// Connections established so far (sessions, for churn).
    pub established: u64,
    /// Connection attempts that failed so far.
    pub connect_failed: u64,
    /// Verified replies so far, warm-up included.
    pub verified: u64,
    /// Errors so far.
    pub errors: u64,
}

/// What a caller hears during a run. Called from the run's own task: keep it short.
pub trait Observer: Send {
    /// Every 250 ms while connecting, then every second.
    fn progress(&mut self, _progress: &Progress) {}
}

/// The observer that ignores everything.
impl Observer for () {}

/// Run the benchmark `config` describes and return what happened. Wrong or
/// missing replies are in the report ([`Report::verdict`]); an `Err` means the
/// run could not start.
pub async fn run(config: &Config) -> Result<Report, BenchError> {
    run_with(config, &mut ()).await
}

/// [`run`], telling `observer` how it goes.
pub async fn run_with(config: &Config, observer: &mut dyn Observer) -> Result<Report, BenchError> {
    config.validate()?;
    let spec = Spec::new(config)?;
    let addr = resolve(&config.addr).await?;
    let duration = match (config.duration, config.requests) {
        (None, None) => Some(DEFAULT_DURATION),
        (d, _) => d,
    };
    let connections = config.connections;
    let (clock_tx, clock_rx) = watch::channel(None);
    let sh = Arc::new(Shared {
        spec,
        addr,
        sources: config.sources.clone(),
        connections,
        pipeline: config.pipeline as usize,
        interval: config.rate.map(|r| Duration::from_secs_f64((connections as f64 / r).min(86_400.0))),
        requests: config.requests,
        connect_timeout: config.connect_timeout,
        timeout: config.timeout,
        connect_gate: Semaphore::new(config.connect_concurrency as usize),
        clock: clock_rx,
        ready: Default::default(),
        ready_notify: Notify::new(),
        claimed: Default::default(),
        verified: Default::default(),
        established: Default::default(),
        connect_failed: Default::default(),
        held: Default::default(),
        stats: std::sync::Mutex::new(Stats::new()),
        errors: std::sync::Mutex::new(ErrorLog { limit: config.show_errors, ..Default::default() }),
    });
    let mut tasks = JoinSet::new();
    for id in 0..connections {
        tasks.spawn(conn::run(sh.clone(), id));
    }
    if config.workload != Workload::Churn {
        // Every connection ends its connect phase within its timeouts, so this ends.
        loop {
            let notified = sh.ready_notify.notified();
            if sh.ready.load(Ordering::Acquire) >= connections {
                break;
            }
            tokio::select! {
                () = notified => {}
                () = tokio::time::sleep(CONNECTING_TICK) => observer.progress(&progress(&sh, "connecting")),
            }
        }
    }
    let start = Instant::now();
    let measure = start + config.warmup;
    let end = duration.map(|d| measure + d);
    // Receivers live in `sh`, so sending cannot fail.
    let _ = clock_tx.send(Some(Clock { start, measure, end }));
    let mut tick = tokio::time::interval(RUNNING_TICK);
    loop {
        tokio::select! {
            joined = tasks.join_next() => match joined {
                None => break,
                Some(Err(e)) if e.is_panic() => {
                    sh.error(u64::MAX, ConnError::Io(std::io::Error::other("connection task panicked")));
                }
                Some(_) => {}
            },
            _ = tick.tick() => {
                let phase = if Instant::now() < measure { "warm-up" } else { "running" };
                observer.progress(&progress(&sh, phase));
            }
        }
    }
    let stats = std::mem::take(&mut *sh.stats.lock().unwrap_or_else(|p| p.into_inner()));
    let errors = std::mem::take(&mut *sh.errors.lock().unwrap_or_else(|p| p.into_inner()));
    let exhausted = config.requests.is_some_and(|n| sh.claimed.load(Ordering::Relaxed) >= n);
    let window = match duration {
        Some(d) if !exhausted => d,
        _ => stats.last(),
    };
    Ok(Report {
        workload: config.workload,
        addr,
        connections,
        established: sh.established.load(Ordering::Relaxed),
        connect_failed: sh.connect_failed.load(Ordering::Relaxed),
        held: sh.held.load(Ordering::Relaxed),
        rate: config.rate,
        pipeline: config.pipeline,
        warmup: config.warmup,
        window,
        stats,
        errors,
        verified_total: sh.verified.load(Ordering::Relaxed),
    })
}

fn progress(sh: &Shared, phase: &'static str) -> Progress {
    Progress {
        phase,
        established: sh.established.load(Ordering::Relaxed),
        connect_failed: sh.connect_failed.load(Ordering::Relaxed),
        verified: sh.verified.load(Ordering::Relaxed),
        errors: sh.errors.lock().map(|l| l.total()).unwrap_or(0),
    }
}

/// `HOST:PORT` (IPv6 in brackets) to the first address it resolves to.
async fn resolve(addr: &str) -> Result<SocketAddr, BenchError> {
    let bad = || BenchError::Address(addr.to_string());
    let (host, port) = addr.rsplit_once(':').ok_or_else(bad)?;
    let port: u16 = port.parse().map_err(|_| bad())?;
    let addrs = crate::net::connect::resolve(host, port, crate::net::Family::Any).await?;
    addrs.first().copied().ok_or_else(bad)
}
