//! `tcpkit bench` on the command line: flags into a [`bench::Config`], the
//! runtime, the live status line, printing the report, and the exit code.
//!
//! Durations accept `10`, `2.5`, `10s`, `500ms` or `2m`; `--source` takes a range
//! (`127.0.0.1-127.0.0.8`), a list (`10.0.0.1,10.0.0.2`) or both. Defaults are
//! the library's constants, so they are written once.
//!
//! Not for: running the benchmark (see [`crate::bench`]).
use std::fmt;
use std::io::{IsTerminal, Write};
use std::net::IpAddr;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::{Duration, SystemTime};

use clap::Args;
use clap::builder::TypedValueParser;

use super::duration::parse_duration;
use crate::Failure;
use crate::bench::hdrlog::HdrLogWriter;
use crate::bench::{self, BenchError, Config, Interval, Observer, Progress, Report, Started, Workload};
use crate::net::proxy;

/// Load-test a line-based TCP server, verifying every reply.
///
/// Every reply is compared byte for byte with what the workload expects; only
/// verified replies count. Exit status 1 if any error (a wrong reply, a short read,
/// a reset, a timeout, a failed connection) unless `--allow-errors`.
#[derive(Debug, Clone, Args)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct BenchArgs {
    /// `merge`: add up agents' `--hdr-log` files instead of running.
    #[command(subcommand)]
    pub command: Option<BenchCommand>,

    /// Server address, HOST:PORT (`[::1]:9999` for IPv6).
    #[arg(value_name = "ADDR", required = true)]
    pub addr: Option<String>,

    /// What each connection does: hello, echo, churn or hold.
    #[arg(short, long, value_name = "WORKLOAD", default_value_t = Workload::default(),
          value_parser = clap::builder::PossibleValuesParser::new(Workload::ALL.map(Workload::name))
              .try_map(|s| s.parse::<Workload>()))]
    pub workload: Workload,

    /// Connections opened (and, for `churn`, kept busy) at once.
    #[arg(short, long, value_name = "N", default_value_t = bench::DEFAULT_CONNECTIONS,
          value_parser = clap::value_parser!(u64).range(1..=bench::MAX_CONNECTIONS))]
    pub connections: u64,

    /// How long to measure, after the warm-up. Without `-n`, 10 s.
    #[arg(short, long, value_name = "TIME")]
    pub duration: Option<Time>,

    /// Stop after this many measured requests (sessions for `churn`), in total.
    #[arg(short = 'n', long, value_name = "N")]
    pub requests: Option<u64>,

    /// Run this long before measuring; replies in it are verified but not counted.
    #[arg(long, value_name = "TIME", default_value_t = Time(Duration::ZERO))]
    pub warmup: Time,

    /// The line each request sends, without its newline. `{conn}` is the connection
    /// number, `{seq}` the request number on that connection.
    #[arg(short, long, value_name = "TEMPLATE", default_value = bench::DEFAULT_MESSAGE)]
    pub message: String,

    /// The reply expected for a line; `{}` is the line. Default: `Hello, {}!` for
    /// hello and churn, `{}` for echo.
    #[arg(long, value_name = "TEMPLATE")]
    pub reply: Option<String>,

    /// The greeting line expected on connect (empty = none). Default: `Welcome!`,
    /// none for echo.
    #[arg(long, value_name = "TEXT")]
    pub greeting: Option<String>,

    /// The line `churn` sends to end a session.
    #[arg(long = "quit", value_name = "WORD", default_value = bench::DEFAULT_QUIT)]
    pub quit: String,

    /// Replies per second in total: open loop, latency measured from each request's
    /// intended send time (coordinated omission corrected). Without it, closed loop.
    #[arg(short, long, value_name = "R")]
    pub rate: Option<f64>,

    /// Requests in flight per connection (hello and echo); replies are matched in order.
    #[arg(long, value_name = "N", default_value_t = bench::DEFAULT_PIPELINE,
          value_parser = clap::value_parser!(u32).range(1..=i64::from(bench::MAX_PIPELINE)))]
    pub pipeline: u32,

    /// Source addresses to connect from, spread round-robin over the connections:
    /// a range `127.0.0.1-127.0.0.8`, a list `a,b`, or both. Sockets are bound with
    /// `IP_BIND_ADDRESS_NO_PORT`, so each address has a port range per destination.
    #[arg(long, value_name = "ADDRS", value_parser = parse_sources)]
    pub source: Option<Sources>,

    /// Give up on a connection attempt after this long (counted as failed).
    #[arg(long, value_name = "TIME", default_value_t = Time(bench::DEFAULT_CONNECT_TIMEOUT))]
    pub connect_timeout: Time,

    /// Connection attempts in flight at once: a burst larger than the server's
    /// accept queue loses SYNs, which each cost a 1 s retry.
    #[arg(long, value_name = "N", default_value_t = bench::DEFAULT_CONNECT_CONCURRENCY,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub connect_concurrency: u32,

    /// A reply (or the greeting, or the close after `quit`) not complete after
    /// this long is an error.
    #[arg(long, value_name = "TIME", default_value_t = Time(bench::DEFAULT_TIMEOUT))]
    pub timeout: Time,

    /// Exit 0 even when there were errors (they are still counted and shown).
    #[arg(long)]
    pub allow_errors: bool,

    /// How many errors to show in full (connection, expected and received bytes).
    #[arg(long, value_name = "N", default_value_t = bench::DEFAULT_SHOW_ERRORS)]
    pub show_errors: usize,

    /// Print the whole result as one JSON object on stdout instead of the text report.
    #[arg(long)]
    pub json: bool,

    /// Write a latency-percentile and throughput-over-time chart to this SVG file.
    /// The file is checked (opened for writing) before the run, so a bad path
    /// fails at once rather than after the whole measurement.
    #[arg(long, value_name = "FILE.svg", value_parser = writable_file)]
    pub plot: Option<PathBuf>,

    /// Runtime threads: 1 runs every connection on one thread (the least CPU per
    /// request); more use a multi-threaded runtime.
    #[arg(long, value_name = "N", default_value_t = 1,
          value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub threads: u32,

    /// No live status line (it is shown only when stderr is a terminal anyway).
    #[arg(short, long)]
    pub quiet: bool,

    /// Write the HdrHistogram interval log (one histogram per interval, errors,
    /// this run's settings) to FILE, or to stdout with `-` (the report then goes
    /// to stderr); `tcpkit bench merge` adds such logs up.
    #[arg(long, value_name = "FILE|-")]
    pub hdr_log: Option<PathBuf>,

    /// Length of each interval of `--hdr-log`.
    #[arg(long, value_name = "TIME", default_value_t = Time(bench::DEFAULT_INTERVAL))]
    pub hdr_interval: Time,

    /// This agent's name in `--hdr-log` (default: the host name, with the shard index).
    #[arg(long, value_name = "NAME")]
    pub agent: Option<String>,

    /// Run share I of N agents (0-based): `-c`, `--rate` and `-n` are split and
    /// connection numbers do not collide. `N` alone takes I from
    /// `JOB_COMPLETION_INDEX` (set by Kubernetes Indexed Jobs).
    #[arg(long, value_name = "I/N", value_parser = parse_shard)]
    pub shard: Option<ShardArg>,

    /// `--find-max-rate` and its settings (boxed: they are rarely used).
    #[command(flatten)]
    pub search: Box<SearchArgs>,

    /// Start the measured window at this wall-clock time, RFC 3339
    /// (`2026-12-01T06:00:00Z`) or Unix seconds; connecting and the warm-up come first.
    #[arg(long, value_name = "TIME", value_parser = parse_start_at)]
    pub start_at: Option<SystemTime>,

    /// Send a PROXY protocol header first on every connection, as a load
    /// balancer does: `v1` (text) or `v2` (binary).
    #[arg(long, value_name = "v1|v2", help_heading = "PROXY protocol")]
    pub proxy_header: Option<proxy::Version>,
    /// The synthetic clients the headers claim, one per connection (and churn
    /// session), in order: `CIDR[:PORTS]`, e.g. `10.0.0.0/16:1024-65535`.
    #[arg(long, value_name = "RANGE", requires = "proxy_header",
          default_value = bench::DEFAULT_PROXY_SOURCE, help_heading = "PROXY protocol")]
    pub proxy_source: proxy::SourceRange,
    /// Send malformed PROXY headers instead of requests (`-w churn`): one kind
    /// or `all` (round robin); a session passes when the receiver closes without a byte.
    #[arg(long, value_name = "KIND|all", value_parser = parse_malformed,
          conflicts_with = "proxy_header", help_heading = "PROXY protocol")]
    pub proxy_malformed: Option<Malformed>,

    /// Speak TLS over every connection (after the PROXY header): the server's
    /// certificate is verified against the system's roots (or --cacert) and
    /// the host name. Each churn session is a full handshake (see --tls-resume).
    #[arg(long, help_heading = "TLS")]
    pub tls: bool,
    /// Resume TLS sessions from earlier connections (the server's tickets or
    /// session IDs), as a returning browser does: churn then measures resumed
    /// handshakes instead of full ones.
    #[arg(long, requires = "tls", help_heading = "TLS")]
    pub tls_resume: bool,
    /// Trust only the CA certificates in this PEM file.
    #[arg(long, value_name = "FILE", requires = "tls", help_heading = "TLS")]
    pub cacert: Option<PathBuf>,
    /// Do not verify the server's certificate (its handshake signature still is).
    #[arg(short = 'k', long, requires = "tls", help_heading = "TLS")]
    pub insecure: bool,
    /// Name for SNI and for checking the certificate, instead of the host of ADDR.
    #[arg(long, value_name = "NAME", requires = "tls", help_heading = "TLS")]
    pub sni: Option<String>,
}

