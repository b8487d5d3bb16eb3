//! The live page, health, stats, metrics and `/wt/cert-hash`.

use std::sync::Arc;

use axum::extract::State;
use axum::http::header;
use axum::response::{Html, IntoResponse, Response};
use axum::Json;

use crate::error::{ErrorKind, ServiceError};
use crate::App;

/// `GET /`: the live page.
pub async fn index() -> Html<&'static str> {
    Html(include_str!("../../assets/index.html"))
}

/// `GET /wt/cert-hash`: where WebTransport listens and the SHA-256 of its
/// certificate, for browsers' `serverCertificateHashes` and for clients
/// that only know the gateway's HTTP URL.
pub async fn wt_cert_hash(State(app): State<Arc<App>>) -> Response {
    let info = app.webtransport.read().ok().and_then(|i| i.clone());
    match info {
        Some(info) => ([(header::CACHE_CONTROL, "no-store")], Json(info)).into_response(),
        None => ServiceError::new(
            ErrorKind::NotFound,
            "WebTransport is not enabled on this gateway",
        )
        .into_response(),
    }
}

/// `GET /health`.
pub async fn health() -> Json<serde_json::Value> {
    Json(serde_json::json!({"status": "ok"}))
}

/// `GET /api/stats`.
pub async fn stats(State(app): State<Arc<App>>) -> Response {
    Json(app.service.stats()).into_response()
}

/// `GET /metrics`: the Prometheus text format.
pub async fn metrics(State(app): State<Arc<App>>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        app.service.prometheus(),
    )
        .into_response()
}
