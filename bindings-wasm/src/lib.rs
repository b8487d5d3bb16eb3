//! livegate's browser client: the sans-IO engine of `livegate-core`
//! compiled to WebAssembly, wrapped for the JavaScript driver in
//! `js/index.js`. The engine decides everything (state, fallback, resume,
//! the offline queue, the exact requests); the page only moves bytes and
//! timers: it carries out each action this wrapper hands it and reports back
//! what the network did, with `now` in milliseconds (`performance.now()`).

mod io;
mod js;
mod options;

use std::collections::HashMap;

use io::ConnIo;
use livegate_core::client::{
    classify_response, Action, Client, CommandError, HttpPublishError, Routed, Router, SseItem,
    State, TransportEvent, TransportKind,
};
use livegate_core::framing::{self, FrameReader, Item};
use livegate_core::{Payload, Position};
use wasm_bindgen::prelude::*;

/// How often a WebSocket connection sends `ping`: a browser's WebSocket
/// hides the gateway's Ping frames, so the `pong` answers are what keeps the
/// heartbeat watchdog (heartbeat + margin, 10 s margin by default) fed.
const PING_EVERY_MS: u64 = 5_000;

/// The engine, its subscription router and the per-connection readers.
#[wasm_bindgen]
pub struct Engine {
    core: Client,
    /// Subscription ids of the page → topics; publish waiters by msg_id.
    router: Router<u32, String>,
    conns: HashMap<u64, ConnIo>,
    next_ping: Option<u64>,
}

fn ms(now: f64) -> u64 {
    if now.is_finite() && now > 0.0 {
        now as u64
    } else {
        0
    }
}

fn command_error(e: CommandError) -> JsValue {
    let code = match e {
        CommandError::Closed => "closed",
        CommandError::QueueFull(_) => "queue_full",
        _ => "invalid",
    };
    js::error(code, &e.to_string())
}

#[wasm_bindgen]
impl Engine {
    /// `options`: the JSON of the page's options; `seed`: randomness for
    /// jitter and msg_ids.
    #[wasm_bindgen(constructor)]
    pub fn new(options: &str, seed: f64) -> Result<Engine, JsValue> {
        let config = options::parse(options).map_err(|e| js::error("invalid", &e))?;
        Ok(Self {
            core: Client::new(config, seed.to_bits()),
            router: Router::new(),
            conns: HashMap::new(),
            next_ping: None,
        })
    }

    // ---- commands ----

    pub fn connect(&mut self, now: f64) {
        self.core.connect(ms(now));
    }

    /// Adds subscription `sub` (an id the page picked) to `topic`, from
    /// `since` (`epoch` and `offset`, both or neither) when the topic is new.
    pub fn subscribe(
        &mut self,
        now: f64,
        topic: &str,
        sub: u32,
        epoch: Option<String>,
        offset: Option<f64>,
    ) -> Result<(), JsValue> {
        let since = match (epoch, offset) {
            (Some(epoch), Some(o)) if o.is_finite() && o >= 0.0 && o.fract() == 0.0 => {
                Some(Position {
                    epoch,
                    offset: o as u64,
                })
            }
            (None, None) => None,
            _ => {
                return Err(js::error(
                    "invalid",
                    "since needs an epoch (string) and an offset (a whole number >= 0)",
                ))
            }
        };
        self.core
            .subscribe_since(ms(now), topic, since)
            .map_err(command_error)?;
        self.router.add(topic, sub);
        Ok(())
    }

    /// Drops subscription `sub`; the topic goes once no subscription holds it.
    pub fn unsubscribe(&mut self, now: f64, topic: &str, sub: u32) {
        if self.router.release(topic, |s| *s != sub) {
            self.core.unsubscribe(ms(now), topic);
        }
    }

    /// Publishes JSON text; returns the msg_id whose answer `nextEvent` brings.
    #[wasm_bindgen(js_name = publishJson)]
    pub fn publish_json(
        &mut self,
        now: f64,
        topic: &str,
        event: Option<String>,
        json: &str,
    ) -> Result<String, JsValue> {
        let data = Payload::from_json(json.to_owned())
            .map_err(|e| js::error("bad_payload", &e.to_string()))?;
        self.publish(now, topic, event, data)
    }

