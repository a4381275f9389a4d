//! `inflight bench`: what a disk gives a gateway, in the spirit of `pg_test_fsync`. On the file
//! system of one directory it measures the one-writer limit (a plain write + fdatasync loop of
//! one event's frame) and the log's events per second and latency at 1, 4, 16 and 64 threads.

use inflight::percentile::{P50, P99, P999, percentile_or_zero};
use std::fs::OpenOptions;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use inflight::{Generation, Log, Options, Run, UnixMs};

use super::progress::Progress;
use super::{BenchArgs, CliResult, Failure};
use inflight::storage::write_all_at;

/// Thread counts measured.
const THREADS: [usize; 4] = [1, 4, 16, 64];

/// One measurement: events per second and latency percentiles in microseconds.
struct Measured {
    what: String,
    threads: usize,
    events: u64,
    seconds: f64,
    p50: u32,
    p99: u32,
    p999: u32,
}

impl Measured {
    fn rate(&self) -> f64 {
        self.events as f64 / self.seconds.max(1e-9)
    }

    fn json(&self) -> serde_json::Value {
        serde_json::json!({
            "what": self.what,
            "threads": self.threads,
            "events": self.events,
            "seconds": self.seconds,
            "events_per_s": self.rate().round(),
            "p50_us": self.p50,
            "p99_us": self.p99,
            "p999_us": self.p999,
        })
    }
}

fn measured(what: &str, threads: usize, mut samples: Vec<u32>, seconds: f64) -> Measured {
    samples.sort_unstable();
    let pct = |p| percentile_or_zero(&samples, p);
    Measured {
        what: what.to_string(),
        threads,
        events: samples.len() as u64,
        seconds,
        p50: pct(P50),
        p99: pct(P99),
        p999: pct(P999),
    }
}

/// The run every measurement records: a start with a typical key, session id and meta.
fn run(thread: usize, i: u64) -> Run {
    Run::new(
        format!("agent:main:telegram:dm:{thread}:{}", i % 64),
        format!("20261127_{i:08x}"),
        Generation(i),
        UnixMs(inflight::environment::now_ms()),
    )
    .with_meta("{\"resume_from\":\"msg-1234567\",\"platform\":\"telegram\"}")
}

pub(super) fn run_bench(args: BenchArgs) -> CliResult {
    let base = args.dir.clone().unwrap_or_else(|| ".".into());
    let tmp = tempfile::Builder::new()
        .prefix("inflight-bench-")
        .tempdir_in(&base)
        .map_err(|e| Failure::new(1, format!("create a directory in {}: {e}", base.display())))?;
    let seconds = if args.quick { 1.0 } else { 3.0 };
    let progress = Progress::steps(2 + THREADS.len() as u64, args.json);

    progress.step("plain write + fdatasync, growing");
    let growing = plain_loop(tmp.path(), seconds, Placement::Growing)?;
    progress.step("plain overwrite + fdatasync");
    let limit = plain_loop(tmp.path(), seconds, Placement::Preallocated)?;
    let mut results = vec![growing, limit];
    for threads in THREADS {
        progress.step(format!("inflight, {threads} thread(s)"));
        let dir = tmp.path().join(format!("log-{threads}"));
        results.push(log_rate(&dir, threads, seconds)?);
    }
    progress.finish();

    // The limit is the loop that writes as the log does, over space it reserved.
    let limit = results[1].rate();
    let one = results[2].rate();
    if args.json {
        let value = serde_json::json!({
            "dir": base,
            "seconds_each": seconds,
            "results": results.iter().map(Measured::json).collect::<Vec<_>>(),
        });
        println!("{value}");
        return Ok(());
    }
    println!(
        "file system of {} ({} s each; every event synced with fdatasync)",
        base.display(),
        seconds
    );
    println!(
        "{:<42} {:>8} {:>11} {:>9} {:>9} {:>9} {:>9} {:>9}",
        "", "threads", "events/s", "p50 µs", "p99 µs", "p99.9 µs", "÷ limit", "÷ 1 thread"
    );
    for m in &results {
        println!(
            "{:<42} {:>8} {:>11.0} {:>9} {:>9} {:>9} {:>9.2} {:>9.2}",
            m.what,
            m.threads,
            m.rate(),
            m.p50,
            m.p99,
            m.p999,
            m.rate() / limit.max(1e-9),
            m.rate() / one.max(1e-9),
        );
    }
    Ok(())
}

