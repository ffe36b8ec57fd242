//! `tcpkit fetch`: HTTP/1.1 and HTTPS over our own sockets.
//!
//! The data flows one way: URL -> resolve -> connect (-> TLS) -> request bytes ->
//! [`http1`] (head, then body framing) -> optional content decoding ([`decode`]) ->
//! [`sink`]. Redirects repeat that with a new URL; `-C -` adds a Range and decides
//! from the answer whether to append. Memory is fixed: one read buffer of
//! `--buffer-size` (grown only while a head is incomplete, up to `--max-head`).
//!
//! Not for: HTTP/2, keep-alive or connection reuse, cookies, proxies, auth schemes.
pub mod decode;
pub mod http1;
pub mod names;
pub mod writeout;

pub mod client;
pub mod exit;
pub mod request;
pub mod sink;
mod splice;
pub mod timing;

use std::fs::File;
use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::ClientConfig;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use url::Url;

use self::client::Conn;
use self::exit::{FetchError, exit_code};
use self::http1::{BodyDecoder, BodyKind, ResponseHead};
use self::request::{HeaderEdit, HeaderPlan};
use self::sink::{Resume, Sink, Start};
use self::timing::Hop;
use crate::Failure;
use crate::cli::FetchArgs;
use crate::net::connect::{ConnectOptions, Family};
use crate::net::tls::{ClientOptions, client_config};

/// Everything the command line asked for, checked.
struct Config {
    url: Url,
    method: String,
    body: Option<Body>,
    form: bool,
    edits: Vec<HeaderEdit>,
    /// `-o`/`-O`: the final file name.
    output: Option<PathBuf>,
    resume: bool,
    include: bool,
    follow: bool,
    max_redirs: u32,
    connect: ConnectOptions,
    connect_timeout: Duration,
    /// `-m`: the deadline of the whole transfer (`-m 0`: none, as in curl).
    max_time: Option<Duration>,
    /// `--max-interim`: most interim (1xx) heads before the final one.
    max_interim: u32,
    /// `--ignore-missing-close-notify`: a TLS body delimited by close is complete at
    /// a bare TCP close too.
    ignore_missing_close_notify: bool,
    tls: ClientOptions,
    compressed: bool,
    max_head: usize,
    buffer_size: usize,
    splice: bool,
    dump: Option<PathBuf>,
    verbose: bool,
    progress: bool,
    fail: bool,
    write_out: Option<String>,
    timing: bool,
}

/// A request body: in memory (`-d`, a literal `--data-binary`), or streamed from a
/// file (`--data-binary @FILE`), so a large upload costs no memory.
enum Body {
    Bytes(Vec<u8>),
    File { path: PathBuf, len: u64 },
}

impl Body {
    fn len(&self) -> u64 {
        match self {
            Body::Bytes(b) => b.len() as u64,
            Body::File { len, .. } => *len,
        }
    }
}

/// Bytes read from a `--data-binary @FILE` per write to the socket.
const UPLOAD_CHUNK: usize = 64 * 1024;

/// The body of `-d` / `--data-binary`: literal, or `@FILE` (newlines stripped for `-d`,
/// which curl also reads into memory: form data is small).
fn request_body(args: &FetchArgs) -> Result<Option<Body>, FetchError> {
    let read = |spec: &str| -> Result<Vec<u8>, FetchError> {
        match spec.strip_prefix('@') {
            Some(path) => {
                std::fs::read(path).map_err(|source| FetchError::ReadFile { path: path.into(), source })
            }
            None => Ok(spec.as_bytes().to_vec()),
        }
    };
    if let Some(spec) = &args.data_binary {
        let Some(path) = spec.strip_prefix('@') else {
            return Ok(Some(Body::Bytes(spec.as_bytes().to_vec())));
        };
        let meta =
            std::fs::metadata(path).map_err(|source| FetchError::ReadFile { path: path.into(), source })?;
        if !meta.is_file() {
            let source = std::io::Error::other("not a regular file");
            return Err(FetchError::ReadFile { path: path.into(), source });
        }
        return Ok(Some(Body::File { path: path.into(), len: meta.len() }));
    }
    if args.data.is_empty() {
        return Ok(None);
    }
    let mut body = Vec::new();
    for (i, spec) in args.data.iter().enumerate() {
        if i > 0 {
            body.push(b'&');
        }
        let mut part = read(spec)?;
        if spec.starts_with('@') {
            part.retain(|&b| b != b'\r' && b != b'\n');
        }
        body.extend_from_slice(&part);
    }
    Ok(Some(Body::Bytes(body)))
}

