//! WebSocket `/ws`: the upgrade is done by hand on hyper so the stream is a
//! plain `tokio_tungstenite::WebSocketStream` (see `docs/architecture.md`).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures_util::{FutureExt, Sink, SinkExt, Stream};
use hyper_util::rt::TokioIo;
use livegate_core::Encoding;
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role, WebSocketConfig};
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::WebSocketStream;

use crate::close::CloseReason;
use crate::deflate::{deflate_once, DeflateSettings, InflateError};
use crate::error::{ErrorKind, ServiceError};
use crate::hub::{Event, Outbound, Receiver};
use crate::stats::Transport;
use crate::transport::credentials;
use crate::transport::session::Session;
use crate::transport::ws_deflate;
use crate::transport::ws_io::{Opcode, WsIo};
use crate::App;

/// Most queued items written before one flush.
const BATCH: usize = 64;
/// How long the last frames of a closing connection may take to write.
const CLOSE_GRACE: Duration = Duration::from_secs(2);

fn header_has_token(headers: &HeaderMap, name: header::HeaderName, token: &str) -> bool {
    headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case(token))
}

/// Picks the encoding from `Sec-WebSocket-Protocol`: the first livegate
/// subprotocol offered, JSON when none is offered.
fn negotiate(headers: &HeaderMap) -> Result<(Encoding, bool), ServiceError> {
    let offered: Vec<&str> = headers
        .get_all(header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|s| !s.is_empty() && !s.starts_with(credentials::SUBPROTOCOL_PREFIX))
        .collect();
    if offered.is_empty() {
        return Ok((Encoding::Json, false));
    }
    offered
        .iter()
        .find_map(|p| Encoding::from_subprotocol(p))
        .map(|e| (e, true))
        .ok_or_else(|| {
            ServiceError::bad_request(format!(
                "none of the offered subprotocols ({}) is supported; use livegate.v1.json or livegate.v1.msgpack",
                offered.join(", ")
            ))
        })
}

/// `GET /ws`: checks the handshake, answers 101 and runs the connection.
pub async fn upgrade(State(app): State<Arc<App>>, mut req: Request) -> Response {
    let headers = req.headers();
    if !header_has_token(headers, header::UPGRADE, "websocket")
        || !header_has_token(headers, header::CONNECTION, "upgrade")
    {
        return ServiceError::new(
            ErrorKind::UpgradeRequired,
            "this endpoint speaks WebSocket: send Connection: Upgrade and Upgrade: websocket",
        )
        .into_response();
    }
    if headers
        .get(header::SEC_WEBSOCKET_VERSION)
        .map(HeaderValue::as_bytes)
        != Some(b"13")
    {
        return ServiceError::bad_request("Sec-WebSocket-Version must be 13").into_response();
    }
    let Some(key) = headers.get(header::SEC_WEBSOCKET_KEY) else {
        return ServiceError::bad_request("Sec-WebSocket-Key is missing").into_response();
    };
    let accept = derive_accept_key(key.as_bytes());
    let (encoding, echo_protocol) = match negotiate(headers) {
        Ok(n) => n,
        Err(e) => return e.into_response(),
    };
    let tokens = credentials::http_tokens(headers, req.uri().query());
    let identity = match credentials::authenticate(&app.service, &tokens) {
        Ok(identity) => identity,
        Err(e) => return e.into_response(),
    };
    let deflate = app
        .config
        .deflate()
        .filter(|_| ws_deflate::accepts_offer(headers));
    let Some(on_upgrade) = req.extensions_mut().remove::<hyper::upgrade::OnUpgrade>() else {
        return ServiceError::bad_request("this connection cannot be upgraded").into_response();
    };
    tokio::spawn(async move {
        let upgraded = match on_upgrade.await {
            Ok(upgraded) => upgraded,
            Err(e) => return tracing::debug!(error = %e, "websocket upgrade failed"),
        };
        // `server.rs` serves every connection on a `TokioIo<TcpStream>`;
        // owning the socket itself lets `WsIo` wait for readiness before it
        // allocates a read buffer.
        let Ok(parts) = upgraded.downcast::<TokioIo<TcpStream>>() else {
            return tracing::error!("websocket upgrade on an unexpected socket type; dropped");
        };
        let mut io = WsIo::new(parts.io.into_inner(), parts.read_buf);
        if deflate.is_some() {
            io.inflate_inbound(app.config.max_frame_bytes);
        }
        // The connection gets a task of its own, sized for it alone; this
        // one (which also had to hold the upgrade) ends here.
        let codec = Codec {
            encoding,
            deflate: deflate.is_some(),
        };
        match run(app, io, codec, identity) {
            Some(connection) => drop(tokio::spawn(connection)),
            None => tracing::error!("could not set up the websocket stream; dropped"),
        }
    });
    let mut res = StatusCode::SWITCHING_PROTOCOLS.into_response();
    let h = res.headers_mut();
    h.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    if let Ok(v) = HeaderValue::from_str(&accept) {
        h.insert(header::SEC_WEBSOCKET_ACCEPT, v);
    }
    if deflate.is_some() {
        h.insert(
            header::SEC_WEBSOCKET_EXTENSIONS,
            HeaderValue::from_static(ws_deflate::RESPONSE),
        );
    }
    if echo_protocol {
        h.insert(
            header::SEC_WEBSOCKET_PROTOCOL,
            HeaderValue::from_static(encoding.subprotocol()),
        );
    }
    res
}

