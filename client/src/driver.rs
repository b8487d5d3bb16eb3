//! The task that runs the engine: it feeds it commands, transport reports and
//! time, and carries out its actions.

use std::collections::HashMap;
use std::time::Duration;

use livegate_core::client::{
    Action, Client as Engine, CommandError, Event, HttpPublishError, Open, Routed, Router, State,
};
use livegate_core::protocol::Position;
use livegate_core::ErrorCode;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::http::Endpoint;
use super::publisher::{publish_once, HTTP_PUBLISH_TIMEOUT};
use super::token::{valid_for_ms, TokenSource};
use super::transport::{self, Io, Link};
use super::{Ack, ClientError, Command, Listener, StateChange, Status, SubscriptionEvent};

struct Conn {
    outgoing: Option<mpsc::UnboundedSender<Vec<u8>>>,
    task: JoinHandle<()>,
}

type Subscriber = mpsc::UnboundedSender<SubscriptionEvent>;
type AckWaiter = oneshot::Sender<Result<Ack, ClientError>>;

pub(super) struct Driver {
    engine: Engine,
    endpoint: Endpoint,
    state: watch::Sender<Status>,
    start: Instant,
    conns: HashMap<u64, Conn>,
    router: Router<Subscriber, AckWaiter>,
    listeners: Vec<Listener>,
    io_tx: mpsc::UnboundedSender<Io>,
    io_rx: mpsc::UnboundedReceiver<Io>,
    http_tx: mpsc::UnboundedSender<(String, Result<Position, HttpPublishError>)>,
    http_rx: mpsc::UnboundedReceiver<(String, Result<Position, HttpPublishError>)>,
    closing: Vec<oneshot::Sender<()>>,
    wt: transport::WtOptions,
    token_source: Option<TokenSource>,
    /// A token fetch in flight (one at a time).
    token_fetching: bool,
    token_tx: mpsc::UnboundedSender<Result<String, String>>,
    token_rx: mpsc::UnboundedReceiver<Result<String, String>>,
}

impl Driver {
    pub(super) fn new(
        engine: Engine,
        endpoint: Endpoint,
        state: watch::Sender<Status>,
        listeners: Vec<Listener>,
        wt: transport::WtOptions,
    ) -> Self {
        let (io_tx, io_rx) = mpsc::unbounded_channel();
        let (http_tx, http_rx) = mpsc::unbounded_channel();
        let (token_tx, token_rx) = mpsc::unbounded_channel();
        Self {
            engine,
            endpoint,
            state,
            start: Instant::now(),
            conns: HashMap::new(),
            router: Router::new(),
            listeners,
            io_tx,
            io_rx,
            http_tx,
            http_rx,
            closing: Vec::new(),
            wt,
            token_source: None,
            token_fetching: false,
            token_tx,
            token_rx,
        }
    }

    /// Fetches tokens from `source` (see `ClientBuilder::token_source`).
    pub(super) fn with_token_source(mut self, source: Option<TokenSource>) -> Self {
        self.token_source = source;
        self
    }

    /// Asks the token source for a token, unless a fetch is under way.
    fn fetch_token(&mut self) {
        let Some(source) = self.token_source.clone() else {
            return;
        };
        if self.token_fetching {
            return;
        }
        self.token_fetching = true;
        let tx = self.token_tx.clone();
        tokio::spawn(async move {
            let _ = tx.send(source.fetch().await);
        });
    }

    fn token_fetched(&mut self, result: Result<String, String>) {
        self.token_fetching = false;
        let now = self.now();
        match result {
            Ok(token) => {
                let valid_for = valid_for_ms(&token);
                self.engine.set_token(now, token, valid_for);
            }
            Err(message) => self
                .state
                .send_modify(|s| s.error = Some((ErrorCode::Unauthorized, message))),
        }
    }

    /// Topics subscribed at build time: kept when their last subscription goes.
    pub(super) fn pinned(mut self, topics: &[String]) -> Self {
        for t in topics {
            self.router.pin(t);
        }
        self
    }

    fn now(&self) -> u64 {
        self.start.elapsed().as_millis() as u64
    }

