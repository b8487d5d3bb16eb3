//! The engine against a scripted gateway on a virtual clock: no sockets, no
//! sleeps. `Harness` holds the engine and the clock; the gateway's side is
//! scripted per test, in the bytes the real gateway writes (`sse_bytes`,
//! `poll_body`), fed through the same parsers a driver uses.

mod fallback;
mod lifecycle;
mod one_way;
mod publish;
mod resume;
mod router;
mod token;

use super::*;
use crate::codec::Encoding;
use crate::cursor::format_cursor;

fn config() -> ClientConfig {
    ClientConfig {
        transports: vec![
            TransportKind::WebSocket,
            TransportKind::Sse,
            TransportKind::LongPoll,
        ],
        encoding: Encoding::Json,
        heartbeat_margin_ms: 1_000,
        ..ClientConfig::default()
    }
}

struct Harness {
    c: Client,
    now: u64,
}

fn publication(topic: &str, epoch: &str, offset: u64) -> Publication {
    Publication {
        topic: topic.into(),
        epoch: epoch.into(),
        offset,
        event: None,
        data: Payload::from_json(offset.to_string()).unwrap(),
        time_ms: 1_000 + offset,
    }
}

impl Harness {
    fn new(config: ClientConfig) -> Self {
        Self {
            c: Client::new(config, 99),
            now: 10_000,
        }
    }

    /// A client of only `transports`, told to connect.
    fn connecting(transports: &[TransportKind]) -> Self {
        let mut cfg = config();
        cfg.transports = transports.to_vec();
        let mut h = Self::new(cfg);
        h.c.connect(h.now);
        h
    }

    /// A client subscribed to `topics`, connected over its first transport.
    fn connected(config: ClientConfig, topics: &[&str], heartbeat_ms: u64) -> (Self, u64) {
        let mut h = Self::new(config);
        for t in topics {
            h.c.subscribe(h.now, t).unwrap();
        }
        h.c.connect(h.now);
        let (conn, ..) = h.expect_connect();
        h.open(conn, heartbeat_ms);
        (h, conn)
    }

    fn actions(&mut self) -> Vec<Action> {
        std::iter::from_fn(|| self.c.poll_action()).collect()
    }

    fn events(&mut self) -> Vec<Event> {
        std::iter::from_fn(|| self.c.poll_event()).collect()
    }

    /// Jumps to the next deadline and runs it; returns how far it was.
    fn step(&mut self) -> u64 {
        let t = self.c.poll_timeout().expect("a timer is armed");
        let waited = t.saturating_sub(self.now);
        self.now = self.now.max(t);
        self.c.handle_timeout(self.now);
        waited
    }

    fn frame(&mut self, conn: u64, frame: ServerFrame) {
        let bytes = Encoding::Json.encode_server(&frame);
        self.c.handle_frame(self.now, conn, &bytes);
    }

    /// Expects exactly one Connect among the actions; returns it.
    fn expect_connect(&mut self) -> (u64, TransportKind, Vec<(String, Option<Position>)>) {
        let (conn, transport, subscriptions, _) = self.expect_open();
        (conn, transport, subscriptions)
    }

    /// Expects exactly one Connect among the actions; returns it with how to open it.
    fn expect_open(&mut self) -> (u64, TransportKind, Vec<(String, Option<Position>)>, Open) {
        let connects: Vec<_> = self
            .actions()
            .into_iter()
            .filter_map(|a| match a {
                Action::Connect {
                    conn,
                    transport,
                    subscriptions,
                    open,
                    ..
                } => Some((conn, transport, subscriptions, open)),
                _ => None,
            })
            .collect();
        assert_eq!(connects.len(), 1, "one connect expected: {connects:?}");
        connects.into_iter().next().unwrap()
    }

    /// What a driver does with an SSE body chunk: each event's data is a
    /// frame, each comment activity.
    fn feed_sse(&mut self, conn: u64, parser: &mut SseParser, chunk: &[u8]) {
        for item in parser.push(chunk).unwrap() {
            match item {
                SseItem::Event(e) => self.c.handle_frame(self.now, conn, &e.data),
                SseItem::Comment => self.c.handle_activity(self.now, conn),
                SseItem::Retry(_) => {}
            }
        }
    }

