//! Server-Sent Events `/sse`: one stream, several topics, resumable with the
//! browser's own `Last-Event-ID` (every publication's id is a cursor holding
//! the position of every topic of the stream).

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use bytes::{BufMut, Bytes, BytesMut};
use livegate_core::protocol::{Position, ServerFrame};
use livegate_core::Encoding;

use crate::close::CloseReason;
use crate::hub::{Outbound, Outbox, Receiver};
use crate::service::Connection;
use crate::stats::{ConnectionGuard, Transport};
use crate::transport::credentials;
use crate::transport::gzip::{accepts_gzip, GzipWriter};
use crate::transport::{parse_topic_query, ConnControl};
use crate::{wire, App};

/// How long a closing stream may take to deliver its last event before the
/// TCP connection is dropped.
const CLOSE_GRACE: Duration = Duration::from_secs(1);
/// Most queued items put in one chunk.
const BATCH: usize = 64;

/// `GET /sse?topic=a&topic=b[&since=CURSOR]`.
pub async fn handler(State(app): State<Arc<App>>, req: Request) -> Response {
    let last_event_id = req
        .headers()
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty())
        .map(str::to_owned);
    let query = match parse_topic_query(
        req.uri().query(),
        "since",
        last_event_id.as_deref(),
        app.config.max_subscriptions,
    ) {
        Ok(q) => q,
        Err(e) => return e.into_response(),
    };
    let tokens = credentials::http_tokens(req.headers(), req.uri().query());
    let identity = match credentials::authenticate(&app.service, &tokens) {
        Ok(identity) => identity,
        Err(e) => return e.into_response(),
    };
    let gzip = app
        .config
        .deflate()
        .filter(|_| accepts_gzip(req.headers()))
        .map(GzipWriter::new);
    let counted = app.service.count_connection(Transport::Sse);
    let (mut conn, rx) = app.service.open(identity);
    let mut positions = HashMap::new();
    for topic in &query.topics {
        let since = query.cursor.get(topic);
        if let Some(pos) = since {
            positions.insert(topic.clone(), pos.clone());
        }
        // A fresh connection's queue holds at most max_subscriptions items here.
        if let Err(e) = conn.subscribe(topic.clone(), since, None).await {
            return e.into_response();
        }
    }
    let mut first = BytesMut::new();
    first.put_slice(b"retry: 1000\n\n");
    event(
        &mut first,
        None,
        "connected",
        &wire::server_frame(Encoding::Json, &conn.connected_frame()),
    );
    let alive = Arc::new(());
    let last_poll = Arc::new(AtomicU64::new(crate::now_ms()));
    tokio::spawn(watchdog(
        Arc::downgrade(&alive),
        conn.outbox().clone(),
        last_poll.clone(),
        req.extensions().get::<Arc<ConnControl>>().cloned(),
        app.config.heartbeat(),
        app.config.idle_timeout_ms,
    ));
    let mut state = StreamState {
        conn,
        rx,
        topics: query.topics,
        positions,
        first: None,
        done: false,
        gzip,
        ping: tokio::time::interval_at(
            tokio::time::Instant::now() + app.config.heartbeat(),
            app.config.heartbeat(),
        ),
        last_poll,
        _alive: alive,
        _counted: counted,
    };
    state.write_subscriptions(&mut first);
    state.first = Some(state.encode_chunk(first));
    let gzip_on = state.gzip.is_some();
    let stream = futures_util::stream::unfold(state, |mut st| async move {
        let chunk = st.next_chunk().await?;
        Some((Ok::<_, Infallible>(chunk), st))
    });
    let mut res = Body::from_stream(stream).into_response();
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert(header::VARY, HeaderValue::from_static("accept-encoding"));
    if gzip_on {
        h.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
    }
    h.insert("x-accel-buffering", HeaderValue::from_static("no"));
    res
}

struct StreamState {
    /// Leaves every topic when the stream is dropped.
    conn: Connection,
    rx: Receiver,
    topics: Vec<String>,
    positions: HashMap<String, Position>,
    first: Option<Bytes>,
    done: bool,
    /// The stream's gzip member, when the client accepts gzip.
    gzip: Option<GzipWriter>,
    ping: tokio::time::Interval,
    last_poll: Arc<AtomicU64>,
    _alive: Arc<()>,
    _counted: ConnectionGuard,
}

