//! Generations: stale starts and completions are ignored and counted, and high-water marks
//! survive a reopen.

mod common;

use common::{live, open, run, running};
use inflight::Applied;

#[test]
fn stale_completion_does_not_clear_newer_run() {
    let dir = tempfile::tempdir().unwrap();
    let (log, _) = open(dir.path());
    log.mark_running(run("a", 1)).unwrap();
    log.mark_running(run("a", 2)).unwrap(); // /new: a newer run owns the slot
    assert_eq!(
        log.mark_completed("a", 1).unwrap(),
        Applied::StaleCompletion {
            running_generation: 2
        }
    );
    assert_eq!(live(&log), vec![("a".into(), 2)]);
    drop(log);
    let (_log, report) = open(dir.path());
    assert_eq!(running(&report), vec![("a".into(), 2)]);
    assert_eq!(report.stale_ignored, 1);
    assert_eq!(report.counters.stale_completions, 1);
}

#[test]
fn stale_start_is_ignored_and_counted() {
    let dir = tempfile::tempdir().unwrap();
    let (log, _) = open(dir.path());
    log.mark_running(run("a", 5)).unwrap();
    log.mark_completed("a", 5).unwrap();
    assert_eq!(
        log.mark_running(run("a", 3)).unwrap(),
        Applied::StaleStart { high_water: 5 }
    );
    assert!(log.running().is_empty());
    assert_eq!(log.counters().stale_starts, 1);
}

#[test]
fn high_water_marks_survive_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let (log, _) = open(dir.path());
    log.mark_running(run("a", 7)).unwrap();
    log.mark_completed("a", 7).unwrap();
    drop(log);
    let (log, _) = open(dir.path());
    assert_eq!(log.high_water("a").unwrap().generation, 7);
    assert_eq!(log.high_water("b"), None);
    // A late start from before the restart is still recognised as stale.
    assert_eq!(
        log.mark_running(run("a", 6)).unwrap(),
        Applied::StaleStart { high_water: 7 }
    );
    drop(log);
    let (_log, report) = open(dir.path());
    assert!(report.running.is_empty());
    assert_eq!(report.counters.stale_starts, 1);
}

#[test]
fn a_newer_completion_clears_an_older_run() {
    let dir = tempfile::tempdir().unwrap();
    let (log, _) = open(dir.path());
    log.mark_running(run("a", 1)).unwrap();
    // /stop bumps the generation and completes under it.
    assert_eq!(log.mark_completed("a", 2).unwrap(), Applied::Completed);
    assert!(log.running().is_empty());
    assert_eq!(log.high_water("a").unwrap().generation, 2);
}
