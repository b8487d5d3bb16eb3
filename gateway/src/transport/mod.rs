//! Transports: each adapts bytes on one kind of connection to the service.
//!
//! They know nothing of each other, nor of the HTTP API. Each opens a
//! [`crate::service::Connection`] per client and drains its outbound queue
//! ([`crate::hub::Receiver`]) onto the socket. [`session`] holds the frame
//! handling of the bidirectional transports (WebSocket, WebTransport); SSE
//! and long-poll are read-only and subscribe from their query.

pub mod credentials;
pub mod gzip;
pub mod poll;
pub mod session;
pub mod sse;
pub mod ws;
pub mod ws_deflate;
pub mod ws_io;
pub mod wt;

use std::collections::HashMap;

use livegate_core::cursor::{parse_cursor, CursorError};
use livegate_core::protocol::Position;
use tokio::sync::Notify;

use crate::error::{ErrorKind, ServiceError};
use crate::service::validate;

/// Lets a handler drop the TCP connection it runs on (`server.rs` puts one
/// in every request's extensions).
#[derive(Debug, Default)]
pub struct ConnControl {
    abort: Notify,
}

impl ConnControl {
    /// Drops the connection now.
    pub fn abort(&self) {
        self.abort.notify_one();
    }

    /// Resolves once [`ConnControl::abort`] was called.
    pub async fn aborted(&self) {
        self.abort.notified().await;
    }
}

/// The topics and optional cursor of an SSE or long-poll request.
pub(crate) struct TopicQuery {
    pub topics: Vec<String>,
    pub cursor: HashMap<String, Position>,
    pub params: Vec<(String, String)>,
}

/// Reads `topic=a&topic=b&<cursor_key>=...` and checks every part.
pub(crate) fn parse_topic_query(
    query: Option<&str>,
    cursor_key: &str,
    extra_cursor: Option<&str>,
    max_topics: usize,
) -> Result<TopicQuery, ServiceError> {
    let params: Vec<(String, String)> = form_urlencoded::parse(query.unwrap_or("").as_bytes())
        .into_owned()
        .collect();
    let mut topics: Vec<String> = Vec::new();
    for (k, v) in &params {
        if k == "topic" {
            validate::topic(v)?;
            if !topics.contains(v) {
                topics.push(v.clone());
            }
        }
    }
    if topics.is_empty() {
        return Err(ServiceError::bad_request(
            "name at least one topic: ?topic=NAME (repeat for more)",
        ));
    }
    validate::topic_count(topics.len(), max_topics)?;
    let cursor_text = extra_cursor.map(str::to_owned).or_else(|| {
        params
            .iter()
            .find(|(k, _)| k == cursor_key)
            .map(|(_, v)| v.clone())
    });
    let cursor = match cursor_text {
        None => HashMap::new(),
        Some(text) => parse_cursor(&text)
            .map_err(|e: CursorError| ServiceError::new(ErrorKind::BadCursor, e.to_string()))?
            .into_iter()
            .collect(),
    };
    Ok(TopicQuery {
        topics,
        cursor,
        params,
    })
}
