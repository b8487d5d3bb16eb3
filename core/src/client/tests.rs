//! The engine against a scripted gateway on a virtual clock: no sockets, no sleeps.

use super::*;
use crate::codec::Encoding;

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
        let connects: Vec<_> = self
            .actions()
            .into_iter()
            .filter_map(|a| match a {
                Action::Connect {
                    conn,
                    transport,
                    subscriptions,
                    ..
                } => Some((conn, transport, subscriptions)),
                _ => None,
            })
            .collect();
        assert_eq!(connects.len(), 1, "one connect expected: {connects:?}");
        connects.into_iter().next().unwrap()
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

#[test]
fn connects_subscribes_and_receives() {
    let mut h = Harness::new(config());
    h.c.subscribe(h.now, "t").unwrap();
    h.c.connect(h.now);
    let (conn, transport, _) = h.expect_connect();
    assert_eq!(transport, TransportKind::WebSocket);
    h.open(conn, 25_000);
    assert_eq!(h.c.state(), State::Connected);
    let sent = h.sent();
    assert!(
        matches!(&sent[..], [ClientFrame::Subscribe { topic, since: None, .. }] if topic == "t")
    );
    let ClientFrame::Subscribe { id, .. } = sent[0].clone() else {
        unreachable!()
    };
    h.frame(
        conn,
        ServerFrame::Subscribed {
            id,
            topic: "t".into(),
            epoch: "e1".into(),
            offset: 0,
            recovered: false,
            publications: vec![],
        },
    );
    for o in 1..=3 {
        h.frame(conn, ServerFrame::Publication(publication("t", "e1", o)));
    }
    let ev = h.events();
    assert_eq!(
        states(&ev),
        vec![
            (State::Connecting, "app_connect".into()),
            (State::Connected, "opened".into())
        ]
    );
    assert!(ev
        .iter()
        .any(|e| matches!(e, Event::Subscribed { topic, .. } if topic == "t")));
    assert_eq!(offsets(&ev), vec![1, 2, 3]);
    assert_eq!(
        h.c.position("t"),
        Some(&Position {
            epoch: "e1".into(),
            offset: 3
        })
    );
}

#[test]
fn reconnect_resumes_from_the_last_position_without_duplicates() {
    let (mut h, conn) = Harness::connected(config(), &["t"], 25_000);
    h.sent();
    h.frame(conn, ServerFrame::Publication(publication("t", "e1", 1)));
    h.frame(conn, ServerFrame::Publication(publication("t", "e1", 2)));
    h.c.handle_transport(h.now, conn, TransportEvent::Closed("reset".into()));
    assert_eq!(h.c.state(), State::Reconnecting);
    h.events();
    h.step();
    let (conn2, transport, _) = h.expect_connect();
    assert_eq!(
        transport,
        TransportKind::WebSocket,
        "the transport that worked is tried first"
    );
    h.open(conn2, 25_000);
    let sent = h.sent();
    let [ClientFrame::Subscribe {
        id,
        since: Some(since),
        ..
    }] = &sent[..]
    else {
        panic!("resubscribe with since: {sent:?}");
    };
    assert_eq!(
        since,
        &Position {
            epoch: "e1".into(),
            offset: 2
        }
    );
    // The replay overlaps what was seen (2) and a live duplicate follows (3).
    h.frame(
        conn2,
        ServerFrame::Subscribed {
            id: *id,
            topic: "t".into(),
            epoch: "e1".into(),
            offset: 4,
            recovered: true,
            publications: vec![
                publication("t", "e1", 2),
                publication("t", "e1", 3),
                publication("t", "e1", 4),
            ],
        },
    );
    h.frame(conn2, ServerFrame::Publication(publication("t", "e1", 3)));
    h.frame(conn2, ServerFrame::Publication(publication("t", "e1", 5)));
    let ev = h.events();
    assert_eq!(offsets(&ev), vec![3, 4, 5]);
    assert!(ev.iter().any(|e| matches!(
        e,
        Event::Recovered {
            recovered: true,
            ..
        }
    )));
}

