//! Criterion benchmarks of the hot paths, pure and in memory: encoding and decoding a frame
//! (one event, and a batch of 64), folding events into the running set, and replaying a
//! segment's bytes (scan, checksum, decode, fold) of 10,000 events.
//!
//! Run with `cargo bench --bench hot_paths` (add `-- --quick` for a short run).

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use std::hint::black_box;

use inflight::event::{decode_event_ref, decode_payload_with, encode_event, encode_payload};
use inflight::frame::{Scanned, Scanner, decode_frame, encode_frame};
use inflight::{Event, Generation, Run, RunningSet, UnixMs};

fn start(i: u64) -> Event {
    Event::Started(
        Run::new(
            format!("agent:main:telegram:dm:{}", i % 1000),
            format!("20261127_{i:08x}"),
            Generation(i),
            UnixMs(1_764_150_000_000 + i),
        )
        .with_meta("{\"resume_from\":\"msg-1234567\",\"platform\":\"telegram\"}"),
    )
}

fn complete(i: u64) -> Event {
    Event::Completed {
        key: format!("agent:main:telegram:dm:{}", i % 1000),
        generation: i,
        at_ms: 1_764_150_000_000 + i,
    }
}

fn events(n: u64) -> Vec<Event> {
    (0..n)
        .map(|i| {
            if i % 2 == 0 {
                start(i)
            } else {
                complete(i - 1)
            }
        })
        .collect()
}

fn frames(c: &mut Criterion) {
    let event = start(7);
    let payload = encode_event(&event);
    let mut frame = Vec::new();
    encode_frame(42, 7, &payload, &mut frame);
    let mut group = c.benchmark_group("frame");
    group.throughput(Throughput::Elements(1));
    group.bench_function("encode event + frame", |b| {
        let mut out = Vec::with_capacity(256);
        b.iter(|| {
            out.clear();
            encode_frame(42, 7, &encode_event(black_box(&event)), &mut out);
            out.len()
        })
    });
    group.bench_function("decode frame + event", |b| {
        b.iter(|| {
            let (_, payload) = decode_frame(black_box(&frame), 42).unwrap();
            decode_event_ref(payload).unwrap()
        })
    });
    let batch: Vec<Vec<u8>> = events(64).iter().map(encode_event).collect();
    let parts: Vec<&[u8]> = batch.iter().map(Vec::as_slice).collect();
    let batch_payload = encode_payload(&parts).into_owned();
    group.throughput(Throughput::Elements(64));
    group.bench_function("decode a batch of 64", |b| {
        b.iter(|| {
            let mut n = 0;
            decode_payload_with(black_box(&batch_payload), |_, _| n += 1);
            n
        })
    });
    group.finish();
}

fn fold(c: &mut Criterion) {
    let mut group = c.benchmark_group("fold");
    for keys in [100u64, 100_000] {
        let events: Vec<Event> = (0..20_000u64)
            .map(|i| {
                let g = i / 2 + 1;
                let key = format!("agent:main:http:c-{}", (i / 2) % keys);
                if i % 2 == 0 {
                    Event::Started(Run::new(key, "s", Generation(g), UnixMs(g)))
                } else {
                    Event::Completed {
                        key,
                        generation: g,
                        at_ms: g,
                    }
                }
            })
            .collect();
        group.throughput(Throughput::Elements(events.len() as u64));
        group.bench_with_input(BenchmarkId::new("apply", keys), &events, |b, events| {
            b.iter(|| {
                let mut set = RunningSet::new();
                for e in events {
                    set.apply(e);
                }
                set.len()
            })
        });
    }
    group.finish();
}

fn replay(c: &mut Criterion) {
    // A segment body of 10,000 single-event frames, as the writer lays it out.
    let salt = 99;
    let mut body = Vec::new();
    for (i, e) in events(10_000).iter().enumerate() {
        encode_frame(salt, i as u64 + 1, &encode_event(e), &mut body);
    }
    let mut group = c.benchmark_group("replay");
    group.throughput(Throughput::Elements(10_000));
    group.bench_function("scan + decode + fold 10,000 frames", |b| {
        b.iter(|| {
            let mut set = RunningSet::new();
            for scanned in Scanner::new(black_box(&body), 64, salt, 1) {
                if let Scanned::Frame(f) = scanned {
                    decode_payload_with(f.payload, |e, _| {
                        set.apply(e);
                    });
                }
            }
            set.len()
        })
    });
    group.finish();
}

criterion_group!(benches, frames, fold, replay);
criterion_main!(benches);
