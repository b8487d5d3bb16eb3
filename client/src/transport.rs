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
    let stream = match open.endpoint.connect().await {
        Ok(s) => s,
        Err(e) => return open.report(TransportEvent::Failed(e.to_string())),
    };
    let mut ws = match tokio_tungstenite::client_async_with_config(req, stream, Some(config)).await
    {
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

/// A one-way transport with no topic has no stream to open: checks that the
/// gateway answers (`GET /health`), reports the outcome, then idles until
/// the engine closes it.
async fn probe(open: Open) {
    let req = match open.get(&open.endpoint.path("/health")) {
        Ok(r) => r,
        Err(e) => return open.report(TransportEvent::Failed(e)),
    };
    match http::request(&open.endpoint, req, 64 * 1024).await {
        Ok((status, _)) if status.is_success() => {
            open.report(TransportEvent::Opened);
            std::future::pending::<()>().await;
        }
        Ok((status, _)) => open.report(TransportEvent::Failed(format!(
            "the gateway's /health answered HTTP {status}"
        ))),
        Err(e) => open.report(TransportEvent::Failed(e.to_string())),
    }
}

/// Server-Sent Events: frames from the gateway only.
pub async fn sse(open: Open) {
    if open.subscriptions.is_empty() {
        return probe(open).await;
    }
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
    if open.subscriptions.is_empty() {
        return probe(open).await;
    }
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
            http::request(&open.endpoint, req, MAX_FRAME).await
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

/// WebTransport options of the native client.
#[derive(Debug, Clone, Default)]
pub struct WtOptions {
    /// Accept any certificate (development only).
    pub insecure: bool,
    /// Pin this SHA-256 (hex) instead of the one `/wt/cert-hash` serves.
    pub cert_hash: Option<String>,
}

#[derive(serde::Deserialize)]
struct WtInfo {
    url: String,
    hash: String,
}

/// Asks the gateway where WebTransport listens and which certificate it uses.
async fn discover(open: &Open) -> Result<WtInfo, String> {
    let req = open.get(&open.endpoint.path("/wt/cert-hash"))?;
    let (status, body) = http::request(&open.endpoint, req, 64 * 1024)
        .await
        .map_err(|e| e.to_string())?;
    if status != hyper::StatusCode::OK {
        return Err(format!(
            "WebTransport is not available (GET /wt/cert-hash answered {status})"
        ));
    }
    serde_json::from_slice(&body).map_err(|e| format!("bad /wt/cert-hash answer: {e}"))
}

/// WebTransport: a control stream both ways, a stream per topic and
/// datagrams from the gateway (`docs/protocol.md` §4.5).
pub async fn webtransport(
    open: Open,
    encoding: Encoding,
    mut outgoing: mpsc::UnboundedReceiver<Vec<u8>>,
    options: WtOptions,
) {
    use livegate_core::framing::{self, FrameReader, Item};
    use wtransport::tls::Sha256Digest;

    let info = match discover(&open).await {
        Ok(i) => i,
        Err(e) => return open.report(TransportEvent::Failed(e)),
    };
    let builder = wtransport::ClientConfig::builder().with_bind_default();
    let config = if options.insecure {
        builder.with_no_cert_validation().build()
    } else {
        let wanted = options.cert_hash.as_deref().unwrap_or(&info.hash);
        let Some(hash) = crate::tls::parse_sha256_hex(wanted) else {
            return open.report(TransportEvent::Failed(format!(
                "bad certificate hash {wanted:?}: expected 64 hex characters"
            )));
        };
        builder
            .with_server_certificate_hashes([Sha256Digest::new(hash)])
            .build()
    };
    let endpoint = match wtransport::Endpoint::client(config) {
        Ok(e) => e,
        Err(e) => return open.report(TransportEvent::Failed(e.to_string())),
    };
    let url = format!(
        "{}?encoding={}",
        info.url,
        match encoding {
            Encoding::Json => "json",
            Encoding::Msgpack => "msgpack",
        }
    );
    let conn = match endpoint.connect(url).await {
        Ok(c) => c,
        Err(e) => return open.report(TransportEvent::Failed(e.to_string())),
    };
    let opened = async { conn.open_bi().await.ok()?.await.ok() };
    let Some((mut send, mut recv)) = opened.await else {
        return open.report(TransportEvent::Failed(
            "could not open the control stream".into(),
        ));
    };
    open.report(TransportEvent::Opened);
    let mut readers = tokio::task::JoinSet::new();
    {
        let (conn, io, id) = (conn.clone(), open.io.clone(), open.conn);
        readers.spawn(async move {
            while let Ok(mut stream) = conn.accept_uni().await {
                let io = io.clone();
                tokio::spawn(async move {
                    let mut reader = FrameReader::new(MAX_FRAME);
                    let mut buf = vec![0u8; 16 * 1024];
                    while let Ok(Some(n)) = stream.read(&mut buf).await {
                        let Ok(items) = reader.push(&buf[..n]) else {
                            return;
                        };
                        for item in items {
                            if let Item::Frame(f) = item {
                                let _ = io.send(Io::Frame(id, Bytes::from(f)));
                            }
                        }
                    }
                });
            }
        });
    }
    {
        let (conn, io, id) = (conn.clone(), open.io.clone(), open.conn);
        readers.spawn(async move {
            while let Ok(d) = conn.receive_datagram().await {
                let _ = io.send(Io::Frame(id, d.payload()));
            }
        });
    }
    let mut reader = FrameReader::new(MAX_FRAME);
    let mut buf = vec![0u8; 16 * 1024];
    let reason = loop {
        tokio::select! {
            read = recv.read(&mut buf) => match read {
                Ok(Some(n)) => match reader.push(&buf[..n]) {
                    Ok(items) => {
                        for item in items {
                            let _ = open.io.send(match item {
                                Item::Frame(f) => Io::Frame(open.conn, Bytes::from(f)),
                                Item::Heartbeat => Io::Activity(open.conn),
                            });
                        }
                    }
                    Err(e) => break e.to_string(),
                },
                Ok(None) => break "the gateway ended the control stream".to_owned(),
                Err(e) => break e.to_string(),
            },
            out = outgoing.recv() => match out {
                Some(bytes) => {
                    if let Err(e) = send.write_all(&framing::frame(&bytes)).await {
                        break e.to_string();
                    }
                }
                None => {
                    conn.close(wtransport::VarInt::from_u32(1000), b"closed by the client");
                    return;
                }
            },
            e = conn.closed() => break e.to_string(),
        }
    };
    readers.abort_all();
    open.report(TransportEvent::Closed(reason));
}
