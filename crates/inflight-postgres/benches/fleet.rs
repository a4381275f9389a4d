//! A fleet's log in PostgreSQL, beside the local log and beside the way durable-workflow
//! systems keep run status in PostgreSQL, all in one run on the same server:
//!
//! - `inflight, local directory`: `Log::open` on a temporary directory (fdatasync per group
//!   commit);
//! - `inflight, PostgreSQL`: `Fleet::open` (one transaction per group commit, over one
//!   connection);
//! - `status table`: one row per key, one transaction per event (`INSERT ... ON CONFLICT DO
//!   UPDATE` for a start, `UPDATE` for a completion), one connection per thread, as a
//!   connection pool gives each worker its own.
//!
//! Each thread alternates start(g) and complete(g) on keys of its own; an event counts once its
//! call returned (committed). Events/s and per-call latency at 1, 16 and 64 threads; then the
//! takeover of an instance with 10,000 and 100,000 runs in flight (`inflight_postgres::Fleet::take_over`: fence and
//! replay), beside the status table's takeover (`UPDATE ... SET owner = B WHERE owner = A AND
//! running RETURNING ...`).
//!
//! Needs `INFLIGHT_PG_URL` (`scripts/pg-cluster start DIR` prints one). `cargo bench --bench
//! fleet` (3 s per case) or `-- --quick` (1 s). Prints a table and one JSON line.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use inflight::percentile::{P50, P99, percentile_or_zero};
use inflight::{Generation, Log, Opened, Options, Run, UnixMs};
use postgres::{Client, NoTls};

const THREADS: [usize; 3] = [1, 16, 64];
const META: &str = "{\"resume_from\":\"msg-1234567\",\"platform\":\"telegram\"}";

trait Target: Send + Sync {
    /// One start (`complete == false`) or completion of generation `g` of `key`, durable.
    fn record(&self, thread: usize, key: &str, g: u64, complete: bool);
}

struct LogTarget(Log);

impl Target for LogTarget {
    fn record(&self, _: usize, key: &str, g: u64, complete: bool) {
        if complete {
            self.0.mark_completed(key, g).unwrap();
        } else {
            let run = Run::new(key, format!("s{g}"), Generation(g), UnixMs(g)).with_meta(META);
            self.0.mark_running(run).unwrap();
        }
    }
}

/// The status table: a connection per thread.
struct StatusTable {
    owner: String,
    connections: Vec<Mutex<Client>>,
}

const STATUS_SQL: &str = "
CREATE TABLE IF NOT EXISTS bench_run_status (
    key text PRIMARY KEY,
    owner text NOT NULL,
    generation bigint NOT NULL,
    session_id text NOT NULL,
    started_at_ms bigint NOT NULL,
    meta text,
    running boolean NOT NULL
);
CREATE INDEX IF NOT EXISTS bench_run_status_owner ON bench_run_status (owner) WHERE running;";

impl StatusTable {
    fn new(url: &str, owner: &str, threads: usize) -> StatusTable {
        let connections = (0..threads)
            .map(|_| Mutex::new(Client::connect(url, NoTls).unwrap()))
            .collect();
        StatusTable {
            owner: owner.to_string(),
            connections,
        }
    }
}

impl Target for StatusTable {
    fn record(&self, thread: usize, key: &str, g: u64, complete: bool) {
        let mut c = self.connections[thread].lock().unwrap();
        let g = g as i64;
        if complete {
            c.execute(
                "UPDATE bench_run_status SET running = false WHERE key = $1 AND generation = $2",
                &[&key, &g],
            )
            .unwrap();
        } else {
            c.execute(
                "INSERT INTO bench_run_status VALUES ($1, $2, $3, $4, $5, $6, true)
                 ON CONFLICT (key) DO UPDATE SET owner = $2, generation = $3, session_id = $4,
                   started_at_ms = $5, meta = $6, running = true
                 WHERE bench_run_status.generation < $3",
                &[&key, &self.owner, &g, &format!("s{g}"), &g, &META],
            )
            .unwrap();
        }
    }
}

struct Measured {
    events: u64,
    seconds: f64,
    p50: u32,
    p99: u32,
}

fn measure(target: Arc<dyn Target>, prefix: &str, threads: usize, seconds: f64) -> Measured {
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let (target, stop, prefix) = (target.clone(), stop.clone(), prefix.to_string());
            std::thread::spawn(move || {
                let mut samples: Vec<u32> = Vec::new();
                let mut i = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let key = format!("{prefix}:{t}:{}", (i / 2) % 16);
                    let g = i / 32 + 1;
                    let began = Instant::now();
                    target.record(t, &key, g, i % 2 == 1);
                    samples.push(began.elapsed().as_micros().min(u32::MAX as u128) as u32);
                    i += 1;
                }
                // End on a completion so the next case starts clean: not counted.
                if i % 2 == 1 {
                    let key = format!("{prefix}:{t}:{}", (i / 2) % 16);
                    target.record(t, &key, i / 32 + 1, true);
                }
                samples
            })
        })
        .collect();
    std::thread::sleep(Duration::from_secs_f64(seconds));
    stop.store(true, Ordering::Relaxed);
    let mut samples: Vec<u32> = handles
        .into_iter()
        .flat_map(|h| h.join().unwrap())
        .collect();
    let seconds = started.elapsed().as_secs_f64();
    samples.sort_unstable();
    Measured {
        events: samples.len() as u64,
        seconds,
        p50: percentile_or_zero(&samples, P50),
        p99: percentile_or_zero(&samples, P99),
    }
}

