//! Integration tests of `tcpkit connect`: the binary runs as a process with piped
//! stdin against servers started here on port 0 (loopback only). Servers are
//! plain std threads with read timeouts, so none can outlive a failed test for long.
use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::process::{Child, ChildStdin, ChildStdout, Stdio};
use std::sync::mpsc;
use std::thread::{self, JoinHandle};
use std::time::Duration;

use crate::util::{ServeProcess, tcpkit};

#[cfg(feature = "interop")]
mod interop;

/// Bound on any one blocking step of a test: a broken client or server fails
/// the test instead of hanging it. Never an assertion about speed.
const LIMIT: Duration = Duration::from_secs(20);

/// What a finished `tcpkit connect` left behind.
#[derive(Debug)]
struct Outcome {
    code: Option<i32>,
    stdout: Vec<u8>,
    stderr: String,
}

/// Start `tcpkit connect ARGS...` with all three streams piped.
fn spawn(args: &[&str]) -> Child {
    tcpkit()
        .arg("connect")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("tcpkit starts")
}

/// Read a pipe to its end on a thread of its own.
fn drain(mut pipe: impl Read + Send + 'static) -> JoinHandle<Vec<u8>> {
    thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = pipe.read_to_end(&mut bytes);
        bytes
    })
}

/// Wait for `child` to exit, killing it (and failing) after [`LIMIT`].
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

/// Feed `input` to a running client, close its stdin, and collect everything.
fn finish(mut child: Child, input: &[u8]) -> Outcome {
    let stdout = drain(child.stdout.take().expect("stdout"));
    let stderr = drain(child.stderr.take().expect("stderr"));
    let mut stdin = child.stdin.take().expect("stdin");
    let input = input.to_vec();
    // On a thread of its own, so that a client that stops reading stdin cannot
    // block the test past wait_bounded. It may stop legitimately (-z, errors).
    let feeder = thread::spawn(move || {
        let _ = stdin.write_all(&input);
    });
    let code = wait_bounded(&mut child);
    feeder.join().expect("stdin feeder");
    Outcome {
        code,
        stdout: stdout.join().expect("stdout reader"),
        stderr: String::from_utf8_lossy(&stderr.join().expect("stderr reader")).into_owned(),
    }
}

/// Run `tcpkit connect ARGS...` with `input` on stdin, to completion.
fn run(args: &[&str], input: &[u8]) -> Outcome {
    finish(spawn(args), input)
}

/// A listener on 127.0.0.1 port 0 and its port as a string for the command line.
fn listen_v4() -> (TcpListener, String) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    let port = listener.local_addr().unwrap().port().to_string();
    (listener, port)
}

/// Accept one connection, with read and write timeouts so the server thread
/// cannot hang past [`LIMIT`].
fn accept_one(listener: &TcpListener) -> (TcpStream, SocketAddr) {
    let (stream, peer) = listener.accept().expect("accept");
    stream.set_read_timeout(Some(LIMIT)).unwrap();
    stream.set_write_timeout(Some(LIMIT)).unwrap();
    (stream, peer)
}

/// Read until the client's EOF (its half-close) and return the bytes.
fn read_until_eof(stream: &mut TcpStream) -> Vec<u8> {
    let mut got = Vec::new();
    stream.read_to_end(&mut got).expect("server reads until the client's EOF");
    got
}

/// The tutorial's hello protocol for one connection: `Welcome!`, then
/// `Hello, <line>!` per line, `exit` closes; EOF closes too. Returns the bytes
/// the client sent and the client's address. A stand-in for `tcpkit serve`
/// with the same bytes.
fn hello_server(listener: TcpListener) -> JoinHandle<(Vec<u8>, SocketAddr)> {
    thread::spawn(move || {
        let (mut stream, peer) = accept_one(&listener);
        stream.write_all(b"Welcome!\n").unwrap();
        let mut received = Vec::new();
        let mut pending = Vec::new();
        let mut buf = [0u8; 1024];
        loop {
            let n = stream.read(&mut buf).expect("hello server reads");
            if n == 0 {
                return (received, peer);
            }
            received.extend_from_slice(&buf[..n]);
            pending.extend_from_slice(&buf[..n]);
            while let Some(pos) = pending.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = pending.drain(..=pos).collect();
                let line = line.strip_suffix(b"\n").unwrap();
                let line = line.strip_suffix(b"\r").unwrap_or(line);
                if line == b"exit" {
                    return (received, peer);
                }
                let reply = [b"Hello, ", line, b"!\n"].concat();
                stream.write_all(&reply).unwrap();
            }
        }
    })
}

