//! Counters and gauges of the gateway, served as JSON (`/api/stats`,
//! `$sys.gateway`) and in the Prometheus text format (`/metrics`).
//!
//! The Prometheus metric objects are the storage: one atomic each, no second
//! copy to keep in step.

use std::time::Instant;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use serde::Serialize;

/// The transports that hold connections, for per-transport figures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// WebSocket `/ws`.
    Ws,
    /// Server-Sent Events `/sse`.
    Sse,
    /// Long-poll `/poll` (requests in flight).
    Poll,
    /// WebTransport `/wt` sessions.
    Wt,
}

impl Transport {
    /// Its name in stats and labels.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ws => "ws",
            Self::Sse => "sse",
            Self::Poll => "poll",
            Self::Wt => "wt",
        }
    }
}

type Labels = Vec<(String, String)>;

/// The gateway's figures.
pub struct Stats {
    registry: Registry,
    connections: [Gauge; 4],
    topics: Gauge,
    messages_in: Counter,
    messages_out: Counter,
    slow_consumers: Counter,
    duplicates: Counter,
    started: Instant,
}

/// A snapshot, as `/api/stats` and `$sys.gateway` show it.
#[derive(Debug, Clone, Serialize)]
pub struct Snapshot {
    /// Open connections per transport.
    pub connections: Connections,
    /// Topics in the log.
    pub topics: i64,
    /// Publications accepted.
    pub messages_in: u64,
    /// Publications delivered to subscribers (one per subscriber).
    pub messages_out: u64,
    /// Connections closed as slow consumers.
    pub slow_consumers_dropped: u64,
    /// Publishes not published again because their `msg_id` was a duplicate.
    pub duplicates_dropped: u64,
    /// Seconds since start.
    pub uptime_secs: u64,
}

/// Open connections per transport.
#[derive(Debug, Clone, Serialize)]
pub struct Connections {
    /// WebSocket.
    pub ws: i64,
    /// SSE.
    pub sse: i64,
    /// Long-poll requests waiting.
    pub poll: i64,
    /// WebTransport sessions.
    pub wt: i64,
}

impl std::fmt::Debug for Stats {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Stats").field(&self.snapshot()).finish()
    }
}

impl Default for Stats {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("livegate");
        let family = Family::<Labels, Gauge>::default();
        registry.register(
            "connections",
            "Open connections (long-poll: requests in flight) per transport",
            family.clone(),
        );
        let label = |t: Transport| vec![("transport".to_owned(), t.as_str().to_owned())];
        let connections = [
            Transport::Ws,
            Transport::Sse,
            Transport::Poll,
            Transport::Wt,
        ]
        .map(|t| family.get_or_create(&label(t)).clone());
        let topics = Gauge::default();
        registry.register("topics", "Topics in the log", topics.clone());
        let messages_in = Counter::default();
        registry.register("messages_in", "Publications accepted", messages_in.clone());
        let messages_out = Counter::default();
        registry.register(
            "messages_out",
            "Publications handed to subscriber queues",
            messages_out.clone(),
        );
        let slow_consumers = Counter::default();
        registry.register(
            "slow_consumers_dropped",
            "Connections closed because their outbound queue overflowed",
            slow_consumers.clone(),
        );
        let duplicates = Counter::default();
        registry.register(
            "duplicates_dropped",
            "Publishes answered with an earlier publication because their msg_id repeated",
            duplicates.clone(),
        );
        Self {
            registry,
            connections,
            topics,
            messages_in,
            messages_out,
            slow_consumers,
            duplicates,
            started: Instant::now(),
        }
    }
}

impl Stats {
    fn conn(&self, t: Transport) -> &Gauge {
        &self.connections[t as usize]
    }

    /// Counts a connection open until the guard drops.
    pub fn connection(self: &std::sync::Arc<Self>, t: Transport) -> ConnectionGuard {
        self.conn(t).inc();
        ConnectionGuard {
            stats: self.clone(),
            transport: t,
        }
    }

    /// One more topic.
    pub fn topic_created(&self) {
        self.topics.inc();
    }

    /// One publication accepted (sequenced, not a duplicate).
    pub fn accepted(&self) {
        self.messages_in.inc();
    }

    /// Publications handed to subscriber queues (fan-out and replays).
    pub fn delivered(&self, n: u64) {
        self.messages_out.inc_by(n);
    }

    /// A connection cut as a slow consumer.
    pub fn slow_consumer(&self) {
        self.slow_consumers.inc();
    }

    /// A publish dropped as a duplicate of an earlier `msg_id`.
    pub fn duplicate(&self) {
        self.duplicates.inc();
    }

    /// The current figures.
    pub fn snapshot(&self) -> Snapshot {
        Snapshot {
            connections: Connections {
                ws: self.conn(Transport::Ws).get(),
                sse: self.conn(Transport::Sse).get(),
                poll: self.conn(Transport::Poll).get(),
                wt: self.conn(Transport::Wt).get(),
            },
            topics: self.topics.get(),
            messages_in: self.messages_in.get(),
            messages_out: self.messages_out.get(),
            slow_consumers_dropped: self.slow_consumers.get(),
            duplicates_dropped: self.duplicates.get(),
            uptime_secs: self.started.elapsed().as_secs(),
        }
    }

    /// The Prometheus text exposition.
    pub fn prometheus(&self) -> String {
        let mut out = String::new();
        // Encoding into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

/// Keeps a connection counted; uncounts it on drop.
pub struct ConnectionGuard {
    stats: std::sync::Arc<Stats>,
    transport: Transport,
}

impl Drop for ConnectionGuard {
    fn drop(&mut self) {
        self.stats.conn(self.transport).dec();
    }
}
