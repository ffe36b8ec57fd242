//! `fetch --trace`, `--trace-ascii`, `--trace-time`: curl's layout, header and
//! data told apart, every redirect hop traced, a failing sink harmless.
use std::time::Duration;

use super::servers::{RawServer, Step};
use super::{fetch, fetch_in, parts};

/// curl's `--trace` layout of one event, written independently of the code under test.
fn curl_hex(label: &str, bytes: &[u8]) -> String {
    let mut out = format!("{label}, {} bytes (0x{:x})\n", bytes.len(), bytes.len());
    for (n, line) in bytes.chunks(16).enumerate() {
        out.push_str(&format!("{:04x}: ", n * 16));
        for i in 0..16 {
            match line.get(i) {
                Some(b) => out.push_str(&format!("{b:02x} ")),
                None => out.push_str("   "),
            }
        }
        out.extend(line.iter().map(|&b| if (0x20..0x7f).contains(&b) { b as char } else { '.' }));
        out.push('\n');
    }
    out
}

/// A trace parsed back: `Info` lines and data events, adjacent events of the
/// same direction and kind merged (how reads split the bytes is the kernel's).
#[derive(Debug, PartialEq)]
pub enum Event {
    Info(String),
    Bytes(String, Vec<u8>),
}

pub fn parse_trace(text: &str) -> Vec<Event> {
    let mut events: Vec<Event> = Vec::new();
    for line in text.lines() {
        if let Some(info) = line.strip_prefix("== Info: ") {
            events.push(Event::Info(info.to_string()));
        } else if line.starts_with("=> ") || line.starts_with("<= ") {
            let label = line.split(',').next().unwrap().to_string();
            match events.last() {
                Some(Event::Bytes(l, _)) if *l == label => {}
                _ => events.push(Event::Bytes(label, Vec::new())),
            }
        } else {
            let (_, rest) = line.split_once(": ").expect("a hex line");
            let Some(Event::Bytes(_, bytes)) = events.last_mut() else {
                panic!("hex before an event: {line}")
            };
            bytes.extend(rest[..48].split_whitespace().map(|h| u8::from_str_radix(h, 16).unwrap()));
        }
    }
    events
}

fn bytes(label: &str, b: &[u8]) -> Event {
    Event::Bytes(label.into(), b.to_vec())
}

const HEAD: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 11\r\n\r\n";

#[test]
fn trace_is_curls_layout_with_header_and_data_apart() {
    let server = RawServer::start(vec![vec![Step::Send(HEAD.to_vec()), Step::Send(b"hello world".to_vec())]]);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.txt");
    let out = fetch(&["--trace", path.to_str().unwrap(), &server.url("/a")]);
    let (code, stdout, stderr) = parts(&out);
    assert_eq!((code, stdout.as_str()), (0, "hello world"), "{stderr}");
    let text = std::fs::read_to_string(&path).unwrap();
    let request = server.requests.lock().unwrap()[0].clone();
    let (first, rest) = text.split_once('\n').unwrap();
    let connected = format!("== Info: Connected to 127.0.0.1 ({}) from 127.0.0.1:", server.addr);
    assert!(first.starts_with(&connected), "{first}");
    let want = curl_hex("=> Send header", &request)
        + &curl_hex("<= Recv header", HEAD)
        + &curl_hex("<= Recv data", b"hello world")
        + "== Info: Connection #0 to host 127.0.0.1 left intact\n";
    assert_eq!(rest, want);
}

#[test]
fn chunked_body_is_data_with_its_framing_and_ascii_layout_works() {
    let body: &[&[u8]] = &[
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n",
        b"6\r\n world\r\n0\r\n\r\n",
    ];
    let server = RawServer::start(vec![vec![
        Step::Send(body[0].to_vec()),
        Step::Pause(Duration::from_millis(50)),
        Step::Send(body[1].to_vec()),
    ]]);
    let dir = tempfile::tempdir().unwrap();
    let hex = dir.path().join("hex.txt");
    let out = fetch(&["--trace", hex.to_str().unwrap(), &server.url("/c")]);
    assert_eq!(parts(&out).1, "hello world");
    let request = server.requests.lock().unwrap()[0].clone();
    let events = parse_trace(&std::fs::read_to_string(&hex).unwrap());
    let head_len = body[0].windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    let mut data = body[0][head_len..].to_vec();
    data.extend_from_slice(body[1]);
    assert_eq!(
        events[1..],
        [
            bytes("=> Send header", &request),
            bytes("<= Recv header", &body[0][..head_len]),
            bytes("<= Recv data", &data),
            Event::Info("Connection #0 to host 127.0.0.1 left intact".into()),
        ]
    );
    // --trace-ascii to stdout, after the body.
    let out = fetch(&["--trace-ascii", "-", &server.url("/c")]);
    let stdout = parts(&out).1;
    assert!(stdout.contains("== Info: Connected to 127.0.0.1"), "{stdout}");
    assert!(
        stdout.contains(
            "<= Recv header, 47 bytes (0x2f)\n0000: HTTP/1.1 200 OK\n0011: Transfer-Encoding: chunked\n"
        ),
        "{stdout}"
    );
    assert!(stdout.contains("<= Recv data, "), "{stdout}");
}

