//! The client's transports: each opens one connection and reports what it
//! sees to the driver as [`Io`] events; the engine decides everything else.

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures_util::{SinkExt, StreamExt};
use http_body_util::{BodyExt, Full};
use hyper::Request;
use livegate_core::client::TransportEvent;
use livegate_core::cursor::format_cursor;
use livegate_core::protocol::Position;
use livegate_core::Encoding;
use serde_json::value::RawValue;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

use super::http::{self, Endpoint};

/// What a transport task reports.
#[derive(Debug)]
pub enum Io {
    /// Open/failed/closed.
    Transport(u64, TransportEvent),
    /// One frame's bytes.
    Frame(u64, Bytes),
    /// Traffic without a frame.
    Activity(u64),
}

/// Largest frame the client accepts from a gateway.
pub const MAX_FRAME: usize = 16 << 20;

/// What a transport needs to open.
pub struct Open {
    pub conn: u64,
    pub endpoint: Endpoint,
    pub token: Option<String>,
    pub subscriptions: Vec<(String, Option<Position>)>,
    pub io: mpsc::UnboundedSender<Io>,
    pub poll_timeout_ms: u64,
}

impl Open {
    fn report(&self, e: TransportEvent) {
        let _ = self.io.send(Io::Transport(self.conn, e));
    }

    fn query(&self, cursor_key: &str) -> String {
        let mut q: Vec<String> = self
            .subscriptions
            .iter()
            .map(|(t, _)| format!("topic={}", http::encode(t)))
            .collect();
        let cursor = format_cursor(
            self.subscriptions
                .iter()
                .filter_map(|(t, p)| p.as_ref().map(|p| (t.as_str(), p))),
        );
        if !cursor.is_empty() {
            q.push(format!("{cursor_key}={}", http::encode(&cursor)));
        }
        q.join("&")
    }

    fn get(&self, path_and_query: &str) -> Result<Request<Full<Bytes>>, String> {
        let mut b =
            Request::get(path_and_query).header(hyper::header::HOST, self.endpoint.authority());
        if let Some(t) = &self.token {
            b = b.header(hyper::header::AUTHORIZATION, format!("Bearer {t}"));
        }
        b.body(Full::new(Bytes::new())).map_err(|e| e.to_string())
    }
}

/// WebSocket: frames both ways.
pub async fn websocket(
    open: Open,
    encoding: Encoding,
    mut outgoing: mpsc::UnboundedReceiver<Vec<u8>>,
) {
    let mut req = match open.endpoint.ws_url().into_client_request() {
        Ok(r) => r,
        Err(e) => return open.report(TransportEvent::Failed(e.to_string())),
    };
    if let Ok(v) = encoding.subprotocol().parse() {
        req.headers_mut().insert("sec-websocket-protocol", v);
    }
    if let Some(Ok(v)) = open.token.as_ref().map(|t| format!("Bearer {t}").parse()) {
        req.headers_mut().insert("authorization", v);
    }
    let config = tokio_tungstenite::tungstenite::protocol::WebSocketConfig::default()
        .read_buffer_size(4096)
        .max_message_size(Some(MAX_FRAME))
        .max_frame_size(Some(MAX_FRAME));
    let mut ws = match tokio_tungstenite::connect_async_with_config(req, Some(config), true).await {
        Ok((ws, _)) => ws,
        Err(e) => return open.report(TransportEvent::Failed(e.to_string())),
    };
    open.report(TransportEvent::Opened);
    let reason = loop {
        tokio::select! {
            msg = ws.next() => match msg {
                Some(Ok(Message::Text(t))) => { let _ = open.io.send(Io::Frame(open.conn, Bytes::copy_from_slice(t.as_bytes()))); }
                Some(Ok(Message::Binary(b))) => { let _ = open.io.send(Io::Frame(open.conn, b)); }
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => { let _ = open.io.send(Io::Activity(open.conn)); }
                Some(Ok(Message::Close(c))) => break c.map_or("closed by the gateway".to_owned(), |c| format!("closed by the gateway ({} {})", u16::from(c.code), c.reason)),
                Some(Ok(Message::Frame(_))) => {}
                Some(Err(e)) => break e.to_string(),
                None => break "connection ended".to_owned(),
            },
            out = outgoing.recv() => match out {
                Some(bytes) => {
                    let msg = match encoding {
                        Encoding::Json => match String::from_utf8(bytes) {
                            Ok(s) => Message::text(s),
                            Err(_) => continue,
                        },
                        Encoding::Msgpack => Message::binary(bytes),
                    };
                    if let Err(e) = ws.send(msg).await {
                        break e.to_string();
                    }
                }
                // The driver closed this connection.
                None => { let _ = ws.close(None).await; return; }
            },
        }
    };
    open.report(TransportEvent::Closed(reason));
}

