//! HTTP: publish, history, stats, health, metrics, the live page, and the
//! routes of the transports.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use livegate_core::history::Unrecoverable;
use livegate_core::protocol::Position;
use livegate_core::topic::{is_reserved, validate_event, validate_msg_id, validate_topic};
use livegate_core::{Encoding, Payload};
use serde::{Deserialize, Deserializer};
use serde_json::value::RawValue;

use crate::broker::PublishRequest;
use crate::hub::{HistoryItem, Outbound};
use crate::transport::session::{unrecoverable_message, DEFAULT_HISTORY_LIMIT, MAX_HISTORY_LIMIT};
use crate::transport::{poll, sse, ws};
use crate::App;

/// An HTTP error: status and the protocol's `{"type":"error","code","message"}`.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
}

impl ApiError {
    /// Any error.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
        }
    }

    /// 400 `bad_request`.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }

    /// 400 `bad_topic`.
    pub fn bad_topic(message: &str) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad_topic", message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({"type": "error", "code": self.code, "message": self.message});
        (self.status, Json(body)).into_response()
    }
}

/// Every route of the gateway.
pub fn router(app: Arc<App>) -> Router {
    Router::new()
        .route("/", get(index))
        .route("/ws", get(ws::upgrade))
        .route("/sse", get(sse::handler))
        .route("/poll", get(poll::handler))
        .route("/api/publish", post(publish_json))
        .route("/api/publish/{*topic}", post(publish_body))
        .route("/api/topics/{*rest}", get(history))
        .route("/api/stats", get(stats))
        .route("/health", get(health))
        .route("/metrics", get(metrics))
        .route("/wt/cert-hash", get(wt_cert_hash))
        .fallback(|| async {
            ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such endpoint")
        })
        .with_state(app)
}

async fn index() -> Html<&'static str> {
    Html(include_str!("../assets/index.html"))
}

/// `GET /wt/cert-hash`: where WebTransport listens and the SHA-256 of its
/// certificate, for browsers' `serverCertificateHashes` and for clients
/// that only know the gateway's HTTP URL.
async fn wt_cert_hash(State(app): State<Arc<App>>) -> Response {
    let info = app.webtransport.read().ok().and_then(|i| i.clone());
    match info {
        Some(info) => ([(header::CACHE_CONTROL, "no-store")], Json(info)).into_response(),
        None => ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            "WebTransport is not enabled on this gateway",
        )
        .into_response(),
    }
}

async fn health() -> Json<serde_json::Value> {
    Json(serde_json::json!({"status": "ok"}))
}

async fn stats(State(app): State<Arc<App>>) -> Response {
    Json(app.stats.snapshot()).into_response()
}

async fn metrics(State(app): State<Arc<App>>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        app.stats.prometheus(),
    )
        .into_response()
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn authorize(app: &App, headers: &HeaderMap) -> Result<(), ApiError> {
    let Some(key) = app.config.api_key.as_deref() else {
        return Ok(());
    };
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    let header_key = headers.get("x-api-key").and_then(|v| v.to_str().ok());
    if [bearer, header_key]
        .into_iter()
        .flatten()
        .any(|given| constant_time_eq(given.as_bytes(), key.as_bytes()))
    {
        Ok(())
    } else {
        Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "publishing needs the API key: send Authorization: Bearer <key> or X-Api-Key: <key>",
        ))
    }
}

async fn read_body(app: &App, req: Request) -> Result<(HeaderMap, String, Bytes), ApiError> {
    let (parts, body) = req.into_parts();
    let max = app.config.max_frame_bytes;
    let bytes = axum::body::to_bytes(body, max).await.map_err(|_| {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!("the body exceeds max_frame_bytes ({max} bytes) or could not be read"),
        )
    })?;
    Ok((
        parts.headers,
        parts.uri.query().unwrap_or("").to_owned(),
        bytes,
    ))
}

fn check_names(topic: &str, event: Option<&str>) -> Result<(), ApiError> {
    validate_topic(topic).map_err(|e| ApiError::bad_topic(&e.to_string()))?;
    if is_reserved(topic) {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "publish_forbidden",
            format!("{topic} is reserved for the gateway"),
        ));
    }
    if let Some(Err(e)) = event.map(validate_event) {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "bad_event",
            e.to_string(),
        ));
    }
    Ok(())
}

