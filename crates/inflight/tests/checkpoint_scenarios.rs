//! The scenarios the JSON checkpoint that inflight replaces was tested for, held to this crate's
//! promises.

mod common;

use common::{open, run, running, segment};
use inflight::{Error, Policy, Reason};

#[test]
fn started_runs_are_read_back_after_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let (log, report) = open(dir.path());
    assert!(report.running.is_empty());
    log.mark_running(run("a", 1).with_meta("{\"resume\":\"m-1\"}"))
        .unwrap();
    log.mark_running(run("b", 1)).unwrap();
    drop(log);

    let (_log, report) = open(dir.path());
    assert_eq!(running(&report), vec![("a".into(), 1), ("b".into(), 1)]);
    let a = &report.running[0];
    assert_eq!(a.run.session_id, "a-s1");
    assert_eq!(a.run.started_at_ms, 1_001);
    assert_eq!(a.run.meta.as_deref(), Some("{\"resume\":\"m-1\"}"));
}

#[test]
fn completion_removes_the_run() {
    let dir = tempfile::tempdir().unwrap();
    let (log, _) = open(dir.path());
    log.mark_running(run("a", 1)).unwrap();
    log.mark_running(run("b", 1)).unwrap();
    log.mark_completed("a", 1).unwrap();
    assert_eq!(common::live(&log), vec![("b".into(), 1)]);
    drop(log);
    let (_log, report) = open(dir.path());
    assert_eq!(running(&report), vec![("b".into(), 1)]);
}

#[test]
fn completing_an_unknown_key_is_a_no_op() {
    let dir = tempfile::tempdir().unwrap();
    let (log, _) = open(dir.path());
    log.mark_running(run("a", 1)).unwrap();
    assert_eq!(
        log.mark_completed("never-started", 7).unwrap(),
        inflight::Applied::UnknownCompletion
    );
    drop(log);
    let (_log, report) = open(dir.path());
    assert_eq!(running(&report), vec![("a".into(), 1)]);
    assert_eq!(report.counters.unknown_completions, 1);
}

#[test]
fn a_missing_directory_is_created_by_open_and_refused_by_read_only() {
    let parent = tempfile::tempdir().unwrap();
    let dir = parent.path().join("not").join("yet");
    match inflight::inspect::read_only(&dir, Policy::SkipDamaged) {
        Err(Error::NotFound { dir: d }) => assert_eq!(d, dir),
        other => panic!("expected NotFound, got {other:?}"),
    }
    assert!(!dir.exists(), "a read-only open must not create anything");
    let (log, report) = open(&dir);
    assert!(report.running.is_empty());
    assert!(report.coverage_since_ms.is_some());
    log.mark_running(run("a", 1)).unwrap();
    assert!(segment(&dir, 1).exists());
}

/// Three runs a, b, c in one segment whose header byte `at` is then flipped.
fn damaged_header(at: usize) -> (tempfile::TempDir, Vec<u8>) {
    let (dir, mut bytes) = common::log_with_runs(&["a", "b", "c"], "");
    let path = segment(dir.path(), 1);
    bytes[at] ^= 0x40;
    std::fs::write(&path, &bytes).unwrap();
    (dir, bytes)
}

