//! The offline tools' figures, the ones issue 10 asks for:
//!
//! 1. how fast `inflight dump` (text and `--json`), `verify` and `stats` read a log of
//!    `INFLIGHT_BENCH_LOG_MIB` MiB (default 1024) of 16 MiB segments, output to `/dev/null`,
//!    beside a plain read of the same files (the disk's speed) and the library's walk alone
//!    (no output). The log (starts and completions over 10,000 keys, single-event records with
//!    a meta of about 50 bytes, as `inflight load` writes them) is written with the format's
//!    encoders, without syncs, so that a gigabyte takes seconds;
//! 2. `dump --follow`'s delay from the return of an append (the event durable) to the line
//!    on the follower's stdout, at `--poll-ms` 50 (the default) and 10, over
//!    `INFLIGHT_BENCH_FOLLOW_EVENTS` appends (default 200) spaced at random.
//!
//! `INFLIGHT_BENCH_DIR` chooses where the logs live (default: the system's temporary
//! directory); they are removed at the end. With `INFLIGHT_BENCH_DROP_CACHES=1` (root only) the
//! page cache is dropped before each timed read of part 1, so it reads the disk; otherwise the
//! files are read from the page cache after a first read. Run with
//! `cargo bench --bench offline_tools`. Prints a table and one JSON line.

use inflight::percentile::{MAX, P50, P99, percentile_or_zero};
use inflight::store::FileSource;
use std::io::{BufRead, BufReader, Read};
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};

#[path = "common/log_writer.rs"]
mod log_writer;
use log_writer::write_log;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use inflight::inspect::walk;
use inflight::{Event, FsStorage, Generation, Log, Options, Run, UnixMs};

const SEGMENT_BYTES: u64 = 16 << 20;
const KEYS: u64 = 10_000;

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Event `i` of the synthetic workload: each of `KEYS` keys alternates start(g) and
/// complete(g), round robin, ten events a millisecond.
fn event(i: u64, t0: u64) -> Event {
    let key = format!("agent:main:telegram:dm:{}", i % KEYS);
    let round = i / KEYS;
    let generation = round / 2 + 1;
    let at = t0 + i / 10;
    if round.is_multiple_of(2) {
        Event::Started(
            Run::new(
                key,
                format!("20261127_{generation:08x}"),
                Generation(generation),
                UnixMs(at),
            )
            .with_meta(format!(
                "{{\"resume_from\":\"msg-{i:010}\",\"platform\":\"telegram\"}}"
            )),
        )
    } else {
        Event::Completed {
            key,
            generation,
            at_ms: at,
        }
    }
}

/// Writes a log of about `bytes` bytes into `dir`; returns its events.
fn build_log(dir: &Path, bytes: u64) -> u64 {
    let t0 = inflight::environment::now_ms() - 86_400_000;
    let more = |seq: u64, written: u64| (written < bytes).then(|| event(seq - 1, t0));
    write_log(dir, SEGMENT_BYTES, t0, more).0
}

fn drop_caches() {
    if std::env::var("INFLIGHT_BENCH_DROP_CACHES").as_deref() == Ok("1") {
        Command::new("sync").status().unwrap();
        std::fs::write("/proc/sys/vm/drop_caches", "3\n").expect("drop the page cache (root)");
    }
}

/// Reads every file of `dir` front to back, as `cat DIR/* > /dev/null` would.
fn plain_read(dir: &Path) {
    let mut buf = vec![0u8; 1 << 20];
    for entry in std::fs::read_dir(dir).unwrap() {
        let mut file = std::fs::File::open(entry.unwrap().path()).unwrap();
        while file.read(&mut buf).unwrap() > 0 {}
    }
}

/// Runs `inflight ARGS` with its stdout to /dev/null; panics unless it exits with `code`.
fn inflight(args: &[&str], code: i32) {
    let status = Command::new(env!("CARGO_BIN_EXE_inflight"))
        .args(args)
        .stdout(std::fs::File::create("/dev/null").unwrap())
        .status()
        .unwrap();
    assert_eq!(status.code(), Some(code), "inflight {args:?}");
}

/// The best of three timed runs of `f` (each after dropping the cache, when asked), in MiB/s
/// of `bytes`.
fn mib_per_s(bytes: u64, mut f: impl FnMut()) -> f64 {
    f(); // a first read fills the page cache (unless each timed run drops it)
    let mut best = f64::MAX;
    for _ in 0..3 {
        drop_caches();
        let start = Instant::now();
        f();
        best = best.min(start.elapsed().as_secs_f64());
    }
    bytes as f64 / (1 << 20) as f64 / best
}

