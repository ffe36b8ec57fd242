//! Latency and throughput statistics: an HDR histogram in microseconds and a
//! count of verified replies per second of the measured window.
//!
//! Connections collect samples in a small [`Batch`] and merge it into the shared
//! [`Stats`] now and then, so one histogram (about 200 KiB) serves every connection.
//!
//! Not for: deciding what is measured (warm-up, open or closed loop): callers
//! record only what counts.
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::Serialize;

/// Largest latency recorded exactly, in microseconds (one hour); longer ones are
/// recorded as this value.
pub const MAX_LATENCY_US: u64 = 3_600_000_000;

/// Longest measured window tracked per second (one day); later replies still count
/// in the histogram.
pub const MAX_SECONDS: usize = 86_400;

/// Samples a connection holds before merging them into the shared statistics.
pub const BATCH: usize = 64;

/// Longest a connection holds a sample before merging it, measured between the
/// completion times of its first and newest samples: bounds how late a sample
/// reaches its interval histogram when replies are slow to come.
pub const BATCH_AGE: Duration = Duration::from_millis(100);

/// Most interval histograms held at once (about 200 KiB each): intervals are
/// taken every second, so only a slow taker or a clock jump reaches it; then
/// samples go into the newest one held.
pub const MAX_OPEN_INTERVALS: usize = 64;

/// Verified replies: their latencies and when they completed.
#[derive(Debug, Clone)]
pub struct Stats {
    hist: Histogram<u64>,
    per_second: Vec<u64>,
    last: Duration,
    /// Histograms per interval of the window, when asked for ([`Stats::with_intervals`]).
    intervals: Option<Intervals>,
}

/// Interval histograms not yet taken: number `next` onwards, in order.
#[derive(Debug, Clone)]
struct Intervals {
    length: Duration,
    next: u64,
    open: std::collections::VecDeque<Histogram<u64>>,
}

impl Default for Stats {
    fn default() -> Self {
        Self::new()
    }
}

/// Latency percentiles, in microseconds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Summary {
    /// Samples.
    pub count: u64,
    /// Mean.
    pub mean_us: f64,
    /// Median.
    pub p50_us: u64,
    /// 90th percentile.
    pub p90_us: u64,
    /// 99th percentile.
    pub p99_us: u64,
    /// 99.9th percentile.
    pub p999_us: u64,
    /// Largest.
    pub max_us: u64,
}

impl Stats {
    /// Empty statistics: 1 us to one hour at 3 significant digits.
    pub fn new() -> Self {
        // In range by construction: 1 <= 2 * 1 < MAX_LATENCY_US, 3 significant digits.
        Stats { hist: new_histogram(), per_second: Vec::new(), last: Duration::ZERO, intervals: None }
    }

    /// Empty statistics that also keep one histogram per `length` of the window,
    /// for [`Stats::take_intervals`]. `length` is at least a millisecond.
    pub fn with_intervals(length: Duration) -> Self {
        let length = length.max(Duration::from_millis(1));
        Stats { intervals: Some(Intervals { length, next: 0, open: Default::default() }), ..Stats::new() }
    }

    /// Take the interval histograms before interval number `upto` (those not
    /// taken yet, empty ones included), oldest first, with their start in the window.
    /// A sample recorded later for a taken interval goes into the oldest one left.
    pub fn take_intervals(&mut self, upto: u64) -> Vec<(Duration, Histogram<u64>)> {
        let Some(iv) = &mut self.intervals else { return Vec::new() };
        let mut out = Vec::new();
        while iv.next < upto {
            let h = iv.open.pop_front().unwrap_or_else(new_histogram);
            out.push((iv.length * iv.next as u32, h));
            iv.next += 1;
        }
        out
    }

    /// The interval length, when intervals are kept.
    pub fn interval_length(&self) -> Option<Duration> {
        self.intervals.as_ref().map(|iv| iv.length)
    }

