//! Codec costs: a `publication` frame (gateway -> client) and a `publish`
//! frame (client -> gateway), encoded and decoded in JSON and MessagePack,
//! for a small (~100 B) and a large (~64 KiB) payload; and the once per
//! publication conversion of a JSON payload to MessagePack.
//!
//! Each codec case carries its payload in the frame's own encoding (a JSON
//! payload in JSON frames, a MessagePack one in MessagePack frames), the
//! verbatim path; conversion is measured on its own by `to_msgpack`.
//! Throughput is the size of the encoded frame.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use livegate_benches::{json_payload, msgpack_payload};
use livegate_core::protocol::{ClientFrame, Publication};
use livegate_core::{Encoding, Payload, ServerFrame};

const SIZES: [(&str, usize); 2] = [("100B", 100), ("64KiB", 64 * 1024)];

fn enc_name(e: Encoding) -> &'static str {
    match e {
        Encoding::Json => "json",
        Encoding::Msgpack => "msgpack",
    }
}

fn payload(e: Encoding, size: usize) -> Payload {
    match e {
        Encoding::Json => json_payload(size),
        Encoding::Msgpack => msgpack_payload(size),
    }
}

fn publication(data: Payload) -> Publication {
    Publication {
        topic: "metrics.cpu".into(),
        epoch: "k3x9q2ab".into(),
        offset: 123_456,
        event: Some("update".into()),
        data,
        time_ms: 1_760_000_000_123,
    }
}

fn publish(data: Payload) -> ClientFrame {
    ClientFrame::Publish {
        id: Some(42),
        topic: "metrics.cpu".into(),
        event: Some("update".into()),
        data,
        msg_id: Some("c1-0000000042".into()),
    }
}

fn bench_publication(c: &mut Criterion) {
    let mut g = c.benchmark_group("codec/publication");
    for (label, size) in SIZES {
        for e in Encoding::ALL {
            let p = publication(payload(e, size));
            let frame = e.encode_publication(&p);
            assert_eq!(
                e.decode_server(&frame).ok(),
                Some(ServerFrame::Publication(p.clone()))
            );
            g.throughput(Throughput::Bytes(frame.len() as u64));
            let id = format!("{}/{label}", enc_name(e));
            g.bench_function(BenchmarkId::new("encode", &id), |b| {
                b.iter(|| e.encode_publication(black_box(&p)))
            });
            g.bench_function(BenchmarkId::new("decode", &id), |b| {
                b.iter(|| e.decode_server(black_box(&frame)).unwrap())
            });
        }
    }
    g.finish();
}

fn bench_publish(c: &mut Criterion) {
    let mut g = c.benchmark_group("codec/publish");
    for (label, size) in SIZES {
        for e in Encoding::ALL {
            let f = publish(payload(e, size));
            let frame = e.encode_client(&f);
            assert_eq!(e.decode_client(&frame).ok().as_ref(), Some(&f));
            g.throughput(Throughput::Bytes(frame.len() as u64));
            let id = format!("{}/{label}", enc_name(e));
            g.bench_function(BenchmarkId::new("encode", &id), |b| {
                b.iter(|| e.encode_client(black_box(&f)))
            });
            g.bench_function(BenchmarkId::new("decode", &id), |b| {
                b.iter(|| e.decode_client(black_box(&frame)).unwrap())
            });
        }
    }
    g.finish();
}

fn bench_to_msgpack(c: &mut Criterion) {
    let mut g = c.benchmark_group("codec/to_msgpack");
    for (label, size) in SIZES {
        let p = json_payload(size);
        g.throughput(Throughput::Bytes(p.len() as u64));
        g.bench_function(label, |b| {
            b.iter(|| black_box(&p).to_msgpack().into_owned())
        });
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = livegate_benches::config(2);
    targets = bench_publication, bench_publish, bench_to_msgpack
}
criterion_main!(benches);
