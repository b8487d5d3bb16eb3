//! The error vocabulary of livegate: one code enum for the gateway and every
//! client, and the decoding errors.

use std::fmt;

/// Declares [`ErrorCode`] with each code's wire string next to its variant,
/// so the two can never drift apart.
macro_rules! error_codes {
    ($(
        $(#[doc = $doc:literal])+
        $variant:ident = $wire:literal,
    )+) => {
        /// Every code livegate puts in an `error` frame, a `disconnect` frame,
        /// an HTTP error body (`docs/protocol.md` §3 and §5), plus the few a
        /// client reports on its own (a transport that failed to open, a
        /// publish failed by `close()`: `docs/client.md`).
        ///
        /// Gateways, clients and bindings use these values instead of string
        /// literals; [`ErrorCode::as_str`] is the wire form and
        /// [`ErrorCode::from_wire`] reads it back. A code this version does
        /// not know (from a newer gateway) reads as [`ErrorCode::Unknown`].
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[non_exhaustive]
        pub enum ErrorCode {
            $( $(#[doc = $doc])+ $variant, )+
        }

        impl ErrorCode {
            /// Every code, in declaration order.
            pub const ALL: &'static [ErrorCode] = &[$(Self::$variant),+];

            /// The code as it appears on the wire.
            pub fn as_str(self) -> &'static str {
                match self {
                    $( Self::$variant => $wire, )+
                }
            }
        }
    };
}

error_codes! {
    // ---- `error` frames (§3): the connection survives ----
    /// Not valid JSON/MessagePack, not an object, a field missing or of the wrong type.
    BadFrame = "bad_frame",
    /// `type` names no frame of the protocol.
    UnknownType = "unknown_type",
    /// The topic name breaks the naming rules.
    BadTopic = "bad_topic",
    /// The event name breaks the naming rules.
    BadEvent = "bad_event",
    /// The connection already has `max_subscriptions` topics.
    TooManySubscriptions = "too_many_subscriptions",
    /// `subscribe` for a topic the connection already has.
    AlreadySubscribed = "already_subscribed",
    /// `unsubscribe` for a topic the connection does not have.
    NotSubscribed = "not_subscribed",
    /// The namespace forbids client publishes, or the topic is reserved.
    PublishForbidden = "publish_forbidden",
    /// `history` with a position the log no longer holds.
    HistoryUnavailable = "history_unavailable",
    /// `history` with a `limit` out of range.
    BadLimit = "bad_limit",
    /// A frame this gateway understands but does not serve.
    Unsupported = "unsupported",
    /// The connection's token does not grant this operation on this topic
    /// (HTTP 403 on the API).
    Forbidden = "forbidden",

    // ---- `disconnect` frames (§3): the connection ends ----
    /// The gateway is stopping (reconnect).
    Shutdown = "shutdown",
    /// The connection's outbound queue overflowed (reconnect).
    SlowConsumer = "slow_consumer",
    /// Nothing heard from the peer within the idle timeout (reconnect); a
    /// client's own watchdog reports the same code.
    HeartbeatTimeout = "heartbeat_timeout",
    /// An incoming message over `max_frame_bytes` (final).
    FrameTooLarge = "frame_too_large",
    /// A protocol violation (final on the gateway's side); a client reports
    /// the same code for a frame from the gateway it cannot accept.
    ProtocolError = "protocol_error",
    /// A binary message on a JSON connection, or text on a MessagePack one (final).
    UnsupportedData = "unsupported_data",
    /// A WebTransport client opened a stream the protocol does not allow (final).
    StreamNotAllowed = "stream_not_allowed",
    /// Compressed data from the peer that does not inflate (final).
    InvalidPayload = "invalid_payload",
    /// The connection's token expired before a `refresh` replaced it
    /// (reconnect with a new token).
    TokenExpired = "token_expired",

    // ---- HTTP error bodies (§4, §5) ----
    /// A malformed HTTP request (body, query, `msg_id`).
    BadRequest = "bad_request",
    /// A cursor the gateway cannot parse (SSE `since`, long-poll `cursor`).
    BadCursor = "bad_cursor",
    /// The API key (or token) is missing or wrong.
    Unauthorized = "unauthorized",
    /// A publish body over the size limit.
    PayloadTooLarge = "payload_too_large",
    /// A publish body of a content type the gateway does not take.
    UnsupportedMediaType = "unsupported_media_type",
    /// No such endpoint (or WebTransport is off, for `/wt/cert-hash`).
    NotFound = "not_found",
    /// `/ws` without a WebSocket upgrade.
    UpgradeRequired = "upgrade_required",
    /// The broker could not be reached; the request had no effect and may be
    /// retried (HTTP 503; an `error` frame on bidirectional transports).
    Unavailable = "unavailable",

    // ---- reported by clients themselves (`docs/client.md`) ----
    /// A transport could not be opened.
    TransportFailed = "transport_failed",
    /// A transport did not open within the connect timeout.
    ConnectTimeout = "connect_timeout",
    /// The client was closed before the request was answered.
    Closed = "closed",
    /// A network error (the request may not have reached the gateway).
    Io = "io",
    /// No answer in time (the request may not have reached the gateway).
    Timeout = "timeout",
    /// An HTTP error answer that carried no code.
    HttpError = "http_error",
    /// A gateway URL that cannot be used.
    BadUrl = "bad_url",
    /// TLS settings that cannot be used (a CA file that does not load, a
    /// pinned hash that is not one).
    Tls = "tls",
    /// A request the client refused before sending (bad name, full queue).
    Invalid = "invalid",
    /// A payload that cannot be encoded (bindings converting app values).
    BadPayload = "bad_payload",
    /// A code this version does not know (sent by a newer gateway).
    Unknown = "unknown",
}

impl ErrorCode {
    /// Reads a code from the wire; one this version does not know is
    /// [`ErrorCode::Unknown`] (never an error: codes may be added).
    pub fn from_wire(s: &str) -> Self {
        Self::ALL
            .iter()
            .copied()
            .find(|c| c.as_str() == s)
            .unwrap_or(Self::Unknown)
    }

    /// Reads a code and its message from the wire. A code this version does
    /// not know becomes [`ErrorCode::Unknown`] and keeps its name in the
    /// message, so nothing the gateway said is lost.
    pub fn from_wire_with_message(code: &str, message: String) -> (Self, String) {
        match Self::from_wire(code) {
            Self::Unknown => (Self::Unknown, format!("{message} (code {code:?})")),
            known => (known, message),
        }
    }

    /// For the codes of `disconnect` frames: whether the client should
    /// reconnect (`docs/protocol.md` §3). `None` for other codes.
    pub fn reconnect(self) -> Option<bool> {
        match self {
            Self::Shutdown | Self::SlowConsumer | Self::HeartbeatTimeout | Self::TokenExpired => {
                Some(true)
            }
            Self::FrameTooLarge
            | Self::ProtocolError
            | Self::UnsupportedData
            | Self::StreamNotAllowed
            | Self::InvalidPayload => Some(false),
            _ => None,
        }
    }

    /// For the codes of `disconnect` frames: the WebSocket close code (also
    /// the WebTransport session error code) that goes with it.
    pub fn close_code(self) -> Option<u16> {
        Some(match self {
            Self::Shutdown => 1001,
            Self::SlowConsumer => 4001,
            Self::HeartbeatTimeout => 4002,
            Self::FrameTooLarge => 1009,
            Self::ProtocolError => 1002,
            Self::UnsupportedData => 1003,
            Self::StreamNotAllowed => 4003,
            Self::InvalidPayload => 1007,
            Self::TokenExpired => 4004,
            _ => return None,
        })
    }

    /// The `disconnect` code a close code stands for (a WebSocket closed
    /// without a `disconnect` frame, say).
    pub fn from_close_code(code: u16) -> Option<Self> {
        Self::ALL
            .iter()
            .copied()
            .find(|c| c.close_code() == Some(code))
    }
}

impl PartialEq<str> for ErrorCode {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<&str> for ErrorCode {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl serde::Serialize for ErrorCode {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> serde::Deserialize<'de> for ErrorCode {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Ok(Self::from_wire(&s))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_reads_back_from_its_wire_form() {
        for code in ErrorCode::ALL {
            assert_eq!(ErrorCode::from_wire(code.as_str()), *code);
        }
        let mut wire: Vec<&str> = ErrorCode::ALL.iter().map(|c| c.as_str()).collect();
        wire.sort_unstable();
        wire.dedup();
        assert_eq!(wire.len(), ErrorCode::ALL.len(), "wire forms are unique");
        assert_eq!(ErrorCode::from_wire("from_the_future"), ErrorCode::Unknown);
        assert_eq!(ErrorCode::SlowConsumer, "slow_consumer");
        assert_ne!(ErrorCode::SlowConsumer, "shutdown");
        let json = serde_json::to_string(&ErrorCode::SlowConsumer).unwrap();
        assert_eq!(json, "\"slow_consumer\"");
        assert_eq!(
            serde_json::from_str::<ErrorCode>(&json).unwrap(),
            ErrorCode::SlowConsumer
        );
    }

    #[test]
    fn disconnect_codes_carry_their_advice_and_close_code() {
        // docs/protocol.md §3, row by row.
        let table = [
            ("shutdown", true, 1001),
            ("slow_consumer", true, 4001),
            ("heartbeat_timeout", true, 4002),
            ("frame_too_large", false, 1009),
            ("protocol_error", false, 1002),
            ("unsupported_data", false, 1003),
            ("stream_not_allowed", false, 4003),
            ("invalid_payload", false, 1007),
            ("token_expired", true, 4004),
        ];
        for (wire, reconnect, close) in table {
            let code = ErrorCode::from_wire(wire);
            assert_eq!(code.reconnect(), Some(reconnect), "{wire}");
            assert_eq!(code.close_code(), Some(close), "{wire}");
            assert_eq!(ErrorCode::from_close_code(close), Some(code));
        }
        assert_eq!(ErrorCode::BadFrame.reconnect(), None);
        assert_eq!(ErrorCode::from_close_code(1000), None);
    }
}
