//! Regression tests, each named after the crash that the simulator found and that it reproduces.

use std::sync::Arc;

use inflight::crashtest::{FaultKind, Harness, History, Op, Outcome};
use inflight::sim::SimStorage;
use inflight::{Event, Log, Run};

/// Found by the simulator: a read-write open used to rewrite the end of the last segment in
/// place (to make bytes a failed fsync left undurable durable again). Without atomic sector
/// writes, a power loss during that rewrite tore synced records and the segment header. The open
/// now copies the segment to a temporary file and renames it. Here every crash point of the
/// second open, and every crash state there, must keep both acknowledged runs.
#[test]
fn power_loss_during_the_open_after_a_crash_never_tears_synced_records() {
    const SEED: u64 = 3;
    let setup = || {
        let sim = SimStorage::new(SEED);
        let (log, _) = Log::open_with_storage(
            Arc::new(sim.clone()),
            Harness::dir(),
            Harness::options(SEED),
        )
        .unwrap();
        let mut history = History::new();
        for (i, key) in ["a", "b"].into_iter().enumerate() {
            let run = Run::new(key, "s", 1, i as u64 + 1);
            log.mark_running(run.clone()).unwrap();
            history.submit(Event::Started(run), Outcome::Acked);
        }
        drop(log);
        sim.crash();
        (sim, history)
    };
    let (probe, _) = setup();
    let before = probe.op_count();
    drop(Log::open_with_storage(
        Arc::new(probe.clone()),
        Harness::dir(),
        Harness::options(SEED),
    ));
    let open_calls = probe.op_count() - before;
    let mut states = 0;
    for point in 0..=open_calls {
        let (sim, history) = setup();
        sim.crash_after_ops(point);
        drop(Log::open_with_storage(
            Arc::new(sim.clone()),
            Harness::dir(),
            Harness::options(SEED),
        ));
        for index in 0..sim.crash_state_count() {
            let fork = sim.fork();
            fork.crash_into(index);
            Harness::resume(fork, SEED, history.clone()).unwrap_or_else(|f| {
                panic!("crash after call {point} of the open, state {index}: {f}")
            });
            states += 1;
        }
    }
    assert!(
        states > open_calls,
        "{states} states for {open_calls} crash points"
    );
}

/// Found by the simulator: after an fsync fails, Linux keeps the data readable but will never
/// write it. A reopen (without a crash) used to report the failed completion as recovered; the
/// gateway would act on it, and a power loss later brought the run back. Now the open makes what
/// it reports durable first.
#[test]
fn a_completion_whose_sync_failed_stays_completed_once_a_reopen_reported_it() {
    for seed in 0..64 {
        let mut h = Harness::new(seed).unwrap();
        h.run(&[
            Op::Start {
                key: 0,
                generation: 1,
            },
            Op::Fault(FaultKind::SyncEio),
            Op::Complete {
                key: 0,
                generation: 1,
            },
            Op::Start {
                key: 1,
                generation: 1,
            },
            Op::Reopen,
            Op::Crash,
            Op::Crash,
        ])
        .unwrap_or_else(|f| panic!("{f}"));
        assert_eq!(
            h.stats().failed,
            2,
            "the completion and the poisoned start after it"
        );
    }
}

/// Found by review, reproduced with the simulator: a process created the log directory and died
/// before syncing its parent; the next process found the directory, acknowledged events, and a
/// power loss took the whole directory. A read-write open now syncs the parent every time.
#[test]
fn a_log_directory_whose_creation_was_never_synced_survives_the_next_power_loss() {
    use inflight::storage::Storage;
    for seed in 0..200 {
        let sim = SimStorage::new(seed);
        sim.create_dir_all(Harness::dir()).unwrap(); // never synced: the creator died here
        let mut h = Harness::resume(sim, seed, History::new()).unwrap_or_else(|f| panic!("{f}"));
        h.run(&[
            Op::Start {
                key: 0,
                generation: 1,
            },
            Op::Crash,
        ])
        .unwrap_or_else(|f| panic!("{f}"));
    }
}

/// Found by a long run of the state machine (100000 cases): the simulator itself panicked when
/// a random crash tore a write so that its last kept sector was cut to nothing past the file's
/// new end (here after a reopen whose copy met a short write and then ENOSPC).
#[test]
fn a_crash_that_cuts_a_torn_writes_last_sector_to_nothing_is_simulated() {
    let mut h = Harness::new(15509567249860992187).unwrap_or_else(|f| panic!("{f}"));
    h.run(&[
        Op::CrashDuringRecovery { after: 5 },
        Op::Fault(FaultKind::WriteShort),
        Op::Fault(FaultKind::WriteNoSpace),
        Op::Start {
            key: 1,
            generation: 0,
        },
        Op::Crash,
    ])
    .unwrap_or_else(|f| panic!("{f}"));
}
