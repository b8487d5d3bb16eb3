//! Connection tokens in-process: every algorithm, every refusal, grants per
//! operation on the session and over HTTP, refresh and expiry.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use livegate::close::CloseReason;
use livegate::config::Config;
use livegate::hub::Receiver;
use livegate::service::{Credentials, Identity};
use livegate::transport::session::Session;
use livegate::App;
use livegate_core::Encoding;
use serde_json::{json, Value};
use tower::ServiceExt;

const SECRET: &str = "a test secret of reasonable length";

fn keys(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/keys")
        .join(name)
}

fn now() -> u64 {
    livegate::now_ms() / 1000
}

fn claims(sub: &str, exp: u64) -> Value {
    json!({
        "sub": sub,
        "exp": exp,
        "subscribe": ["metrics.*", "rooms.{sub}.*"],
        "publish": ["rooms.{sub}.*"],
        "history": ["metrics.*"],
    })
}

fn hs256(claims: &Value) -> String {
    let key = EncodingKey::from_secret(SECRET.as_bytes()).expect("key");
    encode(&Header::new(Algorithm::HS256), claims, &key).expect("sign")
}

fn config(anonymous: bool) -> Config {
    let mut c = Config::default();
    c.defaults.client_publish = true;
    c.api_key = Some("backend-key".into());
    c.auth.jwt_secret = Some(SECRET.into());
    c.auth.anonymous = anonymous;
    c.validate().expect("valid");
    c
}

fn identity(app: &App, token: &str) -> Result<Identity, String> {
    app.service
        .authenticate(&Credentials::connection_with(vec![token]))
        .map_err(|e| format!("{}: {}", e.kind.frame_code(), e.message))
}

#[test]
fn every_algorithm_with_its_key() {
    let c = claims("alice", now() + 600);
    let app = App::in_memory(config(false));
    for alg in [Algorithm::HS256, Algorithm::HS384, Algorithm::HS512] {
        let key = EncodingKey::from_secret(SECRET.as_bytes()).expect("key");
        let token = encode(&Header::new(alg), &c, &key).expect("sign");
        let who = identity(&app, &token).expect("accepted");
        assert_eq!(who.subject(), "alice", "{alg:?}");
    }
    let pairs = [
        ("rsa", Algorithm::RS256),
        ("ec", Algorithm::ES256),
        ("ed", Algorithm::EdDSA),
    ];
    for (name, alg) in pairs {
        let mut cfg = Config::default();
        cfg.auth.jwt_public_key = Some(keys(&format!("{name}.pub")));
        cfg.validate().expect("the public key loads");
        let app = App::in_memory(cfg);
        let pem = std::fs::read(keys(&format!("{name}.key"))).expect("key");
        let key = match alg {
            Algorithm::RS256 => EncodingKey::from_rsa_pem(&pem),
            Algorithm::ES256 => EncodingKey::from_ec_pem(&pem),
            _ => EncodingKey::from_ed_pem(&pem),
        }
        .expect("private key");
        let token = encode(&Header::new(alg), &c, &key).expect("sign");
        assert_eq!(identity(&app, &token).expect("accepted").subject(), "alice");
        // An HS256 token whose "secret" is the public key: the classic
        // algorithm confusion, refused because HS* is not configured.
        let public = std::fs::read(keys(&format!("{name}.pub"))).expect("pub");
        let confused = encode(
            &Header::new(Algorithm::HS256),
            &c,
            &EncodingKey::from_secret(&public).expect("key"),
        )
        .expect("sign");
        let err = identity(&app, &confused).expect_err("refused");
        assert!(err.starts_with("unauthorized"), "{err}");
    }
}

