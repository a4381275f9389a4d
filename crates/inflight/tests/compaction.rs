//! Compaction on the real file system: the snapshot holds exactly the state, replay starts from
//! it, appends go on while it is written, a damaged snapshot is corruption (strict fails, the
//! default falls back to the previous one and reports the gap), retention forgets idle marks,
//! and the offline `compact_dir` refuses a log a gateway holds.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use inflight::{Environment, Error, Event, Generation, Log, Opened, Options, Policy, Run, UnixMs};

fn start(key: &str, generation: u64, at: u64) -> Run {
    Run::new(
        key,
        format!("s-{key}-{generation}"),
        Generation(generation),
        UnixMs(at),
    )
    .with_meta(format!(
        "{{\"g\":{generation},\"pad\":\"{}\"}}",
        "x".repeat(120)
    ))
}

fn names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    names
}

fn snapshots(dir: &Path) -> Vec<String> {
    names(dir)
        .into_iter()
        .filter(|n| n.starts_with("snapshot-"))
        .collect()
}

fn segments(dir: &Path) -> Vec<String> {
    names(dir)
        .into_iter()
        .filter(|n| n.ends_with(".log"))
        .collect()
}

/// A log with some history: starts, completions, stale records, over several segments.
fn busy_log(dir: &Path, options: Options) -> Log {
    let log = Log::open(dir, options.segment_bytes_max(12 * 1024))
        .unwrap()
        .log;
    for i in 0..200u64 {
        let key = format!("k{}", i % 40);
        log.mark_running(start(&key, i + 1, 1_000 + i)).unwrap();
        if i % 3 == 0 {
            log.mark_completed_at(&key, i + 1, UnixMs(2_000 + i))
                .unwrap();
        }
        if i % 7 == 0 {
            log.mark_completed_at(&key, i, UnixMs(2_000 + i)).unwrap(); // stale
        }
    }
    log
}

#[test]
fn a_snapshot_holds_the_state_and_replay_starts_from_it() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let options = Options::default().retention(None);
    let log = busy_log(dir, options.clone());
    let (running, counters) = (log.running(), log.counters());
    let segments_before = segments(dir).len();
    assert!(segments_before > 3, "the history spans several segments");
    let done = log.compact().unwrap();
    assert_eq!(done.running, running.len());
    assert_eq!(done.marks, 40);
    assert_eq!(done.segments_removed, segments_before);
    assert_eq!(
        segments(dir).len(),
        1,
        "only the segment after the cut is left"
    );
    assert_eq!(
        log.running(),
        running,
        "compaction changes nothing in memory"
    );
    drop(log);

    // The snapshot is plain JSON a person or jq can read.
    let text = std::fs::read_to_string(dir.join(&snapshots(dir)[0])).unwrap();
    let value: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(value["inflight_snapshot"], 3);
    let rows = value["body"]["keys"].as_array().unwrap();
    // A key's row holds its run after its mark: 14 members where it has one, 3 where not.
    assert_eq!(
        rows.iter()
            .filter(|r| r.as_array().unwrap().len() == 14)
            .count(),
        running.len()
    );

    let Opened { log, report } = Log::open(dir, options).unwrap();
    assert_eq!(report.snapshot.as_ref().unwrap().last_seq, done.last_seq);
    assert_eq!(report.records, 0, "nothing after the snapshot");
    assert_eq!(log.counters().started, counters.started);
    assert_eq!(log.counters().stale_completions, counters.stale_completions);
    // The open found runs in flight: it recorded a recovery, so each counts 1, and is
    // interrupted (no longer running) until a start on its key resumes it.
    let mut expected = running.clone();
    for r in &mut expected {
        r.recoveries = 1;
        r.running = false;
    }
    assert_eq!(report.running, expected);
    // Marks survived: a stale start is still recognised (and refused) after the compaction.
    let stale = log.mark_running(start("k0", 1, 9_000));
    assert!(matches!(
        stale,
        Err(inflight::Error::StaleGeneration { .. })
    ));
}

