//! `GET /api/topics/{topic}/history[?since=EPOCH:OFFSET][&limit=N]`.

use std::sync::Arc;

use axum::extract::{Path, Request, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use livegate_core::protocol::Position;
use livegate_core::Encoding;

use crate::error::{ErrorKind, ServiceError};
use crate::service::validate;
use crate::wire;
use crate::App;

/// Answers a `history` frame in JSON.
pub async fn handler(
    State(app): State<Arc<App>>,
    Path(rest): Path<String>,
    req: Request,
) -> Response {
    answer(&app, &rest, req.uri().query().unwrap_or(""), req.headers())
        .await
        .unwrap_or_else(IntoResponse::into_response)
}

async fn answer(
    app: &App,
    rest: &str,
    query: &str,
    headers: &axum::http::HeaderMap,
) -> Result<Response, ServiceError> {
    let Some(topic) = rest.strip_suffix("/history") else {
        return Err(ServiceError::new(
            ErrorKind::NotFound,
            "no such endpoint; try /api/topics/{topic}/history",
        ));
    };
    validate::topic(topic)?;
    let mut since = None;
    let mut limit = None;
    // Parameters are checked in the order given.
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
                    parsed
                        .ok_or_else(|| ServiceError::bad_request("since must be EPOCH:OFFSET"))?,
                );
            }
            "limit" => {
                // Not a number is out of range too.
                let n = v.parse().unwrap_or(0);
                validate::history_limit(Some(n))?;
                limit = Some(n);
            }
            _ => {}
        }
    }
    let identity = app.service.authenticate(&super::credentials(headers))?;
    let page = app
        .service
        .history(&identity, topic, since.as_ref(), limit)
        .await?;
    let frame = wire::history_frame(
        Encoding::Json,
        None,
        topic,
        &page.position,
        &page.publications,
        page.more,
    );
    Ok(([(header::CONTENT_TYPE, "application/json")], frame).into_response())
}