#[test]
fn unrecoverable_resume_is_reported() {
    let (mut h, conn) = Harness::connected(config(), &["t"], 25_000);
    h.sent();
    h.frame(conn, ServerFrame::Publication(publication("t", "e1", 1)));
    h.events();
    h.c.handle_transport(h.now, conn, TransportEvent::Closed("restart".into()));
    h.step();
    let (conn2, ..) = h.expect_connect();
    h.open(conn2, 25_000);
    let id = match &h.sent()[..] {
        [ClientFrame::Subscribe { id, .. }] => *id,
        other => panic!("{other:?}"),
    };
    h.frame(
        conn2,
        ServerFrame::Subscribed {
            id,
            topic: "t".into(),
            epoch: "e2".into(),
            offset: 0,
            recovered: false,
            publications: vec![],
        },
    );
    h.frame(conn2, ServerFrame::Publication(publication("t", "e2", 1)));
    let ev = h.events();
    assert!(ev
        .iter()
        .any(|e| matches!(e, Event::Recovered { recovered: false, topic, .. } if topic == "t")));
    assert_eq!(
        offsets(&ev),
        vec![1],
        "the new epoch's first publication is delivered"
    );
    assert_eq!(
        h.c.position("t"),
        Some(&Position {
            epoch: "e2".into(),
            offset: 1
        })
    );
}

#[test]
fn falls_back_in_order_then_probes_the_better_transport() {
    let mut h = Harness::new(config());
    h.c.subscribe(h.now, "t").unwrap();
    h.c.connect(h.now);
    let (c1, t1, _) = h.expect_connect();
    assert_eq!(t1, TransportKind::WebSocket);
    h.c.handle_transport(h.now, c1, TransportEvent::Failed("503".into()));
    let (c2, t2, subs) = h.expect_connect();
    assert_eq!(t2, TransportKind::Sse, "next transport at once, no backoff");
    assert_eq!(subs, vec![("t".to_string(), None)]);
    h.c.handle_transport(h.now, c2, TransportEvent::Failed("503".into()));
    let (c3, t3, _) = h.expect_connect();
    assert_eq!(t3, TransportKind::LongPoll);
    h.c.handle_transport(h.now, c3, TransportEvent::Opened);
    assert_eq!(h.c.state(), State::Connected);
    assert_eq!(h.c.transport(), Some(TransportKind::LongPoll));
    // Keep the poll alive until the upgrade probe is due.
    let probe_at = h.now + h.c.config().upgrade_probe_ms;
    while h.now + 10_000 < probe_at {
        h.now += 10_000;
        h.c.handle_activity(h.now, c3);
    }
    h.actions();
    h.step();
    let acts = h.actions();
    assert!(acts.contains(&Action::Close { conn: c3 }), "{acts:?}");
    let connect = acts.iter().find_map(|a| match a {
        Action::Connect { transport, .. } => Some(*transport),
        _ => None,
    });
    assert_eq!(
        connect,
        Some(TransportKind::WebSocket),
        "probes the best transport again"
    );
}

#[test]
fn a_round_of_failures_backs_off_and_the_ceiling_grows() {
    let mut h = Harness::connecting(&[TransportKind::WebSocket]);
    let mut waits = Vec::new();
    for _ in 0..8 {
        let (conn, ..) = h.expect_connect();
        h.c.handle_transport(h.now, conn, TransportEvent::Failed("refused".into()));
        waits.push(h.step());
    }
    let b = Backoff::default();
    for (attempt, w) in waits.iter().enumerate() {
        assert!(
            (b.min_ms..=b.ceiling(attempt as u32)).contains(w),
            "attempt {attempt} waited {w}"
        );
    }
    assert!(
        waits[5..].iter().any(|w| *w > b.ceiling(1)),
        "later waits can exceed early ceilings: {waits:?}"
    );
}

