//! `inflight` against its peers, in one process and on one file system, with durability on:
//! the same workload of starts and completions (each thread alternates start(g) and
//! complete(g) on keys of its own; an event counts once its call returned durably) through
//!
//! - the disk's limit: a plain loop of write + fdatasync of one event's frame;
//! - `inflight` at 1, 4, 16 and 64 threads, and through its async front (`AsyncLog`, feature
//!   `tokio`) from 64 and 1,000 tokio tasks on a runtime of two workers;
//! - the design it replaces: a JSON map of running runs, rewritten to a temporary file,
//!   fsynced, renamed over the old one and the directory fsynced on every event, holding 100
//!   and 10,000 running runs besides the workload's own;
//! - SQLite in WAL mode with `synchronous=FULL` (rusqlite, bundled SQLite): an insert per start
//!   and a delete per completion, one connection per thread;
//! - okaywal: one entry committed per event.
//!
//! Run with `cargo bench --bench compare` (3 s per case), or `cargo bench --bench compare --
//! --quick` (1 s per case, under a minute in all). `INFLIGHT_BENCH_DIR` chooses the directory
//! (default: the system's temporary directory). Prints a table and one JSON line.

use inflight::percentile::{P50, P99, P999, percentile_or_zero};
use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use inflight::{Generation, Log, Options, Run, UnixMs};

/// Thread counts for the cases that run with several.
const THREADS: [usize; 4] = [1, 4, 16, 64];

const META: &str = "{\"resume_from\":\"msg-1234567\",\"platform\":\"telegram\"}";

fn key(thread: usize, i: u64) -> String {
    format!("agent:main:telegram:dm:{thread}:{}", i % 64)
}

fn session(i: u64) -> String {
    format!("20261127_{i:08x}")
}

fn now_ms() -> u64 {
    inflight::environment::now_ms()
}

/// One system under test: records a start or a completion durably.
trait Target: Send + Sync {
    fn start(&self, thread: usize, i: u64);
    fn complete(&self, thread: usize, i: u64);
}

struct Result_ {
    name: String,
    threads: usize,
    events: u64,
    seconds: f64,
    p50: u32,
    p99: u32,
    p999: u32,
}

impl Result_ {
    fn rate(&self) -> f64 {
        self.events as f64 / self.seconds.max(1e-9)
    }
}