/// How a connection puts frames on the wire. Two bytes: every idle
/// connection's task holds it; the deflate settings stay in the config.
#[derive(Debug, Clone, Copy)]
struct Codec {
    encoding: Encoding,
    /// Whether permessage-deflate was negotiated.
    deflate: bool,
}

impl Codec {
    /// The deflate settings, when this connection compresses.
    fn settings(self, app: &App) -> Option<DeflateSettings> {
        if self.deflate {
            app.config.deflate()
        } else {
            None
        }
    }
}

/// The connection's task, or `None` if the stream could not be set up.
///
/// A plain function returning the future, with everything the connection
/// owns built before the `async` block: the block then keeps each value
/// once, where an `async fn` keeps its arguments and the locals made from
/// them side by side. Every idle connection pays for its task's size.
fn run(
    app: Arc<App>,
    io: WsIo,
    codec: Codec,
    identity: crate::service::Identity,
) -> Option<impl Future<Output = ()>> {
    let max = app.config.max_frame_bytes;
    let encoding = codec.encoding;
    // No buffers of tungstenite's own: `WsIo` reads on demand and queues
    // writes (see its module comment); buffers grow only when a message
    // needs it.
    let config = WebSocketConfig::default()
        .read_buffer_size(0)
        .write_buffer_size(0)
        .max_message_size(Some(max))
        .max_frame_size(Some(max));
    // It only wraps the socket, so it is ready at once.
    let mut ws = WebSocketStream::from_raw_socket(io, Role::Server, Some(config)).now_or_never()?;
    let counted = app.service.count_connection(Transport::Ws);
    let (conn, mut rx) = app.service.open(identity);
    // The first frame, written straight to the socket: nothing can be queued
    // before it, and an idle connection then never allocates a queue.
    let connected = crate::wire::server_frame(encoding, &conn.connected_frame());
    ws.get_mut().push_frame(opcode(encoding), connected);
    let mut session = Session::new(conn);
    Some(async move {
        let (reason, peer_closed) = serve(&mut ws, &mut rx, &mut session, codec, &app).await;
        // Boxed: the closing sequence is big and runs once, so it should not
        // make every idle connection's task bigger.
        Box::pin(finish(
            &mut ws,
            &mut rx,
            reason,
            peer_closed,
            codec.encoding,
            codec.settings(&app),
            app.config.idle_timeout(),
        ))
        .await;
        drop(ws);
        // Leaves every topic.
        drop(session);
        drop(counted);
    })
}

/// What the socket did.
enum IoEvent {
    /// The queued output was written.
    Flushed,
    /// Writing failed.
    WriteFailed,
    /// A message, an error, or the end of the stream.
    Read(Option<Result<Message, WsError>>),
}

/// Writes queued output and reads the next message, whichever can progress.
/// Reports `Flushed` only when `flushing` (the caller waits for it to take
/// the next batch). Reading is polled every time, so a busy outbound queue
/// never starves the client's messages.
///
/// `read_idle` says the last read ended in `Pending`: tungstenite then holds
/// no complete frame and `WsIo` no bytes, so unless the socket has become
/// readable, asking tungstenite again would only repeat that answer (a few
/// hundred instructions, twice per delivery on a quiet connection).
/// `WsIo::poll_read_ready` registers for readability in that case.
fn poll_io<'a>(
    ws: &'a mut WebSocketStream<WsIo>,
    flushing: bool,
    read_idle: &'a mut bool,
) -> impl Future<Output = IoEvent> + 'a {
    std::future::poll_fn(move |cx| {
        let mut flushed = false;
        if ws.get_ref().has_output() {
            match Pin::new(&mut *ws).poll_flush(cx) {
                Poll::Ready(Ok(())) => flushed = flushing,
                Poll::Pending => {}
                Poll::Ready(Err(_)) => return Poll::Ready(IoEvent::WriteFailed),
            }
        }
        let skip_read = *read_idle && ws.get_mut().poll_read_ready(cx).is_pending();
        let read = if skip_read {
            Poll::Pending
        } else {
            Pin::new(&mut *ws).poll_next(cx)
        };
        *read_idle = read.is_pending();
        match read {
            Poll::Ready(msg) => Poll::Ready(IoEvent::Read(msg)),
            Poll::Pending if flushed => Poll::Ready(IoEvent::Flushed),
            Poll::Pending => Poll::Pending,
        }
    })
}

