//! Hostile-peer tests for `tcpkit serve`: a broken log pipe, clients queued at
//! shutdown, memory-hungry clients and templates, a low open-file limit.
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, ChildStderr, Stdio};
use std::time::{Duration, Instant};

use crate::util::{ServeProcess, tcpkit};

/// Bound on any single wait, so a bug fails instead of hanging.
const LIMIT: Duration = Duration::from_secs(10);

/// Start `tcpkit serve` on port 0 with JSON logs and `args`; read its stderr
/// up to the "listening" line and return the child, its address and the pipe.
fn spawn_serve(args: &[&str]) -> (Reaped, SocketAddr, BufReader<ChildStderr>) {
    let child = tcpkit()
        .args(["serve", "--listen", "127.0.0.1:0", "--log-format", "json"])
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn tcpkit serve");
    let mut child = Reaped(child);
    let mut stderr = BufReader::new(child.0.stderr.take().expect("piped"));
    let mut line = String::new();
    loop {
        line.clear();
        assert!(stderr.read_line(&mut line).expect("read stderr") > 0, "serve exited before listening");
        let v: serde_json::Value = serde_json::from_str(&line).unwrap_or_default();
        if v["message"] == "listening" {
            let addr = v["addr"].as_str().expect("addr").parse().expect("an address");
            return (child, addr, stderr);
        }
    }
}

/// A child process killed and reaped when dropped, whatever the test's outcome.
struct Reaped(Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn signal(child: &Reaped, sig: &str) {
    let status =
        std::process::Command::new("kill").args([&format!("-{sig}"), &child.0.id().to_string()]).status();
    assert!(status.is_ok_and(|s| s.success()));
}

/// Wait at most [`LIMIT`] for `child` to exit.
fn wait_exit(child: &mut Reaped) -> Option<std::process::ExitStatus> {
    let deadline = Instant::now() + LIMIT;
    while Instant::now() < deadline {
        if let Some(status) = child.0.try_wait().expect("wait") {
            return Some(status);
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    None
}

/// One conversation: the greeting, a reply to `name`, close on `exit`.
fn hello(addr: SocketAddr, name: &str) -> String {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(LIMIT)).unwrap();
    s.write_all(format!("{name}\nexit\n").as_bytes()).unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).expect("read to close");
    out
}

#[test]
fn a_closed_log_pipe_never_stops_serving_or_shutdown() {
    let (mut child, addr, stderr) = spawn_serve(&[]);
    drop(stderr); // The log reader is gone: every later log write fails (EPIPE).
    for i in 0..5 {
        assert_eq!(hello(addr, &format!("c{i}")), format!("Welcome!\nHello, c{i}!\n"));
    }
    signal(&child, "TERM");
    let status = wait_exit(&mut child).expect("SIGTERM stops a server whose log pipe is closed");
    assert_eq!(status.code(), Some(0));
}

#[test]
fn a_closed_log_pipe_does_not_lose_the_listener_after_a_busy_refusal() {
    let (mut child, addr, stderr) = spawn_serve(&["--max-connections", "1", "--threads", "1"]);
    drop(stderr);
    let mut held = TcpStream::connect(addr).expect("connect");
    held.set_read_timeout(Some(LIMIT)).unwrap();
    let mut greeting = [0; 9];
    held.read_exact(&mut greeting).expect("greeting");
    // Over the limit: told busy, and the refusal is logged into the dead pipe.
    let mut busy = TcpStream::connect(addr).expect("connect");
    busy.set_read_timeout(Some(LIMIT)).unwrap();
    let mut got = String::new();
    busy.read_to_string(&mut got).expect("busy line then close");
    assert_eq!(got, "ERR server busy\n");
    held.write_all(b"exit\n").unwrap();
    let mut rest = Vec::new();
    held.read_to_end(&mut rest).expect("close");
    // The place is free again and the listener still accepts.
    let deadline = Instant::now() + LIMIT;
    loop {
        let got = hello(addr, "again");
        if got == "Welcome!\nHello, again!\n" {
            break;
        }
        // The first close may not be counted yet: busy is fine, anything else is not.
        assert_eq!(got, "ERR server busy\n");
        assert!(Instant::now() < deadline, "never served again");
        std::thread::sleep(Duration::from_millis(20));
    }
    signal(&child, "TERM");
    assert_eq!(wait_exit(&mut child).expect("stops").code(), Some(0));
}

/// Whether process `pid` is stopped (state `T` in /proc).
fn is_stopped(pid: u32) -> bool {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // The state follows the command name in parentheses.
    stat.rsplit_once(')').is_some_and(|(_, rest)| rest.trim_start().starts_with('T'))
}

#[test]
fn clients_queued_at_shutdown_are_accepted_and_answered() {
    const CLIENTS: usize = 300;
    let mut serve = ServeProcess::start(&["--threads", "1"]);
    let pid = serve.child.id();
    serve.signal("STOP");
    let deadline = Instant::now() + LIMIT;
    while !is_stopped(pid) {
        assert!(Instant::now() < deadline, "server never stopped");
        std::thread::sleep(Duration::from_millis(5));
    }
    // The kernel completes these handshakes and acknowledges the lines while
    // the server cannot accept: they wait in the accept queue.
    let mut clients = Vec::new();
    for i in 0..CLIENTS {
        let mut s = TcpStream::connect(serve.addr).expect("connect to the queue");
        s.set_read_timeout(Some(LIMIT)).unwrap();
        s.write_all(format!("q{i}\n").as_bytes()).unwrap();
        clients.push(s);
    }
    serve.signal("TERM");
    serve.signal("CONT");
    let mut answered = 0;
    for (i, mut s) in clients.into_iter().enumerate() {
        let mut got = Vec::new();
        let _ = s.read_to_end(&mut got);
        if got == format!("Welcome!\nHello, q{i}!\n").as_bytes() {
            answered += 1;
        }
    }
    assert_eq!(answered, CLIENTS, "every queued client is answered");
    assert_eq!(serve.wait_exit().code(), Some(0));
}