/// Malformed PROXY header kinds to send (`--proxy-malformed`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Malformed(pub Vec<proxy::Malformed>);

/// One kind by name, or `all`.
pub fn parse_malformed(s: &str) -> Result<Malformed, String> {
    if s == "all" {
        return Ok(Malformed(proxy::Malformed::ALL.to_vec()));
    }
    Ok(Malformed(vec![s.parse()?]))
}

/// Flags of `--find-max-rate`.
#[derive(Debug, Clone, Args)]
pub struct SearchArgs {
    /// Search for the highest open-loop rate that meets `--slo` with zero errors:
    /// short steps of `--step-duration`, doubling from `--min-rate`, then bisecting.
    /// With `--shard` (and `--start-at`, `--hdr-log`): every agent runs the same
    /// `--max-steps` rates, geometric from `--min-rate` to `--max-rate`, at the
    /// same times; `tcpkit bench merge` of the logs judges each step and answers.
    #[arg(long, conflicts_with_all = ["rate", "requests"])]
    pub find_max_rate: bool,

    /// The latency target of `--find-max-rate`: `p99<=10ms`, or several, `p50<=1ms,p99<=10ms`.
    #[arg(long, value_name = "TARGET", default_value = "p99<=10ms", requires = "find_max_rate")]
    pub slo: bench::search::Slo,

    /// The first (lowest) rate `--find-max-rate` tries, requests per second.
    #[arg(long, value_name = "R", default_value_t = bench::search::DEFAULT_MIN_RATE, requires = "find_max_rate")]
    pub min_rate: f64,

