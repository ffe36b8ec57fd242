//! `tcpkit fetch` on the command line: its flags (curl's names and meanings where they
//! overlap), the [`Config`] they make, the one function from a [`FetchError`] to curl's
//! exit code, and the process's output around a transfer: `--timing`, `-w`, the
//! final error and the `.part` hint.
//!
//! Not for: fetching (the library's [`fetch::Client`] does, knowing no flag).
use std::io::{IsTerminal, Write};
use std::path::PathBuf;

use clap::Args;

use crate::Failure;
use crate::fetch::config::{
    DEFAULT_BUFFER_SIZE, DEFAULT_MAX_HEAD, DEFAULT_MAX_INTERIM, DEFAULT_MAX_REDIRS, MIN_MAX_HEAD,
};
use crate::fetch::decode::DecodeError;
use crate::fetch::http1::Http1Error;
use crate::fetch::policy::{self, HeaderEdit};
use crate::fetch::{self, Body, Config, FetchError, output_name, timing, writeout};
use crate::net::ConnectError;
use crate::net::connect::Family;
use crate::net::tls::ClientOptions;
use crate::net::trace::{self, Format, Trace, TraceWriter};

/// Fetch URLs over HTTP/1.1 or HTTPS.
///
/// The body goes to stdout, or with `-o FILE` to `FILE.part`, renamed to `FILE`
/// only once the body is complete. Several URLs are fetched one after another, the
/// n-th `-o`/`-O` for the n-th URL, over one kept-alive connection where the host
/// is the same; the exit code is the last transfer's (or the first failure's with
/// `--fail-early`). Exit codes follow curl: 3 malformed URL,
/// 6 resolve, 7 connect, 18 partial body, 22 HTTP error with -f, 23 write error,
/// 28 timeout, 35 TLS handshake, 47 too many redirects, 52 empty reply,
/// 56 receive failure, 60 bad certificate (see the README for the full table).
#[derive(Debug, Clone, Args)]
pub struct FetchFlags {
    /// The URLs (http:// or https://; without a scheme, http:// is assumed).
    #[arg(required = true, value_name = "URL")]
    pub url: Vec<String>,

    /// Write the body to FILE (through FILE.part, renamed when complete); the n-th
    /// -o is for the n-th URL, and a URL without one goes to stdout.
    #[arg(short = 'o', long = "output", value_name = "FILE")]
    pub output: Vec<PathBuf>,

