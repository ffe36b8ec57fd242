//! HTTP/1.1 persistent connections: a pool of one idle connection, kept between the
//! transfers of a [`super::Session`] (and between the redirect hops of one transfer),
//! taken again when the next request goes to the same place.
//!
//! A connection goes back into the pool only when the transfer says it may: the
//! response was HTTP/1.1 without `Connection: close` (or 1.0 with `keep-alive`), its
//! body was read to its framed end with no byte left over, and nothing failed. The
//! pool holds at most one connection (curl's tool runs transfers one after another,
//! so one is all a serial command can use); a new one put in closes the old.
//!
//! Not for: deciding reusability (the transfer does), HTTP/2 multiplexing, or idle
//! timeouts (a stale connection is found by using it; the transfer retries once).
use std::net::SocketAddr;
use std::path::PathBuf;

use url::Url;

use super::stream::Stream;

/// Where a connection leads, and how: only a request with the same key may use it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolKey {
    /// `http` or `https`.
    pub scheme: String,
    /// The host as in the URL (lowercase for names).
    pub host: String,
    /// The port, the scheme's default when the URL has none.
    pub port: u16,
    /// The proxy the connection goes through, and whether it is a tunnel.
    pub proxy: Option<(String, bool)>,
    /// The TLS settings it was opened with (`--cacert`, `-k`).
    pub tls: Option<(Option<PathBuf>, bool)>,
}

impl PoolKey {
    /// The key for a request to `url` through `proxy` (tunnelled or not).
    pub fn new(url: &Url, proxy: Option<(&Url, bool)>, tls: Option<(Option<PathBuf>, bool)>) -> PoolKey {
        PoolKey {
            scheme: url.scheme().to_string(),
            host: url.host_str().unwrap_or_default().to_ascii_lowercase(),
            port: url.port_or_known_default().unwrap_or(80),
            proxy: proxy.map(|(p, tunnel)| (p.as_str().to_string(), tunnel)),
            tls,
        }
    }
}

/// An open connection with what the transfers report about it.
pub struct Conn {
    /// The stream (TLS and `--trace` taps included).
    pub stream: Stream,
    /// Its number in the session, from 0 (curl's `Connection #N`, `%{conn_id}`).
    pub id: u64,
    /// Where it leads.
    pub key: PoolKey,
    /// The server's (or proxy's) address.
    pub peer: SocketAddr,
    /// Our address.
    pub local: SocketAddr,
    /// Taken from the pool rather than opened for this request.
    pub reused: bool,
}

/// At most one idle connection, and the numbering of connections.
#[derive(Default)]
pub struct Pool {
    idle: Option<Conn>,
    next_id: u64,
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pool")
            .field("idle", &self.idle.as_ref().map(|c| (c.id, &c.key)))
            .field("next_id", &self.next_id)
            .finish()
    }
}

impl Pool {
    /// An empty pool.
    pub fn new() -> Pool {
        Pool::default()
    }

    /// The idle connection for `key`, if there is one; an idle connection elsewhere is
    /// closed (it would only be kept for a later transfer that might never come).
    pub fn take(&mut self, key: &PoolKey) -> Option<Conn> {
        let conn = self.idle.take()?;
        if &conn.key != key {
            return None;
        }
        Some(Conn { reused: true, ..conn })
    }

    /// The number for a newly opened connection.
    pub fn next_id(&mut self) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        id
    }

    /// Keep `conn` for the next request (closing any other idle one).
    pub fn put(&mut self, conn: Conn) {
        self.idle = Some(conn);
    }

    /// Whether a connection is idle in the pool.
    pub fn has_idle(&self) -> bool {
        self.idle.is_some()
    }
}
