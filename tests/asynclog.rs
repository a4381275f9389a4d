//! The async front: thousands of tasks record durably, share syncs, and never block the
//! runtime's worker threads on the disk.

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
    let replayed = Log::read_only(dir.path(), Policy::Strict).unwrap();
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