    /// Write the body to a file named after the URL's last path segment
    /// (`index.html` when empty), in the current directory; once per URL, in order.
    #[arg(short = 'O', long = "remote-name", action = clap::ArgAction::Append, num_args = 0,
          default_missing_value = "true")]
    pub remote_name: Vec<bool>,

    /// With several URLs: stop at the first failed transfer and exit with its code
    /// (by default the others still run and the last one's code is the exit code).
    #[arg(long = "fail-early")]
    pub fail_early: bool,

    /// Resume a partial download (`-C -`: the only form): the offset is the size of
    /// FILE.part, or else of FILE.
    #[arg(short = 'C', long = "continue-at", value_name = "DASH", allow_hyphen_values = true)]
    pub continue_at: Option<String>,

    /// Put the response head before the body in the output.
    #[arg(short = 'i', long = "include")]
    pub include: bool,

    /// Send HEAD and show the response head.
    #[arg(short = 'I', long = "head")]
    pub head: bool,

    /// Request method (default GET, or POST with -d).
    #[arg(short = 'X', long = "request", value_name = "METHOD")]
    pub request: Option<String>,

    /// Send DATA as the body (POST, form content type); `@FILE` reads it from a
    /// file without its newlines. Repeated: joined with `&`.
    #[arg(short = 'd', long = "data", value_name = "DATA")]
    pub data: Vec<String>,

    /// Send DATA as the body byte for byte; `@FILE` reads it from a file.
    #[arg(long = "data-binary", value_name = "DATA", conflicts_with = "data")]
    pub data_binary: Option<String>,

    /// Upload FILE with PUT (streamed; `Expect: 100-continue` from 1 MiB); a URL
    /// ending in `/` gets the file's name appended.
    #[arg(short = 'T', long = "upload-file", value_name = "FILE", conflicts_with_all = ["data", "data_binary", "head"])]
    pub upload_file: Option<PathBuf>,

    /// How long an upload waits for `100 Continue` before sending the body anyway.
    #[arg(long = "expect100-timeout", value_name = "SECS", default_value = "1", value_parser = super::duration::parse_duration)]
    pub expect100_timeout: std::time::Duration,

    /// Add or replace a header (`Name: value`), remove one (`Name:`), or send one
    /// empty (`Name;`). Repeatable.
    #[arg(short = 'H', long = "header", value_name = "HEADER")]
    pub header: Vec<String>,

    /// Send USER:PASSWORD as Basic auth to the URL's host (never prompts: a user
    /// without `:PASSWORD` is an error).
    #[arg(short = 'u', long = "user", value_name = "USER:PASSWORD")]
    pub user: Option<String>,

    /// Use this HTTP proxy (`http://[user:password@]host[:port]`, port 1080 by
    /// default); without -x, `http_proxy` / `https_proxy` (or `HTTPS_PROXY`) apply.
    #[arg(short = 'x', long = "proxy", value_name = "URL")]
    pub proxy: Option<String>,

    /// Tunnel plain http through the proxy with CONNECT too (https always is).
    #[arg(short = 'p', long = "proxytunnel")]
    pub proxytunnel: bool,

    /// Hosts (comma-separated; `*` = all) reached without the proxy; overrides `no_proxy`.
    #[arg(long = "noproxy", value_name = "LIST")]
    pub noproxy: Option<String>,

    /// Try a failed transfer N more times when the failure is transient (a timeout,
    /// HTTP 408, 429, 500, 502, 503, 504); a partial FILE.part is resumed.
    #[arg(long = "retry", value_name = "N", default_value_t = 0)]
    pub retry: u32,

    /// Wait SECS between attempts (default: 1 s, doubling; a Retry-After wins).
    #[arg(long = "retry-delay", value_name = "SECS", value_parser = super::duration::parse_duration)]
    pub retry_delay: Option<std::time::Duration>,

    /// Start no new attempt after SECS since the first.
    #[arg(long = "retry-max-time", value_name = "SECS", value_parser = super::duration::parse_duration)]
    pub retry_max_time: Option<std::time::Duration>,

    /// With --retry, try again after any error.
    #[arg(long = "retry-all-errors")]
    pub retry_all_errors: bool,

    /// Follow redirects (301, 302, 303, 307, 308).
    #[arg(short = 'L', long = "location")]
    pub location: bool,

    /// With -L: give up after N redirects (exit 47).
    #[arg(long = "max-redirs", value_name = "N", default_value_t = DEFAULT_MAX_REDIRS)]
    pub max_redirs: u32,

    /// Use IPv4 addresses only.
    #[arg(short = '4', long = "ipv4", conflicts_with = "ipv6")]
    pub ipv4: bool,

    /// Use IPv6 addresses only.
    #[arg(short = '6', long = "ipv6")]
    pub ipv6: bool,

    /// Give up resolving, connecting and the TLS handshake after SECS (exit 28).
    #[arg(long = "connect-timeout", value_name = "SECS", default_value = "300", value_parser = super::duration::parse_duration)]
    pub connect_timeout: std::time::Duration,

    /// Give up the whole transfer, redirects included, decoding too, after SECS
    /// (exit 28; 0 = no limit).
    #[arg(short = 'm', long = "max-time", value_name = "SECS", value_parser = super::duration::parse_duration)]
    pub max_time: Option<std::time::Duration>,

    /// Trust only the certificates in this PEM file.
    #[arg(long = "cacert", value_name = "FILE")]
    pub cacert: Option<PathBuf>,

    /// Do not verify the server's certificate (signatures are still checked).
    #[arg(short = 'k', long = "insecure")]
    pub insecure: bool,

    /// Ask for gzip, deflate, br and zstd, and decode the body.
    #[arg(long = "compressed")]
    pub compressed: bool,

    /// Largest response head accepted, in bytes (exit 8 above it).
    #[arg(long = "max-head", value_name = "BYTES", default_value_t = DEFAULT_MAX_HEAD)]
    pub max_head: usize,

    /// Socket read buffer, in bytes (bounds memory; the body streams through it).
    #[arg(long = "buffer-size", value_name = "BYTES", default_value_t = DEFAULT_BUFFER_SIZE as u32,
          value_parser = clap::value_parser!(u32).range(4096..=64 * 1024 * 1024))]
    pub buffer_size: u32,

    /// Most interim (1xx) responses accepted before the final one (exit 8 past it);
    /// all the heads of one response also share --max-head.
    #[arg(long = "max-interim", value_name = "N", default_value_t = DEFAULT_MAX_INTERIM)]
    pub max_interim: u32,

    /// Over HTTPS, accept a body delimited by the connection's close even when the
    /// server closed without TLS close_notify (by default that is a truncation, exit 18).
    #[arg(long = "ignore-missing-close-notify")]
    pub ignore_missing_close_notify: bool,

    /// Copy plain HTTP bodies to the file with ordinary reads and writes instead
    /// of splice(2).
    #[arg(long = "no-splice")]
    pub no_splice: bool,

    /// Write every response head, interim ones too, byte for byte to FILE (`-` = stdout).
    #[arg(short = 'D', long = "dump-header", value_name = "FILE")]
    pub dump_header: Option<PathBuf>,

    /// Show the request and response heads (and connection details) on stderr.
    #[arg(short = 'v', long = "verbose")]
    pub verbose: bool,

    /// Record every byte sent and received (after TLS) in curl's --trace layout,
    /// hex and ASCII, with `== Info:` lines for connections, TLS and redirects (`-` = stdout).
    #[arg(long = "trace", value_name = "FILE", conflicts_with = "trace_ascii")]
    pub trace: Option<PathBuf>,

    /// Like --trace, in curl's --trace-ascii layout (ASCII only).
    #[arg(long = "trace-ascii", value_name = "FILE")]
    pub trace_ascii: Option<PathBuf>,

    /// Start each --trace/--trace-ascii event with the time of day (UTC, microseconds).
    #[arg(long = "trace-time")]
    pub trace_time: bool,

    /// Silence the progress bar and error messages.
    #[arg(short = 's', long = "silent")]
    pub silent: bool,

    /// With -s: still show error messages.
    #[arg(short = 'S', long = "show-error")]
    pub show_error: bool,

    /// Fail on HTTP status >= 400 with exit 22, writing no body.
    #[arg(short = 'f', long = "fail")]
    pub fail: bool,

    /// After each transfer, print FORMAT on stdout with `%{variable}`s filled in
    /// (http_code, size_download, time_total, remote_ip, json, ...).
    #[arg(short = 'w', long = "write-out", value_name = "FORMAT")]
    pub write_out: Option<String>,

    /// Print a phase breakdown (DNS, TCP, TLS, server wait, transfer) of every
    /// connection, redirect hops included, on stderr.
    #[arg(long = "timing")]
    pub timing: bool,
}

