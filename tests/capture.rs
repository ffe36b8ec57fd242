//! A live loopback capture with `tshark` (Debian package tshark), for the
//! tests that check a trace against the bytes really on the wire (connect,
//! fetch, serve). Interop only: it needs tshark and capture rights on `lo`.
use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

/// Where Debian's tshark lives.
pub const TSHARK: &str = "/usr/bin/tshark";
/// Bound on waiting for the capture to go live.
const LIMIT: Duration = Duration::from_secs(10);

/// One captured TCP segment: source port, payload, FIN flag.
pub type Segment = (u16, Vec<u8>, bool);

/// tshark capturing loopback traffic to or from a port, printing each
/// segment's fields as it sees it (`-l -T fields`), read here on a thread.
/// Killed when dropped.
pub struct Capture {
    child: Child,
    segments: mpsc::Receiver<Segment>,
    /// Every segment collected so far (after the probe), in order.
    pub seen: Vec<Segment>,
}

impl Capture {
    /// Start capturing traffic of `port`, and return once a probe connection
    /// (to a listener of its own, also captured) was seen: the capture is live.
    pub fn start(port: u16) -> Capture {
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
    pub fn wait_for(&mut self, mut want: impl FnMut(&Segment) -> bool, limit: Duration) -> bool {
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
pub fn parse_segment(line: &str) -> Segment {
    let mut fields = line.split('\t');
    let port = fields.next().unwrap_or("").parse().unwrap_or(0);
    let hex: String = fields.next().unwrap_or("").chars().filter(|c| *c != ':').collect();
    let payload =
        (0..hex.len() / 2).filter_map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).ok()).collect();
    let fin = matches!(fields.next(), Some("1" | "True"));
    (port, payload, fin)
}

/// Assert `got == want` without printing 70 KB of bytes when they differ.
pub fn same(got: &[u8], want: &[u8], what: &str) {
    if got != want {
        let at = got.iter().zip(want).position(|(a, b)| a != b).unwrap_or(got.len().min(want.len()));
        panic!("{what}: {} bytes against {}, first difference at byte {at}", got.len(), want.len());
    }
}