const TUTORIAL_INPUT: &[u8] = b"Michael\nTracy\nSarah\nexit\n";
const TUTORIAL_OUTPUT: &[u8] = b"Welcome!\nHello, Michael!\nHello, Tracy!\nHello, Sarah!\n";

#[test]
fn tutorial_conversation_is_printed_in_full() {
    let (listener, port) = listen_v4();
    let server = hello_server(listener);
    let out = run(&["127.0.0.1", &port], TUTORIAL_INPUT);
    assert_eq!(String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(TUTORIAL_OUTPUT));
    assert_eq!(out.code, Some(0), "stderr: {}", out.stderr);
    assert_eq!(out.stderr, "");
    assert_eq!(server.join().unwrap().0, TUTORIAL_INPUT);
}

#[test]
fn each_reply_is_printed_before_stdin_ends() {
    let (listener, port) = listen_v4();
    let server = hello_server(listener);
    let mut child = spawn(&["127.0.0.1", &port]);
    let mut stdin: ChildStdin = child.stdin.take().unwrap();
    let mut stdout: ChildStdout = child.stdout.take().unwrap();
    // Interactive use: each reply must reach stdout while stdin is still open.
    let mut expect_line = |want: &[u8]| {
        let mut got = vec![0u8; want.len()];
        stdout.read_exact(&mut got).expect("a reply arrives while stdin is open");
        assert_eq!(String::from_utf8_lossy(&got), String::from_utf8_lossy(want));
    };
    expect_line(b"Welcome!\n");
    for name in ["Michael", "Tracy"] {
        stdin.write_all(format!("{name}\n").as_bytes()).unwrap();
        stdin.flush().unwrap();
        expect_line(format!("Hello, {name}!\n").as_bytes());
    }
    stdin.write_all(b"exit\n").unwrap();
    assert_eq!(server.join().unwrap().0, b"Michael\nTracy\nexit\n");
    // The server has closed; stdin EOF (Ctrl-D) ends the client.
    drop(stdin);
    let mut rest = Vec::new();
    stdout.read_to_end(&mut rest).unwrap();
    assert_eq!(rest, b"");
    assert_eq!(wait_bounded(&mut child), Some(0));
}

#[test]
fn server_answering_slowly_after_the_half_close_is_printed_in_full() {
    let (listener, port) = listen_v4();
    let server = thread::spawn(move || {
        let (mut stream, _) = accept_one(&listener);
        let got = read_until_eof(&mut stream);
        // Answer only after the client has half-closed, slowly, in pieces.
        for line in got.split_inclusive(|&b| b == b'\n') {
            thread::sleep(Duration::from_millis(100));
            stream.write_all(b"late: ").unwrap();
            thread::sleep(Duration::from_millis(50));
            stream.write_all(line).unwrap();
        }
    });
    let out = run(&["127.0.0.1", &port], b"one\ntwo\nthree\n");
    server.join().unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "late: one\nlate: two\nlate: three\n");
    assert_eq!(out.code, Some(0), "stderr: {}", out.stderr);
}

#[test]
fn stdin_eof_reaches_the_server_as_a_zero_length_read_and_the_socket_stays_readable() {
    let (listener, port) = listen_v4();
    let server = thread::spawn(move || {
        let (mut stream, _) = accept_one(&listener);
        let mut got = [0u8; 5];
        stream.read_exact(&mut got).unwrap();
        // The half-close: a read that returns 0 bytes, not an error.
        let mut more = [0u8; 16];
        let n = stream.read(&mut more).expect("read after the half-close is not an error");
        // The client still reads after its half-close.
        stream
            .write_all(
                format!("got {:?} then a read of {n} bytes\n", String::from_utf8_lossy(&got)).as_bytes(),
            )
            .unwrap();
    });
    let out = run(&["127.0.0.1", &port], b"hello");
    server.join().unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "got \"hello\" then a read of 0 bytes\n");
    assert_eq!(out.code, Some(0), "stderr: {}", out.stderr);
}

#[test]
fn no_shutdown_keeps_the_write_half_open_after_stdin_eof() {
    let (listener, port) = listen_v4();
    let server = thread::spawn(move || {
        let (mut stream, _) = accept_one(&listener);
        let mut got = [0u8; 2];
        stream.read_exact(&mut got).unwrap();
        // No half-close follows: a read now waits (here until a short timeout).
        stream.set_read_timeout(Some(Duration::from_millis(300))).unwrap();
        let mut more = [0u8; 1];
        let err = stream.read(&mut more).expect_err("no EOF while the write half is open");
        assert!(matches!(err.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut), "{err}");
        stream.write_all(b"closing\n").unwrap();
    });
    let out = run(&["--no-shutdown", "127.0.0.1", &port], b"hi");
    server.join().unwrap();
    assert_eq!(out.stdout, b"closing\n");
    assert_eq!(out.code, Some(0), "stderr: {}", out.stderr);
}

