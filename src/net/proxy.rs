//! PROXY protocol headers to send (HAProxy's spec, `doc/proxy-protocol.txt`):
//! the v1 text line and the v2 binary block, built with the `ppp` crate, so
//! that a client can tell a receiver (HAProxy `accept-proxy`, nginx
//! `proxy_protocol`, `tcpkit serve --proxy-protocol`) which client it stands for.
//!
//! - [`Header`]: TCP over IPv4 or IPv6 (`PROXY TCP4 ...`, v2 `PROXY` with
//!   `AF_INET`/`AF_INET6` + `STREAM`), or no addresses (v1 `UNKNOWN`, v2 `LOCAL`),
//!   with optional v2 [`Tlv`]s (`AUTHORITY`, `UNIQUE_ID`, any other type).
//! - [`SourceRange`]: synthetic client addresses, a CIDR and a port range
//!   (`10.0.0.0/16:1024-65535`); [`SourceRange::nth`] gives connection `i` its
//!   own address, the same on every run.
//! - [`Malformed`]: headers a receiver must refuse, to test that it does.
//!
//! ```
//! use tcpkit::net::proxy::{Header, SourceRange, Tlv, Version};
//!
//! let dst = "192.168.0.11:443".parse()?;
//! let v1 = Header::proxy(Version::V1, "192.168.0.1:56324".parse()?, dst);
//! assert_eq!(v1.encode()?, b"PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n");
//!
//! let sources: SourceRange = "10.0.0.0/16:1024-65535".parse()?;
//! let v2 = Header::proxy(Version::V2, sources.nth(1), dst).with_tlv(Tlv::unique_id(b"conn-1")?);
//! assert_eq!(v2.encode()?.len(), 16 + 12 + 3 + 6);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! Not for: receiving (the receiver parses with `ppp` where it accepts
//! connections), deciding whom to trust, or any I/O: callers write the bytes.
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::ops::RangeInclusive;
use std::str::FromStr;

use ppp::v2::{AddressFamily, Builder, Command, Protocol};
use thiserror::Error;

/// The longest v1 line the spec allows, CRLF included. Ours are at most 104
/// bytes (`TCP6` with two full-length addresses and 5-digit ports).
pub const V1_MAX_LEN: usize = 107;
/// The 12 bytes every v2 header starts with.
pub const V2_SIGNATURE: &[u8; 12] = b"\r\n\r\n\0\r\nQUIT\n";
/// Fixed part of a v2 header: signature, version/command, family/protocol, length.
pub const V2_FIXED_LEN: usize = 16;
/// The most bytes a v2 header may carry after its fixed part (its length field is 16 bits).
pub const V2_MAX_PAYLOAD: usize = u16::MAX as usize;
/// The spec's bound on a `UNIQUE_ID` TLV value.
pub const UNIQUE_ID_MAX_LEN: usize = 128;
/// Ports of a [`SourceRange`] written without any: unprivileged ones.
pub const DEFAULT_PORTS: RangeInclusive<u16> = 1024..=65535;

/// Why a header could not be built or a [`SourceRange`] not parsed.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ProxyError {
    /// TLVs exist only in v2.
    #[error("PROXY header: TLVs need version 2 (v1 has no room for them)")]
    TlvInV1,
    /// A TLV value longer than its 16-bit length field, or a `UNIQUE_ID` over 128 bytes.
    #[error("PROXY header: TLV 0x{kind:02x} value of {len} bytes is over its limit of {max}")]
    TlvTooLong {
        /// The TLV type.
        kind: u8,
        /// The value's length.
        len: usize,
        /// Its limit.
        max: usize,
    },
    /// Addresses and TLVs together over the v2 length field's 65535 bytes.
    #[error("PROXY header: v2 payload of {len} bytes is over 65535")]
    TooLong {
        /// Bytes after the fixed 16.
        len: usize,
    },
    /// A `--proxy-source`-style range that does not parse.
    #[error("PROXY source range `{input}`: {reason}")]
    BadRange {
        /// What was given.
        input: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A version other than `v1`/`v2`.
    #[error("PROXY protocol version `{0}`: expected v1 or v2")]
    BadVersion(String),
}

/// The two versions of the protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    /// A text line, `PROXY TCP4 SRC DST SPORT DPORT\r\n`.
    V1,
    /// A binary block with a 12-byte signature; can carry TLVs.
    V2,
}

