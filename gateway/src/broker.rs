//! Brokers sequence publications and carry them to every gateway node.
//!
//! The contract a broker keeps: for each topic, publications get consecutive
//! offsets under one epoch, and every node's [`Hub`] sees them in offset
//! order. The embedded [`MemoryBroker`] does both inside the local hub; the
//! Redis and NATS brokers (later) sequence remotely and feed each node's hub
//! from their subscription, so transports never know which broker runs.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use livegate_core::Payload;

use crate::hub::{Hub, SharedPub};

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

/// Sequences and distributes publications.
pub trait Broker: Send + Sync + 'static {
    /// Gives the publication its epoch, offset and time, and delivers it to
    /// every node's subscribers. Names are already validated.
    fn publish<'a>(
        &'a self,
        topic: &'a str,
        event: Option<String>,
        data: Payload,
    ) -> BoxFuture<'a, Result<SharedPub, BrokerError>>;

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
        topic: &'a str,
        event: Option<String>,
        data: Payload,
    ) -> BoxFuture<'a, Result<SharedPub, BrokerError>> {
        let published = self.hub.publish(topic, event, data, crate::now_ms());
        Box::pin(std::future::ready(Ok(published)))
    }

    fn name(&self) -> &'static str {
        "memory"
    }
}