    /// The highest rate `--find-max-rate` tries.
    #[arg(long, value_name = "R", default_value_t = bench::search::DEFAULT_MAX_RATE, requires = "find_max_rate")]
    pub max_rate: f64,

    /// Most steps `--find-max-rate` runs.
    #[arg(long, value_name = "N", default_value_t = bench::search::DEFAULT_STEPS, requires = "find_max_rate",
          value_parser = clap::value_parser!(u32).range(1..=i64::from(bench::search::MAX_STEPS)))]
    pub max_steps: u32,

    /// Measured time of each `--find-max-rate` step (after `--warmup`).
    #[arg(long, value_name = "TIME", default_value_t = Time(bench::search::DEFAULT_STEP), requires = "find_max_rate")]
    pub step_duration: Time,

    /// With `--shard`: time from one step's end to the next step's warm-up, for
    /// replies to drain and connections to close and open again. Step K's window
    /// opens at `--start-at` + K x (warm-up + step + gap).
    #[arg(long, value_name = "TIME", default_value_t = Time(bench::search::DEFAULT_STEP_GAP), requires = "find_max_rate")]
    pub step_gap: Time,
}

/// What `tcpkit bench` does besides running.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum BenchCommand {
    /// Add up the interval logs of agents (`--hdr-log`) and report as one run:
    /// totals, rate, percentiles of the summed histograms, errors, a per-agent
    /// table, the start spread, and warnings when the logs do not fit together.
    Merge(MergeArgs),
}

/// Flags of `tcpkit bench merge`.
#[derive(Debug, Clone, Args)]
pub struct MergeArgs {
    /// The logs, one per agent (`-` reads stdin).
    #[arg(value_name = "FILE", required = true)]
    pub files: Vec<PathBuf>,

    /// Print the result as one JSON object (with `agents`, `timeline`, `warnings`).
    #[arg(long)]
    pub json: bool,

    /// Write a chart of the merged rate and p50/p99 over time to this SVG file.
    #[arg(long, value_name = "FILE.svg")]
    pub plot: Option<PathBuf>,

    /// Exit 0 even when the agents counted errors.
    #[arg(long)]
    pub allow_errors: bool,

    /// Refuse a log longer than this many bytes (each is read whole, one at a time).
    #[arg(long, value_name = "N", default_value_t = bench::merge::DEFAULT_MAX_LOG_BYTES)]
    pub max_log_bytes: u64,
}

/// Run `tcpkit bench merge`.
pub fn merge(args: &MergeArgs) -> Result<(), Failure> {
    let local = |e: String| Failure::new(exit_code(&Ending::Local), format!("bench merge: {e}"));
    let outcome =
        bench::merge::merge_paths(&args.files, args.max_log_bytes).map_err(|e| local(e.to_string()))?;
    let mut stdout = std::io::stdout().lock();
    let merged = match outcome {
        bench::merge::Outcome::Run(merged) => merged,
        bench::merge::Outcome::Search(found) => {
            let printed = if args.json {
                writeln!(stdout, "{}", found.json())
            } else {
                write!(stdout, "{}", found.text())
            };
            // A closed stdout loses the report, not the verdict.
            drop(printed);
            if let Some(path) = &args.plot {
                found.search.plot(path).map_err(local)?;
            }
            return match exit_code(&Ending::Searched { found: found.found() }) {
                0 => Ok(()),
                code => Err(Failure::new(code, format!("bench merge: no step met {}", found.search.slo()))),
            };
        }
    };
    let printed =
        if args.json { writeln!(stdout, "{}", merged.json()) } else { write!(stdout, "{}", merged.text()) };
    // A closed stdout loses the report, not the verdict.
    drop(printed);
    if let Some(path) = &args.plot {
        merged.report.plot(path).map_err(local)?;
    }
    match exit_code(&Ending::Ran { report: &merged.report, allow_errors: args.allow_errors }) {
        0 => Ok(()),
        code => Err(Failure::new(code, merged.report.verdict().unwrap_or_default())),
    }
}

/// `--shard I/N` as typed; `index` is `None` for `N` alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShardArg {
    /// `I`, when given.
    pub index: Option<u32>,
    /// `N`.
    pub count: u32,
}

/// The environment variable Kubernetes Indexed Jobs set to the pod's index.
pub const JOB_INDEX_VAR: &str = "JOB_COMPLETION_INDEX";

/// Parse `--shard`: `I/N` or `N`.
pub fn parse_shard(s: &str) -> Result<ShardArg, String> {
    let bad = || format!("not I/N or N: {s:?}");
    let (index, count) = match s.split_once('/') {
        Some((i, n)) if i.trim().is_empty() => (None, n),
        Some((i, n)) => (Some(i.trim().parse().map_err(|_| bad())?), n),
        None => (None, s),
    };
    let count: u32 = count.trim().parse().map_err(|_| bad())?;
    if count == 0 || count > bench::MAX_SHARDS || index.is_some_and(|i| i >= count) {
        return Err(format!("--shard {s}: needs 0 <= I < N <= {}", bench::MAX_SHARDS));
    }
    Ok(ShardArg { index, count })
}

/// Parse `--start-at`: RFC 3339 or (fractional) Unix seconds.
pub fn parse_start_at(s: &str) -> Result<SystemTime, String> {
    let s = s.trim();
    if let Ok(secs) = s.parse::<f64>() {
        if !(secs.is_finite() && (0.0..4e9).contains(&secs)) {
            return Err(format!("not a Unix time: {s:?}"));
        }
        return Ok(SystemTime::UNIX_EPOCH + Duration::from_secs_f64(secs));
    }
    let t = time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
        .map_err(|e| format!("not RFC 3339 or Unix seconds: {s:?} ({e})"))?;
    Ok(SystemTime::from(t))
}

