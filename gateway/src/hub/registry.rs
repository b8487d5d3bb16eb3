//! The hub's registries: topics by name, and every open connection (weakly,
//! for shutdown and counting).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock, Weak};

use super::fanout::Topic;
use super::lock;
use super::queue::{Outbox, Receiver};
use crate::close::CloseReason;
use crate::stats::Stats;
use crate::wire::SharedPub;

/// Topics, their subscribers, and the open connections.
pub struct Hub {
    topics: RwLock<HashMap<Arc<str>, Arc<Mutex<Topic>>>>,
    pub(super) stats: Arc<Stats>,
    connections: Mutex<HashMap<u64, Weak<Outbox>>>,
    next_id: AtomicU64,
}

impl std::fmt::Debug for Hub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hub")
            .field("topics", &self.topic_count())
            .field("connections", &self.connection_count())
            .finish()
    }
}

impl Hub {
    /// An empty hub.
    pub fn new(stats: Arc<Stats>) -> Self {
        Self {
            topics: RwLock::new(HashMap::new()),
            stats,
            connections: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(1),
        }
    }

    /// A new connection's queue of `queue_size` items; the hub keeps a weak
    /// reference for shutdown.
    pub fn connect(&self, queue_size: usize) -> (Arc<Outbox>, Receiver) {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (outbox, rx) = Outbox::new(id, queue_size, self.stats.clone());
        lock(&self.connections).insert(id, Arc::downgrade(&outbox));
        (outbox, rx)
    }

    /// Forgets a connection: its subscriptions on `topics` and its entry.
    pub fn disconnect<'a>(&self, outbox: &Outbox, topics: impl IntoIterator<Item = &'a str>) {
        for t in topics {
            self.unsubscribe(outbox.id, t);
        }
        lock(&self.connections).remove(&outbox.id);
    }

    /// Asks every connection to close with `reason`.
    pub fn close_all(&self, reason: CloseReason) {
        let conns: Vec<Arc<Outbox>> = lock(&self.connections)
            .values()
            .filter_map(Weak::upgrade)
            .collect();
        for c in conns {
            c.close(reason);
        }
    }

    /// Connections still open.
    pub fn connection_count(&self) -> usize {
        lock(&self.connections).len()
    }

    /// Topics that have had a subscriber.
    pub fn topic_count(&self) -> usize {
        self.topics
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    /// The topic, if it has had a subscriber.
    pub(super) fn existing(&self, name: &str) -> Option<Arc<Mutex<Topic>>> {
        self.topics
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(name)
            .cloned()
    }

    /// The topic, made on first use.
    pub(super) fn topic(&self, name: &str) -> Arc<Mutex<Topic>> {
        if let Some(t) = self.existing(name) {
            return t;
        }
        self.topics
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(Arc::from(name))
            .or_insert_with_key(|key| Arc::new(Mutex::new(Topic::new(key.clone()))))
            .clone()
    }

    /// Hands a sequenced publication to the topic's subscribers. The broker
    /// calls this in offset order per topic.
    pub fn deliver(&self, publication: SharedPub) {
        let Some(topic) = self.existing(&publication.publication.topic) else {
            return; // Nobody ever subscribed.
        };
        let delivered = lock(&topic).deliver(&publication);
        self.stats.delivered(delivered);
    }

    /// Removes a subscription; returns whether there was one.
    pub fn unsubscribe(&self, conn_id: u64, topic: &str) -> bool {
        self.existing(topic)
            .is_some_and(|t| lock(&t).remove(conn_id))
    }
}
