//! The pure core: folding events into the running set.
//!
//! Per key the fold remembers the highest generation seen (its high-water mark), and the key's
//! run in flight if it has one: running, or interrupted and waiting for the gateway's decision
//! (resume-pending, suspended, or neither yet). The rules:
//!
//! 1. A start below the key's mark is stale: ignored and counted.
//! 2. A start at or above the mark becomes the key's running run (replacing an older one,
//!    which was superseded) and raises the mark. A start that replaces a run is a resume: it
//!    keeps the loop counts and the resume-pending state, unless the run it replaces was
//!    suspended (the gateway began the session anew: the counts start again).
//! 3. A completion removes the key's run if its generation is at or above the run's; below it,
//!    a newer run owns the slot and the completion is stale (ignored, counted). Completing an
//!    unknown key is a no-op. A completion raises the mark too. An exact completion
//!    (`Finished`, a run's token) removes the run only if it is that run: same generation and
//!    nonce; it never raises a mark.
//! 4. Marks are kept for every key seen, so a late stale record is still recognised, until a
//!    retention record (written by a compaction) forgets the marks of keys with no run and no
//!    event since its cut-off.
//! 5. A shutdown marks a clean exit: runs still running were interrupted by it, and are
//!    reported with that reason rather than as crash victims. None is dropped.
//! 6. A recovery record (written by a read-write open that found runs in flight) counts one
//!    more interruption for every run that was running, of its kind: a crash
//!    ([`InFlightRun::recoveries`]) or a graceful stop ([`InFlightRun::stops`]); the run is
//!    then interrupted, no longer running. A run that was not running (pending, suspended, or
//!    interrupted and not resumed) keeps its counts: it cannot have caused the restart. Only
//!    the run's end (a completion, or a clear of a pending run) ends the counts.
//! 7. The gateway's decisions: a promotion makes the key's run resume-pending (with a reason and
//!    when; not a suspended one); a suspension marks it not to be resumed (and ends a pending
//!    state); a clear ends the pending state (a run that waited is dropped, a resumed run goes
//!    on); progress replaces the `meta` of the run named by its token. Each names a run the key
//!    has, or does nothing (counted as unmatched).
//! 8. An adoption (a run taken over from another log) becomes the key's run as it was there:
//!    interrupted, with its counts and its pending or suspended state.
//!
//! No I/O, no clock, no threads: an event goes in, the new state and what the event did come
//! out. Live appends and replay both call [`RunningSet::apply`], so the state a process holds for
//! its acknowledged events and the state a replay of its log rebuilds are equal by construction.

use std::collections::HashMap;
use std::collections::hash_map::Entry;

use foldhash::fast::RandomState;
use serde::{Deserialize, Serialize};

use crate::event::{AdoptionRef, EventRef, Run, RunRef};
pub use crate::event::{Pending, Reason};
use crate::key_order::sorted_by_key;

/// The fold's maps, keyed by the gateway's keys. foldhash is seeded at random for each map, as
/// std's SipHash is (keys come from the gateway's users), and hashes a key several times faster:
/// replay hashes every record's key.
type KeyMap<V> = HashMap<String, V, RandomState>;

/// Where a run in flight stands, derived from [`InFlightRun`]'s fields.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RunState {
    /// Begun or resumed since its last interruption (if it had one), and not suspended.
    Running,
    /// Interrupted, and no decision recorded yet.
    Interrupted,
    /// Interrupted and promoted to resume-pending.
    Pending,
    /// Suspended: not to be resumed.
    Suspended,
}

impl RunState {
    /// `"running"`, `"interrupted"`, `"pending"` or `"suspended"`.
    pub fn as_str(self) -> &'static str {
        match self {
            RunState::Running => "running",
            RunState::Interrupted => "interrupted",
            RunState::Pending => "pending",
            RunState::Suspended => "suspended",
        }
    }
}

/// A run in flight: started and not yet completed. The one type for both what a live log holds
/// ([`Log::running`](crate::Log::running)) and what recovery reports
/// ([`RecoveryReport::running`](crate::RecoveryReport::running)).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "InFlightRunMembers")]
pub struct InFlightRun {
    /// The run as it was started (its `meta` as its latest progress left it).
    #[serde(flatten)]
    pub run: Run,
    /// Why the run is (or, if the process stopped now, would be) reported as interrupted:
    /// [`Reason::Crash`], or [`Reason::Shutdown`] once a clean shutdown found it running.
    pub reason: Reason,
    /// How many consecutive times a crash interrupted this key while a run of it was running
    /// (begun or resumed since the previous interruption), with no completion in between; the
    /// open that reports it included. A run that crashes the process every time it is resumed
    /// counts 1, 2, 3, ...: at [`Options::crash_loop_threshold`](crate::Options::crash_loop_threshold)
    /// it is a crash loop, to suspend rather than resume.
    #[serde(default)]
    pub recoveries: u32,
    /// The same count for graceful stops (a shutdown found it running): a run whose tool
    /// restarts the gateway loops through graceful restarts. At
    /// [`Options::stop_loop_threshold`](crate::Options::stop_loop_threshold) it is a reboot loop.
    #[serde(default)]
    pub stops: u32,
    /// Begun or resumed since its last interruption: false once a recovery found it
    /// interrupted, until a start on the key resumes it.
    #[serde(default = "yes")]
    pub running: bool,
    /// Its resume-pending state, if the gateway promoted it.
    #[serde(default)]
    pub pending: Option<Pending>,
    /// When the gateway suspended it, if it did.
    #[serde(default)]
    pub suspended_at_ms: Option<u64>,
}

fn yes() -> bool {
    true
}

