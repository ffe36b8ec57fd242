//! rustls client and server configurations, the client handshake, and what a
//! handshake established in words people read.
//!
//! Client: roots from the system store (webpki-roots when the system has none)
//! or from `--cacert`, and `-k`'s verifier that skips the certificate checks but
//! still checks handshake signatures. [`client_config`] is `fetch`'s (ALPN
//! `http/1.1`); [`client_config_with`] takes every option of `connect --tls`
//! (ALPN list, client certificate, minimum version, SNI on or off), and
//! [`handshake`] runs a bounded handshake whose failure is a [`HandshakeError`]
//! naming the reason (unknown issuer, expired, wrong name...).
//! Roots are loaded only when a configuration is built, so plain connections
//! never pay for reading the system store.
//!
//! Server: [`server_config`] (a fixed certificate, for tests and benchmarks) and
//! [`ServerSettings::build`]: certificate and key files, optional client CA for
//! mTLS, and a [`ReloadableCert`] resolver whose [`reload`](ReloadableCert::reload)
//! re-reads the files (on SIGHUP, say) without touching established connections.
//!
//! Not for: session persistence across runs, HTTP/2, OCSP or revocation.
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, ServerConfig, SignatureScheme,
};
use thiserror::Error;

/// Why a TLS configuration could not be built.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum TlsError {
    /// The CA file could not be read or held no usable certificate.
    #[error("cacert: {}: {reason}", path.display())]
    CaFile {
        /// The file given.
        path: PathBuf,
        /// What was wrong with it.
        reason: String,
    },
    /// rustls refused the configuration (a bad key or certificate, for servers).
    #[error("tls configuration: {0}")]
    Config(#[from] rustls::Error),
    /// The PEM text held no certificate or no key.
    #[error("pem: {0}")]
    Pem(String),
    /// A certificate or key file could not be read or used.
    #[error("{what}: {}: {reason}", path.display())]
    File {
        /// Which file: "cert", "key", "client-ca".
        what: &'static str,
        /// The file given.
        path: PathBuf,
        /// What was wrong with it.
        reason: String,
    },
}

/// What the client trusts.
#[derive(Debug, Clone, Default)]
pub struct ClientOptions {
    /// Trust only the certificates in this PEM file instead of the system store.
    pub cacert: Option<PathBuf>,
    /// Accept any certificate (`-k`); handshake signatures are still verified.
    pub insecure: bool,
}

/// A TLS protocol version, for the lowest one accepted (`--tls-min`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub enum TlsVersion {
    /// TLS 1.2 (the lowest rustls speaks).
    #[default]
    Tls12,
    /// TLS 1.3.
    Tls13,
}

impl std::str::FromStr for TlsVersion {
    type Err = String;
    fn from_str(s: &str) -> Result<TlsVersion, String> {
        match s.to_ascii_lowercase().trim_start_matches("tls").trim_start_matches('v') {
            "1.2" => Ok(TlsVersion::Tls12),
            "1.3" => Ok(TlsVersion::Tls13),
            "1.0" | "1.1" | "1" => Err(format!("{s}: not supported (the lowest is 1.2)")),
            _ => Err(format!("not a TLS version: {s:?} (1.2 or 1.3)")),
        }
    }
}

static TLS13_ONLY: &[&rustls::SupportedProtocolVersion] = &[&rustls::version::TLS13];

fn versions(min: TlsVersion) -> &'static [&'static rustls::SupportedProtocolVersion] {
    match min {
        TlsVersion::Tls12 => rustls::ALL_VERSIONS,
        TlsVersion::Tls13 => TLS13_ONLY,
    }
}

/// Everything a TLS client can be asked for (`connect --tls`).
#[derive(Debug, Clone, Default)]
pub struct ClientSettings {
    /// Trust only the certificates in this PEM file instead of the system store.
    pub cacert: Option<PathBuf>,
    /// Accept any certificate (`-k`); handshake signatures are still verified.
    pub insecure: bool,
    /// ALPN protocols offered, in order of preference (none: no ALPN extension).
    pub alpn: Vec<String>,
    /// A client certificate chain (PEM) and its key (PEM), for servers that ask.
    pub client_cert: Option<(PathBuf, PathBuf)>,
    /// The lowest protocol version accepted.
    pub min_version: TlsVersion,
    /// Send no SNI extension (the certificate is still checked against the name).
    pub no_sni: bool,
    /// Resume sessions from earlier connections made with this configuration
    /// (TLS 1.3 tickets, 1.2 session IDs; an in-memory cache of 256). Off (the
    /// default), every connection makes a full handshake: what a load test
    /// of handshakes per second must measure.
    pub resume: bool,
}

