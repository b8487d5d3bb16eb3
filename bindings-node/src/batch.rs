//! A batch of items as one JSON array for `JSON.parse`.
//!
//! Publications become `{"kind":"publication","topic","epoch","offset",
//! "event","timeMs","data"}` with `data` copied verbatim from a JSON payload
//! (converted once from MessagePack); a binary payload is `"binary": i`, an
//! index into the batch's buffers. Status items carry `kind` and the fields
//! the README lists for it.

use livegate_client::SubscriptionEvent;
use livegate_core::client::Event;
use livegate_core::payload::PayloadKind;
use livegate_core::protocol::{Position, Publication};
use livegate_core::ErrorCode;
use napi::bindgen_prelude::Buffer;

use crate::Batch;

/// Builds one [`Batch`].
pub struct BatchWriter {
    json: Vec<u8>,
    binaries: Vec<Buffer>,
}

impl BatchWriter {
    pub fn new() -> Self {
        Self {
            json: b"[".to_vec(),
            binaries: Vec::new(),
        }
    }

    pub fn finish(mut self) -> Batch {
        self.json.push(b']');
        Batch {
            // Built from UTF-8 strings and JSON text only.
            json: String::from_utf8(self.json).unwrap_or_else(|_| "[]".to_owned()),
            binaries: self.binaries,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.json.len() == 1
    }

    fn open(&mut self, kind: &str) {
        if !self.is_empty() {
            self.json.push(b',');
        }
        self.json.extend_from_slice(b"{\"kind\":\"");
        self.json.extend_from_slice(kind.as_bytes());
        self.json.push(b'"');
    }

    fn field_str(&mut self, name: &str, value: &str) {
        self.json.extend_from_slice(b",\"");
        self.json.extend_from_slice(name.as_bytes());
        self.json.extend_from_slice(b"\":");
        // Writing a &str into a Vec cannot fail.
        let _ = serde_json::to_writer(&mut self.json, value);
    }

    fn field_raw(&mut self, name: &str, raw: &[u8]) {
        self.json.extend_from_slice(b",\"");
        self.json.extend_from_slice(name.as_bytes());
        self.json.extend_from_slice(b"\":");
        self.json.extend_from_slice(raw);
    }

    fn field_opt(&mut self, name: &str, value: Option<&str>) {
        match value {
            Some(v) => self.field_str(name, v),
            None => self.field_raw(name, b"null"),
        }
    }

    fn close(&mut self) {
        self.json.push(b'}');
    }

    /// One publication.
    pub fn publication(&mut self, p: &Publication) {
        self.open("publication");
        self.field_str("topic", &p.topic);
        self.field_str("epoch", &p.epoch);
        self.field_raw("offset", p.offset.to_string().as_bytes());
        self.field_opt("event", p.event.as_deref());
        self.field_raw("timeMs", p.time_ms.to_string().as_bytes());
        if p.data.kind() == PayloadKind::Binary {
            let index = self.binaries.len();
            self.binaries.push(Buffer::from(p.data.as_bytes().to_vec()));
            self.field_raw("data", b"null");
            self.field_raw("binary", index.to_string().as_bytes());
        } else {
            let json = p.data.to_json();
            self.field_raw("data", &json);
        }
        self.close();
    }

    fn position(&mut self, kind: &str, topic: &str, position: &Position) {
        self.open(kind);
        self.field_str("topic", topic);
        self.field_str("epoch", &position.epoch);
        self.field_raw("offset", position.offset.to_string().as_bytes());
    }

    fn failure(&mut self, kind: &str, topic: Option<&str>, code: ErrorCode, message: &str) {
        self.open(kind);
        if let Some(t) = topic {
            self.field_str("topic", t);
        }
        self.field_str("code", code.as_str());
        self.field_str("message", message);
        self.close();
    }

    /// One event of a subscription.
    pub fn subscription_event(&mut self, topic: &str, e: &SubscriptionEvent) {
        match e {
            SubscriptionEvent::Publication(p) => self.publication(p),
            SubscriptionEvent::Subscribed(position) => {
                self.position("subscribed", topic, position);
                self.close();
            }
            SubscriptionEvent::Recovered {
                recovered,
                position,
            } => self.recovered(topic, *recovered, position),
            SubscriptionEvent::Failed { code, message } => {
                self.failure("subscribe_failed", Some(topic), *code, message)
            }
            _ => {}
        }
    }

    fn recovered(&mut self, topic: &str, recovered: bool, position: &Position) {
        self.position("recovered", topic, position);
        self.field_raw("recovered", if recovered { b"true" } else { b"false" });
        self.close();
    }

    /// One engine event as a status item (publications and publish
    /// outcomes are not status).
    pub fn status_event(&mut self, e: &Event) {
        match e {
            Event::State { from, to, reason } => {
                self.open("state");
                self.field_str("state", to.as_str());
                self.field_str("previous", from.as_str());
                self.field_str("code", reason.code());
                self.field_str("message", &reason.to_string());
                self.field_opt("transport", reason.transport().map(|t| t.as_str()));
                self.close();
            }
            Event::Subscribed { topic, position } => {
                self.position("subscribed", topic, position);
                self.close();
            }
            Event::Recovered {
                topic,
                recovered,
                position,
            } => self.recovered(topic, *recovered, position),
            Event::SubscribeFailed {
                topic,
                code,
                message,
            } => self.failure("subscribe_failed", Some(topic), *code, message),
            Event::Error { code, message } => self.failure("error", None, *code, message),
            _ => {}
        }
    }
}
