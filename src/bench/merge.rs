//! `tcpkit bench merge`: add up agents' interval logs into one [`Report`], as if
//! one machine had run the whole load.
//!
//! Percentiles are never averaged: every interval's full histogram is added, in
//! total and per point of the timeline, and percentiles are taken from the sums
//! (the only exact way; averaging per-agent p99s is shown wrong in the tests).
//! Logs are read one at a time and their intervals added as they are decoded, so
//! memory holds the totals, not the logs.
//!
//! Not for: reading one log (`hdrlog.rs`) or drawing (`report.rs`).
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, SystemTime};

use hdrhistogram::Histogram;
use serde::Serialize;
use thiserror::Error;

use super::conn::ErrorLog;
use super::hdrlog::{self, Layout, LogError};
use super::report::Report;
use super::search::{Search, SearchConfig, Slo, Step, StepStart};
use super::stats::{Stats, new_histogram};

/// Most points on the merged timeline: longer runs get coarser points, so the
/// timeline's histograms stay within a few tens of MiB.
pub const MAX_TIMELINE: usize = 300;

/// Largest log read by default, in bytes: a 10-minute log at 1 s intervals is a
/// few MiB; this bounds memory against a wrong file.
pub const DEFAULT_MAX_LOG_BYTES: u64 = 256 << 20;

/// Errors kept in full across all agents.
pub const SHOWN_ERRORS: usize = 5;

/// One agent's line in the merged report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AgentRow {
    /// Its name.
    pub agent: String,
    /// `I/N`, when sharded.
    pub shard: Option<String>,
    /// Its connections.
    pub connections: u64,
    /// Its measured replies.
    pub verified: u64,
    /// Its 99th percentile, us.
    pub p99_us: u64,
    /// Its errors.
    pub errors: u64,
    /// How long after the earliest agent it started its window, seconds.
    pub start_offset_s: f64,
    /// False when its log has no last line (cut short).
    pub complete: bool,
}

/// One point of the merged timeline: every agent's intervals that started in it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TimelinePoint {
    /// Its start, seconds from the earliest agent's start.
    pub at_s: f64,
    /// Replies per second in it.
    pub rate: f64,
    /// Median latency, us.
    pub p50_us: u64,
    /// 99th percentile, us.
    pub p99_us: u64,
}

/// The merged result: the report of the whole, and what only a merge knows.
#[derive(Debug)]
pub struct Merged {
    /// The same report a single run gives, for the whole load.
    pub report: Report,
    /// One row per log, in the order given.
    pub agents: Vec<AgentRow>,
    /// Latest minus earliest start of the agents' windows.
    pub start_spread: Duration,
    /// Merged rate and percentiles over time.
    pub timeline: Vec<TimelinePoint>,
    /// What may make the sum misleading: differing workloads or targets,
    /// windows that do not overlap, logs cut short.
    pub warnings: Vec<String>,
}

/// Logs that cannot be merged.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum MergeError {
    /// No log given.
    #[error("no logs to merge")]
    Empty,
    /// A log could not be read.
    #[error("{name}: {source}")]
    Read {
        /// The log's name.
        name: String,
        /// Why.
        source: std::io::Error,
    },
    /// A log is not an interval log of ours.
    #[error("{name}: {source}")]
    Log {
        /// The log's name.
        name: String,
        /// Why.
        source: LogError,
    },
    /// Logs of a sharded `--find-max-rate` that do not fit together.
    #[error("{name}: {what}")]
    Steps {
        /// The log's name.
        name: String,
        /// Why.
        what: String,
    },
    /// A histogram that cannot be added (another unit or range).
    #[error("{name}: {what}")]
    Histogram {
        /// The log's name.
        name: String,
        /// Why.
        what: String,
    },
}

/// Most threads decoding logs at once; each holds one log's text.
pub const MAX_THREADS: usize = 8;

/// What `tcpkit bench merge` made of its logs.
#[derive(Debug)]
#[allow(clippy::large_enum_variant)] // One value per command; boxing buys nothing.
pub enum Outcome {
    /// Logs of one run: its merged report.
    Run(Merged),
    /// Logs of a sharded `--find-max-rate`: every step judged, and the answer.
    Search(MergedSearch),
}

/// Merge the logs at `paths` (`-` is stdin), each at most `max_bytes` long: the
/// steps of a sharded `--find-max-rate` when the first log holds steps, else one run.
pub fn merge_paths(paths: &[std::path::PathBuf], max_bytes: u64) -> Result<Outcome, MergeError> {
    let Some(first_path) = paths.first() else { return Err(MergeError::Empty) };
    let mut first = String::new();
    read_log(first_path, max_bytes, &mut first)?;
    if !is_step_log(&first) {
        return merge_files_with(paths, max_bytes, Some(first)).map(Outcome::Run);
    }
    // Step logs are short (a few steps of seconds): read them all, then merge by step.
    let mut texts = vec![(first_path.display().to_string(), first)];
    for path in &paths[1..] {
        let mut text = String::new();
        read_log(path, max_bytes, &mut text)?;
        texts.push((path.display().to_string(), text));
    }
    merge_search_texts(texts.iter().map(|(n, t)| (n.as_str(), t.as_str()))).map(Outcome::Search)
}

/// Merge the logs at `paths` (`-` is stdin), each at most `max_bytes` long.
/// Logs are decoded on up to [`MAX_THREADS`] threads (one per core), each
/// reading its logs one at a time; the agents keep the order given.
pub fn merge_files(paths: &[std::path::PathBuf], max_bytes: u64) -> Result<Merged, MergeError> {
    merge_files_with(paths, max_bytes, None)
}

