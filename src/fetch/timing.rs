//! When each phase of each connection ended, and `--timing`'s readable breakdown
//! of them (DNS, TCP, TLS, server wait, transfer), one block per redirect hop.
//!
//! Not for: measuring. The I/O loop stamps the marks; this module only holds
//! and formats them.
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::time::Duration;

/// The marks of one request (one hop of a redirect chain). Every mark counts
/// from the hop's start, which itself counts from the start of the command.
#[derive(Debug, Clone, Default)]
pub struct Hop {
    /// Method and URL, for the heading.
    pub what: String,
    /// The final status of the hop, when one arrived.
    pub status: Option<u16>,
    /// The hop's start, from the start of the command.
    pub start: Duration,
    /// Name resolved.
    pub resolved: Option<Duration>,
    /// TCP connection established.
    pub connected: Option<Duration>,
    /// TLS handshake done (https).
    pub tls_done: Option<Duration>,
    /// Request written.
    pub sent: Option<Duration>,
    /// First response byte received.
    pub first_byte: Option<Duration>,
    /// Response head (the final one) parsed.
    pub head_done: Option<Duration>,
    /// Body complete (or the hop given up).
    pub end: Option<Duration>,
    /// The server's address.
    pub peer: Option<SocketAddr>,
    /// Our address.
    pub local: Option<SocketAddr>,
    /// The request went on a kept-alive connection: no DNS, TCP or TLS phase.
    pub reused: bool,
}

impl Hop {
    /// The connection is ready for the request: after TLS, else after TCP.
    pub fn ready(&self) -> Option<Duration> {
        self.tls_done.or(self.connected).or(self.reused.then_some(Duration::ZERO))
    }
}

fn ms(d: Duration) -> String {
    format!("{:9.3} ms", d.as_secs_f64() * 1000.0)
}

fn phase(out: &mut String, name: &str, from: Option<Duration>, to: Option<Duration>, note: &str) {
    let value = match (from, to) {
        (Some(a), Some(b)) => ms(b.saturating_sub(a)),
        _ => format!("{:>12}", "-"),
    };
    let line = format!("  {name:<12}{value}  {note}");
    let _ = writeln!(out, "{}", line.trim_end());
}

/// The `--timing` text for `hops`.
pub fn render(hops: &[Hop]) -> String {
    let mut out = String::new();
    for (i, hop) in hops.iter().enumerate() {
        let status = hop.status.map(|s| format!(" -> {s}")).unwrap_or_default();
        let _ = writeln!(out, "hop {}: {}{status}", i + 1, hop.what);
        if let (Some(peer), Some(local)) = (hop.peer, hop.local) {
            let again = if hop.reused { " (kept alive, reused)" } else { "" };
            let _ = writeln!(out, "  connection  {local} -> {peer}{again}");
        }
        let zero = Some(Duration::ZERO);
        phase(&mut out, "DNS", zero, hop.resolved, "name lookup");
        phase(&mut out, "TCP", hop.resolved, hop.connected, "connect (Happy Eyeballs)");
        let tls_note = if hop.tls_done.is_some() { "handshake" } else { "(plain http)" };
        phase(&mut out, "TLS", hop.connected.filter(|_| hop.tls_done.is_some()), hop.tls_done, tls_note);
        phase(&mut out, "server wait", hop.ready(), hop.first_byte, "request -> first response byte");
        phase(&mut out, "transfer", hop.first_byte, hop.end, "first byte -> last byte");
        phase(&mut out, "total", zero, hop.end, "");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_phase_is_shown_per_hop() {
        let ms = Duration::from_millis;
        let hop = Hop {
            what: "GET http://h/".into(),
            status: Some(200),
            resolved: Some(ms(1)),
            connected: Some(ms(3)),
            first_byte: Some(ms(10)),
            end: Some(ms(15)),
            ..Default::default()
        };
        let text = render(&[hop.clone(), Hop { tls_done: Some(ms(5)), ..hop }]);
        assert!(text.contains("hop 1: GET http://h/ -> 200"), "{text}");
        assert!(text.contains("hop 2:"), "{text}");
        assert!(text.contains("DNS             1.000 ms"), "{text}");
        assert!(text.contains("TCP             2.000 ms"), "{text}");
        assert!(text.contains("server wait     7.000 ms"), "{text}");
        assert!(text.contains("server wait     5.000 ms"), "{text}");
        assert!(text.contains("TLS             2.000 ms"), "{text}");
        assert!(text.contains("transfer        5.000 ms"), "{text}");
        assert!(text.contains("total          15.000 ms"), "{text}");
    }

    #[test]
    fn a_reused_connection_has_no_connect_phases_and_waits_from_the_start() {
        let ms = Duration::from_millis;
        let addr = |p| SocketAddr::from(([127, 0, 0, 1], p));
        let hop = Hop {
            what: "GET http://h/b".into(),
            reused: true,
            peer: Some(addr(80)),
            local: Some(addr(5000)),
            first_byte: Some(ms(4)),
            end: Some(ms(6)),
            ..Default::default()
        };
        let text = render(&[hop]);
        assert!(text.contains("127.0.0.1:5000 -> 127.0.0.1:80 (kept alive, reused)"), "{text}");
        assert!(text.contains("server wait     4.000 ms"), "{text}");
        assert!(text.lines().any(|l| l.starts_with("  TCP") && l.contains(" - ")), "{text}");
    }
}
