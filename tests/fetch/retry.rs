//! `--retry`: which failures are tried again (curl's transient ones, or all with
//! `--retry-all-errors`), what the output holds, and resuming `FILE.part`.
use super::servers::{RawServer, Step};
use super::{fetch_in, parts};

fn send(bytes: &[u8]) -> Vec<Step> {
    vec![Step::Send(bytes.to_vec())]
}

const OK: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\ngood";
const UNAVAILABLE: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 4\r\n\r\nbusy";

fn run(server: &RawServer, args: &[&str]) -> (i32, String, String, usize) {
    let mut all = vec!["--retry-delay", "0.01", "-m", "20"];
    all.extend_from_slice(args);
    let url = server.url("/f");
    all.push(&url);
    let (code, out, err) = parts(&fetch_in(None, &all));
    (code, out, err, server.requests.lock().unwrap().len())
}

#[test]
fn a_transient_status_is_retried_and_only_the_final_body_is_output() {
    let server = RawServer::start(vec![send(UNAVAILABLE), send(UNAVAILABLE), send(OK)]);
    let (code, stdout, stderr, requests) = run(&server, &["--retry", "3"]);
    assert_eq!((code, stdout.as_str(), requests), (0, "good", 3), "{stderr}");
    assert!(stderr.contains("will retry") && stderr.contains("503"), "{stderr}");
}

#[test]
fn when_retries_run_out_the_last_response_is_the_answer() {
    let server = RawServer::start(vec![send(UNAVAILABLE)]);
    let (code, stdout, _, requests) = run(&server, &["--retry", "1"]);
    assert_eq!((code, stdout.as_str(), requests), (0, "busy", 2));
    let server = RawServer::start(vec![send(UNAVAILABLE)]);
    let (code, _, _, requests) = run(&server, &["--retry", "1", "-f"]);
    assert_eq!((code, requests), (22, 2));
}

#[test]
fn a_status_that_is_not_transient_is_not_retried() {
    let server = RawServer::start(vec![send(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")]);
    let (code, _, _, requests) = run(&server, &["--retry", "3", "-f"]);
    assert_eq!((code, requests), (22, 1));
}

#[test]
fn other_errors_are_retried_only_with_retry_all_errors() {
    let cut = b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\ngo";
    let server = RawServer::start(vec![send(cut), send(OK)]);
    let (code, _, _, requests) = run(&server, &["--retry", "2"]);
    assert_eq!((code, requests), (18, 1));
    let server = RawServer::start(vec![send(cut), send(OK)]);
    let (code, stdout, stderr, requests) = run(&server, &["--retry", "2", "--retry-all-errors"]);
    // On stdout the cut attempt's bytes were already written, as in curl.
    assert_eq!((code, stdout.as_str(), requests), (0, "gogood", 2), "{stderr}");
}

#[test]
fn a_retry_resumes_the_part_file_with_a_range_request() {
    let server = RawServer::start(vec![
        send(b"HTTP/1.1 200 OK\r\nAccept-Ranges: bytes\r\nContent-Length: 10\r\n\r\n0123"),
        send(
            b"HTTP/1.1 206 Partial Content\r\nContent-Range: bytes 4-9/10\r\nContent-Length: 6\r\n\r\n456789",
        ),
    ]);
    let dir = tempfile::tempdir().unwrap();
    let url = server.url("/f");
    let out = fetch_in(
        Some(dir.path()),
        &["--retry", "1", "--retry-all-errors", "--retry-delay", "0.01", "-o", "f", &url],
    );
    assert_eq!(out.status.code(), Some(0), "{}", parts(&out).2);
    assert_eq!(std::fs::read(dir.path().join("f")).unwrap(), b"0123456789");
    let second = String::from_utf8_lossy(&server.requests.lock().unwrap()[1]).into_owned();
    assert!(second.contains("Range: bytes=4-\r\n"), "{second}");
}

#[test]
fn retry_max_time_stops_new_attempts() {
    let server = RawServer::start(vec![send(UNAVAILABLE)]);
    let mut all = vec!["--retry", "5", "--retry-delay", "2", "--retry-max-time", "1"];
    let url = server.url("/");
    all.push(&url);
    let (code, stdout, _) = parts(&fetch_in(None, &all));
    assert_eq!((code, stdout.as_str()), (0, "busy"));
    assert_eq!(server.requests.lock().unwrap().len(), 1);
}