/// [`merge_files`], with the first log's text already read when `first` is given.
fn merge_files_with(
    paths: &[std::path::PathBuf],
    max_bytes: u64,
    first: Option<String>,
) -> Result<Merged, MergeError> {
    let mut merger = Merger::default();
    let rest = match (&first, paths.first()) {
        (Some(text), Some(path)) => {
            merger.add_at(0, &path.display().to_string(), text)?;
            1
        }
        _ => 0,
    };
    drop(first);
    let todo = &paths[rest.min(paths.len())..];
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    // Stdin can be read only once, by one thread.
    let stdin = todo.iter().any(|p| p.as_os_str() == "-");
    let threads = if stdin { 1 } else { cores.min(MAX_THREADS).min(todo.len()).max(1) };
    let parts: Vec<Result<Merger, MergeError>> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|t| {
                scope.spawn(move || {
                    let mut merger = Merger::default();
                    let mut text = String::new();
                    for (i, path) in todo.iter().enumerate().filter(|(i, _)| i % threads == t) {
                        read_log(path, max_bytes, &mut text)?;
                        merger.add_at(rest + i, &path.display().to_string(), &text)?;
                    }
                    Ok(merger)
                })
            })
            .collect();
        let panicked =
            || Err(MergeError::Histogram { name: "merge".into(), what: "a decoding thread panicked".into() });
        workers.into_iter().map(|w| w.join().unwrap_or_else(|_| panicked())).collect()
    });
    for part in parts {
        merger.absorb(part?)?;
    }
    merger.finish()
}

/// True when the log's first `#tcpkit` line names a `--find-max-rate` step.
fn is_step_log(text: &str) -> bool {
    sections(text).first().and_then(|s| section_meta(s)).is_some_and(|m| m.step.is_some())
}

/// The log cut before each `#tcpkit {` line: one section per step of a sharded
/// search (lines before the first go with it).
fn sections(text: &str) -> Vec<&str> {
    let mut cuts: Vec<usize> = text
        .match_indices("#tcpkit {")
        .map(|(i, _)| i)
        .filter(|&i| i == 0 || text.as_bytes().get(i - 1) == Some(&b'\n'))
        .collect();
    // A cut at 0 would make an empty first section.
    cuts.retain(|&i| i != 0);
    let mut out = Vec::new();
    let mut from = 0;
    for cut in cuts {
        out.push(&text[from..cut]);
        from = cut;
    }
    out.push(&text[from..]);
    out
}

/// The first `#tcpkit` line of a section, parsed.
fn section_meta(section: &str) -> Option<hdrlog::Meta> {
    let line = section.lines().find_map(|l| l.strip_prefix("#tcpkit "))?;
    serde_json::from_str(line).ok()
}

/// Read one log into `text`, refusing one over `max_bytes`.
fn read_log(path: &std::path::Path, max_bytes: u64, text: &mut String) -> Result<(), MergeError> {
    use std::io::Read;
    let name = path.display().to_string();
    let read_err = |source| MergeError::Read { name: name.clone(), source };
    let input: Box<dyn Read> = if name == "-" {
        Box::new(std::io::stdin())
    } else {
        Box::new(std::fs::File::open(path).map_err(read_err)?)
    };
    text.clear();
    // One byte over the limit tells a log that is too long from one that fits.
    input.take(max_bytes.saturating_add(1)).read_to_string(text).map_err(read_err)?;
    if text.len() as u64 > max_bytes {
        return Err(read_err(std::io::Error::other(format!(
            "longer than {max_bytes} bytes (--max-log-bytes)"
        ))));
    }
    Ok(())
}

/// Merge logs given as (name, text).
pub fn merge_texts<'a>(logs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Result<Merged, MergeError> {
    let mut merger = Merger::default();
    for (name, text) in logs {
        merger.add(name, text)?;
    }
    merger.finish()
}

/// One agent, as read.
struct Agent {
    /// Its place in the order the logs were given.
    order: usize,
    info: hdrlog::AgentInfo,
    /// Its own histogram, for its row.
    hist: Histogram<u64>,
    /// Its errors summed from its intervals (used when the log has no last line).
    interval_errors: BTreeMap<String, u64>,
    /// End of its last interval, from its start.
    last: Duration,
}

/// Adds logs one at a time.
#[derive(Default)]
pub struct Merger {
    agents: Vec<Agent>,
    total: Option<Histogram<u64>>,
    /// Replies per whole second, by wall-clock second (Unix time, ms precision in the key).
    per_second: BTreeMap<i64, u64>,
    /// Counts per timeline point, by wall-clock second, as flat arrays indexed
    /// like [`Layout::ours`] (adding an interval is one addition per bucket it
    /// holds, no value lookup); long enough for the highest bucket seen, and
    /// thinned into [`MAX_TIMELINE`] histograms at the end. `u32` counts (a bucket
    /// of one second would need 4 billion replies to overflow; they saturate)
    /// halve their memory.
    points: BTreeMap<i64, Vec<u32>>,
    /// Set when adding the sections of one `--find-max-rate` step: step logs
    /// are refused otherwise (they hold several runs).
    of_steps: bool,
}

fn unix_ms(t: SystemTime) -> i64 {
    match t.duration_since(SystemTime::UNIX_EPOCH) {
        Ok(d) => d.as_millis() as i64,
        Err(e) => -(e.duration().as_millis() as i64),
    }
}

/// Timeline points are this wide before thinning: fine enough for 1 s intervals.
const POINT_MS: i64 = 1000;

impl Merger {
    /// Add the log `text`, called `name` in errors and the agent table.
    pub fn add(&mut self, name: &str, text: &str) -> Result<(), MergeError> {
        self.add_at(self.agents.len(), name, text)
    }

    /// Add everything `other` has read; its agents keep their places.
    pub fn absorb(&mut self, other: Merger) -> Result<(), MergeError> {
        if let Some(t) = other.total {
            let total = self.total.get_or_insert_with(new_histogram);
            total
                .add(&t)
                .map_err(|e| MergeError::Histogram { name: "merge".into(), what: format!("{e:?}") })?;
        }
        for (k, n) in other.per_second {
            *self.per_second.entry(k).or_default() += n;
        }
        for (k, counts) in other.points {
            match self.points.get_mut(&k) {
                Some(p) => add_flat(p, &counts),
                None => drop(self.points.insert(k, counts)),
            }
        }
        self.agents.extend(other.agents);
        self.agents.sort_by_key(|a| a.order);
        Ok(())
    }