#[tokio::test]
async fn bad_tokens_are_refused_as_unauthorized() {
    let app = App::in_memory(config(false));
    let expired = hs256(&claims("alice", now() - 120));
    let forged = encode(
        &Header::new(Algorithm::HS256),
        &claims("alice", now() + 600),
        &EncodingKey::from_secret(b"another secret").expect("key"),
    )
    .expect("sign");
    let no_exp = hs256(&json!({"sub": "alice", "subscribe": ["*"]}));
    // alg "none": header {"alg":"none","typ":"JWT"}, an empty signature.
    let none = "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.eyJzdWIiOiJhbGljZSIsImV4cCI6OTk5OTk5OTk5OSwic3Vic2NyaWJlIjpbIioiXX0.";
    let cases = [
        (expired.as_str(), "expired"),
        (forged.as_str(), "bad signature"),
        (no_exp.as_str(), "exp"),
        (none, "known algorithm"),
        ("not.a.jwt", "refused"),
    ];
    for (token, why) in cases {
        let err = identity(&app, token).expect_err(why);
        assert!(
            err.starts_with("unauthorized") && err.contains(why),
            "{err}"
        );
    }
    let err = app
        .service
        .authenticate(&Credentials::connection())
        .expect_err("a token is required");
    assert_eq!(err.kind.frame_code(), "unauthorized");
    let open = App::in_memory(config(true));
    let anon = open
        .service
        .authenticate(&Credentials::connection())
        .expect("anonymous allowed");
    assert_eq!(anon.subject(), "anonymous");
    // Anonymous callers read ordinary topics, not $sys unless allowed.
    let (conn, mut rx) = open.service.open(anon.clone());
    let mut s = Session::new(conn);
    let sub = json!({"type":"subscribe","id":1,"topic":"news"});
    assert_eq!(answer(&mut s, &mut rx, sub).await["type"], "subscribed");
    let sys = json!({"type":"subscribe","id":2,"topic":"$sys.cpu"});
    assert_eq!(
        answer(&mut s, &mut rx, sys.clone()).await["code"],
        "forbidden"
    );
    let mut cfg = config(true);
    cfg.auth.anonymous_sys = true;
    let live_page = App::in_memory(cfg);
    let (conn, mut rx) = live_page.service.open(anon);
    let mut s = Session::new(conn);
    assert_eq!(answer(&mut s, &mut rx, sys).await["type"], "subscribed");
}

fn session(app: &Arc<App>, token: &str) -> (Session, Receiver) {
    let who = identity(app, token).expect("accepted");
    let (conn, rx) = app.service.open(who);
    (Session::new(conn), rx)
}

fn drain(rx: &mut Receiver) -> Vec<Value> {
    let mut out = Vec::new();
    while let Some(item) = rx.try_recv() {
        let bytes = item.encode(Encoding::Json);
        out.push(serde_json::from_slice(&bytes).expect("a JSON frame"));
    }
    out
}

async fn answer(s: &mut Session, rx: &mut Receiver, frame: Value) -> Value {
    s.handle_bytes(Encoding::Json, frame.to_string().as_bytes())
        .await;
    // The connection's own publications echo back on its subscriptions.
    let frames: Vec<Value> = drain(rx)
        .into_iter()
        .filter(|f| f["type"] != "publication")
        .collect();
    assert_eq!(frames.len(), 1, "one answer: {frames:?}");
    frames[0].clone()
}

#[tokio::test]
async fn grants_allow_and_refuse_each_operation_on_a_session() {
    let app = App::in_memory(config(false));
    let (mut s, mut rx) = session(&app, &hs256(&claims("alice", now() + 600)));
    let cases = [
        (
            json!({"type":"subscribe","id":1,"topic":"metrics.cpu"}),
            "subscribed",
        ),
        (
            json!({"type":"subscribe","id":2,"topic":"rooms.alice.chat"}),
            "subscribed",
        ),
        (
            json!({"type":"subscribe","id":3,"topic":"rooms.bob.chat"}),
            "forbidden",
        ),
        (
            json!({"type":"subscribe","id":4,"topic":"$sys.cpu"}),
            "forbidden",
        ),
        (
            json!({"type":"publish","id":5,"topic":"rooms.alice.chat","data":1}),
            "ack",
        ),
        (
            json!({"type":"publish","id":6,"topic":"metrics.cpu","data":1}),
            "forbidden",
        ),
        (
            json!({"type":"history","id":7,"topic":"metrics.cpu"}),
            "history",
        ),
        (
            json!({"type":"history","id":8,"topic":"rooms.alice.chat"}),
            "forbidden",
        ),
    ];
    for (frame, expect) in cases {
        let got = answer(&mut s, &mut rx, frame.clone()).await;
        let what = if got["type"] == "error" {
            &got["code"]
        } else {
            &got["type"]
        };
        assert_eq!(what, expect, "{frame} -> {got}");
    }
}

