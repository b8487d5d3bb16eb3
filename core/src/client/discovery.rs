//! WebTransport discovery: `GET /wt/cert-hash` answers where WebTransport
//! listens and the SHA-256 of its certificate (`docs/protocol.md` §4.5), so
//! a client given only the gateway's HTTP URL can find and pin it, as a
//! browser does with `serverCertificateHashes`.

use serde::Deserialize;

use super::request::http_failure;

/// What `/wt/cert-hash` announces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertHashInfo {
    /// Where to open the session (`https://HOST:PORT/wt`).
    pub url: String,
    /// The certificate's SHA-256.
    pub hash: [u8; 32],
}

impl CertHashInfo {
    /// Reads the answer to `GET /wt/cert-hash`: an error status means the
    /// gateway serves no WebTransport.
    pub fn from_response(status: u16, body: &[u8]) -> Result<Self, String> {
        if status != 200 {
            return Err(format!(
                "WebTransport is not available (GET /wt/cert-hash answered {})",
                http_failure(status, body)
            ));
        }
        #[derive(Deserialize)]
        struct Answer {
            url: String,
            #[serde(default)]
            algorithm: Option<String>,
            hash: String,
        }
        let a: Answer =
            serde_json::from_slice(body).map_err(|e| format!("bad /wt/cert-hash answer: {e}"))?;
        if a.algorithm.as_deref().is_some_and(|alg| alg != "sha-256") {
            return Err(format!(
                "bad /wt/cert-hash answer: unknown algorithm {:?}",
                a.algorithm.unwrap_or_default()
            ));
        }
        let hash = parse_cert_hash(&a.hash).ok_or_else(|| {
            format!(
                "bad /wt/cert-hash answer: hash {:?} is not 64 hex characters",
                a.hash
            )
        })?;
        Ok(Self { url: a.url, hash })
    }
}

/// Reads a SHA-256 written as 64 hex characters (a pinned certificate);
/// `:` separators are allowed, as `openssl x509 -fingerprint` prints them.
pub fn parse_cert_hash(hex: &str) -> Option<[u8; 32]> {
    let hex: String = hex.trim().chars().filter(|c| *c != ':').collect();
    if hex.len() != 64 || !hex.is_ascii() {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, b) in out.iter_mut().enumerate() {
        *b = u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_announcement() {
        let hex = "00ff".repeat(16);
        let body = format!(
            r#"{{"url":"https://127.0.0.1:4433/wt","algorithm":"sha-256","hash":"{hex}"}}"#
        );
        let info = CertHashInfo::from_response(200, body.as_bytes()).unwrap();
        assert_eq!(info.url, "https://127.0.0.1:4433/wt");
        assert_eq!(info.hash[..2], [0x00, 0xff]);
    }

    #[test]
    fn refuses_what_cannot_be_pinned() {
        let err = CertHashInfo::from_response(404, br#"{"code":"not_found"}"#).unwrap_err();
        assert!(err.starts_with("WebTransport is not available"), "{err}");
        for body in [
            r#"{"url":"u","hash":"abc"}"#.to_string(),
            format!(
                r#"{{"url":"u","algorithm":"md5","hash":"{}"}}"#,
                "0".repeat(64)
            ),
            "not json".to_string(),
        ] {
            assert!(
                CertHashInfo::from_response(200, body.as_bytes()).is_err(),
                "{body}"
            );
        }
        assert_eq!(parse_cert_hash(&"g".repeat(64)), None);
        assert_eq!(parse_cert_hash(&"é".repeat(32)), None);
        assert_eq!(
            parse_cert_hash(&format!(" {} ", "A".repeat(64))),
            Some([0xaa; 32])
        );
        let colons = ["0a"; 32].join(":");
        assert_eq!(parse_cert_hash(&colons), Some([0x0a; 32]));
    }
}
