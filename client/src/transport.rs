//! The client's transports: each performs the request the engine built
//! (`livegate_core::client::Open`) and reports what it sees to the driver
//! as [`Io`] events; the engine and its parsers decide everything else.

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use http_body_util::BodyExt;
use livegate_core::client::{
    http_failure, Poller, Request, SseItem, SseParser, TransportEvent, MAX_FRAME,
};
use livegate_core::Encoding;
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
    /// The answer to a WebTransport discovery: status and body.
    Discovered(u64, u16, Bytes),
}

/// One connection's way back to the driver.
pub struct Link {
    /// The engine's id for the connection.
    pub conn: u64,
    /// Where the gateway is.
    pub endpoint: Endpoint,
    /// Where reports go.
    pub io: mpsc::UnboundedSender<Io>,
}

impl Link {
    fn report(&self, e: TransportEvent) {
        let _ = self.io.send(Io::Transport(self.conn, e));
    }

    fn failed(&self, why: impl Into<String>) {
        self.report(TransportEvent::Failed(why.into()));
    }

    fn frame(&self, bytes: Bytes) {
        let _ = self.io.send(Io::Frame(self.conn, bytes));
    }

    fn activity(&self) {
        let _ = self.io.send(Io::Activity(self.conn));
    }

    /// Sends a request and reads the whole (bounded) answer.
    async fn fetch(&self, request: &Request, limit: usize) -> Result<(u16, Bytes), String> {
        let req = http::build(&self.endpoint, request)?;
        let (status, body) = http::request(&self.endpoint, req, limit)
            .await
            .map_err(|e| e.to_string())?;
        Ok((status.as_u16(), body))
    }
}

