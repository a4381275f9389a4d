//! Drives a [`Log`] on a [`SimStorage`] through operations (start, complete, close, reopen,
//! crash, crash during recovery, injected faults) and checks the persistence model's oracle after
//! every step. The property tests, the exhaustive enumeration and the `ops` fuzz target all use
//! it; a failure carries the simulator's trace. The operations are in [`ops`](super::ops), the
//! checks of each reopen in [`recovery_check`](super::recovery_check).

use std::fmt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use crate::sim::{Fault, FaultRule, SimStorage};
use inflight::environment::Environment;
use inflight::error::Error;
use inflight::event::{Event, Run};
use inflight::event::{Generation, UnixMs};
use inflight::fold::InFlightRun;
use inflight::log::Log;
use inflight::options::Options;

use super::ops::{Op, RECOVERY_CRASH_POINT_MAX};
use super::oracle::{History, Model, Outcome, Violation};

/// The record a recovery writes, as the history matches it (by kind).
pub(super) const RECOVERED: Event = Event::Recovered { at_ms: 0 };

/// Meta carried by the starts of even keys, so that a few fill a smallest segment.
pub const START_META_BYTES: usize = 3500;
/// Where the harness keeps its log inside the simulator.
const LOG_DIR: &str = "/inflight";
/// How long the harness's log keeps an idle key's mark: short enough, against its step clock,
/// that compactions forget some.
pub const RETENTION_MS: u64 = 999_990;

/// A violation, with the step it happened at and the simulator's trace.
#[derive(Debug)]
pub struct Failure {
    /// The broken promise.
    pub violation: Violation,
    /// How many operations had been applied before the failing one.
    pub step: usize,
    /// The simulator's seed.
    pub seed: u64,
    /// The last storage calls, rendered.
    pub trace: String,
}

impl std::error::Error for Failure {}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "seed {} step {}: {}\nlast storage calls:\n{}",
            self.seed, self.step, self.violation, self.trace
        )
    }
}

/// A deterministic clock (one millisecond per reading) and salt source.
#[derive(Debug)]
pub struct StepEnvironment {
    now_ms: AtomicU64,
    rng: Mutex<fastrand::Rng>,
}

impl StepEnvironment {
    /// A clock starting at `start_ms` and salts drawn from `seed`.
    pub fn new(seed: u64, start_ms: u64) -> StepEnvironment {
        StepEnvironment {
            now_ms: AtomicU64::new(start_ms),
            rng: Mutex::new(fastrand::Rng::with_seed(seed)),
        }
    }
}

impl Environment for StepEnvironment {
    fn now_ms(&self) -> u64 {
        self.now_ms.fetch_add(1, Ordering::Relaxed)
    }
    fn salt(&self) -> u64 {
        self.rng.lock().unwrap_or_else(|e| e.into_inner()).u64(..)
    }
}

/// What a harness has covered so far: the figures a crash tier asserts, so that a change
/// cannot shrink it silently.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Coverage {
    /// Operations applied.
    pub ops: u64,
    /// Events acknowledged.
    pub acked: u64,
    /// Events whose call failed.
    pub failed: u64,
    /// Power losses simulated.
    pub crashes: u64,
    /// Recoveries checked against the oracle.
    pub recoveries: u64,
    /// Injected faults that made a call (an append, a close, or an attempt to open) fail.
    pub faults_failed_calls: u64,
    /// Compactions that cut the log (each starts a new segment).
    pub cuts: u64,
    /// Batches of several events submitted together.
    pub batches: u64,
    /// Compactions that returned `Ok`.
    pub compactions: u64,
    /// Recoveries that started from a snapshot.
    pub from_snapshot: u64,
    /// High-water marks forgotten by compactions' retention records.
    pub forgotten: u64,
    /// Acknowledged decisions, exact completions and adoptions that changed the state.
    pub decided: u64,
}

/// The nonce an [`Op::Start`] of `key` gives its run (0 for a third of the keys: a start
/// without one).
fn nonce_of(key: u8) -> u64 {
    u64::from(key % 3)
}

