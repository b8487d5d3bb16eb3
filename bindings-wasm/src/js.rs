//! Engine values as plain JavaScript objects (what `index.js` reads).

use js_sys::{Array, Object, Reflect, Uint8Array};
use livegate_core::client::{Event, Reason, Request, SubscriptionEvent, Target};
use livegate_core::payload::PayloadKind;
use livegate_core::{Payload, Position, Publication};
use wasm_bindgen::JsValue;

/// A plain object built field by field.
pub struct Obj(Object);

impl Obj {
    pub fn new(kind: &str) -> Self {
        Self(Object::new()).set("type", kind)
    }

    pub fn set(self, key: &str, value: impl Into<JsValue>) -> Self {
        // Setting a property on a fresh plain object cannot fail.
        let _ = Reflect::set(&self.0, &JsValue::from_str(key), &value.into());
        self
    }

    pub fn done(self) -> JsValue {
        self.0.into()
    }
}

/// A JavaScript `Error` whose `code` is a livegate error code.
pub fn error(code: &str, message: &str) -> JsValue {
    let e = js_sys::Error::new(message);
    let _ = Reflect::set(&e, &"code".into(), &code.into());
    e.into()
}

pub fn bytes(b: &[u8]) -> JsValue {
    Uint8Array::from(b).into()
}

/// JSON and MessagePack payloads as JavaScript values, binary as a `Uint8Array`.
pub fn payload(p: &Payload) -> JsValue {
    if p.kind() == PayloadKind::Binary {
        return bytes(p.as_bytes());
    }
    let text = String::from_utf8_lossy(&p.to_json()).into_owned();
    js_sys::JSON::parse(&text).unwrap_or_else(|_| JsValue::from_str(&text))
}

/// A request: `url` is a path below the gateway URL unless `absolute`.
pub fn request(r: &Request) -> JsValue {
    let headers = Array::new();
    for (k, v) in &r.headers {
        headers.push(&Array::of2(&k.into(), &v.into()));
    }
    let mut o = Obj(Object::new())
        .set("method", r.method.as_str())
        .set("url", r.path_and_query())
        .set("absolute", matches!(r.target, Target::Url(_)))
        .set("headers", headers);
    if let Some(p) = r.subprotocol {
        o = o.set("subprotocol", p);
    }
    if !r.body.is_empty() {
        o = o.set("body", bytes(&r.body));
    }
    o.done()
}

fn position(o: Obj, p: &Position) -> Obj {
    o.set("epoch", p.epoch.as_str())
        .set("offset", p.offset as f64)
}

pub fn publication(p: &Publication) -> JsValue {
    let mut o = Obj::new("publication")
        .set("topic", p.topic.as_str())
        .set("epoch", p.epoch.as_str())
        .set("offset", p.offset as f64)
        .set("data", payload(&p.data))
        .set("time", p.time_ms as f64);
    if let Some(e) = &p.event {
        o = o.set("event", e.as_str());
    }
    o.done()
}

/// What one subscription sees.
pub fn subscription_event(e: &SubscriptionEvent) -> JsValue {
    match e {
        SubscriptionEvent::Publication(p) => publication(p),
        SubscriptionEvent::Subscribed(p) => position(Obj::new("subscribed"), p).done(),
        SubscriptionEvent::Recovered {
            recovered,
            position: p,
        } => position(Obj::new("recovered"), p)
            .set("recovered", *recovered)
            .done(),
        SubscriptionEvent::Failed { code, message } => Obj::new("failed")
            .set("code", code.as_str())
            .set("message", message.as_str())
            .done(),
        _ => Obj::new("unknown").done(),
    }
}

fn reason(o: Obj, r: &Reason) -> Obj {
    let o = o.set("reason", r.code()).set("message", r.to_string());
    match r.transport() {
        Some(t) => o.set("transport", t.as_str()),
        None => o,
    }
}

/// An engine event no subscription or publish waiter took.
pub fn event(e: &Event) -> JsValue {
    match e {
        Event::State {
            from,
            to,
            reason: r,
        } => reason(
            Obj::new("state")
                .set("from", from.as_str())
                .set("to", to.as_str()),
            r,
        )
        .done(),
        Event::Publication(p) => publication(p),
        Event::Subscribed { topic, position: p } => {
            position(Obj::new("subscribed").set("topic", topic.as_str()), p).done()
        }
        Event::Recovered {
            topic,
            recovered,
            position: p,
        } => position(Obj::new("recovered").set("topic", topic.as_str()), p)
            .set("recovered", *recovered)
            .done(),
        Event::Published {
            msg_id,
            topic,
            position: p,
        } => position(
            Obj::new("published")
                .set("msgId", msg_id.as_str())
                .set("topic", topic.as_str()),
            p,
        )
        .done(),
        Event::PublishFailed {
            msg_id,
            code,
            message,
        } => Obj::new("publish_failed")
            .set("msgId", msg_id.as_str())
            .set("code", code.as_str())
            .set("message", message.as_str())
            .done(),
        Event::SubscribeFailed {
            topic,
            code,
            message,
        } => Obj::new("subscribe_failed")
            .set("topic", topic.as_str())
            .set("code", code.as_str())
            .set("message", message.as_str())
            .done(),
        Event::Error { code, message } => Obj::new("error")
            .set("code", code.as_str())
            .set("message", message.as_str())
            .done(),
        _ => Obj::new("unknown").done(),
    }
}

/// Subscription ids as an array of numbers.
pub fn ids(subs: &[u32]) -> JsValue {
    subs.iter()
        .map(|s| JsValue::from(*s))
        .collect::<Array>()
        .into()
}

/// The topic an event is about, if any.
pub fn topic_of(e: &Event) -> Option<&str> {
    match e {
        Event::Publication(p) => Some(&p.topic),
        Event::Subscribed { topic, .. }
        | Event::Recovered { topic, .. }
        | Event::SubscribeFailed { topic, .. } => Some(topic),
        _ => None,
    }
}
