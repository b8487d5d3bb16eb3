//! The connection-holding client: subscriptions, status events, publishes.

use std::time::Duration;

use livegate_client::{
    Client, ClientBuilder, ClientError, EventStream, Subscription, SubscriptionEvent, TlsOptions,
};
use livegate_core::client::{State, TransportKind};
use livegate_core::{Encoding, ErrorCode};
use pyo3::prelude::*;
use pyo3::types::PyList;

use crate::blocking::{timeout_arg, wait};
use crate::convert::to_payload;
use crate::errors::{error, from_client, Kind};
use crate::feed::Feed;
use crate::types::{Ack, Names, Publication, StatusEvent};
use crate::{runtime, window::Window};

/// The native client behind `livegate.Client` and `livegate.SyncClient`.
#[pyclass(frozen, module = "livegate._livegate")]
pub struct RawClient {
    client: Client,
    encoding: Encoding,
    url: String,
}

/// The `ca_file=` and `pin_sha256=` arguments of clients and publishers.
pub fn tls_options(
    ca_file: Option<std::path::PathBuf>,
    pin_sha256: Option<&str>,
) -> PyResult<TlsOptions> {
    let pin_sha256 = match pin_sha256 {
        Some(hex) => Some(livegate_client::tls::parse_sha256_hex(hex).ok_or_else(|| {
            error(
                Kind::Argument,
                ErrorCode::Invalid,
                format!("pin_sha256 must be 64 hex characters, not {hex:?}"),
            )
        })?),
        None => None,
    };
    Ok(TlsOptions {
        ca_file,
        pin_sha256,
    })
}

pub fn parse_encoding(name: &str) -> PyResult<Encoding> {
    match name {
        "msgpack" => Ok(Encoding::Msgpack),
        "json" => Ok(Encoding::Json),
        other => Err(error(
            Kind::Argument,
            ErrorCode::Invalid,
            format!("encoding must be \"msgpack\" or \"json\", not {other:?}"),
        )),
    }
}

