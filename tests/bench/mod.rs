//! Integration tests of `tcpkit bench`: the binary against servers started here
//! on loopback port 0 (correct ones, and ones that are wrong on purpose), and
//! against `tcpkit serve`.
use std::io::{BufRead, BufReader, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream};
use std::process::Output;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use crate::util::{ServeProcess, tcpkit};

/// How a scripted server answers line number `n` (0-based) of a connection.
#[derive(Clone, Copy)]
enum Behaviour {
    /// `Hello, <line>!\n`, and `exit` closes.
    Correct,
    /// `Hello, <line>\n`: the `!` is missing from line `from` on.
    NoBang { from: usize },
    /// Reset the connection instead of answering line `at`.
    ResetAt { at: usize },
    /// Send half of the reply to line `at`, then close.
    CutAt { at: usize },
    /// Stop answering from line `at` on (the connection stays open).
    SilentFrom { at: usize },
    /// Wait this many milliseconds before answering the first line.
    StallFirst { ms: u64 },
}

/// A thread-per-connection hello server on 127.0.0.1 port 0; stops when dropped.
struct Server {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    peers: Arc<Mutex<Vec<IpAddr>>>,
    accept: Option<thread::JoinHandle<()>>,
}

impl Server {
    fn start(behaviour: Behaviour) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let peers = Arc::new(Mutex::new(Vec::new()));
        let (stop2, peers2) = (stop.clone(), peers.clone());
        let accept = thread::spawn(move || {
            // Ends when `stop` is set (Drop wakes it with one last connection).
            for conn in listener.incoming() {
                if stop2.load(Ordering::SeqCst) {
                    return;
                }
                let Ok(conn) = conn else { continue };
                if let Ok(peer) = conn.peer_addr() {
                    peers2.lock().unwrap().push(peer.ip());
                }
                thread::spawn(move || serve_one(conn, behaviour));
            }
        });
        Server { addr, stop, peers, accept: Some(accept) }
    }

    fn addr(&self) -> String {
        self.addr.to_string()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(self.addr);
        if let Some(t) = self.accept.take() {
            let _ = t.join();
        }
    }
}

