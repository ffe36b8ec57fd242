//! Malformed, truncated and slow replies: exit codes and messages.
use std::time::Duration;

use super::servers::{RawServer, Step};
use super::{fetch, parts};

fn reply(bytes: &[u8]) -> RawServer {
    RawServer::start(vec![vec![Step::Send(bytes.to_vec())]])
}

fn run(bytes: &[u8]) -> (i32, String, String) {
    let server = reply(bytes);
    parts(&fetch(&["-m", "10", &server.url("/")]))
}

#[test]
fn short_content_length_exits_18_with_both_numbers() {
    let (code, stdout, stderr) = run(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n0123456789");
    assert_eq!((code, stdout.as_str()), (18, "0123456789"));
    assert!(stderr.contains("10 of 100 bytes received"), "{stderr}");
}

#[test]
fn chunked_cut_in_data_or_size_line_exits_18() {
    let (code, _, stderr) = run(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab");
    assert_eq!(code, 18, "{stderr}");
    assert!(stderr.contains("chunk"), "{stderr}");
    let (code, _, stderr) = run(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nabcde\r\n1");
    assert_eq!(code, 18, "{stderr}");
    let (code, _, stderr) = run(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nabcde\r\n");
    assert_eq!(code, 18, "{stderr}");
}

#[test]
fn chunked_body_ends_at_the_last_chunk_without_waiting_for_close() {
    let server = RawServer::start(vec![vec![
        Step::Send(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3;ext=1\r\nabc\r\n0\r\nX-T: 1\r\n\r\n"
                .to_vec(),
        ),
        Step::Pause(Duration::from_secs(20)),
    ]]);
    let out = fetch(&["-m", "10", &server.url("/")]);
    assert_eq!((out.status.code(), out.stdout.as_slice()), (Some(0), &b"abc"[..]), "{}", parts(&out).2);
}

#[test]
fn body_until_close_is_complete_at_close() {
    let (code, stdout, _) = run(b"HTTP/1.0 200 OK\r\n\r\nall of it");
    assert_eq!((code, stdout.as_str()), (0, "all of it"));
}

#[test]
fn close_before_any_byte_is_an_empty_reply() {
    let (code, _, stderr) = run(b"");
    assert_eq!(code, 52);
    assert!(stderr.contains("empty reply"), "{stderr}");
}

#[test]
fn close_inside_the_head_exits_18_as_curl() {
    let (code, _, stderr) = run(b"HTTP/1.1 200 OK\r\nContent-Le");
    assert_eq!(code, 18);
    assert!(stderr.contains("inside a response head"), "{stderr}");
}

#[test]
fn invalid_status_line_exits_8_naming_the_byte() {
    let (code, _, stderr) = run(b"HTTP/1.1 2x0 OK\r\n\r\n");
    assert_eq!(code, 8);
    assert!(stderr.contains("at byte 10"), "{stderr}");
    let (code, _, stderr) = run(b"HTTP/1.1 200 OK\r\nNoColon\r\n\r\n");
    assert_eq!(code, 8, "{stderr}");
}

#[test]
fn bad_or_overflowing_chunk_size_exits_56() {
    let (code, _, stderr) = run(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n");
    assert_eq!(code, 56);
    assert!(stderr.contains("bad chunk size"), "{stderr}");
    let (code, _, _) = run(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n11111111111111111111\r\n");
    assert_eq!(code, 56);
}

#[test]
fn conflicting_content_lengths_exit_8() {
    let (code, _, stderr) = run(b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab");
    assert_eq!(code, 8);
    assert!(stderr.contains("content-length"), "{stderr}");
}

#[test]
fn head_over_max_head_exits_8() {
    let mut head = b"HTTP/1.1 200 OK\r\n".to_vec();
    for i in 0..200 {
        head.extend_from_slice(format!("X-Filler-{i}: {}\r\n", "v".repeat(40)).as_bytes());
    }
    head.extend_from_slice(b"Content-Length: 0\r\n\r\n");
    let server = reply(&head);
    let (code, _, stderr) = parts(&fetch(&["--max-head", "4096", &server.url("/")]));
    assert_eq!(code, 8);
    assert!(stderr.contains("4096"), "{stderr}");
    // Within the default limit the same head is fine, although larger than a small buffer.
    let (code, _, stderr) = parts(&fetch(&["--buffer-size", "4096", &server.url("/")]));
    assert_eq!(code, 0, "{stderr}");
}

#[test]
fn max_time_exits_28_with_bytes_received() {
    let server = RawServer::start(vec![vec![
        Step::Send(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc".to_vec()),
        Step::Pause(Duration::from_secs(20)),
    ]]);
    let (code, _, stderr) = parts(&fetch(&["-m", "0.3", &server.url("/")]));
    assert_eq!(code, 28);
    assert!(stderr.contains("timed out after 300 ms with 3 bytes received"), "{stderr}");
}

#[test]
fn refused_connection_exits_7() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let (code, _, stderr) = parts(&fetch(&[&format!("http://127.0.0.1:{port}/")]));
    assert_eq!(code, 7);
    assert!(stderr.contains("connection refused"), "{stderr}");
}

#[test]
fn closed_stdout_exits_23() {
    let server = RawServer::start(vec![vec![
        Step::Pause(Duration::from_millis(200)),
        Step::Send(b"HTTP/1.1 200 OK\r\nContent-Length: 200000\r\n\r\n".to_vec()),
        Step::Send(vec![b'x'; 200_000]),
    ]]);
    let mut cmd = crate::util::tcpkit();
    cmd.args(["fetch", "-m", "10", &server.url("/")]);
    cmd.stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    drop(child.stdout.take()); // The reader is gone before the first body byte.
    let out = super::servers::wait(child);
    let (code, _, stderr) = parts(&out);
    assert_eq!(code, 23, "{stderr}");
    assert!(stderr.contains("stdout"), "{stderr}");
}

/// The reply one byte per write, with a pause now and then so reads see the pieces.
fn byte_by_byte(reply: &[u8]) -> RawServer {
    let mut steps = Vec::new();
    for (i, b) in reply.iter().enumerate() {
        steps.push(Step::Send(vec![*b]));
        if i % 7 == 0 {
            steps.push(Step::Pause(Duration::from_millis(1)));
        }
    }
    RawServer::start(vec![steps])
}

#[test]
fn replies_split_into_single_bytes_give_the_same_body() {
    let replies: [&[u8]; 3] = [
        b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 11\r\n\r\nhello world",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;x=y\r\nhello\r\n6\r\n world\r\n0\r\nT: v\r\n\r\n",
        b"HTTP/1.0 200 OK\r\nServer: raw\r\n\r\nhello world",
    ];
    for reply in replies {
        let server = byte_by_byte(reply);
        let out = fetch(&["-m", "10", &server.url("/")]);
        assert_eq!(
            (out.status.code(), out.stdout.as_slice()),
            (Some(0), &b"hello world"[..]),
            "{}",
            parts(&out).2
        );
    }
}

#[test]
fn connection_reset_mid_body_exits_56() {
    let server = RawServer::start(vec![vec![
        Step::Send(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n0123".to_vec()),
        Step::Pause(Duration::from_millis(100)),
        Step::Reset,
    ]]);
    let (code, stdout, stderr) = parts(&fetch(&["-m", "10", &server.url("/")]));
    assert_eq!((code, stdout.as_str()), (56, "0123"), "{stderr}");
    assert!(stderr.contains("after 4 bytes"), "{stderr}");
}
