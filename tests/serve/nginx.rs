//! Interop with a real nginx `stream` proxy (Debian's nginx-light with
//! libnginx-mod-stream, started by the test in the foreground with its own
//! prefix, pid file and error log) sending PROXY protocol v1 (`proxy_protocol
//! on`) to `tcpkit serve --proxy-protocol`.
use std::io::{BufRead, BufReader};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::Child;
use std::time::{Duration, Instant};

use crate::util::{ServeProcess, tcpkit};

use crate::nginx::NGINX;
use crate::nginx::STREAM_MODULE;

/// nginx in the foreground; killed when dropped.
struct Nginx {
    child: Child,
    dir: tempfile::TempDir,
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

impl Nginx {
    /// nginx with one `stream` server per `(front port, upstream)`, each with
    /// `proxy_protocol on`; returns once every front port accepts.
    fn start(routes: &[(u16, String)]) -> Nginx {
        for path in [NGINX, STREAM_MODULE] {
            assert!(
                Path::new(path).exists(),
                "{path} not found: this interop test needs nginx-light and libnginx-mod-stream"
            );
        }
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().display();
        let servers: String = routes
            .iter()
            .map(|(front, upstream)| {
                format!(
                    "  server {{ listen 127.0.0.1:{front}; proxy_pass {upstream}; proxy_protocol on; \
                     proxy_connect_timeout 5s; }}\n"
                )
            })
            .collect();
        let conf = format!(
            "load_module {STREAM_MODULE};\n\
             daemon off;\nmaster_process off;\npid {p}/nginx.pid;\nerror_log {p}/error.log;\n\
             events {{ worker_connections 256; }}\n\
             stream {{\n{servers}}}\n"
        );
        std::fs::write(dir.path().join("nginx.conf"), conf).unwrap();
        let child = crate::nginx::spawn(dir.path());
        let nginx = Nginx { child, dir };
        let deadline = Instant::now() + Duration::from_secs(10);
        for (front, _) in routes {
            while TcpStream::connect(("127.0.0.1", *front)).is_err() {
                if Instant::now() > deadline {
                    let log = std::fs::read_to_string(nginx.dir.path().join("error.log")).unwrap_or_default();
                    panic!("nginx did not listen on {front}: {log}");
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        nginx
    }
}

#[test]
fn interop_nginx_stream_proxy_protocol_v1_carries_the_client_to_serve() {
    let mut server = ServeProcess::start(&["--proxy-protocol", "--proxy-trusted", "127.0.0.1/32"]);
    // A second route to a bare socket shows what nginx sends: a v1 text header.
    let raw = TcpListener::bind("127.0.0.1:0").unwrap();
    let (front, raw_front) = (free_port(), free_port());
    let _nginx =
        Nginx::start(&[(front, server.addr.to_string()), (raw_front, raw.local_addr().unwrap().to_string())]);

    // The readiness probes connected and closed; nginx may have opened the
    // upstream for them (a log line with a loopback client and no line).
    let bench = |args: &[&str]| {
        let out = tcpkit()
            .args(["bench", &format!("127.0.0.1:{front}"), "--source", "127.0.0.2"])
            .args(args)
            .arg("--json")
            .output()
            .expect("run tcpkit bench");
        let stdout = String::from_utf8_lossy(&out.stdout).to_string();
        assert!(out.status.success(), "{stdout} {}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_str::<serde_json::Value>(&stdout).expect("bench --json")
    };
    let report = bench(&["-c", "4", "-n", "400"]);
    assert_eq!((report["verified"].as_u64(), report["errors"].as_u64()), (Some(400), Some(0)), "{report}");

    // One line per bench connection, each with the real client (127.0.0.2,
    // from the header; nginx's side of the header names its own front port)
    // beside nginx's socket address (127.0.0.1). Every line arrived.
    let mut lines = 0;
    for _ in 0..4 {
        let line = server.wait_log(|v| {
            v["message"] == "closed" && v["client"].as_str().is_some_and(|c| c.starts_with("127.0.0.2:"))
        });
        assert_eq!(line["client_local"], format!("127.0.0.1:{front}"), "{line}");
        assert!(line["peer"].as_str().is_some_and(|p| p.starts_with("127.0.0.1:")), "{line}");
        assert_eq!(line["local"], server.addr.to_string(), "{line}");
        assert_eq!(line["reason"], "eof", "{line}");
        lines += line["lines"].as_u64().expect("lines");
    }
    assert_eq!(lines, 400);

    // Sessions too (connect, hello, quit, close), each through a new upstream connection.
    let report = bench(&["-w", "churn", "-c", "2", "-n", "40"]);
    assert_eq!(report["verified"], 40, "{report}");
    for _ in 0..40 {
        let line = server.wait_log(|v| v["message"] == "closed" && v["reason"] == "quit");
        assert!(line["client"].as_str().is_some_and(|c| c.starts_with("127.0.0.2:")), "{line}");
        assert_ne!(line["client"], line["peer"], "{line}");
    }

    // What crossed the wire: PROXY v1 text, naming 127.0.0.2 and the front port.
    raw.set_nonblocking(false).unwrap();
    let client = TcpStream::connect(("127.0.0.1", raw_front)).unwrap();
    let client_port = client.local_addr().unwrap().port();
    let mut header = String::new();
    // Skip the readiness probe's upstream connection (bounded: one probe).
    for _ in 0..2 {
        let (s, _) = raw.accept().unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        header.clear();
        BufReader::new(&s).read_line(&mut header).unwrap();
        if header.contains(&format!(" {client_port} ")) {
            break;
        }
    }
    assert_eq!(header, format!("PROXY TCP4 127.0.0.1 127.0.0.1 {client_port} {raw_front}\r\n"));
}
