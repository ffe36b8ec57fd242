//! Flags of `tcpkit bench`.
//!
//! Durations accept `10`, `2.5`, `10s`, `500ms` or `2m`; `--source` takes a range
//! (`127.0.0.1-127.0.0.8`), a list (`10.0.0.1,10.0.0.2`) or both.
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use super::duration::parse_duration;

use clap::{Args, ValueEnum};

/// Load-test a line-based TCP server, verifying every reply.
///
/// Every reply is compared byte for byte with what the workload expects; only
/// verified replies count. Exit status 1 if any error (a wrong reply, a short read,
/// a reset, a timeout, a failed connection) unless `--allow-errors`.
#[derive(Debug, Clone, Args)]
pub struct BenchArgs {
    /// Server address, HOST:PORT (`[::1]:9999` for IPv6).
    #[arg(value_name = "ADDR")]
    pub addr: String,

    /// What each connection does.
    #[arg(short, long, value_enum, default_value_t = Workload::Hello)]
    pub workload: Workload,

    /// Connections opened (and, for `churn`, kept busy) at once.
    #[arg(short, long, value_name = "N", default_value_t = 10,
          value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub connections: u32,

    /// How long to measure, after the warm-up. Without `-n`, 10 s.
    #[arg(short, long, value_name = "TIME", value_parser = parse_duration)]
    pub duration: Option<Duration>,

    /// Stop after this many measured requests (sessions for `churn`), in total.
    #[arg(short = 'n', long, value_name = "N")]
    pub requests: Option<u64>,

    /// Run this long before measuring; replies in it are verified but not counted.
    #[arg(long, value_name = "TIME", value_parser = parse_duration, default_value = "0")]
    pub warmup: Duration,

    /// The line each request sends, without its newline. `{conn}` is the connection
    /// number, `{seq}` the request number on that connection.
    #[arg(short, long, value_name = "TEMPLATE", default_value = "client{conn}-{seq}")]
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
    #[arg(long = "quit", value_name = "WORD", default_value = "exit")]
    pub quit: String,

    /// Replies per second in total: open loop, latency measured from each request's
    /// intended send time (coordinated omission corrected). Without it, closed loop.
    #[arg(short, long, value_name = "R")]
    pub rate: Option<f64>,

    /// Requests in flight per connection (hello and echo); replies are matched in order.
    #[arg(long, value_name = "N", default_value_t = 1,
          value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub pipeline: u32,

    /// Source addresses to connect from, spread round-robin over the connections:
    /// a range `127.0.0.1-127.0.0.8`, a list `a,b`, or both. Sockets are bound with
    /// `IP_BIND_ADDRESS_NO_PORT`, so each address has a port range per destination.
    #[arg(long, value_name = "ADDRS", value_parser = parse_sources)]
    pub source: Option<Sources>,

    /// Give up on a connection attempt after this long (counted as failed).
    #[arg(long, value_name = "TIME", value_parser = parse_duration, default_value = "5s")]
    pub connect_timeout: Duration,

    /// Connection attempts in flight at once: a burst larger than the server's
    /// accept queue loses SYNs, which each cost a 1 s retry.
    #[arg(long, value_name = "N", default_value_t = 128,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub connect_concurrency: u32,

    /// A reply (or the greeting, or the close after `quit`) not complete after
    /// this long is an error.
    #[arg(long, value_name = "TIME", value_parser = parse_duration, default_value = "10s")]
    pub timeout: Duration,

    /// Exit 0 even when there were errors (they are still counted and shown).
    #[arg(long)]
    pub allow_errors: bool,

    /// How many errors to show in full (connection, expected and received bytes).
    #[arg(long, value_name = "N", default_value_t = 5)]
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
}

/// What each connection does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Workload {
    /// Read the greeting, then send `<message>\n` and expect `Hello, <message>!\n`, repeatedly.
    Hello,
    /// Like hello with no greeting; the reply is the line itself.
    Echo,
    /// Connect, greeting, one hello, the quit word, wait for the close; counts sessions/s.
    Churn,
    /// Open the connections, read the greeting, stay idle for the duration; counts those held.
    Hold,
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
        assert_eq!(a.addr, "127.0.0.1:9999");
        assert_eq!(a.workload, Workload::Hello);
        assert_eq!(a.connections, 10);
        assert_eq!(a.duration, None);
        assert_eq!(a.requests, None);
        assert_eq!(a.warmup, Duration::ZERO);
        assert_eq!(a.message, "client{conn}-{seq}");
        assert_eq!(a.reply, None);
        assert_eq!(a.greeting, None);
        assert_eq!(a.quit, "exit");
        assert_eq!(a.rate, None);
        assert_eq!(a.pipeline, 1);
        assert_eq!(a.source, None);
        assert_eq!(a.connect_timeout, Duration::from_secs(5));
        assert_eq!(a.connect_concurrency, 128);
        assert_eq!(a.timeout, Duration::from_secs(10));
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
        assert_eq!(a.addr, "[::1]:7000");
        assert_eq!(a.workload, Workload::Churn);
        assert_eq!(a.connections, 1000);
        assert_eq!(a.duration, Some(Duration::from_secs(30)));
        assert_eq!(a.requests, Some(5000));
        assert_eq!(a.warmup, Duration::from_millis(500));
        assert_eq!(a.message, "x{seq}");
        assert_eq!(a.reply.as_deref(), Some("Hi {}"));
        assert_eq!(a.greeting.as_deref(), Some(""));
        assert_eq!(a.quit, "bye");
        assert_eq!(a.rate, Some(2500.5));
        assert_eq!(a.pipeline, 4);
        assert_eq!(a.source.unwrap().0.len(), 3);
        assert_eq!(a.connect_timeout, Duration::from_secs(2));
        assert_eq!(a.connect_concurrency, 64);
        assert_eq!(a.timeout, Duration::from_secs(60));
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