#[test]
fn a_corrupted_file_is_never_read_as_nothing_in_flight() {
    // The segment number field: the header's checksum fails, but its salt is intact, so every
    // frame still proves itself and the runs are recovered; the header is reported.
    let (dir, bytes) = damaged_header(20);
    let path = segment(dir.path(), 1);
    let found = inflight::inspect::read_only(dir.path(), Policy::SkipDamaged).unwrap();
    let gaps: Vec<_> = found
        .report
        .corruption
        .iter()
        .map(|c| (c.start_offset, c.end_offset))
        .collect();
    assert_eq!(gaps, vec![(0, 64)], "the damage must be reported");
    assert_eq!(found.report.running.len(), 3);
    assert!(matches!(
        inflight::inspect::read_only(dir.path(), Policy::Strict),
        Err(Error::Corrupt { offset: 0, .. })
    ));
    // A read-write open keeps the damaged segment for inspection and writes to a new one.
    let (log, report) = open(dir.path());
    assert_eq!(report.corruption.len(), 1);
    assert_eq!(report.running.len(), 3);
    log.mark_running(run("d", 1)).unwrap();
    drop(log);
    assert_eq!(
        std::fs::read(&path).unwrap(),
        bytes,
        "damaged bytes are never rewritten"
    );
    assert!(segment(dir.path(), 2).exists());
    let (_log, report) = open(dir.path());
    assert_eq!(report.running.len(), 4);
}

#[test]
fn a_segment_whose_salt_is_lost_is_reported_whole_not_read_as_empty() {
    // The salt itself: no frame can be checked any more, so the whole segment is a gap.
    let (dir, bytes) = damaged_header(33);
    let found = inflight::inspect::read_only(dir.path(), Policy::SkipDamaged).unwrap();
    let covered: u64 = found
        .report
        .corruption
        .iter()
        .map(|c| c.end_offset - c.start_offset)
        .sum();
    assert_eq!(
        covered,
        bytes.len() as u64,
        "every byte of the segment is reported"
    );
    assert!(found.report.running.is_empty());
    assert!(found.report.torn_tail.is_none());
    assert!(inflight::inspect::read_only(dir.path(), Policy::Strict).is_err());
}

#[test]
fn a_crash_leaves_interrupted_runs_with_reason_crash() {
    let dir = tempfile::tempdir().unwrap();
    let (log, _) = open(dir.path());
    log.mark_running(run("a", 1)).unwrap();
    log.mark_running(run("b", 1)).unwrap();
    log.mark_completed("b", 1).unwrap();
    drop(log); // no close: the process died
    let (_log, report) = open(dir.path());
    assert!(!report.clean_shutdown);
    assert_eq!(running(&report), vec![("a".into(), 1)]);
    assert_eq!(report.running[0].reason, Reason::Crash);
}

#[test]
fn a_clean_shutdown_reports_leftover_runs_with_reason_shutdown() {
    let dir = tempfile::tempdir().unwrap();
    let (log, _) = open(dir.path());
    log.mark_running(run("a", 1)).unwrap();
    log.mark_running(run("b", 1)).unwrap();
    log.mark_completed("b", 1).unwrap();
    log.close().unwrap();
    assert!(matches!(log.mark_running(run("c", 1)), Err(Error::Closed)));
    drop(log);

    let (log, report) = open(dir.path());
    assert!(report.clean_shutdown);
    assert_eq!(running(&report), vec![("a".into(), 1)]);
    assert_eq!(report.running[0].reason, Reason::Shutdown);

    // A crash in the next process: runs it started are crash victims, the old one keeps its reason.
    log.mark_running(run("c", 1)).unwrap();
    drop(log);
    let (_log, report) = open(dir.path());
    assert!(!report.clean_shutdown);
    let reasons: Vec<_> = report.running.iter().map(|r| r.reason).collect();
    assert_eq!(reasons, vec![Reason::Shutdown, Reason::Crash]);
}

#[test]
fn a_run_that_is_resumed_under_a_new_generation_replaces_the_interrupted_one() {
    let dir = tempfile::tempdir().unwrap();
    let (log, _) = open(dir.path());
    log.mark_running(run("a", 1)).unwrap();
    drop(log);
    let (log, report) = open(dir.path());
    assert_eq!(running(&report), vec![("a".into(), 1)]);
    log.mark_running(run("a", 2)).unwrap();
    log.mark_completed("a", 2).unwrap();
    drop(log);
    let (_log, report) = open(dir.path());
    assert!(report.running.is_empty());
    assert_eq!(report.counters.superseded, 1);
}
