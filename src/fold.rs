//! The pure core: folding events into the running set.
//!
//! Per key the fold remembers the highest generation seen (its high-water mark). The rules:
//!
//! 1. A start below the key's mark is stale: ignored and counted.
//! 2. A start at or above the mark becomes the key's running entry (replacing an older one,
//!    which was superseded) and raises the mark.
//! 3. A completion removes the key's running entry if its generation is at or above the
//!    entry's; below it, a newer run owns the slot and the completion is stale (ignored,
//!    counted). Completing an unknown key is a no-op. A completion raises the mark too.
//! 4. Marks are kept for every key seen, so a late stale record is still recognised, until a
//!    retention record (written by a compaction) forgets the marks of keys with no running run
//!    and no event since its cut-off.
//! 5. A shutdown marks a clean exit: runs still in the set were interrupted by it, and are
//!    reported with that reason rather than as crash victims. None is dropped.
//! 6. A recovery record (written by a read-write open that found runs in flight) adds one to the
//!    consecutive-recovery count of every run interrupted by a crash, and resets it for a run
//!    interrupted by a shutdown. A start that replaces a key's running run keeps its count; a
//!    completion that removes the run ends it. So the count says how many recoveries in a row
//!    found the key interrupted with no completion in between: a crash loop.
//!
//! No I/O, no clock, no threads: an event goes in, the new state and what the event did come
//! out. Live appends and replay both call [`RunningSet::apply`], so the state a process holds for
//! its acknowledged events and the state a replay of its log rebuilds are equal by construction.

use std::collections::HashMap;
use std::collections::hash_map::Entry;

use foldhash::fast::RandomState;
use serde::{Deserialize, Serialize};

use crate::event::{EventRef, Run, RunRef};

/// The fold's maps, keyed by the gateway's keys. foldhash is seeded at random for each map, as
/// std's SipHash is (keys come from the gateway's users), and hashes a key several times faster:
/// replay hashes every record's key.
type KeyMap<V> = HashMap<String, V, RandomState>;

/// Why a run is reported as interrupted after recovery.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Reason {
    /// The process died with the run in flight.
    Crash,
    /// The run was still in flight at a clean shutdown (the drain timed out).
    Shutdown,
}

impl Reason {
    /// `"crash"` or `"shutdown"`, as in the JSON report.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Crash => "crash",
            Reason::Shutdown => "shutdown",
        }
    }
}

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A run in flight: started and not yet completed. The one type for both what a live log holds
/// ([`Log::running`](crate::Log::running)) and what recovery reports
/// ([`RecoveryReport::running`](crate::RecoveryReport::running)).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "InFlightRunMembers")]
pub struct InFlightRun {
    /// The run as it was started.
    #[serde(flatten)]
    pub run: Run,
    /// Why the run is (or, if the process stopped now, would be) reported as interrupted:
    /// [`Reason::Crash`], or [`Reason::Shutdown`] once a clean shutdown found it in flight.
    pub reason: Reason,
    /// How many consecutive recoveries found this key interrupted by a crash with no completion
    /// in between, the open that reports it included (0 for a run no recovery has seen). A run
    /// that crashes the process every time it is resumed counts 1, 2, 3, ...: at
    /// [`Options::crash_loop_threshold`](crate::Options::crash_loop_threshold) it is a crash
    /// loop, to suspend rather than resume.
    #[serde(default)]
    pub recoveries: u32,
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
    reason: Reason,
    #[serde(default)]
    recoveries: u32,
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
            },
            reason: m.reason,
            recoveries: m.recoveries,
        }
    }
}

impl InFlightRun {
    /// A run just started: interrupted by nothing yet, seen by no recovery.
    pub fn new(run: Run) -> InFlightRun {
        InFlightRun {
            run,
            reason: Reason::Crash,
            recoveries: 0,
        }
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
    /// Starts below the key's high-water mark, ignored (rule 1).
    pub stale_starts: u64,
    /// Completions that removed a running entry.
    pub completed: u64,
    /// Completions older than the key's running entry, ignored (rule 3).
    pub stale_completions: u64,
    /// Completions for a key with no running entry: no-ops (rule 3).
    pub unknown_completions: u64,
    /// Clean shutdowns.
    pub shutdowns: u64,
    /// Starts that replaced an older running entry of the same key (a subset of `started`).
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
    /// The start was below the key's high-water mark and was ignored.
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
    /// A clean shutdown; `interrupted` runs were still in flight.
    Shutdown {
        /// How many runs the shutdown interrupted.
        interrupted: usize,
    },
    /// A recovery record; `crashed` runs interrupted by a crash counted one more recovery.
    Recovered {
        /// How many runs counted one more recovery.
        crashed: usize,
    },
    /// A retention record forgot `forgotten` high-water marks.
    Retention {
        /// How many marks were forgotten.
        forgotten: usize,
    },
}

/// What the fold knows of one key: its high-water mark, and its running run if it has one.
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
    // One hash map, key to mark and running run: replay folds every record through it, one
    // lookup each (an ordered map's key comparisons took most of the replay's time, and a map
    // each for marks and runs took two lookups). Listings sort on the way out.
    keys: KeyMap<KeyState>,
    /// How many keys have a running run.
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

