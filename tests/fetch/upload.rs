//! `-T FILE`: PUT uploads, streamed from the file, with `Expect: 100-continue` handled
//! as curl does for large ones.
use std::sync::Arc;

use super::servers::{HyperServer, RawServer, Step, full, pattern};
use super::{fetch, parts};

fn echo() -> HyperServer {
    HyperServer::start(Arc::new(|seen| full(201, &[], format!("stored {} bytes", seen.body.len()))))
}

#[test]
fn upload_file_is_a_put_of_the_file_without_a_content_type() {
    let server = echo();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("small.bin");
    std::fs::write(&file, pattern(5000)).unwrap();
    let out = fetch(&["-T", file.to_str().unwrap(), &server.url("/dir/")]);
    let (code, stdout, stderr) = parts(&out);
    assert_eq!((code, stdout.as_str()), (0, "stored 5000 bytes"), "{stderr}");
    let seen = &server.seen()[0];
    assert_eq!((seen.method.as_str(), seen.target.as_str()), ("PUT", "/dir/small.bin"));
    assert_eq!(seen.body, pattern(5000));
    assert_eq!((seen.header("content-type"), seen.header("expect")), (None, None));
}

#[test]
fn a_large_upload_waits_for_100_continue_and_streams_the_file() {
    let server = echo();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("big.bin");
    let body = pattern(3 << 20);
    std::fs::write(&file, &body).unwrap();
    let out = fetch(&["-T", file.to_str().unwrap(), "-w", " %{size_upload}", &server.url("/up")]);
    let (code, stdout, stderr) = parts(&out);
    assert_eq!((code, stdout), (0, format!("stored {} bytes {}", body.len(), body.len())), "{stderr}");
    let seen = &server.seen()[0];
    assert_eq!(seen.header("expect"), Some("100-continue"));
    assert!(seen.body == body);
}

#[test]
fn a_final_answer_to_expect_means_the_body_is_not_sent() {
    let server = RawServer::start(vec![vec![Step::Send(
        b"HTTP/1.1 413 Content Too Large\r\nContent-Length: 8\r\nConnection: close\r\n\r\ntoo big!".to_vec(),
    )]]);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("big.bin");
    std::fs::write(&file, pattern(2 << 20)).unwrap();
    let out =
        fetch(&["-T", file.to_str().unwrap(), "-w", " %{http_code} %{size_upload}", &server.url("/up")]);
    let (code, stdout, stderr) = parts(&out);
    assert_eq!((code, stdout.as_str()), (0, "too big! 413 0"), "{stderr}");
    let head = String::from_utf8_lossy(&server.requests.lock().unwrap()[0]).into_owned();
    assert!(head.starts_with("PUT /up HTTP/1.1\r\n") && head.contains("Expect: 100-continue\r\n"), "{head}");
}
