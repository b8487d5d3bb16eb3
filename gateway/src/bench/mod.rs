//! `livegate bench`: the same load over every protocol variant, side by side.
//!
//! For each variant (transport x encoding) a fresh gateway process is
//! started (or `--url` is used), N subscribers connect with the native
//! client, one publisher sends payloads of S bytes carrying their send time,
//! at rate R (or as fast as the gateway acknowledges) for T seconds. The
//! gateway's CPU, memory and written bytes come from its own `/proc` entry,
//! so the load generator sharing the machine is not counted against it.

pub mod peer;
mod procfs;
pub mod raw_ws;
pub mod report;

use std::ffi::OsStr;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures_util::stream::FuturesUnordered;
use futures_util::StreamExt;
use hdrhistogram::Histogram;
use livegate_client::{ClientBuilder, SubscriptionEvent};
use livegate_core::client::TransportKind;
use livegate_core::{Encoding, Payload};
use serde::Serialize;

use crate::process::GatewayProcess;

/// Why a benchmark cannot run.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// Parameters that make no sense.
    #[error("{0}")]
    Invalid(String),
    /// The gateway could not be started or reached.
    #[error("gateway: {0}")]
    Gateway(String),
    /// Not enough file descriptors.
    #[error("{needed} open files are needed but the limit is {limit}: raise it with `ulimit -n {needed}` (or lower --subscribers / --idle)")]
    FileLimit {
        /// Descriptors needed.
        needed: u64,
        /// The soft limit.
        limit: u64,
    },
    /// The client failed.
    #[error("client: {0}")]
    Client(#[from] livegate_client::ClientError),
}

/// What to run.
#[derive(Debug, Clone)]
pub struct BenchConfig {
    /// A running gateway to target; `None` starts one per variant.
    pub url: Option<String>,
    /// The `livegate` binary to start.
    pub binary: PathBuf,
    /// Subscribers per variant.
    pub subscribers: usize,
    /// Publications per second; 0 = as fast as acknowledged.
    pub rate: u64,
    /// Payload size in bytes.
    pub size: usize,
    /// Seconds of publishing per variant.
    pub duration: Duration,
    /// Transports to compare.
    pub transports: Vec<TransportKind>,
    /// Encodings to compare (one-way transports are JSON only).
    pub encodings: Vec<Encoding>,
    /// Idle WebSocket connections for the memory measurement (0 skips it).
    pub idle: usize,
    /// Print progress on stderr.
    pub progress: bool,
    /// Servers to drive in peer mode instead of the livegate matrix.
    pub peers: Vec<peer::PeerConfig>,
    /// The compression axis (WebSocket, JSON): when not empty, these
    /// variants run instead of the transport matrix.
    pub compressions: Vec<BenchCompression>,
    /// What the published payloads look like.
    pub payload: PayloadKind,
}

/// A point on the compression axis.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BenchCompression {
    /// No extension offered.
    Off,
    /// permessage-deflate offered and accepted.
    Deflate,
}

impl BenchCompression {
    /// Its name in flags and reports.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Off => "off",
            Self::Deflate => "deflate",
        }
    }
}

/// What the published payloads look like.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PayloadKind {
    /// A timestamp, a sequence number and padding (`x` repeated).
    Padded,
    /// A dashboard snapshot: hosts with a few figures each, of which a few
    /// change from one message to the next (what compression is for).
    Snapshot,
}

impl VariantResult {
    /// How the report names it: `ws/json`, or the peer's name.
    pub fn label(&self) -> String {
        if self.server == "livegate" {
            match self.compression {
                Some(c) => format!("{}/{}/{c}", self.transport, self.encoding),
                None => format!("{}/{}", self.transport, self.encoding),
            }
        } else {
            self.server.clone()
        }
    }
}

