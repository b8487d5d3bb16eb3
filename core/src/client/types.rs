//! What goes in and out of the client engine.

use std::fmt;

use super::backoff::Backoff;
use super::request::{Open, Request};
use crate::codec::Encoding;
use crate::error::ErrorCode;
use crate::payload::Payload;
use crate::protocol::{Position, Publication};

/// The transports, best first in the default order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TransportKind {
    /// WebTransport (HTTP/3).
    WebTransport,
    /// WebSocket.
    WebSocket,
    /// Server-Sent Events (receive) plus HTTP publish.
    Sse,
    /// HTTP long-poll (receive) plus HTTP publish.
    LongPoll,
}

impl TransportKind {
    /// Short name: `wt`, `ws`, `sse`, `poll`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::WebTransport => "wt",
            Self::WebSocket => "ws",
            Self::Sse => "sse",
            Self::LongPoll => "poll",
        }
    }

    /// Parses a short name.
    pub fn parse(s: &str) -> Option<Self> {
        [
            Self::WebTransport,
            Self::WebSocket,
            Self::Sse,
            Self::LongPoll,
        ]
        .into_iter()
        .find(|t| t.as_str() == s)
    }

    /// Whether frames flow both ways on it (otherwise publishes go over HTTP
    /// and subscriptions are part of the request).
    pub fn bidirectional(self) -> bool {
        matches!(self, Self::WebTransport | Self::WebSocket)
    }
}

impl fmt::Display for TransportKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Connection states.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum State {
    /// Not started.
    Disconnected,
    /// First connection attempt(s).
    Connecting,
    /// A transport is up and the gateway said `connected`.
    Connected,
    /// Lost a connection; retrying with backoff.
    Reconnecting,
    /// Stopped for good (by the app, or by the gateway with `reconnect: false`).
    Closed,
}

impl State {
    /// Lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Disconnected => "disconnected",
            Self::Connecting => "connecting",
            Self::Connected => "connected",
            Self::Reconnecting => "reconnecting",
            Self::Closed => "closed",
        }
    }
}

/// Why the state changed.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Reason {
    /// The app asked to connect.
    AppConnect,
    /// The app closed the client.
    AppClose,
    /// A transport opened and the gateway greeted.
    Opened(TransportKind),
    /// A transport could not be opened.
    TransportFailed {
        /// Which.
        transport: TransportKind,
        /// What the driver said.
        error: String,
    },
    /// An open connection broke.
    ConnectionLost {
        /// Which.
        transport: TransportKind,
        /// What the driver said.
        error: String,
    },
    /// The gateway sent `disconnect`.
    ServerDisconnect {
        /// Its code.
        code: ErrorCode,
        /// Its reason.
        reason: String,
        /// Its advice.
        reconnect: bool,
    },
    /// No traffic for longer than the heartbeat plus the margin.
    HeartbeatTimeout(TransportKind),
    /// Opening took longer than the connect timeout.
    ConnectTimeout(TransportKind),
    /// The gateway sent something the client cannot accept.
    ProtocolError(String),
    /// Leaving a fallback transport to try a better one.
    UpgradeProbe {
        /// The transport left.
        from: TransportKind,
    },
    /// Reopening a one-way transport to change its topics.
    Resubscribe,
}

impl Reason {
    /// The transport the change is about, if one is.
    pub fn transport(&self) -> Option<TransportKind> {
        match self {
            Self::Opened(t) | Self::HeartbeatTimeout(t) | Self::ConnectTimeout(t) => Some(*t),
            Self::TransportFailed { transport, .. } | Self::ConnectionLost { transport, .. } => {
                Some(*transport)
            }
            Self::UpgradeProbe { from } => Some(*from),
            _ => None,
        }
    }

