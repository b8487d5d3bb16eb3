//! Brokers sequence publications and carry them to every gateway node.
//!
//! The contract a broker keeps: for each topic, publications get consecutive
//! offsets under one epoch, and every node's [`Hub`] sees them in offset
//! order. The embedded [`MemoryBroker`] does both inside the local hub; the
//! Redis and NATS brokers (later) sequence remotely and feed each node's hub
//! from their subscription, so transports never know which broker runs.
//!
//! Deduplication by `msg_id` belongs to whoever sequences: the memory broker
//! leaves it to the hub (under the topic's lock); a remote broker checks the
//! id where it assigns offsets, so a retry that reaches another node is
//! still caught.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use livegate_core::Payload;

use crate::hub::{Hub, Published};

/// A boxed future, as the trait's methods return.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Why a broker could not take a publication.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BrokerError {
    /// The broker cannot be reached.
    #[error("broker unavailable: {0}")]
    Unavailable(String),
}

/// One publish, as transports hand it to the broker. Names and `msg_id` are
/// already validated; permission checks are done.
#[derive(Debug, Clone)]
pub struct PublishRequest<'a> {
    /// The topic.
    pub topic: &'a str,
    /// Optional event name.
    pub event: Option<String>,
    /// The payload.
    pub data: Payload,
    /// Client-generated id: a repeat within the topic's dedupe window is not
    /// published again.
    pub msg_id: Option<String>,
}

impl<'a> PublishRequest<'a> {
    /// A publish without `event` or `msg_id`.
    pub fn new(topic: &'a str, data: Payload) -> Self {
        Self {
            topic,
            event: None,
            data,
            msg_id: None,
        }
    }
}

/// Sequences and distributes publications.
pub trait Broker: Send + Sync + 'static {
    /// Gives the publication its epoch, offset and time, and delivers it to
    /// every node's subscribers; or, when its `msg_id` is a duplicate within
    /// the topic's window, answers the first publication's position with
    /// `duplicate: true` and delivers nothing.
    fn publish<'a>(
        &'a self,
        request: PublishRequest<'a>,
    ) -> BoxFuture<'a, Result<Published, BrokerError>>;

    /// A short name for logs and stats (`memory`, `redis`, `nats`).
    fn name(&self) -> &'static str;
}

/// The embedded single-node broker: the local hub is the whole truth, and
/// history lasts as long as the process.
pub struct MemoryBroker {
    hub: Arc<Hub>,
}

impl MemoryBroker {
    /// A broker over this hub.
    pub fn new(hub: Arc<Hub>) -> Self {
        Self { hub }
    }
}

impl Broker for MemoryBroker {
    fn publish<'a>(
        &'a self,
        request: PublishRequest<'a>,
    ) -> BoxFuture<'a, Result<Published, BrokerError>> {
        let PublishRequest {
            topic,
            event,
            data,
            msg_id,
        } = request;
        let published = self
            .hub
            .publish(topic, event, data, msg_id.as_deref(), crate::now_ms());
        Box::pin(std::future::ready(Ok(published)))
    }

    fn name(&self) -> &'static str {
        "memory"
    }
}
