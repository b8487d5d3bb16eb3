//! A connection's outbound queue ([`Outbox`]) and what it holds
//! ([`Outbound`]): bounded, closed as a slow consumer when it overflows,
//! with one close signal the transport waits on.
//!
//! The queue is a `VecDeque` under a mutex rather than a tokio channel: a
//! channel allocates about 1 KiB per connection up front (cache-padded
//! state and a first block of 32 slots), which an idle connection cannot
//! afford; this queue allocates only while items wait, and gives the buffer
//! back once drained.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use livegate_core::protocol::{Position, ServerFrame};
use livegate_core::Encoding;
use tokio::sync::Notify;

use super::lock;
use crate::close::CloseReason;
use crate::stats::Stats;
use crate::wire::{self, SharedPub};

/// What a connection's queue holds.
#[derive(Debug)]
pub enum Outbound {
    /// A live publication.
    Publication(SharedPub),
    /// The answer to a subscribe, with the publications replayed.
    Subscribed(Box<SubscribedItem>),
    /// The answer to a history request.
    History(Box<HistoryItem>),
    /// Any other frame.
    Frame(Box<ServerFrame>),
}

// Queues hold many items per connection: keep each a pointer wide.
const _: () = assert!(std::mem::size_of::<Outbound>() <= 16);

/// A `subscribed` answer and the publications it replays.
#[derive(Debug)]
pub struct SubscribedItem {
    /// Request id.
    pub id: Option<u64>,
    /// The topic's position when the subscription started.
    pub position: Position,
    /// The topic.
    pub topic: Arc<str>,
    /// Whether the replay is complete.
    pub recovered: bool,
    /// Missed publications, oldest first.
    pub replay: Vec<SharedPub>,
}

impl SubscribedItem {
    /// The `subscribed` frame in `encoding` holding `replay`'s frames (all,
    /// or none for transports that send each publication as its own event).
    pub fn encode(&self, encoding: Encoding, with_replay: bool) -> Bytes {
        let replay = if with_replay { &self.replay[..] } else { &[] };
        wire::subscribed_frame(
            encoding,
            self.id,
            &self.topic,
            &self.position,
            self.recovered,
            replay,
        )
    }
}

/// A `history` answer.
#[derive(Debug)]
pub struct HistoryItem {
    /// Request id.
    pub id: Option<u64>,
    /// The topic.
    pub topic: Arc<str>,
    /// The topic's position.
    pub position: Position,
    /// Publications, oldest first.
    pub publications: Vec<SharedPub>,
    /// Whether more follow.
    pub more: bool,
}

impl HistoryItem {
    /// The `history` frame in `encoding`.
    pub fn encode(&self, encoding: Encoding) -> Bytes {
        wire::history_frame(
            encoding,
            self.id,
            &self.topic,
            &self.position,
            &self.publications,
            self.more,
        )
    }
}

impl Outbound {
    /// Any frame.
    pub fn frame(frame: ServerFrame) -> Self {
        Self::Frame(Box::new(frame))
    }

    /// The bytes of this item in `encoding`; publications reuse shared bytes.
    pub fn encode(&self, encoding: Encoding) -> Bytes {
        match self {
            Self::Publication(p) => p.frame(encoding).clone(),
            Self::Subscribed(s) => s.encode(encoding, true),
            Self::History(h) => h.encode(encoding),
            Self::Frame(f) => wire::server_frame(encoding, f),
        }
    }
}

/// One connection's outbound queue as the hub sees it: bounded, with a
/// close signal. Transports own the receiving end ([`Receiver`]) and the
/// socket.
#[derive(Debug)]
pub struct Outbox {
    /// Hub-wide id.
    pub id: u64,
    queue: Mutex<Queue>,
    capacity: usize,
    /// Wakes the receiver when the queue stops being empty.
    ready: Notify,
    stats: Arc<Stats>,
    close_reason: AtomicU8,
    close_signal: Notify,
}

#[derive(Debug)]
struct Queue {
    items: VecDeque<Outbound>,
    /// False once the receiver is gone: nothing more is queued.
    open: bool,
}

/// A drained queue keeps at most this many slots; a bigger buffer (left by a
/// burst) is freed, so a connection's memory follows its current backlog.
const KEEP_SLOTS: usize = 64;

impl Queue {
    fn release_if_drained(&mut self, keep: usize) {
        if self.items.is_empty() && self.items.capacity() > keep {
            self.items = VecDeque::new();
        }
    }
}