/// The client configuration for `settings`.
pub fn client_config_with(settings: &ClientSettings) -> Result<Arc<ClientConfig>, TlsError> {
    let provider = provider();
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(versions(settings.min_version))?;
    let builder = if settings.insecure {
        let verifier = Arc::new(NoCertificateCheck(provider.signature_verification_algorithms));
        builder.dangerous().with_custom_certificate_verifier(verifier)
    } else {
        builder.with_root_certificates(roots(settings.cacert.as_deref())?)
    };
    let mut config = match &settings.client_cert {
        None => builder.with_no_client_auth(),
        Some((cert, key)) => builder.with_client_auth_cert(read_chain("cert", cert)?, read_key(key)?)?,
    };
    config.alpn_protocols = settings.alpn.iter().map(|p| p.as_bytes().to_vec()).collect();
    config.enable_sni = !settings.no_sni;
    if !settings.resume {
        config.resumption = rustls::client::Resumption::disabled();
    }
    Ok(Arc::new(config))
}

fn read_file(what: &'static str, path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|e| TlsError::File { what, path: path.to_path_buf(), reason: e.to_string() })
}

/// Every certificate of a PEM file, in order.
fn read_chain(what: &'static str, path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let bad = |reason: String| TlsError::File { what, path: path.to_path_buf(), reason };
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&read_file(what, path)?)
        .collect::<Result<_, _>>()
        .map_err(|e| bad(format!("not PEM: {e}")))?;
    if chain.is_empty() {
        return Err(bad("no certificate in the file".into()));
    }
    Ok(chain)
}

/// The first private key (PKCS#8, PKCS#1 or SEC1) of a PEM file.
fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    PrivateKeyDer::from_pem_slice(&read_file("key", path)?).map_err(|e| TlsError::File {
        what: "key",
        path: path.to_path_buf(),
        reason: format!("no usable private key: {e}"),
    })
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The client configuration for `opts`, with ALPN `http/1.1`.
pub fn client_config(opts: &ClientOptions) -> Result<Arc<ClientConfig>, TlsError> {
    let provider = provider();
    let builder =
        ClientConfig::builder_with_provider(provider.clone()).with_safe_default_protocol_versions()?;
    let mut config = if opts.insecure {
        let verifier = Arc::new(NoCertificateCheck(provider.signature_verification_algorithms));
        builder.dangerous().with_custom_certificate_verifier(verifier).with_no_client_auth()
    } else {
        builder.with_root_certificates(roots(opts.cacert.as_deref())?).with_no_client_auth()
    };
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// Roots from `cacert`, or the system store, or webpki-roots when the system
/// store yields nothing (a minimal container without ca-certificates).
fn roots(cacert: Option<&Path>) -> Result<RootCertStore, TlsError> {
    let mut store = RootCertStore::empty();
    if let Some(path) = cacert {
        let bad = |reason: String| TlsError::CaFile { path: path.to_path_buf(), reason };
        let text = std::fs::read(path).map_err(|e| bad(e.to_string()))?;
        for cert in CertificateDer::pem_slice_iter(&text) {
            let cert = cert.map_err(|e| bad(format!("not PEM: {e}")))?;
            store.add(cert).map_err(|e| bad(format!("unusable certificate: {e}")))?;
        }
        if store.is_empty() {
            return Err(bad("no certificate in the file".into()));
        }
        return Ok(store);
    }
    // Unparsable system certificates are skipped, as every browser does.
    let _ = store.add_parsable_certificates(rustls_native_certs::load_native_certs().certs);
    if store.is_empty() {
        store.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    }
    Ok(store)
}

/// A short reason for a rejected certificate, for the exit-60 message.
pub fn certificate_reason(err: &CertificateError) -> String {
    match err {
        CertificateError::UnknownIssuer => "unknown issuer".into(),
        // The context variants say which time or names did not match.
        CertificateError::ExpiredContext { .. } | CertificateError::NotValidYetContext { .. } => {
            err.to_string()
        }
        CertificateError::Expired => "certificate expired".into(),
        CertificateError::NotValidYet => "certificate not yet valid".into(),
        CertificateError::NotValidForNameContext { .. } => format!("name mismatch: {err}"),
        CertificateError::NotValidForName => {
            "name mismatch (certificate not valid for this host name)".into()
        }
        CertificateError::Revoked => "certificate revoked".into(),
        CertificateError::BadSignature => "bad signature".into(),
        CertificateError::Other(other) => match other.to_string().as_str() {
            // webpki refuses what OpenSSL accepts: `openssl req -x509` marks its
            // self-signed certificate CA:TRUE by default.
            "CaUsedAsEndEntity" => "the server's certificate is a CA certificate (a self-signed one with \
                                    CA:TRUE?): sign a separate server certificate with it, or use -k"
                .into(),
            text => text.to_string(),
        },
        other => other.to_string(),
    }
}

/// `-k`: every certificate is accepted, but the handshake signatures must
/// still be valid, so the peer at least holds the key it presented.
#[derive(Debug)]
struct NoCertificateCheck(WebPkiSupportedAlgorithms);

impl ServerCertVerifier for NoCertificateCheck {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_schemes()
    }
}

