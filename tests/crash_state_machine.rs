//! Tier 2 of the persistence model: a property-based state machine. Random sequences of
//! start, complete, close, reopen, crash, crash-during-recovery and injected faults run against a
//! log on the simulated disk; after every step the harness checks the oracle (O1, O2, O4, O6,
//! O7) against a plain model. On failure, proptest shrinks the sequence and the message carries
//! the simulator's seed and trace.
//!
//! `INFLIGHT_PROPTEST_CASES` sets the number of cases (default 2000).

use inflight::crashtest::{FaultKind, Harness, Op};
use proptest::prelude::*;

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
    ]
}

fn cases() -> u32 {
    std::env::var("INFLIGHT_PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2000)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), ..ProptestConfig::default() })]

    #[test]
    fn the_log_satisfies_the_oracle_after_every_step(
        seed in any::<u64>(),
        ops in proptest::collection::vec(op(), 1..48),
    ) {
        let mut h = Harness::new(seed).map_err(|f| TestCaseError::fail(f.to_string()))?;
        h.run(&ops).map_err(|f| TestCaseError::fail(f.to_string()))?;
        // A final power loss and recovery after whatever the sequence left behind.
        h.apply(Op::Crash).map_err(|f| TestCaseError::fail(f.to_string()))?;
    }
}
