//! The connection token: replaced in place, asked for before it expires
//! and when the gateway says it expired.

use super::*;

fn needs(events: &[Event]) -> Vec<bool> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::TokenNeeded { expired } => Some(*expired),
            _ => None,
        })
        .collect()
}

#[test]
fn a_new_token_is_sent_as_refresh_and_asked_for_again_before_it_expires() {
    let (mut h, conn) = Harness::connected(config(), &[], 25_000);
    h.actions();
    h.c.set_token(h.now, "second".into(), Some(10_000));
    let sent = h.actions();
    let [Action::Send { conn: c, bytes }] = sent.as_slice() else {
        panic!("one send: {sent:?}")
    };
    assert_eq!(*c, conn);
    let frame = Encoding::Json.decode_client(bytes).expect("a frame");
    assert_eq!(
        frame,
        ClientFrame::Refresh {
            token: "second".into()
        }
    );
    assert_eq!(h.c.config().token.as_deref(), Some("second"));
    assert!(needs(&h.events()).is_empty());
    assert_eq!(h.step(), 8_000, "four fifths of its life");
    assert_eq!(needs(&h.events()), [false]);
    assert_eq!(h.c.state(), State::Connected, "asking changes nothing else");
}

#[test]
fn token_expired_asks_for_a_token_and_the_next_connection_carries_it() {
    let (mut h, conn) = Harness::connected(config(), &[], 25_000);
    h.frame(
        conn,
        ServerFrame::Disconnect {
            code: "token_expired".into(),
            reason: "expired".into(),
            reconnect: true,
        },
    );
    assert_eq!(needs(&h.events()), [true]);
    assert_eq!(h.c.state(), State::Reconnecting);
    // While disconnected a new token is only kept, not sent.
    h.actions();
    h.c.set_token(h.now, "fresh".into(), None);
    assert!(h.actions().is_empty());
    h.step();
    let (_, _, _, open) = h.expect_open();
    let Open::WebSocket(request) = open else {
        panic!("{open:?}")
    };
    assert!(request
        .headers
        .contains(&("authorization".to_string(), "Bearer fresh".to_string())));
}
