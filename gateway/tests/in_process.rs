//! The HTTP API and the service in-process: the router answers through
//! `oneshot` (no socket) and client frames go straight into a `Session`,
//! so validation and error mapping are checked without a process. The
//! point is that one bad input gets one code everywhere.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use livegate::broker::{
    BoxFuture, Broker, BrokerError, MemoryBroker, Page, PublishRequest, Published, ReadError,
};
use livegate::config::Config;
use livegate::hub::Receiver;
use livegate::service::Credentials;
use livegate::transport::session::Session;
use livegate::App;
use livegate_core::protocol::{ClientFrame, Position};
use livegate_core::{Encoding, Payload};
use serde_json::{json, Value};
use tower::ServiceExt;

/// A broker that cannot be reached: every call fails.
struct Unreachable;

impl Broker for Unreachable {
    fn publish<'a>(
        &'a self,
        _: PublishRequest<'a>,
    ) -> BoxFuture<'a, Result<Published, BrokerError>> {
        Box::pin(async { Err(BrokerError::Unavailable("connection refused".into())) })
    }

    fn read<'a>(
        &'a self,
        _: &'a str,
        _: Option<&'a Position>,
        _: usize,
    ) -> BoxFuture<'a, Result<Page, ReadError>> {
        Box::pin(async { Err(BrokerError::Unavailable("connection refused".into()).into()) })
    }

    fn position<'a>(&'a self, _: &'a str) -> BoxFuture<'a, Result<Position, BrokerError>> {
        Box::pin(async { Err(BrokerError::Unavailable("connection refused".into())) })
    }

    fn name(&self) -> &'static str {
        "unreachable"
    }
}

fn config() -> Config {
    let mut config = Config::default();
    config.defaults.client_publish = true;
    config
}

async fn call(app: &Arc<App>, req: Request<Body>) -> (StatusCode, Value) {
    let res = livegate::routes::router(app.clone())
        .oneshot(req)
        .await
        .expect("the router always answers");
    let status = res.status();
    let body = res.into_body().collect().await.expect("body").to_bytes();
    let value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    (status, value)
}

fn post(path: &str, content_type: Option<&str>, body: &str) -> Request<Body> {
    let mut req = Request::post(path);
    if let Some(ct) = content_type {
        req = req.header("content-type", ct);
    }
    req.body(Body::from(body.to_owned())).expect("request")
}

fn get(path: &str) -> Request<Body> {
    Request::get(path).body(Body::empty()).expect("request")
}

/// Status and error code of an answer.
async fn code(app: &Arc<App>, req: Request<Body>) -> (u16, String) {
    let (status, body) = call(app, req).await;
    let code = body["code"].as_str().unwrap_or("").to_owned();
    (status.as_u16(), code)
}

/// A WebSocket-like session on `app` and its queue.
fn session(app: &Arc<App>) -> (Session, Receiver) {
    let identity = app
        .service
        .authenticate(&Credentials::connection())
        .expect("connections are let in");
    let (conn, rx) = app.service.open(identity);
    (Session::new(conn), rx)
}

/// The frames queued so far, as JSON.
fn drain(rx: &mut Receiver) -> Vec<Value> {
    let mut out = Vec::new();
    while let Some(item) = rx.try_recv() {
        let bytes = item.encode(Encoding::Json);
        out.push(serde_json::from_slice(&bytes).expect("a JSON frame"));
    }
    out
}

async fn frame_error(app: &Arc<App>, frame: Value) -> String {
    let (mut s, mut rx) = session(app);
    s.handle_bytes(Encoding::Json, frame.to_string().as_bytes())
        .await;
    let frames = drain(&mut rx);
    assert_eq!(frames.len(), 1, "one answer: {frames:?}");
    assert_eq!(frames[0]["type"], "error", "{frames:?}");
    frames[0]["code"].as_str().unwrap_or("").to_owned()
}

