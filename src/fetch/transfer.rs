//! One transfer, step by step along the data flow (as ureq's `run.rs`): open a
//! connection, send the request, read the head, read the body, follow a redirect; each
//! a short function over the [`Transfer`]'s state.
//!
//! Not for: bytes-level HTTP (`http1`), decoding (`decode`), files (`sink`, `output`),
//! or anything of the command line: errors are returned typed, never printed or
//! turned into exit codes here.
use std::path::PathBuf;
use std::sync::Arc;

use rustls::ClientConfig;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use url::Url;

use super::config::Config;
use super::decode::ContentDecoder;
use super::error::FetchError;
use super::http1::{self, BodyDecoder, BodyKind, Http1Error, ResponseHead};
use super::metrics::Metrics;
use super::output::{Output, prefixed, to_stderr};
use super::policy::{self, HeaderEdit, HeaderPlan, Redirect};
use super::pool::{Conn, Pool, PoolKey};
use super::range;
use super::sink::{self, Resume, Start};
use super::splice;
use super::stream::{self, Stream};
use super::trace::HttpTap;
use super::upload::{self, Body};
use crate::net::connect::ConnectOptions;
use crate::net::tls::client_config;

/// How a finished transfer went: the result, what was measured, and the partial
/// file a failure left (`FILE.part` and its size), for the caller's message.
#[derive(Debug)]
#[non_exhaustive]
pub struct Outcome {
    /// Ok when the body is complete and in place.
    pub result: Result<(), FetchError>,
    /// Timing and sizes, from which `-w` and `--timing` are rendered.
    pub metrics: Metrics,
    /// On failure, the partial file kept and its size.
    pub partial: Option<(PathBuf, u64)>,
}

/// How one request ended.
enum HopEnd {
    Done,
    Redirect(Redirect),
}

/// The state of one transfer across its redirect hops.
pub struct Transfer<'a> {
    cfg: &'a Config,
    metrics: Metrics,
    out: Output,
    /// Built at the first https hop and kept for later ones.
    tls: Option<Arc<ClientConfig>>,
    resume: Resume,
    /// The 416-on-a-complete-file case: nothing to write, the file is done.
    already_complete: bool,
    /// Retries are left: a transient status ends this attempt without a body.
    retry_status: bool,
    /// The current hop goes through a forward proxy without a tunnel: the request
    /// names the absolute URL and carries the proxy's credentials.
    forward_proxy: Option<Url>,
    /// The session's pool of kept-alive connections, when the transfer is one of
    /// several ([`Transfer::with_pool`]); else `own_pool`, for its redirect hops.
    pool: Option<&'a mut Pool>,
    own_pool: Pool,
}

impl<'a> Transfer<'a> {
    /// A transfer of `cfg`; nothing happens until [`Transfer::run`].
    pub fn new(cfg: &'a Config) -> Self {
        Transfer {
            cfg,
            metrics: Metrics::new(),
            out: Output::new(cfg),
            tls: None,
            resume: Resume::default(),
            already_complete: false,
            forward_proxy: None,
            retry_status: false,
            pool: None,
            own_pool: Pool::new(),
        }
    }

    /// Take connections from `pool` and leave the reusable one there at the end, so
    /// the next transfer to the same place reuses it.
    pub fn with_pool(mut self, pool: &'a mut Pool) -> Self {
        self.pool = Some(pool);
        self
    }

    fn pool(&mut self) -> &mut Pool {
        match &mut self.pool {
            Some(pool) => pool,
            None => &mut self.own_pool,
        }
    }

    /// A response over: keep the connection for the next request when `reusable`, as
    /// curl says it (`-v`, `--trace`), else close it.
    fn release(&mut self, conn: Conn, reusable: bool) {
        let host = conn.key.host.clone();
        let line = if reusable {
            format!("Connection #{} to host {host} left intact", conn.id)
        } else {
            format!("Closing connection #{}", conn.id)
        };
        if self.cfg.verbose {
            to_stderr(&format!("* {line}\n"));
        }
        if let Some(trace) = &self.cfg.trace {
            trace.info(line);
        }
        if reusable {
            self.pool().put(conn);
        }
    }

