//! HAProxy (Debian package haproxy) in the foreground, for the interop tests
//! of the PROXY protocol senders (`connect --proxy-header`, `bench
//! --proxy-header`): a `mode tcp` frontend on a free loopback port, its log
//! lines (stdout) read on a thread. Killed when dropped.
use std::io::{BufRead, BufReader};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

/// Where Debian's haproxy lives.
pub const HAPROXY: &str = "/usr/sbin/haproxy";
/// Bound on waiting for HAProxy to listen and for each log line.
const LIMIT: Duration = Duration::from_secs(20);

/// A running HAProxy.
pub struct Haproxy {
    child: Child,
    /// The frontend's port on 127.0.0.1.
    pub port: u16,
    log: mpsc::Receiver<String>,
    _dir: tempfile::TempDir,
}

impl Haproxy {
    /// HAProxy with the common `global` and `defaults` (log to stdout, raw;
    /// `mode tcp`; `dontlognull`, so the readiness probe logs nothing) and the
    /// `frontend`/`backend` sections `sections(port)` writes for its frontend port.
    pub fn start(sections: impl FnOnce(u16) -> String) -> Haproxy {
        // HAProxy cannot report a port it picked: take a free one and release it.
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let dir = tempfile::tempdir().unwrap();
        let cfg = dir.path().join("haproxy.cfg");
        let global = "global\n  log stdout format raw local0\n  maxconn 1000\n\
                      defaults\n  mode tcp\n  log global\n  option dontlognull\n\
                      \x20 timeout connect 5s\n  timeout client 10s\n  timeout server 10s\n";
        std::fs::write(&cfg, format!("{global}{}", sections(port))).unwrap();
        let mut child = Command::new(HAPROXY)
            .args(["-db", "-f"])
            .arg(&cfg)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("haproxy starts (Debian package haproxy)");
        let (tx, log) = mpsc::channel();
        let stdout = child.stdout.take().unwrap();
        thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let haproxy = Haproxy { child, port, log, _dir: dir };
        let deadline = Instant::now() + LIMIT;
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "haproxy did not listen on {port}");
            thread::sleep(Duration::from_millis(20));
        }
        haproxy
    }

    /// `127.0.0.1:PORT` of the frontend.
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The next log line, within [`LIMIT`].
    pub fn next_log(&self) -> String {
        self.log.recv_timeout(LIMIT).expect("haproxy logs each connection")
    }
}

impl Drop for Haproxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
