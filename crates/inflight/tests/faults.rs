//! The error faults of the persistence model (F7 to F10), each driven through the real code on
//! the simulated disk with its promise stated and checked. Each test also checks from the
//! simulator's trace that its fault was injected where it says.

mod common;

use std::sync::Arc;

use common::injected;
use inflight::{Error, Log, Run};
use inflight::{Generation, UnixMs};
use inflight_sim::crashtest::Harness;
use inflight_sim::sim::{Fault, FaultRule, OpKind, SimStorage, TraceEntry};

const SEED: u64 = 5;

fn open(sim: &SimStorage) -> inflight::Result<(Log, inflight::RecoveryReport)> {
    Log::open_with_storage(
        Arc::new(sim.clone()),
        Harness::dir(),
        Harness::options(SEED),
    )
    .map(|opened| (opened.log, opened.report))
}

/// The calls `fault` was injected into, after checking that there was at least one and that
/// each was on a segment file (a handle keeps the name it was opened with: the open's copy
/// `NAME.log.tmp`, renamed over `NAME.log`, is the segment).
fn injected_on_segments(sim: &SimStorage, fault: Fault) -> Vec<TraceEntry> {
    let calls = injected(sim, fault);
    assert!(
        !calls.is_empty()
            && calls
                .iter()
                .all(|e| e.path.to_string_lossy().contains(".log")),
        "{fault:?} was not injected into a segment's call:\n{}",
        sim.trace_text_last(40)
    );
    calls
}

/// The bytes a call returned `Ok` with, if it did.
fn ok_bytes(entry: &TraceEntry) -> Option<u64> {
    entry.result.as_ref().ok().copied()
}

fn keys(report: &inflight::RecoveryReport) -> Vec<&str> {
    report.running.iter().map(|r| r.run.key.as_str()).collect()
}

/// A log holding runs a and b, both acknowledged; the handle is dropped.
fn two_runs() -> SimStorage {
    let sim = SimStorage::new(SEED);
    let (log, _) = open(&sim).unwrap();
    log.mark_running(Run::new("a", "s", Generation(1), UnixMs(1)))
        .unwrap();
    log.mark_running(Run::new("b", "s", Generation(1), UnixMs(2)))
        .unwrap();
    sim
}

#[test]
fn a_failed_sync_is_never_acknowledged_and_poisons_until_reopen() {
    let sim = two_runs();
    let (log, _) = open(&sim).unwrap();
    sim.fail_next(Fault::SyncEio);
    assert!(matches!(
        log.mark_running(Run::new("c", "s", Generation(1), UnixMs(3))),
        Err(Error::Io { .. })
    ));
    // The next sync would succeed (Linux reports the error once), but the handle refuses.
    assert!(matches!(
        log.mark_completed_at("a", 1, UnixMs(4)),
        Err(Error::Poisoned { .. })
    ));
    assert!(matches!(log.close(), Err(Error::Poisoned { .. })));
    let failed = injected_on_segments(&sim, Fault::SyncEio);
    assert!(failed.len() == 1 && failed[0].result.is_err(), "{failed:?}");
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
    let segment = Harness::dir().join(format!("{:020}.log", 1));
    let before = sim.file_bytes(&segment).unwrap();
    sim.fail_next(Fault::WriteNoSpace);
    let err = log
        .mark_running(Run::new("c", "s", Generation(1), UnixMs(3)))
        .unwrap_err();
    assert_eq!(err.io_kind(), std::io::ErrorKind::StorageFull, "{err}");
    // Partway: a prefix of the frame reached the cache (over the segment's reserved space)
    // before the error.
    let failed = injected_on_segments(&sim, Fault::WriteNoSpace);
    assert_eq!(failed.len(), 1, "{failed:?}");
    let after = sim.file_bytes(&segment).unwrap();
    let (at, len) = (
        failed[0].offset.unwrap() as usize,
        failed[0].len.unwrap() as usize,
    );
    let written = (at..at + len)
        .filter(|&i| after.get(i) != before.get(i))
        .count();
    assert!(
        0 < written && written < len,
        "{written} of the frame's {len} bytes reached the file: {failed:?}"
    );
    drop(log);
    sim.crash();
    let (log, report) = open(&sim).unwrap();
    assert!(report.corruption.is_empty());
    assert_eq!(keys(&report)[..2], ["a", "b"]);
    log.mark_running(Run::new("d", "s", Generation(1), UnixMs(5)))
        .unwrap();
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
    log.mark_running(Run::new("c", "s", Generation(1), UnixMs(3)).with_meta("x".repeat(3000)))
        .unwrap();
    sim.clear_faults();
    let short = injected_on_segments(&sim, Fault::WriteShort);
    assert!(
        short.iter().any(|e| ok_bytes(e) < e.len),
        "no write was short: {short:?}"
    );
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
    let failed = injected_on_segments(&sim, Fault::ReadEio);
    assert!(
        failed.len() == 1 && failed[0].op == OpKind::ReadAt,
        "{failed:?}"
    );
    assert_eq!(
        sim.durable_bytes(&segment).unwrap(),
        before,
        "nothing was cut"
    );
    let (_log, report) = open(&sim).unwrap();
    assert_eq!(keys(&report), ["a", "b"]);
    assert_eq!(report.torn_tail_bytes(), 0);
}

#[test]
fn short_reads_during_recovery_are_retried() {
    let sim = two_runs();
    sim.crash();
    sim.inject(FaultRule::with_probability(Fault::ReadShort, 1.0));
    let (_log, report) = open(&sim).unwrap();
    sim.clear_faults();
    let short = injected_on_segments(&sim, Fault::ReadShort);
    assert!(
        short.iter().any(|e| ok_bytes(e) < e.len),
        "no read was short: {short:?}"
    );
    assert_eq!(keys(&report), ["a", "b"]);
    assert_eq!(report.torn_tail_bytes(), 0);
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
        match log.mark_running(
            Run::new(format!("k{i}"), "s", Generation(1), UnixMs(i)).with_meta(meta.clone()),
        ) {
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
    // The directory sync that failed followed the creation of the second segment.
    let failed = injected(&sim, Fault::SyncDirEio);
    let trace = sim.trace();
    let created = trace.iter().find(|e| {
        // The segment is created as NAME.tmp and renamed into place.
        e.op == OpKind::Create
            && e.path.to_string_lossy().contains(&format!("{:020}.log", 2))
            && e.result.is_ok()
    });
    assert!(
        failed.len() == 1 && created.is_some_and(|c| c.index < failed[0].index),
        "{}",
        sim.trace_text_last(40)
    );
    drop(log);
    sim.crash();
    let (_log, report) = open(&sim).unwrap();
    for key in &acked {
        assert!(keys(&report).contains(&key.as_str()), "{key} lost");
    }
}
