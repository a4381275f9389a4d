//! The async front: thousands of tasks record durably, share syncs, and never block the
//! runtime's worker threads on the disk.

mod common;

use common::Flaky;
use inflight::asynclog::AsyncLog;
use inflight::{Log, Options, Policy};

#[test]
fn thousands_of_tasks_share_syncs_and_every_event_is_durable() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let log = AsyncLog::new(Log::open(dir.path(), Options::default()).unwrap().log);
    let tasks = 2000;
    runtime.block_on(async {
        let handles: Vec<_> = (0..tasks)
            .map(|i| {
                let log = log.clone();
                tokio::spawn(async move {
                    let run = log
                        .begin_run(format!("agent:main:http:c-{i}"), "s", None)
                        .await
                        .unwrap();
                    if i % 2 == 0 {
                        log.mark_completed(run.key, run.generation).await.unwrap();
                    }
                })
            })
            .collect();
        for h in handles {
            h.await.unwrap();
        }
    });
    assert_eq!(log.log().running().len(), tasks / 2);
    drop(log);
    let replayed = inflight::inspect::read_only(dir.path(), Policy::Strict).unwrap();
    let report = replayed.report;
    assert_eq!(report.records, (tasks + tasks / 2) as u64);
    assert_eq!(report.running.len(), tasks / 2);
    // Group commit: far fewer frames (each one write and one sync) than events.
    assert!(
        report.last_seq < report.records,
        "{} frames for {} events",
        report.last_seq,
        report.records
    );
}

/// On a runtime of one thread, hundreds of tasks record durably, and not one fdatasync runs on
/// the runtime's thread: the front's flusher thread makes them.
#[test]
fn no_sync_runs_on_the_runtime_thread() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .thread_name("the-runtime")
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let storage = std::sync::Arc::new(Flaky::default());
    let opened = Log::open_with_storage(storage.clone(), dir.path(), Options::default()).unwrap();
    let log = AsyncLog::new(opened.log);
    storage.syncs.lock().unwrap().clear();
    let tasks = 500;
    runtime.block_on(async {
        let handles: Vec<_> = (0..tasks)
            .map(|i| {
                let log = log.clone();
                tokio::spawn(async move {
                    let run = log.begin_run(format!("k{i}"), "s", None).await.unwrap();
                    log.mark_completed(run.key, run.generation).await.unwrap();
                })
            })
            .collect();
        for h in handles {
            h.await.unwrap();
        }
    });
    let syncs = storage.syncs.lock().unwrap().clone();
    assert!(!syncs.is_empty());
    assert!(
        syncs.iter().all(|t| t == "inflight-flusher"),
        "syncs made on: {:?}",
        syncs.iter().collect::<std::collections::BTreeSet<_>>()
    );
    assert!(
        syncs.len() < 2 * tasks,
        "{} syncs for {} events",
        syncs.len(),
        2 * tasks
    );
    assert!(log.log().running().is_empty());
}

/// A failed sync fails every task waiting on it and every later call, and none is left waiting.
#[test]
fn a_failed_sync_wakes_every_waiting_task_with_an_error() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let storage = std::sync::Arc::new(Flaky::default());
    let opened = Log::open_with_storage(storage.clone(), dir.path(), Options::default()).unwrap();
    let log = AsyncLog::new(opened.log);
    storage
        .fail_sync
        .store(true, std::sync::atomic::Ordering::SeqCst);
    let (done, finished) = std::sync::mpsc::channel();
    let watched = log.clone();
    std::thread::spawn(move || {
        let results = runtime.block_on(async {
            let handles: Vec<_> = (0..200)
                .map(|i| {
                    let log = watched.clone();
                    tokio::spawn(async move { log.begin_run(format!("k{i}"), "s", None).await })
                })
                .collect();
            let mut results = Vec::new();
            for h in handles {
                results.push(h.await.unwrap());
            }
            results
        });
        done.send(results).unwrap();
    });
    let results = finished
        .recv_timeout(std::time::Duration::from_secs(30))
        .expect("every task finished");
    assert!(results.iter().all(|r| r.is_err()), "nothing was durable");
    // No caller led the batch (the flusher did): each gets the poisoned handle's error, which
    // carries the failed sync's.
    for r in &results {
        match r {
            Err(inflight::Error::Poisoned { cause, .. }) => {
                assert!(cause.contains("sync"), "{cause}")
            }
            other => panic!("{other:?}"),
        }
    }
    let later = runtime_block(log.mark_completed("k0", 1));
    assert!(
        matches!(later, Err(inflight::Error::Poisoned { .. })),
        "{later:?}"
    );
}

fn runtime_block<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
        .block_on(f)
}