/// The result of one variant.
#[derive(Debug, Clone, Serialize)]
pub struct VariantResult {
    /// `livegate`, or the peer's name.
    pub server: String,
    /// `ws`, `sse`, `poll`, `wt`.
    pub transport: &'static str,
    /// `json` or `msgpack`.
    pub encoding: &'static str,
    /// On the compression axis: `off` or `deflate`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub compression: Option<&'static str>,
    /// Subscribers.
    pub subscribers: usize,
    /// Publications accepted.
    pub published: u64,
    /// Publications received, all subscribers together.
    pub delivered: u64,
    /// `published * subscribers - delivered`.
    pub lost: u64,
    /// Deliveries per second.
    pub delivered_per_sec: f64,
    /// Gateway CPU seconds spent in the run.
    pub gateway_cpu_secs: f64,
    /// Deliveries per gateway CPU-second.
    pub deliveries_per_cpu_sec: Option<f64>,
    /// Publish-to-receive latency percentiles, milliseconds.
    pub latency_ms: Latency,
    /// Bytes sent on loopback during the run per delivery: the frames with
    /// their TCP/UDP/IP headers and the protocol's own traffic (acks,
    /// publishes), measured on the interface.
    pub bytes_per_delivery: Option<f64>,
    /// Gateway resident memory with the subscribers connected, KiB.
    pub gateway_rss_kib: Option<u64>,
    /// Subscribers connected per second.
    pub connect_per_sec: f64,
    /// Connections the gateway cut as slow consumers.
    pub slow_consumers_dropped: u64,
}

/// Latency percentiles in milliseconds.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Latency {
    /// Median.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 99th percentile.
    pub p99: f64,
    /// Maximum.
    pub max: f64,
}

impl Latency {
    /// The percentiles of a histogram of microseconds.
    fn from_histogram(h: &Histogram<u64>) -> Self {
        let ms = |v: u64| v as f64 / 1000.0;
        Self {
            p50: ms(h.value_at_quantile(0.5)),
            p90: ms(h.value_at_quantile(0.9)),
            p99: ms(h.value_at_quantile(0.99)),
            max: ms(h.max()),
        }
    }
}

/// The whole report.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// The load.
    pub subscribers: usize,
    /// Publications per second asked for (0 = as fast as acknowledged).
    pub rate: u64,
    /// Payload bytes.
    pub size: usize,
    /// Seconds per variant.
    pub duration_secs: f64,
    /// Every variant.
    pub variants: Vec<VariantResult>,
    /// KiB of gateway memory per idle WebSocket connection.
    pub idle_kib_per_connection: Option<f64>,
    /// Idle connections measured.
    pub idle_connections: usize,
}

impl BenchConfig {
    fn check(&self) -> Result<(), BenchError> {
        if let Some(url) = &self.url {
            livegate_client::http::Endpoint::parse(url)?;
        }
        if self.subscribers == 0 {
            return Err(BenchError::Invalid(
                "--subscribers must be at least 1".into(),
            ));
        }
        if self.size < 64 {
            return Err(BenchError::Invalid(
                "--size must be at least 64 bytes (the payload carries a timestamp and a sequence number)".into(),
            ));
        }
        if self.duration.is_zero() {
            return Err(BenchError::Invalid("--duration must be above 0".into()));
        }
        if self.transports.is_empty() || self.encodings.is_empty() {
            return Err(BenchError::Invalid(
                "give at least one transport and one encoding".into(),
            ));
        }
        // Each subscriber holds one connection; over WebTransport up to
        // three (its UDP socket, discovery, the HTTP fallback). Plus the
        // publisher, idle connections and some slack. Variants run one
        // after another, so the largest one counts.
        let per_subscriber =
            if self.peers.is_empty() && self.transports.contains(&TransportKind::WebTransport) {
                3
            } else {
                1
            };
        let needed = (self.subscribers as u64) * per_subscriber + self.idle as u64 + 64;
        if let Some(limit) = procfs::open_files_limit() {
            if limit < needed {
                return Err(BenchError::FileLimit { needed, limit });
            }
        }
        Ok(())
    }
}

/// A gateway process started for one variant, stopped (by pid) on drop.
struct Spawned {
    process: GatewayProcess,
    url: String,
    // Dropped after the process (fields drop in order): the config is gone
    // only once the gateway that reads it is.
    _dir: TempDir,
}

struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn spawn_gateway(binary: &Path) -> Result<Spawned, BenchError> {
    let dir = TempDir(std::env::temp_dir().join(format!(
        "livegate-bench-{}-{}",
        std::process::id(),
        crate::hub::random_token(6)
    )));
    std::fs::create_dir_all(&dir.0).map_err(|e| BenchError::Gateway(e.to_string()))?;
    let config = dir.0.join("bench.toml");
    // Publications are acknowledged as fast as the hub takes them; queues and
    // history are sized so a subscriber that lags is not cut during the run.
    std::fs::write(
        &config,
        "queue_size = 65536\n[[namespaces]]\nprefix = \"bench.\"\nclient_publish = true\nhistory_size = 100000\n",
    )
    .map_err(|e| BenchError::Gateway(e.to_string()))?;
    let process = GatewayProcess::start(binary, [OsStr::new("--config"), config.as_os_str()])
        .map_err(|e| BenchError::Gateway(e.to_string()))?;
    Ok(Spawned {
        url: process.url(),
        process,
        _dir: dir,
    })
}

fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

/// A payload of about `size` bytes carrying its send time as `t`.
fn make_payload(kind: PayloadKind, seq: u64, size: usize) -> Payload {
    match kind {
        PayloadKind::Padded => payload(seq, size),
        PayloadKind::Snapshot => snapshot(seq, size),
    }
}

/// A dashboard snapshot of about `size` bytes: every host's figures, one
/// host in eight changing per message.
fn snapshot(seq: u64, size: usize) -> Payload {
    use std::fmt::Write as _;
    let mut text = format!("{{\"t\":{},\"s\":{seq},\"hosts\":[", now_us());
    let mut h = 0u64;
    loop {
        let moving = if h % 8 == seq % 8 { seq } else { 0 };
        let mut entry = String::new();
        let _ = write!(
            entry,
            "{{\"name\":\"node-{h:03}\",\"cpu\":{},\"mem\":{},\"disk\":{},\"status\":\"ok\",\"region\":\"eu-west-1\"}}",
            (h * 7 + moving) % 100,
            (40 + h * 3 + moving / 2) % 100,
            (h * 11) % 100
        );
        if h > 0 && text.len() + entry.len() + 3 > size {
            break;
        }
        if h > 0 {
            text.push(',');
        }
        text.push_str(&entry);
        h += 1;
    }
    text.push_str("]}");
    Payload::from_json(text)
        .unwrap_or_else(|_| Payload::from_json_value(&serde_json::json!({"s": seq})))
}

fn payload(seq: u64, size: usize) -> Payload {
    let head = format!("{{\"t\":{},\"s\":{seq},\"p\":\"", now_us());
    let pad = size.saturating_sub(head.len() + 2);
    let mut text = head;
    text.extend(std::iter::repeat_n('x', pad));
    text.push_str("\"}");
    Payload::from_json(text)
        .unwrap_or_else(|_| Payload::from_json_value(&serde_json::json!({"s": seq})))
}

async fn stats_of(url: &str) -> Option<serde_json::Value> {
    let endpoint = livegate_client::http::Endpoint::parse(url).ok()?;
    let req = hyper::Request::get(endpoint.path("/api/stats"))
        .header(hyper::header::HOST, endpoint.authority())
        .body(http_body_util::Full::new(bytes::Bytes::new()))
        .ok()?;
    let res = livegate_client::http::send(&endpoint, req).await.ok()?;
    let body = livegate_client::http::body_bytes(res, 1 << 20).await.ok()?;
    serde_json::from_slice(&body).ok()
}

/// Runs every variant and the idle-memory measurement.
pub async fn run(config: BenchConfig) -> Result<Report, BenchError> {
    config.check()?;
    // Peers and the compression axis run side by side in one report.
    let mut variants = Vec::new();
    let steps = config.peers.len() + config.compressions.len();
    for (i, p) in config.peers.iter().enumerate() {
        if config.progress {
            eprintln!("[{}/{steps}] {}", i + 1, p.name);
        }
        let mut r = peer::run_peer(p, &config).await?;
        r.server = p.name.clone();
        variants.push(r);
    }
    for (i, c) in config.compressions.iter().enumerate() {
        if config.progress {
            eprintln!(
                "[{}/{steps}] ws/json/{}",
                config.peers.len() + i + 1,
                c.as_str()
            );
        }
        variants.push(run_compression_variant(&config, *c).await?);
    }
    if steps > 0 {
        return Ok(Report {
            subscribers: config.subscribers,
            rate: config.rate,
            size: config.size,
            duration_secs: config.duration.as_secs_f64(),
            variants,
            idle_kib_per_connection: None,
            idle_connections: 0,
        });
    }
    let combos: Vec<(TransportKind, Encoding)> = config
        .transports
        .iter()
        .flat_map(|t| {
            config
                .encodings
                .iter()
                .filter(move |e| t.bidirectional() || **e == Encoding::Json)
                .map(move |e| (*t, *e))
        })
        .collect();
    for (i, (t, e)) in combos.iter().enumerate() {
        if config.progress {
            eprintln!(
                "[{}/{}] {}/{}",
                i + 1,
                combos.len(),
                t.as_str(),
                enc_name(*e)
            );
        }
        variants.push(run_variant(&config, *t, *e).await?);
    }
    let idle_kib_per_connection = if config.idle > 0 && config.url.is_none() {
        idle_memory(&config).await?
    } else {
        None
    };
    Ok(Report {
        subscribers: config.subscribers,
        rate: config.rate,
        size: config.size,
        duration_secs: config.duration.as_secs_f64(),
        variants,
        idle_kib_per_connection,
        idle_connections: config.idle,
    })
}

