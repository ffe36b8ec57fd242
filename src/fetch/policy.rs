//! What to send: the URL checks, the request headers (defaults, then `-H` edits)
//! and the redirect rules. Pure functions, no I/O.
//!
//! Not for: the bytes on the wire (`http1::write_request_head`) or connections.
use url::{Position, Url};

use super::error::FetchError;

/// The `User-Agent` sent unless `-H` replaces it.
pub const USER_AGENT: &str = concat!("tcpkit/", env!("CARGO_PKG_VERSION"));

/// `-H` headers that belong to the original origin (credentials, and a custom
/// Host): never sent to another origin after a redirect.
const ORIGIN_BOUND: [&str; 4] = ["authorization", "cookie", "proxy-authorization", "host"];

/// Parse a URL given on the command line: http or https only; without a scheme,
/// `http://` is assumed (as curl does).
pub fn parse_url(text: &str) -> Result<Url, FetchError> {
    let with_scheme = if text.contains("://") { text.to_string() } else { format!("http://{text}") };
    let url =
        Url::parse(&with_scheme).map_err(|e| FetchError::Url { url: text.into(), reason: e.to_string() })?;
    check_url(url, text)
}

fn check_url(url: Url, text: &str) -> Result<Url, FetchError> {
    match url.scheme() {
        "http" | "https" => {}
        other => return Err(FetchError::Scheme(format!("{other} (only http and https)"))),
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(FetchError::Url { url: text.into(), reason: "no host".into() });
    }
    Ok(url)
}

/// The request target: path and query as given, never the fragment.
pub fn target(url: &Url) -> &str {
    &url[Position::BeforePath..Position::AfterQuery]
}

/// The request target for a forward proxy: the absolute URL without userinfo and
/// fragment.
pub fn absolute_target(url: &Url) -> String {
    let mut bare = url.clone();
    let _ = bare.set_username("");
    let _ = bare.set_password(None);
    bare.set_fragment(None);
    bare.to_string()
}

/// The `Host` value: the port is added when it is not the scheme's default.
pub fn host_header(url: &Url) -> String {
    let host = url.host_str().unwrap_or_default();
    match url.port() {
        Some(port) => format!("{host}:{port}"),
        None => host.to_string(),
    }
}

/// `url` for display (`--timing`, `-w`, `-v`): its password, if any, masked.
pub fn redacted(url: &Url) -> String {
    if url.password().is_none() {
        return url.to_string();
    }
    let mut shown = url.clone();
    let _ = shown.set_password(Some("***"));
    shown.to_string()
}

/// The `Authorization` value for a URL's userinfo (`http://user:pass@host/`), as curl
/// sends it: Basic, with the percent-decoded user and password.
pub fn basic_auth(url: &Url) -> Option<String> {
    use base64::Engine as _;
    if url.username().is_empty() && url.password().is_none() {
        return None;
    }
    let decode = |s: &str| percent_encoding::percent_decode_str(s).collect::<Vec<u8>>();
    let mut pair = decode(url.username());
    pair.push(b':');
    pair.extend(decode(url.password().unwrap_or_default()));
    Some(format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(pair)))
}

/// One `-H` argument.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeaderEdit {
    /// `Name: value`: replaces a default header of that name, or is added.
    Set(String, String),
    /// `Name:`: the default header of that name is not sent.
    Remove(String),
}

/// Parse a `-H` argument: `Name: value`, `Name:` (remove) or `Name;` (empty value).
pub fn parse_header_edit(arg: &str) -> Result<HeaderEdit, FetchError> {
    let bad = |why: &str| FetchError::Usage(format!("header {arg:?}: {why}"));
    if arg.contains(['\r', '\n']) {
        return Err(bad("line breaks are not allowed"));
    }
    let (name, value, empty_means_remove) = match (arg.find(':'), arg.find(';')) {
        (Some(c), s) if s.is_none_or(|s| c < s) => (&arg[..c], arg[c + 1..].trim(), true),
        (_, Some(s)) if arg[s + 1..].trim().is_empty() => (&arg[..s], "", false),
        _ => return Err(bad("expected 'Name: value', 'Name:' or 'Name;'")),
    };
    let name = name.trim();
    let token = |b: u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b);
    if name.is_empty() || !name.bytes().all(token) {
        return Err(bad("invalid header name"));
    }
    Ok(match (value.is_empty(), empty_means_remove) {
        (true, true) => HeaderEdit::Remove(name.to_string()),
        _ => HeaderEdit::Set(name.to_string(), value.to_string()),
    })
}

