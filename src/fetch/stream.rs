//! One connection (a [`Stream`], plain or TLS) for one request: resolve and connect (Happy Eyeballs from
//! `net::connect`), then the TLS handshake for https, with the time of each phase.
//!
//! Not for: HTTP. The stream returned carries bytes; `fetch` speaks HTTP over it.
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use rustls::ClientConfig;
use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;
use url::Url;

use super::error::FetchError;
use super::trace::HttpTap;
use crate::net::connect::{ConnectOptions, connect};
use crate::net::tls::{HandshakeSummary, certificate_reason};

/// A plain or TLS connection.
pub enum Stream {
    /// http: the socket itself (eligible for splice).
    Plain(TcpStream),
    /// https: rustls over the socket.
    Tls(Box<TlsStream<TcpStream>>),
    /// Either, recorded by `--trace` (never spliced: the trace must see every byte).
    Traced(Box<HttpTap<Stream>>),
}

impl Stream {
    /// Whether TLS carries the bytes (a close without close_notify then matters).
    pub fn is_tls(&self) -> bool {
        match self {
            Stream::Plain(_) => false,
            Stream::Tls(_) => true,
            Stream::Traced(t) => t.get_ref().is_tls(),
        }
    }
}

/// A connection and what it took to open it.
pub struct Opened {
    /// The stream.
    pub stream: Stream,
    /// The server's address.
    pub peer: SocketAddr,
    /// Our address.
    pub local: SocketAddr,
    /// From the start of the hop to the resolved address.
    pub resolved: Duration,
    /// From the start of the hop to the established TCP connection.
    pub connected: Duration,
    /// From the start of the hop to the end of the TLS handshake (https only).
    pub tls_done: Option<Duration>,
    /// The negotiated TLS version and ALPN protocol, for `-v`.
    pub tls_info: Option<String>,
    /// The handshake in full (version, cipher, ALPN, peer certificate), for `--trace`.
    pub tls_summary: Option<HandshakeSummary>,
}

/// An HTTP proxy on the way to a URL.
#[derive(Debug, Clone, Copy)]
pub struct Via<'a> {
    /// The proxy (`http://[user:password@]host:port`).
    pub proxy: &'a Url,
    /// Open a `CONNECT` tunnel through it (always for https; `-p` for http too).
    pub tunnel: bool,
}

/// Most bytes of a proxy's answer to `CONNECT` read before giving up.
const MAX_CONNECT_HEAD: usize = 16 * 1024;

/// Connect to the URL's host and port, or through `via` (to the proxy; for a tunnel,
/// `CONNECT` host:port first); for https, handshake with SNI and ALPN `http/1.1`.
/// `timeout` bounds the tunnel and handshake too (curl's --connect-timeout).
pub async fn open(
    url: &Url,
    opts: &ConnectOptions,
    tls: Option<Arc<ClientConfig>>,
    timeout: Duration,
    via: Option<Via<'_>>,
) -> Result<Opened, FetchError> {
    let start = Instant::now();
    let host = url.host_str().unwrap_or_default();
    let port = url.port_or_known_default().unwrap_or(80);
    let opts = ConnectOptions { timeout: Some(timeout), ..opts.clone() };
    let c = match via {
        None => connect(host, port, &opts).await?,
        Some(v) => {
            let (phost, pport) =
                (v.proxy.host_str().unwrap_or_default(), v.proxy.port_or_known_default().unwrap_or(1080));
            let mut c = connect(phost, pport, &opts).await.map_err(FetchError::ProxyConnect)?;
            if v.tunnel {
                let left = timeout.saturating_sub(start.elapsed());
                let connected = tokio::time::timeout(left, tunnel(&mut c.stream, host, port, v.proxy)).await;
                connected.map_err(|_| FetchError::Proxy {
                    reason: format!("CONNECT timed out after {timeout:?}"),
                })??;
            }
            c
        }
    };
    let Some(config) = tls else {
        return Ok(Opened {
            stream: Stream::Plain(c.stream),
            peer: c.peer,
            local: c.local,
            resolved: c.resolve_time,
            connected: c.connect_time,
            tls_done: None,
            tls_info: None,
            tls_summary: None,
        });
    };
    let tcp = c.stream;
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    let name = ServerName::try_from(bare.to_string()).map_err(|e| FetchError::Handshake {
        host: host.into(),
        reason: format!("invalid server name: {e}"),
    })?;
    let left = timeout.saturating_sub(start.elapsed());
    let handshake = TlsConnector::from(config).connect(name, tcp);
    let stream = match tokio::time::timeout(left, handshake).await {
        Err(_) => {
            return Err(FetchError::Connect(crate::net::ConnectError::TimedOut {
                host: host.into(),
                port,
                after: timeout,
            }));
        }
        Ok(Err(e)) => return Err(handshake_error(host, e)),
        Ok(Ok(s)) => s,
    };
    let (_, session) = stream.get_ref();
    let tls_info = Some(format!(
        "{}, ALPN {}",
        session.protocol_version().map(|v| format!("{v:?}")).unwrap_or_default(),
        session
            .alpn_protocol()
            .map(|p| String::from_utf8_lossy(p).into_owned())
            .unwrap_or_else(|| "none".into())
    ));
    let tls_summary = Some(HandshakeSummary::of(session));
    Ok(Opened {
        stream: Stream::Tls(Box::new(stream)),
        peer: c.peer,
        local: c.local,
        resolved: c.resolve_time,
        connected: c.connect_time,
        tls_done: Some(start.elapsed()),
        tls_info,
        tls_summary,
    })
}