fn enc_name(e: Encoding) -> &'static str {
    match e {
        Encoding::Json => "json",
        Encoding::Msgpack => "msgpack",
    }
}

/// One point of the compression axis: plain WebSocket subscribers (with or
/// without the permessage-deflate offer) and HTTP publishes, as in peer mode.
async fn run_compression_variant(
    config: &BenchConfig,
    compression: BenchCompression,
) -> Result<VariantResult, BenchError> {
    let spawned = match &config.url {
        Some(_) => None,
        None => Some(spawn_gateway(&config.binary)?),
    };
    let url = config
        .url
        .clone()
        .or_else(|| spawned.as_ref().map(|s| s.url.clone()))
        .unwrap_or_default();
    if stats_of(&url).await.is_none() {
        return Err(BenchError::Gateway(format!(
            "{url} does not answer GET /api/stats: is a livegate gateway running there?"
        )));
    }
    let topic = format!("bench.{}", crate::hub::random_token(8));
    let peer = peer::PeerConfig {
        name: format!("ws/json/{}", compression.as_str()),
        ws_url: format!("{}/ws", url.replacen("http://", "ws://", 1)),
        subscribe_message: Some(format!(
            "{{\"type\":\"subscribe\",\"id\":1,\"topic\":\"{topic}\"}}"
        )),
        publish_url: format!("{url}/api/publish/{topic}"),
        pid: spawned.as_ref().map(|s| s.process.pid()),
        client: peer::PeerClient::Raw {
            deflate: compression == BenchCompression::Deflate,
        },
    };
    let mut r = peer::run_peer(&peer, config).await?;
    r.server = "livegate".into();
    r.compression = Some(compression.as_str());
    r.slow_consumers_dropped = stats_of(&url)
        .await
        .and_then(|v| v["slow_consumers_dropped"].as_u64())
        .unwrap_or(0);
    drop(spawned);
    Ok(r)
}

