//! The calls a gateway makes on an open log: starts, completions, shutdown, the live state,
//! the fallback, compaction on request. Each call that records an event returns once it is
//! durable (see `commit`).
//!
//! One append primitive is underneath them all: an event is accepted into the log's order
//! (`accept_with` in `commit`, under the state's lock, where a generation the log allocates
//! is chosen), then its batch is written and synced by whichever caller leads (`commit`).
//! [`Log::submit`] is the first half and [`Log::wait`] the second; [`Log::record`] is both;
//! `mark_running`, `mark_completed`, `complete_token`, `progress`, `suspend` and the other
//! calls that record one event are [`Log::record`] of it; [`Log::begin_run`] and
//! [`Log::adopt`] accept theirs with the generation allocated under the same lock, then
//! wait.

use std::path::Path;

use super::Compaction;
use super::{Log, Ticket, lock};
use crate::compaction::Compacted;
use crate::error::{Error, Result};
use crate::event::{Adoption, Event, Run, Token, UnixMs};
use crate::fallback::{Flagged, LogView, Session, flag};
use crate::fold::{Applied, Counters, InFlightRun, Mark, RunningSet, Thresholds};
use crate::recovery::RecoveryReport;

impl Log {
    /// Records that `run` started, under the generation the gateway chose (for gateways that own
    /// their generations, for example bumping one on `/stop`). Returns once the event is
    /// durable, with what it did to the running set: [`Applied::Started`], the run now the
    /// key's running entry (replacing an older one if `superseded`).
    ///
    /// A generation below the key's high-water mark is refused with
    /// [`Error::StaleGeneration`] before anything is written, because the run would not be
    /// tracked: typically a gateway whose own counter began again at 1 after a restart. To let
    /// the log choose the generation, monotonic across restarts, use [`Log::begin_run`].
    ///
    /// ```
    /// use inflight::{Error, Generation, Log, Options, Run, UnixMs};
    ///
    /// let dir = tempfile::tempdir()?;
    /// let log = Log::open(dir.path(), Options::default())?.log;
    /// let key = "agent:main:telegram:dm:4242";
    /// log.mark_running(Run::new(key, "s1", Generation(7), UnixMs(1_000)))?;
    /// // The gateway restarts and its counter begins again at 1: refused, nothing written.
    /// let refused = log.mark_running(Run::new(key, "s2", Generation(1), UnixMs(2_000)));
    /// assert!(matches!(refused, Err(Error::StaleGeneration { high_water: 7, .. })));
    /// assert_eq!(log.running()[0].run.generation, 7);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn mark_running(&self, run: Run) -> Result<Applied> {
        self.record(Event::Started(run))
    }

    /// Begins a run on `key` under a generation the log allocates: one above the key's
    /// high-water mark (for a key the log holds no mark for, one above every mark retention
    /// forgot: 1 in a log that forgot none), stamped with the log's clock.
    /// Returns the run, generation included, once its start is durable. Allocation and append
    /// happen under the log's own lock, so two threads beginning runs on one key never get the
    /// same generation (reading [`Log::high_water`] and then calling [`Log::mark_running`]
    /// races).
    ///
    /// ```
    /// use inflight::{Log, Options};
    ///
    /// let dir = tempfile::tempdir()?;
    /// let log = Log::open(dir.path(), Options::default())?.log;
    /// let first = log.begin_run("agent:main:http:c-5", "20261126_1", None)?;
    /// let second = log.begin_run("agent:main:http:c-5", "20261126_1", Some(r#"{"resume_from":"m-2"}"#.into()))?;
    /// assert_eq!((first.generation, second.generation), (1, 2));
    /// log.mark_completed(&second.key, second.generation)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn begin_run(
        &self,
        key: impl Into<String>,
        session_id: impl Into<String>,
        meta: Option<String>,
    ) -> Result<Run> {
        let (run, ticket) = self.submit_begin_run(key.into(), session_id.into(), meta)?;
        self.wait(&ticket)?;
        Ok(run)
    }

    /// The first half of [`Log::begin_run`]: the run accepted with a generation and a nonce
    /// allocated and the log's time as its start.
    pub(crate) fn submit_begin_run(
        &self,
        key: String,
        session_id: String,
        meta: Option<String>,
    ) -> Result<(Run, Ticket)> {
        let run = Run {
            key,
            session_id,
            generation: 0,
            started_at_ms: 0,
            meta,
            nonce: 0,
        };
        self.submit_allocated(run, |run, now_ms| {
            run.started_at_ms = now_ms;
            Event::Started(run.clone())
        })
    }

    /// Accepts the event `make` builds around `run`, once `run` has the next generation of its
    /// key and a fresh nonce: one above the key's mark or, for a key with none, above every
    /// generation retention forgot (never one the key had before, never wrapping past the
    /// largest). Allocation and acceptance happen under the state's lock, so two threads never
    /// get one generation.
    fn submit_allocated(
        &self,
        mut run: Run,
        make: impl FnOnce(&mut Run, u64) -> Event,
    ) -> Result<(Run, Ticket)> {
        // The limits do not depend on the generation: check them before taking the lock.
        Event::Started(run.clone()).validate()?;
        let environment = &self.shared.environment;
        let (seq, result) = self.shared.accept_with(|state| {
            let above = state
                .high_water(&run.key)
                .unwrap_or_else(|| state.set.forgotten_generation());
            run.generation = above
                .checked_add(1)
                .ok_or_else(|| Error::GenerationsExhausted {
                    key: crate::event::shorten(&run.key),
                })?;
            // Never 0, which is "no nonce" (a start the gateway recorded itself).
            run.nonce = environment.nonce().max(1);
            Ok(make(&mut run, environment.now_ms()))
        })?;
        Ok((run, Ticket { seq, result }))
    }

    /// Completes exactly the run `token` names on `key`, and no other: not a newer run of the
    /// key, not a run of another key or another log, not a generation that was never begun.
    /// Returns [`Applied::Completed`] once the completion is durable, or, when the key's run
    /// is not that one, [`Applied::Unmatched`] (or [`Applied::UnknownCompletion`] when the key
    /// has none), with nothing changed. [`Log::complete_run`] is the same for the [`Run`]
    /// [`Log::begin_run`] returned.
    ///
    /// ```
    /// use inflight::{Applied, Log, Options};
    ///
    /// let dir = tempfile::tempdir()?;
    /// let log = Log::open(dir.path(), Options::default())?.log;
    /// let first = log.begin_run("agent:main:http:c-5", "s1", None)?;
    /// let second = log.begin_run("agent:main:http:c-5", "s1", None)?; // a newer turn
    /// // The late unwind of the first turn clears nothing; the second's own token does.
    /// assert!(matches!(log.complete_token("agent:main:http:c-5", first.token())?, Applied::Unmatched { .. }));
    /// assert_eq!(log.complete_token("agent:main:http:c-5", second.token())?, Applied::Completed);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn complete_token(&self, key: &str, token: Token) -> Result<Applied> {
        self.record(Event::Finished {
            key: key.to_string(),
            generation: token.generation,
            nonce: token.nonce,
            at_ms: self.now_ms(),
        })
    }

    /// [`Log::complete_token`] for the run [`Log::begin_run`] returned.
    pub fn complete_run(&self, run: &Run) -> Result<Applied> {
        self.complete_token(&run.key, run.token())
    }

    /// Records that `run` (as [`Log::begin_run`] returned it) made progress: its `meta` is now
    /// `meta` (for example, that its reply was made and only needs delivering), durable on
    /// return, so that recovery reports exactly where the run got. [`Applied::Progressed`], or
    /// [`Applied::Unmatched`] when the key's run is not that one (nothing changed).
    /// [`Log::progress_token`] is the same for a key and a token.
    ///
    /// ```
    /// use inflight::{Log, Options};
    ///
    /// let dir = tempfile::tempdir()?;
    /// let log = Log::open(dir.path(), Options::default())?.log;
    /// let run = log.begin_run("agent:main:telegram:dm:4242", "s1", Some(r#"{"step":"thinking"}"#.into()))?;
    /// log.progress(&run, Some(r#"{"step":"reply_ready","message":981}"#.into()))?;
    /// drop(log); // the process dies before delivering the reply
    /// let report = Log::open(dir.path(), Options::default())?.report;
    /// assert_eq!(report.running[0].run.meta.as_deref(), Some(r#"{"step":"reply_ready","message":981}"#));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn progress(&self, run: &Run, meta: Option<String>) -> Result<Applied> {
        self.progress_token(&run.key, run.token(), meta)
    }

    /// [`Log::progress`] for the run `token` names on `key`.
    pub fn progress_token(&self, key: &str, token: Token, meta: Option<String>) -> Result<Applied> {
        self.record(Event::Progress {
            key: key.to_string(),
            generation: token.generation,
            nonce: token.nonce,
            meta,
            at_ms: self.now_ms(),
        })
    }

    /// Promotes the run of `key` to resume-pending with `reason` (`restart_interrupted`,
    /// `shutdown_timeout`, ...; at most [`limits::REASON_BYTES_MAX`] bytes), durable on return:
    /// it stays pending across any number of restarts until it is resumed (a start on the key),
    /// suspended, cleared or completed. A promotion again replaces the reason and the time.
    /// [`Applied::Promoted`]; [`Applied::Unmatched`] when the key has no run, or its run is
    /// suspended (a suspension is never overridden).
    ///
    /// [`limits::REASON_BYTES_MAX`]: crate::limits::REASON_BYTES_MAX
    pub fn mark_resume_pending(&self, key: &str, reason: &str) -> Result<Applied> {
        self.record(Event::Promoted {
            key: key.to_string(),
            reason: reason.to_string(),
            at_ms: self.now_ms(),
        })
    }

    /// Ends the resume-pending state of `key`, durable on return: a run that waited (not
    /// running) is dropped, a resumed run that is running goes on without it.
    /// [`Applied::Cleared`]; [`Applied::Unmatched`] when the key has no pending run.
    pub fn clear_resume_pending(&self, key: &str) -> Result<Applied> {
        self.record(Event::Cleared {
            key: key.to_string(),
            at_ms: self.now_ms(),
        })
    }

    /// Suspends the run of `key`, durable on return: it is not to be resumed (a pending state
    /// ends), and recovery reports it as suspended until a new run on the key begins the
    /// session anew (its loop counts start again) or it completes. [`Applied::Suspended`];
    /// [`Applied::Unmatched`] when the key has no run.
    pub fn suspend(&self, key: &str) -> Result<Applied> {
        self.record(Event::Suspended {
            key: key.to_string(),
            at_ms: self.now_ms(),
        })
    }

    /// Records a run taken over from another log (a fleet's dead instance, see
    /// `Fleet::take_over`) in this one, as it was there: interrupted, with its loop counts, its
    /// resume-pending or suspended state and its `meta`, under a generation and nonce of this
    /// log. Returns the run as recorded, once durable. Resuming it is beginning a run on its key
    /// ([`Log::begin_run`]), which carries the counts, so a run that takes down one instance
    /// after another is counted as it would be on one.
    ///
    /// ```
    /// use inflight::{InFlightRun, Log, Options, Reason, Run, Generation, UnixMs};
    ///
    /// let dir = tempfile::tempdir()?;
    /// let log = Log::open(dir.path(), Options::default())?.log;
    /// // A run another instance reported interrupted by its second crash in a row.
    /// let mut taken = InFlightRun::new(Run::new("agent:main:http:c-5", "s1", Generation(9), UnixMs(1_000)));
    /// taken.running = false;
    /// taken.recoveries = 2;
    /// let adopted = log.adopt(&taken)?;
    /// assert_eq!(adopted.generation, 1); // this log's generations
    /// let resumed = log.begin_run(&adopted.key, &adopted.session_id, adopted.meta.clone())?;
    /// assert_eq!(log.in_flight(&resumed.key).unwrap().recoveries, 2);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn adopt(&self, taken: &InFlightRun) -> Result<Run> {
        if let Some(pending) = &taken.pending {
            crate::event::validate_reason(&pending.reason, &taken.run.key)?;
        }
        let (run, ticket) = self.submit_allocated(taken.run.clone(), |run, now_ms| {
            Event::Adopted(Adoption {
                run: run.clone(),
                reason: taken.reason,
                recoveries: taken.recoveries,
                stops: taken.stops,
                pending: taken.pending.clone(),
                suspended_at_ms: taken.suspended_at_ms,
                at_ms: now_ms,
            })
        })?;
        self.wait(&ticket)?;
        Ok(run)
    }

    /// The time on the log's clock, in milliseconds since the Unix epoch.
    pub fn now_ms(&self) -> u64 {
        self.shared.environment.now_ms()
    }

    /// The loop thresholds the log was opened with: [`Options::crash_loop_threshold`] and
    /// [`Options::stop_loop_threshold`].
    ///
    /// [`Options::crash_loop_threshold`]: crate::Options::crash_loop_threshold
    /// [`Options::stop_loop_threshold`]: crate::Options::stop_loop_threshold
    pub fn thresholds(&self) -> Thresholds {
        self.shared.thresholds
    }

    /// Records that the run of `key` with `generation` completed, timestamped with the log's
    /// clock. Returns once the event is durable.
    pub fn mark_completed(&self, key: &str, generation: u64) -> Result<Applied> {
        let at = UnixMs(self.shared.environment.now_ms());
        self.mark_completed_at(key, generation, at)
    }

    /// [`Log::mark_completed`] with an explicit timestamp.
    pub fn mark_completed_at(&self, key: &str, generation: u64, at: UnixMs) -> Result<Applied> {
        self.record(Event::Completed {
            key: key.to_string(),
            generation,
            at_ms: at.0,
        })
    }

    /// Records a clean shutdown (runs still in flight are reported after the next open with
    /// reason `shutdown`) and closes the handle: later calls return [`Error::Closed`].
    pub fn close(&self) -> Result<()> {
        let at_ms = self.shared.environment.now_ms();
        self.record(Event::Shutdown { at_ms }).map(drop)
    }

    /// The runs in flight now, ordered by key.
    pub fn running(&self) -> Vec<InFlightRun> {
        self.with_set(|set| set.entries().cloned().collect())
    }

    /// The run in flight on `key` now, if there is one.
    pub fn in_flight(&self, key: &str) -> Option<InFlightRun> {
        self.with_set(|set| set.get(key).cloned())
    }

    /// The high-water mark of `key`: the highest generation recorded for it.
    pub fn high_water(&self, key: &str) -> Option<Mark> {
        self.with_set(|set| set.mark(key))
    }

    /// What the fold has counted since the log was created.
    pub fn counters(&self) -> Counters {
        self.with_set(|set| set.counters())
    }

    /// The time-window fallback ([`fallback::flag`]) for this open log: `report` is the one
    /// its open returned (the runs it found interrupted, its gaps, its coverage), and each key's
    /// latest event is the log's now, so a key the gateway has recorded since the open is
    /// covered. The sessions, window and time are as for [`fallback::flag`]. Holds the state's
    /// lock while it runs: call it at start-up, not on a hot path.
    ///
    /// ```
    /// use inflight::fallback::{Flag, Session};
    /// use inflight::{Log, Opened, Options};
    ///
    /// let dir = tempfile::tempdir()?;
    /// # { let log = Log::open(dir.path(), Options::default())?.log;
    /// #   log.begin_run("agent:main:telegram:dm:4242", "s1", None)?; }
    /// let Opened { log, report } = Log::open(dir.path(), Options::default())?;
    /// let now_ms = inflight::environment::now_ms();
    /// let flagged = log.fallback(&report, &[Session::new("agent:main:http:c-5", now_ms)], 120_000, now_ms);
    /// // The interrupted run, precisely; c-5 was active while the log was recording.
    /// assert_eq!(flagged.len(), 1);
    /// assert_eq!(flagged[0].reason, Flag::Log);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// [`fallback::flag`]: crate::fallback::flag
    pub fn fallback(
        &self,
        report: &RecoveryReport,
        sessions: &[Session],
        window_ms: u64,
        now_ms: u64,
    ) -> Vec<Flagged> {
        self.with_set(|set| {
            flag(
                LogView::Present { report, set },
                sessions,
                window_ms,
                now_ms,
            )
        })
    }

    /// The handle's figures since it was opened: events by outcome, syncs and their time,
    /// bytes written, compactions, what the open recovered. The same figures the `metrics`
    /// feature reports to a recorder, for a gateway that has none (and for the Python
    /// package's `Log.metrics()`).
    ///
    /// ```
    /// # use inflight::{Log, Options};
    /// # let dir = tempfile::tempdir()?;
    /// let log = Log::open(dir.path(), Options::default())?.log;
    /// let run = log.begin_run("agent:main:http:c-5", "s1", None)?;
    /// log.mark_completed(&run.key, run.generation)?;
    /// let figures = log.figures();
    /// assert_eq!((figures.started, figures.completed), (1, 1));
    /// assert!(figures.syncs >= 1 && figures.sync_seconds > 0.0);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn figures(&self) -> crate::metrics::Figures {
        lock(&self.shared.state).figures.clone()
    }

    /// How many compactions this handle has finished (in the background or on request).
    pub fn compactions(&self) -> u64 {
        lock(&self.shared.state).figures.compactions
    }

    /// The log directory.
    pub fn dir(&self) -> &Path {
        &self.shared.dir
    }

    pub(super) fn with_set<T>(&self, f: impl FnOnce(&RunningSet) -> T) -> T {
        // The set is only changed after a durable append, by code that cannot panic halfway, so
        // it is consistent even if another thread panicked while holding the lock.
        let state = lock(&self.shared.state);
        f(&state.set)
    }

    /// Records any event: a start, a completion, or a shutdown (which closes the handle, as
    /// [`Log::close`] does). Returns once the event is durable, with what it did to the running
    /// set. For replaying events from elsewhere, or tools that carry [`Event`] values around.
    /// The log's own records ([`Event::is_internal`]) are refused, and so is a stale start
    /// ([`Error::StaleGeneration`], as [`Log::mark_running`] does) unless the log was opened
    /// with [`Options::record_stale_starts`](crate::Options::record_stale_starts).
    pub fn record(&self, event: Event) -> Result<Applied> {
        let ticket = self.submit(event)?;
        self.wait(&ticket)
    }

    /// The first half of [`Log::record`]: checks `event` against what is accepted already (a
    /// stale start is refused here) and accepts it into the log's order, without waiting for
    /// it to be durable; it is folded into the running set once its batch is durable, as every
    /// event is (the set holds only durable events). Returns at once (unless the queue of accepted
    /// events is full, [`limits::QUEUE_EVENTS_MAX`] or [`limits::QUEUE_BYTES_MAX`]: then it
    /// waits for events to be written). [`Log::wait`] returns once the event is durable.
    /// Submitting several events and then waiting for the last writes them as one frame with
    /// one sync, even from one thread; an async front builds on the two halves.
    ///
    /// ```
    /// use inflight::{Event, Log, Options};
    ///
    /// let dir = tempfile::tempdir()?;
    /// let log = Log::open(dir.path(), Options::default())?.log;
    /// let tickets: Vec<_> = (1..=3)
    ///     .map(|g| log.submit(Event::Completed { key: "k".into(), generation: g, at_ms: g }))
    ///     .collect::<Result<_, _>>()?;
    /// log.wait(&tickets[2])?; // one frame, one sync: all three are durable
    /// assert!(tickets.iter().all(|t| log.is_durable(t)));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// [`limits::QUEUE_EVENTS_MAX`]: crate::limits::QUEUE_EVENTS_MAX
    /// [`limits::QUEUE_BYTES_MAX`]: crate::limits::QUEUE_BYTES_MAX
    pub fn submit(&self, event: Event) -> Result<Ticket> {
        if event.is_internal() {
            return Err(Error::InvalidInput {
                field: "event",
                reason: "is a record the log writes itself (a recovery or a retention)".into(),
                key: None,
            });
        }
        event.validate()?;
        let refuse_stale = !self.shared.record_stale_starts;
        let (seq, result) = self.shared.accept_with(|state| {
            let started = match &event {
                Event::Started(run) => Some(run),
                Event::Adopted(adoption) => Some(&adoption.run),
                _ => None,
            };
            if let (Some(run), true) = (started, refuse_stale) {
                // Under the state's lock, against the durable marks and the starts accepted
                // before it: the fold will see exactly this mark when it folds the start (or
                // the adoption, which a stale generation would leave untracked as well).
                if let Some(high_water) = state.high_water(&run.key)
                    && run.generation < high_water
                {
                    return Err(Error::StaleGeneration {
                        key: crate::event::shorten(&run.key),
                        generation: run.generation,
                        high_water,
                    });
                }
            }
            Ok(event)
        })?;
        Ok(Ticket { seq, result })
    }

    /// Waits until the event of `ticket` is durable (writing it, and whatever was accepted
    /// with it, if no other caller is), and returns what it did to the running set. An error
    /// means the write or sync failed (or an earlier one did): the event may or may not be in
    /// the log, and the handle is poisoned.
    pub fn wait(&self, ticket: &Ticket) -> Result<Applied> {
        let (applied, compact) = self.shared.commit(&(ticket.seq, ticket.result.clone()))?;
        self.after_commit(compact);
        Ok(applied)
    }

    /// Whether the event of `ticket` is durable already.
    pub fn is_durable(&self, ticket: &Ticket) -> bool {
        let state = lock(&self.shared.state);
        state.queue.is_durable(ticket.seq)
    }

    /// Compacts the log now: cuts it (a retention record, then a new segment: the only moment
    /// appends wait), writes the state up to the cut as a snapshot, durably, and removes the
    /// segments it covers. Appends from other threads go on while the snapshot is written.
    /// Waits for a compaction already in progress, then runs its own.
    ///
    /// ```
    /// use inflight::{Log, Options};
    ///
    /// let dir = tempfile::tempdir()?;
    /// let log = Log::open(dir.path(), Options::default())?.log;
    /// let run = log.begin_run("agent:main:http:c-5", "20261126_1", None)?;
    /// let compacted = log.compact()?;
    /// assert_eq!(compacted.running, 1);
    /// drop(log);
    /// let report = Log::open(dir.path(), Options::default())?.report;
    /// assert_eq!(report.running[0].run, run); // from the snapshot
    /// assert!(report.snapshot.is_some());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn compact(&self) -> Result<Compacted> {
        self.begin_compaction()?.finish()
    }

    /// The first half of [`Log::compact`]: the cut. The returned compaction writes the
    /// snapshot when [`Compaction::finish`] is called; appends may go on in between (tests use
    /// this to interleave them deterministically). Other compactions wait until it is finished
    /// or dropped, so a thread holding one must not start another (it would wait for itself).
    pub fn begin_compaction(&self) -> Result<Compaction<'_>> {
        self.shared.begin_compaction()
    }
}

impl Log {
    /// Waits until a background compaction in progress, if any, has finished (a dropped
    /// handle waits for it too). [`Log::compactions`] then counts it: for a summary at the end
    /// of a run.
    pub fn wait_for_compaction(&self) {
        let handle = lock(&self.background).take();
        if let Some(handle) = handle {
            let _ = handle.join();
        }
    }
}

impl Drop for Log {
    /// Waits for a background compaction in progress (it holds the directory's lock).
    fn drop(&mut self) {
        self.wait_for_compaction();
    }
}
