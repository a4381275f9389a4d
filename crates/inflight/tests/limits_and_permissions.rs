//! Every input limit gives a clear `InvalidInput` and writes nothing; files are owner-only.

mod common;

#[cfg(unix)]
use std::os::unix::fs::PermissionsExt;

use common::{open, run, segment};
use inflight::limits::{KEY_BYTES_MAX, META_BYTES_MAX, SESSION_ID_BYTES_MAX};
use inflight::{Error, Log, Options, Run};
use inflight::{Generation, UnixMs};

fn rejected(log: &Log, run: Run, field: &str) {
    match log.mark_running(run) {
        Err(Error::InvalidInput { field: f, .. }) => assert_eq!(f, field),
        other => panic!("expected InvalidInput for {field}, got {other:?}"),
    }
}

#[test]
fn each_limit_is_enforced_and_nothing_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let (log, _) = open(dir.path());
    let path = segment(dir.path(), 1);
    let before = std::fs::read(&path).unwrap();

    rejected(&log, run("", 1), "key");
    rejected(&log, run(&"k".repeat(KEY_BYTES_MAX + 1), 1), "key");
    rejected(
        &log,
        Run::new(
            "k",
            "s".repeat(SESSION_ID_BYTES_MAX + 1),
            Generation(1),
            UnixMs(1),
        ),
        "session_id",
    );
    rejected(
        &log,
        run("k", 1).with_meta("m".repeat(META_BYTES_MAX + 1)),
        "meta",
    );
    assert!(matches!(
        log.mark_completed("", 1),
        Err(Error::InvalidInput { field: "key", .. })
    ));
    assert!(matches!(
        log.mark_completed(&"k".repeat(KEY_BYTES_MAX + 1), 1),
        Err(Error::InvalidInput { field: "key", .. })
    ));
    assert_eq!(std::fs::read(&path).unwrap(), before, "nothing written");

    // Exactly at every limit is accepted, and the handle is not poisoned by the rejections.
    let at_limit = Run::new(
        "k".repeat(KEY_BYTES_MAX),
        "s".repeat(SESSION_ID_BYTES_MAX),
        Generation(1),
        UnixMs(1),
    )
    .with_meta("m".repeat(META_BYTES_MAX));
    log.mark_running(at_limit.clone()).unwrap();
    drop(log);
    let (_log, report) = open(dir.path());
    assert_eq!(report.running[0].run, at_limit);
}

#[test]
fn invalid_input_names_the_key_and_the_limit() {
    let dir = tempfile::tempdir().unwrap();
    let (log, _) = open(dir.path());
    let err = log
        .mark_running(run("agent:7", 1).with_meta("m".repeat(META_BYTES_MAX + 1)))
        .unwrap_err();
    let text = err.to_string();
    assert!(text.contains("meta"), "{text}");
    assert!(text.contains(&META_BYTES_MAX.to_string()), "{text}");
    assert!(text.contains("agent:7"), "{text}");
}

#[test]
fn segment_size_option_is_bounded() {
    let dir = tempfile::tempdir().unwrap();
    for bad in [0, inflight::limits::SEGMENT_BYTES_LIMIT + 1] {
        let options = Options::default().segment_bytes_max(bad);
        assert!(matches!(
            Log::open(dir.path(), options),
            Err(Error::InvalidInput {
                field: "segment_bytes_max",
                ..
            })
        ));
    }
}

/// Unix modes (Windows gives a file its directory's access control list).
#[cfg(unix)]
#[test]
fn files_are_owner_only() {
    let parent = tempfile::tempdir().unwrap();
    let dir = parent.path().join("log");
    let (log, _) = open(&dir);
    log.mark_running(run("a", 1)).unwrap();
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&dir), 0o700);
    assert_eq!(mode(&segment(&dir, 1)), 0o600);
    assert_eq!(mode(&dir.join("LOCK")), 0o600);
}