impl StreamState {
    async fn next_chunk(&mut self) -> Option<Bytes> {
        if let Some(first) = self.first.take() {
            return Some(first);
        }
        if self.done {
            // The gzip trailer, once, after the last event.
            return self.gzip.take().map(|mut gz| gz.finish());
        }
        self.last_poll.store(crate::now_ms(), Ordering::Relaxed);
        let mut out = BytesMut::new();
        tokio::select! {
            biased;
            reason = self.conn.outbox().closed() => {
                self.done = true;
                if !reason.announced() {
                    return None;
                }
                if reason == CloseReason::Shutdown {
                    // What was accepted before the shutdown still reaches the client.
                    while let Some(item) = self.rx.try_recv() {
                        self.write_item(&mut out, item);
                    }
                }
                let frame = wire::server_frame(Encoding::Json, &reason.disconnect_frame());
                event(&mut out, None, "disconnect", &frame);
            }
            item = self.rx.recv() => {
                self.write_item(&mut out, item);
                for _ in 1..BATCH {
                    match self.rx.try_recv() {
                        Some(item) => self.write_item(&mut out, item),
                        None => break,
                    }
                }
            }
            _ = self.ping.tick() => out.put_slice(b": ping\n\n"),
        }
        Some(self.encode_chunk(out))
    }

    /// The chunk as sent: as it is, or what remains of it after the shared
    /// segments `write_item` already gave the gzip member, deflated.
    fn encode_chunk(&mut self, plain: BytesMut) -> Bytes {
        match &mut self.gzip {
            None => plain.freeze(),
            Some(gz) => {
                gz.segment(&plain);
                gz.take()
            }
        }
    }

    /// The answers to the stream's subscriptions, queued by the handler: every
    /// `subscribed` first (docs/protocol.md §4.2), then the replays and any
    /// publication that arrived meanwhile, in queue order.
    fn write_subscriptions(&mut self, out: &mut BytesMut) {
        let mut queued = Vec::new();
        while let Some(item) = self.rx.try_recv() {
            queued.push(item);
        }
        let mut rest = Vec::with_capacity(queued.len());
        for item in queued {
            match item {
                Outbound::Subscribed(mut s) => {
                    let replay = std::mem::take(&mut s.replay);
                    self.write_item(out, Outbound::Subscribed(s));
                    rest.extend(replay.into_iter().map(Outbound::Publication));
                }
                other => rest.push(other),
            }
        }
        for item in rest {
            self.write_item(out, item);
        }
    }

    /// Moves a topic's position to a publication, reusing what it holds:
    /// this runs for every delivery.
    fn advance(&mut self, p: &livegate_core::Publication) {
        match self.positions.get_mut(p.topic.as_str()) {
            Some(pos) => {
                if pos.epoch != p.epoch {
                    pos.epoch.clone_from(&p.epoch);
                }
                pos.offset = p.offset;
            }
            None => {
                self.positions.insert(p.topic.clone(), p.position());
            }
        }
    }

    /// Writes the stream's cursor (`docs/protocol.md` §4.4, the same text as
    /// `format_cursor`) straight into the chunk, without a string per event.
    fn write_cursor(&self, out: &mut BytesMut) {
        write_cursor(out, &self.topics, &self.positions);
    }

    fn write_item(&mut self, out: &mut BytesMut, item: Outbound) {
        match item {
            Outbound::Publication(p) => {
                self.advance(&p.publication);
                out.put_slice(b"id: ");
                self.write_cursor(out);
                out.put_u8(b'\n');
                let frame = p.frame(Encoding::Json);
                if let Some(gz) = &mut self.gzip {
                    let shared = p.deflated(Encoding::Json, gz.settings());
                    // The shared bytes are the frame alone: usable when it
                    // fits on one `data:` line.
                    if shared.deflated && memchr::memchr2(b'\n', b'\r', frame).is_none() {
                        out.put_slice(b"event: publication\ndata: ");
                        gz.segment(out);
                        out.clear();
                        gz.shared(shared.bytes, frame);
                        out.put_slice(b"\n\n");
                        return;
                    }
                }
                event(out, None, "publication", frame);
            }
            Outbound::Subscribed(s) => {
                if !s.recovered {
                    self.positions
                        .insert(s.topic.to_string(), s.position.clone());
                }
                event(out, None, "subscribed", &s.encode(Encoding::Json, false));
                for p in s.replay {
                    self.write_item(out, Outbound::Publication(p));
                }
            }
            other => {
                let bytes = other.encode(Encoding::Json);
                let kind = match &other {
                    Outbound::Frame(f) if matches!(**f, ServerFrame::Error { .. }) => "error",
                    _ => "message",
                };
                event(out, None, kind, &bytes);
            }
        }
    }
}