#[test]
fn a_server_half_close_does_not_cut_the_upload() {
    // The receiving end of a file transfer, like `ncat -l --recv-only`: it
    // shuts down its sending side at once, then reads everything.
    let (listener, port) = listen_v4();
    let server = thread::spawn(move || {
        let (mut stream, _) = accept_one(&listener);
        stream.shutdown(Shutdown::Write).unwrap();
        read_until_eof(&mut stream)
    });
    let input: Vec<u8> = (0..1024 * 1024u32).map(|i| (i % 251) as u8).collect();
    let out = run(&["127.0.0.1", &port], &input);
    assert_eq!(out.code, Some(0), "stderr: {}", out.stderr);
    let got = server.join().unwrap();
    assert!(got == input, "server got {} of {} bytes", got.len(), input.len());
}

#[test]
fn after_the_server_closes_further_input_is_refused_and_the_client_exits_0() {
    let (listener, port) = listen_v4();
    let server = thread::spawn(move || {
        let (mut stream, _) = accept_one(&listener);
        stream.write_all(b"bye\n").unwrap();
    });
    let mut child = spawn(&["127.0.0.1", &port]);
    let mut stdout = child.stdout.take().unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let mut bye = [0u8; 4];
    stdout.read_exact(&mut bye).unwrap();
    assert_eq!(&bye, b"bye\n");
    server.join().unwrap();
    // stdin stays open: the client learns that the server is gone when a write
    // is refused (RST, then EPIPE), which is a clean end, not a failure.
    let mut code = None;
    for _ in 0..200 {
        if stdin.write_all(b"still there?\n").is_err() {
            break; // The client exited and closed its stdin.
        }
        if let Some(status) = child.try_wait().unwrap() {
            code = status.code();
            break;
        }
        thread::sleep(Duration::from_millis(20));
    }
    let code = code.or_else(|| wait_bounded(&mut child));
    assert_eq!(code, Some(0));
}