    /// A short machine-readable code: the error code for changes an error
    /// caused ([`Reason::error_code`]), else a name of its own.
    pub fn code(&self) -> &'static str {
        match self {
            Self::AppConnect => "app_connect",
            Self::AppClose => "app_close",
            Self::Opened(_) => "opened",
            Self::ConnectionLost { .. } => "connection_lost",
            Self::UpgradeProbe { .. } => "upgrade_probe",
            Self::Resubscribe => "resubscribe",
            Self::TransportFailed { .. }
            | Self::ServerDisconnect { .. }
            | Self::HeartbeatTimeout(_)
            | Self::ConnectTimeout(_)
            | Self::ProtocolError(_) => self.error_code().map_or("unknown", ErrorCode::as_str),
        }
    }

    /// The error code, when an error caused the change.
    pub fn error_code(&self) -> Option<ErrorCode> {
        match self {
            Self::TransportFailed { .. } => Some(ErrorCode::TransportFailed),
            Self::ServerDisconnect { code, .. } => Some(*code),
            Self::HeartbeatTimeout(_) => Some(ErrorCode::HeartbeatTimeout),
            Self::ConnectTimeout(_) => Some(ErrorCode::ConnectTimeout),
            Self::ProtocolError(_) => Some(ErrorCode::ProtocolError),
            _ => None,
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::AppConnect => f.write_str("connect requested"),
            Self::AppClose => f.write_str("closed by the application"),
            Self::Opened(t) => write!(f, "connected over {t}"),
            Self::TransportFailed { transport, error } => {
                write!(f, "{transport} failed to open: {error}")
            }
            Self::ConnectionLost { transport, error } => {
                write!(f, "{transport} connection lost: {error}")
            }
            Self::ServerDisconnect { code, reason, .. } => {
                write!(f, "gateway disconnected ({code}): {reason}")
            }
            Self::HeartbeatTimeout(t) => write!(f, "no traffic on {t} within the heartbeat window"),
            Self::ConnectTimeout(t) => write!(f, "{t} did not open in time"),
            Self::ProtocolError(m) => write!(f, "protocol error: {m}"),
            Self::UpgradeProbe { from } => write!(f, "leaving {from} to try a better transport"),
            Self::Resubscribe => f.write_str("reopening to change topics"),
        }
    }
}

/// What the app is told.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event {
    /// The state changed.
    State {
        /// Old state.
        from: State,
        /// New state.
        to: State,
        /// Why.
        reason: Reason,
    },
    /// A publication, each exactly once and in order per topic.
    Publication(Publication),
    /// A subscription is live for the first time.
    Subscribed {
        /// The topic.
        topic: String,
        /// Its position.
        position: Position,
    },
    /// After a reconnect: whether everything missed was replayed. `false`
    /// means publications were lost for this client: reload state.
    Recovered {
        /// The topic.
        topic: String,
        /// Whether nothing was lost.
        recovered: bool,
        /// The position the stream continues from.
        position: Position,
    },
    /// A publish was accepted.
    Published {
        /// The client's id for it.
        msg_id: String,
        /// The topic.
        topic: String,
        /// Its position.
        position: Position,
    },
    /// A publish was refused.
    PublishFailed {
        /// The client's id for it.
        msg_id: String,
        /// Error code.
        code: ErrorCode,
        /// Explanation.
        message: String,
    },
    /// A subscribe was refused; the subscription is dropped.
    SubscribeFailed {
        /// The topic.
        topic: String,
        /// Error code.
        code: ErrorCode,
        /// Explanation.
        message: String,
    },
    /// The connection token should be replaced (its life is four fifths
    /// gone, or the gateway ended the connection with `token_expired`):
    /// fetch one and hand it to [`super::Client::set_token`].
    TokenNeeded {
        /// Whether the gateway already refused the old one as expired.
        expired: bool,
    },
    /// Something the gateway sent was wrong, or an `error` frame answered no request.
    Error {
        /// Error code.
        code: ErrorCode,
        /// Explanation.
        message: String,
    },
}