/// What one turn of [`serve`] came to.
enum Step {
    Continue,
    /// Close for this reason; whether the peer's stream ended.
    Close(CloseReason, bool),
    /// A client message to handle.
    Message(Message),
}

/// The connection's life until it closes: one task reads messages, writes
/// the queue in batches and keeps the heartbeat. Returns why it closes and
/// whether the peer's stream ended (then nothing more may be sent but the
/// close handshake).
async fn serve(
    ws: &mut WebSocketStream<WsIo>,
    rx: &mut Receiver,
    session: &mut Session,
    codec: Codec,
    app: &App,
) -> (CloseReason, bool) {
    let encoding = codec.encoding;
    let heartbeat = app.config.heartbeat();
    let idle = app.config.idle_timeout();
    let start = Instant::now();
    let mut next_ping = start + heartbeat;
    let mut last_read = start;
    // One timer for both the heartbeat and the idle timeout: reads only
    // record their time, the timer looks at it when it fires.
    let timer = tokio::time::sleep_until(next_ping.min(last_read + idle));
    tokio::pin!(timer);
    let mut read_idle = false;
    loop {
        let flushing = ws.get_ref().has_output();
        // Biased: a close request first. The next batch is taken only once
        // the last one is written, so while it is, the timer and the socket
        // are polled; neither starves while the queue stays busy. Nothing
        // here awaits: what a branch yields is handled below, so the task
        // does not keep every branch's state for the length of a handler.
        let step = tokio::select! {
            biased;
            ev = rx.next_event(!flushing) => match ev {
                Event::Close(r) => Step::Close(r, false),
                Event::Item(item) => {
                    // Written by `poll_io`, which also reads meanwhile.
                    push_batch(ws.get_mut(), item, rx, encoding, codec.settings(app));
                    Step::Continue
                }
            },
            () = &mut timer => {
                let now = Instant::now();
                if now >= last_read + idle {
                    Step::Close(CloseReason::HeartbeatTimeout, false)
                } else {
                    if now >= next_ping {
                        // Once per heartbeat, an empty queue gives its buffer back.
                        rx.release_idle();
                        ws.get_mut().push_frame(Opcode::Ping, Bytes::new());
                        next_ping = now + heartbeat;
                    }
                    timer.as_mut().reset(next_ping.min(last_read + idle));
                    Step::Continue
                }
            }
            ev = poll_io(ws, flushing, &mut read_idle) => match ev {
                IoEvent::Flushed => Step::Continue,
                IoEvent::WriteFailed => Step::Close(CloseReason::PeerGone, false),
                IoEvent::Read(msg) => {
                    last_read = Instant::now();
                    match msg {
                        None | Some(Ok(Message::Close(_))) => Step::Close(CloseReason::PeerGone, true),
                        // The stream is unusable but the connection can still
                        // say why it closes (1002, 1009).
                        Some(Err(e)) => Step::Close(error_reason(&e), false),
                        Some(Ok(m)) => Step::Message(m),
                    }
                }
            },
        };
        let (reason, ended) = match step {
            Step::Continue => continue,
            Step::Close(reason, ended) => (reason, ended),
            // Boxed: handling may publish, a big future that idle
            // connections should not carry.
            Step::Message(m) => match Box::pin(handle_message(session, encoding, m)).await {
                None => continue,
                Some(reason) => (reason, false),
            },
        };
        let conn = session.outbox();
        conn.close(reason);
        // The first reason wins (a close may have raced).
        return (conn.close_reason().unwrap_or(reason), ended);
    }
}

fn error_reason(e: &WsError) -> CloseReason {
    match e {
        WsError::Capacity(_) => CloseReason::FrameTooLarge,
        WsError::Protocol(_) | WsError::Utf8(_) => CloseReason::ProtocolError,
        // From the inflating layer under tungstenite (`ws_deflate`).
        WsError::Io(io) => match io.get_ref().and_then(|e| e.downcast_ref::<InflateError>()) {
            Some(InflateError::Corrupt) => CloseReason::InvalidPayload,
            Some(InflateError::TooLarge) => CloseReason::FrameTooLarge,
            None => CloseReason::PeerGone,
        },
        _ => CloseReason::PeerGone,
    }
}

