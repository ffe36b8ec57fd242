//! Several URLs in one command: the n-th `-o`/`-O` for the n-th URL, one kept-alive
//! connection per place (HTTP/1.1 persistent connections), each transfer with its own
//! `-w` output, the exit code of the last transfer (or the first failure with
//! `--fail-early`), and a stale kept-alive connection retried once on a new one.
//!
//! The scripted server counts accepted connections and numbers the requests on each,
//! so every test states how many connections the client opened.
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::{fetch, fetch_in, parts};

/// What the server does with one request.
enum Reply {
    /// Answer and keep reading requests on the connection.
    Keep(Vec<u8>),
    /// Answer, then close the connection.
    Close(Vec<u8>),
    /// Close without answering.
    Drop,
}

/// A request as seen: which connection (from 0, in accept order), its number on that
/// connection (from 0), and its target.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Seen {
    conn: usize,
    nth: usize,
    target: String,
}

type Script = Arc<dyn Fn(&Seen) -> Reply + Send + Sync>;

/// A raw HTTP/1.1 server on loopback port 0 answering by `script`; stopped on drop.
struct Scripted {
    addr: SocketAddr,
    seen: Arc<Mutex<Vec<Seen>>>,
    accepts: Arc<Mutex<usize>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

/// How long a server connection waits for the next request before giving up.
const IDLE: Duration = Duration::from_secs(5);
/// The longest request head the server reads.
const MAX_REQUEST: usize = 64 * 1024;

impl Scripted {
    fn start(script: impl Fn(&Seen) -> Reply + Send + Sync + 'static) -> Scripted {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.set_nonblocking(true).expect("nonblocking");
        let addr = listener.local_addr().expect("addr");
        let (seen, accepts, stop) =
            (Arc::default(), Arc::new(Mutex::new(0)), Arc::new(AtomicBool::new(false)));
        let script: Script = Arc::new(script);
        let (s2, a2, stop2) = (Arc::clone(&seen), Arc::clone(&accepts), Arc::clone(&stop));
        let thread = std::thread::spawn(move || {
            let deadline = Instant::now() + Duration::from_secs(30);
            while !stop2.load(Ordering::SeqCst) && Instant::now() < deadline {
                match listener.accept() {
                    Ok((stream, _)) => {
                        let conn = {
                            let mut n = a2.lock().unwrap();
                            *n += 1;
                            *n - 1
                        };
                        let (seen, script) = (Arc::clone(&s2), Arc::clone(&script));
                        std::thread::spawn(move || serve_conn(stream, conn, &seen, &script));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(2)),
                }
            }
        });
        Scripted { addr, seen, accepts, stop, thread: Some(thread) }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    fn accepts(&self) -> usize {
        *self.accepts.lock().unwrap()
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

impl Drop for Scripted {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Read request heads on one connection (bodies are not expected) and answer each.
fn serve_conn(mut stream: TcpStream, conn: usize, seen: &Mutex<Vec<Seen>>, script: &Script) {
    let _ = stream.set_nonblocking(false);
    let _ = stream.set_read_timeout(Some(IDLE));
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    for nth in 0.. {
        let end = loop {
            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            if buf.len() > MAX_REQUEST {
                return;
            }
            match stream.read(&mut chunk) {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        };
        let head = String::from_utf8_lossy(&buf[..end]).into_owned();
        buf.drain(..end);
        let target = head.split(' ').nth(1).unwrap_or_default().to_string();
        let s = Seen { conn, nth, target };
        seen.lock().unwrap().push(s.clone());
        match script(&s) {
            Reply::Keep(bytes) => {
                if stream.write_all(&bytes).is_err() {
                    return;
                }
            }
            Reply::Close(bytes) => {
                let _ = stream.write_all(&bytes);
                return;
            }
            Reply::Drop => return,
        }
    }
}

/// A 200 with a Content-Length body.
fn ok(body: &str) -> Vec<u8> {
    format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{body}", body.len()).into_bytes()
}

/// A 200 with a chunked body (two chunks and the last one).
fn chunked(body: &str) -> Vec<u8> {
    let (a, b) = body.split_at(body.len() / 2);
    format!(
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n{:x}\r\n{a}\r\n{:x}\r\n{b}\r\n0\r\n\r\n",
        a.len(),
        b.len()
    )
    .into_bytes()
}

/// Every path answered with its own name as the body, over a kept-alive connection.
fn echo_paths() -> Scripted {
    Scripted::start(|s| Reply::Keep(ok(&format!("body of {}", s.target))))
}

#[test]
fn two_urls_to_one_host_share_one_kept_alive_connection() {
    let server = echo_paths();
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    let out = fetch(&[
        "-v",
        "-w",
        "%{xfer_id} %{num_connects} %{conn_id}\\n",
        &server.url("/one"),
        "-o",
        a.to_str().unwrap(),
        &server.url("/two"),
        "-o",
        b.to_str().unwrap(),
    ]);
    let (code, stdout, stderr) = parts(&out);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(std::fs::read_to_string(&a).unwrap(), "body of /one");
    assert_eq!(std::fs::read_to_string(&b).unwrap(), "body of /two");
    assert_eq!(server.accepts(), 1, "{stderr}");
    let on_conns: Vec<(usize, usize)> = server.seen().iter().map(|s| (s.conn, s.nth)).collect();
    assert_eq!(on_conns, [(0, 0), (0, 1)]);
    // One -w output per transfer; the second opened no connection.
    assert_eq!(stdout, "0 1 0\n1 0 0\n");
    assert!(stderr.contains("* Re-using existing connection with host 127.0.0.1"), "{stderr}");
    assert_eq!(stderr.matches("* Connection #0 to host 127.0.0.1 left intact").count(), 2, "{stderr}");
}

#[test]
fn three_urls_with_remote_names_and_a_chunked_body_reuse_one_connection() {
    let server = Scripted::start(|s| {
        let body = format!("body of {}", s.target);
        Reply::Keep(if s.target == "/y.txt" { chunked(&body) } else { ok(&body) })
    });
    let dir = tempfile::tempdir().unwrap();
    let out = fetch_in(
        Some(dir.path()),
        &["-O", "-O", "-O", &server.url("/x.txt"), &server.url("/y.txt"), &server.url("/z.txt")],
    );
    let (code, _, stderr) = parts(&out);
    assert_eq!(code, 0, "{stderr}");
    for name in ["x.txt", "y.txt", "z.txt"] {
        assert_eq!(std::fs::read_to_string(dir.path().join(name)).unwrap(), format!("body of /{name}"));
    }
    assert_eq!(server.accepts(), 1);
    assert_eq!(server.seen().len(), 3);
}

#[test]
fn outputs_pair_with_urls_in_order_and_the_rest_go_to_stdout() {
    let server = echo_paths();
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("a");
    let out = fetch(&[&server.url("/first"), "-o", a.to_str().unwrap(), &server.url("/second")]);
    let (code, stdout, stderr) = parts(&out);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(std::fs::read_to_string(&a).unwrap(), "body of /first");
    assert_eq!(stdout, "body of /second");
    // -o before both URLs: still the first URL's, as curl pairs them.
    let b = dir.path().join("b");
    let out = fetch(&["-o", b.to_str().unwrap(), &server.url("/1"), &server.url("/2")]);
    assert_eq!(parts(&out).1, "body of /2");
    assert_eq!(std::fs::read_to_string(&b).unwrap(), "body of /1");
    // -O and -o mixed: each in its turn, as curl pairs them.
    let c = dir.path().join("c");
    let out = fetch_in(
        Some(dir.path()),
        &["-O", "-o", c.to_str().unwrap(), &server.url("/x.txt"), &server.url("/y"), &server.url("/z")],
    );
    assert_eq!(parts(&out).1, "body of /z");
    assert_eq!(std::fs::read_to_string(dir.path().join("x.txt")).unwrap(), "body of /x.txt");
    assert_eq!(std::fs::read_to_string(&c).unwrap(), "body of /y");
}

#[test]
fn different_hosts_get_a_connection_each() {
    let (one, two) = (echo_paths(), echo_paths());
    let out = fetch(&["-w", "%{num_connects} %{conn_id}\\n", &one.url("/a"), &two.url("/b"), &one.url("/c")]);
    let (code, stdout, stderr) = parts(&out);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(stdout, "body of /a1 0\nbody of /b1 1\nbody of /c1 2\n");
    // The pool holds one connection: going back to the first server opens a new one.
    assert_eq!((one.accepts(), two.accepts()), (2, 1));
}

#[test]
fn connection_close_makes_the_next_transfer_connect_again() {
    let server = Scripted::start(|s| {
        let body = format!("body of {}", s.target);
        let head = format!("HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: {}\r\n\r\n", body.len());
        Reply::Close(format!("{head}{body}").into_bytes())
    });
    let out = fetch(&["-v", "-w", "[%{num_connects}]", &server.url("/a"), &server.url("/b")]);
    let (code, stdout, stderr) = parts(&out);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(stdout, "body of /a[1]body of /b[1]");
    assert_eq!(server.accepts(), 2);
    assert!(stderr.contains("* Closing connection #0"), "{stderr}");
    assert!(!stderr.contains("Re-using"), "{stderr}");
}

#[test]
fn a_body_read_to_the_close_is_never_reused() {
    let server = Scripted::start(|s| {
        Reply::Close(format!("HTTP/1.1 200 OK\r\n\r\nuntil close {}", s.target).into_bytes())
    });
    let out = fetch(&["-v", "-w", "[%{num_connects}]", &server.url("/a"), &server.url("/b")]);
    let (code, stdout, stderr) = parts(&out);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(stdout, "until close /a[1]until close /b[1]");
    assert_eq!(server.accepts(), 2);
    // Not reused and found stale: never taken again at all.
    assert!(!stderr.contains("Re-using") && stderr.contains("* Closing connection #0"), "{stderr}");
}

#[test]
fn http_1_0_is_kept_alive_only_when_it_says_keep_alive() {
    let server = Scripted::start(|s| {
        let alive = if s.target == "/alive" { "Connection: keep-alive\r\n" } else { "" };
        let reply = format!("HTTP/1.0 200 OK\r\n{alive}Content-Length: 2\r\n\r\nok").into_bytes();
        if alive.is_empty() { Reply::Close(reply) } else { Reply::Keep(reply) }
    });
    let out = fetch(&[
        "-v",
        "-w",
        "%{num_connects}",
        &server.url("/alive"),
        &server.url("/plain"),
        &server.url("/x"),
    ]);
    let (code, stdout, stderr) = parts(&out);
    assert_eq!(code, 0, "{stderr}");
    // /alive opens, /plain reuses it and ends it, /x connects again.
    assert_eq!(stdout, "ok1ok0ok1");
    assert_eq!(server.accepts(), 2);
    assert_eq!(stderr.matches("Re-using existing connection").count(), 1, "{stderr}");
    assert!(!stderr.contains("died before any answer"), "{stderr}");
}

#[test]
fn a_stale_kept_alive_connection_is_retried_once_on_a_new_one() {
    // The server answers the first request, then closes the connection it let stay open.
    let server = Scripted::start(|s| {
        let body = format!("body of {}", s.target);
        if s.conn == 0 { Reply::Close(ok(&body)) } else { Reply::Keep(ok(&body)) }
    });
    let out = fetch(&["-v", "-w", "[%{num_connects} %{conn_id}]", &server.url("/a"), &server.url("/b")]);
    let (code, stdout, stderr) = parts(&out);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(stdout, "body of /a[1 0]body of /b[1 1]");
    assert_eq!(server.accepts(), 2);
    assert!(stderr.contains("* Connection #0 died before any answer, retrying on a new one"), "{stderr}");
}

#[test]
fn a_stale_retry_happens_once_only() {
    // Every connection after the first closes without an answer: the retry's new
    // connection does too, and that is the transfer's end (empty reply).
    let server = Scripted::start(|s| if s.conn == 0 { Reply::Close(ok("a")) } else { Reply::Drop });
    let out = fetch(&[&server.url("/a"), &server.url("/b")]);
    let (code, stdout, stderr) = parts(&out);
    assert_eq!((code, stdout.as_str()), (52, "a"), "{stderr}");
    assert_eq!(server.accepts(), 2);
}

#[test]
fn a_reused_connection_cut_inside_an_answer_is_not_retried() {
    let server = Scripted::start(|s| {
        if s.nth == 0 {
            Reply::Keep(ok("a"))
        } else {
            Reply::Close(b"HTTP/1.1 200 OK\r\nContent-Le".to_vec())
        }
    });
    let out = fetch(&[&server.url("/a"), &server.url("/b")]);
    let (code, _, stderr) = parts(&out);
    assert_eq!(code, 18, "{stderr}");
    assert_eq!(server.accepts(), 1, "the cut answer is not a stale connection: no retry");
}

#[test]
fn the_exit_code_is_the_last_transfers_and_every_transfer_runs() {
    let server = Scripted::start(|s| {
        if s.target == "/missing" {
            Reply::Keep(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n".to_vec())
        } else {
            Reply::Keep(ok("fine"))
        }
    });
    let out = fetch(&["-f", &server.url("/missing"), &server.url("/ok")]);
    let (code, stdout, stderr) = parts(&out);
    assert_eq!((code, stdout.as_str()), (0, "fine"), "{stderr}");
    assert!(stderr.contains("404"), "the earlier failure is still reported: {stderr}");
    let out = fetch(&["-f", &server.url("/ok"), &server.url("/missing")]);
    assert_eq!(parts(&out).0, 22);
    assert_eq!(server.seen().len(), 4);
}

#[test]
fn fail_early_stops_at_the_first_failed_transfer() {
    let server = Scripted::start(|s| {
        if s.target == "/missing" {
            Reply::Keep(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n".to_vec())
        } else {
            Reply::Keep(ok("fine"))
        }
    });
    let out =
        fetch(&["-f", "--fail-early", "-w", "<%{exitcode}>", &server.url("/missing"), &server.url("/ok")]);
    let (code, stdout, stderr) = parts(&out);
    assert_eq!((code, stdout.as_str()), (22, "<22>"), "{stderr}");
    assert_eq!(server.seen().len(), 1, "the second URL is not fetched");
}

#[test]
fn a_redirect_to_the_same_host_reuses_the_connection() {
    let server = Scripted::start(|s| {
        if s.target == "/from" {
            Reply::Keep(b"HTTP/1.1 302 Found\r\nLocation: /to\r\nContent-Length: 5\r\n\r\nmoved".to_vec())
        } else {
            Reply::Keep(ok("arrived"))
        }
    });
    let out = fetch(&["-L", "-w", " %{num_redirects} %{num_connects}", &server.url("/from")]);
    let (code, stdout, stderr) = parts(&out);
    assert_eq!((code, stdout.as_str()), (0, "arrived 1 1"), "{stderr}");
    assert_eq!(server.accepts(), 1);
}

#[test]
fn dump_header_collects_the_heads_of_every_transfer() {
    let server = echo_paths();
    let dir = tempfile::tempdir().unwrap();
    let heads = dir.path().join("heads");
    std::fs::write(&heads, "stale content from before\n").unwrap();
    let out = fetch(&["-D", heads.to_str().unwrap(), "-i", &server.url("/a"), &server.url("/b")]);
    let (code, stdout, stderr) = parts(&out);
    assert_eq!(code, 0, "{stderr}");
    let head = "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n";
    assert_eq!(std::fs::read_to_string(&heads).unwrap(), format!("{head}{head}"));
    assert_eq!(stdout, format!("{head}body of /a{head}body of /b"));
}

#[test]
fn the_trace_shows_each_exchange_on_the_reused_connection() {
    let server = echo_paths();
    let dir = tempfile::tempdir().unwrap();
    let trace = dir.path().join("trace");
    let out = fetch(&["--trace-ascii", trace.to_str().unwrap(), &server.url("/a"), &server.url("/b")]);
    assert_eq!(parts(&out).0, 0, "{}", parts(&out).2);
    let text = std::fs::read_to_string(&trace).unwrap();
    assert_eq!(text.matches("=> Send header").count(), 2, "{text}");
    assert_eq!(text.matches("<= Recv header").count(), 2, "{text}");
    assert_eq!(text.matches("<= Recv data").count(), 2, "{text}");
    assert!(text.contains("== Info: Re-using existing connection #0 with host 127.0.0.1"), "{text}");
    assert_eq!(server.accepts(), 1);
}

#[test]
fn new_write_out_variables_describe_each_transfer() {
    // The first answer is slow: time_queue of the second still stays near zero, since
    // a transfer is never held in a queue, and time_posttransfer precedes the answer.
    let server = Scripted::start(|s| {
        if s.target.starts_with("/slow") {
            std::thread::sleep(Duration::from_millis(300));
        }
        Reply::Keep(ok("x"))
    });
    let format = "%{xfer_id} %{time_queue} %{time_posttransfer} %{time_starttransfer} %{proxy_used} \
                  %{num_retries} %{url.host} %{url.port} %{url.path} %{url.query}\\n";
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    let (a, b) = (a.to_str().unwrap(), b.to_str().unwrap());
    let out = fetch(&["-s", "-o", a, "-o", b, "-w", format, &server.url("/slow?q=1"), &server.url("/b")]);
    let (code, stdout, stderr) = parts(&out);
    assert_eq!(code, 0, "{stderr}");
    let lines: Vec<Vec<&str>> = stdout.lines().map(|l| l.split(' ').collect()).collect();
    assert_eq!(lines.len(), 2, "{stdout}");
    let secs = |s: &str| s.parse::<f64>().unwrap();
    for (i, l) in lines.iter().enumerate() {
        assert_eq!(l[0], i.to_string());
        assert!(secs(l[1]) < 0.1, "time_queue {}", l[1]);
        assert!(secs(l[2]) > 0.0 && secs(l[2]) <= secs(l[3]), "posttransfer {} starttransfer {}", l[2], l[3]);
        assert_eq!((l[4], l[5], l[6]), ("0", "0", "127.0.0.1"));
        assert_eq!(l[7], server.addr.port().to_string());
    }
    assert!(secs(lines[0][3]) >= 0.3, "the slow answer: {stdout}");
    assert_eq!((lines[0][8], lines[0][9]), ("/slow", "q=1"));
    assert_eq!((lines[1][8], lines[1][9]), ("/b", ""));
}

#[test]
fn num_retries_counts_the_attempts_after_the_first() {
    let server = Scripted::start(|s| {
        if s.conn == 0 {
            Reply::Close(b"HTTP/1.1 503 Busy\r\nRetry-After: 0\r\nContent-Length: 0\r\n\r\n".to_vec())
        } else {
            Reply::Keep(ok("done"))
        }
    });
    let out = fetch(&["-s", "--retry", "2", "-w", " %{num_retries}", &server.url("/r")]);
    let (code, stdout, stderr) = parts(&out);
    assert_eq!((code, stdout.as_str()), (0, "done 1"), "{stderr}");
}

#[test]
fn proxy_used_is_one_through_a_proxy() {
    // The scripted server plays a forward proxy: it gets the absolute URL.
    let proxy = Scripted::start(|s| Reply::Keep(ok(&s.target)));
    let out = fetch(&[
        "-x",
        &proxy.url(""),
        "-w",
        " %{proxy_used} %{num_connects}",
        "http://origin.invalid/a",
        "http://origin.invalid/b",
    ]);
    let (code, stdout, stderr) = parts(&out);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(stdout, "http://origin.invalid/a 1 1http://origin.invalid/b 1 0");
    assert_eq!(proxy.accepts(), 1);
}

#[test]
fn upload_with_several_urls_is_a_usage_error() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("f");
    std::fs::write(&file, "x").unwrap();
    let out = fetch(&["-T", file.to_str().unwrap(), "http://127.0.0.1:1/a", "http://127.0.0.1:1/b"]);
    assert_eq!(parts(&out).0, 2);
}
