//! Behaviours where fetch must do what curl does (issue "behave as curl does"): each
//! against a scripted server, byte-exact on what is sent, printed, saved and exited with.
use std::sync::Arc;

use super::servers::{HyperServer, RawServer, Step, full};
use super::{fetch, fetch_in, parts};

/// A raw server answering every connection with `reply`.
fn reply(reply: &[u8]) -> RawServer {
    RawServer::start(vec![vec![Step::Send(reply.to_vec())]])
}

/// The request head the raw server received first, as text.
fn first_request(server: &RawServer) -> String {
    String::from_utf8_lossy(&server.requests.lock().unwrap()[0]).into_owned()
}

const OK: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";

#[test]
fn several_host_headers_send_one_the_first_given() {
    let server = reply(OK);
    let out = fetch(&["-H", "Host: first.test", "-H", "Host: second.test", &server.url("/")]);
    assert_eq!(out.status.code(), Some(0), "{}", parts(&out).2);
    let head = first_request(&server);
    assert_eq!(head.matches("Host:").count(), 1, "{head}");
    assert!(head.contains("Host: first.test\r\n"), "{head}");
}

#[test]
fn data_binary_is_a_form_unless_a_content_type_is_given() {
    let server = reply(OK);
    fetch(&["--data-binary", "a=1", &server.url("/")]);
    let head = first_request(&server);
    assert!(head.contains("Content-Type: application/x-www-form-urlencoded\r\n"), "{head}");
    let server = reply(OK);
    fetch(&["--data-binary", "{}", "-H", "Content-Type: application/json", &server.url("/")]);
    let head = first_request(&server);
    assert!(head.contains("Content-Type: application/json\r\n") && !head.contains("urlencoded"), "{head}");
}

#[test]
fn headers_are_read_from_a_file_with_h_at() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("headers.txt");
    std::fs::write(&file, "X-One: 1\r\nX-Two: two words\n\nAccept:\n").unwrap();
    let server = reply(OK);
    let out = fetch(&["-H", &format!("@{}", file.display()), &server.url("/")]);
    assert_eq!(out.status.code(), Some(0), "{}", parts(&out).2);
    let head = first_request(&server);
    assert!(head.contains("X-One: 1\r\nX-Two: two words\r\n") && !head.contains("Accept:"), "{head}");
    let (code, _, stderr) = parts(&fetch(&["-H", "@/nonexistent/h", &server.url("/")]));
    assert_eq!(code, 26, "{stderr}");
}

#[test]
fn resume_with_include_writes_the_head_before_the_resumed_body() {
    let server =
        reply(b"HTTP/1.1 206 Partial Content\r\nContent-Range: bytes 3-5/6\r\nContent-Length: 3\r\n\r\ndef");
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("f.part"), "abc").unwrap();
    let out = fetch_in(Some(dir.path()), &["-C", "-", "-i", "-o", "f", &server.url("/")]);
    assert_eq!(out.status.code(), Some(0), "{}", parts(&out).2);
    let saved = std::fs::read_to_string(dir.path().join("f")).unwrap();
    assert!(
        saved.starts_with("abcHTTP/1.1 206 Partial Content\r\n") && saved.ends_with("\r\n\r\ndef"),
        "{saved:?}"
    );
    assert!(first_request(&server).contains("Range: bytes=3-\r\n"));
}

#[test]
fn resuming_a_complete_file_with_an_empty_range_exits_0_and_keeps_it() {
    let server = reply(b"HTTP/1.1 206 Partial Content\r\nContent-Length: 0\r\n\r\n");
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("f"), "complete").unwrap();
    let out = fetch_in(Some(dir.path()), &["-C", "-", "-o", "f", &server.url("/")]);
    assert_eq!(out.status.code(), Some(0), "{}", parts(&out).2);
    assert_eq!(std::fs::read_to_string(dir.path().join("f")).unwrap(), "complete");
}

#[test]
fn an_empty_location_is_not_a_redirect() {
    let server = reply(b"HTTP/1.1 302 Found\r\nLocation: \r\nContent-Length: 4\r\n\r\nhere");
    let out = fetch(&["-L", &server.url("/")]);
    assert_eq!((out.status.code(), out.stdout.as_slice()), (Some(0), &b"here"[..]), "{}", parts(&out).2);
}

#[test]
fn two_different_locations_are_a_malformed_reply() {
    let server = reply(b"HTTP/1.1 302 Found\r\nLocation: /a\r\nLocation: /b\r\nContent-Length: 0\r\n\r\n");
    let (code, _, stderr) = parts(&fetch(&["-L", &server.url("/")]));
    assert_eq!(code, 8, "{stderr}");
    assert!(stderr.contains("Location"), "{stderr}");
}

#[test]
fn folded_header_lines_are_unfolded_not_refused() {
    let server = reply(
        b"HTTP/1.1 200 OK\r\nContent-Type: text/plain;\r\n\tcharset=utf-8\r\nContent-Length: 2\r\n\r\nok",
    );
    let out = fetch(&["-w", " %{content_type}", &server.url("/")]);
    let (code, stdout, stderr) = parts(&out);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(stdout, "ok text/plain; charset=utf-8");
}

