//! WebTransport `/wt` (HTTP/3 over QUIC, on its own UDP port).
//!
//! Mapping (`docs/protocol.md` §4.5): the client opens one bidirectional
//! control stream and sends its frames there, length-prefixed; the gateway
//! answers on it and sends heartbeats (empty frames). Each subscribed topic
//! gets its own unidirectional stream from the gateway, carrying its
//! `subscribed` answer and then its publications in order, so a slow or big
//! topic never holds up the others (no head-of-line blocking across topics).
//! Lossy topics send publications that fit as datagrams (one frame each).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use livegate_core::framing::{self, FlaggedItem, FrameReader};
use livegate_core::protocol::ServerFrame;
use livegate_core::Encoding;
use tokio::sync::mpsc;
use wtransport::endpoint::endpoint_side::Server;
use wtransport::endpoint::IncomingSession;
use wtransport::{Connection as WtConnection, Endpoint, Identity, ServerConfig, VarInt};

use crate::close::CloseReason;
use crate::deflate::{deflate_once, inflate_all, DeflateSettings, InflateError};
use crate::hub::{Outbound, Outbox, Receiver};
use crate::stats::Transport;
use crate::transport::credentials;
use crate::transport::session::Session;
use crate::wire::{Compression, Framing, Variant};
use crate::{wire, App, WebTransportInfo};

/// How long a fresh session may take to open its control stream.
const OPEN_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the last frames of a closing session may take.
const CLOSE_GRACE: Duration = Duration::from_secs(2);
/// The self-signed certificate's validity (browsers accept at most 14 days
/// for `serverCertificateHashes`).
const CERT_DAYS: u32 = 13;
/// When the self-signed certificate is replaced.
const RENEW_AFTER: Duration = Duration::from_secs(10 * 24 * 3600);

/// Why WebTransport could not start.
#[derive(Debug, thiserror::Error)]
pub enum WtError {
    /// The certificate or key could not be loaded or made.
    #[error("WebTransport certificate: {0}")]
    Identity(String),
    /// The UDP port could not be bound.
    #[error("cannot listen for WebTransport on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
}

fn self_signed() -> Result<Identity, WtError> {
    Identity::self_signed_builder()
        .subject_alt_names(["localhost", "127.0.0.1", "::1"])
        .from_now_utc()
        .validity_days(CERT_DAYS)
        .build()
        .map_err(|e| WtError::Identity(e.to_string()))
}

