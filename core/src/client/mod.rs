//! The sans-IO client every livegate client drives.
//!
//! [`Client`] takes commands (`connect`, `subscribe`, `publish`, `close`),
//! what the driver saw (`handle_transport`, `handle_frame`,
//! `handle_activity`, `handle_discovery`, `handle_http_publish`) and time
//! (`handle_timeout`), and answers with [`Action`]s for the driver
//! (`poll_action`), [`Event`]s for the app (`poll_event`) and the next
//! deadline (`poll_timeout`). It never reads a clock or touches a socket:
//! `now` is milliseconds on any monotonic clock the driver chooses. After
//! every input, drain `poll_action` and `poll_event`, then sleep until
//! `poll_timeout`.
//!
//! Around the engine, what every driver would otherwise write again: the
//! exact request of each transport ([`Request`], [`Open`], carried by
//! [`Action::Connect`]), WebTransport discovery ([`Action::Discover`],
//! [`CertHashInfo`]), the SSE and long-poll parsers ([`SseParser`],
//! [`Poller`]), which HTTP publish outcomes are retried
//! ([`classify_response`]) and the [`Router`] from events to subscription
//! handles and ack waiters. `docs/client.md` describes the rules.

mod backoff;
mod discovery;
mod inbound;
mod outbox;
mod poll;
mod publish;
mod request;
mod router;
mod sse;
pub mod token;
mod types;

#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, HashMap, VecDeque};

use outbox::PendingPublish;

pub use backoff::{Backoff, Rng};
pub use discovery::{parse_cert_hash, CertHashInfo};
pub use poll::{PollAnswer, Poller};
pub use publish::{classify_response, publish_request, HttpPublishError};
pub use request::{http_failure, Method, Open, Request, Target};
pub use router::{Ack, PublishFailure, Routed, Router, SubscriptionEvent};
pub use sse::{SseError, SseEvent, SseItem, SseParser};
/// Largest frame a client accepts from a gateway (a WebSocket message, an
/// SSE event, a length-prefixed WebTransport frame).
pub const MAX_FRAME: usize = 16 << 20;

pub use types::{
    Action, ClientConfig, CommandError, Event, Reason, State, TransportEvent, TransportKind,
};

use crate::codec::Encoding;
use crate::error::ErrorCode;
use crate::payload::Payload;
use crate::protocol::{ClientFrame, Position, Publication, ServerFrame};
use crate::topic::{validate_event, validate_topic};

/// The engine's timers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Timer {
    /// When to make the next connection attempt.
    Reconnect = 0,
    /// When an attempt that has not opened is given up.
    ConnectTimeout = 1,
    /// When a silent connection is declared dead.
    PeerSilence = 2,
    /// When to leave a fallback transport and try the better ones.
    UpgradeProbe = 3,
    /// When to send HTTP publishes again after one could not be delivered.
    PublishRetry = 4,
    /// When to ask the app for a new connection token.
    TokenRefresh = 5,
}

const TIMERS: [Timer; 6] = [
    Timer::Reconnect,
    Timer::ConnectTimeout,
    Timer::PeerSilence,
    Timer::UpgradeProbe,
    Timer::PublishRetry,
    Timer::TokenRefresh,
];

#[derive(Debug)]
struct Conn {
    id: u64,
    transport: TransportKind,
    encoding: Encoding,
    greeted: bool,
    heartbeat_ms: u64,
    /// The topics a one-way transport's request named.
    topics: Vec<String>,
}

impl Conn {
    /// A one-way transport opened with no topic: the driver only checks that
    /// the gateway answers, and its "opened" is the greeting.
    fn probe(&self) -> bool {
        !self.transport.bidirectional() && self.topics.is_empty()
    }
}

#[derive(Debug, Default)]
struct Sub {
    /// Last publication handled (or where the stream started).
    position: Option<Position>,
}

