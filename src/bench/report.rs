//! The result of a run and its three forms: a text report, one JSON object, and
//! an SVG chart (latency by percentile beside throughput per second, plotters).
//!
//! Not for: measuring. Everything here is computed from an [`Report`].
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use plotters::prelude::*;
use serde_json::json;

use super::conn::ErrorLog;
use super::stats::{Stats, rate};
use super::workload::Workload;

/// What a run did.
#[derive(Debug)]
#[non_exhaustive]
pub struct Report {
    /// The workload.
    pub workload: Workload,
    /// The server.
    pub addr: SocketAddr,
    /// Connections of this run (its share, with a shard).
    pub connections: u64,
    /// The number of its first connection (0 without a shard).
    pub first_id: u64,
    /// Connections established (sessions, for churn).
    pub established: u64,
    /// Connection attempts that failed.
    pub connect_failed: u64,
    /// `hold`: connections open and correct at the end.
    pub held: u64,
    /// `--rate`, when open loop.
    pub rate: Option<f64>,
    /// Requests in flight per connection.
    pub pipeline: u32,
    /// The warm-up before measuring.
    pub warmup: Duration,
    /// The measured window: the duration, or until the last reply with `-n`.
    pub window: Duration,
    /// Measured latencies (replies, or sessions for churn).
    pub stats: Stats,
    /// Errors.
    pub errors: ErrorLog,
    /// Verified replies including the warm-up.
    pub verified_total: u64,
}

impl Report {
    /// 2000 replies over 2 s to 4 connections, with `errors`.
    #[cfg(test)]
    pub(crate) fn for_tests(errors: ErrorLog) -> Report {
        let mut stats = Stats::new();
        for i in 0..2000u64 {
            stats.record(Duration::from_micros(100 + i % 50), Duration::from_millis(i));
        }
        Report {
            workload: Workload::Hello,
            addr: "127.0.0.1:9".parse().unwrap(),
            connections: 4,
            first_id: 0,
            established: 4,
            connect_failed: 0,
            held: 0,
            rate: None,
            pipeline: 1,
            warmup: Duration::ZERO,
            window: Duration::from_secs(2),
            stats,
            errors,
            verified_total: 2000,
        }
    }

    /// Measured verified replies (sessions for churn) per second.
    pub fn throughput(&self) -> f64 {
        rate(self.stats.count(), self.window)
    }