#[test]
fn heartbeat_watchdog_replaces_a_silent_connection() {
    let (mut h, conn) = Harness::connected(config(), &[], 2_000);
    h.events();
    // Traffic keeps it alive...
    h.now += 2_500;
    h.c.handle_activity(h.now, conn);
    h.c.handle_timeout(h.now);
    assert_eq!(h.c.state(), State::Connected);
    // ...silence past heartbeat + margin does not.
    let waited = h.step();
    assert_eq!(waited, 3_000);
    assert_eq!(h.c.state(), State::Reconnecting);
    assert!(h.actions().contains(&Action::Close { conn }));
    assert_eq!(
        states(&h.events()),
        vec![(State::Reconnecting, "heartbeat_timeout".into())]
    );
}

#[test]
fn offline_publishes_are_sent_once_connected_and_retried_with_the_same_id() {
    let mut h = Harness::new(config());
    let data = Payload::from_json("{\"a\":1}").unwrap();
    let m1 = h.c.publish(h.now, "chat.x", None, data.clone()).unwrap();
    let m2 =
        h.c.publish(h.now, "chat.x", Some("ev".into()), data.clone())
            .unwrap();
    assert_ne!(m1, m2);
    h.c.connect(h.now);
    let (conn, ..) = h.expect_connect();
    h.open(conn, 25_000);
    let ids: Vec<Option<String>> = h
        .sent()
        .into_iter()
        .filter_map(|f| match f {
            ClientFrame::Publish { msg_id, .. } => Some(msg_id),
            _ => None,
        })
        .collect();
    assert_eq!(ids, vec![Some(m1.clone()), Some(m2.clone())]);
    // Lost before any ack: both go again, same ids, same order.
    h.c.handle_transport(h.now, conn, TransportEvent::Closed("reset".into()));
    h.step();
    let (conn2, ..) = h.expect_connect();
    h.open(conn2, 25_000);
    let again: Vec<(Option<u64>, Option<String>)> = h
        .sent()
        .into_iter()
        .filter_map(|f| match f {
            ClientFrame::Publish { id, msg_id, .. } => Some((id, msg_id)),
            _ => None,
        })
        .collect();
    assert_eq!(
        again.iter().map(|(_, m)| m.clone()).collect::<Vec<_>>(),
        vec![Some(m1.clone()), Some(m2)]
    );
    h.frame(
        conn2,
        ServerFrame::Ack {
            id: again[0].0,
            topic: "chat.x".into(),
            epoch: "e".into(),
            offset: 1,
        },
    );
    let ev = h.events();
    assert!(ev
        .iter()
        .any(|e| matches!(e, Event::Published { msg_id, .. } if *msg_id == m1)));
    assert_eq!(h.c.pending_publishes(), 1);
}

#[test]
fn offline_queue_is_bounded() {
    let mut cfg = config();
    cfg.offline_queue = 2;
    let mut h = Harness::new(cfg);
    let d = Payload::from_json("1").unwrap();
    h.c.publish(h.now, "a", None, d.clone()).unwrap();
    h.c.publish(h.now, "a", None, d.clone()).unwrap();
    assert_eq!(
        h.c.publish(h.now, "a", None, d),
        Err(CommandError::QueueFull(2))
    );
}