#[test]
fn on_a_terminal_the_server_closing_ends_the_client_at_once() {
    // `script` (util-linux, essential in Debian) runs the client with a pty as
    // its stdin, and forwards our pipe, which stays open and silent.
    let (listener, port) = listen_v4();
    let server = thread::spawn(move || {
        let (mut stream, _) = accept_one(&listener);
        stream.write_all(b"bye\n").unwrap();
    });
    let command = format!("{} connect 127.0.0.1 {port}", crate::util::tcpkit_bin().display());
    let mut child = std::process::Command::new("script")
        .args(["-q", "-e", "-c", &command, "/dev/null"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("script (util-linux) runs");
    let stdout = drain(child.stdout.take().unwrap());
    let stdin = child.stdin.take().unwrap();
    let code = wait_bounded(&mut child);
    drop(stdin);
    server.join().unwrap();
    // The pty turns `\n` into `\r\n`.
    assert_eq!(String::from_utf8_lossy(&stdout.join().unwrap()), "bye\r\n");
    assert_eq!(code, Some(0));
}

#[test]
fn crlf_sends_cr_lf_on_the_wire_without_doubling_an_existing_cr() {
    let (listener, port) = listen_v4();
    let server = thread::spawn(move || read_until_eof(&mut accept_one(&listener).0));
    let out = run(&["--crlf", "127.0.0.1", &port], b"GET / HTTP/1.0\nHost: x\r\n\nlast");
    assert_eq!(out.code, Some(0), "stderr: {}", out.stderr);
    let wire = server.join().unwrap();
    assert_eq!(String::from_utf8_lossy(&wire), "GET / HTTP/1.0\r\nHost: x\r\n\r\nlast");
}

#[test]
fn without_crlf_bytes_go_on_the_wire_unchanged() {
    let (listener, port) = listen_v4();
    let server = thread::spawn(move || read_until_eof(&mut accept_one(&listener).0));
    let out = run(&["127.0.0.1", &port], b"a\nb\r\n");
    assert_eq!(out.code, Some(0), "stderr: {}", out.stderr);
    assert_eq!(server.join().unwrap(), b"a\nb\r\n");
}

#[test]
fn binary_bytes_pass_through_both_ways_untouched() {
    // Every byte value, NUL and 0xFF included, several times over (not UTF-8).
    let input: Vec<u8> = (0..=255u8).cycle().take(256 * 300).collect();
    let (listener, port) = listen_v4();
    let server = thread::spawn(move || {
        let (mut stream, _) = accept_one(&listener);
        let got = read_until_eof(&mut stream);
        // Echo it back reversed, so the reply is not just the request replayed.
        let reply: Vec<u8> = got.iter().rev().copied().collect();
        stream.write_all(&reply).unwrap();
        got
    });
    let out = run(&["127.0.0.1", &port], &input);
    assert_eq!(out.code, Some(0), "stderr: {}", out.stderr);
    assert_eq!(server.join().unwrap(), input);
    let want: Vec<u8> = input.iter().rev().copied().collect();
    assert!(out.stdout == want, "stdout differs: {} bytes vs {}", out.stdout.len(), want.len());
}

#[test]
fn refused_connection_exits_3_with_one_line() {
    // Bind then drop: nobody listens on this port now.
    let port = listen_v4().1;
    let out = run(&["127.0.0.1", &port], b"");
    assert_eq!(out.code, Some(3), "stderr: {}", out.stderr);
    assert_eq!(out.stderr, format!("tcpkit: error: connection refused: 127.0.0.1:{port}\n"));
    assert!(out.stdout.is_empty());
}

#[test]
fn unresolvable_name_exits_2() {
    // `.invalid` never resolves (RFC 2606).
    let out = run(&["no-such-host.invalid", "80"], b"");
    assert_eq!(out.code, Some(2), "stderr: {}", out.stderr);
    assert!(
        out.stderr.starts_with("tcpkit: error: could not resolve host: no-such-host.invalid"),
        "{}",
        out.stderr
    );
    assert_eq!(out.stderr.lines().count(), 1);
}

#[test]
fn family_flag_with_a_literal_of_the_other_family_exits_2() {
    let out = run(&["-4", "::1", "80"], b"");
    assert_eq!(out.code, Some(2), "stderr: {}", out.stderr);
    assert_eq!(out.stderr, "tcpkit: error: could not resolve host: ::1: no IPv4 address\n");
    let out = run(&["-6", "127.0.0.1", "80"], b"");
    assert_eq!(out.code, Some(2), "stderr: {}", out.stderr);
    assert_eq!(out.stderr, "tcpkit: error: could not resolve host: 127.0.0.1: no IPv6 address\n");
}

#[test]
fn idle_timeout_exits_4_when_the_server_never_sends_and_never_closes() {
    let (listener, port) = listen_v4();
    let (done_tx, done_rx) = mpsc::channel::<()>();
    let server = thread::spawn(move || {
        let (mut stream, _) = accept_one(&listener);
        let got = read_until_eof(&mut stream);
        // Hold the connection open, silent, until the test is over.
        let _ = done_rx.recv_timeout(LIMIT);
        got
    });
    let out = run(&["-w", "0.5", "127.0.0.1", &port], b"anyone?\n");
    let _ = done_tx.send(());
    assert_eq!(server.join().unwrap(), b"anyone?\n");
    assert_eq!(out.code, Some(4), "stderr: {}", out.stderr);
    assert_eq!(out.stderr, "tcpkit: error: idle timeout: no data either way for 500 ms\n");
}

#[test]
fn connect_timeout_exits_4_when_the_listen_backlog_is_full() {
    // A listener that never accepts, with the smallest backlog: once its queue
    // is full, Linux drops further SYNs and a connect can only time out.
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    socket.bind(&"127.0.0.1:0".parse::<SocketAddr>().unwrap().into()).unwrap();
    socket.listen(0).unwrap();
    let addr = socket.local_addr().unwrap().as_socket().unwrap();
    let mut fillers = Vec::new();
    let mut full = false;
    for _ in 0..16 {
        match TcpStream::connect_timeout(&addr, Duration::from_millis(300)) {
            Ok(s) => fillers.push(s),
            Err(e) if e.kind() == ErrorKind::TimedOut => {
                full = true;
                break;
            }
            Err(e) => panic!("filling the backlog: {e}"),
        }
    }
    assert!(full, "the accept queue never filled after {} connections", fillers.len());
    let out = run(&["--connect-timeout", "0.5", "127.0.0.1", &addr.port().to_string()], b"");
    assert_eq!(out.code, Some(4), "stderr: {}", out.stderr);
    assert_eq!(
        out.stderr,
        format!("tcpkit: error: connection to 127.0.0.1 port {} timed out after 500 ms\n", addr.port())
    );
}

#[test]
fn reset_by_the_server_exits_5_after_printing_what_arrived() {
    let (listener, port) = listen_v4();
    let server = thread::spawn(move || {
        let (mut stream, _) = accept_one(&listener);
        read_until_eof(&mut stream);
        stream.write_all(b"partial\n").unwrap();
        // SO_LINGER 0: close sends RST instead of FIN.
        socket2::SockRef::from(&stream).set_linger(Some(Duration::ZERO)).unwrap();
        drop(stream);
    });
    let out = run(&["127.0.0.1", &port], b"go\n");
    server.join().unwrap();
    assert_eq!(out.code, Some(5), "stderr: {}", out.stderr);
    assert_eq!(out.stdout, b"partial\n");
    assert_eq!(
        out.stderr,
        format!("tcpkit: error: connection reset by peer 127.0.0.1:{port} after 8 bytes received\n")
    );
}

#[test]
fn closed_stdout_exits_6_with_one_line() {
    let (listener, port) = listen_v4();
    let server = thread::spawn(move || {
        let (mut stream, _) = accept_one(&listener);
        // Send until the client is gone (bounded at 64 MiB).
        let block = [b'x'; 64 * 1024];
        for _ in 0..1024 {
            if stream.write_all(&block).is_err() {
                return;
            }
        }
    });
    let mut child = spawn(&["127.0.0.1", &port]);
    let stderr = drain(child.stderr.take().unwrap());
    let mut stdout = child.stdout.take().unwrap();
    let mut first = [0u8; 10];
    stdout.read_exact(&mut first).unwrap();
    // The reader goes away, as `| head -c 10` would.
    drop(stdout);
    let code = wait_bounded(&mut child);
    drop(child.stdin.take());
    server.join().unwrap();
    let stderr = String::from_utf8_lossy(&stderr.join().unwrap()).into_owned();
    assert_eq!(code, Some(6), "stderr: {stderr}");
    assert!(stderr.starts_with("tcpkit: error: writing stdout: "), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
}

#[test]
fn zero_io_only_checks_that_the_port_accepts() {
    let (listener, port) = listen_v4();
    let server = thread::spawn(move || read_until_eof(&mut accept_one(&listener).0));
    let out = run(&["-z", "127.0.0.1", &port], b"not sent\n");
    assert_eq!(out.code, Some(0), "stderr: {}", out.stderr);
    assert_eq!(server.join().unwrap(), b"", "-z must send nothing");
    assert!(out.stdout.is_empty());
}

#[test]
fn verbose_reports_both_ends_and_byte_counts_on_stderr() {
    let (listener, port) = listen_v4();
    let server = hello_server(listener);
    let out = run(&["-v", "127.0.0.1", &port], TUTORIAL_INPUT);
    let (_, client) = server.join().unwrap();
    assert_eq!(out.stdout, TUTORIAL_OUTPUT, "verbose output goes to stderr only");
    let lines: Vec<&str> = out.stderr.lines().collect();
    assert_eq!(lines.len(), 2, "{}", out.stderr);
    // The 4-tuple as the server saw it.
    assert!(
        lines[0].starts_with(&format!("tcpkit: connected to 127.0.0.1:{port} from {client} (")),
        "{}",
        lines[0]
    );
    assert_eq!(
        lines[1],
        format!("tcpkit: closed: {} bytes sent, {} bytes received", 25, TUTORIAL_OUTPUT.len())
    );
}

#[test]
fn ipv6_loopback_conversation_with_and_without_dash_6() {
    let listener = match TcpListener::bind("[::1]:0") {
        Ok(l) => l,
        Err(e) => {
            // Only a host without IPv6 may skip this test, and it says so.
            eprintln!("skipping: cannot bind [::1]:0 ({e})");
            return;
        }
    };
    let port = listener.local_addr().unwrap().port().to_string();
    let server = thread::spawn(move || {
        (0..3)
            .map(|_| {
                let (mut stream, peer) = accept_one(&listener);
                assert!(peer.is_ipv6(), "{peer}");
                stream.write_all(b"Welcome!\n").unwrap();
                let got = read_until_eof(&mut stream);
                stream.write_all(&[b"Hello, ", got.trim_ascii_end(), b"!\n"].concat()).unwrap();
                stream.shutdown(Shutdown::Both).unwrap();
            })
            .count()
    });
    for args in [&["::1", &port][..], &["-6", "::1", &port], &["[::1]", &port]] {
        let out = run(args, b"Michael\n");
        assert_eq!(out.code, Some(0), "{args:?} stderr: {}", out.stderr);
        assert_eq!(String::from_utf8_lossy(&out.stdout), "Welcome!\nHello, Michael!\n", "{args:?}");
    }
    assert_eq!(server.join().unwrap(), 3);
}

#[test]
fn tutorial_conversation_with_tcpkit_serve() {
    let serve = ServeProcess::start(&[]);
    let port = serve.addr.port().to_string();
    let out = run(&["127.0.0.1", &port], TUTORIAL_INPUT);
    assert_eq!(String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(TUTORIAL_OUTPUT));
    assert_eq!(out.code, Some(0), "stderr: {}", out.stderr);
}

#[test]
fn tcpkit_serve_answers_a_final_line_without_newline_after_the_half_close() {
    let serve = ServeProcess::start(&[]);
    let port = serve.addr.port().to_string();
    let out = run(&["--crlf", "127.0.0.1", &port], b"Michael\nSarah");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "Welcome!\nHello, Michael!\nHello, Sarah!\n");
    assert_eq!(out.code, Some(0), "stderr: {}", out.stderr);
}

#[test]
fn source_address_is_the_one_the_server_sees() {
    let (listener, port) = listen_v4();
    let server = thread::spawn(move || {
        let (mut stream, peer) = accept_one(&listener);
        read_until_eof(&mut stream);
        stream.write_all(format!("you are {}\n", peer.ip()).as_bytes()).unwrap();
    });
    // All of 127.0.0.0/8 is loopback on Linux.
    let out = run(&["-s", "127.0.0.2", "127.0.0.1", &port], b"");
    server.join().unwrap();
    assert_eq!(out.code, Some(0), "stderr: {}", out.stderr);
    assert_eq!(out.stdout, b"you are 127.0.0.2\n");
}

#[test]
fn source_address_of_the_wrong_family_exits_1_with_one_line() {
    let (_listener, port) = listen_v4();
    let out = run(&["-s", "::1", "127.0.0.1", &port], b"");
    assert_eq!(out.code, Some(1), "stderr: {}", out.stderr);
    assert!(
        out.stderr.starts_with(&format!("tcpkit: error: could not connect to 127.0.0.1:{port}: ")),
        "{}",
        out.stderr
    );
    assert_eq!(out.stderr.lines().count(), 1);
}

#[test]
fn localhost_by_name_reaches_an_ipv4_only_server() {
    // `localhost` may resolve to ::1 first: that refusal must fall back to 127.0.0.1.
    let (listener, port) = listen_v4();
    let server = hello_server(listener);
    let out = run(&["localhost", &port], TUTORIAL_INPUT);
    assert_eq!(out.code, Some(0), "stderr: {}", out.stderr);
    assert_eq!(out.stdout, TUTORIAL_OUTPUT);
    assert!(server.join().unwrap().1.is_ipv4());
}

#[test]
fn echo_of_a_large_input_flows_both_ways_at_once_without_deadlock() {
    // More than the socket buffers of both ends hold: a client that wrote all
    // its input before reading would stall with the server blocked on writing.
    const SIZE: usize = 32 * 1024 * 1024;
    let (listener, port) = listen_v4();
    let server = thread::spawn(move || {
        let (mut stream, _) = accept_one(&listener);
        let mut buf = vec![0u8; 64 * 1024];
        let mut echoed = 0usize;
        loop {
            let n = stream.read(&mut buf).expect("echo server reads");
            if n == 0 {
                return echoed;
            }
            stream.write_all(&buf[..n]).expect("echo server writes");
            echoed += n;
        }
    });
    let input: Vec<u8> = (0..SIZE).map(|i| (i % 253) as u8).collect();
    let out = run(&["127.0.0.1", &port], &input);
    assert_eq!(out.code, Some(0), "stderr: {}", out.stderr);
    assert_eq!(server.join().unwrap(), SIZE);
    assert!(out.stdout == input, "echo differs: {} of {SIZE} bytes", out.stdout.len());
}

#[test]
fn trace_file_records_the_4_tuple_both_directions_and_the_half_close() {
    let (listener, port) = listen_v4();
    let server = hello_server(listener);
    let dir = tempfile::tempdir().unwrap();
    let trace = dir.path().join("trace.txt");
    let out = run(&["--trace", trace.to_str().unwrap(), "127.0.0.1", &port], b"Tracy\n");
    let (_, client) = server.join().unwrap();
    assert_eq!(out.code, Some(0), "stderr: {}", out.stderr);
    assert_eq!(out.stdout, b"Welcome!\nHello, Tracy!\n");
    let text = std::fs::read_to_string(&trace).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], format!("== Info: Connected to 127.0.0.1:{port} from {client}"));
    for want in [
        "=> Send data, 6 bytes (0x6)\n0000: 54 72 61 63 79 0a                               Tracy.\n",
        "== Info: sending side shut down (half-close)\n",
        "== Info: peer closed its sending side (EOF)\n",
        "== Info: Closed: 6 bytes sent, 23 bytes received\n",
    ] {
        assert!(text.contains(want), "no {want:?} in:\n{text}");
    }
    // What was received is in the trace, in order, however the reads split it.
    let received: String = text
        .split("<= Recv data")
        .skip(1)
        .flat_map(|block| block.lines().skip(1).take_while(|l| !l.starts_with("==") && !l.starts_with("=>")))
        .map(|l| &l[6 + 48..])
        .collect();
    assert_eq!(received, "Welcome!.Hello, Tracy!.");
}

