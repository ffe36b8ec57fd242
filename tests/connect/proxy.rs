//! `tcpkit connect --proxy-header`: the exact bytes a scripted receiver gets
//! (parsed with `ppp`, the crate `tcpkit serve` receives with), then the
//! conversation as usual.
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::thread::{self, JoinHandle};

use ppp::{HeaderResult, PartialResult};

use super::{accept_one, listen_v4, run};

/// What the receiver got on its one connection.
#[derive(Debug)]
struct Received {
    /// The PROXY header's bytes, as far as ppp parsed it.
    header: Vec<u8>,
    /// Every byte after it, until the client's EOF.
    rest: Vec<u8>,
    /// The client's real address, and ours.
    peer: SocketAddr,
    local: SocketAddr,
}

/// Accept one connection, read until ppp parses a complete header (any parse
/// error fails the test), then the rest until EOF; answer `ok N` (N the bytes
/// after the header) and close.
fn receiver(listener: TcpListener) -> JoinHandle<Received> {
    thread::spawn(move || {
        let (mut stream, peer) = accept_one(&listener);
        let local = stream.local_addr().unwrap();
        let mut got = Vec::new();
        let mut buf = [0u8; 512];
        let header_len = loop {
            let parsed = HeaderResult::parse(&got);
            match &parsed {
                HeaderResult::V1(Ok(h)) => break h.header.len(),
                HeaderResult::V2(Ok(h)) => break h.len(),
                _ if !got.is_empty() && !parsed.is_incomplete() => panic!("bad header {got:?}: {parsed:?}"),
                _ => {}
            }
            let n = stream.read(&mut buf).expect("receiver reads the header");
            assert!(n > 0, "EOF inside the header after {got:?}");
            got.extend_from_slice(&buf[..n]);
        };
        stream.read_to_end(&mut got).expect("receiver reads to EOF");
        let rest = got.split_off(header_len);
        stream.write_all(format!("ok {}\n", rest.len()).as_bytes()).unwrap();
        Received { header: got, rest, peer, local }
    })
}

#[test]
fn v1_header_with_the_real_addresses_comes_first_then_the_conversation() {
    let (listener, port) = listen_v4();
    let server = receiver(listener);
    let out = run(&["-v", "--proxy-header", "v1", "127.0.0.1", &port], b"hello\n");
    assert_eq!(out.code, Some(0), "stderr: {}", out.stderr);
    assert_eq!(out.stdout, b"ok 6\n");
    let got = server.join().unwrap();
    let want = format!("PROXY TCP4 127.0.0.1 127.0.0.1 {} {}\r\n", got.peer.port(), got.local.port());
    assert_eq!(String::from_utf8_lossy(&got.header), want);
    assert_eq!(got.rest, b"hello\n");
    // -v says what was sent; the byte counts are the conversation's.
    let line = format!("tcpkit: sent PROXY v1 {} -> {} header ({} bytes)", got.peer, got.local, want.len());
    assert!(out.stderr.contains(&line), "{}", out.stderr);
    assert!(out.stderr.contains("closed: 6 bytes sent, 5 bytes received"), "{}", out.stderr);
}

#[test]
fn v2_header_carries_the_given_source_and_tlvs_byte_for_byte() {
    let (listener, port) = listen_v4();
    let server = receiver(listener);
    let args = [
        "--proxy-header",
        "v2",
        "--proxy-source",
        "203.0.113.7:4000",
        "--proxy-authority",
        "example.com",
        "--proxy-unique-id",
        "conn-1",
        "127.0.0.1",
        &port,
    ];
    let out = run(&args, b"hello\n");
    assert_eq!(out.code, Some(0), "stderr: {}", out.stderr);
    assert_eq!(out.stdout, b"ok 6\n");
    let got = server.join().unwrap();
    // Built by hand from the spec: signature, PROXY|v2, TCP over IPv4, length,
    // addresses, ports, then the TLVs (type, 16-bit length, value).
    let mut want = b"\r\n\r\n\0\r\nQUIT\n\x21\x11".to_vec();
    want.extend(u16::to_be_bytes(12 + 3 + 11 + 3 + 6));
    want.extend([203, 0, 113, 7, 127, 0, 0, 1]);
    want.extend(4000u16.to_be_bytes());
    want.extend(got.local.port().to_be_bytes());
    want.extend(b"\x02\x00\x0bexample.com\x05\x00\x06conn-1");
    assert_eq!(got.header, want);
    assert_eq!(got.rest, b"hello\n");
}

