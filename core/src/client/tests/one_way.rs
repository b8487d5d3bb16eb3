//! SSE and long-poll: the requests they carry, reopening on topic changes, the gateway check, their parsers in the loop.

use super::*;

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
fn sse_opens_with_the_exact_request_and_its_stream_drives_the_engine() {
    let mut cfg = config();
    cfg.transports = vec![TransportKind::Sse];
    cfg.token = Some("tok".into());
    let mut h = Harness::new(cfg);
    h.c.subscribe(h.now, "a").unwrap();
    h.c.connect(h.now);
    let (conn, _, _, open) = h.expect_open();
    let Open::EventStream(request) = open else {
        panic!("an event stream: {open:?}")
    };
    assert_eq!(request.path_and_query(), "/sse?topic=a");
    assert_eq!(request.method, Method::Get);
    assert_eq!(
        request.headers,
        vec![("authorization".to_string(), "Bearer tok".to_string())]
    );
    h.c.handle_transport(h.now, conn, TransportEvent::Opened);
    let stream = sse_bytes(&[
        Some(ServerFrame::Connected {
            client_id: "c".into(),
            heartbeat_ms: 2_000,
        }),
        Some(subscribed("a", "e", 0, false)),
        Some(ServerFrame::Publication(publication("a", "e", 1))),
        None,
        Some(ServerFrame::Publication(publication("a", "e", 2))),
    ]);
    // Torn at an awkward place: in the middle of a line.
    let mut parser = SseParser::new(MAX_FRAME);
    let (head, tail) = stream.split_at(stream.len() / 2 + 3);
    h.feed_sse(conn, &mut parser, head);
    h.feed_sse(conn, &mut parser, tail);
    let ev = h.events();
    assert_eq!(h.c.state(), State::Connected);
    assert_eq!(offsets(&ev), vec![1, 2]);
    assert_eq!(parser.last_event_id(), Some("a:e:2"));
    // The `: ping` comments are the heartbeat: they keep the stream alive...
    h.now += 2_500;
    h.feed_sse(conn, &mut parser, b": ping\n\n");
    h.now += 2_500;
    h.c.handle_timeout(h.now);
    assert_eq!(h.c.state(), State::Connected);
    // ...and silence past heartbeat + margin drops it.
    assert_eq!(h.step(), 500);
    assert_eq!(h.c.state(), State::Reconnecting);
    // The next stream resumes from the last position.
    h.step();
    let (_, _, _, open) = h.expect_open();
    assert_eq!(open.request().query_value("since"), Some("a:e:2"));
}

#[test]
fn long_poll_loops_with_the_cursor_the_gateway_returns() {
    let mut cfg = config();
    cfg.transports = vec![TransportKind::LongPoll];
    cfg.poll_timeout_ms = 2_000;
    let mut h = Harness::new(cfg);
    h.c.subscribe(h.now, "a").unwrap();
    h.c.connect(h.now);
    let (conn, _, _, open) = h.expect_open();
    let Open::LongPoll(mut poller) = open else {
        panic!("a poll loop: {open:?}")
    };
    assert_eq!(
        poller.next_request().path_and_query(),
        "/poll?topic=a&timeout_ms=0",
        "the first poll returns at once"
    );
    h.feed_poll(
        conn,
        &mut poller,
        &poll_body("a:e:0", &[subscribed("a", "e", 0, false)]),
    );
    assert_eq!(h.c.state(), State::Connected);
    assert_eq!(
        poller.next_request().path_and_query(),
        "/poll?topic=a&cursor=a%3Ae%3A0&timeout_ms=2000"
    );
    let body = poll_body(
        "a:e:2",
        &[
            ServerFrame::Publication(publication("a", "e", 1)),
            ServerFrame::Publication(publication("a", "e", 2)),
        ],
    );
    h.feed_poll(conn, &mut poller, &body);
    let ev = h.events();
    assert!(ev
        .iter()
        .any(|e| matches!(e, Event::Subscribed { topic, .. } if topic == "a")));
    assert_eq!(offsets(&ev), vec![1, 2]);
    // An empty answer at the gateway's timeout is the heartbeat.
    h.now += 2_000;
    h.feed_poll(conn, &mut poller, &poll_body("a:e:2", &[]));
    h.now += 2_500;
    h.c.handle_timeout(h.now);
    assert_eq!(h.c.state(), State::Connected);
    assert_eq!(
        h.step(),
        500,
        "silent past the poll timeout plus the margin"
    );
    assert_eq!(h.c.state(), State::Reconnecting);
}

#[test]
fn an_idle_one_way_transport_only_checks_health() {
    let mut h = Harness::connecting(&[TransportKind::LongPoll]);
    let (_, _, subs, open) = h.expect_open();
    assert!(subs.is_empty());
    assert_eq!(open, Open::Check(Request::get("/health")));
}