/// WebSocket: frames both ways.
pub async fn websocket(
    link: Link,
    request: Request,
    encoding: Encoding,
    mut outgoing: mpsc::UnboundedReceiver<Vec<u8>>,
) {
    let mut req = match link
        .endpoint
        .ws_url_for(&request.path_and_query())
        .into_client_request()
    {
        Ok(r) => r,
        Err(e) => return link.failed(e.to_string()),
    };
    let extra = request
        .subprotocol
        .map(|p| ("sec-websocket-protocol".to_owned(), p.to_owned()));
    for (name, value) in request.headers.iter().cloned().chain(extra) {
        match (
            hyper::header::HeaderName::try_from(name),
            hyper::header::HeaderValue::try_from(value),
        ) {
            (Ok(n), Ok(v)) => {
                req.headers_mut().insert(n, v);
            }
            _ => return link.failed("a request header is not valid"),
        }
    }
    let config = tokio_tungstenite::tungstenite::protocol::WebSocketConfig::default()
        .read_buffer_size(4096)
        .max_message_size(Some(MAX_FRAME))
        .max_frame_size(Some(MAX_FRAME));
    let stream = match link.endpoint.connect().await {
        Ok(s) => s,
        Err(e) => return link.failed(e.to_string()),
    };
    let mut ws = match tokio_tungstenite::client_async_with_config(req, stream, Some(config)).await
    {
        Ok((ws, _)) => ws,
        Err(e) => return link.failed(e.to_string()),
    };
    link.report(TransportEvent::Opened);
    let reason = loop {
        tokio::select! {
            msg = ws.next() => match msg {
                Some(Ok(Message::Text(t))) => link.frame(Bytes::copy_from_slice(t.as_bytes())),
                Some(Ok(Message::Binary(b))) => link.frame(b),
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => link.activity(),
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
    link.report(TransportEvent::Closed(reason));
}

/// A one-way transport with no topic: checks that the gateway answers,
/// reports the outcome, then idles until the engine closes it.
pub async fn check(link: Link, request: Request) {
    match link.fetch(&request, 64 * 1024).await {
        Ok((status, _)) if (200..300).contains(&status) => {
            link.report(TransportEvent::Opened);
            std::future::pending::<()>().await;
        }
        Ok((status, body)) => link.failed(format!(
            "the gateway's /health answered {}",
            http_failure(status, &body)
        )),
        Err(e) => link.failed(e),
    }
}

/// Server-Sent Events: frames from the gateway only.
pub async fn sse(link: Link, request: Request) {
    let res = match http::build(&link.endpoint, &request) {
        Ok(req) => http::send(&link.endpoint, req).await,
        Err(e) => return link.failed(e),
    };
    let res = match res {
        Ok(r) => r,
        Err(e) => return link.failed(e.to_string()),
    };
    let status = res.status().as_u16();
    if status != 200 {
        let body = http::body_bytes(res, 4096).await.unwrap_or_default();
        return link.failed(http_failure(status, &body));
    }
    link.report(TransportEvent::Opened);
    let mut body = res.into_body();
    let mut parser = SseParser::new(MAX_FRAME);
    let reason = loop {
        match body.frame().await {
            Some(Ok(frame)) => {
                let Ok(chunk) = frame.into_data() else {
                    continue;
                };
                match parser.push(&chunk) {
                    Ok(items) => {
                        for item in items {
                            match item {
                                SseItem::Event(e) => link.frame(Bytes::from(e.data)),
                                SseItem::Comment => link.activity(),
                                SseItem::Retry(_) => {}
                            }
                        }
                    }
                    Err(e) => break e.to_string(),
                }
            }
            Some(Err(e)) => break e.to_string(),
            None => break "the event stream ended".to_owned(),
        }
    };
    link.report(TransportEvent::Closed(reason));
}

/// Long-poll: one request after the other, as the [`Poller`] says.
pub async fn poll(link: Link, mut poller: Poller) {
    loop {
        let request = poller.next_request();
        let timeout = std::time::Duration::from_millis(poller.request_timeout_ms());
        let answer = match tokio::time::timeout(timeout, link.fetch(&request, MAX_FRAME)).await {
            Ok(Ok(answer)) => answer,
            Ok(Err(e)) => return fail(&link, &poller, e),
            Err(_) => return fail(&link, &poller, "the poll request timed out".into()),
        };
        let first = !poller.answered();
        let (status, body) = answer;
        let frames = match poller.handle_answer(status, &body) {
            Ok(answer) => answer,
            Err(e) => return fail(&link, &poller, e),
        };
        if first {
            link.report(TransportEvent::Opened);
        }
        link.activity();
        for f in frames.frames() {
            link.frame(body.slice_ref(f));
        }
        if link.io.is_closed() {
            return;
        }
    }
}

fn fail(link: &Link, poller: &Poller, why: String) {
    link.report(if poller.answered() {
        TransportEvent::Closed(why)
    } else {
        TransportEvent::Failed(why)
    });
}

/// `GET /wt/cert-hash`: the answer goes to the engine, which decides.
pub async fn discover(link: Link, request: Request) {
    match link.fetch(&request, 64 * 1024).await {
        Ok((status, body)) => {
            let _ = link.io.send(Io::Discovered(link.conn, status, body));
        }
        Err(e) => link.failed(e),
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

/// WebTransport: a control stream both ways, a stream per topic and
/// datagrams from the gateway (`docs/protocol.md` §4.5).
pub async fn webtransport(
    link: Link,
    request: Request,
    announced: [u8; 32],
    mut outgoing: mpsc::UnboundedReceiver<Vec<u8>>,
    options: WtOptions,
) {
    use livegate_core::client::parse_cert_hash;
    use livegate_core::framing::{self, FrameReader, Item};
    use wtransport::tls::Sha256Digest;

    let builder = wtransport::ClientConfig::builder().with_bind_default();
    let config = if options.insecure {
        builder.with_no_cert_validation().build()
    } else {
        let hash = match &options.cert_hash {
            Some(wanted) => match parse_cert_hash(wanted) {
                Some(h) => h,
                None => {
                    return link.failed(format!(
                        "bad certificate hash {wanted:?}: expected 64 hex characters"
                    ))
                }
            },
            None => announced,
        };
        builder
            .with_server_certificate_hashes([Sha256Digest::new(hash)])
            .build()
    };
    let endpoint = match wtransport::Endpoint::client(config) {
        Ok(e) => e,
        Err(e) => return link.failed(e.to_string()),
    };
    let conn = match endpoint.connect(request.path_and_query()).await {
        Ok(c) => c,
        Err(e) => return link.failed(e.to_string()),
    };
    let opened = async { conn.open_bi().await.ok()?.await.ok() };
    let Some((mut send, mut recv)) = opened.await else {
        return link.failed("could not open the control stream");
    };
    link.report(TransportEvent::Opened);
    let mut readers = tokio::task::JoinSet::new();
    {
        let (conn, io, id) = (conn.clone(), link.io.clone(), link.conn);
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
        let (conn, io, id) = (conn.clone(), link.io.clone(), link.conn);
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
                            match item {
                                Item::Frame(f) => link.frame(Bytes::from(f)),
                                Item::Heartbeat => link.activity(),
                            }
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
    link.report(TransportEvent::Closed(reason));
}