/// The event of an [`Op::Decide`].
fn decision(key: u8, generation: u64, kind: u8, at_ms: u64) -> Event {
    use inflight::event::{Adoption, Pending};
    use inflight::fold::Reason;
    let name = format!("k{}", key % 8);
    let nonce = nonce_of(key);
    match kind % 6 {
        0 => Event::Promoted {
            key: name,
            reason: "restart_interrupted".into(),
            at_ms,
        },
        1 => Event::Suspended { key: name, at_ms },
        2 => Event::Cleared { key: name, at_ms },
        3 => Event::Progress {
            key: name,
            generation,
            nonce,
            meta: Some(format!("progress at {at_ms}")),
            at_ms,
        },
        4 => Event::Finished {
            key: name,
            generation,
            nonce,
            at_ms,
        },
        _ => Event::Adopted(Adoption {
            run: Run {
                nonce: 7,
                ..Run::new(
                    name,
                    format!("s{at_ms}"),
                    Generation(generation),
                    UnixMs(at_ms),
                )
            },
            reason: if generation.is_multiple_of(2) {
                Reason::Crash
            } else {
                Reason::Shutdown
            },
            recoveries: u32::from(key % 4),
            stops: u32::from(key % 3),
            pending: (generation % 3 == 1).then(|| Pending {
                reason: "shutdown_timeout".into(),
                at_ms,
            }),
            suspended_at_ms: (generation % 3 == 2).then_some(at_ms),
            at_ms,
        }),
    }
}

/// A log on a simulated disk, and the model it is checked against.
pub struct Harness {
    pub(super) sim: SimStorage,
    seed: u64,
    pub(super) dir: PathBuf,
    pub(super) options: Options,
    pub(super) log: Option<Log>,
    pub(super) history: History,
    /// The reference model of every acknowledged event: what the live handle must hold.
    pub(super) model: Model,
    /// Set when a call failed: every later call on this handle must fail too (O6).
    pub(super) poisoned: bool,
    clock_ms: u64,
    step: usize,
    pub(super) coverage: Coverage,
}

impl fmt::Debug for Harness {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Harness")
            .field("seed", &self.seed)
            .field("step", &self.step)
            .field("coverage", &self.coverage)
            .finish()
    }
}

impl Harness {
    /// A fresh simulated disk from `seed`, with the log opened on it (small segments, so that
    /// rollover happens within short tests).
    pub fn new(seed: u64) -> Result<Harness, Box<Failure>> {
        Harness::resume(SimStorage::new(seed), seed, History::new())
    }

    /// The options the harness opens its log with: small segments, so that rollover happens
    /// within short tests, a deterministic clock and salts from `seed`, a short retention, and
    /// no background thread (compaction only when an operation asks for it, each segment
    /// created at its rollover), so the storage calls come in one reproducible order; stale
    /// starts are recorded rather than refused.
    pub fn options(seed: u64) -> Options {
        Options::default()
            .segment_bytes_max(inflight::limits::SEGMENT_BYTES_MIN)
            .environment(StepEnvironment::new(seed, 1_000_000))
            .retention(Some(std::time::Duration::from_millis(RETENTION_MS)))
            .compact_after_bytes(None)
            .prepare_segments(false)
            // The ops choose generations at random: stale starts reach the log, so the fold's
            // stale rule is crash-tested too.
            .record_stale_starts(true)
    }