/// An [`InFlightRun`] as JSON holds it: one flat object, members in any order, other members
/// ignored (a derive with `flatten` would buffer them and check them apart from the rest).
#[derive(Deserialize)]
struct InFlightRunMembers {
    key: String,
    session_id: String,
    generation: u64,
    started_at_ms: u64,
    #[serde(default)]
    meta: Option<String>,
    #[serde(default)]
    nonce: u64,
    reason: Reason,
    #[serde(default)]
    recoveries: u32,
    #[serde(default)]
    stops: u32,
    #[serde(default = "yes")]
    running: bool,
    #[serde(default)]
    pending: Option<Pending>,
    #[serde(default)]
    suspended_at_ms: Option<u64>,
}

impl From<InFlightRunMembers> for InFlightRun {
    fn from(m: InFlightRunMembers) -> InFlightRun {
        InFlightRun {
            run: Run {
                key: m.key,
                session_id: m.session_id,
                generation: m.generation,
                started_at_ms: m.started_at_ms,
                meta: m.meta,
                nonce: m.nonce,
            },
            reason: m.reason,
            recoveries: m.recoveries,
            stops: m.stops,
            running: m.running,
            pending: m.pending,
            suspended_at_ms: m.suspended_at_ms,
        }
    }
}

impl InFlightRun {
    /// A run just started: running, interrupted by nothing yet, seen by no recovery.
    pub fn new(run: Run) -> InFlightRun {
        InFlightRun {
            run,
            reason: Reason::Crash,
            recoveries: 0,
            stops: 0,
            running: true,
            pending: None,
            suspended_at_ms: None,
        }
    }

    /// Where the run stands: suspended, else running, else pending, else interrupted.
    pub fn state(&self) -> RunState {
        if self.suspended_at_ms.is_some() {
            RunState::Suspended
        } else if self.running {
            RunState::Running
        } else if self.pending.is_some() {
            RunState::Pending
        } else {
            RunState::Interrupted
        }
    }

    /// A crash loop at `threshold` (0: never): `recoveries` reached it.
    pub fn is_crash_loop(&self, threshold: u32) -> bool {
        threshold > 0 && self.recoveries >= threshold
    }

    /// A reboot loop at `threshold` (0: never): `stops` reached it.
    pub fn is_stop_loop(&self, threshold: u32) -> bool {
        threshold > 0 && self.stops >= threshold
    }
}

/// The loop thresholds: how many crashes, and how many graceful stops, in a row while a run
/// runs make it a loop (0 turns one off).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Thresholds {
    /// [`Options::crash_loop_threshold`](crate::Options::crash_loop_threshold).
    pub crashes: u32,
    /// [`Options::stop_loop_threshold`](crate::Options::stop_loop_threshold).
    pub stops: u32,
}

impl Default for Thresholds {
    /// 3 crashes, 3 graceful stops ([`limits`](crate::limits)).
    fn default() -> Thresholds {
        Thresholds {
            crashes: crate::limits::CRASH_LOOP_THRESHOLD_DEFAULT,
            stops: crate::limits::STOP_LOOP_THRESHOLD_DEFAULT,
        }
    }
}

impl Thresholds {
    /// Whether `run` is a loop of either kind.
    pub fn is_loop(&self, run: &InFlightRun) -> bool {
        run.is_crash_loop(self.crashes) || run.is_stop_loop(self.stops)
    }
}

/// A key's high-water mark: the highest generation the log has seen for it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mark {
    /// The highest generation of any start or completion seen for the key.
    pub generation: u64,
    /// Timestamp of the latest event seen for the key (for retention).
    pub last_event_ms: u64,
}

/// What the fold counted. Every event lands in exactly one of the counters other than
/// `superseded` and `forgotten`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counters {
    /// Starts that became the key's running entry.
    pub started: u64,
    /// Starts below the key's high-water mark, ignored (rule 1); adoptions below it too.
    pub stale_starts: u64,
    /// Completions (by generation or exact) that removed a run.
    pub completed: u64,
    /// Completions older than the key's running entry, ignored (rule 3).
    pub stale_completions: u64,
    /// Completions for a key with no running entry: no-ops (rule 3).
    pub unknown_completions: u64,
    /// Clean shutdowns.
    pub shutdowns: u64,
    /// Starts and adoptions that replaced an older run of the same key (a subset of `started`
    /// and `adopted`).
    pub superseded: u64,
    /// Recovery records (written by read-write opens that found runs in flight).
    #[serde(default)]
    pub recoveries: u64,
    /// Retention records (written by compactions).
    #[serde(default)]
    pub retentions: u64,
    /// High-water marks the retention records forgot.
    #[serde(default)]
    pub forgotten: u64,
    /// Promotions to resume-pending that took effect.
    #[serde(default)]
    pub promoted: u64,
    /// Suspensions that took effect.
    #[serde(default)]
    pub suspended: u64,
    /// Clears of a resume-pending state that took effect.
    #[serde(default)]
    pub cleared: u64,
    /// Progress records that replaced a run's `meta`.
    #[serde(default)]
    pub progressed: u64,
    /// Adoptions that became the key's run.
    #[serde(default)]
    pub adopted: u64,
    /// Exact completions, promotions, suspensions, clears and progress that named no run the
    /// key had: ignored.
    #[serde(default)]
    pub unmatched: u64,
}

impl Counters {
    /// Stale starts plus stale completions: the records the fold ignored.
    pub fn stale_ignored(&self) -> u64 {
        self.stale_starts + self.stale_completions
    }
}

