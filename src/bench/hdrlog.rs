//! The interval log one agent writes (`--hdr-log`) and `bench merge` reads: the
//! standard HdrHistogram interval log (the `hdrhistogram` crate's writer and its
//! compressed V2 encoding, which other implementations read too), plus comment
//! lines that carry what a merge needs and the standard format has no place for.
//!
//! ```text
//! #tcpkit {"tcpkit":"0.1.0","agent":"pod-0","workload":"hello","target":"10.0.0.1:9999",...}
//! #[StartTime: 1764563200.250 (seconds since epoch)]
//! #[BaseTime: 1764563200.250 (seconds since epoch)]
//! 0.000,1.000,812.000,HISTFAAAA...        one line per interval: start, length, max (us), histogram
//! #tcpkit-errors {"start_s":1.0,"errors":{"reset":2}}   after an interval that had errors
//! #tcpkit-end {"established":25,...,"errors":{"reset":2},"first_errors":[...]}
//! ```
//!
//! Latencies are in microseconds. StartTime is the agent's actual start of its
//! measured window, so a merge can report how far apart the agents started.
//! Reading skips lines that are none of these (`kubectl logs` mixes stderr in).
//!
//! Not for: adding logs up (`merge.rs`).
use std::collections::BTreeMap;
use std::io::{self, Write};
use std::time::{Duration, SystemTime};

use base64::Engine;
use hdrhistogram::Histogram;
use hdrhistogram::serialization::interval_log::{IntervalLogIterator, IntervalLogWriterBuilder, LogEntry};
use hdrhistogram::serialization::{Deserializer, V2DeflateSerializer};
use serde::{Deserialize, Serialize};
use thiserror::Error;

use super::conn::ShownError;
use super::run::{Interval, Observer, Started};
use super::search::StepStart;
use super::{Config, Report, Workload};

/// Longest log line read back, in bytes: an interval histogram of 1 us to 1 h at
/// 3 digits compresses to a few KiB; this bounds a corrupt or foreign file.
pub const MAX_LINE: usize = 1 << 20;

/// What an agent ran, from the log's first line: enough to tell whether logs
/// may be added up.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Meta {
    /// The tcpkit version that wrote the log.
    pub tcpkit: String,
    /// The agent's name (`--agent`, by default the host name).
    pub agent: String,
    /// `I/N` when the agent ran a shard.
    pub shard: Option<String>,
    /// The workload.
    pub workload: Workload,
    /// The server as given.
    pub target: String,
    /// The server as resolved.
    pub addr: String,
    /// The agent's connections.
    pub connections: u64,
    /// The number of its first connection.
    pub first_id: u64,
    /// Its open-loop rate, requests per second.
    pub rate: Option<f64>,
    /// Requests in flight per connection.
    pub pipeline: u32,
    /// Warm-up before the window, seconds.
    pub warmup_s: f64,
    /// The unit of the histograms' values.
    pub unit: String,
    /// The PROXY header each connection sends first (`v1`, `v2`), if any; logs
    /// of older versions have none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proxy: Option<String>,
    /// Whether the connections spoke TLS.
    #[serde(default)]
    pub tls: bool,
    /// The `--find-max-rate` step this section of the log is, with `--shard`:
    /// such a log holds one section (this line to its `#tcpkit-end`) per step.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step: Option<StepStart>,
}

/// What the report of one agent says besides its histograms: the last line.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct End {
    /// Connections established (sessions for churn).
    pub established: u64,
    /// Connection attempts that failed.
    pub connect_failed: u64,
    /// `hold`: connections held to the end.
    pub held: u64,
    /// Verified replies, warm-up included.
    pub verified_total: u64,
    /// The measured window, seconds.
    pub window_s: f64,
    /// Errors by kind, in all.
    pub errors: BTreeMap<String, u64>,
    /// The first errors in full.
    pub first_errors: Vec<ShownError>,
}

#[derive(Serialize, Deserialize)]
struct IntervalErrors {
    start_s: f64,
    errors: BTreeMap<String, u64>,
}

