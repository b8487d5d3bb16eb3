//! Each topic's log as the embedded brokers keep it in memory: its history
//! and dedupe window under one lock, in a table created on first use. The
//! memory broker is this table alone; the disk broker rebuilds it from its
//! segments at start-up and serves every read from it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock};

use livegate_core::history::History;
use livegate_core::protocol::Position;
use livegate_core::topic::Namespaces;

use super::dedupe::{Dedupe, DedupeWindow};
use super::{Page, ReadError};
use crate::stats::Stats;
use crate::wire::SharedPub;

/// One topic's log.
pub struct TopicLog {
    /// The topic's name, shared with what is published on it.
    pub name: Arc<str>,
    /// Its history.
    pub history: History<SharedPub>,
    /// The history's epoch, shared by the dedupe entries.
    pub epoch: Arc<str>,
    /// Its recent `msg_id`s.
    pub dedupe: Dedupe,
}

impl TopicLog {
    /// The position first published with `msg_id`, if the window still
    /// holds it at `now_ms`.
    pub fn duplicate(
        &mut self,
        window: DedupeWindow,
        msg_id: &str,
        now_ms: u64,
    ) -> Option<Position> {
        self.dedupe.evict(window, now_ms);
        self.dedupe.get(msg_id)
    }

    /// Appends the next publication (its offset must be the history's next)
    /// and remembers its `msg_id`; returns its position.
    pub fn append(
        &mut self,
        publication: SharedPub,
        msg_id: Option<&str>,
        window: DedupeWindow,
    ) -> Position {
        let time_ms = publication.publication.time_ms;
        let size = publication.publication.data.len() as u64;
        let offset = self.history.append_sized(time_ms, publication, size);
        if let Some(id) = msg_id.filter(|_| window.enabled()) {
            if self.duplicate(window, id, time_ms).is_none() {
                self.dedupe
                    .insert(window, id, self.epoch.clone(), offset, time_ms);
            }
        }
        Position {
            epoch: self.epoch.to_string(),
            offset,
        }
    }

    /// Up to `limit` publications after `since` at `now_ms` (see
    /// [`super::Broker::read`]).
    pub fn page(
        &mut self,
        since: Option<&Position>,
        limit: usize,
        now_ms: u64,
    ) -> Result<Page, ReadError> {
        let position = self.history.position();
        let entries = self.history.since(since, now_ms)?;
        let total = entries.len();
        let publications = entries.take(limit).map(|e| e.value.clone()).collect();
        Ok(Page {
            position,
            publications,
            more: total > limit,
        })
    }
}

/// A shared topic log.
pub type SharedLog = Arc<Mutex<TopicLog>>;

/// Locks a topic's log; a panic elsewhere does not make it unusable.
pub fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Every topic's log, created on first use.
pub struct TopicTable {
    topics: RwLock<HashMap<Arc<str>, SharedLog>>,
    namespaces: Namespaces,
    stats: Arc<Stats>,
}

impl TopicTable {
    /// An empty table; topics get their bounds from `namespaces`.
    pub fn new(namespaces: Namespaces, stats: Arc<Stats>) -> Self {
        Self {
            topics: RwLock::new(HashMap::new()),
            namespaces,
            stats,
        }
    }

    /// The topic's log, created empty at offset `latest` under the epoch
    /// `epoch` makes when it does not exist yet.
    pub fn get_or_create(
        &self,
        name: &str,
        latest: u64,
        epoch: impl FnOnce() -> String,
    ) -> SharedLog {
        if let Some(t) = self.get(name) {
            return t;
        }
        let mut topics = self.topics.write().unwrap_or_else(PoisonError::into_inner);
        topics
            .entry(Arc::from(name))
            .or_insert_with_key(|key| {
                self.stats.topic_created();
                Arc::new(Mutex::new(self.fresh(key.clone(), epoch(), latest)))
            })
            .clone()
    }

    /// A log for `name` under `epoch` whose next offset is `latest + 1`.
    pub fn fresh(&self, name: Arc<str>, epoch: String, latest: u64) -> TopicLog {
        let bounds = self.namespaces.bounds_for(&name);
        TopicLog {
            epoch: Arc::from(epoch.as_str()),
            history: History::resume(epoch, latest, bounds),
            name,
            dedupe: Dedupe::default(),
        }
    }

    /// The topic's log, if it exists.
    pub fn get(&self, name: &str) -> Option<SharedLog> {
        self.topics
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(name)
            .cloned()
    }

    /// Every topic's log.
    pub fn all(&self) -> Vec<SharedLog> {
        self.topics
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .values()
            .cloned()
            .collect()
    }
}
