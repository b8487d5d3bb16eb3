//! Error codes of the protocol and decoding errors.

use std::fmt;

/// The codes carried by `error` frames: problems a connection survives.
///
/// Each is listed with its meaning in `docs/protocol.md` §3.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorCode {
    /// Not valid JSON/MessagePack, not an object, a field missing or of the wrong type.
    BadFrame,
    /// `type` names no frame of the protocol.
    UnknownType,
    /// The topic name breaks the naming rules.
    BadTopic,
    /// The event name breaks the naming rules.
    BadEvent,
    /// The connection already has `max_subscriptions` topics.
    TooManySubscriptions,
    /// `subscribe` for a topic the connection already has.
    AlreadySubscribed,
    /// `unsubscribe` for a topic the connection does not have.
    NotSubscribed,
    /// The namespace forbids client publishes, or the topic is reserved.
    PublishForbidden,
    /// `history` with a position the log no longer holds.
    HistoryUnavailable,
    /// `history` with a `limit` out of range.
    BadLimit,
    /// A frame this gateway understands but does not serve.
    Unsupported,
    /// The broker could not be reached; the request had no effect and may be
    /// retried.
    Unavailable,
}

impl ErrorCode {
    /// The code as it appears on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::BadFrame => "bad_frame",
            Self::UnknownType => "unknown_type",
            Self::BadTopic => "bad_topic",
            Self::BadEvent => "bad_event",
            Self::TooManySubscriptions => "too_many_subscriptions",
            Self::AlreadySubscribed => "already_subscribed",
            Self::NotSubscribed => "not_subscribed",
            Self::PublishForbidden => "publish_forbidden",
            Self::HistoryUnavailable => "history_unavailable",
            Self::BadLimit => "bad_limit",
            Self::Unsupported => "unsupported",
            Self::Unavailable => "unavailable",
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why bytes could not be decoded into a frame.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// The bytes are not one well-formed JSON or MessagePack value.
    #[error("malformed {encoding}: {detail}")]
    Malformed {
        /// `JSON` or `MessagePack`.
        encoding: &'static str,
        /// What the parser said.
        detail: String,
    },
    /// The value is not an object/map.
    #[error("a frame must be an object with a \"type\" field")]
    NotAnObject,
    /// A required field is absent.
    #[error("missing field \"{0}\"")]
    MissingField(&'static str),
    /// A field holds a value of the wrong type.
    #[error("field \"{field}\" must be {expected}")]
    WrongType {
        /// The field's name.
        field: &'static str,
        /// What it should hold.
        expected: &'static str,
    },
    /// `type` names no known frame.
    #[error("unknown frame type \"{0}\"")]
    UnknownType(String),
}

impl DecodeError {
    /// The `error` frame code a gateway answers this with.
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::UnknownType(_) => ErrorCode::UnknownType,
            _ => ErrorCode::BadFrame,
        }
    }
}
