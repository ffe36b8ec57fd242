//! Response heads: status line and header fields, parsed by httparse, and the body
//! framing rules of RFC 9112 §6.3 that follow from them.
//!
//! For: turning the bytes at the start of a response into a [`ResponseHead`] (or "need
//! more bytes", or an error naming the byte), and choosing the [`BodyKind`]. Not for:
//! reading sockets, skipping interim 1xx responses (the caller loops), redirects.
use super::Http1Error;
use super::body::BodyKind;

/// Header slots tried first; a head with more header lines is parsed again with one
/// slot per line (bounded by `max_head`, since each line takes at least two bytes).
const FIRST_TRY_HEADERS: usize = 64;

/// A parsed response head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResponseHead {
    /// The minor version: 0 for HTTP/1.0, 1 for HTTP/1.1.
    pub version: u8,
    /// The status code, three digits.
    pub status: u16,
    /// The reason phrase (empty when absent or not UTF-8).
    pub reason: String,
    /// Header fields in the order received, names spelled as received.
    pub headers: Vec<(String, Vec<u8>)>,
}

impl ResponseHead {
    /// The value of the first header named `name` (ASCII case-insensitive).
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_slice())
    }

    /// The values of every header named `name` (ASCII case-insensitive), in order.
    pub fn headers_named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a [u8]> {
        self.headers.iter().filter(move |(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_slice())
    }

    /// Whether this is an interim (1xx) response, to be skipped by the caller.
    pub fn is_interim(&self) -> bool {
        (100..200).contains(&self.status)
    }
}

fn config() -> httparse::ParserConfig {
    let mut config = httparse::ParserConfig::default();
    // Leniencies curl and browsers also grant servers; none of them changes framing.
    config.allow_spaces_after_header_name_in_responses(true);
    config.allow_multiple_spaces_in_response_status_delimiters(true);
    // Folded header lines are unfolded (see `unfold`), not refused: RFC 9112 §5.2.
    config.allow_obsolete_multiline_headers_in_responses(true);
    config
}

enum Parsed {
    Partial,
    Complete(ResponseHead, usize),
}

fn try_parse(config: &httparse::ParserConfig, buf: &[u8], slots: usize) -> Result<Parsed, httparse::Error> {
    let mut headers = vec![httparse::EMPTY_HEADER; slots];
    let mut resp = httparse::Response::new(&mut headers);
    match config.parse_response(&mut resp, buf)? {
        httparse::Status::Partial => Ok(Parsed::Partial),
        httparse::Status::Complete(n) => {
            let head = ResponseHead {
                version: resp.version.unwrap_or(1),
                status: resp.code.unwrap_or(0),
                reason: resp.reason.unwrap_or("").to_string(),
                headers: resp.headers.iter().map(|h| (h.name.to_string(), unfold(h.value))).collect(),
            };
            Ok(Parsed::Complete(head, n))
        }
    }
}

/// Parse with enough header slots for any head that fits in `buf`.
fn parse_sized(config: &httparse::ParserConfig, buf: &[u8]) -> Result<Parsed, httparse::Error> {
    match try_parse(config, buf, FIRST_TRY_HEADERS) {
        Err(httparse::Error::TooManyHeaders) => {
            let lines = buf.iter().filter(|&&b| b == b'\n').count();
            try_parse(config, buf, lines + 1)
        }
        other => other,
    }
}

/// Parse a response head from the start of `buf`.
///
/// `Ok(None)`: the head is not complete yet, read more and call again with the whole
/// buffer. `Ok(Some((head, n)))`: `n` bytes (the blank line included) made the head; the
/// body starts at `buf[n]`. Errors: [`Http1Error::InvalidHead`] with the offset of the
/// first byte that cannot be part of a valid head, or [`Http1Error::HeadTooLarge`] when
/// the first `max_head` bytes hold no complete head. Only the first `max_head` bytes are
/// ever looked at, so the result does not depend on how the bytes were split.
pub fn parse_response_head(buf: &[u8], max_head: usize) -> Result<Option<(ResponseHead, usize)>, Http1Error> {
    let window = &buf[..buf.len().min(max_head)];
    let config = config();
    match parse_sized(&config, window) {
        Ok(Parsed::Complete(head, n)) => {
            check_bounds(&window[..n], head.headers.len()).map(|()| Some((head, n)))
        }
        Ok(Parsed::Partial) if buf.len() >= max_head => Err(Http1Error::HeadTooLarge { limit: max_head }),
        Ok(Parsed::Partial) => Ok(None),
        // Not `HTTP/1.0` or `HTTP/1.1`: another version, or no status line at all (an
        // HTTP/0.9 body), which curl also refuses as an unsupported protocol.
        Err(httparse::Error::Version) => {
            Err(Http1Error::UnsupportedVersion { offset: error_offset(&config, window) })
        }
        Err(e) => {
            Err(Http1Error::InvalidHead { offset: error_offset(&config, window), reason: e.to_string() })
        }
    }
}