/// Server-Sent Events: frames from the gateway only.
pub async fn sse(open: Open) {
    let path = format!("{}?{}", open.endpoint.path("/sse"), open.query("since"));
    let req = match open.get(&path) {
        Ok(r) => r,
        Err(e) => return open.report(TransportEvent::Failed(e)),
    };
    let res = match http::send(&open.endpoint, req).await {
        Ok(r) => r,
        Err(e) => return open.report(TransportEvent::Failed(e.to_string())),
    };
    if res.status() != hyper::StatusCode::OK {
        let status = res.status();
        let body = http::body_bytes(res, 4096).await.unwrap_or_default();
        return open.report(TransportEvent::Failed(format!(
            "HTTP {status}: {}",
            String::from_utf8_lossy(&body)
        )));
    }
    open.report(TransportEvent::Opened);
    let mut body = res.into_body();
    let mut parser = SseParser::default();
    let reason = loop {
        match body.frame().await {
            Some(Ok(frame)) => {
                let Ok(chunk) = frame.into_data() else {
                    continue;
                };
                if parser.pending() + chunk.len() > MAX_FRAME {
                    break "an SSE event exceeded the size limit".to_owned();
                }
                for item in parser.push(&chunk) {
                    let _ = open.io.send(match item {
                        SseItem::Data(d) => Io::Frame(open.conn, d),
                        SseItem::Comment => Io::Activity(open.conn),
                    });
                }
            }
            Some(Err(e)) => break e.to_string(),
            None => break "the event stream ended".to_owned(),
        }
    };
    open.report(TransportEvent::Closed(reason));
}

/// Long-poll: one request after the other, each with the last cursor.
pub async fn poll(open: Open) {
    let topics: Vec<String> = open
        .subscriptions
        .iter()
        .map(|(t, _)| format!("topic={}", http::encode(t)))
        .collect();
    let mut cursor = format_cursor(
        open.subscriptions
            .iter()
            .filter_map(|(t, p)| p.as_ref().map(|p| (t.as_str(), p))),
    );
    let mut opened = false;
    // The gateway answers within timeout_ms; allow for a slow network on top.
    let request_timeout = Duration::from_millis(open.poll_timeout_ms + 10_000);
    loop {
        let mut q = topics.clone();
        if !cursor.is_empty() {
            q.push(format!("cursor={}", http::encode(&cursor)));
        }
        // The first request returns at once: the engine learns that the
        // transport works without waiting a whole poll (its connect timeout
        // may be shorter than that).
        let wait = if opened {
            open.poll_timeout_ms.min(60_000)
        } else {
            0
        };
        q.push(format!("timeout_ms={wait}"));
        let path = format!("{}?{}", open.endpoint.path("/poll"), q.join("&"));
        let result = tokio::time::timeout(request_timeout, async {
            let req = open.get(&path).map_err(super::ClientError::Io)?;
            let res = http::send(&open.endpoint, req).await?;
            let status = res.status();
            let body = http::body_bytes(res, MAX_FRAME).await?;
            Ok::<_, super::ClientError>((status, body))
        })
        .await;
        let (status, body) = match result {
            Ok(Ok(r)) => r,
            Ok(Err(e)) => return fail(&open, opened, e.to_string()),
            Err(_) => return fail(&open, opened, "the poll request timed out".into()),
        };
        if status != hyper::StatusCode::OK {
            return fail(
                &open,
                opened,
                format!("HTTP {status}: {}", String::from_utf8_lossy(&body)),
            );
        }
        #[derive(serde::Deserialize)]
        struct Answer<'a> {
            cursor: String,
            #[serde(borrow)]
            frames: Vec<&'a RawValue>,
        }
        let answer: Answer<'_> = match serde_json::from_slice(&body) {
            Ok(a) => a,
            Err(e) => return fail(&open, opened, format!("bad poll answer: {e}")),
        };
        if !opened {
            opened = true;
            open.report(TransportEvent::Opened);
        }
        let _ = open.io.send(Io::Activity(open.conn));
        for f in answer.frames {
            let _ = open.io.send(Io::Frame(
                open.conn,
                Bytes::copy_from_slice(f.get().as_bytes()),
            ));
        }
        cursor = answer.cursor;
        if open.io.is_closed() {
            return;
        }
    }
}

