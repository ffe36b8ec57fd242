//! Interop of `tcpkit bench --proxy-header` and `--proxy-malformed` with HAProxy
//! (Debian's `haproxy`, started here; `cargo test --features interop --
//! bench::haproxy`): a frontend with `bind ... accept-proxy` in front of
//! `tcpkit serve`. Every reply through it is verified, HAProxy logs the
//! synthetic clients, and it refuses every malformed kind by closing. A missing
//! haproxy fails the test.
use std::collections::HashSet;
use std::io::{BufRead, BufReader};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use super::{bench, start_serve, stderr};

const HAPROXY: &str = "/usr/sbin/haproxy";
/// Bound on HAProxy starting and on each log line.
const LIMIT: Duration = Duration::from_secs(20);

/// HAProxy in the foreground, its log lines on a channel; killed when dropped.
struct Haproxy {
    child: Child,
    port: u16,
    log: mpsc::Receiver<String>,
    _dir: tempfile::TempDir,
}

impl Haproxy {
    fn start(backend: &str) -> Haproxy {
        // HAProxy cannot report a port it picked: take a free one and release it.
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let dir = tempfile::tempdir().unwrap();
        let cfg = dir.path().join("haproxy.cfg");
        std::fs::write(
            &cfg,
            format!(
                "global\n  log stdout format raw local0\n  maxconn 1000\n\
                 defaults\n  mode tcp\n  log global\n  option dontlognull\n\
                 \x20 timeout connect 5s\n  timeout client 10s\n  timeout server 10s\n\
                 frontend fe\n  bind 127.0.0.1:{port} accept-proxy\n\
                 \x20 log-format \"client=%ci:%cp\"\n  default_backend be\n\
                 backend be\n  server s1 {backend}\n"
            ),
        )
        .unwrap();
        let mut child = Command::new(HAPROXY)
            .args(["-db", "-f"])
            .arg(&cfg)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("haproxy starts (Debian package haproxy)");
        let (tx, log) = mpsc::channel();
        let stdout = child.stdout.take().unwrap();
        thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let haproxy = Haproxy { child, port, log, _dir: dir };
        let deadline = Instant::now() + LIMIT;
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "haproxy did not listen on {port}");
            thread::sleep(Duration::from_millis(20));
        }
        haproxy
    }

    fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The `client=` of the next `n` log lines.
    fn clients(&self, n: usize) -> Vec<String> {
        (0..n)
            .map(|_| {
                let line = self.log.recv_timeout(LIMIT).expect("haproxy logs each connection");
                line.split_once("client=").map(|(_, c)| c.trim().to_string()).unwrap_or(line)
            })
            .collect()
    }
}

impl Drop for Haproxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn interop_bench_through_haproxy_accept_proxy_verifies_every_reply_and_names_each_client() {
    let (_serve, backend) = start_serve(&[]);
    let haproxy = Haproxy::start(&backend);
    for (version, range, prefix) in
        [("v1", "10.3.0.0/24:6000", "10.3.0."), ("v2", "10.4.0.0/24:6000", "10.4.0.")]
    {
        let args = ["-c", "5", "-n", "500", "--proxy-header", version, "--proxy-source", range];
        let (out, j) = bench(&haproxy.addr(), &args);
        assert!(out.status.success(), "{version}: {}", stderr(&out));
        assert_eq!(j["verified"], 500, "{j}");
        let clients: HashSet<_> = haproxy.clients(5).into_iter().collect();
        let expected: HashSet<_> = (0..5).map(|i| format!("{prefix}{i}:6000")).collect();
        assert_eq!(clients, expected, "{version}");
    }
    // Churn: one connection (and client) per session.
    let args =
        ["-w", "churn", "-c", "2", "-n", "20", "--proxy-header", "v2", "--proxy-source", "10.5.0.0/24:6000"];
    let (out, j) = bench(&haproxy.addr(), &args);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(j["verified"], 20, "{j}");
    let clients: HashSet<_> = haproxy.clients(20).into_iter().collect();
    assert_eq!(clients.len(), 20, "{clients:?}");
}

#[test]
fn interop_haproxy_refuses_every_malformed_kind_by_closing() {
    let (_serve, backend) = start_serve(&[]);
    let haproxy = Haproxy::start(&backend);
    let args = ["-w", "churn", "-c", "3", "-n", "27", "--timeout", "8s", "--proxy-malformed", "all"];
    let (out, j) = bench(&haproxy.addr(), &args);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(j["verified"], 27, "{j}");
}
