//! Interop with a real HAProxy (Debian's `haproxy`, started by the test with
//! `deploy/haproxy/haproxy.cfg`, ports substituted): two `tcpkit serve
//! --proxy-protocol` behind it, `tcpkit bench` through it.
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::util::{ServeProcess, tcpkit};

const HAPROXY: &str = "/usr/sbin/haproxy";

struct Haproxy(Child);

impl Drop for Haproxy {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Two servers behind HAProxy started with the shipped config; HAProxy's front port.
fn setup() -> ([ServeProcess; 2], u16, Haproxy) {
    assert!(
        std::path::Path::new(HAPROXY).exists(),
        "{HAPROXY} not found: this interop test needs HAProxy (apt-get install haproxy)"
    );
    let servers = [
        ServeProcess::start(&["--proxy-protocol", "--threads", "1"]),
        ServeProcess::start(&["--proxy-protocol", "--threads", "1"]),
    ];
    let front = free_port();
    let shipped = include_str!("../../deploy/haproxy/haproxy.cfg");
    let cfg = shipped
        .replace("127.0.0.1:9999", &format!("127.0.0.1:{front}"))
        .replace("127.0.0.1:10001", &servers[0].addr.to_string())
        .replace("127.0.0.1:10002", &servers[1].addr.to_string());
    assert_ne!(cfg, shipped, "the shipped config names the expected addresses");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("haproxy.cfg");
    std::fs::write(&path, cfg).unwrap();
    let child = Command::new(HAPROXY)
        .arg("-db")
        .arg("-f")
        .arg(&path)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start haproxy");
    let haproxy = Haproxy(child);
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(("127.0.0.1", front)).is_err() {
        assert!(Instant::now() < deadline, "haproxy never listened");
        std::thread::sleep(Duration::from_millis(20));
    }
    (servers, front, haproxy)
}

#[test]
fn interop_haproxy_send_proxy_v2_carries_the_client_to_both_servers() {
    let (mut servers, front, _haproxy) = setup();
    let out = tcpkit()
        .args(["bench", &format!("127.0.0.1:{front}"), "-c", "4", "-n", "400", "--json"])
        .output()
        .expect("run tcpkit bench");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout} {}", String::from_utf8_lossy(&out.stderr));
    let report: serde_json::Value = serde_json::from_str(&stdout).expect("bench --json");
    assert_eq!(report["verified"], 400, "{report}");
    // Round robin: each server served bench connections, and its log line
    // shows the client's address (from the header) beside HAProxy's socket.
    for server in &mut servers {
        // (The readiness probe above passed through too, without a line.)
        let line =
            server.wait_log(|v| v["message"] == "closed" && v["lines"].as_u64().is_some_and(|n| n > 0));
        assert_ne!(line["client"], line["peer"], "{line}");
        assert!(line["client"].as_str().is_some_and(|c| c.starts_with("127.0.0.1:")), "{line}");
    }
}

#[test]
fn interop_haproxy_moves_new_sessions_to_the_other_server_when_one_dies() {
    let (mut servers, front, _haproxy) = setup();
    let bench = tcpkit()
        .args([
            "bench",
            &format!("127.0.0.1:{front}"),
            "-w",
            "churn",
            "-c",
            "4",
            "-d",
            "3",
            "--allow-errors",
            "--json",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("run tcpkit bench");
    std::thread::sleep(Duration::from_secs(1));
    let _ = servers[0].child.kill();
    let out = bench.wait_with_output().expect("bench ends");
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("bench --json");
    // The sessions cut by the kill are errors (reported, allowed); the run
    // goes on through the other server, which keeps serving new sessions.
    eprintln!("errors with one of two servers killed mid-run: {}", report["errors_by_kind"]);
    let per_second = report["per_second"].as_array().expect("per_second");
    // The third second lies wholly after the kill (at 1 s).
    assert!(per_second.get(2).and_then(|v| v.as_u64()).is_some_and(|n| n > 0), "{report}");
    assert!(report["verified"].as_u64().is_some_and(|n| n > 100), "{report}");
    let line = servers[1].wait_log(|v| v["message"] == "closed" && v["client"].is_string());
    assert_ne!(line["client"], line["peer"], "{line}");
}