/// Where one URL's body goes, as the n-th `-o` or `-O` on the command line says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OutputFlag {
    /// `-o FILE`.
    File(PathBuf),
    /// `-O`: named after the URL.
    Remote,
}

/// `tcpkit fetch`'s flags, and the order of its `-o` and `-O` flags among each other,
/// which curl's pairing of outputs with URLs needs and clap's fields do not keep.
#[derive(Debug, Clone)]
pub struct FetchArgs {
    flags: FetchFlags,
    /// Every `-o FILE` and `-O`, in command-line order.
    pub outputs: Vec<OutputFlag>,
}

impl std::ops::Deref for FetchArgs {
    type Target = FetchFlags;
    fn deref(&self) -> &FetchFlags {
        &self.flags
    }
}

impl FetchArgs {
    /// The `-o`/`-O` flags in command-line order, from their positions in `m`.
    fn output_order(m: &clap::ArgMatches, flags: &FetchFlags) -> Vec<OutputFlag> {
        let mut at: Vec<(usize, OutputFlag)> = Vec::new();
        if let Some(indices) = m.indices_of("output") {
            at.extend(indices.zip(flags.output.iter()).map(|(i, p)| (i, OutputFlag::File(p.clone()))));
        }
        if let Some(indices) = m.indices_of("remote_name") {
            at.extend(indices.map(|i| (i, OutputFlag::Remote)));
        }
        at.sort_by_key(|(i, _)| *i);
        at.into_iter().map(|(_, o)| o).collect()
    }
}

impl clap::FromArgMatches for FetchArgs {
    fn from_arg_matches(m: &clap::ArgMatches) -> Result<Self, clap::Error> {
        let flags = FetchFlags::from_arg_matches(m)?;
        let outputs = FetchArgs::output_order(m, &flags);
        Ok(FetchArgs { flags, outputs })
    }

    fn update_from_arg_matches(&mut self, m: &clap::ArgMatches) -> Result<(), clap::Error> {
        self.flags.update_from_arg_matches(m)?;
        self.outputs = FetchArgs::output_order(m, &self.flags);
        Ok(())
    }
}

impl clap::Args for FetchArgs {
    fn augment_args(cmd: clap::Command) -> clap::Command {
        FetchFlags::augment_args(cmd)
    }

    fn augment_args_for_update(cmd: clap::Command) -> clap::Command {
        FetchFlags::augment_args_for_update(cmd)
    }
}

impl FetchArgs {
    /// The first (or only) transfer these flags ask for.
    pub fn config(&self) -> Result<Config, FetchError> {
        self.configs()?.into_iter().next().ok_or_else(|| FetchError::Usage("no URL given".into()))
    }

    /// One transfer per URL, in order; contradictions are usage errors (exit 2).
    pub fn configs(&self) -> Result<Vec<Config>, FetchError> {
        if self.url.len() > 1 && self.upload_file.is_some() {
            return Err(FetchError::Usage("-T uploads to one URL: give one URL with -T".into()));
        }
        let body = match &self.upload_file {
            Some(file) => Some(Body::file(file.clone())?),
            None => self.body()?,
        };
        let edits = self.header_edits()?;
        let mut configs = Vec::with_capacity(self.url.len());
        for (i, url) in self.url.iter().enumerate() {
            let mut cfg = self.config_for(i, url, body.clone(), edits.clone())?;
            // Later transfers add their heads to the -D file, as curl does.
            cfg.dump_append = i > 0;
            configs.push(cfg);
        }
        Ok(configs)
    }

