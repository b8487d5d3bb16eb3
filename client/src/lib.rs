//! The native Rust client: tokio I/O over WebSocket, SSE and long-poll,
//! driven by the sans-IO engine of `livegate_core::client`.
//!
//! ```no_run
//! # async fn demo() -> Result<(), livegate_client::ClientError> {
//! use futures_util::StreamExt;
//! use livegate_client::{ClientBuilder, SubscriptionEvent};
//!
//! let client = ClientBuilder::new("http://127.0.0.1:8080").connect()?;
//! let mut alerts = client.subscribe("alerts").await?;
//! while let Some(event) = alerts.next().await {
//!     if let SubscriptionEvent::Publication(p) = event {
//!         println!("{} {:?}", p.offset, p.data.to_json_value());
//!     }
//! }
//! # Ok(()) }
//! ```
#![forbid(unsafe_code)]

mod driver;
pub mod http;
mod publisher;
pub mod tls;
mod token;
pub mod transport;

pub use publisher::Publisher;
pub use tls::TlsOptions;
pub use token::{TokenFuture, TokenSource};

use std::pin::Pin;
use std::task::{Context, Poll};

use futures_util::Stream;
pub use livegate_core::client::{Ack, SubscriptionEvent};
use livegate_core::client::{Backoff, ClientConfig, Event, State, TransportKind};
use livegate_core::{Encoding, ErrorCode, Payload};
use tokio::sync::{mpsc, oneshot, watch};

use self::http::Endpoint;

/// Milliseconds since the Unix epoch (mixed into the engine's seed).
fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// What went wrong, as the app sees it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The URL is not a gateway URL.
    #[error("bad gateway URL {0}")]
    BadUrl(String),
    /// A network error.
    #[error("I/O error: {0}")]
    Io(String),
    /// The client is closed (by the app, or by the gateway with `reconnect: false`).
    #[error("the client is closed")]
    Closed,
    /// The gateway refused a request.
    #[error("refused by the gateway ({code}): {message}")]
    Refused {
        /// Error code (`docs/protocol.md`).
        code: ErrorCode,
        /// Explanation.
        message: String,
    },
    /// The request was not valid (bad topic name, full offline queue, ...).
    #[error("{0}")]
    Invalid(String),
    /// The TLS settings cannot be used (unreadable CA file, bad pin).
    #[error("TLS: {0}")]
    Tls(String),
    /// No tokio runtime to run on.
    #[error("the client needs a tokio runtime: call connect() inside one")]
    NoRuntime,
}

impl ClientError {
    /// Its code in the one vocabulary of `livegate_core::ErrorCode` (what
    /// bindings hand to their languages).
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::BadUrl(_) => ErrorCode::BadUrl,
            Self::Io(_) => ErrorCode::Io,
            Self::Closed => ErrorCode::Closed,
            Self::Refused { code, .. } => *code,
            Self::Tls(_) => ErrorCode::Tls,
            Self::Invalid(_) | Self::NoRuntime => ErrorCode::Invalid,
        }
    }
}

/// A change of connection state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateChange {
    /// Old state.
    pub from: State,
    /// New state.
    pub to: State,
    /// Why, as a code and a sentence.
    pub code: String,
    /// Why, in words.
    pub message: String,
    /// The transport the change is about (the one opened, lost or failed).
    pub transport: Option<TransportKind>,
}

/// Builds a [`Client`].
#[derive(Debug, Clone)]
pub struct ClientBuilder {
    url: String,
    config: ClientConfig,
    topics: Vec<String>,
    wt: transport::WtOptions,
    tls: TlsOptions,
    token_source: Option<TokenSource>,
}

