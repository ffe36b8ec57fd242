//! `--find-max-rate`: the highest open-loop rate whose latency target holds with
//! zero errors. Short open-loop steps (latency from the intended send time, so
//! coordinated omission is corrected), first doubling from the lowest rate until
//! a step fails, then halving the gap between the best pass and the lowest fail.
//!
//! The search itself ([`Search`]) is a state machine free of I/O, tested with a
//! made-up server; [`find_max_rate`] drives it with real runs.
//!
//! With `--shard` the agents do not talk to each other, so none can wait for a
//! verdict: every agent runs the same fixed ladder of rates ([`Schedule`]), step
//! `k` at `--start-at + k x (warm-up + step + gap)`, each taking its share of the
//! step's rate and logging the step to its `--hdr-log`; `tcpkit bench merge`
//! then judges every step on the added histograms and gives the answer.
//!
//! Not for: adding the agents' steps up (`merge.rs`).
use std::fmt;
use std::fmt::Write as _;
use std::path::Path;
use std::time::{Duration, SystemTime};

use plotters::prelude::*;
use serde::Serialize;

use super::{BenchError, Config, Observer, Report};

/// Most steps one search runs.
pub const MAX_STEPS: u32 = 100;
/// Steps by default.
pub const DEFAULT_STEPS: u32 = 10;
/// Measured time of each step by default.
pub const DEFAULT_STEP: Duration = Duration::from_secs(5);
/// The lowest rate tried by default, requests per second.
pub const DEFAULT_MIN_RATE: f64 = 100.0;
/// The highest rate tried by default.
pub const DEFAULT_MAX_RATE: f64 = 1_000_000.0;
/// Time from the end of one sharded step's measured window to the next step's
/// warm-up, by default: the last replies drain and the connections close, and
/// the next step connects.
pub const DEFAULT_STEP_GAP: Duration = Duration::from_secs(2);
/// The search stops when the best pass is within this fraction of the lowest fail.
pub const PRECISION: f64 = 0.05;
/// A step must complete at least this fraction of its offered requests: below
/// it, the generator or the server fell behind, whatever the latency says.
pub const MIN_COMPLETED: f64 = 0.95;

/// A latency target: every percentile at or under its bound (`p99<=10ms,p50<=1ms`).
#[derive(Debug, Clone, PartialEq)]
pub struct Slo {
    /// (percentile 0..=100, bound).
    pub targets: Vec<(f64, Duration)>,
}

impl std::str::FromStr for Slo {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let mut targets = Vec::new();
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let bad = || format!("not pNN<=TIME: {part:?} (try p99<=10ms)");
            let (p, bound) = part.split_once("<=").ok_or_else(bad)?;
            let p: f64 = p.trim().strip_prefix('p').ok_or_else(bad)?.parse().map_err(|_| bad())?;
            if !(p > 0.0 && p <= 100.0) {
                return Err(format!("percentile out of 0..=100: {part:?}"));
            }
            let bound = bound.trim();
            let (number, scale) = if let Some(n) = bound.strip_suffix("us") {
                (n, 1e-6)
            } else if let Some(n) = bound.strip_suffix("ms") {
                (n, 1e-3)
            } else if let Some(n) = bound.strip_suffix('s') {
                (n, 1.0)
            } else {
                return Err(format!("{part:?}: give the bound a unit (us, ms, s)"));
            };
            let secs: f64 = number.trim().parse().map_err(|_| bad())?;
            if !(secs.is_finite() && secs > 0.0 && secs * scale <= 3600.0) {
                return Err(format!("bound out of range: {part:?}"));
            }
            targets.push((p, Duration::from_secs_f64(secs * scale)));
        }
        if targets.is_empty() {
            return Err("no latency target given (try p99<=10ms)".into());
        }
        Ok(Slo { targets })
    }
}

impl fmt::Display for Slo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, (p, d)) in self.targets.iter().enumerate() {
            let sep = if i == 0 { "" } else { "," };
            let us = d.as_micros();
            match us {
                _ if us % 1_000_000 == 0 => write!(f, "{sep}p{p}<={}s", us / 1_000_000)?,
                _ if us % 1000 == 0 => write!(f, "{sep}p{p}<={}ms", us / 1000)?,
                _ => write!(f, "{sep}p{p}<={us}us")?,
            }
        }
        Ok(())
    }
}