impl FromStr for Version {
    type Err = ProxyError;
    fn from_str(s: &str) -> Result<Version, ProxyError> {
        match s {
            "v1" | "1" => Ok(Version::V1),
            "v2" | "2" => Ok(Version::V2),
            _ => Err(ProxyError::BadVersion(s.to_string())),
        }
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Version::V1 => "v1",
            Version::V2 => "v2",
        })
    }
}

/// A v2 Type-Length-Value field. The value is bounded by its 16-bit length.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tlv {
    /// The type byte (`PP2_TYPE_*` in the spec).
    pub kind: u8,
    /// The value, at most 65535 bytes.
    pub value: Vec<u8>,
}

impl Tlv {
    /// `PP2_TYPE_ALPN`: the application protocol the client asked for.
    pub const ALPN: u8 = 0x01;
    /// `PP2_TYPE_AUTHORITY`: the host name the client asked for (SNI, `Host`).
    pub const AUTHORITY: u8 = 0x02;
    /// `PP2_TYPE_NOOP`: ignored by receivers (padding).
    pub const NOOP: u8 = 0x04;
    /// `PP2_TYPE_UNIQUE_ID`: an opaque connection id of at most 128 bytes.
    pub const UNIQUE_ID: u8 = 0x05;

    /// Any TLV; its value must fit the 16-bit length.
    pub fn new(kind: u8, value: impl Into<Vec<u8>>) -> Result<Tlv, ProxyError> {
        let value = value.into();
        if value.len() > V2_MAX_PAYLOAD {
            return Err(ProxyError::TlvTooLong { kind, len: value.len(), max: V2_MAX_PAYLOAD });
        }
        Ok(Tlv { kind, value })
    }

    /// `AUTHORITY`: the host name (UTF-8) the client asked for.
    pub fn authority(host: &str) -> Result<Tlv, ProxyError> {
        Tlv::new(Tlv::AUTHORITY, host.as_bytes())
    }

    /// `UNIQUE_ID`: at most [`UNIQUE_ID_MAX_LEN`] bytes, as the spec requires.
    pub fn unique_id(id: &[u8]) -> Result<Tlv, ProxyError> {
        if id.len() > UNIQUE_ID_MAX_LEN {
            return Err(ProxyError::TlvTooLong {
                kind: Tlv::UNIQUE_ID,
                len: id.len(),
                max: UNIQUE_ID_MAX_LEN,
            });
        }
        Tlv::new(Tlv::UNIQUE_ID, id)
    }
}

/// One PROXY header: a version, the client and server it speaks for (or none),
/// and v2 TLVs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// v1 text or v2 binary.
    pub version: Version,
    /// `(source, destination)`: the client and the server it connected to.
    /// `None` sends v1 `UNKNOWN` / v2 `LOCAL` (the receiver uses the real
    /// endpoints, as for a balancer's own health check). When the two differ in
    /// family, the IPv4 one is sent IPv4-mapped (`::ffff:a.b.c.d`) in `TCP6`,
    /// as HAProxy does.
    pub addresses: Option<(SocketAddr, SocketAddr)>,
    /// v2 only: TLVs, in this order after the addresses.
    pub tlvs: Vec<Tlv>,
}

impl Header {
    /// A header saying the connection comes from `source` and was made to `destination`.
    pub fn proxy(version: Version, source: SocketAddr, destination: SocketAddr) -> Header {
        Header { version, addresses: Some((source, destination)), tlvs: Vec::new() }
    }

    /// A header with no addresses: v1 `PROXY UNKNOWN\r\n`, v2 `LOCAL`.
    pub fn local(version: Version) -> Header {
        Header { version, addresses: None, tlvs: Vec::new() }
    }

    /// This header with `tlv` appended (v2 only: [`Header::encode`] refuses TLVs in v1).
    pub fn with_tlv(mut self, tlv: Tlv) -> Header {
        self.tlvs.push(tlv);
        self
    }