    /// The directory the harness keeps its log in, inside the simulator.
    pub fn dir() -> &'static std::path::Path {
        std::path::Path::new(LOG_DIR)
    }

    /// A harness on an existing simulator whose log has seen the events of `history` (for
    /// example a fork in a crash-state enumeration, after the crash). The log is opened and the
    /// recovery checked against `history`.
    pub fn resume(sim: SimStorage, seed: u64, history: History) -> Result<Harness, Box<Failure>> {
        let options = Harness::options(seed);
        // What the live process held: the model of the events it had acknowledged.
        let mut model = history.base().clone();
        for event in history.acked() {
            model.apply(event);
        }
        let mut h = Harness {
            sim,
            seed,
            dir: PathBuf::from(LOG_DIR),
            options,
            log: None,
            history,
            model,
            poisoned: false,
            clock_ms: 0,
            step: 0,
            coverage: Coverage::default(),
        };
        h.reopen()?;
        Ok(h)
    }

    /// The simulated disk.
    pub fn sim(&self) -> &SimStorage {
        &self.sim
    }

    /// What the harness has done.
    pub fn coverage(&self) -> Coverage {
        self.coverage
    }

    /// Applies `op` and checks every promise it touches.
    pub fn apply(&mut self, op: Op) -> Result<(), Box<Failure>> {
        self.coverage.ops += 1;
        let result = match op {
            Op::Start { key, generation } => {
                self.clock_ms += 1;
                let mut run = Run::new(
                    format!("k{}", key % 8),
                    format!("s{}", self.clock_ms),
                    Generation(u64::from(generation)),
                    UnixMs(self.clock_ms),
                );
                if key % 2 == 0 {
                    // Large enough that a few of them fill a smallest segment: tests built on
                    // the harness cross segment rollovers too.
                    run.meta = Some("m".repeat(START_META_BYTES));
                }
                // Starts with a nonce and without (the two encodings of a start).
                run.nonce = nonce_of(key);
                self.submit(Event::Started(run))
            }
            Op::Complete { key, generation } => {
                self.clock_ms += 1;
                self.submit(Event::Completed {
                    key: format!("k{}", key % 8),
                    generation: u64::from(generation),
                    at_ms: self.clock_ms,
                })
            }
            Op::Close => self.close().and_then(|()| self.reopen()),
            Op::Reopen => {
                self.log = None;
                self.reopen()
            }
            Op::Crash => {
                self.crash();
                self.reopen()
            }
            Op::CrashDuringRecovery { after } => self.crash_during_recovery(after),
            Op::Fault(kind) => {
                self.sim.inject(FaultRule::once(kind.fault()));
                Ok(())
            }
            Op::Compact => self.compact(),
            Op::Decide {
                key,
                generation,
                kind,
            } => {
                self.clock_ms += 1;
                let event = decision(key, u64::from(generation), kind, self.clock_ms);
                self.submit(event)
            }
            Op::Batch {
                key,
                generation,
                count,
            } => {
                let events = self.batch_events(key, generation, count);
                self.batch(events)
            }
        };
        self.step += 1;
        result
    }

    /// [`Op::CrashDuringRecovery`]: a power loss, a recovery stopped by another power loss
    /// after `after` storage calls (modulo [`RECOVERY_CRASH_POINT_MAX`]), then a full recovery.
    fn crash_during_recovery(&mut self, after: u8) -> Result<(), Box<Failure>> {
        self.crash();
        self.sim
            .crash_after_ops(u64::from(after) % RECOVERY_CRASH_POINT_MAX);
        // The interrupted recovery may have recorded itself.
        self.history.submit(RECOVERED, Outcome::Failed);
        let interrupted =
            Log::open_with_storage(Arc::new(self.sim.clone()), &self.dir, self.options.clone());
        drop(interrupted);
        self.crash();
        self.reopen()
    }

    /// The events of an [`Op::Batch`]: two to four (`2 + count % 3`), starts and completions
    /// in turn, of the keys from `key` on, one clock step each.
    fn batch_events(&mut self, key: u8, generation: u8, count: u8) -> Vec<Event> {
        (0..2 + count % 3)
            .map(|i| {
                self.clock_ms += 1;
                let key = format!("k{}", key.wrapping_add(i) % 8);
                if i % 2 == 0 {
                    Event::Started(Run::new(
                        key,
                        format!("s{}", self.clock_ms),
                        Generation(u64::from(generation)),
                        UnixMs(self.clock_ms),
                    ))
                } else {
                    Event::Completed {
                        key,
                        generation: u64::from(generation),
                        at_ms: self.clock_ms,
                    }
                }
            })
            .collect()
    }

    /// Applies every op in order, stopping at the first failure.
    pub fn run(&mut self, ops: &[Op]) -> Result<(), Box<Failure>> {
        ops.iter().try_for_each(|&op| self.apply(op))
    }

    /// A power loss: the handle dies, and the disk keeps what the simulator's seed chooses.
    pub fn crash(&mut self) {
        self.log = None;
        self.sim.crash();
        self.coverage.crashes += 1;
    }

    pub(super) fn fail(&self, violation: Violation) -> Box<Failure> {
        Box::new(Failure {
            violation,
            step: self.step,
            seed: self.seed,
            trace: self.sim.trace_text_last(40),
        })
    }

    pub(super) fn mismatch(&self, detail: String) -> Box<Failure> {
        self.fail(Violation::Mismatch { detail })
    }

    fn submit(&mut self, event: Event) -> Result<(), Box<Failure>> {
        let Some(log) = &self.log else {
            return Ok(());
        };
        let calls_before = self.sim.op_count();
        let result = log.record(event.clone());
        self.after_call(event, result.map(Some), calls_before)
    }

    /// Events submitted together, then waited for one by one, so that several are in flight
    /// when a crash or a fault comes. The live set is checked once all are accounted for.
    fn batch(&mut self, events: Vec<Event>) -> Result<(), Box<Failure>> {
        let Some(log) = self.log.take() else {
            return Ok(());
        };
        let outcome = self.batch_on(&log, events);
        self.log = Some(log);
        outcome?;
        if let (Some(log), false) = (&self.log, self.poisoned) {
            self.check_live(log.running())?;
        }
        Ok(())
    }

    fn batch_on(&mut self, log: &Log, events: Vec<Event>) -> Result<(), Box<Failure>> {
        let calls_before = self.sim.op_count();
        let submitted: Vec<_> = events
            .into_iter()
            .map(|e| {
                let ticket = log.submit(e.clone());
                (e, ticket)
            })
            .collect();
        if submitted.len() > 1 && submitted.iter().all(|(_, t)| t.is_ok()) {
            self.coverage.batches += 1;
        }
        for (event, ticket) in submitted {
            let result = ticket.and_then(|t| log.wait(&t));
            self.after_call_unchecked(event, result.map(Some), calls_before)?;
        }
        Ok(())
    }

    /// A compaction, in its two halves. The cut's retention record is an append like any
    /// other; the snapshot may or may not exist after a failure or a crash, and once `finish`
    /// returned `Ok` every later recovery must start from it or a later one (O5).
    fn compact(&mut self) -> Result<(), Box<Failure>> {
        let Some(log) = self.log.take() else {
            return Ok(());
        };
        let outcome = self.compact_log(&log);
        self.log = Some(log);
        outcome?;
        if let Some(log) = &self.log {
            self.check_live(log.running())?;
        }
        Ok(())
    }

    fn compact_log(&mut self, log: &Log) -> Result<(), Box<Failure>> {
        let calls_before = self.sim.op_count();
        let result = log.begin_compaction();
        let begun = match result {
            Ok(begun) => begun,
            Err(e) => {
                // The retention record may or may not have landed.
                let record = Event::Retention {
                    forget_before_ms: 0,
                    at_ms: 0,
                };
                return self.after_call(record, Err(e), calls_before);
            }
        };
        if self.poisoned {
            return Err(self.mismatch("O6: a poisoned handle cut a compaction".into()));
        }
        self.coverage.cuts += 1;
        if let Some(record) = begun.retention_record().cloned() {
            if let inflight::fold::Applied::Retention { forgotten } = self.model.apply(&record) {
                self.coverage.forgotten += forgotten as u64;
            }
            self.history.submit(record, Outcome::Acked);
        }
        self.history.cut();
        let calls_before = self.sim.op_count();
        match begun.finish() {
            Ok(done) => {
                self.history.cut_durable();
                self.coverage.compactions += 1;
                let (running, marks) = (self.model.running().len(), self.model.marks().len());
                if (done.running, done.marks) != (running, marks) {
                    return Err(self.mismatch(format!(
                        "O7: the snapshot holds {} running runs and {} marks, the model {running} and {marks}",
                        done.running, done.marks
                    )));
                }
            }
            Err(e) => {
                if !matches!(e, Error::Io { .. }) || self.fault_since(calls_before).is_none() {
                    return Err(self.mismatch(format!(
                        "a compaction failed with no injected fault to explain it: {e}"
                    )));
                }
                self.coverage.faults_failed_calls += 1;
            }
        }
        Ok(())
    }

    fn close(&mut self) -> Result<(), Box<Failure>> {
        let Some(log) = self.log.take() else {
            return Ok(());
        };
        let calls_before = self.sim.op_count();
        let result = log.close();
        if result.is_ok() && !matches!(log.mark_completed("k0", 0), Err(Error::Closed)) {
            return Err(self.mismatch("a closed handle accepted an append".into()));
        }
        self.after_call(
            Event::Shutdown { at_ms: 0 },
            result.map(|()| None),
            calls_before,
        )
    }

    /// The fault injected into a storage call made since call number `calls_before`, if any:
    /// what explains an error. A log whose calls failed on their own (a bug, not the disk)
    /// would otherwise pass O1 and O2 with nothing acknowledged.
    pub(super) fn fault_since(&self, calls_before: u64) -> Option<Fault> {
        self.sim
            .trace()
            .iter()
            .rev()
            .take_while(|t| t.index >= calls_before)
            .find_map(|t| t.fault)
    }

    /// Checks one call's result against the model: an error is explained by an injected fault
    /// (or by an earlier one that poisoned the handle), O6 (a failed call poisons the handle)
    /// and O7 (the live set is the model's fold of the acknowledged events).
    fn after_call(
        &mut self,
        event: Event,
        result: Result<Option<inflight::fold::Applied>, Error>,
        calls_before: u64,
    ) -> Result<(), Box<Failure>> {
        self.account(event, result, calls_before, true)
    }

    /// [`Harness::after_call`] without the check of the live set (a batch checks it once all
    /// its events are accounted for).
    fn after_call_unchecked(
        &mut self,
        event: Event,
        result: Result<Option<inflight::fold::Applied>, Error>,
        calls_before: u64,
    ) -> Result<(), Box<Failure>> {
        self.account(event, result, calls_before, false)
    }

    fn account(
        &mut self,
        event: Event,
        result: Result<Option<inflight::fold::Applied>, Error>,
        calls_before: u64,
        check_live: bool,
    ) -> Result<(), Box<Failure>> {
        match result {
            Ok(applied) => {
                if self.poisoned {
                    return Err(self.mismatch(format!(
                        "O6: a call succeeded on a handle poisoned by an earlier failure: {event:?}"
                    )));
                }
                let expected = self.model.apply(&event);
                if applied.is_some_and(|a| a != expected) {
                    return Err(self.mismatch(format!(
                        "O7: {event:?} did {applied:?}, the model says {expected:?}"
                    )));
                }
                let decision = matches!(
                    event,
                    Event::Finished { .. }
                        | Event::Promoted { .. }
                        | Event::Suspended { .. }
                        | Event::Cleared { .. }
                        | Event::Progress { .. }
                        | Event::Adopted(_)
                );
                if decision
                    && !matches!(
                        expected,
                        inflight::fold::Applied::Unmatched { .. }
                            | inflight::fold::Applied::UnknownCompletion
                            | inflight::fold::Applied::StaleStart { .. }
                    )
                {
                    self.coverage.decided += 1;
                }
                self.history.submit(event, Outcome::Acked);
                self.coverage.acked += 1;
                if check_live && let Some(log) = &self.log {
                    self.check_live(log.running())?;
                }
            }
            Err(e) => {
                if self.poisoned && !matches!(e, Error::Poisoned { .. }) {
                    return Err(self.mismatch(format!(
                        "O6: a poisoned handle failed with {e} instead of Poisoned"
                    )));
                }
                if !matches!(e, Error::Io { .. } | Error::Poisoned { .. }) {
                    return Err(self.mismatch(format!("unexpected error for {event:?}: {e}")));
                }
                if !self.poisoned {
                    if self.fault_since(calls_before).is_none() {
                        return Err(self.mismatch(format!(
                            "{event:?} failed with no injected fault to explain it: {e}"
                        )));
                    }
                    self.coverage.faults_failed_calls += 1;
                }
                self.poisoned = true;
                self.history.submit(event, Outcome::Failed);
                self.coverage.failed += 1;
            }
        }
        Ok(())
    }

    fn check_live(&self, live: Vec<InFlightRun>) -> Result<(), Box<Failure>> {
        let model = self.model.running();
        if live != model {
            return Err(self.mismatch(format!(
                "O7: live running set {live:?} differs from the model {model:?}"
            )));
        }
        Ok(())
    }
}
