//! Pure helpers for `-O` and `-C -`: the local file name a URL gives, and the byte ranges
//! of `Range` / `Content-Range`.
//!
//! For: turning untrusted URL paths and header values into safe names and checked
//! numbers. Not for: touching the file system (the caller creates and renames files).

/// The longest file name `-O` produces, in bytes: the usual file-system limit (NAME_MAX).
pub const MAX_FILE_NAME: usize = 255;

/// The file name `-O` saves `url` under: its last path segment, percent-decoded, made
/// safe so it can only name a file in the current directory. `/`, `\`, NUL and other
/// control characters become `_`, leading dots are dropped (so `..` and `.bashrc` cannot
/// be written), the name is cut to [`MAX_FILE_NAME`] bytes, and an empty result is
/// `index.html`. The query and fragment are not part of the name.
pub fn output_name_from_url(url: &url::Url) -> String {
    let segment = url.path_segments().and_then(|mut segments| segments.next_back()).unwrap_or("");
    let decoded = percent_decode(segment.as_bytes());
    let text = String::from_utf8_lossy(&decoded);
    let cleaned: String =
        text.chars().map(|c| if c == '/' || c == '\\' || c.is_control() { '_' } else { c }).collect();
    let trimmed = cleaned.trim_start_matches('.');
    let mut end = trimmed.len().min(MAX_FILE_NAME);
    while !trimmed.is_char_boundary(end) {
        end -= 1;
    }
    match &trimmed[..end] {
        "" => "index.html".to_string(),
        name => name.to_string(),
    }
}

/// `%XX` sequences decoded to bytes; a `%` not followed by two hex digits stays as is.
fn percent_decode(s: &[u8]) -> Vec<u8> {
    let hex = |b: u8| (b as char).to_digit(16);
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        let pair = match (s[i], s.get(i + 1).and_then(|&b| hex(b)), s.get(i + 2).and_then(|&b| hex(b))) {
            (b'%', Some(hi), Some(lo)) => Some((hi * 16 + lo) as u8),
            _ => None,
        };
        match pair {
            Some(byte) => {
                out.push(byte);
                i += 3;
            }
            None => {
                out.push(s[i]);
                i += 1;
            }
        }
    }
    out
}

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

    fn name(url: &str) -> String {
        output_name_from_url(&url::Url::parse(url).unwrap())
    }

    #[test]
    fn output_name_is_the_last_path_segment_decoded() {
        assert_eq!(name("http://h/dir/file.tar.gz"), "file.tar.gz");
        assert_eq!(name("http://h/dir/file.txt?x=1#frag"), "file.txt");
        assert_eq!(name("http://h/a%20b%C3%A9.txt"), "a b\u{e9}.txt");
        assert_eq!(name("http://h/100%"), "100%");
        assert_eq!(name("http://h/%zz"), "%zz");
    }

    #[test]
    fn output_name_is_index_html_when_the_path_has_no_last_segment() {
        for url in
            ["http://h", "http://h/", "http://h/dir/", "http://h/?q=1", "http://h/..", "http://h/%2e%2e"]
        {
            assert_eq!(name(url), "index.html", "{url}");
        }
    }

    #[test]
    fn output_name_can_never_leave_the_current_directory() {
        assert_eq!(name("http://h/a%2F..%2F..%2Fetc%2Fpasswd"), "a_.._.._etc_passwd");
        assert_eq!(name("http://h/%2F%2Fetc"), "__etc");
        assert_eq!(name("http://h/..%2F..%2Fx"), "_.._x");
        assert_eq!(name("http://h/a%5Cb"), "a_b");
        assert_eq!(name("http://h/.bashrc"), "bashrc");
        assert_eq!(name("http://h/...%2E"), "index.html");
        assert_eq!(name("http://h/nul%00byte%0Aline"), "nul_byte_line");
        for url in ["http://h/%2e%2e%2f%2e%2e%2fx", "http://h/a/..%2f..%2f..", "http://h/%00"] {
            let n = name(url);
            assert!(
                !n.contains('/') && !n.contains('\0') && !n.starts_with('.') && !n.is_empty(),
                "{url}: {n}"
            );
        }
    }

    #[test]
    fn output_name_is_cut_to_the_file_system_limit_on_a_char_boundary() {
        let long = "\u{e9}".repeat(200); // 400 bytes
        let n = name(&format!("http://h/{long}"));
        assert_eq!(n.len(), 254);
        assert!(n.chars().all(|c| c == '\u{e9}'));
    }

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