    /// Let a transient status (408, 429, 5xx) end this attempt as
    /// [`FetchError::TransientStatus`], to be tried again.
    pub fn retry_transient_status(mut self, yes: bool) -> Self {
        self.retry_status = yes;
        self
    }

    /// Run the transfer to its end, bounded by `max_time`, and put the file in place.
    pub async fn run(mut self) -> Outcome {
        let result = match self.cfg.max_time {
            None => self.hops().await,
            Some(limit) => match tokio::time::timeout(limit, self.hops()).await {
                Ok(result) => result,
                Err(_) => Err(FetchError::Timeout { ms: limit.as_millis(), received: self.metrics.received }),
            },
        };
        self.metrics.end_hop();
        let result = result.and_then(|()| self.finish());
        let partial = match (&result, self.out.sink.take()) {
            (Err(_), Some(sink)) => sink.abandon(),
            _ => None,
        };
        Outcome { result, metrics: self.metrics, partial }
    }

    /// Every hop: the request, then each redirect followed.
    async fn hops(&mut self) -> Result<(), FetchError> {
        let cfg = self.cfg;
        if let (true, Some(dest)) = (cfg.resume, &cfg.output) {
            self.resume = sink::find_resume(dest)
                .map_err(|source| FetchError::ReadFile { path: dest.clone(), source })?;
        }
        let (mut url, mut method, mut body) = (cfg.url.clone(), cfg.method.clone(), cfg.body.as_ref());
        loop {
            let HopEnd::Redirect(next) = self.hop(&url, &method, body).await? else { return Ok(()) };
            if self.metrics.redirects >= cfg.max_redirs {
                return Err(FetchError::TooManyRedirects(cfg.max_redirs));
            }
            self.metrics.redirects += 1;
            self.metrics.end_hop();
            if cfg.verbose {
                to_stderr(&format!("* following redirect to {}\n", policy::redacted(&next.url)));
            }
            if let Some(trace) = &cfg.trace {
                trace.info(format!("Issue another request to this URL: '{}'", policy::redacted(&next.url)));
            }
            (url, method) = (next.url, next.method);
            if !next.keep_body {
                body = None;
            }
        }
    }

    /// The body is complete: move the file into place.
    fn finish(&mut self) -> Result<(), FetchError> {
        let cfg = self.cfg;
        let (Some(sink), Some(dest)) = (self.out.sink.take(), &cfg.output) else {
            if let (true, Some(dest), false) = (self.already_complete, &cfg.output, self.resume.in_dest) {
                // A complete FILE.part the server confirmed with 416.
                return std::fs::rename(sink::part_path(dest), dest)
                    .map_err(|source| FetchError::Write { what: dest.display().to_string(), source });
            }
            return Ok(());
        };
        sink.finish().map_err(|source| FetchError::Write { what: dest.display().to_string(), source })
    }

    /// One request and its response, on a kept-alive connection when one fits.
    async fn hop(&mut self, url: &Url, method: &str, body: Option<&Body>) -> Result<HopEnd, FetchError> {
        self.metrics.start_hop(method, url);
        let mut conn = self.connect(url).await?;
        let sent_before = (self.metrics.size_request, self.metrics.size_upload);
        let (head, buf, start, end) = match self.exchange(&mut conn, url, method, body).await {
            // A kept-alive connection the server closed meanwhile: no byte of an
            // answer came, so the request is sent again once on a new one (as curl).
            Err(e) if conn.reused && is_stale(&e) => {
                let line = format!("Connection #{} died before any answer, retrying on a new one", conn.id);
                if self.cfg.verbose {
                    to_stderr(&format!("* {line}\n"));
                }
                if let Some(trace) = &self.cfg.trace {
                    trace.info(line);
                }
                drop(conn);
                (self.metrics.size_request, self.metrics.size_upload) = sent_before;
                conn = self.connect(url).await?;
                self.exchange(&mut conn, url, method, body).await?
            }
            other => other?,
        };
        let cfg = self.cfg;
        if cfg.follow && policy::is_redirect(head.status) {
            if let Some(location) = redirect_location(&head)? {
                let next = policy::follow(url, method, head.status, location)?;
                self.discard_body(conn, method, &head, &buf[start..end]);
                return Ok(HopEnd::Redirect(next));
            }
        }
        if self.retry_status && matches!(head.status, 408 | 429 | 500 | 502 | 503 | 504) {
            let retry_after =
                head.header("retry-after").and_then(|v| std::str::from_utf8(v).ok()?.trim().parse().ok());
            self.release(conn, false);
            return Err(FetchError::TransientStatus { status: head.status, retry_after });
        }
        if cfg.fail && head.status >= 400 {
            self.release(conn, false);
            return Err(FetchError::HttpStatus { status: head.status });
        }
        let Some(how) = self.resume_decision(&head)? else {
            self.already_complete = true;
            self.discard_body(conn, method, &head, &buf[start..end]);
            return Ok(HopEnd::Done);
        };
        let clean = self.read_body(&mut conn.stream, method, &head, how, buf, start..end).await?;
        let reusable = clean && self.keeps_alive(method, &head);
        self.release(conn, reusable);
        Ok(HopEnd::Done)
    }

