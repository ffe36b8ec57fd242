//! A stalled log pipe: `tcpkit serve` whose stderr is a pipe nobody reads (a
//! stuck log shipper, `tcpkit serve 2>&1 | (sleep 1000)`). Once the pipe's
//! 64 KiB are full a write to it blocks; serving and shutdown must not.
use std::io::BufRead;
use std::time::{Duration, Instant};

use super::serve::{LIMIT, hello, signal, spawn_serve, wait_exit};

/// Bound on a whole test's load loop, so a slow machine fails instead of hanging.
const LOAD_LIMIT: Duration = Duration::from_secs(120);

/// `n` sequential sessions, each answered in full; each logs one line (~200
/// bytes of JSON) when it closes.
fn sessions(addr: std::net::SocketAddr, n: usize) {
    let start = Instant::now();
    for i in 0..n {
        assert_eq!(hello(addr, &format!("s{i}")), format!("Welcome!\nHello, s{i}!\n"), "session {i}");
        assert!(start.elapsed() < LOAD_LIMIT, "{i} sessions in {LOAD_LIMIT:?}");
    }
}

#[test]
fn a_stalled_log_pipe_never_stops_serving_or_shutdown() {
    let (mut child, addr, stderr) = spawn_serve(&["--threads", "1"]);
    // Kept open, never read: 1,000 lines of ~200 bytes fill the pipe three
    // times over; a server writing its log synchronously stops at about 300.
    sessions(addr, 1000);
    // Still served promptly after the pipe is full.
    assert_eq!(hello(addr, "late"), "Welcome!\nHello, late!\n");
    signal(&child, "TERM");
    let status = wait_exit(&mut child).expect("SIGTERM stops a server whose log pipe is stalled");
    assert_eq!(status.code(), Some(0));
    drop(stderr);
}

#[test]
fn log_lines_dropped_while_stderr_stalled_are_counted_and_reported_once_it_is_read() {
    // Enough sessions to fill the pipe (~330 lines) and the queue (200 lines:
    // --log-queue), then more.
    const SESSIONS: usize = 200 + 1500;
    let (mut child, addr, mut stderr) = spawn_serve(&["--threads", "1", "--log-queue", "200"]);
    let mut line = String::new();
    // The capacity line follows "listening": read it before stalling.
    assert!(stderr.read_line(&mut line).expect("read stderr") > 0);
    sessions(addr, SESSIONS);
    // The reader resumes, on a thread of its own so that every wait is bounded.
    let (tx, lines) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in stderr.lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    // Every session's line is either there or counted as dropped.
    let (mut closed, mut dropped, mut notices) = (0, 0, 0);
    let deadline = Instant::now() + LIMIT;
    while closed + dropped < SESSIONS {
        let left = deadline.saturating_duration_since(Instant::now());
        let Ok(line) = lines.recv_timeout(left) else {
            panic!("{closed} lines and {dropped} dropped of {SESSIONS} sessions");
        };
        let v: serde_json::Value = serde_json::from_str(&line).expect("every line is JSON");
        match v["message"].as_str() {
            Some("closed") => closed += 1,
            Some("log lines dropped: stderr was not being read") => {
                assert_eq!(v["level"], "WARN", "{line}");
                dropped += v["dropped"].as_u64().expect("dropped=N") as usize;
                notices += 1;
            }
            _ => panic!("unexpected line: {line}"),
        }
    }
    assert_eq!(closed + dropped, SESSIONS);
    assert!(dropped > 0 && notices >= 1, "the queue never overflowed: {closed} lines");
    // Nothing is lost once the reader keeps up: the shutdown lines all arrive
    // before the exit.
    signal(&child, "TERM");
    assert_eq!(wait_exit(&mut child).expect("exits").code(), Some(0));
    let rest: Vec<String> = std::iter::from_fn(|| lines.recv_timeout(LIMIT).ok()).collect();
    assert!(rest.iter().any(|l| l.contains("\"message\":\"stopped\"")), "{rest:?}");
    assert!(!rest.iter().any(|l| l.contains("dropped")), "{rest:?}");
}
