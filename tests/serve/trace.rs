//! `tcpkit serve --trace DIR`: one curl-style trace per connection, holding
//! what crossed it both ways in order, bounded by `--trace-max-bytes`; a bad
//! directory is a start error, a directory lost later never affects serving.
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::util::ServeProcess as Proc;

/// Bound on waiting for a trace to be written out.
const LIMIT: Duration = Duration::from_secs(10);

/// The data of a curl `--trace` file: the bytes sent (`=>`) and received
/// (`<=`), each direction concatenated in order, and the events in order.
#[derive(Debug, Default)]
pub struct Parsed {
    pub sent: Vec<u8>,
    pub recv: Vec<u8>,
    pub events: Vec<(char, Vec<u8>)>,
    pub info: Vec<String>,
}

pub fn parse(text: &str) -> Parsed {
    let mut p = Parsed::default();
    for line in text.lines() {
        if line.starts_with("=> Send data") {
            p.events.push(('>', Vec::new()));
        } else if line.starts_with("<= Recv data") {
            p.events.push(('<', Vec::new()));
        } else if let Some(info) = line.strip_prefix("== Info: ") {
            p.info.push(info.to_string());
        } else if line.len() > 6 && line.as_bytes()[4] == b':' {
            // `0000: 57 65 ...` then the ASCII column: the hex column is 16 * 3 wide.
            let hex = &line[6..line.len().min(6 + 48)];
            let bytes = hex.split_whitespace().map(|h| u8::from_str_radix(h, 16).expect("hex byte"));
            p.events.last_mut().expect("data after a header").1.extend(bytes);
        }
    }
    for (dir, bytes) in &p.events {
        if *dir == '>' { &mut p.sent } else { &mut p.recv }.extend_from_slice(bytes);
    }
    p
}

/// The one trace file in `dir`, once its connection's trace is complete
/// (`done` holds), waited for at most [`LIMIT`].
pub fn wait_trace(dir: &Path, done: impl Fn(&str) -> bool) -> (PathBuf, String) {
    let deadline = std::time::Instant::now() + LIMIT;
    loop {
        let files: Vec<PathBuf> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).collect();
        if let [one] = files.as_slice() {
            let text = std::fs::read_to_string(one).unwrap();
            if done(&text) {
                return (one.clone(), text);
            }
        }
        assert!(std::time::Instant::now() < deadline, "no complete trace in {}: {files:?}", dir.display());
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn start(dir: &Path, extra: &[&str]) -> Proc {
    let mut args = vec!["--trace", dir.to_str().unwrap()];
    args.extend_from_slice(extra);
    Proc::start(&args)
}

#[test]
fn pipelined_lines_are_traced_in_order_both_ways_in_a_file_named_by_the_four_tuple() {
    let dir = tempfile::tempdir().unwrap();
    let mut p = start(dir.path(), &[]);
    let mut s = TcpStream::connect(p.addr).unwrap();
    s.set_read_timeout(Some(LIMIT)).unwrap();
    let client = s.local_addr().unwrap();
    s.write_all(b"Michael\nTracy\nSarah\nexit\n").unwrap();
    let mut got = Vec::new();
    s.read_to_end(&mut got).unwrap();
    assert_eq!(got, b"Welcome!\nHello, Michael!\nHello, Tracy!\nHello, Sarah!\n");
    p.wait_log(|v| v["message"] == "closed");

    let (path, text) = wait_trace(dir.path(), |t| parse(t).sent.ends_with(b"Hello, Sarah!\n"));
    let name = path.file_name().unwrap().to_str().unwrap().to_string();
    assert!(name.ends_with(&format!("Z_{client}_{}.trace", p.addr)), "{name}");
    let t = parse(&text);
    assert_eq!(t.recv, b"Michael\nTracy\nSarah\nexit\n", "{text}");
    assert_eq!(t.sent, got, "{text}");
    // The greeting goes out before any line is read.
    assert_eq!(t.events[0], ('>', b"Welcome!\n".to_vec()), "{text}");
    assert_eq!(t.info[0], format!("Accepted {client} on {}", p.addr));
}

#[test]
fn trace_max_bytes_bounds_each_file_with_one_marker_line() {
    let dir = tempfile::tempdir().unwrap();
    let mut p = start(dir.path(), &["--trace-max-bytes", "40"]);
    let mut s = TcpStream::connect(p.addr).unwrap();
    s.set_read_timeout(Some(LIMIT)).unwrap();
    let input: Vec<u8> = (0..50).flat_map(|i| format!("line{i}\n").into_bytes()).chain(*b"exit\n").collect();
    s.write_all(&input).unwrap();
    let mut got = Vec::new();
    s.read_to_end(&mut got).unwrap();
    assert!(got.ends_with(b"Hello, line49!\n"));
    p.wait_log(|v| v["message"] == "closed");
    let (_, text) = wait_trace(dir.path(), |t| t.contains("limit of 40 bytes reached"));
    let t = parse(&text);
    assert_eq!(t.sent.len() + t.recv.len(), 40, "{text}");
    assert_eq!(text.matches("limit of 40 bytes reached").count(), 1, "{text}");
    // What was recorded is the start of the conversation, unaltered.
    assert!(got.starts_with(&t.sent) && input.starts_with(&t.recv), "{text}");
}

#[test]
fn an_unwritable_trace_dir_is_a_clear_start_error() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing");
    let out = crate::util::tcpkit()
        .args(["serve", "--listen", "127.0.0.1:0", "--trace"])
        .arg(&missing)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--trace: ") && err.contains("missing"), "{err}");
}