/// Writes the interval log of a run as an [`Observer`]; write errors are kept
/// (the first one) and the run goes on: the report still counts.
pub struct HdrLogWriter<W: Write + Send> {
    out: W,
    meta: Meta,
    serializer: V2DeflateSerializer,
    failed: Option<io::Error>,
}

impl<W: Write + Send> HdrLogWriter<W> {
    /// A writer for the run `config` describes, by agent `agent`.
    pub fn new(out: W, config: &Config, agent: &str) -> Self {
        let meta = Meta {
            tcpkit: env!("CARGO_PKG_VERSION").to_string(),
            agent: agent.to_string(),
            shard: config.shard.map(|s| format!("{}/{}", s.index, s.count)),
            workload: config.workload,
            target: config.addr.clone(),
            addr: String::new(),
            connections: config.connections,
            first_id: 0,
            rate: config.rate,
            pipeline: config.pipeline,
            warmup_s: config.warmup.as_secs_f64(),
            unit: "us".to_string(),
            proxy: config.proxy.as_ref().map(|p| p.version.to_string()),
            tls: config.tls.is_some(),
            step: None,
        };
        HdrLogWriter { out, meta, serializer: V2DeflateSerializer::new(), failed: None }
    }

    /// Write the last line from the run's report, flush, and give back the first
    /// write error, if any.
    pub fn finish(mut self, report: &Report) -> io::Result<W> {
        self.end(report);
        self.close()
    }

    /// Give back the sink, or the first write error (every section already ended).
    pub fn close(self) -> io::Result<W> {
        match self.failed {
            Some(e) => Err(e),
            None => Ok(self.out),
        }
    }

    /// Write the `#tcpkit-end` line of a run (or step) and flush.
    fn end(&mut self, report: &Report) {
        let end = End {
            established: report.established,
            connect_failed: report.connect_failed,
            held: report.held,
            verified_total: report.verified_total,
            window_s: report.window.as_secs_f64(),
            errors: report.errors.counts.clone(),
            first_errors: report.errors.first.clone(),
        };
        let line = json_line("tcpkit-end", &end);
        self.attempt(|out, _| {
            out.write_all(line.as_bytes())?;
            out.flush()
        });
    }

    fn attempt(&mut self, f: impl FnOnce(&mut W, &mut V2DeflateSerializer) -> io::Result<()>) {
        if self.failed.is_none() {
            if let Err(e) = f(&mut self.out, &mut self.serializer) {
                self.failed = Some(e);
            }
        }
    }
}

fn json_line(tag: &str, value: &impl Serialize) -> String {
    // Our own plain structs always serialize.
    format!("#{tag} {}\n", serde_json::to_string(value).unwrap_or_default())
}

impl<W: Write + Send> Observer for HdrLogWriter<W> {
    fn step(&mut self, step: &StepStart) {
        self.meta.step = Some(step.clone());
    }

    fn step_done(&mut self, report: &Report) {
        self.end(report);
    }

    fn started(&mut self, s: &Started) {
        self.meta.addr = s.addr.to_string();
        self.meta.connections = s.connections;
        self.meta.first_id = s.first_id;
        self.meta.rate = s.rate;
        let first = json_line("tcpkit", &self.meta);
        let at = s.at;
        self.attempt(|out, ser| {
            out.write_all(first.as_bytes())?;
            IntervalLogWriterBuilder::new()
                .with_start_time(at)
                .with_base_time(at)
                .begin_log_with(out, ser)?;
            out.flush()
        });
    }

    fn interval(&mut self, iv: &Interval<'_>) {
        let errors = (!iv.errors.is_empty()).then(|| {
            json_line(
                "tcpkit-errors",
                &IntervalErrors { start_s: iv.start.as_secs_f64(), errors: iv.errors.clone() },
            )
        });
        self.attempt(|out, ser| {
            let mut log = IntervalLogWriterBuilder::new().begin_log_with(out, ser)?;
            log.write_histogram(iv.histogram, iv.start, iv.length, None)
                .map_err(|e| io::Error::other(e.to_string()))?;
            drop(log);
            if let Some(line) = errors {
                out.write_all(line.as_bytes())?;
            }
            out.flush()
        });
    }
}

