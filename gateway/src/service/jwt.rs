//! Connection tokens: a JWT's signature, `exp` and grants checked with keys
//! from the config, composed with the API key for backends.
//!
//! Claims read: `sub` (optional), `exp` (required), and `subscribe`,
//! `publish`, `history`: lists of topic patterns ([`super::grants`]).

use std::path::PathBuf;
use std::sync::Arc;

use jsonwebtoken::crypto::CryptoProvider;
use jsonwebtoken::errors::ErrorKind as JwtErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use livegate_core::topic::is_reserved;
use serde::Deserialize;

use super::auth::{ApiKey, Authenticator, Credentials, Identity, Operation, Origin, Role};
use super::grants::Grants;
use crate::error::{ErrorKind, ServiceError};

/// The `[auth]` table of the config.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthConfig {
    /// Shared secret of HS256/HS384/HS512 tokens.
    pub jwt_secret: Option<String>,
    /// PEM public key of RS256 (RSA), ES256 (EC P-256) or EdDSA (Ed25519) tokens.
    pub jwt_public_key: Option<PathBuf>,
    /// Whether connections (and API readers) without a token are let in
    /// when tokens are on; they may then do what the gateway allows anyone.
    pub anonymous: bool,
    /// Whether those anonymous callers may also read reserved topics
    /// (`$sys.*`: machine figures), say for the live page on localhost.
    pub anonymous_sys: bool,
    /// Required `iss`, if set.
    pub issuer: Option<String>,
    /// Required `aud`, if set.
    pub audience: Option<String>,
    /// Seconds of clock skew tolerated on `exp`.
    pub leeway_secs: u64,
}

impl AuthConfig {
    /// Whether tokens are on.
    pub fn enabled(&self) -> bool {
        self.jwt_secret.is_some() || self.jwt_public_key.is_some()
    }
}

/// Why the token settings cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum JwtConfigError {
    /// The key file could not be read.
    #[error("cannot read jwt_public_key {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The key file is not a PEM RSA, EC P-256 or Ed25519 public key.
    #[error("jwt_public_key {0} is not a PEM RSA, EC P-256 or Ed25519 public key")]
    Key(PathBuf),
    /// The secret is empty.
    #[error("jwt_secret must not be empty")]
    EmptySecret,
    /// The build has no JWT crypto backend (a packaging mistake).
    #[error("this build has no JWT crypto backend")]
    NoBackend,
}

/// The claims livegate reads.
#[derive(Debug, Deserialize)]
struct Claims {
    sub: Option<String>,
    // Optional here so a token without it is refused by the validation
    // (which requires it) with a clear reason, not as malformed.
    exp: Option<u64>,
    #[serde(default)]
    subscribe: Vec<String>,
    #[serde(default)]
    publish: Vec<String>,
    #[serde(default)]
    history: Vec<String>,
}

/// Checks JWTs on connections and API requests; the API key still makes a
/// backend.
pub struct JwtAuthenticator {
    keys: Vec<(DecodingKey, Validation)>,
    api_key: ApiKey,
    anonymous: bool,
    anonymous_sys: bool,
}

impl std::fmt::Debug for JwtAuthenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtAuthenticator")
            .field("keys", &self.keys.len())
            .field("anonymous", &self.anonymous)
            .finish()
    }
}

fn validation(config: &AuthConfig, algorithms: &[Algorithm]) -> Validation {
    let mut v = Validation::new(algorithms[0]);
    v.algorithms = algorithms.to_vec();
    v.leeway = config.leeway_secs;
    if let Some(iss) = &config.issuer {
        v.set_issuer(&[iss]);
    }
    match &config.audience {
        Some(aud) => v.set_audience(&[aud]),
        None => v.validate_aud = false,
    }
    v
}

fn public_key(path: &PathBuf) -> Result<(DecodingKey, Algorithm), JwtConfigError> {
    let pem = std::fs::read(path).map_err(|source| JwtConfigError::Read {
        path: path.clone(),
        source,
    })?;
    if let Ok(k) = DecodingKey::from_rsa_pem(&pem) {
        return Ok((k, Algorithm::RS256));
    }
    if let Ok(k) = DecodingKey::from_ec_pem(&pem) {
        return Ok((k, Algorithm::ES256));
    }
    if let Ok(k) = DecodingKey::from_ed_pem(&pem) {
        return Ok((k, Algorithm::EdDSA));
    }
    Err(JwtConfigError::Key(path.clone()))
}

impl JwtAuthenticator {
    /// Tokens checked with the keys of `config`, the API key `api_key`.
    pub fn new(config: &AuthConfig, api_key: ApiKey) -> Result<Self, JwtConfigError> {
        // jsonwebtoken panics on first use without a backend; fail here.
        CryptoProvider::try_get_default().ok_or(JwtConfigError::NoBackend)?;
        let mut keys = Vec::new();
        if let Some(secret) = &config.jwt_secret {
            if secret.is_empty() {
                return Err(JwtConfigError::EmptySecret);
            }
            let key = DecodingKey::from_secret(secret.as_bytes())
                .map_err(|_| JwtConfigError::EmptySecret)?;
            let hs = [Algorithm::HS256, Algorithm::HS384, Algorithm::HS512];
            keys.push((key, validation(config, &hs)));
        }
        if let Some(path) = &config.jwt_public_key {
            let (key, alg) = public_key(path)?;
            keys.push((key, validation(config, &[alg])));
        }
        Ok(Self {
            keys,
            api_key,
            anonymous: config.anonymous,
            anonymous_sys: config.anonymous_sys,
        })
    }