    /// Add a whole histogram recorded in the interval starting `at` into the window
    /// and lasting `length` (merging interval logs).
    pub fn add_interval(
        &mut self,
        hist: &Histogram<u64>,
        at: Duration,
        length: Duration,
    ) -> Result<(), String> {
        self.hist.add(hist).map_err(|e| format!("histogram out of range: {e:?}"))?;
        self.last = self.last.max(at + length);
        let second = at.as_secs() as usize;
        if second < MAX_SECONDS && !hist.is_empty() {
            if self.per_second.len() <= second {
                self.per_second.resize(second + 1, 0);
            }
            self.per_second[second] += hist.len();
        }
        Ok(())
    }

    /// Statistics made elsewhere (a merge): the histogram, replies per second and
    /// the end of the last one.
    pub fn from_parts(hist: Histogram<u64>, per_second: Vec<u64>, last: Duration) -> Self {
        Stats { hist, per_second, last, intervals: None }
    }

    /// The histogram of every sample.
    pub fn histogram(&self) -> &Histogram<u64> {
        &self.hist
    }

    /// Record one verified reply that took `latency` and completed `at` after the
    /// start of the measured window.
    pub fn record(&mut self, latency: Duration, at: Duration) {
        let us = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX).clamp(1, MAX_LATENCY_US);
        self.hist.saturating_record(us);
        if let Some(iv) = &mut self.intervals {
            // In u64 nanoseconds (584 years): a u128 division per sample is
            // measurable on the hot path.
            let nanos = |d: Duration| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
            let index = nanos(at) / nanos(iv.length).max(1);
            let slot = (index.saturating_sub(iv.next) as usize).min(MAX_OPEN_INTERVALS - 1);
            while iv.open.len() <= slot {
                iv.open.push_back(new_histogram());
            }
            iv.open[slot].saturating_record(us);
        }
        self.last = self.last.max(at);
        let second = at.as_secs() as usize;
        if second < MAX_SECONDS {
            if self.per_second.len() <= second {
                self.per_second.resize(second + 1, 0);
            }
            self.per_second[second] += 1;
        }
    }

    /// Add `batch` and empty it.
    pub fn absorb(&mut self, batch: &mut Batch) {
        for &(latency, at) in &batch.samples {
            self.record(latency, at);
        }
        batch.samples.clear();
    }

    /// Add every sample of `other`.
    pub fn merge(&mut self, other: &Stats) {
        // Same bounds on both sides, so adding cannot fail.
        let _ = self.hist.add(&other.hist);
        self.last = self.last.max(other.last);
        if self.per_second.len() < other.per_second.len() {
            self.per_second.resize(other.per_second.len(), 0);
        }
        for (a, b) in self.per_second.iter_mut().zip(&other.per_second) {
            *a += b;
        }
    }

    /// Replies recorded.
    pub fn count(&self) -> u64 {
        self.hist.len()
    }

    /// When the last recorded reply completed, from the start of the window.
    pub fn last(&self) -> Duration {
        self.last
    }

    /// Replies completed in each second of the measured window.
    pub fn per_second(&self) -> &[u64] {
        &self.per_second
    }

    /// The percentiles (all zero when nothing was recorded).
    pub fn summary(&self) -> Summary {
        let h = &self.hist;
        let q = |p: f64| if h.is_empty() { 0 } else { h.value_at_quantile(p) };
        Summary {
            count: h.len(),
            mean_us: if h.is_empty() { 0.0 } else { h.mean() },
            p50_us: q(0.5),
            p90_us: q(0.9),
            p99_us: q(0.99),
            p999_us: q(0.999),
            max_us: if h.is_empty() { 0 } else { h.max() },
        }
    }

    /// (percentile, latency us) points from 0 up to 99.999 and the maximum, for a
    /// percentile chart.
    pub fn percentile_curve(&self) -> Vec<(f64, u64)> {
        if self.hist.is_empty() {
            return Vec::new();
        }
        let mut out = Vec::new();
        // Dense where tails live: 0..90 by 1, then each further nine in 10 steps.
        for i in 0..90 {
            out.push((f64::from(i), self.hist.value_at_quantile(f64::from(i) / 100.0)));
        }
        for nines in 1..=4 {
            let base = 1.0 - 10f64.powi(-nines);
            let span = 10f64.powi(-nines) * 0.9;
            for step in 0..10 {
                let p = base + span * f64::from(step) / 10.0;
                out.push((p * 100.0, self.hist.value_at_quantile(p)));
            }
        }
        out.push((100.0, self.hist.max()));
        out
    }
}