#[test]
fn one_way_transports_publish_over_http_and_retry_network_failures() {
    let mut cfg = config();
    cfg.transports = vec![TransportKind::Sse];
    let (mut h, _) = Harness::connected(cfg, &["t"], 25_000);
    let m =
        h.c.publish(h.now, "chat.x", None, Payload::from_json("1").unwrap())
            .unwrap();
    let acts = h.actions();
    assert!(matches!(&acts[..], [Action::HttpPublish { msg_id, .. }] if *msg_id == m));
    h.c.handle_http_publish(
        h.now,
        &m,
        Err(HttpPublishError {
            code: "io".into(),
            message: "reset".into(),
            retry: true,
        }),
    );
    assert!(
        h.actions().is_empty(),
        "no retry at once: the gateway may be down"
    );
    let waited = h.step();
    assert!(
        (500..=1000).contains(&waited),
        "retried after a backoff delay: {waited}"
    );
    let acts = h.actions();
    assert!(
        matches!(&acts[..], [Action::HttpPublish { msg_id, .. }] if *msg_id == m),
        "retried: {acts:?}"
    );
    // One request at a time, in order: the second waits for the first.
    let m2 =
        h.c.publish(h.now, "chat.x", None, Payload::from_json("2").unwrap())
            .unwrap();
    assert!(h.actions().is_empty(), "the second publish waits");
    h.c.handle_http_publish(
        h.now,
        &m,
        Ok(Position {
            epoch: "e".into(),
            offset: 1,
        }),
    );
    assert!(h
        .events()
        .iter()
        .any(|e| matches!(e, Event::Published { .. })));
    let acts = h.actions();
    assert!(
        matches!(&acts[..], [Action::HttpPublish { msg_id, .. }] if *msg_id == m2),
        "{acts:?}"
    );
}

#[test]
fn server_disconnect_without_reconnect_closes_for_good() {
    let (mut h, conn) = Harness::connected(config(), &[], 25_000);
    h.events();
    h.frame(
        conn,
        ServerFrame::Disconnect {
            code: "frame_too_large".into(),
            reason: "too big".into(),
            reconnect: false,
        },
    );
    assert_eq!(h.c.state(), State::Closed);
    assert_eq!(h.c.poll_timeout(), None, "no retry is scheduled");
    assert_eq!(
        states(&h.events()),
        vec![(State::Closed, "frame_too_large".into())]
    );
    assert_eq!(h.c.subscribe(h.now, "t"), Err(CommandError::Closed));
}

#[test]
fn server_disconnect_with_reconnect_retries() {
    let (mut h, conn) = Harness::connected(config(), &[], 25_000);
    h.frame(
        conn,
        ServerFrame::Disconnect {
            code: "slow_consumer".into(),
            reason: "behind".into(),
            reconnect: true,
        },
    );
    assert_eq!(h.c.state(), State::Reconnecting);
    h.step();
    h.expect_connect();
}

#[test]
fn garbage_and_unasked_subscriptions_are_errors_that_reconnect() {
    let (mut h, conn) = Harness::connected(config(), &["t"], 25_000);
    h.events();
    h.c.handle_frame(h.now, conn, b"\x00garbage{{");
    assert_eq!(h.c.state(), State::Reconnecting);
    let ev = h.events();
    assert!(ev
        .iter()
        .any(|e| matches!(e, Event::Error { code, .. } if code == "protocol_error")));
    h.step();
    let (conn2, ..) = h.expect_connect();
    h.open(conn2, 25_000);
    h.frame(
        conn2,
        ServerFrame::Subscribed {
            id: Some(999),
            topic: "never".into(),
            epoch: "e".into(),
            offset: 0,
            recovered: false,
            publications: vec![],
        },
    );
    assert_eq!(h.c.state(), State::Reconnecting);
    // Frames for a connection that is gone change nothing.
    h.c.handle_frame(h.now, conn, b"{}");
    h.c.handle_transport(h.now, conn, TransportEvent::Closed("late".into()));
    assert_eq!(h.c.state(), State::Reconnecting);
}

#[test]
fn connect_timeout_moves_to_the_next_transport() {
    let mut h = Harness::new(config());
    h.c.subscribe(h.now, "t").unwrap();
    h.c.connect(h.now);
    let (c1, ..) = h.expect_connect();
    let waited = h.step();
    assert_eq!(waited, h.c.config().connect_timeout_ms);
    let acts = h.actions();
    assert!(acts.contains(&Action::Close { conn: c1 }));
    assert!(acts.iter().any(|a| matches!(
        a,
        Action::Connect {
            transport: TransportKind::Sse,
            ..
        }
    )));
}

