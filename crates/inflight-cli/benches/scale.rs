//! The scale figures: what a gateway with many sessions waits for, at 10,000, 100,000 and
//! 1,000,000 keys (add 10,000,000 with `INFLIGHT_BENCH_10M=1`, or give the list in
//! `INFLIGHT_BENCH_KEYS`, comma-separated). For each count of keys:
//!
//! 1. **compaction** of a log in which every key has a run in flight (one start per key, no
//!    snapshot yet): `Log::compact` timed alone, after the open that replays the log;
//! 2. **open after compaction**: `Log::open` (read-write, as a gateway starts) of that
//!    compacted log, whose snapshot holds every run; MB/s of snapshot;
//! 3. **replay** of ten events per key with no snapshot (start and completion five times):
//!    `inspect::read_only`; events/s and MB/s of segments;
//! 4. **appends beside a compaction**: on a fresh copy of the log of step 1, the latency of
//!    single appends (`Log::mark_running` of a new key, each synced) made one after another
//!    while `Log::compact` runs in another thread, beside the same appends with no compaction
//!    (p50, p99 and the maximum, in µs);
//! 5. **takeover**, when `INFLIGHT_PG_URL` names a PostgreSQL server: an instance whose log
//!    holds a run per key, compacted (as a gateway's would be), taken over by another
//!    (`Fleet::take_over_as`), timed alone. One run only (a takeover happens once).
//!
//! Each measurement runs in a fresh process (this program again, with `--child`), so its peak
//! resident memory is its own (`VmHWM`, Linux); the heap figure is the peak the timed call
//! allocated on its thread (`CountingAllocator`). What the open, the replay and the takeover
//! return is not dropped inside the timing (its drop is the caller's, later); a compaction's
//! own freeing is part of it. Steps 1 to 3 are the best of two runs (the
//! memory figures are the best run's). The logs are written with the format's encoders, without
//! syncs, in `INFLIGHT_BENCH_DIR` (default: the system's temporary directory), and read from the
//! page cache; with `INFLIGHT_BENCH_KEEP=1` they are kept there, for a profiler
//! (`perf record target/release/deps/scale-* --child open DIR`). Run with
//! `cargo bench --bench scale`. Prints a table and one JSON line.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

#[path = "common/log_writer.rs"]
mod log_writer;
use log_writer::write_log;

use inflight::limits::SEGMENT_BYTES_MAX_DEFAULT;
use inflight::percentile::{MAX, P50, P99, percentile_or_zero};
use inflight::{Event, Generation, Log, Options, Policy, Run, UnixMs};
use inflight_sim::crashtest::{CountingAllocator, peak_allocation};
use serde_json::{Value, json};

#[global_allocator]
static ALLOCATOR: CountingAllocator = CountingAllocator;

const T0: u64 = 1_764_150_000_000;

/// Appends timed with no compaction running, for the latencies beside a compaction.
const QUIET_APPENDS: u64 = 2_000;

fn key(k: u64) -> String {
    format!("agent:main:telegram:dm:{k}")
}

/// Event `i` of a log that goes round `keys` keys: on even rounds each key starts a run (a
/// ~50-byte meta, as a gateway's), on odd rounds completes it.
fn event(i: u64, keys: u64) -> Event {
    let (k, round) = (i % keys, i / keys);
    let generation = round / 2 + 1;
    let at = T0 + i / 10;
    if round.is_multiple_of(2) {
        let run = Run::new(
            key(k),
            format!("20261127_{generation:08x}"),
            Generation(generation),
            UnixMs(at),
        );
        Event::Started(run.with_meta(format!(
            "{{\"resume_from\":\"msg-{i:010}\",\"platform\":\"telegram\"}}"
        )))
    } else {
        Event::Completed {
            key: key(k),
            generation,
            at_ms: at,
        }
    }
}

