//! rustls client and server configurations.
//!
//! The client side is `fetch`'s: roots from the system store (webpki-roots when
//! the system has none) or from `--cacert`, ALPN `http/1.1`, and `-k`'s verifier
//! that skips the certificate checks but still checks handshake signatures.
//! Roots are loaded only when a configuration is built, so plain HTTP never pays
//! for reading the system store. The server side exists for tests and benchmarks.
//!
//! Not for: client certificates, session persistence across runs, HTTP/2.
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
}

/// What the client trusts.
#[derive(Debug, Clone, Default)]
pub struct ClientOptions {
    /// Trust only the certificates in this PEM file instead of the system store.
    pub cacert: Option<PathBuf>,
    /// Accept any certificate (`-k`); handshake signatures are still verified.
    pub insecure: bool,
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
}
