//! The objects handed to Python: publications, acks and status events.

use livegate_client::{Ack as RustAck, SubscriptionEvent};
use livegate_core::client::Event;
use livegate_core::protocol::{Position, Publication as RustPublication};
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyAny, PyString};

use crate::convert::from_payload;

/// One publication of a topic, delivered exactly once and in order.
#[pyclass(frozen, module = "livegate", name = "Publication")]
pub struct Publication {
    /// The topic.
    #[pyo3(get)]
    topic: Py<PyString>,
    /// Its offset in the topic (the first publication is 1).
    #[pyo3(get)]
    offset: u64,
    /// The topic's epoch (changes when the topic's history restarts).
    #[pyo3(get)]
    epoch: Py<PyString>,
    /// The event name, such as `"health_change"`, or None.
    #[pyo3(get)]
    event: Option<Py<PyString>>,
    /// The payload as Python objects (`bytes` for a binary payload).
    #[pyo3(get)]
    data: Py<PyAny>,
    /// When the gateway accepted it, in milliseconds since the Unix epoch.
    #[pyo3(get)]
    time_ms: u64,
}

impl Publication {
    pub fn new(py: Python<'_>, p: &RustPublication) -> PyResult<Self> {
        Self::with_names(py, p, &mut Names::default())
    }

    /// Like `new`, sharing the topic and epoch strings of a batch.
    pub fn with_names(py: Python<'_>, p: &RustPublication, names: &mut Names) -> PyResult<Self> {
        Ok(Self {
            topic: Names::get(py, &mut names.topic, &p.topic),
            offset: p.offset,
            epoch: Names::get(py, &mut names.epoch, &p.epoch),
            event: p.event.as_deref().map(|e| PyString::new(py, e).unbind()),
            data: from_payload(py, &p.data)?.unbind(),
            time_ms: p.time_ms,
        })
    }
}

/// The Python strings of the last topic and epoch seen: a batch of one
/// subscription shares them rather than making two strings per publication.
#[derive(Default)]
pub struct Names {
    topic: Option<(String, Py<PyString>)>,
    epoch: Option<(String, Py<PyString>)>,
}

impl Names {
    fn get(py: Python<'_>, slot: &mut Option<(String, Py<PyString>)>, text: &str) -> Py<PyString> {
        match slot {
            Some((cached, s)) if cached == text => s.clone_ref(py),
            _ => {
                let s = PyString::new(py, text).unbind();
                *slot = Some((text.to_owned(), s.clone_ref(py)));
                s
            }
        }
    }
}

#[pymethods]
impl Publication {
    /// When the gateway accepted it, as an aware UTC `datetime`.
    #[getter]
    fn time<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        static UTC: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
        static DATETIME: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
        let utc = UTC.get_or_try_init(py, || {
            py.import("datetime")?
                .getattr("timezone")?
                .getattr("utc")
                .map(Bound::unbind)
        })?;
        let datetime = DATETIME.get_or_try_init(py, || {
            py.import("datetime")?
                .getattr("datetime")
                .map(Bound::unbind)
        })?;
        datetime.bind(py).call_method1(
            "fromtimestamp",
            (self.time_ms as f64 / 1000.0, utc.bind(py)),
        )
    }

    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        let data = self.data.bind(py).repr()?;
        let event = match &self.event {
            Some(e) => format!(", event={}", e.bind(py).repr()?),
            None => String::new(),
        };
        Ok(format!(
            "Publication(topic={}, offset={}, epoch={}{event}, data={data})",
            self.topic.bind(py).repr()?,
            self.offset,
            self.epoch.bind(py).repr()?,
        ))
    }
}

/// A publish acknowledged by the gateway.
#[pyclass(frozen, get_all, module = "livegate", name = "Ack")]
pub struct Ack {
    /// The topic.
    topic: String,
    /// The topic's epoch.
    epoch: String,
    /// The publication's offset.
    offset: u64,
    /// The client-generated id the gateway deduplicates retries by.
    msg_id: String,
}

impl From<RustAck> for Ack {
    fn from(a: RustAck) -> Self {
        Self {
            topic: a.topic,
            epoch: a.position.epoch,
            offset: a.position.offset,
            msg_id: a.msg_id,
        }
    }
}

#[pymethods]
impl Ack {
    fn __repr__(&self) -> String {
        format!(
            "Ack(topic={}, epoch={}, offset={}, msg_id={})",
            quote(&self.topic),
            quote(&self.epoch),
            self.offset,
            quote(&self.msg_id)
        )
    }
}

