//! Resolve a host and connect with Happy Eyeballs (RFC 8305).
//!
//! Addresses are tried in the resolver's order with the two families
//! interleaved; a new attempt starts every [`ATTEMPT_DELAY`] or as soon as the
//! previous one fails, and the first established connection wins (the others are
//! dropped, which closes them). One deadline bounds resolution and all attempts.
//!
//! Not for: proxies, TLS, or retrying after a connection was established.
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use thiserror::Error;
use tokio::net::{TcpSocket, TcpStream};
use tokio::task::JoinSet;

/// RFC 8305 §5 "Connection Attempt Delay": the recommended 250 ms.
pub const ATTEMPT_DELAY: Duration = Duration::from_millis(250);

/// Which address families may be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Family {
    /// IPv6 and IPv4, interleaved.
    #[default]
    Any,
    /// IPv4 only (`-4`).
    V4,
    /// IPv6 only (`-6`).
    V6,
}

impl Family {
    /// The family chosen by the `-4` and `-6` flags (`-4` wins if both are set;
    /// the command lines make them conflict).
    pub fn from_flags(ipv4: bool, ipv6: bool) -> Family {
        match (ipv4, ipv6) {
            (true, _) => Family::V4,
            (_, true) => Family::V6,
            _ => Family::Any,
        }
    }

    fn admits(self, ip: &IpAddr) -> bool {
        match self {
            Family::Any => true,
            Family::V4 => ip.is_ipv4(),
            Family::V6 => ip.is_ipv6(),
        }
    }
}

/// How to connect.
#[derive(Debug, Clone, Default)]
pub struct ConnectOptions {
    /// Address families allowed.
    pub family: Family,
    /// Deadline for resolving and connecting together; `None` waits for the OS.
    pub timeout: Option<Duration>,
    /// Local address to bind before connecting (port chosen by the OS).
    pub source: Option<IpAddr>,
    /// Set `TCP_NODELAY` on the connected socket.
    pub nodelay: bool,
}

/// An established connection and how long it took to get it.
#[derive(Debug)]
pub struct Connected {
    /// The socket.
    pub stream: TcpStream,
    /// The address that answered.
    pub peer: SocketAddr,
    /// Our end of the 4-tuple.
    pub local: SocketAddr,
    /// Time spent resolving the name (zero for an IP literal).
    pub resolve_time: Duration,
    /// Time from the start until the connection was established.
    pub connect_time: Duration,
}

/// Why no connection was made.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum ConnectError {
    /// The resolver failed for the name.
    #[error("could not resolve host: {host}: {source}")]
    Resolve {
        /// The name asked for.
        host: String,
        /// The resolver's error.
        source: io::Error,
    },
    /// The name resolved, but to no address of the allowed family.
    #[error("could not resolve host: {host}: no {family} address")]
    NoAddress {
        /// The name asked for.
        host: String,
        /// "IPv4" or "IPv6".
        family: &'static str,
    },
    /// Every address refused the connection.
    #[error("connection refused: {addr}")]
    Refused {
        /// The last address tried.
        addr: SocketAddr,
    },
    /// The deadline passed first.
    #[error("connection to {host} port {port} timed out after {} ms", after.as_millis())]
    TimedOut {
        /// The name asked for.
        host: String,
        /// The port asked for.
        port: u16,
        /// The deadline.
        after: Duration,
    },
    /// Any other failure of the last attempt (unreachable network, bad source...).
    #[error("could not connect to {addr}: {source}")]
    Other {
        /// The address of the last failed attempt.
        addr: SocketAddr,
        /// The OS error.
        source: io::Error,
    },
}

/// Resolve `host` (an IP literal needs no resolver) to addresses with `port`,
/// filtered by `family` and ordered for Happy Eyeballs.
pub async fn resolve(host: &str, port: u16, family: Family) -> Result<Vec<SocketAddr>, ConnectError> {
    // URL hosts keep IPv6 literals in brackets.
    let bare = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(host);
    let all: Vec<SocketAddr> = match bare.parse::<IpAddr>() {
        Ok(ip) => vec![SocketAddr::new(ip, port)],
        Err(_) => tokio::net::lookup_host((bare, port))
            .await
            .map_err(|source| ConnectError::Resolve { host: host.to_string(), source })?
            .collect(),
    };
    let admitted: Vec<SocketAddr> = all.into_iter().filter(|a| family.admits(&a.ip())).collect();
    if admitted.is_empty() {
        let family = if family == Family::V4 { "IPv4" } else { "IPv6" };
        return Err(ConnectError::NoAddress { host: host.to_string(), family });
    }
    Ok(interleave(admitted))
}

/// RFC 8305 §4: keep the resolver's order within each family, start with the
/// family of the first address, then alternate.
pub fn interleave(addrs: Vec<SocketAddr>) -> Vec<SocketAddr> {
    let Some(first) = addrs.first() else { return addrs };
    let first_is_v6 = first.is_ipv6();
    let (mut a, mut b): (Vec<SocketAddr>, Vec<SocketAddr>) =
        addrs.iter().partition(|x| x.is_ipv6() == first_is_v6);
    a.reverse();
    b.reverse();
    let mut out = Vec::with_capacity(addrs.len());
    loop {
        match (a.pop(), b.pop()) {
            (None, None) => return out,
            (x, y) => out.extend(x.into_iter().chain(y)),
        }
    }
}