#[tokio::test]
async fn refresh_replaces_the_token_and_expiry_disconnects() {
    let app = App::in_memory(config(false));
    let (mut s, mut rx) = session(&app, &hs256(&claims("alice", now() + 1)));
    let sub = json!({"type":"subscribe","id":1,"topic":"metrics.cpu"});
    assert_eq!(answer(&mut s, &mut rx, sub).await["type"], "subscribed");
    // Another subject's token, a bad one: refused, the old token stays.
    for token in [
        hs256(&claims("bob", now() + 600)),
        "x.y.z".to_owned(),
        "abc".to_owned(),
    ] {
        let got = answer(&mut s, &mut rx, json!({"type":"refresh","token":token})).await;
        assert_eq!(got["code"], "unauthorized", "{got}");
    }
    let fresh = hs256(&claims("alice", now() + 600));
    s.handle_bytes(
        Encoding::Json,
        json!({"type":"refresh","token":fresh})
            .to_string()
            .as_bytes(),
    )
    .await;
    assert!(
        drain(&mut rx).is_empty(),
        "a refresh is answered only when refused"
    );
    // Past the first token's exp the connection is still open.
    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert_eq!(s.outbox().close_reason(), None);

    // Without a refresh, expiry closes it with token_expired.
    let (s2, _rx2) = session(&app, &hs256(&claims("carol", now() + 1)));
    let reason = tokio::time::timeout(Duration::from_secs(10), s2.outbox().closed())
        .await
        .expect("closed within the bound");
    assert_eq!(reason, CloseReason::TokenExpired);
    let frame = reason.disconnect_frame();
    let bytes = livegate_core::Encoding::Json.encode_server(&frame);
    let v: Value = serde_json::from_slice(&bytes).expect("json");
    assert_eq!(
        (v["code"].as_str(), v["reconnect"].as_bool()),
        (Some("token_expired"), Some(true))
    );
}

async fn call(app: &Arc<App>, req: Request<Body>) -> (StatusCode, Value) {
    let res = livegate::routes::router(app.clone())
        .oneshot(req)
        .await
        .expect("the router always answers");
    let status = res.status();
    let body = res.into_body().collect().await.expect("body").to_bytes();
    (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
}

fn get(path: &str, bearer: Option<&str>) -> Request<Body> {
    let mut req = Request::get(path);
    if let Some(t) = bearer {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    req.body(Body::empty()).expect("request")
}

#[tokio::test]
async fn http_api_and_read_transports_check_tokens() {
    let app = App::in_memory(config(false));
    let token = hs256(&claims("alice", now() + 600));
    let cases = [
        (get("/api/topics/metrics.cpu/history", Some(&token)), 200),
        (get("/api/topics/rooms.alice.x/history", Some(&token)), 403),
        (get("/api/topics/metrics.cpu/history", None), 401),
        (
            get("/api/topics/metrics.cpu/history", Some("backend-key")),
            200,
        ),
        (get("/poll?topic=metrics.cpu&timeout_ms=0", None), 401),
        (
            get("/poll?topic=rooms.bob.x&timeout_ms=0", Some(&token)),
            403,
        ),
        (
            get(
                &format!("/poll?topic=metrics.cpu&timeout_ms=0&token={token}"),
                None,
            ),
            200,
        ),
        (get("/sse?topic=metrics.cpu", None), 401),
        (get("/sse?topic=$sys.cpu", Some(&token)), 403),
    ];
    for (req, status) in cases {
        let uri = req.uri().to_string();
        let (got, body) = call(&app, req).await;
        assert_eq!(got.as_u16(), status, "{uri}: {body}");
    }
    let publish = |bearer: &str, topic: &str| {
        Request::post("/api/publish")
            .header("authorization", format!("Bearer {bearer}"))
            .header("content-type", "application/json")
            .body(Body::from(json!({"topic": topic, "data": 1}).to_string()))
            .expect("request")
    };
    let (status, body) = call(&app, publish(&token, "rooms.alice.x")).await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = call(&app, publish(&token, "metrics.cpu")).await;
    assert_eq!(
        (status.as_u16(), &body["code"]),
        (403, &json!("forbidden")),
        "{body}"
    );
    let (status, _) = call(&app, publish("backend-key", "metrics.cpu")).await;
    assert_eq!(status, 200);
}

#[test]
fn token_settings_are_checked_at_start_up() {
    let cfg: Config = toml::from_str(&format!(
        "[auth]\njwt_public_key = {:?}\nanonymous = true\n",
        keys("ec.pub")
    ))
    .expect("toml");
    assert!(cfg.validate().is_ok());
    for (key, why) in [("missing.pub", "cannot read"), ("README", "is not a PEM")] {
        let mut bad = Config::default();
        bad.auth.jwt_public_key = Some(keys(key));
        let err = bad.validate().expect_err(why).to_string();
        assert!(err.contains(why), "{err}");
    }
    let mut empty = Config::default();
    empty.auth.jwt_secret = Some(String::new());
    assert!(empty.validate().is_err());
    assert!(toml::from_str::<Config>("[auth]\njwt_secrte = \"x\"").is_err());
}
