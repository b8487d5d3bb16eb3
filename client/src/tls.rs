//! TLS for the TCP transports (`https://`, `wss://`): rustls on the `ring`
//! provider that wtransport already brings, the system's roots by default,
//! an extra CA file, or a pinned certificate.

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, RootCertStore, SignatureScheme};

use crate::ClientError;

/// How the client checks a gateway's TLS certificate.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsOptions {
    /// PEM file of extra trusted CAs, on top of the system's roots.
    pub ca_file: Option<PathBuf>,
    /// SHA-256 of the gateway's certificate (DER): when set, that exact
    /// certificate is accepted and no CA is consulted, as WebTransport's
    /// certificate hashes work.
    pub pin_sha256: Option<[u8; 32]>,
}

/// Parses a SHA-256 written as 64 hex characters (`:` separators allowed,
/// as `openssl x509 -fingerprint` prints them).
pub fn parse_sha256_hex(hex: &str) -> Option<[u8; 32]> {
    let hex: String = hex.trim().chars().filter(|c| *c != ':').collect();
    if hex.len() != 64 || !hex.is_ascii() {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, b) in out.iter_mut().enumerate() {
        *b = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(out)
}

/// The SHA-256 of a certificate (DER), the value a pin compares.
pub fn certificate_sha256(der: &[u8]) -> [u8; 32] {
    let mut out = [0u8; 32];
    out.copy_from_slice(ring::digest::digest(&ring::digest::SHA256, der).as_ref());
    out
}

fn provider() -> Arc<CryptoProvider> {
    static PROVIDER: OnceLock<Arc<CryptoProvider>> = OnceLock::new();
    PROVIDER
        .get_or_init(|| Arc::new(rustls::crypto::ring::default_provider()))
        .clone()
}

/// The system's trusted roots, read once per process (reading them scans
/// the system's certificate store).
fn system_roots() -> &'static [CertificateDer<'static>] {
    static ROOTS: OnceLock<Vec<CertificateDer<'static>>> = OnceLock::new();
    ROOTS.get_or_init(|| {
        let found = rustls_native_certs::load_native_certs();
        for e in &found.errors {
            tracing::debug!("skipping a system root certificate: {e}");
        }
        found.certs
    })
}

fn read_ca_file(path: &Path) -> Result<Vec<CertificateDer<'static>>, ClientError> {
    let bad = |why: String| ClientError::Tls(format!("CA file {}: {why}", path.display()));
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| bad(e.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad(e.to_string()))?;
    if certs.is_empty() {
        return Err(bad("no PEM certificate in it".into()));
    }
    Ok(certs)
}

/// The rustls configuration for these options; files are read now, so a
/// bad CA file is an error at connect time rather than on every attempt.
pub fn client_config(options: &TlsOptions) -> Result<Arc<rustls::ClientConfig>, ClientError> {
    let builder = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| ClientError::Tls(e.to_string()))?;
    let config = if let Some(pin) = options.pin_sha256 {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(PinnedCert {
                sha256: pin,
                provider: provider(),
            }))
            .with_no_client_auth()
    } else {
        let mut roots = RootCertStore::empty();
        let (_, ignored) = roots.add_parsable_certificates(system_roots().iter().cloned());
        if ignored > 0 {
            tracing::debug!("{ignored} system root certificates could not be parsed");
        }
        if let Some(path) = &options.ca_file {
            for cert in read_ca_file(path)? {
                roots
                    .add(cert)
                    .map_err(|e| ClientError::Tls(format!("CA file {}: {e}", path.display())))?;
            }
        }
        if roots.is_empty() {
            // Every certificate will be refused as of an unknown issuer,
            // which is what the connection errors will say.
            tracing::warn!("no trusted root certificate: the system has none; give a CA file");
        }
        builder.with_root_certificates(roots).with_no_client_auth()
    };
    Ok(Arc::new(config))
}

/// Accepts exactly the certificate whose SHA-256 is pinned (whatever its
/// issuer, name or dates), then checks the handshake's signatures with it.
#[derive(Debug)]
struct PinnedCert {
    sha256: [u8; 32],
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for PinnedCert {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if certificate_sha256(end_entity.as_ref()) == self.sha256 {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::General(
                "the gateway's certificate does not match the pinned SHA-256".into(),
            ))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_sha256_hex() {
        let hex = "00".repeat(31) + "ff";
        assert_eq!(parse_sha256_hex(&hex).map(|h| h[31]), Some(0xff));
        let colons: Vec<String> = (0..32).map(|i| format!("{i:02X}")).collect();
        assert_eq!(parse_sha256_hex(&colons.join(":")).map(|h| h[5]), Some(5));
        for bad in [
            "",
            "abc",
            &"zz".repeat(32),
            &"00".repeat(33),
            &"é".repeat(32),
        ] {
            assert_eq!(parse_sha256_hex(bad), None, "{bad}");
        }
    }

    #[test]
    fn a_missing_or_empty_ca_file_is_an_error() {
        let options = TlsOptions {
            ca_file: Some("/nonexistent/ca.pem".into()),
            pin_sha256: None,
        };
        assert!(matches!(client_config(&options), Err(ClientError::Tls(_))));
        let empty = std::env::temp_dir().join(format!("lg-empty-ca-{}.pem", std::process::id()));
        std::fs::write(&empty, "not a certificate\n").unwrap();
        let options = TlsOptions {
            ca_file: Some(empty.clone()),
            pin_sha256: None,
        };
        let result = client_config(&options);
        let _ = std::fs::remove_file(&empty);
        assert!(matches!(result, Err(ClientError::Tls(m)) if m.contains("no PEM certificate")));
    }
}