/// A server configuration from a PEM certificate chain and a PEM private key,
/// offering ALPN `http/1.1` (for tests and benchmarks).
pub fn server_config(cert_chain_pem: &[u8], key_pem: &[u8]) -> Result<Arc<ServerConfig>, TlsError> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(cert_chain_pem)
        .collect::<Result<_, _>>()
        .map_err(|e| TlsError::Pem(format!("certificate: {e}")))?;
    if chain.is_empty() {
        return Err(TlsError::Pem("no certificate".into()));
    }
    let key = PrivateKeyDer::from_pem_slice(key_pem).map_err(|e| TlsError::Pem(format!("key: {e}")))?;
    let mut config = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(chain, key)?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// What a handshake established, for `-v` and trace `Info` lines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HandshakeSummary {
    /// "TLSv1.3", "TLSv1.2".
    pub version: String,
    /// The cipher suite, IANA name (`TLS13_AES_256_GCM_SHA384`).
    pub cipher: String,
    /// The protocol ALPN chose, if any.
    pub alpn: Option<String>,
    /// The peer's end-entity certificate, if it sent one.
    pub peer: Option<CertSummary>,
}

impl HandshakeSummary {
    /// The summary of an established client or server connection.
    pub fn of<D>(conn: &rustls::ConnectionCommon<D>) -> HandshakeSummary {
        let version = match conn.protocol_version() {
            Some(rustls::ProtocolVersion::TLSv1_3) => "TLSv1.3".to_string(),
            Some(rustls::ProtocolVersion::TLSv1_2) => "TLSv1.2".to_string(),
            Some(other) => format!("{other:?}"),
            None => "none".to_string(),
        };
        let cipher =
            conn.negotiated_cipher_suite().and_then(|c| c.suite().as_str()).unwrap_or("unknown").to_string();
        let alpn = conn.alpn_protocol().map(|p| String::from_utf8_lossy(p).into_owned());
        let peer = conn.peer_certificates().and_then(|c| c.first()).map(|c| CertSummary::from_der(c));
        HandshakeSummary { version, cipher, alpn, peer }
    }

    /// One line per fact, as `-v` prints them.
    pub fn lines(&self) -> Vec<String> {
        let mut lines = vec![format!(
            "TLS: {} {}, ALPN {}",
            self.version,
            self.cipher,
            self.alpn.as_deref().unwrap_or("none")
        )];
        if let Some(peer) = &self.peer {
            lines.push(format!("peer certificate: subject: {}", peer.subject));
            lines.push(format!("peer certificate: issuer: {}", peer.issuer));
            lines.push(format!("peer certificate: valid {} to {}", peer.not_before, peer.not_after));
        }
        lines
    }
}

/// A certificate in words: subject, issuer and validity (RFC 4514 names, UTC times).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertSummary {
    /// The subject name (`CN=localhost`).
    pub subject: String,
    /// The issuer name.
    pub issuer: String,
    /// Start of validity.
    pub not_before: String,
    /// End of validity (the expiry).
    pub not_after: String,
}

