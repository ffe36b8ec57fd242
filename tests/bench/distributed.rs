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

/// Network namespaces, veth pairs and a bridge made for one test and removed
/// when dropped (removing a namespace removes the veth ends inside it, and with
/// them their peers on the bridge).
struct Cluster {
    prefix: String,
    namespaces: Vec<String>,
}

impl Cluster {
    fn ip(args: &[&str]) -> Result<(), String> {
        let out = Command::new("ip").args(args).output().map_err(|e| format!("ip: {e}"))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(format!("ip {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim()))
        }
    }

    /// A bridge and `n` namespaces on 10.201.0.0/24, namespace `i` at 10.201.0.(i+1).
    fn new(n: usize) -> Result<Cluster, String> {
        // Interface names are at most 15 bytes.
        let prefix = format!("tkb{}", std::process::id() % 100_000);
        let mut c = Cluster { prefix: prefix.clone(), namespaces: Vec::new() };
        let bridge = format!("{prefix}br");
        Cluster::ip(&["link", "add", &bridge, "type", "bridge"])?;
        Cluster::ip(&["link", "set", &bridge, "up"])?;
        for i in 0..n {
            let ns = format!("{prefix}n{i}");
            Cluster::ip(&["netns", "add", &ns])?;
            c.namespaces.push(ns.clone());
            let (outer, inner) = (format!("{prefix}h{i}"), format!("{prefix}v{i}"));
            Cluster::ip(&["link", "add", &outer, "type", "veth", "peer", "name", &inner])?;
            Cluster::ip(&["link", "set", &inner, "netns", &ns])?;
            Cluster::ip(&["link", "set", &outer, "master", &bridge, "up"])?;
            let addr = format!("10.201.0.{}/24", i + 1);
            Cluster::ip(&["-n", &ns, "addr", "add", &addr, "dev", &inner])?;
            Cluster::ip(&["-n", &ns, "link", "set", &inner, "up"])?;
            Cluster::ip(&["-n", &ns, "link", "set", "lo", "up"])?;
        }
        Ok(c)
    }

    /// `tcpkit` run inside namespace `i`.
    fn tcpkit(&self, i: usize) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.namespaces[i]]).arg(crate::util::tcpkit_bin());
        cmd.env_remove("RUST_LOG");
        cmd
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for ns in &self.namespaces {
            let _ = Cluster::ip(&["netns", "del", ns]);
        }
        let _ = Cluster::ip(&["link", "del", &format!("{}br", self.prefix)]);
    }
}