/// What one event did to the running set.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Applied {
    /// The run became the key's running entry, replacing `superseded` if there was one.
    Started {
        /// The generation of the entry it replaced.
        superseded: Option<u64>,
    },
    /// The start (or adoption) was below the key's high-water mark and was ignored.
    StaleStart {
        /// The key's mark.
        high_water: u64,
    },
    /// The completion removed the key's running entry.
    Completed,
    /// A newer run owns the key's slot; the completion was ignored.
    StaleCompletion {
        /// The generation of the run that owns the slot.
        running_generation: u64,
    },
    /// The key had no running entry; nothing changed.
    UnknownCompletion,
    /// A clean shutdown; `interrupted` runs were still running.
    Shutdown {
        /// How many runs the shutdown interrupted.
        interrupted: usize,
    },
    /// A recovery record: `crashed` running runs counted one more crash, `stopped` one more
    /// graceful stop.
    Recovered {
        /// How many runs counted one more crash.
        crashed: usize,
        /// How many runs counted one more graceful stop.
        stopped: usize,
    },
    /// A retention record forgot `forgotten` high-water marks.
    Retention {
        /// How many marks were forgotten.
        forgotten: usize,
    },
    /// The key's run is resume-pending now.
    Promoted,
    /// The key's run is suspended now.
    Suspended,
    /// The key's resume-pending state ended; `removed`: its run, which was waiting, is gone.
    Cleared {
        /// Whether the run was removed (it was not running).
        removed: bool,
    },
    /// The run's `meta` was replaced.
    Progressed,
    /// The adopted run became the key's run, replacing `superseded` if there was one.
    Adopted {
        /// The generation of the entry it replaced.
        superseded: Option<u64>,
    },
    /// The event named no run the key has (another run, none, or one in a state it does not
    /// apply to); nothing changed.
    Unmatched {
        /// The generation of the key's run, if it has one.
        running_generation: Option<u64>,
    },
}

/// What the fold knows of one key: its high-water mark, and its run if it has one.
#[derive(Clone, Debug, PartialEq, Eq)]
struct KeyState {
    mark: Mark,
    /// Boxed: most keys a log has seen are idle, and an idle key then costs a pointer.
    run: Option<Box<InFlightRun>>,
}

/// Completed runs' allocations kept for the next starts (their strings keep their capacity):
/// replay starts and completes runs by the million, and allocating and freeing each run's
/// strings took a tenth of its time. Bounded, so a set holds little it does not use.
const SPARE_RUNS_MAX: usize = 64;

/// The running set and everything the fold remembers besides it.
#[derive(Clone, Debug, Default)]
pub struct RunningSet {
    // One hash map, key to mark and run: replay folds every record through it, one lookup each
    // (an ordered map's key comparisons took most of the replay's time, and a map each for
    // marks and runs took two lookups). Listings sort on the way out.
    keys: KeyMap<KeyState>,
    /// How many keys have a run in flight.
    running: usize,
    counters: Counters,
    last_was_shutdown: bool,
    /// The highest generation among the marks retention forgot (0 if none): a generation the
    /// log allocates for a key it has no mark for goes above it, so none is ever reused.
    forgotten_generation: u64,
    /// Allocations of completed runs, for reuse; not part of the state. The boxes themselves
    /// are what is reused: they go back into a key's state as they are.
    #[allow(clippy::vec_box)]
    spare: Vec<Box<InFlightRun>>,
}

/// Rule 6 for one run: if it was running, a recovery found it interrupted, one more time of its
/// kind; returns that kind. A copy of a run (a report's) goes through the same rule as the set's.
pub(crate) fn interrupt(entry: &mut InFlightRun) -> Option<Reason> {
    if !entry.running {
        return None;
    }
    entry.running = false;
    match entry.reason {
        Reason::Crash => entry.recoveries = entry.recoveries.saturating_add(1),
        Reason::Shutdown => entry.stops = entry.stops.saturating_add(1),
    }
    Some(entry.reason)
}

impl PartialEq for RunningSet {
    /// Equal states: the spare allocations are not compared.
    fn eq(&self, other: &RunningSet) -> bool {
        self.keys == other.keys
            && self.running == other.running
            && self.counters == other.counters
            && self.last_was_shutdown == other.last_was_shutdown
            && self.forgotten_generation == other.forgotten_generation
    }
}

impl Eq for RunningSet {}

impl RunningSet {
    /// An empty set: what a log with no events folds to.
    pub fn new() -> RunningSet {
        RunningSet::default()
    }

