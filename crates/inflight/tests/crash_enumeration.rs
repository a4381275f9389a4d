//! Tier 3 of the persistence model, ALICE-style: for every workload of up to four events, stop
//! it after every storage call, and from there try every crash state the simulator enumerates
//! (F1 to F5: each pending write lost, whole, torn at each sector or inside one, filled with old
//! bytes, zeros or garbage; each length change and each name operation kept or lost). Each state
//! is recovered and checked against the oracle (O1, O2, O4, O7).
//!
//! A third set submits two to five events together and then waits for each, so that group
//! commit writes several in one frame: every crash state must keep a prefix of them, in order.
//!
//! A second set of workloads includes a compaction (its retention record, the cut, the snapshot
//! written, the covered segments removed), so every crash state of every step of a compaction
//! is recovered and checked too (O5: the old state or the new, never a mix, never less).
//!
//! Prints how many workloads, crash points and crash states were checked.

mod common;

use std::sync::Arc;

use inflight::Opened;
use inflight::{Event, Log, Run};
use inflight::{Generation, UnixMs};
use inflight_sim::crashtest::{Harness, History, Outcome, START_META_BYTES};
use inflight_sim::sim::SimStorage;

/// The events workloads are made of: two keys, a completion, a newer generation, and a clean
/// shutdown (only ever last).
fn event(symbol: usize, at_ms: u64) -> Event {
    // Starts carry enough meta that the fourth one rolls over to a second segment.
    let start = |key: &str, generation| {
        Event::Started(
            Run::new(
                key,
                format!("s{at_ms}"),
                Generation(generation),
                UnixMs(at_ms),
            )
            .with_meta("m".repeat(START_META_BYTES)),
        )
    };
    match symbol {
        0 => start("k0", 1),
        1 => Event::Completed {
            key: "k0".into(),
            generation: 1,
            at_ms,
        },
        2 => start("k1", 1),
        3 => start("k0", 2),
        _ => Event::Shutdown { at_ms },
    }
}
const SYMBOLS: usize = 4;
const SHUTDOWN: usize = 4;
const EVENTS_MAX: usize = 4;
const SEED: u64 = 11;

/// Every sequence of up to [`EVENTS_MAX`] events, the shorter ones also followed by a shutdown.
fn workloads() -> Vec<Vec<usize>> {
    common::workloads(SYMBOLS, EVENTS_MAX, SHUTDOWN)
}

/// The symbol of a compaction in a workload.
const COMPACT: usize = 5;
/// As a workload's first symbol: submit every event, then wait for each (a batch: group
/// commit writes them as one frame with one sync).
const BATCH: usize = 6;

/// Runs `workload` on `sim` until it ends or the simulator stops it; returns what each call
/// returned.
fn run(sim: &SimStorage, workload: &[usize]) -> History {
    let mut history = History::new();
    let Ok(Opened { log, .. }) = Log::open_with_storage(
        Arc::new(sim.clone()),
        Harness::dir(),
        Harness::options(SEED),
    ) else {
        return history;
    };
    if workload.first() == Some(&BATCH) {
        let events: Vec<Event> = workload[1..]
            .iter()
            .enumerate()
            .map(|(i, &symbol)| event(symbol, i as u64 + 1))
            .collect();
        let tickets: Vec<_> = events.iter().map(|e| log.submit(e.clone())).collect();
        for (e, ticket) in events.into_iter().zip(tickets) {
            let acked = ticket.and_then(|t| log.wait(&t)).is_ok();
            history.submit(
                e,
                if acked {
                    Outcome::Acked
                } else {
                    Outcome::Failed
                },
            );
        }
        return history;
    }
    for (i, &symbol) in workload.iter().enumerate() {
        if symbol == COMPACT {
            if !compact(&log, &mut history) {
                break;
            }
            continue;
        }
        let e = event(symbol, i as u64 + 1);
        let failed = log.record(e.clone()).is_err();
        let outcome = if failed {
            Outcome::Failed
        } else {
            Outcome::Acked
        };
        history.submit(e, outcome);
        if failed {
            break;
        }
    }
    history
}

/// A compaction, recorded in `history` as the harness records it: the retention record, the
/// cut, and whether the snapshot was made durable. Returns whether it succeeded.
fn compact(log: &Log, history: &mut History) -> bool {
    let begun = match log.begin_compaction() {
        Ok(begun) => begun,
        Err(_) => {
            let record = Event::Retention {
                forget_before_ms: 0,
                at_ms: 0,
            };
            history.submit(record, Outcome::Failed);
            return false;
        }
    };
    if let Some(record) = begun.retention_record() {
        history.submit(record.clone(), Outcome::Acked);
    }
    history.cut();
    let done = begun.finish().is_ok();
    if done {
        history.cut_durable();
    }
    done
}

/// Workloads with a compaction: every sequence of one to three events with a compaction after
/// any of them, and a second compaction or more events after it.
fn compaction_workloads() -> Vec<Vec<usize>> {
    let mut all = Vec::new();
    for events in common::workloads(SYMBOLS, 3, SHUTDOWN) {
        let ends_closed = events.last() == Some(&SHUTDOWN);
        if events.is_empty() || ends_closed {
            continue;
        }
        for at in 1..=events.len() {
            let mut w = events.clone();
            w.insert(at, COMPACT);
            all.push(w.clone());
            if at == events.len() {
                w.push(COMPACT);
                all.push(w);
            }
        }
    }
    all
}

