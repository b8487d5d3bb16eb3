//! Subscribing: the replay read from the broker, then live publications,
//! with no gap and no duplicate, although the read is asynchronous.
//!
//! 1. [`Hub::join`] registers the subscriber as joining, under the topic's
//!    lock: from then on every publication the broker delivers is kept in
//!    its buffer.
//! 2. The caller reads the replay (or just the position) from the broker.
//!    The broker's contract is that a publication is readable before it is
//!    delivered to the hub, so everything delivered before step 1 is in
//!    the read, and everything delivered after it is in the buffer.
//! 3. [`Hub::complete_join`], under the topic's lock again, queues the
//!    `subscribed` answer with the replay, then the buffered publications
//!    the read did not already cover (same epoch and offset at most the
//!    read's position are dropped), and makes the subscriber live. Nothing
//!    can be delivered between the flush and the switch: both happen under
//!    the lock that delivery takes.

use std::sync::Arc;

use livegate_core::protocol::Position;

use super::fanout::Joining;
use super::lock;
use super::queue::{Outbound, Outbox, SubscribedItem};
use super::registry::Hub;
use crate::wire::SharedPub;

/// Why a subscribe was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SubscribeError {
    /// The connection already has this topic.
    AlreadySubscribed,
    /// The connection is closing, or left the topic while joining.
    Closing,
}

/// What the broker said about a joining subscriber's start.
#[derive(Debug)]
pub struct Joined {
    /// Request id of the `subscribe`.
    pub id: Option<u64>,
    /// The topic's position when the replay was read.
    pub position: Position,
    /// Whether `replay` covers everything after the client's position.
    pub recovered: bool,
    /// The replay, oldest first.
    pub replay: Vec<SharedPub>,
}

impl Hub {
    /// Step 1: registers `outbox` as joining `topic`.
    pub fn join(&self, outbox: &Arc<Outbox>, topic: &str) -> Result<(), SubscribeError> {
        let t = self.topic(topic);
        let mut st = lock(&t);
        if st.has(outbox.id) {
            return Err(SubscribeError::AlreadySubscribed);
        }
        st.joining.insert(
            outbox.id,
            Joining {
                outbox: outbox.clone(),
                buffered: Vec::new(),
            },
        );
        Ok(())
    }

    /// Step 3: queues the `subscribed` answer and what was buffered meanwhile,
    /// and makes the subscriber live.
    pub fn complete_join(
        &self,
        outbox: &Outbox,
        topic: &str,
        joined: Joined,
    ) -> Result<(), SubscribeError> {
        let t = self.topic(topic);
        let mut st = lock(&t);
        let Some(joining) = st.joining.remove(&outbox.id) else {
            // Cut as a slow consumer, or disconnected, while the read ran.
            return Err(SubscribeError::Closing);
        };
        let Joined {
            id,
            position,
            recovered,
            replay,
        } = joined;
        let mut delivered = replay.len() as u64;
        let item = Outbound::Subscribed(Box::new(SubscribedItem {
            id,
            topic: st.name.clone(),
            position: position.clone(),
            recovered,
            replay,
        }));
        if !joining.outbox.send(item) {
            return Err(SubscribeError::Closing);
        }
        for p in joining.buffered {
            let covered =
                p.publication.epoch == position.epoch && p.publication.offset <= position.offset;
            if covered {
                continue; // Already in the replay, or before the start.
            }
            if !joining.outbox.send(Outbound::Publication(p)) {
                return Err(SubscribeError::Closing);
            }
            delivered += 1;
        }
        st.live.insert(outbox.id, joining.outbox);
        drop(st);
        self.stats.delivered(delivered);
        Ok(())
    }

    /// Undoes step 1 when the read failed.
    pub fn abort_join(&self, conn_id: u64, topic: &str) {
        self.unsubscribe(conn_id, topic);
    }
}