    fn unit(&self) -> &'static str {
        if self.workload == Workload::Churn { "sessions" } else { "replies" }
    }

    /// The one-line verdict when the run failed, `None` when it had no error.
    pub fn verdict(&self) -> Option<String> {
        let total = self.errors.total();
        if total == 0 {
            return None;
        }
        let kinds: Vec<String> = self.errors.counts.iter().map(|(k, n)| format!("{k} {n}")).collect();
        let mut line = format!(
            "bench: {total} error{} ({}) beside {} verified {}",
            if total == 1 { "" } else { "s" },
            kinds.join(", "),
            self.verified_total,
            self.unit()
        );
        if let Some(e) = self.errors.first.first() {
            let _ = write!(line, "; first: conn {}: {}", e.conn, e.message);
        }
        Some(line)
    }

    /// The human-readable report.
    pub fn text(&self) -> String {
        let mut s = String::new();
        let mode = match self.rate {
            Some(r) => format!("open loop at {r} {}/s", self.unit()),
            None => "closed loop".to_string(),
        };
        let pipeline =
            if self.pipeline > 1 { format!(", pipeline {}", self.pipeline) } else { String::new() };
        let warm = if self.warmup.is_zero() {
            String::new()
        } else {
            format!(" after {:.2} s warm-up", self.warmup.as_secs_f64())
        };
        let _ = writeln!(
            s,
            "tcpkit bench: {} to {}, {} connections, {mode}{pipeline}, {:.2} s measured{warm}",
            format!("{:?}", self.workload).to_lowercase(),
            self.addr,
            self.connections,
            self.window.as_secs_f64()
        );
        let _ = writeln!(s, "connections: {} established, {} failed", self.established, self.connect_failed);
        if self.workload == Workload::Hold {
            let _ = writeln!(s, "held:        {} of {} to the end", self.held, self.connections);
        } else {
            let sum = self.stats.summary();
            let _ = writeln!(
                s,
                "{:<12} {} verified, {:.1}/s",
                format!("{}:", self.unit()),
                sum.count,
                self.throughput()
            );
            let _ = writeln!(
                s,
                "latency:     p50 {}  p90 {}  p99 {}  p99.9 {}  max {}",
                us(sum.p50_us),
                us(sum.p90_us),
                us(sum.p99_us),
                us(sum.p999_us),
                us(sum.max_us)
            );
        }
        let total = self.errors.total();
        let kinds: Vec<String> = self.errors.counts.iter().map(|(k, n)| format!("{k} {n}")).collect();
        if total == 0 {
            let _ = writeln!(s, "errors:      0");
        } else {
            let _ = writeln!(s, "errors:      {total} ({})", kinds.join(", "));
            for e in &self.errors.first {
                let _ = writeln!(s, "  conn {}: {}", e.conn, e.message);
            }
        }
        s
    }

    /// The whole result as one JSON object (latencies in microseconds).
    pub fn json(&self) -> serde_json::Value {
        let first = &self.errors.first;
        json!({
            "workload": self.workload,
            "addr": self.addr.to_string(),
            "connections": self.connections,
            "established": self.established,
            "connect_failed": self.connect_failed,
            "held": self.held,
            "rate": self.rate,
            "pipeline": self.pipeline,
            "warmup_s": self.warmup.as_secs_f64(),
            "window_s": self.window.as_secs_f64(),
            "verified": self.stats.count(),
            "verified_total": self.verified_total,
            "throughput": self.throughput(),
            "latency": self.stats.summary(),
            "per_second": self.stats.per_second(),
            "errors": self.errors.total(),
            "errors_by_kind": self.errors.counts,
            "first_errors": first,
            "ok": self.errors.total() == 0,
        })
    }

    /// Write the latency-percentile and throughput-per-second chart to `path`.
    pub fn plot(&self, path: &Path) -> Result<(), String> {
        let curve = self.stats.percentile_curve();
        let per_second = self.stats.per_second();
        let title = format!(
            "{} to {}, {} connections",
            format!("{:?}", self.workload).to_lowercase(),
            self.addr,
            self.connections
        );
        let root = SVGBackend::new(path, (1100, 420)).into_drawing_area();
        let draw = || -> Result<(), Box<dyn std::error::Error>> {
            root.fill(&WHITE)?;
            let root = root.titled(&title, ("sans-serif", 18))?;
            let (left, right) = root.split_horizontally(560);
            // Percentiles on a "nines" axis: x = log10(1 / (1 - p)), so 90, 99, 99.9 are evenly spaced.
            let nines = |p: f64| -(1.0 - (p / 100.0).min(0.99999)).log10();
            let max_ms = curve.iter().map(|&(_, v)| v as f64 / 1000.0).fold(0.001, f64::max);
            let mut chart = ChartBuilder::on(&left)
                .caption(format!("latency by percentile ({})", self.unit()), ("sans-serif", 15))
                .margin(10)
                .x_label_area_size(35)
                .y_label_area_size(55)
                .build_cartesian_2d(0f64..5f64, 0f64..max_ms * 1.05)?;
            chart
                .configure_mesh()
                .x_labels(6)
                .x_label_formatter(&|x| match x.round() as i32 {
                    0 => "0%".into(),
                    n => format!("{}%", 100.0 - 10f64.powi(2 - n)),
                })
                .x_desc("percentile")
                .y_desc("ms")
                .draw()?;
            chart.draw_series(LineSeries::new(
                curve.iter().map(|&(p, v)| (nines(p), v as f64 / 1000.0)),
                &BLUE,
            ))?;
            let max_rate = per_second.iter().copied().max().unwrap_or(1).max(1) as f64;
            let secs = per_second.len().max(1) as f64;
            let mut chart = ChartBuilder::on(&right)
                .caption(format!("verified {} per second", self.unit()), ("sans-serif", 15))
                .margin(10)
                .x_label_area_size(35)
                .y_label_area_size(70)
                .build_cartesian_2d(0f64..secs, 0f64..max_rate * 1.1)?;
            chart
                .configure_mesh()
                .x_desc("second")
                .y_desc("per second")
                .y_label_formatter(&|v| format!("{v:.0}"))
                .draw()?;
            // Each point at the middle of its second; a partial last second is left out.
            let full = (self.window.as_secs_f64().floor() as usize).min(per_second.len());
            chart.draw_series(LineSeries::new(
                per_second[..full].iter().enumerate().map(|(i, &n)| (i as f64 + 0.5, n as f64)),
                &RED,
            ))?;
            root.present()?;
            Ok(())
        };
        draw().map_err(|e| format!("plot: {}: {e}", path.display()))
    }
}