/// Runs `target` with `threads` threads for `seconds`.
fn measure(name: &str, target: Arc<dyn Target>, threads: usize, seconds: f64) -> Result_ {
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let workers: Vec<_> = (0..threads)
        .map(|t| {
            let (target, stop) = (target.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut samples = Vec::new();
                let mut i = 1u64;
                while !stop.load(Ordering::Relaxed) {
                    let s = Instant::now();
                    target.start(t, i);
                    samples.push(s.elapsed().as_micros() as u32);
                    let s = Instant::now();
                    target.complete(t, i);
                    samples.push(s.elapsed().as_micros() as u32);
                    i += 1;
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
    let seconds = started.elapsed().as_secs_f64();
    samples.sort_unstable();
    let pct = |p| percentile_or_zero(&samples, p);
    Result_ {
        name: name.to_string(),
        threads,
        events: samples.len() as u64,
        seconds,
        p50: pct(P50),
        p99: pct(P99),
        p999: pct(P999),
    }
}

/// The log through its async front: `tasks` tokio tasks on a runtime of two workers, each
/// starting and completing runs like a thread of [`measure`] does.
fn measure_async(name: &str, log: Log, tasks: usize, seconds: f64) -> Result_ {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime");
    let log = inflight::asynclog::AsyncLog::new(log);
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let mut samples: Vec<u32> = runtime.block_on(async {
        let workers: Vec<_> = (0..tasks)
            .map(|t| {
                let (log, stop) = (log.clone(), stop.clone());
                tokio::spawn(async move {
                    let mut samples = Vec::new();
                    let mut i = 1u64;
                    while !stop.load(Ordering::Relaxed) {
                        let s = Instant::now();
                        let run = Run::new(key(t, i), session(i), Generation(i), UnixMs(now_ms()))
                            .with_meta(META);
                        log.mark_running(run).await.unwrap();
                        samples.push(s.elapsed().as_micros() as u32);
                        let s = Instant::now();
                        log.mark_completed(key(t, i), i).await.unwrap();
                        samples.push(s.elapsed().as_micros() as u32);
                        i += 1;
                    }
                    samples
                })
            })
            .collect();
        let wait = Duration::from_secs_f64(seconds);
        tokio::task::spawn_blocking(move || std::thread::sleep(wait))
            .await
            .expect("sleep");
        stop.store(true, Ordering::Relaxed);
        let mut all = Vec::new();
        for w in workers {
            all.extend(w.await.expect("task"));
        }
        all
    });
    let seconds = started.elapsed().as_secs_f64();
    samples.sort_unstable();
    let pct = |p| percentile_or_zero(&samples, p);
    Result_ {
        name: name.to_string(),
        threads: tasks,
        events: samples.len() as u64,
        seconds,
        p50: pct(P50),
        p99: pct(P99),
        p999: pct(P999),
    }
}

/// The disk's limit: one writer appending one event's frame with write + fdatasync.
struct Plain {
    file: File,
    frame: Vec<u8>,
    offset: Mutex<u64>,
}

impl Target for Plain {
    fn start(&self, _: usize, _: u64) {
        let mut offset = self.offset.lock().unwrap();
        inflight::storage::write_all_at(&self.file, &self.frame, *offset).unwrap();
        self.file.sync_data().unwrap();
        *offset += self.frame.len() as u64;
    }
    fn complete(&self, t: usize, i: u64) {
        self.start(t, i);
    }
}

struct Inflight(Log);

impl Target for Inflight {
    fn start(&self, t: usize, i: u64) {
        let run = Run::new(key(t, i), session(i), Generation(i), UnixMs(now_ms())).with_meta(META);
        self.0.mark_running(run).unwrap();
    }
    fn complete(&self, t: usize, i: u64) {
        self.0.mark_completed(&key(t, i), i).unwrap();
    }
}

/// The design `inflight` replaces: the whole map rewritten and renamed on every event.
struct JsonFile {
    dir: PathBuf,
    runs: Mutex<BTreeMap<String, serde_json::Value>>,
}

impl JsonFile {
    fn new(dir: &Path, preloaded: usize) -> JsonFile {
        std::fs::create_dir_all(dir).unwrap();
        let runs = (0..preloaded)
            .map(|n| {
                let value = serde_json::json!({"session_id": session(n as u64), "started_at": 1_764_150_000.5});
                (format!("agent:main:http:idle-{n}"), value)
            })
            .collect();
        JsonFile {
            dir: dir.to_path_buf(),
            runs: Mutex::new(runs),
        }
    }

    fn rewrite(&self, runs: &BTreeMap<String, serde_json::Value>) {
        let tmp = self.dir.join("agent_checkpoints.json.tmp");
        let mut file = File::create(&tmp).unwrap();
        file.write_all(&serde_json::to_vec(runs).unwrap()).unwrap();
        file.sync_all().unwrap();
        std::fs::rename(&tmp, self.dir.join("agent_checkpoints.json")).unwrap();
        File::open(&self.dir).unwrap().sync_all().unwrap();
    }
}

impl Target for JsonFile {
    fn start(&self, t: usize, i: u64) {
        let mut runs = self.runs.lock().unwrap();
        let value =
            serde_json::json!({"session_id": session(i), "started_at": now_ms() as f64 / 1000.0});
        runs.insert(key(t, i), value);
        self.rewrite(&runs);
    }
    fn complete(&self, t: usize, i: u64) {
        let mut runs = self.runs.lock().unwrap();
        runs.remove(&key(t, i));
        self.rewrite(&runs);
    }
}

/// SQLite in WAL mode with synchronous=FULL, one connection per thread.
struct Sqlite {
    connections: Vec<Mutex<rusqlite::Connection>>,
}

impl Sqlite {
    fn new(path: &Path, threads: usize) -> Sqlite {
        let open = || {
            let c = rusqlite::Connection::open(path).unwrap();
            c.busy_timeout(Duration::from_secs(60)).unwrap();
            c.pragma_update(None, "journal_mode", "WAL").unwrap();
            c.pragma_update(None, "synchronous", "FULL").unwrap();
            c
        };
        open()
            .execute_batch(
                "CREATE TABLE IF NOT EXISTS runs (key TEXT PRIMARY KEY, session_id TEXT, \
                 generation INTEGER, started_at_ms INTEGER, meta TEXT)",
            )
            .unwrap();
        Sqlite {
            connections: (0..threads).map(|_| Mutex::new(open())).collect(),
        }
    }
}

impl Target for Sqlite {
    fn start(&self, t: usize, i: u64) {
        let c = self.connections[t].lock().unwrap();
        c.prepare_cached("INSERT OR REPLACE INTO runs VALUES (?1, ?2, ?3, ?4, ?5)")
            .unwrap()
            .execute(rusqlite::params![
                key(t, i),
                session(i),
                i as i64,
                now_ms() as i64,
                META
            ])
            .unwrap();
    }
    fn complete(&self, t: usize, i: u64) {
        let c = self.connections[t].lock().unwrap();
        c.prepare_cached("DELETE FROM runs WHERE key = ?1 AND generation <= ?2")
            .unwrap()
            .execute(rusqlite::params![key(t, i), i as i64])
            .unwrap();
    }
}

/// okaywal: one entry committed per event.
struct OkayWal(okaywal::WriteAheadLog);

impl OkayWal {
    fn write(&self, bytes: &[u8]) {
        let mut entry = self.0.begin_entry().unwrap();
        entry.write_chunk(bytes).unwrap();
        entry.commit().unwrap();
    }
}

impl Target for OkayWal {
    fn start(&self, t: usize, i: u64) {
        let run = Run::new(key(t, i), session(i), Generation(i), UnixMs(now_ms())).with_meta(META);
        self.write(&inflight::event::encode_event(&inflight::Event::Started(
            run,
        )));
    }
    fn complete(&self, t: usize, i: u64) {
        let event = inflight::Event::Completed {
            key: key(t, i),
            generation: i,
            at_ms: now_ms(),
        };
        self.write(&inflight::event::encode_event(&event));
    }
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let seconds = if quick { 1.0 } else { 3.0 };
    let base = std::env::var_os("INFLIGHT_BENCH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    let tmp = tempfile::tempdir_in(&base).expect("temp dir");
    let dir = |name: &str| tmp.path().join(name);
    println!(
        "in {} ({seconds} s per case; every event durable before its call returns)",
        base.display()
    );

    let mut results = Vec::new();
    let payload = inflight::event::encode_event(&inflight::Event::Started(
        Run::new(key(0, 1), session(1), Generation(1), UnixMs(now_ms())).with_meta(META),
    ));
    let mut frame = Vec::new();
    inflight::frame::encode_frame(7, 1, &payload, &mut frame);
    let plain = Plain {
        file: OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(true)
            .open(dir("plain"))
            .unwrap(),
        frame,
        offset: Mutex::new(0),
    };
    results.push(measure(
        "plain write + fdatasync (the limit)",
        Arc::new(plain),
        1,
        seconds,
    ));
    for threads in THREADS {
        let options = Options::default().compact_after_bytes(None);
        let log = Log::open(dir(&format!("inflight-{threads}")), options)
            .unwrap()
            .log;
        results.push(measure(
            "inflight",
            Arc::new(Inflight(log)),
            threads,
            seconds,
        ));
    }
    for tasks in [64, 1000] {
        let options = Options::default().compact_after_bytes(None);
        let log = Log::open(dir(&format!("inflight-async-{tasks}")), options)
            .unwrap()
            .log;
        results.push(measure_async(
            "inflight async front (tokio tasks)",
            log,
            tasks,
            seconds,
        ));
    }
    for preloaded in [100, 10_000] {
        let json = JsonFile::new(&dir(&format!("json-{preloaded}")), preloaded);
        let name = format!("JSON rewrite, {preloaded} running");
        results.push(measure(&name, Arc::new(json), 1, seconds));
    }
    for threads in THREADS {
        let sqlite = Sqlite::new(&dir(&format!("sqlite-{threads}.db")), threads);
        results.push(measure(
            "SQLite WAL synchronous=FULL",
            Arc::new(sqlite),
            threads,
            seconds,
        ));
    }
    for threads in THREADS {
        let wal =
            okaywal::WriteAheadLog::recover(dir(&format!("okaywal-{threads}")), okaywal::LogVoid)
                .unwrap();
        results.push(measure(
            "okaywal, commit per event",
            Arc::new(OkayWal(wal)),
            threads,
            seconds,
        ));
    }

    let limit = results[0].rate();
    // Each row against inflight's threads at the same count (the async rows' 1,000 tasks
    // against its 64 threads, the most it runs).
    let inflight_at = |threads: usize| {
        results
            .iter()
            .filter(|r| r.name == "inflight" && r.threads <= threads)
            .max_by_key(|r| r.threads)
            .map_or(1.0, Result_::rate)
    };
    println!(
        "{:<36} {:>7} {:>10} {:>8} {:>8} {:>9} {:>8} {:>10}",
        "", "threads", "events/s", "p50 µs", "p99 µs", "p99.9 µs", "÷ limit", "÷ inflight"
    );
    for r in &results {
        println!(
            "{:<36} {:>7} {:>10.0} {:>8} {:>8} {:>9} {:>8.2} {:>10.2}",
            r.name,
            r.threads,
            r.rate(),
            r.p50,
            r.p99,
            r.p999,
            r.rate() / limit,
            r.rate() / inflight_at(r.threads),
        );
    }
    let json: Vec<serde_json::Value> = results
        .iter()
        .map(|r| {
            serde_json::json!({
                "name": r.name, "threads": r.threads, "events": r.events, "seconds": r.seconds,
                "events_per_s": r.rate().round(), "p50_us": r.p50, "p99_us": r.p99, "p999_us": r.p999,
                "ratio_to_limit": r.rate() / limit, "ratio_to_inflight": r.rate() / inflight_at(r.threads),
            })
        })
        .collect();
    println!(
        "{}",
        serde_json::json!({ "dir": base, "seconds_each": seconds, "results": json })
    );
}
