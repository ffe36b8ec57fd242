//! `tcpkit fetch` as a library: HTTP/1.1 and HTTPS over our own sockets.
//!
//! The data flows one way: URL -> resolve -> connect (-> TLS) ([`stream`]) -> request
//! bytes ([`policy`], [`upload`]) -> [`http1`] (head, then body framing) -> optional
//! content decoding ([`decode`]) -> output (`-D`, `-i`, `-v`) -> [`sink`]. [`transfer`] runs those steps
//! for each redirect hop; `-C -` adds a Range and decides from the answer whether to
//! append. Memory is fixed: one read buffer of [`Config::buffer_size`] (grown only while
//! a head is incomplete, up to [`Config::max_head`]).
//!
//! A program uses it with a [`Config`] (no flags, no exit codes: those are the command
//! line's, in `cli::fetch`):
//!
//! ```no_run
//! use tcpkit::fetch::{Client, Config, policy};
//!
//! let url = policy::parse_url("http://127.0.0.1:8080/file.bin")?;
//! let mut config = Config::new(url);
//! config.output = Some("file.bin".into());
//! config.max_time = Some(std::time::Duration::from_secs(30));
//! let outcome = Client::new(config).run();
//! match outcome.result {
//!     Ok(()) => println!("{} bytes", outcome.metrics.size_download),
//!     Err(e) => eprintln!("failed: {e}; partial file: {:?}", outcome.partial),
//! }
//! # Ok::<(), tcpkit::fetch::FetchError>(())
//! ```
//!
//! Not for: HTTP/2, keep-alive or connection reuse, cookies, proxies, auth schemes.
pub mod config;
pub mod decode;
pub mod error;
pub mod http1;
pub mod metrics;
pub mod output_name;
pub mod policy;
pub mod range;
pub mod sink;
pub mod stream;
pub mod timing;
pub mod transfer;
pub mod upload;
pub mod writeout;

mod output;
mod splice;

pub use config::Config;
pub use error::FetchError;
pub use metrics::Metrics;
pub use transfer::{Outcome, Transfer};
pub use upload::Body;

/// Runs transfers of one [`Config`].
#[derive(Debug, Clone)]
pub struct Client {
    config: Config,
}

impl Client {
    /// A client for `config`.
    pub fn new(config: Config) -> Client {
        Client { config }
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// A transfer to run on the caller's Tokio runtime ([`Transfer::run`]).
    pub fn transfer(&self) -> Transfer<'_> {
        Transfer::new(&self.config)
    }

    /// Run one transfer to its end on a current-thread runtime of its own (a single
    /// transfer gains nothing from more threads, and start-up stays short).
    pub fn run(&self) -> Outcome {
        match tokio::runtime::Builder::new_current_thread().enable_all().build() {
            Ok(rt) => rt.block_on(self.transfer().run()),
            Err(e) => Outcome { result: Err(FetchError::Runtime(e)), metrics: Metrics::new(), partial: None },
        }
    }
}
