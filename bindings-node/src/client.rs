//! The connection-holding client: subscriptions, status events, publishes.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use livegate_client::{Client, ClientBuilder, ClientError, EventStream, Subscription, TlsOptions};
use livegate_core::client::{State, TransportKind};
use livegate_core::{Encoding, ErrorCode, Payload};
use napi::bindgen_prelude::{Buffer, Function, PromiseRaw};
use napi::threadsafe_function::ThreadsafeFunctionCallMode;
use napi::Env;
use napi_derive::napi;

use crate::errors::{error, from_client, invalid, Kind};
use crate::feed::Feed;
use crate::{Ack, Batch};

/// The client's options, checked for type by `index.js`; durations in ms.
#[napi(object)]
pub struct NativeClientOptions {
    /// Short names (`wt`, `ws`, `sse`, `poll`), best first.
    pub transports: Option<Vec<String>>,
    /// `json` or `msgpack`.
    pub encoding: Option<String>,
    pub token: Option<String>,
    pub api_key: Option<String>,
    pub backoff_min: Option<f64>,
    pub backoff_max: Option<f64>,
    pub topics: Option<Vec<String>>,
    pub connect_timeout: Option<f64>,
    pub heartbeat_margin: Option<f64>,
    pub upgrade_probe: Option<f64>,
    pub offline_queue: Option<f64>,
    pub webtransport_insecure: Option<bool>,
    pub webtransport_cert_hash: Option<String>,
    /// A PEM file of CAs to trust besides the system's, for `https://`.
    pub tls_ca_file: Option<String>,
    /// The `https://` gateway certificate's SHA-256 to accept, in hex.
    pub tls_pin_sha256: Option<String>,
}

/// The TLS options of clients and publishers.
pub fn tls_options(ca_file: Option<String>, pin_sha256: Option<&str>) -> napi::Result<TlsOptions> {
    let pin_sha256 = match pin_sha256 {
        Some(hex) => Some(livegate_client::tls::parse_sha256_hex(hex).ok_or_else(|| {
            invalid(format!(
                "tls.pinSha256 must be 64 hex characters, not {hex:?}"
            ))
        })?),
        None => None,
    };
    Ok(TlsOptions {
        ca_file: ca_file.map(Into::into),
        pin_sha256,
    })
}

/// Why the state last changed, or the last error.
#[napi(object)]
pub struct NativeReason {
    pub code: String,
    pub message: String,
}

pub fn parse_encoding(name: &str) -> napi::Result<Encoding> {
    match name {
        "msgpack" => Ok(Encoding::Msgpack),
        "json" => Ok(Encoding::Json),
        other => Err(invalid(format!(
            "encoding must be \"json\" or \"msgpack\", not {other:?}"
        ))),
    }
}

/// A duration option in milliseconds, checked.
fn millis(name: &str, value: f64) -> napi::Result<u64> {
    if !value.is_finite() || value <= 0.0 {
        return Err(invalid(format!(
            "{name} must be a number of milliseconds > 0, not {value}"
        )));
    }
    Ok(value.round() as u64)
}

/// The native client behind `livegate.Client`.
#[napi]
pub struct NativeClient {
    client: Client,
    url: String,
    /// Every event from the very first, for the first `status()`: a feed
    /// registered later could miss the first changes.
    first: std::sync::Mutex<Option<EventStream>>,
    /// A subscription per `topics` option, made with the client, for the
    /// first `subscribe()` of each.
    early: std::sync::Mutex<HashMap<String, Subscription>>,
}