/// Send `body` after the head: from memory, or read from its file in
/// [`UPLOAD_CHUNK`] pieces, exactly the length announced in Content-Length.
async fn send_body(conn: &mut Conn, body: &Body) -> Result<(), FetchError> {
    use std::io::Read;
    let Body::File { path, len } = body else { return Ok(()) };
    let fail = |source| FetchError::ReadFile { path: path.clone(), source };
    let mut file = File::open(path).map_err(fail)?;
    let mut chunk = vec![0u8; UPLOAD_CHUNK];
    let mut left = *len;
    while left > 0 {
        let want = usize::try_from(left).map_or(chunk.len(), |l| l.min(chunk.len()));
        let n = file.read(&mut chunk[..want]).map_err(fail)?;
        if n == 0 {
            return Err(fail(std::io::Error::other(format!(
                "file shrank: {} of {len} bytes left to send",
                left
            ))));
        }
        conn.write_all(&chunk[..n]).await.map_err(FetchError::Send)?;
        left -= n as u64;
    }
    Ok(())
}

impl Config {
    fn from_args(args: &FetchArgs) -> Result<Config, FetchError> {
        let url = request::parse_url(&args.url)?;
        let body = request_body(args)?;
        if args.head && body.is_some() {
            return Err(FetchError::Usage("-I sends HEAD, which carries no body: drop -d".into()));
        }
        let method = match (&args.request, args.head, &body) {
            (Some(m), _, _) => m.clone(),
            (None, true, _) => "HEAD".into(),
            (None, false, Some(_)) => "POST".into(),
            (None, false, None) => "GET".into(),
        };
        let edits =
            args.header.iter().map(|h| request::parse_header_edit(h)).collect::<Result<Vec<_>, _>>()?;
        let output = match (&args.output, args.remote_name) {
            (Some(path), _) => Some(path.clone()),
            (None, true) => Some(PathBuf::from(names::output_name_from_url(&url))),
            (None, false) => None,
        };
        let resume = match args.continue_at.as_deref() {
            None => false,
            Some("-") if output.is_none() => {
                return Err(FetchError::Usage("-C - resumes a file: give -o FILE or -O".into()));
            }
            Some("-") if args.include || args.head => {
                return Err(FetchError::Usage("-C - needs the exact body in the file: drop -i / -I".into()));
            }
            // A range of an encoded body cannot be appended to decoded bytes.
            Some("-") if args.compressed => {
                return Err(FetchError::Usage("-C - needs the body as sent: drop --compressed".into()));
            }
            Some("-") => true,
            Some(other) => return Err(FetchError::Usage(format!("-C {other}: only `-C -` is supported"))),
        };
        let family = match (args.ipv4, args.ipv6) {
            (true, _) => Family::V4,
            (_, true) => Family::V6,
            _ => Family::Any,
        };
        Ok(Config {
            method,
            form: !args.data.is_empty(),
            body,
            edits,
            resume,
            include: args.include || args.head,
            follow: args.location,
            max_redirs: args.max_redirs,
            connect: ConnectOptions { family, timeout: None, source: None, nodelay: true },
            connect_timeout: args.connect_timeout,
            // `-m 0` is no limit, as in curl.
            max_time: args.max_time.filter(|d| !d.is_zero()),
            max_interim: args.max_interim,
            ignore_missing_close_notify: args.ignore_missing_close_notify,
            tls: ClientOptions { cacert: args.cacert.clone(), insecure: args.insecure },
            compressed: args.compressed,
            max_head: args.max_head.max(64),
            buffer_size: args.buffer_size as usize,
            splice: !args.no_splice,
            dump: args.dump_header.clone(),
            verbose: args.verbose,
            progress: !args.silent && output.is_some() && std::io::stderr().is_terminal(),
            output,
            fail: args.fail,
            write_out: args.write_out.clone(),
            timing: args.timing,
            url,
        })
    }
}

