//! Interop of `tcpkit connect --proxy-header` with HAProxy (Debian's `haproxy`,
//! started here with its own configuration; `cargo test --features interop --
//! haproxy`): a frontend with `bind ... accept-proxy` must accept our v1 and v2
//! headers, log the client they claim (`%ci:%cp`, the TLVs), pass it on to a
//! scripted backend with `send-proxy`, and refuse every malformed header of
//! `net::proxy::Malformed`. A missing haproxy fails the test.
use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::thread::{self, JoinHandle};

use ppp::{HeaderResult, PartialResult};
use tcpkit::net::proxy::Malformed;

use super::{LIMIT, accept_one, listen_v4, run};
use crate::haproxy::Haproxy;

/// A frontend with `accept-proxy`, logging the client and the TLVs, in front
/// of `backend` with `send-proxy` (v1).
fn start_haproxy(backend: SocketAddr) -> Haproxy {
    Haproxy::start(|port| {
        format!(
            "frontend fe\n  bind 127.0.0.1:{port} accept-proxy\n\
             \x20 log-format \"client=%ci:%cp frontend=%fi:%fp authority=%[fc_pp_authority] uid=%[fc_pp_unique_id]\"\n\
             \x20 default_backend be\n\
             backend be\n  server s1 {backend} send-proxy\n"
        )
    })
}

/// The backend: for each of `n` connections, read the PROXY header HAProxy
/// sends (parsed by ppp), then echo every byte until EOF. Returns the headers.
fn echo_backend(listener: TcpListener, n: usize) -> JoinHandle<(Vec<String>, TcpListener)> {
    thread::spawn(move || {
        let headers = (0..n)
            .map(|_| {
                let (mut stream, _) = accept_one(&listener);
                let mut got = Vec::new();
                let mut buf = [0u8; 512];
                let len = loop {
                    let parsed = HeaderResult::parse(&got);
                    match &parsed {
                        HeaderResult::V1(Ok(h)) => break h.header.len(),
                        _ if !got.is_empty() && !parsed.is_incomplete() => panic!("{got:?}: {parsed:?}"),
                        _ => {}
                    }
                    let n = stream.read(&mut buf).expect("backend reads the header");
                    assert!(n > 0, "EOF inside HAProxy's header");
                    got.extend_from_slice(&buf[..n]);
                };
                let header = String::from_utf8(got[..len].to_vec()).unwrap();
                stream.write_all(&got[len..]).unwrap();
                loop {
                    let n = stream.read(&mut buf).expect("backend reads");
                    if n == 0 {
                        break;
                    }
                    stream.write_all(&buf[..n]).unwrap();
                }
                let _ = stream.shutdown(Shutdown::Write);
                header
            })
            .collect();
        (headers, listener)
    })
}

#[test]
fn interop_haproxy_accept_proxy_takes_our_headers_and_the_claimed_client() {
    let (backend, _) = listen_v4();
    let server = echo_backend(backend.try_clone().unwrap(), 3);
    let haproxy = start_haproxy(backend.local_addr().unwrap());
    let port = haproxy.port.to_string();
    let fe = format!("127.0.0.1:{port}");

    // v2 with a claimed client and both TLVs.
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
    let out = run(&args, b"hello over v2\n");
    assert_eq!(out.code, Some(0), "stderr: {}", out.stderr);
    assert_eq!(out.stdout, b"hello over v2\n", "echoed through HAProxy");
    assert_eq!(
        haproxy.next_log(),
        format!("client=203.0.113.7:4000 frontend={fe} authority=example.com uid=conn-1")
    );

    // v1 with a claimed client.
    let out =
        run(&["--proxy-header", "v1", "--proxy-source", "198.51.100.9:5555", "127.0.0.1", &port], b"v1\n");
    assert_eq!(out.code, Some(0), "stderr: {}", out.stderr);
    assert_eq!(out.stdout, b"v1\n");
    assert_eq!(haproxy.next_log(), format!("client=198.51.100.9:5555 frontend={fe} authority=- uid=-"));

    // v2 LOCAL: HAProxy keeps the real endpoints.
    let out = run(&["-v", "--proxy-header", "v2", "--proxy-local", "127.0.0.1", &port], b"local\n");
    assert_eq!(out.code, Some(0), "stderr: {}", out.stderr);
    assert_eq!(out.stdout, b"local\n");
    let real = out.stderr.split(" from ").nth(1).and_then(|s| s.split(' ').next()).unwrap().to_string();
    assert_eq!(haproxy.next_log(), format!("client={real} frontend={fe} authority=- uid=-"));

    // HAProxy passed each claimed client on to the backend (send-proxy, v1).
    let (headers, _) = server.join().unwrap();
    let real: SocketAddr = real.parse().unwrap();
    assert_eq!(
        headers,
        [
            format!("PROXY TCP4 203.0.113.7 127.0.0.1 4000 {port}\r\n"),
            format!("PROXY TCP4 198.51.100.9 127.0.0.1 5555 {port}\r\n"),
            format!("PROXY TCP4 127.0.0.1 127.0.0.1 {} {port}\r\n", real.port()),
        ]
    );
}

#[test]
fn interop_haproxy_refuses_every_malformed_header_without_reaching_the_backend() {
    let (backend, _) = listen_v4();
    backend.set_nonblocking(true).unwrap();
    let haproxy = start_haproxy(backend.local_addr().unwrap());
    for kind in Malformed::ALL {
        let mut stream = TcpStream::connect(("127.0.0.1", haproxy.port)).unwrap();
        stream.set_read_timeout(Some(LIMIT)).unwrap();
        stream.write_all(&kind.bytes()).unwrap();
        // The cut ones look like a header still arriving: our EOF ends the
        // wait (HAProxy may have closed already: its buffer is below 65535
        // bytes, so it refuses v2-oversized-length at once). The others must be
        // refused on their bytes alone.
        if kind.needs_eof() {
            let _ = stream.shutdown(Shutdown::Write);
        }
        let mut got = Vec::new();
        match stream.read_to_end(&mut got) {
            Ok(_) => {}
            Err(e) if e.kind() == ErrorKind::ConnectionReset => {}
            Err(e) => panic!("{}: HAProxy did not close: {e}", kind.name()),
        }
        assert_eq!(got, b"", "{}", kind.name());
    }
    // A valid header afterwards does reach it: the refusals were the headers'.
    let out = run(&["-z", "--proxy-header", "v1", "127.0.0.1", &haproxy.port.to_string()], b"");
    assert_eq!(out.code, Some(0), "stderr: {}", out.stderr);
    backend.set_nonblocking(false).unwrap();
    let (mut first, _) = accept_one(&backend);
    let mut header = [0u8; 6];
    first.read_exact(&mut header).unwrap();
    assert_eq!(&header, b"PROXY ", "the backend's first connection is the valid one");
}
