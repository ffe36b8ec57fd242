//! Fuzz the PROXY header writer and the `--proxy-source` range parser: no panic
//! on any input; every header is well formed (v1: one CRLF-ended line of at most
//! 107 bytes; v2: the signature and a length field that matches); every range
//! that parses prints back to itself and gives addresses inside it.
#![no_main]
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use libfuzzer_sys::fuzz_target;
use tcpkit::net::proxy::{Header, SourceRange, Tlv, V1_MAX_LEN, V2_FIXED_LEN, V2_SIGNATURE, Version};

/// An address of the family `bit` picks, from the next 16 bytes.
fn addr(bit: bool, bytes: &[u8; 18]) -> SocketAddr {
    let port = u16::from_be_bytes([bytes[16], bytes[17]]);
    let ip = if bit {
        IpAddr::V6(Ipv6Addr::from(<[u8; 16]>::try_from(&bytes[..16]).unwrap_or_default()))
    } else {
        IpAddr::V4(Ipv4Addr::new(bytes[0], bytes[1], bytes[2], bytes[3]))
    };
    SocketAddr::new(ip, port)
}

fuzz_target!(|input: &[u8]| {
    // The whole input as a range, first.
    if let Ok(text) = std::str::from_utf8(input) {
        if let Ok(range) = text.parse::<SourceRange>() {
            let shown = range.to_string();
            assert_eq!(shown.parse::<SourceRange>().as_ref(), Ok(&range), "{text} -> {shown}");
            for i in [0, 1, 255, u64::MAX] {
                let a = range.nth(i);
                assert!(range.ports().contains(&a.port()), "{shown}: {a}");
                assert_eq!(a.is_ipv4(), range.network().is_ipv4());
            }
        }
    }
    // Then as a header: flags, two addresses, TLVs from the rest.
    let Some((&[flags], rest)) = input.split_first_chunk::<1>() else { return };
    let Some((src, rest)) = rest.split_first_chunk::<18>() else { return };
    let Some((dst, mut rest)) = rest.split_first_chunk::<18>() else { return };
    let version = if flags & 1 == 0 { Version::V1 } else { Version::V2 };
    let mut header = if flags & 2 == 0 {
        Header::proxy(version, addr(flags & 4 != 0, src), addr(flags & 8 != 0, dst))
    } else {
        Header::local(version)
    };
    while let Some((&[kind, len], tail)) = rest.split_first_chunk::<2>() {
        let len = usize::from(len).min(tail.len());
        if let Ok(tlv) = Tlv::new(kind, &tail[..len]) {
            header = header.with_tlv(tlv);
        }
        rest = &tail[len..];
    }
    let Ok(bytes) = header.encode() else {
        assert!(version == Version::V1 && !header.tlvs.is_empty(), "only TLVs in v1 fail here");
        return;
    };
    match version {
        Version::V1 => {
            assert!(bytes.len() <= V1_MAX_LEN && bytes.starts_with(b"PROXY ") && bytes.ends_with(b"\r\n"));
            assert_eq!(bytes.iter().filter(|&&b| b == b'\n').count(), 1);
        }
        Version::V2 => {
            assert_eq!(&bytes[..12], V2_SIGNATURE);
            assert_eq!(usize::from(u16::from_be_bytes([bytes[14], bytes[15]])), bytes.len() - V2_FIXED_LEN);
        }
    }
});
