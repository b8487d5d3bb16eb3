//! The livegate gateway: hub, broker, transports and HTTP API behind
//! `livegate serve`. See `docs/architecture.md` for how the parts fit.
#![forbid(unsafe_code)]

pub mod api;
pub mod bench;
pub mod broker;
pub mod close;
pub mod config;
pub mod hub;
pub mod process;
pub mod server;
pub mod stats;
pub mod system;
pub mod transport;

use std::sync::Arc;

use broker::Broker;
use config::Config;
use hub::Hub;
use stats::Stats;

/// Milliseconds since the Unix epoch, the time base of publications.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// What every handler and transport shares.
pub struct App {
    /// Settings in force.
    pub config: Config,
    /// Topics and subscribers.
    pub hub: Arc<Hub>,
    /// Sequences publications (and, with a remote broker, spreads them).
    pub broker: Arc<dyn Broker>,
    /// Figures.
    pub stats: Arc<Stats>,
    /// Where WebTransport listens and its certificate's hash, once it runs.
    pub webtransport: std::sync::RwLock<Option<WebTransportInfo>>,
}

/// What `GET /wt/cert-hash` serves.
#[derive(Debug, Clone, serde::Serialize)]
pub struct WebTransportInfo {
    /// `https://HOST:PORT/wt`.
    pub url: String,
    /// Always `sha-256`.
    pub algorithm: &'static str,
    /// Hex SHA-256 of the certificate in use.
    pub hash: String,
}

impl App {
    /// A gateway on the embedded in-memory broker.
    pub fn in_memory(config: Config) -> Arc<Self> {
        let stats = Arc::new(Stats::default());
        let hub = Arc::new(
            Hub::new(config.namespaces(), stats.clone()).with_dedupe_window(config.dedupe_window()),
        );
        let broker = Arc::new(broker::MemoryBroker::new(hub.clone()));
        Arc::new(Self {
            config,
            hub,
            broker,
            stats,
            webtransport: std::sync::RwLock::new(None),
        })
    }
}
