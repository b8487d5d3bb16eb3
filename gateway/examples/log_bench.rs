//! Measures the brokers behind `livegate serve`: publish throughput and
//! acknowledgement latency of the memory broker and of the log on disk per
//! fsync policy, then the disk broker's start-up time over a large log.
//! A benchmark, not a test: it prints a Markdown table.
//!
//! Run with `cargo run --release -p livegate --example log_bench -- DIR`
//! (DIR: a scratch directory on the disk to measure, removed at the end).
//! `LOG_BENCH_SECS` (default 3) sets the time per run, `LOG_BENCH_STARTUP_MIB`
//! (default 1024) the size of the log whose start-up is timed.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use livegate::broker::{
    Broker, DedupeWindow, DiskBroker, DiskOptions, FsyncPolicy, MemoryBroker, PublishRequest, Sink,
};
use livegate::stats::Stats;
use livegate::wire::SharedPub;
use livegate_core::topic::{NamespaceOptions, Namespaces};
use livegate_core::Payload;

struct Discard;

impl Sink for Discard {
    fn deliver(&self, _: SharedPub) {}
}

fn namespaces(history_size: usize) -> Namespaces {
    Namespaces::new(
        Vec::new(),
        NamespaceOptions {
            history_size,
            history_ttl_secs: 24 * 3600,
            ..NamespaceOptions::default()
        },
    )
}

fn disk(dir: &Path, fsync: FsyncPolicy, history_size: usize) -> anyhow::Result<DiskBroker> {
    let options = DiskOptions {
        dir: dir.to_owned(),
        fsync,
        segment_bytes: 64 << 20,
    };
    Ok(DiskBroker::open(
        &options,
        namespaces(history_size),
        DedupeWindow::default(),
        Arc::new(Stats::default()),
        Arc::new(Discard),
    )?)
}

fn payload(bytes: usize) -> Payload {
    Payload::from_json(format!(
        "{{\"v\":\"{}\"}}",
        "x".repeat(bytes.saturating_sub(8))
    ))
    .unwrap_or_else(|_| Payload::binary(vec![0u8; bytes]))
}

/// `publishers` tasks, each publishing and awaiting its ack in a loop for
/// `secs`: publishes per second and the ack latency histogram (µs).
async fn load(
    broker: Arc<dyn Broker>,
    publishers: usize,
    secs: u64,
) -> anyhow::Result<(f64, Histogram<u64>)> {
    let until = Instant::now() + Duration::from_secs(secs);
    let data = payload(200);
    let tasks: Vec<_> = (0..publishers)
        .map(|i| {
            let broker = broker.clone();
            let data = data.clone();
            tokio::spawn(async move {
                let topic = format!("bench.{}", i % 16);
                let mut h = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?;
                while Instant::now() < until {
                    let t0 = Instant::now();
                    let req = PublishRequest {
                        topic: &topic,
                        event: None,
                        data: data.clone(),
                        msg_id: None,
                    };
                    broker.publish(req).await?;
                    h.record(t0.elapsed().as_micros().max(1) as u64)?;
                }
                anyhow::Ok(h)
            })
        })
        .collect();
    let started = Instant::now();
    let mut all = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?;
    for t in tasks {
        all.add(t.await??)?;
    }
    Ok((all.len() as f64 / started.elapsed().as_secs_f64(), all))
}

fn row(name: &str, publishers: usize, rate: f64, h: &Histogram<u64>) {
    println!(
        "| {name} | {publishers} | {rate:.0} | {} | {} | {} |",
        h.value_at_quantile(0.5),
        h.value_at_quantile(0.99),
        h.max()
    );
}

fn scratch(base: &Path, name: &str) -> PathBuf {
    let dir = base.join(name);
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

async fn startup(base: &Path, mib: u64) -> anyhow::Result<()> {
    let dir = scratch(base, "startup");
    let record = 1024;
    let count = (mib << 20) / record as u64;
    let keep = (count / 16 + 1) as usize;
    {
        let b: Arc<dyn Broker> = Arc::new(disk(
            &dir,
            FsyncPolicy::Interval(Duration::from_millis(100)),
            keep,
        )?);
        let data = payload(record);
        let mut pending = Vec::new();
        for i in 0..count {
            let b = b.clone();
            let data = data.clone();
            pending.push(tokio::spawn(async move {
                let topic = format!("bench.{}", i % 16);
                let req = PublishRequest {
                    topic: &topic,
                    event: None,
                    data,
                    msg_id: None,
                };
                b.publish(req).await.map(|_| ())
            }));
            if pending.len() >= 4096 {
                for p in pending.drain(..) {
                    p.await??;
                }
            }
        }
        for p in pending {
            p.await??;
        }
    }
    let size: u64 = std::fs::read_dir(&dir)?
        .filter_map(|e| e.ok()?.metadata().ok())
        .map(|m| m.len())
        .sum();
    // The file cache is warm (just written); a cold start reads from the disk.
    let t0 = Instant::now();
    let b = disk(&dir, FsyncPolicy::Always, keep)?;
    let warm = t0.elapsed();
    let position = b.position("bench.0").await?;
    drop(b);
    println!(
        "\nstart-up over {:.0} MiB of log ({count} publications of {record} B in 16 topics, all kept): {:.2} s (page cache warm); bench.0 at offset {}",
        size as f64 / (1 << 20) as f64,
        warm.as_secs_f64(),
        position.offset
    );
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let base = PathBuf::from(
        std::env::args()
            .nth(1)
            .ok_or_else(|| anyhow::anyhow!("usage: log_bench DIR (a scratch directory)"))?,
    );
    let secs: u64 = std::env::var("LOG_BENCH_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3);
    let mib: u64 = std::env::var("LOG_BENCH_STARTUP_MIB")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1024);
    std::fs::create_dir_all(&base)?;
    println!("| broker | publishers | publishes/s | p50 ack µs | p99 ack µs | max µs |");
    println!("|---|---|---|---|---|---|");
    for publishers in [1, 16, 128] {
        let memory: Arc<dyn Broker> = Arc::new(MemoryBroker::new(
            namespaces(1000),
            DedupeWindow::default(),
            Arc::new(Stats::default()),
            Arc::new(Discard),
        ));
        let (rate, h) = load(memory, publishers, secs).await?;
        row("memory", publishers, rate, &h);
        for (name, fsync) in [
            ("disk, fsync every publish", FsyncPolicy::Always),
            (
                "disk, fsync every 10 ms",
                FsyncPolicy::Interval(Duration::from_millis(10)),
            ),
        ] {
            let dir = scratch(&base, "load");
            let b: Arc<dyn Broker> = Arc::new(disk(&dir, fsync, 1000)?);
            let (rate, h) = load(b, publishers, secs).await?;
            row(name, publishers, rate, &h);
            std::fs::remove_dir_all(&dir)?;
        }
    }
    startup(&base, mib).await?;
    let _ = std::fs::remove_dir(&base);
    Ok(())
}
