//! `tcpkit bench --tls` against a rustls server started here (a self-signed
//! rcgen certificate for `localhost` and 127.0.0.1, the hello protocol over
//! TLS): every reply verified, one handshake per churn session, and a wrong
//! certificate or a server that does not speak TLS reported as errors of a TLS
//! kind within the timeout, never a hang.
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread;
use std::time::Duration;

use super::{bench, stderr};

/// A thread-per-connection hello server over TLS on 127.0.0.1 port 0.
struct TlsServer {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    /// Handshakes completed.
    handshakes: Arc<AtomicU64>,
    /// Of those, resumed sessions.
    resumed: Arc<AtomicU64>,
    /// The certificate's PEM, to trust with --cacert.
    cert: tempfile::NamedTempFile,
}

impl TlsServer {
    fn start() -> TlsServer {
        let key = rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()]).unwrap();
        let config = tcpkit::net::tls::server_config(
            key.cert.pem().as_bytes(),
            key.key_pair.serialize_pem().as_bytes(),
        )
        .unwrap();
        let mut cert = tempfile::NamedTempFile::new().unwrap();
        cert.write_all(key.cert.pem().as_bytes()).unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let handshakes = Arc::new(AtomicU64::new(0));
        let resumed = Arc::new(AtomicU64::new(0));
        let (stop2, handshakes2, resumed2) = (stop.clone(), handshakes.clone(), resumed.clone());
        thread::spawn(move || {
            for tcp in listener.incoming() {
                if stop2.load(Ordering::SeqCst) {
                    return;
                }
                let Ok(tcp) = tcp else { continue };
                let (config, handshakes, resumed) = (config.clone(), handshakes2.clone(), resumed2.clone());
                thread::spawn(move || serve_one(tcp, config, &handshakes, &resumed));
            }
        });
        TlsServer { addr, stop, handshakes, resumed, cert }
    }

    fn addr(&self) -> String {
        self.addr.to_string()
    }

    fn cacert(&self) -> String {
        self.cert.path().to_str().unwrap().to_string()
    }
}

impl Drop for TlsServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(self.addr);
    }
}

/// Greeting, then `Hello, LINE!` per line until `exit`; reads are bounded.
fn serve_one(tcp: TcpStream, config: Arc<rustls::ServerConfig>, handshakes: &AtomicU64, resumed: &AtomicU64) {
    tcp.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let Ok(conn) = rustls::ServerConnection::new(config) else { return };
    let mut tls = rustls::StreamOwned::new(conn, tcp);
    // The first write completes the handshake (or fails with it).
    if tls.write_all(b"Welcome!\n").is_err() {
        return;
    }
    handshakes.fetch_add(1, Ordering::SeqCst);
    if tls.conn.handshake_kind() == Some(rustls::HandshakeKind::Resumed) {
        resumed.fetch_add(1, Ordering::SeqCst);
    }
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        while let Some(end) = buf.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = buf.drain(..=end).collect();
            let name = &line[..end];
            if name == b"exit" {
                tls.conn.send_close_notify();
                let _ = tls.flush();
                return;
            }
            if tls.write_all(&[b"Hello, ", name, b"!\n"].concat()).is_err() {
                return;
            }
        }
        match tls.read(&mut chunk) {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

#[test]
fn every_reply_over_tls_is_verified() {
    let server = TlsServer::start();
    let ca = server.cacert();
    // The certificate names 127.0.0.1: the host of ADDR is the name checked.
    let (out, j) =
        bench(&server.addr(), &["-c", "4", "-n", "400", "--pipeline", "4", "--tls", "--cacert", &ca]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(j["verified"], 400, "{j}");
    assert_eq!(server.handshakes.load(Ordering::SeqCst), 4);
    // --sni picks another name the certificate holds.
    let args = ["-c", "2", "-n", "20", "--tls", "--cacert", &ca, "--sni", "localhost"];
    let (out, j) = bench(&server.addr(), &args);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(j["verified"], 20, "{j}");
}

#[test]
fn churn_over_tls_makes_one_handshake_per_session() {
    let server = TlsServer::start();
    let ca = server.cacert();
    let (out, j) = bench(&server.addr(), &["-w", "churn", "-c", "3", "-n", "30", "--tls", "--cacert", &ca]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(j["verified"], 30, "{j}");
    assert_eq!(server.handshakes.load(Ordering::SeqCst), 30);
    // Full handshakes: no session is resumed unless asked.
    assert_eq!(server.resumed.load(Ordering::SeqCst), 0);
    // --tls-resume: after each slot's first session, resumed ones.
    let args = ["-w", "churn", "-c", "3", "-n", "30", "--tls", "--cacert", &ca, "--tls-resume"];
    let (out, j) = bench(&server.addr(), &args);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(j["verified"], 30, "{j}");
    assert_eq!(server.handshakes.load(Ordering::SeqCst), 60);
    let resumed = server.resumed.load(Ordering::SeqCst);
    assert!((20..=30).contains(&resumed), "{resumed} of 30 sessions resumed");
}

#[test]
fn a_wrong_certificate_is_a_tls_error_not_a_hang() {
    let server = TlsServer::start();
    // Trusting another CA: unknown issuer.
    let other = TlsServer::start();
    let args = ["-c", "3", "-d", "1", "--timeout", "5s", "--tls", "--cacert", &other.cacert()];
    let (out, j) = bench(&server.addr(), &args);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(j["errors_by_kind"]["TLS certificate rejected"], 3, "{j}");
    assert!(stderr(&out).contains("certificate of 127.0.0.1 rejected"), "{}", stderr(&out));
    assert_eq!(server.handshakes.load(Ordering::SeqCst), 0);
    // The right CA, a name the certificate does not hold.
    let args = ["-c", "1", "-d", "1", "--tls", "--cacert", &server.cacert(), "--sni", "wrong.example"];
    let (out, j) = bench(&server.addr(), &args);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(j["errors_by_kind"]["TLS certificate rejected"], 1, "{j}");
    // -k accepts it.
    let (out, j) = bench(&server.addr(), &["-c", "1", "-n", "5", "--tls", "-k", "--sni", "wrong.example"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(j["verified"], 5, "{j}");
}

#[test]
fn tls_to_a_plain_server_is_a_failed_handshake() {
    let plain = super::Server::start(super::Behaviour::Correct);
    let (out, j) = bench(&plain.addr(), &["-c", "2", "-d", "1", "--timeout", "5s", "--tls", "-k"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(j["errors_by_kind"]["TLS handshake failed"], 2, "{j}");
    // A server that never answers the ClientHello: timed out, bounded by --timeout.
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = silent.local_addr().unwrap().to_string();
    let (out, j) = bench(&addr, &["-c", "1", "-d", "1", "--timeout", "300ms", "--tls", "-k"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(j["errors_by_kind"]["TLS handshake timed out"], 1, "{j}");
}

#[test]
fn an_unreadable_cacert_is_a_usage_error() {
    let out = crate::util::tcpkit()
        .args(["bench", "127.0.0.1:1", "--tls", "--cacert", "/nonexistent/ca.pem"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("--tls"), "{}", stderr(&out));
}
