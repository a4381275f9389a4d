//! What recovery reports when the disk breaks SQLite's "powersafe overwrite" (F2 with no sector
//! atomicity at all): a crash that interrupts an append may also damage the synced bytes that
//! share the append's first sector, which hold the end of the previous, acknowledged record.
//!
//! The log assumes that this does not happen (docs/GUARANTEES.md says so). This test
//! measures what happens when it does: for every workload of up to three ~130-byte events, the
//! log is stopped after every storage call and crashed into every crash state the simulator
//! enumerates with its sector spill on ([`SimStorage::set_sector_spill`]), at 512 and at
//! 4096 bytes. Each state is recovered with a read-write open and classified:
//!
//! - **exact**: every acknowledged event is there (O1, O2);
//! - **torn tail**: acknowledged events are lost, and the torn tail the open reports (and
//!   cuts) covers the bytes of each of them;
//! - **corruption**: acknowledged events are lost, each covered by the torn tail or by a
//!   reported corruption, at least one by a corruption;
//! - **silent**: an acknowledged event is lost and nothing reported covers its bytes.
//!
//! In every state, every recovered event is one that was submitted, with its bytes (O2, O3),
//! and the opened log holds the reference model's fold of its events (O7). Writes the figures to
//! `target/tmp/crashtest-sector.txt`.

mod common;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Arc;

use inflight::Opened;
use inflight::store::FileSource;
use inflight::{Event, Log, Policy, RecoveryReport, Run};
use inflight::{Generation, UnixMs};
use inflight_sim::crashtest::{Harness, History, Model, Outcome};
use inflight_sim::sim::SimStorage;

const SEED: u64 = 11;
const EVENTS_MAX: usize = 3;
const SYMBOLS: usize = 4;
const SHUTDOWN: usize = 4;
/// Events a log holds before its workload, in the second family of runs: about 5.5 KiB, so
/// that the workload's appends start deep inside the segment, past its first 4 KiB.
const HISTORY_LEN: u64 = 60;

/// The events workloads are made of, as in tier 3 but the size of a gateway's: about 130
/// bytes a frame, so that several records share a sector.
fn event(symbol: usize, at_ms: u64) -> Event {
    let start = |key: &str, generation| {
        Event::Started(
            Run::new(
                format!("agent:main:telegram:dm:{key}"),
                format!("20261126_104512_{at_ms:08x}"),
                Generation(generation),
                UnixMs(1_764_150_000_000 + at_ms),
            )
            .with_meta("{\"resume_from\":\"msg-1234567\",\"platform\":\"telegram\"}"),
        )
    };
    match symbol {
        0 => start("4242", 1),
        1 => Event::Completed {
            key: "agent:main:telegram:dm:4242".into(),
            generation: 1,
            at_ms: 1_764_150_000_000 + at_ms,
        },
        2 => start("4243", 1),
        3 => start("4242", 2),
        _ => Event::Shutdown { at_ms },
    }
}

/// Every sequence of up to [`EVENTS_MAX`] events, the shorter ones also followed by a shutdown.
fn workloads() -> Vec<Vec<usize>> {
    common::workloads(SYMBOLS, EVENTS_MAX, SHUTDOWN)
}

/// Event `i` of the history a log has before its workload: starts and completions of keys the
/// workloads do not use, of the same size as theirs.
fn earlier(i: u64) -> Event {
    let key = format!("agent:main:telegram:dm:{}", 1000 + i / 2);
    if i.is_multiple_of(2) {
        Event::Started(
            Run::new(
                key,
                format!("20261126_104512_{i:08x}"),
                Generation(1),
                UnixMs(1_764_140_000_000 + i),
            )
            .with_meta("{\"resume_from\":\"msg-1234567\",\"platform\":\"telegram\"}"),
        )
    } else {
        Event::Completed {
            key,
            generation: 1,
            at_ms: 1_764_140_000_000 + i,
        }
    }
}

