//! Hostile-peer tests for `tcpkit serve`: a broken log pipe, clients queued at
//! shutdown, memory-hungry clients and templates, a low open-file limit.
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, ChildStderr, Stdio};
use std::time::{Duration, Instant};

use crate::util::{ServeProcess, tcpkit};

/// Bound on any single wait, so a bug fails instead of hanging.
pub(super) const LIMIT: Duration = Duration::from_secs(10);

/// Start `tcpkit serve` on port 0 with JSON logs and `args`; read its stderr
/// up to the "listening" line and return the child, its address and the pipe.
pub(super) fn spawn_serve(args: &[&str]) -> (Reaped, SocketAddr, BufReader<ChildStderr>) {
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
pub(super) struct Reaped(Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub(super) fn signal(child: &Reaped, sig: &str) {
    let status =
        std::process::Command::new("kill").args([&format!("-{sig}"), &child.0.id().to_string()]).status();
    assert!(status.is_ok_and(|s| s.success()));
}

/// Wait at most [`LIMIT`] for `child` to exit.
pub(super) fn wait_exit(child: &mut Reaped) -> Option<std::process::ExitStatus> {
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
pub(super) fn hello(addr: SocketAddr, name: &str) -> String {
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

/// Bytes received by the server's socket for `peer` and not yet read by it
/// (`rx_queue` in /proc/net/tcp); 0 once the socket is gone.
fn server_unread(server: SocketAddr, peer: SocketAddr) -> u64 {
    let hex = |a: SocketAddr| match a {
        SocketAddr::V4(v4) => format!("{:08X}:{:04X}", u32::from_le_bytes(v4.ip().octets()), v4.port()),
        SocketAddr::V6(_) => unreachable!("IPv4 only"),
    };
    let (l, r) = (hex(server), hex(peer));
    let table = std::fs::read_to_string("/proc/net/tcp").expect("/proc/net/tcp");
    table
        .lines()
        .skip(1)
        .map(|row| row.split_whitespace().collect::<Vec<_>>())
        .find(|f| f.len() > 4 && f[1] == l && f[2] == r)
        .and_then(|f| f[4].split(':').nth(1).and_then(|rx| u64::from_str_radix(rx, 16).ok()))
        .unwrap_or(0)
}

#[test]
fn partial_lines_past_the_input_budget_are_refused_and_logged() {
    const BUDGET: usize = 256 * 1024;
    const CLIENTS: usize = 10;
    const PARTIAL: usize = 60_000;
    let budget = BUDGET.to_string();
    let mut serve = ServeProcess::start(&["--input-budget", &budget, "--threads", "1"]);
    let partial = vec![b'a'; PARTIAL];
    let mut clients: Vec<BufReader<TcpStream>> = (0..CLIENTS)
        .map(|_| {
            let mut s = TcpStream::connect(serve.addr).expect("connect");
            s.set_read_timeout(Some(LIMIT)).unwrap();
            s.write_all(&partial).expect("send a partial line");
            BufReader::new(s)
        })
        .collect();
    // Wait until the server has read every byte sent (or closed the socket).
    let deadline = Instant::now() + LIMIT;
    for c in &clients {
        let peer = c.get_ref().local_addr().unwrap();
        while server_unread(serve.addr, peer) > 0 {
            assert!(Instant::now() < deadline, "the server never read the partial lines");
            std::thread::sleep(Duration::from_millis(10));
        }
    }
    let (mut kept, mut refused) = (0, 0);
    let reply = format!("Hello, {}!\n", "a".repeat(PARTIAL));
    for c in &mut clients {
        let _ = c.get_mut().write_all(b"\n");
        let mut greeting = String::new();
        c.read_line(&mut greeting).expect("greeting");
        assert_eq!(greeting, "Welcome!\n");
        let mut line = String::new();
        c.read_line(&mut line).expect("a reply or the refusal");
        match line.as_str() {
            "ERR server busy: input budget exhausted\n" => refused += 1,
            l if l == reply => kept += 1,
            other => panic!("unexpected line of {} bytes: {:.40}", other.len(), other),
        }
    }
    assert!(refused >= 1, "{CLIENTS} x {PARTIAL} bytes is over the budget: some are refused");
    assert!(kept >= 1 && kept * PARTIAL <= BUDGET, "kept {kept}");
    let warned = serve.wait_log(|v| v["reason"] == "input budget");
    assert_eq!(warned["level"], "WARN", "{warned}");
    // The budget is given back: the server serves as before.
    drop(clients);
    assert_eq!(hello(serve.addr, "after"), "Welcome!\nHello, after!\n");
}

#[test]
fn a_reply_template_that_breaks_the_memory_bound_is_refused_naming_the_flags() {
    let template = "{}".repeat(1000);
    let child = tcpkit()
        .args(["serve", "--listen", "127.0.0.1:0", "--reply", &template])
        .stdin(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run tcpkit serve");
    let mut child = Reaped(child);
    let status = wait_exit(&mut child).expect("refused at start, not served");
    assert_eq!(status.code(), Some(1));
    let mut stderr = String::new();
    child.0.stderr.take().expect("piped").read_to_string(&mut stderr).expect("stderr");
    for flag in ["--reply", "--max-line", "--max-reply"] {
        assert!(stderr.contains(flag), "{stderr}");
    }
    assert!(!stderr.contains("panicked"), "{stderr}");
    // The same template with short lines fits: the bound is on the worst reply.
    let mut serve = ServeProcess::start(&["--reply", &template, "--max-line", "100"]);
    let capacity = serve.wait_log(|v| v["message"] == "capacity");
    assert_eq!(capacity["worst_reply"], 1000 * 100 + 1, "{capacity}");
    assert!(capacity["worst_case_memory"].as_u64().is_some_and(|m| m > 0), "{capacity}");
}

/// `tcpkit serve` under `ulimit -n LIMIT` with `args`, its stderr piped.
fn serve_under_ulimit(limit: u32, args: &str) -> std::process::Command {
    let mut cmd = std::process::Command::new("bash");
    cmd.args([
        "-c",
        &format!("ulimit -n {limit} && exec \"$0\" serve --listen 127.0.0.1:0 --log-format json {args}"),
    ])
    .arg(crate::util::tcpkit_bin())
    .env_remove("RUST_LOG")
    .stdin(Stdio::null())
    .stderr(Stdio::piped());
    cmd
}

#[test]
fn a_tiny_open_file_limit_is_a_clear_error_not_a_panic() {
    let out = serve_under_ulimit(8, "").output().expect("run");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("open-file limit 8 is too low") && stderr.contains("ulimit -n"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn every_client_over_capacity_is_told_busy_with_many_threads_and_few_descriptors() {
    const CLIENTS: usize = 200;
    let child = serve_under_ulimit(200, "--threads 16").spawn().expect("spawn");
    let mut serve = ServeProcess::from_child(child);
    let capacity = serve.wait_log(|v| v["message"] == "capacity");
    let max = capacity["max_connections"].as_u64().expect("max_connections") as usize;
    assert!(max < CLIENTS, "{capacity}");
    let mut held = Vec::new();
    let (mut welcomed, mut busy) = (0, 0);
    for i in 0..CLIENTS {
        let s = TcpStream::connect(serve.addr).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut r = BufReader::new(s);
        let mut line = String::new();
        match r.read_line(&mut line) {
            Ok(_) if line == "Welcome!\n" => welcomed += 1,
            Ok(_) if line == "ERR server busy\n" => busy += 1,
            other => panic!("client {i}: neither greeted nor told busy: {other:?} {line:?}"),
        }
        held.push(r);
    }
    assert_eq!((welcomed, busy), (max, CLIENTS - max));
}
