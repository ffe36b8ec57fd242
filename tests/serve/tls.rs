//! `tcpkit serve --tls-cert`: the hello conversation over TLS, mTLS, the
//! certificate re-read on SIGHUP, and a failed handshake logged, never a hang.
//! Clients are rustls over blocking sockets; certificates come from rcgen.
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};

use crate::util::ServeProcess as Proc;

/// Bound on any single read, so a bug fails instead of hanging.
const LIMIT: Duration = Duration::from_secs(10);

/// A CA, a server certificate for localhost/127.0.0.1 and a client
/// certificate, all signed by it, as PEM files in a temporary directory.
pub struct Pki {
    /// Holds the files; removed when dropped.
    pub dir: tempfile::TempDir,
}

impl Pki {
    pub fn new(ca_name: &str) -> Pki {
        use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
        let dir = tempfile::tempdir().unwrap();
        let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.distinguished_name.push(DnType::CommonName, ca_name);
        let ca_key = KeyPair::generate().unwrap();
        let ca_cert = ca.self_signed(&ca_key).unwrap();
        let write_leaf = |names: Vec<String>, cn: &str, stem: &str| {
            let mut leaf = CertificateParams::new(names).unwrap();
            leaf.distinguished_name.push(DnType::CommonName, cn);
            let key = KeyPair::generate().unwrap();
            let cert = leaf.signed_by(&key, &ca_cert, &ca_key).unwrap();
            std::fs::write(dir.path().join(format!("{stem}.pem")), cert.pem()).unwrap();
            std::fs::write(dir.path().join(format!("{stem}-key.pem")), key.serialize_pem()).unwrap();
        };
        write_leaf(vec!["localhost".into(), "127.0.0.1".into()], "tcpkit test server", "server");
        write_leaf(vec!["client".into()], "tcpkit test client", "client");
        std::fs::write(dir.path().join("ca.pem"), ca_cert.pem()).unwrap();
        Pki { dir }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn arg(&self, name: &str) -> String {
        self.path(name).display().to_string()
    }

    /// `--tls-cert` and `--tls-key` for this server certificate.
    pub fn server_args(&self) -> Vec<String> {
        vec!["--tls-cert".into(), self.arg("server.pem"), "--tls-key".into(), self.arg("server-key.pem")]
    }
}

fn certs(path: &Path) -> Vec<CertificateDer<'static>> {
    CertificateDer::pem_file_iter(path).unwrap().map(Result::unwrap).collect()
}

/// A client trusting `ca.pem` of `pki`, with `pki`'s client certificate when `with_cert`.
pub fn client_config(pki: &Pki, with_cert: bool) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    for c in certs(&pki.path("ca.pem")) {
        roots.add(c).unwrap();
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots);
    let config = if with_cert {
        let key = PrivateKeyDer::from_pem_file(pki.path("client-key.pem")).unwrap();
        builder.with_client_auth_cert(certs(&pki.path("client.pem")), key).unwrap()
    } else {
        builder.with_no_client_auth()
    };
    Arc::new(config)
}

type Tls = rustls::StreamOwned<rustls::ClientConnection, TcpStream>;

/// A TLS connection to `addr` for the name `localhost`, handshake done.
pub fn connect(addr: SocketAddr, config: Arc<rustls::ClientConfig>) -> std::io::Result<Tls> {
    let tcp = TcpStream::connect(addr)?;
    tcp.set_read_timeout(Some(LIMIT))?;
    let name = ServerName::try_from("localhost").unwrap();
    let conn = rustls::ClientConnection::new(config, name).map_err(std::io::Error::other)?;
    let mut tls = rustls::StreamOwned::new(conn, tcp);
    while tls.conn.is_handshaking() {
        tls.conn.complete_io(&mut tls.sock)?;
    }
    Ok(tls)
}

/// Read until `want` bytes arrived.
fn read_exact(tls: &mut Tls, want: usize) -> Vec<u8> {
    let mut got = vec![0; want];
    tls.read_exact(&mut got).unwrap();
    got
}

