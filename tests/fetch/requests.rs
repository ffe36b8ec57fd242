//! What `fetch` sends, and how the response reaches stdout.
use std::sync::Arc;

use super::servers::{HyperServer, RawServer, Step, chunked, full};
use super::{fetch, parts};

fn echo_server() -> HyperServer {
    HyperServer::start(Arc::new(|_| full(200, &[("content-type", "text/plain")], "hello world\n")))
}

#[test]
fn get_prints_the_body_and_sends_default_headers() {
    let server = echo_server();
    let out = fetch(&[&server.url("/a/b?x=1&y=2#frag")]);
    let (code, stdout, stderr) = parts(&out);
    assert_eq!((code, stdout.as_str()), (0, "hello world\n"), "{stderr}");
    let seen = server.seen();
    let req = &seen[0];
    assert_eq!((req.method.as_str(), req.target.as_str()), ("GET", "/a/b?x=1&y=2"));
    assert_eq!(req.header("host"), Some(server.addr.to_string().as_str()));
    assert_eq!(req.header("user-agent"), Some(concat!("tcpkit/", env!("CARGO_PKG_VERSION"))));
    assert_eq!(req.header("accept"), Some("*/*"));
    assert_eq!(req.header("content-length"), None);
}

#[test]
fn header_flags_add_replace_and_remove() {
    let server = echo_server();
    let url = server.url("/");
    let out =
        fetch(&["-H", "User-Agent: mine/1", "-H", "Accept:", "-H", "X-Extra: yes", "-H", "X-Empty;", &url]);
    assert_eq!(out.status.code(), Some(0));
    let req = &server.seen()[0];
    assert_eq!(req.header("user-agent"), Some("mine/1"));
    assert_eq!(req.header("accept"), None);
    assert_eq!(req.header("x-extra"), Some("yes"));
    assert_eq!(req.header("x-empty"), Some(""));
}

#[test]
fn header_without_colon_is_a_usage_error() {
    let out = fetch(&["-H", "NoColonHere", "http://127.0.0.1:9/"]);
    let (code, _, stderr) = parts(&out);
    assert_eq!(code, 2);
    assert!(stderr.contains("NoColonHere"), "{stderr}");
}

#[test]
fn data_is_posted_with_content_length_and_form_type() {
    let server = echo_server();
    let out = fetch(&["-d", "a=1", "-d", "b=2", &server.url("/form")]);
    assert_eq!(out.status.code(), Some(0));
    let req = &server.seen()[0];
    assert_eq!(req.method, "POST");
    assert_eq!(req.body, b"a=1&b=2");
    assert_eq!(req.header("content-length"), Some("7"));
    assert_eq!(req.header("content-type"), Some("application/x-www-form-urlencoded"));
}

#[test]
fn data_binary_from_file_is_sent_verbatim_with_the_given_method() {
    let server = echo_server();
    let dir = tempfile::tempdir().unwrap();
    let body: Vec<u8> = (0..=255u8).chain(b"\r\n\n".iter().copied()).collect();
    std::fs::write(dir.path().join("body.bin"), &body).unwrap();
    let arg = format!("@{}", dir.path().join("body.bin").display());
    let out = fetch(&["-X", "PUT", "--data-binary", &arg, &server.url("/up")]);
    assert_eq!(out.status.code(), Some(0), "{}", parts(&out).2);
    let req = &server.seen()[0];
    assert_eq!(req.method, "PUT");
    assert_eq!(req.body, body);
    // As curl: --data-binary is a form too unless -H gives another type.
    assert_eq!(req.header("content-type"), Some("application/x-www-form-urlencoded"));
    let missing = fetch(&["--data-binary", "@/nonexistent/tcpkit-body", &server.url("/")]);
    assert_eq!(missing.status.code(), Some(26));
}

#[test]
fn head_request_shows_only_the_head() {
    let server = echo_server();
    let out = fetch(&["-I", &server.url("/")]);
    let (code, stdout, _) = parts(&out);
    assert_eq!(code, 0);
    assert!(stdout.starts_with("HTTP/1.1 200 OK\r\n"), "{stdout}");
    assert!(stdout.contains("content-length: 12\r\n"), "{stdout}");
    assert!(stdout.ends_with("\r\n\r\n"), "{stdout}");
    assert_eq!(server.seen()[0].method, "HEAD");
}