/// The Kubernetes loop played locally: four agents, each in its own network
/// namespace with its own address, run the Job's command line (`--shard N` with
/// `JOB_COMPLETION_INDEX`, `--start-at`, `--hdr-log -`) against one `tcpkit
/// serve` in a fifth; their logs merge to the server's own count of lines
/// answered, and to the same histogram as the Python implementation's merge.
#[test]
fn four_agents_in_their_own_namespaces_merge_to_the_servers_count() {
    const AGENTS: usize = 4;
    let cluster = match Cluster::new(AGENTS + 1) {
        Ok(c) => c,
        Err(e) if e.contains("Operation not permitted") || e.contains("Permission denied") => {
            eprintln!("SKIPPED: cannot create network namespaces here ({e})");
            return;
        }
        Err(e) => panic!("{e}"),
    };
    let mut serve = cluster.tcpkit(AGENTS);
    serve.args(["serve", "--listen", "10.201.0.5:0", "--log-format", "json"]);
    serve.stdin(std::process::Stdio::null()).stderr(std::process::Stdio::piped());
    let mut server = crate::util::ServeProcess::from_child(serve.spawn().unwrap());
    let target = server.addr.to_string();
    let start_at =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs_f64() + 2.0;
    let start_at = format!("{start_at:.3}");
    let agents: Vec<_> = (0..AGENTS)
        .map(|i| {
            cluster
                .tcpkit(i)
                .args(["bench", &target, "-c", "12", "-d", "2", "--shard", "4", "--start-at", &start_at])
                .args(["--hdr-log", "-", "-q"])
                .env("JOB_COMPLETION_INDEX", i.to_string())
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let mut paths = Vec::new();
    for (i, agent) in agents.into_iter().enumerate() {
        let out = agent.wait_with_output().unwrap();
        assert!(out.status.success(), "agent {i}: {}", stderr(&out));
        let path = dir.path().join(format!("agent-{i}.hlog"));
        std::fs::write(&path, &out.stdout).unwrap();
        paths.push(path);
    }
    // The server logs each connection's lines answered when it closes.
    let mut answered = 0;
    for _ in 0..12 {
        answered += server.wait_log(|v| v["message"] == "closed")["lines"].as_u64().unwrap();
    }
    let out = tcpkit().args(["bench", "merge", "--max-log-bytes", "100"]).args(&paths).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("longer than 100 bytes"), "{}", stderr(&out));
    let out = tcpkit().args(["bench", "merge", "--json"]).args(&paths).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let j: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(j["connections"], 12);
    assert_eq!(j["errors"], 0);
    assert!(j["verified"].as_u64().unwrap() > 0);
    assert_eq!(j["verified"].as_u64().unwrap(), answered, "merged replies = lines the server answered");
    assert_eq!(j["agents"].as_array().unwrap().len(), AGENTS);
    // Each agent started its window at the same instant, give or take scheduling.
    assert!(j["start_spread_s"].as_f64().unwrap() < 1.0, "{}", j["start_spread_s"]);
    let shards: Vec<&str> =
        j["agents"].as_array().unwrap().iter().map(|a| a["shard"].as_str().unwrap()).collect();
    assert_eq!(shards, ["0/4", "1/4", "2/4", "3/4"]);
    // The independent implementation adds the same logs to the same histogram.
    let merged = tcpkit::bench::merge::merge_files(&paths, 1 << 30).unwrap();
    let ours = merged.report.stats.histogram();
    assert_eq!(ours.value_at_quantile(0.99), j["latency"]["p99_us"].as_u64().unwrap());
    let refs: Vec<&std::path::Path> = paths.iter().map(|p| p.as_path()).collect();
    let py = python_decode(&refs);
    assert_eq!(py.count, answered);
    assert_eq!(py.buckets, buckets(ours));
    same_percentiles(ours, &py.percentiles);
}

/// The Job manifest users copy, relative to the repository.
const JOB_YAML: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/kubernetes/bench-job.yaml");

/// Run `kubernetes-validate --strict` (PyPI, installed by CI) on `path`.
fn kubernetes_validate(path: &std::path::Path) -> std::process::Output {
    Command::new("kubernetes-validate")
        .arg("--strict")
        .arg(path)
        .output()
        .expect("kubernetes-validate is installed (pip install kubernetes-validate)")
}

#[test]
fn the_job_manifest_validates_offline_and_a_broken_copy_does_not() {
    let out = kubernetes_validate(JOB_YAML.as_ref());
    assert!(out.status.success(), "{}{}", String::from_utf8_lossy(&out.stdout), stderr(&out));
    let dir = tempfile::tempdir().unwrap();
    let broken = dir.path().join("broken.yaml");
    let text = std::fs::read_to_string(JOB_YAML).unwrap();
    std::fs::write(&broken, text.replace("completionMode:", "completionMod:")).unwrap();
    assert!(!kubernetes_validate(&broken).status.success(), "the validator is strict");
}

#[test]
fn the_job_runs_a_command_line_tcpkit_accepts_with_shards_matching_completions() {
    use clap::Parser;
    let text = std::fs::read_to_string(JOB_YAML).unwrap();
    let field = |name: &str| -> String {
        let line =
            text.lines().find(|l| l.trim_start().starts_with(name)).unwrap_or_else(|| panic!("{name}"));
        line.split_once(':').unwrap().1.trim().trim_matches('"').to_string()
    };
    let completions = field("completions:");
    assert_eq!(field("parallelism:"), completions);
    assert_eq!(field("completionMode:"), "Indexed");
    // The container's args, with the environment Kubernetes substitutes.
    let args_at = text.find("          args:\n").unwrap();
    let args: Vec<String> = text[args_at..]
        .lines()
        .skip(1)
        .take_while(|l| !l.trim_start().starts_with("env:"))
        .filter_map(|l| l.trim().strip_prefix("- \"").map(|a| a.trim_end_matches('"').to_string()))
        .map(|a| a.replace("$(TARGET)", "hello:9999").replace("$(START_AT)", "0"))
        .collect();
    assert!(args.contains(&format!("--shard={completions}")), "{args:?}");
    let mut argv = vec!["tcpkit".to_string(), "bench".to_string()];
    argv.extend(args);
    let cli = tcpkit::cli::Cli::try_parse_from(&argv).unwrap_or_else(|e| panic!("{argv:?}: {e}"));
    let tcpkit::cli::Command::Bench(bench) = cli.command else { panic!("not bench") };
    let config = bench.config(|k| (k == "JOB_COMPLETION_INDEX").then(|| "3".into())).unwrap();
    assert_eq!(config.shard.unwrap().count.to_string(), completions);
    assert!(config.intervals.is_some() && bench.hdr_log.as_deref() == Some("-".as_ref()));
}

#[test]
fn find_max_rate_steps_up_to_the_highest_rate_meeting_the_target() {
    let (_serve, addr) = start_serve(&[]);
    let dir = tempfile::tempdir().unwrap();
    let svg = dir.path().join("search.svg");
    let search = ["--find-max-rate", "--min-rate", "200", "--max-rate", "800", "--step-duration", "500ms"];
    let out = tcpkit()
        .args(["bench", &addr, "-c", "4", "--json", "--slo", "p99<=5s"])
        .args(search)
        .arg("--plot")
        .arg(&svg)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let j: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let rates: Vec<f64> =
        j["steps"].as_array().unwrap().iter().map(|s| s["rate"].as_f64().unwrap()).collect();
    assert_eq!(rates, [200.0, 400.0, 800.0], "doubling up to --max-rate");
    assert_eq!(j["max_rate"], 800.0);
    assert!(j["steps"].as_array().unwrap().iter().all(|s| s["errors"] == 0 && s["failed"].is_null()));
    let chart = std::fs::read_to_string(&svg).unwrap();
    assert!(chart.contains("latency against offered rate"), "{}", &chart[..200.min(chart.len())]);

    // A target no server meets: one failed step, exit 1 with a verdict.
    let out = tcpkit().args(["bench", &addr, "-c", "2", "--slo", "p50<=1us"]).args(search).output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("fail: p50") && text.contains("no rate tried met the target"), "{text}");
    assert!(stderr(&out).contains("no rate tried met p50<=1us"), "{}", stderr(&out));
    // Not with a fixed rate.
    let out = tcpkit().args(["bench", &addr, "--find-max-rate", "--rate", "5"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn sharded_find_max_rate_agents_take_the_same_steps_and_the_merge_answers() {
    use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
    let (_serve, addr) = start_serve(&[]);
    let dir = tempfile::tempdir().unwrap();
    let agents = 3;
    // Time to start the processes and connect before step 0.
    let start = (SystemTime::now() + Duration::from_secs(3)).duration_since(UNIX_EPOCH).unwrap();
    let start = format!("{:.3}", start.as_secs_f64());
    let rates = [300.0, 600.0, 1200.0];
    let step_s = 0.4;
    let mut children = Vec::new();
    let mut paths = Vec::new();
    for i in 0..agents {
        let path = dir.path().join(format!("agent-{i}.hlog"));
        let child = tcpkit()
            .args(["bench", &addr, "-c", "6", "--json", "-q"])
            .args(["--shard", &format!("{i}/{agents}"), "--source", &format!("127.0.0.{}", i + 2)])
            .args(["--agent", &format!("agent-{i}"), "--start-at", &start, "--hdr-log"])
            .arg(&path)
            .args(["--find-max-rate", "--slo", "p99<=5s", "--min-rate", "300", "--max-rate", "1200"])
            .args(["--max-steps", "3", "--step-duration", "400ms", "--step-gap", "500ms"])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        children.push(child);
        paths.push(path);
    }
    // 3 s to start, 3 steps of 0.9 s: bounded well within 60 s.
    let deadline = Instant::now() + Duration::from_secs(60);
    for mut child in children {
        while child.try_wait().unwrap().is_none() {
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("an agent did not finish in 60 s");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
        let j: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert!(j["max_rate"].is_null(), "an agent alone gives no answer: {j}");
        assert_eq!(j["steps"].as_array().unwrap().len(), 3, "{j}");
    }
    let svg = dir.path().join("steps.svg");
    let out = tcpkit().args(["bench", "merge", "--json", "--plot"]).arg(&svg).args(&paths).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let j: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let steps = j["steps"].as_array().unwrap();
    let offered: Vec<f64> = steps.iter().map(|s| s["rate"].as_f64().unwrap()).collect();
    assert_eq!(offered, rates, "the same ladder on every agent: {j}");
    assert_eq!(j["agents"], agents);
    for (k, d) in j["step_details"].as_array().unwrap().iter().enumerate() {
        assert_eq!(d["agents"].as_array().unwrap().len(), agents, "step {k}: {j}");
        // Together: a late agent would start its step at once, a whole step off.
        assert!(d["start_spread_s"].as_f64().unwrap() < 0.3, "step {k} started together: {j}");
        // Each agent took a third of the rate: together about rate x step, not 3x it.
        let verified = d["verified"].as_f64().unwrap();
        let want = rates[k] * step_s;
        assert!(
            verified <= want * 1.05 + 6.0 && verified >= want * 0.5,
            "step {k}: {verified} of {want}: {j}"
        );
    }
    // The answer is the highest step that passed; on a quiet machine all three do.
    let passed: Vec<f64> =
        steps.iter().filter(|s| s["failed"].is_null()).map(|s| s["rate"].as_f64().unwrap()).collect();
    assert!(passed.contains(&300.0), "{j}");
    assert_eq!(j["max_rate"].as_f64(), passed.iter().copied().reduce(f64::max), "{j}");
    let chart = std::fs::read_to_string(&svg).unwrap();
    assert!(chart.contains("latency against offered rate"), "{}", &chart[..200.min(chart.len())]);
    let out = tcpkit().args(["bench", "merge"]).args(&paths).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("highest rate meeting the target") && text.contains("agents:      3"), "{text}");
}