    /// Send the request and read the final response head on `conn`.
    async fn exchange(
        &mut self,
        conn: &mut Conn,
        url: &Url,
        method: &str,
        body: Option<&Body>,
    ) -> Result<(ResponseHead, Vec<u8>, usize, usize), FetchError> {
        let early = self.send_request(&mut conn.stream, url, method, body).await?;
        let mut buf = vec![0u8; self.cfg.buffer_size.max(early.len())];
        buf[..early.len()].copy_from_slice(&early);
        let (head, start, end) = self.read_head(&mut conn.stream, &mut buf, early.len()).await?;
        Ok((head, buf, start, end))
    }

    /// Whether the connection may carry another request after this response, whose
    /// body was read to its framed end: HTTP/1.1 unless `Connection: close`, HTTP/1.0
    /// only with `Connection: keep-alive`, and never when our request asked to close.
    fn keeps_alive(&self, method: &str, head: &ResponseHead) -> bool {
        let has = |value: &[u8], token: &str| {
            value.split(|&b| b == b',').any(|t| t.trim_ascii().eq_ignore_ascii_case(token.as_bytes()))
        };
        let tokens: Vec<&[u8]> = head.headers_named("connection").collect();
        let asked_close = self.cfg.edits.iter().any(|e| {
            matches!(e, HeaderEdit::Set(n, v) if n.eq_ignore_ascii_case("connection") && has(v.as_bytes(), "close"))
        });
        let until_close = matches!(http1::body_kind(method, head), Ok(BodyKind::UntilClose) | Err(_));
        if asked_close || until_close || tokens.iter().any(|v| has(v, "close")) {
            return false;
        }
        head.version >= 1 || tokens.iter().any(|v| has(v, "keep-alive"))
    }

    /// A response whose body is not wanted (a redirect followed, a resume with nothing
    /// left): the connection stays only when the whole body already arrived with the
    /// head (`rest`), since reading more to keep a connection is not worth a wait.
    fn discard_body(&mut self, conn: Conn, method: &str, head: &ResponseHead, rest: &[u8]) {
        let complete = http1::body_kind(method, head).ok().is_some_and(|kind| {
            let mut framing = BodyDecoder::new(kind).with_max_trailers(self.cfg.max_head);
            let mut at = 0;
            while at < rest.len() && !framing.is_complete() {
                match framing.decode(&rest[at..]) {
                    Ok(d) if d.consumed > 0 => at += d.consumed,
                    _ => return false,
                }
            }
            framing.is_complete() && at == rest.len()
        });
        let reusable = complete && self.keeps_alive(method, head);
        self.release(conn, reusable);
    }

