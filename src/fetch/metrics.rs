//! One struct of what a transfer measured: the phase marks of each hop, the byte
//! counters, the last response head; curl's `-w` variables are built from it alone.
//!
//! Not for: measuring (the transfer stamps the marks as it goes) or rendering
//! (`writeout` and `timing` do).
use std::time::{Duration, Instant};

use url::Url;

use super::config::Config;
use super::error::FetchError;
use super::http1::ResponseHead;
use super::policy;
use super::timing::Hop;
use super::writeout::WriteOutVars;

/// What a transfer measured, across its redirect hops.
#[derive(Debug, Clone)]
pub struct Metrics {
    /// When the transfer started.
    pub start: Instant,
    /// One entry per request, with its phase marks (`--timing`).
    pub hops: Vec<Hop>,
    /// Body bytes received on the wire in the current hop (framing included).
    pub received: u64,
    /// Body bytes after framing, before content decoding (curl's size_download).
    pub size_download: u64,
    /// Response head bytes, interim ones included (curl's size_header).
    pub size_header: u64,
    /// The last final status.
    pub status: u16,
    /// Request bytes sent, heads and bodies.
    pub size_request: u64,
    /// Request body bytes sent.
    pub size_upload: u64,
    /// Redirects followed.
    pub redirects: u32,
    /// The URL and method of the current request.
    pub current_url: Option<Url>,
    /// The method of the current request.
    pub current_method: String,
    /// The last final response head.
    pub last_head: Option<ResponseHead>,
    /// The number of the connection the last request used (`None`: none was opened).
    pub conn_id: Option<u64>,
    /// The number of this transfer among its session's, from 0.
    pub xfer_id: u64,
    /// Attempts made after the first (`--retry`).
    pub num_retries: u32,
    /// The last request went through a proxy.
    pub proxy_used: bool,
}

impl Metrics {
    /// Nothing measured yet; the clock starts now.
    pub fn new() -> Metrics {
        Metrics {
            start: Instant::now(),
            hops: Vec::new(),
            received: 0,
            size_download: 0,
            size_header: 0,
            status: 0,
            size_request: 0,
            size_upload: 0,
            redirects: 0,
            current_url: None,
            current_method: String::new(),
            last_head: None,
            conn_id: None,
            xfer_id: 0,
            num_retries: 0,
            proxy_used: false,
        }
    }

    /// A new hop for `method url` starts now.
    pub(crate) fn start_hop(&mut self, method: &str, url: &Url) {
        self.hops.push(Hop {
            what: format!("{method} {}", policy::redacted(url)),
            start: self.start.elapsed(),
            ..Hop::default()
        });
        self.received = 0;
        (self.current_url, self.current_method) = (Some(url.clone()), method.to_string());
    }

    /// The current hop's marks.
    pub(crate) fn hop_mut(&mut self) -> &mut Hop {
        if self.hops.is_empty() {
            self.hops.push(Hop::default());
        }
        let last = self.hops.len() - 1;
        &mut self.hops[last]
    }

    /// Time since the current hop started.
    pub(crate) fn since_hop(&self) -> Duration {
        let start = self.hops.last().map_or(Duration::ZERO, |h| h.start);
        self.start.elapsed().saturating_sub(start)
    }

    /// The current hop ended (its first end counts).
    pub(crate) fn end_hop(&mut self) {
        let now = self.since_hop();
        if let Some(hop) = self.hops.last_mut() {
            hop.end.get_or_insert(now);
        }
    }

    /// curl's `-w` variables for this transfer, which ended with `result`; `exitcode`
    /// is left 0 for the caller, which owns exit codes.
    pub fn write_out_vars(&self, cfg: &Config, result: &Result<(), FetchError>) -> WriteOutVars {
        let last = self.hops.last().cloned().unwrap_or_default();
        let at = |d: Option<Duration>| d.map_or(0.0, |d| (last.start + d).as_secs_f64());
        let total = self.start.elapsed().as_secs_f64();
        let head = self.last_head.as_ref();
        let text = |name: &str| {
            head.and_then(|h| h.header(name))
                .map(|v| String::from_utf8_lossy(v).into_owned())
                .unwrap_or_default()
        };
        // Set whenever the last response is a redirect: not followed (no -L), or
        // stopped by max_redirs.
        let redirect_url = match head {
            Some(h) if policy::is_redirect(h.status) => self
                .current_url
                .as_ref()
                .and_then(|u| u.join(&text("location")).ok())
                .map(|u| policy::redacted(&u))
                .unwrap_or_default(),
            _ => String::new(),
        };
        let per_second = |n: u64| if total > 0.0 { (n as f64 / total) as u64 } else { 0 };
        WriteOutVars {
            http_code: self.status,
            size_download: self.size_download,
            size_header: self.size_header,
            size_request: self.size_request,
            size_upload: self.size_upload,
            speed_download: per_second(self.size_download),
            speed_upload: per_second(self.size_upload),
            time_namelookup: at(last.resolved),
            time_connect: at(last.connected),
            time_appconnect: at(last.tls_done),
            // Every transfer starts as soon as it is its turn: nothing holds it in a
            // queue, so this is the moment before its first request (curl: ~0).
            time_queue: self.hops.first().map_or(0.0, |h| h.start.as_secs_f64()),
            time_pretransfer: at(last.ready()),
            time_posttransfer: at(last.sent),
            time_starttransfer: at(last.first_byte),
            time_redirect: if self.redirects > 0 { last.start.as_secs_f64() } else { 0.0 },
            time_total: total,
            num_redirects: self.redirects,
            num_connects: self.hops.iter().filter(|h| h.connected.is_some()).count() as u32,
            num_retries: self.num_retries,
            conn_id: self.conn_id.map_or(-1, |id| id as i64),
            xfer_id: self.xfer_id as i64,
            proxy_used: self.proxy_used,
            input_url: Some(cfg.url.clone()),
            effective_url: self.current_url.clone(),
            num_headers: head.map_or(0, |h| h.headers.len() as u32),
            remote_ip: last.peer.map(|p| p.ip().to_string()).unwrap_or_default(),
            remote_port: last.peer.map_or(0, |p| p.port()),
            local_ip: last.local.map(|p| p.ip().to_string()).unwrap_or_default(),
            local_port: last.local.map_or(0, |p| p.port()),
            url: policy::redacted(&cfg.url),
            scheme: self.current_url.as_ref().map(|u| u.scheme().to_string()).unwrap_or_default(),
            url_effective: self.current_url.as_ref().map(policy::redacted).unwrap_or_default(),
            method: self.current_method.clone(),
            http_version: head.map(|h| format!("1.{}", h.version)).unwrap_or_default(),
            content_type: text("content-type"),
            redirect_url,
            filename_effective: cfg.output.as_ref().map(|p| p.display().to_string()).unwrap_or_default(),
            exitcode: 0,
            errormsg: result.as_ref().err().map(ToString::to_string).unwrap_or_default(),
            headers: head
                .map(|h| {
                    h.headers
                        .iter()
                        .map(|(n, v)| (n.clone(), String::from_utf8_lossy(v).into_owned()))
                        .collect()
                })
                .unwrap_or_default(),
        }
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}
