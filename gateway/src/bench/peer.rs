//! Peer mode: the same load against any WebSocket broadcast server (Nchan, a
//! Node `ws` server, FastAPI's ConnectionManager pattern, or livegate itself
//! through its plain interfaces), so they are compared on equal terms:
//! subscribers are plain WebSocket clients, the publisher POSTs each payload
//! over HTTP keep-alive connections, the server's CPU and memory come from
//! `/proc/<pid>`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use hdrhistogram::Histogram;
use http_body_util::Full;
use hyper_util::rt::TokioIo;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;

use super::raw_ws::RawWs;
use super::{make_payload, now_us, procfs, BenchConfig, BenchError, Latency, VariantResult};

/// A server to drive.
#[derive(Debug, Clone)]
pub struct PeerConfig {
    /// Its name in the report.
    pub name: String,
    /// WebSocket URL subscribers connect to.
    pub ws_url: String,
    /// A text message each subscriber sends after connecting (livegate's
    /// `subscribe` frame); none for servers that subscribe by URL.
    pub subscribe_message: Option<String>,
    /// URL the publisher POSTs each payload to.
    pub publish_url: String,
    /// The server's process, for CPU and memory.
    pub pid: Option<u32>,
    /// What the subscribers are.
    pub client: PeerClient,
}

/// The subscribers' WebSocket client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PeerClient {
    /// tokio-tungstenite (no extensions).
    Tungstenite,
    /// [`super::raw_ws::RawWs`], offering permessage-deflate when `deflate`.
    Raw {
        /// Offer (and require) permessage-deflate.
        deflate: bool,
    },
}