#[test]
fn appends_go_on_while_the_snapshot_is_written() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let log = busy_log(dir, Options::default());
    let compaction = log.begin_compaction().unwrap();
    // The cut is made; these land in the new segment while the snapshot is not yet written.
    log.mark_running(start("during", 1, 5_000)).unwrap();
    log.mark_completed_at("k1", 1_000, UnixMs(5_001)).unwrap();
    let done = compaction.finish().unwrap();
    assert!(done.last_seq > 0);
    let live = log.running();
    drop(log);
    let report = Log::open(dir, Options::default()).unwrap().report;
    let keys = |runs: &[inflight::InFlightRun]| -> Vec<String> {
        runs.iter().map(|r| r.run.key.clone()).collect()
    };
    assert_eq!(keys(&report.running), keys(&live));
    assert!(report.running.iter().any(|r| r.run.key == "during"));
    assert_eq!(
        report.records, 2,
        "the two appends after the cut are replayed"
    );
}

#[test]
fn concurrent_appenders_and_background_compactions_agree_with_replay() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let options = Options::default()
        .segment_bytes_max(12 * 1024)
        .compact_after_bytes(Some(16 * 1024));
    let log = Arc::new(Log::open(dir, options.clone()).unwrap().log);
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let log = Arc::clone(&log);
            std::thread::spawn(move || {
                for i in 0..150u64 {
                    let key = format!("t{t}-k{}", i % 10);
                    log.mark_running(start(&key, i + 1, i)).unwrap();
                    if i % 2 == 0 {
                        log.mark_completed_at(&key, i + 1, UnixMs(i)).unwrap();
                    }
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let compactions = log.compactions();
    let live = log.running();
    let counters = log.counters();
    drop(log); // waits for a background compaction in progress
    assert!(compactions >= 2, "compacted {compactions} times");
    assert!(
        snapshots(dir).len() <= 2,
        "at most the newest and the one before"
    );
    let Opened { log, report } = Log::open(dir, options).unwrap();
    assert!(report.snapshot.is_some());
    let strip = |runs: Vec<inflight::InFlightRun>| -> Vec<Run> {
        runs.into_iter().map(|r| r.run).collect()
    };
    assert_eq!(strip(report.running), strip(live));
    assert_eq!(log.counters().started, counters.started);
    assert_eq!(log.counters().completed, counters.completed);
}

/// Damages the newest snapshot of `dir`.
fn damage_newest_snapshot(dir: &Path) -> String {
    let newest = snapshots(dir).pop().unwrap();
    let path = dir.join(&newest);
    let mut bytes = std::fs::read(&path).unwrap();
    let i = bytes.len() / 2;
    bytes[i] ^= 0x20;
    std::fs::write(&path, bytes).unwrap();
    newest
}

#[test]
fn a_damaged_snapshot_falls_back_to_the_previous_one_and_reports_the_gap() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let log = busy_log(dir, Options::default().retention(None));
    log.compact().unwrap();
    // Between the two compactions: runs the second snapshot holds, whose segments it removes.
    let now = inflight::environment::now_ms();
    log.mark_running(start("lost-in-the-gap", 1, now)).unwrap();
    log.mark_running(start("k5", 1_000, now)).unwrap();
    log.compact().unwrap();
    log.mark_running(start("after", 1, now + 1)).unwrap();
    drop(log);
    assert_eq!(snapshots(dir).len(), 2, "the previous snapshot is kept");
    let damaged = damage_newest_snapshot(dir);

    // Strict: the damage is an error, exit 3 on the command line.
    match inflight::inspect::read_only(dir, Policy::Strict) {
        Err(Error::Corrupt { segment, .. }) => assert!(segment.ends_with(&damaged)),
        other => panic!("strict replay of a damaged snapshot gave {other:?}"),
    }
    match Log::open(dir, Options::default().strict()) {
        Err(Error::Corrupt { .. }) => {}
        other => panic!(
            "strict open of a damaged snapshot gave {:?}",
            other.map(|o| o.report)
        ),
    }

    // Default: the previous snapshot and the segments left; what they cannot know is a gap.
    let Opened { log, report } = Log::open(dir, Options::default()).unwrap();
    let used = report.snapshot.as_ref().unwrap();
    assert_ne!(used.file, damaged, "the damaged snapshot is not believed");
    assert_eq!(report.corruption.len(), 1, "{:?}", report.corruption);
    let gap = &report.corruption[0];
    assert_eq!(gap.segment, damaged);
    assert_eq!(gap.after_seq, used.last_seq);
    assert!(
        gap.before_seq.is_some(),
        "the gap ends at the first record after it"
    );
    let keys: Vec<&str> = report.running.iter().map(|r| r.run.key.as_str()).collect();
    assert!(
        !keys.contains(&"lost-in-the-gap"),
        "only the damaged snapshot knew it"
    );
    assert!(
        keys.contains(&"after"),
        "the segments after the gap are replayed"
    );
    // The fallback flags a session that was active around the gap with nothing after it.
    let recovered = inflight::inspect::read_only(dir, Policy::SkipDamaged).unwrap();
    let flagged = inflight::fallback::flag(
        inflight::fallback::LogView::Present {
            report: &recovered.report,
            set: &recovered.set,
        },
        &[inflight::fallback::Session::new("lost-in-the-gap", now)],
        120_000,
        now + 10_000,
    );
    assert_eq!(flagged.len(), keys.len() + 1);
    assert!(
        flagged
            .iter()
            .any(|f| f.key == "lost-in-the-gap" && f.reason == inflight::fallback::Flag::Gap)
    );

    // The next compaction writes a good snapshot and removes the damaged one; the gap stays in
    // the new snapshot, for the fallback and for the strict policy, which still refuses it.
    log.compact().unwrap();
    drop(log);
    assert!(!snapshots(dir).contains(&damaged));
    let report = inflight::inspect::read_only(dir, Policy::SkipDamaged)
        .unwrap()
        .report;
    assert_eq!(report.gaps_before_snapshot.len(), 1);
    assert_eq!(report.gaps_before_snapshot[0].segment, damaged);
    assert!(inflight::inspect::read_only(dir, Policy::Strict).is_err());
}

#[test]
fn a_damaged_only_snapshot_with_its_segments_gone_loses_only_what_it_held() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let log = busy_log(dir, Options::default());
    log.compact().unwrap();
    log.mark_running(start("after", 1, 4_000)).unwrap();
    drop(log);
    damage_newest_snapshot(dir);
    let report = inflight::inspect::read_only(dir, Policy::SkipDamaged)
        .unwrap()
        .report;
    assert!(report.snapshot.is_none());
    assert_eq!(report.corruption.len(), 1);
    assert_eq!(
        report.corruption[0].after_seq, 0,
        "nothing is known before it"
    );
    let keys: Vec<&str> = report.running.iter().map(|r| r.run.key.as_str()).collect();
    assert_eq!(keys, ["after"]);
}