    /// [`Merger::add`] for the log given at place `order`.
    fn add_at(&mut self, order: usize, name: &str, text: &str) -> Result<(), MergeError> {
        // The agent's counts by bucket index; made a histogram once, at its end.
        let mut flat: Vec<u64> = Vec::new();
        let limit = new_histogram().distinct_values();
        let mut interval_errors: BTreeMap<String, u64> = BTreeMap::new();
        let mut last = Duration::ZERO;
        let mut failed = None;
        let (per_second, points) = (&mut self.per_second, &mut self.points);
        let info = hdrlog::read_each_counts(text, |start, iv| {
            if failed.is_some() {
                return;
            }
            let at = unix_ms(start + iv.start);
            let point = points.entry(at.div_euclid(POINT_MS)).or_default();
            // Buckets come in increasing order: the last is the highest.
            if let Some(&(high, _)) = iv.histogram.buckets.last() {
                if high >= limit {
                    failed =
                        Some(format!("a latency beyond {} us (bucket {high})", super::stats::MAX_LATENCY_US));
                    return;
                }
                if flat.len() <= high {
                    flat.resize(high + 1, 0);
                }
                if point.len() <= high {
                    point.resize(high + 1, 0);
                }
            }
            for &(i, n) in &iv.histogram.buckets {
                flat[i] = flat[i].saturating_add(n);
                point[i] = point[i].saturating_add(u32::try_from(n).unwrap_or(u32::MAX));
            }
            for (k, n) in &iv.errors {
                *interval_errors.entry(k.clone()).or_default() += n;
            }
            last = last.max(iv.start + iv.length);
            *per_second.entry(at.div_euclid(1000)).or_default() += iv.histogram.total;
        })
        .map_err(|source| MergeError::Log { name: name.to_string(), source })?;
        if let Some(what) = failed {
            return Err(MergeError::Histogram { name: name.to_string(), what });
        }
        let mut hist = new_histogram();
        fill(&mut hist, &flat).map_err(|what| MergeError::Histogram { name: name.to_string(), what })?;
        // Once per agent, not per interval.
        let total = self.total.get_or_insert_with(new_histogram);
        total
            .add(&hist)
            .map_err(|e| MergeError::Histogram { name: name.to_string(), what: format!("{e:?}") })?;
        if info.meta.step.is_some() && !self.of_steps {
            return Err(MergeError::Steps {
                name: name.to_string(),
                what: "a log of a --find-max-rate among the logs of one run: merge them apart".into(),
            });
        }
        if info.meta.unit != "us" {
            return Err(MergeError::Histogram {
                name: name.to_string(),
                what: format!("unit {:?}, not us", info.meta.unit),
            });
        }
        self.agents.push(Agent { order, info, hist, interval_errors, last });
        Ok(())
    }

    /// The merged result.
    pub fn finish(self) -> Result<Merged, MergeError> {
        let first = self.agents.first().ok_or(MergeError::Empty)?;
        let meta = &first.info.meta;
        let mut warnings = Vec::new();
        for a in &self.agents[1..] {
            let m = &a.info.meta;
            if m.workload != meta.workload {
                warnings.push(format!(
                    "workloads differ: {} runs {}, {} runs {}",
                    meta.agent, meta.workload, m.agent, m.workload
                ));
            }
            if m.proxy != meta.proxy || m.tls != meta.tls {
                let how = |m: &hdrlog::Meta| {
                    format!(
                        "{} {}",
                        m.proxy.as_deref().map_or("no PROXY header".to_string(), |v| format!("PROXY {v}")),
                        if m.tls { "over TLS" } else { "over plain TCP" }
                    )
                };
                warnings.push(format!(
                    "connections differ: {} sends {}, {} sends {}",
                    meta.agent,
                    how(meta),
                    m.agent,
                    how(m)
                ));
            }
            if m.addr != meta.addr {
                warnings.push(format!(
                    "targets differ: {} to {}, {} to {}",
                    meta.agent, meta.addr, m.agent, m.addr
                ));
            }
        }
        let earliest = self.agents.iter().map(|a| a.info.start).min().unwrap_or(first.info.start);
        let latest = self.agents.iter().map(|a| a.info.start).max().unwrap_or(first.info.start);
        let window_of =
            |a: &Agent| a.info.end.as_ref().map_or(a.last, |e| Duration::from_secs_f64(e.window_s.max(0.0)));
        let ends = self.agents.iter().map(|a| a.info.start + window_of(a));
        let first_end = ends.clone().min().unwrap_or(earliest);
        let last_end = ends.max().unwrap_or(earliest);
        if self.agents.len() > 1 && latest >= first_end {
            warnings.push("the agents' windows do not overlap: the rate is not one load".to_string());
        }
        let mut errors = ErrorLog { limit: SHOWN_ERRORS, ..Default::default() };
        let (mut established, mut connect_failed, mut held, mut verified_total) = (0, 0, 0, 0);
        let mut rows = Vec::new();
        for a in &self.agents {
            let m = &a.info.meta;
            let counts = match &a.info.end {
                Some(end) => {
                    established += end.established;
                    connect_failed += end.connect_failed;
                    held += end.held;
                    verified_total += end.verified_total;
                    for e in &end.first_errors {
                        if errors.first.len() < errors.limit {
                            errors.first.push(e.clone());
                        }
                    }
                    &end.errors
                }
                None => {
                    warnings.push(format!(
                        "{}: the log has no last line (cut short?): its counts are partial",
                        m.agent
                    ));
                    verified_total += a.hist.len();
                    &a.interval_errors
                }
            };
            for (k, n) in counts {
                *errors.counts.entry(k.clone()).or_default() += n;
            }
            rows.push(AgentRow {
                agent: m.agent.clone(),
                shard: m.shard.clone(),
                connections: m.connections,
                verified: a.hist.len(),
                p99_us: if a.hist.is_empty() { 0 } else { a.hist.value_at_quantile(0.99) },
                errors: counts.values().sum(),
                start_offset_s: a.info.start.duration_since(earliest).unwrap_or_default().as_secs_f64(),
                complete: a.info.end.is_some(),
            });
        }
        let mut names: Vec<&str> = rows.iter().map(|r| r.agent.as_str()).collect();
        names.sort_unstable();
        if names.windows(2).any(|w| w[0] == w[1]) {
            warnings.push("two logs have the same agent name: the same log given twice?".to_string());
        }
        let origin_s = unix_ms(earliest).div_euclid(1000);
        let mut per_second = Vec::new();
        for (&s, &n) in &self.per_second {
            let i = (s - origin_s).max(0) as usize;
            if i < super::stats::MAX_SECONDS {
                if per_second.len() <= i {
                    per_second.resize(i + 1, 0);
                }
                per_second[i] += n;
            }
        }
        let window = last_end.duration_since(earliest).unwrap_or_default();
        let total = self.total.unwrap_or_else(new_histogram);
        let stats = Stats::from_parts(total, per_second, window);
        let timeline = timeline(self.points, unix_ms(earliest));
        let rate: Option<f64> = self.agents.iter().map(|a| a.info.meta.rate).sum();
        let report = Report {
            workload: meta.workload,
            addr: meta.addr.parse().unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0))),
            connections: self.agents.iter().map(|a| a.info.meta.connections).sum(),
            first_id: 0,
            established,
            connect_failed,
            held,
            rate,
            pipeline: meta.pipeline,
            warmup: Duration::from_secs_f64(meta.warmup_s.max(0.0)),
            window,
            stats,
            errors,
            verified_total,
        };
        Ok(Merged {
            report,
            agents: rows,
            start_spread: latest.duration_since(earliest).unwrap_or_default(),
            timeline,
            warnings,
        })
    }
}

