//! Request heads: bytes out.
//!
//! For: serializing `METHOD target HTTP/1.1`, the header lines and the blank line, and
//! checking beforehand that user-given parts cannot break the framing. Not for: choosing
//! headers (Host, User-Agent... are the caller's policy) or sending a body.
use super::Http1Error;

/// Serialize a request head: `METHOD target HTTP/1.1\r\n`, one `Name: value\r\n` line per
/// header in the given order, then `\r\n`. Appends to `out`.
///
/// The parts are written as given: call [`check_request_head`] first on anything that
/// came from the user, so that no CR/LF can inject a header or end the head early.
pub fn write_request_head(method: &str, target: &str, headers: &[(String, String)], out: &mut Vec<u8>) {
    let len =
        method.len() + target.len() + 13 + headers.iter().map(|(n, v)| n.len() + v.len() + 4).sum::<usize>();
    out.reserve(len + 2);
    out.extend_from_slice(method.as_bytes());
    out.push(b' ');
    out.extend_from_slice(target.as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\n");
    for (name, value) in headers {
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
}

/// Check that a request head can be written unambiguously: the method and header names
/// are tokens (RFC 9110 §5.6.2), the target has no whitespace or control bytes, and header
/// values have no control bytes other than tab (so no CR/LF).
pub fn check_request_head(
    method: &str,
    target: &str,
    headers: &[(String, String)],
) -> Result<(), Http1Error> {
    let invalid = |reason: String| Err(Http1Error::InvalidRequest { reason });
    if method.is_empty() || !method.bytes().all(is_tchar) {
        return invalid(format!("method {method:?} is not a token"));
    }
    if target.is_empty() || target.bytes().any(|b| b <= b' ' || b == 0x7f) {
        return invalid(format!("request target {target:?} is empty or holds whitespace or control bytes"));
    }
    for (name, value) in headers {
        if name.is_empty() || !name.bytes().all(is_tchar) {
            return invalid(format!("header name {name:?} is not a token"));
        }
        if value.bytes().any(|b| (b < b' ' && b != b'\t') || b == 0x7f) {
            return invalid(format!("value of header {name:?} holds a control byte (line break?)"));
        }
    }
    Ok(())
}

/// RFC 9110 `tchar`: the bytes allowed in a token (method, header name).
pub(crate) fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(n, v)| (n.to_string(), v.to_string())).collect()
    }

    #[test]
    fn request_head_is_request_line_headers_in_order_and_blank_line() {
        let mut out = b"left alone".to_vec();
        write_request_head(
            "GET",
            "/a?b=c",
            &h(&[("Host", "example.com:8080"), ("Accept", "*/*"), ("X-Empty", "")]),
            &mut out,
        );
        assert_eq!(
            out,
            b"left aloneGET /a?b=c HTTP/1.1\r\nHost: example.com:8080\r\nAccept: */*\r\nX-Empty: \r\n\r\n"
        );
    }

    #[test]
    fn request_head_without_headers_is_just_the_request_line() {
        let mut out = Vec::new();
        write_request_head("HEAD", "*", &[], &mut out);
        assert_eq!(out, b"HEAD * HTTP/1.1\r\n\r\n");
    }

    #[test]
    fn request_head_written_is_parsed_back_by_httparse() {
        let headers = h(&[("Host", "[::1]:8080"), ("User-Agent", "tcpkit/0.1.0"), ("Content-Length", "5")]);
        check_request_head("POST", "/upload", &headers).unwrap();
        let mut out = Vec::new();
        write_request_head("POST", "/upload", &headers, &mut out);
        let mut parsed = [httparse::EMPTY_HEADER; 8];
        let mut req = httparse::Request::new(&mut parsed);
        assert_eq!(req.parse(&out).unwrap(), httparse::Status::Complete(out.len()));
        assert_eq!((req.method, req.path, req.version), (Some("POST"), Some("/upload"), Some(1)));
        let got: Vec<_> = req.headers.iter().map(|h| (h.name.to_string(), h.value.to_vec())).collect();
        let want: Vec<_> = headers.iter().map(|(n, v)| (n.clone(), v.as_bytes().to_vec())).collect();
        assert_eq!(got, want);
    }

    #[test]
    fn header_injection_and_bad_tokens_are_refused() {
        let ok = h(&[("X-A", "b\tc")]);
        assert!(check_request_head("GET", "/", &ok).is_ok());
        for (method, target, headers) in [
            ("GET", "/", h(&[("X-A", "b\r\nX-Injected: 1")])),
            ("GET", "/", h(&[("X-A", "b\n")])),
            ("GET", "/", h(&[("Bad Name", "v")])),
            ("GET", "/", h(&[("", "v")])),
            ("GET", "/", h(&[("X:Y", "v")])),
            ("GE T", "/", vec![]),
            ("", "/", vec![]),
            ("GET", "/a b", vec![]),
            ("GET", "/a\r\n", vec![]),
            ("GET", "", vec![]),
        ] {
            let err = check_request_head(method, target, &headers).unwrap_err();
            assert!(
                matches!(err, Http1Error::InvalidRequest { .. }),
                "{method:?} {target:?} {headers:?}: {err}"
            );
        }
    }
}