#[test]
fn hex_dump_and_trace_time_stamp_every_chunk() {
    let (listener, port) = listen_v4();
    let server = hello_server(listener);
    let dir = tempfile::tempdir().unwrap();
    let dump = dir.path().join("dump.txt");
    let out = run(&["--hex-dump", dump.to_str().unwrap(), "127.0.0.1", &port], b"exit\n");
    server.join().unwrap();
    assert_eq!(out.code, Some(0), "stderr: {}", out.stderr);
    let text = std::fs::read_to_string(&dump).unwrap();
    let headers: Vec<&str> = text.lines().filter(|l| l.starts_with("# ")).collect();
    // "# HH:MM:SS.uuuuuu ..." on every header line.
    assert!(headers.iter().all(|h| h.as_bytes()[4] == b':' && h.as_bytes()[10] == b'.'), "{text}");
    assert!(text.contains(" sent 5 bytes\n0000   65 78 69 74 0a "), "{text}");
    assert!(text.contains(" received 9 bytes\n0000   57 65 6c 63 6f 6d 65 21  0a "), "{text}");

    let (listener, port) = listen_v4();
    let server = hello_server(listener);
    let trace = dir.path().join("trace.txt");
    let out = run(&["--trace-ascii", trace.to_str().unwrap(), "--trace-time", "127.0.0.1", &port], b"exit\n");
    server.join().unwrap();
    assert_eq!(out.code, Some(0), "stderr: {}", out.stderr);
    let text = std::fs::read_to_string(&trace).unwrap();
    assert!(text.lines().filter(|l| !l.starts_with("0000: ")).all(|l| l.as_bytes()[15] == b' '), "{text}");
    assert!(text.contains(" => Send data, 5 bytes (0x5)\n0000: exit.\n"), "{text}");
}

