//! The service: every operation a client or backend can ask for (publish,
//! subscribe with replay, unsubscribe, history, stats), with the checks,
//! limits, permissions and error mapping written once. Every transport and
//! the HTTP API call it; it calls the broker (the log) and the hub
//! (subscribers and fan-out).
//!
//! - [`auth`]: who a connection or request is, and what it may do.
//! - [`jwt`], [`grants`]: connection tokens and the topics they grant.
//! - [`validate`]: names, ids, limits.
//! - [`connection`]: one subscriber connection (identity, subscriptions,
//!   outbound queue).

pub mod auth;
pub mod connection;
pub mod grants;
pub mod jwt;
pub mod validate;

use std::sync::Arc;

use livegate_core::history::Unrecoverable;
use livegate_core::protocol::{Position, ServerFrame};
use livegate_core::topic::{is_reserved, Namespaces};
use livegate_core::Payload;

/// What a publish and a history read come to.
pub use crate::broker::{Page, Published};
pub use auth::{ApiKey, Authenticator, Credentials, Identity, Operation, Origin, Role};
pub use connection::Connection;

use crate::broker::{Broker, BrokerError, PublishRequest, ReadError};
use crate::close::CloseReason;
use crate::error::{ErrorKind, ServiceError};
use crate::hub::{Hub, Joined, Outbox, Receiver, SubscribeError};
use crate::stats::{Snapshot, Stats};

/// Limits the service enforces per connection.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Topics one connection may subscribe to.
    pub max_subscriptions: usize,
    /// Items a connection's outbound queue holds before it is cut.
    pub queue_size: usize,
    /// The heartbeat interval announced in `connected`.
    pub heartbeat_ms: u64,
}

/// A publish that passed every check: only [`Service::check_publish`] makes
/// one.
#[derive(Debug)]
pub struct PublishPermit<'a> {
    topic: &'a str,
    event: Option<String>,
    msg_id: Option<String>,
}

/// Publish, subscribe, history and stats over one broker and one hub.
pub struct Service {
    hub: Arc<Hub>,
    broker: Arc<dyn Broker>,
    stats: Arc<Stats>,
    namespaces: Namespaces,
    auth: Arc<dyn Authenticator>,
    limits: Limits,
}

impl std::fmt::Debug for Service {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Service")
            .field("broker", &self.broker.name())
            .field("limits", &self.limits)
            .finish()
    }
}

fn unavailable(e: BrokerError) -> ServiceError {
    ServiceError::new(ErrorKind::Unavailable, e.to_string())
}

/// The message of a `history_unavailable` answer.
pub fn unrecoverable_message(e: &Unrecoverable) -> String {
    format!("cannot serve this history: {e}")
}

impl Service {
    /// A service over these parts.
    pub fn new(
        hub: Arc<Hub>,
        broker: Arc<dyn Broker>,
        stats: Arc<Stats>,
        namespaces: Namespaces,
        auth: Arc<dyn Authenticator>,
        limits: Limits,
    ) -> Self {
        Self {
            hub,
            broker,
            stats,
            namespaces,
            auth,
            limits,
        }
    }

    /// The limits in force.
    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// The namespace options in force.
    pub fn namespaces(&self) -> &Namespaces {
        &self.namespaces
    }

    /// The identity behind `credentials`.
    pub fn authenticate(&self, credentials: &Credentials<'_>) -> Result<Identity, ServiceError> {
        self.auth.authenticate(credentials)
    }

    /// Whether connection tokens are checked.
    pub fn checks_tokens(&self) -> bool {
        self.auth.checks_tokens()
    }

    /// Opens a subscriber connection for `identity`: its state and the
    /// receiving end of its outbound queue.
    pub fn open(self: &Arc<Self>, identity: Identity) -> (Connection, Receiver) {
        let (outbox, rx) = self.hub.connect(self.limits.queue_size);
        (Connection::new(self.clone(), outbox, identity), rx)
    }

    /// 401 `unauthorized` for an identity that may not publish at all,
    /// checked before a request body is even read.
    pub fn may_publish(&self, identity: &Identity) -> Result<(), ServiceError> {
        match identity.role {
            Role::Guest => Err(auth::needs_key()),
            Role::Backend | Role::Client => Ok(()),
        }
    }

