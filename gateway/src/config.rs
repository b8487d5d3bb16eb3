//! Gateway settings: defaults, a TOML file, `LIVEGATE_*` variables and flags.
//!
//! Precedence, highest first: command-line flags, environment variables, the
//! `--config` file, the embedded defaults.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use livegate_core::topic::{Namespace, NamespaceOptions, Namespaces};
use serde::Deserialize;

use crate::broker::{DedupeWindow, DiskOptions, FsyncPolicy};
use crate::deflate::DeflateSettings;
use crate::service::jwt::{AuthConfig, JwtAuthenticator};
use crate::service::ApiKey;

/// Largest `dedupe_window_size`: the window is kept per topic.
const MAX_DEDUPE_WINDOW_SIZE: usize = 1_000_000;
/// Longest `dedupe_window_secs`.
const MAX_DEDUPE_WINDOW_SECS: u64 = 7 * 24 * 3600;

/// The data directory when none is given, relative to the working directory.
pub const DEFAULT_DATA_DIR: &str = "livegate-data";

/// Why the settings cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The config file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The config file is not valid TOML for these settings.
    #[error("invalid config file {path}: {source}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// What the parser said.
        source: Box<toml::de::Error>,
    },
    /// A value is out of range.
    #[error("invalid setting: {0}")]
    Invalid(String),
}

/// The settings of `livegate serve`, as a config file holds them.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// HTTP address (WebSocket, SSE, long-poll, API, live page).
    pub listen: SocketAddr,
    /// Key required to publish over HTTP, if set.
    pub api_key: Option<String>,
    /// Interval of server heartbeats.
    pub heartbeat_ms: u64,
    /// A WebSocket peer silent this long is dropped; an SSE write blocked this long too.
    pub idle_timeout_ms: u64,
    /// Outbound frames queued per connection before it counts as a slow consumer.
    pub queue_size: usize,
    /// Largest incoming WebSocket message or HTTP publish body.
    pub max_frame_bytes: usize,
    /// Topics one connection may subscribe to.
    pub max_subscriptions: usize,
    /// Default and longest wait of a long-poll request.
    pub poll_timeout_ms: u64,
    /// Whether to publish machine and gateway figures on `$sys.*`.
    pub system_publisher: bool,
    /// Interval of the system publisher.
    pub system_interval_ms: u64,
    /// Publish `msg_id`s remembered per topic (0 turns deduplication off).
    pub dedupe_window_size: usize,
    /// Seconds a publish `msg_id` is remembered (0 turns deduplication off).
    pub dedupe_window_secs: u64,
    /// Whether to compress for clients that ask (permessage-deflate on
    /// WebSocket, gzip on SSE and long-poll, the compressed flag on
    /// WebTransport).
    pub compression: bool,
    /// Frames shorter than this many bytes go uncompressed.
    pub compression_threshold: usize,
    /// Deflate level, 1 (fastest) to 9 (smallest).
    pub compression_level: u32,
    /// Whether to serve WebTransport.
    pub webtransport: bool,
    /// WebTransport UDP address; by default `listen`'s IP with port 4433,
    /// or port 0 (any free port) when `listen`'s port is 0.
    pub wt_listen: Option<SocketAddr>,
    /// PEM certificate chain for WebTransport; a self-signed ECDSA P-256
    /// certificate valid for 13 days (renewed on time) when absent.
    pub wt_cert: Option<PathBuf>,
    /// PEM private key matching `wt_cert`.
    pub wt_key: Option<PathBuf>,
    /// The WebTransport URL announced at `/wt/cert-hash` when clients reach
    /// it through another address (NAT, a UDP proxy); by default the bound one.
    pub wt_advertise: Option<String>,
    /// Options of topics no namespace matches.
    pub defaults: NamespaceOptions,
    /// Namespaces, matched by longest prefix.
    pub namespaces: Vec<Namespace>,
    /// Connection tokens (JWT); off unless a key is given.
    pub auth: AuthConfig,
    /// Keep history in memory only (lost at exit) instead of the log on disk.
    pub memory: bool,
    /// Where the log is kept (relative paths from the working directory).
    pub data_dir: PathBuf,
    /// 0: sync the log before acknowledging each publish; otherwise at most
    /// this many milliseconds after a write.
    pub fsync_interval_ms: u64,
    /// Size at which a log segment is sealed and the next started.
    pub segment_bytes: u64,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            api_key: None,
            heartbeat_ms: 25_000,
            idle_timeout_ms: 60_000,
            queue_size: 1024,
            max_frame_bytes: 1 << 20,
            max_subscriptions: 256,
            poll_timeout_ms: 25_000,
            system_publisher: true,
            system_interval_ms: 1000,
            dedupe_window_size: 1000,
            dedupe_window_secs: 300,
            compression: true,
            compression_threshold: 256,
            compression_level: 6,
            webtransport: true,
            wt_listen: None,
            wt_cert: None,
            wt_key: None,
            wt_advertise: None,
            defaults: NamespaceOptions::default(),
            namespaces: Vec::new(),
            auth: AuthConfig::default(),
            memory: false,
            data_dir: PathBuf::from(DEFAULT_DATA_DIR),
            fsync_interval_ms: 0,
            segment_bytes: 64 << 20,
        }
    }
}