#[pymethods]
impl RawClient {
    #[new]
    #[pyo3(signature = (url, transports, encoding, token, api_key, backoff, topics, webtransport_insecure, webtransport_cert_hash, settings, ca_file=None, pin_sha256=None, token_provider=None))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        url: String,
        transports: Option<Vec<String>>,
        encoding: &str,
        token: Option<String>,
        api_key: Option<String>,
        backoff: Option<(f64, f64)>,
        topics: Vec<String>,
        webtransport_insecure: bool,
        webtransport_cert_hash: Option<String>,
        settings: Vec<(String, f64)>,
        ca_file: Option<std::path::PathBuf>,
        pin_sha256: Option<String>,
        token_provider: Option<Py<PyAny>>,
    ) -> PyResult<Self> {
        let encoding = parse_encoding(encoding)?;
        let mut builder = ClientBuilder::new(url.clone())
            .encoding(encoding)
            .tls(tls_options(ca_file, pin_sha256.as_deref())?);
        if let Some(names) = transports {
            let mut kinds = Vec::with_capacity(names.len());
            for name in &names {
                let long = match name.as_str() {
                    "webtransport" => "wt",
                    "websocket" => "ws",
                    "longpoll" | "long-poll" => "poll",
                    short => short,
                };
                let kind = TransportKind::parse(long).ok_or_else(|| {
                    error(
                        Kind::Argument,
                        ErrorCode::Invalid,
                        format!(
                            "unknown transport {name:?}: use \"webtransport\" (or \"wt\"), \
                             \"websocket\" (\"ws\"), \"sse\" or \"longpoll\" (\"poll\")"
                        ),
                    )
                })?;
                kinds.push(kind);
            }
            if kinds.is_empty() {
                return Err(error(
                    Kind::Argument,
                    ErrorCode::Invalid,
                    "transports is empty: name at least one, or pass None for all",
                ));
            }
            builder = builder.transports(kinds);
        }
        if let Some(t) = token {
            builder = builder.token(t);
        }
        if let Some(k) = api_key {
            builder = builder.api_key(k);
        }
        if let Some(provider) = token_provider {
            builder = builder.token_source(crate::token::source(provider));
        }
        if let Some((min, max)) = backoff {
            if !(min.is_finite() && max.is_finite() && min > 0.0 && max >= min) {
                return Err(error(
                    Kind::Argument,
                    ErrorCode::Invalid,
                    format!(
                        "backoff must be (min_seconds, max_seconds) with 0 < min <= max, not ({min}, {max})"
                    ),
                ));
            }
            builder = builder.backoff(Duration::from_secs_f64(min), Duration::from_secs_f64(max));
        }
        for t in &topics {
            livegate_core::topic::validate_topic(t)
                .map_err(|e| error(Kind::Argument, ErrorCode::Invalid, e.to_string()))?;
        }
        builder = builder
            .topics(topics)
            .webtransport_insecure(webtransport_insecure);
        if let Some(h) = webtransport_cert_hash {
            builder = builder.webtransport_cert_hash(h);
        }
        for (name, value) in settings {
            builder = apply_setting(builder, &name, value)?;
        }
        let _entered = runtime().enter();
        let client = builder.connect().map_err(from_client)?;
        Ok(Self {
            client,
            encoding,
            url,
        })
    }

    /// `"disconnected"`, `"connecting"`, `"connected"`, `"reconnecting"` or `"closed"`.
    #[getter]
    fn state(&self) -> &'static str {
        self.client.state().as_str()
    }

    /// The transport of the live connection (`"wt"`, `"ws"`, `"sse"`,
    /// `"poll"`), or None when not connected.
    #[getter]
    fn transport(&self) -> Option<&'static str> {
        self.client.transport().map(TransportKind::as_str)
    }

    /// Why the state last changed, as `(code, message)`, or None.
    #[getter]
    fn last_reason(&self) -> Option<(String, String)> {
        self.client.last_state_change().map(|c| (c.code, c.message))
    }

    /// The last error, as `(code, message)` (a transport that failed to open...), or None.
    #[getter]
    fn last_error(&self) -> Option<(String, String)> {
        self.client
            .last_error()
            .map(|(code, message)| (code.as_str().to_owned(), message))
    }

    /// Resolves once connected; raises on timeout or when the client closes.
    fn wait_connected<'py>(
        &self,
        py: Python<'py>,
        timeout: Option<f64>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let timeout = timeout_arg(timeout)?;
        let fut = self.connected(timeout);
        pyo3_async_runtimes::tokio::future_into_py(py, fut)
    }

    fn wait_connected_blocking(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<()> {
        let timeout = timeout_arg(timeout)?;
        let fut = self.connected(timeout);
        wait(py, None, fut)?.unwrap_or(Ok(()))
    }

    /// Subscribes now; events are read through the returned feed.
    fn subscribe(&self, topic: &str, with_status: bool) -> PyResult<RawSubscription> {
        let sub = self.client.subscribe_now(topic).map_err(from_client)?;
        Ok(RawSubscription {
            topic: topic.to_owned(),
            feed: Feed::new(sub),
            with_status,
        })
    }

    /// Keeps the last `size` publications of `topic`, fed in the background.
    fn window(&self, topic: &str, size: usize) -> PyResult<Window> {
        if size == 0 {
            return Err(error(
                Kind::Argument,
                ErrorCode::Invalid,
                "size must be at least 1",
            ));
        }
        let sub = self.client.subscribe_now(topic).map_err(from_client)?;
        Ok(Window::start(sub, size))
    }

    /// Status events from now on.
    fn status(&self) -> RawStatus {
        RawStatus {
            feed: Feed::new(self.client.status_events()),
        }
    }

    /// Queues a publish now (keeping call order) and returns an awaitable ack.
    #[pyo3(signature = (topic, data, event=None))]
    fn publish<'py>(
        &self,
        py: Python<'py>,
        topic: &str,
        data: &Bound<'py, PyAny>,
        event: Option<String>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let fut = self.start_publish(topic, data, event)?;
        pyo3_async_runtimes::tokio::future_into_py(py, async move {
            fut.await.map(Ack::from).map_err(from_client)
        })
    }

    #[pyo3(signature = (topic, data, event=None, timeout=None))]
    fn publish_blocking(
        &self,
        py: Python<'_>,
        topic: &str,
        data: &Bound<'_, PyAny>,
        event: Option<String>,
        timeout: Option<f64>,
    ) -> PyResult<Ack> {
        let timeout = timeout_arg(timeout)?;
        let fut = self.start_publish(topic, data, event)?;
        match wait(py, timeout, fut)? {
            Some(result) => result.map(Ack::from).map_err(from_client),
            None => Err(error(
                Kind::Timeout,
                ErrorCode::Timeout,
                "no ack within the timeout (the publish stays queued and may still land)",
            )),
        }
    }

    /// Closes the connection and stops reconnecting (awaitable).
    fn close<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let client = self.client.clone();
        pyo3_async_runtimes::tokio::future_into_py(py, async move {
            client.close().await;
            Ok(())
        })
    }

    fn close_blocking(&self, py: Python<'_>) -> PyResult<()> {
        let client = self.client.clone();
        wait(py, Some(Duration::from_secs(5)), async move {
            client.close().await
        })?;
        Ok(())
    }

    fn __repr__(&self) -> String {
        format!(
            "Client(url={:?}, state={:?})",
            self.url,
            self.client.state().as_str()
        )
    }
}