/// Pulls the benchmark payload's send time out of a message: the message
/// itself, or the `data` of a livegate `publication` frame.
///
/// A scan rather than a JSON parse: with thousands of subscribers in one
/// process, parsing every message into a `serde_json::Value` made the load
/// generator, not the server, set the latency. livegate frames start with
/// their `type` and only publications carry a payload; the payload's first
/// key is `t` (see `payload`), and no other key of a frame is `t`.
fn sent_at(text: &str) -> Option<u64> {
    if let Some(rest) = text.strip_prefix(r#"{"type":""#) {
        if !rest.starts_with(r#"publication""#) {
            return None;
        }
    }
    let at = text.find(r#""t":"#)? + 4;
    let digits = text[at..].bytes().take_while(u8::is_ascii_digit).count();
    text[at..at + digits].parse().ok()
}

async fn keep_alive_sender(
    url: &hyper::Uri,
) -> Result<hyper::client::conn::http1::SendRequest<Full<Bytes>>, String> {
    let authority = url
        .authority()
        .ok_or("publish URL has no host")?
        .as_str()
        .to_owned();
    let tcp = tokio::net::TcpStream::connect(&authority)
        .await
        .map_err(|e| format!("connect {authority}: {e}"))?;
    let _ = tcp.set_nodelay(true);
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(sender)
}

/// Runs the load against one peer.
pub async fn run_peer(
    peer: &PeerConfig,
    config: &BenchConfig,
) -> Result<VariantResult, BenchError> {
    let (subscribers, rate, size, duration) = (
        config.subscribers,
        config.rate,
        config.size,
        config.duration,
    );
    let payload_kind = config.payload;
    let publish: hyper::Uri = peer
        .publish_url
        .parse()
        .map_err(|e| BenchError::Invalid(format!("--peer-publish: {e}")))?;
    let received = Arc::new(AtomicU64::new(0));
    let histogram = Arc::new(Mutex::new(
        Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)
            .map_err(|e| BenchError::Invalid(e.to_string()))?,
    ));
    let connect_start = Instant::now();
    let mut readers = Vec::with_capacity(subscribers);
    let mut locals = Vec::with_capacity(subscribers);
    for i in 0..subscribers {
        // Each reader's own histogram (an uncontended lock): readers are
        // stopped by abort, so they cannot merge on their way out.
        let local = Arc::new(Mutex::new(
            Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)
                .map_err(|e| BenchError::Invalid(e.to_string()))?,
        ));
        locals.push(local.clone());
        let received = received.clone();
        let count = move |text: &str| {
            if let Some(sent) = sent_at(text) {
                if let Ok(mut h) = local.lock() {
                    let _ = h.record(now_us().saturating_sub(sent).max(1));
                }
                received.fetch_add(1, Ordering::Relaxed);
            }
        };
        let failed = |e: String| BenchError::Gateway(format!("{}: subscriber {i}: {e}", peer.name));
        match peer.client {
            PeerClient::Tungstenite => {
                // A small read buffer: the default (128 KiB) times thousands of
                // subscribers only spreads the load generator over more memory.
                let config = WebSocketConfig::default().read_buffer_size(4096);
                let (mut ws, _) = tokio_tungstenite::connect_async_with_config(
                    peer.ws_url.as_str(),
                    Some(config),
                    false,
                )
                .await
                .map_err(|e| failed(e.to_string()))?;
                if let Some(m) = &peer.subscribe_message {
                    ws.send(Message::text(m.clone()))
                        .await
                        .map_err(|e| BenchError::Gateway(e.to_string()))?;
                }
                readers.push(tokio::spawn(async move {
                    while let Some(Ok(msg)) = ws.next().await {
                        match &msg {
                            Message::Text(t) => count(t.as_str()),
                            Message::Binary(b) => count(std::str::from_utf8(b).unwrap_or("")),
                            Message::Close(_) => break,
                            _ => {}
                        }
                    }
                }));
            }
            PeerClient::Raw { deflate } => {
                let mut ws = RawWs::connect(&peer.ws_url, deflate)
                    .await
                    .map_err(failed)?;
                if let Some(m) = &peer.subscribe_message {
                    ws.send_text(m).await.map_err(failed)?;
                }
                readers.push(tokio::spawn(async move {
                    let mut buf = Vec::new();
                    while let Ok(true) = ws.next_message(&mut buf).await {
                        count(std::str::from_utf8(&buf).unwrap_or(""));
                    }
                }));
            }
        }
    }
    let connect_per_sec = subscribers as f64 / connect_start.elapsed().as_secs_f64().max(1e-6);
    // Subscriptions by URL have no answer to wait for: give them a moment.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let rss = peer.pid.and_then(procfs::sample).map(|s| s.rss_kib);
    let before = peer.pid.and_then(procfs::sample);
    let lo_before = procfs::loopback_tx_bytes();

    // Publishers: 8 keep-alive connections, each one request at a time.
    let start = Instant::now();
    let end = start + duration;
    let seq = Arc::new(AtomicU64::new(0));
    let published = Arc::new(AtomicU64::new(0));
    let per_conn_interval = (rate > 0).then(|| Duration::from_secs_f64(8.0 / rate as f64));
    let mut publishers = Vec::new();
    for _ in 0..8 {
        let mut sender = keep_alive_sender(&publish)
            .await
            .map_err(BenchError::Gateway)?;
        let (publish, seq, published) = (publish.clone(), seq.clone(), published.clone());
        publishers.push(tokio::spawn(async move {
            let mut next = Instant::now();
            while Instant::now() < end {
                if let Some(iv) = per_conn_interval {
                    tokio::time::sleep_until(next.into()).await;
                    next += iv;
                }
                let n = seq.fetch_add(1, Ordering::Relaxed) + 1;
                let body = Bytes::copy_from_slice(make_payload(payload_kind, n, size).as_bytes());
                // Origin-form target ("/pub"): not every server takes an absolute URI.
                let target = publish.path_and_query().map_or("/", |p| p.as_str());
                let Ok(req) = hyper::Request::post(target)
                    .header(
                        hyper::header::HOST,
                        publish.authority().map_or("", |a| a.as_str()),
                    )
                    .header(hyper::header::CONTENT_TYPE, "application/json")
                    .body(Full::new(body))
                else {
                    return;
                };
                if sender.ready().await.is_err() {
                    return;
                }
                match sender.send_request(req).await {
                    Ok(res) if res.status().is_success() => {
                        let _ = http_body_util::BodyExt::collect(res.into_body()).await;
                        published.fetch_add(1, Ordering::Relaxed);
                    }
                    _ => return,
                }
            }
        }));
    }
    for p in publishers {
        let _ = p.await;
    }
    let elapsed = start.elapsed();
    let published = published.load(Ordering::Relaxed);
    let expected = published * subscribers as u64;
    let drain_until = Instant::now() + Duration::from_secs(10);
    while received.load(Ordering::Relaxed) < expected && Instant::now() < drain_until {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let after = peer.pid.and_then(procfs::sample);
    let lo_after = procfs::loopback_tx_bytes();
    for r in &readers {
        r.abort();
    }
    for r in readers {
        let _ = r.await;
    }
    if let Ok(mut all) = histogram.lock() {
        for l in &locals {
            if let Ok(h) = l.lock() {
                let _ = all.add(&*h);
            }
        }
    }
    let delivered = received.load(Ordering::Relaxed);
    let cpu = match (before, after) {
        (Some(b), Some(a)) => a.cpu_secs - b.cpu_secs,
        _ => 0.0,
    };
    let latency = histogram
        .lock()
        .map(|h| Latency::from_histogram(&h))
        .unwrap_or_default();
    Ok(VariantResult {
        server: peer.name.clone(),
        transport: "ws",
        encoding: "json",
        compression: None,
        subscribers,
        published,
        delivered,
        lost: expected.saturating_sub(delivered),
        delivered_per_sec: delivered as f64 / elapsed.as_secs_f64().max(1e-6),
        gateway_cpu_secs: cpu,
        deliveries_per_cpu_sec: (cpu > 0.0).then(|| delivered as f64 / cpu),
        latency_ms: latency,
        bytes_per_delivery: match (lo_before, lo_after) {
            (Some(b), Some(a)) if delivered > 0 => {
                Some(a.saturating_sub(b) as f64 / delivered as f64)
            }
            _ => None,
        },
        gateway_rss_kib: rss,
        connect_per_sec,
        slow_consumers_dropped: 0,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_send_time_from_raw_payloads_and_livegate_frames() {
        assert_eq!(sent_at(r#"{"t":12,"s":1,"p":"x"}"#), Some(12));
        assert_eq!(
            sent_at(r#"{"type":"publication","topic":"a","data":{"t":34}}"#),
            Some(34)
        );
        assert_eq!(sent_at(r#"{"type":"subscribed","topic":"a"}"#), None);
        assert_eq!(sent_at("not json"), None);
        assert_eq!(sent_at(r#"{"t":"x"}"#), None);
        // What the gateway really sends.
        let data = super::super::payload(7, 64);
        let t = data.to_json_value()["t"].as_u64();
        let frame = livegate_core::Encoding::Json.encode_publication(
            &livegate_core::protocol::Publication {
                topic: "bench.t".into(),
                epoch: "e".into(),
                offset: 1,
                event: Some("t".into()),
                data,
                time_ms: 1,
            },
        );
        assert!(t.is_some());
        assert_eq!(std::str::from_utf8(&frame).ok().and_then(sent_at), t);
        // A replay inside `subscribed` is not a delivery.
        assert_eq!(
            sent_at(
                r#"{"type":"subscribed","topic":"a","publications":[{"type":"publication","data":{"t":5}}]}"#
            ),
            None
        );
    }
}