#[napi]
impl NativeClient {
    #[napi(constructor, catch_unwind)]
    pub fn new(url: String, options: NativeClientOptions) -> napi::Result<Self> {
        let encoding = parse_encoding(options.encoding.as_deref().unwrap_or("json"))?;
        let tls = tls_options(options.tls_ca_file, options.tls_pin_sha256.as_deref())?;
        let mut builder = ClientBuilder::new(url.clone()).encoding(encoding).tls(tls);
        if let Some(names) = options.transports {
            let kinds = names
                .iter()
                .map(|name| {
                    TransportKind::parse(name).ok_or_else(|| {
                        invalid(format!(
                            "unknown transport {name:?}: use \"webtransport\" (or \"wt\"), \
                             \"websocket\" (\"ws\"), \"sse\" or \"longpoll\" (\"poll\")"
                        ))
                    })
                })
                .collect::<napi::Result<Vec<_>>>()?;
            if kinds.is_empty() {
                return Err(invalid(
                    "transports is empty: name at least one, or leave it out for all",
                ));
            }
            builder = builder.transports(kinds);
        }
        if let Some(t) = options.token {
            builder = builder.token(t);
        }
        if let Some(k) = options.api_key {
            builder = builder.api_key(k);
        }
        if options.backoff_min.is_some() || options.backoff_max.is_some() {
            let min = millis("backoff.min", options.backoff_min.unwrap_or(500.0))?;
            let max = millis("backoff.max", options.backoff_max.unwrap_or(20_000.0))?;
            if max < min {
                return Err(invalid(format!(
                    "backoff.max ({max} ms) must not be below backoff.min ({min} ms)"
                )));
            }
            builder = builder.backoff(Duration::from_millis(min), Duration::from_millis(max));
        }
        let topics = options.topics.unwrap_or_default();
        for t in &topics {
            livegate_core::topic::validate_topic(t).map_err(|e| invalid(e.to_string()))?;
        }
        // Not the builder's pinned `topics`: a subscription made after the
        // driver started can come after such a topic's `subscribed`, which
        // the driver hands out once. Subscriptions made right away (below)
        // get every event of their topic.
        builder = builder.webtransport_insecure(options.webtransport_insecure.unwrap_or(false));
        if let Some(h) = options.webtransport_cert_hash {
            builder = builder.webtransport_cert_hash(h);
        }
        let settings = [
            ("connectTimeout", options.connect_timeout),
            ("heartbeatMargin", options.heartbeat_margin),
            ("upgradeProbe", options.upgrade_probe),
        ];
        for (name, value) in settings {
            if let Some(v) = value {
                let ms = millis(name, v)?;
                builder = builder.configure(|c| match name {
                    "connectTimeout" => c.connect_timeout_ms = ms,
                    "heartbeatMargin" => c.heartbeat_margin_ms = ms,
                    _ => c.upgrade_probe_ms = ms,
                });
            }
        }
        if let Some(n) = options.offline_queue {
            if !(n.is_finite() && n >= 0.0 && n.fract() == 0.0) {
                return Err(invalid(format!(
                    "offlineQueue must be a whole number >= 0, not {n}"
                )));
            }
            builder = builder.configure(|c| c.offline_queue = n as usize);
        }
        let (client, first) =
            napi::bindgen_prelude::within_runtime_if_available(|| builder.connect_with_events())
                .map_err(from_client)?;
        let mut early = HashMap::new();
        for t in topics {
            let sub = client.subscribe_now(&t).map_err(from_client)?;
            early.insert(t, sub);
        }
        Ok(Self {
            client,
            url,
            first: std::sync::Mutex::new(Some(first)),
            early: std::sync::Mutex::new(early),
        })
    }

    /// `disconnected`, `connecting`, `connected`, `reconnecting` or `closed`.
    #[napi(getter)]
    pub fn state(&self) -> &'static str {
        self.client.state().as_str()
    }

    /// The live connection's transport (`wt`, `ws`, `sse`, `poll`), or null.
    #[napi(getter)]
    pub fn transport(&self) -> Option<&'static str> {
        self.client.transport().map(TransportKind::as_str)
    }

    /// Why the state last changed, or null.
    #[napi(getter)]
    pub fn last_reason(&self) -> Option<NativeReason> {
        self.client.last_state_change().map(|c| NativeReason {
            code: c.code,
            message: c.message,
        })
    }

    /// The last error (a transport that failed to open, ...), or null.
    #[napi(getter)]
    pub fn last_error(&self) -> Option<NativeReason> {
        self.client
            .last_error()
            .map(|(code, message)| NativeReason {
                code: code.as_str().to_owned(),
                message,
            })
    }

    /// Resolves once connected; rejects after `timeout` ms or when the client closes.
    #[napi]
    pub async fn wait_connected(&self, timeout: Option<f64>) -> napi::Result<()> {
        let timeout = timeout.map(|t| millis("timeout", t)).transpose()?;
        connected(
            self.client.clone(),
            self.url.clone(),
            timeout.map(Duration::from_millis),
        )
        .await
    }

    /// Subscribes now; its events are read with `next()`.
    #[napi(catch_unwind)]
    pub fn subscribe(&self, topic: String) -> napi::Result<NativeSubscription> {
        let early = lock(&self.early).remove(&topic);
        let sub = match early {
            Some(sub) => sub,
            None => self.client.subscribe_now(&topic).map_err(from_client)?,
        };
        Ok(NativeSubscription {
            topic,
            feed: Feed::new(sub),
        })
    }

    /// Status events from now on, read with `next()`.
    #[napi]
    pub fn status(&self) -> NativeStatus {
        let first = self.take_first();
        NativeStatus {
            feed: Arc::new(Feed::new(
                first.unwrap_or_else(|| self.client.status_events()),
            )),
        }
    }

    /// Drops what was kept for the first `status()` and `subscribe()`s
    /// (nobody asked in time; they would grow for ever).
    #[napi]
    pub fn drop_unclaimed(&self) {
        drop(self.take_first());
        lock(&self.early).clear();
    }

    /// Queues a publish now (keeping call order); resolves with the ack.
    /// `json` is the payload as JSON text; `bytes` a binary payload.
    #[napi(ts_return_type = "Promise<Ack>", catch_unwind)]
    pub fn publish<'env>(
        &self,
        env: &'env Env,
        topic: String,
        json: Option<String>,
        bytes: Option<Buffer>,
        event: Option<String>,
    ) -> napi::Result<PromiseRaw<'env, Ack>> {
        livegate_core::topic::validate_topic(&topic).map_err(|e| invalid(e.to_string()))?;
        if let Some(e) = &event {
            livegate_core::topic::validate_event(e).map_err(|e| invalid(e.to_string()))?;
        }
        if self.client.state() == State::Closed {
            return Err(from_client(ClientError::Closed));
        }
        let payload = to_payload(json, bytes)?;
        let fut = self.client.publish_event(&topic, event, payload);
        env.spawn_future(async move { fut.await.map(Ack::from).map_err(from_client) })
    }

    /// Closes the connection and stops reconnecting.
    #[napi]
    pub async fn close(&self) -> napi::Result<()> {
        self.client.clone().close().await;
        Ok(())
    }
}