/// The client engine. See the module docs for how to drive it.
#[derive(Debug)]
pub struct Client {
    config: ClientConfig,
    state: State,
    rng: Rng,
    instance: String,
    next_seq: u64,
    next_req: u64,
    next_conn: u64,
    conn: Option<Conn>,
    attempt: u32,
    tried: Vec<TransportKind>,
    skip_until: HashMap<TransportKind, u64>,
    subs: BTreeMap<String, Sub>,
    /// Subscribe requests in flight on a bidirectional transport.
    pending_subs: HashMap<u64, String>,
    outbox: VecDeque<PendingPublish>,
    /// Publishes sent on the current bidirectional connection, by request id.
    inflight: HashMap<u64, PendingPublish>,
    /// Publishes handed to the driver as HTTP requests, by msg_id.
    inflight_http: HashMap<String, PendingPublish>,
    timers: [Option<u64>; 6],
    /// HTTP publishes that failed in a row (paces their retries).
    publish_failures: u32,
    actions: VecDeque<Action>,
    events: VecDeque<Event>,
}

impl Client {
    /// A client with `config`; `seed` drives jitter and the msg_id prefix
    /// (pass real randomness in production, a constant in tests).
    pub fn new(config: ClientConfig, seed: u64) -> Self {
        let mut rng = Rng::new(seed);
        let instance = base36(rng.next_u64(), 8);
        Self {
            config,
            state: State::Disconnected,
            rng,
            instance,
            next_seq: 1,
            next_req: 1,
            next_conn: 1,
            conn: None,
            attempt: 0,
            tried: Vec::new(),
            skip_until: HashMap::new(),
            subs: BTreeMap::new(),
            pending_subs: HashMap::new(),
            outbox: VecDeque::new(),
            inflight: HashMap::new(),
            inflight_http: HashMap::new(),
            timers: [None; 6],
            publish_failures: 0,
            actions: VecDeque::new(),
            events: VecDeque::new(),
        }
    }

    // ---- getters ----

    /// The current state.
    pub fn state(&self) -> State {
        self.state
    }

    /// The transport of the live connection, if any.
    pub fn transport(&self) -> Option<TransportKind> {
        self.conn
            .as_ref()
            .filter(|c| c.greeted)
            .map(|c| c.transport)
    }

    /// The last position handled on a topic.
    pub fn position(&self, topic: &str) -> Option<&Position> {
        self.subs.get(topic).and_then(|s| s.position.as_ref())
    }

    /// Topics subscribed.
    pub fn topics(&self) -> impl Iterator<Item = &str> {
        self.subs.keys().map(String::as_str)
    }

    /// Publishes waiting to be sent or acknowledged.
    pub fn pending_publishes(&self) -> usize {
        self.outbox.len() + self.inflight.len() + self.inflight_http.len()
    }

    /// The settings.
    pub fn config(&self) -> &ClientConfig {
        &self.config
    }

    // ---- outputs ----