/// Fetch the URL (see the module documentation and the README for every flag).
pub fn run(args: FetchArgs) -> Result<(), Failure> {
    let show_errors = !args.silent || args.show_error;
    let failure = |e: &FetchError, hint: String| {
        let code = exit_code(e);
        if show_errors { Failure::new(code, format!("{e}{hint}")) } else { Failure::silent(code) }
    };
    let cfg = Config::from_args(&args).map_err(|e| failure(&e, String::new()))?;
    // One thread: a single transfer gains nothing from more, and start-up stays short.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Failure::new(2, format!("fetch: cannot start the runtime: {e}")))?;
    let mut t = Transfer::new(&cfg);
    let result = rt.block_on(async {
        let Some(limit) = cfg.max_time else { return t.run().await };
        let outcome = tokio::time::timeout(limit, t.run()).await;
        outcome.unwrap_or_else(|_| Err(FetchError::Timeout { ms: limit.as_millis(), received: t.received }))
    });
    drop(rt);
    t.end_hop();
    let result = result.and_then(|()| t.finish());
    let hint = match (&result, t.sink.take()) {
        (Err(_), Some(sink)) => match sink.abandon() {
            // Decoded bytes cannot be resumed: `-C -` refuses --compressed.
            Some((part, len)) if cfg.compressed => {
                format!("; {} holds {len} bytes of the decoded body", part.display())
            }
            Some((part, len)) => {
                format!("; {} holds {len} bytes: run again with `-C -` to resume", part.display())
            }
            None => String::new(),
        },
        _ => String::new(),
    };
    if cfg.timing {
        to_stderr(&timing::render(&t.hops));
    }
    if let Some(format) = &cfg.write_out {
        let (text, warnings) = writeout::render_with_warnings(format, &t.write_out_vars(&result));
        for w in warnings.iter().filter(|_| show_errors) {
            to_stderr(&format!("tcpkit: warning: {w}\n"));
        }
        // A closed stdout is reported by the transfer itself; -w adds nothing to it.
        let _ = std::io::stdout().write_all(text.as_bytes());
        let _ = std::io::stdout().flush();
    }
    result.map_err(|e| failure(&e, hint))
}

/// How one request ended.
enum HopEnd {
    Done,
    Redirect(request::Redirect),
}

/// The state of one `fetch` run across its redirect hops.
struct Transfer<'a> {
    cfg: &'a Config,
    start: Instant,
    hops: Vec<Hop>,
    sink: Option<Sink>,
    dump: Option<(File, String)>,
    tls: Option<Arc<ClientConfig>>,
    resume: Resume,
    /// Body bytes received on the wire in the current hop (framing included).
    received: u64,
    /// Body bytes after framing, before content decoding (curl's size_download).
    size_download: u64,
    /// Response head bytes, interim ones included (curl's size_header).
    size_header: u64,
    status: u16,
    /// Request bytes sent (heads and bodies) and request body bytes sent.
    size_request: u64,
    size_upload: u64,
    redirects: u32,
    current_url: Option<Url>,
    current_method: String,
    last_head: Option<ResponseHead>,
    /// The 416-on-a-complete-file case: nothing to write, the file is done.
    already_complete: bool,
    /// When `-m` runs out: checked between decoded pieces, since decoding a bomb
    /// is work that never waits on the runtime's timer.
    deadline: Option<Instant>,
}

impl<'a> Transfer<'a> {
    fn new(cfg: &'a Config) -> Self {
        Transfer {
            cfg,
            start: Instant::now(),
            hops: Vec::new(),
            sink: None,
            dump: None,
            tls: None,
            resume: Resume::default(),
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
            already_complete: false,
            deadline: cfg.max_time.and_then(|d| Instant::now().checked_add(d)),
        }
    }

    async fn run(&mut self) -> Result<(), FetchError> {
        let cfg = self.cfg;
        if let (true, Some(dest)) = (cfg.resume, &cfg.output) {
            self.resume = sink::find_resume(dest)
                .map_err(|source| FetchError::ReadFile { path: dest.clone(), source })?;
        }
        let mut url = cfg.url.clone();
        let mut method = cfg.method.clone();
        let mut body = cfg.body.as_ref();
        loop {
            match self.hop(&url, &method, body).await? {
                HopEnd::Done => return Ok(()),
                HopEnd::Redirect(next) => {
                    if self.redirects >= cfg.max_redirs {
                        return Err(FetchError::TooManyRedirects(cfg.max_redirs));
                    }
                    self.redirects += 1;
                    self.end_hop();
                    if cfg.verbose {
                        to_stderr(&format!("* following redirect to {}\n", request::redacted(&next.url)));
                    }
                    url = next.url;
                    method = next.method;
                    if !next.keep_body {
                        body = None;
                    }
                }
            }
        }
    }

    /// The body is complete: move the file into place.
    fn finish(&mut self) -> Result<(), FetchError> {
        let (Some(sink), Some(dest)) = (self.sink.take(), &self.cfg.output) else {
            if let (true, Some(dest), false) = (self.already_complete, &self.cfg.output, self.resume.in_dest)
            {
                // A complete FILE.part the server confirmed with 416.
                let part = sink::part_path(dest);
                return std::fs::rename(&part, dest)
                    .map_err(|source| FetchError::Write { what: dest.display().to_string(), source });
            }
            return Ok(());
        };
        sink.finish().map_err(|source| FetchError::Write { what: dest.display().to_string(), source })
    }