impl BenchArgs {
    /// The library's configuration for these flags; `env` reads the environment
    /// (for `--shard N`).
    pub fn config(&self, env: impl Fn(&str) -> Option<String>) -> Result<Config, String> {
        let mut c = Config::new(self.addr.clone().unwrap_or_default());
        c.workload = self.workload;
        c.connections = self.connections;
        c.duration = self.duration.map(|t| t.0);
        c.requests = self.requests;
        c.warmup = self.warmup.0;
        c.message = self.message.clone();
        c.reply = self.reply.clone();
        c.greeting = self.greeting.clone();
        c.quit = self.quit.clone();
        c.rate = self.rate;
        c.pipeline = self.pipeline;
        c.sources = self.source.as_ref().map(|s| s.0.clone()).unwrap_or_default();
        c.connect_timeout = self.connect_timeout.0;
        c.connect_concurrency = self.connect_concurrency;
        c.timeout = self.timeout.0;
        c.show_errors = self.show_errors;
        c.intervals = self.hdr_log.is_some().then_some(self.hdr_interval.0);
        c.start_at = self.start_at;
        c.proxy = self
            .proxy_header
            .map(|version| bench::ProxyHeader { version, source: self.proxy_source.clone() });
        c.tls = self.tls.then(|| bench::Tls {
            cacert: self.cacert.clone(),
            insecure: self.insecure,
            sni: self.sni.clone(),
            resume: self.tls_resume,
        });
        c.proxy_malformed = self.proxy_malformed.as_ref().map(|m| m.0.clone()).unwrap_or_default();
        if let Some(shard) = self.shard {
            let index = match shard.index {
                Some(i) => i,
                None => {
                    let v = env(JOB_INDEX_VAR).ok_or_else(|| {
                        format!("--shard {}: no index given and {JOB_INDEX_VAR} is not set", shard.count)
                    })?;
                    v.trim().parse().map_err(|_| format!("{JOB_INDEX_VAR}={v:?} is not a number"))?
                }
            };
            c.shard = Some(bench::Shard { index, count: shard.count });
        }
        Ok(c)
    }

    /// The agent name for `--hdr-log`.
    fn agent_name(&self, config: &Config) -> String {
        if let Some(a) = &self.agent {
            return a.clone();
        }
        let host = std::env::var("HOSTNAME")
            .ok()
            .or_else(|| std::fs::read_to_string("/proc/sys/kernel/hostname").ok())
            .map(|h| h.trim().to_string())
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| "agent".into());
        match config.shard {
            Some(s) => format!("{host}-{}", s.index),
            None => host,
        }
    }
}

/// The observers of a command-line run: the status line and the interval log.
struct Observers {
    status: Status,
    log: Option<HdrLogWriter<Box<dyn Write + Send>>>,
}

impl Observer for Observers {
    fn progress(&mut self, p: &Progress) {
        self.status.progress(p);
    }
    fn started(&mut self, s: &Started) {
        if let Some(l) = &mut self.log {
            l.started(s);
        }
    }
    fn interval(&mut self, iv: &Interval<'_>) {
        if let Some(l) = &mut self.log {
            l.interval(iv);
        }
    }
    fn step(&mut self, step: &bench::search::StepStart) {
        if let Some(l) = &mut self.log {
            l.step(step);
        }
    }
    fn step_done(&mut self, report: &Report) {
        if let Some(l) = &mut self.log {
            l.step_done(report);
        }
    }
}

/// How a `tcpkit bench` run ended, as far as its exit code cares.
#[derive(Debug)]
pub enum Ending<'a> {
    /// The run finished; `allow_errors` is `--allow-errors`.
    Ran {
        /// What it measured.
        report: &'a Report,
        /// `--allow-errors`.
        allow_errors: bool,
    },
    /// The run could not start.
    Refused(&'a BenchError),
    /// Flags that clap accepted but that do not fit together (or the environment).
    BadFlags,
    /// Something on this machine failed: the runtime, or writing the chart.
    Local,
    /// `--find-max-rate` ended; `found` when some rate met the target.
    Searched {
        /// Whether any rate met the target.
        found: bool,
    },
}

/// The exit code: 0 when every reply was verified (or `--allow-errors`), 1 for
/// errors in the run or on this machine, 2 for settings that cannot be used.
pub fn exit_code(ending: &Ending<'_>) -> u8 {
    match ending {
        Ending::Ran { report, allow_errors } => u8::from(report.verdict().is_some() && !allow_errors),
        Ending::Refused(e) if e.is_usage() => 2,
        Ending::BadFlags => 2,
        Ending::Searched { found } => u8::from(!found),
        Ending::Refused(_) | Ending::Local => 1,
    }
}