fn fail(open: &Open, opened: bool, why: String) {
    open.report(if opened {
        TransportEvent::Closed(why)
    } else {
        TransportEvent::Failed(why)
    });
}

/// What an SSE stream carries, for the engine.
#[derive(Debug, PartialEq, Eq)]
pub enum SseItem {
    /// An event's data (a frame).
    Data(Bytes),
    /// A comment line (the gateway's heartbeat).
    Comment,
}

/// Incremental `text/event-stream` parser (only what livegate sends needs
/// to be understood, but any valid stream is parsed correctly).
#[derive(Default)]
pub struct SseParser {
    buf: BytesMut,
    data: Vec<u8>,
    has_data: bool,
}

impl SseParser {
    /// Bytes held for an incomplete line or event.
    pub fn pending(&self) -> usize {
        self.buf.len() + self.data.len()
    }

    /// Feeds bytes; returns the complete items.
    pub fn push(&mut self, chunk: &[u8]) -> Vec<SseItem> {
        self.buf.extend_from_slice(chunk);
        let mut out = Vec::new();
        while let Some(end) = self.buf.iter().position(|b| *b == b'\n' || *b == b'\r') {
            // A CR that ends the buffer may be the first half of CRLF: wait.
            if self.buf[end] == b'\r' && end + 1 == self.buf.len() {
                break;
            }
            let line = self.buf.split_to(end);
            let skip = if self.buf.starts_with(b"\r\n") { 2 } else { 1 };
            let _ = self.buf.split_to(skip);
            self.line(&line, &mut out);
        }
        out
    }

    fn line(&mut self, line: &[u8], out: &mut Vec<SseItem>) {
        if line.is_empty() {
            if self.has_data {
                out.push(SseItem::Data(Bytes::from(std::mem::take(&mut self.data))));
                self.has_data = false;
            }
            return;
        }
        if line[0] == b':' {
            out.push(SseItem::Comment);
            return;
        }
        let (field, value) = match line.iter().position(|b| *b == b':') {
            Some(i) => {
                let v = &line[i + 1..];
                (&line[..i], v.strip_prefix(b" ").unwrap_or(v))
            }
            None => (line, &b""[..]),
        };
        if field == b"data" {
            if self.has_data {
                self.data.push(b'\n');
            }
            self.data.extend_from_slice(value);
            self.has_data = true;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sse_parser_handles_split_chunks_and_line_endings() {
        let mut p = SseParser::default();
        let mut items =
            p.push(b"retry: 1000\n\n: ping\n\nid: a\nevent: publication\ndata: {\"a\":");
        items.extend(p.push(b"1}\r\n\r"));
        items.extend(p.push(b"\ndata: x\ndata: y\n\n"));
        assert_eq!(
            items,
            vec![
                SseItem::Comment,
                SseItem::Data(Bytes::from_static(b"{\"a\":1}")),
                SseItem::Data(Bytes::from_static(b"x\ny")),
            ]
        );
        assert_eq!(p.pending(), 0);
    }
}