/// Fills `target` with `runs` runs in flight from 64 threads (not timed).
fn fill(target: Arc<dyn Target>, prefix: &str, runs: usize) {
    let threads = 64;
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let (target, prefix) = (target.clone(), prefix.to_string());
            std::thread::spawn(move || {
                for i in (t..runs).step_by(threads) {
                    target.record(t, &format!("{prefix}:{i}"), 1, false);
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
}

fn unique(name: &str) -> String {
    format!(
        "{name}-{}-{}",
        std::process::id(),
        inflight::environment::now_ms()
    )
}

fn main() {
    let Ok(url) = std::env::var("INFLIGHT_PG_URL") else {
        eprintln!("set INFLIGHT_PG_URL (scripts/pg-cluster start DIR prints one)");
        std::process::exit(2);
    };
    let quick = std::env::args().any(|a| a == "--quick");
    let seconds = if quick { 1.0 } else { 3.0 };
    inflight_postgres::Fleet::new(&url).create_schema().unwrap();
    let mut admin = Client::connect(&url, NoTls).unwrap();
    admin.batch_execute(STATUS_SQL).unwrap();
    admin.batch_execute("TRUNCATE bench_run_status").unwrap();
    let settings: Vec<String> = [
        "synchronous_commit",
        "fsync",
        "wal_sync_method",
        "server_version",
    ]
    .iter()
    .map(|s| {
        let v: String = admin.query_one(&format!("SHOW {s}"), &[]).unwrap().get(0);
        format!("{s}={v}")
    })
    .collect();
    println!("server: {}", settings.join(" "));

    let tmp =
        tempfile::tempdir_in(std::env::var("INFLIGHT_BENCH_DIR").unwrap_or_else(|_| ".".into()))
            .unwrap();
    let local: Arc<dyn Target> = Arc::new(LogTarget(
        Log::open(tmp.path().join("log"), Options::default())
            .unwrap()
            .log,
    ));
    let instance = unique("bench");
    let Opened { log, .. } = inflight_postgres::Fleet::new(&url)
        .open(&instance, Options::default())
        .unwrap();
    let pg: Arc<dyn Target> = Arc::new(LogTarget(log));
    let status: Arc<dyn Target> = Arc::new(StatusTable::new(&url, &instance, 64));

    let mut rows = Vec::new();
    println!(
        "{:<28} {:>7} {:>10} {:>8} {:>8} {:>9}",
        "", "threads", "events/s", "p50 µs", "p99 µs", "÷ 1 thread"
    );
    for (name, target) in [
        ("inflight, local directory", &local),
        ("inflight, PostgreSQL", &pg),
        ("status table, PostgreSQL", &status),
    ] {
        let mut one = 0.0;
        for threads in THREADS {
            let m = measure(target.clone(), &format!("w{threads}"), threads, seconds);
            let rate = m.events as f64 / m.seconds;
            if threads == 1 {
                one = rate;
            }
            println!(
                "{name:<28} {threads:>7} {rate:>10.0} {:>8} {:>8} {:>9.1}",
                m.p50,
                m.p99,
                rate / one
            );
            rows.push(serde_json::json!({
                "target": name, "threads": threads, "events_per_s": rate.round(),
                "p50_us": m.p50, "p99_us": m.p99,
            }));
        }
    }

    println!("{:<28} {:>10} {:>12}", "takeover", "runs", "seconds");
    let mut takeovers = Vec::new();
    for runs in [10_000usize, 100_000] {
        let dead = unique(&format!("dead{runs}"));
        let Opened { log, .. } = inflight_postgres::Fleet::new(&url)
            .open(&dead, Options::default())
            .unwrap();
        let log: Arc<dyn Target> = Arc::new(LogTarget(log));
        fill(log.clone(), "r", runs);
        drop(log);
        let began = Instant::now();
        let taken = inflight_postgres::Fleet::new(&url)
            .take_over_as(
                &dead,
                "bench-survivor",
                inflight_postgres::Taker::CreateIfMissing,
            )
            .unwrap();
        let took = began.elapsed().as_secs_f64();
        assert_eq!(taken.report.running.len(), runs);
        println!("{:<28} {runs:>10} {took:>12.3}", "inflight, PostgreSQL");

        let owner = unique(&format!("status{runs}"));
        let table: Arc<dyn Target> = Arc::new(StatusTable::new(&url, &owner, 64));
        fill(table, &owner, runs);
        let began = Instant::now();
        let moved = admin
            .query(
                "UPDATE bench_run_status SET owner = 'bench-survivor'
                 WHERE owner = $1 AND running
                 RETURNING key, generation, session_id, started_at_ms, meta",
                &[&owner],
            )
            .unwrap();
        let status_took = began.elapsed().as_secs_f64();
        assert_eq!(moved.len(), runs);
        println!(
            "{:<28} {runs:>10} {status_took:>12.3}",
            "status table, PostgreSQL"
        );
        takeovers.push(serde_json::json!({
            "runs": runs, "inflight_s": took, "status_table_s": status_took,
        }));
    }
    println!(
        "{}",
        serde_json::json!({ "server": settings, "throughput": rows, "takeover": takeovers })
    );
}