    /// Every check of a publish, in one order for every transport: who,
    /// topic, event, `msg_id`, then the topic's rules.
    pub fn check_publish<'a>(
        &self,
        identity: &Identity,
        topic: &'a str,
        event: Option<String>,
        msg_id: Option<String>,
    ) -> Result<PublishPermit<'a>, ServiceError> {
        self.may_publish(identity)?;
        validate::topic(topic)?;
        validate::event(event.as_deref())?;
        validate::msg_id(msg_id.as_deref())?;
        if is_reserved(topic) {
            return Err(ServiceError::new(
                ErrorKind::PublishForbidden,
                format!("{topic} is reserved for the gateway"),
            ));
        }
        if identity.role == Role::Client && !self.namespaces.options_for(topic).client_publish {
            return Err(ServiceError::new(
                ErrorKind::PublishForbidden,
                format!(
                    "clients may not publish on {topic}: its namespace has client_publish = false"
                ),
            ));
        }
        self.auth.authorize(identity, Operation::Publish, topic)?;
        Ok(PublishPermit {
            topic,
            event,
            msg_id,
        })
    }

    /// Publishes through the broker. A duplicate `msg_id` answers the first
    /// publication's position with `duplicate: true`.
    pub async fn publish(
        &self,
        permit: PublishPermit<'_>,
        data: Payload,
    ) -> Result<Published, ServiceError> {
        let request = PublishRequest {
            topic: permit.topic,
            event: permit.event,
            data,
            msg_id: permit.msg_id,
        };
        let published = self.broker.publish(request).await.map_err(unavailable)?;
        if published.duplicate {
            self.stats.duplicate();
        } else {
            self.stats.accepted();
        }
        Ok(published)
    }

    /// Publishes as the gateway itself (the `$sys.*` publisher): reserved
    /// topics allowed, no identity.
    pub async fn publish_as_gateway(
        &self,
        topic: &str,
        data: Payload,
    ) -> Result<Published, ServiceError> {
        let permit = PublishPermit {
            topic,
            event: None,
            msg_id: None,
        };
        self.publish(permit, data).await
    }

    /// Up to `limit` (default 100, at most 1000) publications of `topic`
    /// after `since`, from the oldest kept when `None`.
    pub async fn history(
        &self,
        identity: &Identity,
        topic: &str,
        since: Option<&Position>,
        limit: Option<u64>,
    ) -> Result<Page, ServiceError> {
        validate::topic(topic)?;
        let limit = validate::history_limit(limit)?;
        self.auth.authorize(identity, Operation::History, topic)?;
        self.broker
            .read(topic, since, limit)
            .await
            .map_err(|e| match e {
                ReadError::Unrecoverable(u) => {
                    ServiceError::new(ErrorKind::HistoryUnavailable, unrecoverable_message(&u))
                }
                ReadError::Broker(b) => unavailable(b),
            })
    }

    /// Subscribes `outbox` to `topic` (validated by the caller): queues the
    /// `subscribed` answer with the replay since `since`, then live
    /// publications, with nothing lost or doubled between them (see
    /// `hub::handover`). `Ok(false)` when the connection closed meanwhile.
    pub(crate) async fn subscribe(
        &self,
        identity: &Identity,
        outbox: &Arc<Outbox>,
        topic: &str,
        since: Option<&Position>,
        id: Option<u64>,
    ) -> Result<bool, ServiceError> {
        self.auth.authorize(identity, Operation::Subscribe, topic)?;
        match self.hub.join(outbox, topic) {
            Ok(()) => {}
            Err(SubscribeError::Closing) => return Ok(false),
            Err(SubscribeError::AlreadySubscribed) => {
                return Err(ServiceError::new(
                    ErrorKind::AlreadySubscribed,
                    format!("already subscribed to {topic}; unsubscribe first"),
                ))
            }
        }
        let (position, recovered, replay) = match self.start(topic, since).await {
            Ok(start) => start,
            Err(e) => {
                self.hub.abort_join(outbox.id, topic);
                return Err(e);
            }
        };
        let joined = Joined {
            id,
            position,
            recovered,
            replay,
        };
        Ok(self.hub.complete_join(outbox, topic, joined).is_ok())
    }

    /// Where a subscription starts: the replay after `since` when the log
    /// still holds it (`recovered`), else just the latest position.
    async fn start(
        &self,
        topic: &str,
        since: Option<&Position>,
    ) -> Result<(Position, bool, Vec<crate::wire::SharedPub>), ServiceError> {
        if let Some(since) = since {
            match self.broker.read(topic, Some(since), usize::MAX).await {
                Ok(page) => return Ok((page.position, true, page.publications)),
                Err(ReadError::Unrecoverable(_)) => {}
                Err(ReadError::Broker(e)) => return Err(unavailable(e)),
            }
        }
        let position = self.broker.position(topic).await.map_err(unavailable)?;
        Ok((position, false, Vec::new()))
    }

    /// Leaves `topic`; returns whether the connection had it.
    pub(crate) fn unsubscribe(&self, outbox: &Outbox, topic: &str) -> bool {
        self.hub.unsubscribe(outbox.id, topic)
    }

    /// Forgets a connection and its subscriptions.
    pub(crate) fn disconnect<'a>(
        &self,
        outbox: &Outbox,
        topics: impl IntoIterator<Item = &'a str>,
    ) {
        self.hub.disconnect(outbox, topics);
    }

    /// The gateway's figures.
    pub fn stats(&self) -> Snapshot {
        self.stats.snapshot()
    }

    /// The figures in the Prometheus text format.
    pub fn prometheus(&self) -> String {
        self.stats.prometheus()
    }

    /// Counts a connection of `transport` open until the guard drops.
    pub fn count_connection(
        &self,
        transport: crate::stats::Transport,
    ) -> crate::stats::ConnectionGuard {
        self.stats.connection(transport)
    }

    /// Asks every connection to close (shutdown).
    pub fn close_all(&self, reason: CloseReason) {
        self.hub.close_all(reason);
    }

    /// Connections still open.
    pub fn connection_count(&self) -> usize {
        self.hub.connection_count()
    }

    /// The `connected` frame of a new connection.
    pub(crate) fn connected_frame(&self, outbox: &Outbox) -> ServerFrame {
        ServerFrame::Connected {
            client_id: format!("{}-{}", outbox.id, crate::token::random_token(6)),
            heartbeat_ms: self.limits.heartbeat_ms,
        }
    }
}
