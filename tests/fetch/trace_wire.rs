//! `fetch --trace` verified on the wire: `tshark` (Debian package tshark)
//! captures loopback, and each direction's TCP payload must equal the trace's
//! bytes in that direction, header and data together, in order; plain and
//! chunked responses. Run with `--features interop`; a missing tshark fails.
//!
//! The capture follows tests/connect/interop.rs (the connect trace's wire
//! test): start tshark on the server's port, probe until the capture is live,
//! then wait for both FINs before comparing.
use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use super::fetch;
use super::servers::{RawServer, Step};
use super::trace::{Event, parse_trace};

const TSHARK: &str = "/usr/bin/tshark";

/// Bound on waiting for tshark (to start, to see the FINs).
const LIMIT: Duration = Duration::from_secs(20);

/// One captured TCP segment: source port, payload, FIN flag.
type Segment = (u16, Vec<u8>, bool);

/// tshark on loopback for one port, its segments read on a thread; killed on drop.
struct Capture {
    child: Child,
    segments: mpsc::Receiver<Segment>,
    seen: Vec<Segment>,
}

impl Capture {
    fn start(port: u16) -> Capture {
        let probe_listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let probe_addr = probe_listener.local_addr().unwrap();
        let filter = format!("tcp port {port} or tcp port {}", probe_addr.port());
        let mut child = Command::new(TSHARK)
            .args(["-i", "lo", "-f", &filter, "-l", "-T", "fields"])
            .args(["-e", "tcp.srcport", "-e", "tcp.payload", "-e", "tcp.flags.fin"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("tshark starts (Debian package tshark)");
        let stdout = child.stdout.take().unwrap();
        let (tx, segments) = mpsc::channel();
        thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { return };
                if tx.send(parse_segment(&line)).is_err() {
                    return;
                }
            }
        });
        let mut capture = Capture { child, segments, seen: Vec::new() };
        for _ in 0..LIMIT.as_millis() / 200 {
            // Never accepted: the kernel's handshake is all tshark must see.
            let probe = std::net::TcpStream::connect(probe_addr).expect("probe connects");
            let probe_port = probe.local_addr().unwrap().port();
            drop(probe);
            if capture.wait_for(|s| s.0 == probe_port, Duration::from_millis(200)) {
                capture.seen.clear();
                return capture;
            }
        }
        panic!("tshark never saw the probe connections");
    }

    fn wait_for(&mut self, mut want: impl FnMut(&Segment) -> bool, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            match self.segments.recv_timeout(left) {
                Ok(seg) => {
                    let hit = want(&seg);
                    self.seen.push(seg);
                    if hit {
                        return true;
                    }
                }
                Err(_) => return false,
            }
        }
        false
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `PORT<TAB>HEX<TAB>FIN` as tshark prints it.
fn parse_segment(line: &str) -> Segment {
    let mut fields = line.split('\t');
    let port = fields.next().unwrap_or("").parse().unwrap_or(0);
    let hex: String = fields.next().unwrap_or("").chars().filter(|c| *c != ':').collect();
    let payload =
        (0..hex.len() / 2).filter_map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).ok()).collect();
    let fin = matches!(fields.next(), Some("1" | "True"));
    (port, payload, fin)
}

/// Assert `got == want` without printing many KB when they differ.
fn same(got: &[u8], want: &[u8], what: &str) {
    if got != want {
        let at = got.iter().zip(want).position(|(a, b)| a != b).unwrap_or(got.len().min(want.len()));
        panic!("{what}: {} bytes against {}, first difference at byte {at}", got.len(), want.len());
    }
}

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