    fn hop_mut(&mut self) -> &mut Hop {
        if self.hops.is_empty() {
            self.hops.push(Hop::default());
        }
        let last = self.hops.len() - 1;
        &mut self.hops[last]
    }

    fn since_hop(&self) -> Duration {
        let start = self.hops.last().map_or(Duration::ZERO, |h| h.start);
        self.start.elapsed().saturating_sub(start)
    }

    fn end_hop(&mut self) {
        let now = self.since_hop();
        if let Some(hop) = self.hops.last_mut() {
            hop.end.get_or_insert(now);
        }
    }

    fn tls_config(&mut self) -> Result<Arc<ClientConfig>, FetchError> {
        if let Some(c) = &self.tls {
            return Ok(c.clone());
        }
        let config = client_config(&self.cfg.tls)?;
        self.tls = Some(config.clone());
        Ok(config)
    }

    /// One request and its response.
    async fn hop(&mut self, url: &Url, method: &str, body: Option<&Body>) -> Result<HopEnd, FetchError> {
        let cfg = self.cfg;
        self.hops.push(Hop {
            what: format!("{method} {}", request::redacted(url)),
            start: self.start.elapsed(),
            ..Hop::default()
        });
        self.received = 0;
        (self.current_url, self.current_method) = (Some(url.clone()), method.to_string());
        let tls = if url.scheme() == "https" { Some(self.tls_config()?) } else { None };
        let opened = client::open(url, &cfg.connect, tls, cfg.connect_timeout).await?;
        let hop = self.hop_mut();
        (hop.resolved, hop.connected, hop.tls_done) =
            (Some(opened.resolved), Some(opened.connected), opened.tls_done);
        (hop.peer, hop.local) = (Some(opened.peer), Some(opened.local));
        if cfg.verbose {
            to_stderr(&format!(
                "* connected to {} ({}) from {}\n",
                url.host_str().unwrap_or_default(),
                opened.peer,
                opened.local
            ));
            if let Some(info) = &opened.tls_info {
                to_stderr(&format!("* TLS: {info}\n"));
            }
        }
        let mut conn = opened.conn;

        let plan = HeaderPlan {
            compressed: cfg.compressed,
            resume_from: self.resume.offset,
            body_len: body.map(Body::len),
            form: cfg.form,
            edits: &cfg.edits,
            credentials: request::same_origin(&cfg.url, url),
        };
        let headers = request::build_headers(url, &plan);
        let target = request::target(url);
        http1::check_request_head(method, target, &headers)?;
        let mut out = Vec::with_capacity(512);
        http1::write_request_head(method, target, &headers, &mut out);
        if cfg.verbose {
            to_stderr(&prefixed("> ", &out));
        }
        if let Some(Body::Bytes(bytes)) = body {
            out.extend_from_slice(bytes);
        }
        self.size_request += out.len() as u64;
        conn.write_all(&out).await.map_err(FetchError::Send)?;
        if let Some(body) = body {
            send_body(&mut conn, body).await?;
            self.size_upload += body.len();
            if let Body::File { len, .. } = body {
                self.size_request += len;
            }
        }
        conn.flush().await.map_err(FetchError::Send)?;
        drop(out);
        let now = self.since_hop();
        self.hop_mut().sent = Some(now);

        let mut buf = vec![0u8; cfg.buffer_size];
        let (head, mut start, mut end) = self.read_head(&mut conn, &mut buf).await?;
        let now = self.since_hop();
        let hop = self.hop_mut();
        hop.status = Some(head.status);
        hop.head_done = Some(now);
        self.status = head.status;
        self.last_head = Some(head.clone());

        if cfg.follow && request::is_redirect(head.status) {
            if let Some(location) = head.header("location") {
                return Ok(HopEnd::Redirect(request::follow(url, method, head.status, location)?));
            }
        }
        if cfg.fail && head.status >= 400 {
            return Err(FetchError::HttpStatus { status: head.status });
        }
        let Some(how) = self.resume_decision(&head)? else {
            self.already_complete = true;
            return Ok(HopEnd::Done);
        };
        let kind = http1::body_kind(method, &head)?;
        self.open_sink(how)?;
        let mut content = match (cfg.compressed, head.header("content-encoding")) {
            (true, Some(_)) => {
                Some(decode::ContentDecoder::from_header_lines(head.headers_named("content-encoding"))?)
            }
            _ => None,
        };
        self.start_progress(kind, how);
        let mut framing = BodyDecoder::new(kind).with_max_trailers(cfg.max_head);
        loop {
            while start < end && !framing.is_complete() {
                let d = framing.decode(&buf[start..end])?;
                start += d.consumed;
                self.received = framing.received();
                self.size_download += d.data.len() as u64;
                self.write_body(&mut content, d.data)?;
            }
            start = 0;
            if framing.is_complete() {
                break;
            }
            if let (Conn::Plain(tcp), Some(remaining), None, true) =
                (&conn, framing.remaining(), &content, cfg.splice && cfg.output.is_some())
            {
                if let Some(sink) = self.sink.as_mut().filter(|s| s.is_part_file()) {
                    let moved = splice::socket_to_file(tcp, sink, remaining, &mut self.received).await;
                    let moved = moved.map_err(|e| self.splice_error(e))?;
                    self.size_download += moved;
                    if moved < remaining {
                        let expected = framing.expected().unwrap_or_default();
                        return Err(FetchError::Partial {
                            received: expected - (remaining - moved),
                            expected,
                        });
                    }
                    break;
                }
            }
            let n = match conn.read(&mut buf).await {
                // A TLS peer can say "this is the end" (close_notify); a bare TCP close
                // without it may be an attacker's cut, which only the framing can
                // catch, except for a body delimited by the close itself.
                Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof && matches!(conn, Conn::Tls(_)) => {
                    if kind == BodyKind::UntilClose && !cfg.ignore_missing_close_notify {
                        return Err(FetchError::Http(http1::Http1Error::Truncated {
                            received: self.received,
                            expected: None,
                            detail: "the TLS connection closed without close_notify \
                                     (--ignore-missing-close-notify accepts it)"
                                .into(),
                        }));
                    }
                    0
                }
                other => other.map_err(|source| FetchError::Recv { received: self.received, source })?,
            };
            if n == 0 {
                framing.finish()?;
                break;
            }
            end = n;
        }
        let (deadline, limit, received) = (self.deadline, self.cfg.max_time, self.received);
        if let (Some(decoder), Some(sink)) = (content.as_mut(), self.sink.as_mut()) {
            let res = decoder
                .finish(&mut Deadline { sink, at: deadline })
                .map_err(|e| decode_error(e, limit, received));
            if let Some(source) = sink.take_error() {
                return Err(FetchError::Write { what: sink.describe(), source });
            }
            res?;
        }
        Ok(HopEnd::Done)
    }

