//! The client engine fed by a hostile gateway and a chaotic network: random
//! frames (well-formed and not), transport events, commands and time. It
//! must never panic, never loop, and always keep its invariants.
#![no_main]

use libfuzzer_sys::fuzz_target;
use livegate_core::client::{Action, Client, ClientConfig, State, TransportEvent, TransportKind};
use livegate_core::protocol::{Publication, ServerFrame};
use livegate_core::{Encoding, Payload};

struct Bytes<'a>(&'a [u8]);

impl Bytes<'_> {
    fn byte(&mut self) -> Option<u8> {
        let (b, rest) = self.0.split_first()?;
        self.0 = rest;
        Some(*b)
    }
    fn take(&mut self, n: usize) -> &[u8] {
        let n = n.min(self.0.len());
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        a
    }
}

const TOPICS: [&str; 3] = ["a", "b.c", "$sys.x"];
const EPOCHS: [&str; 2] = ["e1", "e2"];

fn frame(b: &mut Bytes<'_>) -> Option<ServerFrame> {
    let kind = b.byte()?;
    let topic = TOPICS[(b.byte()? % 3) as usize].to_owned();
    let epoch = EPOCHS[(b.byte()? % 2) as usize].to_owned();
    let offset = u64::from(b.byte()? % 16);
    let id = Some(u64::from(b.byte()? % 8));
    let publication = |offset| Publication {
        topic: topic.clone(),
        epoch: epoch.clone(),
        offset,
        event: None,
        data: Payload::from_json("1").expect("valid"),
        time_ms: 0,
    };
    Some(match kind % 8 {
        0 => ServerFrame::Connected { client_id: "c".into(), heartbeat_ms: u64::from(b.byte()?) * 10 },
        1 => ServerFrame::Subscribed {
            id,
            topic: topic.clone(),
            epoch: epoch.clone(),
            offset,
            recovered: b.byte()? % 2 == 0,
            publications: (0..b.byte()? % 4).map(|i| publication(offset.saturating_sub(u64::from(i)))).collect(),
        },
        2 | 3 => ServerFrame::Publication(publication(offset)),
        4 => ServerFrame::Ack { id, topic, epoch, offset },
        5 => ServerFrame::Error { id, code: "bad_frame".into(), message: "x".into() },
        6 => ServerFrame::Disconnect { code: "x".into(), reason: "y".into(), reconnect: b.byte()? % 4 != 0 },
        _ => ServerFrame::Pong { id },
    })
}

fuzz_target!(|data: &[u8]| {
    let mut b = Bytes(data);
    let config = ClientConfig {
        transports: vec![
            TransportKind::WebTransport,
            TransportKind::WebSocket,
            TransportKind::Sse,
            TransportKind::LongPoll,
        ],
        encoding: Encoding::Json,
        offline_queue: 8,
        ..ClientConfig::default()
    };
    let mut c = Client::new(config, 1);
    let mut now = 0u64;
    let mut conns: Vec<u64> = Vec::new();
    c.connect(now);
    let mut steps = 0;
    while let Some(op) = b.byte() {
        steps += 1;
        if steps > 500 {
            break;
        }
        let conn = conns.last().copied().unwrap_or(0);
        match op % 12 {
            0 => c.handle_transport(now, conn, TransportEvent::Opened),
            1 => c.handle_transport(now, conn, TransportEvent::Failed("x".into())),
            2 => c.handle_transport(now, conn, TransportEvent::Closed("x".into())),
            3 => {
                let len = b.byte().unwrap_or(0) as usize;
                let raw = b.take(len).to_vec();
                c.handle_frame(now, conn, &raw);
            }
            4 | 5 => {
                if let Some(f) = frame(&mut b) {
                    c.handle_frame(now, conn, &Encoding::Json.encode_server(&f));
                }
            }
            6 => {
                now += u64::from(b.byte().unwrap_or(0)) * 200;
                c.handle_timeout(now);
            }
            7 => {
                let t = TOPICS[(b.byte().unwrap_or(0) % 3) as usize];
                let _ = c.subscribe(now, t);
            }
            8 => {
                let _ = c.publish(now, "a", None, Payload::from_json("2").expect("valid"));
            }
            // The answer to a WebTransport discovery: a usable one, or noise.
            10 => {
                let status = if b.byte().unwrap_or(0) % 2 == 0 { 200 } else { 404 };
                let good = br#"{"url":"https://127.0.0.1:4433/wt","algorithm":"sha-256","hash":"abababababababababababababababababababababababababababababababab"}"#;
                c.handle_discovery(now, conn, status, good);
            }
            11 => {
                let len = b.byte().unwrap_or(0) as usize;
                let raw = b.take(len).to_vec();
                c.handle_discovery(now, conn, 200, &raw);
            }
            _ => {
                if let Some(t) = c.poll_timeout() {
                    now = now.max(t);
                    c.handle_timeout(now);
                }
            }
        }
        // Drain: bounded, and consistent.
        for _ in 0..10_000 {
            match c.poll_action() {
                Some(Action::Connect { conn, .. } | Action::Discover { conn, .. }) => {
                    if conns.last() != Some(&conn) {
                        conns.push(conn);
                    }
                }
                Some(_) => {}
                None => break,
            }
        }
        assert!(c.poll_action().is_none(), "actions never run dry");
        for _ in 0..100_000 {
            if c.poll_event().is_none() {
                break;
            }
        }
        if c.state() == State::Closed {
            assert_eq!(c.poll_timeout(), None, "a closed client schedules nothing");
        }
        assert!(c.pending_publishes() <= 8, "offline queue bound");
    }
});
