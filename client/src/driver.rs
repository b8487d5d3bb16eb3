//! The task that runs the engine: it feeds it commands, transport reports and
//! time, and carries out its actions.

use std::collections::HashMap;
use std::time::Duration;

use livegate_core::client::{
    Action, Client as Engine, Event, HttpPublishError, State, TransportKind,
};
use livegate_core::protocol::Position;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::http::Endpoint;
use super::publisher::{publish_once, HTTP_PUBLISH_TIMEOUT};
use super::transport::{self, Io, Open};
use super::{Ack, ClientError, Command, Listener, StateChange, Status, SubscriptionEvent};

struct Conn {
    outgoing: Option<mpsc::UnboundedSender<Vec<u8>>>,
    task: JoinHandle<()>,
}

pub(super) struct Driver {
    engine: Engine,
    endpoint: Endpoint,
    token: Option<String>,
    api_key: Option<String>,
    state: watch::Sender<Status>,
    start: Instant,
    conns: HashMap<u64, Conn>,
    subscribers: HashMap<String, Vec<mpsc::UnboundedSender<SubscriptionEvent>>>,
    listeners: Vec<Listener>,
    publishes: HashMap<String, oneshot::Sender<Result<Ack, ClientError>>>,
    io_tx: mpsc::UnboundedSender<Io>,
    io_rx: mpsc::UnboundedReceiver<Io>,
    http_tx: mpsc::UnboundedSender<(String, Result<Position, HttpPublishError>)>,
    http_rx: mpsc::UnboundedReceiver<(String, Result<Position, HttpPublishError>)>,
    closing: Vec<oneshot::Sender<()>>,
    wt: transport::WtOptions,
    pinned: std::collections::HashSet<String>,
}

impl Driver {
    pub(super) fn new(
        engine: Engine,
        endpoint: Endpoint,
        token: Option<String>,
        api_key: Option<String>,
        state: watch::Sender<Status>,
        listeners: Vec<Listener>,
        wt: transport::WtOptions,
    ) -> Self {
        let (io_tx, io_rx) = mpsc::unbounded_channel();
        let (http_tx, http_rx) = mpsc::unbounded_channel();
        Self {
            engine,
            endpoint,
            token,
            api_key,
            state,
            start: Instant::now(),
            conns: HashMap::new(),
            subscribers: HashMap::new(),
            listeners,
            publishes: HashMap::new(),
            io_tx,
            io_rx,
            http_tx,
            http_rx,
            closing: Vec::new(),
            wt,
            pinned: Default::default(),
        }
    }

    /// Topics subscribed at build time: kept when their last subscription goes.
    pub(super) fn pinned(mut self, topics: std::collections::HashSet<String>) -> Self {
        self.pinned = topics;
        self
    }

    fn now(&self) -> u64 {
        self.start.elapsed().as_millis() as u64
    }

