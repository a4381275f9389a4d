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

/// The running set and everything the fold remembers besides it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RunningSet {
    // Hash maps: replay folds every record through them, and an ordered map's key comparisons
    // took most of the replay's time. Listings sort on the way out.
    runs: KeyMap<InFlightRun>,
    marks: KeyMap<Mark>,
    counters: Counters,
    last_was_shutdown: bool,
    /// The highest generation among the marks retention forgot (0 if none): a generation the
    /// log allocates for a key it has no mark for goes above it, so none is ever reused.
    forgotten_generation: u64,
}

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
        let event = event.into();
        // A retention record (a compaction, maybe an offline one) says nothing about how the
        // last process exited; a recovery record is a process that opened the log after it.
        if !matches!(event, EventRef::Retention { .. }) {
            self.last_was_shutdown = matches!(event, EventRef::Shutdown { .. });
        }
        match event {
            EventRef::Started(run) => self.start(run),
            EventRef::Completed {
                key,
                generation,
                at_ms,
            } => self.complete(key, generation, at_ms),
            EventRef::Shutdown { .. } => {
                self.counters.shutdowns += 1;
                for entry in self.runs.values_mut() {
                    entry.reason = Reason::Shutdown;
                }
                Applied::Shutdown {
                    interrupted: self.runs.len(),
                }
            }
            EventRef::Recovered { .. } => {
                self.counters.recoveries += 1;
                let mut crashed = 0;
                for entry in self.runs.values_mut() {
                    if entry.reason == Reason::Crash {
                        entry.recoveries = entry.recoveries.saturating_add(1);
                        crashed += 1;
                    } else {
                        entry.recoveries = 0;
                    }
                }
                Applied::Recovered { crashed }
            }
            EventRef::Retention {
                forget_before_ms, ..
            } => {
                self.counters.retentions += 1;
                let before = self.marks.len();
                let runs = &self.runs;
                let highest = &mut self.forgotten_generation;
                self.marks.retain(|key, mark| {
                    let keep = mark.last_event_ms >= forget_before_ms || runs.contains_key(key);
                    if !keep {
                        *highest = (*highest).max(mark.generation);
                    }
                    keep
                });
                let forgotten = before - self.marks.len();
                self.counters.forgotten += forgotten as u64;
                Applied::Retention { forgotten }
            }
        }
    }

    fn start(&mut self, run: RunRef<'_>) -> Applied {
        let mark = self.raise_mark(run.key, run.generation, run.started_at_ms);
        if run.generation < mark {
            self.counters.stale_starts += 1;
            return Applied::StaleStart { high_water: mark };
        }
        self.counters.started += 1;
        let Some(entry) = self.runs.get_mut(run.key) else {
            self.runs
                .insert(run.key.to_string(), InFlightRun::new(run.to_run()));
            return Applied::Started { superseded: None };
        };
        // The run replaces the key's running run, which keeps counting its recoveries: the key
        // is still in flight (a gateway resuming an interrupted run starts it again). The entry
        // is rewritten in place, reusing its strings.
        self.counters.superseded += 1;
        let superseded = entry.run.generation;
        entry.reason = Reason::Crash;
        let old = &mut entry.run;
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
        Applied::Started {
            superseded: Some(superseded),
        }
    }

    fn complete(&mut self, key: &str, generation: u64, at_ms: u64) -> Applied {
        self.raise_mark(key, generation, at_ms);
        // Removed first, put back in the rare case the completion is stale: one lookup.
        match self.runs.remove_entry(key) {
            None => {
                self.counters.unknown_completions += 1;
                Applied::UnknownCompletion
            }
            Some((key, entry)) if generation < entry.run.generation => {
                let running_generation = entry.run.generation;
                self.runs.insert(key, entry);
                self.counters.stale_completions += 1;
                Applied::StaleCompletion { running_generation }
            }
            Some(_) => {
                self.counters.completed += 1;
                Applied::Completed
            }
        }
    }

    /// Raises the key's mark to at least `generation`; returns the mark from before, or
    /// `generation` for a key not seen yet (so a first start is never stale).
    fn raise_mark(&mut self, key: &str, generation: u64, at_ms: u64) -> u64 {
        match self.marks.get_mut(key) {
            Some(mark) => {
                let before = mark.generation;
                mark.generation = mark.generation.max(generation);
                mark.last_event_ms = mark.last_event_ms.max(at_ms);
                before
            }
            None => {
                self.marks.insert(
                    key.to_string(),
                    Mark {
                        generation,
                        last_event_ms: at_ms,
                    },
                );
                generation
            }
        }
    }

    /// The running entry of `key`, if any.
    pub fn get(&self, key: &str) -> Option<&InFlightRun> {
        self.runs.get(key)
    }

    /// Every running entry, ordered by key.
    pub fn entries(&self) -> impl ExactSizeIterator<Item = &InFlightRun> {
        let mut entries: Vec<&InFlightRun> = self.runs.values().collect();
        entries.sort_unstable_by(|a, b| a.run.key.cmp(&b.run.key));
        entries.into_iter()
    }

    /// How many runs are in the set.
    pub fn len(&self) -> usize {
        self.runs.len()
    }

    /// True when no run is in flight.
    pub fn is_empty(&self) -> bool {
        self.runs.is_empty()
    }

    /// The high-water mark of `key`, if the log has seen it.
    pub fn mark(&self, key: &str) -> Option<Mark> {
        self.marks.get(key).copied()
    }

    /// Every key's high-water mark, ordered by key.
    pub fn marks(&self) -> impl ExactSizeIterator<Item = (&str, &Mark)> {
        let mut marks: Vec<(&str, &Mark)> =
            self.marks.iter().map(|(k, m)| (k.as_str(), m)).collect();
        marks.sort_unstable_by_key(|&(key, _)| key);
        marks.into_iter()
    }

    /// How many keys have a high-water mark.
    pub fn marks_len(&self) -> usize {
        self.marks.len()
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
    /// whether the last event was a clean shutdown, and the highest forgotten generation. Checks what the fold guarantees: one
    /// run per key, and every running run's key has a mark at or above its generation.
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
        set.marks.reserve(marks.len());
        set.runs.reserve(runs.len());
        for (key, mark) in marks {
            if set.marks.insert(key.clone(), mark).is_some() {
                return Err(format!("the mark of key {key:?} is given twice"));
            }
        }
        for entry in runs {
            let key = &entry.run.key;
            match set.marks.get(key) {
                Some(mark) if mark.generation >= entry.run.generation => {}
                _ => {
                    return Err(format!(
                        "running key {key:?} has no high-water mark at or above its generation {}",
                        entry.run.generation
                    ));
                }
            }
            if set.runs.insert(key.clone(), entry).is_some() {
                return Err("a running key is given twice".to_string());
            }
        }
        Ok(set)
    }
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