/// One interval read back; `H` is its latencies: a [`Histogram`] ([`read_each`])
/// or just the recorded buckets ([`Counts`], [`read_each_counts`]).
#[derive(Debug, Clone)]
pub struct LogInterval<H = Histogram<u64>> {
    /// Start, from the agent's StartTime.
    pub start: Duration,
    /// Length.
    pub length: Duration,
    /// Its latencies.
    pub histogram: H,
    /// Errors counted with it, by kind.
    pub errors: BTreeMap<String, u64>,
}

/// One agent's log, read back.
#[derive(Debug, Clone)]
pub struct AgentLog {
    /// Its first line.
    pub meta: Meta,
    /// Its measured window's wall-clock start.
    pub start: SystemTime,
    /// Its intervals, in the order written.
    pub intervals: Vec<LogInterval>,
    /// Its last line; `None` when the log was cut short.
    pub end: Option<End>,
    /// Lines that were none of the log's (stderr mixed in by `kubectl logs`).
    pub foreign_lines: usize,
}

/// A log that cannot be read.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum LogError {
    /// The first `#tcpkit` line is missing: not a log of `tcpkit bench --hdr-log`.
    #[error("no #tcpkit line: not written by tcpkit bench --hdr-log")]
    NoMeta,
    /// No `#[StartTime: ...]` line.
    #[error("no #[StartTime] line")]
    NoStartTime,
    /// A line that looks like the log's but does not parse.
    #[error("line {line}: {what}")]
    Bad {
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        what: String,
    },
}

/// Read one agent's log from its text, keeping every interval.
pub fn read(text: &str) -> Result<AgentLog, LogError> {
    let mut intervals = Vec::new();
    let info = read_each(text, |_, iv| intervals.push(iv))?;
    Ok(AgentLog {
        meta: info.meta,
        start: info.start,
        intervals,
        end: info.end,
        foreign_lines: info.foreign_lines,
    })
}

/// One agent's log without its intervals (see [`read_each`]).
#[derive(Debug, Clone)]
pub struct AgentInfo {
    /// Its first line.
    pub meta: Meta,
    /// Its measured window's wall-clock start.
    pub start: SystemTime,
    /// Intervals read.
    pub intervals: usize,
    /// Its last line; `None` when the log was cut short.
    pub end: Option<End>,
    /// Lines that were none of the log's.
    pub foreign_lines: usize,
}

/// Read one agent's log, handing each interval to `each` with the agent's start
/// as soon as it is read (so memory does not grow with the log); an interval's
/// errors, on the line after it, are handed over with it.
pub fn read_each(text: &str, each: impl FnMut(SystemTime, LogInterval)) -> Result<AgentInfo, LogError> {
    let mut deserializer = Deserializer::new();
    read_each_with(
        text,
        |bytes| deserializer.deserialize::<u64, _>(&mut &bytes[..]).map_err(|e| format!("{e:?}")),
        each,
    )
}

/// [`read_each`] with each interval's recorded buckets only: no histogram is
/// built (a full-range one per interval is allocated and zeroed, most of a
/// merge's time when intervals hold a few hundred buckets of tens of thousands).
pub fn read_each_counts(
    text: &str,
    each: impl FnMut(SystemTime, LogInterval<Counts>),
) -> Result<AgentInfo, LogError> {
    let mut decoder = CountsDecoder::default();
    read_each_with(text, |bytes| decoder.decode(bytes), each)
}

/// The bucket layout of an HdrHistogram (the crate's `Histogram::new_with_bounds`):
/// which value each index of its counts array stands for. Two histograms with
/// the same layout add index by index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layout {
    /// log2 of the lowest discernible value.
    unit: u32,
    /// log2 of half the sub-buckets of a bucket.
    half_magnitude: u32,
}