/// A clock the test sets.
#[derive(Clone, Debug)]
struct Clock(Arc<std::sync::atomic::AtomicU64>);

impl Environment for Clock {
    fn now_ms(&self) -> u64 {
        self.0.load(std::sync::atomic::Ordering::Relaxed)
    }
    fn salt(&self) -> u64 {
        fastrand::u64(..)
    }
}

#[test]
fn retention_forgets_idle_marks_but_never_a_running_key() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let day = 24 * 3600 * 1000;
    let clock = Clock(Arc::new(std::sync::atomic::AtomicU64::new(100 * day)));
    let options = Options::default()
        .environment(clock)
        .retention(Some(Duration::from_secs(7 * 24 * 3600)));
    let log = Log::open(dir, options.clone()).unwrap().log;
    log.mark_running(start("idle", 5, 90 * day)).unwrap();
    log.mark_completed_at("idle", 5, UnixMs(90 * day)).unwrap();
    log.mark_running(start("running-long", 3, 80 * day))
        .unwrap();
    log.mark_running(start("recent", 2, 99 * day)).unwrap();
    log.mark_completed_at("recent", 2, UnixMs(99 * day))
        .unwrap();
    let done = log.compact().unwrap();
    assert_eq!(done.forgotten, 1, "only the idle key's mark");
    assert_eq!(log.high_water("idle"), None);
    assert_eq!(log.high_water("running-long").unwrap().generation, 3);
    assert_eq!(log.high_water("recent").unwrap().generation, 2);
    // What a forgotten mark means: a very late stale start for that key is taken as new.
    let late = log.mark_running(start("idle", 4, 101 * day)).unwrap();
    assert_eq!(late, inflight::Applied::Started { superseded: None });
    drop(log);
    // Replay agrees with what the live handle did.
    let Opened { log, report } = Log::open(dir, options).unwrap();
    assert_eq!(log.high_water("idle").unwrap().generation, 4);
    let keys: Vec<&str> = report.running.iter().map(|r| r.run.key.as_str()).collect();
    assert_eq!(keys, ["idle", "running-long"]);
}

