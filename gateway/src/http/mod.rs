//! The HTTP API: publish, history, stats, health, metrics, the live page.
//! Handlers read requests into service calls and answers into responses;
//! the checks and the error mapping are the service's.

pub mod history;
pub mod info;
pub mod publish;

use axum::http::{header, HeaderMap};

use crate::service::{Credentials, Origin};

/// What an API request presented: `Authorization: Bearer <key>` and
/// `X-Api-Key: <key>`.
pub(crate) fn credentials(headers: &HeaderMap) -> Credentials<'_> {
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    let key = headers.get("x-api-key").and_then(|v| v.to_str().ok());
    Credentials {
        origin: Origin::Api,
        keys: [bearer, key].into_iter().flatten().collect(),
    }
}