    /// Applies one event (rules 1 to 8 above) and says what it did. Takes an [`Event`] or the
    /// borrowed [`EventRef`] replay decodes.
    ///
    /// [`Event`]: crate::Event
    pub fn apply<'a>(&mut self, event: impl Into<EventRef<'a>>) -> Applied {
        self.apply_ending(event.into()).0
    }

    /// [`RunningSet::apply`], and for a completion that removed a run, when that run started
    /// (the offline tools' run durations), without a second lookup.
    pub fn apply_ending(&mut self, event: EventRef<'_>) -> (Applied, Option<u64>) {
        // A retention record (a compaction, maybe an offline one) says nothing about how the
        // last process exited; a recovery record is a process that opened the log after it.
        if !matches!(event, EventRef::Retention { .. }) {
            self.last_was_shutdown = matches!(event, EventRef::Shutdown { .. });
        }
        let applied = match event {
            EventRef::Started(run) => self.start(run),
            EventRef::Completed {
                key,
                generation,
                at_ms,
            } => return self.complete(key, generation, at_ms),
            EventRef::Finished {
                key,
                generation,
                nonce,
                at_ms,
            } => return self.finish(key, generation, nonce, at_ms),
            EventRef::Shutdown { .. } => self.shutdown(),
            EventRef::Recovered { .. } => self.recovered(),
            EventRef::Retention {
                forget_before_ms, ..
            } => self.retain(forget_before_ms),
            EventRef::Promoted { key, reason, at_ms } => {
                self.decide(key, at_ms, |run| match run.suspended_at_ms {
                    Some(_) => None,
                    None => {
                        run.pending = Some(Pending {
                            reason: reason.to_string(),
                            at_ms,
                        });
                        Some(Applied::Promoted)
                    }
                })
            }
            EventRef::Suspended { key, at_ms } => self.decide(key, at_ms, |run| {
                run.suspended_at_ms = Some(at_ms);
                run.pending = None;
                Some(Applied::Suspended)
            }),
            EventRef::Cleared { key, at_ms } => self.clear(key, at_ms),
            EventRef::Progress {
                key,
                generation,
                nonce,
                meta,
                at_ms,
            } => self.decide(key, at_ms, |entry| {
                let run = &mut entry.run;
                (run.generation == generation && run.nonce == nonce).then(|| {
                    run.meta = meta.map(str::to_string);
                    Applied::Progressed
                })
            }),
            EventRef::Adopted(adoption) => self.adopt(adoption),
        };
        match applied {
            Applied::Promoted => self.counters.promoted += 1,
            Applied::Suspended => self.counters.suspended += 1,
            Applied::Cleared { .. } => self.counters.cleared += 1,
            Applied::Progressed => self.counters.progressed += 1,
            Applied::Unmatched { .. } => self.counters.unmatched += 1,
            _ => {}
        }
        (applied, None)
    }

    /// Rule 5: the runs running were interrupted by a clean shutdown.
    fn shutdown(&mut self) -> Applied {
        self.counters.shutdowns += 1;
        let mut interrupted = 0;
        for entry in self.runs_mut().filter(|e| e.running) {
            entry.reason = Reason::Shutdown;
            interrupted += 1;
        }
        Applied::Shutdown { interrupted }
    }

    /// Rule 6: one more interruption, of its kind, for each run that was running.
    fn recovered(&mut self) -> Applied {
        self.counters.recoveries += 1;
        let (mut crashed, mut stopped) = (0, 0);
        for entry in self.runs_mut() {
            match interrupt(entry) {
                Some(Reason::Crash) => crashed += 1,
                Some(Reason::Shutdown) => stopped += 1,
                None => {}
            }
        }
        Applied::Recovered { crashed, stopped }
    }

    /// Rule 4: the marks of keys idle since before `forget_before_ms`, with no run, are
    /// forgotten.
    fn retain(&mut self, forget_before_ms: u64) -> Applied {
        self.counters.retentions += 1;
        let before = self.keys.len();
        let highest = &mut self.forgotten_generation;
        self.keys.retain(|_, state| {
            let keep = state.mark.last_event_ms >= forget_before_ms || state.run.is_some();
            if !keep {
                *highest = (*highest).max(state.mark.generation);
            }
            keep
        });
        let forgotten = before - self.keys.len();
        self.counters.forgotten += forgotten as u64;
        Applied::Retention { forgotten }
    }

    /// Rule 7: `decision` applied to the key's run, if it has one; it returns `None` where it
    /// does not apply. Touches the key's latest event time only when it applies.
    fn decide(
        &mut self,
        key: &str,
        at_ms: u64,
        decision: impl FnOnce(&mut InFlightRun) -> Option<Applied>,
    ) -> Applied {
        let Some(state) = self.keys.get_mut(key) else {
            return Applied::Unmatched {
                running_generation: None,
            };
        };
        let Some(entry) = state.run.as_deref_mut() else {
            return Applied::Unmatched {
                running_generation: None,
            };
        };
        let running_generation = Some(entry.run.generation);
        match decision(entry) {
            Some(applied) => {
                state.mark.last_event_ms = state.mark.last_event_ms.max(at_ms);
                applied
            }
            None => Applied::Unmatched { running_generation },
        }
    }

    /// Rule 7's clear: a pending run that is not running is dropped; a running one loses the
    /// pending state.
    fn clear(&mut self, key: &str, at_ms: u64) -> Applied {
        let applied = self.decide(key, at_ms, |entry| {
            entry.pending.take()?;
            Some(Applied::Cleared {
                removed: !entry.running,
            })
        });
        if applied == (Applied::Cleared { removed: true }) {
            self.remove(key);
        }
        applied
    }

    /// Removes the run of `key` (which has one); returns when it started.
    fn remove(&mut self, key: &str) -> u64 {
        let state = self.keys.get_mut(key).expect("the key has a state");
        let done = state.run.take().expect("the key has a run");
        let started_at_ms = done.run.started_at_ms;
        if self.spare.len() < SPARE_RUNS_MAX {
            self.spare.push(done);
        }
        self.running -= 1;
        started_at_ms
    }

    fn runs_mut(&mut self) -> impl Iterator<Item = &mut InFlightRun> {
        self.keys.values_mut().filter_map(|s| s.run.as_deref_mut())
    }

    #[inline(never)] // kept apart from the dispatch, as the measured fastest layout
    fn start(&mut self, run: RunRef<'_>) -> Applied {
        let Some(state) = self.keys.get_mut(run.key) else {
            // A key not seen yet: its first start is never stale.
            let state = KeyState {
                mark: Mark {
                    generation: run.generation,
                    last_event_ms: run.started_at_ms,
                },
                run: Some(new_run(&mut self.spare, run)),
            };
            self.keys.insert(run.key.to_string(), state);
            self.running += 1;
            self.counters.started += 1;
            return Applied::Started { superseded: None };
        };
        let mark = raise(&mut state.mark, run.generation, run.started_at_ms);
        if run.generation < mark {
            self.counters.stale_starts += 1;
            return Applied::StaleStart { high_water: mark };
        }
        self.counters.started += 1;
        let Some(entry) = state.run.as_deref_mut() else {
            state.run = Some(new_run(&mut self.spare, run));
            self.running += 1;
            return Applied::Started { superseded: None };
        };
        // The run replaces the key's run: a resume, which keeps counting its interruptions and
        // keeps its pending state; after a suspension, the session begins anew.
        self.counters.superseded += 1;
        let superseded = entry.run.generation;
        let carried = (entry.suspended_at_ms.is_none())
            .then(|| (entry.recoveries, entry.stops, entry.pending.take()));
        overwrite(entry, run);
        if let Some((recoveries, stops, pending)) = carried {
            entry.recoveries = recoveries;
            entry.stops = stops;
            entry.pending = pending;
        }
        Applied::Started {
            superseded: Some(superseded),
        }
    }

    /// Rule 8: the adopted run becomes the key's run, as it was in the log it comes from; a
    /// run it replaces gives it its counts where they are higher.
    fn adopt(&mut self, a: AdoptionRef<'_>) -> Applied {
        let mark = Mark {
            generation: a.run.generation,
            last_event_ms: a.at_ms,
        };
        let state = self
            .keys
            .entry(a.run.key.to_string())
            .or_insert(KeyState { mark, run: None });
        let high_water = raise(&mut state.mark, mark.generation, mark.last_event_ms);
        if a.run.generation < high_water {
            self.counters.stale_starts += 1;
            return Applied::StaleStart { high_water };
        }
        let mut adopted = InFlightRun {
            run: a.run.to_run(),
            reason: a.reason,
            recoveries: a.recoveries,
            stops: a.stops,
            running: false,
            pending: a.pending.map(|p| p.to_pending()),
            suspended_at_ms: a.suspended_at_ms,
        };
        self.counters.adopted += 1;
        let superseded = state.run.as_deref().map(|old| {
            adopted.recoveries = adopted.recoveries.max(old.recoveries);
            adopted.stops = adopted.stops.max(old.stops);
            old.run.generation
        });
        match superseded {
            Some(_) => self.counters.superseded += 1,
            None => self.running += 1,
        }
        state.run = Some(Box::new(adopted));
        Applied::Adopted { superseded }
    }

    /// A completion by generation; for one that removed a run, when that run started.
    #[inline(never)]
    fn complete(&mut self, key: &str, generation: u64, at_ms: u64) -> (Applied, Option<u64>) {
        let Some(state) = self.keys.get_mut(key) else {
            let mark = Mark {
                generation,
                last_event_ms: at_ms,
            };
            self.keys
                .insert(key.to_string(), KeyState { mark, run: None });
            self.counters.unknown_completions += 1;
            return (Applied::UnknownCompletion, None);
        };
        raise(&mut state.mark, generation, at_ms);
        match state.run.as_deref().map(|e| e.run.generation) {
            None => {
                self.counters.unknown_completions += 1;
                (Applied::UnknownCompletion, None)
            }
            Some(running) if generation < running => {
                self.counters.stale_completions += 1;
                let stale = Applied::StaleCompletion {
                    running_generation: running,
                };
                (stale, None)
            }
            Some(_) => {
                self.counters.completed += 1;
                (Applied::Completed, Some(self.remove(key)))
            }
        }
    }

    /// An exact completion: removes the key's run only if it is the one named.
    fn finish(
        &mut self,
        key: &str,
        generation: u64,
        nonce: u64,
        at_ms: u64,
    ) -> (Applied, Option<u64>) {
        let Some(state) = self.keys.get_mut(key) else {
            self.counters.unknown_completions += 1;
            return (Applied::UnknownCompletion, None);
        };
        let Some(entry) = state.run.as_deref() else {
            self.counters.unknown_completions += 1;
            return (Applied::UnknownCompletion, None);
        };
        if entry.run.generation != generation || entry.run.nonce != nonce {
            let running_generation = Some(entry.run.generation);
            self.counters.unmatched += 1;
            return (Applied::Unmatched { running_generation }, None);
        }
        state.mark.last_event_ms = state.mark.last_event_ms.max(at_ms);
        self.counters.completed += 1;
        (Applied::Completed, Some(self.remove(key)))
    }

    /// The run in flight on `key`, if any.
    pub fn get(&self, key: &str) -> Option<&InFlightRun> {
        self.keys.get(key).and_then(|s| s.run.as_deref())
    }

    /// Every run in flight, ordered by key.
    pub fn entries(&self) -> impl ExactSizeIterator<Item = &InFlightRun> {
        let entries: Vec<&InFlightRun> = self
            .keys
            .values()
            .filter_map(|s| s.run.as_deref())
            .collect();
        sorted_by_key(entries, |run| &run.run.key).into_iter()
    }

    /// How many runs are in flight (in any state).
    pub fn len(&self) -> usize {
        self.running
    }

    /// True when no run is in flight.
    pub fn is_empty(&self) -> bool {
        self.running == 0
    }

    /// The high-water mark of `key`, if the log has seen it.
    pub fn mark(&self, key: &str) -> Option<Mark> {
        self.keys.get(key).map(|s| s.mark)
    }

    /// Every key's high-water mark, ordered by key.
    pub fn marks(&self) -> impl ExactSizeIterator<Item = (&str, &Mark)> {
        self.sorted_keys()
            .into_iter()
            .map(|(key, mark, _)| (key, mark))
    }

    /// Every key the set knows, in key order (one sort), with its mark and its run in flight,
    /// if any: what a snapshot lists, without copying a key or a run.
    pub(crate) fn sorted_keys(&self) -> Vec<(&str, &Mark, Option<&InFlightRun>)> {
        let keys: Vec<(&str, &Mark, Option<&InFlightRun>)> = self
            .keys
            .iter()
            .map(|(k, s)| (k.as_str(), &s.mark, s.run.as_deref()))
            .collect();
        sorted_by_key(keys, |&(key, _, _)| key)
    }

    /// How many keys have a high-water mark.
    pub fn marks_len(&self) -> usize {
        self.keys.len()
    }

    /// What the fold has counted so far.
    pub fn counters(&self) -> Counters {
        self.counters
    }

    /// The highest generation among the marks retention forgot (0 if none). A generation the
    /// log allocates ([`Log::begin_run`](crate::Log::begin_run)) for a key it holds no mark for
    /// is above it, so a generation is never given twice, even to a forgotten key.
    pub fn forgotten_generation(&self) -> u64 {
        self.forgotten_generation
    }

    /// True when the last event applied (retention records aside) was a clean shutdown.
    pub fn ended_with_shutdown(&self) -> bool {
        self.last_was_shutdown
    }

    /// A set rebuilt from its parts (a snapshot's): the runs in flight, the marks, the counters,
    /// whether the last event was a clean shutdown, and the highest forgotten generation. Checks
    /// what the fold guarantees: one run per key, and every run's key has a mark at or above its
    /// generation.
    pub fn from_parts(
        runs: Vec<InFlightRun>,
        marks: Vec<(String, Mark)>,
        counters: Counters,
        ended_with_shutdown: bool,
        forgotten_generation: u64,
    ) -> std::result::Result<RunningSet, String> {
        let mut set = RunningSet {
            counters,
            last_was_shutdown: ended_with_shutdown,
            forgotten_generation,
            ..RunningSet::default()
        };
        set.keys.reserve(marks.len());
        let no_mark = |entry: &InFlightRun| {
            format!(
                "running key {:?} has no high-water mark at or above its generation {}",
                entry.run.key, entry.run.generation
            )
        };
        // A snapshot lists both in ascending key order: each run is met beside its mark, and
        // each key goes into the map once, with its run. Runs not met so (any order is
        // accepted) are looked up after.
        let mut runs = runs.into_iter().peekable();
        for (key, mark) in marks {
            let run = runs.next_if(|entry| entry.run.key == key);
            if let Some(entry) = &run
                && entry.run.generation > mark.generation
            {
                return Err(no_mark(entry));
            }
            set.running += usize::from(run.is_some());
            match set.keys.entry(key) {
                Entry::Occupied(twice) => {
                    return Err(format!("the mark of key {:?} is given twice", twice.key()));
                }
                Entry::Vacant(slot) => {
                    slot.insert(KeyState {
                        mark,
                        run: run.map(Box::new),
                    });
                }
            }
        }
        for entry in runs {
            let Some(state) = set
                .keys
                .get_mut(entry.run.key.as_str())
                .filter(|s| s.mark.generation >= entry.run.generation)
            else {
                return Err(no_mark(&entry));
            };
            if state.run.is_some() {
                return Err("a running key is given twice".to_string());
            }
            state.run = Some(Box::new(entry));
            set.running += 1;
        }
        Ok(set)
    }
}

