//! The error faults of the persistence model (F7 to F10), each driven through the real code on
//! the simulated disk with its promise stated and checked.

use std::sync::Arc;

use inflight::crashtest::Harness;
use inflight::sim::{Fault, FaultRule, SimStorage};
use inflight::{Error, Log, Run};

const SEED: u64 = 5;

fn open(sim: &SimStorage) -> inflight::Result<(Log, inflight::RecoveryReport)> {
    Log::open_with_storage(
        Arc::new(sim.clone()),
        Harness::dir(),
        Harness::options(SEED),
    )
}

fn keys(report: &inflight::RecoveryReport) -> Vec<&str> {
    report.running.iter().map(|r| r.run.key.as_str()).collect()
}

/// A log holding runs a and b, both acknowledged; the handle is dropped.
fn two_runs() -> SimStorage {
    let sim = SimStorage::new(SEED);
    let (log, _) = open(&sim).unwrap();
    log.mark_running(Run::new("a", "s", 1, 1)).unwrap();
    log.mark_running(Run::new("b", "s", 1, 2)).unwrap();
    sim
}

#[test]
fn a_failed_sync_is_never_acknowledged_and_poisons_until_reopen() {
    let sim = two_runs();
    let (log, _) = open(&sim).unwrap();
    sim.fail_next(Fault::SyncEio);
    assert!(matches!(
        log.mark_running(Run::new("c", "s", 1, 3)),
        Err(Error::Io { .. })
    ));
    // The next sync would succeed (Linux reports the error once), but the handle refuses.
    assert!(matches!(
        log.mark_completed_at("a", 1, 4),
        Err(Error::Poisoned { .. })
    ));
    assert!(matches!(log.close(), Err(Error::Poisoned { .. })));
    drop(log);
    sim.crash();
    let (_log, report) = open(&sim).unwrap();
    let k = keys(&report);
    assert!(k == ["a", "b"] || k == ["a", "b", "c"], "{k:?}");
}

#[test]
fn enospc_partway_through_an_append_is_a_clear_error_and_the_log_reopens_valid() {
    let sim = two_runs();
    let (log, _) = open(&sim).unwrap();
    sim.fail_next(Fault::WriteNoSpace);
    let err = log.mark_running(Run::new("c", "s", 1, 3)).unwrap_err();
    assert!(err.to_string().contains("No space left"), "{err}");
    drop(log);
    sim.crash();
    let (log, report) = open(&sim).unwrap();
    assert!(report.corruption.is_empty());
    assert_eq!(keys(&report)[..2], ["a", "b"]);
    log.mark_running(Run::new("d", "s", 1, 5)).unwrap();
    drop(log);
    sim.crash();
    let (_log, report) = open(&sim).unwrap();
    assert!(keys(&report).contains(&"d"));
}

#[test]
fn a_short_write_is_completed_and_acknowledged() {
    let sim = two_runs();
    let (log, _) = open(&sim).unwrap();
    sim.inject(FaultRule::with_probability(Fault::WriteShort, 1.0));
    log.mark_running(Run::new("c", "s", 1, 3).with_meta("x".repeat(3000)))
        .unwrap();
    sim.clear_faults();
    drop(log);
    sim.crash();
    let (_log, report) = open(&sim).unwrap();
    assert_eq!(keys(&report), ["a", "b", "c"]);
}

#[test]
fn a_read_error_during_recovery_is_an_error_never_a_torn_tail() {
    let sim = two_runs();
    sim.crash();
    let segment = Harness::dir().join(format!("{:020}.log", 1));
    let before = sim.durable_bytes(&segment).unwrap();
    sim.fail_next(Fault::ReadEio);
    match open(&sim) {
        Err(Error::Io { op: "read", .. }) => {}
        other => panic!("expected a read error, got {:?}", other.map(|(_, r)| r)),
    }
    assert_eq!(
        sim.durable_bytes(&segment).unwrap(),
        before,
        "nothing was cut"
    );
    let (_log, report) = open(&sim).unwrap();
    assert_eq!(keys(&report), ["a", "b"]);
    assert_eq!(report.torn_tail_bytes, 0);
}

#[test]
fn short_reads_during_recovery_are_retried() {
    let sim = two_runs();
    sim.crash();
    sim.inject(FaultRule::with_probability(Fault::ReadShort, 1.0));
    let (_log, report) = open(&sim).unwrap();
    sim.clear_faults();
    assert_eq!(keys(&report), ["a", "b"]);
    assert_eq!(report.torn_tail_bytes, 0);
}

#[test]
fn a_failed_directory_sync_during_rollover_poisons_and_loses_nothing_acknowledged() {
    let sim = SimStorage::new(SEED);
    let (log, _) = open(&sim).unwrap();
    let meta = "m".repeat(4000);
    let mut acked = Vec::new();
    sim.inject(FaultRule::once(Fault::SyncDirEio));
    for i in 0..12u64 {
        // The first directory sync after the open comes with the first rollover.
        match log.mark_running(Run::new(format!("k{i}"), "s", 1, i).with_meta(meta.clone())) {
            Ok(_) => acked.push(format!("k{i}")),
            Err(e) => {
                assert!(
                    matches!(
                        e,
                        Error::Io {
                            op: "sync directory",
                            ..
                        }
                    ),
                    "{e}"
                );
                break;
            }
        }
    }
    assert!(acked.len() < 12, "a rollover must have met the fault");
    drop(log);
    sim.crash();
    let (_log, report) = open(&sim).unwrap();
    for key in &acked {
        assert!(keys(&report).contains(&key.as_str()), "{key} lost");
    }
}