    /// Read until the final (non-1xx) head is parsed; every head goes to -D, -v
    /// and -i as received. Returns the head and the body bytes already read.
    async fn read_head(
        &mut self,
        conn: &mut Conn,
        buf: &mut Vec<u8>,
    ) -> Result<(ResponseHead, usize, usize), FetchError> {
        let cfg = self.cfg;
        let (mut start, mut end) = (0usize, 0usize);
        let mut total = 0u64;
        // Interim heads so far, and the bytes of every head so far: all the heads of one
        // response share --max-head, so endless 1xx heads end (curl bounds them alike).
        let (mut interim, mut head_bytes) = (0u32, 0usize);
        // Parses only when the head may be complete, so a trickled head costs linear time.
        let mut parser = http1::HeadParser::new(cfg.max_head);
        loop {
            let parsed = parser.parse(&buf[start..end]).map_err(|e| match e {
                http1::Http1Error::HeadTooLarge { .. } => {
                    http1::Http1Error::HeadTooLarge { limit: cfg.max_head }
                }
                other => other,
            })?;
            if let Some((head, n)) = parsed {
                self.emit_head(&buf[start..start + n])?;
                start += n;
                head_bytes += n;
                if head.status == 101 {
                    // We never ask to switch protocols, and cannot speak another one.
                    return Err(FetchError::WeirdReply(
                        "101 Switching Protocols to a request that asked for no upgrade".into(),
                    ));
                }
                if head.is_interim() {
                    interim += 1;
                    if interim > cfg.max_interim {
                        return Err(FetchError::WeirdReply(format!(
                            "more than {} interim (1xx) responses (--max-interim)",
                            cfg.max_interim
                        )));
                    }
                    if head_bytes >= cfg.max_head {
                        return Err(http1::Http1Error::HeadTooLarge { limit: cfg.max_head }.into());
                    }
                    parser = http1::HeadParser::new(cfg.max_head - head_bytes);
                    continue;
                }
                return Ok((head, start, end));
            }
            if start > 0 {
                buf.copy_within(start..end, 0);
                (start, end) = (0, end - start);
            }
            if end == buf.len() {
                // Only a head longer than the buffer grows it, and never past --max-head
                // (the parser fails at that size).
                let bigger = (buf.len() * 2).min(cfg.max_head).max(buf.len() + 1);
                buf.resize(bigger, 0);
            }
            let n = read(conn, &mut buf[end..])
                .await
                .map_err(|source| FetchError::Recv { received: total, source })?;
            if n == 0 {
                if total == 0 {
                    return Err(FetchError::EmptyReply);
                }
                let what = if end > 0 { "inside a response head" } else { "before the final response head" };
                return Err(FetchError::Recv {
                    received: total,
                    source: std::io::Error::new(
                        std::io::ErrorKind::UnexpectedEof,
                        format!("connection closed {what}"),
                    ),
                });
            }
            if total == 0 {
                let now = self.since_hop();
                self.hop_mut().first_byte = Some(now);
            }
            total += n as u64;
            end += n;
        }
    }