/// Something about the connection or a subscription other than a publication.
///
/// `kind` is one of `"state"` (the connection changed state: `state`,
/// `previous`, `code`, `message`, and `transport` when the change is about
/// one: opened, lost, failed), `"subscribed"` (a subscription is live:
/// `topic`, `epoch`, `offset`), `"recovered"` (after a reconnect: `topic`,
/// `recovered`, `epoch`, `offset`; `recovered=False` means publications were
/// lost for good and the app should reload its state), `"subscribe_failed"`
/// (`topic`, `code`, `message`) or `"error"` (`code`, `message`).
#[pyclass(frozen, get_all, module = "livegate", name = "StatusEvent")]
#[derive(Default)]
pub struct StatusEvent {
    kind: &'static str,
    topic: Option<String>,
    transport: Option<&'static str>,
    state: Option<&'static str>,
    previous: Option<&'static str>,
    code: Option<String>,
    message: Option<String>,
    recovered: Option<bool>,
    epoch: Option<String>,
    offset: Option<u64>,
}

impl StatusEvent {
    /// The status event for an engine event, if it is one.
    pub fn from_event(e: &Event) -> Option<Self> {
        Some(match e {
            Event::State { from, to, reason } => Self {
                kind: "state",
                transport: reason.transport().map(|t| t.as_str()),
                state: Some(to.as_str()),
                previous: Some(from.as_str()),
                code: Some(reason.code().to_owned()),
                message: Some(reason.to_string()),
                ..Self::default()
            },
            Event::Subscribed { topic, position } => Self::subscribed(topic, position),
            Event::Recovered {
                topic,
                recovered,
                position,
            } => Self::recovered(topic, *recovered, position),
            Event::SubscribeFailed {
                topic,
                code,
                message,
            } => Self::subscribe_failed(topic, code.as_str(), message),
            Event::Error { code, message } => Self {
                kind: "error",
                code: Some(code.as_str().to_owned()),
                message: Some(message.clone()),
                ..Self::default()
            },
            _ => return None,
        })
    }

    /// The status event for a subscription's own event (publications are not).
    pub fn from_subscription(topic: &str, e: &SubscriptionEvent) -> Option<Self> {
        Some(match e {
            SubscriptionEvent::Subscribed(position) => Self::subscribed(topic, position),
            SubscriptionEvent::Recovered {
                recovered,
                position,
            } => Self::recovered(topic, *recovered, position),
            SubscriptionEvent::Failed { code, message } => {
                Self::subscribe_failed(topic, code.as_str(), message)
            }
            _ => return None,
        })
    }

    fn subscribed(topic: &str, position: &Position) -> Self {
        Self {
            kind: "subscribed",
            topic: Some(topic.to_owned()),
            epoch: Some(position.epoch.clone()),
            offset: Some(position.offset),
            ..Self::default()
        }
    }

    fn recovered(topic: &str, recovered: bool, position: &Position) -> Self {
        Self {
            kind: "recovered",
            recovered: Some(recovered),
            ..Self::subscribed(topic, position)
        }
    }

    fn subscribe_failed(topic: &str, code: &str, message: &str) -> Self {
        Self {
            kind: "subscribe_failed",
            topic: Some(topic.to_owned()),
            code: Some(code.to_owned()),
            message: Some(message.to_owned()),
            ..Self::default()
        }
    }
}

#[pymethods]
impl StatusEvent {
    fn __repr__(&self) -> String {
        let mut parts = vec![format!("kind={}", quote(self.kind))];
        let mut add = |name: &str, v: Option<String>| {
            if let Some(v) = v {
                parts.push(format!("{name}={v}"));
            }
        };
        add("topic", self.topic.as_deref().map(quote));
        add("state", self.state.map(quote));
        add("transport", self.transport.map(quote));
        add("previous", self.previous.map(quote));
        add(
            "recovered",
            self.recovered
                .map(|r| if r { "True" } else { "False" }.into()),
        );
        add("epoch", self.epoch.as_deref().map(quote));
        add("offset", self.offset.map(|o| o.to_string()));
        add("code", self.code.as_deref().map(quote));
        add("message", self.message.as_deref().map(quote));
        format!("StatusEvent({})", parts.join(", "))
    }
}

/// A string as Python's `repr` shows it (single quotes).
fn quote(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('\'');
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\'' => out.push_str("\\'"),
            '\n' => out.push_str("\\n"),
            c if c.is_control() => out.push_str(&format!("\\x{:02x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('\'');
    out
}