async fn handle_message(
    session: &mut Session,
    encoding: Encoding,
    msg: Message,
) -> Option<CloseReason> {
    match (msg, encoding) {
        (Message::Text(t), Encoding::Json) => session.handle_bytes(encoding, t.as_bytes()).await,
        (Message::Binary(b), Encoding::Msgpack) => session.handle_bytes(encoding, &b).await,
        (Message::Text(_) | Message::Binary(_), _) => return Some(CloseReason::UnsupportedData),
        (Message::Close(_), _) => return Some(CloseReason::PeerGone),
        // Pings are answered by tungstenite; pongs only count as traffic.
        (Message::Ping(_) | Message::Pong(_) | Message::Frame(_), _) => {}
    }
    None
}

fn opcode(encoding: Encoding) -> Opcode {
    match encoding {
        // Our JSON encoder writes UTF-8 only, so text frames need no check.
        Encoding::Json => Opcode::Text,
        Encoding::Msgpack => Opcode::Binary,
    }
}

/// Queues `first` and up to `BATCH - 1` more queued items as frames.
fn push_batch(
    io: &mut WsIo,
    first: Outbound,
    rx: &mut Receiver,
    encoding: Encoding,
    deflate: Option<DeflateSettings>,
) {
    let mut more = Vec::new();
    rx.recv_many(&mut more, BATCH - 1);
    io.reserve(1 + more.len());
    push_item(io, &first, encoding, deflate);
    for item in &more {
        push_item(io, item, encoding, deflate);
    }
}

/// Queues one item: a publication as its shared bytes (deflated once for
/// every compressing connection), anything else encoded (and deflated)
/// for this connection alone.
fn push_item(io: &mut WsIo, item: &Outbound, encoding: Encoding, deflate: Option<DeflateSettings>) {
    let op = opcode(encoding);
    match (item, deflate) {
        (_, None) => io.push_frame(op, item.encode(encoding)),
        (Outbound::Publication(p), Some(settings)) => {
            let c = p.deflated(encoding, settings);
            io.push_message(op, c.bytes.clone(), c.deflated);
        }
        (other, Some(settings)) => {
            let bytes = other.encode(encoding);
            match deflate_once(&bytes, settings) {
                Some(z) => io.push_message(op, z, true),
                None => io.push_frame(op, bytes),
            }
        }
    }
}

/// Writes the queue to the socket.
async fn flush(ws: &mut WebSocketStream<WsIo>) -> Result<(), WsError> {
    std::future::poll_fn(|cx| Pin::new(&mut *ws).poll_flush(cx)).await
}

/// Says goodbye: on shutdown the rest of the queue first, then (unless the
/// peer left) the `disconnect` frame and the close frame.
async fn finish(
    ws: &mut WebSocketStream<WsIo>,
    rx: &mut Receiver,
    reason: CloseReason,
    peer_closed: bool,
    encoding: Encoding,
    deflate: Option<DeflateSettings>,
    idle_timeout: Duration,
) {
    if reason == CloseReason::Shutdown && !peer_closed {
        // What was accepted before the shutdown still reaches the client.
        let _ = tokio::time::timeout(CLOSE_GRACE, async {
            while let Some(item) = rx.try_recv() {
                push_batch(ws.get_mut(), item, rx, encoding, deflate);
                flush(ws).await?;
            }
            Ok::<_, WsError>(())
        })
        .await;
    }
    if reason.announced() && !peer_closed {
        let bytes = crate::wire::server_frame(encoding, &reason.disconnect_frame());
        let close = CloseFrame {
            code: CloseCode::from(reason.ws_code()),
            reason: reason.code().into(),
        };
        // A slow consumer is alive but behind: give it until the idle timeout
        // to read up to the disconnect frame, so it learns why and where to
        // resume. Others get a short grace.
        let grace = if reason == CloseReason::SlowConsumer {
            idle_timeout
        } else {
            CLOSE_GRACE
        };
        // Queued behind whatever part of a batch is still unwritten.
        ws.get_mut().push_frame(opcode(encoding), bytes);
        let sent = tokio::time::timeout(grace, ws.send(Message::Close(Some(close)))).await;
        if !matches!(sent, Ok(Ok(()))) {
            // Closing now would send a bare close frame; just drop the connection.
            return;
        }
    }
    let _ = tokio::time::timeout(CLOSE_GRACE, SinkExt::close(ws)).await;
}
