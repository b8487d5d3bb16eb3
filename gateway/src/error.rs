//! The gateway's errors: every failure a request or a client frame can meet,
//! each declared once with its `error` frame code and its HTTP status and
//! code side by side, so the same bad input gets the same answer on every
//! transport (`docs/protocol.md` §3 and §5).

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use livegate_core::ErrorCode;

/// What went wrong, as far as the client is told.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorKind {
    /// Malformed input: a frame or body that cannot be read, a bad `msg_id`.
    BadRequest,
    /// A frame whose `type` is not in the protocol.
    UnknownType,
    /// A topic name that breaks the naming rules.
    BadTopic,
    /// An event name that breaks the naming rules.
    BadEvent,
    /// A history `limit` out of range.
    BadLimit,
    /// A cursor (`since`, `cursor`, `Last-Event-ID`) that cannot be read.
    BadCursor,
    /// More topics than `max_subscriptions` on one connection.
    TooManySubscriptions,
    /// A topic the connection already has.
    AlreadySubscribed,
    /// A topic the connection does not have.
    NotSubscribed,
    /// No valid credentials where they are needed.
    Unauthorized,
    /// Valid credentials that do not grant this operation on this topic.
    Forbidden,
    /// The identity may not publish on this topic (reserved, or the
    /// namespace forbids client publishes).
    PublishForbidden,
    /// A history position the log no longer holds.
    HistoryUnavailable,
    /// Something this gateway understands but does not serve.
    Unsupported,
    /// The broker cannot be reached; nothing happened, a retry may work.
    Unavailable,
    /// No such endpoint or resource.
    NotFound,
    /// A body over `max_frame_bytes`.
    PayloadTooLarge,
    /// A publish body of a content type the gateway cannot read.
    UnsupportedMediaType,
    /// A plain request to an endpoint that needs an upgrade.
    UpgradeRequired,
}

impl ErrorKind {
    /// The `error` frame code, the HTTP status and the code of the HTTP
    /// body: the one table of error mapping.
    fn mapping(self) -> (&'static str, StatusCode, &'static str) {
        use StatusCode as S;
        let frame = |c: ErrorCode| c.as_str();
        match self {
            Self::BadRequest => (frame(ErrorCode::BadFrame), S::BAD_REQUEST, "bad_request"),
            Self::UnknownType => (frame(ErrorCode::UnknownType), S::BAD_REQUEST, "bad_request"),
            Self::BadTopic => (frame(ErrorCode::BadTopic), S::BAD_REQUEST, "bad_topic"),
            Self::BadEvent => (frame(ErrorCode::BadEvent), S::BAD_REQUEST, "bad_event"),
            Self::BadLimit => (frame(ErrorCode::BadLimit), S::BAD_REQUEST, "bad_limit"),
            Self::BadCursor => (frame(ErrorCode::BadFrame), S::BAD_REQUEST, "bad_cursor"),
            Self::TooManySubscriptions => (
                frame(ErrorCode::TooManySubscriptions),
                S::BAD_REQUEST,
                "too_many_subscriptions",
            ),
            Self::AlreadySubscribed => (
                frame(ErrorCode::AlreadySubscribed),
                S::CONFLICT,
                "already_subscribed",
            ),
            Self::NotSubscribed => (
                frame(ErrorCode::NotSubscribed),
                S::CONFLICT,
                "not_subscribed",
            ),
            Self::Unauthorized => ("unauthorized", S::UNAUTHORIZED, "unauthorized"),
            Self::Forbidden => (frame(ErrorCode::Forbidden), S::FORBIDDEN, "forbidden"),
            Self::PublishForbidden => (
                frame(ErrorCode::PublishForbidden),
                S::FORBIDDEN,
                "publish_forbidden",
            ),
            Self::HistoryUnavailable => (
                frame(ErrorCode::HistoryUnavailable),
                S::GONE,
                "history_unavailable",
            ),
            Self::Unsupported => (
                frame(ErrorCode::Unsupported),
                S::NOT_IMPLEMENTED,
                "unsupported",
            ),
            Self::Unavailable => (
                frame(ErrorCode::Unavailable),
                S::SERVICE_UNAVAILABLE,
                "unavailable",
            ),
            Self::NotFound => ("not_found", S::NOT_FOUND, "not_found"),
            Self::PayloadTooLarge => (
                "payload_too_large",
                S::PAYLOAD_TOO_LARGE,
                "payload_too_large",
            ),
            Self::UnsupportedMediaType => (
                "unsupported_media_type",
                S::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
            ),
            Self::UpgradeRequired => ("upgrade_required", S::UPGRADE_REQUIRED, "upgrade_required"),
        }
    }

    /// The code of an `error` frame.
    pub fn frame_code(self) -> &'static str {
        self.mapping().0
    }

    /// The HTTP status.
    pub fn status(self) -> StatusCode {
        self.mapping().1
    }

    /// The `code` of an HTTP error body.
    pub fn http_code(self) -> &'static str {
        self.mapping().2
    }
}

impl From<ErrorCode> for ErrorKind {
    fn from(code: ErrorCode) -> Self {
        match code {
            ErrorCode::UnknownType => Self::UnknownType,
            ErrorCode::BadTopic => Self::BadTopic,
            ErrorCode::BadEvent => Self::BadEvent,
            ErrorCode::TooManySubscriptions => Self::TooManySubscriptions,
            ErrorCode::AlreadySubscribed => Self::AlreadySubscribed,
            ErrorCode::NotSubscribed => Self::NotSubscribed,
            ErrorCode::PublishForbidden => Self::PublishForbidden,
            ErrorCode::HistoryUnavailable => Self::HistoryUnavailable,
            ErrorCode::BadLimit => Self::BadLimit,
            ErrorCode::Unsupported => Self::Unsupported,
            ErrorCode::Unavailable => Self::Unavailable,
            _ => Self::BadRequest,
        }
    }
}

/// A refused request: its kind and a sentence for the client.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}: {message}", kind.frame_code())]
pub struct ServiceError {
    /// What went wrong.
    pub kind: ErrorKind,
    /// What to tell the client.
    pub message: String,
}

impl ServiceError {
    /// An error of `kind`.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
        }
    }

    /// Malformed input.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::BadRequest, message)
    }
}

impl IntoResponse for ServiceError {
    /// The status and the protocol's `{"type":"error","code","message"}`.
    fn into_response(self) -> Response {
        let body = serde_json::json!({
            "type": "error",
            "code": self.kind.http_code(),
            "message": self.message,
        });
        (self.kind.status(), Json(body)).into_response()
    }
}