/// Opens a log on `sim`, records `history_len` earlier events (which must all succeed), then
/// arms the crash point `stop` (counted from there, if any) and runs `workload` until it ends
/// or the simulator stops it. Returns what each call returned and how many storage calls the
/// part after the earlier events made.
fn run(
    sim: &SimStorage,
    history_len: u64,
    stop: Option<u64>,
    workload: &[usize],
) -> (History, u64) {
    let mut history = History::new();
    if history_len == 0
        && let Some(point) = stop
    {
        sim.crash_after_ops(point);
    }
    let start = sim.op_count();
    let Ok(Opened { log, .. }) = Log::open_with_storage(
        Arc::new(sim.clone()),
        Harness::dir(),
        Harness::options(SEED),
    ) else {
        return (history, sim.op_count() - start);
    };
    for i in 0..history_len {
        let e = earlier(i);
        log.record(e.clone()).expect("no crash point yet");
        history.submit(e, Outcome::Acked);
    }
    let start = if history_len == 0 {
        start
    } else {
        if let Some(point) = stop {
            sim.crash_after_ops(point);
        }
        sim.op_count()
    };
    for (i, &symbol) in workload.iter().enumerate() {
        let e = event(symbol, i as u64 + 1);
        let failed = log.record(e.clone()).is_err();
        history.submit(
            e,
            if failed {
                Outcome::Failed
            } else {
                Outcome::Acked
            },
        );
        if failed {
            break;
        }
    }
    (history, sim.op_count() - start)
}

/// Where each durable record of the log in `sim` lies: its event, segment and byte range.
/// Read from a copy that kept only what was synced, where every record is whole.
fn record_places(sim: &SimStorage) -> Vec<(Event, String, u64, u64)> {
    let durable = sim.fork();
    durable.crash_keep_nothing();
    let mut by_seq = BTreeMap::new();
    let Ok(_) = inflight::inspect::for_each_event(
        &FileSource::new(&durable, Harness::dir()),
        Policy::Strict,
        |seq, e| {
            by_seq.insert(seq, e.to_event());
        },
    ) else {
        return Vec::new();
    };
    let mut places = Vec::new();
    let mut names = durable.durable_list(Harness::dir()).unwrap_or_default();
    names.retain(|n| n.ends_with(".log"));
    for name in names {
        let bytes = durable.durable_bytes(Harness::dir().join(&name)).unwrap();
        let mut pos = inflight::frame::SEGMENT_HEADER_BYTES;
        while pos + inflight::frame::FRAME_HEADER_BYTES <= bytes.len() {
            let len = u32::from_le_bytes(bytes[pos..pos + 4].try_into().unwrap()) as usize;
            let seq = u64::from_le_bytes(bytes[pos + 8..pos + 16].try_into().unwrap());
            let end = pos + inflight::frame::FRAME_HEADER_BYTES + len;
            if let Some(e) = by_seq.get(&seq) {
                places.push((e.clone(), name.clone(), pos as u64, end as u64));
            }
            pos = end;
        }
    }
    places
}

/// What recovery made of one crash state.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Class {
    Exact,
    TornTail,
    Corruption,
    Silent,
}

/// Figures for one sector size.
#[derive(Default)]
struct Figures {
    points: u64,
    states: u64,
    spill_only_states: u64,
    by_class: BTreeMap<Class, u64>,
    events_lost: u64,
    most_lost: usize,
    silent_examples: Vec<String>,
}

/// Classifies the lost events by what `report` says about their bytes.
fn classify(lost: &[(Event, String, u64, u64)], report: &RecoveryReport) -> Class {
    let mut class = Class::Exact;
    for (_, segment, start, end) in lost {
        let torn = report.torn_tail.as_ref().is_some_and(|t| {
            t.segment == *segment && t.offset < *end && *start < t.offset + t.bytes
        });
        let corrupt = report
            .corruption
            .iter()
            .any(|c| c.segment == *segment && c.start_offset < *end && *start < c.end_offset);
        let this = if torn {
            Class::TornTail
        } else if corrupt {
            Class::Corruption
        } else {
            Class::Silent
        };
        class = class.max(this);
    }
    class
}

