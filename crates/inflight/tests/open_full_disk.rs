//! On a full disk a read-write open, which needs room for a copy of the last segment, fails
//! with an error that says the disk is full and that a read-only replay, which writes nothing,
//! still reports what was in flight; and the read-only replay does.

mod common;

use std::io;
use std::sync::Arc;

use common::injected;
use inflight::store::FileSource;
use inflight::{Error, Generation, Log, Policy, RecoveryReport, Run, UnixMs};
use inflight_sim::crashtest::Harness;
use inflight_sim::sim::{Fault, FaultRule, OpKind, SimStorage};

const SEED: u64 = 21;

fn open(sim: &SimStorage) -> inflight::Result<(Log, RecoveryReport)> {
    Log::open_with_storage(
        Arc::new(sim.clone()),
        Harness::dir(),
        Harness::options(SEED),
    )
    .map(|opened| (opened.log, opened.report))
}

fn keys(report: &RecoveryReport) -> Vec<&str> {
    report.running.iter().map(|r| r.run.key.as_str()).collect()
}

/// Whether the message points a full disk's owner to the read-only replay.
fn says_full_and_read_only(message: &str) -> bool {
    message.contains("the disk is full")
        && message.contains("`inflight::inspect::read_only`")
        && message.contains("`inflight replay DIR`")
        && message.contains("without writing")
}

#[test]
fn enospc_during_the_open_says_the_disk_is_full_and_read_only_still_answers() {
    let sim = SimStorage::new(SEED);
    let (log, _) = open(&sim).unwrap();
    log.mark_running(Run::new("a", "s", Generation(1), UnixMs(1)))
        .unwrap();
    log.mark_running(Run::new("b", "s", Generation(1), UnixMs(2)))
        .unwrap();
    log.mark_completed_at("b", 1, UnixMs(3)).unwrap();
    drop(log);

    // The open's copy of the last segment meets a full disk.
    sim.inject(FaultRule::once(Fault::WriteNoSpace).on_path(".tmp"));
    let err = match open(&sim) {
        Err(e) => e,
        Ok(_) => panic!("the open wrote its copy on a full disk"),
    };
    let failed = injected(&sim, Fault::WriteNoSpace);
    assert!(
        failed.len() == 1 && failed[0].path.to_string_lossy().ends_with(".log.tmp"),
        "{}",
        sim.trace_text_last(20)
    );
    match &err {
        Error::Io {
            op: "write",
            source,
            at_open: true,
            ..
        } => assert_eq!(source.kind(), io::ErrorKind::StorageFull),
        other => panic!("expected the write's ENOSPC, got {other:?}"),
    }
    let message = err.to_string();
    assert!(says_full_and_read_only(&message), "{message}");

    // What the message promises: the read-only replay answers, writing nothing.
    let before = sim.trace().len();
    sim.inject(FaultRule::with_probability(Fault::WriteNoSpace, 1.0));
    let recovered =
        inflight::inspect::read_only_from(&FileSource::new(&sim, Harness::dir()), Policy::Strict)
            .unwrap();
    assert_eq!(keys(&recovered.report), ["a"]);
    let calls = sim.trace().split_off(before);
    assert!(
        !calls.is_empty()
            && calls.iter().all(|e| matches!(
                e.op,
                OpKind::IsDir | OpKind::List | OpKind::Open | OpKind::ReadAt | OpKind::Len
            )),
        "{}",
        sim.trace_text_last(calls.len())
    );
    sim.clear_faults();

    // Once there is room again, the open succeeds and loses nothing.
    let (_log, report) = open(&sim).unwrap();
    assert_eq!(keys(&report), ["a"]);
}

#[test]
fn other_errors_keep_their_advice() {
    // An append's ENOSPC: the handle is poisoned, and the message is the general one.
    let sim = SimStorage::new(SEED);
    let (log, _) = open(&sim).unwrap();
    sim.fail_next(Fault::WriteNoSpace);
    let err = log
        .mark_running(Run::new("a", "s", Generation(1), UnixMs(1)))
        .unwrap_err();
    assert!(matches!(err, Error::Io { at_open: false, .. }), "{err:?}");
    let message = err.to_string();
    assert!(
        err.io_kind() == io::ErrorKind::StorageFull
            && message.contains("check the disk, its free space")
            && !says_full_and_read_only(&message),
        "{message}"
    );
    drop(log);

    // An open that fails for another reason (an EIO) keeps the general advice too.
    sim.inject(FaultRule::once(Fault::WriteEio).on_path(".tmp"));
    let err = open(&sim).map(drop).unwrap_err();
    let message = err.to_string();
    assert!(
        matches!(err, Error::Io { at_open: true, .. })
            && message.contains("check the disk, its free space")
            && !says_full_and_read_only(&message),
        "{message}"
    );
}
