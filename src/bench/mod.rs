//! `tcpkit bench`: a load generator for line-based servers that verifies every
//! reply byte for byte.
//!
//! The library runs a benchmark from a [`Config`] and returns a [`Report`]; it
//! never sees a flag, prints nothing and picks no exit code (the command line in
//! `cli/bench.rs` does those). The run (`run.rs`): one task per connection
//! (`conn.rs`); for hello, echo and hold, wait until every connection is
//! connected and greeted, then publish the clock (start, end of warm-up, end);
//! churn starts at once. Connections record verified replies into one HDR
//! histogram (`stats.rs`); the report (`report.rs`) is text, JSON or an SVG chart.
//!
//! Measuring an echo server from Rust:
//! ```
//! use tcpkit::bench::{Config, Workload};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! // The server under test: every line comes back as it was.
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! let addr = listener.local_addr()?;
//! tokio::spawn(async move {
//!     while let Ok((mut socket, _)) = listener.accept().await {
//!         tokio::spawn(async move {
//!             let (mut from, mut to) = socket.split();
//!             let _ = tokio::io::copy(&mut from, &mut to).await;
//!         });
//!     }
//! });
//!
//! let mut config = Config::new(addr.to_string());
//! config.workload = Workload::Echo;
//! config.connections = 4;
//! config.requests = Some(1000);
//! let report = tcpkit::bench::run(&config).await?;
//! assert_eq!(report.verdict(), None, "a reply was wrong or missing");
//! assert_eq!(report.stats.count(), 1000);
//! println!("p99 {} us", report.stats.summary().p99_us);
//! # Ok(())
//! # }
//! ```
//!
//! Not for: HTTP (use wrk), or servers whose replies cannot be predicted from
//! the request.
pub mod conn;
pub mod hdrlog;
pub mod merge;
pub mod report;
mod run;
pub mod search;
pub mod stats;
pub mod verify;
pub mod workload;

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use thiserror::Error;

use crate::net::proxy::{Malformed, SourceRange, Version};

pub use report::Report;
pub use run::{Interval, Observer, Progress, Started, run, run_with};
pub use workload::{Workload, WorkloadError};

/// Measured time when neither a duration nor a request count is given.
pub const DEFAULT_DURATION: Duration = Duration::from_secs(10);
/// Connections opened at once.
pub const DEFAULT_CONNECTIONS: u64 = 10;
/// Most connections one run opens: each needs a descriptor and a task.
pub const MAX_CONNECTIONS: u64 = 1_000_000;
/// The request line template.
pub const DEFAULT_MESSAGE: &str = "client{conn}-{seq}";
/// The line `churn` sends to end a session.
pub const DEFAULT_QUIT: &str = "exit";
/// Requests in flight per connection.
pub const DEFAULT_PIPELINE: u32 = 1;
/// Most requests in flight per connection: each holds its expected reply.
pub const MAX_PIPELINE: u32 = 1024;
/// Bound on one connection attempt.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Connection attempts in flight at once: a burst larger than the server's accept
/// queue loses SYNs, which each cost a 1 s retry.
pub const DEFAULT_CONNECT_CONCURRENCY: u32 = 128;
/// Bound on waiting for a reply, the greeting or a close.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
/// Errors kept in full for the report.
pub const DEFAULT_SHOW_ERRORS: usize = 5;
/// Length of one interval histogram (`--hdr-log`).
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(1);
/// Most agents one run may be split over.
pub const MAX_SHARDS: u32 = 10_000;
/// Synthetic clients for `--proxy-header` when none are given: RFC 2544's
/// benchmarking network, so a log shows at once that the client was made up.
pub const DEFAULT_PROXY_SOURCE: &str = "198.18.0.0/15:1024-65535";
/// Furthest ahead a start time may be: beyond it, a typo is likelier than a plan.
pub const MAX_START_DELAY: Duration = Duration::from_secs(24 * 3600);

/// This agent's part of a run split over `count` agents (`--shard I/N`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    /// This agent, 0-based.
    pub index: u32,
    /// Agents in all, 1 to [`MAX_SHARDS`].
    pub count: u32,
}

impl Shard {
    /// This agent's share of `total`: the first number of its part and how many.
    /// The parts cover `0..total` without gaps or overlap and differ by at most one.
    pub fn part(&self, total: u64) -> (u64, u64) {
        let (n, i) = (u64::from(self.count.max(1)), u64::from(self.index));
        let (base, extra) = (total / n, total % n);
        (i * base + i.min(extra), base + u64::from(i < extra))
    }
}

