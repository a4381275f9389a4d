//! A failed write or sync poisons the handle: every later call fails until the log is reopened,
//! and the failure is never reported as success.

mod common;

use std::io;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use common::{Flaky, run};
use inflight::Opened;
use inflight::{Error, Log, Options};

fn poisoned_after(flip: impl Fn(&Flaky)) {
    let dir = tempfile::tempdir().unwrap();
    let flaky = Arc::new(Flaky::default());
    let Opened { log, .. } =
        Log::open_with_storage(flaky.clone(), dir.path(), Options::default()).unwrap();
    log.mark_running(run("a", 1)).unwrap();
    flip(&flaky);
    let failure = log.mark_running(run("b", 1)).unwrap_err();
    assert!(matches!(failure, Error::Io { .. }), "{failure:?}");
    // Healthy storage again: the handle must still refuse, since it cannot know what reached the
    // disk.
    flaky.fail_sync.store(false, Ordering::SeqCst);
    flaky.fail_write.store(false, Ordering::SeqCst);
    for result in [log.mark_running(run("c", 1)), log.mark_completed("a", 1)] {
        // The poisoned handle keeps the kind of the failure: a full disk and a failing one
        // call for different action.
        assert!(
            matches!(&result, Err(Error::Poisoned { kind, .. }) if *kind == failure.io_kind()),
            "{result:?}"
        );
    }
    assert!(matches!(log.close(), Err(Error::Poisoned { .. })));
    assert_eq!(
        common::live(&log),
        vec![("a".into(), 1)],
        "failed events never change the live set"
    );
    drop(log);

    // Reopening recovers a valid log that accepts appends; "b" may or may not be there.
    let (log, report) = common::open(dir.path());
    let keys: Vec<_> = report.running.iter().map(|r| r.run.key.as_str()).collect();
    assert!(keys == ["a"] || keys == ["a", "b"], "{keys:?}");
    assert!(report.corruption.is_empty());
    log.mark_running(run("c", 1)).unwrap();
    drop(log);
    let (_log, report) = common::open(dir.path());
    assert!(report.running.iter().any(|r| r.run.key == "c"));
}

#[test]
fn a_failed_sync_poisons_the_handle_until_reopen() {
    poisoned_after(|f| f.fail_sync.store(true, Ordering::SeqCst));
}

#[test]
fn enospc_partway_through_an_append_poisons_and_the_log_reopens_valid() {
    poisoned_after(|f| f.fail_write.store(true, Ordering::SeqCst));
}

#[test]
fn a_poisoned_handle_says_the_disk_is_full() {
    let dir = tempfile::tempdir().unwrap();
    let flaky = Arc::new(Flaky::default());
    let log = Log::open_with_storage(flaky.clone(), dir.path(), Options::default())
        .unwrap()
        .log;
    flaky.fail_write.store(true, Ordering::SeqCst);
    let failure = log.mark_running(run("a", 1)).unwrap_err();
    assert_eq!(failure.io_kind(), io::ErrorKind::StorageFull);
    let poisoned = log.mark_running(run("b", 1)).unwrap_err();
    assert!(
        matches!(
            poisoned,
            Error::Poisoned {
                kind: io::ErrorKind::StorageFull,
                ..
            }
        ),
        "{poisoned:?}"
    );
}