#[test]
fn chunked_trailers_follow_the_body_with_i_and_end_the_dump_with_d() {
    let server =
        reply(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\nX-Checksum: 42\r\n\r\n");
    let out = fetch(&["-i", &server.url("/")]);
    let (code, stdout, stderr) = parts(&out);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.ends_with("\r\n\r\nokX-Checksum: 42\r\n\r\n"), "{stdout:?}");
    let dir = tempfile::tempdir().unwrap();
    let dump = dir.path().join("d");
    let out = fetch(&["-D", dump.to_str().unwrap(), &server.url("/")]);
    assert_eq!(out.stdout, b"ok");
    let dumped = std::fs::read_to_string(&dump).unwrap();
    assert!(dumped.ends_with("chunked\r\n\r\nX-Checksum: 42\r\n\r\n"), "{dumped:?}");
}

#[test]
fn another_http_version_or_an_http09_body_exits_1() {
    for bytes in [&b"HTTP/1.2 200 OK\r\nContent-Length: 2\r\n\r\nok"[..], b"just a body, no status line\n"] {
        let server = reply(bytes);
        let (code, _, stderr) = parts(&fetch(&[&server.url("/")]));
        assert_eq!(code, 1, "{stderr}");
        assert!(stderr.contains("unsupported HTTP version"), "{stderr}");
    }
}

#[test]
fn content_encoding_none_or_identity_passes_through_with_compressed() {
    for ce in ["none", "identity"] {
        let server = reply(
            format!("HTTP/1.1 200 OK\r\nContent-Encoding: {ce}\r\nContent-Length: 5\r\n\r\nplain").as_bytes(),
        );
        let out = fetch(&["--compressed", &server.url("/")]);
        assert_eq!(
            (out.status.code(), out.stdout.as_slice()),
            (Some(0), &b"plain"[..]),
            "{ce}: {}",
            parts(&out).2
        );
    }
}

#[test]
fn chunked_then_identity_transfer_encoding_exits_61() {
    let server =
        reply(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, identity\r\n\r\n2\r\nok\r\n0\r\n\r\n");
    let (code, _, stderr) = parts(&fetch(&[&server.url("/")]));
    assert_eq!(code, 61, "{stderr}");
}

#[test]
fn a_header_line_over_100_kib_exits_8() {
    let mut r = b"HTTP/1.1 200 OK\r\nX-Big: ".to_vec();
    r.extend(std::iter::repeat_n(b'a', 101 * 1024));
    r.extend_from_slice(b"\r\nContent-Length: 0\r\n\r\n");
    let server = reply(&r);
    let (code, _, stderr) = parts(&fetch(&[&server.url("/")]));
    assert_eq!(code, 8, "{stderr}");
    assert!(stderr.contains("header line longer than"), "{stderr}");
}

#[test]
fn redirect_url_is_set_when_max_redirs_stops_following() {
    let server = HyperServer::start(Arc::new(|seen| {
        let next = format!("/r{}", seen.target.trim_start_matches("/r").parse::<u32>().unwrap_or(0) + 1);
        full(302, &[("location", next.as_str())], "")
    }));
    let out = fetch(&["-L", "--max-redirs", "2", "-w", "%{redirect_url}", &server.url("/r0")]);
    let (code, stdout, stderr) = parts(&out);
    assert_eq!(code, 47, "{stderr}");
    assert_eq!(stdout, format!("http://{}/r3", server.addr));
}

#[test]
fn write_out_has_header_values_header_json_url_and_stderr_switching() {
    let server = reply(b"HTTP/1.1 200 OK\r\nX-A: 1\r\nx-a: 2\r\nContent-Length: 2\r\n\r\nok");
    let url = server.url("/p");
    let format = "[%header{X-A}] %{url}%{stderr}%{header_json}%{stdout}|%{num_headers}";
    let out = fetch(&["-w", format, &url]);
    let (code, stdout, stderr) = parts(&out);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(stdout, format!("ok[1, 2] {url}|3"));
    assert_eq!(stderr, r#"{"content-length":["2"],"x-a":["1","2"]}"#);
}

#[test]
fn write_out_format_is_read_from_a_file_with_w_at() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("format.txt");
    std::fs::write(&file, "code %{http_code}\\n").unwrap();
    let server = reply(OK);
    let out = fetch(&["-w", &format!("@{}", file.display()), &server.url("/")]);
    assert_eq!(out.stdout, b"okcode 200\n", "{}", parts(&out).2);
    let (code, _, stderr) = parts(&fetch(&["-w", "@/nonexistent/format", &server.url("/")]));
    assert_eq!(code, 26, "{stderr}");
}

#[test]
fn user_flag_sends_basic_auth_to_its_origin_and_never_prompts() {
    let server = reply(OK);
    let url = format!("http://url:userinfo@{}/", server.addr);
    let out = fetch(&["-u", "alice:s:e:cret", &url]);
    assert_eq!(out.status.code(), Some(0), "{}", parts(&out).2);
    // base64("alice:s:e:cret"): -u wins over the URL's userinfo, as in curl.
    assert!(first_request(&server).contains("Authorization: Basic YWxpY2U6czplOmNyZXQ=\r\n"));
    let (code, _, stderr) = parts(&fetch(&["-u", "alice", &server.url("/")]));
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("never prompts"), "{stderr}");
}