/// What to run: every setting of a benchmark, with defaults from [`Config::new`].
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Config {
    /// Server address, `HOST:PORT` (`[::1]:9999` for IPv6); resolved once, the
    /// first address is used.
    pub addr: String,
    /// What each connection does.
    pub workload: Workload,
    /// Connections at once (slots for churn), 1 to [`MAX_CONNECTIONS`].
    pub connections: u64,
    /// Measured time after the warm-up; with neither this nor `requests`,
    /// [`DEFAULT_DURATION`].
    pub duration: Option<Duration>,
    /// Stop after this many measured requests (sessions for churn) in total.
    pub requests: Option<u64>,
    /// Run this long before measuring; replies in it are verified, not counted.
    pub warmup: Duration,
    /// The request line: `{conn}` is the connection number, `{seq}` the request
    /// number on that connection.
    pub message: String,
    /// The reply expected for a line, `{}` being the line; `None`: `Hello, {}!`
    /// (echo: `{}`).
    pub reply: Option<String>,
    /// The greeting expected on connect (empty = none); `None`: `Welcome!` (echo: none).
    pub greeting: Option<String>,
    /// The line `churn` sends to end a session.
    pub quit: String,
    /// Requests per second in total (open loop); `None` = closed loop.
    pub rate: Option<f64>,
    /// Requests in flight per connection, 1 to [`MAX_PIPELINE`].
    pub pipeline: u32,
    /// Source addresses, round-robin over connections; empty = the OS chooses.
    pub sources: Vec<IpAddr>,
    /// Bound on one connection attempt.
    pub connect_timeout: Duration,
    /// Connection attempts in flight at once (at least 1).
    pub connect_concurrency: u32,
    /// Bound on waiting for a reply, the greeting or a close.
    pub timeout: Duration,
    /// Errors kept in full (with their bytes) in the report.
    pub show_errors: usize,
    /// Keep a histogram per interval of this length, for [`Observer::interval`]
    /// (an interval log); `None`: only the total.
    pub intervals: Option<Duration>,
    /// Run only this agent's share of the connections, rate and request count,
    /// numbering its connections after the other agents'.
    pub shard: Option<Shard>,
    /// Start the measured window at this wall-clock instant (connecting and the
    /// warm-up come before it), at most [`MAX_START_DELAY`] ahead; when it is
    /// already past, at once.
    pub start_at: Option<SystemTime>,
    /// Send a PROXY protocol header first on every connection, each from its own
    /// synthetic client ([`ProxyHeader`]); `None`: no header.
    pub proxy: Option<ProxyHeader>,
    /// Instead of requests, send these malformed PROXY headers (round robin over
    /// the churn sessions), shut down the write half and expect the receiver to
    /// close without a byte; only with [`Workload::Churn`].
    pub proxy_malformed: Vec<Malformed>,
    /// Speak TLS over every connection (after the PROXY header, if any); each
    /// churn session is a full handshake. `None`: plain TCP.
    pub tls: Option<Tls>,
}

/// TLS client settings of a run (`--tls`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tls {
    /// Trust only the certificates in this PEM file instead of the system store.
    pub cacert: Option<PathBuf>,
    /// Accept any certificate (`-k`); handshake signatures are still verified.
    pub insecure: bool,
    /// The name sent (SNI) and checked against the certificate; `None`: the
    /// host of [`Config::addr`].
    pub sni: Option<String>,
    /// Resume sessions from earlier connections (`--tls-resume`); off, every
    /// connection makes a full handshake.
    pub resume: bool,
}

/// The PROXY protocol header each connection sends first (`--proxy-header`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxyHeader {
    /// v1 (text) or v2 (binary).
    pub version: Version,
    /// Synthetic client addresses: connection (or churn session) `i` claims to
    /// come from `source.nth(i)`, `i` being unique across shards.
    pub source: SourceRange,
}

impl Config {
    /// The defaults, against `addr`.
    pub fn new(addr: impl Into<String>) -> Self {
        Config {
            addr: addr.into(),
            workload: Workload::default(),
            connections: DEFAULT_CONNECTIONS,
            duration: None,
            requests: None,
            warmup: Duration::ZERO,
            message: DEFAULT_MESSAGE.to_string(),
            reply: None,
            greeting: None,
            quit: DEFAULT_QUIT.to_string(),
            rate: None,
            pipeline: DEFAULT_PIPELINE,
            sources: Vec::new(),
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            connect_concurrency: DEFAULT_CONNECT_CONCURRENCY,
            timeout: DEFAULT_TIMEOUT,
            show_errors: DEFAULT_SHOW_ERRORS,
            intervals: None,
            shard: None,
            start_at: None,
            proxy: None,
            proxy_malformed: Vec::new(),
            tls: None,
        }
    }

