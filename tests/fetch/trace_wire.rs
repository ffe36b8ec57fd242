//! `fetch --trace` verified on the wire: `tshark` (Debian package tshark)
//! captures loopback, and each direction's TCP payload must equal the trace's
//! bytes in that direction, header and data together, in order; plain and
//! chunked responses. Run with `--features interop`; a missing tshark fails.
//!
//! The capture follows tests/connect/interop.rs (the connect trace's wire
//! test): start tshark on the server's port, probe until the capture is live,
//! then wait for both FINs before comparing.
use crate::capture::{Capture, same};
use std::time::Duration;

use super::fetch;
use super::servers::{RawServer, Step};
use super::trace::{Event, parse_trace};

/// Bound on waiting for tshark (to start, to see the FINs).
const LIMIT: Duration = Duration::from_secs(20);

/// Fetch from a server sending `parts`, and check the trace against the capture.
fn trace_equals_wire(parts: Vec<Vec<u8>>, want_body: &[u8]) {
    let head_len = parts[0].windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    let head = parts[0][..head_len].to_vec();
    let steps =
        parts.into_iter().flat_map(|p| [Step::Send(p), Step::Pause(Duration::from_millis(5))]).collect();
    let server = RawServer::start(vec![steps]);
    let port = server.addr.port();
    let mut capture = Capture::start(port);
    let dir = tempfile::tempdir().unwrap();
    let trace = dir.path().join("trace.txt");
    let out = fetch(&["--trace", trace.to_str().unwrap(), &server.url("/w")]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    same(&out.stdout, want_body, "the body");
    let events = parse_trace(&std::fs::read_to_string(&trace).unwrap());
    let Some(Event::Info(first)) = events.first() else { panic!("{events:?}") };
    let client_port: u16 = first.rsplit(':').next().unwrap().parse().expect("the 4-tuple's client port");
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
    let on_wire = |from: u16| -> Vec<u8> {
        capture.seen.iter().filter(|s| s.0 == from).flat_map(|s| s.1.clone()).collect()
    };
    let traced = |arrow: &str| -> Vec<u8> {
        let picked = events.iter().filter_map(|e| match e {
            Event::Bytes(label, b) if label.starts_with(arrow) => Some(b.clone()),
            _ => None,
        });
        picked.flatten().collect()
    };
    let recv_wire = on_wire(port);
    same(&traced("=>"), &on_wire(client_port), "trace Send = the client's payload on the wire");
    same(&traced("<="), &recv_wire, "trace Recv = the server's payload on the wire");
    same(&traced("<= Recv header"), &head, "trace Recv header = the response head");
    same(&traced("<= Recv data"), &recv_wire[head.len()..], "trace Recv data = the rest on the wire");
}

#[test]
fn interop_fetch_trace_holds_the_wire_bytes_plain() {
    let body: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
    let head = format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", body.len()).into_bytes();
    let parts = vec![head, body[..40_000].to_vec(), body[40_000..].to_vec()];
    trace_equals_wire(parts, &body);
}

#[test]
fn interop_fetch_trace_holds_the_wire_bytes_chunked() {
    let chunk = |b: &[u8]| [format!("{:x}\r\n", b.len()).into_bytes(), b.to_vec(), b"\r\n".to_vec()].concat();
    let (a, b) = (vec![b'a'; 30_000], vec![0xffu8; 5]);
    let parts = vec![
        [b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec(), chunk(&a)].concat(),
        chunk(&b),
        b"0\r\nX-Trailer: t\r\n\r\n".to_vec(),
    ];
    trace_equals_wire(parts, &[a, b].concat());
}
