//! Interop tests of `tcpkit connect` against real tools, each started here
//! (`cargo test --features interop -- interop`): `openssl s_server` (Debian's
//! openssl) for `--tls`, and `tshark` (Debian's tshark) capturing loopback to
//! check that `--trace` holds exactly the bytes on the wire. A missing tool
//! fails the test.
use crate::capture::{Capture, Segment, same};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::Duration;

use super::{LIMIT, Outcome, accept_one, run};

const OPENSSL: &str = "/usr/bin/openssl";

/// A CA and a certificate it signed, written as PEM files in a temporary directory.
struct Pki {
    dir: tempfile::TempDir,
}

impl Pki {
    /// A leaf for `names` valid from year `from` to year `to`, signed by a CA named after it.
    fn new(names: &[&str], from: i32, to: i32) -> Pki {
        use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, date_time_ymd};
        let dir = tempfile::tempdir().unwrap();
        let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.distinguished_name.push(DnType::CommonName, format!("tcpkit test CA for {}", names[0]));
        let ca_key = KeyPair::generate().unwrap();
        let ca_cert = ca.self_signed(&ca_key).unwrap();
        let mut leaf =
            CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>()).unwrap();
        leaf.distinguished_name.push(DnType::CommonName, names[0]);
        leaf.not_before = date_time_ymd(from, 1, 1);
        leaf.not_after = date_time_ymd(to, 1, 1);
        let key = KeyPair::generate().unwrap();
        let cert = leaf.signed_by(&key, &ca_cert, &ca_key).unwrap();
        std::fs::write(dir.path().join("ca.pem"), ca_cert.pem()).unwrap();
        std::fs::write(dir.path().join("cert.pem"), cert.pem()).unwrap();
        std::fs::write(dir.path().join("key.pem"), key.serialize_pem()).unwrap();
        Pki { dir }
    }

    fn path(&self, name: &str) -> String {
        self.dir.path().join(name).display().to_string()
    }
}

/// `openssl s_server` on a port it picked (`-accept 127.0.0.1:0`, learnt from
/// its `ACCEPT` line), serving one connection; killed when dropped.
struct SServer {
    child: Child,
    port: String,
}

impl SServer {
    fn start(pki: &Pki, extra: &[&str]) -> SServer {
        let mut child = Command::new(OPENSSL)
            .args(["s_server", "-accept", "127.0.0.1:0", "-naccept", "1"])
            .args(["-cert", &pki.path("cert.pem"), "-key", &pki.path("key.pem")])
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("openssl s_server starts (Debian package openssl)");
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let port = loop {
            let line = lines.next().expect("s_server prints ACCEPT").expect("s_server stdout");
            if let Some(addr) = line.strip_prefix("ACCEPT ") {
                break addr.rsplit(':').next().unwrap().to_string();
            }
        };
        // Keep draining its output so it never blocks on a full pipe.
        thread::spawn(move || for _ in lines {});
        SServer { child, port }
    }
}

impl Drop for SServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn interop_tls_conversation_with_openssl_s_server_verified_by_cacert() {
    let pki = Pki::new(&["localhost"], 2020, 2100);
    let server = SServer::start(&pki, &["-rev"]);
    let dir = tempfile::tempdir().unwrap();
    let trace = dir.path().join("trace.txt");
    let out = run(
        &[
            "--tls",
            "-v",
            "--trace",
            trace.to_str().unwrap(),
            "--cacert",
            &pki.path("ca.pem"),
            "localhost",
            &server.port,
        ],
        b"hello\nworld\n",
    );
    assert_eq!(out.code, Some(0), "stderr: {}", out.stderr);
    // The trace holds the handshake's result and the plaintext both ways.
    let text = std::fs::read_to_string(&trace).unwrap();
    let events = parse_trace(&text);
    let info: Vec<String> =
        events.iter().filter(|e| e.0 == 'i').map(|e| String::from_utf8_lossy(&e.1).into_owned()).collect();
    assert!(info.iter().any(|l| l.starts_with("TLS: TLSv1.3 ")), "{text}");
    assert!(info.iter().any(|l| l == "peer certificate: subject: CN=localhost"), "{text}");
    let traced =
        |dir: char| -> Vec<u8> { events.iter().filter(|e| e.0 == dir).flat_map(|e| e.1.clone()).collect() };
    assert_eq!(traced('>'), b"hello\nworld\n");
    assert_eq!(traced('<'), b"olleh\ndlrow\n");
    // s_server -rev answers each line reversed: the bytes went through TLS both ways.
    assert_eq!(out.stdout, b"olleh\ndlrow\n");
    for want in [
        "tcpkit: TLS: TLSv1.3 TLS13_",
        "tcpkit: peer certificate: subject: CN=localhost\n",
        "tcpkit: peer certificate: issuer: CN=tcpkit test CA for localhost\n",
        "to Jan  1 00:00:00 2100 +00:00\n",
        "tcpkit: closed: 12 bytes sent, 12 bytes received\n",
    ] {
        assert!(out.stderr.contains(want), "no {want:?} in:\n{}", out.stderr);
    }
}

