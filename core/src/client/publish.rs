//! Publishing over HTTP (`POST /api/publish/{topic}`, `docs/protocol.md`
//! §5): the request, and which outcomes are final and which are retried.
//!
//! The rule: a publish is retried, with the same `msg_id`, whenever it may
//! not have reached the gateway (a network error, no answer in time) or the
//! gateway could not take it right now (5xx); the gateway's dedupe makes the
//! retry land once. Any other answer is final.

use crate::error::ErrorCode;
use crate::payload::{Payload, PayloadKind};
use crate::protocol::Position;

use super::request::{Method, Request};

/// Why an HTTP publish failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message} ({code})")]
pub struct HttpPublishError {
    /// The gateway's code, or [`ErrorCode::Io`] / [`ErrorCode::Timeout`]
    /// for the network.
    pub code: ErrorCode,
    /// Explanation.
    pub message: String,
    /// Whether the request may not have reached the gateway, or it could
    /// not take it now: the publish is sent again with the same msg_id.
    pub retry: bool,
}

impl HttpPublishError {
    /// The request could not be sent or its answer not read.
    pub fn io(message: impl Into<String>) -> Self {
        Self {
            code: ErrorCode::Io,
            message: message.into(),
            retry: true,
        }
    }

    /// No answer within the driver's timeout.
    pub fn timeout() -> Self {
        Self {
            code: ErrorCode::Timeout,
            message: "the gateway did not answer the publish in time".into(),
            retry: true,
        }
    }

    /// Whether it is about the network rather than an answer of the gateway.
    pub fn is_network(&self) -> bool {
        matches!(self.code, ErrorCode::Io | ErrorCode::Timeout)
    }
}

/// `POST /api/publish/{topic}?msg_id=..[&event=..]` with the payload as it
/// was made (its content type by kind) and the API key, if any.
pub fn publish_request(
    topic: &str,
    event: Option<&str>,
    msg_id: &str,
    data: &Payload,
    api_key: Option<&str>,
) -> Request {
    let content_type = match data.kind() {
        PayloadKind::Json => "application/json",
        PayloadKind::Msgpack => "application/msgpack",
        PayloadKind::Binary => "application/octet-stream",
    };
    let mut r = Request::get(&format!("/api/publish/{topic}")).query("msg_id", msg_id);
    if let Some(e) = event {
        r = r.query("event", e);
    }
    let mut r = r.header("content-type", content_type).bearer(api_key);
    r.method = Method::Post;
    r.body = data.as_bytes().clone();
    r
}

/// Reads the gateway's answer to a publish: where it landed, or why not.
pub fn classify_response(status: u16, body: &[u8]) -> Result<Position, HttpPublishError> {
    let v: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
    if (200..300).contains(&status) {
        return match (v["epoch"].as_str(), v["offset"].as_u64()) {
            (Some(epoch), Some(offset)) => Ok(Position {
                epoch: epoch.to_owned(),
                offset,
            }),
            // Taken, but the answer cannot say where: not worth a retry.
            _ => Err(HttpPublishError {
                code: ErrorCode::ProtocolError,
                message: format!("the publish answer has no position: HTTP {status}"),
                retry: false,
            }),
        };
    }
    let message = v["message"]
        .as_str()
        .map_or_else(|| format!("HTTP {status}"), str::to_owned);
    let (code, message) = match v["code"].as_str() {
        Some(code) => ErrorCode::from_wire_with_message(code, message),
        None => (ErrorCode::HttpError, message),
    };
    Err(HttpPublishError {
        code,
        message,
        retry: (500..600).contains(&status),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_request_carries_id_event_type_and_key() {
        let data = Payload::from_msgpack(vec![0x01]).unwrap();
        let r = publish_request("a/b", Some("ev t"), "x-1", &data, Some("k"));
        assert_eq!(r.method, Method::Post);
        assert_eq!(r.path_and_query(), "/api/publish/a/b?msg_id=x-1&event=ev+t");
        assert_eq!(
            r.headers,
            vec![
                (
                    "content-type".to_string(),
                    "application/msgpack".to_string()
                ),
                ("authorization".to_string(), "Bearer k".to_string())
            ]
        );
        assert_eq!(&r.body[..], &[0x01]);
        let r = publish_request("t", None, "x-2", &Payload::binary(vec![1]), None);
        assert_eq!(r.path_and_query(), "/api/publish/t?msg_id=x-2");
        assert_eq!(
            r.headers,
            vec![(
                "content-type".to_string(),
                "application/octet-stream".to_string()
            )]
        );
    }

    #[test]
    fn server_errors_and_the_network_are_retried_refusals_are_final() {
        assert_eq!(
            classify_response(
                200,
                br#"{"topic":"t","epoch":"e","offset":7,"duplicate":true}"#
            ),
            Ok(Position {
                epoch: "e".into(),
                offset: 7
            })
        );
        let refused = classify_response(
            403,
            br#"{"type":"error","code":"publish_forbidden","message":"no"}"#,
        )
        .unwrap_err();
        assert_eq!(
            (refused.code, refused.message.as_str(), refused.retry),
            (ErrorCode::PublishForbidden, "no", false)
        );
        let unauthorized =
            classify_response(401, br#"{"code":"unauthorized","message":"key"}"#).unwrap_err();
        assert!(!unauthorized.retry);
        let down =
            classify_response(503, br#"{"code":"unavailable","message":"disk"}"#).unwrap_err();
        assert_eq!((down.code, down.retry), (ErrorCode::Unavailable, true));
        let proxy = classify_response(502, b"<html>bad gateway</html>").unwrap_err();
        assert_eq!(
            (proxy.code, proxy.message.as_str(), proxy.retry),
            (ErrorCode::HttpError, "HTTP 502", true)
        );
        let odd =
            classify_response(418, br#"{"code":"from_the_future","message":"?"}"#).unwrap_err();
        assert_eq!((odd.code, odd.retry), (ErrorCode::Unknown, false));
        assert_eq!(odd.message, "? (code \"from_the_future\")");
        let empty = classify_response(200, b"").unwrap_err();
        assert!(!empty.retry);
        assert!(HttpPublishError::io("reset").retry && HttpPublishError::timeout().retry);
        assert!(HttpPublishError::timeout().is_network() && !down.is_network());
    }
}
