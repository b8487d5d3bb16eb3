//! Connection lifecycle: the heartbeat watchdog, the gateway's `disconnect`, frames the engine cannot accept.

use super::*;

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
fn ping_only_on_a_live_bidirectional_connection_and_its_pong_is_activity() {
    let mut idle = Harness::new(config());
    assert!(!idle.c.ping(), "nothing to ping before a connection");
    let (mut h, conn) = Harness::connected(config(), &[], 2_000);
    h.events();
    h.actions();
    assert!(h.c.ping());
    assert_eq!(h.sent(), vec![ClientFrame::Ping { id: None }]);
    h.now += 2_500;
    h.frame(conn, ServerFrame::Pong { id: None });
    h.now += 2_000;
    h.c.handle_timeout(h.now);
    assert_eq!(h.c.state(), State::Connected, "the pong counted as traffic");
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
        .any(|e| matches!(e, Event::Error { code, .. } if *code == ErrorCode::ProtocolError)));
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
fn config_debug_shows_no_credential() {
    let mut cfg = config();
    cfg.token = Some("eyJ-secret-token".into());
    cfg.api_key = Some("key-secret".into());
    let shown = format!("{cfg:?}");
    assert!(!shown.contains("secret"), "{shown}");
    assert!(shown.contains("token: Some(\"<redacted>\")"), "{shown}");
    cfg.token = None;
    assert!(format!("{cfg:?}").contains("token: None"));
}