/// Add the flat counts `from` into `into`, index by index.
fn add_flat(into: &mut Vec<u32>, from: &[u32]) {
    if into.len() < from.len() {
        into.resize(from.len(), 0);
    }
    for (a, b) in into.iter_mut().zip(from) {
        *a = a.saturating_add(*b);
    }
}

/// Record flat counts (indexed like [`Layout::ours`]) into `hist`.
fn fill<T: hdrhistogram::Counter + TryFrom<u64>>(hist: &mut Histogram<T>, flat: &[T]) -> Result<(), String>
where
    u64: From<T>,
{
    let layout = Layout::ours();
    for (i, &n) in flat.iter().enumerate().filter(|(_, n)| u64::from(**n) > 0) {
        let value = layout.value_of(i).ok_or_else(|| format!("bucket {i} beyond 64 bits"))?;
        hist.record_n(value, n).map_err(|e| format!("histogram out of range: {e:?}"))?;
    }
    Ok(())
}

/// Thin the per-second counts to at most [`MAX_TIMELINE`] points, adding
/// neighbours (never averaging), and take each point's rate and percentiles.
fn timeline(points: BTreeMap<i64, Vec<u32>>, origin_ms: i64) -> Vec<TimelinePoint> {
    let (Some(&lo), Some(&hi)) = (points.keys().next(), points.keys().next_back()) else { return Vec::new() };
    let span = (hi - lo + 1) as usize;
    let group = span.div_ceil(MAX_TIMELINE).max(1) as i64;
    let mut grouped: BTreeMap<i64, Vec<u32>> = BTreeMap::new();
    for (k, counts) in points {
        let g = (k - lo) / group;
        match grouped.get_mut(&g) {
            Some(acc) => add_flat(acc, &counts),
            None => drop(grouped.insert(g, counts)),
        }
    }
    let width_s = (group * POINT_MS) as f64 / 1000.0;
    grouped
        .into_iter()
        .map(|(g, counts)| {
            // Auto-resizing: most timelines never need the hour of range; the
            // counts were checked against it when added.
            let mut h =
                Histogram::<u32>::new(3).unwrap_or_else(|_| unreachable!("3 significant digits are valid"));
            h.auto(true);
            let _ = fill(&mut h, &counts);
            TimelinePoint {
                at_s: ((lo + g * group) * POINT_MS - origin_ms) as f64 / 1000.0,
                rate: h.len() as f64 / width_s,
                p50_us: if h.is_empty() { 0 } else { h.value_at_quantile(0.5) },
                p99_us: if h.is_empty() { 0 } else { h.value_at_quantile(0.99) },
            }
        })
        .collect()
}

impl Merged {
    /// The report, then the per-agent table, the start spread and the warnings.
    pub fn text(&self) -> String {
        use std::fmt::Write as _;
        let mut s = self.report.text();
        let _ = writeln!(
            s,
            "agents:      {}, windows started within {:.3} s",
            self.agents.len(),
            self.start_spread.as_secs_f64()
        );
        let _ = writeln!(
            s,
            "  {:<24} {:>7} {:>6} {:>10} {:>10} {:>7} {:>9}",
            "agent", "shard", "conns", "verified", "p99", "errors", "start +s"
        );
        for r in &self.agents {
            let _ = writeln!(
                s,
                "  {:<24} {:>7} {:>6} {:>10} {:>10} {:>7} {:>9.3}{}",
                r.agent,
                r.shard.as_deref().unwrap_or("-"),
                r.connections,
                r.verified,
                super::report::us(r.p99_us),
                r.errors,
                r.start_offset_s,
                if r.complete { "" } else { "  (cut short)" }
            );
        }
        for w in &self.warnings {
            let _ = writeln!(s, "warning: {w}");
        }
        s
    }

