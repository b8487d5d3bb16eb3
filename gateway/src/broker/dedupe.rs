//! Publish deduplication by `msg_id`: each topic remembers its recent ids
//! (bounded by count and age), so a retried publish is answered with its
//! first publication instead of being published again.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use livegate_core::protocol::Position;

/// How long each topic remembers publish `msg_id`s: the newest `max_ids`, for
/// `max_age_ms`. Either bound at 0 turns deduplication off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DedupeWindow {
    /// Ids remembered per topic.
    pub max_ids: usize,
    /// How long an id is remembered, in milliseconds (an id exactly this old
    /// still counts).
    pub max_age_ms: u64,
}

impl Default for DedupeWindow {
    fn default() -> Self {
        Self {
            max_ids: 1000,
            max_age_ms: 300_000,
        }
    }
}

impl DedupeWindow {
    /// Whether ids are remembered at all.
    pub fn enabled(self) -> bool {
        self.max_ids > 0 && self.max_age_ms > 0
    }
}

/// One topic's recent `msg_id`s: a map for lookups and a queue, oldest
/// first, for eviction by count and age. Every id is in both exactly once.
#[derive(Debug, Default)]
pub struct Dedupe {
    seen: HashMap<Arc<str>, (Arc<str>, u64)>,
    order: VecDeque<(Arc<str>, u64)>,
    /// Time of the newest entry: entry times never go backwards, so the
    /// queue stays sorted by time even if the clock does.
    newest_ms: u64,
}

impl Dedupe {
    /// Forgets ids older than the window or beyond its count.
    pub fn evict(&mut self, window: DedupeWindow, now_ms: u64) {
        while let Some((id, at)) = self.order.front() {
            let expired = now_ms.saturating_sub(*at) > window.max_age_ms;
            if !expired && self.order.len() <= window.max_ids {
                break;
            }
            self.seen.remove(id);
            self.order.pop_front();
        }
    }

    /// The position first published with `id`, if it is still remembered.
    pub fn get(&self, id: &str) -> Option<Position> {
        self.seen.get(id).map(|(epoch, offset)| Position {
            epoch: epoch.to_string(),
            offset: *offset,
        })
    }

    /// Remembers `id` (not already remembered) for `epoch`/`offset`.
    pub fn insert(
        &mut self,
        window: DedupeWindow,
        id: &str,
        epoch: Arc<str>,
        offset: u64,
        now_ms: u64,
    ) {
        let id: Arc<str> = Arc::from(id);
        self.newest_ms = self.newest_ms.max(now_ms);
        let previous = self.seen.insert(id.clone(), (epoch, offset));
        debug_assert!(previous.is_none(), "insert only ids not remembered");
        self.order.push_back((id, self.newest_ms));
        self.evict(window, now_ms);
    }

    /// How many ids are remembered.
    pub fn len(&self) -> usize {
        debug_assert_eq!(self.seen.len(), self.order.len());
        self.seen.len()
    }

    /// Whether no id is remembered.
    pub fn is_empty(&self) -> bool {
        self.seen.is_empty()
    }
}
