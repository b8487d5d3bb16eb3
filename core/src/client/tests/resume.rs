//! Resume: positions kept per topic, `since` on every resubscribe, duplicates dropped, gaps reported.

use super::*;

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
fn subscribe_since_resumes_from_the_apps_position() {
    let mut h = Harness::new(config());
    let since = Position {
        epoch: "e1".into(),
        offset: 7,
    };
    h.c.subscribe_since(h.now, "t", Some(since.clone()))
        .unwrap();
    // A topic already held keeps its own position.
    h.c.subscribe_since(h.now, "t", None).unwrap();
    h.c.connect(h.now);
    let (conn, ..) = h.expect_connect();
    h.open(conn, 25_000);
    let sent = h.sent();
    let [ClientFrame::Subscribe {
        id,
        since: Some(sent_since),
        ..
    }] = &sent[..]
    else {
        panic!("subscribe with since: {sent:?}");
    };
    assert_eq!(sent_since, &since);
    let id = *id;
    h.frame(
        conn,
        ServerFrame::Subscribed {
            id,
            topic: "t".into(),
            epoch: "e1".into(),
            offset: 7,
            recovered: true,
            publications: vec![],
        },
    );
    assert!(h.events().contains(&Event::Recovered {
        topic: "t".into(),
        recovered: true,
        position: since,
    }));
}
