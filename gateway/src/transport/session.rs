//! Frame handling shared by the bidirectional transports (WebSocket,
//! WebTransport).
//!
//! A [`Session`] turns decoded client frames into service calls and queues
//! the answers on the connection's outbound queue, so answers and
//! publications leave in the order they were produced.

use std::sync::Arc;

use livegate_core::protocol::{ClientFrame, ServerFrame};
use livegate_core::Encoding;

use crate::error::{ErrorKind, ServiceError};
use crate::hub::{HistoryItem, Outbound, Outbox};
use crate::service::Connection;

/// One client's frame handling over its service connection.
pub struct Session {
    conn: Connection,
}

impl Session {
    /// A session over an open connection.
    pub fn new(conn: Connection) -> Self {
        Self { conn }
    }

    /// The connection's outbound queue.
    pub fn outbox(&self) -> &Arc<Outbox> {
        self.conn.outbox()
    }

    fn reply(&self, frame: ServerFrame) {
        self.conn.outbox().send(Outbound::frame(frame));
    }

    fn error(&self, id: Option<u64>, e: ServiceError) {
        self.reply(ServerFrame::Error {
            id,
            code: e.kind.frame_code().to_owned(),
            message: e.message,
        });
    }

    /// Handles one message's bytes.
    pub async fn handle_bytes(&mut self, encoding: Encoding, bytes: &[u8]) {
        match encoding.decode_client(bytes) {
            Ok(frame) => self.handle(frame).await,
            Err(bad) => {
                let kind = ErrorKind::from(bad.error.code());
                self.error(bad.id, ServiceError::new(kind, bad.error.to_string()));
            }
        }
    }

    /// Handles one decoded frame.
    pub async fn handle(&mut self, frame: ClientFrame) {
        let id = frame.id();
        if let Err(e) = self.serve(frame).await {
            self.error(id, e);
        }
    }

    async fn serve(&mut self, frame: ClientFrame) -> Result<(), ServiceError> {
        match frame {
            ClientFrame::Subscribe { id, topic, since } => {
                self.conn.subscribe(topic, since.as_ref(), id).await?;
            }
            ClientFrame::Unsubscribe { id, topic } => {
                self.conn.unsubscribe(&topic)?;
                self.reply(ServerFrame::Unsubscribed { id, topic });
            }
            ClientFrame::Publish {
                id,
                topic,
                event,
                data,
                msg_id,
            } => {
                // A duplicate gets the first publication's ack, unchanged.
                let p = self.conn.publish(&topic, event, data, msg_id).await?;
                self.reply(ServerFrame::Ack {
                    id,
                    topic,
                    epoch: p.position.epoch,
                    offset: p.position.offset,
                });
            }
            ClientFrame::History {
                id,
                topic,
                since,
                limit,
            } => {
                let page = self.conn.history(&topic, since.as_ref(), limit).await?;
                self.conn
                    .outbox()
                    .send(Outbound::History(Box::new(HistoryItem {
                        id,
                        topic: Arc::from(topic.as_str()),
                        position: page.position,
                        publications: page.publications,
                        more: page.more,
                    })));
            }
            ClientFrame::Ping { id } => self.reply(ServerFrame::Pong { id }),
            ClientFrame::Refresh { token } => self.conn.refresh(&token)?,
            _ => {
                return Err(ServiceError::new(
                    ErrorKind::Unsupported,
                    "this frame is not served by this gateway",
                ))
            }
        }
        Ok(())
    }
}