/// A run just started, in a spare allocation if there is one.
#[allow(clippy::vec_box)] // the boxes are what is reused
fn new_run(spare: &mut Vec<Box<InFlightRun>>, run: RunRef<'_>) -> Box<InFlightRun> {
    match spare.pop() {
        Some(mut entry) => {
            overwrite(&mut entry, run);
            entry
        }
        None => Box::new(InFlightRun::new(run.to_run())),
    }
}

/// Makes `entry` the run `run` just started (running, interrupted by nothing, seen by no
/// recovery, no decision recorded), reusing its strings' allocations.
fn overwrite(entry: &mut InFlightRun, run: RunRef<'_>) {
    entry.reason = Reason::Crash;
    entry.recoveries = 0;
    entry.stops = 0;
    entry.running = true;
    entry.pending = None;
    entry.suspended_at_ms = None;
    let old = &mut entry.run;
    old.key.clear();
    old.key.push_str(run.key);
    old.session_id.clear();
    old.session_id.push_str(run.session_id);
    old.generation = run.generation;
    old.started_at_ms = run.started_at_ms;
    old.nonce = run.nonce;
    match (run.meta, &mut old.meta) {
        (Some(meta), Some(old_meta)) => {
            old_meta.clear();
            old_meta.push_str(meta);
        }
        (meta, old_meta) => *old_meta = meta.map(str::to_string),
    }
}

