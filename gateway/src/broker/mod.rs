//! Brokers own the log: they sequence publications (epoch and offset per
//! topic), deduplicate by `msg_id`, keep the history and serve reads of it,
//! and feed every node's hub with what they sequenced.
//!
//! The contract a broker keeps, which the hub's subscribe handover relies on
//! (`hub::handover`):
//! - for each topic, publications get consecutive offsets under one epoch
//!   (a new epoch when the topic's log restarts);
//! - each is handed to the [`Sink`] (the hub) in offset order per topic,
//!   and only after it is readable through [`Broker::read`] and
//!   [`Broker::position`].
//!
//! The embedded [`MemoryBroker`] does all of it in-process; the
//! [`DiskBroker`], the default of `livegate serve`, does the same over a log
//! on disk that survives restarts. A Redis or NATS broker implements the same trait: the methods are asynchronous
//! so a remote round trip fits, and a remote broker feeds the sink from its
//! own subscription, so publications from other nodes reach local
//! subscribers the same way.

pub mod dedupe;
pub mod disk;
pub mod memory;
pub mod topics;

use std::future::Future;
use std::pin::Pin;

use livegate_core::history::Unrecoverable;
use livegate_core::protocol::Position;
use livegate_core::Payload;

pub use dedupe::DedupeWindow;
pub use disk::{DiskBroker, DiskOptions, FsyncPolicy};
pub use memory::MemoryBroker;

use crate::wire::SharedPub;

/// A boxed future, as the trait's methods return.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Why a broker could not serve a request.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BrokerError {
    /// The broker cannot be reached.
    #[error("broker unavailable: {0}")]
    Unavailable(String),
}

/// Why a read returned no page.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// The position cannot be served: history no longer holds it, another
    /// epoch, or ahead of the topic.
    #[error(transparent)]
    Unrecoverable(#[from] Unrecoverable),
    /// The broker failed.
    #[error(transparent)]
    Broker(#[from] BrokerError),
}

/// One publish, as the service hands it to the broker. Names and `msg_id`
/// are validated; permission checks are done.
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

/// What a publish came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Published {
    /// Epoch and offset of the publication; for a duplicate, those of the
    /// first publication with its `msg_id`.
    pub position: Position,
    /// The `msg_id` was in the topic's window: nothing was published now.
    pub duplicate: bool,
}

/// A page of a topic's log.
#[derive(Debug)]
pub struct Page {
    /// The topic's latest position.
    pub position: Position,
    /// Publications, oldest first.
    pub publications: Vec<SharedPub>,
    /// Whether more follow the last one.
    pub more: bool,
}

/// Where a broker hands what it sequenced: the local hub.
pub trait Sink: Send + Sync + 'static {
    /// Takes one sequenced publication; called in offset order per topic.
    fn deliver(&self, publication: SharedPub);
}

/// Sequences publications and keeps their log.
pub trait Broker: Send + Sync + 'static {
    /// Gives the publication its epoch, offset and time, appends it to the
    /// log and hands it to every node's sink; or, when its `msg_id` is a
    /// duplicate within the topic's window, answers the first publication's
    /// position with `duplicate: true` and delivers nothing.
    fn publish<'a>(
        &'a self,
        request: PublishRequest<'a>,
    ) -> BoxFuture<'a, Result<Published, BrokerError>>;

    /// Up to `limit` publications after `since` (from the oldest kept when
    /// `None`), with the topic's latest position.
    fn read<'a>(
        &'a self,
        topic: &'a str,
        since: Option<&'a Position>,
        limit: usize,
    ) -> BoxFuture<'a, Result<Page, ReadError>>;

    /// The topic's latest position (offset 0 before its first publication).
    fn position<'a>(&'a self, topic: &'a str) -> BoxFuture<'a, Result<Position, BrokerError>>;

    /// A short name for logs and stats (`memory`, `redis`, `nats`).
    fn name(&self) -> &'static str;
}
