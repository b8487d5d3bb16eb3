//! What the gateway sends: each server frame's effect on the engine, and
//! delivery of publications once and in order per topic.

use super::*;

impl Client {
    pub(super) fn handle_server_frame(&mut self, now: u64, frame: ServerFrame) {
        match frame {
            ServerFrame::Connected { heartbeat_ms, .. }
                if self.conn.as_ref().is_some_and(|c| !c.greeted) =>
            {
                self.greet(now, heartbeat_ms);
            }
            ServerFrame::Subscribed {
                id,
                topic,
                epoch,
                offset,
                recovered,
                publications,
            } => {
                let asked = id.and_then(|id| self.pending_subs.remove(&id));
                let Some(sub) = self.subs.get_mut(&topic) else {
                    if asked.is_none() {
                        // Never asked for (an unsubscribe racing its answer is fine).
                        self.protocol_error(
                            now,
                            format!("subscribed to {topic}, which was never requested"),
                        );
                    }
                    return;
                };
                let position = Position { epoch, offset };
                let resumed = sub.position.is_some();
                if !recovered {
                    sub.position = Some(position.clone());
                }
                let event = if resumed {
                    Event::Recovered {
                        topic: topic.clone(),
                        recovered,
                        position: sub.position.clone().unwrap_or(position),
                    }
                } else {
                    Event::Subscribed {
                        topic: topic.clone(),
                        position: sub.position.clone().unwrap_or(position),
                    }
                };
                self.events.push_back(event);
                for p in publications {
                    self.deliver(p);
                }
            }
            ServerFrame::Publication(p) => self.deliver(p),
            ServerFrame::Ack {
                id,
                topic,
                epoch,
                offset,
            } => {
                if let Some(p) = id.and_then(|id| self.inflight.remove(&id)) {
                    self.events.push_back(Event::Published {
                        msg_id: p.msg_id,
                        topic,
                        position: Position { epoch, offset },
                    });
                }
            }
            ServerFrame::Error { id, code, message } => {
                let (code, message) = ErrorCode::from_wire_with_message(&code, message);
                if let Some(p) = id.and_then(|id| self.inflight.remove(&id)) {
                    self.events.push_back(Event::PublishFailed {
                        msg_id: p.msg_id,
                        code,
                        message,
                    });
                } else if let Some(topic) = id.and_then(|id| self.pending_subs.remove(&id)) {
                    self.subs.remove(&topic);
                    self.events.push_back(Event::SubscribeFailed {
                        topic,
                        code,
                        message,
                    });
                } else {
                    self.events.push_back(Event::Error { code, message });
                }
            }
            ServerFrame::Disconnect {
                code,
                reason,
                reconnect,
            } => {
                let (code, reason) = ErrorCode::from_wire_with_message(&code, reason);
                if code == ErrorCode::TokenExpired {
                    self.events.push_back(Event::TokenNeeded { expired: true });
                }
                let why = Reason::ServerDisconnect {
                    code,
                    reason,
                    reconnect,
                };
                if reconnect {
                    self.connection_lost(now, why);
                } else {
                    self.shut(why);
                }
            }
            // Pong, Unsubscribed, History: nothing to do for the engine.
            _ => {}
        }
    }

    /// Hands a publication to the app once, in order; tells the app when
    /// continuity broke.
    pub(super) fn deliver(&mut self, p: Publication) {
        let Some(sub) = self.subs.get_mut(&p.topic) else {
            return;
        };
        match &sub.position {
            Some(pos) if pos.epoch == p.epoch && p.offset <= pos.offset => return,
            Some(pos) if pos.epoch != p.epoch || p.offset > pos.offset + 1 => {
                self.events.push_back(Event::Recovered {
                    topic: p.topic.clone(),
                    recovered: false,
                    position: p.position(),
                });
            }
            _ => {}
        }
        sub.position = Some(p.position());
        self.events.push_back(Event::Publication(p));
    }
}