    pub(super) async fn run(mut self, mut commands: mpsc::UnboundedReceiver<Command>) {
        if let Some(source) = self.token_source.clone() {
            // The first connection already needs a token.
            let first = source.fetch().await;
            self.token_fetched(first);
        }
        let now = self.now();
        self.engine.connect(now);
        loop {
            self.drain();
            if self.engine.state() == State::Closed {
                break;
            }
            let deadline = self
                .engine
                .poll_timeout()
                .map(|t| self.start + Duration::from_millis(t));
            tokio::select! {
                cmd = commands.recv() => match cmd {
                    Some(cmd) => self.command(cmd),
                    // Every handle was dropped: nobody can read anything any more.
                    None => { let now = self.now(); self.engine.close(now); }
                },
                Some(io) = self.io_rx.recv() => {
                    let now = self.now();
                    match io {
                        Io::Transport(conn, ev) => self.engine.handle_transport(now, conn, ev),
                        Io::Frame(conn, bytes) => self.engine.handle_frame(now, conn, &bytes),
                        Io::Activity(conn) => self.engine.handle_activity(now, conn),
                        Io::Discovered(conn, status, body) => {
                            self.engine.handle_discovery(now, conn, status, &body);
                        }
                    }
                }
                Some(result) = self.token_rx.recv() => self.token_fetched(result),
                Some((msg_id, result)) = self.http_rx.recv() => {
                    let now = self.now();
                    self.engine.handle_http_publish(now, &msg_id, result);
                }
                _ = sleep_until(deadline) => {
                    let now = self.now();
                    self.engine.handle_timeout(now);
                }
            }
        }
        for (_, c) in self.conns.drain() {
            c.task.abort();
        }
        for reply in self.router.drain_acks() {
            let _ = reply.send(Err(ClientError::Closed));
        }
        for done in self.closing.drain(..) {
            let _ = done.send(());
        }
        // Commands sent after the close get Closed.
        commands.close();
        while let Some(cmd) = commands.recv().await {
            match cmd {
                Command::Subscribe(_, tx, reply) => refuse(tx, reply, ClientError::Closed),
                Command::Publish { reply, .. } => {
                    let _ = reply.send(Err(ClientError::Closed));
                }
                Command::Close(done) => {
                    let _ = done.send(());
                }
                Command::Events(_) | Command::Release(_) => {}
            }
        }
    }

    fn command(&mut self, cmd: Command) {
        let now = self.now();
        match cmd {
            Command::Subscribe(topic, tx, reply) => match self.engine.subscribe(now, &topic) {
                Ok(()) => {
                    self.router.add(&topic, tx);
                    if let Some(reply) = reply {
                        let _ = reply.send(Ok(()));
                    }
                }
                Err(e) => refuse(tx, reply, command_error(&e)),
            },
            Command::Release(topic) => {
                // Topics named at build time stay: their events feed `events()`.
                if self.router.release(&topic, |s| !s.is_closed()) {
                    self.engine.unsubscribe(now, &topic);
                }
            }
            Command::Publish {
                topic,
                event,
                data,
                reply,
            } => match self.engine.publish(now, &topic, event, data) {
                Ok(msg_id) => {
                    self.router.expect_ack(msg_id, reply);
                }
                Err(e) => {
                    let _ = reply.send(Err(command_error(&e)));
                }
            },
            Command::Events(listener) => self.listeners.push(listener),
            Command::Close(done) => {
                self.closing.push(done);
                self.engine.close(now);
            }
        }
    }

    /// Carries out every pending action and hands every event out.
    fn drain(&mut self) {
        while let Some(action) = self.engine.poll_action() {
            self.act(action);
        }
        while let Some(event) = self.engine.poll_event() {
            self.dispatch(event);
        }
    }