#[test]
fn the_hello_conversation_holds_over_tls() {
    let pki = Pki::new("serve CA");
    let args = pki.server_args();
    let mut p = Proc::start(&args.iter().map(String::as_str).collect::<Vec<_>>());
    let mut tls = connect(p.addr, client_config(&pki, false)).expect("handshake");
    tls.write_all(b"Michael\nTracy\nexit\n").unwrap();
    let mut got = Vec::new();
    // The server ends with close_notify: a clean end of stream, no error.
    tls.read_to_end(&mut got).expect("clean TLS close");
    assert_eq!(got, b"Welcome!\nHello, Michael!\nHello, Tracy!\n");
    let line = p.wait_log(|v| v["message"] == "closed");
    assert_eq!(line["reason"], "quit", "{line}");
    assert_eq!(line["lines"], 2, "{line}");
}

#[test]
fn mtls_refuses_a_client_without_a_certificate_and_serves_one_with() {
    let pki = Pki::new("mtls CA");
    let mut args = pki.server_args();
    args.extend(["--tls-client-ca".into(), pki.arg("ca.pem")]);
    let mut p = Proc::start(&args.iter().map(String::as_str).collect::<Vec<_>>());

    // TLS 1.3: the client finishes its side before the server checks it, so
    // the refusal shows at the first read.
    let refused = connect(p.addr, client_config(&pki, false)).and_then(|mut tls| {
        let mut buf = [0u8; 64];
        tls.read(&mut buf)
    });
    let err = refused.expect_err("no certificate: refused");
    assert!(err.to_string().contains("CertificateRequired"), "{err}");
    let line = p.wait_log(|v| v["message"] == "closed");
    assert_eq!(line["level"], "WARN", "{line}");
    let reason = line["reason"].as_str().unwrap();
    assert!(reason.starts_with("tls: ") && reason.contains("certificate"), "{reason}");

    let mut tls = connect(p.addr, client_config(&pki, true)).expect("with a certificate");
    tls.write_all(b"Ann\n").unwrap();
    assert_eq!(read_exact(&mut tls, 21), b"Welcome!\nHello, Ann!\n");
}

#[test]
fn sighup_serves_the_new_certificate_to_new_clients_while_old_ones_continue() {
    let old = Pki::new("old CA");
    let new = Pki::new("new CA");
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::copy(old.path("server.pem"), &cert).unwrap();
    std::fs::copy(old.path("server-key.pem"), &key).unwrap();
    let (cert_arg, key_arg) = (cert.display().to_string(), key.display().to_string());
    let mut p = Proc::start(&["--tls-cert", &cert_arg, "--tls-key", &key_arg]);

    let mut before = connect(p.addr, client_config(&old, false)).expect("old certificate");
    before.write_all(b"one\n").unwrap();
    assert_eq!(read_exact(&mut before, 21), b"Welcome!\nHello, one!\n");

    // A bad pair first: refused, the old one kept and still served.
    std::fs::write(&cert, "not a certificate\n").unwrap();
    p.signal("HUP");
    let kept = p.wait_log(|v| v["message"].as_str().is_some_and(|m| m.starts_with("SIGHUP")));
    assert!(kept["message"].as_str().unwrap().contains("kept"), "{kept}");
    assert!(connect(p.addr, client_config(&old, false)).is_ok());

    std::fs::copy(new.path("server.pem"), &cert).unwrap();
    std::fs::copy(new.path("server-key.pem"), &key).unwrap();
    p.signal("HUP");
    let line = p.wait_log(|v| v["message"].as_str().is_some_and(|m| m.starts_with("SIGHUP")));
    assert!(line["message"].as_str().unwrap().contains("reloaded"), "{line}");

    // New clients get the new certificate: the old CA no longer verifies it.
    assert!(connect(p.addr, client_config(&old, false)).is_err());
    let mut after = connect(p.addr, client_config(&new, false)).expect("new certificate");
    after.write_all(b"two\n").unwrap();
    assert_eq!(read_exact(&mut after, 21), b"Welcome!\nHello, two!\n");
    // The connection made before the reload goes on.
    before.write_all(b"three\n").unwrap();
    assert_eq!(read_exact(&mut before, 14), b"Hello, three!\n");
}