/// `CONNECT host:port` through the proxy on `tcp`; Ok once it answers 2xx.
async fn tunnel(
    tcp: &mut tokio::net::TcpStream,
    host: &str,
    port: u16,
    proxy: &Url,
) -> Result<(), FetchError> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let authority = format!("{host}:{port}");
    let mut head = format!("CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n");
    if let Some(auth) = super::policy::basic_auth(proxy) {
        head.push_str(&format!("Proxy-Authorization: {auth}\r\n"));
    }
    head.push_str("\r\n");
    let fail = |reason: String| FetchError::Proxy { reason };
    tcp.write_all(head.as_bytes()).await.map_err(|e| fail(format!("sending CONNECT: {e}")))?;
    // One byte at a time: nothing after the blank line may be taken from the tunnel.
    let mut buf = Vec::with_capacity(256);
    let mut byte = [0u8; 1];
    while !buf.ends_with(b"\r\n\r\n") {
        if buf.len() >= MAX_CONNECT_HEAD {
            return Err(fail(format!("answer to CONNECT longer than {MAX_CONNECT_HEAD} bytes")));
        }
        match tcp.read(&mut byte).await {
            Ok(1) => buf.push(byte[0]),
            Ok(_) => return Err(fail("closed while answering CONNECT".into())),
            Err(e) => return Err(fail(format!("reading the answer to CONNECT: {e}"))),
        }
    }
    let head = super::http1::parse_response_head(&buf, MAX_CONNECT_HEAD)
        .map_err(|e| fail(e.to_string()))?
        .ok_or_else(|| fail("incomplete answer to CONNECT".into()))?
        .0;
    if !(200..300).contains(&head.status) {
        return Err(fail(format!("CONNECT tunnel failed, response {}", head.status)));
    }
    Ok(())
}

/// A rejected certificate is exit 60 with the reason; anything else is exit 35.
fn handshake_error(host: &str, e: io::Error) -> FetchError {
    match e.get_ref().and_then(|inner| inner.downcast_ref::<rustls::Error>()) {
        Some(rustls::Error::InvalidCertificate(ce)) => {
            FetchError::Certificate { host: host.into(), reason: certificate_reason(ce) }
        }
        Some(other) => FetchError::Handshake { host: host.into(), reason: other.to_string() },
        None if e.kind() == io::ErrorKind::UnexpectedEof => FetchError::Handshake {
            host: host.into(),
            reason: "connection closed during the handshake".into(),
        },
        None => FetchError::Handshake { host: host.into(), reason: e.to_string() },
    }
}

impl AsyncRead for Stream {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
            Stream::Traced(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
            Stream::Traced(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_flush(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
            Stream::Traced(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
            Stream::Traced(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}