impl CertSummary {
    /// Parse a DER certificate; what cannot be parsed reads "unparsable".
    pub fn from_der(der: &[u8]) -> CertSummary {
        use x509_parser::prelude::{FromDer, X509Certificate};
        match X509Certificate::from_der(der) {
            Ok((_, cert)) => CertSummary {
                subject: cert.subject().to_string(),
                issuer: cert.issuer().to_string(),
                not_before: cert.validity().not_before.to_string(),
                not_after: cert.validity().not_after.to_string(),
            },
            Err(e) => {
                let why = format!("unparsable ({e})");
                CertSummary {
                    subject: why.clone(),
                    issuer: why.clone(),
                    not_before: why.clone(),
                    not_after: why,
                }
            }
        }
    }
}

/// Why a client handshake failed.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum HandshakeError {
    /// The server's certificate was not accepted (the reason from
    /// [`certificate_reason`]: unknown issuer, expired, name mismatch...).
    #[error("certificate of {name} rejected: {reason}")]
    Certificate {
        /// The name it was checked against.
        name: String,
        /// The kind of rejection.
        kind: CertificateError,
        /// Words for it.
        reason: String,
    },
    /// The handshake failed otherwise (an alert, no common version or cipher,
    /// not TLS at all).
    #[error("TLS handshake with {name} failed: {reason}")]
    Failed {
        /// The server name.
        name: String,
        /// What happened.
        reason: String,
    },
    /// The deadline passed first.
    #[error("TLS handshake with {name} timed out after {} ms", after.as_millis())]
    TimedOut {
        /// The server name.
        name: String,
        /// The deadline.
        after: std::time::Duration,
    },
    /// The name cannot be a TLS server name.
    #[error("invalid TLS server name {name:?}: {reason}")]
    BadName {
        /// The name given.
        name: String,
        /// Why.
        reason: String,
    },
}

/// The TLS server name for `host` (an IP literal, bracketed or not, is an IP name).
pub fn server_name(host: &str) -> Result<ServerName<'static>, HandshakeError> {
    let bare = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(host);
    ServerName::try_from(bare.to_string())
        .map_err(|e| HandshakeError::BadName { name: host.to_string(), reason: e.to_string() })
}

/// Run a client handshake over `stream`, bounded by `timeout` when given.
pub async fn handshake<S>(
    stream: S,
    config: Arc<ClientConfig>,
    name: ServerName<'static>,
    timeout: Option<std::time::Duration>,
) -> Result<tokio_rustls::client::TlsStream<S>, HandshakeError>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let shown = name.to_str().into_owned();
    let connecting = tokio_rustls::TlsConnector::from(config).connect(name, stream);
    let done = match timeout {
        None => connecting.await,
        Some(after) => match tokio::time::timeout(after, connecting).await {
            Ok(done) => done,
            Err(_) => return Err(HandshakeError::TimedOut { name: shown, after }),
        },
    };
    done.map_err(|e| handshake_error(&shown, &e))
}

/// The typed error for an I/O error out of a rustls handshake.
pub fn handshake_error(name: &str, e: &std::io::Error) -> HandshakeError {
    let name = name.to_string();
    match e.get_ref().and_then(|inner| inner.downcast_ref::<rustls::Error>()) {
        Some(rustls::Error::InvalidCertificate(kind)) => {
            HandshakeError::Certificate { name, kind: kind.clone(), reason: certificate_reason(kind) }
        }
        Some(rustls::Error::AlertReceived(alert)) => {
            HandshakeError::Failed { name, reason: format!("the server sent alert {alert:?}") }
        }
        Some(other) => HandshakeError::Failed { name, reason: other.to_string() },
        None if e.kind() == std::io::ErrorKind::UnexpectedEof => HandshakeError::Failed {
            name,
            reason: "the server closed the connection during the handshake".into(),
        },
        None => HandshakeError::Failed { name, reason: e.to_string() },
    }
}

/// A server's TLS settings: certificate and key files, and for mTLS the CA
/// that client certificates must chain to.
#[derive(Debug, Clone, Default)]
pub struct ServerSettings {
    /// PEM certificate chain, end-entity first.
    pub cert: PathBuf,
    /// PEM private key.
    pub key: PathBuf,
    /// Require a client certificate signed by a CA in this PEM file (mTLS).
    pub client_ca: Option<PathBuf>,
    /// ALPN protocols accepted, in order of preference.
    pub alpn: Vec<String>,
    /// The lowest protocol version accepted.
    pub min_version: TlsVersion,
}