#[test]
fn one_way_subscription_changes_reopen_with_positions() {
    let mut cfg = config();
    cfg.transports = vec![TransportKind::Sse];
    let mut h = Harness::new(cfg);
    h.c.subscribe(h.now, "a").unwrap();
    h.c.connect(h.now);
    let (conn, ..) = h.expect_connect();
    h.open(conn, 25_000);
    h.frame(
        conn,
        ServerFrame::Subscribed {
            id: None,
            topic: "a".into(),
            epoch: "e".into(),
            offset: 4,
            recovered: false,
            publications: vec![],
        },
    );
    h.frame(conn, ServerFrame::Publication(publication("a", "e", 5)));
    h.c.subscribe(h.now, "b").unwrap();
    let acts = h.actions();
    assert!(acts.contains(&Action::Close { conn }));
    let subs = acts.iter().find_map(|a| match a {
        Action::Connect { subscriptions, .. } => Some(subscriptions.clone()),
        _ => None,
    });
    assert_eq!(
        subs,
        Some(vec![
            (
                "a".to_string(),
                Some(Position {
                    epoch: "e".into(),
                    offset: 5
                })
            ),
            ("b".to_string(), None)
        ])
    );
}

#[test]
fn close_fails_waiting_publishes_and_stops() {
    let mut h = Harness::new(config());
    let m =
        h.c.publish(h.now, "a", None, Payload::from_json("1").unwrap())
            .unwrap();
    h.c.close(h.now);
    let ev = h.events();
    assert!(ev.iter().any(|e| matches!(e, Event::PublishFailed { msg_id, code, .. } if *msg_id == m && code == "closed")));
    assert_eq!(h.c.state(), State::Closed);
    assert_eq!(h.c.poll_timeout(), None);
}

#[test]
fn one_way_transport_without_topics_checks_the_gateway_then_idles() {
    let mut h = Harness::connecting(&[TransportKind::Sse]);
    // No stream to open, but "connected" must mean the gateway answered.
    let (conn, transport, subs) = h.expect_connect();
    assert_eq!((transport, subs.len()), (TransportKind::Sse, 0));
    assert_eq!(h.c.state(), State::Connecting);
    h.c.handle_transport(h.now, conn, TransportEvent::Opened);
    assert_eq!(h.c.state(), State::Connected);
    assert_eq!(h.c.poll_timeout(), None, "no watchdog on an idle stream");
    let m =
        h.c.publish(h.now, "x", None, Payload::from_json("1").unwrap())
            .unwrap();
    assert!(matches!(&h.actions()[..], [Action::HttpPublish { msg_id, .. }] if *msg_id == m));
    h.c.subscribe(h.now, "t").unwrap();
    let acts = h.actions();
    assert!(acts
        .iter()
        .any(|a| matches!(a, Action::Close { conn: c } if *c == conn)));
    let subs: Vec<_> = acts
        .iter()
        .find_map(|a| match a {
            Action::Connect { subscriptions, .. } => Some(subscriptions.clone()),
            _ => None,
        })
        .expect("the stream opens with the topic");
    assert_eq!(subs, vec![("t".to_string(), None)]);
}

#[test]
fn one_way_topics_that_change_while_opening_reopen_the_stream() {
    let mut h = Harness::connecting(&[TransportKind::Sse]);
    let (probe, _, subs) = h.expect_connect();
    assert!(subs.is_empty());
    // The app subscribes while the gateway check is on its way.
    h.c.subscribe(h.now, "t").unwrap();
    assert!(
        h.actions().is_empty(),
        "nothing to do before the check answers"
    );
    h.c.handle_transport(h.now, probe, TransportEvent::Opened);
    let (_, transport, subs) = h.expect_connect();
    assert_eq!(transport, TransportKind::Sse);
    assert_eq!(
        subs,
        vec![("t".to_string(), None)],
        "reopened with the topic"
    );
}