#[test]
fn chunked_body_is_reassembled() {
    let server = HyperServer::start(Arc::new(|_| chunked(&[b"abc", b"", b"defgh", &[b'x'; 70_000]])));
    let out = fetch(&[&server.url("/")]);
    assert_eq!(out.status.code(), Some(0), "{}", parts(&out).2);
    let mut want = b"abcdefgh".to_vec();
    want.extend_from_slice(&[b'x'; 70_000]);
    assert_eq!(out.stdout, want);
}

#[test]
fn include_puts_the_head_before_the_body() {
    let server = echo_server();
    let out = fetch(&["-i", &server.url("/")]);
    let (code, stdout, _) = parts(&out);
    assert_eq!(code, 0);
    assert!(stdout.starts_with("HTTP/1.1 200 OK\r\n"), "{stdout}");
    assert!(stdout.ends_with("\r\n\r\nhello world\n"), "{stdout}");
}

#[test]
fn interim_responses_are_skipped_and_dumped_byte_for_byte() {
    let interim = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </s.css>\r\n\r\n".to_vec();
    let last = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX-Odd:  spaced \r\n\r\n".to_vec();
    let mut reply = interim.clone();
    reply.extend_from_slice(&last);
    reply.extend_from_slice(b"ok");
    let server = RawServer::start(vec![vec![Step::Send(reply)]]);
    let dir = tempfile::tempdir().unwrap();
    let dump = dir.path().join("head.txt");
    let out = fetch(&["-D", dump.to_str().unwrap(), &server.url("/")]);
    assert_eq!((out.status.code(), out.stdout.as_slice()), (Some(0), &b"ok"[..]), "{}", parts(&out).2);
    let mut want = interim;
    want.extend_from_slice(&last);
    assert_eq!(std::fs::read(&dump).unwrap(), want);
    // -D - puts the heads on stdout before the body.
    let out = fetch(&["-D", "-", &server.url("/")]);
    let mut want_stdout = want.clone();
    want_stdout.extend_from_slice(b"ok");
    assert_eq!(out.stdout, want_stdout);
}

#[test]
fn verbose_shows_both_heads_on_stderr_only() {
    let server = echo_server();
    let out = fetch(&["-v", &server.url("/v")]);
    let (code, stdout, stderr) = parts(&out);
    assert_eq!((code, stdout.as_str()), (0, "hello world\n"));
    assert!(stderr.contains("> GET /v HTTP/1.1\n"), "{stderr}");
    assert!(stderr.contains("> Accept: */*\n"), "{stderr}");
    assert!(stderr.contains("< HTTP/1.1 200 OK\n"), "{stderr}");
    assert!(stderr.contains("* connected to 127.0.0.1"), "{stderr}");
}

#[test]
fn fail_flag_exits_22_without_body_and_without_it_the_body_is_shown() {
    let server = HyperServer::start(Arc::new(|_| full(404, &[], "not here\n")));
    let out = fetch(&["-f", &server.url("/missing")]);
    let (code, stdout, stderr) = parts(&out);
    assert_eq!((code, stdout.as_str()), (22, ""));
    assert!(stderr.contains("404"), "{stderr}");
    let out = fetch(&[&server.url("/missing")]);
    assert_eq!((out.status.code(), out.stdout.as_slice()), (Some(0), &b"not here\n"[..]));
}

#[test]
fn silent_hides_errors_and_show_error_brings_them_back() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let url = format!("http://127.0.0.1:{port}/");
    let (code, _, stderr) = parts(&fetch(&["-s", &url]));
    assert_eq!((code, stderr.as_str()), (7, ""));
    let (code, _, stderr) = parts(&fetch(&["-sS", &url]));
    assert_eq!(code, 7);
    assert!(stderr.contains("connection refused"), "{stderr}");
}

#[test]
fn write_out_fills_in_curl_variables() {
    let server = echo_server();
    let out = fetch(&[
        "-o",
        "/dev/null",
        "-w",
        "%{http_code} %{size_download} %{remote_ip}:%{remote_port} %{num_redirects}\n",
        &server.url("/"),
    ]);
    let (code, stdout, stderr) = parts(&out);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(stdout, format!("200 12 127.0.0.1:{} 0\n", server.addr.port()));
    let out = fetch(&["-s", "-o", "/dev/null", "-w", "%{json}", &server.url("/")]);
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(json["http_code"], 200);
    assert_eq!(json["local_ip"], "127.0.0.1");
}