/// What shapes the default headers of one request.
#[derive(Debug, Clone, Default)]
pub struct HeaderPlan<'a> {
    /// Ask for compressed bodies (`--compressed`).
    pub compressed: bool,
    /// The byte offset to resume from (`-C -`); 0 sends no Range.
    pub resume_from: u64,
    /// The body's length, when there is a body.
    pub body_len: Option<u64>,
    /// A `-d` body: sent as a form unless `-H` says otherwise.
    pub form: bool,
    /// The `-H` edits, in order.
    pub edits: &'a [HeaderEdit],
    /// Apply the credential and Host edits (false after a redirect to another origin).
    pub credentials: bool,
    /// `-u USER:PASSWORD`: Basic credentials, before the URL's userinfo.
    pub user: Option<&'a str>,
}

/// The request headers for `url`: the defaults, then the `-H` edits applied.
pub fn build_headers(url: &Url, plan: &HeaderPlan<'_>) -> Vec<(String, String)> {
    let mut headers: Vec<(String, String)> = vec![
        ("Host".into(), host_header(url)),
        ("User-Agent".into(), USER_AGENT.into()),
        ("Accept".into(), "*/*".into()),
    ];
    // Credentials from the URL go to its own origin only, like `-H Authorization`.
    let from_user = plan.user.map(|u| {
        use base64::Engine as _;
        format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(u))
    });
    if let Some(auth) = from_user.or_else(|| basic_auth(url)).filter(|_| plan.credentials) {
        headers.insert(1, ("Authorization".into(), auth));
    }
    if plan.compressed {
        headers.push(("Accept-Encoding".into(), "gzip, deflate, br, zstd".into()));
    }
    if plan.resume_from > 0 {
        headers.push(("Range".into(), format!("bytes={}-", plan.resume_from)));
    }
    if let Some(len) = plan.body_len {
        headers.push(("Content-Length".into(), len.to_string()));
        if plan.form {
            headers.push(("Content-Type".into(), "application/x-www-form-urlencoded".into()));
        }
    }
    // Each header remembers whether it is still a default, which a user header replaces.
    let mut headers: Vec<(String, String, bool)> = headers.into_iter().map(|(n, v)| (n, v, true)).collect();
    for edit in plan.edits {
        match edit {
            HeaderEdit::Set(name, _) | HeaderEdit::Remove(name)
                if !plan.credentials && ORIGIN_BOUND.contains(&name.to_ascii_lowercase().as_str()) => {}
            // A request has one Host: the first given wins, as in curl.
            HeaderEdit::Set(name, _)
                if name.eq_ignore_ascii_case("host")
                    && headers.iter().any(|(n, _, default)| !*default && n.eq_ignore_ascii_case("host")) => {}
            HeaderEdit::Set(name, value) => {
                // The first user header of a name replaces the default in place;
                // later ones of the same name are added (curl sends them all).
                match headers.iter().position(|(n, _, default)| *default && n.eq_ignore_ascii_case(name)) {
                    Some(i) => headers[i] = (name.clone(), value.clone(), false),
                    None => headers.push((name.clone(), value.clone(), false)),
                }
            }
            HeaderEdit::Remove(name) => headers.retain(|(n, _, _)| !n.eq_ignore_ascii_case(name)),
        }
    }
    headers.into_iter().map(|(n, v, _)| (n, v)).collect()
}

/// The scheme, host and port: credentials stay within one origin.
pub fn same_origin(a: &Url, b: &Url) -> bool {
    a.scheme() == b.scheme()
        && a.host_str() == b.host_str()
        && a.port_or_known_default() == b.port_or_known_default()
}