impl Outbox {
    /// An open queue of `capacity` items and its receiving end.
    pub(crate) fn new(id: u64, capacity: usize, stats: Arc<Stats>) -> (Arc<Self>, Receiver) {
        let outbox = Arc::new(Self {
            id,
            queue: Mutex::new(Queue {
                items: VecDeque::new(),
                open: true,
            }),
            capacity,
            ready: Notify::new(),
            stats,
            close_reason: AtomicU8::new(0),
            close_signal: Notify::new(),
        });
        (outbox.clone(), Receiver { outbox })
    }

    /// How many items the queue holds at most.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Queues an item. Returns false when the connection is closing or its
    /// queue is full, in which case it is closed as a slow consumer.
    pub fn send(&self, item: Outbound) -> bool {
        let mut q = lock(&self.queue);
        if !q.open {
            return false;
        }
        if q.items.len() >= self.capacity {
            drop(q);
            self.cut_slow();
            return false;
        }
        q.items.push_back(item);
        // The receiver drains the queue before it waits, so only the first
        // item after it went empty needs to wake it.
        let wake = q.items.len() == 1;
        drop(q);
        if wake {
            self.ready.notify_one();
        }
        true
    }

    /// Closes the connection as a slow consumer (counted once).
    pub(crate) fn cut_slow(&self) {
        if self.close(CloseReason::SlowConsumer) {
            self.stats.slow_consumer();
            tracing::debug!(conn = self.id, "slow consumer cut");
        }
    }

    /// Asks the transport to close the connection. The first reason wins;
    /// returns whether this call's did.
    pub fn close(&self, reason: CloseReason) -> bool {
        let won = self
            .close_reason
            .compare_exchange(0, reason as u8, Ordering::AcqRel, Ordering::Acquire)
            .is_ok();
        if won {
            // One waiter each (the transport's writer); a stored permit
            // covers the case where it is not waiting right now. `ready`
            // too, for a transport that waits on the queue and the close
            // request at once ([`Receiver::next_event`]).
            self.close_signal.notify_one();
            self.ready.notify_one();
        }
        won
    }

    /// Why the connection is closing, if it is.
    pub fn close_reason(&self) -> Option<CloseReason> {
        CloseReason::from_u8(self.close_reason.load(Ordering::Acquire))
    }

    /// Resolves once [`Outbox::close`] was called. Only one task may wait.
    pub async fn closed(&self) -> CloseReason {
        loop {
            if let Some(r) = self.close_reason() {
                return r;
            }
            self.close_signal.notified().await;
        }
    }
}

/// What [`Receiver::next_event`] saw.
#[derive(Debug)]
pub enum Event {
    /// The connection was asked to close.
    Close(CloseReason),
    /// An item was queued.
    Item(Outbound),
}

/// The receiving end of an [`Outbox`]; dropping it stops the queue (later
/// sends are refused without closing the connection).
#[derive(Debug)]
pub struct Receiver {
    outbox: Arc<Outbox>,
}

impl Receiver {
    /// The next item, waiting for one. Cancel-safe: an item is only taken
    /// when this resolves.
    pub async fn recv(&mut self) -> Outbound {
        loop {
            if let Some(item) = self.try_recv() {
                return item;
            }
            self.outbox.ready.notified().await;
        }
    }

    /// A close request, or else (when `want_item`) the next item, waiting
    /// for either. One future instead of [`Outbox::closed`] and
    /// [`Receiver::recv`] side by side keeps a connection's task smaller.
    pub async fn next_event(&mut self, want_item: bool) -> Event {
        loop {
            if let Some(r) = self.outbox.close_reason() {
                return Event::Close(r);
            }
            if want_item {
                if let Some(item) = self.try_recv() {
                    return Event::Item(item);
                }
            }
            self.outbox.ready.notified().await;
        }
    }

    /// The next item if one is queued.
    pub fn try_recv(&mut self) -> Option<Outbound> {
        let mut q = lock(&self.outbox.queue);
        let item = q.items.pop_front();
        q.release_if_drained(KEEP_SLOTS);
        item
    }

    /// Moves up to `max` queued items to `out` under one lock.
    pub fn recv_many(&mut self, out: &mut Vec<Outbound>, max: usize) {
        let mut q = lock(&self.outbox.queue);
        let n = q.items.len().min(max);
        out.extend(q.items.drain(..n));
        q.release_if_drained(KEEP_SLOTS);
    }

    /// Whether nothing is queued.
    pub fn is_empty(&self) -> bool {
        lock(&self.outbox.queue).items.is_empty()
    }

    /// Frees the queue's buffer if nothing is queued (for idle connections).
    pub fn release_idle(&mut self) {
        lock(&self.outbox.queue).release_if_drained(0);
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        let items = {
            let mut q = lock(&self.outbox.queue);
            q.open = false;
            std::mem::take(&mut q.items)
        };
        // Dropped outside the lock: they may hold the last reference to big
        // publications.
        drop(items);
    }
}
