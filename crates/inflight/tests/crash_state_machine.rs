//! Tier 2 of the persistence model: a property-based state machine. Random sequences of
//! start, complete, several of them in flight at once, close, reopen, crash,
//! crash-during-recovery, compaction and injected faults run against a
//! log on the simulated disk; after every step the harness checks the oracle (O1, O2, O4, O5,
//! O6, O7) against a plain model. On failure, proptest shrinks the sequence and the message carries
//! the simulator's seed and trace.
//!
//! `INFLIGHT_PROPTEST_CASES` sets the number of cases (default 10000).

mod common;

use std::cell::Cell;

use inflight_sim::crashtest::{Coverage, FaultKind, Harness, Op};
use proptest::prelude::*;
use proptest::test_runner::TestRunner;

fn fault() -> impl Strategy<Value = FaultKind> {
    prop_oneof![
        Just(FaultKind::SyncEio),
        Just(FaultKind::WriteEio),
        Just(FaultKind::WriteNoSpace),
        Just(FaultKind::WriteShort),
        Just(FaultKind::SyncDirEio),
        Just(FaultKind::CreateEio),
        Just(FaultKind::RenameEio),
        Just(FaultKind::ReadEio),
        Just(FaultKind::ReadShort),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        30 => (0u8..4, 0u8..6).prop_map(|(key, generation)| Op::Start { key, generation }),
        25 => (0u8..4, 0u8..6).prop_map(|(key, generation)| Op::Complete { key, generation }),
        3 => Just(Op::Close),
        3 => Just(Op::Reopen),
        8 => Just(Op::Crash),
        4 => any::<u8>().prop_map(|after| Op::CrashDuringRecovery { after }),
        7 => fault().prop_map(Op::Fault),
        5 => Just(Op::Compact),
        6 => (0u8..4, 0u8..6, any::<u8>())
            .prop_map(|(key, generation, count)| Op::Batch { key, generation, count }),
        8 => (0u8..4, 0u8..6, 0u8..6)
            .prop_map(|(key, generation, kind)| Op::Decide { key, generation, kind }),
    ]
}

fn cases() -> u32 {
    std::env::var("INFLIGHT_PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000)
}

#[test]
fn the_log_satisfies_the_oracle_after_every_step() {
    let config = ProptestConfig {
        cases: cases(),
        ..ProptestConfig::default()
    };
    let mut runner = TestRunner::new(config.clone());
    let totals = Cell::new(Coverage::default());
    let cases_run = Cell::new(0u64);
    let cases_rolled = Cell::new(0u64);
    let strategy = (any::<u64>(), proptest::collection::vec(op(), 1..48));
    let result = runner.run(&strategy, |(seed, ops)| {
        let mut h = Harness::new(seed).map_err(|f| TestCaseError::fail(f.to_string()))?;
        h.run(&ops)
            .map_err(|f| TestCaseError::fail(f.to_string()))?;
        // A final power loss and recovery after whatever the sequence left behind.
        h.apply(Op::Crash)
            .map_err(|f| TestCaseError::fail(f.to_string()))?;
        let (s, t) = (h.coverage(), totals.get());
        totals.set(Coverage {
            ops: t.ops + s.ops,
            acked: t.acked + s.acked,
            failed: t.failed + s.failed,
            crashes: t.crashes + s.crashes,
            recoveries: t.recoveries + s.recoveries,
            faults_failed_calls: t.faults_failed_calls + s.faults_failed_calls,
            cuts: t.cuts + s.cuts,
            batches: t.batches + s.batches,
            compactions: t.compactions + s.compactions,
            from_snapshot: t.from_snapshot + s.from_snapshot,
            forgotten: t.forgotten + s.forgotten,
            decided: t.decided + s.decided,
        });
        cases_run.set(cases_run.get() + 1);
        // Segments are created by the first open, by each compaction's cut, and by a rollover
        // when one is full; compactions remove the old ones, so the highest number tells.
        let logs = h.sim().durable_list(Harness::dir()).unwrap_or_default();
        let highest = logs
            .iter()
            .filter_map(|n| n.strip_suffix(".log")?.parse::<u64>().ok())
            .max()
            .unwrap_or(0);
        let rolled = highest > 1 + s.cuts;
        cases_rolled.set(cases_rolled.get() + u64::from(rolled));
        Ok(())
    });
    if let Err(e) = result {
        panic!("{e}");
    }
    let t = totals.get();
    let (cases, rolled) = (cases_run.get(), cases_rolled.get());
    common::report_tier(
        "2",
        &format!(
            "tier 2: {cases} cases ({rolled} crossing a segment rollover), {} operations, {} events acknowledged, {} failed, {} calls failed by an injected fault, {} power losses, {} recoveries checked ({} from a snapshot), {} compactions ({} marks forgotten), {} batches of several events in flight, {} decisions, exact completions and adoptions that changed the state",
            t.ops,
            t.acked,
            t.failed,
            t.faults_failed_calls,
            t.crashes,
            t.recoveries,
            t.from_snapshot,
            t.compactions,
            t.forgotten,
            t.batches,
            t.decided
        ),
    );
    // What the tier explores, per case, may not shrink silently (a change to the generator, the
    // harness or the log that stops it from crossing rollovers, acknowledging events, failing
    // calls or recovering). Each floor is about two thirds of what the tier reaches today.
    assert_eq!(cases, u64::from(config.cases), "every case ran");
    let floors = [
        ("cases crossing a segment rollover", rolled, 0.22),
        ("events acknowledged", t.acked, 10.0),
        (
            "calls failed by an injected fault",
            t.faults_failed_calls,
            1.0,
        ),
        ("power losses", t.crashes, 4.0),
        ("recoveries checked", t.recoveries, 5.0),
        ("compactions", t.compactions, 0.75),
        ("recoveries from a snapshot", t.from_snapshot, 2.0),
        ("marks forgotten", t.forgotten, 0.7),
        ("batches of several events in flight", t.batches, 0.9),
        ("decisions that changed the state", t.decided, 0.3),
    ];
    for (what, count, per_case) in floors {
        assert!(
            count as f64 >= per_case * cases as f64,
            "tier 2 explored too little: {count} {what} in {cases} cases, below the floor of {per_case} per case"
        );
    }
}