#[tokio::test]
async fn publish_validation_over_http() {
    let app = App::in_memory(config());
    let cases: &[(&str, Option<&str>, &str, u16, &str)] = &[
        ("/api/publish", None, "not json", 400, "bad_request"),
        ("/api/publish", None, "[1]", 400, "bad_request"),
        ("/api/publish", None, r#"{"topic":"t"}"#, 400, "bad_request"),
        (
            "/api/publish",
            None,
            r#"{"topic":"a b","data":1}"#,
            400,
            "bad_topic",
        ),
        (
            "/api/publish",
            None,
            r#"{"topic":"t","event":"","data":1}"#,
            400,
            "bad_event",
        ),
        (
            "/api/publish",
            None,
            r#"{"topic":"t","msg_id":"","data":1}"#,
            400,
            "bad_request",
        ),
        (
            "/api/publish",
            None,
            r#"{"topic":"$sys.cpu","data":1}"#,
            403,
            "publish_forbidden",
        ),
        ("/api/publish/a%20b", None, "1", 400, "bad_topic"),
        ("/api/publish/t?event=", None, "1", 400, "bad_event"),
        (
            "/api/publish/t",
            Some("image/png"),
            "1",
            415,
            "unsupported_media_type",
        ),
        (
            "/api/publish/t",
            Some("application/json"),
            "{",
            400,
            "bad_request",
        ),
    ];
    for (path, ct, body, status, want) in cases {
        assert_eq!(
            code(&app, post(path, *ct, body)).await,
            (*status, (*want).to_owned()),
            "{path} {body}"
        );
    }
    let (status, body) = call(
        &app,
        post("/api/publish", None, r#"{"topic":"t","data":{"a":1}}"#),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        (body["topic"].as_str(), body["offset"].as_u64()),
        (Some("t"), Some(1))
    );
}

#[tokio::test]
async fn oversized_body_and_api_key() {
    let mut cfg = config();
    cfg.max_frame_bytes = 64;
    cfg.api_key = Some("sekrit".into());
    let app = App::in_memory(cfg);
    let big = format!(r#"{{"topic":"t","data":"{}"}}"#, "x".repeat(100));
    // Size first, then the key, then the body.
    assert_eq!(
        code(&app, post("/api/publish", None, &big)).await,
        (413, "payload_too_large".into())
    );
    assert_eq!(
        code(&app, post("/api/publish", None, "not json")).await,
        (401, "unauthorized".into())
    );
    let with = |key: &str| {
        Request::post("/api/publish")
            .header("x-api-key", key)
            .body(Body::from(r#"{"topic":"t","data":1}"#))
            .expect("request")
    };
    assert_eq!(
        code(&app, with("wrong")).await,
        (401, "unauthorized".into())
    );
    assert_eq!(call(&app, with("sekrit")).await.0, StatusCode::OK);
    let bearer = Request::post("/api/publish/t")
        .header("authorization", "Bearer sekrit")
        .body(Body::from("2"))
        .expect("request");
    assert_eq!(call(&app, bearer).await.1["offset"], 2);
    // Reading history needs no key.
    assert_eq!(
        call(&app, get("/api/topics/t/history")).await.0,
        StatusCode::OK
    );
}

#[tokio::test]
async fn history_validation_over_http() {
    let app = App::in_memory(config());
    for i in 0..3 {
        call(&app, post("/api/publish/h", None, &i.to_string())).await;
    }
    let (status, page) = call(&app, get("/api/topics/h/history?limit=2")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        (page["offset"].as_u64(), page["more"].as_bool()),
        (Some(3), Some(true))
    );
    let epoch = page["epoch"].as_str().expect("epoch").to_owned();
    let (_, rest) = call(&app, get(&format!("/api/topics/h/history?since={epoch}:1"))).await;
    let offsets: Vec<u64> = rest["publications"]
        .as_array()
        .expect("publications")
        .iter()
        .filter_map(|p| p["offset"].as_u64())
        .collect();
    assert_eq!(offsets, vec![2, 3]);
    let cases = [
        ("/api/topics/h/history?limit=0", 400, "bad_limit"),
        ("/api/topics/h/history?limit=x", 400, "bad_limit"),
        ("/api/topics/h/history?since=nope", 400, "bad_request"),
        (
            "/api/topics/h/history?since=other:1",
            410,
            "history_unavailable",
        ),
        ("/api/topics/a%20b/history", 400, "bad_topic"),
        ("/api/topics/h/other", 404, "not_found"),
        ("/nowhere", 404, "not_found"),
        ("/sse", 400, "bad_request"),
        ("/poll?topic=a%20b", 400, "bad_topic"),
        ("/poll?topic=t&cursor=%%%", 400, "bad_cursor"),
        ("/ws", 426, "upgrade_required"),
    ];
    for (path, status, want) in cases {
        assert_eq!(
            code(&app, get(path)).await,
            (status, want.to_owned()),
            "{path}"
        );
    }
}

#[tokio::test]
async fn the_same_bad_publish_gets_the_same_code_over_http_and_websocket() {
    let app = App::in_memory(config());
    let cases = [
        (json!({"topic": "a b", "data": 1}), "bad_topic"),
        (
            json!({"topic": "t", "event": "a\nb", "data": 1}),
            "bad_event",
        ),
        (json!({"topic": "$sys.x", "data": 1}), "publish_forbidden"),
    ];
    for (body, want) in cases {
        let (_, http) = code(&app, post("/api/publish", None, &body.to_string())).await;
        let mut frame = body.clone();
        frame["type"] = json!("publish");
        frame["id"] = json!(1);
        let ws = frame_error(&app, frame).await;
        assert_eq!((http.as_str(), ws.as_str()), (want, want), "{body}");
    }
    // A bad msg_id is malformed input: bad_frame in a frame, 400 bad_request over HTTP.
    let body = json!({"topic": "t", "msg_id": "", "data": 1});
    assert_eq!(
        code(&app, post("/api/publish", None, &body.to_string()))
            .await
            .1,
        "bad_request"
    );
    let frame = json!({"type": "publish", "id": 1, "topic": "t", "msg_id": "", "data": 1});
    assert_eq!(frame_error(&app, frame).await, "bad_frame");
}

#[tokio::test]
async fn a_broker_failure_is_unavailable_on_every_transport() {
    let app = App::with_broker(config(), |_, _| Arc::new(Unreachable));
    assert_eq!(
        code(
            &app,
            post("/api/publish", None, r#"{"topic":"t","data":1}"#)
        )
        .await,
        (503, "unavailable".into())
    );
    assert_eq!(
        code(&app, post("/api/publish/t", None, "1")).await,
        (503, "unavailable".into())
    );
    assert_eq!(
        code(&app, get("/api/topics/t/history")).await,
        (503, "unavailable".into())
    );
    assert_eq!(
        code(&app, get("/poll?topic=t")).await,
        (503, "unavailable".into())
    );
    for frame in [
        json!({"type": "publish", "id": 1, "topic": "t", "data": 1}),
        json!({"type": "history", "id": 2, "topic": "t"}),
        json!({"type": "subscribe", "id": 3, "topic": "t"}),
    ] {
        assert_eq!(
            frame_error(&app, frame.clone()).await,
            "unavailable",
            "{frame}"
        );
    }
    // A failed subscribe leaves nothing behind: the topic can be tried again.
    let (mut s, mut rx) = session(&app);
    for _ in 0..2 {
        s.handle(ClientFrame::Subscribe {
            id: Some(1),
            topic: "t".into(),
            since: None,
        })
        .await;
        let frames = drain(&mut rx);
        assert_eq!(frames[0]["code"], "unavailable", "{frames:?}");
    }
}

#[tokio::test]
async fn session_subscription_rules_and_replay() {
    let mut cfg = config();
    cfg.max_subscriptions = 2;
    let app = App::in_memory(cfg);
    let (mut s, mut rx) = session(&app);
    let publish = |topic: &'static str| {
        let app = app.clone();
        async move {
            let permit = app
                .service
                .check_publish(
                    &livegate::service::Identity::anonymous(livegate::service::Role::Backend),
                    topic,
                    None,
                    None,
                )
                .expect("valid");
            app.service
                .publish(permit, Payload::from_json("1".to_owned()).expect("json"))
                .await
                .expect("published")
        }
    };
    let first = publish("a").await;
    publish("a").await;
    let since = Position {
        epoch: first.position.epoch.clone(),
        offset: 1,
    };
    let sub = |topic: &str, since: Option<Position>| ClientFrame::Subscribe {
        id: Some(7),
        topic: topic.into(),
        since,
    };
    s.handle(sub("a", Some(since))).await;
    s.handle(sub("a", None)).await;
    s.handle(sub("b", None)).await;
    s.handle(sub("c", None)).await;
    s.handle(ClientFrame::Unsubscribe {
        id: Some(8),
        topic: "c".into(),
    })
    .await;
    publish("a").await;
    let frames = drain(&mut rx);
    let kinds: Vec<(&str, &str)> = frames
        .iter()
        .map(|f| {
            (
                f["type"].as_str().unwrap_or(""),
                f["code"].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert_eq!(
        kinds,
        vec![
            ("subscribed", ""),
            ("error", "already_subscribed"),
            ("subscribed", ""),
            ("error", "too_many_subscriptions"),
            ("error", "not_subscribed"),
            ("publication", ""),
        ]
    );
    let replay: Vec<u64> = frames[0]["publications"]
        .as_array()
        .expect("replay")
        .iter()
        .filter_map(|p| p["offset"].as_u64())
        .collect();
    assert_eq!(
        (frames[0]["recovered"].as_bool(), replay),
        (Some(true), vec![2])
    );
    assert_eq!(frames[5]["offset"], 3);
    assert!(rx.try_recv().is_none());
}

#[tokio::test]
async fn memory_broker_is_the_default() {
    let app = App::with_broker(config(), |parts, cfg| {
        let broker: Arc<dyn Broker> = Arc::new(MemoryBroker::new(
            cfg.namespaces(),
            cfg.dedupe_window(),
            parts.stats.clone(),
            parts.hub.clone(),
        ));
        broker
    });
    let (status, body) = call(&app, post("/api/publish/m", None, "1")).await;
    assert_eq!((status, body["offset"].as_u64()), (StatusCode::OK, Some(1)));
    assert_eq!(call(&app, get("/api/stats")).await.1["messages_in"], 1);
}