    /// The transfer of the `i`-th URL.
    fn config_for(
        &self,
        i: usize,
        url: &str,
        body: Option<Body>,
        edits: Vec<HeaderEdit>,
    ) -> Result<Config, FetchError> {
        let mut url = policy::parse_url(url)?;
        if let (Some(file), true) = (&self.upload_file, url.path().ends_with('/')) {
            // As curl: `-T f http://h/dir/` uploads to http://h/dir/f.
            let name = file.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            if let Ok(mut segments) = url.path_segments_mut() {
                segments.pop_if_empty().push(&name);
            }
        }
        if self.head && body.is_some() {
            return Err(FetchError::Usage("-I sends HEAD, which carries no body: drop -d".into()));
        }
        let method = match (&self.request, self.head, &body) {
            (Some(m), _, _) => m.clone(),
            (None, true, _) => "HEAD".into(),
            (None, false, Some(_)) if self.upload_file.is_some() => "PUT".into(),
            (None, false, Some(_)) => "POST".into(),
            (None, false, None) => "GET".into(),
        };
        // curl's rule: the n-th -o or -O is for the n-th URL.
        let output = match self.outputs.get(i) {
            Some(OutputFlag::File(path)) => Some(path.clone()),
            Some(OutputFlag::Remote) => Some(PathBuf::from(output_name::output_name_from_url(&url))),
            None => None,
        };
        let resume = match self.continue_at.as_deref() {
            None => false,
            Some("-") if output.is_none() => {
                return Err(FetchError::Usage("-C - resumes a file: give -o FILE or -O".into()));
            }
            Some("-") if self.head => {
                return Err(FetchError::Usage("-C - resumes a body, and -I asks for none: drop -I".into()));
            }
            // A range of an encoded body cannot be appended to decoded bytes.
            Some("-") if self.compressed => {
                return Err(FetchError::Usage("-C - needs the body as sent: drop --compressed".into()));
            }
            Some("-") => true,
            Some(other) => return Err(FetchError::Usage(format!("-C {other}: only `-C -` is supported"))),
        };
        if self.user.as_deref().is_some_and(|u| !u.contains(':')) {
            return Err(FetchError::Usage(
                "-u USER without :PASSWORD: tcpkit never prompts; give -u USER:PASSWORD".into(),
            ));
        }
        let mut cfg = Config::new(url);
        cfg.user = self.user.clone();
        cfg.expect_timeout = self.expect100_timeout;
        cfg.retry = fetch::config::Retry {
            count: self.retry,
            delay: self.retry_delay,
            max_time: self.retry_max_time.filter(|d| !d.is_zero()),
            all_errors: self.retry_all_errors,
        };
        self.proxies(&mut cfg)?;
        cfg.method = method;
        // Both -d and --data-binary are forms unless -H says otherwise, as in curl.
        cfg.form = body.is_some() && self.upload_file.is_none();
        cfg.body = body;
        cfg.edits = edits;
        cfg.resume = resume;
        cfg.include = self.include || self.head;
        cfg.follow = self.location;
        cfg.max_redirs = self.max_redirs;
        cfg.family = Family::from_flags(self.ipv4, self.ipv6);
        cfg.connect_timeout = self.connect_timeout;
        // `-m 0` is no limit, as in curl.
        cfg.max_time = self.max_time.filter(|d| !d.is_zero());
        cfg.max_interim = self.max_interim;
        cfg.ignore_missing_close_notify = self.ignore_missing_close_notify;
        cfg.tls = ClientOptions { cacert: self.cacert.clone(), insecure: self.insecure };
        cfg.compressed = self.compressed;
        cfg.max_head = self.max_head.max(MIN_MAX_HEAD);
        cfg.buffer_size = self.buffer_size as usize;
        cfg.splice = !self.no_splice;
        cfg.dump = self.dump_header.clone();
        cfg.verbose = self.verbose;
        cfg.progress = !self.silent && output.is_some() && std::io::stderr().is_terminal();
        cfg.output = output;
        cfg.fail = self.fail;
        Ok(cfg)
    }

    /// `-x`, or the environment as curl reads it (`http_proxy` lowercase only, since
    /// `HTTP_PROXY` can be set by a CGI request; `https_proxy` or `HTTPS_PROXY`;
    /// `no_proxy` or `NO_PROXY`), and `--noproxy`.
    fn proxies(&self, cfg: &mut Config) -> Result<(), FetchError> {
        let env = |names: &[&str]| names.iter().find_map(|n| std::env::var(n).ok()).filter(|v| !v.is_empty());
        let parse = |text: String| -> Result<url::Url, FetchError> {
            let with_scheme = if text.contains("://") { text.clone() } else { format!("http://{text}") };
            let url = url::Url::parse(&with_scheme)
                .map_err(|e| FetchError::Url { url: text.clone(), reason: e.to_string() })?;
            if url.scheme() != "http" || url.host_str().is_none_or(str::is_empty) {
                return Err(FetchError::Usage(format!(
                    "proxy {text}: only http://host[:port] proxies are supported"
                )));
            }
            Ok(url)
        };
        match &self.proxy {
            Some(p) if p.is_empty() => {}
            Some(p) => {
                let proxy = parse(p.clone())?;
                (cfg.http_proxy, cfg.https_proxy) = (Some(proxy.clone()), Some(proxy));
            }
            None => {
                cfg.http_proxy = env(&["http_proxy"]).map(parse).transpose()?;
                cfg.https_proxy = env(&["https_proxy", "HTTPS_PROXY"]).map(parse).transpose()?;
            }
        }
        let no_proxy = self.noproxy.clone().or_else(|| env(&["no_proxy", "NO_PROXY"])).unwrap_or_default();
        cfg.no_proxy =
            no_proxy.split(',').map(str::trim).filter(|s| !s.is_empty()).map(String::from).collect();
        cfg.proxy_tunnel = self.proxytunnel;
        Ok(())
    }