/// Run `tcpkit bench` as the flags say: print the report, then end with the verdict.
pub fn run(args: BenchArgs) -> Result<(), Failure> {
    if let Some(BenchCommand::Merge(m)) = &args.command {
        return merge(m);
    }
    let config = args
        .config(|k| std::env::var(k).ok())
        .map_err(|e| Failure::new(exit_code(&Ending::BadFlags), format!("bench: {e}")))?;
    let to_stdout = args.hdr_log.as_deref() == Some(std::path::Path::new("-"));
    let log = match &args.hdr_log {
        None => None,
        Some(_) if to_stdout => {
            let out: Box<dyn Write + Send> = Box::new(std::io::stdout());
            Some(HdrLogWriter::new(out, &config, &args.agent_name(&config)))
        }
        Some(path) => {
            let file = std::fs::File::create(path).map_err(|e| {
                Failure::new(exit_code(&Ending::Local), format!("bench: --hdr-log {}: {e}", path.display()))
            })?;
            let out: Box<dyn Write + Send> = Box::new(std::io::BufWriter::new(file));
            Some(HdrLogWriter::new(out, &config, &args.agent_name(&config)))
        }
    };
    // Many connections need many descriptors; the hard limit is the most we may use.
    crate::net::raise_open_file_limit();
    let rt = crate::net::runtime(args.threads as usize)
        .map_err(|e| Failure::new(exit_code(&Ending::Local), format!("bench: runtime: {e}")))?;
    let status = Status { on: !args.quiet && std::io::stderr().is_terminal(), last: None };
    if args.search.find_max_rate {
        return search(&args, &config, &rt, Observers { status, log });
    }
    let mut observers = Observers { status, log };
    let result = rt.block_on(bench::run_with(&config, &mut observers));
    observers.status.clear();
    let report = match &result {
        Ok(r) => r,
        Err(e) => return Err(Failure::new(exit_code(&Ending::Refused(e)), format!("bench: {e}"))),
    };
    let log_failed = observers.log.map(|l| l.finish(report)).and_then(Result::err);
    // With the log on stdout, the report goes to stderr.
    let mut out: Box<dyn Write> =
        if to_stdout { Box::new(std::io::stderr().lock()) } else { Box::new(std::io::stdout().lock()) };
    let printed =
        if args.json { writeln!(out, "{}", report.json()) } else { write!(out, "{}", report.text()) };
    // A closed stdout loses the report, not the verdict.
    drop(printed);
    drop(out);
    if let Some(e) = log_failed {
        return Err(Failure::new(exit_code(&Ending::Local), format!("bench: --hdr-log: {e}")));
    }
    if let Some(path) = &args.plot {
        report.plot(path).map_err(|e| Failure::new(exit_code(&Ending::Local), format!("bench: {e}")))?;
    }
    match exit_code(&Ending::Ran { report, allow_errors: args.allow_errors }) {
        0 => Ok(()),
        code => Err(Failure::new(code, report.verdict().unwrap_or_default())),
    }
}

/// `--find-max-rate`: run the search, print its steps and answer, plot it. With
/// `--shard`, run the fixed schedule, logging every step to `--hdr-log`.
fn search(
    args: &BenchArgs,
    config: &Config,
    rt: &tokio::runtime::Runtime,
    mut observers: Observers,
) -> Result<(), Failure> {
    let bad = |what: &str| Failure::new(exit_code(&Ending::BadFlags), format!("bench: {what}"));
    match (config.shard.is_some(), observers.log.is_some()) {
        (true, false) => {
            return Err(bad(
                "--find-max-rate with --shard needs --hdr-log: the merge of the logs judges the steps",
            ));
        }
        (false, true) => return Err(bad("--hdr-log with --find-max-rate needs --shard")),
        _ => {}
    }
    let search = bench::search::SearchConfig {
        slo: args.search.slo.clone(),
        min_rate: args.search.min_rate,
        max_rate: args.search.max_rate,
        steps: args.search.max_steps,
        step: args.search.step_duration.0,
        gap: args.search.step_gap.0,
    };
    let result = rt.block_on(bench::search::find_max_rate(config, search, &mut observers));
    observers.status.clear();
    let found = match &result {
        Ok(s) => s,
        Err(e) => return Err(Failure::new(exit_code(&Ending::Refused(e)), format!("bench: {e}"))),
    };
    let log_failed = observers.log.map(HdrLogWriter::close).and_then(Result::err);
    // With the log on stdout, the steps go to stderr.
    let to_stdout = args.hdr_log.as_deref() == Some(std::path::Path::new("-"));
    let mut out: Box<dyn Write> =
        if to_stdout { Box::new(std::io::stderr().lock()) } else { Box::new(std::io::stdout().lock()) };
    let printed = if args.json { writeln!(out, "{}", found.json()) } else { write!(out, "{}", found.text()) };
    // A closed stdout loses the report, not the verdict.
    drop(printed);
    drop(out);
    if let Some(e) = log_failed {
        return Err(Failure::new(exit_code(&Ending::Local), format!("bench: --hdr-log: {e}")));
    }
    if let Some(path) = &args.plot {
        found.plot(path).map_err(|e| Failure::new(exit_code(&Ending::Local), format!("bench: {e}")))?;
    }
    // A shard ran its steps: the verdict is the merge's.
    let found = found.best().is_some() || found.shard.is_some();
    match exit_code(&Ending::Searched { found }) {
        0 => Ok(()),
        code => Err(Failure::new(code, format!("bench: no rate tried met {}", args.search.slo))),
    }
}

/// The live status line on stderr, only when it is a terminal.
struct Status {
    on: bool,
    /// When the last line was drawn and the verified count then, for the rate.
    last: Option<(std::time::Instant, u64)>,
}

impl Observer for Status {
    fn progress(&mut self, p: &Progress) {
        if !self.on {
            return;
        }
        let now = std::time::Instant::now();
        let (then, verified) = self.last.unwrap_or((now, p.verified));
        let per_s = bench::stats::rate(p.verified - verified, now - then);
        self.last = Some((now, p.verified));
        let line = format!(
            "\r\x1b[K{}: {} connected, {} failed, {per_s:.0}/s verified, {} errors",
            p.phase, p.established, p.connect_failed, p.errors
        );
        let _ = std::io::stderr().write_all(line.as_bytes());
    }
}

impl Status {
    fn clear(&self) {
        if self.on {
            let _ = std::io::stderr().write_all(b"\r\x1b[K");
        }
    }
}

/// A duration flag: `10`, `2.5`, `10s`, `500ms` or `2m`; shown in the help the same way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Time(pub Duration);

impl FromStr for Time {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        parse_duration(s).map(Time)
    }
}