/// One connection; each read is bounded by a timeout, so every thread ends.
fn serve_one(conn: TcpStream, behaviour: Behaviour) {
    conn.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut writer = conn.try_clone().unwrap();
    let mut reader = BufReader::new(conn);
    if writer.write_all(b"Welcome!\n").is_err() {
        return;
    }
    let mut line = Vec::new();
    for n in 0.. {
        line.clear();
        match reader.read_until(b'\n', &mut line) {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        let name = line.strip_suffix(b"\n").unwrap_or(&line).to_vec();
        if name == b"exit" {
            return;
        }
        let mut reply = b"Hello, ".to_vec();
        reply.extend_from_slice(&name);
        let sent = match behaviour {
            Behaviour::NoBang { from } if n >= from => {
                reply.push(b'\n');
                writer.write_all(&reply)
            }
            Behaviour::ResetAt { at } if n == at => {
                socket2::SockRef::from(&writer).set_linger(Some(Duration::ZERO)).unwrap();
                return;
            }
            Behaviour::SilentFrom { at } if n >= at => Ok(()),
            Behaviour::StallFirst { ms } if n == 0 => {
                thread::sleep(Duration::from_millis(ms));
                reply.extend_from_slice(b"!\n");
                writer.write_all(&reply)
            }
            Behaviour::CutAt { at } if n == at => {
                let _ = writer.write_all(&reply[..reply.len() / 2]);
                return;
            }
            _ => {
                reply.extend_from_slice(b"!\n");
                writer.write_all(&reply)
            }
        };
        if sent.is_err() {
            return;
        }
    }
}

/// Run `tcpkit bench ADDR ARGS... --json` and parse its report.
fn bench(addr: &str, args: &[&str]) -> (Output, serde_json::Value) {
    let out = tcpkit().arg("bench").arg(addr).args(args).arg("--json").output().unwrap();
    let json = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "not JSON ({e}): {}\nstderr: {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out, json)
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn a_correct_server_passes_with_every_reply_verified() {
    let server = Server::start(Behaviour::Correct);
    let (out, j) = bench(&server.addr(), &["-c", "4", "-n", "400"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(j["verified"], 400, "{j}");
    assert_eq!(j["errors"], 0);
    assert_eq!(j["established"], 4);
    assert!(j["latency"]["max_us"].as_u64().unwrap() >= j["latency"]["p50_us"].as_u64().unwrap());
}

#[test]
fn a_missing_exclamation_mark_fails_the_run_with_a_one_line_verdict() {
    let server = Server::start(Behaviour::NoBang { from: 3 });
    let (out, j) = bench(&server.addr(), &["-c", "2", "-d", "1"]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.starts_with("tcpkit: error: bench: 2 errors (wrong reply 2)"), "{err}");
    assert!(err.contains(r#"got "Hello, client"#) && err.contains(r#"-3\n""#), "{err}");
    // The three good replies per connection before it still count.
    assert_eq!(j["verified_total"], 6, "{j}");
    assert_eq!(j["first_errors"][0]["kind"], "wrong reply");
}

#[test]
fn a_reset_is_caught_and_counted() {
    let server = Server::start(Behaviour::ResetAt { at: 5 });
    let (out, j) = bench(&server.addr(), &["-c", "3", "-d", "1"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(j["errors_by_kind"]["reset"], 3, "{j}");
    assert_eq!(j["verified_total"], 15);
    assert!(stderr(&out).contains("connection reset"), "{}", stderr(&out));
}

#[test]
fn a_reply_cut_short_by_a_close_is_a_short_read() {
    let server = Server::start(Behaviour::CutAt { at: 0 });
    let (out, j) = bench(&server.addr(), &["-c", "1", "-d", "1"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(j["errors_by_kind"]["short read"], 1, "{j}");
    assert!(
        stderr(&out).contains(r#"short read: closed after 8 of 18 bytes of "Hello, client0-0!\n""#),
        "{}",
        stderr(&out)
    );
}

#[test]
fn a_server_that_stops_answering_is_a_timeout() {
    let server = Server::start(Behaviour::SilentFrom { at: 2 });
    let (out, j) = bench(&server.addr(), &["-c", "2", "-d", "5", "--timeout", "300ms"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(j["errors_by_kind"]["timeout"], 2, "{j}");
    assert_eq!(j["verified_total"], 4);
    assert!(
        stderr(&out).contains(r#"timed out after 300 ms waiting for "Hello, client"#),
        "{}",
        stderr(&out)
    );
}

#[test]
fn allow_errors_reports_them_but_exits_zero() {
    let server = Server::start(Behaviour::NoBang { from: 0 });
    let out =
        tcpkit().args(["bench", &server.addr(), "-c", "1", "-d", "1", "--allow-errors"]).output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("errors:      1 (wrong reply 1)"), "{text}");
    assert!(text.contains("conn 0: wrong reply at byte 16"), "{text}");
}

#[test]
fn a_refused_connection_is_an_error() {
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let (out, j) = bench(&format!("127.0.0.1:{port}"), &["-c", "2", "-d", "1"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(j["connect_failed"], 2, "{j}");
    assert!(stderr(&out).contains("connect failed"), "{}", stderr(&out));
}

#[test]
fn hold_keeps_every_connection_to_the_end() {
    let server = Server::start(Behaviour::Correct);
    let (out, j) = bench(&server.addr(), &["-w", "hold", "-c", "50", "-d", "0.3"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(j["held"], 50, "{j}");
}

#[test]
fn churn_runs_whole_sessions_until_the_server_closes() {
    let server = Server::start(Behaviour::Correct);
    let (out, j) = bench(&server.addr(), &["-w", "churn", "-c", "2", "-n", "20"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(j["verified"], 20, "{j}");
    // One connection per session.
    assert_eq!(server.peers.lock().unwrap().len(), 20);
}

#[test]
fn source_addresses_are_used_round_robin() {
    let server = Server::start(Behaviour::Correct);
    let (out, j) = bench(&server.addr(), &["-c", "8", "-n", "80", "--source", "127.0.0.1-127.0.0.4"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(j["verified"], 80);
    let mut peers = server.peers.lock().unwrap().clone();
    peers.sort();
    peers.dedup();
    let want: Vec<IpAddr> = (1..=4).map(|i| format!("127.0.0.{i}").parse().unwrap()).collect();
    assert_eq!(peers, want);
}

#[test]
fn open_loop_pipelined_and_multithreaded_runs_verify_every_reply() {
    let server = Server::start(Behaviour::Correct);
    for extra in [&["--rate", "2000"][..], &["--pipeline", "8"], &["--threads", "2", "--pipeline", "3"]] {
        let mut args = vec!["-c", "4", "-n", "200"];
        args.extend_from_slice(extra);
        let (out, j) = bench(&server.addr(), &args);
        assert!(out.status.success(), "{extra:?}: {}", stderr(&out));
        assert_eq!(j["verified"], 200, "{extra:?}: {j}");
    }
}

#[test]
fn open_loop_charges_a_stall_to_every_request_due_during_it() {
    // The first reply takes 300 ms. At 100 requests/s, requests 1..=10 were due
    // 10..100 ms in but could not be sent before the stall ended, so measured from
    // their intended send times each took at least 200 ms: over half of the 20.
    let server = Server::start(Behaviour::StallFirst { ms: 300 });
    let (out, j) = bench(&server.addr(), &["-c", "1", "-n", "20", "--rate", "100"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(j["latency"]["p50_us"].as_u64().unwrap() >= 200_000, "{j}");
    // Closed loop, the stall is one slow sample (the lower bound only: no timed upper bound).
    let server = Server::start(Behaviour::StallFirst { ms: 300 });
    let (out, j) = bench(&server.addr(), &["-c", "1", "-n", "20"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(j["latency"]["max_us"].as_u64().unwrap() >= 300_000, "{j}");
}

#[test]
fn warmup_replies_are_verified_but_not_measured() {
    let server = Server::start(Behaviour::Correct);
    let (out, j) = bench(&server.addr(), &["-c", "2", "-n", "100", "--warmup", "0.2"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(j["verified"], 100);
    assert!(j["verified_total"].as_u64().unwrap() > 100, "{j}");
}

#[test]
fn plot_writes_an_svg_chart() {
    let server = Server::start(Behaviour::Correct);
    let dir = tempfile::tempdir().unwrap();
    let svg = dir.path().join("latency.svg");
    let out =
        tcpkit().args(["bench", &server.addr(), "-c", "2", "-d", "1", "--plot"]).arg(&svg).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let text = std::fs::read_to_string(&svg).unwrap();
    assert!(text.starts_with("<svg") && text.contains("latency by percentile"));
}

#[test]
fn bad_flags_are_clear_errors() {
    let out = tcpkit().args(["bench", "nowhere", "-d", "1"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("not HOST:PORT"), "{}", stderr(&out));
    let out = tcpkit().args(["bench", "127.0.0.1:1", "-m", "a\nb"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("--message: must not contain a newline"), "{}", stderr(&out));
    let out = tcpkit().args(["bench", "127.0.0.1:1", "--rate", "0"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
}

/// `tcpkit serve` on a port of its own, and its address.
fn start_serve(extra: &[&str]) -> (ServeProcess, String) {
    let serve = ServeProcess::start(extra);
    let addr = serve.addr.to_string();
    (serve, addr)
}

#[test]
fn bench_against_tcpkit_serve_verifies_hello_churn_and_hold() {
    let (_serve, addr) = start_serve(&[]);
    for (workload, key, want) in [("hello", "verified", 500), ("churn", "verified", 50)] {
        let (out, j) = bench(&addr, &["-w", workload, "-c", "5", "-n", &want.to_string()]);
        assert!(out.status.success(), "{workload}: {}", stderr(&out));
        assert_eq!(j[key], want, "{workload}: {j}");
    }
    let (out, j) = bench(&addr, &["-w", "hold", "-c", "100", "-d", "0.5"]);
    assert!(out.status.success(), "hold: {}", stderr(&out));
    assert_eq!(j["held"], 100);
    // Echo expectations against a hello server: every reply is wrong.
    let (out, j) = bench(&addr, &["-w", "echo", "--greeting", "Welcome!", "-c", "2", "-d", "1"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(j["errors_by_kind"]["wrong reply"], 2, "{j}");
}

#[test]
fn connections_over_the_servers_limit_are_reported_busy() {
    let (_serve, addr) = start_serve(&["--max-connections", "2"]);
    let (out, j) = bench(&addr, &["-w", "hold", "-c", "4", "-d", "0.5"]);
    assert_eq!(out.status.code(), Some(1));
    // The server was started without a probe connection: exactly two places.
    let (held, busy) = (j["held"].as_u64().unwrap(), j["errors_by_kind"]["wrong reply"].as_u64().unwrap());
    assert!(held == 2 && busy == 2, "{j}");
    assert!(stderr(&out).contains(r#"got "ERR server busy\n""#), "{}", stderr(&out));
}

#[test]
fn echo_workload_verifies_serve_configured_as_an_echo_server() {
    let (_serve, addr) = start_serve(&["--greeting", "", "--reply", "{}"]);
    let (out, j) = bench(&addr, &["-w", "echo", "-c", "3", "-n", "300", "--pipeline", "4"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(j["verified"], 300, "{j}");
}

#[test]
fn find_max_rate_with_shard_needs_a_start_time_and_a_log() {
    let refused = |extra: &[&str]| {
        let out = tcpkit()
            .args(["bench", "127.0.0.1:1", "--find-max-rate", "--shard", "0/2", "-c", "4"])
            .args(extra)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
        stderr(&out)
    };
    let err = refused(&["--start-at", "2000000000"]);
    assert!(err.contains("--find-max-rate with --shard needs --hdr-log"), "{err}");
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("a.hlog");
    let err = refused(&["--hdr-log", log.to_str().unwrap()]);
    assert!(err.contains("needs --start-at"), "{err}");
    // And a log without a shard: the search's steps would not be merged.
    let out = tcpkit()
        .args(["bench", "127.0.0.1:1", "--find-max-rate", "--hdr-log", log.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("--hdr-log with --find-max-rate needs --shard"), "{}", stderr(&out));
}

mod distributed;
#[cfg(feature = "interop")]
mod haproxy;
mod proxy;
mod tls;
