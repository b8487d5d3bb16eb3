//! Transport fallback, backoff rounds, connect timeouts, the upgrade probe and WebTransport discovery.

use super::*;

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

fn webtransport_first() -> Harness {
    let mut h = Harness::connecting(&[TransportKind::WebTransport, TransportKind::WebSocket]);
    h.c.subscribe(h.now, "t").unwrap();
    h
}

fn expect_discover(h: &mut Harness) -> u64 {
    match &h.actions()[..] {
        [Action::Discover { conn, request }] => {
            assert_eq!(request.path_and_query(), "/wt/cert-hash");
            *conn
        }
        other => panic!("discovery first: {other:?}"),
    }
}

#[test]
fn webtransport_is_discovered_then_opened_with_the_announced_certificate() {
    let mut h = webtransport_first();
    let conn = expect_discover(&mut h);
    let hex = "ab".repeat(32);
    let body =
        format!(r#"{{"url":"https://127.0.0.1:4433/wt","algorithm":"sha-256","hash":"{hex}"}}"#);
    h.c.handle_discovery(h.now, conn, 200, body.as_bytes());
    let (c, transport, _, open) = h.expect_open();
    assert_eq!((c, transport), (conn, TransportKind::WebTransport));
    let Open::WebTransport { request, cert_hash } = open else {
        panic!("{open:?}")
    };
    assert_eq!(
        request.path_and_query(),
        "https://127.0.0.1:4433/wt?encoding=json"
    );
    assert_eq!(cert_hash, [0xab; 32]);
    h.open(conn, 25_000);
    assert_eq!(h.c.transport(), Some(TransportKind::WebTransport));
    assert!(matches!(&h.sent()[..], [ClientFrame::Subscribe { .. }]));
}

#[test]
fn a_gateway_without_webtransport_falls_back_at_once() {
    let mut h = webtransport_first();
    let conn = expect_discover(&mut h);
    h.c.handle_discovery(h.now, conn, 404, br#"{"type":"error","code":"not_found"}"#);
    let acts = h.actions();
    assert!(acts.contains(&Action::Close { conn }));
    assert!(acts.iter().any(|a| matches!(
        a,
        Action::Connect {
            transport: TransportKind::WebSocket,
            ..
        }
    )));
    let ev = h.events();
    assert!(ev.iter().any(|e| matches!(
        e,
        Event::Error { code: ErrorCode::TransportFailed, message }
            if message.contains("WebTransport is not available")
    )));
    // A late or repeated answer about the abandoned attempt changes nothing.
    h.c.handle_discovery(h.now, conn, 200, b"{}");
    assert!(h.actions().is_empty());
}

#[test]
fn discovery_that_gets_no_answer_is_a_failed_attempt() {
    let mut h = webtransport_first();
    let conn = expect_discover(&mut h);
    h.c.handle_transport(h.now, conn, TransportEvent::Failed("refused".into()));
    let (_, transport, _) = h.expect_connect();
    assert_eq!(transport, TransportKind::WebSocket);
    // A discovery that hangs runs into the connect timeout like any attempt.
    let mut h = webtransport_first();
    let conn = expect_discover(&mut h);
    assert_eq!(h.step(), h.c.config().connect_timeout_ms);
    let acts = h.actions();
    assert!(acts.contains(&Action::Close { conn }));
    assert!(acts.iter().any(|a| matches!(
        a,
        Action::Connect {
            transport: TransportKind::WebSocket,
            ..
        }
    )));
}

#[test]
fn an_unusable_announcement_is_refused_not_pinned() {
    let mut h = webtransport_first();
    let conn = expect_discover(&mut h);
    h.c.handle_discovery(h.now, conn, 200, br#"{"url":"https://x/wt","hash":"zz"}"#);
    let (_, transport, _) = h.expect_connect();
    assert_eq!(transport, TransportKind::WebSocket);
}

#[test]
fn websocket_offers_the_configured_encoding_and_token() {
    let mut cfg = config();
    cfg.encoding = Encoding::Msgpack;
    cfg.token = Some("jwt".into());
    let mut h = Harness::new(cfg);
    h.c.connect(h.now);
    let (_, _, _, open) = h.expect_open();
    let Open::WebSocket(request) = open else {
        panic!("{open:?}")
    };
    assert_eq!(request.path_and_query(), "/ws");
    assert_eq!(request.subprotocol, Some("livegate.v1.msgpack"));
    assert_eq!(
        request.headers,
        vec![("authorization".to_string(), "Bearer jwt".to_string())]
    );
}
