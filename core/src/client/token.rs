//! When a connection token needs replacing: its `exp`, read without
//! checking the signature (the gateway checks it; the client only plans).

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;

/// The `exp` of a JWT, in seconds since the Unix epoch; `None` for a token
/// that is not a JWT or has no numeric `exp`.
pub fn expires_at_secs(token: &str) -> Option<u64> {
    let mut parts = token.split('.');
    let (_, payload, _) = (parts.next()?, parts.next()?, parts.next()?);
    let json = URL_SAFE_NO_PAD.decode(payload.trim_end_matches('=')).ok()?;
    let claims: serde_json::Value = serde_json::from_slice(&json).ok()?;
    claims.get("exp")?.as_u64()
}

/// How long after it is received a token valid for `valid_for_ms` should
/// be replaced: at four fifths of its life, so a slow token source still
/// has a fifth of it.
pub fn refresh_after_ms(valid_for_ms: u64) -> u64 {
    valid_for_ms / 5 * 4
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_exp_and_tolerates_anything_else() {
        // {"alg":"HS256"} . {"sub":"a","exp":1893456000} . signature
        let t = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhIiwiZXhwIjoxODkzNDU2MDAwfQ.c2ln";
        assert_eq!(expires_at_secs(t), Some(1_893_456_000));
        for bad in ["", "abc", "a.b", "a.!!!.c", "eyJhIjoxfQ.eyJhIjoxfQ.x"] {
            assert_eq!(expires_at_secs(bad), None, "{bad}");
        }
        assert_eq!(refresh_after_ms(10_000), 8_000);
    }
}