    /// Applies one event (rules 1 to 6 above) and says what it did. Takes an [`Event`] or the
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
            EventRef::Shutdown { .. } => self.shutdown(),
            EventRef::Recovered { .. } => self.recovered(),
            EventRef::Retention {
                forget_before_ms, ..
            } => self.retain(forget_before_ms),
        };
        (applied, None)
    }

    /// Rule 5: the runs in flight were interrupted by a clean shutdown.
    fn shutdown(&mut self) -> Applied {
        self.counters.shutdowns += 1;
        for entry in self.runs_mut() {
            entry.reason = Reason::Shutdown;
        }
        Applied::Shutdown {
            interrupted: self.running,
        }
    }

    /// Rule 6: one more consecutive recovery for each run a crash interrupted.
    fn recovered(&mut self) -> Applied {
        self.counters.recoveries += 1;
        let mut crashed = 0;
        for entry in self.runs_mut() {
            if entry.reason == Reason::Crash {
                entry.recoveries = entry.recoveries.saturating_add(1);
                crashed += 1;
            } else {
                entry.recoveries = 0;
            }
        }
        Applied::Recovered { crashed }
    }

    /// Rule 4: the marks of keys idle since before `forget_before_ms`, with no running run,
    /// are forgotten.
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
        // The run replaces the key's running run, which keeps counting its recoveries: the key
        // is still in flight (a gateway resuming an interrupted run starts it again).
        self.counters.superseded += 1;
        let superseded = entry.run.generation;
        let recoveries = entry.recoveries;
        overwrite(entry, run);
        entry.recoveries = recoveries;
        Applied::Started {
            superseded: Some(superseded),
        }
    }

    /// A completion; for one that removed a run, when that run started.
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
                let done = state.run.take().expect("the key has a running run");
                let started_at_ms = done.run.started_at_ms;
                if self.spare.len() < SPARE_RUNS_MAX {
                    self.spare.push(done);
                }
                self.running -= 1;
                self.counters.completed += 1;
                (Applied::Completed, Some(started_at_ms))
            }
        }
    }

    /// The running entry of `key`, if any.
    pub fn get(&self, key: &str) -> Option<&InFlightRun> {
        self.keys.get(key).and_then(|s| s.run.as_deref())
    }

    /// Every running entry, ordered by key.
    pub fn entries(&self) -> impl ExactSizeIterator<Item = &InFlightRun> {
        let mut entries: Vec<&InFlightRun> = self
            .keys
            .values()
            .filter_map(|s| s.run.as_deref())
            .collect();
        entries.sort_unstable_by(|a, b| a.run.key.cmp(&b.run.key));
        entries.into_iter()
    }

    /// How many runs are in the set.
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
        let mut marks: Vec<(&str, &Mark)> = self
            .keys
            .iter()
            .map(|(k, s)| (k.as_str(), &s.mark))
            .collect();
        marks.sort_unstable_by_key(|&(key, _)| key);
        marks.into_iter()
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

    /// A set rebuilt from its parts (a snapshot's): the running runs, the marks, the counters,
    /// whether the last event was a clean shutdown, and the highest forgotten generation. Checks
    /// what the fold guarantees: one run per key, and every running run's key has a mark at or
    /// above its generation.
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
        for (key, mark) in marks {
            match set.keys.entry(key) {
                Entry::Occupied(twice) => {
                    return Err(format!("the mark of key {:?} is given twice", twice.key()));
                }
                Entry::Vacant(slot) => {
                    slot.insert(KeyState { mark, run: None });
                }
            }
        }
        for entry in runs {
            let key = &entry.run.key;
            let Some(state) = set
                .keys
                .get_mut(key.as_str())
                .filter(|s| s.mark.generation >= entry.run.generation)
            else {
                return Err(format!(
                    "running key {key:?} has no high-water mark at or above its generation {}",
                    entry.run.generation
                ));
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

/// Makes `entry` the run `run` just started (interrupted by nothing, seen by no recovery),
/// reusing its strings' allocations.
fn overwrite(entry: &mut InFlightRun, run: RunRef<'_>) {
    entry.reason = Reason::Crash;
    entry.recoveries = 0;
    let old = &mut entry.run;
    old.key.clear();
    old.key.push_str(run.key);
    old.session_id.clear();
    old.session_id.push_str(run.session_id);
    old.generation = run.generation;
    old.started_at_ms = run.started_at_ms;
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
}
