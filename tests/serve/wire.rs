//! The serve trace against the wire: `tshark` (Debian package tshark)
//! captures loopback while a client pipelines lines to `tcpkit serve --trace`,
//! and each direction's TCP payload on the wire must equal the trace's bytes
//! for that direction, in order. The capture helper is connect's approach
//! (tests/connect/interop.rs), copied: that module is private to connect's tests.
use crate::capture::{Capture, same};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use super::trace::{parse, wait_trace};
use crate::util::ServeProcess as Proc;

const LIMIT: Duration = Duration::from_secs(10);

#[test]
fn interop_serve_trace_holds_exactly_the_bytes_on_the_wire_for_pipelined_lines() {
    let dir = tempfile::tempdir().unwrap();
    let mut p = Proc::start(&["--trace", dir.path().to_str().unwrap()]);
    let port = p.addr.port();
    let mut capture = Capture::start(port);
    let mut s = TcpStream::connect(p.addr).unwrap();
    s.set_read_timeout(Some(LIMIT)).unwrap();
    let client_port = s.local_addr().unwrap().port();
    // Pipelined: many lines in few writes, some split across writes, then exit.
    let lines: Vec<u8> = (0..2000).flat_map(|i| format!("client line {i}\n").into_bytes()).collect();
    for chunk in lines.chunks(7_001) {
        s.write_all(chunk).unwrap();
    }
    s.write_all(b"exit\n").unwrap();
    let mut got = Vec::new();
    s.read_to_end(&mut got).unwrap();
    assert!(got.ends_with(b"Hello, client line 1999!\n"));
    drop(s); // the client's FIN
    p.wait_log(|v| v["message"] == "closed");

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
    let payload = |from: u16| -> Vec<u8> {
        capture.seen.iter().filter(|s| s.0 == from).flat_map(|s| s.1.clone()).collect()
    };
    let (to_server, to_client) = (payload(client_port), payload(port));
    let mut input = lines.clone();
    input.extend_from_slice(b"exit\n");
    same(&to_server, &input, "client's payload on the wire");
    same(&to_client, &got, "server's payload on the wire");

    let (_, text) = wait_trace(dir.path(), |t| parse(t).sent.len() >= got.len());
    let t = parse(&text);
    same(&t.recv, &to_server, "trace Recv = client's payload on the wire");
    same(&t.sent, &to_client, "trace Send = server's payload on the wire");
}