    /// The next thing the driver must do.
    #[must_use]
    pub fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    /// The next thing the app should hear.
    #[must_use]
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// When to call [`Client::handle_timeout`] next.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<u64> {
        self.timers.iter().flatten().copied().min()
    }

    // ---- commands ----

    /// Starts connecting (from `Disconnected`; otherwise nothing happens).
    pub fn connect(&mut self, now: u64) {
        if self.state == State::Disconnected {
            self.set_state(State::Connecting, Reason::AppConnect);
            self.start_attempt(now);
        }
    }

    /// Replaces the connection token: later connections send it, and a live
    /// WebSocket or WebTransport connection gets a `refresh` frame with it
    /// (no reconnect). With `valid_for_ms`, an [`Event::TokenNeeded`]
    /// comes at four fifths of that time ([`token::refresh_after_ms`]).
    pub fn set_token(&mut self, now: u64, token: String, valid_for_ms: Option<u64>) {
        self.timers[Timer::TokenRefresh as usize] =
            valid_for_ms.map(|v| now + token::refresh_after_ms(v));
        if let Some((conn, true)) = self.live() {
            self.send(
                conn,
                &ClientFrame::Refresh {
                    token: token.clone(),
                },
            );
        }
        self.config.token = Some(token);
    }

    /// Stops for good: closes the connection and fails waiting publishes.
    pub fn close(&mut self, _now: u64) {
        if self.state == State::Closed {
            return;
        }
        self.shut(Reason::AppClose);
    }

    /// Subscribes to a topic; it is (re)subscribed on every connection, from
    /// the last position handled.
    pub fn subscribe(&mut self, now: u64, topic: &str) -> Result<(), CommandError> {
        self.subscribe_since(now, topic, None)
    }

    /// Like [`Client::subscribe`], resuming from `since` (a position the app
    /// kept, say across page loads): the gateway replays what came after it,
    /// and the first `subscribed` is a `Recovered` that says whether all of
    /// it could be. A topic already held keeps its own position.
    pub fn subscribe_since(
        &mut self,
        now: u64,
        topic: &str,
        since: Option<Position>,
    ) -> Result<(), CommandError> {
        if self.state == State::Closed {
            return Err(CommandError::Closed);
        }
        validate_topic(topic).map_err(|e| CommandError::BadName(e.to_string()))?;
        if self.subs.contains_key(topic) {
            return Ok(());
        }
        self.subs.insert(topic.to_owned(), Sub { position: since });
        match self.live() {
            Some((_, true)) => self.send_subscribe(topic),
            Some((_, false)) => self.reopen(now),
            None => {}
        }
        Ok(())
    }

    /// Stops receiving a topic.
    pub fn unsubscribe(&mut self, now: u64, topic: &str) {
        if self.subs.remove(topic).is_none() {
            return;
        }
        match self.live() {
            Some((conn, true)) => {
                let frame = ClientFrame::Unsubscribe {
                    id: None,
                    topic: topic.to_owned(),
                };
                self.send(conn, &frame);
            }
            Some((_, false)) => self.reopen(now),
            None => {}
        }
    }

    /// Sends a `ping` frame on a live bidirectional connection; its `pong`
    /// is activity. For drivers that cannot see WebSocket Ping/Pong (a
    /// browser's `WebSocket`), which would otherwise look silent to the
    /// heartbeat watchdog. Returns whether a frame was sent.
    pub fn ping(&mut self) -> bool {
        let Some((conn, true)) = self.live() else {
            return false;
        };
        self.send(conn, &ClientFrame::Ping { id: None });
        true
    }

    // ---- inputs ----

    /// What happened to connection `conn` (stale connections are ignored).
    pub fn handle_transport(&mut self, now: u64, conn: u64, event: TransportEvent) {
        let Some(c) = self.conn.as_ref().filter(|c| c.id == conn) else {
            return;
        };
        let (transport, greeted, probe) = (c.transport, c.greeted, c.probe());
        match event {
            // An idle one-way transport: nothing to watch until a subscribe.
            TransportEvent::Opened if probe && !greeted => self.greet(now, 0),
            TransportEvent::Opened => {
                // Long-poll has no greeting frame: its first answer is one.
                if transport == TransportKind::LongPoll && !greeted {
                    let hb = self.config.poll_timeout_ms;
                    self.greet(now, hb);
                }
            }
            TransportEvent::Failed(error) | TransportEvent::Closed(error) if !greeted => {
                self.transport_failed(now, Reason::TransportFailed { transport, error });
            }
            TransportEvent::Failed(error) | TransportEvent::Closed(error) => {
                self.connection_lost(now, Reason::ConnectionLost { transport, error });
            }
        }
    }

    /// Traffic without a frame (an SSE comment, a WebSocket ping): the
    /// connection is alive.
    pub fn handle_activity(&mut self, now: u64, conn: u64) {
        if let Some(c) = self
            .conn
            .as_ref()
            .filter(|c| c.id == conn && c.greeted && c.heartbeat_ms > 0)
        {
            let deadline = now + c.heartbeat_ms + self.config.heartbeat_margin_ms;
            self.timers[Timer::PeerSilence as usize] = Some(deadline);
        }
    }

    /// One frame received on connection `conn`.
    pub fn handle_frame(&mut self, now: u64, conn: u64, bytes: &[u8]) {
        let Some(c) = self.conn.as_ref().filter(|c| c.id == conn) else {
            return;
        };
        let encoding = if c.transport.bidirectional() {
            c.encoding
        } else {
            Encoding::Json
        };
        match encoding.decode_server(bytes) {
            Ok(frame) => {
                self.handle_activity(now, conn);
                self.handle_server_frame(now, frame);
            }
            Err(e) => self.protocol_error(now, format!("undecodable frame: {e}")),
        }
    }

    /// The answer to an [`Action::Discover`] (a request that got no answer
    /// is reported as `handle_transport(.., Failed(why))`). When WebTransport
    /// can be used, an [`Action::Connect`] for it follows; otherwise the
    /// attempt fails and the next transport is tried.
    pub fn handle_discovery(&mut self, now: u64, conn: u64, status: u16, body: &[u8]) {
        let Some(c) = self.conn.as_ref().filter(|c| c.id == conn && !c.greeted) else {
            return;
        };
        let (transport, encoding) = (c.transport, c.encoding);
        if transport != TransportKind::WebTransport {
            return;
        }
        match CertHashInfo::from_response(status, body) {
            Ok(info) => self.actions.push_back(Action::Connect {
                conn,
                transport,
                encoding,
                subscriptions: Vec::new(),
                open: Open::WebTransport {
                    request: request::webtransport(
                        &info.url,
                        encoding,
                        self.config.token.as_deref(),
                    ),
                    cert_hash: info.hash,
                },
            }),
            Err(error) => {
                self.actions.push_back(Action::Close { conn });
                self.transport_failed(now, Reason::TransportFailed { transport, error });
            }
        }
    }

    /// Runs the timers due at `now`.
    pub fn handle_timeout(&mut self, now: u64) {
        for timer in TIMERS {
            let slot = &mut self.timers[timer as usize];
            if slot.is_some_and(|t| t <= now) {
                *slot = None;
                self.fire(now, timer);
            }
        }
    }

    // ---- internals ----

    fn fire(&mut self, now: u64, timer: Timer) {
        match timer {
            Timer::Reconnect => self.start_attempt(now),
            Timer::PublishRetry => self.flush_outbox(),
            Timer::TokenRefresh => self.events.push_back(Event::TokenNeeded { expired: false }),
            Timer::ConnectTimeout => {
                if let Some(c) = self.conn.as_ref().filter(|c| !c.greeted) {
                    let reason = Reason::ConnectTimeout(c.transport);
                    let id = c.id;
                    self.actions.push_back(Action::Close { conn: id });
                    self.transport_failed(now, reason);
                }
            }
            Timer::PeerSilence => {
                if let Some(c) = self.conn.as_ref().filter(|c| c.greeted) {
                    let reason = Reason::HeartbeatTimeout(c.transport);
                    self.connection_lost(now, reason);
                }
            }
            Timer::UpgradeProbe => {
                let Some(from) = self.transport() else { return };
                // Forget recent failures of the better transports and start
                // again from the top; resume makes the switch lossless.
                let better: Vec<TransportKind> = self
                    .config
                    .transports
                    .iter()
                    .copied()
                    .take_while(|t| *t != from)
                    .collect();
                if better.is_empty() {
                    return;
                }
                for t in better {
                    self.skip_until.remove(&t);
                }
                self.drop_conn();
                self.set_state(State::Reconnecting, Reason::UpgradeProbe { from });
                self.tried.clear();
                self.start_attempt(now);
            }
        }
    }

    fn set_state(&mut self, to: State, reason: Reason) {
        let from = self.state;
        self.state = to;
        if from != to {
            self.events.push_back(Event::State { from, to, reason });
        }
    }

    /// The live connection's id and whether it is bidirectional.
    fn live(&self) -> Option<(u64, bool)> {
        self.conn
            .as_ref()
            .filter(|c| c.greeted)
            .map(|c| (c.id, c.transport.bidirectional()))
    }

    fn pick_transport(&self, now: u64) -> Option<TransportKind> {
        let order = &self.config.transports;
        let open = |t: &&TransportKind| {
            !self.tried.contains(t) && self.skip_until.get(*t).is_none_or(|u| *u <= now)
        };
        if let Some(t) = order.iter().find(open) {
            return Some(*t);
        }
        // Every transport failed recently: rather than wait for the skips to
        // run out, each backoff round tries them all again, in order.
        let skipped = |t: &TransportKind| self.skip_until.get(t).is_some_and(|u| *u > now);
        if order.iter().all(skipped) {
            return order.iter().find(|t| !self.tried.contains(t)).copied();
        }
        None
    }

    fn start_attempt(&mut self, now: u64) {
        if self.state == State::Closed {
            return;
        }
        let Some(transport) = self.pick_transport(now) else {
            self.schedule_retry(now);
            return;
        };
        self.tried.push(transport);
        let id = self.next_conn;
        self.next_conn += 1;
        let encoding = if transport.bidirectional() {
            self.config.encoding
        } else {
            Encoding::Json
        };
        let subscriptions = if transport.bidirectional() {
            Vec::new()
        } else {
            self.subs
                .iter()
                .map(|(t, s)| (t.clone(), s.position.clone()))
                .collect()
        };
        self.conn = Some(Conn {
            id,
            transport,
            encoding,
            greeted: false,
            heartbeat_ms: self.config.poll_timeout_ms,
            topics: subscriptions.iter().map(|(t, _)| t.clone()).collect(),
        });
        // Discovery counts as part of opening: the same timeout covers both.
        self.timers[Timer::ConnectTimeout as usize] = Some(now + self.config.connect_timeout_ms);
        let token = self.config.token.as_deref();
        let open = match transport {
            TransportKind::WebTransport => {
                let request = request::cert_hash(token);
                self.actions
                    .push_back(Action::Discover { conn: id, request });
                return;
            }
            TransportKind::WebSocket => Open::WebSocket(request::websocket(encoding, token)),
            // A one-way transport with no topic has no stream to open: the
            // driver checks that the gateway answers (so "connected" means it
            // does); publishes go over HTTP, and the first subscribe opens
            // the stream.
            TransportKind::Sse | TransportKind::LongPoll if subscriptions.is_empty() => {
                Open::Check(request::check(token))
            }
            TransportKind::Sse => Open::EventStream(request::event_stream(&subscriptions, token)),
            TransportKind::LongPoll => Open::LongPoll(Poller::new(
                request::long_poll(&subscriptions, token),
                self.config.poll_timeout_ms,
            )),
        };
        self.actions.push_back(Action::Connect {
            conn: id,
            transport,
            encoding,
            subscriptions,
            open,
        });
    }

    fn schedule_retry(&mut self, now: u64) {
        self.tried.clear();
        let delay = self.config.backoff.delay(self.attempt, &mut self.rng);
        self.attempt = self.attempt.saturating_add(1);
        self.timers[Timer::Reconnect as usize] = Some(now + delay);
    }

    fn drop_conn(&mut self) {
        if let Some(c) = self.conn.take() {
            self.actions.push_back(Action::Close { conn: c.id });
        }
        for t in [
            Timer::ConnectTimeout,
            Timer::PeerSilence,
            Timer::UpgradeProbe,
        ] {
            self.timers[t as usize] = None;
        }
        self.pending_subs.clear();
        let mut back: Vec<PendingPublish> = self.inflight.drain().map(|(_, p)| p).collect();
        back.sort_by_key(|p| p.seq);
        self.requeue(back);
    }

    fn transport_failed(&mut self, now: u64, reason: Reason) {
        let transport = match &reason {
            Reason::TransportFailed { transport, .. } | Reason::ConnectTimeout(transport) => {
                *transport
            }
            _ => return,
        };
        self.conn = None;
        self.timers[Timer::ConnectTimeout as usize] = None;
        self.skip_until
            .insert(transport, now + self.config.transport_retry_ms);
        self.events.push_back(Event::Error {
            code: reason.error_code().unwrap_or(ErrorCode::TransportFailed),
            message: reason.to_string(),
        });
        // The next transport right away; backoff once every one was tried.
        self.start_attempt(now);
    }

    fn connection_lost(&mut self, now: u64, reason: Reason) {
        self.drop_conn();
        self.set_state(State::Reconnecting, reason);
        // The transport that just worked was not marked as failed, so it is
        // the first one tried again unless a better one's skip ran out.
        self.schedule_retry(now);
    }

    fn protocol_error(&mut self, now: u64, message: String) {
        self.events.push_back(Event::Error {
            code: ErrorCode::ProtocolError,
            message: message.clone(),
        });
        match self.conn.as_ref() {
            Some(c) if c.greeted => self.connection_lost(now, Reason::ProtocolError(message)),
            Some(c) => {
                let (id, transport) = (c.id, c.transport);
                self.actions.push_back(Action::Close { conn: id });
                self.transport_failed(
                    now,
                    Reason::TransportFailed {
                        transport,
                        error: message,
                    },
                );
            }
            None => {}
        }
    }

    fn shut(&mut self, reason: Reason) {
        if let Some(c) = self.conn.take() {
            self.actions.push_back(Action::Close { conn: c.id });
        }
        self.timers = [None; 6];
        let mut failed: Vec<PendingPublish> = self.outbox.drain(..).collect();
        failed.extend(self.inflight.drain().map(|(_, p)| p));
        failed.extend(self.inflight_http.drain().map(|(_, p)| p));
        failed.sort_by_key(|p| p.seq);
        for p in failed {
            self.events.push_back(Event::PublishFailed {
                msg_id: p.msg_id,
                code: ErrorCode::Closed,
                message: "the client closed before the publish was acknowledged".into(),
            });
        }
        self.set_state(State::Closed, reason);
    }

    fn greet(&mut self, now: u64, heartbeat_ms: u64) {
        let Some(c) = self.conn.as_mut() else { return };
        c.greeted = true;
        c.heartbeat_ms = heartbeat_ms;
        let (transport, bidirectional) = (c.transport, c.transport.bidirectional());
        self.attempt = 0;
        self.tried.clear();
        self.skip_until.remove(&transport);
        self.timers[Timer::ConnectTimeout as usize] = None;
        // heartbeat 0: an idle one-way transport with no stream to watch.
        self.timers[Timer::PeerSilence as usize] =
            (heartbeat_ms > 0).then(|| now + heartbeat_ms + self.config.heartbeat_margin_ms);
        if self.config.transports.first() != Some(&transport) {
            self.timers[Timer::UpgradeProbe as usize] = Some(now + self.config.upgrade_probe_ms);
        }
        self.set_state(State::Connected, Reason::Opened(transport));
        if bidirectional {
            let topics: Vec<String> = self.subs.keys().cloned().collect();
            for t in topics {
                self.send_subscribe(&t);
            }
        } else if self
            .conn
            .as_ref()
            .is_some_and(|c| !c.topics.iter().eq(self.subs.keys()))
        {
            // Topics came or went while the request was on its way: reopen
            // with the current ones.
            self.reopen(now);
            return;
        }
        self.flush_outbox();
    }

    /// Reopens a one-way transport so its request names the current topics.
    fn reopen(&mut self, now: u64) {
        let Some(transport) = self.transport() else {
            return;
        };
        self.drop_conn();
        self.set_state(State::Reconnecting, Reason::Resubscribe);
        self.skip_until.remove(&transport);
        // Same transport again: only its request changes.
        let before: Vec<TransportKind> = self
            .config
            .transports
            .iter()
            .copied()
            .take_while(|t| *t != transport)
            .collect();
        self.tried = before;
        self.start_attempt(now);
    }

    fn send(&mut self, conn: u64, frame: &ClientFrame) {
        if let Some(c) = self.conn.as_ref().filter(|c| c.id == conn) {
            let bytes = c.encoding.encode_client(frame);
            self.actions.push_back(Action::Send { conn, bytes });
        }
    }

    fn send_subscribe(&mut self, topic: &str) {
        let Some((conn, true)) = self.live() else {
            return;
        };
        let id = self.next_req;
        self.next_req += 1;
        self.pending_subs.insert(id, topic.to_owned());
        let since = self.subs.get(topic).and_then(|s| s.position.clone());
        let frame = ClientFrame::Subscribe {
            id: Some(id),
            topic: topic.to_owned(),
            since,
        };
        self.send(conn, &frame);
    }
}

fn base36(mut v: u64, len: usize) -> String {
    const A: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    (0..len)
        .map(|_| {
            let c = A[(v % 36) as usize] as char;
            v /= 36;
            c
        })
        .collect()
}
