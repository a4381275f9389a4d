//! Replay at memory speed, the figures issue 9 asks for: a read-only replay (`inflight::inspect::read_only`)
//! of a log of `INFLIGHT_BENCH_EVENTS` events (default 1,000,000), with the log's files in the
//! page cache, on one core: the time (best of 5), events/s and MB/s of segment bytes, and the
//! peak bytes the replay allocated (counted by `crashtest::CountingAllocator`; the segments
//! themselves are mapped, not allocated).
//!
//! Two logs, each key alternating start and completion with a ~50-byte meta, one event per
//! frame: over 100 keys (the running set stays in the CPU's caches) and over 100,000 keys (every
//! lookup misses them). They are built in `INFLIGHT_BENCH_DIR` (default: `/dev/shm` when it
//! exists, where a sync is nearly free). Run with `cargo bench --bench replay`. Prints a table
//! and one JSON line.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use inflight::{Generation, Log, Options, Policy, Run, UnixMs};
use inflight_sim::crashtest::{CountingAllocator, peak_allocation};

#[global_allocator]
static ALLOCATOR: CountingAllocator = CountingAllocator;

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .map(|v| {
            v.parse()
                .unwrap_or_else(|_| panic!("{name} must be a number"))
        })
        .unwrap_or(default)
}

/// Writes `events` events over `keys` keys: each key's start, then its completion.
fn build(dir: &Path, events: u64, keys: u64) {
    let options = Options::default().compact_after_bytes(None);
    let log = Log::open(dir, options).expect("open").log;
    for i in 0..events {
        let k = i % keys;
        let key = format!("agent:main:telegram:dm:{k}");
        let generation = i / keys / 2 + 1;
        if (i / keys).is_multiple_of(2) {
            let run = Run::new(
                key,
                format!("20261127_{i:08x}"),
                Generation(generation),
                UnixMs(1_764_150_000_000 + i),
            )
            .with_meta(r#"{"resume_from":"msg-1234567","platform":"telegram"}"#);
            log.mark_running(run).expect("append");
        } else {
            log.mark_completed(&key, generation).expect("append");
        }
    }
}

fn dir_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .expect("list")
        .map(|e| e.expect("entry").metadata().expect("stat").len())
        .sum()
}

struct Measured {
    keys: u64,
    best: Duration,
    bytes: u64,
    peak_alloc: isize,
}

fn measure(base: &Path, events: u64, keys: u64) -> Measured {
    let dir: PathBuf = base.join(format!("replay-{keys}-keys"));
    build(&dir, events, keys);
    let bytes = dir_bytes(&dir);
    let mut best = Duration::MAX;
    let mut peak_alloc = 0;
    for _ in 0..5 {
        let start = Instant::now();
        let peak = peak_allocation(|| {
            let found = inflight::inspect::read_only(&dir, Policy::Strict).expect("replay");
            assert_eq!(found.report.records, events);
        });
        best = best.min(start.elapsed());
        peak_alloc = peak.unwrap_or(0);
    }
    std::fs::remove_dir_all(&dir).expect("clean up");
    Measured {
        keys,
        best,
        bytes,
        peak_alloc,
    }
}

fn main() {
    let events = env_u64("INFLIGHT_BENCH_EVENTS", 1_000_000);
    let base = std::env::var_os("INFLIGHT_BENCH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            if Path::new("/dev/shm").is_dir() {
                "/dev/shm".into()
            } else {
                std::env::temp_dir()
            }
        });
    let tmp = tempfile::tempdir_in(&base).expect("a directory for the logs");
    println!(
        "read-only replay of {events} events, best of 5, files in the page cache ({})",
        base.display()
    );
    println!("| keys | seconds | events/s | MB/s | MiB of segments | peak MiB allocated |");
    println!("|---:|---:|---:|---:|---:|---:|");
    let mut json = Vec::new();
    for keys in [100, 100_000] {
        let m = measure(tmp.path(), events, keys);
        let secs = m.best.as_secs_f64();
        println!(
            "| {} | {:.3} | {:.0} | {:.0} | {:.1} | {:.1} |",
            m.keys,
            secs,
            events as f64 / secs,
            m.bytes as f64 / 1e6 / secs,
            m.bytes as f64 / (1 << 20) as f64,
            m.peak_alloc as f64 / (1 << 20) as f64,
        );
        json.push(serde_json::json!({
            "keys": m.keys,
            "events": events,
            "seconds": secs,
            "events_per_s": events as f64 / secs,
            "mb_per_s": m.bytes as f64 / 1e6 / secs,
            "segment_bytes": m.bytes,
            "peak_alloc_bytes": m.peak_alloc,
        }));
    }
    println!("{}", serde_json::json!({ "replay": json }));
}