/// How to search.
#[derive(Debug, Clone, PartialEq)]
pub struct SearchConfig {
    /// The latency target.
    pub slo: Slo,
    /// The lowest rate tried (the first step).
    pub min_rate: f64,
    /// The highest rate tried.
    pub max_rate: f64,
    /// Most steps, 1 to [`MAX_STEPS`].
    pub steps: u32,
    /// Measured time of each step.
    pub step: Duration,
    /// With `--shard`: time between one step's window and the next step's warm-up.
    pub gap: Duration,
}

/// The fixed plan of a sharded search: the same on every agent, computed from
/// the flags alone, so the agents take the same step at the same time.
#[derive(Debug, Clone, PartialEq)]
pub struct Schedule {
    /// The offered rate of each step, in total over all agents: geometric from
    /// the lowest to the highest rate (one step: the lowest).
    pub rates: Vec<f64>,
    /// When step 0's measured window opens.
    pub start_at: SystemTime,
    /// From one step's window to the next one's: warm-up + step + gap.
    pub period: Duration,
}

impl Schedule {
    /// The schedule of `search` from `start_at`, each step after `warmup`.
    pub fn new(search: &SearchConfig, start_at: SystemTime, warmup: Duration) -> Self {
        let n = search.steps.max(1);
        let ratio = search.max_rate / search.min_rate;
        let rates = (0..n)
            .map(|k| match k {
                0 => search.min_rate,
                k if k + 1 == n => search.max_rate,
                k => search.min_rate * ratio.powf(f64::from(k) / f64::from(n - 1)),
            })
            .collect();
        Schedule { rates, start_at, period: warmup + search.step + search.gap }
    }

    /// When step `k`'s measured window opens.
    pub fn step_start(&self, k: usize) -> SystemTime {
        self.start_at + self.period * k as u32
    }
}

/// One step's result.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Step {
    /// Offered rate, requests per second.
    pub rate: f64,
    /// Verified replies per second.
    pub achieved: f64,
    /// Median, us.
    pub p50_us: u64,
    /// 99th percentile, us.
    pub p99_us: u64,
    /// Errors.
    pub errors: u64,
    /// Why it failed; `None` when it passed.
    pub failed: Option<String>,
}

impl Step {
    /// Judge a step's report against the target.
    pub fn judge(rate: f64, report: &Report, slo: &Slo) -> Step {
        let h = report.stats.histogram();
        let at = |p: f64| if h.is_empty() { 0 } else { h.value_at_quantile(p / 100.0) };
        let errors = report.errors.total();
        let achieved = report.throughput();
        let mut failed = None;
        if errors > 0 {
            failed = Some(format!("{errors} errors"));
        } else if achieved < rate * MIN_COMPLETED {
            failed = Some(format!("{achieved:.0}/s of {rate:.0}/s completed"));
        } else {
            for (p, bound) in &slo.targets {
                let got = at(*p);
                if u128::from(got) > bound.as_micros() {
                    failed = Some(format!(
                        "p{p} {} > {}",
                        super::report::us(got),
                        super::report::us(bound.as_micros() as u64)
                    ));
                    break;
                }
            }
        }
        Step { rate, achieved, p50_us: at(50.0), p99_us: at(99.0), errors, failed }
    }
}

/// The search's state: which rate to try next, from the steps so far.
#[derive(Debug, Clone)]
pub struct Search {
    config: SearchConfig,
    /// Steps run, in order.
    pub steps: Vec<Step>,
    best: Option<f64>,
    lowest_fail: Option<f64>,
    /// Set on a shard's own search: its steps are its share, not the answer.
    pub shard: Option<super::Shard>,
}

impl Search {
    /// A search that has run nothing yet.
    pub fn new(config: SearchConfig) -> Self {
        Search { config, steps: Vec::new(), best: None, lowest_fail: None, shard: None }
    }