impl ServerSettings {
    /// The server configuration and its certificate resolver; call
    /// [`ReloadableCert::reload`] to re-read the files: handshakes from then on
    /// use the new certificate, established connections are not touched.
    pub fn build(&self) -> Result<(Arc<ServerConfig>, Arc<ReloadableCert>), TlsError> {
        let provider = provider();
        let resolver = Arc::new(ReloadableCert::load(self.cert.clone(), self.key.clone(), provider.clone())?);
        let builder = ServerConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(versions(self.min_version))?;
        let builder = match &self.client_ca {
            None => builder.with_no_client_auth(),
            Some(path) => {
                let mut roots = RootCertStore::empty();
                for cert in read_chain("client-ca", path)? {
                    roots.add(cert).map_err(|e| TlsError::File {
                        what: "client-ca",
                        path: path.clone(),
                        reason: format!("unusable certificate: {e}"),
                    })?;
                }
                let verifier =
                    rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                        .build()
                        .map_err(|e| TlsError::File {
                            what: "client-ca",
                            path: path.clone(),
                            reason: e.to_string(),
                        })?;
                builder.with_client_cert_verifier(verifier)
            }
        };
        let mut config = builder.with_cert_resolver(resolver.clone());
        config.alpn_protocols = self.alpn.iter().map(|p| p.as_bytes().to_vec()).collect();
        Ok((Arc::new(config), resolver))
    }
}

/// A server certificate that can be replaced while the server runs. Each
/// handshake takes the current one under a read lock held for a pointer copy.
#[derive(Debug)]
pub struct ReloadableCert {
    cert: PathBuf,
    key: PathBuf,
    provider: Arc<CryptoProvider>,
    current: std::sync::RwLock<Arc<rustls::sign::CertifiedKey>>,
}

impl ReloadableCert {
    fn load(cert: PathBuf, key: PathBuf, provider: Arc<CryptoProvider>) -> Result<ReloadableCert, TlsError> {
        let current = std::sync::RwLock::new(Self::read(&cert, &key, &provider)?);
        Ok(ReloadableCert { cert, key, provider, current })
    }

    fn read(
        cert: &Path,
        key: &Path,
        provider: &CryptoProvider,
    ) -> Result<Arc<rustls::sign::CertifiedKey>, TlsError> {
        let chain = read_chain("cert", cert)?;
        let signing = provider.key_provider.load_private_key(read_key(key)?).map_err(|e| TlsError::File {
            what: "key",
            path: key.to_path_buf(),
            reason: e.to_string(),
        })?;
        let certified = rustls::sign::CertifiedKey::new(chain, signing);
        // A key that does not match the certificate is refused now, not at the first handshake.
        certified.keys_match().map_err(|e| TlsError::File {
            what: "key",
            path: key.to_path_buf(),
            reason: format!("does not match the certificate: {e}"),
        })?;
        Ok(Arc::new(certified))
    }

    /// Re-read the certificate and key files. On error the current pair stays.
    pub fn reload(&self) -> Result<(), TlsError> {
        let fresh = Self::read(&self.cert, &self.key, &self.provider)?;
        // A poisoned lock only means a panic elsewhere while swapping a pointer: the value is whole.
        *self.current.write().unwrap_or_else(std::sync::PoisonError::into_inner) = fresh;
        Ok(())
    }

    /// The certificate handshakes use now.
    pub fn current(&self) -> Arc<rustls::sign::CertifiedKey> {
        self.current.read().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }
}

