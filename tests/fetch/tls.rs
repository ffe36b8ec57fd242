//! HTTPS: certificate checks with exit 60 and why, handshake failures with 35.
use std::sync::Arc;

use super::servers::{HyperServer, Pki, RawServer, Step, full};
use super::{fetch, parts};

fn https_server(pki: &Pki, names: &[&str], expired: bool) -> HyperServer {
    let config = pki.server_config(names, expired);
    HyperServer::start_with(Arc::new(|_| full(200, &[], "secret body")), Some(config), "127.0.0.1:0")
}

fn ca_file(pki: &Pki) -> tempfile::NamedTempFile {
    let f = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(f.path(), &pki.ca_pem).unwrap();
    f
}

#[test]
fn https_with_a_trusted_certificate_works() {
    let pki = Pki::new();
    let server = https_server(&pki, &["127.0.0.1", "localhost"], false);
    let ca = ca_file(&pki);
    let url = format!("https://127.0.0.1:{}/x", server.addr.port());
    let out = fetch(&["-v", "--cacert", ca.path().to_str().unwrap(), &url]);
    let (code, stdout, stderr) = parts(&out);
    assert_eq!((code, stdout.as_str()), (0, "secret body"), "{stderr}");
    assert!(stderr.contains("ALPN http/1.1"), "{stderr}");
    // SNI and Host by name.
    let url = format!("https://localhost:{}/y", server.addr.port());
    let out = fetch(&["-4", "--cacert", ca.path().to_str().unwrap(), &url]);
    assert_eq!(out.stdout, b"secret body", "{}", parts(&out).2);
}

#[test]
fn unknown_issuer_exits_60() {
    let pki = Pki::new();
    let server = https_server(&pki, &["127.0.0.1"], false);
    let other_ca = ca_file(&Pki::new());
    let url = format!("https://127.0.0.1:{}/", server.addr.port());
    let (code, stdout, stderr) = parts(&fetch(&["--cacert", other_ca.path().to_str().unwrap(), &url]));
    assert_eq!((code, stdout.as_str()), (60, ""));
    assert!(stderr.contains("unknown issuer"), "{stderr}");
    // -k accepts it.
    let out = fetch(&["-k", &url]);
    assert_eq!(out.stdout, b"secret body", "{}", parts(&out).2);
}

#[test]
fn wrong_name_exits_60_with_name_mismatch() {
    let pki = Pki::new();
    let server = https_server(&pki, &["elsewhere.example"], false);
    let ca = ca_file(&pki);
    let url = format!("https://127.0.0.1:{}/", server.addr.port());
    let (code, _, stderr) = parts(&fetch(&["--cacert", ca.path().to_str().unwrap(), &url]));
    assert_eq!(code, 60);
    assert!(stderr.contains("name mismatch"), "{stderr}");
}

#[test]
fn expired_certificate_exits_60() {
    let pki = Pki::new();
    let server = https_server(&pki, &["127.0.0.1"], true);
    let ca = ca_file(&pki);
    let url = format!("https://127.0.0.1:{}/", server.addr.port());
    let (code, _, stderr) = parts(&fetch(&["--cacert", ca.path().to_str().unwrap(), &url]));
    assert_eq!(code, 60);
    assert!(stderr.contains("expired"), "{stderr}");
}

#[test]
fn a_server_that_does_not_speak_tls_exits_35() {
    // Answers in plain HTTP at once, without reading a request: not a ServerHello.
    let server = RawServer::start(vec![vec![
        Step::Immediately,
        Step::Send(b"HTTP/1.1 400 Bad Request\r\n\r\n".to_vec()),
    ]]);
    let url = format!("https://127.0.0.1:{}/", server.addr.port());
    let (code, _, stderr) = parts(&fetch(&["-k", "-m", "10", &url]));
    assert_eq!(code, 35, "{stderr}");
    assert!(stderr.contains("tls handshake"), "{stderr}");
}

#[test]
fn bad_cacert_file_exits_77() {
    let f = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(f.path(), "not a certificate").unwrap();
    let (code, _, stderr) = parts(&fetch(&["--cacert", f.path().to_str().unwrap(), "https://127.0.0.1:9/"]));
    assert_eq!(code, 77);
    assert!(stderr.contains("cacert"), "{stderr}");
}

#[test]
fn truncated_https_body_exits_18() {
    let pki = Pki::new();
    let config = pki.server_config(&["127.0.0.1"], false);
    let server = RawServer::start_tls(
        vec![vec![Step::Send(b"HTTP/1.1 200 OK\r\nContent-Length: 50\r\n\r\nshort".to_vec())]],
        Some(config),
    );
    let ca = ca_file(&pki);
    let url = format!("https://127.0.0.1:{}/", server.addr.port());
    let (code, stdout, stderr) = parts(&fetch(&["--cacert", ca.path().to_str().unwrap(), "-m", "10", &url]));
    assert_eq!((code, stdout.as_str()), (18, "short"), "{stderr}");
    assert!(stderr.contains("5 of 50 bytes received"), "{stderr}");
}

#[test]
fn a_handshake_that_never_ends_is_bounded_by_connect_timeout() {
    // The raw server waits for a request head, which a ClientHello never completes.
    let server = RawServer::start(vec![vec![]]);
    let url = format!("https://127.0.0.1:{}/", server.addr.port());
    let (code, _, stderr) = parts(&fetch(&["-k", "--connect-timeout", "0.3", &url]));
    assert_eq!(code, 28, "{stderr}");
    assert!(stderr.contains("timed out after 300 ms"), "{stderr}");
}

#[test]
fn a_self_signed_ca_certificate_as_server_certificate_is_explained() {
    // What `openssl req -x509` makes by default: self-signed and CA:TRUE.
    let mut params = rcgen::CertificateParams::new(vec!["127.0.0.1".to_string()]).unwrap();
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = params.self_signed(&key).unwrap();
    let config =
        tcpkit::net::tls::server_config(cert.pem().as_bytes(), key.serialize_pem().as_bytes()).unwrap();
    let server = HyperServer::start_with(Arc::new(|_| full(200, &[], "x")), Some(config), "127.0.0.1:0");
    let ca = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(ca.path(), cert.pem()).unwrap();
    let url = format!("https://127.0.0.1:{}/", server.addr.port());
    let (code, _, stderr) = parts(&fetch(&["--cacert", ca.path().to_str().unwrap(), &url]));
    assert_eq!(code, 60);
    assert!(stderr.contains("is a CA certificate") && stderr.contains("-k"), "{stderr}");
}