impl Layout {
    /// The layout of `digits` significant digits above `lowest` (>= 1).
    pub fn new(lowest: u64, digits: u32) -> Self {
        let unit = 63 - lowest.max(1).leading_zeros();
        let sub_count_magnitude = (2.0 * 10f64.powi(digits as i32)).log2().ceil() as u32;
        Layout { unit, half_magnitude: sub_count_magnitude.max(1) - 1 }
    }

    /// The layout of [`new_histogram`](super::stats::new_histogram): 1 us, 3 digits.
    pub fn ours() -> Self {
        Layout::new(1, 3)
    }

    /// The lowest value of the bucket at `index`; `None` beyond 64 bits.
    pub fn value_of(&self, index: usize) -> Option<u64> {
        let index = index as u64;
        let half = 1u64 << self.half_magnitude;
        let bucket = (index >> self.half_magnitude) as i64 - 1;
        let mut sub = (index & (half - 1)) + half;
        let bucket = if bucket < 0 {
            sub -= half;
            0
        } else {
            u32::try_from(bucket).ok()?
        };
        let shift = bucket.checked_add(self.unit)?;
        sub.checked_shl(shift).filter(|v| v.checked_shr(shift) == Some(sub))
    }

    /// The index of the bucket that holds `value` (the crate's `index_for`).
    pub fn index_of(&self, value: u64) -> usize {
        let sub_count_magnitude = self.half_magnitude + 1;
        let base = 64 - self.unit - sub_count_magnitude;
        let mask = ((1u64 << sub_count_magnitude) - 1) << self.unit;
        let bucket = base.saturating_sub((value | mask).leading_zeros());
        let sub = value >> (bucket + self.unit);
        (((u64::from(bucket) + 1) << self.half_magnitude) + sub - (1u64 << self.half_magnitude)) as usize
    }
}

/// An interval's recorded buckets: (index in the [`Layout::ours`] counts array,
/// count), in increasing order, with nothing at zero count. A histogram written
/// with another layout is mapped bucket by bucket (its lowest value's bucket).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counts {
    /// The buckets.
    pub buckets: Vec<(usize, u64)>,
    /// Their counts summed.
    pub total: u64,
}

/// Most bytes one interval's histogram may inflate to: a full-range histogram
/// of 3 significant digits over an hour of microseconds is about 200 KiB of
/// varints at worst; this bounds a hostile log's zip bomb.
const MAX_INFLATED: usize = 8 << 20;

/// Decodes the V2 (compressed) HdrHistogram encoding straight into [`Counts`],
/// reusing one inflater and its buffer across intervals (a new inflater per
/// interval allocated and zeroed its state each time).
struct CountsDecoder {
    inflater: flate2::Decompress,
    inflated: Vec<u8>,
}

impl Default for CountsDecoder {
    fn default() -> Self {
        CountsDecoder { inflater: flate2::Decompress::new(true), inflated: Vec::new() }
    }
}

impl CountsDecoder {
    /// Inflate the zlib stream `deflated` into `self.inflated`, at most [`MAX_INFLATED`] bytes.
    fn inflate(&mut self, deflated: &[u8]) -> Result<(), String> {
        use flate2::{FlushDecompress, Status};
        self.inflater.reset(true);
        self.inflated.clear();
        loop {
            if self.inflated.len() >= MAX_INFLATED {
                return Err(format!("inflates to over {MAX_INFLATED} bytes"));
            }
            let room = (deflated.len() * 4).max(4096).min(MAX_INFLATED - self.inflated.len());
            self.inflated.reserve(room);
            let (read, written) = (self.inflater.total_in(), self.inflated.len());
            let rest = deflated.get(read as usize..).unwrap_or_default();
            let status = self
                .inflater
                .decompress_vec(rest, &mut self.inflated, FlushDecompress::Finish)
                .map_err(|e| format!("inflate: {e}"))?;
            match status {
                Status::StreamEnd if self.inflated.len() <= MAX_INFLATED => return Ok(()),
                Status::StreamEnd => return Err(format!("inflates to over {MAX_INFLATED} bytes")),
                _ if self.inflater.total_in() == read && self.inflated.len() == written => {
                    return Err("inflate: cut short".into());
                }
                _ => {}
            }
        }
    }

