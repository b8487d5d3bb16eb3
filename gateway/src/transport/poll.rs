//! Long-poll `/poll`: each request replays from history after its cursor, or
//! waits for the next publication, and answers with the next cursor.
//!
//! Each request subscribes with its cursor (replay then live, see
//! `hub::handover`), so nothing published between two polls is lost while
//! history holds it.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use bytes::{BufMut, Bytes, BytesMut};
use livegate_core::cursor::format_cursor;
use livegate_core::protocol::Position;
use livegate_core::Encoding;

use crate::error::ServiceError;
use crate::hub::Outbound;
use crate::stats::Transport;
use crate::transport::credentials;
use crate::transport::gzip::{accepts_gzip, gzip_body};
use crate::transport::parse_topic_query;
use crate::wire::SharedPub;
use crate::App;

/// Most frames in one answer.
pub const MAX_FRAMES: usize = 1000;
/// Longest wait a client may ask for.
pub const MAX_TIMEOUT_MS: u64 = 60_000;

/// `GET /poll?topic=a&topic=b[&cursor=CURSOR][&timeout_ms=N]`.
pub async fn handler(State(app): State<Arc<App>>, req: Request) -> Response {
    let query = match parse_topic_query(
        req.uri().query(),
        "cursor",
        None,
        app.config.max_subscriptions,
    ) {
        Ok(q) => q,
        Err(e) => return e.into_response(),
    };
    let timeout_ms = match query.params.iter().find(|(k, _)| k == "timeout_ms") {
        None => app.config.poll_timeout_ms,
        Some((_, v)) => match v.parse::<u64>() {
            Ok(ms) if ms <= MAX_TIMEOUT_MS => ms,
            _ => {
                return ServiceError::bad_request(format!(
                    "timeout_ms must be a number of milliseconds from 0 to {MAX_TIMEOUT_MS}"
                ))
                .into_response()
            }
        },
    };
    let tokens = credentials::http_tokens(req.headers(), req.uri().query());
    let identity = match credentials::authenticate(&app.service, &tokens) {
        Ok(identity) => identity,
        Err(e) => return e.into_response(),
    };
    let gzip = app.config.deflate().filter(|_| accepts_gzip(req.headers()));
    let _counted = app.service.count_connection(Transport::Poll);
    let (mut conn, mut rx) = app.service.open(identity);
    for topic in &query.topics {
        if let Err(e) = conn
            .subscribe(topic.clone(), query.cursor.get(topic), None)
            .await
        {
            return e.into_response();
        }
    }
    let mut answer = Answer {
        positions: query.cursor.clone(),
        had_cursor: query.cursor,
        frames: Vec::new(),
        full: false,
    };
    let deadline = tokio::time::Instant::now() + Duration::from_millis(timeout_ms);
    loop {
        while let Some(item) = rx.try_recv() {
            answer.take(item);
        }
        if !answer.frames.is_empty() || answer.full {
            break;
        }
        tokio::select! {
            item = rx.recv() => answer.take(item),
            _ = tokio::time::sleep_until(deadline) => break,
            _ = conn.outbox().closed() => break,
        }
    }
    // Leaves every topic.
    drop(conn);

    let cursor = format_cursor(
        query
            .topics
            .iter()
            .filter_map(|t| answer.positions.get(t).map(|p| (t.as_str(), p))),
    );
    let mut body =
        BytesMut::with_capacity(64 + answer.frames.iter().map(Bytes::len).sum::<usize>());
    body.put_slice(b"{\"cursor\":");
    body.put_slice(&serde_json::to_vec(&cursor).unwrap_or_else(|_| b"\"\"".to_vec()));
    body.put_slice(b",\"frames\":[");
    for (i, f) in answer.frames.iter().enumerate() {
        if i > 0 {
            body.put_u8(b',');
        }
        body.put_slice(f);
    }
    body.put_slice(b"]}");
    let mut res = match gzip {
        Some(settings) => {
            let mut res = gzip_body(&body, settings).into_response();
            res.headers_mut()
                .insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
            res
        }
        None => body.freeze().into_response(),
    };
    res.headers_mut()
        .insert(header::VARY, HeaderValue::from_static("accept-encoding"));
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    res.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res
}

struct Answer {
    had_cursor: HashMap<String, Position>,
    positions: HashMap<String, Position>,
    frames: Vec<Bytes>,
    full: bool,
}

impl Answer {
    fn push_publication(&mut self, p: &SharedPub) {
        if self.frames.len() >= MAX_FRAMES {
            // The cursor stays before this one: the next poll gets it from history.
            self.full = true;
            return;
        }
        self.frames.push(p.frame(Encoding::Json).clone());
        self.positions
            .insert(p.publication.topic.clone(), p.publication.position());
    }

    fn take(&mut self, item: Outbound) {
        match item {
            Outbound::Publication(p) => self.push_publication(&p),
            Outbound::Subscribed(s) => {
                // A recovered topic needs no announcement: its publications say it all.
                if !s.recovered || !self.had_cursor.contains_key(&*s.topic) {
                    self.positions
                        .insert(s.topic.to_string(), s.position.clone());
                    self.frames.push(s.encode(Encoding::Json, false));
                }
                for p in &s.replay {
                    self.push_publication(p);
                }
            }
            other => self.frames.push(other.encode(Encoding::Json)),
        }
    }
}
