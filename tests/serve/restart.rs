//! Zero-downtime restart, measured, in a network namespace of its own (where
//! the test sets `net.ipv4.tcp_migrate_req=1`, as the README tells operators
//! to): `tcpkit bench -w churn -c 128` runs against the port while the serving
//! process is replaced ten times back to back (each time a new `serve
//! --reuse-port` starts on the port and the old one gets SIGTERM and drains).
//!
//! Without `tcp_migrate_req` the connections the kernel has queued or
//! half-opened on a listener as it closes are reset; ten closes under 128
//! churning connections hit that window (resets or refused connects in 10 of
//! 11 runs on a loaded machine while the test was written, 1 of 2 on a quiet
//! one later). It is timing, not a proof, and even with the sysctl a rare
//! connect is reset, so one or two connect failures are tolerated. Sessions
//! in progress on a server at its signal finish there (`--drain-idle`): no
//! other error is allowed (with `--drain-idle 0` over a hundred short reads
//! appear).
use std::process::{Command, Stdio};

/// Bench connections.
const CONNECTIONS: u64 = 128;
/// Replacements of the serving process, back to back, during the run.
const HANDOVERS: u64 = 10;

#[test]
fn ten_restarts_with_reuse_port_under_load_refuse_and_reset_no_one() {
    let bin = crate::util::tcpkit_bin();
    let dir = tempfile::tempdir().unwrap();
    let (b, d) = (bin.display(), dir.path().display());
    // Every wait is bounded: 5 s for a server to listen, the bench 7 s, the
    // whole script 60 s.
    let script = format!(
        r#"set -e
ip link set lo up
sysctl -qw net.ipv4.tcp_migrate_req=1
test "$(sysctl -n net.ipv4.tcp_migrate_req)" = 1
listening() {{ for i in $(seq 100); do grep -qs '"listening"' "$1" && return 0; sleep 0.05; done; return 1; }}
serve() {{ {b} serve --listen 127.0.0.1:9999 --reuse-port --log-format json --threads 1 2>{d}/serve$1.log & }}
serve 0
OLD=$!
listening {d}/serve0.log
{b} bench 127.0.0.1:9999 -w churn -c {CONNECTIONS} -d 7 --json >{d}/bench.json 2>/dev/null &
BENCH=$!
sleep 0.5
for k in $(seq {HANDOVERS}); do
  serve $k
  NEW=$!
  listening {d}/serve$k.log
  kill -TERM $OLD
  wait $OLD || {{ echo "server $((k - 1)) exit $?" >&2; exit 1; }}
  OLD=$NEW
done
wait $BENCH || true
kill -TERM $OLD
wait $OLD
cat {d}/bench.json
"#
    );
    let out = Command::new("timeout")
        .args(["60", "unshare", "--net", "bash", "-c", &script])
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .output()
        .expect("unshare (util-linux) and root: this test needs its own network namespace");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("bench --json");
    eprintln!("restarts: {HANDOVERS}, verified {}, errors {}", report["verified"], report["errors_by_kind"]);
    // Sessions open on a server at its signal finish there (it drains each
    // until the client has been quiet for --drain-idle): no short read, no
    // reset, no wrong reply. The kernel's migration narrows the window for a
    // connect racing a listener's close but, on a loaded machine, does not
    // close it: in a CI run with the whole suite in parallel one connect in
    // ~25,000 was reset even with tcp_migrate_req=1 (and without it, runs here
    // saw 0 or 1), so a connect failure or two is tolerated, nothing else.
    let errors = report["errors_by_kind"].as_object().cloned().unwrap_or_default();
    for (kind, n) in &errors {
        assert_eq!(kind, "connect failed", "only a connect may fail: {report}");
        assert!(n.as_u64().is_some_and(|n| n <= 2), "{report}");
    }
    assert!(report["verified"].as_u64().is_some_and(|n| n > 1000), "{report}");
    // The first replacement took over the port under the full load.
    for k in [0, 1] {
        let log = std::fs::read_to_string(dir.path().join(format!("serve{k}.log"))).unwrap();
        assert!(log.contains("\"closed\""), "server {k} served no one: {report}");
    }
}