/// Writes `events` events over `keys` keys into a new log in `dir`, in segments of the
/// default size; returns the bytes written.
fn build(dir: &Path, keys: u64, events: u64) -> u64 {
    let more = |seq: u64, _| (seq <= events).then(|| event(seq - 1, keys));
    write_log(dir, SEGMENT_BYTES_MAX_DEFAULT, T0, more).1
}

/// This process's peak resident memory in bytes, where the system says (Linux).
fn peak_rss() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// Runs `f` timed, with the peak it allocated; prints the child's JSON line with `extra`.
fn report(f: impl FnOnce() -> Value) {
    let mut extra = Value::Null;
    let began = Instant::now();
    let heap = peak_allocation(|| extra = f());
    let secs = began.elapsed().as_secs_f64();
    let mut line = json!({ "secs": secs, "heap": heap, "rss": peak_rss() });
    if let (Some(line), Value::Object(extra)) = (line.as_object_mut(), extra) {
        line.extend(extra);
    }
    println!("{line}");
}

/// One measurement, in this (fresh) process: `op` on the log in `dir`.
fn child(op: &str, dir: &Path, arg: Option<&str>) {
    match op {
        "compact" => {
            let options = Options::default()
                .compact_after_bytes(None)
                .record_recovery(false);
            let log = Log::open(dir, options).unwrap().log;
            report(|| {
                let compacted = log.compact().unwrap();
                json!({ "running": compacted.running, "snapshot_bytes": compacted.bytes })
            });
        }
        "appends" => {
            let options = Options::default()
                .compact_after_bytes(None)
                .record_recovery(false);
            let log = Log::open(dir, options).unwrap().log;
            let append = |i: u64| {
                let run = Run::new(format!("bench:append:{i}"), "s", Generation(1), UnixMs(T0));
                let began = Instant::now();
                log.mark_running(run).unwrap();
                began.elapsed().as_micros() as u64
            };
            let mut quiet: Vec<u64> = (0..QUIET_APPENDS).map(append).collect();
            let compacting = AtomicBool::new(true);
            let mut during = Vec::new();
            let compaction_secs = std::thread::scope(|scope| {
                let compaction = scope.spawn(|| {
                    let began = Instant::now();
                    log.compact().unwrap();
                    compacting.store(false, Ordering::Release);
                    began.elapsed().as_secs_f64()
                });
                let mut i = QUIET_APPENDS;
                while compacting.load(Ordering::Acquire) {
                    during.push(append(i));
                    i += 1;
                }
                compaction.join().unwrap()
            });
            let figures = |latencies: &mut Vec<u64>| {
                latencies.sort_unstable();
                json!({
                    "appends": latencies.len(),
                    "p50_us": percentile_or_zero(latencies, P50),
                    "p99_us": percentile_or_zero(latencies, P99),
                    "max_us": percentile_or_zero(latencies, MAX),
                })
            };
            let line = json!({
                "compaction_secs": compaction_secs,
                "quiet": figures(&mut quiet),
                "during": figures(&mut during),
            });
            println!("{line}");
        }
        "open" => report(|| {
            let opened = Log::open(dir, Options::default().compact_after_bytes(None)).unwrap();
            let running = opened.report.running.len();
            std::mem::forget(opened); // its drop (a close) is not the open's cost
            json!({ "running": running })
        }),
        "replay" => report(|| {
            let replayed = inflight::inspect::read_only(dir, Policy::Strict).unwrap();
            let line = json!({ "running": replayed.set.len(), "events": replayed.report.records });
            std::mem::forget(replayed); // its drop is the caller's later cost, as for the open
            line
        }),
        "takeover" => {
            let (url, dead) = (std::env::var("INFLIGHT_PG_URL").unwrap(), arg.unwrap());
            let fleet = inflight_postgres::Fleet::new(url);
            report(|| {
                let taken = fleet
                    .take_over_as(
                        dead,
                        &format!("{dead}-taker"),
                        inflight_postgres::Taker::CreateIfMissing,
                    )
                    .unwrap();
                let running = taken.report.running.len();
                std::mem::forget(taken); // its drop is not the takeover's cost, as for the open
                json!({ "running": running })
            });
        }
        _ => panic!("unknown measurement {op}"),
    }
}

