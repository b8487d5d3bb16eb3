//! `POST /api/publish` (a JSON envelope) and `POST /api/publish/{topic}`
//! (the payload as the body). Both answer `{"topic","epoch","offset"}`,
//! plus `"duplicate": true` when the `msg_id` was already published (the
//! position is then the first publication's).

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, Request, State};
use axum::http::{header, HeaderMap};
use axum::response::{IntoResponse, Response};
use axum::Json;
use livegate_core::Payload;
use serde::{Deserialize, Deserializer};
use serde_json::value::RawValue;

use crate::error::{ErrorKind, ServiceError};
use crate::service::{Identity, Published};
use crate::App;

/// A request's body after the size limit and the key check.
struct Admitted {
    identity: Identity,
    headers: HeaderMap,
    query: String,
    body: Bytes,
}

/// Reads the body (413 over `max_frame_bytes`), then makes sure the caller
/// may publish at all (401), before anything else is looked at.
async fn admit(app: &App, req: Request) -> Result<Admitted, ServiceError> {
    let (parts, body) = req.into_parts();
    let max = app.config.max_frame_bytes;
    let body = axum::body::to_bytes(body, max).await.map_err(|_| {
        ServiceError::new(
            ErrorKind::PayloadTooLarge,
            format!("the body exceeds max_frame_bytes ({max} bytes) or could not be read"),
        )
    })?;
    let identity = app
        .service
        .authenticate(&super::credentials(&parts.headers))?;
    app.service.may_publish(&identity)?;
    Ok(Admitted {
        identity,
        query: parts.uri.query().unwrap_or("").to_owned(),
        headers: parts.headers,
        body,
    })
}

fn answer(topic: &str, p: Published) -> Response {
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

#[derive(Deserialize)]
struct Envelope<'a> {
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
pub async fn json(State(app): State<Arc<App>>, req: Request) -> Response {
    publish_json(&app, req)
        .await
        .unwrap_or_else(IntoResponse::into_response)
}

async fn publish_json(app: &App, req: Request) -> Result<Response, ServiceError> {
    let Admitted { identity, body, .. } = admit(app, req).await?;
    let envelope: Envelope<'_> = serde_json::from_slice(&body).map_err(|e| {
        ServiceError::bad_request(format!(
            "the body must be a JSON object {{\"topic\", \"event\"?, \"msg_id\"?, \"data\"}}: {e}"
        ))
    })?;
    let (Some(topic), Some(data)) = (envelope.topic, envelope.data) else {
        return Err(ServiceError::bad_request(
            "the body needs \"topic\" and \"data\"",
        ));
    };
    let permit = app
        .service
        .check_publish(&identity, &topic, envelope.event, envelope.msg_id)?;
    // The raw text is a slice of the body: keep it verbatim, without a copy.
    let start = data.get().as_ptr() as usize - body.as_ptr() as usize;
    let payload = Payload::from_json(body.slice(start..start + data.get().len()))
        .map_err(|e| ServiceError::bad_request(e.to_string()))?;
    let published = app.service.publish(permit, payload).await?;
    Ok(answer(&topic, published))
}

/// `POST /api/publish/{topic}[?event=NAME][&msg_id=ID]` with the payload as
/// the body; `Idempotency-Key: ID` is the same as `msg_id=ID`.
pub async fn body(
    State(app): State<Arc<App>>,
    Path(topic): Path<String>,
    req: Request,
) -> Response {
    publish_body(&app, &topic, req)
        .await
        .unwrap_or_else(IntoResponse::into_response)
}

async fn publish_body(app: &App, topic: &str, req: Request) -> Result<Response, ServiceError> {
    let Admitted {
        identity,
        headers,
        query,
        body,
    } = admit(app, req).await?;
    let param = |name: &str| {
        form_urlencoded::parse(query.as_bytes())
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned())
    };
    let msg_id = msg_id(param("msg_id"), &headers)?;
    let permit = app
        .service
        .check_publish(&identity, topic, param("event"), msg_id)?;
    let payload = payload(&headers, body)?;
    let published = app.service.publish(permit, payload).await?;
    Ok(answer(topic, published))
}

/// The payload of a body, read as its content type says.
fn payload(headers: &HeaderMap, bytes: Bytes) -> Result<Payload, ServiceError> {
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
            return Err(ServiceError::new(
                ErrorKind::UnsupportedMediaType,
                format!("cannot publish {other}; use application/json, application/msgpack, application/octet-stream or text/plain"),
            ))
        }
    };
    payload.map_err(ServiceError::bad_request)
}

/// The `msg_id` of `POST /api/publish/{topic}`: the `msg_id` query parameter
/// or the `Idempotency-Key` header (both may be given if they agree).
fn msg_id(query: Option<String>, headers: &HeaderMap) -> Result<Option<String>, ServiceError> {
    let mut keys = headers.get_all("idempotency-key").iter();
    let header = match (keys.next(), keys.next()) {
        (None, _) => None,
        (Some(v), None) => Some(
            std::str::from_utf8(v.as_bytes())
                .map_err(|_| ServiceError::bad_request("the Idempotency-Key header must be UTF-8"))?
                .to_owned(),
        ),
        (Some(_), Some(_)) => {
            return Err(ServiceError::bad_request(
                "send at most one Idempotency-Key header",
            ))
        }
    };
    match (query, header) {
        (Some(q), Some(h)) if q != h => Err(ServiceError::bad_request(
            "the msg_id parameter and the Idempotency-Key header differ; send one of them",
        )),
        (q, h) => Ok(q.or(h)),
    }
}