impl ClientBuilder {
    /// A client of the gateway at `url`: `http://host:port`, or
    /// `https://host[:port]` for a gateway behind TLS (`ws://`, `wss://`
    /// work too); a path is the gateway's prefix.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            config: ClientConfig::default(),
            topics: Vec::new(),
            wt: transport::WtOptions::default(),
            tls: TlsOptions::default(),
            token_source: None,
        }
    }

    /// Accept any WebTransport certificate (development only; by default the
    /// certificate must match the SHA-256 served at `/wt/cert-hash`).
    pub fn webtransport_insecure(mut self, insecure: bool) -> Self {
        self.wt.insecure = insecure;
        self
    }

    /// Pin this WebTransport certificate SHA-256 (64 hex characters) rather
    /// than trusting the one the gateway serves at `/wt/cert-hash`.
    pub fn webtransport_cert_hash(mut self, sha256_hex: impl Into<String>) -> Self {
        self.wt.cert_hash = Some(sha256_hex.into());
        self
    }

    /// Trust the CAs of this PEM file too, besides the system's roots, for
    /// `https://` gateways.
    pub fn tls_ca_file(mut self, path: impl Into<std::path::PathBuf>) -> Self {
        self.tls.ca_file = Some(path.into());
        self
    }

    /// Accept exactly the `https://` gateway certificate with this SHA-256
    /// (64 hex characters, `:` separators allowed), whoever issued it.
    pub fn tls_pin_sha256(mut self, sha256_hex: &str) -> Result<Self, ClientError> {
        self.tls.pin_sha256 = Some(tls::parse_sha256_hex(sha256_hex).ok_or_else(|| {
            ClientError::Tls(format!(
                "bad certificate SHA-256 {sha256_hex:?}: expected 64 hex characters"
            ))
        })?);
        Ok(self)
    }

    /// All TLS settings at once.
    pub fn tls(mut self, options: TlsOptions) -> Self {
        self.tls = options;
        self
    }

    /// Transports to use, best first (default: WebTransport, WebSocket, SSE,
    /// long-poll).
    pub fn transports(mut self, transports: impl IntoIterator<Item = TransportKind>) -> Self {
        self.config.transports = transports.into_iter().collect();
        self
    }

    /// Frame encoding on WebSocket (default MessagePack).
    pub fn encoding(mut self, encoding: Encoding) -> Self {
        self.config.encoding = encoding;
        self
    }

    /// A token sent as `Authorization: Bearer` on every connection.
    pub fn token(mut self, token: impl Into<String>) -> Self {
        self.config.token = Some(token.into());
        self
    }

    /// Where fresh connection tokens come from: called before the first
    /// connection, again when a token's life is four fifths gone (its JWT
    /// `exp`; the new one replaces it in place with a `refresh` frame on
    /// WebSocket and WebTransport) and when the gateway ends a connection
    /// with `token_expired` (the reconnection carries the new one). An
    /// `Err` is reported as the status error `unauthorized`; the client
    /// keeps the token it has.
    pub fn token_source<F, Fut>(mut self, source: F) -> Self
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: std::future::Future<Output = Result<String, String>> + Send + 'static,
    {
        self.token_source = Some(TokenSource::new(source));
        self
    }

    /// The gateway's API key, for publishes that go over HTTP (SSE, long-poll).
    pub fn api_key(mut self, key: impl Into<String>) -> Self {
        self.config.api_key = Some(key.into());
        self
    }

    /// Reconnect backoff bounds (default 500 ms to 20 s).
    pub fn backoff(mut self, min: std::time::Duration, max: std::time::Duration) -> Self {
        self.config.backoff = Backoff {
            min_ms: min.as_millis() as u64,
            max_ms: max.as_millis() as u64,
        };
        self
    }

    /// Topics subscribed from the very first connection (one-way transports
    /// then open once, with all of them). Their events reach the streams of
    /// [`Client::events`] and of any later [`Client::subscribe`] to them.
    pub fn topics(mut self, topics: impl IntoIterator<Item = impl Into<String>>) -> Self {
        self.topics.extend(topics.into_iter().map(Into::into));
        self
    }

    /// Any other engine setting.
    pub fn configure(mut self, f: impl FnOnce(&mut ClientConfig)) -> Self {
        f(&mut self.config);
        self
    }

    /// Starts the client on the current tokio runtime; it connects, and
    /// reconnects, on its own.
    pub fn connect(self) -> Result<Client, ClientError> {
        self.start(Vec::new())
    }

    /// Like [`ClientBuilder::connect`], with a stream of every engine event
    /// from the very first one (the first state change included).
    pub fn connect_with_events(self) -> Result<(Client, EventStream), ClientError> {
        let (tx, rx) = mpsc::unbounded_channel();
        let listener = Listener {
            tx,
            publications: true,
        };
        Ok((self.start(vec![listener])?, EventStream { rx }))
    }

    fn start(self, listeners: Vec<Listener>) -> Result<Client, ClientError> {
        let endpoint = Endpoint::new(&self.url, &self.tls)?;
        if self.config.transports.is_empty() {
            return Err(ClientError::Invalid("no transport to use".into()));
        }
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| ClientError::NoRuntime)?;
        let (cmd_tx, cmd_rx) = mpsc::unbounded_channel();
        let (state_tx, state_rx) = watch::channel(Status {
            state: State::Disconnected,
            change: None,
            error: None,
        });
        let seed = {
            let mut b = [0u8; 8];
            let _ = getrandom::fill(&mut b);
            u64::from_le_bytes(b) ^ now_ms()
        };
        let mut engine = livegate_core::client::Client::new(self.config, seed);
        for t in &self.topics {
            engine
                .subscribe(0, t)
                .map_err(|e| ClientError::Invalid(e.to_string()))?;
        }
        let driver = driver::Driver::new(engine, endpoint, state_tx, listeners, self.wt)
            .pinned(&self.topics)
            .with_token_source(self.token_source);
        runtime.spawn(driver.run(cmd_rx));
        Ok(Client {
            commands: cmd_tx,
            state: state_rx,
        })
    }
}

