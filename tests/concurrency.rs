//! The handle is `Send + Sync`: many threads append at once, every acknowledged event is in the
//! log, and the replayed state equals the live one.

mod common;

use std::sync::Arc;

use common::{live, open, run};
use inflight::{Log, Policy};

fn assert_send_sync<T: Send + Sync>() {}

#[test]
fn many_threads_append_and_replay_equals_live() {
    assert_send_sync::<Log>();
    let dir = tempfile::tempdir().unwrap();
    let (log, _) = open(dir.path());
    let log = Arc::new(log);
    let threads: Vec<_> = (0..8)
        .map(|t| {
            let log = Arc::clone(&log);
            std::thread::spawn(move || {
                for g in 1..=25 {
                    let key = format!("t{t}");
                    log.mark_running(run(&key, g)).unwrap();
                    if g % 2 == 0 {
                        log.mark_completed(&key, g).unwrap();
                    }
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let live_now = live(&log);
    assert_eq!(
        live_now.len(),
        8,
        "each key's last run (25) is still running"
    );
    assert!(live_now.iter().all(|(_, g)| *g == 25));
    let replayed = Log::read_only(dir.path(), Policy::Strict).unwrap();
    assert_eq!(replayed.report.records, 8 * (25 + 12));
    let counters = log.counters();
    assert_eq!(replayed.report.counters, counters);
    drop(log);
    let (log, _) = open(dir.path());
    assert_eq!(live(&log), live_now);
}
