//! The PROXY protocol receiver (HAProxy's `doc/proxy-protocol.txt`, v1 and
//! v2), for `--proxy-protocol`: behind a load balancer it carries the real
//! client's addresses. Parsing is the `ppp` crate's; this module frames the
//! header off the stream without reading a byte past it, and applies the
//! receiver's rules: only from trusted peers, nothing processed before a
//! complete valid header, within [`HEADER_TIMEOUT`], at most [`MAX_HEADER`]
//! bytes; v2 `LOCAL` (a health check) keeps the socket's endpoints.
//!
//! Never auto-detected: a server without the flag treats a header as a line.
//! Not for: what the connection does afterwards (see `conn`).
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt};

/// The whole header must arrive within this (the spec asks for at least 3 s).
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(5);

/// Longest header accepted, in bytes: a v1 header is at most 107; a v2 one is
/// 16 plus its TLVs, which balancers keep to a few hundred bytes.
pub const MAX_HEADER: usize = 16 + 4096;

/// The v2 signature.
const V2_SIGNATURE: &[u8; 12] = b"\r\n\r\n\0\r\nQUIT\n";

/// Longest v1 header, `\r\n` included (the spec's bound).
const V1_MAX: usize = 107;

/// A network, `ADDR/PREFIX` (a bare address is a single host).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    addr: IpAddr,
    prefix: u8,
}

impl Cidr {
    /// Whether `ip` is in this network (an IPv4-mapped IPv6 address counts as IPv4).
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX.checked_shl(32 - u32::from(self.prefix)).unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX.checked_shl(128 - u32::from(self.prefix)).unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

impl std::str::FromStr for Cidr {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let (addr, prefix) = s.split_once('/').map_or((s, None), |(a, p)| (a, Some(p)));
        let addr: IpAddr = addr.parse().map_err(|_| format!("not an address: {s:?} (try 10.0.0.0/8)"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) => p.parse().ok().filter(|&p| p <= max).ok_or(format!("bad prefix length in {s:?}"))?,
        };
        Ok(Cidr { addr, prefix })
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

/// The peers trusted to send a header when none is given: loopback.
pub fn default_trusted() -> Vec<Cidr> {
    vec![
        Cidr { addr: IpAddr::from([127, 0, 0, 0]), prefix: 8 },
        Cidr { addr: IpAddr::from(std::net::Ipv6Addr::LOCALHOST), prefix: 128 },
    ]
}

/// What a valid header said.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Proxied {
    /// The client's address as the balancer saw it; `None` for v2 `LOCAL`
    /// or v1 `UNKNOWN` (the socket's endpoints stand).
    pub source: Option<SocketAddr>,
    /// The address the client connected to.
    pub destination: Option<SocketAddr>,
    /// The v2 `UNIQUE_ID` TLV, if sent.
    pub unique_id: Option<String>,
    /// The v2 `AUTHORITY` TLV (the server name the client asked for), if sent.
    pub authority: Option<String>,
}

/// Why a header was refused; the connection is closed without a byte sent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HeaderError {
    /// The peer is not in `--proxy-trusted`.
    #[error("untrusted peer")]
    Untrusted,
    /// Not a PROXY header at all.
    #[error("no PROXY header")]
    Missing,
    /// Longer than [`MAX_HEADER`] (or a v1 line past 107 bytes).
    #[error("header too long")]
    TooLong,
    /// The stream ended (or failed) before the header did.
    #[error("partial header")]
    Partial,
    /// Not complete within [`HEADER_TIMEOUT`].
    #[error("header timeout")]
    Timeout,
    /// `ppp` refused it.
    #[error("malformed header: {0}")]
    Malformed(String),
}

/// A stream whose waiting bytes can be looked at without taking them (a TCP
/// socket's `MSG_PEEK`): a header that arrived whole (the usual case: a
/// balancer sends it in one segment) is then taken in two system calls,
/// where reading exact steps costs three (v2) or one per byte (v1).
pub trait Peek {
    /// Some of the bytes waiting (at least one, at most `buf.len()`), left in
    /// the stream; `None` when the stream cannot peek (or failed: the reads
    /// that follow report it).
    fn peek(&mut self, buf: &mut [u8]) -> impl std::future::Future<Output = Option<usize>> + Send;
}

impl Peek for tokio::net::TcpStream {
    async fn peek(&mut self, buf: &mut [u8]) -> Option<usize> {
        tokio::net::TcpStream::peek(self, buf).await.ok()
    }
}

/// A byte slice peeks at its front (tests and fuzzing).
impl Peek for &[u8] {
    async fn peek(&mut self, buf: &mut [u8]) -> Option<usize> {
        let n = buf.len().min(self.len());
        buf[..n].copy_from_slice(&self[..n]);
        Some(n)
    }
}