/// 400 `bad_request` unless `msg_id` (when given) is 1 to 64 bytes without
/// control characters.
fn check_msg_id(msg_id: Option<&str>) -> Result<(), ApiError> {
    match msg_id.map(validate_msg_id) {
        Some(Err(e)) => Err(ApiError::bad_request(e.to_string())),
        _ => Ok(()),
    }
}

/// Publishes and answers `{"topic","epoch","offset"}`, plus `"duplicate":
/// true` when the `msg_id` was already published (the position is then the
/// first publication's).
async fn publish(app: &App, request: PublishRequest<'_>) -> Response {
    let topic = request.topic;
    match app.broker.publish(request).await {
        Ok(p) => {
            let mut body = serde_json::json!({
                "topic": topic,
                "epoch": p.position.epoch,
                "offset": p.position.offset,
            });
            if p.duplicate {
                body["duplicate"] = serde_json::Value::Bool(true);
            }
            Json(body).into_response()
        }
        Err(e) => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            e.to_string(),
        )
        .into_response(),
    }
}

#[derive(Deserialize)]
struct PublishBody<'a> {
    topic: Option<String>,
    event: Option<String>,
    msg_id: Option<String>,
    #[serde(borrow, default, deserialize_with = "present_raw")]
    data: Option<&'a RawValue>,
}

/// `"data": null` is a payload: read the field raw whenever it is present.
fn present_raw<'de, D: Deserializer<'de>>(d: D) -> Result<Option<&'de RawValue>, D::Error> {
    <&RawValue>::deserialize(d).map(Some)
}

/// `POST /api/publish` with `{"topic","event"?,"msg_id"?,"data"}`.
async fn publish_json(State(app): State<Arc<App>>, req: Request) -> Response {
    let (headers, _, bytes) = match read_body(&app, req).await {
        Ok(b) => b,
        Err(e) => return e.into_response(),
    };
    if let Err(e) = authorize(&app, &headers) {
        return e.into_response();
    }
    let body: PublishBody<'_> = match serde_json::from_slice(&bytes) {
        Ok(b) => b,
        Err(e) => {
            return ApiError::bad_request(format!(
            "the body must be a JSON object {{\"topic\", \"event\"?, \"msg_id\"?, \"data\"}}: {e}"
        ))
            .into_response()
        }
    };
    let (Some(topic), Some(data)) = (body.topic, body.data) else {
        return ApiError::bad_request("the body needs \"topic\" and \"data\"").into_response();
    };
    if let Err(e) = check_names(&topic, body.event.as_deref()) {
        return e.into_response();
    }
    if let Err(e) = check_msg_id(body.msg_id.as_deref()) {
        return e.into_response();
    }
    // The raw text is a slice of the body: keep it verbatim, without a copy.
    let start = data.get().as_ptr() as usize - bytes.as_ptr() as usize;
    let payload = match Payload::from_json(bytes.slice(start..start + data.get().len())) {
        Ok(p) => p,
        Err(e) => return ApiError::bad_request(e.to_string()).into_response(),
    };
    let request = PublishRequest {
        topic: &topic,
        event: body.event,
        data: payload,
        msg_id: body.msg_id,
    };
    publish(&app, request).await
}

/// `POST /api/publish/{topic}[?event=NAME][&msg_id=ID]` with the payload as
/// the body; `Idempotency-Key: ID` is the same as `msg_id=ID`.
async fn publish_body(
    State(app): State<Arc<App>>,
    Path(topic): Path<String>,
    req: Request,
) -> Response {
    let (headers, query, bytes) = match read_body(&app, req).await {
        Ok(b) => b,
        Err(e) => return e.into_response(),
    };
    if let Err(e) = authorize(&app, &headers) {
        return e.into_response();
    }
    let param = |name: &str| {
        form_urlencoded::parse(query.as_bytes())
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned())
    };
    let event = param("event");
    if let Err(e) = check_names(&topic, event.as_deref()) {
        return e.into_response();
    }
    let msg_id = match publish_body_msg_id(param("msg_id"), &headers) {
        Ok(id) => id,
        Err(e) => return e.into_response(),
    };
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        })
        .unwrap_or_default();
    let payload = match content_type.as_str() {
        "" | "application/json" => Payload::from_json(bytes).map_err(|e| e.to_string()),
        // curl's `-d` sends this type by default; a body that is JSON is taken as JSON.
        "application/x-www-form-urlencoded" => Payload::from_json(bytes).map_err(|e| {
            format!("{e} (the body was sent as a form; send Content-Type: application/json)")
        }),
        "application/msgpack" | "application/x-msgpack" | "application/vnd.msgpack" => {
            Payload::from_msgpack(bytes).map_err(|e| e.to_string())
        }
        "application/octet-stream" => Ok(Payload::binary(bytes)),
        "text/plain" => match std::str::from_utf8(&bytes) {
            Ok(text) => Ok(Payload::from_json_value(&serde_json::Value::String(text.to_owned()))),
            Err(_) => Err("a text/plain body must be UTF-8".to_owned()),
        },
        other => {
            return ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                format!("cannot publish {other}; use application/json, application/msgpack, application/octet-stream or text/plain"),
            )
            .into_response()
        }
    };
    match payload {
        Ok(data) => {
            let request = PublishRequest {
                topic: &topic,
                event,
                data,
                msg_id,
            };
            publish(&app, request).await
        }
        Err(e) => ApiError::bad_request(e).into_response(),
    }
}