    /// Check the settings that do not fit together, before anything is opened.
    pub fn validate(&self) -> Result<(), BenchError> {
        if !(1..=MAX_CONNECTIONS).contains(&self.connections) {
            return Err(BenchError::Connections(self.connections));
        }
        if !(1..=MAX_PIPELINE).contains(&self.pipeline) {
            return Err(BenchError::Pipeline(self.pipeline));
        }
        if self.connect_concurrency == 0 {
            return Err(BenchError::ConnectConcurrency);
        }
        if let Some(r) = self.rate {
            if !(r.is_finite() && r > 0.0) {
                return Err(BenchError::Rate(r));
            }
        }
        if self.workload == Workload::Hold && self.requests.is_some() {
            return Err(BenchError::RequestsWithHold);
        }
        if self.requests == Some(0) {
            return Err(BenchError::NoRequests);
        }
        if let Some(sh) = self.shard {
            if sh.count == 0 || sh.count > MAX_SHARDS || sh.index >= sh.count {
                return Err(BenchError::Shard(sh.index, sh.count));
            }
            if self.connections < u64::from(sh.count)
                || self.requests.is_some_and(|n| n < u64::from(sh.count))
            {
                return Err(BenchError::ShardTooSmall(sh.count));
            }
        }
        if !self.proxy_malformed.is_empty() {
            if self.workload != Workload::Churn {
                return Err(BenchError::MalformedNeedsChurn);
            }
            if self.proxy.is_some() {
                return Err(BenchError::MalformedWithHeader);
            }
        }
        if let Some(at) = self.start_at {
            if at.duration_since(SystemTime::now()).is_ok_and(|d| d > MAX_START_DELAY) {
                return Err(BenchError::StartTooLate);
            }
        }
        Ok(())
    }
}

/// Why a benchmark could not run. Wrong replies are not errors of the run: they
/// are counted in the [`Report`] ([`Report::verdict`]).
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum BenchError {
    /// A template (message, reply, greeting, quit word) cannot be used.
    #[error(transparent)]
    Workload(#[from] WorkloadError),
    /// `connections` out of range.
    #[error("connections: {0} is not in 1..={MAX_CONNECTIONS}")]
    Connections(u64),
    /// `pipeline` out of range.
    #[error("pipeline: {0} is not in 1..={MAX_PIPELINE}")]
    Pipeline(u32),
    /// `connect_concurrency` is zero.
    #[error("connect concurrency: must be at least 1")]
    ConnectConcurrency,
    /// `rate` is not a positive number.
    #[error("--rate must be a positive number, not {0}")]
    Rate(f64),
    /// A request count for `hold`, which sends none.
    #[error("-n does not apply to hold; give -d")]
    RequestsWithHold,
    /// A request count of zero.
    #[error("-n must be at least 1")]
    NoRequests,
    /// A shard that does not exist (`index >= count`, or no agents).
    #[error("--shard {0}/{1}: needs 0 <= I < N <= {MAX_SHARDS}")]
    Shard(u32, u32),
    /// Fewer connections (or requests) than agents.
    #[error("--shard over {0} agents needs at least {0} connections (and requests, with -n)")]
    ShardTooSmall(u32),
    /// A start time too far ahead.
    #[error("--start-at is more than {} hours ahead", MAX_START_DELAY.as_secs() / 3600)]
    StartTooLate,
    /// `--find-max-rate` with `--shard` but no common start time.
    #[error(
        "--find-max-rate with --shard needs --start-at: every agent runs the same steps at the same \
         times, counted from it"
    )]
    SearchShardNeedsStart,
    /// A step count out of range.
    #[error("--max-steps: {0} is not in 1..={max}", max = search::MAX_STEPS)]
    Steps(u32),
    /// Malformed PROXY headers with a workload other than churn.
    #[error("--proxy-malformed sends one header per connection: it runs with -w churn only")]
    MalformedNeedsChurn,
    /// Malformed PROXY headers and a valid one.
    #[error("--proxy-malformed and --proxy-header exclude each other")]
    MalformedWithHeader,
    /// The TLS settings cannot be used (an unreadable `--cacert`, a bad name).
    #[error("--tls: {0}")]
    Tls(String),
    /// The address is not `HOST:PORT`.
    #[error("not HOST:PORT: {0:?}")]
    Address(String),
    /// The host did not resolve.
    #[error(transparent)]
    Resolve(#[from] crate::net::connect::ConnectError),
}

impl BenchError {
    /// True when the settings themselves are wrong (as opposed to the network).
    pub fn is_usage(&self) -> bool {
        !matches!(self, BenchError::Resolve(_))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_split_without_gaps_or_overlap() {
        for (total, count) in [(10u64, 4u32), (4, 4), (1000, 7), (5, 1)] {
            let mut next = 0;
            for index in 0..count {
                let (first, n) = Shard { index, count }.part(total);
                assert_eq!(first, next, "{total}/{count} agent {index}");
                assert!(n == total / u64::from(count) || n == total / u64::from(count) + 1);
                next += n;
            }
            assert_eq!(next, total);
        }
    }

    #[test]
    fn impossible_shards_and_start_times_are_refused() {
        let mut c = Config::new("a:1");
        c.shard = Some(Shard { index: 4, count: 4 });
        assert!(matches!(c.validate(), Err(BenchError::Shard(4, 4))));
        c.shard = Some(Shard { index: 0, count: 11 });
        assert!(matches!(c.validate(), Err(BenchError::ShardTooSmall(11))));
        c.shard = Some(Shard { index: 3, count: 4 });
        assert!(c.validate().is_ok());
        c.start_at = Some(SystemTime::now() + MAX_START_DELAY + Duration::from_secs(60));
        assert!(matches!(c.validate(), Err(BenchError::StartTooLate)));
        c.start_at = Some(SystemTime::UNIX_EPOCH);
        assert!(c.validate().is_ok(), "a past start time starts at once");
    }
}
