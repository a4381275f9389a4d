//! Drives a [`Log`] on a [`SimStorage`] through operations (start, complete, close, reopen,
//! crash, crash during recovery, injected faults) and checks the persistence model's oracle after
//! every step. The property tests, the exhaustive enumeration and the `ops` fuzz target all use
//! it; a failure carries the simulator's trace.

use std::fmt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use crate::environment::Environment;
use crate::error::Error;
use crate::event::{Event, Run};
use crate::event::{Generation, UnixMs};
use crate::fold::InFlightRun;
use crate::log::{Log, Opened};
use crate::options::Options;
use crate::recovery::{Policy, RecoveryReport};
use crate::sim::{Fault, FaultRule, SimStorage};

use super::oracle::{History, Model, Outcome, Violation};

/// The record a recovery writes, as the history matches it (by kind).
const RECOVERED: Event = Event::Recovered { at_ms: 0 };

/// Storage calls a recovery may be stopped after, at most (for [`Op::CrashDuringRecovery`]).
pub const RECOVERY_CRASH_POINT_MAX: u64 = 64;
/// Attempts to open a log while injected faults make opening fail.
const OPEN_ATTEMPTS_MAX: usize = 8;
/// Meta carried by the starts of even keys, so that a few fill a smallest segment.
pub const START_META_BYTES: usize = 3500;
/// Where the harness keeps its log inside the simulator.
const LOG_DIR: &str = "/inflight";
/// How long the harness's log keeps an idle key's mark: short enough, against its step clock,
/// that compactions forget some.
pub const RETENTION_MS: u64 = 999_990;

/// One step of a crash test.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "fuzzing", derive(arbitrary::Arbitrary))]
pub enum Op {
    /// `mark_running` on key `k{key}` with `generation`.
    Start {
        /// Which of a few keys.
        key: u8,
        /// The run's generation.
        generation: u8,
    },
    /// `mark_completed` on key `k{key}` with `generation`.
    Complete {
        /// Which of a few keys.
        key: u8,
        /// The generation that completed.
        generation: u8,
    },
    /// A clean shutdown (`close`), then a reopen.
    Close,
    /// Drop the handle and open the log again, without a crash.
    Reopen,
    /// A power loss (a crash state chosen by the simulator's seed), then recovery.
    Crash,
    /// A power loss, a recovery stopped by another power loss after `after` storage calls
    /// (modulo [`RECOVERY_CRASH_POINT_MAX`]), then a full recovery.
    CrashDuringRecovery {
        /// Storage calls the interrupted recovery gets.
        after: u8,
    },
    /// Arm a one-shot fault on the next storage call it applies to.
    Fault(FaultKind),
    /// `compact`: a retention record and a new segment (the cut), then the snapshot written
    /// and the segments it covers removed.
    Compact,
    /// `submit` two to four events (starts and completions of keys from `key` on), then `wait`
    /// for each: several events in flight at once, written in the order accepted.
    Batch {
        /// The first key.
        key: u8,
        /// The generation of the events.
        generation: u8,
        /// Two more than this, modulo three, events.
        count: u8,
    },
}

/// The injectable errors of the persistence model that the harness drives (F7 to F10).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "fuzzing", derive(arbitrary::Arbitrary))]
pub enum FaultKind {
    /// F7: a sync fails with EIO (Linux semantics).
    SyncEio,
    /// F8: a write fails with EIO.
    WriteEio,
    /// F8: ENOSPC partway through a write.
    WriteNoSpace,
    /// F8: a short write.
    WriteShort,
    /// F9: a directory sync fails.
    SyncDirEio,
    /// F9: a create fails.
    CreateEio,
    /// F9: a rename fails.
    RenameEio,
    /// F10: a read fails.
    ReadEio,
    /// F10: a read returns short.
    ReadShort,
}