    /// A head as received: to -D, to stderr with -v, into the output with -i.
    fn emit_head(&mut self, raw: &[u8]) -> Result<(), FetchError> {
        let cfg = self.cfg;
        self.size_header += raw.len() as u64;
        if let Some(path) = &cfg.dump {
            if self.dump.is_none() {
                let (file, what) = if path.as_os_str() == "-" {
                    (dup_stdout(), "stdout".to_string())
                } else {
                    (File::create(path), path.display().to_string())
                };
                let file = file.map_err(|source| FetchError::Write { what: what.clone(), source })?;
                self.dump = Some((file, what));
            }
            if let Some((file, what)) = &mut self.dump {
                file.write_all(raw).map_err(|source| FetchError::Write { what: what.clone(), source })?;
            }
        }
        if cfg.verbose {
            to_stderr(&prefixed("< ", raw));
        }
        if cfg.include {
            self.open_sink(Start::Fresh)?;
            if let Some(sink) = self.sink.as_mut() {
                sink.write_all(raw).map_err(|source| FetchError::Write { what: sink.describe(), source })?;
            }
        }
        Ok(())
    }

    /// With `-C -`: append (206 from the right offset), start over (2xx), or
    /// nothing left to do (`None`: 416 for a file already complete).
    fn resume_decision(&self, head: &ResponseHead) -> Result<Option<Start>, FetchError> {
        let offset = self.resume.offset;
        if !self.cfg.resume || offset == 0 {
            return Ok(Some(Start::Fresh));
        }
        let range = head.header("content-range").and_then(names::parse_content_range);
        match (head.status, range) {
            (206, Some(r)) if r.start == offset => Ok(Some(Start::Append(self.resume))),
            (206, Some(r)) => {
                Err(FetchError::Range(format!("asked for bytes from {offset}, got from {}", r.start)))
            }
            (206, None) => Err(FetchError::Range("206 without a valid content-range".into())),
            (416, _)
                if head.header("content-range").and_then(names::parse_unsatisfied_range) == Some(offset) =>
            {
                Ok(None)
            }
            (416, _) => Err(FetchError::Range(format!(
                "server refused the range from byte {offset} (416), but the file is not its full size"
            ))),
            (200..=299, _) => Ok(Some(Start::Fresh)),
            (status, _) => Err(FetchError::HttpStatus { status }),
        }
    }

    fn open_sink(&mut self, how: Start) -> Result<(), FetchError> {
        if self.sink.is_some() {
            return Ok(());
        }
        let sink = match &self.cfg.output {
            None => Sink::stdout().map_err(|source| FetchError::Write { what: "stdout".into(), source })?,
            Some(dest) => Sink::file(dest, how).map_err(|source| FetchError::Write {
                what: sink::part_path(dest).display().to_string(),
                source,
            })?,
        };
        self.sink = Some(sink);
        Ok(())
    }

    fn start_progress(&mut self, kind: BodyKind, how: Start) {
        let Some(sink) = self.sink.as_mut().filter(|_| self.cfg.progress) else { return };
        let done = match how {
            Start::Append(r) => r.offset,
            Start::Fresh => 0,
        };
        let bar = match kind {
            BodyKind::Length(n) => indicatif::ProgressBar::new(n + done).with_style(
                indicatif::ProgressStyle::with_template(
                    "{bytes}/{total_bytes} {binary_bytes_per_sec} eta {eta} [{wide_bar}]",
                )
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
            ),
            _ => indicatif::ProgressBar::new_spinner().with_style(
                indicatif::ProgressStyle::with_template("{spinner} {bytes} {binary_bytes_per_sec}")
                    .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
            ),
        };
        bar.set_draw_target(indicatif::ProgressDrawTarget::stderr());
        bar.set_position(done);
        sink.set_progress(bar);
    }