/// An empty histogram: 1 us to [`MAX_LATENCY_US`] at 3 significant digits.
pub fn new_histogram() -> Histogram<u64> {
    // In range by construction: 1 <= 2 * 1 < MAX_LATENCY_US, 3 significant digits.
    Histogram::new_with_bounds(1, MAX_LATENCY_US, 3).unwrap_or_else(|_| unreachable!())
}

/// A connection's samples not yet merged; at most [`BATCH`] before a merge is due.
#[derive(Debug, Default)]
pub struct Batch {
    samples: Vec<(Duration, Duration)>,
}

impl Batch {
    /// Add a sample; true when the batch is full, or its first sample is over
    /// [`BATCH_AGE`] older than this one, and it should be absorbed.
    pub fn push(&mut self, latency: Duration, at: Duration) -> bool {
        self.samples.push((latency, at));
        self.samples.len() >= BATCH || self.samples.first().is_some_and(|&(_, first)| at >= first + BATCH_AGE)
    }

    /// Samples held.
    pub fn len(&self) -> usize {
        self.samples.len()
    }

    /// True when nothing is held.
    pub fn is_empty(&self) -> bool {
        self.samples.is_empty()
    }
}

/// Per-second throughput as a rate over the measured window, in replies/s.
pub fn rate(count: u64, window: Duration) -> f64 {
    if window.is_zero() { 0.0 } else { count as f64 / window.as_secs_f64() }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn percentiles_of_a_known_distribution() {
        let mut s = Stats::new();
        // 1..=1000 ms, once each: p50 = 500 ms, p99 = 990 ms, max = 1000 ms.
        for i in 1..=1000 {
            s.record(ms(i), Duration::ZERO);
        }
        let sum = s.summary();
        assert_eq!(sum.count, 1000);
        let near = |got: u64, want: u64| got.abs_diff(want) * 1000 <= want; // 3 significant digits
        assert!(near(sum.p50_us, 500_000), "{sum:?}");
        assert!(near(sum.p90_us, 900_000), "{sum:?}");
        assert!(near(sum.p99_us, 990_000), "{sum:?}");
        assert!(near(sum.p999_us, 999_000), "{sum:?}");
        assert!(near(sum.max_us, 1_000_000), "{sum:?}");
        assert!((sum.mean_us - 500_500.0).abs() < 1000.0, "{sum:?}");
    }

    #[test]
    fn a_tail_shows_in_p99_but_not_p50() {
        let mut s = Stats::new();
        for _ in 0..985 {
            s.record(Duration::from_micros(100), Duration::ZERO);
        }
        for _ in 0..15 {
            s.record(ms(50), Duration::ZERO);
        }
        let sum = s.summary();
        assert_eq!(sum.p50_us, 100);
        assert!(sum.p99_us >= 49_900, "{sum:?}");
    }

    #[test]
    fn empty_statistics_are_zero_not_a_panic() {
        let s = Stats::new();
        assert_eq!(s.summary().count, 0);
        assert_eq!(s.summary().p99_us, 0);
        assert!(s.percentile_curve().is_empty());
        assert_eq!(rate(0, Duration::ZERO), 0.0);
    }

    #[test]
    fn sub_microsecond_and_huge_latencies_are_clamped() {
        let mut s = Stats::new();
        s.record(Duration::from_nanos(10), Duration::ZERO);
        s.record(Duration::from_secs(10 * 3600), Duration::ZERO);
        let sum = s.summary();
        assert_eq!(sum.count, 2);
        assert!(sum.max_us >= MAX_LATENCY_US && sum.max_us <= MAX_LATENCY_US + MAX_LATENCY_US / 1000);
        assert_eq!(s.percentile_curve()[0].1, 1);
    }

    #[test]
    fn replies_are_counted_per_second_of_completion() {
        let mut s = Stats::new();
        s.record(ms(1), ms(100));
        s.record(ms(1), ms(999));
        s.record(ms(1), ms(2500));
        assert_eq!(s.per_second(), &[2, 0, 1]);
        // Beyond a day, the histogram still counts it.
        s.record(ms(1), Duration::from_secs(MAX_SECONDS as u64 + 5));
        assert_eq!(s.per_second().len(), 3);
        assert_eq!(s.count(), 4);
    }

    #[test]
    fn merging_adds_samples_and_seconds() {
        let mut a = Stats::new();
        let mut b = Stats::new();
        a.record(ms(1), ms(0));
        b.record(ms(9), ms(1500));
        b.record(ms(9), ms(1600));
        a.merge(&b);
        assert_eq!(a.count(), 3);
        assert_eq!(a.per_second(), &[1, 2]);
        assert_eq!(a.last(), ms(1600));
        assert!(a.summary().max_us >= 9000);
    }

    #[test]
    fn a_batch_fills_then_is_absorbed_and_emptied() {
        let mut s = Stats::new();
        let mut batch = Batch::default();
        for i in 0..BATCH - 1 {
            assert!(!batch.push(ms(1), ms(i as u64)));
        }
        assert!(batch.push(ms(1), ms(0)));
        s.absorb(&mut batch);
        assert!(batch.is_empty());
        assert_eq!(s.count(), BATCH as u64);
    }

    #[test]
    fn the_percentile_curve_rises_to_the_maximum() {
        let mut s = Stats::new();
        for i in 1..=10_000 {
            s.record(Duration::from_micros(i), Duration::ZERO);
        }
        let curve = s.percentile_curve();
        assert!(curve.windows(2).all(|w| w[0].0 < w[1].0 && w[0].1 <= w[1].1));
        assert_eq!(curve.last().unwrap(), &(100.0, s.summary().max_us));
    }

    #[test]
    fn intervals_hold_the_samples_of_their_time_and_add_up_to_the_total() {
        let mut s = Stats::with_intervals(Duration::from_secs(1));
        s.record(ms(1), ms(10));
        s.record(ms(2), ms(990));
        s.record(ms(3), ms(2500));
        let taken = s.take_intervals(2);
        let counts: Vec<_> = taken.iter().map(|(at, h)| (at.as_secs(), h.len())).collect();
        assert_eq!(counts, vec![(0, 2), (1, 0)], "the empty second is there too");
        // A late sample for a taken interval lands in the oldest one left.
        s.record(ms(4), ms(500));
        let rest = s.take_intervals(3);
        assert_eq!(rest.len(), 1);
        assert_eq!((rest[0].0, rest[0].1.len()), (Duration::from_secs(2), 2));
        assert_eq!(s.count(), 4);
        assert!(s.take_intervals(3).is_empty());
    }

    #[test]
    fn intervals_are_bounded_in_number() {
        let mut s = Stats::with_intervals(Duration::from_millis(1));
        s.record(ms(1), Duration::from_secs(3600));
        let Some(iv) = &s.intervals else { panic!() };
        assert_eq!(iv.open.len(), MAX_OPEN_INTERVALS);
        // Without intervals, nothing is kept per interval.
        let mut s = Stats::new();
        s.record(ms(1), ms(1));
        assert!(s.take_intervals(10).is_empty());
    }

    #[test]
    fn a_batch_is_absorbed_when_its_oldest_sample_ages() {
        let mut batch = Batch::default();
        assert!(!batch.push(ms(1), ms(0)));
        assert!(!batch.push(ms(1), BATCH_AGE - ms(1)));
        assert!(batch.push(ms(1), BATCH_AGE));
    }

    #[test]
    fn whole_interval_histograms_add_into_totals_and_seconds() {
        let mut a = Stats::new();
        let mut h = new_histogram();
        h.record(100).unwrap();
        h.record(200).unwrap();
        a.add_interval(&h, Duration::from_secs(3), Duration::from_secs(1)).unwrap();
        assert_eq!(a.count(), 2);
        assert_eq!(a.per_second(), &[0, 0, 0, 2]);
        assert_eq!(a.last(), Duration::from_secs(4));
    }

    #[test]
    fn rate_divides_by_the_window() {
        assert_eq!(rate(500, Duration::from_millis(250)), 2000.0);
    }
}