impl Config {
    /// Reads a TOML config file; keys not given keep their defaults.
    pub fn from_file(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        toml::from_str(&text).map_err(|source| ConfigError::Parse {
            path: path.to_owned(),
            source: Box::new(source),
        })
    }

    /// Checks ranges and relations between values.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |m: &str| Err(ConfigError::Invalid(m.to_owned()));
        if self.heartbeat_ms < 50 {
            return bad("heartbeat_ms must be at least 50");
        }
        if self.idle_timeout_ms <= self.heartbeat_ms {
            return bad("idle_timeout_ms must be greater than heartbeat_ms");
        }
        if self.queue_size == 0 {
            return bad("queue_size must be at least 1");
        }
        if self.max_frame_bytes < 256 {
            return bad("max_frame_bytes must be at least 256");
        }
        if self.max_subscriptions == 0 {
            return bad("max_subscriptions must be at least 1");
        }
        if !(100..=60_000).contains(&self.poll_timeout_ms) {
            return bad("poll_timeout_ms must be between 100 and 60000");
        }
        if self.system_interval_ms < 100 {
            return bad("system_interval_ms must be at least 100");
        }
        if self.dedupe_window_size > MAX_DEDUPE_WINDOW_SIZE {
            return bad("dedupe_window_size must be at most 1000000");
        }
        if self.dedupe_window_secs > MAX_DEDUPE_WINDOW_SECS {
            return bad("dedupe_window_secs must be at most 604800 (a week)");
        }
        if !(1..=9).contains(&self.compression_level) {
            return bad("compression_level must be between 1 and 9");
        }
        if let Some(url) = &self.wt_advertise {
            if !url.starts_with("https://") {
                return bad("wt_advertise must be an https:// URL");
            }
        }
        if self.wt_cert.is_some() != self.wt_key.is_some() {
            return bad("wt_cert and wt_key go together: give both or neither");
        }
        if self.fsync_interval_ms > 60_000 {
            return bad(
                "fsync_interval_ms must be at most 60000 (0 syncs before every acknowledgement)",
            );
        }
        if !(4096..=1 << 30).contains(&self.segment_bytes) {
            return bad("segment_bytes must be between 4096 and 1073741824");
        }
        if self.data_dir.as_os_str().is_empty() {
            return bad("data_dir must not be empty");
        }
        if matches!(self.api_key.as_deref(), Some("")) {
            return bad("api_key must not be empty (leave it unset to disable the check)");
        }
        if self.auth.enabled() {
            JwtAuthenticator::new(&self.auth, ApiKey::default())
                .map_err(|e| ConfigError::Invalid(e.to_string()))?;
        }
        Ok(())
    }

    /// The namespaces with their defaults, ready for the hub.
    pub fn namespaces(&self) -> Namespaces {
        Namespaces::new(self.namespaces.clone(), self.defaults.clone())
    }

    /// How long each topic remembers publish `msg_id`s.
    pub fn dedupe_window(&self) -> DedupeWindow {
        DedupeWindow {
            max_ids: self.dedupe_window_size,
            max_age_ms: self.dedupe_window_secs.saturating_mul(1000),
        }
    }

    /// Where and how the log on disk is kept.
    pub fn disk(&self) -> DiskOptions {
        DiskOptions {
            dir: self.data_dir.clone(),
            fsync: match self.fsync_interval_ms {
                0 => FsyncPolicy::Always,
                ms => FsyncPolicy::Interval(Duration::from_millis(ms)),
            },
            segment_bytes: self.segment_bytes,
        }
    }

    /// Where WebTransport listens (see [`Config::wt_listen`]).
    pub fn wt_addr(&self) -> SocketAddr {
        self.wt_listen.unwrap_or_else(|| {
            let port = if self.listen.port() == 0 { 0 } else { 4433 };
            SocketAddr::new(self.listen.ip(), port)
        })
    }

    /// The shared deflate's settings, or `None` when compression is off.
    pub fn deflate(&self) -> Option<DeflateSettings> {
        self.compression.then_some(DeflateSettings {
            level: self.compression_level,
            threshold: self.compression_threshold,
        })
    }

    /// Heartbeat interval.
    pub fn heartbeat(&self) -> Duration {
        Duration::from_millis(self.heartbeat_ms)
    }

    /// Idle timeout.
    pub fn idle_timeout(&self) -> Duration {
        Duration::from_millis(self.idle_timeout_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_overrides_defaults_and_keeps_the_rest() {
        let cfg: Config = toml::from_str(
            r#"
            listen = "127.0.0.1:9000"
            queue_size = 8
            [defaults]
            history_size = 50
            [[namespaces]]
            prefix = "chat."
            client_publish = true
            history_size = 5
            "#,
        )
        .unwrap();
        assert_eq!(cfg.listen.port(), 9000);
        assert_eq!(cfg.queue_size, 8);
        assert_eq!(cfg.heartbeat_ms, 25_000);
        assert_eq!(cfg.dedupe_window(), DedupeWindow::default());
        let ns = cfg.namespaces();
        assert!(ns.options_for("chat.x").client_publish);
        assert_eq!(ns.options_for("chat.x").history_size, 5);
        assert_eq!(ns.options_for("other").history_size, 50);
        assert!(cfg.validate().is_ok());
    }

    #[test]
    fn unknown_keys_and_bad_values_are_refused() {
        assert!(toml::from_str::<Config>("lisen = \"x\"").is_err());
        let cfg = Config {
            idle_timeout_ms: 100,
            heartbeat_ms: 200,
            ..Config::default()
        };
        assert!(cfg.validate().is_err());
    }

    #[test]
    fn compression_is_on_by_default_and_can_be_turned_off() {
        assert_eq!(
            Config::default().deflate(),
            Some(DeflateSettings::default())
        );
        let cfg: Config = toml::from_str(
            "compression = false\ncompression_threshold = 10\ncompression_level = 1",
        )
        .unwrap();
        assert_eq!(cfg.deflate(), None);
        assert_eq!(cfg.compression_threshold, 10);
        let bad = Config {
            compression_level: 10,
            ..Config::default()
        };
        assert!(bad.validate().is_err());
    }

    #[test]
    fn log_settings() {
        let cfg = Config::default();
        assert!(!cfg.memory);
        assert_eq!(cfg.disk().dir, PathBuf::from("livegate-data"));
        assert_eq!(cfg.disk().fsync, FsyncPolicy::Always);
        let cfg: Config = toml::from_str(
            "data_dir = \"/var/lib/livegate\"\nfsync_interval_ms = 20\n[defaults]\nhistory_max_bytes = 1000",
        )
        .unwrap();
        assert_eq!(cfg.disk().dir, PathBuf::from("/var/lib/livegate"));
        assert_eq!(
            cfg.disk().fsync,
            FsyncPolicy::Interval(Duration::from_millis(20))
        );
        assert_eq!(cfg.namespaces().bounds_for("x").max_bytes, 1000);
        assert!(cfg.validate().is_ok());
        let tiny = Config {
            segment_bytes: 10,
            ..Config::default()
        };
        assert!(tiny.validate().is_err());
    }

    #[test]
    fn dedupe_window_settings() {
        let cfg: Config =
            toml::from_str("dedupe_window_size = 2\ndedupe_window_secs = 10").unwrap();
        assert_eq!(
            cfg.dedupe_window(),
            DedupeWindow {
                max_ids: 2,
                max_age_ms: 10_000
            }
        );
        assert!(cfg.validate().is_ok());
        let off = Config {
            dedupe_window_size: 0,
            ..Config::default()
        };
        assert!(off.validate().is_ok());
        let huge = Config {
            dedupe_window_size: MAX_DEDUPE_WINDOW_SIZE + 1,
            ..Config::default()
        };
        assert!(huge.validate().is_err());
    }
}