pub(crate) enum Command {
    /// Without a reply channel, a refusal reaches the stream as `Failed`.
    Subscribe(
        String,
        mpsc::UnboundedSender<SubscriptionEvent>,
        Option<oneshot::Sender<Result<(), ClientError>>>,
    ),
    /// A [`Subscription`] was dropped: unsubscribe when it was the topic's last.
    Release(String),
    Publish {
        topic: String,
        event: Option<String>,
        data: Payload,
        reply: oneshot::Sender<Result<Ack, ClientError>>,
    },
    Events(Listener),
    Close(oneshot::Sender<()>),
}

/// Where engine events go besides subscriptions.
pub(crate) struct Listener {
    pub(crate) tx: mpsc::UnboundedSender<Event>,
    /// Whether it wants every publication too (status listeners do not).
    pub(crate) publications: bool,
}

/// The state and why it was entered.
#[derive(Debug, Clone)]
pub(crate) struct Status {
    pub(crate) state: State,
    pub(crate) change: Option<StateChange>,
    /// The last error event (`code`, `message`), such as a transport that
    /// failed to open.
    pub(crate) error: Option<(ErrorCode, String)>,
}

/// A handle on a running client; clones share the connection.
#[derive(Clone, Debug)]
pub struct Client {
    commands: mpsc::UnboundedSender<Command>,
    state: watch::Receiver<Status>,
}

impl Client {
    /// Subscribes; the stream yields the topic's publications, exactly once
    /// and in order across reconnects, and its status events.
    pub async fn subscribe(&self, topic: &str) -> Result<Subscription, ClientError> {
        let (tx, rx) = mpsc::unbounded_channel();
        let (reply, answer) = oneshot::channel();
        self.commands
            .send(Command::Subscribe(topic.to_owned(), tx, Some(reply)))
            .map_err(|_| ClientError::Closed)?;
        let subscription = Subscription::new(topic, rx, self.commands.clone());
        answer.await.map_err(|_| ClientError::Closed)??;
        Ok(subscription)
    }

    /// Subscribes without waiting (for callers that cannot await, such as
    /// bindings): a bad topic name or a closed client is an error now; any
    /// later refusal arrives on the stream as [`SubscriptionEvent::Failed`].
    pub fn subscribe_now(&self, topic: &str) -> Result<Subscription, ClientError> {
        livegate_core::topic::validate_topic(topic)
            .map_err(|e| ClientError::Invalid(e.to_string()))?;
        let (tx, rx) = mpsc::unbounded_channel();
        self.commands
            .send(Command::Subscribe(topic.to_owned(), tx, None))
            .map_err(|_| ClientError::Closed)?;
        Ok(Subscription::new(topic, rx, self.commands.clone()))
    }

