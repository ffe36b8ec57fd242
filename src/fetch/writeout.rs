//! `-w FORMAT`: curl's write-out format, rendered from the numbers of a finished transfer.
//!
//! For: `%{variable}` with curl's names and number formats, `%{json}`, `%header{NAME}`,
//! `%{url.PART}` / `%{urle.PART}`, `%{stderr}` / `%{stdout}` (as [`Target`]s), `%%` and
//! the `\n` `\r` `\t` escapes, with curl's handling of anything unknown (a warning,
//! nothing printed). Not for: measuring the transfer (the caller fills
//! [`WriteOutVars`]), reading the format from `@FILE`, or writing the output.
use serde_json::{Map, Value, json};
use url::Url;

/// The numbers and names of a finished transfer, as curl's `-w` names them.
/// Times are seconds since the transfer started, 0 for a phase that did not happen.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct WriteOutVars {
    /// Status code of the last response, 0 when there was none (printed as `000`).
    pub http_code: u16,
    /// Body bytes received, before decoding.
    pub size_download: u64,
    /// Bytes of response heads received (interim ones included).
    pub size_header: u64,
    /// Bytes of request heads and bodies sent.
    pub size_request: u64,
    /// Request body bytes sent.
    pub size_upload: u64,
    /// Average download rate in bytes per second.
    pub speed_download: u64,
    /// Average upload rate in bytes per second.
    pub speed_upload: u64,
    /// Until the name was resolved.
    pub time_namelookup: f64,
    /// Until the TCP connection was established.
    pub time_connect: f64,
    /// Until the TLS handshake was done (0 for plain HTTP).
    pub time_appconnect: f64,
    /// Held before starting (curl 8.6's queue time): transfers run one after
    /// another and start at once, so this is only the moment before the first request.
    pub time_queue: f64,
    /// Until the request was about to be sent.
    pub time_pretransfer: f64,
    /// Until the last request byte was sent (curl 8.10).
    pub time_posttransfer: f64,
    /// Until the first response byte arrived.
    pub time_starttransfer: f64,
    /// Spent in redirects before the final request.
    pub time_redirect: f64,
    /// The whole operation.
    pub time_total: f64,
    /// Redirects followed.
    pub num_redirects: u32,
    /// New connections made (0 when a kept-alive one carried every request).
    pub num_connects: u32,
    /// Attempts made after the first (`--retry`).
    pub num_retries: u32,
    /// The number of the connection last used, from 0 (-1: none).
    pub conn_id: i64,
    /// The number of this transfer in the command, from 0.
    pub xfer_id: i64,
    /// The last request went through a proxy.
    pub proxy_used: bool,
    /// The URL first asked for, unredacted, for `%{url.<part>}`.
    pub input_url: Option<Url>,
    /// The URL last fetched, unredacted, for `%{urle.<part>}`.
    pub effective_url: Option<Url>,
    /// Header fields in the last response.
    pub num_headers: u32,
    /// The server's address of the last connection (empty when none).
    pub remote_ip: String,
    /// The server's port (0 when none).
    pub remote_port: u16,
    /// Our address of the last connection (empty when none).
    pub local_ip: String,
    /// Our port (0 when none).
    pub local_port: u16,
    /// The URL first asked for.
    pub url: String,
    /// The URL last fetched (after redirects).
    pub url_effective: String,
    /// The scheme of `url_effective`, lowercase.
    pub scheme: String,
    /// The method of the last request.
    pub method: String,
    /// `1.1` or `1.0` for the last response, empty when none (printed as `0`).
    pub http_version: String,
    /// The Content-Type of the last response (empty when none).
    pub content_type: String,
    /// The Location a redirect not followed pointed to (empty when none).
    pub redirect_url: String,
    /// The file the body was written to (empty for stdout).
    pub filename_effective: String,
    /// The process exit code.
    pub exitcode: u8,
    /// The error message, empty on success.
    pub errormsg: String,
    /// The header fields of the last response, names as received (`%header{NAME}`,
    /// `%{header_json}`).
    pub headers: Vec<(String, String)>,
}

/// Where a piece of `-w` output goes: `%{stdout}` and `%{stderr}` switch it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// Standard output (the default).
    Stdout,
    /// Standard error.
    Stderr,
}