#[test]
fn a_trace_file_that_cannot_be_created_exits_1_before_connecting() {
    let (listener, port) = listen_v4();
    listener.set_nonblocking(true).unwrap();
    let out = run(&["--trace", "/nonexistent-dir/trace.txt", "127.0.0.1", &port], b"");
    assert_eq!(out.code, Some(1));
    assert!(out.stderr.starts_with("tcpkit: error: trace: /nonexistent-dir/trace.txt: "), "{}", out.stderr);
    assert!(listener.accept().is_err(), "no connection may be made");
}

#[test]
fn tls_handshake_that_never_answers_times_out_with_exit_4() {
    let (listener, port) = listen_v4();
    // Accepts and reads the ClientHello, never answers.
    let server = thread::spawn(move || {
        let (mut stream, _) = accept_one(&listener);
        read_until_eof(&mut stream)
    });
    let out = run(&["--tls", "-k", "--handshake-timeout", "0.3", "127.0.0.1", &port], b"");
    assert_eq!(out.code, Some(4), "stderr: {}", out.stderr);
    assert_eq!(out.stderr, "tcpkit: error: TLS handshake with 127.0.0.1 timed out after 300 ms\n");
    let hello = server.join().unwrap();
    assert_eq!(hello.first(), Some(&0x16), "a TLS handshake record was sent");
}