/// Most header fields in one head (curl's bound too): more is refused, not stored.
pub const MAX_HEADER_FIELDS: usize = 5000;

/// Longest header line in bytes, its CRLF included (curl's bound: 100 KiB).
pub const MAX_HEADER_LINE: usize = 100 * 1024;

/// A complete head of `fields` fields in `raw`: within [`MAX_HEADER_FIELDS`] and
/// [`MAX_HEADER_LINE`]?
fn check_bounds(raw: &[u8], fields: usize) -> Result<(), Http1Error> {
    if fields > MAX_HEADER_FIELDS {
        return Err(Http1Error::InvalidHead {
            offset: raw.len(),
            reason: format!("more than {MAX_HEADER_FIELDS} header fields"),
        });
    }
    let mut start = 0;
    for line in raw.split_inclusive(|&b| b == b'\n') {
        if line.len() > MAX_HEADER_LINE {
            return Err(Http1Error::InvalidHead {
                offset: start + MAX_HEADER_LINE,
                reason: format!("header line longer than {MAX_HEADER_LINE} bytes"),
            });
        }
        start += line.len();
    }
    Ok(())
}

/// A header value with its obs-folds (CRLF then spaces or tabs, RFC 9112 §5.2)
/// each replaced by one space, as a client must.
fn unfold(value: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(value.len());
    let mut i = 0;
    while i < value.len() {
        if matches!(value[i], b'\r' | b'\n') {
            while i < value.len() && matches!(value[i], b'\r' | b'\n' | b' ' | b'\t') {
                i += 1;
            }
            out.push(b' ');
        } else {
            out.push(value[i]);
            i += 1;
        }
    }
    out
}

/// Heads up to this size are parsed on every call, so errors in the status line and
/// first headers show at once.
const EAGER_PARSE: usize = 1024;

/// [`parse_response_head`] for a buffer that grows as bytes arrive, in amortized linear
/// time: a stateless parse on every read costs O(n²) when a server trickles a large
/// head a byte at a time. This one parses only when a blank line has appeared, when the
/// head is small (at most 1 KiB), at the limit, or when the buffer has doubled since the
/// last parse; so an invalid head is reported by the time twice its bad byte's offset
/// has arrived, and the result is always one [`parse_response_head`] would give.
#[derive(Debug, Clone)]
pub struct HeadParser {
    /// Bound on the head in bytes (`--max-head`).
    max_head: usize,
    /// Bytes already searched for the blank line.
    scanned: usize,
    /// Buffer length at the last full parse.
    parsed_len: usize,
    /// Full parses so far (to test the amortized bound).
    parses: usize,
}

impl HeadParser {
    /// A parser for heads of at most `max_head` bytes.
    pub fn new(max_head: usize) -> Self {
        HeadParser { max_head, scanned: 0, parsed_len: 0, parses: 0 }
    }

    /// Parse the head at the start of `buf`, which holds everything received since the
    /// previous head (or the start). Same results as [`parse_response_head`], except
    /// that `Ok(None)` may come a little longer for an invalid head. After a head (or an
    /// error) the parser starts afresh for the next one.
    pub fn parse(&mut self, buf: &[u8]) -> Result<Option<(ResponseHead, usize)>, Http1Error> {
        let window = &buf[..buf.len().min(self.max_head)];
        if window.len() < self.scanned {
            self.reset();
        }
        let ended = has_blank_line(window, self.scanned.saturating_sub(2));
        self.scanned = window.len();
        let due = ended
            || window.len() <= EAGER_PARSE
            || buf.len() >= self.max_head
            || window.len() >= 2 * self.parsed_len;
        if !due {
            return Ok(None);
        }
        self.parsed_len = window.len();
        self.parses += 1;
        let result = parse_response_head(buf, self.max_head);
        if !matches!(result, Ok(None)) {
            self.reset();
        }
        result
    }

    /// Forget the bytes seen: the next call starts a new head.
    pub fn reset(&mut self) {
        (self.scanned, self.parsed_len) = (0, 0);
    }
}