    /// The kept-alive connection to the URL's place when the pool has one, else a new
    /// one: resolve, connect and (https) handshake, stamping each phase.
    async fn connect(&mut self, url: &Url) -> Result<Conn, FetchError> {
        let cfg = self.cfg;
        let https = url.scheme() == "https";
        let proxy = cfg.proxy_for(url);
        let via = proxy.map(|proxy| stream::Via { proxy, tunnel: https || cfg.proxy_tunnel });
        self.forward_proxy = via.filter(|v| !v.tunnel).map(|v| v.proxy.clone());
        self.metrics.proxy_used = via.is_some();
        let tls_key = https.then(|| (cfg.tls.cacert.clone(), cfg.tls.insecure));
        let key = PoolKey::new(url, via.map(|v| (v.proxy, v.tunnel)), tls_key);
        let host = url.host_str().unwrap_or_default();
        if let Some(mut conn) = self.pool().take(&key) {
            let hop = self.metrics.hop_mut();
            (hop.peer, hop.local, hop.reused) = (Some(conn.peer), Some(conn.local), true);
            self.metrics.conn_id = Some(conn.id);
            if cfg.verbose {
                to_stderr(&format!("* Re-using existing connection with host {host}\n"));
            }
            if let Stream::Traced(tap) = &mut conn.stream {
                // A new request and response: each starts with a head.
                tap.new_exchange();
                tap.trace().info(format!("Re-using existing connection #{} with host {host}", conn.id));
            }
            return Ok(conn);
        }
        let tls = if https { Some(self.tls_config()?) } else { None };
        let opts = ConnectOptions { family: cfg.family, timeout: None, source: None, nodelay: true };
        let opened = match stream::open(url, &opts, tls, cfg.connect_timeout, via).await {
            Ok(opened) => opened,
            Err(e) => {
                if let Some(trace) = &cfg.trace {
                    trace.info(e.to_string());
                }
                return Err(e);
            }
        };
        let id = self.pool().next_id();
        self.metrics.conn_id = Some(id);
        let hop = self.metrics.hop_mut();
        (hop.resolved, hop.connected, hop.tls_done) =
            (Some(opened.resolved), Some(opened.connected), opened.tls_done);
        (hop.peer, hop.local, hop.reused) = (Some(opened.peer), Some(opened.local), false);
        if cfg.verbose {
            to_stderr(&format!("* connected to {host} ({}) from {}\n", opened.peer, opened.local));
            if let Some(info) = &opened.tls_info {
                to_stderr(&format!("* TLS: {info}\n"));
            }
        }
        let (peer, local) = (opened.peer, opened.local);
        let stream = match &cfg.trace {
            None => opened.stream,
            Some(trace) => {
                trace.info(format!("Connected to {host} ({}) from {}", opened.peer, opened.local));
                for line in opened.tls_summary.iter().flat_map(|s| s.lines()) {
                    trace.info(line);
                }
                Stream::Traced(Box::new(HttpTap::new(opened.stream, trace.clone())))
            }
        };
        Ok(Conn { stream, id, key, peer, local, reused: false })
    }

    fn tls_config(&mut self) -> Result<Arc<ClientConfig>, FetchError> {
        if let Some(c) = &self.tls {
            return Ok(c.clone());
        }
        let config = client_config(&self.cfg.tls)?;
        self.tls = Some(config.clone());
        Ok(config)
    }

    /// The request head (and an in-memory body with it), then a file body: after the
    /// server's `100 Continue` when `Expect: 100-continue` was sent (large uploads, as
    /// curl), or after `expect_timeout` without an answer; a final answer instead means
    /// the body is not sent. Returns the response bytes already read.
    async fn send_request(
        &mut self,
        stream: &mut Stream,
        url: &Url,
        method: &str,
        body: Option<&Body>,
    ) -> Result<Vec<u8>, FetchError> {
        let cfg = self.cfg;
        let expect = matches!(body, Some(b @ Body::File { .. }) if b.len() >= cfg.expect_100_after);
        let plan = HeaderPlan {
            compressed: cfg.compressed,
            resume_from: self.resume.offset,
            body_len: body.map(Body::len),
            form: cfg.form,
            edits: &cfg.edits,
            credentials: policy::same_origin(&cfg.url, url),
            user: cfg.user.as_deref(),
        };
        let mut headers = policy::build_headers(url, &plan);
        if expect {
            headers.push(("Expect".into(), "100-continue".into()));
        }
        let absolute;
        let target = match &self.forward_proxy {
            // A forward proxy is asked for the absolute URL (RFC 9112 §3.2.2).
            Some(proxy) => {
                if let Some(auth) = policy::basic_auth(proxy) {
                    headers.push(("Proxy-Authorization".into(), auth));
                }
                absolute = policy::absolute_target(url);
                absolute.as_str()
            }
            None => policy::target(url),
        };
        http1::check_request_head(method, target, &headers)?;
        let mut out = Vec::with_capacity(512);
        http1::write_request_head(method, target, &headers, &mut out);
        if cfg.verbose {
            to_stderr(&prefixed("> ", &out));
        }
        if let Some(Body::Bytes(bytes)) = body {
            out.extend_from_slice(bytes);
        }
        self.metrics.size_request += out.len() as u64;
        stream.write_all(&out).await.map_err(FetchError::Send)?;
        let mut early = Vec::new();
        if expect {
            stream.flush().await.map_err(FetchError::Send)?;
            if self.await_continue(stream, &mut early).await? {
                return Ok(early); // The server answered already: the body is not wanted.
            }
        }
        if let Some(body) = body {
            upload::send_file_body(stream, body).await?;
            self.metrics.size_upload += body.len();
            if let Body::File { len, .. } = body {
                self.metrics.size_request += len;
            }
        }
        stream.flush().await.map_err(FetchError::Send)?;
        let now = self.metrics.since_hop();
        self.metrics.hop_mut().sent = Some(now);
        Ok(early)
    }