impl rustls::server::ResolvesServerCert for ReloadableCert {
    fn resolve(&self, _hello: rustls::server::ClientHello<'_>) -> Option<Arc<rustls::sign::CertifiedKey>> {
        Some(self.current())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cacert_errors_name_the_file_and_reason() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope.pem");
        let opts = ClientOptions { cacert: Some(missing), insecure: false };
        let err = client_config(&opts).unwrap_err().to_string();
        assert!(err.starts_with("cacert: ") && err.contains("nope.pem"), "{err}");
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "hello\n").unwrap();
        let err = client_config(&ClientOptions { cacert: Some(empty), insecure: false }).unwrap_err();
        assert!(err.to_string().contains("no certificate"), "{err}");
    }

    #[test]
    fn server_and_client_configs_build_from_rcgen_pem() {
        let cert = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
        let server = server_config(cert.cert.pem().as_bytes(), cert.key_pair.serialize_pem().as_bytes());
        assert_eq!(server.unwrap().alpn_protocols, vec![b"http/1.1".to_vec()]);
        let dir = tempfile::tempdir().unwrap();
        let ca = dir.path().join("ca.pem");
        std::fs::write(&ca, cert.cert.pem()).unwrap();
        let client = client_config(&ClientOptions { cacert: Some(ca), insecure: false }).unwrap();
        assert_eq!(client.alpn_protocols, vec![b"http/1.1".to_vec()]);
        assert!(server_config(b"", b"").is_err());
    }

    #[test]
    fn reasons_are_short_and_lowercase() {
        assert_eq!(certificate_reason(&CertificateError::UnknownIssuer), "unknown issuer");
        assert_eq!(certificate_reason(&CertificateError::Expired), "certificate expired");
        assert!(certificate_reason(&CertificateError::NotValidForName).starts_with("name mismatch"));
    }

    /// A CA and a leaf for `names` signed by it, valid from `from` to `to` (years).
    struct Pki {
        ca_pem: String,
        cert_pem: String,
        key_pem: String,
    }

    fn pki(names: &[&str], from: i32, to: i32) -> Pki {
        use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, date_time_ymd};
        let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        // Named after the leaf: webpki matches issuers by name, so two test CAs
        // with one name would turn "unknown issuer" into "bad signature".
        ca.distinguished_name.push(DnType::CommonName, format!("tcpkit test CA for {}", names[0]));
        let ca_key = KeyPair::generate().unwrap();
        let ca_cert = ca.self_signed(&ca_key).unwrap();
        let mut leaf =
            CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>()).unwrap();
        leaf.distinguished_name.push(DnType::CommonName, names[0]);
        leaf.not_before = date_time_ymd(from, 1, 1);
        leaf.not_after = date_time_ymd(to, 1, 1);
        let key = KeyPair::generate().unwrap();
        let cert = leaf.signed_by(&key, &ca_cert, &ca_key).unwrap();
        Pki { ca_pem: ca_cert.pem(), cert_pem: cert.pem(), key_pem: key.serialize_pem() }
    }

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    /// Handshake a client with `client` settings against a server of `server`
    /// over an in-memory pipe; returns the client's outcome and the server's.
    async fn pair(
        client: &ClientSettings,
        host: &str,
        server: Arc<ServerConfig>,
    ) -> (Result<HandshakeSummary, HandshakeError>, Result<HandshakeSummary, std::io::Error>) {
        let (near, far) = tokio::io::duplex(64 * 1024);
        let config = client_config_with(client).unwrap();
        let limit = Some(std::time::Duration::from_secs(5));
        let client = handshake(near, config, server_name(host).unwrap(), limit);
        let server = tokio_rustls::TlsAcceptor::from(server).accept(far);
        // Both streams live until both sides are done: a side dropped early
        // would turn the other's last write into a broken pipe.
        let (c, s) = tokio::join!(client, server);
        (c.map(|s| HandshakeSummary::of(s.get_ref().1)), s.map(|s| HandshakeSummary::of(s.get_ref().1)))
    }

    #[tokio::test]
    async fn handshake_reports_version_cipher_alpn_and_the_peer_certificate() {
        let dir = tempfile::tempdir().unwrap();
        let p = pki(&["localhost"], 2020, 2100);
        let settings = ServerSettings {
            cert: write(dir.path(), "c.pem", &p.cert_pem),
            key: write(dir.path(), "k.pem", &p.key_pem),
            alpn: vec!["h2".into(), "hello/1".into()],
            ..ServerSettings::default()
        };
        let (server, _) = settings.build().unwrap();
        let client = ClientSettings {
            cacert: Some(write(dir.path(), "ca.pem", &p.ca_pem)),
            alpn: vec!["hello/1".into()],
            ..ClientSettings::default()
        };
        let (c, s) = pair(&client, "localhost", server).await;
        let c = c.unwrap();
        assert_eq!(c.version, "TLSv1.3");
        assert!(c.cipher.starts_with("TLS13_"), "{}", c.cipher);
        assert_eq!(c.alpn.as_deref(), Some("hello/1"));
        let peer = c.peer.clone().unwrap();
        assert_eq!(peer.subject, "CN=localhost");
        assert_eq!(peer.issuer, "CN=tcpkit test CA for localhost");
        assert!(peer.not_after.contains("2100"), "{}", peer.not_after);
        assert_eq!(s.unwrap().alpn.as_deref(), Some("hello/1"));
        let lines = c.lines();
        assert!(
            lines[0].starts_with("TLS: TLSv1.3 TLS13_") && lines[0].ends_with("ALPN hello/1"),
            "{lines:?}"
        );
    }

    /// Two connections made with one client configuration: whether the second
    /// handshake was a resumption, as the server saw it.
    async fn second_handshake_resumed(client: &ClientSettings, server: Arc<ServerConfig>) -> bool {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let config = client_config_with(client).unwrap();
        let mut kinds = Vec::new();
        for _ in 0..2 {
            let (near, far) = tokio::io::duplex(64 * 1024);
            let client = handshake(near, config.clone(), server_name("localhost").unwrap(), None);
            let accept = tokio_rustls::TlsAcceptor::from(server.clone()).accept(far);
            let (c, s) = tokio::join!(client, accept);
            let (mut c, mut s) = (c.unwrap(), s.unwrap());
            kinds.push(s.get_ref().1.handshake_kind());
            // The client takes the server's session tickets with its first read.
            s.write_all(b"hi").await.unwrap();
            s.flush().await.unwrap();
            let mut got = [0u8; 2];
            c.read_exact(&mut got).await.unwrap();
        }
        assert_eq!(kinds[0], Some(rustls::HandshakeKind::Full));
        kinds[1] == Some(rustls::HandshakeKind::Resumed)
    }

    #[tokio::test]
    async fn sessions_are_resumed_only_when_asked() {
        let dir = tempfile::tempdir().unwrap();
        let p = pki(&["localhost"], 2020, 2100);
        let settings = ServerSettings {
            cert: write(dir.path(), "c.pem", &p.cert_pem),
            key: write(dir.path(), "k.pem", &p.key_pem),
            ..ServerSettings::default()
        };
        let (server, _) = settings.build().unwrap();
        let cacert = Some(write(dir.path(), "ca.pem", &p.ca_pem));
        let full = ClientSettings { cacert: cacert.clone(), ..ClientSettings::default() };
        assert!(!second_handshake_resumed(&full, server.clone()).await, "resumed without --tls-resume");
        let resume = ClientSettings { cacert, resume: true, ..ClientSettings::default() };
        assert!(second_handshake_resumed(&resume, server).await, "not resumed with resume: true");
    }

    #[tokio::test]
    async fn unknown_issuer_wrong_name_and_expired_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let good = pki(&["localhost"], 2020, 2100);
        let expired = pki(&["localhost"], 2000, 2001);
        let cases: [(&Pki, &str, bool, &str); 3] = [
            (&good, "localhost", false, "unknown issuer"),
            (&good, "other.example", true, "name mismatch"),
            (&expired, "localhost", true, "expired"),
        ];
        for (p, host, trust, want) in cases {
            let server = server_config(p.cert_pem.as_bytes(), p.key_pem.as_bytes()).unwrap();
            let ca = if trust { p.ca_pem.clone() } else { unrelated_ca() };
            let client = ClientSettings {
                cacert: Some(write(dir.path(), "ca.pem", &ca)),
                ..ClientSettings::default()
            };
            let (c, _) = pair(&client, host, server).await;
            let err = c.unwrap_err();
            assert!(matches!(err, HandshakeError::Certificate { .. }), "{err}");
            assert!(err.to_string().contains(want), "{host}: {err}");
            assert!(err.to_string().starts_with(&format!("certificate of {host} rejected: ")), "{err}");
        }
    }

    /// A CA unrelated to every server certificate of these tests.
    fn unrelated_ca() -> String {
        pki(&["unrelated"], 2020, 2100).ca_pem
    }

    #[tokio::test]
    async fn tls13_minimum_refuses_a_tls12_only_server() {
        let p = pki(&["localhost"], 2020, 2100);
        let chain: Vec<_> =
            CertificateDer::pem_slice_iter(p.cert_pem.as_bytes()).map(Result::unwrap).collect();
        let key = PrivateKeyDer::from_pem_slice(p.key_pem.as_bytes()).unwrap();
        let server = ServerConfig::builder_with_provider(provider())
            .with_protocol_versions(&[&rustls::version::TLS12])
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .unwrap();
        let client =
            ClientSettings { insecure: true, min_version: TlsVersion::Tls13, ..ClientSettings::default() };
        let (c, _) = pair(&client, "localhost", Arc::new(server)).await;
        assert!(matches!(c, Err(HandshakeError::Failed { .. })), "{c:?}");
        let ok = ClientSettings { insecure: true, ..ClientSettings::default() };
        let p2 = pki(&["localhost"], 2020, 2100);
        let server = server_config(p2.cert_pem.as_bytes(), p2.key_pem.as_bytes()).unwrap();
        assert!(pair(&ok, "localhost", server).await.0.is_ok());
        assert_eq!("1.3".parse::<TlsVersion>(), Ok(TlsVersion::Tls13));
        assert_eq!("TLSv1.2".parse::<TlsVersion>(), Ok(TlsVersion::Tls12));
        assert!("1.1".parse::<TlsVersion>().unwrap_err().contains("not supported"));
    }

    #[tokio::test]
    async fn mtls_requires_a_client_certificate_from_the_client_ca() {
        let dir = tempfile::tempdir().unwrap();
        let server_pki = pki(&["localhost"], 2020, 2100);
        let client_pki = pki(&["client"], 2020, 2100);
        let settings = ServerSettings {
            cert: write(dir.path(), "c.pem", &server_pki.cert_pem),
            key: write(dir.path(), "k.pem", &server_pki.key_pem),
            client_ca: Some(write(dir.path(), "client-ca.pem", &client_pki.ca_pem)),
            ..ServerSettings::default()
        };
        let (server, _) = settings.build().unwrap();
        let anonymous = ClientSettings { insecure: true, ..ClientSettings::default() };
        let (_, s) = pair(&anonymous, "localhost", server.clone()).await;
        assert!(s.is_err(), "a client without a certificate must be refused");
        let with_cert = ClientSettings {
            insecure: true,
            client_cert: Some((
                write(dir.path(), "cc.pem", &client_pki.cert_pem),
                write(dir.path(), "ck.pem", &client_pki.key_pem),
            )),
            ..ClientSettings::default()
        };
        let (c, s) = pair(&with_cert, "localhost", server).await;
        assert!(c.is_ok(), "{c:?}");
        assert_eq!(s.unwrap().peer.unwrap().subject, "CN=client");
    }

    #[tokio::test]
    async fn reload_serves_the_new_certificate_to_new_handshakes() {
        let dir = tempfile::tempdir().unwrap();
        let first = pki(&["first.test"], 2020, 2100);
        let second = pki(&["second.test"], 2020, 2100);
        let settings = ServerSettings {
            cert: write(dir.path(), "c.pem", &first.cert_pem),
            key: write(dir.path(), "k.pem", &first.key_pem),
            ..ServerSettings::default()
        };
        let (server, resolver) = settings.build().unwrap();
        let client = ClientSettings { insecure: true, ..ClientSettings::default() };
        let subject = |r: (Result<HandshakeSummary, HandshakeError>, _)| r.0.unwrap().peer.unwrap().subject;
        assert_eq!(subject(pair(&client, "x", server.clone()).await), "CN=first.test");
        // A half-written pair (new cert, old key) is refused and the old pair stays.
        write(dir.path(), "c.pem", &second.cert_pem);
        let err = resolver.reload().unwrap_err();
        assert!(err.to_string().contains("does not match"), "{err}");
        assert_eq!(subject(pair(&client, "x", server.clone()).await), "CN=first.test");
        write(dir.path(), "k.pem", &second.key_pem);
        resolver.reload().unwrap();
        assert_eq!(subject(pair(&client, "x", server).await), "CN=second.test");
    }

    #[test]
    fn missing_cert_and_key_files_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let settings = ServerSettings { cert: dir.path().join("nope.pem"), ..ServerSettings::default() };
        let err = settings.build().unwrap_err().to_string();
        assert!(err.starts_with("cert: ") && err.contains("nope.pem"), "{err}");
        let client = ClientSettings {
            client_cert: Some((dir.path().join("a.pem"), dir.path().join("b.pem"))),
            ..ClientSettings::default()
        };
        assert!(client_config_with(&client).unwrap_err().to_string().starts_with("cert: "));
    }
}