/// How a plain loop places its writes.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Placement {
    /// Appended to a file that grows: each fdatasync also commits the new size.
    Growing,
    /// Written over space filled and synced beforehand, as the log writes into the space it
    /// reserves in each segment: an fdatasync commits the data only. The one-writer limit.
    Preallocated,
}

/// Bytes a preallocated loop overwrites, from the start again when it reaches the end.
const PREALLOCATED_BYTES: usize = 16 << 20;

/// A one-writer loop: one event's frame written with write + fdatasync, again and again.
fn plain_loop(dir: &Path, seconds: f64, placement: Placement) -> Result<Measured, Failure> {
    let path = dir.join(match placement {
        Placement::Growing => "growing",
        Placement::Preallocated => "preallocated",
    });
    let io = |what: &str, e: &dyn std::fmt::Display| {
        Failure::new(1, format!("{what} {}: {e}", path.display()))
    };
    let file = OpenOptions::new()
        .create(true)
        .truncate(true)
        .read(true)
        .write(true)
        .open(&path)
        .map_err(|e| io("create", &e))?;
    let payload = inflight::event::encode_event(&inflight::Event::Started(run(0, 1)));
    let mut frame = Vec::new();
    inflight::frame::encode_frame(7, 1, &payload, &mut frame);
    if placement == Placement::Preallocated {
        let fill = vec![inflight::frame::RESERVED_BYTE; PREALLOCATED_BYTES];
        write_all_at(&file, &fill, 0)
            .and_then(|()| Ok(file.sync_all()?))
            .map_err(|e| io("fill", &e))?;
    }
    let mut samples = Vec::new();
    let mut offset = 0u64;
    let started = Instant::now();
    let deadline = Duration::from_secs_f64(seconds);
    while started.elapsed() < deadline {
        if placement == Placement::Preallocated
            && offset as usize + frame.len() > PREALLOCATED_BYTES
        {
            offset = 0;
        }
        let t = Instant::now();
        write_all_at(&file, &frame, offset)
            .and_then(|()| Ok(file.sync_data()?))
            .map_err(|e| io("write", &e))?;
        offset += frame.len() as u64;
        samples.push(t.elapsed().as_micros().min(u32::MAX as u128) as u32);
    }
    let what = match placement {
        Placement::Growing => "plain write + fdatasync, growing file",
        Placement::Preallocated => "plain overwrite + fdatasync (the limit)",
    };
    Ok(measured(what, 1, samples, started.elapsed().as_secs_f64()))
}

/// The log with `threads` threads, each alternating start and completion on keys of its own.
fn log_rate(dir: &Path, threads: usize, seconds: f64) -> Result<Measured, Failure> {
    let options = Options::default().compact_after_bytes(None);
    let log = Arc::new(Log::open(dir, options)?.log);
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let workers: Vec<_> = (0..threads)
        .map(|t| {
            let (log, stop) = (log.clone(), stop.clone());
            std::thread::spawn(move || -> Result<Vec<u32>, inflight::Error> {
                let mut samples = Vec::new();
                let mut i = 1u64;
                while !stop.load(Ordering::Relaxed) {
                    let r = run(t, i);
                    let key = r.key.clone();
                    let s = Instant::now();
                    log.mark_running(r)?;
                    samples.push(s.elapsed().as_micros().min(u32::MAX as u128) as u32);
                    let s = Instant::now();
                    log.mark_completed(&key, i)?;
                    samples.push(s.elapsed().as_micros().min(u32::MAX as u128) as u32);
                    i += 1;
                }
                Ok(samples)
            })
        })
        .collect();
    std::thread::sleep(Duration::from_secs_f64(seconds));
    stop.store(true, Ordering::Relaxed);
    let mut samples = Vec::new();
    for w in workers {
        samples.extend(w.join().expect("bench worker panicked")?);
    }
    let elapsed = started.elapsed().as_secs_f64();
    Ok(measured("inflight", threads, samples, elapsed))
}