#[test]
fn a_plain_text_client_gets_a_logged_handshake_failure_not_a_hang() {
    let pki = Pki::new("plain CA");
    let args = pki.server_args();
    let mut p = Proc::start(&args.iter().map(String::as_str).collect::<Vec<_>>());
    let mut s = TcpStream::connect(p.addr).unwrap();
    s.set_read_timeout(Some(LIMIT)).unwrap();
    s.write_all(b"Michael\n").unwrap();
    // The server closes (an alert at most, never the greeting), well before LIMIT.
    let mut got = Vec::new();
    let _ = s.read_to_end(&mut got);
    assert!(!got.windows(8).any(|w| w == b"Welcome!"), "{got:?}");
    let line = p.wait_log(|v| v["message"] == "closed");
    assert_eq!(line["level"], "WARN", "{line}");
    let reason = line["reason"].as_str().unwrap();
    assert!(reason.starts_with("tls: "), "{reason}");

    // A client that sends nothing is closed at the handshake timeout.
    let mut p = Proc::start(&[&args[0], &args[1], &args[2], &args[3], "--tls-handshake-timeout", "300ms"]);
    let mut s = TcpStream::connect(p.addr).unwrap();
    s.set_read_timeout(Some(LIMIT)).unwrap();
    assert_eq!(s.read(&mut [0u8; 16]).expect("closed, not timed out"), 0);
    let line = p.wait_log(|v| v["message"] == "closed");
    assert_eq!(line["reason"], "tls: handshake timeout (300ms)", "{line}");
}

