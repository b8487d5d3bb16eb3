//! What the engine wrapper keeps per connection to turn the bytes the page
//! moved into frames: the SSE parser, the long-poller, WebTransport's frame
//! readers. All of it is livegate-core's; this only holds it by `conn`.

use std::collections::HashMap;

use livegate_core::client::{Open, Poller, SseParser, TransportKind, MAX_FRAME};
use livegate_core::framing::FrameReader;

pub enum ConnIo {
    /// WebSocket messages are whole frames; nothing to keep.
    WebSocket,
    EventStream(SseParser),
    LongPoll(Poller),
    /// `/health` answered or not: nothing to read.
    Check,
    /// One reader per stream: 0 is the control stream, then each
    /// unidirectional stream the gateway opens.
    WebTransport(HashMap<u32, FrameReader>),
    /// `GET /wt/cert-hash` on its way.
    Discovering,
}

impl ConnIo {
    pub fn for_open(open: &Open) -> Self {
        match open {
            Open::WebSocket(_) => Self::WebSocket,
            Open::EventStream(_) => Self::EventStream(SseParser::new(MAX_FRAME)),
            Open::LongPoll(p) => Self::LongPoll(p.clone()),
            Open::Check(_) => Self::Check,
            _ => Self::WebTransport(HashMap::new()),
        }
    }

    /// What `Open` is called in the page.
    pub fn kind(open: &Open) -> &'static str {
        match open {
            Open::WebSocket(_) => "websocket",
            Open::EventStream(_) => "sse",
            Open::LongPoll(_) => "poll",
            Open::Check(_) => "check",
            _ => "webtransport",
        }
    }

    pub fn transport_frames_are_prefixed(&self) -> bool {
        matches!(self, Self::WebTransport(_))
    }
}

/// The transport named in the page's terms.
pub fn transport_name(t: TransportKind) -> &'static str {
    t.as_str()
}