fn dump_throughput(base: &Path) -> Vec<(String, f64)> {
    let dir = base.join("dump");
    let mib = env_u64("INFLIGHT_BENCH_LOG_MIB", 1024);
    let start = Instant::now();
    let events = build_log(&dir, mib << 20);
    let bytes: u64 = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().metadata().unwrap().len())
        .sum();
    eprintln!(
        "built a log of {events} events, {:.0} MiB, in {:.1} s",
        bytes as f64 / (1 << 20) as f64,
        start.elapsed().as_secs_f64()
    );
    let d = dir.to_str().unwrap();
    let mut rows = vec![
        (
            "plain read of the files".to_string(),
            mib_per_s(bytes, || plain_read(&dir)),
        ),
        (
            "library walk, no output".to_string(),
            mib_per_s(bytes, || {
                let mut n = 0u64;
                walk(&FileSource::new(&FsStorage { mmap: true }, &dir), |_| {
                    n += 1;
                    ControlFlow::Continue(())
                })
                .unwrap();
                assert!(n > events);
            }),
        ),
    ];
    for (name, args) in [
        ("inflight dump > /dev/null", vec!["dump", d]),
        (
            "inflight dump --json > /dev/null",
            vec!["dump", d, "--json"],
        ),
        ("inflight verify", vec!["verify", d]),
        ("inflight stats", vec!["stats", d]),
    ] {
        rows.push((name.to_string(), mib_per_s(bytes, || inflight(&args, 0))));
    }
    std::fs::remove_dir_all(&dir).unwrap();
    rows.push(("(log MiB)".to_string(), bytes as f64 / (1 << 20) as f64));
    rows.push(("(events)".to_string(), events as f64));
    rows
}

/// Delays, in microseconds, from an append's return to its line on a follower's stdout.
fn follow_delays(base: &Path, poll_ms: u64, appends: u64) -> Vec<u64> {
    let dir = base.join(format!("follow-{poll_ms}"));
    let log = Log::open(&dir, Options::default().compact_after_bytes(None))
        .unwrap()
        .log;
    log.begin_run("warm-up", "s", None).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_inflight"))
        .args(["dump", dir.to_str().unwrap(), "--follow", "--json"])
        .args(["--poll-ms", &poll_ms.to_string()])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let (tx, rx) = mpsc::channel::<(u64, Instant)>();
    let lines = BufReader::new(child.stdout.take().unwrap());
    std::thread::spawn(move || {
        for line in lines.lines() {
            let Ok(line) = line else { break };
            let arrived = Instant::now();
            let v: serde_json::Value = serde_json::from_str(&line).unwrap();
            let seq = if v["item"] == "end" {
                0
            } else if v["item"] == "event" {
                v["seq"].as_u64().unwrap()
            } else {
                continue;
            };
            if tx.send((seq, arrived)).is_err() {
                break;
            }
        }
    });
    while rx.recv().unwrap().0 != 0 {} // the end of the first read
    let mut delays = Vec::new();
    for i in 0..appends {
        // A random moment within the poll cycle.
        std::thread::sleep(Duration::from_micros(fastrand::u64(0..2 * poll_ms * 1000)));
        let key = format!("follow:{}", i % 10);
        log.begin_run(&key, "s", None).unwrap();
        let durable = Instant::now();
        let seq = i + 2; // after the warm-up record
        let (got, arrived) = rx.recv_timeout(Duration::from_secs(10)).unwrap();
        assert_eq!(got, seq);
        delays.push(arrived.duration_since(durable).as_micros() as u64);
    }
    child.kill().unwrap();
    child.wait().unwrap();
    drop(log);
    std::fs::remove_dir_all(&dir).unwrap();
    delays
}

fn main() {
    let base: PathBuf = std::env::var_os("INFLIGHT_BENCH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(std::env::temp_dir)
        .join(format!("inflight-offline-bench-{}", std::process::id()));
    std::fs::create_dir_all(&base).unwrap();
    let cold = std::env::var("INFLIGHT_BENCH_DROP_CACHES").as_deref() == Ok("1");

    let rows = dump_throughput(&base);
    println!(
        "read speed, best of 3, page cache {}:",
        if cold { "dropped before each" } else { "warm" }
    );
    println!("| | MiB/s |\n|---|---:|");
    for (name, value) in rows.iter().filter(|r| !r.0.starts_with('(')) {
        println!("| {name} | {value:.0} |");
    }

    let appends = env_u64("INFLIGHT_BENCH_FOLLOW_EVENTS", 200);
    let mut follow = Vec::new();
    println!("\ndump --follow, append returned -> line printed, {appends} appends:");
    println!("| --poll-ms | p50 ms | p99 ms | max ms |\n|---:|---:|---:|---:|");
    for poll_ms in [50, 10] {
        let mut d = follow_delays(&base, poll_ms, appends);
        d.sort_unstable();
        let ms = |us: u64| us as f64 / 1000.0;
        let (p50, p99, max) = (
            percentile_or_zero(&d, P50),
            percentile_or_zero(&d, P99),
            percentile_or_zero(&d, MAX),
        );
        println!(
            "| {poll_ms} | {:.1} | {:.1} | {:.1} |",
            ms(p50),
            ms(p99),
            ms(max)
        );
        follow.push(
            serde_json::json!({"poll_ms": poll_ms, "p50_us": p50, "p99_us": p99, "max_us": max}),
        );
    }
    std::fs::remove_dir_all(&base).unwrap();

    let reads: serde_json::Map<String, serde_json::Value> = rows
        .iter()
        .map(|(name, v)| (name.clone(), serde_json::json!((v * 10.0).round() / 10.0)))
        .collect();
    println!(
        "{}",
        serde_json::json!({"bench": "offline_tools", "cold": cold, "mib_per_s": reads, "follow": follow})
    );
}
