//! The per-topic history log (`livegate_core::history::History`), bounded at
//! 1000 entries and holding `Arc`s as the memory broker's log does: append at steady state
//! (each append also drops the oldest entry), and the replay a subscribe with
//! `since` makes (`History::since`, each entry's value cloned into a `Vec`)
//! from a position 100 and 1000 publications back.

use std::hint::black_box;
use std::sync::Arc;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use livegate_benches::json_payload;
use livegate_core::history::{Bounds, History};
use livegate_core::protocol::{Position, Publication};

const MAX_LEN: usize = 1000;
const NOW_MS: u64 = 1_760_000_000_000;

fn full_history() -> (History<Arc<Publication>>, Arc<Publication>) {
    let publication = Arc::new(Publication {
        topic: "bench.history".into(),
        epoch: "k3x9q2ab".into(),
        offset: 1,
        event: None,
        data: json_payload(256),
        time_ms: NOW_MS,
    });
    let mut h = History::new(
        "k3x9q2ab".into(),
        Bounds {
            max_len: MAX_LEN,
            max_age_ms: 3_600_000,
            max_bytes: 0,
        },
    );
    for _ in 0..2 * MAX_LEN {
        h.append(NOW_MS, publication.clone());
    }
    assert_eq!(h.len(), MAX_LEN);
    (h, publication)
}

fn bench_history(c: &mut Criterion) {
    let mut g = c.benchmark_group("history");
    let (mut h, publication) = full_history();
    g.throughput(Throughput::Elements(1));
    g.bench_function("append_bounded_1000", |b| {
        b.iter(|| h.append(NOW_MS, black_box(&publication).clone()))
    });
    assert_eq!(h.len(), MAX_LEN);

    let (mut h, _) = full_history();
    for back in [100u64, 1000] {
        let since = Position {
            epoch: h.epoch().to_owned(),
            offset: h.latest() - back,
        };
        assert_eq!(h.since(Some(&since), NOW_MS).unwrap().len(), back as usize);
        g.throughput(Throughput::Elements(back));
        g.bench_function(BenchmarkId::new("replay_since", back), |b| {
            b.iter(|| {
                h.since(Some(black_box(&since)), NOW_MS)
                    .unwrap()
                    .map(|e| e.value.clone())
                    .collect::<Vec<_>>()
            })
        });
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = livegate_benches::config(2);
    targets = bench_history
}
criterion_main!(benches);
