//! `-C -`: the byte ranges of `Range` and `Content-Range`.
//!
//! For: turning untrusted header values into checked numbers. Not for: deciding what
//! to do with the answer (the transfer does) or touching files.

/// The `Range` header value asking for everything from byte `offset` on: `bytes=N-`.
pub fn range_from(offset: u64) -> String {
    format!("bytes={offset}-")
}

/// A satisfied `Content-Range` (RFC 9110 §14.4): bytes `start..=end` of a representation
/// of `total` bytes (`None` when the server wrote `*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ContentRange {
    /// First byte position, inclusive.
    pub start: u64,
    /// Last byte position, inclusive (`>= start`).
    pub end: u64,
    /// The complete length, when known (`> end`).
    pub total: Option<u64>,
}

impl ContentRange {
    /// The number of bytes in the range.
    pub fn len(&self) -> u64 {
        self.end - self.start + 1
    }

    /// Always false: a satisfied range holds at least one byte.
    pub fn is_empty(&self) -> bool {
        false
    }
}

/// Parse a satisfied `Content-Range` value, `bytes 100-199/1000` or `bytes 100-199/*`.
/// `None` for anything else: another unit, positions out of order or past the total,
/// numbers over 64 bits, and the unsatisfied form `bytes */1000` (see
/// [`parse_unsatisfied_range`]).
pub fn parse_content_range(v: &[u8]) -> Option<ContentRange> {
    let rest = strip_bytes_unit(v)?;
    let (range, total) = split_once(rest, b'/')?;
    let (start, end) = split_once(range, b'-')?;
    let (start, end) = (parse_u64(start)?, parse_u64(end)?);
    let total = match total {
        b"*" => None,
        digits => Some(parse_u64(digits)?),
    };
    let in_order = start <= end && total.is_none_or(|t| end < t);
    in_order.then_some(ContentRange { start, end, total })
}

/// Parse the unsatisfied form `bytes */1000` sent with a 416: the complete length.
pub fn parse_unsatisfied_range(v: &[u8]) -> Option<u64> {
    let rest = strip_bytes_unit(v)?;
    parse_u64(rest.strip_prefix(b"*/")?)
}

/// The value after `bytes` and its space (unit case-insensitive, surrounding spaces ok).
fn strip_bytes_unit(v: &[u8]) -> Option<&[u8]> {
    let v = v.trim_ascii();
    let (unit, rest) = v.split_at_checked(5)?;
    let rest = rest.strip_prefix(b" ")?;
    unit.eq_ignore_ascii_case(b"bytes").then_some(rest.trim_ascii_start())
}

fn split_once(v: &[u8], sep: u8) -> Option<(&[u8], &[u8])> {
    let at = v.iter().position(|&b| b == sep)?;
    Some((&v[..at], &v[at + 1..]))
}

/// `1*DIGIT` fitting in a u64.
fn parse_u64(s: &[u8]) -> Option<u64> {
    if s.is_empty() || !s.iter().all(u8::is_ascii_digit) {
        return None;
    }
    s.iter().try_fold(0u64, |acc, &d| acc.checked_mul(10)?.checked_add(u64::from(d - b'0')))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn range_header_asks_for_the_rest_from_an_offset() {
        assert_eq!(range_from(0), "bytes=0-");
        assert_eq!(range_from(1234), "bytes=1234-");
    }

    #[test]
    fn content_range_parses_satisfied_ranges() {
        let cr = |s: &str| parse_content_range(s.as_bytes());
        assert_eq!(cr("bytes 100-199/1000"), Some(ContentRange { start: 100, end: 199, total: Some(1000) }));
        assert_eq!(cr("bytes 0-0/1").map(|c| c.len()), Some(1));
        assert_eq!(cr("Bytes 5-9/*"), Some(ContentRange { start: 5, end: 9, total: None }));
        assert_eq!(cr(" bytes 5-9/10 "), Some(ContentRange { start: 5, end: 9, total: Some(10) }));
        let max = u64::MAX;
        assert_eq!(cr(&format!("bytes 0-{}/{max}", max - 1)).map(|c| c.end), Some(max - 1));
    }

    #[test]
    fn content_range_refuses_anything_inconsistent() {
        for bad in [
            "",
            "bytes",
            "bytes ",
            "items 0-1/2",
            "bytes=0-1/2",
            "bytes 0-1",
            "bytes 1-0/5",
            "bytes 0-5/5",
            "bytes -1-2/5",
            "bytes 0-/5",
            "bytes a-b/c",
            "bytes 0-1/x",
            "bytes 0-18446744073709551616/*",
            "bytes */1000",
        ] {
            assert_eq!(parse_content_range(bad.as_bytes()), None, "{bad:?}");
        }
    }

    #[test]
    fn unsatisfied_range_gives_the_complete_length() {
        assert_eq!(parse_unsatisfied_range(b"bytes */1000"), Some(1000));
        assert_eq!(parse_unsatisfied_range(b"bytes */0"), Some(0));
        for bad in [&b"bytes */"[..], b"bytes 0-1/2", b"bytes */*", b"*/10"] {
            assert_eq!(parse_unsatisfied_range(bad), None, "{bad:?}");
        }
    }
}