fn write_cursor(out: &mut BytesMut, topics: &[String], positions: &HashMap<String, Position>) {
    use std::fmt::Write as _;
    let mut first = true;
    for t in topics {
        let Some(p) = positions.get(t) else { continue };
        if !first {
            out.put_u8(b',');
        }
        first = false;
        // Writing into a BytesMut cannot fail.
        let _ = write!(out, "{t}:{}:{}", p.epoch, p.offset);
    }
}

/// Writes one SSE event. JSON has no raw newlines inside strings, so a
/// payload's line breaks are whitespace and may start new `data:` lines.
fn event(out: &mut BytesMut, id: Option<&str>, kind: &str, data: &[u8]) {
    if let Some(id) = id {
        out.put_slice(b"id: ");
        out.put_slice(id.as_bytes());
        out.put_u8(b'\n');
    }
    out.put_slice(b"event: ");
    out.put_slice(kind.as_bytes());
    out.put_slice(b"\ndata: ");
    // Whole runs between line breaks, found with memchr (SIMD), not byte by
    // byte: this runs per subscriber, and frames rarely hold a line break.
    out.reserve(data.len() + 2);
    let mut rest = data;
    while let Some(i) = memchr::memchr2(b'\n', b'\r', rest) {
        out.put_slice(&rest[..i]);
        out.put_slice(b"\ndata: ");
        rest = &rest[i + 1..];
    }
    out.put_slice(rest);
    out.put_slice(b"\n\n");
}

/// Closes a stream whose writes stay blocked past the idle timeout, and
/// drops the TCP connection of a closing stream that cannot deliver its last
/// event: hyper stops polling a body it cannot write, so the stream itself
/// would never notice.
async fn watchdog(
    alive: Weak<()>,
    conn: Arc<Outbox>,
    last_poll: Arc<AtomicU64>,
    control: Option<Arc<ConnControl>>,
    heartbeat: Duration,
    idle_timeout_ms: u64,
) {
    let tick = heartbeat.min(Duration::from_millis(250));
    loop {
        tokio::time::sleep(tick).await;
        if alive.strong_count() == 0 {
            return;
        }
        let stalled = crate::now_ms().saturating_sub(last_poll.load(Ordering::Relaxed));
        if stalled > idle_timeout_ms {
            conn.close(CloseReason::HeartbeatTimeout);
        }
        if conn.close_reason().is_some() {
            tokio::time::sleep(CLOSE_GRACE).await;
            if alive.strong_count() > 0 {
                if let Some(c) = &control {
                    c.abort();
                }
            }
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursor_written_in_place_matches_the_core_format() {
        let topics = vec!["a".to_owned(), "b.c".to_owned(), "missing".to_owned()];
        let mut positions = HashMap::new();
        positions.insert(
            "a".to_owned(),
            Position {
                epoch: "e1".into(),
                offset: 7,
            },
        );
        positions.insert(
            "b.c".to_owned(),
            Position {
                epoch: "e2".into(),
                offset: 0,
            },
        );
        let mut out = BytesMut::new();
        write_cursor(&mut out, &topics, &positions);
        let expected = livegate_core::cursor::format_cursor(
            topics
                .iter()
                .filter_map(|t| positions.get(t).map(|p| (t.as_str(), p))),
        );
        assert_eq!(&out[..], expected.as_bytes());
        assert_eq!(expected, "a:e1:7,b.c:e2:0");
    }

    #[test]
    fn every_line_break_starts_a_data_line() {
        let mut out = BytesMut::new();
        event(
            &mut out,
            Some("t:e:1"),
            "publication",
            b"{\"a\":\n1,\r\n\"b\":2}",
        );
        assert_eq!(
            &out[..],
            b"id: t:e:1\nevent: publication\ndata: {\"a\":\ndata: 1,\ndata: \ndata: \"b\":2}\n\n"
        );
        let mut out = BytesMut::new();
        event(&mut out, None, "connected", b"{}");
        assert_eq!(&out[..], b"event: connected\ndata: {}\n\n");
    }
}
