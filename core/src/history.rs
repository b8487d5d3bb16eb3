//! The per-topic history log: offsets, epoch, bounded by count and age.
//!
//! The log is generic over what it stores so the gateway can keep each
//! publication together with its encoded frames, and a client can keep bare
//! [`crate::Publication`]s. Time is passed in (milliseconds since the Unix
//! epoch); the log never reads a clock.

use std::collections::VecDeque;

use crate::protocol::Position;

/// Bounds of a history log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bounds {
    /// At most this many entries are kept.
    pub max_len: usize,
    /// Entries older than this are dropped.
    pub max_age_ms: u64,
    /// At most this many payload bytes are kept (0: no byte bound).
    pub max_bytes: u64,
}

/// One kept publication.
#[derive(Debug, Clone)]
pub struct Entry<T> {
    /// Its offset.
    pub offset: u64,
    /// When it was accepted.
    pub time_ms: u64,
    /// Its size as the owner counts it, for the byte bound.
    pub size: u64,
    /// What the owner stores with it.
    pub value: T,
}

/// Why a position cannot be resumed from (`recovered: false`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Unrecoverable {
    /// The position belongs to another epoch: the history restarted.
    #[error("the topic's history restarted (epoch changed)")]
    EpochChanged,
    /// Publications after the position are no longer kept.
    #[error(
        "publications after offset {requested} are no longer kept (oldest kept: {oldest_kept})"
    )]
    Expired {
        /// The position's offset.
        requested: u64,
        /// The oldest offset still kept, or the next one when none is.
        oldest_kept: u64,
    },
    /// The position is ahead of the topic.
    #[error("offset {requested} is ahead of the topic's latest offset {latest}")]
    Ahead {
        /// The position's offset.
        requested: u64,
        /// The topic's latest offset.
        latest: u64,
    },
}

/// A topic's history.
#[derive(Debug, Clone)]
pub struct History<T> {
    epoch: String,
    latest: u64,
    bounds: Bounds,
    entries: VecDeque<Entry<T>>,
    /// Sum of the kept entries' sizes.
    bytes: u64,
}

impl<T> History<T> {
    /// An empty history under a fresh epoch; its first offset will be 1.
    pub fn new(epoch: String, bounds: Bounds) -> Self {
        Self::resume(epoch, 0, bounds)
    }

    /// An empty history under `epoch` whose latest offset is `latest`: a
    /// log reopened after its entries up to `latest` are gone (a position
    /// at or before them is [`Unrecoverable::Expired`], not a new epoch).
    pub fn resume(epoch: String, latest: u64, bounds: Bounds) -> Self {
        Self {
            epoch,
            latest,
            bounds,
            entries: VecDeque::new(),
            bytes: 0,
        }
    }

    /// The current epoch.
    pub fn epoch(&self) -> &str {
        &self.epoch
    }

    /// The latest offset (0 before the first publication).
    pub fn latest(&self) -> u64 {
        self.latest
    }

    /// The current position of the topic.
    pub fn position(&self) -> Position {
        Position {
            epoch: self.epoch.clone(),
            offset: self.latest,
        }
    }

    /// The offset the next publication gets.
    pub fn next_offset(&self) -> u64 {
        self.latest + 1
    }

    /// Number of entries kept.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether no entries are kept.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The oldest offset kept, or the next one when none is.
    pub fn oldest_kept(&self) -> u64 {
        self.entries.front().map_or(self.latest + 1, |e| e.offset)
    }

    /// Sum of the kept entries' sizes.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Appends the next publication and returns its offset.
    pub fn append(&mut self, now_ms: u64, value: T) -> u64 {
        self.append_sized(now_ms, value, 0)
    }

    /// Appends the next publication, `size` bytes large for the byte
    /// bound, and returns its offset.
    pub fn append_sized(&mut self, now_ms: u64, value: T, size: u64) -> u64 {
        self.latest += 1;
        if self.bounds.max_len > 0 {
            self.entries.push_back(Entry {
                offset: self.latest,
                time_ms: now_ms,
                size,
                value,
            });
            self.bytes += size;
        }
        self.trim(now_ms);
        self.latest
    }

    /// Drops what is over the bounds at `now_ms`.
    pub fn trim(&mut self, now_ms: u64) {
        let cutoff = now_ms.saturating_sub(self.bounds.max_age_ms);
        let max_bytes = self.bounds.max_bytes;
        while let Some(front) = self.entries.front() {
            let over = self.entries.len() > self.bounds.max_len
                || front.time_ms < cutoff
                || (max_bytes > 0 && self.bytes > max_bytes);
            if !over {
                break;
            }
            self.bytes -= front.size;
            self.entries.pop_front();
        }
    }

    /// Every entry after `since`, oldest first, or why that cannot be given
    /// whole. `None` means "from the oldest kept".
    pub fn since(
        &mut self,
        since: Option<&Position>,
        now_ms: u64,
    ) -> Result<impl ExactSizeIterator<Item = &Entry<T>> + '_, Unrecoverable> {
        self.trim(now_ms);
        let start = match since {
            None => 0,
            Some(pos) => {
                if pos.epoch != self.epoch {
                    return Err(Unrecoverable::EpochChanged);
                }
                if pos.offset > self.latest {
                    return Err(Unrecoverable::Ahead {
                        requested: pos.offset,
                        latest: self.latest,
                    });
                }
                let oldest_kept = self.oldest_kept();
                if pos.offset + 1 < oldest_kept {
                    return Err(Unrecoverable::Expired {
                        requested: pos.offset,
                        oldest_kept,
                    });
                }
                // Entries hold consecutive offsets, so the index follows.
                (pos.offset + 1 - oldest_kept.min(pos.offset + 1)) as usize
            }
        };
        Ok(self.entries.range(start.min(self.entries.len())..))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hist(max_len: usize, max_age_ms: u64) -> History<u64> {
        History::new(
            "e1".into(),
            Bounds {
                max_len,
                max_age_ms,
                max_bytes: 0,
            },
        )
    }

