//! A failed write or sync poisons the handle: every later call fails until the log is reopened,
//! and the failure is never reported as success. What failed is told by the storage's typed
//! error (`StoreError`: the operating system, a fleet's fencing, a database statement), and
//! each is its own `Error` variant.

mod common;

use std::io;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use common::{Flaky, MakeError, run};
use inflight::Opened;
use inflight::error::{DatabaseError, DatabaseFailure, FencedError, StoreError};
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

fn fenced() -> StoreError {
    StoreError::Fenced(FencedError {
        instance: "gw-1".into(),
        by: "gw-2".into(),
        epoch: 7,
    })
}

fn timed_out() -> StoreError {
    StoreError::Database(DatabaseError {
        failure: DatabaseFailure::TimedOut,
        detail: "the database did not answer in time".into(),
    })
}

fn injected_eio() -> StoreError {
    StoreError::Io(io::Error::other("injected EIO"))
}

/// Appends one run, then makes every sync fail with what `make` makes: the first failed
/// append's error, and the next call's.
fn failed_append(make: MakeError) -> (Error, Error) {
    let dir = tempfile::tempdir().unwrap();
    let flaky = Arc::new(Flaky::default());
    let Opened { log, .. } =
        Log::open_with_storage(flaky.clone(), dir.path(), Options::default()).unwrap();
    log.mark_running(run("a", 1)).unwrap();
    *flaky.sync_failure.lock().unwrap() = Some(make);
    let first = log.mark_running(run("b", 1)).unwrap_err();
    let next = log.mark_running(run("c", 1)).unwrap_err();
    (first, next)
}

#[test]
fn a_fenced_sync_is_error_fenced_on_that_call_and_every_later_one() {
    let (first, next) = failed_append(fenced);
    for e in [&first, &next] {
        match e {
            Error::Fenced {
                instance,
                by,
                epoch,
            } => assert_eq!(
                (instance.as_str(), by.as_str(), *epoch),
                ("gw-1", "gw-2", 7)
            ),
            other => panic!("expected Error::Fenced, got {other:?}"),
        }
        assert!(!e.is_database(), "{e}");
    }
}

#[test]
fn a_database_failure_is_error_database_call_then_a_poisoned_handle_that_says_database() {
    let (first, next) = failed_append(timed_out);
    match &first {
        Error::DatabaseCall { op, source, .. } => {
            assert_eq!(*op, "sync");
            assert_eq!(source.failure, DatabaseFailure::TimedOut);
        }
        other => panic!("expected Error::DatabaseCall, got {other:?}"),
    }
    assert!(first.is_database());
    assert_eq!(first.io_kind(), io::ErrorKind::TimedOut);
    assert!(
        first.to_string().contains("check the database server"),
        "{first}"
    );
    match &next {
        Error::Poisoned { kind, database, .. } => {
            assert!(*database);
            assert_eq!(*kind, io::ErrorKind::TimedOut);
        }
        other => panic!("expected Error::Poisoned, got {other:?}"),
    }
}

#[test]
fn a_disk_failure_is_error_io_then_a_poisoned_handle_that_says_not_database() {
    let (first, next) = failed_append(injected_eio);
    match &first {
        Error::Io { op, source, .. } => {
            assert_eq!(*op, "sync");
            assert_eq!(source.to_string(), "injected EIO");
        }
        other => panic!("expected Error::Io, got {other:?}"),
    }
    assert!(!first.is_database());
    assert!(!first.to_string().contains("database"), "{first}");
    assert!(
        matches!(
            next,
            Error::Poisoned {
                database: false,
                ..
            }
        ),
        "{next:?}"
    );
}

#[test]
fn a_lock_refused_as_fenced_fails_the_open_with_error_fenced() {
    let dir = tempfile::tempdir().unwrap();
    let mut flaky = Flaky::default();
    flaky.lock_failure = Some(fenced);
    let flaky = Arc::new(flaky);
    let e = Log::open_with_storage(flaky, dir.path(), Options::default()).unwrap_err();
    assert!(matches!(e, Error::Fenced { epoch: 7, .. }), "{e:?}");
}

#[test]
fn a_store_error_says_its_kind_and_errno() {
    let enospc = StoreError::Io(io::Error::from_raw_os_error(if cfg!(windows) {
        112
    } else {
        28
    }));
    assert_eq!(enospc.kind(), io::ErrorKind::StorageFull);
    assert!(enospc.raw_os_error().is_some());
    assert_eq!(fenced().kind(), io::ErrorKind::PermissionDenied);
    assert_eq!(fenced().raw_os_error(), None);
    assert_eq!(timed_out().kind(), io::ErrorKind::TimedOut);
    assert_eq!(
        timed_out().to_string(),
        "the database did not answer in time"
    );
}