    /// The bytes to send first on the connection.
    pub fn encode(&self) -> Result<Vec<u8>, ProxyError> {
        let addresses = self.addresses.map(|(s, d)| same_family(s, d));
        match self.version {
            Version::V1 => {
                if !self.tlvs.is_empty() {
                    return Err(ProxyError::TlvInV1);
                }
                let line = match addresses {
                    Some(pair) => ppp::v1::Addresses::from(pair).to_string(),
                    None => ppp::v1::Addresses::Unknown.to_string(),
                };
                debug_assert!(line.len() <= V1_MAX_LEN, "{line:?}");
                Ok(line.into_bytes())
            }
            Version::V2 => {
                let payload = addresses.map_or(0, |(s, _)| if s.is_ipv4() { 12 } else { 36 })
                    + self.tlvs.iter().map(|t| 3 + t.value.len()).sum::<usize>();
                if payload > V2_MAX_PAYLOAD {
                    return Err(ProxyError::TooLong { len: payload });
                }
                let mut builder = match addresses {
                    Some(pair) => Builder::with_addresses(
                        ppp::v2::Version::Two | Command::Proxy,
                        Protocol::Stream,
                        pair,
                    ),
                    None => Builder::new(
                        ppp::v2::Version::Two | Command::Local,
                        AddressFamily::Unspecified | Protocol::Unspecified,
                    ),
                }
                .reserve_capacity(payload);
                for tlv in &self.tlvs {
                    // Lengths were checked above, so ppp's own length errors cannot happen.
                    builder = builder
                        .write_tlv(tlv.kind, &tlv.value)
                        .map_err(|_| ProxyError::TooLong { len: payload })?;
                }
                builder.build().map_err(|_| ProxyError::TooLong { len: payload })
            }
        }
    }
}

impl fmt::Display for Header {
    /// `PROXY v2 203.0.113.7:4000 -> 127.0.0.1:9999 (2 TLVs)`, for logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PROXY {}", self.version)?;
        match (self.addresses, self.version) {
            (Some((s, d)), _) => write!(f, " {s} -> {d}")?,
            (None, Version::V1) => f.write_str(" UNKNOWN")?,
            (None, Version::V2) => f.write_str(" LOCAL")?,
        }
        match self.tlvs.len() {
            0 => Ok(()),
            1 => f.write_str(" (1 TLV)"),
            n => write!(f, " ({n} TLVs)"),
        }
    }
}

/// Both addresses in one family: an IPv4 one becomes IPv4-mapped IPv6 when
/// the other is IPv6 (the spec's families are per header, not per address).
fn same_family(source: SocketAddr, destination: SocketAddr) -> (SocketAddr, SocketAddr) {
    let v6 = |a: SocketAddr| match a.ip() {
        IpAddr::V4(ip) => SocketAddr::new(IpAddr::V6(ip.to_ipv6_mapped()), a.port()),
        IpAddr::V6(_) => a,
    };
    if source.is_ipv4() == destination.is_ipv4() {
        (source, destination)
    } else {
        (v6(source), v6(destination))
    }
}

/// Synthetic client addresses: a network (CIDR) and a port range, written
/// `10.0.0.0/16:1024-65535`, `[2001:db8::/64]:40000-40999`, `203.0.113.7:4000`
/// or `10.0.0.0/8` (ports [`DEFAULT_PORTS`]). Host bits set in the network are an error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceRange {
    network: IpAddr,
    prefix: u8,
    ports: RangeInclusive<u16>,
}

impl SourceRange {
    /// The range `network/prefix` with these ports; host bits set in
    /// `network`, a prefix over the family's bits, an empty port range or port 0 are errors.
    pub fn new(network: IpAddr, prefix: u8, ports: RangeInclusive<u16>) -> Result<SourceRange, ProxyError> {
        let input = format!("{network}/{prefix}:{}-{}", ports.start(), ports.end());
        let bad = |reason: String| ProxyError::BadRange { input: input.clone(), reason };
        let bits = if network.is_ipv4() { 32 } else { 128 };
        if prefix > bits {
            return Err(bad(format!("prefix /{prefix} is over {bits} bits")));
        }
        let range = SourceRange { network, prefix, ports };
        let masked = range.address(0);
        if masked != network {
            return Err(bad(format!("host bits set: the network is {masked}/{prefix}")));
        }
        if range.ports.is_empty() {
            return Err(bad("empty port range".into()));
        }
        if *range.ports.start() == 0 {
            return Err(bad("port 0 is not a client port".into()));
        }
        Ok(range)
    }

    /// The network's first address.
    pub fn network(&self) -> IpAddr {
        self.network
    }

    /// The prefix length.
    pub fn prefix(&self) -> u8 {
        self.prefix
    }

    /// The ports used.
    pub fn ports(&self) -> RangeInclusive<u16> {
        self.ports.clone()
    }

    /// Distinct (address, port) pairs before [`SourceRange::nth`] repeats
    /// (saturating at `u128::MAX` for the widest IPv6 ranges).
    pub fn len(&self) -> u128 {
        let ports = u128::from(self.ports.end() - self.ports.start()) + 1;
        1u128.checked_shl(u32::from(self.host_bits())).unwrap_or(u128::MAX).saturating_mul(ports)
    }

    /// Never empty: a range holds at least one address and one port.
    pub fn is_empty(&self) -> bool {
        false
    }