    /// The `-w` format: as given, or `@FILE` (`@-`: stdin) read from a file, as curl.
    fn write_out_format(&self) -> Result<Option<String>, FetchError> {
        let Some(format) = &self.write_out else { return Ok(None) };
        let Some(path) = format.strip_prefix('@') else { return Ok(Some(format.clone())) };
        let text = if path == "-" {
            let mut text = String::new();
            std::io::Read::read_to_string(&mut std::io::stdin(), &mut text).map(|_| text)
        } else {
            std::fs::read_to_string(path)
        };
        text.map(Some).map_err(|source| FetchError::ReadFile { path: path.into(), source })
    }

    /// The `-H` edits: `Name: value` arguments, and `@FILE` (`@-`: stdin) for one
    /// header per line of a file, as curl reads them.
    fn header_edits(&self) -> Result<Vec<HeaderEdit>, FetchError> {
        let mut edits = Vec::new();
        for arg in &self.header {
            let Some(path) = arg.strip_prefix('@') else {
                edits.push(policy::parse_header_edit(arg)?);
                continue;
            };
            let text = if path == "-" {
                let mut text = String::new();
                std::io::Read::read_to_string(&mut std::io::stdin(), &mut text).map(|_| text)
            } else {
                std::fs::read_to_string(path)
            }
            .map_err(|source| FetchError::ReadFile { path: path.into(), source })?;
            for line in text.lines().map(str::trim_end).filter(|l| !l.is_empty()) {
                edits.push(policy::parse_header_edit(line)?);
            }
        }
        Ok(edits)
    }

    /// The body of `-d` / `--data-binary`: literal, or `@FILE` (newlines stripped for
    /// `-d`, which curl also reads into memory: form data is small; `--data-binary
    /// @FILE` is streamed).
    fn body(&self) -> Result<Option<Body>, FetchError> {
        if let Some(spec) = &self.data_binary {
            return Ok(Some(match spec.strip_prefix('@') {
                Some(path) => Body::file(path.into())?,
                None => Body::Bytes(spec.as_bytes().to_vec()),
            }));
        }
        if self.data.is_empty() {
            return Ok(None);
        }
        let mut body = Vec::new();
        for (i, spec) in self.data.iter().enumerate() {
            if i > 0 {
                body.push(b'&');
            }
            match spec.strip_prefix('@') {
                Some(path) => {
                    let mut part = std::fs::read(path)
                        .map_err(|source| FetchError::ReadFile { path: path.into(), source })?;
                    part.retain(|&b| b != b'\r' && b != b'\n');
                    body.extend_from_slice(&part);
                }
                None => body.extend_from_slice(spec.as_bytes()),
            }
        }
        Ok(Some(Body::Bytes(body)))
    }

    /// The trace file asked for (`-`: stdout) and its layout, if any.
    fn trace_target(&self) -> Option<(&PathBuf, trace::Options)> {
        let (path, format) = match (&self.trace, &self.trace_ascii) {
            (Some(p), _) => (p, Format::Curl),
            (_, Some(p)) => (p, Format::CurlAscii),
            _ => return None,
        };
        Some((path, trace::Options { format, time: self.trace_time, ..trace::Options::default() }))
    }

    /// Open the trace file and start its writer thread.
    fn start_trace(&self) -> Result<Option<(Trace, TraceWriter, String)>, Failure> {
        let Some((path, opts)) = self.trace_target() else { return Ok(None) };
        let shown = path.display().to_string();
        let started = if shown == "-" {
            trace::start(std::io::stdout(), opts)
        } else {
            std::fs::File::create(path).and_then(|file| trace::start(std::io::BufWriter::new(file), opts))
        };
        started
            .map(|(trace, writer)| Some((trace, writer, shown.clone())))
            .map_err(|e| Failure::new(23, format!("trace: {shown}: {e}")))
    }

    /// Run `tcpkit fetch`: each transfer in turn, each followed by its `--timing`,
    /// `-w` and error message; the exit code is the last transfer's (the first
    /// failure's with `--fail-early`).
    pub fn run(self) -> Result<(), Failure> {
        let show_errors = !self.silent || self.show_error;
        let usage = |e: FetchError| {
            let code = exit_code(&e);
            if show_errors { Failure::new(code, e.to_string()) } else { Failure::silent(code) }
        };
        let configs = self.configs().map_err(usage)?;
        let write_out = self.write_out_format().map_err(usage)?;
        let extra = self.outputs.len().saturating_sub(self.url.len());
        if extra > 0 && show_errors {
            to_stderr("tcpkit: warning: got more output options than URLs\n");
        }
        let mut session = fetch::Session::new().map_err(usage)?;
        let tracing = self.start_trace()?;
        let count = configs.len();
        let mut result = Ok(());
        for (i, mut cfg) in configs.into_iter().enumerate() {
            cfg.trace = tracing.as_ref().map(|(trace, _, _)| trace.clone());
            result = self.one(&mut session, &cfg, write_out.as_deref(), show_errors);
            if let Err(failure) = &result {
                if self.fail_early || i + 1 == count {
                    break;
                }
                // Not the last transfer: its message now, and on to the next one.
                if let Some(message) = &failure.message {
                    to_stderr(&format!("tcpkit: error: {message}\n"));
                }
            }
        }
        if let Some((_, writer, shown)) = tracing {
            // Best effort: a failing trace is reported once, the exit code is the transfer's.
            let done = writer.finish();
            if let (Some(e), true) = (done.error, show_errors) {
                to_stderr(&format!("tcpkit: warning: trace {shown}: {e}\n"));
            }
            if done.dropped > 0 && show_errors {
                to_stderr(&format!("tcpkit: warning: trace {shown}: {} bytes not recorded\n", done.dropped));
            }
        }
        result
    }

