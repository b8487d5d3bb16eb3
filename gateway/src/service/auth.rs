//! Who a connection or request is ([`Identity`]), and what it may do.
//!
//! An [`Authenticator`] turns what a request or connection presented
//! ([`Credentials`]) into an identity, and may refine what that identity
//! may do per operation and topic. The gateway's own rules (reserved
//! topics, a namespace's `client_publish`) are applied by the service on
//! top, whatever the authenticator. [`ApiKey`] checks the API key only;
//! [`super::jwt::JwtAuthenticator`] also reads a token's subject and grants
//! into the identity and checks them in [`Authenticator::authorize`].

use std::sync::Arc;

use crate::error::{ErrorKind, ServiceError};

/// Where credentials were presented.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// A request of the HTTP API (`/api/...`): a backend.
    Api,
    /// A subscriber connection (WebSocket, SSE, long-poll, WebTransport).
    Connection,
}

/// What a request or connection presented.
#[derive(Debug, Clone)]
pub struct Credentials<'a> {
    /// Where.
    pub origin: Origin,
    /// Keys or tokens it carried (`Authorization: Bearer`, `X-Api-Key`,
    /// `?token=`, a `bearer.<jwt>` WebSocket subprotocol).
    pub keys: Vec<&'a str>,
}

impl<'a> Credentials<'a> {
    /// A subscriber connection that presented nothing.
    pub fn connection() -> Self {
        Self {
            origin: Origin::Connection,
            keys: Vec::new(),
        }
    }

    /// A subscriber connection that presented `keys`.
    pub fn connection_with(keys: Vec<&'a str>) -> Self {
        Self {
            origin: Origin::Connection,
            keys,
        }
    }
}

/// What an identity may do, before per-topic rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// A backend holding the API key (or any API caller when no key is
    /// set): publishes on any topic but reserved ones.
    Backend,
    /// A subscriber connection: publishes where its namespace allows
    /// `client_publish`.
    Client,
    /// An API caller without the key when one is set: reads, never
    /// publishes.
    Guest,
}

/// Who a connection or request is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// Who (with JWT, the token's subject); `None` for anonymous callers,
    /// so an anonymous connection allocates nothing for it.
    pub subject: Option<Arc<str>>,
    /// What it may do before per-topic rules.
    pub role: Role,
    /// With a token, the topics it grants per operation.
    pub grants: Option<Arc<super::grants::Grants>>,
    /// With a token, when it expires (ms since the Unix epoch).
    pub expires_ms: Option<u64>,
}

impl Identity {
    /// An identity with no name.
    pub fn anonymous(role: Role) -> Self {
        Self {
            subject: None,
            role,
            grants: None,
            expires_ms: None,
        }
    }

    /// Who, for logs: the subject or `anonymous`.
    pub fn subject(&self) -> &str {
        self.subject.as_deref().unwrap_or("anonymous")
    }
}

/// An operation an identity asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    /// Publish on a topic.
    Publish,
    /// Subscribe to a topic (with replay).
    Subscribe,
    /// Read a topic's history.
    History,
}

impl Operation {
    /// Its name, as grants spell it.
    pub fn name(self) -> &'static str {
        match self {
            Self::Publish => "publish",
            Self::Subscribe => "subscribe",
            Self::History => "history",
        }
    }
}

/// Turns credentials into identities and checks their grants.
pub trait Authenticator: Send + Sync + 'static {
    /// The identity behind `credentials`, or why they are refused.
    fn authenticate(&self, credentials: &Credentials<'_>) -> Result<Identity, ServiceError>;

    /// Whether it checks connection tokens (so `refresh` means something).
    fn checks_tokens(&self) -> bool {
        false
    }

    /// Whether `identity` may do `operation` on `topic`, beyond the
    /// gateway's own rules. Everything by default.
    fn authorize(
        &self,
        identity: &Identity,
        operation: Operation,
        topic: &str,
    ) -> Result<(), ServiceError> {
        let _ = (identity, operation, topic);
        Ok(())
    }
}

/// The API key check: API callers presenting the key (or all of them when
/// no key is set) are backends; connections are clients.
#[derive(Debug, Clone, Default)]
pub struct ApiKey {
    key: Option<String>,
}

impl ApiKey {
    /// Checks against `key`; `None` lets every API caller publish.
    pub fn new(key: Option<String>) -> Self {
        Self { key }
    }

    /// Whether a key is set.
    pub fn is_set(&self) -> bool {
        self.key.is_some()
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl Authenticator for ApiKey {
    fn authenticate(&self, credentials: &Credentials<'_>) -> Result<Identity, ServiceError> {
        Ok(match (credentials.origin, &self.key) {
            (Origin::Connection, _) => Identity::anonymous(Role::Client),
            (Origin::Api, None) => Identity::anonymous(Role::Backend),
            (Origin::Api, Some(key)) => {
                let holds = credentials
                    .keys
                    .iter()
                    .any(|given| constant_time_eq(given.as_bytes(), key.as_bytes()));
                if holds {
                    Identity {
                        subject: Some(Arc::from("api-key")),
                        ..Identity::anonymous(Role::Backend)
                    }
                } else {
                    Identity::anonymous(Role::Guest)
                }
            }
        })
    }
}

/// The refusal of a publish by a guest.
pub(crate) fn needs_key() -> ServiceError {
    ServiceError::new(
        ErrorKind::Unauthorized,
        "publishing needs the API key: send Authorization: Bearer <key> or X-Api-Key: <key>",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api(keys: Vec<&str>) -> Credentials<'_> {
        Credentials {
            origin: Origin::Api,
            keys,
        }
    }

    #[test]
    fn api_key_roles() {
        let open = ApiKey::new(None);
        assert_eq!(open.authenticate(&api(vec![])).unwrap().role, Role::Backend);
        let keyed = ApiKey::new(Some("k3y".into()));
        let holder = keyed.authenticate(&api(vec!["nope", "k3y"])).unwrap();
        assert_eq!((holder.role, holder.subject()), (Role::Backend, "api-key"));
        for keys in [vec![], vec!["k3"], vec!["k3yy"]] {
            assert_eq!(keyed.authenticate(&api(keys)).unwrap().role, Role::Guest);
        }
        let conn = keyed.authenticate(&Credentials::connection()).unwrap();
        assert_eq!((conn.role, conn.subject()), (Role::Client, "anonymous"));
    }
}