    fn decode(&mut self, bytes: &[u8]) -> Result<Counts, String> {
        const V2_COOKIE: u32 = 0x1c84_9313;
        const V2_COMPRESSED_COOKIE: u32 = 0x1c84_9314;
        let be32 = |b: &[u8], at: usize| -> Result<u32, String> {
            b.get(at..at + 4)
                .and_then(|s| s.try_into().ok())
                .map(u32::from_be_bytes)
                .ok_or_else(|| "cut short".to_string())
        };
        let be64 = |b: &[u8], at: usize| -> Result<u64, String> {
            b.get(at..at + 8)
                .and_then(|s| s.try_into().ok())
                .map(u64::from_be_bytes)
                .ok_or_else(|| "cut short".to_string())
        };
        let compressed = match be32(bytes, 0)? {
            V2_COMPRESSED_COOKIE => true,
            V2_COOKIE => false,
            other => return Err(format!("not a V2 histogram (cookie {other:#x})")),
        };
        if compressed {
            let len = be32(bytes, 4)? as usize;
            let deflated = bytes.get(8..8 + len).ok_or("cut short")?;
            self.inflate(deflated)?;
        }
        let payload: &[u8] = if compressed { &self.inflated } else { bytes };
        if be32(payload, 0)? != V2_COOKIE {
            return Err("not a V2 histogram (inner cookie)".into());
        }
        let len = be32(payload, 4)? as usize;
        if be32(payload, 8)? != 0 {
            return Err("normalizing index offset not supported".into());
        }
        let digits = be32(payload, 12)?;
        let low = be64(payload, 16)?;
        if !(1..=5).contains(&digits) || low == 0 || f64::from_bits(be64(payload, 32)?) != 1.0 {
            return Err("unsupported histogram parameters".into());
        }
        let counts = payload.get(40..40 + len).ok_or("cut short")?;
        let theirs = Layout::new(low, digits);
        let ours = Layout::ours();
        // At most one bucket per byte: one allocation, no growth on the way.
        let mut out = Counts { buckets: Vec::with_capacity(counts.len()), total: 0 };
        let (mut at, mut index) = (0usize, 0usize);
        let same = theirs == ours;
        while let Some(&first) = counts.get(at) {
            let (mut zz, mut shift) = (0u64, 0u32);
            // Most counts and zero runs fit one byte: skip the loop for them.
            if first < 0x80 {
                at += 1;
                zz = u64::from(first);
            } else {
                loop {
                    let b = *counts.get(at).ok_or("varint cut short")?;
                    at += 1;
                    if shift == 56 {
                        zz |= u64::from(b) << 56;
                        break;
                    }
                    zz |= u64::from(b & 0x7f) << shift;
                    if b & 0x80 == 0 {
                        break;
                    }
                    shift += 7;
                }
            }
            let n = ((zz >> 1) as i64) ^ -((zz & 1) as i64);
            if n < 0 {
                index = index.saturating_add(usize::try_from(n.unsigned_abs()).unwrap_or(usize::MAX));
            } else {
                if n > 0 {
                    // The same layout adds index by index; a merge checks the range.
                    let mine = if same {
                        index
                    } else {
                        ours.index_of(theirs.value_of(index).ok_or("a value beyond 64 bits")?)
                    };
                    out.buckets.push((mine, n as u64));
                    out.total = out.total.checked_add(n as u64).ok_or("count overflow")?;
                }
                index = index.saturating_add(1);
            }
        }
        Ok(out)
    }
}