#[test]
fn offline_compaction_refuses_a_held_log_and_records_no_recovery() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let log = busy_log(dir, Options::default());
    match inflight::compaction::compact_dir(dir, Options::default()) {
        Err(Error::Locked { holder_pid, .. }) => {
            assert_eq!(holder_pid, Some(std::process::id()));
        }
        other => panic!("compacting a held log gave {other:?}"),
    }
    let running = log.running();
    drop(log); // a crash: runs in flight
    let done = inflight::compaction::compact_dir(dir, Options::default()).unwrap();
    assert_eq!(done.running, running.len());
    let report = inflight::inspect::read_only(dir, Policy::Strict)
        .unwrap()
        .report;
    assert_eq!(
        report.counters.recoveries, 0,
        "an offline compaction is not a restart"
    );
    assert!(report.running.iter().all(|r| r.recoveries == 0));
    assert!(!report.clean_shutdown);
}

#[test]
fn the_log_refuses_its_own_records_from_callers() {
    let tmp = tempfile::tempdir().unwrap();
    let log = Log::open(tmp.path(), Options::default()).unwrap().log;
    for event in [
        Event::Recovered { at_ms: 1 },
        Event::Retention {
            forget_before_ms: 1,
            at_ms: 1,
        },
    ] {
        assert!(matches!(
            log.record(event),
            Err(Error::InvalidInput { field: "event", .. })
        ));
    }
}

#[test]
fn offline_compaction_of_a_path_that_holds_no_log_creates_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let missing = tmp.path().join("typo").join("inflight");
    assert!(matches!(
        inflight::compaction::compact_dir(&missing, Options::default()),
        Err(Error::NotFound { .. })
    ));
    assert!(!tmp.path().join("typo").exists());
    std::fs::write(tmp.path().join("notes.txt"), "not a log").unwrap();
    assert!(matches!(
        inflight::compaction::compact_dir(tmp.path(), Options::default()),
        Err(Error::NotFound { .. })
    ));
    assert_eq!(names(tmp.path()), ["notes.txt"]);
}

#[test]
fn a_gateway_that_restarts_often_still_compacts() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let options = Options::default().compact_after_bytes(Some(20_000));
    // Each short life writes about 5 KB, under the threshold on its own.
    for life in 0..8u64 {
        let log = Log::open(dir, options.clone()).unwrap().log;
        for i in 0..20 {
            let g = life * 100 + i + 1;
            log.mark_running(start("k", g, g)).unwrap();
        }
        drop(log);
    }
    assert!(
        !snapshots(dir).is_empty(),
        "the segments written since the last snapshot count across opens"
    );
}