/// The `msg_id` of `POST /api/publish/{topic}`: the `msg_id` query parameter
/// or the `Idempotency-Key` header (both may be given if they agree).
fn publish_body_msg_id(
    query: Option<String>,
    headers: &HeaderMap,
) -> Result<Option<String>, ApiError> {
    let mut keys = headers.get_all("idempotency-key").iter();
    let header = match (keys.next(), keys.next()) {
        (None, _) => None,
        (Some(v), None) => Some(
            std::str::from_utf8(v.as_bytes())
                .map_err(|_| ApiError::bad_request("the Idempotency-Key header must be UTF-8"))?
                .to_owned(),
        ),
        (Some(_), Some(_)) => {
            return Err(ApiError::bad_request(
                "send at most one Idempotency-Key header",
            ))
        }
    };
    let msg_id = match (query, header) {
        (Some(q), Some(h)) if q != h => {
            return Err(ApiError::bad_request(
                "the msg_id parameter and the Idempotency-Key header differ; send one of them",
            ))
        }
        (q, h) => q.or(h),
    };
    check_msg_id(msg_id.as_deref())?;
    Ok(msg_id)
}

/// `GET /api/topics/{topic}/history[?since=EPOCH:OFFSET][&limit=N]`.
async fn history(State(app): State<Arc<App>>, Path(rest): Path<String>, req: Request) -> Response {
    history_inner(&app, &rest, req.uri().query().unwrap_or(""))
        .unwrap_or_else(IntoResponse::into_response)
}

fn history_inner(app: &App, rest: &str, query: &str) -> Result<Response, ApiError> {
    let Some(topic) = rest.strip_suffix("/history") else {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            "no such endpoint; try /api/topics/{topic}/history",
        ));
    };
    validate_topic(topic).map_err(|e| ApiError::bad_topic(&e.to_string()))?;
    let mut since = None;
    let mut limit = DEFAULT_HISTORY_LIMIT;
    for (k, v) in form_urlencoded::parse(query.as_bytes()) {
        match &*k {
            "since" => {
                let parsed = v.split_once(':').and_then(|(e, o)| {
                    Some(Position {
                        epoch: e.to_owned(),
                        offset: o.parse().ok()?,
                    })
                });
                since = Some(
                    parsed.ok_or_else(|| ApiError::bad_request("since must be EPOCH:OFFSET"))?,
                );
            }
            "limit" => {
                limit = v
                    .parse()
                    .ok()
                    .filter(|l| (1..=MAX_HISTORY_LIMIT).contains(l))
                    .ok_or_else(|| {
                        ApiError::new(
                            StatusCode::BAD_REQUEST,
                            "bad_limit",
                            format!("limit must be between 1 and {MAX_HISTORY_LIMIT}"),
                        )
                    })?;
            }
            _ => {}
        }
    }
    let page = app
        .hub
        .history(topic, since.as_ref(), limit as usize, crate::now_ms())
        .map_err(|e: Unrecoverable| {
            ApiError::new(
                StatusCode::GONE,
                "history_unavailable",
                unrecoverable_message(&e),
            )
        })?;
    let frame = Outbound::History(Box::new(HistoryItem {
        id: None,
        topic: Arc::from(topic),
        position: page.position,
        publications: page.publications,
        more: page.more,
    }));
    Ok((
        [(header::CONTENT_TYPE, "application/json")],
        frame.encode(Encoding::Json),
    )
        .into_response())
}