    fn act(&mut self, action: Action) {
        match action {
            Action::Connect {
                conn,
                encoding,
                open,
                ..
            } => {
                let link = self.link(conn);
                let (outgoing, task) = match open {
                    Open::WebSocket(request) => {
                        let (tx, rx) = mpsc::unbounded_channel();
                        let task = transport::websocket(link, request, encoding, rx);
                        (Some(tx), tokio::spawn(task))
                    }
                    Open::EventStream(request) => {
                        (None, tokio::spawn(transport::sse(link, request)))
                    }
                    Open::LongPoll(poller) => (None, tokio::spawn(transport::poll(link, poller))),
                    Open::Check(request) => (None, tokio::spawn(transport::check(link, request))),
                    Open::WebTransport { request, cert_hash } => {
                        let (tx, rx) = mpsc::unbounded_channel();
                        let options = self.wt.clone();
                        let task = transport::webtransport(link, request, cert_hash, rx, options);
                        (Some(tx), tokio::spawn(task))
                    }
                    // An opening this driver does not know: the attempt fails.
                    _ => {
                        let _ = self.io_tx.send(Io::Transport(
                            conn,
                            livegate_core::client::TransportEvent::Failed(
                                "this client cannot open that transport".into(),
                            ),
                        ));
                        return;
                    }
                };
                self.conns.insert(conn, Conn { outgoing, task });
            }
            Action::Discover { conn, request } => {
                let task = tokio::spawn(transport::discover(self.link(conn), request));
                self.conns.insert(
                    conn,
                    Conn {
                        outgoing: None,
                        task,
                    },
                );
            }
            Action::Send { conn, bytes } => {
                if let Some(tx) = self.conns.get(&conn).and_then(|c| c.outgoing.as_ref()) {
                    let _ = tx.send(bytes);
                }
            }
            Action::Close { conn } => {
                if let Some(c) = self.conns.remove(&conn) {
                    // Dropping the sender lets a WebSocket close politely; others stop now.
                    if c.outgoing.is_none() {
                        c.task.abort();
                    }
                }
            }
            Action::HttpPublish {
                msg_id, request, ..
            } => {
                let endpoint = self.endpoint.clone();
                let results = self.http_tx.clone();
                tokio::spawn(async move {
                    let result = publish_once(&endpoint, &request, HTTP_PUBLISH_TIMEOUT).await;
                    let _ = results.send((msg_id, result));
                });
            }
            _ => {}
        }
    }

    fn link(&self, conn: u64) -> Link {
        Link {
            conn,
            endpoint: self.endpoint.clone(),
            io: self.io_tx.clone(),
        }
    }

    fn dispatch(&mut self, event: Event) {
        let publication = matches!(event, Event::Publication(_));
        self.listeners
            .retain(|l| (publication && !l.publications) || l.tx.send(event.clone()).is_ok());
        match self.router.route(event) {
            Routed::Topic { subs, event } => deliver(subs, event),
            Routed::Ended { mut subs, event } => deliver(&mut subs, event),
            Routed::Answered { waiter, outcome } => {
                let _ = waiter.send(outcome.map_err(|f| match f.code {
                    ErrorCode::Closed => ClientError::Closed,
                    code => ClientError::Refused {
                        code,
                        message: f.message,
                    },
                }));
            }
            Routed::Other(Event::State { from, to, reason }) => {
                self.state.send_modify(|s| {
                    s.state = to;
                    s.change = Some(StateChange {
                        from,
                        to,
                        code: reason.code().to_owned(),
                        message: reason.to_string(),
                        transport: reason.transport(),
                    });
                });
            }
            Routed::Other(Event::TokenNeeded { .. }) => self.fetch_token(),
            Routed::Other(Event::Error { code, message }) => {
                self.state.send_modify(|s| s.error = Some((code, message)));
            }
            Routed::Other(_) => {}
        }
    }
}

/// Hands `event` to every live subscription of a topic: clones for all but
/// the last, which takes it (usually the only one: no copy per publication).
fn deliver(list: &mut Vec<Subscriber>, event: SubscriptionEvent) {
    list.retain(|s| !s.is_closed());
    if let Some((last, rest)) = list.split_last() {
        for s in rest {
            let _ = s.send(event.clone());
        }
        let _ = last.send(event);
    }
}

/// Answers a refused subscribe on its reply channel, or else on its stream.
fn refuse(
    tx: mpsc::UnboundedSender<SubscriptionEvent>,
    reply: Option<oneshot::Sender<Result<(), ClientError>>>,
    error: ClientError,
) {
    match reply {
        Some(reply) => {
            let _ = reply.send(Err(error));
        }
        None => {
            let message = match &error {
                ClientError::Refused { message, .. } => message.clone(),
                other => other.to_string(),
            };
            let _ = tx.send(SubscriptionEvent::Failed {
                code: error.code(),
                message,
            });
        }
    }
}

fn command_error(e: &CommandError) -> ClientError {
    match e {
        CommandError::Closed => ClientError::Closed,
        other => ClientError::Invalid(other.to_string()),
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}