/// Whether `buf[from..]` holds the LF LF or LF CR LF that ends a head.
fn has_blank_line(buf: &[u8], from: usize) -> bool {
    (from..buf.len())
        .any(|i| buf[i] == b'\n' && matches!(buf.get(i + 1..), Some([b'\n', ..] | [b'\r', b'\n', ..])))
}

/// The offset of the byte that made `window` invalid: the shortest failing prefix ends
/// with it. httparse fails as soon as it sees a bad byte, so failure is monotonic in the
/// prefix length and a binary search finds it in O(n log n) time, on the error path only.
fn error_offset(config: &httparse::ParserConfig, window: &[u8]) -> usize {
    let (mut ok, mut bad) = (0, window.len());
    while bad - ok > 1 {
        let mid = ok + (bad - ok) / 2;
        if parse_sized(config, &window[..mid]).is_err() {
            bad = mid;
        } else {
            ok = mid;
        }
    }
    bad.saturating_sub(1)
}

/// How the body of the response to `request_method` is framed (RFC 9112 §6.3).
///
/// In order: a response to HEAD, any 1xx, 204 and 304 (and a 2xx to CONNECT) has no
/// body. Transfer-Encoding whose final coding is `chunked` gives [`BodyKind::Chunked`]
/// and overrides any Content-Length (RFC 9112 §6.3 rule 3); other transfer codings are
/// refused, since we do not undo them; on an HTTP/1.0 response Transfer-Encoding means
/// faulty framing and the body is read until close (§6.1). Then Content-Length: every
/// value of every such header must be the same decimal number, else an error. Without
/// either, the body runs until the server closes the connection.
pub fn body_kind(request_method: &str, head: &ResponseHead) -> Result<BodyKind, Http1Error> {
    let status = head.status;
    if request_method == "HEAD"
        || (100..200).contains(&status)
        || status == 204
        || status == 304
        || (request_method == "CONNECT" && (200..300).contains(&status))
    {
        return Ok(BodyKind::Empty);
    }

    let codings: Vec<&[u8]> =
        head.headers_named("transfer-encoding").flat_map(list_items).filter(|c| !c.is_empty()).collect();
    if !codings.is_empty() {
        if head.version == 0 {
            return Ok(BodyKind::UntilClose);
        }
        let chunked = |c: &&[u8]| c.eq_ignore_ascii_case(b"chunked");
        let identity = |c: &&[u8]| c.eq_ignore_ascii_case(b"identity");
        let significant: Vec<&[u8]> = codings.iter().copied().filter(|c| !identity(c)).collect();
        // chunked must be the last coding applied, once; `identity` may come before it
        // (a no-op), but after it (`chunked, identity`) it is a coding we cannot undo,
        // as curl says.
        let chunked_last = codings.last().is_some_and(chunked);
        if significant.len() == 1 && chunked_last {
            return Ok(BodyKind::Chunked);
        }
        if !significant.is_empty() || codings.iter().any(chunked) {
            let all: Vec<String> = codings.iter().map(|c| String::from_utf8_lossy(c).into_owned()).collect();
            return Err(Http1Error::UnsupportedTransferEncoding { coding: all.join(", ") });
        }
    }

    let mut length: Option<u64> = None;
    for value in head.headers_named("content-length").flat_map(list_items) {
        let n = parse_decimal(value).ok_or_else(|| Http1Error::InvalidContentLength {
            value: String::from_utf8_lossy(value).into_owned(),
        })?;
        match length {
            Some(first) if first != n => {
                return Err(Http1Error::ConflictingContentLength { first, second: n });
            }
            _ => length = Some(n),
        }
    }
    Ok(length.map_or(BodyKind::UntilClose, BodyKind::Length))
}

/// The items of a comma-separated header value, each trimmed of spaces and tabs.
/// An empty value yields one empty item (so `Content-Length:` is reported as invalid).
fn list_items(value: &[u8]) -> impl Iterator<Item = &[u8]> {
    value.split(|&b| b == b',').map(|item| item.trim_ascii())
}