/// One engine setting given in seconds (or a count), checked.
fn apply_setting(builder: ClientBuilder, name: &str, value: f64) -> PyResult<ClientBuilder> {
    let bad = |why: &str| {
        error(
            Kind::Argument,
            ErrorCode::Invalid,
            format!("{name} {why}, not {value}"),
        )
    };
    if !value.is_finite() || value < 0.0 {
        return Err(bad("must be a number >= 0"));
    }
    let ms = (value * 1000.0).round() as u64;
    Ok(match name {
        "connect_timeout" | "heartbeat_margin" | "upgrade_probe" | "transport_retry" => {
            if ms == 0 {
                return Err(bad("must be more than 0 seconds"));
            }
            builder.configure(|c| match name {
                "connect_timeout" => c.connect_timeout_ms = ms,
                "heartbeat_margin" => c.heartbeat_margin_ms = ms,
                "upgrade_probe" => c.upgrade_probe_ms = ms,
                _ => c.transport_retry_ms = ms,
            })
        }
        "offline_queue" => {
            if value.fract() != 0.0 {
                return Err(bad("must be a whole number"));
            }
            builder.configure(|c| c.offline_queue = value as usize)
        }
        _ => return Err(bad("is not a client setting")),
    })
}

impl RawClient {
    fn start_publish(
        &self,
        topic: &str,
        data: &Bound<'_, PyAny>,
        event: Option<String>,
    ) -> PyResult<impl std::future::Future<Output = Result<livegate_client::Ack, ClientError>>>
    {
        livegate_core::topic::validate_topic(topic)
            .map_err(|e| error(Kind::Argument, ErrorCode::Invalid, e.to_string()))?;
        if let Some(e) = &event {
            livegate_core::topic::validate_event(e)
                .map_err(|e| error(Kind::Argument, ErrorCode::Invalid, e.to_string()))?;
        }
        if self.client.state() == State::Closed {
            return Err(from_client(ClientError::Closed));
        }
        let payload = to_payload(data, self.encoding)?;
        Ok(self.client.publish_event(topic, event, payload))
    }