/// [`read_each`], decoding histograms with `decode`.
fn read_each_with<H>(
    text: &str,
    mut decode: impl FnMut(&[u8]) -> Result<H, String>,
    mut each: impl FnMut(SystemTime, LogInterval<H>),
) -> Result<AgentInfo, LogError> {
    let mut meta = None;
    let mut start = None;
    let mut base = None;
    let mut pending: Option<LogInterval<H>> = None;
    let mut count = 0;
    let mut end = None;
    let mut foreign_lines = 0;
    for (i, line) in text.lines().enumerate() {
        let bad = |what: String| LogError::Bad { line: i + 1, what };
        let line = line.trim_end_matches('\r');
        if line.len() > MAX_LINE {
            return Err(bad(format!("over {MAX_LINE} bytes")));
        }
        if let Some(json) = line.strip_prefix("#tcpkit ") {
            meta = Some(serde_json::from_str::<Meta>(json).map_err(|e| bad(e.to_string()))?);
        } else if let Some(json) = line.strip_prefix("#tcpkit-errors ") {
            let e: IntervalErrors = serde_json::from_str(json).map_err(|e| bad(e.to_string()))?;
            // It follows the interval it belongs to.
            match pending.as_mut() {
                Some(iv) => iv.errors = e.errors,
                None => return Err(bad("errors before any interval".into())),
            }
        } else if let Some(json) = line.strip_prefix("#tcpkit-end ") {
            end = Some(serde_json::from_str::<End>(json).map_err(|e| bad(e.to_string()))?);
        } else if line.starts_with("#[")
            || line.starts_with("Tag=")
            || line.starts_with(|c: char| c.is_ascii_digit())
        {
            // The crate's parser, one line at a time, so foreign lines cannot stop it.
            let with_newline = format!("{line}\n");
            let entry = IntervalLogIterator::new(with_newline.as_bytes()).next();
            match entry {
                Some(Ok(LogEntry::StartTime(t))) => start = Some(t),
                Some(Ok(LogEntry::BaseTime(t))) => base = Some(t),
                Some(Ok(LogEntry::Interval(h))) => {
                    let bytes = base64::engine::general_purpose::STANDARD
                        .decode(h.encoded_histogram())
                        .map_err(|e| bad(format!("histogram: {e}")))?;
                    let histogram = decode(&bytes).map_err(|e| bad(format!("histogram: {e}")))?;
                    // Timestamps count from BaseTime; we write BaseTime = StartTime.
                    let offset = match (start, base) {
                        (Some(s), Some(b)) => b.saturating_sub(s),
                        _ => Duration::ZERO,
                    };
                    let agent_start = start.ok_or_else(|| bad("an interval before #[StartTime]".into()))?;
                    if let Some(iv) = pending.take() {
                        each(SystemTime::UNIX_EPOCH + agent_start, iv);
                    }
                    count += 1;
                    pending = Some(LogInterval {
                        start: h.start_timestamp() + offset,
                        length: h.duration(),
                        histogram,
                        errors: BTreeMap::new(),
                    });
                }
                // Other comments (`#[MaxValueDivisor...]`) carry nothing we use.
                None => {}
                Some(Err(_)) if line.starts_with('#') => {}
                Some(Err(_)) => foreign_lines += 1,
            }
        } else if !line.starts_with('#') && !line.is_empty() {
            foreign_lines += 1;
        }
    }
    let meta = meta.ok_or(LogError::NoMeta)?;
    let start = SystemTime::UNIX_EPOCH + start.ok_or(LogError::NoStartTime)?;
    if let Some(iv) = pending {
        each(start, iv);
    }
    Ok(AgentInfo { meta, start, intervals: count, end, foreign_lines })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::conn::ErrorLog;
    use crate::bench::stats::new_histogram;

    /// Write a log of two intervals through the observer, as a run does.
    fn written() -> (String, Histogram<u64>) {
        let config = Config::new("127.0.0.1:9");
        let mut w = HdrLogWriter::new(Vec::new(), &config, "agent-a");
        let at = SystemTime::UNIX_EPOCH + Duration::from_millis(1_764_563_200_250);
        w.started(&Started {
            addr: "127.0.0.1:9".parse().unwrap(),
            at,
            connections: 10,
            first_id: 0,
            rate: None,
        });
        let mut total = new_histogram();
        let mut h = new_histogram();
        for v in [100, 200, 300] {
            h.record(v).unwrap();
        }
        total.add(&h).unwrap();
        let none = BTreeMap::new();
        w.interval(&Interval {
            start: Duration::ZERO,
            length: Duration::from_secs(1),
            histogram: &h,
            errors: &none,
        });
        let mut h2 = new_histogram();
        h2.record(5000).unwrap();
        total.add(&h2).unwrap();
        let errors = BTreeMap::from([("reset".to_string(), 2)]);
        w.interval(&Interval {
            start: Duration::from_secs(1),
            length: Duration::from_secs(1),
            histogram: &h2,
            errors: &errors,
        });
        let mut report = Report::for_tests(ErrorLog::default());
        report.errors.counts.insert("reset".into(), 2);
        let out = w.finish(&report).unwrap();
        (String::from_utf8(out).unwrap(), total)
    }

    #[test]
    fn a_written_log_reads_back_to_the_same_histograms_and_errors() {
        let (text, total) = written();
        assert!(text.starts_with("#tcpkit {"), "{text}");
        assert!(text.contains("#[StartTime: 1764563200.250 "), "{text}");
        assert!(text.contains("\n0.000,1.000,"), "{text}");
        let log = read(&text).unwrap();
        assert_eq!(log.meta.agent, "agent-a");
        assert_eq!(log.meta.workload, Workload::Hello);
        assert_eq!(log.meta.connections, 10);
        assert_eq!(log.start, SystemTime::UNIX_EPOCH + Duration::from_millis(1_764_563_200_250));
        assert_eq!(log.intervals.len(), 2);
        assert_eq!(log.intervals[1].start, Duration::from_secs(1));
        let mut sum = new_histogram();
        for iv in &log.intervals {
            sum.add(&iv.histogram).unwrap();
        }
        assert_eq!(sum, total);
        assert_eq!(log.intervals[1].errors.get("reset"), Some(&2));
        assert_eq!(log.end.unwrap().errors.get("reset"), Some(&2));
        assert_eq!(log.foreign_lines, 0);
    }

    #[test]
    fn counts_decode_to_the_crates_recorded_buckets() {
        use hdrhistogram::serialization::{Serializer, V2Serializer};
        let mut h = new_histogram();
        for (i, v) in
            [1u64, 2, 1023, 1024, 2047, 2048, 2049, 4096, 100_000, 3_599_999_999].into_iter().enumerate()
        {
            h.record_n(v, i as u64 + 1).unwrap();
        }
        let expected: Vec<(u64, u64)> =
            h.iter_recorded().map(|v| (v.value_iterated_to(), v.count_at_value())).collect();
        let lowest: Vec<(u64, u64)> = h
            .iter_recorded()
            .map(|v| (h.lowest_equivalent(v.value_iterated_to()), v.count_at_value()))
            .collect();
        for compressed in [true, false] {
            let mut bytes = Vec::new();
            if compressed {
                V2DeflateSerializer::new().serialize(&h, &mut bytes).unwrap();
            } else {
                V2Serializer::new().serialize(&h, &mut bytes).unwrap();
            }
            let counts = CountsDecoder::default().decode(&bytes).unwrap();
            assert_eq!(counts.total, h.len());
            // Each bucket by its lowest value; recording it again lands in the same bucket.
            let values: Vec<(u64, u64)> =
                counts.buckets.iter().map(|&(i, n)| (Layout::ours().value_of(i).unwrap(), n)).collect();
            assert_eq!(values, lowest, "compressed: {compressed}");
            let mut again = new_histogram();
            for &(v, n) in &values {
                again.record_n(v, n).unwrap();
            }
            let back: Vec<(u64, u64)> =
                again.iter_recorded().map(|v| (v.value_iterated_to(), v.count_at_value())).collect();
            assert_eq!(back, expected);
        }
        let mut bad = Vec::new();
        V2DeflateSerializer::new().serialize(&h, &mut bad).unwrap();
        bad.truncate(bad.len() / 2);
        assert!(CountsDecoder::default().decode(&bad).is_err());
        assert!(CountsDecoder::default().decode(b"nonsense").is_err());
    }

    #[test]
    fn layouts_index_values_as_the_crate_does() {
        use hdrhistogram::serialization::Serializer;
        let values =
            [1u64, 2, 3, 1023, 1024, 2047, 2048, 2049, 4095, 4096, 100_000, 123_456_789, 3_599_999_999];
        for (low, digits) in [(1u64, 3u8), (1, 2), (1, 4), (4, 3), (1000, 2)] {
            let layout = Layout::new(low, u32::from(digits));
            let mut h = Histogram::<u64>::new_with_bounds(low, 3_600_000_000, digits).unwrap();
            for &v in values.iter().filter(|&&v| v >= low) {
                let i = layout.index_of(v);
                assert_eq!(layout.value_of(i), Some(h.lowest_equivalent(v)), "{v} at {low}/{digits}");
                h.record(v).unwrap();
            }
            // A histogram of another layout decodes to the buckets of ours.
            let mut bytes = Vec::new();
            V2DeflateSerializer::new().serialize(&h, &mut bytes).unwrap();
            let counts = CountsDecoder::default().decode(&bytes).unwrap();
            let mut ours = new_histogram();
            for &v in values.iter().filter(|&&v| v >= low) {
                ours.record(h.lowest_equivalent(v)).unwrap();
            }
            let want: Vec<usize> =
                ours.iter_recorded().map(|v| Layout::ours().index_of(v.value_iterated_to())).collect();
            let mut got: Vec<usize> = counts.buckets.iter().map(|&(i, _)| i).collect();
            got.dedup();
            assert_eq!(got, want, "{low}/{digits}");
            assert_eq!(counts.total, h.len());
        }
        assert_eq!(Layout::ours().value_of(usize::MAX), None);
    }

    #[test]
    fn foreign_lines_are_skipped_and_counted() {
        let (text, _) = written();
        let mixed = format!("tcpkit bench: hello to 127.0.0.1:9\n{text}errors:      0\n");
        let log = read(&mixed).unwrap();
        assert_eq!(log.intervals.len(), 2);
        assert_eq!(log.foreign_lines, 2);
    }

    #[test]
    fn broken_logs_are_clear_errors() {
        assert!(matches!(read("hello\n"), Err(LogError::NoMeta)));
        let (text, _) = written();
        let no_start: String =
            text.lines().filter(|l| !l.starts_with("#[StartTime")).map(|l| format!("{l}\n")).collect();
        let err = read(&no_start).unwrap_err();
        assert!(err.to_string().contains("before #[StartTime]"), "{err}");
        let meta_only = text.lines().next().unwrap();
        assert!(matches!(read(meta_only), Err(LogError::NoStartTime)));
        let corrupt = text.replace(",HISTF", ",HISTX");
        assert!(matches!(read(&corrupt), Err(LogError::Bad { .. })), "{:?}", read(&corrupt));
        let cut = text.replace("#tcpkit {", "#tcpkit {oops");
        assert!(matches!(read(&cut), Err(LogError::Bad { line: 1, .. })));
    }

    #[test]
    fn a_failing_sink_is_reported_once_at_the_end() {
        struct Full;
        impl Write for Full {
            fn write(&mut self, _: &[u8]) -> io::Result<usize> {
                Err(io::Error::from(io::ErrorKind::StorageFull))
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        let mut w = HdrLogWriter::new(Full, &Config::new("a:1"), "x");
        w.started(&Started {
            addr: "127.0.0.1:9".parse().unwrap(),
            at: SystemTime::now(),
            connections: 1,
            first_id: 0,
            rate: None,
        });
        let err = w.finish(&Report::for_tests(ErrorLog::default())).map(|_| ()).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::StorageFull);
    }
}