    fn host_bits(&self) -> u8 {
        (if self.network.is_ipv4() { 32 } else { 128 }) - self.prefix
    }

    /// The network's address number `index` (modulo the network's size), the
    /// network's own bits kept.
    fn address(&self, index: u128) -> IpAddr {
        let host_mask = 1u128.checked_shl(u32::from(self.host_bits())).map_or(u128::MAX, |n| n - 1);
        match self.network {
            IpAddr::V4(ip) => {
                let host = (index & host_mask) as u32;
                let net = u32::from(ip) & !(host_mask as u32);
                IpAddr::V4(Ipv4Addr::from(net | host))
            }
            IpAddr::V6(ip) => IpAddr::V6(Ipv6Addr::from((u128::from(ip) & !host_mask) | (index & host_mask))),
        }
    }

    /// The client address for connection `i` (from 0): the addresses in order
    /// from the network's first (the network address itself included: nothing
    /// is routed to it), then the next port for each round. Connections
    /// `i` and `i + len()` get the same; any two closer ones differ.
    pub fn nth(&self, i: u64) -> SocketAddr {
        let i = u128::from(i);
        let ports = u128::from(self.ports.end() - self.ports.start()) + 1;
        let round = match 1u128.checked_shl(u32::from(self.host_bits())) {
            Some(n) => i / n,
            None => 0,
        };
        let port = *self.ports.start() as u128 + round % ports;
        // `port` is at most ports.end(), a u16.
        SocketAddr::new(self.address(i), port as u16)
    }
}

impl fmt::Display for SourceRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (lo, hi) = (self.ports.start(), self.ports.end());
        match self.network {
            IpAddr::V4(ip) => write!(f, "{ip}/{}:", self.prefix)?,
            IpAddr::V6(ip) => write!(f, "[{ip}/{}]:", self.prefix)?,
        }
        if lo == hi { write!(f, "{lo}") } else { write!(f, "{lo}-{hi}") }
    }
}

impl FromStr for SourceRange {
    type Err = ProxyError;
    fn from_str(s: &str) -> Result<SourceRange, ProxyError> {
        let bad = |reason: &str| ProxyError::BadRange { input: s.to_string(), reason: reason.to_string() };
        // Split off the ports: after `]:` for a bracketed IPv6, after the only `:` for IPv4.
        let (net, ports) = if let Some(rest) = s.strip_prefix('[') {
            let (net, after) = rest.split_once(']').ok_or_else(|| bad("missing `]`"))?;
            match after {
                "" => (net, None),
                _ => (net, Some(after.strip_prefix(':').ok_or_else(|| bad("expected `:` after `]`"))?)),
            }
        } else if s.matches(':').count() == 1 {
            let (net, ports) = s.split_once(':').ok_or_else(|| bad("expected ADDR:PORT"))?;
            (net, Some(ports))
        } else {
            // No colon (IPv4 alone) or several (IPv6 alone, no port).
            (s, None)
        };
        let (addr, prefix) = match net.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (net, None),
        };
        let network: IpAddr =
            addr.parse().map_err(|_| bad("not an IP address (IPv6 with a port: [ADDR]:PORT)"))?;
        let bits: u8 = if network.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            Some(p) => p.parse::<u8>().map_err(|_| match network {
                IpAddr::V6(_) => bad("prefix is not a number (an IPv6 range with ports is [ADDR/LEN]:PORTS)"),
                IpAddr::V4(_) => bad("prefix is not a number"),
            })?,
            None => bits,
        };
        let ports = match ports {
            None => DEFAULT_PORTS,
            Some(p) => {
                let port =
                    |t: &str| t.parse::<u16>().map_err(|_| bad("port is not a number from 1 to 65535"));
                match p.split_once('-') {
                    Some((lo, hi)) => port(lo)?..=port(hi)?,
                    None => port(p)?..=port(p)?,
                }
            }
        };
        SourceRange::new(network, prefix, ports).map_err(|e| match e {
            ProxyError::BadRange { reason, .. } => ProxyError::BadRange { input: s.to_string(), reason },
            other => other,
        })
    }
}

