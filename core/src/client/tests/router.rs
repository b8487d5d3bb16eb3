//! The router between the engine's events and the app's handles: reference
//! counts per topic, pinned topics, acks by msg_id.

use super::*;

/// A handle, as a driver's channel would be.
#[derive(Debug, Clone, PartialEq)]
struct Sub {
    id: u32,
}

fn sub(id: u32) -> Sub {
    Sub { id }
}

fn ids(routed: Routed<'_, Sub, u32>) -> (Vec<u32>, Option<SubscriptionEvent>) {
    match routed {
        Routed::Topic { subs, event } => (subs.iter().map(|s| s.id).collect(), Some(event)),
        Routed::Ended { subs, event } => (subs.iter().map(|s| s.id).collect(), Some(event)),
        other => panic!("not for a topic: {other:?}"),
    }
}

#[test]
fn a_topic_is_held_until_its_last_subscription_goes() {
    let mut r: Router<Sub, u32> = Router::new();
    r.add("t", sub(1));
    r.add("t", sub(2));
    assert_eq!(r.count("t"), 2);
    let (to, event) = ids(r.route(Event::Publication(publication("t", "e", 1))));
    assert_eq!(to, vec![1, 2]);
    assert!(matches!(event, Some(SubscriptionEvent::Publication(p)) if p.offset == 1));
    // The first handle is dropped: one left, keep the topic.
    assert!(!r.release("t", |s| s.id != 1));
    assert_eq!(r.count("t"), 1);
    // The last one: unsubscribe.
    assert!(r.release("t", |_| false));
    assert!(!r.holds("t"));
    assert!(
        !r.release("t", |_| false),
        "releasing twice changes nothing"
    );
    // Events for a topic nobody holds go to the general stream.
    assert!(matches!(
        r.route(Event::Publication(publication("t", "e", 2))),
        Routed::Other(Event::Publication(_))
    ));
}

#[test]
fn pinned_topics_outlive_their_subscriptions_but_not_a_refusal() {
    let mut r: Router<Sub, u32> = Router::new();
    r.pin("p");
    assert!(r.holds("p"));
    let (to, _) = ids(r.route(Event::Subscribed {
        topic: "p".into(),
        position: Position {
            epoch: "e".into(),
            offset: 0,
        },
    }));
    assert!(to.is_empty(), "held, but nobody to tell");
    r.add("p", sub(7));
    assert!(
        !r.release("p", |_| false),
        "a pinned topic is never unsubscribed"
    );
    r.add("p", sub(8));
    let (to, event) = ids(r.route(Event::SubscribeFailed {
        topic: "p".into(),
        code: ErrorCode::PublishForbidden,
        message: "no".into(),
    }));
    assert_eq!(to, vec![8]);
    assert_eq!(
        event,
        Some(SubscriptionEvent::Failed {
            code: ErrorCode::PublishForbidden,
            message: "no".into()
        })
    );
    assert!(!r.holds("p"), "the engine dropped it");
}

#[test]
fn acks_reach_their_waiter_once() {
    let mut r: Router<Sub, u32> = Router::new();
    r.expect_ack("m-1".into(), 10);
    r.expect_ack("m-2".into(), 20);
    let position = Position {
        epoch: "e".into(),
        offset: 3,
    };
    match r.route(Event::Published {
        msg_id: "m-1".into(),
        topic: "t".into(),
        position: position.clone(),
    }) {
        Routed::Answered {
            waiter: 10,
            outcome: Ok(ack),
        } => assert_eq!(
            (ack.msg_id.as_str(), ack.position),
            ("m-1", position.clone())
        ),
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        r.route(Event::Published {
            msg_id: "m-1".into(),
            topic: "t".into(),
            position,
        }),
        Routed::Other(_)
    ));
    match r.route(Event::PublishFailed {
        msg_id: "m-2".into(),
        code: ErrorCode::Closed,
        message: "closed".into(),
    }) {
        Routed::Answered {
            waiter: 20,
            outcome: Err(f),
        } => assert_eq!(f.code, ErrorCode::Closed),
        other => panic!("{other:?}"),
    }
    assert_eq!(r.pending_acks(), 0);
    r.expect_ack("m-3".into(), 30);
    assert_eq!(r.drain_acks().collect::<Vec<_>>(), vec![30]);
}

#[test]
fn the_engine_and_the_router_together_fan_out_and_unsubscribe_once() {
    // Two handles on one topic: the engine subscribes once, both see every
    // publication, and only the last release unsubscribes.
    let (mut h, conn) = Harness::connected(config(), &[], 25_000);
    let mut r: Router<Sub, u32> = Router::new();
    for id in [1, 2] {
        h.c.subscribe(h.now, "t").unwrap();
        r.add("t", sub(id));
    }
    let subscribes = h
        .sent()
        .into_iter()
        .filter(|f| matches!(f, ClientFrame::Subscribe { .. }))
        .count();
    assert_eq!(subscribes, 1);
    h.frame(conn, ServerFrame::Publication(publication("t", "e", 1)));
    let mut seen = Vec::new();
    for e in h.events() {
        if let Routed::Topic { subs, event } = r.route(e) {
            for s in subs.iter() {
                seen.push((s.id, event.clone()));
            }
        }
    }
    assert_eq!(seen.len(), 2);
    if r.release("t", |s| s.id != 1) {
        h.c.unsubscribe(h.now, "t");
    }
    assert!(h.sent().is_empty(), "one handle still holds the topic");
    if r.release("t", |_| false) {
        h.c.unsubscribe(h.now, "t");
    }
    assert!(matches!(&h.sent()[..], [ClientFrame::Unsubscribe { topic, .. }] if topic == "t"));
    assert!(h.c.topics().next().is_none());
}
