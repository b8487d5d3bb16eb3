//! The native client's own API against the real gateway: HTTP `Publisher`,
//! unsubscribe when a `Subscription` is dropped, `subscribe_now`.

mod support;

use std::time::Duration;

use futures_util::StreamExt;
use livegate_client::{ClientBuilder, ClientError, Publisher, SubscriptionEvent};
use livegate_core::client::{State, TransportKind};
use livegate_core::Payload;
use support::{next_publication, Gateway};

fn json(text: &str) -> Payload {
    Payload::from_json(text.to_owned()).expect("valid JSON")
}

/// The subscription's first event is `Subscribed` (it is live), within 10 s.
async fn expect_live(sub: &mut livegate_client::Subscription) {
    let first = tokio::time::timeout(Duration::from_secs(10), sub.next()).await;
    assert!(
        matches!(first, Ok(Some(SubscriptionEvent::Subscribed(_)))),
        "{first:?}"
    );
}

fn messages_out(gw: &Gateway) -> u64 {
    let (status, body) = gw.request("GET", "/api/stats", "");
    assert_eq!(status, 200);
    let v: serde_json::Value = serde_json::from_str(&body).expect("stats JSON");
    v["messages_out"].as_u64().expect("messages_out")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publisher_acks_and_reports_refusals_and_dead_gateways() {
    let gw = Gateway::start(&["--no-wt".into(), "--api-key".into(), "k3y".into()]);
    let publisher = Publisher::new(&gw.url()).expect("url").api_key("k3y");
    let a = publisher
        .publish("news", Some("breaking".into()), json(r#"{"n":1}"#))
        .await
        .expect("ack");
    let b = publisher
        .publish("news", None, json("2"))
        .await
        .expect("ack");
    assert_eq!((a.position.offset, b.position.offset), (1, 2));
    assert_ne!(a.msg_id, b.msg_id);
    let (_, history) = gw.request("GET", "/api/topics/news/history", "");
    assert!(history.contains(r#""event":"breaking""#), "{history}");

    let keyless = Publisher::new(&gw.url()).expect("url");
    match keyless.publish("news", None, json("3")).await {
        Err(ClientError::Refused { code, .. }) => assert_eq!(code, "unauthorized"),
        other => panic!("expected a refusal, got {other:?}"),
    }
    match publisher.publish("bad topic", None, json("3")).await {
        Err(ClientError::Invalid(why)) => assert!(why.contains("topic"), "{why}"),
        other => panic!("expected Invalid, got {other:?}"),
    }

    // Nothing listens there: retried until the deadline, then an I/O error.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let dead = Publisher::new(&format!("http://127.0.0.1:{port}"))
        .expect("url")
        .timeout(Duration::from_millis(300));
    match dead.publish("news", None, json("4")).await {
        Err(ClientError::Io(why)) => assert!(why.contains(&port.to_string()), "{why}"),
        other => panic!("expected an I/O error, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_a_subscription_unsubscribes_its_topic() {
    let gw = Gateway::start(&["--no-wt".into()]);
    let client = ClientBuilder::new(gw.url())
        .transports([TransportKind::WebSocket])
        .connect()
        .expect("client");
    assert_eq!(client.wait_for(State::Connected).await, State::Connected);
    let mut a = client.subscribe("drop.a").await.expect("subscribe a");
    let mut b = client.subscribe("drop.b").await.expect("subscribe b");
    // A subscription without a position starts at the topic's end: publish
    // only once both are live.
    expect_live(&mut a).await;
    expect_live(&mut b).await;
    gw.post("/api/publish/drop.a", "1");
    assert_eq!(next_publication(&mut a).await.offset, 1);
    drop(a);
    // The unsubscribe goes out before this subscribe on the same connection:
    // once "c" is live the gateway no longer sends "a".
    let mut c = client.subscribe("drop.c").await.expect("subscribe c");
    expect_live(&mut c).await;
    let before = messages_out(&gw);
    gw.post("/api/publish/drop.a", "2");
    gw.post("/api/publish/drop.b", "3");
    assert_eq!(next_publication(&mut b).await.offset, 1);
    assert_eq!(
        messages_out(&gw) - before,
        1,
        "the dropped subscription still receives"
    );
    client.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscribe_now_checks_names_at_once() {
    let gw = Gateway::start(&["--no-wt".into()]);
    let client = ClientBuilder::new(gw.url())
        .transports([TransportKind::WebSocket])
        .connect()
        .expect("client");
    assert!(matches!(
        client.subscribe_now("no spaces allowed"),
        Err(ClientError::Invalid(_))
    ));
    let mut sub = client.subscribe_now("now.topic").expect("valid name");
    assert_eq!(sub.topic(), "now.topic");
    expect_live(&mut sub).await;
    assert!(
        matches!(sub.try_next(), Ok(None)),
        "nothing else is ready yet"
    );
    gw.post("/api/publish/now.topic", r#"{"x":1}"#);
    let p = next_publication(&mut sub).await;
    assert_eq!(
        (p.offset, p.data.to_json_value()),
        (1, serde_json::json!({"x": 1}))
    );
    client.close().await;
    // The stream ends with the client.
    let end = tokio::time::timeout(Duration::from_secs(10), async {
        while sub.next().await.is_some() {}
    })
    .await;
    assert!(end.is_ok(), "the subscription did not end with the client");
    assert!(matches!(
        client.subscribe_now("now.other"),
        Err(ClientError::Closed)
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_source_refreshes_in_place_before_exp_over_websocket() {
    token_source_refreshes_in_place(TransportKind::WebSocket).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_source_refreshes_in_place_before_exp_over_webtransport() {
    token_source_refreshes_in_place(TransportKind::WebTransport).await;
}

async fn token_source_refreshes_in_place(transport: TransportKind) {
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::sync::Arc;

    const SECRET: &str = "native client token secret";
    let gw = Gateway::start(&[
        "--api-key".into(),
        "k3y".into(),
        "--jwt-secret".into(),
        SECRET.into(),
    ]);
    let fetched = Arc::new(AtomicU32::new(0));
    let counter = fetched.clone();
    // Tokens live 3 s: the client asks for the next one after about 2.4 s
    // and hands it over with a refresh frame, on the same connection.
    let client = ClientBuilder::new(gw.url())
        .transports([transport])
        .token_source(move || {
            counter.fetch_add(1, Ordering::SeqCst);
            async move {
                let claims = serde_json::json!({
                    "sub": "native",
                    "exp": livegate::now_ms() / 1000 + 3,
                    "subscribe": ["tok.*"],
                });
                let key = jsonwebtoken::EncodingKey::from_secret(SECRET.as_bytes())
                    .map_err(|e| e.to_string())?;
                jsonwebtoken::encode(&jsonwebtoken::Header::default(), &claims, &key)
                    .map_err(|e| e.to_string())
            }
        })
        .connect()
        .expect("client");
    assert_eq!(client.wait_for(State::Connected).await, State::Connected);
    let mut sub = client.subscribe("tok.a").await.expect("subscribe");
    expect_live(&mut sub).await;
    let mut refused = client.subscribe("other.a").await.expect("subscribe");
    let first = tokio::time::timeout(Duration::from_secs(10), refused.next()).await;
    assert!(
        matches!(&first, Ok(Some(SubscriptionEvent::Failed { code, .. })) if *code == "forbidden"),
        "{first:?}"
    );
    let mut changes = Box::pin(client.state_changes());
    // Bounded: 100 rounds of 100 ms.
    for _ in 0..100 {
        if fetched.load(Ordering::SeqCst) >= 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(fetched.load(Ordering::SeqCst) >= 3, "refreshed twice");
    // Past the first two tokens' exp, the first connection still serves.
    let publisher = Publisher::new(&gw.url()).expect("url").api_key("k3y");
    publisher
        .publish("tok.a", None, json("1"))
        .await
        .expect("ack");
    assert_eq!(next_publication(&mut sub).await.offset, 1);
    let reconnects = tokio::time::timeout(Duration::from_millis(10), changes.next()).await;
    assert!(reconnects.is_err(), "no state change: {reconnects:?}");
    client.close().await;
}
