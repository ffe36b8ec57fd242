//! Integration tests of `tcpkit serve`: raw bytes on the wire against a server
//! started in the test on port 0, in-process where the library suffices and as
//! a process where signals, exit codes or log lines are the point.
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream as StdStream};
use std::process::Stdio;
use std::time::Duration;

use tcpkit::serve::{Config, Server};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;

use crate::util::{ServeProcess as Proc, tcpkit};

/// Bound on any single wait in these tests, so a bug fails instead of hanging.
const LIMIT: Duration = Duration::from_secs(10);

/// A server running on the test's runtime; cancelled when dropped.
struct InProcess {
    addr: SocketAddr,
    stop: CancellationToken,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl InProcess {
    fn start(config: Config) -> InProcess {
        let server = Server::bind(&config).expect("bind");
        let addr = server.local_addrs()[0];
        let stop = CancellationToken::new();
        let token = stop.clone();
        let task = tokio::spawn(async move {
            server.run(token).await.expect("server runs");
        });
        InProcess { addr, stop, task: Some(task) }
    }

    async fn stop(mut self) {
        self.stop.cancel();
        if let Some(task) = self.task.take() {
            tokio::time::timeout(LIMIT, task).await.expect("server stops").expect("no panic");
        }
    }
}

impl Drop for InProcess {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// Read until the server closes; fails the test after [`LIMIT`].
async fn read_to_end(s: &mut TcpStream) -> Vec<u8> {
    let mut out = Vec::new();
    tokio::time::timeout(LIMIT, s.read_to_end(&mut out)).await.expect("server closes").expect("read");
    out
}

/// Read exactly `n` bytes.
async fn read_n(s: &mut TcpStream, n: usize) -> Vec<u8> {
    let mut out = vec![0; n];
    tokio::time::timeout(LIMIT, s.read_exact(&mut out)).await.expect("bytes arrive").expect("read");
    out
}

async fn conversation(addr: SocketAddr, send: &[u8]) -> Vec<u8> {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(send).await.unwrap();
    s.shutdown().await.unwrap();
    read_to_end(&mut s).await
}

#[tokio::test]
async fn the_tutorial_conversation() {
    let srv = InProcess::start(Config::default());
    let got = conversation(srv.addr, b"Michael\nTracy\nSarah\nexit\n").await;
    assert_eq!(got, b"Welcome!\nHello, Michael!\nHello, Tracy!\nHello, Sarah!\n");
    srv.stop().await;
}

#[tokio::test]
async fn exit_line_closes_after_earlier_replies() {
    let srv = InProcess::start(Config::default());
    let mut s = TcpStream::connect(srv.addr).await.unwrap();
    // Not half-closed: the server alone decides to close, on `exit`.
    s.write_all(b"a\nb\nexit\nnot answered\n").await.unwrap();
    assert_eq!(read_to_end(&mut s).await, b"Welcome!\nHello, a!\nHello, b!\n");
}

#[tokio::test]
async fn crlf_loses_its_cr_and_bytes_pass_through_untouched() {
    let srv = InProcess::start(Config::default());
    let got = conversation(srv.addr, b"Tracy\r\n\0\xff\xfe\n\n").await;
    assert_eq!(got, b"Welcome!\nHello, Tracy!\nHello, \0\xff\xfe!\nHello, !\n");
}

#[tokio::test]
async fn half_close_answers_a_final_line_without_newline() {
    let srv = InProcess::start(Config::default());
    assert_eq!(conversation(srv.addr, b"one\ntwo").await, b"Welcome!\nHello, one!\nHello, two!\n");
    assert_eq!(conversation(srv.addr, b"one\n").await, b"Welcome!\nHello, one!\n");
    assert_eq!(conversation(srv.addr, b"").await, b"Welcome!\n");
}

#[tokio::test]
async fn one_segment_or_one_byte_per_segment_give_the_same_replies() {
    let srv = InProcess::start(Config::default());
    let input = b"Michael\r\nTracy\n\xffSarah\nlast";
    let whole = conversation(srv.addr, input).await;
    let mut s = TcpStream::connect(srv.addr).await.unwrap();
    s.set_nodelay(true).unwrap();
    for b in input {
        s.write_all(&[*b]).await.unwrap();
        tokio::task::yield_now().await;
    }
    s.shutdown().await.unwrap();
    assert_eq!(read_to_end(&mut s).await, whole);
    assert_eq!(whole, b"Welcome!\nHello, Michael!\nHello, Tracy!\nHello, \xffSarah!\nHello, last!\n");
}

#[tokio::test]
async fn many_lines_in_one_write_are_answered_in_order() {
    let srv = InProcess::start(Config::default());
    let mut input = Vec::new();
    let mut want = b"Welcome!\n".to_vec();
    for i in 0..20_000 {
        input.extend_from_slice(format!("n{i}\n").as_bytes());
        want.extend_from_slice(format!("Hello, n{i}!\n").as_bytes());
    }
    assert_eq!(conversation(srv.addr, &input).await, want);
}

#[tokio::test]
async fn greeting_reply_and_quit_word_are_configurable() {
    let config = Config {
        protocol: tcpkit::serve::protocol::Protocol::new("hi there", "<{}>", "bye"),
        ..Config::default()
    };
    let srv = InProcess::start(config);
    assert_eq!(conversation(srv.addr, b"x\nexit\nbye\ny\n").await, b"hi there\n<x>\n<exit>\n");
}

fn with_max_line(n: usize) -> Config {
    Config { max_line: n, ..Config::default() }
}

#[tokio::test]
async fn a_line_exactly_at_max_line_is_answered() {
    let srv = InProcess::start(with_max_line(8));
    let got = conversation(srv.addr, b"12345678\n12345678\r\n12345678").await;
    assert_eq!(got, b"Welcome!\nHello, 12345678!\nHello, 12345678!\nHello, 12345678!\n");
}

#[tokio::test]
async fn a_line_one_over_max_line_gets_err_and_close() {
    let srv = InProcess::start(with_max_line(8));
    let mut s = TcpStream::connect(srv.addr).await.unwrap();
    s.write_all(b"ok\n123456789\nnever\n").await.unwrap();
    let got = read_to_end(&mut s).await;
    assert_eq!(got, b"Welcome!\nHello, ok!\nERR line too long (limit 8 bytes)\n");
}

#[tokio::test]
async fn endless_bytes_without_newline_are_cut_off_early() {
    let srv = InProcess::start(with_max_line(1024));
    let mut s = TcpStream::connect(srv.addr).await.unwrap();
    // The server must answer long before 64 MiB: it does not buffer the line.
    let chunk = vec![b'x'; 64 * 1024];
    let mut sent = 0usize;
    let writer = async {
        while sent < 64 << 20 {
            match s.write(&chunk).await {
                Ok(n) => sent += n,
                Err(_) => break,
            }
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(2), writer).await;
    let mut got = Vec::new();
    let _ = tokio::time::timeout(LIMIT, s.read_to_end(&mut got)).await.expect("server closes");
    assert!(got.ends_with(b"ERR line too long (limit 1024 bytes)\n"), "{got:?}");
}

#[tokio::test]
async fn over_max_connections_a_client_gets_busy_and_others_are_unaffected() {
    let srv = InProcess::start(Config { max_connections: Some(2), ..Config::default() });
    let mut a = TcpStream::connect(srv.addr).await.unwrap();
    let mut b = TcpStream::connect(srv.addr).await.unwrap();
    assert_eq!(read_n(&mut a, 9).await, b"Welcome!\n");
    assert_eq!(read_n(&mut b, 9).await, b"Welcome!\n");
    let mut c = TcpStream::connect(srv.addr).await.unwrap();
    assert_eq!(read_to_end(&mut c).await, b"ERR server busy\n");
    a.write_all(b"still here\n").await.unwrap();
    assert_eq!(read_n(&mut a, 19).await, b"Hello, still here!\n");
    // A place frees up when a connection ends.
    drop(b);
    let mut served = false;
    for _ in 0..100 {
        let mut d = TcpStream::connect(srv.addr).await.unwrap();
        let mut first = [0u8; 9];
        if tokio::time::timeout(LIMIT, d.read_exact(&mut first)).await.is_ok_and(|r| r.is_ok())
            && &first == b"Welcome!\n"
        {
            served = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(served, "a freed place is given to a new client");
}

#[tokio::test(start_paused = true)]
async fn an_idle_connection_is_closed_after_the_idle_timeout() {
    let config = Config { idle_timeout: Some(Duration::from_secs(300)), ..Config::default() };
    let srv = InProcess::start(config);
    let mut s = TcpStream::connect(srv.addr).await.unwrap();
    assert_eq!(read_n(&mut s, 9).await, b"Welcome!\n");
    let before = tokio::time::Instant::now();
    s.write_all(b"x\n").await.unwrap();
    assert_eq!(read_n(&mut s, 10).await, b"Hello, x!\n");
    let mut rest = Vec::new();
    s.read_to_end(&mut rest).await.unwrap();
    assert!(rest.is_empty());
    // Paused time: the clock jumped straight to the deadline, not earlier.
    assert!(before.elapsed() >= Duration::from_secs(300), "{:?}", before.elapsed());
}

#[tokio::test]
async fn a_client_that_never_reads_stalls_only_itself() {
    let srv = InProcess::start(Config::default());
    let std_stream = StdStream::connect(srv.addr).unwrap();
    std_stream.set_write_timeout(Some(Duration::from_millis(500))).unwrap();
    // Write lines and never read: once the server stops reading, writes block.
    let hog = std::thread::spawn(move || {
        let mut s = std_stream;
        let chunk = b"0123456789abcdef\n".repeat(4096);
        let mut sent = 0usize;
        while sent < 256 << 20 {
            match s.write(&chunk) {
                Ok(n) => sent += n,
                Err(_) => break,
            }
        }
        (sent, s)
    });
    // Meanwhile another client is served as usual.
    let got = conversation(srv.addr, b"fine\n").await;
    assert_eq!(got, b"Welcome!\nHello, fine!\n");
    let (sent, hog_stream) = tokio::task::spawn_blocking(move || hog.join().unwrap()).await.unwrap();
    // 256 MiB sent would mean the server kept reading without sending replies.
    assert!(sent < 256 << 20, "the server kept reading: {sent} bytes");
    drop(hog_stream);
}

#[tokio::test]
async fn ipv6_loopback_works() {
    let config = Config { listen: vec!["[::1]:0".parse().unwrap()], ..Config::default() };
    let Ok(server) = Server::bind(&config) else {
        // Only a host without IPv6 at all may skip; ::1 is there on Linux CI.
        assert!(std::net::TcpListener::bind("[::1]:0").is_err(), "::1 works but serve failed");
        return;
    };
    let addr = server.local_addrs()[0];
    let stop = CancellationToken::new();
    let task = tokio::spawn(server.run(stop.clone()));
    assert!(addr.is_ipv6());
    assert_eq!(conversation(addr, b"six\n").await, b"Welcome!\nHello, six!\n");
    stop.cancel();
    task.await.unwrap().unwrap();
}

// ---- As a process: signals, exit codes, log lines ----

fn std_read_to_end(s: &mut StdStream) -> Vec<u8> {
    s.set_read_timeout(Some(LIMIT)).unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).expect("server closes in time");
    out
}

#[test]
fn one_log_line_per_connection_with_its_four_tuple_and_counters() {
    let mut p = Proc::start(&[]);
    let mut s = StdStream::connect(p.addr).unwrap();
    let local = s.local_addr().unwrap();
    s.write_all(b"Michael\nexit\n").unwrap();
    assert_eq!(std_read_to_end(&mut s), b"Welcome!\nHello, Michael!\n");
    let line = p.wait_log(|v| v["message"] == "closed");
    assert_eq!(line["local"], p.addr.to_string());
    assert_eq!(line["peer"], local.to_string());
    assert_eq!(line["lines"], 1);
    assert_eq!(line["bytes_in"], 13);
    assert_eq!(line["bytes_out"], 25);
    assert_eq!(line["reason"], "quit");
    assert!(line["duration_ms"].as_f64().is_some());
    assert_eq!(line["level"], "INFO");
}

#[test]
fn close_reasons_are_logged() {
    let mut p = Proc::start(&["--max-line", "4", "--max-connections", "1"]);
    let reason = |p: &mut Proc| p.wait_log(|v| v["message"] == "closed")["reason"].clone();

    let mut s = StdStream::connect(p.addr).unwrap();
    s.shutdown(std::net::Shutdown::Write).unwrap();
    std_read_to_end(&mut s);
    assert_eq!(reason(&mut p), "eof");

    let mut s = StdStream::connect(p.addr).unwrap();
    s.write_all(b"toolong\n").unwrap();
    std_read_to_end(&mut s);
    assert_eq!(reason(&mut p), "line too long");

    let mut held = StdStream::connect(p.addr).unwrap();
    let mut greeting = [0u8; 9];
    held.read_exact(&mut greeting).unwrap();
    let mut busy = StdStream::connect(p.addr).unwrap();
    assert_eq!(std_read_to_end(&mut busy), b"ERR server busy\n");
    assert_eq!(reason(&mut p), "busy");

    // A reset mid-burst: SO_LINGER 0 makes close send RST with lines unanswered.
    let sock = socket2::Socket::from(held);
    sock.set_linger(Some(Duration::ZERO)).unwrap();
    let mut held = StdStream::from(sock);
    held.write_all(&b"ab\n".repeat(10_000)).unwrap();
    drop(held);
    assert_eq!(reason(&mut p), "reset");
    // The server goes on.
    let mut s = StdStream::connect(p.addr).unwrap();
    s.write_all(b"ok\nexit\n").unwrap();
    assert_eq!(std_read_to_end(&mut s), b"Welcome!\nHello, ok!\n");
}

#[test]
fn sigterm_answers_every_received_line_then_exits_zero() {
    let mut p = Proc::start(&[]);
    let mut clients = Vec::new();
    for i in 0..20 {
        let mut s = StdStream::connect(p.addr).unwrap();
        let mut greeting = [0u8; 9];
        s.read_exact(&mut greeting).unwrap();
        // Complete lines, then a partial one that must not be answered.
        let lines: String = (0..50).map(|j| format!("c{i}l{j}\n")).collect();
        s.write_all(lines.as_bytes()).unwrap();
        s.write_all(b"partial").unwrap();
        clients.push((i, s));
    }
    // The bytes are on the host (loopback delivers at write); the signal follows.
    std::thread::sleep(Duration::from_millis(100));
    p.signal("TERM");
    for (i, mut s) in clients {
        let want: String = (0..50).map(|j| format!("Hello, c{i}l{j}!\n")).collect();
        assert_eq!(String::from_utf8_lossy(&std_read_to_end(&mut s)), want);
    }
    let status = p.wait_exit();
    assert!(status.success(), "{status:?}");
    // New connections are refused once shutdown began.
    assert!(StdStream::connect(p.addr).is_err());
}

#[test]
fn after_sigterm_a_conversation_in_progress_finishes_while_it_keeps_talking() {
    for (drain, late_answered) in [(None, true), (Some("0"), false)] {
        let args: Vec<&str> = drain.map(|d| vec!["--drain-idle", d]).unwrap_or_default();
        let mut p = Proc::start(&args);
        let mut s = StdStream::connect(p.addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut greeting = [0u8; 9];
        s.read_exact(&mut greeting).unwrap();
        p.signal("TERM");
        // The client's next line comes after the signal, well within the
        // default quiet time of 500 ms.
        std::thread::sleep(Duration::from_millis(200));
        let _ = s.write_all(b"late\n");
        if late_answered {
            let mut reply = [0u8; 13];
            s.read_exact(&mut reply).unwrap();
            assert_eq!(&reply, b"Hello, late!\n");
            s.write_all(b"exit\n").unwrap();
        }
        assert_eq!(std_read_to_end(&mut s), b"", "drain {drain:?}");
        let closed = p.wait_log(|v| v["message"] == "closed");
        assert_eq!(closed["reason"], if late_answered { "quit" } else { "shutdown" }, "drain {drain:?}");
        let status = p.wait_exit();
        assert!(status.success(), "{status:?}");
    }
}

#[test]
fn shutdown_timeout_bounds_a_client_that_never_reads() {
    let mut p = Proc::start(&["--shutdown-timeout", "1"]);
    let mut s = StdStream::connect(p.addr).unwrap();
    s.set_write_timeout(Some(Duration::from_millis(300))).unwrap();
    let chunk = b"x\n".repeat(32 * 1024);
    while s.write(&chunk).is_ok() {}
    p.signal("INT");
    let status = p.wait_exit();
    assert!(status.success(), "{status:?}");
    let line = p.wait_log(|v| v["message"] == "closed");
    assert_eq!(line["reason"], "shutdown");
}

#[test]
fn a_port_in_use_fails_with_the_address_in_the_message() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let out = tcpkit().args(["serve", "--listen", &addr]).output().unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains(&addr) && stderr.contains("in use"), "{stderr}");
}

#[test]
fn accept_errors_back_off_and_the_server_recovers() {
    // 32 descriptors in all: accept fails with EMFILE long before 60 clients.
    let child = std::process::Command::new("bash")
        .args([
            "-c",
            "ulimit -n 32 && exec \"$0\" serve --listen 127.0.0.1:0 --log-format json --max-connections 100 \
             --threads 1",
        ])
        .arg(crate::util::tcpkit_bin())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut p = Proc::from_child(child);
    let mut held: Vec<StdStream> = (0..60).filter_map(|_| StdStream::connect(p.addr).ok()).collect();
    let failed = p.wait_log(|v| v["message"] == "accept failed");
    assert!(failed["error"].as_str().unwrap().contains("Too many open files"), "{failed}");
    // Free the descriptors: the server comes back by itself.
    held.clear();
    let mut s = None;
    for _ in 0..200 {
        let Ok(mut c) = StdStream::connect(p.addr) else {
            std::thread::sleep(Duration::from_millis(50));
            continue;
        };
        c.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
        let mut g = [0u8; 9];
        if c.read_exact(&mut g).is_ok() {
            s = Some(c);
            break;
        }
    }
    let Some(mut s) = s else {
        let rest: Vec<_> = p.logs.try_iter().collect();
        panic!("server does not accept again; exit {:?}, logs {rest:?}", p.child.try_wait());
    };
    s.write_all(b"back\nexit\n").unwrap();
    assert_eq!(std_read_to_end(&mut s), b"Hello, back!\n");
    assert_eq!(p.child.try_wait().unwrap(), None, "server still running");
}

/// Bytes in the kernel send queue of the TCP socket from `local` to `remote`
/// (sent, not yet acknowledged by the peer), from /proc/net/tcp.
fn send_queue(local: SocketAddr, remote: SocketAddr) -> u64 {
    let table = std::fs::read_to_string("/proc/net/tcp").unwrap();
    let hex = |a: SocketAddr| match a {
        SocketAddr::V4(v4) => format!("{:08X}:{:04X}", u32::from_le_bytes(v4.ip().octets()), v4.port()),
        SocketAddr::V6(_) => unreachable!("IPv4 only"),
    };
    let (l, r) = (hex(local), hex(remote));
    for row in table.lines().skip(1) {
        let f: Vec<&str> = row.split_whitespace().collect();
        if f[1] == l && f[2] == r {
            let tx = f[4].split(':').next().unwrap();
            return u64::from_str_radix(tx, 16).unwrap();
        }
    }
    panic!("socket {local} -> {remote} not in /proc/net/tcp");
}

#[test]
fn shutdown_answers_lines_still_unread_in_the_kernel_buffer() {
    // No draining: the connection ends at the signal, with exactly what had arrived.
    let mut p = Proc::start(&["--drain-idle", "0"]);
    // A tiny receive buffer on the client: the server soon cannot write its
    // replies, stops reading, and the rest of the input waits in its kernel buffer.
    let sock = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    sock.set_recv_buffer_size(4096).unwrap();
    sock.connect(&p.addr.into()).unwrap();
    sock.set_nonblocking(true).unwrap();
    let mut s = StdStream::from(sock);
    let input: Vec<u8> = (0..2_000_000u32).flat_map(|i| format!("{i:08}\n").into_bytes()).collect();
    let mut written = 0;
    let mut stalled = 0;
    while written < input.len() && stalled < 50 {
        match s.write(&input[written..]) {
            Ok(n) => {
                written += n;
                stalled = 0;
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                stalled += 1;
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(e) => panic!("write: {e}"),
        }
    }
    assert!(written < input.len(), "the server never stopped reading: {written} bytes");
    // What reached the server's host socket: written less what is still queued here.
    let delivered = written - send_queue(s.local_addr().unwrap(), p.addr) as usize;
    p.signal("TERM");
    s.set_nonblocking(false).unwrap();
    let got = std_read_to_end(&mut s);
    let want_lines = input[..delivered].iter().filter(|&&b| b == b'\n').count();
    let mut want = b"Welcome!\n".to_vec();
    for i in 0..want_lines {
        want.extend_from_slice(format!("Hello, {i:08}!\n").as_bytes());
    }
    assert_eq!(got.len(), want.len(), "replies for exactly the {want_lines} lines that had arrived");
    assert!(got == want);
    assert!(p.wait_exit().success());
}

#[test]
fn text_logs_to_a_pipe_carry_no_colour_codes() {
    let mut child = tcpkit()
        .args(["serve", "--listen", "127.0.0.1:0"])
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn tcpkit serve");
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    stderr.read_line(&mut line).unwrap();
    let _ = child.kill();
    let _ = child.wait();
    assert!(line.contains("listening") && line.contains("addr=127.0.0.1:"), "{line}");
    assert!(!line.contains('\u{1b}'), "escape codes in a piped log line: {line:?}");
}

/// serve and bench read `--reply` the same way: for each template bench
/// verifies every reply of a server started with that template.
#[test]
fn serve_and_bench_agree_on_every_reply_template() {
    for template in ["Hello, {}!", "{}", "pong", "{}{}", "<{}>|{}"] {
        let serve = Proc::start(&["--reply", template]);
        let out = tcpkit()
            .args(["bench", &serve.addr.to_string(), "--reply", template, "-c", "2", "-n", "50", "--json"])
            .output()
            .expect("run tcpkit bench");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{template}: {stdout} {}", String::from_utf8_lossy(&out.stderr));
        let j: serde_json::Value = serde_json::from_str(&stdout).expect("bench --json");
        assert_eq!(j["verified"], 50, "{template}: {j}");
    }
}

#[test]
fn proxy_protocol_logs_the_client_beside_the_balancer_and_refuses_a_missing_header() {
    let mut p = Proc::start(&["--proxy-protocol"]);
    // v1, then the conversation.
    let mut s = StdStream::connect(p.addr).unwrap();
    s.set_read_timeout(Some(LIMIT)).unwrap();
    s.write_all(b"PROXY TCP4 203.0.113.7 192.0.2.1 51234 9999\r\nMichael\nexit\n").unwrap();
    assert_eq!(std_read_to_end(&mut s), b"Welcome!\nHello, Michael!\n");
    let line = p.wait_log(|v| v["message"] == "closed");
    assert_eq!(line["client"], "203.0.113.7:51234", "{line}");
    assert_eq!(line["client_local"], "192.0.2.1:9999", "{line}");
    assert_eq!(line["peer"], s.local_addr().unwrap().to_string(), "{line}");
    // v2 with a UNIQUE_ID TLV, as HAProxy's send-proxy-v2 sends it.
    let addrs: ppp::v2::Addresses = (
        "[2001:db8::1]:4000".parse::<SocketAddr>().unwrap(),
        "[2001:db8::2]:9999".parse::<SocketAddr>().unwrap(),
    )
        .into();
    let header = ppp::v2::Builder::with_addresses(
        ppp::v2::Version::Two | ppp::v2::Command::Proxy,
        ppp::v2::Protocol::Stream,
        addrs,
    )
    .write_tlv(ppp::v2::Type::UniqueId, b"req-42")
    .unwrap()
    .build()
    .unwrap();
    let mut s = StdStream::connect(p.addr).unwrap();
    s.set_read_timeout(Some(LIMIT)).unwrap();
    s.write_all(&[&header[..], b"Tracy\nexit\n"].concat()).unwrap();
    assert_eq!(std_read_to_end(&mut s), b"Welcome!\nHello, Tracy!\n");
    let line = p.wait_log(|v| v["message"] == "closed");
    assert_eq!(
        (line["client"].as_str(), line["unique_id"].as_str()),
        (Some("[2001:db8::1]:4000"), Some("req-42"))
    );
    // No header: closed before a byte is sent, logged with the reason.
    let mut s = StdStream::connect(p.addr).unwrap();
    s.set_read_timeout(Some(LIMIT)).unwrap();
    s.write_all(b"Michael\nexit\nmore bytes\n").unwrap();
    assert_closed_without_a_byte(&mut s);
    let line = p.wait_log(|v| v["message"] == "closed");
    assert_eq!(
        (line["level"].as_str(), line["reason"].as_str()),
        (Some("WARN"), Some("proxy header: no PROXY header"))
    );
}

/// The server closed (a reset is fine: it refused a peer whose bytes it did
/// not read) without sending anything.
fn assert_closed_without_a_byte(s: &mut StdStream) {
    let mut out = Vec::new();
    match s.read_to_end(&mut out) {
        Ok(_) => assert!(out.is_empty(), "{out:?}"),
        Err(e) => assert_eq!(e.kind(), std::io::ErrorKind::ConnectionReset, "{e}"),
    }
}

#[test]
fn proxy_trusted_refuses_a_header_from_any_other_peer() {
    let mut p = Proc::start(&["--proxy-protocol", "--proxy-trusted", "192.0.2.0/24"]);
    let mut s = StdStream::connect(p.addr).unwrap();
    s.set_read_timeout(Some(LIMIT)).unwrap();
    s.write_all(b"PROXY TCP4 203.0.113.7 192.0.2.1 51234 9999\r\nMichael\n").unwrap();
    assert_closed_without_a_byte(&mut s);
    let line = p.wait_log(|v| v["message"] == "closed");
    assert_eq!(line["reason"], "proxy header: untrusted peer", "{line}");
}

/// `GET path` on `addr`, the whole response.
fn http_get(addr: &str, path: &str) -> String {
    let mut s = StdStream::connect(addr).unwrap();
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes()).unwrap();
    String::from_utf8(std_read_to_end(&mut s)).unwrap()
}

#[test]
fn metrics_are_scraped_in_prometheus_text() {
    let mut p = Proc::start(&["--metrics", "127.0.0.1:0", "--max-connections", "1"]);
    let metrics = p.wait_log(|v| v["message"] == "metrics")["addr"].as_str().unwrap().to_string();
    let mut held = StdStream::connect(p.addr).unwrap();
    held.write_all(b"a\nb\n").unwrap();
    let mut got = [0; 9 + 20];
    held.set_read_timeout(Some(LIMIT)).unwrap();
    held.read_exact(&mut got).unwrap();
    // Over the limit of one: told busy.
    let mut busy = StdStream::connect(p.addr).unwrap();
    assert_eq!(std_read_to_end(&mut busy), b"ERR server busy\n");
    let _ = p.wait_log(|v| v["reason"] == "busy");
    let text = http_get(&metrics, "/metrics");
    assert!(text.starts_with("HTTP/1.1 200 OK\r\n"), "{text}");
    for want in
        ["tcpkit_connections_open 1", "tcpkit_busy_refusals_total 1", "tcpkit_connections_accepted_total 1"]
    {
        assert!(text.contains(want), "{want} not in {text}");
    }
    held.write_all(b"exit\n").unwrap();
    assert_eq!(std_read_to_end(&mut held), b"");
    let _ = p.wait_log(|v| v["reason"] == "quit");
    let text = http_get(&metrics, "/metrics");
    for want in [
        "tcpkit_connections_open 0",
        "tcpkit_connections_closed_total{reason=\"quit\"} 1",
        "tcpkit_lines_total 2",
        "tcpkit_received_bytes_total 9",
        "tcpkit_sent_bytes_total 29",
        "tcpkit_connection_duration_seconds_count 1",
    ] {
        assert!(text.contains(want), "{want} not in {text}");
    }
    assert!(http_get(&metrics, "/other").starts_with("HTTP/1.1 404"));
}

/// The value of the sample `name` (with its labels, if any) in a scrape.
fn sample(text: &str, name: &str) -> Option<u64> {
    text.lines().find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
}

/// `tcpkit bench ARGS --json` against `addr` as a child process, stdout piped.
fn bench_json(addr: SocketAddr, args: &[&str]) -> std::process::Child {
    tcpkit()
        .args(["bench", &addr.to_string(), "--json"])
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run tcpkit bench")
}

fn bench_report(child: std::process::Child) -> serde_json::Value {
    let out = child.wait_with_output().expect("bench ends");
    assert!(out.status.success(), "{out:?}");
    serde_json::from_slice(&out.stdout).expect("bench --json")
}

#[test]
fn metrics_scraped_during_a_bench_run_match_its_report() {
    let mut p = Proc::start(&["--metrics", "127.0.0.1:0", "--threads", "2"]);
    let metrics = p.wait_log(|v| v["message"] == "metrics")["addr"].as_str().unwrap().to_string();
    let scrape = || {
        let text = http_get(&metrics, "/metrics");
        assert!(text.starts_with("HTTP/1.1 200 OK\r\n"), "{text}");
        text
    };
    // One line, the same on every request: the byte counts follow from the
    // reply count. "abc\n" in; "Hello, abc!\n" out, after "Welcome!\n".
    let (line_in, reply_out, greeting) = (4, 12, 9);
    let bench = bench_json(p.addr, &["-c", "4", "-d", "2", "-m", "abc"]);
    // Mid-run: every bench connection is open, and the lines and bytes
    // served so far are counted already (not only at each close).
    let deadline = std::time::Instant::now() + LIMIT;
    let mid = loop {
        let text = scrape();
        if sample(&text, "tcpkit_connections_open") == Some(4)
            && sample(&text, "tcpkit_lines_total") > Some(0)
        {
            assert_eq!(sample(&text, "tcpkit_connections_accepted_total"), Some(4), "{text}");
            break text;
        }
        assert!(std::time::Instant::now() < deadline, "never 4 open with lines answered: {text}");
        std::thread::sleep(Duration::from_millis(50));
    };
    let mid_lines = sample(&mid, "tcpkit_lines_total").unwrap_or(0);
    // A line is counted once its bytes are in: received >= 4 per line counted.
    assert!(sample(&mid, "tcpkit_received_bytes_total") >= Some(line_in * mid_lines), "{mid}");
    let report = bench_report(bench);
    let verified = report["verified_total"].as_u64().expect("verified_total");
    assert_eq!((report["errors"].as_u64(), report["established"].as_u64()), (Some(0), Some(4)), "{report}");
    assert!(mid_lines < verified, "scraped mid-run: {mid_lines} of {verified} lines");
    // Once the server has logged every close, the counters equal the report's.
    for _ in 0..4 {
        let _ = p.wait_log(|v| v["message"] == "closed");
    }
    let text = scrape();
    let want = [
        ("tcpkit_connections_open", 0),
        ("tcpkit_connections_accepted_total", 4),
        ("tcpkit_connections_closed_total{reason=\"eof\"}", 4),
        ("tcpkit_lines_total", verified),
        ("tcpkit_received_bytes_total", line_in * verified),
        ("tcpkit_sent_bytes_total", 4 * greeting + reply_out * verified),
        ("tcpkit_connection_duration_seconds_count", 4),
        ("tcpkit_busy_refusals_total", 0),
        ("tcpkit_proxy_header_errors_total", 0),
    ];
    for (name, value) in want {
        assert_eq!(sample(&text, name), Some(value), "{name} after {report}:\n{text}");
    }

    // Sessions: each one connection, one line and the quit word ("exit\n").
    let report = bench_report(bench_json(p.addr, &["-w", "churn", "-c", "2", "-n", "30", "-m", "abc"]));
    let sessions = report["verified_total"].as_u64().expect("verified_total");
    assert_eq!((sessions, report["errors"].as_u64()), (30, Some(0)), "{report}");
    for _ in 0..30 {
        let _ = p.wait_log(|v| v["message"] == "closed" && v["reason"] == "quit");
    }
    let text = scrape();
    let want = [
        ("tcpkit_connections_open", 0),
        ("tcpkit_connections_accepted_total", 4 + sessions),
        ("tcpkit_connections_closed_total{reason=\"eof\"}", 4),
        ("tcpkit_connections_closed_total{reason=\"quit\"}", sessions),
        ("tcpkit_lines_total", verified + sessions),
        ("tcpkit_received_bytes_total", line_in * verified + (line_in + 5) * sessions),
        ("tcpkit_sent_bytes_total", 4 * greeting + reply_out * verified + (greeting + reply_out) * sessions),
        ("tcpkit_connection_duration_seconds_count", 4 + sessions),
    ];
    for (name, value) in want {
        assert_eq!(sample(&text, name), Some(value), "{name} after {report}:\n{text}");
    }
}

#[test]
fn reuse_port_lets_a_second_server_share_the_port_and_take_over() {
    let mut first = Proc::start(&["--reuse-port"]);
    let port = first.addr.to_string();
    let listen = ["serve", "--listen", &port, "--log-format", "json"];
    // Without the option on both, the port is taken.
    let out = tcpkit().args(listen).stdin(Stdio::null()).output().unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("in use"), "{out:?}");
    let child = tcpkit()
        .args(listen)
        .arg("--reuse-port")
        .stdin(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let second = Proc::from_child(child);
    assert_eq!(second.addr, first.addr);
    first.signal("TERM");
    assert_eq!(first.wait_exit().code(), Some(0));
    // The port still answers: the second server serves.
    let mut s = StdStream::connect(first.addr).unwrap();
    s.write_all(b"still\nexit\n").unwrap();
    assert_eq!(std_read_to_end(&mut s), b"Welcome!\nHello, still!\n");
}

#[test]
fn socket_activation_serves_the_inherited_listener_and_notifies_ready() {
    let dir = tempfile::tempdir().unwrap();
    let notify_path = dir.path().join("notify");
    let notify = std::os::unix::net::UnixDatagram::bind(&notify_path).unwrap();
    notify.set_read_timeout(Some(LIMIT)).unwrap();
    // What systemd does: a listening socket at descriptor 3, LISTEN_FDS=1 and
    // LISTEN_PID set to the server's pid (python keeps its pid across exec).
    let script = "import os, socket, sys\n\
                  s = socket.socket(); s.bind(('127.0.0.1', 0)); s.listen(16)\n\
                  os.dup2(s.fileno(), 3); os.set_inheritable(3, True)\n\
                  os.environ['LISTEN_FDS'] = '1'; os.environ['LISTEN_PID'] = str(os.getpid())\n\
                  os.execv(sys.argv[1], [sys.argv[1], 'serve', '--listen', '127.0.0.1:1', '--log-format', 'json'])\n";
    let child = std::process::Command::new("python3")
        .args(["-c", script])
        .arg(crate::util::tcpkit_bin())
        .env("NOTIFY_SOCKET", &notify_path)
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3");
    let mut p = Proc::from_child(child);
    // Not the --listen address: the inherited one.
    assert_ne!(p.addr.port(), 1);
    let mut buf = [0; 256];
    let n = notify.recv(&mut buf).expect("sd_notify message");
    assert!(String::from_utf8_lossy(&buf[..n]).contains("READY=1"));
    let mut s = StdStream::connect(p.addr).unwrap();
    s.write_all(b"systemd\nexit\n").unwrap();
    assert_eq!(std_read_to_end(&mut s), b"Welcome!\nHello, systemd!\n");
    p.signal("TERM");
    assert_eq!(p.wait_exit().code(), Some(0));
}

#[cfg(feature = "interop")]
mod deploy;
#[cfg(feature = "interop")]
mod haproxy;
#[cfg(feature = "interop")]
mod nginx;
mod restart;
mod tls;
#[cfg(feature = "interop")]
mod tls_interop;
mod trace;
#[cfg(feature = "interop")]
mod wire;
