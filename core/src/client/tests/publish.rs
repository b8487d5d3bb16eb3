//! Publishing: the offline queue, acks, msg_id retries, HTTP publishes and their classification.

use super::*;

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
    let ids = h.sent_msg_ids();
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
    h.c.handle_http_publish(h.now, &m, Err(HttpPublishError::io("reset")));
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
fn close_fails_waiting_publishes_and_stops() {
    let mut h = Harness::new(config());
    let m =
        h.c.publish(h.now, "a", None, Payload::from_json("1").unwrap())
            .unwrap();
    h.c.close(h.now);
    let ev = h.events();
    assert!(ev.iter().any(|e| matches!(e, Event::PublishFailed { msg_id, code, .. } if *msg_id == m && *code == ErrorCode::Closed)));
    assert_eq!(h.c.state(), State::Closed);
    assert_eq!(h.c.poll_timeout(), None);
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
    let ids = h.sent_msg_ids();
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

#[test]
fn http_publishes_carry_their_request_and_refusals_are_final() {
    let mut cfg = config();
    cfg.transports = vec![TransportKind::Sse];
    cfg.api_key = Some("secret".into());
    let (mut h, _) = Harness::connected(cfg, &[], 0);
    h.events();
    let m =
        h.c.publish(
            h.now,
            "chat.x",
            Some("said".into()),
            Payload::from_json("1").unwrap(),
        )
        .unwrap();
    let request = match &h.actions()[..] {
        [Action::HttpPublish { request, .. }] => request.clone(),
        other => panic!("{other:?}"),
    };
    assert_eq!(request.method, Method::Post);
    assert_eq!(
        request.path_and_query(),
        format!("/api/publish/chat.x?msg_id={m}&event=said")
    );
    assert!(request
        .headers
        .contains(&("authorization".to_string(), "Bearer secret".to_string())));
    assert_eq!(&request.body[..], b"1");
    // What the gateway answered decides: a 403 is final, with its code.
    let outcome = classify_response(
        403,
        br#"{"type":"error","code":"publish_forbidden","message":"reserved"}"#,
    );
    h.c.handle_http_publish(h.now, &m, outcome);
    assert_eq!(
        h.events(),
        vec![Event::PublishFailed {
            msg_id: m,
            code: ErrorCode::PublishForbidden,
            message: "reserved".into()
        }]
    );
    assert_eq!(h.c.poll_timeout(), None, "no retry");
    // A 503 is sent again, same msg_id, after a backoff delay.
    let m2 =
        h.c.publish(h.now, "chat.x", None, Payload::from_json("2").unwrap())
            .unwrap();
    h.actions();
    let outcome = classify_response(503, br#"{"code":"unavailable","message":"disk"}"#);
    h.c.handle_http_publish(h.now, &m2, outcome);
    assert!(h.events().is_empty());
    h.step();
    assert!(matches!(&h.actions()[..], [Action::HttpPublish { msg_id, .. }] if *msg_id == m2));
    h.c.handle_http_publish(
        h.now,
        &m2,
        classify_response(200, br#"{"topic":"chat.x","epoch":"e","offset":4}"#),
    );
    assert!(matches!(
        &h.events()[..],
        [Event::Published { msg_id, position, .. }] if *msg_id == m2 && position.offset == 4
    ));
}
