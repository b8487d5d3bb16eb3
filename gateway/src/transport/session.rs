//! Frame handling shared by the bidirectional transports.
//!
//! A [`Session`] turns decoded client frames into hub calls and answers on the
//! connection's queue, so answers and publications leave in the order the hub
//! produced them.

use std::collections::HashSet;
use std::sync::Arc;

use livegate_core::history::Unrecoverable;
use livegate_core::protocol::{ClientFrame, ServerFrame};
use livegate_core::topic::{is_reserved, validate_event, validate_msg_id, validate_topic};
use livegate_core::{Encoding, ErrorCode};

use crate::broker::PublishRequest;
use crate::hub::{Connection, HistoryItem, Outbound};
use crate::App;

/// Longest history page.
pub const MAX_HISTORY_LIMIT: u64 = 1000;
/// History page when no `limit` is given.
pub const DEFAULT_HISTORY_LIMIT: u64 = 100;

/// One client's subscriptions and frame handling.
pub struct Session {
    app: Arc<App>,
    conn: Arc<Connection>,
    topics: HashSet<String>,
}

impl Session {
    /// A session on a connection the hub gave out.
    pub fn new(app: Arc<App>, conn: Arc<Connection>) -> Self {
        Self {
            app,
            conn,
            topics: HashSet::new(),
        }
    }

    /// The connection.
    pub fn connection(&self) -> &Arc<Connection> {
        &self.conn
    }

    fn reply(&self, frame: ServerFrame) {
        self.conn.send(Outbound::frame(frame));
    }

    fn error(&self, id: Option<u64>, code: ErrorCode, message: impl Into<String>) {
        self.reply(ServerFrame::Error {
            id,
            code: code.as_str().to_owned(),
            message: message.into(),
        });
    }

    /// Handles one message's bytes.
    pub async fn handle_bytes(&mut self, encoding: Encoding, bytes: &[u8]) {
        match encoding.decode_client(bytes) {
            Ok(frame) => self.handle(frame).await,
            Err(bad) => self.error(bad.id, bad.error.code(), bad.error.to_string()),
        }
    }

    /// Handles one decoded frame.
    pub async fn handle(&mut self, frame: ClientFrame) {
        let id = frame.id();
        // Every frame naming a topic needs a valid one.
        if let ClientFrame::Subscribe { topic, .. }
        | ClientFrame::Unsubscribe { topic, .. }
        | ClientFrame::Publish { topic, .. }
        | ClientFrame::History { topic, .. } = &frame
        {
            if let Err(e) = validate_topic(topic) {
                return self.error(id, ErrorCode::BadTopic, e.to_string());
            }
        }
        match frame {
            ClientFrame::Subscribe { id, topic, since } => {
                if self.topics.contains(&topic) {
                    return self.error(
                        id,
                        ErrorCode::AlreadySubscribed,
                        format!("already subscribed to {topic}; unsubscribe first"),
                    );
                }
                let max = self.app.config.max_subscriptions;
                if self.topics.len() >= max {
                    return self.error(
                        id,
                        ErrorCode::TooManySubscriptions,
                        format!("this connection already has {max} subscriptions, the limit"),
                    );
                }
                match self.app.hub.subscribe(
                    &self.conn,
                    &topic,
                    since.as_ref(),
                    id,
                    crate::now_ms(),
                ) {
                    Ok(_) => {
                        self.topics.insert(topic);
                    }
                    Err(e) => {
                        if let Some(code) = e.code() {
                            self.error(id, code, format!("cannot subscribe to {topic}"));
                        }
                    }
                }
            }
            ClientFrame::Unsubscribe { id, topic } => {
                if !self.topics.remove(&topic) {
                    return self.error(
                        id,
                        ErrorCode::NotSubscribed,
                        format!("not subscribed to {topic}"),
                    );
                }
                self.app.hub.unsubscribe(self.conn.id, &topic);
                self.reply(ServerFrame::Unsubscribed { id, topic });
            }
            ClientFrame::Publish {
                id,
                topic,
                event,
                data,
                msg_id,
            } => {
                if let Some(Err(e)) = event.as_deref().map(validate_event) {
                    return self.error(id, ErrorCode::BadEvent, e.to_string());
                }
                if let Some(Err(e)) = msg_id.as_deref().map(validate_msg_id) {
                    return self.error(id, ErrorCode::BadFrame, e.to_string());
                }
                if is_reserved(&topic) {
                    return self.error(
                        id,
                        ErrorCode::PublishForbidden,
                        format!("{topic} is reserved for the gateway"),
                    );
                }
                if !self.app.hub.namespaces().options_for(&topic).client_publish {
                    return self.error(
                        id,
                        ErrorCode::PublishForbidden,
                        format!("clients may not publish on {topic}: its namespace has client_publish = false"),
                    );
                }
                let request = PublishRequest {
                    topic: &topic,
                    event,
                    data,
                    msg_id,
                };
                // A duplicate gets the first publication's ack, unchanged.
                match self.app.broker.publish(request).await {
                    Ok(p) => self.reply(ServerFrame::Ack {
                        id,
                        topic,
                        epoch: p.position.epoch,
                        offset: p.position.offset,
                    }),
                    Err(e) => self.error(id, ErrorCode::Unsupported, e.to_string()),
                }
            }
            ClientFrame::History {
                id,
                topic,
                since,
                limit,
            } => {
                let limit = limit.unwrap_or(DEFAULT_HISTORY_LIMIT);
                if !(1..=MAX_HISTORY_LIMIT).contains(&limit) {
                    return self.error(
                        id,
                        ErrorCode::BadLimit,
                        format!("limit must be between 1 and {MAX_HISTORY_LIMIT}"),
                    );
                }
                match self
                    .app
                    .hub
                    .history(&topic, since.as_ref(), limit as usize, crate::now_ms())
                {
                    Ok(page) => {
                        self.conn.send(Outbound::History(Box::new(HistoryItem {
                            id,
                            topic: Arc::from(topic.as_str()),
                            position: page.position,
                            publications: page.publications,
                            more: page.more,
                        })));
                    }
                    Err(e) => {
                        self.error(id, ErrorCode::HistoryUnavailable, unrecoverable_message(&e))
                    }
                }
            }
            ClientFrame::Ping { id } => self.reply(ServerFrame::Pong { id }),
            ClientFrame::Refresh { .. } => self.error(
                None,
                ErrorCode::Unsupported,
                "token refresh needs authentication, which this gateway does not configure",
            ),
            other => self.error(
                other.id(),
                ErrorCode::Unsupported,
                "this frame is not served by this gateway",
            ),
        }
    }

    /// Leaves every topic and forgets the connection.
    pub fn finish(self) {
        self.app
            .hub
            .disconnect(&self.conn, self.topics.iter().map(String::as_str));
    }
}

/// The message of a `history_unavailable` answer.
pub fn unrecoverable_message(e: &Unrecoverable) -> String {
    format!("cannot serve this history: {e}")
}
