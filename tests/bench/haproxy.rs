//! Interop of `tcpkit bench --proxy-header` and `--proxy-malformed` with HAProxy
//! (Debian's `haproxy`, started here; `cargo test --features interop --
//! bench::haproxy`): a frontend with `bind ... accept-proxy` in front of
//! `tcpkit serve`. Every reply through it is verified, HAProxy logs the
//! synthetic clients, and it refuses every malformed kind by closing. A missing
//! haproxy fails the test.
use std::collections::HashSet;

use super::{bench, start_serve, stderr};
use crate::haproxy::Haproxy;

/// HAProxy with `accept-proxy` in front of `backend`, logging each client.
fn start_haproxy(backend: &str) -> Haproxy {
    Haproxy::start(|port| {
        format!(
            "frontend fe\n  bind 127.0.0.1:{port} accept-proxy\n\
             \x20 log-format \"client=%ci:%cp\"\n  default_backend be\n\
             backend be\n  server s1 {backend}\n"
        )
    })
}

/// The `client=` of the next `n` log lines of `haproxy`.
fn clients(haproxy: &Haproxy, n: usize) -> Vec<String> {
    (0..n)
        .map(|_| {
            let line = haproxy.next_log();
            line.split_once("client=").map(|(_, c)| c.trim().to_string()).unwrap_or(line)
        })
        .collect()
}

#[test]
fn interop_bench_through_haproxy_accept_proxy_verifies_every_reply_and_names_each_client() {
    let (_serve, backend) = start_serve(&[]);
    let haproxy = start_haproxy(&backend);
    for (version, range, prefix) in
        [("v1", "10.3.0.0/24:6000", "10.3.0."), ("v2", "10.4.0.0/24:6000", "10.4.0.")]
    {
        let args = ["-c", "5", "-n", "500", "--proxy-header", version, "--proxy-source", range];
        let (out, j) = bench(&haproxy.addr(), &args);
        assert!(out.status.success(), "{version}: {}", stderr(&out));
        assert_eq!(j["verified"], 500, "{j}");
        let clients: HashSet<_> = clients(&haproxy, 5).into_iter().collect();
        let expected: HashSet<_> = (0..5).map(|i| format!("{prefix}{i}:6000")).collect();
        assert_eq!(clients, expected, "{version}");
    }
    // Churn: one connection (and client) per session.
    let args =
        ["-w", "churn", "-c", "2", "-n", "20", "--proxy-header", "v2", "--proxy-source", "10.5.0.0/24:6000"];
    let (out, j) = bench(&haproxy.addr(), &args);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(j["verified"], 20, "{j}");
    let clients: HashSet<_> = clients(&haproxy, 20).into_iter().collect();
    assert_eq!(clients.len(), 20, "{clients:?}");
}

#[test]
fn interop_haproxy_refuses_every_malformed_kind_by_closing() {
    let (_serve, backend) = start_serve(&[]);
    let haproxy = start_haproxy(&backend);
    let args = ["-w", "churn", "-c", "3", "-n", "27", "--timeout", "8s", "--proxy-malformed", "all"];
    let (out, j) = bench(&haproxy.addr(), &args);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(j["verified"], 27, "{j}");
}