#[test]
fn an_unusable_certificate_is_a_clear_start_error() {
    let pki = Pki::new("bad CA");
    let out = crate::util::tcpkit()
        .args(["serve", "--listen", "127.0.0.1:0", "--tls-cert"])
        .arg(pki.path("ca.pem"))
        .arg("--tls-key")
        .arg(pki.path("server-key.pem"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("tls: key: ") && err.contains("does not match"), "{err}");
}

#[test]
fn proxy_header_comes_before_tls_and_busy_is_a_close_without_a_byte() {
    let pki = Pki::new("proxy CA");
    let mut args = pki.server_args();
    args.extend(["--proxy-protocol".into(), "--max-connections".into(), "1".into()]);
    let mut p = Proc::start(&args.iter().map(String::as_str).collect::<Vec<_>>());
    let mut tcp = TcpStream::connect(p.addr).unwrap();
    tcp.set_read_timeout(Some(LIMIT)).unwrap();
    tcp.write_all(b"PROXY TCP4 192.0.2.7 198.51.100.1 40000 443\r\n").unwrap();
    let conn =
        rustls::ClientConnection::new(client_config(&pki, false), ServerName::try_from("localhost").unwrap())
            .unwrap();
    let mut tls = rustls::StreamOwned::new(conn, tcp);
    tls.write_all(b"Ann\n").unwrap();
    assert_eq!(read_exact(&mut tls, 21), b"Welcome!\nHello, Ann!\n");

    // Over the limit: no plaintext `ERR server busy` to a TLS client, a close.
    let mut second = TcpStream::connect(p.addr).unwrap();
    second.set_read_timeout(Some(LIMIT)).unwrap();
    let mut got = Vec::new();
    let _ = second.read_to_end(&mut got);
    assert_eq!(got, b"");
    let busy = p.wait_log(|v| v["message"] == "closed");
    assert_eq!(busy["reason"], "busy", "{busy}");

    tls.write_all(b"exit\n").unwrap();
    let line = p.wait_log(|v| v["message"] == "closed");
    assert_eq!(line["client"], "192.0.2.7:40000", "{line}");
    assert_eq!(line["reason"], "quit", "{line}");
}

#[test]
fn sigterm_answers_a_tls_client_then_closes_it_with_close_notify_and_exits_zero() {
    let pki = Pki::new("shutdown CA");
    let args = pki.server_args();
    let mut p = Proc::start(&args.iter().map(String::as_str).collect::<Vec<_>>());
    let mut tls = connect(p.addr, client_config(&pki, false)).expect("handshake");
    tls.write_all(b"Ann\n").unwrap();
    assert_eq!(read_exact(&mut tls, 21), b"Welcome!\nHello, Ann!\n");
    p.signal("TERM");
    let mut rest = Vec::new();
    // A clean TLS end (close_notify): read_to_end errors on a bare TCP close.
    tls.read_to_end(&mut rest).expect("close_notify before the TCP close");
    assert_eq!(rest, b"");
    assert_eq!(p.wait_log(|v| v["message"] == "closed")["reason"], "shutdown");
    assert_eq!(p.wait_exit().code(), Some(0));
}

/// A client as [`client_config`] (no client certificate), restricted to
/// `versions` and offering `alpn`.
fn client_config_with(
    pki: &Pki,
    versions: &[&'static rustls::SupportedProtocolVersion],
    alpn: &[&str],
) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    for c in certs(&pki.path("ca.pem")) {
        roots.add(c).unwrap();
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(versions)
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.as_bytes().to_vec()).collect();
    Arc::new(config)
}

/// The address of the next "listening" line with this `tls` field.
fn listening(p: &mut Proc, tls: bool) -> SocketAddr {
    let line = p.wait_log(|v| v["message"] == "listening" && v["tls"] == tls);
    line["addr"].as_str().expect("addr").parse().unwrap()
}

/// The next "closed" line of the connection from `peer`.
fn closed_line(p: &mut Proc, peer: SocketAddr) -> serde_json::Value {
    p.wait_log(|v| v["message"] == "closed" && v["peer"] == peer.to_string())
}

#[test]
fn tls_listen_serves_tls_there_and_plain_on_listen_in_one_server() {
    let pki = Pki::new("both CA");
    let mut args = pki.server_args();
    args.extend(["--tls-listen".into(), "127.0.0.1:0".into()]);
    // ServeProcess adds `--listen 127.0.0.1:0`: its address is the plain one.
    let mut p = Proc::start(&args.iter().map(String::as_str).collect::<Vec<_>>());
    let plain = p.addr;
    let tls_addr = listening(&mut p, true);
    assert_ne!(plain, tls_addr);

    // Plain on --listen: the conversation, no TLS in the way.
    let mut s = TcpStream::connect(plain).unwrap();
    s.set_read_timeout(Some(LIMIT)).unwrap();
    s.write_all(b"Michael\nexit\n").unwrap();
    let mut got = Vec::new();
    s.read_to_end(&mut got).unwrap();
    assert_eq!(got, b"Welcome!\nHello, Michael!\n");
    assert_eq!(closed_line(&mut p, s.local_addr().unwrap())["reason"], "quit");

    // TLS on --tls-listen.
    let mut tls = connect(tls_addr, client_config(&pki, false)).expect("handshake");
    tls.write_all(b"Tracy\nexit\n").unwrap();
    let mut got = Vec::new();
    tls.read_to_end(&mut got).expect("clean TLS close");
    assert_eq!(got, b"Welcome!\nHello, Tracy!\n");
    assert_eq!(closed_line(&mut p, tls.sock.local_addr().unwrap())["reason"], "quit");

    // A plain client on the TLS port: a failed handshake, one WARN line.
    let mut s = TcpStream::connect(tls_addr).unwrap();
    s.set_read_timeout(Some(LIMIT)).unwrap();
    s.write_all(b"Michael\n").unwrap();
    let mut got = Vec::new();
    let _ = s.read_to_end(&mut got);
    assert!(!got.windows(8).any(|w| w == b"Welcome!"), "{got:?}");
    let failed = p.wait_log(|v| v["message"] == "closed");
    assert_eq!(failed["peer"], s.local_addr().unwrap().to_string(), "{failed}");
    assert_eq!(failed["level"], "WARN", "{failed}");
    assert!(failed["reason"].as_str().is_some_and(|r| r.starts_with("tls: ")), "{failed}");
    // A TLS client on the plain port: the greeting in clear is no TLS record.
    assert!(connect(plain, client_config(&pki, false)).is_err());
    // Only one line for the failed handshake: the next is the plain port's.
    let next = p.wait_log(|v| v["message"] == "closed");
    assert_eq!(next["local"], plain.to_string(), "{next}");
}

#[test]
fn tls_listen_misuse_is_a_clear_error() {
    let pki = Pki::new("misuse CA");
    let run = |args: &[&str]| {
        let out = crate::util::tcpkit()
            .arg("serve")
            .args(args)
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap();
        (out.status.code(), String::from_utf8_lossy(&out.stderr).into_owned())
    };
    // Without a certificate: a usage error naming the missing flag.
    let (code, err) = run(&["--tls-listen", "127.0.0.1:0"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("--tls-cert"), "{err}");
    // One address both plain and TLS: refused, named.
    let mut args = pki.server_args();
    args.extend(["--listen", "127.0.0.1:19443", "--tls-listen", "127.0.0.1:19443"].map(String::from));
    let (code, err) = run(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("127.0.0.1:19443 is both in --listen and in --tls-listen"), "{err}");
}

#[test]
fn tls_min_and_alpn_are_enforced_in_the_handshake() {
    let pki = Pki::new("alpn CA");
    let mut args = pki.server_args();
    args.extend(["--tls-min", "1.3", "--tls-alpn", "tcpkit", "--tls-alpn", "hello"].map(String::from));
    let mut p = Proc::start(&args.iter().map(String::as_str).collect::<Vec<_>>());
    let v13 = &[&rustls::version::TLS13];
    let v12 = &[&rustls::version::TLS12];
    // The server's first preference the client offers is chosen.
    let tls = connect(p.addr, client_config_with(&pki, v13, &["hello", "tcpkit"])).expect("handshake");
    assert_eq!(tls.conn.alpn_protocol(), Some(&b"tcpkit"[..]));
    assert_eq!(tls.conn.protocol_version(), Some(rustls::ProtocolVersion::TLSv1_3));
    // Offering no ALPN at all is served.
    let mut tls = connect(p.addr, client_config_with(&pki, v13, &[])).expect("no ALPN: served");
    tls.write_all(b"Ann\n").unwrap();
    assert_eq!(read_exact(&mut tls, 21), b"Welcome!\nHello, Ann!\n");
    // Only other protocols: refused, with the reason in the log.
    let err = connect(p.addr, client_config_with(&pki, v13, &["h2"])).expect_err("no common ALPN");
    assert!(err.to_string().contains("NoApplicationProtocol"), "{err}");
    let line = p.wait_log(|v| v["message"] == "closed" && v["level"] == "WARN");
    assert!(line["reason"].as_str().is_some_and(|r| r.contains("any known protocol")), "{line}");
    // TLS 1.2 only: below --tls-min.
    let err = connect(p.addr, client_config_with(&pki, v12, &["tcpkit"])).expect_err("TLS 1.2 refused");
    assert!(err.to_string().contains("ProtocolVersion"), "{err}");
    let line = p.wait_log(|v| v["message"] == "closed" && v["level"] == "WARN");
    assert!(line["reason"].as_str().is_some_and(|r| r.starts_with("tls: ")), "{line}");
}

#[test]
fn socket_activated_listeners_serve_tls_where_tls_listen_names_their_address() {
    let pki = Pki::new("activation CA");
    // Two inherited listeners, as systemd passes them (fds 3 and 4); the
    // second's address is given to --tls-listen, which python learns first.
    let script = "import os, socket, sys\n\
                  a = socket.socket(); a.bind(('127.0.0.1', 0)); a.listen(16)\n\
                  b = socket.socket(); b.bind(('127.0.0.1', 0)); b.listen(16)\n\
                  os.dup2(a.fileno(), 3); os.dup2(b.fileno(), 4)\n\
                  os.set_inheritable(3, True); os.set_inheritable(4, True)\n\
                  os.environ['LISTEN_FDS'] = '2'; os.environ['LISTEN_PID'] = str(os.getpid())\n\
                  tls = '127.0.0.1:%d' % b.getsockname()[1] if sys.argv[2] == 'right' else '127.0.0.1:1'\n\
                  os.execv(sys.argv[1], [sys.argv[1], 'serve', '--log-format', 'json', '--tls-listen', tls] + sys.argv[3:])\n";
    let start = |first: &str| {
        let mut args = vec![first.to_string()];
        args.extend(pki.server_args());
        std::process::Command::new("python3")
            .args(["-c", script])
            .arg(crate::util::tcpkit_bin())
            .args(&args)
            .env_remove("RUST_LOG")
            .stdin(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("python3")
    };
    let mut p = Proc::from_child(start("right"));
    let plain = p.addr;
    let tls_addr = listening(&mut p, true);
    let mut s = TcpStream::connect(plain).unwrap();
    s.set_read_timeout(Some(LIMIT)).unwrap();
    s.write_all(b"plain\nexit\n").unwrap();
    let mut got = Vec::new();
    s.read_to_end(&mut got).unwrap();
    assert_eq!(got, b"Welcome!\nHello, plain!\n");
    let mut tls = connect(tls_addr, client_config(&pki, false)).expect("handshake");
    tls.write_all(b"tls\n").unwrap();
    assert_eq!(read_exact(&mut tls, 21), b"Welcome!\nHello, tls!\n");

    // An address that names no inherited listener: refused at start.
    let out = start("wrong").wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("--tls-listen 127.0.0.1:1: no socket-activated listener"), "{err}");
}
