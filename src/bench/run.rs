//! Running one benchmark: resolve, spawn the connections, publish the clock once
//! they are ready, wait for them all, and gather the [`Report`].
//!
//! Progress is handed to an [`Observer`] (the command line draws its status line
//! from it); nothing here prints.
//!
//! Not for: what a connection does (`conn.rs`) or how the result reads (`report.rs`).
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, SystemTime};

use hdrhistogram::Histogram;

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

/// The measured window begins (sent once, before any interval).
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub struct Started {
    /// The server, resolved.
    pub addr: SocketAddr,
    /// Wall-clock time the measured window starts (after the warm-up).
    pub at: SystemTime,
    /// This agent's connections (its share, with a shard).
    pub connections: u64,
    /// The number of its first connection.
    pub first_id: u64,
    /// Its share of the rate, when open loop.
    pub rate: Option<f64>,
}

/// One finished interval of the measured window.
#[derive(Debug)]
#[non_exhaustive]
pub struct Interval<'a> {
    /// Its start, from the start of the window.
    pub start: Duration,
    /// Its length.
    pub length: Duration,
    /// Latencies of the replies that completed in it, in microseconds.
    pub histogram: &'a Histogram<u64>,
    /// Errors counted since the previous interval, by kind.
    pub errors: &'a BTreeMap<String, u64>,
}

/// What a caller hears during a run. Called from the run's own task: keep it short.
pub trait Observer: Send {
    /// Every 250 ms while connecting, then every second.
    fn progress(&mut self, _progress: &Progress) {}
    /// When the clock is set: the measured window's wall-clock start.
    fn started(&mut self, _started: &Started) {}
    /// Each interval, in order, about one interval after it ends (only when
    /// [`Config::intervals`] is set); the last ones when the run ends. Their
    /// histograms add up to the report's.
    fn interval(&mut self, _interval: &Interval<'_>) {}
    /// A sharded `--find-max-rate` step is about to run (before its `started`).
    fn step(&mut self, _step: &super::search::StepStart) {}
    /// That step's run ended with `report`.
    fn step_done(&mut self, _report: &Report) {}
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
    let (first_id, connections) = match config.shard {
        Some(shard) => shard.part(config.connections),
        None => (0, config.connections),
    };
    let rate = config.rate.map(|r| r * connections as f64 / config.connections as f64);
    let requests = match (config.shard, config.requests) {
        (Some(shard), Some(n)) => Some(shard.part(n).1),
        (_, n) => n,
    };
    let stats = match config.intervals {
        Some(length) => Stats::with_intervals(length),
        None => Stats::new(),
    };
    let tls = match &config.tls {
        None => None,
        Some(t) => Some(tls_client(t, &config.addr)?),
    };
    let (clock_tx, clock_rx) = watch::channel(None);
    let sh = Arc::new(Shared {
        spec,
        addr,
        sources: config.sources.clone(),
        connections,
        first_id,
        pipeline: config.pipeline as usize,
        interval: rate.map(|r| Duration::from_secs_f64((connections as f64 / r).min(86_400.0))),
        requests,
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
        stats: std::sync::Mutex::new(stats),
        errors: std::sync::Mutex::new(ErrorLog { limit: config.show_errors, ..Default::default() }),
        total_connections: config.connections,
        proxy: config.proxy.as_ref().map(|p| (p.version, p.source.clone())),
        malformed: config.proxy_malformed.clone(),
        tls,
    });
    let mut tasks = JoinSet::new();
    for id in first_id..first_id + connections {
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
    let (now, wall) = (Instant::now(), SystemTime::now());
    // With a start time, the measured window opens then (the warm-up before it, as
    // far as there is time); without one, or when it is past, after the warm-up.
    let measure = match config.start_at.and_then(|at| at.duration_since(wall).ok()) {
        Some(wait) => now + wait,
        None => now + config.warmup,
    };
    let start = measure.checked_sub(config.warmup).map_or(now, |s| s.max(now));
    let end = duration.map(|d| measure + d);
    // Receivers live in `sh`, so sending cannot fail.
    let _ = clock_tx.send(Some(Clock { start, measure, end }));
    observer.started(&Started { addr, at: wall + (measure - now), connections, first_id, rate });
    let mut emitter = Emitter::default();
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
                let now = Instant::now();
                let phase = if now < measure { "warm-up" } else { "running" };
                observer.progress(&progress(&sh, phase));
                if let Some(length) = config.intervals {
                    // One interval of grace for samples still in connections' batches.
                    let done = now.saturating_duration_since(measure).as_nanos() / length.as_nanos();
                    emitter.emit(&sh, (done as u64).saturating_sub(1), observer);
                }
            }
        }
    }
    if let Some(length) = config.intervals {
        let last = sh.stats.lock().map(|s| s.last()).unwrap_or_default();
        let covered = duration.unwrap_or_default().max(last);
        emitter.emit(&sh, intervals_through(covered, length), observer);
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
        first_id,
        established: sh.established.load(Ordering::Relaxed),
        connect_failed: sh.connect_failed.load(Ordering::Relaxed),
        held: sh.held.load(Ordering::Relaxed),
        rate,
        pipeline: config.pipeline,
        warmup: config.warmup,
        window,
        stats,
        errors,
        verified_total: sh.verified.load(Ordering::Relaxed),
    })
}