async fn run_variant(
    config: &BenchConfig,
    transport: TransportKind,
    encoding: Encoding,
) -> Result<VariantResult, BenchError> {
    let spawned = match &config.url {
        Some(_) => None,
        None => Some(spawn_gateway(&config.binary)?),
    };
    let url = config
        .url
        .clone()
        .or_else(|| spawned.as_ref().map(|s| s.url.clone()))
        .unwrap_or_default();
    if stats_of(&url).await.is_none() {
        return Err(BenchError::Gateway(format!(
            "{url} does not answer GET /api/stats: is a livegate gateway running there?"
        )));
    }
    let pid = spawned.as_ref().map(|s| s.process.pid());
    let topic = format!("bench.{}", crate::hub::random_token(8));

    // Subscribers.
    let connect_start = Instant::now();
    let received = Arc::new(AtomicU64::new(0));
    let histogram = Arc::new(Mutex::new(
        Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)
            .map_err(|e| BenchError::Invalid(e.to_string()))?,
    ));
    let mut clients = Vec::with_capacity(config.subscribers);
    let mut readers = Vec::with_capacity(config.subscribers);
    let mut ready = FuturesUnordered::new();
    for _ in 0..config.subscribers {
        let client = ClientBuilder::new(&url)
            .transports([transport])
            .encoding(encoding)
            .connect()?;
        let mut sub = client.subscribe(&topic).await?;
        let (received, histogram) = (received.clone(), histogram.clone());
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        readers.push(tokio::spawn(async move {
            let mut tx = Some(tx);
            let mut local = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).ok();
            while let Some(event) = sub.next().await {
                match event {
                    SubscriptionEvent::Subscribed(_) => {
                        if let Some(tx) = tx.take() {
                            let _ = tx.send(());
                        }
                    }
                    SubscriptionEvent::Publication(p) => {
                        let sent = p.data.to_json_value()["t"].as_u64().unwrap_or(0);
                        if let Some(h) = local.as_mut() {
                            let _ = h.record(now_us().saturating_sub(sent).max(1));
                        }
                        received.fetch_add(1, Ordering::Relaxed);
                    }
                    _ => {}
                }
            }
            if let (Some(h), Ok(mut all)) = (local, histogram.lock()) {
                let _ = all.add(h);
            }
        }));
        ready.push(rx);
        clients.push(client);
    }
    let all_ready = async { while ready.next().await.is_some() {} };
    if tokio::time::timeout(Duration::from_secs(60), all_ready)
        .await
        .is_err()
    {
        return Err(BenchError::Gateway(format!(
            "the {} subscribers did not all subscribe within 60 s over {}",
            config.subscribers,
            transport.as_str()
        )));
    }
    let connect_per_sec =
        config.subscribers as f64 / connect_start.elapsed().as_secs_f64().max(1e-6);
    let rss = pid.and_then(procfs::sample).map(|s| s.rss_kib);

    // Publishing.
    let publisher = ClientBuilder::new(&url)
        .transports([TransportKind::WebSocket])
        .encoding(Encoding::Msgpack)
        .connect()?;
    let before = pid.and_then(procfs::sample);
    let lo_before = procfs::loopback_tx_bytes();
    let start = Instant::now();
    let end = start + config.duration;
    let mut in_flight = FuturesUnordered::new();
    let mut published = 0u64;
    let ok = |r: Result<livegate_client::Ack, livegate_client::ClientError>| u64::from(r.is_ok());
    let mut seq = 0u64;
    let interval = (config.rate > 0).then(|| Duration::from_secs_f64(1.0 / config.rate as f64));
    let mut next = start;
    while Instant::now() < end {
        if let Some(iv) = interval {
            if Instant::now() < next {
                tokio::time::sleep_until(next.into()).await;
            }
            next += iv;
        } else if in_flight.len() >= 256 {
            if let Some(r) = in_flight.next().await {
                published += ok(r);
            }
            continue;
        }
        seq += 1;
        in_flight.push(publisher.publish(&topic, make_payload(config.payload, seq, config.size)));
        while let Some(Some(r)) = futures_util::FutureExt::now_or_never(in_flight.next()) {
            published += ok(r);
        }
        if config.progress && seq.is_multiple_of(1000) {
            eprint!(
                "\r  {:>5.1}s  published {seq:>9}  delivered {:>11}",
                start.elapsed().as_secs_f64(),
                received.load(Ordering::Relaxed)
            );
        }
    }
    while let Some(r) = in_flight.next().await {
        published += ok(r);
    }
    let elapsed = start.elapsed();
    // Let the last deliveries arrive (bounded).
    let expected = published * config.subscribers as u64;
    let drain_until = Instant::now() + Duration::from_secs(10);
    while received.load(Ordering::Relaxed) < expected && Instant::now() < drain_until {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let after = pid.and_then(procfs::sample);
    let lo_after = procfs::loopback_tx_bytes();
    if config.progress {
        eprintln!();
    }
    let slow = stats_of(&url)
        .await
        .and_then(|v| v["slow_consumers_dropped"].as_u64())
        .unwrap_or(0);
    publisher.close().await;
    for c in &clients {
        c.close().await;
    }
    for r in readers {
        let _ = tokio::time::timeout(Duration::from_secs(5), r).await;
    }
    let delivered = received.load(Ordering::Relaxed);
    let cpu = match (before, after) {
        (Some(b), Some(a)) => a.cpu_secs - b.cpu_secs,
        _ => 0.0,
    };
    let written = match (lo_before, lo_after) {
        (Some(b), Some(a)) if delivered > 0 => Some(a.saturating_sub(b) as f64 / delivered as f64),
        _ => None,
    };
    let latency = histogram
        .lock()
        .map(|h| Latency::from_histogram(&h))
        .unwrap_or_default();
    drop(spawned);
    Ok(VariantResult {
        server: "livegate".into(),
        transport: transport.as_str(),
        encoding: enc_name(encoding),
        compression: None,
        subscribers: config.subscribers,
        published,
        delivered,
        lost: expected.saturating_sub(delivered),
        delivered_per_sec: delivered as f64 / elapsed.as_secs_f64().max(1e-6),
        gateway_cpu_secs: cpu,
        deliveries_per_cpu_sec: (pid.is_some() && cpu > 0.0).then(|| delivered as f64 / cpu),
        latency_ms: latency,
        bytes_per_delivery: written,
        gateway_rss_kib: rss,
        connect_per_sec,
        slow_consumers_dropped: slow,
    })
}