/// Headers a receiver must refuse: it closes the connection without passing
/// on a byte. Each is a few dozen bytes; send it, shut down the write half,
/// and expect the receiver's close. Some are refusable on their bytes alone;
/// for the others ([`Malformed::needs_eof`]) a receiver can only wait for more
/// until the write half closes or its header timeout expires.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Malformed {
    /// No header at all: an HTTP request line.
    Absent,
    /// A v1 line cut in the middle of the source address, no CRLF.
    V1Truncated,
    /// A complete v1 line ended by a bare LF, application bytes after it.
    V1NoCrlf,
    /// `PROXY UNKNOWN` and padding: 120 bytes without CRLF, over the spec's 107.
    V1TooLong,
    /// A v2 header cut after 20 of its 28 bytes.
    V2Truncated,
    /// A v2 header whose signature's last-but-one byte is wrong.
    V2BadSignature,
    /// A v2 header with version 3 in its version/command byte.
    V2BadVersion,
    /// A v2 header whose length field says 65535 bytes follow; only its 12
    /// address bytes do.
    V2OversizedLength,
    /// A v2 `TCP4` header whose length, 4, cannot hold its 12 address bytes.
    V2ShortLength,
}

impl Malformed {
    /// Every kind, for a run that tries them all.
    pub const ALL: [Malformed; 9] = [
        Malformed::Absent,
        Malformed::V1Truncated,
        Malformed::V1NoCrlf,
        Malformed::V1TooLong,
        Malformed::V2Truncated,
        Malformed::V2BadSignature,
        Malformed::V2BadVersion,
        Malformed::V2OversizedLength,
        Malformed::V2ShortLength,
    ];

    /// Its name in reports and flags (`v2-bad-version`).
    pub fn name(self) -> &'static str {
        match self {
            Malformed::Absent => "absent",
            Malformed::V1Truncated => "v1-truncated",
            Malformed::V1NoCrlf => "v1-no-crlf",
            Malformed::V1TooLong => "v1-too-long",
            Malformed::V2Truncated => "v2-truncated",
            Malformed::V2BadSignature => "v2-bad-signature",
            Malformed::V2BadVersion => "v2-bad-version",
            Malformed::V2OversizedLength => "v2-oversized-length",
            Malformed::V2ShortLength => "v2-short-length",
        }
    }

    /// Whether a receiver can only tell by waiting: a cut header (or a length
    /// beyond a lenient receiver's limit) looks like one still arriving, so it
    /// is refused at the sender's EOF or at the receiver's header timeout.
    pub fn needs_eof(self) -> bool {
        matches!(self, Malformed::V1Truncated | Malformed::V2Truncated | Malformed::V2OversizedLength)
    }

    /// The bytes to send.
    pub fn bytes(self) -> Vec<u8> {
        malformed(self)
    }
}

impl FromStr for Malformed {
    type Err = String;
    fn from_str(s: &str) -> Result<Malformed, String> {
        Malformed::ALL.into_iter().find(|m| m.name() == s).ok_or_else(|| {
            let names: Vec<&str> = Malformed::ALL.iter().map(|m| m.name()).collect();
            format!("malformed PROXY header kind `{s}`: expected one of {}", names.join(", "))
        })
    }
}