    /// After `Expect: 100-continue`: read into `early` until a complete head arrives or
    /// `expect_timeout` passes; true when that head is a final answer (the body is then
    /// not sent), false to send the body (after 100, another 1xx, or silence).
    async fn await_continue(&mut self, stream: &mut Stream, early: &mut Vec<u8>) -> Result<bool, FetchError> {
        let cfg = self.cfg;
        let deadline = tokio::time::Instant::now() + cfg.expect_timeout;
        let mut chunk = [0u8; 1024];
        while early.len() < cfg.max_head {
            let n = match tokio::time::timeout_at(deadline, stream.read(&mut chunk)).await {
                Err(_) => return Ok(false),
                Ok(Ok(0)) => return Ok(true), // Closed: read_head reports it.
                Ok(Ok(n)) => n,
                Ok(Err(source)) => return Err(FetchError::Recv { received: early.len() as u64, source }),
            };
            early.extend_from_slice(&chunk[..n]);
            if let Ok(Some((head, _))) = http1::parse_response_head(early, cfg.max_head) {
                return Ok(head.status >= 200);
            }
        }
        Ok(false)
    }

    /// Read until the final (non-1xx) head is parsed; every head goes to -D, -v and -i
    /// as received. Returns the head and where the body bytes already read lie in `buf`.
    /// All the heads of one response share `max_head`, and at most `max_interim` are
    /// interim, so endless 1xx heads end (curl bounds them alike).
    async fn read_head(
        &mut self,
        stream: &mut Stream,
        buf: &mut Vec<u8>,
        early: usize,
    ) -> Result<(ResponseHead, usize, usize), FetchError> {
        let cfg = self.cfg;
        // `early` bytes already in `buf`: read while waiting for 100 Continue.
        let (mut start, mut end, mut total) = (0usize, early, early as u64);
        if early > 0 {
            let now = self.metrics.since_hop();
            self.metrics.hop_mut().first_byte = Some(now);
        }
        let (mut interim, mut head_bytes) = (0u32, 0usize);
        // Parses only when the head may be complete, so a trickled head costs linear time.
        let mut parser = http1::HeadParser::new(cfg.max_head);
        loop {
            let parsed = parser.parse(&buf[start..end]).map_err(|e| match e {
                Http1Error::HeadTooLarge { .. } => Http1Error::HeadTooLarge { limit: cfg.max_head },
                other => other,
            })?;
            if let Some((head, n)) = parsed {
                self.metrics.size_header += n as u64;
                self.out.head(cfg, &buf[start..start + n])?;
                (start, head_bytes) = (start + n, head_bytes + n);
                if head.status == 101 {
                    // We never ask to switch protocols, and cannot speak another one.
                    return Err(FetchError::WeirdReply(
                        "101 Switching Protocols to a request that asked for no upgrade".into(),
                    ));
                }
                if !head.is_interim() {
                    self.final_head(&head);
                    return Ok((head, start, end));
                }
                interim += 1;
                if interim > cfg.max_interim {
                    let max = cfg.max_interim;
                    return Err(FetchError::WeirdReply(format!(
                        "more than {max} interim (1xx) responses (--max-interim)"
                    )));
                }
                if head_bytes >= cfg.max_head {
                    return Err(Http1Error::HeadTooLarge { limit: cfg.max_head }.into());
                }
                parser = http1::HeadParser::new(cfg.max_head - head_bytes);
                continue;
            }
            if start > 0 {
                buf.copy_within(start..end, 0);
                (start, end) = (0, end - start);
            }
            if end == buf.len() {
                // Only a head longer than the buffer grows it, and never past max_head
                // (the parser fails at that size).
                let bigger = (buf.len() * 2).min(cfg.max_head).max(buf.len() + 1);
                buf.resize(bigger, 0);
            }
            let n = read_head_bytes(stream, &mut buf[end..])
                .await
                .map_err(|source| FetchError::Recv { received: total, source })?;
            if n == 0 {
                return Err(closed_in_head(total, end));
            }
            if total == 0 {
                let now = self.metrics.since_hop();
                self.metrics.hop_mut().first_byte = Some(now);
            }
            (total, end) = (total + n as u64, end + n);
        }
    }

