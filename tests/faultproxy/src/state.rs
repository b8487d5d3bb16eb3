//! Shared proxy state: fault switches, counters and the connection registry.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::{oneshot, watch};

/// Sent to a connection to close it; the connection answers on the inner
/// channel once both of its sockets are closed.
pub type Kill = oneshot::Sender<oneshot::Sender<()>>;
pub type KillReceiver = oneshot::Receiver<oneshot::Sender<()>>;

#[derive(Default)]
pub struct Stats {
    pub accepted: AtomicU64,
    pub active: AtomicU64,
    pub refused_ws: AtomicU64,
    pub refused_sse: AtomicU64,
    pub refused_poll: AtomicU64,
    pub refused_all: AtomicU64,
    pub dropped: AtomicU64,
}

pub struct State {
    pub refuse_ws: AtomicBool,
    pub refuse_sse: AtomicBool,
    pub refuse_poll: AtomicBool,
    pub refuse_all: AtomicBool,
    pub delay_ms: AtomicU64,
    /// `true` while stalled; every forwarding direction watches it.
    pub stall: watch::Sender<bool>,
    pub stats: Stats,
    upstream: Mutex<SocketAddr>,
    conns: Mutex<HashMap<u64, Kill>>,
    next_id: AtomicU64,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A poisoned lock only means another thread panicked while holding it;
    // the data (an address, a map of senders) is still usable.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl State {
    pub fn new(upstream: SocketAddr) -> Arc<State> {
        Arc::new(State {
            refuse_ws: AtomicBool::new(false),
            refuse_sse: AtomicBool::new(false),
            refuse_poll: AtomicBool::new(false),
            refuse_all: AtomicBool::new(false),
            delay_ms: AtomicU64::new(0),
            stall: watch::Sender::new(false),
            stats: Stats::default(),
            upstream: Mutex::new(upstream),
            conns: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(0),
        })
    }

    pub fn upstream(&self) -> SocketAddr {
        *lock(&self.upstream)
    }

    pub fn set_upstream(&self, addr: SocketAddr) {
        *lock(&self.upstream) = addr;
    }

    /// Whether new connections must have their request head inspected.
    pub fn inspecting(&self) -> bool {
        self.refuse_ws.load(Ordering::SeqCst)
            || self.refuse_sse.load(Ordering::SeqCst)
            || self.refuse_poll.load(Ordering::SeqCst)
    }

    pub fn delay(&self) -> Option<Duration> {
        match self.delay_ms.load(Ordering::SeqCst) {
            0 => None,
            ms => Some(Duration::from_millis(ms)),
        }
    }

    /// Registers a new connection: it counts as active and can be killed
    /// by `drop` until the returned guard is dropped.
    pub fn register(self: &Arc<Self>) -> (ConnGuard, KillReceiver) {
        let id = self.next_id.fetch_add(1, Ordering::SeqCst);
        let (tx, rx) = oneshot::channel();
        lock(&self.conns).insert(id, tx);
        self.stats.active.fetch_add(1, Ordering::SeqCst);
        (
            ConnGuard {
                state: Arc::clone(self),
                id,
            },
            rx,
        )
    }

    /// Closes every registered connection; waits (bounded) until they are
    /// closed and returns how many were killed.
    pub async fn drop_all(&self) -> u64 {
        let kills: Vec<Kill> = lock(&self.conns).drain().map(|(_, k)| k).collect();
        let mut acks = Vec::with_capacity(kills.len());
        for kill in kills {
            let (ack_tx, ack_rx) = oneshot::channel();
            if kill.send(ack_tx).is_ok() {
                acks.push(ack_rx);
            }
        }
        let n = acks.len() as u64;
        self.stats.dropped.fetch_add(n, Ordering::SeqCst);
        let _ = tokio::time::timeout(Duration::from_secs(2), async {
            for ack in acks {
                let _ = ack.await;
            }
        })
        .await;
        n
    }

    pub fn stats_json(&self) -> String {
        let s = &self.stats;
        let g = |c: &AtomicU64| c.load(Ordering::SeqCst);
        format!(
            "{{\"accepted\":{},\"active\":{},\"refused_ws\":{},\"refused_sse\":{},\"refused_poll\":{},\"refused_all\":{},\"dropped\":{}}}",
            g(&s.accepted),
            g(&s.active),
            g(&s.refused_ws),
            g(&s.refused_sse),
            g(&s.refused_poll),
            g(&s.refused_all),
            g(&s.dropped),
        )
    }
}

/// Held by a connection task for its lifetime.
pub struct ConnGuard {
    state: Arc<State>,
    id: u64,
}

impl Drop for ConnGuard {
    fn drop(&mut self) {
        lock(&self.state.conns).remove(&self.id);
        self.state.stats.active.fetch_sub(1, Ordering::SeqCst);
    }
}