#[test]
fn one_way_transport_without_topics_fails_when_the_gateway_is_down() {
    let mut h = Harness::connecting(&[TransportKind::Sse]);
    let (conn, _, _) = h.expect_connect();
    h.c.handle_transport(h.now, conn, TransportEvent::Failed("refused".into()));
    assert_ne!(h.c.state(), State::Connected);
    assert!(h.c.poll_timeout().is_some(), "a retry is scheduled");
}

#[test]
fn when_every_transport_failed_each_round_tries_them_all() {
    let mut h = Harness::new(config());
    h.c.subscribe(h.now, "t").unwrap();
    h.c.connect(h.now);
    for _round in 0..3 {
        let mut seen = Vec::new();
        for _ in 0..3 {
            let (conn, transport, _) = h.expect_connect();
            seen.push(transport);
            h.c.handle_transport(h.now, conn, TransportEvent::Failed("down".into()));
        }
        assert_eq!(
            seen,
            vec![
                TransportKind::WebSocket,
                TransportKind::Sse,
                TransportKind::LongPoll
            ]
        );
        h.step();
    }
}

#[test]
fn an_http_publish_in_flight_keeps_its_place_when_websocket_returns() {
    let mut cfg = config();
    cfg.upgrade_probe_ms = 5_000;
    let mut h = Harness::new(cfg);
    h.c.subscribe(h.now, "t").unwrap();
    h.c.connect(h.now);
    let (c1, ..) = h.expect_connect();
    h.c.handle_transport(h.now, c1, TransportEvent::Failed("503".into()));
    let (c2, t2, _) = h.expect_connect();
    assert_eq!(t2, TransportKind::Sse);
    h.open(c2, 25_000);
    let first =
        h.c.publish(h.now, "chat.x", None, Payload::from_json("1").unwrap())
            .unwrap();
    assert!(matches!(&h.actions()[..], [Action::HttpPublish { .. }]));
    // The probe moves to WebSocket while the HTTP publish is still out.
    h.now += 5_000;
    h.c.handle_activity(h.now, c2);
    h.c.handle_timeout(h.now);
    let (c3, t3, _) = h.expect_connect();
    assert_eq!(t3, TransportKind::WebSocket);
    h.open(c3, 25_000);
    h.sent();
    let second =
        h.c.publish(h.now, "chat.x", None, Payload::from_json("2").unwrap())
            .unwrap();
    assert!(
        h.sent().is_empty(),
        "the second waits for the first's answer"
    );
    h.c.handle_http_publish(
        h.now,
        &first,
        Ok(Position {
            epoch: "e".into(),
            offset: 1,
        }),
    );
    let ids: Vec<Option<String>> = h
        .sent()
        .into_iter()
        .filter_map(|f| match f {
            ClientFrame::Publish { msg_id, .. } => Some(msg_id),
            _ => None,
        })
        .collect();
    assert_eq!(ids, vec![Some(second)]);
}

#[test]
fn close_fails_an_http_publish_in_flight() {
    let mut h = Harness::connecting(&[TransportKind::Sse]);
    let (conn, _, _) = h.expect_connect();
    h.c.handle_transport(h.now, conn, TransportEvent::Opened);
    let m =
        h.c.publish(h.now, "x", None, Payload::from_json("1").unwrap())
            .unwrap();
    assert!(matches!(&h.actions()[..], [Action::HttpPublish { .. }]));
    h.c.close(h.now);
    assert!(h
        .events()
        .iter()
        .any(|e| matches!(e, Event::PublishFailed { msg_id, .. } if *msg_id == m)));
    assert_eq!(h.c.pending_publishes(), 0);
}
