//! Generations: stale starts and completions are ignored and counted, and high-water marks
//! survive a reopen.

mod common;

use common::{live, open, run, running};
use inflight::{Applied, Error, Event, Log, Options};

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
    assert_eq!(report.stale_ignored(), 1);
    assert_eq!(report.counters.stale_completions, 1);
}

#[test]
fn a_stale_start_is_refused_with_a_typed_error_and_nothing_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let (log, _) = open(dir.path());
    log.mark_running(run("a", 5)).unwrap();
    log.mark_completed("a", 5).unwrap();
    let before = log.counters();
    let refused = log.mark_running(run("a", 3)).unwrap_err();
    assert!(
        matches!(
            &refused,
            Error::StaleGeneration { key, generation: 3, high_water: 5 } if key == "a"
        ),
        "{refused:?}"
    );
    assert!(refused.to_string().contains("begin_run"), "{refused}");
    // The same through the raw path.
    let raw = log.record(Event::Started(run("a", 4))).unwrap_err();
    assert!(matches!(raw, Error::StaleGeneration { .. }), "{raw:?}");
    assert_eq!(log.counters(), before, "nothing was written");
    drop(log);
    let (_log, report) = open(dir.path());
    assert_eq!(report.records, 2);
    assert_eq!(report.counters.stale_starts, 0);
}

#[test]
fn a_start_below_a_start_not_yet_durable_is_refused_too() {
    let dir = tempfile::tempdir().unwrap();
    let (log, _) = open(dir.path());
    // Accepted, not waited for: the mark the fold will see counts it.
    let pending = log.submit(Event::Started(run("a", 9))).unwrap();
    assert!(matches!(
        log.mark_running(run("a", 8)),
        Err(Error::StaleGeneration { high_water: 9, .. })
    ));
    // At the mark is not stale: the run replaces the one of the same generation.
    log.wait(&pending).unwrap();
    assert!(matches!(
        log.mark_running(run("a", 9)).unwrap(),
        Applied::Started {
            superseded: Some(9)
        }
    ));
}

#[test]
fn stale_starts_are_recorded_ignored_and_counted_when_asked_for() {
    let dir = tempfile::tempdir().unwrap();
    let options = Options::default().record_stale_starts(true);
    let log = Log::open(dir.path(), options).unwrap().log;
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
fn a_gateway_counter_that_restarts_at_1_learns_it_at_once() {
    // Finding: after a restart, `mark_running(key, sid, 1)` returned "stale-start", the run
    // was not recorded, and the next crash reported nothing for it.
    let dir = tempfile::tempdir().unwrap();
    let (log, _) = open(dir.path());
    log.mark_running(run("a", 7)).unwrap();
    log.mark_completed("a", 7).unwrap();
    drop(log);
    let (log, _) = open(dir.path());
    assert_eq!(log.high_water("a").unwrap().generation, 7);
    assert_eq!(log.high_water("b"), None);
    let refused = log.mark_running(run("a", 1)).unwrap_err();
    assert!(matches!(
        refused,
        Error::StaleGeneration { high_water: 7, .. }
    ));
    // What the error says to do: let the log allocate.
    let begun = log.begin_run("a", "s", None).unwrap();
    assert_eq!(begun.generation, 8);
    drop(log);
    let (_log, report) = open(dir.path());
    assert_eq!(running(&report), vec![("a".into(), 8)]);
    assert_eq!(report.counters.stale_starts, 0);
}

#[test]
fn generations_never_wrap_at_the_top_of_the_range() {
    let dir = tempfile::tempdir().unwrap();
    let (log, _) = open(dir.path());
    log.mark_running(run("top", u64::MAX)).unwrap();
    let before = log.counters();
    let exhausted = log.begin_run("top", "s", None).unwrap_err();
    assert!(
        matches!(&exhausted, Error::GenerationsExhausted { key } if key == "top"),
        "{exhausted:?}"
    );
    assert_eq!(log.counters(), before, "nothing was written");
    assert_eq!(live(&log), vec![("top".into(), u64::MAX)]);
    // The largest generation itself can still be completed.
    assert_eq!(
        log.mark_completed("top", u64::MAX).unwrap(),
        Applied::Completed
    );
    assert!(matches!(
        log.begin_run("top", "s", None),
        Err(Error::GenerationsExhausted { .. })
    ));
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
    // A late completion from before the restart is still recognised.
    assert_eq!(
        log.mark_completed("a", 6).unwrap(),
        Applied::UnknownCompletion
    );
    assert_eq!(log.high_water("a").unwrap().generation, 7);
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

#[test]
fn an_adoption_and_a_start_accepted_together_never_share_a_generation() {
    use inflight::{Adoption, Error, Event, Generation, Log, Options, Reason, Run, UnixMs};
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path(), Options::default()).unwrap().log;
    let adoption = |generation| {
        Event::Adopted(Adoption {
            run: Run {
                nonce: 7,
                ..Run::new("k", "s", Generation(generation), UnixMs(1))
            },
            reason: Reason::Crash,
            recoveries: 2,
            stops: 0,
            pending: None,
            suspended_at_ms: None,
            at_ms: 2,
        })
    };
    // Accepted, not yet durable: a start allocated meanwhile goes above it all the same.
    let ticket = log.submit(adoption(5)).unwrap();
    let run = log.begin_run("k", "s2", None).unwrap();
    assert!(log.is_durable(&ticket));
    assert_eq!(run.generation, 6);
    assert_eq!(
        log.in_flight("k").unwrap().recoveries,
        2,
        "the start resumed it"
    );
    // An adoption below the mark is refused, as a start is: it would not be tracked.
    assert!(matches!(
        log.record(adoption(4)),
        Err(Error::StaleGeneration { high_water: 6, .. })
    ));
}