    /// The merged chart: replies per second over time beside p50 and p99 over
    /// time, from the timeline (each point from added histograms).
    pub fn plot(&self, path: &std::path::Path) -> Result<(), String> {
        use plotters::prelude::*;
        let t = &self.timeline;
        let end = t.last().map_or(1.0, |p| p.at_s + 1.0).max(1.0);
        let max_rate = t.iter().map(|p| p.rate).fold(1.0, f64::max);
        let max_ms = t.iter().map(|p| p.p99_us as f64 / 1000.0).fold(0.001, f64::max);
        let title = format!("{} agents to {}, merged", self.agents.len(), self.report.addr);
        let root = SVGBackend::new(path, (1100, 420)).into_drawing_area();
        let draw = || -> Result<(), Box<dyn std::error::Error>> {
            root.fill(&WHITE)?;
            let root = root.titled(&title, ("sans-serif", 18))?;
            let (left, right) = root.split_horizontally(550);
            let mut chart = ChartBuilder::on(&left)
                .caption("verified replies per second, all agents", ("sans-serif", 15))
                .margin(10)
                .x_label_area_size(35)
                .y_label_area_size(70)
                .build_cartesian_2d(0f64..end, 0f64..max_rate * 1.1)?;
            chart
                .configure_mesh()
                .x_desc("second")
                .y_desc("per second")
                .y_label_formatter(&|v| format!("{v:.0}"))
                .draw()?;
            chart.draw_series(LineSeries::new(t.iter().map(|p| (p.at_s, p.rate)), &RED))?;
            let mut chart = ChartBuilder::on(&right)
                .caption("latency over time (merged histograms)", ("sans-serif", 15))
                .margin(10)
                .x_label_area_size(35)
                .y_label_area_size(55)
                .build_cartesian_2d(0f64..end, 0f64..max_ms * 1.1)?;
            chart.configure_mesh().x_desc("second").y_desc("ms").draw()?;
            chart
                .draw_series(LineSeries::new(t.iter().map(|p| (p.at_s, p.p50_us as f64 / 1000.0)), &BLUE))?
                .label("p50")
                .legend(|(x, y)| PathElement::new([(x, y), (x + 15, y)], BLUE));
            chart
                .draw_series(LineSeries::new(t.iter().map(|p| (p.at_s, p.p99_us as f64 / 1000.0)), &RED))?
                .label("p99")
                .legend(|(x, y)| PathElement::new([(x, y), (x + 15, y)], RED));
            chart.configure_series_labels().border_style(BLACK).draw()?;
            root.present()?;
            Ok(())
        };
        draw().map_err(|e| format!("plot: {}: {e}", path.display()))
    }

    /// The report's JSON with `agents`, `start_spread_s`, `timeline` and `warnings` added.
    pub fn json(&self) -> serde_json::Value {
        let mut j = self.report.json();
        if let Some(o) = j.as_object_mut() {
            o.insert("agents".into(), serde_json::json!(self.agents));
            o.insert("start_spread_s".into(), serde_json::json!(self.start_spread.as_secs_f64()));
            o.insert("timeline".into(), serde_json::json!(self.timeline));
            o.insert("warnings".into(), serde_json::json!(self.warnings));
        }
        j
    }
}

/// One step of a sharded search, merged over the agents.
#[derive(Debug)]
pub struct MergedStep {
    /// The step, as the agents logged it.
    pub step: StepStart,
    /// Its merged report, agent table and warnings.
    pub merged: Merged,
}

/// A sharded `--find-max-rate`, merged: each step judged on the added
/// histograms, with the single-machine search's report.
#[derive(Debug)]
pub struct MergedSearch {
    /// The steps' verdicts and the answer.
    pub search: Search,
    /// Each step merged.
    pub steps: Vec<MergedStep>,
    /// Agents (logs) merged.
    pub agents: usize,
    /// Steps some agent did not log, agents that disagree on a step, and each
    /// step's own warnings.
    pub warnings: Vec<String>,
}