/// Runs measurement `op` on `dir` in a fresh process; returns its JSON line.
fn measure(op: &str, dir: &Path, arg: Option<&str>) -> Value {
    let exe = std::env::current_exe().unwrap();
    let mut command = Command::new(exe);
    command.args(["--child", op]).arg(dir);
    command.args(arg);
    let out = command.output().unwrap();
    assert!(
        out.status.success(),
        "{op}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    let line = stdout.lines().last().expect("a JSON line");
    serde_json::from_str(line).unwrap()
}

/// The faster of two runs of `op`, each on a fresh copy of `from` when given (a compaction
/// changes its log), else on `dir` itself.
fn best_of_two(op: &str, dir: &Path, from: Option<&Path>) -> Value {
    let runs: Vec<Value> = (0..2)
        .map(|_| {
            if let Some(from) = from {
                let _ = std::fs::remove_dir_all(dir);
                copy_dir(from, dir);
            }
            measure(op, dir, None)
        })
        .collect();
    runs.into_iter()
        .min_by(|a, b| {
            a["secs"]
                .as_f64()
                .unwrap()
                .total_cmp(&b["secs"].as_f64().unwrap())
        })
        .unwrap()
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
    }
}

/// A fleet instance whose log holds a run per key, compacted; returns its id.
fn fleet_instance(url: &str, keys: u64) -> String {
    let dead = format!("scale-{keys}-{}-{}", std::process::id(), fastrand::u32(..));
    let fleet = inflight_postgres::Fleet::new(url);
    fleet.create_schema().unwrap();
    let options = Options::default().compact_after_bytes(None);
    let log = std::sync::Arc::new(fleet.open(&dead, options).unwrap().log);
    // Many threads, so that group commit puts many starts in one transaction.
    let threads = 64;
    std::thread::scope(|scope| {
        for t in 0..threads {
            let log = &log;
            scope.spawn(move || {
                for i in (t..keys).step_by(threads as usize) {
                    let Event::Started(run) = event(i, keys) else {
                        unreachable!()
                    };
                    log.mark_running(run).unwrap();
                }
            });
        }
    });
    log.compact().unwrap();
    dead
}