/// The request a redirect leads to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Redirect {
    /// The resolved Location.
    pub url: Url,
    /// The method for the next request.
    pub method: String,
    /// Whether the body is sent again (307 and 308 only).
    pub keep_body: bool,
}

/// Whether `status` is a redirect `-L` follows.
pub fn is_redirect(status: u16) -> bool {
    matches!(status, 301 | 302 | 303 | 307 | 308)
}

/// Where a redirect leads: `location` resolved against `base`; 303 (and 301/302
/// after POST) become GET without a body (HEAD stays HEAD); 307 and 308 keep the
/// method and body.
pub fn follow(base: &Url, method: &str, status: u16, location: &[u8]) -> Result<Redirect, FetchError> {
    let text = String::from_utf8_lossy(location);
    let text = text.trim();
    let url = base.join(text).map_err(|e| FetchError::Url { url: text.into(), reason: e.to_string() })?;
    let url = check_url(url, text)?;
    let to_get = match status {
        303 => method != "HEAD",
        301 | 302 => method == "POST",
        _ => false,
    };
    let method = if to_get { "GET".to_string() } else { method.to_string() };
    Ok(Redirect { url, method, keep_body: matches!(status, 307 | 308) })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(s: &str) -> Url {
        parse_url(s).unwrap()
    }

    #[test]
    fn userinfo_is_sent_as_basic_auth_to_its_origin_only_and_masked_when_shown() {
        let u = url("http://al%40ice:p%3Ass@h:8080/x");
        // base64("al@ice:p:ss")
        assert_eq!(basic_auth(&u).as_deref(), Some("Basic YWxAaWNlOnA6c3M="));
        assert_eq!(redacted(&u), "http://al%40ice:***@h:8080/x");
        assert_eq!(redacted(&url("http://h/x")), "http://h/x");
        assert_eq!(basic_auth(&url("http://h/x")), None);
        let plan = HeaderPlan { credentials: true, ..HeaderPlan::default() };
        let sent = build_headers(&u, &plan);
        assert_eq!(sent[1], ("Authorization".to_string(), "Basic YWxAaWNlOnA6c3M=".to_string()));
        let plan = HeaderPlan { credentials: false, ..HeaderPlan::default() };
        assert!(build_headers(&u, &plan).iter().all(|(n, _)| n != "Authorization"));
        // -H Authorization replaces it.
        let edits = [HeaderEdit::Set("Authorization".into(), "Bearer t".into())];
        let plan = HeaderPlan { credentials: true, edits: &edits, ..HeaderPlan::default() };
        let auth: Vec<_> =
            build_headers(&u, &plan).into_iter().filter(|(n, _)| n == "Authorization").collect();
        assert_eq!(auth, [("Authorization".to_string(), "Bearer t".to_string())]);
    }

    #[test]
    fn urls_keep_path_query_ports_and_ipv6() {
        let u = url("http://[::1]:8080/a/b?x=1&y#frag");
        assert_eq!(target(&u), "/a/b?x=1&y");
        assert_eq!(host_header(&u), "[::1]:8080");
        assert_eq!(host_header(&url("https://example.com:443/")), "example.com");
        assert_eq!(host_header(&url("http://example.com:8443")), "example.com:8443");
        assert_eq!(target(&url("http://example.com")), "/");
        assert_eq!(url("example.com/x").scheme(), "http");
    }

    #[test]
    fn bad_urls_and_schemes_are_told_apart() {
        assert!(matches!(parse_url("ftp://example.com/"), Err(FetchError::Scheme(_))));
        assert!(matches!(parse_url("http://[::1/"), Err(FetchError::Url { .. })));
        assert!(matches!(parse_url("http://"), Err(FetchError::Url { .. })));
        assert!(matches!(parse_url("http://a b/"), Err(FetchError::Url { .. })));
    }

    #[test]
    fn header_edits_parse_like_curl() {
        assert_eq!(parse_header_edit("X-A: 1 ").unwrap(), HeaderEdit::Set("X-A".into(), "1".into()));
        assert_eq!(parse_header_edit("Accept:").unwrap(), HeaderEdit::Remove("Accept".into()));
        assert_eq!(parse_header_edit("X-Empty;").unwrap(), HeaderEdit::Set("X-Empty".into(), "".into()));
        assert_eq!(parse_header_edit("X: a;b").unwrap(), HeaderEdit::Set("X".into(), "a;b".into()));
        assert!(parse_header_edit("nocolon").is_err());
        assert!(parse_header_edit("Bad Name: v").is_err());
        assert!(parse_header_edit("X: a\r\nInjected: 1").is_err());
    }

    #[test]
    fn defaults_then_edits_add_replace_remove() {
        let edits = [
            parse_header_edit("User-Agent: me").unwrap(),
            parse_header_edit("Accept:").unwrap(),
            parse_header_edit("X-One: 1").unwrap(),
            parse_header_edit("X-One: 2").unwrap(),
        ];
        let plan = HeaderPlan {
            edits: &edits,
            body_len: Some(3),
            form: true,
            credentials: true,
            ..Default::default()
        };
        let h = build_headers(&url("http://h:81/"), &plan);
        let names: Vec<(&str, &str)> = h.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
        assert_eq!(
            names,
            vec![
                ("Host", "h:81"),
                ("User-Agent", "me"),
                ("Content-Length", "3"),
                ("Content-Type", "application/x-www-form-urlencoded"),
                ("X-One", "1"),
                ("X-One", "2"),
            ]
        );
    }

    #[test]
    fn range_and_encoding_defaults() {
        let plan = HeaderPlan { compressed: true, resume_from: 100, ..Default::default() };
        let h = build_headers(&url("http://h/"), &plan);
        assert!(h.contains(&("Range".into(), "bytes=100-".into())));
        assert!(h.contains(&("Accept-Encoding".into(), "gzip, deflate, br, zstd".into())));
        assert!(h.contains(&("User-Agent".into(), USER_AGENT.into())));
    }

    #[test]
    fn credentials_are_dropped_when_told() {
        let edits = [
            parse_header_edit("Authorization: Bearer x").unwrap(),
            parse_header_edit("cookie: a=b").unwrap(),
        ];
        let with = build_headers(
            &url("http://h/"),
            &HeaderPlan { edits: &edits, credentials: true, ..Default::default() },
        );
        assert_eq!(with.len(), 5);
        let without = build_headers(&url("http://h/"), &HeaderPlan { edits: &edits, ..Default::default() });
        assert_eq!(without.len(), 3);
    }

    #[test]
    fn redirect_method_rules() {
        let base = url("http://h/a/b");
        let r = follow(&base, "POST", 303, b"c").unwrap();
        assert_eq!((r.url.as_str(), r.method.as_str(), r.keep_body), ("http://h/a/c", "GET", false));
        assert_eq!(follow(&base, "HEAD", 303, b"/").unwrap().method, "HEAD");
        assert_eq!(follow(&base, "PUT", 303, b"/").unwrap().method, "GET");
        assert_eq!(follow(&base, "POST", 301, b"/").unwrap().method, "GET");
        assert_eq!(follow(&base, "POST", 302, b"/").unwrap().method, "GET");
        assert_eq!(follow(&base, "PUT", 302, b"/").unwrap().method, "PUT");
        for s in [307, 308] {
            let r = follow(&base, "POST", s, b"//other:9/x?q").unwrap();
            assert_eq!(
                (r.url.as_str(), r.method.as_str(), r.keep_body),
                ("http://other:9/x?q", "POST", true)
            );
        }
        assert!(matches!(follow(&base, "GET", 302, b"ftp://h/"), Err(FetchError::Scheme(_))));
        assert!(matches!(follow(&base, "GET", 302, b"http://[x/"), Err(FetchError::Url { .. })));
    }

    #[test]
    fn origins_compare_scheme_host_and_port() {
        assert!(same_origin(&url("http://h/a"), &url("http://h:80/b")));
        assert!(!same_origin(&url("http://h/"), &url("http://h:81/")));
        assert!(!same_origin(&url("http://h/"), &url("https://h/")));
        assert!(!same_origin(&url("http://h/"), &url("http://g/")));
    }
}
