//! `tcpkit bench --proxy-header` and `--proxy-malformed` against a scripted
//! PROXY receiver that parses every header with `ppp` (the parser HAProxy-style
//! receivers in Rust use), then speaks the hello protocol; and receivers that
//! answer or hang after a malformed header, which must be errors of their own kind.
use std::collections::HashSet;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use ppp::{HeaderResult, PartialResult};

use super::{bench, stderr};

/// Longest header the receiver waits for (v2 with small TLVs; v1 is 107 bytes).
const MAX_HEADER: usize = 536;

#[derive(Clone, Copy, PartialEq)]
enum Mode {
    /// Parse a header, refuse (close, no byte) anything but a valid one, then hello.
    Strict,
    /// Read to EOF and keep the connection open without a byte.
    Hang,
}

/// A thread-per-connection PROXY receiver on 127.0.0.1 port 0.
struct Receiver {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    /// The client each accepted header claims.
    clients: Arc<Mutex<Vec<SocketAddr>>>,
    /// Connections closed because of a bad or incomplete header.
    refused: Arc<AtomicU64>,
}

impl Receiver {
    fn start(mode: Mode) -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let clients = Arc::new(Mutex::new(Vec::new()));
        let refused = Arc::new(AtomicU64::new(0));
        let (stop2, clients2, refused2) = (stop.clone(), clients.clone(), refused.clone());
        thread::spawn(move || {
            for conn in listener.incoming() {
                if stop2.load(Ordering::SeqCst) {
                    return;
                }
                let Ok(conn) = conn else { continue };
                let (clients, refused) = (clients2.clone(), refused2.clone());
                thread::spawn(move || match mode {
                    Mode::Strict => strict(conn, &clients, &refused),
                    Mode::Hang => hang(conn),
                });
            }
        });
        Receiver { addr, stop, clients, refused }
    }

    fn addr(&self) -> String {
        self.addr.to_string()
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(self.addr);
    }
}

/// The client a complete valid header names and the header's length; `None`
/// for an invalid (or address-less) one; `Err` while it is incomplete.
fn parse(buf: &[u8]) -> Result<Option<(SocketAddr, usize)>, ()> {
    let parsed = HeaderResult::parse(buf);
    if parsed.is_incomplete() {
        return Err(());
    }
    Ok(match parsed {
        HeaderResult::V1(Ok(h)) => match h.addresses {
            ppp::v1::Addresses::Tcp4(a) => {
                Some((SocketAddr::new(IpAddr::V4(a.source_address), a.source_port), h.header.len()))
            }
            ppp::v1::Addresses::Tcp6(a) => {
                Some((SocketAddr::new(IpAddr::V6(a.source_address), a.source_port), h.header.len()))
            }
            ppp::v1::Addresses::Unknown => None,
        },
        HeaderResult::V2(Ok(h)) => match h.addresses {
            ppp::v2::Addresses::IPv4(a) => {
                Some((SocketAddr::new(IpAddr::V4(a.source_address), a.source_port), h.header.len()))
            }
            ppp::v2::Addresses::IPv6(a) => {
                Some((SocketAddr::new(IpAddr::V6(a.source_address), a.source_port), h.header.len()))
            }
            _ => None,
        },
        _ => None,
    })
}