/// `connect --tls` against s_server with `pki`'s certificate, trusting only `ca`.
fn refused(pki: &Pki, ca: &str, host: &str) -> Outcome {
    let server = SServer::start(pki, &["-rev"]);
    run(&["--tls", "--cacert", ca, "--sni", host, "127.0.0.1", &server.port], b"never sent\n")
}

#[test]
fn interop_tls_wrong_name_is_refused_with_exit_8() {
    let pki = Pki::new(&["other.example"], 2020, 2100);
    let out = refused(&pki, &pki.path("ca.pem"), "localhost");
    assert_eq!(out.code, Some(8), "stderr: {}", out.stderr);
    assert!(
        out.stderr.starts_with("tcpkit: error: certificate of localhost rejected: name mismatch"),
        "{}",
        out.stderr
    );
    assert!(out.stdout.is_empty());
}

#[test]
fn interop_tls_expired_certificate_is_refused_with_exit_8() {
    let pki = Pki::new(&["localhost"], 2000, 2001);
    let out = refused(&pki, &pki.path("ca.pem"), "localhost");
    assert_eq!(out.code, Some(8), "stderr: {}", out.stderr);
    assert!(out.stderr.starts_with("tcpkit: error: certificate of localhost rejected: "), "{}", out.stderr);
    assert!(out.stderr.contains("expired"), "{}", out.stderr);
}

#[test]
fn interop_tls_unknown_issuer_is_refused_with_exit_8() {
    let pki = Pki::new(&["localhost"], 2020, 2100);
    let stranger = Pki::new(&["stranger"], 2020, 2100);
    let out = refused(&pki, &stranger.path("ca.pem"), "localhost");
    assert_eq!(out.code, Some(8), "stderr: {}", out.stderr);
    assert_eq!(out.stderr, "tcpkit: error: certificate of localhost rejected: unknown issuer\n");
    // The system roots do not know the test CA either.
    let server = SServer::start(&pki, &["-rev"]);
    let out = run(&["--tls", "--sni", "localhost", "127.0.0.1", &server.port], b"");
    assert_eq!(out.code, Some(8), "stderr: {}", out.stderr);
    assert!(out.stderr.contains("unknown issuer"), "{}", out.stderr);
}

#[test]
fn interop_tls_no_common_version_is_a_handshake_failure_exit_7() {
    let pki = Pki::new(&["localhost"], 2020, 2100);
    let server = SServer::start(&pki, &["-rev", "-tls1_2"]);
    let out = run(&["--tls", "-k", "--tls-min", "1.3", "127.0.0.1", &server.port], b"");
    assert_eq!(out.code, Some(7), "stderr: {}", out.stderr);
    assert!(out.stderr.starts_with("tcpkit: error: TLS handshake with 127.0.0.1 failed: "), "{}", out.stderr);
}

#[test]
fn interop_tls_alpn_and_client_certificate_reach_openssl() {
    let pki = Pki::new(&["localhost"], 2020, 2100);
    let client = Pki::new(&["client.test"], 2020, 2100);
    // -Verify: a client certificate is required and checked against the client CA.
    let server = SServer::start(
        &pki,
        &["-rev", "-alpn", "hello/1", "-Verify", "1", "-CAfile", &client.path("ca.pem")],
    );
    let out = run(
        &[
            "--tls",
            "-v",
            "--cacert",
            &pki.path("ca.pem"),
            "--alpn",
            "other",
            "--alpn",
            "hello/1",
            "--cert",
            &client.path("cert.pem"),
            "--key",
            &client.path("key.pem"),
            "localhost",
            &server.port,
        ],
        b"abc\n",
    );
    assert_eq!(out.code, Some(0), "stderr: {}", out.stderr);
    assert_eq!(out.stdout, b"cba\n");
    assert!(out.stderr.contains(", ALPN hello/1\n"), "{}", out.stderr);
}