    /// Publishes raw bytes.
    #[wasm_bindgen(js_name = publishBinary)]
    pub fn publish_binary(
        &mut self,
        now: f64,
        topic: &str,
        event: Option<String>,
        bytes: &[u8],
    ) -> Result<String, JsValue> {
        self.publish(now, topic, event, Payload::binary(bytes.to_vec()))
    }

    pub fn close(&mut self, now: f64) {
        self.core.close(ms(now));
        self.tend(ms(now));
    }

    // ---- what the network did ----

    pub fn opened(&mut self, now: f64, conn: f64) {
        let now = ms(now);
        self.core
            .handle_transport(now, conn as u64, TransportEvent::Opened);
        self.tend(now);
    }

    /// The connection failed or closed; `why` is said in the error event.
    pub fn closed(&mut self, now: f64, conn: f64, why: &str) {
        let now = ms(now);
        let conn = conn as u64;
        self.conns.remove(&conn);
        self.core
            .handle_transport(now, conn, TransportEvent::Closed(why.to_owned()));
        self.tend(now);
    }

    /// One whole frame: a WebSocket message, a WebTransport datagram.
    pub fn frame(&mut self, now: f64, conn: f64, bytes: &[u8]) {
        let now = ms(now);
        self.core.handle_frame(now, conn as u64, bytes);
        self.tend(now);
    }

    /// A chunk of an SSE body.
    #[wasm_bindgen(js_name = sseChunk)]
    pub fn sse_chunk(&mut self, now: f64, conn: f64, chunk: &[u8]) {
        let (now, conn) = (ms(now), conn as u64);
        let Some(ConnIo::EventStream(parser)) = self.conns.get_mut(&conn) else {
            return;
        };
        match parser.push(chunk) {
            Ok(items) => {
                for item in items {
                    match item {
                        SseItem::Event(e) => self.core.handle_frame(now, conn, &e.data),
                        SseItem::Comment => self.core.handle_activity(now, conn),
                        _ => {}
                    }
                }
            }
            Err(e) => {
                self.conns.remove(&conn);
                self.core
                    .handle_transport(now, conn, TransportEvent::Closed(e.to_string()));
            }
        }
        self.tend(now);
    }

    /// A chunk of a WebTransport stream (0: the control stream).
    #[wasm_bindgen(js_name = streamChunk)]
    pub fn stream_chunk(&mut self, now: f64, conn: f64, stream: u32, chunk: &[u8]) {
        let (now, conn) = (ms(now), conn as u64);
        let Some(ConnIo::WebTransport(readers)) = self.conns.get_mut(&conn) else {
            return;
        };
        let reader = readers
            .entry(stream)
            .or_insert_with(|| FrameReader::new(livegate_core::client::MAX_FRAME));
        match reader.push(chunk) {
            Ok(items) => {
                for item in items {
                    match item {
                        Item::Frame(f) => self.core.handle_frame(now, conn, &f),
                        Item::Heartbeat => self.core.handle_activity(now, conn),
                    }
                }
            }
            Err(e) => {
                self.conns.remove(&conn);
                self.core
                    .handle_transport(now, conn, TransportEvent::Closed(e.to_string()));
            }
        }
        self.tend(now);
    }

    /// A WebTransport stream ended: forget its reader.
    #[wasm_bindgen(js_name = streamEnd)]
    pub fn stream_end(&mut self, conn: f64, stream: u32) {
        if let Some(ConnIo::WebTransport(readers)) = self.conns.get_mut(&(conn as u64)) {
            readers.remove(&stream);
        }
    }

    /// The next long-poll request of `conn` (`timeoutMs` bounds it), or
    /// `undefined` once the connection is gone.
    #[wasm_bindgen(js_name = pollRequest)]
    pub fn poll_request(&self, conn: f64) -> JsValue {
        match self.conns.get(&(conn as u64)) {
            Some(ConnIo::LongPoll(p)) => {
                let r = js::request(&p.next_request());
                let _ = js_sys::Reflect::set(
                    &r,
                    &"timeoutMs".into(),
                    &(p.request_timeout_ms() as f64).into(),
                );
                r
            }
            _ => JsValue::UNDEFINED,
        }
    }