fn server_config(app: &App, addr: SocketAddr, identity: &Identity) -> ServerConfig {
    // QUIC keep-alives: a peer that stops answering them is dropped at the
    // idle timeout, as a silent WebSocket peer is.
    let base = || {
        ServerConfig::builder()
            .with_bind_address(addr)
            .with_identity(identity.clone_identity())
            .keep_alive_interval(Some(app.config.heartbeat()))
    };
    match base().max_idle_timeout(Some(app.config.idle_timeout())) {
        Ok(b) => b.build(),
        // Beyond what QUIC can express (validation prevents it): its default.
        Err(_) => base().build(),
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Starts WebTransport: binds, publishes its URL and certificate hash in
/// `app.webtransport`, accepts sessions, renews a self-signed certificate.
pub async fn start(app: Arc<App>) -> Result<WebTransportInfo, WtError> {
    let addr = app.config.wt_addr();
    let (identity, renew) = match (&app.config.wt_cert, &app.config.wt_key) {
        (Some(cert), Some(key)) => (
            Identity::load_pemfiles(cert, key)
                .await
                .map_err(|e| WtError::Identity(format!("{}: {e}", cert.display())))?,
            false,
        ),
        _ => (self_signed()?, true),
    };
    let hash = hex(identity.certificate_chain().as_slice()[0].hash().as_ref());
    let endpoint = Endpoint::server(server_config(&app, addr, &identity))
        .map_err(|source| WtError::Bind { addr, source })?;
    let local = endpoint
        .local_addr()
        .map_err(|source| WtError::Bind { addr, source })?;
    let host = match local.ip() {
        ip if ip.is_unspecified() => "127.0.0.1".to_owned(),
        std::net::IpAddr::V6(ip) => format!("[{ip}]"),
        ip => ip.to_string(),
    };
    let info = WebTransportInfo {
        url: app
            .config
            .wt_advertise
            .clone()
            .unwrap_or_else(|| format!("https://{host}:{}/wt", local.port())),
        algorithm: "sha-256",
        hash,
    };
    set_info(&app, info.clone());
    let endpoint = Arc::new(endpoint);
    if renew {
        tokio::spawn(renew_loop(app.clone(), endpoint.clone(), local));
    }
    tokio::spawn(accept_loop(app, endpoint));
    Ok(info)
}

fn set_info(app: &App, info: WebTransportInfo) {
    if let Ok(mut slot) = app.webtransport.write() {
        *slot = Some(info);
    }
}

async fn renew_loop(app: Arc<App>, endpoint: Arc<Endpoint<Server>>, local: SocketAddr) {
    loop {
        tokio::time::sleep(RENEW_AFTER).await;
        let identity = match self_signed() {
            Ok(i) => i,
            Err(e) => {
                tracing::error!(error = %e, "cannot renew the WebTransport certificate");
                continue;
            }
        };
        let hash = hex(identity.certificate_chain().as_slice()[0].hash().as_ref());
        match endpoint.reload_config(server_config(&app, local, &identity), false) {
            Ok(()) => {
                let url = app
                    .webtransport
                    .read()
                    .ok()
                    .and_then(|i| i.as_ref().map(|i| i.url.clone()))
                    .unwrap_or_default();
                set_info(
                    &app,
                    WebTransportInfo {
                        url,
                        algorithm: "sha-256",
                        hash,
                    },
                );
                tracing::info!("WebTransport certificate renewed");
            }
            Err(e) => tracing::error!(error = %e, "cannot renew the WebTransport certificate"),
        }
    }
}

async fn accept_loop(app: Arc<App>, endpoint: Arc<Endpoint<Server>>) {
    loop {
        let incoming = endpoint.accept().await;
        tokio::spawn(session(app.clone(), incoming));
    }
}

/// The session's close: the reason's WebSocket code is reused as the
/// WebTransport session error code, the `code` string as the reason.
fn close(conn: &WtConnection, reason: CloseReason) {
    conn.close(
        VarInt::from_u32(u32::from(reason.ws_code())),
        reason.code().as_bytes(),
    );
}

/// The session's encoding and whether it asked for compression
/// (`?encoding=json|msgpack&compress=deflate|none`); `None` for a value
/// this gateway does not know.
fn options_of(path: &str) -> Option<(Encoding, bool)> {
    let query = path.split_once('?').map_or("", |(_, q)| q);
    let mut encoding = Encoding::Json;
    let mut compress = false;
    for (k, v) in form_urlencoded::parse(query.as_bytes()) {
        match &*k {
            "encoding" => {
                encoding = match &*v {
                    "json" => Encoding::Json,
                    "msgpack" => Encoding::Msgpack,
                    _ => return None,
                };
            }
            "compress" => {
                compress = match &*v {
                    "deflate" => true,
                    "none" => false,
                    _ => return None,
                };
            }
            _ => {}
        }
    }
    Some((encoding, compress))
}

async fn session(app: Arc<App>, incoming: IncomingSession) {
    let Ok(request) = incoming.await else { return };
    let path = request.path().to_owned();
    if path.split('?').next() != Some("/wt") {
        request.not_found().await;
        return;
    }
    let Some((encoding, compress)) = options_of(&path) else {
        // An unknown encoding: refuse the session, as a WebSocket upgrade with
        // an unknown subprotocol is refused.
        request.forbidden().await;
        return;
    };
    // Asked for and allowed: frames may carry the compressed flag both ways.
    let deflate = app.config.deflate().filter(|_| compress);
    let query = path.split_once('?').map(|(_, q)| q);
    let authorization = request.headers().get("authorization").map(String::as_str);
    let tokens = credentials::tokens(authorization, [], query);
    let identity = match credentials::authenticate(&app.service, &tokens) {
        Ok(identity) => identity,
        Err(_) => {
            request.forbidden().await;
            return;
        }
    };
    let Ok(wt) = request.accept().await else {
        return;
    };
    let control = tokio::time::timeout(OPEN_TIMEOUT, wt.accept_bi()).await;
    let Ok(Ok((send, recv))) = control else {
        close(&wt, CloseReason::ProtocolError);
        return;
    };
    let _counted = app.service.count_connection(Transport::Wt);
    let (connection, rx) = app.service.open(identity);
    let conn = connection.outbox().clone();
    conn.send(Outbound::frame(connection.connected_frame()));
    let (control_tx, control_rx) = mpsc::channel::<Bytes>(app.config.queue_size);
    let control_writer = tokio::spawn(write_control(send, control_rx, app.config.heartbeat()));
    let mut dispatcher = tokio::spawn(dispatch(
        app.clone(),
        wt.clone(),
        conn.clone(),
        rx,
        control_tx,
        Codec { encoding, deflate },
    ));
    let mut session = Session::new(connection);
    let reason = tokio::select! {
        r = &mut dispatcher => r.unwrap_or(CloseReason::PeerGone),
        () = read_control(&app, &wt, &conn, &mut session, recv, encoding, deflate.is_some()) => {
            // The reader asked the hub connection to close; the dispatcher follows.
            dispatcher.await.unwrap_or(CloseReason::PeerGone)
        }
    };
    // The control stream carries the `disconnect` frame: let it finish first.
    let _ = tokio::time::timeout(CLOSE_GRACE, control_writer).await;
    close(&wt, reason);
    // Leaves every topic.
    drop(session);
}

/// Reads the client's frames; refuses streams the protocol does not allow.
async fn read_control(
    app: &App,
    wt: &WtConnection,
    conn: &Outbox,
    session: &mut Session,
    mut recv: wtransport::RecvStream,
    encoding: Encoding,
    compressed: bool,
) {
    let max = app.config.max_frame_bytes;
    let mut reader = FrameReader::new(max);
    let mut buf = vec![0u8; 4096];
    loop {
        tokio::select! {
            read = recv.read(&mut buf) => {
                let n = match read {
                    Ok(Some(n)) => n,
                    // The client finished or reset its control stream: it is leaving.
                    Ok(None) | Err(_) => {
                        conn.close(if reader.pending() > 0 { CloseReason::ProtocolError } else { CloseReason::PeerGone });
                        return;
                    }
                };
                let items = if compressed {
                    reader.push_flagged(&buf[..n])
                } else {
                    reader.push(&buf[..n]).map(|items| items.into_iter().map(FlaggedItem::from).collect())
                };
                let Ok(items) = items else {
                    conn.close(CloseReason::FrameTooLarge);
                    return;
                };
                for item in items {
                    let FlaggedItem::Frame { bytes, compressed } = item else { continue };
                    let frame = if compressed {
                        match inflate_all(&bytes, max) {
                            Ok(f) => f,
                            Err(InflateError::Corrupt) => { conn.close(CloseReason::InvalidPayload); return; }
                            Err(InflateError::TooLarge) => { conn.close(CloseReason::FrameTooLarge); return; }
                        }
                    } else {
                        bytes
                    };
                    session.handle_bytes(encoding, &frame).await;
                }
            }
            _ = wt.accept_uni() => { conn.close(CloseReason::StreamNotAllowed); return; }
            _ = wt.accept_bi() => { conn.close(CloseReason::StreamNotAllowed); return; }
            _ = wt.closed() => { conn.close(CloseReason::PeerGone); return; }
        }
    }
}

async fn write_control(
    mut send: wtransport::SendStream,
    mut rx: mpsc::Receiver<Bytes>,
    heartbeat: Duration,
) {
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + heartbeat, heartbeat);
    loop {
        let bytes = tokio::select! {
            b = rx.recv() => match b { Some(b) => b, None => break },
            _ = tick.tick() => Bytes::from_static(&framing::HEARTBEAT),
        };
        if send.write_all(&bytes).await.is_err() {
            return;
        }
    }
    // Wait (bounded) until the peer has read everything, `disconnect`
    // included: closing the session at once could drop data still in flight.
    let _ = tokio::time::timeout(CLOSE_GRACE, async {
        let _ = send.finish().await;
        send.stopped().await
    })
    .await;
}

/// Most queued frames handed to QUIC in one write.
const TOPIC_BATCH: usize = 64;

async fn write_topic(wt: WtConnection, mut rx: mpsc::Receiver<Bytes>, conn: Arc<Outbox>) {
    let opened = async { wt.open_uni().await.ok()?.await.ok() };
    let Some(mut stream) = opened.await else {
        conn.close(CloseReason::PeerGone);
        return;
    };
    // Whatever is queued goes to QUIC in one write: one lock of the
    // connection and one wake of its driver per batch instead of per frame,
    // and the driver packs the frames into full packets (fewer ACKs to
    // process too). A batch is joined into one chunk: quinn keeps each
    // written chunk as a segment and finds the bytes of every packet by
    // walking the unacknowledged segments from the oldest, so one small
    // segment per frame made each packet cost more the more was in flight.
    // A single frame is written as the shared bytes, uncopied.
    let mut batch = Vec::new();
    while rx.recv_many(&mut batch, TOPIC_BATCH).await > 0 {
        let chunk = if batch.len() == 1 {
            batch.pop().unwrap_or_default()
        } else {
            let mut joined = BytesMut::with_capacity(batch.iter().map(Bytes::len).sum());
            for b in batch.drain(..) {
                joined.extend_from_slice(&b);
            }
            joined.freeze()
        };
        let written = stream.quic_stream_mut().write_chunk(chunk).await;
        if written.is_err() {
            conn.close(CloseReason::PeerGone);
            return;
        }
        if rx.is_empty() {
            // Idle again: the batch buffer goes back.
            batch = Vec::new();
        }
    }
    let _ = tokio::time::timeout(CLOSE_GRACE, stream.finish()).await;
}

/// Routes the hub's items: answers to the control stream, each topic's
/// frames to its own stream (or a datagram), without ever waiting on one.
/// Returns why the session ends, after queueing its `disconnect` frame.
async fn dispatch(
    app: Arc<App>,
    wt: WtConnection,
    conn: Arc<Outbox>,
    mut rx: Receiver,
    control: mpsc::Sender<Bytes>,
    codec: Codec,
) -> CloseReason {
    let encoding = codec.encoding;
    let mut router = Router {
        app,
        wt,
        conn: conn.clone(),
        control,
        topics: HashMap::new(),
        codec,
    };
    let reason = loop {
        tokio::select! {
            biased;
            r = conn.closed() => break r,
            item = rx.recv() => router.route(item),
        }
    };
    if reason == CloseReason::Shutdown {
        // What was accepted before the shutdown still reaches the client.
        while let Some(item) = rx.try_recv() {
            router.route(item);
        }
    }
    router.topics.clear();
    if reason.announced() {
        let frame = wire::server_frame(encoding, &reason.disconnect_frame());
        // Best effort: a full control queue means the peer is not reading.
        let _ = router.control.try_send(Bytes::from(framing::frame(&frame)));
    }
    reason
}

struct Router {
    app: Arc<App>,
    wt: WtConnection,
    conn: Arc<Outbox>,
    control: mpsc::Sender<Bytes>,
    topics: HashMap<Arc<str>, TopicOut>,
    codec: Codec,
}

/// How a session puts frames on its streams.
#[derive(Debug, Clone, Copy)]
struct Codec {
    encoding: Encoding,
    /// Set when the session asked for compression and it is on.
    deflate: Option<DeflateSettings>,
}

impl Codec {
    /// A frame made for this session alone, length-prefixed (and
    /// compressed, with the flag, when that applies).
    fn prefixed(self, frame: &[u8]) -> Bytes {
        match self.deflate.and_then(|s| deflate_once(frame, s)) {
            Some(z) => Bytes::from(framing::frame_compressed(&z)),
            None => Bytes::from(framing::frame(frame)),
        }
    }
}

/// Where a subscribed topic's frames go.
struct TopicOut {
    tx: mpsc::Sender<Bytes>,
    /// The namespace's `lossy` option, looked up once per subscription
    /// instead of once per publication.
    lossy: bool,
}

impl Router {
    fn offer(&self, tx: &mpsc::Sender<Bytes>, bytes: Bytes) {
        if tx.try_send(bytes).is_err() {
            self.conn.close(CloseReason::SlowConsumer);
        }
    }

    fn route(&mut self, item: Outbound) {
        let codec = self.codec;
        let encoding = codec.encoding;
        match item {
            Outbound::Publication(p) => {
                let Some(out) = self.topics.get(p.publication.topic.as_str()) else {
                    return;
                };
                if out.lossy {
                    let frame = p.frame(encoding);
                    if self
                        .wt
                        .max_datagram_size()
                        .is_some_and(|m| frame.len() <= m)
                    {
                        // Latest-value semantics: a lost datagram shows as a gap in offsets.
                        let _ = self.wt.send_datagram(frame.clone());
                        return;
                    }
                }
                // The prefixed frame (compressed once, when asked) is shared
                // by every such WebTransport subscriber.
                let bytes = match codec.deflate {
                    None => p.length_prefixed(encoding),
                    Some(settings) => {
                        let variant = Variant {
                            encoding,
                            framing: Framing::LengthPrefixed,
                            compression: Compression::Deflate,
                        };
                        p.bytes(variant, settings).bytes
                    }
                };
                self.offer(&out.tx, bytes.clone());
            }
            Outbound::Subscribed(s) => {
                let bytes = codec.prefixed(&s.encode(encoding, true));
                let queue = self.app.config.queue_size;
                let (wt, conn) = (self.wt.clone(), self.conn.clone());
                let lossy = self.app.service.namespaces().options_for(&s.topic).lossy;
                let out = self.topics.entry(s.topic.clone()).or_insert_with(|| {
                    let (tx, rx) = mpsc::channel(queue);
                    tokio::spawn(write_topic(wt, rx, conn));
                    TopicOut { tx, lossy }
                });
                let tx = out.tx.clone();
                self.offer(&tx, bytes);
            }
            Outbound::Frame(f) => {
                if let ServerFrame::Unsubscribed { topic, .. } = &*f {
                    // Dropping the sender finishes the topic's stream.
                    self.topics.remove(topic.as_str());
                }
                let bytes = codec.prefixed(&encoding.encode_server(&f));
                self.offer(&self.control, bytes);
            }
            other => {
                let bytes = codec.prefixed(&other.encode(encoding));
                self.offer(&self.control, bytes);
            }
        }
    }
}