    fn connected(
        &self,
        timeout: Option<Duration>,
    ) -> impl std::future::Future<Output = PyResult<()>> + Send + 'static {
        let client = self.client.clone();
        let url = self.url.clone();
        async move {
            let reached = match timeout {
                Some(t) => tokio::time::timeout(t, client.wait_for(State::Connected))
                    .await
                    .ok(),
                None => Some(client.wait_for(State::Connected).await),
            };
            // A failed transport says more than the state change that started the attempt.
            let why = match (client.last_error(), client.last_state_change()) {
                (Some((_, message)), _) => format!(": {message}"),
                (None, Some(change)) => format!(": {}", change.message),
                (None, None) => String::new(),
            };
            match reached {
                Some(State::Connected) => Ok(()),
                Some(_) => Err(error(
                    Kind::Closed,
                    ErrorCode::Closed,
                    format!("the client closed before it connected{why}"),
                )),
                None => Err(error(
                    Kind::Connection,
                    ErrorCode::ConnectTimeout,
                    format!(
                        "could not connect to {url} within {:.1} s{why} (the client keeps retrying in the background)",
                        timeout.unwrap_or_default().as_secs_f64()
                    ),
                )),
            }
        }
    }
}

/// One subscription's feed.
#[pyclass(frozen, module = "livegate._livegate")]
pub struct RawSubscription {
    #[pyo3(get)]
    topic: String,
    feed: Feed<Subscription>,
    with_status: bool,
}

#[pymethods]
impl RawSubscription {
    /// Awaitable: True when items can be drained, False once the
    /// subscription has ended and all was drained.
    fn wait<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        self.feed.wait_async(py)
    }

    /// Blocking wait: True, False (ended) or None (timed out).
    fn wait_blocking(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<Option<bool>> {
        self.feed.wait_blocking(py, timeout)
    }

    /// Up to `max` publications (and status events when asked for) that are
    /// ready; raises ProtocolError when the gateway refused the subscription.
    fn drain<'py>(&self, py: Python<'py>, max: usize) -> PyResult<Bound<'py, PyList>> {
        let out = PyList::empty(py);
        let mut names = Names::default();
        for event in self.feed.drain(max) {
            match &event {
                SubscriptionEvent::Publication(p) => {
                    out.append(Publication::with_names(py, p, &mut names)?)?
                }
                SubscriptionEvent::Failed { code, message } => {
                    if out.len() > 0 {
                        // Deliver what came before the refusal first.
                        self.feed.unread(event);
                        break;
                    }
                    let code = *code;
                    let message = format!("subscribing to {:?} failed: {message}", self.topic);
                    self.feed.close();
                    let kind = if code == ErrorCode::Closed {
                        Kind::Closed
                    } else {
                        Kind::Protocol
                    };
                    return Err(error(kind, code, message));
                }
                other => {
                    if self.with_status {
                        if let Some(s) = StatusEvent::from_subscription(&self.topic, other) {
                            out.append(s)?;
                        }
                    }
                }
            }
        }
        Ok(out)
    }

    /// Unsubscribes (once no other subscription of the client needs the topic).
    fn close(&self) {
        self.feed.close();
    }
}

/// The status events' feed.
#[pyclass(frozen, module = "livegate._livegate")]
pub struct RawStatus {
    feed: Feed<EventStream>,
}

#[pymethods]
impl RawStatus {
    fn wait<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        self.feed.wait_async(py)
    }

    fn wait_blocking(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<Option<bool>> {
        self.feed.wait_blocking(py, timeout)
    }

    fn drain<'py>(&self, py: Python<'py>, max: usize) -> PyResult<Bound<'py, PyList>> {
        let out = PyList::empty(py);
        // status_events() carries no publications, and from_event skips them.
        for event in self.feed.drain(max) {
            if let Some(s) = StatusEvent::from_event(&event) {
                out.append(s)?;
            }
        }
        Ok(out)
    }

    fn close(&self) {
        self.feed.close();
    }
}