    /// A long-poll answer; returns whether to poll again.
    #[wasm_bindgen(js_name = pollAnswer)]
    pub fn poll_answer(&mut self, now: f64, conn: f64, status: u16, body: &[u8]) -> bool {
        let (now, conn) = (ms(now), conn as u64);
        let Some(ConnIo::LongPoll(poller)) = self.conns.get_mut(&conn) else {
            return false;
        };
        let first = !poller.answered();
        let frames: Result<Vec<Vec<u8>>, String> = poller
            .handle_answer(status, body)
            .map(|a| a.frames().map(<[u8]>::to_vec).collect());
        let going = match frames {
            Ok(frames) => {
                if first {
                    self.core
                        .handle_transport(now, conn, TransportEvent::Opened);
                }
                self.core.handle_activity(now, conn);
                for f in frames {
                    self.core.handle_frame(now, conn, &f);
                }
                self.conns.contains_key(&conn)
            }
            Err(why) => {
                self.conns.remove(&conn);
                self.core
                    .handle_transport(now, conn, TransportEvent::Closed(why));
                false
            }
        };
        self.tend(now);
        going
    }

    /// The answer to a `discover` action.
    pub fn discovery(&mut self, now: f64, conn: f64, status: u16, body: &[u8]) {
        let now = ms(now);
        self.core.handle_discovery(now, conn as u64, status, body);
        self.tend(now);
    }

    /// The answer to an `httpPublish` action.
    #[wasm_bindgen(js_name = httpAnswered)]
    pub fn http_answered(&mut self, now: f64, msg_id: &str, status: u16, body: &[u8]) {
        let now = ms(now);
        self.core
            .handle_http_publish(now, msg_id, classify_response(status, body));
        self.tend(now);
    }

    /// An `httpPublish` that got no answer (`timedOut`: none in time).
    #[wasm_bindgen(js_name = httpUnanswered)]
    pub fn http_unanswered(&mut self, now: f64, msg_id: &str, why: &str, timed_out: bool) {
        let now = ms(now);
        let e = if timed_out {
            HttpPublishError::timeout()
        } else {
            HttpPublishError::io(why)
        };
        self.core.handle_http_publish(now, msg_id, Err(e));
        self.tend(now);
    }

    /// Runs what is due at `now`.
    pub fn timeout(&mut self, now: f64) {
        let now = ms(now);
        self.core.handle_timeout(now);
        if self.next_ping.is_some_and(|t| t <= now) && self.core.ping() {
            self.next_ping = Some(now + PING_EVERY_MS);
        }
        self.tend(now);
    }

    // ---- what the page must do ----

    /// The next action, a plain object, or `undefined`.
    #[wasm_bindgen(js_name = nextAction)]
    pub fn next_action(&mut self) -> JsValue {
        let Some(action) = self.core.poll_action() else {
            return JsValue::UNDEFINED;
        };
        match action {
            Action::Connect {
                conn,
                transport,
                open,
                ..
            } => {
                let kind = ConnIo::kind(&open);
                let mut o = js::Obj::new("connect")
                    .set("conn", conn as f64)
                    .set("transport", io::transport_name(transport))
                    .set("kind", kind)
                    .set("request", js::request(&open.request()));
                if let livegate_core::client::Open::WebTransport { cert_hash, .. } = &open {
                    o = o.set("certHash", js::bytes(cert_hash));
                }
                self.conns.insert(conn, ConnIo::for_open(&open));
                o.done()
            }
            Action::Discover { conn, request } => {
                self.conns.insert(conn, ConnIo::Discovering);
                js::Obj::new("discover")
                    .set("conn", conn as f64)
                    .set("request", js::request(&request))
                    .done()
            }
            Action::Send { conn, bytes } => {
                let o = js::Obj::new("send").set("conn", conn as f64);
                let prefixed = self
                    .conns
                    .get(&conn)
                    .is_some_and(ConnIo::transport_frames_are_prefixed);
                if prefixed {
                    o.set("bytes", js::bytes(&framing::frame(&bytes))).done()
                } else if self.core.config().encoding == livegate_core::Encoding::Json {
                    // JSON goes as a text WebSocket message, MessagePack as binary.
                    o.set("text", String::from_utf8_lossy(&bytes).into_owned())
                        .done()
                } else {
                    o.set("bytes", js::bytes(&bytes)).done()
                }
            }
            Action::HttpPublish {
                msg_id, request, ..
            } => js::Obj::new("httpPublish")
                .set("msgId", msg_id)
                .set("request", js::request(&request))
                .done(),
            Action::Close { conn } => {
                self.conns.remove(&conn);
                js::Obj::new("close").set("conn", conn as f64).done()
            }
            _ => js::Obj::new("unknown").done(),
        }
    }