fn mib(v: &Value) -> String {
    v.as_f64()
        .map_or("-".into(), |b| format!("{:.0}", b / (1 << 20) as f64))
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--child") {
        let dir = PathBuf::from(&args[i + 2]);
        return child(&args[i + 1], &dir, args.get(i + 3).map(String::as_str));
    }
    let mut counts = vec![10_000u64, 100_000, 1_000_000];
    if std::env::var("INFLIGHT_BENCH_10M").as_deref() == Ok("1") {
        counts.push(10_000_000);
    }
    if let Ok(list) = std::env::var("INFLIGHT_BENCH_KEYS") {
        counts = list
            .split(',')
            .map(|k| {
                k.trim()
                    .parse()
                    .expect("INFLIGHT_BENCH_KEYS: numbers, comma-separated")
            })
            .collect();
    }
    let base =
        std::env::var_os("INFLIGHT_BENCH_DIR").map_or_else(std::env::temp_dir, PathBuf::from);
    let work = tempfile::tempdir_in(base).unwrap();
    let keep = std::env::var("INFLIGHT_BENCH_KEEP").as_deref() == Ok("1");
    let remove = |dir: &Path| {
        if !keep {
            std::fs::remove_dir_all(dir).unwrap();
        }
    };
    let pg = std::env::var("INFLIGHT_PG_URL").ok();
    println!(
        "{:>10}  {:<22} {:>9} {:>8} {:>9} {:>12} {:>9} {:>9}",
        "keys", "what", "MB", "seconds", "MB/s", "events/s", "heap MiB", "RSS MiB"
    );
    let mut rows = Vec::new();
    let mut appends_lines: Vec<(u64, Value)> = Vec::new();
    let mut row = |keys: u64, what: &str, bytes: u64, m: &Value, events: Option<u64>| {
        let secs = m["secs"].as_f64().unwrap();
        let rate = events.map(|e| e as f64 / secs);
        let (mb, mb_per_s) = match bytes {
            0 => ("-".to_string(), "-".to_string()),
            _ => (
                format!("{:.1}", bytes as f64 / 1e6),
                format!("{:.0}", bytes as f64 / 1e6 / secs),
            ),
        };
        println!(
            "{keys:>10}  {what:<22} {mb:>9} {secs:>8.3} {mb_per_s:>9} {:>12} {:>9} {:>9}",
            rate.map_or("-".into(), |r| format!("{r:.0}")),
            mib(&m["heap"]),
            mib(&m["rss"]),
        );
        rows.push(json!({
            "keys": keys, "what": what, "bytes": bytes, "seconds": secs,
            "mb_per_s": (bytes > 0).then(|| bytes as f64 / 1e6 / secs), "events_per_s": rate,
            "heap_bytes": m["heap"], "rss_bytes": m["rss"],
        }));
    };
    for keys in counts {
        // Every key running, no snapshot: what a compaction folds.
        let running = work.path().join(format!("running-{keys}"));
        build(&running, keys, keys);
        let compacting = work.path().join(format!("compacting-{keys}"));
        let compaction = best_of_two("compact", &compacting, Some(&running));
        assert_eq!(compaction["running"].as_u64(), Some(keys));
        let snapshot_bytes = compaction["snapshot_bytes"].as_u64().unwrap();
        row(keys, "compaction", snapshot_bytes, &compaction, None);
        let appending = work.path().join(format!("appending-{keys}"));
        copy_dir(&running, &appending);
        let appends = measure("appends", &appending, None);
        appends_lines.push((keys, appends));
        remove(&appending);
        remove(&running);
        // The compacted log: what a gateway opens after a restart.
        let open = best_of_two("open", &compacting, None);
        assert_eq!(open["running"].as_u64(), Some(keys));
        row(keys, "open after compaction", snapshot_bytes, &open, None);
        remove(&compacting);
        // Ten events a key, no snapshot.
        let replaying = work.path().join(format!("replay-{keys}"));
        let events = 10 * keys;
        let replay_bytes = build(&replaying, keys, events);
        let replay = best_of_two("replay", &replaying, None);
        assert_eq!(replay["running"].as_u64(), Some(0));
        assert_eq!(replay["events"].as_u64(), Some(events));
        row(
            keys,
            "replay, no snapshot",
            replay_bytes,
            &replay,
            Some(events),
        );
        remove(&replaying);
        if let Some(url) = &pg {
            let dead = fleet_instance(url, keys);
            let taken = measure("takeover", work.path(), Some(&dead));
            assert_eq!(taken["running"].as_u64(), Some(keys));
            row(keys, "takeover (PostgreSQL)", 0, &taken, None);
        }
    }
    for (keys, m) in &appends_lines {
        rows.push(json!({ "keys": keys, "what": "appends beside a compaction", "appends": m }));
        let line = |m: &Value| {
            format!(
                "p50 {} µs, p99 {} µs, max {} µs ({} appends)",
                m["p50_us"], m["p99_us"], m["max_us"], m["appends"]
            )
        };
        println!(
            "{keys:>10}  appends, no compaction: {}; during a compaction of {:.3} s: {}",
            line(&m["quiet"]),
            m["compaction_secs"].as_f64().unwrap(),
            line(&m["during"]),
        );
    }
    if keep {
        println!("the logs are in {}", work.keep().display());
    }
    if pg.is_none() {
        println!("(no takeover: set INFLIGHT_PG_URL; scripts/pg-cluster start DIR prints one)");
    }
    println!("{}", json!({ "scale": rows }));
}