    /// What a driver does with a long-poll answer: `Opened` after the
    /// first, then one activity and the frames.
    fn feed_poll(&mut self, conn: u64, poller: &mut Poller, body: &[u8]) {
        let first = !poller.answered();
        let answer = poller.handle_answer(200, body).unwrap();
        if first {
            self.c
                .handle_transport(self.now, conn, TransportEvent::Opened);
        }
        self.c.handle_activity(self.now, conn);
        for frame in answer.frames() {
            self.c.handle_frame(self.now, conn, frame);
        }
    }

    fn open(&mut self, conn: u64, heartbeat_ms: u64) {
        self.c
            .handle_transport(self.now, conn, TransportEvent::Opened);
        self.frame(
            conn,
            ServerFrame::Connected {
                client_id: "c1".into(),
                heartbeat_ms,
            },
        );
    }

    /// The msg_ids of the publish frames sent.
    fn sent_msg_ids(&mut self) -> Vec<Option<String>> {
        self.sent()
            .into_iter()
            .filter_map(|f| match f {
                ClientFrame::Publish { msg_id, .. } => Some(msg_id),
                _ => None,
            })
            .collect()
    }

    fn sent(&mut self) -> Vec<ClientFrame> {
        self.actions()
            .into_iter()
            .filter_map(|a| match a {
                Action::Send { bytes, .. } => Some(Encoding::Json.decode_client(&bytes).unwrap()),
                _ => None,
            })
            .collect()
    }
}

/// An SSE stream as the gateway writes it (`docs/protocol.md` §4.2): each
/// frame an event named by its type, publications with the cursor of every
/// topic as their id, a `: ping` comment where `None` stands.
fn sse_bytes(frames: &[Option<ServerFrame>]) -> Vec<u8> {
    let mut out = b"retry: 1000\n\n".to_vec();
    let mut positions: Vec<(String, Position)> = Vec::new();
    for f in frames {
        let Some(f) = f else {
            out.extend_from_slice(b": ping\n\n");
            continue;
        };
        let json = Encoding::Json.encode_server(f);
        let kind = match f {
            ServerFrame::Connected { .. } => "connected",
            ServerFrame::Subscribed { .. } => "subscribed",
            ServerFrame::Publication(p) => {
                match positions.iter_mut().find(|(t, _)| *t == p.topic) {
                    Some(slot) => slot.1 = p.position(),
                    None => positions.push((p.topic.clone(), p.position())),
                }
                let cursor = format_cursor(positions.iter().map(|(t, p)| (t.as_str(), p)));
                out.extend_from_slice(format!("id: {cursor}\n").as_bytes());
                "publication"
            }
            _ => "error",
        };
        out.extend_from_slice(format!("event: {kind}\ndata: ").as_bytes());
        out.extend_from_slice(&json);
        out.extend_from_slice(b"\n\n");
    }
    out
}

/// A long-poll answer as the gateway writes it (`docs/protocol.md` §4.3).
fn poll_body(cursor: &str, frames: &[ServerFrame]) -> Vec<u8> {
    let frames: Vec<String> = frames
        .iter()
        .map(|f| String::from_utf8(Encoding::Json.encode_server(f)).unwrap())
        .collect();
    format!(
        "{{\"cursor\":\"{cursor}\",\"frames\":[{}]}}",
        frames.join(",")
    )
    .into_bytes()
}

fn subscribed(topic: &str, epoch: &str, offset: u64, recovered: bool) -> ServerFrame {
    ServerFrame::Subscribed {
        id: None,
        topic: topic.into(),
        epoch: epoch.into(),
        offset,
        recovered,
        publications: vec![],
    }
}

fn offsets(events: &[Event]) -> Vec<u64> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Publication(p) => Some(p.offset),
            _ => None,
        })
        .collect()
}

fn states(events: &[Event]) -> Vec<(State, String)> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::State { to, reason, .. } => Some((*to, reason.code().to_owned())),
            _ => None,
        })
        .collect()
}
