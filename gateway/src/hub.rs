//! The hub: topics, their history and their subscribers; fan-out.
//!
//! A publication is encoded at most once per encoding ([`SharedPublication`])
//! and every subscriber's queue gets the same `Arc`; a connection whose queue
//! is full is closed as a slow consumer and never blocks the others. Replay
//! and registration happen under the topic's lock, so a subscriber sees every
//! publication after its position exactly once, in order. Each topic also
//! remembers the recent publish `msg_id`s (bounded by count and age), so a
//! retried publish is answered with its first publication instead of being
//! published again.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError, RwLock, Weak};

use bytes::Bytes;
use livegate_core::history::{Bounds, History, Unrecoverable};
use livegate_core::protocol::{Position, Publication, ServerFrame};
use livegate_core::topic::Namespaces;
use livegate_core::{Encoding, ErrorCode, Payload};
use tokio::sync::Notify;

use crate::close::CloseReason;
use crate::stats::Stats;

/// A publication with its frames, encoded on first use, once per encoding.
#[derive(Debug)]
pub struct SharedPublication {
    /// The publication.
    pub publication: Publication,
    encoded: [OnceLock<Bytes>; 2],
    /// The frame with its length prefix, for stream transports (made only
    /// when one asks).
    prefixed: [OnceLock<Bytes>; 2],
}

impl SharedPublication {
    fn new(publication: Publication) -> Self {
        Self {
            publication,
            encoded: [OnceLock::new(), OnceLock::new()],
            prefixed: [OnceLock::new(), OnceLock::new()],
        }
    }

    /// Its whole `publication` frame in `encoding`.
    pub fn frame(&self, encoding: Encoding) -> &Bytes {
        self.encoded[encoding.index()]
            .get_or_init(|| Bytes::from(encoding.encode_publication(&self.publication)))
    }

    /// The frame with the 4-byte length prefix of stream transports
    /// (`livegate_core::framing`), made once and shared like the frame.
    pub fn length_prefixed(&self, encoding: Encoding) -> &Bytes {
        self.prefixed[encoding.index()]
            .get_or_init(|| Bytes::from(livegate_core::framing::frame(self.frame(encoding))))
    }
}

/// A shared publication.
pub type SharedPub = Arc<SharedPublication>;

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
        let head = ServerFrame::Subscribed {
            id: self.id,
            topic: self.topic.to_string(),
            epoch: self.position.epoch.clone(),
            offset: self.position.offset,
            recovered: self.recovered,
            publications: Vec::new(),
        };
        let replay = if with_replay { &self.replay[..] } else { &[] };
        let frames: Vec<&Bytes> = replay.iter().map(|p| p.frame(encoding)).collect();
        Bytes::from(encoding.encode_with_publications(&head, &frames))
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
            Self::History(h) => {
                let head = ServerFrame::History {
                    id: h.id,
                    topic: h.topic.to_string(),
                    epoch: h.position.epoch.clone(),
                    offset: h.position.offset,
                    publications: Vec::new(),
                    more: h.more,
                };
                let frames: Vec<&Bytes> =
                    h.publications.iter().map(|p| p.frame(encoding)).collect();
                Bytes::from(encoding.encode_with_publications(&head, &frames))
            }
            Self::Frame(f) => Bytes::from(encoding.encode_server(f)),
        }
    }
}