    /// Refuses every token and anonymous caller (only the API key passes):
    /// what a gateway whose token settings failed falls back to.
    pub fn refusing_all(api_key: ApiKey) -> Self {
        Self {
            keys: Vec::new(),
            api_key,
            anonymous: false,
            anonymous_sys: false,
        }
    }

    /// The authenticator `config` asks for: the API key alone when tokens
    /// are off; when their settings fail (checked by `Config::validate`
    /// first), one that refuses everyone rather than one that lets all in.
    pub fn from_config(config: &AuthConfig, api_key: ApiKey) -> Arc<dyn Authenticator> {
        if !config.enabled() {
            return Arc::new(api_key);
        }
        match Self::new(config, api_key.clone()) {
            Ok(jwt) => Arc::new(jwt),
            Err(e) => {
                tracing::error!(error = %e, "token settings unusable; refusing every token");
                Arc::new(Self::refusing_all(api_key))
            }
        }
    }

    /// The identity a token stands for.
    pub fn verify(&self, token: &str) -> Result<Identity, ServiceError> {
        let refused =
            |why: &str| ServiceError::new(ErrorKind::Unauthorized, format!("token refused: {why}"));
        let header = jsonwebtoken::decode_header(token)
            .map_err(|_| refused("not a JWT of a known algorithm"))?;
        let Some((key, validation)) = self
            .keys
            .iter()
            .find(|(_, v)| v.algorithms.contains(&header.alg))
        else {
            return Err(refused(&format!(
                "algorithm {:?} is not accepted",
                header.alg
            )));
        };
        let data = jsonwebtoken::decode::<Claims>(token, key, validation).map_err(|e| {
            refused(match e.kind() {
                JwtErrorKind::ExpiredSignature => "it expired",
                JwtErrorKind::InvalidSignature => "bad signature",
                JwtErrorKind::MissingRequiredClaim(_) => "a required claim (exp) is missing",
                JwtErrorKind::InvalidIssuer => "wrong issuer",
                JwtErrorKind::InvalidAudience => "wrong audience",
                JwtErrorKind::InvalidAlgorithm => "the algorithm does not match the key",
                _ => "malformed",
            })
        })?;
        let c = data.claims;
        let grants = Grants::new(&c.subscribe, &c.publish, &c.history, c.sub.as_deref());
        Ok(Identity {
            subject: c.sub.map(Arc::from),
            role: Role::Client,
            grants: Some(Arc::new(grants)),
            expires_ms: c.exp.map(|exp| exp.saturating_mul(1000)),
        })
    }

    fn anonymous_or_refuse(&self, role: Role) -> Result<Identity, ServiceError> {
        if self.anonymous {
            Ok(Identity::anonymous(role))
        } else {
            Err(ServiceError::new(
                ErrorKind::Unauthorized,
                "a token is required: send Authorization: Bearer <jwt> or ?token=<jwt>",
            ))
        }
    }
}

/// Whether `s` has the shape of a JWT (three dot-separated parts).
fn looks_like_jwt(s: &str) -> bool {
    s.split('.').count() == 3
}

impl Authenticator for JwtAuthenticator {
    fn authenticate(&self, credentials: &Credentials<'_>) -> Result<Identity, ServiceError> {
        // With tokens on, an unset API key makes nobody a backend: the API
        // then needs a token too, rather than being open to everyone.
        if credentials.origin == Origin::Api && self.api_key.is_set() {
            let by_key = self.api_key.authenticate(credentials)?;
            if by_key.role == Role::Backend {
                return Ok(by_key);
            }
        }
        match credentials.keys.iter().find(|k| looks_like_jwt(k)) {
            Some(token) => self.verify(token),
            None if credentials.origin == Origin::Api => self.anonymous_or_refuse(Role::Guest),
            None => self.anonymous_or_refuse(Role::Client),
        }
    }

    fn checks_tokens(&self) -> bool {
        true
    }

    fn authorize(
        &self,
        identity: &Identity,
        operation: Operation,
        topic: &str,
    ) -> Result<(), ServiceError> {
        if identity.role == Role::Backend {
            return Ok(());
        }
        match &identity.grants {
            Some(grants) if grants.allows(operation, topic) => Ok(()),
            Some(_) => Err(ServiceError::new(
                ErrorKind::Forbidden,
                format!(
                    "the token of {} does not grant {} on {topic}",
                    identity.subject(),
                    operation.name()
                ),
            )),
            None if self.anonymous && (self.anonymous_sys || !is_reserved(topic)) => Ok(()),
            None if self.anonymous => Err(ServiceError::new(
                ErrorKind::Forbidden,
                format!("{topic} is reserved: reading it needs a token that grants it"),
            )),
            None => Err(ServiceError::new(
                ErrorKind::Unauthorized,
                "a token is required for this",
            )),
        }
    }
}