/// `1*DIGIT` fitting in a u64; no sign, no spaces inside.
fn parse_decimal(s: &[u8]) -> Option<u64> {
    if s.is_empty() || !s.iter().all(u8::is_ascii_digit) {
        return None;
    }
    s.iter().try_fold(0u64, |acc, &d| acc.checked_mul(10)?.checked_add(u64::from(d - b'0')))
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAX: usize = 256 * 1024;

    fn parse(buf: &[u8]) -> Result<Option<(ResponseHead, usize)>, Http1Error> {
        parse_response_head(buf, MAX)
    }

    /// Feeding the head in two pieces at every split point, or one byte at a time, must
    /// give `Ok(None)` until it is complete and then the same result as the whole buffer.
    fn assert_split_invariant(
        buf: &[u8],
        max_head: usize,
    ) -> Result<Option<(ResponseHead, usize)>, Http1Error> {
        let whole = parse_response_head(buf, max_head);
        let mut seen_final = false;
        for k in 0..=buf.len() {
            match parse_response_head(&buf[..k], max_head) {
                Ok(None) => assert!(!seen_final, "prefix {k} went back to needing more bytes"),
                other => {
                    assert_eq!(other, whole, "prefix of {k} bytes of {:?}", String::from_utf8_lossy(buf));
                    seen_final = true;
                }
            }
        }
        whole
    }

    fn head(text: &str) -> ResponseHead {
        let (head, n) = parse(text.as_bytes()).unwrap().unwrap();
        assert_eq!(n, text.len());
        head
    }

    #[test]
    fn complete_head_gives_status_reason_headers_and_length_at_every_split() {
        let buf = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nX-Dup: a\r\nx-dup: b\r\n\r\nbody bytes";
        let (head, n) = assert_split_invariant(buf, MAX).unwrap().unwrap();
        assert_eq!(n, buf.len() - "body bytes".len());
        assert_eq!((head.version, head.status, head.reason.as_str()), (1, 200, "OK"));
        assert_eq!(head.headers[0], ("Content-Type".to_string(), b"text/plain".to_vec()));
        assert_eq!(head.header("content-type"), Some(&b"text/plain"[..]));
        assert_eq!(head.header("X-DUP"), Some(&b"a"[..]));
        assert_eq!(head.headers_named("x-dup").collect::<Vec<_>>(), vec![&b"a"[..], &b"b"[..]]);
        assert_eq!(head.header("missing"), None);
    }

    #[test]
    fn http10_head_without_reason_and_bare_lf_lines_parse() {
        let h = head("HTTP/1.0 404\r\n\r\n");
        assert_eq!((h.version, h.status, h.reason.as_str()), (0, 404, ""));
        let h = head("HTTP/1.1 200 OK\nA: b\n\n");
        assert_eq!(h.header("a"), Some(&b"b"[..]));
    }

    #[test]
    fn header_value_keeps_non_utf8_bytes_and_is_trimmed() {
        let h = head("HTTP/1.1 200 OK\r\nX-Bin:  caf\u{e9} \r\n\r\n");
        assert_eq!(h.header("x-bin"), Some("caf\u{e9}".as_bytes()));
        let (h, _) = parse(b"HTTP/1.1 200 OK\r\nX-Raw: \xff\xfe\r\n\r\n").unwrap().unwrap();
        assert_eq!(h.header("x-raw"), Some(&b"\xff\xfe"[..]));
    }

    #[test]
    fn interim_responses_parse_on_their_own_leaving_the_final_one() {
        let buf = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </s.css>\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";
        let mut rest = &buf[..];
        let mut statuses = vec![];
        loop {
            let (h, n) = parse(rest).unwrap().unwrap();
            statuses.push(h.status);
            rest = &rest[n..];
            if !h.is_interim() {
                break;
            }
            assert_eq!(body_kind("GET", &h).unwrap(), BodyKind::Empty);
        }
        assert_eq!(statuses, vec![100, 103, 200]);
        assert!(rest.is_empty());
    }

    #[test]
    fn many_headers_beyond_the_first_guess_all_parse() {
        let mut text = String::from("HTTP/1.1 200 OK\r\n");
        for i in 0..500 {
            text.push_str(&format!("X-H{i}: {i}\r\n"));
        }
        text.push_str("\r\n");
        let h = head(&text);
        assert_eq!(h.headers.len(), 500);
        assert_eq!(h.header("x-h499"), Some(&b"499"[..]));
    }

    #[test]
    fn another_version_or_an_http09_body_is_an_unsupported_version() {
        for (buf, offset) in [
            (&b"HTTP/1.2 200 OK\r\n\r\n"[..], 7),
            (b"HTTP/2 200 OK\r\n\r\n", 5),
            (b"HTTX/1.1 200 OK\r\n\r\n", 3),
            (b"<html>hello</html>", 0),
        ] {
            let err = assert_split_invariant(buf, MAX).unwrap_err();
            assert_eq!(err, Http1Error::UnsupportedVersion { offset }, "{:?}", String::from_utf8_lossy(buf));
        }
    }

    #[test]
    fn folded_header_lines_are_unfolded_into_one_value() {
        let h = head("HTTP/1.1 200 OK\r\nX-Long: one\r\n two\r\n\tthree\r\nA: b\r\n\r\n");
        assert_eq!(h.header("x-long"), Some(&b"one two three"[..]));
        assert_eq!(h.header("a"), Some(&b"b"[..]));
    }

    #[test]
    fn header_fields_and_header_lines_are_bounded() {
        let mut many = b"HTTP/1.1 200 OK\r\n".to_vec();
        for i in 0..=MAX_HEADER_FIELDS {
            many.extend_from_slice(format!("X-{i}: v\r\n").as_bytes());
        }
        many.extend_from_slice(b"\r\n");
        let err = parse_response_head(&many, 1 << 20).unwrap_err();
        assert!(err.to_string().contains("header fields"), "{err}");
        let mut long = b"HTTP/1.1 200 OK\r\nX-Long: ".to_vec();
        long.extend(std::iter::repeat_n(b'a', MAX_HEADER_LINE));
        long.extend_from_slice(b"\r\n\r\n");
        let err = parse_response_head(&long, 1 << 20).unwrap_err();
        assert!(err.to_string().contains("header line longer than"), "{err}");
        let mut fits = b"HTTP/1.1 200 OK\r\nX-Long: ".to_vec();
        fits.extend(std::iter::repeat_n(b'a', MAX_HEADER_LINE - 12));
        fits.extend_from_slice(b"\r\n\r\n");
        assert!(parse_response_head(&fits, 1 << 20).unwrap().is_some());
    }

    #[test]
    fn invalid_heads_name_what_and_the_byte_offset_at_every_split() {
        // (input, offset of the first bad byte)
        let cases: &[(&[u8], usize)] = &[
            (b"HTTP/1.1 2x0 OK\r\n\r\n", 10),
            (b"HTTP/1.1 200 OK\r\nNoColonHere\r\n\r\n", 28),
            // Spaces after a name are tolerated, so the bad byte is the N.
            (b"HTTP/1.1 200 OK\r\nA: b\r\nBad Name: x\r\n\r\n", 27),
            (b"HTTP/1.1 200 OK\r\nA: b\x00c\r\n\r\n", 21),
        ];
        for &(buf, offset) in cases {
            let err = assert_split_invariant(buf, MAX).unwrap_err();
            match &err {
                Http1Error::InvalidHead { offset: got, reason } => {
                    assert_eq!(*got, offset, "{:?}: {reason}", String::from_utf8_lossy(buf));
                    assert!(err.to_string().contains(&format!("at byte {offset}")), "{err}");
                }
                other => panic!("{:?}: {other:?}", String::from_utf8_lossy(buf)),
            }
        }
    }

    #[test]
    fn head_longer_than_the_limit_is_an_error_however_it_arrives() {
        let mut buf = b"HTTP/1.1 200 OK\r\nX-Long: ".to_vec();
        buf.extend(std::iter::repeat_n(b'a', 100));
        buf.extend_from_slice(b"\r\n\r\n");
        // A head of exactly the limit passes; one byte less of limit fails.
        let len = buf.len();
        assert!(assert_split_invariant(&buf, len).unwrap().is_some());
        let err = assert_split_invariant(&buf, len - 1).unwrap_err();
        assert_eq!(err, Http1Error::HeadTooLarge { limit: len - 1 });
        // Bytes are never looked at past the limit: an endless header is refused early.
        let endless = vec![b'a'; 10 * MAX];
        let mut flood = b"HTTP/1.1 200 OK\r\nX: ".to_vec();
        flood.extend_from_slice(&endless);
        assert_eq!(parse(&flood).unwrap_err(), Http1Error::HeadTooLarge { limit: MAX });
    }

    #[test]
    fn empty_and_partial_buffers_need_more_bytes() {
        for buf in [&b""[..], b"H", b"HTTP/1.1 200 OK\r\n", b"HTTP/1.1 200 OK\r\nA: b\r\n\r"] {
            assert_eq!(parse(buf).unwrap(), None, "{buf:?}");
        }
    }

    fn kind(method: &str, text: &str) -> Result<BodyKind, Http1Error> {
        body_kind(method, &head(text))
    }

    #[test]
    fn no_body_for_head_requests_1xx_204_304() {
        let cl = "Content-Length: 10\r\n";
        assert_eq!(kind("HEAD", &format!("HTTP/1.1 200 OK\r\n{cl}\r\n")).unwrap(), BodyKind::Empty);
        for status in [100, 101, 103, 204, 304] {
            let text = format!("HTTP/1.1 {status} X\r\n{cl}Transfer-Encoding: chunked\r\n\r\n");
            assert_eq!(kind("GET", &text).unwrap(), BodyKind::Empty, "{status}");
        }
        assert_eq!(kind("CONNECT", "HTTP/1.1 200 OK\r\n\r\n").unwrap(), BodyKind::Empty);
        assert_eq!(kind("GET", "HTTP/1.1 205 X\r\nContent-Length: 0\r\n\r\n").unwrap(), BodyKind::Length(0));
    }

    #[test]
    fn chunked_final_coding_wins_over_content_length() {
        let k = |te: &str| kind("GET", &format!("HTTP/1.1 200 OK\r\nTransfer-Encoding: {te}\r\n\r\n"));
        assert_eq!(k("chunked").unwrap(), BodyKind::Chunked);
        assert_eq!(k("Chunked").unwrap(), BodyKind::Chunked);
        assert_eq!(k("identity, chunked").unwrap(), BodyKind::Chunked);
        assert_eq!(
            kind("GET", "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n")
                .unwrap(),
            BodyKind::Chunked
        );
        // Split over two header lines, it is the same list.
        assert_eq!(
            kind(
                "GET",
                "HTTP/1.1 200 OK\r\nTransfer-Encoding: identity\r\nTransfer-Encoding: chunked\r\n\r\n"
            )
            .unwrap(),
            BodyKind::Chunked
        );
    }

    #[test]
    fn transfer_codings_we_cannot_undo_are_refused_naming_them() {
        for te in ["gzip, chunked", "chunked, gzip", "chunked, chunked", "x-custom", "chunked, identity"] {
            let err =
                kind("GET", &format!("HTTP/1.1 200 OK\r\nTransfer-Encoding: {te}\r\n\r\n")).unwrap_err();
            assert_eq!(err, Http1Error::UnsupportedTransferEncoding { coding: te.to_string() });
        }
    }

    #[test]
    fn transfer_encoding_on_http10_means_read_until_close() {
        let text = "HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n";
        assert_eq!(kind("GET", text).unwrap(), BodyKind::UntilClose);
    }

    #[test]
    fn content_length_repeats_must_agree() {
        let k = |cls: &[&str]| {
            let lines: String = cls.iter().map(|v| format!("Content-Length: {v}\r\n")).collect();
            kind("GET", &format!("HTTP/1.1 200 OK\r\n{lines}\r\n"))
        };
        assert_eq!(k(&["42"]).unwrap(), BodyKind::Length(42));
        assert_eq!(k(&["42", "42"]).unwrap(), BodyKind::Length(42));
        assert_eq!(k(&["42, 42"]).unwrap(), BodyKind::Length(42));
        assert_eq!(k(&["007"]).unwrap(), BodyKind::Length(7));
        assert_eq!(k(&["18446744073709551615"]).unwrap(), BodyKind::Length(u64::MAX));
        assert_eq!(
            k(&["42", "43"]).unwrap_err(),
            Http1Error::ConflictingContentLength { first: 42, second: 43 }
        );
        assert_eq!(k(&["1, 2"]).unwrap_err(), Http1Error::ConflictingContentLength { first: 1, second: 2 });
        for bad in ["", "-1", "+1", "1 2", "0x10", "abc", "18446744073709551616", "1,"] {
            let err = k(&[bad]).unwrap_err();
            assert!(matches!(err, Http1Error::InvalidContentLength { .. }), "{bad:?}: {err:?}");
        }
        let err = k(&["12a"]).unwrap_err();
        assert_eq!(err.to_string(), "invalid content-length: \"12a\"");
    }

    #[test]
    fn no_framing_headers_means_until_close() {
        assert_eq!(kind("GET", "HTTP/1.1 200 OK\r\n\r\n").unwrap(), BodyKind::UntilClose);
        assert_eq!(kind("POST", "HTTP/1.0 200 OK\r\n\r\n").unwrap(), BodyKind::UntilClose);
    }

    #[test]
    fn incremental_parser_agrees_with_the_stateless_one_fed_a_byte_at_a_time() {
        let inputs: [&[u8]; 4] = [
            b"HTTP/1.1 200 OK\r\nA: b\r\n\r\nbody",
            b"HTTP/1.1 200 OK\nA: b\n\n",
            b"HTTP/1.1 200 OK\r\nNoColon\r\n\r\n",
            b"HTTX/1.1",
        ];
        for input in inputs {
            let mut parser = HeadParser::new(MAX);
            let mut got = Ok(None);
            for k in 0..=input.len() {
                got = parser.parse(&input[..k]);
                if !matches!(got, Ok(None)) {
                    break;
                }
            }
            assert_eq!(got, parse(input), "{:?}", String::from_utf8_lossy(input));
        }
    }

    #[test]
    fn incremental_parser_does_linear_work_on_a_trickled_head() {
        let mut text = String::from("HTTP/1.1 200 OK\r\n");
        while text.len() < 100_000 {
            text.push_str("X-Padding: 0123456789abcdef\r\n");
        }
        text.push_str("\r\n");
        let mut parser = HeadParser::new(MAX);
        let mut result = Ok(None);
        for k in 1..=text.len() {
            result = parser.parse(&text.as_bytes()[..k]);
            if !matches!(result, Ok(None)) {
                break;
            }
        }
        assert_eq!(result.unwrap().unwrap().1, text.len());
        // 1024 small-buffer parses, one per doubling after that, and the final one.
        assert!(parser.parses <= EAGER_PARSE + 10, "{} parses", parser.parses);
        // Over the limit it still fails, and the parser is ready for the next head.
        let mut parser = HeadParser::new(100);
        let mut long = b"HTTP/1.1 200 OK\r\nX: ".to_vec();
        long.resize(150, b'a');
        assert_eq!(parser.parse(&long), Err(Http1Error::HeadTooLarge { limit: 100 }));
        assert!(parser.parse(b"HTTP/1.1 204 No Content\r\n\r\n").unwrap().is_some());
    }

    // Tests that kill the mutants scripts/mutants found alive (see TESTING.md).

    /// A head of exactly `len` bytes ending in its blank line.
    fn head_of_len(len: usize) -> Vec<u8> {
        let start = b"HTTP/1.1 200 OK\r\nX: ";
        let mut h = start.to_vec();
        h.resize(len - 4, b'a');
        h.extend_from_slice(b"\r\n\r\n");
        h
    }

    #[test]
    fn incremental_parser_parses_small_heads_on_every_call_and_then_on_doubling() {
        let head = head_of_len(5000);
        let mut p = HeadParser::new(64 * 1024);
        assert_eq!(p.parse(&head[..EAGER_PARSE]), Ok(None));
        assert_eq!(p.parses, 1, "at most EAGER_PARSE bytes: parsed");
        assert_eq!(p.parse(&head[..EAGER_PARSE + 1]), Ok(None));
        assert_eq!(p.parses, 1, "past EAGER_PARSE and not doubled: not parsed");
        assert_eq!(p.parse(&head[..2 * EAGER_PARSE - 1]), Ok(None));
        assert_eq!(p.parses, 1);
        assert_eq!(p.parse(&head[..2 * EAGER_PARSE]), Ok(None));
        assert_eq!(p.parses, 2, "doubled: parsed");
        assert_eq!(p.parse(&head[..2 * EAGER_PARSE + 2]), Ok(None));
        assert_eq!(p.parses, 2);
        // The blank line makes a parse due at once.
        assert!(matches!(p.parse(&head), Ok(Some((_, 5000)))));
        assert_eq!(p.parses, 3);
    }

    #[test]
    fn incremental_parser_finds_a_blank_line_split_over_calls() {
        let head = head_of_len(3000);
        for tail in [1, 2, 3] {
            let mut p = HeadParser::new(64 * 1024);
            assert_eq!(p.parse(&head[..2000]), Ok(None));
            assert_eq!(p.parse(&head[..3000 - tail]), Ok(None));
            assert!(matches!(p.parse(&head), Ok(Some((_, 3000)))), "blank line cut {tail} from the end");
        }
        let lf = [&head_of_len(3000)[..2996], b"\n\n"].concat();
        let mut p = HeadParser::new(64 * 1024);
        assert_eq!(p.parse(&lf[..2000]), Ok(None));
        assert_eq!(p.parse(&lf[..2997]), Ok(None));
        assert!(matches!(p.parse(&lf), Ok(Some((_, 2998)))), "LF LF ends a head too");
    }

    #[test]
    fn incremental_parser_starts_afresh_after_reset_or_a_shorter_buffer() {
        let big = head_of_len(6000);
        let mut bad = head_of_len(6000);
        bad[1500] = 0; // a NUL in a header value: invalid
        let mut p = HeadParser::new(64 * 1024);
        assert_eq!(p.parse(&big[..4000]), Ok(None));
        p.reset();
        // 3000 bytes: past the eager size, below twice 4000, yet parsed after reset.
        assert!(p.parse(&bad[..3000]).is_err(), "reset forgets the last parse's length");
        let mut q = HeadParser::new(64 * 1024);
        assert_eq!(q.parse(&big[..4000]), Ok(None));
        assert!(q.parse(&bad[..3000]).is_err(), "a shorter buffer is a new head");
        // At the limit a parse is always due, and a head that does not fit is an error.
        let mut r = HeadParser::new(4096);
        assert_eq!(r.parse(&big[..3000]), Ok(None));
        assert_eq!(r.parse(&big[..4096]), Err(Http1Error::HeadTooLarge { limit: 4096 }));
    }

    #[test]
    fn interim_is_exactly_1xx_and_headers_named_finds_every_one() {
        let h = |status| ResponseHead { version: 1, status, reason: String::new(), headers: vec![] };
        assert!(!h(99).is_interim() && h(100).is_interim() && h(199).is_interim() && !h(200).is_interim());
        let head = head("HTTP/1.1 200 OK\r\nA: 1\r\nb: 2\r\na: 3\r\n\r\n");
        assert_eq!(head.headers_named("A").collect::<Vec<_>>(), vec![&b"1"[..], b"3"]);
        assert_eq!(head.header("B"), Some(&b"2"[..]));
        assert_eq!(head.header("c"), None);
    }

    #[test]
    fn connect_2xx_has_no_body_but_other_statuses_do() {
        let ok = head("HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\n");
        assert_eq!(body_kind("CONNECT", &ok), Ok(BodyKind::Empty));
        assert_eq!(body_kind("GET", &ok), Ok(BodyKind::Length(4)));
        let denied = head("HTTP/1.1 407 Auth\r\nContent-Length: 4\r\n\r\n");
        assert_eq!(body_kind("CONNECT", &denied), Ok(BodyKind::Length(4)));
        let moved = head("HTTP/1.1 300 Choices\r\nContent-Length: 2\r\n\r\n");
        assert_eq!(body_kind("CONNECT", &moved), Ok(BodyKind::Length(2)));
        let c199 = head("HTTP/1.1 199 X\r\nContent-Length: 2\r\n\r\n");
        assert_eq!(body_kind("CONNECT", &c199), Ok(BodyKind::Empty));
        let c205 = head("HTTP/1.1 205 Reset\r\nContent-Length: 2\r\n\r\n");
        assert_eq!(body_kind("GET", &c205), Ok(BodyKind::Length(2)));
    }

    #[test]
    fn content_length_digits_and_overflow() {
        assert_eq!(parse_decimal(b"18446744073709551615"), Some(u64::MAX));
        assert_eq!(parse_decimal(b"18446744073709551616"), None);
        assert_eq!(parse_decimal(b"0"), Some(0));
        assert_eq!(parse_decimal(b"90"), Some(90));
        assert_eq!(parse_decimal(b""), None);
        assert_eq!(parse_decimal(b"1a"), None);
        assert_eq!(parse_decimal(b"+1"), None);
    }

    #[test]
    fn invalid_byte_offset_is_exact() {
        let mut text = b"HTTP/1.1 200 OK\r\nGood: yes\r\nBad".to_vec();
        let at = text.len();
        text.extend_from_slice(b"\x01: x\r\n\r\n");
        match parse_response_head(&text, 4096) {
            Err(Http1Error::InvalidHead { offset, .. }) => assert_eq!(offset, at),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn incremental_parser_does_not_parse_again_when_no_byte_arrived() {
        let head = head_of_len(3000);
        let mut p = HeadParser::new(64 * 1024);
        assert_eq!(p.parse(&head[..1500]), Ok(None));
        assert_eq!(p.parses, 1);
        // The same buffer again (a call with nothing new) is not a new, shorter head.
        assert_eq!(p.parse(&head[..1500]), Ok(None));
        assert_eq!(p.parses, 1, "same length: neither reset nor parsed");
        assert!(matches!(p.parse(&head), Ok(Some((_, 3000)))));
        assert_eq!(p.parses, 2);
    }
}