/// Bytes peeked for a header: a v1 header (107 at most) or a v2 one with
/// addresses and a few TLVs; a longer v2 header is read in steps.
const PEEK: usize = 256;

/// Read exactly one PROXY header from `stream` (no byte past it) from `peer`,
/// within [`HEADER_TIMEOUT`].
pub async fn read_header<R: AsyncRead + Peek + Unpin>(
    stream: &mut R,
    peer: IpAddr,
    trusted: &[Cidr],
) -> Result<Proxied, HeaderError> {
    if !trusted.iter().any(|c| c.contains(peer)) {
        return Err(HeaderError::Untrusted);
    }
    tokio::time::timeout(HEADER_TIMEOUT, frame(stream))
        .await
        .map_err(|_| HeaderError::Timeout)?
        .and_then(|h| parse(&h))
}

/// The header's bytes: peeked, and then taken at once, when they have all
/// arrived; otherwise read in steps.
async fn frame<R: AsyncRead + Peek + Unpin>(stream: &mut R) -> Result<Vec<u8>, HeaderError> {
    let mut peeked = [0u8; PEEK];
    if let Some(n) = stream.peek(&mut peeked).await
        && let Some(len) = whole_header_len(&peeked[..n])
    {
        let mut buf = vec![0; len];
        read_exact(stream, &mut buf).await?;
        return Ok(buf);
    }
    frame_in_steps(stream).await
}

/// The length of the header `bytes` start with, if it is all there (and
/// within the bounds [`frame_in_steps`] checks); `None`: read in steps.
fn whole_header_len(bytes: &[u8]) -> Option<usize> {
    if bytes.len() >= 16 && bytes[..12] == *V2_SIGNATURE {
        let len = 16 + usize::from(u16::from_be_bytes([bytes[14], bytes[15]]));
        return (len <= bytes.len() && len <= MAX_HEADER).then_some(len);
    }
    if bytes.starts_with(b"PROXY ") {
        // The `\r\n` must end within V1_MAX bytes.
        let end = bytes.windows(2).take(V1_MAX - 1).position(|w| w == b"\r\n")?;
        return Some(end + 2);
    }
    None
}

/// The header's bytes, read in exact steps: 12 bytes tell v2 from v1 (the
/// shortest v1 header has 15), then v2's length field or v1's `\r\n`.
async fn frame_in_steps<R: AsyncRead + Unpin>(stream: &mut R) -> Result<Vec<u8>, HeaderError> {
    let mut buf = vec![0; 12];
    read_exact(stream, &mut buf).await?;
    if buf.as_slice() == V2_SIGNATURE {
        buf.resize(16, 0);
        read_exact(stream, &mut buf[12..]).await?;
        let len = usize::from(u16::from_be_bytes([buf[14], buf[15]]));
        if 16 + len > MAX_HEADER {
            return Err(HeaderError::TooLong);
        }
        buf.resize(16 + len, 0);
        read_exact(stream, &mut buf[16..]).await?;
        return Ok(buf);
    }
    if !buf.starts_with(b"PROXY ") {
        return Err(HeaderError::Missing);
    }
    // v1: byte by byte to the `\r\n` (at most 95 more reads, once per connection).
    while !buf.ends_with(b"\r\n") {
        if buf.len() >= V1_MAX {
            return Err(HeaderError::TooLong);
        }
        let mut b = [0];
        read_exact(stream, &mut b).await?;
        buf.push(b[0]);
    }
    Ok(buf)
}

async fn read_exact<R: AsyncRead + Unpin>(stream: &mut R, buf: &mut [u8]) -> Result<(), HeaderError> {
    stream.read_exact(buf).await.map(drop).map_err(|_| HeaderError::Partial)
}

