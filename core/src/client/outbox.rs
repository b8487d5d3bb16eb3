//! Publishing: the offline queue, publishes in flight on a bidirectional
//! connection (by request id) or over HTTP (by msg_id, one at a time), and
//! their retries with the same msg_id.

use super::*;

/// A publish not yet acknowledged; `seq` keeps the order it was made in.
#[derive(Debug, Clone)]
pub(super) struct PendingPublish {
    pub(super) seq: u64,
    pub(super) msg_id: String,
    pub(super) topic: String,
    pub(super) event: Option<String>,
    pub(super) data: Payload,
}

impl Client {
    /// Publishes; while disconnected the publish waits in the offline queue.
    /// Returns its msg_id: the [`Event::Published`] or
    /// [`Event::PublishFailed`] about it carries the same id, and the
    /// gateway publishes it once however often it is retried.
    pub fn publish(
        &mut self,
        _now: u64,
        topic: &str,
        event: Option<String>,
        data: Payload,
    ) -> Result<String, CommandError> {
        if self.state == State::Closed {
            return Err(CommandError::Closed);
        }
        validate_topic(topic).map_err(|e| CommandError::BadName(e.to_string()))?;
        if let Some(Err(e)) = event.as_deref().map(validate_event) {
            return Err(CommandError::BadName(e.to_string()));
        }
        if self.pending_publishes() >= self.config.offline_queue {
            return Err(CommandError::QueueFull(self.pending_publishes()));
        }
        let seq = self.next_seq;
        self.next_seq += 1;
        let p = PendingPublish {
            seq,
            msg_id: format!("{}-{seq}", self.instance),
            topic: topic.to_owned(),
            event,
            data,
        };
        let msg_id = p.msg_id.clone();
        if self.live().is_some() {
            self.send_publish(p);
        } else {
            self.outbox.push_back(p);
        }
        Ok(msg_id)
    }

    /// The outcome of an [`Action::HttpPublish`].
    pub fn handle_http_publish(
        &mut self,
        now: u64,
        msg_id: &str,
        result: Result<Position, HttpPublishError>,
    ) {
        let Some(p) = self.inflight_http.remove(msg_id) else {
            return;
        };
        match result {
            Ok(position) => {
                self.publish_failures = 0;
                self.events.push_back(Event::Published {
                    msg_id: p.msg_id,
                    topic: p.topic,
                    position,
                });
            }
            Err(e) if e.retry && self.state != State::Closed => {
                // The gateway may be down: try again after a backoff delay,
                // not at once.
                self.requeue(vec![p]);
                let delay = self
                    .config
                    .backoff
                    .delay(self.publish_failures, &mut self.rng);
                self.publish_failures = self.publish_failures.saturating_add(1);
                self.timers[Timer::PublishRetry as usize] = Some(now + delay);
            }
            Err(e) => self.events.push_back(Event::PublishFailed {
                msg_id: p.msg_id,
                code: e.code,
                message: e.message,
            }),
        }
        self.flush_outbox();
    }

    /// Puts publishes back at the front of the queue, keeping msg_id order.
    pub(super) fn requeue(&mut self, mut back: Vec<PendingPublish>) {
        back.sort_by_key(|p| p.seq);
        for p in back.into_iter().rev() {
            self.outbox.push_front(p);
        }
        self.outbox.make_contiguous().sort_by_key(|p| p.seq);
    }

    pub(super) fn flush_outbox(&mut self) {
        if self.timers[Timer::PublishRetry as usize].is_some() {
            return;
        }
        match self.live() {
            // An HTTP publish still in flight (from a one-way transport just
            // left) goes first: the rest waits for its answer.
            Some((_, true)) if !self.inflight_http.is_empty() => {}
            Some((_, true)) => {
                while let Some(p) = self.outbox.pop_front() {
                    self.send_publish(p);
                }
            }
            // One HTTP publish at a time: separate requests could overtake
            // each other, and publishes keep the order they were made in.
            Some((_, false)) if self.inflight_http.is_empty() => {
                if let Some(p) = self.outbox.pop_front() {
                    self.send_publish(p);
                }
            }
            _ => {}
        }
    }

    pub(super) fn send_publish(&mut self, p: PendingPublish) {
        match self.live() {
            Some((_, true)) if !self.inflight_http.is_empty() => self.outbox.push_back(p),
            Some((conn, true)) => {
                let id = self.next_req;
                self.next_req += 1;
                let frame = ClientFrame::Publish {
                    id: Some(id),
                    topic: p.topic.clone(),
                    event: p.event.clone(),
                    data: p.data.clone(),
                    msg_id: Some(p.msg_id.clone()),
                };
                self.send(conn, &frame);
                self.inflight.insert(id, p);
            }
            Some((_, false)) if !self.inflight_http.is_empty() => self.outbox.push_back(p),
            Some((_, false)) => {
                let request = publish_request(
                    &p.topic,
                    p.event.as_deref(),
                    &p.msg_id,
                    &p.data,
                    self.config.api_key.as_deref(),
                );
                self.actions.push_back(Action::HttpPublish {
                    msg_id: p.msg_id.clone(),
                    topic: p.topic.clone(),
                    event: p.event.clone(),
                    data: p.data.clone(),
                    request,
                });
                self.inflight_http.insert(p.msg_id.clone(), p);
            }
            None => self.outbox.push_back(p),
        }
    }
}