/// Merge logs of a sharded `--find-max-rate` given as (name, text): each
/// agent's log holds one section per step; the same step of every agent is
/// merged as one run and judged against the target the agents were given.
pub fn merge_search_texts<'a>(
    logs: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> Result<MergedSearch, MergeError> {
    // By step: the step as first logged, and every agent's (name, section) of it.
    type Sections<'t> = Vec<(&'t str, &'t str)>;
    let mut by_step: BTreeMap<u32, (StepStart, Sections<'a>)> = BTreeMap::new();
    let mut warnings = Vec::new();
    let mut agents = 0;
    for (name, text) in logs {
        agents += 1;
        for section in sections(text) {
            let meta = section_meta(section)
                .ok_or_else(|| MergeError::Log { name: name.to_string(), source: LogError::NoMeta })?;
            let step = meta.step.ok_or_else(|| MergeError::Steps {
                name: name.to_string(),
                what: "a log of one run among the logs of a --find-max-rate: merge them apart".into(),
            })?;
            let (first, group) = by_step.entry(step.index).or_insert_with(|| (step.clone(), Vec::new()));
            if first.rate != step.rate || first.slo != step.slo || first.steps != step.steps {
                warnings.push(format!(
                    "step {}: {} ran {:.0}/s against {}, another agent {:.0}/s against {}: different schedules",
                    step.index, meta.agent, step.rate, step.slo, first.rate, first.slo
                ));
            }
            group.push((name, section));
        }
    }
    let Some((first, _)) = by_step.values().next() else { return Err(MergeError::Empty) };
    let bad_slo = |what: String| MergeError::Steps { name: "merge".into(), what };
    let slo: Slo = first.slo.parse().map_err(|e| bad_slo(format!("target {:?}: {e}", first.slo)))?;
    let rates: Vec<f64> = by_step.values().map(|(s, _)| s.rate).collect();
    let config = SearchConfig {
        slo: slo.clone(),
        min_rate: rates.iter().copied().fold(f64::INFINITY, f64::min),
        max_rate: rates.iter().copied().fold(0.0, f64::max),
        steps: first.steps,
        step: Duration::ZERO,
        gap: Duration::ZERO,
    };
    if by_step.len() < first.steps as usize {
        warnings.push(format!("only {} of the {} steps were logged", by_step.len(), first.steps));
    }
    let mut search = Search::new(config);
    let mut steps = Vec::new();
    for (index, (step, group)) in by_step {
        if group.len() < agents {
            warnings.push(format!("step {index}: logged by {} of {agents} agents", group.len()));
        }
        let mut merger = Merger { of_steps: true, ..Merger::default() };
        for (name, section) in group {
            merger.add(name, section)?;
        }
        let merged = merger.finish()?;
        warnings.extend(merged.warnings.iter().map(|w| format!("step {index}: {w}")));
        search.record(Step::judge(step.rate, &merged.report, &slo));
        steps.push(MergedStep { step, merged });
    }
    Ok(MergedSearch { search, steps, agents, warnings })
}

impl MergedSearch {
    /// The search's steps and answer, then each step's agents and start spread,
    /// then the warnings.
    pub fn text(&self) -> String {
        use std::fmt::Write as _;
        let mut s = self.search.text();
        let _ = writeln!(s, "agents:      {}, each step's histograms added over them", self.agents);
        let _ = writeln!(
            s,
            "  {:>4} {:>10} {:>7} {:>10} {:>13}",
            "step", "offered/s", "agents", "verified", "start spread"
        );
        for st in &self.steps {
            let _ = writeln!(
                s,
                "  {:>4} {:>10.0} {:>7} {:>10} {:>11.3} s",
                st.step.index,
                st.step.rate,
                st.merged.agents.len(),
                st.merged.report.stats.count(),
                st.merged.start_spread.as_secs_f64()
            );
        }
        for w in &self.warnings {
            let _ = writeln!(s, "warning: {w}");
        }
        s
    }

    /// The search's JSON with `agents`, `step_details` and `warnings` added.
    pub fn json(&self) -> serde_json::Value {
        let mut j = self.search.json();
        if let Some(o) = j.as_object_mut() {
            let details: Vec<serde_json::Value> = self
                .steps
                .iter()
                .map(|st| {
                    serde_json::json!({
                        "index": st.step.index,
                        "rate": st.step.rate,
                        "agents": st.merged.agents,
                        "verified": st.merged.report.stats.count(),
                        "start_spread_s": st.merged.start_spread.as_secs_f64(),
                        "errors": st.merged.report.errors.counts,
                    })
                })
                .collect();
            o.insert("agents".into(), serde_json::json!(self.agents));
            o.insert("step_details".into(), serde_json::json!(details));
            o.insert("warnings".into(), serde_json::json!(self.warnings));
        }
        j
    }

    /// Did some step meet the target?
    pub fn found(&self) -> bool {
        self.search.best().is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::hdrlog::HdrLogWriter;
    use crate::bench::run::{Interval, Observer, Started};
    use crate::bench::search::StepStart;
    use crate::bench::{Config, Shard, Workload};

    /// A log of agent `index` of `count`, starting at `start`, with `samples[i]`
    /// recorded in interval `i` (one second each); errors in its last interval.
    fn agent_log(index: u32, count: u32, start: SystemTime, samples: &[Vec<u64>], errors: u64) -> String {
        let mut config = Config::new("10.0.0.1:9999");
        config.connections = 8;
        config.shard = Some(Shard { index, count });
        let mut w = HdrLogWriter::new(Vec::new(), &config, &format!("agent-{index}"));
        w.started(&Started {
            addr: "10.0.0.1:9999".parse().unwrap(),
            at: start,
            connections: 2,
            first_id: u64::from(index) * 2,
            rate: None,
        });
        let mut total = Stats::new();
        let mut errs = ErrorLog::default();
        for (i, values) in samples.iter().enumerate() {
            let mut h = new_histogram();
            for &v in values {
                h.record(v).unwrap();
                total.record(Duration::from_micros(v), Duration::from_secs(i as u64));
            }
            let mut e = BTreeMap::new();
            if i + 1 == samples.len() && errors > 0 {
                e.insert("timeout".to_string(), errors);
                errs.counts.insert("timeout".into(), errors);
            }
            w.interval(&Interval {
                start: Duration::from_secs(i as u64),
                length: Duration::from_secs(1),
                histogram: &h,
                errors: &e,
            });
        }
        let mut report = Report::for_tests(errs);
        report.stats = total;
        report.window = Duration::from_secs(samples.len() as u64);
        report.established = 2;
        String::from_utf8(w.finish(&report).unwrap()).unwrap()
    }

    /// Deterministic samples (a linear congruential generator): agent `k` has its
    /// own spread and tail, so per-agent percentiles differ a lot.
    fn samples(k: u64, seconds: usize, per_second: usize) -> Vec<Vec<u64>> {
        let mut x = 12345 + k;
        (0..seconds)
            .map(|_| {
                (0..per_second)
                    .map(|_| {
                        x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                        let r = (x >> 33) % 1000;
                        // Agent k: 100..1100 us times (k+1), and a 1% tail at 50 ms times (k+1).
                        if r < 10 { 50_000 * (k + 1) } else { (100 + r) * (k + 1) }
                    })
                    .collect()
            })
            .collect()
    }

    #[test]
    fn merged_logs_have_exactly_the_percentiles_of_all_samples_in_one_histogram() {
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_764_000_000);
        let n = 4;
        let per_agent: Vec<Vec<Vec<u64>>> = (0..n).map(|k| samples(k, 5, 400 + 100 * k as usize)).collect();
        let logs: Vec<String> = per_agent
            .iter()
            .enumerate()
            .map(|(k, s)| {
                agent_log(k as u32, n as u32, t0 + Duration::from_millis(7 * k as u64), s, k as u64)
            })
            .collect();
        let merged =
            merge_texts(logs.iter().enumerate().map(|(k, t)| (["a", "b", "c", "d"][k], t.as_str()))).unwrap();
        // One histogram of every sample, recorded directly.
        let mut all = new_histogram();
        for v in per_agent.iter().flatten().flatten() {
            all.record(*v).unwrap();
        }
        assert_eq!(
            merged.report.stats.histogram(),
            &all,
            "the merged histogram is the histogram of all samples"
        );
        let sum = merged.report.stats.summary();
        for (q, got) in [(0.5, sum.p50_us), (0.9, sum.p90_us), (0.99, sum.p99_us), (0.999, sum.p999_us)] {
            assert_eq!(got, all.value_at_quantile(q), "p{q}");
        }
        assert_eq!(sum.max_us, all.max());
        assert_eq!(sum.count, all.len());
        // Errors and connections add up; the start spread is the agents'.
        assert_eq!(merged.report.errors.counts.get("timeout"), Some(&(1 + 2 + 3)));
        assert_eq!(merged.report.connections, 8);
        assert_eq!(merged.report.established, 8);
        assert_eq!(merged.start_spread, Duration::from_millis(21));
        assert_eq!(merged.agents.len(), 4);
        assert!(merged.warnings.is_empty(), "{:?}", merged.warnings);
        assert_eq!(merged.timeline.iter().map(|p| p.rate).sum::<f64>() as u64, all.len());

        // Why we merge histograms: the mean of the agents' p99s is another number.
        let mean_p99 = merged.agents.iter().map(|a| a.p99_us).sum::<u64>() / merged.agents.len() as u64;
        let true_p99 = all.value_at_quantile(0.99);
        assert!(
            mean_p99.abs_diff(true_p99) > true_p99 / 10,
            "averaged p99 {mean_p99} us vs the true p99 {true_p99} us"
        );
    }

    #[test]
    fn merging_warns_about_logs_that_do_not_fit_together() {
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_764_000_000);
        let a = agent_log(0, 2, t0, &samples(0, 2, 10), 0);
        // Agent 1 starts after agent 0's window ended, against another workload.
        let b = agent_log(1, 2, t0 + Duration::from_secs(10), &samples(1, 2, 10), 0)
            .replace("\"workload\":\"hello\"", "\"workload\":\"echo\"");
        let merged = merge_texts([("a", a.as_str()), ("b", b.as_str())]).unwrap();
        let w = merged.warnings.join("\n");
        assert!(w.contains("do not overlap"), "{w}");
        assert!(w.contains("workloads differ"), "{w}");
        // Agents that differ in PROXY header or TLS are not one load either.
        let tls = b.replace("\"tls\":false", "\"tls\":true,\"proxy\":\"v2\"");
        let merged = merge_texts([("a", a.as_str()), ("b", tls.as_str())]).unwrap();
        let w = merged.warnings.join("\n");
        assert!(
            w.contains("connections differ: agent-0 sends no PROXY header over plain TCP, agent-1 sends PROXY v2 over TLS"),
            "{w}"
        );
        // A log cut short still counts its intervals, with a warning.
        let cut: String =
            a.lines().filter(|l| !l.starts_with("#tcpkit-end")).map(|l| format!("{l}\n")).collect();
        let merged = merge_texts([("a", cut.as_str())]).unwrap();
        assert_eq!(merged.report.stats.count(), 20);
        assert!(merged.warnings[0].contains("cut short"), "{:?}", merged.warnings);
        // The same log twice.
        let merged = merge_texts([("a", a.as_str()), ("a2", a.as_str())]).unwrap();
        assert!(merged.warnings.iter().any(|w| w.contains("same agent name")), "{:?}", merged.warnings);
        assert!(matches!(merge_texts([]), Err(MergeError::Empty)));
        assert_eq!(Workload::Hello, merged.report.workload);
    }

    #[test]
    fn files_decoded_on_several_threads_merge_as_texts_do_in_the_order_given() {
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_764_000_000);
        let dir = tempfile::tempdir().unwrap();
        let logs: Vec<String> =
            (0..5).map(|k| agent_log(k, 5, t0, &samples(u64::from(k), 3, 50), 0)).collect();
        let paths: Vec<std::path::PathBuf> = logs
            .iter()
            .enumerate()
            .map(|(k, text)| {
                let p = dir.path().join(format!("{k}.hlog"));
                std::fs::write(&p, text).unwrap();
                p
            })
            .collect();
        let from_files = merge_files(&paths, 1 << 20).unwrap();
        let from_texts = merge_texts(logs.iter().map(|t| ("x", t.as_str()))).unwrap();
        assert_eq!(from_files.report.stats.histogram(), from_texts.report.stats.histogram());
        assert_eq!(from_files.timeline, from_texts.timeline);
        let names: Vec<&str> = from_files.agents.iter().map(|a| a.agent.as_str()).collect();
        assert_eq!(names, ["agent-0", "agent-1", "agent-2", "agent-3", "agent-4"]);
        let err = merge_files(&paths, 100).unwrap_err();
        assert!(err.to_string().contains("longer than 100 bytes"), "{err}");
    }

    /// A sharded search's log of agent `index` of `count`: one section per step
    /// of `rates`, `per_step(k)` samples in step k, `errors(k)` errors in it.
    fn search_log(
        index: u32,
        count: u32,
        t0: SystemTime,
        rates: &[f64],
        per_step: impl Fn(usize) -> Vec<u64>,
        errors: impl Fn(usize) -> u64,
    ) -> String {
        let mut config = Config::new("10.0.0.1:9999");
        config.connections = 4;
        config.shard = Some(Shard { index, count });
        let mut w = HdrLogWriter::new(Vec::new(), &config, &format!("agent-{index}"));
        for (k, &rate) in rates.iter().enumerate() {
            w.step(&StepStart { index: k as u32, steps: rates.len() as u32, rate, slo: "p99<=10ms".into() });
            w.started(&Started {
                addr: "10.0.0.1:9999".parse().unwrap(),
                at: t0 + Duration::from_secs(3 * k as u64) + Duration::from_millis(u64::from(index)),
                connections: 2,
                first_id: u64::from(index) * 2,
                rate: Some(rate / f64::from(count)),
            });
            let mut h = new_histogram();
            let mut stats = Stats::new();
            for v in per_step(k) {
                h.record(v).unwrap();
                stats.record(Duration::from_micros(v), Duration::ZERO);
            }
            let mut errs = ErrorLog::default();
            let mut e = BTreeMap::new();
            if errors(k) > 0 {
                e.insert("timeout".to_string(), errors(k));
                errs.counts.insert("timeout".into(), errors(k));
            }
            w.interval(&Interval {
                start: Duration::ZERO,
                length: Duration::from_secs(1),
                histogram: &h,
                errors: &e,
            });
            let mut report = Report::for_tests(errs);
            report.stats = stats;
            report.window = Duration::from_secs(1);
            w.step_done(&report);
        }
        String::from_utf8(w.close().unwrap()).unwrap()
    }

    #[test]
    fn step_logs_merge_per_step_to_the_highest_rate_meeting_the_target() {
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_764_000_000);
        let rates = [1000.0, 2000.0, 4000.0, 8000.0];
        // Each agent completes its half of every step's rate in the 1 s window.
        // Step 1: agent 0 alone is well under 10 ms, agent 1 has a 4% tail at
        // 50 ms: 2% of all replies, so the merged p99 is over 10 ms though
        // agent 0's own p99 passes.
        // Step 2 passes on both. Step 3: an error on agent 1 fails it.
        let samples = |agent: u32| {
            move |k: usize| -> Vec<u64> {
                let n = (rates[k] / 2.0) as usize;
                (0..n)
                    .map(|i| if k == 1 && agent == 1 && i % 25 == 0 { 50_000 } else { 1000 + i as u64 % 500 })
                    .collect()
            }
        };
        let a = search_log(0, 2, t0, &rates, samples(0), |_| 0);
        let b = search_log(1, 2, t0, &rates, samples(1), |k| u64::from(k == 3));
        assert_eq!(a.matches("#tcpkit {").count(), 4, "{a}");
        let m = merge_search_texts([("a", a.as_str()), ("b", b.as_str())]).unwrap();
        let verdicts: Vec<bool> = m.search.steps.iter().map(|s| s.failed.is_none()).collect();
        assert_eq!(verdicts, [true, false, true, false], "{}", m.text());
        assert_eq!(m.search.best(), Some(4000.0));
        assert_eq!(m.steps[2].merged.report.stats.count(), 4000, "both agents' replies count");
        // Over the merged window: 1 s and the agents' 1 ms start spread.
        assert_eq!(m.search.steps[2].achieved.round(), (4000.0 / 1.001f64).round());
        assert!(m.search.steps[1].failed.as_deref().unwrap().starts_with("p99"), "{:?}", m.search.steps[1]);
        assert_eq!(m.search.steps[3].errors, 1);
        assert!(m.warnings.is_empty(), "{:?}", m.warnings);
        // Exact: a step's merged histogram is that of both agents' samples.
        let mut all = new_histogram();
        for v in samples(0)(1).into_iter().chain(samples(1)(1)) {
            all.record(v).unwrap();
        }
        assert_eq!(m.steps[1].merged.report.stats.histogram(), &all);
        assert_eq!(m.steps[0].merged.start_spread, Duration::from_millis(1));
        let text = m.text();
        assert!(text.contains("highest rate meeting the target: 4000/s"), "{text}");
        assert!(text.contains("agents:      2"), "{text}");
        let j = m.json();
        assert_eq!(j["max_rate"], 4000.0);
        assert_eq!(j["step_details"][3]["errors"]["timeout"], 1);
        // An agent that missed a step is warned about; a log of a plain run does not mix in.
        let cut = b.split("#tcpkit {").take(3).collect::<Vec<_>>().join("#tcpkit {");
        let m = merge_search_texts([("a", a.as_str()), ("b", cut.as_str())]).unwrap();
        assert!(m.warnings.iter().any(|w| w.contains("step 2: logged by 1 of 2 agents")), "{:?}", m.warnings);
        let plain = agent_log(0, 1, t0, &samples_plain(), 0);
        let err = merge_search_texts([("a", a.as_str()), ("p", plain.as_str())]).unwrap_err();
        assert!(err.to_string().contains("merge them apart"), "{err}");
        let err = merge_texts([("p", plain.as_str()), ("a", a.as_str())]).unwrap_err();
        assert!(err.to_string().contains("merge them apart"), "{err}");
        assert!(is_step_log(&a) && !is_step_log(&plain));
    }

    fn samples_plain() -> Vec<Vec<u64>> {
        samples(0, 1, 10)
    }

    #[test]
    fn the_text_and_json_carry_the_agent_table() {
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_764_000_000);
        let a = agent_log(0, 2, t0, &samples(0, 2, 10), 0);
        let b = agent_log(1, 2, t0 + Duration::from_millis(250), &samples(1, 2, 10), 0);
        let merged = merge_texts([("a", a.as_str()), ("b", b.as_str())]).unwrap();
        let text = merged.text();
        assert!(text.contains("replies:     40 verified"), "{text}");
        assert!(text.contains("agents:      2, windows started within 0.250 s"), "{text}");
        assert!(text.contains("agent-1") && text.contains("1/2"), "{text}");
        let j = merged.json();
        assert_eq!(j["verified"], 40);
        assert_eq!(j["agents"][1]["shard"], "1/2");
        assert_eq!(j["start_spread_s"], 0.25);
        let dir = tempfile::tempdir().unwrap();
        let svg = dir.path().join("m.svg");
        merged.plot(&svg).unwrap();
        let chart = std::fs::read_to_string(&svg).unwrap();
        assert!(chart.contains("latency over time") && chart.contains("<polyline"), "{}", &chart[..100]);
    }
}