    /// The next event, routed: `{type: 'topic', subs, topic, event}` for
    /// subscriptions, `{type: 'ended', ...}` for a refused topic,
    /// `{type: 'answered', msgId, ok, ...}` for a publish, or the event itself.
    #[wasm_bindgen(js_name = nextEvent)]
    pub fn next_event(&mut self) -> JsValue {
        let Some(event) = self.core.poll_event() else {
            return JsValue::UNDEFINED;
        };
        let topic = js::topic_of(&event).map(str::to_owned);
        match self.router.route(event) {
            Routed::Topic { subs, event } => js::Obj::new("topic")
                .set("subs", js::ids(subs))
                .set("topic", topic.unwrap_or_default())
                .set("event", js::subscription_event(&event))
                .done(),
            Routed::Ended { subs, event } => js::Obj::new("ended")
                .set("subs", js::ids(&subs))
                .set("topic", topic.unwrap_or_default())
                .set("event", js::subscription_event(&event))
                .done(),
            Routed::Answered { waiter, outcome } => {
                let o = js::Obj::new("answered").set("msgId", waiter);
                match outcome {
                    Ok(ack) => o
                        .set("ok", true)
                        .set("topic", ack.topic)
                        .set("epoch", ack.position.epoch)
                        .set("offset", ack.position.offset as f64)
                        .done(),
                    Err(f) => o
                        .set("ok", false)
                        .set("code", f.code.as_str())
                        .set("message", f.message)
                        .done(),
                }
            }
            Routed::Other(e) => js::event(&e),
        }
    }

    /// When to call `timeout` next (`performance.now()` ms), if ever.
    pub fn deadline(&self) -> Option<f64> {
        let engine = self.core.poll_timeout();
        [engine, self.next_ping]
            .into_iter()
            .flatten()
            .min()
            .map(|t| t as f64)
    }

    pub fn state(&self) -> String {
        self.core.state().as_str().to_owned()
    }

    /// The transport of the live connection (`wt`, `ws`, `sse`, `poll`).
    pub fn transport(&self) -> Option<String> {
        self.core.transport().map(|t| t.as_str().to_owned())
    }

    #[wasm_bindgen(js_name = pendingPublishes)]
    pub fn pending_publishes(&self) -> usize {
        self.core.pending_publishes()
    }
}

impl Engine {
    fn publish(
        &mut self,
        now: f64,
        topic: &str,
        event: Option<String>,
        data: Payload,
    ) -> Result<String, JsValue> {
        let now = ms(now);
        let id = self
            .core
            .publish(now, topic, event, data)
            .map_err(command_error)?;
        self.router.expect_ack(id.clone(), id.clone());
        self.tend(now);
        Ok(id)
    }

    /// Keeps the ping timer in step with the connection: armed while live
    /// on WebSocket, off otherwise.
    fn tend(&mut self, now: u64) {
        let on_ws = self.core.state() == State::Connected
            && self.core.transport() == Some(TransportKind::WebSocket);
        match (on_ws, self.next_ping) {
            (true, None) => self.next_ping = Some(now + PING_EVERY_MS),
            (false, Some(_)) => self.next_ping = None,
            _ => {}
        }
    }
}

/// What to report when a request was answered with an error status
/// (`HTTP 404: body`, the body cut at 4 KiB).
#[wasm_bindgen(js_name = httpFailure)]
pub fn http_failure(status: u16, body: &[u8]) -> String {
    livegate_core::client::http_failure(status, body)
}