/// Parse a curl `--trace` file into (direction, bytes) data events and the
/// `Info` lines, in order.
fn parse_trace(text: &str) -> Vec<(char, Vec<u8>)> {
    let mut events = Vec::new();
    for line in text.lines() {
        if let Some(info) = line.strip_prefix("== Info: ") {
            events.push(('i', info.as_bytes().to_vec()));
        } else if line.starts_with("=> Send data") {
            events.push(('>', Vec::new()));
        } else if line.starts_with("<= Recv data") {
            events.push(('<', Vec::new()));
        } else {
            let hex = &line[6..line.len().min(6 + 48)];
            let bytes = hex.split_whitespace().map(|h| u8::from_str_radix(h, 16).expect("hex byte"));
            events.last_mut().expect("data line after a header").1.extend(bytes);
        }
    }
    events
}

#[test]
fn interop_trace_holds_exactly_the_bytes_on_the_wire_both_ways_with_the_half_close() {
    let dir = tempfile::tempdir().unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let mut capture = Capture::start(port);
    // The server answers in three writes, reads to the client's half-close, then
    // sends one more message after it: the trace must show that order.
    let server = thread::spawn(move || {
        let (mut s, _) = accept_one(&listener);
        let mut line = [0u8; 6];
        s.read_exact(&mut line).unwrap();
        for part in [&b"Welcome, "[..], &line[..5], b"!\n\x00\xff"] {
            s.write_all(part).unwrap();
            thread::sleep(Duration::from_millis(20));
        }
        let mut rest = Vec::new();
        s.read_to_end(&mut rest).unwrap();
        s.write_all(b"after your FIN: bye\n").unwrap();
        rest
    });
    let trace = dir.path().join("trace.txt");
    let input: Vec<u8> = [&b"Alice\n"[..], &[0u8, 1, 2, 0x7f, 0x80, 0xfe][..], &b"x".repeat(70_000)].concat();
    let out = run(&["--trace", trace.to_str().unwrap(), "127.0.0.1", &port.to_string()], &input);
    let rest = server.join().unwrap();
    assert_eq!(out.code, Some(0), "stderr: {}", out.stderr);
    assert_eq!(rest, input[6..]);
    let client_port: u16 = {
        let text = std::fs::read_to_string(&trace).unwrap();
        let first = text.lines().next().unwrap();
        // "== Info: Connected to 127.0.0.1:PORT from 127.0.0.1:CLIENT"
        first.rsplit(':').next().unwrap().parse().expect("the 4-tuple's client port")
    };
    // Everything is on the wire once both FINs were captured.
    let (mut server_fin, mut client_fin) = (false, false);
    let both_fins = capture.wait_for(
        |s| {
            server_fin |= s.2 && s.0 == port;
            client_fin |= s.2 && s.0 == client_port;
            server_fin && client_fin
        },
        LIMIT,
    );
    assert!(both_fins, "tshark did not see both FINs within {LIMIT:?}");
    let wire: Vec<Segment> =
        capture.seen.iter().filter(|s| s.0 == port || s.0 == client_port).cloned().collect();
    let sent_on_wire: Vec<u8> =
        wire.iter().filter(|s| s.0 == client_port).flat_map(|s| s.1.clone()).collect();
    let recv_on_wire: Vec<u8> = wire.iter().filter(|s| s.0 == port).flat_map(|s| s.1.clone()).collect();
    let summary: Vec<(u16, usize, bool)> = wire.iter().map(|s| (s.0, s.1.len(), s.2)).collect();
    same(&sent_on_wire, &input, &format!("the capture of {client_port} -> {port} ({summary:?})"));

    let events = parse_trace(&std::fs::read_to_string(&trace).unwrap());
    let traced =
        |dir: char| -> Vec<u8> { events.iter().filter(|e| e.0 == dir).flat_map(|e| e.1.clone()).collect() };
    same(&traced('>'), &sent_on_wire, "trace Send = client's payload on the wire");
    same(&traced('<'), &recv_on_wire, "trace Recv = server's payload on the wire");
    same(&out.stdout, &recv_on_wire, "stdout = server's payload on the wire");

    // The half-close: on the wire the client's FIN comes before the server's last
    // message, and the trace says so in the same order.
    let client_fin = wire.iter().position(|s| s.0 == client_port && s.2).expect("client FIN on the wire");
    let last_msg = wire.iter().position(|s| s.0 == port && s.1.ends_with(b"bye\n")).expect("last message");
    assert!(client_fin < last_msg, "FIN at segment {client_fin}, last message at {last_msg}");
    let half_close =
        events.iter().position(|e| e.0 == 'i' && e.1.starts_with(b"sending side shut down")).unwrap();
    let last_recv = events.iter().rposition(|e| e.0 == '<').unwrap();
    assert!(half_close < last_recv && events[last_recv].1.ends_with(b"bye\n"), "{events:?}");
    let peer_eof = events.iter().position(|e| e.0 == 'i' && e.1.starts_with(b"peer closed")).unwrap();
    assert!(peer_eof > last_recv);
}
