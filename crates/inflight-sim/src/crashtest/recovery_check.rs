//! Checks each reopen of the harness's log against the persistence model's oracle: the open
//! (retried while injected faults make it fail), a read-only replay of what it recovered, and
//! the promises a recovery keeps (O1, O2, O4, O5 and O7).

use std::sync::Arc;

use inflight::error::Error;
use inflight::event::Event;
use inflight::fold::InFlightRun;
use inflight::inspect::ReadOnly;
use inflight::log::{Log, Opened};
use inflight::recovery::{Policy, RecoveryReport};
use inflight::store::FileSource;

use super::harness::{Failure, Harness, RECOVERED};
use super::oracle::{Model, Outcome, Start, Violation};

/// Attempts to open a log while injected faults make opening fail.
const OPEN_ATTEMPTS_MAX: usize = 8;

impl Harness {
    /// Opens the log (retrying while injected faults make opening fail; each failed attempt
    /// must leave the log recoverable) and checks the recovery against the oracle.
    pub(super) fn reopen(&mut self) -> Result<(), Box<Failure>> {
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
                    self.coverage.faults_failed_calls += 1;
                }
                done => return done.map_err(|e| e.to_string()),
            }
        }
        self.sim.clear_faults();
        attempt().map_err(|e| e.to_string())
    }

    /// A read-only replay of the log, collecting its events. Armed read faults may hit it (it
    /// is the harness's own read, not the open's), so it is retried like an open.
    fn replay_events(&mut self) -> Result<(Vec<Event>, ReadOnly), Box<Failure>> {
        let mut events = Vec::new();
        let (sim, dir) = (self.sim.clone(), self.dir.clone());
        self.retrying_faults(|| {
            events.clear();
            inflight::inspect::for_each_event(
                &FileSource::new(&sim, &dir),
                Policy::Strict,
                |_, e| events.push(e.to_event()),
            )
        })
        .map(|replayed| (events, replayed))
        .map_err(|e| self.mismatch(format!("replay after open failed: {e}")))
    }

    /// O1, O2, O4, O5 and O7 after a successful open; once they hold, the harness carries on
    /// from the recovered state: the opened log, the model of the recovered events, and the
    /// history reset to them.
    fn check_recovery(&mut self, log: Log, report: RecoveryReport) -> Result<(), Box<Failure>> {
        self.coverage.recoveries += 1;
        if let Some(c) = report.corruption.first() {
            return Err(self.mismatch(format!(
                "recovery reported corruption without any media fault: {c:?}"
            )));
        }
        let (events, replayed) = self.replay_events()?;
        let used = self.check_replay(&report, &replayed)?;
        let start = self.find_start(used.as_deref(), &events)?;
        self.coverage.from_snapshot += u64::from(used.is_some());
        // O7, against the reference model, which shares no code with the log's fold.
        let mut expected = start.model.clone();
        for event in &events {
            expected.apply(event);
        }
        let running = expected.running();
        self.check_model(&expected, &running, &report, &replayed, &log.running())?;
        self.check_recovery_record(&events, &running)?;
        self.check_live_model(&expected, &running, &start, &events)?;
        self.history.reset_to(start, used, &events);
        self.model = expected;
        self.log = Some(log);
        Ok(())
    }

    /// O4 and O5 on the read-only replay after the open: no torn tail is left, and the replay
    /// starts from the snapshot the open started from. Returns that snapshot's file, if any.
    fn check_replay(
        &self,
        report: &RecoveryReport,
        replayed: &ReadOnly,
    ) -> Result<Option<String>, Box<Failure>> {
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
        Ok(used)
    }

    /// O1, O2 and O5: the first of the history's possible starts from snapshot `used` from
    /// which the recovered `events` are what the history allows, or the violation of the last
    /// one tried.
    fn find_start(&self, used: Option<&str>, events: &[Event]) -> Result<Start, Box<Failure>> {
        let mut violation = None;
        for candidate in self.history.starts(used) {
            match self.history.check_from(&candidate, events) {
                Ok(()) => return Ok(candidate),
                Err(v) => violation = Some(v),
            }
        }
        Err(self.fail(violation.unwrap_or_else(|| Violation::Mismatch {
            detail: format!(
                "O5: the recovery started from snapshot {used:?}, which no compaction since the \
                 last recovery explains ({} made durable)",
                self.history.durable_cuts()
            ),
        })))
    }

    /// O7: the running set of the report, of the read-only replay and of the opened log
    /// (`live`), the replay's marks and the report's counters are those of `expected`, the
    /// model of the recovered events, whose running set is `running`.
    fn check_model(
        &self,
        expected: &Model,
        running: &[InFlightRun],
        report: &RecoveryReport,
        replayed: &ReadOnly,
        live: &[InFlightRun],
    ) -> Result<(), Box<Failure>> {
        for (what, got) in [
            ("the report", report.running.as_slice()),
            ("the read-only replay", replayed.report.running.as_slice()),
            ("the opened log", live),
        ] {
            if got != running {
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
        Ok(())
    }

    /// An open that finds runs in flight (`running`) records itself as a recovery, last; one
    /// that finds none writes nothing.
    fn check_recovery_record(
        &self,
        events: &[Event],
        running: &[InFlightRun],
    ) -> Result<(), Box<Failure>> {
        let recorded = matches!(events.last(), Some(Event::Recovered { .. }));
        if recorded == running.is_empty() {
            return Err(self.mismatch(format!(
                "the open found {} runs in flight and its recovery record is {}",
                running.len(),
                if recorded { "there" } else { "missing" }
            )));
        }
        Ok(())
    }

    /// O7 for acknowledged events: the recovered state is what the live process held. When no
    /// failed event survived (the recovered `events` from `start` are just the acknowledged
    /// ones), `expected`, the model of the recovered events, is the live model (recovery counts
    /// aside: the recovery records of this reopen are not in the live model).
    fn check_live_model(
        &self,
        expected: &Model,
        running: &[InFlightRun],
        start: &Start,
        events: &[Event],
    ) -> Result<(), Box<Failure>> {
        let submitted = |e: &&Event| !matches!(e, Event::Recovered { .. });
        if events.iter().filter(submitted).count() == self.history.acked_submitted_from(start)
            && !expected.same_ignoring_recoveries(&self.model)
        {
            return Err(self.mismatch(format!(
                "O7: recovered {running:?}, the live process held {:?}",
                self.model.running()
            )));
        }
        Ok(())
    }
}
