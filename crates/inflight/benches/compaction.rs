//! Compaction's costs, the figures issue 8 asks for:
//!
//! 1. compacting a log holding `INFLIGHT_BENCH_RUNNING` running runs (default 100,000): the
//!    time, the peak bytes allocated by the compaction itself (counted by
//!    `crashtest::CountingAllocator`), the process's peak resident memory, and the snapshot's
//!    size;
//! 2. append latency (p50, p99, p99.9) of `INFLIGHT_BENCH_THREADS` threads (default 2) over that
//!    log for `INFLIGHT_BENCH_SECONDS` (default 10), once alone and once while another thread
//!    compacts back to back;
//! 3. the time to open (read-write, and a read-only replay) a log of `INFLIGHT_BENCH_EVENTS`
//!    events (default 1,000,000: starts and completions over 100,000 keys) before and after
//!    compaction.
//!
//! Every event is synced with fdatasync as always, so the file system matters:
//! `INFLIGHT_BENCH_DIR` chooses where the measured logs live (default: `/dev/shm` when it
//! exists). The logs of 1 and 3 are built on `/dev/shm` when it exists (a sync is nearly free
//! there, so a million events take seconds instead of hours on a disk) and copied into
//! `INFLIGHT_BENCH_DIR`; with `INFLIGHT_BENCH_DROP_CACHES=1` (root only) the page cache is
//! dropped before each timed open, so the opens read the disk. Run with
//! `cargo bench --bench compaction`. Prints a table and one JSON line.

use inflight::percentile::{P50, P99, P999, percentile_or_zero};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use inflight::{Generation, Log, Options, Policy, Run, UnixMs};
use inflight_sim::crashtest::{CountingAllocator, peak_allocation};

#[global_allocator]
static ALLOCATOR: CountingAllocator = CountingAllocator;

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn run(key: &str, generation: u64) -> Run {
    Run::new(
        key,
        format!("20261127_{generation:08x}"),
        Generation(generation),
        UnixMs(1_764_150_000_000 + generation),
    )
    .with_meta("{\"resume_from\":\"msg-1234567\",\"platform\":\"telegram\"}")
}

/// The process's peak resident set so far, from /proc (kB), if readable.
fn peak_rss_kb() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn options() -> Options {
    // Compaction only when the benchmark asks; marks kept (the keys are all recent anyway).
    Options::default().compact_after_bytes(None)
}

/// Appends from `threads` threads for `seconds`, each alternating start and completion on keys
/// of its own; with `compacting`, another thread compacts back to back meanwhile. Returns the
/// sorted latencies (µs) and the compactions finished.
fn appends(log: &Arc<Log>, threads: u64, seconds: f64, compacting: bool) -> (Vec<u32>, u64) {
    let stop = Arc::new(AtomicBool::new(false));
    let compactions = Arc::new(AtomicU64::new(0));
    let compactor = compacting.then(|| {
        let (log, stop, compactions) = (log.clone(), stop.clone(), compactions.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                log.compact().expect("compact");
                compactions.fetch_add(1, Ordering::Relaxed);
            }
        })
    });
    let workers: Vec<_> = (0..threads)
        .map(|t| {
            let (log, stop) = (log.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut samples = Vec::new();
                let mut generation = 1_000_000 * (t + 1);
                while !stop.load(Ordering::Relaxed) {
                    let key = format!("bench:{t}:{}", generation % 64);
                    generation += 1;
                    let started = Instant::now();
                    log.mark_running(run(&key, generation)).expect("append");
                    samples.push(started.elapsed().as_micros() as u32);
                    let started = Instant::now();
                    log.mark_completed(&key, generation).expect("append");
                    samples.push(started.elapsed().as_micros() as u32);
                }
                samples
            })
        })
        .collect();
    std::thread::sleep(Duration::from_secs_f64(seconds));
    stop.store(true, Ordering::Relaxed);
    let mut samples: Vec<u32> = workers
        .into_iter()
        .flat_map(|w| w.join().expect("worker"))
        .collect();
    if let Some(c) = compactor {
        c.join().expect("compactor");
    }
    samples.sort_unstable();
    (samples, compactions.load(Ordering::Relaxed))
}

/// Where the logs are built: `/dev/shm` when it exists, else `base`.
fn build_base(base: &Path) -> PathBuf {
    let shm = PathBuf::from("/dev/shm");
    if shm.is_dir() {
        shm
    } else {
        base.to_path_buf()
    }
}

/// Copies the log built in `from` to `to` (a new directory), unless they are the same.
fn place(from: &Path, to: &Path) {
    if from == to {
        return;
    }
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
    }
    std::fs::remove_dir_all(from).unwrap();
}

/// Drops the page cache when asked (and allowed), so that the next open reads the disk.
fn drop_caches() -> bool {
    if std::env::var_os("INFLIGHT_BENCH_DROP_CACHES").is_none() {
        return false;
    }
    unsafe { libc_sync() };
    std::fs::write("/proc/sys/vm/drop_caches", "3").is_ok()
}

unsafe extern "C" {
    #[link_name = "sync"]
    fn libc_sync();
}

fn timed<T>(f: impl FnOnce() -> T) -> (T, Duration) {
    let started = Instant::now();
    let value = f();
    (value, started.elapsed())
}

fn dir_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().metadata().unwrap().len())
        .sum()
}