/// The bytes of a malformed header of this kind (see [`Malformed`]).
pub fn malformed(kind: Malformed) -> Vec<u8> {
    let v2 = || {
        let src = SocketAddr::from(([192, 0, 2, 1], 56324));
        let dst = SocketAddr::from(([198, 51, 100, 1], 443));
        let mut bytes = V2_SIGNATURE.to_vec();
        bytes.extend([0x21, 0x11, 0, 12]);
        for ip in [src.ip(), dst.ip()] {
            if let IpAddr::V4(ip) = ip {
                bytes.extend(ip.octets());
            }
        }
        bytes.extend(src.port().to_be_bytes());
        bytes.extend(dst.port().to_be_bytes());
        bytes
    };
    match kind {
        Malformed::Absent => b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n".to_vec(),
        Malformed::V1Truncated => b"PROXY TCP4 192.0.2".to_vec(),
        Malformed::V1NoCrlf => b"PROXY TCP4 192.0.2.1 198.51.100.1 56324 443\nhello\n".to_vec(),
        Malformed::V1TooLong => {
            let mut line = b"PROXY UNKNOWN ".to_vec();
            line.resize(120, b'x');
            line.extend(b"\r\n");
            line
        }
        Malformed::V2Truncated => v2()[..20].to_vec(),
        Malformed::V2BadSignature => {
            let mut bytes = v2();
            bytes[10] = b'X';
            bytes
        }
        Malformed::V2BadVersion => {
            let mut bytes = v2();
            bytes[12] = 0x31;
            bytes
        }
        Malformed::V2OversizedLength => {
            let mut bytes = v2();
            bytes[14..16].copy_from_slice(&u16::MAX.to_be_bytes());
            bytes
        }
        Malformed::V2ShortLength => {
            let mut bytes = v2();
            bytes[14..16].copy_from_slice(&4u16.to_be_bytes());
            bytes
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ppp::{HeaderResult, PartialResult};

    fn sa(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    /// Parse with ppp, insisting that the header is exactly `bytes`.
    fn parse(bytes: &[u8]) -> HeaderResult<'_> {
        let parsed = HeaderResult::parse(bytes);
        match &parsed {
            HeaderResult::V1(Ok(h)) => assert_eq!(h.header.as_bytes(), bytes),
            HeaderResult::V2(Ok(h)) => assert_eq!(&h.header[..], bytes),
            other => panic!("ppp refused {bytes:?}: {other:?}"),
        }
        parsed
    }

    #[test]
    fn v1_text_is_byte_exact_with_the_spec_examples() {
        let h = Header::proxy(Version::V1, sa("192.168.0.1:56324"), sa("192.168.0.11:443"));
        assert_eq!(h.encode().unwrap(), b"PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n");
        let h = Header::proxy(Version::V1, sa("[ffff:f::1]:56324"), sa("[2001:db8::11]:443"));
        assert_eq!(h.encode().unwrap(), b"PROXY TCP6 ffff:f::1 2001:db8::11 56324 443\r\n");
        assert_eq!(Header::local(Version::V1).encode().unwrap(), b"PROXY UNKNOWN\r\n");
    }

    #[test]
    fn the_longest_v1_line_fits_in_107_bytes() {
        let a = "[ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe]:65535";
        let b = "[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff]:65535";
        let bytes = Header::proxy(Version::V1, sa(a), sa(b)).encode().unwrap();
        assert_eq!(bytes.len(), 104);
        assert!(bytes.len() <= V1_MAX_LEN);
        let _ = parse(&bytes);
    }

    #[test]
    fn v2_tcp4_is_byte_exact() {
        let h = Header::proxy(Version::V2, sa("192.168.0.1:56324"), sa("192.168.0.11:443"));
        let mut want = V2_SIGNATURE.to_vec();
        want.extend([0x21, 0x11, 0, 12, 192, 168, 0, 1, 192, 168, 0, 11, 0xdc, 0x04, 0x01, 0xbb]);
        assert_eq!(h.encode().unwrap(), want);
    }

    #[test]
    fn every_header_round_trips_through_ppp() {
        let pairs = [
            (sa("192.168.0.1:56324"), sa("192.168.0.11:443")),
            (sa("[2001:db8::1]:1"), sa("[::1]:65535")),
            // Mixed families: the IPv4 address goes IPv4-mapped.
            (sa("203.0.113.7:4000"), sa("[::1]:9999")),
        ];
        for (src, dst) in pairs {
            let (s6, d6) = same_family(src, dst);
            let v1 = Header::proxy(Version::V1, src, dst).encode().unwrap();
            match parse(&v1) {
                HeaderResult::V1(Ok(h)) => assert_eq!(h.addresses, ppp::v1::Addresses::from((s6, d6))),
                other => panic!("{other:?}"),
            }
            let tlvs = [Tlv::authority("example.com").unwrap(), Tlv::unique_id(&[7; 128]).unwrap()];
            let mut header = Header::proxy(Version::V2, src, dst);
            for tlv in &tlvs {
                header = header.with_tlv(tlv.clone());
            }
            let v2 = header.encode().unwrap();
            match parse(&v2) {
                HeaderResult::V2(Ok(h)) => {
                    assert_eq!(h.command, ppp::v2::Command::Proxy);
                    assert_eq!(h.protocol, ppp::v2::Protocol::Stream);
                    assert_eq!(h.addresses, ppp::v2::Addresses::from((s6, d6)));
                    let got: Vec<Tlv> = h
                        .tlvs()
                        .map(|t| t.map(|t| Tlv { kind: t.kind, value: t.value.to_vec() }).unwrap())
                        .collect();
                    assert_eq!(got, tlvs);
                }
                other => panic!("{other:?}"),
            }
        }
    }

    #[test]
    fn v2_local_has_no_addresses_and_may_carry_tlvs() {
        let bytes =
            Header::local(Version::V2).with_tlv(Tlv::new(Tlv::NOOP, [0; 3]).unwrap()).encode().unwrap();
        assert_eq!(&bytes[12..16], [0x20, 0x00, 0, 6]);
        match parse(&bytes) {
            HeaderResult::V2(Ok(h)) => {
                assert_eq!(h.command, ppp::v2::Command::Local);
                assert_eq!(h.addresses, ppp::v2::Addresses::Unspecified);
                // ppp counts an UNSPEC payload as address bytes, TLVs included,
                // so its TLVs are read here from after the fixed 16 bytes.
                assert_eq!(h.length(), 6);
                let tlvs: Vec<_> = ppp::v2::TypeLengthValues::from(&bytes[16..]).collect();
                assert_eq!(tlvs, [Ok(ppp::v2::TypeLengthValue::new(Tlv::NOOP, &[0; 3]))]);
            }
            other => panic!("{other:?}"),
        }
        match parse(b"PROXY UNKNOWN\r\n") {
            HeaderResult::V1(Ok(h)) => assert_eq!(h.addresses, ppp::v1::Addresses::Unknown),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn limits_are_errors_not_panics() {
        let (s, d) = (sa("10.0.0.1:1"), sa("10.0.0.2:2"));
        let v1 = Header::proxy(Version::V1, s, d).with_tlv(Tlv::authority("a").unwrap());
        assert_eq!(v1.encode(), Err(ProxyError::TlvInV1));
        assert!(matches!(Tlv::unique_id(&[0; 129]), Err(ProxyError::TlvTooLong { len: 129, max: 128, .. })));
        assert!(Tlv::new(1, vec![0; 65536]).is_err());
        // Each TLV fits, the sum does not: 12 + 2 * (3 + 40000) > 65535.
        let big = Tlv::new(Tlv::NOOP, vec![0; 40000]).unwrap();
        let h = Header::proxy(Version::V2, s, d).with_tlv(big.clone()).with_tlv(big);
        assert_eq!(h.encode(), Err(ProxyError::TooLong { len: 80018 }));
        // The largest that fits is accepted: 12 + 3 + 65520 = 65535.
        let h = Header::proxy(Version::V2, s, d).with_tlv(Tlv::new(Tlv::NOOP, vec![0; 65520]).unwrap());
        assert_eq!(h.encode().unwrap().len(), V2_FIXED_LEN + V2_MAX_PAYLOAD);
    }

    #[test]
    fn display_names_the_version_and_both_ends() {
        let h = Header::proxy(Version::V2, sa("203.0.113.7:4000"), sa("127.0.0.1:9999"));
        assert_eq!(h.to_string(), "PROXY v2 203.0.113.7:4000 -> 127.0.0.1:9999");
        let h = Header::local(Version::V2).with_tlv(Tlv::authority("x").unwrap());
        assert_eq!(h.to_string(), "PROXY v2 LOCAL (1 TLV)");
        assert_eq!(Header::local(Version::V1).to_string(), "PROXY v1 UNKNOWN");
        assert_eq!("v2".parse::<Version>(), Ok(Version::V2));
        assert!("v3".parse::<Version>().is_err());
    }

    #[test]
    fn source_ranges_parse_in_every_form_and_print_back() {
        for (text, shown, len) in [
            ("10.0.0.0/16:1024-65535", "10.0.0.0/16:1024-65535", 65536 * 64512),
            ("203.0.113.7:4000", "203.0.113.7/32:4000", 1),
            ("10.0.0.0/8", "10.0.0.0/8:1024-65535", (1 << 24) * 64512),
            ("[2001:db8::/64]:40000-40999", "[2001:db8::/64]:40000-40999", (1u128 << 64) * 1000),
            ("[2001:db8::7]:443", "[2001:db8::7/128]:443", 1),
            ("2001:db8::7", "[2001:db8::7/128]:1024-65535", 64512),
            ("[::/0]", "[::/0]:1024-65535", u128::MAX),
        ] {
            let r: SourceRange = text.parse().unwrap_or_else(|e| panic!("{text}: {e}"));
            assert_eq!(r.to_string(), shown, "{text}");
            assert_eq!(r.len(), len, "{text}");
            assert_eq!(shown.parse::<SourceRange>().unwrap(), r);
        }
    }

    #[test]
    fn bad_source_ranges_say_why() {
        for (text, reason) in [
            ("10.0.0.1/16", "host bits set: the network is 10.0.0.0/16"),
            ("10.0.0.0/33", "prefix /33 is over 32 bits"),
            ("10.0.0.0:2000-1000", "empty port range"),
            ("10.0.0.0:0", "port 0 is not a client port"),
            ("10.0.0.0:65536", "port is not a number from 1 to 65535"),
            ("2001:db8::/64:80", "prefix is not a number (an IPv6 range with ports is [ADDR/LEN]:PORTS)"),
            ("[2001:db8::1", "missing `]`"),
            ("example.com:80", "not an IP address"),
        ] {
            let err = text.parse::<SourceRange>().unwrap_err().to_string();
            assert!(err.starts_with(&format!("PROXY source range `{text}`: ")), "{err}");
            assert!(err.contains(reason), "{text}: {err}");
        }
    }

    #[test]
    fn nth_goes_through_addresses_then_ports_and_repeats_only_after_len() {
        let r: SourceRange = "10.0.0.0/30:1000-1002".parse().unwrap();
        let got: Vec<String> = (0..13).map(|i| r.nth(i).to_string()).collect();
        assert_eq!(
            &got[..5],
            ["10.0.0.0:1000", "10.0.0.1:1000", "10.0.0.2:1000", "10.0.0.3:1000", "10.0.0.0:1001"]
        );
        assert_eq!(r.len(), 12);
        let distinct: std::collections::HashSet<_> = got[..12].iter().collect();
        assert_eq!(distinct.len(), 12);
        assert_eq!(got[12], got[0]);
        // Deterministic: the same range gives the same address for the same i.
        let again: SourceRange = "10.0.0.0/30:1000-1002".parse().unwrap();
        assert_eq!(again.nth(7), r.nth(7));
        // One address: ports in turn.
        let one: SourceRange = "203.0.113.7:4000-4001".parse().unwrap();
        assert_eq!(
            [one.nth(0), one.nth(1), one.nth(2)],
            [sa("203.0.113.7:4000"), sa("203.0.113.7:4001"), sa("203.0.113.7:4000")]
        );
        // IPv6, huge networks: the index is the host part; u64::MAX does not overflow.
        let v6: SourceRange = "[2001:db8::/64]:5000".parse().unwrap();
        assert_eq!(v6.nth(0x1_0001), sa("[2001:db8::1:1]:5000"));
        assert_eq!(v6.nth(u64::MAX), sa("[2001:db8::ffff:ffff:ffff:ffff]:5000"));
        let all: SourceRange = "[::/0]".parse().unwrap();
        assert_eq!(all.nth(u64::MAX), sa("[::ffff:ffff:ffff:ffff]:1024"));
        let v4all: SourceRange = "0.0.0.0/0:9".parse().unwrap();
        assert_eq!(v4all.nth(u64::from(u32::MAX) + 1), sa("0.0.0.0:9"));
    }

    #[test]
    fn ppp_refuses_every_malformed_header_or_waits_for_more_on_the_cut_ones() {
        for kind in Malformed::ALL {
            let bytes = kind.bytes();
            assert!(bytes.len() <= 128, "{}", kind.name());
            let parsed = HeaderResult::parse(&bytes);
            let ok = matches!(parsed, HeaderResult::V1(Ok(_)) | HeaderResult::V2(Ok(_)));
            assert!(!ok, "{}: ppp accepted {parsed:?}", kind.name());
            assert_eq!(parsed.is_incomplete(), kind.needs_eof(), "{}: {parsed:?}", kind.name());
            assert_eq!(kind.name().parse::<Malformed>(), Ok(kind));
        }
        assert!("v9".parse::<Malformed>().unwrap_err().contains("v2-bad-version"));
    }

    #[test]
    fn malformed_headers_differ_from_a_valid_one_only_where_named() {
        let valid =
            Header::proxy(Version::V2, sa("192.0.2.1:56324"), sa("198.51.100.1:443")).encode().unwrap();
        let differing = |m: Malformed| {
            let b = m.bytes();
            (0..valid.len().min(b.len())).filter(|&i| valid[i] != b[i]).collect::<Vec<_>>()
        };
        assert_eq!(differing(Malformed::V2BadSignature), [10]);
        assert_eq!(differing(Malformed::V2BadVersion), [12]);
        assert_eq!(differing(Malformed::V2OversizedLength), [14, 15]);
        assert_eq!(differing(Malformed::V2ShortLength), [15]);
        assert_eq!(Malformed::V2Truncated.bytes(), valid[..20]);
        let v1 = Header::proxy(Version::V1, sa("192.0.2.1:56324"), sa("198.51.100.1:443")).encode().unwrap();
        assert!(v1.starts_with(&Malformed::V1Truncated.bytes()));
        assert_eq!(Malformed::V1NoCrlf.bytes()[..v1.len() - 2], v1[..v1.len() - 2]);
        let too_long = Malformed::V1TooLong.bytes();
        assert!(too_long.len() > V1_MAX_LEN && !too_long[..V1_MAX_LEN].windows(2).any(|w| w == b"\r\n"));
    }
}