#[test]
fn every_redirect_hop_is_traced_with_its_connection() {
    let target =
        RawServer::start(vec![vec![Step::Send(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok".to_vec())]]);
    let moved =
        format!("HTTP/1.1 302 Found\r\nLocation: {}\r\nContent-Length: 0\r\n\r\n", target.url("/end"));
    let first = RawServer::start(vec![vec![Step::Send(moved.clone().into_bytes())]]);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.txt");
    let out = fetch(&["-L", "--trace", path.to_str().unwrap(), &first.url("/start")]);
    assert_eq!(parts(&out).1, "ok");
    let events = parse_trace(&std::fs::read_to_string(&path).unwrap());
    let infos: Vec<&String> =
        events.iter().filter_map(|e| if let Event::Info(i) = e { Some(i) } else { None }).collect();
    assert_eq!(infos.len(), 5, "{infos:?}");
    assert!(infos[0].starts_with(&format!("Connected to 127.0.0.1 ({}) from 127.0.0.1:", first.addr)));
    // The redirect's empty body is complete: its connection is kept, as curl says.
    assert_eq!(*infos[1], "Connection #0 to host 127.0.0.1 left intact");
    assert_eq!(*infos[2], format!("Issue another request to this URL: '{}'", target.url("/end")));
    assert!(infos[3].starts_with(&format!("Connected to 127.0.0.1 ({}) from 127.0.0.1:", target.addr)));
    assert_eq!(*infos[4], "Connection #1 to host 127.0.0.1 left intact");
    let recv_heads: Vec<&Vec<u8>> = events
        .iter()
        .filter_map(|e| match e {
            Event::Bytes(l, b) if l == "<= Recv header" => Some(b),
            _ => None,
        })
        .collect();
    assert_eq!(recv_heads[0], &moved.into_bytes());
    assert!(recv_heads[1].starts_with(b"HTTP/1.1 200 OK"));
}

#[test]
fn trace_time_prefixes_every_event() {
    let server =
        RawServer::start(vec![vec![Step::Send(b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nx".to_vec())]]);
    let out = fetch(&["--trace-ascii", "-", "--trace-time", "-o", "/dev/null", &server.url("/")]);
    let stdout = parts(&out).1;
    let events: Vec<&str> = stdout
        .lines()
        .filter(|l| !l.starts_with(|c: char| c.is_ascii_hexdigit() && l.as_bytes()[4] == b':'))
        .collect();
    assert!(events.len() >= 4, "{stdout}");
    for line in events {
        let (time, rest) = line.split_at(16);
        let b = time.as_bytes();
        assert!(b[2] == b':' && b[5] == b':' && b[8] == b'.' && b[15] == b' ', "{line}");
        assert!(time[..15].chars().filter(|c| c.is_ascii_digit()).count() == 12, "{line}");
        assert!(
            rest.starts_with("== Info: ") || rest.starts_with("=> Send ") || rest.starts_with("<= Recv "),
            "{line}"
        );
    }
}

#[test]
fn a_failing_trace_sink_never_fails_the_transfer() {
    let server = RawServer::start(vec![vec![Step::Send(HEAD.to_vec()), Step::Send(b"hello world".to_vec())]]);
    let dir = tempfile::tempdir().unwrap();
    let out = fetch_in(Some(dir.path()), &["--trace", "/dev/full", "-o", "got", &server.url("/")]);
    let (code, _, stderr) = parts(&out);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(std::fs::read(dir.path().join("got")).unwrap(), b"hello world");
    assert_eq!(stderr.matches("warning: trace /dev/full").count(), 1, "{stderr}");
}

#[test]
fn over_tls_the_trace_holds_the_handshake_and_the_application_bytes() {
    let pki = super::servers::Pki::new();
    let config = pki.server_config(&["127.0.0.1"], false);
    let server = RawServer::start_tls(
        vec![vec![Step::Send(HEAD.to_vec()), Step::Send(b"hello world".to_vec()), Step::CloseNotify]],
        Some(config),
    );
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, &pki.ca_pem).unwrap();
    let path = dir.path().join("t.txt");
    let url = format!("https://{}/s", server.addr);
    let out = fetch(&["--cacert", ca.to_str().unwrap(), "--trace", path.to_str().unwrap(), &url]);
    let (code, stdout, stderr) = parts(&out);
    assert_eq!((code, stdout.as_str()), (0, "hello world"), "{stderr}");
    let events = parse_trace(&std::fs::read_to_string(&path).unwrap());
    let infos: Vec<&String> =
        events.iter().filter_map(|e| if let Event::Info(i) = e { Some(i) } else { None }).collect();
    assert!(infos[1].starts_with("TLS: TLSv1.3 TLS13_"), "{infos:?}");
    assert!(infos[1].ends_with(", ALPN http/1.1"), "{infos:?}");
    assert!(infos.iter().any(|i| i.starts_with("peer certificate: issuer: CN=tcpkit test CA")), "{infos:?}");
    assert!(infos.iter().any(|i| i.starts_with("peer certificate: subject: ")), "{infos:?}");
    let request = server.requests.lock().unwrap()[0].clone();
    let data: Vec<&Event> = events.iter().filter(|e| matches!(e, Event::Bytes(..))).collect();
    assert_eq!(
        data,
        [
            &bytes("=> Send header", &request),
            &bytes("<= Recv header", HEAD),
            &bytes("<= Recv data", b"hello world")
        ]
    );
}
