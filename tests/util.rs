//! Helpers shared by the integration tests.
#![allow(dead_code)] // Each command's module uses a different subset.

use std::path::PathBuf;
use std::process::Command;

/// Path of the `tcpkit` binary built for these tests.
pub fn tcpkit_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_tcpkit"))
}

/// A `Command` for the `tcpkit` binary with `RUST_LOG` cleared, so the
/// developer's environment cannot change what a test sees.
pub fn tcpkit() -> Command {
    let mut cmd = Command::new(tcpkit_bin());
    cmd.env_remove("RUST_LOG");
    cmd
}

/// Bound on waiting for a log line or an exit, so a bug fails instead of hanging.
const LIMIT: std::time::Duration = std::time::Duration::from_secs(10);

/// `tcpkit serve` as a child process on a port the OS picked (`--listen
/// 127.0.0.1:0`), learnt from its JSON "listening" log line: no free-port
/// guess to race with, no probe connection. Killed when dropped.
pub struct ServeProcess {
    /// The server process.
    pub child: std::process::Child,
    /// The address it listens on.
    pub addr: std::net::SocketAddr,
    /// Its stderr, one JSON value per line (a line that is not JSON, a panic
    /// say, arrives as `{"raw": line}`).
    pub logs: std::sync::mpsc::Receiver<serde_json::Value>,
}

impl ServeProcess {
    /// Start `tcpkit serve` with `args` after the listen address and JSON logs.
    pub fn start(args: &[&str]) -> ServeProcess {
        let child = tcpkit()
            .args(["serve", "--listen", "127.0.0.1:0", "--log-format", "json"])
            .args(args)
            .stdin(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("spawn tcpkit serve");
        ServeProcess::from_child(child)
    }

    /// Take over a server started another way (its stderr piped, JSON logs,
    /// port 0) and wait until it listens.
    pub fn from_child(mut child: std::process::Child) -> ServeProcess {
        use std::io::BufRead;
        let stderr = std::io::BufReader::new(child.stderr.take().expect("stderr piped"));
        let (tx, logs) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in stderr.lines().map_while(Result::ok) {
                let v = serde_json::from_str(&line).unwrap_or_else(|_| serde_json::json!({"raw": line}));
                if tx.send(v).is_err() {
                    break;
                }
            }
        });
        let mut p = ServeProcess { child, addr: ([0, 0, 0, 0], 0).into(), logs };
        let listening = p.wait_log(|v| v["message"] == "listening");
        p.addr = listening["addr"].as_str().expect("addr in the listening line").parse().unwrap();
        p
    }

    /// The next log line that matches, skipping others.
    pub fn wait_log(&mut self, want: impl Fn(&serde_json::Value) -> bool) -> serde_json::Value {
        loop {
            let v = self.logs.recv_timeout(LIMIT).expect("expected log line did not come");
            if want(&v) {
                return v;
            }
        }
    }

    /// Send a signal (`"TERM"`, `"INT"`) to the server.
    pub fn signal(&self, sig: &str) {
        let status = Command::new("kill").args([&format!("-{sig}"), &self.child.id().to_string()]).status();
        assert!(status.is_ok_and(|s| s.success()));
    }

    /// Wait for the server to exit, at most [`LIMIT`].
    pub fn wait_exit(&mut self) -> std::process::ExitStatus {
        for _ in 0..(LIMIT.as_millis() / 10) {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        panic!("server did not exit");
    }
}

impl Drop for ServeProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