    fn write_body(
        &mut self,
        content: &mut Option<decode::ContentDecoder>,
        data: &[u8],
    ) -> Result<(), FetchError> {
        if data.is_empty() {
            return Ok(());
        }
        let (deadline, limit, received) = (self.deadline, self.cfg.max_time, self.received);
        let Some(sink) = self.sink.as_mut() else { return Ok(()) };
        let res = match content {
            Some(decoder) => decoder
                .write(data, &mut Deadline { sink, at: deadline })
                .map_err(|e| decode_error(e, limit, received)),
            None => {
                sink.write_all(data).map_err(|source| FetchError::Write { what: sink.describe(), source })
            }
        };
        if let (Err(_), Some(source)) = (&res, sink.take_error()) {
            return Err(FetchError::Write { what: sink.describe(), source });
        }
        res
    }

    fn splice_error(&mut self, e: splice::SpliceError) -> FetchError {
        match e {
            splice::SpliceError::Read(source) => FetchError::Recv { received: self.received, source },
            splice::SpliceError::Write(source) => FetchError::Write {
                what: self.sink.as_ref().map_or_else(String::new, Sink::describe),
                source,
            },
        }
    }

    fn write_out_vars(&self, result: &Result<(), FetchError>) -> writeout::WriteOutVars {
        let cfg = self.cfg;
        let last = self.hops.last().cloned().unwrap_or_default();
        let at = |d: Option<Duration>| d.map_or(0.0, |d| (last.start + d).as_secs_f64());
        let total = self.start.elapsed().as_secs_f64();
        let head = self.last_head.as_ref();
        let text = |name: &str| {
            head.and_then(|h| h.header(name))
                .map(|v| String::from_utf8_lossy(v).into_owned())
                .unwrap_or_default()
        };
        let url_effective = self.current_url.as_ref().map(request::redacted).unwrap_or_default();
        let redirect_url = match (cfg.follow, head) {
            (false, Some(h)) if request::is_redirect(h.status) => self
                .current_url
                .as_ref()
                .and_then(|u| u.join(&text("location")).ok())
                .map(|u| request::redacted(&u))
                .unwrap_or_default(),
            _ => String::new(),
        };
        writeout::WriteOutVars {
            http_code: self.status,
            size_download: self.size_download,
            size_header: self.size_header,
            size_request: self.size_request,
            size_upload: self.size_upload,
            speed_download: if total > 0.0 { (self.size_download as f64 / total) as u64 } else { 0 },
            speed_upload: if total > 0.0 { (self.size_upload as f64 / total) as u64 } else { 0 },
            time_namelookup: at(last.resolved),
            time_connect: at(last.connected),
            time_appconnect: last.tls_done.map_or(0.0, |d| (last.start + d).as_secs_f64()),
            time_pretransfer: at(last.ready()),
            time_starttransfer: at(last.first_byte),
            time_redirect: if self.redirects > 0 { last.start.as_secs_f64() } else { 0.0 },
            time_total: total,
            num_redirects: self.redirects,
            num_connects: self.hops.iter().filter(|h| h.connected.is_some()).count() as u32,
            num_headers: head.map_or(0, |h| h.headers.len() as u32),
            remote_ip: last.peer.map(|p| p.ip().to_string()).unwrap_or_default(),
            remote_port: last.peer.map_or(0, |p| p.port()),
            local_ip: last.local.map(|p| p.ip().to_string()).unwrap_or_default(),
            local_port: last.local.map_or(0, |p| p.port()),
            url: request::redacted(&cfg.url),
            scheme: self.current_url.as_ref().map(|u| u.scheme().to_string()).unwrap_or_default(),
            url_effective,
            method: self.current_method.clone(),
            http_version: head.map(|h| format!("1.{}", h.version)).unwrap_or_default(),
            content_type: text("content-type"),
            redirect_url,
            filename_effective: cfg.output.as_ref().map(|p| p.display().to_string()).unwrap_or_default(),
            exitcode: result.as_ref().err().map_or(0, exit_code),
            errormsg: result.as_ref().err().map(ToString::to_string).unwrap_or_default(),
        }
    }
}

