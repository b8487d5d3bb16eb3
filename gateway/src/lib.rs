//! The livegate gateway: transports and HTTP API over one service, which
//! runs on a broker (the log) and a hub (subscribers, fan-out), behind
//! `livegate serve`. See `docs/architecture.md` for how the layers fit.
#![forbid(unsafe_code)]

pub mod bench;
pub mod broker;
pub mod close;
pub mod config;
pub mod deflate;
pub mod error;
pub mod http;
pub mod hub;
pub mod process;
pub mod routes;
pub mod server;
pub mod service;
pub mod stats;
pub mod system;
pub mod token;
pub mod transport;
pub mod wire;

use std::sync::Arc;

use broker::{Broker, DiskBroker, MemoryBroker, Sink};
use config::Config;
use hub::Hub;
use service::jwt::JwtAuthenticator;
use service::{ApiKey, Limits, Service};
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
    /// Every operation: publish, subscribe, history, stats.
    pub service: Arc<Service>,
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

/// The hub is where brokers deliver.
impl Sink for Hub {
    fn deliver(&self, publication: wire::SharedPub) {
        Hub::deliver(self, publication);
    }
}

/// What a broker is built from: the hub to feed and the stats to count in.
#[derive(Debug, Clone)]
pub struct BrokerParts {
    /// Where sequenced publications go.
    pub hub: Arc<Hub>,
    /// The gateway's figures.
    pub stats: Arc<Stats>,
}

impl BrokerParts {
    /// The embedded memory broker for `config`.
    pub fn memory(&self, config: &Config) -> MemoryBroker {
        MemoryBroker::new(
            config.namespaces(),
            config.dedupe_window(),
            self.stats.clone(),
            self.hub.clone(),
        )
    }

    /// The embedded broker on the log in `config`'s data directory.
    pub fn disk(&self, config: &Config) -> Result<DiskBroker, broker::disk::DiskError> {
        DiskBroker::open(
            &config.disk(),
            config.namespaces(),
            config.dedupe_window(),
            self.stats.clone(),
            self.hub.clone(),
        )
    }
}

impl App {
    /// A gateway on the broker `config` asks for: the log on disk in its
    /// data directory, or memory with `memory = true`.
    pub fn open(config: Config) -> Result<Arc<Self>, broker::disk::DiskError> {
        if config.memory {
            return Ok(Self::in_memory(config));
        }
        Self::try_with_broker(config, |parts, config| {
            Ok(Arc::new(parts.disk(config)?) as Arc<dyn Broker>)
        })
    }

    /// A gateway on the embedded in-memory broker.
    pub fn in_memory(config: Config) -> Arc<Self> {
        Self::with_broker(config, |parts, config| Arc::new(parts.memory(config)))
    }

    /// A gateway on the broker `make` builds.
    pub fn with_broker(
        config: Config,
        make: impl FnOnce(&BrokerParts, &Config) -> Arc<dyn Broker>,
    ) -> Arc<Self> {
        match Self::try_with_broker(config, |p, c| Ok::<_, std::convert::Infallible>(make(p, c))) {
            Ok(app) => app,
            Err(never) => match never {},
        }
    }

    /// A gateway on the broker `make` builds, or why it could not.
    pub fn try_with_broker<E>(
        config: Config,
        make: impl FnOnce(&BrokerParts, &Config) -> Result<Arc<dyn Broker>, E>,
    ) -> Result<Arc<Self>, E> {
        let stats = Arc::new(Stats::default());
        let parts = BrokerParts {
            hub: Arc::new(Hub::new(stats.clone())),
            stats: stats.clone(),
        };
        let broker = make(&parts, &config)?;
        let limits = Limits {
            max_subscriptions: config.max_subscriptions,
            queue_size: config.queue_size,
            heartbeat_ms: config.heartbeat_ms,
        };
        let service = Service::new(
            parts.hub,
            broker,
            stats,
            config.namespaces(),
            JwtAuthenticator::from_config(&config.auth, ApiKey::new(config.api_key.clone())),
            limits,
        );
        Ok(Arc::new(Self {
            config,
            service: Arc::new(service),
            webtransport: std::sync::RwLock::new(None),
        }))
    }
}
