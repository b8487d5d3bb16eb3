//! Why the gateway closes a connection, and how each transport says so.

use livegate_core::protocol::ServerFrame;

/// The reasons of `docs/protocol.md` §3 (disconnect codes), plus the peer
/// going away, which needs no announcement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum CloseReason {
    /// The peer closed or the connection broke.
    PeerGone = 1,
    /// The gateway is stopping.
    Shutdown,
    /// The outbound queue overflowed.
    SlowConsumer,
    /// The peer was silent (or a write stayed blocked) past the idle timeout.
    HeartbeatTimeout,
    /// An incoming message over `max_frame_bytes`.
    FrameTooLarge,
    /// A WebSocket protocol violation.
    ProtocolError,
    /// A binary message on a JSON connection or text on a MessagePack one.
    UnsupportedData,
    /// A WebTransport client opened a stream the protocol does not allow.
    StreamNotAllowed,
    /// Compressed data from the peer that does not inflate.
    InvalidPayload,
    /// The connection's token expired before a `refresh` replaced it.
    TokenExpired,
}

impl CloseReason {
    pub(crate) fn from_u8(v: u8) -> Option<Self> {
        Some(match v {
            1 => Self::PeerGone,
            2 => Self::Shutdown,
            3 => Self::SlowConsumer,
            4 => Self::HeartbeatTimeout,
            5 => Self::FrameTooLarge,
            6 => Self::ProtocolError,
            7 => Self::UnsupportedData,
            8 => Self::StreamNotAllowed,
            9 => Self::InvalidPayload,
            10 => Self::TokenExpired,
            _ => return None,
        })
    }

    /// The `disconnect` code.
    pub fn code(self) -> &'static str {
        match self {
            Self::PeerGone => "peer_gone",
            Self::Shutdown => "shutdown",
            Self::SlowConsumer => "slow_consumer",
            Self::HeartbeatTimeout => "heartbeat_timeout",
            Self::FrameTooLarge => "frame_too_large",
            Self::ProtocolError => "protocol_error",
            Self::UnsupportedData => "unsupported_data",
            Self::StreamNotAllowed => "stream_not_allowed",
            Self::InvalidPayload => "invalid_payload",
            Self::TokenExpired => "token_expired",
        }
    }

    /// Whether the client should reconnect.
    pub fn reconnect(self) -> bool {
        matches!(
            self,
            Self::PeerGone
                | Self::Shutdown
                | Self::SlowConsumer
                | Self::HeartbeatTimeout
                | Self::TokenExpired
        )
    }

    /// The WebSocket close code.
    pub fn ws_code(self) -> u16 {
        match self {
            Self::PeerGone => 1000,
            Self::Shutdown => 1001,
            Self::SlowConsumer => 4001,
            Self::HeartbeatTimeout => 4002,
            Self::FrameTooLarge => 1009,
            Self::ProtocolError => 1002,
            Self::UnsupportedData => 1003,
            Self::StreamNotAllowed => 4003,
            Self::InvalidPayload => 1007,
            Self::TokenExpired => 4004,
        }
    }

    /// A sentence for the `disconnect` frame's `reason`.
    pub fn explain(self) -> &'static str {
        match self {
            Self::PeerGone => "the peer closed the connection",
            Self::Shutdown => "the gateway is shutting down; reconnect and resume",
            Self::SlowConsumer => {
                "the connection fell behind and its outbound queue overflowed; reconnect and resume from your last position"
            }
            Self::HeartbeatTimeout => "nothing was received from the peer within the idle timeout",
            Self::FrameTooLarge => "a message exceeded max_frame_bytes",
            Self::ProtocolError => "the peer violated the WebSocket protocol",
            Self::UnsupportedData => {
                "binary messages need the livegate.v1.msgpack subprotocol, text messages livegate.v1.json"
            }
            Self::StreamNotAllowed => {
                "a WebTransport client opens exactly one bidirectional stream (the control stream) and no other"
            }
            Self::InvalidPayload => "a compressed message did not inflate (corrupt deflate data)",
            Self::TokenExpired => {
                "the connection's token expired before a refresh frame replaced it; reconnect with a new token"
            }
        }
    }

    /// Whether the peer is told (a `disconnect` frame) before the close.
    pub fn announced(self) -> bool {
        self != Self::PeerGone
    }

    /// The `disconnect` frame announcing this close.
    pub fn disconnect_frame(self) -> ServerFrame {
        ServerFrame::Disconnect {
            code: self.code().to_owned(),
            reason: self.explain().to_owned(),
            reconnect: self.reconnect(),
        }
    }
}
