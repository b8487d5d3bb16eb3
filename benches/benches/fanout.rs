//! Fan-out: one 256-byte JSON publication published (sequenced and appended
//! by the memory broker, handed to the hub) to a topic with N in-process
//! subscribers (N = 1, 100, 1000), then every subscriber's queue
//! drained and its frame taken in JSON, as a WebSocket writer would. The frame
//! is encoded once (by the first subscriber, `SharedPublication::frame`) and
//! shared by the rest. Throughput counts deliveries (N per publication).

use std::hint::black_box;
use std::sync::Arc;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use livegate::broker::{DedupeWindow, MemoryBroker, PublishRequest};
use livegate::hub::{Hub, Joined, Outbound};
use livegate::stats::Stats;
use livegate_benches::json_payload;
use livegate_core::topic::Namespaces;
use livegate_core::Encoding;

const TOPIC: &str = "bench.fanout";
const NOW_MS: u64 = 1_760_000_000_000;
/// Queue per connection: the gateway's default `queue_size`. Receivers are
/// drained after every publication, so no queue ever fills.
const QUEUE: usize = 1024;

fn bench_fanout(c: &mut Criterion) {
    let mut g = c.benchmark_group("fanout");
    let payload = json_payload(256);
    for n in [1usize, 100, 1000] {
        let stats = Arc::new(Stats::default());
        let hub = Arc::new(Hub::new(stats.clone()));
        let broker = MemoryBroker::new(
            Namespaces::default(),
            DedupeWindow::default(),
            stats,
            hub.clone(),
        );
        let mut conns = Vec::with_capacity(n);
        let mut receivers = Vec::with_capacity(n);
        for _ in 0..n {
            let (conn, mut rx) = hub.connect(QUEUE);
            hub.join(&conn, TOPIC).expect("join");
            let joined = Joined {
                id: None,
                position: broker.position_now(TOPIC),
                recovered: false,
                replay: Vec::new(),
            };
            hub.complete_join(&conn, TOPIC, joined).expect("subscribe");
            // The `subscribed` answer.
            assert!(matches!(rx.try_recv(), Some(Outbound::Subscribed(_))));
            conns.push(conn);
            receivers.push(rx);
        }
        g.throughput(Throughput::Elements(n as u64));
        g.bench_function(BenchmarkId::new("publish_json_256B", n), |b| {
            b.iter(|| {
                let request = PublishRequest {
                    topic: TOPIC,
                    event: None,
                    data: payload.clone(),
                    msg_id: None,
                };
                broker.publish_at(request, NOW_MS);
                let mut delivered = 0usize;
                for rx in &mut receivers {
                    while let Some(item) = rx.try_recv() {
                        if let Outbound::Publication(p) = item {
                            black_box(p.frame(Encoding::Json));
                            delivered += 1;
                        }
                    }
                }
                debug_assert_eq!(delivered, n);
                delivered
            })
        });
        // Every connection is still open: no queue ever filled.
        assert!(conns.iter().all(|c| c.close_reason().is_none()));
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = livegate_benches::config(3);
    targets = bench_fanout
}
criterion_main!(benches);
