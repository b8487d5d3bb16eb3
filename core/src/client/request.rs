//! The exact HTTP requests a driver performs, built by the engine: paths,
//! queries, headers and subprotocols of every transport
//! (`docs/protocol.md` §4, §5), so no driver writes them again.

use bytes::Bytes;

use crate::codec::Encoding;
use crate::cursor::format_cursor;
use crate::protocol::Position;

use super::poll::Poller;

/// An HTTP method.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// `GET`.
    Get,
    /// `POST`.
    Post,
}

impl Method {
    /// `GET` or `POST`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Get => "GET",
            Self::Post => "POST",
        }
    }
}

/// Where a request goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// A path below the gateway URL the driver was given (`/ws`, `/sse`):
    /// the driver puts its own base (scheme, host, path prefix) in front.
    Gateway(String),
    /// An absolute URL the gateway announced (the WebTransport endpoint).
    Url(String),
}

/// One request, complete but for the gateway's base URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// The method.
    pub method: Method,
    /// Where.
    pub target: Target,
    /// Query parameters, not yet percent-encoded, in order (a name may repeat).
    pub query: Vec<(String, String)>,
    /// Headers to send besides those the transport itself needs
    /// (`Host`, the WebSocket handshake's).
    pub headers: Vec<(String, String)>,
    /// The WebSocket subprotocol to offer.
    pub subprotocol: Option<&'static str>,
    /// The body (empty for `GET`).
    pub body: Bytes,
}

impl Request {
    /// A `GET` of a path below the gateway URL.
    pub fn get(path: &str) -> Self {
        Self {
            method: Method::Get,
            target: Target::Gateway(path.to_owned()),
            query: Vec::new(),
            headers: Vec::new(),
            subprotocol: None,
            body: Bytes::new(),
        }
    }

    /// Adds a query parameter.
    pub fn query(mut self, name: &str, value: impl Into<String>) -> Self {
        self.query.push((name.to_owned(), value.into()));
        self
    }

    /// Adds a header.
    pub fn header(mut self, name: &str, value: impl Into<String>) -> Self {
        self.headers.push((name.to_owned(), value.into()));
        self
    }

    /// Adds `Authorization: Bearer <token>` when there is a token.
    pub fn bearer(self, token: Option<&str>) -> Self {
        match token {
            Some(t) => self.header("authorization", format!("Bearer {t}")),
            None => self,
        }
    }

    /// The value of a query parameter (its first occurrence).
    pub fn query_value(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// Sets a query parameter: replaces its first occurrence or appends it.
    pub fn set_query(&mut self, name: &str, value: impl Into<String>) {
        let value = value.into();
        match self.query.iter_mut().find(|(n, _)| n == name) {
            Some(slot) => slot.1 = value,
            None => self.query.push((name.to_owned(), value)),
        }
    }

    /// Drops every occurrence of a query parameter.
    pub fn remove_query(&mut self, name: &str) {
        self.query.retain(|(n, _)| n != name);
    }

    /// The path (or URL) and the percent-encoded query: `/sse?topic=a&since=..`.
    pub fn path_and_query(&self) -> String {
        let mut out = match &self.target {
            Target::Gateway(path) | Target::Url(path) => path.clone(),
        };
        for (i, (name, value)) in self.query.iter().enumerate() {
            out.push(if i == 0 { '?' } else { '&' });
            out.extend(form_urlencoded::byte_serialize(name.as_bytes()));
            out.push('=');
            out.extend(form_urlencoded::byte_serialize(value.as_bytes()));
        }
        out
    }
}

/// How a driver opens the connection of an [`super::Action::Connect`], and
/// how it reads what comes back.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Open {
    /// Open a WebSocket with this request (its subprotocol names the
    /// encoding). Report `Opened` after the handshake; each message is one
    /// frame (`handle_frame`), Ping/Pong are activity.
    WebSocket(Request),
    /// `GET` an event stream. Report `Opened` on HTTP 200 (anything else:
    /// `Failed` with [`http_failure`]); feed the body to an
    /// [`super::SseParser`]: each event's data is a frame, each comment
    /// activity.
    EventStream(Request),
    /// Poll in a loop: perform [`Poller::next_request`], give each answer to
    /// [`Poller::handle_answer`]. Report `Opened` after the first answer,
    /// then per answer one activity and its frames.
    LongPoll(Poller),
    /// A one-way transport with no topic has no stream to open: `GET` this
    /// (`/health`), report `Opened` on HTTP 2xx, then read nothing more.
    Check(Request),
    /// Open a WebTransport session at the request's URL, pinning the
    /// certificate whose SHA-256 is `cert_hash` (as announced by
    /// `/wt/cert-hash`), then one bidirectional control stream: `Opened`
    /// once it is open; frames on it and on the gateway's unidirectional
    /// streams are length-prefixed (`crate::framing`), datagrams are one
    /// frame each.
    WebTransport {
        /// `https://HOST:PORT/wt?encoding=..`.
        request: Request,
        /// The certificate's SHA-256.
        cert_hash: [u8; 32],
    },
}

