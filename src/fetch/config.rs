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
    /// Write the connection, request and response heads to stderr (`-v`).
    pub verbose: bool,
    /// Draw a progress bar on stderr while the body goes to a file.
    pub progress: bool,
    /// A status of 400 or more is [`super::FetchError::HttpStatus`], with no body (`-f`).
    pub fail: bool,
}

impl Config {
    /// A GET of `url` to stdout with every default.
    pub fn new(url: Url) -> Config {
        Config {
            url,
            method: "GET".into(),
            body: None,
            form: false,
            edits: Vec::new(),
            output: None,
            resume: false,
            include: false,
            follow: false,
            max_redirs: DEFAULT_MAX_REDIRS,
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
            verbose: false,
            progress: false,
            fail: false,
        }
    }
}