    /// One transfer, then its `--timing` and `-w` output; its failure, if any.
    fn one(
        &self,
        session: &mut fetch::Session,
        cfg: &Config,
        write_out: Option<&str>,
        show_errors: bool,
    ) -> Result<(), Failure> {
        let outcome = session.run_with(cfg, |err, delay, left| {
            if show_errors {
                let s = if left == 1 { "y" } else { "ies" };
                to_stderr(&format!(
                    "tcpkit: warning: {err}: will retry in {:.3} s, {left} retr{s} left\n",
                    delay.as_secs_f64()
                ));
            }
        });
        let hint = match &outcome.partial {
            // Decoded bytes cannot be resumed: `-C -` refuses --compressed.
            Some((part, len)) if cfg.compressed => {
                format!("; {} holds {len} bytes of the decoded body", part.display())
            }
            Some((part, len)) => {
                format!("; {} holds {len} bytes: run again with `-C -` to resume", part.display())
            }
            None => String::new(),
        };
        if self.timing {
            to_stderr(&timing::render(&outcome.metrics.hops));
        }
        if let Some(format) = write_out {
            let mut vars = outcome.metrics.write_out_vars(cfg, &outcome.result);
            vars.exitcode = outcome.result.as_ref().err().map_or(0, exit_code);
            let (pieces, warnings) = writeout::render_targets(format, &vars);
            for w in warnings.iter().filter(|_| show_errors) {
                to_stderr(&format!("tcpkit: warning: {w}\n"));
            }
            // A closed stdout is reported by the transfer itself; -w adds nothing to it.
            for (target, text) in pieces {
                match target {
                    writeout::Target::Stdout => {
                        let _ = std::io::stdout().write_all(text.as_bytes());
                        let _ = std::io::stdout().flush();
                    }
                    writeout::Target::Stderr => to_stderr(&text),
                }
            }
        }
        outcome.result.map_err(|e| {
            let code = exit_code(&e);
            if show_errors { Failure::new(code, format!("{e}{hint}")) } else { Failure::silent(code) }
        })
    }
}

/// Best-effort diagnostics: a closed or full stderr loses them, never the exit code.
fn to_stderr(text: &str) {
    let _ = std::io::stderr().write_all(text.as_bytes());
}

