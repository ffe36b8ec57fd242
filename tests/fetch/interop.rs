//! Interop tests against a real nginx (`cargo test --features interop -- interop`).
//!
//! Each test starts its own nginx (`/usr/sbin/nginx`, Debian's nginx-light) in the
//! foreground with its own configuration in a temporary directory, on free loopback
//! ports, over HTTP and HTTPS (an rcgen certificate), and stops it on drop.
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

use super::servers::{Pki, pattern};
use super::{fetch, parts};

use crate::nginx::NGINX;
const BIG: usize = 200 << 20;

struct Nginx {
    dir: tempfile::TempDir,
    child: Child,
    http: u16,
    https: u16,
    ca: PathBuf,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

impl Nginx {
    fn start() -> Nginx {
        assert!(
            Path::new(NGINX).exists(),
            "{NGINX} not found: the interop tests need nginx (apt-get install nginx-light)"
        );
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::create_dir(d.join("www")).unwrap();
        std::fs::create_dir(d.join("tmp")).unwrap();
        let pki = Pki::new();
        let (cert, key) = pki.leaf(&["127.0.0.1", "localhost"], false);
        std::fs::write(d.join("cert.pem"), cert).unwrap();
        std::fs::write(d.join("key.pem"), key).unwrap();
        let ca = d.join("ca.pem");
        std::fs::write(&ca, &pki.ca_pem).unwrap();
        let (http, https) = (free_port(), free_port());
        let p = d.display();
        let conf = format!(
            "daemon off;\nmaster_process off;\npid {p}/nginx.pid;\nerror_log {p}/error.log;\n\
             events {{ worker_connections 64; }}\n\
             http {{\n  log_format conns '$connection $connection_requests $request_uri';\n\
               access_log {p}/access.log conns;\n\
               client_body_temp_path {p}/tmp/body;\n  proxy_temp_path {p}/tmp/proxy;\n\
               fastcgi_temp_path {p}/tmp/fastcgi;\n  uwsgi_temp_path {p}/tmp/uwsgi;\n  scgi_temp_path {p}/tmp/scgi;\n\
               types {{ text/plain txt; application/octet-stream bin; }}\n\
               gzip on;\n  gzip_types text/plain;\n  gzip_min_length 0;\n\
               server {{\n\
                 listen 127.0.0.1:{http};\n    listen 127.0.0.1:{https} ssl;\n\
                 ssl_certificate {p}/cert.pem;\n    ssl_certificate_key {p}/key.pem;\n\
                 root {p}/www;\n\
                 location = /moved {{ return 301 /small.txt; }}\n\
               }}\n}}\n"
        );
        std::fs::write(d.join("nginx.conf"), conf).unwrap();
        std::fs::write(d.join("www/small.txt"), "hello from nginx\n".repeat(100)).unwrap();
        let child = crate::nginx::spawn(d);
        let nginx = Nginx { dir, child, http, https, ca };
        nginx.wait_ready();
        nginx
    }