    fn final_head(&mut self, head: &ResponseHead) {
        let now = self.metrics.since_hop();
        let hop = self.metrics.hop_mut();
        (hop.status, hop.head_done) = (Some(head.status), Some(now));
        self.metrics.status = head.status;
        self.metrics.last_head = Some(head.clone());
    }

    /// With `-C -`: append (206 from the right offset), start over (2xx), or
    /// nothing left to do (`None`: 416 for a file already complete).
    fn resume_decision(&self, head: &ResponseHead) -> Result<Option<Start>, FetchError> {
        let offset = self.resume.offset;
        if !self.cfg.resume || offset == 0 {
            return Ok(Some(Start::Fresh));
        }
        let range = head.header("content-range").and_then(range::parse_content_range);
        let unsatisfied = head.header("content-range").and_then(range::parse_unsatisfied_range);
        match (head.status, range) {
            (206, Some(r)) if r.start == offset => Ok(Some(Start::Append(self.resume))),
            // An empty range: nothing is left, the file is complete (curl: exit 0).
            (206, None) if head.header("content-length").is_some_and(|v| v.trim_ascii() == b"0") => Ok(None),
            (206, Some(r)) => {
                Err(FetchError::Range(format!("asked for bytes from {offset}, got from {}", r.start)))
            }
            (206, None) => Err(FetchError::Range("206 without a valid content-range".into())),
            (416, _) if unsatisfied == Some(offset) => Ok(None),
            (416, _) => Err(FetchError::Range(format!(
                "server refused the range from byte {offset} (416), but the file is not its full size"
            ))),
            (200..=299, _) => Ok(Some(Start::Fresh)),
            (status, _) => Err(FetchError::HttpStatus { status }),
        }
    }

    /// The body: framed by `http1`, decoded when asked, to the sink; a plain-HTTP body
    /// of known length going to a file is spliced instead.
    async fn read_body(
        &mut self,
        stream: &mut Stream,
        method: &str,
        head: &ResponseHead,
        how: Start,
        mut buf: Vec<u8>,
        first: std::ops::Range<usize>,
    ) -> Result<bool, FetchError> {
        let cfg = self.cfg;
        let kind = http1::body_kind(method, head)?;
        self.out.open(cfg, how)?;
        let mut content = match (cfg.compressed, head.header("content-encoding")) {
            (true, Some(_)) => {
                Some(ContentDecoder::from_header_lines(head.headers_named("content-encoding"))?)
            }
            _ => None,
        };
        self.out.start_progress(cfg, kind, how);
        let mut framing = BodyDecoder::new(kind).with_max_trailers(cfg.max_head);
        let (mut start, mut end) = (first.start, first.end);
        // The body ended at its framed end with no byte after it: the connection can
        // carry another request (a body ended by the close never can).
        let clean = loop {
            while start < end && !framing.is_complete() {
                let d = framing.decode(&buf[start..end])?;
                start += d.consumed;
                self.metrics.received = framing.received();
                self.metrics.size_download += d.data.len() as u64;
                self.out.body(&mut content, d.data, self.metrics.received)?;
            }
            if framing.is_complete() {
                break start == end;
            }
            start = 0;
            if content.is_none() && self.try_splice(stream, &framing).await? {
                break true;
            }
            let n = self.read_body_bytes(stream, kind, &mut buf).await?;
            if n == 0 {
                framing.finish()?;
                break false;
            }
            end = n;
        };
        self.out.end_body(&mut content, self.metrics.received)?;
        self.out.trailers(cfg, framing.trailers())?;
        Ok(clean)
    }

