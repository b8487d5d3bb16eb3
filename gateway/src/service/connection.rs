//! One subscriber connection as the service sees it: who it is, which
//! topics it has, and its outbound queue. Transports hold one per
//! connection and call it for every client request.

use std::collections::HashSet;
use std::sync::Arc;

use livegate_core::protocol::{Position, ServerFrame};
use livegate_core::Payload;

use super::{validate, Credentials, Identity, Service};
use crate::broker::{Page, Published};
use crate::close::CloseReason;
use crate::error::{ErrorKind, ServiceError};
use crate::hub::Outbox;

/// A subscriber connection; dropping it leaves every topic.
pub struct Connection {
    service: Arc<Service>,
    outbox: Arc<Outbox>,
    identity: Identity,
    topics: HashSet<String>,
    /// Closes the connection with `token_expired` when its token expires.
    expiry: Option<tokio::task::AbortHandle>,
}

/// Closes `outbox` with `token_expired` at `expires_ms`.
fn expire_at(outbox: &Arc<Outbox>, expires_ms: u64) -> tokio::task::AbortHandle {
    let outbox = outbox.clone();
    let wait = std::time::Duration::from_millis(expires_ms.saturating_sub(crate::now_ms()));
    tokio::spawn(async move {
        tokio::time::sleep(wait).await;
        outbox.close(CloseReason::TokenExpired);
    })
    .abort_handle()
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("id", &self.outbox.id)
            .field("identity", &self.identity)
            .field("topics", &self.topics.len())
            .finish()
    }
}

impl Connection {
    pub(super) fn new(service: Arc<Service>, outbox: Arc<Outbox>, identity: Identity) -> Self {
        let expiry = identity.expires_ms.map(|ms| expire_at(&outbox, ms));
        Self {
            service,
            outbox,
            identity,
            topics: HashSet::new(),
            expiry,
        }
    }

    /// Replaces the connection's token (the `refresh` frame): the new one
    /// must be valid and name the same subject; the subscriptions stay.
    /// A refused token leaves the old one in force.
    pub fn refresh(&mut self, token: &str) -> Result<(), ServiceError> {
        if !self.service.checks_tokens() {
            return Err(ServiceError::new(
                ErrorKind::Unsupported,
                "token refresh needs tokens, which this gateway does not configure",
            ));
        }
        let fresh = self
            .service
            .authenticate(&Credentials::connection_with(vec![token]))?;
        if fresh.expires_ms.is_none() {
            return Err(ServiceError::new(
                ErrorKind::Unauthorized,
                "refresh needs a JWT",
            ));
        }
        if self.identity.subject.is_some() && fresh.subject != self.identity.subject {
            return Err(ServiceError::new(
                ErrorKind::Unauthorized,
                format!(
                    "refresh must keep the subject: this connection is {}, the token names {}",
                    self.identity.subject(),
                    fresh.subject()
                ),
            ));
        }
        if let Some(old) = self.expiry.take() {
            old.abort();
        }
        self.expiry = fresh.expires_ms.map(|ms| expire_at(&self.outbox, ms));
        self.identity = fresh;
        Ok(())
    }

    /// The outbound queue.
    pub fn outbox(&self) -> &Arc<Outbox> {
        &self.outbox
    }

    /// Who it is.
    pub fn identity(&self) -> &Identity {
        &self.identity
    }

    /// The service it belongs to.
    pub fn service(&self) -> &Service {
        &self.service
    }

    /// The `connected` frame that opens it.
    pub fn connected_frame(&self) -> ServerFrame {
        self.service.connected_frame(&self.outbox)
    }

    /// Subscribes to `topic`, replaying after `since` (see
    /// [`Service::subscribe`]); the answer goes to the queue.
    pub async fn subscribe(
        &mut self,
        topic: String,
        since: Option<&Position>,
        id: Option<u64>,
    ) -> Result<(), ServiceError> {
        validate::topic(&topic)?;
        if self.topics.contains(&topic) {
            return Err(ServiceError::new(
                ErrorKind::AlreadySubscribed,
                format!("already subscribed to {topic}; unsubscribe first"),
            ));
        }
        let max = self.service.limits.max_subscriptions;
        if self.topics.len() >= max {
            return Err(ServiceError::new(
                ErrorKind::TooManySubscriptions,
                format!("this connection already has {max} subscriptions, the limit"),
            ));
        }
        let live = self
            .service
            .subscribe(&self.identity, &self.outbox, &topic, since, id)
            .await?;
        if live {
            self.topics.insert(topic);
        }
        Ok(())
    }

    /// Leaves `topic`.
    pub fn unsubscribe(&mut self, topic: &str) -> Result<(), ServiceError> {
        validate::topic(topic)?;
        if !self.topics.remove(topic) {
            return Err(ServiceError::new(
                ErrorKind::NotSubscribed,
                format!("not subscribed to {topic}"),
            ));
        }
        self.service.unsubscribe(&self.outbox, topic);
        Ok(())
    }

    /// Publishes as this connection's identity.
    pub async fn publish(
        &self,
        topic: &str,
        event: Option<String>,
        data: Payload,
        msg_id: Option<String>,
    ) -> Result<Published, ServiceError> {
        let permit = self
            .service
            .check_publish(&self.identity, topic, event, msg_id)?;
        self.service.publish(permit, data).await
    }

    /// A page of `topic`'s history.
    pub async fn history(
        &self,
        topic: &str,
        since: Option<&Position>,
        limit: Option<u64>,
    ) -> Result<Page, ServiceError> {
        self.service
            .history(&self.identity, topic, since, limit)
            .await
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        if let Some(expiry) = self.expiry.take() {
            expiry.abort();
        }
        let topics = std::mem::take(&mut self.topics);
        self.service
            .disconnect(&self.outbox, topics.iter().map(String::as_str));
    }
}