/// Parse a whole header (as [`read_header`] frames it) with `ppp`.
pub fn parse(header: &[u8]) -> Result<Proxied, HeaderError> {
    if header.starts_with(V2_SIGNATURE) {
        let h = ppp::v2::Header::try_from(header).map_err(|e| HeaderError::Malformed(e.to_string()))?;
        if h.len() != header.len() {
            return Err(HeaderError::Malformed("length mismatch".into()));
        }
        let mut p = Proxied::default();
        if h.command == ppp::v2::Command::Proxy {
            (p.source, p.destination) = match h.addresses {
                ppp::v2::Addresses::IPv4(a) => (
                    Some((a.source_address, a.source_port).into()),
                    Some((a.destination_address, a.destination_port).into()),
                ),
                ppp::v2::Addresses::IPv6(a) => (
                    Some((a.source_address, a.source_port).into()),
                    Some((a.destination_address, a.destination_port).into()),
                ),
                // Unix or unspecified: nothing a TCP log line can show.
                _ => (None, None),
            };
        }
        for tlv in h.tlvs() {
            let tlv = tlv.map_err(|e| HeaderError::Malformed(e.to_string()))?;
            let text = || Some(String::from_utf8_lossy(&tlv.value).into_owned());
            if tlv.kind == ppp::v2::Type::UniqueId as u8 {
                p.unique_id = text();
            } else if tlv.kind == ppp::v2::Type::Authority as u8 {
                p.authority = text();
            }
        }
        return Ok(p);
    }
    let h = ppp::v1::Header::try_from(header).map_err(|e| HeaderError::Malformed(e.to_string()))?;
    if h.header.len() != header.len() {
        return Err(HeaderError::Malformed("bytes after the header line".into()));
    }
    Ok(match h.addresses {
        ppp::v1::Addresses::Tcp4(a) => Proxied {
            source: Some((a.source_address, a.source_port).into()),
            destination: Some((a.destination_address, a.destination_port).into()),
            ..Proxied::default()
        },
        ppp::v1::Addresses::Tcp6(a) => Proxied {
            source: Some((a.source_address, a.source_port).into()),
            destination: Some((a.destination_address, a.destination_port).into()),
            ..Proxied::default()
        },
        ppp::v1::Addresses::Unknown => Proxied::default(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use ppp::v2::{Builder, Command, Protocol, Type, Version};

    fn v2(command: Command, src: &str, dst: &str, tlvs: &[(Type, &[u8])]) -> Vec<u8> {
        let addrs: ppp::v2::Addresses =
            (src.parse::<SocketAddr>().unwrap(), dst.parse::<SocketAddr>().unwrap()).into();
        let mut b = Builder::with_addresses(Version::Two | command, Protocol::Stream, addrs);
        for (kind, value) in tlvs {
            b = b.write_tlv(*kind, value).unwrap();
        }
        b.build().unwrap()
    }

    async fn read(bytes: &[u8], peer: &str) -> (Result<Proxied, HeaderError>, Vec<u8>) {
        let mut input = bytes;
        let r = read_header(&mut input, peer.parse().unwrap(), &default_trusted()).await;
        (r, input.to_vec())
    }

    #[tokio::test]
    async fn v1_gives_the_client_and_leaves_the_first_line() {
        let (r, rest) = read(b"PROXY TCP4 203.0.113.7 192.0.2.1 51234 9999\r\nhello\n", "127.0.0.1").await;
        let p = r.unwrap();
        assert_eq!(p.source, Some("203.0.113.7:51234".parse().unwrap()));
        assert_eq!(p.destination, Some("192.0.2.1:9999".parse().unwrap()));
        assert_eq!(rest, b"hello\n");
        let (r, rest) = read(b"PROXY UNKNOWN\r\nx", "::1").await;
        assert_eq!((r.unwrap(), rest), (Proxied::default(), b"x".to_vec()));
    }

    #[tokio::test]
    async fn v2_with_tlvs_and_local_is_consumed_exactly() {
        let mut h = v2(
            Command::Proxy,
            "[2001:db8::1]:4000",
            "[2001:db8::2]:9999",
            &[(Type::UniqueId, b"abc"), (Type::Authority, b"example.com"), (Type::NoOp, b"\0\0")],
        );
        h.extend_from_slice(b"line\n");
        let (r, rest) = read(&h, "127.0.0.1").await;
        let p = r.unwrap();
        assert_eq!(p.source, Some("[2001:db8::1]:4000".parse().unwrap()));
        assert_eq!((p.unique_id.as_deref(), p.authority.as_deref()), (Some("abc"), Some("example.com")));
        assert_eq!(rest, b"line\n");
        // LOCAL (a health check): the socket's endpoints stand, the length is still skipped.
        let mut h = v2(Command::Local, "10.0.0.1:1", "10.0.0.2:2", &[]);
        h.push(b'z');
        let (r, rest) = read(&h, "127.0.0.1").await;
        assert_eq!((r.unwrap().source, rest), (None, b"z".to_vec()));
    }

    #[tokio::test]
    async fn bad_headers_are_refused_with_their_reason() {
        assert_eq!(read(b"Michael\nexit\nmore\n", "127.0.0.1").await.0, Err(HeaderError::Missing));
        assert_eq!(read(b"PROXY TCP4 1.2.3.4", "127.0.0.1").await.0, Err(HeaderError::Partial));
        assert_eq!(
            read(b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\n", "192.0.2.9").await.0,
            Err(HeaderError::Untrusted)
        );
        let long = [b"PROXY TCP4 ".as_slice(), &[b'1'; 200]].concat();
        assert_eq!(read(&long, "127.0.0.1").await.0, Err(HeaderError::TooLong));
        assert!(matches!(
            read(b"PROXY TCP4 1.2.3.4 nope 1 2\r\n", "127.0.0.1").await.0,
            Err(HeaderError::Malformed(_))
        ));
        let mut big = V2_SIGNATURE.to_vec();
        big.extend_from_slice(&[0x21, 0x11, 0xff, 0xff]);
        assert_eq!(read(&big, "127.0.0.1").await.0, Err(HeaderError::TooLong));
    }

    #[tokio::test(start_paused = true)]
    async fn a_header_that_never_completes_times_out() {
        let (mut client, mut server) = tokio::io::duplex(64);
        tokio::io::AsyncWriteExt::write_all(&mut client, b"PROXY TCP4").await.unwrap();
        let r = read_header(&mut server, "127.0.0.1".parse().unwrap(), &default_trusted()).await;
        assert_eq!(r, Err(HeaderError::Timeout));
    }

    /// A pipe cannot peek: the header is read in steps.
    impl Peek for tokio::io::DuplexStream {
        async fn peek(&mut self, _: &mut [u8]) -> Option<usize> {
            None
        }
    }

    #[test]
    fn a_header_is_taken_whole_only_when_all_of_it_was_peeked() {
        let v1 = b"PROXY TCP4 203.0.113.7 192.0.2.1 51234 9999\r\nhello\n";
        assert_eq!(whole_header_len(v1), Some(45));
        assert_eq!(whole_header_len(&v1[..44]), None, "no \\r\\n yet");
        let mut long = b"PROXY ".to_vec();
        long.extend([b'x'; 101]);
        long.extend(b"\r\n");
        assert_eq!(whole_header_len(&long), None, "past 107 bytes: the steps refuse it");
        assert_eq!(
            whole_header_len(&long[..105].iter().chain(b"\r\n").copied().collect::<Vec<_>>()),
            Some(107)
        );
        let h =
            v2(Command::Proxy, "203.0.113.7:51234", "192.0.2.1:9999", &[(Type::Authority, b"example.com")]);
        let mut with_data = h.clone();
        with_data.extend(b"hello\n");
        assert_eq!(whole_header_len(&with_data), Some(h.len()));
        assert_eq!(whole_header_len(&h[..h.len() - 1]), None);
        assert_eq!(whole_header_len(&h[..15]), None);
        assert_eq!(whole_header_len(b"hello\n"), None);
    }

    #[tokio::test]
    async fn over_tcp_a_header_in_one_segment_or_split_leaves_the_first_line_unread() {
        use tokio::io::AsyncWriteExt;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let h = v2(Command::Proxy, "203.0.113.7:51234", "192.0.2.1:9999", &[]);
        for split in [None, Some(5), Some(14), Some(h.len())] {
            let mut client = tokio::net::TcpStream::connect(addr).await.unwrap();
            let (mut server, peer) = listener.accept().await.unwrap();
            let (first, rest) = h.split_at(split.unwrap_or(h.len()));
            client.write_all(first).await.unwrap();
            let header = h.clone();
            let rest = rest.to_vec();
            let writer = tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(50)).await;
                client.write_all(&rest).await.unwrap();
                client.write_all(b"hello\n").await.unwrap();
                (client, header)
            });
            let p = read_header(&mut server, peer.ip(), &default_trusted()).await;
            assert_eq!(p.unwrap().source, Some("203.0.113.7:51234".parse().unwrap()), "split {split:?}");
            let _client = writer.await.unwrap();
            let mut line = [0u8; 6];
            tokio::io::AsyncReadExt::read_exact(&mut server, &mut line).await.unwrap();
            assert_eq!(&line, b"hello\n", "split {split:?}");
        }
    }

    #[test]
    fn cidrs_match_their_networks() {
        let net: Cidr = "10.1.0.0/16".parse().unwrap();
        assert!(net.contains("10.1.200.3".parse().unwrap()));
        assert!(!net.contains("10.2.0.1".parse().unwrap()));
        assert!(net.contains("::ffff:10.1.0.9".parse().unwrap()));
        assert!("0.0.0.0/0".parse::<Cidr>().unwrap().contains("8.8.8.8".parse().unwrap()));
        assert!("2001:db8::/32".parse::<Cidr>().unwrap().contains("2001:db8:1::1".parse().unwrap()));
        assert!("10.0.0.0/33".parse::<Cidr>().is_err() && "nope".parse::<Cidr>().is_err());
    }
}
