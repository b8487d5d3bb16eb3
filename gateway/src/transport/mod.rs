//! Transports: each adapts bytes on one kind of connection to the hub.
//!
//! They know nothing of each other. [`session`] holds the frame handling
//! that every bidirectional transport (WebSocket now, WebTransport later)
//! shares; SSE and long-poll are read-only and use the hub directly.

pub mod poll;
pub mod session;
pub mod sse;
pub mod ws;
pub mod ws_io;
pub mod wt;

use std::collections::HashMap;

use livegate_core::cursor::{parse_cursor, CursorError};
use livegate_core::protocol::Position;
use livegate_core::topic::validate_topic;

use crate::api::ApiError;

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
) -> Result<TopicQuery, ApiError> {
    let params: Vec<(String, String)> = form_urlencoded::parse(query.unwrap_or("").as_bytes())
        .into_owned()
        .collect();
    let mut topics: Vec<String> = Vec::new();
    for (k, v) in &params {
        if k == "topic" {
            validate_topic(v).map_err(|e| ApiError::bad_topic(&e.to_string()))?;
            if !topics.contains(v) {
                topics.push(v.clone());
            }
        }
    }
    if topics.is_empty() {
        return Err(ApiError::bad_request(
            "name at least one topic: ?topic=NAME (repeat for more)",
        ));
    }
    if topics.len() > max_topics {
        return Err(ApiError::new(
            axum::http::StatusCode::BAD_REQUEST,
            "too_many_subscriptions",
            format!(
                "{} topics requested, the limit is {max_topics}",
                topics.len()
            ),
        ));
    }
    let cursor_text = extra_cursor.map(str::to_owned).or_else(|| {
        params
            .iter()
            .find(|(k, _)| k == cursor_key)
            .map(|(_, v)| v.clone())
    });
    let cursor = match cursor_text {
        None => HashMap::new(),
        Some(text) => parse_cursor(&text)
            .map_err(|e: CursorError| {
                ApiError::new(
                    axum::http::StatusCode::BAD_REQUEST,
                    "bad_cursor",
                    e.to_string(),
                )
            })?
            .into_iter()
            .collect(),
    };
    Ok(TopicQuery {
        topics,
        cursor,
        params,
    })
}