    /// The next rate to try; `None` when the search is over.
    pub fn next_rate(&self) -> Option<f64> {
        let c = &self.config;
        if self.steps.len() >= c.steps as usize {
            return None;
        }
        match (self.best, self.lowest_fail) {
            (None, None) => Some(c.min_rate),
            // Even the lowest rate failed: nothing lower is tried.
            (None, Some(_)) => None,
            (Some(b), None) if b >= c.max_rate => None,
            (Some(b), None) => Some((b * 2.0).min(c.max_rate)),
            (Some(b), Some(f)) if f <= b * (1.0 + PRECISION) => None,
            (Some(b), Some(f)) => Some((b + f) / 2.0),
        }
    }

    /// Record a step's result.
    pub fn record(&mut self, step: Step) {
        if step.failed.is_none() {
            self.best = Some(self.best.map_or(step.rate, |b| b.max(step.rate)));
        } else {
            self.lowest_fail = Some(self.lowest_fail.map_or(step.rate, |f| f.min(step.rate)));
        }
        self.steps.push(step);
    }

    /// The latency target.
    pub fn slo(&self) -> &Slo {
        &self.config.slo
    }

    /// The highest rate that passed.
    pub fn best(&self) -> Option<f64> {
        self.best
    }

    /// The steps and the answer as text.
    pub fn text(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(s, "tcpkit bench --find-max-rate: target {}, zero errors", self.config.slo);
        let _ = writeln!(
            s,
            "  {:>10} {:>10} {:>10} {:>10} {:>7}  verdict",
            "offered/s", "achieved/s", "p50", "p99", "errors"
        );
        for st in &self.steps {
            let _ = writeln!(
                s,
                "  {:>10.0} {:>10.0} {:>10} {:>10} {:>7}  {}",
                st.rate,
                st.achieved,
                super::report::us(st.p50_us),
                super::report::us(st.p99_us),
                st.errors,
                st.failed.as_deref().map_or("pass".to_string(), |f| format!("fail: {f}"))
            );
        }
        if let Some(sh) = self.shard {
            let _ = writeln!(
                s,
                "these are shard {}/{}'s steps (its share of each rate); the answer is `tcpkit bench merge` \
                 of every agent's --hdr-log",
                sh.index, sh.count
            );
            return s;
        }
        match self.best {
            Some(b) => {
                let _ = writeln!(s, "highest rate meeting the target: {b:.0}/s");
            }
            None => {
                let _ = writeln!(s, "no rate tried met the target");
            }
        }
        s
    }

    /// The steps and the answer as JSON.
    pub fn json(&self) -> serde_json::Value {
        let mut j = serde_json::json!({
            "slo": self.config.slo.to_string(),
            "steps": self.steps,
            "max_rate": self.best,
        });
        if let Some(sh) = self.shard {
            // A shard's steps are its share: the answer comes from the merge.
            j["max_rate"] = serde_json::Value::Null;
            j["shard"] = serde_json::json!(format!("{}/{}", sh.index, sh.count));
        }
        j
    }

    /// Latency (p50, p99) against offered rate, as an SVG chart.
    pub fn plot(&self, path: &Path) -> Result<(), String> {
        let mut points: Vec<&Step> = self.steps.iter().collect();
        points.sort_by(|a, b| a.rate.total_cmp(&b.rate));
        let max_rate = points.iter().map(|p| p.rate).fold(1.0, f64::max);
        let max_ms = points.iter().map(|p| p.p99_us as f64 / 1000.0).fold(0.001, f64::max);
        let root = SVGBackend::new(path, (800, 450)).into_drawing_area();
        let draw = || -> Result<(), Box<dyn std::error::Error>> {
            root.fill(&WHITE)?;
            let mut chart = ChartBuilder::on(&root)
                .caption(
                    format!("latency against offered rate (target {})", self.config.slo),
                    ("sans-serif", 16),
                )
                .margin(10)
                .x_label_area_size(35)
                .y_label_area_size(55)
                .build_cartesian_2d(0f64..max_rate * 1.05, 0f64..max_ms * 1.1)?;
            chart.configure_mesh().x_desc("offered requests/s").y_desc("ms").draw()?;
            let p50 = points.iter().map(|p| (p.rate, p.p50_us as f64 / 1000.0));
            chart
                .draw_series(LineSeries::new(p50, &BLUE))?
                .label("p50")
                .legend(|(x, y)| PathElement::new([(x, y), (x + 15, y)], BLUE));
            let p99 = points.iter().map(|p| (p.rate, p.p99_us as f64 / 1000.0));
            chart
                .draw_series(LineSeries::new(p99, &RED))?
                .label("p99")
                .legend(|(x, y)| PathElement::new([(x, y), (x + 15, y)], RED));
            // Failed steps as crosses.
            chart.draw_series(
                points
                    .iter()
                    .filter(|p| p.failed.is_some())
                    .map(|p| Cross::new((p.rate, p.p99_us as f64 / 1000.0), 5, RED)),
            )?;
            chart.configure_series_labels().border_style(BLACK).draw()?;
            root.present()?;
            Ok(())
        };
        draw().map_err(|e| format!("plot: {}: {e}", path.display()))
    }
}

