//! Listening sockets through socket2, with the options tokio's `bind` does not
//! expose, and the open-file limit that caps how many connections a server holds.
//!
//! Not for: accepting. The accept loop belongs to the server.
use std::io;
use std::net::SocketAddr;

use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
use socket2::{Domain, Protocol, Socket, Type};
use thiserror::Error;

/// A listener could not be set up.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum ListenError {
    /// Another socket holds the address.
    #[error("cannot listen on {addr}: address already in use")]
    InUse {
        /// The address asked for.
        addr: SocketAddr,
    },
    /// Any other failure (no such local address, permission...).
    #[error("cannot listen on {addr}: {source}")]
    Other {
        /// The address asked for.
        addr: SocketAddr,
        /// The OS error.
        source: io::Error,
    },
}

/// Bind and listen on `addr` with an accept queue of `backlog`.
///
/// `SO_REUSEADDR` lets a restarted server bind while old connections sit in
/// TIME_WAIT; an IPv6 address is IPv6 only (`IPV6_V6ONLY`), so `[::]:P` and
/// `0.0.0.0:P` can both be listened on, the same on every system.
/// The socket is non-blocking, ready for `tokio::net::TcpListener::from_std`.
pub fn bind_listener(addr: SocketAddr, backlog: u32) -> Result<std::net::TcpListener, ListenError> {
    bind_listener_shared(addr, backlog, false)
}

/// [`bind_listener`], and with `reuse_port` set `SO_REUSEPORT` first, so
/// several processes (each setting it) can listen on one port: the kernel
/// spreads new connections over them by a hash of the 4-tuple. A connection
/// still queued on a listener that closes is reset unless
/// `net.ipv4.tcp_migrate_req=1` moves it to another listener of the port.
pub fn bind_listener_shared(
    addr: SocketAddr,
    backlog: u32,
    reuse_port: bool,
) -> Result<std::net::TcpListener, ListenError> {
    let wrap = |source: io::Error| {
        if source.kind() == io::ErrorKind::AddrInUse {
            ListenError::InUse { addr }
        } else {
            ListenError::Other { addr, source }
        }
    };
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP)).map_err(wrap)?;
    socket.set_reuse_address(true).map_err(wrap)?;
    if reuse_port {
        socket.set_reuse_port(true).map_err(wrap)?;
    }
    if addr.is_ipv6() {
        socket.set_only_v6(true).map_err(wrap)?;
    }
    socket.set_nonblocking(true).map_err(wrap)?;
    socket.bind(&addr.into()).map_err(wrap)?;
    // The kernel caps the queue at net.core.somaxconn; larger values are harmless.
    let backlog = i32::try_from(backlog).unwrap_or(i32::MAX);
    socket.listen(backlog).map_err(wrap)?;
    Ok(socket.into())
}

/// Raise the soft open-file limit to the hard limit; returns the limit now in force
/// (`None` when it is unlimited or cannot be read).
pub fn raise_open_file_limit() -> Option<u64> {
    let current = getrlimit(Resource::Nofile);
    if let Some(hard) = current.maximum {
        if current.current != Some(hard) {
            // Failure leaves the old soft limit in force, which is reported below.
            let _ = setrlimit(Resource::Nofile, Rlimit { current: Some(hard), maximum: Some(hard) });
        }
    }
    getrlimit(Resource::Nofile).current
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_bind_names_the_address() {
        let first = bind_listener("127.0.0.1:0".parse().unwrap(), 16).unwrap();
        let addr = first.local_addr().unwrap();
        let err = bind_listener(addr, 16).unwrap_err();
        assert!(matches!(err, ListenError::InUse { .. }));
        assert!(err.to_string().contains(&addr.to_string()), "{err}");
    }

    #[test]
    fn open_file_limit_is_at_least_the_default() {
        assert!(raise_open_file_limit().is_some_and(|n| n >= 1024));
    }
}
