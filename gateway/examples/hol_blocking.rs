//! Measures what WebTransport's stream-per-topic mapping buys: the latency of
//! a small, frequent topic while a heavy topic sends large publications on
//! the same connection, over WebSocket (one ordered stream for everything)
//! and over WebTransport (one stream per topic).
//!
//! Run with `cargo run --release -p livegate --example hol_blocking`
//! (it starts its own gateway on loopback and stops it by pid);
//! `HOL_BIG_EVERY_MS` sets how often the heavy topic publishes (default 200).

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures_util::StreamExt;
use livegate::client::{ClientBuilder, SubscriptionEvent};
use livegate_core::client::TransportKind;
use livegate_core::Payload;

fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

async fn run(
    url: &str,
    transport: TransportKind,
    seconds: u64,
    big_every_ms: u64,
) -> anyhow::Result<Vec<u64>> {
    let client = ClientBuilder::new(url).transports([transport]).connect()?;
    let mut small = client.subscribe("hol.small").await?;
    let mut big = client.subscribe("hol.big").await?;
    // Wait until both are live.
    for s in [&mut small, &mut big] {
        while let Some(e) = s.next().await {
            if matches!(e, SubscriptionEvent::Subscribed(_)) {
                break;
            }
        }
    }
    tokio::spawn(async move { while big.next().await.is_some() {} });
    let publisher = livegate::client::ClientBuilder::new(url)
        .transports([TransportKind::Sse])
        .connect()?;
    let blob = Payload::from_json_value(&serde_json::Value::String("x".repeat(2 << 20)));
    let end = Instant::now() + Duration::from_secs(seconds);
    let heavy = {
        let publisher = publisher.clone();
        let blob = blob.clone();
        tokio::spawn(async move {
            while Instant::now() < end {
                let _ = publisher.publish("hol.big", blob.clone()).await;
                tokio::time::sleep(Duration::from_millis(big_every_ms)).await;
            }
        })
    };
    let mut latencies = Vec::new();
    let reader = tokio::spawn(async move {
        let mut out = Vec::new();
        while let Some(e) = small.next().await {
            if let SubscriptionEvent::Publication(p) = e {
                let sent = p.data.to_json_value()["t"].as_u64().unwrap_or(0);
                out.push(now_us().saturating_sub(sent));
                if p.data.to_json_value()["last"].as_bool() == Some(true) {
                    break;
                }
            }
        }
        out
    });
    let mut n = 0;
    while Instant::now() < end {
        n += 1;
        let data = serde_json::json!({"t": now_us(), "n": n});
        publisher
            .publish("hol.small", Payload::from_json_value(&data))
            .await?;
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let _ = heavy.await;
    publisher
        .publish(
            "hol.small",
            Payload::from_json_value(&serde_json::json!({"t": now_us(), "last": true})),
        )
        .await?;
    if let Ok(Ok(l)) = tokio::time::timeout(Duration::from_secs(30), reader).await {
        latencies = l;
    }
    client.close().await;
    publisher.close().await;
    latencies.sort_unstable();
    Ok(latencies)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let bin = std::env::current_exe()?
        .parent()
        .and_then(|p| p.parent())
        .map(|p| p.join("livegate"))
        .ok_or_else(|| anyhow::anyhow!("cannot find the livegate binary next to this example"))?;
    let mut gw = Command::new(bin)
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--no-system-publisher",
            "--log",
            "warn",
            "--memory",
            "--max-frame-bytes",
            "8388608",
        ])
        .stdout(Stdio::piped())
        .spawn()?;
    let mut line = String::new();
    BufReader::new(
        gw.stdout
            .take()
            .ok_or_else(|| anyhow::anyhow!("no stdout"))?,
    )
    .read_line(&mut line)?;
    let url = line
        .trim()
        .trim_start_matches("livegate listening on ")
        .to_owned();
    // HOL_BIG_EVERY_MS: how often the heavy topic publishes 2 MiB (default 200).
    let big_every_ms = std::env::var("HOL_BIG_EVERY_MS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200);
    println!("small topic every 5 ms while a 2 MiB publication goes out every {big_every_ms} ms, 5 s each:");
    println!(
        "{:<14} {:>8} {:>10} {:>10} {:>10}",
        "transport", "samples", "p50 ms", "p99 ms", "max ms"
    );
    for t in [TransportKind::WebSocket, TransportKind::WebTransport] {
        let l = run(&url, t, 5, big_every_ms).await?;
        println!(
            "{:<14} {:>8} {:>10.2} {:>10.2} {:>10.2}",
            t.as_str(),
            l.len(),
            percentile(&l, 0.5) as f64 / 1000.0,
            percentile(&l, 0.99) as f64 / 1000.0,
            l.last().copied().unwrap_or(0) as f64 / 1000.0
        );
    }
    let _ = Command::new("kill")
        .args(["-TERM", &gw.id().to_string()])
        .status();
    let _ = gw.wait();
    Ok(())
}
