//! Where a subscriber connection carries its token (`docs/protocol.md` §1):
//! `Authorization: Bearer <jwt>`, `?token=<jwt>`, or, for browsers' WebSocket,
//! a `bearer.<jwt>` subprotocol offered next to the livegate one.

use axum::http::{header, HeaderMap};

use crate::error::ServiceError;
use crate::service::{Credentials, Identity, Service};

/// The WebSocket subprotocol prefix that carries a token.
pub const SUBPROTOCOL_PREFIX: &str = "bearer.";

/// The tokens of a connection request, from its `Authorization` header
/// value, its offered subprotocols and its query string.
pub fn tokens<'a>(
    authorization: Option<&'a str>,
    subprotocols: impl IntoIterator<Item = &'a str>,
    query: Option<&str>,
) -> Vec<String> {
    let mut found: Vec<String> = authorization
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(|t| t.trim().to_owned())
        .into_iter()
        .collect();
    found.extend(
        subprotocols
            .into_iter()
            .filter_map(|p| p.trim().strip_prefix(SUBPROTOCOL_PREFIX))
            .map(str::to_owned),
    );
    found.extend(
        form_urlencoded::parse(query.unwrap_or("").as_bytes())
            .filter(|(k, _)| k == "token")
            .map(|(_, v)| v.into_owned()),
    );
    found
}

/// The tokens of an HTTP connection request (WebSocket, SSE, long-poll).
pub fn http_tokens(headers: &HeaderMap, query: Option<&str>) -> Vec<String> {
    let authorization = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let subprotocols = headers
        .get_all(header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','));
    tokens(authorization, subprotocols, query)
}

/// The identity of a connection that presented `tokens`.
pub fn authenticate(service: &Service, tokens: &[String]) -> Result<Identity, ServiceError> {
    service.authenticate(&Credentials::connection_with(
        tokens.iter().map(String::as_str).collect(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_place_a_token_travels() {
        let found = tokens(
            Some("Bearer a.b.c"),
            ["livegate.v1.json", " bearer.d.e.f"],
            Some("topic=x&token=g.h.i"),
        );
        assert_eq!(found, ["a.b.c", "d.e.f", "g.h.i"]);
        assert!(tokens(Some("Basic xyz"), [], Some("topic=x")).is_empty());
    }
}
