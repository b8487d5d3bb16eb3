//! The route table: every path of the gateway, in one place.

use std::sync::Arc;

use axum::routing::{get, post};
use axum::Router;

use crate::error::{ErrorKind, ServiceError};
use crate::transport::{poll, sse, ws};
use crate::{http, App};

/// Every route of the gateway.
pub fn router(app: Arc<App>) -> Router {
    Router::new()
        .route("/", get(http::info::index))
        .route("/ws", get(ws::upgrade))
        .route("/sse", get(sse::handler))
        .route("/poll", get(poll::handler))
        .route("/api/publish", post(http::publish::json))
        .route("/api/publish/{*topic}", post(http::publish::body))
        .route("/api/topics/{*rest}", get(http::history::handler))
        .route("/api/stats", get(http::info::stats))
        .route("/health", get(http::info::health))
        .route("/metrics", get(http::info::metrics))
        .route("/wt/cert-hash", get(http::info::wt_cert_hash))
        .fallback(|| async { ServiceError::new(ErrorKind::NotFound, "no such endpoint") })
        .with_state(app)
}