impl fmt::Display for Time {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = self.0.as_millis();
        if ms % 1000 == 0 { write!(f, "{}s", ms / 1000) } else { write!(f, "{ms}ms") }
    }
}

/// Source addresses for `--source`, in the order given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sources(pub Vec<IpAddr>);

/// Most addresses one `--source` may expand to: each is a full port range, so a
/// few dozen already allow millions of connections.
pub const MAX_SOURCES: usize = 4096;

/// A path the report can be written to: opened for writing now (without
/// truncating an existing file), and removed again if this check created it.
pub fn writable_file(s: &str) -> Result<PathBuf, String> {
    let path = PathBuf::from(s);
    let existed = path.symlink_metadata().is_ok();
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(|e| format!("cannot write {s}: {e}"))?;
    if !existed {
        // Best effort: the run writes the file again at the end anyway.
        let _ = std::fs::remove_file(&path);
    }
    Ok(path)
}

/// Parse `--source`: comma-separated addresses or inclusive ranges `A-B` of the
/// same family (ranges may differ only in their last 16 bits for IPv6).
pub fn parse_sources(s: &str) -> Result<Sources, String> {
    let mut out = Vec::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (a, b) = match part.split_once('-') {
            Some((a, b)) => (a.trim(), b.trim()),
            None => (part, part),
        };
        let a: IpAddr = a.parse().map_err(|_| format!("not an IP address: {a:?}"))?;
        let b: IpAddr = b.parse().map_err(|_| format!("not an IP address: {b:?}"))?;
        let (lo, hi) = match (a, b) {
            (IpAddr::V4(a), IpAddr::V4(b)) => (u128::from(u32::from(a)), u128::from(u32::from(b))),
            (IpAddr::V6(a), IpAddr::V6(b)) => (u128::from(a), u128::from(b)),
            _ => return Err(format!("range mixes IPv4 and IPv6: {part:?}")),
        };
        if hi < lo {
            return Err(format!("range runs backwards: {part:?}"));
        }
        if hi - lo >= MAX_SOURCES as u128 || out.len() + ((hi - lo) as usize) >= MAX_SOURCES {
            return Err(format!("too many source addresses (limit {MAX_SOURCES})"));
        }
        for n in lo..=hi {
            out.push(match a {
                // In range: lo..=hi came from two u32s.
                IpAddr::V4(_) => IpAddr::V4(std::net::Ipv4Addr::from(n as u32)),
                IpAddr::V6(_) => IpAddr::V6(std::net::Ipv6Addr::from(n)),
            });
        }
    }
    if out.is_empty() {
        return Err("no source address given".into());
    }
    Ok(Sources(out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::{Cli, Command};
    use clap::Parser;

    fn bench(args: &[&str]) -> BenchArgs {
        let mut argv = vec!["tcpkit", "bench"];
        argv.extend_from_slice(args);
        match Cli::try_parse_from(argv).expect("parses").command {
            Command::Bench(a) => a,
            other => panic!("not bench: {other:?}"),
        }
    }

    fn fails(args: &[&str]) -> bool {
        let mut argv = vec!["tcpkit", "bench"];
        argv.extend_from_slice(args);
        Cli::try_parse_from(argv).is_err()
    }

    #[test]
    fn defaults_are_a_short_closed_loop_hello() {
        let a = bench(&["127.0.0.1:9999"]);
        assert_eq!(a.addr.as_deref(), Some("127.0.0.1:9999"));
        assert_eq!(a.workload, Workload::Hello);
        assert_eq!(a.connections, 10);
        assert_eq!(a.duration, None);
        assert_eq!(a.requests, None);
        assert_eq!(a.warmup.0, Duration::ZERO);
        assert_eq!(a.message, "client{conn}-{seq}");
        assert_eq!(a.reply, None);
        assert_eq!(a.greeting, None);
        assert_eq!(a.quit, "exit");
        assert_eq!(a.rate, None);
        assert_eq!(a.pipeline, 1);
        assert_eq!(a.source, None);
        assert_eq!(a.connect_timeout.0, Duration::from_secs(5));
        assert_eq!(a.connect_concurrency, 128);
        assert_eq!(a.timeout.0, Duration::from_secs(10));
        assert!(!a.allow_errors && !a.json && !a.quiet);
        assert_eq!(a.show_errors, 5);
        assert_eq!(a.plot, None);
        assert_eq!(a.threads, 1);
    }

    #[test]
    fn every_flag_parses() {
        let a = bench(&[
            "[::1]:7000",
            "-w",
            "churn",
            "-c",
            "1000",
            "-d",
            "30s",
            "-n",
            "5000",
            "--warmup",
            "500ms",
            "-m",
            "x{seq}",
            "--reply",
            "Hi {}",
            "--greeting",
            "",
            "--quit",
            "bye",
            "-r",
            "2500.5",
            "--pipeline",
            "4",
            "--source",
            "127.0.0.1-127.0.0.3",
            "--connect-timeout",
            "2",
            "--connect-concurrency",
            "64",
            "--timeout",
            "1m",
            "--allow-errors",
            "--show-errors",
            "2",
            "--json",
            "--plot",
            "out.svg",
            "--threads",
            "2",
            "-q",
        ]);
        assert_eq!(a.addr.as_deref(), Some("[::1]:7000"));
        assert_eq!(a.workload, Workload::Churn);
        assert_eq!(a.connections, 1000);
        assert_eq!(a.duration, Some(Time(Duration::from_secs(30))));
        assert_eq!(a.requests, Some(5000));
        assert_eq!(a.warmup.0, Duration::from_millis(500));
        assert_eq!(a.message, "x{seq}");
        assert_eq!(a.reply.as_deref(), Some("Hi {}"));
        assert_eq!(a.greeting.as_deref(), Some(""));
        assert_eq!(a.quit, "bye");
        assert_eq!(a.rate, Some(2500.5));
        assert_eq!(a.pipeline, 4);
        assert_eq!(a.source.unwrap().0.len(), 3);
        assert_eq!(a.connect_timeout.0, Duration::from_secs(2));
        assert_eq!(a.connect_concurrency, 64);
        assert_eq!(a.timeout.0, Duration::from_secs(60));
        assert!(a.allow_errors && a.json && a.quiet);
        assert_eq!(a.show_errors, 2);
        assert_eq!(a.plot, Some(PathBuf::from("out.svg")));
        assert_eq!(a.threads, 2);
    }

    #[test]
    fn workloads_by_name() {
        for (name, w) in [
            ("hello", Workload::Hello),
            ("echo", Workload::Echo),
            ("churn", Workload::Churn),
            ("hold", Workload::Hold),
        ] {
            assert_eq!(bench(&["a:1", "--workload", name]).workload, w);
        }
        assert!(fails(&["a:1", "-w", "ping"]));
    }

    #[test]
    fn bad_values_are_rejected() {
        assert!(fails(&[]));
        assert!(fails(&["a:1", "-c", "0"]));
        assert!(fails(&["a:1", "-d", "soon"]));
        assert!(fails(&["a:1", "-d", "-1"]));
        assert!(fails(&["a:1", "--pipeline", "0"]));
        assert!(fails(&["a:1", "--source", "127.0.0.9-127.0.0.1"]));
        assert!(fails(&["a:1", "--source", "127.0.0.1-::1"]));
        assert!(fails(&["a:1", "--source", "10.0.0.0-10.1.0.0"]));
        assert!(fails(&["a:1", "--threads", "0"]));
    }

    #[test]
    fn the_defaults_are_the_librarys() {
        let a = bench(&["127.0.0.1:9999"]);
        assert_eq!(a.config(|_| None).unwrap(), Config::new("127.0.0.1:9999"));
        // And every flag lands in its field.
        let a = bench(&[
            "h:1",
            "-w",
            "echo",
            "-c",
            "3",
            "-d",
            "2",
            "-n",
            "9",
            "--warmup",
            "1",
            "-m",
            "m",
            "--reply",
            "r{}",
            "--greeting",
            "g",
            "--quit",
            "q",
            "-r",
            "5",
            "--pipeline",
            "2",
            "--source",
            "10.0.0.1",
            "--connect-timeout",
            "3",
            "--connect-concurrency",
            "4",
            "--timeout",
            "6",
            "--show-errors",
            "7",
        ]);
        let mut want = Config::new("h:1");
        want.workload = Workload::Echo;
        want.connections = 3;
        want.duration = Some(Duration::from_secs(2));
        want.requests = Some(9);
        want.warmup = Duration::from_secs(1);
        want.message = "m".into();
        want.reply = Some("r{}".into());
        want.greeting = Some("g".into());
        want.quit = "q".into();
        want.rate = Some(5.0);
        want.pipeline = 2;
        want.sources = vec!["10.0.0.1".parse().unwrap()];
        want.connect_timeout = Duration::from_secs(3);
        want.connect_concurrency = 4;
        want.timeout = Duration::from_secs(6);
        want.show_errors = 7;
        assert_eq!(a.config(|_| None).unwrap(), want);
    }

    #[test]
    fn durations_show_in_the_help_as_they_are_typed() {
        assert_eq!(Time(Duration::from_secs(5)).to_string(), "5s");
        assert_eq!(Time(Duration::from_millis(250)).to_string(), "250ms");
        assert_eq!(Time(Duration::ZERO).to_string(), "0s");
        assert_eq!("500ms".parse::<Time>(), Ok(Time(Duration::from_millis(500))));
    }

    #[test]
    fn proxy_flags_map_to_the_config() {
        let none = |_: &str| None;
        let c = bench(&["a:1"]).config(none).unwrap();
        assert_eq!((c.proxy, c.proxy_malformed.len()), (None, 0));
        let c = bench(&["a:1", "--proxy-header", "v2"]).config(none).unwrap();
        let p = c.proxy.unwrap();
        assert_eq!(
            (p.version, p.source.to_string()),
            (proxy::Version::V2, "198.18.0.0/15:1024-65535".into())
        );
        let c =
            bench(&["a:1", "--proxy-header", "1", "--proxy-source", "10.0.0.0/8:99"]).config(none).unwrap();
        assert_eq!(c.proxy.unwrap().source.nth(1).to_string(), "10.0.0.1:99");
        let c = bench(&["a:1", "-w", "churn", "--proxy-malformed", "all"]).config(none).unwrap();
        assert_eq!(c.proxy_malformed, proxy::Malformed::ALL);
        let c = bench(&["a:1", "-w", "churn", "--proxy-malformed", "v1-too-long"]).config(none).unwrap();
        assert_eq!(c.proxy_malformed, [proxy::Malformed::V1TooLong]);
        assert!(fails(&["a:1", "--proxy-source", "10.0.0.0/8"]), "needs --proxy-header");
        assert!(fails(&["a:1", "--proxy-header", "v3"]));
        assert!(fails(&["a:1", "--proxy-header", "v1", "--proxy-source", "10.0.0.1/8"]), "host bits");
    }

    /// Every exit code the README documents, and what leads to it.
    #[test]
    fn exit_codes_follow_the_readme() {
        use crate::bench::conn::ErrorLog;
        let clean = Report::for_tests(ErrorLog::default());
        let mut log = ErrorLog::default();
        log.counts.insert("reset".into(), 1);
        let failed = Report::for_tests(log);
        let bad_rate = BenchError::Rate(0.0);
        let bad_addr = BenchError::Address("nowhere".into());
        let unresolved = BenchError::Resolve(crate::net::connect::ConnectError::Resolve {
            host: "x.invalid".into(),
            source: std::io::Error::other("no such host"),
        });
        let table: [(Ending<'_>, u8); 10] = [
            (Ending::Searched { found: true }, 0),
            (Ending::Searched { found: false }, 1),
            (Ending::BadFlags, 2),
            (Ending::Ran { report: &clean, allow_errors: false }, 0),
            (Ending::Ran { report: &failed, allow_errors: true }, 0),
            (Ending::Ran { report: &failed, allow_errors: false }, 1),
            (Ending::Refused(&unresolved), 1),
            (Ending::Local, 1),
            (Ending::Refused(&bad_rate), 2),
            (Ending::Refused(&bad_addr), 2),
        ];
        for (ending, code) in &table {
            assert_eq!(exit_code(ending), *code, "{ending:?}");
        }
    }

    #[test]
    fn shards_take_their_index_from_the_flag_or_the_job() {
        let a = bench(&["h:1", "--shard", "2/4", "-c", "8"]);
        assert_eq!(a.config(|_| None).unwrap().shard, Some(bench::Shard { index: 2, count: 4 }));
        let a = bench(&["h:1", "--shard", "4", "-c", "8"]);
        let job = |k: &str| (k == JOB_INDEX_VAR).then(|| "3".to_string());
        assert_eq!(a.config(job).unwrap().shard, Some(bench::Shard { index: 3, count: 4 }));
        let err = a.config(|_| None).unwrap_err();
        assert!(err.contains("JOB_COMPLETION_INDEX is not set"), "{err}");
        assert!(a.config(|_| Some("x".into())).is_err());
        assert!(fails(&["h:1", "--shard", "4/4"]));
        assert!(fails(&["h:1", "--shard", "0"]));
        assert!(fails(&["h:1", "--shard", "a/b"]));
    }

    #[test]
    fn start_times_are_rfc3339_or_unix_seconds() {
        let t = |s| parse_start_at(s).unwrap().duration_since(SystemTime::UNIX_EPOCH).unwrap();
        assert_eq!(t("1764568800"), Duration::from_secs(1_764_568_800));
        assert_eq!(t("1764568800.5"), Duration::from_millis(1_764_568_800_500));
        assert_eq!(t("2025-12-01T06:00:00Z"), Duration::from_secs(1_764_568_800));
        assert_eq!(t("2025-12-01T07:00:00+01:00"), Duration::from_secs(1_764_568_800));
        assert!(parse_start_at("tomorrow").is_err());
        assert!(parse_start_at("-5").is_err());
        assert!(parse_start_at("inf").is_err());
    }

    #[test]
    fn merge_is_a_subcommand_and_addr_is_required_otherwise() {
        let a = bench(&["merge", "a.hlog", "b.hlog", "--json"]);
        match a.command {
            Some(BenchCommand::Merge(m)) => {
                assert_eq!(m.files, [PathBuf::from("a.hlog"), PathBuf::from("b.hlog")]);
                assert!(m.json);
            }
            None => panic!("no subcommand"),
        }
        assert!(fails(&["merge"]));
        assert!(fails(&["-c", "3"]));
        assert!(bench(&["h:1", "--hdr-log", "-"]).config(|_| None).unwrap().intervals.is_some());
        assert!(bench(&["h:1"]).config(|_| None).unwrap().intervals.is_none());
    }

    #[test]
    fn durations_take_units() {
        assert_eq!(parse_duration("10"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("2.5"), Ok(Duration::from_millis(2500)));
        assert_eq!(parse_duration("2.5s"), Ok(Duration::from_millis(2500)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert!(parse_duration("").is_err());
        assert!(parse_duration("NaN").is_err());
        assert!(parse_duration("inf").is_err());
    }

    #[test]
    fn sources_expand_ranges_and_lists_in_order() {
        let s = parse_sources("127.0.0.1-127.0.0.3,10.0.0.9").unwrap();
        let want: Vec<IpAddr> =
            ["127.0.0.1", "127.0.0.2", "127.0.0.3", "10.0.0.9"].iter().map(|a| a.parse().unwrap()).collect();
        assert_eq!(s.0, want);
        let s = parse_sources("::1").unwrap();
        assert_eq!(s.0, vec!["::1".parse::<IpAddr>().unwrap()]);
        // Ranges cross octet boundaries.
        assert_eq!(parse_sources("10.0.0.255-10.0.1.0").unwrap().0.len(), 2);
        assert!(parse_sources(",").is_err());
    }

    #[test]
    fn plot_path_is_checked_before_the_run_and_left_as_it_was() {
        let parse = |args: &[&str]| {
            Cli::try_parse_from(["tcpkit", "bench"].iter().chain(args)).map(|c| match c.command {
                Command::Bench(a) => a,
                other => panic!("not bench: {other:?}"),
            })
        };
        let e = parse(&["--plot", "/nonexistent-dir/out.svg", "127.0.0.1:1"]).unwrap_err();
        assert!(e.to_string().contains("cannot write /nonexistent-dir/out.svg"), "{e}");
        let dir = tempfile::tempdir().unwrap();
        let fresh = dir.path().join("new.svg");
        let a = parse(&["--plot", fresh.to_str().unwrap(), "127.0.0.1:1"]).unwrap();
        assert_eq!(a.plot.as_deref(), Some(fresh.as_path()));
        assert!(!fresh.exists(), "the check must not leave an empty file behind");
        let old = dir.path().join("old.svg");
        std::fs::write(&old, "keep").unwrap();
        parse(&["--plot", old.to_str().unwrap(), "127.0.0.1:1"]).unwrap();
        assert_eq!(std::fs::read_to_string(&old).unwrap(), "keep");
    }
}
