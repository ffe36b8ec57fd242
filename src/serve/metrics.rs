//! Prometheus metrics of a server (`--metrics ADDR`): counters kept always
//! (a few atomics per connection and per wake-up that served bytes), served as Prometheus text at `/metrics`
//! only when an address is given. Names follow Prometheus conventions
//! (`tcpkit_` prefix, `_total` counters, base units).
//!
//! The endpoint is a minimal HTTP/1.1 responder: one bounded request head
//! per connection, one response, close. Not for: anything but scraping.
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use super::conn::{CloseReason, ConnStats};

/// Longest scrape request head read, in bytes; the rest is ignored.
const MAX_REQUEST: usize = 8 * 1024;

/// A scrape must send its request head within this.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// Label of `tcpkit_connections_closed_total`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct Reason {
    reason: &'static str,
}

/// The server's metrics.
pub struct Metrics {
    registry: Registry,
    open: Gauge,
    accepted: Counter,
    closed: Family<Reason, Counter>,
    busy: Counter,
    lines: Counter,
    bytes_in: Counter,
    bytes_out: Counter,
    proxy_errors: Counter,
    duration: Histogram,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("tcpkit");
        let m = Metrics {
            open: Gauge::default(),
            accepted: Counter::default(),
            closed: Family::default(),
            busy: Counter::default(),
            lines: Counter::default(),
            bytes_in: Counter::default(),
            bytes_out: Counter::default(),
            proxy_errors: Counter::default(),
            // 1 ms to about 70 minutes (4^11 ms), by factors of 4.
            duration: Histogram::new(exponential_buckets(0.001, 4.0, 12)),
            registry: Registry::default(),
        };
        registry.register("connections_open", "Connections being served", m.open.clone());
        registry.register("connections_accepted", "Connections accepted and served", m.accepted.clone());
        registry.register("connections_closed", "Connections closed, by close reason", m.closed.clone());
        registry.register("busy_refusals", "Connections refused over the connection limit", m.busy.clone());
        registry.register("lines", "Lines answered", m.lines.clone());
        registry.register("received_bytes", "Bytes received from clients", m.bytes_in.clone());
        registry.register("sent_bytes", "Bytes sent to clients", m.bytes_out.clone());
        registry.register(
            "proxy_header_errors",
            "Connections closed for a bad PROXY header",
            m.proxy_errors.clone(),
        );
        registry.register("connection_duration_seconds", "Connection lifetimes", m.duration.clone());
        Metrics { registry, ..m }
    }
}

impl Metrics {
    /// A connection was accepted for serving.
    pub fn opened(&self) {
        self.accepted.inc();
        self.open.inc();
    }

    /// A connection was refused over the limit.
    pub fn refused_busy(&self) {
        self.busy.inc();
        self.closed.get_or_create(&Reason { reason: "busy" }).inc();
    }

    /// A connection answered `lines` and moved these bytes since it last
    /// said (called as it is served, not only at its close).
    pub fn progress(&self, lines: u64, bytes_in: u64, bytes_out: u64) {
        for (counter, n) in [(&self.lines, lines), (&self.bytes_in, bytes_in), (&self.bytes_out, bytes_out)] {
            if n > 0 {
                counter.inc_by(n);
            }
        }
    }

    /// A served connection closed (its lines and bytes were counted by
    /// [`Metrics::progress`] as they happened).
    pub fn closed(&self, stats: &ConnStats, duration: Duration) {
        self.open.dec();
        if matches!(stats.reason, CloseReason::ProxyHeader(_)) {
            self.proxy_errors.inc();
        }
        self.closed.get_or_create(&Reason { reason: stats.reason.label() }).inc();
        self.duration.observe(duration.as_secs_f64());
    }

    /// The Prometheus text exposition.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

/// Answer scrapes on `listener` until `shutdown`: `GET /metrics` gets the
/// text exposition, anything else 404. One task per scrape, each bounded in
/// time and bytes.
pub async fn serve(listener: TcpListener, metrics: Arc<Metrics>, shutdown: CancellationToken) {
    loop {
        let (mut stream, _) = tokio::select! {
            () = shutdown.cancelled() => return,
            r = listener.accept() => match r {
                Ok(accepted) => accepted,
                // EMFILE and the like: the scrape is retried by Prometheus.
                Err(_) => { tokio::time::sleep(Duration::from_millis(50)).await; continue }
            },
        };
        let metrics = metrics.clone();
        tokio::spawn(async move {
            let mut head = Vec::new();
            let read = tokio::time::timeout(REQUEST_TIMEOUT, async {
                let mut buf = [0; 1024];
                while head.len() < MAX_REQUEST && !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut buf).await {
                        Ok(0) | Err(_) => return false,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                true
            });
            if !matches!(read.await, Ok(true)) {
                return;
            }
            let response = if head.starts_with(b"GET /metrics ") || head.starts_with(b"GET /metrics?") {
                let body = metrics.encode();
                format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: application/openmetrics-text; version=1.0.0; charset=utf-8\r\n\
                     Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                )
            } else {
                "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".to_string()
            };
            let _ = tokio::time::timeout(REQUEST_TIMEOUT, stream.write_all(response.as_bytes())).await;
            let _ = stream.shutdown().await;
        });
    }
}

/// Bind the metrics endpoint (non-blocking, ready for tokio).
pub fn bind(addr: SocketAddr) -> Result<std::net::TcpListener, crate::net::listen::ListenError> {
    crate::net::listen::bind_listener(addr, 128)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_exposition_names_every_metric_with_its_labels() {
        let m = Metrics::default();
        m.opened();
        let stats = ConnStats { lines: 3, bytes_in: 25, bytes_out: 53, reason: CloseReason::Quit };
        m.progress(2, 20, 0);
        m.progress(1, 5, 53);
        m.closed(&stats, Duration::from_millis(2));
        m.refused_busy();
        let text = m.encode();
        for want in [
            "tcpkit_connections_open 0",
            "tcpkit_connections_accepted_total 1",
            "tcpkit_connections_closed_total{reason=\"quit\"} 1",
            "tcpkit_connections_closed_total{reason=\"busy\"} 1",
            "tcpkit_busy_refusals_total 1",
            "tcpkit_lines_total 3",
            "tcpkit_received_bytes_total 25",
            "tcpkit_sent_bytes_total 53",
            "tcpkit_proxy_header_errors_total 0",
            "tcpkit_connection_duration_seconds_count 1",
        ] {
            assert!(text.contains(want), "{want} not in\n{text}");
        }
    }
}