/// Raises `mark` to at least `generation` and `at_ms`; returns the generation from before.
fn raise(mark: &mut Mark, generation: u64, at_ms: u64) -> u64 {
    let before = mark.generation;
    mark.generation = before.max(generation);
    mark.last_event_ms = mark.last_event_ms.max(at_ms);
    before
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{Event, Generation, UnixMs};

    fn start(key: &str, generation: u64) -> Event {
        Event::Started(Run::new(
            key,
            format!("s{generation}"),
            Generation(generation),
            UnixMs(generation),
        ))
    }
    fn complete(key: &str, generation: u64) -> Event {
        Event::Completed {
            key: key.into(),
            generation,
            at_ms: 100 + generation,
        }
    }
    fn fold(events: &[Event]) -> RunningSet {
        let mut set = RunningSet::new();
        for e in events {
            set.apply(e);
        }
        set
    }

    /// `from_parts` gives the fold's own set back from its runs and marks in key order, in any
    /// other order too, and refuses what the fold never holds.
    #[test]
    fn a_set_is_rebuilt_from_its_parts_in_any_order() {
        let set = fold(&[
            start("a", 2),
            start("b", 1),
            complete("b", 1),
            start("c", 4),
            start("d", 1),
        ]);
        let runs: Vec<InFlightRun> = set.entries().cloned().collect();
        let marks: Vec<(String, Mark)> = set.marks().map(|(k, m)| (k.to_string(), *m)).collect();
        let rebuilt = |runs: Vec<InFlightRun>, marks: Vec<(String, Mark)>| {
            RunningSet::from_parts(runs, marks, set.counters(), false, 0)
        };
        assert_eq!(rebuilt(runs.clone(), marks.clone()), Ok(set.clone()));
        let (mut back_runs, mut back_marks) = (runs.clone(), marks.clone());
        back_runs.reverse();
        back_marks.reverse();
        assert_eq!(rebuilt(back_runs, back_marks), Ok(set.clone()));
        // A run twice, in order or not; a mark twice; a run without a mark; a run above it.
        let mut twice = runs.clone();
        twice.insert(1, runs[1].clone());
        assert!(
            rebuilt(twice.clone(), marks.clone())
                .unwrap_err()
                .contains("given twice")
        );
        twice.reverse();
        assert!(
            rebuilt(twice, marks.clone())
                .unwrap_err()
                .contains("given twice")
        );
        let mut marks_twice = marks.clone();
        marks_twice.push(marks[0].clone());
        assert!(
            rebuilt(runs.clone(), marks_twice)
                .unwrap_err()
                .contains("given twice")
        );
        let without: Vec<_> = marks.iter().filter(|(k, _)| k != "c").cloned().collect();
        assert!(
            rebuilt(runs.clone(), without)
                .unwrap_err()
                .contains("no high-water mark")
        );
        let mut below = marks.clone();
        below[0].1.generation = 1;
        assert!(
            rebuilt(runs.clone(), below.clone())
                .unwrap_err()
                .contains("no high-water mark")
        );
        below.reverse();
        assert!(
            rebuilt(runs, below)
                .unwrap_err()
                .contains("no high-water mark")
        );
    }

    #[test]
    fn completion_removes_the_run() {
        let set = fold(&[start("a", 1), complete("a", 1)]);
        assert!(set.is_empty());
        assert_eq!(set.counters().completed, 1);
    }

    #[test]
    fn stale_completion_does_not_clear_newer_run() {
        let mut set = fold(&[start("a", 1), start("a", 2)]);
        assert_eq!(
            set.apply(&complete("a", 1)),
            Applied::StaleCompletion {
                running_generation: 2
            }
        );
        assert_eq!(set.get("a").unwrap().run.generation, 2);
        assert_eq!(set.counters().stale_completions, 1);
    }

    #[test]
    fn newer_completion_clears_older_run() {
        let set = fold(&[start("a", 1), complete("a", 3)]);
        assert!(set.is_empty());
        assert_eq!(set.mark("a").unwrap().generation, 3);
    }

    #[test]
    fn stale_start_is_ignored_and_counted() {
        let mut set = fold(&[start("a", 5), complete("a", 5)]);
        assert_eq!(
            set.apply(&start("a", 4)),
            Applied::StaleStart { high_water: 5 }
        );
        assert!(set.is_empty());
        assert_eq!(set.counters().stale_ignored(), 1);
    }

    #[test]
    fn start_at_the_mark_replaces_the_entry() {
        let mut set = fold(&[start("a", 5)]);
        assert_eq!(
            set.apply(&start("a", 5)),
            Applied::Started {
                superseded: Some(5)
            }
        );
        assert_eq!(set.counters().superseded, 1);
    }

    #[test]
    fn completing_an_unknown_key_is_a_no_op() {
        let mut set = RunningSet::new();
        assert_eq!(set.apply(&complete("x", 1)), Applied::UnknownCompletion);
        assert!(set.is_empty());
    }

    #[test]
    fn shutdown_marks_remaining_runs_as_interrupted_by_shutdown() {
        let mut set = fold(&[start("a", 1), start("b", 1)]);
        assert_eq!(
            set.apply(&Event::Shutdown { at_ms: 9 }),
            Applied::Shutdown { interrupted: 2 }
        );
        assert!(set.ended_with_shutdown());
        assert!(set.entries().all(|e| e.reason == Reason::Shutdown));
        set.apply(&start("c", 1));
        assert!(!set.ended_with_shutdown());
        assert_eq!(set.get("c").unwrap().reason, Reason::Crash);
        assert_eq!(set.get("a").unwrap().reason, Reason::Shutdown);
    }

    fn begun(key: &str, generation: u64, nonce: u64) -> Run {
        Run {
            nonce,
            ..Run::new(key, "s", Generation(generation), UnixMs(generation))
        }
    }
    fn finished(key: &str, run: &Run) -> Event {
        Event::Finished {
            key: key.into(),
            generation: run.generation,
            nonce: run.nonce,
            at_ms: 50,
        }
    }
    fn recovered() -> Event {
        Event::Recovered { at_ms: 60 }
    }
    fn promoted(key: &str) -> Event {
        Event::Promoted {
            key: key.into(),
            reason: "restart_interrupted".into(),
            at_ms: 70,
        }
    }

    #[test]
    fn an_exact_completion_ends_the_run_it_names_and_no_other() {
        let a1 = begun("a", 1, 0xa1);
        let b1 = begun("b", 1, 0xb1);
        let mut set = fold(&[Event::Started(a1.clone()), Event::Started(b1.clone())]);
        // A later generation of the same nonce, another key's token, another log's nonce.
        let later = Run {
            generation: 2,
            ..a1.clone()
        };
        let other_log = Run {
            nonce: 0xff,
            ..a1.clone()
        };
        for wrong in [
            finished("a", &later),
            finished("a", &b1),
            finished("a", &other_log),
        ] {
            assert_eq!(
                set.apply(&wrong),
                Applied::Unmatched {
                    running_generation: Some(1)
                }
            );
        }
        assert_eq!(set.len(), 2);
        assert_eq!(set.mark("a").unwrap().generation, 1, "no mark raised");
        assert_eq!(set.counters().unmatched, 3);
        assert_eq!(set.apply(&finished("a", &a1)), Applied::Completed);
        assert_eq!(set.apply(&finished("a", &a1)), Applied::UnknownCompletion);
        assert!(set.get("a").is_none() && set.get("b").is_some());
    }

    #[test]
    fn a_pending_run_that_never_runs_again_keeps_its_count() {
        let run = begun("a", 1, 7);
        let mut set = fold(&[Event::Started(run), recovered(), promoted("a")]);
        assert_eq!(set.get("a").unwrap().state(), RunState::Pending);
        for _ in 0..3 {
            set.apply(&recovered());
        }
        let entry = set.get("a").unwrap();
        assert_eq!((entry.recoveries, entry.state()), (1, RunState::Pending));
        // Resumed, it runs again and carries its count and its pending state.
        set.apply(&Event::Started(begun("a", 2, 8)));
        let entry = set.get("a").unwrap();
        assert_eq!((entry.recoveries, entry.state()), (1, RunState::Running));
        assert_eq!(
            entry.pending.as_ref().unwrap().reason,
            "restart_interrupted"
        );
        set.apply(&recovered());
        assert_eq!(set.get("a").unwrap().recoveries, 2);
    }

    #[test]
    fn a_graceful_stop_counts_apart_from_crashes_and_neither_resets_the_other() {
        let mut set = fold(&[Event::Started(begun("a", 1, 1)), recovered()]);
        set.apply(&Event::Started(begun("a", 2, 2)));
        set.apply(&Event::Shutdown { at_ms: 80 });
        assert_eq!(
            set.apply(&recovered()),
            Applied::Recovered {
                crashed: 0,
                stopped: 1
            }
        );
        let entry = set.get("a").unwrap();
        assert_eq!(
            (entry.recoveries, entry.stops, entry.reason),
            (1, 1, Reason::Shutdown)
        );
        // A shutdown does not touch a run that is not running.
        set.apply(&Event::Shutdown { at_ms: 90 });
        set.apply(&recovered());
        assert_eq!(set.get("a").unwrap().stops, 1);
    }

    #[test]
    fn decisions_apply_to_the_keys_run_and_a_suspension_is_never_overridden() {
        let run = begun("a", 1, 1);
        let mut set = fold(&[Event::Started(run.clone()), recovered()]);
        let suspend = Event::Suspended {
            key: "a".into(),
            at_ms: 75,
        };
        let clear = Event::Cleared {
            key: "a".into(),
            at_ms: 76,
        };
        assert_eq!(set.apply(&promoted("a")), Applied::Promoted);
        assert_eq!(set.apply(&suspend), Applied::Suspended);
        assert_eq!(
            set.get("a").unwrap().pending,
            None,
            "a suspension ends the pending state"
        );
        assert!(matches!(
            set.apply(&promoted("a")),
            Applied::Unmatched { .. }
        ));
        assert!(matches!(set.apply(&clear), Applied::Unmatched { .. }));
        assert_eq!(set.get("a").unwrap().state(), RunState::Suspended);
        // A new run after a suspension begins the session anew: its counts start again.
        set.apply(&Event::Started(begun("a", 2, 2)));
        let entry = set.get("a").unwrap();
        assert_eq!((entry.recoveries, entry.state()), (0, RunState::Running));
        // Clearing a running run's pending state keeps the run; a waiting one is dropped.
        set.apply(&promoted("a"));
        assert_eq!(set.apply(&clear), Applied::Cleared { removed: false });
        assert_eq!(set.len(), 1);
        set.apply(&recovered());
        set.apply(&promoted("a"));
        assert_eq!(set.apply(&clear), Applied::Cleared { removed: true });
        assert!(set.is_empty());
        assert!(matches!(
            set.apply(&promoted("nobody")),
            Applied::Unmatched {
                running_generation: None
            }
        ));
    }

    #[test]
    fn progress_replaces_the_meta_of_the_run_it_names_only() {
        let run = begun("a", 1, 1);
        let mut set = fold(&[Event::Started(run.clone())]);
        let progress = |nonce| Event::Progress {
            key: "a".into(),
            generation: 1,
            nonce,
            meta: Some("reply ready".into()),
            at_ms: 5,
        };
        assert!(matches!(set.apply(&progress(2)), Applied::Unmatched { .. }));
        assert_eq!(set.get("a").unwrap().run.meta, None);
        assert_eq!(set.apply(&progress(1)), Applied::Progressed);
        assert_eq!(
            set.get("a").unwrap().run.meta.as_deref(),
            Some("reply ready")
        );
    }

    #[test]
    fn an_adopted_run_keeps_its_counts_and_state_and_a_resume_carries_them() {
        let adopted = Event::Adopted(crate::event::Adoption {
            run: begun("a", 1, 3),
            reason: Reason::Crash,
            recoveries: 2,
            stops: 1,
            pending: Some(Pending {
                reason: "restart_interrupted".into(),
                at_ms: 4,
            }),
            suspended_at_ms: None,
            at_ms: 9,
        });
        let mut set = fold(&[Event::Started(begun("a", 2, 1)), recovered()]);
        // Below the key's mark: stale, as a start would be.
        assert_eq!(set.apply(&adopted), Applied::StaleStart { high_water: 2 });
        let mut set = RunningSet::new();
        assert_eq!(set.apply(&adopted), Applied::Adopted { superseded: None });
        let entry = set.get("a").unwrap();
        assert_eq!(
            (entry.recoveries, entry.stops, entry.state()),
            (2, 1, RunState::Pending)
        );
        set.apply(&Event::Started(begun("a", 2, 5)));
        set.apply(&recovered());
        assert_eq!(set.get("a").unwrap().recoveries, 3);
    }
}
