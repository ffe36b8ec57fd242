//! `-o`, `-O` and `-C -`: FILE.part, the rename on success, resuming.
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use super::servers::{HyperServer, RawServer, Step, full, pattern, ranged};
use super::{fetch, fetch_in, parts};

fn body_server(body: Vec<u8>) -> HyperServer {
    HyperServer::start(Arc::new(move |seen| ranged(seen, &body)))
}

fn read(p: &Path) -> Vec<u8> {
    std::fs::read(p).unwrap()
}

#[test]
fn output_file_is_written_through_part_and_renamed() {
    let body = pattern(300_000);
    let server = body_server(body.clone());
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("out.bin");
    for extra in [&[][..], &["--no-splice"][..]] {
        let mut args = vec!["-o", dest.to_str().unwrap()];
        args.extend_from_slice(extra);
        let url = server.url("/f");
        args.push(&url);
        let out = fetch(&args);
        assert_eq!((out.status.code(), out.stdout.len()), (Some(0), 0), "{}", parts(&out).2);
        // stderr is not a terminal here: no progress bar.
        assert_eq!(out.stderr, b"");
        assert_eq!(read(&dest), body);
        assert!(!dir.path().join("out.bin.part").exists());
        std::fs::remove_file(&dest).unwrap();
    }
}

#[test]
fn remote_name_saves_under_the_last_path_segment() {
    let server = body_server(b"named".to_vec());
    let dir = tempfile::tempdir().unwrap();
    let out = fetch_in(Some(dir.path()), &["-O", &server.url("/dir/file.txt?x=1")]);
    assert_eq!(out.status.code(), Some(0), "{}", parts(&out).2);
    assert_eq!(read(&dir.path().join("file.txt")), b"named");
    let out = fetch_in(Some(dir.path()), &["-O", &server.url("/")]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(read(&dir.path().join("index.html")), b"named");
}

/// Content-Length 1000, but the server sends 400 bytes and closes.
fn truncating_server(body: &[u8]) -> RawServer {
    let mut reply = format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", body.len()).into_bytes();
    reply.extend_from_slice(&body[..400]);
    RawServer::start(vec![vec![Step::Send(reply)]])
}

#[test]
fn truncated_transfer_keeps_the_older_file_and_says_how_to_resume() {
    let body = pattern(1000);
    let server = truncating_server(&body);
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("page");
    std::fs::write(&dest, b"previous version").unwrap();
    for extra in [&[][..], &["--no-splice"][..]] {
        let mut args = vec!["-o", dest.to_str().unwrap()];
        args.extend_from_slice(extra);
        let url = server.url("/");
        args.push(&url);
        let (code, _, stderr) = parts(&fetch(&args));
        assert_eq!(code, 18, "{stderr}");
        assert!(stderr.contains("400 of 1000 bytes received"), "{stderr}");
        assert!(stderr.contains("page.part holds 400 bytes") && stderr.contains("-C -"), "{stderr}");
        assert_eq!(read(&dest), b"previous version");
        assert_eq!(read(&dir.path().join("page.part")), &body[..400]);
    }
}

#[test]
fn resume_after_truncation_appends_the_rest() {
    let body = pattern(1000);
    let cut = truncating_server(&body);
    let full_server = body_server(body.clone());
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("big");
    let d = dest.to_str().unwrap();
    assert_eq!(fetch(&["-o", d, &cut.url("/")]).status.code(), Some(18));
    let out = fetch(&["-C", "-", "-o", d, &full_server.url("/")]);
    assert_eq!(out.status.code(), Some(0), "{}", parts(&out).2);
    assert_eq!(read(&dest), body);
    assert!(!dir.path().join("big.part").exists());
    assert_eq!(full_server.seen()[0].header("range"), Some("bytes=400-"));
}

#[test]
fn resume_from_an_existing_file_treats_it_as_partial() {
    let body = pattern(5000);
    let server = body_server(body.clone());
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("f");
    std::fs::write(&dest, &body[..1234]).unwrap();
    let out = fetch(&["-C", "-", "-o", dest.to_str().unwrap(), &server.url("/")]);
    assert_eq!(out.status.code(), Some(0), "{}", parts(&out).2);
    assert_eq!(read(&dest), body);
    assert_eq!(server.seen()[0].header("range"), Some("bytes=1234-"));
}

#[test]
fn resume_starts_over_when_the_server_ignores_the_range() {
    let body = pattern(3000);
    let b2 = body.clone();
    let server = HyperServer::start(Arc::new(move |_| full(200, &[], b2.clone())));
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("f");
    std::fs::write(dir.path().join("f.part"), b"garbage that is not the body").unwrap();
    let out = fetch(&["-C", "-", "-o", dest.to_str().unwrap(), &server.url("/")]);
    assert_eq!(out.status.code(), Some(0), "{}", parts(&out).2);
    assert_eq!(read(&dest), body);
}

#[test]
fn resume_of_a_complete_file_ends_cleanly_on_416() {
    let body = pattern(777);
    let server = body_server(body.clone());
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("f");
    std::fs::write(dir.path().join("f.part"), &body).unwrap();
    let out = fetch(&["-C", "-", "-o", dest.to_str().unwrap(), &server.url("/")]);
    assert_eq!(out.status.code(), Some(0), "{}", parts(&out).2);
    assert_eq!(read(&dest), body);
    // A complete FILE itself: 416 again, the file is left as it is.
    let out = fetch(&["-C", "-", "-o", dest.to_str().unwrap(), &server.url("/")]);
    assert_eq!(out.status.code(), Some(0), "{}", parts(&out).2);
    assert_eq!(read(&dest), body);
    assert_eq!(server.seen().len(), 2);
}

#[test]
fn resume_refuses_a_range_that_does_not_match() {
    let server =
        HyperServer::start(Arc::new(|_| full(206, &[("content-range", "bytes 0-9/10")], "0123456789")));
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("f");
    std::fs::write(dir.path().join("f.part"), b"01234").unwrap();
    let (code, _, stderr) = parts(&fetch(&["-C", "-", "-o", dest.to_str().unwrap(), &server.url("/")]));
    assert_eq!(code, 33, "{stderr}");
    assert_eq!(read(&dir.path().join("f.part")), b"01234");
    assert!(!dest.exists());
}

#[test]
fn resume_needs_an_output_file() {
    let (code, _, stderr) = parts(&fetch(&["-C", "-", "http://127.0.0.1:9/"]));
    assert_eq!(code, 2);
    assert!(stderr.contains("-o FILE"), "{stderr}");
}

#[test]
fn fail_leaves_no_file() {
    let server = HyperServer::start(Arc::new(|_| full(500, &[], "oops")));
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("f");
    let (code, _, _) = parts(&fetch(&["-f", "-o", dest.to_str().unwrap(), &server.url("/")]));
    assert_eq!(code, 22);
    assert!(!dest.exists() && !dir.path().join("f.part").exists());
}

#[test]
fn max_time_during_a_file_download_keeps_the_part() {
    let server = RawServer::start(vec![vec![
        Step::Send(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n0123456789".to_vec()),
        Step::Pause(Duration::from_secs(20)),
    ]]);
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("slow");
    let (code, _, stderr) = parts(&fetch(&["-m", "0.5", "-o", dest.to_str().unwrap(), &server.url("/")]));
    assert_eq!(code, 28, "{stderr}");
    assert!(stderr.contains("slow.part holds 10 bytes"), "{stderr}");
    assert!(!dest.exists());
}