#[test]
fn the_strict_policy_still_fails_on_damage_a_compaction_removed() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let log = busy_log(dir, Options::default());
    drop(log);
    // Damage in the middle of the first segment: corruption, with records after it.
    let first = dir.join(&segments(dir)[0]);
    let mut bytes = std::fs::read(&first).unwrap();
    bytes[400] ^= 0xff;
    std::fs::write(&first, bytes).unwrap();
    assert!(matches!(
        inflight::inspect::read_only(dir, Policy::Strict),
        Err(Error::Corrupt { .. })
    ));
    inflight::compaction::compact_dir(dir, Options::default()).unwrap();
    assert!(
        !dir.join(segments(dir)[0].clone())
            .ends_with("00000000000000000001.log")
    );
    // The segment is gone; its gap is kept, and the strict policy still refuses it.
    let report = inflight::inspect::read_only(dir, Policy::SkipDamaged)
        .unwrap()
        .report;
    assert_eq!(report.gaps_before_snapshot.len(), 1);
    assert!(report.corruption.is_empty());
    assert!(matches!(
        inflight::inspect::read_only(dir, Policy::Strict),
        Err(Error::Corrupt { .. })
    ));
}

#[test]
fn compacting_again_with_nothing_new_keeps_the_snapshot() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let options = Options::default().retention(None);
    let log = busy_log(dir, options.clone());
    let first = log.compact().unwrap();
    let again = log.compact().unwrap();
    assert_eq!(again.snapshot, first.snapshot, "nothing was recorded since");
    assert!(first.snapshot.exists());
    drop(log);
    assert_eq!(snapshots(dir).len(), 1);
    let report = Log::open(dir, options).unwrap().report;
    assert_eq!(report.snapshot.unwrap().last_seq, first.last_seq);
}

#[test]
fn a_forgotten_key_never_gets_a_generation_it_had() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let day = 24 * 3600 * 1000;
    let clock = Clock(Arc::new(std::sync::atomic::AtomicU64::new(100 * day)));
    let options = Options::default()
        .environment(clock)
        .retention(Some(Duration::from_secs(24 * 3600)));
    let log = Log::open(dir, options.clone()).unwrap().log;
    log.mark_running(start("idle", 41, 10 * day)).unwrap();
    log.mark_completed_at("idle", 41, UnixMs(10 * day)).unwrap();
    assert_eq!(log.compact().unwrap().forgotten, 1);
    assert_eq!(log.high_water("idle"), None);
    // The log allocates above every generation it forgot, for this key and any other new one.
    assert_eq!(log.begin_run("idle", "s", None).unwrap().generation, 42);
    assert_eq!(log.begin_run("new", "s", None).unwrap().generation, 42);
    log.compact().unwrap();
    drop(log);
    // The floor survives in the snapshot.
    let log = Log::open(dir, options).unwrap().log;
    assert_eq!(log.begin_run("other", "s", None).unwrap().generation, 42);
}

/// A state of many keys (freed on a thread of its own once its snapshot is encoded) compacts
/// to the same state, and a second compaction goes on from it.
#[test]
fn a_state_of_many_keys_compacts_and_reads_back() {
    let tmp = tempfile::tempdir().unwrap();
    let keys = 12_000u64;
    let Opened { log, .. } = Log::open(tmp.path(), Options::default()).unwrap();
    let mut last = None;
    for k in 0..keys {
        let ticket = log
            .submit(Event::Started(start(&format!("k{k}"), 1, 10 + k)))
            .unwrap();
        last = Some(ticket);
    }
    log.wait(&last.unwrap()).unwrap();
    let compacted = log.compact().unwrap();
    assert_eq!(
        (compacted.running, compacted.marks),
        (keys as usize, keys as usize)
    );
    log.mark_completed("k0", 1).unwrap();
    let again = log.compact().unwrap();
    assert_eq!(again.running, keys as usize - 1);
    let running = log.running();
    drop(log);
    let Opened { report, .. } = Log::open(tmp.path(), Options::default()).unwrap();
    // The same runs, each interrupted once by the reopen.
    let runs = |runs: &[inflight::InFlightRun]| -> Vec<(String, u64)> {
        runs.iter()
            .map(|r| (r.run.key.clone(), r.run.generation))
            .collect()
    };
    assert!(runs(&report.running) == runs(&running), "the runs differ");
    assert!(
        report
            .running
            .iter()
            .all(|r| r.recoveries == 1 && !r.running)
    );
    assert_eq!(report.snapshot.unwrap().last_seq, again.last_seq);
}
