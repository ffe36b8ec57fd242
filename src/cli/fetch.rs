//! Flags of `tcpkit fetch` (curl's names where they overlap).
use clap::Args;

/// Fetch a URL over HTTP/1.1 or HTTPS.
#[derive(Debug, Clone, Args)]
pub struct FetchArgs {
    /// The URL (http:// or https://).
    pub url: String,
}
