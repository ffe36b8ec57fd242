//! The serve trace against the wire: `tshark` (Debian package tshark)
//! captures loopback while a client pipelines lines to `tcpkit serve --trace`,
//! and each direction's TCP payload on the wire must equal the trace's bytes
//! for that direction, in order. The capture helper is connect's approach
//! (tests/connect/interop.rs), copied: that module is private to connect's tests.
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use super::trace::{parse, wait_trace};
use crate::util::ServeProcess as Proc;

const TSHARK: &str = "/usr/bin/tshark";
const LIMIT: Duration = Duration::from_secs(10);

/// One captured TCP segment: source port, payload, FIN flag.
type Segment = (u16, Vec<u8>, bool);

/// tshark capturing loopback traffic to or from a port, printing each
/// segment's fields as it sees it (`-l -T fields`), read here on a thread.
/// Killed when dropped.
struct Capture {
    child: Child,
    segments: mpsc::Receiver<Segment>,
    seen: Vec<Segment>,
}

impl Capture {
    /// Start capturing traffic of `port`, and return once a probe connection
    /// (to a listener of its own, also captured) was seen: the capture is live.
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
        // tshark needs a moment before its capture is live: probe until it sees us.
        for _ in 0..LIMIT.as_millis() / 200 {
            // Never accepted: the kernel completes the handshake, which is all tshark must see.
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

    /// Collect segments until one satisfies `want` (true) or `limit` passes (false).
    fn wait_for(&mut self, mut want: impl FnMut(&Segment) -> bool, limit: Duration) -> bool {
        let deadline = std::time::Instant::now() + limit;
        while let Some(left) = deadline.checked_duration_since(std::time::Instant::now()) {
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

/// `PORT<TAB>HEX<TAB>FIN` as tshark prints it (HEX may have colons, FIN is 1/0 or True/False).
fn parse_segment(line: &str) -> Segment {
    let mut fields = line.split('\t');
    let port = fields.next().unwrap_or("").parse().unwrap_or(0);
    let hex: String = fields.next().unwrap_or("").chars().filter(|c| *c != ':').collect();
    let payload =
        (0..hex.len() / 2).filter_map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).ok()).collect();
    let fin = matches!(fields.next(), Some("1" | "True"));
    (port, payload, fin)
}

/// Assert `got == want` without printing 70 KB of bytes when they differ.
fn same(got: &[u8], want: &[u8], what: &str) {
    if got != want {
        let at = got.iter().zip(want).position(|(a, b)| a != b).unwrap_or(got.len().min(want.len()));
        panic!("{what}: {} bytes against {}, first difference at byte {at}", got.len(), want.len());
    }
}

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