    /// The rest of a Content-Length body straight from a plain socket into the `.part`
    /// file by splice(2); false when that path does not apply.
    async fn try_splice(&mut self, stream: &Stream, framing: &BodyDecoder) -> Result<bool, FetchError> {
        let (Stream::Plain(tcp), Some(remaining), true) =
            (stream, framing.remaining(), self.cfg.splice && self.cfg.output.is_some())
        else {
            return Ok(false);
        };
        let Some(sink) = self.out.sink.as_mut().filter(|s| s.is_part_file()) else { return Ok(false) };
        let moved = match splice::socket_to_file(tcp, sink, remaining, &mut self.metrics.received).await {
            Ok(moved) => moved,
            Err(splice::SpliceError::Read(source)) => {
                return Err(FetchError::Recv { received: self.metrics.received, source });
            }
            Err(splice::SpliceError::Write(source)) => {
                return Err(FetchError::Write { what: sink.describe(), source });
            }
        };
        self.metrics.size_download += moved;
        if moved < remaining {
            let expected = framing.expected().unwrap_or_default();
            let received = expected - (remaining - moved);
            return Err(
                Http1Error::Truncated { received, expected: Some(expected), detail: String::new() }.into()
            );
        }
        Ok(true)
    }

    /// One read of body bytes; 0 at the end. A TLS peer can say "this is the end"
    /// (close_notify); a bare TCP close without it may be an attacker's cut, which only
    /// the framing can catch, except for a body delimited by the close itself.
    async fn read_body_bytes(
        &self,
        stream: &mut Stream,
        kind: BodyKind,
        buf: &mut [u8],
    ) -> Result<usize, FetchError> {
        match stream.read(buf).await {
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof && stream.is_tls() => {
                if kind == BodyKind::UntilClose && !self.cfg.ignore_missing_close_notify {
                    return Err(FetchError::Http(Http1Error::Truncated {
                        received: self.metrics.received,
                        expected: None,
                        detail: "the TLS connection closed without close_notify \
                                 (--ignore-missing-close-notify accepts it)"
                            .into(),
                    }));
                }
                Ok(0)
            }
            other => other.map_err(|source| FetchError::Recv { received: self.metrics.received, source }),
        }
    }
}

/// Where a redirect leads: its one `Location`, or `None` for an empty one (not a
/// redirect, as curl reads it); two different values are a malformed reply.
fn redirect_location(head: &ResponseHead) -> Result<Option<&[u8]>, FetchError> {
    let mut values = head.headers_named("location").map(<[u8]>::trim_ascii);
    let Some(first) = values.next() else { return Ok(None) };
    if values.any(|other| other != first) {
        return Err(FetchError::WeirdReply("two different Location headers in one response".into()));
    }
    Ok(Some(first).filter(|l| !l.is_empty()))
}

/// Read head bytes; a TLS peer that closes without close_notify is an ordinary EOF
/// here (a close inside a head is an error either way).
async fn read_head_bytes(stream: &mut Stream, buf: &mut [u8]) -> std::io::Result<usize> {
    match stream.read(buf).await {
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof && stream.is_tls() => Ok(0),
        other => other,
    }
}

/// A failure on a reused connection before any byte of an answer: the server closed
/// it while it was idle (or the request could not be written to it).
fn is_stale(err: &FetchError) -> bool {
    matches!(err, FetchError::EmptyReply | FetchError::Send(_) | FetchError::Recv { received: 0, .. })
}

/// The connection closed before the final head: empty reply, or where it stopped.
fn closed_in_head(total: u64, buffered: usize) -> FetchError {
    if total == 0 {
        return FetchError::EmptyReply;
    }
    if buffered > 0 {
        // curl's partial-file error: the reply began and was cut.
        return FetchError::PartialHead { received: total };
    }
    let source = std::io::Error::new(
        std::io::ErrorKind::UnexpectedEof,
        "connection closed before the final response head",
    );
    FetchError::Recv { received: total, source }
}