    /// Bounded wait until both ports accept connections.
    fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        for port in [self.http, self.https] {
            while TcpStream::connect(("127.0.0.1", port)).is_err() {
                if Instant::now() > deadline {
                    let log = std::fs::read_to_string(self.dir.path().join("error.log")).unwrap_or_default();
                    panic!("nginx did not start on port {port}: {log}");
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }

    fn www(&self, name: &str) -> PathBuf {
        self.dir.path().join("www").join(name)
    }

    fn http(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.http)
    }

    fn https(&self, path: &str) -> String {
        format!("https://127.0.0.1:{}{path}", self.https)
    }

    fn ca(&self) -> &str {
        self.ca.to_str().unwrap()
    }

    /// Write a `len`-byte file into the document root, returning its SHA-256.
    fn publish(&self, name: &str, len: usize) -> Vec<u8> {
        let block = pattern(1 << 20);
        let mut f = std::fs::File::create(self.www(name)).unwrap();
        let mut hash = Sha256::new();
        let mut left = len;
        while left > 0 {
            let n = left.min(block.len());
            f.write_all(&block[..n]).unwrap();
            hash.update(&block[..n]);
            left -= n;
        }
        hash.finalize().to_vec()
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn sha256_file(path: &Path) -> Vec<u8> {
    let mut f = std::fs::File::open(path).unwrap();
    let mut hash = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf).unwrap();
        if n == 0 {
            return hash.finalize().to_vec();
        }
        hash.update(&buf[..n]);
    }
}

#[test]
fn small_file_over_http_and_https_with_head_and_redirect() {
    let nginx = Nginx::start();
    let want = std::fs::read(nginx.www("small.txt")).unwrap();
    let out = fetch(&[&nginx.http("/small.txt")]);
    assert_eq!(out.stdout, want, "{}", parts(&out).2);
    let out = fetch(&["--cacert", nginx.ca(), &nginx.https("/small.txt")]);
    assert_eq!(out.stdout, want, "{}", parts(&out).2);
    let (code, stdout, _) = parts(&fetch(&["-I", &nginx.http("/small.txt")]));
    assert_eq!(code, 0);
    assert!(stdout.starts_with("HTTP/1.1 200 OK\r\n") && stdout.contains("Server: nginx"), "{stdout}");
    let out = fetch(&["-L", "-w", "%{num_redirects}", &nginx.http("/moved")]);
    let mut with_count = want.clone();
    with_count.push(b'1');
    assert_eq!(out.stdout, with_count);
    let (code, _, stderr) = parts(&fetch(&["-f", &nginx.http("/missing")]));
    assert_eq!(code, 22, "{stderr}");
}

/// The access log's lines (`$connection $connection_requests $request_uri`) once it
/// has `n` of them (nginx writes a line as each request ends; bounded wait).
fn access_log(nginx: &Nginx, n: usize) -> Vec<(u64, u64, String)> {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let text = std::fs::read_to_string(nginx.dir.path().join("access.log")).unwrap_or_default();
        let lines: Vec<(u64, u64, String)> = text
            .lines()
            .filter_map(|l| {
                let mut f = l.split(' ');
                Some((f.next()?.parse().ok()?, f.next()?.parse().ok()?, f.next()?.to_string()))
            })
            .collect();
        if lines.len() >= n || Instant::now() > deadline {
            return lines;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn interop_two_urls_over_one_kept_alive_connection_to_nginx() {
    let nginx = Nginx::start();
    let want = std::fs::read(nginx.www("small.txt")).unwrap();
    std::fs::write(nginx.www("other.txt"), "other\n").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    let (a, b) = (a.to_str().unwrap(), b.to_str().unwrap());
    let w = "%{num_connects} %{conn_id}\\n";
    let out = fetch(&["-w", w, &nginx.http("/small.txt"), "-o", a, &nginx.http("/other.txt"), "-o", b]);
    let (code, stdout, stderr) = parts(&out);
    assert_eq!((code, stdout.as_str()), (0, "1 0\n0 0\n"), "{stderr}");
    assert_eq!(std::fs::read(a).unwrap(), want);
    assert_eq!(std::fs::read_to_string(b).unwrap(), "other\n");
    // Over TLS too (the gzip-encoded reply is chunked there: --compressed).
    let out = fetch(&[
        "--compressed",
        "--cacert",
        nginx.ca(),
        "-w",
        w,
        "-o",
        a,
        "-o",
        b,
        &nginx.https("/small.txt"),
        &nginx.https("/other.txt"),
    ]);
    let (code, stdout, stderr) = parts(&out);
    assert_eq!((code, stdout.as_str()), (0, "1 0\n0 0\n"), "{stderr}");
    assert_eq!(std::fs::read(a).unwrap(), want);
    let log = access_log(&nginx, 4);
    assert_eq!(log.len(), 4, "{log:?}");
    // nginx numbers its connections and the requests on each: one connection per
    // command, its second request the second URL.
    assert_eq!((log[0].0, log[0].1, log[0].2.as_str()), (log[1].0, 1, "/small.txt"), "{log:?}");
    assert_eq!((log[1].1, log[1].2.as_str()), (2, "/other.txt"), "{log:?}");
    assert_eq!((log[2].0, log[2].1), (log[3].0, 1), "{log:?}");
    assert_eq!((log[3].1, log[3].2.as_str()), (2, "/other.txt"), "{log:?}");
    assert_ne!(log[0].0, log[2].0);
}

#[test]
fn gzip_from_nginx_is_decoded() {
    let nginx = Nginx::start();
    let want = std::fs::read(nginx.www("small.txt")).unwrap();
    let out = fetch(&["--compressed", "-D", "-", &nginx.http("/small.txt")]);
    let (code, stdout, stderr) = parts(&out);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("Content-Encoding: gzip"), "{stdout}");
    assert!(out.stdout.ends_with(&want));
}

/// nginx `gzip on` streams a multi-MiB text file as gzip in many deflate flushes: the
/// body that made `--compressed` fail with "decoder stalled" (hardening issue).
#[test]
fn megabytes_of_text_gzipped_by_nginx_decode_over_http_and_https() {
    let nginx = Nginx::start();
    let words = ["nginx", "gzip", "window", "flush", "the", "of", "a", "stream", "header", "body"];
    let mut seed = 0x1234_5678_9abc_def1_u64;
    let mut text = String::with_capacity(5 << 20);
    while text.len() < 5 << 20 {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        text.push_str(words[(seed % 10) as usize]);
        text.push_str(if seed % 11 == 0 { ".\n" } else { " " });
    }
    std::fs::write(nginx.www("prose.txt"), &text).unwrap();
    for url in [nginx.http("/prose.txt"), nginx.https("/prose.txt")] {
        let dir = tempfile::tempdir().unwrap();
        let out = fetch(&[
            "--compressed",
            "--cacert",
            nginx.ca(),
            "-D",
            "-",
            "-o",
            dir.path().join("p").to_str().unwrap(),
            &url,
        ]);
        let (code, stdout, stderr) = parts(&out);
        assert_eq!(code, 0, "{url}: {stderr}");
        assert!(stdout.contains("Content-Encoding: gzip"), "{stdout}");
        assert!(
            std::fs::read(dir.path().join("p")).unwrap() == text.as_bytes(),
            "{url}: decoded body differs"
        );
    }
}

#[test]
fn big_body_over_http_and_https_has_the_right_sha256() {
    let nginx = Nginx::start();
    let want = nginx.publish("big.bin", BIG);
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("big.bin");
    let cases: [(&str, Vec<&str>); 3] = [
        ("http splice", vec![]),
        ("http read/write", vec!["--no-splice"]),
        ("https", vec!["--cacert", nginx.ca()]),
    ];
    for (what, extra) in cases {
        let url = if what == "https" { nginx.https("/big.bin") } else { nginx.http("/big.bin") };
        let mut args = vec!["-s", "-o", dest.to_str().unwrap(), "-w", "%{size_download}"];
        args.extend(extra);
        args.push(&url);
        let out = fetch(&args);
        let (code, stdout, stderr) = parts(&out);
        assert_eq!((code, stdout), (0, BIG.to_string()), "{what}: {stderr}");
        assert_eq!(sha256_file(&dest), want, "{what}");
        std::fs::remove_file(&dest).unwrap();
    }
}

#[test]
fn resume_against_nginx_completes_the_exact_body() {
    let nginx = Nginx::start();
    let len = 20 << 20;
    let want = nginx.publish("r.bin", len);
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("r.bin");
    let source = std::fs::read(nginx.www("r.bin")).unwrap();
    std::fs::write(dir.path().join("r.bin.part"), &source[..7_654_321]).unwrap();
    for (scheme, url) in [("http", nginx.http("/r.bin")), ("https", nginx.https("/r.bin"))] {
        let out = fetch(&[
            "-C",
            "-",
            "--cacert",
            nginx.ca(),
            "-o",
            dest.to_str().unwrap(),
            "-w",
            "%{http_code}",
            &url,
        ]);
        let (code, stdout, stderr) = parts(&out);
        if scheme == "http" {
            assert_eq!((code, stdout.as_str()), (0, "206"), "{stderr}");
        } else {
            // The file is complete now: nginx answers 416 and nothing changes.
            assert_eq!((code, stdout.as_str()), (0, "416"), "{stderr}");
        }
        assert_eq!(sha256_file(&dest), want, "{scheme}");
        assert!(!dir.path().join("r.bin.part").exists());
    }
    // From a partial FILE (no .part), over HTTPS.
    std::fs::write(&dest, &source[..1000]).unwrap();
    let out =
        fetch(&["-C", "-", "--cacert", nginx.ca(), "-o", dest.to_str().unwrap(), &nginx.https("/r.bin")]);
    assert_eq!(out.status.code(), Some(0), "{}", parts(&out).2);
    assert_eq!(sha256_file(&dest), want);
}

/// A tinyproxy (Debian's package) in the foreground on a free loopback port, any
/// CONNECT port allowed, stopped on drop.
struct Tinyproxy {
    _dir: tempfile::TempDir,
    child: Child,
    port: u16,
}

const TINYPROXY: &str = "/usr/bin/tinyproxy";

impl Tinyproxy {
    fn start() -> Tinyproxy {
        assert!(Path::new(TINYPROXY).exists(), "{TINYPROXY} not found: apt-get install tinyproxy");
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let conf = dir.path().join("tinyproxy.conf");
        // No ConnectPort line: CONNECT to any port (the test origin's is random).
        std::fs::write(
            &conf,
            format!(
                "Port {port}\nListen 127.0.0.1\nTimeout 30\nMaxClients 16\nAllow 127.0.0.1\n\
                 LogLevel Error\nPidFile \"{}/tinyproxy.pid\"\n",
                dir.path().display()
            ),
        )
        .unwrap();
        let child = Command::new(TINYPROXY)
            .arg("-d")
            .arg("-c")
            .arg(&conf)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start tinyproxy");
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "tinyproxy did not listen on {port}");
            std::thread::sleep(Duration::from_millis(20));
        }
        Tinyproxy { _dir: dir, child, port }
    }
}

impl Drop for Tinyproxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn http_and_https_through_tinyproxy_forward_and_tunnel() {
    let proxy = Tinyproxy::start();
    let via = format!("http://127.0.0.1:{}", proxy.port);
    let nginx = Nginx::start();
    let want = std::fs::read(nginx.www("small.txt")).unwrap();
    for args in [
        vec!["-x", via.as_str(), "--cacert", nginx.ca()],
        vec!["-p", "-x", via.as_str(), "--cacert", nginx.ca()],
    ] {
        for url in [nginx.http("/small.txt"), nginx.https("/small.txt")] {
            let mut all = args.clone();
            all.push(&url);
            let out = fetch(&all);
            let (code, _, stderr) = parts(&out);
            assert_eq!(code, 0, "{args:?} {url}: {stderr}");
            assert!(out.stdout == want, "{args:?} {url}: body differs");
            // The connection was to tinyproxy, not to nginx.
            all.extend(["-o", "/dev/null", "-w", "%{remote_port}"]);
            let out = fetch(&all);
            assert_eq!(parts(&out).1, proxy.port.to_string(), "{args:?} {url}");
        }
    }
}
