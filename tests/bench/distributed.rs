//! Bench across agents: interval logs (`--hdr-log`), shards, start times, and
//! the merge of many agents' logs, checked against `tcpkit serve`'s own counts
//! and against another implementation of HdrHistogram (the PyPI `hdrhistogram`
//! package, which CI installs).
use std::process::Command;

use tcpkit::bench::hdrlog;
use tcpkit::bench::stats::new_histogram;

use super::{bench, start_serve, stderr};
use crate::util::tcpkit;

/// What the Python `hdrhistogram` package makes of interval logs, all added up.
struct PyHistogram {
    count: u64,
    /// Values at p50, p90, p99 and p99.9.
    percentiles: Vec<u64>,
    max: u64,
    /// Every recorded bucket: (highest equivalent value, count).
    buckets: Vec<(u64, u64)>,
}

/// Decode interval logs with the Python `hdrhistogram` package and add them up.
fn python_decode(paths: &[&std::path::Path]) -> PyHistogram {
    let script = r#"
import sys
from hdrh.histogram import HdrHistogram
from hdrh.log import HistogramLogReader
total = HdrHistogram(1, 3600000000, 3)
for path in sys.argv[1:]:
    reader = HistogramLogReader(path, HdrHistogram(1, 3600000000, 3))
    while True:
        h = reader.get_next_interval_histogram()
        if h is None:
            break
        total.add(h)
print(total.get_total_count())
for p in (50, 90, 99, 99.9):
    print(total.get_value_at_percentile(p))
print(total.get_max_value())
for item in total.get_recorded_iterator():
    print(item.value_iterated_to, item.count_at_value_iterated_to)
"#;
    let out = Command::new("python3").arg("-c").arg(script).args(paths).output().expect("python3 runs");
    assert!(out.status.success(), "python3 hdrh: {}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8(out.stdout).unwrap();
    let mut lines = text.lines();
    let mut next = || lines.next().expect("a line").trim().parse::<u64>().unwrap();
    let count = next();
    let percentiles = (0..4).map(|_| next()).collect();
    let max = next();
    let buckets = text
        .lines()
        .skip(6)
        .map(|l| {
            let (v, c) = l.split_once(' ').unwrap();
            (v.parse().unwrap(), c.parse().unwrap())
        })
        .collect();
    PyHistogram { count, percentiles, max, buckets }
}

/// The histogram's buckets as Python lists them.
fn buckets(h: &hdrhistogram::Histogram<u64>) -> Vec<(u64, u64)> {
    h.iter_recorded().map(|v| (v.value_iterated_to(), v.count_at_value())).collect()
}

/// Python ranks a percentile by rounding, Rust by ceiling: the same histogram
/// then gives values at most one sample's rank apart.
fn same_percentiles(h: &hdrhistogram::Histogram<u64>, py: &[u64]) {
    let step = 1.0 / h.len() as f64;
    for (q, got) in [0.5, 0.9, 0.99, 0.999].into_iter().zip(py) {
        let (lo, hi) = (h.value_at_quantile(q - step), h.value_at_quantile((q + step).min(1.0)));
        assert!((lo..=hi).contains(got), "p{}: python {got}, rust {lo}..={hi}", q * 100.0);
    }
}

#[test]
fn an_hdr_log_holds_every_verified_reply_and_decodes_with_python_hdrh() {
    let (_serve, addr) = start_serve(&[]);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("agent.hlog");
    let (out, j) = bench(
        &addr,
        &["-c", "4", "-d", "2.5", "--hdr-interval", "500ms", "--hdr-log", path.to_str().unwrap()],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let text = std::fs::read_to_string(&path).unwrap();
    let log = hdrlog::read(&text).unwrap();
    assert_eq!(log.meta.connections, 4);
    assert_eq!(log.meta.target, addr);
    assert!(log.intervals.len() >= 5, "{} intervals", log.intervals.len());
    let mut sum = new_histogram();
    for iv in &log.intervals {
        sum.add(&iv.histogram).unwrap();
    }
    let verified = j["verified"].as_u64().unwrap();
    assert!(verified > 0);
    assert_eq!(sum.len(), verified, "the intervals add up to the report");
    assert_eq!(sum.value_at_quantile(0.99), j["latency"]["p99_us"].as_u64().unwrap());
    let py = python_decode(&[&path]);
    assert_eq!(py.count, verified, "python count");
    assert_eq!(py.buckets, buckets(&sum), "python sees the same buckets");
    assert_eq!(py.max, sum.max());
    same_percentiles(&sum, &py.percentiles);
}

#[test]
fn an_hdr_log_on_stdout_leaves_the_report_on_stderr() {
    let (_serve, addr) = start_serve(&[]);
    let out = tcpkit().args(["bench", &addr, "-c", "2", "-n", "50", "--hdr-log", "-"]).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let log = hdrlog::read(&String::from_utf8_lossy(&out.stdout)).unwrap();
    assert_eq!(log.foreign_lines, 0, "nothing but the log on stdout");
    assert_eq!(log.intervals.iter().map(|iv| iv.histogram.len()).sum::<u64>(), 50);
    assert!(stderr(&out).contains("replies:     50 verified"), "{}", stderr(&out));
}
