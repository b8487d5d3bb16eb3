//! WebSocket `/ws`: the upgrade is done by hand on hyper so the stream is a
//! plain `tokio_tungstenite::WebSocketStream` (see `docs/architecture.md`).

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use futures_util::stream::SplitSink;
use futures_util::{SinkExt, StreamExt};
use hyper_util::rt::TokioIo;
use livegate_core::protocol::ServerFrame;
use livegate_core::Encoding;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role, WebSocketConfig};
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::WebSocketStream;

use crate::api::ApiError;
use crate::close::CloseReason;
use crate::hub::{random_token, Connection, Outbound};
use crate::stats::Transport;
use crate::transport::session::Session;
use crate::App;

type Io = TokioIo<hyper::upgrade::Upgraded>;
type Sink = SplitSink<WebSocketStream<Io>, Message>;

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
fn negotiate(headers: &HeaderMap) -> Result<(Encoding, bool), ApiError> {
    let offered: Vec<&str> = headers
        .get_all(header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect();
    if offered.is_empty() {
        return Ok((Encoding::Json, false));
    }
    offered
        .iter()
        .find_map(|p| Encoding::from_subprotocol(p))
        .map(|e| (e, true))
        .ok_or_else(|| {
            ApiError::bad_request(format!(
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
        return ApiError::new(
            StatusCode::UPGRADE_REQUIRED,
            "upgrade_required",
            "this endpoint speaks WebSocket: send Connection: Upgrade and Upgrade: websocket",
        )
        .into_response();
    }
    if headers
        .get(header::SEC_WEBSOCKET_VERSION)
        .map(HeaderValue::as_bytes)
        != Some(b"13")
    {
        return ApiError::bad_request("Sec-WebSocket-Version must be 13").into_response();
    }
    let Some(key) = headers.get(header::SEC_WEBSOCKET_KEY) else {
        return ApiError::bad_request("Sec-WebSocket-Key is missing").into_response();
    };
    let accept = derive_accept_key(key.as_bytes());
    let (encoding, echo_protocol) = match negotiate(headers) {
        Ok(n) => n,
        Err(e) => return e.into_response(),
    };
    let Some(on_upgrade) = req.extensions_mut().remove::<hyper::upgrade::OnUpgrade>() else {
        return ApiError::bad_request("this connection cannot be upgraded").into_response();
    };
    tokio::spawn(async move {
        match on_upgrade.await {
            Ok(upgraded) => run(app, TokioIo::new(upgraded), encoding).await,
            Err(e) => tracing::debug!(error = %e, "websocket upgrade failed"),
        }
    });
    let mut res = StatusCode::SWITCHING_PROTOCOLS.into_response();
    let h = res.headers_mut();
    h.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    if let Ok(v) = HeaderValue::from_str(&accept) {
        h.insert(header::SEC_WEBSOCKET_ACCEPT, v);
    }
    if echo_protocol {
        h.insert(
            header::SEC_WEBSOCKET_PROTOCOL,
            HeaderValue::from_static(encoding.subprotocol()),
        );
    }
    res
}

async fn run(app: Arc<App>, io: Io, encoding: Encoding) {
    let max = app.config.max_frame_bytes;
    // Small buffers: an idle connection must stay small; they grow on demand.
    let config = WebSocketConfig::default()
        .read_buffer_size(1024)
        .write_buffer_size(16 * 1024)
        .max_message_size(Some(max))
        .max_frame_size(Some(max));
    let ws = WebSocketStream::from_raw_socket(io, Role::Server, Some(config)).await;
    let _counted = app.stats.connection(Transport::Ws);
    let (conn, rx) = app.hub.connect(app.config.queue_size);
    conn.send(Outbound::frame(ServerFrame::Connected {
        client_id: format!("{}-{}", conn.id, random_token(6)),
        heartbeat_ms: app.config.heartbeat_ms,
    }));
    let (sink, mut stream) = ws.split();
    let mut writer = tokio::spawn(write_loop(
        sink,
        rx,
        conn.clone(),
        encoding,
        app.config.heartbeat(),
        app.config.idle_timeout(),
    ));
    let mut session = Session::new(app.clone(), conn.clone());
    let idle = app.config.idle_timeout();
    let writer_done = loop {
        tokio::select! {
            _ = &mut writer => break true,
            msg = tokio::time::timeout(idle, stream.next()) => {
                let reason = match msg {
                    Err(_) => Some(CloseReason::HeartbeatTimeout),
                    Ok(None) => Some(CloseReason::PeerGone),
                    Ok(Some(Err(e))) => Some(error_reason(&e)),
                    Ok(Some(Ok(m))) => handle_message(&mut session, encoding, m).await,
                };
                if let Some(reason) = reason {
                    conn.close(reason);
                    break false;
                }
            }
        }
    };
    if !writer_done {
        let _ = writer.await;
    }
    drop(stream);
    session.finish();
}

fn error_reason(e: &WsError) -> CloseReason {
    match e {
        WsError::Capacity(_) => CloseReason::FrameTooLarge,
        WsError::Protocol(_) | WsError::Utf8(_) => CloseReason::ProtocolError,
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

fn message(encoding: Encoding, bytes: bytes::Bytes) -> Option<Message> {
    match encoding {
        Encoding::Msgpack => Some(Message::Binary(bytes)),
        Encoding::Json => match bytes.try_into() {
            Ok(text) => Some(Message::Text(text)),
            Err(_) => {
                tracing::error!("a JSON frame was not UTF-8; dropped");
                None
            }
        },
    }
}

async fn write_batch(
    sink: &mut Sink,
    first: Outbound,
    rx: &mut mpsc::Receiver<Outbound>,
    encoding: Encoding,
) -> Result<(), WsError> {
    let mut item = Some(first);
    let mut n = 0;
    while let Some(it) = item.take() {
        if let Some(m) = message(encoding, it.encode(encoding)) {
            sink.feed(m).await?;
        }
        n += 1;
        if n < BATCH {
            item = rx.try_recv().ok();
        }
    }
    sink.flush().await
}

async fn write_loop(
    mut sink: Sink,
    mut rx: mpsc::Receiver<Outbound>,
    conn: Arc<Connection>,
    encoding: Encoding,
    heartbeat: Duration,
    idle_timeout: Duration,
) {
    let mut ping = tokio::time::interval_at(tokio::time::Instant::now() + heartbeat, heartbeat);
    let reason = loop {
        tokio::select! {
            biased;
            r = conn.closed() => break r,
            item = rx.recv() => {
                let Some(item) = item else { break CloseReason::PeerGone };
                // A blocked write must not hide a close request.
                let res = tokio::select! {
                    r = write_batch(&mut sink, item, &mut rx, encoding) => r,
                    r = conn.closed() => break r,
                };
                if res.is_err() {
                    conn.close(CloseReason::PeerGone);
                    break CloseReason::PeerGone;
                }
            }
            _ = ping.tick() => {
                if sink.send(Message::Ping(bytes::Bytes::new())).await.is_err() {
                    conn.close(CloseReason::PeerGone);
                    break CloseReason::PeerGone;
                }
            }
        }
    };
    if reason == CloseReason::Shutdown {
        // What was accepted before the shutdown still reaches the client.
        let _ = tokio::time::timeout(CLOSE_GRACE, async {
            while let Ok(item) = rx.try_recv() {
                write_batch(&mut sink, item, &mut rx, encoding).await?;
            }
            Ok::<_, WsError>(())
        })
        .await;
    }
    if reason.announced() {
        let frame = ServerFrame::Disconnect {
            code: reason.code().to_owned(),
            reason: reason.explain().to_owned(),
            reconnect: reason.reconnect(),
        };
        let bytes = bytes::Bytes::from(encoding.encode_server(&frame));
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
        let sent = tokio::time::timeout(grace, async {
            if let Some(m) = message(encoding, bytes) {
                sink.send(m).await?;
            }
            sink.send(Message::Close(Some(close))).await
        })
        .await;
        if !matches!(sent, Ok(Ok(()))) {
            // Closing now would send a bare close frame; just drop the connection.
            return;
        }
    }
    let _ = tokio::time::timeout(CLOSE_GRACE, sink.close()).await;
}