fn strict(mut conn: TcpStream, clients: &Mutex<Vec<SocketAddr>>, refused: &AtomicU64) {
    conn.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut buf = Vec::new();
    let mut chunk = [0u8; 256];
    let (client, len) = loop {
        match parse(&buf) {
            Ok(Some(found)) => break found,
            Ok(None) => {
                refused.fetch_add(1, Ordering::SeqCst);
                return;
            }
            Err(()) if buf.len() > MAX_HEADER => {
                refused.fetch_add(1, Ordering::SeqCst);
                return;
            }
            Err(()) => match conn.read(&mut chunk) {
                Ok(0) | Err(_) => {
                    refused.fetch_add(1, Ordering::SeqCst);
                    return;
                }
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            },
        }
    };
    clients.lock().unwrap().push(client);
    let mut writer = conn.try_clone().unwrap();
    if writer.write_all(b"Welcome!\n").is_err() {
        return;
    }
    // Bytes after the header are the first lines.
    let mut reader = BufReader::new((&buf[len..]).chain(conn));
    let mut line = Vec::new();
    loop {
        line.clear();
        match reader.read_until(b'\n', &mut line) {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        let name = line.strip_suffix(b"\n").unwrap_or(&line);
        if name == b"exit" {
            return;
        }
        let reply = [b"Hello, ", name, b"!\n"].concat();
        if writer.write_all(&reply).is_err() {
            return;
        }
    }
}

/// Read until EOF, then hold the connection for a while without a byte.
fn hang(mut conn: TcpStream) {
    conn.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut chunk = [0u8; 256];
    while matches!(conn.read(&mut chunk), Ok(n) if n > 0) {}
    thread::sleep(Duration::from_secs(5));
}

fn source(addr: &str) -> SocketAddr {
    addr.parse().unwrap()
}

#[test]
fn every_connection_sends_a_v1_header_naming_its_own_client() {
    let rx = Receiver::start(Mode::Strict);
    let args = ["-c", "4", "-n", "40", "--proxy-header", "v1", "--proxy-source", "10.1.0.0/24:5000"];
    let (out, j) = bench(&rx.addr(), &args);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(j["verified"], 40, "{j}");
    let mut clients = rx.clients.lock().unwrap().clone();
    clients.sort();
    let expected: Vec<_> = (0..4).map(|i| source(&format!("10.1.0.{i}:5000"))).collect();
    assert_eq!(clients, expected);
    assert_eq!(rx.refused.load(Ordering::SeqCst), 0);
}

#[test]
fn churn_sessions_and_shards_never_share_a_v2_client() {
    let rx = Receiver::start(Mode::Strict);
    // Two agents of one run: 3 slots in all (2 and 1), 12 sessions each.
    for shard in ["0/2", "1/2"] {
        let args = [
            "-w",
            "churn",
            "-c",
            "3",
            "-n",
            "24",
            "--shard",
            shard,
            "--proxy-header",
            "v2",
            "--proxy-source",
            "10.2.0.0/24:7000",
        ];
        let (out, j) = bench(&rx.addr(), &args);
        assert!(out.status.success(), "{}", stderr(&out));
        assert_eq!(j["verified"], 12, "{j}");
    }
    let clients = rx.clients.lock().unwrap().clone();
    assert_eq!(clients.len(), 24);
    // Session `seq` of slot `id` is client `id + 3 seq`, whichever agent runs
    // the slot: 24 sessions, 24 clients, all in the range.
    let distinct: HashSet<_> = clients.iter().collect();
    assert_eq!(distinct.len(), 24, "{clients:?}");
    assert!(clients.iter().all(|c| c.port() == 7000 && c.to_string().starts_with("10.2.0.")), "{clients:?}");
}

#[test]
fn every_malformed_kind_is_verified_by_the_receivers_close() {
    let rx = Receiver::start(Mode::Strict);
    let args = ["-w", "churn", "-c", "3", "-n", "27", "--proxy-malformed", "all"];
    let (out, j) = bench(&rx.addr(), &args);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(j["verified"], 27, "{j}");
    assert_eq!(rx.refused.load(Ordering::SeqCst), 27);
    assert!(rx.clients.lock().unwrap().is_empty(), "a malformed header was accepted");
}

#[test]
fn a_receiver_that_answers_or_hangs_is_an_error_of_its_own_kind() {
    // Not a PROXY receiver at all: it greets whatever connects.
    let plain = super::Server::start(super::Behaviour::Correct);
    let args = ["-w", "churn", "-c", "1", "-n", "1", "--proxy-malformed", "v2-bad-version"];
    let (out, j) = bench(&plain.addr(), &args);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(j["errors_by_kind"]["malformed PROXY header answered"], 1, "{j}");
    assert!(
        stderr(&out).contains(r#"malformed PROXY header (v2-bad-version) answered: "Welcome!\n"#),
        "{}",
        stderr(&out)
    );

    let hang = Receiver::start(Mode::Hang);
    let args =
        ["-w", "churn", "-c", "2", "-n", "2", "--timeout", "300ms", "--proxy-malformed", "v1-truncated"];
    let (out, j) = bench(&hang.addr(), &args);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(j["errors_by_kind"]["malformed PROXY header not refused"], 2, "{j}");
    assert!(stderr(&out).contains("(v1-truncated) not refused: no close within 300 ms"), "{}", stderr(&out));
}

#[test]
fn malformed_headers_need_churn_and_exclude_a_valid_header() {
    let rx = Receiver::start(Mode::Strict);
    let (out, _) = bench_fails(&rx.addr(), &["-n", "1", "--proxy-malformed", "all"]);
    assert!(out.contains("-w churn"), "{out}");
    let (out, _) = bench_fails(&rx.addr(), &["-w", "churn", "--proxy-malformed", "nonsense"]);
    assert!(out.contains("v2-bad-signature"), "{out}");
    let (out, _) =
        bench_fails(&rx.addr(), &["-w", "churn", "--proxy-malformed", "all", "--proxy-header", "v1"]);
    assert!(out.contains("cannot be used with"), "{out}");
}

/// A run refused before it starts: its stderr and exit code.
fn bench_fails(addr: &str, args: &[&str]) -> (String, Option<i32>) {
    let out = crate::util::tcpkit().arg("bench").arg(addr).args(args).output().unwrap();
    assert!(!out.status.success());
    (stderr(&out), out.status.code())
}