    pub(super) async fn run(mut self, mut commands: mpsc::UnboundedReceiver<Command>) {
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
                    }
                }
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
        for (_, reply) in self.publishes.drain() {
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
                    self.subscribers.entry(topic).or_default().push(tx);
                    if let Some(reply) = reply {
                        let _ = reply.send(Ok(()));
                    }
                }
                Err(e) => refuse(tx, reply, command_error(&e)),
            },
            Command::Release(topic) => {
                let Some(list) = self.subscribers.get_mut(&topic) else {
                    return;
                };
                list.retain(|s| !s.is_closed());
                // Topics named at build time stay: their events feed `events()`.
                if list.is_empty() && !self.pinned.contains(&topic) {
                    self.subscribers.remove(&topic);
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
                    self.publishes.insert(msg_id, reply);
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
                transport,
                encoding,
                subscriptions,
                ..
            } => {
                let open = Open {
                    conn,
                    endpoint: self.endpoint.clone(),
                    token: self.token.clone(),
                    subscriptions,
                    io: self.io_tx.clone(),
                    poll_timeout_ms: self.engine.config().poll_timeout_ms,
                };
                let (outgoing, task) = match transport {
                    TransportKind::WebSocket => {
                        let (tx, rx) = mpsc::unbounded_channel();
                        (
                            Some(tx),
                            tokio::spawn(transport::websocket(open, encoding, rx)),
                        )
                    }
                    TransportKind::Sse => (None, tokio::spawn(transport::sse(open))),
                    TransportKind::LongPoll => (None, tokio::spawn(transport::poll(open))),
                    TransportKind::WebTransport => {
                        let (tx, rx) = mpsc::unbounded_channel();
                        let options = self.wt.clone();
                        (
                            Some(tx),
                            tokio::spawn(transport::webtransport(open, encoding, rx, options)),
                        )
                    }
                };
                self.conns.insert(conn, Conn { outgoing, task });
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
                msg_id,
                topic,
                event,
                data,
                ..
            } => {
                let endpoint = self.endpoint.clone();
                let api_key = self.api_key.clone();
                let results = self.http_tx.clone();
                tokio::spawn(async move {
                    let result = publish_once(
                        &endpoint,
                        api_key.as_deref(),
                        &msg_id,
                        &topic,
                        event,
                        &data,
                        HTTP_PUBLISH_TIMEOUT,
                    )
                    .await;
                    let _ = results.send((msg_id, result));
                });
            }
            _ => {}
        }
    }

    fn dispatch(&mut self, event: Event) {
        let publication = matches!(event, Event::Publication(_));
        self.listeners
            .retain(|l| (publication && !l.publications) || l.tx.send(event.clone()).is_ok());
        match event {
            Event::State { from, to, reason } => {
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
            Event::Error { code, message } => {
                self.state
                    .send_modify(|s| s.error = Some((code.as_str().to_owned(), message.clone())));
            }
            Event::Publication(p) => {
                if let Some(list) = self.subscribers.get_mut(&p.topic) {
                    deliver(list, SubscriptionEvent::Publication(p));
                }
            }
            Event::Subscribed { topic, position } => {
                self.send_to_topic(&topic, SubscriptionEvent::Subscribed(position));
            }
            Event::Recovered {
                topic,
                recovered,
                position,
            } => self.send_to_topic(
                &topic,
                SubscriptionEvent::Recovered {
                    recovered,
                    position,
                },
            ),
            Event::SubscribeFailed {
                topic,
                code,
                message,
            } => {
                self.send_to_topic(
                    &topic,
                    SubscriptionEvent::Failed {
                        code: code.as_str().to_owned(),
                        message,
                    },
                );
                self.subscribers.remove(&topic);
            }
            Event::Published {
                msg_id,
                topic,
                position,
            } => {
                if let Some(reply) = self.publishes.remove(&msg_id) {
                    let _ = reply.send(Ok(Ack {
                        msg_id,
                        topic,
                        position,
                    }));
                }
            }
            Event::PublishFailed {
                msg_id,
                code,
                message,
            } => {
                if let Some(reply) = self.publishes.remove(&msg_id) {
                    let _ = reply.send(Err(if code == livegate_core::ErrorCode::Closed {
                        ClientError::Closed
                    } else {
                        ClientError::Refused {
                            code: code.as_str().to_owned(),
                            message,
                        }
                    }));
                }
            }
            _ => {}
        }
    }

    fn send_to_topic(&mut self, topic: &str, event: SubscriptionEvent) {
        if let Some(list) = self.subscribers.get_mut(topic) {
            deliver(list, event);
        }
    }
}

/// Hands `event` to every live subscription of a topic: clones for all but
/// the last, which takes it (usually the only one: no copy per publication).
fn deliver(list: &mut Vec<mpsc::UnboundedSender<SubscriptionEvent>>, event: SubscriptionEvent) {
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
            let (code, message) = match &error {
                ClientError::Closed => ("closed".to_owned(), error.to_string()),
                ClientError::Refused { code, message } => (code.clone(), message.clone()),
                other => ("invalid".to_owned(), other.to_string()),
            };
            let _ = tx.send(SubscriptionEvent::Failed {
                code: code.as_str().to_owned(),
                message,
            });
        }
    }
}

fn command_error(e: &livegate_core::client::CommandError) -> ClientError {
    match e {
        livegate_core::client::CommandError::Closed => ClientError::Closed,
        other => ClientError::Invalid(other.to_string()),
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}