/// A latency in microseconds, in the unit that reads best.
pub fn us(v: u64) -> String {
    if v < 1000 {
        format!("{v} us")
    } else if v < 1_000_000 {
        format!("{:.2} ms", v as f64 / 1000.0)
    } else {
        format!("{:.2} s", v as f64 / 1e6)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::verify::ConnError;

    fn outcome(errors: ErrorLog) -> Report {
        Report::for_tests(errors)
    }

    #[test]
    fn a_clean_run_has_no_verdict_and_reports_throughput() {
        let o = outcome(ErrorLog::default());
        assert_eq!(o.verdict(), None);
        assert_eq!(o.throughput(), 1000.0);
        let text = o.text();
        assert!(text.contains("replies:     2000 verified, 1000.0/s"), "{text}");
        assert!(text.contains("errors:      0"), "{text}");
        let j = o.json();
        assert_eq!(j["ok"], true);
        assert_eq!(j["verified"], 2000);
        assert_eq!(j["per_second"], json!([1000, 1000]));
        assert!(j["latency"]["p99_us"].as_u64().unwrap() >= 140);
    }

    #[test]
    fn errors_give_a_one_line_verdict_with_the_first_error() {
        let mut log = ErrorLog { limit: 2, ..Default::default() };
        log.add(
            3,
            &ConnError::Mismatch {
                offset: 8,
                expected: b"Hello, a!\n".to_vec(),
                got: b"Hello, a\n".to_vec(),
            },
        );
        log.add(5, &ConnError::Reset);
        log.add(6, &ConnError::Mismatch { offset: 0, expected: b"x".to_vec(), got: b"y".to_vec() });
        assert_eq!(log.first.len(), 2, "only the first two kept in full");
        let o = outcome(log);
        let v = o.verdict().unwrap();
        assert!(!v.contains('\n'));
        assert!(
            v.starts_with("bench: 3 errors (reset 1, wrong reply 2) beside 2000 verified replies"),
            "{v}"
        );
        assert!(
            v.contains(r#"first: conn 3: wrong reply at byte 8: expected "Hello, a!\n", got "Hello, a\n""#),
            "{v}"
        );
        let text = o.text();
        assert!(text.contains("  conn 5: connection reset"), "{text}");
        assert_eq!(o.json()["errors_by_kind"]["wrong reply"], 2);
    }

    #[test]
    fn the_plot_is_an_svg_with_both_charts() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.svg");
        outcome(ErrorLog::default()).plot(&path).unwrap();
        let svg = std::fs::read_to_string(&path).unwrap();
        assert!(svg.starts_with("<svg"), "{}", &svg[..40]);
        assert!(svg.contains("latency by percentile") && svg.contains("per second"));
        assert!(svg.contains("<polyline"));
    }

    #[test]
    fn latencies_read_in_the_best_unit() {
        assert_eq!(us(999), "999 us");
        assert_eq!(us(1500), "1.50 ms");
        assert_eq!(us(2_500_000), "2.50 s");
    }
}
