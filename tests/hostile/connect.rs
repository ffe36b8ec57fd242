//! Hostile-peer tests for `tcpkit connect`: a closed or broken stderr and
//! stdout (issue "Hardening" item 1). Every print path (`-v` lines, the final
//! error, the received bytes) must end in a documented exit code, never a panic
//! (exit 101), and never write diagnostics into the socket.
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use crate::util::{tcpkit, tcpkit_bin};

/// Bound on any one blocking step: a bug fails the test instead of hanging it.
const LIMIT: Duration = Duration::from_secs(20);

fn listen() -> (TcpListener, String) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().unwrap().port().to_string();
    (listener, port)
}

fn accept(listener: &TcpListener) -> TcpStream {
    let (stream, _) = listener.accept().expect("accept");
    stream.set_read_timeout(Some(LIMIT)).unwrap();
    stream.set_write_timeout(Some(LIMIT)).unwrap();
    stream
}

/// A server that sends `greeting`, then returns everything the client sent
/// until its half-close.
fn greeter(listener: TcpListener, greeting: &'static [u8]) -> JoinHandle<Vec<u8>> {
    thread::spawn(move || {
        let mut stream = accept(&listener);
        stream.write_all(greeting).unwrap();
        let mut got = Vec::new();
        stream.read_to_end(&mut got).expect("server reads to the client's EOF");
        got
    })
}

fn wait_bounded(child: &mut Child) -> Option<i32> {
    for _ in 0..LIMIT.as_millis() / 10 {
        if let Some(status) = child.try_wait().expect("try_wait") {
            return status.code();
        }
        thread::sleep(Duration::from_millis(10));
    }
    let _ = child.kill();
    let _ = child.wait();
    panic!("tcpkit connect did not exit within {LIMIT:?}");
}

/// `tcpkit connect ARGS` under `sh -c '... REDIRECT'`, stdin `input`; returns
/// the exit code and stdout.
fn run_redirected(redirect: &str, args: &[&str], input: &[u8]) -> (Option<i32>, Vec<u8>) {
    let script = format!("exec \"$0\" connect \"$@\" {redirect}");
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(script)
        .arg(tcpkit_bin())
        .args(args)
        .env_remove("RUST_LOG")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("sh starts");
    let mut stdout = child.stdout.take().unwrap();
    let reader = thread::spawn(move || {
        let mut out = Vec::new();
        let _ = stdout.read_to_end(&mut out);
        out
    });
    let _ = child.stdin.take().unwrap().write_all(input);
    let code = wait_bounded(&mut child);
    (code, reader.join().unwrap())
}

/// A pipe whose read end is already closed: every write to it fails with EPIPE.
fn broken_pipe() -> Stdio {
    let (reader, writer) = rustix::pipe::pipe().expect("pipe");
    drop(reader);
    Stdio::from(writer)
}

#[test]
fn verbose_with_stderr_closed_converses_and_keeps_diagnostics_out_of_the_socket() {
    let (listener, port) = listen();
    let server = greeter(listener, b"Welcome!\n");
    let (code, stdout) = run_redirected("2>&-", &["-v", "127.0.0.1", &port], b"hi\n");
    // Had the socket taken descriptor 2, the `-v` lines would reach the server.
    assert_eq!(server.join().unwrap(), b"hi\n");
    assert_eq!(code, Some(0));
    assert_eq!(stdout, b"Welcome!\n");
}

#[test]
fn verbose_with_stderr_closed_still_exits_3_on_refusal() {
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port().to_string();
    let (code, stdout) = run_redirected("2>&-", &["-v", "127.0.0.1", &port], b"");
    assert_eq!(code, Some(3));
    assert!(stdout.is_empty());
}

#[test]
fn stdout_closed_descriptor_sends_input_and_exits_0() {
    let (listener, port) = listen();
    let server = greeter(listener, b"into the void\n");
    // The received bytes go nowhere; the socket must not have become descriptor 1.
    let (code, _) = run_redirected(">&- 2>/dev/null", &["-v", "127.0.0.1", &port], b"sent\n");
    assert_eq!(server.join().unwrap(), b"sent\n");
    assert_eq!(code, Some(0));
}

#[test]
fn verbose_with_a_broken_stderr_pipe_converses_and_exits_0() {
    let (listener, port) = listen();
    let server = greeter(listener, b"Welcome!\n");
    let mut child = tcpkit()
        .args(["connect", "-v", "127.0.0.1", &port])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(broken_pipe())
        .spawn()
        .expect("tcpkit starts");
    let mut stdout = child.stdout.take().unwrap();
    let _ = child.stdin.take().unwrap().write_all(b"hi\n");
    let mut out = Vec::new();
    let _ = stdout.read_to_end(&mut out);
    let code = wait_bounded(&mut child);
    assert_eq!(server.join().unwrap(), b"hi\n");
    assert_eq!(code, Some(0), "a failing stderr is not a failure of the conversation");
    assert_eq!(out, b"Welcome!\n");
}

#[test]
fn broken_stdout_and_stderr_pipes_with_verbose_exit_6() {
    let (listener, port) = listen();
    let server = thread::spawn(move || {
        let mut stream = accept(&listener);
        // Bounded: 1 MiB, until the client is gone.
        for _ in 0..16 {
            if stream.write_all(&[b'x'; 64 * 1024]).is_err() {
                return;
            }
        }
    });
    let mut child = tcpkit()
        .args(["connect", "-v", "127.0.0.1", &port])
        .stdin(Stdio::piped())
        .stdout(broken_pipe())
        .stderr(broken_pipe())
        .spawn()
        .expect("tcpkit starts");
    let code = wait_bounded(&mut child);
    drop(child.stdin.take());
    server.join().unwrap();
    assert_eq!(code, Some(6), "the final error cannot be printed, the exit code still says it");
}

#[test]
fn a_trace_to_a_broken_stderr_pipe_never_disturbs_the_conversation() {
    let (listener, port) = listen();
    let server = greeter(listener, b"Welcome!\n");
    let mut child = tcpkit()
        .args(["connect", "--trace", "-", "-v", "127.0.0.1", &port])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(broken_pipe())
        .spawn()
        .expect("tcpkit starts");
    let mut stdout = child.stdout.take().unwrap();
    let _ = child.stdin.take().unwrap().write_all(b"hi\n");
    let mut out = Vec::new();
    let _ = stdout.read_to_end(&mut out);
    let code = wait_bounded(&mut child);
    assert_eq!(server.join().unwrap(), b"hi\n");
    assert_eq!(code, Some(0));
    assert_eq!(out, b"Welcome!\n");
}

#[test]
fn a_trace_file_on_a_full_disk_is_one_warning_and_the_conversation_goes_on() {
    let (listener, port) = listen();
    let server = greeter(listener, b"Welcome!\n");
    let out = tcpkit()
        .args(["connect", "--trace", "/dev/full", "127.0.0.1", &port])
        .stdin(Stdio::null())
        .output()
        .expect("tcpkit runs");
    assert_eq!(server.join().unwrap(), b"");
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(out.stdout, b"Welcome!\n");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.starts_with("tcpkit: warning: trace /dev/full: "), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
}
