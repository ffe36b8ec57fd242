//! Hostile-peer tests for `tcpkit fetch`: one per hardening item, named for the
//! behaviour it protects. Servers are the scripted raw socket and hyper of
//! `tests/fetch/servers.rs`; each test fails without its fix (checked by reverting).
use std::io::Write;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use crate::fetch::servers::{self, HyperServer, Pki, RawServer, Step, full};
use crate::fetch::{fetch, fetch_in, parts};
use crate::util::tcpkit_bin;

/// `len` bytes of pseudo-English (words from a small vocabulary, punctuation, line
/// breaks): compresses as text does, unlike one repeated byte.
fn prose(len: usize) -> Vec<u8> {
    const WORDS: [&str; 16] = [
        "the", "socket", "and", "server", "of", "client", "buffer", "request", "to", "response", "window",
        "a", "stream", "chunk", "is", "byte",
    ];
    let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
    let mut out = Vec::with_capacity(len + 16);
    while out.len() < len {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        out.extend_from_slice(WORDS[(seed % 16) as usize].as_bytes());
        out.extend_from_slice(if (seed >> 8) % 9 == 0 { b".\n" } else { b" " });
    }
    out.truncate(len);
    out
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

fn zlib(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

/// A raw reply: `head` lines, a Content-Length for `body`, then `body`.
fn reply(head: &str, body: &[u8]) -> Vec<u8> {
    let mut r = format!("HTTP/1.1 200 OK\r\n{head}Content-Length: {}\r\n\r\n", body.len()).into_bytes();
    r.extend_from_slice(body);
    r
}

#[test]
fn compressed_megabytes_of_text_decode_and_two_content_encoding_lines_are_one_list() {
    let text = prose(3 << 20);
    let server = RawServer::start(vec![
        vec![Step::Send(reply("Content-Encoding: gzip\r\n", &gzip(&text)))],
        vec![Step::Send(reply(
            "Content-Encoding: deflate\r\nContent-Encoding: gzip\r\n",
            &gzip(&zlib(&text)),
        ))],
    ]);
    for _ in 0..2 {
        let out = fetch(&["--compressed", "-m", "20", &server.url("/")]);
        assert_eq!(out.status.code(), Some(0), "{}", parts(&out).2);
        assert!(out.stdout == text, "decoded body differs: {} bytes", out.stdout.len());
    }
}

#[test]
fn endless_interim_responses_end_with_exit_8_and_a_bounded_dump() {
    let interim = b"HTTP/1.1 102 Processing\r\n\r\n".to_vec();
    let server = RawServer::start(vec![vec![Step::Send(interim.repeat(2_000)); 50]]);
    let dir = tempfile::tempdir().unwrap();
    let dump = dir.path().join("heads.txt");
    let out = fetch(&["-m", "20", "-D", dump.to_str().unwrap(), &server.url("/")]);
    let (code, _, stderr) = parts(&out);
    assert_eq!(code, 8, "{stderr}");
    assert!(stderr.contains("interim"), "{stderr}");
    let dumped = std::fs::metadata(&dump).unwrap().len();
    assert!(dumped <= 101 * interim.len() as u64, "-D holds {dumped} bytes");
    // The bytes of all the heads are bounded too: --max-head, interim heads included.
    let out = fetch(&["-m", "20", "--max-interim", "100000", "--max-head", "4096", &server.url("/")]);
    let (code, _, stderr) = parts(&out);
    assert_eq!(code, 8, "{stderr}");
    assert!(stderr.contains("4096"), "{stderr}");
}

/// A zlib stream of `gib` GiB of zeros, about 1 MiB per GiB: a first block, then the
/// same sync-flushed block of back-references repeated (each only copies zeros).
fn zlib_bomb(gib: usize) -> Vec<u8> {
    use flate2::{Compress, Compression, FlushCompress};
    let mib = vec![0u8; 1 << 20];
    let mut c = Compress::new(Compression::best(), true);
    let block = |c: &mut Compress| {
        let mut out = Vec::with_capacity(64 << 10);
        c.compress_vec(&mib, &mut out, FlushCompress::Sync).unwrap();
        out
    };
    let mut body = block(&mut c);
    let repeat = block(&mut c);
    let again = block(&mut c);
    assert_eq!(repeat, again, "the repeated block is context-free");
    for _ in 1..(gib << 10) {
        body.extend_from_slice(&repeat);
    }
    body
}

#[test]
fn max_time_bounds_decoding_a_compression_bomb_with_exit_28() {
    let body = zlib_bomb(8);
    let server = RawServer::start(vec![vec![Step::Send(reply("Content-Encoding: deflate\r\n", &body))]]);
    let started = std::time::Instant::now();
    let out = fetch(&["--compressed", "-m", "1", "-o", "/dev/null", &server.url("/")]);
    let (code, _, stderr) = parts(&out);
    assert_eq!(code, 28, "{stderr} after {:?}", started.elapsed());
    assert!(stderr.contains("timed out"), "{stderr}");
}

#[test]
fn a_symlink_planted_at_the_part_file_is_refused_and_its_target_untouched() {
    let server = HyperServer::start(Arc::new(|_| full(200, &[], "downloaded")));
    let dir = tempfile::tempdir().unwrap();
    let victim = dir.path().join("victim");
    std::fs::write(&victim, "precious").unwrap();
    std::os::unix::fs::symlink(&victim, dir.path().join("out.part")).unwrap();
    let out = fetch_in(Some(dir.path()), &["-o", "out", &server.url("/")]);
    let (code, _, stderr) = parts(&out);
    assert_eq!(code, 23, "{stderr}");
    assert!(stderr.contains("symbolic link"), "{stderr}");
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious");
    assert!(!dir.path().join("out").exists());
}

fn tls_until_close(pki: &Pki, close_notify: bool) -> RawServer {
    let mut steps =
        vec![Step::Send(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nbody until close".to_vec())];
    if close_notify {
        steps.push(Step::CloseNotify);
    }
    RawServer::start_tls(vec![steps], Some(pki.server_config(&["127.0.0.1"], false)))
}

#[test]
fn an_https_body_cut_without_close_notify_is_truncation_exit_18_with_the_part_kept() {
    let pki = Pki::new();
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, &pki.ca_pem).unwrap();
    let ca = ca.to_str().unwrap();
    let url = |s: &RawServer| format!("https://127.0.0.1:{}/", s.addr.port());

    let server = tls_until_close(&pki, false);
    let out = fetch_in(Some(dir.path()), &["--cacert", ca, "-o", "f", &url(&server)]);
    let (code, _, stderr) = parts(&out);
    assert_eq!(code, 18, "{stderr}");
    assert!(stderr.contains("close_notify"), "{stderr}");
    assert_eq!(std::fs::read(dir.path().join("f.part")).unwrap(), b"body until close");
    assert!(!dir.path().join("f").exists());

    let out = fetch(&["--cacert", ca, "--ignore-missing-close-notify", &url(&server)]);
    assert_eq!((out.status.code(), out.stdout.as_slice()), (Some(0), &b"body until close"[..]));

    let server = tls_until_close(&pki, true);
    let out = fetch(&["--cacert", ca, &url(&server)]);
    assert_eq!(out.status.code(), Some(0), "{}", parts(&out).2);
    assert_eq!(out.stdout, b"body until close");
}

#[test]
fn a_chunk_size_of_endless_leading_zeros_is_refused_early() {
    let mut r = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    r.extend(std::iter::repeat_n(b'0', 4 << 20));
    let server = RawServer::start(vec![vec![Step::Send(r), Step::Pause(Duration::from_secs(20))]]);
    let (code, _, stderr) = parts(&fetch(&["-m", "20", &server.url("/")]));
    assert_eq!(code, 56, "{stderr}");
    assert!(stderr.contains("hex digits"), "{stderr}");
}

#[test]
fn max_time_zero_means_no_limit() {
    let server = RawServer::start(vec![vec![
        Step::Pause(Duration::from_millis(300)),
        Step::Send(reply("", b"in time")),
    ]]);
    let out = fetch(&["-m", "0", &server.url("/")]);
    assert_eq!((out.status.code(), out.stdout.as_slice()), (Some(0), &b"in time"[..]), "{}", parts(&out).2);
}

#[test]
fn url_userinfo_is_sent_as_basic_auth_and_its_password_never_shown() {
    let server = HyperServer::start(Arc::new(|_| full(200, &[], "ok")));
    let url = format!("http://user:s3cret@{}/p", server.addr);
    let out = fetch(&["--timing", "-v", "-w", "%{url_effective}\n%{json}", &url]);
    let (code, stdout, stderr) = parts(&out);
    assert_eq!(code, 0, "{stderr}");
    let seen = server.seen();
    // base64("user:s3cret")
    assert_eq!(seen[0].header("authorization"), Some("Basic dXNlcjpzM2NyZXQ="));
    let masked = format!("http://user:***@{}/p", server.addr);
    assert!(stdout.starts_with(&format!("ok{masked}\n{{")), "{stdout}");
    assert!(!stdout.contains("s3cret"), "{stdout}");
    assert!(!stderr.contains("s3cret") && stderr.contains(&masked), "{stderr}");
}

#[test]
fn a_failed_compressed_download_does_not_suggest_resuming() {
    let mut body = gzip(&prose(100_000));
    body.truncate(body.len() / 2);
    let server = RawServer::start(vec![vec![Step::Send(reply("Content-Encoding: gzip\r\n", &body))]]);
    let dir = tempfile::tempdir().unwrap();
    let (code, _, stderr) =
        parts(&fetch_in(Some(dir.path()), &["--compressed", "-o", "f", &server.url("/")]));
    assert_eq!(code, 61, "{stderr}");
    assert!(stderr.contains("f.part holds") && !stderr.contains("-C -"), "{stderr}");
}

#[test]
fn switching_protocols_to_a_plain_get_is_not_a_download() {
    let server = RawServer::start(vec![vec![Step::Send(
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\nframes"
            .to_vec(),
    )]]);
    let dir = tempfile::tempdir().unwrap();
    let (code, _, stderr) = parts(&fetch_in(Some(dir.path()), &["-o", "f", &server.url("/")]));
    assert_eq!(code, 8, "{stderr}");
    assert!(stderr.contains("101"), "{stderr}");
    assert!(!dir.path().join("f").exists());
}

/// `tcpkit fetch ARGS` through sh with `redirect` applied (`2>&-`...).
fn fetch_sh(redirect: &str, args: &[&str]) -> std::process::Output {
    let mut cmd = Command::new("sh");
    let quoted: Vec<String> = args.iter().map(|a| format!("'{a}'")).collect();
    cmd.arg("-c").arg(format!("exec '{}' fetch {} {redirect}", tcpkit_bin().display(), quoted.join(" ")));
    servers::run(cmd)
}

#[test]
fn verbose_timing_and_write_out_with_a_broken_stderr_or_stdout_do_not_panic() {
    let server = HyperServer::start(Arc::new(|_| full(200, &[], "body")));
    let url = server.url("/");
    let all = ["-v", "--timing", "-w", "%{http_code}", url.as_str()];
    // stderr a pipe whose reader is gone (`2>&1 | head -0`): every diagnostic is lost,
    // the transfer is not.
    let spawn = |stdout: Stdio, stderr: Stdio| {
        let mut cmd = Command::new(tcpkit_bin());
        cmd.arg("fetch").args(all).stdin(Stdio::null()).stdout(stdout).stderr(stderr);
        cmd.spawn().unwrap()
    };
    let mut child = spawn(Stdio::piped(), Stdio::piped());
    drop(child.stderr.take());
    let out = servers::wait(child);
    assert_eq!((out.status.code(), out.stdout.as_slice()), (Some(0), &b"body200"[..]));
    // stdout a pipe whose reader is gone: 23, as curl, with or without a stderr.
    for broken_stderr in [false, true] {
        let mut child = spawn(Stdio::piped(), Stdio::piped());
        drop(child.stdout.take());
        if broken_stderr {
            drop(child.stderr.take());
        }
        let (code, _, stderr) = parts(&servers::wait(child));
        assert_eq!(code, 23, "{stderr}");
    }
    // Closed descriptors (`2>&-`, `>&-`): no panic.
    for redirect in ["2>&-", ">&-", ">&- 2>&-"] {
        let out = fetch_sh(redirect, &all);
        let (code, _, stderr) = parts(&out);
        assert!(code == 0 || code == 23, "{redirect}: {code} {stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
}