/// Opens idle WebSocket connections and returns the gateway's memory growth
/// per connection.
async fn idle_memory(config: &BenchConfig) -> Result<Option<f64>, BenchError> {
    let spawned = spawn_gateway(&config.binary)?;
    let pid = spawned.process.pid();
    let url = format!("{}/ws", spawned.url.replacen("http://", "ws://", 1));
    // Let the gateway settle before the baseline.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let Some(before) = procfs::sample(pid) else {
        return Ok(None);
    };
    // The gateway listens on 127.0.0.1 (see `spawn_gateway`).
    let gateway: SocketAddr = spawned
        .url
        .strip_prefix("http://")
        .and_then(|a| a.parse().ok())
        .ok_or_else(|| BenchError::Gateway(format!("unexpected address {}", spawned.url)))?;
    let mut conns = Vec::with_capacity(config.idle);
    for i in 0..config.idle {
        let connected = idle_connection(&url, gateway, source_for(i)).await;
        match connected {
            Ok(ws) => conns.push(ws),
            Err(e) => {
                return Err(BenchError::Gateway(format!(
                    "idle connection {i} failed: {e}"
                )))
            }
        }
        if config.progress && i % 500 == 0 {
            eprint!("\r  idle connections {i:>6}");
        }
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let after = procfs::sample(pid);
    if config.progress {
        eprintln!();
    }
    drop(conns);
    Ok(after.map(|a| a.rss_kib.saturating_sub(before.rss_kib) as f64 / config.idle as f64))
}

/// Idle connections per loopback source address: one (source, destination)
/// pair has only the ephemeral ports (32768-60999 by default, about 28k).
const PER_SOURCE: usize = 25_000;

/// The source address of the `i`th idle connection: 127.0.0.1 for the first
/// [`PER_SOURCE`], then 127.0.0.2 and so on (all of 127/8 is local on Linux).
fn source_for(i: usize) -> Ipv4Addr {
    let n = u8::try_from(1 + i / PER_SOURCE).unwrap_or(u8::MAX);
    Ipv4Addr::new(127, 0, 0, n)
}

type IdleWs = tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>;

/// One idle WebSocket connection to `gateway` from `source`.
async fn idle_connection(
    url: &str,
    gateway: SocketAddr,
    source: Ipv4Addr,
) -> Result<IdleWs, String> {
    let socket = tokio::net::TcpSocket::new_v4().map_err(|e| e.to_string())?;
    socket
        .bind(SocketAddr::new(source.into(), 0))
        .map_err(|e| format!("binding {source}: {e}"))?;
    let tcp = socket.connect(gateway).await.map_err(|e| e.to_string())?;
    let (ws, _) = tokio_tungstenite::client_async(url, tcp)
        .await
        .map_err(|e| e.to_string())?;
    Ok(ws)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshots_are_about_the_size_asked_and_change_a_little() {
        let a = snapshot(1, 2048);
        let b = snapshot(2, 2048);
        let (a, b) = (a.as_bytes(), b.as_bytes());
        assert!((1800..=2048).contains(&a.len()), "{}", a.len());
        assert!(a.starts_with(b"{\"t\":"));
        let same = a.iter().zip(b).filter(|(x, y)| x == y).count();
        assert!(same * 10 > a.len() * 8, "{same} of {}", a.len());
    }

    #[test]
    fn idle_connections_spread_over_loopback_sources() {
        assert_eq!(source_for(0), Ipv4Addr::new(127, 0, 0, 1));
        assert_eq!(source_for(PER_SOURCE - 1), Ipv4Addr::new(127, 0, 0, 1));
        assert_eq!(source_for(PER_SOURCE), Ipv4Addr::new(127, 0, 0, 2));
        assert_eq!(source_for(3 * PER_SOURCE + 7), Ipv4Addr::new(127, 0, 0, 4));
    }
}