/// One subscriber-side connection as the hub sees it: a bounded queue and a
/// close signal. Transports own the receiving end ([`Receiver`]) and the
/// socket.
///
/// The queue is a `VecDeque` under a mutex rather than a tokio channel: a
/// channel allocates about 1 KiB per connection up front (cache-padded
/// state and a first block of 32 slots), which an idle connection cannot
/// afford; this queue allocates only while items wait, and gives the buffer
/// back once drained.
#[derive(Debug)]
pub struct Connection {
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

impl Connection {
    /// Queues an item. Returns false when the connection is closing or its
    /// queue is full, in which case it is closed as a slow consumer.
    pub fn send(&self, item: Outbound) -> bool {
        let mut q = lock(&self.queue);
        if !q.open {
            return false;
        }
        if q.items.len() >= self.capacity {
            drop(q);
            if self.close(CloseReason::SlowConsumer) {
                self.stats.slow_consumer();
                tracing::debug!(conn = self.id, "slow consumer cut");
            }
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

    /// Resolves once [`Connection::close`] was called. Only one task may wait.
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

/// The receiving end of a connection's queue; dropping it stops the queue
/// (later sends are refused without closing the connection).
#[derive(Debug)]
pub struct Receiver {
    conn: Arc<Connection>,
}

impl Receiver {
    /// The next item, waiting for one. Cancel-safe: an item is only taken
    /// when this resolves.
    pub async fn recv(&mut self) -> Outbound {
        loop {
            if let Some(item) = self.try_recv() {
                return item;
            }
            self.conn.ready.notified().await;
        }
    }

    /// A close request, or else (when `want_item`) the next item, waiting
    /// for either. One future instead of [`Connection::closed`] and
    /// [`Receiver::recv`] side by side keeps a connection's task smaller.
    pub async fn next_event(&mut self, want_item: bool) -> Event {
        loop {
            if let Some(r) = self.conn.close_reason() {
                return Event::Close(r);
            }
            if want_item {
                if let Some(item) = self.try_recv() {
                    return Event::Item(item);
                }
            }
            self.conn.ready.notified().await;
        }
    }

    /// The next item if one is queued.
    pub fn try_recv(&mut self) -> Option<Outbound> {
        let mut q = lock(&self.conn.queue);
        let item = q.items.pop_front();
        q.release_if_drained(KEEP_SLOTS);
        item
    }

    /// Moves up to `max` queued items to `out` under one lock.
    pub fn recv_many(&mut self, out: &mut Vec<Outbound>, max: usize) {
        let mut q = lock(&self.conn.queue);
        let n = q.items.len().min(max);
        out.extend(q.items.drain(..n));
        q.release_if_drained(KEEP_SLOTS);
    }

    /// Whether nothing is queued.
    pub fn is_empty(&self) -> bool {
        lock(&self.conn.queue).items.is_empty()
    }

    /// Frees the queue's buffer if nothing is queued (for idle connections).
    pub fn release_idle(&mut self) {
        lock(&self.conn.queue).release_if_drained(0);
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        let items = {
            let mut q = lock(&self.conn.queue);
            q.open = false;
            std::mem::take(&mut q.items)
        };
        // Dropped outside the lock: they may hold the last reference to big
        // publications.
        drop(items);
    }
}

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
    fn enabled(self) -> bool {
        self.max_ids > 0 && self.max_age_ms > 0
    }
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

/// One topic's recent `msg_id`s: a map for lookups and a queue, oldest
/// first, for eviction by count and age. Every id is in both exactly once.
#[derive(Default)]
struct Dedupe {
    seen: HashMap<Arc<str>, (Arc<str>, u64)>,
    order: VecDeque<(Arc<str>, u64)>,
    /// Time of the newest entry: entry times never go backwards, so the
    /// queue stays sorted by time even if the clock does.
    newest_ms: u64,
}

impl Dedupe {
    /// Forgets ids older than the window or beyond its count.
    fn evict(&mut self, window: DedupeWindow, now_ms: u64) {
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
    fn get(&self, id: &str) -> Option<Position> {
        self.seen.get(id).map(|(epoch, offset)| Position {
            epoch: epoch.to_string(),
            offset: *offset,
        })
    }

    /// Remembers `id` (not already remembered) for `epoch`/`offset`.
    fn insert(
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

    #[cfg(test)]
    fn len(&self) -> usize {
        debug_assert_eq!(self.seen.len(), self.order.len());
        self.seen.len()
    }
}

struct TopicState {
    name: Arc<str>,
    history: History<SharedPub>,
    /// The history's epoch, shared by the dedupe entries.
    epoch: Arc<str>,
    dedupe: Dedupe,
    subscribers: HashMap<u64, Arc<Connection>>,
}

/// A page of history.
#[derive(Debug)]
pub struct HistoryPage {
    /// The topic's current position.
    pub position: Position,
    /// Publications, oldest first.
    pub publications: Vec<SharedPub>,
    /// Whether more follow the last one.
    pub more: bool,
}

/// Why a subscribe was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SubscribeError {
    /// The connection already has this topic.
    AlreadySubscribed,
    /// The connection is closing (its queue overflowed).
    Closing,
}

/// Topics, subscribers, fan-out.
pub struct Hub {
    topics: RwLock<HashMap<Arc<str>, Arc<Mutex<TopicState>>>>,
    namespaces: Namespaces,
    dedupe: DedupeWindow,
    stats: Arc<Stats>,
    connections: Mutex<HashMap<u64, Weak<Connection>>>,
    next_id: AtomicU64,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic elsewhere must not take the hub down with it.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A fresh epoch: 8 random base-36 characters.
pub fn new_epoch() -> String {
    random_token(8)
}

/// `n` random base-36 characters (time-seeded if the OS has no randomness).
pub fn random_token(n: usize) -> String {
    const ALPHABET: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let mut buf = vec![0u8; n];
    if getrandom::fill(&mut buf).is_err() {
        let seed = crate::now_ms() ^ u64::from(std::process::id());
        for (i, b) in buf.iter_mut().enumerate() {
            *b = (seed >> ((i * 7) % 57)) as u8 ^ (i as u8).wrapping_mul(31);
        }
    }
    buf.iter()
        .map(|b| ALPHABET[*b as usize % ALPHABET.len()] as char)
        .collect()
}

impl Hub {
    /// An empty hub with the default dedupe window.
    pub fn new(namespaces: Namespaces, stats: Arc<Stats>) -> Self {
        Self {
            topics: RwLock::new(HashMap::new()),
            namespaces,
            dedupe: DedupeWindow::default(),
            stats,
            connections: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(1),
        }
    }

    /// The same hub remembering publish `msg_id`s for `window`.
    pub fn with_dedupe_window(mut self, window: DedupeWindow) -> Self {
        self.dedupe = window;
        self
    }

    /// The namespace options in force.
    pub fn namespaces(&self) -> &Namespaces {
        &self.namespaces
    }

    /// A new connection with a queue of `queue_size` items; the hub keeps a
    /// weak reference for shutdown.
    pub fn connect(&self, queue_size: usize) -> (Arc<Connection>, Receiver) {
        let conn = Arc::new(Connection {
            id: self.next_id.fetch_add(1, Ordering::Relaxed),
            queue: Mutex::new(Queue {
                items: VecDeque::new(),
                open: true,
            }),
            capacity: queue_size,
            ready: Notify::new(),
            stats: self.stats.clone(),
            close_reason: AtomicU8::new(0),
            close_signal: Notify::new(),
        });
        lock(&self.connections).insert(conn.id, Arc::downgrade(&conn));
        (conn.clone(), Receiver { conn })
    }

    /// Forgets a connection: its subscriptions on `topics` and its entry.
    pub fn disconnect<'a>(&self, conn: &Connection, topics: impl IntoIterator<Item = &'a str>) {
        for t in topics {
            self.unsubscribe(conn.id, t);
        }
        lock(&self.connections).remove(&conn.id);
    }

    /// Asks every connection to close with `reason`.
    pub fn close_all(&self, reason: CloseReason) {
        let conns: Vec<Arc<Connection>> = lock(&self.connections)
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

    fn topic(&self, name: &str) -> Arc<Mutex<TopicState>> {
        if let Some(t) = self
            .topics
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(name)
        {
            return t.clone();
        }
        let mut topics = self.topics.write().unwrap_or_else(PoisonError::into_inner);
        topics
            .entry(Arc::from(name))
            .or_insert_with_key(|key| {
                let opts = self.namespaces.options_for(name);
                self.stats.topic_created();
                let epoch = new_epoch();
                Arc::new(Mutex::new(TopicState {
                    name: key.clone(),
                    epoch: Arc::from(epoch.as_str()),
                    history: History::new(
                        epoch,
                        Bounds {
                            max_len: opts.history_size,
                            max_age_ms: opts.history_ttl_secs.saturating_mul(1000),
                        },
                    ),
                    dedupe: Dedupe::default(),
                    subscribers: HashMap::new(),
                }))
            })
            .clone()
    }

    /// Number of topics.
    pub fn topic_count(&self) -> usize {
        self.topics
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    /// Sequences a publication on this node and fans it out. Topic and event
    /// names (and `msg_id`) must be valid; permission checks are the
    /// caller's. A `msg_id` the topic still remembers publishes nothing and
    /// answers the first publication's position with `duplicate: true`; the
    /// check and the append happen under the topic's lock, so of two
    /// concurrent publishes with one id exactly one is published.
    pub fn publish(
        &self,
        topic: &str,
        event: Option<String>,
        data: Payload,
        msg_id: Option<&str>,
        now_ms: u64,
    ) -> Published {
        let t = self.topic(topic);
        let mut st = lock(&t);
        let window = self.dedupe;
        let msg_id = msg_id.filter(|_| window.enabled());
        if let Some(id) = msg_id {
            st.dedupe.evict(window, now_ms);
            if let Some(position) = st.dedupe.get(id) {
                drop(st);
                self.stats.duplicate();
                return Published {
                    position,
                    duplicate: true,
                };
            }
        }
        let publication = Arc::new(SharedPublication::new(Publication {
            topic: st.name.to_string(),
            epoch: st.history.epoch().to_owned(),
            offset: st.history.next_offset(),
            event,
            data,
            time_ms: now_ms,
        }));
        let offset = st.history.append(now_ms, publication.clone());
        if let Some(id) = msg_id {
            let epoch = st.epoch.clone();
            st.dedupe.insert(window, id, epoch, offset, now_ms);
        }
        let mut delivered = 0;
        let mut dropped = Vec::new();
        for (id, conn) in &st.subscribers {
            if conn.send(Outbound::Publication(publication.clone())) {
                delivered += 1;
            } else {
                dropped.push(*id);
            }
        }
        for id in dropped {
            st.subscribers.remove(&id);
        }
        let position = Position {
            epoch: publication.publication.epoch.clone(),
            offset,
        };
        drop(st);
        self.stats.published(delivered);
        Published {
            position,
            duplicate: false,
        }
    }

    /// Subscribes a connection: queues a `subscribed` item with the replay
    /// since `since`, then live publications, with nothing lost or doubled
    /// between them.
    pub fn subscribe(
        &self,
        conn: &Arc<Connection>,
        topic: &str,
        since: Option<&Position>,
        id: Option<u64>,
        now_ms: u64,
    ) -> Result<bool, SubscribeError> {
        let t = self.topic(topic);
        let mut st = lock(&t);
        if st.subscribers.contains_key(&conn.id) {
            return Err(SubscribeError::AlreadySubscribed);
        }
        let position = st.history.position();
        let (recovered, replay) = match since {
            None => (false, Vec::new()),
            Some(pos) => match st.history.since(Some(pos), now_ms) {
                Ok(entries) => (true, entries.map(|e| e.value.clone()).collect()),
                Err(_) => (false, Vec::new()),
            },
        };
        let replayed = replay.len() as u64;
        let item = Outbound::Subscribed(Box::new(SubscribedItem {
            id,
            position,
            topic: st.name.clone(),
            recovered,
            replay,
        }));
        if !conn.send(item) {
            return Err(SubscribeError::Closing);
        }
        st.subscribers.insert(conn.id, conn.clone());
        drop(st);
        self.stats.delivered(replayed);
        Ok(recovered)
    }

    /// Removes a subscription; returns whether there was one.
    pub fn unsubscribe(&self, conn_id: u64, topic: &str) -> bool {
        let t = self
            .topics
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(topic)
            .cloned();
        t.is_some_and(|t| lock(&t).subscribers.remove(&conn_id).is_some())
    }

    /// Up to `limit` publications after `since` (from the oldest kept when
    /// `None`), or why the position cannot be served.
    pub fn history(
        &self,
        topic: &str,
        since: Option<&Position>,
        limit: usize,
        now_ms: u64,
    ) -> Result<HistoryPage, Unrecoverable> {
        let t = self.topic(topic);
        let mut st = lock(&t);
        let position = st.history.position();
        let entries = st.history.since(since, now_ms)?;
        let total = entries.len();
        let publications = entries.take(limit).map(|e| e.value.clone()).collect();
        Ok(HistoryPage {
            position,
            publications,
            more: total > limit,
        })
    }
}

/// Maps a refused subscribe to its error code.
impl SubscribeError {
    /// The `error` frame code, when the client is told.
    pub fn code(self) -> Option<ErrorCode> {
        match self {
            Self::AlreadySubscribed => Some(ErrorCode::AlreadySubscribed),
            Self::Closing => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hub() -> Hub {
        Hub::new(Namespaces::default(), Arc::new(Stats::default()))
    }

    fn json(s: &str) -> Payload {
        Payload::from_json(s.to_owned()).unwrap()
    }

    fn offsets(rx: &mut Receiver) -> Vec<u64> {
        let mut out = Vec::new();
        while let Some(item) = rx.try_recv() {
            match item {
                Outbound::Publication(p) => out.push(p.publication.offset),
                Outbound::Subscribed(s) => {
                    out.extend(s.replay.iter().map(|p| p.publication.offset))
                }
                _ => {}
            }
        }
        out
    }

    #[test]
    fn fan_out_shares_one_encoding() {
        let hub = hub();
        let (a, mut ra) = hub.connect(16);
        let (b, mut rb) = hub.connect(16);
        hub.subscribe(&a, "t", None, None, 0).unwrap();
        hub.subscribe(&b, "t", None, None, 0).unwrap();
        let _ = (ra.try_recv(), rb.try_recv()); // subscribed
        hub.publish("t", None, json("{\"x\":1}"), None, 1);
        let (Some(Outbound::Publication(pa)), Some(Outbound::Publication(pb))) =
            (ra.try_recv(), rb.try_recv())
        else {
            panic!("both subscribers get the publication");
        };
        assert!(Arc::ptr_eq(&pa, &pb));
        let fa = pa.frame(Encoding::Json).clone();
        let fb = pb.frame(Encoding::Json).clone();
        assert_eq!(fa.as_ptr(), fb.as_ptr(), "encoded once, bytes shared");
    }

    #[test]
    fn slow_consumer_is_cut_and_others_keep_receiving() {
        let hub = hub();
        let (slow, _slow_rx) = hub.connect(4);
        let (fast, mut fast_rx) = hub.connect(1024);
        hub.subscribe(&slow, "t", None, None, 0).unwrap();
        hub.subscribe(&fast, "t", None, None, 0).unwrap();
        for i in 0..100 {
            hub.publish("t", None, json(&i.to_string()), None, i);
        }
        assert_eq!(slow.close_reason(), Some(CloseReason::SlowConsumer));
        assert_eq!(hub.stats.snapshot().slow_consumers_dropped, 1);
        assert_eq!(offsets(&mut fast_rx), (1..=100).collect::<Vec<_>>());
        assert_eq!(fast.close_reason(), None);
    }

    #[test]
    fn resubscribe_replays_the_gap_exactly_once() {
        let hub = hub();
        let (c, mut rx) = hub.connect(64);
        hub.subscribe(&c, "t", None, None, 0).unwrap();
        for i in 1..=5 {
            hub.publish("t", None, json("1"), None, i);
        }
        assert_eq!(offsets(&mut rx), vec![1, 2, 3, 4, 5]);
        let epoch = match hub.history("t", None, 1, 5) {
            Ok(page) => page.position.epoch,
            Err(e) => panic!("{e}"),
        };
        assert!(hub.unsubscribe(c.id, "t"));
        for i in 6..=8 {
            hub.publish("t", None, json("1"), None, i);
        }
        let since = Position { epoch, offset: 5 };
        assert_eq!(hub.subscribe(&c, "t", Some(&since), None, 9), Ok(true));
        hub.publish("t", None, json("1"), None, 10);
        assert_eq!(offsets(&mut rx), vec![6, 7, 8, 9]);
        assert_eq!(
            hub.subscribe(&c, "t", None, None, 11),
            Err(SubscribeError::AlreadySubscribed)
        );
    }

    #[test]
    fn unknown_epoch_is_not_recovered() {
        let hub = hub();
        let (c, _rx) = hub.connect(8);
        hub.publish("t", None, json("1"), None, 1);
        let since = Position {
            epoch: "other".into(),
            offset: 1,
        };
        assert_eq!(hub.subscribe(&c, "t", Some(&since), None, 2), Ok(false));
    }

    fn window(max_ids: usize, max_age_secs: u64) -> Hub {
        hub().with_dedupe_window(DedupeWindow {
            max_ids,
            max_age_ms: max_age_secs * 1000,
        })
    }

    fn dedupe_len(hub: &Hub, topic: &str) -> usize {
        lock(&hub.topic(topic)).dedupe.len()
    }

    #[test]
    fn duplicate_msg_id_answers_the_first_publication_and_is_not_fanned_out() {
        let hub = hub();
        let (c, mut rx) = hub.connect(16);
        hub.subscribe(&c, "t", None, None, 0).unwrap();
        let first = hub.publish("t", None, json("1"), Some("m-1"), 1);
        assert!(!first.duplicate);
        assert_eq!(first.position.offset, 1);
        let again = hub.publish("t", Some("other".into()), json("2"), Some("m-1"), 2);
        assert!(again.duplicate);
        assert_eq!(again.position, first.position, "same epoch and offset");
        assert_eq!(offsets(&mut rx), vec![1], "published and delivered once");
        let page = hub.history("t", None, 10, 3).unwrap();
        assert_eq!(page.position.offset, 1);
        assert_eq!(page.publications.len(), 1);
        assert_eq!(hub.stats.snapshot().messages_in, 1);
        assert_eq!(hub.stats.snapshot().duplicates_dropped, 1);

        // Other ids, no id, and the same id on another topic are new.
        assert_eq!(
            hub.publish("t", None, json("3"), Some("m-2"), 3)
                .position
                .offset,
            2
        );
        assert_eq!(
            hub.publish("t", None, json("4"), None, 4).position.offset,
            3
        );
        assert_eq!(
            hub.publish("t", None, json("5"), None, 5).position.offset,
            4
        );
        let elsewhere = hub.publish("u", None, json("6"), Some("m-1"), 6);
        assert!(!elsewhere.duplicate);
        assert_eq!(elsewhere.position.offset, 1);
        assert_eq!(offsets(&mut rx), vec![2, 3, 4]);
    }

    #[test]
    fn concurrent_duplicates_publish_once() {
        let hub = Arc::new(hub());
        let (c, mut rx) = hub.connect(1024);
        hub.subscribe(&c, "t", None, None, 0).unwrap();
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let hub = hub.clone();
                std::thread::spawn(move || {
                    (0..50)
                        .map(|i| hub.publish("t", None, json("1"), Some(&format!("id-{i}")), 1))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        let results: Vec<Vec<Published>> = threads.into_iter().map(|t| t.join().unwrap()).collect();
        for i in 0..50 {
            let answers: Vec<&Published> = results.iter().map(|r| &r[i]).collect();
            assert_eq!(answers.iter().filter(|p| !p.duplicate).count(), 1, "id-{i}");
            assert!(answers.iter().all(|p| p.position == answers[0].position));
        }
        assert_eq!(offsets(&mut rx), (1..=50).collect::<Vec<_>>());
    }

    #[test]
    fn window_evicts_the_oldest_ids_by_count() {
        let hub = window(2, 300);
        let a = hub.publish("t", None, json("1"), Some("a"), 1);
        hub.publish("t", None, json("1"), Some("b"), 2);
        assert!(hub.publish("t", None, json("1"), Some("a"), 3).duplicate);
        hub.publish("t", None, json("1"), Some("c"), 4); // evicts "a"
        assert_eq!(dedupe_len(&hub, "t"), 2);
        let a2 = hub.publish("t", None, json("1"), Some("a"), 5);
        assert!(!a2.duplicate, "a left the window: published again");
        assert_eq!((a.position.offset, a2.position.offset), (1, 4));
        // "b" was evicted by "a"'s second publication; "c" and "a" remain.
        assert!(!hub.publish("t", None, json("1"), Some("b"), 6).duplicate);
        assert!(hub.publish("t", None, json("1"), Some("b"), 7).duplicate);
        assert_eq!(dedupe_len(&hub, "t"), 2);
    }

    #[test]
    fn window_evicts_ids_by_age() {
        let hub = window(1000, 10);
        let first = hub.publish("t", None, json("1"), Some("a"), 1_000);
        let at_edge = hub.publish("t", None, json("1"), Some("a"), 11_000);
        assert!(
            at_edge.duplicate,
            "an id exactly max_age old is still remembered"
        );
        assert_eq!(at_edge.position, first.position);
        let later = hub.publish("t", None, json("1"), Some("a"), 11_001);
        assert!(!later.duplicate, "older than the window: published again");
        assert_eq!(later.position.offset, 2);
        // Old ids go even when only other ids are published.
        hub.publish("t", None, json("1"), Some("b"), 12_000);
        hub.publish("t", None, json("1"), Some("c"), 30_000);
        assert_eq!(dedupe_len(&hub, "t"), 1);
        // A clock that steps back: "d" counts from the newest time seen
        // (30 s), so the queue stays sorted by time.
        hub.publish("t", None, json("1"), Some("d"), 25_000);
        assert!(
            hub.publish("t", None, json("1"), Some("c"), 25_001)
                .duplicate
        );
        assert!(
            hub.publish("t", None, json("1"), Some("d"), 40_000)
                .duplicate
        );
        assert!(
            !hub.publish("t", None, json("1"), Some("c"), 40_001)
                .duplicate
        );
    }

    #[test]
    fn zero_window_turns_dedupe_off() {
        for hub in [window(0, 300), window(1000, 0)] {
            hub.publish("t", None, json("1"), Some("a"), 1);
            let again = hub.publish("t", None, json("1"), Some("a"), 2);
            assert!(!again.duplicate);
            assert_eq!(again.position.offset, 2);
            assert_eq!(dedupe_len(&hub, "t"), 0);
        }
    }
}
