//! What one transfer is asked to do: [`Config`], every default a constant here (the
//! command line reads them, so they are written once).
//!
//! Not for: parsing flags (`cli::fetch` builds a `Config` from them) or I/O. A `Config`
//! is taken as given; the few combinations that cannot work are refused by the CLI.
use std::path::PathBuf;
use std::time::Duration;

use url::Url;

use super::policy::HeaderEdit;
use super::upload::Body;
use crate::net::connect::Family;
use crate::net::tls::ClientOptions;
use crate::net::trace::Trace;

/// Redirects followed before giving up (curl's `--max-redirs` default).
pub const DEFAULT_MAX_REDIRS: u32 = 50;
/// Bound on resolving, connecting and the TLS handshake together (curl's default).
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(300);
/// Bound on the bytes of a response's heads, interim ones included.
pub const DEFAULT_MAX_HEAD: usize = 256 * 1024;
/// The smallest `max_head` used: a smaller value is raised to it.
pub const MIN_MAX_HEAD: usize = 64;
/// Interim (1xx) responses accepted before the final one.
pub const DEFAULT_MAX_INTERIM: u32 = 100;
/// The socket read buffer the body streams through: the transfer's memory.
pub const DEFAULT_BUFFER_SIZE: usize = 256 * 1024;

/// Uploads from this size on ask `Expect: 100-continue` first (curl's threshold: 1 MiB).
pub const DEFAULT_EXPECT_100_AFTER: u64 = 1 << 20;
/// How long an `Expect: 100-continue` upload waits for the go-ahead (curl's default).
pub const DEFAULT_EXPECT_TIMEOUT: Duration = Duration::from_secs(1);

/// Most delay between two attempts of `--retry` (curl's cap on its back-off too).
pub const MAX_RETRY_DELAY: Duration = Duration::from_secs(600);

/// When and how a failed transfer is tried again (curl's `--retry` family).
#[derive(Debug, Clone, Default)]
pub struct Retry {
    /// Attempts after the first (0: no retry).
    pub count: u32,
    /// A fixed delay between attempts; `None`: 1 s, doubling, at most [`MAX_RETRY_DELAY`]
    /// (a `Retry-After` of a 429 or 503 wins over both).
    pub delay: Option<Duration>,
    /// No new attempt starts after this long since the first (`None`: no bound).
    pub max_time: Option<Duration>,
    /// Retry after any error, not only transient ones (timeouts, 408, 429, 5xx).
    pub all_errors: bool,
}