/// The process exit code for `err`: curl's number where the meaning is the same. The
/// one place fetch's exit codes are chosen; the README's table lists each.
pub fn exit_code(err: &FetchError) -> u8 {
    match err {
        FetchError::Scheme(_) => 1,
        FetchError::Usage(_) | FetchError::Runtime(_) => 2,
        FetchError::Url { .. } => 3,
        FetchError::Connect(ConnectError::Resolve { .. } | ConnectError::NoAddress { .. }) => 6,
        FetchError::Connect(ConnectError::TimedOut { .. }) => 28,
        FetchError::Connect(_) => 7,
        FetchError::ProxyConnect(ConnectError::Resolve { .. } | ConnectError::NoAddress { .. }) => 5,
        FetchError::ProxyConnect(ConnectError::TimedOut { .. }) => 28,
        FetchError::ProxyConnect(_) => 7,
        FetchError::Proxy { .. } => 56,
        FetchError::WeirdReply(_) => 8,
        FetchError::PartialHead { .. } => 18,
        FetchError::Http(e) => match e {
            Http1Error::Truncated { .. } => 18,
            Http1Error::HeadTooLarge { .. }
            | Http1Error::InvalidHead { .. }
            | Http1Error::InvalidContentLength { .. }
            | Http1Error::ConflictingContentLength { .. } => 8,
            Http1Error::UnsupportedTransferEncoding { .. } => 61,
            Http1Error::UnsupportedVersion { .. } => 1,
            Http1Error::InvalidRequest { .. } => 2,
            Http1Error::BadChunkSize { .. }
            | Http1Error::ChunkSizeOverflow { .. }
            | Http1Error::BadChunk { .. } => 56,
        },
        FetchError::HttpStatus { .. } | FetchError::TransientStatus { .. } => 22,
        FetchError::Write { .. } | FetchError::Decode(DecodeError::Write(_)) => 23,
        FetchError::ReadFile { .. } => 26,
        FetchError::Timeout { .. } => 28,
        FetchError::Range(_) => 33,
        FetchError::Handshake { .. } => 35,
        FetchError::TooManyRedirects(_) => 47,
        FetchError::EmptyReply => 52,
        FetchError::Send(_) => 55,
        FetchError::Recv { .. } => 56,
        FetchError::Certificate { .. } => 60,
        FetchError::Decode(_) => 61,
        FetchError::TlsConfig(_) => 77,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::{Cli, Command};
    use clap::Parser;

    fn parse(args: &[&str]) -> Result<FetchArgs, clap::Error> {
        let mut all = vec!["tcpkit", "fetch"];
        all.extend_from_slice(args);
        Cli::try_parse_from(all).map(|c| match c.command {
            Command::Fetch(a) => a,
            other => panic!("not fetch: {other:?}"),
        })
    }

    #[test]
    fn defaults_match_curl() {
        let a = parse(&["http://x/"]).unwrap();
        assert_eq!(a.url, ["http://x/"]);
        assert_eq!(a.max_redirs, 50);
        assert_eq!(a.max_head, 262_144);
        assert_eq!(a.connect_timeout, std::time::Duration::from_secs(300));
        assert!(a.output.is_empty() && a.max_time.is_none() && !a.location && !a.fail);
    }

    #[test]
    fn short_flags_parse_like_curl() {
        let a = parse(&[
            "-sSfLiv",
            "-o",
            "f",
            "-C",
            "-",
            "-X",
            "PUT",
            "-H",
            "A: b",
            "-H",
            "C:",
            "-m",
            "2.5",
            "-D",
            "-",
            "-w",
            "%{http_code}",
            "-4",
            "-k",
            "u",
        ])
        .unwrap();
        assert!(a.silent && a.show_error && a.fail && a.location && a.include && a.verbose);
        assert_eq!(a.output, [std::path::PathBuf::from("f")]);
        assert_eq!(a.continue_at.as_deref(), Some("-"));
        assert_eq!(a.request.as_deref(), Some("PUT"));
        assert_eq!(a.header, vec!["A: b", "C:"]);
        assert_eq!(a.max_time, Some(std::time::Duration::from_millis(2500)));
        assert_eq!(a.dump_header.as_deref(), Some(std::path::Path::new("-")));
        assert_eq!(a.write_out.as_deref(), Some("%{http_code}"));
        assert!(a.ipv4 && a.insecure);
    }

    #[test]
    fn long_flags_parse() {
        let a = parse(&[
            "--data-binary",
            "@body",
            "--compressed",
            "--max-redirs",
            "3",
            "--connect-timeout",
            "1",
            "--cacert",
            "ca.pem",
            "--max-head",
            "1024",
            "--timing",
            "-6",
            "-O",
            "-I",
            "u",
        ])
        .unwrap();
        assert_eq!(a.data_binary.as_deref(), Some("@body"));
        assert!(a.compressed && a.timing && a.ipv6 && a.remote_name.len() == 1 && a.head);
        assert_eq!(
            (a.max_redirs, a.max_head, a.connect_timeout),
            (3, 1024, std::time::Duration::from_secs(1))
        );
        let b = parse(&["-d", "a=1", "-d", "b=2", "u"]).unwrap();
        assert_eq!(b.data, vec!["a=1", "b=2"]);
    }

    #[test]
    fn contradictory_flags_are_rejected() {
        assert!(parse(&["-4", "-6", "u"]).is_err());
        assert!(parse(&["-d", "x", "--data-binary", "y", "u"]).is_err());
        assert!(parse(&["--buffer-size", "10", "u"]).is_err());
        assert!(parse(&[]).is_err());
    }

    fn config(args: &[&str]) -> Result<Config, FetchError> {
        parse(args).unwrap().config()
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
            &["-C", "-", "-I", "-o", "f", "http://h/"],
            &["-C", "-", "--compressed", "-o", "f", "http://h/"],
            &["-H", "bad header", "http://h/"],
        ] {
            let err = config(args).err().unwrap_or_else(|| panic!("{args:?} accepted"));
            assert_eq!(exit_code(&err), 2, "{args:?}: {err}");
        }
        assert!(parse(&["-m=-1", "http://h/"]).is_err());
    }

    #[test]
    fn max_time_zero_means_no_limit() {
        assert_eq!(config(&["-m", "0", "http://h/"]).unwrap().max_time, None);
        let c = config(&["-m", "1.5", "http://h/"]).unwrap();
        assert_eq!(c.max_time, Some(std::time::Duration::from_millis(1500)));
    }

    #[test]
    fn remote_name_comes_from_the_url() {
        let c = config(&["-O", "http://h/a/b.tar.gz?x=1"]).unwrap();
        assert_eq!(c.output, Some(std::path::PathBuf::from("b.tar.gz")));
        let c = config(&["-d", "a", "-d", "@/nonexistent/x", "http://h/"]);
        assert!(matches!(c, Err(FetchError::ReadFile { .. })));
    }

    #[test]
    fn outputs_pair_with_urls_in_order_as_curl() {
        let outputs = |args: &[&str]| -> Vec<Option<std::path::PathBuf>> {
            parse(args).unwrap().configs().unwrap().into_iter().map(|c| c.output).collect()
        };
        let p = |s: &str| Some(std::path::PathBuf::from(s));
        assert_eq!(outputs(&["http://h/1", "-o", "a", "http://h/2", "-o", "b"]), [p("a"), p("b")]);
        // Wherever the -o stands, the first is the first URL's; the rest go to stdout.
        assert_eq!(outputs(&["-o", "a", "http://h/1", "http://h/2", "http://h/3"]), [p("a"), None, None]);
        assert_eq!(outputs(&["-O", "http://h/x.txt", "http://h/y.txt"]), [p("x.txt"), None]);
        assert_eq!(outputs(&["-OO", "http://h/x.txt", "http://h/d/y.txt"]), [p("x.txt"), p("y.txt")]);
        // -o and -O mixed: each in its turn.
        let mixed = ["-O", "-o", "b", "-O", "http://h/a.txt", "http://h/2", "http://h/c.txt"];
        assert_eq!(outputs(&mixed), [p("a.txt"), p("b"), p("c.txt")]);
        let mixed = ["-o", "a", "http://h/1", "-sO", "http://h/b.txt", "-o", "c", "http://h/3"];
        assert_eq!(outputs(&mixed), [p("a"), p("b.txt"), p("c")]);
        // Later transfers append to the -D file; the first starts it anew.
        let dumps: Vec<bool> = parse(&["-D", "h", "http://h/1", "http://h/2"])
            .unwrap()
            .configs()
            .unwrap()
            .iter()
            .map(|c| c.dump_append)
            .collect();
        assert_eq!(dumps, [false, true]);
        // -C - needs a file for every URL.
        assert!(parse(&["-C", "-", "-o", "a", "http://h/1", "http://h/2"]).unwrap().configs().is_err());
        assert!(parse(&["--fail-early", "http://h/1"]).unwrap().fail_early);
    }

    #[test]
    fn defaults_are_the_library_constants() {
        let c = config(&["http://h/"]).unwrap();
        let d = Config::new(c.url.clone());
        assert_eq!(
            (c.max_redirs, c.max_head, c.buffer_size, c.max_interim),
            (d.max_redirs, d.max_head, d.buffer_size, d.max_interim)
        );
        assert_eq!(c.connect_timeout, crate::fetch::config::DEFAULT_CONNECT_TIMEOUT);
    }

    /// Every exit code the README's table documents, each from the error that makes it.
    #[test]
    fn exit_codes_are_the_readme_table() {
        use std::io;
        let io_err = || io::Error::other("x");
        let addr = "127.0.0.1:1".parse().unwrap();
        let http = |e: Http1Error| FetchError::Http(e);
        let table: Vec<(u8, FetchError)> = vec![
            (1, FetchError::Scheme("ftp".into())),
            (1, http(Http1Error::UnsupportedVersion { offset: 5 })),
            (18, FetchError::PartialHead { received: 10 }),
            (2, FetchError::Usage("u".into())),
            (2, http(Http1Error::InvalidRequest { reason: "r".into() })),
            (3, FetchError::Url { url: "u".into(), reason: "r".into() }),
            (5, FetchError::ProxyConnect(ConnectError::Resolve { host: "p".into(), source: io_err() })),
            (6, FetchError::Connect(ConnectError::Resolve { host: "h".into(), source: io_err() })),
            (7, FetchError::ProxyConnect(ConnectError::Refused { addr })),
            (56, FetchError::Proxy { reason: "CONNECT tunnel failed, response 403".into() }),
            (7, FetchError::Connect(ConnectError::Refused { addr })),
            (8, http(Http1Error::InvalidHead { offset: 0, reason: "r".into() })),
            (8, http(Http1Error::HeadTooLarge { limit: 1 })),
            (8, http(Http1Error::ConflictingContentLength { first: 1, second: 2 })),
            (8, FetchError::WeirdReply("101".into())),
            (18, http(Http1Error::Truncated { received: 1, expected: Some(2), detail: String::new() })),
            (22, FetchError::HttpStatus { status: 404 }),
            (23, FetchError::Write { what: "stdout".into(), source: io::ErrorKind::BrokenPipe.into() }),
            (23, FetchError::Decode(DecodeError::Write(io_err()))),
            (26, FetchError::ReadFile { path: "f".into(), source: io_err() }),
            (28, FetchError::Timeout { ms: 1, received: 0 }),
            (33, FetchError::Range("r".into())),
            (35, FetchError::Handshake { host: "h".into(), reason: "r".into() }),
            (47, FetchError::TooManyRedirects(50)),
            (52, FetchError::EmptyReply),
            (55, FetchError::Send(io_err())),
            (56, FetchError::Recv { received: 0, source: io_err() }),
            (56, http(Http1Error::BadChunkSize { offset: 0, byte: b'x' })),
            (60, FetchError::Certificate { host: "h".into(), reason: "r".into() }),
            (61, FetchError::Decode(DecodeError::Truncated { coding: "gzip" })),
            (61, http(Http1Error::UnsupportedTransferEncoding { coding: "x".into() })),
            (
                77,
                FetchError::TlsConfig(crate::net::tls::TlsError::CaFile {
                    path: "ca.pem".into(),
                    reason: "r".into(),
                }),
            ),
        ];
        for (code, err) in &table {
            assert_eq!(exit_code(err), *code, "{err}");
        }
        // Every code of the README's fetch table appears above.
        let readme = include_str!("../../README.md");
        let section = &readme[readme.find("## tcpkit fetch").unwrap()..];
        let section = &section[section.find("### Exit codes").unwrap()..];
        let section = &section[..section[4..].find("\n## ").map_or(section.len(), |i| i + 4)];
        for line in section.lines().filter(|l| l.starts_with("| ") && !l.starts_with("| code")) {
            let Ok(code) = line[2..].split(' ').next().unwrap_or("").parse::<u8>() else { continue };
            if code != 0 {
                assert!(table.iter().any(|(c, _)| *c == code), "README code {code} has no error");
            }
        }
    }
}
