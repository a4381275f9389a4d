//! The handle is `Send + Sync`: many threads append at once, every acknowledged event is in the
//! log, and the replayed state equals the live one.

mod common;

use std::sync::Arc;

use common::{live, open, run};
use inflight::store::FileSource;
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
    let replayed = inflight::inspect::read_only(dir.path(), Policy::Strict).unwrap();
    assert_eq!(replayed.report.records, 8 * (25 + 12));
    let counters = log.counters();
    assert_eq!(replayed.report.counters, counters);
    drop(log);
    let (log, _) = open(dir.path());
    assert_eq!(live(&log), live_now);
}

#[test]
fn close_is_the_last_record_even_with_appenders_racing_it() {
    for _ in 0..20 {
        let dir = tempfile::tempdir().unwrap();
        let (log, _) = open(dir.path());
        let log = Arc::new(log);
        let appenders: Vec<_> = (0..3)
            .map(|t| {
                let log = Arc::clone(&log);
                std::thread::spawn(move || {
                    let mut acked = 0;
                    for g in 1.. {
                        match log.mark_running(run(&format!("t{t}"), g)) {
                            Ok(_) => acked += 1,
                            Err(inflight::Error::Closed) => return acked,
                            Err(e) => panic!("{e}"),
                        }
                    }
                    unreachable!()
                })
            })
            .collect();
        std::thread::sleep(std::time::Duration::from_millis(5));
        log.close().unwrap();
        let acked: u64 = appenders.into_iter().map(|t| t.join().unwrap()).sum();
        let mut events = Vec::new();
        inflight::inspect::for_each_event(
            &FileSource::new(&inflight::FsStorage::default(), dir.path()),
            Policy::Strict,
            |_, e| events.push(e.to_event()),
        )
        .unwrap();
        assert!(
            matches!(events.last(), Some(inflight::Event::Shutdown { .. })),
            "the shutdown must be the last record"
        );
        assert_eq!(events.len() as u64, acked + 1);
    }
}

/// A ticket is `Clone`: several threads may wait for the same event, and every one of them is
/// woken when it is durable, whichever thread leads its batch.
#[test]
fn every_thread_waiting_for_one_ticket_returns() {
    let dir = tempfile::tempdir().unwrap();
    let (log, _) = open(dir.path());
    let log = Arc::new(log);
    for round in 0..100u64 {
        let tickets: Vec<_> = (0..3)
            .map(|k| {
                log.submit(inflight::Event::Completed {
                    key: format!("k{k}"),
                    generation: round,
                    at_ms: round,
                })
                .unwrap()
            })
            .collect();
        let (done, finished) = std::sync::mpsc::channel();
        for i in 0..6 {
            let (log, ticket, done) = (log.clone(), tickets[i % 3].clone(), done.clone());
            std::thread::spawn(move || {
                log.wait(&ticket).unwrap();
                done.send(()).unwrap();
            });
        }
        for _ in 0..6 {
            finished
                .recv_timeout(std::time::Duration::from_secs(20))
                .unwrap_or_else(|_| panic!("round {round}: a waiter was never woken"));
        }
    }
}
