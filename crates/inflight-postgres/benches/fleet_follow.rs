//! Following a fleet's log of about 100 MB in PostgreSQL, as `inflight dump --follow --database`
//! does (`Reader::poll` over `Fleet::source`): the bytes of chunk data each poll
//! fetches from the server and its time, for the first poll (the whole log), a poll after 10
//! new events, and an idle poll.
//!
//! Needs `INFLIGHT_PG_URL` (`scripts/pg-cluster start DIR` prints one). `cargo bench --bench
//! fleet_follow`; `INFLIGHT_FOLLOW_MB` sets the log's size (100 by default). Prints a table and
//! one JSON line.

use std::ops::ControlFlow;
use std::sync::Arc;
use std::time::Instant;

use inflight::inspect::{Item, Reader};
use inflight::{Generation, Opened, Options, Run, UnixMs};
use inflight_postgres::Fleet;

const THREADS: u64 = 16;
const ROUNDS: usize = 5;

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let Ok(url) = std::env::var("INFLIGHT_PG_URL") else {
        eprintln!("set INFLIGHT_PG_URL (scripts/pg-cluster start DIR prints one)");
        return;
    };
    let megabytes: u64 = std::env::var("INFLIGHT_FOLLOW_MB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100);
    inflight_postgres::Fleet::new(&url)
        .create_schema()
        .expect("the schema");
    let instance = format!(
        "follow-bench-{}-{}",
        std::process::id(),
        inflight::environment::now_ms()
    );
    // No compaction: the log keeps every segment, as a log between two compactions does.
    let options = Options::default().compact_after_bytes(None);
    let Opened { log, .. } = Fleet::new(&url).open(&instance, options).expect("open");
    let log = Arc::new(log);
    let meta = format!("{{\"resume_from\":\"{}\"}}", "m".repeat(3_500));
    let run = |i: u64| {
        Run::new(format!("k{i}"), format!("s{i}"), Generation(1), UnixMs(i)).with_meta(meta.clone())
    };
    let events = megabytes * 1_000_000 / 3_600;
    let built = Instant::now();
    std::thread::scope(|s| {
        for t in 0..THREADS {
            let (log, run) = (&log, &run);
            s.spawn(move || {
                for i in (t..events).step_by(THREADS as usize) {
                    log.mark_running(run(i)).expect("append");
                }
            });
        }
    });
    let source = Fleet::new(&url).source(&instance).expect("the source");
    let mut reader = Reader::new(&source);
    let mut poll = || {
        let (before, start) = (source.bytes_fetched(), Instant::now());
        let mut seen = 0u64;
        reader
            .poll(|item| {
                if let Item::Event(_) = item {
                    seen += 1;
                }
                ControlFlow::Continue(())
            })
            .expect("poll");
        (
            seen,
            source.bytes_fetched() - before,
            start.elapsed().as_secs_f64(),
        )
    };
    let first = poll();
    assert_eq!(first.0, events, "the first poll reads every event");
    eprintln!(
        "{events} events of about 3.6 KB written in {:.1} s; the first poll fetched {:.1} MB",
        built.elapsed().as_secs_f64(),
        first.1 as f64 / 1e6
    );
    let mut after = Vec::new();
    for round in 0..ROUNDS as u64 {
        for i in 0..10 {
            log.mark_running(run(events + round * 10 + i))
                .expect("append");
        }
        let polled = poll();
        assert_eq!(polled.0, 10);
        after.push(polled);
    }
    let idle = poll();
    assert_eq!(idle.0, 0);
    let median = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let after_bytes = median(after.iter().map(|p| p.1 as f64).collect());
    let after_s = median(after.iter().map(|p| p.2).collect());
    println!("| poll | events | bytes fetched | ms |");
    println!("|---|---:|---:|---:|");
    println!(
        "| first (the whole log) | {} | {} | {:.1} |",
        first.0,
        first.1,
        first.2 * 1e3
    );
    println!(
        "| after 10 new events (median of {ROUNDS}) | 10 | {after_bytes:.0} | {:.2} |",
        after_s * 1e3
    );
    println!("| idle | 0 | {} | {:.2} |", idle.1, idle.2 * 1e3);
    println!(
        "{}",
        serde_json::json!({
            "bench": "fleet_follow",
            "events": events,
            "first_poll": {"bytes": first.1, "seconds": first.2},
            "poll_after_10_events": {"bytes": after_bytes, "seconds": after_s},
            "idle_poll": {"bytes": idle.1, "seconds": idle.2},
        })
    );
}