impl NativeClient {
    fn take_first(&self) -> Option<EventStream> {
        lock(&self.first).take()
    }
}

fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// A payload from what `index.js` made of the app's value.
pub fn to_payload(json: Option<String>, bytes: Option<Buffer>) -> napi::Result<Payload> {
    match (json, bytes) {
        (_, Some(b)) => Ok(Payload::binary(b.to_vec())),
        (Some(text), None) => Payload::from_json(text.into_bytes())
            .map_err(|e| error(Kind::Payload, ErrorCode::BadPayload, e.to_string())),
        (None, None) => Err(error(
            Kind::Payload,
            ErrorCode::BadPayload,
            "no data to publish: pass a JSON-compatible value or a Buffer",
        )),
    }
}

async fn connected(client: Client, url: String, timeout: Option<Duration>) -> napi::Result<()> {
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
                "could not connect to {url} within {} ms{why} (the client keeps retrying in the background)",
                timeout.unwrap_or_default().as_millis()
            ),
        )),
    }
}

/// One subscription's events.
#[napi]
pub struct NativeSubscription {
    topic: String,
    feed: Feed<Subscription>,
}

#[napi]
impl NativeSubscription {
    #[napi(getter)]
    pub fn topic(&self) -> String {
        self.topic.clone()
    }

    /// The events that are ready (waits for one), or null once ended.
    #[napi]
    pub async fn next(&self, max: u32) -> napi::Result<Option<Batch>> {
        let topic = self.topic.clone();
        let fut = self
            .feed
            .next(max as usize, move |w, e| w.subscription_event(&topic, e));
        Ok(fut.await)
    }

    /// Unsubscribes (once no other subscription of the client needs the topic).
    #[napi]
    pub fn close(&self) {
        self.feed.close();
    }
}

/// The client's status events.
#[napi]
pub struct NativeStatus {
    feed: Arc<Feed<EventStream>>,
}

/// Status items handed to `listen`'s callback per call, at most.
const STATUS_BATCH: usize = 256;

#[napi]
impl NativeStatus {
    /// Calls `callback` with each batch of status events, then with null
    /// once they end. Unlike a pending `next()` of a subscription, this
    /// does not keep the process alive: watching the state is not a reason
    /// for a program to go on.
    #[napi(ts_args_type = "callback: (batch: Batch | null) => void")]
    pub fn listen(&self, callback: Function<'_, Option<Batch>, ()>) -> napi::Result<()> {
        let tsfn = callback
            .build_threadsafe_function::<Option<Batch>>()
            .callee_handled::<false>()
            .weak::<true>()
            .build()?;
        let feed = Arc::clone(&self.feed);
        napi::bindgen_prelude::within_runtime_if_available(|| {
            tokio::spawn(async move {
                loop {
                    let batch = feed.next(STATUS_BATCH, |w, e| w.status_event(e)).await;
                    let ended = batch.is_none();
                    tsfn.call(batch, ThreadsafeFunctionCallMode::NonBlocking);
                    if ended {
                        break;
                    }
                }
            })
        });
        Ok(())
    }

    #[napi]
    pub fn close(&self) {
        self.feed.close();
    }
}