#[test]
fn tls_to_a_plain_text_server_is_a_handshake_failure_exit_7() {
    let (listener, port) = listen_v4();
    let server = thread::spawn(move || {
        let (mut stream, _) = accept_one(&listener);
        let _ = stream.write_all(b"220 plain SMTP here\r\n");
        let mut buf = [0u8; 4096];
        let _ = stream.read(&mut buf);
    });
    let dir = tempfile::tempdir().unwrap();
    let trace = dir.path().join("trace.txt");
    let out = run(&["--tls", "-k", "--trace", trace.to_str().unwrap(), "127.0.0.1", &port], b"");
    server.join().unwrap();
    assert_eq!(out.code, Some(7), "stderr: {}", out.stderr);
    assert!(out.stderr.starts_with("tcpkit: error: TLS handshake with 127.0.0.1 failed: "), "{}", out.stderr);
    assert!(out.stdout.is_empty());
    // The trace ends with the same reason.
    let text = std::fs::read_to_string(&trace).unwrap();
    let last = text.lines().last().unwrap();
    assert_eq!(format!("tcpkit: error: {}\n", last.strip_prefix("== Info: ").unwrap()), out.stderr);
}

/// A TLS server (rustls, an rcgen certificate for localhost) for one
/// connection: it sends `reply`, then closes the TCP connection, with a TLS
/// `close_notify` first or without one.
fn tls_server(reply: &'static [u8], close_notify: bool) -> (JoinHandle<()>, String) {
    use tokio::io::AsyncWriteExt;
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    let config =
        tcpkit::net::tls::server_config(cert.cert.pem().as_bytes(), cert.key_pair.serialize_pem().as_bytes())
            .unwrap();
    let (listener, port) = listen_v4();
    let server = thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            listener.set_nonblocking(true).unwrap();
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            let (tcp, _) = tokio::time::timeout(LIMIT, listener.accept()).await.unwrap().unwrap();
            let accept = tokio_rustls::TlsAcceptor::from(config).accept(tcp);
            // A client that refuses our certificate ends the handshake: nothing more to do.
            let Ok(Ok(mut tls)) = tokio::time::timeout(LIMIT, accept).await else { return };
            // The client may already be gone (-z): errors after the handshake are its business.
            let _ = tls.write_all(reply).await;
            let _ = tls.flush().await;
            if close_notify {
                let _ = tls.shutdown().await;
            } else {
                // Straight to the TCP FIN, as a cut connection looks.
                let (mut tcp, _) = tls.into_inner();
                let _ = tcp.shutdown().await;
            }
        })
    });
    (server, port)
}