#[test]
fn a_trace_dir_lost_while_serving_is_logged_once_and_serving_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let traces = dir.path().join("traces");
    std::fs::create_dir(&traces).unwrap();
    let mut p = start(&traces, &[]);
    std::fs::remove_dir(&traces).unwrap();
    for name in ["Ann", "Bob"] {
        let mut s = TcpStream::connect(p.addr).unwrap();
        s.set_read_timeout(Some(LIMIT)).unwrap();
        s.write_all(format!("{name}\nexit\n").as_bytes()).unwrap();
        let mut got = String::new();
        s.read_to_string(&mut got).unwrap();
        assert_eq!(got, format!("Welcome!\nHello, {name}!\n"));
    }
    let warn = p.wait_log(|v| v["message"].as_str().is_some_and(|m| m.starts_with("trace: ")));
    assert_eq!(warn["level"], "WARN", "{warn}");
    // Once for the server: the second connection's failure is not logged again.
    let mut s = TcpStream::connect(p.addr).unwrap();
    s.write_all(b"exit\n").unwrap();
    let _ = s.read_to_end(&mut Vec::new());
    let mut more = 0;
    while let Ok(v) = p.logs.recv_timeout(Duration::from_millis(500)) {
        more += usize::from(v["message"].as_str().is_some_and(|m| m.starts_with("trace: ")));
    }
    assert_eq!(more, 0);
}

#[test]
fn over_tls_the_trace_holds_the_plaintext() {
    let pki = super::tls::Pki::new("trace CA");
    let dir = tempfile::tempdir().unwrap();
    let mut args = pki.server_args();
    args.extend(["--trace".into(), dir.path().display().to_string()]);
    let mut p = Proc::start(&args.iter().map(String::as_str).collect::<Vec<_>>());
    let mut tls = super::tls::connect(p.addr, super::tls::client_config(&pki, false)).unwrap();
    tls.write_all(b"Ann\nexit\n").unwrap();
    let mut got = Vec::new();
    tls.read_to_end(&mut got).unwrap();
    p.wait_log(|v| v["message"] == "closed");
    let (_, text) = wait_trace(dir.path(), |t| parse(t).sent.ends_with(b"Hello, Ann!\n"));
    let t = parse(&text);
    assert_eq!(t.recv, b"Ann\nexit\n", "{text}");
    assert_eq!(t.sent, b"Welcome!\nHello, Ann!\n", "{text}");
}
