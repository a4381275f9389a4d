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

#[test]
fn begun_runs_get_generations_the_log_allocates_without_races() {
    let dir = tempfile::tempdir().unwrap();
    let (log, _) = open(dir.path());
    // Above a mark a completion raised, then one above each run begun.
    log.mark_completed("busy", 41).unwrap();
    let log = std::sync::Arc::new(log);
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let log = log.clone();
            std::thread::spawn(move || {
                (0..25)
                    .map(|i| {
                        log.begin_run("busy", format!("s{t}-{i}"), None)
                            .unwrap()
                            .generation
                    })
                    .collect::<Vec<u64>>()
            })
        })
        .collect();
    let mut generations: Vec<u64> = threads
        .into_iter()
        .flat_map(|t| t.join().unwrap())
        .collect();
    generations.sort();
    assert_eq!(
        generations,
        (42..142).collect::<Vec<u64>>(),
        "each one once"
    );
    assert_eq!(live(&log), vec![("busy".into(), 141)]);
    let fresh = log.begin_run("new-key", "s", Some("m".into())).unwrap();
    assert_eq!((fresh.generation, fresh.meta.as_deref()), (1, Some("m")));
    drop(log);
    let (_log, report) = open(dir.path());
    assert_eq!(
        running(&report),
        vec![("busy".into(), 141), ("new-key".into(), 1)]
    );
}

#[test]
fn a_run_begun_with_bad_input_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (log, _) = open(dir.path());
    let error = log.begin_run("", "s", None).unwrap_err();
    assert!(matches!(
        error,
        inflight::Error::InvalidInput { field: "key", .. }
    ));
    assert_eq!(log.counters(), inflight::Counters::default());
}
