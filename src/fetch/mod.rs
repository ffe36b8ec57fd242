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
//! Several transfers in a row run in one [`Session`], which keeps an HTTP/1.1
//! connection alive between them ([`pool`]) when the next goes to the same place.
//!
//! Not for: HTTP/2, parallel transfers, cookies, SOCKS proxies, auth schemes other
//! than Basic.
pub mod config;
pub mod decode;
pub mod error;
pub mod http1;
pub mod metrics;
pub mod output_name;
pub mod policy;
pub mod pool;
pub mod range;
pub mod sink;
pub mod stream;
pub mod timing;
pub mod trace;
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

use std::time::Duration;

/// An error worth another attempt without `--retry-all-errors`: a timeout, or a
/// transient HTTP status (408, 429, 5xx), as curl judges.
pub fn is_transient(err: &FetchError) -> bool {
    matches!(
        err,
        FetchError::Timeout { .. }
            | FetchError::Connect(crate::net::ConnectError::TimedOut { .. })
            | FetchError::TransientStatus { .. }
    )
}

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
    /// transfer gains nothing from more threads, and start-up stays short), with the
    /// retries the config asks for.
    pub fn run(&self) -> Outcome {
        self.run_with(|_, _, _| {})
    }

    /// [`Client::run`], calling `before_retry(error, delay, retries_left)` before each
    /// new attempt (the command line prints curl's warning there).
    pub fn run_with(&self, before_retry: impl FnMut(&FetchError, Duration, u32)) -> Outcome {
        match Session::new() {
            Ok(mut session) => session.run_with(&self.config, before_retry),
            Err(e) => Outcome { result: Err(e), metrics: Metrics::new(), partial: None },
        }
    }
}

/// Transfers one after another on one runtime, sharing a [`pool::Pool`]: a transfer
/// to the scheme, host and port (and proxy and TLS settings) the previous one used
/// reuses its connection when that response left it reusable.
#[derive(Debug)]
pub struct Session {
    rt: tokio::runtime::Runtime,
    pool: pool::Pool,
    /// Transfers started so far (the next one's `%{xfer_id}`).
    transfers: u64,
}

impl Session {
    /// A session on a current-thread runtime of its own (transfers run one at a
    /// time, and start-up stays short).
    pub fn new() -> Result<Session, FetchError> {
        let rt = crate::net::runtime(1).map_err(FetchError::Runtime)?;
        Ok(Session { rt, pool: pool::Pool::new(), transfers: 0 })
    }

    /// Run one transfer of `config` to its end, with the retries it asks for.
    pub fn run(&mut self, config: &Config) -> Outcome {
        self.run_with(config, |_, _, _| {})
    }

    /// [`Session::run`], calling `before_retry(error, delay, retries_left)` before
    /// each new attempt.
    pub fn run_with(
        &mut self,
        config: &Config,
        mut before_retry: impl FnMut(&FetchError, Duration, u32),
    ) -> Outcome {
        let xfer_id = self.transfers;
        self.transfers += 1;
        let (rt, pool) = (&self.rt, &mut self.pool);
        let retry = &config.retry;
        let started = std::time::Instant::now();
        let mut config = config.clone();
        let mut left = retry.count;
        let mut backoff = Duration::from_secs(1);
        let mut retries = 0;
        let done = |mut outcome: Outcome, retries: u32| {
            (outcome.metrics.xfer_id, outcome.metrics.num_retries) = (xfer_id, retries);
            outcome
        };
        // A retry fits when the next delay (the fixed one, or the back-off) still
        // starts within max_time.
        let fits = |delay: Duration| retry.max_time.is_none_or(|max| started.elapsed() + delay <= max);
        loop {
            let guess = retry.delay.unwrap_or(backoff);
            let may_retry = left > 0 && fits(guess);
            let attempt = Transfer::new(&config).with_pool(pool).retry_transient_status(may_retry);
            let outcome = rt.block_on(attempt.run());
            let Err(err) = &outcome.result else { return done(outcome, retries) };
            if !may_retry || !(retry.all_errors || is_transient(err)) {
                return done(outcome, retries);
            }
            let delay = match (err, retry.delay) {
                (FetchError::TransientStatus { retry_after: Some(s), .. }, _) => Duration::from_secs(*s),
                (_, Some(fixed)) => fixed,
                _ => backoff,
            }
            .min(config::MAX_RETRY_DELAY);
            if !fits(delay) {
                // A Retry-After past max_time: the answer is this response, so ask
                // once more without retrying (the transient status is not an error).
                let last = Transfer::new(&config).with_pool(pool).run();
                return done(rt.block_on(last), retries + 1);
            }
            left -= 1;
            retries += 1;
            before_retry(err, delay, left + 1);
            backoff = (backoff * 2).min(config::MAX_RETRY_DELAY);
            // What the failed attempt kept in FILE.part is resumed when the server
            // allows ranges (decoded bytes are not: -C - refuses --compressed).
            if outcome.partial.is_some() && !config.compressed {
                config.resume = true;
            }
            rt.block_on(async { tokio::time::sleep(delay).await });
        }
    }
}