impl Open {
    /// The request (the first one, for long-poll).
    pub fn request(&self) -> Request {
        match self {
            Self::WebSocket(r) | Self::EventStream(r) | Self::Check(r) => r.clone(),
            Self::WebTransport { request, .. } => request.clone(),
            Self::LongPoll(p) => p.next_request(),
        }
    }
}

/// `GET /ws`, offering the encoding's subprotocol.
pub(super) fn websocket(encoding: Encoding, token: Option<&str>) -> Request {
    let mut r = Request::get("/ws").bearer(token);
    r.subprotocol = Some(encoding.subprotocol());
    r
}

/// `GET /sse?topic=..&since=CURSOR`.
pub(super) fn event_stream(subs: &[(String, Option<Position>)], token: Option<&str>) -> Request {
    with_topics(Request::get("/sse"), subs, "since").bearer(token)
}

/// `GET /poll?topic=..&cursor=CURSOR` (the [`Poller`] adds `timeout_ms`).
pub(super) fn long_poll(subs: &[(String, Option<Position>)], token: Option<&str>) -> Request {
    with_topics(Request::get("/poll"), subs, "cursor").bearer(token)
}

/// `GET /health`: does the gateway answer?
pub(super) fn check(token: Option<&str>) -> Request {
    Request::get("/health").bearer(token)
}

/// `GET /wt/cert-hash`: where WebTransport listens, and its certificate.
pub(super) fn cert_hash(token: Option<&str>) -> Request {
    Request::get("/wt/cert-hash").bearer(token)
}

/// The WebTransport session request at the announced URL. The token goes
/// in the query: browsers' WebTransport cannot set headers either
/// (`docs/protocol.md` §8).
pub(super) fn webtransport(url: &str, encoding: Encoding, token: Option<&str>) -> Request {
    let mut r = Request::get("/wt").query(
        "encoding",
        match encoding {
            Encoding::Json => "json",
            Encoding::Msgpack => "msgpack",
        },
    );
    if let Some(t) = token {
        r = r.query("token", t);
    }
    r.target = Target::Url(url.to_owned());
    r
}

fn with_topics(mut r: Request, subs: &[(String, Option<Position>)], cursor_key: &str) -> Request {
    for (topic, _) in subs {
        r = r.query("topic", topic.clone());
    }
    let cursor = format_cursor(
        subs.iter()
            .filter_map(|(t, p)| p.as_ref().map(|p| (t.as_str(), p))),
    );
    if !cursor.is_empty() {
        r = r.query(cursor_key, cursor);
    }
    r
}

/// What a driver reports when a request was answered with an error status:
/// `HTTP 400: {"type":"error",...}` (the body cut at 4 KiB).
pub fn http_failure(status: u16, body: &[u8]) -> String {
    let body = &body[..body.len().min(4096)];
    format!("HTTP {status}: {}", String::from_utf8_lossy(body))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pos(epoch: &str, offset: u64) -> Option<Position> {
        Some(Position {
            epoch: epoch.into(),
            offset,
        })
    }

    #[test]
    fn one_way_requests_name_their_topics_and_cursor() {
        let subs = vec![
            ("a.b".to_string(), pos("e1", 4)),
            ("c d".to_string(), None),
            ("x/1".to_string(), pos("e2", 9)),
        ];
        let sse = event_stream(&subs, Some("tok"));
        assert_eq!(
            sse.path_and_query(),
            "/sse?topic=a.b&topic=c+d&topic=x%2F1&since=a.b%3Ae1%3A4%2Cx%2F1%3Ae2%3A9"
        );
        assert_eq!(
            sse.headers,
            vec![("authorization".to_string(), "Bearer tok".to_string())]
        );
        let poll = long_poll(&subs[1..2], None);
        assert_eq!(poll.path_and_query(), "/poll?topic=c+d");
        assert!(poll.headers.is_empty());
    }

    #[test]
    fn websocket_offers_the_encoding_as_subprotocol() {
        let r = websocket(Encoding::Msgpack, None);
        assert_eq!(r.path_and_query(), "/ws");
        assert_eq!(r.subprotocol, Some("livegate.v1.msgpack"));
        let wt = webtransport("https://127.0.0.1:4433/wt", Encoding::Json, None);
        assert_eq!(
            wt.path_and_query(),
            "https://127.0.0.1:4433/wt?encoding=json"
        );
        let wt = webtransport("https://127.0.0.1:4433/wt", Encoding::Json, Some("a.b.c"));
        assert_eq!(
            wt.path_and_query(),
            "https://127.0.0.1:4433/wt?encoding=json&token=a.b.c"
        );
    }

    #[test]
    fn query_can_be_replaced_and_removed() {
        let mut r = Request::get("/poll")
            .query("topic", "a")
            .query("cursor", "x");
        r.set_query("cursor", "y");
        r.set_query("timeout_ms", "0");
        assert_eq!(r.query_value("cursor"), Some("y"));
        r.remove_query("cursor");
        assert_eq!(r.path_and_query(), "/poll?topic=a&timeout_ms=0");
    }

    #[test]
    fn failures_quote_a_bounded_body() {
        assert_eq!(http_failure(404, b"nope"), "HTTP 404: nope");
        assert_eq!(
            http_failure(500, &[b'x'; 10_000]).len(),
            "HTTP 500: ".len() + 4096
        );
    }
}