impl FaultKind {
    fn fault(self) -> Fault {
        match self {
            FaultKind::SyncEio => Fault::SyncEio,
            FaultKind::WriteEio => Fault::WriteEio,
            FaultKind::WriteNoSpace => Fault::WriteNoSpace,
            FaultKind::WriteShort => Fault::WriteShort,
            FaultKind::SyncDirEio => Fault::SyncDirEio,
            FaultKind::CreateEio => Fault::CreateEio,
            FaultKind::RenameEio => Fault::RenameEio,
            FaultKind::ReadEio => Fault::ReadEio,
            FaultKind::ReadShort => Fault::ReadShort,
        }
    }
}

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

/// What a harness has done so far.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
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
}

/// A log on a simulated disk, and the model it is checked against.
pub struct Harness {
    sim: SimStorage,
    seed: u64,
    dir: PathBuf,
    options: Options,
    log: Option<Log>,
    history: History,
    /// The reference model of every acknowledged event: what the live handle must hold.
    model: Model,
    /// Set when a call failed: every later call on this handle must fail too (O6).
    poisoned: bool,
    clock_ms: u64,
    step: usize,
    stats: Stats,
}

impl fmt::Debug for Harness {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Harness")
            .field("seed", &self.seed)
            .field("step", &self.step)
            .field("stats", &self.stats)
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
            .segment_bytes_max(crate::limits::SEGMENT_BYTES_MIN)
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
            stats: Stats::default(),
        };
        h.reopen()?;
        Ok(h)
    }

    /// The simulated disk.
    pub fn sim(&self) -> &SimStorage {
        &self.sim
    }

    /// What the harness has done.
    pub fn stats(&self) -> Stats {
        self.stats
    }

    /// Applies `op` and checks every promise it touches.
    pub fn apply(&mut self, op: Op) -> Result<(), Box<Failure>> {
        self.stats.ops += 1;
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
            Op::CrashDuringRecovery { after } => {
                self.crash();
                self.sim
                    .crash_after_ops(u64::from(after) % RECOVERY_CRASH_POINT_MAX);
                // The interrupted recovery may have recorded itself.
                self.history.submit(RECOVERED, Outcome::Failed);
                let interrupted = Log::open_with_storage(
                    Arc::new(self.sim.clone()),
                    &self.dir,
                    self.options.clone(),
                );
                drop(interrupted);
                self.crash();
                self.reopen()
            }
            Op::Fault(kind) => {
                self.sim.inject(FaultRule::once(kind.fault()));
                Ok(())
            }
            Op::Compact => self.compact(),
            Op::Batch {
                key,
                generation,
                count,
            } => {
                let events: Vec<Event> = (0..2 + count % 3)
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
                    .collect();
                self.batch(events)
            }
        };
        self.step += 1;
        result
    }

    /// Applies every op in order, stopping at the first failure.
    pub fn run(&mut self, ops: &[Op]) -> Result<(), Box<Failure>> {
        ops.iter().try_for_each(|&op| self.apply(op))
    }

    /// A power loss: the handle dies, and the disk keeps what the simulator's seed chooses.
    pub fn crash(&mut self) {
        self.log = None;
        self.sim.crash();
        self.stats.crashes += 1;
    }

    fn fail(&self, violation: Violation) -> Box<Failure> {
        Box::new(Failure {
            violation,
            step: self.step,
            seed: self.seed,
            trace: self.sim.trace_text_last(40),
        })
    }

    fn mismatch(&self, detail: String) -> Box<Failure> {
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
            self.stats.batches += 1;
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
        self.stats.cuts += 1;
        if let Some(record) = begun.retention_record().cloned() {
            if let crate::fold::Applied::Retention { forgotten } = self.model.apply(&record) {
                self.stats.forgotten += forgotten as u64;
            }
            self.history.submit(record, Outcome::Acked);
        }
        self.history.cut();
        let calls_before = self.sim.op_count();
        match begun.finish() {
            Ok(done) => {
                self.history.cut_durable();
                self.stats.compactions += 1;
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
                self.stats.faults_failed_calls += 1;
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
    fn fault_since(&self, calls_before: u64) -> Option<Fault> {
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
        result: Result<Option<crate::fold::Applied>, Error>,
        calls_before: u64,
    ) -> Result<(), Box<Failure>> {
        self.account(event, result, calls_before, true)
    }

    /// [`Harness::after_call`] without the check of the live set (a batch checks it once all
    /// its events are accounted for).
    fn after_call_unchecked(
        &mut self,
        event: Event,
        result: Result<Option<crate::fold::Applied>, Error>,
        calls_before: u64,
    ) -> Result<(), Box<Failure>> {
        self.account(event, result, calls_before, false)
    }

    fn account(
        &mut self,
        event: Event,
        result: Result<Option<crate::fold::Applied>, Error>,
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
                self.history.submit(event, Outcome::Acked);
                self.stats.acked += 1;
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
                    self.stats.faults_failed_calls += 1;
                }
                self.poisoned = true;
                self.history.submit(event, Outcome::Failed);
                self.stats.failed += 1;
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

    /// Opens the log (retrying while injected faults make opening fail; each failed attempt
    /// must leave the log recoverable) and checks the recovery against the oracle.
    fn reopen(&mut self) -> Result<(), Box<Failure>> {
        self.log = None;
        self.poisoned = false;
        let storage = Arc::new(self.sim.clone());
        let (dir, options) = (self.dir.clone(), self.options.clone());
        let mut attempts = 0;
        let opened = self.retrying_faults(|| {
            attempts += 1;
            Log::open_with_storage(storage.clone(), &dir, options.clone())
        });
        // Each attempt may have recorded itself as a recovery before it failed; the one that
        // succeeded did, if it found runs in flight (checked in `check_recovery`).
        for _ in 0..attempts {
            self.history.submit(RECOVERED, Outcome::Failed);
        }
        match opened {
            Ok(Opened { log, report }) => self.check_recovery(log, report),
            Err(e) => Err(self.mismatch(format!("recovery failed: {e}"))),
        }
    }

    /// Runs `attempt` until it succeeds or fails with something other than an I/O error that an
    /// injected fault explains. Armed faults are one-shot, but many can be armed: after
    /// [`OPEN_ATTEMPTS_MAX`] failures they are cleared, and the last attempt must succeed, since
    /// failed attempts may not harm the log.
    fn retrying_faults<T>(
        &mut self,
        mut attempt: impl FnMut() -> Result<T, Error>,
    ) -> Result<T, String> {
        for _ in 0..OPEN_ATTEMPTS_MAX {
            let calls_before = self.sim.op_count();
            match attempt() {
                Err(e @ Error::Io { .. }) => {
                    if self.fault_since(calls_before).is_none() {
                        return Err(format!("{e} (no injected fault explains it)"));
                    }
                    self.stats.faults_failed_calls += 1;
                }
                done => return done.map_err(|e| e.to_string()),
            }
        }
        self.sim.clear_faults();
        attempt().map_err(|e| e.to_string())
    }

    /// A read-only replay of the log, collecting its events. Armed read faults may hit it (it
    /// is the harness's own read, not the open's), so it is retried like an open.
    fn replay_events(&mut self) -> Result<(Vec<Event>, crate::log::Recovered), Box<Failure>> {
        let mut events = Vec::new();
        let (sim, dir) = (self.sim.clone(), self.dir.clone());
        self.retrying_faults(|| {
            events.clear();
            Log::for_each_event(&sim, &dir, Policy::Strict, |_, e| events.push(e.to_event()))
        })
        .map(|replayed| (events, replayed))
        .map_err(|e| self.mismatch(format!("replay after open failed: {e}")))
    }

    /// O1, O2, O4 and O7 after a successful open.
    fn check_recovery(&mut self, log: Log, report: RecoveryReport) -> Result<(), Box<Failure>> {
        self.stats.recoveries += 1;
        if let Some(c) = report.corruption.first() {
            return Err(self.mismatch(format!(
                "recovery reported corruption without any media fault: {c:?}"
            )));
        }
        let (events, replayed) = self.replay_events()?;
        if replayed.report.torn_tail.is_some() {
            return Err(self.mismatch(format!(
                "O4: a torn tail is still there after a read-write open: {:?}",
                replayed.report.torn_tail
            )));
        }
        // O5: the recovery starts from the snapshot of a compaction that returned Ok, or a later
        // one, or (with none since the last recovery) where that recovery started.
        let used = replayed.report.snapshot.as_ref().map(|s| s.file.clone());
        if report.snapshot.as_ref().map(|s| &s.file) != used.as_ref() {
            return Err(self.mismatch(format!(
                "the open started from snapshot {:?}, the read-only replay from {used:?}",
                report.snapshot
            )));
        }
        let mut violation = None;
        let mut start = None;
        for candidate in self.history.starts(used.as_deref()) {
            match self.history.check_from(&candidate, &events) {
                Ok(()) => {
                    start = Some(candidate);
                    break;
                }
                Err(v) => violation = Some(v),
            }
        }
        let Some(start) = start else {
            return Err(self.fail(violation.unwrap_or_else(|| Violation::Mismatch {
                detail: format!(
                    "O5: the recovery started from snapshot {used:?}, which no compaction since \
                     the last recovery explains ({} made durable)",
                    self.history.durable_cuts()
                ),
            })));
        };
        self.stats.from_snapshot += u64::from(used.is_some());
        // O7, against the reference model, which shares no code with the log's fold.
        let mut expected = start.model.clone();
        for event in &events {
            expected.apply(event);
        }
        let running = expected.running();
        let live = log.running();
        for (what, got) in [
            ("the report", &report.running),
            ("the read-only replay", &replayed.report.running),
            ("the opened log", &live),
        ] {
            if *got != running {
                return Err(self.mismatch(format!(
                    "O7: {what} lists {got:?}, the model of the recovered events says {running:?}"
                )));
            }
        }
        let marks: Vec<(String, u64)> = replayed
            .set
            .marks()
            .map(|(k, m)| (k.to_string(), m.generation))
            .collect();
        if marks != expected.marks() {
            return Err(self.mismatch(format!(
                "O7: the replay holds the marks {marks:?}, the model {:?}",
                expected.marks()
            )));
        }
        let counted = (report.stale_ignored(), report.counters.unknown_completions);
        let modelled = (expected.stale_ignored(), expected.unknown_completions());
        if counted != modelled {
            return Err(self.mismatch(format!(
                "O7: the report counts (stale, unknown completions) {counted:?}, the model {modelled:?}"
            )));
        }
        // An open that finds runs in flight records itself as a recovery, last; one that finds
        // none writes nothing.
        let recorded = matches!(events.last(), Some(Event::Recovered { .. }));
        if recorded == running.is_empty() {
            return Err(self.mismatch(format!(
                "the open found {} runs in flight and its recovery record is {}",
                running.len(),
                if recorded { "there" } else { "missing" }
            )));
        }
        // For acknowledged events, the recovered state is what the live process held: when no
        // failed event survived, the model of the recovered events is the live model (recovery
        // counts aside: the recovery records of this reopen are not in the live model).
        let submitted = |e: &&Event| !matches!(e, Event::Recovered { .. });
        if events.iter().filter(submitted).count() == self.history.acked_submitted_from(&start)
            && !expected.same_ignoring_recoveries(&self.model)
        {
            return Err(self.mismatch(format!(
                "O7: recovered {running:?}, the live process held {:?}",
                self.model.running()
            )));
        }
        self.history.reset_to(start, used, &events);
        self.model = expected;
        self.log = Some(log);
        Ok(())
    }
}

/// Operations a fuzz input may run at most (more are ignored), keeping each execution short.
pub const FUZZ_OPS_MAX: usize = 64;

/// One input of the `ops` fuzz target: a simulator seed and the operations to run.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "fuzzing", derive(arbitrary::Arbitrary))]
pub struct FuzzInput {
    /// The simulator's seed (crash states, fault draws).
    pub seed: u64,
    /// The operations, of which the first [`FUZZ_OPS_MAX`] run.
    pub ops: Vec<Op>,
}

impl FuzzInput {
    /// Runs the input, then a final power loss and recovery, checking the oracle throughout.
    pub fn run(&self) -> Result<Stats, Box<Failure>> {
        let mut h = Harness::new(self.seed)?;
        h.run(&self.ops[..self.ops.len().min(FUZZ_OPS_MAX)])?;
        h.apply(Op::Crash)?;
        Ok(h.stats())
    }
}