/// Read into `buf`; a TLS peer that closes without close_notify is an ordinary
/// EOF here, since the HTTP framing decides whether the body was complete.
async fn read(conn: &mut Conn, buf: &mut [u8]) -> std::io::Result<usize> {
    match conn.read(buf).await {
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof && matches!(conn, Conn::Tls(_)) => Ok(0),
        other => other,
    }
}

/// Best-effort diagnostics: a closed or full stderr loses them, never the transfer.
fn to_stderr(text: &str) {
    let _ = std::io::stderr().write_all(text.as_bytes());
}

/// The body's sink behind the `-m` deadline (see [`Transfer::deadline`]).
struct Deadline<'s> {
    sink: &'s mut Sink,
    at: Option<Instant>,
}

impl Write for Deadline<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.at.is_some_and(|at| Instant::now() >= at) {
            return Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "--max-time ran out while decoding",
            ));
        }
        self.sink.write(buf)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.sink.flush()
    }
}

/// A decoding error, or `-m` (`limit`) run out while decoding (exit 28).
fn decode_error(e: decode::DecodeError, limit: Option<Duration>, received: u64) -> FetchError {
    match (&e, limit) {
        (decode::DecodeError::Write(io), Some(limit)) if io.kind() == std::io::ErrorKind::TimedOut => {
            FetchError::Timeout { ms: limit.as_millis(), received }
        }
        _ => FetchError::Decode(e),
    }
}

fn dup_stdout() -> std::io::Result<File> {
    use std::os::fd::AsFd;
    Ok(File::from(rustix::io::dup(std::io::stdout().as_fd())?))
}

/// `raw` as text lines, each with `prefix` (for -v).
fn prefixed(prefix: &str, raw: &[u8]) -> String {
    let text = String::from_utf8_lossy(raw);
    let mut out = String::with_capacity(text.len() + 32);
    for line in text.split_inclusive('\n') {
        let line = line.trim_end_matches(['\r', '\n']);
        if line.is_empty() {
            continue;
        }
        out.push_str(prefix);
        out.push_str(line);
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(args: &[&str]) -> Result<Config, FetchError> {
        use clap::Parser;
        let mut all = vec!["tcpkit", "fetch"];
        all.extend_from_slice(args);
        let crate::cli::Command::Fetch(a) = crate::cli::Cli::try_parse_from(all).unwrap().command else {
            panic!("not fetch")
        };
        Config::from_args(&a)
    }

    #[test]
    fn method_follows_curl_defaults() {
        assert_eq!(config(&["http://h/"]).unwrap().method, "GET");
        assert_eq!(config(&["-I", "http://h/"]).unwrap().method, "HEAD");
        assert_eq!(config(&["-d", "x", "http://h/"]).unwrap().method, "POST");
        assert_eq!(config(&["-X", "PATCH", "-d", "x", "http://h/"]).unwrap().method, "PATCH");
        assert!(config(&["-I", "http://h/"]).unwrap().include);
    }

    #[test]
    fn contradictions_are_usage_errors() {
        for args in [
            &["-I", "-d", "x", "http://h/"][..],
            &["-C", "-", "http://h/"],
            &["-C", "100", "-o", "f", "http://h/"],
            &["-C", "-", "-i", "-o", "f", "http://h/"],
            &["-C", "-", "--compressed", "-o", "f", "http://h/"],
            &["-H", "bad header", "http://h/"],
        ] {
            let err = config(args).err().unwrap_or_else(|| panic!("{args:?} accepted"));
            assert_eq!(exit_code(&err), 2, "{args:?}: {err}");
        }
    }

    #[test]
    fn max_time_zero_means_no_limit() {
        assert_eq!(config(&["-m", "0", "http://h/"]).unwrap().max_time, None);
        assert_eq!(config(&["-m", "1.5", "http://h/"]).unwrap().max_time, Some(Duration::from_millis(1500)));
    }

    #[test]
    fn remote_name_comes_from_the_url() {
        let c = config(&["-O", "http://h/a/b.tar.gz?x=1"]).unwrap();
        assert_eq!(c.output, Some(PathBuf::from("b.tar.gz")));
        let c = config(&["-d", "a", "-d", "@/nonexistent/x", "http://h/"]);
        assert!(matches!(c, Err(FetchError::ReadFile { .. })));
    }

    #[test]
    fn verbose_lines_are_prefixed_without_the_blank_line() {
        assert_eq!(prefixed("< ", b"HTTP/1.1 200 OK\r\nA: b\r\n\r\n"), "< HTTP/1.1 200 OK\n< A: b\n");
    }
}