#[test]
fn timing_breaks_down_each_phase() {
    let server = echo_server();
    let out = fetch(&["--timing", &server.url("/")]);
    let (code, _, stderr) = parts(&out);
    assert_eq!(code, 0);
    for phase in ["hop 1: GET http://", "DNS", "TCP", "TLS", "server wait", "transfer", "total"] {
        assert!(stderr.contains(phase), "{phase} missing: {stderr}");
    }
}

#[test]
fn compressed_bodies_are_decoded() {
    use std::io::Write;
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&b"squeeze me ".repeat(1000)).unwrap();
    let gz = gz.finish().unwrap();
    let server =
        HyperServer::start(Arc::new(move |_| full(200, &[("content-encoding", "gzip")], gz.clone())));
    let out = fetch(&["--compressed", &server.url("/")]);
    assert_eq!(out.status.code(), Some(0), "{}", parts(&out).2);
    assert_eq!(out.stdout, b"squeeze me ".repeat(1000));
    let ae = server.seen()[0].header("accept-encoding").map(str::to_string);
    assert_eq!(ae.as_deref(), Some("gzip, deflate, br, zstd"));
}

#[test]
fn no_body_for_204_even_when_the_server_keeps_the_connection() {
    // The server holds the connection open: waiting for close would hit -m (exit 28).
    let server = RawServer::start(vec![vec![
        Step::Send(b"HTTP/1.1 204 No Content\r\n\r\n".to_vec()),
        Step::Pause(std::time::Duration::from_secs(20)),
    ]]);
    let out = fetch(&["-m", "10", &server.url("/")]);
    assert_eq!((out.status.code(), out.stdout.len()), (Some(0), 0), "{}", parts(&out).2);
}

#[test]
fn ipv6_literals_are_fetched_or_refused_by_family() {
    match std::net::TcpListener::bind("[::1]:0") {
        Ok(probe) => {
            drop(probe);
            let server = HyperServer::start_with(Arc::new(|_| full(200, &[], "six")), None, "[::1]:0");
            let url = format!("http://[::1]:{}/", server.addr.port());
            let out = fetch(&[&url]);
            assert_eq!(out.stdout, b"six", "{}", parts(&out).2);
            assert_eq!(
                server.seen()[0].header("host"),
                Some(format!("[::1]:{}", server.addr.port()).as_str())
            );
        }
        // No IPv6 loopback here: at least -6 must refuse an IPv4 literal.
        Err(_) => {
            let out = fetch(&["-6", "http://127.0.0.1:9/"]);
            assert_eq!(out.status.code(), Some(6));
        }
    }
}

#[test]
fn urls_outside_http_are_refused_and_malformed_ones_exit_3() {
    let (code, _, stderr) = parts(&fetch(&["ftp://127.0.0.1/x"]));
    assert_eq!(code, 1);
    assert!(stderr.contains("unsupported protocol"), "{stderr}");
    assert_eq!(fetch(&["http://[::1/"]).status.code(), Some(3));
    assert_eq!(fetch(&["http://"]).status.code(), Some(3));
}

#[test]
fn corrupt_compressed_body_exits_61() {
    let server =
        HyperServer::start(Arc::new(|_| full(200, &[("content-encoding", "gzip")], "not gzip at all")));
    let (code, _, stderr) = parts(&fetch(&["--compressed", &server.url("/")]));
    assert_eq!(code, 61, "{stderr}");
    assert!(stderr.contains("gzip"), "{stderr}");
    // Without --compressed the bytes are passed through untouched.
    let out = fetch(&[&server.url("/")]);
    assert_eq!(out.stdout, b"not gzip at all");
}

#[test]
fn a_method_that_is_not_a_token_is_a_usage_error() {
    let server = echo_server();
    let (code, _, stderr) = parts(&fetch(&["-X", "GET /x HTTP/1.1\r\nEvil:", &server.url("/")]));
    assert_eq!(code, 2, "{stderr}");
    assert!(server.seen().is_empty());
}

#[test]
fn dump_header_with_redirects_holds_every_head() {
    let server = HyperServer::start(Arc::new(|seen| match seen.target.as_str() {
        "/first" => full(302, &[("location", "/second")], ""),
        _ => full(200, &[], "body"),
    }));
    let out = fetch(&["-L", "-D", "-", &server.url("/first")]);
    let (code, stdout, _) = parts(&out);
    assert_eq!(code, 0);
    let first = stdout.find("HTTP/1.1 302 Found\r\n").expect("302 head");
    let second = stdout.find("HTTP/1.1 200 OK\r\n").expect("200 head");
    assert!(first < second && stdout.ends_with("\r\n\r\nbody"), "{stdout}");
}