/// What the driver must do.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Action {
    /// Open a transport as `open` says. Report the outcome with the same `conn`.
    Connect {
        /// Attempt id; events about it carry it back.
        conn: u64,
        /// Which transport.
        transport: TransportKind,
        /// Frame encoding (one-way transports always use JSON).
        encoding: Encoding,
        /// For one-way transports: the topics and positions the request names.
        subscriptions: Vec<(String, Option<Position>)>,
        /// The request, and how to read what comes back.
        open: Open,
    },
    /// Before a WebTransport attempt: perform this `GET /wt/cert-hash` and
    /// report its answer with `handle_discovery` (same `conn`); an
    /// `Action::Connect` for WebTransport follows when it can be used.
    Discover {
        /// Attempt id.
        conn: u64,
        /// The request.
        request: Request,
    },
    /// Send a frame on an open bidirectional transport.
    Send {
        /// The connection.
        conn: u64,
        /// The encoded frame.
        bytes: Vec<u8>,
    },
    /// Publish over HTTP (one-way transports): perform `request`, read the
    /// answer with [`super::classify_response`], report with
    /// `handle_http_publish`.
    HttpPublish {
        /// The client's id for it (also the gateway's dedupe key).
        msg_id: String,
        /// The topic.
        topic: String,
        /// Optional event name.
        event: Option<String>,
        /// The payload.
        data: Payload,
        /// `POST /api/publish/{topic}?msg_id=..`, with the API key.
        request: Request,
    },
    /// Close a connection (no further events are expected for it).
    Close {
        /// The connection.
        conn: u64,
    },
}

/// What a driver reports about a connection it opened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TransportEvent {
    /// The transport is open (WebSocket handshake done, SSE/poll answered 200).
    Opened,
    /// It could not be opened.
    Failed(String),
    /// It was open and is now closed.
    Closed(String),
}

/// Client settings.
///
/// `Debug` shows whether a token or API key is set, never its value, so a
/// logged configuration leaks no credential.
#[derive(Clone)]
pub struct ClientConfig {
    /// Transports to use, best first.
    pub transports: Vec<TransportKind>,
    /// Encoding on bidirectional transports.
    pub encoding: Encoding,
    /// Reconnect backoff.
    pub backoff: Backoff,
    /// Longest wait for a transport to open.
    pub connect_timeout_ms: u64,
    /// Extra silence tolerated past the gateway's heartbeat interval.
    pub heartbeat_margin_ms: u64,
    /// Heartbeat assumed for long-poll (its answers are its heartbeat).
    pub poll_timeout_ms: u64,
    /// How long a transport that failed to open is skipped.
    pub transport_retry_ms: u64,
    /// While on a fallback transport, how often to try the better ones again.
    pub upgrade_probe_ms: u64,
    /// Publishes kept while offline.
    pub offline_queue: usize,
    /// Sent as `Authorization: Bearer` on every connection.
    pub token: Option<String>,
    /// Sent as `Authorization: Bearer` with HTTP publishes.
    pub api_key: Option<String>,
}

impl fmt::Debug for ClientConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let redacted = |secret: &Option<String>| secret.as_ref().map(|_| "<redacted>");
        f.debug_struct("ClientConfig")
            .field("transports", &self.transports)
            .field("encoding", &self.encoding)
            .field("backoff", &self.backoff)
            .field("connect_timeout_ms", &self.connect_timeout_ms)
            .field("heartbeat_margin_ms", &self.heartbeat_margin_ms)
            .field("poll_timeout_ms", &self.poll_timeout_ms)
            .field("transport_retry_ms", &self.transport_retry_ms)
            .field("upgrade_probe_ms", &self.upgrade_probe_ms)
            .field("offline_queue", &self.offline_queue)
            .field("token", &redacted(&self.token))
            .field("api_key", &redacted(&self.api_key))
            .finish()
    }
}

impl Default for ClientConfig {
    fn default() -> Self {
        Self {
            transports: vec![
                TransportKind::WebTransport,
                TransportKind::WebSocket,
                TransportKind::Sse,
                TransportKind::LongPoll,
            ],
            encoding: Encoding::Msgpack,
            backoff: Backoff::default(),
            connect_timeout_ms: 10_000,
            heartbeat_margin_ms: 10_000,
            poll_timeout_ms: 25_000,
            transport_retry_ms: 30_000,
            upgrade_probe_ms: 60_000,
            offline_queue: 1000,
            token: None,
            api_key: None,
        }
    }
}

/// Why a command was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CommandError {
    /// The client is closed.
    #[error("the client is closed")]
    Closed,
    /// The offline queue is full.
    #[error("the offline publish queue is full ({0} publishes waiting)")]
    QueueFull(usize),
    /// A name breaks the protocol's rules.
    #[error("{0}")]
    BadName(String),
}
