//! Proxies: a forward proxy for http (absolute-form target, Proxy-Authorization), a
//! CONNECT tunnel for https (and http with -p), the environment variables curl reads,
//! and the exit codes when the proxy fails. Scripted proxies here; a real tinyproxy in
//! the interop tests.
use std::sync::Arc;

use super::servers::{self, HyperServer, Pki, RawServer, Step, full};
use super::{fetch, parts};

const OK: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 7\r\n\r\nproxied";

fn first_request(server: &RawServer) -> String {
    String::from_utf8_lossy(&server.requests.lock().unwrap()[0]).into_owned()
}

#[test]
fn plain_http_goes_to_the_proxy_with_the_absolute_url_and_its_credentials() {
    let proxy = RawServer::start(vec![vec![Step::Send(OK.to_vec())]]);
    let via = format!("http://pu:pp@{}", proxy.addr);
    let out = fetch(&["-x", &via, "http://origin.test:8080/a?b=1#frag"]);
    assert_eq!((out.status.code(), out.stdout.as_slice()), (Some(0), &b"proxied"[..]), "{}", parts(&out).2);
    let head = first_request(&proxy);
    assert!(head.starts_with("GET http://origin.test:8080/a?b=1 HTTP/1.1\r\n"), "{head}");
    assert!(head.contains("Host: origin.test:8080\r\n"), "{head}");
    // base64("pu:pp")
    assert!(head.contains("Proxy-Authorization: Basic cHU6cHA=\r\n"), "{head}");
}

#[test]
fn proxytunnel_sends_connect_first_and_a_refused_tunnel_exits_56() {
    let proxy = RawServer::start(vec![vec![Step::Send(
        b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n".to_vec(),
    )]]);
    let (code, _, stderr) = parts(&fetch(&["-p", "-x", &proxy.url(""), "http://origin.test/"]));
    assert_eq!(code, 56, "{stderr}");
    assert!(stderr.contains("CONNECT tunnel failed, response 403"), "{stderr}");
    let head = first_request(&proxy);
    assert!(head.starts_with("CONNECT origin.test:80 HTTP/1.1\r\nHost: origin.test:80\r\n"), "{head}");
}

#[test]
fn https_goes_through_a_connect_tunnel() {
    // The "proxy" answers 200 to CONNECT, then the TLS server's bytes follow: a
    // tunnel to the TLS server made by forwarding is more than a script can do, so
    // the https path is checked end to end against tinyproxy (interop); here the
    // CONNECT request and a proxy that closes after 200 (exit 35: no handshake).
    let proxy =
        RawServer::start(vec![vec![Step::Send(b"HTTP/1.1 200 Connection established\r\n\r\n".to_vec())]]);
    let (code, _, stderr) = parts(&fetch(&["-x", &proxy.url(""), "https://origin.test:8443/"]));
    assert_eq!(code, 35, "{stderr}");
    assert!(first_request(&proxy).starts_with("CONNECT origin.test:8443 HTTP/1.1\r\n"));
}

#[test]
fn environment_proxies_apply_unless_no_proxy_names_the_host() {
    let proxy = RawServer::start(vec![vec![Step::Send(OK.to_vec())]]);
    let direct = HyperServer::start(Arc::new(|_| full(200, &[], "direct")));
    let run = |no_proxy: &str| {
        let mut cmd = crate::util::tcpkit();
        cmd.args(["fetch", &direct.url("/")]).env("http_proxy", proxy.url("")).env_remove("HTTPS_PROXY");
        cmd.env("no_proxy", no_proxy).env_remove("NO_PROXY");
        servers::run(cmd)
    };
    assert_eq!(run("").stdout, b"proxied");
    assert_eq!(run("localhost, 127.0.0.1").stdout, b"direct");
    assert_eq!(run("*").stdout, b"direct");
}

#[test]
fn an_unreachable_proxy_exits_7_and_an_unknown_one_5() {
    let (code, _, stderr) = parts(&fetch(&["-x", "http://127.0.0.1:1", "http://origin.test/"]));
    assert_eq!(code, 7, "{stderr}");
    assert!(stderr.contains("proxy"), "{stderr}");
    let (code, _, stderr) =
        parts(&fetch(&["-x", "http://no-such-proxy.invalid:3128", "http://origin.test/"]));
    assert_eq!(code, 5, "{stderr}");
    let (code, _, stderr) = parts(&fetch(&["-x", "socks5://127.0.0.1:1", "http://origin.test/"]));
    assert_eq!(code, 2, "{stderr}");
}

/// A TLS origin, for the tinyproxy interop test.
#[allow(dead_code)] // Used by the interop tests only.
pub fn tls_origin(pki: &Pki) -> HyperServer {
    HyperServer::start_with(
        Arc::new(|_| full(200, &[], "secret via tunnel")),
        Some(pki.server_config(&["127.0.0.1"], false)),
        "127.0.0.1:0",
    )
}