/// A sharded step about to run (told to the [`Observer`] before its run).
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct StepStart {
    /// Its place in the schedule, from 0.
    pub index: u32,
    /// Steps in the schedule.
    pub steps: u32,
    /// Its offered rate over all agents, requests per second.
    pub rate: f64,
    /// The latency target, as given.
    pub slo: String,
}

/// Run the search against the server `config` describes: each step is a run of
/// `search.step` at the step's rate, with `config`'s warm-up and connections.
pub async fn find_max_rate(
    config: &Config,
    search: SearchConfig,
    observer: &mut dyn Observer,
) -> Result<Search, BenchError> {
    if !(search.min_rate > 0.0
        && search.min_rate.is_finite()
        && search.max_rate >= search.min_rate
        && search.max_rate.is_finite())
    {
        return Err(BenchError::Rate(search.min_rate));
    }
    if !(1..=MAX_STEPS).contains(&search.steps) {
        return Err(BenchError::Steps(search.steps));
    }
    let mut state = Search::new(search);
    if let Some(shard) = config.shard {
        let start_at = config.start_at.ok_or(BenchError::SearchShardNeedsStart)?;
        let schedule = Schedule::new(&state.config, start_at, config.warmup);
        let steps = schedule.rates.len() as u32;
        state.shard = Some(shard);
        for (k, &rate) in schedule.rates.iter().enumerate() {
            let mut step_config = config.clone();
            step_config.rate = Some(rate);
            step_config.duration = Some(state.config.step);
            step_config.requests = None;
            step_config.start_at = Some(schedule.step_start(k));
            observer.step(&StepStart { index: k as u32, steps, rate, slo: state.config.slo.to_string() });
            let report = super::run_with(&step_config, observer).await?;
            observer.step_done(&report);
            // Judged on this agent's share only: the merge judges the whole.
            let share = report.rate.unwrap_or(rate);
            state.record(Step::judge(share, &report, &state.config.slo));
        }
        return Ok(state);
    }
    while let Some(rate) = state.next_rate() {
        let mut step_config = config.clone();
        step_config.rate = Some(rate);
        step_config.duration = Some(state.config.step);
        step_config.requests = None;
        let report = super::run_with(&step_config, observer).await?;
        state.record(Step::judge(rate, &report, &state.config.slo));
    }
    Ok(state)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(steps: u32) -> SearchConfig {
        SearchConfig {
            slo: "p99<=10ms".parse().unwrap(),
            min_rate: 100.0,
            max_rate: 1_000_000.0,
            steps,
            step: Duration::from_secs(1),
            gap: DEFAULT_STEP_GAP,
        }
    }

    /// A made-up server whose p99 passes 10 ms above `knee` requests/s.
    fn step(rate: f64, knee: f64) -> Step {
        let p99 = if rate <= knee { 2_000 } else { 50_000 };
        let failed = (rate > knee).then(|| "p99 too high".to_string());
        Step { rate, achieved: rate, p50_us: 500, p99_us: p99, errors: 0, failed }
    }

    #[test]
    fn the_search_doubles_then_bisects_to_within_the_precision() {
        let knee = 7_300.0;
        let mut s = Search::new(config(30));
        while let Some(r) = s.next_rate() {
            s.record(step(r, knee));
        }
        let rates: Vec<f64> = s.steps.iter().map(|st| st.rate).collect();
        assert_eq!(&rates[..8], &[100.0, 200.0, 400.0, 800.0, 1600.0, 3200.0, 6400.0, 12800.0]);
        let best = s.best().unwrap();
        assert!(best <= knee && best >= knee / (1.0 + PRECISION) / (1.0 + PRECISION), "{best}");
        assert!(s.steps.len() < 20, "{} steps", s.steps.len());
        assert!(s.text().contains(&format!("highest rate meeting the target: {best:.0}/s")));
    }

    #[test]
    fn the_search_stops_at_the_step_budget_and_the_bounds() {
        let mut s = Search::new(config(3));
        while let Some(r) = s.next_rate() {
            s.record(step(r, 1e9));
        }
        assert_eq!(s.steps.len(), 3);
        assert_eq!(s.best(), Some(400.0));
        // The top of the range passing ends the search there.
        let mut c = config(50);
        c.max_rate = 1000.0;
        let mut s = Search::new(c);
        while let Some(r) = s.next_rate() {
            s.record(step(r, 1e9));
        }
        assert_eq!(s.best(), Some(1000.0));
        assert_eq!(s.steps.last().unwrap().rate, 1000.0);
        // Nothing passes: one step, no answer.
        let mut s = Search::new(config(10));
        while let Some(r) = s.next_rate() {
            s.record(step(r, 1.0));
        }
        assert_eq!((s.steps.len(), s.best()), (1, None));
        assert!(s.text().contains("no rate tried met the target"));
    }

    #[test]
    fn the_sharded_schedule_is_a_fixed_geometric_ladder_on_fixed_times() {
        let mut c = config(4);
        c.min_rate = 1000.0;
        c.max_rate = 8000.0;
        c.step = Duration::from_millis(500);
        c.gap = Duration::from_millis(300);
        let t0 = std::time::SystemTime::UNIX_EPOCH + Duration::from_secs(1_764_000_000);
        let s = Schedule::new(&c, t0, Duration::from_millis(200));
        assert_eq!(s.rates.len(), 4);
        for (got, want) in s.rates.iter().zip([1000.0, 2000.0, 4000.0, 8000.0]) {
            assert!((got - want).abs() < 1e-6, "{:?}", s.rates);
        }
        // Every agent computes the same times: warm-up + step + gap apart.
        assert_eq!(s.period, Duration::from_millis(1000));
        assert_eq!(s.step_start(0), t0);
        assert_eq!(s.step_start(3), t0 + Duration::from_secs(3));
        assert_eq!(Schedule::new(&c, t0, Duration::from_millis(200)), s);
        // One step: the lowest rate only.
        c.steps = 1;
        assert_eq!(Schedule::new(&c, t0, Duration::ZERO).rates, vec![1000.0]);
    }

    #[test]
    fn slos_parse_several_percentiles_with_units() {
        let s: Slo = "p99<=10ms, p50<=500us,p99.9<=1s".parse().unwrap();
        assert_eq!(
            s.targets,
            vec![
                (99.0, Duration::from_millis(10)),
                (50.0, Duration::from_micros(500)),
                (99.9, Duration::from_secs(1))
            ]
        );
        assert_eq!(s.to_string(), "p99<=10ms,p50<=500us,p99.9<=1s");
        for bad in ["", "p99", "p99<=10", "99<=1ms", "p0<=1ms", "p101<=1ms", "p99<=-1ms", "p99<=2h"] {
            assert!(bad.parse::<Slo>().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn a_step_fails_on_errors_on_falling_behind_and_on_any_target() {
        use crate::bench::conn::ErrorLog;
        let slo: Slo = "p99<=200us".parse().unwrap();
        // The test report: 2000 replies over 2 s, latencies 100..150 us.
        let r = Report::for_tests(ErrorLog::default());
        assert_eq!(Step::judge(1000.0, &r, &slo).failed, None);
        assert!(Step::judge(5000.0, &r, &slo).failed.unwrap().contains("completed"));
        let tight: Slo = "p50<=50us".parse().unwrap();
        assert!(Step::judge(1000.0, &r, &tight).failed.unwrap().starts_with("p50"));
        let mut log = ErrorLog::default();
        log.counts.insert("reset".into(), 1);
        assert!(Step::judge(1000.0, &Report::for_tests(log), &slo).failed.unwrap().contains("1 errors"));
    }
}