/// Hands finished intervals to the observer, each with the errors counted since
/// the one before.
#[derive(Default)]
struct Emitter {
    reported: BTreeMap<String, u64>,
}

impl Emitter {
    fn emit(&mut self, sh: &Shared, upto: u64, observer: &mut dyn Observer) {
        let (intervals, length) = {
            let mut stats = sh.stats.lock().unwrap_or_else(|p| p.into_inner());
            (stats.take_intervals(upto), stats.interval_length().unwrap_or_default())
        };
        for (start, histogram) in &intervals {
            let counts = sh.errors.lock().map(|l| l.counts.clone()).unwrap_or_default();
            let mut errors = BTreeMap::new();
            for (kind, n) in counts {
                let before = self.reported.insert(kind.clone(), n).unwrap_or(0);
                if n > before {
                    errors.insert(kind, n - before);
                }
            }
            observer.interval(&Interval { start: *start, length, histogram, errors: &errors });
        }
    }
}

/// How many intervals of `length` hold every reply up to `covered` from the
/// window's start: through the one holding `covered` itself, even when it falls
/// exactly on a boundary.
fn intervals_through(covered: Duration, length: Duration) -> u64 {
    (covered.as_nanos() / length.as_nanos().max(1)) as u64 + 1
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
/// The TLS client configuration and server name for `tls` against `addr`.
fn tls_client(
    tls: &super::Tls,
    addr: &str,
) -> Result<(Arc<rustls::ClientConfig>, rustls::pki_types::ServerName<'static>), BenchError> {
    let settings = crate::net::tls::ClientSettings {
        cacert: tls.cacert.clone(),
        insecure: tls.insecure,
        resume: tls.resume,
        ..Default::default()
    };
    let config =
        crate::net::tls::client_config_with(&settings).map_err(|e| BenchError::Tls(e.to_string()))?;
    let host = match &tls.sni {
        Some(name) => name.as_str(),
        None => addr.rsplit_once(':').map_or(addr, |(host, _)| host),
    };
    let name = crate::net::tls::server_name(host).map_err(|e| BenchError::Tls(e.to_string()))?;
    Ok((config, name))
}

async fn resolve(addr: &str) -> Result<SocketAddr, BenchError> {
    let bad = || BenchError::Address(addr.to_string());
    let (host, port) = addr.rsplit_once(':').ok_or_else(bad)?;
    let port: u16 = port.parse().map_err(|_| bad())?;
    let addrs = crate::net::connect::resolve(host, port, crate::net::Family::Any).await?;
    addrs.first().copied().ok_or_else(bad)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Counts what the observer hears.
    #[derive(Default)]
    struct Tally {
        started: usize,
        intervals: Vec<(Duration, u64)>,
    }

    impl Observer for Tally {
        fn started(&mut self, _: &Started) {
            self.started += 1;
        }
        fn interval(&mut self, iv: &Interval<'_>) {
            self.intervals.push((iv.start, iv.histogram.len()));
        }
    }

    /// A local echo server for the run.
    async fn echo_server() -> SocketAddr {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let (mut r, mut w) = s.split();
                    let _ = tokio::io::copy(&mut r, &mut w).await;
                });
            }
        });
        addr
    }

    #[tokio::test]
    async fn the_intervals_handed_out_add_up_to_the_report_even_when_tiny() {
        let addr = echo_server().await;
        let mut config = Config::new(addr.to_string());
        config.workload = Workload::Echo;
        config.connections = 3;
        config.requests = Some(600);
        // Many boundaries, and more intervals than are held open at once.
        config.intervals = Some(Duration::from_millis(1));
        let mut tally = Tally::default();
        let report = run_with(&config, &mut tally).await.unwrap();
        assert_eq!(report.stats.count(), 600);
        assert_eq!(tally.started, 1);
        assert_eq!(tally.intervals.iter().map(|(_, n)| n).sum::<u64>(), 600);
        let starts: Vec<Duration> = tally.intervals.iter().map(|(s, _)| *s).collect();
        assert!(
            starts.windows(2).all(|w| w[1] == w[0] + Duration::from_millis(1)),
            "in order, no gaps: {starts:?}"
        );
    }

    #[test]
    fn the_last_interval_holds_a_reply_on_its_boundary() {
        let s = Duration::from_secs;
        assert_eq!(intervals_through(s(2), s(1)), 3, "a reply at exactly 2 s is in interval 2");
        assert_eq!(intervals_through(Duration::from_millis(2500), s(1)), 3);
        assert_eq!(intervals_through(Duration::ZERO, s(1)), 1);
    }

    #[tokio::test]
    async fn a_shard_runs_its_share_under_its_own_numbers() {
        let addr = echo_server().await;
        let mut config = Config::new(addr.to_string());
        config.workload = Workload::Echo;
        config.connections = 10;
        config.requests = Some(100);
        config.message = "c{conn}".into();
        config.shard = Some(crate::bench::Shard { index: 3, count: 4 });
        let report = run(&config).await.unwrap();
        // Agent 3 of 4: connections 8 and 9 (10 = 3 + 3 + 2 + 2), 25 requests.
        assert_eq!((report.first_id, report.connections), (8, 2));
        assert_eq!(report.stats.count(), 25);
        assert!(report.verdict().is_none());
    }
}