/// Resolve and connect to `host`:`port` (see the module documentation).
pub async fn connect(host: &str, port: u16, opts: &ConnectOptions) -> Result<Connected, ConnectError> {
    let start = Instant::now();
    let work = async {
        let addrs = resolve(host, port, opts.family).await?;
        let resolve_time = start.elapsed();
        let (stream, peer) = race(&addrs, opts).await?;
        let local = stream.local_addr().map_err(|source| ConnectError::Other { addr: peer, source })?;
        if opts.nodelay {
            stream.set_nodelay(true).map_err(|source| ConnectError::Other { addr: peer, source })?;
        }
        Ok(Connected { stream, peer, local, resolve_time, connect_time: start.elapsed() })
    };
    match opts.timeout {
        None => work.await,
        Some(after) => tokio::time::timeout(after, work).await.unwrap_or(Err(ConnectError::TimedOut {
            host: host.to_string(),
            port,
            after,
        })),
    }
}

/// One connection attempt, from `source` when given. A source is bound with
/// `IP_BIND_ADDRESS_NO_PORT`, so the port is chosen per destination at connect
/// time and each source address has a full port range for every server.
pub async fn connect_one(addr: SocketAddr, source: Option<IpAddr>) -> io::Result<TcpStream> {
    let socket = if addr.is_ipv6() { TcpSocket::new_v6()? } else { TcpSocket::new_v4()? };
    if let Some(ip) = source {
        if ip.is_ipv4() {
            // Without it (non-Linux) bind picks a port per source: fewer connections, still correct.
            let _ = super::sys::set_bind_address_no_port(&socket);
        }
        socket.bind(SocketAddr::new(ip, 0))?;
    }
    socket.connect(addr).await
}

/// Start attempts [`ATTEMPT_DELAY`] apart, or at once when one fails; the first
/// success wins. With every attempt failed, a refusal is reported before other errors.
async fn race(addrs: &[SocketAddr], opts: &ConnectOptions) -> Result<(TcpStream, SocketAddr), ConnectError> {
    let mut pending = addrs.iter().copied();
    let mut attempts = JoinSet::new();
    let spawn_next = |attempts: &mut JoinSet<_>,
                      pending: &mut std::iter::Copied<std::slice::Iter<SocketAddr>>| {
        if let Some(addr) = pending.next() {
            let source = opts.source;
            attempts.spawn(async move { (addr, connect_one(addr, source).await) });
        }
    };
    spawn_next(&mut attempts, &mut pending);
    let mut last_err: Option<ConnectError> = None;
    let mut refused: Option<SocketAddr> = None;
    while !attempts.is_empty() {
        tokio::select! {
            Some(done) = attempts.join_next() => match done {
                Ok((addr, Ok(stream))) => return Ok((stream, addr)),
                Ok((addr, Err(e))) => {
                    if e.kind() == io::ErrorKind::ConnectionRefused {
                        refused = Some(addr);
                    }
                    last_err = Some(ConnectError::Other { addr, source: e });
                    spawn_next(&mut attempts, &mut pending);
                }
                Err(join) => {
                    last_err = Some(ConnectError::Other { addr: addrs[0], source: io::Error::other(join) });
                    spawn_next(&mut attempts, &mut pending);
                }
            },
            () = tokio::time::sleep(ATTEMPT_DELAY), if pending.len() > 0 => {
                spawn_next(&mut attempts, &mut pending);
            }
        }
    }
    if let Some(addr) = refused {
        return Err(ConnectError::Refused { addr });
    }
    Err(last_err.unwrap_or(ConnectError::NoAddress { host: String::new(), family: "IP" }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn family_from_flags() {
        assert_eq!(Family::from_flags(false, false), Family::Any);
        assert_eq!(Family::from_flags(true, false), Family::V4);
        assert_eq!(Family::from_flags(false, true), Family::V6);
    }

    #[test]
    fn interleave_alternates_families_starting_with_the_first() {
        let got = interleave(vec![a("[::1]:1"), a("[::2]:1"), a("[::3]:1"), a("1.1.1.1:1"), a("2.2.2.2:1")]);
        assert_eq!(got, vec![a("[::1]:1"), a("1.1.1.1:1"), a("[::2]:1"), a("2.2.2.2:1"), a("[::3]:1")]);
        let got = interleave(vec![a("1.1.1.1:1"), a("[::1]:1")]);
        assert_eq!(got, vec![a("1.1.1.1:1"), a("[::1]:1")]);
    }

    #[tokio::test]
    async fn ip_literals_need_no_resolver_and_respect_family() {
        assert_eq!(resolve("[::1]", 80, Family::Any).await.unwrap(), vec![a("[::1]:80")]);
        assert!(matches!(resolve("::1", 80, Family::V4).await, Err(ConnectError::NoAddress { .. })));
    }

    #[tokio::test]
    async fn refused_is_reported_as_refused() {
        // Bind then drop to get a port nobody listens on.
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let err = connect("127.0.0.1", port, &ConnectOptions::default()).await.unwrap_err();
        assert!(matches!(err, ConnectError::Refused { .. }), "{err}");
    }

    #[tokio::test]
    async fn falls_back_to_the_next_address_after_a_refusal() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        // ::1 port is closed (or IPv6 is absent): the IPv4 address must still win.
        let addrs = vec![a(&format!("[::1]:{port}")), a(&format!("127.0.0.1:{port}"))];
        let ipv6_taken = std::net::TcpListener::bind(addrs[0]).is_err();
        let (_, peer) = race(&addrs, &ConnectOptions::default()).await.unwrap();
        if !ipv6_taken {
            assert_eq!(peer, addrs[1]);
        }
    }
}