#[test]
fn tls_close_without_close_notify_prints_what_arrived_and_says_the_end_may_be_missing() {
    let (server, port) = tls_server(b"partial", false);
    let out = run(&["--tls", "-k", "127.0.0.1", &port], b"");
    server.join().unwrap();
    assert_eq!(out.stdout, b"partial");
    assert_eq!(out.code, Some(1), "stderr: {}", out.stderr);
    assert_eq!(
        out.stderr,
        format!(
            "tcpkit: error: connection to 127.0.0.1:{port} closed without TLS close_notify after 7 bytes \
             received: the end may be missing\n"
        )
    );
}

#[test]
fn tls_close_with_close_notify_is_a_clean_close() {
    let (server, port) = tls_server(b"complete\n", true);
    let out = run(&["--tls", "-k", "127.0.0.1", &port], b"");
    server.join().unwrap();
    assert_eq!(out.code, Some(0), "stderr: {}", out.stderr);
    assert_eq!(out.stdout, b"complete\n");
}

/// The SNI name of the one ClientHello a TLS client sends to a listener here
/// (`None`: no SNI extension). The handshake is not completed.
fn sni_of(args: &[&str]) -> Option<String> {
    let (listener, port) = listen_v4();
    let server = thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            listener.set_nonblocking(true).unwrap();
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            let (tcp, _) = tokio::time::timeout(LIMIT, listener.accept()).await.unwrap().unwrap();
            let acceptor = tokio_rustls::LazyConfigAcceptor::new(rustls::server::Acceptor::default(), tcp);
            let start = tokio::time::timeout(LIMIT, acceptor).await.unwrap().unwrap();
            start.client_hello().server_name().map(str::to_string)
        })
    });
    let mut full: Vec<&str> = args.to_vec();
    full.push(&port);
    // The handshake is cut: the client fails (7), only the hello matters.
    let out = run(&full, b"");
    assert_eq!(out.code, Some(7), "stderr: {}", out.stderr);
    server.join().unwrap()
}

#[test]
fn sni_is_the_host_or_sni_name_and_absent_with_no_sni_or_an_ip() {
    assert_eq!(sni_of(&["--tls", "-k", "localhost"]).as_deref(), Some("localhost"));
    assert_eq!(sni_of(&["--tls", "-k", "--sni", "svc.example", "127.0.0.1"]).as_deref(), Some("svc.example"));
    assert_eq!(sni_of(&["--tls", "-k", "--no-sni", "localhost"]), None);
    // An IP address is never sent as SNI (RFC 6066).
    assert_eq!(sni_of(&["--tls", "-k", "127.0.0.1"]), None);
}

#[test]
fn zero_io_with_tls_checks_that_the_handshake_succeeds() {
    let (server, port) = tls_server(b"not read", true);
    let out = run(&["-z", "-v", "--tls", "-k", "127.0.0.1", &port], b"not sent");
    server.join().unwrap();
    assert_eq!(out.code, Some(0), "stderr: {}", out.stderr);
    assert!(out.stdout.is_empty());
    assert!(out.stderr.contains("tcpkit: TLS: TLSv1.3 "), "{}", out.stderr);
    // Without -k the self-signed certificate is refused: -z reports it.
    let (server, port) = tls_server(b"", true);
    let out = run(&["-z", "--tls", "--sni", "localhost", "127.0.0.1", &port], b"");
    server.join().unwrap();
    assert_eq!(out.code, Some(8), "stderr: {}", out.stderr);
}