/// One transfer: the request, where the body goes, and the bounds.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Config {
    /// The URL (http or https; see [`super::policy::parse_url`]).
    pub url: Url,
    /// The request method.
    pub method: String,
    /// The request body, if any.
    pub body: Option<Body>,
    /// The body is a form (`-d`): `Content-Type: application/x-www-form-urlencoded`.
    pub form: bool,
    /// `USER:PASSWORD` sent as Basic auth to the URL's origin (`-u`); before the URL's
    /// own userinfo.
    pub user: Option<String>,
    /// Header edits (`-H`), applied in order over the defaults.
    pub edits: Vec<HeaderEdit>,
    /// Write the body to this file (through `FILE.part`); `None`: stdout.
    pub output: Option<PathBuf>,
    /// Resume the partial `output` with a Range request (`-C -`).
    pub resume: bool,
    /// Put the response heads before the body in the output (`-i`).
    pub include: bool,
    /// Follow redirects (`-L`), at most `max_redirs` of them.
    pub follow: bool,
    /// Redirects followed before [`super::FetchError::TooManyRedirects`].
    pub max_redirs: u32,
    /// The HTTP proxy for http URLs (`-x`, or `http_proxy` read by the CLI).
    pub http_proxy: Option<Url>,
    /// The HTTP proxy for https URLs, always through a `CONNECT` tunnel.
    pub https_proxy: Option<Url>,
    /// Hosts reached directly, never through a proxy: a name matches itself and its
    /// subdomains (a leading dot is ignored); `*` matches every host.
    pub no_proxy: Vec<String>,
    /// Tunnel http through the proxy with `CONNECT` too (`-p`).
    pub proxy_tunnel: bool,
    /// Address families allowed (`-4`, `-6`).
    pub family: Family,
    /// Bound on resolving, connecting and the TLS handshake of each connection.
    pub connect_timeout: Duration,
    /// Bound on the whole transfer, redirects and decoding included; `None`: none.
    pub max_time: Option<Duration>,
    /// Interim (1xx) responses accepted before the final one.
    pub max_interim: u32,
    /// Over TLS, a body delimited by close is complete at a close without close_notify.
    pub ignore_missing_close_notify: bool,
    /// Certificates trusted, or none checked.
    pub tls: ClientOptions,
    /// Ask for and decode gzip, deflate, br and zstd.
    pub compressed: bool,
    /// Bound on a response's heads in bytes (at least [`MIN_MAX_HEAD`]).
    pub max_head: usize,
    /// The read buffer in bytes.
    pub buffer_size: usize,
    /// Move plain-HTTP bodies to files with splice(2).
    pub splice: bool,
    /// Write every response head to this file (`-` = stdout).
    pub dump: Option<PathBuf>,
    /// Append to the `dump` file instead of starting it anew (a later transfer of
    /// the same command, as curl does).
    pub dump_append: bool,
    /// Write the connection, request and response heads to stderr (`-v`).
    pub verbose: bool,
    /// A file body of at least this many bytes is sent with `Expect: 100-continue`.
    pub expect_100_after: u64,
    /// How long to wait for `100 Continue` before sending the body anyway.
    pub expect_timeout: Duration,
    /// Try again after a transient failure.
    pub retry: Retry,
    /// Draw a progress bar on stderr while the body goes to a file.
    pub progress: bool,
    /// A status of 400 or more is [`super::FetchError::HttpStatus`], with no body (`-f`).
    pub fail: bool,
    /// Record every connection's bytes (after TLS) and `Info` lines here
    /// (`--trace`, `--trace-ascii`); the caller starts and finishes its writer.
    pub trace: Option<Trace>,
}

impl Config {
    /// The proxy for `url`, if one applies: by scheme, unless `no_proxy` names the host.
    pub fn proxy_for(&self, url: &Url) -> Option<&Url> {
        let proxy =
            if url.scheme() == "https" { self.https_proxy.as_ref() } else { self.http_proxy.as_ref() }?;
        let host = url.host_str().unwrap_or_default().trim_start_matches('[').trim_end_matches(']');
        let bypass = self.no_proxy.iter().map(|n| n.trim().trim_start_matches('.')).any(|n| {
            n == "*"
                || host.eq_ignore_ascii_case(n)
                || (host.len() > n.len()
                    && host.as_bytes()[host.len() - n.len() - 1] == b'.'
                    && host[host.len() - n.len()..].eq_ignore_ascii_case(n))
        });
        (!bypass).then_some(proxy)
    }

    /// A GET of `url` to stdout with every default.
    pub fn new(url: Url) -> Config {
        Config {
            url,
            method: "GET".into(),
            body: None,
            form: false,
            user: None,
            edits: Vec::new(),
            output: None,
            resume: false,
            include: false,
            follow: false,
            max_redirs: DEFAULT_MAX_REDIRS,
            http_proxy: None,
            https_proxy: None,
            no_proxy: Vec::new(),
            proxy_tunnel: false,
            family: Family::Any,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            max_time: None,
            max_interim: DEFAULT_MAX_INTERIM,
            ignore_missing_close_notify: false,
            tls: ClientOptions::default(),
            compressed: false,
            max_head: DEFAULT_MAX_HEAD,
            buffer_size: DEFAULT_BUFFER_SIZE,
            splice: true,
            dump: None,
            dump_append: false,
            verbose: false,
            expect_100_after: DEFAULT_EXPECT_100_AFTER,
            expect_timeout: DEFAULT_EXPECT_TIMEOUT,
            retry: Retry::default(),
            progress: false,
            fail: false,
            trace: None,
        }
    }
}