    /// Publishes and waits for the gateway's ack. While disconnected the
    /// publish waits in the offline queue; retries are delivered once.
    /// The publish is queued when this is called, so publishes keep the
    /// order of the calls even if their futures are awaited in another.
    pub fn publish(
        &self,
        topic: &str,
        data: Payload,
    ) -> impl std::future::Future<Output = Result<Ack, ClientError>> + Send + 'static {
        self.publish_event(topic, None, data)
    }

    /// Publishes with an event name (see [`Client::publish`]).
    pub fn publish_event(
        &self,
        topic: &str,
        event: Option<String>,
        data: Payload,
    ) -> impl std::future::Future<Output = Result<Ack, ClientError>> + Send + 'static {
        let (reply, answer) = oneshot::channel();
        let sent = self.commands.send(Command::Publish {
            topic: topic.to_owned(),
            event,
            data,
            reply,
        });
        async move {
            sent.map_err(|_| ClientError::Closed)?;
            answer.await.map_err(|_| ClientError::Closed)?
        }
    }

    /// Every engine event from now on (state changes, publications of all
    /// topics, errors), for logging and tools such as `livegate sub`.
    pub fn events(&self) -> EventStream {
        self.listen(true)
    }

    /// Every engine event but publications, from now on: state changes,
    /// subscriptions live, recovered or refused, errors.
    pub fn status_events(&self) -> EventStream {
        self.listen(false)
    }

    fn listen(&self, publications: bool) -> EventStream {
        let (tx, rx) = mpsc::unbounded_channel();
        let _ = self
            .commands
            .send(Command::Events(Listener { tx, publications }));
        EventStream { rx }
    }

    /// The current state.
    pub fn state(&self) -> State {
        self.state.borrow().state
    }

    /// The last state change, with its reason (why the client is not
    /// connected, say); `None` before the first.
    pub fn last_state_change(&self) -> Option<StateChange> {
        self.state.borrow().change.clone()
    }

    /// The transport of the live connection, when connected.
    pub fn transport(&self) -> Option<TransportKind> {
        // Connected is entered by opening a transport, which the change names.
        let status = self.state.borrow();
        match (&status.state, &status.change) {
            (State::Connected, Some(change)) => change.transport,
            _ => None,
        }
    }

    /// The last error the engine reported, as `(code, message)`: a transport
    /// that failed to open, a frame it could not accept.
    pub fn last_error(&self) -> Option<(ErrorCode, String)> {
        self.state.borrow().error.clone()
    }

    /// State changes from now on, with their reasons.
    pub fn state_changes(&self) -> impl Stream<Item = StateChange> + Send + 'static {
        use futures_util::StreamExt;
        self.status_events().filter_map(|e| {
            std::future::ready(match e {
                Event::State { from, to, reason } => Some(StateChange {
                    from,
                    to,
                    code: reason.code().to_owned(),
                    message: reason.to_string(),
                    transport: reason.transport(),
                }),
                _ => None,
            })
        })
    }

    /// Waits until the client is in `state` (or closed).
    pub async fn wait_for(&self, state: State) -> State {
        let mut rx = self.state.clone();
        let r = rx
            .wait_for(|s| s.state == state || s.state == State::Closed)
            .await
            .map(|s| s.state);
        r.unwrap_or(State::Closed)
    }

    /// Closes the connection and stops reconnecting.
    pub async fn close(&self) {
        let (tx, rx) = oneshot::channel();
        if self.commands.send(Command::Close(tx)).is_ok() {
            let _ = rx.await;
        }
    }
}

/// A subscription's events. Dropping it unsubscribes the topic once no other
/// subscription of this client needs it.
#[derive(Debug)]
pub struct Subscription {
    topic: String,
    rx: mpsc::UnboundedReceiver<SubscriptionEvent>,
    commands: mpsc::UnboundedSender<Command>,
}

impl Subscription {
    fn new(
        topic: &str,
        rx: mpsc::UnboundedReceiver<SubscriptionEvent>,
        commands: mpsc::UnboundedSender<Command>,
    ) -> Self {
        Self {
            topic: topic.to_owned(),
            rx,
            commands,
        }
    }

    /// The topic.
    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// The next event if one is waiting, without waiting: `Ok(None)` when
    /// none is, `Err(Closed)` once the stream has ended.
    pub fn try_next(&mut self) -> Result<Option<SubscriptionEvent>, ClientError> {
        match self.rx.try_recv() {
            Ok(e) => Ok(Some(e)),
            Err(mpsc::error::TryRecvError::Empty) => Ok(None),
            Err(mpsc::error::TryRecvError::Disconnected) => Err(ClientError::Closed),
        }
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.rx.close();
        let _ = self
            .commands
            .send(Command::Release(std::mem::take(&mut self.topic)));
    }
}

impl Stream for Subscription {
    type Item = SubscriptionEvent;
    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.rx.poll_recv(cx)
    }
}

/// All engine events.
#[derive(Debug)]
pub struct EventStream {
    rx: mpsc::UnboundedReceiver<Event>,
}

impl Stream for EventStream {
    type Item = Event;
    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.rx.poll_recv(cx)
    }
}