    fn pos(epoch: &str, offset: u64) -> Position {
        Position {
            epoch: epoch.into(),
            offset,
        }
    }

    fn offsets<'a>(it: impl Iterator<Item = &'a Entry<u64>>) -> Vec<u64> {
        it.map(|e| e.offset).collect()
    }

    #[test]
    fn offsets_start_at_one_and_grow_by_one() {
        let mut h = hist(10, 60_000);
        assert_eq!(h.latest(), 0);
        assert_eq!(h.append(1, 100), 1);
        assert_eq!(h.append(2, 200), 2);
        assert_eq!(h.position(), pos("e1", 2));
    }

    #[test]
    fn replays_exactly_what_was_missed() {
        let mut h = hist(10, 60_000);
        for i in 1..=5 {
            h.append(i, i * 10);
        }
        assert_eq!(
            offsets(h.since(Some(&pos("e1", 2)), 5).unwrap()),
            vec![3, 4, 5]
        );
        assert_eq!(
            offsets(h.since(Some(&pos("e1", 5)), 5).unwrap()),
            Vec::<u64>::new()
        );
        assert_eq!(
            offsets(h.since(Some(&pos("e1", 0)), 5).unwrap()),
            vec![1, 2, 3, 4, 5]
        );
        assert_eq!(offsets(h.since(None, 5).unwrap()), vec![1, 2, 3, 4, 5]);
    }

    #[test]
    fn count_bound_makes_old_positions_unrecoverable() {
        let mut h = hist(3, 60_000);
        for i in 1..=5 {
            h.append(i, i);
        }
        // Kept: 3, 4, 5. From 2 the next needed is 3: fine. From 1, 2 is gone.
        assert_eq!(
            offsets(h.since(Some(&pos("e1", 2)), 5).unwrap()),
            vec![3, 4, 5]
        );
        assert_eq!(
            h.since(Some(&pos("e1", 1)), 5).err(),
            Some(Unrecoverable::Expired {
                requested: 1,
                oldest_kept: 3
            })
        );
    }

    #[test]
    fn age_bound_drops_old_entries() {
        let mut h = hist(100, 1_000);
        h.append(0, 1);
        h.append(500, 2);
        h.append(1_200, 3);
        // At 1_600 the cutoff is 600: offsets 1 and 2 are gone.
        assert_eq!(offsets(h.since(None, 1_600).unwrap()), vec![3]);
        assert!(h.since(Some(&pos("e1", 1)), 1_600).is_err());
        assert_eq!(
            offsets(h.since(Some(&pos("e1", 2)), 1_600).unwrap()),
            vec![3]
        );
        // Everything expired: a client at the latest offset is still recovered.
        assert_eq!(h.since(Some(&pos("e1", 3)), 10_000).unwrap().len(), 0);
        assert!(h.since(Some(&pos("e1", 2)), 10_000).is_err());
    }

    #[test]
    fn other_epoch_or_future_offset_is_unrecoverable() {
        let mut h = hist(10, 60_000);
        h.append(1, 1);
        assert_eq!(
            h.since(Some(&pos("e0", 1)), 1).err(),
            Some(Unrecoverable::EpochChanged)
        );
        assert_eq!(
            h.since(Some(&pos("e1", 7)), 1).err(),
            Some(Unrecoverable::Ahead {
                requested: 7,
                latest: 1
            })
        );
    }

    #[test]
    fn byte_bound_drops_the_oldest_until_under_it() {
        let mut h = History::new(
            "e1".into(),
            Bounds {
                max_len: 100,
                max_age_ms: 60_000,
                max_bytes: 10,
            },
        );
        h.append_sized(1, 1, 4);
        h.append_sized(2, 2, 4);
        assert_eq!(h.bytes(), 8);
        h.append_sized(3, 3, 4); // 12 > 10: offset 1 goes
        assert_eq!((h.oldest_kept(), h.bytes()), (2, 8));
        h.append_sized(4, 4, 20); // alone over the bound: everything goes
        assert_eq!((h.len(), h.bytes(), h.oldest_kept()), (0, 0, 5));
        assert_eq!(h.latest(), 4);
    }

    #[test]
    fn resumed_history_continues_its_offsets_and_expires_older_positions() {
        let mut h: History<u64> = History::resume(
            "e1".into(),
            41,
            Bounds {
                max_len: 10,
                max_age_ms: 60_000,
                max_bytes: 0,
            },
        );
        assert_eq!(h.position(), pos("e1", 41));
        assert_eq!(h.since(Some(&pos("e1", 41)), 1).unwrap().len(), 0);
        assert!(matches!(
            h.since(Some(&pos("e1", 40)), 1).err(),
            Some(Unrecoverable::Expired { .. })
        ));
        assert_eq!(h.append(2, 7), 42);
    }

    #[test]
    fn zero_size_keeps_nothing_but_counts() {
        let mut h = hist(0, 60_000);
        h.append(1, 1);
        h.append(2, 2);
        assert_eq!(h.latest(), 2);
        assert!(h.is_empty());
        assert!(h.since(Some(&pos("e1", 1)), 2).is_err());
        assert_eq!(h.since(Some(&pos("e1", 2)), 2).unwrap().len(), 0);
    }
}
