//! Live state and replayed state are always equal: folding the durable log from scratch gives
//! exactly the running set, marks and counters the process held.

mod common;

use common::small_segments;

use inflight::Opened;
use inflight::{Generation, UnixMs};
use inflight::{Log, Policy, Run, RunningSet};
use proptest::prelude::*;

#[derive(Clone, Debug)]
enum Op {
    Start {
        key: u8,
        generation: u64,
    },
    Complete {
        key: u8,
        generation: u64,
    },
    /// A decision on the key's run, or an exact completion or progress of generation `0..8`
    /// with nonce 0 (a start this test records has none).
    Decide {
        key: u8,
        generation: u64,
        kind: u8,
    },
    Reopen,
    Close,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        5 => (0u8..6, 0u64..8).prop_map(|(key, generation)| Op::Start { key, generation }),
        4 => (0u8..6, 0u64..8).prop_map(|(key, generation)| Op::Complete { key, generation }),
        3 => (0u8..6, 0u64..8, 0u8..5).prop_map(|(key, generation, kind)| Op::Decide { key, generation, kind }),
        1 => Just(Op::Reopen),
        1 => Just(Op::Close),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn replay_equals_the_live_state(ops in proptest::collection::vec(op(), 1..120)) {
        let dir = tempfile::tempdir().unwrap();
        let Opened { mut log, .. } = Log::open(dir.path(), small_segments()).unwrap();
        let mut model = RunningSet::new();
        let mut at = 0u64;
        for op in ops {
            at += 1;
            match op {
                Op::Start { key, generation } => {
                    // Padding makes segments roll over within a test case.
                    let run = Run::new(format!("k{key}"), format!("s{at}"), Generation(generation), UnixMs(at))
                        .with_meta("x".repeat(600));
                    let mark = model.mark(&run.key).map(|m| m.generation);
                    match log.mark_running(run.clone()) {
                        // Below the key's mark: refused, and nothing written.
                        Err(inflight::Error::StaleGeneration { high_water, .. }) => {
                            prop_assert_eq!(Some(high_water), mark);
                            prop_assert!(generation < high_water);
                        }
                        applied => {
                            prop_assert!(mark.is_none_or(|m| generation >= m));
                            prop_assert_eq!(applied.unwrap(), model.apply(&inflight::Event::Started(run)));
                        }
                    }
                }
                Op::Complete { key, generation } => {
                    let key = format!("k{key}");
                    let applied = log.mark_completed_at(&key, generation, UnixMs(at)).unwrap();
                    let event = inflight::Event::Completed { key, generation, at_ms: at };
                    prop_assert_eq!(applied, model.apply(&event));
                }
                Op::Decide { key, generation, kind } => {
                    let key = format!("k{key}");
                    let event = match kind {
                        0 => inflight::Event::Promoted { key, reason: "restart_interrupted".into(), at_ms: at },
                        1 => inflight::Event::Suspended { key, at_ms: at },
                        2 => inflight::Event::Cleared { key, at_ms: at },
                        3 => inflight::Event::Progress { key, generation, nonce: 0, meta: Some(format!("p{at}")), at_ms: at },
                        _ => inflight::Event::Finished { key, generation, nonce: 0, at_ms: at },
                    };
                    let applied = log.record(event.clone()).unwrap();
                    prop_assert_eq!(applied, model.apply(&event));
                }
                Op::Close | Op::Reopen => {
                    if matches!(op, Op::Close) {
                        log.close().unwrap();
                        model.apply(&inflight::Event::Shutdown { at_ms: 0 });
                    }
                    let live = log.running();
                    drop(log);
                    let replayed = inflight::inspect::read_only(dir.path(), Policy::Strict).unwrap();
                    prop_assert_eq!(&replayed.set, &model);
                    let Opened { log: reopened, report } = Log::open(dir.path(), small_segments()).unwrap();
                    // An open that finds runs in flight records its recovery: the same runs,
                    // each counting one more recovery (or none, if a shutdown interrupted it).
                    if !model.is_empty() {
                        model.apply(&inflight::Event::Recovered { at_ms: 0 });
                    }
                    let runs = |r: Vec<inflight::InFlightRun>| -> Vec<(Run, inflight::Reason)> {
                        r.into_iter().map(|r| (r.run, r.reason)).collect()
                    };
                    prop_assert_eq!(runs(reopened.running()), runs(live));
                    prop_assert_eq!(&report.running, &model.entries().cloned().collect::<Vec<_>>());
                    prop_assert!(report.corruption.is_empty() && report.torn_tail.is_none());
                    log = reopened;
                }
            }
            let live: Vec<_> = log.running();
            let expected: Vec<_> = model.entries().cloned().collect();
            prop_assert_eq!(live, expected);
        }
        drop(log);
        let replayed = inflight::inspect::read_only(dir.path(), Policy::Strict).unwrap();
        prop_assert_eq!(replayed.set, model);
    }
}
