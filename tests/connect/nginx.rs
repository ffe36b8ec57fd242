//! Interop of `tcpkit connect --proxy-header` with nginx (Debian's
//! nginx-light, started here; `cargo test --features interop -- nginx`): an
//! HTTP server on `listen ... proxy_protocol` answers with the client and
//! server addresses it read from our header (`$proxy_protocol_addr`...), and
//! closes a connection that brings no header. A missing nginx fails the test.
use std::net::TcpStream;
use std::path::Path;
use std::process::Child;
use std::thread;
use std::time::{Duration, Instant};

use super::{LIMIT, run};

use crate::nginx::NGINX;

/// nginx in the foreground on a free port with `proxy_protocol`; killed when dropped.
struct Nginx {
    child: Child,
    port: String,
    dir: tempfile::TempDir,
}

impl Nginx {
    fn start() -> Nginx {
        assert!(Path::new(NGINX).exists(), "{NGINX} not found: apt-get install nginx-light");
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().display();
        // nginx cannot report a port it picked: take a free one and release it.
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let conf = format!(
            "daemon off;\nmaster_process off;\npid {p}/nginx.pid;\nerror_log {p}/error.log;\n\
             events {{ worker_connections 16; }}\n\
             http {{\n  access_log off;\n  client_body_temp_path {p}/body;\n\
               server {{\n    listen 127.0.0.1:{port} proxy_protocol;\n\
                 location / {{ return 200 \"client=$proxy_protocol_addr:$proxy_protocol_port \
             server=$proxy_protocol_server_addr:$proxy_protocol_server_port real=$remote_addr\\n\"; }}\n\
               }}\n}}\n"
        );
        std::fs::write(dir.path().join("nginx.conf"), conf).unwrap();
        let child = crate::nginx::spawn(dir.path());
        let nginx = Nginx { child, port: port.to_string(), dir };
        let deadline = Instant::now() + LIMIT;
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "nginx did not listen: {}", nginx.error_log());
            thread::sleep(Duration::from_millis(20));
        }
        nginx
    }

    fn error_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("error.log")).unwrap_or_default()
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The body of nginx's answer to `GET /` sent with these flags.
fn answer(nginx: &Nginx, flags: &[&str]) -> String {
    let args: Vec<&str> = ["-C"].iter().chain(flags).copied().chain(["127.0.0.1", &nginx.port]).collect();
    let out = run(&args, b"GET / HTTP/1.0\n\n");
    assert_eq!(out.code, Some(0), "{flags:?} stderr: {}\n{}", out.stderr, nginx.error_log());
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.split("\r\n\r\n").nth(1).unwrap_or_default().to_string()
}

#[test]
fn interop_nginx_proxy_protocol_reads_the_client_we_claim_in_v1_and_v2() {
    let nginx = Nginx::start();
    let port = &nginx.port;
    let v1 = answer(&nginx, &["--proxy-header", "v1", "--proxy-source", "203.0.113.7:4000"]);
    assert_eq!(v1, format!("client=203.0.113.7:4000 server=127.0.0.1:{port} real=127.0.0.1\n"));
    let v2 = answer(&nginx, &["--proxy-header", "v2", "--proxy-source", "198.51.100.9:5555"]);
    assert_eq!(v2, format!("client=198.51.100.9:5555 server=127.0.0.1:{port} real=127.0.0.1\n"));
    // An IPv6 client to an IPv4 server: both go as IPv6, the server IPv4-mapped.
    let mixed = answer(&nginx, &["--proxy-header", "v2", "--proxy-source", "[2001:db8::7]:4000"]);
    assert_eq!(mixed, format!("client=2001:db8::7:4000 server=::ffff:127.0.0.1:{port} real=127.0.0.1\n"));
}

#[test]
fn interop_nginx_proxy_protocol_closes_a_connection_without_a_header() {
    let nginx = Nginx::start();
    let out = run(&["-C", "127.0.0.1", &nginx.port], b"GET / HTTP/1.0\n\n");
    assert_eq!(out.stdout, b"", "stderr: {}", out.stderr);
    assert!(nginx.error_log().contains("broken header"), "{}", nginx.error_log());
}
