//! The hub: which connections subscribe to which topic, and fan-out.
//!
//! It is fed sequenced publications ([`Hub::deliver`]) by the broker, in
//! offset order per topic, whether they were published on this node or
//! arrived from another; it keeps no log and assigns no offsets. It hands
//! every subscriber's queue the same `Arc` of a publication and never
//! encodes one: bytes are made by [`crate::wire`] when a transport takes
//! the item.
//!
//! - [`registry`]: the topics and the open connections.
//! - [`fanout`]: one topic's subscribers and the delivery to them.
//! - [`handover`]: subscribing with a replay read from the broker, then
//!   live publications, with no gap and no duplicate.
//! - [`queue`]: a connection's bounded outbound queue.

pub mod fanout;
pub mod handover;
pub mod queue;
pub mod registry;

use std::sync::{Mutex, MutexGuard, PoisonError};

/// Kept here for callers outside the server (bench, tests).
pub use crate::token::random_token;
pub use handover::{Joined, SubscribeError};
pub use queue::{Event, HistoryItem, Outbound, Outbox, Receiver, SubscribedItem};
pub use registry::Hub;

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic elsewhere must not take the hub down with it.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}