#[test]
fn an_ipv4_source_to_an_ipv6_server_goes_ipv4_mapped_with_the_real_local_port() {
    let Ok(listener) = TcpListener::bind("[::1]:0") else {
        // Only a host without IPv6 may skip this test, and it says so.
        eprintln!("skipping: cannot bind [::1]:0");
        return;
    };
    let port = listener.local_addr().unwrap().port().to_string();
    let server = receiver(listener);
    let out = run(&["--proxy-header", "v1", "--proxy-source", "203.0.113.7", "::1", &port], b"");
    assert_eq!(out.code, Some(0), "stderr: {}", out.stderr);
    let got = server.join().unwrap();
    let want = format!("PROXY TCP6 ::ffff:203.0.113.7 ::1 {} {}\r\n", got.peer.port(), got.local.port());
    assert_eq!(String::from_utf8_lossy(&got.header), want);
    assert_eq!(got.rest, b"");
}

#[test]
fn zero_io_with_proxy_local_sends_only_the_header_like_a_health_check() {
    for (version, want) in
        [("v2", &b"\r\n\r\n\0\r\nQUIT\n\x20\x00\x00\x00"[..]), ("v1", &b"PROXY UNKNOWN\r\n"[..])]
    {
        let (listener, port) = listen_v4();
        let server = receiver(listener);
        let out = run(&["-z", "--proxy-header", version, "--proxy-local", "127.0.0.1", &port], b"");
        assert_eq!(out.code, Some(0), "stderr: {}", out.stderr);
        let got = server.join().unwrap();
        assert_eq!(got.header, want, "{version}");
        assert_eq!(got.rest, b"");
    }
}

#[test]
fn with_tls_the_header_precedes_the_client_hello() {
    let (listener, port) = listen_v4();
    let server = thread::spawn(move || {
        let (mut stream, peer) = accept_one(&listener);
        let local = stream.local_addr().unwrap();
        let want = format!("PROXY TCP4 127.0.0.1 127.0.0.1 {} {}\r\n", peer.port(), local.port());
        let mut got = vec![0u8; want.len() + 1];
        stream.read_exact(&mut got).unwrap();
        // Closing without a TLS answer fails the handshake: enough for this test.
        (String::from_utf8_lossy(&got[..want.len()]) == want, got[want.len()])
    });
    let out = run(&["--tls", "--proxy-header", "v1", "127.0.0.1", &port], b"");
    let (header_ok, next) = server.join().unwrap();
    assert!(header_ok, "stderr: {}", out.stderr);
    assert_eq!(next, 0x16, "a TLS handshake record follows the header");
    assert_eq!(out.code, Some(7), "stderr: {}", out.stderr);
}

#[test]
fn tlvs_with_v1_exit_1_before_connecting() {
    let (listener, port) = listen_v4();
    listener.set_nonblocking(true).unwrap();
    let out = run(&["--proxy-header", "v1", "--proxy-authority", "example.com", "127.0.0.1", &port], b"");
    assert_eq!(out.code, Some(1));
    assert_eq!(out.stderr, "tcpkit: error: PROXY header: TLVs need version 2 (v1 has no room for them)\n");
    assert_eq!(listener.accept().map_err(|e| e.kind()).err(), Some(std::io::ErrorKind::WouldBlock));
}

#[test]
fn the_header_is_in_the_trace_as_an_info_line() {
    let (listener, port) = listen_v4();
    let server = receiver(listener);
    let dir = tempfile::tempdir().unwrap();
    let trace = dir.path().join("t.txt");
    let args = ["--trace-ascii", trace.to_str().unwrap(), "--proxy-header", "v2", "127.0.0.1", &port];
    let out = run(&args, b"hi\n");
    assert_eq!(out.code, Some(0), "stderr: {}", out.stderr);
    let got = server.join().unwrap();
    let text = std::fs::read_to_string(&trace).unwrap();
    let line = format!("== Info: Sent PROXY v2 {} -> {} header (28 bytes)", got.peer, got.local);
    assert!(text.contains(&line), "{text}");
    // The data lines hold the conversation only: 3 bytes sent.
    assert!(text.contains("=> Send data, 3 bytes"), "{text}");
}