/// Every crash state of every workload, run on a log holding `history_len` earlier events,
/// with the sector spill at `sector` bytes. With earlier events, the crash points are those
/// of the workload alone.
fn enumerate(sector: u64, history_len: u64) -> Figures {
    let mut figures = Figures::default();
    for workload in &workloads() {
        let probe = SimStorage::new(SEED);
        let (_, calls) = run(&probe, history_len, None, workload);
        for point in 0..=calls {
            let sim = SimStorage::new(SEED);
            sim.set_sector_spill(Some(sector));
            let (history, _) = run(&sim, history_len, Some(point), workload);
            let places = record_places(&sim);
            let count = sim.crash_state_count();
            let plain = {
                let off = sim.fork();
                off.set_sector_spill(None);
                off.crash_state_count()
            };
            figures.points += 1;
            figures.states += count;
            figures.spill_only_states += count - plain;
            for index in 0..count {
                let context = format!(
                    "workload {workload:?}, crash after call {point}, state {index} of {count}"
                );
                let fork = sim.fork();
                fork.crash_into(index);
                // The open records its recovery when it finds runs in flight.
                let mut history = history.clone();
                history.submit(Event::Recovered { at_ms: 0 }, Outcome::Failed);
                let Opened { log, report } = Log::open_with_storage(
                    Arc::new(fork.clone()),
                    Harness::dir(),
                    Harness::options(SEED),
                )
                .unwrap_or_else(|e| panic!("{context}: recovery failed: {e}"));
                let mut events = Vec::new();
                let replayed = inflight::inspect::for_each_event(
                    &FileSource::new(&fork, Harness::dir()),
                    Policy::SkipDamaged,
                    |_, e| events.push(e.to_event()),
                )
                .unwrap_or_else(|e| panic!("{context}: replay after open failed: {e}"));
                // Never an event that was not submitted, never one with wrong bytes, never out
                // of order (O2, O3).
                let missing = history
                    .missing_acked(&events)
                    .unwrap_or_else(|v| panic!("{context}: {v}"));
                // O7: the opened log holds the reference model of what it replays.
                let running = Model::of(&events).running();
                assert_eq!(log.running(), running, "{context}");
                assert_eq!(replayed.report.running, running, "{context}");
                let class = if missing.is_empty() {
                    history
                        .check(&events)
                        .unwrap_or_else(|v| panic!("{context}: {v}"));
                    Class::Exact
                } else {
                    let lost: Vec<_> = places
                        .iter()
                        .filter(|(e, ..)| missing.contains(e))
                        .cloned()
                        .collect();
                    assert_eq!(
                        lost.len(),
                        missing.len(),
                        "{context}: every lost event was durable"
                    );
                    figures.events_lost += missing.len() as u64;
                    figures.most_lost = figures.most_lost.max(missing.len());
                    let class = classify(&lost, &report);
                    if class == Class::Silent && figures.silent_examples.len() < 10 {
                        figures.silent_examples.push(format!(
                            "{context}: lost {lost:?}, report {report:?}\n{}",
                            fork.trace_text_last(3)
                        ));
                    }
                    class
                };
                *figures.by_class.entry(class).or_default() += 1;
            }
        }
    }
    figures
}

#[test]
fn without_powersafe_overwrite_lost_records_are_reported_at_their_place() {
    let mut summary = String::new();
    for (sector, history_len) in [(512, 0), (512, HISTORY_LEN), (4096, 0), (4096, HISTORY_LEN)] {
        let f = enumerate(sector, history_len);
        let class = |c| f.by_class.get(&c).copied().unwrap_or(0);
        let line = format!(
            "sector spill at {sector} bytes, {history_len} earlier events: {} workloads, {} crash points, {} crash states ({} only with the spill): {} recovered exactly, {} lost acknowledged events reported as a torn tail, {} reported as corruption at the place, {} lost silently ({} acknowledged events lost in all, at most {} in one state)",
            workloads().len(),
            f.points,
            f.states,
            f.spill_only_states,
            class(Class::Exact),
            class(Class::TornTail),
            class(Class::Corruption),
            class(Class::Silent),
            f.events_lost,
            f.most_lost,
        );
        writeln!(summary, "{line}").unwrap();
        for example in &f.silent_examples {
            eprintln!("silent loss: {example}");
        }
        // Every state the enumeration has without the spill is recovered exactly.
        assert!(
            class(Class::Exact) >= f.states - f.spill_only_states,
            "{line}"
        );
        // The mode did something: acknowledged records were damaged in many states, and
        // recovery reported both kinds of damage.
        let damaged = class(Class::TornTail) + class(Class::Corruption) + class(Class::Silent);
        assert!(damaged >= 5000, "{line}");
        assert!(class(Class::TornTail) >= 1000, "{line}");
        assert!(class(Class::Corruption) >= 1000, "{line}");
        // Never a loss that nothing reports.
        assert_eq!(class(Class::Silent), 0, "{line}");
    }
    common::report_tier("sector", summary.trim_end());
}