/// Batched workloads: every sequence of two to four events (the shorter ones also followed by a
/// shutdown), submitted together.
fn batch_workloads() -> Vec<Vec<usize>> {
    common::workloads(SYMBOLS, 4, SHUTDOWN)
        .into_iter()
        .filter(|w| w.len() >= 2)
        .map(|w| std::iter::once(BATCH).chain(w).collect())
        .collect()
}

/// How many segment files the log in `sim` has.
fn segments(sim: &SimStorage) -> usize {
    sim.durable_list(Harness::dir())
        .unwrap_or_default()
        .iter()
        .filter(|n| n.ends_with(".log"))
        .count()
}

/// What an enumeration explored.
#[derive(Default)]
struct Explored {
    points: u64,
    states: u64,
    most: u64,
    rolled: usize,
}

/// Stops each workload after every storage call and recovers every crash state from there.
fn enumerate(all: &[Vec<usize>]) -> Explored {
    let mut x = Explored::default();
    for workload in all {
        let probe = SimStorage::new(SEED);
        let probed = run(&probe, workload);
        // Without a crash every event must be acknowledged: otherwise the crash points below
        // would cover only a prefix of the workload.
        let events = workload
            .iter()
            .filter(|&&s| s != COMPACT && s != BATCH)
            .count();
        let retentions = workload.iter().filter(|&&s| s == COMPACT).count();
        assert_eq!(
            probed.acked().count(),
            events + retentions,
            "workload {workload:?} without a crash acknowledged only {:?}",
            probed.acked().collect::<Vec<_>>()
        );
        assert_eq!(probed.durable_cuts(), retentions, "workload {workload:?}");
        let calls = probe.op_count();
        x.rolled += usize::from(segments(&probe) > 1);
        for point in 0..=calls {
            let sim = SimStorage::new(SEED);
            sim.crash_after_ops(point);
            let history = run(&sim, workload);
            let count = sim.crash_state_count();
            x.most = x.most.max(count);
            x.points += 1;
            for index in 0..count {
                let fork = sim.fork();
                fork.crash_into(index);
                if let Err(failure) = Harness::resume(fork, SEED, history.clone()) {
                    panic!(
                        "workload {workload:?}, crash after call {point}, crash state {index} of {count}: {failure}"
                    );
                }
                x.states += 1;
            }
        }
    }
    x
}

#[test]
fn every_crash_state_of_every_small_workload_recovers_correctly() {
    let all = workloads();
    let x = enumerate(&all);
    common::report_tier(
        "3",
        &format!(
            "tier 3: {} workloads ({} crossing a segment rollover), {} crash points, {} crash states checked (at most {} at one point)",
            all.len(),
            x.rolled,
            x.points,
            x.states,
            x.most
        ),
    );
    // What the tier explores may not shrink silently: a floor on each figure, a little below
    // what it reaches today (426 workloads, 81 crossing a rollover, 8,647 crash points,
    // 806,996 crash states).
    let floors = [
        ("workloads", all.len() as u64, 426),
        ("workloads crossing a segment rollover", x.rolled as u64, 81),
        ("crash points", x.points, 8_500),
        ("crash states", x.states, 790_000),
    ];
    for (what, count, floor) in floors {
        assert!(
            count >= floor,
            "tier 3 explored too little: {count} {what}, below the floor of {floor}"
        );
    }
}

#[test]
fn every_crash_state_of_every_compaction_recovers_the_old_state_or_the_new() {
    let all = compaction_workloads();
    let x = enumerate(&all);
    common::report_tier(
        "3c",
        &format!(
            "tier 3 with compaction: {} workloads, {} crash points, {} crash states checked (at most {} at one point)",
            all.len(),
            x.points,
            x.states,
            x.most
        ),
    );
    // Floors a little below what it reaches today (312 workloads, 12,952 crash points,
    // 1,117,700 crash states).
    let floors = [
        ("workloads", all.len() as u64, 312),
        ("crash points", x.points, 12_500),
        ("crash states", x.states, 1_080_000),
    ];
    for (what, count, floor) in floors {
        assert!(
            count >= floor,
            "tier 3 with compaction explored too little: {count} {what}, below the floor of {floor}"
        );
    }
}

#[test]
fn every_crash_state_of_every_batch_keeps_a_prefix_in_order() {
    let all = batch_workloads();
    let x = enumerate(&all);
    common::report_tier(
        "3b",
        &format!(
            "tier 3 with batches: {} workloads of 2 to 5 events submitted together, {} crash points, {} crash states checked (at most {} at one point)",
            all.len(),
            x.points,
            x.states,
            x.most
        ),
    );
    // Floors a little below what it reaches today (420 workloads, 6,771 crash points, 697,536
    // crash states).
    let floors = [
        ("workloads", all.len() as u64, 420),
        ("crash points", x.points, 6_500),
        ("crash states", x.states, 680_000),
    ];
    for (what, count, floor) in floors {
        assert!(
            count >= floor,
            "tier 3 with batches explored too little: {count} {what}, below the floor of {floor}"
        );
    }
}