fn main() {
    let running = env_u64("INFLIGHT_BENCH_RUNNING", 100_000);
    let threads = env_u64("INFLIGHT_BENCH_THREADS", 2);
    let seconds = env_u64("INFLIGHT_BENCH_SECONDS", 10) as f64;
    let events = env_u64("INFLIGHT_BENCH_EVENTS", 1_000_000);
    let base = std::env::var_os("INFLIGHT_BENCH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            let shm = PathBuf::from("/dev/shm");
            if shm.is_dir() {
                shm
            } else {
                std::env::temp_dir()
            }
        });
    let tmp = tempfile::tempdir_in(&base).expect("temp dir");
    let build = tempfile::tempdir_in(build_base(&base)).expect("temp dir");
    println!("logs in {}", base.display());

    // 1. Compacting `running` running runs.
    let built = build.path().join("running");
    let log = Log::open(&built, options()).expect("open").log;
    for i in 0..running {
        log.mark_running(run(&format!("agent:main:telegram:dm:{i}"), 1))
            .expect("append");
    }
    drop(log);
    let dir = tmp.path().join("running");
    place(&built, &dir);
    let log = Arc::new(Log::open(&dir, options()).expect("open").log);
    let rss_before = peak_rss_kb();
    let mut compacted = None;
    let (peak, took) = timed(|| peak_allocation(|| compacted = Some(log.compact())));
    let compacted = compacted.expect("ran").expect("compact");
    let peak = peak.expect("the counting allocator is installed");
    println!(
        "compact {running} running runs: {:.3} s, {:.1} MiB allocated at peak by the compaction, peak RSS {} MiB (before it {} MiB), snapshot {:.1} MiB ({} bytes per run)",
        took.as_secs_f64(),
        peak as f64 / (1 << 20) as f64,
        peak_rss_kb().unwrap_or(0) / 1024,
        rss_before.unwrap_or(0) / 1024,
        compacted.bytes as f64 / (1 << 20) as f64,
        compacted.bytes / running.max(1),
    );

    // 2. Append latency alone and beside back-to-back compactions.
    let (alone, _) = appends(&log, threads, seconds, false);
    let (beside, compactions) = appends(&log, threads, seconds, true);
    for (what, samples) in [("alone", &alone), ("compacting", &beside)] {
        println!(
            "appends {what:<10}: {} in {seconds} s, latency µs p50 {} p99 {} p99.9 {} max {}",
            samples.len(),
            percentile_or_zero(samples, P50),
            percentile_or_zero(samples, P99),
            percentile_or_zero(samples, P999),
            samples.last().copied().unwrap_or(0)
        );
    }
    println!("compactions during the second run: {compactions}");
    drop(log);

    // 3. Opening a log of `events` events, before and after compaction.
    let built = build.path().join("events");
    let log = Log::open(&built, options()).expect("open").log;
    let keys = 100_000u64;
    for i in 0..events {
        let key = format!("agent:main:http:c-{}", i % keys);
        let generation = i / keys + 1;
        if (i / keys).is_multiple_of(2) {
            log.mark_running(run(&key, generation)).expect("append");
        } else {
            log.mark_completed(&key, generation - 1).expect("append");
        }
    }
    drop(log);
    let dir = tmp.path().join("events");
    place(&built, &dir);
    let bytes_before = dir_bytes(&dir);
    let dropped = drop_caches();
    let (replayed, read_only_before) =
        timed(|| inflight::inspect::read_only(&dir, Policy::Strict).expect("replay"));
    assert_eq!(replayed.report.records, events);
    drop_caches();
    let (opened, open_before) = timed(|| Log::open(&dir, options()).expect("open"));
    let (done, compact_took) = timed(|| opened.log.compact().expect("compact"));
    drop(opened);
    let bytes_after = dir_bytes(&dir);
    drop_caches();
    let (replayed, read_only_after) =
        timed(|| inflight::inspect::read_only(&dir, Policy::Strict).expect("replay"));
    assert!(replayed.report.snapshot.is_some());
    drop_caches();
    let (_opened, open_after) = timed(|| Log::open(&dir, options()).expect("open"));
    println!(
        "page cache dropped before each open: {}",
        if dropped { "yes" } else { "no (warm)" }
    );
    println!(
        "{events} events ({:.1} MiB): read-only replay {:.3} s, open {:.3} s; compaction {:.3} s to a {:.1} MiB snapshot of {} running runs; after it ({:.1} MiB): read-only replay {:.3} s, open {:.3} s",
        bytes_before as f64 / (1 << 20) as f64,
        read_only_before.as_secs_f64(),
        open_before.as_secs_f64(),
        compact_took.as_secs_f64(),
        done.bytes as f64 / (1 << 20) as f64,
        done.running,
        bytes_after as f64 / (1 << 20) as f64,
        read_only_after.as_secs_f64(),
        open_after.as_secs_f64(),
    );
    println!(
        "{}",
        serde_json::json!({
            "dir": base,
            "compact_running": running,
            "compact_seconds": took.as_secs_f64(),
            "compact_peak_alloc_bytes": peak,
            "peak_rss_kb": peak_rss_kb(),
            "snapshot_bytes": compacted.bytes,
            "append_alone_us": [percentile_or_zero(&alone, P50), percentile_or_zero(&alone, P99), percentile_or_zero(&alone, P999)],
            "append_compacting_us": [percentile_or_zero(&beside, P50), percentile_or_zero(&beside, P99), percentile_or_zero(&beside, P999)],
            "compactions_during": compactions,
            "events": events,
            "read_only_before_s": read_only_before.as_secs_f64(),
            "open_before_s": open_before.as_secs_f64(),
            "read_only_after_s": read_only_after.as_secs_f64(),
            "open_after_s": open_after.as_secs_f64(),
            "page_cache_dropped": dropped,
        })
    );
}
