//! The frames of `livegate.v1`, in both directions, as typed values.
//!
//! Encoding and decoding live in [`crate::codec`]; the field tables are in
//! `docs/protocol.md` §2.

use crate::payload::Payload;

/// The protocol version string, also the prefix of WebSocket subprotocols.
pub const PROTOCOL_VERSION: &str = "livegate.v1";

/// Where a client stands in a topic: the last publication it handled.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Position {
    /// The topic's history epoch the offset belongs to.
    pub epoch: String,
    /// Offset of the last publication handled; 0 for none.
    pub offset: u64,
}

/// One publication on a topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Publication {
    /// The topic it was published on.
    pub topic: String,
    /// The topic's epoch when it was published.
    pub epoch: String,
    /// Its offset in the topic (first is 1).
    pub offset: u64,
    /// Optional event name, such as `health_change`.
    pub event: Option<String>,
    /// The payload, carried verbatim.
    pub data: Payload,
    /// When the gateway accepted it, in milliseconds since the Unix epoch.
    pub time_ms: u64,
}

impl Publication {
    /// The position a client reaches by handling this publication.
    pub fn position(&self) -> Position {
        Position {
            epoch: self.epoch.clone(),
            offset: self.offset,
        }
    }
}

/// Frames a client sends.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ClientFrame {
    /// Start receiving a topic, replaying what was missed since `since`.
    Subscribe {
        /// Request id echoed in the answer.
        id: Option<u64>,
        /// The topic.
        topic: String,
        /// The last position handled, to resume from.
        since: Option<Position>,
    },
    /// Stop receiving a topic.
    Unsubscribe {
        /// Request id echoed in the answer.
        id: Option<u64>,
        /// The topic.
        topic: String,
    },
    /// Publish on a topic (where its namespace allows clients to).
    Publish {
        /// Request id echoed in the `ack`.
        id: Option<u64>,
        /// The topic.
        topic: String,
        /// Optional event name.
        event: Option<String>,
        /// The payload.
        data: Payload,
        /// Client-generated id; the gateway publishes a repeated id only once
        /// (within its dedupe window) and acks the first publication again.
        msg_id: Option<String>,
    },
    /// Read a topic's history without subscribing.
    History {
        /// Request id echoed in the answer.
        id: Option<u64>,
        /// The topic.
        topic: String,
        /// Read after this position; from the oldest kept when absent.
        since: Option<Position>,
        /// At most this many publications.
        limit: Option<u64>,
    },
    /// Ask for a `pong`.
    Ping {
        /// Request id echoed in the `pong`.
        id: Option<u64>,
    },
    /// Replace the connection's token.
    Refresh {
        /// The new token.
        token: String,
    },
}

impl ClientFrame {
    /// The request id, when the frame has one.
    pub fn id(&self) -> Option<u64> {
        match self {
            Self::Subscribe { id, .. }
            | Self::Unsubscribe { id, .. }
            | Self::Publish { id, .. }
            | Self::History { id, .. }
            | Self::Ping { id } => *id,
            Self::Refresh { .. } => None,
        }
    }
}

/// Frames the gateway sends.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ServerFrame {
    /// First frame of a connection.
    Connected {
        /// The gateway's name for this connection.
        client_id: String,
        /// How often the gateway sends heartbeats.
        heartbeat_ms: u64,
    },
    /// Answer to `subscribe`, with the publications missed since `since`.
    Subscribed {
        /// The request's id.
        id: Option<u64>,
        /// The topic.
        topic: String,
        /// The topic's current epoch.
        epoch: String,
        /// The topic's latest offset.
        offset: u64,
        /// Whether every publication since the requested position follows.
        recovered: bool,
        /// The missed publications, oldest first.
        publications: Vec<Publication>,
    },
    /// Answer to `unsubscribe`.
    Unsubscribed {
        /// The request's id.
        id: Option<u64>,
        /// The topic.
        topic: String,
    },
    /// A publication on a subscribed topic.
    Publication(Publication),
    /// Answer to `publish`.
    Ack {
        /// The request's id.
        id: Option<u64>,
        /// The topic.
        topic: String,
        /// The topic's epoch.
        epoch: String,
        /// The offset given to the publication.
        offset: u64,
    },
    /// Answer to `history`.
    History {
        /// The request's id.
        id: Option<u64>,
        /// The topic.
        topic: String,
        /// The topic's current epoch.
        epoch: String,
        /// The topic's latest offset.
        offset: u64,
        /// Publications, oldest first.
        publications: Vec<Publication>,
        /// Whether more publications follow the last one returned.
        more: bool,
    },
    /// Answer to `ping`.
    Pong {
        /// The request's id.
        id: Option<u64>,
    },
    /// A problem the connection survives.
    Error {
        /// The id of the request it answers, when known.
        id: Option<u64>,
        /// Machine-readable code (`docs/protocol.md` §3).
        code: String,
        /// Human-readable explanation.
        message: String,
    },
    /// The last frame before the gateway closes the connection.
    Disconnect {
        /// Machine-readable code (`docs/protocol.md` §3).
        code: String,
        /// Human-readable explanation.
        reason: String,
        /// Whether the client should reconnect and resume.
        reconnect: bool,
    },
}
