//! TLS termination (`--tls-ca-out`): the proxy as a TLS load balancer in
//! front of the gateway, with a certificate from a test CA made at start.
//!
//! TLS connections are decrypted and handed to the plain proxy on an
//! internal loopback listener, so every fault command applies to them
//! unchanged.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair, KeyUsagePurpose};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;

/// Makes a test CA and a leaf for `127.0.0.1`, `::1` and `localhost`
/// signed by it; writes the CA's PEM to `ca_out` and returns the acceptor.
pub fn acceptor(ca_out: &Path) -> anyhow::Result<TlsAcceptor> {
    let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "livegate-faultproxy test CA");
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate()?)?;
    let leaf_key = KeyPair::generate()?;
    let leaf = CertificateParams::new(vec![
        "127.0.0.1".to_owned(),
        "::1".to_owned(),
        "localhost".to_owned(),
    ])?
    .signed_by(&leaf_key, &ca)?;
    std::fs::write(ca_out, pem_certificate(ca.der()))
        .with_context(|| format!("writing the test CA to {}", ca_out.display()))?;
    let chain = vec![leaf.der().clone(), CertificateDer::from(ca.der().to_vec())];
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(leaf_key.serialize_der()));
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()?
    .with_no_client_auth()
    .with_single_cert(chain, key)?;
    Ok(TlsAcceptor::from(Arc::new(config)))
}

fn pem_certificate(der: &[u8]) -> String {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = String::from("-----BEGIN CERTIFICATE-----\n");
    for line in b64.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(line));
        out.push('\n');
    }
    out.push_str("-----END CERTIFICATE-----\n");
    out
}

/// Accepts TLS connections on `listener` and pipes each, decrypted, to the
/// plain proxy at `inner`.
pub async fn serve(listener: TcpListener, inner: SocketAddr, acceptor: TlsAcceptor) {
    loop {
        let sock = match listener.accept().await {
            Ok((sock, _)) => sock,
            Err(e) => {
                eprintln!("faultproxy: accept: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let acceptor = acceptor.clone();
        tokio::spawn(async move {
            let _ = sock.set_nodelay(true);
            // A client that gives up on the handshake (a bad CA, say) is
            // simply closed.
            let Ok(mut tls) = acceptor.accept(sock).await else {
                return;
            };
            let Ok(mut plain) = TcpStream::connect(inner).await else {
                return;
            };
            let _ = plain.set_nodelay(true);
            let _ = tokio::io::copy_bidirectional(&mut tls, &mut plain).await;
        });
    }
}