/// How a variable is printed: curl prints times with 6 decimals, http_code on 3 digits.
enum Var<'a> {
    Code(u16),
    Int(u64),
    SignedInt(i64),
    Time(f64),
    Text(&'a str),
    /// Text that is JSON `null` when empty.
    OptText(&'a str),
}

impl WriteOutVars {
    /// Every variable by its curl name, in alphabetical order (`%{json}`'s order).
    fn vars(&self) -> [(&'static str, Var<'_>); 38] {
        use Var::*;
        [
            ("conn_id", SignedInt(self.conn_id)),
            ("content_type", OptText(&self.content_type)),
            ("errormsg", OptText(&self.errormsg)),
            ("exitcode", Int(self.exitcode.into())),
            ("filename_effective", OptText(&self.filename_effective)),
            ("http_code", Code(self.http_code)),
            ("http_version", Text(if self.http_version.is_empty() { "0" } else { &self.http_version })),
            ("local_ip", Text(&self.local_ip)),
            ("local_port", Int(self.local_port.into())),
            ("method", Text(&self.method)),
            ("num_connects", Int(self.num_connects.into())),
            ("num_headers", Int(self.num_headers.into())),
            ("num_redirects", Int(self.num_redirects.into())),
            ("num_retries", Int(self.num_retries.into())),
            ("proxy_used", Int(self.proxy_used.into())),
            ("redirect_url", OptText(&self.redirect_url)),
            ("remote_ip", Text(&self.remote_ip)),
            ("remote_port", Int(self.remote_port.into())),
            ("response_code", Code(self.http_code)),
            ("scheme", Text(&self.scheme)),
            ("size_download", Int(self.size_download)),
            ("size_header", Int(self.size_header)),
            ("size_request", Int(self.size_request)),
            ("size_upload", Int(self.size_upload)),
            ("speed_download", Int(self.speed_download)),
            ("speed_upload", Int(self.speed_upload)),
            ("time_appconnect", Time(self.time_appconnect)),
            ("time_connect", Time(self.time_connect)),
            ("time_namelookup", Time(self.time_namelookup)),
            ("time_posttransfer", Time(self.time_posttransfer)),
            ("time_pretransfer", Time(self.time_pretransfer)),
            ("time_queue", Time(self.time_queue)),
            ("time_redirect", Time(self.time_redirect)),
            ("time_starttransfer", Time(self.time_starttransfer)),
            ("time_total", Time(self.time_total)),
            ("url", Text(&self.url)),
            ("url_effective", Text(&self.url_effective)),
            ("xfer_id", SignedInt(self.xfer_id)),
        ]
    }

    /// All variables as one JSON object (curl's `%{json}`), plus `tcpkit_version`.
    pub fn to_json(&self) -> String {
        let mut map = Map::new();
        for (name, var) in self.vars() {
            let value = match var {
                Var::Code(n) => json!(n),
                Var::Int(n) => json!(n),
                Var::SignedInt(n) => json!(n),
                // Non-finite times cannot be JSON numbers; they never come from a clock.
                Var::Time(t) => serde_json::Number::from_f64(t).map_or(Value::Null, Value::Number),
                Var::Text(s) => json!(s),
                Var::OptText("") => Value::Null,
                Var::OptText(s) => json!(s),
            };
            map.insert(name.to_string(), value);
        }
        map.insert("tcpkit_version".to_string(), json!(env!("CARGO_PKG_VERSION")));
        Value::Object(map).to_string()
    }

    /// curl's `%{header_json}`: each header name, lowercase, to the list of its values
    /// in the order received.
    pub fn header_json(&self) -> String {
        let mut map = Map::new();
        for (name, value) in &self.headers {
            let entry = map.entry(name.to_ascii_lowercase()).or_insert_with(|| Value::Array(Vec::new()));
            if let Value::Array(values) = entry {
                values.push(json!(value));
            }
        }
        Value::Object(map).to_string()
    }

    /// `%header{NAME}`: the values of NAME in the last response, joined by `, ` (curl).
    fn header(&self, name: &str) -> String {
        let values: Vec<&str> = self
            .headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect();
        values.join(", ")
    }

    fn lookup(&self, name: &str) -> Option<String> {
        if name == "json" {
            return Some(self.to_json());
        }
        if name == "header_json" {
            return Some(self.header_json());
        }
        if let Some(part) = name.strip_prefix("url.") {
            return url_part(self.input_url.as_ref(), part);
        }
        if let Some(part) = name.strip_prefix("urle.") {
            return url_part(self.effective_url.as_ref(), part);
        }
        let (_, var) = self.vars().into_iter().find(|(n, _)| *n == name)?;
        Some(match var {
            Var::Code(n) => format!("{n:03}"),
            Var::Int(n) => n.to_string(),
            Var::SignedInt(n) => n.to_string(),
            Var::Time(t) => format!("{t:.6}"),
            Var::Text(s) | Var::OptText(s) => s.to_string(),
        })
    }
}

/// curl 8.1's `%{url.<part>}`: one part of a URL as curl's URL API gives it (the
/// port with the scheme's default filled in; no `?` before the query); `Some("")`
/// for a part the URL lacks (curl prints nothing), `None` for an unknown part.
fn url_part(url: Option<&Url>, part: &str) -> Option<String> {
    let known =
        ["scheme", "user", "password", "options", "host", "port", "path", "query", "fragment", "zoneid"];
    if !known.contains(&part) {
        return None;
    }
    let Some(url) = url else { return Some(String::new()) };
    Some(match part {
        "scheme" => url.scheme().to_string(),
        "user" => url.username().to_string(),
        "password" => url.password().unwrap_or_default().to_string(),
        "host" => url.host_str().unwrap_or_default().to_string(),
        "port" => url.port_or_known_default().map(|p| p.to_string()).unwrap_or_default(),
        "path" => url.path().to_string(),
        "query" => url.query().unwrap_or_default().to_string(),
        "fragment" => url.fragment().unwrap_or_default().to_string(),
        // IMAP options and IPv6 zone ids do not occur in fetch's http(s) URLs.
        _ => String::new(),
    })
}

/// Render `format` with `vars`; unknown variables print nothing (see
/// [`render_with_warnings`] for the warnings curl prints about them).
pub fn render(format: &str, vars: &WriteOutVars) -> String {
    render_with_warnings(format, vars).0
}

/// Render `format` into pieces each with its [`Target`]: `%{stdout}` and `%{stderr}`
/// switch where what follows goes, as in curl. Pieces in order, and the warnings.
pub fn render_targets(format: &str, vars: &WriteOutVars) -> (Vec<(Target, String)>, Vec<String>) {
    let mut pieces = Vec::new();
    let mut warnings = Vec::new();
    let mut target = Target::Stdout;
    let mut rest = format;
    loop {
        let next = [("%{stdout}", Target::Stdout), ("%{stderr}", Target::Stderr)]
            .into_iter()
            .filter_map(|(marker, t)| rest.find(marker).map(|at| (at, marker.len(), t)))
            .min_by_key(|&(at, _, _)| at);
        let (text, switch) = match next {
            Some((at, len, t)) => (&rest[..at], Some((len, t))),
            None => (rest, None),
        };
        let (out, w) = render_with_warnings(text, vars);
        warnings.extend(w);
        if !out.is_empty() {
            pieces.push((target, out));
        }
        let Some((len, t)) = switch else { break };
        target = t;
        rest = &rest[text.len() + len..];
    }
    (pieces, warnings)
}

/// Render `format` with `vars`, as curl does: `%{name}` is the variable, `%%` a percent
/// sign, `\n` `\r` `\t` the control characters; an unknown variable prints nothing and
/// adds a warning `unknown --write-out variable: 'name'`; a `%` or `\` not starting one
/// of these, and an unclosed `%{`, are printed as they are.
pub fn render_with_warnings(format: &str, vars: &WriteOutVars) -> (String, Vec<String>) {
    let mut out = String::with_capacity(format.len());
    let mut warnings = Vec::new();
    let mut rest = format;
    while let Some(c) = rest.chars().next() {
        let next = rest[c.len_utf8()..].chars().next();
        match (c, next) {
            ('%', Some('%')) => {
                out.push('%');
                rest = &rest[2..];
            }
            ('%', Some('h')) if rest.starts_with("%header{") && rest[8..].contains('}') => {
                let end = rest[8..].find('}').unwrap_or_default();
                out.push_str(&vars.header(&rest[8..8 + end]));
                rest = &rest[8 + end + 1..];
            }
            ('%', Some('{')) => match rest[2..].find('}') {
                Some(end) => {
                    let name = &rest[2..2 + end];
                    match vars.lookup(name) {
                        Some(value) => out.push_str(&value),
                        None => warnings.push(format!("unknown --write-out variable: '{name}'")),
                    }
                    rest = &rest[2 + end + 1..];
                }
                None => {
                    out.push_str("%{");
                    rest = &rest[2..];
                }
            },
            ('\\', Some(e @ ('n' | 'r' | 't'))) => {
                out.push(match e {
                    'n' => '\n',
                    'r' => '\r',
                    _ => '\t',
                });
                rest = &rest[2..];
            }
            _ => {
                out.push(c);
                rest = &rest[c.len_utf8()..];
            }
        }
    }
    (out, warnings)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> WriteOutVars {
        WriteOutVars {
            http_code: 200,
            size_download: 1234,
            size_header: 120,
            size_request: 80,
            size_upload: 5,
            speed_download: 617,
            speed_upload: 3,
            time_namelookup: 0.001,
            time_connect: 0.0025,
            time_appconnect: 0.0125,
            time_pretransfer: 0.013,
            time_starttransfer: 0.5,
            time_redirect: 0.25,
            time_total: 2.0,
            num_redirects: 2,
            num_connects: 3,
            num_headers: 4,
            remote_ip: "::1".into(),
            remote_port: 8443,
            local_ip: "::1".into(),
            local_port: 50000,
            url: "http://h/a".into(),
            url_effective: "https://h/b".into(),
            scheme: "https".into(),
            method: "GET".into(),
            http_version: "1.1".into(),
            content_type: "text/plain".into(),
            redirect_url: String::new(),
            filename_effective: "b.txt".into(),
            exitcode: 0,
            errormsg: String::new(),
            time_queue: 0.000125,
            time_posttransfer: 0.0135,
            num_retries: 2,
            conn_id: 1,
            xfer_id: 3,
            proxy_used: true,
            input_url: Url::parse("http://u:p@h:8080/a/b%20c?x=1&y#frag").ok(),
            effective_url: Url::parse("https://h/b").ok(),
            headers: vec![
                ("Content-Type".into(), "text/plain".into()),
                ("Set-Cookie".into(), "a=1".into()),
                ("set-cookie".into(), "b=2".into()),
            ],
        }
    }

    #[test]
    fn header_values_url_and_header_json_render_as_curl() {
        let v = sample();
        assert_eq!(
            render("%header{content-type}|%header{Set-Cookie}|%header{none}|", &v),
            "text/plain|a=1, b=2||"
        );
        assert_eq!(render("%{url}", &v), "http://h/a");
        let json: Value = serde_json::from_str(&render("%{header_json}", &v)).unwrap();
        assert_eq!(json, json!({"content-type": ["text/plain"], "set-cookie": ["a=1", "b=2"]}));
    }

    #[test]
    fn stdout_and_stderr_switch_where_the_rest_goes() {
        let v = sample();
        let (pieces, warnings) = render_targets("a%{stderr}b %{http_code}%{stdout}c%{nope}", &v);
        assert_eq!(
            pieces,
            [(Target::Stdout, "a".into()), (Target::Stderr, "b 200".into()), (Target::Stdout, "c".into())]
        );
        assert_eq!(warnings, ["unknown --write-out variable: 'nope'"]);
    }

    #[test]
    fn every_variable_renders_in_curls_format() {
        let v = sample();
        let cases = [
            ("http_code", "200"),
            ("response_code", "200"),
            ("size_download", "1234"),
            ("size_header", "120"),
            ("size_request", "80"),
            ("size_upload", "5"),
            ("speed_download", "617"),
            ("speed_upload", "3"),
            ("time_namelookup", "0.001000"),
            ("time_connect", "0.002500"),
            ("time_appconnect", "0.012500"),
            ("time_pretransfer", "0.013000"),
            ("time_starttransfer", "0.500000"),
            ("time_redirect", "0.250000"),
            ("time_total", "2.000000"),
            ("num_redirects", "2"),
            ("num_connects", "3"),
            ("num_headers", "4"),
            ("remote_ip", "::1"),
            ("remote_port", "8443"),
            ("local_ip", "::1"),
            ("local_port", "50000"),
            ("url", "http://h/a"),
            ("url_effective", "https://h/b"),
            ("scheme", "https"),
            ("method", "GET"),
            ("http_version", "1.1"),
            ("content_type", "text/plain"),
            ("redirect_url", ""),
            ("filename_effective", "b.txt"),
            ("exitcode", "0"),
            ("errormsg", ""),
            ("time_queue", "0.000125"),
            ("time_posttransfer", "0.013500"),
            ("num_retries", "2"),
            ("conn_id", "1"),
            ("xfer_id", "3"),
            ("proxy_used", "1"),
        ];
        assert_eq!(cases.len(), v.vars().len(), "a case per variable");
        for (name, want) in cases {
            let (got, warnings) = render_with_warnings(&format!("%{{{name}}}"), &v);
            assert_eq!((got.as_str(), warnings.len()), (want, 0), "{name}");
        }
    }

    #[test]
    fn no_response_prints_code_000_and_version_0() {
        let v = WriteOutVars::default();
        assert_eq!(render("%{http_code} %{http_version} %{time_total}", &v), "000 0 0.000000");
    }

    #[test]
    fn url_parts_render_as_curls_url_api_gives_them() {
        let v = sample();
        let (out, warnings) = render_with_warnings(
            "%{url.scheme}|%{url.user}|%{url.password}|%{url.host}|%{url.port}|%{url.path}|\
             %{url.query}|%{url.fragment}|%{url.zoneid}",
            &v,
        );
        assert_eq!(out, "http|u|p|h|8080|/a/b%20c|x=1&y|frag|");
        assert!(warnings.is_empty(), "{warnings:?}");
        // The effective URL's parts; a default port is filled in, a missing query is empty.
        assert_eq!(render("%{urle.scheme} %{urle.port} %{urle.path} [%{urle.query}]", &v), "https 443 /b []");
        let (out, warnings) = render_with_warnings("[%{url.nope}]", &v);
        assert_eq!((out.as_str(), warnings.len()), ("[]", 1));
    }

    #[test]
    fn no_connection_is_conn_id_minus_one() {
        let v = WriteOutVars { conn_id: -1, ..WriteOutVars::default() };
        assert_eq!(render("%{conn_id} %{proxy_used} %{num_retries}", &v), "-1 0 0");
    }

    #[test]
    fn text_escapes_and_percent_signs_follow_curl() {
        let v = sample();
        assert_eq!(render("code=%{http_code}\\n", &v), "code=200\n");
        assert_eq!(render("a\\tb\\rc\\\\n", &v), "a\tb\rc\\\n");
        assert_eq!(render("100%% done", &v), "100% done");
        assert_eq!(render("\\x \\ %d % %", &v), "\\x \\ %d % %");
        assert_eq!(render("%{http_code", &v), "%{http_code");
        assert_eq!(render("é%{http_code}ü", &v), "é200ü");
        assert_eq!(render("", &v), "");
    }

    #[test]
    fn unknown_variables_print_nothing_and_warn() {
        let (out, warnings) = render_with_warnings("[%{nope}] [%{http_code}] [%{}]", &sample());
        assert_eq!(out, "[] [200] []");
        assert_eq!(
            warnings,
            vec!["unknown --write-out variable: 'nope'", "unknown --write-out variable: ''"]
        );
    }

    #[test]
    fn json_holds_every_variable_as_valid_json() {
        let mut v = sample();
        v.errormsg = "partial body: \"quoted\"\n".into();
        let out = render("%{json}\\n", &v);
        assert!(out.ends_with('\n'));
        let parsed: Value = serde_json::from_str(out.trim_end()).unwrap();
        let obj = parsed.as_object().unwrap();
        assert_eq!(obj.len(), v.vars().len() + 1);
        assert_eq!(obj["http_code"], json!(200));
        assert_eq!(obj["size_download"], json!(1234));
        assert_eq!(obj["time_total"], json!(2.0));
        assert_eq!(obj["time_connect"], json!(0.0025));
        assert_eq!(obj["remote_ip"], json!("::1"));
        assert_eq!(obj["remote_port"], json!(8443));
        assert_eq!(obj["local_port"], json!(50000));
        assert_eq!(obj["num_redirects"], json!(2));
        assert_eq!(obj["errormsg"], json!("partial body: \"quoted\"\n"));
        assert_eq!(obj["redirect_url"], Value::Null);
        assert_eq!(obj["tcpkit_version"], json!(env!("CARGO_PKG_VERSION")));
        for (name, _) in v.vars() {
            assert!(obj.contains_key(name), "{name}");
        }
    }
}
